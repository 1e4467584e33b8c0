//! One load-generator executor: its share of connections and clients, each
//! client issuing requests back to back until the shared total is reached;
//! for `watch-latency`, its share of the watch streams (and, on executor 0,
//! the putter).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use glommio::net::TcpStream;
use h2::client::SendRequest;
use http::{HeaderValue, Request};
use keel_net::grpc;
use keel_net::io_compat::TokioIo;
use keel_proto::etcdserverpb as pb;
use prost::Message;

use crate::args::Command;
use crate::report::Report;

/// How long one request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long watch-latency waits for every watcher to be created.
pub const WATCH_SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a waiting task looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// TTL of the leases `lease-keepalive` renews (etcd's benchmark: 100 s).
const LEASE_TTL_SECS: i64 = 100;
/// Largest response message keel-bench accepts.
const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// State every executor of a watch-latency run shares.
#[derive(Debug)]
pub struct WatchShared {
    /// Watchers created so far (the putter starts when all are).
    pub ready: AtomicUsize,
    /// Time zero of every timestamp below.
    pub origin: Instant,
    /// When the i-th put's response arrived, ns after `origin` (0: not yet).
    pub put_end_ns: Vec<AtomicU64>,
}

impl WatchShared {
    pub fn new(put_total: usize) -> WatchShared {
        WatchShared {
            ready: AtomicUsize::new(0),
            origin: Instant::now(),
            put_end_ns: (0..put_total).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The part of the run one executor drives.
pub struct Share {
    pub endpoints: Vec<SocketAddr>,
    pub conns: usize,
    pub clients: usize,
    pub first_conn: usize,
    /// This executor's number and how many there are.
    pub core: usize,
    pub cores: usize,
    pub command: Command,
    /// Requests issued so far, across every executor.
    pub issued: Arc<AtomicUsize>,
    /// Results (successes and errors) recorded so far, for the progress bar.
    pub completed: Arc<AtomicUsize>,
    /// Set when the run must stop early (Ctrl-C, a fatal error).
    pub stop: Arc<AtomicBool>,
    pub watch: Arc<WatchShared>,
}

/// What one executor measured.
#[derive(Debug, Default)]
pub struct ShareOutcome {
    /// One per [`Command::report_names`].
    pub reports: Vec<Report>,
    /// watch-latency: per watcher, when each event arrived (ns after
    /// [`WatchShared::origin`]), in put order.
    pub watch_event_ns: Vec<Vec<u64>>,
}

/// Splits `total` into `parts` near-equal parts; the size of part `index`.
pub fn split(total: usize, parts: usize, index: usize) -> usize {
    total / parts + usize::from(index < total % parts)
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Bytes>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    stream.set_nodelay(true).ok();
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(1 << 20)
        .initial_connection_window_size(8 << 20);
    let (sender, connection) = builder
        .handshake::<_, Bytes>(TokioIo(stream))
        .await
        .map_err(|error| format!("HTTP/2 handshake with {addr} failed: {error}"))?;
    glommio::spawn_local(async move {
        let _ = connection.await;
    })
    .detach();
    Ok(sender)
}

pub async fn run_share(share: Share) -> Result<ShareOutcome, String> {
    let mut senders = Vec::with_capacity(share.conns);
    for conn in 0..share.conns {
        let addr = share.endpoints[(share.first_conn + conn) % share.endpoints.len()];
        senders.push((addr, connect(addr).await?));
    }
    let reports = share
        .command
        .report_names()
        .iter()
        .map(|_| Report::default())
        .collect();
    let outcome = Rc::new(RefCell::new(ShareOutcome {
        reports,
        watch_event_ns: Vec::new(),
    }));
    let fatal: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let share = Rc::new(share);
    let started = Instant::now();
    match &share.command {
        Command::WatchLatency { .. } => {
            run_watch(share.clone(), &senders, outcome.clone(), fatal.clone()).await
        }
        _ => run_requests(share.clone(), &senders, outcome.clone(), fatal.clone()).await,
    }
    let mut outcome = Rc::try_unwrap(outcome)
        .map(RefCell::into_inner)
        .unwrap_or_else(|shared| std::mem::take(&mut *shared.borrow_mut()));
    for report in &mut outcome.reports {
        report.elapsed = started.elapsed();
    }
    match fatal.take() {
        Some(message) => Err(message),
        None => Ok(outcome),
    }
}

/// Records a failure that ends the run, and stops every executor.
fn fail(share: &Share, fatal: &RefCell<Option<String>>, message: String) {
    share.stop.store(true, Ordering::Relaxed);
    fatal.borrow_mut().get_or_insert(message);
}

fn method_path(command: &Command) -> &'static str {
    match command {
        Command::Put { .. } => "/etcdserverpb.KV/Put",
        Command::Range { .. } => "/etcdserverpb.KV/Range",
        Command::TxnPut { .. } | Command::TxnMixed { .. } => "/etcdserverpb.KV/Txn",
        Command::LeaseKeepalive { .. } => "/etcdserverpb.Lease/LeaseKeepAlive",
        Command::WatchLatency { .. } => "/etcdserverpb.Watch/Watch",
    }
}

fn uri(addr: SocketAddr, path: &str) -> http::Uri {
    format!("http://{addr}{path}").parse().expect("valid uri")
}

/// Unary-style commands: every client issues requests back to back.
async fn run_requests(
    share: Rc<Share>,
    senders: &[(SocketAddr, SendRequest<Bytes>)],
    outcome: Rc<RefCell<ShareOutcome>>,
    fatal: Rc<RefCell<Option<String>>>,
) {
    let value = Rc::new(random_bytes(match &share.command {
        Command::Put { val_size, .. }
        | Command::TxnPut { val_size, .. }
        | Command::TxnMixed { val_size, .. } => *val_size,
        _ => 0,
    }));
    let in_flight = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::new();
    for client in 0..share.clients {
        let (addr, sender) = senders[client % senders.len()].clone();
        let share = share.clone();
        let outcome = outcome.clone();
        let fatal = fatal.clone();
        let value = value.clone();
        let in_flight = in_flight.clone();
        tasks.push(glommio::spawn_local(async move {
            let uri = uri(addr, method_path(&share.command));
            let mut sender = sender;
            let lease_id = match &share.command {
                Command::LeaseKeepalive { .. } => match grant_lease(&mut sender, addr).await {
                    Ok(id) => id,
                    Err(message) => return fail(&share, &fatal, message),
                },
                _ => 0,
            };
            loop {
                if share.stop.load(Ordering::Relaxed) {
                    break;
                }
                let index = share.issued.fetch_add(1, Ordering::Relaxed);
                if index >= share.command.total() {
                    break;
                }
                let (slot, body) = request_body(&share.command, index, &value, lease_id);
                in_flight.set(in_flight.get() + 1);
                let begun = Instant::now();
                let result = call(&mut sender, &uri, body)
                    .await
                    .and_then(|response| check_response(&share.command, &response));
                in_flight.set(in_flight.get() - 1);
                let report = &mut outcome.borrow_mut().reports[slot];
                match result {
                    Ok(()) => report.record(begun.elapsed()),
                    Err(message) => report.record_error(message),
                }
                share.completed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await;
    }
}

async fn grant_lease(sender: &mut SendRequest<Bytes>, addr: SocketAddr) -> Result<i64, String> {
    let request = pb::LeaseGrantRequest {
        ttl: LEASE_TTL_SECS,
        id: 0,
    };
    let uri = uri(addr, "/etcdserverpb.Lease/LeaseGrant");
    let response = call(sender, &uri, grpc::frame(&request))
        .await
        .map_err(|message| format!("lease grant failed: {message}"))?;
    let response: pb::LeaseGrantResponse =
        decode_one(&response).map_err(|message| format!("lease grant failed: {message}"))?;
    if !response.error.is_empty() {
        return Err(format!("lease grant failed: {}", response.error));
    }
    Ok(response.id)
}

/// Checks what a successful call returned, where the command cares.
fn check_response(command: &Command, body: &[u8]) -> Result<(), String> {
    match command {
        Command::LeaseKeepalive { .. } => {
            let response: pb::LeaseKeepAliveResponse = decode_one(body)?;
            if response.ttl <= 0 {
                return Err("lease expired or revoked (keep-alive TTL 0)".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The one message of a unary response body.
fn decode_one<M: Message + Default>(body: &[u8]) -> Result<M, String> {
    let message = grpc::unframe(body, RESPONSE_BYTES_MAX)
        .map_err(|error| format!("bad response framing: {error:?}"))?;
    M::decode(message).map_err(|error| format!("bad response: {error}"))
}

/// The request for the `index`-th operation, and the report it goes to.
fn request_body(command: &Command, index: usize, value: &[u8], lease_id: i64) -> (usize, Bytes) {
    match command {
        Command::Put {
            key_size,
            sequential_keys,
            key_space_size,
            ..
        } => {
            let number = if *sequential_keys {
                index % key_space_size
            } else {
                pseudo_random(index) % key_space_size
            };
            (
                0,
                grpc::frame(&put_request(varint_key(*key_size, number), value)),
            )
        }
        Command::Range {
            key,
            end,
            serializable,
            limit,
            ..
        } => (
            0,
            grpc::frame(&pb::RangeRequest {
                key: key.clone(),
                range_end: end.clone(),
                serializable: *serializable,
                limit: *limit,
                ..Default::default()
            }),
        ),
        Command::TxnPut {
            key_size,
            txn_ops,
            key_space_size,
            ..
        } => {
            // etcd: key (i * txn-ops + j) % key-space-size.
            let success = (0..*txn_ops)
                .map(|op| {
                    let number = (index * txn_ops + op) % key_space_size;
                    request_op(pb::request_op::Request::RequestPut(put_request(
                        varint_key(*key_size, number),
                        value,
                    )))
                })
                .collect();
            (0, grpc::frame(&txn(success)))
        }
        Command::TxnMixed {
            key_size,
            rw_ratio,
            serializable,
            key_space_size,
            limit,
            ..
        } => {
            // etcd: a read with probability rw/(1+rw); reads are a prefix
            // range over every key ("" with WithPrefix) with the limit.
            let draw = pseudo_random(index) as f64 / usize::MAX as f64;
            if draw < rw_ratio / (1.0 + rw_ratio) {
                let range = pb::RangeRequest {
                    key: vec![0],
                    range_end: vec![0],
                    serializable: *serializable,
                    limit: *limit,
                    ..Default::default()
                };
                let op = request_op(pb::request_op::Request::RequestRange(range));
                (0, grpc::frame(&txn(vec![op])))
            } else {
                let put = put_request(varint_key(*key_size, index % key_space_size), value);
                let op = request_op(pb::request_op::Request::RequestPut(put));
                (1, grpc::frame(&txn(vec![op])))
            }
        }
        Command::LeaseKeepalive { .. } => {
            (0, grpc::frame(&pb::LeaseKeepAliveRequest { id: lease_id }))
        }
        Command::WatchLatency { .. } => unreachable!("watch-latency is not request/response"),
    }
}

fn varint_key(key_size: usize, number: usize) -> Vec<u8> {
    let mut key = vec![0u8; key_size];
    put_varint(&mut key, number as i64);
    key
}

fn put_request(key: Vec<u8>, value: &[u8]) -> pb::PutRequest {
    pb::PutRequest {
        key,
        value: value.to_vec(),
        ..Default::default()
    }
}

fn request_op(request: pb::request_op::Request) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request),
    }
}

fn txn(success: Vec<pb::RequestOp>) -> pb::TxnRequest {
    pb::TxnRequest {
        success,
        ..Default::default()
    }
}

/// watch-latency: this executor's watch streams, and on executor 0 the
/// putter (on a connection of its own, as etcd's benchmark).
async fn run_watch(
    share: Rc<Share>,
    senders: &[(SocketAddr, SendRequest<Bytes>)],
    outcome: Rc<RefCell<ShareOutcome>>,
    fatal: Rc<RefCell<Option<String>>>,
) {
    let Command::WatchLatency {
        put_total,
        put_rate,
        key_size,
        val_size,
        streams,
        watchers_per_stream,
        prev_kv,
    } = share.command.clone()
    else {
        unreachable!("run_watch runs watch-latency");
    };
    // Every executor watches the same key: fixed, so no coordination.
    let key = Rc::new(random_bytes(key_size));
    let my_streams = split(streams, share.cores, share.core);
    let mut tasks = Vec::new();
    for stream in 0..my_streams {
        let (addr, sender) = senders[stream % senders.len()].clone();
        let share = share.clone();
        let outcome = outcome.clone();
        let fatal = fatal.clone();
        let key = key.clone();
        tasks.push(glommio::spawn_local(async move {
            let watch = WatchStream {
                share: &share,
                key: &key,
                prev_kv,
                watchers: watchers_per_stream,
                events_per_watcher: put_total,
            };
            match watch.run(sender, addr).await {
                Ok(event_ns) => outcome.borrow_mut().watch_event_ns.extend(event_ns),
                Err(message) => fail(&share, &fatal, message),
            }
        }));
    }
    if share.core == 0 {
        let share = share.clone();
        let outcome = outcome.clone();
        let fatal = fatal.clone();
        let key = key.clone();
        tasks.push(glommio::spawn_local(async move {
            let watchers = streams * watchers_per_stream;
            let putter = Putter {
                share: &share,
                key: &key,
                value: random_bytes(val_size),
                total: put_total,
                rate_per_sec: put_rate,
                watchers,
            };
            if let Err(message) = putter.run(&outcome).await {
                fail(&share, &fatal, message);
            }
        }));
    }
    for task in tasks {
        task.await;
    }
}

struct Putter<'a> {
    share: &'a Share,
    key: &'a [u8],
    value: Vec<u8>,
    total: usize,
    rate_per_sec: usize,
    watchers: usize,
}

impl Putter<'_> {
    async fn run(&self, outcome: &RefCell<ShareOutcome>) -> Result<(), String> {
        let addr = self.share.endpoints[0];
        let mut sender = connect(addr).await?;
        let watch = &self.share.watch;
        let waiting_since = Instant::now();
        while watch.ready.load(Ordering::Relaxed) < self.watchers {
            if self.share.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if waiting_since.elapsed() > WATCH_SETUP_TIMEOUT {
                return Err(format!(
                    "only {} of {} watchers were created in {WATCH_SETUP_TIMEOUT:?}",
                    watch.ready.load(Ordering::Relaxed),
                    self.watchers
                ));
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let uri = uri(addr, "/etcdserverpb.KV/Put");
        let started = Instant::now();
        for index in 0..self.total {
            if self.share.stop.load(Ordering::Relaxed) {
                break;
            }
            // A steady rate, as etcd's limiter: put i is due at i / rate.
            let due = started + Duration::from_secs_f64(index as f64 / self.rate_per_sec as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                glommio::timer::sleep(wait).await;
            }
            let body = grpc::frame(&put_request(self.key.to_vec(), &self.value));
            let begun = Instant::now();
            let result = call(&mut sender, &uri, body).await;
            watch.put_end_ns[index].store(watch.now_ns().max(1), Ordering::Relaxed);
            self.share.completed.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(_) => outcome.borrow_mut().reports[0].record(begun.elapsed()),
                Err(message) => {
                    outcome.borrow_mut().reports[0].record_error(message.clone());
                    return Err(format!(
                        "failed to put for the watch latency benchmark: {message}"
                    ));
                }
            }
        }
        Ok(())
    }
}

struct WatchStream<'a> {
    share: &'a Share,
    key: &'a [u8],
    prev_kv: bool,
    watchers: usize,
    events_per_watcher: usize,
}

impl WatchStream<'_> {
    /// Opens the stream, creates the watchers, and records when each
    /// watcher's events arrive until each has seen every put.
    async fn run(
        &self,
        sender: SendRequest<Bytes>,
        addr: SocketAddr,
    ) -> Result<Vec<Vec<u64>>, String> {
        let mut sender = sender
            .ready()
            .await
            .map_err(|error| format!("watch: connection: {error}"))?;
        let (response, mut send_stream) = sender
            .send_request(grpc_request(&uri(addr, "/etcdserverpb.Watch/Watch")), false)
            .map_err(|error| format!("watch: send: {error}"))?;
        for _ in 0..self.watchers {
            let create = pb::WatchRequest {
                request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                    pb::WatchCreateRequest {
                        key: self.key.to_vec(),
                        prev_kv: self.prev_kv,
                        ..Default::default()
                    },
                )),
            };
            send_stream
                .send_data(grpc::frame(&create), false)
                .map_err(|error| format!("watch: send: {error}"))?;
        }
        let response = self
            .until_stopped(response)
            .await
            .ok_or("watch: stopped before the stream opened")?
            .map_err(|error| format!("watch: response: {error}"))?;
        if let Some(Err(message)) = grpc_status(response.headers()) {
            return Err(format!("watch: {message}"));
        }
        let mut body = response.into_body();
        let mut buffer = BytesMut::new();
        let mut watcher_of: HashMap<i64, usize> = HashMap::new();
        let mut event_ns: Vec<Vec<u64>> =
            vec![Vec::with_capacity(self.events_per_watcher); self.watchers];
        let watch = &self.share.watch;
        while event_ns
            .iter()
            .any(|times| times.len() < self.events_per_watcher)
        {
            let Some(chunk) = self.until_stopped(body.data()).await else {
                break;
            };
            let Some(chunk) = chunk else {
                let trailers = body.trailers().await.ok().flatten();
                return Err(match trailers.as_ref().and_then(grpc_status) {
                    Some(Err(message)) => format!("watch stream ended: {message}"),
                    _ => "watch stream ended early".into(),
                });
            };
            let chunk = chunk.map_err(|error| format!("watch: body: {error}"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            let arrived_ns = watch.now_ns();
            buffer.extend_from_slice(&chunk);
            while let Some(message) = next_message(&mut buffer)? {
                let response = pb::WatchResponse::decode(message)
                    .map_err(|error| format!("watch: bad response: {error}"))?;
                if response.created {
                    let next = watcher_of.len();
                    if next >= self.watchers {
                        return Err("watch: more watchers created than requested".into());
                    }
                    watcher_of.insert(response.watch_id, next);
                    watch.ready.fetch_add(1, Ordering::Relaxed);
                }
                if response.canceled {
                    return Err(format!("watch canceled: {}", response.cancel_reason));
                }
                if response.events.is_empty() {
                    continue;
                }
                let watcher = *watcher_of
                    .get(&response.watch_id)
                    .ok_or("watch: events for an unknown watch id")?;
                for _ in &response.events {
                    event_ns[watcher].push(arrived_ns);
                    self.share.completed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        send_stream.send_reset(h2::Reason::CANCEL);
        Ok(event_ns)
    }

    /// `future`'s output, or None once the run is stopped.
    async fn until_stopped<T>(&self, future: impl std::future::Future<Output = T>) -> Option<T> {
        let stop = &self.share.stop;
        futures_lite::future::or(async { Some(future.await) }, async {
            while !stop.load(Ordering::Relaxed) {
                glommio::timer::sleep(STOP_POLL).await;
            }
            None
        })
        .await
    }
}

/// Takes one whole gRPC message off the front of `buffer`, if there is one.
fn next_message(buffer: &mut BytesMut) -> Result<Option<Bytes>, String> {
    let Some(len) = grpc::announced_len(buffer) else {
        return Ok(None);
    };
    if buffer[0] != 0 {
        return Err("compressed response; keel-bench asks for none".into());
    }
    if len > RESPONSE_BYTES_MAX {
        return Err(format!("response message of {len} bytes is too large"));
    }
    if buffer.len() < grpc::PREFIX_BYTES + len {
        return Ok(None);
    }
    buffer.advance(grpc::PREFIX_BYTES);
    Ok(Some(buffer.split_to(len).freeze()))
}

fn grpc_request(uri: &http::Uri) -> Request<()> {
    let mut request = Request::builder()
        .method("POST")
        .uri(uri.clone())
        .body(())
        .expect("valid request");
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    request
}

/// One request message, then the response's messages (framed, as sent)
/// and its status. A stream method (LeaseKeepAlive) works the same way: the
/// request half-closes after its one message, as etcd's KeepAliveOnce.
async fn call(
    sender: &mut SendRequest<Bytes>,
    uri: &http::Uri,
    body: Bytes,
) -> Result<Bytes, String> {
    let exchange = async {
        let ready = sender
            .clone()
            .ready()
            .await
            .map_err(|error| format!("connection: {error}"))?;
        *sender = ready;
        let (response, mut stream) = sender
            .send_request(grpc_request(uri), false)
            .map_err(|error| format!("send: {error}"))?;
        stream
            .send_data(body, true)
            .map_err(|error| format!("send: {error}"))?;
        let response = response
            .await
            .map_err(|error| format!("response: {error}"))?;
        if let Some(status) = grpc_status(response.headers()) {
            return status.map(|()| Bytes::new());
        }
        let mut body = response.into_body();
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|error| format!("response body: {error}"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|error| format!("trailers: {error}"))?;
        trailers
            .as_ref()
            .and_then(grpc_status)
            .unwrap_or_else(|| Err("response without grpc-status".into()))
            .map(|()| data.freeze())
    };
    match futures_lite::future::or(async { Some(exchange.await) }, async {
        glommio::timer::sleep(REQUEST_TIMEOUT).await;
        None
    })
    .await
    {
        Some(result) => result,
        None => Err("request timed out".into()),
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<Result<(), String>> {
    let status = headers.get("grpc-status")?.to_str().unwrap_or("2");
    if status == "0" {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("");
    Some(Err(format!("grpc-status {status}: {message}")))
}

/// Go's `binary.PutVarint` (zig-zag), as etcd's benchmark encodes keys.
fn put_varint(buf: &mut [u8], value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut i = 0;
    while zigzag >= 0x80 && i < buf.len() {
        buf[i] = (zigzag as u8) | 0x80;
        zigzag >>= 7;
        i += 1;
    }
    if i < buf.len() {
        buf[i] = zigzag as u8;
        i += 1;
    }
    i
}

fn pseudo_random(index: usize) -> usize {
    // splitmix64: deterministic, uniform enough for key choice.
    let mut z = (index as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as usize
}

fn random_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + (pseudo_random(i) % 26) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_split_off_a_stream() {
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(&[0, 0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 3, b'a']);
        assert_eq!(next_message(&mut buffer).unwrap().unwrap(), &b"hi"[..]);
        assert_eq!(next_message(&mut buffer).unwrap(), None);
        buffer.extend_from_slice(b"bc");
        assert_eq!(next_message(&mut buffer).unwrap().unwrap(), &b"abc"[..]);
        assert!(buffer.is_empty());
        buffer.extend_from_slice(&[1, 0, 0, 0, 0]);
        assert!(next_message(&mut buffer).is_err());
    }

    #[test]
    fn txn_mixed_reads_follow_the_ratio() {
        let command = Command::TxnMixed {
            total: 10_000,
            key_size: 8,
            val_size: 8,
            rw_ratio: 3.0,
            serializable: true,
            key_space_size: 10,
            limit: 1000,
            end_key: Vec::new(),
        };
        let reads = (0..10_000)
            .filter(|&i| request_body(&command, i, b"v", 0).0 == 0)
            .count();
        assert!((7_200..7_800).contains(&reads), "{reads}");
    }

    #[test]
    fn txn_put_carries_txn_ops_puts() {
        let command = Command::TxnPut {
            total: 10,
            key_size: 8,
            val_size: 3,
            txn_ops: 4,
            key_space_size: 100,
        };
        let (_, body) = request_body(&command, 2, b"abc", 0);
        let txn: pb::TxnRequest = decode_one(&body).unwrap();
        assert_eq!(txn.success.len(), 4);
        let Some(pb::request_op::Request::RequestPut(put)) = &txn.success[3].request else {
            panic!("not a put");
        };
        assert_eq!(put.key, varint_key(8, 11));
        assert_eq!(put.value, b"abc");
    }

    #[test]
    fn varint_matches_go() {
        let mut buf = [0u8; 8];
        assert_eq!(put_varint(&mut buf, 0), 1);
        assert_eq!(buf[0], 0);
        assert_eq!(put_varint(&mut buf, 1), 1);
        assert_eq!(buf[0], 2);
        assert_eq!(put_varint(&mut buf, 64), 2);
        assert_eq!(&buf[..2], &[0x80, 0x01]);
    }
}

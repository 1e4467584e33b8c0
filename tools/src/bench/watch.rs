//! watch-latency: the watch streams of one executor and, on executor 0,
//! the putter whose puts they time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use keel_net::grpc;
use keel_proto::etcdserverpb as pb;
use prost::Message;

use crate::args::Command;
use crate::client::{fail, split, Share, ShareOutcome, STOP_POLL};
use crate::grpc_call::{call, connect, grpc_request, grpc_status, next_message, uri};
use crate::workload::{put_request, random_bytes};

/// How long watch-latency waits for every watcher to be created.
pub const WATCH_SETUP_TIMEOUT: Duration = Duration::from_secs(10);

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

/// watch-latency: this executor's watch streams, and on executor 0 the
/// putter (on a connection of its own, as etcd's benchmark).
pub(crate) async fn run_watch(
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

pub(crate) struct Putter<'a> {
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

pub(crate) struct WatchStream<'a> {
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

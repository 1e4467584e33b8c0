//! A shard core's server: accept on every client listener (SO_REUSEPORT, so
//! the kernel spreads connections over the shard cores), speak HTTP/2 with
//! `h2`, read each call's one gRPC message, dispatch it, answer with the
//! message and `grpc-status` trailers.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};
use glommio::net::{TcpListener, TcpStream};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue};
use keel_engine::StoreReader;
use keel_proto::etcdserverpb::{
    AlarmRequest, CompactionRequest, DefragmentRequest, DeleteRangeRequest, HashKvRequest,
    HashRequest, LeaseGrantRequest, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    MemberListRequest, MoveLeaderRequest, PutRequest, RangeRequest, StatusRequest, TxnRequest,
};
use keel_proto::health::HealthCheckRequest;
use keel_proto::methods;
use keel_proto::v3electionpb::{CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest};
use keel_proto::v3lockpb::{LockRequest, UnlockRequest};
use keel_raft_shim::{FromRaft, RaftStatus, ShardId, ToRaft};
use prost::Message;

use crate::authority::AuthorityFix;
use crate::grpc::{self, Code, FrameError, Status};
use crate::io_compat::{Replay, TokioIo};
use crate::metrics::ShardMetrics;
use crate::shard::Shard;
use crate::status::unknown_method;
use crate::ServeConfig;
use crate::{cluster, concurrency, health, kv, lease, maintenance, txn};
use std::sync::atomic::Ordering;

/// Streams one HTTP/2 connection may have open at once.
pub const CONNECTION_STREAMS_MAX: u32 = 1024;
/// Per-stream receive window.
pub const STREAM_WINDOW_BYTES: u32 = 1 << 20;
/// Per-connection receive window.
pub const CONNECTION_WINDOW_BYTES: u32 = 8 << 20;
/// Bytes h2 may buffer for sending on one stream.
pub const STREAM_SEND_BUFFER_BYTES_MAX: usize = 4 << 20;

/// Everything one shard core needs, handed over from start-up.
pub struct ShardSetup {
    pub id: ShardId,
    /// Every shard core's metrics, indexed by shard id (this core writes
    /// only its own).
    pub metrics: Arc<[Arc<ShardMetrics>]>,
    pub config: ServeConfig,
    pub reader: StoreReader,
    pub status: Arc<RaftStatus>,
    pub to_raft: SharedSender<ToRaft>,
    pub from_raft: SharedReceiver<FromRaft>,
}

/// Runs a shard core inside its executor: binds every listener, reports the
/// outcome through `bound`, then serves until the raft core goes away.
pub async fn run_shard(
    setup: ShardSetup,
    bound: impl FnOnce(Result<(), (SocketAddr, std::io::Error)>),
) {
    let mut listeners = Vec::new();
    let client = setup
        .config
        .listen
        .iter()
        .map(|addr| (addr, Serves::Client));
    let metrics = setup
        .config
        .metrics_listen
        .iter()
        .map(|addr| (addr, Serves::HttpOnly));
    for (addr, serves) in client.chain(metrics) {
        match bind_listener(*addr) {
            Ok(listener) => listeners.push((listener, serves)),
            Err(error) => {
                bound(Err((*addr, error)));
                return;
            }
        }
    }
    let to_raft = setup.to_raft.connect().await;
    let from_raft = setup.from_raft.connect().await;
    let shard = Rc::new(Shard::new(
        setup.id,
        setup.metrics,
        setup.reader,
        setup.status,
        setup.config,
        to_raft,
    ));
    bound(Ok(()));
    let catch_up = {
        let shard = shard.clone();
        glommio::spawn_local(async move { shard.watches.run_catch_up().await })
    };
    let progress = glommio::spawn_local(progress_notifier(shard.clone()));
    let accepts: Vec<_> = listeners
        .into_iter()
        .map(|(listener, serves)| {
            glommio::spawn_local(accept_loop(listener, serves, shard.clone()))
        })
        .collect();
    shard.run_replies(from_raft).await;
    drop(accepts);
    drop(catch_up);
    drop(progress);
}

/// Listen backlog per shard core's listener.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Binds with SO_REUSEPORT (every shard core binds the same address and the
/// kernel spreads connections) and SO_REUSEADDR (a member restarted right
/// after a crash binds despite connections left in TIME_WAIT, as etcd does).
fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::unix::io::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket we own and hand over
    // whole: nothing else closes or uses it afterwards.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// Fails if `addr` is taken by any listening socket, our own kind
/// included: shard cores bind with SO_REUSEPORT, which would let a second
/// keel of the same user share a port another keel listens on (and take
/// some of its connections), where etcd fails with "address already in
/// use". A bind without SO_REUSEPORT conflicts with every listener; start-up
/// makes it once per address before the shard cores bind, and drops it.
/// SO_REUSEADDR still lets a member restarted right after a crash bind
/// despite connections left in TIME_WAIT.
pub fn check_address_free(addr: SocketAddr) -> std::io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serves {
    /// gRPC, and `/health`, `/metrics`, `/version` (`--listen-client-urls`).
    Client,
    /// Only the HTTP endpoints (`--listen-metrics-urls`).
    HttpOnly,
}

async fn accept_loop(listener: TcpListener, serves: Serves, shard: Rc<Shard>) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                glommio::spawn_local(serve_connection(stream, serves, shard.clone())).detach();
            }
            Err(error) => {
                eprintln!("keel: accept failed: {error}");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// The first bytes of every HTTP/2 connection (the client preface).
const HTTP2_PREFACE_START: &[u8; 4] = b"PRI ";

async fn serve_connection(mut stream: TcpStream, serves: Serves, shard: Rc<Shard>) {
    use futures_lite::AsyncReadExt;
    let mut head = [0u8; 4];
    let mut seen = 0;
    while seen < head.len() {
        match stream.read(&mut head[seen..]).await {
            Ok(0) | Err(_) => return,
            Ok(read) => seen += read,
        }
    }
    if &head != HTTP2_PREFACE_START {
        return crate::http1::serve(stream, head.to_vec(), shard).await;
    }
    if serves == Serves::HttpOnly {
        return; // gRPC is served on the client URLs only
    }
    shard.metrics.connections.fetch_add(1, Ordering::Relaxed);
    serve_http2(
        AuthorityFix::new(Replay::new(stream, head.to_vec())),
        &shard,
    )
    .await;
    shard.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

async fn serve_http2(stream: AuthorityFix<Replay<TcpStream>>, shard: &Rc<Shard>) {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(CONNECTION_STREAMS_MAX)
        .initial_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .max_send_buffer_size(STREAM_SEND_BUFFER_BYTES_MAX);
    let Ok(mut connection) = builder.handshake::<_, Bytes>(TokioIo(stream)).await else {
        return; // not HTTP/2, or gone before the preface: close
    };
    while let Some(accepted) = connection.accept().await {
        match accepted {
            Ok((request, respond)) => {
                glommio::spawn_local(serve_call(request, respond, shard.clone())).detach();
            }
            Err(_) => break, // protocol error or reset connection: close it
        }
    }
}

/// Sends etcd's periodic progress notifications to the watchers that asked.
async fn progress_notifier(shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(shard.config.watch_progress_notify_interval).await;
        shard.watches.notify_progress();
    }
}

async fn serve_call(
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    shard: Rc<Shard>,
) {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let method = shard.metrics.method(path);
    if let Some(method) = method {
        shard.metrics.started(method);
    }
    let started = Instant::now();
    let code = serve_method(path, body, respond, &shard).await;
    if let (Some(method), Some(code)) = (method, code) {
        shard.metrics.handled(method, code, started.elapsed());
    }
}

/// Serves one call; returns the status code it ended with (`None` if the
/// client went away first).
async fn serve_method(
    path: &str,
    body: RecvStream,
    mut respond: SendResponse<Bytes>,
    shard: &Rc<Shard>,
) -> Option<Code> {
    let shard = shard.clone();
    match path {
        methods::WATCH_WATCH => {
            crate::watch::serve_watch(shard, body, respond).await;
            return Some(Code::Ok);
        }
        methods::LEASE_KEEP_ALIVE => {
            crate::lease::serve_keep_alive(shard, body, respond).await;
            return Some(Code::Ok);
        }
        methods::MAINTENANCE_SNAPSHOT => {
            crate::snapshot::serve_snapshot(shard, body, respond).await;
            return Some(Code::Ok);
        }
        methods::ELECTION_OBSERVE => {
            crate::concurrency::serve_observe(shard, body, respond).await;
            return Some(Code::Ok);
        }
        methods::KV_RANGE_STREAM => {
            crate::range_stream::serve_range_stream(shard, body, respond).await;
            return Some(Code::Ok);
        }
        _ => {}
    }
    let limit = shard.config.recv_limit_bytes();
    let message = match read_message(body, limit).await {
        Ok(Some(message)) => message,
        Ok(None) => return None, // the client reset the stream or vanished mid-request
        Err(status) => {
            let code = status.code;
            send_result(respond, Err(status));
            return Some(code);
        }
    };
    let result = match grpc::unframe(&message, limit) {
        Ok(bytes) if path == methods::LOCK_LOCK || path == methods::ELECTION_CAMPAIGN => {
            // These may wait for a long time: stop if the client goes away.
            concurrency::until_call_reset(&mut respond, dispatch(&shard, path, bytes)).await?
        }
        Ok(bytes) => dispatch(&shard, path, bytes).await,
        Err(error) => Err(error.to_status()),
    };
    let code = match &result {
        Ok(_) => Code::Ok,
        Err(status) => status.code,
    };
    send_result(respond, result);
    Some(code)
}

/// Reads the request body: one framed gRPC message, at most `limit` bytes.
async fn read_message(mut body: RecvStream, limit: usize) -> Result<Option<Bytes>, Status> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return Ok(None) };
        let _ = body.flow_control().release_capacity(chunk.len());
        match first.take() {
            None if joined.is_empty() => first = Some(chunk),
            previous => {
                if let Some(previous) = previous {
                    joined.extend_from_slice(&previous);
                }
                joined.extend_from_slice(&chunk);
            }
        }
        let seen = first.as_deref().unwrap_or(&joined);
        if let Some(len) = grpc::announced_len(seen) {
            if len > limit {
                return Err(FrameError::TooLarge(len, limit).to_status());
            }
        }
        if seen.len() > grpc::PREFIX_BYTES + limit {
            return Err(FrameError::TrailingBytes.to_status());
        }
    }
    Ok(Some(first.unwrap_or_else(|| joined.freeze())))
}

async fn dispatch(shard: &Shard, path: &str, message: &[u8]) -> Result<Bytes, Status> {
    match path {
        methods::KV_RANGE => {
            let request = decode::<RangeRequest>(message)?;
            Ok(grpc::frame(&kv::range(shard, request).await?))
        }
        methods::KV_PUT => {
            let request = decode::<PutRequest>(message)?;
            Ok(grpc::frame(&kv::put(shard, request).await?))
        }
        methods::KV_DELETE_RANGE => {
            let request = decode::<DeleteRangeRequest>(message)?;
            Ok(grpc::frame(&kv::delete_range(shard, request).await?))
        }
        methods::KV_COMPACT => {
            let request = decode::<CompactionRequest>(message)?;
            Ok(grpc::frame(&kv::compact(shard, request).await?))
        }
        methods::KV_TXN => {
            let request = decode::<TxnRequest>(message)?;
            Ok(grpc::frame(&txn::txn(shard, request).await?))
        }
        methods::MAINTENANCE_STATUS => {
            let request = decode::<StatusRequest>(message)?;
            Ok(grpc::frame(&maintenance::status(shard, request)))
        }
        methods::MAINTENANCE_ALARM => {
            let request = decode::<AlarmRequest>(message)?;
            Ok(grpc::frame(&maintenance::alarm(shard, request).await?))
        }
        methods::MAINTENANCE_DEFRAGMENT => {
            let request = decode::<DefragmentRequest>(message)?;
            Ok(grpc::frame(&maintenance::defragment(shard, request).await?))
        }
        methods::MAINTENANCE_HASH => {
            let request = decode::<HashRequest>(message)?;
            Ok(grpc::frame(&maintenance::hash(shard, request)))
        }
        methods::MAINTENANCE_HASH_KV => {
            let request = decode::<HashKvRequest>(message)?;
            Ok(grpc::frame(&maintenance::hash_kv(shard, request)?))
        }
        methods::MAINTENANCE_MOVE_LEADER => {
            let request = decode::<MoveLeaderRequest>(message)?;
            Ok(grpc::frame(&maintenance::move_leader(shard, request)?))
        }
        methods::LEASE_GRANT => {
            let request = decode::<LeaseGrantRequest>(message)?;
            Ok(grpc::frame(&lease::grant(shard, request).await?))
        }
        methods::LEASE_REVOKE => {
            let request = decode::<LeaseRevokeRequest>(message)?;
            Ok(grpc::frame(&lease::revoke(shard, request).await?))
        }
        methods::LEASE_TIME_TO_LIVE => {
            let request = decode::<LeaseTimeToLiveRequest>(message)?;
            Ok(grpc::frame(&lease::time_to_live(shard, request).await?))
        }
        methods::LEASE_LEASES => {
            let request = decode::<LeaseLeasesRequest>(message)?;
            Ok(grpc::frame(&lease::leases(shard, request).await?))
        }
        methods::LOCK_LOCK => {
            let request = decode::<LockRequest>(message)?;
            Ok(grpc::frame(&concurrency::lock(shard, request).await?))
        }
        methods::LOCK_UNLOCK => {
            let request = decode::<UnlockRequest>(message)?;
            Ok(grpc::frame(&concurrency::unlock(shard, request).await?))
        }
        methods::ELECTION_CAMPAIGN => {
            let request = decode::<CampaignRequest>(message)?;
            Ok(grpc::frame(&concurrency::campaign(shard, request).await?))
        }
        methods::ELECTION_PROCLAIM => {
            let request = decode::<ProclaimRequest>(message)?;
            Ok(grpc::frame(&concurrency::proclaim(shard, request).await?))
        }
        methods::ELECTION_LEADER => {
            let request = decode::<LeaderRequest>(message)?;
            Ok(grpc::frame(&concurrency::leader(shard, request).await?))
        }
        methods::ELECTION_RESIGN => {
            let request = decode::<ResignRequest>(message)?;
            Ok(grpc::frame(&concurrency::resign(shard, request).await?))
        }
        methods::CLUSTER_MEMBER_LIST => {
            let request = decode::<MemberListRequest>(message)?;
            Ok(grpc::frame(&cluster::member_list(shard, request).await?))
        }
        methods::HEALTH_CHECK => {
            let request = decode::<HealthCheckRequest>(message)?;
            Ok(grpc::frame(&health::check(request)?))
        }
        _ => Err(unknown_method(path)),
    }
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, Status> {
    M::decode(bytes).map_err(|error| {
        Status::new(
            Code::Internal,
            format!("grpc: error unmarshalling request: {error}"),
        )
    })
}

fn send_result(mut respond: SendResponse<Bytes>, result: Result<Bytes, Status>) {
    let mut response = http::Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    match result {
        Ok(body) => {
            let Ok(mut stream) = respond.send_response(response, false) else {
                return;
            };
            if stream.send_data(body, false).is_err() {
                return;
            }
            let mut trailers = HeaderMap::with_capacity(1);
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            let _ = stream.send_trailers(trailers);
        }
        Err(status) => {
            // Trailers-only response: the status rides on the headers.
            status.to_headers(response.headers_mut());
            let _ = respond.send_response(response, true);
        }
    }
}

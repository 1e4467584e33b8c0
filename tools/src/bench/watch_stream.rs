//! One Watch stream of the watch commands: opens it, creates its watchers
//! (all requests sent at once, as etcd's client queues them), and hands
//! each created confirmation and each response's events to a
//! [`WatchHandler`] until every watcher has had the events it expects.
//! Responses are read with `watch_wire` (no per-event allocation).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use keel_net::grpc;
use keel_proto::etcdserverpb as pb;

use crate::client::{Share, STOP_POLL};
use crate::endpoint::Endpoint;
use crate::grpc_call::{grpc_request, grpc_status, next_message};
use crate::watch_wire::scan_watch_response;

/// Most watchers one stream may carry (a bound on the per-stream tables).
pub const WATCHERS_PER_STREAM_MAX: usize = 1 << 20;

/// One watcher to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherSpec {
    pub key: Vec<u8>,
    /// 0: from the next revision; else from this one (unsynced).
    pub start_revision: i64,
    pub prev_kv: bool,
    /// Events after which this watcher is done.
    pub events_expected: usize,
}

/// What a watch command does with what its streams receive.
pub trait WatchHandler {
    /// Watcher `watcher` (index into the stream's specs) was created,
    /// `latency` after its create request was sent.
    fn created(&mut self, watcher: usize, latency: Duration);
    /// Events arrived for `watcher`: their mod revisions, and how many
    /// events that watcher had before them.
    fn events(
        &mut self,
        watcher: usize,
        seen_before: usize,
        mod_revisions: &[i64],
        arrived: Instant,
    );
    /// `watcher` has had every event it expects.
    fn watcher_done(&mut self, _watcher: usize) {}
}

/// Runs one stream on `sender` until each watcher of `watchers` has its
/// events, the run stops (Ok), or the stream fails (Err).
pub async fn run_stream(
    share: &Share,
    sender: SendRequest<Bytes>,
    endpoint: &Endpoint,
    watchers: &[WatcherSpec],
    handler: &mut impl WatchHandler,
) -> Result<(), String> {
    assert!(watchers.len() <= WATCHERS_PER_STREAM_MAX);
    let mut sender = until_stopped(share, sender.ready())
        .await
        .ok_or("watch: stopped before the stream opened")?
        .map_err(|error| format!("watch: connection: {error}"))?;
    let (response, mut send_stream) = sender
        .send_request(
            grpc_request(&endpoint.uri("/etcdserverpb.Watch/Watch")),
            false,
        )
        .map_err(|error| format!("watch: send: {error}"))?;
    let sent = Instant::now();
    for watcher in watchers {
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: watcher.key.clone(),
                    start_revision: watcher.start_revision,
                    prev_kv: watcher.prev_kv,
                    ..Default::default()
                },
            )),
        };
        send_stream
            .send_data(grpc::frame(&create), false)
            .map_err(|error| format!("watch: send: {error}"))?;
    }
    let response = until_stopped(share, response)
        .await
        .ok_or("watch: stopped before the stream opened")?
        .map_err(|error| format!("watch: response: {error}"))?;
    if let Some(Err(message)) = grpc_status(response.headers()) {
        return Err(format!("watch: {message}"));
    }
    let mut body = response.into_body();
    let mut buffer = BytesMut::new();
    let mut watcher_of: HashMap<i64, usize> = HashMap::with_capacity(watchers.len());
    let mut seen = vec![0usize; watchers.len()];
    let mut unfinished = watchers
        .iter()
        .filter(|watcher| watcher.events_expected > 0)
        .count();
    let mut created = 0usize;
    let mut mod_revisions = Vec::new();
    while unfinished > 0 || created < watchers.len() {
        let Some(chunk) = until_stopped(share, body.data()).await else {
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
        let arrived = Instant::now();
        buffer.extend_from_slice(&chunk);
        while let Some(message) = next_message(&mut buffer)? {
            mod_revisions.clear();
            let head = scan_watch_response(&message, &mut mod_revisions)?;
            if head.created {
                if created >= watchers.len() {
                    return Err("watch: more watchers created than requested".into());
                }
                watcher_of.insert(head.watch_id, created);
                handler.created(created, arrived.duration_since(sent));
                share.watch.ready.fetch_add(1, Ordering::Relaxed);
                created += 1;
            }
            if head.canceled {
                return Err(format!("watch canceled: {}", head.cancel_reason));
            }
            if mod_revisions.is_empty() {
                continue;
            }
            let watcher = *watcher_of
                .get(&head.watch_id)
                .ok_or("watch: events for an unknown watch id")?;
            handler.events(watcher, seen[watcher], &mod_revisions, arrived);
            share
                .completed
                .fetch_add(mod_revisions.len(), Ordering::Relaxed);
            let expected = watchers[watcher].events_expected;
            let before = seen[watcher];
            seen[watcher] += mod_revisions.len();
            if before < expected && seen[watcher] >= expected {
                unfinished -= 1;
                handler.watcher_done(watcher);
            }
        }
    }
    send_stream.send_reset(h2::Reason::CANCEL);
    Ok(())
}

/// `future`'s output, or None once the run is stopped.
pub async fn until_stopped<T>(
    share: &Share,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    let stop = &share.stop;
    futures_lite::future::or(async { Some(future.await) }, async {
        while !stop.load(Ordering::Relaxed) {
            glommio::timer::sleep(STOP_POLL).await;
        }
        None
    })
    .await
}

/// Waits until `ready()` holds, polling every millisecond; false if the run
/// stopped or `timeout` passed first.
pub async fn wait_until(share: &Share, timeout: Duration, ready: impl Fn() -> bool) -> bool {
    let since = Instant::now();
    while !ready() {
        if share.stop.load(Ordering::Relaxed) || since.elapsed() > timeout {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    true
}

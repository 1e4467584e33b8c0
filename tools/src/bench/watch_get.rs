//! `watch-get` (etcd's `benchmark watch-get`): executor 0 puts "watchkey"
//! `events` times; then `watchers` watchers over `streams` streams
//! (watcher i on stream i mod streams) watch it from the first of those
//! revisions, so each must catch up on `events` events from history, while
//! one client on a connection of its own times serializable gets of "abc"
//! until every watcher has caught up. The report is the gets'.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use keel_proto::etcdserverpb as pb;

use crate::client::{fail, split, Share, ShareOutcome};
use crate::command::Command;
use crate::endpoint::Endpoint;
use crate::grpc_call::{call, unary};
use crate::watch::WATCH_SETUP_TIMEOUT;
use crate::watch_stream::{run_stream, wait_until, WatchHandler, WatcherSpec};

const WATCH_KEY: &[u8] = b"watchkey";

/// Counts watchers that have had all their events, across executors.
struct Counting<'a> {
    share: &'a Share,
}

impl WatchHandler for Counting<'_> {
    fn created(&mut self, _watcher: usize, _latency: Duration) {}

    fn events(&mut self, _watcher: usize, _seen: usize, _revisions: &[i64], _arrived: Instant) {}

    fn watcher_done(&mut self, _watcher: usize) {
        self.share
            .watch
            .watchers_done
            .fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) async fn run_watch_get(
    share: Rc<Share>,
    senders: &[(Endpoint, SendRequest<Bytes>)],
    outcome: Rc<RefCell<ShareOutcome>>,
    fatal: Rc<RefCell<Option<String>>>,
) {
    let Command::WatchGet {
        watchers,
        streams,
        events,
    } = share.command
    else {
        unreachable!("run_watch_get runs watch-get");
    };
    if share.core == 0 {
        if let Err(message) = put_history(&share, events).await {
            return fail(&share, &fatal, message);
        }
    }
    let watch = &share.watch;
    let setup = WATCH_SETUP_TIMEOUT;
    if !wait_until(&share, setup, || {
        watch.base_revision.load(Ordering::Acquire) != 0
    })
    .await
    {
        return; // stopped, or executor 0 failed and said why
    }
    let start_revision = watch.base_revision.load(Ordering::Acquire);
    let first_stream: usize = (0..share.core)
        .map(|c| split(streams, share.cores, c))
        .sum();
    let mut tasks = Vec::new();
    for stream in first_stream..first_stream + split(streams, share.cores, share.core) {
        let (endpoint, sender) = senders[stream % senders.len()].clone();
        let (share, fatal) = (share.clone(), fatal.clone());
        tasks.push(glommio::spawn_local(async move {
            let spec = WatcherSpec {
                key: WATCH_KEY.to_vec(),
                start_revision,
                prev_kv: false,
                events_expected: events,
            };
            // etcd: watcher i on stream i mod streams.
            let specs = vec![spec; split(watchers, streams, stream)];
            let mut handler = Counting { share: &share };
            if let Err(message) = run_stream(&share, sender, &endpoint, &specs, &mut handler).await
            {
                fail(&share, &fatal, message);
            }
        }));
    }
    if share.core == 0 {
        let (share, outcome, fatal) = (share.clone(), outcome.clone(), fatal.clone());
        tasks.push(glommio::spawn_local(async move {
            if let Err(message) = get_until_caught_up(&share, &outcome).await {
                fail(&share, &fatal, message);
            }
        }));
    }
    for task in tasks {
        task.await;
    }
}

/// Puts the watched key `events` times; publishes the first put's revision.
async fn put_history(share: &Share, events: usize) -> Result<(), String> {
    let endpoint = &share.endpoints[0];
    let mut sender = share.dialer.connect(endpoint).await?;
    let mut first_revision = 0;
    for event in 0..events {
        let response: pb::PutResponse = unary(
            &mut sender,
            endpoint,
            "/etcdserverpb.KV/Put",
            &pb::PutRequest {
                key: WATCH_KEY.to_vec(),
                value: event.to_string().into_bytes(),
                ..Default::default()
            },
        )
        .await
        .map_err(|message| format!("watch-get: setting up the watched key failed: {message}"))?;
        if event == 0 {
            first_revision = response.header.map(|header| header.revision).unwrap_or(0);
        }
    }
    share
        .watch
        .base_revision
        .store(first_revision.max(1), Ordering::Release);
    Ok(())
}

/// Serializable gets of "abc" on a connection of their own, timed, until
/// every watcher has had its events (or the run stops).
async fn get_until_caught_up(share: &Share, outcome: &RefCell<ShareOutcome>) -> Result<(), String> {
    let endpoint = &share.endpoints[0];
    let mut sender = share.dialer.connect(endpoint).await?;
    let uri = endpoint.uri("/etcdserverpb.KV/Range");
    let body = keel_net::grpc::frame(&pb::RangeRequest {
        key: b"abc".to_vec(),
        serializable: true,
        ..Default::default()
    });
    let watchers = share.command.watchers();
    let watch = &share.watch;
    while watch.watchers_done.load(Ordering::Relaxed) < watchers
        && !share.stop.load(Ordering::Relaxed)
    {
        let begun = Instant::now();
        let result = call(&mut sender, &uri, body.clone()).await;
        let report = &mut outcome.borrow_mut().reports[0];
        match result {
            Ok(_) => report.record_since(begun),
            Err(message) => report.record_error(message),
        }
    }
    Ok(())
}

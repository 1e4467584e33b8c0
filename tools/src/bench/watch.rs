//! watch-latency: each executor's watch streams, all on one key, and the
//! putter (an executor of its own) whose puts they time. Event j of a
//! watcher is matched with put j, as etcd's benchmark does; latencies are
//! computed as events arrive (`event_latency.rs`), so 10,000 watchers cost
//! a histogram per executor.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use keel_net::grpc;

use crate::client::{fail, split, Share, ShareOutcome};
use crate::command::Command;
use crate::endpoint::Endpoint;
use crate::event_latency::{EventLatencies, PutEnds};
use crate::grpc_call::call;
use crate::watch_stream::{run_stream, wait_until, WatchHandler, WatcherSpec};
use crate::workload::{put_request, random_bytes};

/// How long the watch commands wait for every watcher to be created.
pub const WATCH_SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// State every executor of a watch command shares.
#[derive(Debug)]
pub struct WatchShared {
    /// Watchers created so far (the puts start when all are).
    pub ready: AtomicUsize,
    /// When each put ended (watch-latency: by put index; watch: by
    /// revision past `base_revision`).
    pub ends: PutEnds,
    /// watch: the revision before the first put; watch-get: the revision
    /// of the first put. 0 until known.
    pub base_revision: AtomicI64,
    /// watch: when the puts started (ns after `ends.origin`), for the rate.
    pub puts_started_ns: AtomicU64,
    /// watch-get: watchers that have had all their events.
    pub watchers_done: AtomicUsize,
}

impl WatchShared {
    pub fn new(put_slots: usize) -> WatchShared {
        WatchShared {
            ready: AtomicUsize::new(0),
            ends: PutEnds::new(put_slots),
            base_revision: AtomicI64::new(0),
            puts_started_ns: AtomicU64::new(0),
            watchers_done: AtomicUsize::new(0),
        }
    }
}

/// Event j of a watcher was caused by put j.
struct ByOrder<'a> {
    ends: &'a PutEnds,
    latencies: EventLatencies,
}

impl WatchHandler for ByOrder<'_> {
    fn created(&mut self, _watcher: usize, _latency: Duration) {}

    fn events(
        &mut self,
        _watcher: usize,
        seen_before: usize,
        mod_revisions: &[i64],
        arrived: Instant,
    ) {
        let arrived_ns = arrived.duration_since(self.ends.origin).as_nanos() as u64;
        for put in seen_before..seen_before + mod_revisions.len() {
            self.latencies.record(self.ends, put, arrived_ns);
        }
    }
}

/// This executor's watch streams (the putter runs on its own executor).
pub(crate) async fn run_watch_latency(
    share: Rc<Share>,
    senders: &[(Endpoint, SendRequest<Bytes>)],
    outcome: Rc<RefCell<ShareOutcome>>,
    fatal: Rc<RefCell<Option<String>>>,
) {
    let Command::WatchLatency {
        put_total,
        key_size,
        streams,
        watchers_per_stream,
        prev_kv,
        ..
    } = share.command.clone()
    else {
        unreachable!("run_watch_latency runs watch-latency");
    };
    // Every executor watches the same key: fixed, so no coordination.
    let spec = WatcherSpec {
        key: random_bytes(key_size),
        start_revision: 0,
        prev_kv,
        events_expected: put_total,
    };
    let specs = Rc::new(vec![spec; watchers_per_stream]);
    let latencies = Rc::new(RefCell::new(Some(EventLatencies::new(share.sample))));
    let my_streams = split(streams, share.cores, share.core);
    let mut tasks = Vec::new();
    for stream in 0..my_streams {
        let (endpoint, sender) = senders[stream % senders.len()].clone();
        let (share, fatal, specs, latencies) = (
            share.clone(),
            fatal.clone(),
            specs.clone(),
            latencies.clone(),
        );
        tasks.push(glommio::spawn_local(async move {
            let mut handler = ByOrder {
                ends: &share.watch.ends,
                latencies: EventLatencies::new(share.sample),
            };
            if let Err(message) = run_stream(&share, sender, &endpoint, &specs, &mut handler).await
            {
                fail(&share, &fatal, message);
            }
            if let Some(latencies) = latencies.borrow_mut().as_mut() {
                latencies.merge(handler.latencies);
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    outcome.borrow_mut().events = latencies.take();
}

/// watch-latency's putter: waits for every watcher, then puts the key
/// `put_total` times at `put_rate`/s on a connection of its own.
pub(crate) async fn run_putter(
    share: Rc<Share>,
    outcome: Rc<RefCell<ShareOutcome>>,
    fatal: Rc<RefCell<Option<String>>>,
) {
    let Command::WatchLatency {
        put_total,
        put_rate,
        key_size,
        val_size,
        ..
    } = share.command.clone()
    else {
        unreachable!("the putter runs watch-latency");
    };
    let watchers = share.command.watchers();
    let result = async {
        let endpoint = &share.endpoints[0];
        let mut sender = share.dialer.connect(endpoint).await?;
        let watch = &share.watch;
        if !wait_until(&share, WATCH_SETUP_TIMEOUT, || {
            watch.ready.load(Ordering::Relaxed) >= watchers
        })
        .await
        {
            if share.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            return Err(format!(
                "only {} of {watchers} watchers were created in {WATCH_SETUP_TIMEOUT:?}",
                watch.ready.load(Ordering::Relaxed),
            ));
        }
        let key = random_bytes(key_size);
        let value = random_bytes(val_size);
        let uri = endpoint.uri("/etcdserverpb.KV/Put");
        let started = Instant::now();
        for index in 0..put_total {
            if share.stop.load(Ordering::Relaxed) {
                break;
            }
            // A steady rate, as etcd's limiter: put i is due at i / rate.
            let due = started + Duration::from_secs_f64(index as f64 / put_rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                glommio::timer::sleep(wait).await;
            }
            let body = grpc::frame(&put_request(key.clone(), &value));
            let begun = Instant::now();
            let result = call(&mut sender, &uri, body).await;
            watch.ends.mark(index);
            share.completed.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(_) => outcome.borrow_mut().reports[0].record_since(begun),
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
    .await;
    if let Err(message) = result {
        fail(&share, &fatal, message);
    }
}

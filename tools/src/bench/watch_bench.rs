//! `watch` (etcd's `benchmark watch`): `streams` x `watch-per-stream`
//! watchers, watcher w on key w mod `watched-key-total`, then `put-total`
//! puts of those keys (put i on key i mod the key total) from every client
//! at `put-rate`/s. Two reports: watch creation (create request sent to
//! `created` received) and events received, each event timed from the end
//! of the put that caused it (matched by its revision) to its arrival.
//! etcd's own events report times only its client's event processing, so
//! its latencies are ~0 and only its rate means much.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use keel_net::grpc;
use keel_proto::etcdserverpb as pb;

use crate::client::{fail, split, Share, ShareOutcome};
use crate::command::Command;
use crate::endpoint::Endpoint;
use crate::event_latency::EventLatencies;
use crate::grpc_call::{call, decode_one, unary};
use crate::report::Report;
use crate::watch::{WatchShared, WATCH_SETUP_TIMEOUT};
use crate::watch_stream::{run_stream, wait_until, WatchHandler, WatcherSpec};
use crate::workload::{pseudo_random, put_request, varint_key};

/// The keys, who watches them and how many events that makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchPlan {
    /// `watched-key-total` keys (random ones may repeat, as etcd's).
    pub keys: Vec<Vec<u8>>,
    /// Puts each distinct key gets.
    puts_of_key: HashMap<Vec<u8>, usize>,
    /// Events every watcher together expects.
    pub events_total: usize,
}

impl WatchPlan {
    pub fn new(command: &Command) -> WatchPlan {
        let Command::Watch {
            watched_key_total,
            put_total,
            key_size,
            key_space_size,
            sequential_keys,
            ..
        } = command
        else {
            panic!("a watch plan is for the watch command");
        };
        let keys: Vec<Vec<u8>> = (0..*watched_key_total)
            .map(|i| {
                let number = if *sequential_keys {
                    i
                } else {
                    pseudo_random(i)
                };
                varint_key(*key_size, number % key_space_size)
            })
            .collect();
        let mut puts_of_key: HashMap<Vec<u8>, usize> = HashMap::new();
        for put in 0..*put_total {
            *puts_of_key
                .entry(keys[put % keys.len()].clone())
                .or_insert(0) += 1;
        }
        let mut plan = WatchPlan {
            keys,
            puts_of_key,
            events_total: 0,
        };
        plan.events_total = (0..command.watchers())
            .map(|watcher| plan.events_of_watcher(watcher))
            .sum();
        plan
    }

    /// The key watcher `watcher` watches.
    pub fn key_of_watcher(&self, watcher: usize) -> &[u8] {
        &self.keys[watcher % self.keys.len()]
    }

    /// Events watcher `watcher` gets: the puts of its key.
    pub fn events_of_watcher(&self, watcher: usize) -> usize {
        self.puts_of_key
            .get(self.key_of_watcher(watcher))
            .copied()
            .unwrap_or(0)
    }
}

/// Creation latencies, and event latencies by revision.
struct ByRevision<'a> {
    watch: &'a WatchShared,
    create: Report,
    latencies: EventLatencies,
    sent: Instant,
}

impl WatchHandler for ByRevision<'_> {
    fn created(&mut self, _watcher: usize, latency: Duration) {
        self.create.record_from(self.sent, latency);
    }

    fn events(
        &mut self,
        _watcher: usize,
        _seen_before: usize,
        mod_revisions: &[i64],
        arrived: Instant,
    ) {
        let ends = &self.watch.ends;
        let arrived_ns = arrived.duration_since(ends.origin).as_nanos() as u64;
        // Known before the first put, so before any event.
        let base_revision = self.watch.base_revision.load(Ordering::Acquire);
        for &revision in mod_revisions {
            let slot = usize::try_from(revision - base_revision - 1).unwrap_or(usize::MAX);
            self.latencies.record(ends, slot, arrived_ns);
        }
    }
}

pub(crate) async fn run_watch_bench(
    share: Rc<Share>,
    senders: &[(Endpoint, SendRequest<Bytes>)],
    outcome: Rc<RefCell<ShareOutcome>>,
    fatal: Rc<RefCell<Option<String>>>,
) {
    let Command::Watch {
        streams,
        watch_per_stream,
        ..
    } = share.command.clone()
    else {
        unreachable!("run_watch_bench runs watch");
    };
    let plan = Rc::new(WatchPlan::new(&share.command));
    let first_stream: usize = (0..share.core)
        .map(|c| split(streams, share.cores, c))
        .sum();
    let my_streams = split(streams, share.cores, share.core);
    let mut tasks = Vec::new();
    for stream in first_stream..first_stream + my_streams {
        let (endpoint, sender) = senders[stream % senders.len()].clone();
        let (share, outcome, fatal, plan) =
            (share.clone(), outcome.clone(), fatal.clone(), plan.clone());
        tasks.push(glommio::spawn_local(async move {
            let specs: Vec<WatcherSpec> = (0..watch_per_stream)
                .map(|j| {
                    let watcher = stream * watch_per_stream + j;
                    WatcherSpec {
                        key: plan.key_of_watcher(watcher).to_vec(),
                        start_revision: 0,
                        prev_kv: false,
                        events_expected: plan.events_of_watcher(watcher),
                    }
                })
                .collect();
            let mut handler = ByRevision {
                watch: &share.watch,
                create: Report::new(share.sample),
                latencies: EventLatencies::new(share.sample),
                sent: Instant::now(),
            };
            let result = run_stream(&share, sender, &endpoint, &specs, &mut handler).await;
            if let Err(message) = result {
                fail(&share, &fatal, message);
            }
            let mut outcome = outcome.borrow_mut();
            outcome.reports[0].merge(&handler.create);
            match &mut outcome.events {
                Some(events) => events.merge(handler.latencies),
                None => outcome.events = Some(handler.latencies),
            }
        }));
    }
    if share.core == 0 {
        let (share, fatal) = (share.clone(), fatal.clone());
        tasks.push(glommio::spawn_local(async move {
            if let Err(message) = set_base_revision(&share).await {
                fail(&share, &fatal, message);
            }
        }));
    }
    for client in 0..share.clients {
        let (endpoint, sender) = senders[client % senders.len()].clone();
        let (share, fatal, plan) = (share.clone(), fatal.clone(), plan.clone());
        tasks.push(glommio::spawn_local(async move {
            if let Err(message) = put_keys(&share, sender, &endpoint, &plan).await {
                fail(&share, &fatal, message);
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    outcome
        .borrow_mut()
        .events
        .get_or_insert_with(|| EventLatencies::new(share.sample));
}

/// Executor 0: once every watcher exists, reads the current revision and
/// publishes it as the base the puts' revisions count from.
async fn set_base_revision(share: &Share) -> Result<(), String> {
    let endpoint = &share.endpoints[0];
    let mut sender = share.dialer.connect(endpoint).await?;
    let watchers = share.command.watchers();
    let watch = &share.watch;
    if !wait_until(share, WATCH_SETUP_TIMEOUT, || {
        watch.ready.load(Ordering::Relaxed) >= watchers
    })
    .await
    {
        if share.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        return Err(format!(
            "only {} of {watchers} watchers were created in {WATCH_SETUP_TIMEOUT:?}",
            watch.ready.load(Ordering::Relaxed)
        ));
    }
    let range: pb::RangeResponse = unary(
        &mut sender,
        endpoint,
        "/etcdserverpb.KV/Range",
        &pb::RangeRequest {
            key: b"keel-bench".to_vec(),
            count_only: true,
            ..Default::default()
        },
    )
    .await?;
    let revision = range.header.map(|header| header.revision).unwrap_or(0);
    watch
        .puts_started_ns
        .store(watch.ends.now_ns(), Ordering::Release);
    watch
        .base_revision
        .store(revision.max(1), Ordering::Release);
    Ok(())
}

/// One client's puts: waits for the base revision, then takes put indices
/// until `put_total`, at `put_rate`/s over every client (0: no limit).
async fn put_keys(
    share: &Share,
    sender: SendRequest<Bytes>,
    endpoint: &Endpoint,
    plan: &WatchPlan,
) -> Result<(), String> {
    let Command::Watch {
        put_total,
        put_rate,
        ..
    } = share.command
    else {
        unreachable!("put_keys runs watch");
    };
    let watch = &share.watch;
    let setup = WATCH_SETUP_TIMEOUT + Duration::from_secs(10);
    if !wait_until(share, setup, || {
        watch.base_revision.load(Ordering::Acquire) != 0
    })
    .await
    {
        return Ok(()); // stopped, or executor 0 reported why
    }
    let base = watch.base_revision.load(Ordering::Acquire);
    let started =
        watch.ends.origin + Duration::from_nanos(watch.puts_started_ns.load(Ordering::Acquire));
    let uri = endpoint.uri("/etcdserverpb.KV/Put");
    let mut sender = sender;
    loop {
        if share.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let index = share.issued.fetch_add(1, Ordering::Relaxed);
        if index >= put_total {
            return Ok(());
        }
        if put_rate > 0 {
            let due = started + Duration::from_secs_f64(index as f64 / put_rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                glommio::timer::sleep(wait).await;
            }
        }
        let key = plan.keys[index % plan.keys.len()].clone();
        let body = grpc::frame(&put_request(key, b"data"));
        let response = call(&mut sender, &uri, body)
            .await
            .map_err(|message| format!("put for the watch benchmark failed: {message}"))?;
        let response: pb::PutResponse = decode_one(&response)?;
        let revision = response.header.map(|header| header.revision).unwrap_or(0);
        let slot = usize::try_from(revision - base - 1).unwrap_or(usize::MAX);
        watch.ends.mark(slot);
    }
}

//! One load-generator executor: its share of connections and clients, each
//! client issuing requests back to back until the shared total is reached;
//! for the watch commands, its share of the watch streams (`watch.rs`,
//! `watch_bench.rs`, `watch_get.rs`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use keel_net::grpc;
use keel_proto::etcdserverpb as pb;

use crate::command::Command;
use crate::compact::run_compactor;
use crate::dial::Dialer;
use crate::endpoint::Endpoint;
use crate::event_latency::EventLatencies;
use crate::grpc_call::{call, decode_one};
use crate::report::Report;
pub use crate::watch::WatchShared;
use crate::watch::{run_putter, run_watch_latency};
use crate::watch_bench::run_watch_bench;
use crate::watch_get::run_watch_get;
use crate::workload::{check_response, method_path, random_bytes, request_body};

/// How often a waiting task looks at the stop flag.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(50);
/// TTL of the leases `lease-keepalive` renews (etcd's benchmark: 100 s).
pub(crate) const LEASE_TTL_SECS: i64 = 100;

/// What an executor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Its share of connections, clients and watch streams.
    Load,
    /// watch-latency's putter, on an executor of its own so that its
    /// timestamps do not wait behind event processing.
    Putter,
}

/// The part of the run one executor drives.
pub struct Share {
    pub role: Role,
    pub endpoints: Vec<Endpoint>,
    pub conns: usize,
    pub clients: usize,
    pub first_conn: usize,
    /// This executor's number and how many there are.
    pub core: usize,
    pub cores: usize,
    pub command: Command,
    /// Connects (`--dial-timeout`, TLS).
    pub dialer: Dialer,
    /// `--sample`: keep the per-second series.
    pub sample: bool,
    /// When the run started (`put --rate` schedules from it).
    pub started: Instant,
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
    /// The watch commands: put-to-event latencies, settled once every
    /// executor has finished (an event may beat its put's response).
    pub events: Option<EventLatencies>,
}

/// Splits `total` into `parts` near-equal parts; the size of part `index`.
pub fn split(total: usize, parts: usize, index: usize) -> usize {
    total / parts + usize::from(index < total % parts)
}

pub async fn run_share(share: Share) -> Result<ShareOutcome, String> {
    let mut senders = Vec::with_capacity(share.conns);
    for conn in 0..share.conns {
        let endpoint = &share.endpoints[(share.first_conn + conn) % share.endpoints.len()];
        senders.push((endpoint.clone(), share.dialer.connect(endpoint).await?));
    }
    let reports = share
        .command
        .report_names()
        .iter()
        .map(|_| Report::new(share.sample))
        .collect();
    let outcome = Rc::new(RefCell::new(ShareOutcome {
        reports,
        events: None,
    }));
    let fatal: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    let share = Rc::new(share);
    let started = Instant::now();
    let (ctx_share, ctx_outcome, ctx_fatal) = (share.clone(), outcome.clone(), fatal.clone());
    match (&share.command, share.role) {
        (_, Role::Putter) => run_putter(ctx_share, ctx_outcome, ctx_fatal).await,
        (Command::WatchLatency { .. }, Role::Load) => {
            run_watch_latency(ctx_share, &senders, ctx_outcome, ctx_fatal).await
        }
        (Command::Watch { .. }, Role::Load) => {
            run_watch_bench(ctx_share, &senders, ctx_outcome, ctx_fatal).await
        }
        (Command::WatchGet { .. }, Role::Load) => {
            run_watch_get(ctx_share, &senders, ctx_outcome, ctx_fatal).await
        }
        (_, Role::Load) => run_requests(ctx_share, &senders, ctx_outcome, ctx_fatal).await,
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
pub(crate) fn fail(share: &Share, fatal: &RefCell<Option<String>>, message: String) {
    share.stop.store(true, Ordering::Relaxed);
    fatal.borrow_mut().get_or_insert(message);
}

/// Unary-style commands: every client issues requests back to back.
async fn run_requests(
    share: Rc<Share>,
    senders: &[(Endpoint, SendRequest<Bytes>)],
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
    let rate = match &share.command {
        Command::Put { rate, .. } => *rate,
        _ => 0,
    };
    let mut tasks = Vec::new();
    for client in 0..share.clients {
        let (endpoint, sender) = senders[client % senders.len()].clone();
        let share = share.clone();
        let outcome = outcome.clone();
        let fatal = fatal.clone();
        let value = value.clone();
        let in_flight = in_flight.clone();
        tasks.push(glommio::spawn_local(async move {
            let uri = endpoint.uri(method_path(&share.command));
            let mut sender = sender;
            let lease_id = match &share.command {
                Command::LeaseKeepalive { .. } => match grant_lease(&mut sender, &endpoint).await {
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
                if rate > 0 {
                    // Put i is due at i / rate after the start, as a
                    // limiter shared by every client.
                    let due = share.started + Duration::from_secs_f64(index as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        glommio::timer::sleep(wait).await;
                    }
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
                    Ok(()) => report.record_since(begun),
                    Err(message) => report.record_error(message),
                }
                share.completed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let clients = async {
        for task in tasks {
            task.await;
        }
    };
    match &share.command {
        Command::Put {
            compact_interval: Some(interval),
            compact_index_delta,
            ..
        } if share.core == 0 => {
            let compactor = async {
                if let Err(message) = run_compactor(&share, *interval, *compact_index_delta).await {
                    fail(&share, &fatal, message);
                }
                // Failed (or stopped): the clients see the stop flag.
                std::future::pending::<()>().await
            };
            futures_lite::future::or(clients, compactor).await
        }
        _ => clients.await,
    }
}

async fn grant_lease(sender: &mut SendRequest<Bytes>, endpoint: &Endpoint) -> Result<i64, String> {
    let request = pb::LeaseGrantRequest {
        ttl: LEASE_TTL_SECS,
        id: 0,
    };
    let uri = endpoint.uri("/etcdserverpb.Lease/LeaseGrant");
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

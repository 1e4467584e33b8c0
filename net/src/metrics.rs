//! Per-core request metrics and the Prometheus text `/metrics` serves.
//!
//! Every shard core owns a [`ShardMetrics`] (atomics only it writes); a
//! scrape on any core sums all of them, plus what the raft core measures
//! (`keel_raft_shim::metrics::RaftMetrics`). Names follow etcd's and
//! grpc-go-prometheus's, so existing dashboards and alerts keep working.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keel_proto::methods;
use keel_raft_shim::metrics::{Histogram, REQUEST_BUCKETS_SECONDS};
use keel_raft_shim::RaftStatus;

use crate::grpc::Code;

/// gRPC status codes 0..=16.
const GRPC_CODES: usize = 17;

#[derive(Debug)]
pub struct MethodMetrics {
    started: AtomicU64,
    handled: [AtomicU64; GRPC_CODES],
    latency: Histogram,
}

impl Default for MethodMetrics {
    fn default() -> MethodMetrics {
        MethodMetrics {
            started: AtomicU64::new(0),
            handled: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: Histogram::new(&REQUEST_BUCKETS_SECONDS),
        }
    }
}

/// One shard core's metrics.
#[derive(Debug)]
pub struct ShardMetrics {
    /// Indexed like `methods::ALL`.
    methods: Vec<MethodMetrics>,
    index: HashMap<&'static str, usize>,
    /// Watchers on this core (the hub keeps it current).
    pub watchers: AtomicU64,
    /// Open client connections on this core.
    pub connections: AtomicU64,
}

impl Default for ShardMetrics {
    fn default() -> ShardMetrics {
        ShardMetrics {
            methods: methods::ALL
                .iter()
                .map(|_| MethodMetrics::default())
                .collect(),
            index: methods::ALL
                .iter()
                .enumerate()
                .map(|(index, path)| (*path, index))
                .collect(),
            watchers: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        }
    }
}

impl ShardMetrics {
    /// The slot of a known method path.
    pub fn method(&self, path: &str) -> Option<usize> {
        self.index.get(path).copied()
    }

    pub fn started(&self, method: usize) {
        self.methods[method].started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn handled(&self, method: usize, code: Code, elapsed: Duration) {
        let metrics = &self.methods[method];
        metrics.handled[code as usize].fetch_add(1, Ordering::Relaxed);
        metrics.latency.observe(elapsed);
    }
}

/// The whole `/metrics` page: every core's request metrics summed, the raft
/// core's disk and proposal metrics, sizes and watchers.
pub fn render(shards: &[Arc<ShardMetrics>], status: &RaftStatus) -> String {
    let mut out = String::with_capacity(64 << 10);
    out.push_str("# TYPE grpc_server_started_total counter\n");
    for (index, path) in methods::ALL.iter().enumerate() {
        let started: u64 = shards
            .iter()
            .map(|s| s.methods[index].started.load(Ordering::Relaxed))
            .sum();
        if started > 0 {
            let _ = writeln!(
                out,
                "grpc_server_started_total{{{}}} {started}",
                method_labels(path)
            );
        }
    }
    out.push_str("# TYPE grpc_server_handled_total counter\n");
    for (index, path) in methods::ALL.iter().enumerate() {
        for code in 0..GRPC_CODES {
            let handled: u64 = shards
                .iter()
                .map(|s| s.methods[index].handled[code].load(Ordering::Relaxed))
                .sum();
            if handled > 0 {
                let _ = writeln!(
                    out,
                    "grpc_server_handled_total{{grpc_code=\"{}\",{}}} {handled}",
                    code_name(code),
                    method_labels(path)
                );
            }
        }
    }
    out.push_str("# TYPE grpc_server_handling_seconds histogram\n");
    for (index, path) in methods::ALL.iter().enumerate() {
        let parts: Vec<&Histogram> = shards.iter().map(|s| &s.methods[index].latency).collect();
        if parts.iter().any(|h| h.count() > 0) {
            Histogram::write(
                &mut out,
                "grpc_server_handling_seconds",
                &method_labels(path),
                &parts,
            );
        }
    }
    let raft = &status.metrics;
    out.push_str("# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n");
    Histogram::write(
        &mut out,
        "etcd_disk_wal_fsync_duration_seconds",
        "",
        &[&raft.wal_fsync],
    );
    out.push_str("# TYPE etcd_disk_backend_commit_duration_seconds histogram\n");
    Histogram::write(
        &mut out,
        "etcd_disk_backend_commit_duration_seconds",
        "",
        &[&raft.backend_commit],
    );
    let leader = status.leader_id.load(Ordering::Relaxed);
    let gauges: [(&str, &str, u64); 11] = [
        ("etcd_server_has_leader", "gauge", u64::from(leader != 0)),
        (
            "etcd_server_is_leader",
            "gauge",
            u64::from(leader == status.member_id),
        ),
        (
            "etcd_server_leader_changes_seen_total",
            "counter",
            raft.leader_changes.load(Ordering::Relaxed),
        ),
        (
            "etcd_server_proposals_committed_total",
            "gauge",
            raft.proposals_committed.load(Ordering::Relaxed),
        ),
        (
            "etcd_server_proposals_applied_total",
            "gauge",
            raft.proposals_applied.load(Ordering::Relaxed),
        ),
        (
            "etcd_server_proposals_failed_total",
            "counter",
            raft.proposals_failed.load(Ordering::Relaxed),
        ),
        (
            "etcd_mvcc_db_total_size_in_bytes",
            "gauge",
            status.db_size_bytes.load(Ordering::Relaxed),
        ),
        (
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "gauge",
            status.db_size_in_use_bytes.load(Ordering::Relaxed),
        ),
        (
            "etcd_debugging_mvcc_watcher_total",
            "gauge",
            shards
                .iter()
                .map(|s| s.watchers.load(Ordering::Relaxed))
                .sum(),
        ),
        (
            "etcd_server_applied_index",
            "gauge",
            status.applied_index.load(Ordering::Relaxed),
        ),
        (
            "keel_client_connections",
            "gauge",
            shards
                .iter()
                .map(|s| s.connections.load(Ordering::Relaxed))
                .sum(),
        ),
    ];
    for (name, kind, value) in gauges {
        let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {value}");
    }
    let _ = writeln!(
        out,
        "# TYPE etcd_server_term gauge\netcd_server_term {}",
        status.term.load(Ordering::Relaxed)
    );
    out
}

/// `grpc_method`, `grpc_service` and `grpc_type` of a method path.
fn method_labels(path: &str) -> String {
    let rest = path.trim_start_matches('/');
    let (service, method) = rest.rsplit_once('/').unwrap_or((rest, ""));
    let client_streaming = methods::CLIENT_STREAMING.contains(&path);
    let server_streaming = methods::SERVER_STREAMING.contains(&path);
    let kind = match (client_streaming, server_streaming) {
        (true, true) => "bidi_stream",
        (true, false) => "client_stream",
        (false, true) => "server_stream",
        (false, false) => "unary",
    };
    format!("grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{kind}\"")
}

fn code_name(code: usize) -> &'static str {
    const NAMES: [&str; GRPC_CODES] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES[code]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_over_cores_with_grpc_labels() {
        let one = Arc::new(ShardMetrics::default());
        let two = Arc::new(ShardMetrics::default());
        let put = one.method(methods::KV_PUT).unwrap();
        one.started(put);
        one.handled(put, Code::Ok, Duration::from_micros(80));
        two.started(put);
        two.handled(put, Code::InvalidArgument, Duration::from_micros(20));
        two.watchers.store(3, Ordering::Relaxed);
        let status = RaftStatus::default();
        let page = render(&[one, two], &status);
        assert!(page.contains(
            "grpc_server_started_total{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 2\n"
        ), "{page}");
        assert!(page.contains(
            "grpc_server_handled_total{grpc_code=\"InvalidArgument\",grpc_method=\"Put\""
        ));
        assert!(page.contains("grpc_server_handling_seconds_count{grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 2\n"));
        assert!(page.contains("etcd_debugging_mvcc_watcher_total 3\n"));
        assert!(page.contains("etcd_disk_wal_fsync_duration_seconds_count 0\n"));
        assert!(
            !page.contains("grpc_method=\"Range\""),
            "unused methods are left out"
        );
        assert_eq!(
            method_labels(methods::WATCH_WATCH),
            "grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\""
        );
    }
}

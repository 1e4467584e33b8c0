//! Prometheus metrics that every core writes without sharing a cache line
//! with another writer: each core owns its counters and histograms (plain
//! atomics it alone updates) and `/metrics` sums them when it is scraped.
//!
//! [`Histogram`] has fixed upper bounds, as Prometheus histograms do; the
//! text format is written by [`Histogram::write`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) for request latencies: finer than grpc-go's
/// default buckets, because keel answers in tens of microseconds.
pub const REQUEST_BUCKETS_SECONDS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];
/// etcd's buckets for `etcd_disk_wal_fsync_duration_seconds` and
/// `etcd_disk_backend_commit_duration_seconds`: 1 ms doubling 14 times.
pub const DISK_BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
    8.192,
];

/// A histogram one core observes into and any core may read.
#[derive(Debug)]
pub struct Histogram {
    bounds_seconds: &'static [f64],
    /// Per bucket (not cumulative); the last counts observations above
    /// every bound.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn new(bounds_seconds: &'static [f64]) -> Histogram {
        debug_assert!(bounds_seconds.windows(2).all(|pair| pair[0] < pair[1]));
        Histogram {
            bounds_seconds,
            counts: (0..=bounds_seconds.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = self
            .bounds_seconds
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(self.bounds_seconds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Writes `name` (with `labels`, e.g. `method="Put"`, may be empty) in
    /// Prometheus text format, summing every histogram in `parts`.
    pub fn write(out: &mut String, name: &str, labels: &str, parts: &[&Histogram]) {
        let Some(first) = parts.first() else { return };
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (index, bound) in first.bounds_seconds.iter().enumerate() {
            cumulative += parts
                .iter()
                .map(|h| h.counts[index].load(Ordering::Relaxed))
                .sum::<u64>();
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}"
            );
        }
        let total: u64 = parts.iter().map(|h| h.count()).sum();
        let sum_nanos: u64 = parts
            .iter()
            .map(|h| h.sum_nanos.load(Ordering::Relaxed))
            .sum();
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {total}"
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", sum_nanos as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{braces} {total}");
    }
}

/// What the raft core measures (it alone writes these).
#[derive(Debug)]
pub struct RaftMetrics {
    /// One io_uring write + fdatasync of a ready's entries.
    pub wal_fsync: Histogram,
    /// A backend persist, from its start to its collection.
    pub backend_commit: Histogram,
    pub proposals_committed: AtomicU64,
    pub proposals_applied: AtomicU64,
    pub proposals_failed: AtomicU64,
    pub leader_changes: AtomicU64,
}

impl Default for RaftMetrics {
    fn default() -> RaftMetrics {
        RaftMetrics {
            wal_fsync: Histogram::new(&DISK_BUCKETS_SECONDS),
            backend_commit: Histogram::new(&DISK_BUCKETS_SECONDS),
            proposals_committed: AtomicU64::new(0),
            proposals_applied: AtomicU64::new(0),
            proposals_failed: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_in_the_text_format() {
        let one = Histogram::new(&DISK_BUCKETS_SECONDS);
        let two = Histogram::new(&DISK_BUCKETS_SECONDS);
        one.observe(Duration::from_micros(500)); // <= 1 ms
        one.observe(Duration::from_millis(3)); // <= 4 ms
        two.observe(Duration::from_secs(20)); // above every bound
        let mut out = String::new();
        Histogram::write(&mut out, "x", "", &[&one, &two]);
        assert!(out.contains("x_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.002\"} 1\n"));
        assert!(out.contains("x_bucket{le=\"0.004\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"8.192\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count 3\n"));
        assert!(out.contains("x_sum 20.0035\n"), "{out}");
        let mut labelled = String::new();
        Histogram::write(&mut labelled, "y", "m=\"a\"", &[&one]);
        assert!(labelled.contains("y_bucket{m=\"a\",le=\"0.001\"} 1\n"));
        assert!(labelled.contains("y_count{m=\"a\"} 2\n"));
    }
}

//! Latency arithmetic and etcd `benchmark`'s summary format.
//!
//! Latencies go into an HDR histogram (microseconds, 3 significant
//! digits: exact below 2048 us, within 0.1% above), so a run of millions of
//! requests costs a few tens of KiB, and executors merge by adding
//! histograms.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::go_format::format_g;
use crate::sample::{unix_second, SecondPoints};

/// Significant digits the latency histogram keeps.
pub const HISTOGRAM_SIGFIGS: u8 = 3;

/// What a run (or one executor's share of it) measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Successful request latencies, microseconds.
    pub latencies_us: Histogram<u64>,
    /// Error message -> count.
    pub errors: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// CPU time the load generator itself used.
    pub client_cpu: Duration,
    /// `--sample`: results by the second their request started in.
    pub samples: Option<SecondPoints>,
    /// Operations each successful result stands for, for requests/s
    /// (etcd's weighted report: `mvcc put --txn` counts its txn-ops).
    pub ops_per_result: f64,
    /// Results a complete run would have recorded, where that differs from
    /// what was asked for (watch events: puts times watchers).
    pub expected: Option<u64>,
}

impl Default for Report {
    fn default() -> Report {
        Report {
            latencies_us: Histogram::new(HISTOGRAM_SIGFIGS).expect("valid sigfigs"),
            errors: BTreeMap::new(),
            elapsed: Duration::ZERO,
            client_cpu: Duration::ZERO,
            samples: None,
            ops_per_result: 1.0,
            expected: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub count: usize,
    pub requests_per_sec: f64,
    pub slowest_ms: f64,
    pub fastest_ms: f64,
    pub average_ms: f64,
    pub stddev_ms: f64,
    /// (percentile, latency ms) for 10, 25, 50, 75, 90, 95, 99, 99.9.
    pub percentiles_ms: Vec<(f64, f64)>,
}

pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

/// The value at percentile `p` of `histogram`: the smallest recorded value
/// with at least p% of values at or below it (nearest rank), to the
/// histogram's precision.
pub fn percentile(histogram: &Histogram<u64>, p: f64) -> u64 {
    assert!(!histogram.is_empty());
    histogram.value_at_quantile(p / 100.0)
}

impl Report {
    /// An empty report; `sample`: keep the per-second series too.
    pub fn new(sample: bool) -> Report {
        Report {
            samples: sample.then(SecondPoints::default),
            ..Report::default()
        }
    }

    /// Records one successful request that started at `begun` and took
    /// `latency` (`begun` files it in the `--sample` series).
    pub fn record_from(&mut self, begun: Instant, latency: Duration) {
        self.record(latency);
        if let Some(samples) = &mut self.samples {
            samples.add(unix_second(begun), latency);
        }
    }

    /// Records one successful request that started `latency` ago.
    pub fn record_since(&mut self, begun: Instant) {
        self.record_from(begun, begun.elapsed());
    }

    /// Records one successful request (not sampled: see `record_from`).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // Auto-resizing: only a value beyond u64 range could fail.
        if self.latencies_us.record(us).is_err() {
            self.latencies_us.saturating_record(us);
        }
    }

    /// Records one failed request.
    pub fn record_error(&mut self, message: String) {
        *self.errors.entry(message).or_insert(0) += 1;
    }

    /// Successful requests recorded.
    pub fn successes(&self) -> u64 {
        self.latencies_us.len()
    }

    /// Folds another executor's share in (elapsed: the longest).
    pub fn merge(&mut self, other: &Report) {
        self.latencies_us
            .add(&other.latencies_us)
            .expect("auto-resizing histograms add");
        for (message, count) in &other.errors {
            *self.errors.entry(message.clone()).or_insert(0) += count;
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        if let Some(theirs) = &other.samples {
            self.samples
                .get_or_insert_with(SecondPoints::default)
                .merge(theirs);
        }
        self.ops_per_result = other.ops_per_result;
    }

    pub fn stats(&self) -> Option<Stats> {
        let histogram = &self.latencies_us;
        if histogram.is_empty() {
            return None;
        }
        let count = histogram.len() as usize;
        let ms = |us: f64| us / 1000.0;
        Some(Stats {
            count,
            requests_per_sec: count as f64 * self.ops_per_result
                / self.elapsed.as_secs_f64().max(1e-9),
            slowest_ms: ms(histogram.max() as f64),
            fastest_ms: ms(histogram.min() as f64),
            average_ms: ms(histogram.mean()),
            stddev_ms: ms(histogram.stdev()),
            percentiles_ms: PERCENTILES
                .iter()
                .map(|&p| (p, ms(percentile(histogram, p) as f64)))
                .collect(),
        })
    }

    /// etcd benchmark's text summary; `precise`: numbers in full (Go's
    /// `%g`, etcd's `--precise`) instead of four decimals.
    pub fn render_text(&self, precise: bool) -> String {
        let number = |value: f64| {
            if precise {
                format_g(value)
            } else {
                format!("{value:.4}")
            }
        };
        let mut out = String::new();
        let elapsed = self.elapsed.as_secs_f64();
        let Some(stats) = self.stats() else {
            out.push_str("\nSummary:\n  No successful requests.\n");
            self.render_expected(&mut out);
            self.render_errors(&mut out);
            return out;
        };
        out.push_str("\nSummary:\n");
        out.push_str(&format!("  Total:\t{} secs.\n", number(elapsed)));
        let secs = |ms: f64| number(ms / 1000.0);
        // Histogram values are whole microseconds: divide those, so that
        // --precise prints 7.1e-05, not 7.099999999999999e-05.
        let whole_us_secs = |ms: f64| number((ms * 1000.0).round() / 1e6);
        out.push_str(&format!(
            "  Slowest:\t{} secs.\n",
            whole_us_secs(stats.slowest_ms)
        ));
        out.push_str(&format!(
            "  Fastest:\t{} secs.\n",
            whole_us_secs(stats.fastest_ms)
        ));
        out.push_str(&format!("  Average:\t{} secs.\n", secs(stats.average_ms)));
        out.push_str(&format!("  Stddev:\t{} secs.\n", secs(stats.stddev_ms)));
        out.push_str(&format!(
            "  Requests/sec:\t{}\n",
            number(stats.requests_per_sec)
        ));
        self.render_expected(&mut out);
        out.push_str("\nResponse time histogram:\n");
        let buckets = 10;
        let (fastest, slowest) = (stats.fastest_ms, stats.slowest_ms);
        let width = ((slowest - fastest) / buckets as f64).max(1e-9);
        let mut counts = vec![0usize; buckets + 1];
        for bucket in self.latencies_us.iter_recorded() {
            let us = bucket.value_iterated_to();
            let index = (((us as f64 / 1000.0) - fastest) / width) as usize;
            counts[index.min(buckets)] += bucket.count_at_value() as usize;
        }
        let most = *counts.iter().max().unwrap_or(&1);
        for (i, count) in counts.iter().enumerate() {
            let mark = fastest + width * i as f64;
            let bar = "∎".repeat(count * 40 / most.max(1));
            out.push_str(&format!("  {} [{count}]\t|{bar}\n", secs(mark)));
        }
        out.push_str("\nLatency distribution:\n");
        for (p, ms) in &stats.percentiles_ms {
            out.push_str(&format!("  {p}% in {} secs.\n", whole_us_secs(*ms)));
        }
        if let Some(samples) = &self.samples {
            out.push_str(&samples.render_text());
        }
        out.push_str(&format!(
            "\nLoad generator CPU: {:.3} secs.\n",
            self.client_cpu.as_secs_f64()
        ));
        self.render_errors(&mut out);
        out
    }

    fn render_expected(&self, out: &mut String) {
        if let Some(expected) = self.expected {
            out.push_str(&format!(
                "  Delivered:\t{} of {expected} expected.\n",
                self.successes()
            ));
        }
    }

    fn render_errors(&self, out: &mut String) {
        if !self.errors.is_empty() {
            out.push_str("\nError distribution:\n");
            for (message, count) in &self.errors {
                out.push_str(&format!("  [{count}]\t{message}\n"));
            }
        }
    }

    /// The same facts as JSON (no dependency: the shape is small and fixed).
    pub fn render_json(&self) -> String {
        let errors: u64 = self.errors.values().sum();
        let elapsed = self.elapsed.as_secs_f64();
        let client_cpu = self.client_cpu.as_secs_f64();
        let mut extra = String::new();
        if let Some(expected) = self.expected {
            extra.push_str(&format!(",\"expected\":{expected}"));
        }
        if let Some(samples) = &self.samples {
            extra.push_str(&format!(",\"samples\":{}", samples.render_json()));
        }
        match self.stats() {
            None => format!(
                "{{\"total_secs\":{elapsed:.6},\"successes\":0,\"errors\":{errors},\"client_cpu_secs\":{client_cpu:.6}{extra}}}"
            ),
            Some(stats) => {
                let mut percentiles: Vec<String> =
                    stats.percentiles_ms.iter().map(|(p, ms)| format!("\"p{p}\":{ms:.4}")).collect();
                percentiles.push(format!("\"max\":{:.4}", stats.slowest_ms));
                format!(
                    "{{\"total_secs\":{elapsed:.6},\"successes\":{},\"errors\":{errors},\"requests_per_sec\":{:.2},\"slowest_ms\":{:.4},\"fastest_ms\":{:.4},\"average_ms\":{:.4},\"stddev_ms\":{:.4},\"latency_ms\":{{{}}},\"client_cpu_secs\":{client_cpu:.6}{extra}}}",
                    stats.count,
                    stats.requests_per_sec,
                    stats.slowest_ms,
                    stats.fastest_ms,
                    stats.average_ms,
                    stats.stddev_ms,
                    percentiles.join(",")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_of(latencies_us: &[u64], elapsed: Duration) -> Report {
        let mut report = Report {
            elapsed,
            ..Default::default()
        };
        for &us in latencies_us {
            report.record(Duration::from_micros(us));
        }
        report
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let report = report_of(&(1..=100).collect::<Vec<_>>(), Duration::from_secs(1));
        let histogram = &report.latencies_us;
        assert_eq!(percentile(histogram, 50.0), 50);
        assert_eq!(percentile(histogram, 99.0), 99);
        assert_eq!(percentile(histogram, 99.9), 100);
        assert_eq!(percentile(histogram, 10.0), 10);
        assert_eq!(
            percentile(&report_of(&[7], Duration::ZERO).latencies_us, 50.0),
            7
        );
    }

    #[test]
    fn large_latencies_keep_three_digits() {
        let report = report_of(&[123_456, 9_876_543], Duration::from_secs(1));
        let p50 = percentile(&report.latencies_us, 50.0) as f64;
        assert!((p50 - 123_456.0).abs() / 123_456.0 < 0.001, "{p50}");
        let max = report.latencies_us.max() as f64;
        assert!((max - 9_876_543.0).abs() / 9_876_543.0 < 0.001, "{max}");
    }

    #[test]
    fn stats_of_known_latencies() {
        let report = report_of(&[4000, 1000, 3000, 2000], Duration::from_secs(2));
        let stats = report.stats().unwrap();
        assert_eq!(stats.count, 4);
        assert_eq!(stats.requests_per_sec, 2.0);
        // 3 significant digits: each value within 0.1%.
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.001;
        assert!(close(stats.fastest_ms, 1.0), "{stats:?}");
        assert!(close(stats.slowest_ms, 4.0), "{stats:?}");
        assert!(close(stats.average_ms, 2.5), "{stats:?}");
        assert!((stats.stddev_ms - 1.118).abs() < 0.005, "{stats:?}");
        assert_eq!(stats.percentiles_ms[2].0, 50.0);
        assert!(close(stats.percentiles_ms[2].1, 2.0), "{stats:?}");
        assert!(report.render_text(false).contains("Requests/sec:\t2.0000"));
        assert!(report.render_json().contains("\"successes\":4"));
    }

    #[test]
    fn merge_adds_histograms_and_errors() {
        let mut merged = report_of(&[1000, 2000], Duration::from_secs(1));
        let mut other = report_of(&[3000], Duration::from_secs(3));
        other.record_error("grpc-status 14: down".into());
        merged.merge(&other);
        assert_eq!(merged.successes(), 3);
        assert_eq!(merged.elapsed, Duration::from_secs(3));
        assert_eq!(merged.errors["grpc-status 14: down"], 1);
        assert!(merged
            .render_text(false)
            .contains("[1]\tgrpc-status 14: down"));
    }
}

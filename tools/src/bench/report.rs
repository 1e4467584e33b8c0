//! Latency arithmetic and etcd `benchmark`'s summary format.

use std::collections::BTreeMap;
use std::time::Duration;

/// What a run measured.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Successful request latencies, microseconds.
    pub latencies_us: Vec<u64>,
    /// Error message -> count.
    pub errors: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// CPU time the load generator itself used.
    pub client_cpu: Duration,
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

/// The value at percentile `p` of sorted `values`: the smallest value with
/// at least p% of values at or below it (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    assert!(!sorted.is_empty());
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    pub fn stats(&mut self) -> Option<Stats> {
        if self.latencies_us.is_empty() {
            return None;
        }
        self.latencies_us.sort_unstable();
        let values = &self.latencies_us;
        let count = values.len();
        let sum: f64 = values.iter().map(|&v| v as f64).sum();
        let mean = sum / count as f64;
        let variance = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / count as f64;
        let ms = |us: f64| us / 1000.0;
        Some(Stats {
            count,
            requests_per_sec: count as f64 / self.elapsed.as_secs_f64().max(1e-9),
            slowest_ms: ms(*values.last().unwrap() as f64),
            fastest_ms: ms(values[0] as f64),
            average_ms: ms(mean),
            stddev_ms: ms(variance.sqrt()),
            percentiles_ms: PERCENTILES
                .iter()
                .map(|&p| (p, ms(percentile(values, p) as f64)))
                .collect(),
        })
    }

    /// etcd benchmark's text summary.
    pub fn render_text(&mut self) -> String {
        let mut out = String::new();
        let elapsed = self.elapsed.as_secs_f64();
        let Some(stats) = self.stats() else {
            out.push_str("\nSummary:\n  No successful requests.\n");
            self.render_errors(&mut out);
            return out;
        };
        out.push_str("\nSummary:\n");
        out.push_str(&format!("  Total:\t{elapsed:.4} secs.\n"));
        out.push_str(&format!(
            "  Slowest:\t{:.4} secs.\n",
            stats.slowest_ms / 1000.0
        ));
        out.push_str(&format!(
            "  Fastest:\t{:.4} secs.\n",
            stats.fastest_ms / 1000.0
        ));
        out.push_str(&format!(
            "  Average:\t{:.4} secs.\n",
            stats.average_ms / 1000.0
        ));
        out.push_str(&format!(
            "  Stddev:\t{:.4} secs.\n",
            stats.stddev_ms / 1000.0
        ));
        out.push_str(&format!("  Requests/sec:\t{:.4}\n", stats.requests_per_sec));
        out.push_str("\nResponse time histogram:\n");
        let buckets = 10;
        let (fastest, slowest) = (stats.fastest_ms, stats.slowest_ms);
        let width = ((slowest - fastest) / buckets as f64).max(1e-9);
        let mut counts = vec![0usize; buckets + 1];
        for &us in &self.latencies_us {
            let index = (((us as f64 / 1000.0) - fastest) / width) as usize;
            counts[index.min(buckets)] += 1;
        }
        let most = *counts.iter().max().unwrap_or(&1);
        for (i, count) in counts.iter().enumerate() {
            let mark = fastest + width * i as f64;
            let bar = "∎".repeat(count * 40 / most.max(1));
            out.push_str(&format!("  {:.4} [{count}]\t|{bar}\n", mark / 1000.0));
        }
        out.push_str("\nLatency distribution:\n");
        for (p, ms) in &stats.percentiles_ms {
            out.push_str(&format!("  {p}% in {:.4} secs.\n", ms / 1000.0));
        }
        out.push_str(&format!(
            "\nLoad generator CPU: {:.3} secs.\n",
            self.client_cpu.as_secs_f64()
        ));
        self.render_errors(&mut out);
        out
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
    pub fn render_json(&mut self) -> String {
        let errors: u64 = self.errors.values().sum();
        let elapsed = self.elapsed.as_secs_f64();
        let client_cpu = self.client_cpu.as_secs_f64();
        match self.stats() {
            None => format!(
                "{{\"total_secs\":{elapsed:.6},\"successes\":0,\"errors\":{errors},\"client_cpu_secs\":{client_cpu:.6}}}"
            ),
            Some(stats) => {
                let percentiles: Vec<String> =
                    stats.percentiles_ms.iter().map(|(p, ms)| format!("\"p{p}\":{ms:.4}")).collect();
                format!(
                    "{{\"total_secs\":{elapsed:.6},\"successes\":{},\"errors\":{errors},\"requests_per_sec\":{:.2},\"slowest_ms\":{:.4},\"fastest_ms\":{:.4},\"average_ms\":{:.4},\"stddev_ms\":{:.4},\"latency_ms\":{{{}}},\"client_cpu_secs\":{client_cpu:.6}}}",
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

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 99.9), 100);
        assert_eq!(percentile(&values, 10.0), 10);
        assert_eq!(percentile(&[7], 50.0), 7);
    }

    #[test]
    fn stats_of_known_latencies() {
        let mut report = Report {
            latencies_us: vec![4000, 1000, 3000, 2000],
            elapsed: Duration::from_secs(2),
            ..Default::default()
        };
        let stats = report.stats().unwrap();
        assert_eq!(stats.count, 4);
        assert_eq!(stats.requests_per_sec, 2.0);
        assert_eq!(
            (stats.fastest_ms, stats.slowest_ms, stats.average_ms),
            (1.0, 4.0, 2.5)
        );
        assert!((stats.stddev_ms - 1.118).abs() < 0.001);
        assert_eq!(stats.percentiles_ms[2], (50.0, 2.0));
        assert!(report.render_text().contains("Requests/sec:\t2.0000"));
        assert!(report.render_json().contains("\"successes\":4"));
    }
}

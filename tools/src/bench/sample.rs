//! `--sample`: etcd's per-second time series of results. Each successful
//! result is filed under the Unix second its request started in; the
//! series has one row per second from the first to the last, the seconds
//! without results filled in with zeros, printed after the summary as
//! etcd's CSV block:
//!
//! ```text
//! Sample in one second (unix latency throughput):
//! UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT
//! 1700000000,512µs,1.2ms,9.8ms,4096
//! ```
//!
//! (The latency columns carry Go duration text despite their `-MS` names,
//! as etcd prints them.)

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::go_format::format_duration;

/// Seconds a series may span; results past it are dropped (a run of
/// longer than a day is not what `--sample` is for).
pub const SAMPLE_SECONDS_MAX: i64 = 86_400;

/// One second of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecondPoint {
    pub latency_min: Duration,
    pub latency_max: Duration,
    pub latency_total: Duration,
    pub count: u64,
}

/// Results by Unix second.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecondPoints {
    points: BTreeMap<i64, SecondPoint>,
}

/// One row of the printed series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPoint {
    pub unix_second: i64,
    pub latency_min: Duration,
    pub latency_avg: Duration,
    pub latency_max: Duration,
    pub throughput: u64,
}

impl SecondPoints {
    /// Files one result that started at `unix_second` and took `latency`.
    /// As etcd: a zero latency does not lower a second's minimum unless it
    /// is that second's first result.
    pub fn add(&mut self, unix_second: i64, latency: Duration) {
        if let Some((&first, _)) = self.points.first_key_value() {
            if (unix_second - first).abs() > SAMPLE_SECONDS_MAX {
                return;
            }
        }
        match self.points.get_mut(&unix_second) {
            None => {
                self.points.insert(
                    unix_second,
                    SecondPoint {
                        latency_min: latency,
                        latency_max: latency,
                        latency_total: latency,
                        count: 1,
                    },
                );
            }
            Some(point) => {
                if !latency.is_zero() {
                    point.latency_min = point.latency_min.min(latency);
                }
                point.latency_max = point.latency_max.max(latency);
                point.latency_total += latency;
                point.count += 1;
            }
        }
    }

    /// Folds another executor's points in.
    pub fn merge(&mut self, other: &SecondPoints) {
        for (&second, theirs) in &other.points {
            let point = self.points.entry(second).or_insert(SecondPoint {
                latency_min: theirs.latency_min,
                ..SecondPoint::default()
            });
            point.latency_min = point.latency_min.min(theirs.latency_min);
            point.latency_max = point.latency_max.max(theirs.latency_max);
            point.latency_total += theirs.latency_total;
            point.count += theirs.count;
        }
    }

    /// The series: every second from the first to the last, in order.
    pub fn series(&self) -> Vec<DataPoint> {
        let (Some((&first, _)), Some((&last, _))) =
            (self.points.first_key_value(), self.points.last_key_value())
        else {
            return Vec::new();
        };
        (first..=last)
            .map(|second| {
                let point = self.points.get(&second).copied().unwrap_or_default();
                let latency_avg = match point.count {
                    0 => Duration::ZERO,
                    count => {
                        let ns = point.latency_total.as_nanos() / u128::from(count);
                        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
                    }
                };
                DataPoint {
                    unix_second: second,
                    latency_min: point.latency_min,
                    latency_avg,
                    latency_max: point.latency_max,
                    throughput: point.count,
                }
            })
            .collect()
    }

    /// etcd's text block (starting with a blank line).
    pub fn render_text(&self) -> String {
        let mut out = String::from(
            "\nSample in one second (unix latency throughput):\n\
             UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT\n",
        );
        for point in self.series() {
            out.push_str(&format!(
                "{},{},{},{},{}\n",
                point.unix_second,
                format_duration(point.latency_min),
                format_duration(point.latency_avg),
                format_duration(point.latency_max),
                point.throughput
            ));
        }
        out
    }

    /// The series as a JSON array.
    pub fn render_json(&self) -> String {
        let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
        let rows: Vec<String> = self
            .series()
            .iter()
            .map(|point| {
                format!(
                    "{{\"unix_second\":{},\"min_ms\":{:.4},\"avg_ms\":{:.4},\"max_ms\":{:.4},\"throughput\":{}}}",
                    point.unix_second,
                    ms(point.latency_min),
                    ms(point.latency_avg),
                    ms(point.latency_max),
                    point.throughput
                )
            })
            .collect();
        format!("[{}]", rows.join(","))
    }
}

/// The process's clock origin: an `Instant` and the wall time it was taken
/// at, so any `Instant` converts to a Unix second without another clock
/// read.
fn origin() -> &'static (Instant, SystemTime) {
    static ORIGIN: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    ORIGIN.get_or_init(|| (Instant::now(), SystemTime::now()))
}

/// The Unix second `instant` falls in.
pub fn unix_second(instant: Instant) -> i64 {
    let (origin_instant, origin_wall) = origin();
    let wall = match instant.checked_duration_since(*origin_instant) {
        Some(after) => *origin_wall + after,
        None => *origin_wall - origin_instant.duration_since(instant),
    };
    match wall.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX) - 1,
    }
}

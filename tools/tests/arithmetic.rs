//! Guards keel-bench's arithmetic: etcd's per-second `--sample` series
//! (filing, gaps, averages, Go duration text), `--precise` numbers, the
//! put-to-event latency join (early events count as 0, late puts settle at
//! the end), `watch`'s expected events, compaction targets and leader
//! choice, and how several reports render.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keel_tools::args::parse;
use keel_tools::compact::compact_target;
use keel_tools::event_latency::{EventLatencies, PutEnds};
use keel_tools::report::Report;
use keel_tools::run::{render_json, render_text};
use keel_tools::sample::{unix_second, DataPoint, SecondPoints};
use keel_tools::session::leader_of;
use keel_tools::watch_bench::WatchPlan;

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[test]
fn sample_series_files_by_second_and_fills_gaps() {
    let mut points = SecondPoints::default();
    points.add(100, ms(4));
    points.add(100, ms(2));
    points.add(100, ms(6));
    points.add(103, ms(1));
    let series = points.series();
    assert_eq!(series.len(), 4, "{series:?}");
    assert_eq!(
        series[0],
        DataPoint {
            unix_second: 100,
            latency_min: ms(2),
            latency_avg: ms(4),
            latency_max: ms(6),
            throughput: 3
        }
    );
    // Seconds without results are zeros, as etcd fills them.
    for empty in &series[1..3] {
        assert_eq!(empty.throughput, 0);
        assert_eq!(empty.latency_avg, Duration::ZERO);
    }
    assert_eq!(series[3].unix_second, 103);
    let text = points.render_text();
    assert!(text.starts_with(
        "\nSample in one second (unix latency throughput):\n\
         UNIX-SECOND,MIN-LATENCY-MS,AVG-LATENCY-MS,MAX-LATENCY-MS,AVG-THROUGHPUT\n\
         100,2ms,4ms,6ms,3\n101,0s,0s,0s,0\n"
    ));
    assert!(points
        .render_json()
        .starts_with("[{\"unix_second\":100,\"min_ms\":2.0000"));
}

#[test]
fn sample_minimum_ignores_later_zero_latencies_as_etcd() {
    let mut points = SecondPoints::default();
    points.add(7, ms(3));
    points.add(7, Duration::ZERO);
    assert_eq!(points.series()[0].latency_min, ms(3));
    let mut first_zero = SecondPoints::default();
    first_zero.add(7, Duration::ZERO);
    first_zero.add(7, ms(3));
    assert_eq!(first_zero.series()[0].latency_min, Duration::ZERO);
}

#[test]
fn sample_series_merge_across_executors() {
    let mut one = SecondPoints::default();
    one.add(50, ms(5));
    let mut other = SecondPoints::default();
    other.add(50, ms(1));
    other.add(51, ms(9));
    one.merge(&other);
    let series = one.series();
    assert_eq!(
        (series[0].latency_min, series[0].latency_max),
        (ms(1), ms(5))
    );
    assert_eq!((series[0].throughput, series[0].latency_avg), (2, ms(3)));
    assert_eq!(series[1].throughput, 1);
}

#[test]
fn sampled_reports_print_the_series_after_the_distribution() {
    let mut report = Report::new(true);
    let begun = Instant::now();
    report.record_from(begun, ms(2));
    report.elapsed = Duration::from_secs(1);
    let text = report.render_text(false);
    let distribution = text.find("Latency distribution").unwrap();
    let sample = text.find("Sample in one second").unwrap();
    assert!(distribution < sample, "{text}");
    assert!(
        text.contains(&format!("\n{},2ms,2ms,2ms,1\n", unix_second(begun))),
        "{text}"
    );
    assert!(report
        .render_json()
        .contains("\"samples\":[{\"unix_second\""));
    assert!(!Report::new(false).render_json().contains("samples"));
}

#[test]
fn unix_seconds_follow_the_wall_clock() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let second = unix_second(Instant::now());
    assert!((second - now).abs() <= 1, "{second} vs {now}");
    assert_eq!(
        unix_second(Instant::now() + Duration::from_secs(10)) - second,
        10
    );
}

#[test]
fn precise_prints_numbers_in_full() {
    let mut report = Report::default();
    report.record(Duration::from_micros(1234));
    report.elapsed = ms(1500);
    let plain = report.render_text(false);
    assert!(plain.contains("Total:\t1.5000 secs."), "{plain}");
    assert!(plain.contains("Slowest:\t0.0012 secs."), "{plain}");
    let precise = report.render_text(true);
    assert!(precise.contains("Total:\t1.5 secs."), "{precise}");
    assert!(precise.contains("Slowest:\t0.001234 secs."), "{precise}");
}

#[test]
fn event_latency_is_event_minus_put_end() {
    let ends = PutEnds::new(3);
    let mut latencies = EventLatencies::new(false);
    ends.mark(0);
    let put0_ns = ends.get(0).unwrap();
    latencies.record(&ends, 0, put0_ns + 1_000_000);
    // Put 1 has not ended when its event comes: the event beat the put's
    // response, which counts as 0, as etcd.
    latencies.record(&ends, 1, ends.now_ns());
    std::thread::sleep(ms(2));
    ends.mark(1);
    // An event stamped before a put's end (arrived, then looked at after
    // the mark) also counts as 0.
    latencies.record(&ends, 1, ends.get(1).unwrap() - 500_000);
    // A slot past the puts is an error.
    latencies.record(&ends, 9, ends.now_ns());
    let report = latencies.finish(&ends);
    assert_eq!(report.successes(), 3);
    assert_eq!(report.latencies_us.min(), 0);
    assert_eq!(report.latencies_us.max(), 1000);
    assert_eq!(report.errors.values().sum::<u64>(), 1);
}

#[test]
fn watch_plan_counts_events_per_watcher() {
    // 2 streams x 3 watchers over 2 sequential keys; 5 puts: key 0 gets
    // puts 0, 2, 4 and key 1 gets 1, 3.
    let command = parse(
        "watch --streams 2 --watch-per-stream 3 --watched-key-total 2 --put-total 5 --key-space-size 10 --sequential-keys"
            .split_whitespace()
            .map(str::to_string),
    )
    .unwrap()
    .command;
    let plan = WatchPlan::new(&command);
    assert_eq!(plan.keys.len(), 2);
    assert_ne!(plan.keys[0], plan.keys[1]);
    assert_eq!(plan.events_of_watcher(0), 3);
    assert_eq!(plan.events_of_watcher(1), 2);
    assert_eq!(plan.events_total, 3 * 3 + 3 * 2);
    // One key space slot: every key is the same key, as etcd's random keys
    // may be; each watcher sees every put.
    let same = parse(
        "watch --streams 1 --watch-per-stream 4 --watched-key-total 3 --put-total 6"
            .split_whitespace()
            .map(str::to_string),
    )
    .unwrap()
    .command;
    assert_eq!(WatchPlan::new(&same).events_total, 4 * 6);
}

#[test]
fn compaction_targets_trail_the_revision() {
    assert_eq!(compact_target(10_000, 1000, 0), Some(9000));
    assert_eq!(compact_target(500, 1000, 0), None);
    assert_eq!(compact_target(1000, 1000, 0), None);
    assert_eq!(compact_target(9000, 1000, 8000), None);
    assert_eq!(compact_target(9001, 1000, 8000), Some(8001));
}

#[test]
fn leader_is_the_member_the_endpoints_name() {
    let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
    assert_eq!(leader_of(&[(a, 11, 22), (b, 22, 22)]), Some(b));
    assert_eq!(leader_of(&[(a, 11, 11)]), Some(a));
    // The leader is not among the endpoints, or there is none.
    assert_eq!(leader_of(&[(a, 11, 33)]), None);
    assert_eq!(leader_of(&[(a, 11, 0)]), None);
}

#[test]
fn several_reports_render_with_titles() {
    let names = [("read", "Read summary"), ("write", "Write summary")];
    let mut read = Report::default();
    read.record(ms(1));
    let reports = [read, Report::default()];
    let text = render_text(&names, &reports, false);
    assert!(text.contains("Read summary:\n  Total:"), "{text}");
    assert!(text.contains("Write summary:\n  No successful"), "{text}");
    let json = render_json(&names, &reports);
    assert!(json.starts_with("{\"read\":{"), "{json}");
    assert!(json.contains("\"write\":{\"total_secs\""), "{json}");
    // A single titled report keeps its title (watch-get).
    let single = render_text(&[("", "Get during watch summary")], &reports[..1], false);
    assert!(
        single.starts_with("\nGet during watch summary:\n  Total:"),
        "{single}"
    );
    let untitled = render_text(&[("", "Summary")], &reports[..1], false);
    assert!(untitled.starts_with("\nSummary:\n"), "{untitled}");
}

#[test]
fn watch_reports_say_delivered_of_expected() {
    let mut report = Report::default();
    report.record(ms(1));
    report.expected = Some(4);
    assert!(report
        .render_text(false)
        .contains("Delivered:\t1 of 4 expected."));
    let json = report.render_json();
    assert!(json.contains("\"expected\":4"), "{json}");
    assert!(json.contains("\"max\":1.0000"), "{json}");
}

//! Guards keel-bench's watch commands and session flags end to end against
//! a started keel (skipped, loudly, without a keel binary): watch-latency
//! with 200 watchers delivers every event and reports its percentiles as
//! JSON; `watch` and `watch-get` complete; `--target-leader` finds the one
//! member; `--user` fails with keel's own error; `--sample` prints the
//! per-second series.

mod support;

use support::{bench, json_number, start_keel};

#[test]
fn watch_latency_delivers_every_event_with_json_percentiles() {
    let Some(keel) = start_keel("watch-latency") else {
        return;
    };
    let (ok, stdout, stderr) = bench(&[
        "--endpoints",
        &keel.endpoint,
        "--conns",
        "4",
        "--clients",
        "4",
        "--json",
        "watch-latency",
        "--streams",
        "20",
        "--watchers-per-stream",
        "10",
        "--put-total",
        "30",
        "--put-rate",
        "100",
    ]);
    assert!(ok, "keel-bench failed: {stdout}{stderr}");
    assert_eq!(json_number(&stdout, "\"put\"", "successes"), 30.0);
    assert_eq!(json_number(&stdout, "\"watch\"", "successes"), 30.0 * 200.0);
    assert_eq!(json_number(&stdout, "\"watch\"", "expected"), 30.0 * 200.0);
    assert_eq!(json_number(&stdout, "\"watch\"", "errors"), 0.0);
    let p50 = json_number(&stdout, "\"watch\"", "p50");
    let p999 = json_number(&stdout, "\"watch\"", "p99.9");
    let max = json_number(&stdout, "\"watch\"", "max");
    assert!(p50 <= p999 && p999 <= max, "{stdout}");
    assert!(max < 5000.0, "an event took {max} ms: {stdout}");
}

#[test]
fn watch_and_watch_get_complete() {
    let Some(keel) = start_keel("watch") else {
        return;
    };
    let (ok, stdout, stderr) = bench(&[
        "--endpoints",
        &keel.endpoint,
        "--conns",
        "2",
        "--clients",
        "4",
        "--json",
        "watch",
        "--streams",
        "4",
        "--watch-per-stream",
        "5",
        "--watched-key-total",
        "2",
        "--put-total",
        "40",
        "--key-space-size",
        "10",
        "--sequential-keys",
    ]);
    assert!(ok, "watch failed: {stdout}{stderr}");
    assert_eq!(json_number(&stdout, "\"create\"", "successes"), 20.0);
    // Each key gets 20 puts and has 10 watchers.
    assert_eq!(json_number(&stdout, "\"events\"", "successes"), 400.0);
    assert_eq!(json_number(&stdout, "\"events\"", "expected"), 400.0);
    let (ok, stdout, stderr) = bench(&[
        "--endpoints",
        &keel.endpoint,
        "--conns",
        "2",
        "--clients",
        "2",
        "watch-get",
        "--watchers",
        "100",
        "--streams",
        "3",
        "--events",
        "4",
    ]);
    assert!(ok, "watch-get failed: {stdout}{stderr}");
    assert!(
        stdout.starts_with("\nGet during watch summary:\n"),
        "{stdout}"
    );
}

#[test]
fn session_flags_against_keel() {
    let Some(keel) = start_keel("session") else {
        return;
    };
    let (ok, stdout, stderr) = bench(&[
        "--endpoints",
        &keel.endpoint,
        "--target-leader",
        "--sample",
        "put",
        "--total",
        "50",
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("UNIX-SECOND,MIN-LATENCY-MS"), "{stdout}");
    // keel has no auth: Authenticate fails with keel's error text.
    let (ok, _, stderr) = bench(&["--endpoints", &keel.endpoint, "--user", "root:pw", "put"]);
    assert!(!ok);
    assert!(
        stderr.contains("authentication as \"root\" failed: grpc-status"),
        "{stderr}"
    );
}

//! Guards keel-bench's failure paths: an unreachable endpoint and an
//! unknown flag fail fast, with a message and a non-zero exit, no hang.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

fn bench(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_keel-bench"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn unreachable_endpoint_fails_fast() {
    // Bound then dropped: nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let (ok, stderr) = bench(&[
        "--endpoints",
        &format!("127.0.0.1:{port}"),
        "put",
        "--total",
        "10",
    ]);
    assert!(!ok);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn unknown_flag_is_refused() {
    let (ok, stderr) = bench(&["--nope", "put"]);
    assert!(!ok);
    assert!(stderr.contains("unknown flag: --nope"), "{stderr}");
}

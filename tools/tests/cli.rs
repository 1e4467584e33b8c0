//! Guards keel-bench's failure paths: an unreachable endpoint, a listener
//! that never speaks HTTP/2 (`--dial-timeout`), unreadable TLS files, a
//! plaintext listener dialled with TLS, and an unknown flag fail fast,
//! with a message and a non-zero exit, no hang.

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

#[test]
fn silent_listener_fails_within_the_dial_timeout() {
    // Listening (the kernel completes TCP handshakes) but never answering.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    let started = Instant::now();
    let (ok, stderr) = bench(&[
        "--endpoints",
        &endpoint,
        "--dial-timeout",
        "1s",
        "put",
        "--total",
        "10",
    ]);
    assert!(!ok);
    assert!(stderr.contains("dial timeout"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

#[test]
fn unreadable_tls_files_fail_clearly() {
    let (ok, stderr) = bench(&["--cacert", "/nonexistent/ca.pem", "put", "--total", "1"]);
    assert!(!ok);
    assert!(stderr.contains("--cacert /nonexistent/ca.pem"), "{stderr}");
    let (ok, stderr) = bench(&["--cert", "c.pem", "put", "--total", "1"]);
    assert!(!ok);
    assert!(stderr.contains("--cert and --key go together"), "{stderr}");
}

#[test]
fn tls_to_a_plaintext_listener_fails_within_the_dial_timeout() {
    // Answers the ClientHello with bytes that are not TLS, then closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut socket, _) = listener.accept().unwrap();
        let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    let started = Instant::now();
    let (ok, stderr) = bench(&[
        "--endpoints",
        &endpoint,
        "--insecure-skip-tls-verify",
        "--dial-timeout",
        "5s",
        "put",
        "--total",
        "1",
    ]);
    assert!(!ok);
    assert!(stderr.contains("TLS handshake with https://"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    server.join().unwrap();
}

#[test]
fn mvcc_put_and_range_run_in_process() {
    for args in [
        &[
            "--json",
            "mvcc",
            "put",
            "--total",
            "300",
            "--key-size",
            "16",
        ][..],
        &[
            "--json",
            "mvcc",
            "put",
            "--total",
            "50",
            "--txn",
            "--txn-ops",
            "4",
        ][..],
        &[
            "--json",
            "mvcc",
            "range",
            "--total",
            "200",
            "--key-space-size",
            "500",
        ][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_keel-bench"))
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}: {stdout}");
        let total = args[args.iter().position(|a| *a == "--total").unwrap() + 1];
        assert!(
            stdout.contains(&format!("\"successes\":{total},\"errors\":0")),
            "{args:?}: {stdout}"
        );
    }
}

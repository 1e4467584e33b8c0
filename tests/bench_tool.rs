//! Guards keel-bench end to end against a started keel: `put --total 1000`
//! reports 1000 successes and the server then holds exactly the keys it
//! wrote; the text summary has etcd benchmark's sections. (keel-bench's own
//! failure paths are tested in tools/tests/cli.rs, whose presence also makes
//! `cargo test --workspace` build keel-bench.)

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{client, runtime, Keel};
use etcd_client::GetOptions;

/// keel-bench, built beside the server by `cargo test --workspace`.
fn keel_bench() -> PathBuf {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_keel")).with_file_name("keel-bench");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo test --workspace`",
        binary.display()
    );
    binary
}

fn bench(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(keel_bench()).args(args).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

fn json_number(json: &str, field: &str) -> f64 {
    let key = format!("\"{field}\":");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("{field} missing in {json}"));
    let rest = &json[at + key.len()..];
    rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
}

#[test]
fn put_total_1000_lands_1000_keys() {
    let keel = Keel::start("bench-put");
    let endpoint = format!("127.0.0.1:{}", keel.port);
    let (ok, stdout, stderr) = bench(&[
        "--endpoints",
        &endpoint,
        "--conns",
        "4",
        "--clients",
        "16",
        "--json",
        "put",
        "--total",
        "1000",
        "--key-size",
        "8",
        "--val-size",
        "64",
        "--sequential-keys",
        "--key-space-size",
        "1000",
    ]);
    assert!(ok, "keel-bench failed: {stdout}{stderr}");
    assert_eq!(json_number(&stdout, "successes"), 1000.0);
    assert_eq!(json_number(&stdout, "errors"), 0.0);
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let all = client
            .get(
                "",
                Some(GetOptions::new().with_all_keys().with_count_only()),
            )
            .await
            .unwrap();
        assert_eq!(all.count(), 1000, "one key per sequential put");
        assert_eq!(
            all.header().unwrap().revision(),
            1001,
            "one revision per put"
        );
    });

    let (ok, stdout, _) = bench(&[
        "--endpoints",
        &endpoint,
        "range",
        "k",
        "--total",
        "200",
        "--consistency",
        "s",
    ]);
    assert!(ok);
    for part in [
        "Summary:",
        "Requests/sec:",
        "Response time histogram:",
        "Latency distribution:",
        "99.9% in",
    ] {
        assert!(stdout.contains(part), "{part} missing in {stdout}");
    }
}

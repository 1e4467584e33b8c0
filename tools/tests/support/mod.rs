//! The one way keel-tools' tests start a server: the `keel` binary built
//! beside keel-bench (`cargo test --workspace` or `cargo build --bin keel`
//! with the same target dir), or the one `KEEL_BIN` names, on a free
//! loopback port with a fresh data dir. The tools crate cannot depend on
//! the `keel` binary, so a test without one skips, loudly.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long keel may take to say it is ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running keel, killed when dropped.
pub struct Keel {
    child: Child,
    pub endpoint: String,
    data_dir: PathBuf,
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The keel binary: `KEEL_BIN`, else `keel` beside keel-bench.
pub fn keel_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KEEL_BIN") {
        return Some(PathBuf::from(path));
    }
    let beside = PathBuf::from(env!("CARGO_BIN_EXE_keel-bench")).with_file_name("keel");
    beside.is_file().then_some(beside)
}

/// Starts keel, or prints why not and returns None (the caller returns:
/// the test is skipped).
pub fn start_keel(label: &str) -> Option<Keel> {
    let Some(binary) = keel_binary() else {
        eprintln!(
            "\n==========================================================\n\
             SKIPPED: no keel binary beside keel-bench and no KEEL_BIN.\n\
             Build one (`cargo build --bin keel` with this target dir, or\n\
             `cargo test --workspace`) to run this test.\n\
             =========================================================="
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data_dir =
        std::env::temp_dir().join(format!("keel-tools-{label}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let endpoint = format!("127.0.0.1:{port}");
    let mut child = Command::new(&binary)
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen-client-urls")
        .arg(format!("http://{endpoint}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
    let stderr = child.stderr.take().expect("stderr piped");
    let (ready_tx, ready_rx) = mpsc::channel();
    // Keeps draining stderr so keel never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("ready to serve client requests") {
                let _ = ready_tx.send(());
            }
        }
    });
    let keel = Keel {
        child,
        endpoint,
        data_dir,
    };
    ready_rx
        .recv_timeout(START_TIMEOUT)
        .unwrap_or_else(|_| panic!("keel did not become ready within {START_TIMEOUT:?}"));
    Some(keel)
}

/// Runs keel-bench with `args`: (success, stdout, stderr).
pub fn bench(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_keel-bench"))
        .args(args)
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).to_string();
    (
        output.status.success(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// The number after `"field":` in `json` (the first occurrence from `from`).
pub fn json_number(json: &str, from: &str, field: &str) -> f64 {
    let start = json
        .find(from)
        .unwrap_or_else(|| panic!("{from} missing in {json}"));
    let json = &json[start..];
    let key = format!("\"{field}\":");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("{field} missing in {json}"));
    let rest = &json[at + key.len()..];
    rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
}

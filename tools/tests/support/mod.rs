//! The one way keel-tools' tests start a server: the `keel` binary built
//! beside keel-bench (`cargo test --workspace` or `cargo build --bin keel`
//! with the same target dir), or the one `KEEL_BIN` names, on a free
//! loopback port with a fresh data dir; or Debian's `etcd` serving TLS
//! (`tools/install-etcd.sh server`). The tools crate cannot depend on the
//! `keel` binary, so a test without one (or without etcd) skips, loudly.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The loud banner of a test that did not run.
fn skipped(why: &str) {
    eprintln!(
        "\n==========================================================\n\
         SKIPPED: {why}\n\
         This test did not run.\n\
         =========================================================="
    );
}

/// A running etcd, killed (by its PID: it is our child) when dropped.
pub struct Etcd {
    child: Child,
    pub port: u16,
    data_dir: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The files an etcd serving TLS reads.
pub struct EtcdTls<'a> {
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
    /// With `--client-cert-auth`: clients must present a certificate this
    /// CA signed.
    pub trusted_ca_file: &'a Path,
}

/// Debian's etcd, installed if it can be (tools/install-etcd.sh server).
pub fn etcd_binary() -> Option<PathBuf> {
    let which = || {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file())
    };
    if let Some(path) = which() {
        return Some(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install-etcd.sh");
    let installed = Command::new("bash")
        .arg(&script)
        .arg("server")
        .status()
        .is_ok_and(|status| status.success());
    installed.then(which).flatten()
}

/// Starts etcd serving TLS on a free loopback port (client URL https://,
/// `--client-cert-auth`), or prints why not and returns None.
pub fn start_etcd_tls(label: &str, tls: &EtcdTls<'_>) -> Option<Etcd> {
    let Some(binary) = etcd_binary() else {
        skipped(
            "`etcd` is not available and could not be installed (tools/install-etcd.sh server).",
        );
        return None;
    };
    let (port, peer_port) = (free_port(), free_port());
    let data_dir = std::env::temp_dir().join(format!(
        "keel-tools-etcd-{label}-{}-{port}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&data_dir);
    let client_url = format!("https://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut child = Command::new(&binary)
        .args(["--name", "default", "--data-dir"])
        .arg(&data_dir)
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .arg("--cert-file")
        .arg(tls.cert_file)
        .arg("--key-file")
        .arg(tls.key_file)
        .arg("--trusted-ca-file")
        .arg(tls.trusted_ca_file)
        .arg("--client-cert-auth")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
    let stderr = child.stderr.take().expect("stderr piped");
    let (line_tx, line_rx) = mpsc::channel();
    // Keeps draining stderr so etcd never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let etcd = Etcd {
        child,
        port,
        data_dir,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    let mut log = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match line_rx.recv_timeout(left) {
            Ok(line) if line.contains("ready to serve client requests") => return Some(etcd),
            Ok(line) => log.push(line),
            Err(_) => panic!(
                "etcd did not become ready within {START_TIMEOUT:?}; its stderr:\n{}",
                log.join("\n")
            ),
        }
    }
}

/// Runs keel-bench with `args`, killed if it runs past `limit`:
/// (success, stdout, stderr).
pub fn bench_within(args: &[&str], limit: Duration) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel-bench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr piped")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keel-bench {args:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.success(),
        stdout.join().unwrap(),
        stderr.join().unwrap(),
    )
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

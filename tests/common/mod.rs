//! The one way tests start real processes: the `keel` binary (and, where a
//! test compares, Debian's etcd) on loopback with a fresh data dir.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to say it is ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free loopback port (bound then released; racing tests pick different ones).
pub fn free_port() -> u16 {
    // Never the same port twice in one test process: the OS may hand a
    // port just released to two tests running at once, and keel binds its
    // client port with SO_REUSEPORT (one socket per shard core), so both
    // servers would bind it and share its connections (seen once in CI:
    // the online-defrag test's puts reached the 400 kB quota test's
    // server and failed with NOSPACE).
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// A fresh directory under cargo's per-target temporary dir, removed with
/// everything in it when dropped (also when the test panics), so a test
/// run leaves no data dirs behind: a server's data dir preallocates a
/// 64 MiB WAL segment, and hundreds of leftovers once filled a CI disk.
/// Set `KEEL_KEEP_TEST_DIRS=1` to keep them for a post-mortem.
pub struct ScratchDir(PathBuf);

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEL_KEEP_TEST_DIRS").is_some() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn scratch_dir(label: &str) -> ScratchDir {
    let base = option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("{label}-{}-{}", std::process::id(), free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    ScratchDir(dir)
}

/// A running `keel` member. Killed (SIGKILL) when dropped; a data dir it
/// made itself is removed after the kill.
pub struct Keel {
    pub child: Child,
    pub port: u16,
    pub data_dir: PathBuf,
    pub extra_args: Vec<String>,
    scratch: Option<ScratchDir>,
}

impl Keel {
    /// Starts keel on a free port with a fresh data dir.
    pub fn start(label: &str) -> Keel {
        Keel::start_args(label, free_port(), &[])
    }

    /// Starts keel with a fresh data dir that lives as long as the member.
    pub fn start_args(label: &str, port: u16, extra_args: &[&str]) -> Keel {
        let scratch = scratch_dir(label);
        let mut keel = Keel::start_with(&scratch.join("data.keel"), port, extra_args);
        keel.scratch = Some(scratch);
        keel
    }

    pub fn start_with(data_dir: &Path, port: u16, extra_args: &[&str]) -> Keel {
        Keel::start_with_env(data_dir, port, extra_args, &[])
    }

    /// As `start_with`, with extra environment variables (e.g. `ETCD_*`).
    pub fn start_with_env(
        data_dir: &Path,
        port: u16,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Keel {
        let url = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_keel"));
        command
            .envs(env.iter().copied())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen-client-urls")
            .arg(&url)
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn keel");
        wait_ready(&mut child, "ready to serve client requests");
        Keel {
            child,
            port,
            data_dir: data_dir.to_path_buf(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            scratch: None,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills and starts again on the same data dir and port.
    pub fn restart(mut self) -> Keel {
        self.kill9();
        let extra: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        let mut next = Keel::start_with(&self.data_dir.clone(), self.port, &extra);
        next.scratch = self.scratch.take();
        next
    }

    /// Peak resident set size so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.pid())
    }
}

impl Drop for Keel {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the child's stderr has a line containing `marker`; keeps
/// draining stderr afterwards so the child never blocks on a full pipe.
fn wait_ready(child: &mut Child, marker: &'static str) {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("KEEL_TEST_VERBOSE").is_some() {
                eprintln!("[server] {line}");
            }
            if !seen && line.contains(marker) {
                seen = true;
                let _ = tx.send(Ok(()));
            } else if !seen {
                let _ = tx.send(Err(line));
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut log = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(())) => return,
            Ok(Err(line)) => log.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not become ready within {START_TIMEOUT:?}; its stderr:\n{}",
                    log.join("\n")
                );
            }
        }
    }
}

/// A tokio runtime for the test's client (the client side only; the server
/// runs no tokio).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub async fn client(endpoint: &str) -> etcd_client::Client {
    etcd_client::Client::connect([endpoint], None)
        .await
        .expect("connect to keel")
}

/// Runs a project script that installs Debian packages, returning whether
/// the named binary is available afterwards. Prints loudly when it is not.
pub fn ensure_debian_tool(binary: &str, install_script_arg: &str) -> Option<PathBuf> {
    if let Some(path) = which(binary) {
        return Some(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/install-etcd.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(install_script_arg)
        .status();
    match (status, which(binary)) {
        (Ok(status), Some(path)) if status.success() => Some(path),
        _ => {
            eprintln!(
                "\n==========================================================\n\
                 SKIPPED: `{binary}` is not available and could not be installed\n\
                 (tools/install-etcd.sh {install_script_arg}). This test did not run.\n\
                 =========================================================="
            );
            None
        }
    }
}

pub fn which(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
}

/// A running Debian etcd on loopback, for side-by-side comparisons. Killed
/// when dropped.
pub struct Etcd {
    pub child: Child,
    pub port: u16,
    _scratch: ScratchDir,
}

impl Etcd {
    /// Starts etcd, or returns None (after a loud message) when the
    /// `etcd` binary cannot be installed here.
    pub fn start(label: &str) -> Option<Etcd> {
        let etcd = ensure_debian_tool("etcd", "server")?;
        let dir = scratch_dir(label);
        let port = free_port();
        let peer_port = free_port();
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut child = Command::new(etcd)
            .args(["--name", "default", "--data-dir"])
            .arg(dir.join("data.etcd"))
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcd");
        wait_ready(&mut child, "ready to serve client requests");
        Some(Etcd {
            child,
            port,
            _scratch: dir,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (grpc-status, grpc-message, response body) of one raw HTTP/2 gRPC call;
/// the body is the framed response message, empty on error.
pub async fn raw_call(port: u16, path: &str, body: Vec<u8>) -> (String, String, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut stream) = sender.send_request(request, false).unwrap();
    stream.send_data(bytes::Bytes::from(body), true).unwrap();
    let response = response.await.unwrap();
    let header =
        |map: &http::HeaderMap, name: &str| map.get(name).map(|v| v.to_str().unwrap().to_string());
    if let Some(status) = header(response.headers(), "grpc-status") {
        return (
            status,
            header(response.headers(), "grpc-message").unwrap_or_default(),
            Vec::new(),
        );
    }
    let mut body = response.into_body();
    let mut received = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    (
        header(&trailers, "grpc-status").unwrap(),
        header(&trailers, "grpc-message").unwrap_or_default(),
        received,
    )
}

/// One gRPC message with its 5-byte prefix (uncompressed).
pub fn framed(message: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    body
}

/// (code, message) of a gRPC error seen by etcd-client.
pub fn grpc_error(error: etcd_client::Error) -> (i32, String) {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            (i32::from(status.code()), status.message().to_string())
        }
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

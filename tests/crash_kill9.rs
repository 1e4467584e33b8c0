//! Crash test: writers put keys concurrently while the server is killed with
//! SIGKILL at random moments and restarted, several times. Every
//! acknowledged write must be present afterwards with the revision it was
//! acknowledged at; a write that was in flight may be present or absent, but
//! never partly (its value is whole, and revisions have no holes).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, runtime, Keel};
use etcd_client::GetOptions;
use rand::Rng;

const KILL_ROUNDS: usize = 6;
const WRITERS: usize = 8;
/// Keys per verification read.
const VERIFY_PAGE_KEYS: i64 = 5_000;
/// Each writer stops after this many puts per round even if not killed.
/// Kills land 150 ms to 2.5 s into a round: some before the backend's first
/// persist (1 s), some after, so recovery is tested from the WAL alone and
/// from a persisted backend plus the WAL tail.
const PUTS_PER_WRITER_MAX: usize = 20_000;

fn value_for(key: &str) -> String {
    format!("{key}:{}", "x".repeat(key.len() * 7 % 300))
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let mut keel = Keel::start("crash-kill9");
    let acked: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let mut rng = rand::rng();
    for round in 0..KILL_ROUNDS {
        let rt = runtime();
        let endpoint = keel.endpoint();
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let acked = acked.clone();
            let endpoint = endpoint.clone();
            writers.push(rt.spawn(async move {
                let mut client = client(&endpoint).await;
                for i in 0..PUTS_PER_WRITER_MAX {
                    let key = format!("r{round}/w{writer}/{i:06}");
                    match client.put(key.clone(), value_for(&key), None).await {
                        Ok(response) => {
                            acked
                                .lock()
                                .unwrap()
                                .insert(key, response.header().unwrap().revision());
                        }
                        Err(_) => break, // the server died under us
                    }
                }
            }));
        }
        let kill_after = Duration::from_millis(rng.random_range(150..2500));
        rt.block_on(async { tokio::time::sleep(kill_after).await });
        keel.kill9();
        rt.block_on(async {
            for writer in writers {
                let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
            }
        });
        drop(rt);
        eprintln!(
            "round {round}: killed after {kill_after:?}, {} writes acknowledged so far",
            acked.lock().unwrap().len()
        );
        keel = keel.restart();
        verify(&keel, &acked.lock().unwrap());
    }
    assert!(
        acked.lock().unwrap().len() > 100,
        "the writers made too little progress to test anything"
    );
}

fn verify(keel: &Keel, acked: &HashMap<String, i64>) {
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        // Page through everything at one revision: the whole set passes the
        // client's 4 MiB response limit.
        let mut present: HashMap<String, (Vec<u8>, i64, i64)> = HashMap::new();
        let mut start = b"r".to_vec();
        let mut at_revision = 0;
        loop {
            let page = client
                .get(
                    start.clone(),
                    Some(
                        GetOptions::new()
                            .with_range("s")
                            .with_limit(VERIFY_PAGE_KEYS)
                            .with_revision(at_revision),
                    ),
                )
                .await
                .unwrap();
            if at_revision == 0 {
                at_revision = page.header().unwrap().revision();
            }
            for kv in page.kvs() {
                let key = String::from_utf8(kv.key().to_vec()).unwrap();
                present.insert(key, (kv.value().to_vec(), kv.mod_revision(), kv.version()));
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        for (key, revision) in acked {
            let (value, mod_revision, version) = present
                .get(key)
                .unwrap_or_else(|| panic!("acknowledged {key} is lost"));
            assert_eq!(
                *mod_revision, *revision,
                "{key} has another revision than acknowledged"
            );
            assert_eq!(*version, 1);
            assert_eq!(value, value_for(key).as_bytes(), "{key} has a torn value");
        }
        for (key, (value, _, _)) in &present {
            assert_eq!(
                value,
                value_for(key).as_bytes(),
                "unacknowledged {key} is half-visible"
            );
        }
        // Every put made one revision: no holes, nothing half-applied.
        let revision = at_revision;
        assert_eq!(
            revision - 1,
            present.len() as i64,
            "revisions do not match the writes present"
        );
        let mut revisions: Vec<i64> = present.values().map(|(_, r, _)| *r).collect();
        revisions.sort_unstable();
        assert!(revisions
            .iter()
            .enumerate()
            .all(|(i, r)| *r == i as i64 + 2));
    });
}

/// A member killed while clients are connected restarts on the same port at
/// once: connections left in TIME_WAIT/FIN_WAIT must not block the bind.
#[test]
fn restarts_on_its_port_right_after_a_kill() {
    let mut keel = Keel::start("crash-rebind");
    let rt = runtime();
    let mut clients = Vec::new();
    rt.block_on(async {
        for i in 0..4 {
            let mut client = client(&keel.endpoint()).await;
            client.put(format!("k{i}"), "v", None).await.unwrap();
            clients.push(client);
        }
    });
    keel.kill9();
    // Let the clients see the close so the server side lingers in TIME_WAIT.
    rt.block_on(async {
        for client in &mut clients {
            let _ = client.get("k0", None).await;
        }
    });
    drop(clients);
    let keel = keel.restart();
    rt.block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let all = client
            .get("k", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(all.count(), 4);
    });
}

/// A second keel on a data dir in use refuses to start (it would write the
/// same WAL and tree file), and the first keeps serving.
#[test]
fn a_second_keel_on_the_same_data_dir_refuses_to_start() {
    let first = Keel::start("data_dir_lock");
    let second_port = common::free_port();
    let (status, stderr) = run_to_exit(&first.data_dir, second_port);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("data dir is in use by another keel process"),
        "{stderr}"
    );
    runtime().block_on(async {
        let mut kv = client(&first.endpoint()).await;
        kv.put("after", "refusal", None).await.unwrap();
        let got = kv.get("after", None).await.unwrap();
        assert_eq!(got.kvs()[0].value(), b"refusal");
    });
}

/// Shard cores bind with SO_REUSEPORT; a second keel of the same user on a
/// port the first listens on must still fail as etcd does ("address
/// already in use"), not share the port and take some of its connections.
#[test]
fn a_second_keel_on_a_taken_port_refuses_to_start() {
    let first = Keel::start("port_taken_first");
    let other_dir = common::scratch_dir("port_taken_second");
    let (status, stderr) = run_to_exit(&other_dir.join("data.keel"), first.port);
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{}", first.port))
            && stderr.to_lowercase().contains("address already in use"),
        "{stderr}"
    );
    // Every connection still reaches the first: the second never listened.
    runtime().block_on(async {
        for round in 0..20 {
            let mut kv = client(&first.endpoint()).await;
            kv.put("k", format!("{round}"), None).await.unwrap();
            let got = kv.get("k", None).await.unwrap();
            assert_eq!(got.kvs()[0].value(), format!("{round}").as_bytes());
        }
    });
}

/// Runs keel on `data_dir` and `port`, expecting it to exit by itself
/// within 20 s; returns its exit status and stderr.
fn run_to_exit(data_dir: &std::path::Path, port: u16) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keel"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen-client-urls")
        .arg(format!("http://127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn keel");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keel on port {port} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

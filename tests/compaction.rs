//! KV.Compact and auto-compaction against the real binary with etcd-client:
//! etcd's codes and messages for compacted and future revisions, reads at
//! the compaction point, persistence across kill -9, and revision-mode
//! auto-compaction within a bounded time.

mod common;

use std::time::{Duration, Instant};

use common::{client, free_port, grpc_error, runtime, Keel};
use etcd_client::{Client, CompactionOptions, GetOptions};

/// gRPC's OutOfRange.
const OUT_OF_RANGE: i32 = 11;
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE: &str = "etcdserver: mvcc: required revision is a future revision";

/// Puts `key` = `v{i}` for i in 0..count; returns the revision of each put.
async fn put_versions(client: &mut Client, key: &str, count: usize) -> Vec<i64> {
    let mut revisions = Vec::new();
    for i in 0..count {
        let response = client.put(key, format!("v{i}"), None).await.unwrap();
        revisions.push(response.header().unwrap().revision());
    }
    revisions
}

async fn get_at(client: &mut Client, key: &str, revision: i64) -> Result<String, (i32, String)> {
    client
        .get(key, Some(GetOptions::new().with_revision(revision)))
        .await
        .map(|response| {
            response
                .kvs()
                .first()
                .map(|kv| kv.value_str().unwrap().to_string())
                .unwrap_or_default()
        })
        .map_err(grpc_error)
}

#[test]
fn compact_then_read_old_and_compaction_point() {
    let keel = Keel::start("compaction-rpc");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let revisions = put_versions(&mut client, "k", 5).await;
        client.put("other", "x", None).await.unwrap();
        let current = revisions[4] + 1;
        let target = revisions[2];

        let response = client
            .compact(target, Some(CompactionOptions::new().with_physical()))
            .await
            .unwrap();
        assert_eq!(response.header().unwrap().revision(), current);

        assert_eq!(
            get_at(&mut client, "k", target - 1).await,
            Err((OUT_OF_RANGE, COMPACTED.to_string()))
        );
        assert_eq!(get_at(&mut client, "k", target).await.unwrap(), "v2");
        assert_eq!(get_at(&mut client, "k", revisions[3]).await.unwrap(), "v3");
        // The latest read is untouched.
        let latest = client.get("k", None).await.unwrap();
        assert_eq!(latest.kvs()[0].value_str().unwrap(), "v4");
        assert_eq!(latest.kvs()[0].version(), 5);
        assert_eq!(latest.kvs()[0].create_revision(), revisions[0]);

        // Compacting to the same or an older revision, or the future, fails.
        for revision in [target, target - 1] {
            let error = client.compact(revision, None).await.unwrap_err();
            assert_eq!(grpc_error(error), (OUT_OF_RANGE, COMPACTED.to_string()));
        }
        let error = client.compact(current + 1, None).await.unwrap_err();
        assert_eq!(grpc_error(error), (OUT_OF_RANGE, FUTURE.to_string()));
        // Compacting to the current revision is allowed.
        client.compact(current, None).await.unwrap();
        assert_eq!(get_at(&mut client, "k", current).await.unwrap(), "v4");
    });
}

#[test]
fn compacted_state_survives_kill9() {
    let keel = Keel::start("compaction-restart");
    let (revisions, target) = runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let revisions = put_versions(&mut client, "k", 6).await;
        client.delete("gone", None).await.unwrap();
        client.put("gone", "x", None).await.unwrap();
        client.delete("gone", None).await.unwrap();
        let target = revisions[3];
        client.compact(target, None).await.unwrap();
        (revisions, target)
    });
    // Killed right after the compaction (WAL replay) ...
    let keel = keel.restart();
    let check = |keel: &Keel| {
        runtime().block_on(async {
            let mut client = client(&keel.endpoint()).await;
            assert_eq!(
                get_at(&mut client, "k", target - 1).await,
                Err((OUT_OF_RANGE, COMPACTED.to_string()))
            );
            assert_eq!(get_at(&mut client, "k", target).await.unwrap(), "v3");
            assert_eq!(get_at(&mut client, "k", revisions[5]).await.unwrap(), "v5");
            let error = client.compact(target, None).await.unwrap_err();
            assert_eq!(grpc_error(error), (OUT_OF_RANGE, COMPACTED.to_string()));
            assert!(client.get("gone", None).await.unwrap().kvs().is_empty());
        })
    };
    check(&keel);
    // ... and after the backend persisted it (1 s interval, then kill -9).
    std::thread::sleep(Duration::from_millis(1500));
    let keel = keel.restart();
    check(&keel);
}

#[test]
fn auto_compaction_in_revision_mode_keeps_the_last_revisions() {
    const RETENTION: i64 = 5;
    let retention = RETENTION.to_string();
    let keel = Keel::start_args(
        "compaction-auto",
        free_port(),
        &[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            &retention,
        ],
    );
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let revisions = put_versions(&mut client, "k", 20).await;
        let current = *revisions.last().unwrap();
        let expected_point = current - RETENTION;
        // The raft core checks every second; allow several checks.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let below = get_at(&mut client, "k", expected_point - 1).await;
            if below == Err((OUT_OF_RANGE, COMPACTED.to_string())) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not compacted to {expected_point} in time: {below:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let at_point = get_at(&mut client, "k", expected_point).await.unwrap();
        assert_eq!(at_point, format!("v{}", 20 - 1 - RETENTION));
    });
}

/// A compaction of 100k superseded entries is removed a bounded step per
/// raft cycle: writes during it all succeed (their worst latency is
/// printed), a physical Compact returns once removal is done, and reads at
/// and above the point are exact throughout.
#[test]
fn a_large_compaction_runs_in_steps_while_writes_go_on() {
    let keel = Keel::start("compaction-steps");
    runtime().block_on(async {
        let client = client(&keel.endpoint()).await;
        let mut writers = Vec::new();
        for writer in 0..50 {
            let mut client = client.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..2000 {
                    client
                        .put(
                            format!("c/{:03}", (writer * 2000 + i) % 500),
                            format!("{i}"),
                            None,
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let mut client = client;
        let point = client.status().await.unwrap().header().unwrap().revision();
        let before: Vec<(Vec<u8>, Vec<u8>)> = client
            .get("c/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap()
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect();
        let writer = {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut worst = Duration::ZERO;
                for i in 0..300 {
                    let started = Instant::now();
                    client.put(format!("during/{i}"), "v", None).await.unwrap();
                    worst = worst.max(started.elapsed());
                }
                worst
            })
        };
        let started = std::time::Instant::now();
        client
            .compact(point, Some(CompactionOptions::new().with_physical()))
            .await
            .unwrap();
        eprintln!(
            "physical compaction of ~100k superseded entries took {:?}",
            started.elapsed()
        );
        let worst = writer.await.unwrap();
        eprintln!("worst put latency during it: {worst:?}");
        let at_point: Vec<(Vec<u8>, Vec<u8>)> = client
            .get(
                "c/",
                Some(GetOptions::new().with_prefix().with_revision(point)),
            )
            .await
            .unwrap()
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect();
        assert!(at_point == before, "reads at the point are unchanged");
        assert_eq!(
            get_at(&mut client, "c/000", point - 1).await.unwrap_err().0,
            11,
            "below the point is compacted"
        );
        let during = client
            .get(
                "during/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap();
        assert_eq!(during.count(), 300);
    });
}

//! Guards online defrag and the backend quota against the real `keel`
//! binary: 100k writes over 1k keys, compact, then Defragment while a
//! reader and a writer run — the file shrinks by at least half, no request
//! fails, every key reads back after a kill -9 and restart, and the
//! reader's worst latency during the defrag is printed. And
//! `--quota-backend-bytes`: NOSPACE raised at the quota, writes refused
//! until compaction, defrag and disarm, as etcd.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{client, grpc_error, runtime, scratch_dir, Keel};
use etcd_client::{AlarmAction, AlarmType, CompactionOptions, GetOptions};

const KEYS: usize = 1000;
const WRITES: usize = 100_000;
const WRITERS: usize = 64;

#[test]
fn defrag_online_shrinks_the_file_while_requests_go_on() {
    let keel = Keel::start("defrag-online");
    let endpoint = keel.endpoint();
    let written = runtime().block_on(async {
        let client = client(&endpoint).await;
        let started = Instant::now();
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let mut client = client.clone();
            writers.push(tokio::spawn(async move {
                for i in (writer..WRITES).step_by(WRITERS) {
                    let key = format!("d/{:04}", i % KEYS);
                    client.put(key, format!("value-{i:06}-{}", "x".repeat(100)), None)
                        .await
                        .unwrap();
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        eprintln!("{WRITES} writes over {KEYS} keys in {:?}", started.elapsed());
        let mut client = client;
        let written: Vec<(Vec<u8>, Vec<u8>, i64)> = client
            .get("d/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap()
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
            .collect();
        assert_eq!(written.len(), KEYS);
        let revision = client.status().await.unwrap().header().unwrap().revision();
        client
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
            .unwrap();
        // Let a backend persist carry the compaction into the file.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let before = client.status().await.unwrap();
        eprintln!(
            "before defrag: db size {} bytes, in use {}",
            before.db_size(),
            before.raft_used_db_size()
        );

        let stop = Arc::new(AtomicBool::new(false));
        let worst_read_us = Arc::new(AtomicU64::new(0));
        let reads = Arc::new(AtomicU64::new(0));
        let reader = {
            let mut client = client.clone();
            let (stop, worst, reads) = (stop.clone(), worst_read_us.clone(), reads.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("d/{:04}", i % KEYS);
                    let asked = Instant::now();
                    let got = client.get(key, None).await.unwrap();
                    worst.fetch_max(asked.elapsed().as_micros() as u64, Ordering::Relaxed);
                    assert_eq!(got.kvs().len(), 1);
                    reads.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        };
        let writer = {
            let mut client = client.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut written = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    client
                        .put(format!("during/{written}"), "v", None)
                        .await
                        .unwrap();
                    written += 1;
                }
                written
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        let defrag_started = Instant::now();
        client.defragment().await.unwrap();
        let defrag_took = defrag_started.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        reader.await.unwrap();
        let written_during = writer.await.unwrap();
        let after = client.status().await.unwrap();
        eprintln!(
            "defrag took {defrag_took:?}; db size {} -> {} bytes (in use {}); reader: {} reads, worst {} us; writer: {written_during} puts",
            before.db_size(),
            after.db_size(),
            after.raft_used_db_size(),
            reads.load(Ordering::Relaxed),
            worst_read_us.load(Ordering::Relaxed),
        );
        assert!(
            after.db_size() * 2 <= before.db_size(),
            "the file shrinks by at least half: {} -> {}",
            before.db_size(),
            after.db_size()
        );
        assert!(written_during > 0 && reads.load(Ordering::Relaxed) > 0);
        written
    });
    // Everything is there after a crash right after the defrag.
    let keel = keel.restart();
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let all = client
            .get("d/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        let after: Vec<(Vec<u8>, Vec<u8>, i64)> = all
            .kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec(), kv.mod_revision()))
            .collect();
        assert!(after == written, "every key as it was written");
        let during = client
            .get(
                "during/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .unwrap();
        assert!(during.count() > 0);
    });
}

#[test]
fn quota_raises_nospace_until_compact_defrag_and_disarm() {
    let dir = scratch_dir("defrag-quota");
    let keel = Keel::start_with(
        &dir.join("data.keel"),
        common::free_port(),
        &["--quota-backend-bytes", "400000"],
    );
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let value = "q".repeat(1000);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut written = 0;
        let refused = loop {
            assert!(Instant::now() < deadline, "NOSPACE within a minute");
            match client
                .put(format!("q/{written}"), value.as_str(), None)
                .await
            {
                Ok(_) => written += 1,
                Err(error) => break error,
            }
        };
        assert_eq!(
            grpc_error(refused),
            (8, "etcdserver: mvcc: database space exceeded".into())
        );
        eprintln!("NOSPACE after {written} puts of 1 KB with a 400 kB quota");
        let alarms = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .unwrap();
        assert_eq!(alarms.alarms().len(), 1);
        assert_eq!(alarms.alarms()[0].alarm(), AlarmType::Nospace);

        // etcd's recovery: free space, compact, defrag, disarm.
        client
            .delete("q/", Some(etcd_client::DeleteOptions::new().with_prefix()))
            .await
            .unwrap();
        let revision = client.status().await.unwrap().header().unwrap().revision();
        client.compact(revision, None).await.unwrap();
        client.defragment().await.unwrap();
        // Still refused until the alarm is disarmed.
        assert!(client.put("after", "v", None).await.is_err());
        client
            .alarm(AlarmAction::Deactivate, AlarmType::Nospace, None)
            .await
            .unwrap();
        client.put("after", "v", None).await.unwrap();
    });
}

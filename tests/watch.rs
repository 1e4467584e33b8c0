//! Guards the Watch service against the real `keel` binary through the
//! `etcd-client` crate: key, prefix and range watches, start_revision
//! replay from history, prev_kv, filters, cancel, progress (requested and
//! periodic), fragments, the compacted-watch cancel, resuming after a
//! reconnect, and a slow watcher that gets every event in order.

mod common;

use std::time::Duration;

use common::{client, runtime, Keel};
use etcd_client::{
    Client, CompactionOptions, EventType, WatchFilterType, WatchOptions, WatchResponse, WatchStream,
};

/// How long a test waits for one watch response before failing.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

async fn next(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(RESPONSE_TIMEOUT, stream.message())
        .await
        .expect("a watch response in time")
        .expect("stream ok")
        .expect("stream open")
}

/// Reads responses until `count` events arrived; returns (type, key, value, mod revision).
async fn events(stream: &mut WatchStream, count: usize) -> Vec<(EventType, String, String, i64)> {
    let mut out = Vec::new();
    while out.len() < count {
        let response = next(stream).await;
        for event in response.events() {
            let kv = event.kv().expect("kv");
            out.push((
                event.event_type(),
                kv.key_str().unwrap().to_string(),
                kv.value_str().unwrap().to_string(),
                kv.mod_revision(),
            ));
        }
    }
    assert_eq!(out.len(), count, "no more events than expected");
    out
}

async fn put(client: &mut Client, key: &str, value: &str) -> i64 {
    let response = client.put(key, value, None).await.unwrap();
    response.header().unwrap().revision()
}

#[test]
fn key_prefix_and_range_watches_see_their_events() {
    let keel = Keel::start("watch-basic");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let mut key_stream = client.watch("foo", None).await.unwrap();
        let created = next(&mut key_stream).await;
        assert!(created.created());
        assert_eq!(created.header().unwrap().revision(), 1);
        let mut prefix_stream = client
            .watch(
                "dir/",
                Some(WatchOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .unwrap();
        assert!(next(&mut prefix_stream).await.created());
        let mut range_stream = client
            .watch("b", Some(WatchOptions::new().with_range("d")))
            .await
            .unwrap();
        assert!(next(&mut range_stream).await.created());

        let r1 = put(&mut client, "foo", "1").await;
        let r2 = put(&mut client, "dir/a", "x").await;
        let r3 = put(&mut client, "dir/a", "y").await;
        let r4 = put(&mut client, "c", "in range").await;
        let r5 = put(&mut client, "d", "not in range").await;
        client.delete("dir/a", None).await.unwrap();
        let r6 = r5 + 1;
        let r7 = put(&mut client, "foo", "2").await;

        assert_eq!(
            events(&mut key_stream, 2).await,
            vec![
                (EventType::Put, "foo".into(), "1".into(), r1),
                (EventType::Put, "foo".into(), "2".into(), r7),
            ]
        );
        let mut prefix_events = Vec::new();
        while prefix_events.len() < 3 {
            let response = next(&mut prefix_stream).await;
            assert_eq!(response.watch_id(), 0);
            prefix_events.extend(response.events().to_vec());
        }
        assert_eq!(prefix_events.len(), 3);
        assert_eq!(prefix_events[0].kv().unwrap().mod_revision(), r2);
        assert!(prefix_events[0].prev_kv().is_none());
        assert_eq!(prefix_events[1].kv().unwrap().mod_revision(), r3);
        assert_eq!(prefix_events[1].prev_kv().unwrap().value(), b"x");
        assert_eq!(prefix_events[2].event_type(), EventType::Delete);
        assert_eq!(prefix_events[2].kv().unwrap().mod_revision(), r6);
        assert_eq!(prefix_events[2].prev_kv().unwrap().value(), b"y");
        assert_eq!(
            events(&mut range_stream, 1).await,
            vec![(EventType::Put, "c".into(), "in range".into(), r4)]
        );

        // Cancel: the server answers canceled and sends nothing more.
        key_stream.cancel(0).await.unwrap();
        let canceled = next(&mut key_stream).await;
        assert!(canceled.canceled());
        put(&mut client, "foo", "3").await;
        let quiet = tokio::time::timeout(Duration::from_millis(300), key_stream.message()).await;
        assert!(
            !matches!(quiet, Ok(Ok(Some(ref r))) if !r.events().is_empty()),
            "no events after cancel: {quiet:?}"
        );
    });
}

#[test]
fn start_revision_replays_history_with_filters() {
    let keel = Keel::start("watch-history");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let mut revisions = Vec::new();
        for i in 0..50 {
            revisions.push(put(&mut client, &format!("k/{:02}", i % 7), &i.to_string()).await);
        }
        client
            .delete("k/03", Some(etcd_client::DeleteOptions::new()))
            .await
            .unwrap();
        let delete_revision = revisions.last().unwrap() + 1;

        // Everything from revision 10, in order, before new events.
        let mut stream = client
            .watch(
                "k/",
                Some(WatchOptions::new().with_prefix().with_start_revision(10)),
            )
            .await
            .unwrap();
        assert!(next(&mut stream).await.created());
        let live = put(&mut client, "k/live", "now").await;
        let replayed = events(&mut stream, (delete_revision - 10 + 1) as usize + 1).await;
        let seen: Vec<i64> = replayed.iter().map(|e| e.3).collect();
        let mut expected: Vec<i64> = (10..=delete_revision).collect();
        expected.push(live);
        assert_eq!(seen, expected, "history then live, in revision order");
        assert_eq!(replayed[replayed.len() - 2].0, EventType::Delete);

        // NOPUT: only the delete.
        let mut deletes = client
            .watch(
                "k/",
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(2)
                        .with_filters([WatchFilterType::NoPut]),
                ),
            )
            .await
            .unwrap();
        assert!(next(&mut deletes).await.created());
        let only = events(&mut deletes, 1).await;
        assert_eq!(only[0].0, EventType::Delete);
        assert_eq!(only[0].3, delete_revision);
        // NODELETE: the puts only.
        let mut puts = client
            .watch(
                "k/03",
                Some(
                    WatchOptions::new()
                        .with_start_revision(2)
                        .with_filters([WatchFilterType::NoDelete]),
                ),
            )
            .await
            .unwrap();
        assert!(next(&mut puts).await.created());
        let put_events = events(&mut puts, 7).await;
        assert!(put_events.iter().all(|e| e.0 == EventType::Put));
    });
}

#[test]
fn compacted_start_revision_cancels_with_compact_revision() {
    let keel = Keel::start("watch-compacted");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        for i in 0..10 {
            put(&mut client, "key", &i.to_string()).await;
        }
        client
            .compact(8, Some(CompactionOptions::new().with_physical()))
            .await
            .unwrap();
        let mut stream = client
            .watch("key", Some(WatchOptions::new().with_start_revision(3)))
            .await
            .unwrap();
        assert!(next(&mut stream).await.created());
        let canceled = next(&mut stream).await;
        assert!(canceled.canceled());
        assert_eq!(canceled.compact_revision(), 8);
        // At the compaction point itself: revisions 8 to 11, all kept.
        let mut stream = client
            .watch("key", Some(WatchOptions::new().with_start_revision(8)))
            .await
            .unwrap();
        assert!(next(&mut stream).await.created());
        let kept = events(&mut stream, 4).await;
        let revisions: Vec<i64> = kept.iter().map(|e| e.3).collect();
        assert_eq!(revisions, [8, 9, 10, 11]);
    });
}

#[test]
fn duplicate_id_and_empty_range_are_refused_as_etcd() {
    let keel = Keel::start("watch-bad");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let mut stream = client
            .watch("a", Some(WatchOptions::new().with_watch_id(7)))
            .await
            .unwrap();
        let created = next(&mut stream).await;
        assert_eq!((created.created(), created.watch_id()), (true, 7));
        stream
            .watch("b", Some(WatchOptions::new().with_watch_id(7)))
            .await
            .unwrap();
        let refused = next(&mut stream).await;
        assert!(refused.created() && refused.canceled());
        assert_eq!(refused.watch_id(), -1);
        assert_eq!(
            refused.cancel_reason(),
            "mvcc: duplicate watch ID provided on the WatchStream"
        );
        stream
            .watch("z", Some(WatchOptions::new().with_range("a")))
            .await
            .unwrap();
        let refused = next(&mut stream).await;
        assert!(refused.canceled());
        assert_eq!(refused.cancel_reason(), "mvcc: watcher range is empty");
        // Cancelling an unknown id answers nothing; the stream still works.
        stream.cancel(12345).await.unwrap();
        put(&mut client, "a", "v").await;
        let got = events(&mut stream, 1).await;
        assert_eq!(got[0].1, "a");
    });
}

#[test]
fn progress_requests_and_periodic_notifications() {
    let dir = common::scratch_dir("watch-progress");
    let keel = Keel::start_with(
        &dir.join("data.keel"),
        common::free_port(),
        &["--experimental-watch-progress-notify-interval", "500ms"],
    );
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let revision = put(&mut client, "other", "x").await;
        let mut stream = client
            .watch("quiet", Some(WatchOptions::new().with_progress_notify()))
            .await
            .unwrap();
        assert!(next(&mut stream).await.created());
        // Periodic: an empty response for this watcher.
        let periodic = next(&mut stream).await;
        assert!(periodic.events().is_empty() && !periodic.canceled());
        assert_eq!(periodic.watch_id(), 0);
        assert!(periodic.header().unwrap().revision() >= revision);
        // Requested: watch id -1 and the current revision.
        let later = put(&mut client, "other", "y").await;
        stream.request_progress().await.unwrap();
        loop {
            let response = next(&mut stream).await;
            if response.watch_id() == -1 {
                assert_eq!(response.header().unwrap().revision(), later);
                break;
            }
        }
    });
}

#[test]
fn fragments_split_a_large_revision() {
    let keel = Keel::start("watch-fragment");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        // 40 keys of 100 KiB: one delete revision of ~4 MiB of prev_kvs,
        // more than --max-request-bytes (1.5 MiB).
        let value = "v".repeat(100 << 10);
        for i in 0..40 {
            put(&mut client, &format!("big/{i:02}"), &value).await;
        }
        let options = WatchOptions::new().with_prefix().with_prev_key();
        let mut fragmented = client
            .watch("big/", Some(options.clone().with_fragment()))
            .await
            .unwrap();
        assert!(next(&mut fragmented).await.created());
        let mut whole = client.watch("big/", Some(options)).await.unwrap();
        assert!(next(&mut whole).await.created());
        client
            .delete(
                "big/",
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        let one = next(&mut whole).await;
        assert_eq!(one.events().len(), 40, "without fragment: one response");
        let mut pieces = 0;
        let mut seen = 0;
        while seen < 40 {
            let piece = next(&mut fragmented).await;
            assert!(piece
                .events()
                .iter()
                .all(|e| e.prev_kv().unwrap().value().len() == 100 << 10));
            seen += piece.events().len();
            pieces += 1;
        }
        assert_eq!(seen, 40);
        assert!(pieces >= 3, "4 MiB in pieces under 1.5 MiB: {pieces}");
    });
}

#[test]
fn a_watch_resumes_from_a_revision_after_reconnect_and_restart() {
    let keel = Keel::start("watch-resume");
    let endpoint = keel.endpoint();
    let last_seen = runtime().block_on(async {
        let mut client = client(&endpoint).await;
        let mut stream = client
            .watch("r/", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        assert!(next(&mut stream).await.created());
        for i in 0..5 {
            put(&mut client, &format!("r/{i}"), "a").await;
        }
        events(&mut stream, 5).await.last().unwrap().3
    });
    let keel = keel.restart();
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        for i in 5..8 {
            put(&mut client, &format!("r/{i}"), "b").await;
        }
        let mut stream = client
            .watch(
                "r/",
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(last_seen + 1),
                ),
            )
            .await
            .unwrap();
        assert!(next(&mut stream).await.created());
        let resumed = events(&mut stream, 3).await;
        let keys: Vec<&str> = resumed.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(keys, ["r/5", "r/6", "r/7"]);
        assert_eq!(resumed[0].3, last_seen + 1);
    });
}

#[test]
fn a_slow_watcher_gets_every_event_in_order_and_writers_do_not_stall() {
    let keel = Keel::start("watch-slow");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let mut slow = client
            .watch("s/", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        assert!(next(&mut slow).await.created());
        // 6000 writes of 4 KiB (~24 MiB of events: past the outbox bound
        // and every HTTP/2 buffer) while the watcher reads nothing.
        let value = "w".repeat(4096);
        let mut writers = Vec::new();
        for writer in 0..20 {
            let mut client = client.clone();
            let value = value.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..300 {
                    let key = format!("s/{writer}/{i}");
                    client.put(key, value.as_str(), None).await.unwrap();
                }
            }));
        }
        let started = std::time::Instant::now();
        for writer in writers {
            tokio::time::timeout(Duration::from_secs(60), writer)
                .await
                .expect("writers finish while the watcher is stalled")
                .unwrap();
        }
        eprintln!(
            "6000 writes with a stalled watcher took {:?}",
            started.elapsed()
        );
        let mut last = 0;
        let mut count = 0;
        while count < 6000 {
            let response = next(&mut slow).await;
            for event in response.events() {
                let revision = event.kv().unwrap().mod_revision();
                assert!(revision > last, "in order: {revision} after {last}");
                last = revision;
                count += 1;
            }
        }
        assert_eq!(count, 6000);
        let range = client
            .get(
                "s/",
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_count_only(),
                ),
            )
            .await
            .unwrap();
        assert_eq!(range.count(), 6000);
    });
}

/// etcd_debugging_mvcc_watcher_total from the member's /metrics.
fn watchers_on(port: u16) -> u64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    page.lines()
        .find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .expect("watcher gauge")
        .parse()
        .unwrap()
}

#[test]
fn vanished_clients_release_their_watchers() {
    let keel = Keel::start("watch-vanish");
    runtime().block_on(async {
        {
            let mut client = client(&keel.endpoint()).await;
            let mut streams = Vec::new();
            for i in 0..20 {
                let mut stream = client
                    .watch(format!("v/{i}"), Some(WatchOptions::new().with_prefix()))
                    .await
                    .unwrap();
                assert!(next(&mut stream).await.created());
                for j in 1..5 {
                    stream.watch(format!("v/{i}/{j}"), None).await.unwrap();
                    assert!(next(&mut stream).await.created());
                }
                streams.push(stream);
            }
            assert_eq!(watchers_on(keel.port), 100);
            // The client goes away without cancelling anything.
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while watchers_on(keel.port) != 0 {
            assert!(std::time::Instant::now() < deadline, "watchers released");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The member still serves new watchers.
        let mut client = client(&keel.endpoint()).await;
        let mut stream = client.watch("after", None).await.unwrap();
        assert!(next(&mut stream).await.created());
        assert_eq!(watchers_on(keel.port), 1);
    });
}

/// The raft core keeps a batch's full events (values, previous kvs) only
/// while some shard core has a watcher, and leaner ones otherwise; a
/// watcher that appears while puts flow must still get every put after
/// its creation, in order, with its value and prev_kv. Five watchers come
/// and go one after another while one client puts, each the only one, so
/// each start flips the raft core from lean events to full ones.
#[test]
fn watchers_created_while_puts_flow_get_values_and_prev_kvs() {
    let keel = Keel::start("watch-while-putting");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let base = put(&mut client, "live/start", "-").await;
        // Put i (from 1) writes live/k{i % 5} = v{i} at revision base + i,
        // until the watchers are done (at most 20,000 puts).
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writer = client.clone();
        let writer_done = done.clone();
        let puts = tokio::spawn(async move {
            for i in 1..=20_000i64 {
                if writer_done.load(std::sync::atomic::Ordering::Relaxed) {
                    return i - 1;
                }
                let key = format!("live/k{}", i % 5);
                writer.put(key, format!("v{i}"), None).await.unwrap();
            }
            20_000
        });
        for round in 0..5 {
            tokio::time::sleep(Duration::from_millis(20 + 10 * round)).await;
            let mut stream = client
                .watch(
                    "live/k",
                    Some(WatchOptions::new().with_prefix().with_prev_key()),
                )
                .await
                .unwrap();
            let created = next(&mut stream).await;
            assert!(created.created());
            let mut last = 0;
            let mut seen = 0;
            while seen < 40 {
                let response = next(&mut stream).await;
                for event in response.events() {
                    let kv = event.kv().expect("kv");
                    let i = kv.mod_revision() - base;
                    assert!(last == 0 || kv.mod_revision() == last + 1, "no gaps");
                    last = kv.mod_revision();
                    assert_eq!(kv.key_str().unwrap(), format!("live/k{}", i % 5));
                    assert_eq!(kv.value_str().unwrap(), format!("v{i}"), "round {round}");
                    if i > 5 {
                        let prev = event.prev_kv().expect("prev_kv asked for");
                        assert_eq!(prev.value_str().unwrap(), format!("v{}", i - 5));
                        assert_eq!(prev.mod_revision(), kv.mod_revision() - 5);
                    }
                    seen += 1;
                }
            }
            // Gone before the next one starts, so the raft core goes back
            // to lean events in between.
            stream.cancel(created.watch_id()).await.unwrap();
            while !next(&mut stream).await.canceled() {}
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = tokio::time::timeout(Duration::from_secs(60), puts)
            .await
            .expect("puts finish")
            .unwrap();
        assert!(written < 20_000, "the watchers were done before the puts");
    });
}

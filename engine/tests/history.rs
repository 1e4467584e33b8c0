//! Guards the watch history (`ReadView::events`): against a model event log
//! (the events the txns themselves reported) for random histories, range
//! forms, start revisions and chunk sizes; chunks resumed until caught up
//! give exactly the log; compacted starts fail; prev_kv after compaction;
//! the walk by key and the walk over the revision index agree.

use keel_engine::{
    Event, EventKind, HistoryChunk, HistoryWalk, KeyValue, MvccError, ReadView, Store,
    StoreOptions, INDEX_SCAN_MAX,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::Arc;

/// One event of the model log and its (main, sub) revision.
type LoggedEvent = ((i64, i64), Event);

const KEYS: [&[u8]; 9] = [
    b"",
    b"\x00",
    b"\x00\x00",
    b"a",
    b"a\x00",
    b"ab",
    b"b",
    b"b\x00x",
    b"c",
];

fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

fn in_range(candidate: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        candidate == key
    } else if range_end == [0] {
        candidate >= key
    } else {
        candidate >= key && candidate < range_end
    }
}

/// What `events` must return, computed from the model log.
fn expected_chunk(
    log: &[LoggedEvent],
    view_revision: i64,
    key: &[u8],
    range_end: &[u8],
    start_revision: i64,
    max_events: usize,
) -> HistoryChunk {
    let wanted: Vec<&LoggedEvent> = log
        .iter()
        .filter(|((main, _), event)| {
            (start_revision..=view_revision).contains(main)
                && in_range(&event.kv().key, key, range_end)
        })
        .collect();
    let mut events: Vec<Event> = Vec::new();
    let mut taken = 0;
    for group in wanted.chunk_by(|a, b| a.0 .0 == b.0 .0) {
        if !events.is_empty() && events.len() + group.len() > max_events {
            break;
        }
        events.extend(group.iter().map(|(_, event)| event.clone()));
        taken += group.len();
    }
    let next_revision = if taken == wanted.len() {
        view_revision + 1
    } else {
        events.last().unwrap().kv().mod_revision + 1
    };
    HistoryChunk {
        events,
        next_revision,
    }
}

fn random_key(rng: &mut StdRng) -> Vec<u8> {
    KEYS[rng.random_range(0..KEYS.len())].to_vec()
}

/// A random (key, range_end) of every form etcd has.
fn random_range(rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    let mut start = random_key(rng);
    let mut end = random_key(rng);
    if start > end {
        std::mem::swap(&mut start, &mut end);
    }
    match rng.random_range(0..6) {
        0 => (start, Vec::new()),
        1 => (start, vec![0]),
        2 => (vec![0], vec![0]),
        3 => (Vec::new(), vec![0]),
        4 => (end, start), // often empty (range_end <= key)
        _ => (start, end),
    }
}

/// Applies one random batch (1-2 txns, maybe a lease change) and appends
/// the events the txns report to `log`.
fn random_batch(store: &mut Store, rng: &mut StdRng, log: &mut Vec<LoggedEvent>, round: usize) {
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    if rng.random_bool(0.2) {
        batch.put_lease(rng.random_range(1..4), 10);
    }
    for _ in 0..rng.random_range(1..3) {
        let mut txn = batch.txn();
        for _ in 0..rng.random_range(0..4) {
            match rng.random_range(0..10) {
                0..7 => {
                    let key = random_key(rng);
                    txn.put(&key, format!("v{round}").as_bytes(), rng.random_range(0..3));
                }
                7 | 8 => {
                    txn.delete_range(&random_key(rng), b"");
                }
                _ => {
                    let (key, range_end) = random_range(rng);
                    txn.delete_range(&key, &range_end);
                }
            }
        }
        let events = txn.end();
        for (sub, event) in events.into_iter().enumerate() {
            log.push(((event.kv().mod_revision, sub as i64), event));
        }
    }
    if rng.random_bool(0.1) {
        batch.delete_lease(rng.random_range(1..4));
    }
    batch.commit(applied);
}

/// Random queries on `view` against the log (which may run past it).
fn check_queries(view: &ReadView, log: &[LoggedEvent], rng: &mut StdRng, queries: usize) {
    let revision = view.revision();
    let compact = view.compact_revision();
    for _ in 0..queries {
        let (key, range_end) = random_range(rng);
        let mut start = rng.random_range(-1..=revision + 2);
        if start == compact && compact > 0 {
            // Events at the compaction point itself may have lost their
            // entries (tombstone_at_the_compaction_point covers it).
            start += 1;
        }
        let max_events = [0, 1, 2, 3, 5, 8, 1000][rng.random_range(0..7)];
        let got = view.events(&key, &range_end, start, max_events);
        // Both walks give the same answer, whichever `events` takes.
        let query = format!("{key:?}..{range_end:?} from {start}, max {max_events}");
        assert_eq!(
            view.events_walking(HistoryWalk::ByKey, &key, &range_end, start, max_events),
            got,
            "by key: {query}"
        );
        assert_eq!(
            view.events_walking(HistoryWalk::ByRevision, &key, &range_end, start, max_events),
            got,
            "by revision: {query}"
        );
        if start <= 0 {
            let chunk = got.unwrap();
            assert!(chunk.events.is_empty());
            assert_eq!(chunk.next_revision, revision + 1);
        } else if start < compact {
            assert_eq!(got, Err(MvccError::Compacted), "start {start} < {compact}");
        } else if start > revision {
            let chunk = got.unwrap();
            assert!(chunk.events.is_empty());
            assert_eq!(chunk.next_revision, start.max(revision + 1));
        } else {
            let expected = expected_chunk(log, revision, &key, &range_end, start, max_events);
            assert_eq!(
                got.unwrap(),
                expected,
                "{key:?}..{range_end:?} from {start}, max {max_events}, view at {revision}"
            );
        }
    }
}

/// Reads the whole history of a range from `start` chunk by chunk; checks
/// each chunk's bound and that together they are exactly the log.
fn check_resume(view: &ReadView, log: &[LoggedEvent], rng: &mut StdRng) {
    let revision = view.revision();
    let (key, range_end) = random_range(rng);
    let start = (view.compact_revision() + 1).max(1);
    let max_events = rng.random_range(1..6);
    let mut next = start;
    let mut all = Vec::new();
    let mut chunks = 0;
    while next <= revision {
        let chunk = view.events(&key, &range_end, next, max_events).unwrap();
        let one_revision = chunk
            .events
            .windows(2)
            .all(|pair| pair[0].kv().mod_revision == pair[1].kv().mod_revision);
        assert!(chunk.events.len() <= max_events || one_revision);
        assert!(chunk.next_revision > next, "progress");
        if let Some(last) = chunk.events.last() {
            assert!(last.kv().mod_revision < chunk.next_revision);
        }
        next = chunk.next_revision;
        all.extend(chunk.events);
        chunks += 1;
        assert!(chunks <= log.len() + 1, "chunks end");
    }
    assert_eq!(next, revision + 1);
    let expected = expected_chunk(log, revision, &key, &range_end, start, usize::MAX);
    assert_eq!(
        all, expected.events,
        "{key:?}..{range_end:?} by {max_events}"
    );
}

#[test]
fn random_histories_match_the_txn_event_log() {
    for seed in 0..3u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = open(&path);
        let mut log: Vec<LoggedEvent> = Vec::new();
        let mut old_views: Vec<Arc<ReadView>> = Vec::new();
        for round in 0..300 {
            random_batch(&mut store, &mut rng, &mut log, round);
            if round % 25 == 24 {
                let view = store.reader().view();
                check_queries(&view, &log, &mut rng, 60);
                check_resume(&view, &log, &mut rng);
                old_views.push(view);
            }
            if round % 90 == 89 {
                // Compact (after which only starts above the point compare
                // exactly), persist, reopen.
                let target = rng.random_range(store.compact_revision() + 1..=store.revision());
                let applied = store.applied_index() + 1;
                let mut batch = store.write_batch();
                batch.compact(target).unwrap();
                batch.commit(applied);
                store.persist().unwrap();
                drop(store);
                store = open(&path);
            }
        }
        // Old views read their own revision's history, compacted or not.
        for view in &old_views {
            check_queries(view, &log, &mut rng, 30);
            check_resume(view, &log, &mut rng);
        }
        let view = store.reader().view();
        check_queries(&view, &log, &mut rng, 200);
        for _ in 0..20 {
            check_resume(&view, &log, &mut rng);
        }
    }
}

fn put(store: &mut Store, key: &[u8], value: &[u8]) -> i64 {
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    txn.put(key, value, 0);
    txn.end();
    batch.commit(applied);
    store.revision()
}

fn delete(store: &mut Store, key: &[u8]) -> i64 {
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    assert_eq!(txn.delete_range(key, b"").len(), 1);
    txn.end();
    batch.commit(applied);
    store.revision()
}

fn compact(store: &mut Store, revision: i64) {
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    batch.compact(revision).unwrap();
    batch.commit(applied);
}

fn kv(key: &[u8], value: &[u8], create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: create,
        mod_revision: modified,
        version,
        value: value.to_vec(),
        lease: 0,
    }
}

#[test]
fn prev_kv_after_compaction_is_what_the_tree_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    assert_eq!(put(&mut store, b"a", b"1"), 2);
    assert_eq!(put(&mut store, b"a", b"2"), 3);
    assert_eq!(put(&mut store, b"c", b"1"), 4);
    assert_eq!(put(&mut store, b"b", b"1"), 5);
    assert_eq!(delete(&mut store, b"b"), 6);
    compact(&mut store, 4);
    assert_eq!(put(&mut store, b"a", b"3"), 7);
    assert_eq!(put(&mut store, b"b", b"2"), 8);
    assert_eq!(put(&mut store, b"c", b"2"), 9);
    let view = store.reader().view();

    assert_eq!(view.events(b"a", b"", 3, 100), Err(MvccError::Compacted));
    assert_eq!(
        view.events(b"\x00", b"\x00", 1, 100),
        Err(MvccError::Compacted)
    );
    let chunk = view.events(b"\x00", b"\x00", 4, 100).unwrap();
    assert_eq!(chunk.next_revision, 10);
    let got: Vec<(i64, Option<i64>)> = chunk
        .events
        .iter()
        .map(|event| {
            (
                event.kv().mod_revision,
                event.prev_kv().as_ref().map(|prev| prev.mod_revision),
            )
        })
        .collect();
    // 4: c's first put, no prev. 5: b, prev gone? No: b's entry at 5 is
    // above the point and kept. 6: b's tombstone, prev = b@5. 7: a, prev =
    // a@3 (its newest entry at the point, kept). 8: b again, prev was a
    // tombstone. 9: c, prev = c@4.
    assert_eq!(
        got,
        vec![
            (4, None),
            (5, None),
            (6, Some(5)),
            (7, Some(3)),
            (8, None),
            (9, Some(4))
        ]
    );
    assert_eq!(chunk.events[3].prev_kv(), Some(kv(b"a", b"2", 2, 3, 2)));
    assert_eq!(
        chunk.events[2],
        Event::new(
            EventKind::Delete,
            KeyValue {
                key: b"b".to_vec(),
                mod_revision: 6,
                ..KeyValue::default()
            },
            Some(kv(b"b", b"1", 5, 5, 1))
        )
    );
    assert_eq!(chunk.events[5].kv(), kv(b"c", b"2", 4, 9, 2));

    // Compacting past 7 drops a@3: a@7's prev is gone from the tree.
    compact(&mut store, 7);
    let view = store.reader().view();
    let chunk = view.events(b"a", b"", 7, 100).unwrap();
    assert_eq!(chunk.events.len(), 1);
    assert_eq!(chunk.events[0].kv(), kv(b"a", b"3", 2, 7, 3));
    assert_eq!(chunk.events[0].prev_kv(), None);
}

#[test]
fn tombstone_at_the_compaction_point_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    put(&mut store, b"a", b"1");
    let deleted_at = delete(&mut store, b"a");
    put(&mut store, b"b", b"1");
    compact(&mut store, deleted_at);
    let view = store.reader().view();
    // Starting at the point is allowed; the tombstone there went with the
    // compaction (as in etcd, which removes it from the backend too).
    let chunk = view.events(b"\x00", b"\x00", deleted_at, 10).unwrap();
    assert_eq!(chunk.events.len(), 1);
    assert_eq!(chunk.events[0].kv().key, b"b");
    assert_eq!(
        view.events(b"a", b"", deleted_at - 1, 10),
        Err(MvccError::Compacted)
    );
}

#[test]
fn one_revision_is_never_split() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    put(&mut store, b"k00", b"first");
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    for number in 0..50 {
        txn.put(format!("k{number:02}").as_bytes(), b"big", 0);
    }
    txn.end();
    batch.commit(2);
    put(&mut store, b"k07", b"last");
    let view = store.reader().view();
    assert_eq!(view.revision(), 4);

    let chunk = view.events(b"k", b"l", 2, 10).unwrap();
    assert_eq!(chunk.events.len(), 1, "revision 3 does not fit after 2");
    assert_eq!(chunk.next_revision, 3);
    let chunk = view.events(b"k", b"l", 3, 10).unwrap();
    assert_eq!(chunk.events.len(), 50, "revision 3 alone, whole");
    assert!(chunk
        .events
        .iter()
        .all(|event| event.kv().mod_revision == 3));
    let keys: Vec<Vec<u8>> = chunk.events.iter().map(|e| e.kv().key.clone()).collect();
    let expected: Vec<Vec<u8>> = (0..50).map(|n| format!("k{n:02}").into_bytes()).collect();
    assert_eq!(keys, expected, "sub revision order");
    assert_eq!(chunk.events[0].prev_kv().as_ref().unwrap().value, b"first");
    assert_eq!(chunk.next_revision, 4);
    let chunk = view.events(b"k", b"l", 3, 0).unwrap();
    assert_eq!(chunk.events.len(), 50);
    let chunk = view.events(b"k", b"l", 4, 0).unwrap();
    assert_eq!(chunk.events.len(), 1);
    assert_eq!(chunk.next_revision, 5);
    let chunk = view.events(b"k", b"l", 2, 51).unwrap();
    assert_eq!((chunk.events.len(), chunk.next_revision), (51, 4));
    let chunk = view.events(b"k", b"l", 2, 52).unwrap();
    assert_eq!((chunk.events.len(), chunk.next_revision), (52, 5));
}

#[test]
fn start_revision_edges() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    let view = store.reader().view();
    let nothing = |next_revision| HistoryChunk {
        events: Vec::new(),
        next_revision,
    };
    assert_eq!(view.events(b"a", b"", 1, 10), Ok(nothing(2)));
    put(&mut store, b"a", b"1");
    put(&mut store, b"b", b"1");
    let view = store.reader().view();
    assert_eq!(view.events(b"a", b"", 0, 10), Ok(nothing(4)));
    assert_eq!(view.events(b"a", b"", -3, 10), Ok(nothing(4)));
    assert_eq!(view.events(b"a", b"", 4, 10), Ok(nothing(4)));
    assert_eq!(view.events(b"a", b"", 9, 10), Ok(nothing(9)));
    assert_eq!(view.events(b"b", b"a", 1, 10), Ok(nothing(4)));
    assert_eq!(view.events(b"a", b"a", 1, 10), Ok(nothing(4)));
    let chunk = view.events(b"a", b"b", 1, 10).unwrap();
    assert_eq!(chunk.events.len(), 1);
    assert_eq!(chunk.next_revision, 4);
}

#[test]
fn long_key_histories_chunk_by_revision() {
    // Few keys with long histories: the scan seeks past the cap and past
    // each key's older entries; chunks still cover the log exactly.
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    let mut log: Vec<LoggedEvent> = Vec::new();
    for round in 0..600 {
        let applied = store.applied_index() + 1;
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        let key = [b'a' + (round % 3) as u8];
        if round % 11 == 10 {
            txn.delete_range(&key, b"");
        } else {
            txn.put(&key, format!("{round}").as_bytes(), 0);
        }
        for (sub, event) in txn.end().into_iter().enumerate() {
            log.push(((event.kv().mod_revision, sub as i64), event));
        }
        batch.commit(applied);
    }
    let view = store.reader().view();
    let mut rng = StdRng::seed_from_u64(9);
    for start in [1, 2, 100, 333, 598, 600, 601] {
        for max_events in [1, 4, 50, 10_000] {
            for (key, range_end) in [(&b"a"[..], &b""[..]), (b"a", b"c"), (b"\x00", b"\x00")] {
                let expected =
                    expected_chunk(&log, view.revision(), key, range_end, start, max_events);
                let got = view.events(key, range_end, start, max_events).unwrap();
                assert_eq!(got, expected, "{key:?}..{range_end:?} {start} {max_events}");
            }
        }
    }
    for _ in 0..10 {
        check_resume(&view, &log, &mut rng);
    }
}

/// A range whose keys change rarely in a long history: a chunk read by
/// revision scans at most about `INDEX_SCAN_MAX` index entries, so it may
/// come back empty yet move on; resuming chunk by chunk still yields
/// exactly the range's events.
#[test]
fn sparse_range_history_is_read_in_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    let revisions = 2 * INDEX_SCAN_MAX + 1000;
    let mut wanted = Vec::new();
    let mut written = 0;
    while written < revisions {
        let applied = store.applied_index() + 1;
        let mut batch = store.write_batch();
        for _ in 0..1000 {
            let mut txn = batch.txn();
            written += 1;
            if written % 50_000 == 7 {
                txn.put(b"rare/a", format!("{written}").as_bytes(), 0);
                wanted.push(txn.end().remove(0));
            } else {
                txn.put(b"busy", b"v", 0);
            }
        }
        batch.commit(applied);
    }
    let view = store.reader().view();
    let mut next = 1;
    let mut got = Vec::new();
    let mut chunks = 0;
    while next <= view.revision() {
        let chunk = view.events(b"rare/", b"rare0", next, 1000).unwrap();
        assert!(chunk.next_revision > next, "progress");
        assert!(
            chunk.next_revision - next <= INDEX_SCAN_MAX as i64 + 1,
            "a chunk scans a bounded stretch: {next} to {}",
            chunk.next_revision
        );
        got.extend(chunk.events);
        next = chunk.next_revision;
        chunks += 1;
    }
    assert_eq!(got, wanted);
    assert!(chunks >= 3, "{chunks} chunks");
    // The walk by key reads the same in one chunk.
    let whole = view
        .events_walking(HistoryWalk::ByKey, b"rare/", b"rare0", 1, 1000)
        .unwrap();
    assert_eq!(whole.events, wanted);
}

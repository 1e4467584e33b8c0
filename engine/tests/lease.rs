//! Guards the lease namespace of the tree: grants and revokes publish with
//! the batch's commit and survive persist + reopen; no Range or delete of
//! any form sees them, and compaction neither removes nor trips over them.

use keel_engine::{LeaseRecord, RangeOptions, Store, StoreOptions};
use std::path::Path;

fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

fn lease(id: i64, ttl_seconds: i64) -> LeaseRecord {
    LeaseRecord { id, ttl_seconds }
}

/// Lease ids whose big-endian bytes look like MVCC key bytes (0x00 0x01
/// terminators, 0x00 0xFF escapes) and the extremes.
const AWKWARD_IDS: [i64; 6] = [
    1,
    0x0001_0000_0000_0000,
    0x00FF_0001_0000_0000,
    0x0100_0000_0000_0001,
    i64::MAX,
    -5,
];

/// User keys near the bottom of the MVCC key space.
const LOW_KEYS: [&[u8]; 6] = [b"", b"\x00", b"\x00\x00", b"\x00\x01", b"\x01", b"a"];

fn put_low_keys(store: &mut Store) {
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    for key in LOW_KEYS {
        txn.put(key, b"v", 0);
    }
    txn.end();
    batch.commit(applied);
}

fn grant_awkward(store: &mut Store) {
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    for (ttl, id) in AWKWARD_IDS.into_iter().enumerate() {
        batch.put_lease(id, ttl as i64 + 10);
    }
    batch.commit(applied);
}

fn awkward_leases() -> Vec<LeaseRecord> {
    let mut expected: Vec<LeaseRecord> = AWKWARD_IDS
        .into_iter()
        .enumerate()
        .map(|(ttl, id)| lease(id, ttl as i64 + 10))
        .collect();
    expected.sort_by_key(|record| record.id);
    expected
}

#[test]
fn grant_and_revoke_publish_with_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        persist_ops_threshold: 1,
        ..StoreOptions::default()
    };
    let mut store = Store::open(&dir.path().join("db"), options).unwrap();
    let reader = store.reader();
    assert!(!store.needs_persist());

    let mut batch = store.write_batch();
    batch.put_lease(7, 30);
    batch.put_lease(3, 10);
    let mut txn = batch.txn();
    txn.put(b"k", b"v", 7);
    txn.end();
    // Not published before the commit.
    assert!(reader.view().leases().is_empty());
    batch.commit(1);
    assert_eq!(reader.view().leases(), vec![lease(3, 10), lease(7, 30)]);
    assert_eq!(store.leases(), vec![lease(3, 10), lease(7, 30)]);
    assert_eq!(store.revision(), 2, "only the put is a revision");
    assert!(store.needs_persist(), "lease writes count as changes");
    store.persist().unwrap();
    assert!(!store.needs_persist());

    // Replace a TTL, revoke one, revoke a missing one: no revision.
    let before = reader.view();
    let mut batch = store.write_batch();
    batch.put_lease(7, 60);
    assert!(batch.delete_lease(3));
    assert!(!batch.delete_lease(3));
    assert!(!batch.delete_lease(99));
    batch.commit(2);
    assert_eq!(reader.view().leases(), vec![lease(7, 60)]);
    assert_eq!(before.leases(), vec![lease(3, 10), lease(7, 30)]);
    assert_eq!(store.revision(), 2);
    assert!(store.needs_persist());
    store.persist().unwrap();

    // A revoke alone is a change to persist; a revoke of nothing is not.
    let mut batch = store.write_batch();
    assert!(!batch.delete_lease(3));
    batch.commit(2);
    assert!(!store.needs_persist());
    let mut batch = store.write_batch();
    assert!(batch.delete_lease(7));
    batch.commit(2);
    assert!(store.needs_persist());
    assert!(reader.view().leases().is_empty());
}

#[test]
fn leases_survive_persist_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = open(&path);
    put_low_keys(&mut store);
    grant_awkward(&mut store);
    // Enough leases to span several leaves.
    let mut batch = store.write_batch();
    for id in 1000..3000 {
        batch.put_lease(id, id % 7);
    }
    batch.commit(3);
    let mut expected = awkward_leases();
    expected.extend((1000..3000).map(|id| lease(id, id % 7)));
    expected.sort_by_key(|record| record.id);
    assert_eq!(store.leases(), expected);
    store.persist().unwrap();
    drop(store);

    let mut store = open(&path);
    assert_eq!(store.leases(), expected);
    assert_eq!(store.reader().view().leases(), expected);
    assert_eq!(store.applied_index(), 3);
    // A revoke without a persist is lost with the process, like any write
    // the WAL replays.
    let mut batch = store.write_batch();
    assert!(batch.delete_lease(1000));
    batch.commit(4);
    drop(store);
    let mut store = open(&path);
    assert_eq!(store.leases(), expected);
    let mut batch = store.write_batch();
    assert!(batch.delete_lease(1000));
    batch.commit(4);
    store.persist().unwrap();
    drop(store);
    let store = open(&path);
    expected.retain(|record| record.id != 1000);
    assert_eq!(store.leases(), expected);
}

/// Every key a range of `(key, range_end)` should return, by etcd's rules.
fn expected_keys(key: &[u8], range_end: &[u8]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = LOW_KEYS
        .iter()
        .map(|key| key.to_vec())
        .filter(|candidate| {
            if range_end.is_empty() {
                candidate == key
            } else if range_end == [0] {
                candidate.as_slice() >= key
            } else {
                candidate.as_slice() >= key && candidate.as_slice() < range_end
            }
        })
        .collect();
    keys.sort();
    keys
}

const RANGE_FORMS: [(&[u8], &[u8]); 12] = [
    (b"", b""),
    (b"\x00", b""),
    (b"\x00\x00", b""),
    (b"\x00", b"\x00"),
    (b"", b"\x00"),
    (b"\x00", b"\x01"),
    (b"", b"\x00\x00"),
    (b"", b"\x00\x01"),
    (b"\x00\x00", b"\x00\x01"),
    (b"", b"\xff"),
    (b"\x00\x00\x00", b"\x00"),
    (b"b", b"\x00"),
];

#[test]
fn no_range_form_sees_leases() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    grant_awkward(&mut store);
    put_low_keys(&mut store);
    let view = store.reader().view();
    for (key, range_end) in RANGE_FORMS {
        let expected = expected_keys(key, range_end);
        for (limit, keys_only) in [(0, false), (1, true), (100, false)] {
            let result = view
                .range(&RangeOptions {
                    key,
                    range_end,
                    limit,
                    keys_only,
                    ..RangeOptions::default()
                })
                .unwrap();
            let keys: Vec<Vec<u8>> = result.kvs.into_iter().map(|kv| kv.key).collect();
            let shown = if limit > 0 {
                expected.len().min(limit as usize)
            } else {
                expected.len()
            };
            assert_eq!(keys, expected[..shown], "{key:?}..{range_end:?}");
            assert_eq!(
                result.count,
                expected.len() as i64,
                "{key:?}..{range_end:?}"
            );
        }
        let count = view
            .range(&RangeOptions {
                key,
                range_end,
                count_only: true,
                ..RangeOptions::default()
            })
            .unwrap()
            .count;
        assert_eq!(count, expected.len() as i64, "{key:?}..{range_end:?}");
        // Inside a txn too, before and after it writes.
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        let read = |txn: &keel_engine::Txn| {
            txn.range(&RangeOptions {
                key,
                range_end,
                ..RangeOptions::default()
            })
            .unwrap()
            .count
        };
        assert_eq!(read(&txn), expected.len() as i64);
        txn.put(b"a", b"again", 0);
        assert_eq!(read(&txn), expected.len() as i64);
        txn.end();
        batch.commit(2);
    }

    // Deleting every key of every form deletes MVCC keys only.
    for (key, range_end) in RANGE_FORMS {
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        let deleted = txn.delete_range(key, range_end);
        assert!(deleted
            .iter()
            .all(|kv| LOW_KEYS.contains(&kv.key.as_slice())));
        txn.end();
        batch.commit(3);
        assert_eq!(store.leases(), awkward_leases());
    }
    let all = store
        .reader()
        .view()
        .range(&RangeOptions {
            key: b"\x00",
            range_end: b"\x00",
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!(all.count, 0);
    assert_eq!(store.reader().view().leases(), awkward_leases());
}

#[test]
fn compaction_keeps_leases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = open(&path);
    grant_awkward(&mut store);
    let mut batch = store.write_batch();
    for id in 100..2100 {
        batch.put_lease(id, 5);
    }
    batch.commit(2);
    let mut expected = awkward_leases();
    expected.extend((100..2100).map(|id| lease(id, 5)));
    expected.sort_by_key(|record| record.id);

    // History with a low key (just above the leases) rewritten often, and a
    // tombstone for the empty key.
    put_low_keys(&mut store);
    for round in 0..300 {
        let applied = store.applied_index() + 1;
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        txn.put(b"", format!("{round}").as_bytes(), 0);
        txn.put(format!("k{}", round % 50).as_bytes(), b"v", 0);
        txn.end();
        batch.commit(applied);
    }
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    txn.delete_range(b"", b"");
    txn.end();
    batch.commit(400);
    // Entries: 6 low keys + 300 x 2 puts + 1 tombstone.
    assert_eq!(store.tree_entry_count(), 6 + 600 + 1);

    let revision = store.revision();
    let mut batch = store.write_batch();
    let removed = batch.compact(revision).unwrap();
    batch.commit(401);
    // Left: the 5 other low keys and the newest of k0..k49.
    assert_eq!(store.tree_entry_count(), 5 + 50);
    assert_eq!(removed, 6 + 600 + 1 - 55);
    assert_eq!(store.leases(), expected);
    assert_eq!(store.reader().view().leases(), expected);
    store.persist().unwrap();
    drop(store);

    let mut store = open(&path);
    assert_eq!(store.leases(), expected);
    // Leases granted after a compaction, then another compaction.
    let mut batch = store.write_batch();
    batch.put_lease(1, 99);
    let mut txn = batch.txn();
    txn.put(b"\x00", b"w", 1);
    txn.end();
    batch.commit(402);
    let revision = store.revision();
    let mut batch = store.write_batch();
    assert_eq!(batch.compact(revision).unwrap(), 1);
    batch.commit(403);
    let first = store.leases()[..2].to_vec();
    assert_eq!(first, vec![lease(-5, 15), lease(1, 99)]);
    assert_eq!(store.leases().len(), expected.len());
}

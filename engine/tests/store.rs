//! Guards the MVCC store: etcd's revision/version rules, every
//! RangeOptions form, reads at old revisions, copy-on-write isolation of
//! views and readers on other threads. Its file (persist + reopen, damaged
//! or foreign files) is `store_file.rs`.

mod common;

use common::{delete, get, get_at, open, put};
use keel_engine::{Detail, EventKind, KeyValue, MvccError, RangeOptions, RangeResult, Store};

fn keys(result: &RangeResult) -> Vec<&[u8]> {
    result.kvs.iter().map(|kv| kv.key.as_slice()).collect()
}

#[test]
fn revisions_and_versions_follow_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    assert_eq!(store.revision(), 1);
    assert_eq!(store.reader().view().revision(), 1);

    let events = put(&mut store, b"a", b"1");
    assert_eq!(store.revision(), 2);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Put);
    assert_eq!(events[0].prev_kv(), None);
    let first = KeyValue {
        key: b"a".to_vec(),
        create_revision: 2,
        mod_revision: 2,
        version: 1,
        value: b"1".to_vec(),
        lease: 0,
    };
    assert_eq!(get(&store, b"a"), Some(first.clone()));

    let events = put(&mut store, b"a", b"2");
    assert_eq!(store.revision(), 3);
    assert_eq!(events[0].prev_kv(), Some(first.clone()));
    let second = get(&store, b"a").unwrap();
    assert_eq!(
        (second.create_revision, second.mod_revision, second.version),
        (2, 3, 2)
    );

    let deleted = delete(&mut store, b"a", b"");
    assert_eq!(deleted, vec![second.clone()]);
    assert_eq!(store.revision(), 4);
    assert_eq!(get(&store, b"a"), None);

    put(&mut store, b"a", b"3");
    let third = get(&store, b"a").unwrap();
    assert_eq!(
        (third.create_revision, third.mod_revision, third.version),
        (5, 5, 1)
    );

    // Reads at old revisions.
    assert_eq!(get_at(&store, b"a", 1).unwrap().kvs, vec![]);
    assert_eq!(get_at(&store, b"a", 2).unwrap().kvs, vec![first]);
    assert_eq!(get_at(&store, b"a", 3).unwrap().kvs, vec![second]);
    assert_eq!(get_at(&store, b"a", 4).unwrap().kvs, vec![]);
    assert_eq!(get_at(&store, b"a", 5).unwrap().kvs, vec![third]);
    assert_eq!(get_at(&store, b"a", 2).unwrap().revision, 5);
    assert_eq!(
        get_at(&store, b"a", 6).unwrap_err(),
        MvccError::FutureRevision
    );
    assert_eq!(
        MvccError::FutureRevision.to_string(),
        "mvcc: required revision is a future revision"
    );
    assert_eq!(
        MvccError::Compacted.to_string(),
        "mvcc: required revision has been compacted"
    );
}

#[test]
fn delete_of_missing_key_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    put(&mut store, b"a", b"1");
    assert!(delete(&mut store, b"zz", b"").is_empty());
    assert_eq!(store.revision(), 2);
    assert!(delete(&mut store, b"b", b"c").is_empty());
    assert_eq!(store.revision(), 2);
}

#[test]
fn delete_event_has_key_and_revision_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    put(&mut store, b"a", b"1");
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    txn.delete_range(b"a", b"");
    let events = txn.end();
    batch.commit(9);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Delete);
    assert_eq!(
        events[0].kv(),
        KeyValue {
            key: b"a".to_vec(),
            mod_revision: 3,
            ..KeyValue::default()
        }
    );
    assert_eq!(events[0].prev_kv().as_ref().unwrap().value, b"1");
    assert_eq!(store.applied_index(), 9);
}

fn store_with_keys() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    for key in [
        &b"a"[..],
        b"ab",
        b"b",
        b"c",
        b"c\x00",
        b"d",
        b"\x00",
        b"\xff",
    ] {
        put(&mut store, key, b"v");
    }
    (dir, store)
}

#[test]
fn range_forms() {
    let (_dir, store) = store_with_keys();
    let view = store.reader().view();
    let range = |key: &[u8], range_end: &[u8]| {
        view.range(&RangeOptions {
            key,
            range_end,
            ..RangeOptions::default()
        })
        .unwrap()
    };
    assert_eq!(keys(&range(b"ab", b"")), [b"ab"]);
    assert_eq!(keys(&range(b"zz", b"")), Vec::<&[u8]>::new());
    assert_eq!(keys(&range(b"a", b"c")), [&b"a"[..], b"ab", b"b"]);
    assert_eq!(keys(&range(b"a", b"c\x00")), [&b"a"[..], b"ab", b"b", b"c"]);
    assert_eq!(
        keys(&range(b"c", b"\x00")),
        [&b"c"[..], b"c\x00", b"d", b"\xff"]
    );
    let all = range(b"\x00", b"\x00");
    assert_eq!(all.count, 8);
    assert_eq!(keys(&all)[0], b"\x00");
    // Prefix range as etcdctl --prefix builds it.
    assert_eq!(keys(&range(b"a", b"b")), [&b"a"[..], b"ab"]);
    // range_end <= key: empty.
    assert_eq!(range(b"c", b"b").count, 0);
    assert_eq!(range(b"c", b"c").count, 0);
    assert_eq!(range(b"a", b"c").revision, store.revision());
}

#[test]
fn limit_count_more_keys_only_count_only() {
    let (_dir, store) = store_with_keys();
    let view = store.reader().view();
    let limited = view
        .range(&RangeOptions {
            key: b"a",
            range_end: b"\x00",
            limit: 3,
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!(keys(&limited), [&b"a"[..], b"ab", b"b"]);
    assert_eq!(limited.count, 7);
    assert!(limited.more);
    let exact = view
        .range(&RangeOptions {
            key: b"a",
            range_end: b"b",
            limit: 2,
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!((exact.count, exact.more), (2, false));
    let keys_only = view
        .range(&RangeOptions {
            key: b"a",
            range_end: b"b",
            keys_only: true,
            ..RangeOptions::default()
        })
        .unwrap();
    assert!(keys_only
        .kvs
        .iter()
        .all(|kv| kv.value.is_empty() && kv.version == 1));
    assert_eq!(keys_only.kvs.len(), 2);
    let count_only = view
        .range(&RangeOptions {
            key: b"\x00",
            range_end: b"\x00",
            count_only: true,
            limit: 1,
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!(
        (count_only.kvs.len(), count_only.count, count_only.more),
        (0, 8, false)
    );
}

#[test]
fn descending_ranges_as_etcd_sort_descend_by_key() {
    let (_dir, store) = store_with_keys();
    let view = store.reader().view();
    let descending = |key: &[u8], range_end: &[u8], limit: i64| {
        view.range_descending(&RangeOptions {
            key,
            range_end,
            limit,
            ..RangeOptions::default()
        })
        .unwrap()
    };
    assert_eq!(keys(&descending(b"ab", b"", 0)), [b"ab"]);
    assert_eq!(keys(&descending(b"zz", b"", 0)), Vec::<&[u8]>::new());
    assert_eq!(keys(&descending(b"a", b"c", 0)), [&b"b"[..], b"ab", b"a"]);
    assert_eq!(
        keys(&descending(b"c", b"\x00", 0)),
        [&b"\xff"[..], b"d", b"c\x00", b"c"]
    );
    // etcd sorts every match, then keeps the first `limit`: the largest keys.
    let limited = descending(b"\x00", b"\x00", 3);
    assert_eq!(keys(&limited), [&b"\xff"[..], b"d", b"c\x00"]);
    assert_eq!((limited.count, limited.more), (8, true));
    let exact = descending(b"a", b"b", 2);
    assert_eq!(keys(&exact), [&b"ab"[..], b"a"]);
    assert_eq!((exact.count, exact.more), (2, false));
    assert_eq!(descending(b"c", b"b", 0).count, 0);
    // A key deleted, and a read at a revision before the delete.
    let (_dir, mut store) = store_with_keys();
    delete(&mut store, b"b", b"c");
    let view = store.reader().view();
    let now = view
        .range_descending(&RangeOptions {
            key: b"a",
            range_end: b"c",
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!(keys(&now), [&b"ab"[..], b"a"]);
    let before = view
        .range_descending(&RangeOptions {
            key: b"a",
            range_end: b"c",
            revision: store.revision() - 1,
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!(keys(&before), [&b"b"[..], b"ab", b"a"]);
    assert_eq!(
        view.range_descending(&RangeOptions {
            key: b"a",
            revision: store.revision() + 1,
            ..RangeOptions::default()
        }),
        Err(MvccError::FutureRevision)
    );
    // Inside a txn: its own writes, newest version of each key.
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    txn.put(b"aa", b"1", 0);
    txn.put(b"aa", b"2", 0);
    txn.delete_range(b"ab", b"");
    let inside = txn
        .range_descending(&RangeOptions {
            key: b"a",
            range_end: b"b",
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!(keys(&inside), [&b"aa"[..], b"a"]);
    assert_eq!(
        (inside.kvs[0].value.as_slice(), inside.kvs[0].version),
        (&b"2"[..], 2)
    );
    txn.end();
    batch.commit(applied);
}

#[test]
fn txn_with_several_ops_gets_one_revision_and_sees_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    put(&mut store, b"x", b"0");
    let reader = store.reader();
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    let before = txn
        .range(&RangeOptions {
            key: b"x",
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!(before.revision, 2);
    txn.put(b"a", b"1", 7);
    txn.put(b"b", b"1", 0);
    let previous = txn.put_with_previous(b"a", b"2", 7).unwrap();
    assert_eq!((previous.mod_revision, previous.version), (3, 1));
    let inside = txn
        .range(&RangeOptions {
            key: b"a",
            range_end: b"c",
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!(inside.revision, 3);
    assert_eq!(inside.kvs[0].value, b"2");
    assert_eq!(inside.kvs[0].version, 2);
    assert_eq!(inside.kvs[0].lease, 7);
    let deleted = txn.delete_range(b"b", b"");
    assert_eq!(deleted.len(), 1);
    let events = txn.end();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|event| event.mod_revision() == 3));
    // Two txns in one batch: two revisions, published together.
    let mut txn = batch.txn();
    txn.put(b"c", b"1", 0);
    txn.end();
    assert_eq!(reader.view().revision(), 2);
    batch.commit(5);
    let view = reader.view();
    assert_eq!((view.revision(), view.applied_index()), (4, 5));
    assert_eq!(store.revision(), 4);
    assert_eq!(get(&store, b"a").unwrap().mod_revision, 3);
    assert_eq!(get(&store, b"b"), None);
    assert_eq!(get(&store, b"c").unwrap().create_revision, 4);
    // A read-only txn leaves the revision alone.
    let mut batch = store.write_batch();
    batch.txn().end();
    batch.commit(6);
    assert_eq!(store.revision(), 4);
}

/// A batch no watcher sees keeps events only for changes that attach a key
/// to a lease or detach it: key, revision and both leases, for the lessor.
/// What the store writes, and what a put returns as its prev_kv, do not
/// change.
#[test]
fn a_batch_of_lease_events_keeps_only_changes_involving_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    put(&mut store, b"leased", b"0");
    put(&mut store, b"plain", b"0");
    let mut batch = store.write_batch();
    batch.set_event_detail(Detail::Leases);
    let mut txn = batch.txn();
    txn.put(b"plain", b"1", 0); // no lease before or after: no event
    txn.put(b"leased", b"1", 9); // attached
    let previous = txn.put_with_previous(b"plain", b"2", 0).unwrap();
    assert_eq!(
        (previous.value.as_slice(), previous.mod_revision),
        (&b"1"[..], 4)
    );
    txn.put(b"new", b"1", 0);
    let events = txn.end();
    assert_eq!(events.len(), 1);
    let attached = &events[0];
    assert_eq!(
        (attached.kind, attached.detail()),
        (EventKind::Put, Detail::Leases)
    );
    assert_eq!(attached.key(), b"leased");
    assert_eq!((attached.mod_revision(), attached.lease()), (4, 9));
    assert_eq!(attached.prev_lease(), 0);
    let mut txn = batch.txn();
    txn.put(b"leased", b"2", 0); // detached
    txn.delete_range(b"new", b"");
    let events = txn.end();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].lease(), events[0].prev_lease()), (0, 9));
    let mut txn = batch.txn();
    txn.put(b"leased", b"3", 4);
    txn.delete_range(b"leased", b""); // a leased key deleted: detached
    let events = txn.end();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].kind, EventKind::Delete);
    assert_eq!(events[1].prev_lease(), 4);
    assert_eq!(batch.revision(), 6);
    batch.commit(9);
    let plain = get(&store, b"plain").unwrap();
    assert_eq!((plain.value.as_slice(), plain.version), (&b"2"[..], 3));
    assert_eq!(get(&store, b"new"), None);
    assert_eq!(get(&store, b"leased"), None);
    // Such an event has no value to give.
    let result = std::panic::catch_unwind(|| events[0].value().len());
    assert!(result.is_err());
}

#[test]
fn view_taken_before_a_batch_is_unchanged_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    for number in 0..2000 {
        put(&mut store, format!("key{number:05}").as_bytes(), b"old");
    }
    let old_view = store.reader().view();
    let all = RangeOptions {
        key: b"\x00",
        range_end: b"\x00",
        ..RangeOptions::default()
    };
    let before = old_view.range(&all).unwrap();
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    for number in 0..2000 {
        txn.put(format!("key{number:05}").as_bytes(), b"new", 0);
    }
    txn.delete_range(b"key00100", b"key00200");
    txn.end();
    batch.commit(10_000);
    assert_eq!(old_view.range(&all).unwrap(), before);
    assert_eq!(old_view.revision(), 2001);
    let now = store.reader().view().range(&all).unwrap();
    assert_eq!(now.count, 1900);
    assert!(now.kvs.iter().all(|kv| kv.value == b"new"));
}

#[test]
fn reader_works_from_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    let reader = store.reader();
    let (sender, receiver) = std::sync::mpsc::channel::<i64>();
    let (ack_sender, ack_receiver) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for expected in receiver {
            let view = reader.view();
            assert_eq!(view.revision(), expected);
            let result = view
                .range(&RangeOptions {
                    key: b"k",
                    ..RangeOptions::default()
                })
                .unwrap();
            seen.push(result.kvs[0].version);
            ack_sender.send(()).unwrap();
        }
        seen
    });
    for round in 0..50 {
        put(&mut store, b"k", format!("{round}").as_bytes());
        sender.send(store.revision()).unwrap();
        ack_receiver.recv().unwrap();
    }
    drop(sender);
    assert_eq!(thread.join().unwrap(), (1..=50).collect::<Vec<i64>>());
}

/// Puts over many leaves (1 KiB values: a few entries per leaf), so a
/// put's newest revision is often in the leaf after the new entry's and
/// the put looks it up in a second descent: previous kvs, versions,
/// create revisions and events follow a model on both paths, also after
/// deletes and puts of one key twice in a txn.
#[test]
fn puts_across_leaves_follow_a_model() {
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    // key -> (create_revision, mod_revision, version, value)
    let mut model: HashMap<Vec<u8>, (i64, i64, i64, Vec<u8>)> = HashMap::new();
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    for round in 0..3000 {
        let key = format!("key/{:04}", next(400)).into_bytes();
        if next(10) == 0 {
            let deleted = delete(&mut store, &key, b"");
            assert_eq!(deleted.len(), usize::from(model.remove(&key).is_some()));
            continue;
        }
        let value = vec![b'a' + (round % 26) as u8; 1024];
        let applied = store.applied_index() + 1;
        let revision = store.reader().view().revision() + 1;
        let twice = next(8) == 0;
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        let previous = txn.put_with_previous(&key, &value, 0);
        let expected = model.get(&key).cloned();
        assert_eq!(
            previous.map(|kv| (kv.create_revision, kv.mod_revision, kv.version, kv.value)),
            expected.clone(),
            "round {round}"
        );
        let (create_revision, version) = match &expected {
            Some((create, _, version, _)) => (*create, version + 1),
            None => (revision, 1),
        };
        let mut entry = (create_revision, revision, version, value.clone());
        if twice {
            let again = txn.put_with_previous(&key, b"again", 0).unwrap();
            assert_eq!((again.version, again.value), (version, value.clone()));
            entry = (create_revision, revision, version + 1, b"again".to_vec());
        }
        let events = txn.end();
        batch.commit(applied);
        let last = events.last().unwrap();
        assert_eq!(
            (
                last.kv().create_revision,
                last.kv().mod_revision,
                last.kv().version
            ),
            (entry.0, entry.1, entry.2)
        );
        model.insert(key, entry);
    }
    let view = store.reader().view();
    for (key, (create, modified, version, value)) in &model {
        let kv = &view
            .range(&RangeOptions {
                key,
                ..RangeOptions::default()
            })
            .unwrap()
            .kvs[0];
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.version, &kv.value),
            (*create, *modified, *version, value)
        );
    }
}

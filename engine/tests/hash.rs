//! Guards Maintenance's hashes (`ReadView::hash_kv`, `ReadView::hash`):
//! stores fed the same operations agree at every revision, across persist
//! and reopen; any difference in MVCC history shows in both, a lease
//! difference only in `hash`; revision checks as Range's.

use keel_engine::{MvccError, ReadView, Store, StoreOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::Arc;

fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

/// Applies `rounds` random batches (puts, deletes, leases, compactions)
/// drawn from `seed`; returns the view after each batch.
fn drive(store: &mut Store, seed: u64, rounds: usize) -> Vec<Arc<ReadView>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut views = Vec::new();
    for round in 0..rounds {
        let applied = store.applied_index() + 1;
        let compact_to = (round % 40 == 39).then(|| {
            let low = store.compact_revision() + 1;
            rng.random_range(low..=store.revision().max(low))
        });
        let mut batch = store.write_batch();
        if rng.random_bool(0.2) {
            batch.put_lease(rng.random_range(1..5), rng.random_range(1..100));
        }
        if rng.random_bool(0.1) {
            batch.delete_lease(rng.random_range(1..5));
        }
        let mut txn = batch.txn();
        for _ in 0..rng.random_range(0..4) {
            let key = format!("k{}", rng.random_range(0..12)).into_bytes();
            if rng.random_range(0..10) < 7 {
                txn.put(&key, format!("v{round}").as_bytes(), 0);
            } else {
                txn.delete_range(&key, b"");
            }
        }
        txn.end();
        if let Some(target) = compact_to {
            // Fails (changing nothing) when nothing is left to compact to.
            let _ = batch.compact(target);
        }
        batch.commit(applied);
        views.push(store.reader().view());
    }
    views
}

#[test]
fn equal_histories_hash_equal_at_every_revision() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = open(&dir.path().join("first"));
    let mut second = open(&dir.path().join("second"));
    let first_views = drive(&mut first, 5, 200);
    let second_views = drive(&mut second, 5, 200);
    for (one, other) in first_views.iter().zip(&second_views) {
        assert_eq!(one.hash(), other.hash());
        assert_eq!(one.hash_kv(0), other.hash_kv(0));
        let revision = one.revision();
        let compact = one.compact_revision();
        for at in compact.max(1)..=revision {
            assert_eq!(one.hash_kv(at), other.hash_kv(at), "at {at}");
        }
    }
    // The last view's hash at an older revision is what a view taken at
    // that revision hashed, as long as no compaction came between.
    let last = first.reader().view();
    for view in first_views
        .iter()
        .filter(|view| view.compact_revision() == last.compact_revision())
    {
        let (crc, _) = view.hash_kv(0).unwrap();
        assert_eq!(last.hash_kv(view.revision()).unwrap().0, crc);
    }

    // Persist + reopen changes neither hash.
    let (before_kv, before) = (last.hash_kv(0).unwrap(), last.hash());
    first.persist().unwrap();
    drop(first);
    let reopened = open(&dir.path().join("first"));
    let view = reopened.reader().view();
    assert_eq!(view.hash_kv(0).unwrap(), before_kv);
    assert_eq!(view.hash(), before);
}

#[test]
fn differences_show() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<Store> = (0..4)
        .map(|number| open(&dir.path().join(format!("db{number}"))))
        .collect();
    for store in &mut stores {
        drive(store, 11, 60);
    }
    let put = |store: &mut Store, key: &[u8], value: &[u8]| {
        let applied = store.applied_index() + 1;
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        txn.put(key, value, 0);
        txn.end();
        batch.commit(applied);
    };
    put(&mut stores[0], b"x", b"1");
    put(&mut stores[1], b"x", b"2");
    put(&mut stores[2], b"y", b"1");
    put(&mut stores[3], b"x", b"1");
    let mut batch = stores[3].write_batch();
    batch.put_lease(77, 5);
    batch.commit(1000);

    let hashes: Vec<(u32, u32)> = stores
        .iter()
        .map(|store| {
            let view = store.reader().view();
            (view.hash_kv(0).unwrap().0, view.hash())
        })
        .collect();
    // Another value, another key: both hashes differ.
    for (one, other) in [(0, 1), (0, 2), (1, 2)] {
        assert_ne!(hashes[one].0, hashes[other].0, "hash_kv {one} vs {other}");
        assert_ne!(hashes[one].1, hashes[other].1, "hash {one} vs {other}");
    }
    // Only a lease apart: HashKV agrees, Hash does not.
    assert_eq!(hashes[0].0, hashes[3].0);
    assert_ne!(hashes[0].1, hashes[3].1);
    // Before the differing put, all agree on HashKV.
    let before = stores[0].revision() - 1;
    let at_before: Vec<u32> = stores
        .iter()
        .map(|store| store.reader().view().hash_kv(before).unwrap().0)
        .collect();
    assert!(at_before.windows(2).all(|pair| pair[0] == pair[1]));
}

#[test]
fn revision_checks_as_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir.path().join("db"));
    let empty = store.reader().view();
    assert_eq!(empty.hash_kv(0), Ok((0, 0)));
    assert_eq!(empty.hash(), 0);
    drive(&mut store, 3, 100);
    let view = store.reader().view();
    let revision = view.revision();
    let compact = view.compact_revision();
    assert!(compact > 1, "the drive compacted");
    assert_eq!(view.hash_kv(revision + 1), Err(MvccError::FutureRevision));
    assert_eq!(view.hash_kv(compact - 1), Err(MvccError::Compacted));
    assert_eq!(view.hash_kv(compact).unwrap().1, compact);
    assert_eq!(view.hash_kv(-1), view.hash_kv(revision));
    assert_eq!(view.hash_kv(0), view.hash_kv(revision));
    assert_ne!(view.hash_kv(0).unwrap().0, 0);
}

//! Compaction against a model: random puts, deletes and compactions; after
//! each compaction every read at a revision >= the compaction point is what
//! it was, reads below it fail with `Compacted`, the tree holds exactly the
//! entries a compaction must keep, and all of it survives persist + reopen.

use keel_engine::{MvccError, RangeOptions, Store, StoreOptions, COMPACTION_BATCH_KEYS_MAX};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// The model at one revision: user key -> (create, mod, version, value).
type Model = BTreeMap<Vec<u8>, (i64, i64, i64, Vec<u8>)>;

/// One tree entry the store wrote: (key, main, sub, is tombstone).
type Written = (Vec<u8>, i64, i64, bool);

fn random_key(rng: &mut StdRng, key_space: u32) -> Vec<u8> {
    let number = rng.random_range(0..key_space);
    if number % 7 == 0 {
        vec![b'k', 0, number as u8]
    } else {
        format!("k{number:05}").into_bytes()
    }
}

/// What the tree must hold after compacting to `compact`: every entry above
/// it, and per key the newest entry at or below it unless a tombstone.
fn expected_entries(written: &[Written], compact: i64) -> usize {
    let mut newest_at_or_below: BTreeMap<&[u8], (i64, i64, bool)> = BTreeMap::new();
    let mut above = 0;
    for (key, main, sub, tombstone) in written {
        if *main > compact {
            above += 1;
            continue;
        }
        let slot = newest_at_or_below
            .entry(key.as_slice())
            .or_insert((*main, *sub, *tombstone));
        if (*main, *sub) > (slot.0, slot.1) {
            *slot = (*main, *sub, *tombstone);
        }
    }
    above
        + newest_at_or_below
            .values()
            .filter(|(_, _, tombstone)| !tombstone)
            .count()
}

fn read_all(store: &Store, revision: i64) -> Result<Model, MvccError> {
    let result = store.reader().view().range(&RangeOptions {
        key: &[0],
        range_end: &[0],
        revision,
        ..RangeOptions::default()
    })?;
    Ok(result
        .kvs
        .into_iter()
        .map(|kv| {
            (
                kv.key,
                (kv.create_revision, kv.mod_revision, kv.version, kv.value),
            )
        })
        .collect())
}

fn check(store: &Store, history: &[Model], written: &[Written]) {
    let compact = store.compact_revision();
    // Long histories: every revision near the compaction point and the end,
    // about 200 more spread between.
    let last = history.len() as i64 - 1;
    let step = (last / 200).max(1);
    let checked = (1..=last).filter(|revision| {
        (revision - compact).abs() <= 2 || last - revision <= 2 || revision % step == 0
    });
    for revision in checked {
        let read = read_all(store, revision);
        if revision < compact {
            assert_eq!(read, Err(MvccError::Compacted), "rev {revision}");
        } else {
            assert_eq!(
                read.as_ref(),
                Ok(&history[revision as usize]),
                "rev {revision}, compacted at {compact}"
            );
        }
    }
    if compact > 0 {
        assert_eq!(
            store.tree_entry_count(),
            expected_entries(written, compact) as u64,
            "entries after compacting to {compact}"
        );
    } else {
        assert_eq!(store.tree_entry_count(), written.len() as u64);
    }
}

/// Runs `rounds` random txns, compacting every `compact_every` rounds to a
/// random revision, checking against the model after each compaction and
/// after a reopen.
fn run(seed: u64, rounds: usize, key_space: u32, compact_every: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    let mut history: Vec<Model> = vec![Model::new(), Model::new()];
    let mut written: Vec<Written> = Vec::new();
    let mut applied = 0;
    for round in 0..rounds {
        let mut model = history.last().unwrap().clone();
        let main = store.revision() + 1;
        let mut sub = 0;
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        for _ in 0..rng.random_range(1..4) {
            let key = random_key(&mut rng, key_space);
            if rng.random_range(0..10) < 7 {
                let value = format!("v{round}").into_bytes();
                txn.put(&key, &value, 0);
                let (create, version) = match model.get(&key) {
                    Some((create, _, version, _)) => (*create, version + 1),
                    None => (main, 1),
                };
                model.insert(key.clone(), (create, main, version, value));
                written.push((key, main, sub, false));
                sub += 1;
            } else {
                for deleted in txn.delete_range(&key, b"") {
                    model.remove(&deleted.key);
                    written.push((deleted.key, main, sub, true));
                    sub += 1;
                }
            }
        }
        txn.end();
        applied += 1;
        batch.commit(applied);
        if sub > 0 {
            history.push(model);
        }
        if round % compact_every == compact_every - 1 {
            let current = store.revision();
            let old_compact = store.compact_revision();
            let target = rng.random_range(old_compact + 1..=current);
            let view_before = store.reader().view();
            let mut batch = store.write_batch();
            if old_compact > 0 {
                assert_eq!(batch.compact(old_compact), Err(MvccError::Compacted));
            }
            assert_eq!(batch.compact(current + 1), Err(MvccError::FutureRevision));
            batch.compact(target).unwrap();
            assert_eq!(batch.compact(target), Err(MvccError::Compacted));
            applied += 1;
            batch.commit(applied);
            assert_eq!(store.compact_revision(), target);
            assert_eq!(store.revision(), current, "compaction is no revision");
            // A view taken before keeps its root: old revisions still read.
            let old = view_before.range(&RangeOptions {
                key: &[0],
                range_end: &[0],
                revision: old_compact.max(1),
                count_only: true,
                ..RangeOptions::default()
            });
            assert_eq!(
                old.unwrap().count,
                history[old_compact.max(1) as usize].len() as i64
            );
            check(&store, &history, &written);
            if round % (compact_every * 3) == compact_every * 3 - 1 {
                store.persist().unwrap();
            }
        }
    }
    check(&store, &history, &written);
    store.persist().unwrap();
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert!(store.compact_revision() > 0);
    check(&store, &history, &written);
}

#[test]
fn random_ops_and_compactions_match_model() {
    for seed in 0..4u64 {
        run(seed, 300, 40, 37);
    }
}

#[test]
fn compaction_larger_than_one_removal_batch_matches_model() {
    // Enough superseded entries for several removal chunks.
    let rounds = COMPACTION_BATCH_KEYS_MAX * 2;
    run(7, rounds, 500, rounds / 3);
}

#[test]
fn compact_only_change_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    for round in 0..5 {
        let mut batch = store.write_batch();
        batch.txn().put(b"a", format!("{round}").as_bytes(), 0);
        batch.commit(round + 1);
    }
    store.persist().unwrap();
    let mut batch = store.write_batch();
    // Revisions 2..=6 hold the puts: 2 and 3 are superseded at 4.
    assert_eq!(batch.compact(4), Ok(2));
    // Same applied index: only the compaction point changed.
    batch.commit(5);
    store.persist().unwrap();
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.compact_revision(), 4);
    assert_eq!(store.tree_entry_count(), 3);
    assert_eq!(read_all(&store, 3), Err(MvccError::Compacted));
    assert_eq!(read_all(&store, 4).unwrap()[&b"a"[..]].3, b"2");
}

#[test]
#[ignore = "timing figure, run by hand in release"]
fn compaction_timing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
    let keys = 100_000u32;
    for round in 0..10u64 {
        let mut batch = store.write_batch();
        for number in 0..keys {
            let mut txn = batch.txn();
            txn.put(format!("key{number:08}").as_bytes(), &[1u8; 64], 0);
            txn.end();
        }
        batch.commit(round + 1);
    }
    let entries = store.tree_entry_count();
    let target = store.revision() - i64::from(keys) / 2;
    let started = std::time::Instant::now();
    let mut batch = store.write_batch();
    let removed = batch.compact(target).unwrap();
    batch.commit(11);
    eprintln!(
        "compacted {entries} entries, removed {removed} in {:?}",
        started.elapsed()
    );
}

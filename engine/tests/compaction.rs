//! Compaction against a model: random puts, deletes and compactions; after
//! each compaction every read at a revision >= the compaction point is what
//! it was, reads below it fail with `Compacted`, the tree holds exactly the
//! entries a compaction must keep, and all of it survives persist + reopen.
//! The same for incremental compaction (`compact_start` + `compact_step`)
//! interleaved with writes, against a twin store compacted in one go, and
//! a reopen after a persist in the middle of a pending removal.

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
    check_reads(store, history);
    let compact = store.compact_revision();
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

/// Reads at revisions >= the compaction point match the model, reads below
/// it fail with `Compacted`.
fn check_reads(store: &Store, history: &[Model]) {
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

/// One random txn of puts and deletes applied to `stores` alike (each in
/// its own batch committed at `applied`), recorded in `history` and
/// `written`.
fn random_txn(
    rng: &mut StdRng,
    stores: &mut [&mut Store],
    history: &mut Vec<Model>,
    written: &mut Vec<Written>,
    key_space: u32,
    applied: u64,
) {
    let mut model = history.last().unwrap().clone();
    let main = stores[0].revision() + 1;
    let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for _ in 0..rng.random_range(1..4) {
        let key = random_key(rng, key_space);
        if rng.random_range(0..10) < 7 {
            changes.push((key, Some(format!("v{main}.{}", changes.len()).into_bytes())));
        } else {
            changes.push((key, None));
        }
    }
    let mut sub = 0;
    for (index, store) in stores.iter_mut().enumerate() {
        let record = index == 0;
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        for (key, value) in &changes {
            match value {
                Some(value) => {
                    txn.put(key, value, 0);
                    if record {
                        let (create, version) = match model.get(key) {
                            Some((create, _, version, _)) => (*create, version + 1),
                            None => (main, 1),
                        };
                        model.insert(key.clone(), (create, main, version, value.clone()));
                        written.push((key.clone(), main, sub, false));
                        sub += 1;
                    }
                }
                None => {
                    for deleted in txn.delete_range(key, b"") {
                        if record {
                            model.remove(&deleted.key);
                            written.push((deleted.key, main, sub, true));
                            sub += 1;
                        }
                    }
                }
            }
        }
        txn.end();
        batch.commit(applied);
    }
    if sub > 0 {
        history.push(model);
    }
    assert_eq!(stores[0].revision(), stores[1].revision());
}

/// Watch history of every key from `start_revision`, in chunks.
fn all_events(store: &Store, start_revision: i64) -> Vec<keel_engine::Event> {
    let view = store.reader().view();
    let mut events = Vec::new();
    let mut next = start_revision;
    while next <= view.revision() {
        let chunk = view.events(&[0], &[0], next, 64).unwrap();
        events.extend(chunk.events);
        next = chunk.next_revision;
    }
    events
}

/// Hashes and watch history from the point of the incremental store against
/// its twin compacted in one go; and, if `leftovers_gone_when_idle`, the
/// whole tree once no removal is pending (not so after a reopen, which
/// keeps the leftovers of a removal cut short).
fn check_against_twin(incremental: &Store, twin: &Store, leftovers_gone_when_idle: bool) {
    let compact = incremental.compact_revision();
    assert_eq!(compact, twin.compact_revision());
    let (view, twin_view) = (incremental.reader().view(), twin.reader().view());
    for revision in [compact.max(1), (compact + view.revision()) / 2, 0] {
        if revision >= compact {
            assert_eq!(
                view.hash_kv(revision),
                twin_view.hash_kv(revision),
                "hash_kv at {revision}, point {compact}"
            );
        }
    }
    assert_eq!(
        all_events(incremental, compact.max(1)),
        all_events(twin, compact.max(1)),
        "events from the point {compact}"
    );
    if leftovers_gone_when_idle && !incremental.compaction_pending() {
        assert_eq!(view.hash(), twin_view.hash(), "trees at point {compact}");
        assert_eq!(incremental.tree_entry_count(), twin.tree_entry_count());
    }
}

/// Random txns interleaved with `compact_start` (sometimes while a removal
/// is pending) and small `compact_step`s, and now and then a persist;
/// every read at every revision >= the point matches the model throughout,
/// and once the steps finish the tree is exactly the twin's, which ran
/// `compact` at the same moments.
fn run_incremental(seed: u64, rounds: usize, key_space: u32) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    let mut twin = Store::open(&dir.path().join("twin"), StoreOptions::default()).unwrap();
    let mut history: Vec<Model> = vec![Model::new(), Model::new()];
    let mut written: Vec<Written> = Vec::new();
    let mut applied = 0;
    let mut finished_pending = 0;
    for round in 0..rounds {
        applied += 1;
        let choice = rng.random_range(0..100);
        if choice < 60 || store.revision() < 3 {
            random_txn(
                &mut rng,
                &mut [&mut store, &mut twin],
                &mut history,
                &mut written,
                key_space,
                applied,
            );
        } else if choice < 68 {
            let old_compact = store.compact_revision();
            let current = store.revision();
            if old_compact >= current {
                continue;
            }
            let target = rng.random_range(old_compact + 1..=current);
            let mut batch = store.write_batch();
            if old_compact > 0 {
                assert_eq!(batch.compact_start(old_compact), Err(MvccError::Compacted));
            }
            assert_eq!(
                batch.compact_start(current + 1),
                Err(MvccError::FutureRevision)
            );
            batch.compact_start(target).unwrap();
            assert_eq!(batch.compact_start(target), Err(MvccError::Compacted));
            batch.commit(applied);
            assert!(store.compaction_pending());
            assert_eq!(store.compact_revision(), target);
            let mut twin_batch = twin.write_batch();
            twin_batch.compact(target).unwrap();
            twin_batch.commit(applied);
            check_reads(&store, &history);
            check_against_twin(&store, &twin, true);
        } else if choice < 97 {
            let mut batch = store.write_batch();
            let more = batch.compact_step(rng.random_range(1..6));
            batch.commit(applied);
            assert_eq!(more, store.compaction_pending());
            if !more && store.compact_revision() > 0 {
                finished_pending += 1;
            }
            if round % 7 == 0 || !more {
                check_reads(&store, &history);
                check_against_twin(&store, &twin, true);
            }
        } else {
            store.persist().unwrap();
        }
    }
    // Drain what is left, with writes between the steps.
    let mut steps = 0;
    while store.compaction_pending() {
        steps += 1;
        assert!(steps < 100_000, "compaction steps make progress");
        let mut batch = store.write_batch();
        batch.compact_step(3);
        applied += 1;
        batch.commit(applied);
        if steps % 5 == 0 {
            applied += 1;
            random_txn(
                &mut rng,
                &mut [&mut store, &mut twin],
                &mut history,
                &mut written,
                key_space,
                applied,
            );
        }
    }
    assert!(finished_pending > 0, "some removal ran to its end mid-run");
    check(&store, &history, &written);
    check(&twin, &history, &written);
    check_against_twin(&store, &twin, true);
    // No pending removal: a step does nothing.
    let mut batch = store.write_batch();
    assert!(!batch.compact_step(10));
    batch.commit(applied);
    store.persist().unwrap();
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    check(&store, &history, &written);
}

#[test]
fn incremental_compaction_interleaved_with_writes_matches_model() {
    for seed in 0..4u64 {
        run_incremental(seed, 600, 30);
    }
}

#[test]
fn incremental_compaction_with_wide_key_space_matches_model() {
    run_incremental(11, 1500, 400);
}

#[test]
fn compact_finishes_a_pending_incremental_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
    for round in 0..20u64 {
        let mut batch = store.write_batch();
        batch
            .txn()
            .put(format!("k{}", round % 4).as_bytes(), b"v", 0);
        batch.commit(round + 1);
    }
    let mut batch = store.write_batch();
    batch.compact_start(10).unwrap();
    assert!(batch.compact_step(1));
    // Revisions 2..=21; at 15 each of the 4 keys keeps one entry at or
    // below it, and 6 lie above: 10 in all.
    batch.compact(15).unwrap();
    batch.commit(21);
    assert!(!store.compaction_pending());
    assert_eq!(store.tree_entry_count(), 10);
}

/// A persist in the middle of a pending removal, then a reopen (as after a
/// crash): the store opens with the point and, because its revision index
/// still starts below the point, with the removal pending again; the
/// leftover superseded entries are in the tree yet invisible to reads,
/// hashes and watch history at every revision >= the point; the resumed
/// steps remove them, leaving the tree a one-go compaction leaves.
#[test]
fn reopen_after_persist_mid_incremental_compaction_reads_correctly() {
    let mut rng = StdRng::seed_from_u64(21);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    let mut twin = Store::open(&dir.path().join("twin"), StoreOptions::default()).unwrap();
    let mut history: Vec<Model> = vec![Model::new(), Model::new()];
    let mut written: Vec<Written> = Vec::new();
    let mut applied = 0;
    for _ in 0..400 {
        applied += 1;
        random_txn(
            &mut rng,
            &mut [&mut store, &mut twin],
            &mut history,
            &mut written,
            50,
            applied,
        );
    }
    let target = store.revision() - 50;
    applied += 1;
    let mut batch = store.write_batch();
    batch.compact_start(target).unwrap();
    assert!(batch.compact_step(20));
    batch.commit(applied);
    let mut twin_batch = twin.write_batch();
    twin_batch.compact(target).unwrap();
    twin_batch.commit(applied);
    // Writes after the start, then one more step, all before the persist.
    for _ in 0..20 {
        applied += 1;
        random_txn(
            &mut rng,
            &mut [&mut store, &mut twin],
            &mut history,
            &mut written,
            50,
            applied,
        );
    }
    let mut batch = store.write_batch();
    assert!(batch.compact_step(20));
    batch.commit(applied);
    store.persist().unwrap();
    // Work after the persist is lost with the "crash".
    let mut batch = store.write_batch();
    batch.compact_step(usize::MAX);
    batch.commit(applied);
    drop(store);

    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.compact_revision(), target);
    assert_eq!(store.applied_index(), applied);
    assert!(
        store.compaction_pending(),
        "the index shows the removal was cut short"
    );
    let expected = expected_entries(&written, target) as u64;
    assert!(
        store.tree_entry_count() > expected,
        "leftover superseded entries survive the reopen: {} vs {expected}",
        store.tree_entry_count()
    );
    check_reads(&store, &history);
    check_against_twin(&store, &twin, false);
    // The resumed removal finishes what the crash cut short.
    applied += 1;
    let mut batch = store.write_batch();
    let mut steps = 0;
    while batch.compact_step(7) {
        steps += 1;
        assert!(steps < 10_000);
    }
    batch.commit(applied);
    let twin_batch = twin.write_batch();
    twin_batch.commit(applied);
    assert_eq!(store.tree_entry_count(), expected);
    check_against_twin(&store, &twin, true);

    // The next compaction removes the leftovers of the old point too.
    let next_target = target + 10;
    applied += 1;
    let mut batch = store.write_batch();
    batch.compact_start(next_target).unwrap();
    let mut steps = 0;
    while batch.compact_step(7) {
        steps += 1;
        assert!(steps < 10_000);
    }
    batch.commit(applied);
    let mut twin_batch = twin.write_batch();
    twin_batch.compact(next_target).unwrap();
    twin_batch.commit(applied);
    check(&store, &history, &written);
    check_against_twin(&store, &twin, true);
}

/// A step handles `max_revisions` revisions of the index, in revision
/// order: a revision removes the put it superseded, if any.
#[test]
fn compact_step_handles_at_most_max_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
    // 100 keys written 3 times, one revision each: 200 entries superseded
    // at the last revision, by the revisions of the second and third round.
    for round in 0..3u64 {
        let mut batch = store.write_batch();
        for number in 0..100 {
            batch.txn().put(format!("k{number:03}").as_bytes(), b"v", 0);
        }
        batch.commit(round + 1);
    }
    let latest = store.revision();
    let mut batch = store.write_batch();
    batch.compact_start(latest).unwrap();
    batch.commit(4);
    assert_eq!(store.tree_entry_count(), 300, "the start removes nothing");
    for step in 1..=30u64 {
        let mut batch = store.write_batch();
        let more = batch.compact_step(10);
        batch.commit(4);
        // The first round's 100 revisions supersede nothing.
        let handled_later_rounds = (10 * step).saturating_sub(100);
        assert_eq!(store.tree_entry_count(), 300 - handled_later_rounds);
        assert_eq!(more, step < 30, "step {step}");
    }
    assert!(!store.compaction_pending());
}

/// Revision index entries are held back until the batch commits
/// (`Store::pending_index`); a compaction in the batch of the writes must
/// see them all the same: it removes what it removes in a batch of its own
/// after them.
#[test]
fn compaction_in_the_batch_of_the_writes_sees_their_index_entries() {
    let compacted = |same_batch: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db"), StoreOptions::default()).unwrap();
        let mut batch = store.write_batch();
        for key in [b"a", b"b", b"c"] {
            let mut txn = batch.txn();
            txn.put(key, b"1", 0);
            txn.end();
        }
        batch.commit(1);
        let mut batch = store.write_batch();
        for key in [b"a", b"b", b"a"] {
            let mut txn = batch.txn();
            txn.put(key, b"2", 0);
            txn.end();
        }
        if !same_batch {
            batch.commit(2);
            batch = store.write_batch();
        }
        // Revisions 2 to 4, then 5 to 7: compact at the newest.
        let removed = batch.compact(7).unwrap();
        batch.commit(3);
        (removed, store.tree_entry_count())
    };
    let (removed, left) = compacted(true);
    assert_eq!((removed, left), compacted(false));
    assert_eq!((removed, left), (3, 3), "one entry per key left");
}

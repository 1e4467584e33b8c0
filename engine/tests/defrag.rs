//! Guards online defrag (`Store::start_defrag`, `poll_defrag`, `defrag`):
//! the file shrinks to the live tree while the writer applies batches and
//! readers read views on other threads; every key, every kept revision and
//! the data written during and after the defrag read back, also after
//! reopening; persists and defrags never run at once (a defrag queues
//! behind a persist, a second defrag is refused). Crash and fault cases are
//! in `crash_defrag.rs`.

mod common;

use common::{everything, faulty_store_in, put_range};
use keel_engine::btree::defrag_file_path;
use keel_engine::io::FaultPlan;
use keel_engine::{DefragError, RangeOptions, RangeResult, Store, StoreOptions, StoreReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Distinct keys of the big test.
const KEYS: usize = 1_000;
/// Puts before the defrag (each its own txn, so its own revision).
const FILL_PUTS: usize = 100_000;
/// Puts per write batch while filling.
const FILL_BATCH_PUTS: usize = 1_000;
/// Batches between persists while filling (each persist leaves the pages
/// it supersedes behind in the file).
const FILL_BATCHES_PER_PERSIST: usize = 10;
/// Puts per write batch while the defrag runs.
const DURING_BATCH_PUTS: usize = 100;
/// Batches the writer may apply before the defrag must have finished.
const DURING_BATCHES_MAX: usize = 100_000;
/// Reader threads.
const READERS: usize = 2;
/// Polls of a finishing job before a test gives up.
const POLLS_MAX: u32 = 30_000;
const POLL_SLEEP: Duration = Duration::from_millis(1);

/// Persists only when a test asks.
fn manual() -> StoreOptions {
    StoreOptions {
        persist_ops_threshold: u64::MAX,
        persist_dirty_bytes_threshold: u64::MAX,
        persist_interval: Duration::from_secs(3600),
    }
}

/// Any batch makes a persist due.
fn eager() -> StoreOptions {
    StoreOptions {
        persist_ops_threshold: 1,
        ..StoreOptions::default()
    }
}

fn key(number: usize) -> Vec<u8> {
    format!("key{number:05}").into_bytes()
}

/// The value a put at `revision` writes: readers check a kv against it.
fn value_at(revision: i64) -> Vec<u8> {
    format!("value-at-revision-{revision:012}").into_bytes()
}

/// One batch of `count` txns, each putting one key (round robin from
/// `*next_put`); `model[k]` is key k's last revision.
fn put_batch(store: &mut Store, model: &mut [i64], next_put: &mut usize, count: usize) {
    let applied = store.applied_index() + 1;
    let first_revision = store.revision() + 1;
    let mut batch = store.write_batch();
    for offset in 0..count {
        let number = (*next_put + offset) % KEYS;
        let revision = first_revision + offset as i64;
        let mut txn = batch.txn();
        txn.put(&key(number), &value_at(revision), 0);
        txn.end();
        model[number] = revision;
    }
    batch.commit(applied);
    *next_put += count;
}

/// Checks every key of `model` at the latest revision of `view`.
fn check_model(reader: &StoreReader, model: &[i64]) {
    let result = reader
        .view()
        .range(&RangeOptions {
            key: b"key",
            range_end: b"kez",
            ..RangeOptions::default()
        })
        .unwrap();
    assert_eq!(result.kvs.len(), model.len());
    for (number, kv) in result.kvs.iter().enumerate() {
        assert_eq!(kv.key, key(number));
        assert_eq!(kv.mod_revision, model[number], "key {number}");
        assert_eq!(kv.value, value_at(model[number]));
    }
}

/// A reader thread's loop: single-key reads of the latest view (checking
/// each value against its revision) and now and then a full count, until
/// `stop`. Returns (reads, worst single-key read latency).
fn read_until(reader: &StoreReader, stop: &AtomicBool, seed: usize) -> (u64, Duration) {
    let mut reads = 0u64;
    let mut worst = Duration::ZERO;
    let mut number = seed;
    while !stop.load(Ordering::Relaxed) {
        number = (number * 7919 + 13) % KEYS;
        let started = Instant::now();
        let view = reader.view();
        let result = view
            .range(&RangeOptions {
                key: &key(number),
                ..RangeOptions::default()
            })
            .unwrap();
        worst = worst.max(started.elapsed());
        assert_eq!(result.kvs.len(), 1, "key {number}");
        assert_eq!(result.kvs[0].value, value_at(result.kvs[0].mod_revision));
        reads += 1;
        if reads.is_multiple_of(256) {
            let all = view
                .range(&RangeOptions {
                    key: b"key",
                    range_end: b"kez",
                    count_only: true,
                    ..RangeOptions::default()
                })
                .unwrap();
            assert_eq!(all.count, KEYS as i64);
        }
    }
    (reads, worst)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn online_defrag_shrinks_the_file_while_writes_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, manual()).unwrap();
    let mut model = vec![0i64; KEYS];
    let mut next_put = 0;
    let fill_started = Instant::now();
    for batch in 0..FILL_PUTS / FILL_BATCH_PUTS {
        put_batch(&mut store, &mut model, &mut next_put, FILL_BATCH_PUTS);
        if (batch + 1) % FILL_BATCHES_PER_PERSIST == 0 {
            store.persist().unwrap();
        }
    }
    let fill_elapsed = fill_started.elapsed();
    let revision = store.revision();
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    let removed = batch.compact(revision).unwrap();
    batch.commit(applied);
    assert_eq!(removed, (FILL_PUTS - KEYS) as u64);
    store.persist().unwrap();
    let size_before = store.file_size_bytes();
    assert_eq!(file_len(&path), size_before);
    let in_use_before = store.size_in_use_bytes();
    assert!(in_use_before * 2 <= size_before);

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|seed| {
            let reader = store.reader();
            let stop = stop.clone();
            std::thread::spawn(move || read_until(&reader, &stop, seed))
        })
        .collect();

    let defrag_started = Instant::now();
    store.start_defrag().unwrap();
    assert!(store.defrag_in_progress());
    let mut batches_during = 0;
    let outcome = loop {
        // The writer goes on: these batches are not in the defrag's
        // snapshot and reach the new file with the next persist.
        put_batch(&mut store, &mut model, &mut next_put, DURING_BATCH_PUTS);
        batches_during += 1;
        assert!(
            batches_during < DURING_BATCHES_MAX,
            "the defrag never ended"
        );
        assert!(!store.start_persist(), "no persist while a defrag runs");
        if let Some(as_persist) = store.poll_persist() {
            as_persist.unwrap();
        }
        if let Some(outcome) = store.poll_defrag() {
            break outcome;
        }
    };
    let defrag_elapsed = defrag_started.elapsed();
    outcome.unwrap();
    assert!(!store.defrag_in_progress());
    let size_after = store.file_size_bytes();
    assert_eq!(file_len(&path), size_after);
    assert!(!defrag_file_path(&path).exists());
    assert!(
        size_after * 2 <= size_before,
        "defrag took the file from {size_before} to {size_after} bytes"
    );
    // The snapshot was the persisted state: the new file is exactly the
    // pages that state referenced, and all of it is in use.
    assert_eq!(size_after, in_use_before);
    assert_eq!(store.size_in_use_bytes(), size_after);
    check_model(&store.reader(), &model);

    // A persist after the defrag appends to the new file: only the changed
    // paths, shared subtrees referenced by their new pages.
    for _ in 0..5 {
        put_batch(&mut store, &mut model, &mut next_put, DURING_BATCH_PUTS);
    }
    store.persist().unwrap();
    assert!(store.file_size_bytes() > size_after);
    assert_eq!(file_len(&path), store.file_size_bytes());
    check_model(&store.reader(), &model);

    stop.store(true, Ordering::Relaxed);
    let mut reads_total = 0;
    let mut worst = Duration::ZERO;
    for reader in readers {
        let (reads, reader_worst) = reader.join().unwrap();
        assert!(reads > 0);
        reads_total += reads;
        worst = worst.max(reader_worst);
    }
    eprintln!(
        "defrag: fill {FILL_PUTS} puts over {KEYS} keys in {fill_elapsed:?}; file {size_before} -> \
         {size_after} bytes in {defrag_elapsed:?} with {batches_during} batches applied meanwhile; \
         {reads_total} reads by {READERS} readers, worst {worst:?}"
    );

    let expected = everything(&store);
    let (revision, applied_index) = (store.revision(), store.applied_index());
    drop(store);
    let reopened = Store::open(&path, manual()).unwrap();
    assert_eq!(reopened.revision(), revision);
    assert_eq!(reopened.applied_index(), applied_index);
    check_model(&reopened.reader(), &model);
    assert_eq!(everything(&reopened), expected);
    // The compacted keys plus one entry per put since.
    assert_eq!(
        reopened.tree_entry_count(),
        (KEYS + next_put - FILL_PUTS) as u64
    );
}

/// Every key at every revision from 1 to the current one.
fn every_revision(store: &Store) -> Vec<RangeResult> {
    let view = store.reader().view();
    (1..=view.revision())
        .map(|revision| {
            view.range(&RangeOptions {
                key: b"\x00",
                range_end: b"\x00",
                revision,
                ..RangeOptions::default()
            })
            .unwrap()
        })
        .collect()
}

#[test]
fn defrag_without_compaction_keeps_every_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, manual()).unwrap();
    for round in 0..30usize {
        put_range(
            &mut store,
            "k",
            (round * 7) % 50..50,
            format!("round{round}").as_bytes(),
        );
        let applied = store.applied_index() + 1;
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        txn.delete_range(format!("k{:05}", round % 50).as_bytes(), b"");
        txn.end();
        batch.commit(applied);
        store.persist().unwrap();
    }
    let history = every_revision(&store);
    let events = store
        .reader()
        .view()
        .events(b"\x00", b"\x00", 1, usize::MAX)
        .unwrap();
    let entries = store.tree_entry_count();
    let size_before = store.file_size_bytes();

    store.defrag().unwrap();
    let size_after = store.file_size_bytes();
    assert!(size_after < size_before, "{size_after} >= {size_before}");
    assert_eq!(file_len(&path), size_after);
    let revision = store.revision();
    drop(store);

    let mut store = Store::open(&path, manual()).unwrap();
    assert_eq!(store.revision(), revision);
    assert_eq!(store.compact_revision(), 0);
    assert_eq!(store.tree_entry_count(), entries);
    assert_eq!(every_revision(&store), history);
    assert_eq!(
        store
            .reader()
            .view()
            .events(b"\x00", b"\x00", 1, usize::MAX)
            .unwrap(),
        events
    );

    // The defragmented file takes persists and a second defrag.
    put_range(&mut store, "after", 0..100, b"after");
    store.persist().unwrap();
    store.defrag().unwrap();
    let history = every_revision(&store);
    drop(store);
    let store = Store::open(&path, manual()).unwrap();
    assert_eq!(every_revision(&store), history);
}

/// Waits until the persister is held by the paused file system.
fn wait_until_held(plan: &FaultPlan) {
    for _ in 0..POLLS_MAX {
        if plan.calls_held() > 0 {
            return;
        }
        std::thread::sleep(POLL_SLEEP);
    }
    panic!("the persister never reached the file");
}

/// Polls until the defrag finishes, collecting persists on the way.
fn poll_defrag_until_done(store: &mut Store) -> Result<(), DefragError> {
    for _ in 0..POLLS_MAX {
        if let Some(as_persist) = store.poll_persist() {
            as_persist.unwrap();
        }
        if let Some(outcome) = store.poll_defrag() {
            return outcome;
        }
        std::thread::sleep(POLL_SLEEP);
    }
    panic!("the defrag never finished");
}

#[test]
fn defrag_queues_behind_a_persist_and_no_persist_runs_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store_in(&path, eager());
    assert!(store.poll_defrag().is_none());
    put_range(&mut store, "a", 0..300, b"first");

    // A persist in flight: the defrag queues behind it.
    plan.pause();
    assert!(store.start_persist());
    wait_until_held(&plan);
    store.start_defrag().unwrap();
    assert!(store.defrag_in_progress());
    assert!(matches!(store.start_defrag(), Err(DefragError::InProgress)));
    assert!(matches!(store.defrag(), Err(DefragError::InProgress)));
    put_range(&mut store, "b", 0..300, b"during the persist");
    assert!(!store.needs_persist());
    assert!(store.poll_defrag().is_none());
    plan.resume();
    // Collecting the persist starts the defrag, which holds everything so
    // far (also "b", applied after the persist started).
    poll_defrag_until_done(&mut store).unwrap();
    assert_eq!(store.persisted_index(), store.applied_index());
    assert_eq!(file_len(&path), store.file_size_bytes());
    drop(store);
    let (mut store, plan) = faulty_store_in(&path, eager());
    assert_eq!(everything(&store).count, 600);

    // A defrag held by a stalled disk: the writer goes on, no persist
    // starts, and the defrag's outcome counts as a persist of its snapshot.
    let snapshot_index = store.applied_index() + 1;
    put_range(&mut store, "c", 0..100, b"snapshot");
    plan.pause();
    store.start_defrag().unwrap();
    wait_until_held(&plan);
    for round in 0..5 {
        put_range(
            &mut store,
            "d",
            0..100,
            format!("during {round}").as_bytes(),
        );
        assert!(!store.needs_persist());
        assert!(!store.start_persist());
        assert!(!store.persist_in_flight());
        assert!(store.poll_persist().is_none());
        assert!(store.poll_defrag().is_none());
    }
    plan.resume();
    let mut as_persist = None;
    for _ in 0..POLLS_MAX {
        as_persist = store.poll_persist();
        if as_persist.is_some() {
            break;
        }
        std::thread::sleep(POLL_SLEEP);
    }
    assert!(matches!(as_persist, Some(Ok(()))));
    assert_eq!(store.persisted_index(), snapshot_index);
    assert!(store.defrag_in_progress(), "until poll_defrag returns it");
    assert!(matches!(store.poll_defrag(), Some(Ok(()))));
    assert!(!store.defrag_in_progress());
    assert!(store.start_persist());
    loop {
        if let Some(result) = store.poll_persist() {
            result.unwrap();
            break;
        }
        std::thread::sleep(POLL_SLEEP);
    }

    // A blocking persist waits for a defrag in flight first and keeps its
    // outcome for poll_defrag.
    put_range(&mut store, "e", 0..50, b"e");
    store.start_defrag().unwrap();
    put_range(&mut store, "f", 0..50, b"f");
    store.persist().unwrap();
    assert!(matches!(store.poll_defrag(), Some(Ok(()))));
    assert_eq!(store.persisted_index(), store.applied_index());
    let expected = everything(&store);
    assert_eq!(expected.count, 900);
    drop(store);
    let store = Store::open(&path, manual()).unwrap();
    assert_eq!(everything(&store), expected);
}

#[test]
fn defrag_of_an_unchanged_or_empty_store_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, manual()).unwrap();
    store.defrag().unwrap();
    assert_eq!(store.persisted_index(), 0);
    drop(store);
    let mut store = Store::open(&path, manual()).unwrap();
    assert_eq!(store.tree_entry_count(), 0);
    assert_eq!(store.revision(), 1);

    put_range(&mut store, "a", 0..500, b"value");
    store.persist().unwrap();
    // Twice in a row: the second rewrites the same tree, same size.
    store.defrag().unwrap();
    let size = store.file_size_bytes();
    store.defrag().unwrap();
    assert_eq!(store.file_size_bytes(), size);
    // Nothing changed since: no persist is needed.
    store.persist().unwrap();
    assert_eq!(store.file_size_bytes(), size);
    let expected = everything(&store);
    drop(store);
    assert_eq!(everything(&Store::open(&path, manual()).unwrap()), expected);
}

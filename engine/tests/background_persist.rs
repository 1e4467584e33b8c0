//! Guards persists on the store's persister thread: the writer keeps
//! applying batches while one is in flight, the file gets exactly the
//! snapshot (and meta) captured when it started, a failed background
//! persist is reported and repaired by the next one, a persist the caller
//! waits for runs on the caller's thread, and a dead persister (a job that
//! panicked on either thread) is an error, not a panic or a hang. The fault-injecting file's
//! pause keeps a persist in flight for as long as a test needs.

mod common;

use common::{everything, faulty_store_with, put_range};
use keel_engine::btree::{Node, NodeBody, TreeFile};
use keel_engine::io::{FaultPlan, StdFile, StorageFile};
use keel_engine::{Store, StoreError, StoreOptions};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Polls of a finishing persist before a test gives up.
const POLLS_MAX: u32 = 30_000;
const POLL_SLEEP: Duration = Duration::from_millis(1);

/// Small thresholds: any batch makes a persist due.
fn eager() -> StoreOptions {
    StoreOptions {
        persist_ops_threshold: 1,
        ..StoreOptions::default()
    }
}

/// Waits until the persister is held by the paused file, so the persist is
/// surely in flight and has not encoded a node yet (its first file call,
/// the length check, comes before any encoding).
fn wait_until_held(plan: &FaultPlan) {
    for _ in 0..POLLS_MAX {
        if plan.calls_held() > 0 {
            return;
        }
        std::thread::sleep(POLL_SLEEP);
    }
    panic!("the persister never reached the file");
}

/// Polls until the persist in flight finishes.
fn poll_until_done(store: &mut Store) -> Result<(), StoreError> {
    for _ in 0..POLLS_MAX {
        if let Some(result) = store.poll_persist() {
            assert!(!store.persist_in_flight());
            return result;
        }
        assert!(store.persist_in_flight());
        std::thread::sleep(POLL_SLEEP);
    }
    panic!("the persist never finished");
}

#[test]
fn writes_continue_while_a_persist_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store_with(&path, eager());
    assert_eq!(store.poll_persist().map(|result| result.is_ok()), None);
    put_range(&mut store, "a", 0..400, b"first");
    assert!(store.needs_persist());

    plan.pause();
    assert!(store.start_persist());
    let captured_index = store.applied_index();
    let captured_revision = store.revision();
    wait_until_held(&plan);
    assert!(store.persist_in_flight());
    assert!(
        !store.needs_persist(),
        "nothing is due while one is in flight"
    );
    assert!(!store.start_persist(), "one persist in flight at most");

    // Keys inside the persisted set, outside it, and a delete.
    put_range(&mut store, "a", 100..300, b"second");
    put_range(&mut store, "b", 0..400, b"outside");
    put_range(&mut store, "a", 250..260, b"third");
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    assert_eq!(txn.delete_range(b"a00010", b"a00020").len(), 10);
    txn.end();
    batch.commit(applied);
    assert!(store.poll_persist().is_none(), "the file is still paused");
    assert_eq!(store.persisted_index(), 0);

    plan.resume();
    poll_until_done(&mut store).unwrap();
    assert_eq!(store.persisted_index(), captured_index);
    assert_ne!(store.persisted_index(), store.applied_index());
    assert!(store.revision() > captured_revision);
    assert!(
        store.poll_persist().is_none(),
        "the outcome is collected once"
    );
    assert!(store.needs_persist(), "the later batches are due");

    store.persist().unwrap();
    assert_eq!(store.persisted_index(), store.applied_index());
    let expected = everything(&store);
    assert_eq!(expected.count, 400 - 10 + 400);
    let applied = store.applied_index();
    let revision = store.revision();
    drop(store);

    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(reopened.applied_index(), applied);
    assert_eq!(reopened.revision(), revision);
    assert_eq!(everything(&reopened), expected);
    let value = |key: &[u8]| {
        expected
            .kvs
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(value(b"a00005").unwrap(), b"first");
    assert_eq!(value(b"a00015"), None);
    assert_eq!(value(b"a00150").unwrap(), b"second");
    assert_eq!(value(b"a00255").unwrap(), b"third");
    assert_eq!(value(b"b00399").unwrap(), b"outside");
}

/// Every tree value in the last commit of the file at `path`: unlike an
/// MVCC read, this also sees entries newer than the committed revision.
fn committed_tree_values(path: &std::path::Path) -> Vec<Vec<u8>> {
    fn collect(node: &Node, out: &mut Vec<Vec<u8>>) {
        match &node.body {
            NodeBody::Leaf(entries) => out.extend(entries.iter().map(|e| e.value().to_vec())),
            NodeBody::Branch { children, .. } => {
                for child in children {
                    collect(child, out);
                }
            }
        }
    }
    let (_file, recovered) = TreeFile::open(path).unwrap();
    let mut values = Vec::new();
    collect(&recovered.root, &mut values);
    values
}

#[test]
fn persisted_snapshot_is_unaffected_by_later_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store_with(&path, eager());
    put_range(&mut store, "k", 0..500, b"committed-before");
    store.persist().unwrap();
    // Half the keys change: the snapshot shares clean nodes and has dirty
    // ones.
    put_range(&mut store, "k", 0..250, b"snapshot");
    let snapshot = everything(&store);
    let snapshot_index = store.applied_index();
    let snapshot_revision = store.revision();

    plan.pause();
    assert!(store.start_persist());
    wait_until_held(&plan);
    // Overwrite every snapshot key and grow the tree (splits) while the
    // persister holds the snapshot and has encoded nothing yet.
    put_range(&mut store, "k", 0..500, b"overwritten-later");
    put_range(&mut store, "k", 500..2000, b"added-later");
    plan.resume();
    poll_until_done(&mut store).unwrap();
    assert_eq!(store.persisted_index(), snapshot_index);
    assert_eq!(everything(&store).count, 2000);
    // Crash before the next persist: dropping persists nothing more.
    drop(store);

    // MVCC reads at the committed revision would hide entries written
    // later, so look at the raw tree: exactly the snapshot's 500 + 250 puts,
    // each with its revision index entry.
    let values = committed_tree_values(&path);
    assert_eq!(values.len(), 2 * 750);
    assert!(!values.iter().any(|value| value.ends_with(b"later")));
    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(reopened.applied_index(), snapshot_index);
    assert_eq!(reopened.revision(), snapshot_revision);
    assert_eq!(everything(&reopened), snapshot);
}

#[test]
fn failed_background_persist_is_reported_and_the_next_one_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store_with(&path, eager());
    put_range(&mut store, "a", 0..300, &[1u8; 200]);
    store.persist().unwrap();
    let committed_index = store.applied_index();
    let committed_size = store.file_size_bytes();
    put_range(&mut store, "b", 0..300, &[2u8; 200]);

    // The write of the dirty nodes and the commit record lands, its
    // fdatasync fails: the "b" nodes got pages, and the file a whole
    // commit record, that the next persist must not keep.
    plan.arm_sync(0);
    plan.pause();
    assert!(store.start_persist());
    wait_until_held(&plan);
    // The writer moves on; its newer root shares the "b" leaves with the
    // failing snapshot (keys "c" sort after them).
    put_range(&mut store, "c", 0..300, &[3u8; 200]);
    plan.resume();
    let error = poll_until_done(&mut store).unwrap_err();
    assert!(matches!(error, StoreError::Io { .. }), "{error}");
    assert_eq!(store.persisted_index(), committed_index);
    assert_eq!(store.file_size_bytes(), committed_size);
    assert!(
        store.needs_persist(),
        "the failed persist's changes are due"
    );

    // The store keeps working.
    put_range(&mut store, "a", 0..10, &[4u8; 200]);
    plan.disarm();
    assert!(store.start_persist());
    poll_until_done(&mut store).unwrap();
    assert_eq!(store.persisted_index(), store.applied_index());
    let expected = everything(&store);
    assert_eq!(expected.count, 900);
    let applied = store.applied_index();
    drop(store);

    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(reopened.applied_index(), applied);
    assert_eq!(everything(&reopened), expected);
}

/// A file that notes the thread each write runs on, and whose writes panic
/// once told to (killing the persister thread when a job runs there).
struct WatchedFile {
    inner: StdFile,
    panic_on_write: Arc<AtomicBool>,
    writers: Arc<Mutex<Vec<String>>>,
}

impl StorageFile for WatchedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let thread = std::thread::current();
        self.writers
            .lock()
            .unwrap()
            .push(thread.name().unwrap_or("unnamed").to_owned());
        assert!(
            !self.panic_on_write.load(Ordering::SeqCst),
            "injected panic in write_at"
        );
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        self.inner.set_len(len_bytes)
    }
    fn allocate(&self, len_bytes: u64) -> io::Result<()> {
        self.inner.allocate(len_bytes)
    }
}

/// A store over a [`WatchedFile`] at `path`, with its panic switch and
/// the names of the threads its writes ran on.
fn watched_store(path: &std::path::Path) -> (Store, Arc<AtomicBool>, Arc<Mutex<Vec<String>>>) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let panic_on_write = Arc::new(AtomicBool::new(false));
    let writers = Arc::new(Mutex::new(Vec::new()));
    let file = WatchedFile {
        inner: StdFile::new(file),
        panic_on_write: panic_on_write.clone(),
        writers: writers.clone(),
    };
    let store = Store::open_with_file(path, Box::new(file), eager()).unwrap();
    (store, panic_on_write, writers)
}

#[test]
fn a_waited_persist_runs_on_the_callers_thread_and_a_started_one_on_the_persisters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, _, writers) = watched_store(&path);
    let here = std::thread::current().name().unwrap().to_owned();
    assert_ne!(here, "keel-persist");
    let take = || std::mem::take(&mut *writers.lock().unwrap());
    take();

    put_range(&mut store, "a", 0..10, b"v");
    store.persist().unwrap();
    let waited = take();
    assert!(!waited.is_empty());
    assert!(waited.iter().all(|name| *name == here), "{waited:?}");

    put_range(&mut store, "a", 0..10, b"w");
    assert!(store.start_persist());
    poll_until_done(&mut store).unwrap();
    let started = take();
    assert!(!started.is_empty());
    assert!(
        started.iter().all(|name| name == "keel-persist"),
        "{started:?}"
    );

    // Both kinds reach the same file, one after the other.
    put_range(&mut store, "a", 0..10, b"x");
    store.persist().unwrap();
    let applied = store.applied_index();
    drop(store);
    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(reopened.applied_index(), applied);
    assert_eq!(everything(&reopened).kvs[9].value, b"x");
}

/// A watched store at `path` with one persist of `a00000..a00009` = `v`
/// done, the same keys put again as `w`, and its file's writes set to
/// panic (returned: the switch).
fn persisted_once_then_panicking(path: &std::path::Path) -> (Store, Arc<AtomicBool>) {
    let (mut store, panic_on_write, _) = watched_store(path);
    put_range(&mut store, "a", 0..10, b"v");
    store.persist().unwrap();
    put_range(&mut store, "a", 0..10, b"w");
    panic_on_write.store(true, Ordering::SeqCst);
    (store, panic_on_write)
}

#[test]
fn dead_persister_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, _) = persisted_once_then_panicking(&path);
    assert!(store.start_persist());
    let error = poll_until_done(&mut store).unwrap_err();
    assert!(matches!(error, StoreError::PersisterGone { .. }), "{error}");
    assert!(error.to_string().contains("persister thread is gone"));
    stays_gone_but_reads_and_drops(store);
}

/// After the persister died: later persists report it, waited and
/// started, and nothing more is persisted; reads still work, and dropping
/// the store does not panic.
fn stays_gone_but_reads_and_drops(mut store: Store) {
    put_range(&mut store, "a", 0..10, b"x");
    assert!(matches!(
        store.persist(),
        Err(StoreError::PersisterGone { .. })
    ));
    assert!(store.start_persist());
    assert!(matches!(
        poll_until_done(&mut store),
        Err(StoreError::PersisterGone { .. })
    ));
    assert_eq!(store.persisted_index(), 1);
    assert_eq!(everything(&store).kvs[0].value, b"x");
    drop(store);
}

/// The same panic in a persist the caller waits for (which runs on the
/// caller's thread) is the same error, and kills the persister for good.
#[test]
fn a_panic_in_a_waited_persist_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, panic_on_write) = persisted_once_then_panicking(&path);
    let error = store.persist().unwrap_err();
    assert!(matches!(error, StoreError::PersisterGone { .. }), "{error}");
    // The file would take writes again, but the persister stays gone: a
    // job that panicked may have left the file half-written.
    panic_on_write.store(false, Ordering::SeqCst);
    stays_gone_but_reads_and_drops(store);
    // The file still opens at the last persist that finished.
    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(reopened.applied_index(), 1);
    assert_eq!(everything(&reopened).kvs[0].value, b"v");
}

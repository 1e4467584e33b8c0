//! Guards `ReadView::write_tree_file` (backend snapshot / defrag): the new
//! file opens as a store with the same data, history, leases, revision,
//! compaction point and applied index, holds only live nodes, stays
//! writable; writing it leaves the source store's persists intact; an
//! existing path or a failed write is an error; a crash at any write,
//! fdatasync, create, rename or directory fsync leaves either no file under
//! the name or the whole copy, never a partial one.

mod common;

use common::{everything, put_many};
use keel_engine::btree::part_file_path;
use keel_engine::io::{
    DirOp, FaultInjectingFile, FaultInjectingFileSystem, FaultPlan, StdFile, WriteFault,
};
use keel_engine::{RangeOptions, ReadView, Store, StoreError, StoreOptions};
use std::path::Path;

fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

/// Everything a store's view answers, to compare two stores by.
fn check_same(copy: &ReadView, original: &ReadView) {
    assert_eq!(copy.revision(), original.revision());
    assert_eq!(copy.compact_revision(), original.compact_revision());
    assert_eq!(copy.applied_index(), original.applied_index());
    assert_eq!(copy.leases(), original.leases());
    assert_eq!(copy.hash(), original.hash());
    assert_eq!(copy.hash_kv(0), original.hash_kv(0));
    let start = original.compact_revision().max(1);
    for revision in [start, (start + original.revision()) / 2, 0] {
        let options = RangeOptions {
            key: b"\x00",
            range_end: b"\x00",
            revision,
            ..RangeOptions::default()
        };
        assert_eq!(copy.range(&options), original.range(&options));
    }
    assert_eq!(
        copy.events(b"\x00", b"\x00", start, usize::MAX),
        original.events(b"\x00", b"\x00", start, usize::MAX)
    );
}

/// A store with history, deletes, leases, a compaction and several
/// persists (so its file holds pages no commit reaches any more).
fn busy_store(path: &Path) -> Store {
    let mut store = open(path);
    for round in 0..6 {
        put_many(&mut store, &format!("r{}-", round % 3), 400);
        let applied = store.applied_index() + 1;
        let mut batch = store.write_batch();
        batch.put_lease(round + 1, 10 * (round + 1));
        let mut txn = batch.txn();
        txn.delete_range(format!("r{}-00100", round % 3).as_bytes(), b"");
        txn.end();
        batch.commit(applied);
        store.persist().unwrap();
    }
    let revision = store.revision();
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    batch.compact(revision - 2).unwrap();
    batch.commit(applied);
    store.persist().unwrap();
    store
}

#[test]
fn copy_opens_with_the_same_state_and_only_live_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let store = busy_store(&dir.path().join("db"));
    let view = store.reader().view();
    let copy_path = dir.path().join("copy");
    let size = view.write_tree_file(&copy_path).unwrap();
    assert_eq!(std::fs::metadata(&copy_path).unwrap().len(), size);
    assert!(!part_file_path(&copy_path).exists());
    assert!(
        size * 2 < store.file_size_bytes(),
        "copy {size} bytes, original {} bytes",
        store.file_size_bytes()
    );

    let mut copy = open(&copy_path);
    assert_eq!(copy.file_size_bytes(), size);
    check_same(&copy.reader().view(), &view);
    assert_eq!(copy.leases(), store.leases());
    assert_eq!(everything(&copy), everything(&store));

    // A copy of the copy is no bigger: it held only live nodes already.
    let again_path = dir.path().join("again");
    assert_eq!(
        copy.reader().view().write_tree_file(&again_path).unwrap(),
        size
    );

    // The copy is a working store: write, persist, reopen.
    put_many(&mut copy, "after-", 50);
    copy.persist().unwrap();
    let expected = everything(&copy);
    drop(copy);
    let copy = open(&copy_path);
    assert_eq!(everything(&copy), expected);
}

#[test]
fn empty_store_copies_to_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("db"));
    let view = store.reader().view();
    let copy_path = dir.path().join("copy");
    view.write_tree_file(&copy_path).unwrap();
    let copy = open(&copy_path);
    assert_eq!(copy.revision(), 1);
    assert_eq!(copy.tree_entry_count(), 0);
    check_same(&copy.reader().view(), &view);
}

#[test]
fn copying_an_unpersisted_view_leaves_the_stores_persists_intact() {
    // The view's nodes are dirty (not in the store's file yet): writing
    // them elsewhere must not mark them written, or the store's next
    // persist would skip them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = open(&path);
    put_many(&mut store, "a", 500);
    store.persist().unwrap();
    put_many(&mut store, "b", 500);
    let view = store.reader().view();
    view.write_tree_file(&dir.path().join("copy")).unwrap();
    // Meanwhile the writer goes on; then both are persisted and reopened.
    put_many(&mut store, "c", 100);
    store.persist().unwrap();
    let expected = everything(&store);
    drop(store);
    assert_eq!(everything(&open(&path)), expected);
    let copy = open(&dir.path().join("copy"));
    check_same(&copy.reader().view(), &view);
}

#[test]
fn existing_path_is_an_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = open(&path);
    put_many(&mut store, "a", 10);
    store.persist().unwrap();
    let before = std::fs::read(&path).unwrap();
    let result = store.reader().view().write_tree_file(&path);
    assert!(
        matches!(&result, Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{result:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn failed_write_is_an_error_and_leaves_no_valid_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = busy_store(&dir.path().join("db"));
    let view = store.reader().view();
    for (writes_from_now, fault) in [
        (0, WriteFault::Fail),
        (1, WriteFault::Tear { keep_bytes: 5000 }),
        (2, WriteFault::Fail),
    ] {
        let copy_path = dir.path().join(format!("copy{writes_from_now}"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&copy_path)
            .unwrap();
        let plan = FaultPlan::new();
        let faulty = FaultInjectingFile::new(Box::new(StdFile::new(file)), plan.clone());
        // Header, node chunk(s), commit record: fail one of them.
        plan.arm(writes_from_now, fault);
        let result = view.write_tree_file_to(&faulty, &copy_path);
        assert!(
            matches!(result, Err(StoreError::Io { .. })),
            "{writes_from_now}: {result:?}"
        );
        drop(faulty);
        // Whatever reached the disk opens as an empty store (or is
        // rejected), never as a half tree.
        if let Ok(reopened) = Store::open(&copy_path, StoreOptions::default()) {
            assert_eq!(reopened.tree_entry_count(), 0, "{writes_from_now}");
            assert_eq!(reopened.applied_index(), 0);
        }
    }
}

/// How to arm one crash point of a copy.
#[derive(Clone, Copy, Debug)]
enum CrashPoint {
    Write(u64, WriteFault),
    Sync(u64),
    Dir(DirOp),
}

#[test]
fn crash_while_writing_a_copy_leaves_no_partial_file_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = busy_store(&dir.path().join("db"));
    let view = store.reader().view();

    let plan = FaultPlan::new();
    let file_system = FaultInjectingFileSystem::std(plan.clone());
    view.write_tree_file_in(&file_system, &dir.path().join("clean"))
        .unwrap();
    let (writes, syncs) = (plan.writes_seen(), plan.syncs_seen());
    assert!(writes >= 3 && syncs == 2, "{writes} writes, {syncs} syncs");

    let mut points = Vec::new();
    for write in 0..writes {
        points.push(CrashPoint::Write(write, WriteFault::Fail));
        points.push(CrashPoint::Write(
            write,
            WriteFault::Tear { keep_bytes: 100 },
        ));
    }
    points.extend((0..syncs).map(CrashPoint::Sync));
    points.extend([DirOp::Create, DirOp::Rename, DirOp::SyncDir].map(CrashPoint::Dir));
    for (index, point) in points.into_iter().enumerate() {
        let plan = FaultPlan::new();
        let file_system = FaultInjectingFileSystem::std(plan.clone());
        let path = dir.path().join(format!("copy{index}"));
        match point {
            CrashPoint::Write(write, fault) => plan.arm(write, fault),
            CrashPoint::Sync(sync) => plan.arm_sync(sync),
            CrashPoint::Dir(op) => plan.crash_at(op),
        }
        let result = view.write_tree_file_in(&file_system, &path);
        assert!(
            matches!(result, Err(StoreError::Io { .. })),
            "{point:?}: {result:?}"
        );
        if matches!(point, CrashPoint::Dir(DirOp::SyncDir)) {
            // Crashed after the rename: the whole copy is in place.
            check_same(&open(&path).reader().view(), &view);
            continue;
        }
        assert!(!path.exists(), "{point:?}: nothing under the name");
        // Writing again works, whatever `.part` the crash left.
        plan.disarm();
        view.write_tree_file_in(&file_system, &path).unwrap();
        assert!(!part_file_path(&path).exists(), "{point:?}");
        check_same(&open(&path).reader().view(), &view);
    }
}

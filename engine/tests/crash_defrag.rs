//! Crash and fault tests of defrag, through the fault-injecting file
//! system: a defrag failed or torn at any write, failed at any fdatasync,
//! or crashed at the create, before the rename or after it (the directory
//! fsync), always leaves a db that opens at a valid commit with every
//! persisted batch (and, once renamed, the defrag's snapshot); a stale
//! `db.defrag` is removed at open; and a store whose defrag failed before
//! the rename goes on persisting to its old file with every node's page
//! still right.

mod common;

use common::{everything, faulty_store_in, put_range};
use keel_engine::btree::defrag_file_path;
use keel_engine::io::{DirOp, FaultPlan, WriteFault};
use keel_engine::{DefragError, RangeResult, Store, StoreOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Persists only when a test asks.
fn manual() -> StoreOptions {
    StoreOptions {
        persist_ops_threshold: u64::MAX,
        persist_dirty_bytes_threshold: u64::MAX,
        persist_interval: Duration::from_secs(3600),
    }
}

/// A store with persisted history, a compaction, and a batch applied but
/// not persisted yet.
struct Setup {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Store,
    plan: Arc<FaultPlan>,
    /// Everything as of the last persist.
    committed: RangeResult,
    committed_index: u64,
    /// Everything in memory (what a defrag writes).
    snapshot: RangeResult,
    snapshot_index: u64,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store_in(&path, manual());
    for round in 0..5 {
        put_range(&mut store, &format!("r{round}-"), 0..300, b"first");
        put_range(
            &mut store,
            "r0-",
            0..300,
            format!("again {round}").as_bytes(),
        );
        store.persist().unwrap();
    }
    let revision = store.revision();
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    batch.compact(revision - 1).unwrap();
    batch.commit(applied);
    store.persist().unwrap();
    let committed = everything(&store);
    let committed_index = store.applied_index();
    put_range(
        &mut store,
        "late-",
        0..50,
        b"not persisted before the defrag",
    );
    let snapshot = everything(&store);
    let snapshot_index = store.applied_index();
    Setup {
        _dir: dir,
        path,
        store,
        plan,
        committed,
        committed_index,
        snapshot,
        snapshot_index,
    }
}

/// Writes and syncs a clean defrag of a [`setup`] store makes.
fn defrag_calls() -> (u64, u64) {
    let mut setup = setup();
    let writes = setup.plan.writes_seen();
    let syncs = setup.plan.syncs_seen();
    setup.store.defrag().unwrap();
    (
        setup.plan.writes_seen() - writes,
        setup.plan.syncs_seen() - syncs,
    )
}

/// A fault's name and how to arm it.
type NamedFault = (String, Box<dyn Fn(&FaultPlan)>);

/// Every way a defrag can fail before its rename: each write failed or
/// torn, each fdatasync failed, the create and the rename crashed.
fn faults_before_rename() -> Vec<NamedFault> {
    let (writes, syncs) = defrag_calls();
    assert!(writes >= 3, "header, nodes, commit record: {writes} writes");
    assert_eq!(syncs, 2, "before and after the commit record");
    let mut faults: Vec<NamedFault> = Vec::new();
    for write in 0..writes {
        for fault in [
            WriteFault::Fail,
            WriteFault::Tear { keep_bytes: 0 },
            WriteFault::Tear { keep_bytes: 100 },
            WriteFault::Tear { keep_bytes: 4096 },
            WriteFault::Tear { keep_bytes: 5000 },
        ] {
            faults.push((
                format!("write {write} {fault:?}"),
                Box::new(move |plan: &FaultPlan| plan.arm(write, fault)),
            ));
        }
    }
    for sync in 0..syncs {
        faults.push((
            format!("sync {sync}"),
            Box::new(move |plan: &FaultPlan| plan.arm_sync(sync)),
        ));
    }
    for op in [DirOp::Create, DirOp::Rename] {
        faults.push((
            format!("{op:?}"),
            Box::new(move |plan: &FaultPlan| plan.crash_at(op)),
        ));
    }
    faults
}

#[test]
fn crash_during_defrag_before_the_rename_reopens_the_last_commit() {
    for (name, arm) in faults_before_rename() {
        let setup = setup();
        let Setup {
            path,
            mut store,
            plan,
            ..
        } = setup;
        let size = store.file_size_bytes();
        let old_bytes = std::fs::read(&path).unwrap();
        arm(&plan);
        let result = store.defrag();
        assert!(
            matches!(result, Err(DefragError::Aborted(_))),
            "{name}: {result:?}"
        );
        assert_eq!(store.file_size_bytes(), size, "{name}");
        assert_eq!(store.persisted_index(), setup.committed_index, "{name}");
        assert!(!store.defrag_in_progress(), "{name}");
        drop(store);
        // The old file was only read.
        assert_eq!(std::fs::read(&path).unwrap(), old_bytes, "{name}");
        if name == "Rename" {
            // The complete new file is left, as a crash just before the
            // rename leaves it.
            assert!(defrag_file_path(&path).exists(), "{name}");
        }
        let reopened = Store::open(&path, manual()).unwrap();
        assert!(
            !defrag_file_path(&path).exists(),
            "{name}: stale file removed"
        );
        assert_eq!(reopened.applied_index(), setup.committed_index, "{name}");
        assert_eq!(everything(&reopened), setup.committed, "{name}");
    }
}

#[test]
fn failed_defrag_leaves_the_store_persisting_to_its_old_file() {
    for (index, (name, arm)) in faults_before_rename().into_iter().enumerate() {
        let setup = setup();
        let Setup {
            path,
            mut store,
            plan,
            ..
        } = setup;
        arm(&plan);
        assert!(
            matches!(store.defrag(), Err(DefragError::Aborted(_))),
            "{name}"
        );
        plan.disarm();
        // The next persist appends to the old file: nodes shared with the
        // failed defrag's snapshot must still name their old pages.
        put_range(&mut store, "r2-", 100..200, b"after the failed defrag");
        store.persist().unwrap();
        assert_eq!(store.persisted_index(), store.applied_index(), "{name}");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            store.file_size_bytes()
        );
        if index % 2 == 1 {
            // A second defrag succeeds, whatever the first one left behind.
            store.defrag().unwrap();
            put_range(&mut store, "r3-", 0..10, b"after the second defrag");
            store.persist().unwrap();
        }
        let expected = everything(&store);
        assert_eq!(expected.count, setup.snapshot.count, "{name}");
        drop(store);
        let reopened = Store::open(&path, manual()).unwrap();
        assert_eq!(everything(&reopened), expected, "{name}");
        assert!(!defrag_file_path(&path).exists(), "{name}");
    }
}

#[test]
fn crash_after_the_rename_reopens_the_defrag_snapshot() {
    let setup = setup();
    let Setup {
        path,
        mut store,
        plan,
        ..
    } = setup;
    let size = store.file_size_bytes();
    plan.crash_at(DirOp::SyncDir);
    let result = store.defrag();
    assert!(
        matches!(result, Err(DefragError::DirectorySync { .. })),
        "{result:?}"
    );
    // The store has switched to the new file but claims nothing new as
    // persisted: the old name may still come back.
    assert!(store.file_size_bytes() < size);
    assert_eq!(store.persisted_index(), setup.committed_index);
    assert!(store.persist().is_err(), "the disk is dead");
    drop(store);
    let reopened = Store::open(&path, manual()).unwrap();
    assert_eq!(reopened.applied_index(), setup.snapshot_index);
    assert_eq!(everything(&reopened), setup.snapshot);
}

#[test]
fn after_a_failed_directory_fsync_the_next_persist_syncs_it_first() {
    let setup = setup();
    let Setup {
        path,
        mut store,
        plan,
        ..
    } = setup;
    plan.crash_at(DirOp::SyncDir);
    assert!(matches!(
        store.defrag(),
        Err(DefragError::DirectorySync { .. })
    ));
    plan.disarm();
    put_range(&mut store, "r4-", 0..20, b"after the rename");
    // The directory fsync fails again: the persist writes nothing.
    plan.crash_at(DirOp::SyncDir);
    let writes = plan.writes_seen();
    assert!(store.persist().is_err());
    assert_eq!(
        plan.writes_seen(),
        writes,
        "nothing written before the fsync"
    );
    assert_eq!(store.persisted_index(), setup.committed_index);
    plan.disarm();
    store.persist().unwrap();
    assert_eq!(store.persisted_index(), store.applied_index());
    let expected = everything(&store);
    drop(store);
    let reopened = Store::open(&path, manual()).unwrap();
    assert_eq!(everything(&reopened), expected);
}

#[test]
fn stale_defrag_file_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, manual()).unwrap();
    put_range(&mut store, "a", 0..100, b"kept");
    store.persist().unwrap();
    let expected = everything(&store);
    // A whole valid tree file of other data, as a crash just before the
    // rename would leave, and plain garbage: both are ignored and removed.
    let other_path = dir.path().join("other");
    let mut other = Store::open(&other_path, manual()).unwrap();
    put_range(&mut other, "zzz", 0..100, b"never renamed");
    other.persist().unwrap();
    drop(other);
    drop(store);
    for stale in [std::fs::read(&other_path).unwrap(), vec![7u8; 10_000]] {
        std::fs::write(defrag_file_path(&path), stale).unwrap();
        let store = Store::open(&path, manual()).unwrap();
        assert!(!defrag_file_path(&path).exists());
        assert_eq!(everything(&store), expected);
    }
}

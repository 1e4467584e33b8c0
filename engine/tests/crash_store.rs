//! Crash tests for the B+tree file: a persist torn or failed at any write
//! (through the fault-injecting file) reopens at the previous commit, and
//! the store keeps working after the failure.

mod common;

use common::{everything, faulty_store, put_many};
use keel_engine::io::WriteFault;
use keel_engine::{Store, StoreOptions};

/// Commits one state, then fails the persist of a second at write number
/// `write` (0 = the first write of that persist) with `fault`, and checks
/// that reopening gives the first state.
fn crash_during_second_persist(write: u64, fault: WriteFault) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store(&path);
    put_many(&mut store, "a", 300);
    store.persist().unwrap();
    let committed = everything(&store);
    let committed_index = store.applied_index();
    put_many(&mut store, "b", 300);
    plan.arm(write, fault);
    assert!(store.persist().is_err());
    assert_eq!(store.persisted_index(), committed_index);
    drop(store);
    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(reopened.applied_index(), committed_index);
    assert_eq!(everything(&reopened), committed);
}

#[test]
fn torn_commit_record_reopens_previous_commit() {
    // One node write, then the commit record is write 1.
    for keep_bytes in [0, 1, 100, 4095] {
        crash_during_second_persist(1, WriteFault::Tear { keep_bytes });
    }
}

#[test]
fn torn_node_write_reopens_previous_commit() {
    crash_during_second_persist(0, WriteFault::Tear { keep_bytes: 5000 });
    crash_during_second_persist(0, WriteFault::Fail);
}

#[test]
fn store_recovers_after_a_failed_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store(&path);
    put_many(&mut store, "a", 100);
    store.persist().unwrap();
    put_many(&mut store, "b", 100);
    plan.arm(1, WriteFault::Tear { keep_bytes: 300 });
    assert!(store.persist().is_err());
    plan.disarm();
    put_many(&mut store, "c", 100);
    store.persist().unwrap();
    let expected = everything(&store);
    assert_eq!(expected.count, 300);
    let applied = store.applied_index();
    drop(store);
    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(reopened.applied_index(), applied);
    assert_eq!(everything(&reopened), expected);
}

#[test]
fn trailing_garbage_pages_are_ignored_and_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, _plan) = faulty_store(&path);
    put_many(&mut store, "a", 100);
    store.persist().unwrap();
    let size = store.file_size_bytes();
    let expected = everything(&store);
    drop(store);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::os::unix::fs::FileExt;
    file.write_all_at(&vec![0x5Au8; 10_000], size).unwrap();
    drop(file);
    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(everything(&reopened), expected);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
}

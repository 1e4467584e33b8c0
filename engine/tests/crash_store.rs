//! Crash tests for the B+tree file: a persist torn or failed at any write
//! (through the fault-injecting file) reopens at the previous commit, and
//! the store keeps working after the failure.

mod common;

use common::{everything, faulty_store, put_many};
use keel_engine::btree::page::COMMIT_RECORD_BYTES;
use keel_engine::io::WriteFault;
use keel_engine::{Store, StoreOptions};

/// Commits one state, then fails the persist of a second at write number
/// `write` (0 = the first write of that persist) with `fault`, and checks
/// that reopening gives the first state.
fn crash_during_second_persist(write: u64, fault: WriteFault) {
    let (first, _second, reopened) = reopen_after_second_persist_fails(write, fault);
    assert_eq!(reopened, first);
}

/// What the store held after its first persist, what it held when its
/// second persist failed at write `write` with `fault`, and what it holds
/// reopened: (applied index, everything).
type State = (u64, keel_engine::RangeResult);

fn reopen_after_second_persist_fails(write: u64, fault: WriteFault) -> (State, State, State) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store(&path);
    put_many(&mut store, "a", 300);
    store.persist().unwrap();
    let first = (store.applied_index(), everything(&store));
    put_many(&mut store, "b", 300);
    let second = (store.applied_index(), everything(&store));
    plan.arm(write, fault);
    assert!(store.persist().is_err());
    assert_eq!(store.persisted_index(), first.0);
    drop(store);
    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    let reopened = (reopened.applied_index(), everything(&reopened));
    (first, second, reopened)
}

#[test]
fn torn_commit_record_reopens_previous_commit() {
    // One write of the nodes with the commit record's page blank after
    // them (write 0), then the commit record on that page (write 1). The
    // nodes are durable by then, so a tear that keeps the whole record (it
    // is the page's first bytes, the rest stays blank) is the new commit,
    // whole; one that cuts it is the previous commit. Either way nothing
    // is half there.
    for keep_bytes in [0, 1, 100, COMMIT_RECORD_BYTES - 1] {
        crash_during_second_persist(1, WriteFault::Tear { keep_bytes });
    }
    crash_during_second_persist(1, WriteFault::Fail);
    for keep_bytes in [COMMIT_RECORD_BYTES, 4095] {
        let (_first, second, reopened) =
            reopen_after_second_persist_fails(1, WriteFault::Tear { keep_bytes });
        assert_eq!(reopened, second, "keeping {keep_bytes} bytes");
    }
}

#[test]
fn torn_or_failed_node_write_reopens_previous_commit() {
    crash_during_second_persist(0, WriteFault::Fail);
    // Cut inside a node, on a page boundary, and not at all (every node
    // and the blank commit page reach the file, then the write reports an
    // error, so no commit record follows).
    for keep_bytes in [100, 5000, 8192, usize::MAX] {
        crash_during_second_persist(0, WriteFault::Tear { keep_bytes });
    }
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

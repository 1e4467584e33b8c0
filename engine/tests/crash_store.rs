//! Crash tests for the B+tree file: a persist torn or failed at its write
//! or its fdatasync (through the fault-injecting file) reopens at one whole
//! commit, the previous one unless the new one reached the file whole; a
//! disk that kept a persist's commit record but lost or garbled a node page
//! written with it reopens at the previous commit; and the store keeps
//! working after a failure.

mod common;

use common::{everything, faulty_store, put_many};
use keel_engine::btree::page::COMMIT_RECORD_BYTES;
use keel_engine::io::{FaultPlan, WriteFault};
use keel_engine::{Store, StoreOptions};

const PAGE_BYTES: usize = keel_engine::btree::PAGE_SIZE_BYTES as usize;

/// Commits one state, then fails the persist of a second at write number
/// `write` (0 = the first write of that persist) with `fault`, and checks
/// that reopening gives the first state.
fn crash_during_second_persist(write: u64, fault: WriteFault) {
    let (first, _second, reopened) = reopen_after_second_persist_fails(write, fault);
    assert!(
        reopened == first,
        "{fault:?} at write {write}: reopened at applied index {} (first commit: {})",
        reopened.0,
        first.0
    );
}

/// What the store held after its first persist, what it held when its
/// second persist failed at write `write` with `fault`, and what it holds
/// reopened: (applied index, everything).
type State = (u64, keel_engine::RangeResult);

fn reopen_after_second_persist_fails(write: u64, fault: WriteFault) -> (State, State, State) {
    reopen_after_second_persist_fails_by(|plan| plan.arm(write, fault))
}

/// [`reopen_after_second_persist_fails`] with the fault `arm` sets.
fn reopen_after_second_persist_fails_by(arm: impl FnOnce(&FaultPlan)) -> (State, State, State) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store(&path);
    put_many(&mut store, "a", 300);
    store.persist().unwrap();
    let first = (store.applied_index(), everything(&store));
    put_many(&mut store, "b", 300);
    let second = (store.applied_index(), everything(&store));
    arm(&plan);
    assert!(store.persist().is_err());
    assert_eq!(store.persisted_index(), first.0);
    drop(store);
    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    let reopened = (reopened.applied_index(), everything(&reopened));
    (first, second, reopened)
}

/// Bytes the second persist of [`reopen_after_second_persist_fails`]
/// writes (its one write: the dirty nodes, then the commit record page),
/// learned from the same work done without a fault.
fn second_persist_bytes() -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store(&path);
    put_many(&mut store, "a", 300);
    store.persist().unwrap();
    let before = (store.file_size_bytes(), plan.writes_seen());
    put_many(&mut store, "b", 300);
    store.persist().unwrap();
    assert_eq!(plan.writes_seen(), before.1 + 1, "a persist is one write");
    (store.file_size_bytes() - before.0) as usize
}

#[test]
fn torn_or_failed_persist_write_reopens_previous_commit() {
    // A persist is one write (nodes, then the commit record page) and one
    // fdatasync. Cut anywhere short of the whole record, it leaves the
    // previous commit.
    let bytes = second_persist_bytes();
    let record_at = bytes - PAGE_BYTES;
    assert!(record_at >= 2 * PAGE_BYTES, "the persist writes nodes");
    crash_during_second_persist(0, WriteFault::Fail);
    // Every page boundary of the write and a cut inside every page, then
    // cuts through the record.
    let mut cuts: Vec<usize> = (0..record_at)
        .step_by(PAGE_BYTES)
        .flat_map(|page| [page, page + 1000])
        .collect();
    cuts.extend([
        record_at,
        record_at + 1,
        record_at + COMMIT_RECORD_BYTES - 1,
        // The record whole but its page not: the file ends inside the
        // page, which recovery does not read as a commit.
        record_at + COMMIT_RECORD_BYTES,
        bytes - 1,
    ]);
    for keep_bytes in cuts {
        crash_during_second_persist(0, WriteFault::Tear { keep_bytes });
    }
    // The whole write reached the file (then it reported an error): every
    // node is there before the record, so it is the new commit, whole.
    for keep_bytes in [bytes, usize::MAX] {
        let (_first, second, reopened) =
            reopen_after_second_persist_fails(0, WriteFault::Tear { keep_bytes });
        assert!(reopened == second, "keeping {keep_bytes} bytes");
    }
}

#[test]
fn failed_fdatasync_after_the_whole_write_reopens_one_whole_commit() {
    // What the write left is all in the file here (nothing was lost after
    // it), so recovery opens the new commit; the tests below cover a disk
    // that kept only part of it.
    let (_first, second, reopened) = reopen_after_second_persist_fails_by(|plan| plan.arm_sync(0));
    assert!(
        reopened == second,
        "reopened at applied index {}",
        reopened.0
    );
}

/// Two persists, then each page the second one wrote (its nodes, before
/// its commit record) replaced by `damage`, as a disk that kept the record
/// but not that page would leave it: every time the store reopens at the
/// first commit and reports the second as dropped, naming the node that
/// page belongs to.
fn each_node_page_of_the_last_persist_lost(damage: fn(&mut [u8])) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    put_many(&mut store, "a", 300);
    store.persist().unwrap();
    let first = (store.applied_index(), everything(&store));
    let first_size = store.file_size_bytes() as usize;
    put_many(&mut store, "b", 300);
    store.persist().unwrap();
    let second_index = store.applied_index();
    drop(store);
    let original = std::fs::read(&path).unwrap();
    // The nodes, then zero pages up to the commit record's 4 KiB block
    // end (`appender.rs`): unreachable, so losing one loses nothing.
    let record_at = original.len() - PAGE_BYTES;
    let mut nodes_end = first_size;
    while &original[nodes_end..nodes_end + 4] == b"KNOD" {
        let span = u32::from_le_bytes(original[nodes_end + 8..nodes_end + 12].try_into().unwrap());
        nodes_end += span as usize * PAGE_BYTES;
    }
    assert!(original[nodes_end..record_at].iter().all(|&byte| byte == 0));
    assert!(record_at - nodes_end < 4096);
    for page_at in (first_size..nodes_end).step_by(PAGE_BYTES) {
        let mut damaged = original.clone();
        damage(&mut damaged[page_at..page_at + PAGE_BYTES]);
        std::fs::write(&path, &damaged).unwrap();
        let reopened = Store::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(
            (reopened.applied_index(), everything(&reopened)),
            first,
            "page at {page_at}"
        );
        let dropped = reopened
            .dropped_commit()
            .expect("the second commit dropped");
        assert_eq!(dropped.applied_index, second_index);
        let named = dropped.damage_offset;
        assert!(
            dropped.damage.contains(&named.to_string()),
            "{}",
            dropped.damage
        );
        // Inside the node holding the damaged page: among the persist's
        // pages, not after that page (a node spans pages from its start).
        assert!(
            (first_size as u64..record_at as u64).contains(&named)
                && named < (page_at + PAGE_BYTES) as u64,
            "damage at {page_at} named at {named}: {}",
            dropped.damage
        );
        drop(reopened);
        // Recovery cut the dropped persist off: the file is the first
        // commit's, and opening again drops nothing more.
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, first_size);
        let again = Store::open(&path, StoreOptions::default()).unwrap();
        assert_eq!((again.applied_index(), everything(&again)), first);
        assert_eq!(again.dropped_commit(), None);
    }
}

#[test]
fn node_pages_missing_under_a_durable_commit_record_reopen_previous_commit() {
    each_node_page_of_the_last_persist_lost(|page| page.fill(0));
}

#[test]
fn node_pages_garbled_under_a_durable_commit_record_reopen_previous_commit() {
    each_node_page_of_the_last_persist_lost(|page| {
        for (at, byte) in page.iter_mut().enumerate() {
            *byte = (at as u8).wrapping_mul(37) ^ 0x5A;
        }
    });
}

#[test]
fn first_persist_with_a_node_missing_reopens_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, StoreOptions::default()).unwrap();
    put_many(&mut store, "a", 300);
    store.persist().unwrap();
    drop(store);
    let mut damaged = std::fs::read(&path).unwrap();
    damaged[PAGE_BYTES..2 * PAGE_BYTES].fill(0);
    std::fs::write(&path, &damaged).unwrap();
    let reopened = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(reopened.applied_index(), 0);
    assert_eq!(everything(&reopened).count, 0);
    assert_eq!(
        reopened.dropped_commit().map(|dropped| dropped.commit_seq),
        Some(1)
    );
}

#[test]
fn store_recovers_after_a_failed_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store(&path);
    put_many(&mut store, "a", 100);
    store.persist().unwrap();
    put_many(&mut store, "b", 100);
    plan.arm(0, WriteFault::Tear { keep_bytes: 300 });
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

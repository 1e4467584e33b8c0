//! Guards `Store::size_in_use_bytes` (etcd's `db_size_in_use`): the bytes
//! the last commit references equal the file size while nothing was
//! superseded, fall below it as persists supersede pages (overwrites,
//! compaction), equal exactly what a defrag then writes, equal the file
//! size after a defrag, survive a reopen, and stay put when a persist fails.

mod common;

use common::{faulty_store_in, put_range};
use keel_engine::btree::PAGE_SIZE_BYTES;
use keel_engine::io::{WriteFault, DIRECT_ALIGN_BYTES};
use keel_engine::{Store, StoreOptions};
use std::time::Duration;

/// Persists only when a test asks.
fn manual() -> StoreOptions {
    StoreOptions {
        persist_ops_threshold: u64::MAX,
        persist_dirty_bytes_threshold: u64::MAX,
        persist_interval: Duration::from_secs(3600),
    }
}

#[test]
fn size_in_use_tracks_live_pages_through_persists_compaction_and_defrag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (mut store, plan) = faulty_store_in(&path, manual());
    // A fresh file: only its header.
    assert_eq!(store.file_size_bytes(), PAGE_SIZE_BYTES);
    assert_eq!(store.size_in_use_bytes(), PAGE_SIZE_BYTES);

    // The first persist references every page it wrote but the zero pages
    // that end its write on a 4 KiB block (`appender.rs`).
    put_range(&mut store, "k", 0..2000, &[1u8; 100]);
    store.persist().unwrap();
    let padding = store.file_size_bytes() - store.size_in_use_bytes();
    assert!(padding < DIRECT_ALIGN_BYTES as u64, "{padding}");
    assert_eq!(store.file_size_bytes() % DIRECT_ALIGN_BYTES as u64, 0);

    // Overwrites supersede pages: in use grows slower than the file.
    for round in 0..10u8 {
        put_range(&mut store, "k", 0..2000, &[round; 100]);
        store.persist().unwrap();
    }
    let in_use_history = store.size_in_use_bytes();
    assert!(in_use_history < store.file_size_bytes());

    // Compaction drops entries and the persist after it supersedes every
    // leaf that held one; thinned leaves merge, so the pages in use shrink
    // with the entries (`tree_thinning.rs` bounds how far).
    let revision = store.revision();
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    batch.compact(revision).unwrap();
    batch.commit(applied);
    store.persist().unwrap();
    let in_use = store.size_in_use_bytes();
    let file_size = store.file_size_bytes();
    assert!(in_use <= in_use_history, "{in_use} > {in_use_history}");
    assert!(in_use * 4 < file_size, "{in_use} of {file_size}");

    // A failed persist changes nothing.
    put_range(&mut store, "k", 0..100, b"lost");
    plan.arm(0, WriteFault::Fail);
    assert!(store.persist().is_err());
    plan.disarm();
    assert_eq!(store.size_in_use_bytes(), in_use);
    assert_eq!(store.file_size_bytes(), file_size);
    store.persist().unwrap();
    let in_use = store.size_in_use_bytes();

    // A reopen counts the same pages from the file.
    drop(store);
    let (mut store, _plan) = faulty_store_in(&path, manual());
    assert_eq!(store.size_in_use_bytes(), in_use);

    // A defrag of the unchanged state writes exactly the pages in use.
    store.defrag().unwrap();
    assert_eq!(store.file_size_bytes(), in_use);
    assert_eq!(store.size_in_use_bytes(), store.file_size_bytes());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), in_use);

    // After it, persists count shared subtrees by their new pages.
    put_range(&mut store, "k", 0..10, b"after");
    store.persist().unwrap();
    let in_use = store.size_in_use_bytes();
    assert!(in_use < store.file_size_bytes());
    drop(store);
    let mut store = Store::open(&path, manual()).unwrap();
    assert_eq!(store.size_in_use_bytes(), in_use);
    store.defrag().unwrap();
    assert_eq!(store.file_size_bytes(), in_use);
}

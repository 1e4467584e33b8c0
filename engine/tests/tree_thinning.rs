//! Guards the merging of thinned B+tree nodes through the store: a tree of
//! 100k keys of which 95% are deleted and compacted away in batches
//! references (size in use), and a defrag then writes, about as many pages
//! as a store built with only the remaining keys, not a page per old leaf;
//! every remaining key reads back after a reopen. And the batches that
//! rewrite keys leave no leaves of one entry behind (`merge_changed`):
//! their pages are about those of as many entries written in order.

mod common;

use common::{everything, put_range};
use keel_engine::btree::PAGE_SIZE_BYTES;
use keel_engine::{Store, StoreOptions};
use std::time::Duration;

/// Keys written before thinning.
const KEYS: usize = 100_000;
/// Keys per write batch while filling.
const FILL_BATCH_KEYS: usize = 10_000;
/// One key in this many survives.
const KEEP_EVERY: usize = 20;
/// Delete + compact + persist rounds the thinning takes.
const THINNING_BATCHES: usize = 10;
/// Bytes of every value.
const VALUE_BYTES: usize = 100;
/// The thinned tree may reference at most this many times the pages of a
/// tree built with only its keys.
const PAGES_FACTOR_MAX: u64 = 2;
/// Keys the rewrite test writes twice, and the bytes of their values.
const REWRITE_KEYS: usize = 10_000;
const REWRITE_VALUE_BYTES: usize = 256;
/// The rewritten keys may take at most this percentage of the pages of as
/// many entries written once, in ascending order.
const REWRITE_PAGES_PERCENT_MAX: u64 = 105;

/// Persists only when a test asks.
fn manual() -> StoreOptions {
    StoreOptions {
        persist_ops_threshold: u64::MAX,
        persist_dirty_bytes_threshold: u64::MAX,
        persist_interval: Duration::from_secs(3600),
    }
}

fn key(number: usize) -> Vec<u8> {
    format!("k{number:05}").into_bytes()
}

fn pages_in_use(store: &Store) -> u64 {
    store.size_in_use_bytes() / PAGE_SIZE_BYTES
}

#[test]
fn thinned_tree_shrinks_to_the_pages_its_keys_need() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = Store::open(&path, manual()).unwrap();
    for start in (0..KEYS).step_by(FILL_BATCH_KEYS) {
        put_range(
            &mut store,
            "k",
            start..start + FILL_BATCH_KEYS,
            &[7u8; VALUE_BYTES],
        );
    }
    store.persist().unwrap();
    let pages_full = pages_in_use(&store);

    // Each batch deletes 95% of a slice of the keys and compacts their
    // puts and tombstones away.
    let slice_keys = KEYS / THINNING_BATCHES;
    for slice in 0..THINNING_BATCHES {
        let applied = store.applied_index() + 1;
        let mut batch = store.write_batch();
        let mut txn = batch.txn();
        for number in slice * slice_keys..(slice + 1) * slice_keys {
            if number % KEEP_EVERY != 0 {
                assert_eq!(txn.delete_range(&key(number), &[]).len(), 1);
            }
        }
        txn.end();
        batch.commit(applied);
        let revision = store.revision();
        let mut batch = store.write_batch();
        batch.compact(revision).unwrap();
        batch.commit(applied + 1);
        store.persist().unwrap();
    }
    let kept: Vec<Vec<u8>> = (0..KEYS).step_by(KEEP_EVERY).map(key).collect();
    assert_eq!(store.tree_entry_count(), kept.len() as u64);
    let pages_thinned = pages_in_use(&store);

    // What the remaining keys need: a store written with only them.
    let mut fresh = Store::open(&dir.path().join("fresh"), manual()).unwrap();
    let mut batch = fresh.write_batch();
    let mut txn = batch.txn();
    for key in &kept {
        txn.put(key, &[7u8; VALUE_BYTES], 0);
    }
    txn.end();
    batch.commit(1);
    fresh.persist().unwrap();
    let pages_needed = pages_in_use(&fresh);
    eprintln!(
        "pages in use: {pages_full} for {KEYS} keys, {pages_thinned} after thinning to {} keys \
         (a store of only those: {pages_needed})",
        kept.len()
    );
    assert!(
        pages_thinned <= PAGES_FACTOR_MAX * pages_needed,
        "{pages_thinned} pages in use for {} keys that need {pages_needed}",
        kept.len()
    );

    // A defrag writes exactly the pages in use, and everything survives.
    store.defrag().unwrap();
    assert_eq!(store.file_size_bytes(), pages_thinned * PAGE_SIZE_BYTES);
    drop(store);
    let store = Store::open(&path, manual()).unwrap();
    assert_eq!(pages_in_use(&store), pages_thinned);
    let keys: Vec<Vec<u8>> = everything(&store)
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, kept);
}

#[test]
fn rewritten_keys_take_the_pages_their_entries_need() {
    // Whether a rewrite leaves leaves of one entry depends on where the
    // leaf bounds fall, so on the key and value sizes: a few key shapes.
    for prefix in ["k", "key/000", "/registry/pods/default/"] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db"), manual()).unwrap();
        for round in 0..2u8 {
            put_range(
                &mut store,
                prefix,
                0..REWRITE_KEYS,
                &[round; REWRITE_VALUE_BYTES],
            );
            store.persist().unwrap();
        }
        let pages_rewritten = pages_in_use(&store);
        // As many entries of the same sizes, each key written once.
        let mut fresh = Store::open(&dir.path().join("fresh"), manual()).unwrap();
        put_range(
            &mut fresh,
            prefix,
            0..2 * REWRITE_KEYS,
            &[0; REWRITE_VALUE_BYTES],
        );
        fresh.persist().unwrap();
        let pages_needed = pages_in_use(&fresh);
        eprintln!(
            "{prefix}: pages in use: {pages_rewritten} for {REWRITE_KEYS} keys written twice, \
             {pages_needed} for twice the keys written once"
        );
        assert!(
            pages_rewritten * 100 <= pages_needed * REWRITE_PAGES_PERCENT_MAX,
            "{prefix}: {pages_rewritten} pages where {pages_needed} would do"
        );
    }
}

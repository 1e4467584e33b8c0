//! Guards the store's file: persist + reopen give the same data, when a
//! persist is due, how far back the WAL is needed, and rejection of a
//! damaged or foreign file (naming file and offset).

mod common;

use common::{delete, get, get_at, open, put};
use keel_engine::btree::PAGE_SIZE_BYTES;
use keel_engine::{RangeOptions, Store, StoreError, StoreOptions};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

#[test]
fn persist_and_reopen_give_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = open(&path);
    assert!(!store.needs_persist());
    let big_value = vec![0xABu8; 1_500_000];
    put(&mut store, b"big", &big_value);
    for number in 0..3000 {
        put(
            &mut store,
            format!("key{number:05}").as_bytes(),
            &[number as u8; 256],
        );
    }
    delete(&mut store, b"key00010", b"key00020");
    assert_eq!(store.persisted_index(), 0);
    store.persist().unwrap();
    assert_eq!(store.persisted_index(), store.applied_index());
    let size_after_first = store.file_size_bytes();
    // Small change: only the changed path is appended.
    put(&mut store, b"key00500", b"changed");
    store.persist().unwrap();
    let appended = store.file_size_bytes() - size_after_first;
    assert!(appended < 64 * 1024, "appended {appended} bytes");
    let revision = store.revision();
    let applied = store.applied_index();
    let all = RangeOptions {
        key: b"\x00",
        range_end: b"\x00",
        ..RangeOptions::default()
    };
    let expected = store.reader().view().range(&all).unwrap();
    let expected_old = get_at(&store, b"key00015", 100).unwrap();
    drop(store);

    let store = open(&path);
    assert_eq!(store.revision(), revision);
    assert_eq!(store.applied_index(), applied);
    assert_eq!(store.persisted_index(), applied);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        store.file_size_bytes()
    );
    assert_eq!(store.reader().view().range(&all).unwrap(), expected);
    assert_eq!(expected.count, 3000 - 10 + 1);
    assert_eq!(get(&store, b"big").unwrap().value, big_value);
    assert_eq!(get_at(&store, b"key00015", 100).unwrap(), expected_old);
    assert_eq!(expected_old.kvs.len(), 1);
}

#[test]
fn needs_persist_after_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        persist_ops_threshold: 3,
        ..StoreOptions::default()
    };
    let mut store = Store::open(&dir.path().join("db"), options).unwrap();
    put(&mut store, b"a", b"1");
    put(&mut store, b"b", b"1");
    assert!(!store.needs_persist());
    put(&mut store, b"c", b"1");
    assert!(store.needs_persist());
    store.persist().unwrap();
    assert!(!store.needs_persist());
}

fn persisted_store(path: &Path) {
    let mut store = open(path);
    for number in 0..500 {
        put(
            &mut store,
            format!("key{number:04}").as_bytes(),
            &[1u8; 100],
        );
    }
    store.persist().unwrap();
}

#[test]
fn the_wal_is_needed_from_the_commit_before_the_last_persisted_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut store = open(&path);
    assert_eq!(store.wal_needed_from(), 0);
    let mut persisted = vec![0];
    for round in 0..3u8 {
        put(&mut store, &[b'k', round], b"v");
        store.persist().unwrap();
        persisted.push(store.applied_index());
        assert_eq!(store.persisted_index(), persisted[persisted.len() - 1]);
        assert_eq!(store.wal_needed_from(), persisted[persisted.len() - 2]);
    }
    drop(store);
    // Reopened, the commit before the last is not known: keep everything
    // until this process persists.
    let mut store = open(&path);
    assert_eq!(store.wal_needed_from(), 0);
    put(&mut store, b"after", b"v");
    store.persist().unwrap();
    assert_eq!(store.wal_needed_from(), persisted[persisted.len() - 1]);
}

#[test]
fn corrupted_node_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    persisted_store(&path);
    {
        // A later persist that leaves the first leaf where it is: damage
        // there is bit rot, not a persist that did not finish (damage
        // among the newest persist's own pages opens the commit before
        // it: `crash_store.rs`).
        let mut store = open(&path);
        put(&mut store, b"zzz", b"last");
        store.persist().unwrap();
    }
    // Page 1 is the first leaf written.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut byte = [0u8];
    let page_one = PAGE_SIZE_BYTES;
    file.read_exact_at(&mut byte, page_one + 100).unwrap();
    file.write_all_at(&[byte[0] ^ 1], page_one + 100).unwrap();
    let error = Store::open(&path, StoreOptions::default()).unwrap_err();
    match &error {
        StoreError::Corrupt {
            path: at, offset, ..
        } => {
            assert_eq!(at, &path);
            assert_eq!(*offset, page_one + 20);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(error.to_string().contains("db"), "{error}");
}

#[test]
fn other_format_version_or_bad_header_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    persisted_store(&path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut header = [0u8; 28];
    file.read_exact_at(&mut header, 0).unwrap();
    header[8] = 9;
    let crc = crc32c::crc32c(&header[..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&header, 0).unwrap();
    assert!(matches!(
        Store::open(&path, StoreOptions::default()).unwrap_err(),
        StoreError::UnsupportedVersion {
            found: 9,
            offset: 8,
            ..
        }
    ));
    file.write_all_at(b"XXXX", 0).unwrap();
    assert!(matches!(
        Store::open(&path, StoreOptions::default()).unwrap_err(),
        StoreError::Corrupt { offset: 0, .. }
    ));
    file.set_len(100).unwrap();
    assert!(matches!(
        Store::open(&path, StoreOptions::default()).unwrap_err(),
        StoreError::Corrupt { .. }
    ));
}

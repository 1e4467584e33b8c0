//! Helpers the store test binaries share: a store over the fault-injecting
//! file, single and bulk puts, deletes, point reads and a full read.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use keel_engine::io::{
    FaultInjectingFile, FaultInjectingFileSystem, FaultPlan, StdFile, StorageFile,
};
use keel_engine::{Event, KeyValue, MvccError, RangeOptions, RangeResult, Store, StoreOptions};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// Opens (or creates) the store at `path` through a fault-injecting file;
/// the plan arms faults and pauses.
pub fn faulty_store_with(path: &Path, options: StoreOptions) -> (Store, Arc<FaultPlan>) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let plan = FaultPlan::new();
    let faulty: Box<dyn StorageFile> = Box::new(FaultInjectingFile::new(
        Box::new(StdFile::new(file)),
        plan.clone(),
    ));
    (Store::open_with_file(path, faulty, options).unwrap(), plan)
}

/// Opens (or creates) the store at `path` through a fault-injecting file
/// system: its file, and every file a defrag creates, renames or removes,
/// obey the returned plan.
pub fn faulty_store_in(path: &Path, options: StoreOptions) -> (Store, Arc<FaultPlan>) {
    let plan = FaultPlan::new();
    let file_system = Arc::new(FaultInjectingFileSystem::std(plan.clone()));
    (Store::open_in(path, file_system, options).unwrap(), plan)
}

/// [`faulty_store_with`] and default options.
pub fn faulty_store(path: &Path) -> (Store, Arc<FaultPlan>) {
    faulty_store_with(path, StoreOptions::default())
}

/// One batch (applied index + 1) of one txn putting `{prefix}{number:05}`
/// = `value` for every number.
pub fn put_range(store: &mut Store, prefix: &str, numbers: Range<usize>, value: &[u8]) {
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    for number in numbers {
        txn.put(format!("{prefix}{number:05}").as_bytes(), value, 0);
    }
    txn.end();
    batch.commit(applied);
}

/// One batch putting `count` keys under `prefix`, 200 bytes each.
pub fn put_many(store: &mut Store, prefix: &str, count: usize) {
    put_range(store, prefix, 0..count, &[7u8; 200]);
}

/// Every key at the latest published revision.
pub fn everything(store: &Store) -> RangeResult {
    store
        .reader()
        .view()
        .range(&RangeOptions {
            key: b"\x00",
            range_end: b"\x00",
            ..RangeOptions::default()
        })
        .unwrap()
}

/// Opens (or creates) the store at `path` with default options.
pub fn open(path: &Path) -> Store {
    Store::open(path, StoreOptions::default()).unwrap()
}

/// One batch of one txn putting `key` = `value`; its events.
pub fn put(store: &mut Store, key: &[u8], value: &[u8]) -> Vec<Event> {
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    txn.put(key, value, 0);
    let events = txn.end();
    batch.commit(applied);
    events
}

/// One batch of one txn deleting `[key, range_end)`; the deleted kvs.
pub fn delete(store: &mut Store, key: &[u8], range_end: &[u8]) -> Vec<KeyValue> {
    let applied = store.applied_index() + 1;
    let mut batch = store.write_batch();
    let mut txn = batch.txn();
    let deleted = txn.delete_range(key, range_end);
    txn.end();
    batch.commit(applied);
    deleted
}

/// `key` at `revision` (0: the latest) in the latest published view.
pub fn get_at(store: &Store, key: &[u8], revision: i64) -> Result<RangeResult, MvccError> {
    store.reader().view().range(&RangeOptions {
        key,
        revision,
        ..RangeOptions::default()
    })
}

/// `key`'s latest kv, if any.
pub fn get(store: &Store, key: &[u8]) -> Option<KeyValue> {
    get_at(store, key, 0).unwrap().kvs.pop()
}

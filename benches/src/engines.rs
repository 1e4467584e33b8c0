//! The same storage work on keel's engine and on redb, for the Criterion
//! comparison (`benches/engine.rs`) and the instruction counts (`micro.rs`).
//!
//! Both sides get the same bytes: keys `key/{index:08}` (12 B, so key order
//! is index order), 256-byte values, the same batch sizes. What "the same
//! work" means for each operation:
//!
//! | operation | keel | redb |
//! | --- | --- | --- |
//! | put batch | one `WriteBatch` of single-put txns, events only for leases (as the server's apply when no watcher is registered), `commit` | one write transaction of `insert`s, `commit` |
//! | durable put batch | the same, then `Store::persist` (nodes and commit record in one write, one fdatasync) | `Durability::Immediate` (redb's default: fsync before `commit` returns) |
//! | in-memory put batch | `commit` only (the WAL, not the tree, makes keel durable) | `Durability::None` (no fsync; made durable by a later immediate commit) |
//! | point get | `ReadView::range` of one key, value copied out | `Table::get`, value copied out |
//! | range scan | `ReadView::range` over `[first, first + n)` | `Table::range`, keys and values copied out |
//! | compaction | `WriteBatch::compact` at the latest revision: drop every superseded revision | the same history as a `(key, !revision)` table, `retain` keeping each key's newest row |
//!
//! keel's reads return owned `KeyValue`s (create/mod revision, version,
//! lease, value) and redb's are zero-copy guards, so redb's side copies the
//! bytes out to give the caller the same thing. keel also does MVCC
//! bookkeeping on every put (it reads the key's previous version); that is
//! part of its work.

use std::hint::black_box;
use std::path::Path;

use keel_engine::{Detail, RangeOptions, Store, StoreOptions};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};

/// Keys a filled store holds.
pub const STORE_KEYS: usize = 100_000;
/// Keys one batched put writes, and one range scan returns.
pub const BATCH_KEYS: usize = 1000;
/// Point gets one read makes (spread over the store).
pub const POINT_GETS: usize = 100;
/// Value size of every put, as `compare.sh`'s scenarios.
pub const VALUE_BYTES: usize = 256;
/// Keys of a compaction benchmark's store, each written twice: compaction
/// drops one superseded revision per key.
pub const COMPACT_KEYS: usize = 10_000;
/// Puts per write batch while a store is filled.
const FILL_BATCH_KEYS: usize = 10_000;

/// The `index`-th key: fixed width, so key order is index order.
pub fn key(index: usize) -> Vec<u8> {
    format!("key/{index:08}").into_bytes()
}

/// The value of every put.
pub fn value() -> Vec<u8> {
    (0..VALUE_BYTES).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Keys `first..first + count`.
pub fn key_range(first: usize, count: usize) -> Vec<Vec<u8>> {
    (first..first + count).map(key).collect()
}

/// The keys `POINT_GETS` point gets read: spread over `STORE_KEYS`.
pub fn point_get_keys() -> Vec<Vec<u8>> {
    (0..POINT_GETS)
        .map(|i| key(i * (STORE_KEYS / POINT_GETS) + 7))
        .collect()
}

/// Whether a write's commit is durable when it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// keel: commit only; redb: `Durability::None`.
    Memory,
    /// keel: commit then `persist`; redb: `Durability::Immediate`.
    Fsync,
}

/// keel's engine in a temporary directory.
pub struct KeelEngine {
    _dir: tempfile::TempDir,
    pub store: Store,
}

impl KeelEngine {
    /// An empty store that never persists on its own.
    pub fn empty() -> KeelEngine {
        let dir = tempfile::tempdir().expect("temporary directory");
        let options = StoreOptions {
            persist_ops_threshold: u64::MAX,
            persist_dirty_bytes_threshold: u64::MAX,
            persist_interval: std::time::Duration::from_secs(3600),
        };
        let store = Store::open(&dir.path().join("db"), options).expect("store opens");
        KeelEngine { _dir: dir, store }
    }

    /// A store holding keys `0..keys`, each put once, persisted.
    pub fn filled(keys: usize) -> KeelEngine {
        let mut engine = KeelEngine::empty();
        engine.fill(keys);
        engine
    }

    /// A store holding keys `0..keys`, each put twice (two revisions).
    pub fn with_history(keys: usize) -> KeelEngine {
        let mut engine = KeelEngine::filled(keys);
        engine.fill(keys);
        engine
    }

    /// Puts keys `0..keys` in batches of [`FILL_BATCH_KEYS`], persisted.
    fn fill(&mut self, keys: usize) {
        let value = value();
        for first in (0..keys).step_by(FILL_BATCH_KEYS) {
            let batch_keys = key_range(first, FILL_BATCH_KEYS.min(keys - first));
            self.put_batch(&batch_keys, &value, Sync::Memory);
        }
        self.store.persist().expect("persist");
    }

    /// One write batch of one single-put txn per key.
    pub fn put_batch(&mut self, keys: &[Vec<u8>], value: &[u8], sync: Sync) {
        let applied_index = self.store.applied_index() + 1;
        let mut batch = self.store.write_batch();
        batch.set_event_detail(Detail::Leases);
        for key in keys {
            let mut txn = batch.txn();
            txn.put(key, value, 0);
            black_box(txn.end());
        }
        batch.commit(applied_index);
        if sync == Sync::Fsync {
            self.store.persist().expect("persist");
        }
    }

    /// Point gets of `keys` in one view; returns the value bytes read.
    pub fn get_many(&self, keys: &[Vec<u8>]) -> usize {
        let view = self.store.reader().view();
        let mut bytes = 0;
        for key in keys {
            let result = view
                .range(&RangeOptions {
                    key,
                    ..Default::default()
                })
                .expect("range");
            assert_eq!(result.kvs.len(), 1);
            bytes += result.kvs[0].value.len();
            black_box(result);
        }
        bytes
    }

    /// One range scan of `[start, end)` keys; returns the kvs read.
    pub fn range(&self, start: &[u8], end: &[u8]) -> usize {
        let result = self
            .store
            .reader()
            .view()
            .range(&RangeOptions {
                key: start,
                range_end: end,
                ..Default::default()
            })
            .expect("range");
        let read = result.kvs.len();
        black_box(result);
        read
    }

    /// Compacts every superseded revision away; returns the entries removed.
    pub fn compact(&mut self, sync: Sync) -> u64 {
        let revision = self.store.revision();
        let applied_index = self.store.applied_index() + 1;
        let mut batch = self.store.write_batch();
        let removed = batch.compact(revision).expect("compact");
        batch.commit(applied_index);
        if sync == Sync::Fsync {
            self.store.persist().expect("persist");
        }
        removed
    }

    /// Keeps a store that takes put batches forever bounded: compacts the
    /// history the batches left and persists (callers keep this outside
    /// their measurement).
    pub fn trim(&mut self) {
        self.compact(Sync::Fsync);
    }
}

/// The table the put, get and range work uses: key bytes to value bytes.
const KV_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// The compaction work's table: `key ++ (u64::MAX - revision) BE` to value
/// bytes, so a key's rows run newest first, as in keel's tree.
const HISTORY_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("history");

/// redb in a temporary directory.
pub struct RedbEngine {
    _dir: tempfile::TempDir,
    pub db: Database,
    /// Revisions the history table has been given (compaction work).
    revision: u64,
}

impl RedbEngine {
    /// An empty database (default cache size).
    pub fn empty() -> RedbEngine {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = Database::create(dir.path().join("redb")).expect("redb opens");
        RedbEngine {
            _dir: dir,
            db,
            revision: 0,
        }
    }

    /// A database holding keys `0..keys`, each inserted once, durable.
    pub fn filled(keys: usize) -> RedbEngine {
        let mut engine = RedbEngine::empty();
        let value = value();
        for first in (0..keys).step_by(FILL_BATCH_KEYS) {
            let batch_keys = key_range(first, FILL_BATCH_KEYS.min(keys - first));
            engine.put_batch(&batch_keys, &value, Sync::Memory);
        }
        engine.sync();
        engine
    }

    /// A history table holding keys `0..keys` at two revisions each.
    pub fn with_history(keys: usize) -> RedbEngine {
        let mut engine = RedbEngine::empty();
        let value = value();
        for _ in 0..2 {
            engine.revision += 1;
            let suffix = (u64::MAX - engine.revision).to_be_bytes();
            let txn = begin_write(&engine.db, Sync::Memory);
            {
                let mut table = txn.open_table(HISTORY_TABLE).expect("table");
                for index in 0..keys {
                    let mut row = key(index);
                    row.extend_from_slice(&suffix);
                    table
                        .insert(row.as_slice(), value.as_slice())
                        .expect("insert");
                }
            }
            txn.commit().expect("commit");
        }
        engine.sync();
        engine
    }

    /// One write transaction inserting every key.
    pub fn put_batch(&mut self, keys: &[Vec<u8>], value: &[u8], sync: Sync) {
        let txn = begin_write(&self.db, sync);
        {
            let mut table = txn.open_table(KV_TABLE).expect("table");
            for key in keys {
                black_box(table.insert(key.as_slice(), value).expect("insert"));
            }
        }
        txn.commit().expect("commit");
    }

    /// Point gets of `keys` in one read transaction; returns the value
    /// bytes read.
    pub fn get_many(&self, keys: &[Vec<u8>]) -> usize {
        let txn = self.db.begin_read().expect("read");
        let table = txn.open_table(KV_TABLE).expect("table");
        let mut bytes = 0;
        for key in keys {
            let value = table
                .get(key.as_slice())
                .expect("get")
                .expect("present")
                .value()
                .to_vec();
            bytes += value.len();
            black_box(value);
        }
        bytes
    }

    /// One range scan of `[start, end)`, keys and values copied out;
    /// returns the rows read.
    pub fn range(&self, start: &[u8], end: &[u8]) -> usize {
        let txn = self.db.begin_read().expect("read");
        let table = txn.open_table(KV_TABLE).expect("table");
        let rows: Vec<(Vec<u8>, Vec<u8>)> = table
            .range(start..end)
            .expect("range")
            .map(|row| {
                let (key, value) = row.expect("row");
                (key.value().to_vec(), value.value().to_vec())
            })
            .collect();
        let read = rows.len();
        black_box(rows);
        read
    }

    /// Drops every row but each key's newest from the history table;
    /// returns the rows removed.
    pub fn compact(&mut self, sync: Sync) -> u64 {
        let txn = begin_write(&self.db, sync);
        let mut removed = 0u64;
        {
            let mut table = txn.open_table(HISTORY_TABLE).expect("table");
            let mut newest_key: Vec<u8> = Vec::new();
            table
                .retain(|row, _| {
                    let user_key = &row[..row.len() - 8];
                    if user_key == newest_key.as_slice() {
                        removed += 1;
                        false
                    } else {
                        newest_key.clear();
                        newest_key.extend_from_slice(user_key);
                        true
                    }
                })
                .expect("retain");
        }
        txn.commit().expect("commit");
        removed
    }

    /// An empty immediate commit: makes earlier `Durability::None`
    /// commits durable and lets redb reuse their pages.
    pub fn sync(&mut self) {
        begin_write(&self.db, Sync::Fsync).commit().expect("commit");
    }
}

fn begin_write(db: &Database, sync: Sync) -> redb::WriteTransaction {
    let mut txn = db.begin_write().expect("write");
    let durability = match sync {
        Sync::Memory => Durability::None,
        Sync::Fsync => Durability::Immediate,
    };
    txn.set_durability(durability).expect("durability");
    txn
}

/// Where a benchmark's `BATCH_KEYS`-key range scan starts and ends.
pub fn range_bounds() -> (Vec<u8>, Vec<u8>) {
    let first = STORE_KEYS / 2;
    (key(first), key(first + BATCH_KEYS))
}

/// Whether `path` is on a file system where fsync reaches a disk (not
/// tmpfs): the durable numbers mean little otherwise.
pub fn fsync_reaches_disk(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return true;
    };
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mut best: Option<(&str, usize)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(mount_point), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if path.starts_with(mount_point) && best.is_none_or(|(_, len)| mount_point.len() > len) {
            best = Some((fs_type, mount_point.len()));
        }
    }
    !matches!(best, Some(("tmpfs" | "ramfs", _)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_do_the_same_work() {
        let mut keel = KeelEngine::filled(3 * BATCH_KEYS);
        let mut redb = RedbEngine::filled(3 * BATCH_KEYS);
        let keys: Vec<Vec<u8>> = (0..10).map(|i| key(i * 97)).collect();
        assert_eq!(keel.get_many(&keys), 10 * VALUE_BYTES);
        assert_eq!(redb.get_many(&keys), 10 * VALUE_BYTES);
        let (start, end) = (key(500), key(1500));
        assert_eq!(keel.range(&start, &end), BATCH_KEYS);
        assert_eq!(redb.range(&start, &end), BATCH_KEYS);
        let batch = key_range(2 * BATCH_KEYS, BATCH_KEYS);
        for sync in [Sync::Memory, Sync::Fsync] {
            keel.put_batch(&batch, &value(), sync);
            redb.put_batch(&batch, &value(), sync);
        }
        keel.trim();
        redb.sync();
        assert_eq!(keel.range(&key(0), &key(10 * BATCH_KEYS)), 3 * BATCH_KEYS);
        assert_eq!(redb.range(&key(0), &key(10 * BATCH_KEYS)), 3 * BATCH_KEYS);

        let mut keel = KeelEngine::with_history(1000);
        let mut redb = RedbEngine::with_history(1000);
        assert_eq!(keel.compact(Sync::Fsync), 1000);
        assert_eq!(redb.compact(Sync::Fsync), 1000);
        assert_eq!(redb.compact(Sync::Memory), 0);
    }
}

//! `mvcc put` and `mvcc range`: keel's storage engine driven in-process,
//! no server, no network, as etcd's `benchmark mvcc` drives its MVCC store.
//!
//! etcd's `--batch-interval`/`--batch-limit` set when its backend commits
//! (and fsyncs) batched writes; keel's equivalents are the store's persist
//! triggers (`StoreOptions::persist_interval`/`persist_ops_threshold`). A
//! put is what keel's raft core does per applied entry: one write batch,
//! one transaction, a commit that publishes a read view, and starting or
//! collecting a background persist when one is due. The store lives in a
//! fresh directory under the temp dir, removed afterwards.
//!
//! - `mvcc put`: `--total` puts of random `--key-size` keys; with `--txn`,
//!   each transaction puts `--txn-ops` keys and the report is etcd's
//!   weighted one (latency per key, keys per second).
//! - `mvcc range` (keel-bench's own): writes `--key-space-size` keys, then
//!   times `--total` reads of random ones, each through a fresh read view as
//!   a shard core reads; `--limit` > 0 ranges from the key with that limit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use keel_engine::{RangeOptions, Store, StoreOptions};

use crate::command::{Command, MvccEngineOptions};
use crate::report::Report;
use crate::workload::{pseudo_random, random_bytes};

/// Keys `mvcc range` writes per write batch while loading.
pub const LOAD_BATCH_KEYS: usize = 10_000;

/// Runs an mvcc command; its report.
pub fn run(command: &Command, sample: bool) -> Result<Report, String> {
    let dir = std::env::temp_dir().join(format!("keel-mvcc-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|error| format!("cannot create {}: {error}", dir.display()))?;
    let result = run_in(command, sample, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(command: &Command, sample: bool, dir: &Path) -> Result<Report, String> {
    match *command {
        Command::MvccPut {
            total,
            key_size,
            value_size,
            txn,
            txn_ops,
            engine,
        } => {
            let mut bench = Bench::open(dir, engine)?;
            let txn_ops = if txn { txn_ops } else { 1 };
            bench.put(total, key_size, value_size, txn_ops, sample)
        }
        Command::MvccRange {
            total,
            key_size,
            value_size,
            key_space_size,
            limit,
            engine,
        } => {
            let mut bench = Bench::open(dir, engine)?;
            bench.load(key_space_size, key_size, value_size)?;
            bench.range(total, key_size, key_space_size, limit, sample)
        }
        _ => Err("not an mvcc command".into()),
    }
}

struct Bench {
    store: Store,
    applied_index: u64,
    path: PathBuf,
}

impl Bench {
    fn open(dir: &Path, engine: MvccEngineOptions) -> Result<Bench, String> {
        let path = dir.join("db");
        let options = StoreOptions {
            persist_ops_threshold: engine.batch_limit.max(1),
            persist_interval: engine.batch_interval,
            ..StoreOptions::default()
        };
        let store = Store::open(&path, options)
            .map_err(|error| format!("cannot open a store at {}: {error}", path.display()))?;
        Ok(Bench {
            applied_index: store.applied_index(),
            store,
            path,
        })
    }

    /// One write batch of one transaction putting `keys`, published; then
    /// a persist started or collected if one is due.
    fn put_txn(&mut self, keys: &[Vec<u8>], value: &[u8]) -> Result<(), String> {
        let mut batch = self.store.write_batch();
        let mut txn = batch.txn();
        for key in keys {
            txn.put(key, value, 0);
        }
        txn.end();
        self.applied_index += 1;
        batch.commit(self.applied_index);
        self.store.start_persist();
        match self.store.poll_persist() {
            Some(Err(error)) => Err(format!(
                "persist to {} failed: {error}",
                self.path.display()
            )),
            _ => Ok(()),
        }
    }

    fn put(
        &mut self,
        total: usize,
        key_size: usize,
        value_size: usize,
        txn_ops: usize,
        sample: bool,
    ) -> Result<Report, String> {
        let value = random_bytes(value_size);
        let mut report = Report::new(sample);
        report.ops_per_result = txn_ops as f64;
        let started = Instant::now();
        for put in 0..total {
            let keys: Vec<Vec<u8>> = (0..txn_ops)
                .map(|op| random_key(key_size, put * txn_ops + op))
                .collect();
            let begun = Instant::now();
            self.put_txn(&keys, &value)?;
            // etcd's weighted report: each result stands for txn-ops puts.
            report.record_from(begun, begun.elapsed() / txn_ops as u32);
        }
        report.elapsed = started.elapsed();
        self.persist()?;
        Ok(report)
    }

    /// Writes keys 0..key_space_size, `LOAD_BATCH_KEYS` per transaction,
    /// and persists them.
    fn load(
        &mut self,
        key_space_size: usize,
        key_size: usize,
        value_size: usize,
    ) -> Result<(), String> {
        let value = random_bytes(value_size);
        let mut first = 0;
        while first < key_space_size {
            let last = (first + LOAD_BATCH_KEYS).min(key_space_size);
            let keys: Vec<Vec<u8>> = (first..last).map(|n| ordered_key(key_size, n)).collect();
            self.put_txn(&keys, &value)?;
            first = last;
        }
        self.persist()
    }

    fn range(
        &mut self,
        total: usize,
        key_size: usize,
        key_space_size: usize,
        limit: i64,
        sample: bool,
    ) -> Result<Report, String> {
        let reader = self.store.reader();
        let mut report = Report::new(sample);
        let started = Instant::now();
        for read in 0..total {
            let key = ordered_key(key_size, pseudo_random(read) % key_space_size);
            let options = RangeOptions {
                key: &key,
                range_end: if limit > 0 { &[0] } else { &[] },
                limit,
                ..RangeOptions::default()
            };
            let begun = Instant::now();
            let result = reader.view().range(&options);
            let latency = begun.elapsed();
            match result {
                Ok(result) if !result.kvs.is_empty() => report.record_from(begun, latency),
                Ok(_) => report.record_error("a written key was not found".into()),
                Err(error) => report.record_error(error.to_string()),
            }
        }
        report.elapsed = started.elapsed();
        Ok(report)
    }

    fn persist(&mut self) -> Result<(), String> {
        self.store
            .persist()
            .map_err(|error| format!("persist to {} failed: {error}", self.path.display()))
    }
}

/// `size` pseudo-random bytes, a different run of them for each `number`
/// (etcd's mvcc put uses crypto/rand keys).
pub fn random_key(size: usize, number: usize) -> Vec<u8> {
    let seed = pseudo_random(number);
    let mut key = Vec::with_capacity(size + 8);
    let mut word = 0;
    while key.len() < size {
        let bits = pseudo_random(seed.wrapping_add(word)) as u64;
        key.extend_from_slice(&bits.to_le_bytes());
        word += 1;
    }
    key.truncate(size);
    key
}

/// Key `number` of `size` bytes, sorting in number order: `k` padding, then
/// the number big-endian in the last (up to 8) bytes.
pub fn ordered_key(size: usize, number: usize) -> Vec<u8> {
    let mut key = vec![b'k'; size];
    let digits = (number as u64).to_be_bytes();
    let width = size.min(digits.len());
    key[size - width..].copy_from_slice(&digits[digits.len() - width..]);
    key
}

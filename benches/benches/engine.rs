//! Criterion (wall time): keel's storage engine against redb doing the same
//! work in the same run (`keel_benches::engines` says what "the same" is for
//! each operation). Not part of `cargo test`; run with
//!
//! ```text
//! cargo bench -p keel-benches --features criterion --bench engine -- --quick
//! ```
//!
//! Groups, each with a `keel` and a `redb` function:
//! - `put_1000/memory`, `put_1000/fsync`: one commit of 1000 puts that
//!   overwrite keys of a 100k-key store (a window moving by 1000 keys per
//!   batch), without and with the commit made durable before it returns;
//! - `get_100`: 100 point gets in one read snapshot of a 100k-key store;
//! - `range_1000`: one scan returning 1000 keys of a 100k-key store;
//! - `compact_10k/memory`, `compact_10k/fsync`: dropping the superseded
//!   revision of each of 10k keys (each written twice), committed without
//!   and with fsync.
//!
//! Put batches keep both stores bounded outside the timed section: every
//! [`TRIM_EVERY_BATCHES`] batches keel compacts its history and persists,
//! and redb makes its non-durable commits durable.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keel_benches::engines::{
    self, fsync_reaches_disk, KeelEngine, RedbEngine, Sync, BATCH_KEYS, COMPACT_KEYS, STORE_KEYS,
};

/// Put batches between two untimed trims of a store.
const TRIM_EVERY_BATCHES: u64 = 50;

/// The write side of a put benchmark, for either engine.
trait Writer {
    fn put_batch(&mut self, keys: &[Vec<u8>], value: &[u8], sync: Sync);
    fn trim(&mut self);
}

impl Writer for KeelEngine {
    fn put_batch(&mut self, keys: &[Vec<u8>], value: &[u8], sync: Sync) {
        KeelEngine::put_batch(self, keys, value, sync);
    }
    fn trim(&mut self) {
        KeelEngine::trim(self);
    }
}

impl Writer for RedbEngine {
    fn put_batch(&mut self, keys: &[Vec<u8>], value: &[u8], sync: Sync) {
        RedbEngine::put_batch(self, keys, value, sync);
    }
    fn trim(&mut self) {
        self.sync();
    }
}

/// Times `iterations` put batches over a moving window of the store's
/// keys, trimming the store untimed every [`TRIM_EVERY_BATCHES`].
fn time_put_batches(
    writer: &mut impl Writer,
    windows: &[Vec<Vec<u8>>],
    next_window: &mut usize,
    iterations: u64,
    sync: Sync,
) -> Duration {
    let value = engines::value();
    let mut elapsed = Duration::ZERO;
    for _ in 0..iterations {
        let keys = &windows[*next_window % windows.len()];
        *next_window += 1;
        let start = Instant::now();
        writer.put_batch(keys, &value, sync);
        elapsed += start.elapsed();
        // Counted over every call (Criterion's calls are often shorter
        // than the period), so the store is trimmed every period however
        // the batches are split into calls.
        if *next_window as u64 % TRIM_EVERY_BATCHES == 0 {
            writer.trim();
        }
    }
    elapsed
}

fn put_batches(c: &mut Criterion) {
    let windows: Vec<Vec<Vec<u8>>> = (0..STORE_KEYS / BATCH_KEYS)
        .map(|window| engines::key_range(window * BATCH_KEYS, BATCH_KEYS))
        .collect();
    for (sync, name) in [
        (Sync::Memory, "put_1000/memory"),
        (Sync::Fsync, "put_1000/fsync"),
    ] {
        let mut group = c.benchmark_group(name);
        let mut keel = KeelEngine::filled(STORE_KEYS);
        let mut next_window = 0;
        group.bench_function("keel", |b| {
            b.iter_custom(|iterations| {
                time_put_batches(&mut keel, &windows, &mut next_window, iterations, sync)
            })
        });
        drop(keel);
        let mut redb = RedbEngine::filled(STORE_KEYS);
        let mut next_window = 0;
        group.bench_function("redb", |b| {
            b.iter_custom(|iterations| {
                time_put_batches(&mut redb, &windows, &mut next_window, iterations, sync)
            })
        });
        group.finish();
    }
}

fn reads(c: &mut Criterion) {
    let keys = engines::point_get_keys();
    let (start, end) = engines::range_bounds();
    let keel = KeelEngine::filled(STORE_KEYS);
    let redb = RedbEngine::filled(STORE_KEYS);
    let mut group = c.benchmark_group("get_100");
    group.bench_function("keel", |b| b.iter(|| black_box(keel.get_many(&keys))));
    group.bench_function("redb", |b| b.iter(|| black_box(redb.get_many(&keys))));
    group.finish();
    let mut group = c.benchmark_group("range_1000");
    group.bench_function("keel", |b| {
        b.iter(|| assert_eq!(keel.range(&start, &end), BATCH_KEYS))
    });
    group.bench_function("redb", |b| {
        b.iter(|| assert_eq!(redb.range(&start, &end), BATCH_KEYS))
    });
    group.finish();
}

fn compaction(c: &mut Criterion) {
    for (sync, name) in [
        (Sync::Memory, "compact_10k/memory"),
        (Sync::Fsync, "compact_10k/fsync"),
    ] {
        let mut group = c.benchmark_group(name);
        // Each iteration needs a store with fresh history: few samples.
        group.sample_size(10);
        group.bench_function("keel", |b| {
            b.iter_batched_ref(
                || KeelEngine::with_history(COMPACT_KEYS),
                |engine| assert_eq!(engine.compact(sync), COMPACT_KEYS as u64),
                BatchSize::PerIteration,
            )
        });
        group.bench_function("redb", |b| {
            b.iter_batched_ref(
                || RedbEngine::with_history(COMPACT_KEYS),
                |engine| assert_eq!(engine.compact(sync), COMPACT_KEYS as u64),
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
}

fn warn_without_disk(_: &mut Criterion) {
    let dir = std::env::temp_dir();
    if !fsync_reaches_disk(&dir) {
        eprintln!(
            "engine bench: {} is on tmpfs: the fsync groups measure no disk (set TMPDIR)",
            dir.display()
        );
    }
}

criterion_group!(benches, warn_without_disk, put_batches, reads, compaction);
criterion_main!(benches);

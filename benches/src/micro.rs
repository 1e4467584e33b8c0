//! The micro benchmarks: hot paths that exist today, written against the
//! crates' public APIs.
//!
//! Each [`Benchmark`] has a `prepare` step that builds its inputs (a store
//! with 100k keys, an encoded request, ...) and returns the measured work as
//! a closure. [`run`] prepares, then calls the closure exactly once through
//! [`keel_microbench_measured`], the one function callgrind counts
//! (`--toggle-collect`), so setup and process start-up cost nothing.
//! Every benchmark is deterministic: fixed keys, fixed values, no clocks.

use std::hint::black_box;

use keel_engine::{RangeOptions, Store, StoreOptions};
use prost::Message;

/// Keys the engine benchmarks' store holds.
pub const STORE_KEYS: usize = 100_000;
/// Keys one batched put writes, and one range scan returns.
pub const BATCH_KEYS: usize = 1000;
/// Point gets one `engine_get_100k` run makes (spread over the store).
pub const POINT_GETS: usize = 100;
/// Value size of every put, as `compare.sh`'s scenarios.
pub const VALUE_BYTES: usize = 256;
/// Puts per write batch while a benchmark fills its store.
const FILL_BATCH_KEYS: usize = 10_000;

/// One named benchmark.
pub struct Benchmark {
    pub name: &'static str,
    /// What the measured call does, for `--list` and the README.
    pub about: &'static str,
    /// Builds the inputs (not measured) and returns the measured work.
    pub prepare: fn() -> Measured,
}

/// The measured work of one benchmark, with whatever it must keep alive.
pub type Measured = Box<dyn FnMut()>;

/// Every benchmark, in report order.
pub static BENCHMARKS: &[Benchmark] = &[
    Benchmark {
        name: "noop",
        about: "an empty measured call: the harness's own cost",
        prepare: prepare_noop,
    },
    Benchmark {
        name: "engine_put_1000",
        about: "one WriteBatch of 1000 single-put Txns (12 B keys, 256 B values) into an empty Store, committed",
        prepare: prepare_engine_put,
    },
    Benchmark {
        name: "engine_get_100k",
        about: "100 point gets through ReadView::range on a 100k-key store",
        prepare: prepare_engine_get,
    },
    Benchmark {
        name: "engine_range_1000",
        about: "one ReadView::range returning 1000 keys of a 100k-key store",
        prepare: prepare_engine_range,
    },
    Benchmark {
        name: "grpc_frame_unframe_put",
        about: "keel_net::grpc::frame then unframe of a PutRequest with a 256 B value",
        prepare: prepare_grpc_frame_unframe,
    },
    Benchmark {
        name: "grpc_decode_range_request",
        about: "prost decode of a RangeRequest (key, range_end, limit, revision, serializable)",
        prepare: prepare_decode_range_request,
    },
    Benchmark {
        name: "wal_codec_entry",
        about: "wal_codec::encode_entry then decode_entry of a normal entry with 300 B of data",
        prepare: prepare_wal_codec_entry,
    },
];

/// The benchmark called `name`.
pub fn find(name: &str) -> Option<&'static Benchmark> {
    BENCHMARKS.iter().find(|benchmark| benchmark.name == name)
}

/// Prepares `benchmark` and makes its one measured call.
pub fn run(benchmark: &Benchmark) {
    let mut measured = (benchmark.prepare)();
    keel_microbench_measured(&mut *measured);
}

/// The only function callgrind counts: `instructions.sh` passes
/// `--toggle-collect=keel_microbench_measured`. Unmangled and never inlined
/// so the symbol exists under that name in the release binary.
#[no_mangle]
#[inline(never)]
pub fn keel_microbench_measured(work: &mut dyn FnMut()) {
    work();
}

fn prepare_noop() -> Measured {
    Box::new(|| {})
}

/// The `index`-th key of every engine benchmark: fixed width, so key order
/// is index order.
fn engine_key(index: usize) -> Vec<u8> {
    format!("key/{index:08}").into_bytes()
}

fn engine_value() -> Vec<u8> {
    (0..VALUE_BYTES).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A store in a temporary directory the closure keeps alive.
fn open_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = StoreOptions {
        persist_ops_threshold: u64::MAX,
        persist_dirty_bytes_threshold: u64::MAX,
        persist_interval: std::time::Duration::from_secs(3600),
    };
    let store = Store::open(&dir.path().join("db"), options).expect("store opens");
    (dir, store)
}

/// A store holding keys `0..STORE_KEYS`, each put once.
fn filled_store() -> (tempfile::TempDir, Store) {
    let (dir, mut store) = open_store();
    let value = engine_value();
    let mut applied_index = 0;
    for first in (0..STORE_KEYS).step_by(FILL_BATCH_KEYS) {
        let mut batch = store.write_batch();
        for index in first..(first + FILL_BATCH_KEYS).min(STORE_KEYS) {
            let mut txn = batch.txn();
            txn.put(&engine_key(index), &value, 0);
            txn.end();
        }
        applied_index += 1;
        batch.commit(applied_index);
    }
    (dir, store)
}

fn prepare_engine_put() -> Measured {
    let (dir, mut store) = open_store();
    let keys: Vec<Vec<u8>> = (0..BATCH_KEYS).map(engine_key).collect();
    let value = engine_value();
    Box::new(move || {
        let _keep = &dir;
        let mut batch = store.write_batch();
        for key in &keys {
            let mut txn = batch.txn();
            txn.put(key, &value, 0);
            black_box(txn.end());
        }
        batch.commit(1);
    })
}

fn prepare_engine_get() -> Measured {
    let (dir, store) = filled_store();
    let view = store.reader().view();
    let keys: Vec<Vec<u8>> = (0..POINT_GETS)
        .map(|i| engine_key(i * (STORE_KEYS / POINT_GETS) + 7))
        .collect();
    Box::new(move || {
        let _keep = (&dir, &store);
        for key in &keys {
            let result = view
                .range(&RangeOptions {
                    key,
                    ..Default::default()
                })
                .expect("range");
            assert_eq!(result.kvs.len(), 1);
            black_box(result);
        }
    })
}

fn prepare_engine_range() -> Measured {
    let (dir, store) = filled_store();
    let view = store.reader().view();
    let first = STORE_KEYS / 2;
    let key = engine_key(first);
    let range_end = engine_key(first + BATCH_KEYS);
    Box::new(move || {
        let _keep = (&dir, &store);
        let result = view
            .range(&RangeOptions {
                key: &key,
                range_end: &range_end,
                ..Default::default()
            })
            .expect("range");
        assert_eq!(result.kvs.len(), BATCH_KEYS);
        black_box(result);
    })
}

fn prepare_grpc_frame_unframe() -> Measured {
    let request = keel_proto::etcdserverpb::PutRequest {
        key: engine_key(42),
        value: engine_value(),
        ..Default::default()
    };
    Box::new(move || {
        let framed = keel_net::grpc::frame(black_box(&request));
        let message = keel_net::grpc::unframe(black_box(&framed), 4 << 20).expect("one message");
        black_box(message);
    })
}

fn prepare_decode_range_request() -> Measured {
    let encoded = keel_proto::etcdserverpb::RangeRequest {
        key: engine_key(1),
        range_end: engine_key(1001),
        limit: 100,
        revision: 12345,
        serializable: true,
        ..Default::default()
    }
    .encode_to_vec();
    Box::new(move || {
        let request = keel_proto::etcdserverpb::RangeRequest::decode(black_box(&encoded[..]))
            .expect("decodes");
        black_box(request);
    })
}

fn prepare_wal_codec_entry() -> Measured {
    let entry = raft::eraftpb::Entry {
        index: 1234,
        term: 5,
        entry_type: raft::eraftpb::EntryType::EntryNormal,
        data: bytes::Bytes::from(vec![7u8; 300]),
        ..Default::default()
    };
    let mut buffer = Vec::with_capacity(512);
    Box::new(move || {
        keel_raft_shim::wal_codec::encode_entry(black_box(&entry), &mut buffer);
        let decoded =
            keel_raft_shim::wal_codec::decode_entry(1234, black_box(&buffer)).expect("decodes");
        black_box(decoded);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_benchmark_runs_once() {
        for benchmark in BENCHMARKS {
            run(benchmark);
        }
    }

    #[test]
    fn names_are_unique_and_found() {
        for benchmark in BENCHMARKS {
            assert!(std::ptr::eq(find(benchmark.name).unwrap(), benchmark));
        }
        assert!(find("nope").is_none());
    }
}

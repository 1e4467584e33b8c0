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

use prost::Message;

use crate::engines::{self, KeelEngine, RedbEngine, Sync};
pub use crate::engines::{BATCH_KEYS, COMPACT_KEYS, POINT_GETS, STORE_KEYS, VALUE_BYTES};

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
        name: "engine_compact_10k",
        about: "WriteBatch::compact of a 10k-key store whose keys were each put twice (10k entries dropped), committed",
        prepare: prepare_engine_compact,
    },
    Benchmark {
        name: "redb_put_1000",
        about: "redb: one write transaction of 1000 inserts (12 B keys, 256 B values) into an empty table, Durability::None",
        prepare: prepare_redb_put,
    },
    Benchmark {
        name: "redb_get_100k",
        about: "redb: 100 point gets (values copied out) in one read transaction on a 100k-key table",
        prepare: prepare_redb_get,
    },
    Benchmark {
        name: "redb_range_1000",
        about: "redb: one range of 1000 rows (keys and values copied out) of a 100k-key table",
        prepare: prepare_redb_range,
    },
    Benchmark {
        name: "redb_compact_10k",
        about: "redb: retain dropping the older of two rows per key of a 10k-key (key, !revision) table, Durability::None",
        prepare: prepare_redb_compact,
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
        name: "proposal_batch_1000",
        about: "the raft core's CPU work for one batch of 1000 put proposals, I/O aside: encode each InternalRequest, decode it at apply, apply_request into one WriteBatch, commit",
        prepare: prepare_proposal_batch,
    },
    Benchmark {
        name: "watch_match_100_events",
        about: "WatchHub::on_events of 100 put events against 1000 single-key watchers (100 of them hit) and 10 prefix watchers on 10 streams, responses queued",
        prepare: prepare_watch_match,
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

fn prepare_engine_put() -> Measured {
    let mut engine = KeelEngine::empty();
    let keys = engines::key_range(0, BATCH_KEYS);
    let value = engines::value();
    Box::new(move || engine.put_batch(&keys, &value, Sync::Memory))
}

fn prepare_engine_get() -> Measured {
    let engine = KeelEngine::filled(STORE_KEYS);
    let keys = engines::point_get_keys();
    Box::new(move || {
        black_box(engine.get_many(&keys));
    })
}

fn prepare_engine_range() -> Measured {
    let engine = KeelEngine::filled(STORE_KEYS);
    let (start, end) = engines::range_bounds();
    Box::new(move || assert_eq!(engine.range(&start, &end), BATCH_KEYS))
}

fn prepare_engine_compact() -> Measured {
    let mut engine = KeelEngine::with_history(COMPACT_KEYS);
    Box::new(move || assert_eq!(engine.compact(Sync::Memory), COMPACT_KEYS as u64))
}

fn prepare_redb_put() -> Measured {
    let mut engine = RedbEngine::empty();
    let keys = engines::key_range(0, BATCH_KEYS);
    let value = engines::value();
    Box::new(move || engine.put_batch(&keys, &value, Sync::Memory))
}

fn prepare_redb_get() -> Measured {
    let engine = RedbEngine::filled(STORE_KEYS);
    let keys = engines::point_get_keys();
    Box::new(move || {
        black_box(engine.get_many(&keys));
    })
}

fn prepare_redb_range() -> Measured {
    let engine = RedbEngine::filled(STORE_KEYS);
    let (start, end) = engines::range_bounds();
    Box::new(move || assert_eq!(engine.range(&start, &end), BATCH_KEYS))
}

fn prepare_redb_compact() -> Measured {
    let mut engine = RedbEngine::with_history(COMPACT_KEYS);
    Box::new(move || assert_eq!(engine.compact(Sync::Memory), COMPACT_KEYS as u64))
}

fn prepare_grpc_frame_unframe() -> Measured {
    let request = keel_proto::etcdserverpb::PutRequest {
        key: engines::key(42),
        value: engines::value(),
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
        key: engines::key(1),
        range_end: engines::key(1001),
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

fn prepare_proposal_batch() -> Measured {
    use keel_proto::keelpb::internal_request::Request;
    use keel_proto::keelpb::InternalRequest;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store =
        keel_engine::Store::open(&dir.path().join("db"), keel_engine::StoreOptions::default())
            .expect("store");
    let mut leases = keel_raft_shim::lease::Lessor::new(&[], 2, std::time::Instant::now());
    let requests: Vec<Request> = (0..BATCH_KEYS)
        .map(|i| {
            Request::Put(keel_proto::etcdserverpb::PutRequest {
                key: engines::key(i),
                value: engines::value(),
                ..Default::default()
            })
        })
        .collect();
    let mut applied_index = 0u64;
    Box::new(move || {
        let _keep = &dir;
        let entries: Vec<Vec<u8>> = requests
            .iter()
            .enumerate()
            .map(|(id, request)| {
                InternalRequest {
                    id: id as u64,
                    request: Some(request.clone()),
                }
                .encode_to_vec()
            })
            .collect();
        let mut batch = store.write_batch();
        // As the raft core when no watcher is registered.
        batch.set_event_detail(keel_engine::Detail::Leases);
        let mut revision = 1;
        for entry in &entries {
            let internal = InternalRequest::decode(&entry[..]).expect("decodes");
            let request = internal.request.expect("a request");
            let (result, events) = keel_raft_shim::apply::apply_request(
                &mut batch,
                &mut leases,
                request,
                revision,
                std::time::Instant::now(),
                false,
            );
            black_box(events);
            revision = batch.revision();
            black_box(result.is_ok());
        }
        applied_index += entries.len() as u64;
        batch.commit(applied_index);
    })
}

fn prepare_watch_match() -> Measured {
    use keel_net::watch::outbox::Outbox;
    use keel_net::watch::WatchHub;
    use keel_proto::etcdserverpb::WatchCreateRequest;
    use std::rc::Rc;
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("temp dir");
    let store =
        keel_engine::Store::open(&dir.path().join("db"), keel_engine::StoreOptions::default())
            .expect("store");
    let status = Arc::new(keel_raft_shim::RaftStatus::default());
    let hub = WatchHub::new(
        0,
        store.reader(),
        status,
        keel_net::MAX_REQUEST_BYTES_DEFAULT,
        Arc::new(keel_net::metrics::ShardMetrics::default()),
    );
    let mut outboxes = Vec::new();
    for stream in 0..10u64 {
        let outbox = Rc::new(Outbox::default());
        let id = hub.open_stream(outbox.clone());
        for watcher in 0..100u64 {
            hub.create(
                id,
                WatchCreateRequest {
                    key: engines::key((stream * 100 + watcher) as usize),
                    ..Default::default()
                },
            );
        }
        hub.create(
            id,
            WatchCreateRequest {
                key: b"key".to_vec(),
                range_end: b"kez".to_vec(),
                prev_kv: true,
                ..Default::default()
            },
        );
        outboxes.push(outbox);
    }
    // 100 puts at revisions 2..=101, every 10th watched key.
    let events: Vec<keel_engine::Event> = (0..100u64)
        .map(|i| {
            keel_engine::Event::new(
                keel_engine::EventKind::Put,
                keel_engine::KeyValue {
                    key: engines::key((i * 10) as usize),
                    create_revision: 2 + i as i64,
                    mod_revision: 2 + i as i64,
                    version: 1,
                    value: engines::value(),
                    lease: 0,
                },
                None,
            )
        })
        .collect();
    let batch = keel_raft_shim::EventBatch {
        previous_revision: 1,
        revision: 101,
        events,
    };
    Box::new(move || {
        let _keep = (&dir, &store, &outboxes);
        hub.on_events(black_box(&batch));
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

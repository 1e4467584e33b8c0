//! keel's storage engine: everything on disk, knowing nothing of raft or
//! gRPC.
//!
//! - [`io`]: the positional file I/O trait, its std implementation and a
//!   fault-injecting wrapper for crash tests.
//! - [`uring`]: the only io_uring code (one linked write + fdatasync).
//! - [`wal`]: the write-ahead log (segments of checksummed records).
//! - [`btree`]: the append-only, copy-on-write B+tree file.
//! - [`mvcc`]: etcd's revision model on top of the tree: [`Store`] (single
//!   writer), [`WriteBatch`]/[`Txn`], and immutable [`ReadView`]s that other
//!   threads read through [`StoreReader`] without locks.
//! - [`error`]: one error enum per concern.

pub mod btree;
pub mod error;
pub mod io;
pub mod mvcc;
pub mod uring;
pub mod wal;

pub use btree::DroppedCommit;
pub use error::{DefragError, MvccError, StoreError, WalError};
pub use mvcc::{
    Detail, Event, EventKind, HistoryChunk, HistoryWalk, KeyValue, LeaseRecord, RangeOptions,
    RangeResult, ReadView, Store, StoreOptions, StoreReader, Txn, WriteBatch,
    COMPACTION_BATCH_KEYS_MAX, INDEX_SCAN_MAX,
};
pub use wal::{Wal, WalOptions, WalRecord};

/// Compile-time checks of the thread-safety the other crates rely on: the
/// raft core may move the `Wal` and `Store` to its thread, and shard cores
/// share `StoreReader`s and `ReadView`s.
const _: () = {
    const fn send<T: Send>() {}
    const fn send_sync<T: Send + Sync>() {}
    send::<Wal>();
    send::<Store>();
    send_sync::<StoreReader>();
    send_sync::<ReadView>();
};

//! etcd's MVCC model over the copy-on-write B+tree.
//!
//! Every change is a tree entry keyed by (user key, revision) (`key.rs`):
//! puts carry create revision, version and lease; deletes write tombstones.
//! A read at revision R takes, per user key, the newest entry with main
//! revision <= R (`view.rs`). The single writer ([`Store`]) applies
//! [`WriteBatch`]es of [`Txn`]s to its working tree and publishes an
//! immutable [`ReadView`] per batch through an `ArcSwap`, which shard cores
//! load lock-free with [`StoreReader::view`]. Durability is the WAL's job;
//! [`Store::start_persist`] writes the tree file on the store's persister
//! thread when thresholds are reached, while the writer goes on applying
//! batches (`persister.rs` explains why that is safe); [`Store::persist`]
//! does the same and waits. [`Store::start_defrag`] rewrites the file
//! without its superseded pages, online, on the same thread (`defrag.rs`).
//! [`WriteBatch::compact`] drops superseded
//! history as etcd's Compact does (`compact.rs`); [`WriteBatch::compact_start`]
//! and [`WriteBatch::compact_step`] do the same in bounded steps. Lease records live in the
//! same tree, in a namespace before every MVCC key (`key.rs`, `lease.rs`),
//! so they commit, publish and persist with the batches that change them.
//! [`ReadView::events`] reads a range's event history by revision, in
//! bounded chunks, for watches (`history.rs`); [`ReadView::hash_kv`] and
//! [`ReadView::hash`] checksum the tree for Maintenance (`hash.rs`).

mod compact;
mod defrag;
mod event;
mod hash;
mod history;
mod key;
mod key_range;
mod lease;
mod persister;
mod revision;
mod store;
mod txn;
mod view;

pub use compact::COMPACTION_BATCH_KEYS_MAX;
pub use event::{Detail, Event, EventKind, KvMeta};
pub use history::{HistoryChunk, HistoryWalk, INDEX_SCAN_MAX};
pub use lease::LeaseRecord;
pub use revision::Revision;
pub use store::{Store, StoreOptions, StoreReader};
pub use txn::{Txn, WriteBatch};
pub use view::ReadView;

/// A key's state at a revision (etcd's mvccpb.KeyValue).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The user key.
    pub key: Vec<u8>,
    /// Revision of the put that created the key since its last delete.
    pub create_revision: i64,
    /// Revision of the last change.
    pub mod_revision: i64,
    /// Puts since creation, from 1.
    pub version: i64,
    /// The user value (empty with `keys_only`).
    pub value: Vec<u8>,
    /// Lease id, 0 = none.
    pub lease: i64,
}

/// etcd's RangeRequest fields the engine needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RangeOptions<'a> {
    /// First key.
    pub key: &'a [u8],
    /// Empty: only `key`; `[0]`: every key >= `key`; else `[key, range_end)`
    /// (empty result when `range_end <= key`).
    pub range_end: &'a [u8],
    /// Revision to read at; <= 0 = latest.
    pub revision: i64,
    /// Most kvs to return, the first in the scan's key order; <= 0 = no
    /// limit.
    pub limit: i64,
    /// Leave values out.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Stop at the first match past `limit` instead of counting every
    /// match (`count` is then at most `limit + 1`, and `more` still tells
    /// whether anything is left): for reading a huge range in pages.
    pub stop_after_limit: bool,
}

/// etcd's RangeResponse fields the engine fills.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResult {
    /// Matching kvs in key order (ascending; descending from
    /// [`ReadView::range_descending`]), at most `limit`.
    pub kvs: Vec<KeyValue>,
    /// Matching keys ignoring the limit.
    pub count: i64,
    /// More keys matched than were returned (limited, not count_only).
    pub more: bool,
    /// The store's current revision (inside a txn that wrote: its revision).
    pub revision: i64,
}

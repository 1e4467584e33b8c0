//! Reads at a revision: the immutable [`ReadView`] and the range scan that
//! views and transactions share. The view's other reads live by noun:
//! leases (`lease.rs`), watch history (`history.rs`), hashes (`hash.rs`),
//! and writing it out as a tree file (`btree/copy.rs`).

use super::history::{HistoryChunk, HistoryWalk};
use super::key::{decode_value, prefix_of, revision_of, user_key_of, ValueRecord};
use super::key_range::KeyRange;
use super::{KeyValue, LeaseRecord, RangeOptions, RangeResult};
use crate::btree::{
    write_tree_copy, write_tree_copy_in, write_tree_copy_to, CommitMeta, Cursor, Entry, EntryRef,
    Node,
};
use crate::error::{MvccError, StoreError};
use crate::io::{FileSystem, StorageFile};
use std::path::Path;
use std::sync::Arc;

/// An immutable snapshot of the store; `Send + Sync`, read without locks.
#[derive(Debug)]
pub struct ReadView {
    pub(crate) root: Arc<Node>,
    pub(crate) revision: i64,
    pub(crate) compact_revision: i64,
    pub(crate) applied_index: u64,
}

impl ReadView {
    /// The store's revision when this view was published.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Revisions below this are compacted.
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// Raft index of the batch that published this view.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Every lease record of this view, ascending by id.
    pub fn leases(&self) -> Vec<LeaseRecord> {
        super::lease::leases(&self.root)
    }

    /// The events (puts and deletes, as [`super::Txn`] reports them, with
    /// `prev_kv` = the key's previous entry if it is still in the tree, not
    /// superseded at the compaction point (`compact.rs`), and
    /// is a put) of `[key, range_end)` (etcd's range rules) whose main
    /// revision is in `[start_revision, self.revision()]`, by (main, sub)
    /// revision: at most `max_events`, cut between main revisions, except
    /// that one main revision with more events is returned whole (so
    /// `max_events == 0` returns the first revision with events). Resume
    /// with the chunk's `next_revision`; it is `self.revision() + 1` once
    /// the chunk reaches this view's revision (`start_revision` itself when
    /// that is further ahead). `start_revision <= 0` means "from the view's
    /// revision + 1": nothing yet. Errors with [`MvccError::Compacted`] if
    /// `start_revision` is below the compaction point. Memory is about
    /// `max_events` events, not the range's history (`history.rs`).
    ///
    /// A single key's history is read by walking its entries; a range's by
    /// walking the revision index, which also ends a chunk after
    /// [`INDEX_SCAN_MAX`](super::INDEX_SCAN_MAX) index entries, possibly
    /// with no events, so a caller must resume at `next_revision` until it
    /// passes this view's revision.
    pub fn events(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_revision: i64,
        max_events: usize,
    ) -> Result<HistoryChunk, MvccError> {
        super::history::events(self, key, range_end, start_revision, max_events, None)
    }

    /// [`ReadView::events`] by the given walk whatever the range (tests
    /// compare the two walks).
    pub fn events_walking(
        &self,
        walk: HistoryWalk,
        key: &[u8],
        range_end: &[u8],
        start_revision: i64,
        max_events: usize,
    ) -> Result<HistoryChunk, MvccError> {
        super::history::events(self, key, range_end, start_revision, max_events, Some(walk))
    }

    /// etcd's HashKV: crc32c over every MVCC tree entry (key bytes, then
    /// value bytes, in tree order) whose main revision is <= `revision`
    /// (<= 0: this view's revision) and that is not superseded at the
    /// compaction point (so it is the same before, during and after an
    /// incremental compaction's removal), and this view's compaction point.
    /// Errors as [`ReadView::range`] does for a future or compacted
    /// revision. One full scan of the tree.
    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64), MvccError> {
        super::hash::hash_kv(self, revision)
    }

    /// etcd's Hash: crc32c over every tree entry (key bytes, then value
    /// bytes, in tree order), lease records included. One full scan.
    pub fn hash(&self) -> u32 {
        super::hash::hash(&self.root)
    }

    /// Writes this view out as a new tree file at `path` (which must not
    /// exist): only the nodes of this view, and one commit record with its
    /// revision, compaction point and applied index, in the format
    /// [`super::Store::open`] reads. Returns the file's size in bytes. The
    /// primitive for backend snapshots. Crash-safe: written as
    /// `<path>.part`, fdatasynced, renamed to `path`, directory fsynced, so
    /// `path` is either absent or whole (`btree/copy.rs`). Safe while the
    /// store persists or defrags.
    pub fn write_tree_file(&self, path: &Path) -> Result<u64, StoreError> {
        write_tree_copy(path, &self.root, self.commit_meta())
    }

    /// [`ReadView::write_tree_file`] through `file_system` (crash tests
    /// pass a fault-injecting one).
    pub fn write_tree_file_in(
        &self,
        file_system: &dyn FileSystem,
        path: &Path,
    ) -> Result<u64, StoreError> {
        write_tree_copy_in(file_system, path, &self.root, self.commit_meta())
    }

    /// [`ReadView::write_tree_file`] into an open `file` (emptied first;
    /// `path` names it in errors), without creating, fsyncing the directory
    /// or cleaning up: for fault-injection tests and callers that manage
    /// the file themselves.
    pub fn write_tree_file_to(
        &self,
        file: &dyn StorageFile,
        path: &Path,
    ) -> Result<u64, StoreError> {
        write_tree_copy_to(file, path, &self.root, self.commit_meta())
    }

    fn commit_meta(&self) -> CommitMeta {
        CommitMeta {
            applied_index: self.applied_index,
            revision: self.revision,
            compact_revision: self.compact_revision,
        }
    }

    /// etcd's Range at `options.revision` (latest if <= 0), kvs in
    /// ascending key order.
    pub fn range(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        range(
            &self.root,
            options,
            self.revision,
            self.compact_revision,
            ScanOrder::Ascending,
        )
    }

    /// [`ReadView::range`] with kvs in DESCENDING key order: etcd's Range
    /// with `sort_order = DESCEND, sort_target = KEY`. `limit` keeps the
    /// first `limit` kvs in that order (the largest keys); `count` is every
    /// match and `more` whether kvs left any out, as etcd computes them;
    /// `stop_after_limit` stops at the first match past the limit. Costs
    /// what an ascending range costs: the tree is walked backwards.
    pub fn range_descending(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        range(
            &self.root,
            options,
            self.revision,
            self.compact_revision,
            ScanOrder::Descending,
        )
    }
}

/// The key order a range returns its kvs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScanOrder {
    Ascending,
    Descending,
}

/// Validates the requested revision against `current_revision` and
/// `compact_revision`, then scans in `order`.
pub(crate) fn range(
    root: &Node,
    options: &RangeOptions,
    current_revision: i64,
    compact_revision: i64,
    order: ScanOrder,
) -> Result<RangeResult, MvccError> {
    let read_revision = if options.revision <= 0 {
        current_revision
    } else {
        options.revision
    };
    if read_revision > current_revision {
        return Err(MvccError::FutureRevision);
    }
    if read_revision < compact_revision {
        return Err(MvccError::Compacted);
    }
    let mut result = match order {
        ScanOrder::Ascending => scan(root, options, read_revision),
        ScanOrder::Descending => scan_descending(root, options, read_revision),
    };
    result.revision = current_revision;
    Ok(result)
}

/// Builds a [`RangeResult`] from the visible entries of a scan, one per
/// user key in scan order, applying etcd's limit and count rules.
struct Collector<'o> {
    options: &'o RangeOptions<'o>,
    /// `options.limit` when positive.
    limit: Option<usize>,
    result: RangeResult,
}

impl<'o> Collector<'o> {
    fn new(options: &'o RangeOptions<'o>, read_revision: i64) -> Collector<'o> {
        Collector {
            options,
            limit: usize::try_from(options.limit)
                .ok()
                .filter(|&limit| limit > 0),
            result: RangeResult {
                kvs: Vec::new(),
                count: 0,
                more: false,
                revision: read_revision,
            },
        }
    }

    /// Takes the visible entry of the next user key; false when the scan
    /// may stop (`stop_after_limit` and past the limit).
    #[inline]
    fn offer(&mut self, entry: EntryRef<'_>) -> bool {
        if matches!(decode_value(entry.value()), ValueRecord::Tombstone) {
            return true;
        }
        self.result.count += 1;
        if self.options.count_only
            || self
                .limit
                .is_some_and(|limit| self.result.kvs.len() >= limit)
        {
            return !self.options.stop_after_limit || self.options.count_only;
        }
        self.result
            .kvs
            .push(key_value_of(entry, self.options.keys_only));
        true
    }

    fn finish(mut self) -> RangeResult {
        self.result.more = self.limit.is_some()
            && !self.options.count_only
            && self.result.count > self.result.kvs.len() as i64;
        self.result
    }
}

/// Scans `[key, range_end)` per etcd's rules at `read_revision` without
/// validating it; `revision` in the result is `read_revision`.
pub(crate) fn scan(root: &Node, options: &RangeOptions, read_revision: i64) -> RangeResult {
    let mut collector = Collector::new(options, read_revision);
    scan_visible(root, options, read_revision, |entry| collector.offer(entry));
    collector.finish()
}

/// Offers `visit` the entry visible at `read_revision` (a put or a
/// tombstone) of each user key of `[key, range_end)` (etcd's range rules;
/// the other options are `visit`'s business), in key order, until it
/// returns false.
pub(crate) fn scan_visible(
    root: &Node,
    options: &RangeOptions,
    read_revision: i64,
    mut visit: impl FnMut(EntryRef<'_>) -> bool,
) {
    let Some(key_range) = KeyRange::new(options.key, options.range_end) else {
        return;
    };
    let mut cursor = Cursor::seek(root, key_range.start());
    while let Some(first) = cursor.current() {
        let prefix = prefix_of(first.key());
        if !key_range.contains(prefix) {
            break;
        }
        // Entries of one user key run newest first: take the first one at or
        // below the read revision, skip the rest of the key.
        let mut visible: Option<EntryRef<'_>> = None;
        while let Some(entry) = cursor.current() {
            if prefix_of(entry.key()) != prefix {
                break;
            }
            if visible.is_none() && revision_of(entry.key()).main <= read_revision {
                visible = Some(entry);
            }
            cursor.next();
        }
        if let Some(entry) = visible {
            if !visit(entry) {
                break;
            }
        }
    }
}

/// [`scan`] from the last key of the range down to its first.
fn scan_descending(root: &Node, options: &RangeOptions, read_revision: i64) -> RangeResult {
    let mut collector = Collector::new(options, read_revision);
    let Some(key_range) = KeyRange::new(options.key, options.range_end) else {
        return collector.finish();
    };
    let mut cursor = key_range.seek_last(root);
    while let Some(last) = cursor.current() {
        // Below the start: an earlier user key, or a lease record (lease
        // keys sort before every MVCC key, so they end the walk here).
        if last.key() < key_range.start() {
            break;
        }
        let prefix = prefix_of(last.key());
        debug_assert!(key_range.contains(prefix));
        // Walking backwards, one user key's entries come oldest first: the
        // visible one is the last at or below the read revision.
        let mut visible: Option<EntryRef<'_>> = None;
        while let Some(entry) = cursor.current() {
            // Prefixes are prefix-free, so only this key's entries start
            // with it (a lease key never does).
            if !entry.key().starts_with(prefix) {
                break;
            }
            if revision_of(entry.key()).main <= read_revision {
                visible = Some(entry);
            }
            cursor.prev();
        }
        if let Some(entry) = visible {
            if !collector.offer(entry) {
                break;
            }
        }
    }
    collector.finish()
}

/// The newest entry at or below `seek_key`'s main revision of the user key
/// whose MVCC prefix `seek_key` has (seek keys carry sub `i64::MAX`), if
/// any.
pub(crate) fn newest_at(root: &Node, seek_key: &[u8]) -> Option<Entry> {
    let cursor = Cursor::seek(root, seek_key);
    let entry = cursor.current()?;
    if prefix_of(entry.key()) != prefix_of(seek_key) {
        return None;
    }
    debug_assert!(revision_of(entry.key()) <= revision_of(seek_key));
    Some(entry.to_entry())
}

pub(crate) fn key_value_of(entry: EntryRef<'_>, keys_only: bool) -> KeyValue {
    let ValueRecord::Put {
        create_revision,
        version,
        lease,
        value,
    } = decode_value(entry.value())
    else {
        unreachable!("key_value_of a tombstone")
    };
    KeyValue {
        key: user_key_of(entry.key()),
        create_revision,
        mod_revision: revision_of(entry.key()).main,
        version,
        value: if keys_only {
            Vec::new()
        } else {
            value.to_vec()
        },
        lease,
    }
}

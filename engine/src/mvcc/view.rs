//! Reads at a revision: the immutable [`ReadView`] and the range scan that
//! views and transactions share. The view's other reads live by noun:
//! leases (`lease.rs`), watch history (`history.rs`), hashes (`hash.rs`),
//! and writing it out as a tree file (`btree/copy.rs`).

use super::history::HistoryChunk;
use super::key::{decode_value, encode_key, prefix_of, revision_of, user_key_of, ValueRecord};
use super::key_range::KeyRange;
use super::revision::Revision;
use super::{KeyValue, LeaseRecord, RangeOptions, RangeResult};
use crate::btree::{
    write_tree_copy, write_tree_copy_in, write_tree_copy_to, CommitMeta, Cursor, Entry, Node,
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
    /// `prev_kv` = the key's previous entry if it is still in the tree and
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
    pub fn events(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_revision: i64,
        max_events: usize,
    ) -> Result<HistoryChunk, MvccError> {
        super::history::events(self, key, range_end, start_revision, max_events)
    }

    /// etcd's HashKV: crc32c over every MVCC tree entry (key bytes, then
    /// value bytes, in tree order) whose main revision is <= `revision`
    /// (<= 0: this view's revision), and this view's compaction point.
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

    /// etcd's Range at `options.revision` (latest if <= 0).
    pub fn range(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        range(&self.root, options, self.revision, self.compact_revision)
    }
}

/// Validates the requested revision against `current_revision` and
/// `compact_revision`, then scans.
pub(crate) fn range(
    root: &Node,
    options: &RangeOptions,
    current_revision: i64,
    compact_revision: i64,
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
    let mut result = scan(root, options, read_revision);
    result.revision = current_revision;
    Ok(result)
}

/// Scans `[key, range_end)` per etcd's rules at `read_revision` without
/// validating it; `revision` in the result is `read_revision`.
pub(crate) fn scan(root: &Node, options: &RangeOptions, read_revision: i64) -> RangeResult {
    let mut result = RangeResult {
        kvs: Vec::new(),
        count: 0,
        more: false,
        revision: read_revision,
    };
    let Some(key_range) = KeyRange::new(options.key, options.range_end) else {
        return result;
    };
    let limit = usize::try_from(options.limit)
        .ok()
        .filter(|&limit| limit > 0);
    let mut cursor = Cursor::seek(root, key_range.start());
    while let Some(first) = cursor.current() {
        let prefix = prefix_of(first.key());
        if !key_range.contains(prefix) {
            break;
        }
        // Entries of one user key run newest first: take the first one at or
        // below the read revision, skip the rest of the key.
        let mut visible: Option<&Entry> = None;
        while let Some(entry) = cursor.current() {
            if prefix_of(entry.key()) != prefix {
                break;
            }
            if visible.is_none() && revision_of(entry.key()).main <= read_revision {
                visible = Some(entry);
            }
            cursor.next();
        }
        let Some(entry) = visible else { continue };
        if matches!(decode_value(entry.value()), ValueRecord::Tombstone) {
            continue;
        }
        result.count += 1;
        if options.count_only || limit.is_some_and(|limit| result.kvs.len() >= limit) {
            if options.stop_after_limit && !options.count_only {
                break;
            }
            continue;
        }
        result.kvs.push(key_value_of(entry, options.keys_only));
    }
    result.more = limit.is_some() && !options.count_only && result.count > result.kvs.len() as i64;
    result
}

/// The live value of `user_key` at `read_revision`, if any.
pub(crate) fn get(root: &Node, user_key: &[u8], read_revision: i64) -> Option<KeyValue> {
    let seek_key = encode_key(user_key, Revision::new(read_revision, i64::MAX));
    let cursor = Cursor::seek(root, &seek_key);
    let entry = cursor.current()?;
    if prefix_of(entry.key()) != prefix_of(&seek_key) {
        return None;
    }
    debug_assert!(revision_of(entry.key()).main <= read_revision);
    match decode_value(entry.value()) {
        ValueRecord::Tombstone => None,
        ValueRecord::Put { .. } => Some(key_value_of(entry, false)),
    }
}

pub(crate) fn key_value_of(entry: &Entry, keys_only: bool) -> KeyValue {
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

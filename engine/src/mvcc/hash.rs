//! Checksums of a view's tree, for etcd's Maintenance.Hash and HashKV.
//!
//! Both are crc32c (Castagnoli) over tree entries in tree order, each
//! entry's key bytes then its value bytes: equal trees give equal hashes,
//! so members fed the same operations agree, and a member whose tree went
//! astray disagrees. [`hash_kv`] covers the MVCC entries up to a revision
//! (what etcd's corruption check compares); [`hash`] covers every entry,
//! lease records included (etcd's Hash covers its whole backend). Each is
//! one full scan of the tree: not for hot paths. [`hash_kv`] skips the
//! entries superseded at the compaction point that an incremental
//! compaction has not removed yet.

use super::key::{decode_value, prefix_of, revision_of, ValueRecord, MVCC_KEYS_START};
use super::view::ReadView;
use crate::btree::{Cursor, Node};
use crate::error::MvccError;

/// See [`ReadView::hash_kv`].
pub(crate) fn hash_kv(view: &ReadView, revision: i64) -> Result<(u32, i64), MvccError> {
    let revision = if revision <= 0 {
        view.revision
    } else {
        revision
    };
    if revision > view.revision {
        return Err(MvccError::FutureRevision);
    }
    if revision < view.compact_revision {
        return Err(MvccError::Compacted);
    }
    let mut crc = 0u32;
    let mut cursor = Cursor::seek(&view.root, &MVCC_KEYS_START);
    // Entries superseded at the compaction point that an incremental
    // compaction has not removed yet (`compact.rs`) are skipped, as etcd
    // hashes only its index's kept revisions at or below the point: the
    // hash does not depend on how far removal got.
    let mut current_prefix: Option<&[u8]> = None;
    let mut kept_one = false;
    while let Some(entry) = cursor.current() {
        let prefix = prefix_of(entry.key());
        if current_prefix != Some(prefix) {
            current_prefix = Some(prefix);
            kept_one = false;
        }
        let main = revision_of(entry.key()).main;
        let superseded = main <= view.compact_revision
            && (std::mem::replace(&mut kept_one, true)
                || matches!(decode_value(entry.value()), ValueRecord::Tombstone));
        if main <= revision && !superseded {
            crc = crc32c::crc32c_append(crc, entry.key());
            crc = crc32c::crc32c_append(crc, entry.value());
        }
        cursor.next();
    }
    Ok((crc, view.compact_revision))
}

/// See [`ReadView::hash`].
pub(crate) fn hash(root: &Node) -> u32 {
    let mut crc = 0u32;
    // The one walk from the tree's very start: lease records included.
    let mut cursor = Cursor::seek(root, &[]);
    while let Some(entry) = cursor.current() {
        crc = crc32c::crc32c_append(crc, entry.key());
        crc = crc32c::crc32c_append(crc, entry.value());
        cursor.next();
    }
    crc
}

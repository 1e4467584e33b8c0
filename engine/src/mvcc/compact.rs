//! Compaction, as etcd's `kvstore.Compact` + `scheduleCompaction` do it.
//!
//! Compacting to revision C keeps, per user key, every entry above C and
//! the newest entry at or below C (the key's state at C), unless that one
//! is a tombstone: a read at any revision >= C sees what it saw before, and
//! reads below C fail with [`MvccError::Compacted`].
//!
//! The work is found through the revision index (`key.rs`), in revision
//! order, as etcd walks its revisions: every index entry at or below C
//! names the put its revision superseded (gone: a newer entry of its key is
//! at or below C) and says whether the revision itself is a tombstone
//! (gone too: a tombstone at or below C is either superseded or the key's
//! state at C, which etcd drops). Each superseded entry is named exactly
//! once, by the next write of its key, so nothing else needs looking at:
//! the cost is linear in the revisions being compacted, not in the tree.
//! The index entries below C go with them (history below C is never read
//! again; those at C stay, for a watch that starts at C). The doomed tree
//! keys of a chunk are removed with one copy-on-write [`remove_sorted`],
//! so memory stays bounded however much is compacted; published read
//! views keep their roots untouched.
//!
//! Incremental compaction ([`compact_start`] + [`compact_step`]) splits the
//! same walk so the single writer never stalls: the start is etcd's logical
//! compaction (the point moves at once, so reads below it fail from the
//! next published view on) and each step handles at most `max_entries`
//! index entries from where the last one stopped; writes may be applied
//! between steps. That is safe because a write gets a main revision above
//! the store's revision, which is >= the point: its index entry is past the
//! walk's end, and the put it supersedes was the key's newest entry, which
//! no entry at or below the point names. Reads need no help either: a read
//! at R >= the point takes, per key, the newest entry with main <= R, which
//! a leftover superseded entry never is (it is older than the key's newest
//! entry at or below the point, or is that entry and a tombstone, which
//! reads as absent). Hashes and watch history skip leftovers explicitly
//! (`hash.rs`, `history.rs`) so their answers do not depend on how far
//! removal got.
//!
//! Restart: the commit record carries the point, not the walk's position,
//! and needs no more: the walk deletes the index entries below the point it
//! has handled, so an index that still starts below the point after a
//! reopen is a removal cut short, and [`pending_at_open`] resumes it from
//! the index's start. A new compaction also restarts the walk from the
//! index's start: the entries it meets at the old point were handled
//! already, and handling one twice removes nothing more.
//!
//! Limits: [`compact`] runs the whole walk on the single writer inside one
//! write batch; the raft core uses the steps. Thinned tree nodes are merged
//! by the removal itself (`btree/node.rs`); the file space is reclaimed by
//! a defrag.

use super::key::{
    decode_index_value, index_key, index_keys_start, index_revision_of, push_revision_suffix,
    INDEX_KEY_BYTES, MVCC_KEYS_START,
};
use super::revision::Revision;
use super::store::Store;
use crate::btree::{remove_sorted, Cursor, Node};
use crate::error::MvccError;
use std::sync::Arc;

/// Most revision index entries one removal pass of `compact` handles
/// (each dooms at most two MVCC entries and itself).
pub const COMPACTION_BATCH_KEYS_MAX: usize = 10_000;

/// Compacts `store` to `revision` in one go (see the module comment).
/// Returns the number of MVCC entries removed. An incremental compaction
/// still pending is finished by it (at the new point).
pub(crate) fn compact(store: &mut Store, revision: i64) -> Result<u64, MvccError> {
    compact_start(store, revision)?;
    let mut removed_total = 0u64;
    while store.compaction_resume.is_some() {
        removed_total += step(store, COMPACTION_BATCH_KEYS_MAX);
    }
    Ok(removed_total)
}

/// etcd's logical compaction: validates `revision`, moves the point to it
/// and records that removal is pending from the start of the index.
pub(crate) fn compact_start(store: &mut Store, revision: i64) -> Result<(), MvccError> {
    if revision <= store.compact_revision {
        return Err(MvccError::Compacted);
    }
    if revision > store.revision {
        return Err(MvccError::FutureRevision);
    }
    store.compact_revision = revision;
    store.compaction_resume = Some(Revision::new(0, 0));
    Ok(())
}

/// Handles at most `max_entries` (at least one) revision index entries of
/// the pending removal, from where the last step stopped. True while more
/// remains.
pub(crate) fn compact_step(store: &mut Store, max_entries: usize) -> bool {
    if store.compaction_resume.is_some() {
        step(store, max_entries.max(1));
    }
    store.compaction_resume.is_some()
}

/// Whether a store opened with `root` and compaction point
/// `compact_revision` has a removal cut short: its index starts below the
/// point (see the module comment). Where to resume if so.
pub(crate) fn pending_at_open(root: &Arc<Node>, compact_revision: i64) -> Option<Revision> {
    let cursor = Cursor::seek(root, index_keys_start());
    let first = cursor
        .current()
        .and_then(|entry| index_revision_of(entry.key()))?;
    (first.main < compact_revision).then_some(Revision::new(0, 0))
}

/// One chunk of the pending removal: collects and removes it, and moves
/// the resume point on (clearing it past the compaction point). Returns
/// the number of MVCC entries removed.
fn step(store: &mut Store, max_entries: usize) -> u64 {
    let resume_from = store
        .compaction_resume
        .take()
        .expect("a step runs only while removal is pending");
    // The walk reads the index: the entries of this batch's writes first.
    store.flush_pending_index();
    let point = store.compact_revision;
    // Fixed-size index keys and one buffer for the MVCC keys: no
    // allocation per doomed key.
    let mut index_doomed: Vec<[u8; INDEX_KEY_BYTES]> = Vec::new();
    let mut mvcc_bytes: Vec<u8> = Vec::new();
    let mut mvcc_spans: Vec<(usize, usize)> = Vec::new();
    let mut doom_mvcc = |prefix: &[u8], revision: Revision| {
        let start = mvcc_bytes.len();
        mvcc_bytes.extend_from_slice(prefix);
        push_revision_suffix(&mut mvcc_bytes, revision);
        mvcc_spans.push((start, mvcc_bytes.len()));
    };
    let mut handled = 0usize;
    let mut cursor = Cursor::seek(&store.root, &index_key(resume_from));
    while let Some(entry) = cursor.current() {
        let Some(revision) = index_revision_of(entry.key()) else {
            break;
        };
        if revision.main > point {
            break;
        }
        if handled == max_entries {
            store.compaction_resume = Some(revision);
            break;
        }
        handled += 1;
        let record = decode_index_value(entry.value());
        if let Some(previous) = record.previous_put {
            doom_mvcc(record.prefix, previous);
        }
        if record.tombstone {
            doom_mvcc(record.prefix, revision);
        }
        if revision.main < point {
            index_doomed.push(entry.key().try_into().expect("an index key"));
        }
        cursor.next();
    }
    // Index keys sort before every MVCC key, and come in order; the MVCC
    // keys come in revision order. A tombstone and the next put of its key
    // never both name it (a put after a tombstone names no previous put),
    // but an entry handled twice (at an old point) may name one already
    // gone, so presence is counted rather than assumed.
    let mut mvcc_doomed: Vec<&[u8]> = mvcc_spans
        .iter()
        .map(|&(start, end)| &mvcc_bytes[start..end])
        .collect();
    mvcc_doomed.sort_unstable();
    mvcc_doomed.dedup();
    let index_count = index_doomed.len();
    let mut doomed: Vec<&[u8]> = Vec::with_capacity(index_count + mvcc_doomed.len());
    doomed.extend(index_doomed.iter().map(|key| key.as_slice()));
    debug_assert!(doomed
        .last()
        .is_none_or(|last| *last < MVCC_KEYS_START.as_slice()));
    doomed.append(&mut mvcc_doomed);
    if doomed.is_empty() {
        return 0;
    }
    let removed = remove_sorted(&mut store.root, &doomed);
    assert!(removed >= index_count, "the index entries walked are there");
    store.ops_since_persist += removed as u64;
    (removed - index_count) as u64
}

/// The tree's MVCC entry count, lease records and the revision index not
/// counted (tests and diagnostics: one full scan).
pub(crate) fn entry_count(root: &Node) -> u64 {
    let mut cursor = Cursor::seek(root, &MVCC_KEYS_START);
    let mut count = 0;
    while cursor.current().is_some() {
        count += 1;
        cursor.next();
    }
    count
}

//! Write batches and transactions.
//!
//! A [`WriteBatch`] groups the transactions of one raft apply batch and
//! publishes them together. A [`Txn`] is one etcd transaction: all its
//! changes share one main revision (the store's revision + 1), with sub
//! revisions counting up from 0; reads inside it see its own writes.

use super::key::{decode_value, ValueRecord};
use super::key::{
    encode_tombstone, index_key, index_value_header, prefix_of, push_key_prefix,
    push_revision_suffix, put_header, revision_of, IndexRecord, PUT_HEADER_BYTES,
    REVISION_SUFFIX_BYTES,
};
use super::revision::Revision;
use super::store::{Store, PENDING_INDEX_BYTES_MAX};
use super::view::{key_value_of, newest_at, range, scan_visible, ScanOrder};
use super::{Detail, Event, EventKind, KeyValue, KvMeta, RangeOptions, RangeResult};
use crate::btree::{insert_built, insert_parts, Entry, EntryRef};
use crate::error::MvccError;

/// Changes one transaction may make (etcd's default max-txn-ops is 128;
/// a delete of many keys counts each key).
pub const TXN_CHANGES_MAX: usize = 1 << 30;

/// A batch of transactions applied by the single writer.
#[derive(Debug)]
pub struct WriteBatch<'a> {
    store: &'a mut Store,
    detail: Detail,
}

impl<'a> WriteBatch<'a> {
    pub(crate) fn new(store: &'a mut Store) -> WriteBatch<'a> {
        WriteBatch {
            store,
            detail: Detail::Full,
        }
    }

    /// Which changes of this batch's txns from now on get events:
    /// [`Detail::Full`] (the default) for a batch watchers will see,
    /// [`Detail::Leases`] (only changes involving a lease, for the lessor)
    /// for one no watcher will; see `event.rs`.
    pub fn set_event_detail(&mut self, detail: Detail) {
        self.detail = detail;
    }

    /// The store's revision: the last changing txn's main revision.
    pub fn revision(&self) -> i64 {
        self.store.revision
    }

    /// Starts one etcd transaction.
    pub fn txn(&mut self) -> Txn<'_> {
        let main = self.store.revision + 1;
        Txn {
            store: self.store,
            main,
            next_sub: 0,
            events: Vec::new(),
            detail: self.detail,
            ended: false,
        }
    }

    /// etcd's Compact inside this batch: sets the compaction point to
    /// `revision` and removes every entry superseded at it (see
    /// `compact.rs`). Errors, changing nothing: [`MvccError::Compacted`] if
    /// `revision` is at or below the current compaction point,
    /// [`MvccError::FutureRevision`] if it is above the current revision.
    /// Returns the number of MVCC entries removed. The revision does not
    /// change; the new point is published with [`WriteBatch::commit`].
    pub fn compact(&mut self, revision: i64) -> Result<u64, MvccError> {
        super::compact::compact(self.store, revision)
    }

    /// etcd's logical compaction inside this batch: validates `revision`
    /// and errors exactly as [`WriteBatch::compact`], sets the compaction
    /// point to it (published with [`WriteBatch::commit`]: reads below it
    /// fail from then on) and marks the removal of superseded entries
    /// pending, for [`WriteBatch::compact_step`]. A removal still pending
    /// from an earlier start is taken over at the new point (`compact.rs`).
    pub fn compact_start(&mut self, revision: i64) -> Result<(), MvccError> {
        super::compact::compact_start(self.store, revision)
    }

    /// Handles at most `max_revisions` revisions of the pending removal of
    /// entries superseded at the compaction point, in revision order from
    /// where the last step stopped (each revision removes at most two MVCC
    /// entries and its index entry). True while more remains
    /// ([`Store::compaction_pending`]); false, doing nothing, when no
    /// removal is pending. Batches of writes may come between steps.
    ///
    /// [`Store::compaction_pending`]: super::Store::compaction_pending
    pub fn compact_step(&mut self, max_revisions: usize) -> bool {
        super::compact::compact_step(self.store, max_revisions)
    }

    /// Grants lease `id` with `ttl_seconds`, or replaces its TTL (see
    /// `lease.rs`). Not an MVCC change: the revision stays. Published with
    /// [`WriteBatch::commit`], persisted with the tree.
    pub fn put_lease(&mut self, id: i64, ttl_seconds: i64) {
        super::lease::put_lease(self.store, id, ttl_seconds);
    }

    /// Revokes lease `id`; true if it existed. The revision stays; the
    /// caller deletes the lease's keys with a [`Txn`] of the same batch.
    pub fn delete_lease(&mut self, id: i64) -> bool {
        super::lease::delete_lease(self.store, id)
    }

    /// Makes the batch visible: publishes a new immutable read view
    /// (readers switch atomically, lock-free). Does not fsync.
    pub fn commit(self, applied_index: u64) {
        self.store.publish(applied_index);
    }
}

/// One etcd transaction. Dropping it ends it like [`Txn::end`].
#[derive(Debug)]
pub struct Txn<'a> {
    store: &'a mut Store,
    main: i64,
    next_sub: i64,
    events: Vec<Event>,
    detail: Detail,
    ended: bool,
}

impl Txn<'_> {
    /// The revision reads inside the txn see: its own if it wrote.
    fn read_revision(&self) -> i64 {
        if self.next_sub > 0 {
            self.main
        } else {
            self.store.revision
        }
    }

    /// etcd's Range inside the txn (sees this txn's earlier writes).
    pub fn range(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        range(
            &self.store.root,
            options,
            self.read_revision(),
            self.store.compact_revision,
            ScanOrder::Ascending,
        )
    }

    /// [`Txn::range`] in descending key order, as
    /// [`super::ReadView::range_descending`].
    pub fn range_descending(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        range(
            &self.store.root,
            options,
            self.read_revision(),
            self.store.compact_revision,
            ScanOrder::Descending,
        )
    }

    fn next_revision(&mut self) -> Revision {
        assert!((self.next_sub as usize) < TXN_CHANGES_MAX, "txn too large");
        let revision = Revision::new(self.main, self.next_sub);
        self.next_sub += 1;
        revision
    }

    /// Writes the MVCC entry of the user key whose MVCC prefix is
    /// `key_buffer`'s first `prefix_len` bytes at `revision` (the buffer's
    /// bytes past the prefix are replaced), its value being
    /// `value_parts` one after the other, and its revision index entry
    /// naming the put it supersedes (`key.rs`).
    fn write(
        &mut self,
        key_buffer: &mut Vec<u8>,
        prefix_len: usize,
        revision: Revision,
        value_parts: &[&[u8]],
        tombstone: bool,
        previous_put: Option<Revision>,
    ) {
        key_buffer.truncate(prefix_len);
        push_revision_suffix(key_buffer, revision);
        let value_bytes = value_parts.iter().map(|part| part.len()).sum();
        let replaced = insert_parts(&mut self.store.root, key_buffer, value_parts);
        assert!(replaced.is_none(), "revision written twice");
        self.index(key_buffer, prefix_len, value_bytes, tombstone, previous_put);
    }

    /// Writes the revision index entry of the MVCC entry keyed
    /// `mvcc_key` (whose first `prefix_len` bytes are the user key's
    /// prefix) with a value of `value_bytes`, and counts both entries
    /// toward the next persist.
    fn index(
        &mut self,
        mvcc_key: &[u8],
        prefix_len: usize,
        value_bytes: usize,
        tombstone: bool,
        previous_put: Option<Revision>,
    ) {
        let revision = revision_of(mvcc_key);
        let prefix = &mvcc_key[..prefix_len];
        let index_key = index_key(revision);
        let index_header = index_value_header(&IndexRecord {
            tombstone,
            previous_put,
            prefix,
        });
        // Held back and inserted with the batch's others as one run
        // (`Store::pending_index`); revisions only grow, so they come in
        // order.
        let pending = &mut self.store.pending_index;
        debug_assert!(pending
            .last()
            .is_none_or(|last| last.key() < index_key.as_slice()));
        pending.insert(pending.len(), &index_key, &index_header, &[prefix]);
        if pending.payload().len() >= PENDING_INDEX_BYTES_MAX {
            self.store.flush_pending_index();
        }
        self.store.ops_since_persist += 1;
        self.store.dirty_bytes_since_persist +=
            (mvcc_key.len() + value_bytes + index_key.len() + index_header.len() + prefix_len)
                as u64;
    }

    /// Puts `key`, with an event if the batch's [`Detail`] asks. Version
    /// increments; create_revision is kept, and reset after a delete.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) {
        self.put_inner(key, value, lease, false);
    }

    /// [`Txn::put`] returning the key's kv before it (etcd's prev_kv), if
    /// it existed, whatever the batch's [`Detail`].
    pub fn put_with_previous(&mut self, key: &[u8], value: &[u8], lease: i64) -> Option<KeyValue> {
        self.put_inner(key, value, lease, true)
    }

    /// The key's newest revision is the entry right after the new one in
    /// tree order (revisions of a key order newest first), so the put reads
    /// it in the same descent that inserts the new entry
    /// ([`insert_built`]), and descends a second time only when that entry
    /// is in the next leaf.
    fn put_inner(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
        want_previous: bool,
    ) -> Option<KeyValue> {
        let mut key_buffer = std::mem::take(&mut self.store.put_key_scratch);
        key_buffer.clear();
        push_key_prefix(&mut key_buffer, key);
        let prefix_len = key_buffer.len();
        let revision = self.next_revision();
        push_revision_suffix(&mut key_buffer, revision);
        let detail = self.detail;
        // The key's newest entry says what the put's create revision and
        // version are; the event, which copies that entry if it is a put
        // (the previous state) and the detail asks, is built while the
        // leaf holding it is at hand.
        let mut built: Option<Built> = None;
        let put_event = |newest: Option<EntryRef<'_>>| {
            // The newest entry if it is a put (not a tombstone), with its
            // create revision and version.
            let newest_put = newest.and_then(|entry| match decode_value(entry.value()) {
                ValueRecord::Put {
                    create_revision,
                    version,
                    lease,
                    ..
                } => Some((entry, create_revision, version, lease)),
                ValueRecord::Tombstone => None,
            });
            let (create_revision, version, prev_lease) = newest_put.map_or(
                (revision.main, 1, 0),
                |(_, create_revision, version, prev_lease)| {
                    (create_revision, version + 1, prev_lease)
                },
            );
            let newest_put = newest_put.map(|(entry, ..)| entry);
            let meta = KvMeta {
                create_revision,
                mod_revision: revision.main,
                version,
                lease,
            };
            (
                put_header(create_revision, version, lease),
                Built {
                    previous_put: newest_put.map(|entry| revision_of(entry.key())),
                    previous_kv: newest_put
                        .filter(|_| want_previous)
                        .map(|entry| key_value_of(entry, false)),
                    event: (detail == Detail::Full || lease != 0 || prev_lease != 0).then(|| {
                        Event::build(EventKind::Put, key, &[value], meta, newest_put, detail)
                    }),
                },
            )
        };
        let inserted = insert_built(
            &mut self.store.root,
            &key_buffer,
            &[value],
            |next: Option<EntryRef<'_>>| {
                let newest = next.filter(|next| prefix_of(next.key()) == &key_buffer[..prefix_len]);
                let (header, put) = put_event(newest);
                built = Some(put);
                header
            },
        );
        let replaced = match inserted {
            Some(replaced) => replaced,
            None => {
                // The newest revision is in the next leaf: look it up.
                let mut seek_key = key_buffer[..prefix_len].to_vec();
                push_revision_suffix(&mut seek_key, Revision::new(self.main, i64::MAX));
                let newest = newest_at(&self.store.root, &seek_key);
                let (header, put) = put_event(newest.as_ref().map(Entry::as_entry_ref));
                built = Some(put);
                insert_parts(&mut self.store.root, &key_buffer, &[&header, value])
            }
        };
        assert!(replaced.is_none(), "revision written twice");
        let built = built.expect("the put's event was built");
        self.index(
            &key_buffer,
            prefix_len,
            PUT_HEADER_BYTES + value.len(),
            false,
            built.previous_put,
        );
        self.store.put_key_scratch = key_buffer;
        self.events.extend(built.event);
        built.previous_kv
    }

    /// Deletes `[key, range_end)` (etcd's range rules); returns the deleted
    /// kvs as they were, and writes a tombstone for each.
    pub fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Vec<KeyValue> {
        let options = RangeOptions {
            key,
            range_end,
            ..RangeOptions::default()
        };
        let mut live = Vec::new();
        scan_visible(&self.store.root, &options, self.main, |entry| {
            if matches!(decode_value(entry.value()), ValueRecord::Put { .. }) {
                let prefix = prefix_of(entry.key());
                let mut key_buffer = Vec::with_capacity(prefix.len() + REVISION_SUFFIX_BYTES);
                key_buffer.extend_from_slice(prefix);
                live.push((
                    key_buffer,
                    revision_of(entry.key()),
                    key_value_of(entry, false),
                ));
            }
            true
        });
        let mut deleted = Vec::with_capacity(live.len());
        for (mut key_buffer, previous_revision, previous) in live {
            let revision = self.next_revision();
            let prefix_len = key_buffer.len();
            self.write(
                &mut key_buffer,
                prefix_len,
                revision,
                &[&encode_tombstone()],
                true,
                Some(previous_revision),
            );
            if self.detail == Detail::Full || previous.lease != 0 {
                self.events.push(Event::new(
                    EventKind::Delete,
                    KeyValue {
                        key: previous.key.clone(),
                        mod_revision: revision.main,
                        ..KeyValue::default()
                    },
                    Some(previous.clone()),
                ));
            }
            deleted.push(previous);
        }
        deleted
    }

    fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        if self.next_sub > 0 {
            assert_eq!(self.main, self.store.revision + 1);
            self.store.revision = self.main;
        }
    }

    /// Ends the txn: if it changed anything the store's revision becomes
    /// its main revision. Returns the events in order (those the batch's
    /// [`Detail`] keeps).
    pub fn end(mut self) -> Vec<Event> {
        self.finish();
        std::mem::take(&mut self.events)
    }
}

/// What a put learns from the key's newest entry while inserting.
struct Built {
    /// The revision of the key's last put, if it is live.
    previous_put: Option<Revision>,
    /// Its kv, when the caller asked for it.
    previous_kv: Option<KeyValue>,
    /// The put's event, if the txn's [`Detail`] keeps one.
    event: Option<Event>,
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

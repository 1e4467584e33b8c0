//! Events: what a transaction changed, for its response, the lessor and
//! watchers (etcd's mvccpb.Event).
//!
//! A put's event is made for every put, and most are never read beyond
//! their key and revision, so an event keeps its key, its value and the
//! key's previous put entry in one allocation (one `malloc` and one `free`
//! per put instead of three) and builds a [`KeyValue`] only when asked
//! ([`Event::kv`], [`Event::prev_kv`]). Taking events out of a put batch
//! altogether made a batch of 1000 puts about 22% faster; most of that was
//! these allocations.
//!
//! Only watchers need every event, with its value and previous kv. A
//! put's response builds its prev_kv straight from the tree
//! (`Txn::put_with_previous`), the batch knows its revision, and the
//! lessor follows only changes that involve a lease: the key and the two
//! leases. So a batch no watcher will see keeps [`Detail::Leases`] events:
//! one only for a change whose new or previous lease is not 0, holding the
//! key, revisions and leases; a put without leases makes no event and
//! allocates nothing for one.

use super::key::{
    decode_value, key_prefix, push_revision_suffix, put_header_unchecked, ValueRecord,
};
use super::revision::Revision;
use super::view::key_value_of;
use super::KeyValue;
use crate::btree::EntryRef;

/// What an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A put.
    Put,
    /// A delete.
    Delete,
}

/// The revisions and lease of an event's kv. A delete's has only its
/// mod revision (the deletion's), the others zero, as etcd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvMeta {
    /// Revision of the put that created the key since its last delete.
    pub create_revision: i64,
    /// Revision of this change.
    pub mod_revision: i64,
    /// Puts since creation, from 1.
    pub version: i64,
    /// Lease id, 0 = none.
    pub lease: i64,
}

/// Which changes get events and what they keep; see the module comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Every change, with everything a watcher may ask for: value and
    /// previous kv.
    Full,
    /// Only changes whose new or previous lease is not 0, with key,
    /// revisions, lease and previous lease: [`Event::value`],
    /// [`Event::kv`] and [`Event::prev_kv`] panic on such an event.
    Leases,
}

/// One change made by a transaction (etcd's mvccpb.Event); see the module
/// comment for its layout.
#[derive(Clone)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key, then (if [`Detail::Full`]) the value (empty for a
    /// delete), then, if the key existed before the change, the tree entry
    /// of its last put: tree key, then tree value.
    bytes: Box<[u8]>,
    key_len: u32,
    value_len: u32,
    /// The previous entry's tree key length; `None` if the key did not
    /// exist or the event is [`Detail::Leases`].
    previous_key_len: Option<u32>,
    detail: Detail,
    meta: KvMeta,
    /// The lease of the key's previous put, 0 if none.
    prev_lease: i64,
}

/// `len` as a length inside an event (keys and values are far below 4 GiB).
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).expect("an event's part below 4 GiB")
}

impl Event {
    /// An event of `kind` for `key` whose value is `value_parts` joined,
    /// with `meta`, after the key's previous put tree entry `previous` if
    /// it had one (whose lease is `prev_lease`), keeping `detail`: one
    /// allocation.
    pub(crate) fn build(
        kind: EventKind,
        key: &[u8],
        value_parts: &[&[u8]],
        meta: KvMeta,
        previous: Option<EntryRef<'_>>,
        detail: Detail,
    ) -> Event {
        let prev_lease = previous.map_or(0, |entry| match decode_value(entry.value()) {
            ValueRecord::Put { lease, .. } => lease,
            ValueRecord::Tombstone => unreachable!("a previous put's entry"),
        });
        if detail == Detail::Leases {
            return Event {
                kind,
                bytes: key.into(),
                key_len: len_u32(key.len()),
                value_len: 0,
                previous_key_len: None,
                detail,
                meta,
                prev_lease,
            };
        }
        let value_len: usize = value_parts.iter().map(|part| part.len()).sum();
        let previous_len = previous.map_or(0, |entry| entry.key().len() + entry.value().len());
        let mut bytes = Vec::with_capacity(key.len() + value_len + previous_len);
        bytes.extend_from_slice(key);
        for part in value_parts {
            bytes.extend_from_slice(part);
        }
        if let Some(entry) = previous {
            bytes.extend_from_slice(entry.key());
            bytes.extend_from_slice(entry.value());
        }
        Event {
            kind,
            bytes: bytes.into_boxed_slice(),
            key_len: len_u32(key.len()),
            value_len: len_u32(value_len),
            previous_key_len: previous.map(|entry| len_u32(entry.key().len())),
            detail,
            meta,
            prev_lease,
        }
    }

    /// An event of `kind` with `kv`; `prev_kv` is the key's state before
    /// the change, if it existed (its mod revision, like every revision,
    /// not negative). For events not read out of the tree (tests, the
    /// lessor's own).
    pub fn new(kind: EventKind, kv: KeyValue, prev_kv: Option<KeyValue>) -> Event {
        let meta = KvMeta {
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        };
        // The previous kv as the tree entry its put would have written.
        let previous = prev_kv.map(|prev| {
            let mut tree_key = key_prefix(&prev.key);
            push_revision_suffix(&mut tree_key, Revision::new(prev.mod_revision, 0));
            let mut tree_value =
                put_header_unchecked(prev.create_revision, prev.version, prev.lease).to_vec();
            tree_value.extend_from_slice(&prev.value);
            (tree_key, tree_value)
        });
        Event::build(
            kind,
            &kv.key,
            &[&kv.value],
            meta,
            previous
                .as_ref()
                .map(|(key, value)| EntryRef::new(key, value)),
            Detail::Full,
        )
    }

    /// The user key.
    pub fn key(&self) -> &[u8] {
        &self.bytes[..self.key_len as usize]
    }

    /// Whether the event keeps its value and previous kv.
    pub fn detail(&self) -> Detail {
        self.detail
    }

    /// The new value (empty for a delete). Panics on a [`Detail::Leases`] event.
    pub fn value(&self) -> &[u8] {
        self.assert_full();
        let key_len = self.key_len as usize;
        &self.bytes[key_len..key_len + self.value_len as usize]
    }

    /// The revision of this change.
    pub fn mod_revision(&self) -> i64 {
        self.meta.mod_revision
    }

    /// The key's lease after the change (0 for a delete).
    pub fn lease(&self) -> i64 {
        self.meta.lease
    }

    /// Put: the new kv. Delete: key and mod_revision (the deletion's
    /// revision), the other fields zero, as etcd. Built on each call.
    /// Panics on a [`Detail::Leases`] event.
    pub fn kv(&self) -> KeyValue {
        KeyValue {
            key: self.key().to_vec(),
            create_revision: self.meta.create_revision,
            mod_revision: self.meta.mod_revision,
            version: self.meta.version,
            value: self.value().to_vec(),
            lease: self.meta.lease,
        }
    }

    fn assert_full(&self) {
        assert!(
            self.detail == Detail::Full,
            "an event of Detail::Leases has no value or previous kv"
        );
    }

    /// The tree entry of the key's last put before the change.
    fn previous(&self) -> Option<EntryRef<'_>> {
        self.assert_full();
        let key_len = self.previous_key_len? as usize;
        let start = (self.key_len + self.value_len) as usize;
        let (key, value) = self.bytes[start..].split_at(key_len);
        Some(EntryRef::new(key, value))
    }

    /// The key's state before the change, if it existed (built on each
    /// call). Panics on a [`Detail::Leases`] event.
    pub fn prev_kv(&self) -> Option<KeyValue> {
        self.previous().map(|entry| key_value_of(entry, false))
    }

    /// The lease of the key before the change (0 if it had none or did
    /// not exist), without building its kv.
    pub fn prev_lease(&self) -> i64 {
        self.prev_lease
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        if (self.detail, other.detail) != (Detail::Full, Detail::Full) {
            return self.kind == other.kind
                && self.detail == other.detail
                && self.key() == other.key()
                && self.meta == other.meta
                && self.prev_lease == other.prev_lease;
        }
        self.kind == other.kind && self.kv() == other.kv() && self.prev_kv() == other.prev_kv()
    }
}

impl Eq for Event {}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.detail == Detail::Leases {
            return f
                .debug_struct("Event")
                .field("kind", &self.kind)
                .field("key", &self.key())
                .field("meta", &self.meta)
                .field("prev_lease", &self.prev_lease)
                .finish();
        }
        f.debug_struct("Event")
            .field("kind", &self.kind)
            .field("kv", &self.kv())
            .field("prev_kv", &self.prev_kv())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &[u8], value: &[u8], revisions: (i64, i64, i64), lease: i64) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            create_revision: revisions.0,
            mod_revision: revisions.1,
            version: revisions.2,
            value: value.to_vec(),
            lease,
        }
    }

    #[test]
    fn an_event_gives_back_its_kv_and_previous_kv() {
        let now = kv(b"k\x00ey", b"new value", (3, 9, 4), 77);
        let before = kv(b"k\x00ey", b"old", (3, 6, 3), 55);
        // Any revisions, as given (a kv not read out of the tree).
        let odd = kv(b"", b"", (0, 0, 0), -2);
        let given = Event::new(EventKind::Delete, odd.clone(), Some(odd.clone()));
        assert_eq!((given.kv(), given.prev_kv()), (odd.clone(), Some(odd)));
        let event = Event::new(EventKind::Put, now.clone(), Some(before.clone()));
        assert_eq!(event.key(), b"k\x00ey");
        assert_eq!(event.value(), b"new value");
        assert_eq!((event.mod_revision(), event.lease()), (9, 77));
        assert_eq!(event.kv(), now);
        assert_eq!(event.prev_kv(), Some(before));
        assert_eq!(event.prev_lease(), 55);
        let created = Event::new(EventKind::Put, now.clone(), None);
        assert_eq!((created.prev_kv(), created.prev_lease()), (None, 0));
        assert_ne!(created, event);
        let deleted = Event::new(
            EventKind::Delete,
            kv(b"k\x00ey", b"", (0, 10, 0), 0),
            Some(now.clone()),
        );
        assert_eq!(deleted.value(), b"");
        assert_eq!(deleted.prev_kv(), Some(now));
        assert_eq!(deleted.clone(), deleted);
    }
}

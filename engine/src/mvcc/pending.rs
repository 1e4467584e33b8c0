//! MVCC entries a batch has written and not yet put into the tree.
//!
//! A put used to insert its entry into the tree at once, one descent and
//! one leaf insert per put: every leaf a batch touched was copied, had
//! its bytes moved up for each entry, and was copied again to be cut back
//! at publish (`btree/merge.rs` counts the cost). Instead puts and
//! tombstones go here, in the order written, and [`Store::flush_pending`]
//! merges them into the tree sorted, a leaf at a time
//! ([`merge_run`](crate::btree::merge_run)), before anything reads the
//! tree's MVCC entries: a range or delete inside a txn, a compaction
//! step, a publish, a persist or defrag capturing the root, or when they
//! reach [`PENDING_PUTS_BYTES_MAX`].
//!
//! A put needs its key's newest entry (for version, create revision and
//! the event's previous kv). Everything held here is newer than anything
//! in the tree, so the put looks here first, by a hash of the key's MVCC
//! prefix, and in the tree only when the key has nothing here.
//!
//! [`Store::flush_pending`]: super::Store::flush_pending

use super::key::prefix_of;
use crate::btree::{EntryRef, SortedRun};
use foldhash::fast::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Bytes of entries held back at most before they are merged into the
/// tree (bounded memory; a batch past it merges in stretches).
pub(crate) const PENDING_PUTS_BYTES_MAX: usize = 1 << 20;

/// No entry (the end of a chain).
const NONE: u32 = u32::MAX;

/// One held entry: its key and value are `bytes[start..]`, one after
/// the other.
#[derive(Debug, Clone, Copy)]
struct Held {
    start: u32,
    key_len: u32,
    value_len: u32,
    /// The entry held before it whose prefix hashed the same (`NONE` for
    /// none): the chain a lookup walks when two prefixes share a hash.
    older_same_hash: u32,
}

/// The map's keys are already hashes (foldhash's, seeded at random per
/// store, so keys cannot be picked to collide): used as they are.
#[derive(Default)]
struct HashIsKey(u64);

impl Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in anyway.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The entries held back (see the module comment); `S` hashes prefixes.
#[derive(Default)]
pub(crate) struct PendingPuts<S = RandomState> {
    /// Each entry's key then value, in the order written.
    bytes: Vec<u8>,
    held: Vec<Held>,
    /// Hash of an MVCC prefix -> the newest entry held whose prefix has
    /// that hash.
    newest: HashMap<u64, u32, BuildHasherDefault<HashIsKey>>,
    hasher: S,
    /// The held entries' indices in key order, once [`PendingPuts::sort`]
    /// has run (kept between batches, like the other buffers).
    order: Vec<u32>,
}

impl<S> std::fmt::Debug for PendingPuts<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingPuts")
            .field("entries", &self.held.len())
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl<S: BuildHasher> PendingPuts<S> {
    /// Whether nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// How many entries are held.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Bytes of keys and values held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.len()
    }

    fn held_entry(&self, index: u32) -> EntryRef<'_> {
        let held = self.held[index as usize];
        let start = held.start as usize;
        let key_end = start + held.key_len as usize;
        EntryRef::new(
            &self.bytes[start..key_end],
            &self.bytes[key_end..key_end + held.value_len as usize],
        )
    }

    /// The newest entry held of the key whose MVCC prefix is `prefix`.
    pub(crate) fn newest(&self, prefix: &[u8]) -> Option<EntryRef<'_>> {
        if self.held.is_empty() {
            return None;
        }
        let mut index = *self.newest.get(&self.hasher.hash_one(prefix))?;
        // Chains are as long as the prefixes sharing a 64-bit keyed hash
        // (almost always one), plus that prefix's own older entries.
        while index != NONE {
            let entry = self.held_entry(index);
            if prefix_of(entry.key()) == prefix {
                return Some(entry);
            }
            index = self.held[index as usize].older_same_hash;
        }
        None
    }

    /// Holds the MVCC entry `key` (newer than any held or in the tree for
    /// its prefix) with a value of `value_parts` one after the other.
    pub(crate) fn push(&mut self, key: &[u8], value_parts: &[&[u8]]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(key);
        for part in value_parts {
            self.bytes.extend_from_slice(part);
        }
        let index = u32::try_from(self.held.len()).expect("held entries fit u32");
        let offset = |len: usize| u32::try_from(len).expect("held bytes below 4 GiB");
        let older_same_hash = self
            .newest
            .insert(self.hasher.hash_one(prefix_of(key)), index)
            .unwrap_or(NONE);
        self.held.push(Held {
            start: offset(start),
            key_len: offset(key.len()),
            value_len: offset(self.bytes.len() - start - key.len()),
            older_same_hash,
        });
    }

    /// Puts the entries held in key order, for the [`SortedRun`] this is
    /// until the next push.
    pub(crate) fn sort(&mut self) {
        let Self {
            bytes, held, order, ..
        } = self;
        let key = |index: u32| {
            let held = held[index as usize];
            &bytes[held.start as usize..(held.start + held.key_len) as usize]
        };
        order.clear();
        order.extend(0..held.len() as u32);
        order.sort_unstable_by(|&a, &b| crate::btree::order::compare(key(a), key(b)));
    }

    /// Drops every entry held, keeping the buffers for the next batch.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.held.clear();
        self.newest.clear();
        self.order.clear();
    }
}

impl<S: BuildHasher> SortedRun for PendingPuts<S> {
    fn len(&self) -> usize {
        debug_assert_eq!(
            self.order.len(),
            self.held.len(),
            "sorted since the last push"
        );
        self.order.len()
    }
    fn entry(&self, index: usize) -> EntryRef<'_> {
        self.held_entry(self.order[index])
    }
}

#[cfg(test)]
mod tests {
    use super::super::key::{push_key_prefix, push_revision_suffix};
    use super::super::revision::Revision;
    use super::*;

    fn mvcc_key(user_key: &[u8], main: i64) -> Vec<u8> {
        let mut key = Vec::new();
        push_key_prefix(&mut key, user_key);
        push_revision_suffix(&mut key, Revision::new(main, 0));
        key
    }

    #[test]
    fn the_newest_entry_of_each_prefix_and_key_order() {
        let mut pending: PendingPuts = PendingPuts::default();
        let keys: Vec<Vec<u8>> = (0..500u32)
            .map(|i| format!("k{}", i % 200).into_bytes())
            .collect();
        for (index, key) in keys.iter().enumerate() {
            pending.push(&mvcc_key(key, index as i64 + 2), &[b"v", &[index as u8]]);
        }
        for user_key in 0..200u32 {
            let user_key = format!("k{user_key}").into_bytes();
            let newest = keys.iter().rposition(|key| *key == user_key).unwrap();
            let mut prefix = Vec::new();
            push_key_prefix(&mut prefix, &user_key);
            let entry = pending.newest(&prefix).expect("held");
            assert_eq!(entry.key(), mvcc_key(&user_key, newest as i64 + 2));
            assert_eq!(entry.value(), [b'v', newest as u8]);
        }
        let mut absent = Vec::new();
        push_key_prefix(&mut absent, b"k200");
        assert!(pending.newest(&absent).is_none());
        pending.sort();
        assert_eq!(SortedRun::len(&pending), 500);
        let key = |index| SortedRun::entry(&pending, index).key().to_vec();
        assert!((1..500).all(|index| key(index - 1) < key(index)));
        pending.clear();
        assert!(pending.is_empty() && pending.newest(&absent).is_none());
    }

    /// Hashes every prefix to the same value.
    #[derive(Default)]
    struct OneHash;

    impl Hasher for OneHash {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _bytes: &[u8]) {}
    }

    #[test]
    fn prefixes_sharing_a_hash_are_told_apart() {
        let mut pending = PendingPuts::<BuildHasherDefault<OneHash>>::default();
        for (index, user_key) in [b"a", b"b", b"c", b"a"].iter().enumerate() {
            pending.push(&mvcc_key(*user_key, index as i64 + 2), &[&[index as u8]]);
        }
        assert_eq!(pending.newest.len(), 1, "one hash for all");
        let newest = |user_key: &[u8]| {
            let mut prefix = Vec::new();
            push_key_prefix(&mut prefix, user_key);
            pending.newest(&prefix).map(|entry| entry.value()[0])
        };
        assert_eq!(newest(b"a"), Some(3));
        assert_eq!(newest(b"b"), Some(1));
        assert_eq!(newest(b"c"), Some(2));
        assert_eq!(newest(b"d"), None);
    }
}

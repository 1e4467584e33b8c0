//! A leaf's entries in one buffer.
//!
//! A leaf keeps its entries as the bytes of its on-disk payload
//! (`key_len u32, value_len u32, key, value` per entry, little-endian, in
//! key order; `node.rs` documents the page) plus where each entry starts.
//! So a copy-on-write copy of a leaf is two `memcpy`s, not a reference
//! count per entry; inserting an entry moves the bytes after it within
//! the buffer instead of allocating the entry; compaction frees whole
//! buffers, not one allocation per entry; and persisting a leaf copies its
//! buffer as it is.
//!
//! Entries are read as [`EntryRef`]s borrowing the buffer; an owned
//! [`Entry`] is made (one allocation) only where an entry must outlive the
//! leaf's borrow.
//!
//! Buffers are sized for the batch that changes them: a copy gets a
//! whole leaf's buffer ([`FULL_LEAF_CAPACITY_BYTES`]), which holds it
//! however many entries the batch inserts until it splits, and when the
//! batch commits every leaf it changed is cut back to fit ([`Leaf::fit`],
//! `node::fit_changed`) unless it nearly fills its buffer: a later batch
//! copies the leaf again rather than growing it, so room left in a
//! published leaf would only be wasted.
//! Whole-leaf buffers are reused: a leaf cut back, or dropped (the old
//! copies a published view held) on the writing thread, gives its buffer
//! to that thread's bounded spare list, which the next copies take from,
//! instead of glibc's large-chunk path and fresh pages each time.

use super::entry::{Entry, EntryRef};
use super::node::{PayloadProblem, KEY_BYTES_MAX, NODE_PAYLOAD_BYTES_TARGET, VALUE_BYTES_MAX};
use super::order;
use std::cmp::Ordering;

/// Bytes of an entry's length fields (key and value length, u32 each).
pub const ENTRY_HEADER_BYTES: usize = 8;

/// Room a copied or split leaf's buffer gets beyond its bytes, at least.
const COPY_ROOM_BYTES_MIN: usize = 512;
/// Room [`Leaf::fit`] leaves a buffer, at most: a leaf within this of its
/// whole-leaf buffer keeps it (at most an eighth of the buffer unused)
/// instead of being copied once more at commit, and its buffer goes back
/// to the spare list when the leaf is dropped. At 64 bytes, a batch of
/// 1000 puts over a key range copied nearly every leaf it changed twice;
/// at 1024 it ran about 7% faster (median of six alternating runs) and
/// the server's peak RSS after 100k puts did not move.
pub(super) const FIT_SLACK_BYTES: usize = 1024;
/// The buffer a leaf fills before it splits, and one more small entry.
pub const FULL_LEAF_CAPACITY_BYTES: usize = NODE_PAYLOAD_BYTES_TARGET + COPY_ROOM_BYTES_MIN;

/// Sorted entries in one buffer (see the module comment).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leaf {
    /// The payload: every entry's record, in key order.
    bytes: Vec<u8>,
    /// Where each entry's record starts in `bytes`, ascending.
    starts: Vec<u32>,
}

impl Clone for Leaf {
    fn clone(&self) -> Leaf {
        self.copy_with_room(0)
    }
}

impl Drop for Leaf {
    fn drop(&mut self) {
        if self.bytes.capacity() == FULL_LEAF_CAPACITY_BYTES {
            let bytes = std::mem::take(&mut self.bytes);
            recycle(bytes);
        }
    }
}

/// Most whole-leaf buffers a thread keeps for reuse (bounded memory: this
/// many times [`FULL_LEAF_CAPACITY_BYTES`] per writing thread).
const SPARE_BUFFERS_MAX: usize = 256;

thread_local! {
    /// This thread's spare whole-leaf buffers; `None` until it asks for one
    /// (only a writer copies leaves), so a thread that only drops views (a
    /// shard core's reads) frees what it drops instead of keeping it. Per
    /// thread: no lock shared between cores.
    static SPARE_BUFFERS: std::cell::RefCell<Option<Vec<Vec<u8>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Keeps `bytes` for this thread's next whole-leaf buffer if this thread
/// writes leaves and has room for it; frees it otherwise.
fn recycle(mut bytes: Vec<u8>) {
    bytes.clear();
    // During thread exit the list may be gone already: then just free.
    let _ = SPARE_BUFFERS.try_with(|spare| {
        if let Some(spare) = spare.borrow_mut().as_mut() {
            if spare.len() < SPARE_BUFFERS_MAX {
                spare.push(std::mem::take(&mut bytes));
            }
        }
    });
}

/// A buffer of `capacity` bytes, empty; whole-leaf ones are reused.
fn buffer(capacity: usize) -> Vec<u8> {
    if capacity == FULL_LEAF_CAPACITY_BYTES {
        let spare = SPARE_BUFFERS
            .try_with(|spare| {
                spare
                    .borrow_mut()
                    .get_or_insert_with(|| Vec::with_capacity(SPARE_BUFFERS_MAX))
                    .pop()
            })
            .ok()
            .flatten();
        if let Some(bytes) = spare {
            return bytes;
        }
    }
    Vec::with_capacity(capacity)
}

fn u32_at(bytes: &[u8], offset: usize) -> usize {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize
}

/// `len` as a buffer offset; leaves stay far below 4 GiB (a leaf over a
/// page splits, and one entry is at most [`VALUE_BYTES_MAX`] plus
/// [`KEY_BYTES_MAX`]).
fn offset_u32(len: usize) -> u32 {
    u32::try_from(len).expect("a leaf buffer below 4 GiB")
}

impl Leaf {
    /// An empty leaf.
    pub const fn new() -> Leaf {
        Leaf {
            bytes: Vec::new(),
            starts: Vec::new(),
        }
    }

    /// A leaf of `entries` (ascending keys, checked).
    pub fn from_entries<'e>(entries: impl IntoIterator<Item = EntryRef<'e>>) -> Leaf {
        let mut leaf = Leaf::new();
        for entry in entries {
            assert!(
                leaf.last().is_none_or(|last| last.key() < entry.key()),
                "leaf keys ascend"
            );
            leaf.insert(leaf.len(), entry.key(), entry.value(), &[]);
        }
        leaf
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The on-disk payload: every entry, in key order.
    pub fn payload(&self) -> &[u8] {
        &self.bytes
    }

    /// Where entry `index`'s record starts and ends in the buffer.
    fn bounds(&self, index: usize) -> (usize, usize) {
        let start = self.starts[index] as usize;
        let end = match self.starts.get(index + 1) {
            Some(&next) => next as usize,
            None => self.bytes.len(),
        };
        (start, end)
    }

    /// The record starting at `start`, one of `starts`.
    #[inline]
    fn record_at(&self, start: usize) -> EntryRef<'_> {
        debug_assert!(self.starts.binary_search(&offset_u32(start)).is_ok());
        debug_assert!(start + ENTRY_HEADER_BYTES <= self.bytes.len());
        // SAFETY: `start` is one of `starts`, and every start begins a whole
        // record inside `bytes`: its 8 length bytes, then as many key and
        // value bytes as they say, all below `bytes.len()`. Every change in
        // this file keeps that (`insert` writes whole records, the others
        // move whole records and their starts together) and `decode` checks
        // it of the bytes it is given, so the reads and both slices stay
        // inside the buffer, which `&self` keeps alive and unchanged for the
        // returned borrow.
        unsafe {
            let header = self.bytes.as_ptr().add(start);
            let key_len = u32::from_le_bytes(header.cast::<[u8; 4]>().read_unaligned()) as usize;
            let value_len =
                u32::from_le_bytes(header.add(4).cast::<[u8; 4]>().read_unaligned()) as usize;
            debug_assert!(start + ENTRY_HEADER_BYTES + key_len + value_len <= self.bytes.len());
            let key_start = header.add(ENTRY_HEADER_BYTES);
            EntryRef {
                key: std::slice::from_raw_parts(key_start, key_len),
                value: std::slice::from_raw_parts(key_start.add(key_len), value_len),
            }
        }
    }

    /// Entry `index`, which must exist.
    #[inline]
    pub fn entry(&self, index: usize) -> EntryRef<'_> {
        self.record_at(self.starts[index] as usize)
    }

    /// Entry `index`, if there is one.
    #[inline]
    pub fn get(&self, index: usize) -> Option<EntryRef<'_>> {
        let start = *self.starts.get(index)?;
        Some(self.record_at(start as usize))
    }

    /// The key of entry `index`, which must exist.
    #[inline]
    pub fn key(&self, index: usize) -> &[u8] {
        self.entry(index).key()
    }

    /// The first entry.
    pub fn first(&self) -> Option<EntryRef<'_>> {
        self.get(0)
    }

    /// The last entry.
    pub fn last(&self) -> Option<EntryRef<'_>> {
        self.len().checked_sub(1).map(|index| self.entry(index))
    }

    /// Bytes entry `index` takes in the payload.
    pub fn encoded_len(&self, index: usize) -> usize {
        let (start, end) = self.bounds(index);
        end - start
    }

    /// Removes every entry, keeping the buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.starts.clear();
    }

    /// Bytes the buffer has room for beyond the payload.
    pub fn spare_bytes(&self) -> usize {
        self.bytes.capacity() - self.bytes.len()
    }

    /// Bytes entries `index..` take in the payload.
    pub fn bytes_from(&self, index: usize) -> usize {
        match self.starts.get(index) {
            Some(&start) => self.bytes.len() - start as usize,
            None => 0,
        }
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = EntryRef<'_>> + '_ {
        (0..self.len()).map(|index| self.entry(index))
    }

    /// Inserts an entry of `key` whose value is `head` then `tail`'s parts
    /// so that it becomes entry `index` (the caller keeps keys ascending).
    pub fn insert(&mut self, index: usize, key: &[u8], head: &[u8], tail: &[&[u8]]) {
        assert!(index <= self.len(), "insert past the end");
        let value_len = head.len() + tail.iter().map(|part| part.len()).sum::<usize>();
        assert!(key.len() <= KEY_BYTES_MAX, "key of {} bytes", key.len());
        assert!(value_len <= VALUE_BYTES_MAX, "value of {value_len} bytes");
        let record_len = ENTRY_HEADER_BYTES + key.len() + value_len;
        let at = match self.starts.get(index) {
            Some(&start) => start as usize,
            None => self.bytes.len(),
        };
        let old_len = self.bytes.len();
        offset_u32(old_len + record_len);
        if old_len + record_len > self.bytes.capacity()
            && old_len + record_len <= FULL_LEAF_CAPACITY_BYTES
        {
            let mut full = buffer(FULL_LEAF_CAPACITY_BYTES);
            full.extend_from_slice(&self.bytes);
            self.bytes = full;
        }
        let lengths = [
            (key.len() as u32).to_le_bytes(),
            (value_len as u32).to_le_bytes(),
        ];
        let parts = [&lengths[0][..], &lengths[1][..], key, head]
            .into_iter()
            .chain(tail.iter().copied());
        if at == old_len {
            // An append: the record goes after the buffer's bytes.
            self.bytes.reserve(record_len);
            for part in parts {
                self.bytes.extend_from_slice(part);
            }
            assert_eq!(
                self.bytes.len(),
                old_len + record_len,
                "every byte of the record"
            );
            self.starts.push(offset_u32(at));
            return;
        }
        // Open a gap of `record_len` at `at` (the bytes after it move up),
        // then fill it.
        self.bytes.resize(old_len + record_len, 0);
        self.bytes.copy_within(at..old_len, at + record_len);
        let mut write = at;
        for part in parts {
            self.bytes[write..write + part.len()].copy_from_slice(part);
            write += part.len();
        }
        assert_eq!(write, at + record_len, "every byte of the record");
        self.starts.insert(index, offset_u32(at));
        let moved = offset_u32(record_len);
        for start in &mut self.starts[index + 1..] {
            *start += moved;
        }
    }

    /// Removes entry `index` and returns it.
    pub fn remove(&mut self, index: usize) -> Entry {
        let entry = self.entry(index).to_entry();
        let (start, end) = self.bounds(index);
        self.bytes.drain(start..end);
        self.starts.remove(index);
        let moved = offset_u32(end - start);
        for start in &mut self.starts[index..] {
            *start -= moved;
        }
        entry
    }

    /// Keeps only the entries `keep` is true for, in order; returns how
    /// many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(EntryRef<'_>) -> bool) -> usize {
        let count = self.len();
        let mut kept = 0;
        let mut write = 0;
        for index in 0..count {
            // Entries before `index` only ever move down, to `write` <=
            // their start: entry `index` and everything after it are still
            // where `starts` says.
            let (start, end) = self.bounds(index);
            if !keep(self.entry(index)) {
                continue;
            }
            if write != start {
                self.bytes.copy_within(start..end, write);
            }
            self.starts[kept] = offset_u32(write);
            kept += 1;
            write += end - start;
        }
        self.bytes.truncate(write);
        self.starts.truncate(kept);
        count - kept
    }

    /// A copy without the entries whose keys are in `sorted_keys`
    /// (ascending), in a whole-leaf buffer like any copy, and how many went;
    /// `None` when none of those keys is here.
    pub fn without_sorted(&self, sorted_keys: &[&[u8]]) -> Option<(Leaf, usize)> {
        let mut kept = Leaf {
            bytes: buffer(copy_capacity(self.bytes.len())),
            starts: Vec::with_capacity(self.len()),
        };
        // Kept entries are copied a run at a time: one copy per stretch
        // between two removed entries, not one per entry.
        let mut next = 0;
        let mut removed = 0;
        let mut run_start = 0;
        for index in 0..self.len() {
            let key = self.key(index);
            let mut doomed = false;
            while let Some(&candidate) = sorted_keys.get(next) {
                match order::compare(candidate, key) {
                    Ordering::Less => next += 1,
                    Ordering::Equal => {
                        doomed = true;
                        next += 1;
                        break;
                    }
                    Ordering::Greater => break,
                }
            }
            if doomed {
                kept.append_run(self, run_start, index);
                run_start = index + 1;
                removed += 1;
            }
        }
        if removed == 0 {
            return None;
        }
        kept.append_run(self, run_start, self.len());
        Some((kept, removed))
    }

    /// Splits off entries `cut..` into a new leaf whose buffer has room
    /// for `capacity` bytes at least.
    pub fn split_off(&mut self, cut: usize, capacity: usize) -> Leaf {
        assert!(cut <= self.len());
        let right_len = self.bytes_from(cut);
        let at = self.bytes.len() - right_len;
        let mut bytes = buffer(capacity.max(right_len));
        bytes.extend_from_slice(&self.bytes[at..]);
        let mut starts = Vec::with_capacity(self.len().max(4));
        starts.extend(
            self.starts[cut..]
                .iter()
                .map(|start| start - offset_u32(at)),
        );
        self.bytes.truncate(at);
        self.starts.truncate(cut);
        Leaf { bytes, starts }
    }

    /// Cuts the buffer back to its bytes when it has more than
    /// `FIT_SLACK_BYTES` to spare (a whole-leaf buffer goes back to the
    /// spare list): a published leaf never grows (the next batch copies
    /// it), so room left in it is waste. A copy, not `shrink_to_fit`:
    /// shrinking in place saved the copy (put batches about 10% faster)
    /// but the tails glibc split off the blocks fragmented the heap (the
    /// server's peak RSS after 100k puts went from 77-80 to 97-120 MiB).
    pub fn fit(&mut self) {
        if self.bytes.capacity() > self.bytes.len() + FIT_SLACK_BYTES {
            let mut bytes = Vec::with_capacity(self.bytes.len());
            bytes.extend_from_slice(&self.bytes);
            let spare = std::mem::replace(&mut self.bytes, bytes);
            if spare.capacity() == FULL_LEAF_CAPACITY_BYTES {
                recycle(spare);
            }
        }
    }

    /// Appends `other`'s entries (every key of `other` above this leaf's).
    pub fn append(&mut self, other: &Leaf) {
        debug_assert!(match (self.last(), other.first()) {
            (Some(last), Some(first)) => last.key() < first.key(),
            _ => true,
        });
        self.append_run(other, 0, other.len());
    }

    /// Appends `source`'s entries `first..end` (keys above this leaf's)
    /// with one copy of their bytes.
    pub(super) fn append_run(&mut self, source: &Leaf, first: usize, end: usize) {
        if first == end {
            return;
        }
        let from = source.starts[first];
        let to = match source.starts.get(end) {
            Some(&next) => next as usize,
            None => source.bytes.len(),
        };
        let base = offset_u32(self.bytes.len());
        offset_u32(self.bytes.len() + (to - from as usize));
        self.bytes
            .extend_from_slice(&source.bytes[from as usize..to]);
        self.starts.extend(
            source.starts[first..end]
                .iter()
                .map(|start| start - from + base),
        );
    }

    /// A copy whose buffer and starts have room to grow: the copies a
    /// batch makes are what it inserts into next.
    pub fn copy_with_room(&self, room_items: usize) -> Leaf {
        let mut bytes = buffer(copy_capacity(self.bytes.len()));
        bytes.extend_from_slice(&self.bytes);
        let mut starts = Vec::with_capacity(self.starts.len() + room_items);
        starts.extend_from_slice(&self.starts);
        Leaf { bytes, starts }
    }

    /// Decodes a leaf payload of `entry_count` entries.
    pub fn decode(payload: &[u8], entry_count: u32) -> Result<Leaf, PayloadProblem> {
        let mut starts: Vec<u32> = Vec::with_capacity(entry_count.min(1 << 16) as usize);
        let mut at = 0usize;
        let mut previous_key: Option<(usize, usize)> = None;
        for _ in 0..entry_count {
            if at + 4 > payload.len() {
                return Err((at, "node payload ends early"));
            }
            if at + ENTRY_HEADER_BYTES > payload.len() {
                return Err((at + 4, "node payload ends early"));
            }
            let header_end = at + ENTRY_HEADER_BYTES;
            let key_len = u32_at(payload, at);
            let value_len = u32_at(payload, at + 4);
            if key_len > KEY_BYTES_MAX || value_len > VALUE_BYTES_MAX {
                return Err((at, "leaf entry length out of range"));
            }
            if header_end + key_len > payload.len() {
                return Err((header_end, "node payload ends early"));
            }
            let end = header_end + key_len + value_len;
            if end > payload.len() {
                return Err((header_end + key_len, "node payload ends early"));
            }
            let key = (header_end, header_end + key_len);
            if let Some((from, to)) = previous_key {
                if payload[from..to] >= payload[key.0..key.1] {
                    return Err((at, "leaf keys out of order"));
                }
            }
            previous_key = Some(key);
            starts.push(offset_u32(at));
            at = end;
        }
        if at != payload.len() {
            return Err((at, "trailing bytes in leaf payload"));
        }
        Ok(Leaf {
            bytes: payload.to_vec(),
            starts,
        })
    }
}

/// The capacity a copy of a buffer of `len` bytes gets: a whole leaf's
/// (see the module comment), or `len` and `COPY_ROOM_BYTES_MIN` for a
/// leaf past that (a large entry).
pub fn copy_capacity(len: usize) -> usize {
    FULL_LEAF_CAPACITY_BYTES.max(len + COPY_ROOM_BYTES_MIN)
}

#[cfg(test)]
mod tests {
    use super::super::test_random::XorShift;
    use super::*;
    use std::collections::BTreeMap;

    fn check(leaf: &Leaf, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
        assert_eq!(leaf.len(), model.len());
        for (entry, (key, value)) in leaf.iter().zip(model) {
            assert_eq!(entry.key(), key.as_slice());
            assert_eq!(entry.value(), value.as_slice());
        }
        let payload_len: usize = model
            .iter()
            .map(|(key, value)| ENTRY_HEADER_BYTES + key.len() + value.len())
            .sum();
        assert_eq!(leaf.payload().len(), payload_len);
        let decoded = Leaf::decode(leaf.payload(), leaf.len() as u32).expect("decodes");
        assert_eq!(&decoded, leaf);
    }

    #[test]
    fn random_inserts_removals_splits_and_appends_match_a_model() {
        for seed in 1..=8u64 {
            let mut random = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut leaf = Leaf::new();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for step in 0..2000 {
                let key = format!("k{:03}", random.next() % 200).into_bytes();
                match random.next() % 8 {
                    0..=4 => {
                        let value = vec![b'v'; (random.next() % 40) as usize];
                        let index = model.range(..key.clone()).count();
                        if model.contains_key(&key) {
                            let old = leaf.remove(index);
                            assert_eq!(old.key(), key.as_slice());
                            assert_eq!(old.value(), model[&key].as_slice());
                        }
                        let (head, tail) = value.split_at(value.len() / 3);
                        leaf.insert(index, &key, head, &[tail]);
                        model.insert(key, value);
                    }
                    5 => {
                        let modulus = 2 + random.next() % 5;
                        let keep = |key: &[u8], value: &[u8]| {
                            !((key.len() + value.len()) as u64).is_multiple_of(modulus)
                        };
                        let removed = leaf.retain(|entry| keep(entry.key(), entry.value()));
                        let before = model.len();
                        model.retain(|key, value| keep(key, value));
                        assert_eq!(removed, before - model.len());
                    }
                    6 => {
                        let cut = (random.next() as usize) % (leaf.len() + 1);
                        let right = leaf.split_off(cut, (step % 3) * 100);
                        let right_keys: Vec<Vec<u8>> = model.keys().skip(cut).cloned().collect();
                        assert_eq!(right.len(), right_keys.len());
                        for (entry, key) in right.iter().zip(&right_keys) {
                            assert_eq!(entry.key(), key.as_slice());
                        }
                        leaf.append(&right);
                    }
                    7 if step.is_multiple_of(2) => {
                        let doomed: Vec<Vec<u8>> = model
                            .keys()
                            .filter(|_| random.next().is_multiple_of(3))
                            .cloned()
                            .chain(std::iter::once(b"k999".to_vec()))
                            .collect();
                        let doomed_refs: Vec<&[u8]> = doomed.iter().map(Vec::as_slice).collect();
                        let present = doomed.iter().filter(|key| model.contains_key(*key)).count();
                        match leaf.without_sorted(&doomed_refs) {
                            None => assert_eq!(present, 0),
                            Some((kept, removed)) => {
                                assert_eq!(removed, present);
                                for key in &doomed {
                                    model.remove(key);
                                }
                                leaf = kept;
                            }
                        }
                    }
                    _ => {
                        let copy = leaf.copy_with_room(step % 5);
                        assert_eq!(copy, leaf);
                        leaf = copy;
                    }
                }
                check(&leaf, &model);
            }
        }
    }

    #[test]
    fn decode_rejects_bad_payloads() {
        let leaf = Leaf::from_entries([EntryRef::new(b"a", b"1"), EntryRef::new(b"b", b"22")]);
        let payload = leaf.payload().to_vec();
        assert_eq!(Leaf::decode(&payload, 2).unwrap(), leaf);
        assert_eq!(
            Leaf::decode(&payload[..payload.len() - 1], 2),
            Err((19, "node payload ends early"))
        );
        assert_eq!(
            Leaf::decode(&payload, 1),
            Err((10, "trailing bytes in leaf payload"))
        );
        let swapped = Leaf::from_entries([EntryRef::new(b"a", b"1")]);
        let mut out_of_order = Leaf::from_entries([EntryRef::new(b"b", b"22")])
            .payload()
            .to_vec();
        out_of_order.extend_from_slice(swapped.payload());
        assert_eq!(
            Leaf::decode(&out_of_order, 2),
            Err((11, "leaf keys out of order"))
        );
        let mut too_long = payload.clone();
        too_long[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Leaf::decode(&too_long, 2),
            Err((0, "leaf entry length out of range"))
        );
    }

    fn spare_count() -> Option<usize> {
        SPARE_BUFFERS.with(|spare| spare.borrow().as_ref().map(Vec::len))
    }

    #[test]
    fn only_a_thread_that_copies_leaves_keeps_spare_buffers() {
        let leaf = Leaf::from_entries([EntryRef::new(b"a", b"1")]);
        // A reader: drops a whole-leaf buffer it did not ask for, keeps none.
        let copy = leaf.copy_with_room(0);
        std::thread::spawn(move || {
            assert_eq!(copy.bytes.capacity(), FULL_LEAF_CAPACITY_BYTES);
            drop(copy);
            assert_eq!(spare_count(), None);
        })
        .join()
        .unwrap();
        // A writer: its copies' buffers come back to it, up to the bound.
        std::thread::spawn(move || {
            let copies: Vec<Leaf> = (0..SPARE_BUFFERS_MAX + 5)
                .map(|_| leaf.copy_with_room(0))
                .collect();
            assert_eq!(spare_count(), Some(0));
            drop(copies);
            assert_eq!(spare_count(), Some(SPARE_BUFFERS_MAX));
            let reused = leaf.copy_with_room(0);
            assert_eq!(spare_count(), Some(SPARE_BUFFERS_MAX - 1));
            assert_eq!(reused, leaf);
        })
        .join()
        .unwrap();
    }
}

//! Searching a node's sorted keys through their heads.
//!
//! A node's keys are separate allocations, so a binary search over them
//! touches a new cache line per probe, and keys of one node mostly share a
//! long prefix (`key/0001…`, or an MVCC prefix and most of a revision), so
//! each comparison walks that prefix again. [`Heads`] keeps, beside the
//! keys, the length of the prefix all of them share and each key's next
//! eight bytes as a big-endian word (zero-padded): a search compares the
//! probe with the prefix once, then binary-searches the words, which lie
//! together, and reads a key itself only where its word equals the probe's.
//!
//! Zero padding keeps the words in key order (`a < b` gives
//! `head(a) <= head(b)`), and unequal words order as their keys do, so the
//! search returns exactly what a search over the keys would.

use super::order;
use std::cmp::Ordering;

/// Bytes of a key a head holds.
const HEAD_BYTES: usize = 8;

/// The prefix length and heads of a sorted list of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heads {
    /// Bytes every key starts with (those of the first key).
    prefix_len: usize,
    /// Each key's `HEAD_BYTES` after the prefix, zero-padded, big-endian.
    words: Vec<u64>,
}

/// The `HEAD_BYTES` of `key` from `from` as a big-endian word, zero-padded
/// past its end.
fn head_at(key: &[u8], from: usize) -> u64 {
    if let Some(word) = key.get(from..from + HEAD_BYTES) {
        return u64::from_be_bytes(word.try_into().expect("8 bytes"));
    }
    let mut bytes = [0u8; HEAD_BYTES];
    let tail = key.get(from..).unwrap_or(&[]);
    let take = tail.len().min(HEAD_BYTES);
    bytes[..take].copy_from_slice(&tail[..take]);
    u64::from_be_bytes(bytes)
}

/// Bytes `a` and `b` share at their start.
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Heads {
    /// The heads of `count` sorted keys, `key(i)` being the i-th. Room is
    /// left for `room` more.
    pub fn of<'k>(count: usize, room: usize, key: impl Fn(usize) -> &'k [u8]) -> Heads {
        if count == 0 {
            return Heads::default();
        }
        // Sorted keys: what the first and last share, all share.
        let prefix_len = common_prefix_len(key(0), key(count - 1));
        let mut words = Vec::with_capacity(count + room);
        words.extend((0..count).map(|index| head_at(key(index), prefix_len)));
        Heads { prefix_len, words }
    }

    /// How many keys there are heads of.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// A copy with room for `room` more heads.
    pub fn copy_with_room(&self, room: usize) -> Heads {
        let mut words = Vec::with_capacity(self.words.len() + room);
        words.extend_from_slice(&self.words);
        Heads {
            prefix_len: self.prefix_len,
            words,
        }
    }

    /// Adds the head of `key`, which goes at `index` among the keys,
    /// `first_key` being the first of them, if `key` shares their prefix
    /// (always so between two keys): the prefix, the longest the first
    /// and last keys share, stays the same. False, changing nothing, when
    /// it does not: the caller counts the heads afresh.
    pub fn insert(&mut self, index: usize, key: &[u8], first_key: &[u8]) -> bool {
        assert!(index <= self.words.len());
        let between = index > 0 && index < self.words.len();
        let shares = !self.words.is_empty()
            && key.len() >= self.prefix_len
            && key[..self.prefix_len] == first_key[..self.prefix_len];
        debug_assert!(!between || shares, "a key between two shares their prefix");
        if !shares {
            return false;
        }
        self.words.insert(index, head_at(key, self.prefix_len));
        true
    }

    /// The number of keys below `probe` (`inclusive`: at or below it):
    /// `partition_point` over the keys, `key(i)` being the i-th of those
    /// these heads were made of.
    pub fn count_below<'k>(
        &self,
        probe: &[u8],
        inclusive: bool,
        key: impl Fn(usize) -> &'k [u8],
    ) -> usize {
        let count = self.words.len();
        if count == 0 {
            return 0;
        }
        let prefix = &key(0)[..self.prefix_len];
        let probe_prefix = &probe[..self.prefix_len.min(probe.len())];
        match order::compare(probe_prefix, prefix) {
            // A probe shorter than the prefix and equal to its start is below
            // every key, as is one whose prefix part is below it.
            Ordering::Less => return 0,
            Ordering::Equal if probe.len() < self.prefix_len => return 0,
            Ordering::Greater => return count,
            Ordering::Equal => {}
        }
        let probe_head = head_at(probe, self.prefix_len);
        let below = |index: usize| match self.words[index].cmp(&probe_head) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => match order::compare(key(index), probe) {
                Ordering::Less => true,
                Ordering::Equal => inclusive,
                Ordering::Greater => false,
            },
        };
        // Binary search for the first index not below.
        let (mut low, mut high) = (0, count);
        while low < high {
            let middle = low + (high - low) / 2;
            if below(middle) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_random::XorShift;

    /// Keys from a small alphabet with a shared start, so prefixes,
    /// zero bytes and keys that are prefixes of others are common.
    fn random_key(random: &mut XorShift, shared: &[u8]) -> Vec<u8> {
        let mut key = shared[..random.below(shared.len() as u64 + 1) as usize].to_vec();
        let extra = random.below(14) as usize;
        key.extend((0..extra).map(|_| [0u8, 1, 0x7f, 0xff][random.below(4) as usize]));
        key
    }

    #[test]
    fn a_key_inserted_between_two_gets_the_head_a_recount_gives() {
        let mut random = XorShift(0x2f1e_33aa_9c0d_4b17);
        for _ in 0..500 {
            let shared: Vec<u8> = (0..(random.next() % 12)).map(|i| i as u8 + 1).collect();
            let mut keys: Vec<Vec<u8>> = (0..3 + random.next() % 30)
                .map(|_| random_key(&mut random, &shared))
                .collect();
            keys.sort();
            keys.dedup();
            let Some(new_key) = (0..50)
                .map(|_| random_key(&mut random, &shared))
                .find(|key| {
                    keys.first().is_some_and(|first| first < key)
                        && keys.last().is_some_and(|last| key < last)
                        && !keys.contains(key)
                })
            else {
                continue;
            };
            let mut heads = Heads::of(keys.len(), 1, |index| &keys[index]);
            let index = keys.partition_point(|key| key < &new_key);
            assert!(heads.insert(index, &new_key, &keys[0]));
            keys.insert(index, new_key);
            // The first and last keys stay, so the prefix does too.
            assert_eq!(heads, Heads::of(keys.len(), 0, |index| &keys[index]));
            for probe in &keys {
                assert_eq!(
                    heads.count_below(probe, false, |index| &keys[index]),
                    keys.partition_point(|key| key < probe)
                );
            }
        }
    }

    #[test]
    fn a_key_added_at_either_end_is_added_only_with_the_prefix() {
        let mut random = XorShift(0x7c3a_91e5_0b44_d2f1);
        let (mut added, mut refused) = (0, 0);
        for _ in 0..3000 {
            let shared: Vec<u8> = (0..(random.next() % 12)).map(|i| i as u8 + 1).collect();
            let mut keys: Vec<Vec<u8>> = (0..1 + random.next() % 20)
                .map(|_| random_key(&mut random, &shared))
                .collect();
            keys.sort();
            keys.dedup();
            let new_key = random_key(&mut random, &shared);
            if keys.contains(&new_key) {
                continue;
            }
            let index = keys.partition_point(|key| key < &new_key);
            let mut heads = Heads::of(keys.len(), 0, |index| &keys[index]);
            let before = heads.clone();
            let first = keys[0].clone();
            keys.insert(index, new_key.clone());
            if heads.insert(index, &new_key, &first) {
                added += 1;
                assert_eq!(heads, Heads::of(keys.len(), 0, |index| &keys[index]));
            } else {
                refused += 1;
                assert_eq!(heads, before, "nothing changed");
                assert!(!new_key.starts_with(&first[..before.prefix_len]));
            }
        }
        assert!(
            added > 100 && refused > 100,
            "{added} added, {refused} refused"
        );
    }

    #[test]
    fn counts_exactly_as_partition_point_over_the_keys() {
        let mut random = XorShift(0x5851_f42d_4c95_7f2d);
        for round in 0..3000 {
            let shared: Vec<u8> = (0..(random.next() % 20)).map(|i| i as u8 + 1).collect();
            let mut keys: Vec<Vec<u8>> = (0..(random.next() % 40))
                .map(|_| random_key(&mut random, &shared))
                .collect();
            keys.sort();
            keys.dedup();
            let heads = Heads::of(keys.len(), 0, |index| &keys[index]);
            assert_eq!(heads.len(), keys.len());
            for _ in 0..30 {
                let probe = if !keys.is_empty() && random.next().is_multiple_of(3) {
                    keys[(random.next() % keys.len() as u64) as usize].clone()
                } else {
                    random_key(&mut random, &shared)
                };
                assert_eq!(
                    heads.count_below(&probe, false, |index| &keys[index]),
                    keys.partition_point(|key| key < &probe),
                    "round {round}: {probe:?} in {keys:?}"
                );
                assert_eq!(
                    heads.count_below(&probe, true, |index| &keys[index]),
                    keys.partition_point(|key| key <= &probe),
                    "round {round}: {probe:?} in {keys:?}"
                );
            }
        }
    }
}

//! A range of user keys in etcd's terms (`key` + `range_end`), as bounds on
//! encoded key prefixes, shared by range scans and the watch history.

use super::key::{key_prefix, past_prefix};
use crate::btree::{Cursor, Node};

/// Where a range stops, as an encoded key prefix.
enum RangeEnd {
    /// Only the start key.
    Single,
    /// Keys below this.
    Before(Vec<u8>),
    /// Every key from the start.
    Unbounded,
}

/// A non-empty user-key range over encoded key prefixes.
pub(crate) struct KeyRange {
    /// The encoded prefix of the first key (seek here).
    start: Vec<u8>,
    end: RangeEnd,
}

impl KeyRange {
    /// etcd's meaning: empty `range_end` = just `key`; `range_end == [0]` =
    /// every key >= `key`; else `[key, range_end)`. `None` when that is
    /// empty (`range_end <= key`).
    pub(crate) fn new(key: &[u8], range_end: &[u8]) -> Option<KeyRange> {
        let end = if range_end.is_empty() {
            RangeEnd::Single
        } else if range_end == [0] {
            RangeEnd::Unbounded
        } else if range_end <= key {
            return None;
        } else {
            RangeEnd::Before(key_prefix(range_end))
        };
        Some(KeyRange {
            start: key_prefix(key),
            end,
        })
    }

    /// The encoded prefix of the first key: a scan seeks here.
    pub(crate) fn start(&self) -> &[u8] {
        &self.start
    }

    /// A cursor at the last tree entry of the range's last key, or (when
    /// nothing at or above [`KeyRange::start`] is in range) before it: a
    /// reverse scan starts here and stops below [`KeyRange::start`].
    pub(crate) fn seek_last<'a>(&self, root: &'a Node) -> Cursor<'a> {
        match &self.end {
            // Above every entry of the start key, below the next key's.
            RangeEnd::Single => Cursor::seek_before(root, &past_prefix(&self.start)),
            // Prefixes are prefix-free: every entry of a key below the end
            // key sorts below its prefix, and its own entries above it.
            RangeEnd::Before(before) => Cursor::seek_before(root, before),
            RangeEnd::Unbounded => Cursor::last(root),
        }
    }

    /// Whether the key of encoded `prefix`, wherever it sorts, is in the
    /// range (a walk over the revision index meets keys in any order).
    pub(crate) fn includes(&self, prefix: &[u8]) -> bool {
        prefix >= self.start.as_slice() && self.contains(prefix)
    }

    /// Whether the key of encoded `prefix` (at or after [`KeyRange::start`]
    /// in a scan) is still inside the range.
    pub(crate) fn contains(&self, prefix: &[u8]) -> bool {
        debug_assert!(prefix >= self.start.as_slice());
        match &self.end {
            RangeEnd::Single => prefix == self.start.as_slice(),
            RangeEnd::Before(before) => prefix < before.as_slice(),
            RangeEnd::Unbounded => true,
        }
    }
}

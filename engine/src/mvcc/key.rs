//! How MVCC entries, the revision index and lease records are laid out as
//! B+tree keys and values: the one place the layouts are written down.
//! The tree holds three namespaces, in this order:
//!
//! ```text
//! 0x00 0x00 ...   lease records
//! 0x00 0x01 ...   the revision index (history by revision)
//! 0x00 0x02 ...   MVCC entries (from the empty user key's on)
//! ```
//!
//! # MVCC entries
//!
//! Tree key (order-preserving: user key ascending, then revision
//! DESCENDING, so per user key the newest entry comes first and a read at
//! revision R seeks straight to the newest entry with main <= R):
//!
//! ```text
//! escape(user key)          every 0x00 byte written as 0x00 0xFF
//! 0x00 0x02                 terminator (sorts below any continuation)
//! !main  u64 big-endian     u64::MAX - main
//! !sub   u64 big-endian     u64::MAX - sub
//! ```
//!
//! The escaped key plus terminator is prefix-free: no key's prefix is a
//! proper prefix of another's, so comparing whole tree keys against an
//! encoded bound compares the user keys. An MVCC tree key starts with
//! 0x00 only as 0x00 0xFF (a user key starting with 0x00) or 0x00 0x02
//! (the empty user key), so the other namespaces never meet one.
//!
//! Tree value (little-endian):
//!
//! ```text
//! put:        0x01, create_revision i64, version i64, lease i64, value bytes
//! tombstone:  0x02
//! ```
//!
//! # The revision index
//!
//! One entry per MVCC entry, keyed by its revision ascending, so history
//! can be read in revision order (watch replay) and compaction can find
//! what a revision superseded without walking the keys (`compact.rs`):
//!
//! ```text
//! tree key:   0x00 0x01, main u64 big-endian, sub u64 big-endian (18 bytes)
//! tree value: kind u8 (0x01 put, 0x02 tombstone, as the MVCC value tag),
//!             previous put's main u64 BE, its sub u64 BE (0, 0 = none),
//!             then the user key's MVCC prefix (escaped key + terminator)
//! ```
//!
//! The previous put is the key's newest entry when the revision was
//! written, if that was a put: the entry this revision supersedes. (A
//! tombstone supersedes itself once compacted, so it is never named.)
//!
//! # Lease records
//!
//! Leases live in the same tree, so a batch's lease grants and revokes
//! commit atomically with its MVCC changes, through the same commit record.
//!
//! ```text
//! tree key:   0x00 0x00, lease id as u64 big-endian        (10 bytes)
//! tree value: version u8 (1), ttl_seconds i64 little-endian (9 bytes)
//! ```
//!
//! MVCC scans seek to a `key_prefix`, which is `>= MVCC_KEYS_START`, and
//! whole-tree walks over MVCC entries start at `MVCC_KEYS_START`: neither
//! ever meets a lease record or an index entry. The layout is format 2 of
//! the tree file (format 1 had no index and terminator 0x00 0x01).

use super::revision::Revision;

/// Bytes of the revision suffix of a tree key.
pub const REVISION_SUFFIX_BYTES: usize = 16;
const TERMINATOR: [u8; 2] = [0x00, 0x02];
const ESCAPE: u8 = 0xFF;
const VALUE_TAG_PUT: u8 = 0x01;
const VALUE_TAG_TOMBSTONE: u8 = 0x02;
/// Bytes before the user value in a put record.
pub const PUT_HEADER_BYTES: usize = 25;
/// Where MVCC tree keys start: the key prefix of the empty user key.
pub const MVCC_KEYS_START: [u8; 2] = TERMINATOR;
/// The first bytes of every lease tree key.
const LEASE_KEY_TAG: [u8; 2] = [0x00, 0x00];
/// The first bytes of every revision index tree key.
const INDEX_KEY_TAG: [u8; 2] = [0x00, 0x01];
/// Bytes of a revision index tree key: the tag and the revision.
pub const INDEX_KEY_BYTES: usize = INDEX_KEY_TAG.len() + 16;
/// Bytes of a revision index value before the user key's prefix.
pub const INDEX_VALUE_HEADER_BYTES: usize = 17;
/// Bytes of a lease tree key: the tag and the id.
pub const LEASE_KEY_BYTES: usize = LEASE_KEY_TAG.len() + 8;
/// The only lease record version this build reads and writes.
const LEASE_VALUE_VERSION: u8 = 1;
/// Bytes of a lease tree value: the version and the TTL.
pub const LEASE_VALUE_BYTES: usize = 1 + 8;

const _: () = assert!(LEASE_KEY_TAG[0] == 0x00 && INDEX_KEY_TAG[0] == 0x00);
const _: () = assert!(LEASE_KEY_TAG[1] < INDEX_KEY_TAG[1] && INDEX_KEY_TAG[1] < TERMINATOR[1]);
const _: () = assert!(ESCAPE != INDEX_KEY_TAG[1]);
const _: () = assert!(ESCAPE != LEASE_KEY_TAG[1] && ESCAPE != TERMINATOR[1]);

/// The encoded user key with its terminator: the prefix of all its entries.
pub fn key_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + TERMINATOR.len() + REVISION_SUFFIX_BYTES);
    push_key_prefix(&mut out, user_key);
    out
}

/// Appends [`key_prefix`] of `user_key` to `out`.
pub fn push_key_prefix(out: &mut Vec<u8>, user_key: &[u8]) {
    out.reserve(user_key.len() + TERMINATOR.len() + REVISION_SUFFIX_BYTES);
    // A copy per run of bytes up to and including a 0x00 (most keys have
    // none: one copy), not a push per byte.
    for run in user_key.split_inclusive(|&byte| byte == 0x00) {
        out.extend_from_slice(run);
        if run.last() == Some(&0x00) {
            out.push(ESCAPE);
        }
    }
    out.extend_from_slice(&TERMINATOR);
}

/// The tree key of `user_key` at `revision`.
#[cfg(test)]
pub fn encode_key(user_key: &[u8], revision: Revision) -> Vec<u8> {
    let mut out = key_prefix(user_key);
    push_revision_suffix(&mut out, revision);
    out
}

/// The tree key at `revision` of the user key whose prefix
/// ([`key_prefix`]) is `prefix`.
pub fn encode_key_with_prefix(prefix: &[u8], revision: Revision) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + REVISION_SUFFIX_BYTES);
    out.extend_from_slice(prefix);
    push_revision_suffix(&mut out, revision);
    out
}

/// Appends the revision suffix of a tree key (see the layout above).
pub fn push_revision_suffix(out: &mut Vec<u8>, revision: Revision) {
    out.extend_from_slice(&(u64::MAX - revision.main as u64).to_be_bytes());
    out.extend_from_slice(&(u64::MAX - revision.sub as u64).to_be_bytes());
}

/// A seek key above every entry of the user key whose prefix is `prefix`
/// and below every later user key's entries (prefixes are prefix-free, so
/// a later prefix differs from `prefix` within `prefix.len()` bytes).
pub fn past_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + REVISION_SUFFIX_BYTES + 1);
    out.extend_from_slice(prefix);
    out.resize(prefix.len() + REVISION_SUFFIX_BYTES + 1, 0xFF);
    out
}

/// The key prefix (escaped user key + terminator) of a tree key.
pub fn prefix_of(tree_key: &[u8]) -> &[u8] {
    assert!(tree_key.len() >= TERMINATOR.len() + REVISION_SUFFIX_BYTES);
    &tree_key[..tree_key.len() - REVISION_SUFFIX_BYTES]
}

/// The revision of a tree key.
pub fn revision_of(tree_key: &[u8]) -> Revision {
    let suffix = &tree_key[tree_key.len() - REVISION_SUFFIX_BYTES..];
    let main = u64::MAX - u64::from_be_bytes(suffix[0..8].try_into().expect("8 bytes"));
    let sub = u64::MAX - u64::from_be_bytes(suffix[8..16].try_into().expect("8 bytes"));
    Revision::new(main as i64, sub as i64)
}

/// The user key of a tree key.
pub fn user_key_of(tree_key: &[u8]) -> Vec<u8> {
    let prefix = prefix_of(tree_key);
    let escaped = &prefix[..prefix.len() - TERMINATOR.len()];
    let mut out = Vec::with_capacity(escaped.len());
    // A copy per run up to and including a 0x00, whose escape is skipped.
    let mut rest = escaped;
    while let Some(zero) = rest.iter().position(|&byte| byte == 0x00) {
        out.extend_from_slice(&rest[..=zero]);
        assert_eq!(rest.get(zero + 1), Some(&ESCAPE), "bad key escape");
        rest = &rest[zero + 2..];
    }
    out.extend_from_slice(rest);
    out
}

/// A decoded tree value.
#[derive(Debug, PartialEq, Eq)]
pub enum ValueRecord<'a> {
    /// A live value.
    Put {
        /// Revision of the put that created the key (since its last delete).
        create_revision: i64,
        /// Puts since creation, from 1.
        version: i64,
        /// Lease id, 0 = none.
        lease: i64,
        /// The user value.
        value: &'a [u8],
    },
    /// A deletion.
    Tombstone,
}

/// Encodes a put record.
#[cfg(test)]
pub fn encode_put(create_revision: i64, version: i64, lease: i64, value: &[u8]) -> Vec<u8> {
    let mut out = put_header(create_revision, version, lease).to_vec();
    out.extend_from_slice(value);
    out
}

/// The bytes of a put record before the user value.
pub fn put_header(create_revision: i64, version: i64, lease: i64) -> [u8; PUT_HEADER_BYTES] {
    assert!(create_revision > 0 && version > 0);
    put_header_unchecked(create_revision, version, lease)
}

/// [`put_header`] for any revisions, as an event made from a given kv
/// keeps it (`event.rs`); never written to the tree.
pub fn put_header_unchecked(
    create_revision: i64,
    version: i64,
    lease: i64,
) -> [u8; PUT_HEADER_BYTES] {
    let mut out = [0u8; PUT_HEADER_BYTES];
    out[0] = VALUE_TAG_PUT;
    out[1..9].copy_from_slice(&create_revision.to_le_bytes());
    out[9..17].copy_from_slice(&version.to_le_bytes());
    out[17..25].copy_from_slice(&lease.to_le_bytes());
    out
}

/// Encodes a tombstone record.
pub fn encode_tombstone() -> Vec<u8> {
    vec![VALUE_TAG_TOMBSTONE]
}

/// Decodes a tree value; the tree's checksums guard the bytes, so a bad
/// record here is a bug, not disk corruption.
pub fn decode_value(bytes: &[u8]) -> ValueRecord<'_> {
    match bytes.first() {
        Some(&VALUE_TAG_PUT) => {
            assert!(bytes.len() >= PUT_HEADER_BYTES, "short put record");
            let field = |at: usize| i64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
            ValueRecord::Put {
                create_revision: field(1),
                version: field(9),
                lease: field(17),
                value: &bytes[PUT_HEADER_BYTES..],
            }
        }
        Some(&VALUE_TAG_TOMBSTONE) => ValueRecord::Tombstone,
        other => panic!("unknown mvcc value tag {other:?}"),
    }
}

/// The revision index tree key of `revision`.
pub fn index_key(revision: Revision) -> [u8; INDEX_KEY_BYTES] {
    assert!(revision.main >= 0 && revision.sub >= 0, "negative revision");
    let mut out = [0u8; INDEX_KEY_BYTES];
    out[..INDEX_KEY_TAG.len()].copy_from_slice(&INDEX_KEY_TAG);
    out[2..10].copy_from_slice(&(revision.main as u64).to_be_bytes());
    out[10..18].copy_from_slice(&(revision.sub as u64).to_be_bytes());
    out
}

/// The first revision index tree key (every index key is >= it).
pub fn index_keys_start() -> &'static [u8] {
    &INDEX_KEY_TAG
}

/// The revision of a revision index tree key; `None` if `tree_key` is not
/// one (the walk over the index has ended).
pub fn index_revision_of(tree_key: &[u8]) -> Option<Revision> {
    if tree_key.len() != INDEX_KEY_BYTES || !tree_key.starts_with(&INDEX_KEY_TAG) {
        return None;
    }
    let field = |at: usize| u64::from_be_bytes(tree_key[at..at + 8].try_into().expect("8")) as i64;
    Some(Revision::new(field(2), field(10)))
}

/// A decoded revision index value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexRecord<'a> {
    /// The indexed entry is a tombstone (else a put).
    pub tombstone: bool,
    /// The put the indexed entry supersedes, if any.
    pub previous_put: Option<Revision>,
    /// The MVCC prefix of the user key ([`key_prefix`]).
    pub prefix: &'a [u8],
}

/// Encodes a revision index value.
#[cfg(test)]
pub fn encode_index_value(record: &IndexRecord) -> Vec<u8> {
    let mut out = index_value_header(record).to_vec();
    out.extend_from_slice(record.prefix);
    out
}

/// The bytes of a revision index value before the user key's prefix.
pub fn index_value_header(record: &IndexRecord) -> [u8; INDEX_VALUE_HEADER_BYTES] {
    let previous = record.previous_put.unwrap_or(Revision::new(0, 0));
    assert!(previous.main >= 0 && previous.sub >= 0, "negative revision");
    let mut out = [0u8; INDEX_VALUE_HEADER_BYTES];
    out[0] = if record.tombstone {
        VALUE_TAG_TOMBSTONE
    } else {
        VALUE_TAG_PUT
    };
    out[1..9].copy_from_slice(&(previous.main as u64).to_be_bytes());
    out[9..17].copy_from_slice(&(previous.sub as u64).to_be_bytes());
    out
}

/// Decodes a revision index value. As [`decode_value`]: checksums guard
/// the bytes, so a short value or an unknown kind is a bug.
pub fn decode_index_value(bytes: &[u8]) -> IndexRecord<'_> {
    assert!(
        bytes.len() >= INDEX_VALUE_HEADER_BYTES + TERMINATOR.len(),
        "short revision index value"
    );
    let tombstone = match bytes[0] {
        VALUE_TAG_PUT => false,
        VALUE_TAG_TOMBSTONE => true,
        other => panic!("unknown revision index kind {other}"),
    };
    let field = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8")) as i64;
    let previous = Revision::new(field(1), field(9));
    IndexRecord {
        tombstone,
        previous_put: (previous != Revision::new(0, 0)).then_some(previous),
        prefix: &bytes[INDEX_VALUE_HEADER_BYTES..],
    }
}

/// The tree key of lease `id`.
pub fn lease_key(id: i64) -> [u8; LEASE_KEY_BYTES] {
    let mut out = [0u8; LEASE_KEY_BYTES];
    out[..LEASE_KEY_TAG.len()].copy_from_slice(&LEASE_KEY_TAG);
    out[LEASE_KEY_TAG.len()..].copy_from_slice(&(id as u64).to_be_bytes());
    out
}

/// The first lease tree key (every lease key is >= it).
pub fn lease_keys_start() -> &'static [u8] {
    &LEASE_KEY_TAG
}

/// Whether `tree_key` is a lease key (rather than an MVCC entry's).
pub fn is_lease_key(tree_key: &[u8]) -> bool {
    tree_key.starts_with(&LEASE_KEY_TAG)
}

/// The lease id of a lease tree key.
pub fn lease_id_of(tree_key: &[u8]) -> i64 {
    assert!(
        is_lease_key(tree_key) && tree_key.len() == LEASE_KEY_BYTES,
        "not a lease key: {tree_key:?}"
    );
    u64::from_be_bytes(tree_key[LEASE_KEY_TAG.len()..].try_into().expect("8 bytes")) as i64
}

/// Encodes a lease record's tree value.
pub fn encode_lease_value(ttl_seconds: i64) -> [u8; LEASE_VALUE_BYTES] {
    let mut out = [0u8; LEASE_VALUE_BYTES];
    out[0] = LEASE_VALUE_VERSION;
    out[1..].copy_from_slice(&ttl_seconds.to_le_bytes());
    out
}

/// Decodes a lease record's tree value into its TTL in seconds. As with
/// [`decode_value`], the tree's checksums guard the bytes, so an unknown
/// version or a wrong length is a bug (or a file of a newer build), not disk
/// corruption: it panics.
pub fn decode_lease_value(bytes: &[u8]) -> i64 {
    match bytes.first() {
        Some(&LEASE_VALUE_VERSION) => {
            assert_eq!(bytes.len(), LEASE_VALUE_BYTES, "lease record of bad length");
            i64::from_le_bytes(bytes[1..].try_into().expect("8 bytes"))
        }
        other => panic!("unknown lease record version {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_key_then_newest_revision() {
        let keys = [
            encode_key(b"", Revision::new(1, 0)),
            encode_key(b"\x00", Revision::new(9, 0)),
            encode_key(b"\x00", Revision::new(2, 0)),
            encode_key(b"\x00\x00", Revision::new(3, 0)),
            encode_key(b"\x00\x01", Revision::new(3, 0)),
            encode_key(b"a", Revision::new(5, 1)),
            encode_key(b"a", Revision::new(5, 0)),
            encode_key(b"a", Revision::new(4, 0)),
            encode_key(b"a\x00", Revision::new(9, 0)),
            encode_key(b"ab", Revision::new(1, 0)),
            encode_key(b"b", Revision::new(1, 0)),
        ];
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
        for user_key in [
            &b""[..],
            b"\x00",
            b"\x00\x00",
            b"a\x00b\x00",
            b"a\x00\x00bc",
            b"xyz",
        ] {
            let key = encode_key(user_key, Revision::new(7, 3));
            assert_eq!(user_key_of(&key), user_key);
            assert_eq!(revision_of(&key), Revision::new(7, 3));
        }
    }

    #[test]
    fn seek_keys_bound_a_user_keys_entries() {
        for user_key in [&b""[..], b"\x00", b"a"] {
            let prefix = key_prefix(user_key);
            let newest = encode_key(user_key, Revision::new(i64::MAX, i64::MAX));
            let oldest = encode_key(user_key, Revision::new(0, 0));
            assert_eq!(
                encode_key_with_prefix(&prefix, Revision::new(7, 3)),
                encode_key(user_key, Revision::new(7, 3))
            );
            let past = past_prefix(&prefix);
            assert!(newest < past && oldest < past);
            for later in [&b"\x00\x00"[..], b"\x01", b"a\x00", b"b"] {
                if later > user_key {
                    assert!(past < encode_key(later, Revision::new(i64::MAX, i64::MAX)));
                }
            }
        }
    }

    #[test]
    fn value_roundtrip() {
        let bytes = encode_put(2, 3, 4, b"v");
        assert_eq!(
            decode_value(&bytes),
            ValueRecord::Put {
                create_revision: 2,
                version: 3,
                lease: 4,
                value: b"v"
            }
        );
        assert_eq!(decode_value(&encode_tombstone()), ValueRecord::Tombstone);
    }

    #[test]
    fn lease_keys_sort_before_every_mvcc_key() {
        let leases = [
            lease_key(0),
            lease_key(1),
            lease_key(i64::MAX),
            lease_key(-1),
        ];
        assert!(leases.windows(2).all(|pair| pair[0] < pair[1]));
        let smallest_mvcc = [
            encode_key(b"", Revision::new(i64::MAX, i64::MAX)),
            encode_key(b"\x00", Revision::new(i64::MAX, 0)),
            encode_key(b"\x00\x00", Revision::new(1, 0)),
        ];
        for lease in &leases {
            assert!(is_lease_key(lease));
            assert!(lease_keys_start() <= lease.as_slice());
            assert!(lease.as_slice() < MVCC_KEYS_START.as_slice());
            for mvcc in &smallest_mvcc {
                assert!(lease.as_slice() < mvcc.as_slice());
                assert!(!is_lease_key(mvcc));
                assert!(MVCC_KEYS_START.as_slice() <= mvcc.as_slice());
            }
        }
        assert_eq!(key_prefix(b""), MVCC_KEYS_START);
        let index = [
            index_key(Revision::new(0, 0)),
            index_key(Revision::new(1, 5)),
            index_key(Revision::new(2, 0)),
            index_key(Revision::new(i64::MAX, i64::MAX)),
        ];
        assert!(index.windows(2).all(|pair| pair[0] < pair[1]));
        for entry in &index {
            assert!(index_keys_start() <= entry.as_slice());
            assert!(!is_lease_key(entry));
            assert!(leases
                .iter()
                .all(|lease| lease.as_slice() < entry.as_slice()));
            assert!(smallest_mvcc
                .iter()
                .all(|mvcc| entry.as_slice() < mvcc.as_slice()));
            assert!(entry.as_slice() < MVCC_KEYS_START.as_slice());
        }
        for mvcc in &smallest_mvcc {
            assert_eq!(index_revision_of(mvcc), None);
        }
        for id in [0, 1, 42, i64::MAX, -7] {
            assert_eq!(lease_id_of(&lease_key(id)), id);
        }
    }

    #[test]
    fn index_roundtrip() {
        let key = index_key(Revision::new(300, 2));
        assert_eq!(index_revision_of(&key), Some(Revision::new(300, 2)));
        assert_eq!(index_revision_of(&lease_key(5)), None);
        let prefix = key_prefix(b"a\x00b");
        for previous_put in [None, Some(Revision::new(7, 0)), Some(Revision::new(0, 3))] {
            for tombstone in [false, true] {
                let record = IndexRecord {
                    tombstone,
                    previous_put,
                    prefix: &prefix,
                };
                assert_eq!(decode_index_value(&encode_index_value(&record)), record);
            }
        }
    }

    #[test]
    fn lease_value_roundtrip() {
        for ttl in [0, 5, i64::MAX, -1] {
            let bytes = encode_lease_value(ttl);
            assert_eq!(bytes[0], 1, "version byte first");
            assert_eq!(bytes[1..], ttl.to_le_bytes(), "TTL little-endian");
            assert_eq!(decode_lease_value(&bytes), ttl);
        }
    }

    #[test]
    #[should_panic(expected = "unknown lease record version Some(2)")]
    fn lease_value_of_unknown_version_is_rejected() {
        let mut bytes = encode_lease_value(5);
        bytes[0] = 2;
        decode_lease_value(&bytes);
    }
}

//! How MVCC entries are laid out as B+tree keys and values.
//!
//! Tree key (order-preserving: user key ascending, then revision
//! DESCENDING, so per user key the newest entry comes first and a read at
//! revision R seeks straight to the newest entry with main <= R):
//!
//! ```text
//! escape(user key)          every 0x00 byte written as 0x00 0xFF
//! 0x00 0x01                 terminator (sorts below any continuation)
//! !main  u64 big-endian     u64::MAX - main
//! !sub   u64 big-endian     u64::MAX - sub
//! ```
//!
//! The escaped key plus terminator is prefix-free: no key's prefix is a
//! proper prefix of another's, so comparing whole tree keys against an
//! encoded bound compares the user keys.
//!
//! Tree value (little-endian):
//!
//! ```text
//! put:        0x01, create_revision i64, version i64, lease i64, value bytes
//! tombstone:  0x02
//! ```

use super::revision::Revision;

/// Bytes of the revision suffix of a tree key.
pub const REVISION_SUFFIX_BYTES: usize = 16;
const TERMINATOR: [u8; 2] = [0x00, 0x01];
const ESCAPE: u8 = 0xFF;
const VALUE_TAG_PUT: u8 = 0x01;
const VALUE_TAG_TOMBSTONE: u8 = 0x02;
/// Bytes before the user value in a put record.
pub const PUT_HEADER_BYTES: usize = 25;

/// The encoded user key with its terminator: the prefix of all its entries.
pub fn key_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + TERMINATOR.len() + REVISION_SUFFIX_BYTES);
    for &byte in user_key {
        out.push(byte);
        if byte == 0x00 {
            out.push(ESCAPE);
        }
    }
    out.extend_from_slice(&TERMINATOR);
    out
}

/// The tree key of `user_key` at `revision`.
pub fn encode_key(user_key: &[u8], revision: Revision) -> Vec<u8> {
    let mut out = key_prefix(user_key);
    out.extend_from_slice(&(u64::MAX - revision.main as u64).to_be_bytes());
    out.extend_from_slice(&(u64::MAX - revision.sub as u64).to_be_bytes());
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
    let mut bytes = escaped.iter();
    while let Some(&byte) = bytes.next() {
        out.push(byte);
        if byte == 0x00 {
            let escape = bytes.next();
            assert_eq!(escape, Some(&ESCAPE), "bad key escape");
        }
    }
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
pub fn encode_put(create_revision: i64, version: i64, lease: i64, value: &[u8]) -> Vec<u8> {
    assert!(create_revision > 0 && version > 0);
    let mut out = Vec::with_capacity(PUT_HEADER_BYTES + value.len());
    out.push(VALUE_TAG_PUT);
    out.extend_from_slice(&create_revision.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&lease.to_le_bytes());
    out.extend_from_slice(value);
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
        for user_key in [&b""[..], b"\x00", b"a\x00b\x00", b"xyz"] {
            let key = encode_key(user_key, Revision::new(7, 3));
            assert_eq!(user_key_of(&key), user_key);
            assert_eq!(revision_of(&key), Revision::new(7, 3));
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
}

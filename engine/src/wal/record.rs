//! WAL record encoding.
//!
//! ```text
//! offset  size  field
//! 0       4     len      u32 LE: bytes of kind + index + payload (9 + payload)
//! 4       4     crc      u32 LE: crc32c over kind + index + payload
//! 8       1     kind     u8 (the caller's)
//! 9       8     index    u64 LE (the caller's; non-decreasing)
//! 17      n     payload
//! ..            zero padding to the next multiple of 8 bytes
//! ```
//! A `len` of zero marks the end of the records (segments are preallocated
//! with zeros). Padding must be zero: every byte of a record is checked.

/// Bytes before the payload: len + crc + kind + index.
pub const RECORD_HEADER_BYTES: usize = 17;
/// Records start and end on this alignment.
pub const RECORD_ALIGN_BYTES: usize = 8;
/// The largest payload one record may carry.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 512 << 20;
/// `len` covers kind + index + payload.
const RECORD_LEN_MIN: usize = 9;

const _: () = assert!(RECORD_PAYLOAD_BYTES_MAX + RECORD_LEN_MIN <= u32::MAX as usize);

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// The caller's record type; opaque to the engine.
    pub kind: u8,
    /// The caller's index (a raft index); non-decreasing per append.
    pub index: u64,
    /// The caller's bytes.
    pub payload: Vec<u8>,
}

/// Rounds `bytes` up to [`RECORD_ALIGN_BYTES`].
pub const fn align_up(bytes: usize) -> usize {
    bytes.div_ceil(RECORD_ALIGN_BYTES) * RECORD_ALIGN_BYTES
}

/// Bytes one record takes on disk, padding included.
pub fn encoded_len(payload_bytes: usize) -> usize {
    align_up(RECORD_HEADER_BYTES + payload_bytes)
}

/// Appends one encoded, padded record to `out`.
pub fn encode(out: &mut Vec<u8>, kind: u8, index: u64, payload: &[u8]) {
    assert!(
        payload.len() <= RECORD_PAYLOAD_BYTES_MAX,
        "wal record payload of {} bytes exceeds the limit",
        payload.len()
    );
    assert_eq!(out.len() % RECORD_ALIGN_BYTES, 0, "records start aligned");
    let start = out.len();
    let len = u32::try_from(RECORD_LEN_MIN + payload.len()).expect("bounded by the limit");
    let mut crc = crc32c::crc32c(&[kind]);
    crc = crc32c::crc32c_append(crc, &index.to_le_bytes());
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(start + encoded_len(payload.len()), 0);
}

/// What [`decode`] found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid record, and the offset of the next one.
    Record(WalRecord, usize),
    /// Zeros: no more records.
    End,
    /// Not a valid record.
    Bad(BadRecord),
}

/// Why the bytes at an offset are not a valid record, in the terms
/// `torn.rs` needs to tell a torn write from damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRecord {
    /// The file ends inside the record (its header, or the body its length
    /// announces).
    Partial(&'static str),
    /// Length in range and body present, but the checksum does not match.
    Checksum,
    /// Framing no writer produces: a length out of range, or a zero length
    /// with a checksum.
    Malformed(&'static str),
    /// A valid body followed by non-zero padding.
    Padding,
}

impl BadRecord {
    /// The problem in words, for [`crate::WalError::Corrupt`].
    pub fn reason(self) -> &'static str {
        match self {
            BadRecord::Partial(reason) | BadRecord::Malformed(reason) => reason,
            BadRecord::Checksum => "record checksum mismatch",
            BadRecord::Padding => "non-zero record padding",
        }
    }
}

/// The record's `len` field at `offset` (the caller checked 8 bytes exist).
pub fn len_at(bytes: &[u8], offset: usize) -> usize {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize
}

/// The record's stored checksum at `offset`.
pub fn crc_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().expect("4 bytes"))
}

/// Whether `len` is a length some record could have.
pub fn len_in_range(len: usize) -> bool {
    (RECORD_LEN_MIN..=RECORD_LEN_MIN + RECORD_PAYLOAD_BYTES_MAX).contains(&len)
}

/// Decodes the record at `offset` of `bytes` (a whole segment file).
pub fn decode(bytes: &[u8], offset: usize) -> Decoded {
    assert_eq!(offset % RECORD_ALIGN_BYTES, 0, "records start aligned");
    let rest = bytes.get(offset..).unwrap_or(&[]);
    if rest.len() < 8 {
        return if rest.iter().all(|&byte| byte == 0) {
            Decoded::End
        } else {
            Decoded::Bad(BadRecord::Partial("partial record header"))
        };
    }
    let len = len_at(rest, 0);
    let crc = crc_at(rest, 0);
    if len == 0 {
        return if crc == 0 {
            Decoded::End
        } else {
            Decoded::Bad(BadRecord::Malformed("zero length with a checksum"))
        };
    }
    if !len_in_range(len) {
        return Decoded::Bad(BadRecord::Malformed("record length out of range"));
    }
    if rest.len() < 8 + len {
        return Decoded::Bad(BadRecord::Partial("partial record"));
    }
    let body = &rest[8..8 + len];
    if crc32c::crc32c(body) != crc {
        return Decoded::Bad(BadRecord::Checksum);
    }
    let padded_end = align_up(8 + len).min(rest.len());
    if rest[8 + len..padded_end].iter().any(|&byte| byte != 0) {
        return Decoded::Bad(BadRecord::Padding);
    }
    let kind = body[0];
    let index = u64::from_le_bytes(body[1..9].try_into().expect("8 bytes"));
    let payload = body[9..].to_vec();
    let next = offset + align_up(8 + len);
    Decoded::Record(
        WalRecord {
            kind,
            index,
            payload,
        },
        next,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_padding() {
        let mut out = Vec::new();
        encode(&mut out, 7, 42, b"hello");
        assert_eq!(out.len(), 24);
        encode(&mut out, 1, 43, b"");
        assert_eq!(out.len(), 48);
        let Decoded::Record(first, next) = decode(&out, 0) else {
            panic!("first record")
        };
        assert_eq!(first.payload, b"hello");
        assert_eq!((first.kind, first.index, next), (7, 42, 24));
        let Decoded::Record(second, next) = decode(&out, 24) else {
            panic!("second record")
        };
        assert_eq!((second.kind, second.index, next), (1, 43, 48));
        assert_eq!(decode(&out, 48), Decoded::End);
    }

    #[test]
    fn flipped_byte_is_bad() {
        let mut out = Vec::new();
        encode(&mut out, 7, 42, b"hello");
        out[18] ^= 1;
        assert_eq!(decode(&out, 0), Decoded::Bad(BadRecord::Checksum));
        out[18] ^= 1;
        out[23] = 1;
        assert_eq!(decode(&out, 0), Decoded::Bad(BadRecord::Padding));
        out.truncate(20);
        assert_eq!(
            decode(&out, 0),
            Decoded::Bad(BadRecord::Partial("partial record"))
        );
    }
}

//! Telling a torn tail from damage when a WAL record does not verify.
//!
//! A crash during [`super::Wal::sync`] can leave its batch partly written.
//! Segments are preallocated with zeros and disks write whole sectors, so
//! what did not make it reads as zeros. etcd's rule (its WAL decoder's
//! `isTornEntry`, then `Repair`): in the LAST segment, a record the file
//! ends inside, or one that fails its checksum while one of the 512-byte
//! sectors its body and padding span (split at the file's sector
//! boundaries) is all zeros, is a torn write: the segment is cut there.
//! Anything else that fails is corruption, and open refuses it.
//!
//! keel applies that rule with two refinements, both of which only refuse
//! where etcd would cut or stop reading, never the reverse:
//!
//! - A record that verifies once ONE bit is flipped back (in its body, its
//!   checksum or its length: [`one_bit_from_valid`]) is bit rot in a record
//!   that was once written whole, so it is refused even when its body
//!   happens to hold a zero sector. A torn write zeroes whole sectors; it
//!   never leaves one wrong bit.
//! - Framing no writer produces (a length out of range, a zero length with
//!   a checksum, non-zero padding) is refused unless every byte after the
//!   8-byte frame is zero, i.e. the damage sits in the unused, preallocated
//!   rest of the segment and cutting there loses nothing ([`in_free_space`]).

use super::record::{align_up, crc_at, len_at, len_in_range, BadRecord};

/// The sector size torn writes are judged in (etcd's `minSectorSize`).
pub const SECTOR_BYTES: usize = 512;

/// CRC-32C's polynomial, bit-reversed (the form `crc32c` computes with).
const CRC32C_POLY_REVERSED: u32 = 0x82F6_3B78;

/// Whether the bad record at `offset` of the last segment's `bytes` is a
/// torn write to cut off (true) or damage to refuse (false).
pub fn is_torn(bytes: &[u8], offset: usize, bad: BadRecord) -> bool {
    if one_bit_from_valid(bytes, offset) {
        return false;
    }
    match bad {
        BadRecord::Partial(_) => true,
        BadRecord::Checksum => has_zero_sector(bytes, offset) || in_free_space(bytes, offset),
        BadRecord::Malformed(_) => in_free_space(bytes, offset),
        BadRecord::Padding => false,
    }
}

/// Whether every byte after the 8-byte frame at `offset` is zero: damage
/// confined to the frame of the unused rest of a segment.
pub fn in_free_space(bytes: &[u8], offset: usize) -> bool {
    bytes
        .get(offset + 8..)
        .is_none_or(|rest| rest.iter().all(|&byte| byte == 0))
}

/// etcd's `isTornEntry`: whether one of the sector-aligned chunks of the
/// record's body and padding (from `offset + 8`) is all zeros.
fn has_zero_sector(bytes: &[u8], offset: usize) -> bool {
    let len = len_at(bytes, offset);
    let start = offset + 8;
    let end = (offset + align_up(8 + len)).min(bytes.len());
    let mut chunk_start = start;
    while chunk_start < end {
        let chunk_end = ((chunk_start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
        if bytes[chunk_start..chunk_end].iter().all(|&byte| byte == 0) {
            return true;
        }
        chunk_start = chunk_end;
    }
    false
}

/// Whether the record at `offset` would verify with exactly one bit of its
/// length, checksum or body flipped back.
pub fn one_bit_from_valid(bytes: &[u8], offset: usize) -> bool {
    let Some(rest) = bytes.get(offset..).filter(|rest| rest.len() >= 8) else {
        return false;
    };
    let len = len_at(rest, 0);
    let stored = crc_at(rest, 0);
    // A flipped bit in the length: the true length's body verifies as is.
    let length_flipped = (0..32).any(|bit| {
        let true_len = len ^ (1 << bit);
        len_in_range(true_len)
            && 8 + true_len <= rest.len()
            && crc32c::crc32c(&rest[8..8 + true_len]) == stored
    });
    if length_flipped {
        return true;
    }
    if !len_in_range(len) || 8 + len > rest.len() {
        return false;
    }
    let syndrome = stored ^ crc32c::crc32c(&rest[8..8 + len]);
    // One bit of the checksum, or one of the body.
    syndrome.count_ones() == 1 || single_bit_error_of(syndrome, len).is_some()
}

/// The bit position (byte index, bit in byte) in an `message_bytes`-long
/// message whose flip changes its CRC-32C by `syndrome`, if one does.
///
/// CRC-32C is linear: for messages of one length, crc(a) ^ crc(b) is the
/// raw CRC (zero start, no final xor) of a ^ b. The raw CRC of a message
/// whose only set bit is bit `b` of byte `j` is the register `1` stepped
/// `8 * (len - j) - b` times (a step shifts right and xors in the
/// polynomial when the bit shifted out is set): so one walk of at most
/// `8 * len` steps tries every single-bit error at once.
fn single_bit_error_of(syndrome: u32, message_bytes: usize) -> Option<(usize, u32)> {
    if syndrome == 0 {
        return None;
    }
    let mut register = 1u32;
    for steps in 1..=8 * message_bytes {
        register = (register >> 1) ^ (CRC32C_POLY_REVERSED & 0u32.wrapping_sub(register & 1));
        if register == syndrome {
            let bytes_from_end = steps.div_ceil(8);
            let bit = (8 * bytes_from_end - steps) as u32;
            return Some((message_bytes - bytes_from_end, bit));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::record::{encode, Decoded};
    use super::*;

    #[test]
    fn single_bit_errors_are_located() {
        let message: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        let crc = crc32c::crc32c(&message);
        for byte in [0, 1, 7, 150, 298, 299] {
            for bit in 0..8 {
                let mut flipped = message.clone();
                flipped[byte] ^= 1 << bit;
                let syndrome = crc ^ crc32c::crc32c(&flipped);
                assert_eq!(
                    single_bit_error_of(syndrome, message.len()),
                    Some((byte, bit)),
                    "byte {byte} bit {bit}"
                );
            }
        }
        let mut two = message.clone();
        two[3] ^= 1;
        two[200] ^= 4;
        assert_eq!(
            single_bit_error_of(crc ^ crc32c::crc32c(&two), message.len()),
            None
        );
    }

    /// A segment image: two records, then preallocated zeros.
    fn segment() -> (Vec<u8>, usize) {
        let mut bytes = Vec::new();
        encode(&mut bytes, 1, 1, &[7u8; 100]);
        let second = bytes.len();
        encode(&mut bytes, 1, 2, &[9u8; 1500]);
        bytes.resize(8192, 0);
        (bytes, second)
    }

    fn bad_at(bytes: &[u8], offset: usize) -> BadRecord {
        match super::super::record::decode(bytes, offset) {
            Decoded::Bad(bad) => bad,
            other => panic!("not bad: {other:?}"),
        }
    }

    #[test]
    fn every_flipped_bit_of_the_last_record_is_damage() {
        let (bytes, second) = segment();
        let end = second + align_up(8 + 9 + 1500);
        for at in second..end {
            for bit in [0, 3, 7] {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                let bad = bad_at(&damaged, second);
                assert!(
                    !is_torn(&damaged, second, bad),
                    "byte {at} bit {bit}: {bad:?}"
                );
            }
        }
    }

    #[test]
    fn zeroed_sectors_and_cut_files_are_torn() {
        let (bytes, second) = segment();
        // The sector holding the middle of the second record never written.
        let mut torn = bytes.clone();
        torn[512..1024].fill(0);
        assert!(is_torn(&torn, second, bad_at(&torn, second)));
        // Only the first sector of the record made it: the rest reads as
        // zeros up to the end of its padding.
        let mut head_only = bytes.clone();
        head_only[512..].fill(0);
        assert!(is_torn(&head_only, second, bad_at(&head_only, second)));
        // The file cut inside the record.
        let cut = &bytes[..second + 700];
        assert!(is_torn(cut, second, bad_at(cut, second)));
    }

    #[test]
    fn damage_in_free_space_is_torn_and_in_records_is_not() {
        let (bytes, _) = segment();
        let free = 2048;
        for (at, value) in [(free, 0x80u8), (free + 3, 0x01), (free + 5, 0x10)] {
            let mut damaged = bytes.clone();
            damaged[at] = value;
            let bad = bad_at(&damaged, free);
            assert!(is_torn(&damaged, free, bad), "byte {at}: {bad:?}");
        }
        // A zero length with a checksum followed by records is damage.
        let mut zeroed_len = bytes.clone();
        zeroed_len[0..4].fill(0);
        let bad = bad_at(&zeroed_len, 0);
        assert!(!is_torn(&zeroed_len, 0, bad), "{bad:?}");
    }
}

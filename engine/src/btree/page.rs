//! Page-level formats of the B+tree file. All integers little-endian.
//!
//! The file is a sequence of [`PAGE_SIZE_BYTES`] pages, written append-only:
//!
//! ```text
//! page 0: file header
//!   0   8  magic        b"KEELBTRE"
//!   8   4  version      u32 (TREE_FORMAT_VERSION)
//!   12  4  page_size    u32 (PAGE_SIZE_BYTES)
//!   16  8  salt         u64, random per file; mixed into every checksum so
//!                       user bytes that happen to look like a page never verify
//!   24  4  crc          u32: crc32c of bytes 0..24
//!   rest zero (checked at open)
//!
//! node (starts on a page boundary, spans page_count consecutive pages)
//!   0   4  magic        b"KNOD"
//!   4   1  kind         1 = leaf, 2 = branch
//!   5   3  reserved     zero
//!   8   4  page_count   u32
//!   12  4  payload_len  u32
//!   16  4  entry_count  u32 (leaf: entries; branch: separator keys)
//!   20  4  crc          u32: crc32c(salt ++ bytes 0..20 ++ payload)
//!   24  .. payload (node.rs), then zero padding to the page boundary
//!          (checked when the node is loaded)
//!
//! commit record (one page, written after the nodes of a persist)
//!   0   8  magic              b"KEELCMIT"
//!   8   4  version            u32
//!   12  4  page_size          u32
//!   16  8  commit_seq         u64, +1 per commit
//!   24  8  commit_page        u64, the page this record sits in
//!   32  8  root_page          u64, the key tree's root node
//!   40  8  history_root_page  u64, 0 = none (reserved for the revision tree)
//!   48  8  applied_index      u64
//!   56  8  revision           i64
//!   64  8  compact_revision   i64
//!   72  48 reserved           zero
//!   120 4  crc                u32: crc32c(salt ++ bytes 0..120)
//!   rest zero (checked for the commit recovery opens at)
//! ```
//!
//! Every byte of every page that the last commit reaches (header, nodes,
//! the commit record) is covered by a checksum or must be zero, so a
//! flipped bit in any of them is found at open. A commit record that fails
//! its checksum but verifies with one bit flipped back
//! ([`damaged_commit_byte`]) is bit rot, not a torn write (a torn write
//! loses whole sectors), and is reported instead of being skipped.

/// Size of every page: the unit nodes are allocated in. A node takes
/// whole pages, so the page is small (a disk sector) to waste little at
/// each node's end; persists still write whole 4 KiB blocks
/// (`appender.rs`).
pub const PAGE_SIZE_BYTES: u64 = 512;
/// Where a persist puts its commit record, given the first page free
/// after its nodes: the last page of the 4 KiB block that page is in (the
/// pages between are zero), so each persist's write ends on a block
/// boundary and the next one's starts on one, as `O_DIRECT` needs.
pub(super) fn commit_slot(first_free_page: u64) -> u64 {
    let block_pages = crate::io::DIRECT_ALIGN_BYTES as u64 / PAGE_SIZE_BYTES;
    first_free_page / block_pages * block_pages + block_pages - 1
}

/// The only format version this build reads and writes. 2: the MVCC
/// layout gained the revision index (`mvcc/key.rs`); 3: 512-byte pages
/// (were 4096). A file of another version is refused.
pub const TREE_FORMAT_VERSION: u32 = 3;
/// File header magic.
pub const FILE_MAGIC: [u8; 8] = *b"KEELBTRE";
/// Commit record magic.
pub const COMMIT_MAGIC: [u8; 8] = *b"KEELCMIT";
/// Node magic.
pub const NODE_MAGIC: [u8; 4] = *b"KNOD";
/// Bytes of a node header.
pub const NODE_HEADER_BYTES: usize = 24;
/// Node kinds.
pub const NODE_KIND_LEAF: u8 = 1;
/// Node kinds.
pub const NODE_KIND_BRANCH: u8 = 2;
const COMMIT_CRC_OFFSET: usize = 120;
/// Bytes of the file header that carry data; the rest of page 0 is zero.
pub const FILE_HEADER_BYTES: usize = 28;
/// Bytes of a commit record that carry data; the rest of its page is zero.
pub const COMMIT_RECORD_BYTES: usize = COMMIT_CRC_OFFSET + 4;

const _: () = assert!(PAGE_SIZE_BYTES.is_power_of_two());
const _: () = assert!(COMMIT_RECORD_BYTES as u64 <= PAGE_SIZE_BYTES);
const _: () = assert!((FILE_HEADER_BYTES as u64) < PAGE_SIZE_BYTES);
const _: () = assert!((NODE_HEADER_BYTES as u64) < PAGE_SIZE_BYTES);

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

/// Why a header page was rejected: (byte offset in the page, problem).
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Not a header at all / checksum mismatch.
    Corrupt(u64, &'static str),
    /// Another format version.
    Version(u64, u32),
    /// Another page size.
    PageSize(u64, u32),
}

/// Encodes page 0.
pub fn encode_file_header(salt: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE_BYTES as usize];
    page[0..8].copy_from_slice(&FILE_MAGIC);
    page[8..12].copy_from_slice(&TREE_FORMAT_VERSION.to_le_bytes());
    page[12..16].copy_from_slice(&(PAGE_SIZE_BYTES as u32).to_le_bytes());
    page[16..24].copy_from_slice(&salt.to_le_bytes());
    let crc = crc32c::crc32c(&page[0..24]);
    page[24..28].copy_from_slice(&crc.to_le_bytes());
    page
}

/// Decodes page 0, returning the salt.
pub fn decode_file_header(page: &[u8]) -> Result<u64, HeaderProblem> {
    assert_eq!(page.len() as u64, PAGE_SIZE_BYTES);
    if page[0..8] != FILE_MAGIC {
        return Err(HeaderProblem::Corrupt(0, "bad file magic"));
    }
    if crc32c::crc32c(&page[0..24]) != u32_at(page, 24) {
        return Err(HeaderProblem::Corrupt(24, "file header checksum mismatch"));
    }
    let version = u32_at(page, 8);
    if version != TREE_FORMAT_VERSION {
        return Err(HeaderProblem::Version(8, version));
    }
    let page_size = u32_at(page, 12);
    if u64::from(page_size) != PAGE_SIZE_BYTES {
        return Err(HeaderProblem::PageSize(12, page_size));
    }
    if let Some(at) = first_nonzero(&page[FILE_HEADER_BYTES..]) {
        return Err(HeaderProblem::Corrupt(
            (FILE_HEADER_BYTES + at) as u64,
            "nonzero byte after the file header",
        ));
    }
    Ok(u64_at(page, 16))
}

/// The contents of a commit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitRecord {
    /// +1 per commit.
    pub commit_seq: u64,
    /// The page this record sits in.
    pub commit_page: u64,
    /// Root node of the key tree.
    pub root_page: u64,
    /// Root of the (future) revision-ordered history tree; 0 = none.
    pub history_root_page: u64,
    /// Raft index of the last applied batch in this state.
    pub applied_index: u64,
    /// MVCC revision of this state.
    pub revision: i64,
    /// MVCC compaction point.
    pub compact_revision: i64,
}

/// Encodes a commit record page.
pub fn encode_commit(record: &CommitRecord, salt: u64) -> Vec<u8> {
    let mut page = vec![0u8; PAGE_SIZE_BYTES as usize];
    page[0..8].copy_from_slice(&COMMIT_MAGIC);
    page[8..12].copy_from_slice(&TREE_FORMAT_VERSION.to_le_bytes());
    page[12..16].copy_from_slice(&(PAGE_SIZE_BYTES as u32).to_le_bytes());
    page[16..24].copy_from_slice(&record.commit_seq.to_le_bytes());
    page[24..32].copy_from_slice(&record.commit_page.to_le_bytes());
    page[32..40].copy_from_slice(&record.root_page.to_le_bytes());
    page[40..48].copy_from_slice(&record.history_root_page.to_le_bytes());
    page[48..56].copy_from_slice(&record.applied_index.to_le_bytes());
    page[56..64].copy_from_slice(&record.revision.to_le_bytes());
    page[64..72].copy_from_slice(&record.compact_revision.to_le_bytes());
    let crc = salted_crc(salt, &[&page[0..COMMIT_CRC_OFFSET]]);
    page[COMMIT_CRC_OFFSET..COMMIT_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    page
}

/// Decodes the page at `page_id` as a commit record; `None` if it is not a
/// valid one (another kind of page, torn, or misplaced).
pub fn decode_commit(page: &[u8], page_id: u64, salt: u64) -> Option<CommitRecord> {
    assert_eq!(page.len() as u64, PAGE_SIZE_BYTES);
    if page[0..8] != COMMIT_MAGIC {
        return None;
    }
    let crc = salted_crc(salt, &[&page[0..COMMIT_CRC_OFFSET]]);
    if crc != u32_at(page, COMMIT_CRC_OFFSET) {
        return None;
    }
    let record = CommitRecord {
        commit_seq: u64_at(page, 16),
        commit_page: u64_at(page, 24),
        root_page: u64_at(page, 32),
        history_root_page: u64_at(page, 40),
        applied_index: u64_at(page, 48),
        revision: u64_at(page, 56) as i64,
        compact_revision: u64_at(page, 64) as i64,
    };
    let valid = u32_at(page, 8) == TREE_FORMAT_VERSION
        && u64::from(u32_at(page, 12)) == PAGE_SIZE_BYTES
        && record.commit_page == page_id
        && record.root_page < page_id
        && record.history_root_page < page_id;
    valid.then_some(record)
}

/// The format of a page that is a commit record with a valid checksum,
/// whatever its version: `(version, page_size)`; `None` for any other page.
/// Recovery uses it to tell a commit of another format version from
/// garbage.
pub fn commit_format(page: &[u8], salt: u64) -> Option<(u32, u32)> {
    assert_eq!(page.len() as u64, PAGE_SIZE_BYTES);
    let verifies = page[0..8] == COMMIT_MAGIC
        && salted_crc(salt, &[&page[0..COMMIT_CRC_OFFSET]]) == u32_at(page, COMMIT_CRC_OFFSET);
    verifies.then(|| (u32_at(page, 8), u32_at(page, 12)))
}

/// If the page at `page_id` is a commit record of this file damaged by
/// exactly one flipped bit (in its checksummed bytes or in the checksum),
/// the byte offset in the page of that bit; `None` for a valid record or
/// anything further from one. A torn write leaves whole sectors unwritten,
/// never one wrong bit, and other files' pages never verify under this
/// file's salt, so a match is bit rot in a record that was once complete.
/// At most 960 checksums of 120 bytes: run only on the page recovery finds
/// where the next commit record would be.
pub fn damaged_commit_byte(page: &[u8], page_id: u64, salt: u64) -> Option<usize> {
    assert_eq!(page.len() as u64, PAGE_SIZE_BYTES);
    let stored = u32_at(page, COMMIT_CRC_OFFSET);
    let computed = salted_crc(salt, &[&page[0..COMMIT_CRC_OFFSET]]);
    if stored == computed {
        return None;
    }
    let syndrome = stored ^ computed;
    if syndrome.count_ones() == 1 {
        // Only the checksum is off by a bit: the record itself must be one.
        let mut repaired = page.to_vec();
        repaired[COMMIT_CRC_OFFSET..COMMIT_RECORD_BYTES].copy_from_slice(&computed.to_le_bytes());
        let byte = COMMIT_CRC_OFFSET + syndrome.trailing_zeros() as usize / 8;
        return decode_commit(&repaired, page_id, salt).map(|_| byte);
    }
    let mut candidate = page.to_vec();
    for bit in 0..COMMIT_CRC_OFFSET * 8 {
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        candidate[byte] ^= mask;
        if decode_commit(&candidate, page_id, salt).is_some() {
            return Some(byte);
        }
        candidate[byte] ^= mask;
    }
    None
}

/// The index of the first non-zero byte of `bytes`, if any.
pub fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&byte| byte != 0)
}

/// crc32c over the salt (LE) followed by `parts`. Computed with `crc-fast`
/// (folding with VPCLMULQDQ where the CPU has it: 62-67 GB/s against the
/// `crc32c` crate's 27-32 here on 4-8 KiB nodes); the same CRC-32C the WAL
/// computes with the `crc32c` crate, which the tests check.
pub fn salted_crc(salt: u64, parts: &[&[u8]]) -> u32 {
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    digest.update(&salt.to_le_bytes());
    for part in parts {
        digest.update(part);
    }
    digest.finalize() as u32
}

/// A decoded node header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeHeader {
    /// [`NODE_KIND_LEAF`] or [`NODE_KIND_BRANCH`].
    pub kind: u8,
    /// Pages the node spans.
    pub page_count: u32,
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// Entries (leaf) or separator keys (branch).
    pub entry_count: u32,
    /// The stored checksum.
    pub crc: u32,
}

/// Pages needed for a node with `payload_len` bytes of payload.
pub fn node_page_count(payload_len: usize) -> u64 {
    ((NODE_HEADER_BYTES + payload_len) as u64).div_ceil(PAGE_SIZE_BYTES)
}

/// Frames a node of `payload_len` bytes of payload into `out`, which must
/// be exactly the node's pages ([`node_page_count`]): header, payload,
/// zero padding. `encode_payload` writes the payload in place (every byte
/// of the slice it gets) and returns the entry count; the checksum is then
/// taken over the bytes as they lie in `out`, while they are in cache.
/// Every byte of `out` is written.
pub fn encode_node(
    out: &mut [u8],
    kind: u8,
    payload_len: usize,
    salt: u64,
    encode_payload: impl FnOnce(&mut [u8]) -> u32,
) {
    assert!(kind == NODE_KIND_LEAF || kind == NODE_KIND_BRANCH);
    let page_count = node_page_count(payload_len);
    assert_eq!(
        out.len() as u64,
        page_count * PAGE_SIZE_BYTES,
        "a node fills its pages"
    );
    let (header, rest) = out.split_at_mut(NODE_HEADER_BYTES);
    let (payload, padding) = rest.split_at_mut(payload_len);
    let entry_count = encode_payload(payload);
    padding.fill(0);
    let page_count = u32::try_from(page_count).expect("node page count");
    let payload_len = u32::try_from(payload_len).expect("node payload fits u32");
    header.fill(0);
    header[0..4].copy_from_slice(&NODE_MAGIC);
    header[4] = kind;
    header[8..12].copy_from_slice(&page_count.to_le_bytes());
    header[12..16].copy_from_slice(&payload_len.to_le_bytes());
    header[16..20].copy_from_slice(&entry_count.to_le_bytes());
    let crc = salted_crc(salt, &[&header[0..20], payload]);
    header[20..24].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes a node header from the start of a node's first page.
pub fn decode_node_header(first_page: &[u8]) -> Result<NodeHeader, (u64, &'static str)> {
    if first_page[0..4] != NODE_MAGIC {
        return Err((0, "bad node magic"));
    }
    let header = NodeHeader {
        kind: first_page[4],
        page_count: u32_at(first_page, 8),
        payload_len: u32_at(first_page, 12),
        entry_count: u32_at(first_page, 16),
        crc: u32_at(first_page, 20),
    };
    if header.kind != NODE_KIND_LEAF && header.kind != NODE_KIND_BRANCH {
        return Err((4, "bad node kind"));
    }
    if u64::from(header.page_count) != node_page_count(header.payload_len as usize) {
        return Err((8, "node page count does not match its payload length"));
    }
    Ok(header)
}

/// Checks a node's checksum; `node_bytes` are all its pages.
pub fn node_crc_matches(node_bytes: &[u8], header: &NodeHeader, salt: u64) -> bool {
    let payload_end = NODE_HEADER_BYTES + header.payload_len as usize;
    salted_crc(
        salt,
        &[
            &node_bytes[0..20],
            &node_bytes[NODE_HEADER_BYTES..payload_end],
        ],
    ) == header.crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_roundtrip_and_misplacement() {
        let record = CommitRecord {
            commit_seq: 3,
            commit_page: 9,
            root_page: 8,
            history_root_page: 0,
            applied_index: 77,
            revision: 12,
            compact_revision: 0,
        };
        let page = encode_commit(&record, 5);
        assert_eq!(decode_commit(&page, 9, 5), Some(record));
        assert_eq!(decode_commit(&page, 10, 5), None);
        assert_eq!(decode_commit(&page, 9, 6), None);
        let mut flipped = page.clone();
        flipped[50] ^= 1;
        assert_eq!(decode_commit(&flipped, 9, 5), None);
    }

    #[test]
    fn one_flipped_bit_of_a_commit_record_is_found() {
        let record = CommitRecord {
            commit_seq: 7,
            commit_page: 40,
            root_page: 39,
            history_root_page: 0,
            applied_index: 1234,
            revision: 99,
            compact_revision: 3,
        };
        let salt = 0xDEAD_BEEF;
        let page = encode_commit(&record, salt);
        assert_eq!(damaged_commit_byte(&page, 40, salt), None, "valid");
        for bit in 0..COMMIT_RECORD_BYTES * 8 {
            let mut flipped = page.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_commit(&flipped, 40, salt), None, "bit {bit}");
            assert_eq!(
                damaged_commit_byte(&flipped, 40, salt),
                Some(bit / 8),
                "bit {bit}"
            );
        }
        // Two flipped bits, a torn record, another file's record, a zero
        // page: not one bit from a record of this file at this place.
        let mut two = page.clone();
        two[50] ^= 1;
        two[60] ^= 1;
        assert_eq!(damaged_commit_byte(&two, 40, salt), None);
        let mut torn = page.clone();
        torn[100..].fill(0);
        assert_eq!(damaged_commit_byte(&torn, 40, salt), None);
        assert_eq!(damaged_commit_byte(&page, 40, salt ^ 1), None);
        assert_eq!(damaged_commit_byte(&page, 41, salt), None);
        let zeros = vec![0u8; PAGE_SIZE_BYTES as usize];
        assert_eq!(damaged_commit_byte(&zeros, 40, salt), None);
        assert_eq!(
            commit_format(&page, salt),
            Some((TREE_FORMAT_VERSION, PAGE_SIZE_BYTES as u32))
        );
        assert_eq!(commit_format(&two, salt), None);
    }

    #[test]
    fn header_rejects_other_version() {
        let mut page = encode_file_header(1);
        assert_eq!(decode_file_header(&page), Ok(1));
        // Format 1 (before the revision index), 2 (4 KiB pages) and a
        // future one.
        for other in [1u8, 2, 4] {
            page[8] = other;
            let crc = crc32c::crc32c(&page[0..24]);
            page[24..28].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(
                decode_file_header(&page),
                Err(HeaderProblem::Version(8, other as u32))
            );
        }
    }

    #[test]
    fn salted_crc_is_crc32c_of_the_salt_then_the_parts() {
        let bytes: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for (salt, cuts) in [
            (0u64, [0usize, 0, 0]),
            (1, [3, 20, 20]),
            (0xDEAD_BEEF_0BAD_F00D, [20, 4096, 8192]),
            (u64::MAX, [1, 333, 19_999]),
        ] {
            let parts = [
                &bytes[..cuts[0]],
                &bytes[cuts[0]..cuts[1]],
                &bytes[cuts[1]..cuts[2]],
            ];
            let mut expected = crc32c::crc32c(&salt.to_le_bytes());
            for part in parts {
                expected = crc32c::crc32c_append(expected, part);
            }
            assert_eq!(
                salted_crc(salt, &parts),
                expected,
                "salt {salt:x}, cuts {cuts:?}"
            );
        }
    }
}

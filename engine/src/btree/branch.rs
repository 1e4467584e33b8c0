//! A branch's payload on disk: the first child's page (u64 LE), then for
//! each separator key its length (u32 LE), its bytes and the page of the
//! child to its right (u64 LE). Its size, encoding and decoding; the
//! branch itself (its keys, children and splits) lives in `node.rs`.

use super::node::{PayloadProblem, KEY_BYTES_MAX};
use std::sync::Arc;

/// Bytes of a branch payload before its first separator key.
pub(super) const BRANCH_FIRST_CHILD_BYTES: usize = 8;

/// What one separator key (with its child page) adds to a branch payload.
pub(super) fn branch_key_len(key: &[u8]) -> usize {
    12 + key.len()
}

/// Encodes a branch of `keys` whose children are on `pages` (one more
/// than the keys) into `out`, which must be exactly its payload's size.
pub(super) fn encode_branch(
    keys: &[Arc<[u8]>],
    mut pages: impl Iterator<Item = u64>,
    out: &mut [u8],
) {
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    let first = pages.next().expect("a branch has a first child");
    put(&first.to_le_bytes());
    for (key, page) in keys.iter().zip(pages) {
        put(&(key.len() as u32).to_le_bytes());
        put(key);
        put(&page.to_le_bytes());
    }
    assert_eq!(at, out.len(), "a branch payload fills its size exactly");
}

struct PayloadReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> PayloadReader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], PayloadProblem> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or((self.offset, "node payload ends early"))?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, PayloadProblem> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, PayloadProblem> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// A decoded branch: separator keys and child pages.
pub type BranchParts = (Vec<Arc<[u8]>>, Vec<u64>);

/// Decodes a branch payload into separator keys and child pages.
pub fn decode_branch(payload: &[u8], entry_count: u32) -> Result<BranchParts, PayloadProblem> {
    let mut reader = PayloadReader {
        bytes: payload,
        offset: 0,
    };
    if entry_count == 0 {
        return Err((0, "branch without separator keys"));
    }
    let mut keys: Vec<Arc<[u8]>> = Vec::with_capacity(entry_count.min(1 << 16) as usize);
    let mut pages = Vec::with_capacity(keys.capacity() + 1);
    pages.push(reader.u64()?);
    for _ in 0..entry_count {
        let at = reader.offset;
        let key_len = reader.u32()? as usize;
        if key_len > KEY_BYTES_MAX {
            return Err((at, "branch key length out of range"));
        }
        let key = reader.take(key_len)?;
        if keys.last().is_some_and(|last| last.as_ref() >= key) {
            return Err((at, "branch keys out of order"));
        }
        keys.push(key.into());
        pages.push(reader.u64()?);
    }
    if reader.offset != payload.len() {
        return Err((reader.offset, "trailing bytes in branch payload"));
    }
    Ok((keys, pages))
}

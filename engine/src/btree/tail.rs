//! What lies after the last valid commit record at open.
//!
//! Normally nothing: a persist's commit record is its last page. After a
//! crash in the middle of a persist, the tail holds that persist's nodes,
//! whole or torn, and perhaps its torn commit record; recovery drops it
//! and opens at the previous commit, which is what the persist's caller
//! was last told is durable.
//!
//! Two other things can make the last commit record fail to verify, and
//! dropping the tail would then silently roll back a commit that was
//! acknowledged: bit rot in that record, or a record written by another
//! format version. [`check_unfinished_persist`] walks the tail node by node
//! (node headers give their page counts, so user bytes inside a node are
//! never taken for a page header), and over the zero pages a persist puts
//! between its nodes and its commit record's slot (the last page of a
//! 4 KiB block, `appender.rs`), and reports either at the page where the
//! walk leaves them. A torn commit record loses whole sectors, so it is
//! never one bit away from verifying ([`damaged_commit_byte`]), and pages of
//! another file never verify under this file's salt.

use super::page::{
    commit_format, commit_slot, damaged_commit_byte, decode_node_header, PAGE_SIZE_BYTES,
    TREE_FORMAT_VERSION,
};
use crate::error::StoreError;
use crate::io::StorageFile;
use std::path::Path;

/// Checks the pages `[first_page, whole_pages)` that follow the last valid
/// commit record (all pages from 1 when there is none): an error if, past
/// whatever nodes an unfinished persist left, the next page is a commit
/// record one bit away from verifying ([`StoreError::Corrupt`] at the
/// flipped byte) or one of another format version or page size.
pub(super) fn check_unfinished_persist(
    file: &dyn StorageFile,
    path: &Path,
    salt: u64,
    first_page: u64,
    whole_pages: u64,
) -> Result<(), StoreError> {
    let mut page = vec![0u8; PAGE_SIZE_BYTES as usize];
    let mut page_id = first_page;
    // Each step moves past at least one page: bounded by the tail's length.
    while page_id < whole_pages {
        let offset = page_id * PAGE_SIZE_BYTES;
        file.read_at(&mut page, offset)
            .map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if let Ok(header) = decode_node_header(&page) {
            let node_end = page_id + u64::from(header.page_count);
            if node_end > whole_pages {
                return Ok(());
            }
            page_id = node_end;
            continue;
        }
        if commit_slot(page_id) != page_id && page.iter().all(|&byte| byte == 0) {
            // A persist's zero pages before its commit record's slot. (A
            // tree copy's record follows its last node wherever it ends,
            // but a copy is renamed in only once written whole, so it
            // never leaves a tail.)
            page_id += 1;
            continue;
        }
        if let Some(at) = damaged_commit_byte(&page, page_id, salt) {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                offset: offset + at as u64,
                reason: "the last commit record has a flipped bit",
            });
        }
        return match commit_format(&page, salt) {
            Some((version, _)) if version != TREE_FORMAT_VERSION => {
                Err(StoreError::UnsupportedVersion {
                    path: path.to_path_buf(),
                    offset: offset + 8,
                    found: version,
                    expected: TREE_FORMAT_VERSION,
                })
            }
            Some((_, page_size)) if u64::from(page_size) != PAGE_SIZE_BYTES => {
                Err(StoreError::UnsupportedPageSize {
                    path: path.to_path_buf(),
                    offset: offset + 12,
                    found: page_size,
                    expected: PAGE_SIZE_BYTES as u32,
                })
            }
            // Torn, unwritten or garbage: the remains of the persist.
            _ => Ok(()),
        };
    }
    Ok(())
}

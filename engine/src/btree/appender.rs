//! Appending encoded nodes to a tree file: one buffer of whole pages,
//! written with one call per [`PERSIST_WRITE_CHUNK_BYTES`]. Shared by a
//! persist (which appends the dirty nodes to the live file) and a tree copy
//! (which writes every node of a tree into a fresh file).

use std::path::Path;

use super::file::PERSIST_WRITE_CHUNK_BYTES;
use super::page::{encode_node, PAGE_SIZE_BYTES};
use crate::error::StoreError;
use crate::io::StorageFile;

pub(super) struct NodeAppender<'a> {
    file: &'a dyn StorageFile,
    path: &'a Path,
    salt: u64,
    buffer: Vec<u8>,
    /// The page `buffer` starts at.
    buffer_page: u64,
    next_page: u64,
}

impl<'a> NodeAppender<'a> {
    /// Appends from `first_page` on.
    pub(super) fn new(
        file: &'a dyn StorageFile,
        path: &'a Path,
        salt: u64,
        first_page: u64,
    ) -> NodeAppender<'a> {
        NodeAppender {
            file,
            path,
            salt,
            buffer: Vec::new(),
            buffer_page: first_page,
            next_page: first_page,
        }
    }

    /// The page the next node goes to (after the last, once flushed).
    pub(super) fn next_page(&self) -> u64 {
        self.next_page
    }

    /// Encodes one node; returns its first page and its page count, which
    /// must be `expected_pages` (the node's own size, computed elsewhere).
    pub(super) fn append(
        &mut self,
        kind: u8,
        entry_count: u32,
        payload: &[u8],
        expected_pages: u64,
    ) -> Result<u64, StoreError> {
        let before = self.buffer.len();
        encode_node(&mut self.buffer, kind, entry_count, payload, self.salt);
        let page = self.next_page;
        let own_pages = (self.buffer.len() - before) as u64 / PAGE_SIZE_BYTES;
        debug_assert_eq!(own_pages, expected_pages);
        self.next_page += own_pages;
        if self.buffer.len() >= PERSIST_WRITE_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(page)
    }

    /// Writes what is buffered.
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        if !self.buffer.is_empty() {
            self.file
                .write_at(&self.buffer, self.buffer_page * PAGE_SIZE_BYTES)
                .map_err(|source| StoreError::Io {
                    path: self.path.to_path_buf(),
                    source,
                })?;
            self.buffer.clear();
        }
        self.buffer_page = self.next_page;
        Ok(())
    }
}

//! Appending encoded nodes to a tree file: one buffer of whole pages,
//! written with one call per [`PERSIST_WRITE_CHUNK_BYTES`]. Shared by a
//! persist (which appends the dirty nodes to the live file) and a tree copy
//! (which writes every node of a tree into a fresh file). The buffer is
//! page-aligned, so [`StdFile`](crate::io::StdFile) writes it with
//! `O_DIRECT`.

use std::path::Path;

use super::file::PERSIST_WRITE_CHUNK_BYTES;
use super::page::{commit_slot, encode_node, node_page_count, PAGE_SIZE_BYTES};
use crate::error::StoreError;
use crate::io::{PageBuffer, StorageFile};

pub(super) struct NodeAppender<'a> {
    file: &'a dyn StorageFile,
    path: &'a Path,
    salt: u64,
    buffer: PageBuffer,
    /// The page `buffer` starts at.
    buffer_page: u64,
    next_page: u64,
}

impl<'a> NodeAppender<'a> {
    /// Appends from `first_page` on, encoding into `buffer` (empty; it
    /// grows as needed, up to about [`PERSIST_WRITE_CHUNK_BYTES`] plus one
    /// node, and [`into_buffer`](Self::into_buffer) gives it back).
    pub(super) fn new(
        file: &'a dyn StorageFile,
        path: &'a Path,
        salt: u64,
        first_page: u64,
        buffer: PageBuffer,
    ) -> NodeAppender<'a> {
        debug_assert!(buffer.is_empty());
        NodeAppender {
            file,
            path,
            salt,
            buffer,
            buffer_page: first_page,
            next_page: first_page,
        }
    }

    /// The buffer, emptied, for the next appender.
    pub(super) fn into_buffer(mut self) -> PageBuffer {
        self.buffer.clear();
        self.buffer
    }

    /// The page the next node goes to (after the last, once flushed).
    pub(super) fn next_page(&self) -> u64 {
        self.next_page
    }

    /// Encodes one node of `payload_len` bytes of payload, which
    /// `encode_payload` writes straight into the buffer (see
    /// [`encode_node`]); returns its first page. Its page count must be
    /// `expected_pages` (the node's own size, computed elsewhere).
    pub(super) fn append(
        &mut self,
        kind: u8,
        payload_len: usize,
        expected_pages: u64,
        encode_payload: impl FnOnce(&mut [u8]) -> u32,
    ) -> Result<u64, StoreError> {
        let own_pages = node_page_count(payload_len);
        debug_assert_eq!(own_pages, expected_pages);
        let pages = self.buffer.append((own_pages * PAGE_SIZE_BYTES) as usize);
        encode_node(pages, kind, payload_len, self.salt, encode_payload);
        let page = self.next_page;
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
                .write_at(self.buffer.as_slice(), self.buffer_page * PAGE_SIZE_BYTES)
                .map_err(|source| StoreError::Io {
                    path: self.path.to_path_buf(),
                    source,
                })?;
            self.buffer.clear();
        }
        self.buffer_page = self.next_page;
        Ok(())
    }

    /// The page [`flush_with_last_page`](Self::flush_with_last_page) puts
    /// its page at ([`commit_slot`] after [`next_page`](Self::next_page)).
    pub(super) fn last_page(&self) -> u64 {
        commit_slot(self.next_page)
    }

    /// Writes what is buffered and, after it in the same write, zero pages
    /// up to [`last_page`](Self::last_page) and `page` (one page: a commit
    /// record) there.
    pub(super) fn flush_with_last_page(&mut self, page: &[u8]) -> Result<(), StoreError> {
        assert_eq!(page.len() as u64, PAGE_SIZE_BYTES);
        let last_page = self.last_page();
        self.buffer
            .append(((last_page - self.next_page) * PAGE_SIZE_BYTES) as usize)
            .fill(0);
        self.buffer.append(page.len()).copy_from_slice(page);
        self.next_page = last_page + 1;
        self.flush()
    }
}

//! A tree written out whole as a new tree file: the primitive for backend
//! snapshots (send a view to a follower) and defrag (rewrite the store's
//! file without the pages no commit reaches any more).
//!
//! The file has exactly the format [`super::TreeFile::open`] reads
//! (`page.rs`): a header with a fresh salt, every node of the tree (and no
//! other), children before parents, then one commit record (sequence 1).
//! Writing follows a persist's order: nodes, fdatasync, commit record,
//! fdatasync. The tree's nodes are only read: their pages (which say where
//! they sit in the store's own file) are left alone, so a persist of the
//! store may run at the same time.

use super::file::{random_salt, CommitMeta, PERSIST_WRITE_CHUNK_BYTES};
use super::node::{Node, NodeBody, TREE_DEPTH_MAX};
use super::page::{
    encode_commit, encode_file_header, encode_node, CommitRecord, NODE_KIND_BRANCH, NODE_KIND_LEAF,
    PAGE_SIZE_BYTES,
};
use crate::error::StoreError;
use crate::io::{StdFile, StorageFile};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

/// Creates the tree file `path` (failing if anything is there) holding the
/// tree under `root` with `meta` in its commit record, and fsyncs it and
/// its directory. Returns the file's size in bytes. On error it removes
/// what it wrote. Not atomic across a crash (a partial file has no valid
/// commit record and would open as an empty store): write under a
/// temporary name and rename.
pub fn write_tree_copy(path: &Path, root: &Node, meta: CommitMeta) -> Result<u64, StoreError> {
    let io_error = |source: io::Error| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_error)?;
    let written = write_tree_copy_to(&StdFile::new(file), path, root, meta).and_then(|size| {
        sync_parent(path).map_err(io_error)?;
        Ok(size)
    });
    if written.is_err() {
        // The error says what went wrong; a leftover partial file would only
        // mislead (it opens as an empty store).
        let _ = std::fs::remove_file(path);
    }
    written
}

/// Writes the tree file into `file` (emptied first; `path` names it in
/// errors) and fdatasyncs it; see [`write_tree_copy`]. Returns its size.
pub fn write_tree_copy_to(
    file: &dyn StorageFile,
    path: &Path,
    root: &Node,
    meta: CommitMeta,
) -> Result<u64, StoreError> {
    let layout = write_copy(file, path, root, meta, 1)?;
    Ok(layout.size_bytes())
}

/// Where [`write_copy`] put things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CopyLayout {
    /// The new file's salt.
    pub(super) salt: u64,
    /// The root node's page.
    pub(super) root_page: u64,
    /// The commit record's page, the last one.
    pub(super) commit_page: u64,
    /// The commit record's sequence number.
    pub(super) commit_seq: u64,
}

impl CopyLayout {
    /// Pages of the file.
    pub(super) fn page_count(&self) -> u64 {
        self.commit_page + 1
    }

    /// Bytes of the file.
    pub(super) fn size_bytes(&self) -> u64 {
        self.page_count() * PAGE_SIZE_BYTES
    }
}

/// [`write_tree_copy_to`] with `commit_seq` in the commit record; returns
/// the layout. Nodes go in post-order (children first) from page 1, each
/// right after the previous one: [`assign_copy_pages`] relies on it.
pub(super) fn write_copy(
    file: &dyn StorageFile,
    path: &Path,
    root: &Node,
    meta: CommitMeta,
    commit_seq: u64,
) -> Result<CopyLayout, StoreError> {
    assert!(commit_seq > 0, "commit sequence numbers start at 1");
    let io_error = |source: io::Error| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let salt = random_salt();
    file.set_len(0).map_err(io_error)?;
    file.write_at(&encode_file_header(salt), 0)
        .map_err(io_error)?;
    let mut writer = CopyWriter {
        file,
        path: path.to_path_buf(),
        salt,
        buffer: Vec::new(),
        buffer_page: 1,
        next_page: 1,
    };
    let root_page = writer.write_subtree(root, 0)?;
    writer.flush()?;
    let commit_page = writer.next_page;
    assert!(
        root_page < commit_page,
        "the root is written before the commit"
    );
    file.sync_data().map_err(io_error)?;
    let record = CommitRecord {
        commit_seq,
        commit_page,
        root_page,
        history_root_page: 0,
        applied_index: meta.applied_index,
        revision: meta.revision,
        compact_revision: meta.compact_revision,
    };
    file.write_at(&encode_commit(&record, salt), commit_page * PAGE_SIZE_BYTES)
        .map_err(io_error)?;
    file.sync_data().map_err(io_error)?;
    let layout = CopyLayout {
        salt,
        root_page,
        commit_page,
        commit_seq,
    };
    debug_assert_eq!(file.len().ok(), Some(layout.size_bytes()));
    Ok(layout)
}

/// Records on every node under `root` the page [`write_copy`] gave it in
/// the copy (and its subtree's page count), by walking the tree in the
/// same order and recomputing each node's size instead of remembering a
/// page per node. Returns (root page, first page after the last node),
/// which the caller checks against the [`CopyLayout`]. The tree must be
/// the one written, unchanged (a snapshot: its nodes are immutable).
pub(super) fn assign_copy_pages(root: &Node) -> (u64, u64) {
    fn assign(node: &Node, next_page: &mut u64, depth: usize) -> (u64, u64) {
        assert!(depth < TREE_DEPTH_MAX, "tree deeper than {TREE_DEPTH_MAX}");
        let mut children_pages = 0;
        if let NodeBody::Branch { children, .. } = &node.body {
            for child in children {
                children_pages += assign(child, next_page, depth + 1).1;
            }
        }
        let page = *next_page;
        let own_pages = node.own_page_count();
        *next_page += own_pages;
        let subtree_pages = own_pages + children_pages;
        node.set_written(page, subtree_pages);
        (page, subtree_pages)
    }
    let mut next_page = 1;
    let (root_page, _) = assign(root, &mut next_page, 0);
    (root_page, next_page)
}

/// fsyncs the directory holding `path`, so the new name is durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)?.sync_all()
}

/// Appends nodes from page 1 on, buffering up to
/// [`PERSIST_WRITE_CHUNK_BYTES`] per write call.
struct CopyWriter<'a> {
    file: &'a dyn StorageFile,
    path: PathBuf,
    salt: u64,
    buffer: Vec<u8>,
    /// The page `buffer` starts at.
    buffer_page: u64,
    next_page: u64,
}

impl CopyWriter<'_> {
    /// Writes `node`'s subtree, children first; returns `node`'s page.
    fn write_subtree(&mut self, node: &Node, depth: usize) -> Result<u64, StoreError> {
        assert!(depth < TREE_DEPTH_MAX, "tree deeper than {TREE_DEPTH_MAX}");
        let (kind, child_pages) = match &node.body {
            NodeBody::Leaf(_) => (NODE_KIND_LEAF, Vec::new()),
            NodeBody::Branch { children, .. } => {
                let pages = children
                    .iter()
                    .map(|child| self.write_subtree(child, depth + 1))
                    .collect::<Result<Vec<u64>, StoreError>>()?;
                (NODE_KIND_BRANCH, pages)
            }
        };
        let (entry_count, payload) = node.encode_payload_with(|index, _| child_pages[index]);
        let before = self.buffer.len();
        encode_node(&mut self.buffer, kind, entry_count, &payload, self.salt);
        let page = self.next_page;
        let own_pages = (self.buffer.len() - before) as u64 / PAGE_SIZE_BYTES;
        // `assign_copy_pages` recomputes the layout from this size.
        debug_assert_eq!(own_pages, node.own_page_count());
        self.next_page += own_pages;
        debug_assert!(child_pages.iter().all(|&child| child < page));
        if self.buffer.len() >= PERSIST_WRITE_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(page)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if !self.buffer.is_empty() {
            self.file
                .write_at(&self.buffer, self.buffer_page * PAGE_SIZE_BYTES)
                .map_err(|source| StoreError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            self.buffer.clear();
        }
        self.buffer_page = self.next_page;
        Ok(())
    }
}

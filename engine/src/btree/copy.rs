//! A tree written out whole as a new tree file: the primitive for backend
//! snapshots (send a view to a follower) and defrag (rewrite the store's
//! file without the pages no commit reaches any more).
//!
//! The file has exactly the format [`super::TreeFile::open`] reads
//! (`page.rs`): a header with a fresh salt, every node of the tree (and no
//! other), children before parents, then one commit record (sequence 1;
//! a defrag continues its file's sequence).
//! Writing follows a persist's order: nodes, fdatasync, commit record,
//! fdatasync; [`write_tree_copy`] does it under a `.part` name and renames
//! the result into place, so a crash never leaves a partial copy under the
//! final name. The tree's nodes are only read: their pages (which say where
//! they sit in the store's own file) are left alone, so a persist of the
//! store may run at the same time.

use super::appender::NodeAppender;
use super::file::{random_salt, CommitMeta};
use super::node::{Node, NodeBody, TREE_DEPTH_MAX};
use super::page::{
    encode_commit, encode_file_header, CommitRecord, NODE_KIND_BRANCH, NODE_KIND_LEAF,
    PAGE_SIZE_BYTES,
};
use crate::error::StoreError;
use crate::io::{FileSystem, PageBuffer, StdFileSystem, StorageFile};
use std::io;
use std::path::{Path, PathBuf};

/// Appended to a copy's name for the file it is written to before the
/// rename.
pub const PART_FILE_SUFFIX: &str = ".part";

/// Where [`write_tree_copy`] writes the copy for `path` before renaming it:
/// `<path>.part`, in the same directory.
pub fn part_file_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(PART_FILE_SUFFIX);
    PathBuf::from(name)
}

/// Creates the tree file `path` holding the tree under `root` with `meta`
/// in its commit record, atomically across a crash: written to
/// `<path>.part` (emptying a stale one), fdatasynced, renamed to `path`,
/// and the directory fsynced. Returns the file's size in bytes. Errors
/// with `AlreadyExists` (writing nothing) if anything is at `path` when it
/// starts; a file appearing there meanwhile would be replaced by the
/// rename. On error it removes the `.part` file; a crash leaves either no
/// `path` (maybe a `.part`, which the next write to `path` empties) or the
/// whole copy, never a partial one.
pub fn write_tree_copy(path: &Path, root: &Node, meta: CommitMeta) -> Result<u64, StoreError> {
    write_tree_copy_in(&StdFileSystem, path, root, meta)
}

/// [`write_tree_copy`] through `file_system` (crash tests pass a
/// fault-injecting one).
pub fn write_tree_copy_in(
    file_system: &dyn FileSystem,
    path: &Path,
    root: &Node,
    meta: CommitMeta,
) -> Result<u64, StoreError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| StoreError::Io { path, source }
    };
    if file_system.exists(path).map_err(io_error(path))? {
        return Err(io_error(path)(io::Error::from(
            io::ErrorKind::AlreadyExists,
        )));
    }
    let part_path = part_file_path(path);
    let part = file_system
        .create(&part_path)
        .map_err(io_error(&part_path))?;
    let written = write_tree_copy_to(part.as_ref(), &part_path, root, meta);
    drop(part);
    let renamed = written.and_then(|size| {
        file_system
            .rename(&part_path, path)
            .map_err(io_error(&part_path))?;
        Ok(size)
    });
    match renamed {
        // Past the rename there is no `.part` to remove, and `path` holds
        // the whole copy whether or not its name survives a crash.
        Ok(size) => file_system
            .sync_parent_dir(path)
            .map_err(io_error(path))
            .map(|()| size),
        Err(error) => {
            // The error says what went wrong; a leftover partial file would
            // only mislead (it opens as an empty store).
            let _ = file_system.remove_file(&part_path);
            Err(error)
        }
    }
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
        nodes: NodeAppender::new(file, path, salt, 1, PageBuffer::default()),
    };
    let root_page = writer.write_subtree(root, 0)?;
    writer.nodes.flush()?;
    let commit_page = writer.nodes.next_page();
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

/// Writes a whole tree from page 1 on.
struct CopyWriter<'a> {
    nodes: NodeAppender<'a>,
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
        // `assign_copy_pages` recomputes the layout from this size.
        let page = self.nodes.append(
            kind,
            node.encoded_payload_len(),
            node.own_page_count(),
            |out| node.encode_payload_into(out, |index, _| child_pages[index]),
        )?;
        debug_assert!(child_pages.iter().all(|&child| child < page));
        Ok(page)
    }
}

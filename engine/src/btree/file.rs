//! The B+tree file: creation, recovery at the last valid commit record,
//! loading the tree, and append-only persists.
//!
//! A persist appends every dirty node (children before parents) and one
//! commit record page after them, in one write, and fdatasyncs once.
//! Recovery scans back from the end for the last page that verifies as a
//! commit record (salted crc32c, its own page number inside); anything
//! after it is the remains of an unfinished persist and is truncated, once
//! `tail.rs` has made sure it holds no commit record damaged by bit rot or
//! of another format version. Every node reachable from that commit must
//! verify (checksum, zero padding), or open fails naming the file and byte
//! offset, with one exception: the disk may keep a persist's commit record
//! without all the nodes written with it when a crash comes before the
//! fdatasync returns, so damage among the pages that persist wrote (after
//! the previous commit record) opens the previous commit instead, and
//! [`Recovered::dropped`] says so.
//!
//! A defrag (`defrag.rs`) replaces the file with a packed copy of a tree by
//! rename; a `<name>.defrag` file left by a crash before the rename is
//! removed at open. Files are created, renamed and removed through a
//! [`FileSystem`], so crash tests can fail those steps too.

use super::appender::NodeAppender;
use super::branch::decode_branch;
use super::leaf::Leaf;
use super::node::{Node, NodeBody, TREE_DEPTH_MAX};
use super::page::{
    decode_commit, decode_file_header, decode_node_header, encode_commit, encode_file_header,
    first_nonzero, node_crc_matches, CommitRecord, HeaderProblem, COMMIT_RECORD_BYTES,
    NODE_HEADER_BYTES, NODE_KIND_BRANCH, NODE_KIND_LEAF, PAGE_SIZE_BYTES,
};
use crate::error::StoreError;
use crate::io::{FileSystem, PageBuffer, StdFileSystem, StorageFile};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Dirty nodes are buffered up to this many bytes before a write call.
pub(crate) const PERSIST_WRITE_CHUNK_BYTES: usize = 8 << 20;
/// A persist's node buffer is kept for the next one up to this size
/// (a bigger one, from a large persist, is freed).
const KEPT_NODE_BUFFER_BYTES_MAX: usize = 2 << 20;

/// The state a commit record describes, minus the tree itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CommitMeta {
    /// Raft index of the last applied batch.
    pub applied_index: u64,
    /// MVCC revision.
    pub revision: i64,
    /// MVCC compaction point.
    pub compact_revision: i64,
}

/// An open B+tree file.
pub struct TreeFile {
    pub(super) path: PathBuf,
    pub(super) file: Box<dyn StorageFile>,
    /// Creates, renames and removes the files a defrag needs.
    pub(super) file_system: Arc<dyn FileSystem>,
    pub(super) salt: u64,
    /// Pages in use (the next node goes here).
    pub(super) page_count: u64,
    /// Sequence number of the last commit (0 = none yet).
    pub(super) commit_seq: u64,
    /// Pages the last commit references: the header, every node reachable
    /// from its root, and the commit record itself (1 with no commit).
    pub(super) referenced_pages: u64,
    /// A defrag renamed a new file in but fsyncing the directory failed:
    /// the next persist syncs it before writing anything.
    pub(super) dir_sync_pending: bool,
    /// The last persist's node buffer, emptied, for the next one (so its
    /// pages are not faulted in anew each time), up to
    /// [`KEPT_NODE_BUFFER_BYTES_MAX`].
    node_buffer: PageBuffer,
}

impl std::fmt::Debug for TreeFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeFile")
            .field("path", &self.path)
            .field("page_count", &self.page_count)
            .field("commit_seq", &self.commit_seq)
            .field("referenced_pages", &self.referenced_pages)
            .field("dir_sync_pending", &self.dir_sync_pending)
            .finish_non_exhaustive()
    }
}

/// What [`TreeFile::open`] recovered.
#[derive(Debug)]
pub struct Recovered {
    /// The tree's root (an empty leaf for a new file).
    pub root: Arc<Node>,
    /// The committed state; default for a new file.
    pub meta: CommitMeta,
    /// The newest commit, when its persist never finished and the file
    /// opened at the commit before it instead.
    pub dropped: Option<DroppedCommit>,
}

impl Recovered {
    /// A file with no commit: an empty tree.
    fn empty() -> Recovered {
        Recovered {
            root: Node::empty(),
            meta: CommitMeta::default(),
            dropped: None,
        }
    }
}

/// A commit record recovery found whole but did not open, because nodes
/// its persist wrote with it did not reach the disk (the persist never
/// returned: see [`TreeFile::persist`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedCommit {
    /// Its sequence number.
    pub commit_seq: u64,
    /// The raft index it would have made durable.
    pub applied_index: u64,
    /// Byte offset in the file of the first damage found in its nodes.
    pub damage_offset: u64,
    /// That damage, as the error that names the file and offset.
    pub damage: String,
}

/// A random salt for a new file (falls back to the clock and pid).
pub(crate) fn random_salt() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the valid,
    // exclusively borrowed buffer.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if filled == bytes.len() as isize {
        return u64::from_le_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

impl TreeFile {
    /// Opens the file at `path`, creating it (atomically, via a temporary
    /// file and rename) when missing; an existing empty file is refused as
    /// truncated.
    pub fn open(path: &Path) -> Result<(TreeFile, Recovered), StoreError> {
        Self::open_in(path, Arc::new(StdFileSystem))
    }

    /// [`TreeFile::open`] through `file_system` (crash tests pass a
    /// fault-injecting one); later defrags use it too.
    pub fn open_in(
        path: &Path,
        file_system: Arc<dyn FileSystem>,
    ) -> Result<(TreeFile, Recovered), StoreError> {
        let io_error = |source: io::Error| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        if !file_system.exists(path).map_err(io_error)? {
            let tmp_path = path.with_extension("tmp");
            let tmp = file_system.create(&tmp_path).map_err(io_error)?;
            tmp.write_at(&encode_file_header(random_salt()), 0)
                .map_err(io_error)?;
            tmp.sync_data().map_err(io_error)?;
            drop(tmp);
            file_system.rename(&tmp_path, path).map_err(io_error)?;
            file_system.sync_parent_dir(path).map_err(io_error)?;
        }
        let file = file_system.open(path).map_err(io_error)?;
        if file.len().map_err(io_error)? == 0 {
            // Created above with its header before it got its name, so an
            // empty file here was cut, not new.
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                reason: "empty file: truncated (a tree file always has its header page)",
            });
        }
        Self::open_with_file_in(path, file, file_system)
    }

    /// Opens through any [`StorageFile`] (tests pass a fault-injecting one);
    /// `path` names the file in errors. An empty file gets a header. A
    /// defrag of this file creates its new file with `std::fs`.
    pub fn open_with_file(
        path: &Path,
        file: Box<dyn StorageFile>,
    ) -> Result<(TreeFile, Recovered), StoreError> {
        Self::open_with_file_in(path, file, Arc::new(StdFileSystem))
    }

    /// [`TreeFile::open_with_file`] with the [`FileSystem`] a defrag uses.
    pub fn open_with_file_in(
        path: &Path,
        file: Box<dyn StorageFile>,
        file_system: Arc<dyn FileSystem>,
    ) -> Result<(TreeFile, Recovered), StoreError> {
        let io_error = |source: io::Error| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        super::defrag::remove_stale_defrag_file(path, file_system.as_ref())?;
        let corrupt = |offset: u64, reason: &'static str| StoreError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason,
        };
        let mut len_bytes = file.len().map_err(io_error)?;
        if len_bytes == 0 {
            file.write_at(&encode_file_header(random_salt()), 0)
                .map_err(io_error)?;
            file.sync_data().map_err(io_error)?;
            len_bytes = PAGE_SIZE_BYTES;
        }
        if len_bytes < PAGE_SIZE_BYTES {
            return Err(corrupt(len_bytes, "file shorter than its header page"));
        }
        let mut page = vec![0u8; PAGE_SIZE_BYTES as usize];
        file.read_at(&mut page, 0).map_err(io_error)?;
        let salt = decode_file_header(&page).map_err(|problem| match problem {
            HeaderProblem::Corrupt(offset, reason) => corrupt(offset, reason),
            HeaderProblem::Version(offset, found) => StoreError::UnsupportedVersion {
                path: path.to_path_buf(),
                offset,
                found,
                expected: super::page::TREE_FORMAT_VERSION,
            },
            HeaderProblem::PageSize(offset, found) => StoreError::UnsupportedPageSize {
                path: path.to_path_buf(),
                offset,
                found,
                expected: PAGE_SIZE_BYTES as u32,
            },
        })?;

        // Scan back for the last valid commit record.
        let whole_pages = len_bytes / PAGE_SIZE_BYTES;
        let commit = last_commit_before(file.as_ref(), path, salt, whole_pages)?;
        // What follows must be the remains of an unfinished persist, not a
        // later commit record that bit rot made us skip.
        let first_tail_page = commit.map_or(1, |record| record.commit_page + 1);
        super::tail::check_unfinished_persist(
            file.as_ref(),
            path,
            salt,
            first_tail_page,
            whole_pages,
        )?;
        let mut tree_file = TreeFile {
            path: path.to_path_buf(),
            file,
            file_system,
            salt,
            page_count: 1,
            commit_seq: 0,
            referenced_pages: 1,
            dir_sync_pending: false,
            node_buffer: PageBuffer::default(),
        };
        let recovered = match commit {
            None => Recovered::empty(),
            Some(record) => match tree_file.load_commit(&record) {
                Ok(recovered) => recovered,
                Err(damage) => tree_file.open_previous_commit(&record, damage)?,
            },
        };
        if len_bytes > tree_file.page_count * PAGE_SIZE_BYTES {
            // The remains of a persist that did not finish.
            tree_file
                .file
                .set_len(tree_file.page_count * PAGE_SIZE_BYTES)
                .map_err(io_error)?;
            tree_file.file.sync_data().map_err(io_error)?;
        }
        Ok((tree_file, recovered))
    }

    /// Loads the tree of `record` and makes it the file's last commit.
    fn load_commit(&mut self, record: &CommitRecord) -> Result<Recovered, StoreError> {
        let root = self.load_node(record.root_page, record.commit_page, 0)?;
        self.commit_seq = record.commit_seq;
        self.page_count = record.commit_page + 1;
        self.referenced_pages = committed_pages(&root);
        Ok(Recovered {
            root,
            meta: CommitMeta {
                applied_index: record.applied_index,
                revision: record.revision,
                compact_revision: record.compact_revision,
            },
            dropped: None,
        })
    }

    /// The newest commit record verified but its tree did not load
    /// (`damage`). A persist writes its nodes and its commit record in one
    /// write and makes them durable with one fdatasync, so after a crash
    /// the record can be on disk while some of the nodes written with it
    /// are not. When the damage lies among the pages that persist wrote
    /// (after the previous commit record, before this one) and the
    /// previous commit record is the one just before it in sequence, this
    /// is such a persist, which never returned: open at the previous commit
    /// (the WAL still holds what came after it). Anything else is refused
    /// with `damage`.
    fn open_previous_commit(
        &mut self,
        newest: &CommitRecord,
        damage: StoreError,
    ) -> Result<Recovered, StoreError> {
        let StoreError::Corrupt { offset, .. } = damage else {
            return Err(damage);
        };
        let damaged_page = offset / PAGE_SIZE_BYTES;
        let previous = last_commit_before(
            self.file.as_ref(),
            &self.path,
            self.salt,
            newest.commit_page,
        )?;
        let (region_start, in_sequence) = match &previous {
            Some(previous) => (
                previous.commit_page + 1,
                previous.commit_seq + 1 == newest.commit_seq,
            ),
            None => (1, newest.commit_seq == 1),
        };
        if !in_sequence || !(region_start..newest.commit_page).contains(&damaged_page) {
            return Err(damage);
        }
        let mut recovered = match &previous {
            Some(previous) => self.load_commit(previous)?,
            None => Recovered::empty(),
        };
        recovered.dropped = Some(DroppedCommit {
            commit_seq: newest.commit_seq,
            applied_index: newest.applied_index,
            damage_offset: offset,
            damage: damage.to_string(),
        });
        Ok(recovered)
    }

    fn load_node(
        &self,
        page_id: u64,
        limit_page: u64,
        depth: usize,
    ) -> Result<Arc<Node>, StoreError> {
        let offset = page_id * PAGE_SIZE_BYTES;
        let corrupt = |at: u64, reason: &'static str| StoreError::Corrupt {
            path: self.path.clone(),
            offset: offset + at,
            reason,
        };
        if depth >= TREE_DEPTH_MAX {
            return Err(corrupt(0, "tree deeper than the limit"));
        }
        if page_id == 0 || page_id >= limit_page {
            return Err(corrupt(0, "node pointer outside the committed pages"));
        }
        let io_error = |source: io::Error| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let mut bytes = vec![0u8; PAGE_SIZE_BYTES as usize];
        self.file.read_at(&mut bytes, offset).map_err(io_error)?;
        let header = decode_node_header(&bytes).map_err(|(at, reason)| corrupt(at, reason))?;
        if page_id + u64::from(header.page_count) > limit_page {
            return Err(corrupt(8, "node runs past the commit record"));
        }
        if header.page_count > 1 {
            bytes.resize(header.page_count as usize * PAGE_SIZE_BYTES as usize, 0);
            self.file
                .read_at(
                    &mut bytes[PAGE_SIZE_BYTES as usize..],
                    offset + PAGE_SIZE_BYTES,
                )
                .map_err(io_error)?;
        }
        if !node_crc_matches(&bytes, &header, self.salt) {
            return Err(corrupt(20, "node checksum mismatch"));
        }
        let payload_end = NODE_HEADER_BYTES + header.payload_len as usize;
        if let Some(at) = first_nonzero(&bytes[payload_end..]) {
            return Err(corrupt(
                (payload_end + at) as u64,
                "nonzero byte after the node's payload",
            ));
        }
        let payload = &bytes[NODE_HEADER_BYTES..NODE_HEADER_BYTES + header.payload_len as usize];
        let payload_corrupt =
            |(at, reason): (usize, &'static str)| corrupt((NODE_HEADER_BYTES + at) as u64, reason);
        let mut subtree_pages = u64::from(header.page_count);
        let body = if header.kind == NODE_KIND_LEAF {
            NodeBody::Leaf(Leaf::decode(payload, header.entry_count).map_err(payload_corrupt)?)
        } else {
            assert_eq!(header.kind, NODE_KIND_BRANCH);
            let (keys, pages) =
                decode_branch(payload, header.entry_count).map_err(payload_corrupt)?;
            drop(bytes);
            let children = pages
                .into_iter()
                .map(|child| self.load_node(child, page_id, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            subtree_pages += children
                .iter()
                .map(|child| child.subtree_pages().expect("a loaded node is counted"))
                .sum::<u64>();
            NodeBody::Branch { keys, children }
        };
        let node = Node::loaded(body, page_id);
        node.set_written(page_id, subtree_pages);
        Ok(Arc::new(node))
    }

    /// Appends every dirty node under `root` and then the commit record
    /// for `meta`, in one write, and fdatasyncs once. On error nothing in
    /// memory changes
    /// (nodes written by this attempt are marked dirty again) and the next
    /// persist starts at the same place. `root` may be a snapshot the writer
    /// has moved on from: a newer root shares its clean nodes as the same
    /// `Arc`s, so marking them dirty here covers the newer root too.
    pub fn persist(&mut self, root: &Arc<Node>, meta: CommitMeta) -> Result<(), StoreError> {
        let start_page = self.page_count;
        let result = self.try_persist(root, meta);
        if result.is_err() {
            forget_pages_from(root, start_page);
            self.page_count = start_page;
        }
        result
    }

    fn try_persist(&mut self, root: &Arc<Node>, meta: CommitMeta) -> Result<(), StoreError> {
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| StoreError::Io { path, source }
        };
        if self.dir_sync_pending {
            // A defrag's rename must be durable before anything is
            // committed on top of it (see `defrag.rs`).
            self.file_system
                .sync_parent_dir(&self.path)
                .map_err(io_error(&self.path))?;
            self.dir_sync_pending = false;
        }
        // A failed earlier persist may have left pages (even a whole commit
        // record) past our end: drop them so recovery can never pick them.
        let len_bytes = self.file.len().map_err(io_error(&self.path))?;
        if len_bytes > self.page_count * PAGE_SIZE_BYTES {
            self.file
                .set_len(self.page_count * PAGE_SIZE_BYTES)
                .map_err(io_error(&self.path))?;
        }
        let mut writer = PageWriter {
            nodes: NodeAppender::new(
                self.file.as_ref(),
                &self.path,
                self.salt,
                self.page_count,
                std::mem::take(&mut self.node_buffer),
            ),
        };
        let (root_page, root_subtree_pages) = writer.write_dirty(root, 0)?;
        let commit_page = writer.nodes.last_page();
        let record = CommitRecord {
            commit_seq: self.commit_seq + 1,
            commit_page,
            root_page,
            history_root_page: 0,
            applied_index: meta.applied_index,
            revision: meta.revision,
            compact_revision: meta.compact_revision,
        };
        // The commit record goes out in the nodes' own direct write, and
        // one fdatasync makes both durable (a second, for the record
        // alone, cost 100 us here). Until it returns, the disk may hold
        // the record without some of the nodes: recovery then finds the
        // damage among this persist's pages and opens at the previous
        // commit (`open_previous_commit`), which is what this persist's
        // caller was last told is durable.
        writer
            .nodes
            .flush_with_last_page(&encode_commit(&record, self.salt))?;
        let buffer = writer.nodes.into_buffer();
        if buffer.capacity() <= KEPT_NODE_BUFFER_BYTES_MAX {
            self.node_buffer = buffer;
        }
        self.file.sync_data().map_err(io_error(&self.path))?;
        self.page_count = commit_page + 1;
        self.commit_seq = record.commit_seq;
        self.referenced_pages = COMMIT_OVERHEAD_PAGES + root_subtree_pages;
        debug_assert!(self.referenced_pages <= self.page_count);
        Ok(())
    }

    /// Bytes the file uses.
    pub fn size_bytes(&self) -> u64 {
        self.page_count * PAGE_SIZE_BYTES
    }

    /// Bytes the last commit references: the header page, every node page
    /// reachable from its root, and the commit record page. The rest of
    /// the file is pages of superseded nodes and older commit records,
    /// which only a defrag reclaims.
    pub fn size_in_use_bytes(&self) -> u64 {
        self.referenced_pages * PAGE_SIZE_BYTES
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The last page before `end_page` (from page 1) that verifies as a commit
/// record, checking that the rest of its page is zero.
fn last_commit_before(
    file: &dyn StorageFile,
    path: &Path,
    salt: u64,
    end_page: u64,
) -> Result<Option<CommitRecord>, StoreError> {
    let mut page = vec![0u8; PAGE_SIZE_BYTES as usize];
    for page_id in (1..end_page).rev() {
        file.read_at(&mut page, page_id * PAGE_SIZE_BYTES)
            .map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if let Some(record) = decode_commit(&page, page_id, salt) {
            if let Some(at) = first_nonzero(&page[COMMIT_RECORD_BYTES..]) {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    offset: page_id * PAGE_SIZE_BYTES + (COMMIT_RECORD_BYTES + at) as u64,
                    reason: "nonzero byte after the commit record",
                });
            }
            return Ok(Some(record));
        }
    }
    Ok(None)
}

/// Pages a commit references besides its tree: the file header and the
/// commit record.
pub(super) const COMMIT_OVERHEAD_PAGES: u64 = 2;

/// Pages a commit of the clean tree under `root` references.
fn committed_pages(root: &Node) -> u64 {
    COMMIT_OVERHEAD_PAGES + subtree_pages_of(root, 0)
}

/// The pages of the clean subtree under `node`: the count recorded on it,
/// or (for a node whose page was set without one) counted and recorded.
fn subtree_pages_of(node: &Node, depth: usize) -> u64 {
    assert!(depth < TREE_DEPTH_MAX, "tree deeper than {TREE_DEPTH_MAX}");
    if let Some(pages) = node.subtree_pages() {
        return pages;
    }
    let page = node.page().expect("only clean nodes are counted");
    let mut pages = node.own_page_count();
    if let NodeBody::Branch { children, .. } = &node.body {
        pages += children
            .iter()
            .map(|child| subtree_pages_of(child, depth + 1))
            .sum::<u64>();
    }
    node.set_written(page, pages);
    pages
}

/// Marks dirty again every node written at or after `start_page` (after a
/// failed persist). Clean nodes below `start_page` have clean subtrees.
fn forget_pages_from(node: &Arc<Node>, start_page: u64) {
    match node.page() {
        Some(page) if page < start_page => {}
        _ => {
            node.set_page(None);
            if let NodeBody::Branch { children, .. } = &node.body {
                for child in children {
                    forget_pages_from(child, start_page);
                }
            }
        }
    }
}

struct PageWriter<'a> {
    nodes: NodeAppender<'a>,
}

impl PageWriter<'_> {
    /// Writes the dirty nodes under `node`, children first; returns
    /// `node`'s page and the pages of its whole subtree.
    fn write_dirty(&mut self, node: &Arc<Node>, depth: usize) -> Result<(u64, u64), StoreError> {
        assert!(depth < TREE_DEPTH_MAX);
        if let Some(page) = node.page() {
            return Ok((page, subtree_pages_of(node, depth)));
        }
        let mut children_pages = 0;
        if let NodeBody::Branch { children, .. } = &node.body {
            for child in children {
                children_pages += self.write_dirty(child, depth + 1)?.1;
            }
        }
        let kind = match node.body {
            NodeBody::Leaf(_) => NODE_KIND_LEAF,
            NodeBody::Branch { .. } => NODE_KIND_BRANCH,
        };
        let own_pages = node.own_page_count();
        let page = self
            .nodes
            .append(kind, node.encoded_payload_len(), own_pages, |out| {
                node.encode_payload_into(out, |_, child| {
                    child.page().expect("children are written before parents")
                })
            })?;
        let subtree_pages = own_pages + children_pages;
        node.set_written(page, subtree_pages);
        Ok((page, subtree_pages))
    }
}

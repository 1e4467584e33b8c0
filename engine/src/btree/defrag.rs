//! Defrag: the tree file replaced by a packed copy of one tree, swapped in
//! by rename, while the store goes on reading and writing.
//!
//! [`TreeFile::defrag`] runs as a persister job (`mvcc/persister.rs`: the
//! persister is the only owner of the [`TreeFile`]) with a snapshot root,
//! in this order:
//!
//! 1. create `<db>.defrag` (emptying a stale one) and write the snapshot's
//!    nodes into it packed from page 1, children first, then one commit
//!    record with the snapshot's meta and the next commit sequence number,
//!    fdatasyncing before and after the commit record (`copy.rs`);
//! 2. rename it over `<db>`: the commit point;
//! 3. switch the [`TreeFile`] to the new file (descriptor, salt, page count,
//!    sequence) and record on every node of the snapshot its page in the new
//!    file;
//! 4. fsync the directory, so the rename survives a crash.
//!
//! A failure before step 2 changes nothing: the old file was only read (no
//! byte of it is written), no node's page was touched, and the partial new
//! file is removed (if that fails too, the next defrag empties it and the
//! next open removes it). A failure in step 4 cannot undo the rename: the
//! store keeps the new file and remembers to fsync the directory before its
//! next persist writes anything ([`crate::DefragError::DirectorySync`]).
//!
//! A crash before the rename leaves `<db>` as it was (plus a `<db>.defrag`
//! that [`TreeFile::open`] removes); after it, `<db>` is the new file, whose
//! one commit holds the snapshot, which holds every batch the old file held
//! (the store defrags only with no persist in flight, from its working
//! root). Until the directory fsync either may come back; both are whole.
//!
//! # Why the pages may be rewritten after the swap
//!
//! A node's page says where it sits in the file persists append to; after
//! step 3 that is the new file, so every node that the working tree may
//! still share must carry its new page, and nodes the writer created since
//! the snapshot must carry none. Both hold: the writer reaches only nodes
//! of the snapshot (the same `Arc`s, copy-on-write never changes them while
//! the job holds the snapshot) or nodes it created after it, which are
//! dirty (page 0), and no persist can give them a page in between because
//! the persister runs one job at a time. Pages are read and written only
//! by persister jobs, except the writer's "unchanged" check in
//! `Store::begin_persist`, which runs with no job in flight and sees these
//! stores through the outcome channel (or ran the job itself). Nodes the
//! working tree no longer shares (held by read views) get new pages too,
//! which nobody reads.
//! Before the rename no page is set, so a failed defrag leaves every page
//! naming a place in the old file, where later persists keep appending.

use super::copy::{assign_copy_pages, write_copy};
use super::file::{CommitMeta, TreeFile};
use super::node::Node;
use crate::error::{DefragError, StoreError};
use crate::io::FileSystem;
use std::io;
use std::path::{Path, PathBuf};

/// Appended to the tree file's name for the file a defrag writes.
pub const DEFRAG_FILE_SUFFIX: &str = ".defrag";

/// Where a defrag of the tree file at `path` writes its new file:
/// `<path>.defrag`, in the same directory (so the rename stays inside one
/// file system).
pub fn defrag_file_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(DEFRAG_FILE_SUFFIX);
    PathBuf::from(name)
}

/// Removes a `<path>.defrag` a crash left behind (it never holds anything
/// the tree file lacks: a defrag that got as far as its rename left no
/// `.defrag` file).
pub(super) fn remove_stale_defrag_file(
    path: &Path,
    file_system: &dyn FileSystem,
) -> Result<(), StoreError> {
    let stale = defrag_file_path(path);
    let io_error = |source: io::Error| StoreError::Io {
        path: stale.clone(),
        source,
    };
    if file_system.exists(&stale).map_err(io_error)? {
        match file_system.remove_file(&stale) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(error)),
        }
    }
    Ok(())
}

impl TreeFile {
    /// Replaces the file with a packed copy of the tree under `root` whose
    /// one commit record carries `meta` (see the module comment). `root`
    /// must hold every batch the file's last commit holds. On success every
    /// node under `root` carries its page in the new file and later
    /// persists append there.
    pub fn defrag(&mut self, root: &Node, meta: CommitMeta) -> Result<(), DefragError> {
        let new_path = defrag_file_path(&self.path);
        let aborted = |path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| DefragError::Aborted(StoreError::Io { path, source })
        };
        let new_file = self
            .file_system
            .create(&new_path)
            .map_err(aborted(&new_path))?;
        let written = write_copy(
            new_file.as_ref(),
            &new_path,
            root,
            meta,
            self.commit_seq + 1,
        )
        .map_err(DefragError::Aborted)
        .and_then(|layout| {
            self.file_system
                .rename(&new_path, &self.path)
                .map_err(aborted(&new_path))?;
            Ok(layout)
        });
        let layout = match written {
            Ok(layout) => layout,
            Err(error) => {
                drop(new_file);
                // The error says what went wrong; a file left behind is
                // emptied by the next defrag and removed by the next open.
                let _ = self.file_system.remove_file(&new_path);
                return Err(error);
            }
        };

        // Committed: the name now holds the new file.
        self.file = new_file;
        self.salt = layout.salt;
        self.page_count = layout.page_count();
        self.commit_seq = layout.commit_seq;
        self.referenced_pages = layout.page_count();
        let (root_page, end_page) = assign_copy_pages(root);
        assert_eq!(
            (root_page, end_page),
            (layout.root_page, layout.commit_page),
            "pages recorded on the nodes match the copy written"
        );
        match self.file_system.sync_parent_dir(&self.path) {
            Ok(()) => {
                self.dir_sync_pending = false;
                Ok(())
            }
            Err(source) => {
                self.dir_sync_pending = true;
                Err(DefragError::DirectorySync {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

//! The single-writer [`Store`] and its lock-free [`StoreReader`].

use super::txn::WriteBatch;
use super::view::ReadView;
use crate::btree::{CommitMeta, Node, TreeFile};
use crate::error::StoreError;
use crate::io::StorageFile;
use arc_swap::ArcSwap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The revision of a fresh store (etcd: the first put gets revision 2).
pub const FRESH_STORE_REVISION: i64 = 1;

/// When [`Store::needs_persist`] says yes.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Changes (puts + tombstones) since the last persist.
    pub persist_ops_threshold: u64,
    /// Key + value bytes written since the last persist.
    pub persist_dirty_bytes_threshold: u64,
    /// Time since the last persist, once anything changed.
    pub persist_interval: Duration,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            persist_ops_threshold: 10_000,
            persist_dirty_bytes_threshold: 64 << 20,
            persist_interval: Duration::from_millis(100),
        }
    }
}

/// The MVCC store: one writer (the raft core), many readers via
/// [`StoreReader`].
pub struct Store {
    pub(crate) tree_file: TreeFile,
    /// The working tree; published views hold older roots.
    pub(crate) root: Arc<Node>,
    pub(crate) revision: i64,
    pub(crate) compact_revision: i64,
    pub(crate) applied_index: u64,
    persisted_index: u64,
    persisted_revision: i64,
    published: Arc<ArcSwap<ReadView>>,
    options: StoreOptions,
    pub(crate) ops_since_persist: u64,
    pub(crate) dirty_bytes_since_persist: u64,
    last_persist: Instant,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("tree_file", &self.tree_file)
            .field("revision", &self.revision)
            .field("applied_index", &self.applied_index)
            .field("persisted_index", &self.persisted_index)
            .finish_non_exhaustive()
    }
}

/// A handle shard cores use to load the latest [`ReadView`] without locks.
#[derive(Clone, Debug)]
pub struct StoreReader {
    published: Arc<ArcSwap<ReadView>>,
}

impl StoreReader {
    /// The latest published view.
    pub fn view(&self) -> Arc<ReadView> {
        self.published.load_full()
    }
}

impl Store {
    /// Opens the B+tree file at `path` (e.g. `<data-dir>/member/snap/db`),
    /// creating it when missing, at its last valid commit record.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let (tree_file, recovered) = TreeFile::open(path)?;
        Ok(Self::from_recovered(tree_file, recovered, options))
    }

    /// Opens through any [`StorageFile`] (crash tests pass a fault-injecting
    /// one); `path` names the file in errors.
    pub fn open_with_file(
        path: &Path,
        file: Box<dyn StorageFile>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let (tree_file, recovered) = TreeFile::open_with_file(path, file)?;
        Ok(Self::from_recovered(tree_file, recovered, options))
    }

    fn from_recovered(
        tree_file: TreeFile,
        recovered: crate::btree::Recovered,
        options: StoreOptions,
    ) -> Store {
        let meta = recovered.meta;
        let revision = meta.revision.max(FRESH_STORE_REVISION);
        let view = ReadView {
            root: recovered.root.clone(),
            revision,
            compact_revision: meta.compact_revision,
            applied_index: meta.applied_index,
        };
        Store {
            tree_file,
            root: recovered.root,
            revision,
            compact_revision: meta.compact_revision,
            applied_index: meta.applied_index,
            persisted_index: meta.applied_index,
            persisted_revision: meta.revision,
            published: Arc::new(ArcSwap::from_pointee(view)),
            options,
            ops_since_persist: 0,
            dirty_bytes_since_persist: 0,
            last_persist: Instant::now(),
        }
    }

    /// Raft index of the last committed batch (in memory).
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Applied index of the last batch durably in the tree file.
    pub fn persisted_index(&self) -> u64 {
        self.persisted_index
    }

    /// Current revision (1 for a fresh store).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Revisions below this are compacted (0 until compaction exists).
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// A reader handle (`Clone + Send + Sync`).
    pub fn reader(&self) -> StoreReader {
        StoreReader {
            published: self.published.clone(),
        }
    }

    /// Starts a batch of transactions; [`WriteBatch::commit`] publishes it.
    /// A batch dropped without commit leaves its changes in the working
    /// tree, published with the next commit.
    pub fn write_batch(&mut self) -> WriteBatch<'_> {
        WriteBatch::new(self)
    }

    pub(crate) fn publish(&mut self, applied_index: u64) {
        assert!(
            applied_index >= self.applied_index,
            "applied index went back from {} to {applied_index}",
            self.applied_index
        );
        self.applied_index = applied_index;
        self.published.store(Arc::new(ReadView {
            root: self.root.clone(),
            revision: self.revision,
            compact_revision: self.compact_revision,
            applied_index,
        }));
    }

    /// Whether a persist is due: enough changes, enough bytes, or enough
    /// time since the last one with anything to write.
    pub fn needs_persist(&self) -> bool {
        let changed = self.ops_since_persist > 0 || self.applied_index != self.persisted_index;
        self.ops_since_persist >= self.options.persist_ops_threshold
            || self.dirty_bytes_since_persist >= self.options.persist_dirty_bytes_threshold
            || (changed && self.last_persist.elapsed() >= self.options.persist_interval)
    }

    /// Appends every node changed since the last persist, fdatasyncs, then
    /// appends a checksummed commit record and fdatasyncs.
    pub fn persist(&mut self) -> Result<(), StoreError> {
        let unchanged = self.root.page().is_some()
            && self.applied_index == self.persisted_index
            && self.revision == self.persisted_revision;
        if unchanged {
            self.last_persist = Instant::now();
            return Ok(());
        }
        let meta = CommitMeta {
            applied_index: self.applied_index,
            revision: self.revision,
            compact_revision: self.compact_revision,
        };
        self.tree_file.persist(&self.root, meta)?;
        assert!(self.root.page().is_some(), "persist leaves the root clean");
        self.persisted_index = self.applied_index;
        self.persisted_revision = self.revision;
        self.ops_since_persist = 0;
        self.dirty_bytes_since_persist = 0;
        self.last_persist = Instant::now();
        Ok(())
    }

    /// Bytes the tree file uses.
    pub fn file_size_bytes(&self) -> u64 {
        self.tree_file.size_bytes()
    }
}

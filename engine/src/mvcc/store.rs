//! The single-writer [`Store`] and its lock-free [`StoreReader`].
//!
//! Persists run on the store's persister thread (`persister.rs`, which also
//! explains why the writer may keep applying batches meanwhile):
//! [`Store::start_persist`] hands it a snapshot of the working root and
//! returns at once, [`Store::poll_persist`] collects the outcome, and
//! [`Store::persist`] does both and waits.

use super::lease::LeaseRecord;
use super::persister::{PersistDone, PersistJob, Persister};
use super::txn::WriteBatch;
use super::view::ReadView;
use crate::btree::{CommitMeta, Node, TreeFile};
use crate::error::StoreError;
use crate::io::StorageFile;
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
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

/// A persist handed to the persister and not yet collected.
#[derive(Debug)]
struct InFlightPersist {
    /// What its commit record says.
    meta: CommitMeta,
    /// The change counters it reset when it started; given back if it fails.
    ops: u64,
    dirty_bytes: u64,
}

/// The MVCC store: one writer (the raft core), many readers via
/// [`StoreReader`]. Owns the persister thread; dropping the store waits for
/// a persist in flight and joins the thread (it persists nothing extra).
pub struct Store {
    path: PathBuf,
    persister: Persister,
    in_flight: Option<InFlightPersist>,
    /// The tree file's size after the last persist outcome collected.
    file_size_bytes: u64,
    /// The working tree; published views hold older roots.
    pub(crate) root: Arc<Node>,
    pub(crate) revision: i64,
    pub(crate) compact_revision: i64,
    pub(crate) applied_index: u64,
    persisted_index: u64,
    persisted_revision: i64,
    persisted_compact_revision: i64,
    published: Arc<ArcSwap<ReadView>>,
    options: StoreOptions,
    pub(crate) ops_since_persist: u64,
    pub(crate) dirty_bytes_since_persist: u64,
    last_persist: Instant,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("revision", &self.revision)
            .field("applied_index", &self.applied_index)
            .field("persisted_index", &self.persisted_index)
            .field("in_flight", &self.in_flight)
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
        Self::from_recovered(tree_file, recovered, options)
    }

    /// Opens through any [`StorageFile`] (crash tests pass a fault-injecting
    /// one); `path` names the file in errors.
    pub fn open_with_file(
        path: &Path,
        file: Box<dyn StorageFile>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let (tree_file, recovered) = TreeFile::open_with_file(path, file)?;
        Self::from_recovered(tree_file, recovered, options)
    }

    fn from_recovered(
        tree_file: TreeFile,
        recovered: crate::btree::Recovered,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let path = tree_file.path().to_path_buf();
        let file_size_bytes = tree_file.size_bytes();
        let persister = Persister::spawn(tree_file)?;
        let meta = recovered.meta;
        let revision = meta.revision.max(FRESH_STORE_REVISION);
        let view = ReadView {
            root: recovered.root.clone(),
            revision,
            compact_revision: meta.compact_revision,
            applied_index: meta.applied_index,
        };
        Ok(Store {
            path,
            persister,
            in_flight: None,
            file_size_bytes,
            root: recovered.root,
            revision,
            compact_revision: meta.compact_revision,
            applied_index: meta.applied_index,
            persisted_index: meta.applied_index,
            persisted_revision: meta.revision,
            persisted_compact_revision: meta.compact_revision,
            published: Arc::new(ArcSwap::from_pointee(view)),
            options,
            ops_since_persist: 0,
            dirty_bytes_since_persist: 0,
            last_persist: Instant::now(),
        })
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

    /// Revisions below this are compacted (0 until the first compaction).
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
    /// time since the last one started with anything to write. False while
    /// a persist is in flight.
    pub fn needs_persist(&self) -> bool {
        if self.in_flight.is_some() {
            return false;
        }
        let changed = self.ops_since_persist > 0
            || self.applied_index != self.persisted_index
            || self.compact_revision != self.persisted_compact_revision;
        self.ops_since_persist >= self.options.persist_ops_threshold
            || self.dirty_bytes_since_persist >= self.options.persist_dirty_bytes_threshold
            || (changed && self.last_persist.elapsed() >= self.options.persist_interval)
    }

    /// Whether a persist started by [`Store::start_persist`] has not been
    /// collected by [`Store::poll_persist`] (or [`Store::persist`]) yet.
    pub fn persist_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Starts persisting the current working root on the persister thread if
    /// `needs_persist()` and no persist is in flight. Returns true if it
    /// started one. The commit record will carry the applied index, revision
    /// and compaction point of this moment; batches applied meanwhile go to
    /// the next persist. If the persister thread is gone, the next
    /// [`Store::poll_persist`] reports [`StoreError::PersisterGone`].
    pub fn start_persist(&mut self) -> bool {
        if !self.needs_persist() {
            return false;
        }
        let Some(job) = self.begin_persist() else {
            return false;
        };
        if let Err(error) = self.persister.submit(job) {
            // Kept in flight: poll_persist reports the error (and gives the
            // counters back) like any other failed persist.
            debug_assert!(matches!(error, StoreError::PersisterGone { .. }));
        }
        true
    }

    /// Non-blocking: if the persist in flight finished, records its outcome
    /// (on success `persisted_index()`/the persisted revision advance to
    /// what that persist captured when it started) and returns it. `None`
    /// while one is in flight or when none was started.
    pub fn poll_persist(&mut self) -> Option<Result<(), StoreError>> {
        self.in_flight.as_ref()?;
        let done = self.persister.try_done()?;
        Some(self.finish_persist(done))
    }

    /// Persists synchronously: waits for a persist in flight (recording its
    /// outcome), then appends every node changed since the last persist,
    /// fdatasyncs, appends a checksummed commit record and fdatasyncs, on
    /// the persister thread, and returns that result. A failure of the
    /// persist it waited for is superseded: this persist writes everything
    /// that one would have, and returns its own error if it fails too.
    pub fn persist(&mut self) -> Result<(), StoreError> {
        if self.in_flight.is_some() {
            let done = self.persister.wait_done();
            // Superseded by the persist below (see the doc comment).
            let _earlier = self.finish_persist(done);
        }
        let Some(job) = self.begin_persist() else {
            return Ok(());
        };
        let done = match self.persister.submit(job) {
            Ok(()) => self.persister.wait_done(),
            Err(error) => PersistDone {
                result: Err(error),
                file_size_bytes: None,
            },
        };
        self.finish_persist(done)
    }

    /// Captures the job for the current root and marks it in flight, or
    /// returns `None` when the file already holds exactly this state. The
    /// change counters restart here: they measure what the next persist
    /// will carry.
    fn begin_persist(&mut self) -> Option<PersistJob> {
        assert!(self.in_flight.is_none(), "one persist in flight at most");
        self.last_persist = Instant::now();
        let unchanged = self.root.page().is_some()
            && self.applied_index == self.persisted_index
            && self.revision == self.persisted_revision
            && self.compact_revision == self.persisted_compact_revision;
        if unchanged {
            // Nothing to carry: the file holds exactly this state.
            self.ops_since_persist = 0;
            self.dirty_bytes_since_persist = 0;
            return None;
        }
        let meta = CommitMeta {
            applied_index: self.applied_index,
            revision: self.revision,
            compact_revision: self.compact_revision,
        };
        self.in_flight = Some(InFlightPersist {
            meta,
            ops: self.ops_since_persist,
            dirty_bytes: self.dirty_bytes_since_persist,
        });
        self.ops_since_persist = 0;
        self.dirty_bytes_since_persist = 0;
        Some(PersistJob {
            root: self.root.clone(),
            meta,
        })
    }

    /// Records the outcome of the persist in flight.
    fn finish_persist(&mut self, done: PersistDone) -> Result<(), StoreError> {
        let in_flight = self
            .in_flight
            .take()
            .expect("an outcome arrives only for a persist in flight");
        if let Some(size) = done.file_size_bytes {
            self.file_size_bytes = size;
        }
        match &done.result {
            Ok(()) => {
                assert!(
                    in_flight.meta.applied_index >= self.persisted_index,
                    "persisted index went back from {} to {}",
                    self.persisted_index,
                    in_flight.meta.applied_index
                );
                self.persisted_index = in_flight.meta.applied_index;
                self.persisted_revision = in_flight.meta.revision;
                self.persisted_compact_revision = in_flight.meta.compact_revision;
            }
            Err(_) => {
                // Nothing became durable: the next persist carries these too.
                self.ops_since_persist += in_flight.ops;
                self.dirty_bytes_since_persist += in_flight.dirty_bytes;
            }
        }
        done.result
    }

    /// Every lease record of the working tree, ascending by id (for
    /// rebuilding the lessor at start-up).
    pub fn leases(&self) -> Vec<LeaseRecord> {
        super::lease::leases(&self.root)
    }

    /// MVCC entries in the working tree, lease records not counted (one
    /// full scan: for tests and diagnostics, not for hot paths).
    pub fn tree_entry_count(&self) -> u64 {
        super::compact::entry_count(&self.root)
    }

    /// Bytes the tree file uses, as of the last persist outcome collected.
    pub fn file_size_bytes(&self) -> u64 {
        self.file_size_bytes
    }
}

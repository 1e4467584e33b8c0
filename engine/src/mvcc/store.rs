//! The single-writer [`Store`] and its lock-free [`StoreReader`].
//!
//! Persists run on the store's persister thread (`persister.rs`, which also
//! explains why the writer may keep applying batches meanwhile):
//! [`Store::start_persist`] hands it a snapshot of the working root and
//! returns at once, and [`Store::poll_persist`] collects the outcome.
//! [`Store::persist`], which waits anyway, runs the same job on the
//! caller's thread. Defrags go the same two ways, one job at a time with
//! the persists (`defrag.rs`).

use super::lease::LeaseRecord;
use super::persister::{Job, JobDone, JobKind, Outcome, Persister};
use super::revision::Revision;
use super::txn::WriteBatch;
use super::view::ReadView;
use crate::btree::{
    fit_changed, insert_run, merge_changed, CommitMeta, DroppedCommit, Leaf, Node, TreeFile,
};
use crate::error::StoreError;
use crate::io::{FileSystem, StorageFile};
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

/// A job handed to the persister and not yet collected.
#[derive(Debug)]
pub(super) struct InFlightJob {
    pub(super) kind: JobKind,
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
    pub(super) persister: Persister,
    pub(super) in_flight: Option<InFlightJob>,
    /// [`Store::start_defrag`] was called while a persist was in flight:
    /// the defrag starts when that persist is collected.
    pub(super) defrag_queued: bool,
    /// A finished defrag's outcome, collected (by a poll or a blocking
    /// call) but not yet returned by [`Store::poll_defrag`].
    pub(super) defrag_outcome: Option<Result<(), crate::error::DefragError>>,
    /// The tree file's size after the last persist outcome collected.
    file_size_bytes: u64,
    /// Bytes of the file its last commit references, as of the last
    /// outcome collected (counted on the persister thread).
    size_in_use_bytes: u64,
    /// The working tree; published views hold older roots.
    pub(crate) root: Arc<Node>,
    pub(crate) revision: i64,
    pub(crate) compact_revision: i64,
    /// The revision index entry where the pending physical removal of
    /// entries superseded at `compact_revision` resumes (`compact.rs`);
    /// `None` when none is pending. Not persisted: the index itself shows
    /// at open whether a removal was cut short.
    pub(crate) compaction_resume: Option<Revision>,
    pub(crate) applied_index: u64,
    persisted_index: u64,
    /// Applied index of the commit before the last persisted one: what
    /// recovery opens if it finds the last persist's nodes damaged
    /// (`TreeFile::open_previous_commit`), so the WAL keeps entries from
    /// it on ([`Store::wal_needed_from`]).
    fallback_index: u64,
    /// The newest commit recovery found but did not open.
    dropped_commit: Option<DroppedCommit>,
    persisted_revision: i64,
    persisted_compact_revision: i64,
    published: Arc<ArcSwap<ReadView>>,
    options: StoreOptions,
    pub(crate) ops_since_persist: u64,
    pub(crate) dirty_bytes_since_persist: u64,
    last_persist: Instant,
    /// A put's key buffer, kept between puts so a put allocates none (it
    /// grows to the longest MVCC key put, at most a key's limit plus its
    /// escapes and suffix).
    pub(crate) put_key_scratch: Vec<u8>,
    /// Revision index entries written since the last flush, in revision
    /// order, inserted into the tree as one run
    /// ([`Store::flush_pending_index`]) before anything reads the index
    /// or the root leaves the writer: at publish, before a persist or
    /// defrag captures the root, before a compaction step walks the index,
    /// and when it reaches [`PENDING_INDEX_BYTES_MAX`].
    pub(crate) pending_index: Leaf,
}

/// Bytes of revision index entries a store holds back at most before it
/// inserts them into the tree.
pub(crate) const PENDING_INDEX_BYTES_MAX: usize = 1 << 20;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("revision", &self.revision)
            .field("applied_index", &self.applied_index)
            .field("persisted_index", &self.persisted_index)
            .field("in_flight", &self.in_flight)
            .field("defrag_queued", &self.defrag_queued)
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

    /// [`Store::open`] through `file_system`, which also creates, renames
    /// and removes the files of later defrags (crash tests pass a
    /// fault-injecting one).
    pub fn open_in(
        path: &Path,
        file_system: Arc<dyn FileSystem>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let (tree_file, recovered) = TreeFile::open_in(path, file_system)?;
        Self::from_recovered(tree_file, recovered, options)
    }

    /// Opens through any [`StorageFile`] (crash tests pass a fault-injecting
    /// one); `path` names the file in errors. A defrag replaces it with a
    /// file created through `std::fs` (use [`Store::open_in`] to control
    /// that too).
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
        let size_in_use_bytes = tree_file.size_in_use_bytes();
        let persister = Persister::spawn(tree_file)?;
        let meta = recovered.meta;
        let revision = meta.revision.max(FRESH_STORE_REVISION);
        let recovered_root = recovered.root.clone();
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
            defrag_queued: false,
            defrag_outcome: None,
            file_size_bytes,
            size_in_use_bytes,
            root: recovered.root,
            revision,
            compact_revision: meta.compact_revision,
            compaction_resume: super::compact::pending_at_open(
                &recovered_root,
                meta.compact_revision,
            ),
            applied_index: meta.applied_index,
            persisted_index: meta.applied_index,
            // The commit before the opened one is not known here: keep
            // the whole WAL until a persist of this process finishes.
            fallback_index: 0,
            dropped_commit: recovered.dropped,
            persisted_revision: meta.revision,
            persisted_compact_revision: meta.compact_revision,
            published: Arc::new(ArcSwap::from_pointee(view)),
            options,
            ops_since_persist: 0,
            dirty_bytes_since_persist: 0,
            last_persist: Instant::now(),
            put_key_scratch: Vec::new(),
            pending_index: Leaf::new(),
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

    /// The raft index from which the WAL must keep entries: the applied
    /// index of the commit before the last persisted one, which recovery
    /// falls back to if the last persist's nodes turn out damaged at open.
    pub fn wal_needed_from(&self) -> u64 {
        self.fallback_index
    }

    /// The newest commit the file held at open but that recovery did not
    /// open (its persist never finished: some of its nodes did not reach
    /// the disk), with the damage found; the store opened at the commit
    /// before it.
    pub fn dropped_commit(&self) -> Option<&DroppedCommit> {
        self.dropped_commit.as_ref()
    }

    /// Current revision (1 for a fresh store).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Revisions below this are compacted (0 until the first compaction).
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// Whether an incremental compaction ([`WriteBatch::compact_start`])
    /// still has superseded entries to remove with
    /// [`WriteBatch::compact_step`].
    pub fn compaction_pending(&self) -> bool {
        self.compaction_resume.is_some()
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

    /// Inserts the revision index entries held back ([`Store::pending_index`])
    /// into the tree.
    pub(crate) fn flush_pending_index(&mut self) {
        if !self.pending_index.is_empty() {
            insert_run(&mut self.root, &self.pending_index);
            self.pending_index.clear();
        }
    }

    pub(crate) fn publish(&mut self, applied_index: u64) {
        assert!(
            applied_index >= self.applied_index,
            "applied index went back from {} to {applied_index}",
            self.applied_index
        );
        self.applied_index = applied_index;
        self.flush_pending_index();
        // The nodes this batch changed stop growing here: neighbours it
        // left small merge, and leaves are cut back (`btree/leaf.rs`).
        merge_changed(&mut self.root);
        fit_changed(&mut self.root);
        self.published.store(Arc::new(ReadView {
            root: self.root.clone(),
            revision: self.revision,
            compact_revision: self.compact_revision,
            applied_index,
        }));
    }

    /// Whether a persist is due: enough changes, enough bytes, or enough
    /// time since the last one started with anything to write. False while
    /// a persist or defrag is in flight or a defrag is queued.
    pub fn needs_persist(&self) -> bool {
        if self.in_flight.is_some() || self.defrag_queued {
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
        self.in_flight
            .as_ref()
            .is_some_and(|job| job.kind == JobKind::Persist)
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
        // A dead persister thread is reported by poll_persist, which gives
        // the counters back like for any other failed persist.
        self.persister.submit(job);
        true
    }

    /// Non-blocking: if the job in flight finished, records its outcome
    /// and returns what it means for persists:
    ///
    /// - a persist: its result (on success `persisted_index()`/the
    ///   persisted revision advance to what it captured when it started);
    /// - a defrag: `Some(Ok(()))` if it succeeded (its file's one commit
    ///   record holds its snapshot, so it counts as a persist of it), else
    ///   `None` (nothing was persisted); either way the defrag's own result
    ///   is kept for [`Store::poll_defrag`].
    ///
    /// Collecting a persist starts a defrag queued behind it. `None` while
    /// a job is in flight or when none was started. Call it once per cycle
    /// of the writer's loop.
    pub fn poll_persist(&mut self) -> Option<Result<(), StoreError>> {
        self.in_flight.as_ref()?;
        let done = self.persister.try_done()?;
        match self.finish_job(done) {
            Outcome::Persist(result) => {
                self.start_queued_defrag();
                Some(result)
            }
            Outcome::Defrag(result) => {
                let committed = result.is_ok();
                self.defrag_outcome = Some(result);
                committed.then_some(Ok(()))
            }
        }
    }

    /// Persists synchronously: waits for a persist in flight (recording its
    /// outcome), then appends every node changed since the last persist and
    /// a checksummed commit record and fdatasyncs, on the caller's thread
    /// (no hand-off to the persister thread and back), and returns that
    /// result. A failure of the persist it waited for is superseded: this
    /// persist writes everything that one would have, and returns its own
    /// error if it fails too.
    ///
    /// A defrag in flight or queued is waited for (queued: started and
    /// waited for) first; its outcome is kept for [`Store::poll_defrag`].
    pub fn persist(&mut self) -> Result<(), StoreError> {
        self.wait_for_jobs();
        let Some(job) = self.begin_persist() else {
            return Ok(());
        };
        let done = self.persister.run_here(job);
        match self.finish_job(done) {
            Outcome::Persist(result) => result,
            Outcome::Defrag(_) => unreachable!("a persist was submitted"),
        }
    }

    /// Waits for the job in flight and a defrag queued behind it, recording
    /// their outcomes: a persist's is superseded by whatever the caller
    /// submits next (which carries everything it would have), a defrag's is
    /// kept for [`Store::poll_defrag`].
    pub(super) fn wait_for_jobs(&mut self) {
        loop {
            if self.in_flight.is_some() {
                let done = self.persister.wait_done();
                match self.finish_job(done) {
                    Outcome::Persist(_superseded) => {}
                    Outcome::Defrag(result) => self.defrag_outcome = Some(result),
                }
            }
            if !self.defrag_queued {
                return;
            }
            self.start_queued_defrag();
        }
    }

    /// Captures a persist of the current root and marks it in flight
    /// ([`Store::begin_job`]), or returns `None` (restarting the change
    /// counters) when the file already holds exactly this state.
    fn begin_persist(&mut self) -> Option<Job> {
        assert!(self.in_flight.is_none(), "one job in flight at most");
        self.flush_pending_index();
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
        Some(self.begin_job(JobKind::Persist))
    }

    /// Captures a job of `kind` for the current root and marks it in
    /// flight. The change counters restart here: they measure what the next
    /// job will carry.
    pub(super) fn begin_job(&mut self, kind: JobKind) -> Job {
        assert!(self.in_flight.is_none(), "one job in flight at most");
        self.flush_pending_index();
        let meta = CommitMeta {
            applied_index: self.applied_index,
            revision: self.revision,
            compact_revision: self.compact_revision,
        };
        self.in_flight = Some(InFlightJob {
            kind,
            meta,
            ops: self.ops_since_persist,
            dirty_bytes: self.dirty_bytes_since_persist,
        });
        self.ops_since_persist = 0;
        self.dirty_bytes_since_persist = 0;
        Job {
            kind,
            root: self.root.clone(),
            meta,
        }
    }

    /// Records the outcome of the job in flight: a job that committed its
    /// snapshot advances the persisted state to what it captured.
    pub(super) fn finish_job(&mut self, done: JobDone) -> Outcome {
        let in_flight = self
            .in_flight
            .take()
            .expect("an outcome arrives only for a job in flight");
        assert_eq!(
            matches!(done.outcome, Outcome::Defrag(_)),
            in_flight.kind == JobKind::Defrag,
            "the outcome is of the job in flight"
        );
        if let Some(size) = done.file_size_bytes {
            self.file_size_bytes = size;
        }
        if let Some(size) = done.size_in_use_bytes {
            self.size_in_use_bytes = size;
        }
        if done.outcome.committed() {
            assert!(
                in_flight.meta.applied_index >= self.persisted_index,
                "persisted index went back from {} to {}",
                self.persisted_index,
                in_flight.meta.applied_index
            );
            self.fallback_index = self.persisted_index;
            self.persisted_index = in_flight.meta.applied_index;
            self.persisted_revision = in_flight.meta.revision;
            self.persisted_compact_revision = in_flight.meta.compact_revision;
        } else {
            // Nothing became durable: the next persist carries these too.
            self.ops_since_persist += in_flight.ops;
            self.dirty_bytes_since_persist += in_flight.dirty_bytes;
        }
        done.outcome
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

    /// Bytes the tree file uses, as of the last persist or defrag outcome
    /// collected.
    pub fn file_size_bytes(&self) -> u64 {
        self.file_size_bytes
    }

    /// etcd's `db_size_in_use`: bytes of the tree file that its last
    /// commit references (the header page, the pages of every node
    /// reachable from the committed root, and the commit record page), as
    /// of the last persist or defrag outcome collected. The rest of
    /// [`Store::file_size_bytes`] is superseded pages a defrag would
    /// reclaim. Counted by the persister as part of each persist,
    /// from per-node subtree page counts, visiting only the nodes it
    /// writes: free to call.
    pub fn size_in_use_bytes(&self) -> u64 {
        self.size_in_use_bytes
    }
}

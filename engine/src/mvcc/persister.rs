//! The persister: the only owner of the [`TreeFile`] once a
//! [`super::Store`] is open, so at most one job (a persist or a defrag)
//! touches the file at a time.
//!
//! A job runs on the persister thread when the store goes on meanwhile:
//! the store hands it a [`Job`] (a clone of the working root and the meta
//! captured with it, to persist or to defrag: `btree/defrag.rs`) through a
//! channel of capacity [`PERSIST_JOBS_MAX`], and reads the outcome back
//! through one of capacity [`PERSIST_RESULTS_MAX`]. The store submits a job
//! only when no other is in flight, so neither send ever waits. Dropping
//! the [`Persister`] closes the job channel; the thread finishes the job it
//! holds (if any), exits, and is joined.
//!
//! A job the store waits for ([`Persister::run_here`]: `Store::persist`,
//! `Store::defrag`) runs on the caller's thread instead, with no job in
//! flight: the nodes it writes are still in that core's cache, and there is
//! no hand-off to another thread and back. The file sits behind a mutex the
//! two sides never contend for (one job at a time); a job that panics
//! poisons it, and from then on both ways report the persister as gone.
//!
//! # Why the writer may keep applying batches meanwhile
//!
//! The tree is copy-on-write over `Arc<Node>`, and the only code that
//! changes a node is `btree::insert` (deletes are tombstone inserts):
//! it walks down from the writer's `&mut Arc<Node>` root with
//! `Arc::make_mut`, which copies any node whose strong count is above 1 (the
//! copy's `Clone` clears its page: it is dirty) and changes in place only a
//! node whose one reference is the writer's own path. Copying a parent
//! clones its `children` vector, which raises every child's count, so a
//! node reachable from the job's root is never unique to the writer while
//! the job holds that root: the snapshot's bodies are immutable until the
//! persister drops it. The persister drops the root before it sends the
//! outcome, and the channel orders that drop before any later `make_mut`
//! on the writer's side.
//!
//! The one thing both sides touch is a node's page (`Node::page`, an
//! `AtomicU64`). The persister sets it on the nodes it writes, and on a
//! failure `forget_pages_from` clears it again on every node of the job's
//! tree written by that attempt. Nodes the writer's newer root shares with
//! the snapshot are the same `Arc` nodes, so clearing them covers the newer
//! root too; nodes the writer copied meanwhile were dirty from the start.
//! The writer reads a page only in the "unchanged" check of
//! `Store::begin_persist`, which runs with no job in flight, and clears
//! pages only on nodes unique to it, which the job cannot reach; the result
//! channel orders the persister's page stores before the writer's next
//! read. A defrag sets pages only after its new file replaced the old one,
//! on the nodes of its snapshot; `btree/defrag.rs` explains why that is
//! right for the nodes the writer still shares.

use crate::btree::{CommitMeta, Node, TreeFile};
use crate::error::{DefragError, StoreError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Jobs queued for the persister: one in flight, never a backlog.
pub(crate) const PERSIST_JOBS_MAX: usize = 1;
/// Outcomes waiting for the store: one per job in flight.
pub(crate) const PERSIST_RESULTS_MAX: usize = 1;
const _: () = assert!(PERSIST_JOBS_MAX == 1 && PERSIST_RESULTS_MAX == PERSIST_JOBS_MAX);

/// What a job does with its tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobKind {
    /// Appends the tree's dirty nodes and a commit record.
    Persist,
    /// Replaces the file with a packed copy of the tree.
    Defrag,
}

/// One job: the tree under `root` with `meta` in its commit record.
pub(crate) struct Job {
    pub(crate) kind: JobKind,
    pub(crate) root: Arc<Node>,
    pub(crate) meta: CommitMeta,
}

/// A job's result, by kind.
#[derive(Debug)]
pub(crate) enum Outcome {
    Persist(Result<(), StoreError>),
    Defrag(Result<(), DefragError>),
}

impl Outcome {
    fn kind(&self) -> JobKind {
        match self {
            Outcome::Persist(_) => JobKind::Persist,
            Outcome::Defrag(_) => JobKind::Defrag,
        }
    }

    /// Whether the job's commit record (its meta) is durably in the file.
    pub(crate) fn committed(&self) -> bool {
        matches!(self, Outcome::Persist(Ok(())) | Outcome::Defrag(Ok(())))
    }
}

/// What a job came to.
pub(crate) struct JobDone {
    pub(crate) outcome: Outcome,
    /// The file's size after the job; `None` when the thread is gone.
    pub(crate) file_size_bytes: Option<u64>,
    /// Bytes the file's last commit references after the job; `None` when
    /// the thread is gone.
    pub(crate) size_in_use_bytes: Option<u64>,
}

/// The store's handle on the persister.
pub(crate) struct Persister {
    path: PathBuf,
    /// Locked by whichever side runs a job: never both at once.
    file: Arc<Mutex<TreeFile>>,
    /// `None` only while dropping.
    jobs: Option<SyncSender<Job>>,
    done: Receiver<JobDone>,
    /// The kind of the job submitted last (to report a dead thread as).
    last_kind: JobKind,
    /// `None` only while dropping.
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Persister {
    /// Takes `tree_file` and starts a thread that runs the jobs it is sent.
    pub(crate) fn spawn(tree_file: TreeFile) -> Result<Persister, StoreError> {
        let path = tree_file.path().to_path_buf();
        let file = Arc::new(Mutex::new(tree_file));
        let (jobs, job_queue) = mpsc::sync_channel::<Job>(PERSIST_JOBS_MAX);
        let (done_sender, done) = mpsc::sync_channel::<JobDone>(PERSIST_RESULTS_MAX);
        let thread_file = file.clone();
        let thread = std::thread::Builder::new()
            .name("keel-persist".to_owned())
            .spawn(move || run(&thread_file, &job_queue, &done_sender))
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Persister {
            path,
            file,
            jobs: Some(jobs),
            done,
            last_kind: JobKind::Persist,
            thread: Some(thread),
        })
    }

    fn gone(&self) -> StoreError {
        StoreError::PersisterGone {
            path: self.path.clone(),
        }
    }

    /// Hands `job` to the thread. The caller has no other job in flight.
    /// If the thread is gone, the job's outcome says so.
    pub(crate) fn submit(&mut self, job: Job) {
        self.last_kind = job.kind;
        let jobs = self.jobs.as_ref().expect("job channel open until drop");
        match jobs.try_send(job) {
            // A dead thread is reported by `try_done`/`wait_done`, as the
            // outcome of this job.
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                unreachable!("a persister job was submitted while another was queued")
            }
        }
    }

    /// Runs `job` on the caller's thread and returns its outcome. The
    /// caller has no job in flight, so the thread is idle and the lock is
    /// free. A panic in the job poisons the lock and is reported as the
    /// persister being gone, as a panic on the thread is.
    pub(crate) fn run_here(&mut self, job: Job) -> JobDone {
        self.last_kind = job.kind;
        let file = &self.file;
        let ran = catch_unwind(AssertUnwindSafe(move || {
            let mut tree_file = file.lock().ok()?;
            Some(execute(&mut tree_file, job))
        }));
        match ran {
            Ok(Some(done)) => done,
            Ok(None) | Err(_) => self.gone_done(),
        }
    }

    /// The outcome of the job in flight if it finished; `None` while it
    /// runs. Call only with a job in flight.
    pub(crate) fn try_done(&self) -> Option<JobDone> {
        match self.done.try_recv() {
            Ok(done) => Some(done),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(self.gone_done()),
        }
    }

    /// Waits for the outcome of the job in flight.
    pub(crate) fn wait_done(&self) -> JobDone {
        self.done.recv().unwrap_or_else(|_| self.gone_done())
    }

    fn gone_done(&self) -> JobDone {
        let outcome = match self.last_kind {
            JobKind::Persist => Outcome::Persist(Err(self.gone())),
            JobKind::Defrag => Outcome::Defrag(Err(DefragError::Aborted(self.gone()))),
        };
        JobDone {
            outcome,
            file_size_bytes: None,
            size_in_use_bytes: None,
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        // Closing the job channel ends the thread's loop after the job it
        // holds, if any; nothing new is persisted.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            // A panicked persister already reported itself as gone; a drop
            // must not panic again.
            let _ = thread.join();
        }
    }
}

/// The persister thread's loop. A poisoned lock (a job panicked) ends it,
/// which the store sees as the thread being gone.
fn run(file: &Mutex<TreeFile>, jobs: &Receiver<Job>, done: &SyncSender<JobDone>) {
    while let Ok(job) = jobs.recv() {
        let Ok(mut tree_file) = file.lock() else {
            return;
        };
        let job_done = execute(&mut tree_file, job);
        drop(tree_file);
        if done.send(job_done).is_err() {
            return;
        }
    }
}

/// Runs one job on `tree_file`.
fn execute(tree_file: &mut TreeFile, Job { kind, root, meta }: Job) -> JobDone {
    let outcome = match kind {
        JobKind::Persist => Outcome::Persist(tree_file.persist(&root, meta)),
        JobKind::Defrag => Outcome::Defrag(tree_file.defrag(&root, meta)),
    };
    debug_assert_eq!(outcome.kind(), kind);
    if outcome.committed() {
        assert!(root.page().is_some(), "a commit leaves the root clean");
    }
    // Release the snapshot before the writer hears of the outcome, so its
    // nodes can become unique to the writer again (no extra copies).
    drop(root);
    JobDone {
        outcome,
        file_size_bytes: Some(tree_file.size_bytes()),
        size_in_use_bytes: Some(tree_file.size_in_use_bytes()),
    }
}

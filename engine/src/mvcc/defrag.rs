//! Online defrag (etcd's Defragment, without stopping reads or writes):
//! the store's tree file replaced by a packed copy of the working tree.
//!
//! The copy is written from a snapshot of the working root, exactly like a
//! persist (`persister.rs`): on the persister thread when started with
//! [`Store::start_defrag`], so readers keep reading their views and the
//! writer keeps applying batches meanwhile, or on the caller's thread when
//! [`Store::defrag`] waits for it anyway.
//! `btree/defrag.rs` has the file side (new file, rename, directory fsync,
//! crash cases) and why moving the in-memory nodes' pages to the new file
//! is safe.
//!
//! # Driving it
//!
//! The writer (the raft core) calls [`Store::start_defrag`] (never blocks);
//! it starts at once, or, when a persist is in flight, right after that
//! persist is collected by [`Store::poll_persist`]. The writer's loop keeps
//! calling `poll_persist` once per cycle (which also collects a finished
//! defrag and reports a successful one as a persist of its snapshot) and
//! [`Store::poll_defrag`] until it returns the defrag's result. While the
//! defrag runs no persist starts (one job at a time): batches applied
//! meanwhile stay in memory (and in the WAL) and go to the new file with
//! the next persist. [`Store::defrag`] does all of it and waits.

use super::persister::JobKind;
use super::store::Store;
use crate::error::DefragError;

impl Store {
    /// Starts a defrag of the tree file (see the module comment): at once
    /// on the persister thread, or queued behind the persist in flight.
    /// Never blocks. Errors with [`DefragError::InProgress`] while another
    /// defrag is queued, in flight, or not yet collected by
    /// [`Store::poll_defrag`].
    ///
    /// The new file holds the working tree of the moment the defrag starts,
    /// with its applied index, revision and compaction point in the commit
    /// record: on success it is also a persist of that state.
    pub fn start_defrag(&mut self) -> Result<(), DefragError> {
        if self.defrag_in_progress() {
            return Err(DefragError::InProgress);
        }
        if self.in_flight.is_some() {
            self.defrag_queued = true;
        } else {
            self.submit_defrag();
        }
        Ok(())
    }

    /// Non-blocking: the result of the defrag started by
    /// [`Store::start_defrag`] once it finished (collecting it if
    /// [`Store::poll_persist`] has not); `None` while it is queued or in
    /// flight, or when none was started. On success
    /// [`Store::file_size_bytes`] is the new file's size and later persists
    /// append to it; on [`DefragError::Aborted`] nothing changed.
    pub fn poll_defrag(&mut self) -> Option<Result<(), DefragError>> {
        if let Some(outcome) = self.defrag_outcome.take() {
            return Some(outcome);
        }
        let defrag_in_flight = self
            .in_flight
            .as_ref()
            .is_some_and(|job| job.kind == JobKind::Defrag);
        if !defrag_in_flight {
            return None;
        }
        // A successful defrag counts as a persist; poll_persist would
        // report it so, and this call reports the defrag itself.
        let _as_persist = self.poll_persist();
        self.defrag_outcome.take()
    }

    /// Defrags and waits: waits for a persist in flight, then runs the
    /// defrag on the caller's thread and returns its result. Errors with
    /// [`DefragError::InProgress`] (waiting for nothing) while a defrag
    /// started by [`Store::start_defrag`] is not yet collected.
    pub fn defrag(&mut self) -> Result<(), DefragError> {
        if self.defrag_in_progress() {
            return Err(DefragError::InProgress);
        }
        self.wait_for_jobs();
        let job = self.begin_job(JobKind::Defrag);
        let done = self.persister.run_here(job);
        match self.finish_job(done) {
            super::persister::Outcome::Defrag(result) => result,
            super::persister::Outcome::Persist(_) => unreachable!("a defrag was submitted"),
        }
    }

    /// Whether a defrag is queued, in flight, or finished with its result
    /// not yet returned by [`Store::poll_defrag`].
    pub fn defrag_in_progress(&self) -> bool {
        self.defrag_queued
            || self.defrag_outcome.is_some()
            || self
                .in_flight
                .as_ref()
                .is_some_and(|job| job.kind == JobKind::Defrag)
    }

    /// Starts the queued defrag, if any, once nothing is in flight.
    pub(super) fn start_queued_defrag(&mut self) {
        if self.defrag_queued && self.in_flight.is_none() {
            self.defrag_queued = false;
            self.submit_defrag();
        }
    }

    fn submit_defrag(&mut self) {
        // Unlike a persist, a defrag runs even when the file holds exactly
        // the working state: the point is to rewrite the file.
        let job = self.begin_job(JobKind::Defrag);
        // A dead persister thread is reported as this defrag's outcome.
        self.persister.submit(job);
    }
}

//! The raft core's backend duties between ready cycles: persists and
//! their WAL release, defrag (asked for or automatic), auto-compaction,
//! and trimming raft's in-memory log.

use super::*;

/// Backend files smaller than this are never defragmented automatically.
pub const AUTO_DEFRAG_FILE_BYTES_MIN: u64 = 256 << 20;
/// File bytes per byte in use at which keel defragments by itself.
pub const AUTO_DEFRAG_WASTE_RATIO: u64 = 4;

/// Changes between backend persists, at most (etcd's default snapshot count).
pub const BACKEND_PERSIST_OPS_MAX: u64 = 100_000;
/// Time between backend persists, at most, once anything changed.
pub const BACKEND_PERSIST_INTERVAL: Duration = Duration::from_secs(1);

/// Revisions a compaction handles per ready cycle, at most (each removes
/// at most the put it superseded, itself if a tombstone, and its revision
/// index entry), so the raft core never stalls for a whole compaction. A
/// removal cut short by a restart resumes by itself: the store reopens
/// with it pending.
pub const COMPACTION_STEP_REVISIONS_MAX: usize = 10_000;

impl RaftCore {
    /// One bounded step of a pending compaction's removal, published at
    /// the current applied index; answers the physical Compact calls once
    /// nothing is left.
    pub(super) async fn compaction_step(&mut self, replies: &[ConnectedSender<FromRaft>]) {
        if self.store.compaction_pending() {
            let mut batch = self.store.write_batch();
            batch.compact_step(COMPACTION_STEP_REVISIONS_MAX);
            batch.commit(self.applied_index);
        }
        if self.store.compaction_pending() || self.physical_compaction_waiters.is_empty() {
            return;
        }
        let mut header = self.status.header(self.revision);
        header.raft_term = self.status.term.load(Ordering::Relaxed);
        for (shard, token) in std::mem::take(&mut self.physical_compaction_waiters) {
            let response = crate::message::Response::Compaction(
                keel_proto::etcdserverpb::CompactionResponse {
                    header: Some(header),
                },
            );
            let answer = FromRaft::Applied {
                token,
                result: Ok(response),
            };
            send_reply(replies, shard, answer).await;
        }
    }

    /// Proposes a compaction when the auto-compaction schedule says one is
    /// due, through raft like a client's Compact, as etcd's leader does. An
    /// outcome nobody waits for: a `Compacted` error (a client compacted
    /// further meanwhile) is dropped at apply.
    pub(super) fn auto_compact(&mut self) {
        if self.node.raft.state != StateRole::Leader {
            return;
        }
        let Some(compactor) = self.auto_compactor.as_mut() else {
            return;
        };
        let compact_revision = self.store.compact_revision();
        let Some(revision) = compactor.poll(Instant::now(), self.revision, compact_revision) else {
            return;
        };
        let id = self.next_proposal_id;
        self.next_proposal_id += 1;
        let internal = InternalRequest {
            id,
            request: Some(Request::Compaction(CompactionRequest {
                revision,
                physical: false,
            })),
        };
        eprintln!("keel: auto-compaction: proposing compaction to revision {revision}");
        if let Err(error) = self.node.propose(Vec::new(), internal.encode_to_vec()) {
            eprintln!("keel: warning: auto-compaction proposal dropped: {error}");
        }
    }

    /// Starts a backend persist when one is due and collects a finished
    /// one. The persist runs on the engine's persister thread: the raft
    /// core keeps applying while a copy-on-write snapshot of the tree is
    /// written. WAL segments go only once the backend holds their entries.
    pub(super) async fn maintain_backend(&mut self, replies: &[ConnectedSender<FromRaft>]) {
        let collected = self.store.poll_persist();
        if collected.is_some() {
            if let Some(started) = self.persist_started.take() {
                self.status
                    .metrics
                    .backend_commit
                    .observe(started.elapsed());
            }
        }
        match collected {
            Some(Ok(())) => self.release_persisted(),
            // The WAL still holds everything; the next persist retries.
            Some(Err(error)) => eprintln!("keel: warning: backend persist failed: {error}"),
            None => {}
        }
        if let Some(outcome) = self.store.poll_defrag() {
            let result = outcome.map_err(|error| error.to_string());
            match &result {
                Ok(()) => eprintln!(
                    "keel: defrag finished: backend file {} bytes, {} in use",
                    self.store.file_size_bytes(),
                    self.store.size_in_use_bytes()
                ),
                Err(error) => eprintln!("keel: warning: defrag failed: {error}"),
            }
            self.release_persisted();
            for (shard, token) in std::mem::take(&mut self.defrag_waiters) {
                let result = result.clone();
                send_reply(replies, shard, FromRaft::Defragmented { token, result }).await;
            }
        } else if self.auto_defrag_due() {
            eprintln!(
                "keel: auto-defrag: backend file {} bytes, {} in use",
                self.store.file_size_bytes(),
                self.store.size_in_use_bytes()
            );
            self.start_defrag();
        }
        if !self.store.defrag_in_progress() && self.store.start_persist() {
            self.persist_started = Some(Instant::now());
        }
    }

    /// Starts a defrag unless one is already on its way (its waiters are
    /// then answered by that one, which starts after their request).
    pub(super) fn start_defrag(&mut self) {
        if self.store.defrag_in_progress() {
            return;
        }
        if let Err(error) = self.store.start_defrag() {
            eprintln!("keel: warning: defrag not started: {error}");
        }
    }

    /// keel reclaims space by itself (its backend file is append-only, so
    /// unlike bbolt it never reuses pages): once the file is past
    /// [`AUTO_DEFRAG_FILE_BYTES_MIN`] and more than
    /// [`AUTO_DEFRAG_WASTE_RATIO`] times what the last commit uses.
    pub(super) fn auto_defrag_due(&self) -> bool {
        let file = self.store.file_size_bytes();
        let in_use = self.store.size_in_use_bytes().max(1);
        !self.store.defrag_in_progress()
            && file >= AUTO_DEFRAG_FILE_BYTES_MIN
            && file / in_use >= AUTO_DEFRAG_WASTE_RATIO
    }

    pub(super) fn release_persisted(&mut self) {
        self.status
            .db_size_bytes
            .store(self.store.file_size_bytes(), Ordering::Relaxed);
        self.status
            .db_size_in_use_bytes
            .store(self.store.size_in_use_bytes(), Ordering::Relaxed);
        // Not just up to the last persisted commit: recovery opens the one
        // before it if the last persist's nodes turn out damaged, and the
        // WAL must bring that one up to date.
        if let Err(error) = self.wal.release_before(self.store.wal_needed_from()) {
            eprintln!("keel: warning: releasing wal segments failed: {error}");
        }
    }

    /// Drops applied entries from raft's in-memory log, keeping the last
    /// `LOG_ENTRIES_KEPT_MAX` (the WAL holds them durably). Runs once
    /// `LOG_ENTRIES_DRAIN_BATCH` more have been applied, so the drain is
    /// amortised and the log's memory stays bounded.
    pub(super) fn compact_raft_log(&mut self) {
        let first_index = self.node.store().first_index().expect("memory storage");
        if first_index + LOG_ENTRIES_KEPT_MAX + LOG_ENTRIES_DRAIN_BATCH <= self.applied_index {
            let keep_from = self.applied_index - LOG_ENTRIES_KEPT_MAX;
            let _ = self.node.mut_store().wl().compact(keep_from);
        }
    }
}

//! The raft core: one pinned executor that owns consensus and the disk.
//!
//! Each ready cycle (a) takes every proposal and read request queued by the
//! shard cores (bounded by `PROPOSAL_BATCH_MAX` / `PROPOSAL_BATCH_BYTES_MAX`),
//! (b) hands them to raft, (c) persists the ready's entries and hard state
//! with one WAL write and one fdatasync (group commit: no timer, no extra
//! hop), (d) applies what raft reports committed in one store write batch,
//! publishes the new read view, and (e) answers each originating core.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use keel_engine::{Detail, Event, RangeOptions, Store, StoreOptions, StoreReader, Wal, WalOptions};
use keel_proto::etcdserverpb::ResponseHeader;
use keel_proto::etcdserverpb::{CompactionRequest, LeaseRevokeRequest};
use keel_proto::keelpb::internal_request::Request;
use keel_proto::keelpb::InternalRequest;
use prost::Message;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole, Storage};

use crate::alarm::{AlarmList, Alarms};
use crate::apply::apply_request;
use crate::compactor::{AutoCompaction, AutoCompactor};
use crate::lease::{Lessor, EXPIRED_REVOKES_PER_TICK_MAX};
use crate::message::{
    ApplyError, EventBatch, FromRaft, LeaseAnswer, LeaseQuery, ShardId, ToRaft, Token,
    PROPOSAL_BATCH_BYTES_MAX, PROPOSAL_BATCH_MAX, PROPOSAL_QUEUE_MAX,
};
use crate::metrics::RaftMetrics;
use crate::wal_codec::{self, RECORD_ENTRY, RECORD_HARD_STATE};

mod backend;
mod leases;
mod open;

pub use backend::{
    AUTO_DEFRAG_FILE_BYTES_MIN, AUTO_DEFRAG_WASTE_RATIO, BACKEND_PERSIST_INTERVAL,
    BACKEND_PERSIST_OPS_MAX,
};
pub use open::OpenError;

/// How often raft's logical clock ticks.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Ticks without a leader before a member campaigns (etcd: 1000 ms / 100 ms).
pub const ELECTION_TICKS: usize = 10;
/// Ticks between leader heartbeats.
pub const HEARTBEAT_TICKS: usize = 1;
/// etcd's minimum lease TTL: 1.5 election timeouts, rounded up to seconds.
pub const LEASE_TTL_MIN_SECONDS: i64 =
    ((3 * ELECTION_TICKS as u64 * TICK_INTERVAL.as_millis() as u64 / 2).div_ceil(1000)) as i64;
/// Raft log entries kept in memory behind the applied index: etcd keeps
/// 5000 (`SnapshotCatchUpEntries`) for a slow follower to catch up from.
pub const LOG_ENTRIES_KEPT_MAX: u64 = 5_000;
/// Applied entries beyond [`LOG_ENTRIES_KEPT_MAX`] that wait for one drain
/// of the in-memory log (the drain moves the kept entries, so it is
/// amortised over this many; the log peaks at the sum of the two).
pub const LOG_ENTRIES_DRAIN_BATCH: u64 = 1_000;

/// What the raft core needs to start.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    pub data_dir: PathBuf,
    pub member_id: u64,
    pub cluster_id: u64,
    /// `--auto-compaction-*`; `None` = off (etcd's retention 0).
    pub auto_compaction: Option<AutoCompaction>,
}

/// Cluster facts the shard cores put in response headers; written by the
/// raft core only.
#[derive(Debug, Default)]
pub struct RaftStatus {
    pub term: AtomicU64,
    pub leader_id: AtomicU64,
    pub applied_index: AtomicU64,
    /// Raft's commit index (etcd's Status `raft_index`).
    pub committed_index: AtomicU64,
    /// Bytes of the backend file, as of the last persist collected.
    pub db_size_bytes: AtomicU64,
    /// Bytes of that file the last commit references (etcd's
    /// `db_size_in_use`).
    pub db_size_in_use_bytes: AtomicU64,
    pub member_id: u64,
    pub cluster_id: u64,
    /// Bit `s` is set while shard core `s` has watchers: the raft core
    /// sends applied events only to those cores.
    pub watching_shards: AtomicU64,
    /// The raised alarms (Maintenance.Alarm GET, Status errors).
    pub alarms: AlarmList,
    /// What the raft core measures, for `/metrics`.
    pub metrics: RaftMetrics,
}

impl RaftStatus {
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.term.load(Ordering::Relaxed),
        }
    }
}

pub struct RaftCore {
    node: RawNode<MemStorage>,
    wal: Wal,
    store: Store,
    /// Held while the core lives: the data dir's lock (`open.rs`).
    #[allow(dead_code)]
    data_dir_lock: std::fs::File,
    status: Arc<RaftStatus>,
    /// Proposal id -> the core and token waiting for its result.
    pending: HashMap<u64, (ShardId, Token)>,
    next_proposal_id: u64,
    revision: i64,
    applied_index: u64,
    /// Read requests taken this cycle, not yet given to raft.
    reads_unsent: Vec<(ShardId, Token)>,
    /// Read batches given to raft, by request context.
    reads_in_raft: HashMap<u64, Vec<(ShardId, Token)>>,
    /// Read batches whose read index is known, waiting for apply.
    reads_waiting_apply: Vec<(u64, Vec<(ShardId, Token)>)>,
    next_read_context: u64,
    entry_buffer: Vec<u8>,
    auto_compactor: Option<AutoCompactor>,
    leases: Lessor,
    alarms: Alarms,
    /// Physical Compact calls waiting for the removal in progress.
    physical_compaction_waiters: Vec<(ShardId, Token)>,
    /// When the persist in flight started.
    persist_started: Option<Instant>,
    /// Defragment calls waiting for the defrag in flight.
    defrag_waiters: Vec<(ShardId, Token)>,
    /// The next id for a grant that asks the server to pick one.
    next_lease_id: i64,
}

impl RaftCore {
    /// Runs the ready loop until every shard core has hung up.
    pub async fn run(
        mut self,
        inboxes: Vec<ConnectedReceiver<ToRaft>>,
        replies: Vec<ConnectedSender<FromRaft>>,
    ) {
        let (local_tx, local_rx) = local_channel::new_bounded::<ToRaft>(PROPOSAL_QUEUE_MAX);
        let local_tx = Rc::new(local_tx);
        let open_inboxes = Rc::new(RefCell::new(inboxes.len()));
        for inbox in inboxes {
            let local_tx = local_tx.clone();
            let open_inboxes = open_inboxes.clone();
            glommio::spawn_local(async move {
                while let Some(message) = inbox.recv().await {
                    if local_tx.send(message).await.is_err() {
                        break;
                    }
                }
                *open_inboxes.borrow_mut() -= 1;
            })
            .detach();
        }
        drop(local_tx);
        let mut next_tick = Instant::now() + TICK_INTERVAL;
        // First cycle: the campaign's entry and any replayed committed entries.
        self.on_ready(&replies).await;
        loop {
            let first = if self.node.has_ready() {
                None
            } else if self.store.compaction_pending() {
                // Removal steps keep going while idle; let the inbox
                // forwarders run between them.
                futures_lite::future::yield_now().await;
                None
            } else {
                let wait = next_tick.saturating_duration_since(Instant::now());
                let received =
                    futures_lite::future::or(async { Some(local_rx.recv().await) }, async {
                        glommio::timer::sleep(wait).await;
                        None
                    })
                    .await;
                match received {
                    Some(None) => break, // every shard core is gone
                    Some(Some(message)) => Some(message),
                    None => None,
                }
            };
            self.take_batch(first, &local_rx, &replies).await;
            if Instant::now() >= next_tick {
                self.node.tick();
                next_tick = Instant::now() + TICK_INTERVAL;
                self.auto_compact();
                self.revoke_expired();
            }
            self.on_ready(&replies).await;
            self.compaction_step(&replies).await;
            self.maintain_backend(&replies).await;
        }
        if let Err(error) = self.store.persist() {
            eprintln!("keel: warning: final backend persist failed: {error}");
        }
    }

    /// Takes `first` and everything else already queued, within the batch limits.
    async fn take_batch(
        &mut self,
        first: Option<ToRaft>,
        local_rx: &LocalReceiver<ToRaft>,
        replies: &[ConnectedSender<FromRaft>],
    ) {
        let mut taken = 0usize;
        let mut taken_bytes = 0usize;
        let mut next = first;
        loop {
            let message = match next.take() {
                Some(message) => message,
                None => {
                    if taken >= PROPOSAL_BATCH_MAX || taken_bytes >= PROPOSAL_BATCH_BYTES_MAX {
                        break;
                    }
                    match futures_lite::future::poll_once(local_rx.recv()).await {
                        Some(Some(message)) => message,
                        _ => break,
                    }
                }
            };
            taken += 1;
            match message {
                ToRaft::Propose {
                    shard,
                    token,
                    mut request,
                } => {
                    if let Request::LeaseGrant(grant) = &mut request {
                        if grant.id == 0 {
                            grant.id = self.pick_lease_id();
                        }
                    }
                    let id = self.next_proposal_id;
                    self.next_proposal_id += 1;
                    let internal = InternalRequest {
                        id,
                        request: Some(request),
                    };
                    // Encoded once, straight into the Vec raft keeps.
                    let data = internal.encode_to_vec();
                    taken_bytes += data.len();
                    match self.node.propose(Vec::new(), data) {
                        Ok(()) => {
                            self.pending.insert(id, (shard, token));
                        }
                        Err(error) => {
                            let error = match error {
                                raft::Error::ProposalDropped => ApplyError::ProposalDropped,
                                _ => ApplyError::NotLeader,
                            };
                            send_reply(
                                replies,
                                shard,
                                FromRaft::Applied {
                                    token,
                                    result: Err(error),
                                },
                            )
                            .await;
                        }
                    }
                }
                ToRaft::ReadIndex { shard, token } => self.reads_unsent.push((shard, token)),
                ToRaft::Defragment { shard, token } => {
                    self.defrag_waiters.push((shard, token));
                    self.start_defrag();
                }
                ToRaft::Lease {
                    shard,
                    token,
                    query,
                } => {
                    let answer = self.answer_lease(query);
                    send_reply(replies, shard, FromRaft::Lease { token, answer }).await;
                }
            }
        }
        if !self.reads_unsent.is_empty() {
            let context = self.next_read_context;
            self.next_read_context += 1;
            self.reads_in_raft
                .insert(context, std::mem::take(&mut self.reads_unsent));
            self.node.read_index(context.to_le_bytes().to_vec());
        }
    }

    async fn on_ready(&mut self, replies: &[ConnectedSender<FromRaft>]) {
        if !self.node.has_ready() {
            return;
        }
        let mut ready = self.node.ready();
        if let Some(soft_state) = ready.ss() {
            let previous = self
                .status
                .leader_id
                .swap(soft_state.leader_id, Ordering::Relaxed);
            if previous != soft_state.leader_id && soft_state.leader_id != 0 {
                self.status
                    .metrics
                    .leader_changes
                    .fetch_add(1, Ordering::Relaxed);
            }
            debug_assert!(
                soft_state.raft_state == StateRole::Leader
                    || soft_state.leader_id != self.status.member_id
            );
        }
        // A single member has no peers: nothing in messages() to send.
        debug_assert!(ready.messages().is_empty());
        self.apply(ready.take_committed_entries(), replies).await;
        for read_state in ready.take_read_states() {
            self.read_index_known(read_state.index, &read_state.request_ctx);
        }

        let entries = ready.take_entries();
        if !entries.is_empty() {
            for entry in &entries {
                wal_codec::encode_entry(entry, &mut self.entry_buffer);
                self.wal
                    .append(RECORD_ENTRY, entry.index, &self.entry_buffer);
            }
            self.node
                .mut_store()
                .wl()
                .append(&entries)
                .expect("entries follow the log");
        }
        if let Some(hard_state) = ready.hs() {
            let last_index = self.node.store().last_index().expect("memory storage");
            self.wal.append(
                RECORD_HARD_STATE,
                last_index,
                &wal_codec::encode_hard_state(hard_state),
            );
            self.status.term.store(hard_state.term, Ordering::Relaxed);
            self.node.mut_store().wl().set_hardstate(hard_state.clone());
        }
        if self.wal.buffered_bytes() > 0 {
            // One io_uring write and one fdatasync for the whole ready.
            let sync_started = Instant::now();
            let synced = self.wal.sync();
            self.status
                .metrics
                .wal_fsync
                .observe(sync_started.elapsed());
            if let Err(error) = synced {
                // As etcd: a member that cannot make its log durable stops.
                eprintln!("keel: fatal: wal sync failed: {error}");
                std::process::exit(2);
            }
        }
        let mut light_ready = self.node.advance(ready);
        if let Some(commit) = light_ready.commit_index() {
            self.node.mut_store().wl().mut_hard_state().commit = commit;
        }
        self.apply(light_ready.take_committed_entries(), replies)
            .await;
        self.node.advance_apply();
        self.status
            .committed_index
            .store(self.node.raft.raft_log.committed, Ordering::Relaxed);
        self.compact_raft_log();
        self.reads_after_apply(replies).await;
    }

    async fn apply(&mut self, entries: Vec<Entry>, replies: &[ConnectedSender<FromRaft>]) {
        let Some(last) = entries.last() else { return };
        let last_index = last.index;
        let term = self.status.term.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut answers: Vec<(ShardId, FromRaft)> = Vec::new();
        let watching = self.status.watching_shards.load(Ordering::Acquire);
        let mut watched_events: Vec<Event> = Vec::new();
        let mut revision = self.revision;
        {
            let mut batch = self.store.write_batch();
            // Only watchers need every event; the lessor, those with leases.
            batch.set_event_detail(if watching != 0 {
                Detail::Full
            } else {
                Detail::Leases
            });
            for entry in entries {
                if entry.data.is_empty() || entry.entry_type != EntryType::EntryNormal {
                    continue; // leader's empty entry; conf changes arrive with clustering
                }
                let internal = match InternalRequest::decode(&entry.data[..]) {
                    Ok(internal) => internal,
                    Err(error) => {
                        eprintln!("keel: skipping undecodable entry {}: {error}", entry.index);
                        continue;
                    }
                };
                let waiter = self.pending.remove(&internal.id);
                let Some(request) = internal.request else {
                    continue;
                };
                let physical = matches!(&request, Request::Compaction(c) if c.physical);
                let (mut result, events) = match request {
                    Request::Alarm(alarm) => {
                        (self.alarms.apply(&alarm, &self.status.alarms), Vec::new())
                    }
                    request => apply_request(
                        &mut batch,
                        &mut self.leases,
                        request,
                        revision,
                        now,
                        self.alarms.no_space(),
                    ),
                };
                revision = batch.revision();
                if watching != 0 {
                    watched_events.extend(events);
                }
                let metrics = &self.status.metrics;
                metrics.proposals_committed.fetch_add(1, Ordering::Relaxed);
                match &result {
                    Ok(_) => metrics.proposals_applied.fetch_add(1, Ordering::Relaxed),
                    Err(_) => metrics.proposals_failed.fetch_add(1, Ordering::Relaxed),
                };
                if let Ok(response) = &mut result {
                    let mut header = self.status.header(revision);
                    header.raft_term = term;
                    response.set_header(header);
                }
                match waiter {
                    // etcd: a physical Compact returns once removal is done.
                    Some(waiter) if physical && result.is_ok() => {
                        self.physical_compaction_waiters.push(waiter)
                    }
                    Some((shard, token)) => {
                        answers.push((shard, FromRaft::Applied { token, result }))
                    }
                    None => {}
                }
            }
            batch.commit(last_index);
        }
        let previous_revision = self.revision;
        self.revision = revision;
        self.applied_index = last_index;
        // Committed before applied, so a reader never sees raft_index behind.
        self.status
            .committed_index
            .fetch_max(last_index, Ordering::Relaxed);
        self.status
            .applied_index
            .store(last_index, Ordering::Release);
        if !watched_events.is_empty() {
            // Before the replies: a client that saw its write acknowledged
            // by this core finds the core's watchers already past it.
            let batch = Arc::new(EventBatch {
                previous_revision,
                revision,
                events: watched_events,
            });
            for shard in 0..replies.len().min(u64::BITS as usize) {
                if watching & (1 << shard) != 0 {
                    send_reply(replies, shard, FromRaft::Events(batch.clone())).await;
                }
            }
        }
        for (shard, answer) in answers {
            send_reply(replies, shard, answer).await;
        }
    }

    fn read_index_known(&mut self, index: u64, context: &[u8]) {
        let Ok(bytes) = <[u8; 8]>::try_from(context) else {
            return;
        };
        if let Some(waiters) = self.reads_in_raft.remove(&u64::from_le_bytes(bytes)) {
            self.reads_waiting_apply.push((index, waiters));
        }
    }

    async fn reads_after_apply(&mut self, replies: &[ConnectedSender<FromRaft>]) {
        if self.reads_waiting_apply.is_empty() {
            return;
        }
        let applied = self.applied_index;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_waiting_apply)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.reads_waiting_apply = waiting;
        for (_, waiters) in ready {
            for (shard, token) in waiters {
                send_reply(replies, shard, FromRaft::ReadIndexReady { token }).await;
            }
        }
    }
}

async fn send_reply(replies: &[ConnectedSender<FromRaft>], shard: ShardId, message: FromRaft) {
    // The shard core bounds its requests in flight by this queue's capacity,
    // so this waits only while that core drains its replies.
    let _ = replies[shard].send(message).await;
}

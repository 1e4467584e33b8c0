//! A shard core's watchers: every watch stream of this core's connections,
//! indexed by key so that each applied-event batch from the raft core is
//! matched in one pass, and a catch-up task that serves watchers from
//! history.
//!
//! A watcher is either *synced* (it gets its events from the batches as
//! they arrive) or *unsynced* (it reads them from the store's history,
//! `ReadView::events`, in bounded chunks, until it reaches the view's
//! revision and becomes synced again). A watcher becomes unsynced when it
//! starts at an old revision, when its stream's outbox is full (a slow
//! client: nothing is dropped or reordered, the watcher just falls back to
//! history), or when this core missed a batch (it had no watchers when the
//! raft core sent it). Events reach a client in revision order because a
//! watcher's next revision only moves forward and its stream's outbox is
//! FIFO.
//!
//! The batches a core receives are contiguous in revision while it has
//! watchers: `shard_revision` is the revision up to which this core has
//! seen every batch. The store publishes a view before the raft core sends
//! that cycle's batch, so a view loaded after a batch was handled always
//! covers it.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use keel_engine::{Event, StoreReader};
use keel_proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use keel_raft_shim::{EventBatch, RaftStatus, ShardId};

use super::outbox::Outbox;
use super::response::{encode_events, frame_with_events, queue_events};
use super::watcher::Watcher;
use crate::grpc;
use crate::metrics::ShardMetrics;

/// Most history events one catch-up step reads for one watcher.
pub const CATCH_UP_EVENTS_MAX: usize = 1000;
/// Most watchers on one shard core (etcd has no limit; every map needs one).
pub const SHARD_WATCHERS_MAX: usize = 1 << 20;
/// The watch id etcd answers with when a create fails, and on progress
/// responses that concern the whole stream.
pub const INVALID_WATCH_ID: i64 = -1;

/// A watch stream on this core.
pub type StreamId = u64;
pub(super) type WatcherKey = (StreamId, i64);

/// Why a create request was refused (etcd's `mvcc` errors, its texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateError {
    DuplicateId,
    EmptyRange,
    TooManyWatchers,
}

impl CreateError {
    pub fn reason(self) -> &'static str {
        match self {
            CreateError::DuplicateId => "mvcc: duplicate watch ID provided on the WatchStream",
            CreateError::EmptyRange => "mvcc: watcher range is empty",
            CreateError::TooManyWatchers => "keel: too many watchers on this core",
        }
    }
}

pub(super) struct StreamState {
    pub(super) outbox: Rc<Outbox>,
    pub(super) watchers: BTreeMap<i64, Watcher>,
    pub(super) next_watch_id: i64,
    /// A progress request waits for every watcher to be synced.
    pub(super) progress_pending: bool,
}

#[derive(Default)]
pub(super) struct HubState {
    pub(super) streams: HashMap<StreamId, StreamState>,
    /// Single-key watchers by key.
    pub(super) exact: HashMap<Vec<u8>, BTreeSet<WatcherKey>>,
    /// Range and prefix watchers.
    pub(super) ranges: BTreeSet<WatcherKey>,
    pub(super) unsynced: BTreeSet<WatcherKey>,
    pub(super) watcher_count: usize,
    pub(super) shard_revision: i64,
    pub(super) next_stream: StreamId,
}

pub struct WatchHub {
    pub(super) shard: ShardId,
    pub(super) reader: StoreReader,
    pub(super) status: Arc<RaftStatus>,
    /// Fragmented responses are cut at this size (etcd: `--max-request-bytes`).
    pub(super) fragment_bytes: usize,
    pub(super) metrics: Arc<ShardMetrics>,
    pub(super) state: RefCell<HubState>,
    pub(super) catch_up_due: Cell<bool>,
    pub(super) catch_up_waker: Cell<Option<Waker>>,
}

impl WatchHub {
    pub fn new(
        shard: ShardId,
        reader: StoreReader,
        status: Arc<RaftStatus>,
        fragment_bytes: usize,
        metrics: Arc<ShardMetrics>,
    ) -> WatchHub {
        assert!(shard < u64::BITS as usize, "at most 64 shard cores");
        WatchHub {
            shard,
            reader,
            status,
            fragment_bytes,
            metrics,
            state: RefCell::new(HubState::default()),
            catch_up_due: Cell::new(false),
            catch_up_waker: Cell::new(None),
        }
    }

    pub fn watcher_count(&self) -> usize {
        self.state.borrow().watcher_count
    }

    /// Registers a new watch stream with its outbox.
    pub fn open_stream(&self, outbox: Rc<Outbox>) -> StreamId {
        let mut state = self.state.borrow_mut();
        let id = state.next_stream;
        state.next_stream += 1;
        state.streams.insert(
            id,
            StreamState {
                outbox,
                watchers: BTreeMap::new(),
                next_watch_id: 0,
                progress_pending: false,
            },
        );
        id
    }

    /// Removes a stream and all its watchers (the client went away).
    pub fn close_stream(&self, stream: StreamId) {
        let mut state = self.state.borrow_mut();
        let Some(entry) = state.streams.remove(&stream) else {
            return;
        };
        entry.outbox.close();
        for (watch_id, watcher) in entry.watchers {
            self.unindex(&mut state, (stream, watch_id), &watcher);
        }
    }

    /// etcd's watch create: answers `created` (or the refusal) on the
    /// stream, then serves the watcher's events.
    pub fn create(&self, stream: StreamId, request: WatchCreateRequest) {
        let view = self.reader.view();
        let revision = view.revision();
        let result = self.try_create(stream, request, revision);
        let mut state = self.state.borrow_mut();
        let Some(entry) = state.streams.get_mut(&stream) else {
            return;
        };
        let response = match result {
            Ok(watch_id) => WatchResponse {
                header: Some(self.status.header(revision)),
                watch_id,
                created: true,
                ..WatchResponse::default()
            },
            Err(error) => WatchResponse {
                header: Some(self.status.header(revision)),
                watch_id: INVALID_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: error.reason().to_string(),
                ..WatchResponse::default()
            },
        };
        entry.outbox.push(grpc::frame(&response));
    }

    fn try_create(
        &self,
        stream: StreamId,
        request: WatchCreateRequest,
        view_revision: i64,
    ) -> Result<i64, CreateError> {
        // etcd: an empty key is the smallest key, "\0".
        let key = if request.key.is_empty() {
            vec![0]
        } else {
            request.key
        };
        let range_end = request.range_end;
        if !range_end.is_empty() && range_end != [0] && key >= range_end {
            return Err(CreateError::EmptyRange);
        }
        let mut state = self.state.borrow_mut();
        if state.watcher_count >= SHARD_WATCHERS_MAX {
            return Err(CreateError::TooManyWatchers);
        }
        let entry = state.streams.get_mut(&stream).expect("stream is open");
        let watch_id = if request.watch_id == 0 {
            while entry.watchers.contains_key(&entry.next_watch_id) {
                entry.next_watch_id += 1;
            }
            let id = entry.next_watch_id;
            entry.next_watch_id += 1;
            id
        } else if entry.watchers.contains_key(&request.watch_id) {
            return Err(CreateError::DuplicateId);
        } else {
            request.watch_id
        };
        let (no_put, no_delete) = request.filters.iter().fold((false, false), |acc, f| {
            match keel_proto::etcdserverpb::watch_create_request::FilterType::try_from(*f) {
                Ok(keel_proto::etcdserverpb::watch_create_request::FilterType::Noput) => {
                    (true, acc.1)
                }
                Ok(keel_proto::etcdserverpb::watch_create_request::FilterType::Nodelete) => {
                    (acc.0, true)
                }
                Err(_) => acc,
            }
        });
        let next_revision = if request.start_revision <= 0 {
            view_revision + 1
        } else {
            request.start_revision
        };
        // History first when the start is at or below what is applied.
        let synced = next_revision > view_revision;
        let watcher = Watcher {
            key,
            range_end,
            prev_kv: request.prev_kv,
            no_put,
            no_delete,
            fragment: request.fragment,
            progress_notify: request.progress_notify,
            next_revision,
            synced,
            sent_since_progress: false,
        };
        let single = watcher.is_single_key();
        let watched_key = watcher.key.clone();
        entry.watchers.insert(watch_id, watcher);
        let watcher_key = (stream, watch_id);
        if single {
            state
                .exact
                .entry(watched_key)
                .or_default()
                .insert(watcher_key);
        } else {
            state.ranges.insert(watcher_key);
        }
        state.watcher_count += 1;
        self.metrics
            .watchers
            .store(state.watcher_count as u64, Ordering::Relaxed);
        if state.watcher_count == 1 {
            // Batches were not sent to this core while it had no watchers:
            // everything up to the view is covered by history.
            state.shard_revision = view_revision;
            self.status
                .watching_shards
                .fetch_or(1 << self.shard, Ordering::AcqRel);
        }
        if !synced {
            state.unsynced.insert(watcher_key);
            self.wake_catch_up();
        }
        Ok(watch_id)
    }

    /// etcd's watch cancel: answers `canceled` if the id exists, nothing
    /// otherwise (as etcd).
    pub fn cancel(&self, stream: StreamId, watch_id: i64) {
        let mut state = self.state.borrow_mut();
        let Some(entry) = state.streams.get_mut(&stream) else {
            return;
        };
        let Some(watcher) = entry.watchers.remove(&watch_id) else {
            return;
        };
        let outbox = entry.outbox.clone();
        self.unindex(&mut state, (stream, watch_id), &watcher);
        let response = WatchResponse {
            header: Some(self.status.header(self.reader.view().revision())),
            watch_id,
            canceled: true,
            ..WatchResponse::default()
        };
        outbox.push(grpc::frame(&response));
    }

    /// etcd's progress request: once every watcher of the stream is synced,
    /// one response with watch id -1 and a revision no later event of the
    /// stream will be at or below.
    pub fn request_progress(&self, stream: StreamId) {
        let mut state = self.state.borrow_mut();
        let shard_revision = state.shard_revision;
        let Some(entry) = state.streams.get_mut(&stream) else {
            return;
        };
        entry.progress_pending = true;
        Self::answer_progress(&self.status, shard_revision, entry);
    }

    pub(super) fn answer_progress(
        status: &RaftStatus,
        shard_revision: i64,
        entry: &mut StreamState,
    ) {
        if !entry.progress_pending || entry.watchers.is_empty() {
            entry.progress_pending = false;
            return;
        }
        if entry.watchers.values().any(|watcher| !watcher.synced) {
            return;
        }
        let revision = Self::progress_revision(shard_revision, entry);
        entry.progress_pending = false;
        let response = WatchResponse {
            header: Some(status.header(revision)),
            watch_id: INVALID_WATCH_ID,
            ..WatchResponse::default()
        };
        entry.outbox.push(grpc::frame(&response));
    }

    /// The highest revision every synced watcher of `entry` is past.
    fn progress_revision(shard_revision: i64, entry: &StreamState) -> i64 {
        entry
            .watchers
            .values()
            .map(|watcher| shard_revision.max(watcher.next_revision - 1))
            .min()
            .unwrap_or(shard_revision)
    }

    /// Periodic progress notification (etcd's `progress_notify`): every
    /// synced watcher that asked for it and queued nothing since the last
    /// round gets an empty response with the current revision.
    pub fn notify_progress(&self) {
        let mut state = self.state.borrow_mut();
        let shard_revision = state.shard_revision;
        for entry in state.streams.values_mut() {
            for (&watch_id, watcher) in entry.watchers.iter_mut() {
                if !watcher.progress_notify || !watcher.synced {
                    continue;
                }
                if std::mem::take(&mut watcher.sent_since_progress) {
                    continue;
                }
                if !entry.outbox.has_room() {
                    continue;
                }
                let revision = shard_revision.max(watcher.next_revision - 1);
                let response = WatchResponse {
                    header: Some(self.status.header(revision)),
                    watch_id,
                    ..WatchResponse::default()
                };
                entry.outbox.push(grpc::frame(&response));
            }
        }
    }

    pub(super) fn unindex(&self, state: &mut HubState, key: WatcherKey, watcher: &Watcher) {
        if watcher.is_single_key() {
            if let Some(set) = state.exact.get_mut(&watcher.key) {
                set.remove(&key);
                if set.is_empty() {
                    state.exact.remove(&watcher.key);
                }
            }
        } else {
            state.ranges.remove(&key);
        }
        state.unsynced.remove(&key);
        state.watcher_count -= 1;
        self.metrics
            .watchers
            .store(state.watcher_count as u64, Ordering::Relaxed);
        if state.watcher_count == 0 {
            self.status
                .watching_shards
                .fetch_and(!(1 << self.shard), Ordering::AcqRel);
        }
    }

    /// Matches one applied-event batch against the synced watchers.
    pub fn on_events(&self, batch: &EventBatch) {
        let mut guard = self.state.borrow_mut();
        let state = &mut *guard;
        if state.watcher_count == 0 || batch.revision <= state.shard_revision {
            return;
        }
        if batch.previous_revision > state.shard_revision {
            // A batch was not sent to this core: serve everyone from history.
            let resume = state.shard_revision + 1;
            for (&stream, entry) in state.streams.iter_mut() {
                for (&watch_id, watcher) in entry.watchers.iter_mut() {
                    if watcher.synced {
                        watcher.synced = false;
                        watcher.next_revision = watcher.next_revision.max(resume);
                        state.unsynced.insert((stream, watch_id));
                    }
                }
            }
            state.shard_revision = batch.revision;
            drop(guard);
            self.wake_catch_up();
            return;
        }
        let mut matched: BTreeMap<WatcherKey, Vec<&Event>> = BTreeMap::new();
        for event in &batch.events {
            if event.mod_revision() <= state.shard_revision {
                continue;
            }
            if let Some(keys) = state.exact.get(event.key()) {
                for key in keys {
                    matched.entry(*key).or_default().push(event);
                }
            }
            for key in &state.ranges {
                let Some(watcher) = state
                    .streams
                    .get(&key.0)
                    .and_then(|entry| entry.watchers.get(&key.1))
                else {
                    continue;
                };
                if watcher.contains(event.key()) {
                    matched.entry(*key).or_default().push(event);
                }
            }
        }
        state.shard_revision = batch.revision;
        let mut fell_behind = false;
        let header = self.status.header(batch.revision);
        let mut encoded_events: HashMap<(Vec<*const Event>, bool), Bytes> = HashMap::new();
        for ((stream, watch_id), events) in matched {
            let Some(entry) = state.streams.get_mut(&stream) else {
                continue;
            };
            let Some(watcher) = entry.watchers.get_mut(&watch_id) else {
                continue;
            };
            if !watcher.synced {
                continue;
            }
            let events: Vec<&Event> = events
                .into_iter()
                .filter(|event| event.mod_revision() >= watcher.next_revision)
                .collect();
            let Some(first) = events.first() else {
                continue;
            };
            if !entry.outbox.has_room() {
                watcher.synced = false;
                watcher.next_revision = first.mod_revision();
                state.unsynced.insert((stream, watch_id));
                fell_behind = true;
                continue;
            }
            let wanted: Vec<&Event> = events.into_iter().filter(|e| watcher.wants(e)).collect();
            watcher.next_revision = batch.revision + 1;
            if wanted.is_empty() {
                continue;
            }
            watcher.sent_since_progress = true;
            if !watcher.fragment {
                // Watchers that get the same events share their encoding.
                let identity: Vec<*const Event> =
                    wanted.iter().map(|e| *e as *const Event).collect();
                let events_bytes = encoded_events
                    .entry((identity, watcher.prev_kv))
                    .or_insert_with(|| encode_events(&wanted, watcher.prev_kv));
                entry
                    .outbox
                    .push(frame_with_events(&header, watch_id, events_bytes));
            } else {
                queue_events(
                    &entry.outbox,
                    &self.status,
                    watch_id,
                    batch.revision,
                    watcher,
                    &wanted,
                    self.fragment_bytes,
                );
            }
        }
        drop(guard);
        if fell_behind {
            self.wake_catch_up();
        }
    }
}

/// How often periodic progress notifications go out (etcd's
/// `--experimental-watch-progress-notify-interval`, 10 minutes).
pub const PROGRESS_NOTIFY_INTERVAL_DEFAULT: Duration = Duration::from_secs(600);

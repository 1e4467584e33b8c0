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
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use keel_engine::{Event, EventKind, MvccError, StoreReader};
use keel_proto::etcdserverpb::{ResponseHeader, WatchCreateRequest, WatchResponse};
use keel_proto::mvccpb;
use keel_raft_shim::convert::to_proto_kv;
use keel_raft_shim::{EventBatch, RaftStatus, ShardId};
use prost::Message;

use super::outbox::Outbox;
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
type WatcherKey = (StreamId, i64);

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

struct Watcher {
    key: Vec<u8>,
    /// Empty: only `key`; `[0]`: every key >= `key`; else `[key, range_end)`.
    range_end: Vec<u8>,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    fragment: bool,
    progress_notify: bool,
    /// The first revision not yet queued for the client.
    next_revision: i64,
    synced: bool,
    /// Events were queued since the last periodic progress notification.
    sent_since_progress: bool,
}

impl Watcher {
    fn is_single_key(&self) -> bool {
        self.range_end.is_empty()
    }

    fn contains(&self, key: &[u8]) -> bool {
        if self.range_end.is_empty() {
            key == self.key.as_slice()
        } else if self.range_end == [0] {
            key >= self.key.as_slice()
        } else {
            key >= self.key.as_slice() && key < self.range_end.as_slice()
        }
    }

    fn wants(&self, event: &Event) -> bool {
        match event.kind {
            EventKind::Put => !self.no_put,
            EventKind::Delete => !self.no_delete,
        }
    }
}

struct StreamState {
    outbox: Rc<Outbox>,
    watchers: BTreeMap<i64, Watcher>,
    next_watch_id: i64,
    /// A progress request waits for every watcher to be synced.
    progress_pending: bool,
}

#[derive(Default)]
struct HubState {
    streams: HashMap<StreamId, StreamState>,
    /// Single-key watchers by key.
    exact: HashMap<Vec<u8>, BTreeSet<WatcherKey>>,
    /// Range and prefix watchers.
    ranges: BTreeSet<WatcherKey>,
    unsynced: BTreeSet<WatcherKey>,
    watcher_count: usize,
    shard_revision: i64,
    next_stream: StreamId,
}

pub struct WatchHub {
    shard: ShardId,
    reader: StoreReader,
    status: Arc<RaftStatus>,
    /// Fragmented responses are cut at this size (etcd: `--max-request-bytes`).
    fragment_bytes: usize,
    metrics: Arc<ShardMetrics>,
    state: RefCell<HubState>,
    catch_up_due: Cell<bool>,
    catch_up_waker: Cell<Option<Waker>>,
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

    fn answer_progress(status: &RaftStatus, shard_revision: i64, entry: &mut StreamState) {
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

    fn unindex(&self, state: &mut HubState, key: WatcherKey, watcher: &Watcher) {
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
            if event.kv.mod_revision <= state.shard_revision {
                continue;
            }
            if let Some(keys) = state.exact.get(&event.kv.key) {
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
                if watcher.contains(&event.kv.key) {
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
                .filter(|event| event.kv.mod_revision >= watcher.next_revision)
                .collect();
            let Some(first) = events.first() else {
                continue;
            };
            if !entry.outbox.has_room() {
                watcher.synced = false;
                watcher.next_revision = first.kv.mod_revision;
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

    fn wake_catch_up(&self) {
        self.catch_up_due.set(true);
        if let Some(waker) = self.catch_up_waker.take() {
            waker.wake();
        }
    }

    /// A stream's writer made room: its unsynced watchers may go on.
    pub fn outbox_drained(&self) {
        if !self.state.borrow().unsynced.is_empty() {
            self.wake_catch_up();
        }
    }

    /// The catch-up task: serves unsynced watchers from history, a bounded
    /// chunk per watcher per round, yielding between watchers.
    pub async fn run_catch_up(&self) {
        loop {
            poll_fn(|cx| {
                if self.catch_up_due.replace(false) {
                    Poll::Ready(())
                } else {
                    self.catch_up_waker.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            })
            .await;
            let keys: Vec<WatcherKey> = self.state.borrow().unsynced.iter().copied().collect();
            for key in keys {
                if self.catch_up_one(key) {
                    // More history is left for it: come round again.
                    self.catch_up_due.set(true);
                }
                glommio::yield_if_needed().await;
            }
        }
    }

    /// One history chunk for one watcher; true if it still lags and its
    /// outbox has room for more.
    fn catch_up_one(&self, key: WatcherKey) -> bool {
        let mut guard = self.state.borrow_mut();
        let state = &mut *guard;
        let shard_revision = state.shard_revision;
        let Some(entry) = state.streams.get_mut(&key.0) else {
            state.unsynced.remove(&key);
            return false;
        };
        let Some(watcher) = entry.watchers.get_mut(&key.1) else {
            state.unsynced.remove(&key);
            return false;
        };
        if watcher.synced || !entry.outbox.has_room() {
            return false;
        }
        let view = self.reader.view();
        let chunk = match view.events(
            &watcher.key,
            &watcher.range_end,
            watcher.next_revision,
            CATCH_UP_EVENTS_MAX,
        ) {
            Ok(chunk) => chunk,
            Err(MvccError::Compacted) => {
                // etcd: cancel the watcher, naming the compaction point.
                let response = WatchResponse {
                    header: Some(self.status.header(view.revision())),
                    watch_id: key.1,
                    canceled: true,
                    compact_revision: view.compact_revision(),
                    cancel_reason: "etcdserver: mvcc: required revision has been compacted"
                        .to_string(),
                    ..WatchResponse::default()
                };
                entry.outbox.push(grpc::frame(&response));
                let watcher = entry.watchers.remove(&key.1).expect("present");
                self.unindex(state, key, &watcher);
                return false;
            }
            Err(error) => {
                eprintln!("keel: watch history read failed: {error:?}");
                return false;
            }
        };
        let wanted: Vec<&Event> = chunk.events.iter().filter(|e| watcher.wants(e)).collect();
        if !wanted.is_empty() {
            watcher.sent_since_progress = true;
            queue_events(
                &entry.outbox,
                &self.status,
                key.1,
                view.revision(),
                watcher,
                &wanted,
                self.fragment_bytes,
            );
        }
        debug_assert!(chunk.next_revision >= watcher.next_revision);
        watcher.next_revision = chunk.next_revision;
        if watcher.next_revision > view.revision() {
            watcher.synced = true;
            state.unsynced.remove(&key);
            Self::answer_progress(&self.status, shard_revision, entry);
            false
        } else {
            entry.outbox.has_room()
        }
    }
}

/// Queues `events` for one watcher as one response, or as fragments when
/// the watcher asked for them and the response is larger than
/// `fragment_bytes` (etcd's `sendFragments`).
fn queue_events(
    outbox: &Outbox,
    status: &RaftStatus,
    watch_id: i64,
    revision: i64,
    watcher: &Watcher,
    events: &[&Event],
    fragment_bytes: usize,
) {
    let proto: Vec<mvccpb::Event> = events
        .iter()
        .map(|event| to_proto_event(event, watcher.prev_kv))
        .collect();
    let whole = WatchResponse {
        header: Some(status.header(revision)),
        watch_id,
        events: proto,
        ..WatchResponse::default()
    };
    if !watcher.fragment || whole.events.len() < 2 || whole.encoded_len() < fragment_bytes {
        outbox.push(grpc::frame(&whole));
        return;
    }
    let header = whole.header;
    let mut pieces: Vec<Vec<mvccpb::Event>> = vec![Vec::new()];
    let mut piece_bytes = 0usize;
    for event in whole.events {
        let event_bytes = event.encoded_len() + 8;
        let last = pieces.last_mut().expect("one piece");
        if !last.is_empty() && piece_bytes + event_bytes > fragment_bytes {
            pieces.push(Vec::new());
            piece_bytes = 0;
        }
        piece_bytes += event_bytes;
        pieces.last_mut().expect("one piece").push(event);
    }
    let count = pieces.len();
    for (index, events) in pieces.into_iter().enumerate() {
        let response = WatchResponse {
            header,
            watch_id,
            events,
            fragment: index + 1 < count,
            ..WatchResponse::default()
        };
        outbox.push(grpc::frame(&response));
    }
}

/// The `events` field of a WatchResponse, encoded once for every watcher
/// that gets exactly these events.
fn encode_events(events: &[&Event], with_prev_kv: bool) -> Bytes {
    let only_events = WatchResponse {
        events: events
            .iter()
            .map(|event| to_proto_event(event, with_prev_kv))
            .collect(),
        ..WatchResponse::default()
    };
    Bytes::from(only_events.encode_to_vec())
}

/// A framed WatchResponse from its own header and id plus shared encoded
/// events: protobuf fields may come in any order and concatenated
/// encodings merge, so the result decodes as one message.
fn frame_with_events(header: &ResponseHeader, watch_id: i64, events: &Bytes) -> Bytes {
    let head = WatchResponse {
        header: Some(*header),
        watch_id,
        ..WatchResponse::default()
    };
    let len = head.encoded_len() + events.len();
    let mut framed = BytesMut::with_capacity(grpc::PREFIX_BYTES + len);
    framed.put_u8(0);
    framed.put_u32(len as u32);
    head.encode(&mut framed).expect("capacity reserved");
    framed.extend_from_slice(events);
    framed.freeze()
}

fn to_proto_event(event: &Event, with_prev_kv: bool) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match event.kind {
            EventKind::Put => mvccpb::event::EventType::Put as i32,
            EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(to_proto_kv(event.kv.clone())),
        prev_kv: if with_prev_kv {
            event.prev_kv.clone().map(to_proto_kv)
        } else {
            None
        },
    }
}

/// How often periodic progress notifications go out (etcd's
/// `--experimental-watch-progress-notify-interval`, 10 minutes).
pub const PROGRESS_NOTIFY_INTERVAL_DEFAULT: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::KeyValue;

    #[test]
    fn shared_event_encoding_decodes_as_the_whole_response() {
        let event = Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: b"k".to_vec(),
                create_revision: 2,
                mod_revision: 5,
                version: 3,
                value: b"v".to_vec(),
                lease: 0,
            },
            prev_kv: Some(KeyValue {
                key: b"k".to_vec(),
                mod_revision: 4,
                ..KeyValue::default()
            }),
        };
        let header = ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 5,
            raft_term: 3,
        };
        let shared = encode_events(&[&event], true);
        let framed = frame_with_events(&header, 42, &shared);
        let expected = WatchResponse {
            header: Some(header),
            watch_id: 42,
            events: vec![to_proto_event(&event, true)],
            ..WatchResponse::default()
        };
        assert_eq!(framed, grpc::frame(&expected));
        let decoded = WatchResponse::decode(&framed[grpc::PREFIX_BYTES..]).unwrap();
        assert_eq!(decoded, expected);
    }
}

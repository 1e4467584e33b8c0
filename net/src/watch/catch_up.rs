//! The catch-up task: serves unsynced watchers from the store's history,
//! a bounded chunk per watcher per round, yielding between watchers, until
//! each reaches the view's revision and is synced again.

use std::future::poll_fn;
use std::task::Poll;

use keel_engine::{Event, MvccError};
use keel_proto::etcdserverpb::WatchResponse;

use super::hub::{WatchHub, WatcherKey, CATCH_UP_EVENTS_MAX};
use super::response::queue_events;
use crate::grpc;

impl WatchHub {
    pub(super) fn wake_catch_up(&self) {
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
    pub(super) fn catch_up_one(&self, key: WatcherKey) -> bool {
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

//! One watcher: what it watches, its options, and where it stands.

use keel_engine::{Event, EventKind};

pub(super) struct Watcher {
    pub(super) key: Vec<u8>,
    /// Empty: only `key`; `[0]`: every key >= `key`; else `[key, range_end)`.
    pub(super) range_end: Vec<u8>,
    pub(super) prev_kv: bool,
    pub(super) no_put: bool,
    pub(super) no_delete: bool,
    pub(super) fragment: bool,
    pub(super) progress_notify: bool,
    /// The first revision not yet queued for the client.
    pub(super) next_revision: i64,
    pub(super) synced: bool,
    /// Events were queued since the last periodic progress notification.
    pub(super) sent_since_progress: bool,
}

impl Watcher {
    pub(super) fn is_single_key(&self) -> bool {
        self.range_end.is_empty()
    }

    pub(super) fn contains(&self, key: &[u8]) -> bool {
        if self.range_end.is_empty() {
            key == self.key.as_slice()
        } else if self.range_end == [0] {
            key >= self.key.as_slice()
        } else {
            key >= self.key.as_slice() && key < self.range_end.as_slice()
        }
    }

    pub(super) fn wants(&self, event: &Event) -> bool {
        match event.kind {
            EventKind::Put => !self.no_put,
            EventKind::Delete => !self.no_delete,
        }
    }
}

//! Watch history: the events of a key range from a start revision, in
//! revision order and in bounded chunks, read from a view's tree in one of
//! two ways.
//!
//! By revision ([`events_by_revision`], for ranges): a walk over the
//! revision index (`key.rs`) from `start_revision`, as etcd's
//! `syncWatchers` walks its revisions. Each index entry names its user
//! key; one in the range costs a seek to its MVCC entry (and one to the
//! put it superseded, the event's `prev_kv`). The walk stops after
//! `max_events` events (between main revisions) or after scanning
//! [`INDEX_SCAN_MAX`] index entries, so a chunk's time is bounded however
//! little of the history falls in the range; the caller resumes at the
//! chunk's `next_revision`.
//!
//! By key (the rest of this comment; for a single key, whose entries sit
//! together): the tree orders entries by user key, then revision
//! descending; events must come out by (main, sub) revision. One pass over
//! the range in key order visits, per key, its entries from the newest
//! wanted down to `start_revision` (plus the one just older, which is the
//! event's `prev_kv`), and offers each event to a [`Collector`]: a max-heap
//! by revision that keeps only the events of the smallest main revisions
//! fitting in `max_events`. When the heap grows past that, the events of
//! its highest main revision go, and that revision becomes a cap: nothing
//! at or above it is collected any more (for a key whose newest entries are
//! above the cap the scan seeks straight below it). So memory stays about
//! `max_events` events however long the range's history, except that a
//! chunk never splits a main revision: one revision with more events than
//! `max_events` is returned whole. Time is linear in the range's entries
//! between `start_revision` and the cap.

use super::key::{
    decode_index_value, decode_value, encode_key_with_prefix, index_key, index_revision_of,
    past_prefix, prefix_of, revision_of, user_key_of, ValueRecord,
};
use super::key_range::KeyRange;
use super::revision::Revision;
use super::view::ReadView;
use super::{Detail, Event, EventKind, KvMeta};
use crate::btree::{Cursor, EntryRef, Node};
use crate::error::MvccError;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Entries of one user key the scan steps over one by one before it
/// re-seeks past the key instead (a seek costs about a tree descent).
const KEY_SKIP_ENTRIES_MAX: usize = 8;

/// Most revision index entries one chunk read by revision scans (it stops
/// at the first main revision boundary after this many).
pub const INDEX_SCAN_MAX: usize = 64 * 1024;

/// Which walk [`ReadView::events`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryWalk {
    /// Over the range's keys: for a single key.
    ByKey,
    /// Over the revision index: for ranges.
    ByRevision,
}

/// A bounded piece of a range's event history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryChunk {
    /// Events by (main, sub) revision; whole main revisions only.
    pub events: Vec<Event>,
    /// Where the next chunk starts: the main revision after the last one
    /// returned, or the view's revision + 1 once the chunk reaches it.
    pub next_revision: i64,
}

/// See [`ReadView::events`].
pub(crate) fn events(
    view: &ReadView,
    key: &[u8],
    range_end: &[u8],
    start_revision: i64,
    max_events: usize,
    walk: Option<HistoryWalk>,
) -> Result<HistoryChunk, MvccError> {
    let after_view = view.revision + 1;
    let nothing = |next_revision| HistoryChunk {
        events: Vec::new(),
        next_revision,
    };
    if start_revision <= 0 {
        return Ok(nothing(after_view));
    }
    if start_revision < view.compact_revision {
        return Err(MvccError::Compacted);
    }
    if start_revision > view.revision {
        // A watch from the future: nothing yet, and it must not resume
        // before its own start.
        return Ok(nothing(start_revision.max(after_view)));
    }
    let Some(key_range) = KeyRange::new(key, range_end) else {
        return Ok(nothing(after_view));
    };
    let walk = walk.unwrap_or(if range_end.is_empty() {
        HistoryWalk::ByKey
    } else {
        HistoryWalk::ByRevision
    });
    if walk == HistoryWalk::ByRevision {
        return Ok(events_by_revision(
            view,
            &key_range,
            start_revision,
            max_events,
        ));
    }
    let mut collector = Collector::new(max_events);
    let mut cursor = Cursor::seek(&view.root, key_range.start());
    while let Some(first) = cursor.current() {
        let prefix = prefix_of(first.key());
        if !key_range.contains(prefix) {
            break;
        }
        collect_key(
            &view.root,
            &mut cursor,
            prefix,
            start_revision,
            view.revision,
            view.compact_revision,
            &mut collector,
        );
    }
    Ok(collector.finish(after_view))
}

/// The walk over the revision index (see the module comment), for a
/// validated `start_revision` in `[compact_revision, view.revision]`.
fn events_by_revision(
    view: &ReadView,
    key_range: &KeyRange,
    start_revision: i64,
    max_events: usize,
) -> HistoryChunk {
    let root: &Node = &view.root;
    let mut events: Vec<Event> = Vec::new();
    // Events before the current main revision's.
    let mut before_current = 0;
    let mut current_main: Option<i64> = None;
    // The chunk is complete; the walk goes on only to learn whether any
    // event is left (so that the answer is the same as the walk by key's).
    let mut full = false;
    let mut scanned = 0usize;
    let mut cursor = Cursor::seek(root, &index_key(Revision::new(start_revision, 0)));
    let after_last = |events: &[Event]| events.last().expect("not empty").mod_revision() + 1;
    let next_revision = loop {
        let revision = cursor
            .current()
            .and_then(|entry| index_revision_of(entry.key()))
            .filter(|revision| revision.main <= view.revision);
        if revision.is_none() || revision.map(|revision| revision.main) != current_main {
            // The current main revision is complete (or there is none).
            // It overflowed the chunk: it goes whole, unless it is alone.
            if events.len() > max_events.max(before_current) && before_current > 0 {
                events.truncate(before_current);
                break after_last(&events);
            }
            let Some(revision) = revision else {
                break view.revision + 1;
            };
            if scanned >= INDEX_SCAN_MAX {
                break revision.main;
            }
            full = !events.is_empty() && events.len() >= max_events;
            before_current = events.len();
            current_main = Some(revision.main);
        }
        let (revision, entry) = (
            revision.expect("checked"),
            cursor.current().expect("checked"),
        );
        scanned += 1;
        let record = decode_index_value(entry.value());
        if key_range.includes(record.prefix) {
            if let Some(event) = indexed_event(
                root,
                record.prefix,
                revision,
                record.tombstone,
                record.previous_put,
                view.compact_revision,
            ) {
                if full {
                    break after_last(&events);
                }
                events.push(event);
            }
        }
        cursor.next();
    };
    HistoryChunk {
        events,
        next_revision,
    }
}

/// The event of the MVCC entry at `revision` of the user key with
/// `prefix`, read through the index; `None` if that entry is gone as
/// superseded at the compaction point (only possible at the point itself,
/// since walks start at or above it): a tombstone there, or an entry there
/// with a newer one of its key at the same main revision.
fn indexed_event(
    root: &Node,
    prefix: &[u8],
    revision: Revision,
    tombstone: bool,
    previous_put: Option<Revision>,
    compact_revision: i64,
) -> Option<Event> {
    let at_point = revision.main <= compact_revision;
    if at_point && tombstone {
        return None;
    }
    let seek = |revision: Revision| -> Option<EntryRef<'_>> {
        let tree_key = encode_key_with_prefix(prefix, revision);
        let entry = Cursor::seek(root, &tree_key).current()?;
        (entry.key() == tree_key.as_slice()).then_some(entry)
    };
    let entry = if at_point {
        // Only the key's newest entry at the point is kept; its prev is
        // superseded, so none.
        let newest = Cursor::seek(
            root,
            &encode_key_with_prefix(prefix, Revision::new(revision.main, i64::MAX)),
        )
        .current()
        .filter(|newest| {
            revision_of(newest.key()) == revision && prefix_of(newest.key()) == prefix
        })?;
        return Some(event_of(newest, revision, None));
    } else {
        seek(revision).expect("an indexed entry above the compaction point is in the tree")
    };
    let previous = previous_put.map(|previous| {
        seek(previous).expect("the put an entry above the compaction point supersedes is kept")
    });
    Some(event_of(entry, revision, previous))
}

/// Offers `collector` the events of the user key with `prefix` (the cursor
/// is on its first entry) whose main revision is in `[start_revision,
/// view_revision]`, then leaves the cursor on the next user key. Entries
/// superseded at `compact_revision` that an incremental compaction has not
/// removed yet (`compact.rs`) are treated as gone: neither events nor
/// `prev_kv`s, so the answer does not depend on how far removal got.
fn collect_key<'a>(
    root: &'a Node,
    cursor: &mut Cursor<'a>,
    prefix: &'a [u8],
    start_revision: i64,
    view_revision: i64,
    compact_revision: i64,
    collector: &mut Collector,
) {
    let same_key = |entry: EntryRef<'_>| prefix_of(entry.key()) == prefix;
    let newest_wanted = view_revision.min(collector.cap - 1);
    if cursor
        .current()
        .is_some_and(|entry| revision_of(entry.key()).main > newest_wanted)
    {
        // Entries above the cap (or the view) are of no use: seek below.
        let below = encode_key_with_prefix(prefix, Revision::new(newest_wanted, i64::MAX));
        *cursor = Cursor::seek(root, &below);
    }
    while let Some(entry) = cursor.current().filter(|entry| same_key(*entry)) {
        let revision = revision_of(entry.key());
        if revision.main < start_revision {
            break;
        }
        // start_revision >= compact_revision, so an entry at or below the
        // point is at it, and only the key's newest one there is kept, if
        // it is a put; the older ones are superseded, so none is its prev.
        let at_point = revision.main <= compact_revision;
        if at_point && matches!(decode_value(entry.value()), ValueRecord::Tombstone) {
            break;
        }
        cursor.next();
        if revision.main > view_revision || !collector.wants(revision.main) {
            if at_point {
                break;
            }
            continue;
        }
        // The entry just older, now under the cursor, is the event's prev
        // (the key's newest entry at or below the point is kept, unless a
        // tombstone, which gives no prev anyway).
        let previous = cursor
            .current()
            .filter(|older| same_key(*older))
            .filter(|_| !at_point);
        collector.push(revision, event_of(entry, revision, previous));
        if at_point {
            break;
        }
    }
    // Skip the key's older entries: step over a few, seek past the rest.
    for _ in 0..KEY_SKIP_ENTRIES_MAX {
        match cursor.current() {
            Some(entry) if same_key(entry) => cursor.next(),
            _ => return,
        }
    }
    if cursor.current().is_some_and(same_key) {
        *cursor = Cursor::seek(root, &past_prefix(prefix));
    }
}

/// The event an MVCC entry records, as [`super::Txn`] reports it.
fn event_of(entry: EntryRef<'_>, revision: Revision, previous: Option<EntryRef<'_>>) -> Event {
    let previous =
        previous.filter(|older| matches!(decode_value(older.value()), ValueRecord::Put { .. }));
    let key = user_key_of(entry.key());
    match decode_value(entry.value()) {
        ValueRecord::Put {
            create_revision,
            version,
            lease,
            value,
        } => {
            let meta = KvMeta {
                create_revision,
                mod_revision: revision.main,
                version,
                lease,
            };
            Event::build(EventKind::Put, &key, &[value], meta, previous, Detail::Full)
        }
        ValueRecord::Tombstone => {
            let meta = KvMeta {
                mod_revision: revision.main,
                ..KvMeta::default()
            };
            Event::build(EventKind::Delete, &key, &[], meta, previous, Detail::Full)
        }
    }
}

/// An event waiting in the collector, ordered by its revision (unique).
#[derive(Debug)]
struct Pending {
    revision: Revision,
    event: Event,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Pending) -> bool {
        self.revision == other.revision
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Pending) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Pending) -> Ordering {
        self.revision.cmp(&other.revision)
    }
}

/// Keeps the events of the smallest main revisions that fit in
/// `max_events` (at least one whole main revision), whatever order they
/// are offered in.
#[derive(Debug)]
struct Collector {
    heap: BinaryHeap<Pending>,
    max_events: usize,
    /// Main revisions at or above this were dropped; `i64::MAX` = none yet.
    cap: i64,
    /// The smallest main revision pushed: never dropped.
    min_main: i64,
}

impl Collector {
    fn new(max_events: usize) -> Collector {
        Collector {
            heap: BinaryHeap::with_capacity(max_events.saturating_add(1).min(1 << 16)),
            max_events,
            cap: i64::MAX,
            min_main: i64::MAX,
        }
    }

    /// Whether an event at main revision `main` could still be returned.
    fn wants(&self, main: i64) -> bool {
        main < self.cap
    }

    fn push(&mut self, revision: Revision, event: Event) {
        assert!(self.wants(revision.main), "pushed above the cap");
        self.min_main = self.min_main.min(revision.main);
        self.heap.push(Pending { revision, event });
        // Every event seen below the cap is in the heap, so when it holds
        // too many, its highest main revision cannot fit in the chunk
        // (unless it is the only one left: a revision is never split).
        while self.heap.len() > self.max_events {
            let top = self.heap.peek().expect("heap is not empty").revision.main;
            if top == self.min_main {
                break;
            }
            while self
                .heap
                .peek()
                .is_some_and(|pending| pending.revision.main == top)
            {
                self.heap.pop();
            }
            self.cap = top;
        }
        debug_assert!(self.heap.len() <= self.max_events || self.heap_is_one_revision());
    }

    fn heap_is_one_revision(&self) -> bool {
        self.heap
            .peek()
            .is_none_or(|top| top.revision.main == self.min_main)
    }

    /// The chunk; `after_view` is the view's revision + 1.
    fn finish(self, after_view: i64) -> HistoryChunk {
        let capped = self.cap != i64::MAX;
        let events: Vec<Event> = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|pending| pending.event)
            .collect();
        let next_revision = match events.last() {
            Some(last) if capped => last.mod_revision() + 1,
            _ => after_view,
        };
        HistoryChunk {
            events,
            next_revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::KeyValue;
    use super::*;

    fn event(main: i64) -> Event {
        Event::new(
            EventKind::Delete,
            KeyValue {
                key: b"k".to_vec(),
                mod_revision: main,
                ..KeyValue::default()
            },
            None,
        )
    }

    /// Offers events of many revisions in a scrambled order and checks the
    /// heap's bound after each, then the chunk against a sort.
    #[test]
    fn collector_keeps_smallest_whole_revisions_in_bounded_memory() {
        // Revision r has r % 5 + 1 events; revision 40 has 30.
        let mut all: Vec<Revision> = Vec::new();
        for main in 2..60 {
            let count = if main == 40 { 30 } else { main % 5 + 1 };
            all.extend((0..count).map(|sub| Revision::new(main, sub)));
        }
        for max_events in [0usize, 1, 3, 7, 20, 1000] {
            for stride in [1usize, 7, 13] {
                let mut order = all.clone();
                // A deterministic scramble: every stride-th from each start.
                order = (0..stride)
                    .flat_map(|start| order.iter().skip(start).step_by(stride).copied())
                    .collect();
                order.reverse();
                let mut collector = Collector::new(max_events);
                for &revision in &order {
                    if collector.wants(revision.main) {
                        collector.push(revision, event(revision.main));
                    }
                    let bound = max_events.max(30) + 1;
                    assert!(collector.heap.len() <= bound);
                }
                let chunk = collector.finish(60);
                // Expected: whole revisions from the smallest while they fit,
                // at least one.
                let mut expected = Vec::new();
                let mut sorted = all.clone();
                sorted.sort();
                for group in sorted.chunk_by(|a, b| a.main == b.main) {
                    if !expected.is_empty() && expected.len() + group.len() > max_events {
                        break;
                    }
                    expected.extend(group.iter().map(|revision| revision.main));
                }
                let got: Vec<i64> = chunk.events.iter().map(|e| e.mod_revision()).collect();
                assert_eq!(got, expected, "max {max_events}, stride {stride}");
                let next = if expected.len() == all.len() {
                    60
                } else {
                    expected.last().unwrap() + 1
                };
                assert_eq!(chunk.next_revision, next);
            }
        }
    }
}

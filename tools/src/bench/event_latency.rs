//! Put-to-event latency, etcd watch-latency's arithmetic: an event's
//! latency is its arrival minus the end of the put that caused it, and an
//! event that arrives before its put's response counts as 0.
//!
//! Putters mark when each put ended in a shared [`PutEnds`] slot (the put's
//! index, or its revision less a base); each executor's [`EventLatencies`]
//! turns events into latencies as they arrive, so 10,000 watchers cost a
//! histogram per executor, not a timestamp per event.
//!
//! Marking a slot first stores [`ENDING`], then reads the clock, then
//! stores the time (all SeqCst). So an event that finds its slot unset
//! arrived before the putter read its clock: latency 0, at once. One that
//! finds `ENDING` waits the few nanoseconds until the time is stored (or,
//! past a bound, is kept aside and settled by [`EventLatencies::finish`]).
//! An event of a put that never completes (an interrupted run) counts as 0.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::report::Report;

/// A slot whose put is ending: the putter is reading the clock.
pub const ENDING: u64 = u64::MAX;
/// Spins an event waits for an `ENDING` slot before keeping it aside.
const ENDING_SPINS_MAX: usize = 100_000;

/// When each put ended, ns after `origin` (0: not yet, or never).
#[derive(Debug)]
pub struct PutEnds {
    pub origin: Instant,
    ends_ns: Vec<AtomicU64>,
}

impl PutEnds {
    pub fn new(slots: usize) -> PutEnds {
        PutEnds {
            origin: Instant::now(),
            ends_ns: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn slots(&self) -> usize {
        self.ends_ns.len()
    }

    /// Now, in ns after `origin` (at least 1, so it never reads as unset).
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Marks put `slot` as ended now.
    pub fn mark(&self, slot: usize) {
        if let Some(end) = self.ends_ns.get(slot) {
            end.store(ENDING, Ordering::SeqCst);
            end.store(self.now_ns(), Ordering::SeqCst);
        }
    }

    /// What slot `slot` holds: 0 (not ended), [`ENDING`], or the time.
    fn load(&self, slot: usize) -> u64 {
        self.ends_ns
            .get(slot)
            .map_or(0, |end| end.load(Ordering::SeqCst))
    }

    /// When put `slot` ended, if it has.
    pub fn get(&self, slot: usize) -> Option<u64> {
        match self.load(slot) {
            0 | ENDING => None,
            ns => Some(ns),
        }
    }
}

/// One executor's events, turned into latencies.
#[derive(Debug)]
pub struct EventLatencies {
    pub report: Report,
    /// (slot, arrival ns) of events whose put was not marked on arrival.
    pending: Vec<(usize, u64)>,
}

impl EventLatencies {
    pub fn new(sample: bool) -> EventLatencies {
        EventLatencies {
            report: Report::new(sample),
            pending: Vec::new(),
        }
    }

    /// An event of put `slot` arrived at `arrived_ns`.
    pub fn record(&mut self, ends: &PutEnds, slot: usize, arrived_ns: u64) {
        if slot >= ends.slots() {
            self.report
                .record_error("event for a put keel-bench did not make".into());
            return;
        }
        let mut spins = 0;
        loop {
            match ends.load(slot) {
                // The putter had not read its clock when this event came.
                0 => return self.record_latency(ends, arrived_ns, arrived_ns),
                ENDING if spins < ENDING_SPINS_MAX => {
                    spins += 1;
                    std::hint::spin_loop();
                }
                ENDING => return self.pending.push((slot, arrived_ns)),
                end_ns => return self.record_latency(ends, end_ns, arrived_ns),
            }
        }
    }

    fn record_latency(&mut self, ends: &PutEnds, end_ns: u64, arrived_ns: u64) {
        // An event before its put's end: etcd takes the event time as the
        // start, i.e. latency 0.
        let start_ns = end_ns.min(arrived_ns);
        let begun = ends.origin + Duration::from_nanos(start_ns);
        self.report
            .record_from(begun, Duration::from_nanos(arrived_ns - start_ns));
    }

    /// Folds another stream's or executor's latencies in.
    pub fn merge(&mut self, other: EventLatencies) {
        self.report.merge(&other.report);
        self.pending.extend(other.pending);
    }

    /// Settles the events kept aside (call when every put has ended or the
    /// run stopped).
    pub fn finish(mut self, ends: &PutEnds) -> Report {
        for (slot, arrived_ns) in std::mem::take(&mut self.pending) {
            let end_ns = ends.get(slot).unwrap_or(arrived_ns);
            self.record_latency(ends, end_ns, arrived_ns);
        }
        self.report
    }
}

//! Auto-compaction (etcd's `--auto-compaction-mode`/`-retention`): decides
//! when the leader proposes a Compact, and to which revision. Pure: the raft
//! core feeds it the time and revisions on every tick and proposes what it
//! returns through raft, as a client's Compact would be.
//!
//! - [`AutoCompaction::Revision`]`(N)`: every
//!   [`REVISION_CHECK_INTERVAL`], compact to `revision - N` when that has
//!   moved at least `max(1, N / 10)` past the last compaction point (any
//!   amount for the first compaction). etcd
//!   checks every 5 minutes instead; keel checks often (so a small retention
//!   is testable) and the step keeps a busy server from scanning the tree on
//!   every check.
//! - [`AutoCompaction::Periodic`]`(period)`: as etcd's periodic compactor,
//!   sample the revision every `min(period, 1h) / 10`; once `period` has
//!   passed since start, and then every `min(period, 1h)`, compact to the
//!   newest sample taken at least `period` ago (history of the last `period`
//!   is kept).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often revision mode looks at the revision (etcd: 5 minutes).
pub const REVISION_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Periodic mode compacts at most this often (etcd's cap on the interval).
pub const PERIODIC_COMPACT_INTERVAL_MAX: Duration = Duration::from_secs(3600);
/// Periodic mode samples the revision this many times per interval (etcd's
/// `retryDivisor`).
pub const PERIODIC_SAMPLES_PER_INTERVAL: u32 = 10;
/// Most revision samples periodic mode keeps (bounds the queue whatever the
/// period: one period holds about `period / sample interval` samples).
pub const PERIODIC_SAMPLES_MAX: usize = 4096;

/// etcd's `--auto-compaction-mode` with its `--auto-compaction-retention`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep the history of the last `Duration`.
    Periodic(Duration),
    /// Keep the last `i64` revisions.
    Revision(i64),
}

/// The auto-compaction schedule of one leader.
#[derive(Debug)]
pub struct AutoCompactor {
    mode: AutoCompaction,
    started: Instant,
    next_check: Instant,
    last_compaction: Option<Instant>,
    /// Periodic mode: (when, revision) samples, oldest first.
    samples: VecDeque<(Instant, i64)>,
    /// The last revision proposed, so a proposal in flight is not repeated.
    last_proposed: i64,
}

impl AutoCompactor {
    /// A schedule starting `now`.
    pub fn new(mode: AutoCompaction, now: Instant) -> AutoCompactor {
        AutoCompactor {
            mode,
            started: now,
            next_check: now,
            last_compaction: None,
            samples: VecDeque::new(),
            last_proposed: 0,
        }
    }

    fn check_interval(&self) -> Duration {
        match self.mode {
            AutoCompaction::Revision(_) => REVISION_CHECK_INTERVAL,
            AutoCompaction::Periodic(period) => (period.min(PERIODIC_COMPACT_INTERVAL_MAX)
                / PERIODIC_SAMPLES_PER_INTERVAL)
                .max(Duration::from_millis(1)),
        }
    }

    /// Called on every tick with the store's current and compact revisions;
    /// returns the revision to propose a compaction to, when one is due.
    pub fn poll(&mut self, now: Instant, revision: i64, compact_revision: i64) -> Option<i64> {
        if now < self.next_check {
            return None;
        }
        self.next_check = now + self.check_interval();
        let floor = compact_revision.max(self.last_proposed);
        let target = match self.mode {
            AutoCompaction::Revision(retention) => {
                let target = revision - retention;
                let step = if floor == 0 {
                    1
                } else {
                    (retention / 10).max(1)
                };
                (target > 0 && target - floor >= step).then_some(target)?
            }
            AutoCompaction::Periodic(period) => {
                self.samples.push_back((now, revision));
                while self.samples.len() > PERIODIC_SAMPLES_MAX
                    || (self.samples.len() >= 2 && now.duration_since(self.samples[1].0) >= period)
                {
                    self.samples.pop_front();
                }
                let since = self.last_compaction.unwrap_or(self.started);
                let wait = if self.last_compaction.is_some() {
                    period.min(PERIODIC_COMPACT_INTERVAL_MAX)
                } else {
                    period
                };
                if now.duration_since(since) < wait {
                    return None;
                }
                let &(taken, target) = self.samples.front()?;
                (now.duration_since(taken) >= period && target > floor && target > 0)
                    .then_some(target)?
            }
        };
        self.last_proposed = target;
        self.last_compaction = Some(now);
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_mode_keeps_the_last_n_revisions() {
        let start = Instant::now();
        let mut compactor = AutoCompactor::new(AutoCompaction::Revision(10), start);
        assert_eq!(compactor.poll(start, 5, 0), None, "not enough revisions");
        let later = start + REVISION_CHECK_INTERVAL;
        assert_eq!(compactor.poll(later, 30, 0), Some(20));
        // Not applied yet: not proposed again.
        let later = later + REVISION_CHECK_INTERVAL;
        assert_eq!(compactor.poll(later, 30, 0), None);
        // Checked only once per interval.
        assert_eq!(compactor.poll(later, 40, 20), None);
        let later = later + REVISION_CHECK_INTERVAL;
        assert_eq!(compactor.poll(later, 40, 20), Some(30));
    }

    #[test]
    fn revision_mode_waits_for_a_step_of_a_tenth() {
        let start = Instant::now();
        let mut compactor = AutoCompactor::new(AutoCompaction::Revision(1000), start);
        assert_eq!(compactor.poll(start, 1050, 0), Some(50));
        let later = start + REVISION_CHECK_INTERVAL;
        assert_eq!(compactor.poll(later, 1120, 50), None, "moved 70 < 100");
        let later = later + REVISION_CHECK_INTERVAL;
        assert_eq!(compactor.poll(later, 1150, 50), Some(150));
    }

    #[test]
    fn periodic_mode_keeps_the_last_period() {
        let start = Instant::now();
        let period = Duration::from_secs(10);
        let mut compactor = AutoCompactor::new(AutoCompaction::Periodic(period), start);
        let mut proposed = Vec::new();
        // One revision per 100 ms for 30 s, polled every 100 ms.
        for step in 0..=300u32 {
            let now = start + Duration::from_millis(100) * step;
            let revision = 1 + i64::from(step);
            if let Some(target) = compactor.poll(now, revision, 0) {
                proposed.push((step, target));
            }
        }
        // First after one period, then once per period; each keeps >= 10 s.
        assert_eq!(proposed.first().map(|&(step, _)| step), Some(100));
        assert_eq!(proposed.len(), 3, "{proposed:?}");
        for (step, target) in proposed {
            let revision = 1 + i64::from(step);
            assert!(revision - target >= 100, "step {step}: {target}");
            assert!(revision - target <= 110, "step {step}: {target}");
        }
    }
}

//! What keel-bench is asked to run: one [`Command`] per etcd `benchmark`
//! subcommand, with that subcommand's flags resolved to values.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Put {
        total: usize,
        key_size: usize,
        val_size: usize,
        sequential_keys: bool,
        key_space_size: usize,
        /// Puts per second over every client; 0: no limit (etcd: `--rate`).
        rate: usize,
        /// Compact to the current revision minus `compact_index_delta`
        /// this often while putting (etcd: `--compact-interval`).
        compact_interval: Option<Duration>,
        compact_index_delta: i64,
    },
    Range {
        key: Vec<u8>,
        end: Vec<u8>,
        total: usize,
        serializable: bool,
        limit: i64,
    },
    /// Txns of `txn_ops` puts each (etcd: `txn-put`).
    TxnPut {
        total: usize,
        key_size: usize,
        val_size: usize,
        txn_ops: usize,
        key_space_size: usize,
    },
    /// Txns of one op each: a range with probability rw/(1+rw), else a put
    /// (etcd: `txn-mixed`).
    TxnMixed {
        total: usize,
        key_size: usize,
        val_size: usize,
        rw_ratio: f64,
        serializable: bool,
        key_space_size: usize,
        limit: i64,
        end_key: Vec<u8>,
    },
    /// Each client grants a lease, then renews it `total` times overall
    /// (etcd: `lease-keepalive`).
    LeaseKeepalive { total: usize },
    /// `streams` watch streams with `watchers_per_stream` watchers on one
    /// key; one more connection puts the key `put_total` times at
    /// `put_rate`/s (etcd: `watch-latency`).
    WatchLatency {
        put_total: usize,
        put_rate: usize,
        key_size: usize,
        val_size: usize,
        streams: usize,
        watchers_per_stream: usize,
        prev_kv: bool,
    },
    /// `streams` x `watch_per_stream` watchers over `watched_key_total`
    /// keys, then `put_total` puts of those keys from every client at
    /// `put_rate`/s (0: no limit) (etcd: `watch`).
    Watch {
        streams: usize,
        watch_per_stream: usize,
        watched_key_total: usize,
        put_rate: usize,
        put_total: usize,
        key_size: usize,
        key_space_size: usize,
        sequential_keys: bool,
    },
    /// `watchers` unsynced watchers (from the first of `events` puts) over
    /// `streams` streams, timing serializable gets on a connection of its
    /// own until every watcher has caught up (etcd: `watch-get`).
    WatchGet {
        watchers: usize,
        streams: usize,
        events: usize,
    },
    /// Puts straight into keel's storage engine, in-process (etcd:
    /// `mvcc put`).
    MvccPut {
        total: usize,
        key_size: usize,
        value_size: usize,
        /// One write transaction of `txn_ops` puts per result.
        txn: bool,
        txn_ops: usize,
        engine: MvccEngineOptions,
    },
    /// Range reads straight from keel's storage engine, in-process, over
    /// `key_space_size` keys written first (keel-bench's own).
    MvccRange {
        total: usize,
        key_size: usize,
        value_size: usize,
        key_space_size: usize,
        /// 0: each read gets one key; else a range from that key with
        /// this limit.
        limit: i64,
        engine: MvccEngineOptions,
    },
}

/// etcd `benchmark mvcc`'s backend flags, mapped to keel's persist
/// triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MvccEngineOptions {
    /// `--batch-interval` (ms): persist this long after the last one.
    pub batch_interval: Duration,
    /// `--batch-limit`: persist after this many changes.
    pub batch_limit: u64,
}

impl Default for MvccEngineOptions {
    fn default() -> MvccEngineOptions {
        MvccEngineOptions {
            batch_interval: Duration::from_millis(100),
            batch_limit: 10_000,
        }
    }
}

impl Command {
    /// Requests (put, range, txn, keep-alive), puts (the watch commands) or
    /// engine operations (mvcc).
    pub fn total(&self) -> usize {
        match self {
            Command::Put { total, .. }
            | Command::Range { total, .. }
            | Command::TxnPut { total, .. }
            | Command::TxnMixed { total, .. }
            | Command::LeaseKeepalive { total }
            | Command::MvccPut { total, .. }
            | Command::MvccRange { total, .. } => *total,
            Command::WatchLatency { put_total, .. } | Command::Watch { put_total, .. } => {
                *put_total
            }
            Command::WatchGet { events, .. } => *events,
        }
    }

    /// Watchers a run creates.
    pub fn watchers(&self) -> usize {
        match self {
            Command::WatchLatency {
                streams,
                watchers_per_stream,
                ..
            } => streams * watchers_per_stream,
            Command::Watch {
                streams,
                watch_per_stream,
                ..
            } => streams * watch_per_stream,
            Command::WatchGet { watchers, .. } => *watchers,
            _ => 0,
        }
    }

    /// What the progress bar counts to: requests; for watch-latency puts
    /// plus one event per put per watcher; for watch-get the events.
    /// (`watch` counts creations plus events: see `watch_bench::plan`.)
    pub fn expected_results(&self) -> usize {
        match self {
            Command::WatchLatency { put_total, .. } => put_total * (1 + self.watchers()),
            Command::WatchGet { events, .. } => events * self.watchers(),
            other => other.total(),
        }
    }

    /// (JSON key, text title) of each report the command prints.
    pub fn report_names(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Command::TxnMixed { .. } => &[("read", "Read summary"), ("write", "Write summary")],
            Command::WatchLatency { .. } => {
                &[("put", "Put summary"), ("watch", "Watch events summary")]
            }
            Command::Watch { .. } => &[
                ("create", "Watch creation summary"),
                ("events", "Watch events received summary"),
            ],
            Command::WatchGet { .. } => &[("", "Get during watch summary")],
            _ => &[("", "Summary")],
        }
    }

    /// Whether the command drives the engine in-process (no server).
    pub fn is_mvcc(&self) -> bool {
        matches!(self, Command::MvccPut { .. } | Command::MvccRange { .. })
    }
}

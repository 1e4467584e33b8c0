//! Opening the raft core: the backend and the WAL under the data dir,
//! raft's log rebuilt from the WAL tail, the lease table from the backend.

use super::*;

#[derive(Debug)]
pub enum OpenError {
    CreateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    Store(keel_engine::StoreError),
    Wal(keel_engine::WalError),
    Record(wal_codec::CodecError),
    /// The backend is behind the WAL: the tree file's last valid commit is
    /// at `applied_index`, but the WAL's oldest entry is `first_wal_index`,
    /// past it (segments before it were released once a later backend
    /// state was persisted), so the WAL cannot bring the backend up to
    /// date: the tree file was cut back to an earlier commit or replaced by
    /// an older copy (or WAL segments it still needs were removed).
    WalGap {
        /// The backend's tree file (`member/snap/db`).
        tree_path: PathBuf,
        /// The WAL directory.
        wal_dir: PathBuf,
        first_wal_index: u64,
        applied_index: u64,
    },
    Raft(raft::Error),
    /// Another process holds the data dir's lock (`member/lock`).
    Locked {
        path: PathBuf,
    },
    /// The lock file could not be opened or locked.
    Lock {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::CreateDir { path, error } => {
                write!(f, "cannot create {}: {error}", path.display())
            }
            OpenError::Store(error) => write!(f, "backend: {error}"),
            OpenError::Wal(error) => write!(f, "wal: {error}"),
            OpenError::Record(error) => write!(f, "wal: {error}"),
            OpenError::WalGap {
                tree_path,
                wal_dir,
                first_wal_index,
                applied_index,
            } => write!(
                f,
                "backend {} is behind the wal: its last valid commit is at applied index \
                 {applied_index}, but the wal in {} starts at index {first_wal_index} (the \
                 segments before it were released after a later backend state was persisted), \
                 so the wal cannot bring it up to date; the tree file was truncated to an \
                 earlier commit or replaced by an older copy (or wal segments it needs were \
                 removed): restore the tree file that goes with this wal",
                tree_path.display(),
                wal_dir.display()
            ),
            OpenError::Raft(error) => write!(f, "raft: {error}"),
            OpenError::Locked { path } => write!(
                f,
                "data dir is in use by another keel process: {} is locked",
                path.display()
            ),
            OpenError::Lock { path, error } => {
                write!(f, "cannot lock {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for OpenError {}

/// When the backend persists. A persist runs on the engine's persister
/// thread and rewrites every leaf changed since the last one; with keys in
/// random order that is most of the tree, so persisting less often writes
/// far less (measured: ~700 MB per 100k random puts at 100 ms, a tenth of
/// that at 1 s). The WAL holds everything after the last persist, so
/// start-up replays at most this much.
pub(super) fn backend_options() -> StoreOptions {
    StoreOptions {
        persist_ops_threshold: BACKEND_PERSIST_OPS_MAX,
        persist_interval: BACKEND_PERSIST_INTERVAL,
        ..StoreOptions::default()
    }
}

impl RaftCore {
    /// Opens the backend and the WAL under `data_dir/member/` (etcd's layout:
    /// `member/snap/db`, `member/wal/`), rebuilds raft's log from the WAL tail
    /// and becomes a single-member leader.
    pub fn open(
        config: &RaftConfig,
    ) -> Result<(RaftCore, StoreReader, Arc<RaftStatus>), OpenError> {
        let member_dir = config.data_dir.join("member");
        let snap_dir = member_dir.join("snap");
        let wal_dir = member_dir.join("wal");
        for dir in [&snap_dir, &wal_dir] {
            std::fs::create_dir_all(dir).map_err(|error| OpenError::CreateDir {
                path: dir.clone(),
                error,
            })?;
        }
        let data_dir_lock = lock_data_dir(&member_dir)?;
        let tree_path = snap_dir.join("db");
        let store = Store::open(&tree_path, backend_options()).map_err(OpenError::Store)?;
        if let Some(dropped) = store.dropped_commit() {
            eprintln!(
                "keel: warning: backend {}: its newest commit (sequence {}, applied index {}) \
                 was written by a persist that did not finish ({}); opened the commit before \
                 it, at applied index {}, and the wal replays from there",
                tree_path.display(),
                dropped.commit_seq,
                dropped.applied_index,
                dropped.damage,
                store.applied_index()
            );
        }
        let (wal, records) = Wal::open(&wal_dir, WalOptions::default()).map_err(OpenError::Wal)?;
        let applied_index = store.applied_index();

        let mut entries: Vec<Entry> = Vec::new();
        let mut hard_state = HardState::default();
        for record in records {
            match record.kind {
                RECORD_ENTRY => {
                    let entry = wal_codec::decode_entry(record.index, &record.payload)
                        .map_err(OpenError::Record)?;
                    // A rewritten suffix (after a term change) replaces what followed.
                    while entries.last().is_some_and(|last| last.index >= entry.index) {
                        entries.pop();
                    }
                    entries.push(entry);
                }
                RECORD_HARD_STATE => {
                    hard_state = wal_codec::decode_hard_state(record.index, &record.payload)
                        .map_err(OpenError::Record)?;
                }
                kind => {
                    return Err(OpenError::Record(wal_codec::CodecError::UnknownKind {
                        kind,
                        index: record.index,
                    }))
                }
            }
        }

        let voters = ConfState::from((vec![config.member_id], vec![]));
        let storage = MemStorage::new_with_conf_state(voters.clone());
        if let Some(first) = entries.first() {
            let first_index = first.index;
            if first_index > 1 {
                // Segments before this entry were released because the
                // backend had persisted past them: start the log at it.
                if first_index > applied_index {
                    return Err(OpenError::WalGap {
                        tree_path,
                        wal_dir,
                        first_wal_index: first_index,
                        applied_index,
                    });
                }
                let mut snapshot = Snapshot::default();
                snapshot.mut_metadata().index = first_index;
                snapshot.mut_metadata().term = first.term;
                snapshot.mut_metadata().set_conf_state(voters);
                storage
                    .wl()
                    .apply_snapshot(snapshot)
                    .map_err(OpenError::Raft)?;
                entries.remove(0);
            }
            storage.wl().append(&entries).map_err(OpenError::Raft)?;
        }
        let last_index = storage.last_index().map_err(OpenError::Raft)?;
        // Everything the backend applied was committed; a single member's
        // durable entries are committed by its own vote.
        hard_state.commit = hard_state
            .commit
            .max(applied_index)
            .min(last_index.max(applied_index));
        let committed_index = hard_state.commit;
        if hard_state.commit > 0 || hard_state.term > 0 {
            storage.wl().set_hardstate(hard_state);
        }

        let raft_config = Config {
            id: config.member_id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied: applied_index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        raft_config.validate().map_err(OpenError::Raft)?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut node = RawNode::new(&raft_config, storage, &logger).map_err(OpenError::Raft)?;
        // A single voter need not wait for an election timeout.
        node.campaign().map_err(OpenError::Raft)?;

        let status = Arc::new(RaftStatus {
            member_id: config.member_id,
            cluster_id: config.cluster_id,
            ..Default::default()
        });
        status.applied_index.store(applied_index, Ordering::Relaxed);
        status
            .committed_index
            .store(committed_index, Ordering::Relaxed);
        status
            .db_size_bytes
            .store(store.file_size_bytes(), Ordering::Relaxed);
        status
            .db_size_in_use_bytes
            .store(store.size_in_use_bytes(), Ordering::Relaxed);
        let reader = store.reader();
        let revision = store.revision();
        let leases = open_leases(&store);
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        let core = RaftCore {
            node,
            wal,
            store,
            data_dir_lock,
            status: status.clone(),
            pending: HashMap::new(),
            // Ids stay unique across restarts: replayed entries never match a new proposal.
            next_proposal_id: started_ms << 20,
            revision,
            applied_index,
            reads_unsent: Vec::new(),
            reads_in_raft: HashMap::new(),
            reads_waiting_apply: Vec::new(),
            next_read_context: 1,
            entry_buffer: Vec::new(),
            leases,
            alarms: Alarms::default(),
            defrag_waiters: Vec::new(),
            persist_started: None,
            physical_compaction_waiters: Vec::new(),
            next_lease_id: first_lease_id(config.member_id),
            auto_compactor: config
                .auto_compaction
                .map(|mode| AutoCompactor::new(mode, Instant::now())),
        };
        Ok((core, reader, status))
    }
}

/// The lease table as the backend holds it: every lease with its whole
/// TTL from now, and the live keys attached to each (read from the keys'
/// own lease field, so attachments are never stored twice).
/// Takes the data dir's lock (`member/lock`, an exclusive `flock` the
/// kernel drops when the process ends, also on kill -9), so a second keel
/// on the same data dir refuses to start instead of writing the same WAL
/// and tree file.
fn lock_data_dir(member_dir: &std::path::Path) -> Result<std::fs::File, OpenError> {
    let path = member_dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| OpenError::Lock {
            path: path.clone(),
            error,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked { path }),
        Err(std::fs::TryLockError::Error(error)) => Err(OpenError::Lock { path, error }),
    }
}

pub(super) fn open_leases(store: &Store) -> Lessor {
    let mut leases = Lessor::new(&store.leases(), LEASE_TTL_MIN_SECONDS, Instant::now());
    if leases.is_empty() {
        return leases;
    }
    let every_key = RangeOptions {
        key: &[0],
        range_end: &[0],
        keys_only: true,
        ..RangeOptions::default()
    };
    if let Ok(result) = store.reader().view().range(&every_key) {
        for kv in result.kvs.iter().filter(|kv| kv.lease != 0) {
            leases.attach(kv.lease, &kv.key);
        }
    }
    leases
}

/// The first server-picked lease id: the member id's low 16 bits, then
/// milliseconds since the epoch (40 bits) and an 8-bit counter, as etcd's
/// id generator lays them out.
pub(super) fn first_lease_id(member_id: u64) -> i64 {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0);
    let id = ((member_id & 0xffff) << 48) | ((millis & 0xff_ffff_ffff) << 8);
    (id & i64::MAX as u64) as i64
}

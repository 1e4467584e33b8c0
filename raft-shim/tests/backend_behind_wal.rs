//! Guards opening a data dir whose backend tree file was cut back to an
//! earlier commit record (at a page boundary, so the tree file itself
//! recovers there without complaint): with the WAL segments after that
//! commit already released, `RaftCore::open` refuses with
//! `OpenError::WalGap`, naming the tree file and both indexes; with the
//! WAL complete, the raft core opens, replays the entries after that
//! commit and loses none of them. A tree file whose last persist lost a
//! node (the disk kept its commit record only) opens at the commit before
//! it, and the WAL, released as the raft core releases it (below
//! `Store::wal_needed_from`, one persist behind), replays everything
//! after; released below the last persisted commit it could not, and is
//! refused.
//!
//! The data dir is written as the raft core writes it (entry and hard
//! state records through `wal_codec`, one sync per batch, then the batch
//! applied with `apply_request`, backend persists releasing the WAL
//! segments below the persisted index), with the smallest WAL segments so
//! that a few hundred entries rotate through many of them.

use keel_engine::btree::PAGE_SIZE_BYTES;
use keel_engine::wal::SEGMENT_SIZE_BYTES_MIN;
use keel_engine::{RangeOptions, Store, StoreOptions, Wal, WalOptions};
use keel_proto::etcdserverpb::PutRequest;
use keel_proto::keelpb::internal_request::Request;
use keel_proto::keelpb::InternalRequest;
use keel_raft_shim::apply::apply_request;
use keel_raft_shim::core::LEASE_TTL_MIN_SECONDS;
use keel_raft_shim::lease::Lessor;
use keel_raft_shim::wal_codec::{self, RECORD_ENTRY, RECORD_HARD_STATE};
use keel_raft_shim::{OpenError, RaftConfig, RaftCore};
use prost::Message;
use raft::eraftpb::{Entry, HardState};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MEMBER_ID: u64 = 1;
/// Entries written, one put each.
const ENTRIES: u64 = 600;
/// Entries per WAL sync and store write batch.
const BATCH_ENTRIES: u64 = 10;
/// The backend persists after every this many entries.
const PERSIST_EVERY_ENTRIES: u64 = 100;
/// The persist whose commit record the tree file is cut back to.
const EARLY_COMMIT_INDEX: u64 = 200;
const _: () = assert!(EARLY_COMMIT_INDEX.is_multiple_of(PERSIST_EVERY_ENTRIES));
const _: () = assert!(PERSIST_EVERY_ENTRIES.is_multiple_of(BATCH_ENTRIES));
const _: () = assert!(EARLY_COMMIT_INDEX < ENTRIES);

/// Persists only when the test asks.
fn manual() -> StoreOptions {
    StoreOptions {
        persist_ops_threshold: u64::MAX,
        persist_dirty_bytes_threshold: u64::MAX,
        persist_interval: Duration::from_secs(3600),
    }
}

fn key(index: u64) -> Vec<u8> {
    format!("key{index:05}").into_bytes()
}

fn value(index: u64) -> Vec<u8> {
    format!("value of entry {index} {}", "v".repeat(40)).into_bytes()
}

fn tree_path(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap").join("db")
}

fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("wal")
}

fn config(data_dir: &Path) -> RaftConfig {
    RaftConfig {
        data_dir: data_dir.to_path_buf(),
        member_id: MEMBER_ID,
        cluster_id: 7,
        auto_compaction: None,
    }
}

/// Writes entries 1..=ENTRIES as the raft core does (WAL first, then
/// apply), persisting the backend every `PERSIST_EVERY_ENTRIES` and, when
/// `release`, removing the WAL segments below the persisted index after
/// each persist. Returns the tree file's length right after the persist
/// at `EARLY_COMMIT_INDEX` (a commit record boundary).
/// Which WAL segments `write_history` releases after each persist.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Release {
    /// None.
    Nothing,
    /// Those below the last persisted commit.
    BelowPersisted,
    /// Those below [`Store::wal_needed_from`], as the raft core does.
    AsTheRaftCore,
}

fn write_history(data_dir: &Path, release: Release) -> u64 {
    std::fs::create_dir_all(tree_path(data_dir).parent().unwrap()).unwrap();
    let mut store = Store::open(&tree_path(data_dir), manual()).unwrap();
    let wal_options = WalOptions {
        segment_size_bytes: SEGMENT_SIZE_BYTES_MIN,
    };
    let (mut wal, records) = Wal::open(&wal_dir(data_dir), wal_options).unwrap();
    assert!(records.is_empty());
    let mut leases = Lessor::new(&[], LEASE_TTL_MIN_SECONDS, Instant::now());
    let mut revision = store.revision();
    let mut record = Vec::new();
    let mut early_tree_bytes = None;
    for first in (1..=ENTRIES).step_by(BATCH_ENTRIES as usize) {
        let last = first + BATCH_ENTRIES - 1;
        let requests: Vec<Request> = (first..=last)
            .map(|index| {
                Request::Put(PutRequest {
                    key: key(index),
                    value: value(index),
                    ..PutRequest::default()
                })
            })
            .collect();
        for (index, request) in (first..=last).zip(&requests) {
            let internal = InternalRequest {
                id: index,
                request: Some(request.clone()),
            };
            let entry = Entry {
                index,
                term: 1,
                data: internal.encode_to_vec().into(),
                ..Entry::default()
            };
            wal_codec::encode_entry(&entry, &mut record);
            wal.append(RECORD_ENTRY, index, &record);
        }
        let hard_state = HardState {
            term: 1,
            vote: MEMBER_ID,
            commit: last,
            ..HardState::default()
        };
        wal.append(
            RECORD_HARD_STATE,
            last,
            &wal_codec::encode_hard_state(&hard_state),
        );
        wal.sync().unwrap();
        let mut batch = store.write_batch();
        for request in requests {
            let (result, _events) = apply_request(
                &mut batch,
                &mut leases,
                request,
                revision,
                Instant::now(),
                false,
            );
            assert!(result.is_ok());
            revision = batch.revision();
        }
        batch.commit(last);
        if last.is_multiple_of(PERSIST_EVERY_ENTRIES) {
            store.persist().unwrap();
            if last == EARLY_COMMIT_INDEX {
                early_tree_bytes = Some(store.file_size_bytes());
            }
            match release {
                Release::Nothing => {}
                Release::BelowPersisted => wal.release_before(store.persisted_index()).unwrap(),
                Release::AsTheRaftCore => wal.release_before(store.wal_needed_from()).unwrap(),
            }
        }
    }
    assert_eq!(store.persisted_index(), ENTRIES);
    let early_tree_bytes = early_tree_bytes.unwrap();
    assert_eq!(early_tree_bytes % PAGE_SIZE_BYTES, 0);
    assert!(early_tree_bytes < store.file_size_bytes());
    early_tree_bytes
}

/// Cuts the tree file back to `length`, the end of an earlier commit.
fn cut_tree_file(data_dir: &Path, length: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(tree_path(data_dir))
        .unwrap();
    file.set_len(length).unwrap();
    file.sync_all().unwrap();
}

/// The oldest entry index the WAL holds.
fn first_wal_index(data_dir: &Path) -> u64 {
    let (_wal, records) = Wal::open(&wal_dir(data_dir), WalOptions::default()).unwrap();
    records
        .iter()
        .find(|record| record.kind == RECORD_ENTRY)
        .unwrap()
        .index
}

#[test]
fn a_tree_file_cut_back_past_the_wal_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path();
    let early_tree_bytes = write_history(data_dir, Release::BelowPersisted);
    let first_index = first_wal_index(data_dir);
    assert!(
        first_index > EARLY_COMMIT_INDEX,
        "segments were released up to {first_index}"
    );
    cut_tree_file(data_dir, early_tree_bytes);
    // The tree file alone opens, silently, at the earlier commit.
    let store = Store::open(&tree_path(data_dir), manual()).unwrap();
    assert_eq!(store.applied_index(), EARLY_COMMIT_INDEX);
    drop(store);

    let error = match RaftCore::open(&config(data_dir)) {
        Ok(_) => panic!("opened a backend the wal cannot bring up to date"),
        Err(error) => error,
    };
    let message = error.to_string();
    eprintln!("refusal: {message}");
    match &error {
        OpenError::WalGap {
            tree_path: refused_tree,
            wal_dir: refused_wal,
            first_wal_index,
            applied_index,
        } => {
            assert_eq!(refused_tree, &tree_path(data_dir));
            assert_eq!(refused_wal, &wal_dir(data_dir));
            assert_eq!(*first_wal_index, first_index);
            assert_eq!(*applied_index, EARLY_COMMIT_INDEX);
        }
        other => panic!("not a wal gap: {other}"),
    }
    assert!(message.contains(&tree_path(data_dir).display().to_string()));
    assert!(message.contains(&format!("applied index {EARLY_COMMIT_INDEX}")));
    assert!(message.contains(&format!("starts at index {first_index}")));
    assert!(message.contains("truncated") && message.contains("older copy"));
    // Refusing changed nothing: the tree file is as it was cut.
    assert_eq!(
        std::fs::metadata(tree_path(data_dir)).unwrap().len(),
        early_tree_bytes
    );
}

/// Zeroes the first node page the last persist wrote, as a disk that kept
/// that persist's commit record but not all of its nodes would leave it.
fn lose_a_node_of_the_last_persist(data_dir: &Path) {
    let bytes = std::fs::read(tree_path(data_dir)).unwrap();
    let page = PAGE_SIZE_BYTES as usize;
    let commits: Vec<usize> = (1..bytes.len() / page)
        .filter(|&at| &bytes[at * page..at * page + 8] == b"KEELCMIT")
        .collect();
    let first_node = commits[commits.len() - 2] + 1;
    assert!(first_node < commits[commits.len() - 1]);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(tree_path(data_dir))
        .unwrap();
    use std::os::unix::fs::FileExt;
    file.write_all_at(&vec![0u8; page], (first_node * page) as u64)
        .unwrap();
    file.sync_all().unwrap();
}

#[test]
fn a_last_persist_missing_a_node_replays_from_the_commit_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    write_history(&data_dir, Release::AsTheRaftCore);
    let before_last = ENTRIES - PERSIST_EVERY_ENTRIES;
    let first_index = first_wal_index(&data_dir);
    assert!(
        first_index > 1 && first_index <= before_last,
        "the wal was released up to {first_index}, and no further"
    );
    lose_a_node_of_the_last_persist(&data_dir);
    let store = Store::open(&tree_path(&data_dir), manual()).unwrap();
    assert_eq!(store.applied_index(), before_last);
    assert_eq!(store.dropped_commit().unwrap().applied_index, ENTRIES);
    drop(store);
    replay_and_check_every_entry(&data_dir, before_last);
}

#[test]
fn a_last_persist_missing_a_node_needs_the_wal_kept_before_it() {
    // Released below the last persisted commit instead, the WAL cannot
    // bring the commit before it up to date: refused, never served short.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    write_history(&data_dir, Release::BelowPersisted);
    lose_a_node_of_the_last_persist(&data_dir);
    match RaftCore::open(&config(&data_dir)) {
        Err(OpenError::WalGap { applied_index, .. }) => {
            assert_eq!(applied_index, ENTRIES - PERSIST_EVERY_ENTRIES)
        }
        Err(other) => panic!("not a wal gap: {other}"),
        Ok(_) => panic!("opened a backend the wal cannot bring up to date"),
    }
}

#[test]
fn a_tree_file_cut_back_with_the_wal_complete_replays_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let early_tree_bytes = write_history(&data_dir, Release::Nothing);
    assert_eq!(first_wal_index(&data_dir), 1);
    cut_tree_file(&data_dir, early_tree_bytes);
    replay_and_check_every_entry(&data_dir, EARLY_COMMIT_INDEX);
}

/// Opens the raft core, which must start at `opened_at`, lets it replay
/// the entries after it and, with no shard core attached, persist and
/// stop; then checks that the backend holds every entry.
fn replay_and_check_every_entry(data_dir: &Path, opened_at: u64) {
    let data_dir = data_dir.to_path_buf();
    let (core, _reader, status) = RaftCore::open(&config(&data_dir)).unwrap();
    assert_eq!(
        status
            .applied_index
            .load(std::sync::atomic::Ordering::Relaxed),
        opened_at
    );
    glommio::LocalExecutorBuilder::default()
        .name("backend-behind-wal")
        .io_memory(1 << 20)
        .spawn(move || async move { core.run(Vec::new(), Vec::new()).await })
        .unwrap()
        .join()
        .unwrap();

    let store = Store::open(&tree_path(&data_dir), manual()).unwrap();
    assert!(store.applied_index() >= ENTRIES);
    let everything = store
        .reader()
        .view()
        .range(&RangeOptions {
            key: &[0],
            range_end: &[0],
            ..RangeOptions::default()
        })
        .unwrap();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = (1..=ENTRIES)
        .map(|index| (key(index), value(index)))
        .collect();
    let read: Vec<(Vec<u8>, Vec<u8>)> = everything
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    assert!(read == expected, "{} of {ENTRIES} entries", read.len());
    assert_eq!(store.revision(), 1 + ENTRIES as i64);
}

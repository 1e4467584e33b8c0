//! keel's raft core.
//!
//! One pinned glommio executor drives tikv's `raft` `RawNode`. Shard cores
//! send it proposals and read-index requests over bounded queues
//! ([`message`]); it batches everything queued into one ready cycle, persists
//! that batch through the engine's WAL with one write and one fdatasync
//! ([`wal_codec`] says what the records hold), applies committed entries to
//! the MVCC store in one write batch ([`apply`]), publishes the new read view,
//! and answers the core that asked ([`core`]). Range and Txn logic that
//! shard cores share with the apply loop lives in [`range`] and [`txn`];
//! [`compactor`] schedules the leader's auto-compaction.
//!
//! This version runs a single-member cluster; peers, membership and
//! snapshots arrive with clustering.

pub mod alarm;
pub mod apply;
pub mod compactor;
pub mod convert;
pub mod core;
pub mod lease;
pub mod message;
pub mod metrics;
pub mod range;
pub mod txn;
pub mod wal_codec;

pub use crate::compactor::{AutoCompaction, AutoCompactor};
pub use crate::core::{OpenError, RaftConfig, RaftCore, RaftStatus};
pub use crate::message::{
    ApplyError, EventBatch, FromRaft, LeaseAnswer, LeaseQuery, Response, ShardId, ToRaft, Token,
};

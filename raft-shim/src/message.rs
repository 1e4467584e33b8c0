//! What crosses between a shard core and the raft core.
//!
//! Every queue that carries these is bounded (see the limits below); a full
//! queue makes the sender wait, so memory never grows with load.

use std::sync::Arc;

use keel_engine::{Event, MvccError};
use keel_proto::etcdserverpb::{
    AlarmResponse, CompactionResponse, DeleteRangeResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutResponse, ResponseHeader, TxnResponse,
};

use crate::lease::LeaseInfo;
use keel_proto::keelpb::internal_request::Request;

/// Capacity of each shard core -> raft core queue.
pub const PROPOSAL_QUEUE_MAX: usize = 4096;
/// Capacity of each raft core -> shard core queue. A shard core never has more
/// requests in flight than this (it holds a permit per request), so the raft
/// core's send into this queue never waits for long.
pub const REPLY_QUEUE_MAX: usize = 4096;
/// Requests one shard core may have in flight at the raft core at once.
pub const SHARD_INFLIGHT_MAX: usize = REPLY_QUEUE_MAX;
/// Most proposals handed to raft in one ready cycle.
pub const PROPOSAL_BATCH_MAX: usize = 8192;
/// Most payload bytes handed to raft in one ready cycle.
pub const PROPOSAL_BATCH_BYTES_MAX: usize = 16 << 20;

const _: () = assert!(SHARD_INFLIGHT_MAX <= REPLY_QUEUE_MAX);

/// Index of a shard core, 0-based.
pub type ShardId = usize;
/// A shard core's own number for one waiting request.
pub type Token = u64;

/// A message from a shard core to the raft core.
#[derive(Debug)]
pub enum ToRaft {
    /// Replicate and apply a write.
    Propose {
        shard: ShardId,
        token: Token,
        request: Request,
    },
    /// Linearizable read barrier: answer once the read index is applied.
    ReadIndex { shard: ShardId, token: Token },
    /// Maintenance.Defragment: rewrite the backend file (online).
    Defragment { shard: ShardId, token: Token },
    /// A lease question answered from the raft core's memory, without raft.
    Lease {
        shard: ShardId,
        token: Token,
        query: LeaseQuery,
    },
}

/// What a shard core asks of the lease table.
#[derive(Debug, Clone, Copy)]
pub enum LeaseQuery {
    /// A keep-alive.
    Renew {
        id: i64,
    },
    TimeToLive {
        id: i64,
        keys: bool,
    },
    List,
}

/// The lease table's answer.
#[derive(Debug)]
pub enum LeaseAnswer {
    /// The renewed TTL; `None` if the lease is missing or expired.
    Renewed(Option<i64>),
    TimeToLive(Option<LeaseInfo>),
    List(Vec<i64>),
}

/// A message from the raft core back to the shard core that asked.
#[derive(Debug)]
pub enum FromRaft {
    Applied {
        token: Token,
        result: Result<Response, ApplyError>,
    },
    ReadIndexReady {
        token: Token,
    },
    Lease {
        token: Token,
        answer: LeaseAnswer,
    },
    /// The defrag a `Defragment` waited for finished (the error's text if
    /// it failed).
    Defragmented {
        token: Token,
        result: Result<(), String>,
    },
    /// Everything one apply cycle changed, for the core's watchers. Sent
    /// only to cores that have watchers (`RaftStatus::watching_shards`),
    /// and before that cycle's replies.
    Events(Arc<EventBatch>),
}

/// The events of one apply cycle, in revision order.
#[derive(Debug)]
pub struct EventBatch {
    /// The store's revision before the cycle.
    pub previous_revision: i64,
    /// The store's revision after it (> `previous_revision`).
    pub revision: i64,
    pub events: Vec<Event>,
}

/// The applied result of one proposal, as the client will see it.
#[derive(Debug)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
}

impl Response {
    pub fn header(&self) -> Option<&ResponseHeader> {
        match self {
            Response::Put(r) => r.header.as_ref(),
            Response::DeleteRange(r) => r.header.as_ref(),
            Response::Txn(r) => r.header.as_ref(),
            Response::Compaction(r) => r.header.as_ref(),
            Response::LeaseGrant(r) => r.header.as_ref(),
            Response::LeaseRevoke(r) => r.header.as_ref(),
            Response::Alarm(r) => r.header.as_ref(),
        }
    }

    pub fn set_header(&mut self, header: ResponseHeader) {
        let slot = match self {
            Response::Put(r) => &mut r.header,
            Response::DeleteRange(r) => &mut r.header,
            Response::Txn(r) => &mut r.header,
            Response::Compaction(r) => &mut r.header,
            Response::LeaseGrant(r) => &mut r.header,
            Response::LeaseRevoke(r) => &mut r.header,
            Response::Alarm(r) => &mut r.header,
        };
        *slot = Some(header);
    }
}

/// Why a proposal did not apply. `net/` maps each to etcd's gRPC status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// The request kind is not handled by this version of the apply loop.
    Unsupported,
    /// This member is not the leader (never for a single member once started).
    NotLeader,
    /// The raft core is stopping; the outcome is unknown to the client.
    Stopping,
    /// The request was dropped by raft before it was appended.
    ProposalDropped,
    /// A put with `ignore_value` or `ignore_lease` names a missing key.
    KeyNotFound,
    /// A put names a lease that does not exist, or a revoke does.
    LeaseNotFound,
    /// A grant names an id already granted.
    LeaseExists,
    /// The NOSPACE alarm is raised: writes that need space are refused.
    NoSpace,
    /// A range inside a txn asks for a compacted or future revision, or a
    /// compaction names one.
    Mvcc(MvccError),
}

//! The KV service: Range on the shard core, Put, DeleteRange and Compact
//! through the raft core. Validation follows etcd's `v3rpc/key.go` checks, in its order;
//! [`crate::txn`] reuses the per-op checks.

use keel_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use std::sync::atomic::Ordering;

use keel_proto::etcdserverpb::alarm_request::AlarmAction;
use keel_proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
};
use keel_proto::keelpb::internal_request::Request;
use keel_raft_shim::range::range_request;
use keel_raft_shim::txn::ReadOnly;
use keel_raft_shim::Response;

use crate::shard::Shard;
use crate::status::RequestError;

/// etcd's `checkRangeRequest`.
pub fn check_range(request: &RangeRequest) -> Result<(), RequestError> {
    if request.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    SortOrder::try_from(request.sort_order).map_err(|_| RequestError::InvalidSortOption)?;
    SortTarget::try_from(request.sort_target).map_err(|_| RequestError::InvalidSortOption)?;
    Ok(())
}

/// etcd's `checkPutRequest`.
pub fn check_put(request: &PutRequest) -> Result<(), RequestError> {
    if request.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    if request.ignore_value && !request.value.is_empty() {
        return Err(RequestError::ValueProvided);
    }
    if request.ignore_lease && request.lease != 0 {
        return Err(RequestError::LeaseProvided);
    }
    Ok(())
}

/// etcd's `checkDeleteRequest`.
pub fn check_delete(request: &DeleteRangeRequest) -> Result<(), RequestError> {
    if request.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    Ok(())
}

pub async fn range(shard: &Shard, request: RangeRequest) -> Result<RangeResponse, RequestError> {
    check_range(&request)?;
    if !request.serializable {
        shard.read_index().await?;
    }
    let view = shard.reader.view();
    let mut response = range_request(&request, &ReadOnly(&view)).map_err(RequestError::Mvcc)?;
    response.header = Some(shard.status.header(view.revision()));
    Ok(response)
}

pub async fn put(shard: &Shard, request: PutRequest) -> Result<PutResponse, RequestError> {
    check_put(&request)?;
    match propose(shard, Request::Put(request)).await? {
        Response::Put(response) => Ok(response),
        other => unreachable!("a put is answered by a put response, got {other:?}"),
    }
}

pub async fn delete_range(
    shard: &Shard,
    request: DeleteRangeRequest,
) -> Result<DeleteRangeResponse, RequestError> {
    check_delete(&request)?;
    match propose(shard, Request::DeleteRange(request)).await? {
        Response::DeleteRange(response) => Ok(response),
        other => unreachable!("a delete is answered by a delete response, got {other:?}"),
    }
}

/// etcd's Compact: through raft; the header carries the current revision.
/// Compaction is applied synchronously, so `physical` needs no extra wait.
pub async fn compact(
    shard: &Shard,
    request: CompactionRequest,
) -> Result<CompactionResponse, RequestError> {
    match propose(shard, Request::Compaction(request)).await? {
        Response::Compaction(response) => Ok(response),
        other => unreachable!("a compaction is answered by a compaction response, got {other:?}"),
    }
}

/// etcd refuses a proposal whose encoded size passes `--max-request-bytes`,
/// and a write that would take the backend past `--quota-backend-bytes`.
pub async fn propose(shard: &Shard, request: Request) -> Result<Response, RequestError> {
    // The raft entry: the id field (tag + at most 10 varint bytes) and the request.
    let entry_len = 1 + 10 + request.encoded_len();
    if entry_len > shard.config.max_request_bytes {
        return Err(RequestError::RequestTooLarge);
    }
    check_quota(shard, &request).await?;
    shard.propose(request).await
}

/// etcd's per-key overhead in its quota arithmetic.
const QUOTA_KV_OVERHEAD_BYTES: u64 = 256;
/// etcd's per-lease overhead in its quota arithmetic.
const QUOTA_LEASE_OVERHEAD_BYTES: u64 = 64;

/// etcd's `quotaAlarmer.check`: a write that does not fit raises NOSPACE
/// (through raft, once) and is refused. keel measures the bytes its last
/// backend commit uses rather than the file's size: its file is
/// append-only and reclaimed by defrag, where bbolt reuses freed pages.
async fn check_quota(shard: &Shard, request: &Request) -> Result<(), RequestError> {
    let Some(quota) = shard.config.quota_backend_bytes else {
        return Ok(());
    };
    let cost = match request {
        Request::Put(put) => QUOTA_KV_OVERHEAD_BYTES + (put.key.len() + put.value.len()) as u64,
        Request::Txn(txn) => QUOTA_KV_OVERHEAD_BYTES + prost::Message::encoded_len(txn) as u64,
        Request::LeaseGrant(_) => QUOTA_LEASE_OVERHEAD_BYTES,
        _ => return Ok(()),
    };
    let in_use = shard.status.db_size_in_use_bytes.load(Ordering::Relaxed);
    if in_use + cost <= quota {
        return Ok(());
    }
    let raised = shard
        .status
        .alarms
        .load()
        .iter()
        .any(|alarm| alarm.alarm == AlarmType::Nospace as i32);
    if !raised {
        let activate = AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id: shard.status.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(error) = shard.propose(Request::Alarm(activate)).await {
            eprintln!("keel: warning: raising NOSPACE failed: {error:?}");
        }
    }
    Err(RequestError::NoSpace)
}

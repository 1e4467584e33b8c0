//! Applying committed requests to the MVCC store: pure logic, no I/O.
//!
//! One committed raft entry carries one `InternalRequest`; applying it runs
//! one MVCC txn (one main revision if it changes anything) inside the
//! ready cycle's write batch, and produces the response etcd would send.
//! Put, DeleteRange and Txn share the op code in [`crate::txn`]; a
//! Compaction runs on the write batch itself (`apply_compaction`).

use std::time::Instant;

use keel_engine::{Event, WriteBatch};
use keel_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse,
};
use keel_proto::keelpb::internal_request::Request;

use crate::lease::Lessor;
use crate::message::{ApplyError, Response};
use crate::txn::{apply_delete_range, apply_put, apply_txn, is_read_only, LeasedTxn};

/// Applies one request in `txn`, the store's revision being
/// `revision_before`. Returns the response (its header's cluster fields are
/// filled by the caller) and the txn's events; a request that fails changes
/// nothing.
pub fn apply_request(
    batch: &mut WriteBatch<'_>,
    leases: &mut Lessor,
    request: Request,
    revision_before: i64,
    now: Instant,
    no_space: bool,
) -> (Result<Response, ApplyError>, Vec<Event>) {
    if no_space && needs_space(&request) {
        // etcd's capped applier while NOSPACE is raised.
        return (Err(ApplyError::NoSpace), Vec::new());
    }
    let (result, events) = match request {
        Request::Compaction(compaction) => (apply_compaction(batch, &compaction), Vec::new()),
        Request::LeaseGrant(grant) => (apply_lease_grant(batch, leases, &grant, now), Vec::new()),
        Request::LeaseRevoke(revoke) => apply_lease_revoke(batch, leases, &revoke),
        request => apply_kv(batch, leases, request, revision_before),
    };
    leases.track(&events);
    (result, events)
}

/// Whether etcd's capped applier refuses `request` under NOSPACE.
fn needs_space(request: &Request) -> bool {
    match request {
        Request::Put(_) | Request::LeaseGrant(_) => true,
        Request::Txn(txn) => !is_read_only(txn),
        _ => false,
    }
}

/// Put, DeleteRange and Txn: one MVCC txn.
fn apply_kv(
    batch: &mut WriteBatch<'_>,
    leases: &Lessor,
    request: Request,
    revision_before: i64,
) -> (Result<Response, ApplyError>, Vec<Event>) {
    let mut txn = LeasedTxn {
        txn: batch.txn(),
        leases,
    };
    let result = match request {
        Request::Put(put) => apply_put(&mut txn, &put).map(Response::Put),
        Request::DeleteRange(delete) => {
            Ok(Response::DeleteRange(apply_delete_range(&mut txn, &delete)))
        }
        Request::Txn(request) => apply_txn(&mut txn, &request, revision_before).map(Response::Txn),
        _ => Err(ApplyError::Unsupported),
    };
    (result, txn.txn.end())
}

/// etcd's LeaseGrant at apply: the id was chosen before proposing, the TTL
/// raised to the minimum; the record is stored with the batch.
fn apply_lease_grant(
    batch: &mut WriteBatch<'_>,
    leases: &mut Lessor,
    grant: &LeaseGrantRequest,
    now: Instant,
) -> Result<Response, ApplyError> {
    if leases.contains(grant.id) {
        return Err(ApplyError::LeaseExists);
    }
    let ttl_seconds = leases.granted_ttl(grant.ttl);
    batch.put_lease(grant.id, ttl_seconds);
    leases.grant(grant.id, ttl_seconds, now);
    Ok(Response::LeaseGrant(LeaseGrantResponse {
        id: grant.id,
        ttl: ttl_seconds,
        ..LeaseGrantResponse::default()
    }))
}

/// etcd's LeaseRevoke: the lease's keys are deleted in one revision.
fn apply_lease_revoke(
    batch: &mut WriteBatch<'_>,
    leases: &mut Lessor,
    revoke: &LeaseRevokeRequest,
) -> (Result<Response, ApplyError>, Vec<Event>) {
    let Some(keys) = leases.revoke(revoke.id) else {
        return (Err(ApplyError::LeaseNotFound), Vec::new());
    };
    batch.delete_lease(revoke.id);
    let mut txn = batch.txn();
    for key in &keys {
        txn.delete_range(key, &[]);
    }
    let events = txn.end();
    (
        Ok(Response::LeaseRevoke(LeaseRevokeResponse::default())),
        events,
    )
}

/// Applies etcd's Compact in `batch` (it does not change the revision):
/// the compaction point moves at once; the superseded entries are removed
/// by the raft core a bounded step per ready cycle, which answers a
/// `physical` Compact only once that removal is done.
fn apply_compaction(
    batch: &mut WriteBatch<'_>,
    request: &CompactionRequest,
) -> Result<Response, ApplyError> {
    batch
        .compact_start(request.revision)
        .map_err(ApplyError::Mvcc)?;
    Ok(Response::Compaction(CompactionResponse::default()))
}

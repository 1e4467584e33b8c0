//! Applying committed requests to the MVCC store: pure logic, no I/O.
//!
//! One committed raft entry carries one `InternalRequest`; applying it runs
//! one MVCC txn (one main revision if it changes anything) inside the
//! ready cycle's write batch, and produces the response etcd would send.
//! Put, DeleteRange and Txn share the op code in [`crate::txn`]; a
//! Compaction runs on the write batch itself ([`apply_compaction`]).

use keel_engine::{Event, EventKind, Txn, WriteBatch};
use keel_proto::etcdserverpb::{CompactionRequest, CompactionResponse};
use keel_proto::keelpb::internal_request::Request;

use crate::message::{ApplyError, Response};
use crate::txn::{apply_delete_range, apply_put, apply_txn};

/// Applies one request in `txn`, the store's revision being
/// `revision_before`. Returns the response (its header's cluster fields are
/// filled by the caller) and the txn's events; a request that fails changes
/// nothing.
pub fn apply_request(
    mut txn: Txn<'_>,
    request: Request,
    revision_before: i64,
) -> (Result<Response, ApplyError>, Vec<Event>) {
    let result = match request {
        Request::Put(put) => apply_put(&mut txn, &put).map(Response::Put),
        Request::DeleteRange(delete) => {
            Ok(Response::DeleteRange(apply_delete_range(&mut txn, &delete)))
        }
        Request::Txn(request) => apply_txn(&mut txn, &request, revision_before).map(Response::Txn),
        _ => Err(ApplyError::Unsupported),
    };
    (result, txn.end())
}

/// Applies etcd's Compact in `batch` (it does not change the revision).
/// Compaction is synchronous here, so the answer means "physically done"
/// whether or not `physical` was asked.
pub fn apply_compaction(
    batch: &mut WriteBatch<'_>,
    request: &CompactionRequest,
) -> Result<Response, ApplyError> {
    batch.compact(request.revision).map_err(ApplyError::Mvcc)?;
    Ok(Response::Compaction(CompactionResponse::default()))
}

/// The store revision after `events`, given the revision before them.
pub fn revision_after(revision_before: i64, events: &[Event]) -> i64 {
    let newest = events
        .iter()
        .map(|event| event.kv.mod_revision)
        .max()
        .unwrap_or(revision_before);
    debug_assert!(events
        .iter()
        .all(|e| matches!(e.kind, EventKind::Put | EventKind::Delete)));
    newest.max(revision_before)
}

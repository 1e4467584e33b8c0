//! Applying committed requests to the MVCC store: pure logic, no I/O.
//!
//! One committed raft entry carries one `InternalRequest`; applying it runs
//! one MVCC txn (one main revision if it changes anything) inside the
//! ready cycle's write batch, and produces the response etcd would send.
//! Put, DeleteRange and Txn share the op code in [`crate::txn`].

use keel_engine::{Event, EventKind, Txn};
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

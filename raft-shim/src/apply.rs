//! Applying committed requests to the MVCC store: pure logic, no I/O.
//!
//! One committed raft entry carries one `InternalRequest`; applying it runs
//! one MVCC txn (one main revision if it changes anything) inside the
//! ready cycle's write batch, and produces the response etcd would send.

use keel_engine::{Event, EventKind, Txn};
use keel_proto::etcdserverpb::{DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse};
use keel_proto::keelpb::internal_request::Request;

use crate::convert::{to_proto_kv, to_proto_kvs};
use crate::message::{ApplyError, Response};

/// Applies one request in `txn`. Returns the response (its header's revision
/// is filled by the caller) and the txn's events.
pub fn apply_request(
    mut txn: Txn<'_>,
    request: Request,
) -> (Result<Response, ApplyError>, Vec<Event>) {
    let result = match request {
        Request::Put(put) => Ok(Response::Put(apply_put(&mut txn, put))),
        Request::DeleteRange(delete) => {
            Ok(Response::DeleteRange(apply_delete_range(&mut txn, delete)))
        }
        _ => Err(ApplyError::Unsupported),
    };
    (result, txn.end())
}

fn apply_put(txn: &mut Txn<'_>, put: PutRequest) -> PutResponse {
    // etcd stores the lease id as given; checking it against the lease table
    // arrives with leases.
    let prev = txn.put(&put.key, &put.value, put.lease);
    PutResponse {
        header: None,
        prev_kv: if put.prev_kv {
            prev.map(to_proto_kv)
        } else {
            None
        },
    }
}

fn apply_delete_range(txn: &mut Txn<'_>, delete: DeleteRangeRequest) -> DeleteRangeResponse {
    let deleted = txn.delete_range(&delete.key, &delete.range_end);
    let deleted_count = deleted.len() as i64;
    DeleteRangeResponse {
        header: None,
        deleted: deleted_count,
        prev_kvs: if delete.prev_kv {
            to_proto_kvs(deleted)
        } else {
            Vec::new()
        },
    }
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

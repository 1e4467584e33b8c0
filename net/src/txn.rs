//! KV.Txn: etcd's request checks (`checkTxnRequest`, then `checkIntervals`
//! on each branch), then read-only txns on the shard core (after the read
//! barrier unless every range is serializable, as etcd) and all others
//! through raft, applied at one revision by `keel_raft_shim::txn`.

use std::collections::HashSet;

use keel_proto::etcdserverpb::request_op::Request as Op;
use keel_proto::etcdserverpb::{RequestOp, TxnRequest, TxnResponse};
use keel_proto::keelpb::internal_request::Request;
use keel_raft_shim::txn::{apply_txn, is_read_only, ReadOnly};
use keel_raft_shim::Response;

use crate::kv::{check_delete, check_put, check_range, propose};
use crate::shard::Shard;
use crate::status::RequestError;

/// etcd's `--max-txn-ops` default.
pub const MAX_TXN_OPS_DEFAULT: usize = 128;

pub async fn txn(shard: &Shard, request: TxnRequest) -> Result<TxnResponse, RequestError> {
    check_txn(&request, shard.config.max_txn_ops)?;
    // After the per-op checks, as etcd, to avoid quadratic work on bad input.
    check_intervals(&request.success)?;
    check_intervals(&request.failure)?;
    if is_read_only(&request) {
        if !is_serializable(&request) {
            shard.read_index().await?;
        }
        let view = shard.reader.view();
        let mut response = apply_txn(&mut ReadOnly(&view), &request, view.revision())
            .map_err(RequestError::Apply)?;
        response.header = Some(shard.status.header(view.revision()));
        return Ok(response);
    }
    match propose(shard, Request::Txn(request)).await? {
        Response::Txn(response) => Ok(response),
        other => unreachable!("a txn is answered by a txn response, got {other:?}"),
    }
}

/// etcd's `isTxnSerializable`: every op of both branches (top level only)
/// is a serializable range.
fn is_serializable(request: &TxnRequest) -> bool {
    request
        .success
        .iter()
        .chain(&request.failure)
        .all(|op| matches!(&op.request, Some(Op::RequestRange(range)) if range.serializable))
}

/// etcd's `checkTxnRequest`: the widest of compares, success and failure is
/// at most `max_txn_ops`; a nested txn gets what the outer one left.
pub fn check_txn(request: &TxnRequest, max_txn_ops: usize) -> Result<(), RequestError> {
    let ops = request
        .compare
        .len()
        .max(request.success.len())
        .max(request.failure.len());
    if ops > max_txn_ops {
        return Err(RequestError::TooManyOps);
    }
    if request.compare.iter().any(|compare| compare.key.is_empty()) {
        return Err(RequestError::EmptyKey);
    }
    for op in request.success.iter().chain(&request.failure) {
        check_op(op, max_txn_ops - ops)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_txn_ops: usize) -> Result<(), RequestError> {
    match &op.request {
        Some(Op::RequestRange(range)) => check_range(range),
        Some(Op::RequestPut(put)) => check_put(put),
        Some(Op::RequestDeleteRange(delete)) => check_delete(delete),
        Some(Op::RequestTxn(nested)) => check_txn(nested, max_txn_ops),
        // etcd: an empty op is "key not found".
        None => Err(RequestError::KeyNotFound),
    }
}

/// Deleted ranges of a branch: `(key, range_end)`, an empty end being the
/// key alone. A range end of "\0" (from key) is, as in etcd's interval
/// tree, an empty interval and never overlaps a put.
#[derive(Default)]
struct Deletes {
    keys: HashSet<Vec<u8>>,
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Deletes {
    fn insert(&mut self, key: &[u8], range_end: &[u8]) {
        if range_end.is_empty() {
            self.keys.insert(key.to_vec());
        } else {
            self.ranges.push((key.to_vec(), range_end.to_vec()));
        }
    }

    fn covers(&self, key: &[u8]) -> bool {
        self.keys.contains(key)
            || self
                .ranges
                .iter()
                .any(|(start, end)| start.as_slice() <= key && key < end.as_slice())
    }

    fn extend(&mut self, other: Deletes) {
        self.keys.extend(other.keys);
        self.ranges.extend(other.ranges);
    }
}

/// etcd's `checkIntervals`: within one branch (nested txns included), no
/// key is put twice and no put lands in a deleted range; the two branches
/// of a nested txn may put the same key, as only one of them runs.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Deletes), RequestError> {
    let mut deletes = Deletes::default();
    for op in ops {
        if let Some(Op::RequestDeleteRange(delete)) = &op.request {
            deletes.insert(&delete.key, &delete.range_end);
        }
    }
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let Some(Op::RequestTxn(nested)) = &op.request else {
            continue;
        };
        let (puts_then, deletes_then) = check_intervals(&nested.success)?;
        let (puts_else, deletes_else) = check_intervals(&nested.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deletes.covers(key) {
                return Err(RequestError::DuplicateKey);
            }
            puts.insert(key.clone());
        }
        for key in puts_else {
            if (puts.contains(&key) && !puts_then.contains(&key)) || deletes.covers(&key) {
                return Err(RequestError::DuplicateKey);
            }
            puts.insert(key);
        }
        deletes.extend(deletes_then);
        deletes.extend(deletes_else);
    }
    for op in ops {
        if let Some(Op::RequestPut(put)) = &op.request {
            if puts.contains(&put.key) || deletes.covers(&put.key) {
                return Err(RequestError::DuplicateKey);
            }
            puts.insert(put.key.clone());
        }
    }
    Ok((puts, deletes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_proto::etcdserverpb::{DeleteRangeRequest, PutRequest};

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    fn delete(key: &str, range_end: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: range_end.into(),
                ..Default::default()
            })),
        }
    }

    fn nested(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestTxn(TxnRequest {
                compare: Vec::new(),
                success,
                failure,
            })),
        }
    }

    fn duplicate(ops: Vec<RequestOp>) -> bool {
        matches!(check_intervals(&ops), Err(RequestError::DuplicateKey))
    }

    #[test]
    fn overlaps_follow_etcds_check_intervals() {
        assert!(duplicate(vec![put("a"), put("a")]));
        assert!(duplicate(vec![delete("a", ""), put("a")]));
        assert!(duplicate(vec![delete("a", "c"), put("b")]));
        assert!(!duplicate(vec![delete("a", "c"), put("c")]));
        assert!(!duplicate(vec![delete("a", ""), delete("a", "")]));
        // "\0" as a range end is an empty interval to etcd's check.
        assert!(!duplicate(vec![delete("a", "\0"), put("b")]));
        assert!(duplicate(vec![put("a"), nested(vec![put("a")], vec![])]));
        assert!(duplicate(vec![
            delete("a", ""),
            nested(vec![put("a")], vec![])
        ]));
        assert!(duplicate(vec![
            nested(vec![delete("a", "")], vec![]),
            put("a")
        ]));
        // Then and else of one nested txn are exclusive.
        assert!(!duplicate(vec![nested(vec![put("a")], vec![put("a")])]));
        assert!(duplicate(vec![
            nested(vec![put("a")], vec![]),
            nested(vec![], vec![put("a")])
        ]));
    }

    #[test]
    fn op_count_and_empty_ops_are_checked() {
        let wide = TxnRequest {
            compare: Vec::new(),
            success: (0..129).map(|i| put(&format!("k{i}"))).collect(),
            failure: Vec::new(),
        };
        assert_eq!(check_txn(&wide, 128), Err(RequestError::TooManyOps));
        assert_eq!(check_txn(&wide, 129), Ok(()));
        let empty_op = TxnRequest {
            compare: Vec::new(),
            success: vec![RequestOp { request: None }],
            failure: Vec::new(),
        };
        assert_eq!(check_txn(&empty_op, 128), Err(RequestError::KeyNotFound));
        assert_eq!(
            check_txn(
                &TxnRequest {
                    compare: Vec::new(),
                    success: vec![put("")],
                    failure: Vec::new(),
                },
                128
            ),
            Err(RequestError::EmptyKey)
        );
    }
}

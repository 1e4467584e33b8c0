//! etcd's Txn, applied as etcd's `applierV3backend.Txn` does it:
//!
//! 1. every compare on the path that will run (the top level's, then those
//!    of the nested txns in the chosen branch, depth first) is evaluated
//!    against the state *before* the txn: `compare_path`;
//! 2. the chosen ops are checked against that same state (a put with
//!    `ignore_value`/`ignore_lease` needs the key; a range's revision must be
//!    neither compacted nor in the future), so a failing txn changes nothing;
//! 3. the chosen ops run in order in one MVCC txn: one main revision for all
//!    of them, each op reading the writes before it.
//!
//! The same code serves read-only txns on a shard core over a read view
//! ([`ReadOnly`]), as etcd serves them without raft.

use keel_engine::{KeyValue, MvccError, RangeOptions, RangeResult, ReadView, Txn};
use keel_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use keel_proto::etcdserverpb::request_op::Request as Op;
use keel_proto::etcdserverpb::response_op::Response as OpResponse;
use keel_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, ResponseHeader,
    ResponseOp, TxnRequest, TxnResponse,
};

use crate::convert::{to_proto_kv, to_proto_kvs};
use crate::lease::Lessor;
use crate::message::ApplyError;
use crate::range::range_request;

/// What a txn needs from the store: etcd's `TxnWrite`.
pub trait KvTxn {
    /// Range at the txn's read revision (its own if it wrote).
    fn range(&self, options: &RangeOptions) -> Result<RangeResult, MvccError>;
    /// The same in descending key order.
    fn range_descending(&self, options: &RangeOptions) -> Result<RangeResult, MvccError>;
    /// Puts; returns the previous kv if `want_previous` (and the key
    /// existed).
    fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
        want_previous: bool,
    ) -> Option<KeyValue>;
    /// Deletes the range and returns the deleted kvs.
    fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Vec<KeyValue>;
    /// Whether a put may name lease `id` (etcd's `lessor.Lookup`).
    fn lease_exists(&self, _id: i64) -> bool {
        true
    }
}

/// A store txn that checks lease ids against the lease table.
pub struct LeasedTxn<'t, 'l> {
    pub txn: Txn<'t>,
    pub leases: &'l Lessor,
}

impl KvTxn for LeasedTxn<'_, '_> {
    fn range(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        self.txn.range(options)
    }
    fn range_descending(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        self.txn.range_descending(options)
    }
    fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
        want_previous: bool,
    ) -> Option<KeyValue> {
        KvTxn::put(&mut self.txn, key, value, lease, want_previous)
    }
    fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Vec<KeyValue> {
        self.txn.delete_range(key, range_end)
    }
    fn lease_exists(&self, id: i64) -> bool {
        self.leases.contains(id)
    }
}

impl KvTxn for Txn<'_> {
    fn range(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        Txn::range(self, options)
    }
    fn range_descending(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        Txn::range_descending(self, options)
    }
    fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
        want_previous: bool,
    ) -> Option<KeyValue> {
        if want_previous {
            Txn::put_with_previous(self, key, value, lease)
        } else {
            Txn::put(self, key, value, lease);
            None
        }
    }
    fn delete_range(&mut self, key: &[u8], range_end: &[u8]) -> Vec<KeyValue> {
        Txn::delete_range(self, key, range_end)
    }
}

/// A read view as a txn that never writes: for txns [`is_read_only`] says
/// hold no put or delete.
pub struct ReadOnly<'a>(pub &'a ReadView);

impl KvTxn for ReadOnly<'_> {
    fn range(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        self.0.range(options)
    }
    fn range_descending(&self, options: &RangeOptions) -> Result<RangeResult, MvccError> {
        self.0.range_descending(options)
    }
    fn put(&mut self, _: &[u8], _: &[u8], _: i64, _: bool) -> Option<KeyValue> {
        unreachable!("a read-only txn has no put")
    }
    fn delete_range(&mut self, _: &[u8], _: &[u8]) -> Vec<KeyValue> {
        unreachable!("a read-only txn has no delete")
    }
}

/// etcd's `isTxnReadonly`: no put or delete in either branch, at any depth.
pub fn is_read_only(request: &TxnRequest) -> bool {
    request
        .success
        .iter()
        .chain(&request.failure)
        .all(|op| match &op.request {
            Some(Op::RequestPut(_)) | Some(Op::RequestDeleteRange(_)) => false,
            Some(Op::RequestTxn(nested)) => is_read_only(nested),
            Some(Op::RequestRange(_)) | None => true,
        })
}

/// Applies `request` in `kv`, whose revision before the txn is
/// `revision_before`. The top header carries the txn's revision; the
/// per-op headers carry only a revision, nested txn headers nothing (etcd).
pub fn apply_txn<T: KvTxn>(
    kv: &mut T,
    request: &TxnRequest,
    revision_before: i64,
) -> Result<TxnResponse, ApplyError> {
    let mut path = Vec::new();
    compare_path(kv, request, &mut path);
    check_chosen(kv, request, &path, &mut 0)?;
    let mut run = Run {
        revision_before,
        changed: false,
        path: &path,
        cursor: 0,
    };
    let mut response = run.txn(kv, request);
    debug_assert_eq!(run.cursor, path.len());
    response.header = Some(ResponseHeader {
        revision: run.revision(),
        ..ResponseHeader::default()
    });
    Ok(response)
}

/// Applies a put alone or inside a txn, with etcd's `ignore_value` and
/// `ignore_lease`: they take the previous value or lease, and need the key.
pub fn apply_put<T: KvTxn>(kv: &mut T, put: &PutRequest) -> Result<PutResponse, ApplyError> {
    let previous = if put.ignore_value || put.ignore_lease {
        Some(get(kv, &put.key).ok_or(ApplyError::KeyNotFound)?)
    } else {
        None
    };
    let value = match &previous {
        Some(previous) if put.ignore_value => &previous.value[..],
        _ => &put.value[..],
    };
    let lease = match &previous {
        Some(previous) if put.ignore_lease => previous.lease,
        _ => put.lease,
    };
    if lease != 0 && !kv.lease_exists(lease) {
        return Err(ApplyError::LeaseNotFound);
    }
    // Built only when asked for.
    let prev_kv = kv.put(&put.key, value, lease, put.prev_kv);
    Ok(PutResponse {
        header: None,
        prev_kv: prev_kv.map(to_proto_kv),
    })
}

pub fn apply_delete_range<T: KvTxn>(
    kv: &mut T,
    delete: &DeleteRangeRequest,
) -> DeleteRangeResponse {
    let deleted = kv.delete_range(&delete.key, &delete.range_end);
    DeleteRangeResponse {
        header: None,
        deleted: deleted.len() as i64,
        prev_kvs: if delete.prev_kv {
            to_proto_kvs(deleted)
        } else {
            Vec::new()
        },
    }
}

fn get<T: KvTxn>(kv: &T, key: &[u8]) -> Option<KeyValue> {
    let options = RangeOptions {
        key,
        ..RangeOptions::default()
    };
    kv.range(&options).ok()?.kvs.into_iter().next()
}

/// etcd's `compareToPath`: this txn's outcome, then its chosen branch's
/// nested txns' outcomes, depth first — all against the pre-txn state.
fn compare_path<T: KvTxn>(kv: &T, request: &TxnRequest, path: &mut Vec<bool>) {
    let succeeded = request.compare.iter().all(|compare| holds(kv, compare));
    path.push(succeeded);
    for op in branch(request, succeeded) {
        if let Some(Op::RequestTxn(nested)) = &op.request {
            compare_path(kv, nested, path);
        }
    }
}

fn branch(request: &TxnRequest, succeeded: bool) -> &[keel_proto::etcdserverpb::RequestOp] {
    if succeeded {
        &request.success
    } else {
        &request.failure
    }
}

/// etcd's `applyCompare`: over a range, the compare must hold for every
/// key; with no key, a value compare fails and the others compare zero.
fn holds<T: KvTxn>(kv: &T, compare: &Compare) -> bool {
    let options = RangeOptions {
        key: &compare.key,
        range_end: &compare.range_end,
        ..RangeOptions::default()
    };
    let Ok(result) = kv.range(&options) else {
        return false;
    };
    if result.kvs.is_empty() {
        if compare.target == CompareTarget::Value as i32 {
            return false;
        }
        return compare_kv(compare, &KeyValue::default());
    }
    result.kvs.iter().all(|found| compare_kv(compare, found))
}

fn compare_kv(compare: &Compare, kv: &KeyValue) -> bool {
    let ordering = match CompareTarget::try_from(compare.target) {
        Ok(CompareTarget::Value) => {
            let wanted = match &compare.target_union {
                Some(TargetUnion::Value(value)) => &value[..],
                _ => &[],
            };
            kv.value.as_slice().cmp(wanted)
        }
        Ok(CompareTarget::Create) => kv.create_revision.cmp(&match compare.target_union {
            Some(TargetUnion::CreateRevision(revision)) => revision,
            _ => 0,
        }),
        Ok(CompareTarget::Mod) => kv.mod_revision.cmp(&match compare.target_union {
            Some(TargetUnion::ModRevision(revision)) => revision,
            _ => 0,
        }),
        Ok(CompareTarget::Version) => kv.version.cmp(&match compare.target_union {
            Some(TargetUnion::Version(version)) => version,
            _ => 0,
        }),
        Ok(CompareTarget::Lease) => kv.lease.cmp(&match compare.target_union {
            Some(TargetUnion::Lease(lease)) => lease,
            _ => 0,
        }),
        // etcd compares nothing for an unknown target: result 0.
        Err(_) => std::cmp::Ordering::Equal,
    };
    match CompareResult::try_from(compare.result) {
        Ok(CompareResult::Equal) => ordering.is_eq(),
        Ok(CompareResult::NotEqual) => ordering.is_ne(),
        Ok(CompareResult::Greater) => ordering.is_gt(),
        Ok(CompareResult::Less) => ordering.is_lt(),
        // etcd: an unknown result holds.
        Err(_) => true,
    }
}

/// etcd's `checkRequests` with `checkPut` and `checkRange`, on the chosen
/// path, before anything is written.
fn check_chosen<T: KvTxn>(
    kv: &T,
    request: &TxnRequest,
    path: &[bool],
    cursor: &mut usize,
) -> Result<(), ApplyError> {
    let succeeded = path[*cursor];
    *cursor += 1;
    for op in branch(request, succeeded) {
        match &op.request {
            Some(Op::RequestPut(put))
                if (put.ignore_value || put.ignore_lease) && get(kv, &put.key).is_none() =>
            {
                return Err(ApplyError::KeyNotFound);
            }
            Some(Op::RequestPut(put)) if put.lease != 0 && !kv.lease_exists(put.lease) => {
                return Err(ApplyError::LeaseNotFound);
            }
            Some(Op::RequestRange(range)) if range.revision != 0 => {
                if range.revision < 0 {
                    return Err(ApplyError::Mvcc(MvccError::Compacted));
                }
                let options = RangeOptions {
                    key: &range.key,
                    revision: range.revision,
                    count_only: true,
                    ..RangeOptions::default()
                };
                kv.range(&options).map_err(ApplyError::Mvcc)?;
            }
            Some(Op::RequestTxn(nested)) => check_chosen(kv, nested, path, cursor)?,
            _ => {}
        }
    }
    Ok(())
}

/// One txn's execution along its precomputed path.
struct Run<'p> {
    revision_before: i64,
    /// Whether any op so far changed the store.
    changed: bool,
    path: &'p [bool],
    cursor: usize,
}

impl Run<'_> {
    /// The txn's revision so far: its own once it changed anything.
    fn revision(&self) -> i64 {
        self.revision_before + i64::from(self.changed)
    }

    fn only_revision(&self) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            revision: self.revision(),
            ..ResponseHeader::default()
        })
    }

    fn txn<T: KvTxn>(&mut self, kv: &mut T, request: &TxnRequest) -> TxnResponse {
        let succeeded = self.path[self.cursor];
        self.cursor += 1;
        let mut responses = Vec::new();
        for op in branch(request, succeeded) {
            let response = match &op.request {
                Some(Op::RequestRange(range)) => {
                    // The check above saw this revision readable.
                    let response = range_request(range, kv).unwrap_or_default();
                    Some(OpResponse::ResponseRange(response))
                }
                Some(Op::RequestPut(put)) => {
                    let mut response = apply_put(kv, put).unwrap_or_else(|_| {
                        // Unreachable once checked: a txn never deletes a
                        // key it puts (net/ refuses the overlap). Put the
                        // given value rather than stop the apply loop.
                        let plain = PutRequest {
                            ignore_value: false,
                            ignore_lease: false,
                            ..put.clone()
                        };
                        apply_put(kv, &plain).expect("a plain put applies")
                    });
                    self.changed = true;
                    response.header = self.only_revision();
                    Some(OpResponse::ResponsePut(response))
                }
                Some(Op::RequestDeleteRange(delete)) => {
                    let mut response = apply_delete_range(kv, delete);
                    self.changed |= response.deleted > 0;
                    response.header = self.only_revision();
                    Some(OpResponse::ResponseDeleteRange(response))
                }
                Some(Op::RequestTxn(nested)) => {
                    let mut response = self.txn(kv, nested);
                    response.header = Some(ResponseHeader::default());
                    Some(OpResponse::ResponseTxn(response))
                }
                None => None,
            };
            responses.push(ResponseOp { response });
        }
        TxnResponse {
            header: None,
            succeeded,
            responses,
        }
    }
}

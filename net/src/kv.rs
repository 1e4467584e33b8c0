//! The KV service: Range on the shard core, Put and DeleteRange through the
//! raft core. Validation follows etcd's `v3rpc/key.go` checks, in its order.

use keel_engine::{KeyValue, RangeOptions};
use keel_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use keel_proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
};
use keel_proto::keelpb::internal_request::Request;
use keel_raft_shim::convert::to_proto_kvs;
use keel_raft_shim::Response;

use crate::shard::Shard;
use crate::status::RequestError;

pub async fn range(shard: &Shard, request: RangeRequest) -> Result<RangeResponse, RequestError> {
    if request.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    let sort_order =
        SortOrder::try_from(request.sort_order).map_err(|_| RequestError::InvalidSortOption)?;
    let sort_target =
        SortTarget::try_from(request.sort_target).map_err(|_| RequestError::InvalidSortOption)?;
    if !request.serializable {
        shard.read_index().await?;
    }
    let view = shard.reader.view();
    let filtered = sort_order != SortOrder::None
        || request.min_mod_revision != 0
        || request.max_mod_revision != 0
        || request.min_create_revision != 0
        || request.max_create_revision != 0;
    let options = RangeOptions {
        key: &request.key,
        range_end: &request.range_end,
        revision: request.revision,
        // Sorting and filtering need every match; the limit applies after.
        limit: if filtered { 0 } else { request.limit },
        keys_only: request.keys_only,
        count_only: request.count_only,
    };
    let result = view.range(&options).map_err(RequestError::Mvcc)?;
    let mut kvs = result.kvs;
    let mut more = result.more;
    if filtered {
        kvs.retain(|kv| within_revision_filters(kv, &request));
        sort_kvs(&mut kvs, sort_order, sort_target);
        if request.limit > 0 && kvs.len() > request.limit as usize {
            kvs.truncate(request.limit as usize);
            more = true;
        }
    }
    Ok(RangeResponse {
        header: Some(shard.status.header(result.revision)),
        kvs: to_proto_kvs(kvs),
        more,
        count: result.count,
    })
}

fn within_revision_filters(kv: &KeyValue, request: &RangeRequest) -> bool {
    (request.min_mod_revision == 0 || kv.mod_revision >= request.min_mod_revision)
        && (request.max_mod_revision == 0 || kv.mod_revision <= request.max_mod_revision)
        && (request.min_create_revision == 0 || kv.create_revision >= request.min_create_revision)
        && (request.max_create_revision == 0 || kv.create_revision <= request.max_create_revision)
}

/// etcd's rule: results come key-ascending; another target with no order
/// means ascending by that target.
fn sort_kvs(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let order = match (order, target) {
        (SortOrder::None, SortTarget::Key) | (SortOrder::Ascend, SortTarget::Key) => return,
        (SortOrder::None, _) => SortOrder::Ascend,
        (order, _) => order,
    };
    let compare = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    if order == SortOrder::Descend {
        kvs.sort_by(|a, b| compare(b, a));
    } else {
        kvs.sort_by(compare);
    }
}

pub async fn put(shard: &Shard, request: PutRequest) -> Result<PutResponse, RequestError> {
    if request.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    if request.ignore_value && !request.value.is_empty() {
        return Err(RequestError::ValueProvided);
    }
    if request.ignore_lease && request.lease != 0 {
        return Err(RequestError::LeaseProvided);
    }
    match propose(shard, Request::Put(request)).await? {
        Response::Put(response) => Ok(response),
        other => unreachable!("a put is answered by a put response, got {other:?}"),
    }
}

pub async fn delete_range(
    shard: &Shard,
    request: DeleteRangeRequest,
) -> Result<DeleteRangeResponse, RequestError> {
    if request.key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    match propose(shard, Request::DeleteRange(request)).await? {
        Response::DeleteRange(response) => Ok(response),
        other => unreachable!("a delete is answered by a delete response, got {other:?}"),
    }
}

/// etcd refuses a proposal whose encoded size passes `--max-request-bytes`.
async fn propose(shard: &Shard, request: Request) -> Result<Response, RequestError> {
    // The raft entry: the id field (tag + at most 10 varint bytes) and the request.
    let entry_len = 1 + 10 + request.encoded_len();
    if entry_len > shard.config.max_request_bytes {
        return Err(RequestError::RequestTooLarge);
    }
    shard.propose(request).await
}

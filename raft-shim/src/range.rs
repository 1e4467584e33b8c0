//! etcd's Range over any reader: the read view on a shard core, or a
//! transaction inside the apply loop. Sorting, revision filters and the
//! limit after them live here so both paths answer alike.

use keel_engine::{KeyValue, MvccError, RangeOptions};
use keel_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use keel_proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};

use crate::convert::to_proto_kvs;
use crate::txn::KvTxn;

/// Runs `request` through `read`. The response header carries only the
/// revision the read saw; the caller adds cluster facts where etcd does.
/// Sort options are validated by the caller (an unknown one reads as none).
pub fn range_request<R: KvTxn + ?Sized>(
    request: &RangeRequest,
    reader: &R,
) -> Result<RangeResponse, MvccError> {
    let sort_order = SortOrder::try_from(request.sort_order).unwrap_or(SortOrder::None);
    let sort_target = SortTarget::try_from(request.sort_target).unwrap_or(SortTarget::Key);
    // Key order either way is the tree's own: read it in that order, with
    // the limit applied as it reads.
    let key_descending = sort_order == SortOrder::Descend && sort_target == SortTarget::Key;
    let key_ordered = key_descending
        || sort_order == SortOrder::None
        || (sort_order == SortOrder::Ascend && sort_target == SortTarget::Key);
    let filtered = !key_ordered
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
        stop_after_limit: false,
    };
    let result = if key_descending {
        reader.range_descending(&options)?
    } else {
        reader.range(&options)?
    };
    let mut kvs = result.kvs;
    let mut more = result.more;
    if filtered {
        kvs.retain(|kv| within_revision_filters(kv, request));
        sort_kvs(&mut kvs, sort_order, sort_target);
        if request.limit > 0 && kvs.len() > request.limit as usize {
            kvs.truncate(request.limit as usize);
            more = true;
        }
    }
    Ok(RangeResponse {
        header: Some(ResponseHeader {
            revision: result.revision,
            ..ResponseHeader::default()
        }),
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

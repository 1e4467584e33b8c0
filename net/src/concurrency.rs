//! The concurrency services `etcdctl lock` and `etcdctl elect` use
//! (v3lockpb.Lock, v3electionpb.Election), built exactly as etcd builds
//! them from its client recipes (`concurrency.Mutex`,
//! `concurrency.Election`): a key `<name>/<lease id in hex>` attached to
//! the caller's lease, ownership by lowest create revision, and waiting
//! for the deletion of every key created before ours. The waits use an
//! internal watch on this core's watch hub, so they cost nothing while
//! idle and catch up from history like any watcher.

use std::future::poll_fn;
use std::rc::Rc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use keel_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use keel_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use keel_proto::etcdserverpb::request_op::Request as Op;
use keel_proto::etcdserverpb::response_op::Response as OpResponse;
use keel_proto::etcdserverpb::watch_create_request::FilterType;
use keel_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, TxnRequest, TxnResponse, WatchCreateRequest, WatchResponse,
};
use keel_proto::mvccpb::{self, event::EventType};
use keel_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use keel_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use prost::Message;

use crate::grpc::{self, PREFIX_BYTES};
use crate::shard::Shard;
use crate::status::RequestError;
use crate::stream::MessageWriter;
use crate::watch::hub::StreamId;
use crate::watch::outbox::Outbox;
use crate::{kv, txn};

/// etcd's Lock: acquires `name` for the lease; resolves once held.
pub async fn lock(shard: &Shard, request: LockRequest) -> Result<LockResponse, RequestError> {
    let prefix = with_slash(&request.name);
    let key = session_key(&prefix, request.lease);
    let (my_revision, header, owner) =
        create_or_get(shard, &prefix, &key, &[], request.lease).await?;
    let header = if owner.is_some_and(|owner| owner.create_revision == my_revision) {
        header
    } else {
        let header = wait_deletes(shard, &prefix, my_revision - 1).await?;
        // etcd: the session's key must still be there once we own the lock.
        if single(shard, &key).await?.is_none() {
            return Err(RequestError::ConcurrencySessionExpired);
        }
        header
    };
    Ok(LockResponse {
        header: Some(header),
        key,
    })
}

/// etcd's Unlock: deletes the lock's key.
pub async fn unlock(shard: &Shard, request: UnlockRequest) -> Result<UnlockResponse, RequestError> {
    let response = kv::delete_range(
        shard,
        DeleteRangeRequest {
            key: request.key,
            ..DeleteRangeRequest::default()
        },
    )
    .await?;
    Ok(UnlockResponse {
        header: response.header,
    })
}

/// etcd's Campaign: puts this candidate's value and waits to lead.
pub async fn campaign(
    shard: &Shard,
    request: CampaignRequest,
) -> Result<CampaignResponse, RequestError> {
    let prefix = with_slash(&request.name);
    let key = session_key(&prefix, request.lease);
    let (revision, _, _) =
        create_or_get(shard, &prefix, &key, &request.value, request.lease).await?;
    let existing = single(shard, &key).await?;
    if let Some(existing) = existing.filter(|kv| kv.value != request.value) {
        // Already campaigning with another value: proclaim the new one.
        proclaim_value(
            shard,
            &key,
            existing.create_revision,
            request.lease,
            request.value,
        )
        .await?;
    }
    let header = wait_deletes(shard, &prefix, revision - 1).await?;
    Ok(CampaignResponse {
        header: Some(header),
        leader: Some(LeaderKey {
            name: request.name,
            key,
            rev: revision,
            lease: request.lease,
        }),
    })
}

/// etcd's Proclaim: the leader changes its value without losing the lead.
pub async fn proclaim(
    shard: &Shard,
    request: ProclaimRequest,
) -> Result<ProclaimResponse, RequestError> {
    let leader = request.leader.unwrap_or_default();
    let header =
        proclaim_value(shard, &leader.key, leader.rev, leader.lease, request.value).await?;
    Ok(ProclaimResponse {
        header: Some(header),
    })
}

async fn proclaim_value(
    shard: &Shard,
    key: &[u8],
    revision: i64,
    lease: i64,
    value: Vec<u8>,
) -> Result<ResponseHeader, RequestError> {
    let response = txn::txn(
        shard,
        TxnRequest {
            compare: vec![create_revision_is(key, revision)],
            success: vec![put_op(key, value, lease)],
            failure: Vec::new(),
        },
    )
    .await?;
    if !response.succeeded {
        return Err(RequestError::ElectionNotLeader);
    }
    Ok(response.header.unwrap_or_default())
}

/// etcd's Leader: the candidate with the lowest create revision.
pub async fn leader(shard: &Shard, request: LeaderRequest) -> Result<LeaderResponse, RequestError> {
    let prefix = with_slash(&request.name);
    let response = kv::range(shard, first_created(&prefix)).await?;
    let Some(kv) = response.kvs.into_iter().next() else {
        return Err(RequestError::ElectionNoLeader);
    };
    Ok(LeaderResponse {
        header: response.header,
        kv: Some(kv),
    })
}

/// etcd's Resign: deletes the leader's key if it still leads.
pub async fn resign(shard: &Shard, request: ResignRequest) -> Result<ResignResponse, RequestError> {
    let leader = request.leader.unwrap_or_default();
    let response = txn::txn(
        shard,
        TxnRequest {
            compare: vec![create_revision_is(&leader.key, leader.rev)],
            success: vec![RequestOp {
                request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                    key: leader.key.clone(),
                    ..DeleteRangeRequest::default()
                })),
            }],
            failure: Vec::new(),
        },
    )
    .await?;
    Ok(ResignResponse {
        header: response.header,
    })
}

/// etcd's Observe: streams the leader's key-value each time the leader or
/// its value changes, until the client goes away.
pub async fn serve_observe(shard: Rc<Shard>, body: RecvStream, respond: SendResponse<Bytes>) {
    let Ok(mut writer) = MessageWriter::start(respond) else {
        return;
    };
    let message = match crate::stream::MessageReader::new(body, shard.config.recv_limit_bytes())
        .next()
        .await
    {
        Ok(crate::stream::Incoming::Message(message)) => message,
        _ => return,
    };
    let Ok(request) = LeaderRequest::decode(&message[..]) else {
        return writer.finish(Some(crate::grpc::Status::new(
            crate::grpc::Code::Internal,
            "grpc: error unmarshalling request",
        )));
    };
    let prefix = with_slash(&request.name);
    let observed = async {
        let mut last_sent: Option<(Vec<u8>, i64)> = None;
        loop {
            let response = kv::range(&shard, first_created(&prefix)).await?;
            let revision = response.header.as_ref().map_or(0, |h| h.revision);
            let Some(leader) = response.kvs.into_iter().next() else {
                // No leader yet: wait for any candidate's put.
                let mut watch = InternalWatch::start(
                    &shard,
                    prefix.clone(),
                    prefix_end(&prefix),
                    revision + 1,
                    Some(FilterType::Nodelete),
                );
                match until_reset(&mut writer, watch.next_events()).await {
                    Some(events) => events?,
                    None => return Ok(()),
                };
                continue;
            };
            let mut current = leader;
            loop {
                let identity = (current.key.clone(), current.mod_revision);
                if last_sent.as_ref() != Some(&identity) {
                    let response = LeaderResponse {
                        header: Some(shard.status.header(revision.max(current.mod_revision))),
                        kv: Some(current.clone()),
                    };
                    if writer.send(grpc::frame(&response)).await.is_err() {
                        return Ok(());
                    }
                    last_sent = Some(identity);
                }
                let mut watch = InternalWatch::start(
                    &shard,
                    current.key.clone(),
                    Vec::new(),
                    current.mod_revision + 1,
                    None,
                );
                let events = match until_reset(&mut writer, watch.next_events()).await {
                    Some(events) => events?,
                    None => return Ok(()),
                };
                match events.last() {
                    Some(event) if event.r#type == EventType::Put as i32 => {
                        current = event.kv.clone().unwrap_or_default();
                    }
                    _ => break, // deleted: find the next leader
                }
            }
        }
    };
    let outcome: Result<(), RequestError> = observed.await;
    match outcome {
        Err(error) => writer.finish(Some(error.into())),
        Ok(()) => writer.finish(None),
    }
}

/// `work`'s outcome, or `None` if the client resets the stream first.
async fn until_reset<T>(
    writer: &mut MessageWriter,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    futures_lite::future::or(async { Some(work.await) }, async {
        writer.reset().await;
        None
    })
    .await
}

/// `work`'s outcome, or `None` if the client resets the unary call first
/// (a lock or campaign may wait for as long as another holder lives).
pub async fn until_call_reset<T>(
    respond: &mut SendResponse<Bytes>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    futures_lite::future::or(async { Some(work.await) }, async {
        let _ = poll_fn(|cx| respond.poll_reset(cx)).await;
        None
    })
    .await
}

/// etcd's `tryAcquire`/`Campaign` txn: create our key if absent (else read
/// it), and read the current owner. Returns our key's create revision, the
/// txn's header and the owner.
async fn create_or_get(
    shard: &Shard,
    prefix: &[u8],
    key: &[u8],
    value: &[u8],
    lease: i64,
) -> Result<(i64, ResponseHeader, Option<mvccpb::KeyValue>), RequestError> {
    let get_key = RequestOp {
        request: Some(Op::RequestRange(RangeRequest {
            key: key.to_vec(),
            ..RangeRequest::default()
        })),
    };
    let get_owner = RequestOp {
        request: Some(Op::RequestRange(first_created(prefix))),
    };
    let response: TxnResponse = txn::txn(
        shard,
        TxnRequest {
            compare: vec![create_revision_is(key, 0)],
            success: vec![put_op(key, value.to_vec(), lease), get_owner.clone()],
            failure: vec![get_key, get_owner],
        },
    )
    .await?;
    let header = response.header.unwrap_or_default();
    let ranges: Vec<RangeResponse> = response
        .responses
        .into_iter()
        .filter_map(|op| match op.response {
            Some(OpResponse::ResponseRange(range)) => Some(range),
            _ => None,
        })
        .collect();
    let my_revision = if response.succeeded {
        header.revision
    } else {
        ranges
            .first()
            .and_then(|range| range.kvs.first())
            .map_or(header.revision, |kv| kv.create_revision)
    };
    let owner = ranges.last().and_then(|range| range.kvs.first()).cloned();
    Ok((my_revision, header, owner))
}

/// etcd's `waitDeletes`: until no key under `prefix` created at or below
/// `max_create_revision` is left, wait for the newest of them to go.
async fn wait_deletes(
    shard: &Shard,
    prefix: &[u8],
    max_create_revision: i64,
) -> Result<ResponseHeader, RequestError> {
    loop {
        let response = kv::range(
            shard,
            RangeRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                limit: 1,
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Create as i32,
                max_create_revision,
                ..RangeRequest::default()
            },
        )
        .await?;
        let header = response.header.unwrap_or_default();
        let Some(newest) = response.kvs.into_iter().next() else {
            return Ok(header);
        };
        let mut watch = InternalWatch::start(
            shard,
            newest.key,
            Vec::new(),
            header.revision,
            Some(FilterType::Noput),
        );
        watch.next_events().await?;
    }
}

async fn single(shard: &Shard, key: &[u8]) -> Result<Option<mvccpb::KeyValue>, RequestError> {
    let response = kv::range(
        shard,
        RangeRequest {
            key: key.to_vec(),
            ..RangeRequest::default()
        },
    )
    .await?;
    Ok(response.kvs.into_iter().next())
}

/// A watch the server holds for itself on this core's hub; closed on drop.
struct InternalWatch<'a> {
    shard: &'a Shard,
    stream: StreamId,
    outbox: Rc<Outbox>,
}

impl<'a> InternalWatch<'a> {
    fn start(
        shard: &'a Shard,
        key: Vec<u8>,
        range_end: Vec<u8>,
        start_revision: i64,
        filter: Option<FilterType>,
    ) -> InternalWatch<'a> {
        let outbox = Rc::new(Outbox::default());
        let stream = shard.watches.open_stream(outbox.clone());
        shard.watches.create(
            stream,
            WatchCreateRequest {
                key,
                range_end,
                start_revision: start_revision.max(1),
                filters: filter.into_iter().map(|f| f as i32).collect(),
                ..WatchCreateRequest::default()
            },
        );
        InternalWatch {
            shard,
            stream,
            outbox,
        }
    }

    /// The next non-empty batch of events.
    async fn next_events(&mut self) -> Result<Vec<mvccpb::Event>, RequestError> {
        loop {
            let Some(framed) = self.outbox.pop().await else {
                return Err(RequestError::Stopped);
            };
            let response = WatchResponse::decode(&framed[PREFIX_BYTES..])
                .expect("the hub frames what it encodes");
            if response.compact_revision != 0 {
                return Err(RequestError::Mvcc(keel_engine::MvccError::Compacted));
            }
            if response.canceled {
                return Err(RequestError::Stopped);
            }
            if !response.events.is_empty() {
                return Ok(response.events);
            }
        }
    }
}

impl Drop for InternalWatch<'_> {
    fn drop(&mut self) {
        self.shard.watches.close_stream(self.stream);
    }
}

fn with_slash(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// `<prefix><lease id in lower-case hex>`, as etcd's `fmt.Sprintf("%s%x")`.
fn session_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key
}

/// etcd's `GetPrefixRangeEnd`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The key under `prefix` with the lowest create revision.
fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..RangeRequest::default()
    }
}

fn create_revision_is(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
        ..Compare::default()
    }
}

fn put_op(key: &[u8], value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..PutRequest::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ranges_as_etcd_names_them() {
        assert_eq!(
            session_key(b"lk/", 0x694d77aa9e38260f),
            b"lk/694d77aa9e38260f"
        );
        assert_eq!(prefix_end(b"lk/"), b"lk0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}

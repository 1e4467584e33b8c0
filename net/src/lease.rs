//! The Lease service: grant and revoke go through raft; keep-alive,
//! time-to-live and the list are answered from the raft core's lease
//! table without raft (as etcd's leader answers them from its lessor).

use std::rc::Rc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use keel_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use keel_proto::keelpb::internal_request::Request;
use keel_raft_shim::lease::LEASE_TTL_MAX_SECONDS;
use keel_raft_shim::{LeaseAnswer, LeaseQuery, Response};
use prost::Message;

use crate::grpc::{self, Code, Status};
use crate::kv::propose;
use crate::shard::Shard;
use crate::status::RequestError;
use crate::stream::{Incoming, MessageReader, MessageWriter};

pub async fn grant(
    shard: &Shard,
    request: LeaseGrantRequest,
) -> Result<LeaseGrantResponse, RequestError> {
    if request.ttl > LEASE_TTL_MAX_SECONDS {
        return Err(RequestError::LeaseTtlTooLarge);
    }
    match propose(shard, Request::LeaseGrant(request)).await? {
        Response::LeaseGrant(response) => Ok(response),
        other => unreachable!("a grant is answered by a grant response, got {other:?}"),
    }
}

pub async fn revoke(
    shard: &Shard,
    request: LeaseRevokeRequest,
) -> Result<LeaseRevokeResponse, RequestError> {
    match propose(shard, Request::LeaseRevoke(request)).await? {
        Response::LeaseRevoke(response) => Ok(response),
        other => unreachable!("a revoke is answered by a revoke response, got {other:?}"),
    }
}

/// etcd answers a missing lease with TTL -1, not an error.
pub async fn time_to_live(
    shard: &Shard,
    request: LeaseTimeToLiveRequest,
) -> Result<LeaseTimeToLiveResponse, RequestError> {
    let query = LeaseQuery::TimeToLive {
        id: request.id,
        keys: request.keys,
    };
    let LeaseAnswer::TimeToLive(info) = shard.lease_query(query).await? else {
        unreachable!("a time-to-live query is answered by TimeToLive")
    };
    let header = Some(shard.status.header(shard.reader.view().revision()));
    Ok(match info {
        Some(info) => LeaseTimeToLiveResponse {
            header,
            id: info.id,
            ttl: info.remaining_seconds,
            granted_ttl: info.granted_ttl_seconds,
            keys: info.keys,
        },
        None => LeaseTimeToLiveResponse {
            header,
            id: request.id,
            ttl: -1,
            ..LeaseTimeToLiveResponse::default()
        },
    })
}

pub async fn leases(
    shard: &Shard,
    _request: LeaseLeasesRequest,
) -> Result<LeaseLeasesResponse, RequestError> {
    let LeaseAnswer::List(ids) = shard.lease_query(LeaseQuery::List).await? else {
        unreachable!("a list query is answered by List")
    };
    Ok(LeaseLeasesResponse {
        header: Some(shard.status.header(shard.reader.view().revision())),
        leases: ids.into_iter().map(|id| LeaseStatus { id }).collect(),
    })
}

/// Serves one `LeaseKeepAlive` stream: each request renews its lease and is
/// answered with the new TTL (0 when the lease is gone, as etcd).
pub async fn serve_keep_alive(shard: Rc<Shard>, body: RecvStream, respond: SendResponse<Bytes>) {
    let Ok(mut writer) = MessageWriter::start(respond) else {
        return;
    };
    let mut reader = MessageReader::new(body, shard.config.recv_limit_bytes());
    let status = loop {
        let bytes = match reader.next().await {
            Ok(Incoming::Message(bytes)) => bytes,
            Ok(Incoming::End) => break None,
            Ok(Incoming::Gone) => return,
            Err(status) => break Some(status),
        };
        let request = match LeaseKeepAliveRequest::decode(&bytes[..]) {
            Ok(request) => request,
            Err(error) => {
                break Some(Status::new(
                    Code::Internal,
                    format!("grpc: error unmarshalling request: {error}"),
                ))
            }
        };
        let ttl = match shard
            .lease_query(LeaseQuery::Renew { id: request.id })
            .await
        {
            Ok(LeaseAnswer::Renewed(ttl)) => ttl.unwrap_or(0),
            Ok(_) => unreachable!("a renew is answered by Renewed"),
            Err(error) => break Some(error.into()),
        };
        let response = LeaseKeepAliveResponse {
            header: Some(shard.status.header(shard.reader.view().revision())),
            id: request.id,
            ttl,
        };
        if writer.send(grpc::frame(&response)).await.is_err() {
            return;
        }
    };
    writer.finish(status);
}

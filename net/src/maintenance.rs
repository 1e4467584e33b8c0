//! The Maintenance service, as far as one member needs it: Status and the
//! alarm list. Both answer from the shard core without raft.

use std::sync::atomic::Ordering;

use keel_proto::etcdserverpb::alarm_request::AlarmAction;
use keel_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    StatusRequest, StatusResponse,
};
use keel_proto::keelpb::internal_request::Request;
use keel_raft_shim::Response;

use crate::kv::propose;

use crate::shard::Shard;
use crate::status::RequestError;

/// The etcd version keel reports: kube-apiserver and clients parse it to
/// pick features, and keel serves etcd 3.5's API.
pub const ETCD_VERSION: &str = "3.5.13";

pub fn status(shard: &Shard, _request: StatusRequest) -> StatusResponse {
    let raft = &shard.status;
    let view = shard.reader.view();
    let db_size_bytes = raft.db_size_bytes.load(Ordering::Relaxed) as i64;
    StatusResponse {
        header: Some(raft.header(view.revision())),
        version: ETCD_VERSION.to_string(),
        db_size: db_size_bytes,
        leader: raft.leader_id.load(Ordering::Relaxed),
        raft_index: raft.committed_index.load(Ordering::Relaxed),
        raft_term: raft.term.load(Ordering::Relaxed),
        raft_applied_index: raft.applied_index.load(Ordering::Relaxed),
        errors: raft
            .alarms
            .load()
            .iter()
            .map(|alarm| {
                let kind = AlarmType::try_from(alarm.alarm)
                    .map(|kind| kind.as_str_name())
                    .unwrap_or("UNKNOWN");
                format!("memberID:{} alarm:{kind} ", alarm.member_id)
            })
            .collect(),
        db_size_in_use: raft.db_size_in_use_bytes.load(Ordering::Relaxed) as i64,
        is_learner: false,
        db_size_quota: shard.config.quota_backend_bytes.unwrap_or(0) as i64,
        ..StatusResponse::default()
    }
}

/// etcd's Alarm: GET answers from the published list; ACTIVATE and
/// DEACTIVATE go through raft.
pub async fn alarm(shard: &Shard, request: AlarmRequest) -> Result<AlarmResponse, RequestError> {
    match AlarmAction::try_from(request.action) {
        Ok(AlarmAction::Get) => Ok(AlarmResponse {
            header: Some(shard.status.header(shard.reader.view().revision())),
            alarms: shard.status.alarms.load().to_vec(),
        }),
        Ok(AlarmAction::Activate) | Ok(AlarmAction::Deactivate) => {
            match propose(shard, Request::Alarm(request)).await? {
                Response::Alarm(response) => Ok(response),
                other => unreachable!("an alarm is answered by an alarm response, got {other:?}"),
            }
        }
        Err(_) => Err(RequestError::Unsupported),
    }
}

/// etcd's Defragment, online: the raft core goes on applying (and reads go
/// on) while the backend is rewritten into a fresh file.
pub async fn defragment(
    shard: &Shard,
    _request: DefragmentRequest,
) -> Result<DefragmentResponse, RequestError> {
    shard.defragment().await?;
    Ok(DefragmentResponse {
        header: Some(shard.status.header(shard.reader.view().revision())),
    })
}

/// etcd's Hash: of the whole backend at the current view.
pub fn hash(shard: &Shard, _request: HashRequest) -> HashResponse {
    let view = shard.reader.view();
    HashResponse {
        header: Some(shard.status.header(view.revision())),
        hash: view.hash(),
    }
}

/// etcd's HashKV: of the MVCC history up to a revision (0 = current).
pub fn hash_kv(shard: &Shard, request: HashKvRequest) -> Result<HashKvResponse, RequestError> {
    let view = shard.reader.view();
    let (hash, compact_revision) = view.hash_kv(request.revision).map_err(RequestError::Mvcc)?;
    Ok(HashKvResponse {
        header: Some(shard.status.header(view.revision())),
        hash,
        compact_revision,
        hash_revision: if request.revision > 0 {
            request.revision
        } else {
            view.revision()
        },
    })
}

/// etcd's MoveLeader on a single member: to itself it is a no-op; any
/// other target is not a member.
pub fn move_leader(
    shard: &Shard,
    request: MoveLeaderRequest,
) -> Result<MoveLeaderResponse, RequestError> {
    if request.target_id != shard.status.member_id {
        return Err(RequestError::BadLeaderTransferee);
    }
    Ok(MoveLeaderResponse {
        header: Some(shard.status.header(shard.reader.view().revision())),
    })
}

//! The Maintenance service, as far as one member needs it: Status and the
//! alarm list. Both answer from the shard core without raft.

use std::sync::atomic::Ordering;

use keel_proto::etcdserverpb::alarm_request::AlarmAction;
use keel_proto::etcdserverpb::{AlarmRequest, AlarmResponse, StatusRequest, StatusResponse};

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
        errors: Vec::new(),
        // The backend does not count its free pages yet: report the whole
        // file as in use (etcd's value is at most db_size too).
        db_size_in_use: db_size_bytes,
        is_learner: false,
        ..StatusResponse::default()
    }
}

/// No alarm is ever raised yet (no space quota, no corruption check), so
/// GET and DEACTIVATE answer an empty list; raising one is not supported.
pub fn alarm(shard: &Shard, request: AlarmRequest) -> Result<AlarmResponse, RequestError> {
    match AlarmAction::try_from(request.action) {
        Ok(AlarmAction::Get) | Ok(AlarmAction::Deactivate) => Ok(AlarmResponse {
            header: Some(shard.status.header(shard.reader.view().revision())),
            alarms: Vec::new(),
        }),
        Ok(AlarmAction::Activate) | Err(_) => Err(RequestError::Unsupported),
    }
}

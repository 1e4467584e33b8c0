//! The Cluster service for one member: MemberList names this member.
//! Membership changes arrive with clustering.

use keel_proto::etcdserverpb::{Member, MemberListRequest, MemberListResponse, ResponseHeader};

use crate::shard::Shard;
use crate::status::RequestError;

pub async fn member_list(
    shard: &Shard,
    request: MemberListRequest,
) -> Result<MemberListResponse, RequestError> {
    if request.linearizable {
        shard.read_index().await?;
    }
    let member = &shard.config.member;
    Ok(MemberListResponse {
        // etcd's cluster header: ids and term, no revision.
        header: Some(ResponseHeader {
            revision: 0,
            ..shard.status.header(0)
        }),
        members: vec![Member {
            id: shard.status.member_id,
            name: member.name.clone(),
            peer_ur_ls: member.peer_urls.clone(),
            client_ur_ls: member.client_urls.clone(),
            is_learner: false,
        }],
    })
}

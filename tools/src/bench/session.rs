//! What a run settles once before its executors start: `--user` (etcd's
//! Authenticate; the token goes with every request after) and
//! `--target-leader` (the endpoint whose member leads, by each endpoint's
//! Status).

use glommio::{LocalExecutorBuilder, Placement};
use keel_proto::etcdserverpb as pb;

use crate::args::{Args, Credentials};
use crate::dial::Dialer;
use crate::endpoint::Endpoint;
use crate::grpc_call::{set_auth_token, unary};

/// Authenticates and finds the leader as `args` asks; returns the
/// endpoints the run uses.
pub fn prepare(args: &Args, dialer: &Dialer) -> Result<Vec<Endpoint>, String> {
    if args.user.is_none() && !args.target_leader {
        return Ok(args.endpoints.clone());
    }
    let endpoints = args.endpoints.clone();
    let user = args.user.clone();
    let target_leader = args.target_leader;
    let dialer = dialer.clone();
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("keel-bench-session")
        .spawn(move || async move {
            if let Some(user) = &user {
                let token = authenticate(&endpoints[0], user, &dialer).await?;
                set_auth_token(token);
            }
            if target_leader {
                return Ok(vec![find_leader(&endpoints, &dialer).await?]);
            }
            Ok(endpoints)
        })
        .map_err(|error| format!("cannot start an executor: {error}"))?
        .join()
        .map_err(|error| format!("session setup failed: {error}"))?
}

async fn authenticate(
    endpoint: &Endpoint,
    user: &Credentials,
    dialer: &Dialer,
) -> Result<String, String> {
    let mut sender = dialer.connect(endpoint).await?;
    let request = pb::AuthenticateRequest {
        name: user.name.clone(),
        password: user.password.clone(),
    };
    let response: pb::AuthenticateResponse = unary(
        &mut sender,
        endpoint,
        "/etcdserverpb.Auth/Authenticate",
        &request,
    )
    .await
    .map_err(|message| format!("authentication as {:?} failed: {message}", user.name))?;
    Ok(response.token)
}

/// The endpoint whose member is the leader that any endpoint reports.
async fn find_leader(endpoints: &[Endpoint], dialer: &Dialer) -> Result<Endpoint, String> {
    let mut members = Vec::new();
    let mut errors = Vec::new();
    for endpoint in endpoints {
        let status = async {
            let mut sender = dialer.connect(endpoint).await?;
            unary::<pb::StatusResponse>(
                &mut sender,
                endpoint,
                "/etcdserverpb.Maintenance/Status",
                &pb::StatusRequest {},
            )
            .await
        };
        match status.await {
            Ok(status) => {
                let member_id = status.header.map(|header| header.member_id).unwrap_or(0);
                members.push((endpoint.clone(), member_id, status.leader));
            }
            Err(message) => errors.push(format!("{endpoint}: {message}")),
        }
    }
    leader_of(&members).ok_or_else(|| {
        let mut message = "failed to find a leader endpoint".to_string();
        if !errors.is_empty() {
            message.push_str(&format!(" ({})", errors.join("; ")));
        }
        message
    })
}

/// Of (endpoint, member id, leader id) triples: the endpoint of a member
/// some endpoint names as leader.
pub fn leader_of<E: Clone>(members: &[(E, u64, u64)]) -> Option<E> {
    members
        .iter()
        .filter(|(_, _, leader)| *leader != 0)
        .find_map(|(_, _, leader)| {
            members
                .iter()
                .find(|(_, member, _)| member == leader)
                .map(|(endpoint, _, _)| endpoint.clone())
        })
}

//! Guards the one-member Maintenance, Cluster and Health answers against the
//! real `keel` binary: Status (etcd version string kube-apiserver parses,
//! db size, leader, raft indexes and term), MemberList (id, name, peer and
//! client URLs from the flags), AlarmList (empty) and grpc.health.v1 Check.

mod common;

use common::{client, framed, free_port, raw_call, runtime, scratch_dir, Keel};
use etcd_client::{AlarmAction, AlarmType};
use keel_proto::health::{
    health_check_response::ServingStatus, HealthCheckRequest, HealthCheckResponse,
};
use prost::Message;

#[test]
fn status_reports_this_member() {
    let keel = Keel::start("maintenance-status");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        for i in 0..3 {
            client.put(format!("k{i}"), "v", None).await.unwrap();
        }
        let status = client.status().await.unwrap();
        assert_eq!(status.version(), "3.5.13");
        let header = status.header().unwrap();
        assert_eq!(header.revision(), 4);
        assert_eq!(status.leader(), header.member_id());
        assert!(status.raft_term() >= 1);
        assert_eq!(status.raft_term(), header.raft_term());
        // The leader's empty entry and three puts, all applied.
        assert!(status.raft_applied_index() >= 4);
        assert_eq!(status.raft_index(), status.raft_applied_index());
        assert!(status.db_size() > 0);
        assert_eq!(status.raft_used_db_size(), status.db_size());
        assert!(status.errors().is_empty());
        assert!(!status.is_learner());

        let alarms = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .unwrap();
        assert!(alarms.alarms().is_empty());
        assert_eq!(alarms.header().unwrap().member_id(), header.member_id());
    });
}

#[test]
fn member_list_names_this_member() {
    let port = free_port();
    let keel = Keel::start_with(
        &scratch_dir("maintenance-members").join("data.keel"),
        port,
        &[
            "--name",
            "infra1",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380",
            "--advertise-client-urls",
            "http://10.0.0.1:2379",
        ],
    );
    let defaults = Keel::start("maintenance-members-default");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let list = client.member_list().await.unwrap();
        assert_eq!(list.members().len(), 1);
        let member = &list.members()[0];
        let header = list.header().unwrap();
        assert_eq!(member.id(), header.member_id());
        assert_ne!(header.cluster_id(), 0);
        assert_eq!(member.name(), "infra1");
        assert_eq!(member.peer_urls(), ["http://10.0.0.1:2380"]);
        assert_eq!(member.client_urls(), ["http://10.0.0.1:2379"]);
        assert!(!member.is_learner());

        let mut client = common::client(&defaults.endpoint()).await;
        let list = client.member_list().await.unwrap();
        let member = &list.members()[0];
        assert_eq!(member.name(), "default");
        assert_eq!(member.peer_urls(), ["http://localhost:2380"]);
        assert_eq!(member.client_urls(), [defaults.endpoint()]);
    });
}

#[test]
fn health_check_is_serving() {
    let keel = Keel::start("maintenance-health");
    runtime().block_on(async {
        let request = HealthCheckRequest::default().encode_to_vec();
        let (status, _, body) =
            raw_call(keel.port, "/grpc.health.v1.Health/Check", framed(&request)).await;
        assert_eq!(status, "0");
        let response = HealthCheckResponse::decode(&body[5..]).unwrap();
        assert_eq!(response.status, ServingStatus::Serving as i32);

        let request = HealthCheckRequest {
            service: "no.such.Service".into(),
        }
        .encode_to_vec();
        let (status, message, _) =
            raw_call(keel.port, "/grpc.health.v1.Health/Check", framed(&request)).await;
        assert_eq!(
            (status.as_str(), message.as_str()),
            ("5", "unknown service")
        );
    });
}

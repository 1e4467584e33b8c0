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
    let keel = Keel::start_args(
        "maintenance-members",
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

#[test]
fn hash_and_hash_kv_follow_the_history() {
    let keel = Keel::start("maintenance-hash");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        for i in 0..5 {
            client.put(format!("h{i}"), "v", None).await.unwrap();
        }
        let at_six = client.hash_kv(6).await.unwrap();
        assert_eq!(at_six.compact_version(), 0);
        let whole = client.hash().await.unwrap().hash();
        client.put("h9", "later", None).await.unwrap();
        // The history up to 6 does not change; the whole backend does.
        assert_eq!(client.hash_kv(6).await.unwrap().hash(), at_six.hash());
        assert_ne!(client.hash_kv(0).await.unwrap().hash(), at_six.hash());
        assert_ne!(client.hash().await.unwrap().hash(), whole);
        let future = client.hash_kv(100).await.unwrap_err();
        assert_eq!(
            common::grpc_error(future),
            (
                11,
                "etcdserver: mvcc: required revision is a future revision".into()
            )
        );
        client.compact(4, None).await.unwrap();
        let compacted = client.hash_kv(3).await.unwrap_err();
        assert_eq!(common::grpc_error(compacted).0, 11);
        assert_eq!(client.hash_kv(0).await.unwrap().compact_version(), 4);
    });
}

#[test]
fn move_leader_to_itself_only() {
    let keel = Keel::start("maintenance-move-leader");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let me = client.status().await.unwrap().header().unwrap().member_id();
        client.move_leader(me).await.unwrap();
        let elsewhere = client.move_leader(me ^ 1).await.unwrap_err();
        assert_eq!(
            common::grpc_error(elsewhere),
            (9, "etcdserver: bad leader transferee".into())
        );
    });
}

#[test]
fn nospace_alarm_refuses_writes_until_disarmed() {
    let keel = Keel::start("maintenance-nospace");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let me = client.status().await.unwrap().header().unwrap().member_id();
        client.put("before", "v", None).await.unwrap();
        let mut options = etcd_client::AlarmOptions::new();
        options.with_member(me);
        let raised = client
            .alarm(AlarmAction::Activate, AlarmType::Nospace, Some(options))
            .await
            .unwrap();
        assert_eq!(raised.alarms().len(), 1);
        let listed = client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .unwrap();
        assert_eq!(listed.alarms()[0].member_id(), me);
        assert_eq!(listed.alarms()[0].alarm(), AlarmType::Nospace);
        let status = client.status().await.unwrap();
        assert_eq!(status.errors().len(), 1);
        assert!(
            status.errors()[0].contains("NOSPACE"),
            "{:?}",
            status.errors()
        );

        let space = (8, "etcdserver: mvcc: database space exceeded".to_string());
        let refused = client.put("after", "v", None).await.unwrap_err();
        assert_eq!(common::grpc_error(refused), space);
        let refused = client.lease_grant(60, None).await.unwrap_err();
        assert_eq!(common::grpc_error(refused), space);
        // Reads, deletes and compaction still work, as in etcd.
        assert_eq!(client.get("before", None).await.unwrap().kvs().len(), 1);
        client.delete("before", None).await.unwrap();
        let revision = client.status().await.unwrap().header().unwrap().revision();
        client.compact(revision, None).await.unwrap();

        let disarmed = client
            .alarm(AlarmAction::Deactivate, AlarmType::Nospace, None)
            .await
            .unwrap();
        assert_eq!(disarmed.alarms().len(), 1);
        client.put("after", "v", None).await.unwrap();
        assert!(client
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .unwrap()
            .alarms()
            .is_empty());
    });
}

#[test]
fn snapshot_streams_a_consistent_backend_with_its_sha256() {
    use sha2::{Digest, Sha256};
    let keel = Keel::start("maintenance-snapshot");
    let blob = runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        for i in 0..2000 {
            client
                .put(format!("snap/{i:04}"), format!("value-{i}"), None)
                .await
                .unwrap();
        }
        let mut stream = client.snapshot().await.unwrap();
        let mut blob = Vec::new();
        let mut last_remaining = u64::MAX;
        let mut messages = 0;
        while let Some(response) = stream.message().await.unwrap() {
            blob.extend_from_slice(response.blob());
            last_remaining = response.remaining_bytes();
            messages += 1;
        }
        assert_eq!(last_remaining, 0);
        assert!(messages > 2);
        blob
    });
    let (db, digest) = blob.split_at(blob.len() - 32);
    assert_eq!(Sha256::digest(db).as_slice(), digest, "trailing SHA-256");
    let dir = scratch_dir("snapshot-open");
    let path = dir.join("db");
    std::fs::write(&path, db).unwrap();
    let store = keel_engine::Store::open(&path, keel_engine::StoreOptions::default()).unwrap();
    assert_eq!(store.revision(), 2001);
    let every = keel_engine::RangeOptions {
        key: b"snap/",
        range_end: b"snap0",
        ..Default::default()
    };
    let result = store.reader().view().range(&every).unwrap();
    assert_eq!(result.count, 2000);
    assert_eq!(result.kvs[1234].value, b"value-1234");
}

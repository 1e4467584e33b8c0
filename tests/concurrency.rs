//! Guards the Lock and Election services (what `etcdctl lock` and
//! `etcdctl elect` use) against the real `keel` binary through the
//! `etcd-client` crate: a second locker waits until the first unlocks or
//! its lease is revoked; a second candidate leads only after the first
//! resigns; Proclaim, Leader and Observe follow the leader, with etcd's
//! error texts.

mod common;

use std::time::Duration;

use common::{client, grpc_error, runtime, Keel};
use etcd_client::{LockOptions, ProclaimOptions, ResignOptions};

#[test]
fn a_second_locker_waits_for_unlock_and_for_a_revoked_lease() {
    let keel = Keel::start("concurrency-lock");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let first_lease = client.lease_grant(60, None).await.unwrap().id();
        let second_lease = client.lease_grant(60, None).await.unwrap().id();
        let first = client
            .lock("job", Some(LockOptions::new().with_lease(first_lease)))
            .await
            .unwrap();
        let first_key = first.key().to_vec();
        assert_eq!(first_key, format!("job/{first_lease:x}").into_bytes());

        let mut second_client = client.clone();
        let second = tokio::spawn(async move {
            second_client
                .lock("job", Some(LockOptions::new().with_lease(second_lease)))
                .await
                .unwrap()
                .key()
                .to_vec()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!second.is_finished(), "the lock is held");
        client.unlock(first_key).await.unwrap();
        let second_key = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("the second locker gets the lock after unlock")
            .unwrap();

        // A third waits on the second; revoking the second's lease frees it.
        let third_lease = client.lease_grant(60, None).await.unwrap().id();
        let mut third_client = client.clone();
        let third = tokio::spawn(async move {
            third_client
                .lock("job", Some(LockOptions::new().with_lease(third_lease)))
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!third.is_finished());
        client.lease_revoke(second_lease).await.unwrap();
        assert!(client.get(second_key, None).await.unwrap().kvs().is_empty());
        tokio::time::timeout(Duration::from_secs(10), third)
            .await
            .expect("the third locker gets the lock after the revoke")
            .unwrap();

        // A lock on a lease that does not exist fails as etcd's does.
        let missing = client
            .lock("job", Some(LockOptions::new().with_lease(0x5555)))
            .await
            .unwrap_err();
        assert_eq!(
            grpc_error(missing),
            (5, "etcdserver: requested lease not found".into())
        );
    });
}

#[test]
fn election_campaign_proclaim_leader_observe_resign() {
    let keel = Keel::start("concurrency-election");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let no_leader = client.leader("pick").await.unwrap_err();
        assert_eq!(grpc_error(no_leader), (2, "election: no leader".into()));

        let first_lease = client.lease_grant(60, None).await.unwrap().id();
        let second_lease = client.lease_grant(60, None).await.unwrap().id();
        let mut observe = client.observe("pick").await.unwrap();

        let first = client.campaign("pick", "alpha", first_lease).await.unwrap();
        let first_leader = first.leader().unwrap().clone();
        assert_eq!(
            first_leader.key(),
            format!("pick/{first_lease:x}").as_bytes()
        );
        let observed = observe.message().await.unwrap().unwrap();
        assert_eq!(observed.kv().unwrap().value(), b"alpha");

        let mut second_client = client.clone();
        let second = tokio::spawn(async move {
            second_client
                .campaign("pick", "beta", second_lease)
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!second.is_finished(), "alpha leads");

        client
            .proclaim(
                "alpha-2",
                Some(ProclaimOptions::new().with_leader(first_leader.clone())),
            )
            .await
            .unwrap();
        let leader = client.leader("pick").await.unwrap();
        assert_eq!(leader.kv().unwrap().value(), b"alpha-2");
        let observed = observe.message().await.unwrap().unwrap();
        assert_eq!(observed.kv().unwrap().value(), b"alpha-2");

        client
            .resign(Some(ResignOptions::new().with_leader(first_leader.clone())))
            .await
            .unwrap();
        let second = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .expect("beta leads after alpha resigns")
            .unwrap();
        assert_eq!(
            second.leader().unwrap().key(),
            format!("pick/{second_lease:x}").as_bytes()
        );
        let observed = observe.message().await.unwrap().unwrap();
        assert_eq!(observed.kv().unwrap().value(), b"beta");

        // The old leader can no longer proclaim.
        let stale = client
            .proclaim(
                "alpha-3",
                Some(ProclaimOptions::new().with_leader(first_leader)),
            )
            .await
            .unwrap_err();
        assert_eq!(grpc_error(stale), (2, "election: not leader".into()));
    });
}

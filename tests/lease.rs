//! Guards the Lease service against the real `keel` binary through the
//! `etcd-client` crate: grant (server-picked and requested ids, minimum
//! TTL), keep-alive, time-to-live with keys, the lease list, revoke
//! deleting the attached keys in one revision, expiry deleting them, puts
//! naming a missing lease, and leases surviving a kill -9 and restart.

mod common;

use std::time::{Duration, Instant};

use common::{client, grpc_error, runtime, Keel};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions,
    PutOptions, Txn, TxnOp, WatchOptions,
};

const NOT_FOUND: i32 = 5;
const FAILED_PRECONDITION: i32 = 9;
const OUT_OF_RANGE: i32 = 11;

async fn count(client: &mut Client, prefix: &str) -> i64 {
    client
        .get(
            prefix,
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap()
        .count()
}

#[test]
fn grant_keep_alive_time_to_live_list_revoke() {
    let keel = Keel::start("lease-basic");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let granted = client.lease_grant(60, None).await.unwrap();
        assert!(granted.id() > 0);
        assert_eq!(granted.ttl(), 60);
        let chosen = client
            .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234)))
            .await
            .unwrap();
        assert_eq!(chosen.id(), 0x1234);
        // etcd's minimum TTL: 1.5 election timeouts, rounded up.
        let short = client.lease_grant(1, None).await.unwrap();
        assert_eq!(short.ttl(), 2);

        let again = client
            .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234)))
            .await
            .unwrap_err();
        assert_eq!(
            grpc_error(again),
            (
                FAILED_PRECONDITION,
                "etcdserver: lease already exists".into()
            )
        );
        let huge = client.lease_grant(9_000_000_001, None).await.unwrap_err();
        assert_eq!(
            grpc_error(huge),
            (OUT_OF_RANGE, "etcdserver: too large lease TTL".into())
        );

        let revision_before = client
            .put("l/a", "1", Some(PutOptions::new().with_lease(granted.id())))
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        client
            .put("l/b", "2", Some(PutOptions::new().with_lease(granted.id())))
            .await
            .unwrap();
        client.put("l/c", "3", None).await.unwrap();
        let kv = client.get("l/a", None).await.unwrap().kvs()[0].clone();
        assert_eq!(kv.lease(), granted.id());
        assert!(revision_before > 1);

        let ttl = client
            .lease_time_to_live(
                granted.id(),
                Some(LeaseTimeToLiveOptions::new().with_keys()),
            )
            .await
            .unwrap();
        assert_eq!(ttl.granted_ttl(), 60);
        assert!((58..=60).contains(&ttl.ttl()), "{}", ttl.ttl());
        let mut keys: Vec<Vec<u8>> = ttl.keys().to_vec();
        keys.sort();
        assert_eq!(keys, vec![b"l/a".to_vec(), b"l/b".to_vec()]);
        let missing = client.lease_time_to_live(0x999, None).await.unwrap();
        assert_eq!(missing.ttl(), -1);

        let mut ids: Vec<i64> = client
            .leases()
            .await
            .unwrap()
            .leases()
            .iter()
            .map(|l| l.id())
            .collect();
        ids.sort();
        let mut expected = vec![granted.id(), 0x1234, short.id()];
        expected.sort();
        assert_eq!(ids, expected);

        let (mut keeper, mut responses) = client.lease_keep_alive(granted.id()).await.unwrap();
        keeper.keep_alive().await.unwrap();
        let renewed = responses.message().await.unwrap().unwrap();
        assert_eq!((renewed.id(), renewed.ttl()), (granted.id(), 60));
        // A keep-alive for a missing lease answers TTL 0, not an error
        // status; the client crate reads that TTL as "lease not found".
        let gone = client.lease_keep_alive(0x777).await.unwrap_err();
        assert!(format!("{gone:?}").contains("lease not found"), "{gone:?}");

        // Revoke: both keys go in one revision, seen by a watcher.
        let mut watch = client
            .watch("l/", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        assert!(watch.message().await.unwrap().unwrap().created());
        let revoked = client.lease_revoke(granted.id()).await.unwrap();
        let revoke_revision = revoked.header().unwrap().revision();
        let deleted = watch.message().await.unwrap().unwrap();
        assert_eq!(deleted.events().len(), 2);
        for event in deleted.events() {
            assert_eq!(event.event_type(), EventType::Delete);
            assert_eq!(event.kv().unwrap().mod_revision(), revoke_revision);
        }
        assert_eq!(count(&mut client, "l/").await, 1);
        let again = client.lease_revoke(granted.id()).await.unwrap_err();
        assert_eq!(
            grpc_error(again),
            (NOT_FOUND, "etcdserver: requested lease not found".into())
        );
        let orphan = client
            .put("l/x", "v", Some(PutOptions::new().with_lease(granted.id())))
            .await
            .unwrap_err();
        assert_eq!(
            grpc_error(orphan),
            (NOT_FOUND, "etcdserver: requested lease not found".into())
        );
        // The same check inside a txn, which then changes nothing.
        let txn = Txn::new()
            .when([Compare::version("l/c", CompareOp::Greater, 0)])
            .and_then([
                TxnOp::put("l/c", "changed", None),
                TxnOp::put("l/y", "v", Some(PutOptions::new().with_lease(granted.id()))),
            ]);
        let refused = client.txn(txn).await.unwrap_err();
        assert_eq!(grpc_error(refused).0, NOT_FOUND);
        let c = client.get("l/c", None).await.unwrap().kvs()[0].clone();
        assert_eq!(c.value(), b"3");
    });
}

#[test]
fn an_expired_lease_deletes_its_keys_and_a_kept_one_lives() {
    let keel = Keel::start("lease-expiry");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let expiring = client.lease_grant(2, None).await.unwrap().id();
        let kept = client.lease_grant(2, None).await.unwrap().id();
        client
            .put("e/gone", "v", Some(PutOptions::new().with_lease(expiring)))
            .await
            .unwrap();
        client
            .put("e/kept", "v", Some(PutOptions::new().with_lease(kept)))
            .await
            .unwrap();
        let (mut keeper, mut responses) = client.lease_keep_alive(kept).await.unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            keeper.keep_alive().await.unwrap();
            assert_eq!(responses.message().await.unwrap().unwrap().ttl(), 2);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(client.get("e/gone", None).await.unwrap().kvs().is_empty());
        assert_eq!(client.get("e/kept", None).await.unwrap().kvs().len(), 1);
        assert_eq!(
            client
                .lease_time_to_live(expiring, None)
                .await
                .unwrap()
                .ttl(),
            -1
        );
        let ids: Vec<i64> = client
            .leases()
            .await
            .unwrap()
            .leases()
            .iter()
            .map(|l| l.id())
            .collect();
        assert_eq!(ids, vec![kept]);
    });
}

#[test]
fn leases_and_their_keys_survive_kill9_and_restart() {
    let keel = Keel::start("lease-restart");
    let (long, short) = runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let long = client.lease_grant(600, None).await.unwrap().id();
        let short = client.lease_grant(3, None).await.unwrap().id();
        for i in 0..3 {
            client
                .put(
                    format!("p/{i}"),
                    "v",
                    Some(PutOptions::new().with_lease(long)),
                )
                .await
                .unwrap();
        }
        client
            .put("p/short", "v", Some(PutOptions::new().with_lease(short)))
            .await
            .unwrap();
        (long, short)
    });
    let keel = keel.restart();
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let ttl = client
            .lease_time_to_live(long, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await
            .unwrap();
        assert_eq!(ttl.granted_ttl(), 600);
        assert!(ttl.ttl() >= 598);
        assert_eq!(ttl.keys().len(), 3);
        // The short lease still expires after the restart and takes its key.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !client.get("p/short", None).await.unwrap().kvs().is_empty() {
            assert!(
                Instant::now() < deadline,
                "short lease expired after restart"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            client.lease_time_to_live(short, None).await.unwrap().ttl(),
            -1
        );
        assert_eq!(count(&mut client, "p/").await, 3);
        // Revoking the long one after the restart still finds its keys.
        client.lease_revoke(long).await.unwrap();
        assert_eq!(count(&mut client, "p/").await, 0);
    });
}

//! Guards KV.Txn against the real `keel` binary through `etcd-client`: every
//! compare target and result (over one key and over a range), both
//! branches, nested txns, one revision for all ops, ops reading earlier ops'
//! writes, prev_kv, ignore_value/ignore_lease, and etcd's refusals (too many
//! ops, duplicate keys, empty keys, missing keys, compacted/future ranges).

mod common;

use common::{client, grpc_error, runtime, Keel};
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};

async fn txn(client: &mut Client, txn: Txn) -> TxnResponse {
    client.txn(txn).await.unwrap()
}

/// Whether a txn guarded by `compare` takes its success branch.
async fn holds(client: &mut Client, compare: Compare) -> bool {
    txn(client, Txn::new().when([compare])).await.succeeded()
}

#[test]
fn every_compare_target_and_result() {
    let keel = Keel::start("txn-compares");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        // rev 2: a=10 (create 2, mod 2, version 1); rev 3: a=20 (mod 3, version 2)
        client.put("a", "10", None).await.unwrap();
        // Leases are checked at apply, as etcd: grant it first (no revision).
        client
            .lease_grant(60, Some(etcd_client::LeaseGrantOptions::new().with_id(7)))
            .await
            .unwrap();
        client
            .put("a", "20", Some(PutOptions::new().with_lease(7)))
            .await
            .unwrap();
        // rev 4: b=5
        client.put("b", "5", None).await.unwrap();

        use CompareOp::{Equal, Greater, Less, NotEqual};
        let cases: Vec<(Compare, bool)> = vec![
            (Compare::value("a", Equal, "20"), true),
            (Compare::value("a", Equal, "10"), false),
            (Compare::value("a", NotEqual, "10"), true),
            (Compare::value("a", Greater, "1"), true),
            (Compare::value("a", Less, "3"), true),
            (Compare::value("a", Greater, "3"), false),
            (Compare::version("a", Equal, 2), true),
            (Compare::version("a", Greater, 1), true),
            (Compare::version("a", Less, 2), false),
            (Compare::version("a", NotEqual, 2), false),
            (Compare::create_revision("a", Equal, 2), true),
            (Compare::create_revision("a", Less, 3), true),
            (Compare::create_revision("a", Greater, 2), false),
            (Compare::mod_revision("a", Equal, 3), true),
            (Compare::mod_revision("a", Greater, 2), true),
            (Compare::mod_revision("a", Less, 3), false),
            (Compare::lease("a", Equal, 7), true),
            (Compare::lease("a", NotEqual, 0), true),
            (Compare::lease("a", Less, 7), false),
            // A missing key compares as zeros, except on its value.
            (Compare::version("missing", Equal, 0), true),
            (Compare::create_revision("missing", Equal, 0), true),
            (Compare::mod_revision("missing", Less, 1), true),
            (Compare::lease("missing", Equal, 0), true),
            (Compare::value("missing", Equal, ""), false),
            (Compare::value("missing", NotEqual, "x"), false),
            // Over a range: holds only if it holds for every key in it.
            (Compare::version("a", Equal, 2).with_range("c"), false),
            (Compare::version("a", Greater, 0).with_range("c"), true),
            (Compare::mod_revision("a", Greater, 2).with_range("c"), true),
            (
                Compare::mod_revision("a", Greater, 3).with_range("c"),
                false,
            ),
            (Compare::value("", Greater, "").with_prefix(), false), // "" key: refused below
        ];
        let last = cases.len() - 1;
        for (index, (compare, expected)) in cases.into_iter().enumerate() {
            if index == last {
                let error = client.txn(Txn::new().when([compare])).await.unwrap_err();
                assert_eq!(
                    grpc_error(error),
                    (3, "etcdserver: key is not provided".to_string())
                );
                continue;
            }
            let described = format!("{compare:?}");
            assert_eq!(holds(&mut client, compare).await, expected, "{described}");
        }
        // Several compares: all must hold.
        let both = Txn::new().when([
            Compare::value("a", Equal, "20"),
            Compare::value("b", Equal, "5"),
        ]);
        assert!(txn(&mut client, both).await.succeeded());
        let one_fails = Txn::new().when([
            Compare::value("a", Equal, "20"),
            Compare::value("b", Equal, "6"),
        ]);
        assert!(!txn(&mut client, one_fails).await.succeeded());
        // Read-only txns changed nothing.
        assert_eq!(
            client
                .get("a", None)
                .await
                .unwrap()
                .header()
                .unwrap()
                .revision(),
            4
        );
    });
}

#[test]
fn branches_apply_atomically_at_one_revision() {
    let keel = Keel::start("txn-atomic");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        client.put("x", "1", None).await.unwrap(); // rev 2
        client.put("gone/1", "a", None).await.unwrap(); // rev 3
        client.put("gone/2", "b", None).await.unwrap(); // rev 4

        let response = txn(
            &mut client,
            Txn::new()
                .when([Compare::value("x", CompareOp::Equal, "1")])
                .and_then([
                    TxnOp::put("y", "2", None),
                    TxnOp::put("x", "3", Some(PutOptions::new().with_prev_key())),
                    TxnOp::get("y", None),
                    TxnOp::delete(
                        "gone/",
                        Some(DeleteOptions::new().with_prefix().with_prev_key()),
                    ),
                    TxnOp::get("gone/", Some(GetOptions::new().with_prefix())),
                ])
                .or_else([TxnOp::put("never", "1", None)]),
        )
        .await;
        assert!(response.succeeded());
        let header = response.header().unwrap();
        assert_eq!(header.revision(), 5);
        assert_ne!(header.cluster_id(), 0);
        assert_ne!(header.member_id(), 0);
        let ops = response.op_responses();
        assert_eq!(ops.len(), 5);
        match &ops[0] {
            TxnOpResponse::Put(put) => {
                assert_eq!(put.header().unwrap().revision(), 5);
                assert!(put.prev_key().is_none());
            }
            other => panic!("expected a put response, got {other:?}"),
        }
        match &ops[1] {
            TxnOpResponse::Put(put) => {
                let prev = put.prev_key().expect("prev_kv asked for");
                assert_eq!((prev.value(), prev.mod_revision()), (&b"1"[..], 2));
            }
            other => panic!("expected a put response, got {other:?}"),
        }
        match &ops[2] {
            // A read inside the txn sees the txn's own earlier write.
            TxnOpResponse::Get(get) => {
                assert_eq!(get.header().unwrap().revision(), 5);
                assert_eq!(get.kvs().len(), 1);
                let kv = &get.kvs()[0];
                assert_eq!(
                    (kv.value(), kv.mod_revision(), kv.version()),
                    (&b"2"[..], 5, 1)
                );
            }
            other => panic!("expected a range response, got {other:?}"),
        }
        match &ops[3] {
            TxnOpResponse::Delete(delete) => {
                assert_eq!(delete.deleted(), 2);
                assert_eq!(delete.prev_kvs().len(), 2);
                assert_eq!(delete.header().unwrap().revision(), 5);
            }
            other => panic!("expected a delete response, got {other:?}"),
        }
        match &ops[4] {
            TxnOpResponse::Get(get) => assert!(get.kvs().is_empty()),
            other => panic!("expected a range response, got {other:?}"),
        }
        // Every change carries the one main revision.
        for key in ["x", "y"] {
            let got = client.get(key, None).await.unwrap();
            assert_eq!(got.kvs()[0].mod_revision(), 5, "{key}");
            assert_eq!(got.header().unwrap().revision(), 5);
        }
        let history = client
            .get(
                "gone/",
                Some(GetOptions::new().with_prefix().with_revision(4)),
            )
            .await
            .unwrap();
        assert_eq!(history.kvs().len(), 2);
        assert!(client.get("never", None).await.unwrap().kvs().is_empty());

        // The failure branch runs when a compare fails.
        let response = txn(
            &mut client,
            Txn::new()
                .when([Compare::value("x", CompareOp::Equal, "1")])
                .and_then([TxnOp::put("never", "1", None)])
                .or_else([TxnOp::put("else", "1", None), TxnOp::get("x", None)]),
        )
        .await;
        assert!(!response.succeeded());
        assert_eq!(response.header().unwrap().revision(), 6);
        assert!(client.get("never", None).await.unwrap().kvs().is_empty());
        assert_eq!(
            client.get("else", None).await.unwrap().kvs()[0].mod_revision(),
            6
        );

        // A txn whose writes change nothing (a delete of nothing) keeps the revision.
        let response = txn(
            &mut client,
            Txn::new().and_then([TxnOp::delete("nothing", None)]),
        )
        .await;
        assert_eq!(response.header().unwrap().revision(), 6);
        // An empty txn succeeds and changes nothing.
        let response = txn(&mut client, Txn::new()).await;
        assert!(response.succeeded());
        assert!(response.op_responses().is_empty());
        assert_eq!(response.header().unwrap().revision(), 6);
    });
}

#[test]
fn nested_txns_follow_their_own_compares() {
    let keel = Keel::start("txn-nested");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        client.put("k", "v", None).await.unwrap(); // rev 2
        let inner_true = Txn::new()
            .when([Compare::version("k", CompareOp::Equal, 1)])
            .and_then([TxnOp::put("inner-then", "1", None)])
            .or_else([TxnOp::put("inner-else", "1", None)]);
        // Nested compares see the state before the txn, not the outer put.
        let inner_sees_before = Txn::new()
            .when([Compare::version("k", CompareOp::Equal, 2)])
            .and_then([TxnOp::put("stale-then", "1", None)])
            .or_else([TxnOp::put("stale-else", "1", None)]);
        let response = txn(
            &mut client,
            Txn::new()
                .when([Compare::value("k", CompareOp::Equal, "v")])
                .and_then([
                    TxnOp::put("k", "w", None),
                    TxnOp::txn(inner_true),
                    TxnOp::txn(inner_sees_before),
                ]),
        )
        .await;
        assert!(response.succeeded());
        assert_eq!(response.header().unwrap().revision(), 3);
        let ops = response.op_responses();
        match &ops[1] {
            TxnOpResponse::Txn(inner) => {
                assert!(inner.succeeded());
                assert_eq!(inner.op_responses().len(), 1);
            }
            other => panic!("expected a txn response, got {other:?}"),
        }
        match &ops[2] {
            TxnOpResponse::Txn(inner) => assert!(!inner.succeeded()),
            other => panic!("expected a txn response, got {other:?}"),
        }
        for (key, present) in [
            ("inner-then", true),
            ("inner-else", false),
            ("stale-then", false),
            ("stale-else", true),
        ] {
            let got = client.get(key, None).await.unwrap();
            assert_eq!(got.kvs().len(), usize::from(present), "{key}");
            if present {
                assert_eq!(got.kvs()[0].mod_revision(), 3, "{key}");
            }
        }
    });
}

#[test]
fn refusals_read_as_etcds() {
    let keel = Keel::start_args("txn-refusals", common::free_port(), &["--max-txn-ops", "4"]);
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        client.put("k", "v", None).await.unwrap(); // rev 2
        let refused = |error: etcd_client::Error| grpc_error(error);
        let invalid = |message: &str| (3, message.to_string());

        let many: Vec<TxnOp> = (0..5)
            .map(|i| TxnOp::put(format!("k{i}"), "v", None))
            .collect();
        let error = client.txn(Txn::new().and_then(many)).await.unwrap_err();
        assert_eq!(
            refused(error),
            invalid("etcdserver: too many operations in txn request")
        );
        let four: Vec<TxnOp> = (0..4)
            .map(|i| TxnOp::put(format!("k{i}"), "v", None))
            .collect();
        client.txn(Txn::new().and_then(four)).await.unwrap();

        let duplicates = [
            vec![TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)],
            vec![
                TxnOp::delete("d", Some(DeleteOptions::new().with_prefix())),
                TxnOp::put("d/x", "1", None),
            ],
            vec![
                TxnOp::put("d", "1", None),
                TxnOp::txn(Txn::new().and_then([TxnOp::put("d", "2", None)])),
            ],
        ];
        for ops in duplicates {
            let error = client.txn(Txn::new().and_then(ops)).await.unwrap_err();
            assert_eq!(
                refused(error),
                invalid("etcdserver: duplicate key given in txn request")
            );
        }
        // The two branches of one nested txn may put the same key.
        client
            .txn(
                Txn::new().and_then([TxnOp::txn(
                    Txn::new()
                        .and_then([TxnOp::put("d", "1", None)])
                        .or_else([TxnOp::put("d", "2", None)]),
                )]),
            )
            .await
            .unwrap();

        let error = client
            .txn(Txn::new().and_then([TxnOp::put("", "v", None)]))
            .await
            .unwrap_err();
        assert_eq!(refused(error), invalid("etcdserver: key is not provided"));
        let error = client
            .txn(Txn::new().or_else([TxnOp::get("", None)]))
            .await
            .unwrap_err();
        assert_eq!(refused(error), invalid("etcdserver: key is not provided"));

        let revision = client
            .get("k", None)
            .await
            .unwrap()
            .header()
            .unwrap()
            .revision();
        // ignore_value on a missing key: the whole txn fails, nothing changes.
        let error = client
            .txn(Txn::new().and_then([
                TxnOp::put("fresh", "1", None),
                TxnOp::put("missing", "", Some(PutOptions::new().with_ignore_value())),
            ]))
            .await
            .unwrap_err();
        assert_eq!(refused(error), invalid("etcdserver: key not found"));
        let error = client
            .put("missing", "", Some(PutOptions::new().with_ignore_lease()))
            .await
            .unwrap_err();
        assert_eq!(refused(error), invalid("etcdserver: key not found"));
        let after = client.get("fresh", None).await.unwrap();
        assert!(after.kvs().is_empty());
        assert_eq!(after.header().unwrap().revision(), revision);

        // A range at a future revision fails the txn before it writes.
        let error = client
            .txn(Txn::new().and_then([
                TxnOp::put("fresh", "1", None),
                TxnOp::get("k", Some(GetOptions::new().with_revision(revision + 10))),
            ]))
            .await
            .unwrap_err();
        assert_eq!(
            refused(error),
            (
                11,
                "etcdserver: mvcc: required revision is a future revision".to_string()
            )
        );
        assert!(client.get("fresh", None).await.unwrap().kvs().is_empty());
    });
}

#[test]
fn ignore_value_and_ignore_lease_keep_the_previous_ones() {
    let keel = Keel::start("txn-ignore");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        // Leases are checked at apply, as etcd: grant it first (no revision).
        client
            .lease_grant(60, Some(etcd_client::LeaseGrantOptions::new().with_id(42)))
            .await
            .unwrap();
        client
            .put("k", "old", Some(PutOptions::new().with_lease(42)))
            .await
            .unwrap();
        client
            .put("k", "", Some(PutOptions::new().with_ignore_value()))
            .await
            .unwrap();
        let kv = client.get("k", None).await.unwrap().kvs()[0].clone();
        assert_eq!((kv.value(), kv.lease(), kv.version()), (&b"old"[..], 0, 2));
        // Leases are checked at apply, as etcd: grant it first (no revision).
        client
            .lease_grant(60, Some(etcd_client::LeaseGrantOptions::new().with_id(9)))
            .await
            .unwrap();
        client
            .put("k", "new", Some(PutOptions::new().with_lease(9)))
            .await
            .unwrap();
        client
            .txn(Txn::new().and_then([TxnOp::put(
                "k",
                "newer",
                Some(PutOptions::new().with_ignore_lease().with_prev_key()),
            )]))
            .await
            .unwrap();
        let kv = client.get("k", None).await.unwrap().kvs()[0].clone();
        assert_eq!(
            (kv.value(), kv.lease(), kv.version()),
            (&b"newer"[..], 9, 4)
        );
    });
}

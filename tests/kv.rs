//! Guards the KV service against the real `keel` binary through the
//! `etcd-client` crate: Put, Range (every option of this slice), DeleteRange,
//! prev_kv, and revisions/versions advancing exactly as etcd's do.

mod common;

use common::{client, runtime, Keel};
use etcd_client::{DeleteOptions, GetOptions, PutOptions};

#[test]
fn put_get_delete_follow_etcd_revisions() {
    let keel = Keel::start("kv-revisions");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;

        // A fresh store is at revision 1; the first write makes it 2.
        let empty = client.get("missing", None).await.unwrap();
        assert_eq!(empty.header().unwrap().revision(), 1);
        assert!(empty.kvs().is_empty());
        assert_eq!(empty.count(), 0);

        let put = client.put("foo", "bar", None).await.unwrap();
        assert_eq!(put.header().unwrap().revision(), 2);
        assert!(put.prev_key().is_none());

        let got = client.get("foo", None).await.unwrap();
        assert_eq!(got.kvs().len(), 1);
        let kv = &got.kvs()[0];
        assert_eq!((kv.key(), kv.value()), (&b"foo"[..], &b"bar"[..]));
        assert_eq!(
            (kv.create_revision(), kv.mod_revision(), kv.version()),
            (2, 2, 1)
        );

        let put = client
            .put("foo", "baz", Some(PutOptions::new().with_prev_key()))
            .await
            .unwrap();
        assert_eq!(put.header().unwrap().revision(), 3);
        let prev = put.prev_key().expect("prev_kv asked for");
        assert_eq!(
            (prev.value(), prev.mod_revision(), prev.version()),
            (&b"bar"[..], 2, 1)
        );
        let kv = &client.get("foo", None).await.unwrap().kvs()[0].clone();
        assert_eq!(
            (kv.create_revision(), kv.mod_revision(), kv.version()),
            (2, 3, 2)
        );

        // The lease id is stored with the key.
        // Leases are checked at apply, as etcd: grant it first (no revision).
        client
            .lease_grant(
                60,
                Some(etcd_client::LeaseGrantOptions::new().with_id(0x1234)),
            )
            .await
            .unwrap();
        client
            .put("leased", "v", Some(PutOptions::new().with_lease(0x1234)))
            .await
            .unwrap();
        assert_eq!(
            client.get("leased", None).await.unwrap().kvs()[0].lease(),
            0x1234
        );

        // Old revisions stay readable.
        let old = client
            .get("foo", Some(GetOptions::new().with_revision(2)))
            .await
            .unwrap();
        assert_eq!(old.kvs()[0].value(), b"bar");
        assert_eq!(old.header().unwrap().revision(), 4);

        let deleted = client
            .delete("foo", Some(DeleteOptions::new().with_prev_key()))
            .await
            .unwrap();
        assert_eq!(deleted.deleted(), 1);
        assert_eq!(deleted.prev_kvs()[0].value(), b"baz");
        assert_eq!(deleted.header().unwrap().revision(), 5);
        assert!(client.get("foo", None).await.unwrap().kvs().is_empty());

        // Deleting nothing does not advance the revision.
        let none = client.delete("foo", None).await.unwrap();
        assert_eq!((none.deleted(), none.header().unwrap().revision()), (0, 5));

        // Re-created: a new create_revision, version back to 1.
        client.put("foo", "again", None).await.unwrap();
        let kv = client.get("foo", None).await.unwrap().kvs()[0].clone();
        assert_eq!(
            (kv.create_revision(), kv.mod_revision(), kv.version()),
            (6, 6, 1)
        );
    });
}

#[test]
fn range_options_match_etcd() {
    let keel = Keel::start("kv-range");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        for key in ["a", "b", "b/1", "b/2", "b/3", "c", "d"] {
            client.put(key, format!("value-{key}"), None).await.unwrap();
        }
        let keys = |response: &etcd_client::GetResponse| -> Vec<String> {
            response
                .kvs()
                .iter()
                .map(|kv| String::from_utf8(kv.key().to_vec()).unwrap())
                .collect()
        };

        let range = client
            .get("b", Some(GetOptions::new().with_range("c")))
            .await
            .unwrap();
        assert_eq!(keys(&range), ["b", "b/1", "b/2", "b/3"]);

        let prefix = client
            .get("b/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(keys(&prefix), ["b/1", "b/2", "b/3"]);

        let from_key = client
            .get("c", Some(GetOptions::new().with_from_key()))
            .await
            .unwrap();
        assert_eq!(keys(&from_key), ["c", "d"]);

        let all = client
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .unwrap();
        assert_eq!(all.count(), 7);

        let limited = client
            .get("b", Some(GetOptions::new().with_prefix().with_limit(2)))
            .await
            .unwrap();
        assert_eq!(keys(&limited), ["b", "b/1"]);
        assert!(limited.more());
        assert_eq!(limited.count(), 4);

        let exact = client
            .get("b", Some(GetOptions::new().with_prefix().with_limit(4)))
            .await
            .unwrap();
        assert!(!exact.more());

        let count_only = client
            .get("b", Some(GetOptions::new().with_prefix().with_count_only()))
            .await
            .unwrap();
        assert!(count_only.kvs().is_empty());
        assert_eq!(count_only.count(), 4);

        let keys_only = client
            .get("b/", Some(GetOptions::new().with_prefix().with_keys_only()))
            .await
            .unwrap();
        assert_eq!(keys(&keys_only), ["b/1", "b/2", "b/3"]);
        assert!(keys_only.kvs().iter().all(|kv| kv.value().is_empty()));

        let serializable = client
            .get("a", Some(GetOptions::new().with_serializable()))
            .await
            .unwrap();
        assert_eq!(serializable.kvs()[0].value(), b"value-a");

        // Revision 4 was the write of "b/1": the range as it stood then.
        let at_rev = client
            .get("b", Some(GetOptions::new().with_prefix().with_revision(4)))
            .await
            .unwrap();
        assert_eq!(keys(&at_rev), ["b", "b/1"]);

        // range_end before key: etcd answers an empty range, not an error.
        let backwards = client
            .get("d", Some(GetOptions::new().with_range("a")))
            .await
            .unwrap();
        assert!(backwards.kvs().is_empty());
        assert_eq!(backwards.count(), 0);

        let sorted = client
            .get(
                "b",
                Some(GetOptions::new().with_prefix().with_sort(
                    etcd_client::SortTarget::Key,
                    etcd_client::SortOrder::Descend,
                )),
            )
            .await
            .unwrap();
        assert_eq!(keys(&sorted), ["b/3", "b/2", "b/1", "b"]);

        let deleted = client
            .delete(
                "b/",
                Some(DeleteOptions::new().with_prefix().with_prev_key()),
            )
            .await
            .unwrap();
        assert_eq!(deleted.deleted(), 3);
        assert_eq!(deleted.prev_kvs().len(), 3);
        let rest = client
            .get("", Some(GetOptions::new().with_all_keys()))
            .await
            .unwrap();
        assert_eq!(keys(&rest), ["a", "b", "c", "d"]);

        let future = client
            .get("a", Some(GetOptions::new().with_revision(1000)))
            .await
            .unwrap_err();
        assert!(
            future
                .to_string()
                .contains("etcdserver: mvcc: required revision is a future revision"),
            "{future}"
        );
    });
}

#[test]
fn data_survives_a_restart() {
    let keel = Keel::start("kv-restart");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        for i in 0..100 {
            client
                .put(format!("k{i:03}"), format!("v{i}"), None)
                .await
                .unwrap();
        }
    });
    let keel = keel.restart();
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let all = client
            .get("k", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        assert_eq!(all.count(), 100);
        assert_eq!(all.header().unwrap().revision(), 101);
        let put = client.put("k000", "new", None).await.unwrap();
        assert_eq!(put.header().unwrap().revision(), 102);
    });
}

#[test]
fn descending_key_order_reads_the_tree_backwards_with_etcds_limit_count_more() {
    use etcd_client::{SortOrder, SortTarget};
    let keel = Keel::start("kv-descending");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        for i in 0..10 {
            client
                .put(format!("d{i}"), format!("{i}"), None)
                .await
                .unwrap();
        }
        client.delete("d5", None).await.unwrap();
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend);
        let limited = client
            .get("d", Some(options.clone().with_limit(3)))
            .await
            .unwrap();
        let keys: Vec<&str> = limited
            .kvs()
            .iter()
            .map(|kv| kv.key_str().unwrap())
            .collect();
        assert_eq!(keys, ["d9", "d8", "d7"]);
        assert_eq!((limited.count(), limited.more()), (9, true));
        let all = client.get("d", Some(options.clone())).await.unwrap();
        let keys: Vec<&str> = all.kvs().iter().map(|kv| kv.key_str().unwrap()).collect();
        assert_eq!(keys, ["d9", "d8", "d7", "d6", "d4", "d3", "d2", "d1", "d0"]);
        assert!(!all.more());
        // At an older revision the deleted key is back, in its place.
        let old = client
            .get("d", Some(options.with_limit(6).with_revision(10)))
            .await
            .unwrap();
        let keys: Vec<&str> = old.kvs().iter().map(|kv| kv.key_str().unwrap()).collect();
        assert_eq!(keys, ["d8", "d7", "d6", "d5", "d4", "d3"]);
    });
}

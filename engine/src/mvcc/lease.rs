//! Lease records: the lessor's durable state, kept in the MVCC tree's
//! lease namespace (`key.rs` documents the layout).
//!
//! Keeping them in the same tree makes a lease grant or revoke commit
//! atomically with the MVCC changes of its batch, publish with the batch's
//! read view, and survive restart through the same commit record. They are
//! not MVCC entries: they carry no revision, and a change to them does not
//! advance the store's revision. Expiry and keep-alives are the lessor's
//! business (in memory, above the engine); the engine only keeps id and TTL.

use super::key::{
    decode_lease_value, encode_lease_value, is_lease_key, lease_id_of, lease_key, lease_keys_start,
};
use super::store::Store;
use crate::btree::{insert, remove_sorted, Cursor, Node};

/// A granted lease as the store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The lease id.
    pub id: i64,
    /// The TTL it was granted with, in seconds.
    pub ttl_seconds: i64,
}

/// Every lease record under `root`, ascending by id.
pub(crate) fn leases(root: &Node) -> Vec<LeaseRecord> {
    let mut out = Vec::new();
    let mut cursor = Cursor::seek(root, lease_keys_start());
    while let Some(entry) = cursor.current() {
        if !is_lease_key(entry.key()) {
            break;
        }
        out.push(LeaseRecord {
            id: lease_id_of(entry.key()),
            ttl_seconds: decode_lease_value(entry.value()),
        });
        cursor.next();
    }
    // Tree order is that of the ids as u64: negative ids (which etcd never
    // hands out, but a client may ask for) come after the positive ones.
    out.sort_unstable_by_key(|lease| lease.id);
    out
}

/// Inserts or replaces lease `id` in the store's working tree.
pub(crate) fn put_lease(store: &mut Store, id: i64, ttl_seconds: i64) {
    let key = lease_key(id);
    let value = encode_lease_value(ttl_seconds);
    insert(&mut store.root, &key, &value);
    store.ops_since_persist += 1;
    store.dirty_bytes_since_persist += (key.len() + value.len()) as u64;
}

/// Removes lease `id` from the store's working tree; true if it was there.
pub(crate) fn delete_lease(store: &mut Store, id: i64) -> bool {
    let key = lease_key(id);
    let removed = remove_sorted(&mut store.root, &[key.as_slice()]);
    assert!(removed <= 1, "one tree key per lease");
    if removed == 1 {
        store.ops_since_persist += 1;
        store.dirty_bytes_since_persist += key.len() as u64;
    }
    removed == 1
}

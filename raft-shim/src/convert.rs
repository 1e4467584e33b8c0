//! Engine values as etcd wire messages. Shared by the apply loop and by
//! `net/`'s serializable reads so that one piece of code builds every
//! `mvccpb.KeyValue` keel sends.

use keel_engine::KeyValue;
use keel_proto::mvccpb;

pub fn to_proto_kv(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn to_proto_kvs(kvs: Vec<KeyValue>) -> Vec<mvccpb::KeyValue> {
    kvs.into_iter().map(to_proto_kv).collect()
}

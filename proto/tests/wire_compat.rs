//! Guards wire compatibility with etcd v3: encodes messages and compares
//! them with byte strings worked out by hand from the field numbers in
//! etcd's API reference (etcd main branch, = v3.6 plus KV.RangeStream).
//!
//! A protobuf field key is one varint `(field_number << 3) | wire_type`,
//! wire type 0 for varints (ints, bools, enums) and 2 for length-delimited
//! values (bytes, strings, messages, packed repeated scalars). So field 1
//! varint is `0x08`, field 1 bytes is `0x0a`, field 11 bytes is `0x5a`, and
//! field 64 bytes needs two bytes, `0x82 0x04`. A wrong field number in a
//! `.proto` file changes the key byte and fails these tests.

use std::fmt::Debug;

use keel_proto::etcdserverpb::{
    compare, request_op, response_op, watch_create_request, watch_request, AlarmRequest, AlarmType,
    AuthRoleGrantPermissionRequest, Compare, DowngradeInfo, HashKvResponse, LeaseGrantRequest,
    LeaseTimeToLiveResponse, Member, MemberAddRequest, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RangeStreamResponse, RequestOp, ResponseHeader, ResponseOp, SnapshotResponse,
    StatusResponse, TxnRequest, TxnResponse, WatchCancelRequest, WatchCreateRequest,
    WatchProgressRequest, WatchRequest, WatchResponse,
};
use keel_proto::{authpb, health, keelpb, mvccpb, v3electionpb, v3lockpb};
use prost::Message;

/// Asserts that `message` encodes to exactly `expected` and that `expected`
/// decodes back to `message`.
fn assert_wire<M>(message: &M, expected: &[u8])
where
    M: Message + Default + PartialEq + Debug,
{
    let encoded = message.encode_to_vec();
    assert_eq!(
        encoded, expected,
        "encoding of {message:?}\n   got: {encoded:02x?}\nwanted: {expected:02x?}"
    );
    let decoded = M::decode(expected).expect("hand-written bytes decode");
    assert_eq!(&decoded, message);
}

#[test]
fn put_request_fields() {
    let put = PutRequest {
        key: b"a".to_vec(),
        value: b"b".to_vec(),
        lease: 5,
        prev_kv: true,
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x01, b'a', // 1 key
        0x12, 0x01, b'b', // 2 value
        0x18, 0x05,       // 3 lease
        0x20, 0x01,       // 4 prev_kv
    ];
    assert_wire(&put, &expected);

    let keep = PutRequest {
        key: b"a".to_vec(),
        ignore_value: true,
        ignore_lease: true,
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x01, b'a', // 1 key
        0x28, 0x01,       // 5 ignore_value
        0x30, 0x01,       // 6 ignore_lease
    ];
    assert_wire(&keep, &expected);
}

#[test]
fn range_request_fields() {
    let mut range = RangeRequest {
        key: b"k".to_vec(),
        range_end: b"l".to_vec(),
        limit: 10,
        revision: 7,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 1,
        max_mod_revision: 2,
        min_create_revision: 3,
        max_create_revision: 4,
        ..Default::default()
    };
    range.set_sort_order(keel_proto::etcdserverpb::range_request::SortOrder::Descend);
    range.set_sort_target(keel_proto::etcdserverpb::range_request::SortTarget::Mod);
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x01, b'k', // 1 key
        0x12, 0x01, b'l', // 2 range_end
        0x18, 0x0a,       // 3 limit = 10
        0x20, 0x07,       // 4 revision = 7
        0x28, 0x02,       // 5 sort_order = DESCEND (2)
        0x30, 0x03,       // 6 sort_target = MOD (3)
        0x38, 0x01,       // 7 serializable
        0x40, 0x01,       // 8 keys_only
        0x48, 0x01,       // 9 count_only
        0x50, 0x01,       // 10 min_mod_revision
        0x58, 0x02,       // 11 max_mod_revision
        0x60, 0x03,       // 12 min_create_revision
        0x68, 0x04,       // 13 max_create_revision
    ];
    assert_wire(&range, &expected);
}

#[test]
fn response_header_fields() {
    let header = ResponseHeader {
        cluster_id: 0x1234,
        member_id: 2,
        revision: 300,
        raft_term: 4,
    };
    #[rustfmt::skip]
    let expected = [
        0x08, 0xb4, 0x24, // 1 cluster_id = 0x1234 (varint 0xb4 0x24)
        0x10, 0x02,       // 2 member_id
        0x18, 0xac, 0x02, // 3 revision = 300 (varint 0xac 0x02)
        0x20, 0x04,       // 4 raft_term
    ];
    assert_wire(&header, &expected);
}

#[test]
fn key_value_all_six_fields() {
    let kv = mvccpb::KeyValue {
        key: b"foo".to_vec(),
        create_revision: 2,
        mod_revision: 3,
        version: 1,
        value: b"bar".to_vec(),
        lease: 100,
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x03, b'f', b'o', b'o', // 1 key
        0x10, 0x02,                   // 2 create_revision
        0x18, 0x03,                   // 3 mod_revision
        0x20, 0x01,                   // 4 version
        0x2a, 0x03, b'b', b'a', b'r', // 5 value
        0x30, 0x64,                   // 6 lease = 100
    ];
    assert_wire(&kv, &expected);
}

#[test]
fn event_fields_and_type() {
    let mut event = mvccpb::Event {
        kv: Some(mvccpb::KeyValue {
            key: b"a".to_vec(),
            ..Default::default()
        }),
        prev_kv: Some(mvccpb::KeyValue {
            key: b"a".to_vec(),
            mod_revision: 1,
            ..Default::default()
        }),
        ..Default::default()
    };
    event.set_type(mvccpb::event::EventType::Delete);
    #[rustfmt::skip]
    let expected = [
        0x08, 0x01,                         // 1 type = DELETE (1)
        0x12, 0x03, 0x0a, 0x01, b'a',       // 2 kv { 1 key }
        0x1a, 0x05, 0x0a, 0x01, b'a',       // 3 prev_kv { 1 key,
        0x18, 0x01,                         //             3 mod_revision }
    ];
    assert_wire(&event, &expected);
}

#[test]
fn txn_with_mod_revision_compare_and_put() {
    let mut compare = Compare {
        key: b"k".to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(5)),
        ..Default::default()
    };
    compare.set_result(compare::CompareResult::Less);
    compare.set_target(compare::CompareTarget::Mod);
    let txn = TxnRequest {
        compare: vec![compare],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        }],
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x09,                   // 1 compare (9 bytes)
        0x08, 0x02,                   //   1 result = LESS (2)
        0x10, 0x02,                   //   2 target = MOD (2)
        0x1a, 0x01, b'k',             //   3 key
        0x30, 0x05,                   //   6 mod_revision = 5
        0x12, 0x08,                   // 2 success op (8 bytes)
        0x12, 0x06,                   //   2 request_put (6 bytes)
        0x0a, 0x01, b'k',             //     1 key
        0x12, 0x01, b'v',             //     2 value
        0x1a, 0x05,                   // 3 failure op (5 bytes)
        0x0a, 0x03,                   //   1 request_range (3 bytes)
        0x0a, 0x01, b'k',             //     1 key
    ];
    assert_wire(&txn, &expected);
}

#[test]
fn compare_value_with_range_end_64() {
    let mut compare = Compare {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        target_union: Some(compare::TargetUnion::Value(b"x".to_vec())),
        ..Default::default()
    };
    compare.set_result(compare::CompareResult::NotEqual);
    compare.set_target(compare::CompareTarget::Value);
    #[rustfmt::skip]
    let expected = [
        0x08, 0x03,             // 1 result = NOT_EQUAL (3)
        0x10, 0x03,             // 2 target = VALUE (3)
        0x1a, 0x01, b'a',       // 3 key
        0x3a, 0x01, b'x',       // 7 value
        0x82, 0x04, 0x01, b'b', // 64 range_end (key 514 = varint 0x82 0x04)
    ];
    assert_wire(&compare, &expected);

    let mut by_lease = Compare {
        key: b"a".to_vec(),
        target_union: Some(compare::TargetUnion::Lease(9)),
        ..Default::default()
    };
    by_lease.set_target(compare::CompareTarget::Lease);
    #[rustfmt::skip]
    let expected = [
        0x10, 0x04,       // 2 target = LEASE (4)
        0x1a, 0x01, b'a', // 3 key
        0x40, 0x09,       // 8 lease
    ];
    assert_wire(&by_lease, &expected);
}

#[test]
fn compare_oneof_zero_is_still_sent() {
    // `Compare(Version(key), "=", 0)`, the "key does not exist" guard: a set
    // oneof member is encoded even when it holds the default value.
    let compare = Compare {
        key: b"a".to_vec(),
        target_union: Some(compare::TargetUnion::Version(0)),
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x1a, 0x01, b'a', // 3 key (result EQUAL and target VERSION are 0: omitted)
        0x20, 0x00,       // 4 version = 0
    ];
    assert_wire(&compare, &expected);
}

#[test]
fn response_op_oneof_numbers() {
    let op = ResponseOp {
        response: Some(response_op::Response::ResponseTxn(TxnResponse {
            succeeded: true,
            ..Default::default()
        })),
    };
    #[rustfmt::skip]
    let expected = [
        0x22, 0x02, // 4 response_txn
        0x10, 0x01, //   2 succeeded
    ];
    assert_wire(&op, &expected);
}

#[test]
fn watch_create_request_fields() {
    let mut create = WatchCreateRequest {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        start_revision: 5,
        progress_notify: true,
        prev_kv: true,
        watch_id: 9,
        fragment: true,
        ..Default::default()
    };
    create.push_filters(watch_create_request::FilterType::Nodelete);
    let request = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x13,             // 1 create_request (19 bytes)
        0x0a, 0x01, b'a',       //   1 key
        0x12, 0x01, b'b',       //   2 range_end
        0x18, 0x05,             //   3 start_revision
        0x20, 0x01,             //   4 progress_notify
        0x2a, 0x01, 0x01,       //   5 filters, packed: [NODELETE (1)]
        0x30, 0x01,             //   6 prev_kv
        0x38, 0x09,             //   7 watch_id
        0x40, 0x01,             //   8 fragment
    ];
    assert_wire(&request, &expected);

    let cancel = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id: 9 },
        )),
    };
    assert_wire(&cancel, &[0x12, 0x02, 0x08, 0x09]); // 2 cancel_request { 1 watch_id }

    let progress = WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        )),
    };
    assert_wire(&progress, &[0x1a, 0x00]); // 3 progress_request {}
}

#[test]
fn watch_response_fields() {
    let response = WatchResponse {
        watch_id: 1,
        created: true,
        canceled: true,
        compact_revision: 3,
        cancel_reason: "x".to_string(),
        fragment: true,
        events: vec![mvccpb::Event {
            kv: Some(mvccpb::KeyValue {
                key: b"a".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x10, 0x01,                   // 2 watch_id
        0x18, 0x01,                   // 3 created
        0x20, 0x01,                   // 4 canceled
        0x28, 0x03,                   // 5 compact_revision
        0x32, 0x01, b'x',             // 6 cancel_reason
        0x38, 0x01,                   // 7 fragment
        0x5a, 0x05,                   // 11 events (5 bytes), type PUT (0) omitted
        0x12, 0x03, 0x0a, 0x01, b'a', //   2 kv { 1 key }
    ];
    assert_wire(&response, &expected);
}

#[test]
fn status_response_newer_fields() {
    let status = StatusResponse {
        db_size: 8192,
        raft_applied_index: 7,
        db_size_in_use: 4096,
        is_learner: true,
        storage_version: "3.6.0".to_string(),
        db_size_quota: 1 << 31,
        downgrade_info: Some(DowngradeInfo {
            enabled: true,
            target_version: "3.5.0".to_string(),
        }),
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x18, 0x80, 0x40,                         // 3 dbSize = 8192
        0x38, 0x07,                               // 7 raftAppliedIndex
        0x48, 0x80, 0x20,                         // 9 dbSizeInUse = 4096
        0x50, 0x01,                               // 10 isLearner
        0x5a, 0x05, b'3', b'.', b'6', b'.', b'0', // 11 storageVersion
        0x60, 0x80, 0x80, 0x80, 0x80, 0x08,       // 12 dbSizeQuota = 2^31
        0x6a, 0x09,                               // 13 downgradeInfo (9 bytes)
        0x08, 0x01,                               //   1 enabled
        0x12, 0x05, b'3', b'.', b'5', b'.', b'0', //   2 targetVersion
    ];
    assert_wire(&status, &expected);
}

#[test]
fn lease_fields() {
    let grant = LeaseGrantRequest { ttl: 60, id: 16 };
    assert_wire(&grant, &[0x08, 0x3c, 0x10, 0x10]); // 1 TTL = 60, 2 ID = 16

    let time_to_live = LeaseTimeToLiveResponse {
        id: 1,
        ttl: 2,
        granted_ttl: 3,
        keys: vec![b"a".to_vec()],
        ..Default::default()
    };
    #[rustfmt::skip]
    let expected = [
        0x10, 0x01,       // 2 ID
        0x18, 0x02,       // 3 TTL
        0x20, 0x03,       // 4 grantedTTL
        0x2a, 0x01, b'a', // 5 keys
    ];
    assert_wire(&time_to_live, &expected);
}

#[test]
fn member_fields() {
    let member = Member {
        id: 1,
        name: "n".to_string(),
        peer_ur_ls: vec!["p".to_string()],
        client_ur_ls: vec!["c".to_string()],
        is_learner: true,
    };
    #[rustfmt::skip]
    let expected = [
        0x08, 0x01,       // 1 ID
        0x12, 0x01, b'n', // 2 name
        0x1a, 0x01, b'p', // 3 peerURLs
        0x22, 0x01, b'c', // 4 clientURLs
        0x28, 0x01,       // 5 isLearner
    ];
    assert_wire(&member, &expected);

    let add = MemberAddRequest {
        peer_ur_ls: vec!["p".to_string()],
        is_learner: true,
    };
    assert_wire(&add, &[0x0a, 0x01, b'p', 0x10, 0x01]); // 1 peerURLs, 2 isLearner
}

#[test]
fn maintenance_fields() {
    let mut alarm = AlarmRequest {
        member_id: 3,
        ..Default::default()
    };
    alarm.set_action(keel_proto::etcdserverpb::alarm_request::AlarmAction::Activate);
    alarm.set_alarm(AlarmType::Nospace);
    // 1 action = ACTIVATE (1), 2 memberID, 3 alarm = NOSPACE (1)
    assert_wire(&alarm, &[0x08, 0x01, 0x10, 0x03, 0x18, 0x01]);
    assert_eq!(AlarmType::Corrupt as i32, 2);

    let hash_kv = HashKvResponse {
        hash: 1,
        compact_revision: 2,
        hash_revision: 3,
        ..Default::default()
    };
    // 2 hash, 3 compact_revision, 4 hash_revision
    assert_wire(&hash_kv, &[0x10, 0x01, 0x18, 0x02, 0x20, 0x03]);

    let snapshot = SnapshotResponse {
        remaining_bytes: 1,
        blob: b"x".to_vec(),
        version: "3".to_string(),
        ..Default::default()
    };
    // 2 remaining_bytes, 3 blob, 4 version
    assert_wire(&snapshot, &[0x10, 0x01, 0x1a, 0x01, b'x', 0x22, 0x01, b'3']);
}

#[test]
fn auth_permission_fields() {
    let mut permission = authpb::Permission {
        key: b"a".to_vec(),
        range_end: b"b".to_vec(),
        ..Default::default()
    };
    permission.set_perm_type(authpb::permission::Type::Readwrite);
    let grant = AuthRoleGrantPermissionRequest {
        name: "r".to_string(),
        perm: Some(permission),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x01, b'r', // 1 name
        0x12, 0x08,       // 2 perm (8 bytes)
        0x08, 0x02,       //   1 permType = READWRITE (2)
        0x12, 0x01, b'a', //   2 key
        0x1a, 0x01, b'b', //   3 range_end
    ];
    assert_wire(&grant, &expected);
}

#[test]
fn lock_and_election_fields() {
    let lock = v3lockpb::LockRequest {
        name: b"l".to_vec(),
        lease: 7,
    };
    assert_wire(&lock, &[0x0a, 0x01, b'l', 0x10, 0x07]); // 1 name, 2 lease

    let proclaim = v3electionpb::ProclaimRequest {
        leader: Some(v3electionpb::LeaderKey {
            name: b"e".to_vec(),
            key: b"k".to_vec(),
            rev: 3,
            lease: 4,
        }),
        value: b"v".to_vec(),
    };
    #[rustfmt::skip]
    let expected = [
        0x0a, 0x0a,       // 1 leader (10 bytes)
        0x0a, 0x01, b'e', //   1 name
        0x12, 0x01, b'k', //   2 key
        0x18, 0x03,       //   3 rev
        0x20, 0x04,       //   4 lease
        0x12, 0x01, b'v', // 2 value
    ];
    assert_wire(&proclaim, &expected);
}

#[test]
fn health_fields() {
    let request = health::HealthCheckRequest {
        service: "s".to_string(),
    };
    assert_wire(&request, &[0x0a, 0x01, b's']); // 1 service

    let mut response = health::HealthCheckResponse::default();
    response.set_status(health::health_check_response::ServingStatus::NotServing);
    assert_wire(&response, &[0x08, 0x02]); // 1 status = NOT_SERVING (2)
    assert_eq!(
        health::health_check_response::ServingStatus::ServiceUnknown as i32,
        3
    );
}

#[test]
fn internal_request_fields() {
    let put = keelpb::InternalRequest {
        id: 1,
        request: Some(keelpb::internal_request::Request::Put(PutRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })),
    };
    // 1 id, 2 put { 1 key }
    assert_wire(&put, &[0x08, 0x01, 0x12, 0x03, 0x0a, 0x01, b'a']);

    let revoke = keelpb::InternalRequest {
        id: 2,
        request: Some(keelpb::internal_request::Request::LeaseRevoke(
            keel_proto::etcdserverpb::LeaseRevokeRequest { id: 5 },
        )),
    };
    // 1 id, 7 lease_revoke { 1 ID }
    assert_wire(&revoke, &[0x08, 0x02, 0x3a, 0x02, 0x08, 0x05]);
}

#[test]
fn nested_responses_round_trip() {
    let header = ResponseHeader {
        cluster_id: u64::MAX,
        member_id: 7,
        revision: i64::MAX,
        raft_term: 2,
    };
    let kv = mvccpb::KeyValue {
        key: vec![0, 0xff, b'k'],
        create_revision: 1,
        mod_revision: 2,
        version: 3,
        value: vec![0xfe; 300],
        lease: -1,
    };
    let txn = TxnResponse {
        header: Some(header),
        succeeded: true,
        responses: vec![
            ResponseOp {
                response: Some(response_op::Response::ResponseRange(RangeResponse {
                    header: Some(header),
                    kvs: vec![kv.clone(), kv.clone()],
                    more: true,
                    count: 42,
                })),
            },
            ResponseOp {
                response: Some(response_op::Response::ResponsePut(PutResponse {
                    header: Some(header),
                    prev_kv: Some(kv.clone()),
                })),
            },
        ],
    };
    let bytes = txn.encode_to_vec();
    assert_eq!(TxnResponse::decode(bytes.as_slice()).unwrap(), txn);

    // A RangeStream chunk carries a RangeResponse at field 1.
    let chunk = RangeStreamResponse {
        range_response: Some(RangeResponse {
            kvs: vec![kv],
            ..Default::default()
        }),
    };
    let bytes = chunk.encode_to_vec();
    assert_eq!(bytes[0], 0x0a);
    assert_eq!(
        RangeStreamResponse::decode(bytes.as_slice()).unwrap(),
        chunk
    );

    // Truncated input is an error, not a panic or a partial message.
    let truncated = &bytes[..bytes.len() - 1];
    assert!(RangeStreamResponse::decode(truncated).is_err());
}

//! What keel-bench sends: each command's method and request bodies (keys
//! encoded as etcd's benchmark encodes them), and the response checks.

use bytes::Bytes;
use keel_net::grpc;
use keel_proto::etcdserverpb as pb;

use crate::command::Command;
use crate::grpc_call::decode_one;

pub(crate) fn method_path(command: &Command) -> &'static str {
    match command {
        Command::Put { .. } => "/etcdserverpb.KV/Put",
        Command::Range { .. } => "/etcdserverpb.KV/Range",
        Command::TxnPut { .. } | Command::TxnMixed { .. } => "/etcdserverpb.KV/Txn",
        Command::LeaseKeepalive { .. } => "/etcdserverpb.Lease/LeaseKeepAlive",
        Command::WatchLatency { .. } | Command::Watch { .. } | Command::WatchGet { .. } => {
            "/etcdserverpb.Watch/Watch"
        }
        Command::MvccPut { .. } | Command::MvccRange { .. } => "(in-process)",
    }
}

/// Checks what a successful call returned, where the command cares.
pub(crate) fn check_response(command: &Command, body: &[u8]) -> Result<(), String> {
    match command {
        Command::LeaseKeepalive { .. } => {
            let response: pb::LeaseKeepAliveResponse = decode_one(body)?;
            if response.ttl <= 0 {
                return Err("lease expired or revoked (keep-alive TTL 0)".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The request for the `index`-th operation, and the report it goes to.
pub(crate) fn request_body(
    command: &Command,
    index: usize,
    value: &[u8],
    lease_id: i64,
) -> (usize, Bytes) {
    match command {
        Command::Put {
            key_size,
            sequential_keys,
            key_space_size,
            ..
        } => {
            let number = if *sequential_keys {
                index % key_space_size
            } else {
                pseudo_random(index) % key_space_size
            };
            (
                0,
                grpc::frame(&put_request(varint_key(*key_size, number), value)),
            )
        }
        Command::Range {
            key,
            end,
            serializable,
            limit,
            ..
        } => (
            0,
            grpc::frame(&pb::RangeRequest {
                key: key.clone(),
                range_end: end.clone(),
                serializable: *serializable,
                limit: *limit,
                ..Default::default()
            }),
        ),
        Command::TxnPut {
            key_size,
            txn_ops,
            key_space_size,
            ..
        } => {
            // etcd: key (i * txn-ops + j) % key-space-size.
            let success = (0..*txn_ops)
                .map(|op| {
                    let number = (index * txn_ops + op) % key_space_size;
                    request_op(pb::request_op::Request::RequestPut(put_request(
                        varint_key(*key_size, number),
                        value,
                    )))
                })
                .collect();
            (0, grpc::frame(&txn(success)))
        }
        Command::TxnMixed {
            key_size,
            rw_ratio,
            serializable,
            key_space_size,
            limit,
            ..
        } => {
            // etcd: a read with probability rw/(1+rw); reads are a prefix
            // range over every key ("" with WithPrefix) with the limit.
            let draw = pseudo_random(index) as f64 / usize::MAX as f64;
            if draw < rw_ratio / (1.0 + rw_ratio) {
                let range = pb::RangeRequest {
                    key: vec![0],
                    range_end: vec![0],
                    serializable: *serializable,
                    limit: *limit,
                    ..Default::default()
                };
                let op = request_op(pb::request_op::Request::RequestRange(range));
                (0, grpc::frame(&txn(vec![op])))
            } else {
                let put = put_request(varint_key(*key_size, index % key_space_size), value);
                let op = request_op(pb::request_op::Request::RequestPut(put));
                (1, grpc::frame(&txn(vec![op])))
            }
        }
        Command::LeaseKeepalive { .. } => {
            (0, grpc::frame(&pb::LeaseKeepAliveRequest { id: lease_id }))
        }
        Command::WatchLatency { .. }
        | Command::Watch { .. }
        | Command::WatchGet { .. }
        | Command::MvccPut { .. }
        | Command::MvccRange { .. } => unreachable!("not a request/response command"),
    }
}

pub(crate) fn varint_key(key_size: usize, number: usize) -> Vec<u8> {
    let mut key = vec![0u8; key_size];
    put_varint(&mut key, number as i64);
    key
}

pub(crate) fn put_request(key: Vec<u8>, value: &[u8]) -> pb::PutRequest {
    pb::PutRequest {
        key,
        value: value.to_vec(),
        ..Default::default()
    }
}

pub(crate) fn request_op(request: pb::request_op::Request) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request),
    }
}

pub(crate) fn txn(success: Vec<pb::RequestOp>) -> pb::TxnRequest {
    pb::TxnRequest {
        success,
        ..Default::default()
    }
}

/// Go's `binary.PutVarint` (zig-zag), as etcd's benchmark encodes keys.
pub(crate) fn put_varint(buf: &mut [u8], value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut i = 0;
    while zigzag >= 0x80 && i < buf.len() {
        buf[i] = (zigzag as u8) | 0x80;
        zigzag >>= 7;
        i += 1;
    }
    if i < buf.len() {
        buf[i] = zigzag as u8;
        i += 1;
    }
    i
}

pub(crate) fn pseudo_random(index: usize) -> usize {
    // splitmix64: deterministic, uniform enough for key choice.
    let mut z = (index as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as usize
}

pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + (pseudo_random(i) % 26) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_mixed_reads_follow_the_ratio() {
        let command = Command::TxnMixed {
            total: 10_000,
            key_size: 8,
            val_size: 8,
            rw_ratio: 3.0,
            serializable: true,
            key_space_size: 10,
            limit: 1000,
            end_key: Vec::new(),
        };
        let reads = (0..10_000)
            .filter(|&i| request_body(&command, i, b"v", 0).0 == 0)
            .count();
        assert!((7_200..7_800).contains(&reads), "{reads}");
    }

    #[test]
    fn txn_put_carries_txn_ops_puts() {
        let command = Command::TxnPut {
            total: 10,
            key_size: 8,
            val_size: 3,
            txn_ops: 4,
            key_space_size: 100,
        };
        let (_, body) = request_body(&command, 2, b"abc", 0);
        let txn: pb::TxnRequest = decode_one(&body).unwrap();
        assert_eq!(txn.success.len(), 4);
        let Some(pb::request_op::Request::RequestPut(put)) = &txn.success[3].request else {
            panic!("not a put");
        };
        assert_eq!(put.key, varint_key(8, 11));
        assert_eq!(put.value, b"abc");
    }

    #[test]
    fn varint_matches_go() {
        let mut buf = [0u8; 8];
        assert_eq!(put_varint(&mut buf, 0), 1);
        assert_eq!(buf[0], 0);
        assert_eq!(put_varint(&mut buf, 1), 1);
        assert_eq!(buf[0], 2);
        assert_eq!(put_varint(&mut buf, 64), 2);
        assert_eq!(&buf[..2], &[0x80, 0x01]);
    }
}

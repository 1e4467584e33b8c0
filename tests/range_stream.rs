//! Guards KV.RangeStream against the real `keel` binary over raw HTTP/2:
//! the merged chunks equal what Range answers (kvs, count, more, header
//! revision) for a large prefix, with a limit, sorted, at an old revision,
//! and a compacted revision fails with etcd's code and message.

mod common;

use common::{client, framed, raw_call, runtime, Keel};
use keel_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use keel_proto::etcdserverpb::{RangeRequest, RangeResponse, RangeStreamResponse};
use keel_proto::methods;
use prost::Message;

/// Calls RangeStream and merges its chunks; returns (chunks, merged).
async fn range_stream(port: u16, request: &RangeRequest) -> (usize, RangeResponse) {
    let (status, message, body) = raw_call(
        port,
        methods::KV_RANGE_STREAM,
        framed(&request.encode_to_vec()),
    )
    .await;
    assert_eq!(status, "0", "{message}");
    let mut merged = RangeResponse::default();
    let mut chunks = 0;
    let mut rest = &body[..];
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let chunk = RangeStreamResponse::decode(&rest[5..5 + len]).unwrap();
        rest = &rest[5 + len..];
        let part = chunk.range_response.unwrap();
        merged.kvs.extend(part.kvs);
        if part.header.is_some() {
            merged.header = part.header;
            merged.count = part.count;
            merged.more = part.more;
        }
        chunks += 1;
    }
    (chunks, merged)
}

async fn range(port: u16, request: &RangeRequest) -> RangeResponse {
    let (status, message, body) =
        raw_call(port, methods::KV_RANGE, framed(&request.encode_to_vec())).await;
    assert_eq!(status, "0", "{message}");
    RangeResponse::decode(&body[5..]).unwrap()
}

#[test]
fn chunks_merge_into_what_range_answers() {
    let keel = Keel::start("range-stream");
    let port = keel.port;
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        let value = "v".repeat(300);
        for i in 0..5000 {
            client
                .put(format!("rs/{i:05}"), value.as_str(), None)
                .await
                .unwrap();
        }
        let old_revision = client.status().await.unwrap().header().unwrap().revision();
        client.put("rs/00007", "changed", None).await.unwrap();
        let prefix = RangeRequest {
            key: b"rs/".to_vec(),
            range_end: b"rs0".to_vec(),
            ..RangeRequest::default()
        };
        let cases = [
            prefix.clone(),
            RangeRequest {
                limit: 1234,
                ..prefix.clone()
            },
            RangeRequest {
                keys_only: true,
                serializable: true,
                ..prefix.clone()
            },
            RangeRequest {
                revision: old_revision,
                ..prefix.clone()
            },
            RangeRequest {
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Mod as i32,
                limit: 10,
                ..prefix.clone()
            },
            RangeRequest {
                key: b"rs/00042".to_vec(),
                ..RangeRequest::default()
            },
            RangeRequest {
                count_only: true,
                ..prefix.clone()
            },
        ];
        for request in &cases {
            let (chunks, streamed) = range_stream(port, request).await;
            let whole = range(port, request).await;
            assert_eq!(streamed.kvs, whole.kvs, "{request:?}");
            assert_eq!((streamed.count, streamed.more), (whole.count, whole.more));
            assert_eq!(
                streamed.header.unwrap().revision,
                whole.header.unwrap().revision
            );
            if request.limit == 0 && !request.count_only && request.range_end == b"rs0" {
                assert!(chunks > 2, "5000 kvs arrive in chunks, not whole: {chunks}");
            }
        }
        let (_, at_old) = range_stream(
            port,
            &RangeRequest {
                revision: old_revision,
                key: b"rs/00007".to_vec(),
                ..RangeRequest::default()
            },
        )
        .await;
        assert_eq!(at_old.kvs[0].value, value.as_bytes());

        client.compact(old_revision, None).await.unwrap();
        let (status, message, _) = raw_call(
            port,
            methods::KV_RANGE_STREAM,
            framed(
                &RangeRequest {
                    revision: old_revision - 1,
                    ..prefix.clone()
                }
                .encode_to_vec(),
            ),
        )
        .await;
        assert_eq!(
            (status.as_str(), message.as_str()),
            (
                "11",
                "etcdserver: mvcc: required revision has been compacted"
            )
        );
    });
}

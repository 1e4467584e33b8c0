//! KV.RangeStream (etcd 3.7, which kube-apiserver prefers for big lists):
//! the answer Range would give, in chunks, all read at one revision. A
//! plain range (key order, no revision filters) is read page by page from
//! the read view, so a huge range is never built in memory whole; sorted
//! or filtered ranges need every match anyway and are answered from one
//! Range result, sent in chunks. Every chunk carries the next slice of
//! kvs; the header, `more` and `count` ride on the last one.

use std::rc::Rc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use keel_engine::RangeOptions;
use keel_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use keel_proto::etcdserverpb::{RangeRequest, RangeResponse, RangeStreamResponse};
use keel_proto::mvccpb;
use keel_raft_shim::convert::to_proto_kvs;
use keel_raft_shim::range::range_request;
use keel_raft_shim::txn::ReadOnly;
use prost::Message;

use crate::grpc::{self, Code, Status};
use crate::kv::check_range;
use crate::shard::Shard;
use crate::status::RequestError;
use crate::stream::{Incoming, MessageReader, MessageWriter};

/// Most kvs in one chunk.
pub const CHUNK_KVS_MAX: usize = 1000;
/// A chunk is sent once its kvs pass this many bytes.
pub const CHUNK_BYTES_MAX: usize = 1 << 20;

pub async fn serve_range_stream(shard: Rc<Shard>, body: RecvStream, respond: SendResponse<Bytes>) {
    let Ok(mut writer) = MessageWriter::start(respond) else {
        return;
    };
    let message = match MessageReader::new(body, shard.config.recv_limit_bytes())
        .next()
        .await
    {
        Ok(Incoming::Message(message)) => message,
        Ok(_) => return,
        Err(status) => return writer.finish(Some(status)),
    };
    let request = match RangeRequest::decode(&message[..]) {
        Ok(request) => request,
        Err(error) => {
            return writer.finish(Some(Status::new(
                Code::Internal,
                format!("grpc: error unmarshalling request: {error}"),
            )))
        }
    };
    match stream_range(&shard, &mut writer, request).await {
        Ok(()) => writer.finish(None),
        Err(Some(error)) => writer.finish(Some(error.into())),
        Err(None) => {} // the client went away
    }
}

/// `Err(None)`: the client is gone.
async fn stream_range(
    shard: &Shard,
    writer: &mut MessageWriter,
    request: RangeRequest,
) -> Result<(), Option<RequestError>> {
    check_range(&request).map_err(Some)?;
    if !request.serializable {
        shard.read_index().await.map_err(Some)?;
    }
    let view = shard.reader.view();
    let read_revision = if request.revision > 0 {
        request.revision
    } else {
        view.revision()
    };
    let plain = request.min_mod_revision == 0
        && request.max_mod_revision == 0
        && request.min_create_revision == 0
        && request.max_create_revision == 0
        && matches!(
            (
                SortOrder::try_from(request.sort_order),
                SortTarget::try_from(request.sort_target)
            ),
            (Ok(SortOrder::None), _) | (Ok(SortOrder::Ascend), Ok(SortTarget::Key))
        );
    if !plain || request.count_only {
        let whole =
            range_request(&request, &ReadOnly(&view)).map_err(|e| Some(RequestError::Mvcc(e)))?;
        let mut kvs = whole.kvs;
        let last = RangeResponse {
            header: Some(shard.status.header(view.revision())),
            kvs: Vec::new(),
            more: whole.more,
            count: whole.count,
        };
        while !kvs.is_empty() {
            let rest = kvs.split_off(chunk_len(&kvs));
            send_chunk(writer, std::mem::replace(&mut kvs, rest)).await?;
        }
        return send(writer, last).await;
    }

    let limit = usize::try_from(request.limit).ok().filter(|&l| l > 0);
    let mut next_key = request.key.clone();
    let mut sent = 0usize;
    let more = loop {
        let page_len = limit.map_or(CHUNK_KVS_MAX, |limit| CHUNK_KVS_MAX.min(limit - sent));
        let page = view
            .range(&RangeOptions {
                key: &next_key,
                range_end: &request.range_end,
                revision: read_revision,
                limit: page_len as i64,
                keys_only: request.keys_only,
                count_only: false,
                stop_after_limit: true,
            })
            .map_err(|e| Some(RequestError::Mvcc(e)))?;
        let Some(last) = page.kvs.last() else {
            break false;
        };
        next_key = last.key.clone();
        next_key.push(0);
        sent += page.kvs.len();
        let page_more = page.more;
        send_chunk(writer, to_proto_kvs(page.kvs)).await?;
        if !page_more {
            break false;
        }
        if limit.is_some_and(|limit| sent >= limit) {
            break true;
        }
        glommio::yield_if_needed().await;
    };
    let count = if more {
        // Only a limited range needs the full count; count without values.
        view.range(&RangeOptions {
            key: &request.key,
            range_end: &request.range_end,
            revision: read_revision,
            count_only: true,
            ..RangeOptions::default()
        })
        .map_err(|e| Some(RequestError::Mvcc(e)))?
        .count
    } else {
        sent as i64
    };
    send(
        writer,
        RangeResponse {
            header: Some(shard.status.header(view.revision())),
            kvs: Vec::new(),
            more,
            count,
        },
    )
    .await
}

/// How many of `kvs` go into the next chunk (at least one).
fn chunk_len(kvs: &[mvccpb::KeyValue]) -> usize {
    let mut bytes = 0usize;
    for (index, kv) in kvs.iter().enumerate().take(CHUNK_KVS_MAX) {
        bytes += kv.encoded_len();
        if bytes >= CHUNK_BYTES_MAX {
            return index + 1;
        }
    }
    kvs.len().min(CHUNK_KVS_MAX)
}

async fn send_chunk(
    writer: &mut MessageWriter,
    kvs: Vec<mvccpb::KeyValue>,
) -> Result<(), Option<RequestError>> {
    send(
        writer,
        RangeResponse {
            header: None,
            kvs,
            more: false,
            count: 0,
        },
    )
    .await
}

async fn send(
    writer: &mut MessageWriter,
    response: RangeResponse,
) -> Result<(), Option<RequestError>> {
    let chunk = RangeStreamResponse {
        range_response: Some(response),
    };
    writer.send(grpc::frame(&chunk)).await.map_err(|_| None)
}

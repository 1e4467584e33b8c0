//! The Watch service, fanned out per shard core.
//!
//! Each shard core matches the raft core's applied-event batches against
//! the watchers of its own connections ([`hub`]); each watch stream has a
//! bounded [`outbox`] that its writer drains to the client under HTTP/2
//! flow control. A slow client fills its outbox, and its watchers then
//! catch up from the store's history: nothing is dropped, reordered, or
//! allowed to stall the raft core or other clients.

mod catch_up;
pub mod hub;
pub mod outbox;
mod response;
mod watcher;

use std::rc::Rc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use keel_proto::etcdserverpb::watch_request::RequestUnion;
use keel_proto::etcdserverpb::WatchRequest;
use prost::Message;

pub use hub::{WatchHub, PROGRESS_NOTIFY_INTERVAL_DEFAULT};
use outbox::Outbox;

use crate::grpc::{Code, Status};
use crate::shard::Shard;
use crate::stream::{Incoming, MessageReader, MessageWriter};

/// Serves one `Watch.Watch` call until the client goes away.
pub async fn serve_watch(shard: Rc<Shard>, body: RecvStream, respond: SendResponse<Bytes>) {
    let Ok(mut writer) = MessageWriter::start(respond) else {
        return;
    };
    let hub = &shard.watches;
    let outbox = Rc::new(Outbox::default());
    let stream = hub.open_stream(outbox.clone());
    let mut reader = MessageReader::new(body, shard.config.recv_limit_bytes());

    let read_requests = async {
        loop {
            outbox.room().await;
            match reader.next().await {
                Ok(Incoming::Message(bytes)) => match WatchRequest::decode(&bytes[..]) {
                    Ok(request) => handle_request(hub, stream, request),
                    Err(error) => {
                        return Some(Status::new(
                            Code::Internal,
                            format!("grpc: error unmarshalling request: {error}"),
                        ))
                    }
                },
                // As etcd: a half-closed stream keeps delivering events.
                Ok(Incoming::End) => return std::future::pending().await,
                Ok(Incoming::Gone) => return None,
                Err(status) => return Some(status),
            }
        }
    };
    let write_responses = async {
        loop {
            // Waiting for a response, notice a client that resets the stream.
            let next = futures_lite::future::or(async { outbox.pop().await }, async {
                writer.reset().await;
                None
            })
            .await;
            let Some(framed) = next else { return };
            if writer.send(framed).await.is_err() {
                return;
            }
            if outbox.has_room() {
                hub.outbox_drained();
            }
        }
    };
    let outcome = futures_lite::future::or(async { Some(read_requests.await) }, async {
        write_responses.await;
        None
    })
    .await;
    hub.close_stream(stream);
    if let Some(Some(status)) = outcome {
        writer.finish(Some(status));
    }
}

fn handle_request(hub: &WatchHub, stream: hub::StreamId, request: WatchRequest) {
    match request.request_union {
        Some(RequestUnion::CreateRequest(create)) => hub.create(stream, create),
        Some(RequestUnion::CancelRequest(cancel)) => hub.cancel(stream, cancel.watch_id),
        Some(RequestUnion::ProgressRequest(_)) => hub.request_progress(stream),
        None => {}
    }
}

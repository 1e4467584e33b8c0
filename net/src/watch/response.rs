//! Building watch responses: etcd events from engine events, fragments
//! (etcd's `sendFragments`), and one encoding of a batch's events shared by
//! every watcher that gets exactly those events.

use bytes::{BufMut, Bytes, BytesMut};
use keel_engine::{Event, EventKind};
use keel_proto::etcdserverpb::{ResponseHeader, WatchResponse};
use keel_proto::mvccpb;
use keel_raft_shim::convert::to_proto_kv;
use keel_raft_shim::RaftStatus;
use prost::Message;

use super::outbox::Outbox;
use super::watcher::Watcher;
use crate::grpc;

/// Queues `events` for one watcher as one response, or as fragments when
/// the watcher asked for them and the response is larger than
/// `fragment_bytes` (etcd's `sendFragments`).
pub(super) fn queue_events(
    outbox: &Outbox,
    status: &RaftStatus,
    watch_id: i64,
    revision: i64,
    watcher: &Watcher,
    events: &[&Event],
    fragment_bytes: usize,
) {
    let proto: Vec<mvccpb::Event> = events
        .iter()
        .map(|event| to_proto_event(event, watcher.prev_kv))
        .collect();
    let whole = WatchResponse {
        header: Some(status.header(revision)),
        watch_id,
        events: proto,
        ..WatchResponse::default()
    };
    if !watcher.fragment || whole.events.len() < 2 || whole.encoded_len() < fragment_bytes {
        outbox.push(grpc::frame(&whole));
        return;
    }
    let header = whole.header;
    let mut pieces: Vec<Vec<mvccpb::Event>> = vec![Vec::new()];
    let mut piece_bytes = 0usize;
    for event in whole.events {
        let event_bytes = event.encoded_len() + 8;
        let last = pieces.last_mut().expect("one piece");
        if !last.is_empty() && piece_bytes + event_bytes > fragment_bytes {
            pieces.push(Vec::new());
            piece_bytes = 0;
        }
        piece_bytes += event_bytes;
        pieces.last_mut().expect("one piece").push(event);
    }
    let count = pieces.len();
    for (index, events) in pieces.into_iter().enumerate() {
        let response = WatchResponse {
            header,
            watch_id,
            events,
            fragment: index + 1 < count,
            ..WatchResponse::default()
        };
        outbox.push(grpc::frame(&response));
    }
}

/// The `events` field of a WatchResponse, encoded once for every watcher
/// that gets exactly these events.
pub(super) fn encode_events(events: &[&Event], with_prev_kv: bool) -> Bytes {
    let only_events = WatchResponse {
        events: events
            .iter()
            .map(|event| to_proto_event(event, with_prev_kv))
            .collect(),
        ..WatchResponse::default()
    };
    Bytes::from(only_events.encode_to_vec())
}

/// A framed WatchResponse from its own header and id plus shared encoded
/// events: protobuf fields may come in any order and concatenated
/// encodings merge, so the result decodes as one message.
pub(super) fn frame_with_events(header: &ResponseHeader, watch_id: i64, events: &Bytes) -> Bytes {
    let head = WatchResponse {
        header: Some(*header),
        watch_id,
        ..WatchResponse::default()
    };
    let len = head.encoded_len() + events.len();
    let mut framed = BytesMut::with_capacity(grpc::PREFIX_BYTES + len);
    framed.put_u8(0);
    framed.put_u32(len as u32);
    head.encode(&mut framed).expect("capacity reserved");
    framed.extend_from_slice(events);
    framed.freeze()
}

fn to_proto_event(event: &Event, with_prev_kv: bool) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match event.kind {
            EventKind::Put => mvccpb::event::EventType::Put as i32,
            EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(to_proto_kv(event.kv())),
        prev_kv: if with_prev_kv {
            event.prev_kv().map(to_proto_kv)
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::KeyValue;

    #[test]
    fn shared_event_encoding_decodes_as_the_whole_response() {
        let event = Event::new(
            EventKind::Put,
            KeyValue {
                key: b"k".to_vec(),
                create_revision: 2,
                mod_revision: 5,
                version: 3,
                value: b"v".to_vec(),
                lease: 0,
            },
            Some(KeyValue {
                key: b"k".to_vec(),
                mod_revision: 4,
                ..KeyValue::default()
            }),
        );
        let header = ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 5,
            raft_term: 3,
        };
        let shared = encode_events(&[&event], true);
        let framed = frame_with_events(&header, 42, &shared);
        let expected = WatchResponse {
            header: Some(header),
            watch_id: 42,
            events: vec![to_proto_event(&event, true)],
            ..WatchResponse::default()
        };
        assert_eq!(framed, grpc::frame(&expected));
        let decoded = WatchResponse::decode(&framed[grpc::PREFIX_BYTES..]).unwrap();
        assert_eq!(decoded, expected);
    }
}

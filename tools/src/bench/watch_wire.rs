//! A WatchResponse read straight off the wire without building it: the
//! watch commands need only a few fields and each event's mod revision,
//! and at 10,000 watchers a full decode (keys, values, headers allocated
//! per event) would make the load generator the bottleneck.
//!
//! Protobuf wire format: each field is a varint tag (`number << 3 |
//! wire type`), then a varint (type 0), 8 bytes (1), a varint length and
//! that many bytes (2), or 4 bytes (5). Unknown fields are skipped.

/// The fields of a WatchResponse the watch commands act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchResponseHead {
    pub watch_id: i64,
    pub created: bool,
    pub canceled: bool,
    pub compact_revision: i64,
    pub cancel_reason: String,
}

/// WatchResponse field numbers.
const WATCH_ID: u64 = 2;
const CREATED: u64 = 3;
const CANCELED: u64 = 4;
const COMPACT_REVISION: u64 = 5;
const CANCEL_REASON: u64 = 6;
const EVENTS: u64 = 11;
/// Event.kv and KeyValue.mod_revision.
const EVENT_KV: u64 = 2;
const KV_MOD_REVISION: u64 = 3;

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_LEN: u64 = 2;
const WIRE_FIXED32: u64 = 5;

/// Reads `message`; appends each event's mod revision to `mod_revisions`
/// (which it does not clear).
pub fn scan_watch_response(
    message: &[u8],
    mod_revisions: &mut Vec<i64>,
) -> Result<WatchResponseHead, String> {
    let mut head = WatchResponseHead::default();
    let mut reader = Reader { bytes: message };
    while let Some((field, wire)) = reader.tag()? {
        match (field, wire) {
            (WATCH_ID, WIRE_VARINT) => head.watch_id = reader.varint()? as i64,
            (CREATED, WIRE_VARINT) => head.created = reader.varint()? != 0,
            (CANCELED, WIRE_VARINT) => head.canceled = reader.varint()? != 0,
            (COMPACT_REVISION, WIRE_VARINT) => head.compact_revision = reader.varint()? as i64,
            (CANCEL_REASON, WIRE_LEN) => {
                head.cancel_reason = String::from_utf8_lossy(reader.bytes()?).into_owned()
            }
            (EVENTS, WIRE_LEN) => mod_revisions.push(event_mod_revision(reader.bytes()?)?),
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(head)
}

fn event_mod_revision(event: &[u8]) -> Result<i64, String> {
    let mut reader = Reader { bytes: event };
    let mut mod_revision = 0;
    while let Some((field, wire)) = reader.tag()? {
        if (field, wire) == (EVENT_KV, WIRE_LEN) {
            let mut kv = Reader {
                bytes: reader.bytes()?,
            };
            while let Some((field, wire)) = kv.tag()? {
                if (field, wire) == (KV_MOD_REVISION, WIRE_VARINT) {
                    mod_revision = kv.varint()? as i64;
                } else {
                    kv.skip(wire)?;
                }
            }
        } else {
            reader.skip(wire)?;
        }
    }
    Ok(mod_revision)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn tag(&mut self) -> Result<Option<(u64, u64)>, String> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        Ok(Some((tag >> 3, tag & 7)))
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err("watch response: bad varint".into())
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
        self.take(len)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.bytes.len() {
            return Err("watch response: field runs past the message".into());
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_LEN => self.bytes().map(drop),
            WIRE_FIXED32 => self.take(4).map(drop),
            other => Err(format!("watch response: wire type {other} unsupported")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_proto::etcdserverpb as pb;
    use keel_proto::mvccpb;
    use prost::Message;

    #[test]
    fn reads_what_prost_writes() {
        let kv = |mod_revision| mvccpb::KeyValue {
            key: b"some key".to_vec(),
            create_revision: 2,
            mod_revision,
            version: 9,
            value: vec![7; 300],
            lease: 5,
        };
        let response = pb::WatchResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 1 << 40,
                raft_term: 3,
            }),
            watch_id: 77,
            created: true,
            canceled: true,
            compact_revision: 12,
            cancel_reason: "why".into(),
            fragment: true,
            events: vec![
                mvccpb::Event {
                    r#type: 0,
                    kv: Some(kv(1 << 33)),
                    prev_kv: Some(kv(4)),
                },
                mvccpb::Event {
                    r#type: 1,
                    kv: Some(kv(5)),
                    prev_kv: None,
                },
            ],
        };
        let mut mod_revisions = Vec::new();
        let head = scan_watch_response(&response.encode_to_vec(), &mut mod_revisions).unwrap();
        assert_eq!(
            head,
            WatchResponseHead {
                watch_id: 77,
                created: true,
                canceled: true,
                compact_revision: 12,
                cancel_reason: "why".into(),
            }
        );
        assert_eq!(mod_revisions, vec![1 << 33, 5]);
        let bytes = response.encode_to_vec();
        assert!(scan_watch_response(&bytes[..bytes.len() - 3], &mut mod_revisions).is_err());
    }
}

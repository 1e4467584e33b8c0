//! Raft's durable state as WAL records.
//!
//! The engine's WAL stores opaque `(kind, index, payload)` records; this file
//! says what keel puts in them. Layout (little-endian, fixed widths):
//!
//! | kind | index | payload |
//! | --- | --- | --- |
//! | `RECORD_ENTRY` (1) | entry index | `term u64, entry_type u8, data_len u32, data, context_len u32, context` |
//! | `RECORD_HARD_STATE` (2) | last entry index at the time | `term u64, vote u64, commit u64` |

use raft::eraftpb::{Entry, EntryType, HardState};

pub const RECORD_ENTRY: u8 = 1;
pub const RECORD_HARD_STATE: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    Truncated { kind: u8, index: u64 },
    UnknownEntryType { index: u64, entry_type: u8 },
    UnknownKind { kind: u8, index: u64 },
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::Truncated { kind, index } => {
                write!(f, "WAL record kind {kind} at index {index} is truncated")
            }
            CodecError::UnknownEntryType { index, entry_type } => {
                write!(f, "WAL entry {index} has unknown entry type {entry_type}")
            }
            CodecError::UnknownKind { kind, index } => {
                write!(f, "WAL record at index {index} has unknown kind {kind}")
            }
        }
    }
}

pub fn encode_entry(entry: &Entry, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(8 + 1 + 4 + entry.data.len() + 4 + entry.context.len());
    out.extend_from_slice(&entry.term.to_le_bytes());
    out.push(entry_type_code(entry.entry_type));
    out.extend_from_slice(&(entry.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&entry.data);
    out.extend_from_slice(&(entry.context.len() as u32).to_le_bytes());
    out.extend_from_slice(&entry.context);
}

pub fn decode_entry(index: u64, payload: &[u8]) -> Result<Entry, CodecError> {
    let truncated = CodecError::Truncated {
        kind: RECORD_ENTRY,
        index,
    };
    let mut reader = Reader { bytes: payload };
    let term = reader.u64().ok_or(truncated.clone())?;
    let type_code = reader.u8().ok_or(truncated.clone())?;
    let data_len = reader.u32().ok_or(truncated.clone())? as usize;
    let data = reader.take(data_len).ok_or(truncated.clone())?;
    let context_len = reader.u32().ok_or(truncated.clone())? as usize;
    let context = reader.take(context_len).ok_or(truncated)?;
    let entry_type = match type_code {
        0 => EntryType::EntryNormal,
        1 => EntryType::EntryConfChange,
        2 => EntryType::EntryConfChangeV2,
        other => {
            return Err(CodecError::UnknownEntryType {
                index,
                entry_type: other,
            })
        }
    };
    Ok(Entry {
        index,
        term,
        entry_type,
        data: bytes::Bytes::copy_from_slice(data),
        context: bytes::Bytes::copy_from_slice(context),
        ..Default::default()
    })
}

pub fn encode_hard_state(hard_state: &HardState) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[0..8].copy_from_slice(&hard_state.term.to_le_bytes());
    out[8..16].copy_from_slice(&hard_state.vote.to_le_bytes());
    out[16..24].copy_from_slice(&hard_state.commit.to_le_bytes());
    out
}

pub fn decode_hard_state(index: u64, payload: &[u8]) -> Result<HardState, CodecError> {
    let truncated = CodecError::Truncated {
        kind: RECORD_HARD_STATE,
        index,
    };
    let mut reader = Reader { bytes: payload };
    Ok(HardState {
        term: reader.u64().ok_or(truncated.clone())?,
        vote: reader.u64().ok_or(truncated.clone())?,
        commit: reader.u64().ok_or(truncated)?,
        ..Default::default()
    })
}

fn entry_type_code(entry_type: EntryType) -> u8 {
    match entry_type {
        EntryType::EntryNormal => 0,
        EntryType::EntryConfChange => 1,
        EntryType::EntryConfChangeV2 => 2,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < len {
            return None;
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips() {
        let entry = Entry {
            index: 42,
            term: 7,
            entry_type: EntryType::EntryConfChange,
            data: bytes::Bytes::from_static(b"payload"),
            context: bytes::Bytes::from_static(b"ctx"),
            ..Default::default()
        };
        let mut buf = Vec::new();
        encode_entry(&entry, &mut buf);
        let decoded = decode_entry(42, &buf).unwrap();
        assert_eq!(decoded.term, 7);
        assert_eq!(decoded.index, 42);
        assert_eq!(decoded.entry_type, EntryType::EntryConfChange);
        assert_eq!(&decoded.data[..], b"payload");
        assert_eq!(&decoded.context[..], b"ctx");
        assert!(decode_entry(42, &buf[..buf.len() - 1]).is_err());
    }

    #[test]
    fn hard_state_round_trips() {
        let hard_state = HardState {
            term: 3,
            vote: 1,
            commit: 99,
            ..Default::default()
        };
        let buf = encode_hard_state(&hard_state);
        assert_eq!(decode_hard_state(0, &buf).unwrap(), hard_state);
        assert!(decode_hard_state(0, &buf[..20]).is_err());
    }
}

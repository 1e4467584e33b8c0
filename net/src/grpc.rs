//! gRPC over HTTP/2: message framing and status.
//!
//! A gRPC message is a 5-byte prefix (compressed flag, u32 big-endian length)
//! followed by the protobuf bytes. A call ends with trailers carrying
//! `grpc-status` and, on error, a percent-encoded `grpc-message`.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};

pub const PREFIX_BYTES: usize = 5;

/// gRPC status codes keel returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Canceled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    FailedPrecondition = 9,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    ResourceExhausted = 8,
}

/// A non-OK call outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// The trailers (or trailers-only headers) that carry this status.
    pub fn to_headers(&self, headers: &mut HeaderMap) {
        headers.insert("grpc-status", HeaderValue::from(self.code as u8 as u16));
        if !self.message.is_empty() {
            let encoded = percent_encode(&self.message);
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                headers.insert("grpc-message", value);
            }
        }
    }
}

/// Why a request body is not one gRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its prefix says, or no prefix at all.
    Truncated,
    /// More bytes than one message.
    TrailingBytes,
    /// The compressed flag is set; keel negotiates no compression.
    Compressed,
    /// Larger than the receive limit: (message bytes, limit).
    TooLarge(usize, usize),
}

impl FrameError {
    pub fn to_status(&self) -> Status {
        match self {
            FrameError::Truncated | FrameError::TrailingBytes => Status::new(
                Code::Internal,
                "grpc: failed to unmarshal the received message",
            ),
            FrameError::Compressed => Status::new(
                Code::Unimplemented,
                "grpc: Decompressor is not installed for grpc-encoding \"identity\"",
            ),
            FrameError::TooLarge(size, limit) => Status::new(
                Code::ResourceExhausted,
                format!("grpc: received message larger than max ({size} vs. {limit})"),
            ),
        }
    }
}

/// Reads the length a message's prefix announces, once 5 bytes are in.
pub fn announced_len(prefix: &[u8]) -> Option<usize> {
    if prefix.len() < PREFIX_BYTES {
        return None;
    }
    Some(u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize)
}

/// The one message in `body`, which must hold exactly one framed message.
pub fn unframe(body: &[u8], limit: usize) -> Result<&[u8], FrameError> {
    let len = announced_len(body).ok_or(FrameError::Truncated)?;
    if body[0] != 0 {
        return Err(FrameError::Compressed);
    }
    if len > limit {
        return Err(FrameError::TooLarge(len, limit));
    }
    let end = PREFIX_BYTES + len;
    match body.len().cmp(&end) {
        std::cmp::Ordering::Less => Err(FrameError::Truncated),
        std::cmp::Ordering::Greater => Err(FrameError::TrailingBytes),
        std::cmp::Ordering::Equal => Ok(&body[PREFIX_BYTES..end]),
    }
}

/// Encodes `message` with its gRPC prefix into one buffer.
pub fn frame<M: prost::Message>(message: &M) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(PREFIX_BYTES + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    message.encode(&mut buf).expect("buffer has the capacity");
    debug_assert_eq!(buf.len(), PREFIX_BYTES + len);
    buf.freeze()
}

/// Percent-encodes as the gRPC spec asks for `grpc-message`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unframe_accepts_exactly_one_message() {
        let body = [0u8, 0, 0, 0, 3, b'a', b'b', b'c'];
        assert_eq!(unframe(&body, 10).unwrap(), b"abc");
        assert_eq!(unframe(&body[..7], 10), Err(FrameError::Truncated));
        assert_eq!(unframe(&body[..3], 10), Err(FrameError::Truncated));
        let mut longer = body.to_vec();
        longer.push(0);
        assert_eq!(unframe(&longer, 10), Err(FrameError::TrailingBytes));
        assert_eq!(unframe(&body, 2), Err(FrameError::TooLarge(3, 2)));
        let compressed = [1u8, 0, 0, 0, 0];
        assert_eq!(unframe(&compressed, 10), Err(FrameError::Compressed));
    }

    #[test]
    fn frame_prefixes_length() {
        let message = keel_proto::etcdserverpb::RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        };
        let framed = frame(&message);
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 3]);
        assert_eq!(unframe(&framed, 100).unwrap(), &framed[5..]);
    }

    #[test]
    fn status_message_is_percent_encoded() {
        let mut headers = HeaderMap::new();
        Status::new(Code::InvalidArgument, "bad 100%\n").to_headers(&mut headers);
        assert_eq!(headers["grpc-status"], "3");
        assert_eq!(headers["grpc-message"], "bad 100%25%0A");
    }
}

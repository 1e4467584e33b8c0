//! Streaming gRPC calls: a reader that yields the request's messages one by
//! one as they arrive, and a writer that sends framed responses under
//! HTTP/2 flow control and ends the call with trailers.
//!
//! The writer waits for send capacity before each message, so at most
//! `STREAM_SEND_BUFFER_BYTES_MAX` (plus one message) is ever buffered for a
//! slow client; whoever feeds the writer sees that wait as back-pressure.

use std::future::poll_fn;

use bytes::{Buf, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue};

use crate::grpc::{self, FrameError, Status};

/// Send capacity a message waits for before it is handed to h2 (or its
/// whole length, if smaller). Below HTTP/2's default window (65,535
/// bytes), so a peer that never enlarges its window still gets data.
pub const SEND_CAPACITY_WAIT_BYTES: usize = 16 << 10;

/// The messages of one call's request body.
pub struct MessageReader {
    body: RecvStream,
    buffer: BytesMut,
    limit_bytes: usize,
}

/// What the next read found.
#[derive(Debug)]
pub enum Incoming {
    /// One message (without its prefix).
    Message(Bytes),
    /// The client half-closed its side: no more messages.
    End,
    /// The client reset the stream or the connection went away.
    Gone,
}

impl MessageReader {
    pub fn new(body: RecvStream, limit_bytes: usize) -> MessageReader {
        MessageReader {
            body,
            buffer: BytesMut::new(),
            limit_bytes,
        }
    }

    /// The next message; an over-limit or compressed message is an error
    /// status the call must end with.
    pub async fn next(&mut self) -> Result<Incoming, Status> {
        loop {
            if let Some(len) = grpc::announced_len(&self.buffer) {
                if self.buffer[0] != 0 {
                    return Err(FrameError::Compressed.to_status());
                }
                if len > self.limit_bytes {
                    return Err(FrameError::TooLarge(len, self.limit_bytes).to_status());
                }
                if self.buffer.len() >= grpc::PREFIX_BYTES + len {
                    self.buffer.advance(grpc::PREFIX_BYTES);
                    return Ok(Incoming::Message(self.buffer.split_to(len).freeze()));
                }
            }
            match self.body.data().await {
                Some(Ok(chunk)) => {
                    let _ = self.body.flow_control().release_capacity(chunk.len());
                    self.buffer.extend_from_slice(&chunk);
                }
                Some(Err(_)) => return Ok(Incoming::Gone),
                None if self.buffer.is_empty() => return Ok(Incoming::End),
                None => return Err(FrameError::Truncated.to_status()),
            }
        }
    }
}

/// The client is gone; nothing more can be sent on the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// The response side of a streaming call.
pub struct MessageWriter {
    stream: SendStream<Bytes>,
}

impl MessageWriter {
    /// Sends the response headers.
    pub fn start(mut respond: SendResponse<Bytes>) -> Result<MessageWriter, Gone> {
        let stream = respond
            .send_response(grpc_response(), false)
            .map_err(|_| Gone)?;
        Ok(MessageWriter { stream })
    }

    /// Sends one framed message once the stream has room for it.
    pub async fn send(&mut self, framed: Bytes) -> Result<(), Gone> {
        let wanted = framed.len().min(SEND_CAPACITY_WAIT_BYTES);
        self.stream.reserve_capacity(framed.len());
        while self.stream.capacity() < wanted {
            match poll_fn(|cx| self.stream.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(Gone),
            }
        }
        self.stream.send_data(framed, false).map_err(|_| Gone)
    }

    /// Resolves when the client resets the stream (or the connection dies).
    pub async fn reset(&mut self) {
        let _ = poll_fn(|cx| self.stream.poll_reset(cx)).await;
    }

    /// Ends the call: OK, or with `status`.
    pub fn finish(mut self, status: Option<Status>) {
        let mut trailers = HeaderMap::with_capacity(2);
        match status {
            None => {
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
            }
            Some(status) => status.to_headers(&mut trailers),
        }
        let _ = self.stream.send_trailers(trailers);
    }
}

/// The headers every gRPC response starts with.
pub fn grpc_response() -> http::Response<()> {
    let mut response = http::Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// Ends a call that never started its response with a trailers-only status.
pub fn refuse(mut respond: SendResponse<Bytes>, status: &Status) {
    let mut response = grpc_response();
    status.to_headers(response.headers_mut());
    let _ = respond.send_response(response, true);
}

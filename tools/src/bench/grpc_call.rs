//! keel-bench's gRPC over HTTP/2: one unary call, and taking framed
//! messages off a streaming response (connecting is `dial.rs`).

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderValue, Request};
use keel_net::grpc;
use prost::Message;

use crate::endpoint::Endpoint;

/// How long one request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response message keel-bench accepts.
pub(crate) const RESPONSE_BYTES_MAX: usize = 64 << 20;

/// The token `--user` got from Authenticate, sent with every request.
static AUTH_TOKEN: OnceLock<String> = OnceLock::new();

/// Sends `token` (etcd's `token` metadata) with every request from now on.
pub(crate) fn set_auth_token(token: String) {
    let _ = AUTH_TOKEN.set(token);
}

/// The one message of a unary response body.
pub(crate) fn decode_one<M: Message + Default>(body: &[u8]) -> Result<M, String> {
    let message = grpc::unframe(body, RESPONSE_BYTES_MAX)
        .map_err(|error| format!("bad response framing: {error:?}"))?;
    M::decode(message).map_err(|error| format!("bad response: {error}"))
}

/// Takes one whole gRPC message off the front of `buffer`, if there is one.
pub(crate) fn next_message(buffer: &mut BytesMut) -> Result<Option<Bytes>, String> {
    let Some(len) = grpc::announced_len(buffer) else {
        return Ok(None);
    };
    if buffer[0] != 0 {
        return Err("compressed response; keel-bench asks for none".into());
    }
    if len > RESPONSE_BYTES_MAX {
        return Err(format!("response message of {len} bytes is too large"));
    }
    if buffer.len() < grpc::PREFIX_BYTES + len {
        return Ok(None);
    }
    buffer.advance(grpc::PREFIX_BYTES);
    Ok(Some(buffer.split_to(len).freeze()))
}

pub(crate) fn grpc_request(uri: &http::Uri) -> Request<()> {
    let mut request = Request::builder()
        .method("POST")
        .uri(uri.clone())
        .body(())
        .expect("valid request");
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    if let Some(token) = AUTH_TOKEN.get() {
        if let Ok(value) = HeaderValue::from_str(token) {
            headers.insert("token", value);
        }
    }
    request
}

/// One request message, then the response's messages (framed, as sent)
/// and its status. A stream method (LeaseKeepAlive) works the same way: the
/// request half-closes after its one message, as etcd's KeepAliveOnce.
pub(crate) async fn call(
    sender: &mut SendRequest<Bytes>,
    uri: &http::Uri,
    body: Bytes,
) -> Result<Bytes, String> {
    let exchange = async {
        let ready = sender
            .clone()
            .ready()
            .await
            .map_err(|error| format!("connection: {error}"))?;
        *sender = ready;
        let (response, mut stream) = sender
            .send_request(grpc_request(uri), false)
            .map_err(|error| format!("send: {error}"))?;
        stream
            .send_data(body, true)
            .map_err(|error| format!("send: {error}"))?;
        let response = response
            .await
            .map_err(|error| format!("response: {error}"))?;
        if let Some(status) = grpc_status(response.headers()) {
            return status.map(|()| Bytes::new());
        }
        let mut body = response.into_body();
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|error| format!("response body: {error}"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|error| format!("trailers: {error}"))?;
        trailers
            .as_ref()
            .and_then(grpc_status)
            .unwrap_or_else(|| Err("response without grpc-status".into()))
            .map(|()| data.freeze())
    };
    match futures_lite::future::or(async { Some(exchange.await) }, async {
        glommio::timer::sleep(REQUEST_TIMEOUT).await;
        None
    })
    .await
    {
        Some(result) => result,
        None => Err("request timed out".into()),
    }
}

/// One unary call of `path` on `endpoint`, decoded.
pub(crate) async fn unary<M: Message + Default>(
    sender: &mut SendRequest<Bytes>,
    endpoint: &Endpoint,
    path: &str,
    request: &impl Message,
) -> Result<M, String> {
    let response = call(sender, &endpoint.uri(path), grpc::frame(request)).await?;
    decode_one(&response)
}

pub(crate) fn grpc_status(headers: &http::HeaderMap) -> Option<Result<(), String>> {
    let status = headers.get("grpc-status")?.to_str().unwrap_or("2");
    if status == "0" {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("");
    Some(Err(format!("grpc-status {status}: {message}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_split_off_a_stream() {
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(&[0, 0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 3, b'a']);
        assert_eq!(next_message(&mut buffer).unwrap().unwrap(), &b"hi"[..]);
        assert_eq!(next_message(&mut buffer).unwrap(), None);
        buffer.extend_from_slice(b"bc");
        assert_eq!(next_message(&mut buffer).unwrap().unwrap(), &b"abc"[..]);
        assert!(buffer.is_empty());
        buffer.extend_from_slice(&[1, 0, 0, 0, 0]);
        assert!(next_message(&mut buffer).is_err());
    }
}

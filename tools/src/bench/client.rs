//! One load-generator executor: its share of connections and clients, each
//! client issuing requests back to back until the shared total is reached.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::net::TcpStream;
use h2::client::SendRequest;
use http::{HeaderValue, Request};
use keel_net::grpc;
use keel_net::io_compat::TokioIo;

use crate::args::Command;
use crate::report::Report;

/// How long one request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The part of the run one executor drives.
pub struct Share {
    pub endpoints: Vec<SocketAddr>,
    pub conns: usize,
    pub clients: usize,
    pub first_conn: usize,
    pub command: Command,
    /// Requests issued so far, across every executor.
    pub issued: Arc<AtomicUsize>,
    /// Set when the run must stop early (Ctrl-C, connection loss).
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

pub async fn run_share(share: Share) -> Result<Report, String> {
    let mut senders = Vec::with_capacity(share.conns);
    for conn in 0..share.conns {
        let addr = share.endpoints[(share.first_conn + conn) % share.endpoints.len()];
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
        stream.set_nodelay(true).ok();
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(1 << 20)
            .initial_connection_window_size(8 << 20);
        let (sender, connection) = builder
            .handshake::<_, Bytes>(TokioIo(stream))
            .await
            .map_err(|error| format!("HTTP/2 handshake with {addr} failed: {error}"))?;
        glommio::spawn_local(async move {
            let _ = connection.await;
        })
        .detach();
        senders.push((addr, sender));
    }
    let report = Rc::new(RefCell::new(Report::default()));
    let value = Rc::new(random_bytes(match &share.command {
        Command::Put { val_size, .. } => *val_size,
        Command::Range { .. } => 0,
    }));
    let share = Rc::new(share);
    let in_flight = Rc::new(Cell::new(0usize));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..share.clients {
        let (addr, sender) = senders[client % senders.len()].clone();
        let share = share.clone();
        let report = report.clone();
        let value = value.clone();
        let in_flight = in_flight.clone();
        tasks.push(glommio::spawn_local(async move {
            let path = match &share.command {
                Command::Put { .. } => "/etcdserverpb.KV/Put",
                Command::Range { .. } => "/etcdserverpb.KV/Range",
            };
            let uri: http::Uri = format!("http://{addr}{path}").parse().expect("valid uri");
            let mut sender = sender;
            loop {
                if share.stop.load(Ordering::Relaxed) {
                    break;
                }
                let index = share.issued.fetch_add(1, Ordering::Relaxed);
                if index >= share.command.total() {
                    break;
                }
                let body = request_body(&share.command, index, &value);
                in_flight.set(in_flight.get() + 1);
                let begun = Instant::now();
                let outcome = call(&mut sender, &uri, body).await;
                in_flight.set(in_flight.get() - 1);
                let mut report = report.borrow_mut();
                match outcome {
                    Ok(()) => report.latencies_us.push(begun.elapsed().as_micros() as u64),
                    Err(message) => *report.errors.entry(message).or_insert(0) += 1,
                }
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    let mut report = Rc::try_unwrap(report)
        .map(RefCell::into_inner)
        .unwrap_or_else(|shared| shared.borrow().clone());
    report.elapsed = started.elapsed();
    Ok(report)
}

fn request_body(command: &Command, index: usize, value: &[u8]) -> Bytes {
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
            let mut key = vec![0u8; *key_size];
            put_varint(&mut key, number as i64);
            grpc::frame(&keel_proto::etcdserverpb::PutRequest {
                key,
                value: value.to_vec(),
                ..Default::default()
            })
        }
        Command::Range {
            key,
            end,
            serializable,
            limit,
            ..
        } => grpc::frame(&keel_proto::etcdserverpb::RangeRequest {
            key: key.clone(),
            range_end: end.clone(),
            serializable: *serializable,
            limit: *limit,
            ..Default::default()
        }),
    }
}

async fn call(sender: &mut SendRequest<Bytes>, uri: &http::Uri, body: Bytes) -> Result<(), String> {
    let exchange = async {
        let ready = sender
            .clone()
            .ready()
            .await
            .map_err(|error| format!("connection: {error}"))?;
        *sender = ready;
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
        let (response, mut stream) = sender
            .send_request(request, false)
            .map_err(|error| format!("send: {error}"))?;
        stream
            .send_data(body, true)
            .map_err(|error| format!("send: {error}"))?;
        let response = response
            .await
            .map_err(|error| format!("response: {error}"))?;
        if let Some(status) = grpc_status(response.headers()) {
            return status;
        }
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|error| format!("response body: {error}"))?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|error| format!("trailers: {error}"))?;
        trailers
            .as_ref()
            .and_then(grpc_status)
            .unwrap_or_else(|| Err("response without grpc-status".into()))
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

fn grpc_status(headers: &http::HeaderMap) -> Option<Result<(), String>> {
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

/// Go's `binary.PutVarint` (zig-zag), as etcd's benchmark encodes keys.
fn put_varint(buf: &mut [u8], value: i64) -> usize {
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

fn pseudo_random(index: usize) -> usize {
    // splitmix64: deterministic, uniform enough for key choice.
    let mut z = (index as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as usize
}

fn random_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + (pseudo_random(i) % 26) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! The plain-HTTP endpoints etcd serves on its client port next to gRPC:
//! `GET /health` (etcd's checks: alarms, leader, then a read), `/metrics`
//! (Prometheus text), `/version`. A connection whose first bytes are not
//! the HTTP/2 preface is read as one HTTP/1.1 request, answered, and
//! closed.

use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use keel_proto::etcdserverpb::{AlarmType, RangeRequest};

use crate::kv;
use crate::maintenance::ETCD_VERSION;
use crate::metrics;
use crate::shard::Shard;

/// The most bytes of request line and headers read.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 << 10;

pub async fn serve(mut stream: TcpStream, head: Vec<u8>, shard: Rc<Shard>) {
    let mut request = head;
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        if request.len() >= REQUEST_HEAD_BYTES_MAX {
            return respond(&mut stream, 431, "text/plain", "request header too large\n").await;
        }
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let line = request
        .split(|&b| b == b'\n')
        .next()
        .map(|line| String::from_utf8_lossy(line).trim_end().to_string())
        .unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, 405, "text/plain", "Method Not Allowed\n").await;
    }
    match path {
        "/health" | "/livez" | "/readyz" => {
            let (healthy, reason) = health(&shard, query).await;
            let body = format!("{{\"health\":\"{healthy}\",\"reason\":\"{reason}\"}}");
            let code = if healthy { 200 } else { 503 };
            respond(&mut stream, code, "application/json", &body).await
        }
        "/metrics" => {
            let page = metrics::render(&shard.all_metrics, &shard.status);
            respond(&mut stream, 200, "text/plain; version=0.0.4", &page).await
        }
        "/version" => {
            let body = format!(
                "{{\"etcdserver\":\"{ETCD_VERSION}\",\"etcdcluster\":\"{}.0\"}}",
                &ETCD_VERSION[..ETCD_VERSION.rfind('.').unwrap_or(ETCD_VERSION.len())]
            );
            respond(&mut stream, 200, "application/json", &body).await
        }
        _ => respond(&mut stream, 404, "text/plain", "404 page not found\n").await,
    }
}

/// etcd's `checkHealth`: a raised alarm (unless `exclude`d), no leader, or
/// a failing read (linearizable unless `serializable=true`) is unhealthy.
async fn health(shard: &Shard, query: &str) -> (bool, String) {
    let excluded: Vec<&str> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("exclude="))
        .collect();
    for alarm in shard.status.alarms.load().iter() {
        let name = AlarmType::try_from(alarm.alarm)
            .map(|kind| kind.as_str_name())
            .unwrap_or("UNKNOWN");
        if !excluded.contains(&name) {
            return (false, format!("ALARM {name}"));
        }
    }
    if shard
        .status
        .leader_id
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        return (false, "RAFT NO LEADER".to_string());
    }
    let serializable = query.split('&').any(|pair| pair == "serializable=true");
    let probe = RangeRequest {
        key: b"health".to_vec(),
        keys_only: true,
        limit: 1,
        serializable,
        ..RangeRequest::default()
    };
    match kv::range(shard, probe).await {
        Ok(_) => (true, String::new()),
        Err(error) => (
            false,
            format!("QGET ERROR:{}", crate::status::to_status(&error).message),
        ),
    }
}

async fn respond(stream: &mut TcpStream, code: u16, content_type: &str, body: &str) {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.flush().await;
    let _ = stream.close().await;
}

//! Guards the plain-HTTP endpoints etcd serves on the client port beside
//! gRPC, against the real `keel` binary: `/health` (healthy, then 503
//! with etcd's reason under a NOSPACE alarm, and `?exclude=NOSPACE`),
//! `/metrics` (Prometheus text with etcd's metric names, counting what the
//! test did) and `/version`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{client, runtime, Keel};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType, WatchOptions};

/// One HTTP/1.1 GET; returns (status code, body).
fn get(port: u16, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body.len(), length);
    (code, body.to_string())
}

fn metric(page: &str, line_start: &str) -> f64 {
    page.lines()
        .find(|line| line.starts_with(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in\n{page}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn health_metrics_and_version_beside_grpc() {
    let keel = Keel::start("http-endpoints");
    let port = keel.port;
    assert_eq!(
        get(port, "/health"),
        (200, "{\"health\":\"true\",\"reason\":\"\"}".to_string())
    );
    assert_eq!(get(port, "/health?serializable=true").0, 200);
    let (code, version) = get(port, "/version");
    assert_eq!(code, 200);
    assert!(version.contains("\"etcdserver\":\"3.5.13\""), "{version}");
    assert_eq!(get(port, "/nope").0, 404);

    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        for i in 0..25 {
            client.put(format!("m{i}"), "v", None).await.unwrap();
        }
        assert!(client.put("", "v", None).await.is_err());
        let _watch = client
            .watch("m", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;

        let (code, page) = get(port, "/metrics");
        assert_eq!(code, 200);
        let put = "grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"";
        assert_eq!(
            metric(
                &page,
                &format!("grpc_server_handled_total{{grpc_code=\"OK\",{put}}}")
            ),
            25.0
        );
        assert_eq!(
            metric(
                &page,
                &format!("grpc_server_handled_total{{grpc_code=\"InvalidArgument\",{put}}}")
            ),
            1.0
        );
        assert_eq!(
            metric(
                &page,
                &format!("grpc_server_handling_seconds_count{{{put}}}")
            ),
            26.0
        );
        assert!(metric(&page, "etcd_disk_wal_fsync_duration_seconds_count ") >= 25.0);
        assert_eq!(metric(&page, "etcd_debugging_mvcc_watcher_total "), 1.0);
        assert_eq!(metric(&page, "etcd_server_has_leader "), 1.0);
        assert!(metric(&page, "etcd_server_proposals_applied_total ") >= 25.0);
        assert!(metric(&page, "etcd_mvcc_db_total_size_in_bytes ") > 0.0);

        let me = client.status().await.unwrap().header().unwrap().member_id();
        let mut options = AlarmOptions::new();
        options.with_member(me);
        client
            .alarm(AlarmAction::Activate, AlarmType::Nospace, Some(options))
            .await
            .unwrap();
        assert_eq!(
            get(port, "/health"),
            (
                503,
                "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}".to_string()
            )
        );
        assert_eq!(get(port, "/health?exclude=NOSPACE").0, 200);
    });
}

#[test]
fn listen_metrics_urls_serve_http_endpoints_only() {
    let metrics_port = common::free_port();
    let keel = Keel::start_args(
        "http-metrics-url",
        common::free_port(),
        &[
            "--listen-metrics-urls",
            &format!("http://127.0.0.1:{metrics_port}"),
        ],
    );
    assert_eq!(get(metrics_port, "/health").0, 200);
    let (code, page) = get(metrics_port, "/metrics");
    assert_eq!(code, 200);
    assert!(page.contains("etcd_server_has_leader 1"), "{page}");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        client.put("k", "v", None).await.unwrap();
        // No gRPC on the metrics listener.
        let on_metrics = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            etcd_client::Client::connect([format!("http://127.0.0.1:{metrics_port}")], None),
        )
        .await;
        let served = match on_metrics {
            Ok(Ok(mut metrics_client)) => metrics_client.get("k", None).await.is_ok(),
            _ => false,
        };
        assert!(!served, "gRPC answered on a metrics URL");
    });
}

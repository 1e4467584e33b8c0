//! Guards etcd's answers to bad input: the same gRPC code and message for an
//! empty key, an oversized request, a garbage or truncated gRPC frame and an
//! unknown method; a clean close for a client that is not HTTP/2 or vanishes
//! mid-request. Through all of it the server keeps serving and loses nothing.

mod common;

use bytes::Bytes;
use common::{client, framed, grpc_error, raw_call, runtime, Keel};
use etcd_client::{GetOptions, PutOptions};
use tokio::io::AsyncWriteExt;

#[test]
fn bad_requests_get_etcds_status() {
    let keel = Keel::start("bad-input");
    runtime().block_on(async {
        let mut client = client(&keel.endpoint()).await;
        client.put("keep", "me", None).await.unwrap();

        let (code, message) = grpc_error(client.put("", "v", None).await.unwrap_err());
        assert_eq!(
            (code, message.as_str()),
            (3, "etcdserver: key is not provided")
        );
        let (code, message) = grpc_error(client.get("", None).await.unwrap_err());
        assert_eq!(
            (code, message.as_str()),
            (3, "etcdserver: key is not provided")
        );
        let (code, message) = grpc_error(client.delete("", None).await.unwrap_err());
        assert_eq!(
            (code, message.as_str()),
            (3, "etcdserver: key is not provided")
        );
        let (code, message) = grpc_error(
            client
                .put("k", "v", Some(PutOptions::new().with_ignore_value()))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (code, message.as_str()),
            (3, "etcdserver: value is provided")
        );

        // Over --max-request-bytes (1.5 MiB) but within gRPC's limit: etcd's own error.
        let big = vec![b'x'; 1536 * 1024 + 10];
        let (code, message) = grpc_error(client.put("big", big, None).await.unwrap_err());
        assert_eq!(
            (code, message.as_str()),
            (3, "etcdserver: request is too large")
        );
        // Over the gRPC receive limit (1.5 MiB + 512 KiB): grpc-go's error.
        let huge = vec![b'x'; 3 << 20];
        let (code, message) = grpc_error(client.put("huge", huge, None).await.unwrap_err());
        assert_eq!(code, 8, "{message}");
        assert!(
            message.starts_with("grpc: received message larger than max"),
            "{message}"
        );
        // Just under the limit works.
        client
            .put("fits", vec![b'y'; 1024 * 1024], None)
            .await
            .unwrap();

        // Garbage protobuf inside a well-formed frame.
        let (status, message, _) =
            raw_call(keel.port, "/etcdserverpb.KV/Put", framed(&[0xff; 12])).await;
        assert_eq!(status, "13");
        assert!(
            message.starts_with("grpc: error unmarshalling request"),
            "{message}"
        );
        // A frame shorter than its prefix says.
        let mut truncated = framed(b"abc");
        truncated[4] = 100;
        let (status, _, _) = raw_call(keel.port, "/etcdserverpb.KV/Range", truncated).await;
        assert_eq!(status, "13");
        // Unknown method and unknown service.
        let (status, message, _) = raw_call(keel.port, "/etcdserverpb.KV/Nope", framed(&[])).await;
        assert_eq!(
            (status.as_str(), message.as_str()),
            ("12", "unknown method Nope for service etcdserverpb.KV")
        );
        let (status, message, _) = raw_call(keel.port, "/no.Such/Thing", framed(&[])).await;
        assert_eq!(
            (status.as_str(), message.as_str()),
            ("12", "unknown service no.Such")
        );

        // Not HTTP/2 at all: the server closes the connection.
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", keel.port))
            .await
            .unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            use tokio::io::AsyncReadExt;
            tcp.read_to_end(&mut sink).await
        })
        .await;
        assert!(closed.is_ok(), "server kept a non-HTTP/2 connection open");

        // A client that vanishes mid-request: headers and half a message, then gone.
        for _ in 0..20 {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", keel.port))
                .await
                .unwrap();
            let (mut sender, connection) = h2::client::handshake(tcp).await.unwrap();
            let driver = tokio::spawn(connection);
            let request = http::Request::builder()
                .method("POST")
                .uri(format!(
                    "http://127.0.0.1:{}/etcdserverpb.KV/Put",
                    keel.port
                ))
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let (_response, mut stream) = sender.send_request(request, false).unwrap();
            stream
                .send_data(
                    Bytes::from(framed(b"\x0a\x03abc\x12\x05value")[..8].to_vec()),
                    false,
                )
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            driver.abort();
        }

        // Everyone else is still served and nothing was lost.
        let mut client = common::client(&keel.endpoint()).await;
        let kept = client.get("keep", None).await.unwrap();
        assert_eq!(kept.kvs()[0].value(), b"me");
        let all = client
            .get("", Some(GetOptions::new().with_all_keys().with_keys_only()))
            .await
            .unwrap();
        let keys: Vec<_> = all.kvs().iter().map(|kv| kv.key().to_vec()).collect();
        assert_eq!(keys, vec![b"fits".to_vec(), b"keep".to_vec()]);
        client.put("after", "ok", None).await.unwrap();
    });
}

//! Maintenance.Snapshot: streams a consistent copy of the backend while
//! reads and writes go on.
//!
//! The current read view is written out as a fresh, compact tree file (on
//! a helper thread, so the shard core keeps serving), then streamed in
//! chunks of [`SNAPSHOT_CHUNK_BYTES`] and followed, as etcd does, by one
//! last message holding the SHA-256 of everything sent, which a restore
//! checks. The file is keel's backend format (not bbolt's): a keel member
//! restores from it, etcd's tools cannot read it.

use std::io::Read;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use keel_proto::etcdserverpb::SnapshotResponse;
use sha2::{Digest, Sha256};

use crate::grpc::{self, Code, Status};
use crate::maintenance::ETCD_VERSION;
use crate::shard::Shard;
use crate::stream::MessageWriter;

/// Bytes of the backend per message (etcd: 32 KiB).
pub const SNAPSHOT_CHUNK_BYTES: usize = 32 << 10;

static SNAPSHOT_SEQUENCE: AtomicU64 = AtomicU64::new(0);

pub async fn serve_snapshot(shard: Rc<Shard>, _body: RecvStream, respond: SendResponse<Bytes>) {
    let Ok(mut writer) = MessageWriter::start(respond) else {
        return;
    };
    let view = shard.reader.view();
    let revision = view.revision();
    let path = shard.config.snapshot_dir.join(format!(
        "keel-snapshot-{}-{}.tmp",
        std::process::id(),
        SNAPSHOT_SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let (done_tx, done_rx) = futures_channel::oneshot::channel();
    let thread_path = path.clone();
    let spawned = std::thread::Builder::new()
        .name("keel-snapshot".into())
        .spawn(move || {
            let _ = done_tx.send(view.write_tree_file(&thread_path));
        });
    let written = match spawned {
        Ok(_) => done_rx.await,
        Err(_) => return writer.finish(Some(internal("cannot start the snapshot thread"))),
    };
    let size_bytes = match written {
        Ok(Ok(size_bytes)) => size_bytes,
        Ok(Err(error)) => {
            let _ = std::fs::remove_file(&path);
            return writer.finish(Some(internal(&format!("snapshot failed: {error}"))));
        }
        Err(_) => return writer.finish(Some(internal("snapshot thread vanished"))),
    };
    let outcome = stream_file(&shard, &mut writer, &path, size_bytes, revision).await;
    let _ = std::fs::remove_file(&path);
    match outcome {
        Ok(()) => writer.finish(None),
        Err(Some(status)) => writer.finish(Some(status)),
        Err(None) => {} // the client went away
    }
}

async fn stream_file(
    shard: &Shard,
    writer: &mut MessageWriter,
    path: &std::path::Path,
    size_bytes: u64,
    revision: i64,
) -> Result<(), Option<Status>> {
    let mut file =
        std::fs::File::open(path).map_err(|error| Some(internal(&format!("snapshot: {error}"))))?;
    let mut digest = Sha256::new();
    let mut sent = 0u64;
    let mut buffer = vec![0u8; SNAPSHOT_CHUNK_BYTES];
    let mut first = true;
    while sent < size_bytes {
        let want = SNAPSHOT_CHUNK_BYTES.min((size_bytes - sent) as usize);
        file.read_exact(&mut buffer[..want])
            .map_err(|error| Some(internal(&format!("snapshot: {error}"))))?;
        digest.update(&buffer[..want]);
        sent += want as u64;
        let response = SnapshotResponse {
            header: first.then(|| shard.status.header(revision)),
            remaining_bytes: size_bytes - sent,
            blob: buffer[..want].to_vec(),
            version: if first {
                ETCD_VERSION.to_string()
            } else {
                String::new()
            },
        };
        first = false;
        writer
            .send(grpc::frame(&response))
            .await
            .map_err(|_| None)?;
    }
    let last = SnapshotResponse {
        remaining_bytes: 0,
        blob: digest.finalize().to_vec(),
        ..SnapshotResponse::default()
    };
    writer.send(grpc::frame(&last)).await.map_err(|_| None)
}

fn internal(message: &str) -> Status {
    Status::new(Code::Internal, message)
}

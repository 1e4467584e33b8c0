//! keel's shard cores.
//!
//! Each shard core is a pinned glommio executor that accepts client
//! connections on every client listener (SO_REUSEPORT), speaks HTTP/2 with
//! `h2` and gRPC framing ([`grpc`]) directly — no tonic, no tokio runtime
//! ([`io_compat`] adapts glommio sockets to the traits `h2` wants) — and
//! serves calls: serializable reads from the store's published read view on
//! the core itself, writes and linearizable read barriers through the raft
//! core ([`shard`]). Every error maps to etcd's gRPC status in one table
//! ([`status`]). Services: [`kv`] and [`txn`], [`maintenance`], [`cluster`],
//! [`health`].

pub mod authority;
pub mod cluster;
pub mod concurrency;
pub mod grpc;
pub mod health;
pub mod http1;
pub mod io_compat;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod metrics;
pub mod range_stream;
pub mod server;
pub mod shard;
pub mod snapshot;
pub mod status;
pub mod stream;
pub mod txn;
pub mod watch;

use std::net::SocketAddr;

pub use server::{check_address_free, run_shard, ShardSetup};
pub use txn::MAX_TXN_OPS_DEFAULT;

/// etcd's `--max-request-bytes` default: 1.5 MiB.
pub const MAX_REQUEST_BYTES_DEFAULT: usize = 1536 * 1024;
/// etcd's default backend quota: 2 GiB.
pub const QUOTA_BACKEND_BYTES_DEFAULT: u64 = 2 << 30;
/// etcd lets gRPC receive this much beyond `--max-request-bytes`.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// What every shard core serves with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: Vec<SocketAddr>,
    /// etcd's `--listen-metrics-urls`: HTTP endpoints only.
    pub metrics_listen: Vec<SocketAddr>,
    pub max_request_bytes: usize,
    /// etcd's `--max-txn-ops`.
    pub max_txn_ops: usize,
    pub member: MemberConfig,
    /// etcd's `--quota-backend-bytes` (`None`: no quota).
    pub quota_backend_bytes: Option<u64>,
    /// Where Maintenance.Snapshot writes its temporary copy of the backend
    /// (`<data-dir>/member/snap`).
    pub snapshot_dir: std::path::PathBuf,
    /// etcd's `--experimental-watch-progress-notify-interval`.
    pub watch_progress_notify_interval: std::time::Duration,
}

/// This member as MemberList shows it.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub name: String,
    /// `--initial-advertise-peer-urls`.
    pub peer_urls: Vec<String>,
    /// `--advertise-client-urls`.
    pub client_urls: Vec<String>,
}

impl ServeConfig {
    /// The largest gRPC message a call may carry (etcd: request bytes + 512 KiB).
    pub fn recv_limit_bytes(&self) -> usize {
        self.max_request_bytes + GRPC_OVERHEAD_BYTES
    }
}

//! The etcd v3 API messages and keel's internal messages.
//!
//! keel speaks etcd's gRPC API unchanged, so this crate holds our own
//! `.proto` files (under `proto/proto/`) whose packages, services, methods,
//! messages, field names, field numbers and enum values are those of etcd
//! v3 (etcd main branch: the v3.6 API plus `KV.RangeStream`). They are
//! written for keel from the API reference, not copied from etcd.
//!
//! `build.rs` parses them with `protox` (pure Rust, no system `protoc`) and
//! generates plain prost messages: keys and values are `Vec<u8>`, and no
//! gRPC service code is generated, since `net/` frames and dispatches gRPC
//! itself using the paths in [`methods`].
//!
//! | module | proto package | contents |
//! | --- | --- | --- |
//! | [`mvccpb`] | `mvccpb` | `KeyValue`, `Event` |
//! | [`authpb`] | `authpb` | `User`, `Role`, `Permission` |
//! | [`etcdserverpb`] | `etcdserverpb` | KV, Watch, Lease, Cluster, Maintenance, Auth requests and responses |
//! | [`v3lockpb`] | `v3lockpb` | Lock service messages |
//! | [`v3electionpb`] | `v3electionpb` | Election service messages |
//! | [`health`] | `grpc.health.v1` | gRPC health checking messages |
//! | [`keelpb`] | `keelpb` | `InternalRequest`, the payload of a raft log entry |
//!
//! The generated code refers across packages by relative path (for example
//! `super::mvccpb::KeyValue` from `etcdserverpb`), so every package module
//! sits at the crate root, and `grpc.health.v1` keeps its nesting and is
//! re-exported as [`health`].

pub mod methods;

/// Generated code is exempt from our lints; its shape is prost's.
macro_rules! generated_module {
    ($(#[$attr:meta])* $name:ident, $file:literal) => {
        $(#[$attr])*
        #[allow(clippy::all, clippy::pedantic, clippy::nursery)]
        #[allow(missing_docs, rustdoc::all)]
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", $file));
        }
    };
}

generated_module!(
    /// Package `mvccpb`: stored key-values and watch events.
    mvccpb,
    "mvccpb.rs"
);
generated_module!(
    /// Package `authpb`: users, roles and permissions.
    authpb,
    "authpb.rs"
);
generated_module!(
    /// Package `etcdserverpb`: the etcd v3 client API.
    etcdserverpb,
    "etcdserverpb.rs"
);
generated_module!(
    /// Package `v3lockpb`: the distributed lock service.
    v3lockpb,
    "v3lockpb.rs"
);
generated_module!(
    /// Package `v3electionpb`: the leader election service.
    v3electionpb,
    "v3electionpb.rs"
);
generated_module!(
    /// Package `keelpb`: keel's own messages, not part of the etcd API.
    keelpb,
    "keelpb.rs"
);

/// Package `grpc.health.v1`, nested as its name is.
mod grpc {
    pub mod health {
        generated_module!(
            /// Package `grpc.health.v1`: the gRPC health checking protocol.
            v1,
            "grpc.health.v1.rs"
        );
    }
}

pub use grpc::health::v1 as health;

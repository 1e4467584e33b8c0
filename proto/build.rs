//! Compiles keel's `.proto` files into Rust with prost.
//!
//! The `.proto` files are parsed by `protox` (pure Rust), so building keel
//! needs no system `protoc`. The resulting descriptor set is handed to
//! `prost-build`, which writes one file per proto package into `OUT_DIR`
//! (`etcdserverpb.rs`, `grpc.health.v1.rs`, ...); `src/lib.rs` includes them.
//! Only messages and enums are generated: the gRPC services are dispatched
//! by hand in `net/`, using the paths in `src/methods.rs`.
//!
//! The build also writes `proto_methods.rs`, the table of every rpc declared
//! in the `.proto` files, which the tests compare against `src/methods.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use protox::prost_reflect::prost_types::FileDescriptorSet;

/// Root of the proto tree; imports inside the files are relative to it.
const PROTO_ROOT: &str = "proto";

/// Every file to compile, relative to [`PROTO_ROOT`].
const PROTO_FILES: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
    "grpc/health/v1/health.proto",
    "keel/internal.proto",
];

fn main() {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        let path = Path::new(PROTO_ROOT).join(file);
        assert!(path.is_file(), "missing proto file {}", path.display());
        println!("cargo:rerun-if-changed={}", path.display());
    }

    let descriptors = match protox::compile(PROTO_FILES, [PROTO_ROOT]) {
        Ok(descriptors) => descriptors,
        Err(error) => panic!("parsing the .proto files failed: {error}"),
    };

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let method_table = render_method_table(&descriptors);
    std::fs::write(out_dir.join("proto_methods.rs"), method_table)
        .expect("writing proto_methods.rs into OUT_DIR");

    let mut config = prost_build::Config::new();
    if let Err(error) = config.compile_fds(descriptors) {
        panic!("generating Rust from the .proto files failed: {error}");
    }
}

/// Renders `PROTO_METHODS`: `(path, client_streaming, server_streaming)` for
/// every rpc of every service, in declaration order.
fn render_method_table(descriptors: &FileDescriptorSet) -> String {
    let mut table = String::from(
        "/// `(gRPC path, client streaming, server streaming)` of every rpc in the .proto files.\n\
         pub(crate) const PROTO_METHODS: &[(&str, bool, bool)] = &[\n",
    );
    for file in &descriptors.file {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                writeln!(
                    table,
                    "    (\"/{package}.{}/{}\", {}, {}),",
                    service.name(),
                    method.name(),
                    method.client_streaming(),
                    method.server_streaming(),
                )
                .expect("writing to a String cannot fail");
            }
        }
    }
    table.push_str("];\n");
    table
}

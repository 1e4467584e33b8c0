//! keel-bench: an etcd `benchmark`-compatible load generator that speaks
//! the etcd v3 gRPC API over HTTP/2 from glommio executors, so it drives
//! etcd and keel alike. Commands: `put`, `range`, `txn-put`, `txn-mixed`,
//! `lease-keepalive`, `watch-latency`, `watch`, `watch-get`, and `mvcc
//! put`/`mvcc range`, which drive keel's storage engine in-process.
//!
//! | module | concern |
//! | --- | --- |
//! | `args`, `command` | flags (etcd's names and defaults) and what they ask for |
//! | `session` | `--user` (Authenticate) and `--target-leader` (Status), once per run |
//! | `run` | executors, merging, printing, the exit status |
//! | `client` | one executor's share: request loops, and which command runs |
//! | `endpoint` | one `--endpoints` entry: address, TLS or not, server name |
//! | `dial`, `tls`, `tls_stream` | connecting (TCP, TLS, HTTP/2, `--dial-timeout`); rustls setup; TLS failures told as such |
//! | `grpc_call` | unary calls, stream framing |
//! | `workload` | each command's requests and response checks |
//! | `compact` | `put --compact-interval` |
//! | `watch`, `watch_bench`, `watch_get` | watch-latency, watch, watch-get |
//! | `watch_stream`, `watch_wire` | one Watch stream; reading responses without decoding |
//! | `event_latency` | put-to-event latency, settled when every put is in |
//! | `mvcc` | the engine in-process |
//! | `report`, `sample`, `go_format` | etcd's summary, `--sample` series, Go's number/duration text |
//! | `progress` | the progress bar and Ctrl-C |
//!
//! While it runs, a progress bar is drawn on stderr when stderr is a
//! terminal. Ctrl-C stops the run: partial results are printed and the
//! exit status is non-zero, as for errors.

pub mod args;
mod client;
pub mod command;
pub mod compact;
pub mod dial;
pub mod endpoint;
pub mod event_latency;
pub mod go_format;
mod grpc_call;
mod mvcc;
pub mod progress;
pub mod report;
pub mod run;
pub mod sample;
pub mod session;
pub mod tls;
mod tls_stream;
mod watch;
pub mod watch_bench;
mod watch_get;
mod watch_stream;
pub mod watch_wire;
mod workload;

pub use mvcc::{ordered_key, random_key};

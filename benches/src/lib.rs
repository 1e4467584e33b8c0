//! keel's benchmarks.
//!
//! - [`micro`]: micro benchmarks of the hot paths, one per invocation of
//!   the `keel-microbench` binary, each a setup (not counted) and one call
//!   through [`micro::keel_microbench_measured`] (counted).
//! - [`engines`]: the same storage work on keel's engine and on redb,
//!   shared by the micro benchmarks and the Criterion comparison
//!   (`benches/engine.rs`, see `README.md` beside this crate).
//! - [`instructions`]: counting them with valgrind's callgrind
//!   (`--toggle-collect=keel_microbench_measured`, so only the measured
//!   call and its callees count), the baseline file and the regression
//!   check the `keel-instructions` binary and `instructions.sh` run in CI.
//! - `compare.sh` beside this crate runs `keel-bench` against `keel` and
//!   Debian's etcd side by side and reports ratios.
//! - `bbolt.sh` runs the `keel-engine-vs-bbolt` binary: keel's engine
//!   against bbolt (Go, `bbolt/main.go`) doing the [`engines`] work.

pub mod engines;
pub mod instructions;
pub mod micro;

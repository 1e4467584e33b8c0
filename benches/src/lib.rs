//! keel's benchmarks. `compare.sh` beside this crate runs `keel-bench`
//! against `keel` and Debian's etcd side by side and reports ratios; micro
//! benchmarks of the hot paths join this crate as they are written.

#!/usr/bin/env bash
# keel's storage engine against bbolt (etcd's backend store), the same work
# in the same run: benches/bbolt/main.go (Go, Debian's bbolt) and the Rust
# bin keel-engine-vs-bbolt. Prints a markdown table and writes
# bench-results/engine-vs-bbolt.md.
#
#   bash benches/bbolt.sh                       # 7 rounds per op, 10 s cap per op
#   bash benches/bbolt.sh --rounds 3 --max-secs 5
#   bash benches/bbolt.sh --only get_100
#
# Arguments go to keel-engine-vs-bbolt. Honours CARGO_TARGET_DIR and
# TMPDIR (where both sides put their files; tmpfs makes fsync free).
# Needs Debian's golang-go and golang-github-coreos-bbolt-dev: installs them
# with apt-get when root, else skips loudly (exit 0). Builds the Go side in
# GOPATH mode against /usr/share/gocode: nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."

packages="golang-go golang-github-coreos-bbolt-dev"
bbolt_src=/usr/share/gocode/src/go.etcd.io/bbolt
have_tools() { command -v go >/dev/null 2>&1 && [ -f "$bbolt_src/db.go" ]; }

if ! have_tools && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bbolt.sh: installing $packages with apt-get" >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $packages >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $packages >/dev/null; } \
        || true
fi
if ! have_tools; then
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!! SKIPPED: the bbolt comparison needs Debian's golang-go and         !!" >&2
    echo "!! golang-github-coreos-bbolt-dev, which are not installed and could  !!" >&2
    echo "!! not be installed (not root, no apt-get, or apt-get failed).        !!" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    exit 0
fi

tmp_dir="${TMPDIR:-/tmp}"
fs_type=$(stat -f -c %T "$tmp_dir" 2>/dev/null || echo unknown)
if [ "$fs_type" = tmpfs ] || [ "$fs_type" = ramfs ]; then
    echo "bbolt.sh: WARNING: TMPDIR $tmp_dir is $fs_type: fsync costs nothing there, so the" >&2
    echo "bbolt.sh: WARNING: */fsync rows measure no disk. Set TMPDIR to a disk-backed directory." >&2
fi

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
mkdir -p "$target_dir/bbolt"
bbolt_bin="$target_dir/bbolt/bbolt-bench"
echo "bbolt.sh: building $bbolt_bin ($(go version | cut -d' ' -f3), bbolt from $bbolt_src)" >&2
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$target_dir/bbolt/go-cache" \
    go build -o "$bbolt_bin" benches/bbolt/main.go
echo "bbolt.sh: building keel-engine-vs-bbolt (release)" >&2
cargo build --release -q -p keel-benches --bin keel-engine-vs-bbolt

bbolt_version=$(dpkg-query -W -f '${Version}' golang-github-coreos-bbolt-dev 2>/dev/null || echo unknown)
exec "$target_dir/release/keel-engine-vs-bbolt" --bbolt "$bbolt_bin" \
    --bbolt-version "go.etcd.io/bbolt, Debian golang-github-coreos-bbolt-dev $bbolt_version, $(go version | cut -d' ' -f3)" \
    "$@"

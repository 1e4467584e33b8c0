#!/usr/bin/env bash
# Instruction counts of keel's micro benchmarks (benches/src/micro.rs),
# checked against benches/baseline/instructions.json.
#
#   bash benches/instructions.sh                     # count, compare, fail on > 5% regressions
#   bash benches/instructions.sh --update-baseline   # count and rewrite the baseline (commit it)
#   bash benches/instructions.sh --runs 3            # count each 3 times, print the spread
#   bash benches/instructions.sh --only engine_put_1000,wal_codec_entry
#   bash benches/instructions.sh --tolerance-pct 2
#
# Builds keel-microbench and keel-instructions (profile `microbench`:
# release with one codegen unit and fat LTO, set below), then runs
# every benchmark once under `valgrind --tool=callgrind
# --toggle-collect=keel_microbench_measured`, so only the measured call
# (not setup, not process start-up) counts. Counts are exact and repeat run
# to run on the same toolchain and image; a compiler or valgrind upgrade can
# move them, which is when the baseline is updated on purpose.
#
# Without valgrind: installs it with apt-get when root, else skips loudly
# (exit 0), or fails (exit 2) when KEEL_REQUIRE_VALGRIND=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "instructions.sh: valgrind is missing; installing it with apt-get" >&2
        apt-get install -y -q valgrind >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q valgrind >/dev/null; } \
            || true
    fi
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!! SKIPPED: instruction-count benchmarks need valgrind, which is not   !!" >&2
    echo "!! installed and could not be installed (not root or no apt-get).     !!" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    if [ "${KEEL_REQUIRE_VALGRIND:-0}" = 1 ]; then
        exit 2
    fi
    exit 0
fi

# Its own profile (target/microbench/), so the counts do not depend on how
# the release profile is tuned or where the checkout lives: one codegen unit
# and fat LTO (no partitioning that varies with symbol hashes), and source
# paths remapped (they end up in panic locations).
export CARGO_PROFILE_MICROBENCH_INHERITS=release
export CARGO_PROFILE_MICROBENCH_CODEGEN_UNITS=1
export CARGO_PROFILE_MICROBENCH_LTO=fat
export CARGO_PROFILE_MICROBENCH_INCREMENTAL=false
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$PWD=/keel --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --profile microbench -q -p keel-benches --bin keel-microbench --bin keel-instructions
exec "$target_dir/microbench/keel-instructions" \
    --microbench "$target_dir/microbench/keel-microbench" \
    --baseline benches/baseline/instructions.json \
    --out-dir "$target_dir/instructions" \
    "$@"

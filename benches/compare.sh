#!/usr/bin/env bash
# Side-by-side: the same keel-bench scenarios against Debian's etcd and keel
# on this machine, one after the other, fresh data dirs, loopback only.
# Writes bench-results/compare.json, bench-results/compare.md (ratios) and
# bench-results/latency.svg (latency percentiles, keel vs etcd).
#   usage: benches/compare.sh [--quick]     (honours CARGO_TARGET_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0; [ "${1:-}" = "--quick" ] && quick=1
heavy_total=100000; light_total=2000; watch_puts=1000
[ $quick = 1 ] && { heavy_total=20000; light_total=500; watch_puts=500; }

bash tools/install-etcd.sh all || { echo "compare: etcd-server/etcdctl unavailable; cannot compare" >&2; exit 1; }
cargo build --release -q --bin keel && cargo build --release -q -p keel-tools --bin keel-bench
target_dir=${CARGO_TARGET_DIR:-target}
bench=$target_dir/release/keel-bench
out=bench-results; mkdir -p "$out"
work=$(mktemp -d /tmp/keel-compare.XXXXXX)
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT

# The disk's own fdatasync latency, for scale (4 KiB appends, like a WAL).
fsync_json=$(python3 - "$work" <<'PY'
import os, sys, time, statistics
path = os.path.join(sys.argv[1], "fsync.probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
samples = []
for _ in range(500):
    os.write(fd, b"x" * 4096)
    t = time.perf_counter(); os.fdatasync(fd); samples.append((time.perf_counter() - t) * 1000)
os.close(fd); os.unlink(path)
samples.sort()
print('{"p50_ms": %.4f, "p99_ms": %.4f}' % (samples[len(samples)//2], samples[int(len(samples)*0.99)]))
PY
)
echo "fdatasync: $fsync_json"

port=23790
start_server() {  # name
  local name=$1 dir="$work/$1"
  mkdir -p "$dir"; port=$((port + 10))
  if [ "$name" = etcd ]; then
    etcd --name default --data-dir "$dir/data" --listen-client-urls "http://127.0.0.1:$port" \
      --advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$((port+1))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((port+1))" \
      --initial-cluster "default=http://127.0.0.1:$((port+1))" >"$dir/log" 2>&1 &
  else
    "$target_dir/release/keel" --data-dir "$dir/data" --listen-client-urls "http://127.0.0.1:$port" >"$dir/log" 2>&1 &
  fi
  server_pid=$!
  for _ in $(seq 100); do grep -q "ready to serve client requests" "$dir/log" && return 0; sleep 0.1; done
  echo "compare: $name did not start" >&2; cat "$dir/log" >&2; exit 1
}
cpu_secs() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
hwm_kib() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }

run_one() {  # server scenario args...
  local server=$1 scenario=$2; shift 2
  local json
  if ! json=$(timeout 600 $bench --endpoints "127.0.0.1:$port" --json "$@"); then
    # An incomplete run still prints its JSON (delivered vs expected): keep it.
    case "$json" in
      "{"*) echo "compare: $server $scenario was incomplete or had errors; keeping its partial results" >&2 ;;
      *) echo "compare: $server $scenario failed: $json" >&2; exit 1 ;;
    esac
  fi
  echo "\"$scenario\": $json"
}
# A scenario with the server CPU it cost: "name": {...}, "name_server_cpu_secs": N
run_timed() {  # server scenario args...
  local before after json
  before=$(cpu_secs $server_pid)
  json=$(run_one "$@") || exit 1
  after=$(cpu_secs $server_pid)
  echo "$json, \"$2_server_cpu_secs\": $(awk -v a="$after" -v b="$before" 'BEGIN{printf "%.2f", a-b}')"
}

results="{\"fdatasync\": $fsync_json"
for server in etcd keel; do
  start_server $server
  cpu0=$(cpu_secs $server_pid)
  r1=$(run_one $server put_1conn_1client --conns 1 --clients 1 put --total $light_total --key-size 8 --val-size 256 --sequential-keys --key-space-size 1000000)
  r2=$(run_one $server put_100conns_1000clients --conns 100 --clients 1000 put --total $heavy_total --key-size 8 --val-size 256 --sequential-keys --key-space-size 1000000)
  hwm=$(hwm_kib $server_pid)
  ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$port" put foo "$(head -c 256 /dev/zero | tr '\0' v)" >/dev/null
  r3=$(run_one $server range_serializable_100conns_1000clients --conns 100 --clients 1000 range foo --consistency s --total $heavy_total)
  r4=$(run_one $server range_linearizable_100conns_1000clients --conns 100 --clients 1000 range foo --consistency l --total $heavy_total)
  r5=$(run_timed $server lease_keepalive_10conns_100clients --conns 10 --clients 100 lease-keepalive --total $heavy_total)
  # 10,000 watchers (1000 streams of 10 over 100 connections) on one key;
  # one writer putting it at 100/s; put-to-event latency over every event.
  r6=$(run_timed $server watch_latency_10k_watchers --conns 100 --clients 100 watch-latency --streams 1000 --watchers-per-stream 10 --put-total $watch_puts --put-rate 100 --key-size 8 --val-size 256)
  cpu1=$(cpu_secs $server_pid)
  hwm_end=$(hwm_kib $server_pid)
  kill $server_pid; wait $server_pid 2>/dev/null || true
  results="$results, \"$server\": {$r1, $r2, $r3, $r4, $r5, $r6, \"peak_rss_kib_after_puts\": $hwm, \"peak_rss_kib_end\": $hwm_end, \"server_cpu_secs\": $(awk -v a="$cpu1" -v b="$cpu0" 'BEGIN{printf "%.2f", a-b}')}"
  echo "$server done"
done
results="$results, \"host\": {\"cpus\": $(nproc), \"kernel\": \"$(uname -r)\", \"heavy_total\": $heavy_total, \"watch_puts\": $watch_puts}}"
echo "$results" > "$out/compare.json"

python3 - "$out/compare.json" "$out/compare.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); e, k = r["etcd"], r["keel"]
rows = [("put, 1 conn, 1 client: p50 latency (ms)", e["put_1conn_1client"]["latency_ms"]["p50"], k["put_1conn_1client"]["latency_ms"]["p50"], "lower"),
        ("put, 100 conns, 1000 clients: requests/s", e["put_100conns_1000clients"]["requests_per_sec"], k["put_100conns_1000clients"]["requests_per_sec"], "higher"),
        ("put, 100 conns, 1000 clients: p99 latency (ms)", e["put_100conns_1000clients"]["latency_ms"]["p99"], k["put_100conns_1000clients"]["latency_ms"]["p99"], "lower"),
        ("range serializable, 1000 clients: requests/s", e["range_serializable_100conns_1000clients"]["requests_per_sec"], k["range_serializable_100conns_1000clients"]["requests_per_sec"], "higher"),
        ("range linearizable, 1000 clients: requests/s", e["range_linearizable_100conns_1000clients"]["requests_per_sec"], k["range_linearizable_100conns_1000clients"]["requests_per_sec"], "higher"),
        ("lease keep-alive, 10 conns, 100 clients: requests/s", e["lease_keepalive_10conns_100clients"]["requests_per_sec"], k["lease_keepalive_10conns_100clients"]["requests_per_sec"], "higher"),
        ("lease keep-alive, 10 conns, 100 clients: p99 latency (ms)", e["lease_keepalive_10conns_100clients"]["latency_ms"]["p99"], k["lease_keepalive_10conns_100clients"]["latency_ms"]["p99"], "lower"),
        ("lease keep-alive: server CPU (s)", e["lease_keepalive_10conns_100clients_server_cpu_secs"], k["lease_keepalive_10conns_100clients_server_cpu_secs"], "lower")]
w = "watch_latency_10k_watchers"
for p in ("p50", "p90", "p99", "p99.9", "max"):
    rows.append((f"10k watchers, 100 puts/s: put-to-event {p} (ms)", e[w]["watch"]["latency_ms"][p], k[w]["watch"]["latency_ms"][p], "lower"))
rows += [("10k watchers: events delivered (of expected)", e[w]["watch"]["successes"], k[w]["watch"]["successes"], "higher"),
         ("10k watchers: puts/s achieved (asked 100)", e[w]["put"]["requests_per_sec"], k[w]["put"]["requests_per_sec"], "higher"),
         ("10k watchers: put p50 latency (ms)", e[w]["put"]["latency_ms"]["p50"], k[w]["put"]["latency_ms"]["p50"], "lower"),
         ("10k watchers: server CPU (s)", e[w + "_server_cpu_secs"], k[w + "_server_cpu_secs"], "lower"),
         ("peak RSS after puts (MiB)", e["peak_rss_kib_after_puts"]/1024, k["peak_rss_kib_after_puts"]/1024, "lower"),
         ("peak RSS for the whole run (MiB)", e["peak_rss_kib_end"]/1024, k["peak_rss_kib_end"]/1024, "lower"),
         ("server CPU for the whole run (s)", e["server_cpu_secs"], k["server_cpu_secs"], "lower")]
lines = ["| scenario | etcd | keel | keel advantage |", "| --- | ---: | ---: | ---: |"]
for name, ev, kv, better in rows:
    if better == "higher":
        ratio = kv / ev if ev else float("inf")
    else:
        ratio = ev / kv if kv else (1.0 if ev == kv else float("inf"))
    number = lambda v: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3f}"
    lines.append(f"| {name} | {number(ev)} | {number(kv)} | {ratio:.2f}x |")
lines.append(f"\ndisk fdatasync p50 {r['fdatasync']['p50_ms']:.3f} ms, p99 {r['fdatasync']['p99_ms']:.3f} ms; "
             f"keel put p50 minus fdatasync p50: {k['put_1conn_1client']['latency_ms']['p50'] - r['fdatasync']['p50_ms']:.3f} ms; "
             f"{r['host']['cpus']} CPUs, kernel {r['host']['kernel']}, {r['host']['heavy_total']} requests per heavy scenario; "
             f"10k watchers: {r['host']['watch_puts']} puts, {k[w]['watch'].get('expected', 0):,} events expected per server")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
python3 benches/latency_chart.py "$out/compare.json" "$out/latency.svg"
echo "compare: wrote $out/compare.json, $out/compare.md, $out/latency.svg"

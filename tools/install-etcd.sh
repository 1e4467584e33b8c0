#!/usr/bin/env bash
# Installs Debian's etcd packages for tests and benchmarks that compare keel
# with etcd: `client` = etcdctl (package etcd-client), `server` = etcd
# (package etcd-server), `all` = both. Exits non-zero when they cannot be had.
# The packaged service is never started: only tests start servers, on loopback.
set -u
want="${1:-all}"
need=()
case "$want" in
  client) command -v etcdctl >/dev/null || need+=(etcd-client) ;;
  server) command -v etcd >/dev/null || need+=(etcd-server) ;;
  all) command -v etcdctl >/dev/null || need+=(etcd-client)
       command -v etcd >/dev/null || need+=(etcd-server) ;;
  *) echo "usage: $0 [client|server|all]" >&2; exit 2 ;;
esac
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-etcd: need root and apt-get to install ${need[*]}" >&2
  exit 1
fi
# Keep the package's service from starting (no policy file of ours is left behind).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && created_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
ok=0
if timeout 300 apt-get install -y -q --no-install-recommends "${need[@]}" >/tmp/install-etcd.log 2>&1; then
  ok=1
else
  timeout 300 apt-get update -q >>/tmp/install-etcd.log 2>&1
  timeout 300 apt-get install -y -q --no-install-recommends "${need[@]}" >>/tmp/install-etcd.log 2>&1 && ok=1
fi
[ "$created_policy" = 1 ] && rm -f "$policy"
if [ "$ok" != 1 ]; then
  echo "install-etcd: apt-get install ${need[*]} failed; see /tmp/install-etcd.log" >&2
  exit 1
fi
exit 0

#!/usr/bin/env bash
# A private three-node Redis Cluster for the tests.
#
#   redis_cluster.sh run CMD ARG...
#
# Starts three `redis-server --cluster-enabled yes` on free loopback ports,
# each in its own directory with its own nodes.conf (redis_server.sh start),
# joins them with `redis-cli --cluster create` (three masters, no replicas),
# waits until every node says cluster_state:ok, and runs CMD with
#
#   ERRAND_TEST_CLUSTER  the three ports, "P1 P2 P3"
#   ERRAND_TEST_STORE    redis://127.0.0.1:P1/0?prefix=P, where P's slot
#                        lives on another node than P1
#
# then stops the nodes by pid and removes the directories; exits with CMD's
# status. Without redis-server or redis-cli it prints why and exits 77 (the
# code ctest counts as skipped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

for tool in redis-server redis-cli; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed (scripts/deps test installs it)" >&2
    exit 77
  fi
done
[ "${1:-}" = run ] && [ $# -ge 2 ] || {
  echo "usage: $0 run CMD [ARG...]" >&2
  exit 2
}
shift

root=$(mktemp -d /tmp/errand-cluster-XXXXXX)
cleanup() {
  for i in 1 2 3; do "$here/redis_server.sh" stop "$root/n$i"; done
  rm -rf "$root"
}
trap cleanup EXIT

ports=()
for i in 1 2 3; do
  "$here/redis_server.sh" start "$root/n$i" --cluster-enabled yes \
    --cluster-config-file nodes.conf --cluster-node-timeout 5000 >/dev/null
  ports+=("$(cat "$root/n$i/redis.port")")
done
if ! redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" \
  "127.0.0.1:${ports[2]}" --cluster-replicas 0 --cluster-yes >"$root/create.log" 2>&1; then
  cat "$root/create.log" >&2
  exit 1
fi

ok=0
for _ in $(seq 1 300); do
  ok=1
  for p in "${ports[@]}"; do
    redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
  done
  [ $ok = 1 ] && break
  sleep 0.1
done
if [ $ok != 1 ]; then
  echo "the cluster on ports ${ports[*]} never reached cluster_state:ok" >&2
  exit 1
fi

# A prefix whose slot the first node does not own: the store's URL names a
# node that must redirect it.
owns_first() { # slot
  local range
  for range in $(redis-cli -p "${ports[0]}" cluster nodes | grep myself | cut -d' ' -f9-); do
    [[ $range == *-* ]] || range="$range-$range"
    if ((${range%-*} <= $1 && $1 <= ${range#*-})); then return 0; fi
  done
  return 1
}
n=0
while :; do
  prefix="conformance$n"
  slot=$(redis-cli -p "${ports[0]}" cluster keyslot "errand:{$prefix}:")
  owns_first "$slot" || break
  n=$((n + 1))
done

echo "redis cluster on 127.0.0.1 ports ${ports[*]} (dir $root); prefix $prefix in slot $slot" >&2
set +e
ERRAND_TEST_CLUSTER="${ports[*]}" \
  ERRAND_TEST_STORE="redis://127.0.0.1:${ports[0]}/0?prefix=$prefix" "$@"
status=$?
set -e
exit $status

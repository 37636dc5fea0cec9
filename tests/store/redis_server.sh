#!/usr/bin/env bash
# A private redis-server for the tests: a free loopback port, its own
# temporary directory, AOF with appendfsync always, stopped by its pid.
#
#   redis_server.sh start DIR [ARG...]
#                                  starts one in DIR (created if missing),
#                                  ARGs added to its command line; prints its
#                                  URL; DIR/redis.pid has the pid
#   redis_server.sh stop DIR       stops the one started in DIR, by its pid
#   redis_server.sh run CMD ARG... starts one in a new temporary directory,
#                                  runs CMD with ERRAND_TEST_STORE set to its
#                                  URL, stops it and removes the directory;
#                                  exits with CMD's status
#
# Without redis-server installed, start and run print why and exit 77 (the
# code ctest counts as skipped: see SKIP_RETURN_CODE in CMakeLists.txt).
set -euo pipefail

skip_if_missing() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "SKIP: redis-server is not installed (scripts/deps test installs it)" >&2
    exit 77
  fi
}

# True once the server at port $1 answers PING.
answers() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 || exit 1
    [[ "$reply" == +PONG* ]]
  ) 2>/dev/null
}

start() {
  local dir=$1 port pid tries
  shift
  mkdir -p "$dir"
  for tries in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    # Taken already? Then another port.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
      --appendonly yes --appendfsync always --daemonize no \
      --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@" >/dev/null 2>&1 &
    pid=$!
    echo "$pid" >"$dir/redis.pid"
    echo "$port" >"$dir/redis.port"
    for _ in $(seq 1 200); do
      if answers "$port"; then
        echo "redis://127.0.0.1:$port/0"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "could not start redis-server (see $dir/redis.log)" >&2
  return 1
}

stop() {
  local dir=$1 pid
  [ -f "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/redis.pid"
}

cmd=${1:-}
shift || true
case "$cmd" in
  start)
    skip_if_missing
    start "$@"
    ;;
  stop)
    stop "$1"
    ;;
  run)
    skip_if_missing
    dir=$(mktemp -d /tmp/errand-redis-XXXXXX)
    trap 'stop "$dir"; rm -rf "$dir"' EXIT
    url=$(start "$dir")
    echo "redis-server on $url (pid $(cat "$dir/redis.pid"), dir $dir)" >&2
    set +e
    ERRAND_TEST_STORE="$url?prefix=conformance" "$@"
    status=$?
    set -e
    exit $status
    ;;
  *)
    echo "usage: $0 start DIR | stop DIR | run CMD [ARG...]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Runs the five services in the foreground against the local infrastructure, each log line prefixed with its
# service; Ctrl-C (or SIGTERM) stops them all. Uses the binaries `make build` produced.
set -euo pipefail
cd "$(dirname "$0")/../.."

server_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:55432/postgres}
base=${server_url%/*}
pids=()
stopping=""
stop() {
  stopping=1
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop INT TERM EXIT

for svc in auth listings orders gateway scheduler; do
  bin=target/debug/shopbridge-$svc
  [ -x "$bin" ] || { echo "missing $bin: run 'make build'" >&2; exit 1; }
  # The process substitution keeps $! the service's own pid, so SIGTERM reaches it.
  SHOPBRIDGE__DATABASE__URL="$base/shopbridge_$svc" \
  SHOPBRIDGE__NATS__URL="${NATS_URL:-nats://127.0.0.1:54222}" \
    "$bin" serve > >(sed -u "s/^/[$svc] /") 2>&1 &
  pids+=($!)
done
echo "all five services started; Ctrl-C stops them"
wait -n "${pids[@]}" || true
[ -n "$stopping" ] || echo "a service stopped on its own (see its log above); stopping the others" >&2

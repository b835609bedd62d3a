#!/usr/bin/env bash
# Runs every benchmark, or the one named: deploy/local/bench.sh [NAME]. Each prints a table and writes its figures to
# target/bench/<name>.json (name, value, unit, and baseline and ratio where it has one). Release builds.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p target/bench

declare -A BENCHES=(
  [pipeline]="cargo bench -p shopbridge-platform --bench pipeline"
  [gateway]="cargo bench -p shopbridge-gateway --bench budget"
  [shopify-sim]="cargo run --release -p shopify-sim --bin sim-bench"
  # The gateway runs as its own process in it: its release binary is built first.
  # Get Orders: the gateway runs as its own process here too.
  [orders]="cargo build --release -p shopbridge-gateway --bin shopbridge-gateway && cargo bench -p shopbridge-orders --bench import"
  [import]="cargo build --release -p shopbridge-gateway --bin shopbridge-gateway && cargo bench -p shopbridge-listings --bench import"
)
only=${1:-}
if [ -n "$only" ] && [ -z "${BENCHES[$only]+x}" ]; then
  echo "unknown benchmark '$only'; known: ${!BENCHES[*]}" >&2
  exit 2
fi
for name in $(printf '%s\n' "${!BENCHES[@]}" | sort); do
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  echo "== bench $name: ${BENCHES[$name]}"
  bash -c "${BENCHES[$name]}"
done

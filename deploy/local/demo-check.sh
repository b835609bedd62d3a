#!/usr/bin/env bash
# CI's check of the main job: `make demo` runs to completion from a clean state with a small store and prints its
# summary, then `make down` leaves nothing of the system running (no process, no listening port).
set -euo pipefail
cd "$(dirname "$0")/../.."

export SHOPBRIDGE_DEMO_PRODUCTS="${SHOPBRIDGE_DEMO_PRODUCTS:-12}"
deploy/local/system.sh down --purge >/dev/null 2>&1 || true
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
if ! deploy/local/demo.sh 2>&1 | tee "$out"; then
    echo "demo-check: make demo failed; logs of the services follow" >&2
    tail -n 30 .local/system/logs/*.log >&2 || true
    deploy/local/system.sh down || true
    exit 1
fi
grep -q "Demo complete." "$out" || { echo "demo-check: no summary printed" >&2; exit 1; }
# The services' own logs must hold no token or secret (the simulator's may: it plays Shopify). The shapes are those
# of shopbridge_platform::telemetry::secret_in, which checks the test suite's logs the same way.
secret_shape='(^|[^A-Za-z0-9])(shp(at|rt|ca|ua|pa|ss)_[A-Za-z0-9_-]{4,}|sbs_[A-Za-z0-9_-]{4,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ)'
leaks="$(find .local/system/logs -name '*.log' ! -name 'shopify-sim*' -print0 | xargs -0 grep -EnH "$secret_shape" || true)"
if [[ -n $leaks ]]; then
    echo "demo-check: secrets in the services' logs:" >&2
    echo "$leaks" | cut -c1-300 >&2
    deploy/local/system.sh down || true
    exit 1
fi
deploy/local/system.sh down
left=""
for port in 8787 50051 50052 50053 50054 50055 8081 8082 8083 8084 8085; do
    if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then left+=" $port"; fi
done
if pgrep -f "target/debug/(shopbridge-(auth|gateway|listings|orders|scheduler)|shopify-sim) " >/dev/null; then
    left+=" (processes: $(pgrep -af 'target/debug/(shopbridge-|shopify-sim)' | tr '\n' ';'))"
fi
[[ -z $left ]] || { echo "demo-check: still running after make down:$left" >&2; exit 1; }
echo "demo-check: make demo completed and make down left nothing running"

#!/usr/bin/env bash
# CI's check of the main job, as a newcomer meets it: `make demo` from a clean state, `make down`, `make demo` again
# (the restarted simulator must not hand out ids the databases already hold), and once more on the running system.
# Each run must print its summary and nothing that looks like an error (no Python traceback, no curl "Failed to
# connect"). Then the keys-and-data checks: auth refuses to start, exit 78 naming the key, with an encryption key
# that does not decrypt its database; `down --purge` with the infrastructure stopped still drops the databases, and
# the next demo works. Last, `make down` leaves nothing of the system running (no process, no listening port).
set -euo pipefail
cd "$(dirname "$0")/../.."

export SHOPBRIDGE_DEMO_PRODUCTS="${SHOPBRIDGE_DEMO_PRODUCTS:-12}"
INFRA=deploy/local/infra.sh
BIN="${SHOPBRIDGE_BIN_DIR:-target/debug}"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT

fail() {
    echo "demo-check: $*" >&2
    tail -n 30 .local/system/logs/*.log >&2 || true
    deploy/local/system.sh down >/dev/null 2>&1 || true
    exit 1
}

# One `make demo`: it must succeed, print its summary once, and print nothing that reads as an error.
demo() {
    local what="$1"
    echo "demo-check: $what"
    deploy/local/demo.sh >"$out" 2>&1 || { cat "$out"; fail "$what: make demo failed; logs of the services follow"; }
    cat "$out"
    grep -q "Demo complete." "$out" || fail "$what: no summary printed"
    if grep -nE "Traceback|Failed to connect" "$out" >&2; then fail "$what: the demo printed an error on the normal path"; fi
    grep -q "APP_UNINSTALLED" "$out" || fail "$what: no app/uninstalled subscription shown"
}

deploy/local/system.sh down --purge >/dev/null 2>&1 || true
demo "first demo, from a clean state"
deploy/local/system.sh down >/dev/null
demo "second demo after make down (same databases, restarted simulator)"
demo "third demo on the running system"

# The services' own logs must hold no token or secret (the simulator's may: it plays Shopify). The shapes are those
# of shopbridge_platform::telemetry::secret_in, which checks the test suite's logs the same way.
secret_shape='(^|[^A-Za-z0-9])(shp(at|rt|ca|ua|pa|ss)_[A-Za-z0-9_-]{4,}|sbs_[A-Za-z0-9_-]{4,}|eyJ[A-Za-z0-9_-]{10,}\.eyJ)'
leaks="$(find .local/system/logs -name '*.log' ! -name 'shopify-sim*' -print0 | xargs -0 grep -EnH "$secret_shape" || true)"
if [[ -n $leaks ]]; then
    echo "$leaks" | cut -c1-300 >&2
    fail "secrets in the services' logs"
fi

# auth with another key under the same key id (what deleting the secrets but keeping the data amounts to).
echo "demo-check: auth started with an encryption key that does not decrypt its database"
eval "$("$INFRA" env)"
set +e
wrong="$(env SHOPBRIDGE__DATABASE__URL="${DATABASE_URL%/*}/shopbridge_system_auth" SHOPBRIDGE__NATS__URL="$NATS_URL" \
    SHOPBRIDGE__GRPC__LISTEN=127.0.0.1:0 SHOPBRIDGE__HTTP__LISTEN=127.0.0.1:0 \
    SHOPBRIDGE__SERVICE__ENCRYPTION_KEYS__LOCAL="$(head -c 32 /dev/urandom | base64 -w0)" \
    SHOPBRIDGE__SERVICE__ACTIVE_ENCRYPTION_KEY=local SHOPBRIDGE__TELEMETRY__LOG_LEVEL=error \
    timeout 60 "$BIN/shopbridge-auth" serve 2>&1)"
rc=$?
set -e
[[ $rc -eq 78 ]] || fail "auth with a wrong encryption key exited $rc, not 78: $wrong"
grep -q "service.encryption_keys.local" <<<"$wrong" || fail "auth's refusal does not name the key: $wrong"
grep -Eq "signing key [0-9A-Za-z_-]+ " <<<"$wrong" || fail "auth's refusal does not name the signing key: $wrong"
echo "demo-check: refused, exit 78: $(grep -o 'the active signing key [^:]*' <<<"$wrong" | head -1)"

# Purge with the infrastructure stopped: it must still drop the databases with the secrets, and the next demo work.
deploy/local/system.sh down >/dev/null
infra_was_up=""
if "$INFRA" status >/dev/null 2>&1; then infra_was_up=1; "$INFRA" down >/dev/null; fi
deploy/local/system.sh down --purge 2>&1 | tee "$out"
grep -q "purged" "$out" || fail "down --purge with the infrastructure stopped did not purge"
demo "demo after a purge with the infrastructure stopped"

deploy/local/system.sh down
left=""
for port in 8787 50051 50052 50053 50054 50055 8081 8082 8083 8084 8085; do
    if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then left+=" $port"; fi
done
if pgrep -f "$BIN/(shopbridge-(auth|gateway|listings|orders|scheduler)|shopify-sim) " >/dev/null; then
    left+=" (processes: $(pgrep -af "$BIN/(shopbridge-|shopify-sim)" | tr '\n' ';'))"
fi
[[ -z $left ]] || { echo "demo-check: still running after make down:$left" >&2; exit 1; }
# Leave the infrastructure as we found it.
if [[ -n $infra_was_up ]]; then SHOPBRIDGE_PG_FAST="${SHOPBRIDGE_PG_FAST:-1}" "$INFRA" up >/dev/null; fi
echo "demo-check: four demos (clean, after make down, on a running system, after a purge with the infrastructure" \
    "stopped) completed; a wrong encryption key stops auth naming it; make down left nothing running"

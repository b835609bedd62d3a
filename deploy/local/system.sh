#!/usr/bin/env bash
# The whole local system in the background: infrastructure, the Shopify simulator with a seeded demo store, and the
# five services, wired to each other (service identities, the OAuth app, the simulator as Shopify).
#
#   deploy/local/system.sh up       start what is not running (idempotent); binaries from `make build`
#   deploy/local/system.sh down     stop what `up` started (and the infrastructure, if `up` started it);
#                                   --purge also drops the system's databases and deletes its state and logs
#   deploy/local/system.sh status   what runs, where
#   deploy/local/system.sh auth ... a shopbridge-auth operator command on the system's database (bootstrap-admin ...)
#
# Everything lives under <repo>/.local/system/: logs/<process>.log, pids/<process>.pid, state/ (generated secrets
# and identities, mode 0600). Databases: shopbridge_system_<service> on the local PostgreSQL. Ports: see PORTS below; each can be moved
# with SHOPBRIDGE_DEMO_<NAME>_PORT (e.g. SHOPBRIDGE_DEMO_SIM_PORT=9787).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd -P)"
SYS="$ROOT/.local/system"
LOGS="$SYS/logs" PIDS="$SYS/pids" STATE="$SYS/state"
BIN="${SHOPBRIDGE_BIN_DIR:-$ROOT/target/debug}"
INFRA="$SCRIPT_DIR/infra.sh"

# The demo store the simulator seeds at start (small, so `make demo` stays quick; raise for a bigger catalog).
DEMO_SHOP="${SHOPBRIDGE_DEMO_SHOP:-demo-store.myshopify.com}"
DEMO_PRODUCTS="${SHOPBRIDGE_DEMO_PRODUCTS:-40}"
DEMO_VARIANTS="${SHOPBRIDGE_DEMO_VARIANTS_PER_PRODUCT:-3}"
DEMO_LOCATIONS="${SHOPBRIDGE_DEMO_LOCATIONS:-3}"
DEMO_ORDERS="${SHOPBRIDGE_DEMO_ORDERS:-10}"

port() { local var="SHOPBRIDGE_DEMO_${1}_PORT"; printf '%s' "${!var:-$2}"; }
SIM_PORT=$(port SIM 8787)
AUTH_GRPC=$(port AUTH_GRPC 50051) AUTH_HTTP=$(port AUTH_HTTP 8081)
LISTINGS_GRPC=$(port LISTINGS_GRPC 50052) LISTINGS_HTTP=$(port LISTINGS_HTTP 8082)
ORDERS_GRPC=$(port ORDERS_GRPC 50053) ORDERS_HTTP=$(port ORDERS_HTTP 8083)
GATEWAY_GRPC=$(port GATEWAY_GRPC 50054) GATEWAY_HTTP=$(port GATEWAY_HTTP 8084)
SCHEDULER_GRPC=$(port SCHEDULER_GRPC 50055) SCHEDULER_HTTP=$(port SCHEDULER_HTTP 8085)
SERVICES=(auth gateway listings orders scheduler)
# The Shopify app the simulator knows (its secret is generated once, in state/).
APP_CLIENT_ID=shopbridge-local
TIMEOUT="${SHOPBRIDGE_DEMO_TIMEOUT:-60}"

say() { printf 'system: %s\n' "$*" >&2; }
die() { printf 'system: ERROR: %s\n' "$*" >&2; exit 1; }
rel() { local p="$1"; [[ $p == "$ROOT/"* ]] && p="${p#"$ROOT/"}"; printf '%s' "$p"; }
# shellcheck disable=SC2016 # $0/$1 expand in the inner bash
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' 127.0.0.1 "$1" 2>/dev/null; }

pid_of() { local f="$PIDS/$1.pid"; [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

grpc_port() { local v="${1^^}_GRPC"; printf '%s' "${!v}"; }
http_port() { local v="${1^^}_HTTP"; printf '%s' "${!v}"; }

# Waits until `check` succeeds, or fails naming the log to read.
wait_for() {
    local what="$1" log="$2"; shift 2
    local deadline=$((SECONDS + TIMEOUT))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            tail -n 20 "$log" >&2 || true
            die "$what is not ready after ${TIMEOUT}s; its log: $(rel "$log")"
        fi
        sleep 0.2
    done
}

# Quiet while the service is still starting: a refused connection then is expected, not an error.
ready() { curl -fs -o /dev/null "http://127.0.0.1:$1/readyz" 2>/dev/null; }

# Starts a process in the background with its log and pidfile, unless it runs already.
spawn() {
    local name="$1"; shift
    if pid_of "$name" >/dev/null; then
        say "$name already running (pid $(pid_of "$name"))"
        return 1
    fi
    setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$PIDS/$name.pid"
}

# A secret generated once and kept in state/ (0600): 32 random bytes, as hex, or as standard base64 (key.b64).
secret() {
    local f="$STATE/$1"
    if [[ ! -s $f ]]; then
        (umask 077
            if [[ $1 == *.b64 ]]; then head -c 32 /dev/urandom | base64 -w0 >"$f"
            else head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f"; fi)
    fi
    cat "$f"
}

need_binaries() {
    local b
    for b in shopify-sim shopbridge-nats-topology shopbridge-auth shopbridge-gateway shopbridge-listings \
        shopbridge-orders shopbridge-scheduler shopbridge; do
        [[ -x $BIN/$b ]] || die "missing $(rel "$BIN/$b"): run 'make build' first"
    done
}

# The system's own databases (not those of `make run`, whose secrets another key encrypts), created if missing.
database_name() { printf 'shopbridge_system_%s' "$1"; }
psql_q() { PGCONNECT_TIMEOUT=5 PGOPTIONS='-c client_min_messages=warning' psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
create_databases() {
    local svc db
    command -v psql >/dev/null || die "psql is missing (make infra installs it)"
    for svc in "${SERVICES[@]}"; do
        db="$(database_name "$svc")"
        [[ -n $(psql_q -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ]] ||
            psql_q -c "CREATE DATABASE \"$db\"" || die "could not create database $db"
    done
}
drop_databases() {
    local svc
    for svc in "${SERVICES[@]}"; do
        psql_q -c "DROP DATABASE IF EXISTS \"$(database_name "$svc")\" WITH (FORCE)" || return 1
    done
}

# Settings every service gets: its database on the local server, the bus, the ports.
common_env() {
    local svc="$1"
    printf '%s\n' \
        "SHOPBRIDGE__DATABASE__URL=${PG_BASE}/$(database_name "$svc")" \
        "SHOPBRIDGE__NATS__URL=$NATS_URL" \
        "SHOPBRIDGE__GRPC__LISTEN=127.0.0.1:$(grpc_port "$svc")" \
        "SHOPBRIDGE__HTTP__LISTEN=127.0.0.1:$(http_port "$svc")"
}

# What wires the services to each other and to the simulator (as Shopify).
service_env() {
    local jwks="http://127.0.0.1:$AUTH_HTTP/.well-known/jwks.json"
    case "$1" in
    auth)
        # The simulator plays Shopify: the OAuth app is the one it was started with, reached over plain HTTP.
        printf '%s\n' \
            "SHOPBRIDGE__SERVICE__ENCRYPTION_KEYS__LOCAL=$(secret encryption-key.b64)" \
            "SHOPBRIDGE__SERVICE__ACTIVE_ENCRYPTION_KEY=local" \
            "SHOPBRIDGE__SERVICE__GATEWAY__URL=http://127.0.0.1:$GATEWAY_GRPC" \
            "SHOPBRIDGE__SERVICE__OAUTH__CLIENT_ID=$APP_CLIENT_ID" \
            "SHOPBRIDGE__SERVICE__OAUTH__CLIENT_SECRET=$(secret app-client-secret)" \
            "SHOPBRIDGE__SERVICE__OAUTH__REDIRECT_URI=http://127.0.0.1:$AUTH_HTTP/shopify/oauth/callback" \
            "SHOPBRIDGE__SERVICE__OAUTH__SHOP_SCHEME=http" \
            "SHOPBRIDGE__SERVICE__OAUTH__SHOP_PORT=$SIM_PORT"
        ;;
    gateway)
        printf '%s\n' \
            "SHOPBRIDGE__SERVICE__SHOPIFY__SCHEME=http" \
            "SHOPBRIDGE__SERVICE__SHOPIFY__PORT=$SIM_PORT" \
            "SHOPBRIDGE__SERVICE__SHOPIFY__CONNECT_TO=127.0.0.1:$SIM_PORT" \
            "SHOPBRIDGE__SERVICE__WEBHOOKS__CLIENT_SECRET=$(secret app-client-secret)" \
            "SHOPBRIDGE__SERVICE__WEBHOOKS__CALLBACK_URL=http://127.0.0.1:$GATEWAY_HTTP/shopify/webhooks" \
            "SHOPBRIDGE__SERVICE__AUTH__URL=http://127.0.0.1:$AUTH_GRPC" \
            "SHOPBRIDGE__SERVICE__AUTH__CLIENT_ID=$(cat "$STATE/gateway-client-id")" \
            "SHOPBRIDGE__SERVICE__AUTH__CLIENT_SECRET=$(cat "$STATE/gateway-client-secret")" \
            "SHOPBRIDGE__SERVICE__ACCESS__CLIENT_ID=$APP_CLIENT_ID" \
            "SHOPBRIDGE__SERVICE__TOKENS__JWKS_URL=$jwks" \
            "SHOPBRIDGE_CONFIG=$STATE/gateway.toml"
        ;;
    listings | scheduler | orders)
        printf '%s\n' "SHOPBRIDGE__SERVICE__AUTH__JWKS_URL=$jwks"
        ;;
    esac
}

start_service() {
    local svc="$1" env_lines=()
    mapfile -t env_lines < <(common_env "$svc"; service_env "$svc")
    if spawn "$svc" env "${env_lines[@]}" "$BIN/shopbridge-$svc" serve; then
        say "$svc starting (gRPC 127.0.0.1:$(grpc_port "$svc"), HTTP 127.0.0.1:$(http_port "$svc"))"
    fi
}

# The gateway's service identity (reads channel credentials from auth), made once.
bootstrap_gateway_identity() {
    [[ -s $STATE/gateway-client-id ]] && return
    local out
    out="$(cmd_auth bootstrap-gateway)"
    (umask 077
        awk '/^client_id:/ {print $2}' <<<"$out" >"$STATE/gateway-client-id"
        awk '/^client_secret:/ {print $2}' <<<"$out" >"$STATE/gateway-client-secret")
    [[ -s $STATE/gateway-client-id ]] || die "bootstrap-gateway printed no client id"
}

cmd_up() {
    need_binaries
    mkdir -p "$LOGS" "$PIDS" "$STATE"
    chmod 700 "$STATE"
    if "$INFRA" status >/dev/null 2>&1; then
        say "infrastructure already running: using it"
    else
        "$INFRA" up
        touch "$STATE/infra-started-here"
    fi
    eval "$("$INFRA" env)"
    PG_BASE="${DATABASE_URL%/*}"
    create_databases
    "$BIN/shopbridge-nats-topology" apply --file "$ROOT/deploy/nats/topology.yaml" --nats-url "$NATS_URL" >/dev/null

    if spawn shopify-sim "$BIN/shopify-sim" --listen "127.0.0.1:$SIM_PORT" \
        --client-id "$APP_CLIENT_ID" --client-secret "$(secret app-client-secret)" \
        --ca-out "$STATE/shopify-sim-ca.pem" --seed-shop "$DEMO_SHOP" --plan standard \
        --products "$DEMO_PRODUCTS" --variants-per-product "$DEMO_VARIANTS" --locations "$DEMO_LOCATIONS" \
        --orders "$DEMO_ORDERS" --seed 7; then
        say "shopify-sim starting on 127.0.0.1:$SIM_PORT with $DEMO_SHOP ($DEMO_PRODUCTS products)"
    fi
    wait_for shopify-sim "$LOGS/shopify-sim.log" grep -qs "access_token" "$LOGS/shopify-sim.log"

    bootstrap_gateway_identity
    # Lists cannot come from the environment: the gateway's webhook topics (orders/* feed Get Orders in real time)
    # are in a file layered over its defaults.
    printf '[service.webhooks]\ntopics = ["app/uninstalled", "orders/create", "orders/updated"]\n' >"$STATE/gateway.toml"
    local svc
    for svc in "${SERVICES[@]}"; do start_service "$svc"; done
    for svc in "${SERVICES[@]}"; do
        wait_for "$svc" "$LOGS/$svc.log" ready "$(http_port "$svc")"
    done
    say "all up: logs in $(rel "$LOGS"), stop with 'make down'"
}

stop_pid() {
    local name="$1" pid
    pid="$(pid_of "$name")" || { rm -f "$PIDS/$name.pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) ignored SIGTERM for 10 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDS/$name.pid"
    say "$name stopped"
}

cmd_down() {
    local svc
    for svc in scheduler listings orders gateway auth shopify-sim; do stop_pid "$svc"; done
    local started_here=""
    [[ -f $STATE/infra-started-here ]] && started_here=1
    if [[ ${1:-} == --purge ]]; then
        # The databases and the secrets that encrypt them go together: never delete the secrets and keep the data
        # (auth could no longer decrypt its keys). With the infrastructure stopped, start it for the drop.
        if ! "$INFRA" status >/dev/null 2>&1; then
            say "infrastructure not running: starting it to drop the system's databases"
            "$INFRA" up >/dev/null || die "could not start the infrastructure to drop the databases: nothing purged"
            started_here=1
        fi
        eval "$("$INFRA" env)"
        drop_databases || die "could not drop the system's databases: nothing purged (the secrets that encrypt them are kept)"
        rm -rf "$SYS"
        say "purged: the system's databases, state and logs"
    fi
    if [[ -n $started_here ]]; then
        "$INFRA" down
        rm -f "$STATE/infra-started-here"
    else
        say "infrastructure was running before 'up': left running (make infra-down stops it)"
    fi
}

cmd_status() {
    local rc=0 name
    for name in shopify-sim "${SERVICES[@]}"; do
        if pid="$(pid_of "$name")"; then
            printf '%-12s running  pid %-7s log %s\n' "$name" "$pid" "$(rel "$LOGS/$name.log")"
        else
            printf '%-12s stopped\n' "$name"
            rc=3
        fi
    done
    return $rc
}

# Runs a `shopbridge-auth` operator command (bootstrap-admin, rotate-...) against the system's auth database.
cmd_auth() {
    eval "$("$INFRA" env)"
    PG_BASE="${DATABASE_URL%/*}"
    local env_lines=()
    mapfile -t env_lines < <(common_env auth; service_env auth)
    env "${env_lines[@]}" "$BIN/shopbridge-auth" "$@"
}

case "${1:-}" in
up) cmd_up ;;
auth) shift; cmd_auth "$@" ;;
down) shift; cmd_down "$@" ;;
status) cmd_status ;;
*)
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
esac

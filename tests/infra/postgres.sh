#!/usr/bin/env bash
# Runs a private PostgreSQL cluster (Debian's `postgresql` package) on
# 127.0.0.1 for integration tests and benchmarks.
#
#   bash tests/infra/postgres.sh start|stop|status|env|reset
#
# The cluster lives in ${SLUICE_STATE:-/tmp/sluice-infra}/postgres: data/,
# the unix socket dir sock/, postgres.log, the port (picked once, reused on
# every restart) and env. When run as root the server runs as the `postgres`
# system user (created if missing), since PostgreSQL refuses to run as root.
#
# Database `sluice`, role `sluice` with password `sluice`. TCP connections
# (127.0.0.1) use scram-sha-256 passwords; the unix socket trusts everyone.
# `env` prints PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE lines and writes
# them to $SLUICE_STATE/postgres/env.
#
# Knobs (environment): PG_BIN (dir with initdb/pg_ctl; default newest
# /usr/lib/postgresql/*/bin), PG_START_TIMEOUT (s, default 60),
# PG_STOP_TIMEOUT (s, default 60).
set -euo pipefail

START_TIMEOUT="${PG_START_TIMEOUT:-60}"
STOP_TIMEOUT="${PG_STOP_TIMEOUT:-60}"

STATE_ROOT="$(realpath -m "${SLUICE_STATE:-/tmp/sluice-infra}")"
STATE_DIR="$STATE_ROOT/postgres"
DATA_DIR="$STATE_DIR/data"
SOCK_DIR="$STATE_DIR/sock"
LOG_FILE="$STATE_DIR/postgres.log"
PORT_FILE="$STATE_DIR/port"
ENV_FILE="$STATE_DIR/env"

DB_NAME=sluice
DB_USER=sluice
DB_PASSWORD=sluice
SUPERUSER=postgres

log() { echo "postgres.sh: $*" >&2; }
die() { echo "postgres.sh: ERROR: $*" >&2; exit 1; }

find_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/pg_ctl" ] || die "PG_BIN=$PG_BIN has no pg_ctl"
        return 0
    fi
    local d
    d="$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1 || true)"
    if [ -z "$d" ] || [ ! -x "$d/pg_ctl" ]; then
        die "no PostgreSQL server found under /usr/lib/postgresql/*/bin (install the Debian package 'postgresql': tests/infra/deps.sh)"
    fi
    PG_BIN="$d"
}

# ----------------------------------------------------------------- user ----

RUN_USER="$(id -un)"
setup_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    RUN_USER="${PG_RUN_USER:-postgres}"
    if ! id -u "$RUN_USER" >/dev/null 2>&1; then
        log "creating system user '$RUN_USER' to run the server"
        useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$RUN_USER" ||
            die "could not create the system user '$RUN_USER' (postgres refuses to run as root)"
    fi
}

# Runs a command as the server's user, from / so that an unreadable cwd
# does not matter.
as_user() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u "$RUN_USER" -- "$@")
    else
        (cd / && "$@")
    fi
}

prepare_dirs() {
    mkdir -p "$STATE_DIR" "$SOCK_DIR"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$RUN_USER:" "$STATE_DIR" "$SOCK_DIR"
        [ -d "$DATA_DIR" ] && chown -R "$RUN_USER:" "$DATA_DIR"
    fi
    chmod 0755 "$STATE_DIR" "$SOCK_DIR"
    as_user test -w "$STATE_DIR" ||
        die "user '$RUN_USER' cannot write $STATE_DIR (is a parent directory of SLUICE_STATE closed to other users?)"
}

# True while the process exists and is not a zombie (an exited daemon stays
# a zombie until PID 1 reaps it, which can take a while in containers).
pid_alive() {
    local st
    st="$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

lock_state() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    flock -w 300 9 || die "timed out waiting for the lock $STATE_DIR/.lock (another postgres.sh running?)"
}

# ---------------------------------------------------------------- ports ----

# Any socket on the port (used when picking a new port).
port_in_use() {
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# A listener on the port (TIME_WAIT leftovers do not block a restart).
port_listened() {
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htln "( sport = :$1 )" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

# From 10000-32767, below Linux's ephemeral range, so that no outgoing
# connection takes the port while the server is down.
pick_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((10000 + RANDOM % 22768))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "could not find a free TCP port on 127.0.0.1 after 200 tries"
}

read_port() {
    [ -s "$PORT_FILE" ] || return 1
    PORT="$(cat "$PORT_FILE")"
    [[ "$PORT" =~ ^[0-9]+$ ]]
}

# ------------------------------------------------------------- commands ----

is_running() {
    [ -f "$DATA_DIR/PG_VERSION" ] || return 1
    as_user "$PG_BIN/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1
}

write_env() {
    {
        echo "PGHOST=127.0.0.1"
        echo "PGPORT=$PORT"
        echo "PGUSER=$DB_USER"
        echo "PGPASSWORD=$DB_PASSWORD"
        echo "PGDATABASE=$DB_NAME"
    } >"$ENV_FILE"
}

init_cluster() {
    log "initdb in $DATA_DIR (as $RUN_USER)"
    rm -rf "$DATA_DIR"
    if ! as_user "$PG_BIN/initdb" -D "$DATA_DIR" -U "$SUPERUSER" -E UTF8 --locale=C \
            --auth-local=trust --auth-host=scram-sha-256 --no-sync \
            >"$STATE_DIR/initdb.log" 2>&1; then
        cat "$STATE_DIR/initdb.log" >&2 || true
        die "initdb failed (log: $STATE_DIR/initdb.log)"
    fi
    echo "include_if_exists = 'sluice.conf'" | as_user tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

write_conf() {
    as_user tee "$DATA_DIR/sluice.conf" >/dev/null <<EOF
# Generated by tests/infra/postgres.sh; rewritten on every start.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK_DIR'
unix_socket_permissions = 0777
logging_collector = off
log_line_prefix = '%m [%p] '
EOF
}

psql_admin() {
    # Over the unix socket as the superuser (trust).
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PORT" -U "$SUPERUSER" -d postgres
}

ensure_db() {
    local out
    if ! out="$(psql_admin 2>&1 <<EOF
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
        CREATE ROLE $DB_USER LOGIN;
    END IF;
END
\$\$;
ALTER ROLE $DB_USER WITH LOGIN PASSWORD '$DB_PASSWORD';
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB_NAME') \gexec
EOF
)"; then
        echo "$out" >&2
        die "creating role/database '$DB_USER'/'$DB_NAME' failed"
    fi
}

wait_ready() {
    local t0=$SECONDS
    while :; do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2 2>/dev/null; then
            return 0
        fi
        if [ $((SECONDS - t0)) -ge "$START_TIMEOUT" ]; then
            tail -n 40 "$LOG_FILE" >&2 || true
            die "PostgreSQL did not answer pg_isready on 127.0.0.1:$PORT within ${START_TIMEOUT}s (log: $LOG_FILE)"
        fi
        sleep 0.3
    done
}

cmd_start() {
    find_bin
    setup_user
    lock_state
    prepare_dirs

    if is_running; then
        read_port || die "server is running but $PORT_FILE is missing"
        write_env
        log "already running at 127.0.0.1:$PORT"
        return 0
    fi

    if ! read_port; then
        PORT="$(pick_port)"
        echo "$PORT" >"$PORT_FILE"
    fi
    if port_listened "$PORT"; then
        ss -Htlnp "( sport = :$PORT )" >&2 2>/dev/null || true
        die "port $PORT (saved in $PORT_FILE) is in use by another process; free it or run 'postgres.sh reset'"
    fi

    [ -f "$DATA_DIR/PG_VERSION" ] || init_cluster
    write_conf

    log "starting PostgreSQL ($PG_BIN) at 127.0.0.1:$PORT, log $LOG_FILE"
    local t0=$SECONDS
    as_user touch "$LOG_FILE" 2>/dev/null || true
    [ "$(id -u)" -eq 0 ] && chown "$RUN_USER:" "$LOG_FILE"
    # 9>&-: the server must not inherit the state lock.
    if ! as_user "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t "$START_TIMEOUT" start \
            >"$STATE_DIR/pg_ctl.log" 2>&1 9>&-; then
        cat "$STATE_DIR/pg_ctl.log" >&2 || true
        tail -n 40 "$LOG_FILE" >&2 || true
        die "pg_ctl start failed (log: $LOG_FILE)"
    fi
    wait_ready
    ensure_db
    write_env
    log "ready at 127.0.0.1:$PORT after $((SECONDS - t0))s"
}

postmaster_pid() {
    [ -f "$DATA_DIR/postmaster.pid" ] && head -n 1 "$DATA_DIR/postmaster.pid"
}

cmd_stop() {
    [ -f "$STATE_DIR/data/PG_VERSION" ] || { log "not running (no cluster in $DATA_DIR)"; return 0; }
    find_bin
    setup_user
    lock_state
    if ! is_running; then
        log "not running"
        return 0
    fi
    local pid t0=$SECONDS
    pid="$(postmaster_pid || true)"
    log "stopping PostgreSQL (pid ${pid:-?})"
    if ! as_user "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1; then
        log "fast shutdown did not finish within ${STOP_TIMEOUT}s; trying immediate shutdown"
        if ! as_user "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m immediate -w -t 20 stop >/dev/null 2>&1; then
            if [ -n "$pid" ] && pid_alive "$pid"; then
                log "sending SIGKILL to postmaster $pid"
                kill -KILL "$pid" 2>/dev/null || true
                local t1=$SECONDS
                while pid_alive "$pid"; do
                    [ $((SECONDS - t1)) -ge 10 ] && die "postmaster $pid survived SIGKILL for 10s"
                    sleep 0.2
                done
            fi
        fi
    fi
    is_running && die "PostgreSQL is still running after stop"
    # pg_ctl returns once postmaster.pid is gone, a moment before the
    # process itself exits.
    if [ -n "$pid" ]; then
        local t2=$SECONDS
        while pid_alive "$pid"; do
            [ $((SECONDS - t2)) -ge 10 ] && die "postmaster $pid still exists 10s after shutdown"
            sleep 0.1
        done
    fi
    log "stopped after $((SECONDS - t0))s"
}

cmd_status() {
    find_bin
    setup_user
    if is_running; then
        read_port || true
        echo "postgres: running (pid $(postmaster_pid || echo ?)) at 127.0.0.1:${PORT:-?}"
        return 0
    fi
    echo "postgres: not running"
    return 1
}

cmd_env() {
    read_port || die "no PostgreSQL state in $STATE_DIR; run 'postgres.sh start' first"
    find_bin
    setup_user
    is_running || log "warning: the server is not running"
    write_env
    cat "$ENV_FILE"
}

cmd_reset() {
    cmd_stop
    rm -rf "$STATE_DIR"
    log "deleted $STATE_DIR"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    reset) cmd_reset ;;
    *)
        echo "usage: $0 start|stop|status|env|reset" >&2
        exit 2
        ;;
esac

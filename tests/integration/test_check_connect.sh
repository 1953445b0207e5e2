#!/usr/bin/env bash
# test_check_connect.sh -- `sluice check --connect` against real servers: PostgreSQL (the
# test cluster, a libpq login), a redis-server of its own with a password (AUTH, PING) and
# Kafka's broker (a TCP connect): ok with the right credentials, failed with the server's
# reason and exit 1 with a wrong password, and the password never printed.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup
trap 'unfinished; sl_cleanup' EXIT

command -v redis-server >/dev/null || sl_fail "redis-server is not installed (tests/infra/deps.sh)"
sl_server postgres PostgreSQL
id="$$_$RANDOM"
pass="right_pw_$id"
wrong="wrong_pw_$id"
rport=$(sl_free_port)
sl_bg redis-server --bind 127.0.0.1 --port "$rport" --requirepass "$pass" --save "" \
    --appendonly no --dir "$SL_TMP" --logfile "$SL_TMP/redis-server.txt"
sl_wait_port "$rport" 20 || sl_fail "redis-server did not listen on $rport"

# probe NAME REDIS_PASSWORD PG_CONNINFO: check --connect on a pipeline with both sinks.
probe() {
    cat >"$SL_TMP/$1.yaml" <<YAML
app: {name: probe_$id, batch_interval: 1s}
sources: [{name: g, type: generate, rate: 1}]
sinks:
  - {name: kv, type: redis, from: g, host: 127.0.0.1, port: $rport, command: set,
     key: "k:{key}", password: "$2"}
  - {name: db, type: postgres, from: g, table: t_$id, mode: append, conninfo: "$3"}
YAML
    rc=0
    env -u PGPASSWORD timeout 60 "$SLUICE_BIN" check --connect "$SL_TMP/$1.yaml" \
        >"$SL_TMP/$1.out" 2>&1 || rc=$?
}

base="host=127.0.0.1 port=$PGPORT user=$PGUSER dbname=$PGDATABASE"
probe good "$pass" "$base${PGPASSWORD:+ password=$PGPASSWORD}"
check "right credentials: exit 0 (got $rc)" test "$rc" = 0
check "redis: PING answered" grep -Eq "redis 127.0.0.1:$rport +ok" "$SL_TMP/good.out"
check "postgres: logged in" grep -Eq "postgres 127.0.0.1:$PGPORT/$PGDATABASE +ok" "$SL_TMP/good.out"

probe bad "$wrong" "$base password=$wrong"
check "wrong passwords: exit 1 (got $rc)" test "$rc" = 1
check "redis: AUTH refused, with the server's reply" \
    grep -Eq "redis 127.0.0.1:$rport +failed: AUTH refused: .*(WRONGPASS|invalid)" "$SL_TMP/bad.out"
check "postgres: the login failed, naming the user" \
    grep -Eq "postgres +failed: .*$PGUSER" "$SL_TMP/bad.out"
check "the password is not printed" bash -c "! grep -q '$wrong' '$SL_TMP/bad.out'"

# Kafka's broker, when the test servers run one (tests/infra/kafka.sh).
kb=$(sed -n 's/^KAFKA_BOOTSTRAP=//p' "${SLUICE_STATE:-/tmp/sluice-infra}/env" 2>/dev/null || true)
if [ -n "$kb" ] && sl_wait_port "${kb##*:}" 1; then
    cat >"$SL_TMP/kafka.yaml" <<YAML
app: {batch_interval: 1s}
sources: [{name: k, type: kafka, brokers: "$kb", topics: [t_$id]}]
sinks: [{name: o, type: stdout, from: k}]
YAML
    rc=0
    timeout 60 "$SLUICE_BIN" check --connect "$SL_TMP/kafka.yaml" >"$SL_TMP/kafka.out" 2>&1 || rc=$?
    check "kafka: the broker answered (exit $rc)" test "$rc" = 0
    check "kafka: a line for the broker" grep -Eq "broker $kb +ok" "$SL_TMP/kafka.out"
else
    sl_log "no Kafka broker running: its probe is covered by test_cli_ops (refused, embedded)"
fi
finish

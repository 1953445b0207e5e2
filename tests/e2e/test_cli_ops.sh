#!/usr/bin/env bash
# test_cli_ops.sh -- the command line as an operator uses it (issue 21, item 5): `sluice
# connectors NAME` (one connector, wrapped to COLUMNS or 80, exit 2 with the names for an
# unknown one); `run --seconds N` and SIGINT stop within about a second with a 3 s batch
# interval, the last batch run; `check` reports every error of a file with line:col, exit 2;
# `check --connect` tries each endpoint, one line each, exit 1 when one fails.
source "$(dirname "$0")/lib.sh"
sl_setup
trap 'unfinished; sl_cleanup' EXIT

# ==== connectors NAME ====
rc=0
COLUMNS=60 "$SLUICE_BIN" connectors tcp >"$SL_TMP/tcp60.out" 2>&1 || rc=$?
check "connectors tcp: exit 0" test "$rc" = 0
check "connectors tcp: its options" grep -q "max_connections" "$SL_TMP/tcp60.out"
check "connectors tcp: no other connector" bash -c "! grep -Eq '^(file|stdout|kafka) \\(' '$SL_TMP/tcp60.out'"
long=$(awk 'length > 60' "$SL_TMP/tcp60.out" | head -n 3)
check "connectors tcp with COLUMNS=60: no line over 60 columns${long:+: $long}" test -z "$long"
COLUMNS=200 "$SLUICE_BIN" connectors tcp >"$SL_TMP/tcp200.out" 2>&1
check "connectors tcp with COLUMNS=200: a table with fewer lines" \
    test "$(wc -l <"$SL_TMP/tcp200.out")" -lt "$(wc -l <"$SL_TMP/tcp60.out")"
env -u COLUMNS "$SLUICE_BIN" connectors redis </dev/null >"$SL_TMP/redis.out" 2>&1
long=$(awk 'length > 80' "$SL_TMP/redis.out" | head -n 3)
check "connectors redis, not a terminal: 80 columns${long:+: $long}" test -z "$long"
long=$(env -u COLUMNS "$SLUICE_BIN" connectors | awk 'length > 80' | head -n 3)
check "connectors (all), not a terminal: 80 columns${long:+: $long}" test -z "$long"
"$SLUICE_BIN" connectors file >"$SL_TMP/file.out"
check "connectors file: both roles" bash -c "grep -q '^file (source)' '$SL_TMP/file.out' &&
    grep -q '^file (sink)' '$SL_TMP/file.out'"
rc=0
"$SLUICE_BIN" connectors nosuch >"$SL_TMP/nosuch.out" 2>"$SL_TMP/nosuch.err" || rc=$?
check "connectors nosuch: exit 2" test "$rc" = 2
check "connectors nosuch: names it and lists the connectors" \
    bash -c "grep -q \"unknown connector 'nosuch'\" '$SL_TMP/nosuch.err' &&
        grep -Eq '^connectors: .*tcp.*stdout' '$SL_TMP/nosuch.err'"
check "connectors nosuch: nothing on stdout" test ! -s "$SL_TMP/nosuch.out"

# ==== stopping within a second ====
cat >"$SL_TMP/slow.yaml" <<'YAML'
app: {name: slow, batch_interval: 3s}
sources: [{name: lines, type: generate, rate: 5}]
sinks: [{name: out, type: file, from: lines, prefix: OUT}]
YAML
sed -i "s#OUT#$SL_TMP/slow/l#" "$SL_TMP/slow.yaml"
start=$(date +%s%N)
rc=0
timeout 30 "$SLUICE_BIN" run "$SL_TMP/slow.yaml" --seconds 1 >/dev/null 2>"$SL_TMP/secs.log" || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "run --seconds 1 with a 3 s batch: exit 0" test "$rc" = 0
check "run --seconds 1 with a 3 s batch: done in ${ms} ms (< 2000)" test "$ms" -lt 2000
# What the generator produced before the stop is in the last batch's output, not lost.
check "run --seconds 1: the last batch ran (its records written)" \
    bash -c "cat '$SL_TMP'/slow/l-*/part-* 2>/dev/null | grep -q ."

"$SLUICE_BIN" run "$SL_TMP/slow.yaml" >/dev/null 2>"$SL_TMP/int.log" &
pid=$!
SL_PIDS+=("$pid")
sl_wait_for_line "$SL_TMP/int.log" "started" 10
sleep 0.5
start=$(date +%s%N)
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
check "SIGINT with a 3 s batch: exit 0" test "$rc" = 0
check "SIGINT with a 3 s batch: stopped in ${ms} ms (< 1500)" test "$ms" -lt 1500

# ==== check: every error ====
cat >"$SL_TMP/bad.yaml" <<'YAML'
app:
  batch_interval: 1s
  workers: 999
  colour: blue
sources:
  - {name: a, type: tcp, port: 99999}
  - {name: b, type: nosuch}
  - {name: c, type: generate, rate: 5}
streams:
  - {name: s, from: c, ops: [{splitt: whitespace}]}
sinks:
  - {name: o, type: stdout, from: s, nmu: 3}
YAML
rc=0
"$SLUICE_BIN" check "$SL_TMP/bad.yaml" >"$SL_TMP/bad.out" 2>"$SL_TMP/bad.err" || rc=$?
check "check of a file with 6 errors: exit 2" test "$rc" = 2
check "check of a file with 6 errors: nothing on stdout" test ! -s "$SL_TMP/bad.out"
want="$SL_TMP/bad.yaml:3:12: error: app.workers
$SL_TMP/bad.yaml:4:3: error: unknown key 'colour'
$SL_TMP/bad.yaml:6:32: error: tcp source 'a': option 'port'
$SL_TMP/bad.yaml:7:21: error: unknown source type 'nosuch'
$SL_TMP/bad.yaml:10:31: error: unknown op 'splitt'
$SL_TMP/bad.yaml:12:38: error: unknown option 'nmu'"
in_order=1
i=0
while IFS= read -r w; do
    i=$((i + 1))
    case "$(sed -n "${i}p" "$SL_TMP/bad.err")" in "$w"*) ;; *) in_order=0 ;; esac
done <<<"$want"
check "check reports the 6 errors in the file's order, with line:col" \
    test "$in_order" = 1 -a "$(wc -l <"$SL_TMP/bad.err")" = 6
# 25 unknown keys: 20 reported, then a line saying it stopped.
{
    echo "app:"
    echo "  batch_interval: 1s"
    for i in $(seq 1 25); do echo "  k$i: 1"; done
    echo "sources: [{name: c, type: generate}]"
    echo "sinks: [{name: o, type: stdout, from: c}]"
} >"$SL_TMP/many.yaml"
rc=0
"$SLUICE_BIN" check "$SL_TMP/many.yaml" >/dev/null 2>"$SL_TMP/many.err" || rc=$?
check "check of 25 errors: exit 2, 20 errors and a line saying so" bash -c "[ $rc = 2 ] &&
    [ \$(grep -c ': error: ' '$SL_TMP/many.err') = 20 ] && grep -q 'too many errors' '$SL_TMP/many.err'"

# ==== check --connect ====
closed=$(sl_free_port)
open_port=$(sl_free_port)
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); time.sleep(60)' "$open_port" &
SL_PIDS+=("$!")
sl_wait_port "$open_port" 10 2>/dev/null || sleep 1
cat >"$SL_TMP/conn.yaml" <<YAML
app: {batch_interval: 1s}
sources:
  - {name: srv, type: tcp, host: 127.0.0.1, port: $open_port}
  - {name: down, type: tcp, host: 127.0.0.1, port: $closed}
sinks:
  - {name: o, type: stdout, from: srv}
  - {name: o2, type: stdout, from: down}
YAML
rc=0
timeout 30 "$SLUICE_BIN" check --connect "$SL_TMP/conn.yaml" >"$SL_TMP/conn.out" 2>&1 || rc=$?
check "check --connect with a port closed: exit 1" test "$rc" = 1
check "check --connect: the open port ok" grep -Eq "server 127.0.0.1:$open_port +ok" "$SL_TMP/conn.out"
check "check --connect: the closed port failed, with the reason" \
    grep -Eq "server 127.0.0.1:$closed +failed: Connection refused" "$SL_TMP/conn.out"
check "check --connect: a line per source and sink" \
    test "$(grep -Ec "^(source|sink) '" "$SL_TMP/conn.out")" = 4
if "$SLUICE_BIN" connectors kafka >/dev/null 2>&1; then
    cat >"$SL_TMP/conn_ok.yaml" <<YAML
app: {batch_interval: 1s}
sources:
  - {name: srv, type: tcp, host: 127.0.0.1, port: $open_port}
  - {name: k, type: kafka, brokers: embedded, topics: [t]}
sinks: [{name: o, type: stdout, from: k}]
YAML
    rc=0
    timeout 30 "$SLUICE_BIN" check --connect "$SL_TMP/conn_ok.yaml" >"$SL_TMP/conn_ok.out" 2>&1 ||
        rc=$?
    check "check --connect, every endpoint up: exit 0" test "$rc" = 0
fi
# Kafka brokers one by one, PostgreSQL and Redis down (when built with all three).
if "$SLUICE_BIN" connectors kafka >/dev/null 2>&1 && "$SLUICE_BIN" connectors postgres \
    >/dev/null 2>&1 && "$SLUICE_BIN" connectors redis >/dev/null 2>&1; then
    cat >"$SL_TMP/conn_k.yaml" <<YAML
app: {batch_interval: 1s}
sources: [{name: k, type: kafka, brokers: "127.0.0.1:$closed,127.0.0.1:$open_port", topics: [t]}]
sinks:
  - {name: pg, type: postgres, from: k, table: t, mode: append,
     conninfo: "host=127.0.0.1 port=$closed dbname=x"}
  - {name: rd, type: redis, from: k, host: 127.0.0.1, port: $closed, command: set, key: "{key}"}
YAML
    rc=0
    timeout 30 "$SLUICE_BIN" check --connect "$SL_TMP/conn_k.yaml" >"$SL_TMP/conn_k.out" 2>&1 ||
        rc=$?
    check "check --connect: kafka brokers one by one, postgres and redis down: exit 1" \
        bash -c "[ $rc = 1 ] && grep -Eq 'broker 127.0.0.1:$closed +failed' '$SL_TMP/conn_k.out' &&
            grep -Eq 'broker 127.0.0.1:$open_port +ok' '$SL_TMP/conn_k.out' &&
            grep -Eq '^  postgres +failed: .*$closed' '$SL_TMP/conn_k.out' &&
            grep -Eq 'redis 127.0.0.1:$closed +failed: cannot connect' '$SL_TMP/conn_k.out'"
fi
rc=0
"$SLUICE_BIN" run "$SL_TMP/conn.yaml" --connect >/dev/null 2>&1 || rc=$?
check "--connect on run: usage error, exit 2" test "$rc" = 2

# check follows the file's app.log_level as run does (a kafka source from earliest without a
# rate warns while it is built); --log-level overrides it.
cat >"$SL_TMP/level.yaml" <<'YAML'
app: {name: level, batch_interval: 1s, log_level: error}
sources:
  - {name: k, type: kafka, brokers: 127.0.0.1:9, topics: [t], start: earliest, group: g}
sinks:
  - {name: out, type: stdout, from: k}
YAML
"$SLUICE_BIN" check "$SL_TMP/level.yaml" >/dev/null 2>"$SL_TMP/level.err" || true
"$SLUICE_BIN" check --log-level warn "$SL_TMP/level.yaml" >/dev/null 2>"$SL_TMP/level-w.err" || true
check "check with app.log_level: error: no warning" bash -c "! grep -q 'start: earliest' '$SL_TMP/level.err'"
check "check --log-level warn overrides it" grep -q 'start: earliest' "$SL_TMP/level-w.err"
finish

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
finish

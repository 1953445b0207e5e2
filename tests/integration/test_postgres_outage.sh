#!/usr/bin/env bash
# test_postgres_outage.sh -- PostgreSQL stopped for 30 s in the middle of a word count and
# started again (same port): while it is down, sluice keeps receiving, holds the batch and
# its log names the sink's error; once it is back, sluice reconnects and catches up, and the
# final counts equal an independent count of the text: nothing lost, nothing counted twice.
# OUTAGE_S (default 30) sets the length of the outage.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

pgsh="$SLUICE_SRC/tests/infra/postgres.sh"
id="$$_$RANDOM"
table="outage_$id"
app="pg_outage_$id"
outage=${OUTAGE_S:-30}
sl_pg "$app" "$table"
# Whatever happens, the server is running again when the test ends.
trap 'unfinished; bash "$pgsh" start >/dev/null 2>&1 || true; sl_pg_drop; sl_cleanup' EXIT

sl_words "$SL_TMP/text.txt" 18000 5 1 8 alpha beta gamma delta epsilon zeta eta theta
sl_word_counts "$SL_TMP/text.txt" >"$SL_TMP/expected.txt"
words() { sed -n "$1,$2p" "$SL_TMP/text.txt" | wc -w; }
total1=$(words 1 6000)
total=$(wc -w <"$SL_TMP/text.txt")

port=$(sl_free_port)
{
    sl_tcp_wordcount_yaml "$app" "$port" sum
    cat <<YAML
sinks:
  - name: db
    type: postgres
    from: counts
    table: $table
    mode: increment
    columns: [word=key, count=num]
    key_columns: [word]
    create_table: true
    connect_timeout: 2s
YAML
} >"$SL_TMP/wc.yaml"
sl_start wc "$SL_TMP/wc.yaml"
pid=$SL_LAST_PID
sl_wait_port "$port" 20 || sl_fail "sluice did not listen on $port"
send() { sed -n "$1,$2p" "$SL_TMP/text.txt" | nc -N 127.0.0.1 "$port"; }
sum_is() { [ "$(q "SELECT coalesce(sum(count), 0) FROM $table" 2>/dev/null)" = "$1" ]; }

# 1. Up: the first third is counted.
send 1 6000
check "first third counted while the server is up" sl_wait_until 30 sum_is "$total1"

# 2. Down for $outage s: the second third arrives meanwhile.
t0=$SECONDS
bash "$pgsh" stop >/dev/null 2>&1 || sl_fail "cannot stop PostgreSQL"
send 6001 12000
check "the log names the sink's error while the server is down" \
    sl_wait_for_line "$SL_TMP/wc.log" "db: postgres: (cannot connect|.*terminating connection|.*server closed the connection)" 20
check "the engine reports the batch is held and retried" \
    sl_wait_for_line "$SL_TMP/wc.log" "output 'db' failed for batch [0-9]+, retrying" 20
while [ $((SECONDS - t0)) -lt "$outage" ]; do
    sleep 1
done
check "sluice still runs after ${outage} s without its database" kill -0 "$pid"
bash "$pgsh" start >/dev/null 2>&1 || sl_fail "cannot start PostgreSQL again"

# 3. Up again: sluice catches up, then the last third.
send 12001 18000
check "all $total words counted within 60 s after the restart" sl_wait_until 60 sum_is "$total"
sleep 1
check "sluice reconnected" test "$(grep -c "db: postgres: connected to" "$SL_TMP/wc.log")" -ge 2
sl_stop "$pid" || true
q "SELECT word || ' ' || count FROM $table ORDER BY word" >"$SL_TMP/got.txt"
check "final counts equal the independent count (psql vs awk)" diff "$SL_TMP/got.txt" "$SL_TMP/expected.txt"
dups=$(q "SELECT count(*) FROM (SELECT batch_time FROM sluice_commits WHERE pipeline = '$app' GROUP BY batch_time HAVING count(*) > 1) d")
check "no batch committed twice" test "$dups" -eq 0

finish

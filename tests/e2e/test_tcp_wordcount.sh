#!/usr/bin/env bash
# test_tcp_wordcount.sh -- Spark's NetworkWordCount end to end: sluice connects to a server
# that is not up yet (it retries), counts the words of every line the server sends (the last
# one unterminated, some ending in "\r\n"), and a graceful stop leaves exact totals.
source "$(dirname "$0")/lib.sh"
sl_setup

port=$(sl_free_port)
cat >"$SL_TMP/wc.yaml" <<YAML
app:
  name: tcp_wordcount
  batch_interval: 500ms
  workers: 2
sources:
  - name: lines
    type: tcp
    mode: connect
    host: 127.0.0.1
    port: $port
    reconnect_interval: 200ms
streams:
  - name: counts
    from: lines
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: sum
sinks:
  - name: out
    type: stdout
    from: counts
    num: 1000
YAML

# 1000 lines "to be or not to be", every other one ending in \r\n, then "be" unterminated.
for i in $(seq 1 500); do
    printf 'to be or not to be\nto be or not to be\r\n'
done >"$SL_TMP/input.txt"
printf 'be' >>"$SL_TMP/input.txt"

sl_start sluice "$SL_TMP/wc.yaml"
sluice_pid=$SL_LAST_PID
sl_wait_for_line "$SL_TMP/sluice.log" "cannot connect to 127.0.0.1:$port" 10 ||
    sl_fail "no connection error reported while the server is down"

# The server: sends the file, shuts down its side (-N), exits when sluice closes.
sl_bg nc -N -l 127.0.0.1 "$port" <"$SL_TMP/input.txt"
sl_wait_for_line "$SL_TMP/sluice.log" "connected to 127.0.0.1:$port" 10 ||
    sl_fail "sluice did not connect"

be_done() { [ "$(sl_sum_counts "$SL_TMP/sluice.out" be)" -ge 2001 ]; }
sl_wait_until 20 be_done || sl_fail "counts incomplete: be=$(sl_sum_counts "$SL_TMP/sluice.out" be)"
sl_stop "$sluice_pid"
rc=$?
[ "$rc" -eq 0 ] || sl_fail "sluice exited with $rc"

# One "cannot connect" error per outage, not one per attempt.
n=$(grep -c "cannot connect to 127.0.0.1:$port" "$SL_TMP/sluice.log")
[ "$n" -le 2 ] || sl_fail "the outage was reported $n times"

for kv in to=2000 be=2001 or=1000 not=1000; do
    got=$(sl_sum_counts "$SL_TMP/sluice.out" "${kv%%=*}")
    [ "$got" = "${kv#*=}" ] || sl_fail "count of ${kv%%=*}: $got, expected ${kv#*=}"
done
[ "$(sl_batches "$SL_TMP/sluice.out")" -ge 1 ] || sl_fail "no batch printed"
grep -q $'\r' "$SL_TMP/sluice.out" && sl_fail "a \\r was left in a record"
sl_pass

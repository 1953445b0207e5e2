#!/usr/bin/env bash
# test_event_windows_postgres.sh -- windows on event time into the real PostgreSQL: JSON
# events over TCP, timed by their own "at" field (the timestamp op, RFC 3339), counted per
# user in windows of a minute with 30 s of allowed lateness, upserted by user and window end.
# A window is written when the watermark passes its end, with the window's own bounds in
# window_start and window_end; a late event within the lateness updates the row (an upsert of
# the window again); one later than that is left out and counted; an event without a valid
# time is rejected. The table read with psql equals the windows the events make.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

id="$$_$RANDOM"
table="ew_$id"
app="event_windows_$id"
sl_pg "$app" "$table"

port=$(sl_free_port)
http=$(sl_free_port)
cat >"$SL_TMP/ew.yaml" <<YAML
app:
  name: $app
  batch_interval: 200ms
  checkpoint_dir: $SL_TMP/checkpoint
http: {listen: "127.0.0.1:$http"}
sources:
  - name: events
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $port
streams:
  - name: per_user
    from: events
    ops:
      - key: {json: user}
      - timestamp: {json: at, format: rfc3339}
      - reduce_by_key_and_window: {fn: count, length: 1m, time: event, allowed_lateness: 30s}
sinks:
  - name: db
    type: postgres
    from: per_user
    table: $table
    mode: upsert
    columns: [usr=key, ws=window_start, we=window_end, n=num]
    key_columns: [usr, we]
    create_table: true
YAML
sl_start ew "$SL_TMP/ew.yaml"
pid=$SL_LAST_PID
sl_wait_port "$port" 20 || sl_fail "sluice did not listen on $port"

rows() {
    q "SELECT usr, to_char(ws AT TIME ZONE 'UTC', 'HH24:MI:SS'), to_char(we AT TIME ZONE 'UTC', 'HH24:MI:SS'), n FROM \"$table\" ORDER BY we, usr" 2>/dev/null | tr '\n' ' '
}
ev() { printf '{"user":"%s","at":"2026-12-07T%s"}\n' "$1" "$2"; }
# Each group of events is its own batch: sent, then waited for.
exec 3> >(nc -N 127.0.0.1 "$port")
ev ann 21:44:10Z >&3
ev ann 22:45:05+01:00 >&3 # 21:45:05 UTC: the watermark passes 21:45
want1="ann|21:44:00|21:45:00|1 "
has() { [ "$(rows)" = "$1" ]; }
check "the window [21:44, 21:45) is written when the watermark passes it, with its bounds" \
    sl_wait_until 20 has "$want1"
ev ann 21:44:50Z >&3 # late, within the 30 s allowed
want2="ann|21:44:00|21:45:00|2 "
check "a late event within the lateness updates the window's row" sl_wait_until 20 has "$want2"
ev bob 21:45:40Z >&3 # the watermark passes 21:45:30: [21:44, 21:45) is done
sleep 1
ev ann 21:44:55Z >&3 # too late: left out
ev ann yesterday >&3 # no valid time: rejected
sleep 1
ev cy 21:46:01Z >&3 # closes [21:45, 21:46)
want3="ann|21:44:00|21:45:00|2 ann|21:45:00|21:46:00|1 bob|21:45:00|21:46:00|1 "
check "the next window holds ann's and bob's events, the too-late one left out" \
    sl_wait_until 20 has "$want3"
late() { curl -s "http://127.0.0.1:$http/metrics" | awk '$1 == "sluice_late_records_total" { print $2 }'; }
check "the too-late event is counted (sluice_late_records_total 1)" test "$(late)" = "1"
# The watermark: cy's time, 21:46:01 UTC (1796679961 s), in /metrics and /api/v1/status.
wm() { curl -s "http://127.0.0.1:$http/metrics" | awk '$1 ~ /^sluice_watermark_seconds[{]stream="per_user"[}]$/ { print $2 }'; }
check "/metrics gives the stream's watermark" awk -v v="$(wm)" 'BEGIN { exit !(v == 1796679961) }'
api() { curl -s "http://127.0.0.1:$http/api/v1/status" | jq -r "$1"; }
check "/api/v1/status gives the watermark, the stream time and the late record" \
    test "$(api '.event_time[0] | "\(.stream) \(.watermark) \(.stream_time) \(.late_records)"')" = \
    "per_user 1796679961000 1796679961000 1"
check "the event without a valid time is rejected, saying which" \
    grep -q 'rejected a record.*yesterday' "$SL_TMP/ew.log"
exec 3>&-
sl_stop "$pid" || true
check "sluice stopped cleanly" bash -c "! grep -q '\\[error\\]' '$SL_TMP/ew.log'"
finish

#!/usr/bin/env bash
# test_redis_window_max.sh -- issue 15, item 13: a windowed max (no inverse) into a Redis
# hash with HSET, next to a windowed count with the inverse. Events of two services arrive;
# then only one of them goes on. Once the quiet service's events have left the 2 s window its
# max is deleted from the hash (HDEL), where it used to stay at its last value forever, while
# its count reads 0 and the busy service keeps both. The same max upserted into PostgreSQL by
# service loses the quiet service's row (a DELETE by key), and keeps the busy one's.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

trap 'unfinished; sl_cleanup' EXIT

sl_server redis Redis
r() { timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw "$@"; }
sl_server postgres PostgreSQL
q() { timeout 30 psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

id="$$_$RANDOM"
ptable="wmax_$id"
maxes="latency_max:$id"
counts="requests:$id"
app="redis_window_max_$id"
prefix="sluice:commit:$app:"
trap 'unfinished; r DEL "$maxes" "$counts" >/dev/null 2>&1 || true; r --scan --pattern "$prefix*" 2>/dev/null | while read -r k; do r DEL "$k" >/dev/null; done || true; q "DROP TABLE IF EXISTS $ptable" >/dev/null 2>&1 || true; sl_cleanup' EXIT

port=$(sl_free_port)
cat >"$SL_TMP/max.yaml" <<YAML
app:
  name: $app
  batch_interval: 500ms
  checkpoint_dir: $SL_TMP/checkpoint
sources:
  - name: events
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $port
streams:
  - name: by_service
    from: events
    ops:
      - key: {json: service}
  - name: requests
    from: by_service
    ops:
      - value: 1
      - reduce_by_key_and_window: {fn: sum, length: 2s, slide: 500ms, inverse: true}
  - name: latency_max
    from: by_service
    ops:
      - value: {json: latency_ms}
      - reduce_by_key_and_window: {fn: max, length: 2s, slide: 500ms}
sinks:
  - name: requests_out
    type: redis
    from: requests
    host: $REDIS_HOST
    port: $REDIS_PORT
    command: hset
    key: "$counts"
  - name: latency_out
    type: redis
    from: latency_max
    host: $REDIS_HOST
    port: $REDIS_PORT
    command: hset
    key: "$maxes"
  - name: latency_db
    type: postgres
    from: latency_max
    table: $ptable
    mode: upsert
    columns: [service=key, max=num]
    key_columns: [service]
    create_table: true
YAML
sl_start max "$SL_TMP/max.yaml"
pid=$SL_LAST_PID
sl_wait_port "$port" 20 || sl_fail "sluice did not listen on $port"

# Both services for 1 s, then search alone for 5 s (past the 2 s window of checkout's last).
{
    for i in 1 2 3 4 5; do
        echo '{"service":"checkout","latency_ms":999}'
        echo "{\"service\":\"search\",\"latency_ms\":$((10 + i))}"
        sleep 0.2
    done
    for i in $(seq 1 25); do
        echo '{"service":"search","latency_ms":7}'
        sleep 0.2
    done
} | nc -N 127.0.0.1 "$port" &
sender=$!

seen() { [ "$(r HGET "$maxes" checkout)" = "999" ]; }
check "checkout's max 999 reaches the hash" sl_wait_until 20 seen
rowseen() { [ "$(q "SELECT max FROM $ptable WHERE service = 'checkout'")" = "999" ]; }
check "checkout's max 999 reaches PostgreSQL" sl_wait_until 20 rowseen
gone() { [ "$(r HEXISTS "$maxes" checkout)" = "0" ]; }
check "checkout's max is deleted once its events left the window" sl_wait_until 15 gone
rowgone() { [ "$(q "SELECT count(*) FROM $ptable WHERE service = 'checkout'")" = "0" ]; }
check "checkout's row is deleted from PostgreSQL too (upsert: DELETE by key)" sl_wait_until 15 rowgone
check "checkout's count (with the inverse) reads 0" test "$(r HGET "$counts" checkout)" = "0"
wait "$sender"
check "search, still sending, keeps its max" test "$(r HGET "$maxes" search)" = "7"
check "search keeps its row in PostgreSQL" test "$(q "SELECT max FROM $ptable WHERE service = 'search'")" = "7"
sl_stop "$pid" || true
check "sluice stopped cleanly" bash -c "! grep -q '\\[error\\]' '$SL_TMP/max.log'"
check "no record rejected" bash -c "! grep -qi 'reject' '$SL_TMP/max.log'"

finish

#!/usr/bin/env bash
# test_http_metrics.sh -- a running `sluice run` serves /metrics that `promtool check metrics`
# (Debian's prometheus package) accepts, with the values of what it processed; /health,
# /ready and the JSON API answer (read with jq: no input waits for partitions, no keyed state
# restored); the token is required and never logged.
source "$(dirname "$0")/lib.sh"
sl_setup
command -v jq >/dev/null || sl_fail "jq is needed (tests/infra/deps.sh installs it)"

# http_get PORT PATH [TOKEN]: prints the whole response (status line, headers, body).
http_get() {
    local auth=""
    [ -n "${3:-}" ] && auth="Authorization: Bearer $3"$'\r\n'
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n' "$2" "$auth" >&3
    cat <&3
    exec 3<&-
}
# http_body: the body of a response read on stdin.
http_body() {
    sed '1,/^\r\?$/d'
}
http_status() {
    head -n 1 | awk '{print $2}'
}

if ! command -v promtool >/dev/null 2>&1; then
    bash "$SLUICE_SRC/tests/infra/deps.sh" >"$SL_TMP/deps.log" 2>&1 || true
fi
have_promtool=1
command -v promtool >/dev/null 2>&1 || have_promtool=0

http_port=$(sl_free_port)
listen_port=$(sl_free_port)
token="metrics-token-$RANDOM$RANDOM"
cat >"$SL_TMP/metrics.yaml" <<YAML
app:
  name: metrics_wordcount
  batch_interval: 300ms
  workers: 2
sources:
  - name: lines
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $listen_port
  - name: poem
    type: generate
    rate: 50
streams:
  - name: counts
    from: [lines, poem]
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: sum
sinks:
  - name: out
    type: stdout
    from: counts
    num: 3
http:
  listen: 127.0.0.1:$http_port
  token: \${METRICS_TOKEN}
YAML

METRICS_TOKEN=$token sl_start sluice "$SL_TMP/metrics.yaml"
sluice_pid=$SL_LAST_PID
sl_wait_for_line "$SL_TMP/sluice.log" "status page at http://127.0.0.1:$http_port/" 10 ||
    sl_fail "no status page line in the log"
sl_wait_for_line "$SL_TMP/sluice.log" "listening on 127.0.0.1:$listen_port" 10 ||
    sl_fail "the tcp source is not listening"
for i in $(seq 1 200); do echo "alpha beta gamma $i"; done >"/dev/tcp/127.0.0.1/$listen_port" ||
    sl_fail "cannot send lines"

# Wait until the 200 lines went through a batch.
received() {
    http_get "$http_port" /api/v1/inputs "$token" | http_body >"$SL_TMP/inputs.json"
    grep -q '"name":"lines","type":"tcp","receiver":true,"active":true,"records":200,' \
        "$SL_TMP/inputs.json"
}
sl_wait_until 15 received || sl_fail "the lines were not counted: $(cat "$SL_TMP/inputs.json")"
processed() {
    http_get "$http_port" /metrics "$token" >"$SL_TMP/metrics.http"
    grep -q '^sluice_batches_completed_total [1-9]' "$SL_TMP/metrics.http"
}
sl_wait_until 10 processed || sl_fail "no completed batch in /metrics"
sleep 0.7

http_get "$http_port" /metrics "$token" >"$SL_TMP/metrics.http"
[ "$(http_status <"$SL_TMP/metrics.http")" = 200 ] || sl_fail "/metrics did not answer 200"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$SL_TMP/metrics.http" ||
    sl_fail "/metrics has the wrong content type"
http_body <"$SL_TMP/metrics.http" >"$SL_TMP/metrics.txt"
for want in '^sluice_receivers 2$' '^sluice_receivers_active 2$' \
    '^sluice_input_records_total\{input="lines"\} 200$' \
    '^sluice_input_records_total\{input="poem"\} [1-9]' \
    '^sluice_input_active\{input="lines"\} 1$' '^sluice_sink_active\{sink="out"\} 1$' \
    '^sluice_sink_records_total\{sink="out"\} [1-9]' '^sluice_records_received_total [1-9]' \
    '^sluice_records_processed_total [1-9]' '^sluice_batches_waiting 0$' \
    '^sluice_batch_interval_seconds 0.3$' '^sluice_info\{app="metrics_wordcount",version="' \
    '^# TYPE sluice_batches_completed_total counter$' \
    '^# TYPE sluice_last_batch_total_delay_seconds gauge$' \
    '^sluice_input_waiting\{input="lines"\} 0$' '^sluice_input_waiting\{input="poem"\} 0$' \
    '^# TYPE sluice_state_restored_records_total counter$' \
    '^sluice_state_restored_records_total 0$' '^sluice_state_restored_bytes_total 0$' \
    '^sluice_state_restore_seconds_total 0$' '^sluice_state_restored_tasks_total 0$' \
    '^# TYPE sluice_state_restoring_tasks gauge$' '^sluice_state_restoring_tasks 0$' \
    '^# TYPE sluice_batch_processing_seconds histogram$' \
    '^sluice_batch_processing_seconds_bucket\{le="0.005"\} [0-9]+$' \
    '^sluice_batch_processing_seconds_bucket\{le="\+Inf"\} [1-9]' \
    '^sluice_batch_processing_seconds_sum [0-9.]+$' '^sluice_batch_processing_seconds_count [1-9]' \
    '^# TYPE sluice_batch_scheduling_delay_seconds histogram$' \
    '^sluice_batch_scheduling_delay_seconds_count [1-9]' \
    '^# TYPE sluice_batch_total_delay_seconds histogram$' \
    '^sluice_batch_total_delay_seconds_bucket\{le="\+Inf"\} [1-9]' \
    '^# TYPE sluice_operator_records_total counter$' \
    '^sluice_operator_records_total\{operator="counts"\} [1-9]' \
    '^sluice_operator_seconds_total\{operator="counts"\} [0-9.e-]+$' \
    '^sluice_operator_batches_total\{operator="counts"\} [1-9]' \
    '^# TYPE sluice_sink_seconds_total counter$' '^sluice_sink_seconds_total\{sink="out"\} [0-9.e-]+$' \
    '^sluice_sink_writes_total\{sink="out"\} [1-9]'; do
    grep -Eq -- "$want" "$SL_TMP/metrics.txt" || sl_fail "/metrics lacks $want"
done

# Each histogram: cumulative buckets (never decreasing) and +Inf equal to _count.
for h in processing scheduling_delay total_delay; do
    awk -v h="sluice_batch_${h}_seconds" '
        index($0, h "_bucket{") == 1 { if ($2 + 0 < last) bad = 1; last = $2 + 0; inf = $2 }
        index($0, h "_count ") == 1 { count = $2 }
        END { exit (bad || inf == "" || inf != count) }' "$SL_TMP/metrics.txt" ||
        sl_fail "histogram sluice_batch_${h}_seconds is not cumulative or +Inf != _count"
done

if [ "$have_promtool" = 1 ]; then
    promtool check metrics <"$SL_TMP/metrics.txt" >"$SL_TMP/promtool.log" 2>&1 ||
        sl_fail "promtool check metrics failed: $(cat "$SL_TMP/promtool.log")"
    sl_log "promtool check metrics: ok ($(grep -vc '^#' "$SL_TMP/metrics.txt") samples)"
else
    sl_log "SKIP promtool: it cannot be installed here (Debian's prometheus package); the" \
        "format was checked by the unit tests only"
fi

# /health, /ready, the API and the token.
[ "$(http_get "$http_port" /health "$token" | http_body)" = ok ] || sl_fail "/health is not ok"
ready() { [ "$(http_get "$http_port" /ready "$token" | http_status)" = 200 ]; }
sl_wait_until 10 ready || sl_fail "/ready: $(http_get "$http_port" /ready "$token" | http_body)"
[ "$(http_get "$http_port" /metrics | http_status)" = 401 ] || sl_fail "/metrics without token"
[ "$(http_get "$http_port" /metrics wrong | http_status)" = 401 ] || sl_fail "/metrics bad token"
[ "$(http_get "$http_port" "/?token=$token" | http_status)" = 200 ] || sl_fail "page with token"
http_get "$http_port" /api/v1/status "$token" | http_body >"$SL_TMP/status.json"
grep -q '"app":"metrics_wordcount"' "$SL_TMP/status.json" || sl_fail "status: $(cat "$SL_TMP/status.json")"
grep -q '"state":"running"' "$SL_TMP/status.json" || sl_fail "status: not running"
# No input waits for partitions and no keyed state was restored: the phase is "running".
jq -e '.phase == "running" and .inputs_waiting == 0 and
    .restore == {restoring: 0, tasks: 0, records: 0, bytes: 0, ms: 0, mb_per_s: 0}' \
    "$SL_TMP/status.json" >/dev/null || sl_fail "status: phase or restore: $(cat "$SL_TMP/status.json")"
http_get "$http_port" /api/v1/inputs "$token" | http_body >"$SL_TMP/inputs.json"
jq -e 'length == 2 and all(.[]; .waiting == false)' "$SL_TMP/inputs.json" >/dev/null ||
    sl_fail "inputs: waiting: $(cat "$SL_TMP/inputs.json")"

sl_stop "$sluice_pid" || sl_fail "sluice did not stop cleanly"
grep -q -- "$token" "$SL_TMP/sluice.log" "$SL_TMP/sluice.out" && sl_fail "the token was logged"
sl_pass

#!/usr/bin/env bash
# test_rate_limit_shown.sh -- the status page's "Rate limit" is the cap in force: a direct
# Kafka input (embedded brokers: no server) with max_rate_per_partition: 100 over 4
# partitions shows 400 records/s in /api/v1/inputs (what the page draws) and in
# sluice_input_rate_limit, not "none" (0) as before; a generate input without a cap shows 0.
source "$(dirname "$0")/lib.sh"
sl_setup
command -v jq >/dev/null || sl_fail "jq is needed (tests/infra/deps.sh installs it)"
"$SLUICE_BIN" connectors | grep -q '^kafka (source)' || {
    sl_log "SKIP: built without Kafka"
    sl_pass
}

http_get() {
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
    sed '1,/^\r\?$/d' <&3
    exec 3<&-
}

port=$(sl_free_port)
cat >"$SL_TMP/capped.yaml" <<YAML
app: {name: capped, batch_interval: 500ms}
sources:
  - name: lines
    type: kafka
    brokers: embedded
    topics: [demo]
    embedded_partitions: 4
    embedded_sample: true
    embedded_rate: 10
    start: earliest
    max_rate_per_partition: 100
  - {name: poem, type: generate, rate: 5}
sinks:
  - {name: out, type: file, from: lines, prefix: $SL_TMP/out/l}
  - {name: out2, type: file, from: poem, prefix: $SL_TMP/out/p}
http: {listen: 127.0.0.1:$port}
YAML
sl_start sluice "$SL_TMP/capped.yaml"
pid=$SL_LAST_PID
sl_wait_for_line "$SL_TMP/sluice.log" "status page at" 10 || sl_fail "no status page"
capped() {
    http_get "$port" /api/v1/inputs >"$SL_TMP/inputs.json"
    jq -e '(.[] | select(.name == "lines") | .rate_limit) == 400' "$SL_TMP/inputs.json" \
        >/dev/null
}
sl_wait_until 15 capped || sl_fail "rate limit of lines is not 400: $(cat "$SL_TMP/inputs.json")"
jq -e '(.[] | select(.name == "poem") | .rate_limit) == 0' "$SL_TMP/inputs.json" >/dev/null ||
    sl_fail "poem has a rate limit: $(cat "$SL_TMP/inputs.json")"
http_get "$port" /metrics >"$SL_TMP/metrics.txt"
grep -q '^sluice_input_rate_limit{input="lines"} 400$' "$SL_TMP/metrics.txt" ||
    sl_fail "/metrics: $(grep rate_limit "$SL_TMP/metrics.txt")"
sl_stop "$pid" || sl_fail "sluice did not stop cleanly"
sl_pass

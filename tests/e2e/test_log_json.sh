#!/usr/bin/env bash
# test_log_json.sh -- what `sluice run` writes on stderr: with app.log_format: json (or
# --log-format json) every line is one JSON object (jq parses each) with time (RFC 3339,
# UTC, ms), level, pipeline, component (the source's name on its own lines) and message; a
# pipeline without a stdout sink logs a per-batch line with fields, at most one every 10 s
# (and one at stop for the rest); with a stdout sink it does not; in text every line starts
# with a timestamp, the stop lines and a bad config's error included.
source "$(dirname "$0")/lib.sh"
sl_setup
command -v jq >/dev/null || sl_fail "jq is needed (tests/infra/deps.sh installs it)"

port=$(sl_free_port)
cat >"$SL_TMP/json.yaml" <<YAML
app: {name: json_logs, batch_interval: 100ms, log_format: json}
sources:
  - {name: poem, type: generate, rate: 50}
  - {name: lines, type: tcp, mode: listen, host: 127.0.0.1, port: $port}
streams: [{name: words, from: [poem, lines], ops: [{split: whitespace}]}]
sinks: [{name: files, type: file, from: words, prefix: $SL_TMP/out/w}]
YAML

# rfc3339 FILE: every line's time is RFC 3339 UTC with milliseconds.
rfc3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$'

rc=0
timeout 30 "$SLUICE_BIN" run "$SL_TMP/json.yaml" --seconds 3 >"$SL_TMP/json.out" \
    2>"$SL_TMP/json.err" || rc=$?
cp "$SL_TMP/json.err" "$SL_TMP/json.log"
[ "$rc" = 0 ] || sl_fail "run: exit $rc"
n=$(wc -l <"$SL_TMP/json.err")
[ "$n" -ge 4 ] || sl_fail "only $n lines on stderr"
lineno=0
while IFS= read -r line; do
    lineno=$((lineno + 1))
    echo "$line" | jq -e --arg re "$rfc3339" '
        type == "object" and (.time | test($re)) and
        (.level | IN("error", "warn", "info", "debug")) and .pipeline == "json_logs" and
        (.component | type == "string" and length > 0) and (.message | type == "string") and
        ((has("fields") | not) or (.fields | type == "object"))' >/dev/null ||
        sl_fail "stderr line $lineno is not a log object with every field: $line"
done <"$SL_TMP/json.err"
sl_log "$n lines, each a JSON object with time, level, pipeline, component, message"

jq -se 'any(.[]; .component == "lines" and (.message | startswith("listening on")))' \
    "$SL_TMP/json.err" >/dev/null || sl_fail "no line of the source 'lines' with its component"
jq -se 'any(.[]; .component == "poem" and (.message | test("^source .poem.: [0-9]+ records")))' \
    "$SL_TMP/json.err" >/dev/null || sl_fail "the stop's line about the source 'poem' is not its"
jq -se 'any(.[]; .component == "sluice" and (.message | startswith("stopping")))' \
    "$SL_TMP/json.err" >/dev/null || sl_fail "the engine's lines are not component sluice"

# The per-batch line: ~30 batches in 3 s, one line at the first and one at the stop.
jq -c 'select(.fields.records_in != null)' "$SL_TMP/json.err" >"$SL_TMP/batches.jsonl"
nb=$(wc -l <"$SL_TMP/batches.jsonl")
[ "$nb" -ge 2 ] && [ "$nb" -le 3 ] || sl_fail "$nb per-batch lines in 3 s, expected 2 (first, stop)"
jq -se 'all(.[]; .level == "info" and (.fields | has("batches") and has("records_out") and
        has("processing_ms_avg") and has("scheduling_delay_ms_max") and
        has("first_batch_time") and has("total_delay_ms_max"))) and
        (map(.fields.batches) | add) >= 20 and (map(.fields.records_in) | add) > 0 and
        (map(.fields.records_out) | add) > 0' "$SL_TMP/batches.jsonl" >/dev/null ||
    sl_fail "per-batch lines lack fields or do not sum up the batches: $(cat "$SL_TMP/batches.jsonl")"

# --log-format json on the command line, for a config without log_format, and for a config
# error (before any pipeline exists).
printf 'app: {name: flag, batch_interval: 100ms}\nsources: [{name: g, type: generate, rate: 5}]\nsinks: [{name: o, type: file, from: g, prefix: %s}]\n' \
    "$SL_TMP/out2/g" >"$SL_TMP/flag.yaml"
rc=0
timeout 30 "$SLUICE_BIN" run "$SL_TMP/flag.yaml" --seconds 1 --log-format json \
    >/dev/null 2>"$SL_TMP/flag.err" || rc=$?
[ "$rc" = 0 ] || sl_fail "run --log-format json: exit $rc"
jq -se 'length > 0 and all(.[]; .pipeline == "flag")' "$SL_TMP/flag.err" >/dev/null ||
    sl_fail "--log-format json: not JSON lines: $(head -3 "$SL_TMP/flag.err")"
printf 'app: {batch_interval: 1s}\nsources: []\n' >"$SL_TMP/bad.yaml"
rc=0
"$SLUICE_BIN" run "$SL_TMP/bad.yaml" --log-format=json 2>"$SL_TMP/bad.err" || rc=$?
[ "$rc" = 2 ] || sl_fail "bad config: exit $rc, expected 2"
jq -e '.level == "error" and (.message | test(":[0-9]+:[0-9]+: error: "))' "$SL_TMP/bad.err" \
    >/dev/null || sl_fail "bad config: not a JSON error line: $(cat "$SL_TMP/bad.err")"
rc=0
"$SLUICE_BIN" run "$SL_TMP/bad.yaml" --log-format yaml 2>/dev/null || rc=$?
[ "$rc" = 2 ] || sl_fail "--log-format yaml: exit $rc, expected 2"

# Text, with a stdout sink: no per-batch line (the sink prints the batches); every line of
# stderr starts with a timestamp, the signal's stop line included.
cat >"$SL_TMP/text.yaml" <<'YAML'
app: {name: texty, batch_interval: 100ms}
sources: [{name: poem, type: generate, rate: 20}]
sinks: [{name: out, type: stdout, from: poem, num: 1}]
YAML
"$SLUICE_BIN" run "$SL_TMP/text.yaml" >"$SL_TMP/text.out" 2>"$SL_TMP/text.err" &
pid=$!
SL_PIDS+=("$pid")
sl_wait_for_line "$SL_TMP/text.out" "Time: " 10 || sl_fail "no batch printed"
kill -TERM "$pid"
wait "$pid" || sl_fail "stopped with exit $?"
grep -q "terminate: stopping gracefully" "$SL_TMP/text.err" || sl_fail "no stop line"
bad=$(grep -Evc '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z \[[a-z]+\] ' \
    "$SL_TMP/text.err")
[ "$bad" = 0 ] || sl_fail "$bad stderr lines without a timestamp: $(cat "$SL_TMP/text.err")"
grep -q "records in" "$SL_TMP/text.err" && sl_fail "a per-batch line beside a stdout sink"
sl_pass

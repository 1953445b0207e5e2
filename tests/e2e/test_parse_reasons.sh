#!/usr/bin/env bash
# test_parse_reasons.sh -- the parse and JSON shaping ops on a file source, end to end: an
# nginx access log is parsed into JSON objects (checked with jq), reshaped (a computed
# field, a rename, a nested drop), and every record an op rejects is logged with the reason
# ("operator 'x' rejected a record (REASON) from SOURCE FILE partition -1 offset LINE").
source "$(dirname "$0")/lib.sh"
sl_setup
command -v jq >/dev/null || sl_fail "jq is needed (tests/infra/deps.sh installs it)"

mkdir -p "$SL_TMP/in"
cat >"$SL_TMP/in/access.log" <<'LOG'
203.0.113.9 - alice [07/Dec/2026:10:00:00 +0000] "GET /search?q=a b HTTP/1.1" 200 2048 "https://example.com/" "Mozilla/5.0 \"quoted\""
10.0.0.2 - - [07/Dec/2026:10:00:01 +0000] "HEAD /favicon.ico HTTP/2.0" 304 - "-" "curl/8.5.0"
this is not an access log line
LOG
cat >"$SL_TMP/in/events.json" <<'LOG'
{"price": 2.5, "qty": 4, "meta": {"trace": "x", "keep": 1}, "who": "bob", "t": "yesterday"}
{"price": 1, "qty": 0, "meta": {}, "who": "eve"}
{"qty": 2}
not json at all
LOG

cat >"$SL_TMP/p.yaml" <<YAML
app:
  name: parse_reasons
  batch_interval: 200ms
  workers: 1
sources:
  - name: lines
    type: file
    path: $SL_TMP/in
    include_existing: true
    poll_interval: 50ms
streams:
  - name: access
    from: lines
    ops:
      - filter: {meta: topic, contains: access}
      - parse: {format: nginx_combined}
      - set: {field: kb, expr: body_bytes_sent / 1024}
      - rename: {from: remote_addr, to: client.ip}
      - drop: [request, http_referer]
  - name: events
    from: lines
    ops:
      - filter: {meta: topic, contains: events}
      - set: {field: total, expr: price * qty / qty}
      - rename: {from: who, to: user.name}
      - drop: [meta.trace]
  - name: amounts
    from: lines
    ops:
      - filter: {meta: topic, contains: events}
      - value: {json: price}
      - reduce: sum
  - name: times
    from: lines
    ops:
      - filter: {meta: topic, contains: events}
      - timestamp: {json: t, format: rfc3339}
      - count: {}
sinks:
  - {name: a, type: stdout, from: access, num: 100}
  - {name: e, type: stdout, from: events, num: 100}
  - {name: m, type: stdout, from: amounts}
  - {name: t, type: stdout, from: times}
YAML

"$SLUICE_BIN" run "$SL_TMP/p.yaml" --seconds 2 >"$SL_TMP/out.txt" 2>"$SL_TMP/sluice.log"
rc=$?
[ "$rc" -eq 0 ] || sl_fail "sluice exited with $rc"
[ -z "${KEEP_LOG:-}" ] || cat "$SL_TMP/sluice.log" "$SL_TMP/out.txt" >&2

json=$(grep '^{' "$SL_TMP/out.txt")
alice=$(jq -c 'select(.remote_user == "alice")' <<<"$json")
check "the nginx line is parsed, the request split (a space in the path)" \
    test "$(jq -r '[.method, .path, .protocol, .status, .body_bytes_sent] | @tsv' <<<"$alice")" = \
    "$(printf 'GET\t/search?q=a b\tHTTP/1.1\t200\t2048')"
check "the user agent keeps its escaped quotes" \
    test "$(jq -r .http_user_agent <<<"$alice")" = 'Mozilla/5.0 \"quoted\"'
check "kb is computed, remote_addr renamed into client.ip" \
    test "$(jq -c '[.kb == 2, .client.ip]' <<<"$alice")" = '[true,"203.0.113.9"]'
check "request and http_referer are dropped" \
    test "$(jq -c '[has("request"), has("http_referer"), has("remote_addr")]' <<<"$alice")" = \
    '[false,false,false]'
bob=$(jq -c 'select(.user.name == "bob")' <<<"$json")
check "the event is reshaped: total, user.name, meta.trace dropped" \
    test "$bob" = '{"price":2.5,"qty":4,"meta":{"keep":1},"t":"yesterday","total":2.5,"user":{"name":"bob"}}'
check "only the two records that pass every op are written" test "$(wc -l <<<"$json")" -eq 2

log=$SL_TMP/sluice.log
reason() { # reason OPERATOR REASON FILE LINE
    grep -qF "operator '$1' rejected a record ($2) from lines $3 partition -1 offset $4:" "$log"
}
check "the '-' bytes: set says the field is not a number" \
    reason access "set kb: JSON field 'body_bytes_sent' is not a number" access.log 2
check "a line that is not nginx_combined" reason access "not a nginx_combined line" access.log 3
check "a division by zero" reason events "set total: division by zero in 'price * qty / qty'" \
    events.json 2
check "a missing field in an expression" reason events "set total: missing JSON field 'price'" \
    events.json 3
check "a value that is not JSON" reason events "the value is not JSON" events.json 4
check "value: {json: price} of a record without it" \
    reason amounts/2.value "missing JSON field 'price'" events.json 3
check "timestamp of a text that is not a time" \
    reason times/2.timestamp "JSON field 't' 'yesterday' is not a time in format rfc3339" events.json 1
check "timestamp of a record without the field" reason times/2.timestamp "missing JSON field 't'" events.json 2
check "no rejection without a reason" \
    bash -c "! grep 'rejected a record (record could not be processed)' '$log'"
finish || sl_fail "some checks failed"
sl_pass

#!/usr/bin/env bash
# test_http_config.sh -- the http: section of a pipeline file: checked with file:line:column
# errors (a remote address without a token, bad addresses, unknown keys, an empty token),
# the token never printed by `sluice check` nor logged; a port that is taken stops
# `sluice run` with a clear error; `sluice demo` serves 127.0.0.1:4040 or the next free port
# and says which.
source "$(dirname "$0")/lib.sh"
sl_setup

# pipeline FILE HTTP_SECTION: writes a small valid pipeline with that http section.
pipeline() {
    cat >"$1" <<YAML
app:
  name: http_config
  batch_interval: 200ms
sources:
  - name: poem
    type: generate
    rate: 20
sinks:
  - name: out
    type: stdout
    from: poem
http:
$2
YAML
}

# check_fails FILE REGEX: sluice check FILE exits 2 with one line matching REGEX.
check_fails() {
    local out rc
    out=$("$SLUICE_BIN" check "$1" 2>&1)
    rc=$?
    [ "$rc" -eq 2 ] || sl_fail "sluice check $1: exit $rc, expected 2: $out"
    echo "$out" | grep -Eq -- "$2" || sl_fail "sluice check $1: '$out' does not match '$2'"
}

f="$SL_TMP/remote.yaml"
pipeline "$f" "  listen: 0.0.0.0:4040"
check_fails "$f" "^$f:13:11: error: http.listen: listen address '0.0.0.0:4040' is not a loopback address: set a token"

pipeline "$f" "  listen: \"[::]:4040\""
check_fails "$f" "^$f:13:11: error: http.listen: .* is not a loopback address"

pipeline "$f" "  listen: 127.0.0.1"
check_fails "$f" "^$f:13:11: error: http.listen: bad listen address '127.0.0.1': no port"

pipeline "$f" "  listen: 127.0.0.1:70000"
check_fails "$f" "^$f:13:11: error: http.listen: .*the port must be 0..65535"

pipeline "$f" "  listen: ::1:4040"
check_fails "$f" "^$f:13:11: error: http.listen: .*in brackets"

pipeline "$f" "  lisen: 127.0.0.1:4040"
check_fails "$f" "^$f:13:3: error: unknown key 'lisen' in http \(did you mean 'listen'\?\); valid keys: listen, token, allow_remote, enabled"

pipeline "$f" "  token: \"\""
check_fails "$f" "^$f:13:10: error: http.token is empty"

pipeline "$f" "  allow_remote: maybe"
check_fails "$f" "^$f:13:17: error: http.allow_remote must be true or false"

pipeline "$f" "  - listen"
check_fails "$f" "^$f:13:3: error: http must be a mapping"

# A remote address with a token, or with allow_remote, is accepted; the token never shows.
secret="very-secret-$RANDOM$RANDOM"
pipeline "$f" "  listen: 0.0.0.0:4040
  token: \${HTTP_TOKEN}"
out=$(HTTP_TOKEN=$secret "$SLUICE_BIN" check "$f" 2>&1) || sl_fail "check with a token: $out"
echo "$out" | grep -q "^  token: \*\*\*$" || sl_fail "check does not show the token as ***: $out"
echo "$out" | grep -q "^  listen: 0.0.0.0:4040$" || sl_fail "check does not show listen: $out"
echo "$out" | grep -q -- "$secret" && sl_fail "sluice check printed the token"
pipeline "$f" "  listen: 0.0.0.0:4040
  allow_remote: true"
"$SLUICE_BIN" check "$f" >/dev/null 2>&1 || sl_fail "allow_remote: true is refused"
pipeline "$f" "  listen: 0.0.0.0:4040
  enabled: false"
out=$("$SLUICE_BIN" check "$f" 2>&1) || sl_fail "a disabled server is still checked: $out"
echo "$out" | grep -q "^http: (disabled)$" || sl_fail "check does not say disabled: $out"

# sluice run on a port that is taken: exit 1, a clear message; the token is not logged.
busy_port=$(sl_free_port)
sl_bg nc -lk 127.0.0.1 "$busy_port"
sl_wait_port "$busy_port" 5 || sl_fail "cannot occupy a port"
pipeline "$f" "  listen: 127.0.0.1:$busy_port
  token: $secret"
"$SLUICE_BIN" run "$f" --seconds 5 >"$SL_TMP/busy.out" 2>"$SL_TMP/busy.log"
rc=$?
[ "$rc" -eq 1 ] || sl_fail "run on a taken port: exit $rc, expected 1"
grep -q "cannot serve the status page: cannot listen on 127.0.0.1:$busy_port: Address already in use" \
    "$SL_TMP/busy.log" || sl_fail "no clear message: $(cat "$SL_TMP/busy.log")"
grep -q -- "$secret" "$SL_TMP/busy.log" "$SL_TMP/busy.out" && sl_fail "the token was logged"

# Port 0: the kernel chooses, the log says which.
pipeline "$f" "  listen: 127.0.0.1:0"
sl_start zero "$f" --seconds 3
sl_wait_for_line "$SL_TMP/zero.log" "status page at http://127.0.0.1:[1-9][0-9]*/" 10 ||
    sl_fail "port 0: no address in the log: $(cat "$SL_TMP/zero.log")"

# Two demos at once: the first serves 4040 (or the next free port if something else has
# it), the second the next free one, and says that 4040 is busy.
"$SLUICE_BIN" demo --seconds 6 >"$SL_TMP/demo1.out" 2>"$SL_TMP/demo1.log" &
SL_PIDS+=($!)
sl_wait_for_line "$SL_TMP/demo1.log" "status page at http://127.0.0.1:[0-9]+/" 10 ||
    sl_fail "demo: no status page line: $(cat "$SL_TMP/demo1.log")"
"$SLUICE_BIN" demo --seconds 4 >"$SL_TMP/demo2.out" 2>"$SL_TMP/demo2.log" &
SL_PIDS+=($!)
sl_wait_for_line "$SL_TMP/demo2.log" "status page at http://127.0.0.1:[0-9]+/ \(port 4040 is busy\)" 10 ||
    sl_fail "second demo: $(cat "$SL_TMP/demo2.log")"
p1=$(grep -o "status page at http://127.0.0.1:[0-9]*" "$SL_TMP/demo1.log" | grep -o "[0-9]*$")
p2=$(grep -o "status page at http://127.0.0.1:[0-9]*" "$SL_TMP/demo2.log" | grep -o "[0-9]*$")
[ "$p1" != "$p2" ] || sl_fail "both demos on port $p1"
[ "$p2" -gt 4040 ] && [ "$p2" -le 4056 ] || sl_fail "the second demo is on $p2, not 4041..4056"
sl_pass

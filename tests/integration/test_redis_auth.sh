#!/usr/bin/env bash
# test_redis_auth.sh -- issue 15: an authentication failure is permanent and says so. A
# redis-server of its own (127.0.0.1, a free port, --requirepass): a wrong password, or none,
# used to end in "invalid argument" (or in the first batch's error); now the sink's start
# fails with "redis HOST:PORT: authentication failed (AUTH): <the server's reply>", the
# pipeline does not run, sluice exits 1 at once, and the password is not in the log.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup
trap 'unfinished; sl_cleanup' EXIT

command -v redis-server >/dev/null || sl_fail "redis-server is not installed (tests/infra/deps.sh)"
id="$$_$RANDOM"
app="redis_auth_$id"
pass="right_pw_$id"
wrong="wrong_pw_$id"
rport=$(sl_free_port)
sl_bg redis-server --bind 127.0.0.1 --port "$rport" --requirepass "$pass" --save "" \
    --appendonly no --dir "$SL_TMP" --logfile "$SL_TMP/redis-server.txt"
sl_wait_port "$rport" 20 || sl_fail "redis-server did not listen on $rport"

# run NAME SECONDS [PASSWORD]: a word count into the server (bounded to 30 s); sets rc, secs.
run() {
    local port
    port=$(sl_free_port)
    {
        sl_tcp_wordcount_yaml "$app" "$port"
        cat <<YAML
sinks:
  - name: kv
    type: redis
    from: counts
    host: 127.0.0.1
    port: $rport
    command: hincrby
    key: "wc:$id"
YAML
        [ -z "${3:-}" ] || echo "    password: \"$3\""
    } >"$SL_TMP/$1.yaml"
    local t0=$SECONDS
    rc=0
    timeout 30 "$SLUICE_BIN" run "$SL_TMP/$1.yaml" --seconds "$2" >"$SL_TMP/$1.out" \
        2>"$SL_TMP/$1.log" || rc=$?
    secs=$((SECONDS - t0))
}

run wrong 20 "$wrong"
check "wrong password: exit status 1 (got $rc)" test "$rc" -eq 1
check "wrong password: at once, not after --seconds (${secs}s)" test "$secs" -lt 10
check "wrong password: says authentication failed, with the server's reply" \
    grep -q "redis 127.0.0.1:$rport: authentication failed (AUTH): WRONGPASS" "$SL_TMP/wrong.log"
check "wrong password: not 'invalid argument'" bash -c "! grep -q 'invalid argument' '$SL_TMP/wrong.log'"
check "wrong password: the pipeline did not run" bash -c "! grep -q \"' started\" '$SL_TMP/wrong.log'"
check "wrong password: the password is not in the log" bash -c "! grep -q '$wrong' '$SL_TMP/wrong.log'"

run nopw 20
check "no password: exit status 1 (got $rc)" test "$rc" -eq 1
check "no password: at once (${secs}s)" test "$secs" -lt 10
check "no password: says authentication failed (NOAUTH)" \
    grep -q "redis 127.0.0.1:$rport: authentication failed (no password set): NOAUTH" "$SL_TMP/nopw.log"

run right 3 "$pass"
check "right password: runs until --seconds, exit status 0 (got $rc)" test "$rc" -eq 0
check "right password: connected" grep -q "redis: connected to 127.0.0.1:$rport" "$SL_TMP/right.log"

finish

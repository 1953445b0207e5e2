#!/usr/bin/env bash
# test_postgres_auth.sh -- issue 15: credentials the server refuses are permanent. A wrong
# password (and no password at all) over TCP used to be logged as "not reachable yet" and
# retried for ever; now the sink's start fails naming the user and the server, the pipeline
# does not run, sluice exits 1 at once, and the password is not in the log.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

id="$$_$RANDOM"
table="auth_$id"
app="pg_auth_$id"
sl_pg "$app" "$table"
wrong="wrong_pw_$id"

# run NAME CONNINFO [SECONDS]: runs a word count into PostgreSQL with CONNINFO for SECONDS
# (default 20; bounded to 30 s);
# sets rc and secs.
run() {
    local port
    port=$(sl_free_port)
    {
        sl_tcp_wordcount_yaml "$app" "$port"
        cat <<YAML
sinks:
  - name: db
    type: postgres
    from: counts
    conninfo: "$2"
    table: $table
    columns: [word=key, count=num]
    create_table: true
YAML
    } >"$SL_TMP/$1.yaml"
    local t0=$SECONDS
    rc=0
    env -u PGPASSWORD timeout 30 "$SLUICE_BIN" run "$SL_TMP/$1.yaml" --seconds "${3:-20}" \
        >"$SL_TMP/$1.out" 2>"$SL_TMP/$1.log" || rc=$?
    secs=$((SECONDS - t0))
}

base="host=127.0.0.1 port=$PGPORT user=$PGUSER dbname=$PGDATABASE"

run wrong "$base password=$wrong"
check "wrong password: exit status 1 (got $rc)" test "$rc" -eq 1
check "wrong password: at once, not after --seconds (${secs}s)" test "$secs" -lt 10
check "wrong password: the error names the user and the server" \
    grep -q "postgres: authentication failed for user $PGUSER at 127.0.0.1:$PGPORT: .*password authentication failed" "$SL_TMP/wrong.log"
check "wrong password: not taken for an unreachable server" \
    bash -c "! grep -q 'not reachable yet' '$SL_TMP/wrong.log'"
check "wrong password: the pipeline did not run" bash -c "! grep -q \"' started\" '$SL_TMP/wrong.log'"
check "wrong password: the password is not in the log" bash -c "! grep -q '$wrong' '$SL_TMP/wrong.log'"

run nopw "$base"
check "no password: exit status 1 (got $rc)" test "$rc" -eq 1
check "no password: at once (${secs}s)" test "$secs" -lt 10
check "no password: the error names the user and the server" \
    grep -q "postgres: authentication failed for user $PGUSER at 127.0.0.1:$PGPORT: .*no password supplied" "$SL_TMP/nopw.log"

run right "$base password=$PGPASSWORD" 3
check "right password: runs until --seconds, exit status 0 (got $rc)" test "$rc" -eq 0
check "right password: connected" grep -q "postgres: connected to" "$SL_TMP/right.log"

finish

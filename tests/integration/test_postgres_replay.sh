#!/usr/bin/env bash
# test_postgres_replay.sh -- the postgres sink's commit protocol against a real server,
# driven batch by batch through the connector struct by pg_replay (one process per batch,
# as after a restart): a batch written twice is skipped the second time (rows not doubled,
# one commit row), the last commit's input description reads back, a record the server
# rejects (a CHECK constraint) leaves out only that row, and a record that is no number is
# skipped and logged. Checked with psql.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

eq() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }

helper="$SLUICE_BUILD/pg_replay"
[ -x "$helper" ] || sl_fail "no $helper: tests/integration/pg_replay.c is not built (CMake)"
id="$$_$RANDOM"
t1="replay_$id"
t2="checked_$id"
sl_pg pg_replay "$t1" "$t2"
q "DELETE FROM sluice_commits WHERE pipeline = 'pg_replay'" >/dev/null 2>&1 || true

# 1. Batch 1000 twice, then batch 2000: counts once, then twice.
timeout 60 "$helper" write "$t1" increment 1000 >"$SL_TMP/w1.out" 2>"$SL_TMP/w1.log"
check "first write of batch 1000 succeeds" grep -q "write: success" "$SL_TMP/w1.out"
check "the record that is no number is logged as skipped" \
    grep -q "record skipped (source test, topic words, partition 0, offset 0): column \"count\": 'x' is not an integer" "$SL_TMP/w1.log"
check "rows after batch 1000" eq "$(q "SELECT string_agg(word || '=' || count, ',' ORDER BY word) FROM $t1")" "a=1,b=2,big=1000"
timeout 60 "$helper" write "$t1" increment 1000 >"$SL_TMP/w2.out" 2>"$SL_TMP/w2.log"
check "replayed batch 1000 returns success" grep -q "write: success" "$SL_TMP/w2.out"
check "replayed batch 1000 is logged as skipped" grep -q "batch 1000 already committed (a replay): skipped" "$SL_TMP/w2.log"
check "rows not doubled by the replay" eq "$(q "SELECT string_agg(word || '=' || count, ',' ORDER BY word) FROM $t1")" "a=1,b=2,big=1000"
check "one commit row for batch 1000" eq "$(q "SELECT count(*) FROM sluice_commits WHERE pipeline = 'pg_replay' AND sink = 'replay_sink' AND batch_time = 1000")" "1"
check "the commit row holds the batch's inputs" eq "$(q "SELECT inputs FROM sluice_commits WHERE pipeline = 'pg_replay' AND sink = 'replay_sink' AND batch_time = 1000")" "words-0: [10, 14)"
timeout 60 "$helper" write "$t1" increment 2000 >/dev/null 2>&1
check "batch 2000 increments" eq "$(q "SELECT string_agg(word || '=' || count, ',' ORDER BY word) FROM $t1")" "a=2,b=4,big=2000"
check "sl__postgres_last_commit reads batch 2000" eq "$(timeout 60 "$helper" last "$t1" 2>/dev/null)" "2000 words-0: [10, 14)"

# 2. A CHECK constraint rejects big: written again with savepoints, only big left out.
q "CREATE TABLE $t2 (word text PRIMARY KEY, count bigint CHECK (count < 100))"
timeout 60 "$helper" write "$t2" upsert 3000 false >"$SL_TMP/w3.out" 2>"$SL_TMP/w3.log"
check "batch with a row the server rejects succeeds" grep -q "write: success" "$SL_TMP/w3.out"
check "the rejected row is logged with the server's reason" grep -q 'record skipped.*rejected by the server.*check constraint' "$SL_TMP/w3.log"
check "the other rows are written" eq "$(q "SELECT string_agg(word || '=' || count, ',' ORDER BY word) FROM $t2")" "a=1,b=2"
check "batch 3000 committed once" eq "$(q "SELECT count(*) FROM sluice_commits WHERE pipeline = 'pg_replay' AND batch_time = 3000")" "1"

# 3. The password never reaches the log, even when the connection fails.
PGPASSWORD=wrong-secret-pw timeout 60 "$helper" write "$t1" increment 4000 >"$SL_TMP/w4.out" 2>"$SL_TMP/w4.log" || true
# (A refused login is permanent: fatal, not retried; README "Errors: retried or not".)
check "a refused password fails the write, not retried" grep -q "write: fatal error" "$SL_TMP/w4.out"
check "the authentication error is named" \
    grep -q "authentication failed for user .*password authentication failed" "$SL_TMP/w4.log"
check "the password is not logged" bash -c "! grep -q wrong-secret-pw '$SL_TMP/w4.log'"

finish

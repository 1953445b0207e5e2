#!/usr/bin/env bash
# test_redis_replay.sh -- the redis sink's commit protocol against a real server, driven
# batch by batch through the connector struct by redis_replay (one process per batch, as
# after a restart): a batch written twice is skipped the second time (counts not doubled),
# the commit key holds the batch's inputs with an expiry, a command that fails inside EXEC
# (WRONGTYPE) leaves out only its record, and a record that is no number is skipped and
# logged. Checked with redis-cli.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

trap 'unfinished; sl_cleanup' EXIT
eq() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }

helper="$SLUICE_BUILD/redis_replay"
[ -x "$helper" ] || sl_fail "no $helper: tests/integration/redis_replay.c is not built (CMake)"
sl_server redis Redis
r() { timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw "$@"; }

id="$$_$RANDOM"
h="replay:$id"
ck="sluice:commit:redis_replay:replay_sink"
trap 'unfinished; r DEL "$h" "k$id:a" "k$id:b" "k$id:big" "$ck:1000" "$ck:2000" "$ck:3000" >/dev/null 2>&1 || true; sl_cleanup' EXIT
r DEL "$ck:1000" "$ck:2000" "$ck:3000" >/dev/null
hash() { r HGETALL "$h" | paste -d= - - | sort | paste -sd, -; }

# 1. Batch 1000 twice, then batch 2000.
timeout 60 "$helper" "$REDIS_PORT" hincrby "$h" 1000 >"$SL_TMP/w1.out" 2>"$SL_TMP/w1.log"
check "first write of batch 1000 succeeds" grep -q "write: success" "$SL_TMP/w1.out"
check "the record that is no number is logged as skipped" \
    grep -q "record skipped (source test, topic words, partition 0, offset 0): the value 'x' is not a number" "$SL_TMP/w1.log"
check "hash after batch 1000" eq "$(hash)" "a=1,b=2,big=1000"
timeout 60 "$helper" "$REDIS_PORT" hincrby "$h" 1000 >"$SL_TMP/w2.out" 2>"$SL_TMP/w2.log"
check "replayed batch 1000 returns success" grep -q "write: success" "$SL_TMP/w2.out"
check "replayed batch 1000 is logged as skipped" grep -q "batch 1000 already committed (a replay): skipped" "$SL_TMP/w2.log"
check "counts not doubled by the replay" eq "$(hash)" "a=1,b=2,big=1000"
check "the commit key holds the batch's inputs" eq "$(r GET "$ck:1000")" "words-0: [10, 14)"
ttl=$(r PTTL "$ck:1000")
check "the commit key expires (about 7 days)" test "$ttl" -gt 600000000 -a "$ttl" -le 604800000
timeout 60 "$helper" "$REDIS_PORT" hincrby "$h" 2000 >/dev/null 2>&1
check "batch 2000 increments" eq "$(hash)" "a=2,b=4,big=2000"

# 2. k:b is a list: INCRBY fails inside EXEC for b only.
r RPUSH "k$id:b" x >/dev/null
timeout 60 "$helper" "$REDIS_PORT" incrby "k$id:{key}" 3000 >"$SL_TMP/w3.out" 2>"$SL_TMP/w3.log"
check "batch with a failing command succeeds" grep -q "write: success" "$SL_TMP/w3.out"
check "the failing record is logged with Redis's error" grep -q "record skipped.*failed in EXEC: WRONGTYPE" "$SL_TMP/w3.log"
check "the other keys are written" eq "$(r GET "k$id:a"),$(r GET "k$id:big"),$(r TYPE "k$id:b")" "1,1000,list"
check "batch 3000 committed" eq "$(r EXISTS "$ck:3000")" "1"

finish

#!/usr/bin/env bash
# test_redis_positions.sh -- the redis sink's input positions against a real server (issue
# 14: exactly once across a consumer group), driven batch by batch through the connector
# struct by redis_positions (one process per batch, as the instances of a group write):
# a partition's first batch is written and its position recorded in the same EXEC; the
# same input again is skipped; a batch that does not start at the position is fenced off
# (SL_ERR_FENCED, nothing written), also when only one of its ranges is new; two writers
# racing for the same range write it once (the loser's EXEC fails on the WATCHed hash, it
# checks again and skips); the positions callback returns the hash's values, -1 for
# unknown partitions, and SL_ERR_RETRY with the reason when Redis is down. Checked with
# redis-cli.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

trap 'unfinished; sl_cleanup' EXIT
eq() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }

helper="$SLUICE_BUILD/redis_positions"
[ -x "$helper" ] || sl_fail "no $helper: tests/integration/redis_positions.c is not built (CMake)"
sl_server redis Redis
r() { timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw "$@"; }

id="$$_$RANDOM"
t="w$id"     # the topic: fields of this run only
h="pos:$id"  # the data: HINCRBY h <topic>-<partition> 1 per offset written
pk="sluice:commit:positions:redis_positions:pos_sink"
ck="sluice:commit:redis_positions:pos_sink"
times=(1000 1500 2000 2500 2600 3000 3001 4000 5000)
keys() { printf '%s\n' "$h" "$pk"; for b in "${times[@]}"; do echo "$ck:$b"; done; }
trap 'unfinished; keys | xargs redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL >/dev/null 2>&1 || true; sl_cleanup' EXIT
keys | xargs redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL >/dev/null

# write NAME BATCH_MS RANGE...: runs the helper, its output in $SL_TMP/NAME.out, its log in
# NAME.log; sets st to its exit status (0 success, 3 fenced).
write() {
    local name=$1 bt=$2
    shift 2
    st=0
    timeout 60 "$helper" "$REDIS_PORT" write "$h" "$bt" "$@" >"$SL_TMP/$name.out" \
        2>"$SL_TMP/$name.log" || st=$?
}
pos() { r HGET "$pk" "$(printf 'kin\t%s\t%s' "$1" "$2")"; }
count() { r HGET "$h" "$1"; }

# (a) The first batch of a partition writes its records and records where it ends.
write a 1000 "$t,0,0,5"
check "(a) first batch of partition 0 succeeds" eq "$st" 0
check "(a) its records are written" eq "$(count "$t-0")" 5
check "(a) the position is the range's until" eq "$(pos "$t" 0)" 5

# (b) The same input again, in another batch (another instance, or a replay whose commit
# key is gone): skipped, nothing written twice.
write b 1500 "$t,0,0,5"
check "(b) the same range again returns success" eq "$st" 0
check "(b) it is logged as held already" \
    grep -q "batch 1500 already committed (the positions hold its input): skipped" "$SL_TMP/b.log"
check "(b) data unchanged" eq "$(count "$t-0")" 5
check "(b) position unchanged" eq "$(pos "$t" 0)" 5

# (c) A batch that starts elsewhere than the position (an instance that lost the partition)
# is fenced off; the next batch that starts at the position is written.
write c 2000 "$t,0,3,8"
check "(c) a range starting before the position is fenced" eq "$st" 3
check "(c) the error names the partition, the position and the range" \
    grep -q "errstr: .*topic '$t', partition 0: the sink is at offset 5 .*the batch reads \[3, 8)" \
    "$SL_TMP/c.out"
check "(c) data unchanged" eq "$(count "$t-0")" 5
check "(c) position unchanged" eq "$(pos "$t" 0)" 5
check "(c) the fenced batch left no commit key" eq "$(r EXISTS "$ck:2000")" 0
write c2 2500 "$t,0,9,12"
check "(c) a range starting after the position is fenced too" eq "$st" 3
write c3 2600 "$t,0,5,9"
check "(c) the batch that starts at the position is written" eq "$st" 0
check "(c) ... its records" eq "$(count "$t-0")" 9
check "(c) ... its position" eq "$(pos "$t" 0)" 9

# (d) One range held already, one new: fenced, neither written.
write d 4000 "$t,0,5,9" "$t,1,0,4"
check "(d) held + new range is fenced" eq "$st" 3
check "(d) the error names the new range" \
    grep -q "errstr: .*partition 1: the sink holds nothing of it .*the batch reads \[0, 4)" "$SL_TMP/d.out"
check "(d) nothing of partition 1 written" eq "$(r HEXISTS "$h" "$t-1")" 0
check "(d) no position for partition 1" eq "$(r HEXISTS "$pk" "$(printf 'kin\t%s\t1' "$t")")" 0
check "(d) partition 0 unchanged" eq "$(count "$t-0"),$(pos "$t" 0)" "9,9"

# (e) Two writers race for partition 2's first range. CLIENT PAUSE WRITE holds both EXECs
# while their WATCH and HMGET (reads) go through, so that both see no position: the first
# EXEC writes, the second fails on the WATCHed hash, checks again and skips.
r CLIENT PAUSE 2000 WRITE >/dev/null
write e1 3000 "$t,2,0,3000" &
p1=$!
write e2 3001 "$t,2,0,3000" &
p2=$!
wait "$p1" "$p2" || true
check "(e) both racers return success" grep -q "write: success" "$SL_TMP/e1.out" "$SL_TMP/e2.out"
check "(e) ... the two of them" eq "$(cat "$SL_TMP/e1.out" "$SL_TMP/e2.out" | grep -c 'write: success')" 2
check "(e) the records are written exactly once" eq "$(count "$t-2")" 3000
check "(e) the position is the range's until" eq "$(pos "$t" 2)" 3000
check "(e) one racer's EXEC lost and it checked again" \
    grep -q "the positions changed during the transaction (another instance wrote): checking again" \
    "$SL_TMP/e1.log" "$SL_TMP/e2.log"
check "(e) ... then skipped the batch" \
    grep -q "already committed (the positions hold its input): skipped" "$SL_TMP/e1.log" "$SL_TMP/e2.log"

# (f) The positions callback: the hash's values, -1 for partitions it does not hold; a
# topic with ':' has its own field.
write f 5000 "a:$t,0,0,2"
timeout 60 "$helper" "$REDIS_PORT" positions "$t,0" "$t,1" "$t,2" "a:$t,0" "$t:x,0" \
    >"$SL_TMP/f.out" 2>"$SL_TMP/f.log" || true
check "(f) positions returns the hash's values, -1 for unknown" \
    eq "$(paste -sd' ' "$SL_TMP/f.out")" "$t,0 9 $t,1 -1 $t,2 3000 a:$t,0 2 $t:x,0 -1"

# (g) Redis down: the positions callback says so and asks to be retried.
port=$(sl_free_port)
st=0
timeout 60 "$helper" "$port" positions "$t,0" >"$SL_TMP/g.out" 2>"$SL_TMP/g.log" || st=$?
check "(g) positions fails when Redis is down" eq "$st" 1
check "(g) ... with SL_ERR_RETRY and the reason" \
    grep -q "positions: temporary failure, retrying" "$SL_TMP/g.out"
check "(g) ... errstr names the server" grep -q "errstr: redis 127.0.0.1:$port: cannot connect" "$SL_TMP/g.out"

finish

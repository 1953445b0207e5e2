#!/usr/bin/env bash
# test_postgres_positions.sh -- the postgres sink's input positions (exactly once across a
# consumer group) against a real server, driven through the connector struct by pg_positions
# (one process per batch, each as another instance of the group): the first batch of a
# partition writes and records its until; the same batch again is skipped; a batch that
# starts elsewhere, or reads one held and one new range, is fenced with nothing written; two
# instances racing to write the same first range of a new partition write it once; the
# positions callback reads what the table holds (-1 for an unknown partition) and is a retry
# when the server is down. Checked with psql.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

eq() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" >&2; return 1; }; }

helper="$SLUICE_BUILD/pg_positions"
[ -x "$helper" ] || sl_fail "no $helper: tests/integration/pg_positions.c is not built (CMake)"
id="$$_$RANDOM"
app="pg_positions_$id"
t="positions_$id"
sl_pg "$app" "$t"
trap 'unfinished; q "DELETE FROM sluice_positions WHERE pipeline = '"'$app'"'" >/dev/null 2>&1 || true; sl_pg_drop; sl_cleanup' EXIT

# write LOG INSTANCE BATCH_MS RANGE...: one batch through the sink; its output in $SL_TMP/LOG.out.
write() {
    local log=$1
    shift
    timeout 60 "$helper" write "$t" "$app" "$@" >"$SL_TMP/$log.out" 2>"$SL_TMP/$log.log" || true
}
positions() {
    q "SELECT string_agg(topic || '[' || kafka_partition || ']=' || next_offset || '@' || instance, ',' ORDER BY topic, kafka_partition) FROM sluice_positions WHERE pipeline = '$app' AND sink = 'pos_sink' AND source = 'kin'"
}
rows() { q "SELECT count(*) || ':' || coalesce(min(off), -1) || '-' || coalesce(max(off), -1) FROM $t WHERE part = $1"; }
# The whole state, to check that a refused batch changed nothing.
state() { q "SELECT (SELECT count(*) FROM $t) || '/' || (SELECT string_agg(kafka_partition || '=' || next_offset || '@' || updated_at, ',' ORDER BY topic, kafka_partition) FROM sluice_positions WHERE pipeline = '$app')"; }

# (a) The first batch of a partition writes and records its until.
write a1 i1 1000 kin:orders:3:100:110
check "(a) the first batch of orders [3] is written" grep -qx "write: success" "$SL_TMP/a1.out"
check "(a) its rows are in the table" eq "$(rows 3)" "10:100-109"
check "(a) the positions table holds until 110 for orders [3], written by i1" eq "$(positions)" "orders[3]=110@i1"
before=$(state)

# (b) The same batch again (another instance, another batch time: only the positions say it
# is held) is skipped, the table unchanged.
write b1 i2 2000 kin:orders:3:100:110
check "(b) the same range again returns success" grep -qx "write: success" "$SL_TMP/b1.out"
check "(b) it is logged as skipped" grep -q "batch 2000 already committed (a replay): skipped" "$SL_TMP/b1.log"
check "(b) table and positions unchanged" eq "$(state)" "$before"
check "(b) no commit row for the skipped batch" eq "$(q "SELECT count(*) FROM sluice_commits WHERE pipeline = '$app' AND batch_time = 2000")" "0"

# (c) A batch that starts elsewhere than the position is fenced: nothing written.
write c1 i2 3000 kin:orders:3:105:120
check "(c) a range starting inside what is held is fenced" grep -qx "write: input held elsewhere: resuming where the sinks are" "$SL_TMP/c1.out"
check "(c) the sink says which partition and where it is" grep -qx "why: orders \[3\]: this sink is at offset 110, the batch reads 105-120" "$SL_TMP/c1.out"
write c2 i2 3001 kin:orders:3:115:120
check "(c) a range starting past the position (a gap) is fenced" grep -q "why: orders \[3\]: this sink is at offset 110, the batch reads 115-120" "$SL_TMP/c2.out"
check "(c) table and positions unchanged" eq "$(state)" "$before"

# (d) One range held, one new: fenced, nothing written (not even the new partition's row).
write d1 i2 4000 kin:orders:3:100:110 kin:orders:4:0:5
check "(d) a held range with a new one is fenced" grep -q "write: input held elsewhere" "$SL_TMP/d1.out"
check "(d) errstr names both" grep -q "why: orders \[3\].*(held already), but orders \[4\] 0-5 is not held" "$SL_TMP/d1.out"
check "(d) table and positions unchanged" eq "$(state)" "$before"
# The next batch of both, from the positions, writes both and moves both.
write d2 i1 4001 kin:orders:3:110:112 kin:orders:4:0:5
check "(d) the batch that continues both partitions is written" grep -qx "write: success" "$SL_TMP/d2.out"
check "(d) both positions move in one transaction" eq "$(positions)" "orders[3]=112@i1,orders[4]=5@i1"
check "(d) rows of orders [4]" eq "$(rows 4)" "5:0-4"

# (e) Two instances race to write the first range of a new partition. A statement trigger
# makes the data's COPY sleep inside the transaction, so the second writer arrives while the
# first holds the new row: it must wait, then find the range held.
q "CREATE FUNCTION ${t}_slow() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END \$\$"
q "CREATE TRIGGER slow BEFORE INSERT ON $t FOR EACH STATEMENT EXECUTE FUNCTION ${t}_slow()"
timeout 60 "$helper" write "$t" "$app" r1 5000 kin:orders:7:0:20 >"$SL_TMP/e1.out" 2>"$SL_TMP/e1.log" &
p1=$!
timeout 60 "$helper" write "$t" "$app" r2 5001 kin:orders:7:0:20 >"$SL_TMP/e2.out" 2>"$SL_TMP/e2.log" &
p2=$!
waited=0
for _ in $(seq 1 30); do
    n=$(q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'sluice' AND wait_event_type = 'Lock'")
    [ "$n" -ge 1 ] && { waited=1; break; }
    sleep 0.1
done
wait $p1 || true
wait $p2 || true
check "(e) one writer waited for the other's lock (the race happened)" eq "$waited" "1"
check "(e) both writers return success" eq "$(cat "$SL_TMP/e1.out" "$SL_TMP/e2.out" | grep -cx 'write: success')" "2"
check "(e) exactly one is logged as skipped" eq "$(cat "$SL_TMP/e1.log" "$SL_TMP/e2.log" | grep -c 'already committed (a replay): skipped')" "1"
check "(e) the data rows of orders [7] once" eq "$(rows 7)" "20:0-19"
check "(e) one commit row for the two batches" eq "$(q "SELECT count(*) FROM sluice_commits WHERE pipeline = '$app' AND batch_time IN (5000, 5001)")" "1"
check "(e) orders [7] is at 20" eq "$(q "SELECT next_offset FROM sluice_positions WHERE pipeline = '$app' AND kafka_partition = 7")" "20"
q "DROP TRIGGER slow ON $t"
q "DROP FUNCTION ${t}_slow()"

# (f) The positions callback reads what the table holds, -1 for an unknown partition.
out=$(timeout 60 "$helper" read "$t" "$app" kin:orders:3 kin:orders:9 kin:orders:7 kin:orders:4 other:orders:3 2>"$SL_TMP/f1.log" || true)
check "(f) positions: held, unknown, held, held, another source's" eq "$(echo $out)" "orders [3] 112 orders [9] -1 orders [7] 20 orders [4] 5 orders [3] -1"
out=$(timeout 60 "$helper" read "$t" "${app}_other" kin:orders:3 2>>"$SL_TMP/f1.log" || true)
check "(f) another pipeline holds nothing" eq "$out" "orders [3] -1"
out=$(PGPORT=1 timeout 60 "$helper" read "$t" "$app" kin:orders:3 2>>"$SL_TMP/f1.log" || true)
check "(f) a server that is down is a retry, with the reason" grep -q "read: temporary failure.*: postgres: cannot connect" <<<"$out"

finish

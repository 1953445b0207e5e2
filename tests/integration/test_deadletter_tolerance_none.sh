#!/usr/bin/env bash
# test_deadletter_tolerance_none.sh -- errors.tolerance: none, against the real Kafka and
# PostgreSQL: the postgres sink meets a value that is no number. sluice stops with exit
# status 1, naming the sink and the record's partition and offset; the batch is not
# committed (psql). After the configuration is changed to tolerance all (with a dead-letter
# file), a restart runs that batch again from the checkpoint: every good row is in the table
# once, the bad record in the dead-letter file (nothing lost, nothing doubled).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 120
kafka_up
infra_up postgres PostgreSQL
q() { timeout 30 psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

T=$(it_unique dlnone)
G=$(it_unique gdlnone)
APP="dlnone_$$_$RANDOM"
TABLE="dl_none_$$_$RANDOM"
trap 'q "DROP TABLE IF EXISTS $TABLE; DELETE FROM sluice_commits WHERE pipeline = '"'"'$APP'"'"'" >/dev/null 2>&1 || true; it_cleanup' EXIT
kafka_topic "$T" 1

write_config() { # errors-block
    {
        it_yaml_kafka_head "$APP" "$T" "$G"
        cat <<EOF
sinks:
  - name: db
    type: postgres
    from: kin
    table: $TABLE
    create_table: true
    columns: [id=json:id::bigint, n=json:n::bigint]
$1
EOF
    } >"$IT_TMP/p.yaml"
}
rows() { q "SELECT count(*) FROM $TABLE" 2>/dev/null || echo 0; }

# ==== Run 1: tolerance none ====
printf 'k%d\t{"id":%d,"n":%d}\n' 1 1 10 2 2 20 3 3 30 4 4 40 5 5 50 >"$IT_TMP/in1.txt"
kafka_produce "$T" "$IT_TMP/in1.txt"
write_config "    errors:
      tolerance: none"
it_sluice run1 "$IT_TMP/p.yaml"
PID=$IT_LAST_PID
it_check "the first 5 rows are written" it_wait_until 30 bash -c "[ \"\$(timeout 10 psql -X -q -A -t -c 'SELECT count(*) FROM $TABLE' 2>/dev/null)\" = 5 ]"
printf 'k6\t{"id":6,"n":60}\nk7\t{"id":7,"n":"abc"}\nk8\t{"id":8,"n":80}\n' >"$IT_TMP/in2.txt"
kafka_produce "$T" "$IT_TMP/in2.txt"
bad_off=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t "$T" -e -q -f '%p %o %k\n' | awk '$3 == "k7" { print $1 ", offset " $2 }')
it_eq "kcat: the bad record" "0, offset 6" "$bad_off"
if it_wait_until 30 bash -c "! kill -0 $PID 2>/dev/null"; then
    it_ok "sluice stops by itself"
else
    it_bad "sluice still runs after the rejected record"
fi
rc=0
wait "$PID" 2>/dev/null || rc=$?
IT_PIDS=()
it_eq "exit status" 1 "$rc"
it_check "the error names the sink and the record's partition and offset" \
    it_grep_log run1 "\[error\] batch [0-9]+: db: batch [0-9]+: record rejected \(source kin, topic $T, partition $bad_off\): column \"n\": 'abc' is not an integer; errors.tolerance is none"
it_check "sluice says why it stopped" it_grep_log run1 'the pipeline stopped on an error'
it_eq "the batch with the bad record is not committed" 5 "$(rows)"

# ==== Run 2: tolerance all, dead letters to a file ====
write_config "    errors:
      tolerance: all
      dead_letter: {type: file, path: $IT_TMP/dead}"
it_sluice run2 "$IT_TMP/p.yaml"
PID=$IT_LAST_PID
DEAD="$IT_TMP/dead/$APP-db.jsonl"
it_check "after the restart the pending batch is written" it_wait_until 30 bash -c \
    "[ \"\$(timeout 10 psql -X -q -A -t -c 'SELECT count(*) FROM $TABLE' 2>/dev/null)\" = 7 ] && [ -s '$DEAD' ]"
sleep 1.5 # a batch or two more: nothing else may come
it_check "sluice stops cleanly on SIGTERM" it_stop "$PID"
it_eq "the table holds every good row once" "1|10 2|20 3|30 4|40 5|50 6|60 8|80" \
    "$(q "SELECT id || '|' || n FROM $TABLE ORDER BY id" | tr '\n' ' ' | sed 's/ $//')"
it_eq "the dead-letter file holds the bad record" "0 6 k7 {\"id\":7,\"n\":\"abc\"}" \
    "$(jq -r '"\(.partition) \(.offset) \(.key) \(.value)"' "$DEAD" | tr '\n' ' ' | sed 's/ $//')"
it_check "the restart ran the pending batch again" it_grep_log run2 'record skipped \(source kin'
it_finish

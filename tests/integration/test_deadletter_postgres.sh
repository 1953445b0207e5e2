#!/usr/bin/env bash
# test_deadletter_postgres.sh -- dead letters of the postgres sink to a file, against the real
# Kafka and PostgreSQL: JSON messages over 3 partitions, read by the direct Kafka source and
# written in append mode to a table with bigint columns. Some messages hold a value that is
# no number ("n": "abc"), some lack the field, one is not JSON (rejected by the sink before
# anything is sent); some break the table's CHECK (n < 800) (rejected by the server: the
# batch is written again row by row, and the records rejected before are not doubled).
# Checked with psql and kcat:
#   - the table holds exactly the good rows;
#   - the dead-letter file holds exactly the bad messages, once each, with the error, the
#     source, the topic, and the partition and offset kcat shows for them, key and value
#     intact;
#   - the sink's status counts them (records_rejected, dead_letters in /api/v1/sinks and
#     sluice_sink_dead_letters_total in /metrics).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 120
kafka_up
infra_up postgres PostgreSQL
command -v jq >/dev/null || it_abort "jq is not installed"
q() { timeout 30 psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

T=$(it_unique dlpg)
G=$(it_unique gdlpg)
APP="dlpg_$$_$RANDOM"
TABLE="dl_rows_$$_$RANDOM"
trap 'q "DROP TABLE IF EXISTS $TABLE; DELETE FROM sluice_commits WHERE pipeline = '"'"'$APP'"'"'" >/dev/null 2>&1 || true; it_cleanup' EXIT
kafka_topic "$T" 3

# 90 messages: every 7th has "n": "abc", every 11th (not 7th) has no "n", #50 is not JSON.
awk 'BEGIN {
    for (i = 1; i <= 90; i++) {
        if (i % 7 == 0) v = "{\"id\":" i ",\"n\":\"abc\"}"
        else if (i % 11 == 0) v = "{\"id\":" i "}"
        else if (i == 50) v = "not json " i
        else v = "{\"id\":" i ",\"n\":" i * 10 "}"
        printf "k%d\t%s\n", i, v
    }
}' >"$IT_TMP/in.txt"
kafka_produce "$T" "$IT_TMP/in.txt"
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$T" -e -q -f '%p\t%o\t%k\t%s\n' >"$IT_TMP/ref.tsv"
it_eq "kcat reads back the 90 messages" 90 "$(wc -l <"$IT_TMP/ref.tsv" | tr -d ' ')"
# The bad ones as kcat sees them: partition, offset, key, value; then the good rows: id and n.
good() { awk -F'\t' -v want="$1" '{ ok = match($4, /"n":[0-9]+/) && substr($4, RSTART + 4, RLENGTH - 4) + 0 < 800 } ok == want' "$IT_TMP/ref.tsv"; }
good 0 | sort >"$IT_TMP/bad.tsv"
good 1 | awk -F'\t' '{ sub(/^k/, "", $3); print $3 "|" $3 * 10 }' | sort -t'|' -k1,1n >"$IT_TMP/good.txt"
nbad=$(wc -l <"$IT_TMP/bad.tsv" | tr -d ' ')
ngood=$(wc -l <"$IT_TMP/good.txt" | tr -d ' ')
it_eq "the input has 29 bad messages" 29 "$nbad"
q "CREATE TABLE $TABLE (id bigint, n bigint CHECK (n < 800))"

{
    it_yaml_kafka_head "$APP" "$T" "$G"
    cat <<EOF
    max_rate_per_partition: 20
sinks:
  - name: db
    type: postgres
    from: kin
    table: $TABLE
    columns: [id=json:id::bigint, n=json:n::bigint]
    errors:
      tolerance: all
      log_limit: 2
      dead_letter:
        type: file
        path: $IT_TMP/dead
http:
  listen: 127.0.0.1:0
EOF
} >"$IT_TMP/p.yaml"
it_sluice run "$IT_TMP/p.yaml" --log-level info
PID=$IT_LAST_PID
rows() { q "SELECT count(*) FROM $TABLE" 2>/dev/null || echo 0; }
DEAD="$IT_TMP/dead/$APP-db.jsonl"
if it_wait_until "$(($(it_left) - 40))" bash -c "[ \"\$(timeout 10 psql -X -q -A -t -c 'SELECT count(*) FROM $TABLE' 2>/dev/null)\" = $ngood ] && [ \$(wc -l <'$DEAD' 2>/dev/null || echo 0) -ge $nbad ]"; then
    it_ok "sluice wrote $ngood rows and $nbad dead letters"
else
    it_bad "sluice wrote $(rows) of $ngood rows, $(wc -l <"$DEAD" 2>/dev/null || echo 0) of $nbad dead letters"
fi
# The status of the sink, from the HTTP server (its port is in the log).
port=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$IT_TMP/run.log" | head -n 1 | sed 's/.*://')
if [ -n "$port" ]; then
    curl -s "http://127.0.0.1:$port/api/v1/sinks" >"$IT_TMP/sinks.json" || true
    curl -s "http://127.0.0.1:$port/metrics" >"$IT_TMP/metrics.txt" || true
    it_eq "/api/v1/sinks: records_rejected" "$nbad" "$(jq -r '.[] | select(.name == "db") | .records_rejected' "$IT_TMP/sinks.json")"
    it_eq "/api/v1/sinks: dead_letters" "$nbad" "$(jq -r '.[] | select(.name == "db") | .dead_letters' "$IT_TMP/sinks.json")"
    it_check "/metrics: sluice_sink_dead_letters_total" grep -qx "sluice_sink_dead_letters_total{sink=\"db\"} $nbad" "$IT_TMP/metrics.txt"
else
    it_bad "no HTTP address in the log"
fi
it_check "sluice stops cleanly on SIGTERM" it_stop "$PID"

# ==== The table (psql) ====
q "SELECT id || '|' || n FROM $TABLE ORDER BY id" >"$IT_TMP/got.txt"
it_check "the table holds exactly the good rows" diff "$IT_TMP/good.txt" "$IT_TMP/got.txt"
it_eq "no row without n" 0 "$(q "SELECT count(*) FROM $TABLE WHERE n IS NULL")"

# ==== The dead-letter file vs kcat ====
it_check "every dead letter is one JSON object per line" jq -e -s 'length > 0' "$DEAD"
jq -r '[.partition, .offset, .key, .value] | @tsv' "$DEAD" | sort >"$IT_TMP/dead.tsv"
it_check "the dead letters are exactly the bad messages (partition, offset, key, value)" \
    diff "$IT_TMP/bad.tsv" "$IT_TMP/dead.tsv"
it_eq "dead letters name the pipeline, the sink, the source and the topic" "$nbad" \
    "$(jq -r --arg app "$APP" --arg t "$T" 'select(.pipeline == $app and .sink == "db" and .source == "kin" and .topic == $t and (.batch_time > 0) and (.ts > 0)) | .offset' "$DEAD" | wc -l | tr -d ' ')"
reason() { # value-pattern expected-error-substring: every dead letter of such values says why
    jq -r --arg p "$1" --arg e "$2" 'select(.value | test($p)) | (.error | contains($e))' "$DEAD" | sort -u
}
it_eq "\"n\": \"abc\" -> not an integer" true "$(reason '"n":"abc"' "column \"n\": 'abc' is not an integer")"
it_eq "no \"n\" -> the field is missing" true "$(reason '^\{"id":[0-9]+\}$' "JSON field 'n' is missing")"
it_eq "not JSON -> says so" true "$(reason '^not json' 'the value is not JSON')"
it_eq "n >= 800 -> the server's reason" true "$(reason '"n":[89][0-9]0' 'rejected by the server: new row for relation')"
it_check "the server's rejections made batches go row by row" it_grep_log run 'writing it again with a savepoint'
it_check "the log shows the first rejected records with partition and offset" \
    it_grep_log run 'record skipped \(source kin, topic '"$T"', partition [0-9], offset [0-9]+\)'
it_check "then sums the others up" it_grep_log run 'records skipped \(not written\).*sent to the dead letters in file'
it_finish

#!/usr/bin/env bash
# test_postgres_headers.sh -- PostgreSQL columns mapped from Kafka headers (`header:NAME`),
# against the real broker and server: messages produced with kcat -H over 2 partitions; a
# direct-mode pipeline (headers not enabled in the file: the column turns them on) appends
# (id, tenant, partition, offset, value); psql's rows equal what kcat prints per message; a
# header without a value is NULL; messages without the id header are not written: they go
# to the dead letters with their partition and offset.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 100
kafka_up
infra_up postgres PostgreSQL
command -v jq >/dev/null || it_abort "jq is not installed"
q() { timeout 30 psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

T=$(it_unique pghdr)
G=$(it_unique gpghdr)
APP="pghdr_$$_$RANDOM"
TABLE="hdr_rows_$$_$RANDOM"
trap 'q "DROP TABLE IF EXISTS $TABLE; DELETE FROM sluice_commits WHERE pipeline = '"'"'$APP'"'"'" >/dev/null 2>&1 || true; it_cleanup' EXIT
kafka_topic "$T" 2

# 2 partitions x 6 messages: id=P-I; tenant acme, bolt or a tenant header without a value
# (kcat prints NULL); the fourth message of each partition has no id header.
N=0
for p in 0 1; do
    for i in $(seq 0 5); do
        h=()
        [ $((i % 4)) -ne 3 ] && h+=(-H "id=$p-$i")
        case $((i % 3)) in
        0) h+=(-H tenant=acme) ;;
        1) h+=(-H tenant) ;; # a header with a null value
        *) h+=(-H tenant=bolt) ;;
        esac
        echo "v'$p;$i" | kcat -P -b "$KAFKA_BOOTSTRAP" -t "$T" -p "$p" "${h[@]}" ||
            it_abort "kcat could not produce to $T"
        N=$((N + 1))
    done
done
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$T" -e -q -f '%p %o %h|%s\n' >"$IT_TMP/kcat.txt"
it_eq "kcat reads back every produced message" "$N" "$(wc -l <"$IT_TMP/kcat.txt" | tr -d ' ')"
# Expected rows "id|tenant|partition|offset|value" (tenant <null> when absent or null).
awk '{
    split($0, a, "|"); value = a[2]; split(a[1], f, " "); id = ""; tenant = "<null>"
    n = split(f[3], hs, ",")
    for (i = 1; i <= n; i++) {
        split(hs[i], hv, "=")
        if (hv[1] == "id") id = hv[2]
        if (hv[1] == "tenant" && hv[2] != "NULL") tenant = hv[2]
    }
    if (id != "") print id "|" tenant "|" f[1] "|" f[2] "|" value
}' "$IT_TMP/kcat.txt" | sort >"$IT_TMP/want.txt"
awk '$0 !~ /id=/ { print $1, $2 }' "$IT_TMP/kcat.txt" | sort >"$IT_TMP/want_dead.txt"
it_eq "kcat shows 10 messages with an id" 10 "$(wc -l <"$IT_TMP/want.txt" | tr -d ' ')"
it_eq "kcat shows 2 messages without one" 2 "$(wc -l <"$IT_TMP/want_dead.txt" | tr -d ' ')"
q "CREATE TABLE $TABLE (id text, tenant text, p bigint, o bigint, v text)"

{
    it_yaml_kafka_head "$APP" "$T" "$G"
    cat <<EOF
sinks:
  - name: db
    type: postgres
    from: kin
    table: $TABLE
    columns: [id=header:id, tenant=header:tenant, p=partition, o=offset, v=value]
    errors:
      dead_letter:
        type: file
        path: $IT_TMP/dead
EOF
} >"$IT_TMP/p.yaml"
it_sluice run "$IT_TMP/p.yaml" --log-level info
PID=$IT_LAST_PID
DEAD="$IT_TMP/dead/$APP-db.jsonl"
if it_wait_until "$(($(it_left) - 30))" bash -c "[ \"\$(timeout 10 psql -X -q -A -t -c 'SELECT count(*) FROM $TABLE' 2>/dev/null)\" = 10 ] && [ \$(wc -l <'$DEAD' 2>/dev/null || echo 0) -ge 2 ]"; then
    it_ok "sluice wrote 10 rows and 2 dead letters"
else
    it_bad "sluice wrote $(q "SELECT count(*) FROM $TABLE" || echo '?') of 10 rows"
fi
it_check "sluice stops cleanly on SIGTERM" it_stop "$PID"
q "SELECT id || '|' || coalesce(tenant, '<null>') || '|' || p || '|' || o || '|' || v FROM $TABLE" |
    sort >"$IT_TMP/got.txt"
it_check "the rows are the headers, partitions, offsets and values kcat shows" \
    diff "$IT_TMP/want.txt" "$IT_TMP/got.txt"
jq -r '"\(.partition) \(.offset)"' "$DEAD" | sort >"$IT_TMP/dead.txt"
it_check "the messages without an id header are the dead letters" \
    diff "$IT_TMP/want_dead.txt" "$IT_TMP/dead.txt"
it_eq "each says the header is missing" 2 \
    "$(jq -r 'select(.error | contains("header '"'"'id'"'"' is missing")) | .offset' "$DEAD" | wc -l | tr -d ' ')"
it_finish

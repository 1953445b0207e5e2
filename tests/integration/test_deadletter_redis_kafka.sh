#!/usr/bin/env bash
# test_deadletter_redis_kafka.sh -- dead letters of the redis sink to a Kafka topic, against
# the real Kafka and Redis: counts per word (message key) added up with HINCRBY. Some values
# are no number ("abc"), some no integer ("1.5"): rejected before EXEC; the word "wrong" has a
# hash field that holds text, so its HINCRBY fails inside EXEC (rejected after the commit and
# dead-lettered by the engine). Checked with kcat and redis-cli:
#   - the hash holds exactly the sums of the good messages;
#   - the dead-letter topic holds exactly the bad messages, once each, with their key and
#     value, and headers sluice.error, sluice.sink, sluice.source, sluice.topic,
#     sluice.partition and sluice.offset matching what kcat shows for them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 120
kafka_up
infra_up redis Redis
r() { timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw "$@"; }

T=$(it_unique dlrin)
D=$(it_unique dlrdead)
G=$(it_unique gdlr)
APP="dlredis_$$_$RANDOM"
HKEY="dltest:$APP"
trap 'r DEL "$HKEY" >/dev/null 2>&1 || true; it_cleanup' EXIT
kafka_topic "$T" 2
kafka_topic "$D" 1
r HSET "$HKEY" wrong xyz >/dev/null # HINCRBY of this field fails inside EXEC

awk 'BEGIN {
    for (i = 1; i <= 80; i++) {
        k = (i % 10 == 3) ? "wrong" : "w" (i % 4)
        v = (i % 9 == 0) ? "abc" : (i % 13 == 0) ? "1.5" : i
        printf "%s\t%s\n", k, v
    }
}' >"$IT_TMP/in.txt"
kafka_produce "$T" "$IT_TMP/in.txt"
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$T" -e -q -f '%p\t%o\t%k\t%s\n' >"$IT_TMP/ref.tsv"
it_eq "kcat reads back the 80 messages" 80 "$(wc -l <"$IT_TMP/ref.tsv" | tr -d ' ')"
# Expected: partition, offset, key, value and why, for the bad ones; sums for the others.
awk -F'\t' '
    $4 == "abc" { print $1 "\t" $2 "\t" $3 "\t" $4 "\tthe value '"'"'abc'"'"' is not a number"; next }
    $4 == "1.5" { print $1 "\t" $2 "\t" $3 "\t" $4 "\t1.5 is not an integer"; next }
    $3 == "wrong" { print $1 "\t" $2 "\t" $3 "\t" $4 "\tfailed in EXEC: ERR hash value is not an integer" }
' "$IT_TMP/ref.tsv" | sort >"$IT_TMP/bad.tsv"
awk -F'\t' '$4 ~ /^[0-9]+$/ && $3 != "wrong" { s[$3] += $4 } END { for (k in s) print k, s[k] }' \
    "$IT_TMP/ref.tsv" | sort >"$IT_TMP/sums.txt"
nbad=$(wc -l <"$IT_TMP/bad.tsv" | tr -d ' ')
it_check "the input has bad messages of the three kinds ($nbad)" \
    bash -c "grep -q 'not a number' '$IT_TMP/bad.tsv' && grep -q 'not an integer$' '$IT_TMP/bad.tsv' && grep -q 'EXEC' '$IT_TMP/bad.tsv'"

{
    it_yaml_kafka_head "$APP" "$T" "$G"
    cat <<EOF
    max_rate_per_partition: 30
sinks:
  - name: kv
    type: redis
    from: kin
    host: $REDIS_HOST
    port: $REDIS_PORT
    command: hincrby
    key: "$HKEY"
    field: "{key}"
    errors:
      log_limit: 100
      dead_letter:
        type: kafka
        brokers: $KAFKA_BOOTSTRAP
        topic: $D
EOF
} >"$IT_TMP/p.yaml"
it_sluice run "$IT_TMP/p.yaml" --log-level info
PID=$IT_LAST_PID
dead_count() { kcat -C -b "$KAFKA_BOOTSTRAP" -t "$D" -e -q -f 'x\n' 2>/dev/null | wc -l | tr -d ' '; }
want_sum=$(awk '{ s += $2 } END { print s }' "$IT_TMP/sums.txt")
hash_sum() { r HGETALL "$HKEY" | awk 'NR % 2 == 1 { k = $0; next } k != "wrong" { s += $0 } END { print s + 0 }'; }
if it_wait_until "$(($(it_left) - 40))" bash -c "[ \"\$(kcat -C -b '$KAFKA_BOOTSTRAP' -t '$D' -e -q -f 'x\n' 2>/dev/null | wc -l)\" -ge $nbad ] && [ \"\$(redis-cli -h '$REDIS_HOST' -p '$REDIS_PORT' --raw HGETALL '$HKEY' | awk 'NR % 2 == 1 { k = \$0; next } k != \"wrong\" { s += \$0 } END { print s + 0 }')\" = $want_sum ]"; then
    it_ok "sluice wrote the sums and $nbad dead letters"
else
    it_bad "sum $(hash_sum) of $want_sum, $(dead_count) of $nbad dead letters"
fi
it_check "sluice stops cleanly on SIGTERM" it_stop "$PID"

# ==== Redis ====
r HGETALL "$HKEY" | paste - - -d' ' | grep -v '^wrong ' | sort >"$IT_TMP/got_sums.txt"
it_check "the hash holds exactly the sums of the good messages" diff "$IT_TMP/sums.txt" "$IT_TMP/got_sums.txt"
it_eq "the field holding text is untouched" xyz "$(r HGET "$HKEY" wrong)"

# ==== The dead-letter topic vs kcat ====
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$D" -e -q -f '%k\t%s\t%h\n' >"$IT_TMP/dead_raw.tsv"
# Headers: name=value pairs separated by commas (no value here holds one).
awk -F'\t' '{
    n = split($3, h, ","); delete v
    for (i = 1; i <= n; i++) { j = index(h[i], "="); v[substr(h[i], 1, j - 1)] = substr(h[i], j + 1) }
    print v["sluice.partition"] "\t" v["sluice.offset"] "\t" $1 "\t" $2 "\t" v["sluice.error"]
}' "$IT_TMP/dead_raw.tsv" | sort >"$IT_TMP/dead.tsv"
it_check "the dead letters are exactly the bad messages (partition, offset, key, value, error)" \
    diff "$IT_TMP/bad.tsv" "$IT_TMP/dead.tsv"
it_eq "every dead letter names the pipeline, the sink, the source and the topic" "$nbad" \
    "$(grep -c "sluice.pipeline=$APP,sluice.sink=kv,sluice.batch_time=[0-9]*,sluice.source=kin,sluice.topic=$T," "$IT_TMP/dead_raw.tsv" || true)"
it_check "the EXEC failures are logged" it_grep_log run 'record skipped \(source kin, topic '"$T"', partition [01], offset [0-9]+\): failed in EXEC'
it_finish

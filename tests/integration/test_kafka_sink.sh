#!/usr/bin/env bash
# test_kafka_sink.sh -- the kafka sink against the real broker, checked with kcat: a topic
# copied record for record into another (key and value kept), and a word count whose typed
# values are produced as text; a sink whose broker cannot be reached holds its batches
# (retried, reported) and the source's offsets are not committed meanwhile.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 100
kafka_up
SRC=$(it_unique sink-src)
DST=$(it_unique sink-dst)
WC=$(it_unique sink-wc)
G=$(it_unique gsink)
kafka_topic "$SRC" 3
kafka_topic "$DST" 2
kafka_topic "$WC" 1

N=3000
awk -v n=$N 'BEGIN { for (i = 1; i <= n; i++) printf "k%d\tw%d w%d w0\n", i, i % 7, i % 3 }' \
    >"$IT_TMP/in.txt"
kafka_produce "$SRC" "$IT_TMP/in.txt"

cat >"$IT_TMP/copy.yaml" <<EOF
app:
  name: kafka-sink-test
  batch_interval: 500ms
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$SRC]
    start: earliest
streams:
  - name: counts
    from: kin
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: sum
sinks:
  - name: copy
    type: kafka
    from: kin
    brokers: $KAFKA_BOOTSTRAP
    topic: $DST
  - name: wc
    type: kafka
    from: counts
    brokers: $KAFKA_BOOTSTRAP
    topic: $WC
EOF
it_sluice copy "$IT_TMP/copy.yaml"
PID=$IT_LAST_PID
count_dst() {
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$DST" -e -q -f '%k\t%s\n' 2>/dev/null | wc -l | tr -d ' '
}
it_check "the copy reaches $N messages" it_wait_until 30 bash -c "[ \$(kcat -C -b \
    '$KAFKA_BOOTSTRAP' -t '$DST' -e -q -f '%k\n' 2>/dev/null | wc -l) -ge $N ]"
sleep 1
it_check "sluice stops cleanly" it_stop "$PID"
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$DST" -e -q -f '%k\t%s\n' | sort >"$IT_TMP/dst.txt"
sort "$IT_TMP/in.txt" >"$IT_TMP/src.txt"
it_eq "the copy holds every message once, key and value kept" "$N" \
    "$(comm -12 "$IT_TMP/src.txt" "$IT_TMP/dst.txt" | wc -l | tr -d ' ')"
it_eq "nothing else in the copy" 0 "$(comm -13 "$IT_TMP/src.txt" "$IT_TMP/dst.txt" | wc -l |
    tr -d ' ')"

# The word counts, summed over the batches, equal an independent count of the input.
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$WC" -e -q -f '%k %s\n' |
    awk '{ c[$1] += $2 } END { for (w in c) print w, c[w] }' | sort >"$IT_TMP/wc.txt"
cut -f2 "$IT_TMP/in.txt" | tr ' ' '\n' | sort | uniq -c | awk '{ print $2, $1 }' |
    sort >"$IT_TMP/wc_ref.txt"
it_check "typed values are produced as text: the counts add up to the input's" \
    cmp -s "$IT_TMP/wc.txt" "$IT_TMP/wc_ref.txt"

# A sink whose broker is not there: the batch is retried, never dropped or committed.
cat >"$IT_TMP/down.yaml" <<EOF
app:
  name: kafka-sink-down-test
  batch_interval: 500ms
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$SRC]
    group: $G
    start: earliest
    max_rate_per_partition: 100
sinks:
  - name: nowhere
    type: kafka
    from: kin
    brokers: 127.0.0.1:1
    topic: $DST
    properties: [message.timeout.ms=1000]
    flush_timeout: 2s
EOF
it_sluice down "$IT_TMP/down.yaml"
PID=$IT_LAST_PID
it_check "an unreachable sink broker: the batch is retried and reported" \
    it_wait_until 20 it_grep_log down "not fully delivered to $DST.*retrying"
it_check "an unreachable sink broker: no crash" kill -0 "$PID"
it_check "sluice stops (a second SIGTERM) while the sink retries" it_stop_now "$PID"
kafka_group "$G" >"$IT_TMP/group.txt" || true
committed=$(awk '$3 ~ /^[0-9]+$/ && $3 > 0 { n++ } END { print n + 0 }' "$IT_TMP/group.txt")
it_eq "no offset committed for the batches the sink never took" 0 "$committed"

it_finish

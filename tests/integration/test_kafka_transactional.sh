#!/usr/bin/env bash
# test_kafka_transactional.sh -- the transactional kafka sink (exactly-once v2) against the
# real broker: Kafka direct (group G, 4 partitions) -> word count per batch -> kafka sink
# with transactional: true and group G, without a checkpoint directory (the source resumes
# from G's committed offsets, which move only with the sink's transactions). sluice is
# killed with kill -9 at random moments and restarted each time (the restarted producer
# fences its zombie and aborts the transaction it left open). At the end a read_committed
# consumer sees every batch's counts exactly once: they add up to an independent count of
# the input (awk). A read_uncommitted consumer may see aborted batches too (reported only).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 300
kafka_up
IN=$(it_unique txn-in)
OUT=$(it_unique txn-out)
G=$(it_unique gtxn)
kafka_topic "$IN" 4
kafka_topic "$OUT" 2

# 4000 lines of 1 to 6 words from a 30-word vocabulary, produced before sluice starts.
kafka_words "$IN" 4000 6 30 101

cat >"$IT_TMP/txn.yaml" <<EOF
app:
  name: $IN
  batch_interval: 300ms
sources:
  - name: lines
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$IN]
    group: $G
    start: committed
    start_fallback: earliest
    max_rate_per_partition: 30      # 9 lines per partition per batch: about 110 batches
    properties: [session.timeout.ms=6000, heartbeat.interval.ms=1000]
streams:
  - name: counts
    from: lines
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: sum
sinks:
  - name: out
    type: kafka
    from: counts
    brokers: $KAFKA_BOOTSTRAP
    topic: $OUT
    transactional: true
    group: $G
    instance: it
EOF

# The group's committed offsets of the input, summed (0 when none).
committed_sum() {
    kafka_group "$G" | awk '$3 ~ /^[0-9]+$/ { s += $3 } END { print s + 0 }'
}
# Word counts summed per word over what a consumer of the output sees.
read_counts() {
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$OUT" -X "isolation.level=$1" -e -q -f '%k %s\n' |
        awk 'NF == 2 { c[$1] += $2 } END { for (w in c) print w, c[w] }' | sort
}

# Crashes at random moments, each run a little longer than the last.
for i in 1 2 3 4; do
    it_sluice "run$i" "$IT_TMP/txn.yaml"
    PID=$IT_LAST_PID
    sleep "$(awk -v s="$RANDOM" -v i="$i" 'BEGIN { srand(s); printf "%.1f", 4 + rand() * 5 }')"
    it_kill9 "$PID"
    it_log "run $i killed; committed offsets: $(committed_sum) of 4000"
done
it_sluice final "$IT_TMP/txn.yaml"
PID=$IT_LAST_PID
# Done when the output holds every word once (or more: a failure then shows below).
output_complete() {
    [ "$(read_counts read_committed | awk '{ s += $2 } END { print s + 0 }')" -ge "$total" ]
}
it_check "after 4 crashes the read_committed output catches up with the input" \
    it_wait_until "$(($(it_left) - 30))" output_complete
sleep 2
it_check "sluice stops cleanly" it_stop "$PID"
it_eq "the group's committed offsets are the end of the input" 4000 "$(committed_sum)"

read_counts read_committed >"$IT_TMP/committed.txt"
it_check "read_committed: the counts add up to the input's, each batch once" \
    cmp -s "$IT_TMP/committed.txt" "$IT_TMP/expected.txt"
it_eq "read_committed: words counted" "$total" \
    "$(awk '{ s += $2 } END { print s + 0 }' "$IT_TMP/committed.txt")"
it_check "the producer was transactional and fenced the previous run's" \
    it_grep_log final "transactional producer $IN-out-it ready"
uncommitted=$(read_counts read_uncommitted | awk '{ s += $2 } END { print s + 0 }')
it_log "read_uncommitted sees $uncommitted words counted (read_committed: $total): aborted" \
    "transactions of the killed runs"

it_finish

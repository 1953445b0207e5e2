#!/usr/bin/env bash
# test_kafka_receiver.sh -- the receiver-mode kafka source with its write-ahead log against
# the real broker: sluice is killed (kill -9) while it consumes a topic that keeps growing,
# then restarted; every message kcat reads back is processed at least once (none lost),
# the log's unprocessed records are pushed again at the restart, its processed segments are
# deleted, and the group's committed offsets reach the end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 110
kafka_up
T=$(it_unique receiver)
G=$(it_unique greceiver)
kafka_topic "$T" 4

CHUNKS=40
PER=500
N=$((CHUNKS * PER))

cat >"$IT_TMP/rx.yaml" <<EOF
app:
  name: kafka-receiver-test
  batch_interval: 500ms
  checkpoint_dir: $IT_TMP/ck
sources:
  - name: kin
    type: kafka
    mode: receiver
    brokers: $KAFKA_BOOTSTRAP
    topics: [$T]
    group: $G
    start: earliest
    wal_segment_size: 64KiB
    # the killed member leaves the group after this long (librdkafka's default is 45 s)
    properties: [session.timeout.ms=6000, heartbeat.interval.ms=500]
sinks:
  - name: out
    type: file
    from: kin
    prefix: $IT_TMP/out/b
EOF

producer() {
    local c
    for c in $(seq 1 $CHUNKS); do
        awk -v c=$c -v per=$PER 'BEGIN { for (i = (c - 1) * per + 1; i <= c * per; i++)
            printf "k%d\tv%d\n", i, i }' >"$IT_TMP/chunk.txt"
        kcat -P -b "$KAFKA_BOOTSTRAP" -t "$T" -K $'\t' -l "$IT_TMP/chunk.txt" || exit 1
        sleep 0.1
    done
}
records() {
    { find "$IT_TMP/out" -path '*/b-*/part-*' -exec cat {} + 2>/dev/null || true; } |
        sed -e 's/^(//' -e 's/)$//' -e 's/^[^,]*,//'
}

it_bg "$IT_TMP/producer.log" producer
PRODUCER=$IT_LAST_PID
it_sluice run1 "$IT_TMP/rx.yaml"
S1=$IT_LAST_PID
it_check "the receiver joins the group" it_wait_until 20 it_grep_log run1 "group $G assigned"
it_wait_until 20 bash -c "[ \$(find '$IT_TMP/out' -path '*/b-*/part-*' -exec cat {} + \
    2>/dev/null | wc -l) -ge 2000 ]" || true
sleep 0.3 # mid-batch: records received since the last batch are only in the log
before=$(records | wc -l | tr -d ' ')
it_kill9 "$S1"
it_check "killed (kill -9) while consuming, after $before records" test "$before" -gt 0
segs=$(find "$IT_TMP/ck/wal/kin" -name '*.log' 2>/dev/null | wc -l | tr -d ' ' || true)
it_check "the write-ahead log holds segments ($segs)" test "$segs" -ge 1
# Did the log hold records that no completed batch processed? (the marker "processed" holds
# the position seq << 32 | offset; the newest segment's size is where appends stopped)
unprocessed=0
last=$(find "$IT_TMP/ck/wal/kin" -name '*.log' 2>/dev/null | sort | tail -n 1 || true)
if [ -n "$last" ]; then
    lseq=$((10#$(basename "$last" .log)))
    lsize=$(stat -c %s "$last")
    mark=$((16#$(cat "$IT_TMP/ck/wal/kin/processed" 2>/dev/null || echo 0)))
    if [ "$lseq" -gt $((mark >> 32)) ] || [ "$lsize" -gt $((mark & 0xffffffff)) ]; then
        unprocessed=1
    fi
fi

it_sluice run2 "$IT_TMP/rx.yaml"
S2=$IT_LAST_PID
wait "$PRODUCER" && it_ok "the producer sent $N messages" || it_bad "the producer failed"
kafka_dump "$T" | awk '{ print $4 }' | sort >"$IT_TMP/ref.txt"
it_eq "kcat reads back every produced message" "$N" "$(wc -l <"$IT_TMP/ref.txt" | tr -d ' ')"
it_wait_until "$(($(it_left) - 20))" bash -c "[ \$(find '$IT_TMP/out' -path '*/b-*/part-*' \
    -exec cat {} + 2>/dev/null | sed -e 's/^(//' -e 's/)\$//' -e 's/^[^,]*,//' | sort -u |
    wc -l) -ge $N ]" || true
sleep 1
it_check "the restarted receiver stops cleanly" it_stop "$S2"

records >"$IT_TMP/all.txt"
missing=$(comm -23 "$IT_TMP/ref.txt" <(sort -u "$IT_TMP/all.txt") | wc -l | tr -d ' ')
extra=$(comm -13 "$IT_TMP/ref.txt" <(sort -u "$IT_TMP/all.txt") | wc -l | tr -d ' ')
total=$(wc -l <"$IT_TMP/all.txt" | tr -d ' ')
it_eq "every produced message was processed at least once (missing)" 0 "$missing"
it_eq "no message sluice made up" 0 "$extra"
it_log "$total records for $N messages: $((total - N)) processed twice after the crash"
if [ "$unprocessed" = 1 ]; then
    it_check "the restart pushed the log's unprocessed records again" \
        it_grep_log run2 "pushed again from the write-ahead log"
else
    it_check "nothing unprocessed at the crash: nothing pushed again" \
        bash -c "! grep -q 'pushed again from the write-ahead log' '$IT_TMP/run2.log'"
fi
segs=$(find "$IT_TMP/ck/wal/kin" -name '*.log' 2>/dev/null | wc -l | tr -d ' ' || true)
it_check "processed segments are deleted ($segs left)" test "$segs" -le 2
kafka_group "$G" >"$IT_TMP/group.txt" || true
lag=$(awk '{ s += $5 } END { print s + 0 }' "$IT_TMP/group.txt")
parts=$(wc -l <"$IT_TMP/group.txt" | tr -d ' ')
it_eq "the group committed every partition" 4 "$parts"
it_eq "the group's lag is 0" 0 "$lag"

it_finish

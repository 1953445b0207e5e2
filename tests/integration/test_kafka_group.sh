#!/usr/bin/env bash
# test_kafka_group.sh -- scaling out: two sluice instances with the same group (direct mode)
# split the partitions of a topic while messages keep coming; the union of their outputs
# holds every message. Then one instance is killed (kill -9): the other takes its partitions
# over from the committed offsets and nothing is lost (messages of the killed instance's
# last, uncommitted batches may come twice: at-least-once across a crash).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 115
kafka_up
T=$(it_unique group)
G=$(it_unique ggroup)
kafka_topic "$T" 8

CHUNKS=60
PER=250
N=$((CHUNKS * PER))

write_config() { # file prefix
    cat >"$1" <<EOF
app:
  name: kafka-group-test
  batch_interval: 500ms
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$T]
    group: $G
    start: committed
    start_fallback: earliest
    properties: [session.timeout.ms=6000, heartbeat.interval.ms=500]
sinks:
  - name: out
    type: file
    from: kin
    prefix: $2
EOF
}
write_config "$IT_TMP/a.yaml" "$IT_TMP/out-a/b"
write_config "$IT_TMP/b.yaml" "$IT_TMP/out-b/b"

# The partitions of the last assignment in a log: "p p p ..." sorted.
last_assignment() { # log name
    grep -E "group $G assigned [0-9]+ partitions" "$IT_TMP/$1.log" | tail -n 1 |
        grep -oE '\[[0-9]+\]' | tr -d '[]' | sort -n | tr '\n' ' ' | sed 's/ $//'
}
assigned_count() { # log name
    local a
    a=$(last_assignment "$1")
    [ -n "$a" ] && echo "$a" | wc -w | tr -d ' ' || echo 0
}

# A producer that keeps messages coming: CHUNKS chunks of PER messages, 0.2 s apart.
producer() {
    local c i
    for c in $(seq 1 $CHUNKS); do
        awk -v c=$c -v per=$PER 'BEGIN { for (i = (c - 1) * per + 1; i <= c * per; i++)
            printf "k%d\tv%d\n", i, i }' >"$IT_TMP/chunk.txt"
        kcat -P -b "$KAFKA_BOOTSTRAP" -t "$T" -K $'\t' -l "$IT_TMP/chunk.txt" || exit 1
        sleep 0.2
    done
}

it_sluice a "$IT_TMP/a.yaml"
A=$IT_LAST_PID
it_check "instance A gets every partition while alone" \
    it_wait_until 30 bash -c "[ \"\$(grep -E 'group $G assigned 8 partitions' '$IT_TMP/a.log' \
        | wc -l)\" -ge 1 ]"
it_bg "$IT_TMP/producer.log" producer
PRODUCER=$IT_LAST_PID
sleep 1
it_sluice b "$IT_TMP/b.yaml"
B=$IT_LAST_PID

split_done() {
    local na nb
    na=$(assigned_count a)
    nb=$(assigned_count b)
    [ "$na" -gt 0 ] && [ "$nb" -gt 0 ] && [ $((na + nb)) -eq 8 ]
}
if it_wait_until 30 split_done; then
    pa=$(last_assignment a)
    pb=$(last_assignment b)
    common=$(comm -12 <(echo "$pa" | tr ' ' '\n' | sort) <(echo "$pb" | tr ' ' '\n' | sort) |
        wc -l | tr -d ' ')
    it_ok "the group split the partitions: A has [$pa], B has [$pb]"
    it_eq "no partition is read by both" 0 "$common"
else
    it_bad "the partitions were not split (A: $(last_assignment a), B: $(last_assignment b))"
fi

# Both work for a while, then B crashes.
sleep 3
nb_before=$(it_file_count "$IT_TMP/out-b" b)
it_check "instance B processed messages before the crash ($nb_before)" test "$nb_before" -gt 0
it_kill9 "$B"
it_check "after B's crash, A takes every partition over" \
    it_wait_until 40 bash -c "grep -E 'group $G assigned [0-9]+ partitions' '$IT_TMP/a.log' |
        tail -n 1 | grep -q 'assigned 8 partitions'"

wait "$PRODUCER" && it_ok "the producer sent $N messages" || it_bad "the producer failed"
kafka_dump "$T" >"$IT_TMP/ref.txt"
it_eq "kcat reads back every produced message" "$N" "$(wc -l <"$IT_TMP/ref.txt" | tr -d ' ')"

it_wait_until "$(($(it_left) - 15))" bash -c "[ \$( { find '$IT_TMP/out-a' '$IT_TMP/out-b' \
    -path '*/b-*/part-*' -exec cat {} + 2>/dev/null; } | sort -u | wc -l) -ge $N ]" || true
it_check "A stops cleanly" it_stop "$A"

{ it_file_records "$IT_TMP/out-a" b; it_file_records "$IT_TMP/out-b" b; } |
    sed -e 's/^(//' -e 's/)$//' -e 's/^[^,]*,//' >"$IT_TMP/all.txt"
missing=$(awk '{ print $4 }' "$IT_TMP/ref.txt" | sort | comm -23 - <(sort -u "$IT_TMP/all.txt") |
    wc -l | tr -d ' ')
extra=$(sort -u "$IT_TMP/all.txt" | comm -13 <(awk '{ print $4 }' "$IT_TMP/ref.txt" | sort) - |
    wc -l | tr -d ' ')
total=$(wc -l <"$IT_TMP/all.txt" | tr -d ' ')
it_eq "the union of both outputs holds every message (none lost)" 0 "$missing"
it_eq "no message sluice made up" 0 "$extra"
it_log "$total records for $N messages: $((total - N)) processed twice after the crash"
kafka_group "$G" >"$IT_TMP/group.txt" || true
lag=$(awk '{ s += $5 } END { print s + 0 }' "$IT_TMP/group.txt")
it_eq "the group's committed offsets reach the end (lag)" 0 "$lag"

it_finish

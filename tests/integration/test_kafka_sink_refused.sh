#!/usr/bin/env bash
# test_kafka_sink_refused.sh -- the kafka sink when the broker refuses messages for what
# they are: a topic whose max.message.bytes is 1500 receives a batch of small messages with
# a few 3000-byte ones among them. The broker refuses whole produce requests, small messages
# included; the sink sends the refused ones again one at a time, so that every small message
# is delivered exactly once (kcat) and only the large ones go to the dead letters (jq), with
# the broker's error, instead of the batch being retried forever.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 90
kafka_up
command -v jq >/dev/null 2>&1 || it_abort "jq is not installed (tests/infra/deps.sh)"
SRC=$(it_unique refused-src)
DST=$(it_unique refused-dst)
kafka_topic "$SRC" 1
kafka_topic "$DST" 1 --config max.message.bytes=1500

# 300 messages "k<i>\tv<i>", every 30th with a 3000-byte value.
awk 'BEGIN {
    big = sprintf("%3000s", ""); gsub(/ /, "x", big)
    for (i = 1; i <= 300; i++) printf "k%d\t%s\n", i, (i % 30 == 0) ? "big" i big : "v" i
}' >"$IT_TMP/in.txt"
kafka_produce "$SRC" "$IT_TMP/in.txt"
awk -F'\t' 'length($2) < 100' "$IT_TMP/in.txt" | sort >"$IT_TMP/small.txt"
awk -F'\t' 'length($2) >= 100 { print $1 }' "$IT_TMP/in.txt" | sort >"$IT_TMP/big_keys.txt"
nsmall=$(wc -l <"$IT_TMP/small.txt" | tr -d ' ')

cat >"$IT_TMP/refused.yaml" <<YAML
app:
  name: kafka-sink-refused-test
  batch_interval: 500ms
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$SRC]
    start: earliest
sinks:
  - name: out
    type: kafka
    from: kin
    brokers: $KAFKA_BOOTSTRAP
    topic: $DST
    errors:
      tolerance: all
      dead_letter:
        type: file
        path: $IT_TMP/dead
YAML
it_sluice refused "$IT_TMP/refused.yaml"
PID=$IT_LAST_PID
dead_lines() { cat "$IT_TMP"/dead/* 2>/dev/null | wc -l | tr -d ' '; }
it_check "the 10 large messages reach the dead letters" \
    it_wait_until 30 bash -c "[ \$(cat '$IT_TMP'/dead/* 2>/dev/null | wc -l) -ge 10 ]"
it_check "the small messages reach the topic" it_wait_until 30 bash -c "[ \$(kcat -C -b \
    '$KAFKA_BOOTSTRAP' -t '$DST' -e -q -f '%k\n' 2>/dev/null | wc -l) -ge $nsmall ]"
sleep 1
it_check "sluice stops cleanly" it_stop "$PID"

kcat -C -b "$KAFKA_BOOTSTRAP" -t "$DST" -e -q -f '%k\t%s\n' | sort >"$IT_TMP/dst.txt"
it_check "the topic holds every small message once, and nothing else (kcat)" \
    cmp -s "$IT_TMP/dst.txt" "$IT_TMP/small.txt"
it_eq "10 dead letters" 10 "$(dead_lines)"
cat "$IT_TMP"/dead/* | jq -r '.key' | sort >"$IT_TMP/dead_keys.txt"
it_check "the dead letters are the large messages (jq)" \
    cmp -s "$IT_TMP/dead_keys.txt" "$IT_TMP/big_keys.txt"
it_eq "each dead letter names the broker's refusal" 10 \
    "$(cat "$IT_TMP"/dead/* | jq -r '.error' | grep -c 'broker refused the message: .*too large')"
it_check "the log says the refused messages went again one at a time" \
    it_grep_log refused "one at a time"
it_check "no batch was retried" bash -c "! grep -q 'not fully delivered' '$IT_TMP/refused.log'"

it_finish

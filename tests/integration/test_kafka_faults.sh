#!/usr/bin/env bash
# test_kafka_faults.sh -- the kafka source when things go wrong, against the real broker:
#   1. the broker is not reachable at start: a clear error, sluice keeps retrying, and reads
#      everything once the broker comes;
#   2. the broker restarts mid-stream: sluice goes on, nothing lost, nothing twice;
#   3. a topic that does not exist: a clear error, no crash, read once it is created;
#   4. malformed JSON records (format: json): skipped, counted, reported with partition and
#      offset (checked against kcat; the first 20 of a source are reported one by one), the
#      others delivered;
#   5. a 10 MiB message goes through (max_record_size: 16MiB);
#   6. topic_pattern: a matching topic created while sluice runs is picked up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 118
kafka_up

# The values v<i> of the finished batches under DIR, one a line.
values() { # dir
    it_file_records "$1" b | sed -e 's/^(//' -e 's/)$//' -e 's/^[^,]*,//'
}
# Waits until DIR holds at least N records.
wait_records() { # dir n seconds
    it_wait_until "$3" bash -c "[ \$(find '$1' -path '*/b-*/part-*' -exec cat {} + 2>/dev/null |
        wc -l) -ge $2 ]"
}
produce_range() { # topic from to
    awk -v a="$2" -v b="$3" 'BEGIN { for (i = a; i <= b; i++) printf "k%d\tv%d\n", i, i }' \
        >"$IT_TMP/range.txt"
    kafka_produce "$1" "$IT_TMP/range.txt"
}
# Every v<from..to> exactly once in DIR: prints "missing twice".
exactly_once() { # dir from to
    values "$1" | awk -v a="$2" -v b="$3" '
        { n[$0]++ }
        END { for (i = a; i <= b; i++) { c = n["v" i]; if (!c) m++; else if (c > 1) d++ }
              printf "%d %d\n", m, d }'
}
config() { # file topic prefix extra-yaml-lines
    cat >"$1" <<EOF
app:
  name: kafka-faults-test
  batch_interval: 500ms
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$2]
    start: earliest
    poll_timeout: 2s
    metadata_refresh: 1s
$4
sinks:
  - name: out
    type: file
    from: kin
    prefix: $3
EOF
}

# ==== 1 and 2: the broker down at start, then restarted mid-stream ====

T1=$(it_unique faults-down)
kafka_topic "$T1" 3
produce_range "$T1" 1 500
bash "$KAFKA_SH" stop >/dev/null 2>&1
config "$IT_TMP/down.yaml" "$T1" "$IT_TMP/out1/b" ""
it_sluice down "$IT_TMP/down.yaml"
S1=$IT_LAST_PID
it_check "broker down at start: a clear error" \
    it_wait_until 20 it_grep_log down "Kafka at $KAFKA_BOOTSTRAP is not reachable"
sleep 2
it_check "broker down at start: sluice keeps running" kill -0 "$S1"
bash "$KAFKA_SH" start >/dev/null 2>&1 || it_abort "the broker does not start again"
it_check "broker back: the 500 messages are read" wait_records "$IT_TMP/out1" 500 40
it_check "broker back: reported reachable again" it_grep_log down "reachable again"

produce_range "$T1" 501 1000
it_check "mid-stream: the next 500 are read" wait_records "$IT_TMP/out1" 1000 20
bash "$KAFKA_SH" stop >/dev/null 2>&1
sleep 1
bash "$KAFKA_SH" start >/dev/null 2>&1 || it_abort "the broker does not start again"
produce_range "$T1" 1001 1500
it_check "after a broker restart mid-stream sluice goes on" wait_records "$IT_TMP/out1" 1500 40
sleep 1
it_check "broker faults: sluice stops cleanly" it_stop "$S1"
read -r missing twice < <(exactly_once "$IT_TMP/out1" 1 1500)
it_eq "broker faults: no message lost" 0 "$missing"
it_eq "broker faults: no message twice" 0 "$twice"

# ==== 3: a topic that does not exist (yet) ====

T3=$(it_unique faults-missing)
config "$IT_TMP/missing.yaml" "$T3" "$IT_TMP/out3/b" ""
it_sluice missing "$IT_TMP/missing.yaml"
S3=$IT_LAST_PID
it_check "missing topic: a clear error naming it" \
    it_wait_until 15 it_grep_log missing "topic '$T3' does not exist"
sleep 1
it_check "missing topic: sluice keeps running" kill -0 "$S3"
kafka_topic "$T3" 2
produce_range "$T3" 1 100
it_check "missing topic: read once created" wait_records "$IT_TMP/out3" 100 20
sleep 1
it_check "missing topic: sluice stops cleanly" it_stop "$S3"
read -r missing twice < <(exactly_once "$IT_TMP/out3" 1 100)
it_eq "missing topic: every message once" "0 0" "$missing $twice"

# ==== 4: malformed JSON records ====

T4=$(it_unique faults-json)
kafka_topic "$T4" 2
awk 'BEGIN { for (i = 1; i <= 150; i++) {
    if (i % 10 == 3) printf "k%d\t{\"id\": %d, \"broken\": \n", i, i
    else if (i == 77 || i == 147) printf "k%d\tnot json %d\n", i, i
    else printf "k%d\t{\"id\": %d}\n", i, i } }' >"$IT_TMP/json.txt"
kafka_produce "$T4" "$IT_TMP/json.txt"
config "$IT_TMP/json.yaml" "$T4" "$IT_TMP/out4/b" "    format: json"
it_sluice json "$IT_TMP/json.yaml"
S4=$IT_LAST_PID
good=$(awk -F'\t' '$2 ~ /}$/' "$IT_TMP/json.txt" | wc -l | tr -d ' ')
it_check "malformed JSON: the $good good records are delivered" wait_records "$IT_TMP/out4" "$good" 20
sleep 1
it_check "malformed JSON: no crash" kill -0 "$S4"
it_check "malformed JSON: sluice stops cleanly" it_stop "$S4"
it_eq "malformed JSON: only the good records" "$good" "$(it_file_count "$IT_TMP/out4" b)"
# Where kcat says the bad ones are, and where sluice reported them.
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$T4" -e -q -f '%p %o %s\n' |
    awk '$0 !~ /}$/ { print $1, $2 }' | sort >"$IT_TMP/bad_kcat.txt"
grep -oE "$T4 \[[0-9]+\] offset [0-9]+: malformed JSON" "$IT_TMP/json.log" |
    sed -E 's/.*\[([0-9]+)\] offset ([0-9]+).*/\1 \2/' | sort -u >"$IT_TMP/bad_sluice.txt"
it_eq "malformed JSON: each bad record reported with its partition and offset" \
    "$(cat "$IT_TMP/bad_kcat.txt" | tr '\n' ' ')" "$(cat "$IT_TMP/bad_sluice.txt" | tr '\n' ' ')"
it_check "malformed JSON: the count is reported" it_grep_log json "17 malformed JSON records"

# ==== 5: a 10 MiB message ====

T5=$(it_unique faults-big)
kafka_topic "$T5" 1
head -c 10485760 /dev/zero | tr '\0' 'x' >"$IT_TMP/big.bin"
kcat -P -b "$KAFKA_BOOTSTRAP" -t "$T5" -X message.max.bytes=16777216 "$IT_TMP/big.bin" ||
    it_abort "kcat could not produce a 10 MiB message"
printf 'k1\tafter-the-big-one\n' >"$IT_TMP/small.txt"
kafka_produce "$T5" "$IT_TMP/small.txt"
config "$IT_TMP/big.yaml" "$T5" "$IT_TMP/out5/b" "    max_record_size: 16MiB"
it_sluice big "$IT_TMP/big.yaml"
S5=$IT_LAST_PID
it_check "10 MiB message: read" wait_records "$IT_TMP/out5" 2 30
it_check "10 MiB message: sluice stops cleanly" it_stop "$S5"
longest=$(it_file_records "$IT_TMP/out5" b | awk '{ if (length($0) > m) m = length($0) } END {
    print m + 0 }')
it_eq "10 MiB message: delivered whole" 10485760 "$longest"
it_eq "10 MiB message: then the next one" "(k1,after-the-big-one)" \
    "$(it_file_records "$IT_TMP/out5" b | tail -n 1)"

# ==== 6: topic_pattern picks up a topic created later ====

P=$(it_unique faults-pat)
kafka_topic "$P-a" 2
produce_range "$P-a" 1 100
cat >"$IT_TMP/pattern.yaml" <<EOF
app:
  name: kafka-faults-test
  batch_interval: 500ms
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topic_pattern: "$P-.*"
    start: earliest
    metadata_refresh: 1s
sinks:
  - name: out
    type: file
    from: kin
    prefix: $IT_TMP/out6/b
EOF
it_sluice pattern "$IT_TMP/pattern.yaml"
S6=$IT_LAST_PID
it_check "topic_pattern: the matching topic is read" wait_records "$IT_TMP/out6" 100 20
kafka_topic "$P-b" 3
produce_range "$P-b" 101 300
it_check "topic_pattern: a matching topic created later is read" wait_records "$IT_TMP/out6" 300 20
sleep 1
it_check "topic_pattern: sluice stops cleanly" it_stop "$S6"
read -r missing twice < <(exactly_once "$IT_TMP/out6" 1 300)
it_eq "topic_pattern: every message of both topics once" "0 0" "$missing $twice"

it_finish

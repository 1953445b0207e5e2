#!/usr/bin/env bash
# test_kafka_direct.sh -- the direct Kafka source against the real broker, checked with kcat
# and Kafka's consumer-group tool:
#   - N keyed messages over 8 partitions are each processed exactly once, in partition order
#     (the file sink's part files, mapped back to partition/offset with what kcat read);
#   - with max_rate_per_partition 1000 and a 1 s batch, no batch takes more than 1000
#     messages of a partition (the batches' offset ranges, and the part files);
#   - the group's committed offsets reach the end of every partition;
#   - a restart with start: committed reads only what came after, once;
#   - with a checkpoint directory, a crash (kill -9) mid-stream and a restart: every message
#     is in the output exactly once (pending batches are read again from their offset
#     ranges; the file sink skips the batches it already holds).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 110
kafka_up
T=$(it_unique direct)
G=$(it_unique gdirect)
kafka_topic "$T" 8

N=16000
awk -v n=$N 'BEGIN { for (i = 1; i <= n; i++) printf "k%d\tv%d\n", i, i }' >"$IT_TMP/in1.txt"
kafka_produce "$T" "$IT_TMP/in1.txt"
kafka_dump "$T" >"$IT_TMP/ref.txt"
it_eq "kcat reads back every produced message" "$N" "$(wc -l <"$IT_TMP/ref.txt" | tr -d ' ')"

write_config() { # file start prefix
    cat >"$1" <<EOF
app:
  name: kafka-direct-test
  batch_interval: 1s
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$T]
    group: $G
    start: $2
    max_rate_per_partition: 1000
sinks:
  - name: out
    type: file
    from: kin
    prefix: $3
EOF
}

# Lists "batch file value" for every record of the finished batch directories.
listing() { # dir
    local d f
    for d in $(find "$1" -maxdepth 1 -type d -name 'b-*' 2>/dev/null | sort); do
        for f in "$d"/part-*; do
            [ -f "$f" ] || continue
            sed -e 's/^(//' -e 's/)$//' -e 's/^[^,]*,//' "$f" | awk -v b="$(basename "$d")" \
                -v f="$f" '{ print b, f, $0 }'
        done
    done
}

# Checks a listing against kcat's view: exactly once, in partition order, at most cap per
# partition and batch. Prints "missing dup unknown mixed order over".
verify() { # listing ref expected-first-offsets-file cap
    awk -v cap="$4" '
        FILENAME == ARGV[1] { p[$4] = $1; o[$4] = $2; want[$4] = 1; next }
        FILENAME == ARGV[2] { next_off[$1] = $2; next }
        {
            v = $3
            if (!(v in p)) { unknown++; next }
            seen[v]++
            if (seen[v] > 1) { dup++; next }
            if (($2 in fp) && fp[$2] != p[v]) mixed++
            fp[$2] = p[v]
            n[$2]++
            if (n[$2] > cap) over++
            if (o[v] != next_off[p[v]]) order++
            next_off[p[v]] = o[v] + 1
        }
        END {
            for (v in want) if (!(v in seen)) missing++
            printf "%d %d %d %d %d %d\n", missing, dup, unknown, mixed, order, over
        }' "$2" "$3" "$1"
}

# ==== First run: everything from the start, capped ====

write_config "$IT_TMP/run1.yaml" earliest "$IT_TMP/out1/b"
it_sluice run1 "$IT_TMP/run1.yaml" --log-level debug
PID=$IT_LAST_PID
if it_wait_until "$(($(it_left) - 40))" bash -c "[ \$(find '$IT_TMP/out1' -path '*/b-*/part-*' \
        -exec cat {} + 2>/dev/null | wc -l) -ge $N ]"; then
    it_ok "sluice processed $N messages"
else
    it_bad "sluice processed $(it_file_count "$IT_TMP/out1" b) of $N messages in time"
fi
it_check "sluice stops cleanly on SIGTERM" it_stop "$PID"

for p in 0 1 2 3 4 5 6 7; do echo "$p 0"; done >"$IT_TMP/first.txt"
listing "$IT_TMP/out1" >"$IT_TMP/list1.txt"
read -r missing dup unknown mixed order over < <(verify "$IT_TMP/list1.txt" "$IT_TMP/ref.txt" \
    "$IT_TMP/first.txt" 1000)
it_eq "no message missing" 0 "$missing"
it_eq "no message twice" 0 "$dup"
it_eq "no message sluice made up" 0 "$unknown"
it_eq "each batch partition holds one Kafka partition" 0 "$mixed"
it_eq "messages in partition order, offsets without a gap" 0 "$order"
it_eq "no part file over 1000 messages" 0 "$over"

# The batches' offset ranges (debug log: "batch T: N records: topic[p]:from-until ...").
ranges=$(grep -E ': batch [0-9]+: [0-9]+ records:' "$IT_TMP/run1.log" |
    grep -oE '\[[0-9]+\]:[0-9]+-[0-9]+' || true)
nranges=$(echo "$ranges" | grep -c . || true)
maxrange=$(echo "$ranges" | awk -F'[:-]' '{ d = $3 - $2; if (d > m) m = d } END { print m + 0 }')
it_check "batches have offset ranges ($nranges)" test "$nranges" -ge 16
it_check "no batch takes more than 1000 messages of a partition (largest: $maxrange)" \
    test "$maxrange" -le 1000
batches=$(find "$IT_TMP/out1" -maxdepth 1 -type d -name 'b-*' 2>/dev/null | wc -l || true)
it_check "the cap spread the backlog over several batches ($batches)" test "$batches" -ge 2

# Committed offsets, seen by Kafka's consumer-group tool.
kafka_group "$G" >"$IT_TMP/group1.txt" || true
parts=$(wc -l <"$IT_TMP/group1.txt" | tr -d ' ')
lag=$(awk '{ s += $5 } END { print s + 0 }' "$IT_TMP/group1.txt")
it_eq "the group has committed offsets for every partition" 8 "$parts"
it_eq "the group's lag is 0 (committed = log end)" 0 "$lag"

# ==== Second run: start: committed reads only the new messages ====

M=800
awk -v n=$N -v m=$M 'BEGIN { for (i = n + 1; i <= n + m; i++) printf "k%d\tv%d\n", i, i }' \
    >"$IT_TMP/in2.txt"
kafka_produce "$T" "$IT_TMP/in2.txt"
kafka_dump "$T" >"$IT_TMP/ref_all.txt"
awk -v n=$N '{ split($4, a, "v"); if (a[2] + 0 > n) print }' "$IT_TMP/ref_all.txt" >"$IT_TMP/ref2.txt"
# Where each partition continues: its offset count after the first run.
awk -v n=$N '{ split($4, a, "v"); if (a[2] + 0 <= n) c[$1]++ } END { for (p = 0; p < 8; p++)
    print p, c[p] + 0 }' "$IT_TMP/ref_all.txt" >"$IT_TMP/first2.txt"

write_config "$IT_TMP/run2.yaml" committed "$IT_TMP/out2/b"
it_sluice run2 "$IT_TMP/run2.yaml" --log-level debug
PID=$IT_LAST_PID
if it_wait_until 40 bash -c "[ \$(find '$IT_TMP/out2' -path '*/b-*/part-*' \
        -exec cat {} + 2>/dev/null | wc -l) -ge $M ]"; then
    it_ok "after a restart sluice processed the $M new messages"
else
    it_bad "after a restart sluice processed $(it_file_count "$IT_TMP/out2" b) of $M messages"
fi
sleep 1.5 # one more batch: nothing else may come
it_check "sluice stops cleanly on SIGTERM" it_stop "$PID"
listing "$IT_TMP/out2" >"$IT_TMP/list2.txt"
read -r missing dup unknown mixed order over < <(verify "$IT_TMP/list2.txt" "$IT_TMP/ref2.txt" \
    "$IT_TMP/first2.txt" 1000)
it_eq "restart: no new message missing" 0 "$missing"
it_eq "restart: nothing read twice" 0 "$((dup + unknown))"
it_eq "restart: in partition order from the committed offsets" 0 "$order"
it_check "restart: started from the committed offsets" it_grep_log run2 'offset [0-9]+ \(the group'
kafka_group "$G" >"$IT_TMP/group2.txt" || true
lag=$(awk '{ s += $5 } END { print s + 0 }' "$IT_TMP/group2.txt")
it_eq "restart: the group's lag is 0 again" 0 "$lag"

# ==== Third run: checkpoint, kill -9, restart: exactly once ====

T3=$(it_unique direct-ckpt)
kafka_topic "$T3" 4
N3=12000
awk -v n=$N3 'BEGIN { for (i = 1; i <= n; i++) printf "k%d\tv%d\n", i, i }' >"$IT_TMP/in3.txt"
kafka_produce "$T3" "$IT_TMP/in3.txt"
cat >"$IT_TMP/run3.yaml" <<EOF
app:
  name: kafka-direct-ckpt-test
  batch_interval: 500ms
  checkpoint_dir: $IT_TMP/ck3
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$T3]
    start: earliest
    max_rate_per_partition: 1000
sinks:
  - name: out
    type: file
    from: kin
    prefix: $IT_TMP/out3/b
EOF
it_sluice run3a "$IT_TMP/run3.yaml"
PID=$IT_LAST_PID
it_wait_until 20 bash -c "[ \$(find '$IT_TMP/out3' -maxdepth 1 -name 'b-*' -type d 2>/dev/null |
    wc -l) -ge 3 ]" || true
it_kill9 "$PID"
before=$(it_file_count "$IT_TMP/out3" b)
it_check "checkpoint: killed (kill -9) mid-stream after $before of $N3" test "$before" -lt "$N3"
it_sluice run3b "$IT_TMP/run3.yaml"
PID=$IT_LAST_PID
it_wait_until 40 bash -c "[ \$(find '$IT_TMP/out3' -path '*/b-*/part-*' -exec cat {} + \
    2>/dev/null | wc -l) -ge $N3 ]" || true
sleep 1
it_check "checkpoint: the restarted sluice stops cleanly" it_stop "$PID"
it_check "checkpoint: the restart continued from the checkpoint" \
    it_grep_log run3b "continuing from the checkpoint"
it_file_records "$IT_TMP/out3" b | sed -e 's/^(//' -e 's/)$//' -e 's/^[^,]*,//' |
    awk -v n=$N3 '{ c[$0]++ } END { for (i = 1; i <= n; i++) { x = c["v" i]; if (!x) m++;
        else if (x > 1) d++ } printf "%d %d\n", m, d }' >"$IT_TMP/once3.txt"
read -r missing twice <"$IT_TMP/once3.txt"
it_eq "checkpoint: no message lost across the crash" 0 "$missing"
it_eq "checkpoint: no message twice across the crash" 0 "$twice"

it_finish

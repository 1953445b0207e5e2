#!/usr/bin/env bash
# test_kafka_headers.sh -- Kafka headers and record metadata in YAML ops, against the real
# broker, checked with kcat (`-H name=value` to produce, `-f '%p %o %h'` to read back):
#   - messages with headers over 3 partitions; a direct-mode pipeline writes per record
#     (id header, partition) and (id header, offset) via `key: {header: id}` and
#     `value: {meta: partition|offset, as: text}`, and (partition, offset) via
#     `key: {meta: partition}`: every message's partition and offset are what kcat prints
#     for it;
#   - keyed by the tenant header and counted (`reduce_by_key: count`): the counts are kcat's,
#     messages without the header are rejected and reported with partition and offset;
#   - `filter: {meta: partition, equals: 1}` and `filter: {header: tenant, equals: acme}`
#     keep what kcat says they should;
#   - the kafka sink forwards the headers (kcat reads the same `%h|%s` pairs back from the
#     output topic);
#   - receiver mode with a write-ahead log sees the same headers and offsets.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 110
kafka_up
T=$(it_unique headers)
T2=$(it_unique headers-out)
G=$(it_unique gheaders)
kafka_topic "$T" 3
kafka_topic "$T2" 1

# 3 partitions x 10 messages with id=P-I and a tenant (acme, bolt, or none), plus a
# message without any header in each partition. kcat applies -H to each message it sends,
# so one kcat per message.
N=0
for p in 0 1 2; do
    for i in $(seq 0 9); do
        case $((i % 3)) in
        0) t=(-H tenant=acme) ;;
        1) t=(-H tenant=bolt) ;;
        *) t=() ;;
        esac
        echo "v$p-$i" | kcat -P -b "$KAFKA_BOOTSTRAP" -t "$T" -p "$p" -H "id=$p-$i" "${t[@]}" ||
            it_abort "kcat could not produce to $T"
        N=$((N + 1))
    done
    echo "bare$p" | kcat -P -b "$KAFKA_BOOTSTRAP" -t "$T" -p "$p" || it_abort "kcat failed"
    N=$((N + 1))
done
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$T" -e -q -f '%p %o %h|%s\n' >"$IT_TMP/kcat.txt"
it_eq "kcat reads back every produced message" "$N" "$(wc -l <"$IT_TMP/kcat.txt" | tr -d ' ')"
# "id partition offset" per message with an id, as kcat sees it.
sed -n 's/^\([0-9]*\) \([0-9]*\) .*id=\([0-9-]*\).*$/\3 \1 \2/p' "$IT_TMP/kcat.txt" | sort \
    >"$IT_TMP/ref_ids.txt"
WITH_ID=$(wc -l <"$IT_TMP/ref_ids.txt" | tr -d ' ')
it_eq "kcat shows the id header of 30 messages" 30 "$WITH_ID"
# "partition offset" of every message.
awk '{ print $1, $2 }' "$IT_TMP/kcat.txt" | sort >"$IT_TMP/ref_pos.txt"

write_config() { # file mode out-dir
    cat >"$1" <<EOF
app:
  name: kafka-headers-test
  batch_interval: 500ms
  checkpoint_dir: $3/ck
sources:
  - name: kin
    type: kafka
    mode: $2
    brokers: $KAFKA_BOOTSTRAP
    topics: [$T]
    group: $G-$2
    start: earliest
streams:
  - name: id_part
    from: kin
    ops:
      - key: {header: id}
      - value: {meta: partition, as: text}
  - name: id_off
    from: kin
    ops:
      - key: {header: id}
      - value: {meta: offset, as: text}
  - name: pos
    from: kin
    ops:
      - key: {meta: partition}
      - value: {meta: offset, as: text}
  - name: tenants
    from: kin
    ops:
      - key: {header: tenant}
      - reduce_by_key: count
  - name: p1
    from: kin
    ops:
      - filter: {meta: partition, equals: 1}
  - name: acme
    from: kin
    ops:
      - filter: {header: tenant, equals: acme}
sinks:
  - {name: o_id_part, type: file, from: id_part, prefix: $3/id_part/b}
  - {name: o_id_off, type: file, from: id_off, prefix: $3/id_off/b}
  - {name: o_pos, type: file, from: pos, prefix: $3/pos/b}
  - {name: o_tenants, type: file, from: tenants, prefix: $3/tenants/b}
  - {name: o_p1, type: file, from: p1, prefix: $3/p1/b}
  - {name: o_acme, type: file, from: acme, prefix: $3/acme/b}
EOF
    if [ "$2" = direct ]; then
        cat >>"$1" <<EOF
  - {name: o_fwd, type: kafka, from: kin, brokers: $KAFKA_BOOTSTRAP, topic: $T2}
EOF
    fi
}

# The number of lines in which two files differ.
differ() { # a b
    { diff "$1" "$2" || true; } | grep -c '^[<>]' || true
}

# "(a,b)" lines of a file sink's output as "a b", sorted.
pairs() { # dir
    it_file_records "$1" b | sed -e 's/^(//' -e 's/)$//' -e 's/,/ /' | sort
}

check_run() { # mode out-dir log
    local mode=$1 out=$2 log=$3
    pairs "$out/id_part" >"$out/id_part.txt"
    pairs "$out/id_off" >"$out/id_off.txt"
    join "$out/id_part.txt" "$out/id_off.txt" >"$out/ids.txt"
    it_eq "$mode: id header -> {meta: partition}, {meta: offset}: lines differing from kcat's %p %o" \
        0 "$(differ "$IT_TMP/ref_ids.txt" "$out/ids.txt")"
    it_eq "$mode: records keyed by the id header" "$WITH_ID" "$(wc -l <"$out/ids.txt" | tr -d ' ')"
    pairs "$out/pos" >"$out/pos.txt"
    it_eq "$mode: {meta: partition}/{meta: offset} of every message: lines differing from kcat" \
        0 "$(differ "$IT_TMP/ref_pos.txt" "$out/pos.txt")"
    # Per-batch counts summed per tenant.
    local counts
    counts=$(pairs "$out/tenants" | awk '{ c[$1] += $2 } END { for (t in c) print t, c[t] }' |
        sort | tr '\n' ' ')
    it_eq "$mode: counted by the tenant header" "acme 12 bolt 9 " "$counts"
    local rejected
    rejected=$(grep -cE "rejected a record .* from kin $T partition [0-2] offset [0-9]+" \
        "$log" || true)
    it_check "$mode: records without the tenant header are rejected and logged with their partition and offset ($rejected lines)" \
        test "$rejected" -ge 1
    it_eq "$mode: filter {meta: partition, equals: 1} keeps partition 1's messages" \
        "$(grep -c '^1 ' "$IT_TMP/kcat.txt")" "$(it_file_count "$out/p1" b)"
    it_eq "$mode: filter {header: tenant, equals: acme} keeps acme's messages" \
        "$(grep -c 'tenant=acme' "$IT_TMP/kcat.txt")" "$(it_file_count "$out/acme" b)"
}

wait_for() { # out-dir
    it_wait_until "$(($(it_left) > 60 ? 30 : $(it_left) / 2))" bash -c \
        "[ \$(find '$1/pos' -path '*/b-*/part-*' -exec cat {} + 2>/dev/null | wc -l) -ge $N ]"
}

# ==== Direct mode ====

OUT=$IT_TMP/direct
write_config "$IT_TMP/direct.yaml" direct "$OUT"
it_sluice direct "$IT_TMP/direct.yaml"
PID=$IT_LAST_PID
if wait_for "$OUT"; then
    it_ok "direct: sluice processed the $N messages"
else
    it_bad "direct: sluice processed $(it_file_count "$OUT/pos" b) of $N messages in time"
fi
sleep 1 # one more batch
it_check "direct: sluice stops cleanly" it_stop "$PID"
check_run direct "$OUT" "$IT_TMP/direct.log"
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$T2" -e -q -f '%h|%s\n' | sort >"$IT_TMP/fwd.txt"
sed 's/^[0-9]* [0-9]* //' "$IT_TMP/kcat.txt" | sort >"$IT_TMP/ref_fwd.txt"
it_eq "the kafka sink forwarded every message ($N) with its headers: lines differing" \
    0 "$(differ "$IT_TMP/ref_fwd.txt" "$IT_TMP/fwd.txt")"
it_eq "messages in the output topic" "$N" "$(wc -l <"$IT_TMP/fwd.txt" | tr -d ' ')"

# ==== Receiver mode, with its write-ahead log ====

OUT=$IT_TMP/receiver
write_config "$IT_TMP/receiver.yaml" receiver "$OUT"
it_sluice receiver "$IT_TMP/receiver.yaml"
PID=$IT_LAST_PID
if wait_for "$OUT"; then
    it_ok "receiver: sluice processed the $N messages"
else
    it_bad "receiver: sluice processed $(it_file_count "$OUT/pos" b) of $N messages in time"
fi
sleep 1
it_check "receiver: sluice stops cleanly" it_stop "$PID"
check_run receiver "$OUT" "$IT_TMP/receiver.log"

it_finish

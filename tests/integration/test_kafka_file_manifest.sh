#!/usr/bin/env bash
# test_kafka_file_manifest.sh -- Kafka direct into the file sink in JSON lines, against the
# real broker, checked with kcat, jq and awk:
#   - the manifests' offset ranges (the batches' input, as checkpointed) cover exactly
#     [0, end) of every partition, without gap or overlap, across all batch directories;
#   - each batch directory holds exactly the messages of its manifest's ranges, and the
#     manifest's record and byte counts are those of its part files;
#   - the records (partition, offset, key, value: quotes, backslashes, commas, UTF-8) equal
#     what kcat reads from the topic.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 110
kafka_up
T=$(it_unique manifest)
kafka_topic "$T" 4

N=6000
awk -v n=$N 'BEGIN {
    split("plain|say \"hi\"|back\\slash|a,b,c|caf\303\251 \342\202\254|{\"json\": [1, 2]}", v, "|")
    for (i = 1; i <= n; i++) printf "k%d\t%s %d\n", i, v[1 + i % 6], i
}' >"$IT_TMP/in.txt"
kafka_produce "$T" "$IT_TMP/in.txt"
kafka_dump "$T" >"$IT_TMP/ref.txt"
it_eq "kcat reads back every produced message" "$N" "$(wc -l <"$IT_TMP/ref.txt" | tr -d ' ')"

cat >"$IT_TMP/run.yaml" <<EOF
app:
  name: kafka-manifest-test
  batch_interval: 500ms
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$T]
    group: $(it_unique gmanifest)
    start: earliest
    max_rate_per_partition: 1000
sinks:
  - name: out
    type: file
    from: kin
    prefix: $IT_TMP/out/b
    format: json
EOF
it_sluice sluice "$IT_TMP/run.yaml"
PID=$IT_LAST_PID
if it_wait_until "$(($(it_left) - 30))" bash -c "[ \$(find '$IT_TMP/out' -path '*/b-*/part-*' \
    -exec cat {} + 2>/dev/null | wc -l) -ge $N ]"; then
    it_ok "every message reached the file sink"
else
    it_bad "only $(it_file_count "$IT_TMP/out" b) of $N messages reached the file sink"
fi
it_check "sluice stops cleanly on SIGTERM" it_stop "$PID"
ndirs=$(find "$IT_TMP/out" -maxdepth 1 -type d -name 'b-*' | wc -l | tr -d ' ')
it_check "the messages span several batches ($ndirs directories)" [ "$ndirs" -ge 3 ]

# manifest_findings: prints one line per finding; nothing when everything holds. Read with
# jq and awk; a record is "partition offset key value", as kafka_dump prints it (ref.txt).
manifest_findings() {
    local d m name records bytes path n size total
    : >"$IT_TMP/ranges.txt" # "partition from until dir" of every non-empty range
    : >"$IT_TMP/got.txt"    # every record written, all batches
    while IFS= read -r d; do
        m=$d/_manifest.json
        if ! jq -e 'type == "object"' "$m" >/dev/null 2>&1; then
            echo "$d: no readable manifest"
            continue
        fi
        : >"$IT_TMP/mine.txt" # "partition offset" of the batch's ranges
        jq -r '.inputs.kin.ranges[] | map(tostring) | join(" ")' "$m" |
            awk -v t="$T" -v d="$d" -v rf="$IT_TMP/ranges.txt" -v mf="$IT_TMP/mine.txt" '
                $1 != t { print d ": range of another topic " $1 }
                $4 > $3 {
                    print $2, $3, $4, d >>rf
                    for (o = $3; o < $4; o++) print $2, o >>mf
                }' || echo "$d: no offset ranges of kin in the manifest"
        : >"$IT_TMP/held.txt" # the batch's records
        total=0
        while IFS=$'\t' read -r name records bytes; do
            path=$d/$name
            n=$(wc -l <"$path" | tr -d ' ')
            size=$(stat -c %s "$path")
            [ "$records" = "$n" ] && [ "$bytes" = "$size" ] ||
                echo "$path: manifest says $records records, $bytes bytes;" \
                    "the file has $n lines, $size bytes"
            total=$((total + n))
            jq -r 'def field($f): if .[$f + "_encoding"] == "base64" then .[$f] | @base64d
                    else .[$f] end;
                "\(.topic) \(.partition) \(.offset) \(field("key")) \(field("value"))"' "$path" \
                >"$IT_TMP/part.txt" || echo "$path: not JSON lines"
            awk -v t="$T" -v path="$path" '$1 != t { print path ": (" $2 ", " $3 ") of " $1 }' \
                "$IT_TMP/part.txt"
            cut -d' ' -f2- "$IT_TMP/part.txt" >>"$IT_TMP/held.txt"
        done < <(jq -r '.parts[] | "\(.name)\t\(.records)\t\(.bytes)"' "$m")
        [ "$(jq .records "$m")" = "$total" ] ||
            echo "$d: manifest records $(jq .records "$m") != $total"
        cut -d' ' -f1,2 "$IT_TMP/held.txt" | LC_ALL=C sort -u >"$IT_TMP/held-po.txt"
        LC_ALL=C sort -u "$IT_TMP/mine.txt" >"$IT_TMP/mine-po.txt"
        if ! cmp -s "$IT_TMP/held-po.txt" "$IT_TMP/mine-po.txt"; then
            echo "$d: holds $(wc -l <"$IT_TMP/held-po.txt") messages, its ranges" \
                "$(wc -l <"$IT_TMP/mine-po.txt"): $(comm -3 "$IT_TMP/held-po.txt" \
                    "$IT_TMP/mine-po.txt" | head -n 5 | tr -d '\t' | tr '\n' ',')"
        fi
        cat "$IT_TMP/held.txt" >>"$IT_TMP/got.txt"
    done < <(find "$IT_TMP/out" -maxdepth 1 -type d -name 'b-*' | LC_ALL=C sort)
    # A message written twice, in one batch or in two.
    cut -d' ' -f1,2 "$IT_TMP/got.txt" | LC_ALL=C sort | uniq -d | head -n 5 |
        sed 's/^/written twice: /'
    # Per partition of the topic, the ranges in order cover [0, end) without gap or overlap.
    awk '{ if ($2 + 1 > end[$1]) end[$1] = $2 + 1 } END { for (p in end) print p, end[p] }' \
        "$IT_TMP/ref.txt" >"$IT_TMP/ends.txt"
    sort -k1,1n -k2,2n -k3,3n "$IT_TMP/ranges.txt" | awk -v ef="$IT_TMP/ends.txt" '
        BEGIN { while ((getline l <ef) > 0) { split(l, a, " "); end[a[1]] = a[2] } }
        {
            if (!($1 in at)) at[$1] = 0
            if ($2 != at[$1])
                print "partition " $1 ": " ($2 < at[$1] ? "overlap" : "gap") " at " \
                    at[$1] ".." $2 " (" $4 ")"
            if ($3 > at[$1]) at[$1] = $3
        }
        END {
            for (p in end)
                if (at[p] + 0 != end[p] + 0)
                    print "partition " p ": ranges end at " at[p] + 0 ", the partition at " end[p]
        }'
    # The records equal kcat's.
    if ! cmp -s <(LC_ALL=C sort "$IT_TMP/got.txt") <(LC_ALL=C sort "$IT_TMP/ref.txt"); then
        echo "records: $(wc -l <"$IT_TMP/got.txt") vs kcat $(wc -l <"$IT_TMP/ref.txt"); e.g." \
            "$(diff <(LC_ALL=C sort "$IT_TMP/got.txt") <(LC_ALL=C sort "$IT_TMP/ref.txt") |
                grep '^[<>]' | head -n 6 | tr '\n' ' ')"
    fi
}
manifest_findings >"$IT_TMP/findings.txt" 2>&1 || true
if [ -s "$IT_TMP/findings.txt" ]; then
    head -n 20 "$IT_TMP/findings.txt"
    it_bad "manifests, ranges and records agree with kcat"
else
    it_ok "manifests' ranges cover [0, end) of the $(awk '{print $1}' "$IT_TMP/ref.txt" |
        sort -u | wc -l | tr -d ' ') partitions exactly; records equal kcat's"
fi
it_finish

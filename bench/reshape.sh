#!/usr/bin/env bash
# reshape.sh -- the JSON reshape on one worker: N events of about 180 bytes (default 500000)
# in a file, read by the file source, each given a computed field (set total = price * qty),
# a renamed one (sku to item.sku) and a nested field dropped (user.geo); counted. Three runs:
# the file source alone (count only), the three shaping ops fused (one JSON decode and
# encode per record, what sluice does), and the same three kept apart by map: trim (three
# decodes and encodes). Prints, for each, the processing time of the batch that holds the
# records (from the status API), records/s, and the process's CPU time per record.
#
#     bench/reshape.sh [N]
#
# Binary: $SLUICE_BIN (default build/sluice; a Release build measures best). Needs curl and
# jq. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
SLUICE_BIN=${SLUICE_BIN:-build/sluice}
n=${1:-500000}
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "reshape: $tool is needed" >&2; exit 1; }
done
work=$(mktemp -d /tmp/sluice-reshape-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/in"
awk -v n="$n" 'BEGIN {
    srand(1)
    for (i = 0; i < n; i++)
        printf "{\"id\":%d,\"ts\":\"2026-12-07T10:00:%02d.%03dZ\",\"user\":{\"id\":\"u%06d\",\"name\":\"user%d\",\"geo\":{\"country\":\"DE\",\"city\":\"Berlin\"}},\"price\":%.2f,\"qty\":%d,\"sku\":\"SKU-%05d\",\"tags\":[\"a\",\"b\"]}\n",
            i, i % 60, i % 1000, i % 100000, i % 977, rand() * 100, 1 + int(rand() * 9), i % 50000
}' >"$work/in/events.jsonl"

ops_base='      - count: {}'
ops_fused='      - set: {field: total, expr: price * qty}
      - rename: {from: sku, to: item.sku}
      - drop: [user.geo]
      - count: {}'
ops_apart='      - set: {field: total, expr: price * qty}
      - map: trim
      - rename: {from: sku, to: item.sku}
      - map: trim
      - drop: [user.geo]
      - count: {}'

printf '%-8s %10s %12s %14s %12s\n' run records batch_ms records/s cpu_us/rec
for run in base fused apart; do
    port=$((30000 + RANDOM % 20000))
    ops_var=ops_$run
    cat >"$work/$run.yaml" <<YAML
app: {name: reshape_$run, batch_interval: 1s, workers: 1}
http: {listen: "127.0.0.1:$port"}
sources:
  - {name: events, type: file, path: $work/in, include_existing: true}
streams:
  - name: s
    from: events
    ops:
${!ops_var}
sinks:
  - {name: out, type: stdout, from: s}
YAML
    "$SLUICE_BIN" run "$work/$run.yaml" >/dev/null 2>"$work/$run.log" &
    pid=$!
    batch=""
    for _ in $(seq 1 600); do
        sleep 0.2
        batch=$(curl -fsS "http://127.0.0.1:$port/api/v1/batches" 2>/dev/null |
            jq -c '[(if type == "array" then . else .batches end)[] | select(.records > 0 and .processing_time_ms != null)][0] // empty' \
                2>/dev/null || true)
        [ -z "$batch" ] || break
    done
    cpu=$(awk '{ print $14 + $15 }' "/proc/$pid/stat") # utime + stime, in clock ticks
    kill -TERM "$pid" && wait "$pid" || true
    [ -n "$batch" ] || { echo "reshape: no finished batch in $run" >&2; cat "$work/$run.log" >&2; exit 1; }
    recs=$(jq .records <<<"$batch")
    ms=$(jq .processing_time_ms <<<"$batch")
    awk -v run="$run" -v r="$recs" -v ms="$ms" -v cpu="$cpu" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        printf "%-8s %10d %12d %14.0f %12.2f\n", run, r, ms, (ms > 0 ? r / ms * 1000 : 0),
            cpu / hz * 1e6 / r
    }'
done

#!/usr/bin/env bash
# group.sh -- the consumer-group path of issue 14 against the single-instance path, in the
# same run, on the real broker and PostgreSQL of tests/infra (started if not running):
#  1. throughput: a word count of LINES pre-filled lines (8 partitions) into PostgreSQL
#     (increment), once by one instance without a group (Kafka direct, its checkpoint) and
#     once by one instance in a group whose sink records input positions; lines/s of each
#     from the first to the last row, and the ratio (target: the group path >= 80%);
#  2. resume: three instances in a group (static membership, session.timeout.ms 6000); one
#     is killed with kill -9 and not restarted; the time until every line is counted, and
#     until a survivor is assigned the dead one's partitions.
# Each run is checked against the expected total (awk). Prints a table.
#
#   bash bench/group.sh [LINES]      (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SLUICE_BUILD:-build}
lines=${1:-1000000}
bin=$build/sluice
[ -x "$bin" ] || { echo "group.sh: no $bin (build first)" >&2; exit 1; }
export SLUICE_STATE=${SLUICE_STATE:-/tmp/sluice-infra}
for s in kafka postgres; do
    bash tests/infra/$s.sh status >/dev/null 2>&1 || bash tests/infra/$s.sh start >/dev/null
done
set -a
. "$SLUICE_STATE/postgres/env"
set +a
bootstrap=$(cat "$SLUICE_STATE/kafka/bootstrap")
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
tmp=$(mktemp -d)
run=$$
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    q "DROP TABLE IF EXISTS bench_grp_single_$run, bench_grp_group_$run, bench_grp_resume_$run" \
        >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

topic=bench-grp-$run
bash tests/infra/kafka.sh topic "$topic" 8 >/dev/null
awk -v n="$lines" 'BEGIN { srand(7); for (i = 0; i < n; i++) {
    l = ""; for (j = 0; j < 10; j++) l = l (j ? " " : "") "w" int(rand() * 1000); print l } }' \
    >"$tmp/lines.txt"
kcat -P -b "$bootstrap" -t "$topic" -X linger.ms=20 -l "$tmp/lines.txt"
total=$((lines * 10))

config() { # NAME TABLE GROUP INSTANCE RATE_PER_PARTITION
    cat >"$tmp/$1.yaml" <<YAML
app: {name: bench-grp-$run-$2, batch_interval: 100ms, checkpoint_dir: $tmp/ckpt-$1}
sources:
  - name: lines
    type: kafka
    brokers: $bootstrap
    topics: [$topic]
    start: earliest
    max_rate_per_partition: $5
$( [ -n "$3" ] && printf '    group: %s\n    group_instance_id: %s\n    properties: session.timeout.ms=6000,heartbeat.interval.ms=1000\n' "$3" "$4")
streams:
  - {name: counts, from: lines, ops: [{split: whitespace}, {key: value}, {value: 1}, {reduce_by_key: sum}]}
sinks:
  - {name: db, type: postgres, from: counts, table: $2, mode: increment, instance: $4,
     columns: [word=key, count=num], key_columns: [word], create_table: true}
YAML
    echo "$tmp/$1.yaml"
}
sum() { q "SELECT COALESCE(SUM(count), 0) FROM $1" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
wait_total() { # TABLE TIMEOUT_S: waits until the table holds every word; prints the time
    local end=$(($(date +%s) + $2))
    while [ "$(sum "$1")" -lt "$total" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 0.2; done
    now
}
wait_first() { # TABLE
    while [ "$(sum "$1")" -eq 0 ]; do sleep 0.05; done
    now
}

throughput() { # NAME GROUP: lines/s from the first row to the last
    local table=bench_grp_${1}_$run
    # Batches of at most 100k lines (12.5k per partition per 100 ms): more than a batch
    # interval's work, so the run is bound by processing, over many batches.
    "$bin" run "$(config "$1" "$table" "$2" "$1-0" 125000)" >"$tmp/$1.log" 2>&1 &
    pids+=($!)
    local pid=$! t0 t1
    t0=$(wait_first "$table")
    t1=$(wait_total "$table" 600)
    kill -TERM "$pid"; wait "$pid" || true
    [ "$(sum "$table")" -eq "$total" ] || { echo "group.sh: $1: $(sum "$table") of $total words" >&2; exit 1; }
    awk -v a="$t0" -v b="$t1" -v n="$lines" 'BEGIN { printf "%.0f", n / (b - a) }'
}
single=$(throughput single "")
group=$(throughput group "bench-grp-$run-g")

# Resume after losing one of three.
table=bench_grp_resume_$run
g="bench-grp-$run-r"
for i in a b c; do
    "$bin" run "$(config "r$i" "$table" "$g" "$i" 3000)" >"$tmp/r$i.log" 2>&1 &
    pids+=($!)
    eval "pid_$i=$!"
done
sleep 1
while [ "$(sum "$table")" -lt $((total / 4)) ]; do sleep 0.1; done
t_kill=$(now)
kill -9 "$pid_c"
wait "$pid_c" 2>/dev/null || true
t_assigned=""
t_done=$(wait_total "$table" 600)
for i in a b; do
    ts=$({ grep -h 'assigned' "$tmp/r$i.log" || true; } | tail -n 1 | awk '{ print $1 }')
    [ -n "$ts" ] && t_assigned="$t_assigned $(date -d "$ts" +%s.%N)"
done
for i in a b; do eval "kill -TERM \$pid_$i"; done
wait "$pid_a" "$pid_b" 2>/dev/null || true
[ "$(sum "$table")" -eq "$total" ] || { echo "group.sh: resume: $(sum "$table") of $total words" >&2; exit 1; }
reassigned=$(for t in $t_assigned; do awk -v a="$t_kill" -v b="$t" 'BEGIN { if (b > a) printf "%.1f\n", b - a }'; done |
    sort -n | tail -n 1)

printf '\nconsumer-group path vs single instance: %d lines of 10 words, 8 partitions, PostgreSQL increment (load %s)\n\n' \
    "$lines" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '| run | lines/s | vs single |\n|---|---|---|\n'
printf '| one instance, no group | %s | 1.00 |\n' "$single"
printf '| one instance in a group, input positions | %s | %s |\n' "$group" \
    "$(awk -v a="$group" -v b="$single" 'BEGIN { printf "%.2f", a / b }')"
printf '\nlosing 1 of 3 instances (kill -9, not restarted; session.timeout.ms 6000):\n'
printf '  its partitions reassigned to a survivor %s s after the kill; every line counted, none\n' \
    "${reassigned:-?}"
printf '  twice, %.1f s after it (the inputs are rate-limited to 3000 lines/s per partition here)\n' \
    "$(awk -v a="$t_kill" -v b="$t_done" 'BEGIN { print b - a }')"

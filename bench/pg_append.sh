#!/usr/bin/env bash
# pg_append.sh -- the postgres sink's append mode (COPY per batch, in a transaction with its
# commit row) against psql's \copy of the same rows into the same kind of table, in the same
# run. Target: the sink reaches at least 70% of \copy's rows/s.
#
#   bash bench/pg_append.sh [ROWS] [BATCH_ROWS...]     (default 1000000 rows; 10000 100000)
#
# Needs the build (SLUICE_BUILD, default build/) and starts PostgreSQL with
# tests/infra/postgres.sh if it is not running. Prints one line per batch size and a table.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SLUICE_BUILD:-build}
rows=${1:-1000000}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
[ -x "$build/pg_append" ] || { echo "pg_append.sh: no $build/pg_append (build first)" >&2; exit 1; }

bash tests/infra/postgres.sh start >/dev/null 2>&1
set -a
. "${SLUICE_STATE:-/tmp/sluice-infra}/postgres/env"
set +a
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
tmp=$(mktemp -d)
tsink="bench_sink_$$"
tcopy="bench_copy_$$"
trap 'q "DROP TABLE IF EXISTS $tsink, $tcopy; DELETE FROM sluice_commits WHERE pipeline = '"'"'pg_append_bench'"'"'" >/dev/null 2>&1; rm -rf "$tmp"' EXIT

# Each size runs REPEAT times (default 3), the sink and \copy alternating; the table shows
# the medians (loopback PostgreSQL on a shared machine varies by tens of percent).
repeat=${REPEAT:-3}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
results=()
for b in "${sizes[@]}"; do
    sinks=() copies=()
    for ((r = 1; r <= repeat; r++)); do
        q "DROP TABLE IF EXISTS $tsink, $tcopy; DELETE FROM sluice_commits WHERE pipeline = 'pg_append_bench'"
        q "CREATE TABLE $tcopy (k text, v text, n bigint)"
        line=$("$build/pg_append" "$tsink" "$rows" "$b" "$tmp/rows.copy")
        sink_rate=${line##*rows_per_s=}
        got=$(q "SELECT count(*) FROM $tsink")
        [ "$got" = "$rows" ] || { echo "pg_append.sh: the sink wrote $got rows, not $rows" >&2; exit 1; }
        t0=$(date +%s.%N)
        q "\\copy $tcopy (k, v, n) FROM '$tmp/rows.copy'"
        t1=$(date +%s.%N)
        got=$(q "SELECT count(*) FROM $tcopy")
        [ "$got" = "$rows" ] || { echo "pg_append.sh: \\copy wrote $got rows, not $rows" >&2; exit 1; }
        copy_rate=$(awk -v n="$rows" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
        echo "batch_rows=$b run $r: sink: $line; psql \\copy: rows_per_s=$copy_rate"
        sinks+=("$sink_rate") copies+=("$copy_rate")
    done
    sink_rate=$(printf '%s\n' "${sinks[@]}" | median)
    copy_rate=$(printf '%s\n' "${copies[@]}" | median)
    ratio=$(awk -v s="$sink_rate" -v c="$copy_rate" 'BEGIN { printf "%.0f", 100 * s / c }')
    results+=("$b $sink_rate $copy_rate $ratio")
done

echo
echo "PostgreSQL append, $rows rows (key text, value text, num bigint), median of $repeat runs"
printf '%-12s %16s %16s %8s\n' "batch rows" "sink rows/s" "\\copy rows/s" "ratio"
for r in "${results[@]}"; do
    set -- $r
    printf '%-12s %16s %16s %7s%%\n' "$1" "$2" "$3" "$4"
done
echo "target: ratio >= 70%"

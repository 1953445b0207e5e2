#!/usr/bin/env bash
# redis_sink.sh -- the redis sink (HINCRBY per record, each batch in MULTI/EXEC with its
# commit key) against redis-benchmark sending the same command over one connection with the
# same pipeline depth, in the same run. Target: the sink reaches at least 50% of
# redis-benchmark's commands/s.
#
#   bash bench/redis_sink.sh [COMMANDS] [BATCH] [DEPTH...]   (default 1000000 100000 100 1000)
#
# Needs the build (SLUICE_BUILD, default build/) and starts Redis with tests/infra/redis.sh
# if it is not running. Prints one line per depth and a table.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SLUICE_BUILD:-build}
total=${1:-1000000}
batch=${2:-100000}
shift 2 || shift $# || true
depths=("$@")
[ ${#depths[@]} -gt 0 ] || depths=(100 1000)
[ -x "$build/redis_sink" ] || { echo "redis_sink.sh: no $build/redis_sink (build first)" >&2; exit 1; }

bash tests/infra/redis.sh start >/dev/null 2>&1
set -a
. "${SLUICE_STATE:-/tmp/sluice-infra}/redis/env"
set +a
r() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
key="bench:sink:$$"
bkey="bench:rb:$$"
trap 'r DEL "$key" "$bkey" >/dev/null 2>&1; r --scan --pattern "sluice:commit:redis_sink_bench:*" | while read -r k; do r DEL "$k" >/dev/null; done' EXIT

results=()
for d in "${depths[@]}"; do
    r DEL "$key" "$bkey" >/dev/null
    line=$("$build/redis_sink" "$REDIS_PORT" "$total" "$batch" "$d" "$key")
    sink_rate=${line##*commands_per_s=}
    sum=$(r HVALS "$key" | awk '{ s += $1 } END { print s + 0 }')
    [ "$sum" = "$total" ] || { echo "redis_sink.sh: the sink counted $sum, not $total" >&2; exit 1; }
    rb=$(redis-benchmark -h "$REDIS_HOST" -p "$REDIS_PORT" -c 1 -n "$total" -P "$d" -r 10000 -q \
        hincrby "$bkey" "field:__rand_int__" 1 | tr '\r' '\n' | grep "requests per second" | tail -n 1)
    rb_rate=$(echo "$rb" | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/' | awk '{ printf "%.0f", $1 }')
    ratio=$(awk -v s="$sink_rate" -v c="$rb_rate" 'BEGIN { printf "%.0f", 100 * s / c }')
    echo "depth=$d sink: $line; redis-benchmark: commands_per_s=$rb_rate; ratio=${ratio}%"
    results+=("$d $sink_rate $rb_rate $ratio")
done

echo
echo "Redis HINCRBY, $total commands, sink batches of $batch, one connection each"
printf '%-8s %18s %22s %8s\n' "depth" "sink commands/s" "redis-benchmark cmd/s" "ratio"
for x in "${results[@]}"; do
    set -- $x
    printf '%-8s %18s %22s %7s%%\n' "$1" "$2" "$3" "$4"
done
echo "target: ratio >= 50%"

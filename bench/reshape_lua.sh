#!/usr/bin/env bash
# reshape_lua.sh -- one JSON reshape (about 200-byte events: compute a field, rename one, drop a
# nested one) on one worker, written as the built-in ops, as a Lua map and as a C map
# function (bench/reshape.c, through the engine), and as a Bloblang mapping run by Benthos's
# public Go API on one core (bench/bloblang/), all on the same events in the same run.
#
#     bench/reshape_lua.sh [RECORDS]          default 1000000; RUNS=3 runs per variant
#
# Prints each run, the medians and ranges, the ratios (Lua/C, built-in/C, Lua/Bloblang, per
# wall second and per CPU second) and, with valgrind (CALLGRIND=0 skips it), the instructions
# per record of each variant from callgrind (the difference between 10000 and 30000 records,
# so that setup does not count), less the pass-through's. No timing assertions. Build
# directory: $BUILD (default build-bench, configured Release). Output also in
# bench/out/reshape_lua.txt. Bloblang needs Go and the module github.com/redpanda-data/benthos/v4
# at v4.60.0 (bench/bloblang/go.mod); without them it is skipped with the reason. A few
# minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-bench}
RECORDS=${1:-1000000}
RUNS=${RUNS:-3}
OUT=bench/out
mkdir -p "$OUT"
EVENTS=$OUT/reshape_events.jsonl
exec > >(tee "$OUT/reshape_lua.txt") 2>&1

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=OFF >/dev/null
cmake --build "$BUILD" -j2 --target reshape >/dev/null
"$BUILD/reshape" --write-events "$EVENTS" --records "$RECORDS"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "first event and what each variant makes of it:"
"$BUILD/reshape" --show | sed 's/^/  /'
echo

"$BUILD/reshape" --events "$EVENTS" --runs "$RUNS" | tee "$OUT/reshape_sluice.txt"
echo

blobl=skipped
if ! command -v go >/dev/null 2>&1; then
    echo "Bloblang: skipped: no go command"
elif ! (cd bench/bloblang && go build -o "../../$BUILD/bloblang_reshape" . 2>"../../$OUT/bloblang_build.txt"); then
    echo "Bloblang: skipped: the module could not be built or fetched:"
    sed 's/^/  /' "$OUT/bloblang_build.txt"
else
    echo "Bloblang (benthos v4.60.0, GOMAXPROCS=1), the same events:"
    GOMAXPROCS=1 "$BUILD/bloblang_reshape" -show "$EVENTS" | sed 's/^/  output: /'
    GOMAXPROCS=1 "$BUILD/bloblang_reshape" -runs "$RUNS" "$EVENTS" | tee "$OUT/reshape_bloblang.txt" |
        sed 's/^/  /'
    blobl=ok
fi
echo

# RESULT <variant> <median records/s> <min> <max> <cpu s per 1 M records>
res() { awk -v v="$2" '$1 == "RESULT" && $2 == v { print $'"$3"' }' "$1"; }
S=$OUT/reshape_sluice.txt
B=$OUT/reshape_bloblang.txt
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
percore() { awk -v c="$1" 'BEGIN { if (c > 0) printf "%.0f", 1e6 / c; else print "-" }'; }
echo "ratios of medians (records/s on one worker; per core: records per CPU second):"
for v in builtin lua lua_jit; do
    printf '  %-8s / c:        %s (per core %s)\n' "$v" "$(ratio "$(res $S $v 3)" "$(res $S c 3)")" \
        "$(ratio "$(percore "$(res $S $v 6)")" "$(percore "$(res $S c 6)")")"
done
if [ "$blobl" = ok ]; then
    for v in lua lua_jit builtin c; do
        printf '  %-8s / bloblang: %s (per core %s)\n' "$v" \
            "$(ratio "$(res $S $v 3)" "$(res $B bloblang 3)")" \
            "$(ratio "$(percore "$(res $S $v 6)")" "$(percore "$(res $B bloblang 6)")")"
    done
fi
echo "per core (records per CPU second):"
for v in passthrough builtin lua lua_jit c; do
    printf '  %-12s %s\n' "$v" "$(percore "$(res $S $v 6)")"
done
[ "$blobl" = ok ] && printf '  %-12s %s\n' bloblang "$(percore "$(res $B bloblang 6)")"

if [ "${CALLGRIND:-1}" != 0 ] && command -v valgrind >/dev/null 2>&1; then
    echo
    echo "instructions per record (callgrind; 30000 less 10000 records, over 20000):"
    "$BUILD/reshape" --write-events "$OUT/reshape_10k.jsonl" --records 10000
    "$BUILD/reshape" --write-events "$OUT/reshape_30k.jsonl" --records 30000
    count() {
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BUILD/reshape" --runs 1 \
            --no-baseline --events "$1" "$2" 2>&1 >/dev/null | awk '/Collected :/ { print $NF }'
    }
    base=
    for v in passthrough builtin lua lua_jit c; do
        i1=$(count "$OUT/reshape_10k.jsonl" $v)
        i3=$(count "$OUT/reshape_30k.jsonl" $v)
        per=$(((i3 - i1) / 20000))
        [ -z "$base" ] && base=$per
        printf '  %-12s %7d per record, %7d for the reshape (less pass-through)\n' $v $per \
            $((per - base))
    done
fi

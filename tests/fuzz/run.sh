#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang in build-fuzz (SLUICE_FUZZ=ON) and
# runs each for SECONDS (default 30) on a copy of its seed corpus (tests/fuzz/corpus/<name>,
# never written to). Prints each target's executions and coverage; a crash, a leak, a hang
# (-timeout) or a memory blow-up (-rss_limit_mb) fails the run and leaves the input in
# tests/artifacts/. Targets run side by side, one per core. FUZZ_TARGETS="config wal" runs
# some targets only.
#     bash tests/fuzz/run.sh        # CI: 30 s per target
#     bash tests/fuzz/run.sh 300    # a longer local run
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-30}
build=build-fuzz
artifacts=tests/artifacts

command -v clang >/dev/null || { echo "fuzz: clang is missing (bash tests/infra/deps.sh)" >&2; exit 1; }
CC=clang cmake -S . -B "$build" -DSLUICE_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz >"$build/fuzz-build.log" 2>&1 ||
    { tail -50 "$build/fuzz-build.log"; exit 1; }

# Inputs longer than what each target means to see are not tried (-max_len).
declare -A max_len=(
    [config]=8192 [yamlops]=2048 [wal]=8192 [framed]=4096 [checkpoint]=8192
    [state]=4096 [lines]=4096 [http]=4096 [redis]=1024 [postgres]=2048 [changelog]=4096
)
targets=${FUZZ_TARGETS:-$(cd "$build" && ls fuzz_* | sed 's/^fuzz_//' | sort)}
mkdir -p "$artifacts"
work=$(mktemp -d /tmp/sluice-fuzz-run-XXXXXX)
trap 'rm -rf "$work"' EXIT
# fuzz_one TARGET: runs one target; its report in $work/TARGET.out, "failed" in
# $work/TARGET.failed when it failed.
fuzz_one() {
    local t=$1 bin=$build/fuzz_$1 out=$work/$1.out log=$work/$1.log rc=0
    if [ ! -x "$bin" ]; then
        echo "fuzz: no target $t" >"$out"
        touch "$work/$t.failed"
        return
    fi
    mkdir -p "$work/$t"
    [ -d "tests/fuzz/corpus/$t" ] && cp -r "tests/fuzz/corpus/$t/." "$work/$t/"
    timeout -k 10 $((dur + 120)) "$bin" -max_total_time="$dur" -max_len="${max_len[$t]:-4096}" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/fuzz_$t-" "$work/$t" >"$log" 2>&1 || rc=$?
    local done_line execs speed
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$rc" -ne 0 ]; then
        {
            echo "fuzz_$t: FAILED (exit $rc)"
            grep -E 'ERROR|SUMMARY|Test unit written|^    #[0-9]+ ' "$log" | head -20 || tail -20 "$log"
        } >"$out"
        touch "$work/$t.failed"
    else
        printf 'fuzz_%-11s %s  (%s execs, %s exec/s)\n' "$t" "${done_line:-?}" "${execs:-?}" \
            "${speed:-?}" >"$out"
    fi
}

# As many targets at once as there are cores (each fuzzer is one process on one core).
jobs=$(nproc)
failed=()
start=$(date +%s)
running=0
for t in $targets; do
    fuzz_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait
for t in $targets; do
    cat "$work/$t.out"
    [ -e "$work/$t.failed" ] && failed+=("$t")
done
echo "fuzz: $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: failed: ${failed[*]} (inputs in $artifacts/)" >&2
    exit 1
fi

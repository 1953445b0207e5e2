#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang in build-fuzz (SLUICE_FUZZ=ON) and
# runs each for SECONDS (default 30) on a copy of its seed corpus (tests/fuzz/corpus/<name>,
# never written to). Prints each target's executions and coverage; a crash, a leak, a hang
# (-timeout) or a memory blow-up (-rss_limit_mb) fails the run and leaves the input in
# tests/artifacts/. FUZZ_TARGETS="config wal" runs some targets only.
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
failed=()
start=$(date +%s)
for t in $targets; do
    bin=$build/fuzz_$t
    [ -x "$bin" ] || { echo "fuzz: no target $t" >&2; failed+=("$t"); continue; }
    mkdir -p "$work/$t"
    [ -d "tests/fuzz/corpus/$t" ] && cp -r "tests/fuzz/corpus/$t/." "$work/$t/"
    log=$work/$t.log
    rc=0
    timeout -k 10 $((dur + 120)) "$bin" -max_total_time="$dur" -max_len="${max_len[$t]:-4096}" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/fuzz_$t-" "$work/$t" >"$log" 2>&1 || rc=$?
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$rc" -ne 0 ]; then
        echo "fuzz_$t: FAILED (exit $rc)"
        grep -E 'ERROR|SUMMARY|Test unit written|^    #[0-9]+ ' "$log" | head -20 || tail -20 "$log"
        failed+=("$t")
    else
        printf 'fuzz_%-11s %s  (%s execs, %s exec/s)\n' "$t" "${done_line:-?}" "${execs:-?}" \
            "${speed:-?}"
    fi
done
echo "fuzz: $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: failed: ${failed[*]} (inputs in $artifacts/)" >&2
    exit 1
fi

#!/usr/bin/env bash
# Runs every test: installs the packages, builds, starts PostgreSQL, Redis and Kafka on
# loopback, runs the unit, end-to-end and integration tests with ctest, stops the servers.
#
#   bash tests/run.sh                 everything
#   SLUICE_SANITIZE=1 bash tests/run.sh    the same, built with ASan and UBSan
#   SLUICE_TESTS=unit bash tests/run.sh    only tests with that ctest label (unit|e2e|integration)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash tests/infra/deps.sh

build=${SLUICE_BUILD_DIR:-build}
opts=(-DSLUICE_WERROR=ON)
if [ "${SLUICE_SANITIZE:-0}" = 1 ]; then
    build=${SLUICE_BUILD_DIR:-build-sanitize}
    opts+=(-DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
cmake -S . -B "$build" "${opts[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"

label=${SLUICE_TESTS:-}
need_servers=1
[ "$label" = unit ] && need_servers=0
[ "$label" = e2e ] && need_servers=0
if [ "$need_servers" = 1 ] && ls tests/integration/test_*.sh >/dev/null 2>&1; then
    export SLUICE_STATE=${SLUICE_STATE:-/tmp/sluice-infra}
    trap 'bash "$root/tests/infra/all.sh" stop >/dev/null 2>&1 || true' EXIT
    bash tests/infra/all.sh start
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
args=(--test-dir "$build" --output-on-failure --timeout 600)
# Unit and end-to-end tests use no shared server and each has its own ports and directories:
# they run side by side, one per core. Integration tests share the servers (and some take
# them down): one at a time.
jobs=$(nproc)
case "$label" in
'') rc=0
    ctest "${args[@]}" -L 'unit|e2e' -j"$jobs" || rc=$?
    ctest "${args[@]}" -L integration || rc=$?
    exit $rc ;;
unit | e2e | 'unit|e2e') ctest "${args[@]}" -L "$label" -j"$jobs" ;;
*) ctest "${args[@]}" -L "$label" ;;
esac

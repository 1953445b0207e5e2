#!/usr/bin/env bash
# kafka_throughput.sh -- runs bench/kafka_throughput.c against the real broker of
# tests/infra/kafka.sh (started if it is not running, stopped again if this script started
# it): 5 million 100-byte messages over 8 partitions, read by a raw librdkafka consumer,
# sluice's direct source and sluice's receiver source.
#
#   bash bench/kafka_throughput.sh [kafka_throughput options, e.g. --messages 1000000]
#
# The binary comes from ${SLUICE_BUILD:-build} (cmake --build build).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${SLUICE_BUILD:-build}/kafka_throughput"
[ -x "$bin" ] || { echo "no $bin: build first (cmake --build ${SLUICE_BUILD:-build})" >&2; exit 1; }
started=0
if ! bash tests/infra/kafka.sh status >/dev/null 2>&1; then
    bash tests/infra/kafka.sh start
    started=1
fi
trap '[ $started = 1 ] && bash tests/infra/kafka.sh stop >/dev/null 2>&1 || true' EXIT
KAFKA_BOOTSTRAP=$(cat "${SLUICE_STATE:-/tmp/sluice-infra}/kafka/bootstrap") "$bin" "$@"

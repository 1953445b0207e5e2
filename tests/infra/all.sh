#!/usr/bin/env bash
# Starts or stops every test server: Redis, PostgreSQL, then Kafka (slowest).
#
#   bash tests/infra/all.sh start|stop|status|env|reset
#
# `start` and `env` print the combined environment (KEY=VALUE, one a line)
# and write it to ${SLUICE_STATE:-/tmp/sluice-infra}/env, which a test can
# load with:  set -a; . /tmp/sluice-infra/env; set +a
# `stop` and `reset` go on past a failing server and fail at the end.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_ROOT="$(realpath -m "${SLUICE_STATE:-/tmp/sluice-infra}")"
SERVERS=(redis postgres kafka)

combined_env() {
    local s out=""
    for s in "${SERVERS[@]}"; do
        out+="$(bash "$HERE/$s.sh" env)"$'\n' ||
            { echo "all.sh: ERROR: '$s.sh env' failed" >&2; return 1; }
    done
    mkdir -p "$STATE_ROOT"
    printf '%s' "$out" >"$STATE_ROOT/env"
    printf '%s' "$out"
}

each() {
    local cmd="$1" s failed=()
    shift
    for s in "$@"; do
        bash "$HERE/$s.sh" "$cmd" || failed+=("$s")
    done
    if [ ${#failed[@]} -gt 0 ]; then
        echo "all.sh: ERROR: '$cmd' failed for: ${failed[*]}" >&2
        return 1
    fi
}

reversed() {
    local i
    for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do echo "${SERVERS[i]}"; done
}

case "${1:-}" in
    start)
        for s in "${SERVERS[@]}"; do
            bash "$HERE/$s.sh" start || { echo "all.sh: ERROR: starting $s failed" >&2; exit 1; }
        done
        combined_env
        ;;
    stop)
        # shellcheck disable=SC2046
        each stop $(reversed)
        ;;
    reset)
        # shellcheck disable=SC2046
        each reset $(reversed)
        rm -f "$STATE_ROOT/env"
        ;;
    status)
        each status "${SERVERS[@]}"
        ;;
    env)
        combined_env
        ;;
    *)
        echo "usage: $0 start|stop|status|env|reset" >&2
        exit 2
        ;;
esac

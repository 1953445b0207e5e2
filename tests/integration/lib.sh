# lib.sh -- shell helpers shared by the integration tests (source it, do not run it).
#
# ctest runs each tests/integration/test_*.sh with SLUICE_BIN (the daemon), SLUICE_BUILD
# (the build directory) and SLUICE_SRC (the source tree) set, after tests/run.sh started the
# servers; a test also runs alone (bash tests/integration/test_x.sh), starting what it needs.
#
# A test sources this file, calls it_setup, starts sluice with it_sluice, and reports each
# check with it_check / it_ok / it_bad: one line per check, then "N passed, N failed" from
# it_finish, which exits non-zero when a check failed. Processes started with it_sluice or
# it_bg are stopped on exit; the work directory $IT_TMP is removed unless IT_KEEP=1 (or a
# check failed, so that it can be looked at).

set -euo pipefail

SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SLUICE_BUILD=${SLUICE_BUILD:-$SLUICE_SRC/build}
SLUICE_BIN=${SLUICE_BIN:-$SLUICE_BUILD/sluice}
SLUICE_STATE=${SLUICE_STATE:-/tmp/sluice-infra}
export SLUICE_STATE

IT_NAME=$(basename "${0%.sh}")
IT_PASS=0
IT_FAIL=0
IT_FINISHED=0
IT_PIDS=()
IT_TMP=""
IT_DEADLINE=0

it_log() {
    echo "[$IT_NAME] $*" >&2
}

# ==== Checks ====

it_ok() {
    IT_PASS=$((IT_PASS + 1))
    echo "ok   - $*"
}

it_bad() {
    IT_FAIL=$((IT_FAIL + 1))
    echo "FAIL - $*"
}

# it_check "what is checked" command args...: ok when the command succeeds.
it_check() {
    local what="$1"
    shift
    if "$@"; then
        it_ok "$what"
    else
        it_bad "$what"
    fi
}

# it_eq "what" expected actual
it_eq() {
    if [ "$2" = "$3" ]; then
        it_ok "$1 ($3)"
    else
        it_bad "$1: expected '$2', got '$3'"
    fi
}

# Prints the tail of the logs of the work directory (after a failed check).
it_show_logs() {
    local f
    [ -n "$IT_TMP" ] || return 0
    for f in "$IT_TMP"/*.log; do
        [ -f "$f" ] || continue
        echo "----- tail of $(basename "$f") -----" >&2
        grep -v 'librdkafka' "$f" | tail -n 25 >&2 || true
    done
}

# Prints the summary and exits: 0 when every check passed.
it_finish() {
    IT_FINISHED=1
    echo "$IT_PASS passed, $IT_FAIL failed"
    if [ "$IT_FAIL" -gt 0 ]; then
        it_show_logs
        exit 1
    fi
    exit 0
}

# Aborts the test (a failed precondition): counted as a failure.
it_abort() {
    it_bad "$*"
    it_finish
}

# ==== Processes and the work directory ====

it_cleanup() {
    local rc=$? pid i
    if [ "$IT_FINISHED" != 1 ]; then
        # set -e stopped the test at a command that failed: still one line and a summary.
        IT_FAIL=$((IT_FAIL + 1))
        echo "FAIL - the test stopped early (exit $rc)${IT_ERR:+ at: $IT_ERR}"
        echo "$IT_PASS passed, $IT_FAIL failed"
        it_show_logs
    fi
    for pid in "${IT_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${IT_PIDS[@]}"; do
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    IT_PIDS=()
    if [ -n "$IT_TMP" ]; then
        if [ "${IT_KEEP:-0}" = 1 ] || [ "$IT_FAIL" -gt 0 ]; then
            it_log "work directory kept: $IT_TMP"
        else
            rm -rf "$IT_TMP"
        fi
    fi
}

# it_setup SECONDS: the work directory, the cleanup, and a time budget for the whole test.
it_setup() {
    local budget="${1:-110}"
    [ -x "$SLUICE_BIN" ] || { echo "no sluice binary at $SLUICE_BIN (set SLUICE_BIN)" >&2; exit 1; }
    IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-$IT_NAME.XXXXXX")
    IT_DEADLINE=$((SECONDS + budget))
    trap 'IT_ERR="line $LINENO: $BASH_COMMAND"' ERR
    trap it_cleanup EXIT
    trap 'it_bad "interrupted"; it_finish' INT TERM
}

# Seconds left of the test's budget (at least 1).
it_left() {
    local l=$((IT_DEADLINE - SECONDS))
    [ $l -ge 1 ] && echo $l || echo 1
}

# it_bg LOG command args...: runs a command in the background; its pid in IT_LAST_PID.
it_bg() {
    local log="$1"
    shift
    "$@" >"$log" 2>&1 &
    IT_LAST_PID=$!
    IT_PIDS+=("$IT_LAST_PID")
}

# it_sluice NAME CONFIG [args]: `sluice run CONFIG` in the background, output in
# $IT_TMP/NAME.log; the pid in IT_LAST_PID.
it_sluice() {
    local name="$1" config="$2"
    shift 2
    it_bg "$IT_TMP/$name.log" "$SLUICE_BIN" run "$config" "$@"
}

# it_stop PID: SIGTERM (a graceful stop), then waits (SIGKILL after 30 s). Returns the
# process's exit status.
it_stop() {
    local pid="$1" i=0 rc=0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || rc=$?
    return $rc
}

# it_stop_now PID: two SIGTERMs (sluice's "stop without waiting for the queued batches",
# needed while a sink holds a batch), then waits like it_stop.
it_stop_now() {
    kill -TERM "$1" 2>/dev/null || true
    sleep 0.5
    it_stop "$1"
}

# it_kill9 PID: a crash.
it_kill9() {
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# it_wait_until SECONDS command args...: polls (every 0.2 s) until the command succeeds.
# Returns 1 on timeout.
it_wait_until() {
    local limit=$((SECONDS + $1))
    shift
    while ! "$@"; do
        [ $SECONDS -lt $limit ] || return 1
        sleep 0.2
    done
}

# it_grep_log NAME PATTERN: the pattern (extended regex) appears in $IT_TMP/NAME.log.
it_grep_log() {
    grep -Eq -- "$2" "$IT_TMP/$1.log"
}

# A name unique to this run: PREFIX-<pid>-<random>.
it_unique() {
    echo "$1-$$-$RANDOM"
}

# ==== The file sink's output ====

# it_file_records DIR PREFIX: every record line of the finished batch directories
# DIR/PREFIX-*/part-* (hidden temporary directories excluded), in batch then part order.
it_file_records() {
    local dir="$1" prefix="$2" d
    for d in $(find "$dir" -maxdepth 1 -type d -name "$prefix-*" 2>/dev/null | sort); do
        cat "$d"/part-* 2>/dev/null || true
    done
}

# it_file_count DIR PREFIX: the number of record lines.
it_file_count() {
    it_file_records "$1" "$2" | wc -l | tr -d ' '
}

# ==== Kafka ====

KAFKA_SH="$SLUICE_SRC/tests/infra/kafka.sh"
KAFKA_JARS="$(realpath -m "${SLUICE_CACHE:-${HOME:-/tmp}/.cache/sluice}")/kafka/jars-${KAFKA_VERSION:-4.1.1}"

# Starts the broker unless it runs, and sets KAFKA_BOOTSTRAP.
kafka_up() {
    command -v kcat >/dev/null 2>&1 || it_abort "kcat is not installed (tests/infra/deps.sh)"
    if ! bash "$KAFKA_SH" status >/dev/null 2>&1; then
        bash "$KAFKA_SH" start >&2 || it_abort "the Kafka broker does not start"
    fi
    KAFKA_BOOTSTRAP=$(cat "$SLUICE_STATE/kafka/bootstrap")
    export KAFKA_BOOTSTRAP
}

# kafka_topic NAME PARTITIONS [kafka-topics args, e.g. --config max.message.bytes=1500]:
# creates the topic.
kafka_topic() {
    bash "$KAFKA_SH" topic "$@" >/dev/null 2>&1 || it_abort "cannot create topic $1"
}

# kafka_produce TOPIC FILE: produces FILE's lines, "key<TAB>value" each, with kcat; waits for
# delivery.
kafka_produce() {
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$1" -K $'\t' -X linger.ms=10 -l "$2" ||
        it_abort "kcat could not produce to $1"
}

# kafka_words TOPIC LINES MAX_WORDS VOCABULARY KEYS: produces LINES keyed lines of 1 to
# MAX_WORDS words ("w0".."w<VOCABULARY-1>", KEYS distinct keys) to TOPIC, keeps them in
# $IT_TMP/input.tsv, writes the independent count "word count" per line, sorted, to
# $IT_TMP/expected.txt and sets total to the number of words.
kafka_words() {
    awk -v seed="$RANDOM" -v lines="$2" -v maxw="$3" -v vocab="$4" -v keys="$5" 'BEGIN {
        srand(seed)
        for (i = 0; i < lines; i++) {
            n = 1 + int(rand() * maxw); line = ""
            for (j = 0; j < n; j++) line = line (j ? " " : "") "w" int(rand() * vocab)
            printf "k%d\t%s\n", i % keys, line
        }
    }' >"$IT_TMP/input.tsv"
    kafka_produce "$1" "$IT_TMP/input.tsv"
    cut -f2 "$IT_TMP/input.tsv" | tr ' ' '\n' | sort | uniq -c | awk '{ print $2, $1 }' |
        sort >"$IT_TMP/expected.txt"
    total=$(awk '{ s += $2 } END { print s }' "$IT_TMP/expected.txt")
}

# kafka_dump TOPIC: "partition offset key value" of every message, read with kcat.
kafka_dump() {
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$1" -e -q -f '%p %o %k %s\n'
}

# kafka_group GROUP: "topic partition current-offset log-end-offset lag" per partition, from
# Kafka's own consumer-group tool.
kafka_group() {
    java -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$SLUICE_STATE/kafka/tools-log4j2.properties" \
        -cp "$KAFKA_JARS/*" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
        --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --group "$1" 2>/dev/null |
        awk -v g="$1" '$1 == g && $3 ~ /^[0-9]+$/ { print $2, $3, $4, $5, $6 }' | sort -k2,2n
}

# ==== PostgreSQL and Redis ====

# infra_up NAME TITLE: starts the server tests/infra/NAME.sh runs (postgres, redis) unless it
# runs, and exports its connection variables (PGHOST, PGPORT, ...; REDIS_HOST, REDIS_PORT).
# TITLE names it when it does not start.
infra_up() {
    if ! bash "$SLUICE_SRC/tests/infra/$1.sh" status >/dev/null 2>&1; then
        bash "$SLUICE_SRC/tests/infra/$1.sh" start >/dev/null 2>&1 || it_abort "$2 does not start"
    fi
    set -a
    . "$SLUICE_STATE/$1/env"
    set +a
}

# ==== Pipelines ====

# it_yaml_kafka_head APP TOPIC GROUP: prints the start of a pipeline file: the app APP
# (500ms batches, checkpoints in $IT_TMP/ckpt) and a kafka source named kin reading TOPIC
# from the earliest offset in GROUP. The caller appends the source's other options (indented
# by 4), then sinks:.
it_yaml_kafka_head() {
    cat <<HEAD
app:
  name: $1
  batch_interval: 500ms
  checkpoint_dir: $IT_TMP/ckpt
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$2]
    group: $3
    start: earliest
HEAD
}

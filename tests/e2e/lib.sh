# lib.sh -- shell helpers shared by the end-to-end tests (source it, do not run it).
#
# ctest runs each tests/e2e/test_*.sh with SLUICE_BIN (the daemon), SLUICE_BUILD (the build
# directory) and SLUICE_SRC (the source tree) set. A test sources this file, calls
# sl_setup, starts what it needs with sl_start / sl_bg, checks, and ends with sl_pass.
# Everything started through these helpers is stopped on exit, pass or fail.

set -uo pipefail

SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SLUICE_BUILD=${SLUICE_BUILD:-$SLUICE_SRC/build}
SLUICE_BIN=${SLUICE_BIN:-$SLUICE_BUILD/sluice}

SL_PIDS=()
SL_TMP=""
SL_TEST=$(basename "${0%.sh}")

# Prints a message on stderr, prefixed with the test's name.
sl_log() {
    echo "[$SL_TEST] $*" >&2
}

# Fails the test: prints the message and the tail of every *.log in the work directory.
sl_fail() {
    sl_log "FAIL: $*"
    if [ -n "$SL_TMP" ]; then
        for f in "$SL_TMP"/*.log; do
            [ -f "$f" ] || continue
            echo "----- tail of $(basename "$f") -----" >&2
            tail -n 40 "$f" >&2
        done
    fi
    exit 1
}

sl_pass() {
    sl_log "PASS"
    exit 0
}

# ==== Checks reported one per line (tests that make many checks) ====
# check NAME COMMAND...: runs the command; "ok   - NAME" or "FAIL - NAME". sl_ok / sl_bad
# count a check decided otherwise. finish prints "N passed, N failed" and fails when a
# check failed; unfinished (in the EXIT trap) counts a run that stopped early as a failure.
SL_PASSED=0
SL_FAILED=0
SL_FINISHED=0

sl_ok() {
    SL_PASSED=$((SL_PASSED + 1))
    echo "ok   - $1"
}

sl_bad() {
    SL_FAILED=$((SL_FAILED + 1))
    echo "FAIL - $1"
}

check() {
    if "${@:2}"; then sl_ok "$1"; else sl_bad "$1"; fi
}

finish() {
    SL_FINISHED=1
    echo "$SL_PASSED passed, $SL_FAILED failed"
    [ "$SL_FAILED" -eq 0 ]
}

unfinished() {
    [ "$SL_FINISHED" = 1 ] || echo "$SL_PASSED passed, $((SL_FAILED + 1)) failed"
}

# sl_server NAME TITLE: starts the server of tests/infra/NAME.sh (postgres, redis) unless it
# runs, and exports its connection variables (PGHOST, PGPORT, ...; REDIS_HOST, ...).
sl_server() {
    bash "$SLUICE_SRC/tests/infra/$1.sh" start >/dev/null 2>&1 ||
        sl_fail "cannot start $2 (tests/infra/$1.sh)"
    set -a
    . "${SLUICE_STATE:-/tmp/sluice-infra}/$1/env"
    set +a
}

# sl_words FILE LINES SEED MIN MAX WORD...: writes LINES lines of MIN to MAX words each,
# drawn from the WORDs (taken literally: quotes, backslashes) with awk's srand(SEED), so the
# text is the same every run.
sl_words() {
    local file=$1 lines=$2 seed=$3 min=$4 max=$5
    shift 5
    awk -v lines="$lines" -v seed="$seed" -v min="$min" -v max="$max" 'BEGIN {
        for (i = 1; i < ARGC; i++) v[i] = ARGV[i]
        n = ARGC - 1; ARGC = 1; srand(seed)
        for (i = 0; i < lines; i++) {
            k = min + int(rand() * (max - min + 1)); line = ""
            for (j = 0; j < k; j++) line = line (j ? " " : "") v[1 + int(rand() * n)]
            print line
        }
    }' "$@" >"$file"
}

# sl_word_counts FILE: "word count" for every word of FILE, sorted as C sorts: an
# independent count (tr, sort, uniq) to compare a pipeline's output with.
sl_word_counts() {
    tr -s ' ' '\n' <"$1" | grep -v '^$' | LC_ALL=C sort | uniq -c | awk '{ print $2 " " $1 }'
}

# sl_tcp_wordcount_yaml APP PORT [REDUCE]: the head of a word-count pipeline: a TCP
# listener on 127.0.0.1:PORT (source "lines") and the stream "counts" of (word, count) per
# 500 ms batch (REDUCE: the reduce_by_key op's argument, default {fn: sum, partitions: 3}).
# The test appends its sinks.
sl_tcp_wordcount_yaml() {
    local reduce=${3:-'{fn: sum, partitions: 3}'}
    cat <<YAML
app:
  name: $1
  batch_interval: 500ms
sources:
  - name: lines
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $2
streams:
  - name: counts
    from: lines
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: $reduce
YAML
}

# sl_paced FILE FIRST LAST: lines FIRST to LAST of FILE in 5 chunks, 0.3 s apart (the
# input spread over several batches).
sl_paced() {
    local i step=$((($3 - $2 + 1) / 5))
    for i in 0 1 2 3 4; do
        sed -n "$(($2 + i * step)),$(($2 + i * step + step - 1))p" "$1"
        sleep 0.3
    done
}

# sl_pg APP [TABLE...]: PostgreSQL for a test: the server (sl_server), q SQL to run a
# statement with psql (unaligned, tuples only, stops at the first error), and an EXIT trap
# that also drops the TABLEs (names as SQL writes them) and APP's rows in sluice_commits.
# Further tables: SL_PG_TABLES+=(...).
sl_pg() {
    SL_PG_APP=$1
    shift
    SL_PG_TABLES=("$@")
    sl_server postgres PostgreSQL
    q() { timeout 30 psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
    trap 'unfinished; sl_pg_drop; sl_cleanup' EXIT
}

# Drops what sl_pg was given (errors ignored: the server may be gone).
sl_pg_drop() {
    local IFS=,
    [ ${#SL_PG_TABLES[@]} -eq 0 ] || q "DROP TABLE IF EXISTS ${SL_PG_TABLES[*]}" >/dev/null 2>&1 || true
    q "DELETE FROM sluice_commits WHERE pipeline = '$SL_PG_APP'" >/dev/null 2>&1 || true
}

# Stops (TERM, then KILL after 10 s) every process started by sl_start or sl_bg and removes
# the work directory unless SL_KEEP=1. Installed as the EXIT trap by sl_setup.
sl_cleanup() {
    local pid
    for pid in "${SL_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SL_PIDS[@]}"; do
        local i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SL_PIDS=()
    if [ -n "$SL_TMP" ] && [ "${SL_KEEP:-0}" != 1 ]; then
        rm -rf "$SL_TMP"
    elif [ -n "$SL_TMP" ]; then
        sl_log "kept $SL_TMP"
    fi
}

# Creates the work directory $SL_TMP, checks the binary and installs the cleanup.
sl_setup() {
    [ -x "$SLUICE_BIN" ] || sl_fail "no sluice binary at $SLUICE_BIN (set SLUICE_BIN)"
    SL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-$SL_TEST.XXXXXX") || sl_fail "mktemp"
    trap sl_cleanup EXIT
    trap 'sl_fail "interrupted"' INT TERM
}

# Prints a TCP port on 127.0.0.1 that is free now: a random one in 20000-59999 that no TCP
# socket of this machine uses as its local port (/proc/net/tcp and tcp6, any state) and on
# which nothing accepts a connection.
sl_free_port() {
    local port used
    used=$(awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 \
        2>/dev/null | sort -u | tr '\n' ' ')
    for _ in $(seq 1 200); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        case " $used " in *" $(printf '%04X' "$port") "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    sl_fail "no free port found"
}

# sl_wait_port PORT [TIMEOUT_S]: waits until something listens on 127.0.0.1:PORT.
sl_wait_port() {
    local port=$1 timeout=${2:-10} i=0
    while [ $i -lt $((timeout * 10)) ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# sl_wait_for_line FILE REGEX [TIMEOUT_S]: waits until a line of FILE matches the extended
# regular expression. Returns 1 on timeout.
sl_wait_for_line() {
    local file=$1 regex=$2 timeout=${3:-10} i=0
    while [ $i -lt $((timeout * 10)) ]; do
        if [ -f "$file" ] && grep -Eq -- "$regex" "$file"; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# sl_wait_until TIMEOUT_S COMMAND...: runs COMMAND every 0.1 s until it succeeds.
sl_wait_until() {
    local timeout=$1 i=0
    shift
    while [ $i -lt $((timeout * 10)) ]; do
        if "$@"; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# sl_sum_counts FILE [KEY]: sums the counts that the stdout sink printed over all batches.
# With KEY: the N of every "(KEY,N)" line. Without: the N of every line that is a bare
# number (the output of count()). Headers, "..." and other lines are ignored. Prints the
# sum (0 when nothing matched); a sum of doubles is printed with %.17g.
sl_sum_counts() {
    local file=$1
    if [ $# -ge 2 ]; then
        awk -v key="$2" '
            BEGIN { p = "(" key ","; s = 0 }
            index($0, p) == 1 && substr($0, length($0)) == ")" {
                v = substr($0, length(p) + 1, length($0) - length(p) - 1)
                if (v ~ /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/) { s += v }
            }
            END { if (s == int(s)) printf "%d\n", s; else printf "%.17g\n", s }' "$file"
    else
        awk '
            BEGIN { s = 0 }
            /^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/ { s += $0 }
            END { if (s == int(s)) printf "%d\n", s; else printf "%.17g\n", s }' "$file"
    fi
}

# sl_batches FILE: the number of batch headers ("Time: N ms") the stdout sink printed.
sl_batches() {
    grep -Ec '^Time: [0-9]+ ms$' "$1" || true
}

# sl_start NAME CONFIG [ARGS...]: runs "sluice run CONFIG ARGS" in the background with
# stdout in $SL_TMP/NAME.out and stderr in $SL_TMP/NAME.log; sets SL_LAST_PID.
sl_start() {
    local name=$1 config=$2
    shift 2
    "$SLUICE_BIN" run "$config" "$@" >"$SL_TMP/$name.out" 2>"$SL_TMP/$name.log" &
    SL_LAST_PID=$!
    SL_PIDS+=("$SL_LAST_PID")
}

# sl_bg COMMAND...: runs any command in the background, stopped at exit; sets SL_LAST_PID.
# Its standard input is the caller's (sl_bg nc -l 127.0.0.1 "$port" <file works).
sl_bg() {
    "$@" 0<&0 &
    SL_LAST_PID=$!
    SL_PIDS+=("$SL_LAST_PID")
}

# sl_stop PID [TIMEOUT_S]: sends TERM and waits for the exit; prints nothing, returns the
# process's exit status (137 when it had to be killed).
sl_stop() {
    local pid=$1 timeout=${2:-15} i=0
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt $((timeout * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 137
    fi
    wait "$pid" 2>/dev/null
}

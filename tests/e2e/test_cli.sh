#!/usr/bin/env bash
# test_cli.sh -- the sluice command line: --version, --help, usage errors, connectors,
# check on every example in config/, demo, and run with its signals and exit codes.
#
# Env: SLUICE_BIN (the binary), SLUICE_SRC (the repo root). Prints one line per check and
# "N passed, N failed"; exits non-zero on any failure. Every command is bounded in time.
set -euo pipefail

SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SLUICE_BIN=${SLUICE_BIN:-$SLUICE_SRC/build/sluice}
if [ ! -x "$SLUICE_BIN" ]; then
    echo "no sluice binary at $SLUICE_BIN (set SLUICE_BIN)" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-cli.XXXXXX")
BG_PIDS=()
cleanup() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0

pass() {
    passed=$((passed + 1))
    echo "ok   - $1"
}

fail() {
    failed=$((failed + 1))
    echo "FAIL - $1: $2"
}

# sl NAME ARGS...: runs sluice ARGS (bounded to 60 s) with stdout in $WORK/NAME.out,
# stderr in $WORK/NAME.err; sets RC.
sl() {
    local name=$1
    shift
    RC=0
    timeout 60 "$SLUICE_BIN" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null || RC=$?
}

# has FILE TEXT: true when FILE holds TEXT (fixed string).
has() {
    grep -qF -- "$2" "$1"
}

# A free TCP port on 127.0.0.1.
free_port() {
    (
        . "$SLUICE_SRC/tests/e2e/lib.sh"
        sl_free_port
    )
}

# wait_exit PID TIMEOUT_S: waits for a background process; sets RC (124 on timeout, after
# which the process is killed).
wait_exit() {
    local pid=$1 timeout=$2 i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt $((timeout * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        RC=124
        return
    fi
    RC=0
    wait "$pid" || RC=$?
}

# wait_line FILE TEXT TIMEOUT_S: waits until FILE holds TEXT.
wait_line() {
    local i=0
    while [ $i -lt $(($3 * 10)) ]; do
        if [ -f "$1" ] && grep -qF -- "$2" "$1"; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# ==== Version and help ====

sl version --version
if [ $RC -eq 0 ] && grep -Eq '^sluice [0-9]+\.[0-9]+\.[0-9]+$' "$WORK/version.out"; then
    pass "--version prints 'sluice X.Y.Z' ($(cat "$WORK/version.out"))"
else
    fail "--version" "exit $RC, output: $(cat "$WORK/version.out" "$WORK/version.err")"
fi

for flag in --help -h help; do
    sl help "$flag"
    if [ $RC -eq 0 ] && has "$WORK/help.out" "Usage: sluice" && has "$WORK/help.out" "run FILE" &&
        has "$WORK/help.out" "check FILE" && has "$WORK/help.out" "connectors" &&
        has "$WORK/help.out" "demo" && has "$WORK/help.out" "--log-level"; then
        pass "$flag prints the usage on stdout, exit 0"
    else
        fail "$flag" "exit $RC, output: $(head -5 "$WORK/help.out")"
    fi
done

# ==== Usage errors: exit 2 with the usage on stderr ====

usage_error() {
    local what=$1 words=$2
    shift 2
    sl usage "$@"
    if [ $RC -eq 2 ] && [ ! -s "$WORK/usage.out" ] && has "$WORK/usage.err" "Usage: sluice" &&
        has "$WORK/usage.err" "$words"; then
        pass "$what: exit 2, usage on stderr"
    else
        fail "$what" "exit $RC, stderr: $(head -3 "$WORK/usage.err")"
    fi
}
usage_error "unknown command" "unknown command 'frobnicate'" frobnicate
usage_error "no command" "no command given"
usage_error "unknown option" "unknown option '--frob'" --frob
usage_error "run without a file" "'run' needs a FILE" run
usage_error "check with two files" "unexpected argument" check a.yaml b.yaml
usage_error "bad log level" "bad log level 'loud'" --log-level loud demo
usage_error "bad --seconds" "bad --seconds" demo --seconds -1
usage_error "--markdown on run" "--markdown is an option of 'connectors'" run x.yaml --markdown

# ==== connectors ====

sl connectors connectors
ok=1
for word in "tcp (source)" "file (source)" "file (sink)" "stdout (sink)" "generate (source)" \
    "OPTION" "DEFAULT" "port" "1..65535" "required" "connect|listen" "path" "prefix" "num" \
    "max_record_size" "Options of every source"; do
    if ! has "$WORK/connectors.out" "$word"; then
        ok=0
        fail "connectors" "no '$word' in the output"
    fi
done
if [ $ok -eq 1 ] && [ $RC -eq 0 ]; then
    pass "connectors lists tcp, file, stdout, generate with their options"
elif [ $RC -ne 0 ]; then
    fail "connectors" "exit $RC"
fi

sl connectors_md connectors --markdown
if [ $RC -eq 0 ] && has "$WORK/connectors_md.out" "## tcp (source)" &&
    has "$WORK/connectors_md.out" "| Option | Type | Default |" &&
    has "$WORK/connectors_md.out" '| `port` | int |' &&
    has "$WORK/connectors_md.out" 'connect\|listen'; then
    pass "connectors --markdown prints a table per connector"
else
    fail "connectors --markdown" "exit $RC, output: $(head -20 "$WORK/connectors_md.out")"
fi

# ==== check on every example ====

export WATCH_DIR="$WORK/watch" OUT_DIR="$WORK/out" LOG_DIR="$WORK/watch"
mkdir -p "$WATCH_DIR" "$OUT_DIR"
nconfigs=0
nexamples=0
for cfg in "$SLUICE_SRC"/config/*.yaml "$SLUICE_SRC"/config/examples/*.yaml; do
    [ -f "$cfg" ] || continue
    case $cfg in *.test.yaml) continue ;; esac # sluice test's (test_examples_tested.sh)
    nconfigs=$((nconfigs + 1))
    rel=${cfg#"$SLUICE_SRC"/}
    name=$(echo "${rel%.yaml}" | tr '/' '_')
    case $rel in config/examples/*) nexamples=$((nexamples + 1)) ;; esac
    sl "check_$name" check "$cfg"
    if [ $RC -eq 0 ] && has "$WORK/check_$name.out" "$cfg: ok" &&
        has "$WORK/check_$name.out" "sources:" && has "$WORK/check_$name.out" "sinks:"; then
        pass "check $rel: exit 0, graph printed"
    else
        fail "check $rel" "exit $RC: $(cat "$WORK/check_$name.err")"
    fi
done
if [ "$nconfigs" -ge 5 ]; then
    pass "config/ holds $nconfigs example pipelines"
else
    fail "config/" "only $nconfigs example pipelines"
fi

# config/examples/: every connector in a source or sink of some example (and each mode of
# kafka and tcp), the common pipelines, and a header saying what the file does and how to
# run it.
ex_types() { # the "type:" of every source (or sink) of the examples: kind name
    awk '/^sources:/ { k = "source" } /^sinks:/ { k = "sink" } /^(app|streams|http):/ { k = "" }
        k && /^ *-? *type: / { sub(/.*type: */, ""); sub(/ .*/, ""); print k, $0 }' \
        "$SLUICE_SRC"/config/examples/*.yaml | sort -u
}
sl connectors_all connectors --markdown
covered=$(ex_types)
missing=""
while read -r cname ckind; do
    [ "$cname" != testbench ] || continue # the test doubles of sluice test
    grep -qx "$ckind $cname" <<<"$covered" || missing="$missing $cname ($ckind)"
done < <(sed -n 's/^## \([a-z_]*\) (\(source\|sink\))$/\1 \2/p' "$WORK/connectors_all.out")
for mode in "kafka direct" "kafka receiver" "tcp connect" "tcp listen"; do
    set -- $mode
    grep -lq "type: $1" "$SLUICE_SRC"/config/examples/*.yaml &&
        grep -qE "^ +mode: $2( |$)" "$SLUICE_SRC/config/examples/$1-$2.yaml" 2>/dev/null ||
        missing="$missing $1-$2.yaml"
done
for f in kafka-wordcount-postgres json-events-postgres windowed-metrics-redis \
    log-files-windowed-counts; do
    [ -f "$SLUICE_SRC/config/examples/$f.yaml" ] || missing="$missing $f.yaml"
done
if [ "$nexamples" -gt 0 ] && [ -z "$missing" ]; then
    pass "config/examples/ ($nexamples files) covers every connector, mode and common pipeline"
else
    fail "config/examples/" "${missing:-no examples}"
fi
noheader=""
for cfg in "$SLUICE_SRC"/config/examples/*.yaml; do
    case $cfg in *.test.yaml) continue ;; esac
    head -n 1 "$cfg" | grep -q "^# $(basename "$cfg") -- " &&
        grep -qE '^#.*sluice run ' "$cfg" || noheader="$noheader $(basename "$cfg")"
done
if [ -z "$noheader" ]; then
    pass "every example opens with '# NAME -- what it does' and shows its 'sluice run'"
else
    fail "example headers" "missing in:$noheader"
fi

sl check_bad check "$SLUICE_SRC/config/does-not-exist.yaml"
if [ $RC -eq 2 ] && has "$WORK/check_bad.err" "does-not-exist.yaml:1:1: error:"; then
    pass "check of a missing file: exit 2"
else
    fail "check of a missing file" "exit $RC: $(cat "$WORK/check_bad.err")"
fi

# file_wordcount.yaml needs WATCH_DIR: without it, the error names the variable.
RC=0
env -u WATCH_DIR timeout 30 "$SLUICE_BIN" check "$SLUICE_SRC/config/file_wordcount.yaml" \
    >"$WORK/novar.out" 2>"$WORK/novar.err" || RC=$?
if [ $RC -eq 2 ] && has "$WORK/novar.err" "'WATCH_DIR' is not set"; then
    pass "check file_wordcount.yaml without WATCH_DIR: exit 2 naming the variable"
else
    fail "check without WATCH_DIR" "exit $RC: $(cat "$WORK/novar.err")"
fi

# ==== demo ====

sl demo_config demo --print-config
if [ $RC -eq 0 ] && cmp -s "$WORK/demo_config.out" "$SLUICE_SRC/config/demo.yaml"; then
    pass "the demo's built-in YAML is config/demo.yaml"
else
    fail "demo --print-config" "differs from config/demo.yaml (exit $RC)"
fi

start=$(date +%s)
sl demo demo --seconds 3
elapsed=$(($(date +%s) - start))
batches=$(grep -c '^Time: ' "$WORK/demo.out" || true)
if [ $RC -eq 0 ] && [ "$batches" -ge 1 ] && grep -Eq '^\([a-z]+,[0-9]+\)$' "$WORK/demo.out" &&
    [ $elapsed -le 15 ]; then
    pass "demo --seconds 3: exit 0 after ${elapsed}s, $batches batch headers 'Time: ', counts"
else
    fail "demo --seconds 3" "exit $RC after ${elapsed}s, $batches batches: $(head -5 "$WORK/demo.out") $(tail -3 "$WORK/demo.err")"
fi

# ==== run: signals and exit codes ====

for sig in INT TERM; do
    "$SLUICE_BIN" run "$SLUICE_SRC/config/demo.yaml" >"$WORK/sig$sig.out" 2>"$WORK/sig$sig.err" &
    pid=$!
    BG_PIDS+=("$pid")
    if ! wait_line "$WORK/sig$sig.out" "Time: " 15; then
        fail "run, then SIG$sig" "no batch printed within 15 s"
        kill -KILL "$pid" 2>/dev/null || true
        continue
    fi
    kill -"$sig" "$pid"
    wait_exit "$pid" 15
    if [ $RC -eq 0 ] && has "$WORK/sig$sig.err" "stopping gracefully"; then
        pass "run, then SIG$sig: graceful stop, exit 0"
    else
        fail "run, then SIG$sig" "exit $RC: $(tail -3 "$WORK/sig$sig.err")"
    fi
done

# SIGHUP is ignored with a warning (it used to kill the process); the stop lines that follow
# carry a timestamp like every other log line.
"$SLUICE_BIN" run "$SLUICE_SRC/config/demo.yaml" >"$WORK/hup.out" 2>"$WORK/hup.err" &
pid=$!
BG_PIDS+=("$pid")
if wait_line "$WORK/hup.out" "Time: " 15; then
    kill -HUP "$pid"
    sleep 1
    alive=0
    kill -0 "$pid" 2>/dev/null && alive=1
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" 15
    stamp='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z \[[a-z]+\] '
    if [ $alive -eq 1 ] && [ $RC -eq 0 ] && grep -Eq "${stamp}SIGHUP ignored" "$WORK/hup.err" &&
        grep -Eq "${stamp}terminate: stopping gracefully" "$WORK/hup.err"; then
        pass "run, then SIGHUP: ignored with a warning, still running; timestamped stop lines"
    else
        fail "run, then SIGHUP" "alive $alive, exit $RC: $(tail -3 "$WORK/hup.err")"
    fi
else
    fail "run, then SIGHUP" "no batch printed within 15 s"
    kill -KILL "$pid" 2>/dev/null || true
fi

# A second signal makes the stop impatient: queued batches are dropped, exit 0 all the same.
# A graceful stop no longer waits for the next batch time (it runs the last batch at once),
# so the second signal (0.3 s later) usually finds sluice gone; when it comes in time, the
# log says so.
cat >"$WORK/slow.yaml" <<'EOF'
app: {name: slow, batch_interval: 3s}
sources: [{name: lines, type: generate, rate: 5}]
sinks: [{name: out, type: stdout, from: lines, num: 1}]
EOF
"$SLUICE_BIN" run "$WORK/slow.yaml" >"$WORK/sig2.out" 2>"$WORK/sig2.err" &
pid=$!
BG_PIDS+=("$pid")
if wait_line "$WORK/sig2.out" "Time: " 15; then
    kill -INT "$pid"
    sleep 0.3
    second=0
    if kill -0 "$pid" 2>/dev/null; then
        second=1
        kill -INT "$pid" 2>/dev/null || true
    fi
    wait_exit "$pid" 15
    if [ $RC -eq 0 ] && { [ $second -eq 0 ] || has "$WORK/sig2.err" "second signal"; }; then
        pass "run, then SIGINT twice: stops without waiting, exit 0"
    else
        fail "run, then SIGINT twice" "exit $RC: $(tail -3 "$WORK/sig2.err")"
    fi
else
    fail "run, then SIGINT twice" "no batch printed within 15 s"
    kill -KILL "$pid" 2>/dev/null || true
fi

# A source that cannot bind its port is a runtime failure: exit 1.
port=$(free_port)
# netcat listens on the port for 30 s (-k: again after each connection, such as the probe's).
timeout 30 nc -lk 127.0.0.1 "$port" </dev/null >/dev/null 2>&1 &
holder=$!
BG_PIDS+=("$holder")
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
RC=0
PORT=$port timeout 30 "$SLUICE_BIN" run "$SLUICE_SRC/config/network_wordcount_listen.yaml" \
    >"$WORK/busy.out" 2>"$WORK/busy.err" || RC=$?
kill "$holder" 2>/dev/null || true
if [ $RC -eq 1 ] && has "$WORK/busy.err" "could not start"; then
    pass "run with the port taken: exit 1"
else
    fail "run with the port taken" "exit $RC: $(tail -3 "$WORK/busy.err")"
fi

# A bad config through run: exit 2, one error line (a log line: timestamped).
printf 'app: {batch_interval: 1s}\nsources: []\n' >"$WORK/nosrc.yaml"
sl nosrc run "$WORK/nosrc.yaml"
if [ $RC -eq 2 ] && [ "$(wc -l <"$WORK/nosrc.err")" -eq 1 ] &&
    grep -Eq "^[0-9T:.Z-]+ \[error\] $WORK/nosrc.yaml:[0-9]+:[0-9]+: error: " "$WORK/nosrc.err"; then
    pass "run of a bad config: exit 2, one error line"
else
    fail "run of a bad config" "exit $RC: $(cat "$WORK/nosrc.err")"
fi

# --log-level error silences the info lines.
sl quiet demo --seconds 1.5 --log-level error
if [ $RC -eq 0 ] && ! has "$WORK/quiet.err" "[info]"; then
    pass "--log-level error: no info lines"
else
    fail "--log-level error" "exit $RC: $(head -3 "$WORK/quiet.err")"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

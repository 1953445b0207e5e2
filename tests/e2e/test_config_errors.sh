#!/usr/bin/env bash
# test_config_errors.sh -- broken pipeline files: for each, `sluice check` (and for some
# `sluice run`) must print exactly one line "FILE:LINE:COLUMN: error: MESSAGE" on stderr,
# at the expected place and with the expected words, print nothing on stdout, and exit 2.
#
# Env: SLUICE_BIN (the binary), SLUICE_SRC (the repo root). Prints one line per check and
# "N passed, N failed"; exits non-zero on any failure.
set -euo pipefail

SLUICE_SRC=${SLUICE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SLUICE_BIN=${SLUICE_BIN:-$SLUICE_SRC/build/sluice}
if [ ! -x "$SLUICE_BIN" ]; then
    echo "no sluice binary at $SLUICE_BIN (set SLUICE_BIN)" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-config-errors.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
unset SLUICE_TEST_UNSET_VAR || true

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

# A valid pipeline; each case changes one thing. Line numbers are referred to below.
base() {
    cat <<'EOF'
app:
  batch_interval: 1s
sources:
  - name: lines
    type: tcp
    port: 9999
streams:
  - name: counts
    from: lines
    ops:
      - split: whitespace
sinks:
  - name: out
    type: stdout
    from: counts
EOF
}

# expect NAME COMMAND LOC WORD... : runs `sluice COMMAND $WORK/NAME.yaml` and checks exit
# 2, an empty stdout, and a stderr of exactly one line that starts with "FILE:LOC: error: "
# (after the log's timestamp and level for run) and contains every WORD.
expect() {
    local name=$1 cmd=$2 loc=$3
    shift 3
    local file="$WORK/$name.yaml" rc=0
    timeout 20 "$SLUICE_BIN" "$cmd" "$file" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
    local err lines
    err=$(cat "$WORK/$name.err")
    lines=$(wc -l <"$WORK/$name.err")
    local check="$name ($cmd)"
    if [ "$rc" -ne 2 ]; then
        fail "$check" "exit status $rc, expected 2 (stderr: $err)"
        return
    fi
    if [ -s "$WORK/$name.out" ]; then
        fail "$check" "stdout not empty: $(head -c 200 "$WORK/$name.out")"
        return
    fi
    if [ "$lines" -ne 1 ]; then
        fail "$check" "expected exactly one line on stderr, got $lines: $err"
        return
    fi
    if [ "$cmd" = run ]; then
        # run's stderr is its log: the line has the log's timestamp and level first.
        [[ "$err" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z\ \[error\]\  ]] ||
            { fail "$check" "run's error line is not a log line: $err"; return; }
        err=${err#*\[error\] }
    fi
    local rest=${err#"$file:"}
    if [ "$rest" = "$err" ] || ! [[ "$rest" =~ ^[0-9]+:[0-9]+:\ error:\  ]]; then
        fail "$check" "not of the form $file:LINE:COLUMN: error: ...: $err"
        return
    fi
    if [[ "$rest" != "$loc: error: "* ]]; then
        fail "$check" "expected the place $loc: $err"
        return
    fi
    local w
    for w in "$@"; do
        if [[ "$err" != *"$w"* ]]; then
            fail "$check" "expected '$w' in: $err"
            return
        fi
    done
    pass "$check -> $err"
}

# yaml NAME: writes stdin to $WORK/NAME.yaml (used at the end of a pipeline; the checks
# themselves run in this shell so that the counters add up).
yaml() {
    cat >"$WORK/$1.yaml"
}

# 1. A typo in a key, with a suggestion and the valid keys.
base | sed 's/batch_interval/batch_intervl/' | yaml typo_key
expect typo_key check 2:3 "unknown key 'batch_intervl'" "did you mean 'batch_interval'" \
    "valid keys:"
# 2. A typo in a connector option.
base | sed 's/    port: 9999/    port: 9999\n    hots: localhost/' | yaml typo_option
expect typo_option check 7:5 "unknown option 'hots'" "did you mean 'host'" "port"
# 3. A wrong type: text where an integer is needed.
base | sed 's/  batch_interval: 1s/  batch_interval: 1s\n  workers: abc/' | yaml wrong_type_int
expect wrong_type_int check 3:12 "workers" "must be an integer" "'abc'"
# 4. A wrong type: a mapping where a scalar is needed.
base | sed 's/  - name: out/  - name: {first: out}/' | yaml wrong_type_mapping
expect wrong_type_mapping check 13:11 "'name'" "must be a scalar, got a mapping"
# 5. A bad duration.
base | sed 's/batch_interval: 1s/batch_interval: 1 sec/' | yaml bad_duration
expect bad_duration check 2:19 "bad duration '1 sec'"
# 6. A stream without from.
base | sed '/    from: lines/d' | yaml missing_from
expect missing_from check 8:5 "missing required key 'from'" "stream 'counts'"
# 7. An unknown stream in from.
base | sed 's/from: lines/from: linez/' | yaml unknown_stream
expect unknown_stream check 9:11 "unknown stream or source 'linez'" "did you mean 'lines'"
# 8. A cycle among streams.
yaml cycle <<'EOF'
app:
  batch_interval: 1s
sources:
  - {name: lines, type: tcp, port: 9999}
streams:
  - name: a
    from: [lines, b]
  - name: b
    from: a
sinks:
  - {name: out, type: stdout, from: b}
EOF
expect cycle check 9:11 "cycle among streams: a -> b -> a"
# 9. A window that is not a multiple of the batch interval.
base | sed 's/- split: whitespace/- window: {length: 2500ms, slide: 1s}/' | yaml window_not_multiple
expect window_not_multiple check 11:9 "window length 2500ms" "not a multiple" "slide 1s"
# 10. Bad ${VAR} syntax: unterminated.
base | sed 's/port: 9999/port: ${PORT/' | yaml var_unterminated
expect var_unterminated check 6:11 "unterminated '\${'"
# 11. Bad ${VAR} syntax: empty and bad names.
base | sed 's/port: 9999/port: 99${}/' | yaml var_empty_name
expect var_empty_name check 6:13 "empty variable name"
base | sed 's/port: 9999/port: ${1PORT}/' | yaml var_bad_name
expect var_bad_name check 6:11 "bad variable name"
# 12. An unset ${VAR} without default names the variable.
base | sed 's/port: 9999/port: ${SLUICE_TEST_UNSET_VAR}/' | yaml var_unset
expect var_unset check 6:11 "'SLUICE_TEST_UNSET_VAR' is not set"
# 13. An empty file, and one with only comments.
: | yaml empty_file
expect empty_file check 1:1 "empty configuration"
printf '# nothing here\n\n' | yaml only_comments
expect only_comments check 1:1 "empty configuration"
# 14. Not YAML: a syntax error with libyaml's place, and binary bytes.
printf 'app: [1, 2\nsources: x\n' | yaml not_yaml
expect not_yaml check 2:8 "YAML syntax error"
printf 'app:\n  batch_interval: 1s\n\tsources: []\n' | yaml yaml_tab
expect yaml_tab check 3:1 "YAML syntax error"
printf '\x7fELF\x02\x01\x01\x00\x00\x00' | yaml binary
expect binary check 1:1 "not a valid YAML text"
# 15. Duplicate names (sources and streams share a namespace) and duplicate keys.
base | sed 's/  - name: counts/  - name: lines/' | yaml duplicate_name
expect duplicate_name check 8:11 "duplicate name 'lines'"
base | sed 's/    port: 9999/    port: 9999\n    port: 9998/' | yaml duplicate_key
expect duplicate_key check 7:5 "duplicate key 'port'"
# 16. An unknown connector type lists the known ones.
base | sed 's/type: tcp/type: tpc/' | yaml unknown_type
expect unknown_type check 5:11 "unknown source type 'tpc'" "did you mean 'tcp'" "tcp" "file"
base | sed 's/type: stdout/type: stdot/' | yaml unknown_sink_type
expect unknown_sink_type check 14:11 "unknown sink type 'stdot'" "stdout"
# 17. An out-of-range port.
base | sed 's/port: 9999/port: 70000/' | yaml port_out_of_range
expect port_out_of_range check 6:11 "'port'" "70000" "out of range"
# 18. An unknown op.
base | sed 's/- split: whitespace/- tokenize: whitespace/' | yaml unknown_op
expect unknown_op check 11:9 "unknown op 'tokenize'" "valid ops: split"
# 19. An unknown top-level section, and a top level that is not a mapping.
{ base; echo "sink:"; } | yaml unknown_section
expect unknown_section check 16:1 "unknown section 'sink'" "did you mean 'sinks'"
printf -- '- app\n- sources\n' | yaml top_level_list
expect top_level_list check 1:1 "top level must be a mapping"
# 20. A missing batch_interval and a missing required connector option.
base | sed 's/  batch_interval: 1s/  name: x/' | yaml missing_batch_interval
expect missing_batch_interval check 2:3 "missing required key 'batch_interval'"
base | sed '/    port: 9999/d' | yaml missing_port
expect missing_port check 4:5 "missing required option 'port'"
# 21. A bad regular expression, refused at load.
base | sed 's/- split: whitespace/- filter: {matches: "a(b"}/' | yaml bad_regex
expect bad_regex check 11:27 "bad regular expression 'a(b'"
# 22. A filter on a JSON field with an unknown comparison.
base | sed 's/- split: whitespace/- filter: {json: level, is: error}/' | yaml bad_filter_key
expect bad_filter_key check 11:31 "unknown key 'is' in op 'filter'" "equals"

# The same errors through `sluice run`: nothing starts, exit 2, one line.
base | sed 's/port: 9999/port: 70000/' >"$WORK/run_port.yaml"
expect run_port run 6:11 "out of range"
base | sed 's/from: lines/from: linez/' >"$WORK/run_unknown_stream.yaml"
expect run_unknown_stream run 9:11 "unknown stream or source 'linez'"

# A file that does not exist.
expect no_such_file check 1:1 "cannot read the file" "No such file"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

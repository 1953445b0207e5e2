#!/usr/bin/env bash
# test_window_config.sh -- the windowed and stateful YAML ops: `sluice check` accepts and
# prints them, and refuses with one "FILE:LINE:COLUMN: error: ..." line (exit 2) an inverse
# for min/max, a stateful op without app.checkpoint_dir, a length that is not a multiple of
# the batch interval, unknown keys and a missing length.
source "$(dirname "$0")/lib.sh"
sl_setup

# pipeline FILE CHECKPOINT_LINE OP: a pipeline whose stream applies OP (one YAML line).
pipeline() {
    cat >"$1" <<YAML
app:
  batch_interval: 1s
$2
sources:
  - name: lines
    type: generate
streams:
  - name: s
    from: lines
    ops:
      - split: whitespace
      - key: value
      - $3
sinks:
  - name: out
    type: stdout
    from: s
YAML
}

ckpt="  checkpoint_dir: $SL_TMP/ckpt"

# good NAME OP DESCRIPTION: sluice check succeeds and prints the op as DESCRIPTION.
good() {
    pipeline "$SL_TMP/$1.yaml" "$ckpt" "$2"
    "$SLUICE_BIN" check "$SL_TMP/$1.yaml" >"$SL_TMP/$1.out" 2>"$SL_TMP/$1.log" ||
        sl_fail "$1: check failed: $(cat "$SL_TMP/$1.log")"
    grep -qF -- "$3" "$SL_TMP/$1.out" || sl_fail "$1: '$3' not in: $(cat "$SL_TMP/$1.out")"
}

# bad NAME CHECKPOINT_LINE OP LINE:COL WORDS...: check exits 2 with one error line.
bad() {
    local name=$1 ck=$2 op=$3 loc=$4
    shift 4
    pipeline "$SL_TMP/$name.yaml" "$ck" "$op"
    local rc=0
    "$SLUICE_BIN" check "$SL_TMP/$name.yaml" >"$SL_TMP/$name.out" 2>"$SL_TMP/$name.err" || rc=$?
    [ "$rc" = 2 ] || sl_fail "$name: exit $rc, expected 2"
    [ ! -s "$SL_TMP/$name.out" ] || sl_fail "$name: something on stdout"
    [ "$(wc -l <"$SL_TMP/$name.err")" = 1 ] ||
        sl_fail "$name: not one line: $(cat "$SL_TMP/$name.err")"
    grep -q "^$SL_TMP/$name.yaml:$loc: error: " "$SL_TMP/$name.err" ||
        sl_fail "$name: not at $loc: $(cat "$SL_TMP/$name.err")"
    local w
    for w in "$@"; do
        grep -qF -- "$w" "$SL_TMP/$name.err" ||
            sl_fail "$name: no '$w' in: $(cat "$SL_TMP/$name.err")"
    done
}

rbkw='reduce_by_key_and_window: {fn: sum, length: 30s, slide: 10s, inverse: true, '
rbkw+='drop_zero: true, partitions: 3}'
good rbkw "$rbkw" \
    'reduce_by_key_and_window sum length 30s slide 10s inverse drop_zero (partitions 3)'
good rbkw_plain 'reduce_by_key_and_window: {fn: max, length: 2m}' \
    'reduce_by_key_and_window max length 2m'
good cbw 'count_by_window: {length: 30s, slide: 10s}' 'count_by_window length 30s slide 10s'
good rbw 'reduce_by_window: {fn: count, length: 5s}' 'reduce_by_window count length 5s'
good cbvw 'count_by_value_and_window: {length: 1m, slide: 2s}' \
    'count_by_value_and_window length 1m slide 2s'
good running 'running: {fn: min, ttl: 10m, partitions: 2}' 'running min ttl 10m (partitions 2)'
good running_no_ttl 'running: {fn: sum}' 'running sum'
grep -q 's <- lines (every 10s)' "$SL_TMP/rbkw.out" ||
    sl_fail "the window's slide is not the stream's"

bad inverse_max "$ckpt" 'reduce_by_key_and_window: {fn: max, length: 30s, inverse: true}' \
    '13:67' 'inverse: true is available for fn sum, count and avg only' 'max has no inverse'
bad inverse_no_ckpt '' 'reduce_by_key_and_window: {fn: count, length: 30s, inverse: true}' \
    '13:69' 'needs app.checkpoint_dir'
bad running_no_ckpt '' 'running: {fn: count, ttl: 1m}' '13:9' "op 'running' keeps state" \
    'needs app.checkpoint_dir'
bad cbvw_no_ckpt '' 'count_by_value_and_window: {length: 4s}' '13:9' 'count_by_value_and_window' \
    'needs app.checkpoint_dir'
bad length_multiple "$ckpt" 'count_by_window: {length: 2500ms}' '13:9' \
    'window length 2500ms is not a multiple' "parent's slide 1s"
bad slide_multiple "$ckpt" 'reduce_by_window: {fn: sum, length: 4s, slide: 1500ms}' '13:9' \
    'window slide 1500ms is not a multiple'
bad unknown_key "$ckpt" 'count_by_window: {length: 4s, inverse: true}' '13:39' \
    "unknown key 'inverse'" 'valid keys: length, slide'
bad no_length "$ckpt" 'reduce_by_key_and_window: {fn: sum}' '13:35' "missing required key 'length'"
bad no_fn "$ckpt" 'running: {ttl: 5s}' '13:18' "missing required key 'fn'"
bad bad_fn "$ckpt" 'running: {fn: median}' '13:23' 'unknown value' 'sum, count, min, max, avg, first, last, count_distinct'
bad bad_ttl "$ckpt" 'running: {fn: sum, ttl: soon}' '13:33' 'bad duration'
sl_pass

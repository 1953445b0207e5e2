#!/usr/bin/env bash
# test_window_run.sh -- `sluice run` with the windowed YAML ops over a known input (the
# generate source, a fixed number of lines, all within the window): the last window of
# reduce_by_key_and_window with and without the inverse holds every word's total,
# count_by_window and reduce_by_window (count) the number of words, and a window that has
# slid past the input is empty (zero counts dropped) or 0.
source "$(dirname "$0")/lib.sh"
sl_setup

cat >"$SL_TMP/win.yaml" <<YAML
app:
  name: window_run
  batch_interval: 200ms
  workers: 2
  checkpoint_dir: $SL_TMP/ckpt
sources:
  - name: lines
    type: generate
    text: "a b\nb"
    rate: 500
    count: 150            # 75 times "a b" and "b": a 75, b 150, 225 words
streams:
  - name: words
    from: lines
    ops:
      - split: whitespace
      - key: value
  - name: inv
    from: words
    ops:
      - reduce_by_key_and_window:
          {fn: count, length: 30s, slide: 400ms, inverse: true, drop_zero: true, partitions: 3}
  - name: plain
    from: words
    ops:
      - reduce_by_key_and_window: {fn: count, length: 30s}
  - name: nwords
    from: words
    ops:
      - count_by_window: {length: 30s, slide: 400ms}
  - name: nwords2
    from: words
    ops:
      - reduce_by_window: {fn: count, length: 30s}
  - name: short
    from: words
    ops:
      - count_by_value_and_window: {length: 400ms}
  - name: nshort
    from: words
    ops:
      - count_by_window: {length: 400ms}
sinks:
YAML
for s in inv plain nwords nwords2 short nshort; do
    mkdir -p "$SL_TMP/out/$s"
    printf '  - name: %s_out\n    type: file\n    from: %s\n    prefix: %s\n' \
        "$s" "$s" "$SL_TMP/out/$s/b" >>"$SL_TMP/win.yaml"
done

sl_start run "$SL_TMP/win.yaml" --seconds 3
pid=$SL_LAST_PID
sl_wait_until 30 sh -c "! kill -0 $pid 2>/dev/null" || sl_fail "sluice did not stop by itself"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || sl_fail "sluice exited with $rc"

# newest NAME: the sorted lines of the last batch written for stream NAME.
newest() {
    local d
    d=$(ls -d "$SL_TMP/out/$1"/b-* | sort | tail -n 1)
    cat "$d"/part-* 2>/dev/null | sort
}

expect() {
    local got
    got=$(newest "$1" | tr '\n' ' ')
    [ "$got" = "$2" ] || sl_fail "$1: last window '$got', expected '$2'"
}

expect inv "(a,75) (b,150) "
expect plain "(a,75) (b,150) "
expect nwords "225 "
expect nwords2 "225 "
expect short ""
expect nshort "0 "
# Every window of the inverse, while the input came, agrees with the plain one.
for d in "$SL_TMP"/out/inv/b-*; do
    t=${d##*/b-}
    p="$SL_TMP/out/plain/b-$t"
    [ -d "$p" ] || sl_fail "no plain window at $t"
    [ "$(cat "$d"/part-* | sort)" = "$(cat "$p"/part-* | sort)" ] || sl_fail "windows differ at $t"
done
sl_pass

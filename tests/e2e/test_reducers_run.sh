#!/usr/bin/env bash
# test_reducers_run.sh -- `sluice run` with the reducers avg, count_distinct and first in
# YAML over a known input (the generate source, a fixed number of lines, all within the
# window): tokens 1, 2 and 6, 75 times each, under one key; the last window's avg is 3, its
# distinct count 3, in the plain, inverse, keyed and running forms.
source "$(dirname "$0")/lib.sh"
sl_setup

cat >"$SL_TMP/red.yaml" <<YAML
app:
  name: reducers_run
  batch_interval: 200ms
  workers: 2
  checkpoint_dir: $SL_TMP/ckpt
sources:
  - name: lines
    type: generate
    text: "1 2\n6"
    rate: 500
    count: 150            # 75 times "1 2" and "6": 1, 2 and 6 75 times each
streams:
  - name: nums
    from: lines
    ops:
      - split: whitespace
      - key: {meta: source}
      - value: number
  - name: avg
    from: nums
    ops:
      - reduce_by_key_and_window: {fn: avg, length: 30s, slide: 400ms, partitions: 3}
  - name: avg_inv
    from: nums
    ops:
      - reduce_by_key_and_window: {fn: avg, length: 30s, inverse: true}
  - name: avg_keyed
    from: nums
    ops:
      - reduce_by_key_and_window: {fn: avg, length: 30s, keyed: true}
  - name: distinct
    from: nums
    ops:
      - reduce_by_key_and_window: {fn: count_distinct, length: 30s}
  - name: running
    from: nums
    ops:
      - running: {fn: avg}
sinks:
YAML
for s in avg avg_inv avg_keyed distinct running; do
    mkdir -p "$SL_TMP/out/$s"
    printf '  - name: %s_out\n    type: file\n    from: %s\n    prefix: %s\n' \
        "$s" "$s" "$SL_TMP/out/$s/b" >>"$SL_TMP/red.yaml"
done

sl_start run "$SL_TMP/red.yaml" --seconds 3
pid=$SL_LAST_PID
sl_wait_until 30 sh -c "! kill -0 $pid 2>/dev/null" || sl_fail "sluice did not stop by itself"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || sl_fail "sluice exited with $rc"

# newest NAME: the lines of the last non-empty batch written for stream NAME.
newest() {
    local d
    for d in $(ls -d "$SL_TMP/out/$1"/b-* | sort -r); do
        if [ -n "$(cat "$d"/part-* 2>/dev/null)" ]; then
            cat "$d"/part-* | sort
            return
        fi
    done
}

expect() {
    local got
    got=$(newest "$1" | tr '\n' ' ')
    [ "$got" = "$2" ] || sl_fail "$1: last result '$got', expected '$2'"
}

expect avg "(lines,3) "
expect avg_inv "(lines,3) "
expect avg_keyed "(lines,3) "
expect distinct "(lines,3) "
expect running "(lines,3) "
sl_pass

#!/usr/bin/env bash
# test_state_restart.sh -- `sluice run` with stateful ops: running counts per word (op
# running) and windowed counts with the inverse (count_by_value_and_window) are checkpointed
# under app.checkpoint_dir; after a graceful stop, a second run of the same file continues
# from the saved state: its running counts start where the first run ended. The input is a
# known text (the generate source, a fixed number of lines), so the counts are exact.
source "$(dirname "$0")/lib.sh"
sl_setup

cat >"$SL_TMP/state.yaml" <<YAML
app:
  name: state_restart
  batch_interval: 200ms
  workers: 2
  checkpoint_dir: $SL_TMP/ckpt
sources:
  - name: lines
    type: generate
    text: "a b\nb c c\nd"
    rate: 500
    count: 600            # 200 times the 3 lines, in about 1.2 s
streams:
  - name: words
    from: lines
    ops:
      - split: whitespace
      - key: value
  - name: totals
    from: words
    ops:
      - running: {fn: count, ttl: 10m}
  - name: recent
    from: words
    ops:
      - count_by_value_and_window: {length: 1s, slide: 400ms}
sinks:
  - name: out
    type: stdout
    from: totals
    num: 1000
  - name: windows
    type: file
    from: recent
    prefix: $SL_TMP/windows/w
YAML
mkdir -p "$SL_TMP/windows"

# last COUNT FILE KEY: the last running count printed for KEY.
last() {
    awk -v p="($2," 'index($0, p) == 1 { v = substr($0, length(p) + 1); sub(/\)$/, "", v) }
        END { print v + 0 }' "$1"
}

run_once() {
    sl_start "run$1" "$SL_TMP/state.yaml" --seconds 4
    local pid=$SL_LAST_PID rc=0
    sl_wait_until 30 sh -c "! kill -0 $pid 2>/dev/null" || sl_fail "run $1 did not stop by itself"
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || sl_fail "run $1 exited with $rc"
}

run_once 1
for kv in a=200 b=400 c=400 d=200; do
    got=$(last "$SL_TMP/run1.out" "${kv%%=*}")
    [ "$got" = "${kv#*=}" ] || sl_fail "run 1: running count of ${kv%%=*}: $got, expected ${kv#*=}"
done
ls "$SL_TMP/ckpt/state/"*.tab >/dev/null 2>&1 || sl_fail "no state file in $SL_TMP/ckpt/state"
# The windows saw the words; each count is at most what a 1 s window can hold.
grep -hq '^(c,' "$SL_TMP"/windows/w-*/part-* || sl_fail "no windowed count of c"

# The same file again: the state is loaded, the counts go on from there.
run_once 2
grep -q "state restored as of batch" "$SL_TMP/run2.log" || sl_fail "run 2 did not restore the state"
for kv in a=400 b=800 c=800 d=400; do
    got=$(last "$SL_TMP/run2.out" "${kv%%=*}")
    [ "$got" = "${kv#*=}" ] || sl_fail "run 2: running count of ${kv%%=*}: $got, expected ${kv#*=}"
done
# Old snapshots are deleted: a few tables per node at most.
n=$(ls "$SL_TMP/ckpt/state/" | grep -c '\.tab$')
[ "$n" -le 8 ] || sl_fail "$n table files kept"
sl_pass

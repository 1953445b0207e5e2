#!/usr/bin/env bash
# test_sluice_test.sh -- `sluice test` (issue 16 item 4) on the files of tests/e2e/sluice_test/:
# a passing file exits 0 with its summary; a failing one exits 1 and shows the missing and the
# unexpected records of its sink and batch; a window of batch time over several batches, running
# totals (state, in a temporary checkpoint directory that is removed) and event-time windows
# pass; Kafka headers and the default topic reach the pipeline, and ordered: true tells the same
# records in another order; every one of these tests fails once its inputs are taken away
# (each can fail); a bad test file exits 2 naming its file, line and column.
#
# Env: SLUICE_BIN, SLUICE_SRC.
. "$(dirname "$0")/lib.sh"
sl_setup
trap 'unfinished; sl_cleanup' EXIT
D=$SLUICE_SRC/tests/e2e/sluice_test
export TMPDIR=$SL_TMP/tmp
mkdir -p "$TMPDIR"

# st NAME FILE...: runs sluice test, output in $SL_TMP/NAME.out and .err, status in RC.
st() {
    local name=$1
    shift
    RC=0
    timeout 120 "$SLUICE_BIN" test "$@" >"$SL_TMP/$name.out" 2>"$SL_TMP/$name.err" || RC=$?
}
has() { grep -qF -- "$2" "$SL_TMP/$1.out"; }

st pass "$D/wordcount.test.yaml"
check "a passing file: exit 0 ($RC)" test "$RC" -eq 0
check "a passing file: a line per test" has pass "ok   $D/wordcount.test.yaml: counts the words of each batch"
check "a passing file: the summary" has pass "2 tests, 2 passed, 0 failed"

st fail "$D/wordcount_fail.test.yaml"
check "a failing file: exit 1 ($RC)" test "$RC" -eq 1
check "a failing file: its passing test is ok" has fail "ok   $D/wordcount_fail.test.yaml: passes"
check "a failing file: the failing test is named" has fail "FAIL $D/wordcount_fail.test.yaml: miscounts b"
check "a failing file: sink, batch and place" \
    has fail "sink 'out', batch 1 at +1s ($D/wordcount_fail.test.yaml:11): 1 missing, 2 unexpected"
check "a failing file: the missing record" has fail "- (b,2)"
check "a failing file: the unexpected records" \
    bash -c "grep -qxF '      + (b,1)' '$SL_TMP/fail.out' && grep -qxF '      + (c,1)' '$SL_TMP/fail.out'"
check "a failing file: the summary" has fail "2 tests, 1 passed, 1 failed"

for f in windows running event lua_windows lua_state; do
    st "$f" "$D/$f.test.yaml"
    n=$(grep -c '^ok ' "$SL_TMP/$f.out")
    check "$f.test.yaml: exit 0 ($RC), $n tests ok" \
        bash -c "[ $RC -eq 0 ] && [ $n -ge 1 ] && ! grep -q '^FAIL' '$SL_TMP/$f.out'"
done
check "running totals: the checkpoint is a temporary directory, removed after" \
    bash -c "[ -z \"\$(ls -A '$TMPDIR')\" ]"
check "event time: the late click is logged" grep -q "came after the watermark" "$SL_TMP/event.err"

st headers "$D/headers.test.yaml"
check "headers, the default topic and ordered: true: exit 0 ($RC)" test "$RC" -eq 0
sed 's/\["(x1,a)", {key: x3/[{key: x3/; s/partition: 0}\]/partition: 0}, "(x1,a)"]/' \
    "$D/headers.test.yaml" | sed "s#^pipeline: .*#pipeline: $D/headers.yaml#" >"$SL_TMP/order.test.yaml"
st order "$SL_TMP/order.test.yaml"
check "ordered: true, the same records in another order: exit 1 ($RC)" \
    bash -c "[ $RC -eq 1 ] && grep -q 'the records in another order' '$SL_TMP/order.out'"

st all "$D/wordcount.test.yaml" "$D/windows.test.yaml" "$D/running.test.yaml" "$D/event.test.yaml"
check "several files at once: exit 0 ($RC), every test counted" has all "7 tests, 7 passed, 0 failed"

# Every test can fail: without its inputs, each one fails.
for f in wordcount windows running event headers lua_windows lua_state; do
    yq -y --arg p "$D/clicks.yaml" --arg w "$D/wordcount.yaml" \
        --arg h "$D/headers.yaml" --arg l "$D/lua_windows.yaml" --arg s "$D/lua_state.yaml" \
        '.pipeline = (if .pipeline == "wordcount.yaml" then $w
                      elif .pipeline == "headers.yaml" then $h
                      elif .pipeline == "lua_windows.yaml" then $l
                      elif .pipeline == "lua_state.yaml" then $s else $p end)
         | .tests[].batches[].inputs = {}' "$D/$f.test.yaml" >"$SL_TMP/$f-empty.test.yaml"
    st "$f-empty" "$SL_TMP/$f-empty.test.yaml"
    n=$(grep -c '^FAIL ' "$SL_TMP/$f-empty.out")
    total=$(grep -c '^ok \|^FAIL ' "$SL_TMP/$f-empty.out")
    check "$f.test.yaml without inputs: exit 1 ($RC), all $total tests fail ($n)" \
        bash -c "[ $RC -eq 1 ] && [ $n -ge 1 ] && [ $n -eq $total ]"
done

st bad "$D/bad.test.yaml"
check "a bad file: exit 2 ($RC)" test "$RC" -eq 2
check "a bad file: FILE:LINE:COLUMN and the sinks there are" \
    grep -qF "$D/bad.test.yaml:8:19: error: no sink 'totals' in $D/clicks.yaml; its sinks: counts, windows, totals_out, event_windows" "$SL_TMP/bad.err"
printf 'pipeline: wordcount.yaml\ntests:\n  - name: x\n    batches:\n      - inputs: {lines: [a]}\n        outputs: {out: [{key: a, nmu: 1}]}\n' >"$SL_TMP/typo.test.yaml"
cp "$D/wordcount.yaml" "$SL_TMP/"
st typo "$SL_TMP/typo.test.yaml"
check "a misspelled field: exit 2, the place and the valid keys ($RC)" \
    grep -qF "typo.test.yaml:6:34: error: unknown key 'nmu' in an expected record (did you mean 'num'?)" "$SL_TMP/typo.err"
printf 'pipeline: nothing.yaml\ntests: []\n' >"$SL_TMP/nopipe.test.yaml"
st nopipe "$SL_TMP/nopipe.test.yaml"
check "a missing pipeline: exit 2, named with the test file's line ($RC)" \
    grep -qF "nopipe.test.yaml:1:11: error: pipeline nothing.yaml: $SL_TMP/nothing.yaml:1:1: error: cannot read the file" "$SL_TMP/nopipe.err"
st usage
check "no file: exit 2 ($RC)" test "$RC" -eq 2
finish

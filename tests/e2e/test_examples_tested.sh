#!/usr/bin/env bash
# test_examples_tested.sh -- every pipeline of config/examples/ ships with a test file,
# NAME.test.yaml beside NAME.yaml, and `sluice test` passes them all (their Kafka, TCP and file
# sources and their sinks replaced: no server needed); and each of their tests can fail: with
# its inputs taken away, every test of every file fails.
#
# Env: SLUICE_BIN, SLUICE_SRC.
. "$(dirname "$0")/lib.sh"
sl_setup
trap 'unfinished; sl_cleanup' EXIT
E=$SLUICE_SRC/config/examples
export TMPDIR=$SL_TMP/tmp
mkdir -p "$TMPDIR"

untested=""
files=()
for p in "$E"/*.yaml; do
    case $p in *.test.yaml) continue ;; esac
    t=${p%.yaml}.test.yaml
    if [ -f "$t" ]; then files+=("$t"); else untested="$untested $(basename "$p")"; fi
done
check "every example has its NAME.test.yaml (${#files[@]} do)${untested:+; not:$untested}" \
    test -z "$untested"

RC=0
timeout 300 "$SLUICE_BIN" test "${files[@]}" >"$SL_TMP/all.out" 2>"$SL_TMP/all.err" || RC=$?
summary=$(tail -n 1 "$SL_TMP/all.out")
check "sluice test config/examples/*.test.yaml: exit 0 ($RC): $summary" \
    bash -c "[ $RC -eq 0 ] && grep -qE '^[0-9]+ tests?, [0-9]+ passed, 0 failed$' <<<'$summary'"
[ "$RC" -eq 0 ] || cat "$SL_TMP/all.out" "$SL_TMP/all.err" >&2
check "the temporary directories are removed" bash -c "[ -z \"\$(ls -A '$TMPDIR')\" ]"

for t in "${files[@]}"; do
    b=$(basename "$t" .test.yaml)
    yq -y --arg p "$E/$b.yaml" '.pipeline = $p | .tests[].batches[].inputs = {}' "$t" \
        >"$SL_TMP/$b.test.yaml"
    RC=0
    timeout 120 "$SLUICE_BIN" test "$SL_TMP/$b.test.yaml" >"$SL_TMP/$b.out" 2>&1 || RC=$?
    n=$(grep -c '^FAIL ' "$SL_TMP/$b.out")
    total=$(grep -c '^ok \|^FAIL ' "$SL_TMP/$b.out")
    check "$b.test.yaml without inputs: exit 1 ($RC), all $total tests fail ($n)" \
        bash -c "[ $RC -eq 1 ] && [ $n -ge 1 ] && [ $n -eq $total ]"
done
finish

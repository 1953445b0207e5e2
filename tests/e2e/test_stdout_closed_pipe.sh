#!/usr/bin/env bash
# test_stdout_closed_pipe.sh -- `sluice demo | head -n 3`: once nobody reads stdout, the
# stdout sink's write fails with EPIPE, which no retry can fix; sluice stops by itself and
# exits 1 with the reason, instead of logging the error every batch forever.
source "$(dirname "$0")/lib.sh"
sl_setup

start=$(date +%s)
set +o pipefail
timeout 30 "$SLUICE_BIN" demo 2>"$SL_TMP/demo.log" | head -n 3 >"$SL_TMP/head.out"
status=${PIPESTATUS[0]}
set -o pipefail
elapsed=$(($(date +%s) - start))

[ "$(wc -l <"$SL_TMP/head.out")" -eq 3 ] || sl_fail "head did not get 3 lines"
[ "$status" -ne 124 ] || sl_fail "sluice kept running after its stdout was closed"
[ "$status" -eq 1 ] || sl_fail "exit status $status, expected 1"
grep -q "Broken pipe" "$SL_TMP/demo.log" || sl_fail "the reason (EPIPE) was not logged"
grep -q "cannot recover" "$SL_TMP/demo.log" || sl_fail "the stop was not explained"
sl_log "stopped ${elapsed}s after start"
sl_pass

#!/usr/bin/env bash
# test_reference_up_to_date.sh -- the generated references are what sluice prints from its
# tables: config/CONNECTORS.md is `sluice connectors --markdown` (the option tables), and
# the README's operations reference, between <!-- ops:begin --> and <!-- ops:end -->, is
# `sluice ops --markdown` (the op table). A connector, option or op changed without
# regenerating fails here. Regenerate with:
#     build/sluice connectors --markdown > config/CONNECTORS.md
#     and paste `build/sluice ops --markdown` between the markers in README.md
source "$(dirname "$0")/lib.sh"
sl_setup
"$SLUICE_BIN" connectors --markdown >"$SL_TMP/CONNECTORS.md" || sl_fail "connectors --markdown failed"
if ! diff -u "$SLUICE_SRC/config/CONNECTORS.md" "$SL_TMP/CONNECTORS.md" >&2; then
    sl_fail "config/CONNECTORS.md is out of date (see the diff above)"
fi
"$SLUICE_BIN" ops --markdown >"$SL_TMP/ops.md" || sl_fail "ops --markdown failed"
sed -n '/^<!-- ops:begin -->$/,/^<!-- ops:end -->$/{/^<!-- ops:/d;p}' "$SLUICE_SRC/README.md" \
    >"$SL_TMP/README-ops.md"
[ -s "$SL_TMP/README-ops.md" ] || sl_fail "README.md has no <!-- ops:begin --> ... <!-- ops:end -->"
if ! diff -u "$SL_TMP/README-ops.md" "$SL_TMP/ops.md" >&2; then
    sl_fail "the README's operations reference is out of date (see the diff above)"
fi
sl_pass

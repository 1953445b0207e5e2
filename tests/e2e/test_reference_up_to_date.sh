#!/usr/bin/env bash
# test_reference_up_to_date.sh -- config/CONNECTORS.md is what `sluice connectors
# --markdown` prints from the option tables: a connector or option changed without
# regenerating the reference fails here. Regenerate with:
#     build/sluice connectors --markdown > config/CONNECTORS.md
source "$(dirname "$0")/lib.sh"
sl_setup
"$SLUICE_BIN" connectors --markdown >"$SL_TMP/CONNECTORS.md" || sl_fail "connectors --markdown failed"
if ! diff -u "$SLUICE_SRC/config/CONNECTORS.md" "$SL_TMP/CONNECTORS.md" >&2; then
    sl_fail "config/CONNECTORS.md is out of date (see the diff above)"
fi
sl_pass

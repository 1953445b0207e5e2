#!/usr/bin/env bash
# test_public_symbols.sh -- libsluice.so exports the public API and nothing else: every
# symbol `nm -D --defined-only` lists is declared in sluice.h or sl_connector.h, none is
# internal (sl__*), and every function those headers declare is exported.
#
# Env: SLUICE_BUILD (the built build directory), SLUICE_SRC.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
set -euo pipefail
sl_setup

lib=$SLUICE_BUILD/libsluice.so
[ -f "$lib" ] || sl_fail "no $lib (build the sluice_shared target)"
headers=("$SLUICE_SRC/src/sluice.h" "$SLUICE_SRC/src/sl_connector.h")

nm -D --defined-only "$lib" | awk '{ print $3 }' | sort -u >"$SL_TMP/exported"
# Function names the public headers declare: an identifier followed by "(" at the start of
# a declaration (the return type before it, or on the line before).
cat "${headers[@]}" | sed 's#/\*.*\*/##' |
    grep -oE '(^|[ *])sl_[a-z0-9_]+\(' | grep -oE 'sl_[a-z0-9_]+' | sort -u >"$SL_TMP/declared"

check "libsluice.so exports symbols" test -s "$SL_TMP/exported"
internal=$(grep -E '^sl__' "$SL_TMP/exported" | head -n 5 | tr '\n' ' ' || true)
check "no internal (sl__) symbol is exported${internal:+: $internal}" test -z "$internal"
foreign=$(grep -vE '^sl_' "$SL_TMP/exported" | head -n 5 | tr '\n' ' ' || true)
check "every exported symbol has the sl_ prefix${foreign:+: $foreign}" test -z "$foreign"
undeclared=$(comm -23 "$SL_TMP/exported" "$SL_TMP/declared" | head -n 5 | tr '\n' ' ')
check "every exported symbol is declared in sluice.h or sl_connector.h${undeclared:+: $undeclared}" \
    test -z "$undeclared"
missing=$(comm -13 "$SL_TMP/exported" "$SL_TMP/declared" | head -n 5 | tr '\n' ' ')
check "every function of sluice.h and sl_connector.h is exported${missing:+: $missing}" \
    test -z "$missing"
finish

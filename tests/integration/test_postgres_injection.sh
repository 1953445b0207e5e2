#!/usr/bin/env bash
# test_postgres_injection.sh -- SQL injection through data and through configuration.
# Keys and values with quotes, semicolons, backslashes, braces, "NULL", \N, tabs, newlines
# and "'); DROP TABLE victim; --" go through COPY (append) and through array parameters
# (upsert) into tables and columns whose own names try the same: every byte is written
# literally (compared in hex with psql), the victim table and the list of tables are
# unchanged, a record holding NUL is skipped and logged, and options that try to smuggle
# SQL (a mode, a column source) are refused at load with a message naming the option.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

ident() { local s=${1//\"/\"\"}; printf '"%s"' "$s"; } # quoted as SQL does
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

id="$$_$RANDOM"
victim="victim_$id"
app="pg_injection_$id"
t_copy="inj\"; DROP TABLE $victim; --_$id" # append: COPY
t_up="inj_up');DROP TABLE $victim;--_$id"  # upsert: INSERT ... unnest($1::text[], ...)
c_key="k'); DROP TABLE $victim; --"
c_val='v"'
sl_pg "$app" "$(ident "$t_copy")" "$(ident "$t_up")" "$victim"

q "CREATE TABLE $victim (id int PRIMARY KEY, note text); INSERT INTO $victim VALUES (1, 'keep'), (2, 'keep')"
tables_before=$(q "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN ('$(printf '%s' "$t_copy" | sed "s/'/''/g")', '$(printf '%s' "$t_up" | sed "s/'/''/g")')")

# Keys and values: decoded (for the hex comparison) and as JSON string contents.
keys=("'); DROP TABLE $victim; --" 'back\slash' '{a,b}' $'tab\there' '$1::text' 'Grüße' '""')
jkeys=("'); DROP TABLE $victim; --" 'back\\slash' '{a,b}' 'tab\there' '$1::text' 'Grüße' '\"\"')
vals=("x\"); DELETE FROM $victim; --" '\N' 'NULL' $'line1\nline2' "semi;colon 'single' \"double\"" "E'\\x41'" '')
jvals=("x\\\"); DELETE FROM $victim; --" '\\N' 'NULL' 'line1\nline2' "semi;colon 'single' \\\"double\\\"" "E'\\\\x41'" '')
: >"$SL_TMP/rows.jsonl"
: >"$SL_TMP/expected.txt"
for i in "${!keys[@]}"; do
    printf '{"k":"%s","v":"%s"}\n' "${jkeys[$i]}" "${jvals[$i]}" >>"$SL_TMP/rows.jsonl"
    echo "$(hex "${keys[$i]}") $(hex "${vals[$i]}")" >>"$SL_TMP/expected.txt"
done
echo '{"k":"nul","v":"a\u0000b"}' >>"$SL_TMP/rows.jsonl"
LC_ALL=C sort -o "$SL_TMP/expected.txt" "$SL_TMP/expected.txt"
nrows=${#keys[@]}

yq() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; } # a YAML double-quoted scalar
port=$(sl_free_port)
cat >"$SL_TMP/inj.yaml" <<YAML
app:
  name: $app
  batch_interval: 300ms
sources:
  - name: rows
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $port
streams:
  - name: kv
    from: rows
    ops:
      - key: {json: k}
      - value: {json: v, as: text}
sinks:
  - name: copy
    type: postgres
    from: kv
    table: $(yq "$t_copy")
    columns: [$(yq "$c_key=key"), $(yq "$c_val=value")]
    create_table: true
  - name: up
    type: postgres
    from: kv
    table: $(yq "$t_up")
    mode: upsert
    columns: [$(yq "$c_key=key"), $(yq "$c_val=value")]
    key_columns: [$(yq "$c_key")]
    create_table: true
YAML
sl_start inj "$SL_TMP/inj.yaml"
pid=$SL_LAST_PID
sl_wait_port "$port" 20 || sl_fail "sluice did not listen on $port"
nc -N 127.0.0.1 "$port" <"$SL_TMP/rows.jsonl"

read_rows() { # TABLE: "hex(key) hex(value)" per row, sorted
    q "SELECT encode(convert_to($(ident "$c_key"), 'UTF8'), 'hex') || ' ' || encode(convert_to($(ident "$c_val"), 'UTF8'), 'hex') FROM $(ident "$1")" 2>/dev/null | LC_ALL=C sort
}
n_is() { [ "$(q "SELECT count(*) FROM $(ident "$1")" 2>/dev/null)" = "$2" ]; }
check "all rows reach both tables within 30 s" sl_wait_until 30 bash -c "$(declare -f q ident n_is); n_is '${t_copy//\'/\'\\\'\'}' $nrows && n_is '${t_up//\'/\'\\\'\'}' $nrows"
sleep 1
sl_stop "$pid" || true
check "COPY wrote every byte literally" diff <(read_rows "$t_copy") "$SL_TMP/expected.txt"
check "array parameters wrote every byte literally" diff <(read_rows "$t_up") "$SL_TMP/expected.txt"
check "the victim table is intact" test "$(q "SELECT string_agg(id || ':' || note, ',' ORDER BY id) FROM $victim")" = "1:keep,2:keep"
check "no other table appeared or vanished" test "$(q "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN ('$(printf '%s' "$t_copy" | sed "s/'/''/g")', '$(printf '%s' "$t_up" | sed "s/'/''/g")')")" = "$tables_before"
check "the record holding NUL is skipped and logged" grep -q "record skipped .*not valid UTF-8 text (or holds NUL)" "$SL_TMP/inj.log"
check "no sink error was logged" bash -c "! grep -q '\[error\]' '$SL_TMP/inj.log'"

# Options that try to smuggle SQL are refused at load.
sed "s/mode: upsert/mode: \"upsert; DROP TABLE $victim\"/" "$SL_TMP/inj.yaml" >"$SL_TMP/bad1.yaml"
timeout 20 "$SLUICE_BIN" run "$SL_TMP/bad1.yaml" >/dev/null 2>"$SL_TMP/bad1.log" && rc=0 || rc=$?
check "a mode with SQL in it is refused at load" test "$rc" -ne 0
check "... and the message names the option" grep -q "mode" "$SL_TMP/bad1.log"
sed "s/$(yq "$c_val=value" | sed 's/[]\/$*.^[]/\\&/g')/\"v=value); DROP TABLE $victim; --\"/" "$SL_TMP/inj.yaml" >"$SL_TMP/bad2.yaml"
timeout 20 "$SLUICE_BIN" run "$SL_TMP/bad2.yaml" >/dev/null 2>"$SL_TMP/bad2.log" && rc=0 || rc=$?
check "a column source with SQL in it is refused at load" test "$rc" -ne 0
check "... and the message names it" grep -q "unknown source 'value); DROP TABLE" "$SL_TMP/bad2.log"
check "the victim table is still intact" test "$(q "SELECT count(*) FROM $victim")" = 2

finish

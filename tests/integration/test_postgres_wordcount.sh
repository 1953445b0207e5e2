#!/usr/bin/env bash
# test_postgres_wordcount.sh -- a word count over TCP into PostgreSQL in increment mode: two
# senders, the text spread over several batches, words with quotes, backslashes, semicolons
# and non-ASCII letters. The table, read with psql, equals an independent count of the text
# (tr | sort | uniq -c), and the commit table has one row per batch.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

id="$$_$RANDOM"
table="wordcount_$id"
app="pg_wordcount_$id"
sl_pg "$app" "$table"

# 20000 lines of 0 to 12 words from a 10-word vocabulary.
sl_words "$SL_TMP/text.txt" 20000 11 0 12 spark streaming sluice kafka "it's" '"quoted"' \
    'back\slash' 'semi;colon' Grüße x
sl_word_counts "$SL_TMP/text.txt" >"$SL_TMP/expected.txt"
total=$(awk '{ s += $2 } END { print s }' "$SL_TMP/expected.txt")
[ "$(wc -l <"$SL_TMP/expected.txt")" -eq 10 ] || sl_fail "the generated text lacks words"

port=$(sl_free_port)
{
    sl_tcp_wordcount_yaml "$app" "$port"
    cat <<YAML
sinks:
  - name: db
    type: postgres
    from: counts
    table: $table
    mode: increment
    columns: [word=key, count=num, updated=batch_time]
    key_columns: [word]
    create_table: true
YAML
} >"$SL_TMP/wc.yaml"
sl_start wc "$SL_TMP/wc.yaml"
pid=$SL_LAST_PID
sl_wait_port "$port" 20 || sl_fail "sluice did not listen on $port"

sl_paced "$SL_TMP/text.txt" 1 10000 | nc -N 127.0.0.1 "$port" &
first=$!
sl_paced "$SL_TMP/text.txt" 10001 20000 | nc -N 127.0.0.1 "$port"
wait "$first"

counted() { [ "$(q "SELECT coalesce(sum(count), 0) FROM $table" 2>/dev/null)" = "$total" ]; }
check "all $total words counted within 60 s" sl_wait_until 60 counted
sleep 1 # a batch that would count too much would land now
sl_stop "$pid" || true
check "sluice stopped cleanly" bash -c "! grep -q '\[error\]' '$SL_TMP/wc.log'"
q "SELECT word || ' ' || count FROM $table ORDER BY word COLLATE \"C\"" >"$SL_TMP/got.txt"
check "table equals the independent count (psql vs awk)" diff "$SL_TMP/got.txt" "$SL_TMP/expected.txt"
batches=$(q "SELECT count(*) FROM sluice_commits WHERE pipeline = '$app' AND sink = 'db'")
dups=$(q "SELECT count(*) FROM (SELECT batch_time FROM sluice_commits WHERE pipeline = '$app' GROUP BY batch_time HAVING count(*) > 1) d")
check "one commit row per batch ($batches batches)" test "$batches" -ge 3 -a "$dups" -eq 0
check "updated holds a batch time" test "$(q "SELECT count(*) FROM $table WHERE updated IS NULL OR updated < now() - interval '10 minutes'")" -eq 0

finish

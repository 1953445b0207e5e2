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
awk 'BEGIN {
    srand(11)
    n = split("spark streaming sluice kafka it'"'"'s \"quoted\" back\\slash semi;colon Grüße x", v, " ")
    for (i = 0; i < 20000; i++) {
        k = int(rand() * 13); line = ""
        for (j = 0; j < k; j++) line = line (j ? " " : "") v[1 + int(rand() * n)]
        print line
    }
}' >"$SL_TMP/text.txt"
tr -s ' ' '\n' <"$SL_TMP/text.txt" | grep -v '^$' | LC_ALL=C sort | uniq -c |
    awk '{ print $2 " " $1 }' >"$SL_TMP/expected.txt"
total=$(awk '{ s += $2 } END { print s }' "$SL_TMP/expected.txt")
[ "$(wc -l <"$SL_TMP/expected.txt")" -eq 10 ] || sl_fail "the generated text lacks words"

port=$(sl_free_port)
cat >"$SL_TMP/wc.yaml" <<YAML
app:
  name: $app
  batch_interval: 500ms
sources:
  - name: lines
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $port
streams:
  - name: counts
    from: lines
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: {fn: sum, partitions: 3}
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
sl_start wc "$SL_TMP/wc.yaml"
pid=$SL_LAST_PID
sl_wait_port "$port" 20 || sl_fail "sluice did not listen on $port"

paced() { # FIRST LAST: the lines in 5 chunks, 0.3 s apart
    local i step=$((($2 - $1 + 1) / 5))
    for i in 0 1 2 3 4; do
        sed -n "$(($1 + i * step)),$(($1 + i * step + step - 1))p" "$SL_TMP/text.txt"
        sleep 0.3
    done
}
paced 1 10000 | nc -N 127.0.0.1 "$port" &
first=$!
paced 10001 20000 | nc -N 127.0.0.1 "$port"
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

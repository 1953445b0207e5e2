#!/usr/bin/env bash
# test_redis_wordcount.sh -- a word count over TCP into a Redis hash with HINCRBY: two
# senders, the text spread over several batches, words with quotes, backslashes, semicolons
# and non-ASCII letters. The hash, read with redis-cli, equals an independent count of the
# text (tr | sort | uniq -c), and there is one commit key per batch.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

trap 'unfinished; sl_cleanup' EXIT

sl_server redis Redis
r() { timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw "$@"; }

id="$$_$RANDOM"
hash="wordcount:$id"
app="redis_wordcount_$id"
prefix="sluice:commit:$app:"
trap 'unfinished; r DEL "$hash" >/dev/null 2>&1 || true; r --scan --pattern "$prefix*" 2>/dev/null | while read -r k; do r DEL "$k" >/dev/null; done || true; sl_cleanup' EXIT

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
  - name: kv
    type: redis
    from: counts
    host: $REDIS_HOST
    port: $REDIS_PORT
    command: hincrby
    key: "$hash"
    field: "{key}"
    pipeline_depth: 100
YAML
} >"$SL_TMP/wc.yaml"
sl_start wc "$SL_TMP/wc.yaml"
pid=$SL_LAST_PID
sl_wait_port "$port" 20 || sl_fail "sluice did not listen on $port"

sl_paced "$SL_TMP/text.txt" 1 10000 | nc -N 127.0.0.1 "$port" &
first=$!
sl_paced "$SL_TMP/text.txt" 10001 20000 | nc -N 127.0.0.1 "$port"
wait "$first"

hsum() { r HVALS "$hash" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
counted() { [ "$(hsum)" = "$total" ]; }
check "all $total words counted within 60 s" sl_wait_until 60 counted
sleep 1 # a batch that would count too much would land now
sl_stop "$pid" || true
check "sluice stopped cleanly" bash -c "! grep -q '\\[error\\]' '$SL_TMP/wc.log'"
r HGETALL "$hash" | paste -d' ' - - | LC_ALL=C sort >"$SL_TMP/got.txt"
check "hash equals the independent count (redis-cli vs awk)" diff "$SL_TMP/got.txt" "$SL_TMP/expected.txt"
batches=$(r --scan --pattern "$prefix*" | wc -l)
check "a commit key per batch ($batches batches)" test "$batches" -ge 3
check "commit keys hold the batch's inputs" bash -c "r() { redis-cli -h '$REDIS_HOST' -p '$REDIS_PORT' --raw \"\$@\"; }; k=\$(r --scan --pattern '$prefix*' | head -n 1); r GET \"\$k\" | grep -q '^{.lines.:'"

finish

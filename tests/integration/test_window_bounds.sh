#!/usr/bin/env bash
# test_window_bounds.sh -- window bounds in sinks: PostgreSQL columns window_start and
# window_end, Redis key placeholders {window_start} and {window_end}. A word count per batch
# (append) and the same count over a 2 s window sliding by 500 ms (upsert on word and
# window_end, and a Redis hash per window) from a generated input. Read back with psql: every
# window spans 2 s and ends on a slide boundary, every batch row spans one batch interval;
# the batches' totals equal the input (awk), every word is in length / slide = 4 windows, and
# each window holds exactly the batches whose bounds lie inside its own. Read back with
# redis-cli: the hashes hold the same windows as the table.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

id="$$_$RANDOM"
tb="win_batches_$id"
tw="win_windows_$id"
app="pg_windows_$id"
sl_pg "$app" "$tb" "$tw"
sl_server redis Redis
r() { timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw "$@"; }
rprefix="win:$id:"
trap 'unfinished; sl_pg_drop; r --scan --pattern "$rprefix*" 2>/dev/null | while read -r k; do r DEL "$k" >/dev/null; done || true; r --scan --pattern "sluice:commit:$app:*" 2>/dev/null | while read -r k; do r DEL "$k" >/dev/null; done || true; sl_cleanup' EXIT

# 3000 lines "a b c", "b c", "c" in turn at 1500 lines/s: a 1000, b 2000, c 3000.
cat >"$SL_TMP/win.yaml" <<YAML
app:
  name: $app
  batch_interval: 500ms
sources:
  - name: lines
    type: generate
    text: "a b c\nb c\nc"
    rate: 1500
    count: 3000
streams:
  - name: words
    from: lines
    ops:
      - split: whitespace
      - key: value
      - value: 1
  - name: per_batch
    from: words
    ops:
      - reduce_by_key: {fn: sum}
  - name: per_window
    from: words
    ops:
      - reduce_by_key_and_window: {fn: sum, length: 2s, slide: 500ms}
sinks:
  - name: batches
    type: postgres
    from: per_batch
    table: $tb
    mode: append
    columns: [word=key, n=num, ws=window_start, we=window_end]
    create_table: true
  - name: windows
    type: postgres
    from: per_window
    table: $tw
    mode: upsert
    columns: [word=key, n=num, ws=window_start, we=window_end, we_ms=window_end::bigint]
    key_columns: [word, we]
    create_table: true
  - name: hashes
    type: redis
    from: per_window
    host: $REDIS_HOST
    port: $REDIS_PORT
    command: hset
    key: "$rprefix{window_start}-{window_end}"
    field: "{key}"
    value: "{value}"
YAML
expected="a 1000
b 2000
c 3000"
total=6000

sl_start win "$SL_TMP/win.yaml"
pid=$SL_LAST_PID
# Every word is in 4 windows: all of them are written 2 s after the last batch with input.
windowed() { [ "$(q "SELECT coalesce(sum(n), 0) FROM $tw" 2>/dev/null)" = "$((4 * total))" ]; }
check "every word counted in 4 windows within 60 s" sl_wait_until 60 windowed
sleep 1.5 # a window counted twice would land now
sl_stop "$pid" || true
check "sluice stopped without errors" bash -c "! grep -q '\[error\]' '$SL_TMP/win.log'"

check "the windows hold 4 x $total words, no more" test "$(q "SELECT sum(n) FROM $tw")" -eq $((4 * total))
got=$(q "SELECT word || ' ' || sum(n) FROM $tb GROUP BY word ORDER BY word")
check "the batches' counts equal the input (psql vs the generated text)" test "$got" = "$expected"
got=$(q "SELECT word || ' ' || sum(n) FROM $tw GROUP BY word ORDER BY word")
check "each word's windows add up to 4 x its count" \
    test "$got" = "$(awk '{ print $1, 4 * $2 }' <<<"$expected")"

check "every batch row spans the batch interval (500 ms)" \
    test "$(q "SELECT count(*) FROM $tb WHERE we - ws <> interval '500 milliseconds'")" -eq 0
check "every window row spans the window's length (2 s)" \
    test "$(q "SELECT count(*) FROM $tw WHERE we - ws <> interval '2 seconds'")" -eq 0
check "window ends are slide boundaries and match the bigint column" \
    test "$(q "SELECT count(*) FROM $tw WHERE we_ms % 500 <> 0 OR we_ms <> (extract(epoch FROM we) * 1000)::bigint")" -eq 0
check "several windows were written" test "$(q "SELECT count(DISTINCT we) FROM $tw")" -ge 8

# A window is the sum of the batches inside its bounds: [ws, we) covers batch ends in (ws, we].
mismatch=$(q "SELECT count(*) FROM $tw w WHERE w.n <> (SELECT coalesce(sum(b.n), 0) FROM $tb b
              WHERE b.word = w.word AND b.we > w.ws AND b.we <= w.we)")
check "each window equals the sum of the batches within its bounds" test "$mismatch" -eq 0
empty=$(q "SELECT count(*) FROM $tb b WHERE NOT EXISTS (SELECT 1 FROM $tw w WHERE w.word = b.word
           AND b.we > w.ws AND b.we <= w.we)")
check "every batch row lies in some window" test "$empty" -eq 0

# Redis: one hash per window, "win:<id>:<start ms>-<end ms>", word -> count.
r --scan --pattern "$rprefix*" | while read -r k; do
    bounds=${k#"$rprefix"}
    r HGETALL "$k" | paste - - | while read -r word n; do
        echo "${bounds%-*} ${bounds#*-} $word $n"
    done
done | sort >"$SL_TMP/redis_windows.txt"
q "SELECT (extract(epoch FROM ws) * 1000)::bigint || ' ' || we_ms || ' ' || word || ' ' || n
   FROM $tw" | sort >"$SL_TMP/pg_windows.txt"
check "the Redis hashes hold the table's windows, keyed by their bounds (redis-cli vs psql)" \
    diff "$SL_TMP/redis_windows.txt" "$SL_TMP/pg_windows.txt"
check "Redis window keys span 2 s" \
    test "$(awk '$2 - $1 != 2000' "$SL_TMP/redis_windows.txt" | wc -l)" -eq 0

finish

#!/usr/bin/env bash
# test_tcp_wal_exactly_once_kill9.sh -- a tcp source with its write-ahead log (wal: true),
# killed with kill -9 three times mid-stream and restarted with the same checkpoint
# directory: the word counts per batch in PostgreSQL (increment) equal an independent count
# (awk) of every line sluice accepted. The text goes in 4 phases, one per run; a phase is
# sent (paced, over several batches), then the test waits until /api/v1/status says sluice
# received all of its lines, then kills sluice at once: the last lines are in no batch yet,
# the batches before them may be pending. Every line sent is accepted, so a line lost at a
# crash leaves the table short and a line counted twice leaves it long.
set -euo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
set -e
sl_setup

id="$$_$RANDOM"
table="tcpwal_$id"
app="tcp_wal_$id"
sl_pg "$app" "$table"

# 4 phases of 2000 lines of 1 to 8 words from a 30-word vocabulary.
phase_lines=2000
phases=4
# shellcheck disable=SC2046
sl_words "$SL_TMP/text.txt" $((phase_lines * phases)) 41 1 8 $(seq -f 'w%g' 1 30)
sl_word_counts "$SL_TMP/text.txt" >"$SL_TMP/expected.txt"
total=$(awk '{ s += $2 } END { print s }' "$SL_TMP/expected.txt")

port=$(sl_free_port)
http=$(sl_free_port)
cat >"$SL_TMP/wal.yaml" <<YAML
app:
  name: $app
  batch_interval: 300ms
  workers: 2
  checkpoint_dir: $SL_TMP/ckpt
http: {listen: "127.0.0.1:$http"}
sources:
  - name: lines
    type: tcp
    mode: listen
    host: 127.0.0.1
    port: $port
    wal: true
    wal_segment_size: 64KiB
streams:
  - name: counts
    from: lines
    ops:
      - burn: 1ms                   # slow batches: a kill finds some pending
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: sum
sinks:
  - name: db
    type: postgres
    from: counts
    table: $table
    mode: increment
    columns: [word=key, count=num]
    key_columns: [word]
    create_table: true
YAML

pg_total() { q "SELECT coalesce(sum(count), 0) FROM $table" 2>/dev/null || echo 0; }
status() { curl -s --max-time 5 "http://127.0.0.1:$http/api/v1/status" 2>/dev/null || true; }
received() {
    local r
    r=$(status | jq -r '.records_received // 0' 2>/dev/null) || true
    echo "${r:-0}"
}
active() { [ "$(status | jq -r '.receivers_active // 0' 2>/dev/null)" = 1 ]; }
received_at_least() { [ "$(received)" -ge "$1" ]; }
# Words in lines 1..N of the text.
words_upto() { head -n "$1" "$SL_TMP/text.txt" | wc -w | tr -d ' '; }

early=0
for k in $(seq 1 $phases); do
    sl_start "run$k" "$SL_TMP/wal.yaml"
    pid=$SL_LAST_PID
    sl_wait_port "$port" 20 || sl_fail "run $k: sluice did not listen on $port"
    # The receiver is active once the log's unprocessed lines were pushed again.
    sl_wait_until 20 active || sl_fail "run $k: the receiver did not become active"
    base=$(received)
    first=$(((k - 1) * phase_lines + 1))
    last=$((k * phase_lines))
    sl_paced "$SL_TMP/text.txt" "$first" "$last" | nc -N 127.0.0.1 "$port"
    sl_wait_until 30 received_at_least $((base + phase_lines)) ||
        sl_fail "run $k: sluice received $(($(received) - base)) of $phase_lines lines"
    if [ "$k" -lt "$phases" ]; then
        kill -KILL "$pid"
        wait "$pid" 2>/dev/null || true
        counted=$(pg_total)
        sent=$(words_upto "$last")
        sl_log "crash $k: $counted of the $sent words accepted counted in PostgreSQL"
        [ "$counted" -ge "$sent" ] || early=$((early + 1))
    fi
done
check "every crash came before its lines were all counted ($early of $((phases - 1)))" \
    test "$early" -eq $((phases - 1))

all_counted() { [ "$(pg_total)" -ge "$total" ]; }
check "all $total words counted within 60 s" sl_wait_until 60 all_counted
sleep 2 # a few more batches: anything counted twice would show
check "sluice stops cleanly" sl_stop "$pid"
check "the restarts recovered from the checkpoint" \
    grep -q "recovering from the checkpoint" "$SL_TMP/run2.log"
check "batches pending at a crash ran again" \
    bash -c "cat '$SL_TMP'/run*.log | grep -Eq '[1-9][0-9]* to run again'"
check "lines were pushed again from the write-ahead log" \
    bash -c "cat '$SL_TMP'/run*.log | grep -q 'pushed again from the write-ahead log'"
q "SELECT word || ' ' || count FROM $table ORDER BY word COLLATE \"C\"" >"$SL_TMP/got.txt"
check "PostgreSQL equals the independent count of the accepted lines ($total words)" \
    diff "$SL_TMP/expected.txt" "$SL_TMP/got.txt"
finish

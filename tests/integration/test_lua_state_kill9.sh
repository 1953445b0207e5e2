#!/usr/bin/env bash
# test_lua_state_kill9.sh -- stateful Lua under kill -9: Kafka direct -> a Lua flat_map
# (words, each with the typed value 1) -> update_state in Lua (a running count per word, the
# state a table kept as JSON text in the checkpoint) -> PostgreSQL (upsert). sluice is
# killed with kill -9 at 5 random moments and restarted each time; the table ends with
# exactly the counts of an independent count of the text (awk): nothing lost, nothing
# counted twice, the Lua state restored from the checkpoint.
source "$(dirname "$0")/lib.sh"
it_setup 240

kafka_up
bash "$SLUICE_SRC/tests/infra/postgres.sh" start >/dev/null || it_abort "postgres does not start"
set -a
source "$SLUICE_STATE/postgres/env"
set +a

topic=$(it_unique lua)
table=$(echo "$topic" | tr -- '-' '_')
kafka_topic "$topic" 4

# 6000 lines of 1 to 8 words from a 40-word vocabulary, produced before sluice starts.
kafka_words "$topic" 6000 8 40 97

cat >"$IT_TMP/lua.yaml" <<YAML
app:
  name: $topic
  batch_interval: 300ms
  workers: 2
  checkpoint_dir: $IT_TMP/ckpt
sources:
  - name: lines
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$topic]
    start: earliest
    max_rate_per_partition: 150     # 45 lines per partition per batch: about 33 batches
streams:
  - name: counts
    from: lines
    ops:
      - flat_map:
          lua: |
            function(r)
              local out = {}
              for w in r.value:gmatch("%S+") do out[#out + 1] = {key = w, value = w, num = 1} end
              return out
            end
      - update_state:
          lua: |
            function(word, values, state)
              local s = state or {word = word, count = 0}
              for _, r in ipairs(values) do s.count = s.count + r.num end
              return s
            end
          partitions: 3
      - map: {lua: "function(r) local s = json.decode(r.value) return {num = s.count} end"}
sinks:
  - name: db
    type: postgres
    from: counts
    table: $table
    mode: upsert
    columns: [word=key, count=num]
    key_columns: [word]
    create_table: true
YAML

pg_total() {
    psql -qtAX -c "SELECT COALESCE(SUM(count), 0) FROM \"$table\"" 2>/dev/null || echo 0
}

for k in 1 2 3 4 5; do
    it_sluice "run-$k" "$IT_TMP/lua.yaml"
    pid=$IT_LAST_PID
    sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.4 + rand() * 1.2 }')"
    it_kill9 "$pid"
    it_log "crash $k after $(pg_total) of $total words in PostgreSQL"
done
it_check "the crashes came before the end" test "$(pg_total)" -lt "$total"
it_sluice final "$IT_TMP/lua.yaml"
pid=$IT_LAST_PID
all_counted() { [ "$(pg_total)" -ge "$total" ]; }
it_wait_until "$(it_left)" all_counted || it_bad "not everything counted in time: $(pg_total) of $total"
sleep 1 # one more batch: anything counted twice would show
it_check "sluice stops cleanly" it_stop "$pid"
it_check "recovery from the checkpoint after the crashes" \
    it_grep_log final "recovering from the checkpoint"
psql -qtAX -F ' ' -c "SELECT word, count FROM \"$table\" ORDER BY word" | sort >"$IT_TMP/pg.txt"
it_check "PostgreSQL equals the independent count ($total words)" \
    diff "$IT_TMP/expected.txt" "$IT_TMP/pg.txt"
psql -qtAX -c "DROP TABLE IF EXISTS \"$table\"" >/dev/null 2>&1 || true
it_finish

#!/usr/bin/env bash
# test_exactly_once_kill9.sh -- the batch commit protocol end to end, with a checkpoint
# directory and sluice killed with kill -9 at 5 random moments and restarted each time:
#  1. Kafka direct -> word count per batch -> PostgreSQL (increment), Redis (HINCRBY) and
#     the file sink at once: each sink equals an independent count of the text (awk).
#  2. Kafka direct -> running counts per word (state, checkpointed) -> PostgreSQL (upsert):
#     the table ends with exactly the state of an uninterrupted run, the same counts.
# Nothing lost, nothing counted twice.
source "$(dirname "$0")/lib.sh"
it_setup 280

kafka_up
bash "$SLUICE_SRC/tests/infra/postgres.sh" start >/dev/null || it_abort "postgres does not start"
bash "$SLUICE_SRC/tests/infra/redis.sh" start >/dev/null || it_abort "redis does not start"
set -a
source "$SLUICE_STATE/postgres/env"
source "$SLUICE_STATE/redis/env"
set +a

topic=$(it_unique eo)
table=$(echo "$topic" | tr -- '-' '_')
hash="sluice:test:$topic"
kafka_topic "$topic" 4

# 6000 lines of 1 to 8 words from a 40-word vocabulary, produced before sluice starts.
kafka_words "$topic" 6000 8 40 97

# write_config FILE CASE: the pipeline of case 1 (per batch) or 2 (running state).
write_config() {
    local file=$1 case=$2
    if [ "$case" = 1 ]; then
        ops="      - reduce_by_key: sum"
        pg="    mode: increment"
    else
        ops="      - running: {fn: sum}"
        pg="    mode: upsert"
    fi
    cat >"$file" <<YAML
app:
  name: $topic-$case
  batch_interval: 300ms
  workers: 2
  checkpoint_dir: $IT_TMP/ckpt$case
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
      - split: whitespace
      - key: value
      - value: 1
$ops
sinks:
  - name: db
    type: postgres
    from: counts
    table: ${table}_$case
$pg
    columns: [word=key, count=num]
    key_columns: [word]
    create_table: true
  - name: kv
    type: redis
    from: counts
    host: $REDIS_HOST
    port: $REDIS_PORT
    command: hincrby
    key: $hash
    field: "{key}"
  - name: files
    type: file
    from: counts
    prefix: $IT_TMP/out/wc
YAML
    if [ "$case" = 2 ]; then # only the table: running totals are not increments
        sed -i '/^  - name: kv$/,$d' "$file"
    fi
}

pg_total() { # CASE
    psql -qtAX -c "SELECT COALESCE(SUM(count), 0) FROM \"${table}_$1\"" 2>/dev/null || echo 0
}

# crash_and_finish CASE: five crashes at random moments, each followed by a restart, then a
# last run to the end.
crash_and_finish() {
    local case=$1 k pid
    write_config "$IT_TMP/eo$case.yaml" "$case"
    for k in 1 2 3 4 5; do
        it_sluice "run$case-$k" "$IT_TMP/eo$case.yaml"
        pid=$IT_LAST_PID
        sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.4 + rand() * 1.2 }')"
        it_kill9 "$pid"
        it_log "case $case: crash $k after $(pg_total "$case") of $total words in PostgreSQL"
    done
    it_check "case $case: the crashes came before the end" test "$(pg_total "$case")" -lt "$total"
    it_sluice "final$case" "$IT_TMP/eo$case.yaml"
    pid=$IT_LAST_PID
    all_counted() { [ "$(pg_total "$case")" -ge "$total" ]; }
    it_wait_until "$(it_left)" all_counted ||
        it_bad "case $case: not everything counted in time: $(pg_total "$case") of $total"
    sleep 1 # one more batch: anything counted twice would show
    it_check "case $case: sluice stops cleanly" it_stop "$pid"
    it_check "case $case: recovery from the checkpoint after the crashes" \
        it_grep_log "final$case" "recovering from the checkpoint"
    psql -qtAX -F ' ' -c "SELECT word, count FROM \"${table}_$case\" ORDER BY word" |
        sort >"$IT_TMP/pg$case.txt"
    it_check "case $case: PostgreSQL equals the independent count ($total words)" \
        diff "$IT_TMP/expected.txt" "$IT_TMP/pg$case.txt"
    psql -qtAX -c "DROP TABLE IF EXISTS \"${table}_$case\"" >/dev/null 2>&1 || true
}

crash_and_finish 1
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw HGETALL "$hash" | paste - - -d ' ' |
    sort >"$IT_TMP/redis.txt"
it_check "case 1: Redis equals the independent count" diff "$IT_TMP/expected.txt" "$IT_TMP/redis.txt"
it_file_records "$IT_TMP/out" wc | awk '
    /^\(.*,[0-9]+\)$/ { s = substr($0, 2, length($0) - 2); i = index(s, ",")
                        c[substr(s, 1, i - 1)] += substr(s, i + 1) }
    END { for (w in c) print w, c[w] }' | sort >"$IT_TMP/files.txt"
it_check "case 1: the file sink equals the independent count" \
    diff "$IT_TMP/expected.txt" "$IT_TMP/files.txt"
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL "$hash" >/dev/null 2>&1 || true

crash_and_finish 2
it_finish

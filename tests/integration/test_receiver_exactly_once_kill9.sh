#!/usr/bin/env bash
# test_receiver_exactly_once_kill9.sh -- a Kafka receiver with its write-ahead log, killed
# with kill -9 at 5 random moments and restarted each time: word counts per batch into
# PostgreSQL (increment) and Redis (HINCRBY) each equal an independent count of the text
# (awk). The batches pending at a crash run again with the records the checkpoint names in
# the log, at the same batch time, so the sinks skip those they had written; the records
# after them come back from the log as new batches; nothing is counted twice.
source "$(dirname "$0")/lib.sh"
it_setup 280

kafka_up
bash "$SLUICE_SRC/tests/infra/postgres.sh" start >/dev/null || it_abort "postgres does not start"
bash "$SLUICE_SRC/tests/infra/redis.sh" start >/dev/null || it_abort "redis does not start"
set -a
source "$SLUICE_STATE/postgres/env"
source "$SLUICE_STATE/redis/env"
set +a

topic=$(it_unique reo)
table=$(echo "$topic" | tr -- '-' '_')
hash="sluice:test:$topic"
kafka_topic "$topic" 4

# 6000 lines of 1 to 8 words from a 40-word vocabulary, produced before sluice starts.
kafka_words "$topic" 6000 8 40 97

cat >"$IT_TMP/reo.yaml" <<YAML
app:
  name: $topic
  batch_interval: 300ms
  workers: 2
  checkpoint_dir: $IT_TMP/ckpt
sources:
  - name: lines
    type: kafka
    mode: receiver
    brokers: $KAFKA_BOOTSTRAP
    topics: [$topic]
    group: $topic
    group_instance_id: only
    start: earliest
    wal: true
    wal_segment_size: 64KiB
    max_rate: 700                   # lines per second: about 9 s for all of them
    properties: [session.timeout.ms=6000, heartbeat.interval.ms=500]
streams:
  - name: counts
    from: lines
    ops:
      - burn: 1ms                   # slow batches: a kill often finds one pending
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
  - name: kv
    type: redis
    from: counts
    host: $REDIS_HOST
    port: $REDIS_PORT
    command: hincrby
    key: $hash
    field: "{key}"
YAML

pg_total() {
    psql -qtAX -c "SELECT COALESCE(SUM(count), 0) FROM \"$table\"" 2>/dev/null || echo 0
}

for k in 1 2 3 4 5; do
    it_sluice "run$k" "$IT_TMP/reo.yaml"
    pid=$IT_LAST_PID
    sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.5 + rand() * 1.0 }')"
    it_kill9 "$pid"
    it_log "crash $k after $(pg_total) of $total words in PostgreSQL"
done
it_check "the crashes came before the end" test "$(pg_total)" -lt "$total"
it_sluice "final" "$IT_TMP/reo.yaml"
pid=$IT_LAST_PID
all_counted() { [ "$(pg_total)" -ge "$total" ]; }
it_wait_until "$(it_left)" all_counted ||
    it_bad "not everything counted in time: $(pg_total) of $total"
sleep 2 # a few more batches: anything counted twice would show
it_check "sluice stops cleanly" it_stop "$pid"
it_check "recovery from the checkpoint after the crashes" \
    it_grep_log final "recovering from the checkpoint"
psql -qtAX -F ' ' -c "SELECT word, count FROM \"$table\" ORDER BY word" | sort >"$IT_TMP/pg.txt"
it_check "PostgreSQL equals the independent count ($total words)" \
    diff "$IT_TMP/expected.txt" "$IT_TMP/pg.txt"
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw HGETALL "$hash" | paste - - -d ' ' |
    sort >"$IT_TMP/redis.txt"
it_check "Redis equals the independent count" diff "$IT_TMP/expected.txt" "$IT_TMP/redis.txt"
psql -qtAX -c "DROP TABLE IF EXISTS \"$table\"" >/dev/null 2>&1 || true
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL "$hash" >/dev/null 2>&1 || true
it_finish

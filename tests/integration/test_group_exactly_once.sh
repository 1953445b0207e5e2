#!/usr/bin/env bash
# test_group_exactly_once.sh -- exactly once across a consumer group (issue 14): instances
# of one pipeline in one Kafka consumer group, 8 partitions, word counts per batch into
# PostgreSQL (increment) and Redis (HINCRBY), both recording their input positions. Whatever
# happens to the instances the sinks end equal to an independent count (awk): nothing lost,
# nothing counted twice. The run: two instances; one killed -9 at random moments and
# restarted with its old checkpoint, four times; one stopped gracefully while another is
# added; then three instances to the end.
source "$(dirname "$0")/lib.sh"
it_setup 300

kafka_up
infra_up postgres PostgreSQL
infra_up redis Redis

topic=$(it_unique grp)
table=$(echo "$topic" | tr -- '-' '_')
hash="sluice:test:$topic"
group="$topic-g"
kafka_topic "$topic" 8

# 16000 lines of 1 to 8 words from a 50-word vocabulary, produced before sluice starts.
kafka_words "$topic" 16000 8 50 101

# config INSTANCE: the pipeline as that instance runs it (its own checkpoint directory).
config() {
    local f="$IT_TMP/$1.yaml"
    cat >"$f" <<YAML
app:
  name: $topic
  batch_interval: 300ms
  workers: 2
  checkpoint_dir: $IT_TMP/ckpt-$1
sources:
  - name: lines
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$topic]
    group: $group
    group_instance_id: $1
    start: earliest
    max_rate_per_partition: 60      # 18 lines per partition per batch
    properties: session.timeout.ms=6000,heartbeat.interval.ms=1000
streams:
  - name: counts
    from: lines
    ops:
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
    instance: $1
    columns: [word=key, count=num]
    key_columns: [word]
    create_table: true
  - name: kv
    type: redis
    from: counts
    host: $REDIS_HOST
    port: $REDIS_PORT
    instance: $1
    command: hincrby
    key: $hash
    field: "{key}"
YAML
    echo "$f"
}

pg_total() {
    psql -qtAX -c "SELECT COALESCE(SUM(count), 0) FROM \"$table\"" 2>/dev/null || echo 0
}
rnd() { # LOW HIGH: a random number of seconds
    awk -v s="$RANDOM" -v lo="$1" -v hi="$2" 'BEGIN { srand(s); printf "%.2f", lo + rand() * (hi - lo) }'
}

declare -A pid
runs=0
start() { # INSTANCE
    runs=$((runs + 1))
    it_sluice "$1-$runs" "$(config "$1")"
    pid[$1]=$IT_LAST_PID
    it_log "started $1 (run $runs, pid ${pid[$1]})"
}

start a
start b
sleep 3
for k in 1 2 3 4; do
    victim=$([ $((RANDOM % 2)) = 0 ] && echo a || echo b)
    sleep "$(rnd 0.5 2.5)"
    it_kill9 "${pid[$victim]}"
    it_log "kill -9 $victim after $(pg_total) of $total words in PostgreSQL"
    sleep "$(rnd 0 2)"
    start "$victim" # with its old checkpoint
done
it_check "the crashes came before the end" test "$(pg_total)" -lt "$total"
it_check "b stops gracefully" it_stop "${pid[b]}"
start c # scale up while b is gone
sleep "$(rnd 1 3)"
start b # three instances to the end

all_counted() { [ "$(pg_total)" -ge "$total" ]; }
it_wait_until "$(it_left)" all_counted ||
    it_bad "not everything counted in time: $(pg_total) of $total"
sleep 2 # a few more batches: anything counted twice would show
for i in a b c; do
    it_check "$i stops cleanly" it_stop "${pid[$i]}"
done
it_check "an instance resumed a partition where the sinks were" \
    bash -c "cat '$IT_TMP'/*.log | grep -q 'starts at offset [0-9]* (where the sinks are)'"

psql -qtAX -F ' ' -c "SELECT word, count FROM \"$table\" ORDER BY word" | sort >"$IT_TMP/pg.txt"
it_check "PostgreSQL equals the independent count ($total words)" \
    diff "$IT_TMP/expected.txt" "$IT_TMP/pg.txt"
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw HGETALL "$hash" | paste - - -d ' ' |
    sort >"$IT_TMP/redis.txt"
it_check "Redis equals the independent count" diff "$IT_TMP/expected.txt" "$IT_TMP/redis.txt"
psql -qtAX -c "DROP TABLE IF EXISTS \"$table\"" >/dev/null 2>&1 || true
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" DEL "$hash" >/dev/null 2>&1 || true
it_finish

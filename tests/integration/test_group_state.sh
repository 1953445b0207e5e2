#!/usr/bin/env bash
# test_group_state.sh -- keyed state across a consumer group: a running total per word
# (`running: sum`, state that lives for the whole run) kept by instances of one pipeline in
# one Kafka consumer group, whose state moves with the partitions it belongs to through a
# changelog topic. Two stages in one file: stage 1 counts the words of each batch of lines
# and writes the counts to a repartition topic keyed by word (transactional kafka sink);
# stage 2 reads that topic by key (read_committed), keeps the running total of each word,
# logs the changes of that state to a compacted changelog topic and upserts the totals into
# PostgreSQL. Whatever happens to the instances, every word's total in the table ends equal
# to an independent count (awk): nothing lost, nothing counted twice. The run: two
# instances; one killed -9 at random moments and restarted with its old checkpoint, three
# times; one stopped gracefully while a third is added, then started again: three to the
# end. Also checked: the changelog topic holds the state, and the repartition topic's
# committed counts add up to the input's words (each batch's counts delivered once).
#
# Windows the same way, on event time: stage 1 also writes every word as a message of its
# own keyed by word, with its line's timestamp (transactional); stage 3 counts each word in
# hopping windows of 40 ms every 20 ms of those timestamps (`time: event`), whose open
# windows move with the partitions through a second changelog, and upserts each word's
# window into PostgreSQL by its end. After the input, one message per partition with a later
# time closes the last windows. The table must equal the windows computed by awk from the
# lines' timestamps as kcat reads them: what one uninterrupted instance gives.
source "$(dirname "$0")/lib.sh"
it_setup 360

kafka_up
infra_up postgres PostgreSQL

topic=$(it_unique gstate)
table=$(echo "$topic" | tr -- '-' '_')
kafka_topic "$topic" 8
kafka_topic "$topic-by-word" 8
kafka_topic "$topic-totals-changelog" 8 --config cleanup.policy=compact
kafka_topic "$topic-words" 8
kafka_topic "$topic-windows-changelog" 8 --config cleanup.policy=compact

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
  - name: lines                     # stage 1: lines of words
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$topic]
    group: $topic-g
    group_instance_id: $1
    start: earliest
    max_rate_per_partition: 60      # 18 lines per partition per batch
    properties: session.timeout.ms=6000,heartbeat.interval.ms=1000
  - name: words                     # stage 2: the repartition topic, read by key
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$topic-by-word]
    group: $topic-w
    group_instance_id: $1
    start: earliest
    properties: session.timeout.ms=6000,heartbeat.interval.ms=1000,isolation.level=read_committed
  - name: occurrences               # stage 3: each word with its line's time, read by key
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$topic-words]
    group: $topic-x
    group_instance_id: $1
    start: earliest
    properties: session.timeout.ms=6000,heartbeat.interval.ms=1000,isolation.level=read_committed
streams:
  - name: perbatch
    from: lines
    ops:
      - split: whitespace
      - key: value
      - value: 1
      - reduce_by_key: sum
  - name: totals
    from: words
    ops:
      - value: number
      - running: {fn: sum}
  - name: each                      # stage 1: every word, keyed by itself, at its line's time
    from: lines
    ops:
      - split: whitespace
      - key: value
  - name: windows                   # stage 3: per word, windows of the messages' own time
    from: occurrences
    ops:
      # Stage 1 reads its partitions at different paces (and again after a crash), so a
      # partition of words is out of order by up to the lines' span (about a second).
      - reduce_by_key_and_window: {fn: count, length: 40ms, slide: 20ms, time: event,
                                   max_out_of_orderness: 5s}
sinks:
  - name: wstate                    # the open windows move with the partitions of words
    type: kafka
    from: windows
    changelog: true
    brokers: $KAFKA_BOOTSTRAP
    topic: $topic-windows-changelog
    group: $topic-x
    instance: $1
  - name: wdb
    type: postgres
    from: windows
    table: ${table}_w
    mode: upsert
    instance: $1
    columns: [word=key, we=window_end::bigint, n=num]
    key_columns: [word, we]
    create_table: true
  - name: spread
    type: kafka
    from: each
    brokers: $KAFKA_BOOTSTRAP
    topic: $topic-words
    transactional: true
    group: $topic-g-words           # its own record of the input it holds
    instance: $1
  - name: state                     # the state of running moves with the partitions of words
    type: kafka
    from: totals
    changelog: true
    brokers: $KAFKA_BOOTSTRAP
    topic: $topic-totals-changelog
    group: $topic-w
    instance: $1
  - name: exchange                  # the repartition topic: keyed by word, murmur2 as Java
    type: kafka
    from: perbatch
    brokers: $KAFKA_BOOTSTRAP
    topic: $topic-by-word
    transactional: true
    group: $topic-g
    instance: $1                    # partitioner: murmur2_random, the default
  - name: db
    type: postgres
    from: totals
    table: $table
    mode: upsert
    instance: $1
    columns: [word=key, total=num]
    key_columns: [word]
    create_table: true
YAML
    echo "$f"
}

pg_total() { # [TABLE COLUMN]
    psql -qtAX -c "SELECT COALESCE(SUM(${2:-total}), 0) FROM \"${1:-$table}\"" 2>/dev/null || echo 0
}
rnd() { # LOW HIGH: a random number of seconds
    awk -v s="$RANDOM" -v lo="$1" -v hi="$2" 'BEGIN { srand(s); printf "%.2f", lo + rand() * (hi - lo) }'
}
# Messages of a topic a read_committed consumer sees: "key value" each.
committed() {
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$1" -X isolation.level=read_committed -e -q -f '%k %s\n'
}

declare -A pid
runs=0
start() { # INSTANCE
    runs=$((runs + 1))
    it_sluice "$1-$runs" "$(config "$1")"
    pid[$1]=$IT_LAST_PID
    it_log "started $1 (run $runs, pid ${pid[$1]})"
}

"$SLUICE_BIN" check "$(config a)" >"$IT_TMP/check.log" 2>&1 ||
    it_abort "the pipeline does not load: $(grep -m 1 -i error "$IT_TMP/check.log")"
start a
start b
sleep 3
for k in 1 2 3; do
    victim=$([ $((RANDOM % 2)) = 0 ] && echo a || echo b)
    sleep "$(rnd 0.5 2.5)"
    it_kill9 "${pid[$victim]}"
    it_log "kill -9 $victim (crash $k) at $(pg_total) of $total words in PostgreSQL"
    sleep "$(rnd 0 2)"
    start "$victim" # with its old checkpoint
done
it_check "the crashes came before the end" test "$(pg_total)" -lt "$total"
it_check "b stops gracefully" it_stop "${pid[b]}"
start c # scale up while b is gone: b's partitions and their state move
sleep "$(rnd 1 3)"
start b # three instances to the end

# Waits (150 s at most) until the table's sum stops changing: 5 s at the expected total, or
# 30 s at another (what was lost or doubled is not coming back).
limit=$(($(it_left) - 40))
[ "$limit" -le 150 ] || limit=150
deadline=$((SECONDS + limit))
last=-1
since=$SECONDS
while [ $SECONDS -lt $deadline ]; do
    sum=$(pg_total)
    if [ "$sum" != "$last" ]; then
        last=$sum
        since=$SECONDS
    fi
    if [ "$sum" = "$total" ] && [ $((SECONDS - since)) -ge 5 ]; then
        break
    fi
    [ $((SECONDS - since)) -lt 30 ] || break
    sleep 1
done
it_eq "the table's total settles at the number of words" "$total" "$(pg_total)"

# The windows: the expected ones from the lines' timestamps (each word in the windows
# ending 20 and 40 ms after the start of its 20 ms: the lines are produced within a
# fraction of a second), then one message per partition of
# the words' topic, later than any line by more than the disorder, to close the last windows.
kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -q -f '%T\t%s\n' |
    awk -F '\t' '{ p = int($1 / 20) * 20; a = sprintf("%.0f", p + 20); b = sprintf("%.0f", p + 40)
        n = split($2, w, " "); for (i = 1; i <= n; i++) { c[w[i] "@" a]++; c[w[i] "@" b]++ } }
        END { for (k in c) print k, c[k] }' | sort >"$IT_TMP/expected-windows.txt"
last_ts=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -q -f '%T\n' | sort -n | tail -1)
while [ "$(date +%s%3N)" -le $((last_ts + 5300)) ]; do sleep 0.5; done
for p in 0 1 2 3 4 5 6 7; do
    printf '~end%d\tclose\n' "$p" |
        kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic-words" -p "$p" -K $'\t' ||
        it_abort "kcat could not produce to $topic-words"
done
wtotal=$(awk '{ s += $2 } END { print s + 0 }' "$IT_TMP/expected-windows.txt")
for _ in $(seq 1 30); do # the last windows close within seconds
    [ "$(pg_total "${table}_w" n)" = "$wtotal" ] && break
    sleep 1
done
it_eq "the windows' counts add up to twice the number of words" "$((2 * total))" \
    "$(pg_total "${table}_w" n)"
for i in a b c; do
    it_check "$i stops cleanly" it_stop "${pid[$i]}"
done
it_check "an instance resumed a partition where the sinks were" \
    bash -c "cat '$IT_TMP'/*.log | grep -q 'starts at offset [0-9]* (where the sinks are)'"
it_log "log lines about restores: $(cat "$IT_TMP"/*.log | grep -ci 'restor' || true)"

# compare SQL NAME [EXPECTED]: every word's figure (from SQL: "word n" rows) against the
# independent count (expected.txt): nothing lost, nothing doubled.
compare() {
    local want="${3:-$IT_TMP/expected.txt}"
    psql -qtAX -F ' ' -c "$1" | sort >"$IT_TMP/pg-$2.txt"
    awk -v out="$IT_TMP/lost-doubled-$2.txt" 'NR == FNR { want[$1] = $2; next } { got[$1] = $2 }
        END {
            for (w in want) {
                words++
                if (!(w in got)) { missing++; lost += want[w] }
                else if (got[w] + 0 < want[w]) { short++; lost += want[w] - got[w] }
                else if (got[w] + 0 > want[w]) { over++; doubled += got[w] - want[w] }
                else exact++
            }
            for (w in got) if (!(w in want)) unknown++
            printf "%d words: %d exact, %d short by %d in all, %d over by %d in all, %d missing, %d unknown\n",
                words, exact, short, lost, over, doubled, missing, unknown
            print lost + 0, doubled + 0 >out
        }' "$want" "$IT_TMP/pg-$2.txt" | tee "$IT_TMP/summary-$2.txt"
    local lost doubled
    read -r lost doubled <"$IT_TMP/lost-doubled-$2.txt"
    it_eq "$2: word counts lost" 0 "$lost"
    it_eq "$2: word counts doubled" 0 "$doubled"
    it_check "$2: PostgreSQL equals the independent count ($total words)" \
        diff "$want" "$IT_TMP/pg-$2.txt"
}
compare "SELECT word, total FROM \"$table\"" "running totals"
compare "SELECT word || '@' || we, n FROM \"${table}_w\" WHERE word NOT LIKE '~%'" "windows" \
    "$IT_TMP/expected-windows.txt"
it_log "$(wc -l <"$IT_TMP/expected-windows.txt") windows of $(awk '{ split($1, k, "@"); print k[2] }' \
    "$IT_TMP/expected-windows.txt" | sort -u | wc -l) ends"

# The stages' topics, as a read_committed consumer sees them.
committed "$topic-by-word" | awk 'NF == 2 { c[$1] += $2 } END { for (w in c) print w, c[w] }' |
    sort >"$IT_TMP/by-word.txt"
it_eq "the repartition topic's committed counts add up to the words" "$total" \
    "$(awk '{ s += $2 } END { print s + 0 }' "$IT_TMP/by-word.txt")"
it_check "the repartition topic's committed counts per word equal the independent count" \
    diff "$IT_TMP/expected.txt" "$IT_TMP/by-word.txt"
for c in totals windows; do
    changes=$(committed "$topic-$c-changelog" | wc -l | tr -d ' ')
    it_check "the $c changelog topic holds state changes ($changes)" test "$changes" -gt 0
done

it_log "summary: running totals $(cat "$IT_TMP/summary-running totals.txt");" \
    "windows $(cat "$IT_TMP/summary-windows.txt"); $runs runs, 3 crashes, 1 graceful stop"
psql -qtAX -c "DROP TABLE IF EXISTS \"$table\", \"${table}_w\"" >/dev/null 2>&1 || true
it_finish

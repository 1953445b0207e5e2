#!/usr/bin/env bash
# test_changelog_restart_pending.sh -- a pipeline whose keyed state has a changelog, killed
# -9 while batches it generated had not completed (nothing in PostgreSQL or the changelog
# yet), then restarted with its checkpoint. Those batches do not run again (the state comes
# from the changelog), so every partition must be read again from where the last completed
# batch left it: the running totals per word in PostgreSQL end equal to the input's (awk).
# Before the fix, the source continued after the generated batches and their input was lost
# (issue 14: test_group_state lost 0.4 % of its totals that way).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

it_setup 150
kafka_up
infra_up postgres PostgreSQL

topic=$(it_unique clpend)
table=$(echo "$topic" | tr -- '-' '_')
kafka_topic "$topic" 4
kafka_topic "$topic-changelog" 4 --config cleanup.policy=compact

# 2000 messages keyed by word (20 words), each worth 1 to 3.
awk -v seed="$RANDOM" 'BEGIN { srand(seed)
    for (i = 0; i < 2000; i++) printf "w%d\t%d\n", int(rand() * 20), 1 + int(rand() * 3) }' \
    >"$IT_TMP/input.tsv"
kafka_produce "$topic" "$IT_TMP/input.tsv"
awk -F'\t' '{ s[$1] += $2 } END { for (w in s) print w, s[w] }' "$IT_TMP/input.tsv" |
    sort >"$IT_TMP/expected.txt"
total=$(awk '{ s += $2 } END { print s }' "$IT_TMP/expected.txt")

# 50 messages per partition per batch, each burning 10 ms of a worker: a batch takes about
# a second, so at the crash some are generated and none has completed.
cat >"$IT_TMP/p.yaml" <<YAML
app:
  name: $topic
  batch_interval: 200ms
  workers: 2
  checkpoint_dir: $IT_TMP/ckpt
sources:
  - name: kin
    type: kafka
    brokers: $KAFKA_BOOTSTRAP
    topics: [$topic]
    group: $topic-g
    group_instance_id: a
    start: earliest
    max_rate_per_partition: 250
    properties: session.timeout.ms=6000,heartbeat.interval.ms=1000
streams:
  - name: totals
    from: kin
    ops:
      - burn: 10ms
      - value: number
      - running: {fn: sum}
sinks:
  - name: state
    type: kafka
    from: totals
    changelog: true
    brokers: $KAFKA_BOOTSTRAP
    topic: $topic-changelog
    group: $topic-g
    instance: a
  - name: db
    type: postgres
    from: totals
    table: $table
    mode: upsert
    instance: a
    columns: [word=key, total=num]
    key_columns: [word]
    create_table: true
YAML

pg_total() {
    psql -qtAX -c "SELECT COALESCE(SUM(total), 0) FROM \"$table\"" 2>/dev/null || echo 0
}

it_sluice run1 "$IT_TMP/p.yaml"
pid=$IT_LAST_PID
it_wait_until 40 it_grep_log run1 "kin: group $topic-g assigned" ||
    it_abort "the source was not assigned its partitions: $(tail -3 "$IT_TMP/run1.log")"
sleep 0.6
it_kill9 "$pid"
it_eq "nothing reached PostgreSQL before the crash" 0 "$(pg_total)"
it_check "the checkpoint holds generated batches" \
    grep -rqa '"pending":\[{' "$IT_TMP/ckpt/metadata"

it_sluice run2 "$IT_TMP/p.yaml"
deadline=$((SECONDS + $(it_left) - 10))
last=-1
since=$SECONDS
while [ $SECONDS -lt $deadline ]; do
    now=$(pg_total)
    [ "$now" != "$last" ] && since=$SECONDS && last=$now
    [ "$now" = "$total" ] && [ $((SECONDS - since)) -ge 3 ] && break
    [ $((SECONDS - since)) -ge 20 ] && break
    sleep 0.5
done
psql -qtAX -F ' ' -c "SELECT word, total FROM \"$table\" ORDER BY word" | sort >"$IT_TMP/got.txt"
it_eq "the total in PostgreSQL" "$total" "$(pg_total)"
it_check "every word's total equals the input's (awk)" \
    diff "$IT_TMP/expected.txt" "$IT_TMP/got.txt"
it_check "the restart does not continue after the batches that did not complete" \
    bash -c "! grep -q '(the checkpoint)' '$IT_TMP/run2.log'"
it_finish

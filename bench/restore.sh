#!/usr/bin/env bash
# restore.sh -- keyed state that moves with its partitions (changelogs), on the real broker
# and PostgreSQL of tests/infra (started if not running), with the two-stage pipeline of
# tests/integration/test_group_state.sh (word counts per batch -> a repartition topic keyed
# by word -> running totals per word, their changes in a compacted changelog topic, upserted
# into PostgreSQL):
#  1. restore speed: one instance counts KEYS distinct words (KEYS states in the changelog)
#     and stops; the same group member restarted with an empty checkpoint directory restores
#     every task from the changelog. Records, bytes, ms, MB/s and records/s from its
#     /api/v1/status ("restore"), against kcat reading the same changelog topic
#     (read_committed) in the same run;
#  2. moving state: three instances while a second pass over the words flows (rate-limited);
#     one is killed with kill -9 and not restarted. The time from the kill until the
#     survivors read each of its partitions again, for the stateless stage (lines: the
#     baseline) and the stateful one (words: its state restored first), and the time until
#     every word is counted.
# Prints figures; the only check is that the table ends right (a warning otherwise).
#
#   bash bench/restore.sh [KEYS]      (default 300000)
#
# Needs kcat, psql, curl and jq. SLUICE_STATE selects the test servers (tests/infra);
# KEEP=1 keeps the pipelines and logs; RESTORE_WAIT (s, default 600) bounds the restore.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SLUICE_BUILD:-build}
keys=${1:-300000}
bin=$build/sluice
[ -x "$bin" ] || { echo "restore.sh: no $bin (build first)" >&2; exit 1; }
for c in kcat psql curl jq; do
    command -v "$c" >/dev/null || { echo "restore.sh: $c is not installed" >&2; exit 1; }
done
export SLUICE_STATE=${SLUICE_STATE:-/tmp/sluice-infra}
for s in kafka postgres; do
    bash tests/infra/$s.sh status >/dev/null 2>&1 || bash tests/infra/$s.sh start >/dev/null
done
set -a
. "$SLUICE_STATE/postgres/env"
set +a
bootstrap=$(cat "$SLUICE_STATE/kafka/bootstrap")
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
tmp=$(mktemp -d)
run=$$
topic=bench-rst-$run
table=bench_rst_$run
parts=8
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    q "DROP TABLE IF EXISTS $table" >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" = 1 ]; then echo "restore.sh: logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

for t in "$topic" "$topic-by-word"; do
    bash tests/infra/kafka.sh topic "$t" $parts >/dev/null 2>&1
done
bash tests/infra/kafka.sh topic "$topic-totals-changelog" $parts \
    --config cleanup.policy=compact >/dev/null 2>&1
# KEYS distinct words, five a line, each line with its own key (spread over the
# partitions); each pass over them adds 1 to every word's total.
awk -v n="$keys" 'BEGIN { for (i = 0; i < n; i += 5) { l = ""
    for (j = i; j < i + 5 && j < n; j++) l = l (j > i ? " " : "") "w" j; print "l" i "\t" l } }' \
    >"$tmp/lines.txt"
lines=$(wc -l <"$tmp/lines.txt")
produce() { kcat -P -b "$bootstrap" -t "$topic" -K $'\t' -X linger.ms=20 -l "$tmp/lines.txt"; }

config() { # NAME INSTANCE RATE_PER_PARTITION (0: no cap)
    cat >"$tmp/$1.yaml" <<YAML
app: {name: $topic, batch_interval: 300ms, workers: 2, checkpoint_dir: $tmp/ckpt-$1}
http: {listen: "127.0.0.1:0"}
sources:
  - {name: lines, type: kafka, brokers: $bootstrap, topics: [$topic], group: $topic-g,
     group_instance_id: $2, start: earliest, max_rate_per_partition: $3,
     properties: "session.timeout.ms=6000,heartbeat.interval.ms=1000"}
  - {name: words, type: kafka, brokers: $bootstrap, topics: [$topic-by-word], group: $topic-w,
     group_instance_id: $2, start: earliest,
     properties: "session.timeout.ms=6000,heartbeat.interval.ms=1000,\
       isolation.level=read_committed"}
streams:
  - name: perbatch
    from: lines
    ops: [{split: whitespace}, {key: value}, {value: 1}, {reduce_by_key: sum}]
  - name: totals
    from: words
    ops: [{value: number}, {running: {fn: sum}}]
sinks:
  - {name: state, type: kafka, from: totals, changelog: true, brokers: $bootstrap,
     topic: $topic-totals-changelog, group: $topic-w, instance: $2}
  - {name: exchange, type: kafka, from: perbatch, brokers: $bootstrap, topic: $topic-by-word,
     transactional: true, group: $topic-g, instance: $2}
  - {name: db, type: postgres, from: totals, table: $table, mode: upsert, instance: $2,
     columns: [word=key, total=num], key_columns: [word], create_table: true}
YAML
    echo "$tmp/$1.yaml"
}
start() { # NAME INSTANCE RATE: starts sluice; its pid in pid_NAME
    "$bin" run "$(config "$1" "$2" "$3")" >"$tmp/$1.log" 2>&1 &
    pids+=($!)
    eval "pid_$1=$!"
}
stop() { # NAME: SIGTERM, then waits
    local p
    eval "p=\$pid_$1"
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
alive() { # NAME
    local p
    eval "p=\$pid_$1"
    kill -0 "$p" 2>/dev/null || { echo "restore.sh: sluice $1 exited; tail of its log:" >&2
        tail -n 20 "$tmp/$1.log" >&2; exit 1; }
}
url() { # NAME: the status page's URL from the log (once it serves)
    local u=""
    while [ -z "$u" ]; do
        alive "$1"
        u=$(grep -o 'status page at http://[^ ]*' "$tmp/$1.log" 2>/dev/null | tail -n 1 |
            awk '{ print $4 }')
        [ -n "$u" ] || sleep 0.1
    done
    echo "${u%/}"
}
rows() { q "SELECT COUNT(*) FROM $table" 2>/dev/null || echo 0; }
sum() { q "SELECT COALESCE(SUM(total), 0) FROM $table" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
ratio() { # A B: A / B, or ? when either is not a positive number
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "?" }'
}
mbps() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.1f", (ms > 0 ? b / 1e6 / (ms / 1000) : 0) }'; }
rps() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", (ms > 0 ? n / (ms / 1000) : 0) }'; }
wait_until() { # TIMEOUT_S NAME command...: polls until the command succeeds
    local end=$(($(date +%s) + $1)) name="$2"
    shift 2
    until "$@"; do
        alive "$name"
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
}

# ==== 1. Restore speed ====
produce
t0=$(now)
start fill a 0
filled() { [ "$(rows)" -ge "$keys" ]; }
wait_until 1800 fill filled ||
    { echo "restore.sh: fill: $(rows) of $keys words in time" >&2; exit 1; }
t1=$(now)
sleep 2 # the last batch's changelog transaction
stop fill

restored() { # the status page reports a restore of every task
    curl -sf "$rurl/api/v1/status" >"$tmp/status.json" 2>/dev/null &&
        jq -e --argjson n $parts '(.restore.tasks // 0) >= $n' "$tmp/status.json" >/dev/null
}
t_start=$(now)
start restore a 0 # the same member, an empty checkpoint directory
rurl=$(url restore)
if wait_until "${RESTORE_WAIT:-600}" restore restored; then
    read -r r_tasks r_records r_bytes r_ms < <(jq -r \
        '.restore | "\(.tasks) \(.records) \(.bytes) \(.ms)"' "$tmp/status.json")
else
    echo "restore.sh: no restore of $parts tasks in $rurl/api/v1/status:" \
        "$(jq -c '.restore' "$tmp/status.json" 2>/dev/null || echo none)" >&2
    r_tasks=0 r_records=0 r_bytes=0 r_ms=0
fi
# last_start SOURCE PARTITIONS AFTER LOG...: when (epoch s) the last of PARTITIONS (space-
# separated; empty: any) of SOURCE started to be read after AFTER (epoch s) in the logs;
# empty unless each of them did.
last_start() {
    local src="$1" want="$2" after="$3" ts p t seen=" " last=0
    shift 3
    while read -r ts _ _ _ p _; do
        p=${p#[}
        p=${p%]}
        [ -z "$want" ] || [[ " $want " == *" $p "* ]] || continue
        t=$(date -d "$ts" +%s.%N)
        awk -v t="$t" -v a="$after" 'BEGIN { exit !(t > a) }' || continue
        seen="$seen$p "
        last=$(awk -v t="$t" -v l="$last" 'BEGIN { printf "%.3f", (t > l ? t : l) }')
    done < <(cat "$@" | grep -E "\] $src: .* \[[0-9]+\] starts at offset")
    for p in $want; do
        [[ "$seen" == *" $p "* ]] || return 0
    done
    [ "$seen" = " " ] || echo "$last"
}
# When the last partition of words was read again, from the process's start.
t_resumed=$(last_start words "" 0 "$tmp/restore.log")
restore_lines=$(grep -i 'restor' "$tmp/restore.log" | grep -v -i librdkafka |
    head -n $((parts + 2)) || true)
stop restore

# The baseline: kcat reads the same changelog (key and value bytes).
k0=$(now)
read -r k_records k_bytes < <(kcat -C -b "$bootstrap" -t "$topic-totals-changelog" \
    -X isolation.level=read_committed -e -q -f '%K %S\n' |
    awk '{ n++; b += ($1 > 0 ? $1 : 0) + ($2 > 0 ? $2 : 0) } END { print n + 0, b + 0 }')
k1=$(now)
k_ms=$(awk -v a="$k0" -v b="$k1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')

# ==== 2. Moving state: losing 1 of 3 ====
produce # the second pass
rate=$(((lines / parts + 39) / 40)) # about 40 s of input
for i in x y z; do start "$i" "$i" "$rate"; done
for i in x y z; do eval "url_$i=\$(url $i)"; done
read_lines() { # lines the three instances read (the second pass)
    local i u v n=0
    for i in x y z; do
        eval "u=\$url_$i"
        v=$(curl -sf "$u/api/v1/inputs" 2>/dev/null |
            jq '[.[] | select(.name == "lines") | .records] | add // 0' 2>/dev/null || true)
        n=$((n + ${v:-0}))
    done
    echo "$n"
}
quarter() { [ "$(read_lines)" -ge $((lines / 4)) ]; }
wait_until 900 x quarter || { echo "restore.sh: the second pass does not flow" >&2; exit 1; }
# The victim's partitions: its last assignment of each source.
victim_parts() { # SOURCE
    grep -E "\] $1: group .* assigned" "$tmp/z.log" | tail -n 1 | grep -oE '\[[0-9]+\]' |
        tr -d '[]' | tr '\n' ' '
}
z_lines=$(victim_parts lines)
z_words=$(victim_parts words)
resume_after() { # SOURCE PARTITIONS: seconds from the kill to the last of them read again
    local t
    t=$(last_start "$1" "$2" "$t_kill" "$tmp/x.log" "$tmp/y.log")
    if [ -n "$t" ]; then secs "$t_kill" "$t"; else echo "?"; fi
}
t_kill=$(now)
kill -9 "$pid_z"
wait "$pid_z" 2>/dev/null || true
resumed() { # the survivors read every partition of the victim again
    [ "$(resume_after lines "$z_lines")" != "?" ] && [ "$(resume_after words "$z_words")" != "?" ]
}
wait_until 120 x resumed || true
last_sum=-1
since=$(date +%s)
done2() { # every word counted twice, or the table's sum has not moved for 30 s
    local s
    s=$(sum)
    [ "$s" = "$last_sum" ] || { last_sum=$s; since=$(date +%s); }
    [ "$s" -ge $((2 * keys)) ] || [ $(($(date +%s) - since)) -ge 30 ]
}
wait_until 900 x done2 || true
t_done=$(now)
res_lines=$(resume_after lines "$z_lines")
res_words=$(resume_after words "$z_words")
kill_restores=$(for i in x y; do grep -i 'restor' "$tmp/$i.log" | grep -v -i librdkafka; done |
    while read -r ts rest; do
        t=$(date -d "$ts" +%s.%N 2>/dev/null) || continue
        awk -v t="$t" -v a="$t_kill" 'BEGIN { exit !(t > a) }' && echo "$ts $rest"
    done | head -n $((parts + 2)) || true)
for i in x y; do stop "$i"; done
final_rows=$(rows)
final_sum=$(sum)

# ==== Figures ====
load=$(cut -d' ' -f1-3 /proc/loadavg)
printf '\nkeyed state in a changelog: %d words (states), %d partitions, 300ms batches (load %s)\n' \
    "$keys" "$parts" "$load"
printf '\nfilling: %d states in %s s (%.0f words/s through both stages, changelog, PostgreSQL)\n' \
    "$keys" "$(secs "$t0" "$t1")" "$(rps "$keys" "$(secs "$t0" "$t1" | awk '{ print $1 * 1000 }')")"
printf '\nrestore by a fresh instance (empty checkpoint directory):\n\n'
printf '| read | tasks | records | MB | ms | MB/s | records/s | vs kcat |\n'
printf '|---|---|---|---|---|---|---|---|\n'
k_mbps=$(mbps "$k_bytes" "$k_ms")
r_mbps=$(mbps "$r_bytes" "$r_ms")
printf '| sluice restore (/api/v1/status) | %s | %s | %.1f | %s | %s | %s | %s |\n' "$r_tasks" \
    "$r_records" "$(awk -v b="$r_bytes" 'BEGIN { print b / 1e6 }')" "$r_ms" "$r_mbps" \
    "$(rps "$r_records" "$r_ms")" "$(ratio "$r_mbps" "$k_mbps")"
printf '| kcat, read_committed, whole topic | %s | %s | %.1f | %s | %s | %s | 1.00 |\n' "$parts" \
    "$k_records" "$(awk -v b="$k_bytes" 'BEGIN { print b / 1e6 }')" "$k_ms" "$k_mbps" \
    "$(rps "$k_records" "$k_ms")"
printf '\nfrom its start to the last partition of words read again: %s s\n' \
    "$([ -n "$t_resumed" ] && secs "$t_start" "$t_resumed" || echo "?")"
if [ -n "$restore_lines" ]; then
    printf 'its restore log lines:\n%s\n' "$(sed 's/^/  /' <<<"$restore_lines")"
fi
printf '\nlosing 1 of 3 instances (kill -9, not restarted; session.timeout.ms 6000;'
printf ' %d lines/s per partition):\n\n' "$rate"
printf '| stage | its partitions | read again by a survivor after | vs stateless |\n'
printf '|---|---|---|---|\n'
printf '| lines (stateless) | %s| %s s | 1.00 |\n' "$z_lines" "$res_lines"
printf '| words (state restored from the changelog) | %s| %s s | %s |\n' "$z_words" "$res_words" \
    "$(ratio "$res_words" "$res_lines")"
if [ "$final_sum" -ge $((2 * keys)) ]; then
    printf '\nevery word counted twice %s s after the kill\n' "$(secs "$t_kill" "$t_done")"
fi
if [ -n "$kill_restores" ]; then
    printf 'the survivors'"'"' restore log lines after the kill:\n%s\n' \
        "$(sed 's/^/  /' <<<"$kill_restores")"
fi
if [ "$final_rows" != "$keys" ] || [ "$final_sum" != $((2 * keys)) ]; then
    printf '\nWARNING: the table holds %s words totalling %s; expected %s totalling %s\n' \
        "$final_rows" "$final_sum" "$keys" $((2 * keys))
fi

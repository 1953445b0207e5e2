#!/usr/bin/env bash
# test_event_sessions_postgres.sh -- session windows on event time from the real Kafka into the
# real PostgreSQL, and the late output. JSON events {"user", "at" (ms)} produced with kcat in
# five rounds (each processed before the next: the watermark moves between them), counted
# per user in sessions of a 10 s gap with 60 s of allowed lateness, upserted by user and the
# session's bounds. Round 2 has a late event that bridges two emitted sessions of ann: their
# rows must go (the tombstones) and the merged session's come. Round 4 has events later than
# the lateness: they go to the `late:` stream, written by a file sink (JSON) and read with jq.
# sluice is killed (-9) after round 2 and started again. The table read with psql must equal the sessions that an independent computation (awk,
# below) makes of the events, and the late file the events it finds late.
source "$(dirname "$0")/lib.sh"
it_setup 240

kafka_up
infra_up postgres PostgreSQL
q() { timeout 30 psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

topic=$(it_unique sessions)
table=$(echo "$topic" | tr -- '-' '_')
kafka_topic "$topic" 1
trap 'q "DROP TABLE IF EXISTS \"$table\"; DELETE FROM sluice_commits WHERE pipeline = '"'"'$topic'"'"'" >/dev/null 2>&1 || true; it_cleanup' EXIT

GAP=10000
LATENESS=60000
T0=1796644800000 # 2026-12-07T12:00:00Z
{
    it_yaml_kafka_head "$topic" "$topic" "$topic-g"
    cat <<YAML
    group_instance_id: $topic-i
streams:
  - name: per_user
    from: kin
    ops:
      - key: {json: user}
      - timestamp: {json: at, format: ms}
      - reduce_by_key_and_window: {fn: count, gap: 10s, time: event, allowed_lateness: 60s, late: too_late}
sinks:
  - name: db
    type: postgres
    from: per_user
    table: $table
    mode: upsert
    columns: [usr=key, ws=window_start, we=window_end, n=num]
    key_columns: [usr, ws, we]
    create_table: true
  - name: late
    type: file
    from: too_late
    prefix: $IT_TMP/late/batch
    format: json
YAML
} >"$IT_TMP/s.yaml"
mkdir -p "$IT_TMP/late"
it_sluice s "$IT_TMP/s.yaml"
pid=$IT_LAST_PID

# round N user offset_s ...: produces the events of round N (offsets from T0 in seconds) and
# keeps them, with their round, in events.txt.
round() {
    local r="$1" f="$IT_TMP/round$1.tsv"
    shift
    : >"$f"
    while [ $# -gt 0 ]; do
        printf '%s\t{"user":"%s","at":%d}\n' "$1" "$1" $((T0 + $2 * 1000)) >>"$f"
        printf '%s %s %d\n' "$r" "$1" $((T0 + $2 * 1000)) >>"$IT_TMP/events.txt"
        shift 2
    done
    kafka_produce "$topic" "$f"
}
rows() {
    q "SELECT usr, ws_ms, we_ms, n FROM (SELECT usr, (extract(epoch FROM ws) * 1000)::bigint - $T0 AS ws_ms, (extract(epoch FROM we) * 1000)::bigint - $T0 AS we_ms, n FROM \"$table\") t ORDER BY usr, ws_ms" 2>/dev/null | tr '\n' ' '
}
has() { [ "$(rows)" = "$1" ]; }
late_values() { it_file_records "$IT_TMP/late" batch | jq -r '.value' | tr '\n' ' '; }
has_late() { [ "$(late_values)" = "$1" ]; }

# Round 1: ann [0, 15 s) and [22 s, 32 s), bob [2 s, 12 s); cy at 40 s: the watermark passes them.
round 1 ann 0 ann 5 bob 2 ann 22 cy 40
it_check "round 1: the sessions the watermark passed are written with their bounds" \
    it_wait_until 60 has "ann|0|15000|2 ann|22000|32000|1 bob|2000|12000|1 "
# Round 2: ann at 14 s bridges her two sessions: [0, 32 s) with 4 events, the old rows gone.
round 2 ann 14
it_check "round 2: a late event bridging two sessions replaces their rows by the merged one" \
    it_wait_until 30 has "ann|0|32000|4 bob|2000|12000|1 "
# A crash: the open sessions (ann's merged one, cy's) come back from the checkpoint, and the
# input after it is read again from Kafka (the table's rows are not written twice).
it_kill9 "$pid"
it_sluice s2 "$IT_TMP/s.yaml"
pid=$IT_LAST_PID
# (round 3 must come in a batch of its own, after the restart's replay)
it_check "restarted: the partition is assigned again" \
    it_wait_until 60 it_grep_log s2 "assigned 1 partitions"
sleep 2
# Round 3: dan at 200 s: cy's session closes, everything before 140 s is past the lateness.
round 3 dan 200
it_check "round 3: cy's session is written" \
    it_wait_until 30 has "ann|0|32000|4 bob|2000|12000|1 cy|40000|50000|1 "
# Round 4: ann at 16 s and bob at 100 s are later than the lateness; eve at 195 s is not.
round 4 ann 16 bob 100 eve 195
want_late="{\"user\":\"ann\",\"at\":$((T0 + 16000))} {\"user\":\"bob\",\"at\":$((T0 + 100000))} "
it_check "round 4: the events later than the lateness reach the late stream, as they came in" \
    it_wait_until 30 has_late "$want_late"
# Round 5: dan at 300 s closes dan's and eve's sessions.
round 5 dan 300
it_wait_until 30 has "ann|0|32000|4 bob|2000|12000|1 cy|40000|50000|1 dan|200000|210000|1 eve|195000|205000|1 " || true

# The independent computation: per round, an event is late when its own session
# [at, at + gap) meets no open session and ends at least the lateness before the watermark
# (the highest time of the rounds before); else it joins (merges) the sessions it overlaps. A
# session whose end is the lateness behind the watermark takes no more events. The sessions
# whose end the final watermark passed are what the table must hold.
awk -v gap=$GAP -v late=$LATENESS -v t0=$T0 -v lf="$IT_TMP/late.expected" '
    $1 != cur {
        cur = $1; wm = hi
        for (u in users) for (i = 1; i <= n[u]; i++)
            if (open[u, i] && e[u, i] + late <= wm) open[u, i] = 0 # takes no more events
    }
    {
        u = $2; at = $3; lo = at; end = at + gap; joined = 0
        for (i = 1; i <= n[u]; i++) if (open[u, i] && s[u, i] < end && at < e[u, i]) joined = 1
        if (!joined && wm != "" && at + gap + late <= wm) {
            late_list = late_list "{\"user\":\"" u "\",\"at\":" at "} "
            next
        }
        c = 1
        for (i = 1; i <= n[u]; i++) {
            if (open[u, i] && s[u, i] < end && lo < e[u, i]) {
                lo = s[u, i] < lo ? s[u, i] : lo; end = e[u, i] > end ? e[u, i] : end
                c += cnt[u, i]; open[u, i] = 0; gone[u, i] = 1
            }
        }
        k = ++n[u]; s[u, k] = lo; e[u, k] = end; cnt[u, k] = c; open[u, k] = 1; users[u] = 1
        if (hi == "" || at > hi) hi = at
    }
    END {
        for (u in users) for (i = 1; i <= n[u]; i++)
            if (!gone[u, i] && e[u, i] <= hi) printf "%s|%d|%d|%d\n", u, s[u, i] - t0, e[u, i] - t0, cnt[u, i]
        printf "%s", late_list > lf
    }' "$IT_TMP/events.txt" | sort -t'|' -k1,1 -k2,2n | tr '\n' ' ' >"$IT_TMP/expected.txt"
it_eq "the table equals the sessions computed by awk from the events" "$(cat "$IT_TMP/expected.txt")" "$(rows)"
it_eq "the late file equals the events awk finds late" "$(cat "$IT_TMP/late.expected")" "$(late_values)"
it_eq "the late events are counted too" "2" \
    "$(grep -c 'came after the watermark passed every window' "$IT_TMP/s2.log" || true)"
it_stop "$pid" || true
it_check "sluice stopped without errors" bash -c "! grep -q '\\[error\\]' '$IT_TMP/s.log' '$IT_TMP/s2.log'"
it_finish

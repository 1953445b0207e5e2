#!/usr/bin/env bash
# test_example_clicks_per_page_postgres.sh -- config/examples/clicks-per-page-postgres.yaml as
# it ships, against the real Kafka and PostgreSQL: 2400 JSON clicks over 4 minutes of their
# own time (up to 4 s out of order, some with a +01:00 offset or a fraction of a second) on a
# topic of 3 partitions, a few clicks without a valid time, then in each partition one later
# click per page to move the watermarks past the last minute. The table read with psql holds
# exactly the clicks per page per calendar minute that Python computes from the same input,
# with the minute's bounds, and the clicks without a valid time are rejected (logged).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_setup 90

kafka_up
infra_up postgres PostgreSQL
q() { timeout 30 psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

id="$$_$RANDOM"
topic="clicks_$id"
table="clicks_per_minute_$id"
app=clicks-per-page-postgres # the example's app name: its rows in sluice_commits
drop() {
    q "DROP TABLE IF EXISTS $table" >/dev/null 2>&1 || true
    q "DELETE FROM sluice_commits WHERE pipeline = '$app'" >/dev/null 2>&1 || true
    q "DELETE FROM sluice_positions WHERE pipeline = '$app'" >/dev/null 2>&1 || true
}
trap 'drop; it_cleanup' EXIT
kafka_topic "$topic" 3

# The input: "user<TAB>click" lines (keyed by user: spread over the partitions), in time
# order with each click up to 4 s early or late; then a click per page 2 minutes after.
python3 - "$IT_TMP/clicks.tsv" "$IT_TMP/closers.tsv" <<'PY'
import datetime as dt, json, random, sys
random.seed(16)
base = dt.datetime(2026, 12, 8, 10, 0, tzinfo=dt.timezone.utc)
pages = ["/", "/pricing", "/docs", "/blog/kafka", "/signup", "/a?b=c"]
with open(sys.argv[1], "w") as f:
    for i in range(2400):
        t = base + dt.timedelta(seconds=i * 0.1 + random.uniform(-4, 4))
        if i % 7 == 0:   # the same instant written in +01:00
            ts = t.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat(timespec="milliseconds")
        else:
            ts = t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        user = "u%d" % random.randrange(50)
        click = {"page": random.choice(pages), "user": user, "ts": ts, "ref": "x" * (i % 5)}
        print(user + "\t" + json.dumps(click), file=f)
    for k, bad in enumerate(["yesterday", None]):
        click = {"page": "/", "user": "bad"}
        if bad:
            click["ts"] = bad
        print("bad%d\t%s" % (k, json.dumps(click)), file=f)
with open(sys.argv[2], "w") as f:
    for p in pages:
        close = {"page": p, "user": "closer", "ts": "2026-12-08T10:06:00Z"}
        print("closer\t" + json.dumps(close), file=f)
PY

# The independent count: clicks per page and calendar minute of their ts (UTC), leaving out
# those without a valid ts (the closing clicks are in another file: their minute stays open).
python3 - "$IT_TMP/clicks.tsv" >"$IT_TMP/expected.txt" <<'PY'
import collections, datetime as dt, json, sys
n = collections.Counter()
for line in open(sys.argv[1]):
    c = json.loads(line.split("\t", 1)[1])
    try:
        t = dt.datetime.fromisoformat(c["ts"].replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    except (KeyError, ValueError):
        continue
    n[(c["page"], t.replace(second=0, microsecond=0))] += 1
for (page, m), k in sorted(n.items(), key=lambda x: (x[0][1], x[0][0])):
    end = m + dt.timedelta(minutes=1)
    print("%s|%s|%s|%d" % (page, m.strftime("%H:%M:%S"), end.strftime("%H:%M:%S"), k))
PY
kafka_produce "$topic" "$IT_TMP/clicks.tsv"
for p in 0 1 2; do # the watermark is per partition: each gets the closing clicks
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -p $p -K $'\t' -l "$IT_TMP/closers.tsv" ||
        it_abort "kcat could not produce to $topic [$p]"
done

export KAFKA_BROKERS=$KAFKA_BOOTSTRAP CLICKS_TOPIC=$topic KAFKA_GROUP="clicks_$id" \
    PG_TABLE=$table CHECKPOINT_DIR=$IT_TMP/ckpt
it_sluice clicks "$SLUICE_SRC/config/examples/clicks-per-page-postgres.yaml"
pid=$IT_LAST_PID

rows() {
    q "SELECT page, to_char(window_start AT TIME ZONE 'UTC', 'HH24:MI:SS'),
              to_char(window_end AT TIME ZONE 'UTC', 'HH24:MI:SS'), clicks
       FROM \"$table\" ORDER BY window_start, page" 2>/dev/null
}
complete() { [ "$(rows)" = "$(cat "$IT_TMP/expected.txt")" ]; }
nrows=$(wc -l <"$IT_TMP/expected.txt")
it_check "the table holds the clicks per page per minute that Python counts ($nrows rows)" \
    it_wait_until "$(it_left)" complete
complete || diff <(rows) "$IT_TMP/expected.txt" | head -n 20 >&2 || true
it_eq "every click of the 4 minutes is counted once" 2400 \
    "$(q "SELECT sum(clicks) FROM \"$table\"")"
it_check "the clicks without a valid ts are rejected, saying why" \
    it_wait_until 5 it_grep_log clicks "rejected a record .*(not a time|missing JSON field 'ts')"
it_check "no click came too late" bash -c "! grep -q 'left out' '$IT_TMP/clicks.log'"
it_check "sluice stops cleanly" it_stop "$pid"
it_finish

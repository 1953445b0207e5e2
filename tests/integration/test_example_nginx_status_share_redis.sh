#!/usr/bin/env bash
# test_example_nginx_status_share_redis.sh -- config/examples/nginx-status-share-redis.yaml as
# it ships, against the real Redis: 2400 nginx access log lines over 4 minutes of their own
# time (up to 3 s out of order, some files logged in +0100, a few lines that are not access
# log lines), in 4 files moved into the watched directory one after the other, then a file
# with one line 2 minutes later that completes the last minute. The JSON of counts of every
# minute and the share of every status in it, read with redis-cli, equal what Python computes
# from the same files (the counts exactly, the shares to 1e-12), no other minute is written,
# and the lines that are not access log lines are rejected (logged).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_setup 90

infra_up redis Redis
r() { timeout 10 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw "$@"; }

prefix="nginx_$$_$RANDOM"
app=nginx-status-share-redis # the example's app name: its commit keys
cleanup_keys() {
    local k
    for k in $(r --scan --pattern "$prefix:*") $(r --scan --pattern "sluice:commit:$app:*"); do
        r DEL "$k" >/dev/null
    done
}
trap 'cleanup_keys 2>/dev/null || true; it_cleanup' EXIT

# The logs: lines 0.1 s apart from 10:00:00 UTC, each up to 3 s early or late, 600 a file;
# files 1 and 3 written in +0100 as a server in that zone logs them.
mkdir -p "$IT_TMP/logs" "$IT_TMP/new"
python3 - "$IT_TMP/new" <<'PY'
import datetime as dt, random, sys
random.seed(16)
base = dt.datetime(2026, 12, 8, 10, 0, tzinfo=dt.timezone.utc)
statuses = [200] * 80 + [304] * 6 + [404] * 7 + [500] * 4 + [503] * 3
paths = ["/", "/api/items?id=7", "/static/app.js", "/login", "/nope"]
def line(t, status, i):
    return '10.0.%d.%d - %s [%s] "%s %s HTTP/1.1" %d %d "%s" "Mozilla/5.0 (X11; Linux) v%d"\n' % (
        i % 7, i % 250, "-" if i % 9 else "bob", t.strftime("%d/%b/%Y:%H:%M:%S %z"),
        "GET" if i % 5 else "POST", random.choice(paths), status, random.randrange(20000),
        "-" if i % 3 else "https://example.com/", i % 4)
for f in range(4):
    zone = dt.timezone(dt.timedelta(hours=1)) if f % 2 else dt.timezone.utc
    with open("%s/access-%d.log" % (sys.argv[1], f), "w") as out:
        for i in range(f * 600, f * 600 + 600):
            t = base + dt.timedelta(seconds=i * 0.1 + random.uniform(-3, 3))
            out.write(line(t.astimezone(zone), random.choice(statuses), i))
            if i % 500 == 0:
                out.write("GET /healthz -- not an access log line\n")
with open("%s/access-9.log" % sys.argv[1], "w") as out:  # completes the last minute
    out.write(line(base + dt.timedelta(minutes=6), 200, 0))
PY

# The independent computation: per minute of each line's time (UTC), the count per status
# and each status's share; "minute status count share" lines, sorted.
python3 - "$IT_TMP/new" >"$IT_TMP/expected.txt" <<'PY'
import collections, datetime as dt, glob, re, sys
n = collections.defaultdict(collections.Counter)
for name in glob.glob(sys.argv[1] + "/access-[0-3].log"):
    for l in open(name):
        m = re.match(r'\S+ \S+ \S+ \[([^]]+)\] "[^"]*" (\d{3}) ', l)
        if m:
            t = dt.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z").astimezone(dt.timezone.utc)
            n[t.strftime("%Y-%m-%dT%H:%M")][m.group(2)] += 1
for minute in sorted(n):
    total = sum(n[minute].values())
    for status in sorted(n[minute]):
        print(minute, status, n[minute][status], repr(n[minute][status] / total))
PY

export LOG_DIR=$IT_TMP/logs REDIS_PREFIX=$prefix CHECKPOINT_DIR=$IT_TMP/ckpt
it_sluice nginx "$SLUICE_SRC/config/examples/nginx-status-share-redis.yaml"
pid=$IT_LAST_PID
it_wait_until 20 grep -qs "started" "$IT_TMP/nginx.log" || it_abort "sluice did not start"
for f in 0 1 2 3 9; do # moved in whole, one after the other, as a rotation does
    mv "$IT_TMP/new/access-$f.log" "$IT_TMP/logs/"
    sleep 0.5
done

# What Redis holds, in the form of expected.txt: "minute status count" from the JSON of
# counts, "minute status share" from the keys of the shares.
actual() {
    local k minute
    for k in $(r --scan --pattern "$prefix:status_counts:*" | sort); do
        minute=${k##*:status_counts:}
        r GET "$k" | jq -r --arg m "$minute" 'to_entries[] | "\($m) \(.key) \(.value)"'
    done | sort >"$IT_TMP/counts.txt"
    for k in $(r --scan --pattern "$prefix:status_share:*" | sort); do
        k=${k##*:status_share:} # 2026-12-08T10:03:404
        echo "${k%:*} ${k##*:} $(r GET "$prefix:status_share:$k")"
    done | sort >"$IT_TMP/shares.txt"
}
counts_equal() {
    actual
    diff -q <(awk '{ print $1, $2, $3 }' "$IT_TMP/expected.txt") "$IT_TMP/counts.txt" >/dev/null
}
minutes=$(awk '{ print $1 }' "$IT_TMP/expected.txt" | sort -u | wc -l)
it_check "the counts per status of each of the $minutes minutes equal Python's" \
    it_wait_until "$(it_left)" counts_equal
counts_equal || diff <(awk '{ print $1, $2, $3 }' "$IT_TMP/expected.txt") "$IT_TMP/counts.txt" |
    head -n 20 >&2 || true
it_check "each status's share of its minute equals Python's, to 1e-12" \
    awk 'NR == FNR { want[$1 " " $2] = $4; n++; next }
         { k = $1 " " $2; d = (k in want) ? $3 - want[k] : 1 }
         d < -1e-12 || d > 1e-12 { bad++ }
         { seen++ }
         END { exit bad > 0 || seen != n }' "$IT_TMP/expected.txt" "$IT_TMP/shares.txt"
it_eq "the 404s of 10:01, for one" \
    "$(awk '$1 == "2026-12-08T10:01" && $2 == 404 { print $4 }' "$IT_TMP/expected.txt")" \
    "$(r GET "$prefix:status_share:2026-12-08T10:01:404")"
it_eq "the minute of the last line stays open (not written)" 0 \
    "$(r EXISTS "$prefix:status_counts:2026-12-08T10:06")"
ttls() {
    r PTTL "$prefix:status_counts:2026-12-08T10:00"
    r PTTL "$prefix:status_share:2026-12-08T10:00:200"
}
it_check "counts and shares expire (SET with a TTL)" \
    bash -c '[ $(awk "\$1 > 0" | wc -l) = 2 ]' < <(ttls)
it_check "the lines that are not access log lines are rejected, saying why" \
    it_grep_log nginx "rejected a record \(not a nginx_combined line\).*GET /healthz"
it_check "no line came too late" bash -c "! grep -q 'left out' '$IT_TMP/nginx.log'"
it_check "sluice stops cleanly" it_stop "$pid"
it_finish

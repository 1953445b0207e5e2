#!/usr/bin/env bash
# ctest-label: integration
# test_compose_topology.sh -- docker/docker-compose.yml's topology, run natively against the
# loopback Kafka, PostgreSQL and Redis (no container engine here). The services' environment
# is read from the compose file as docker-compose resolves it with docker/.env (or
# docker/.env.example), and each sluice service runs the very file it mounts. Only the
# servers' addresses and credentials, the HTTP port, the state directory (the service's
# volume), and the names of topics, group, table and key prefix (made unique to this run)
# differ. kafka-setup's part (create the topics, produce docker/sample/*) is done with
# kafka.sh and kcat.
#
# Checks: the two word-count instances split the topic's partitions (one consumer group) and
# process records; one is killed with kill -9 halfway through docker/sample/lines.txt and
# restarted (as compose's restart policy does), and the PostgreSQL table still equals an
# independent count of the lines (awk), their partial counts added up; the metrics instance's Redis
# hashes equal jq's per-service counts, errors and maximum latency of
# docker/sample/events.jsonl; the Dockerfile's HEALTHCHECK passes against each instance; all
# stop gracefully. Needs the servers: ctest label integration (tests/run.sh starts them).
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/lib.sh" # sl_free_port
set -euo pipefail

it_setup 170
kafka_up
command -v docker-compose >/dev/null 2>&1 ||
    it_abort "docker-compose is not installed (tests/infra/deps.sh installs Debian's)"
command -v psql >/dev/null 2>&1 || it_abort "psql is not installed"
bash "$SLUICE_SRC/tests/infra/postgres.sh" start >/dev/null 2>&1 || it_abort "cannot start PostgreSQL"
bash "$SLUICE_SRC/tests/infra/redis.sh" start >/dev/null 2>&1 || it_abort "cannot start Redis"
PG_ENV=$(cat "$SLUICE_STATE/postgres/env")
REDIS_ENV=$(cat "$SLUICE_STATE/redis/env")
pgv() { sed -n "s/^$1=//p" <<<"$PG_ENV" | head -n 1; }
rv() { sed -n "s/^$1=//p" <<<"$REDIS_ENV" | head -n 1; }
q() {
    PGHOST=$(pgv PGHOST) PGPORT=$(pgv PGPORT) PGUSER=$(pgv PGUSER) PGPASSWORD=$(pgv PGPASSWORD) \
        PGDATABASE=$(pgv PGDATABASE) timeout 30 psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"
}
rcli() { timeout 10 redis-cli -h "$(rv REDIS_HOST)" -p "$(rv REDIS_PORT)" "$@"; }

D=$SLUICE_SRC/docker
CS=$SLUICE_SRC/tests/e2e/compose.sh
ENVFILE=$D/.env
[ -f "$ENVFILE" ] || ENVFILE=$D/.env.example
env -i PATH="$PATH" HOME="$IT_TMP" timeout 60 docker-compose --env-file "$ENVFILE" \
    -f "$D/docker-compose.yml" config >"$IT_TMP/resolved.yml" 2>"$IT_TMP/compose.log" ||
    it_abort "docker-compose config: $(cat "$IT_TMP/compose.log")"
it_log "the compose file resolved with $(basename "$ENVFILE")"

# ==== The services, as the compose file defines them ====

run=$$$RANDOM
SERVICES=$(bash "$CS" sluice-services <"$IT_TMP/resolved.yml")
bash "$CS" env kafka-setup <"$IT_TMP/resolved.yml" >"$IT_TMP/kafka-setup.env"
setup_var() { sed -n "s/^$1=//p" "$IT_TMP/kafka-setup.env"; }
PARTITIONS=$(setup_var KAFKA_PARTITIONS)
[ -n "$PARTITIONS" ] || it_abort "kafka-setup sets no KAFKA_PARTITIONS"

# native_env SERVICE PORT: the service's environment with the native differences.
native_env() {
    local svc=$1 port=$2 name value
    while IFS= read -r line; do
        name=${line%%=*}
        value=${line#*=}
        case $name in
        KAFKA_BROKERS) value=$KAFKA_BOOTSTRAP ;;
        PGHOST | PGPORT | PGUSER | PGPASSWORD | PGDATABASE) value=$(pgv "$name") ;;
        REDIS_HOST | REDIS_PORT) value=$(rv "$name") ;;
        REDIS_PASSWORD) value=$(rv REDIS_PASSWORD) ;; # the loopback server has none
        HTTP_LISTEN) value=127.0.0.1:$port ;;
        CHECKPOINT_DIR) value=$IT_TMP/$svc/checkpoint ;;
        KAFKA_TOPIC | KAFKA_GROUP | EVENTS_TOPIC | EVENTS_GROUP | REDIS_PREFIX) value=$value-$run ;;
        PG_TABLE) value=${value}_$run ;;
        esac
        printf '%s=%s\n' "$name" "$value"
    done < <(bash "$CS" env "$svc" <"$IT_TMP/resolved.yml")
}

declare -A PORT PID CFG
for svc in $SERVICES; do
    PORT[$svc]=$(sl_free_port)
    while [[ " ${PORT[*]} " == *" ${PORT[$svc]} "*" ${PORT[$svc]} "* ]]; do # taken by another
        PORT[$svc]=$(sl_free_port)
    done
    CFG[$svc]=$(bash "$CS" config "$svc" <"$IT_TMP/resolved.yml") ||
        it_abort "$svc: no pipeline file mounted"
    mkdir -p "$IT_TMP/$svc"
    native_env "$svc" "${PORT[$svc]}" >"$IT_TMP/$svc.env"
done
wc_services=""
metrics_service=""
for svc in $SERVICES; do
    case $(basename "${CFG[$svc]}") in
    kafka-wordcount-postgres.yaml) wc_services="$wc_services $svc" ;;
    windowed-metrics-redis.yaml) metrics_service=$svc ;;
    esac
done
read -r WC1 WC2 extra <<<"$wc_services"
[ -n "${WC2:-}" ] && [ -z "${extra:-}" ] ||
    it_abort "expected two services running kafka-wordcount-postgres.yaml, got:$wc_services"
[ -n "$metrics_service" ] || it_abort "no service runs windowed-metrics-redis.yaml"
M=$metrics_service
svar() { sed -n "s/^$2=//p" "$IT_TMP/$1.env"; }

it_eq "kafka-setup creates the topic the word count reads" "$(setup_var KAFKA_TOPIC)-$run" \
    "$(svar "$WC1" KAFKA_TOPIC)"
it_eq "kafka-setup creates the topic the metrics read" "$(setup_var EVENTS_TOPIC)-$run" \
    "$(svar "$M" EVENTS_TOPIC)"
T=$(svar "$WC1" KAFKA_TOPIC)
E=$(svar "$M" EVENTS_TOPIC)
G=$(svar "$WC1" KAFKA_GROUP)
TABLE=$(svar "$WC1" PG_TABLE)
PREFIX=$(svar "$M" REDIS_PREFIX)
TOKEN=$(svar "$WC1" SLUICE_TOKEN)
it_check "both word-count instances: group $G, table $TABLE, instances $(svar "$WC1" INSTANCE) and $(svar "$WC2" INSTANCE)" \
    test "$(svar "$WC2" KAFKA_GROUP)" = "$G" -a "$(svar "$WC2" PG_TABLE)" = "$TABLE" -a \
    "$(svar "$WC1" INSTANCE)" != "$(svar "$WC2" INSTANCE)"

pipeline_of() { awk '/^app:/ { a = 1; next } a && /^  name:/ { print $2; exit }' "$1"; }
WC_APP=$(pipeline_of "${CFG[$WC1]}")
M_APP=$(pipeline_of "${CFG[$M]}")
cleanup_data() {
    q "DROP TABLE IF EXISTS \"$TABLE\"; DELETE FROM sluice_commits WHERE pipeline = '$WC_APP'
       AND instance IN ('$(svar "$WC1" INSTANCE)', '$(svar "$WC2" INSTANCE)')
       AND committed_at > now() - interval '1 hour'" >/dev/null 2>&1 || true
    rcli --scan --pattern "$PREFIX:*" 2>/dev/null | xargs -r redis-cli -h "$(rv REDIS_HOST)" \
        -p "$(rv REDIS_PORT)" del >/dev/null 2>&1 || true
}
trap 'rc=$?; cleanup_data; (exit $rc); it_cleanup' EXIT

# ==== kafka-setup, natively ====

kafka_topic "$T" "$PARTITIONS"
kafka_topic "$E" "$PARTITIONS"

# ==== The sluice services ====

for svc in $SERVICES; do
    mapfile -t envs <"$IT_TMP/$svc.env"
    it_bg "$IT_TMP/$svc.log" env -i PATH="$PATH" HOME="$IT_TMP/$svc" "${envs[@]}" \
        "$SLUICE_BIN" run "${CFG[$svc]}"
    PID[$svc]=$IT_LAST_PID
done

last_assignment() { # SERVICE: "p p ..." of the last assignment in its log
    { grep -E "group $G assigned [0-9]+ partitions" "$IT_TMP/$1.log" || true; } | tail -n 1 |
        grep -oE '\[[0-9]+\]' | tr -d '[]' | sort -n | tr '\n' ' ' | sed 's/ $//'
}
split_done() {
    local a b
    a=$(last_assignment "$WC1")
    b=$(last_assignment "$WC2")
    [ -n "$a" ] && [ -n "$b" ] && [ $(($(wc -w <<<"$a") + $(wc -w <<<"$b"))) -eq "$PARTITIONS" ]
}
if it_wait_until 45 split_done; then
    it_ok "one consumer group: $WC1 reads partitions [$(last_assignment "$WC1")], $WC2 [$(last_assignment "$WC2")]"
else
    it_bad "the partitions were not split: $WC1 [$(last_assignment "$WC1")], $WC2 [$(last_assignment "$WC2")]"
fi

kafka_produce_lines() { # TOPIC FILE: one message per line, no key (as kafka-console-producer)
    kcat -P -b "$KAFKA_BOOTSTRAP" -t "$1" -X linger.ms=10 -l "$2" || it_abort "kcat could not produce to $1"
}
head -n 21 "$D/sample/lines.txt" >"$IT_TMP/lines-1.txt"
tail -n +22 "$D/sample/lines.txt" >"$IT_TMP/lines-2.txt"
kafka_produce_lines "$T" "$IT_TMP/lines-1.txt"
kafka_produce_lines "$E" "$D/sample/events.jsonl"

# ==== The word count in PostgreSQL, with one instance killed ====

words() { LC_ALL=C tr 'A-Z' 'a-z' <"$1" | tr -s ' \t\r' '\n\n\n' | grep -vc '^$'; }
LC_ALL=C tr 'A-Z' 'a-z' <"$D/sample/lines.txt" | tr -s ' \t\r' '\n\n\n' | grep -v '^$' |
    LC_ALL=C sort | uniq -c | awk '{ print $2 "|" $1 }' >"$IT_TMP/expected.txt"
total=$(awk -F'|' '{ s += $2 } END { print s }' "$IT_TMP/expected.txt")
pg_sum() { q "SELECT coalesce(sum(count), 0) FROM \"$TABLE\"" 2>/dev/null || echo 0; }
half=$(words "$IT_TMP/lines-1.txt")
counted_half() { [ "$(pg_sum)" = "$half" ]; }
it_check "the first $half words counted in $TABLE within 60 s" it_wait_until 60 counted_half
# kill -9 one instance, as a crash, then the rest of the lines, then its restart (compose's
# restart: on-failure) with its old checkpoint: its partitions resume where the table is.
b_parts=$(last_assignment "$WC2")
it_kill9 "${PID[$WC2]}"
it_log "killed $WC2 (kill -9)"
kafka_produce_lines "$T" "$IT_TMP/lines-2.txt"
mapfile -t envs <"$IT_TMP/$WC2.env"
it_bg "$IT_TMP/$WC2-restarted.log" env -i PATH="$PATH" HOME="$IT_TMP/$WC2" "${envs[@]}" \
    "$SLUICE_BIN" run "${CFG[$WC2]}"
PID[$WC2]=$IT_LAST_PID
counted() { [ "$(pg_sum)" = "$total" ]; }
it_check "all $total words counted in $TABLE within 60 s" it_wait_until 60 counted
sleep 3 # a batch that would count too much would land now
q "SELECT word || '|' || count FROM \"$TABLE\" ORDER BY word COLLATE \"C\"" >"$IT_TMP/got.txt" || true
if diff "$IT_TMP/expected.txt" "$IT_TMP/got.txt" >"$IT_TMP/diff.txt"; then
    it_ok "the table equals awk's count of docker/sample/lines.txt ($(wc -l <"$IT_TMP/got.txt") words), $WC2 killed and restarted"
else
    it_bad "the table differs from awk's count: $(head -n 6 "$IT_TMP/diff.txt" | tr '\n' ' ')"
fi
# Static membership (group_instance_id): the restarted instance gets its own partitions back.
it_eq "$WC2 got its partitions back after the restart" "$b_parts" \
    "$({ grep -E "group $G assigned [0-9]+ partitions" "$IT_TMP/$WC2-restarted.log" || true; } |
        tail -n 1 | grep -oE '\[[0-9]+\]' | tr -d '[]' | sort -n | tr '\n' ' ' | sed 's/ $//')"

api_records() { # SERVICE: records its inputs took, from /api/v1/inputs
    curl -fsS --max-time 5 -H "Authorization: Bearer $TOKEN" \
        "http://127.0.0.1:${PORT[$1]}/api/v1/inputs" |
        jq -e 'map(.records) | add // 0'
}
r1=$(api_records "$WC1" || echo 0)
it_check "the instance that was not killed processed lines (/api/v1/inputs: $WC1 $r1)" \
    test "$r1" -gt 0

# ==== The windowed metrics in Redis ====

expected_metrics() { # count|errors|max: "service|value" per service, sorted (jq)
    # errors: only the services with an error have a field.
    jq -rs --arg kind "$1" 'group_by(.service)[] | {s: .[0].service, v: (
        if $kind == "count" then length
        elif $kind == "errors" then map(select(.status >= 500)) | length | select(. > 0)
        else map(.latency_ms) + [0] | max end)} | "\(.s)|\(.v)"' "$D/sample/events.jsonl" |
        LC_ALL=C sort
}
redis_hash() { # KEY: "field|value" per field, sorted
    rcli hgetall "$1" 2>/dev/null | paste -d'|' - - | LC_ALL=C sort
}
for m in "requests:1m count" "errors:1m errors" "latency_max_ms:1m max"; do
    read -r key kind <<<"$m"
    expected_metrics "$kind" >"$IT_TMP/want-$kind.txt"
    same() { [ "$(redis_hash "$PREFIX:$key")" = "$(cat "$IT_TMP/want-$kind.txt")" ]; }
    if it_wait_until 45 same; then
        it_ok "Redis $PREFIX:$key equals the $kind per service of events.jsonl ($(tr '\n' ' ' <"$IT_TMP/want-$kind.txt"))"
    else
        it_bad "Redis $PREFIX:$key: $(redis_hash "$PREFIX:$key" | tr '\n' ' '), expected $(tr '\n' ' ' <"$IT_TMP/want-$kind.txt")"
    fi
done

# ==== The image's health check, against each instance ====

hc=$(bash "$CS" dockerfile-healthcheck "$D/Dockerfile")
for svc in $SERVICES; do
    it_check "HEALTHCHECK passes against $svc" env -i PATH="$PATH" SLUICE_TOKEN="$TOKEN" \
        SLUICE_HTTP_PORT="${PORT[$svc]}" timeout 10 sh -c "$hc"
done

# Errors while running (a stop may log the group's last rebalance: looked at separately).
for svc in $SERVICES; do
    it_check "$svc logged no error while running" bash -c "! sed '/stopping gracefully/,\$d' \
        '$IT_TMP/$svc.log' | grep -v librdkafka | grep -q '\[error\]'"
done
# Like `docker-compose down`: SIGTERM to every service at once.
for svc in $SERVICES; do
    kill -TERM "${PID[$svc]}" 2>/dev/null || true
done
for svc in $SERVICES; do
    rc=0
    it_wait_until 30 bash -c "! kill -0 ${PID[$svc]} 2>/dev/null" || true
    kill -KILL "${PID[$svc]}" 2>/dev/null || true
    wait "${PID[$svc]}" 2>/dev/null || rc=$?
    it_eq "$svc stops gracefully on SIGTERM (exit status)" 0 "$rc"
done

it_finish

#!/usr/bin/env bash
# Runs a real single-node Apache Kafka 4.x (KRaft, broker+controller in one
# process) on 127.0.0.1 for integration tests and benchmarks.
#
#   bash tests/infra/kafka.sh start|stop|status|env|reset
#   bash tests/infra/kafka.sh topic NAME PARTITIONS [extra kafka-topics args]
#
# The broker jars come only from Maven Central through `mvn` and are cached in
# ${SLUICE_CACHE:-$HOME/.cache/sluice}/kafka, so only the first start downloads.
# State (ports, config, data, log, pid) lives in ${SLUICE_STATE:-/tmp/sluice-infra}/kafka.
# A stop followed by a start keeps the same port and the same data; `reset`
# stops the broker and deletes its state.
#
# Tests read the bootstrap address from $SLUICE_STATE/kafka/bootstrap
# (content: 127.0.0.1:PORT) or from `kafka.sh env` (KAFKA_BOOTSTRAP=...).
#
# Knobs (environment): KAFKA_VERSION (default 4.1.1), KAFKA_HEAP_OPTS
# (default "-Xmx512m -Xms512m"), KAFKA_START_TIMEOUT (s, default 90),
# KAFKA_STOP_TIMEOUT (s, default 60).
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
SCALA_VERSION="2.13"
LOG4J_VERSION="2.24.3"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-60}"

CACHE_DIR="$(realpath -m "${SLUICE_CACHE:-${HOME:-/tmp}/.cache/sluice}")/kafka"
JAR_DIR="$CACHE_DIR/jars-$KAFKA_VERSION"
STATE_ROOT="$(realpath -m "${SLUICE_STATE:-/tmp/sluice-infra}")"
STATE_DIR="$STATE_ROOT/kafka"
DATA_DIR="$STATE_DIR/data"
PORTS_FILE="$STATE_DIR/ports"
PID_FILE="$STATE_DIR/kafka.pid"
LOG_FILE="$STATE_DIR/kafka.log"
CONF_FILE="$STATE_DIR/server.properties"
LOG4J_FILE="$STATE_DIR/log4j2.properties"
TOOLS_LOG4J_FILE="$STATE_DIR/tools-log4j2.properties"
BOOTSTRAP_FILE="$STATE_DIR/bootstrap"
CLUSTER_ID_FILE="$STATE_DIR/cluster.id"

# 16 MiB: room for a 10 MiB message plus batch overhead.
MAX_BYTES=16777216

log() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: ERROR: $*" >&2; exit 1; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found ($2)"
}

# ---------------------------------------------------------------- ports ----

# A TCP port on 127.0.0.1 that nothing listens on. Taken from 10000-32767,
# below Linux's ephemeral range, so that no outgoing connection grabs it
# while the broker is down during a restart.
port_in_use() {
    local p="$1"
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
    fi
}

# Something listens on the port (TIME_WAIT leftovers of a killed broker do
# not count: the JVM binds with SO_REUSEADDR).
port_listened() {
    local p="$1"
    if command -v ss >/dev/null 2>&1; then
        [ -n "$(ss -Htln "( sport = :$p )" 2>/dev/null)" ]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
    fi
}

pick_port() {
    local avoid="${1:-0}" p
    for _ in $(seq 1 200); do
        p=$((10000 + RANDOM % 22768))
        [ "$p" = "$avoid" ] && continue
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "could not find a free TCP port on 127.0.0.1 after 200 tries"
}

# ------------------------------------------------------------- process ----

# PID of our broker if it is running (checked against /proc, so a stale pid
# file or a recycled pid is not mistaken for the broker).
broker_pid() {
    local pid=""
    if [ -f "$PID_FILE" ]; then
        pid="$(cat "$PID_FILE" 2>/dev/null || true)"
        if [ -n "$pid" ] && is_our_broker "$pid"; then
            echo "$pid"
            return 0
        fi
    fi
    # Pid file lost: look for a broker started on our config file.
    local d
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        is_our_broker "$pid" && { echo "$pid"; return 0; }
    done
    return 1
}

is_our_broker() {
    local pid="$1" cmd
    [ -r "/proc/$pid/cmdline" ] || return 1
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    case "$cmd" in
        *kafka.Kafka*"$CONF_FILE"*) return 0 ;;
    esac
    return 1
}

# True while the process exists and is not a zombie (an exited daemon stays
# a zombie until PID 1 reaps it, which can take a while in containers).
pid_alive() {
    local st
    st="$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

lock_state() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    flock -w 300 9 || die "timed out waiting for the lock $STATE_DIR/.lock (another kafka.sh running?)"
}

# ---------------------------------------------------------------- jars -----

ensure_jars() {
    [ -f "$JAR_DIR/.complete" ] && return 0
    need mvn "install Maven"
    need java "install a JDK (17+)"
    mkdir -p "$CACHE_DIR"
    local pomdir="$CACHE_DIR/pom-$KAFKA_VERSION"
    mkdir -p "$pomdir"
    cat >"$pomdir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sluice.infra</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- the broker (kafka.Kafka) and the storage tool (kafka.tools.StorageTool) -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- admin tools (org.apache.kafka.tools.TopicCommand); Connect is not needed -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>connect-runtime</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <!-- slf4j 1.x binding to log4j2, as in the Kafka distribution -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
    log "fetching Kafka $KAFKA_VERSION jars with mvn (first run only) ..."
    local tmp="$JAR_DIR.tmp.$$"
    rm -rf "$tmp"
    if ! mvn -q -B -Dstyle.color=never -f "$pomdir/pom.xml" \
            dependency:copy-dependencies -DoutputDirectory="$tmp" >"$CACHE_DIR/mvn.log" 2>&1; then
        tail -n 40 "$CACHE_DIR/mvn.log" >&2 || true
        rm -rf "$tmp"
        die "mvn could not fetch org.apache.kafka:kafka_$SCALA_VERSION:$KAFKA_VERSION (log: $CACHE_DIR/mvn.log)"
    fi
    [ -f "$tmp/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar" ] ||
        die "mvn finished but kafka_$SCALA_VERSION-$KAFKA_VERSION.jar is missing in $tmp"
    touch "$tmp/.complete"
    rm -rf "$JAR_DIR"
    mv "$tmp" "$JAR_DIR"
    log "jars cached in $JAR_DIR ($(du -sh "$JAR_DIR" | cut -f1))"
}

# -------------------------------------------------------------- config -----

write_config() {
    local port="$1" cport="$2"
    cat >"$CONF_FILE" <<EOF
# Generated by tests/infra/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=$MAX_BYTES
replica.fetch.max.bytes=$MAX_BYTES
replica.fetch.response.max.bytes=$((MAX_BYTES * 4))
socket.request.max.bytes=$((MAX_BYTES * 8))
num.network.threads=3
num.io.threads=4
EOF
    cat >"$LOG4J_FILE" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF
    cat >"$TOOLS_LOG4J_FILE" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
EOF
}

# Runs a Kafka tool class with the cached jars.
run_tool() {
    java -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$TOOLS_LOG4J_FILE" \
        -cp "$JAR_DIR/*" "$@"
}

new_cluster_id() {
    # A Kafka Uuid is 16 random bytes in URL-safe base64 without padding; one that starts
    # with '-' would be read as an option by the storage tool, so draw again.
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [ "${id#-}" = "$id" ] && break
    done
    echo "$id"
}

format_storage() {
    local cid
    if [ -s "$CLUSTER_ID_FILE" ]; then
        cid="$(cat "$CLUSTER_ID_FILE")"
    else
        cid="$(new_cluster_id)"
        echo "$cid" >"$CLUSTER_ID_FILE"
    fi
    log "formatting KRaft storage in $DATA_DIR (cluster id $cid)"
    mkdir -p "$DATA_DIR"
    if ! run_tool kafka.tools.StorageTool format -t "$cid" -c "$CONF_FILE" >"$STATE_DIR/format.log" 2>&1; then
        cat "$STATE_DIR/format.log" >&2 || true
        die "formatting the KRaft storage failed (kafka.tools.StorageTool, log: $STATE_DIR/format.log)"
    fi
}

# ------------------------------------------------------------ readiness ----

broker_answers() {
    local bootstrap="$1"
    if command -v kcat >/dev/null 2>&1; then
        # Registered broker, and every partition of every topic has a leader.
        local md
        md="$(timeout 10 kcat -b "$bootstrap" -L -m 3 2>/dev/null)" || return 1
        grep -q '^ *1 brokers:' <<<"$md" && ! grep -q 'leader -1' <<<"$md"
    else
        local host="${bootstrap%:*}" port="${bootstrap##*:}"
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
    fi
}

# ------------------------------------------------------------- commands ----

read_ports() {
    [ -s "$PORTS_FILE" ] || return 1
    # shellcheck disable=SC1090
    . "$PORTS_FILE"
    [ -n "${BROKER_PORT:-}" ] && [ -n "${CONTROLLER_PORT:-}" ]
}

cmd_start() {
    need java "install a JDK (17+)"
    command -v kcat >/dev/null 2>&1 || log "warning: kcat not found; readiness is checked by a TCP connect only (run tests/infra/deps.sh)"
    ensure_jars
    lock_state

    local pid
    if pid="$(broker_pid)"; then
        read_ports || die "broker is running (pid $pid) but $PORTS_FILE is missing"
        log "already running (pid $pid) at 127.0.0.1:$BROKER_PORT"
        echo "127.0.0.1:$BROKER_PORT" >"$BOOTSTRAP_FILE"
        return 0
    fi

    if ! read_ports; then
        BROKER_PORT="$(pick_port)"
        CONTROLLER_PORT="$(pick_port "$BROKER_PORT")"
        printf 'BROKER_PORT=%s\nCONTROLLER_PORT=%s\n' "$BROKER_PORT" "$CONTROLLER_PORT" >"$PORTS_FILE"
    fi
    local p
    for p in "$BROKER_PORT" "$CONTROLLER_PORT"; do
        if port_listened "$p"; then
            ss -Htlnp "( sport = :$p )" >&2 2>/dev/null || true
            die "port $p (saved in $PORTS_FILE) is in use by another process; free it or run 'kafka.sh reset'"
        fi
    done

    write_config "$BROKER_PORT" "$CONTROLLER_PORT"
    if [ ! -f "$DATA_DIR/meta.properties" ]; then
        format_storage
    fi

    local bootstrap="127.0.0.1:$BROKER_PORT"
    log "starting Kafka $KAFKA_VERSION at $bootstrap (controller 127.0.0.1:$CONTROLLER_PORT), log $LOG_FILE"
    echo "=== start $(date -u +%FT%TZ) ===" >>"$LOG_FILE"
    # setsid: the broker outlives the caller's process group; 9>&- keeps
    # the state lock from being inherited by the broker.
    # shellcheck disable=SC2086
    setsid nohup java $HEAP_OPTS \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_FILE" \
        -Dkafka.logs.dir="$STATE_DIR" \
        -cp "$JAR_DIR/*" kafka.Kafka "$CONF_FILE" \
        </dev/null >>"$LOG_FILE" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"

    local t0=$SECONDS
    while :; do
        if ! pid_alive "$pid"; then
            tail -n 60 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            die "the Kafka broker exited during startup (log: $LOG_FILE)"
        fi
        if broker_answers "$bootstrap"; then
            break
        fi
        if [ $((SECONDS - t0)) -ge "$START_TIMEOUT" ]; then
            tail -n 60 "$LOG_FILE" >&2 || true
            die "the Kafka broker did not answer at $bootstrap within ${START_TIMEOUT}s (pid $pid still running; log: $LOG_FILE; stop it with 'kafka.sh stop')"
        fi
        sleep 0.5
    done
    echo "$bootstrap" >"$BOOTSTRAP_FILE"
    log "ready at $bootstrap after $((SECONDS - t0))s (pid $pid)"
}

cmd_stop() {
    [ -d "$STATE_DIR" ] || { log "not running (no state in $STATE_DIR)"; return 0; }
    lock_state
    local pid
    if ! pid="$(broker_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local t0=$SECONDS
    while pid_alive "$pid"; do
        if [ $((SECONDS - t0)) -ge "$STOP_TIMEOUT" ]; then
            log "broker did not exit within ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            local t1=$SECONDS
            while pid_alive "$pid"; do
                [ $((SECONDS - t1)) -ge 10 ] && die "broker pid $pid survived SIGKILL for 10s"
                sleep 0.2
            done
            break
        fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
    log "stopped after $((SECONDS - t0))s"
}

cmd_status() {
    local pid
    if [ -d "$STATE_DIR" ] && pid="$(broker_pid)"; then
        read_ports || true
        echo "kafka: running (pid $pid) at 127.0.0.1:${BROKER_PORT:-?}"
        return 0
    fi
    echo "kafka: not running"
    return 1
}

cmd_env() {
    read_ports || die "no Kafka state in $STATE_DIR; run 'kafka.sh start' first"
    broker_pid >/dev/null || log "warning: the broker is not running"
    echo "KAFKA_BOOTSTRAP=127.0.0.1:$BROKER_PORT"
}

cmd_topic() {
    [ $# -ge 2 ] || die "usage: kafka.sh topic NAME PARTITIONS [extra kafka-topics args]"
    local name="$1" parts="$2"
    shift 2
    if ! [[ "$parts" =~ ^[1-9][0-9]*$ ]]; then
        die "PARTITIONS must be a positive integer, got '$parts'"
    fi
    read_ports || die "no Kafka state in $STATE_DIR; run 'kafka.sh start' first"
    broker_pid >/dev/null || die "the broker is not running; run 'kafka.sh start' first"
    [ -f "$JAR_DIR/.complete" ] || die "jars missing in $JAR_DIR; run 'kafka.sh start' first"
    local out
    if ! out="$(run_tool org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "127.0.0.1:$BROKER_PORT" \
            --create --if-not-exists --topic "$name" \
            --partitions "$parts" --replication-factor 1 "$@" 2>&1)"; then
        echo "$out" >&2
        die "creating topic '$name' with $parts partitions failed"
    fi
    [ -n "$out" ] && echo "$out" >&2
    log "topic '$name' ready ($parts partitions requested)"
}

cmd_reset() {
    cmd_stop
    rm -rf "$STATE_DIR"
    log "deleted $STATE_DIR"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    topic) shift; cmd_topic "$@" ;;
    reset) cmd_reset ;;
    *)
        echo "usage: $0 start|stop|status|env|reset|topic NAME PARTITIONS [args]" >&2
        exit 2
        ;;
esac

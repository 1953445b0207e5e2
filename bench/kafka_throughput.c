/* kafka_throughput.c -- reads the same Kafka topic with a minimal raw librdkafka consumer (the
 * ceiling), with sluice's direct source (Kafka -> count -> discard) and with sluice's
 * receiver source, each in a forked child, and prints messages/s, MB/s, peak RSS and the
 * ratio to the raw consumer.
 *
 *   kafka_throughput [--brokers HOST:PORT] [--messages N] [--size BYTES] [--partitions P]
 *                    [--topic NAME] [--batch-ms MS] [--runs R] [--skip-produce]
 *
 * The brokers default to $KAFKA_BOOTSTRAP, else the address tests/infra/kafka.sh wrote in
 * ${SLUICE_STATE:-/tmp/sluice-infra}/kafka/bootstrap. The topic (a fresh one by default) is
 * created and filled once by a librdkafka producer. */
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

typedef struct bench_conf {
    char brokers[256];
    char topic[128];
    long long messages;
    int size;
    int partitions;
    int batch_ms;
    int runs;
    int skip_produce;
    int timeout_s;
    char only[16]; /* raw, direct or receiver: run that reader only */
    char rate[32]; /* direct: max_rate_per_partition */
} bench_conf;

typedef struct bench_result {
    int ok;
    long long messages;
    long long bytes;
    double seconds;
    long rss_kb;
    char note[600];
} bench_result;

/* The raw consumer fetches as sluice does by default (connectors/kafka/kafka_config.c); its
 * queue limits are set per partition below. */
static const char *const fetch_props[][2] = {
    {"fetch.max.bytes", "52428800"},
    {"fetch.wait.max.ms", "100"},
    {"fetch.error.backoff.ms", "50"},
    {NULL, NULL},
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "kafka_throughput: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

/* ==== Producing ==== */

static void create_topic(const bench_conf *bc)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bc->brokers, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        die("%s", err);
    }
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(bc->topic, bc->partitions, 1, err, sizeof(err));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        die("creating topic %s timed out", bc->topic);
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    if (n == 1 && rd_kafka_topic_result_error(tr[0]) &&
        rd_kafka_topic_result_error(tr[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        die("cannot create the topic: %s", rd_kafka_topic_result_error_string(tr[0]));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
}

static void produce(const bench_conf *bc)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *props[][2] = {
        {"bootstrap.servers", bc->brokers},
        {"linger.ms", "20"},
        {"batch.num.messages", "10000"},
        {"batch.size", "1000000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
        {"acks", "1"},
        {NULL, NULL},
    };
    for (int i = 0; props[i][0]; i++) {
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, sizeof(err))) {
            die("%s", err);
        }
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        die("%s", err);
    }
    char *payload = malloc((size_t)bc->size);
    memset(payload, 'x', (size_t)bc->size);
    double t0 = now_s();
    for (long long i = 0; i < bc->messages; i++) {
        int n = snprintf(payload, (size_t)bc->size, "%lld ", i);
        if (n < bc->size) {
            payload[n] = 'x';
        }
        for (;;) {
            rd_kafka_resp_err_t e =
                rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(bc->topic),
                                  RD_KAFKA_V_PARTITION((int32_t)(i % bc->partitions)),
                                  RD_KAFKA_V_VALUE(payload, (size_t)bc->size),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 10);
                continue;
            }
            if (e) {
                die("produce: %s", rd_kafka_err2str(e));
            }
            break;
        }
        if (i % 10000 == 0) {
            rd_kafka_poll(rk, 0);
        }
    }
    if (rd_kafka_flush(rk, 120000)) {
        die("%s", "flush timed out");
    }
    double dt = now_s() - t0;
    printf("produced %lld messages of %d bytes over %d partitions to %s in %.1f s "
           "(%.0f msgs/s)\n",
           bc->messages, bc->size, bc->partitions, bc->topic, dt, (double)bc->messages / dt);
    free(payload);
    rd_kafka_destroy(rk);
}

/* ==== The readers (each in a child) ==== */

static void raw_consume(const bench_conf *bc, bench_result *r)
{
    char err[512], gid[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(gid, sizeof(gid), "bench-raw-%ld", (long)getpid());
    rd_kafka_conf_set(conf, "bootstrap.servers", bc->brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", gid, err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", err, sizeof(err));
    for (int i = 0; fetch_props[i][0]; i++) {
        rd_kafka_conf_set(conf, fetch_props[i][0], fetch_props[i][1], err, sizeof(err));
    }
    /* librdkafka bounds the prefetch of a partition by the length of the queue it is
     * forwarded to: with every partition in the one consumer queue, the same total prefetch
     * as sluice (one queue per partition) needs the limits times the partitions. */
    char qmin[32], qkb[32];
    snprintf(qmin, sizeof(qmin), "%d", 50000 * bc->partitions);
    snprintf(qkb, sizeof(qkb), "%d", 16384 * bc->partitions);
    rd_kafka_conf_set(conf, "queued.min.messages", qmin, err, sizeof(err));
    rd_kafka_conf_set(conf, "queued.max.messages.kbytes", qkb, err, sizeof(err));
    /* RAW_PROPS=key=value,...: more settings for the raw consumer. */
    for (int i = 0; getenv("RAW_PROPS") && i < 1; i++) {
        char *c = strdup(getenv("RAW_PROPS")), *save = NULL;
        for (char *kv = strtok_r(c, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = '\0';
                rd_kafka_conf_set(conf, kv, eq + 1, err, sizeof(err));
            }
        }
        free(c);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        snprintf(r->note, sizeof(r->note), "%s", err);
        return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(bc->partitions);
    for (int p = 0; p < bc->partitions; p++) {
        rd_kafka_topic_partition_list_add(l, bc->topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    double t0 = now_s();
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t *msgs[4096];
    while (r->messages < bc->messages && now_s() - t0 < bc->timeout_s) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 100, msgs, 4096);
        for (ssize_t i = 0; i < n; i++) {
            if (!msgs[i]->err) {
                r->messages++;
                r->bytes += (long long)msgs[i]->len;
            }
            rd_kafka_message_destroy(msgs[i]);
        }
    }
    r->seconds = now_s() - t0;
    r->ok = r->messages >= bc->messages;
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

typedef struct counter {
    _Atomic long long messages;
    _Atomic long long bytes;
} counter;

static int count_batch(const sl_dataset *ds, int64_t t, void *opaque)
{
    counter *c = opaque;
    (void)t;
    long long bytes = 0, n = 0;
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t k;
        const sl_record *recs = sl_dataset_partition(ds, p, &k);
        for (size_t i = 0; i < k; i++) {
            bytes += recs[i].value_len;
        }
        n += (long long)k;
    }
    atomic_fetch_add(&c->messages, n);
    atomic_fetch_add(&c->bytes, bytes);
    return SL_OK;
}

/* BENCH_DEBUG: one line per batch with its delays. */
static void print_info(const sl_batch_info *info, void *opaque)
{
    (void)opaque;
    fprintf(stderr, "batch %lld: %llu records, scheduling delay %lld ms, processing %lld ms\n",
            (long long)info->batch_time, (unsigned long long)info->records,
            (long long)info->scheduling_delay, (long long)info->processing_time);
}

static void sluice_consume(const bench_conf *bc, bench_result *r, bool receiver)
{
    char err[512], props[512], group[96], dir[128];
    sl_set_log_level(getenv("BENCH_DEBUG") ? SL_LOG_DEBUG : SL_LOG_WARN);
    snprintf(dir, sizeof(dir), "/tmp/sluice-bench-%ld", (long)getpid());
    sl_context_conf cc = {.name = "bench",
                          .batch_interval_ms = bc->batch_ms,
                          .workers = 2,
                          .checkpoint_dir = receiver ? dir : NULL};
    sl_context *ctx = sl_context_new(&cc, err, sizeof(err));
    if (!ctx) {
        snprintf(r->note, sizeof(r->note), "%s", err);
        return;
    }
    /* sluice's own defaults; BENCH_PROPS=key=value,... adds librdkafka settings. */
    snprintf(props, sizeof(props), "%s", getenv("BENCH_PROPS") ? getenv("BENCH_PROPS") : "");
    snprintf(group, sizeof(group), "bench-sluice-%ld", (long)getpid());
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", bc->brokers);
    sl_options_set(o, "topics", bc->topic);
    sl_options_set(o, "start", "earliest");
    if (props[0]) {
        sl_options_set(o, "properties", props);
    }
    if (receiver) {
        sl_options_set(o, "mode", "receiver");
        sl_options_set(o, "group", group);
        /* BENCH_WAL_FSYNC=always|block|never: the log's fsync policy (default block). */
        sl_options_set(o, "wal_fsync",
                       getenv("BENCH_WAL_FSYNC") ? getenv("BENCH_WAL_FSYNC") : "block");
        sl_options_set(o, "max_buffered", "512MiB");
    } else {
        /* Bounded batches, above what the brokers deliver in a batch interval. */
        sl_options_set(o, "max_rate_per_partition", bc->rate);
    }
    sl_stream *s = sl_context_add_source(ctx, "kafka", "in", o, err, sizeof(err));
    sl_options_destroy(o);
    if (!s) {
        snprintf(r->note, sizeof(r->note), "%s", err);
        sl_context_destroy(ctx);
        return;
    }
    counter c;
    atomic_init(&c.messages, 0);
    atomic_init(&c.bytes, 0);
    sl_stream_foreach_batch(s, count_batch, &c);
    if (getenv("BENCH_DEBUG")) {
        sl_context_add_batch_listener(ctx, print_info, NULL);
    }
    double t0 = now_s();
    if (sl_context_start(ctx) != SL_OK) {
        snprintf(r->note, sizeof(r->note), "the context did not start");
        sl_context_destroy(ctx);
        return;
    }
    while (atomic_load(&c.messages) < bc->messages && now_s() - t0 < bc->timeout_s) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 2000000};
        nanosleep(&ts, NULL);
    }
    r->seconds = now_s() - t0;
    r->messages = atomic_load(&c.messages);
    r->bytes = atomic_load(&c.bytes);
    r->ok = r->messages >= bc->messages;
    sl_context_stop(ctx, false);
    sl_context_destroy(ctx);
    if (receiver) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
}

/* Runs a reader in a child process; its result comes back through a pipe. */
static bench_result run_child(const bench_conf *bc, int kind)
{
    bench_result r;
    memset(&r, 0, sizeof(r));
    int fds[2];
    if (pipe(fds) != 0) {
        die("pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        bench_result cr;
        memset(&cr, 0, sizeof(cr));
        if (kind == 0) {
            raw_consume(bc, &cr);
        } else {
            sluice_consume(bc, &cr, kind == 2);
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        cr.rss_kb = ru.ru_maxrss;
        if (write(fds[1], &cr, sizeof(cr)) != (ssize_t)sizeof(cr)) {
            _exit(1);
        }
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], &r, sizeof(r)) != (ssize_t)sizeof(r)) {
        snprintf(r.note, sizeof(r.note), "the child died");
    }
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    return r;
}

static void print_row(const char *name, const bench_result *r, double raw_rate)
{
    if (r->messages == 0 || r->seconds <= 0) {
        printf("%-22s %12s %9s %10s %8s   %s\n", name, "-", "-", "-", "-",
               r->note[0] ? r->note : "no messages");
        return;
    }
    double rate = (double)r->messages / r->seconds;
    char ratio[16] = "-";
    if (raw_rate > 0) {
        snprintf(ratio, sizeof(ratio), "%.0f%%", 100.0 * rate / raw_rate);
    }
    printf("%-22s %12.0f %9.1f %10.1f %8s   %lld msgs in %.2f s%s%s\n", name, rate,
           (double)r->bytes / r->seconds / 1e6, (double)r->rss_kb / 1024.0, ratio, r->messages,
           r->seconds, r->ok ? "" : " (INCOMPLETE) ", r->note);
}

static void usage(void)
{
    fprintf(stderr, "usage: kafka_throughput [--brokers HOST:PORT] [--messages N] [--size BYTES]"
                    " [--partitions P] [--topic NAME] [--batch-ms MS] [--runs R]"
                    " [--skip-produce] [--timeout S] [--only raw|direct|receiver]"
                    " [--rate MAX_RATE_PER_PARTITION]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bench_conf bc = {.messages = 5000000,
                     .size = 100,
                     .partitions = 8,
                     .batch_ms = 100,
                     .runs = 1,
                     .timeout_s = 300,
                     .rate = "500000"};
    const char *env = getenv("KAFKA_BOOTSTRAP");
    if (env) {
        snprintf(bc.brokers, sizeof(bc.brokers), "%s", env);
    } else {
        const char *state = getenv("SLUICE_STATE");
        char path[512];
        snprintf(path, sizeof(path), "%s/kafka/bootstrap", state ? state : "/tmp/sluice-infra");
        FILE *f = fopen(path, "r");
        if (f && fgets(bc.brokers, sizeof(bc.brokers), f)) {
            bc.brokers[strcspn(bc.brokers, "\r\n")] = '\0';
        }
        if (f) {
            fclose(f);
        }
    }
    snprintf(bc.topic, sizeof(bc.topic), "bench-%ld-%ld", (long)time(NULL), (long)getpid());
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--skip-produce")) {
            bc.skip_produce = 1;
            continue;
        }
        if (!v) {
            usage();
        }
        i++;
        if (!strcmp(a, "--brokers")) {
            snprintf(bc.brokers, sizeof(bc.brokers), "%s", v);
        } else if (!strcmp(a, "--messages")) {
            bc.messages = atoll(v);
        } else if (!strcmp(a, "--size")) {
            bc.size = atoi(v);
        } else if (!strcmp(a, "--partitions")) {
            bc.partitions = atoi(v);
        } else if (!strcmp(a, "--topic")) {
            snprintf(bc.topic, sizeof(bc.topic), "%s", v);
        } else if (!strcmp(a, "--batch-ms")) {
            bc.batch_ms = atoi(v);
        } else if (!strcmp(a, "--runs")) {
            bc.runs = atoi(v);
        } else if (!strcmp(a, "--timeout")) {
            bc.timeout_s = atoi(v);
        } else if (!strcmp(a, "--only")) {
            snprintf(bc.only, sizeof(bc.only), "%s", v);
        } else if (!strcmp(a, "--rate")) {
            snprintf(bc.rate, sizeof(bc.rate), "%s", v);
        } else {
            usage();
        }
    }
    if (!bc.brokers[0]) {
        die("%s", "no brokers: start tests/infra/kafka.sh or give --brokers");
    }
    if (bc.messages <= 0 || bc.size < 16 || bc.partitions < 1 || bc.batch_ms < 10) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    if (!bc.skip_produce) {
        create_topic(&bc);
        produce(&bc);
    }
    printf("\nreading %lld messages of %d bytes from %s (%d partitions), batch interval %d ms\n",
           bc.messages, bc.size, bc.topic, bc.partitions, bc.batch_ms);
    printf("%-22s %12s %9s %10s %8s\n", "reader", "msgs/s", "MB/s", "peak RSS MB", "vs raw");
    bool all = !bc.only[0];
    for (int run = 0; run < bc.runs; run++) {
        bench_result raw = {0}, direct = {0}, recv = {0};
        if (all || !strcmp(bc.only, "raw")) {
            raw = run_child(&bc, 0);
        }
        double raw_rate = raw.seconds > 0 ? (double)raw.messages / raw.seconds : 0;
        if (all || !strcmp(bc.only, "direct")) {
            direct = run_child(&bc, 1);
        }
        if (all || !strcmp(bc.only, "receiver")) {
            recv = run_child(&bc, 2);
        }
        if (all || !strcmp(bc.only, "raw")) {
            print_row("raw librdkafka", &raw, 0);
        }
        if (all || !strcmp(bc.only, "direct")) {
            print_row("sluice direct", &direct, raw_rate);
        }
        if (all || !strcmp(bc.only, "receiver")) {
            print_row("sluice receiver+WAL", &recv, raw_rate);
        }
        fflush(stdout);
    }
    return 0;
}

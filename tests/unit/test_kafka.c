/* test_kafka.c -- the kafka connector without a server: the offset ranges of a direct batch
 * (hand-computed cases), option errors, and the source and sink end to end against the
 * embedded cluster (librdkafka's mock cluster), driven batch by batch with sl__context_step.
 * The real broker is exercised by tests/integration/test_kafka_*.sh. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../connectors/kafka/kafka.h"
#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h, which kafka.h includes */
#include "../../connectors/kafka/kafka_ranges.h"
#include "cu_main.h"
#include "sl_engine.h"
#include "sl_metrics.h"
#include "sl_wal.h"
#include "sl_yamlops.h"
#include "support.h"

/* ==== Offset ranges ==== */

static void until_of(size_t n, const int64_t *from, const int64_t *latest, int64_t batch_ms,
                     double cap, int64_t min_rate, double rate, int64_t *until)
{
    sl_kafka_limits lim = {.batch_ms = batch_ms,
                           .max_rate_per_partition = cap,
                           .min_rate_per_partition = min_rate,
                           .rate = rate};
    sl__kafka_compute_until(n, from, latest, &lim, until);
}

static void test_ranges_no_cap_no_rate_take_everything(void)
{
    int64_t from[] = {0, 10, 500}, latest[] = {100000, 10, 400}, until[3];
    until_of(3, from, latest, 1000, 0, 1, 0, until);
    CU_ASSERT(until[0] == 100000);
    CU_ASSERT(until[1] == 10);  /* no lag */
    CU_ASSERT(until[2] == 500); /* latest below from: an empty range, never backwards */
}

static void test_ranges_cap_per_partition(void)
{
    int64_t from[] = {0, 100, 7}, latest[] = {5000, 600, 2007}, until[3];
    /* 1000/s over a 1 s batch: 1000 messages at most per partition. */
    until_of(3, from, latest, 1000, 1000, 1, 0, until);
    CU_ASSERT(until[0] == 1000);
    CU_ASSERT(until[1] == 600); /* less lag than the cap */
    CU_ASSERT(until[2] == 1007);
    /* A 2 s batch doubles it; 250 ms quarters it. */
    until_of(3, from, latest, 2000, 1000, 1, 0, until);
    CU_ASSERT(until[0] == 2000);
    CU_ASSERT(until[2] == 2007);
    until_of(3, from, latest, 250, 1000, 1, 0, until);
    CU_ASSERT(until[0] == 250);
    CU_ASSERT(until[1] == 350);
}

static void test_ranges_floor_and_min_rate(void)
{
    int64_t from[] = {0}, latest[] = {100}, until[1];
    /* 10/s over 250 ms = 2.5: floored to 2. */
    until_of(1, from, latest, 250, 10, 1, 0, until);
    CU_ASSERT(until[0] == 2);
    /* 0.5/s over 1 s = 0.5: floored to 0, then raised to min_rate_per_partition (1): a share
     * never rounds to nothing. */
    until_of(1, from, latest, 1000, 0.5, 1, 0, until);
    CU_ASSERT(until[0] == 1);
    until_of(1, from, latest, 1000, 0.5, 5, 0, until);
    CU_ASSERT(until[0] == 5);
    /* The floor does not go past the latest offset. */
    int64_t small[] = {3};
    until_of(1, from, small, 1000, 0.5, 5, 0, until);
    CU_ASSERT(until[0] == 3);
}

static void test_ranges_rate_split_by_lag(void)
{
    int64_t from[] = {0, 1000, 50}, latest[] = {300, 1100, 50}, until[3];
    /* R = 100/s over lags 300, 100, 0 (total 400): shares 75, 25, 0. */
    until_of(3, from, latest, 1000, 0, 1, 100, until);
    CU_ASSERT(until[0] == 75);
    CU_ASSERT(until[1] == 1025);
    CU_ASSERT(until[2] == 50); /* no lag: min_rate gives 1 message, but there is none */
    /* The same over 2 s: 150 and 50. */
    until_of(3, from, latest, 2000, 0, 1, 100, until);
    CU_ASSERT(until[0] == 150);
    CU_ASSERT(until[1] == 1050);
}

static void test_ranges_rate_capped(void)
{
    int64_t from[] = {0, 0}, latest[] = {900, 100}, until[2];
    /* R = 1000: shares 900 and 100; the cap of 500 bounds the first. */
    until_of(2, from, latest, 1000, 500, 1, 1000, until);
    CU_ASSERT(until[0] == 500);
    CU_ASSERT(until[1] == 100);
}

static void test_ranges_tiny_share_never_zero(void)
{
    int64_t from[] = {0, 0}, latest[] = {1000000, 1}, until[2];
    /* R = 10: the second partition's share is 1e-5 messages/s, floored to 0, raised to 1. */
    until_of(2, from, latest, 1000, 0, 1, 10, until);
    CU_ASSERT(until[0] == 9);
    CU_ASSERT(until[1] == 1);
}

static void test_ranges_rate_without_lag(void)
{
    int64_t from[] = {5, 9}, latest[] = {5, 9}, until[2];
    until_of(2, from, latest, 1000, 0, 1, 100, until);
    CU_ASSERT(until[0] == 5);
    CU_ASSERT(until[1] == 9);
}

static void test_ranges_huge_cap_does_not_overflow(void)
{
    int64_t from[] = {0}, latest[] = {INT64_MAX / 4}, until[1];
    until_of(1, from, latest, 3600000, 1e12, 1, 0, until);
    CU_ASSERT(until[0] == 3600000000000000LL);
    /* 1e7 s at 1e12/s is past int64: clamped, so everything up to latest. */
    until_of(1, from, latest, 10000000000LL, 1e12, 1, 0, until);
    CU_ASSERT(until[0] == INT64_MAX / 4);
}

/* ==== Options ==== */

/* Adds a kafka source with the given key/value pairs (NULL-terminated); returns whether it
 * was accepted, with the error in err. */
static bool add_source(sl_context *ctx, const char *name, char *err, size_t errsize, ...)
{
    sl_options *o = sl_options_new();
    va_list ap;
    va_start(ap, errsize);
    for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *)) {
        sl_options_set(o, k, va_arg(ap, const char *));
    }
    va_end(ap);
    err[0] = '\0';
    sl_stream *s = sl_context_add_source(ctx, "kafka", name, o, err, errsize);
    sl_options_destroy(o);
    return s != NULL;
}

static void test_options_errors_name_the_problem(void)
{
    sl_context *ctx = ts_context(1000, 1);
    char err[512];
    CU_ASSERT(!add_source(ctx, "a", err, sizeof(err), "brokers", "localhost:9092", NULL));
    CU_ASSERT(strstr(err, "topics") && strstr(err, "topic_pattern"));
    CU_ASSERT(!add_source(ctx, "b", err, sizeof(err), "brokers", "localhost:9092", "topics", "a",
                          "topic_pattern", "b.*", NULL));
    CU_ASSERT(strstr(err, "exactly one") != NULL);
    CU_ASSERT(!add_source(ctx, "c", err, sizeof(err), "brokers", "localhost:9092", "topic_pattern",
                          "(", NULL));
    CU_ASSERT(strstr(err, "topic_pattern") != NULL);
    CU_ASSERT(!add_source(ctx, "d", err, sizeof(err), "brokers", "localhost:9092", "topics",
                          "a,b c", NULL));
    CU_ASSERT(strstr(err, "b c") != NULL);
    CU_ASSERT(!add_source(ctx, "e", err, sizeof(err), "brokers", "localhost:9092", "topics", "a",
                          "start", "committed", NULL));
    CU_ASSERT(strstr(err, "group") != NULL);
    CU_ASSERT(!add_source(ctx, "f", err, sizeof(err), "brokers", "localhost:9092", "topics", "a",
                          "mode", "receiver", NULL));
    CU_ASSERT(strstr(err, "group") != NULL);
    CU_ASSERT(!add_source(ctx, "g", err, sizeof(err), "topics", "a", NULL));
    CU_ASSERT(strstr(err, "brokers") != NULL);
    CU_ASSERT(add_source(ctx, "ok", err, sizeof(err), "brokers", "localhost:9092", "topics", "a, b",
                         "group", "g1", "start", "committed", NULL));
    sl_context_destroy(ctx);
}

/* A transactional sink needs the group whose offsets its transactions commit; its default
 * transactional.id is <pipeline>-<sink>-<instance>. */
static void test_options_transactional_sink_needs_group(void)
{
    char err[512] = "";
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "feed", &src);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", "localhost:9092");
    sl_options_set(o, "topic", "t");
    sl_options_set(o, "transactional", "true");
    CU_ASSERT(sl_stream_to(s, "kafka", "nogroup", o, err, sizeof(err)) != SL_OK);
    CU_ASSERT(strstr(err, "group") != NULL);
    sl_options_set(o, "group", "g1");
    sl_options_set(o, "instance", "i7");
    CU_ASSERT(sl_stream_to(s, "kafka", "out", o, err, sizeof(err)) == SL_OK);
    sl_options_destroy(o);
    sl_context_destroy(ctx);
}

/* The consumers registered by group give their group metadata until unregistered. */
static void test_options_group_registry_lookup_until_unregistered(void)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    CU_ASSERT_FATAL(rd_kafka_conf_set(conf, "group.id", "greg", err, sizeof(err)) == 0);
    rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    CU_ASSERT_FATAL(rk != NULL);
    CU_ASSERT(sl__kafka_group_lookup("greg") == NULL);
    sl__kafka_group_register("greg", rk, NULL);
    rd_kafka_consumer_group_metadata_t *md = sl__kafka_group_lookup("greg");
    CU_ASSERT(md != NULL);
    rd_kafka_consumer_group_metadata_destroy(md);
    CU_ASSERT(sl__kafka_group_lookup("other") == NULL);
    sl__kafka_group_unregister("greg", rk);
    CU_ASSERT(sl__kafka_group_lookup("greg") == NULL);
    rd_kafka_destroy(rk);
}

/* stderr goes to a temporary file until log_end, which returns what was written (static). */
static int log_saved = -1, log_fd = -1;
static char log_path[64];

static void log_begin(void)
{
    snprintf(log_path, sizeof(log_path), "/tmp/sluice-test-kafka-log-XXXXXX");
    log_fd = mkstemp(log_path);
    CU_ASSERT_FATAL(log_fd >= 0);
    fflush(stderr);
    log_saved = dup(2);
    dup2(log_fd, 2);
}

static const char *log_end(void)
{
    static char logged[16384];
    fflush(stderr);
    dup2(log_saved, 2);
    close(log_saved);
    ssize_t n = pread(log_fd, logged, sizeof(logged) - 1, 0);
    logged[n > 0 ? n : 0] = '\0';
    close(log_fd);
    unlink(log_path);
    return logged;
}

/* Adds a kafka source with the options (key, value, ..., NULL) and returns what it logged
 * to stderr (log_end's buffer). */
static const char *add_source_logs(sl_context *ctx, const char *name, ...)
{
    log_begin();
    sl_options *o = sl_options_new();
    va_list ap;
    va_start(ap, name);
    for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *)) {
        sl_options_set(o, k, va_arg(ap, const char *));
    }
    va_end(ap);
    char err[256];
    CU_ASSERT(sl_context_add_source(ctx, "kafka", name, o, err, sizeof(err)) != NULL);
    sl_options_destroy(o);
    return log_end();
}

/* The warning about a first batch that takes a whole topic read from the earliest offsets:
 * given without a bound, not when backpressure's initial rate bounds it. */
static void test_options_earliest_warning_knows_backpressure_initial_rate(void)
{
    sl_context *ctx = ts_context(1000, 1);
    CU_ASSERT(strstr(add_source_logs(ctx, "a", "brokers", "localhost:9092", "topics", "a", "start",
                                     "earliest", NULL),
                     "first batch takes every message") != NULL);
    sl_context_destroy(ctx);
    ctx = ts_context(1000, 1);
    sl_backpressure_conf bp;
    sl_backpressure_defaults(&bp);
    bp.enabled = true;
    bp.initial_rate = 1000;
    char err[256];
    CU_ASSERT_EQUAL(sl_context_set_backpressure(ctx, &bp, err, sizeof(err)), SL_OK);
    CU_ASSERT(strstr(add_source_logs(ctx, "b", "brokers", "localhost:9092", "topics", "a", "start",
                                     "earliest", NULL),
                     "first batch takes every message") == NULL);
    sl_context_destroy(ctx);
}

static void test_options_bad_property_is_named_secret_hidden(void)
{
    sl_context *ctx = ts_context(1000, 1);
    char err[512];
    CU_ASSERT(!add_source(ctx, "a", err, sizeof(err), "brokers", "localhost:9092", "topics", "a",
                          "properties", "fetch.wait.max.ms=100,no.such.property=1", NULL));
    CU_ASSERT(strstr(err, "no.such.property") != NULL);
    CU_ASSERT(!add_source(ctx, "b", err, sizeof(err), "brokers", "localhost:9092", "topics", "a",
                          "properties", "fetch.wait.max.ms=soon", NULL));
    CU_ASSERT(strstr(err, "fetch.wait.max.ms") != NULL);
    /* The value of a secret-looking key never appears, even when librdkafka rejects it. */
    CU_ASSERT(!add_source(ctx, "c", err, sizeof(err), "brokers", "localhost:9092", "topics", "a",
                          "properties", "sasl.kerberos.min.time.before.relogin=hunter2", NULL));
    CU_ASSERT(strstr(err, "sasl.kerberos.min.time.before.relogin") != NULL);
    CU_ASSERT(strstr(err, "hunter2") == NULL);
    /* What options set cannot be overridden. */
    CU_ASSERT(!add_source(ctx, "d", err, sizeof(err), "brokers", "localhost:9092", "topics", "a",
                          "properties", "group.id=x", NULL));
    CU_ASSERT(strstr(err, "group.id") && strstr(err, "group option"));
    CU_ASSERT(!add_source(ctx, "e", err, sizeof(err), "brokers", "localhost:9092", "topics", "a",
                          "properties", "enable.auto.commit=true", NULL));
    /* A value with commas (split by the list) is joined back. */
    CU_ASSERT(add_source(ctx, "f", err, sizeof(err), "brokers", "localhost:9092", "topics", "a",
                         "properties", "debug=broker,topic,client.id=x", NULL));
    sl_context_destroy(ctx);
}

/* ==== Collecting records with where they came from ==== */

typedef struct krec {
    char value[128];
    char topic[64];
    int32_t partition;
    int64_t offset;
    int64_t batch;
    char key[64];
    char hdrs[256]; /* "name=value;" per header, "name=<null>;" for a null value */
    uint32_t nheaders;
    char dup[32]; /* sl_record_header(r, "dup"), "-" when none */
    bool null_value;
} krec;

typedef struct kcoll {
    pthread_mutex_t lock;
    krec *recs;
    size_t n, cap;
    int fail_batches; /* fail (not retried) this many batches first */
} kcoll;

static int kcollect(const sl_dataset *ds, int64_t t, void *opaque)
{
    kcoll *c = opaque;
    if (c->fail_batches > 0) {
        c->fail_batches--;
        return SL_ERR_IO;
    }
    pthread_mutex_lock(&c->lock);
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 64;
                c->recs = realloc(c->recs, c->cap * sizeof(*c->recs));
            }
            krec *k = &c->recs[c->n++];
            memset(k, 0, sizeof(*k));
            snprintf(k->value, sizeof(k->value), "%.*s", (int)r[i].value_len, r[i].value);
            k->null_value = r[i].value == NULL;
            snprintf(k->key, sizeof(k->key), "%.*s", (int)r[i].key_len, r[i].key ? r[i].key : "");
            if (r[i].meta) {
                snprintf(k->topic, sizeof(k->topic), "%s",
                         r[i].meta->topic ? r[i].meta->topic : "");
                k->partition = r[i].meta->partition;
                k->offset = r[i].meta->offset;
                k->nheaders = r[i].meta->nheaders;
                size_t off = 0;
                for (uint32_t h = 0; h < r[i].meta->nheaders && off < sizeof(k->hdrs); h++) {
                    const sl_header *hd = &r[i].meta->headers[h];
                    int w = hd->value ? snprintf(k->hdrs + off, sizeof(k->hdrs) - off, "%s=%.*s;",
                                                 hd->name, (int)hd->value_len, hd->value)
                                      : snprintf(k->hdrs + off, sizeof(k->hdrs) - off, "%s=<null>;",
                                                 hd->name);
                    off += w > 0 ? (size_t)w : 0;
                }
            }
            const sl_header *dup = sl_record_header(&r[i], "dup");
            snprintf(k->dup, sizeof(k->dup), "%.*s", dup ? (int)dup->value_len : 1,
                     dup ? (dup->value ? dup->value : "") : "-");
            k->batch = t;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return SL_OK;
}

static void kcoll_init(kcoll *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
}

static void kcoll_free(kcoll *c)
{
    free(c->recs);
    pthread_mutex_destroy(&c->lock);
}

static const krec *find_value(const kcoll *c, const char *v)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->recs[i].value, v) == 0) {
            return &c->recs[i];
        }
    }
    return NULL;
}

static int count_value(const kcoll *c, const char *v)
{
    int n = 0;
    for (size_t i = 0; i < c->n; i++) {
        n += strcmp(c->recs[i].value, v) == 0;
    }
    return n;
}

/* Batch times for stepping: real wall-clock times, one interval apart. */
static int64_t step_time(int64_t interval, int k)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return (now / interval + 1 + k) * interval;
}

/* ==== The embedded cluster, end to end ==== */

/* The sum of the kafka_consumer_lag series of /metrics; -1 when there are none. */
static double lag_sum(sl_context *ctx)
{
    sl_buf b = {0};
    sl__metrics_render(ctx, NULL, &b);
    double sum = -1;
    const char *prefix = "sluice_kafka_consumer_lag{input=\"k\",topic=\"unit-sample\",";
    for (const char *p = b.p ? b.p : ""; (p = strstr(p, prefix)) != NULL; p++) {
        const char *v = strchr(p, '}');
        sum = (sum < 0 ? 0 : sum) + strtod(v + 1, NULL);
    }
    sl__buf_free(&b);
    return sum;
}

static void test_embedded_sample_read_once(void)
{
    sl_context *ctx = ts_context(1000, 2);
    char err[512];
    CU_ASSERT_FATAL(add_source(ctx, "k", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-sample", "start", "earliest", "embedded_sample", "true",
                               "embedded_rate", "0", "embedded_partitions", "3", NULL));
    sl_stream *s = ctx->streams;
    kcoll c;
    kcoll_init(&c);
    CU_ASSERT(sl_stream_foreach_batch(s, kcollect, &c) == SL_OK);
    int64_t t0 = step_time(1000, 0);
    sl_batch_info info;
    CU_ASSERT(sl__context_step(ctx, t0, &info) == SL_OK);
    CU_ASSERT(c.n == 14); /* the sonnet's 14 lines, once */
    CU_ASSERT(count_value(&c, "Shall I compare thee to a summer's day?") == 1);
    CU_ASSERT(count_value(&c, "So long lives this, and this gives life to thee.") == 1);
    CU_ASSERT(strstr(info.inputs[0].description, "unit-sample[") != NULL);
    /* Every record knows where it came from; offsets grow within each partition. */
    for (size_t i = 0; i < c.n; i++) {
        CU_ASSERT(strcmp(c.recs[i].topic, "unit-sample") == 0);
        CU_ASSERT(c.recs[i].partition >= 0 && c.recs[i].partition < 3);
        for (size_t j = 0; j < i; j++) {
            if (c.recs[j].partition == c.recs[i].partition) {
                CU_ASSERT(c.recs[j].offset < c.recs[i].offset);
            }
        }
    }
    /* /metrics has the consumer lag per partition: all 14 lines waited before the batch. */
    CU_ASSERT(lag_sum(ctx) == 14);
    /* Nothing new: the next batch is empty, and nothing lags. */
    CU_ASSERT(sl__context_step(ctx, t0 + 1000, &info) == SL_OK);
    CU_ASSERT(c.n == 14);
    CU_ASSERT(info.records == 0);
    CU_ASSERT(lag_sum(ctx) == 0);
    sl_context_destroy(ctx);
    kcoll_free(&c);
}

/* Produces values[] to topic through the kafka sink (embedded), one batch. */
static void produce_through_sink(const char *topic, const char *const *values, int partitions)
{
    char err[512];
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "feed", &src);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", "embedded");
    sl_options_set(o, "topic", topic);
    CU_ASSERT_FATAL(sl_stream_to(s, "kafka", "out", o, err, sizeof(err)) == SL_OK);
    sl_options_destroy(o);
    ts_feed(src, values);
    sl_batch_info info;
    CU_ASSERT(sl__context_step(ctx, step_time(1000, 0), &info) == SL_OK);
    CU_ASSERT(info.outputs_succeeded == info.outputs_total);
    (void)partitions;
    sl_context_destroy(ctx);
}

static void test_embedded_sink_then_source_json(void)
{
    char err[512];
    /* A source first, so that the embedded cluster (and its topic) lives across both. */
    sl_context *ctx = ts_context(1000, 2);
    CU_ASSERT_FATAL(add_source(ctx, "k", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-json", "start", "earliest", "format", "json",
                               "embedded_partitions", "1", NULL));
    sl_stream *s = ctx->streams;
    kcoll c;
    kcoll_init(&c);
    CU_ASSERT(sl_stream_foreach_batch(s, kcollect, &c) == SL_OK);
    sl_batch_info info;
    int64_t t0 = step_time(1000, 0);
    CU_ASSERT(sl__context_step(ctx, t0, &info) == SL_OK); /* starts the cluster */
    const char *values[] = {"{\"a\":1}", "{not json", "[1,2]", "", "42", "{\"b\":", NULL};
    produce_through_sink("unit-json", values, 1);
    int64_t t = t0 + 1000;
    for (int k = 0; k < 5 && c.n < 3; k++, t += 1000) {
        CU_ASSERT(sl__context_step(ctx, t, &info) == SL_OK);
    }
    /* The three JSON documents; the three others are skipped and reported. */
    CU_ASSERT(c.n == 3);
    CU_ASSERT(count_value(&c, "{\"a\":1}") == 1);
    CU_ASSERT(count_value(&c, "[1,2]") == 1);
    CU_ASSERT(count_value(&c, "42") == 1);
    sl_context_destroy(ctx);
    kcoll_free(&c);
}

static void test_embedded_rate_cap_and_failed_batch_reread(void)
{
    char err[512];
    sl_context *ctx = ts_context(1000, 2);
    CU_ASSERT_FATAL(add_source(ctx, "k", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-rate", "start", "earliest", "embedded_partitions", "1",
                               "max_rate_per_partition", "3", NULL));
    kcoll c;
    kcoll_init(&c);
    CU_ASSERT(sl_stream_foreach_batch(ctx->streams, kcollect, &c) == SL_OK);
    sl_batch_info info;
    int64_t t = step_time(1000, 0);
    CU_ASSERT(sl__context_step(ctx, t, &info) == SL_OK);
    const char *values[] = {"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", NULL};
    produce_through_sink("unit-rate", values, 1);

    /* 3 per batch; the first batch with data fails (not retried), so its input is read
     * again by a later batch: each message comes, none is lost. */
    c.fail_batches = 0;
    size_t before = c.n;
    t += 1000;
    CU_ASSERT(sl__context_step(ctx, t, &info) == SL_OK);
    CU_ASSERT(info.records == 3);
    CU_ASSERT(c.n - before == 3);
    c.fail_batches = 1;
    t += 1000;
    CU_ASSERT(sl__context_step(ctx, t, &info) == SL_OK); /* m3..m5, failed */
    CU_ASSERT(info.records == 3);
    CU_ASSERT(info.outputs_succeeded == 0);
    for (int k = 0; k < 8; k++) {
        t += 1000;
        CU_ASSERT(sl__context_step(ctx, t, &info) == SL_OK);
        CU_ASSERT(info.records <= 3);
    }
    for (int i = 0; values[i]; i++) {
        CU_ASSERT(count_value(&c, values[i]) >= 1);
    }
    /* m3 was lost with the failed batch and read again. */
    CU_ASSERT(count_value(&c, "m3") == 1);
    CU_ASSERT(count_value(&c, "m0") == 1);
    sl_context_destroy(ctx);
    kcoll_free(&c);
}

/* Issue 15 item 8: a restart restores positions, the instance then holds no partition for a
 * while (here: a partition the topic does not have, as when another member still holds it)
 * and its checkpoints must still carry that partition's position, or the next restart
 * falls back to `start` and reads it all again. */
static void test_embedded_saved_positions_kept_while_not_held(void)
{
    char err[512], dir[256];
    CU_ASSERT_FATAL(ts_tmpdir(dir, sizeof(dir), "kafka-saved"));
    sl_context_conf conf = {
        .name = "saved", .batch_interval_ms = 1000, .workers = 1, .checkpoint_dir = dir};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(add_source(ctx, "k", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-saved", "start", "earliest", "embedded_partitions", "1",
                               NULL));
    kcoll c;
    kcoll_init(&c);
    CU_ASSERT(sl_stream_foreach_batch(ctx->streams, kcollect, &c) == SL_OK);
    sl_instance *ins = ctx->sources;
    CU_ASSERT_FATAL(ins->conn->restore(ins->cctx, "{\"ranges\":[],\"next\":[[\"unit-saved\",0,"
                                                  "0],[\"unit-saved\",7,42]]}") == SL_OK);
    sl_batch_info info;
    int64_t t = step_time(1000, 0);
    for (int k = 0; k < 2; k++, t += 1000) {
        CU_ASSERT(sl__context_step(ctx, t, &info) == SL_OK);
        const char *def = ctx->ckpt ? ctx->ckpt->last_defs[0] : NULL;
        CU_ASSERT_PTR_NOT_NULL_FATAL(def);
        CU_ASSERT(strstr(def, "[\"unit-saved\",7,42]") != NULL); /* not held: kept */
        CU_ASSERT(strstr(def, "[\"unit-saved\",0,0]") != NULL);  /* held, at 0 */
        CU_ASSERT(strstr(def, "[\"unit-saved\",0,0],[\"unit-saved\",0,") == NULL); /* once */
    }
    sl_context_destroy(ctx);
    kcoll_free(&c);
    CU_ASSERT(ts_rmdir(dir));
}

/* ==== Kafka headers ==== */

/* The embedded cluster with topic (partitions each), held until emb_release. */
static char *emb_acquire(const char *topic, int partitions)
{
    char err[256];
    const char *topics[] = {topic, NULL};
    char *bs = sl__kafka_embedded_acquire(topics, partitions, false, 0, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(bs);
    return bs;
}

static rd_kafka_t *raw_producer(const char *bootstrap)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "1", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    return rk;
}

/* Produces value to topic/partition with headers given as "name=value" strings ("name" alone:
 * a null value), NULL-terminated; extra (may be NULL) is added after them. */
static void produce_hdrs(rd_kafka_t *rk, const char *topic, int32_t partition, const char *value,
                         const char *const *hdrs, rd_kafka_headers_t *extra)
{
    rd_kafka_headers_t *h = extra ? extra : rd_kafka_headers_new(8);
    for (size_t i = 0; hdrs && hdrs[i]; i++) {
        const char *eq = strchr(hdrs[i], '=');
        if (eq) {
            rd_kafka_header_add(h, hdrs[i], eq - hdrs[i], eq + 1, -1);
        } else {
            rd_kafka_header_add(h, hdrs[i], -1, NULL, 0);
        }
    }
    if (rd_kafka_header_cnt(h) == 0) {
        rd_kafka_headers_destroy(h);
        h = NULL;
    }
    rd_kafka_resp_err_t err =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    CU_ASSERT_EQUAL(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    if (err && h) {
        rd_kafka_headers_destroy(h);
    }
}

/* Five messages over three partitions: headers, a null and an empty value, none, many (203)
 * with a repeated name, and one with a tenant only. */
static void produce_header_sample(const char *bootstrap, const char *topic)
{
    rd_kafka_t *rk = raw_producer(bootstrap);
    static const char *const h0[] = {"trace=t0", "tenant=acme", NULL};
    static const char *const h1[] = {"flag", "empty=", "tenant=bolt", NULL};
    static const char *const h3[] = {"tenant=acme", "dup=first", "dup=last", NULL};
    static const char *const h4[] = {"tenant=acme", NULL};
    produce_hdrs(rk, topic, 0, "m0", h0, NULL);
    produce_hdrs(rk, topic, 0, "m1", h1, NULL);
    produce_hdrs(rk, topic, 1, "m2", NULL, NULL);
    rd_kafka_headers_t *many = rd_kafka_headers_new(256);
    for (int i = 0; i < 200; i++) {
        char name[16], value[16];
        snprintf(name, sizeof(name), "h%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        rd_kafka_header_add(many, name, -1, value, -1);
    }
    produce_hdrs(rk, topic, 1, "m3", h3, many);
    produce_hdrs(rk, topic, 2, "m4", h4, NULL);
    CU_ASSERT_EQUAL(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

/* What produce_header_sample's messages must look like when they arrive (with the
 * partitions and offsets they were produced to when positions is true). */
static void check_header_sample(const kcoll *c, bool positions)
{
    const krec *m0 = find_value(c, "m0"), *m1 = find_value(c, "m1"), *m2 = find_value(c, "m2");
    const krec *m3 = find_value(c, "m3"), *m4 = find_value(c, "m4");
    CU_ASSERT_FATAL(m0 && m1 && m2 && m3 && m4);
    CU_ASSERT_STRING_EQUAL(m0->hdrs, "trace=t0;tenant=acme;");
    CU_ASSERT_EQUAL(m0->nheaders, 2);
    CU_ASSERT_STRING_EQUAL(m1->hdrs, "flag=<null>;empty=;tenant=bolt;");
    CU_ASSERT_EQUAL(m2->nheaders, 0);
    CU_ASSERT_STRING_EQUAL(m2->hdrs, "");
    CU_ASSERT_EQUAL(m3->nheaders, 203);
    CU_ASSERT(strncmp(m3->hdrs, "h0=v0;h1=v1;", 12) == 0);
    CU_ASSERT_STRING_EQUAL(m3->dup, "last");
    CU_ASSERT_STRING_EQUAL(m0->dup, "-");
    CU_ASSERT_STRING_EQUAL(m4->hdrs, "tenant=acme;");
    if (positions) {
        CU_ASSERT(m0->partition == 0 && m1->partition == 0 && m3->partition == 1);
        CU_ASSERT(m0->offset == 0 && m1->offset == 1 && m2->offset == 0 && m3->offset == 1);
    }
}

/* Streams for the header checks: every record collected, and (tenant header, count) by
 * key (records without the header are rejected). */
typedef struct hdr_pipe {
    kcoll all;
    ts_out counts;
    sl_yamlop *key, *one;
} hdr_pipe;

static void hdr_pipe_build(hdr_pipe *hp, sl_stream *src)
{
    char err[256];
    kcoll_init(&hp->all);
    hp->key = sl__yamlops_key_from_new(SL_YOP_ON_HEADER, "tenant", err, sizeof(err));
    hp->one = sl__yamlops_value_literal_new("1", err, sizeof(err));
    CU_ASSERT_FATAL(hp->key && hp->one);
    CU_ASSERT(sl_stream_foreach_batch(src, kcollect, &hp->all) == SL_OK);
    sl_stream *s = sl_stream_key_by(src, sl__yamlops_map, hp->key);
    s = sl_stream_map_values(s, sl__yamlops_map, hp->one);
    s = sl_stream_reduce_by_key(s, sl_reduce_sum, NULL, 1);
    CU_ASSERT(ts_collect(s, &hp->counts) == SL_OK);
}

static void hdr_pipe_free(hdr_pipe *hp)
{
    kcoll_free(&hp->all);
    sl__yamlops_destroy(hp->key);
    sl__yamlops_destroy(hp->one);
}

/* Runs batches until hp has the five records of the sample (five batches at most). Returns
 * the records the ops rejected. */
static uint64_t hdr_pipe_run(sl_context *ctx, hdr_pipe *hp)
{
    sl_batch_info info;
    uint64_t failed = 0;
    int64_t t = step_time(1000, 0);
    for (int k = 0; k < 5 && hp->all.n < 5; k++, t += 1000) {
        CU_ASSERT(sl__context_step(ctx, t, &info) == SL_OK);
        failed += info.failed_records;
    }
    return failed;
}

static void test_headers_direct_mode(void)
{
    char *bs = emb_acquire("unit-hdr", 3);
    produce_header_sample(bs, "unit-hdr");
    char err[512];
    sl_context *ctx = ts_context(1000, 2);
    CU_ASSERT_FATAL(add_source(ctx, "k", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-hdr", "start", "earliest", "headers", "true", NULL));
    hdr_pipe hp;
    hdr_pipe_build(&hp, ctx->streams);
    uint64_t failed = hdr_pipe_run(ctx, &hp);
    CU_ASSERT_EQUAL(hp.all.n, 5);
    check_header_sample(&hp.all, true);
    /* Keyed by the tenant header: m2 has none and is rejected. */
    CU_ASSERT_STRING_EQUAL(hp.counts.text, "acme:3 bolt:1");
    CU_ASSERT_EQUAL(failed, 1);
    sl_context_destroy(ctx);
    hdr_pipe_free(&hp);
    sl__kafka_embedded_release();
    free(bs);
}

/* Without headers: true a source does not look for headers (it costs a parse per message):
 * records have none, and ops that read one reject them. */
static void test_headers_off_by_default(void)
{
    char *bs = emb_acquire("unit-hdr-off", 3);
    produce_header_sample(bs, "unit-hdr-off");
    char err[512];
    sl_context *ctx = ts_context(1000, 1);
    CU_ASSERT_FATAL(add_source(ctx, "k", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-hdr-off", "start", "earliest", NULL));
    hdr_pipe hp;
    hdr_pipe_build(&hp, ctx->streams);
    uint64_t failed = hdr_pipe_run(ctx, &hp);
    CU_ASSERT_EQUAL(hp.all.n, 5);
    for (size_t i = 0; i < hp.all.n; i++) {
        CU_ASSERT_EQUAL(hp.all.recs[i].nheaders, 0);
    }
    CU_ASSERT_EQUAL(failed, 5);
    sl_context_destroy(ctx);
    hdr_pipe_free(&hp);
    sl__kafka_embedded_release();
    free(bs);
}

/* The kafka sink keeps an empty value apart from no value (a tombstone: a key that left a
 * window): an empty message and a null one, read back as such. */
static void test_sink_keeps_empty_and_null_values_apart(void)
{
    char *bs = emb_acquire("unit-null-out", 1);
    char err[512];
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", "embedded");
    sl_options_set(o, "topic", "unit-null-out");
    CU_ASSERT_FATAL(sl_stream_to(in, "kafka", "out", o, err, sizeof(err)) == SL_OK);
    sl_options_destroy(o);
    sl_record recs[2] = {{.key = "empty", .key_len = 5, .value = "", .value_len = 0},
                         {.key = "gone", .key_len = 4}};
    ts_feed_records(src, recs, 2);
    sl_batch_info info;
    CU_ASSERT(sl__context_step(ctx, step_time(1000, 0), &info) == SL_OK);
    CU_ASSERT(info.outputs_succeeded == info.outputs_total);
    sl_context_destroy(ctx);

    sl_context *back = ts_context(1000, 1);
    CU_ASSERT_FATAL(add_source(back, "k", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-null-out", "start", "earliest", NULL));
    kcoll got;
    kcoll_init(&got);
    CU_ASSERT(sl_stream_foreach_batch(back->streams, kcollect, &got) == SL_OK);
    int64_t t = step_time(1000, 0);
    for (int k = 0; k < 5 && got.n < 2; k++, t += 1000) {
        CU_ASSERT(sl__context_step(back, t, &info) == SL_OK);
    }
    CU_ASSERT_EQUAL_FATAL(got.n, 2);
    for (size_t i = 0; i < got.n; i++) {
        bool gone = strcmp(got.recs[i].key, "gone") == 0;
        CU_ASSERT_EQUAL(got.recs[i].null_value, gone);
        CU_ASSERT_STRING_EQUAL(got.recs[i].value, "");
    }
    sl_context_destroy(back);
    kcoll_free(&got);
    sl__kafka_embedded_release();
    free(bs);
}

/* The kafka sink produces records with their headers (headers: true, the default) or
 * without them (headers: false); read back by a direct source. */
static void test_headers_sink_forwards_them(void)
{
    char *bs = emb_acquire("unit-hdr-src", 3);
    char *bs2 = emb_acquire("unit-hdr-out", 1);
    char *bs3 = emb_acquire("unit-hdr-none", 1);
    produce_header_sample(bs, "unit-hdr-src");
    char err[512];
    sl_context *ctx = ts_context(1000, 1);
    CU_ASSERT_FATAL(add_source(ctx, "k", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-hdr-src", "start", "earliest", "headers", "true", NULL));
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", "embedded");
    sl_options_set(o, "topic", "unit-hdr-out");
    CU_ASSERT_FATAL(sl_stream_to(ctx->streams, "kafka", "out", o, err, sizeof(err)) == SL_OK);
    sl_options_set(o, "topic", "unit-hdr-none");
    sl_options_set(o, "headers", "false");
    CU_ASSERT_FATAL(sl_stream_to(ctx->streams, "kafka", "none", o, err, sizeof(err)) == SL_OK);
    sl_options_destroy(o);
    sl_batch_info info;
    int64_t t = step_time(1000, 0);
    uint64_t records = 0;
    for (int k = 0; k < 5 && records < 5; k++, t += 1000) {
        CU_ASSERT(sl__context_step(ctx, t, &info) == SL_OK);
        CU_ASSERT(info.outputs_succeeded == info.outputs_total);
        records += info.records;
    }
    CU_ASSERT_EQUAL(records, 5);
    sl_context_destroy(ctx);

    sl_context *back = ts_context(1000, 1);
    CU_ASSERT_FATAL(add_source(back, "with", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-hdr-out", "start", "earliest", "headers", "true", NULL));
    CU_ASSERT_FATAL(add_source(back, "without", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-hdr-none", "start", "earliest", "headers", "true", NULL));
    kcoll with, without;
    kcoll_init(&with);
    kcoll_init(&without);
    for (sl_instance *ins = back->sources; ins; ins = ins->next) {
        CU_ASSERT(sl_stream_foreach_batch(ins->stream, kcollect,
                                          strcmp(ins->name, "with") == 0 ? &with : &without) ==
                  SL_OK);
    }
    t = step_time(1000, 0);
    for (int k = 0; k < 5 && (with.n < 5 || without.n < 5); k++, t += 1000) {
        CU_ASSERT(sl__context_step(back, t, &info) == SL_OK);
    }
    CU_ASSERT_EQUAL(with.n, 5);
    CU_ASSERT_EQUAL(without.n, 5);
    if (with.n == 5) {
        check_header_sample(&with, false);
    }
    for (size_t i = 0; i < without.n; i++) {
        CU_ASSERT_EQUAL(without.recs[i].nheaders, 0);
    }
    sl_context_destroy(back);
    kcoll_free(&with);
    kcoll_free(&without);
    for (int i = 0; i < 3; i++) {
        sl__kafka_embedded_release();
    }
    free(bs);
    free(bs2);
    free(bs3);
}

/* The source instance of a context with one source, and its kafka context. */
static sl_kafka_src *kafka_src_of(sl_context *ctx)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx->sources);
    return ctx->sources->cctx;
}

/* Waits (bounded by ms) until the context's only source received at least n records. */
static bool wait_received(sl_context *ctx, uint64_t n, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += 50) {
        if (atomic_load(&ctx->sources->records) >= n) {
            return true;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

static int rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

/* A receiver-mode context with a write-ahead log in dir, not started. */
static sl_context *receiver_context(const char *dir, const char *topic, const char *group)
{
    char err[512];
    sl_context_conf conf = {
        .name = "hdr-rx", .batch_interval_ms = 1000, .workers = 1, .checkpoint_dir = dir};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_FATAL(add_source(ctx, "k", err, sizeof(err), "brokers", "embedded", "topics", topic,
                               "mode", "receiver", "group", group, "start", "earliest", "wal_fsync",
                               "never", "headers", "true", NULL));
    return ctx;
}

typedef struct wal_seen {
    kcoll c;
} wal_seen;

static int wal_seen_block(void *arg, const sl_record *recs, size_t n, sl_wal_pos end)
{
    (void)end;
    sl_dataset *ds = sl__dataset_new(1, 0);
    ds->parts[0].recs = (sl_record *)recs;
    ds->parts[0].n = n;
    ds->parts[0].borrowed = true;
    kcollect(ds, 0, &((wal_seen *)arg)->c);
    sl__dataset_release(ds);
    return SL_OK;
}

/* Receiver mode: records keep their headers in the blocks, in the write-ahead log, and when
 * a restart pushes the log's unprocessed records again. */
static void test_headers_receiver_mode_survive_wal_restart(void)
{
    char dir[] = "/tmp/sluice-test-kafka-wal-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char *bs = emb_acquire("unit-hdr-rx", 3);
    produce_header_sample(bs, "unit-hdr-rx");

    /* Run 1: the receiver consumes and logs the five messages; no batch runs. */
    char why[256];
    sl_context *ctx = receiver_context(dir, "unit-hdr-rx", "g-hdr-rx");
    CU_ASSERT_FATAL(ctx->sources->conn->start(ctx->sources->cctx, why, sizeof(why)) == SL_OK);
    CU_ASSERT(wait_received(ctx, 5, 20000));
    sl_context_destroy(ctx); /* the log is synced and the offsets committed */

    /* The log holds them with their headers. */
    char err[256];
    sl_wal *wal = sl__wal_open(dir, "k", NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(wal);
    wal_seen ws;
    kcoll_init(&ws.c);
    CU_ASSERT(sl__wal_replay(wal, 0, wal_seen_block, &ws, NULL) == SL_OK);
    CU_ASSERT_EQUAL(ws.c.n, 5);
    if (ws.c.n == 5) {
        check_header_sample(&ws.c, true);
    }
    kcoll_free(&ws.c);
    sl__wal_close(wal);

    /* Run 2: the restart pushes them again from the log (Kafka has nothing new for the group);
     * a batch sees the headers, and ops read them. */
    ctx = receiver_context(dir, "unit-hdr-rx", "g-hdr-rx");
    hdr_pipe hp;
    hdr_pipe_build(&hp, ctx->streams);
    CU_ASSERT_FATAL(ctx->sources->conn->start(ctx->sources->cctx, why, sizeof(why)) == SL_OK);
    CU_ASSERT(wait_received(ctx, 5, 20000));
    sl_batch_info info;
    CU_ASSERT(sl__context_step(ctx, step_time(1000, 0), &info) == SL_OK);
    CU_ASSERT_EQUAL(hp.all.n, 5);
    for (int i = 0; i < 5; i++) {
        char v[8];
        snprintf(v, sizeof(v), "m%d", i);
        CU_ASSERT_EQUAL(count_value(&hp.all, v), 1);
    }
    if (hp.all.n == 5) {
        check_header_sample(&hp.all, true);
    }
    CU_ASSERT_STRING_EQUAL(hp.counts.text, "acme:3 bolt:1");
    CU_ASSERT_EQUAL(info.failed_records, 1);
    sl_context_destroy(ctx);
    hdr_pipe_free(&hp);
    sl__kafka_embedded_release();
    free(bs);
    rm_tree(dir);
}

/* ==== Receiver mode: a push that waits long does not cost the partitions ==== */

/* A second member of the group: a plain consumer that polls all along and counts the
 * partitions the group gives it. */
typedef struct member {
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_int assigned;
    atomic_int most; /* the most it ever had */
    atomic_bool stop;
} member;

static void member_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *l, void *opaque)
{
    member *m = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, l);
        atomic_store(&m->assigned, l->cnt);
        if (l->cnt > atomic_load(&m->most)) {
            atomic_store(&m->most, l->cnt);
        }
    } else {
        rd_kafka_assign(rk, NULL);
        atomic_store(&m->assigned, 0);
    }
}

static void *member_main(void *arg)
{
    member *m = arg;
    while (!atomic_load(&m->stop)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, 50);
        if (msg) {
            rd_kafka_message_destroy(msg);
        }
    }
    return NULL;
}

static void member_start(member *m, const char *bootstrap, const char *topic, const char *group)
{
    char err[256];
    memset(m, 0, sizeof(*m));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rd_kafka_conf_set(conf, "session.timeout.ms", "6000", err, sizeof(err));
    rd_kafka_conf_set(conf, "max.poll.interval.ms", "6000", err, sizeof(err));
    rd_kafka_conf_set(conf, "heartbeat.interval.ms", "200", err, sizeof(err));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
    rd_kafka_conf_set_opaque(conf, m);
    rd_kafka_conf_set_rebalance_cb(conf, member_rebalance);
    m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(m->rk);
    rd_kafka_poll_set_consumer(m->rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    CU_ASSERT(rd_kafka_subscribe(m->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    CU_ASSERT_FATAL(pthread_create(&m->thread, NULL, member_main, m) == 0);
}

static void member_stop(member *m)
{
    atomic_store(&m->stop, true);
    pthread_join(m->thread, NULL);
    rd_kafka_consumer_close(m->rk);
    rd_kafka_destroy(m->rk);
}

/* The partitions a consumer has; -1 when it cannot tell. *first gets the first one. */
static int assigned_count(rd_kafka_t *rk, int32_t *first)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(rk, &l) || !l) {
        return -1;
    }
    int n = l->cnt;
    if (n > 0 && first) {
        *first = l->elems[0].partition;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return n;
}

/* An output that holds the batches with records until the gate opens, then collects. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
    int held;
    kcoll *c;
} gate;

static int gated_collect(const sl_dataset *ds, int64_t t, void *opaque)
{
    gate *g = opaque;
    pthread_mutex_lock(&g->lock);
    if (sl_dataset_count(ds) > 0 && !g->open) {
        g->held++;
        pthread_cond_broadcast(&g->cond);
        while (!g->open) {
            pthread_cond_wait(&g->cond, &g->lock);
        }
    }
    pthread_mutex_unlock(&g->lock);
    return kcollect(ds, t, g->c);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A receiver whose push waits (max_buffered reached while the sink holds a batch) longer
 * than max.poll.interval.ms keeps its partitions: the other member of the group never gets
 * them, the assignment is not lost, and every message of its partition is processed once the
 * sink lets go. Before the fix the receiver stopped polling while it waited, librdkafka left
 * the group, and the other member took both partitions. */
static void test_receiver_blocked_push_keeps_partitions(void)
{
    char *bs = emb_acquire("unit-keepalive", 2);
    char err[512];
    sl_context *ctx = ts_context(200, 1);
    CU_ASSERT_FATAL(add_source(ctx, "k", err, sizeof(err), "brokers", "embedded", "topics",
                               "unit-keepalive", "mode", "receiver", "group", "g-keepalive",
                               "start", "earliest", "max_buffered", "1", "properties",
                               "session.timeout.ms=6000,heartbeat.interval.ms=200,"
                               "max.poll.interval.ms=6000",
                               NULL));
    kcoll c;
    kcoll_init(&c);
    gate g = {.c = &c};
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.cond, NULL);
    CU_ASSERT(sl_stream_foreach_batch(ctx->streams, gated_collect, &g) == SL_OK);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    sl_kafka_src *src = kafka_src_of(ctx);
    /* The receiver joins first, then the other member; the group settles with one partition
     * each. (The mock cluster holds a first join 3 s and drops members silent for
     * session.timeout.ms meanwhile: hence 6 s, the brokers' usual minimum.) */
    int32_t mine = -1;
    for (int k = 0; k < 300 && assigned_count(src->rk, NULL) != 2; k++) {
        sleep_ms(100);
    }
    member other;
    member_start(&other, bs, "unit-keepalive", "g-keepalive");
    bool settled = false;
    for (int k = 0; k < 400 && !settled; k++) {
        settled = assigned_count(src->rk, &mine) == 1 && atomic_load(&other.assigned) == 1;
        if (!settled) {
            sleep_ms(100);
        }
    }
    CU_ASSERT_FATAL(settled);
    atomic_store(&other.most, 1);

    /* Wave 1 reaches a batch, which the sink holds: the receiver's buffer stays full. */
    rd_kafka_t *rk = raw_producer(bs);
    for (int i = 0; i < 5; i++) {
        char v[32];
        snprintf(v, sizeof(v), "w1-%d", i);
        produce_hdrs(rk, "unit-keepalive", mine, v, NULL, NULL);
    }
    rd_kafka_flush(rk, 10000);
    pthread_mutex_lock(&g.lock);
    for (int k = 0; k < 200 && g.held == 0; k++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g.cond, &g.lock, &ts);
    }
    bool held = g.held > 0;
    pthread_mutex_unlock(&g.lock);
    CU_ASSERT_FATAL(held);

    /* Wave 2: the receiver consumes it and its push waits, over twice max.poll.interval.ms. */
    for (int i = 0; i < 20; i++) {
        char v[32];
        snprintf(v, sizeof(v), "w2-%d", i);
        produce_hdrs(rk, "unit-keepalive", mine, v, NULL, NULL);
    }
    rd_kafka_flush(rk, 10000);
    bool lost = false;
    int least_mine = 1;
    for (int k = 0; k < 130; k++) { /* 13 s: more than twice max.poll.interval.ms */
        sleep_ms(100);
        lost = lost || rd_kafka_assignment_lost(src->rk);
        int n = assigned_count(src->rk, NULL);
        least_mine = n < least_mine ? n : least_mine;
    }
    CU_ASSERT_EQUAL(atomic_load(&other.most), 1); /* the other member never took it over */
    CU_ASSERT_EQUAL(atomic_load(&other.assigned), 1);
    CU_ASSERT(!lost);
    CU_ASSERT_EQUAL(least_mine, 1);

    /* The sink lets go: every message of both waves is processed, none lost. */
    pthread_mutex_lock(&g.lock);
    g.open = true;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    int missing = 25;
    for (int k = 0; k < 200 && missing > 0; k++) {
        sleep_ms(100);
        pthread_mutex_lock(&c.lock);
        missing = 0;
        for (int i = 0; i < 25; i++) {
            char v[32];
            snprintf(v, sizeof(v), i < 5 ? "w1-%d" : "w2-%d", i < 5 ? i : i - 5);
            missing += count_value(&c, v) == 0;
        }
        pthread_mutex_unlock(&c.lock);
    }
    CU_ASSERT_EQUAL(missing, 0);
    CU_ASSERT_EQUAL(atomic_load(&other.most), 1);
    sl_context_stop(ctx, true);
    sl_context_destroy(ctx);
    member_stop(&other);
    rd_kafka_destroy(rk);
    kcoll_free(&c);
    pthread_mutex_destroy(&g.lock);
    pthread_cond_destroy(&g.cond);
    sl__kafka_embedded_release();
    free(bs);
}

/* ==== The sink's errors ==== */

static size_t count_of(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) {
        n++;
    }
    return n;
}

/* A context whose only sink is a kafka sink "out" with the options (key, value, ...,
 * NULL). */
static sl_context *sink_context(const char *first, ...)
{
    char err[512];
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "feed", &src);
    sl_options *o = sl_options_new();
    va_list ap;
    va_start(ap, first);
    for (const char *k = first; k; k = va_arg(ap, const char *)) {
        sl_options_set(o, k, va_arg(ap, const char *));
    }
    va_end(ap);
    CU_ASSERT_FATAL(sl_stream_to(s, "kafka", "out", o, err, sizeof(err)) == SL_OK);
    sl_options_destroy(o);
    return ctx;
}

/* Issue 15: a topic that does not exist (and is not auto-created) is named, with the brokers,
 * once for the outage, not "flush timed out" on each retry; the batch is still retried. */
static void test_sink_missing_topic_named_once(void)
{
    /* A mock cluster of our own, whose metadata says the topic does not exist. */
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)); /* no bootstrap: no notice */
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(owner);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(owner, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mc);
    rd_kafka_mock_topic_set_error(mc, "unit-absent", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    sl_context *ctx =
        sink_context("brokers", bs, "topic", "unit-absent", "flush_timeout", "2s", "properties",
                     "allow.auto.create.topics=false,"
                     "topic.metadata.propagation.max.ms=100",
                     NULL);
    sl_instance *ins = ctx->sinks;
    char why[512] = "";
    CU_ASSERT_FATAL(ins->conn->start(ins->cctx, why, sizeof(why)) == SL_OK);
    sl_record recs[2] = {{.value = "a", .value_len = 1}, {.value = "b", .value_len = 1}};
    sl_part part = {.recs = recs, .n = 2, .borrowed = true};
    sl_dataset ds = {.time = 1000, .nparts = 1, .parts = &part};
    sl_batch_output out = {.batch_time = 1000, .ds = &ds, .pipeline = "test", .sink = "out"};
    log_begin();
    int rc[3];
    for (int k = 0; k < 3; k++) {
        why[0] = '\0';
        rc[k] = ins->conn->write(ins->cctx, &out, why, sizeof(why));
    }
    const char *logged = log_end();
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL(rc[k], SL_ERR_RETRY);
    }
    char want[256];
    snprintf(want, sizeof(want),
             "out: topic 'unit-absent' does not exist at %s (create it, or allow "
             "auto-creation); retrying",
             bs);
    CU_ASSERT_EQUAL(count_of(logged, want), 1);
    CU_ASSERT_PTR_NULL(strstr(logged, "flush timed out"));
    CU_ASSERT_PTR_NULL(strstr(logged, "cannot produce"));
    /* The retries' own error still says it (the engine logs it every 10 attempts). */
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "topic 'unit-absent' does not exist"));
    if (count_of(logged, want) != 1) {
        fprintf(stderr, "\nlogged:\n%s\n", logged);
    }
    sl_context_destroy(ctx);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(owner);
}

/* Issue 15: a stop that drops messages still queued (the broker is gone) says how many and
 * makes the context's result an error (the process exits non-zero), instead of 0. */
static void test_sink_stop_dropping_messages_fails(void)
{
    sl_context *ctx = sink_context("brokers", "127.0.0.1:1", "topic", "unit-gone", "flush_timeout",
                                   "200ms", NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    sl_kafka_sink *k = ctx->sinks->cctx;
    CU_ASSERT_FATAL(k->rk != NULL);
    CU_ASSERT_EQUAL(rd_kafka_producev(k->rk, RD_KAFKA_V_TOPIC("unit-gone"),
                                      RD_KAFKA_V_VALUE((void *)"x", 1),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                    RD_KAFKA_RESP_ERR_NO_ERROR);
    log_begin();
    sl_context_stop(ctx, false);
    int rc = sl_context_await_termination(ctx);
    const char *logged = log_end();
    CU_ASSERT_EQUAL(rc, SL_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(logged, "out: stop: 1 message to unit-gone still queued"));
    if (rc != SL_ERR_IO) {
        fprintf(stderr, "\nlogged:\n%s\n", logged);
    }
    sl_context_destroy(ctx);
}

void sl_test_register(void)
{
    SL_SUITE("kafka_ranges", SL_TEST(ranges_no_cap_no_rate_take_everything),
             SL_TEST(ranges_cap_per_partition), SL_TEST(ranges_floor_and_min_rate),
             SL_TEST(ranges_rate_split_by_lag), SL_TEST(ranges_rate_capped),
             SL_TEST(ranges_tiny_share_never_zero), SL_TEST(ranges_rate_without_lag),
             SL_TEST(ranges_huge_cap_does_not_overflow));
    SL_SUITE("kafka_options", SL_TEST(options_errors_name_the_problem),
             SL_TEST(options_bad_property_is_named_secret_hidden),
             SL_TEST(options_earliest_warning_knows_backpressure_initial_rate),
             SL_TEST(options_transactional_sink_needs_group),
             SL_TEST(options_group_registry_lookup_until_unregistered));
    SL_SUITE("kafka_embedded", SL_TEST(embedded_sample_read_once),
             SL_TEST(embedded_sink_then_source_json),
             SL_TEST(embedded_rate_cap_and_failed_batch_reread),
             SL_TEST(embedded_saved_positions_kept_while_not_held));
    SL_SUITE("kafka_headers", SL_TEST(headers_direct_mode), SL_TEST(headers_off_by_default),
             SL_TEST(headers_sink_forwards_them), SL_TEST(sink_keeps_empty_and_null_values_apart),
             SL_TEST(headers_receiver_mode_survive_wal_restart));
    SL_SUITE("kafka_receiver", SL_TEST(receiver_blocked_push_keeps_partitions));
    SL_SUITE("kafka_sink_errors", SL_TEST(sink_missing_topic_named_once),
             SL_TEST(sink_stop_dropping_messages_fails));
}

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

#include "../../connectors/kafka/kafka_ranges.h"
#include "cu_main.h"
#include "sl_engine.h"
#include "sl_metrics.h"
#include "support.h"

/* ==== Offset ranges ==== */

static void until_of(size_t n, const int64_t *from, const int64_t *latest, int64_t batch_ms,
                     double cap, int64_t min_rate, double rate, int64_t *until)
{
    sl_kafka_limits lim = {.batch_ms = batch_ms,
                           .max_rate_per_partition = cap,
                           .min_rate_per_partition = min_rate,
                           .rate = rate};
    sl_kafka_compute_until(n, from, latest, &lim, until);
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
            if (r[i].meta) {
                snprintf(k->topic, sizeof(k->topic), "%s",
                         r[i].meta->topic ? r[i].meta->topic : "");
                k->partition = r[i].meta->partition;
                k->offset = r[i].meta->offset;
            }
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
    sl_metrics_buf b = {0};
    sl__metrics_render(ctx, NULL, &b);
    double sum = -1;
    const char *prefix = "sluice_kafka_consumer_lag{input=\"k\",topic=\"unit-sample\",";
    for (const char *p = b.s ? b.s : ""; (p = strstr(p, prefix)) != NULL; p++) {
        const char *v = strchr(p, '}');
        sum = (sum < 0 ? 0 : sum) + strtod(v + 1, NULL);
    }
    sl__metrics_buf_free(&b);
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

void sl_test_register(void)
{
    SL_SUITE("kafka_ranges",
             {"no_cap_no_rate_take_everything", test_ranges_no_cap_no_rate_take_everything},
             {"cap_per_partition", test_ranges_cap_per_partition},
             {"floor_and_min_rate", test_ranges_floor_and_min_rate},
             {"rate_split_by_lag", test_ranges_rate_split_by_lag},
             {"rate_capped", test_ranges_rate_capped},
             {"tiny_share_never_zero", test_ranges_tiny_share_never_zero},
             {"rate_without_lag", test_ranges_rate_without_lag},
             {"huge_cap_does_not_overflow", test_ranges_huge_cap_does_not_overflow});
    SL_SUITE(
        "kafka_options", {"errors_name_the_problem", test_options_errors_name_the_problem},
        {"bad_property_is_named_secret_hidden", test_options_bad_property_is_named_secret_hidden});
    SL_SUITE("kafka_embedded", {"sample_read_once", test_embedded_sample_read_once},
             {"sink_then_source_json", test_embedded_sink_then_source_json},
             {"rate_cap_and_failed_batch_reread", test_embedded_rate_cap_and_failed_batch_reread});
}

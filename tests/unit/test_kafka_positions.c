/* test_kafka_positions.c -- the Kafka direct source in a consumer group with sinks that
 * record input positions (issue 14), on the embedded cluster driven by sl__context_step:
 * a partition starts where the sinks are; when they disagree (one holds a batch the other
 * lost), batches read up to the next sink's position first, so the one ahead skips them
 * and the one behind writes them; after a fenced batch the source asks the sinks again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cu_main.h"
#include "sl_engine.h"

#include "../../connectors/kafka/kafka.h"

/* A sink holding a position of partition 0 of source "k", as the PostgreSQL and Redis
 * sinks do, and the records it wrote. */
typedef struct psink {
    int64_t position; /* -1: none */
    int writes, skips, fences;
    size_t records;
    int64_t fence_at; /* > 0: the first batch whose range reaches past it is fenced once, as
                       * if another instance had written up to there meanwhile */
} psink;

static int psink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    psink *k = data;
    if (out->nranges == 0) {
        return SL_OK;
    }
    bool write = true, skip = true;
    for (size_t i = 0; i < out->nranges; i++) {
        sl_position_check r = sl_position_check_range(&out->ranges[i], k->position);
        write = write && r == SL_POSITION_WRITE;
        skip = skip && r == SL_POSITION_SKIP;
    }
    if (k->fence_at > 0 && out->ranges[0].until > k->fence_at) {
        k->position = k->fence_at; /* "another instance" wrote [position, fence_at) */
        k->records += (size_t)(k->fence_at - out->ranges[0].from);
        k->fence_at = 0;
        write = skip = false;
    }
    if (skip) {
        k->skips++;
        return SL_OK;
    }
    if (!write) {
        k->fences++;
        snprintf(errstr, errsize, "held elsewhere");
        return SL_ERR_FENCED;
    }
    k->position = out->ranges[out->nranges - 1].until;
    k->records += sl_dataset_count(out->ds);
    k->writes++;
    return SL_OK;
}

static int psink_positions(void *data, const char *pipeline, sl_position *pos, size_t n,
                           char *errstr, size_t errsize)
{
    psink *k = data;
    for (size_t i = 0; i < n; i++) {
        pos[i].next = pos[i].partition == 0 ? k->position : -1;
    }
    return SL_OK;
}

static const sl_option no_options[] = {{0}};
static const sl_connector psink_connector = {.name = "psink",
                                             .flags = SL_SINK,
                                             .options = no_options,
                                             .ctx_size = sizeof(psink),
                                             .write = psink_write,
                                             .positions = psink_positions};

/* Produces n messages to partition 0 of topic on the embedded cluster. */
static void produce(const char *bootstrap, const char *topic, int n)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    for (int i = 0; i < n; i++) {
        char v[32];
        snprintf(v, sizeof(v), "m%d", i);
        CU_ASSERT_EQUAL(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                          RD_KAFKA_V_VALUE(v, strlen(v)),
                                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                        RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    CU_ASSERT_EQUAL(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

typedef struct fixture {
    sl_context *ctx;
    psink *a, *b;
    char *bootstrap;
} fixture;

/* A context reading topic in group mode (embedded cluster, 1 partition, 30 messages,
 * 10 per batch) into two position sinks. */
static void fixture_new(fixture *f, const char *topic)
{
    char err[256];
    const char *topics[] = {topic, NULL};
    f->bootstrap = sl__kafka_embedded_acquire(topics, 1, false, 0, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->bootstrap);
    produce(f->bootstrap, topic, 30);
    sl_context_conf conf = {.name = "kpos", .batch_interval_ms = 1000, .workers = 1};
    f->ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->ctx);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", "embedded");
    sl_options_set(o, "topics", topic);
    sl_options_set(o, "group", topic);
    sl_options_set(o, "start", "earliest");
    sl_options_set(o, "max_rate_per_partition", "10");
    sl_options_set(o, "embedded_partitions", "1");
    sl_stream *in = sl_context_add_source(f->ctx, "kafka", "k", o, err, sizeof(err));
    sl_options_destroy(o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    CU_ASSERT_EQUAL_FATAL(sl_stream_to_connector(in, &psink_connector, "a", NULL, err, sizeof(err)),
                          SL_OK);
    CU_ASSERT_EQUAL_FATAL(sl_stream_to_connector(in, &psink_connector, "b", NULL, err, sizeof(err)),
                          SL_OK);
    f->a = f->ctx->sinks->cctx;
    f->b = f->ctx->sinks->next->cctx;
}

static void fixture_run(fixture *f)
{
    sl_batch_info info;
    int64_t t = 1000000;
    /* Batches 100 ms apart in wall time: the group needs a moment to assign. */
    for (int k = 0; k < 300 && (f->a->position < 30 || f->b->position < 30); k++) {
        t += 1000;
        CU_ASSERT_EQUAL(sl__context_step(f->ctx, t, &info), SL_OK);
        usleep(100 * 1000);
    }
}

static void fixture_free(fixture *f)
{
    sl_context_destroy(f->ctx);
    free(f->bootstrap);
    sl__kafka_embedded_release();
}

static void test_partition_starts_where_the_sinks_are_and_catches_up(void)
{
    fixture f;
    fixture_new(&f, "kpos-catch-up");
    f.a->position = 10; /* a committed [0,10); b lost it */
    f.b->position = 0;
    fixture_run(&f);
    CU_ASSERT_EQUAL(f.a->position, 30);
    CU_ASSERT_EQUAL(f.b->position, 30);
    CU_ASSERT_EQUAL(f.a->records, 20); /* [10,30): each record once */
    CU_ASSERT_EQUAL(f.b->records, 30); /* [0,30) */
    CU_ASSERT_EQUAL(f.a->skips, 1);    /* the catch-up batch [0,10) */
    CU_ASSERT_EQUAL(f.a->fences + f.b->fences, 0);
    fixture_free(&f);
}

static void test_after_a_fence_the_source_asks_the_sinks_again(void)
{
    fixture f;
    fixture_new(&f, "kpos-fence");
    f.a->position = f.b->position = 0;
    f.b->fence_at = 15; /* another instance writes [10,15) to b during the second batch */
    fixture_run(&f);
    CU_ASSERT(f.b->fences >= 1); /* and the batch generated meanwhile, if any */
    CU_ASSERT_EQUAL(f.a->position, 30);
    CU_ASSERT_EQUAL(f.b->position, 30);
    CU_ASSERT_EQUAL(f.a->records, 30);
    CU_ASSERT_EQUAL(f.b->records, 30); /* [10,15) by "the other", the rest once */
    fixture_free(&f);
}

void sl_test_register(void)
{
    SL_SUITE("kafka_positions", SL_TEST(partition_starts_where_the_sinks_are_and_catches_up),
             SL_TEST(after_a_fence_the_source_asks_the_sinks_again));
}

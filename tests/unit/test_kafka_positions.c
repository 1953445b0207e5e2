/* test_kafka_positions.c -- the Kafka direct source in a consumer group with sinks that
 * record input positions (issue 14), on the embedded cluster driven by sl__context_step:
 * a partition starts where the sinks are; when they disagree (one holds a batch the other
 * lost), batches read up to the next sink's position first, so the one ahead skips them
 * and the one behind writes them; after a fenced batch the source asks the sinks again; a
 * transactional kafka sink whose positions are the group's offsets keeps them (the source
 * commits none of its own that would move them back). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cu_main.h"
#include "sl_engine.h"

#include "../../connectors/kafka/kafka.h"

/* A sink holding a position of partitions 0 and 1 of source "k", as the PostgreSQL and
 * Redis sinks do, and the records it wrote. */
typedef struct psink {
    int64_t position[2]; /* per partition; -1: none */
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
        sl_position_check r =
            sl_position_check_range(&out->ranges[i], k->position[out->ranges[i].partition]);
        write = write && r == SL_POSITION_WRITE;
        skip = skip && r == SL_POSITION_SKIP;
    }
    if (k->fence_at > 0 && out->ranges[0].until > k->fence_at) {
        k->position[0] = k->fence_at; /* "another instance" wrote [position, fence_at) */
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
    for (size_t i = 0; i < out->nranges; i++) {
        k->position[out->ranges[i].partition] = out->ranges[i].until;
    }
    k->records += sl_dataset_count(out->ds);
    k->writes++;
    return SL_OK;
}

static int psink_positions(void *data, const char *pipeline, sl_position *pos, size_t n,
                           char *errstr, size_t errsize)
{
    psink *k = data;
    for (size_t i = 0; i < n; i++) {
        pos[i].next = pos[i].partition < 2 ? k->position[pos[i].partition] : -1;
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

/* Produces n messages to partition part of topic on the embedded cluster. */
static void produce(const char *bootstrap, const char *topic, int32_t part, int n)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    for (int i = 0; i < n; i++) {
        char v[32];
        snprintf(v, sizeof(v), "m%d", i);
        CU_ASSERT_EQUAL(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
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

/* A context reading topic in group mode (embedded cluster, nparts partitions of 30
 * messages, 10 per partition and batch). */
static sl_stream *fixture_source(fixture *f, const char *topic, int nparts)
{
    char err[256], parts[8];
    char out[128];
    snprintf(out, sizeof(out), "%s-out", topic);
    const char *topics[] = {topic, out, NULL};
    f->bootstrap = sl__kafka_embedded_acquire(topics, nparts, false, 0, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->bootstrap);
    for (int p = 0; p < nparts; p++) {
        produce(f->bootstrap, topic, p, 30);
    }
    sl_context_conf conf = {.name = "kpos", .batch_interval_ms = 1000, .workers = 1};
    f->ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->ctx);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", "embedded");
    sl_options_set(o, "topics", topic);
    sl_options_set(o, "group", topic);
    sl_options_set(o, "start", "earliest");
    sl_options_set(o, "max_rate_per_partition", "10");
    snprintf(parts, sizeof(parts), "%d", nparts);
    sl_options_set(o, "embedded_partitions", parts);
    sl_stream *in = sl_context_add_source(f->ctx, "kafka", "k", o, err, sizeof(err));
    sl_options_destroy(o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    return in;
}

/* The source of fixture_source (one partition) into two position sinks. */
static void fixture_new(fixture *f, const char *topic)
{
    char err[256];
    sl_stream *in = fixture_source(f, topic, 1);
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
    for (int k = 0; k < 300 && (f->a->position[0] < 30 || f->b->position[0] < 30); k++) {
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
    f.a->position[0] = 10; /* a committed [0,10); b lost it */
    f.b->position[0] = 0;
    fixture_run(&f);
    CU_ASSERT_EQUAL(f.a->position[0], 30);
    CU_ASSERT_EQUAL(f.b->position[0], 30);
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
    f.a->position[0] = f.b->position[0] = 0;
    f.b->fence_at = 15; /* another instance writes [10,15) to b during the second batch */
    fixture_run(&f);
    CU_ASSERT(f.b->fences >= 1); /* and the batch generated meanwhile, if any */
    CU_ASSERT_EQUAL(f.a->position[0], 30);
    CU_ASSERT_EQUAL(f.b->position[0], 30);
    CU_ASSERT_EQUAL(f.a->records, 30);
    CU_ASSERT_EQUAL(f.b->records, 30); /* [10,15) by "the other", the rest once */
    fixture_free(&f);
}

/* Commits offsets (all partitions at off) for group, as a transaction of a sink did. */
static void group_commit(const char *bootstrap, const char *group, const char *topic, int nparts,
                         int64_t off)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++) {
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = off;
    }
    CU_ASSERT_EQUAL(rd_kafka_commit(rk, l, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

/* The messages of partitions 0 and 1 of topic a read_committed consumer sees. */
static int committed_messages(const char *bootstrap, const char *topic)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "kpos-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_add(l, topic, 1)->offset = RD_KAFKA_OFFSET_BEGINNING;
    CU_ASSERT_EQUAL(rd_kafka_assign(rk, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    int n = 0, eofs = 0;
    for (int tries = 0; tries < 100 && eofs < 2; tries++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m) {
            eofs += m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
            n += m->err == RD_KAFKA_RESP_ERR_NO_ERROR;
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* A transactional kafka sink holds [0,20) of both partitions (the group's offsets), the
 * other sink [0,10): batches catch the other up one partition at a time, and the kafka
 * sink skips them. Before the fix, the source committed its own offsets after the first
 * of them, the other partition's where the lowest sink was (10): the group's offsets moved
 * back, and the kafka sink wrote [10,20) of that partition a second time. */
static void test_transactional_sink_keeps_the_group_offsets(void)
{
    fixture f = {0};
    char err[512] = "";
    const char *topic = "kpos-txn";
    sl_stream *in = fixture_source(&f, topic, 2);
    group_commit(f.bootstrap, topic, topic, 2, 20);
    CU_ASSERT_EQUAL_FATAL(sl_stream_to_connector(in, &psink_connector, "b", NULL, err, sizeof(err)),
                          SL_OK);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", "embedded");
    sl_options_set(o, "topic", "kpos-txn-out");
    sl_options_set(o, "transactional", "true");
    sl_options_set(o, "group", topic);
    sl_options_set(o, "instance", "u1");
    sl_options_set(o, "partitioner", "consistent_random");
    int rc = sl_stream_to(in, "kafka", "x", o, err, sizeof(err));
    sl_options_destroy(o);
    CU_ASSERT_EQUAL_FATAL(rc, SL_OK);
    f.b = f.ctx->sinks->cctx;
    f.b->position[0] = f.b->position[1] = 10;
    sl_batch_info info;
    int64_t t = 1000000;
    for (int k = 0; k < 300 && (f.b->position[0] < 30 || f.b->position[1] < 30); k++) {
        t += 1000;
        CU_ASSERT_EQUAL(sl__context_step(f.ctx, t, &info), SL_OK);
        usleep(100 * 1000);
    }
    CU_ASSERT_EQUAL(f.b->position[0], 30);
    CU_ASSERT_EQUAL(f.b->position[1], 30);
    CU_ASSERT_EQUAL(f.b->records, 40);                                    /* [10,30) of each */
    CU_ASSERT_EQUAL(committed_messages(f.bootstrap, "kpos-txn-out"), 20); /* [20,30) of each */
    fixture_free(&f);
}

void sl_test_register(void)
{
    SL_SUITE("kafka_positions", SL_TEST(partition_starts_where_the_sinks_are_and_catches_up),
             SL_TEST(after_a_fence_the_source_asks_the_sinks_again),
             SL_TEST(transactional_sink_keeps_the_group_offsets));
}

/* test_kafka_changelog.c -- the kafka sink as a changelog (issue: keyed state that moves with
 * its partitions) on librdkafka's mock cluster: state records go to their task's partition
 * with position markers in one transaction, restore_state gives them back in order with the
 * position, a task outside the topic's partitions is an error that says how to fix it; the
 * group of the sink comes from the kafka source that reads the input; the sink's default
 * partitioner is the Java clients' murmur2; a source in a group says it waits for partitions
 * until it has some. The read_committed side (aborted transactions, control records) needs
 * a real broker: tests/integration/test_kafka_changelog.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "support.h"

#include "../../connectors/kafka/kafka.h"

/* ==== The mock cluster ==== */

static rd_kafka_t *owner;
static rd_kafka_mock_cluster_t *mc;
static const char *bs;

static void mock_up(void)
{
    if (mc) {
        return;
    }
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(owner);
    mc = rd_kafka_mock_cluster_new(owner, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mc);
    bs = rd_kafka_mock_cluster_bootstraps(mc);
}

static void topic_new(const char *topic, int partitions)
{
    if (!mc) {
        mock_up();
        rd_kafka_mock_topic_create(mc, "in", 8, 1); /* the input of the ranges */
    }
    CU_ASSERT_EQUAL_FATAL(rd_kafka_mock_topic_create(mc, topic, partitions, 1),
                          RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* ==== A changelog sink driven through its connector ==== */

typedef struct fixture {
    sl_context *ctx;
    sl_instance *ins;
} fixture;

/* A context whose sink "cl" is a kafka changelog of topic (group: NULL for none), started. */
static void fixture_new(fixture *f, const char *topic, const char *group)
{
    char err[512] = "";
    f->ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(f->ctx, "feed", &src);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", bs);
    sl_options_set(o, "topic", topic);
    sl_options_set(o, "instance", "u1");
    sl_options_set(o, "flush_timeout", "5s");
    if (group) {
        sl_options_set(o, "group", group);
    }
    CU_ASSERT_EQUAL_FATAL(sl_stream_to(s, "kafka", "cl", o, err, sizeof(err)), SL_OK);
    sl_options_destroy(o);
    f->ins = f->ctx->sinks;
    /* What sl_stream_changelog does: the engine marks the instance before it starts. */
    f->ins->changelog = s;
    CU_ASSERT_EQUAL_FATAL(f->ins->conn->start(f->ins->cctx, err, sizeof(err)), SL_OK);
}

static void fixture_free(fixture *f)
{
    f->ins->changelog = NULL;
    sl_context_destroy(f->ctx);
}

/* A state record of key (value NULL: the key has no state any more) for task. */
typedef struct state {
    const char *key, *value;
    int32_t task;
} state;

/* Writes the states and ranges as one batch; the sink's result, its errstr in why. */
static int write_batch(fixture *f, int64_t t, const state *st, size_t n, const sl_input_range *r,
                       size_t nr, char *why, size_t whysize)
{
    sl_record recs[16];
    sl_record_meta metas[16];
    CU_ASSERT_FATAL(n <= 16);
    for (size_t i = 0; i < n; i++) {
        metas[i] = (sl_record_meta){.partition = st[i].task, .offset = -1};
        recs[i] = (sl_record){.key = st[i].key,
                              .key_len = (uint32_t)strlen(st[i].key),
                              .value = st[i].value,
                              .value_len = st[i].value ? (uint32_t)strlen(st[i].value) : 0,
                              .meta = st[i].task == -2 ? NULL : &metas[i]};
    }
    sl_part part = {.recs = recs, .n = n, .borrowed = true};
    sl_dataset ds = {.time = t, .nparts = 1, .parts = &part};
    sl_batch_output out = {
        .batch_time = t, .ds = &ds, .pipeline = "test", .sink = "cl", .ranges = r, .nranges = nr};
    why[0] = '\0';
    return f->ins->conn->write(f->ins->cctx, &out, why, whysize);
}

/* What a restore gave: "key=value" or "key~" (a tombstone) per record, in order. */
typedef struct restored {
    char text[4096];
    size_t n;
} restored;

static int restore_fn(void *arg, const sl_record *r)
{
    restored *x = arg;
    size_t len = strlen(x->text);
    if (r->value) {
        snprintf(x->text + len, sizeof(x->text) - len, "%s%.*s=%.*s", x->n ? " " : "",
                 (int)r->key_len, r->key, (int)r->value_len, r->value);
    } else {
        snprintf(x->text + len, sizeof(x->text) - len, "%s%.*s~", x->n ? " " : "", (int)r->key_len,
                 r->key);
    }
    x->n++;
    return SL_OK;
}

/* Restores the task of source feed's topic "in"; the result, what came back in x and the
 * position in *next. */
static int restore(fixture *f, int32_t task, const char *source, restored *x, int64_t *next,
                   char *why, size_t whysize)
{
    memset(x, 0, sizeof(*x));
    sl_position pos = {.source = source, .topic = "in", .partition = task, .next = -7};
    why[0] = '\0';
    int rc = f->ins->conn->restore_state(f->ins->cctx, "test", &pos, restore_fn, x, why, whysize);
    *next = pos.next;
    return rc;
}

/* Two batches (a tombstone in the second) come back per task in the order written, with
 * the position of the last marker; markers of another source are not that source's. */
static void test_changelog_write_then_restore_last_state_and_position(void)
{
    topic_new("unit-cl", 2);
    fixture f;
    fixture_new(&f, "unit-cl", "g-cl");
    char why[512];
    state b1[] = {{"k1", "v1", 0}, {"k2", "v2", 1}, {"k3", "v3", 0}};
    sl_input_range r1[] = {{"feed", "in", 0, 0, 10}, {"feed", "in", 1, 0, 5}};
    CU_ASSERT_EQUAL(write_batch(&f, 1000, b1, 3, r1, 2, why, sizeof(why)), SL_OK);
    state b2[] = {{"k1", "v1b", 0}, {"k3", NULL, 0}, {"", "empty-key", 0}};
    sl_input_range r2[] = {{"feed", "in", 0, 10, 20}};
    CU_ASSERT_EQUAL(write_batch(&f, 2000, b2, 3, r2, 1, why, sizeof(why)), SL_OK);

    restored x;
    int64_t next;
    CU_ASSERT_EQUAL(restore(&f, 0, "feed", &x, &next, why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(x.text, "k1=v1 k3=v3 k1=v1b k3~ =empty-key");
    CU_ASSERT_EQUAL(next, 20);
    CU_ASSERT_EQUAL(restore(&f, 1, "feed", &x, &next, why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(x.text, "k2=v2");
    CU_ASSERT_EQUAL(next, 5);
    CU_ASSERT_EQUAL(restore(&f, 1, "other", &x, &next, why, sizeof(why)), SL_OK);
    CU_ASSERT_EQUAL(x.n, 1);
    CU_ASSERT_EQUAL(next, -1);
    /* (The mock cluster does not keep the offsets of transactions: the integration test
     * checks that the group has them.) */
    fixture_free(&f);
}

/* A batch the changelog holds already is skipped; one that starts past its position is
 * written (state is a fold of its input: the engine left out what it held), and its marker
 * never goes back. */
static void test_changelog_checks_its_own_positions(void)
{
    topic_new("unit-cl-pos", 1);
    fixture f;
    fixture_new(&f, "unit-cl-pos", "g-cl-pos");
    char why[512];
    state b[] = {{"a", "1", 0}};
    sl_input_range r[] = {{"feed", "in", 0, 0, 10}};
    CU_ASSERT_EQUAL(write_batch(&f, 1000, b, 1, r, 1, why, sizeof(why)), SL_OK);
    CU_ASSERT_EQUAL(write_batch(&f, 1000, b, 1, r, 1, why, sizeof(why)), SL_OK); /* skipped */
    sl_input_range gap[] = {{"feed", "in", 0, 15, 20}};
    state b3[] = {{"a", "3", 0}};
    CU_ASSERT_EQUAL(write_batch(&f, 2000, b3, 1, gap, 1, why, sizeof(why)), SL_OK);
    restored x;
    int64_t next;
    CU_ASSERT_EQUAL(restore(&f, 0, "feed", &x, &next, why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(x.text, "a=1 a=3");
    CU_ASSERT_EQUAL(next, 20);
    /* Its position comes from the restore too: a new instance continues from there. */
    fixture g;
    fixture_new(&g, "unit-cl-pos", "g-cl-pos");
    CU_ASSERT_EQUAL(restore(&g, 0, "feed", &x, &next, why, sizeof(why)), SL_OK);
    CU_ASSERT_EQUAL(write_batch(&g, 2000, b, 1, r, 1, why, sizeof(why)), SL_OK); /* skipped */
    sl_input_range more[] = {{"feed", "in", 0, 20, 22}};
    state b2[] = {{"a", "2", 0}};
    CU_ASSERT_EQUAL(write_batch(&g, 3000, b2, 1, more, 1, why, sizeof(why)), SL_OK);
    CU_ASSERT_EQUAL(restore(&f, 0, "feed", &x, &next, why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(x.text, "a=1 a=3 a=2");
    CU_ASSERT_EQUAL(next, 22);
    fixture_free(&g);
    fixture_free(&f);
}

/* A task past the topic's partitions, or none, stops the pipeline with what to do. */
static void test_changelog_task_outside_the_topic_is_an_error(void)
{
    topic_new("unit-cl-bad", 2);
    fixture f;
    fixture_new(&f, "unit-cl-bad", "g-cl-bad");
    char why[512];
    state b[] = {{"ok", "1", 1}, {"far", "1", 5}};
    sl_input_range r[] = {{"feed", "in", 1, 0, 3}};
    CU_ASSERT_EQUAL(write_batch(&f, 1000, b, 2, r, 1, why, sizeof(why)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "changelog topic unit-cl-bad has 2 partitions; task 5 "
                                       "needs at least 6: create it with as many partitions as "
                                       "the input topic (key 'far')"));
    state none[] = {{"lost", "1", -2}};
    CU_ASSERT_EQUAL(write_batch(&f, 1000, none, 1, r, 1, why, sizeof(why)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "state key 'lost' has no task"));
    sl_input_range far[] = {{"feed", "in", 3, 0, 3}};
    CU_ASSERT_EQUAL(write_batch(&f, 1000, b, 1, far, 1, why, sizeof(why)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "task 3 needs at least 4: create it with as many "
                                       "partitions as the input topic (the input range of feed, "
                                       "in [3])"));
    /* Nothing was written. */
    restored x;
    int64_t next;
    CU_ASSERT_EQUAL(restore(&f, 1, "feed", &x, &next, why, sizeof(why)), SL_OK);
    CU_ASSERT_EQUAL(x.n, 0);
    CU_ASSERT_EQUAL(next, -1);
    /* Restoring a task the topic lacks names both. */
    CU_ASSERT_EQUAL(restore(&f, 7, "feed", &x, &next, why, sizeof(why)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "changelog topic unit-cl-bad has 2 partitions; task 7 "
                                       "needs at least 8"));
    fixture_free(&f);
}

/* A changelog topic that does not exist: restores fail naming it, not with a retry. */
static void test_changelog_restore_of_a_missing_topic_names_it(void)
{
    topic_new("unit-cl-exists", 1);
    /* The mock cluster creates topics on first use; this one answers that it does not exist. */
    rd_kafka_mock_topic_set_error(mc, "unit-cl-none", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    fixture f;
    fixture_new(&f, "unit-cl-none", "g-none");
    char why[512];
    restored x;
    int64_t next;
    int rc = restore(&f, 0, "feed", &x, &next, why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "changelog topic unit-cl-none does not exist"));
    if (rc != SL_ERR_INVAL) {
        fprintf(stderr, "\nrestore: %s: %s\n", sl_err2str(rc), why);
    }
    fixture_free(&f);
}

/* Without group, the changelog commits to the group of the kafka source of this process
 * that reads the input; with none, the write says to set group. */
static void test_changelog_group_from_the_source_or_an_error(void)
{
    topic_new("unit-cl-grp", 1);
    topic_new("unit-grp-in", 1);
    char why[512];
    state b[] = {{"a", "1", 0}};
    sl_input_range r[] = {{"feed", "unit-grp-in", 0, 0, 4}};
    fixture f;
    fixture_new(&f, "unit-cl-grp", NULL);
    CU_ASSERT_EQUAL(write_batch(&f, 1000, b, 1, r, 1, why, sizeof(why)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "changelog: set group"));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "source feed, topic unit-grp-in"));

    /* A direct source "feed" of group g-src reading unit-grp-in registers its consumer. */
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bs, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "g-src", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    char *topics[] = {"unit-grp-in", NULL};
    sl_kafka_src src = {.name = "feed", .topic_list = topics, .ntopic_list = 1};
    sl__kafka_group_register("g-src", rk, &src);
    char g[64] = "";
    CU_ASSERT(sl__kafka_group_of_source("feed", "unit-grp-in", g, sizeof(g)));
    CU_ASSERT_STRING_EQUAL(g, "g-src");
    CU_ASSERT(!sl__kafka_group_of_source("feed", "other", g, sizeof(g)));
    CU_ASSERT(!sl__kafka_group_of_source("other", "unit-grp-in", g, sizeof(g)));
    CU_ASSERT_EQUAL(write_batch(&f, 1000, b, 1, r, 1, why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(((sl_kafka_sink *)f.ins->cctx)->group, "g-src");
    fixture_free(&f);
    sl__kafka_group_unregister("g-src", rk);
    rd_kafka_destroy(rk);
}

/* ==== The partitioner ==== */

/* Java's Utils.murmur2, the hash of the Java clients' default partitioner. */
static int32_t java_murmur2(const unsigned char *data, size_t length)
{
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28cu ^ (uint32_t)length;
    size_t n4 = length / 4;
    for (size_t i = 0; i < n4; i++) {
        uint32_t k = (uint32_t)data[i * 4] | (uint32_t)data[i * 4 + 1] << 8 |
                     (uint32_t)data[i * 4 + 2] << 16 | (uint32_t)data[i * 4 + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    size_t t = length & ~(size_t)3;
    switch (length % 4) {
    case 3: h ^= (uint32_t)data[t + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)data[t + 1] << 8;  /* fall through */
    case 1: h ^= data[t]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

/* By default a key goes to the partition a Java producer would choose. */
static void test_sink_default_partitioner_is_java_murmur2(void)
{
    topic_new("unit-part", 4);
    char err[512];
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "feed", &src);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", bs);
    sl_options_set(o, "topic", "unit-part");
    sl_options_set(o, "properties", "partitioner=random");
    CU_ASSERT_NOT_EQUAL(sl_stream_to(s, "kafka", "out", o, err, sizeof(err)), SL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "partitioner option"));
    sl_options_set(o, "properties", "");
    CU_ASSERT_EQUAL_FATAL(sl_stream_to(s, "kafka", "out", o, err, sizeof(err)), SL_OK);
    sl_options_destroy(o);
    sl_instance *ins = ctx->sinks;
    CU_ASSERT_EQUAL_FATAL(ins->conn->start(ins->cctx, err, sizeof(err)), SL_OK);
    enum {
        N = 40
    };
    sl_record recs[N];
    char keys[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%d", i * 7919);
        recs[i] = (sl_record){.key = keys[i],
                              .key_len = (uint32_t)strlen(keys[i]),
                              .value = keys[i],
                              .value_len = (uint32_t)strlen(keys[i])};
    }
    sl_part part = {.recs = recs, .n = N, .borrowed = true};
    sl_dataset ds = {.time = 1000, .nparts = 1, .parts = &part};
    sl_batch_output out = {.batch_time = 1000, .ds = &ds, .pipeline = "test", .sink = "out"};
    CU_ASSERT_EQUAL_FATAL(ins->conn->write(ins->cctx, &out, err, sizeof(err)), SL_OK);
    sl_context_destroy(ctx);

    /* Every partition read back: each key where Java's murmur2 puts it. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bs, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "unit-part-read", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (int p = 0; p < 4; p++) {
        rd_kafka_topic_partition_list_add(l, "unit-part", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int seen = 0, right = 0;
    for (int k = 0; k < 100 && seen < N; k++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && !m->err) {
            int32_t want = (java_murmur2(m->key, m->key_len) & 0x7fffffff) % 4;
            right += m->partition == want;
            seen++;
        }
        if (m) {
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_destroy(rk);
    CU_ASSERT_EQUAL(seen, N);
    CU_ASSERT_EQUAL(right, N);
}

/* ==== The direct source in a group ==== */

/* A source in a group waits (for the status) until the group assigns it partitions. */
static void test_source_waits_for_partitions_until_assigned(void)
{
    topic_new("unit-wait", 2);
    char err[512];
    sl_context *ctx = ts_context(1000, 1);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", bs);
    sl_options_set(o, "topics", "unit-wait");
    sl_options_set(o, "group", "g-wait");
    sl_options_set(o, "start", "earliest");
    sl_stream *in = sl_context_add_source(ctx, "kafka", "k", o, err, sizeof(err));
    sl_options_destroy(o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    ts_out out = {0};
    CU_ASSERT_EQUAL_FATAL(ts_collect(in, &out), SL_OK);
    sl_instance *ins = ctx->sources;
    sl_kafka_src *k = ins->cctx;
    sl_batch_info info;
    int64_t t = 1000000;
    bool waited = false;
    for (int i = 0; i < 100 && (k->nparts == 0 || atomic_load(&ins->waiting)); i++) {
        t += 1000;
        CU_ASSERT_EQUAL(sl__context_step(ctx, t, &info), SL_OK);
        waited = waited || (k->nparts == 0 && atomic_load(&ins->waiting));
        usleep(100 * 1000);
    }
    CU_ASSERT(waited);
    CU_ASSERT_EQUAL(k->nparts, 2);
    CU_ASSERT(!atomic_load(&ins->waiting));
    sl_context_destroy(ctx);
}

static void test_marker_key_format(void)
{
    char key[64];
    size_t n = sl__kafka_marker_key("src", "in", key, sizeof(key));
    CU_ASSERT_EQUAL(n, 1 + 15 + 1 + 3 + 1 + 2);
    CU_ASSERT_EQUAL(memcmp(key, "\0sluice.position\0src\0in", n), 0);
    CU_ASSERT_EQUAL(sl__kafka_marker_key("src", "in", key, 4), n); /* too small: nothing */
}

static void suite_end(void)
{
    if (mc) {
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(owner);
        mc = NULL;
    }
}

static void test_zz_cleanup(void)
{
    suite_end();
}

void sl_test_register(void)
{
    SL_SUITE("kafka_changelog", SL_TEST(marker_key_format),
             SL_TEST(changelog_write_then_restore_last_state_and_position),
             SL_TEST(changelog_checks_its_own_positions),
             SL_TEST(changelog_task_outside_the_topic_is_an_error),
             SL_TEST(changelog_restore_of_a_missing_topic_names_it),
             SL_TEST(changelog_group_from_the_source_or_an_error),
             SL_TEST(sink_default_partitioner_is_java_murmur2),
             SL_TEST(source_waits_for_partitions_until_assigned), SL_TEST(zz_cleanup));
}

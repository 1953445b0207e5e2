/* test_stream.c -- the DStream operators, batch by batch, through sl__context_step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "support.h"

#define T0 1000000 /* first batch time used by the tests */

/* ==== Operator functions ==== */

static int split_words(const sl_record *in, sl_emitter *e, void *opaque)
{
    uint32_t i = 0;
    while (i < in->value_len) {
        while (i < in->value_len && in->value[i] == ' ') {
            i++;
        }
        uint32_t start = i;
        while (i < in->value_len && in->value[i] != ' ') {
            i++;
        }
        if (i > start) {
            sl_record w = *in;
            w.value = in->value + start;
            w.value_len = i - start;
            int rc = sl_emit(e, &w);
            if (rc != SL_OK) {
                return rc;
            }
        }
    }
    return SL_OK;
}

static int to_pair(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    out->key = in->value;
    out->key_len = in->value_len;
    sl_record_set_int(out, 1);
    return SL_OK;
}

static int upper(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    char *p = sl_emitter_alloc(e, in->value_len);
    if (!p) {
        return SL_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < in->value_len; i++) {
        p[i] =
            (char)(in->value[i] >= 'a' && in->value[i] <= 'z' ? in->value[i] - 32 : in->value[i]);
    }
    out->value = p;
    return SL_OK;
}

static int long_words(const sl_record *in, void *opaque)
{
    return in->value_len >= 4;
}

static int reject_x(const sl_record *in, void *opaque)
{
    if (in->value_len && in->value[0] == 'x') {
        return SL_ERR_RECORD;
    }
    return 1;
}

static int first_char_key(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    out->key = in->value;
    out->key_len = in->value_len ? 1 : 0;
    out->value = "changed"; /* key_by keeps everything but the key */
    out->value_len = 7;
    return SL_OK;
}

static int times_ten(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    sl_record_set_int(out, in->num.i * 10);
    out->key = "ignored"; /* map_values keeps the key */
    out->key_len = 7;
    return SL_OK;
}

/* A custom reducer over bytes: concatenation in sorted order is not associative with
 * arbitrary order, so keep the lexicographically smallest value. */
static int min_bytes(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque)
{
    size_t n = acc->value_len < r->value_len ? acc->value_len : r->value_len;
    int c = memcmp(r->value, acc->value, n);
    if (c < 0 || (c == 0 && r->value_len < acc->value_len)) {
        acc->value = r->value;
        acc->value_len = r->value_len;
    }
    acc->num_type = SL_NUM_NONE;
    return SL_OK;
}

static const char *const lines1[] = {"the quick brown fox", "jumps over the lazy dog", "the end",
                                     NULL};

/* ==== Tests ==== */

static void test_word_count_reduce_by_key(void)
{
    for (int workers = 1; workers <= 3; workers++) {
        sl_context *ctx = ts_context(1000, workers);
        ts_source *src;
        sl_stream *lines = ts_source_add(ctx, "in", &src);
        sl_stream *counts = sl_stream_reduce_by_key(
            sl_stream_map(sl_stream_flat_map(lines, split_words, NULL), to_pair, NULL),
            sl_reduce_sum, NULL, 0);
        ts_out out;
        CU_ASSERT_EQUAL_FATAL(ts_collect(counts, &out), SL_OK);
        ts_feed(src, lines1);
        sl_batch_info info;
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0, &info), SL_OK);
        CU_ASSERT_STRING_EQUAL(out.text, "brown:1 dog:1 end:1 fox:1 jumps:1 lazy:1 over:1 "
                                         "quick:1 the:3");
        CU_ASSERT_EQUAL(out.partitions, (size_t)workers);
        CU_ASSERT_EQUAL(info.records, 3);
        CU_ASSERT_EQUAL(info.outputs_total, 1);
        CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
        /* The next batch starts from nothing: batches are independent. */
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 1000, NULL), SL_OK);
        CU_ASSERT_STRING_EQUAL(out.text, "");
        CU_ASSERT_EQUAL(out.batches, 2);
        sl_context_destroy(ctx);
    }
}

/* Many keys over many input partitions against a plain count. */
static void test_reduce_by_key_many_keys(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    sl_stream *counts =
        sl_stream_reduce_by_key(sl_stream_map(in, to_pair, NULL), sl_reduce_sum, NULL, 7);
    ts_out out;
    ts_collect(counts, &out);
    enum {
        NKEYS = 5000,
        N = 60000
    };
    static int expect[NKEYS];
    memset(expect, 0, sizeof(expect));
    unsigned seed = 42;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245 + 12345;
        int k = (int)((seed >> 8) % NKEYS);
        expect[k]++;
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "k%d", k);
        sl_record r = {.value = buf, .value_len = (uint32_t)n};
        ts_feed_records(src, &r, 1);
    }
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    int distinct = 0;
    for (int k = 0; k < NKEYS; k++) {
        distinct += expect[k] > 0;
    }
    CU_ASSERT_EQUAL(out.records, (size_t)distinct);
    CU_ASSERT_EQUAL(out.partitions, 7);
    /* Check a few keys' counts in the text. */
    for (int k = 0; k < NKEYS; k += 499) {
        char want[32];
        snprintf(want, sizeof(want), " k%d:%d ", k, expect[k]);
        char hay[65536 + 2];
        snprintf(hay, sizeof(hay), " %s ", out.text);
        CU_ASSERT_PTR_NOT_NULL(strstr(hay, want));
    }
    sl_context_destroy(ctx);
}

static void test_narrow_operators(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *lines = ts_source_add(ctx, "in", &src);
    sl_stream *words = sl_stream_flat_map(lines, split_words, NULL);
    ts_out o_filter, o_upper, o_keyby, o_values;
    ts_collect(sl_stream_filter(words, long_words, NULL), &o_filter);
    ts_collect(sl_stream_map(sl_stream_filter(words, long_words, NULL), upper, NULL), &o_upper);
    ts_collect(sl_stream_key_by(sl_stream_filter(words, long_words, NULL), first_char_key, NULL),
               &o_keyby);
    ts_collect(sl_stream_map_values(sl_stream_map(words, to_pair, NULL), times_ten, NULL),
               &o_values);
    ts_feed(src, (const char *const[]){"ab abcd", "abcde", NULL});
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o_filter.text, "abcd abcde");
    CU_ASSERT_STRING_EQUAL(o_upper.text, "ABCD ABCDE");
    CU_ASSERT_STRING_EQUAL(o_keyby.text, "a=abcd a=abcde");
    CU_ASSERT_STRING_EQUAL(o_values.text, "ab:10 abcd:10 abcde:10");
    /* words feeds four consumers: it is materialized, the filters are not shared. */
    CU_ASSERT_TRUE(words->materialize);
    sl_context_destroy(ctx);
}

static void test_union_and_repartition(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *a, *b;
    sl_stream *sa = ts_source_add(ctx, "a", &a);
    sl_stream *sb = ts_source_add(ctx, "b", &b);
    ts_out u, r;
    sl_stream *un = sl_stream_union(sa, sb);
    ts_collect(un, &u);
    ts_collect(sl_stream_repartition(un, 3), &r);
    ts_feed(a, (const char *const[]){"a1", "a2", NULL});
    ts_feed(b, (const char *const[]){"b1", NULL});
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(u.text, "a1 a2 b1");
    CU_ASSERT_EQUAL(u.partitions, 2);
    CU_ASSERT_STRING_EQUAL(r.text, "a1 a2 b1");
    CU_ASSERT_EQUAL(r.partitions, 3);
    sl_context_destroy(ctx);
}

static void test_count_reduce_count_by_value(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    sl_stream *words = sl_stream_flat_map(in, split_words, NULL);
    ts_out c, cbv, red;
    ts_collect(sl_stream_count(words), &c);
    ts_collect(sl_stream_count_by_value(words, 0), &cbv);
    ts_collect(sl_stream_reduce(sl_stream_map(words, to_pair, NULL), sl_reduce_sum, NULL), &red);
    ts_feed(src, (const char *const[]){"x y x", "z x", NULL});
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(c.text, ":5");
    CU_ASSERT_STRING_EQUAL(cbv.text, "x:3 y:1 z:1");
    CU_ASSERT_STRING_EQUAL(red.text, ":5");
    /* An empty batch: count says 0 (as Spark's count), reduce says nothing. */
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 1000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(c.text, ":0");
    CU_ASSERT_EQUAL(red.records, 0);
    sl_context_destroy(ctx);
}

static void test_min_max_and_custom_reduce(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out mn, mx, custom;
    ts_collect(sl_stream_reduce_by_key(in, sl_reduce_min, NULL, 0), &mn);
    ts_collect(sl_stream_reduce_by_key(in, sl_reduce_max, NULL, 0), &mx);
    ts_collect(sl_stream_reduce_by_key(in, min_bytes, NULL, 0), &custom);
    sl_record recs[] = {
        {.key = "a",
         .key_len = 1,
         .value = "pear",
         .value_len = 4,
         .num_type = SL_NUM_INT,
         .num.i = 5},
        {.key = "a",
         .key_len = 1,
         .value = "apple",
         .value_len = 5,
         .num_type = SL_NUM_INT,
         .num.i = -3},
        {.key = "b",
         .key_len = 1,
         .value = "fig",
         .value_len = 3,
         .num_type = SL_NUM_DOUBLE,
         .num.d = 2.5},
        {.key = "a",
         .key_len = 1,
         .value = "plum",
         .value_len = 4,
         .num_type = SL_NUM_INT,
         .num.i = 9},
    };
    ts_feed_records(src, recs, 4);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(mn.text, "a:-3 b:2.5");
    CU_ASSERT_STRING_EQUAL(mx.text, "a:9 b:2.5");
    /* The custom reducer's result keeps bytes of its inputs. */
    CU_ASSERT_STRING_EQUAL(custom.text, "a=apple b:2.5");
    sl_context_destroy(ctx);
}

static int join_values(const sl_record *l, const sl_record *r, sl_record *out, sl_emitter *e,
                       void *opaque)
{
    sl_record_set_int(out, l->num.i * 100 + (r ? r->num.i : 0));
    return SL_OK;
}

static void test_join_and_left_join(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *a, *b;
    sl_stream *sa = ts_source_add(ctx, "a", &a);
    sl_stream *sb = ts_source_add(ctx, "b", &b);
    ts_out j, lj, dflt;
    ts_collect(sl_stream_join(sa, sb, join_values, NULL, 0), &j);
    ts_collect(sl_stream_left_join(sa, sb, join_values, NULL, 3), &lj);
    ts_collect(sl_stream_join(sa, sb, NULL, NULL, 0), &dflt);
    sl_record left[] = {
        {.key = "k1", .key_len = 2, .num_type = SL_NUM_INT, .num.i = 1},
        {.key = "k2", .key_len = 2, .num_type = SL_NUM_INT, .num.i = 2},
        {.key = "k3", .key_len = 2, .num_type = SL_NUM_INT, .num.i = 3},
    };
    sl_record right[] = {
        {.key = "k1", .key_len = 2, .num_type = SL_NUM_INT, .num.i = 7},
        {.key = "k1", .key_len = 2, .num_type = SL_NUM_INT, .num.i = 8},
        {.key = "k3", .key_len = 2, .value = "v", .value_len = 1},
    };
    ts_feed_records(a, left, 3);
    ts_feed_records(b, right, 3);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(j.text, "k1:107 k1:108 k3:300");
    CU_ASSERT_STRING_EQUAL(lj.text, "k1:107 k1:108 k2:200 k3:300");
    /* The default keeps the left typed value; the text shows both sides. */
    CU_ASSERT_STRING_EQUAL(dflt.text, "k1:1 k1:1 k3:3");
    sl_context_destroy(ctx);
}

static int reverse_all(const sl_dataset *in, int64_t t, sl_emitter *e, void *opaque)
{
    size_t n = sl_dataset_count(in);
    sl_record r = {.key = "n", .key_len = 1};
    sl_record_set_int(&r, (int64_t)n);
    return sl_emit(e, &r);
}

static void test_transform(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out o;
    ts_collect(sl_stream_transform(in, reverse_all, NULL), &o);
    ts_feed(src, lines1);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "n:3");
    sl_context_destroy(ctx);
}

static void test_window(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out w, wc;
    sl_stream *win = sl_stream_window(in, 3000, 2000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(win);
    ts_collect(win, &w);
    ts_collect(sl_stream_count(win), &wc);
    /* Not a multiple of the batch interval: refused. */
    CU_ASSERT_PTR_NULL(sl_stream_window(in, 2500, 1000));
    CU_ASSERT_PTR_NULL(sl_stream_window(in, 3000, 1500));
    const char *batches[][3] = {{"a", NULL}, {"b", NULL}, {"c", NULL}, {"d", NULL}, {"e", NULL}};
    const char *expect[] = {NULL, "a b", NULL, "b c d", NULL};
    for (int i = 0; i < 5; i++) {
        ts_feed(src, batches[i]);
        size_t before = w.batches;
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + i * 1000, NULL), SL_OK);
        if (expect[i]) {
            CU_ASSERT_EQUAL(w.batches, before + 1);
            CU_ASSERT_STRING_EQUAL(w.text, expect[i]);
        } else {
            CU_ASSERT_EQUAL(w.batches, before); /* not a slide time */
        }
    }
    CU_ASSERT_STRING_EQUAL(wc.text, ":3");
    /* The source keeps its input for the window's length, no longer. */
    CU_ASSERT(in->ngen <= 3);
    sl_context_destroy(ctx);
}

/* What a sink is told its datasets span (window_start = batch_time - span): the interval
 * without a window, the window's length after one, the longest of a union, and a window of
 * windows. */
static void test_stream_span(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    sl_stream *win = sl_stream_window(in, 3000, 2000);
    sl_stream *wide = sl_stream_window(in, 4000, 2000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(win);
    CU_ASSERT_PTR_NOT_NULL_FATAL(wide);
    CU_ASSERT_EQUAL(sl__stream_span(in), 1000);
    CU_ASSERT_EQUAL(sl__stream_span(win), 3000);
    CU_ASSERT_EQUAL(sl__stream_span(sl_stream_count(win)), 3000);
    CU_ASSERT_EQUAL(sl__stream_span(sl_stream_union(win, wide)), 4000);
    /* A 6 s window over the 3 s windows (both sliding by 2 s) holds the windows ending at
     * t - 4 s, t - 2 s and t: input from t - 7 s on. */
    CU_ASSERT_EQUAL(sl__stream_span(sl_stream_window(win, 6000, 2000)), 7000);
    sl_context_destroy(ctx);
}

static void test_failed_records_counted(void)
{
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out o;
    ts_collect(sl_stream_filter(in, reject_x, NULL), &o);
    ts_feed(src, (const char *const[]){"ok", "xbad", "fine", "xworse", NULL});
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, &info), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "fine ok");
    CU_ASSERT_EQUAL(info.failed_records, 2);
    sl_context_stats st;
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.records_failed, 2);
    CU_ASSERT_EQUAL(st.batches_completed, 1);
    sl_context_destroy(ctx);
}

static void test_output_retry_holds_batch(void)
{
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out o;
    ts_collect(in, &o);
    o.fail_times = 2; /* the output asks for two retries, then succeeds */
    ts_feed(src, (const char *const[]){"kept", NULL});
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, &info), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "kept");
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    CU_ASSERT(info.processing_time >= 300); /* 100 + 200 ms of backoff */
    sl_context_destroy(ctx);
}

static void test_graph_rules(void)
{
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    sl_stream *w = sl_stream_window(in, 2000, 2000);
    /* Union and join need equal slides. */
    CU_ASSERT_PTR_NULL(sl_stream_union(in, w));
    CU_ASSERT_PTR_NULL(sl_stream_join(in, w, NULL, NULL, 0));
    /* NULL parents propagate. */
    CU_ASSERT_PTR_NULL(sl_stream_map(NULL, to_pair, NULL));
    CU_ASSERT_PTR_NULL(sl_stream_count(NULL));
    /* A context without outputs does not start. */
    CU_ASSERT_EQUAL(sl_context_start(ctx), SL_ERR_INVAL);
    sl_context_destroy(ctx);
    char err[128];
    sl_context_conf bad = {.batch_interval_ms = 5};
    CU_ASSERT_PTR_NULL(sl_context_new(&bad, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "10ms"));
}

void sl_test_register(void)
{
    SL_SUITE("stream", SL_TEST(word_count_reduce_by_key), SL_TEST(reduce_by_key_many_keys),
             SL_TEST(narrow_operators), SL_TEST(union_and_repartition),
             SL_TEST(count_reduce_count_by_value), SL_TEST(min_max_and_custom_reduce),
             SL_TEST(join_and_left_join), SL_TEST(transform), SL_TEST(window), SL_TEST(stream_span),
             SL_TEST(failed_records_counted), SL_TEST(output_retry_holds_batch),
             SL_TEST(graph_rules));
}

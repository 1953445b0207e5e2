/* test_reducers.c -- the reducers avg, first, last and count_distinct (sl_reducers.c) in every
 * form the YAML accepts them, built from YAML ops onto a scripted source and stepped batch by
 * batch: avg exact over sliding windows whose slides differ in size, first and last with
 * out-of-order times whatever the input order, count_distinct with duplicates across a
 * window's batches, state restored from the checkpoint; and the YAML join's output for JSON
 * values (sl_yamlops_join.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_cfg.h"
#include "sl_engine.h"
#include "support.h"

#define T0 1000000 /* first batch time used by the tests */

/* ==== A pipeline from YAML ops on a scripted source ==== */

typedef struct rig {
    sl_config *cfg;
    sl_context *ctx;
    ts_source *src;
    ts_out out;
    char dir[256];
    int step; /* batches stepped */
} rig;

/* Builds ops (a YAML flow list: "[reduce_by_key: avg]") on a scripted source in a context of
 * workers with a checkpoint directory: dir when given (a restart), else a new one. */
static bool rig_open(rig *g, const char *ops, int workers, const char *dir)
{
    memset(g, 0, sizeof(*g));
    if (dir) {
        snprintf(g->dir, sizeof(g->dir), "%s", dir);
    } else if (!ts_tmpdir(g->dir, sizeof(g->dir), "reducers")) {
        return false;
    }
    char y[2048], err[1024], desc[4096];
    snprintf(y, sizeof(y),
             "app:\n  batch_interval: 1s\n  checkpoint_dir: %s\n"
             "sources:\n  - {name: lines, type: tcp, port: 9999}\n"
             "streams:\n  - name: s\n    from: lines\n    ops: %s\n"
             "sinks:\n  - {name: out, type: stdout, from: s}\n",
             g->dir, ops);
    if (ts_config_load(y, &g->cfg, desc, sizeof(desc), err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "\n%s: %s\n", ops, err);
        return false;
    }
    sl_context_conf conf = {.name = "reducers",
                            .batch_interval_ms = 1000,
                            .workers = workers,
                            .checkpoint_dir = g->dir};
    g->ctx = sl_context_new(&conf, err, sizeof(err));
    if (!g->ctx) {
        return false;
    }
    sl_stream *s = ts_source_add(g->ctx, "in", &g->src);
    const cfg_stream *cs = &g->cfg->streams[0];
    for (size_t i = 0; s && i < cs->nops; i++) {
        s = cs->ops[i].def->apply(&cs->ops[i], s, NULL);
    }
    return s && ts_collect(s, &g->out) == SL_OK;
}

/* Ends the rig; keeps its directory when keep (for a restart). */
static void rig_close(rig *g, bool keep)
{
    sl_context_destroy(g->ctx);
    sl__config_destroy(g->cfg);
    if (!keep && g->dir[0]) {
        CU_ASSERT(ts_rmdir(g->dir));
    }
}

/* Feeds recs (n of them) as the next batch, steps it and returns the output's text. */
static const char *rig_step(rig *g, const sl_record *recs, size_t n)
{
    if (n) {
        ts_feed_records(g->src, recs, n);
    }
    sl_batch_info info;
    int rc = sl__context_step(g->ctx, T0 + 1000 * (int64_t)g->step++, &info);
    CU_ASSERT_EQUAL(rc, SL_OK);
    CU_ASSERT_EQUAL(info.failed_records, 0);
    return g->out.text;
}

#define STEP(g, ...)                                                                               \
    rig_step(g, (const sl_record[]){__VA_ARGS__},                                                  \
             sizeof((const sl_record[]){__VA_ARGS__}) / sizeof(sl_record))
#define STEP_EMPTY(g) rig_step(g, NULL, 0)

/* want ("k:1", "k=x") without its key when the output has none (reduce, reduce_by_window). */
static const char *unkeyed(const char *want, bool keyless)
{
    return keyless && want[0] ? want + (want[1] == '=' ? 2 : 1) : want;
}

#define EXPECT_TEXT(got, want)                                                                     \
    do {                                                                                           \
        const char *g_ = (got);                                                                    \
        if (strcmp(g_, want) != 0) {                                                               \
            fprintf(stderr, "\n    line %d: want '%s', got '%s'\n", __LINE__, want, g_);           \
        }                                                                                          \
        CU_ASSERT_STRING_EQUAL(g_, want);                                                          \
    } while (0)

static sl_record num_i(const char *key, int64_t v)
{
    sl_record r = {.key = key, .key_len = (uint32_t)strlen(key), .num_type = SL_NUM_INT};
    r.num.i = v;
    return r;
}

static sl_record num_d(const char *key, double v)
{
    sl_record r = {.key = key, .key_len = (uint32_t)strlen(key), .num_type = SL_NUM_DOUBLE};
    r.num.d = v;
    return r;
}

static sl_record text(const char *key, const char *value)
{
    return (sl_record){.key = key,
                       .key_len = (uint32_t)strlen(key),
                       .value = value,
                       .value_len = (uint32_t)strlen(value)};
}

/* A record of key with value, time ts and its position (partition, offset) in its source. */
static sl_record at(const char *key, const char *value, int64_t ts, const sl_record_meta *m)
{
    sl_record r = text(key, value);
    r.ts = ts;
    r.meta = m;
    return r;
}

/* ==== avg ==== */

/* Slides of 1, 4 and 1 records: the window's average is its sum over its count (2.8 where the
 * average of the slides' averages would be 5.5), in the plain form, with the inverse, over
 * keyed partitions and over the whole stream. When the records have left, the plain form
 * says the key is gone (a tombstone) and the inverse drops it. */
static void test_avg_exact_over_sliding_window(void)
{
    static const char *const forms[] = {
        "[reduce_by_key_and_window: {fn: avg, length: 2s, slide: 1s}]",
        "[reduce_by_key_and_window: {fn: avg, length: 2s, inverse: true, partitions: 3}]",
        "[reduce_by_window: {fn: avg, length: 2s, slide: 1s}]",
        "[reduce_by_key_and_window: {fn: avg, length: 2s, keyed: true, partitions: 2}]",
    };
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        rig g;
        bool nokey = f == 2;
        CU_ASSERT_FATAL(rig_open(&g, forms[f], 2, NULL));
        EXPECT_TEXT(STEP(&g, num_i("k", 10)), unkeyed("k:10", nokey));
        EXPECT_TEXT(STEP(&g, num_i("k", 1), num_i("k", 1), num_i("k", 1), num_i("k", 1)),
                    unkeyed("k:2.8", nokey));
        EXPECT_TEXT(STEP(&g, num_d("k", 4.0)), unkeyed("k:1.6", nokey));
        EXPECT_TEXT(STEP_EMPTY(&g), unkeyed("k:4", nokey));
        const char *gone = STEP_EMPTY(&g);
        if (f == 0) {
            EXPECT_TEXT(gone, "k="); /* the plain form's tombstone */
        } else {
            EXPECT_TEXT(gone, "");
        }
        rig_close(&g, false);
    }
}

/* drop_zero drops an average of 0 (the filter judges the partial result's typed value, the
 * average so far); the plain form then says the key is gone, the inverse just drops it. */
static void test_avg_drop_zero(void)
{
    static const char *const forms[] = {
        "[reduce_by_key_and_window: {fn: avg, length: 2s, drop_zero: true}]",
        "[reduce_by_key_and_window: {fn: avg, length: 2s, inverse: true, drop_zero: true}]",
        "[reduce_by_key_and_window: {fn: avg, length: 2s, keyed: true, drop_zero: true}]",
    };
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        rig g;
        CU_ASSERT_FATAL(rig_open(&g, forms[f], 2, NULL));
        EXPECT_TEXT(STEP(&g, num_i("a", 2), num_i("b", 3)), "a:2 b:3");
        EXPECT_TEXT(STEP(&g, num_i("a", -2), num_i("b", 1)), f == 0 ? "a= b:2" : "b:2");
        rig_close(&g, false);
    }
}

/* Keys apart, records without a typed value skipped (SQL's AVG skips NULLs), integers and
 * doubles mixed; reduce over the batch; running over all batches (3, not the average 3.75 of
 * the batches' averages). */
static void test_avg_reduce_by_key_reduce_and_running(void)
{
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "[reduce_by_key: {fn: avg, partitions: 2}]", 2, NULL));
    EXPECT_TEXT(STEP(&g, num_i("a", 1), num_i("a", 2), text("a", "x"), num_d("b", 5.5)),
                "a:1.5 b:5.5");
    rig_close(&g, false);

    CU_ASSERT_FATAL(rig_open(&g, "[reduce: avg]", 2, NULL));
    const char *t = STEP(&g, num_i("a", 1), num_i("b", 2), num_i("c", 6));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, ":3"));
    CU_ASSERT_EQUAL(g.out.records, 1);
    rig_close(&g, false);

    CU_ASSERT_FATAL(rig_open(&g, "[running: {fn: avg}]", 2, NULL));
    EXPECT_TEXT(STEP(&g, num_i("a", 1), num_i("a", 2)), "a:1.5");
    EXPECT_TEXT(STEP(&g, num_i("a", 6)), "a:3");
    EXPECT_TEXT(STEP(&g, num_i("b", 1)), "b:1");
    rig_close(&g, false);
}

/* ==== first and last ==== */

/* Out of order in a batch and across a window's batches; equal times ordered by partition
 * then offset. The result is the same for every order of the input and every number of
 * workers and partitions. */
static void test_first_last_by_time_whatever_the_order(void)
{
    static const sl_record_meta p0 = {.partition = 0, .offset = 1},
                                p0b = {.partition = 0, .offset = 3},
                                p1 = {.partition = 1, .offset = 0};
    sl_record recs[] = {at("k", "late", 500, &p0), at("k", "early-p1", 100, &p1),
                        at("k", "mid", 300, &p0), at("k", "early", 100, &p0),
                        at("k", "late-after", 500, &p0b)};
    size_t n = sizeof(recs) / sizeof(recs[0]);
    for (int order = 0; order < 3; order++) {
        /* rotate the input */
        sl_record in[8];
        for (size_t i = 0; i < n; i++) {
            in[i] = recs[(i + (size_t)order * 2) % n];
        }
        rig g;
        CU_ASSERT_FATAL(rig_open(&g, "[reduce_by_key: {fn: first, partitions: 3}]", 2, NULL));
        EXPECT_TEXT(rig_step(&g, in, n), "k=early");
        rig_close(&g, false);
        CU_ASSERT_FATAL(rig_open(&g, "[reduce_by_key: {fn: last, partitions: 2}]", 1, NULL));
        EXPECT_TEXT(rig_step(&g, in, n), "k=late-after");
        rig_close(&g, false);
    }
}

/* A later batch bringing an earlier time: the window's first is that record; last keeps the
 * latest time. The typed value comes with the record (7 then 3: not a min or max). */
static void test_first_last_in_windows_and_running(void)
{
    static const struct {
        const char *ops;
        const char *want[3];
    } cases[] = {
        {"[reduce_by_key_and_window: {fn: first, length: 2s}]", {"k=x", "k=y", "k=y"}},
        {"[reduce_by_key_and_window: {fn: last, length: 2s}]", {"k=x", "k=x", "k=z"}},
        {"[reduce_by_window: {fn: first, length: 2s}]", {"k=x", "k=y", "k=y"}},
        {"[reduce_by_key_and_window: {fn: first, length: 2s, keyed: true}]", {"k=x", "k=y", "k=y"}},
        {"[reduce_by_key_and_window: {fn: last, length: 2s, keyed: true}]", {"k=x", "k=x", "k=z"}},
        {"[running: {fn: first}]", {"k=x", "k=y", "k=y"}},
        {"[running: {fn: last}]", {"k=x", "k=x", "k=z"}},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        rig g;
        bool nokey = strstr(cases[c].ops, "reduce_by_window") != NULL;
        CU_ASSERT_FATAL(rig_open(&g, cases[c].ops, 2, NULL));
        EXPECT_TEXT(STEP(&g, at("k", "x", 5000, NULL)), unkeyed(cases[c].want[0], nokey));
        EXPECT_TEXT(STEP(&g, at("k", "y", 50, NULL)), unkeyed(cases[c].want[1], nokey));
        EXPECT_TEXT(STEP(&g, at("k", "z", 9000, NULL)), unkeyed(cases[c].want[2], nokey));
        rig_close(&g, false);
    }
    rig g;
    sl_record a = num_i("k", 7), b = num_i("k", 3);
    a.ts = 5;
    b.ts = 9;
    CU_ASSERT_FATAL(rig_open(&g, "[reduce_by_key: first]", 2, NULL));
    EXPECT_TEXT(STEP(&g, b, a), "k:7");
    rig_close(&g, false);
    CU_ASSERT_FATAL(rig_open(&g, "[reduce_by_key: last]", 2, NULL));
    EXPECT_TEXT(STEP(&g, b, a), "k:3");
    rig_close(&g, false);
}

/* The output keeps the chosen record's value bytes, not the partial result's (key: value
 * makes them the key), with its typed value. */
static void test_first_keeps_value_bytes(void)
{
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "[reduce_by_key: first, key: value]", 1, NULL));
    sl_record r = text("k", "{\"n\":1}");
    r.num_type = SL_NUM_INT;
    r.num.i = 1;
    sl_record later = text("k", "other");
    later.ts = 10;
    EXPECT_TEXT(STEP(&g, later, r), "{\"n\":1}:1");
    rig_close(&g, false);
}

/* ==== count_distinct ==== */

/* Duplicates within a batch and across the batches of a window count once (3, where the
 * batches' counts add up to 4); the typed value when there is one (7, 7.0 and "7" are one
 * value), else the bytes. */
static void test_count_distinct_across_batches(void)
{
    static const char *const forms[] = {
        "[reduce_by_key_and_window: {fn: count_distinct, length: 2s, partitions: 2}]",
        "[reduce_by_window: {fn: count_distinct, length: 2s}]",
        "[reduce_by_key_and_window: {fn: count_distinct, length: 2s, keyed: true}]",
    };
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        rig g;
        bool nokey = f == 1;
        CU_ASSERT_FATAL(rig_open(&g, forms[f], 2, NULL));
        EXPECT_TEXT(STEP(&g, text("u", "a"), text("u", "b"), text("u", "a")),
                    unkeyed("u:2", nokey));
        EXPECT_TEXT(STEP(&g, text("u", "b"), text("u", "c")), unkeyed("u:3", nokey));
        EXPECT_TEXT(STEP_EMPTY(&g), unkeyed("u:2", nokey));
        rig_close(&g, false);
    }
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "[reduce_by_key: count_distinct]", 2, NULL));
    EXPECT_TEXT(STEP(&g, num_i("u", 7), num_d("u", 7.0), text("u", "7"), num_d("u", 7.5),
                     text("v", ""), text("v", "")),
                "u:2 v:1");
    rig_close(&g, false);
    CU_ASSERT_FATAL(rig_open(&g, "[running: {fn: count_distinct}]", 2, NULL));
    EXPECT_TEXT(STEP(&g, text("u", "a"), text("u", "b")), "u:2");
    EXPECT_TEXT(STEP(&g, text("u", "b"), text("u", "c")), "u:3");
    rig_close(&g, false);
}

/* Many distinct values: the sorted set is merged right (the count is exact). */
static void test_count_distinct_many_values(void)
{
    rig g;
    CU_ASSERT_FATAL(rig_open(&g, "[reduce_by_key: {fn: count_distinct, partitions: 2}]", 2, NULL));
    static char vals[1000][8];
    sl_record recs[2000];
    for (int i = 0; i < 1000; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%d", (i * 7919) % 600);
        recs[2 * i] = text("u", vals[i]);
        recs[2 * i + 1] = text("u", vals[i]);
    }
    EXPECT_TEXT(rig_step(&g, recs, 2000), "u:600");
    rig_close(&g, false);
}

/* ==== State restored from the checkpoint ==== */

/* Stopped right after a checkpoint (every 10 batches of 1 s) and started again on the same
 * directory: the running average and the inverse window's sum and count go on from there. */
static void test_avg_state_restored_from_checkpoint(void)
{
    static const struct {
        const char *ops;
        const char *before, *after;
    } cases[] = {
        {"[running: {fn: avg}]", "k:5.5", "k:14.0909"},
        {"[reduce_by_key_and_window: {fn: avg, length: 3s, inverse: true}]", "k:9", "k:39.6667"},
        {"[reduce_by_key_and_window: {fn: avg, length: 3s, keyed: true}]", "k:9", "k:39.6667"},
        {"[running: {fn: count_distinct}]", "k:10", "k:11"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        rig g;
        CU_ASSERT_FATAL(rig_open(&g, cases[c].ops, 2, NULL));
        const char *t = "";
        for (int i = 1; i <= 10; i++) {
            t = STEP(&g, num_i("k", i));
        }
        EXPECT_TEXT(t, cases[c].before);
        char dir[256];
        snprintf(dir, sizeof(dir), "%s", g.dir);
        rig_close(&g, true);
        CU_ASSERT_FATAL(rig_open(&g, cases[c].ops, 2, dir));
        g.step = 10;
        EXPECT_TEXT(STEP(&g, num_i("k", 100)), cases[c].after);
        rig_close(&g, false);
    }
}

/* ==== On event time ==== */

static sl_record at_num(const char *key, int64_t v, int64_t ts)
{
    sl_record r = num_i(key, v);
    r.ts = ts;
    return r;
}

/* Windows of 2 s every 1 s on the records' time, panes of 1 s: the window [0, 2 s) holds
 * 10 and 4 (pane 0, out of order) and four 1s (pane 1): its avg is 18 / 6 = 3 (the average
 * of the panes' averages would be 4); first and last by record time, not arrival (the pane
 * [1 s, 2 s) starts with the record at 1.2 s, which came third); distinct values over the
 * panes of a window. */
static void test_event_time_windows_reduce_partials(void)
{
    static const struct {
        const char *fn, *want;
    } cases[] = {
        {"avg", "k:7 | k:1 k:3"},
        {"first", "k=ten | k=one-b k=ten"},
        {"last", "k=four | k=one-last k=one-last"},
        {"count_distinct", "k:2 | k:1 k:3"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char ops[256];
        snprintf(ops, sizeof(ops),
                 "[reduce_by_key_and_window: {fn: %s, length: 2s, slide: 1s, time: event}]",
                 cases[c].fn);
        rig g;
        CU_ASSERT_FATAL(rig_open(&g, ops, 2, NULL));
        bool text_values = strcmp(cases[c].fn, "first") == 0 || strcmp(cases[c].fn, "last") == 0;
        sl_record r[] = {at_num("k", 10, 100), at_num("k", 1, 1500), at_num("k", 1, 1200),
                         at_num("k", 1, 1700), at_num("k", 1, 1800), at_num("k", 4, 500)};
        static const char *const names[] = {"ten", "one", "one-b", "one-c", "one-last", "four"};
        for (size_t i = 0; i < 6; i++) {
            if (text_values) {
                r[i].num_type = SL_NUM_NONE;
                r[i].value = names[i];
                r[i].value_len = (uint32_t)strlen(names[i]);
            }
        }
        /* the first batch's watermark (1800) closes [-1 s, 1 s); the next one's (5000) the
         * windows ending at 2 s and 3 s */
        char both[512];
        snprintf(both, sizeof(both), "%s | ", rig_step(&g, r, 6));
        snprintf(both + strlen(both), sizeof(both) - strlen(both), "%s",
                 STEP(&g, at_num("k", 0, 5000)));
        EXPECT_TEXT(both, cases[c].want);
        rig_close(&g, false);
    }
}

/* Late records within allowed_lateness update their window's avg, emitted again: the pane
 * kept its sum and count, so 10, 40 and 25 give 25 (averaging the emitted 10 with the late
 * records' 32.5 would give 21.25). */
static void test_event_time_late_record_updates_avg(void)
{
    rig g;
    CU_ASSERT_FATAL(rig_open(
        &g, "[reduce_by_key_and_window: {fn: avg, length: 1s, time: event, allowed_lateness: 5s}]",
        2, NULL));
    EXPECT_TEXT(STEP(&g, at_num("k", 10, 100), at_num("k", 20, 2500)), "k:10");
    EXPECT_TEXT(STEP(&g, at_num("k", 40, 200), at_num("k", 25, 700)), "k:25");
    rig_close(&g, false);
}

/* ==== The join's output ==== */

static void test_join_json_objects_nest_both_sides(void)
{
    static const struct {
        bool left;
        const char *l, *r; /* r NULL: no right record */
        const char *want;
    } cases[] = {
        {false, "{\"id\":1,\"a\":2}", " {\"id\":1,\"b\":3} ",
         "k={\"left\":{\"id\":1,\"a\":2},\"right\": {\"id\":1,\"b\":3} }"},
        {true, "{\"a\":1}", NULL, "k={\"left\":{\"a\":1},\"right\":null}"},
        {false, "{\"a\":1}", "plain", "k=({\"a\":1},plain)"},
        {false, "[1]", "{\"b\":1}", "k=([1],{\"b\":1})"},
        {false, "{not json}", "{\"b\":1}", "k=({not json},{\"b\":1})"},
        {true, "x", NULL, "k=(x,null)"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        sl_context *ctx = ts_context(1000, 2);
        ts_source *a, *b;
        sl_stream *sa = ts_source_add(ctx, "a", &a);
        sl_stream *sb = ts_source_add(ctx, "b", &b);
        sl_stream *j = cases[c].left ? sl_stream_left_join(sa, sb, sl__yamlops_join, NULL, 2)
                                     : sl_stream_join(sa, sb, sl__yamlops_join, NULL, 2);
        ts_out out;
        CU_ASSERT_EQUAL_FATAL(ts_collect(j, &out), SL_OK);
        sl_record l = text("k", cases[c].l);
        ts_feed_records(a, &l, 1);
        if (cases[c].r) {
            sl_record r = text("k", cases[c].r);
            ts_feed_records(b, &r, 1);
        }
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
        EXPECT_TEXT(out.text, cases[c].want);
        sl_context_destroy(ctx);
    }
}

void sl_test_register(void)
{
    SL_SUITE(
        "reducers", SL_TEST(avg_exact_over_sliding_window),
        SL_TEST(avg_reduce_by_key_reduce_and_running), SL_TEST(avg_drop_zero),
        SL_TEST(first_last_by_time_whatever_the_order), SL_TEST(first_last_in_windows_and_running),
        SL_TEST(first_keeps_value_bytes), SL_TEST(count_distinct_across_batches),
        SL_TEST(count_distinct_many_values), SL_TEST(avg_state_restored_from_checkpoint),
        SL_TEST(event_time_windows_reduce_partials), SL_TEST(event_time_late_record_updates_avg));
    SL_SUITE("yaml_join", SL_TEST(join_json_objects_nest_both_sides));
}

/* test_positions.c -- input positions (sl_positions.c): the rule a sink applies to a range,
 * the merge of several sinks' positions into where a source resumes and where it must cut
 * its batches, the ranges a batch's sinks are given, and a fenced batch: dropped without
 * stopping the pipeline, its sources told, and not left pending. */
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_engine.h"

static void test_check_range_write_skip_fence(void)
{
    sl_input_range r = {.source = "in", .topic = "t", .partition = 0, .from = 100, .until = 150};
    CU_ASSERT_EQUAL(sl_position_check_range(&r, -1), SL_POSITION_WRITE); /* holds nothing */
    CU_ASSERT_EQUAL(sl_position_check_range(&r, 100), SL_POSITION_WRITE);
    CU_ASSERT_EQUAL(sl_position_check_range(&r, 150), SL_POSITION_SKIP); /* already held */
    CU_ASSERT_EQUAL(sl_position_check_range(&r, 170), SL_POSITION_SKIP);
    CU_ASSERT_EQUAL(sl_position_check_range(&r, 120), SL_POSITION_FENCED); /* inside it */
    CU_ASSERT_EQUAL(sl_position_check_range(&r, 90), SL_POSITION_FENCED);  /* a gap before */
}

static void test_merge_keeps_lowest_and_rising_cuts(void)
{
    sl_source_position p = {.topic = "t", .next = -1};
    sl_source_position_merge(&p, -1);
    CU_ASSERT_EQUAL(p.next, -1);
    int64_t vs[] = {300, 100, 200, 300, 100, 250};
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        sl_source_position_merge(&p, vs[i]);
    }
    CU_ASSERT_EQUAL(p.next, 100);
    CU_ASSERT_EQUAL_FATAL(p.ncut, 3);
    CU_ASSERT_EQUAL(p.cut[0], 200);
    CU_ASSERT_EQUAL(p.cut[1], 250);
    CU_ASSERT_EQUAL(p.cut[2], 300);
}

/* ==== A source that declares ranges, sinks that record positions ==== */

typedef struct rsrc {
    int64_t next; /* offset of partition 0 where the next batch starts */
    int failed;   /* on_batch_failed calls */
    int done;
} rsrc;

static int rsrc_next(void *data, int64_t t, sl_batch_input *in)
{
    rsrc *s = data;
    sl_record r[10];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 10; i++) {
        r[i].value = "x";
        r[i].value_len = 1;
    }
    int rc = sl_batch_input_add_records(in, r, 10);
    if (rc == SL_OK) {
        rc = sl_batch_input_add_range(in, "topic", 0, s->next, s->next + 10);
    }
    s->next += 10;
    return rc;
}

static void rsrc_failed(void *data, int64_t t)
{
    ((rsrc *)data)->failed++;
}

static void rsrc_done(void *data, int64_t t)
{
    ((rsrc *)data)->done++;
}

static const sl_option no_options[] = {{0}};
static const sl_connector rsrc_connector = {.name = "rsrc",
                                            .flags = SL_SOURCE,
                                            .options = no_options,
                                            .ctx_size = sizeof(rsrc),
                                            .next_batch = rsrc_next,
                                            .on_batch_done = rsrc_done,
                                            .on_batch_failed = rsrc_failed};

/* A sink with a position per partition, applying the rule of sl_connector.h. */
typedef struct psink {
    int64_t position; /* of ("in", "topic", 0); -1 none */
    int writes, skips, fences;
    size_t last_nranges;
    char last_source[16];
} psink;

static int psink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    psink *k = data;
    k->last_nranges = out->nranges;
    bool write = true, skip = true;
    for (size_t i = 0; i < out->nranges; i++) {
        snprintf(k->last_source, sizeof(k->last_source), "%s", out->ranges[i].source);
        sl_position_check r = sl_position_check_range(&out->ranges[i], k->position);
        write = write && r == SL_POSITION_WRITE;
        skip = skip && r == SL_POSITION_SKIP;
    }
    if (out->nranges && skip) {
        k->skips++;
        return SL_OK;
    }
    if (!write) {
        k->fences++;
        snprintf(errstr, errsize, "held elsewhere");
        return SL_ERR_FENCED;
    }
    for (size_t i = 0; i < out->nranges; i++) {
        k->position = out->ranges[i].until;
    }
    k->writes++;
    return SL_OK;
}

static int psink_positions(void *data, const char *pipeline, sl_position *pos, size_t n,
                           char *errstr, size_t errsize)
{
    psink *k = data;
    for (size_t i = 0; i < n; i++) {
        pos[i].next = strcmp(pos[i].source, "in") == 0 && pos[i].partition == 0 ? k->position : -1;
    }
    return SL_OK;
}

static const sl_connector psink_connector = {.name = "psink",
                                             .flags = SL_SINK,
                                             .options = no_options,
                                             .ctx_size = sizeof(psink),
                                             .write = psink_write,
                                             .positions = psink_positions};

typedef struct fixture {
    sl_context *ctx;
    sl_instance *src;
    rsrc *rs;
    psink *a, *b;
} fixture;

static bool fixture_new(fixture *f)
{
    memset(f, 0, sizeof(*f));
    char err[256];
    sl_context_conf conf = {.name = "positions", .batch_interval_ms = 1000, .workers = 1};
    f->ctx = sl_context_new(&conf, err, sizeof(err));
    if (!f->ctx) {
        return false;
    }
    sl_stream *in =
        sl_context_add_source_connector(f->ctx, &rsrc_connector, "in", NULL, err, sizeof(err));
    if (!in || sl_stream_to_connector(in, &psink_connector, "a", NULL, err, sizeof(err)) ||
        sl_stream_to_connector(in, &psink_connector, "b", NULL, err, sizeof(err))) {
        return false;
    }
    f->src = f->ctx->sources;
    f->rs = f->src->cctx;
    f->a = f->ctx->sinks->cctx;
    f->b = f->ctx->sinks->next->cctx;
    f->a->position = f->b->position = -1;
    return true;
}

static void test_sinks_get_ranges_and_source_gets_positions(void)
{
    fixture f;
    CU_ASSERT_TRUE_FATAL(fixture_new(&f));
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(f.a->last_nranges, 1);
    CU_ASSERT_STRING_EQUAL(f.a->last_source, "in");
    CU_ASSERT_EQUAL(f.a->position, 10);
    CU_ASSERT_EQUAL(f.b->position, 10);
    /* Sink b falls behind (it lost its last write): the source resumes at the lowest and
     * must cut at the other. */
    f.b->position = 0;
    f.a->position = 10;
    sl_source_position pos = {.topic = "topic", .partition = 0};
    size_t sinks = 0;
    char err[128];
    CU_ASSERT_EQUAL(sl_instance_sink_positions(f.src, &pos, 1, &sinks, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(sinks, 2);
    CU_ASSERT_EQUAL(pos.next, 0);
    CU_ASSERT_EQUAL_FATAL(pos.ncut, 1);
    CU_ASSERT_EQUAL(pos.cut[0], 10);
    CU_ASSERT_FALSE(pos.missing);
    /* One sink holds nothing while the other holds some: missing. */
    f.b->position = -1;
    CU_ASSERT_EQUAL(sl_instance_sink_positions(f.src, &pos, 1, &sinks, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(pos.next, 10);
    CU_ASSERT_TRUE(pos.missing);
    /* A partition no sink holds. */
    sl_source_position other = {.topic = "topic", .partition = 7};
    CU_ASSERT_EQUAL(sl_instance_sink_positions(f.src, &other, 1, &sinks, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(other.next, -1);
    CU_ASSERT_FALSE(other.missing);
    sl_context_destroy(f.ctx);
}

static void test_fenced_batch_is_dropped_not_fatal(void)
{
    fixture f;
    CU_ASSERT_TRUE_FATAL(fixture_new(&f));
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK); /* [0,10) both */
    /* Another instance wrote [10,20) and [20,30) to sink b meanwhile. */
    f.b->position = 30;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 2000, &info), SL_OK); /* [10,20): a writes, b skips */
    CU_ASSERT_EQUAL(f.a->position, 20);
    CU_ASSERT_EQUAL(f.b->skips, 1);
    f.a->position = 25; /* a is now inside the next range: fenced */
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 3000, &info), SL_OK); /* [20,30) */
    CU_ASSERT_EQUAL(f.a->fences, 1);
    CU_ASSERT_EQUAL(f.rs->failed, 1);
    CU_ASSERT_EQUAL(f.rs->done, 2);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    CU_ASSERT_NOT_EQUAL(info.error[0], '\0');
    CU_ASSERT_EQUAL(f.ctx->fatal_err, SL_OK); /* not a reason to stop */
    CU_ASSERT_FALSE(atomic_load(&f.ctx->stop_requested));
    sl_context_destroy(f.ctx);
}

static int ok_foreach(const sl_dataset *ds, int64_t t, void *opaque)
{
    return SL_OK;
}

/* A fenced output tells the sources it reads that the batch failed (they ask the sinks
 * again); a source whose outputs committed is told the batch is done. */
static void test_fence_tells_only_the_sources_read(void)
{
    char err[256];
    sl_context_conf conf = {.name = "positions", .batch_interval_ms = 1000, .workers = 1};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    sl_stream *a =
        sl_context_add_source_connector(ctx, &rsrc_connector, "in", NULL, err, sizeof(err));
    sl_stream *b =
        sl_context_add_source_connector(ctx, &rsrc_connector, "other", NULL, err, sizeof(err));
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL_FATAL(sl_stream_to_connector(a, &psink_connector, "s", NULL, err, sizeof(err)),
                          SL_OK);
    CU_ASSERT_EQUAL_FATAL(sl_stream_foreach_batch(b, ok_foreach, NULL), SL_OK);
    psink *k = ctx->sinks->cctx;
    k->position = 5; /* the batch reads [0, 10): fenced */
    rsrc *ra = ctx->sources->cctx, *rb = ctx->sources->next->cctx;
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(k->fences, 1);
    CU_ASSERT_EQUAL(ra->failed, 1);
    CU_ASSERT_EQUAL(ra->done, 0);
    CU_ASSERT_EQUAL(rb->failed, 0);
    CU_ASSERT_EQUAL(rb->done, 1);
    sl_context_destroy(ctx);
}

/* A sink of a window that slides every 2 batches gets the ranges of both batches, merged:
 * its position moves on without a gap (it would be fenced at its second write). */
static void test_window_sink_gets_the_ranges_of_its_slide(void)
{
    char err[256];
    sl_context_conf conf = {.name = "positions", .batch_interval_ms = 1000, .workers = 1};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    sl_stream *in =
        sl_context_add_source_connector(ctx, &rsrc_connector, "in", NULL, err, sizeof(err));
    sl_stream *w = sl_stream_window(in, 2000, 2000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL_FATAL(sl_stream_to_connector(w, &psink_connector, "w", NULL, err, sizeof(err)),
                          SL_OK);
    psink *k = ctx->sinks->cctx;
    k->position = -1;
    sl_batch_info info;
    for (int64_t t = 1000; t <= 6000; t += 1000) {
        CU_ASSERT_EQUAL(sl__context_step(ctx, t, &info), SL_OK);
    }
    CU_ASSERT_EQUAL(k->writes, 3);
    CU_ASSERT_EQUAL(k->fences, 0);
    CU_ASSERT_EQUAL(k->position, 60);
    CU_ASSERT_EQUAL(k->last_nranges, 1);
    sl_context_destroy(ctx);
}

void sl_test_register(void)
{
    SL_SUITE("positions", SL_TEST(check_range_write_skip_fence),
             SL_TEST(merge_keeps_lowest_and_rising_cuts),
             SL_TEST(sinks_get_ranges_and_source_gets_positions),
             SL_TEST(fenced_batch_is_dropped_not_fatal),
             SL_TEST(window_sink_gets_the_ranges_of_its_slide),
             SL_TEST(fence_tells_only_the_sources_read));
}

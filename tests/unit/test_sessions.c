/* test_sessions.c -- event-time windows beyond the fixed ones: session windows
 * (sl_window_session.c: merges by a late record bridging two sessions, extensions, the
 * tombstones of the bounds emitted before, lateness, reducers with partial results, the open
 * sessions restored from a changelog and from a checkpoint), the late output
 * (sl_window_late.c) and window offsets. Each batch's windows are compared with the ones
 * worked out by hand in the comments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_config.h"
#include "sl_engine.h"
#include "sl_reducers.h"
#include "support.h"

#define NPART 2

/* ==== A partitioned source: per batch, records "k@p:T" or "k@p:T=V" (value V, else 1) ==== */

typedef struct psrc {
    sl_instance *self;
    const char *script[8][8];
    int batch;
    int64_t next[NPART];
    bool ask; /* ask where the sinks are (restoring) at the next batch */
    bool owns[NPART];
} psrc;

static int psrc_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    psrc *s = data;
    s->self = ins;
    for (int p = 0; p < NPART; p++) {
        s->owns[p] = true;
    }
    return SL_OK;
}

static int psrc_next(void *data, int64_t t, sl_batch_input *in)
{
    psrc *s = data;
    if (s->ask) {
        s->ask = false;
        sl_source_position pos[NPART];
        size_t n = 0, sinks;
        char err[256];
        for (int p = 0; p < NPART; p++) {
            if (s->owns[p]) {
                pos[n++] = (sl_source_position){.topic = "t", .partition = p};
            }
        }
        CU_ASSERT_EQUAL(sl_instance_sink_positions(s->self, pos, n, &sinks, err, sizeof(err)),
                        SL_OK);
        for (size_t i = 0; i < n; i++) {
            if (pos[i].next >= 0) {
                s->next[pos[i].partition] = pos[i].next;
            }
        }
    }
    const char *const *keys = s->batch < 8 ? s->script[s->batch] : NULL;
    s->batch++;
    for (int p = 0; p < NPART; p++) {
        if (!s->owns[p]) {
            continue;
        }
        sl_record_meta meta[8];
        sl_record recs[8];
        size_t n = 0;
        for (size_t k = 0; keys && keys[k]; k++) {
            const char *at = strchr(keys[k], '@');
            if (atoi(at + 1) != p) {
                continue;
            }
            const char *eq = strchr(at, '=');
            meta[n] = (sl_record_meta){
                .source = "in", .topic = "t", .partition = p, .offset = s->next[p] + (int64_t)n};
            recs[n] = (sl_record){.key = keys[k],
                                  .key_len = (uint32_t)(at - keys[k]),
                                  .value = keys[k],
                                  .value_len = (uint32_t)strlen(keys[k]),
                                  .ts = atoll(strchr(at, ':') + 1),
                                  .meta = &meta[n]};
            sl_record_set_int(&recs[n], eq ? atoll(eq + 1) : 1);
            n++;
        }
        int rc = sl_batch_input_add_records(in, recs, n);
        if (rc == SL_OK) {
            rc = sl_batch_input_add_range(in, "t", p, s->next[p], s->next[p] + (int64_t)n);
        }
        s->next[p] += (int64_t)n;
        if (rc != SL_OK) {
            return rc;
        }
    }
    return SL_OK;
}

static const sl_option no_options[] = {{0}};
static const sl_connector psrc_connector = {.name = "psrc",
                                            .flags = SL_SOURCE,
                                            .options = no_options,
                                            .ctx_size = sizeof(psrc),
                                            .init = psrc_init,
                                            .next_batch = psrc_next};

/* ==== A changelog: per partition, the state records as written ==== */

typedef struct logrec {
    char key[16];
    char value[512]; /* NULL value: len < 0 */
    int32_t len;
    bool marker;
    int64_t until;
} logrec;

static struct {
    logrec recs[NPART][128];
    size_t n[NPART];
} the_log;

static int clog_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    for (size_t p = 0; p < out->ds->nparts; p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            int32_t part = r[i].meta ? r[i].meta->partition : -1;
            CU_ASSERT_FATAL(part >= 0 && part < NPART && r[i].value_len <= 512);
            logrec *l = &the_log.recs[part][the_log.n[part]++];
            *l = (logrec){.len = r[i].value ? (int32_t)r[i].value_len : -1};
            snprintf(l->key, sizeof(l->key), "%.*s", (int)r[i].key_len, r[i].key);
            if (r[i].value) {
                memcpy(l->value, r[i].value, r[i].value_len);
            }
        }
    }
    for (size_t i = 0; i < out->nranges; i++) {
        int32_t part = out->ranges[i].partition;
        the_log.recs[part][the_log.n[part]++] =
            (logrec){.marker = true, .until = out->ranges[i].until};
    }
    return SL_OK;
}

static int clog_restore(void *data, const char *pipeline, sl_position *pos, sl_restore_fn fn,
                        void *arg, char *errstr, size_t errsize)
{
    pos->next = -1;
    for (size_t i = 0; i < the_log.n[pos->partition]; i++) {
        const logrec *l = &the_log.recs[pos->partition][i];
        if (l->marker) {
            pos->next = l->until;
            continue;
        }
        sl_record r = {.key = l->key, .key_len = (uint32_t)strlen(l->key)};
        if (l->len >= 0) {
            r.value = l->value;
            r.value_len = (uint32_t)l->len;
        }
        int rc = fn(arg, &r);
        if (rc != SL_OK) {
            return rc;
        }
    }
    return SL_OK;
}

static const sl_connector clog_connector = {.name = "clog",
                                            .flags = SL_SINK,
                                            .options = no_options,
                                            .ctx_size = sizeof(int),
                                            .write = clog_write,
                                            .restore_state = clog_restore};

/* ==== The windows a sink gets: "key=N[start,end)" in order, "key=-[...)" a tombstone ==== */

typedef struct wsink {
    char out[1024];
} wsink;

static int wsink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    wsink *w = *(wsink **)data;
    w->out[0] = '\0';
    for (size_t p = 0; out->ds && p < out->ds->nparts; p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            sl_record_when when = sl_batch_output_when(out, &r[i]);
            char num[64];
            if (sl_record_is_tombstone(&r[i])) {
                snprintf(num, sizeof(num), "-");
            } else if (r[i].num_type == SL_NUM_DOUBLE) {
                snprintf(num, sizeof(num), "%g", r[i].num.d);
            } else if (r[i].num_type == SL_NUM_INT) {
                snprintf(num, sizeof(num), "%lld", (long long)r[i].num.i);
            } else {
                snprintf(num, sizeof(num), "'%.*s'", (int)r[i].value_len, r[i].value);
            }
            size_t len = strlen(w->out);
            snprintf(w->out + len, sizeof(w->out) - len, "%s%.*s=%s[%lld,%lld)", len ? " " : "",
                     (int)r[i].key_len, r[i].key, num, (long long)when.window_start,
                     (long long)when.window_end);
        }
    }
    return SL_OK;
}

static const sl_connector wsink_connector = {.name = "wsink",
                                             .flags = SL_SINK,
                                             .options = no_options,
                                             .ctx_size = sizeof(wsink *),
                                             .write = wsink_write};

/* The late output: "value" of each record, in order. */
static int late_collect(const sl_dataset *ds, int64_t t, void *opaque)
{
    char *out = opaque;
    out[0] = '\0';
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(out);
            snprintf(out + len, 256 - len, "%s%.*s", len ? " " : "", (int)r[i].value_len,
                     r[i].value);
        }
    }
    return SL_OK;
}

/* ==== A pipeline: windows of psrc, to wsink, a changelog and the late output ==== */

typedef struct owner {
    char dir[256];
    sl_context *ctx;
    psrc *src;
    wsink sink;
    char late[256];
} owner;

/* With rd (a reducer of sl_reducers.h) the window keeps partial results, else sums. */
static bool owner_new(owner *o, const sl_event_window *ew, const char *rd, const char *dir)
{
    memset(o, 0, sizeof(*o));
    char err[256];
    if (dir) {
        snprintf(o->dir, sizeof(o->dir), "%s", dir);
    } else if (!ts_tmpdir(o->dir, sizeof(o->dir), "sessions")) {
        return false;
    }
    sl_context_conf conf = {
        .name = "sess", .batch_interval_ms = 1000, .workers = 2, .checkpoint_dir = o->dir};
    o->ctx = sl_context_new(&conf, err, sizeof(err));
    sl_stream *in = o->ctx ? sl_context_add_source_connector(o->ctx, &psrc_connector, "in", NULL,
                                                             err, sizeof(err))
                           : NULL;
    sl_stream *w;
    if (rd) {
        const sl_reducer *agg = sl__reducer_get(rd);
        w = sl__stream_event_window_bytes(in, sl__reducer_combine, NULL, sl__reducer_lift,
                                          (void *)agg, ew, 2);
        sl_stream *late = sl_stream_late(w);
        w = sl_stream_map_values(w, sl__reducer_finish, NULL);
        if (!late || sl_stream_foreach_batch(late, late_collect, o->late) != SL_OK) {
            return false;
        }
    } else {
        w = sl_stream_reduce_by_key_and_event_window(in, sl_reduce_sum, NULL, ew, 2);
        sl_stream *late = sl_stream_late(w);
        /* one late output per window, and none for other streams */
        if (!late || sl_stream_late(w) || sl_stream_late(in) ||
            sl_stream_foreach_batch(late, late_collect, o->late) != SL_OK) {
            return false;
        }
    }
    if (!w || sl_stream_to_connector(w, &wsink_connector, "db", NULL, err, sizeof(err)) != SL_OK) {
        return false;
    }
    *(wsink **)o->ctx->sinks->cctx = &o->sink;
    sl_options *opts = sl_options_new();
    sl_options_set(opts, "changelog", "true");
    int rc = sl_stream_to_connector(w, &clog_connector, "state", opts, err, sizeof(err));
    sl_options_destroy(opts);
    o->src = o->ctx->sources->cctx;
    return rc == SL_OK;
}

static void owner_free(owner *o, bool keep_dir)
{
    sl_context_destroy(o->ctx);
    if (!keep_dir) {
        ts_rmdir(o->dir);
    }
}

/* Steps batch t: the windows the sink got. */
static const char *step(owner *o, int64_t t)
{
    sl_batch_info info;
    o->sink.out[0] = '\0';
    o->late[0] = '\0';
    CU_ASSERT_EQUAL(sl__context_step(o->ctx, t, &info), SL_OK);
    return o->sink.out;
}

/* Sessions of 1 s gap, 5 s of allowed lateness. */
static const sl_event_window sessions = {.gap_ms = 1000, .allowed_lateness_ms = 5000};

/* The script of the session tests: two sessions of x, then a late record bridging them, one
 * extending the merged session, one inside it, a watermark far ahead, one too late. */
static const char *const sscript[6][8] = {
    {"x@0:0", "x@0:1500", "y@0:3000", NULL}, /* x: [0,1000) [1500,2500); watermark 3000 */
    {"x@0:800", NULL},                       /* bridges them: [0,2500) */
    {"x@0:2000", NULL},                      /* extends it: [0,3000) */
    {"x@0:1100", NULL},                      /* inside it: the same bounds */
    {"y@0:9000", NULL},                      /* watermark 9000: x's session is closed */
    {"x@0:2000", NULL}};                     /* too late */

static void test_sessions_merge_extend_and_retract(void)
{
    memset(&the_log, 0, sizeof(the_log));
    owner a;
    CU_ASSERT_TRUE_FATAL(owner_new(&a, &sessions, NULL, NULL));
    memcpy(a.src->script, sscript, sizeof(sscript));
    CU_ASSERT_STRING_EQUAL(step(&a, 1000), "x=1[0,1000) x=1[1500,2500)");
    /* both emitted sessions retracted, then the merged one */
    CU_ASSERT_STRING_EQUAL(step(&a, 2000), "x=-[0,1000) x=-[1500,2500) x=3[0,2500)");
    CU_ASSERT_STRING_EQUAL(step(&a, 3000), "x=-[0,2500) x=4[0,3000)");
    CU_ASSERT_STRING_EQUAL(step(&a, 4000), "x=5[0,3000)"); /* upserted again, no tombstone */
    uint64_t late = atomic_load(&a.ctx->records_late);
    CU_ASSERT_STRING_EQUAL(step(&a, 5000), "y=1[3000,4000)");
    CU_ASSERT_STRING_EQUAL(a.late, "");
    CU_ASSERT_STRING_EQUAL(step(&a, 6000), "");
    CU_ASSERT_EQUAL(atomic_load(&a.ctx->records_late), late + 1);
    CU_ASSERT_STRING_EQUAL(a.late, "x@0:2000"); /* the record as it came in */
    owner_free(&a, false);
}

/* Out of order within the disorder: no record is late, sessions close on the watermark. */
static void test_sessions_out_of_order_within_the_disorder(void)
{
    memset(&the_log, 0, sizeof(the_log));
    static const sl_event_window ew = {.gap_ms = 1000, .max_out_of_orderness_ms = 2000};
    owner a;
    CU_ASSERT_TRUE_FATAL(owner_new(&a, &ew, NULL, NULL));
    const char *s[3][8] = {{"x@0:3000", "x@0:1500", "x@0:500", NULL}, /* watermark 1000 */
                           {"x@0:4500", "x@0:2200", NULL},            /* watermark 2500 */
                           {"z@1:9000", "y@0:8000", NULL}};           /* watermark 6000 */
    memcpy(a.src->script, s, sizeof(s));
    /* [500,1500) touches [1500,2500) and stays apart; 2200 joins [1500,2500) and
     * [3000,4000) */
    CU_ASSERT_STRING_EQUAL(step(&a, 1000), "");
    CU_ASSERT_STRING_EQUAL(step(&a, 2000), "x=1[500,1500)");
    CU_ASSERT_STRING_EQUAL(step(&a, 3000), "x=3[1500,4000) x=1[4500,5500)");
    CU_ASSERT_EQUAL(atomic_load(&a.ctx->records_late), 0);
    owner_free(&a, false);
}

/* The reducers with partial results combine across a merge: avg of 2, 4 and the bridging 9
 * is 5; first and last go by the records' times, not by the order they came in (the bridging
 * record came last but is neither); count_distinct of 2, 4 and 4 is 2. A record too late
 * reaches the late output with its own value. */
static void test_sessions_merge_partial_results(void)
{
    static const char *const rds[] = {"avg", "last", "first", "count_distinct"};
    static const char *const want[][2] = {
        {"x=2[0,1000) x=4[1500,2500)", "x=-[0,1000) x=-[1500,2500) x=5[0,2500)"},
        {"x=2[0,1000) x=4[1500,2500)", "x=-[0,1000) x=-[1500,2500) x=4[0,2500)"},
        {"x=2[0,1000) x=4[1500,2500)", "x=-[0,1000) x=-[1500,2500) x=2[0,2500)"},
        {"x=1[0,1000) x=1[1500,2500)", "x=-[0,1000) x=-[1500,2500) x=2[0,2500)"}};
    for (size_t k = 0; k < 4; k++) {
        memset(&the_log, 0, sizeof(the_log));
        owner a;
        CU_ASSERT_TRUE_FATAL(owner_new(&a, &sessions, rds[k], NULL));
        const char *s[4][8] = {{"x@0:0=2", "x@0:1500=4", "y@0:3000", NULL},
                               {k == 3 ? "x@0:800=4" : "x@0:800=9", NULL},
                               {"y@0:20000", NULL},
                               {"x@0:100=7", NULL}};
        memcpy(a.src->script, s, sizeof(s));
        CU_ASSERT_STRING_EQUAL(step(&a, 1000), want[k][0]);
        CU_ASSERT_STRING_EQUAL(step(&a, 2000), want[k][1]);
        step(&a, 3000);
        /* too late: to the late output as it came, not as the reducer's partial result */
        CU_ASSERT_STRING_EQUAL(step(&a, 4000), "");
        CU_ASSERT_STRING_EQUAL(a.late, "x@0:100=7");
        owner_free(&a, false);
    }
}

/* A new owner restores partition 0's open sessions from the changelog, with the bounds they
 * were emitted with: the same merge, the same tombstones as the uninterrupted run. */
static void test_sessions_move_with_their_partition(void)
{
    memset(&the_log, 0, sizeof(the_log));
    owner a, b;
    CU_ASSERT_TRUE_FATAL(owner_new(&a, &sessions, NULL, NULL));
    memcpy(a.src->script, sscript, sizeof(sscript));
    CU_ASSERT_STRING_EQUAL(step(&a, 1000), "x=1[0,1000) x=1[1500,2500)");
    CU_ASSERT_TRUE_FATAL(owner_new(&b, &sessions, NULL, NULL));
    memcpy(b.src->script, sscript, sizeof(sscript));
    b.src->batch = 1;
    b.src->owns[1] = false;
    b.src->ask = true;
    CU_ASSERT_STRING_EQUAL(step(&b, 2000), "x=-[0,1000) x=-[1500,2500) x=3[0,2500)");
    CU_ASSERT_STRING_EQUAL(step(&b, 3000), "x=-[0,2500) x=4[0,3000)");
    owner_free(&a, false);
    owner_free(&b, false);
}

/* ==== Offsets ==== */

/* Windows of 1 s aligned to the epoch plus 300 ms (and -700 ms, the same alignment); a
 * record too late for them goes to the late output. */
static void test_event_windows_offset(void)
{
    static const sl_event_window ews[] = {{.length_ms = 1000, .offset_ms = 300},
                                          {.length_ms = 1000, .offset_ms = -700},
                                          {.length_ms = 2000, .slide_ms = 1000, .offset_ms = 300}};
    static const char *const want[][2] = {{"x=1[-700,300)", "x=2[300,1300)"},
                                          {"x=1[-700,300)", "x=2[300,1300)"},
                                          {"x=1[-1700,300)", "x=3[-700,1300)"}};
    for (size_t k = 0; k < 3; k++) {
        memset(&the_log, 0, sizeof(the_log));
        owner a;
        CU_ASSERT_TRUE_FATAL(owner_new(&a, &ews[k], NULL, NULL));
        const char *s[3][8] = {
            {"x@0:250", "x@0:400", NULL}, {"x@0:1250", "x@0:1400", NULL}, {"x@0:100", NULL}};
        memcpy(a.src->script, s, sizeof(s));
        CU_ASSERT_STRING_EQUAL(step(&a, 1000), want[k][0]);
        CU_ASSERT_STRING_EQUAL(step(&a, 2000), want[k][1]);
        /* every window of 100 ended before the watermark (1400): to the late output */
        CU_ASSERT_STRING_EQUAL(step(&a, 3000), "");
        CU_ASSERT_STRING_EQUAL(a.late, "x@0:100");
        owner_free(&a, false);
    }
}

/* Processing time: batch times count from a multiple of every slide, so that a tumbling
 * window of a minute starts on the minute (and one of a day at midnight UTC); the offset
 * moves that zero time. A window of a minute sliding every batch ends on every batch time. */
static void test_processing_windows_align_to_the_epoch_plus_offset(void)
{
    static const struct {
        int64_t length, slide, offset, want;
    } cases[] = {
        {60000, 60000, 0, 1796679960000},              /* 21:46:00 UTC */
        {60000, 0, 0, 1796679961000},                  /* every batch: 21:46:01 */
        {86400000, 86400000, -3600000, 1796598000000}, /* midnight UTC+1: 23:00 the day before */
        {86400000, 86400000, 3600000, 1796605200000},  /* midnight UTC-1: 01:00 */
        {60000, 60000, 90000, 1796679930000},          /* 30 s past a minute */
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char err[256];
        sl_context_conf conf = {
            .name = "align", .batch_interval_ms = 1000, .window_offset_ms = cases[k].offset};
        sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
        ts_source *src;
        sl_stream *in = ts_source_add(ctx, "in", &src);
        sl_stream *w = sl_stream_window(in, cases[k].length, cases[k].slide);
        CU_ASSERT_PTR_NOT_NULL_FATAL(w);
        int64_t zero = sl__context_zero_time(ctx, 1796679961123); /* 21:46:01.123 UTC */
        if (zero != cases[k].want) {
            fprintf(stderr, "\ncase %zu: zero time %lld\n", k, (long long)zero);
        }
        CU_ASSERT_EQUAL(zero, cases[k].want);
        /* the checkpoint keeps the zero time: its fingerprint has the offset */
        char *g = sl__graph_describe(ctx);
        CU_ASSERT_EQUAL(strstr(g, "window_offset=") != NULL, cases[k].offset != 0);
        free(g);
        sl_context_destroy(ctx);
    }
}

static int load(const char *streams, char *desc, char *err)
{
    char y[2048];
    snprintf(y, sizeof(y),
             "app: {name: off, batch_interval: 1s, checkpoint_dir: /tmp/sluice-off-unused}\n"
             "sources: [{name: in, type: tcp, port: 9999}]\n"
             "streams:\n%s"
             "sinks: [{name: out, type: stdout, from: a}]\n",
             streams);
    sl_config *cfg = NULL;
    err[0] = '\0';
    int rc = ts_config_load(y, &cfg, desc, 4096, err, 1024);
    sl__config_destroy(cfg);
    return rc;
}

/* The YAML: gap, offset and late, and the errors of their misuse. */
static void test_yaml_sessions_offsets_and_late(void)
{
    char desc[4096], err[1024];
    CU_ASSERT_EQUAL(
        load("  - {name: a, from: in, ops: [reduce_by_key_and_window: {fn: avg, gap: 30s,"
             " time: event, allowed_lateness: 10s, late: too_late}]}\n"
             "  - {name: b, from: too_late, ops: [count]}\n",
             desc, err),
        SL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, "avg session gap 30s event time (out of order 0ms, "
                                        "lateness 10s, late to too_late)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, "too_late <- a"));
    CU_ASSERT_EQUAL(
        load("  - {name: a, from: in, ops: [reduce_by_key_and_window: {fn: sum, length: 24h,"
             " time: event, offset: -1h}]}\n",
             desc, err),
        SL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, "length 24h offset -1h event time"));
    /* processing-time windows share one offset */
    CU_ASSERT_EQUAL(
        load("  - {name: a, from: in, ops: [window: {length: 1h, slide: 1h, offset: 30m}]}\n"
             "  - {name: b, from: in, ops: [count_by_window: {length: 1m, offset: 30m}]}\n",
             desc, err),
        SL_OK);
    CU_ASSERT_EQUAL(
        load("  - {name: a, from: in, ops: [window: {length: 1h, slide: 1h, offset: 30m}]}\n"
             "  - {name: b, from: in, ops: [count_by_window: {length: 1m}]}\n",
             desc, err),
        SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "offset 0ms differs from the offset 30m of the window in "
                                       "stream 'a'"));
    static const char *const bad[][2] = {
        {"{fn: sum, gap: 30s}", "session windows (gap) are on event time"},
        {"{fn: sum, gap: 30s, length: 1m, time: event}", "take no length"},
        {"{fn: sum, length: 1m, late: x}", "late is for windows on event time"},
        {"{fn: sum, length: 1m, offset: soon}", "bad offset 'soon'"},
        {"{fn: sum, gap: 30s, time: event, late: in}", "duplicate name 'in'"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char s[512];
        snprintf(s, sizeof(s), "  - {name: a, from: in, ops: [reduce_by_key_and_window: %s]}\n",
                 bad[k][0]);
        CU_ASSERT_EQUAL(load(s, desc, err), SL_ERR_INVAL);
        if (!strstr(err, bad[k][1])) {
            fprintf(stderr, "\n%s: %s\n", bad[k][0], err);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[k][1]));
    }
}

void sl_test_register(void)
{
    SL_SUITE("sessions", SL_TEST(sessions_merge_extend_and_retract),
             SL_TEST(sessions_out_of_order_within_the_disorder),
             SL_TEST(sessions_merge_partial_results), SL_TEST(sessions_move_with_their_partition),
             SL_TEST(event_windows_offset),
             SL_TEST(processing_windows_align_to_the_epoch_plus_offset),
             SL_TEST(yaml_sessions_offsets_and_late));
}

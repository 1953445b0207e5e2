/* test_changelog.c -- keyed state that moves with its partitions (sl_changelog.c): the
 * changes a changelog sink gets after the other sinks committed, a new owner restoring a
 * partition's state and continuing from it, a lost partition's keys dropped, tombstones, and
 * the error for keys that come from no partitioned source. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "support.h"

#define NPART 2

/* ==== A partitioned source: per batch, the keys of a script ==== */

typedef struct ksrc {
    sl_instance *self;
    const char *script[8][8]; /* per batch: keys "k@p" (key k of partition p; "k@p!": its
                               * value is "del"; "k@p:T": its time is T), NULL-ended */
    int batch;
    int64_t next[NPART]; /* where the next batch of each partition starts */
    bool ask;            /* ask where the sinks are (restoring) at the next batch */
    bool owns[NPART];    /* partitions read */
    int release;         /* >= 0: released at the next batch */
    bool no_meta;        /* records without a partition */
    bool from_zero; /* reads from offset 0 whatever the sinks say (behind the restored state) */
    sl_source_position pos[NPART];
    int ask_rc;
} ksrc;

static int ksrc_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    ksrc *s = data;
    s->self = ins;
    s->release = -1;
    for (int p = 0; p < NPART; p++) {
        s->owns[p] = true;
    }
    return SL_OK;
}

static int ksrc_next(void *data, int64_t t, sl_batch_input *in)
{
    ksrc *s = data;
    if (s->release >= 0) {
        sl_instance_release_partition(s->self, "t", s->release);
        s->owns[s->release] = false;
        s->release = -1;
    }
    if (s->ask) {
        s->ask = false;
        size_t n = 0, sinks;
        char err[256];
        for (int p = 0; p < NPART; p++) {
            if (s->owns[p]) {
                s->pos[n++] = (sl_source_position){.topic = "t", .partition = p};
            }
        }
        s->ask_rc = sl_instance_sink_positions(s->self, s->pos, n, &sinks, err, sizeof(err));
        for (size_t i = 0; i < n && !s->from_zero; i++) {
            if (s->pos[i].next >= 0) {
                s->next[s->pos[i].partition] = s->pos[i].next;
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
            if (at && atoi(at + 1) == p) {
                bool del = at[2] == '!';
                const char *colon = strchr(at, ':');
                meta[n] = (sl_record_meta){.source = "in",
                                           .topic = "t",
                                           .partition = p,
                                           .offset = s->next[p] + (int64_t)n};
                recs[n] = (sl_record){.key = keys[k],
                                      .key_len = (uint32_t)(at - keys[k]),
                                      .value = del ? "del" : "1",
                                      .value_len = del ? 3 : 1,
                                      .ts = colon ? atoll(colon + 1) : 0,
                                      .meta = s->no_meta ? NULL : &meta[n]};
                sl_record_set_int(&recs[n], 1);
                n++;
            }
        }
        int rc = sl_batch_input_add_records(in, recs, n);
        if (rc == SL_OK && !s->no_meta) {
            rc = sl_batch_input_add_range(in, "t", p, s->next[p], s->next[p] + (int64_t)n);
        }
        s->next[p] += (int64_t)n;
        if (rc != SL_OK) {
            return rc;
        }
    }
    return SL_OK;
}

/* Like the kafka source, which hears of its partitions' revocation as it closes. */
static void ksrc_destroy(void *data)
{
    ksrc *s = data;
    if (s->self) {
        sl_instance_release_partition(s->self, "t", 0);
    }
}

static const sl_option no_options[] = {{0}};
static const sl_connector ksrc_connector = {.name = "ksrc",
                                            .destroy = ksrc_destroy,
                                            .flags = SL_SOURCE,
                                            .options = no_options,
                                            .ctx_size = sizeof(ksrc),
                                            .init = ksrc_init,
                                            .next_batch = ksrc_next};

/* ==== A changelog sink: an in-memory log per partition, shared by two contexts ==== */

typedef struct logrec {
    char key[16];
    bool tomb;
    int64_t num;     /* decoded from the engine's encoding: the number at bytes 2..9 */
    char value[256]; /* the encoded state as written */
    uint32_t value_len;
    bool marker;
    int64_t until;
} logrec;

typedef struct clog {
    logrec recs[NPART][256];
    size_t n[NPART];
    int writes;
} clog;

static clog *the_log; /* the "topic" both owners see */

typedef struct csink {
    sl_instance *self;
} csink;

static int csink_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    ((csink *)data)->self = ins;
    return SL_OK;
}

static int64_t decode_num(const char *v)
{
    int64_t x = 0;
    for (int i = 7; i >= 0; i--) {
        x = (x << 8) | (unsigned char)v[2 + i];
    }
    return x;
}

static int csink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    csink *c = data;
    CU_ASSERT_TRUE(sl_instance_is_changelog(c->self));
    for (size_t p = 0; p < out->ds->nparts; p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            int32_t part = r[i].meta ? r[i].meta->partition : -1;
            CU_ASSERT_FATAL(part >= 0 && part < NPART);
            logrec *l = &the_log->recs[part][the_log->n[part]++];
            memset(l, 0, sizeof(*l));
            snprintf(l->key, sizeof(l->key), "%.*s", (int)r[i].key_len, r[i].key);
            l->tomb = r[i].value == NULL;
            if (!l->tomb) {
                CU_ASSERT_FATAL(r[i].value_len >= 18 && r[i].value_len <= sizeof(l->value));
                l->num = decode_num(r[i].value);
                memcpy(l->value, r[i].value, r[i].value_len);
                l->value_len = r[i].value_len;
            }
        }
    }
    for (size_t i = 0; i < out->nranges; i++) {
        int32_t part = out->ranges[i].partition;
        logrec *l = &the_log->recs[part][the_log->n[part]++];
        *l = (logrec){.marker = true, .until = out->ranges[i].until};
    }
    the_log->writes++;
    return SL_OK;
}

/* Reads partition pos->partition back: the records as written (a test may add its own). */
static int csink_restore(void *data, const char *pipeline, sl_position *pos, sl_restore_fn fn,
                         void *arg, char *errstr, size_t errsize)
{
    pos->next = -1;
    for (size_t i = 0; i < the_log->n[pos->partition]; i++) {
        const logrec *l = &the_log->recs[pos->partition][i];
        if (l->marker) {
            pos->next = l->until;
            continue;
        }
        sl_record r = {.key = l->key, .key_len = (uint32_t)strlen(l->key)};
        if (!l->tomb) {
            r.value = l->value;
            r.value_len = l->value_len;
        }
        int rc = fn(arg, &r);
        if (rc != SL_OK) {
            return rc;
        }
    }
    return SL_OK;
}

static const sl_connector csink_connector = {.name = "csink",
                                             .flags = SL_SINK,
                                             .options = no_options,
                                             .ctx_size = sizeof(csink),
                                             .init = csink_init,
                                             .write = csink_write,
                                             .restore_state = csink_restore};

/* Another sink, which may fail its batch. */
typedef struct osink {
    int rc;
    int writes;
} osink;

static int osink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    osink *o = data;
    o->writes++;
    if (o->rc != SL_OK) {
        snprintf(errstr, errsize, "held elsewhere");
    }
    return o->rc;
}

static const sl_connector osink_connector = {.name = "osink",
                                             .flags = SL_SINK,
                                             .options = no_options,
                                             .ctx_size = sizeof(osink),
                                             .write = osink_write};

/* ==== The pipeline: a running sum per key (update_state_by_key), "del" removes a key ==== */

static int sum_update(const char *key, uint32_t len, const sl_record *vals, size_t n,
                      sl_state *state, sl_emitter *e, void *opaque)
{
    for (size_t i = 0; i < n; i++) {
        if (vals[i].value_len == 3 && memcmp(vals[i].value, "del", 3) == 0) {
            state->exists = false;
            return SL_OK;
        }
    }
    int64_t total = state->exists ? state->num.i : 0;
    state->exists = true;
    state->num_type = SL_NUM_INT;
    state->num.i = total + (int64_t)n;
    return SL_OK;
}

/* The last output of the stateful stream: key -> total (without the tombstones of a plain
 * window's keys that left it: the keyed window has none). */
typedef struct totals {
    char key[16][16];
    int64_t num[16];
    size_t n;
} totals;

static int collect(const sl_dataset *ds, int64_t t, void *opaque)
{
    totals *o = opaque;
    o->n = 0;
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n && o->n < 16; i++) {
            if (sl_record_is_tombstone(&r[i])) {
                continue;
            }
            snprintf(o->key[o->n], 16, "%.*s", (int)r[i].key_len, r[i].key);
            o->num[o->n++] = r[i].num.i;
        }
    }
    return SL_OK;
}

static int64_t total_of(const totals *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++) {
        if (strcmp(o->key[i], key) == 0) {
            return o->num[i];
        }
    }
    return -1;
}

/* The last logged state of key in partition p: its number, -2 for a tombstone, -1 none. */
static int64_t logged(int p, const char *key)
{
    int64_t v = -1;
    for (size_t i = 0; i < the_log->n[p]; i++) {
        const logrec *l = &the_log->recs[p][i];
        if (!l->marker && strcmp(l->key, key) == 0) {
            v = l->tomb ? -2 : l->num;
        }
    }
    return v;
}

static int64_t last_marker(int p)
{
    int64_t v = -1;
    for (size_t i = 0; i < the_log->n[p]; i++) {
        if (the_log->recs[p][i].marker) {
            v = the_log->recs[p][i].until;
        }
    }
    return v;
}

typedef struct owner {
    char dir[256];
    sl_context *ctx;
    ksrc *src;
    osink *other;
    totals out;
} owner;

static bool owner_new(owner *o)
{
    memset(o, 0, sizeof(*o));
    char err[256];
    if (!ts_tmpdir(o->dir, sizeof(o->dir), "changelog")) {
        return false;
    }
    sl_context_conf conf = {
        .name = "chg", .batch_interval_ms = 1000, .workers = 2, .checkpoint_dir = o->dir};
    o->ctx = sl_context_new(&conf, err, sizeof(err));
    if (!o->ctx) {
        return false;
    }
    sl_stream *in =
        sl_context_add_source_connector(o->ctx, &ksrc_connector, "in", NULL, err, sizeof(err));
    sl_stream *st = sl_stream_update_state_by_key(in, sum_update, NULL, 2);
    if (!st || sl_stream_foreach_batch(st, collect, &o->out) != SL_OK ||
        sl_stream_to_connector(st, &osink_connector, "db", NULL, err, sizeof(err)) != SL_OK) {
        return false;
    }
    sl_options *opts = sl_options_new();
    sl_options_set(opts, "changelog", "true");
    int rc = sl_stream_to_connector(st, &csink_connector, "state", opts, err, sizeof(err));
    sl_options_destroy(opts);
    if (rc != SL_OK) {
        fprintf(stderr, "%s\n", err);
        return false;
    }
    o->src = o->ctx->sources->cctx;
    o->other = o->ctx->sinks->cctx;
    return true;
}

static void owner_free(owner *o)
{
    sl_context_destroy(o->ctx);
    ts_rmdir(o->dir);
}

static int step(owner *o, int64_t t)
{
    sl_batch_info info;
    return sl__context_step(o->ctx, t, &info);
}

/* ==== Tests ==== */

static void test_changes_follow_the_other_sinks(void)
{
    clog log = {0};
    the_log = &log;
    owner a;
    CU_ASSERT_TRUE_FATAL(owner_new(&a));
    const char *b0[] = {"x@0", "x@0", "y@1", NULL};
    const char *b1[] = {"y@1", NULL};
    const char *b2[] = {"x@0", NULL};
    memcpy(a.src->script[0], b0, sizeof(b0));
    memcpy(a.src->script[1], b1, sizeof(b1));
    memcpy(a.src->script[2], b2, sizeof(b2));
    CU_ASSERT_EQUAL(step(&a, 1000), SL_OK);
    CU_ASSERT_EQUAL(logged(0, "x"), 2);
    CU_ASSERT_EQUAL(logged(1, "y"), 1);
    CU_ASSERT_EQUAL(last_marker(0), 2);
    CU_ASSERT_EQUAL(last_marker(1), 1);
    /* Only the keys whose state changed are logged: x is not in batch 2. */
    size_t before = log.n[0];
    CU_ASSERT_EQUAL(step(&a, 2000), SL_OK);
    CU_ASSERT_EQUAL(log.n[0], before + 1); /* the marker alone */
    CU_ASSERT_EQUAL(logged(1, "y"), 2);
    /* The other sink fails the batch (fenced): the changelog is not written. */
    a.other->rc = SL_ERR_FENCED;
    int writes = log.writes;
    CU_ASSERT_EQUAL(step(&a, 3000), SL_OK);
    CU_ASSERT_EQUAL(log.writes, writes);
    CU_ASSERT_EQUAL(logged(0, "x"), 2);
    owner_free(&a);
}

static void test_new_owner_restores_and_continues(void)
{
    clog log = {0};
    the_log = &log;
    owner a, b;
    CU_ASSERT_TRUE_FATAL(owner_new(&a));
    const char *a0[] = {"x@0", "x@0", "x@0", "y@1", "z@1", NULL};
    memcpy(a.src->script[0], a0, sizeof(a0));
    CU_ASSERT_EQUAL(step(&a, 1000), SL_OK);
    CU_ASSERT_EQUAL(total_of(&a.out, "x"), 3);
    /* b takes partition 0 only: it restores x = 3 at offset 3, and counts on from there. */
    CU_ASSERT_TRUE_FATAL(owner_new(&b));
    b.src->owns[1] = false;
    b.src->ask = true;
    const char *b0[] = {"x@0", NULL};
    memcpy(b.src->script[0], b0, sizeof(b0));
    CU_ASSERT_EQUAL(step(&b, 1000), SL_OK);
    CU_ASSERT_EQUAL(b.src->ask_rc, SL_OK);
    CU_ASSERT_EQUAL(b.src->pos[0].next, 3);
    CU_ASSERT_EQUAL(total_of(&b.out, "x"), 4);
    CU_ASSERT_EQUAL(total_of(&b.out, "y"), -1); /* not its partition */
    CU_ASSERT_EQUAL(logged(0, "x"), 4);
    CU_ASSERT_EQUAL(atomic_load(&b.ctx->restored_tasks), 1);
    CU_ASSERT_EQUAL(atomic_load(&b.ctx->restored_records), 1);
    /* a loses partition 0: its keys go before the next batch; y and z stay. */
    a.src->release = 0;
    CU_ASSERT_EQUAL(step(&a, 2000), SL_OK);
    CU_ASSERT_EQUAL(total_of(&a.out, "x"), -1);
    CU_ASSERT_EQUAL(total_of(&a.out, "y"), 1);
    CU_ASSERT_EQUAL(total_of(&a.out, "z"), 1);
    owner_free(&a);
    owner_free(&b);
}

/* Input the restored state holds already (read again for a sink that is behind) does not
 * change the state again; what follows does. */
static void test_input_behind_restored_state_is_skipped(void)
{
    clog log = {0};
    the_log = &log;
    owner a, b;
    CU_ASSERT_TRUE_FATAL(owner_new(&a));
    const char *a0[] = {"x@0", "x@0", "x@0", NULL};
    memcpy(a.src->script[0], a0, sizeof(a0));
    CU_ASSERT_EQUAL(step(&a, 1000), SL_OK);
    CU_ASSERT_TRUE_FATAL(owner_new(&b));
    b.src->ask = true;
    b.src->from_zero = true;
    const char *b0[] = {"x@0", "x@0", "x@0", NULL}; /* [0, 3): held by the state */
    const char *b1[] = {"x@0", NULL};               /* [3, 4): new */
    memcpy(b.src->script[0], b0, sizeof(b0));
    memcpy(b.src->script[1], b1, sizeof(b1));
    CU_ASSERT_EQUAL(step(&b, 1000), SL_OK);
    CU_ASSERT_EQUAL(total_of(&b.out, "x"), 3);
    CU_ASSERT_EQUAL(step(&b, 2000), SL_OK);
    CU_ASSERT_EQUAL(total_of(&b.out, "x"), 4);
    CU_ASSERT_EQUAL(logged(0, "x"), 4);
    owner_free(&a);
    owner_free(&b);
}

static void test_removed_key_is_a_tombstone(void)
{
    clog log = {0};
    the_log = &log;
    owner a, b;
    CU_ASSERT_TRUE_FATAL(owner_new(&a));
    const char *b0[] = {"y@1", "w@1", NULL};
    const char *b1[] = {"y@1!", NULL};
    memcpy(a.src->script[0], b0, sizeof(b0));
    memcpy(a.src->script[1], b1, sizeof(b1));
    CU_ASSERT_EQUAL(step(&a, 1000), SL_OK);
    CU_ASSERT_EQUAL(logged(1, "y"), 1);
    CU_ASSERT_EQUAL(step(&a, 2000), SL_OK);
    CU_ASSERT_EQUAL(logged(1, "y"), -2);
    CU_ASSERT_EQUAL(logged(1, "w"), 1);
    /* A new owner restores without y. */
    CU_ASSERT_TRUE_FATAL(owner_new(&b));
    b.src->ask = true;
    CU_ASSERT_EQUAL(step(&b, 1000), SL_OK);
    CU_ASSERT_EQUAL(total_of(&b.out, "y"), -1);
    CU_ASSERT_EQUAL(total_of(&b.out, "w"), 1);
    owner_free(&a);
    owner_free(&b);
}

static void test_keys_without_partition_fail(void)
{
    clog log = {0};
    the_log = &log;
    owner a;
    CU_ASSERT_TRUE_FATAL(owner_new(&a));
    a.src->no_meta = true;
    const char *b0[] = {"x@0", NULL};
    memcpy(a.src->script[0], b0, sizeof(b0));
    step(&a, 1000);
    CU_ASSERT_EQUAL(a.ctx->fatal_err, SL_ERR_INVAL); /* the pipeline stops, saying why */
    CU_ASSERT_EQUAL(log.writes, 0);
    owner_free(&a);
}

/* ==== Windows as keyed state ==== */

typedef struct wowner {
    char dir[256];
    sl_context *ctx;
    ksrc *src;
    totals keyed, plain;
} wowner;

/* A keyed window (changelog "state2") and the plain one on the same input: 3 slides long. */
static bool wowner_new(wowner *o, int64_t slide)
{
    memset(o, 0, sizeof(*o));
    char err[256];
    if (!ts_tmpdir(o->dir, sizeof(o->dir), "wchangelog")) {
        return false;
    }
    sl_context_conf conf = {
        .name = "wchg", .batch_interval_ms = 1000, .workers = 2, .checkpoint_dir = o->dir};
    o->ctx = sl_context_new(&conf, err, sizeof(err));
    sl_stream *in = o->ctx ? sl_context_add_source_connector(o->ctx, &ksrc_connector, "in", NULL,
                                                             err, sizeof(err))
                           : NULL;
    sl_stream *k =
        sl_stream_reduce_by_key_and_window_state(in, sl_reduce_sum, NULL, 3 * slide, slide, 2);
    sl_stream *p = sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, NULL, NULL, NULL,
                                                      3 * slide, slide, 2);
    /* A length that is not a multiple of the slide cannot be kept per slide. */
    if (slide > 1000 &&
        sl_stream_reduce_by_key_and_window_state(in, sl_reduce_sum, NULL, slide + 1000, slide, 2)) {
        return false;
    }
    if (!k || !p || sl_stream_foreach_batch(k, collect, &o->keyed) != SL_OK ||
        sl_stream_foreach_batch(p, collect, &o->plain) != SL_OK ||
        sl_stream_changelog(k, "none", "state", NULL, err, sizeof(err)) != SL_ERR_NOTFOUND) {
        return false;
    }
    sl_options *opts = sl_options_new();
    sl_options_set(opts, "changelog", "true");
    int rc = sl_stream_to_connector(k, &csink_connector, "state2", opts, err, sizeof(err));
    sl_options_destroy(opts);
    o->src = o->ctx->sources->cctx;
    return rc == SL_OK;
}

static void wowner_free(wowner *o)
{
    sl_context_destroy(o->ctx);
    ts_rmdir(o->dir);
}

static bool same_totals(const totals *a, const totals *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (total_of(b, a->key[i]) != a->num[i]) {
            return false;
        }
    }
    return true;
}

static void test_keyed_window_equals_plain_window(void)
{
    for (int64_t slide = 1000; slide <= 2000; slide += 1000) {
        clog log = {0};
        the_log = &log;
        wowner a;
        CU_ASSERT_TRUE_FATAL(wowner_new(&a, slide));
        const char *b[6][8] = {{"x@0", "x@0", "y@1", NULL},
                               {"x@0", NULL},
                               {"y@1", "z@0", NULL},
                               {NULL},
                               {"z@0", NULL},
                               {NULL}};
        memcpy(a.src->script, b, sizeof(b));
        for (int i = 0; i < 8; i++) {
            sl_batch_info info;
            a.keyed.n = a.plain.n = 99;
            CU_ASSERT_EQUAL(sl__context_step(a.ctx, 1000 * (i + 1), &info), SL_OK);
            if (a.plain.n != 99) {
                CU_ASSERT_TRUE(same_totals(&a.keyed, &a.plain));
                CU_ASSERT_TRUE(same_totals(&a.plain, &a.keyed));
            } else {
                CU_ASSERT_EQUAL(a.keyed.n, 99); /* not a slide time for either */
            }
        }
        /* x: 3 in the window of 3 s ending at batch 3 (slide 1 s) */
        CU_ASSERT_TRUE(log.writes > 0);
        wowner_free(&a);
    }
}

static void test_keyed_window_moves_with_its_partition(void)
{
    clog log = {0};
    the_log = &log;
    wowner a, b;
    CU_ASSERT_TRUE_FATAL(wowner_new(&a, 1000));
    const char *sa[2][8] = {{"x@0", "x@0", "y@1", NULL}, {"x@0", NULL}};
    memcpy(a.src->script, sa, sizeof(sa));
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(a.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(sl__context_step(a.ctx, 2000, &info), SL_OK);
    CU_ASSERT_EQUAL(total_of(&a.keyed, "x"), 3);
    /* b takes partition 0 at batch 3: its window of 3 s holds a's two slides and its own. */
    CU_ASSERT_TRUE_FATAL(wowner_new(&b, 1000));
    b.src->owns[1] = false;
    b.src->ask = true;
    const char *sb[3][8] = {{NULL}, {NULL}, {"x@0", NULL}};
    memcpy(b.src->script, sb, sizeof(sb));
    b.src->batch = 2;
    CU_ASSERT_EQUAL(sl__context_step(b.ctx, 3000, &info), SL_OK);
    CU_ASSERT_EQUAL(b.src->pos[0].next, 3);
    CU_ASSERT_EQUAL(total_of(&b.keyed, "x"), 4);
    CU_ASSERT_EQUAL(total_of(&b.keyed, "y"), -1);
    /* Batch 1's slide leaves b's window at batch 4. */
    CU_ASSERT_EQUAL(sl__context_step(b.ctx, 4000, &info), SL_OK);
    CU_ASSERT_EQUAL(total_of(&b.keyed, "x"), 2);
    CU_ASSERT_EQUAL(sl__context_step(b.ctx, 6000, &info), SL_OK);
    CU_ASSERT_EQUAL(total_of(&b.keyed, "x"), -1); /* nothing left in the window */
    CU_ASSERT_EQUAL(logged(0, "x"), -2);          /* and its state is gone */
    wowner_free(&a);
    wowner_free(&b);
}

/* Input the restored windows hold, read again within a slide of two batches together with
 * new input: left out by offset, the new input counted. */
static void test_keyed_window_skips_held_input(void)
{
    clog log = {0};
    the_log = &log;
    wowner a, b;
    CU_ASSERT_TRUE_FATAL(wowner_new(&a, 1000));
    const char *sa[1][8] = {{"x@0", "x@0", "x@0", NULL}};
    memcpy(a.src->script, sa, sizeof(sa));
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(a.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(total_of(&a.keyed, "x"), 3);
    CU_ASSERT_TRUE_FATAL(wowner_new(&b, 2000));
    b.src->ask = true;
    b.src->from_zero = true;
    const char *sb[2][8] = {{"x@0", "x@0", "x@0", NULL}, {"x@0", NULL}};
    memcpy(b.src->script, sb, sizeof(sb));
    CU_ASSERT_EQUAL(sl__context_step(b.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(sl__context_step(b.ctx, 2000, &info), SL_OK);
    CU_ASSERT_EQUAL(total_of(&b.keyed, "x"), 4); /* 3 restored + 1 new, not 3 + 4 */
    wowner_free(&a);
    wowner_free(&b);
}

/* A partition lost in the middle of a slide: its keys' windows are gone, and the window's
 * sinks are not told they hold its input (the new owner reads it again). */
static void test_keyed_window_forgets_a_lost_partition(void)
{
    clog log = {0};
    the_log = &log;
    wowner a;
    CU_ASSERT_TRUE_FATAL(wowner_new(&a, 2000));
    const char *sa[2][8] = {{"x@0", "y@1", NULL}, {"y@1", NULL}};
    memcpy(a.src->script, sa, sizeof(sa));
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(a.ctx, 1000, &info), SL_OK);
    a.src->release = 0;
    CU_ASSERT_EQUAL(sl__context_step(a.ctx, 2000, &info), SL_OK);
    CU_ASSERT_EQUAL(total_of(&a.keyed, "x"), -1);
    CU_ASSERT_EQUAL(total_of(&a.keyed, "y"), 2);
    CU_ASSERT_EQUAL(last_marker(0), -1); /* partition 0's input is not claimed */
    CU_ASSERT_EQUAL(last_marker(1), 2);
    wowner_free(&a);
}

/* ==== Windows on event time ==== */

/* An owner of windows of 1 s on the records' time, 500 ms of disorder allowed, with a
 * changelog; hop: windows of 2 s every 1 s, no disorder. */
typedef struct eowner {
    char dir[256];
    sl_context *ctx;
    ksrc *src;
    char out[512]; /* the last batch's windows, "key=n@end" sorted, space-separated */
    int bounds_ok; /* the sink saw each record's own window bounds */
} eowner;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int ecollect(const sl_dataset *ds, int64_t t, void *opaque)
{
    eowner *o = opaque;
    char items[32][32];
    const char *sorted[32];
    size_t k = 0;
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n && k < 32; i++, k++) {
            snprintf(items[k], 32, "%.*s=%lld@%lld", (int)r[i].key_len, r[i].key,
                     (long long)r[i].num.i, (long long)r[i].ts);
            sorted[k] = items[k];
        }
    }
    qsort(sorted, k, sizeof(*sorted), cmp_str);
    o->out[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        snprintf(o->out + strlen(o->out), sizeof(o->out) - strlen(o->out), "%s%s", i ? " " : "",
                 sorted[i]);
    }
    return SL_OK;
}

/* A sink that checks each record's window: its own bounds, not the batch's. */
static int bsink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    eowner *o = *(eowner **)data;
    for (size_t p = 0; out->ds && p < out->ds->nparts; p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            sl_record_when w = sl_batch_output_when(out, &r[i]);
            o->bounds_ok += out->record_windows && w.window_end == r[i].ts &&
                                    w.window_start == r[i].ts - out->window_ms &&
                                    w.batch_time == out->batch_time
                                ? 1
                                : -1000;
        }
    }
    return SL_OK;
}

static const sl_connector bsink_connector = {.name = "bsink",
                                             .flags = SL_SINK,
                                             .options = no_options,
                                             .ctx_size = sizeof(eowner *),
                                             .write = bsink_write};

/* Windows of 1 s with 500 ms of disorder; of 2 s every 1 s; of 1 s whose idle partitions
 * follow the others after 2 s (of batch time); of 1 s. */
static const sl_event_window tumbling = {.length_ms = 1000, .max_out_of_orderness_ms = 500};
static const sl_event_window hopping = {.length_ms = 2000, .slide_ms = 1000};
static const sl_event_window idling = {.length_ms = 1000, .idle_timeout_ms = 2000};
static const sl_event_window plain = {.length_ms = 1000};

/* With changelog false, the windows have no changelog: keys may come from any partition. */
static bool eowner_make(eowner *o, const sl_event_window *spec, bool changelog)
{
    memset(o, 0, sizeof(*o));
    char err[256];
    if (!ts_tmpdir(o->dir, sizeof(o->dir), "echangelog")) {
        return false;
    }
    sl_context_conf conf = {
        .name = "echg", .batch_interval_ms = 1000, .workers = 2, .checkpoint_dir = o->dir};
    o->ctx = sl_context_new(&conf, err, sizeof(err));
    sl_stream *in = o->ctx ? sl_context_add_source_connector(o->ctx, &ksrc_connector, "in", NULL,
                                                             err, sizeof(err))
                           : NULL;
    sl_stream *w = sl_stream_reduce_by_key_and_event_window(in, sl_reduce_sum, NULL, spec, 2);
    /* The length must be a multiple of the slide. */
    sl_event_window bad = {.length_ms = 1500, .slide_ms = 1000};
    if (sl_stream_reduce_by_key_and_event_window(in, sl_reduce_sum, NULL, &bad, 2)) {
        return false;
    }
    if (!w || sl_stream_foreach_batch(w, ecollect, o) != SL_OK ||
        sl_stream_to_connector(w, &bsink_connector, "db", NULL, err, sizeof(err)) != SL_OK) {
        return false;
    }
    *(eowner **)o->ctx->sinks->cctx = o;
    o->src = o->ctx->sources->cctx;
    if (!changelog) {
        return true;
    }
    sl_options *opts = sl_options_new();
    sl_options_set(opts, "changelog", "true");
    int rc = sl_stream_to_connector(w, &csink_connector, "state", opts, err, sizeof(err));
    sl_options_destroy(opts);
    return rc == SL_OK;
}

static bool eowner_new(eowner *o, const sl_event_window *spec)
{
    return eowner_make(o, spec, true);
}

static void eowner_free(eowner *o)
{
    sl_context_destroy(o->ctx);
    ts_rmdir(o->dir);
}

/* Steps batch t and returns its windows. */
static const char *estep(eowner *o, int64_t t)
{
    sl_batch_info info;
    o->out[0] = '\0';
    CU_ASSERT_EQUAL(sl__context_step(o->ctx, t, &info), SL_OK);
    return o->out;
}

/* The script of test_event_windows_*: out of order within the disorder, a late record, and
 * a partition far ahead that does not move the other's windows. */
static const char *const escript[4][8] = {
    {"x@0:100", "x@0:900", "y@0:1200", "x@0:1100", "z@1:5000", NULL},
    {"x@0:950", "x@0:1600", NULL}, /* 950: not late (watermark 700); closes [0, 1000) */
    {"x@0:400", "y@0:2100", NULL}, /* 400: late (watermark 1100) */
    {"y@0:2600", NULL}};           /* closes [1000, 2000) */

static void test_event_windows_close_on_the_watermark(void)
{
    clog log = {0};
    the_log = &log;
    eowner a;
    CU_ASSERT_TRUE_FATAL(eowner_new(&a, &tumbling));
    memcpy(a.src->script, escript, sizeof(escript));
    uint64_t late = atomic_load(&a.ctx->records_late);
    CU_ASSERT_STRING_EQUAL(estep(&a, 1000), "");
    CU_ASSERT_STRING_EQUAL(estep(&a, 2000), "x=3@1000");
    CU_ASSERT_STRING_EQUAL(estep(&a, 3000), "");
    CU_ASSERT_EQUAL(atomic_load(&a.ctx->records_late), late + 1);
    CU_ASSERT_STRING_EQUAL(estep(&a, 4000), "x=2@2000 y=1@2000");
    CU_ASSERT_STRING_EQUAL(estep(&a, 5000), ""); /* nothing new: nothing emitted twice */
    CU_ASSERT_EQUAL(a.bounds_ok, 3);
    eowner_free(&a);
}

static void test_event_windows_hop(void)
{
    clog log = {0};
    the_log = &log;
    eowner a;
    CU_ASSERT_TRUE_FATAL(eowner_new(&a, &hopping));
    const char *s[2][8] = {{"x@0:500", "x@0:1500", NULL}, {"x@0:3500", NULL}};
    memcpy(a.src->script, s, sizeof(s));
    CU_ASSERT_STRING_EQUAL(estep(&a, 1000), "x=1@1000");
    CU_ASSERT_STRING_EQUAL(estep(&a, 2000), "x=1@3000 x=2@2000");
    eowner_free(&a);
}

/* A partition without records for the idle timeout follows the other's event time, so that
 * its windows close; without the timeout they wait for its records. */
static void test_event_windows_idle_partition_follows_the_others(void)
{
    const sl_event_window *specs[2] = {&idling, &plain};
    const char *third[2] = {"x=1@2000 z=1@1000", "x=1@2000"};
    for (int k = 0; k < 2; k++) {
        clog log = {0};
        the_log = &log;
        eowner a;
        CU_ASSERT_TRUE_FATAL(eowner_new(&a, specs[k]));
        const char *s[3][8] = {
            {"x@0:100", "z@1:150", NULL}, {"x@0:1200", NULL}, {"x@0:2300", NULL}};
        memcpy(a.src->script, s, sizeof(s));
        CU_ASSERT_STRING_EQUAL(estep(&a, 1000), "");
        CU_ASSERT_STRING_EQUAL(estep(&a, 2000), "x=1@1000");
        CU_ASSERT_STRING_EQUAL(estep(&a, 3000), third[k]); /* partition 1 idle for 2 s */
        eowner_free(&a);
    }
}

/* Without a changelog a key's records may come from several partitions (keyed by a field):
 * its windows wait for the slowest partition (the input's stream time is the lowest of its
 * partitions', Flink's watermark). They used to follow the partition of the key's first
 * record: [0, 1000) closed at partition 0's 1500, and partition 1's record at 900 came late
 * and was lost. (With a changelog keys come by partition: key_from_two_partitions_fails.) */
static void test_event_windows_of_keys_from_several_partitions(void)
{
    const char *s[3][8] = {
        {"x@0:100", "x@1:200", NULL}, {"x@0:1500", NULL}, {"x@1:900", "x@1:1600", NULL}};
    clog log = {0};
    the_log = &log;
    eowner a;
    CU_ASSERT_TRUE_FATAL(eowner_make(&a, &plain, false));
    memcpy(a.src->script, s, sizeof(s));
    uint64_t late = atomic_load(&a.ctx->records_late);
    CU_ASSERT_STRING_EQUAL(estep(&a, 1000), "");
    CU_ASSERT_STRING_EQUAL(estep(&a, 2000), ""); /* partition 1 is at 200 */
    CU_ASSERT_STRING_EQUAL(estep(&a, 3000), "x=3@1000");
    CU_ASSERT_EQUAL(atomic_load(&a.ctx->records_late), late);
    eowner_free(&a);
}

/* A new owner restores partition 0's open windows and its stream time: the same windows as
 * the uninterrupted run, the same record late. */
static void test_event_windows_move_with_their_partition(void)
{
    clog log = {0};
    the_log = &log;
    eowner a, b;
    CU_ASSERT_TRUE_FATAL(eowner_new(&a, &tumbling));
    memcpy(a.src->script, escript, sizeof(escript));
    CU_ASSERT_STRING_EQUAL(estep(&a, 1000), "");
    CU_ASSERT_STRING_EQUAL(estep(&a, 2000), "x=3@1000");
    CU_ASSERT_TRUE_FATAL(eowner_new(&b, &tumbling));
    memcpy(b.src->script, escript, sizeof(escript));
    b.src->batch = 2;
    b.src->owns[1] = false;
    b.src->ask = true;
    uint64_t late = atomic_load(&b.ctx->records_late);
    CU_ASSERT_STRING_EQUAL(estep(&b, 3000), "");
    CU_ASSERT_EQUAL(b.src->pos[0].next, 6);
    CU_ASSERT_EQUAL(atomic_load(&b.ctx->records_late), late + 1);
    CU_ASSERT_STRING_EQUAL(estep(&b, 4000), "x=2@2000 y=1@2000");
    eowner_free(&a);
    eowner_free(&b);
}

/* A key that comes from two partitions would have two owners: refused, saying so. */
static void test_key_from_two_partitions_fails(void)
{
    clog log = {0};
    the_log = &log;
    owner a;
    CU_ASSERT_TRUE_FATAL(owner_new(&a));
    const char *b0[] = {"x@0", "x@1", NULL};
    memcpy(a.src->script[0], b0, sizeof(b0));
    step(&a, 1000);
    CU_ASSERT_EQUAL(a.ctx->fatal_err, SL_ERR_INVAL);
    CU_ASSERT_EQUAL(log.writes, 0);
    owner_free(&a);
}

void sl_test_register(void)
{
    SL_SUITE("changelog", SL_TEST(changes_follow_the_other_sinks),
             SL_TEST(new_owner_restores_and_continues),
             SL_TEST(input_behind_restored_state_is_skipped), SL_TEST(removed_key_is_a_tombstone),
             SL_TEST(keys_without_partition_fail), SL_TEST(key_from_two_partitions_fails),
             SL_TEST(keyed_window_equals_plain_window),
             SL_TEST(keyed_window_moves_with_its_partition), SL_TEST(keyed_window_skips_held_input),
             SL_TEST(keyed_window_forgets_a_lost_partition),
             SL_TEST(event_windows_close_on_the_watermark), SL_TEST(event_windows_hop),
             SL_TEST(event_windows_move_with_their_partition),
             SL_TEST(event_windows_idle_partition_follows_the_others),
             SL_TEST(event_windows_of_keys_from_several_partitions));
}

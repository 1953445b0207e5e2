/* sl_stream.c -- the DStream graph: building streams, deciding which are materialized,
 * running fused chains of narrow operators, and computing a stream's dataset at a time.
 *
 * Narrow operators (map, flat_map, filter, map_values, key_by, union) do not materialize
 * their output when exactly one consumer reads it: their functions are chained, and a
 * record flows from the nearest materialized ancestor through every operator into the
 * consumer (a partition being built, or a shuffle's combiner) without being stored in
 * between -- Spark's pipelining of narrow dependencies within a stage. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

static const char *kind_name(sl_op_kind k)
{
    switch (k) {
    case SL_OP_SOURCE: return "source";
    case SL_OP_MAP: return "map";
    case SL_OP_FLAT_MAP: return "flat_map";
    case SL_OP_FILTER: return "filter";
    case SL_OP_MAP_VALUES: return "map_values";
    case SL_OP_KEY_BY: return "key_by";
    case SL_OP_UNION: return "union";
    case SL_OP_REPARTITION: return "repartition";
    case SL_OP_TRANSFORM: return "transform";
    case SL_OP_REDUCE_BY_KEY: return "reduce_by_key";
    case SL_OP_JOIN: return "join";
    case SL_OP_WINDOW: return "window";
    case SL_OP_WINDOW_INV: return "reduce_by_key_and_window";
    case SL_OP_UPDATE_STATE: return "update_state_by_key";
    case SL_OP_MAP_STATE: return "map_with_state";
    case SL_OP_KEYS_LEFT: return "keys_left";
    }
    return "?";
}

static bool is_narrow(sl_op_kind k)
{
    return k == SL_OP_MAP || k == SL_OP_FLAT_MAP || k == SL_OP_FILTER || k == SL_OP_MAP_VALUES ||
           k == SL_OP_KEY_BY || k == SL_OP_UNION;
}

/* ==== Building the graph ==== */

sl_stream *sl__stream_new(sl_context *ctx, sl_op_kind kind, sl_stream *a, sl_stream *b)
{
    pthread_mutex_lock(&ctx->lock);
    sl_ctx_state state = ctx->state;
    pthread_mutex_unlock(&ctx->lock);
    if (state != SL_CTX_CREATED) {
        sl_log(SL_LOG_ERROR, "streams cannot be added to a context that has started");
        return NULL;
    }
    sl_stream *s = calloc(1, sizeof(*s));
    if (!s) {
        return NULL;
    }
    s->ctx = ctx;
    s->id = ctx->nstreams++;
    s->kind = kind;
    s->slide = a ? a->slide : ctx->batch_interval;
    if (a) {
        s->parents[s->nparents++] = a;
        a->nconsumers++;
    }
    if (b) {
        s->parents[s->nparents++] = b;
        b->nconsumers++;
    }
    snprintf(s->name, sizeof(s->name), "%s-%d", kind_name(kind), s->id);
    if (ctx->streams_tail) {
        ctx->streams_tail->next = s;
    } else {
        ctx->streams = s;
    }
    ctx->streams_tail = s;
    return s;
}

static sl_stream *narrow(sl_stream *s, sl_op_kind kind, void *fn, void *opaque)
{
    if (!s || !fn) {
        return NULL;
    }
    sl_stream *n = sl__stream_new(s->ctx, kind, s, NULL);
    if (n) {
        /* Every member of the union is a function pointer: store through one of them. */
        n->fn.map = (sl_map_fn)fn;
        n->opaque = opaque;
    }
    return n;
}

sl_stream *sl_stream_map(sl_stream *s, sl_map_fn fn, void *opaque)
{
    return narrow(s, SL_OP_MAP, (void *)fn, opaque);
}

sl_stream *sl_stream_flat_map(sl_stream *s, sl_flat_map_fn fn, void *opaque)
{
    return narrow(s, SL_OP_FLAT_MAP, (void *)fn, opaque);
}

sl_stream *sl_stream_filter(sl_stream *s, sl_filter_fn fn, void *opaque)
{
    return narrow(s, SL_OP_FILTER, (void *)fn, opaque);
}

sl_stream *sl_stream_map_values(sl_stream *s, sl_map_fn fn, void *opaque)
{
    return narrow(s, SL_OP_MAP_VALUES, (void *)fn, opaque);
}

sl_stream *sl_stream_key_by(sl_stream *s, sl_map_fn fn, void *opaque)
{
    return narrow(s, SL_OP_KEY_BY, (void *)fn, opaque);
}

static bool same_context_and_slide(sl_stream *a, sl_stream *b, const char *what)
{
    if (a->ctx != b->ctx) {
        sl_log(SL_LOG_ERROR, "%s of streams of different contexts", what);
        return false;
    }
    if (a->slide != b->slide) {
        sl_log(SL_LOG_ERROR,
               "%s of '%s' (slide %" PRId64 "ms) and '%s' (slide %" PRId64
               "ms): the slides must be equal",
               what, a->name, a->slide, b->name, b->slide);
        return false;
    }
    return true;
}

sl_stream *sl_stream_union(sl_stream *a, sl_stream *b)
{
    if (!a || !b || !same_context_and_slide(a, b, "union")) {
        return NULL;
    }
    return sl__stream_new(a->ctx, SL_OP_UNION, a, b);
}

sl_stream *sl_stream_repartition(sl_stream *s, int partitions)
{
    if (!s || partitions < 0) {
        return NULL;
    }
    sl_stream *n = sl__stream_new(s->ctx, SL_OP_REPARTITION, s, NULL);
    if (n) {
        n->partitions = partitions;
    }
    return n;
}

sl_stream *sl_stream_transform(sl_stream *s, sl_transform_fn fn, void *opaque)
{
    if (!s || !fn) {
        return NULL;
    }
    sl_stream *n = sl__stream_new(s->ctx, SL_OP_TRANSFORM, s, NULL);
    if (n) {
        n->fn.transform = fn;
        n->opaque = opaque;
    }
    return n;
}

sl_stream *sl__stream_reduce_node(sl_stream *s, sl_reduce_fn fn, void *opaque, int partitions,
                                  unsigned flags)
{
    if (!s || !fn || partitions < 0) {
        return NULL;
    }
    sl_stream *n = sl__stream_new(s->ctx, SL_OP_REDUCE_BY_KEY, s, NULL);
    if (n) {
        n->fn.reduce = fn;
        n->opaque = opaque;
        n->partitions = partitions;
        n->flags = flags;
    }
    return n;
}

sl_stream *sl_stream_reduce_by_key(sl_stream *s, sl_reduce_fn fn, void *opaque, int partitions)
{
    return sl__stream_reduce_node(s, fn, opaque, partitions, 0);
}

sl_stream *sl_stream_reduce(sl_stream *s, sl_reduce_fn fn, void *opaque)
{
    sl_stream *n = sl__stream_reduce_node(s, fn, opaque, 1, SL_RBK_GLOBAL);
    if (n) {
        snprintf(n->name, sizeof(n->name), "reduce-%d", n->id);
    }
    return n;
}

/* count and count_by_value: a map to (key, 1) and a sum. */
static int to_one(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    out->key = NULL;
    out->key_len = 0;
    out->value = NULL;
    out->value_len = 0;
    sl_record_set_int(out, 1);
    return SL_OK;
}

int sl__value_to_key_one(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    out->key = in->value;
    out->key_len = in->value_len;
    out->value = NULL;
    out->value_len = 0;
    sl_record_set_int(out, 1);
    return SL_OK;
}

sl_stream *sl_stream_count(sl_stream *s)
{
    sl_stream *n = sl__stream_reduce_node(sl_stream_map(s, to_one, NULL), sl_reduce_sum, NULL, 1,
                                          SL_RBK_GLOBAL | SL_RBK_ZERO_IF_EMPTY);
    if (n) {
        snprintf(n->name, sizeof(n->name), "count-%d", n->id);
    }
    return n;
}

sl_stream *sl_stream_count_by_value(sl_stream *s, int partitions)
{
    sl_stream *n = sl__stream_reduce_node(sl_stream_map(s, sl__value_to_key_one, NULL),
                                          sl_reduce_sum, NULL, partitions, 0);
    if (n) {
        snprintf(n->name, sizeof(n->name), "count_by_value-%d", n->id);
    }
    return n;
}

static sl_stream *join_node(sl_stream *a, sl_stream *b, sl_join_fn fn, void *opaque, int partitions,
                            unsigned flags)
{
    if (!a || !b || partitions < 0 || !same_context_and_slide(a, b, "join")) {
        return NULL;
    }
    sl_stream *n = sl__stream_new(a->ctx, SL_OP_JOIN, a, b);
    if (n) {
        n->fn.join = fn;
        n->opaque = opaque;
        n->partitions = partitions;
        n->flags = flags;
    }
    return n;
}

sl_stream *sl_stream_join(sl_stream *a, sl_stream *b, sl_join_fn fn, void *opaque, int partitions)
{
    return join_node(a, b, fn, opaque, partitions, 0);
}

sl_stream *sl_stream_left_join(sl_stream *a, sl_stream *b, sl_join_fn fn, void *opaque,
                               int partitions)
{
    return join_node(a, b, fn, opaque, partitions, SL_JOIN_LEFT);
}

int64_t sl__stream_span(const sl_stream *s)
{
    if (s->window_len > 0 && s->nparents > 0) {
        /* The parent's datasets of the last window_len, every parent slide: a window of
         * windows reaches back further than either. */
        const sl_stream *p = s->parents[0];
        return s->window_len + sl__stream_span(p) - p->slide;
    }
    int64_t span = s->slide;
    for (int i = 0; i < s->nparents; i++) {
        int64_t p = sl__stream_span(s->parents[i]);
        span = p > span ? p : span;
    }
    return span;
}

int64_t sl__stream_event_window(const sl_stream *s)
{
    while (s->event_window == 0 && s->nparents == 1 &&
           (s->kind == SL_OP_MAP || s->kind == SL_OP_MAP_VALUES || s->kind == SL_OP_FILTER ||
            s->kind == SL_OP_FLAT_MAP)) {
        s = s->parents[0];
    }
    return s->event_window;
}

bool sl__window_args(const sl_stream *s, int64_t length_ms, int64_t *slide_ms, const char *what)
{
    if (*slide_ms == 0) {
        *slide_ms = s->slide;
    }
    if (length_ms <= 0 || *slide_ms <= 0 || length_ms % s->slide || *slide_ms % s->slide) {
        sl_log(SL_LOG_ERROR,
               "%s of '%s': length %" PRId64 "ms and slide %" PRId64
               "ms must be positive multiples of the parent's slide %" PRId64 "ms",
               what, s->name, length_ms, *slide_ms, s->slide);
        return false;
    }
    return true;
}

sl_stream *sl_stream_window(sl_stream *s, int64_t length_ms, int64_t slide_ms)
{
    if (!s || !sl__window_args(s, length_ms, &slide_ms, "window")) {
        return NULL;
    }
    sl_stream *n = sl__stream_new(s->ctx, SL_OP_WINDOW, s, NULL);
    if (n) {
        n->window_len = length_ms;
        n->slide = slide_ms;
    }
    return n;
}

int64_t sl_stream_slide(const sl_stream *s)
{
    return s->slide;
}

const char *sl_stream_name(const sl_stream *s)
{
    return s->name;
}

void sl_stream_set_name(sl_stream *s, const char *name)
{
    if (s && name) {
        sl__strlcpy(s->name, name, sizeof(s->name));
    }
}

sl_context *sl_stream_context(const sl_stream *s)
{
    return s->ctx;
}

void sl__stream_free(sl_stream *s)
{
    for (size_t i = 0; i < s->ngen; i++) {
        sl__dataset_release(s->gen[i].ds);
    }
    free(s->gen);
    sl__kstate_free(s->kstate);
    sl__changelog_free(s);
    sl__late_free(s->late_out);
    free(s->owned);
    free(s);
}

/* ==== Preparing the graph ==== */

void sl__graph_prepare(sl_context *ctx)
{
    /* Streams are created after their parents, so the list in reverse visits every
     * consumer before its parents: remember durations flow upwards (Spark's
     * rememberDuration). */
    sl_stream **order = calloc((size_t)ctx->nstreams, sizeof(*order));
    int n = 0;
    for (sl_stream *s = ctx->streams; s && order; s = s->next) {
        order[n++] = s;
    }
    for (int i = n - 1; i >= 0; i--) {
        sl_stream *s = order[i];
        int64_t need = s->remember_parents > 0 ? s->remember_parents : s->remember;
        if (s->kind == SL_OP_WINDOW) {
            need += s->window_len;
        } else if (s->kind == SL_OP_WINDOW_INV) {
            /* The previous result is updated with the batches leaving the window: the
             * parent (the reduced batches) keeps them a slide longer than the window. */
            need = s->remember + s->window_len + s->slide;
        }
        for (int k = 0; k < s->nparents; k++) {
            sl_stream *p = s->parents[k];
            p->remember = SL_MAX(p->remember, need);
            if (s->kind == SL_OP_WINDOW || s->kind == SL_OP_WINDOW_INV) {
                p->remembered_by_window = true;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        sl_stream *s = order[i];
        s->materialize = !is_narrow(s->kind) || s->nconsumers != 1;
    }
    free(order);
    if (sl__outputs_prepare(ctx) != SL_OK) {
        sl_log(SL_LOG_ERROR, "out of memory finding the sources of the outputs");
    }
}

bool sl__stream_valid_time(const sl_stream *s, int64_t t)
{
    int64_t d = t - s->ctx->zero_time;
    return d > 0 && d % s->slide == 0;
}

/* ==== Failed records ==== */

/* Why the failing function rejected its record (sl_reject_reason); empty when it did not
 * say. Per thread: functions run on the worker that then reports the failure. */
static _Thread_local char reject_reason[160];

void sl_reject_reason(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reject_reason, sizeof(reject_reason), fmt, ap);
    va_end(ap);
}

void sl__record_failed(sl_stream *node, const sl_record *r, int err)
{
    char why[sizeof(reject_reason)];
    memcpy(why, reject_reason, sizeof(why));
    reject_reason[0] = '\0';
    atomic_fetch_add(&node->failed, 1);
    atomic_fetch_add(&node->ctx->records_failed, 1);
    if (atomic_fetch_add(&node->failed_logged, 1) >= 10) {
        return; /* the batch summary reports the rest */
    }
    char preview[80];
    size_t n = 0;
    for (uint32_t i = 0; i < r->value_len && n < sizeof(preview) - 5; i++) {
        unsigned char c = (unsigned char)r->value[i];
        if (c >= 0x20 && c < 0x7f) {
            preview[n++] = (char)c;
        } else {
            n += (size_t)snprintf(preview + n, sizeof(preview) - n, "\\x%02x", c);
        }
    }
    preview[n] = '\0';
    const sl_record_meta *m = r->meta;
    sl_log(SL_LOG_WARN,
           "operator '%s' rejected a record (%s) from %s%s%s partition %d offset %" PRId64
           ": \"%s%s\"",
           node->name, why[0] ? why : sl_err2str(err), m && m->source ? m->source : "?",
           m && m->topic ? " " : "", m && m->topic ? m->topic : "", m ? m->partition : -1,
           m ? m->offset : (int64_t)-1, preview, r->value_len > 60 ? "..." : "");
}

void sl__stream_late(sl_stream *node, int64_t t, const sl_record *r)
{
    atomic_fetch_add(&node->ctx->records_late, 1);
    if (node->late_out && sl__late_add(node->late_out, t, r) != SL_OK) {
        sl_log(SL_LOG_ERROR, "'%s': out of memory: a late record misses the late output",
               node->name);
    }
    if (atomic_fetch_add(&node->late, 1) >= 10) {
        return; /* counted in sluice_late_records_total */
    }
    const sl_record_meta *m = r->meta;
    sl_log(SL_LOG_WARN,
           "'%s': a record of time %" PRId64 " came after the watermark passed every window "
           "it belongs to; left out (from %s%s%s partition %d offset %" PRId64 "; raise "
           "max_out_of_orderness or allowed_lateness to keep such records)",
           node->name, r->ts, m && m->source ? m->source : "?", m && m->topic ? " " : "",
           m && m->topic ? m->topic : "", m ? m->partition : -1, m ? m->offset : (int64_t)-1);
}

/* ==== Fused chains ==== */

static int op_push(sl_emitter *e, const sl_record *r)
{
    sl_stream *s = e->node;
    sl_record out;
    int rc;
    switch (s->kind) {
    case SL_OP_MAP:
    case SL_OP_MAP_VALUES:
    case SL_OP_KEY_BY:
        out = *r;
        rc = s->fn.map(r, &out, e->next, s->opaque);
        if (rc < 0) {
            sl__record_failed(s, r, rc);
            return SL_OK;
        }
        if (s->kind == SL_OP_MAP_VALUES) {
            out.key = r->key;
            out.key_len = r->key_len;
        } else if (s->kind == SL_OP_KEY_BY) {
            const char *key = out.key;
            uint32_t key_len = out.key_len;
            out = *r;
            out.key = key;
            out.key_len = key_len;
        }
        return e->next->push(e->next, &out);
    case SL_OP_FLAT_MAP:
        rc = s->fn.flat_map(r, e->next, s->opaque);
        if (rc < 0) {
            if (rc == SL_ERR_NOMEM) {
                return rc;
            }
            sl__record_failed(s, r, rc);
        }
        return SL_OK;
    case SL_OP_FILTER:
        rc = s->fn.filter(r, s->opaque);
        if (rc < 0) {
            sl__record_failed(s, r, rc);
            return SL_OK;
        }
        return rc ? e->next->push(e->next, r) : SL_OK;
    default: return SL_ERR_STATE;
    }
}

static sl_dataset *cached(sl_stream *s, int64_t t)
{
    for (size_t i = s->ngen; i-- > 0;) {
        if (s->gen[i].time == t) {
            return s->gen[i].ds;
        }
    }
    return NULL;
}

static int run_node(sl_stream *s, int64_t t, size_t p, sl_emitter *out, bool fuse_self);

static size_t node_partitions(sl_stream *s, int64_t t, bool fuse_self)
{
    if (s->materialize && !fuse_self) {
        sl_dataset *ds = cached(s, t);
        return ds ? ds->nparts : 0;
    }
    if (s->kind == SL_OP_UNION) {
        return sl__chain_partitions(s->parents[0], t) + sl__chain_partitions(s->parents[1], t);
    }
    return sl__chain_partitions(s->parents[0], t);
}

size_t sl__chain_partitions(sl_stream *s, int64_t t)
{
    return node_partitions(s, t, false);
}

static int run_node(sl_stream *s, int64_t t, size_t p, sl_emitter *out, bool fuse_self)
{
    if (s->materialize && !fuse_self) {
        sl_dataset *ds = cached(s, t);
        if (!ds || p >= ds->nparts) {
            return SL_OK;
        }
        const sl_part *part = &ds->parts[p];
        for (size_t i = 0; i < part->n; i++) {
            int rc = out->push(out, &part->recs[i]);
            if (rc < 0) {
                return rc;
            }
        }
        return SL_OK;
    }
    if (s->kind == SL_OP_UNION) {
        size_t n0 = sl__chain_partitions(s->parents[0], t);
        return p < n0 ? run_node(s->parents[0], t, p, out, false)
                      : run_node(s->parents[1], t, p - n0, out, false);
    }
    sl_emitter e = {
        .push = op_push,
        .next = out,
        .arena = out->arena,
        .batch_time = t,
        .node = s,
    };
    return run_node(s->parents[0], t, p, &e, false);
}

int sl__chain_run(sl_stream *s, int64_t t, size_t p, sl_emitter *out)
{
    return run_node(s, t, p, out, false);
}

static int node_prepare(sl_stream *s, int64_t t, sl_dataset *into, bool fuse_self)
{
    if (s->materialize && !fuse_self) {
        sl_dataset *ds;
        int rc = sl__stream_compute(s, t, &ds);
        if (rc != SL_OK) {
            return rc;
        }
        return ds && into ? sl__dataset_add_dep(into, ds) : SL_OK;
    }
    for (int k = 0; k < s->nparents; k++) {
        int rc = node_prepare(s->parents[k], t, into, false);
        if (rc != SL_OK) {
            return rc;
        }
    }
    return SL_OK;
}

int sl__chain_prepare(sl_stream *s, int64_t t, sl_dataset *into)
{
    return node_prepare(s, t, into, false);
}

/* ==== Computing datasets ==== */

/* The terminal emitter that appends records to a partition being built. */
static int collect_push(sl_emitter *e, const sl_record *r)
{
    return sl__recvec_push(e->state, r);
}

typedef struct narrow_stage {
    sl_stream *s;
    int64_t t;
    sl_dataset *ds;
} narrow_stage;

static int narrow_task(void *arg, size_t p)
{
    narrow_stage *st = arg;
    sl_part *part = &st->ds->parts[p];
    sl_recvec v = {0};
    sl_emitter e = {
        .push = collect_push,
        .arena = &part->arena,
        .batch_time = st->t,
        .node = st->s,
        .state = &v,
    };
    int rc = run_node(st->s, st->t, p, &e, true);
    part->recs = v.recs;
    part->n = v.n;
    return rc;
}

int sl__stream_result(const sl_stream *s, int64_t t, int rc, sl_dataset *ds, sl_dataset **out)
{
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "'%s' failed at batch %" PRId64 ": %s", s->name, t, sl_err2str(rc));
        sl__dataset_release(ds);
        return rc;
    }
    *out = ds;
    return SL_OK;
}

static int compute_narrow(sl_stream *s, int64_t t, sl_dataset **out)
{
    int rc = node_prepare(s, t, NULL, true);
    if (rc != SL_OK) {
        return rc;
    }
    sl_dataset *ds = sl__dataset_new(node_partitions(s, t, true), t);
    if (!ds) {
        return SL_ERR_NOMEM;
    }
    rc = node_prepare(s, t, ds, true); /* cached now: only records the dependencies */
    narrow_stage st = {.s = s, .t = t, .ds = ds};
    if (rc == SL_OK) {
        rc = sl__pool_run(s->ctx->pool, ds->nparts, narrow_task, &st);
    }
    if (rc != SL_OK) {
        sl__dataset_release(ds);
        return rc;
    }
    *out = ds;
    return SL_OK;
}

static int compute_transform(sl_stream *s, int64_t t, sl_dataset **out)
{
    sl_dataset *in;
    int rc = sl__stream_compute(s->parents[0], t, &in);
    if (rc != SL_OK) {
        return rc;
    }
    sl_dataset *ds = sl__dataset_new(1, t);
    if (!ds) {
        return SL_ERR_NOMEM;
    }
    sl_dataset empty = {.nparts = 0};
    sl_recvec v = {0};
    sl_emitter e = {
        .push = collect_push,
        .arena = &ds->parts[0].arena,
        .batch_time = t,
        .node = s,
        .state = &v,
    };
    rc = in ? sl__dataset_add_dep(ds, in) : SL_OK;
    if (rc == SL_OK) {
        rc = s->fn.transform(in ? in : &empty, t, &e, s->opaque);
    }
    ds->parts[0].recs = v.recs;
    ds->parts[0].n = v.n;
    if (rc < 0) {
        sl_log(SL_LOG_ERROR, "transform '%s' failed at batch %" PRId64 ": %s", s->name, t,
               sl_err2str(rc));
        sl__dataset_release(ds);
        return rc;
    }
    *out = ds;
    return SL_OK;
}

static int compute_window(sl_stream *s, int64_t t, sl_dataset **out)
{
    sl_stream *p = s->parents[0];
    size_t ntimes = (size_t)(s->window_len / p->slide);
    sl_dataset **parts = calloc(ntimes, sizeof(*parts));
    if (!parts) {
        return SL_ERR_NOMEM;
    }
    size_t nparts = 0, k = 0;
    int rc = SL_OK;
    for (int64_t tt = t - s->window_len + p->slide; tt <= t && rc == SL_OK; tt += p->slide) {
        sl_dataset *d = NULL;
        if (sl__stream_valid_time(p, tt)) {
            rc = sl__stream_compute(p, tt, &d);
        }
        if (d) {
            parts[k++] = d;
            nparts += d->nparts;
        }
    }
    sl_dataset *ds = rc == SL_OK ? sl__dataset_new(nparts, t) : NULL;
    if (rc == SL_OK && !ds) {
        rc = SL_ERR_NOMEM;
    }
    size_t at = 0;
    for (size_t i = 0; i < k && rc == SL_OK; i++) {
        rc = sl__dataset_add_dep(ds, parts[i]);
        for (size_t j = 0; j < parts[i]->nparts; j++, at++) {
            ds->parts[at].recs = parts[i]->parts[j].recs;
            ds->parts[at].n = parts[i]->parts[j].n;
            ds->parts[at].borrowed = true;
        }
    }
    free(parts);
    if (rc != SL_OK) {
        sl__dataset_release(ds);
        return rc;
    }
    *out = ds;
    return SL_OK;
}

static int gen_put(sl_stream *s, int64_t t, sl_dataset *ds)
{
    if (s->ngen == s->capgen) {
        size_t cap = s->capgen ? s->capgen * 2 : 4;
        sl_gen *g = realloc(s->gen, cap * sizeof(*g));
        if (!g) {
            return SL_ERR_NOMEM;
        }
        s->gen = g;
        s->capgen = cap;
    }
    /* Keep the array sorted by time: inserts are nearly always at the end. */
    size_t i = s->ngen;
    while (i > 0 && s->gen[i - 1].time > t) {
        s->gen[i] = s->gen[i - 1];
        i--;
    }
    s->gen[i].time = t;
    s->gen[i].ds = ds;
    s->ngen++;
    return SL_OK;
}

int sl__stream_put(sl_stream *s, int64_t t, sl_dataset *ds)
{
    sl_dataset *old = cached(s, t);
    if (old) {
        sl__dataset_release(ds);
        return SL_OK;
    }
    int rc = gen_put(s, t, ds);
    if (rc != SL_OK) {
        sl__dataset_release(ds);
    }
    return rc;
}

int sl__stream_compute(sl_stream *s, int64_t t, sl_dataset **out)
{
    *out = NULL;
    if (!sl__stream_valid_time(s, t)) {
        return SL_OK;
    }
    sl_dataset *ds = cached(s, t);
    if (ds) {
        *out = ds;
        return SL_OK;
    }
    int rc;
    switch (s->kind) {
    case SL_OP_SOURCE:
        /* No input was recorded for t (before the start or forgotten): empty. */
        ds = sl__dataset_new(0, t);
        rc = ds ? SL_OK : SL_ERR_NOMEM;
        break;
    case SL_OP_MAP:
    case SL_OP_FLAT_MAP:
    case SL_OP_FILTER:
    case SL_OP_MAP_VALUES:
    case SL_OP_KEY_BY:
    case SL_OP_UNION: rc = compute_narrow(s, t, &ds); break;
    case SL_OP_REPARTITION: rc = sl__shuffle_repartition(s, t, &ds); break;
    case SL_OP_REDUCE_BY_KEY: rc = sl__shuffle_reduce_by_key(s, t, &ds); break;
    case SL_OP_JOIN: rc = sl__shuffle_join(s, t, &ds); break;
    case SL_OP_TRANSFORM: rc = compute_transform(s, t, &ds); break;
    case SL_OP_WINDOW: rc = compute_window(s, t, &ds); break;
    case SL_OP_WINDOW_INV: rc = sl__window_compute(s, t, &ds); break;
    case SL_OP_KEYS_LEFT: rc = sl__keys_left_compute(s, t, &ds); break;
    case SL_OP_UPDATE_STATE:
    case SL_OP_MAP_STATE: rc = sl__state_compute(s, t, &ds); break;
    default: rc = SL_ERR_STATE;
    }
    if (rc != SL_OK) {
        return rc;
    }
    rc = gen_put(s, t, ds);
    if (rc != SL_OK) {
        sl__dataset_release(ds);
        return rc;
    }
    *out = ds;
    return SL_OK;
}

void sl__stream_forget(sl_stream *s, int64_t t)
{
    size_t keep = 0;
    for (size_t i = 0; i < s->ngen; i++) {
        if (s->gen[i].time <= t - s->remember) {
            sl__dataset_release(s->gen[i].ds);
        } else {
            s->gen[keep++] = s->gen[i];
        }
    }
    s->ngen = keep;
    atomic_store(&s->failed_logged, 0);
}

/* ==== Description (the checkpoint's fingerprint) ==== */

char *sl__graph_describe(sl_context *ctx)
{
    sl_buf b = {0};
    sl__buf_append(&b, "", 0);
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        if (s->kind == SL_OP_SOURCE) {
            sl__buf_printf(&b, "source %d %s type=%s\n", s->id, s->name, s->source->conn->name);
            continue;
        }
        sl__buf_printf(&b,
                       "stream %d %s parents=%d,%d slide=%" PRId64 " window=%" PRId64
                       " partitions=%d flags=%u\n",
                       s->id, kind_name(s->kind), s->parents[0] ? s->parents[0]->id : -1,
                       s->parents[1] ? s->parents[1]->id : -1, s->slide, s->window_len,
                       s->partitions, s->flags);
    }
    for (sl_output *o = ctx->outputs; o; o = o->next) {
        sl__buf_printf(&b, "output %s stream=%d type=%s\n", o->name, o->stream->id,
                       o->sink ? o->sink->conn->name : "foreach");
    }
    if (ctx->window_offset) {
        /* the checkpoint keeps the zero time: another offset is another pipeline */
        sl__buf_printf(&b, "window_offset=%" PRId64 "\n", ctx->window_offset);
    }
    return sl__buf_steal(&b);
}

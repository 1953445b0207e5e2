/* sl_instance.c -- connector instances: the services connectors call (sl_instance_*,
 * sl_batch_input_*), the options common to every source and sink, and adding sources to a
 * context. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "sl_deadletter.h"
#include "sl_engine.h"
#include "sl_registry.h"
#include "sl_options.h"

/* ==== Common options ==== */

static const sl_option common_source_options[] = {
    {.name = "max_record_size",
     .type = SL_OPT_SIZE,
     .def = "1MiB",
     .min = 1,
     .max = 1 << 30,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_source_common, max_record_size),
     .doc = "longest record accepted; longer ones are counted, reported and skipped"},
    {.name = "max_buffered",
     .type = SL_OPT_SIZE,
     .def = "256MiB",
     .min = 0,
     .max = 1e15,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_source_common, max_buffered),
     .doc = "received bytes not yet processed before the receiver stops reading (0: none)"},
    {.name = "max_rate",
     .type = SL_OPT_DOUBLE,
     .def = "0",
     .min = 0,
     .max = 1e12,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_source_common, max_rate),
     .doc = "receivers: most records per second taken from the source (0: no limit)"},
    {0},
};

const sl_option *sl_common_source_options(void)
{
    return common_source_options;
}

/* The engine's options of every sink: changelog, then errors.* (rejected records,
 * sl_deadletter.c). */
static struct {
    pthread_once_t once;
    sl_option options[96];
} common_sink = {.once = PTHREAD_ONCE_INIT};

static const sl_option changelog_option = {
    .name = "changelog",
    .type = SL_OPT_BOOL,
    .def = "false",
    .doc = "this sink holds the keyed state of its stream (running, update_state_by_key, "
           "map_with_state) instead of its records: each batch's state changes, after the "
           "other sinks committed, and restored from it when a partition moves to this "
           "instance (exactly once across a consumer group; kafka sinks)"};

static void common_sink_build(void)
{
    size_t n = 0;
    common_sink.options[n++] = changelog_option;
    for (const sl_option *o = sl__deadletter_options(); o->name && n + 1 < 96; o++) {
        common_sink.options[n++] = *o;
    }
}

const sl_option *sl_common_sink_options(void)
{
    pthread_once(&common_sink.once, common_sink_build);
    return common_sink.options;
}

/* ==== Instances ==== */

static sl_options *options_copy(const sl_options *o)
{
    sl_options *c = sl_options_new();
    for (size_t i = 0; c && i < sl_options_count(o); i++) {
        const char *k, *v;
        sl_options_at(o, i, &k, &v);
        if (sl_options_set(c, k, v) != SL_OK) {
            sl_options_destroy(c);
            return NULL;
        }
    }
    return c;
}

sl_instance *sl__instance_new(sl_context *ctx, const sl_connector *conn, unsigned role,
                              const char *name, const sl_options *opts, char *errstr,
                              size_t errsize)
{
    const sl_option *common = role == SL_SOURCE ? common_source_options : sl_common_sink_options();
    char why[512];
    if (sl_options_check(conn->options, common, opts, why, sizeof(why), NULL) != SL_OK) {
        snprintf(errstr, errsize, "%s '%s' (type %s): %s", role == SL_SOURCE ? "source" : "sink",
                 name, conn->name, why);
        return NULL;
    }
    sl_instance *ins = calloc(1, sizeof(*ins));
    if (!ins) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    ins->ctx = ctx;
    ins->conn = conn;
    ins->receiver = (conn->flags & SL_RECEIVER) != 0;
    ins->role = role;
    sl__receiver_init(&ins->rcv, ctx->block_interval, &ctx->records_received);
    pthread_mutex_init(&ins->err_lock, NULL);
    pthread_mutex_init(&ins->pid_lock, NULL);
    ins->name = strdup(name);
    ins->opts = options_copy(opts);
    ins->cctx = calloc(1, conn->ctx_size ? conn->ctx_size : 1);
    if (!ins->name || !ins->opts || !ins->cctx) {
        snprintf(errstr, errsize, "out of memory");
        sl__instance_destroy(ins);
        return NULL;
    }
    if (sl__options_apply(conn->options, ins->opts, ins->cctx, why, sizeof(why)) != SL_OK ||
        (role == SL_SOURCE &&
         sl__options_apply(common, ins->opts, &ins->common, why, sizeof(why)) != SL_OK) ||
        (role == SL_SINK && !(ins->rejects = sl__rejects_new(ins, why, sizeof(why))))) {
        snprintf(errstr, errsize, "%s '%s': %s", role == SL_SOURCE ? "source" : "sink", name, why);
        sl__instance_destroy(ins);
        return NULL;
    }
    if (conn->init && conn->init(ins, ins->cctx, why, sizeof(why)) != SL_OK) {
        snprintf(errstr, errsize, "%s '%s' (type %s): %s", role == SL_SOURCE ? "source" : "sink",
                 name, conn->name, why);
        sl__instance_destroy(ins);
        return NULL;
    }
    return ins;
}

void sl__instance_destroy(sl_instance *ins)
{
    if (!ins) {
        return;
    }
    if (ins->cctx && ins->conn->destroy) {
        ins->conn->destroy(ins->cctx);
    }
    sl__rejects_destroy(ins->rejects);
    sl__receiver_destroy(&ins->rcv);
    pthread_mutex_destroy(&ins->err_lock);
    pthread_mutex_destroy(&ins->pid_lock);
    sl_options_destroy(ins->opts);
    free(ins->cctx);
    free(ins->name);
    free(ins);
}

/* ==== Services for connectors ==== */

/* The errstr of the start or write running on this thread (sl__instance_capture_begin):
 * thread-local, so that it needs no lock and an error reported by another instance or
 * thread never lands in it. */
static _Thread_local struct {
    const sl_instance *ins;
    char *errstr;
    size_t errsize;
} capture;

const char *sl_instance_name(const sl_instance *ins)
{
    return ins->name;
}

const sl_options *sl_instance_options(const sl_instance *ins)
{
    return ins->opts;
}

sl_context *sl_instance_context(const sl_instance *ins)
{
    return ins->ctx;
}

void sl_instance_log(const sl_instance *ins, sl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl__vlog(level, ins->name, NULL, fmt, ap);
    va_end(ap);
}

void sl_instance_error(sl_instance *ins, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&ins->err_lock);
    sl__strlcpy(ins->last_error, msg, sizeof(ins->last_error));
    ins->last_error_time = sl__now_ms();
    pthread_mutex_unlock(&ins->err_lock);
    if (capture.ins == ins) {
        sl__strlcpy(capture.errstr, msg, capture.errsize);
    }
    sl_instance_log(ins, SL_LOG_ERROR, "%s", msg);
}

void sl__instance_capture_begin(const sl_instance *ins, char *errstr, size_t errsize)
{
    if (errsize) {
        errstr[0] = '\0';
    }
    capture.ins = errsize ? ins : NULL;
    capture.errstr = errstr;
    capture.errsize = errsize;
}

void sl__instance_capture_end(void)
{
    capture.ins = NULL;
    capture.errstr = NULL;
    capture.errsize = 0;
}

void sl_instance_set_active(sl_instance *ins, bool active)
{
    atomic_store(&ins->active, active);
}

void sl_instance_fail_at_stop(sl_instance *ins)
{
    atomic_store(&ins->failed_at_stop, true);
}

void sl_instance_count_failed(sl_instance *ins, uint64_t n)
{
    atomic_fetch_add(&ins->ctx->records_failed, n);
}

void sl_instance_count_oversize(sl_instance *ins, uint64_t n)
{
    atomic_fetch_add(&ins->oversize, n);
}

size_t sl_instance_max_record_size(const sl_instance *ins)
{
    return (size_t)ins->common.max_record_size;
}

double sl_instance_backpressure_rate(const sl_instance *ins)
{
    const sl_backpressure_conf *bp = &ins->ctx->backpressure;
    if (!bp->enabled) {
        return 0;
    }
    double est = atomic_load(&ins->estimated_rate);
    return est > 0 ? est : bp->initial_rate;
}

/* The lower of two limits, 0 meaning none. */
static double lower_limit(double a, double b)
{
    if (a > 0 && b > 0) {
        return SL_MIN(a, b);
    }
    return a > 0 ? a : b;
}

double sl_instance_rate_limit(const sl_instance *ins)
{
    double bp = sl_instance_backpressure_rate(ins);
    return lower_limit(lower_limit(bp, ins->common.max_rate), atomic_load(&ins->rate_cap));
}

void sl_instance_set_rate_cap(sl_instance *ins, double records_per_s)
{
    atomic_store(&ins->rate_cap, records_per_s > 0 ? records_per_s : 0);
}

void sl_instance_set_receiver(sl_instance *ins, bool receiver)
{
    ins->receiver = receiver;
}

bool sl_instance_stopping(const sl_instance *ins)
{
    return atomic_load(&ins->stopping);
}

/* ==== Direct source input ==== */

int sl_batch_input_set_definition(sl_batch_input *in, const char *definition)
{
    char *d = strdup(definition);
    if (!d) {
        return SL_ERR_NOMEM;
    }
    free(in->definition);
    in->definition = d;
    return SL_OK;
}

int sl_batch_input_add_records(sl_batch_input *in, const sl_record *recs, size_t n)
{
    sl_dataset *ds = in->ds;
    sl_part *parts = realloc(ds->parts, (ds->nparts + 1) * sizeof(*parts));
    if (!parts) {
        return SL_ERR_NOMEM;
    }
    ds->parts = parts;
    sl_part *p = &parts[ds->nparts++];
    memset(p, 0, sizeof(*p));
    sl__arena_init(&p->arena, 0);
    p->recs = malloc((n ? n : 1) * sizeof(sl_record));
    if (!p->recs) {
        return SL_ERR_NOMEM;
    }
    sl_meta_cache mc = {0};
    for (size_t i = 0; i < n; i++) {
        sl_record c;
        if (sl__record_copy(&p->arena, &c, &recs[i]) != SL_OK) {
            return SL_ERR_NOMEM;
        }
        c.meta = sl__meta_copy(&p->arena, recs[i].meta, &mc);
        if (recs[i].meta && !c.meta) {
            return SL_ERR_NOMEM;
        }
        p->recs[p->n++] = c;
    }
    return SL_OK;
}

void sl_batch_input_describe(sl_batch_input *in, const char *fmt, ...)
{
    if (in->desc_len >= sizeof(in->desc) - 1) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(in->desc + in->desc_len, sizeof(in->desc) - in->desc_len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        in->desc_len = SL_MIN(in->desc_len + (size_t)n, sizeof(in->desc) - 1);
    }
}

/* ==== Adding sources to a context ==== */

static bool name_taken(sl_context *ctx, const char *name)
{
    for (sl_instance *i = ctx->sources; i; i = i->next) {
        if (strcmp(i->name, name) == 0) {
            return true;
        }
    }
    for (sl_instance *i = ctx->sinks; i; i = i->next) {
        if (strcmp(i->name, name) == 0) {
            return true;
        }
    }
    return false;
}

sl_instance *sl__instance_add(sl_context *ctx, const sl_connector *conn, unsigned role,
                              const char *name, const sl_options *opts, char *errstr,
                              size_t errsize)
{
    if (!(conn->flags & role)) {
        snprintf(errstr, errsize, "connector '%s' is not a %s", conn->name,
                 role == SL_SOURCE ? "source" : "sink");
        return NULL;
    }
    if (name_taken(ctx, name)) {
        snprintf(errstr, errsize, "a source or sink named '%s' exists already", name);
        return NULL;
    }
    sl_options *empty = opts ? NULL : sl_options_new();
    sl_instance *ins =
        sl__instance_new(ctx, conn, role, name, opts ? opts : empty, errstr, errsize);
    sl_options_destroy(empty);
    return ins;
}

void sl__instance_append(sl_instance **list, sl_instance *ins)
{
    while (*list) {
        list = &(*list)->next;
    }
    *list = ins;
}

sl_stream *sl_context_add_source(sl_context *ctx, const char *type, const char *name,
                                 const sl_options *opts, char *errstr, size_t errsize)
{
    const sl_connector *conn = sl_connector_find(type, SL_SOURCE);
    if (!conn) {
        snprintf(errstr, errsize, "unknown source type '%s' (run 'sluice connectors')", type);
        return NULL;
    }
    return sl_context_add_source_connector(ctx, conn, name, opts, errstr, errsize);
}

sl_stream *sl_context_add_source_connector(sl_context *ctx, const sl_connector *conn,
                                           const char *name, const sl_options *opts, char *errstr,
                                           size_t errsize)
{
    if (ctx->nsources >= SL_MAX_INPUTS_PER_INFO) {
        snprintf(errstr, errsize, "at most %d sources per context", SL_MAX_INPUTS_PER_INFO);
        return NULL;
    }
    sl_instance *ins = sl__instance_add(ctx, conn, SL_SOURCE, name, opts, errstr, errsize);
    if (!ins) {
        return NULL;
    }
    sl_stream *s = sl__stream_new(ctx, SL_OP_SOURCE, NULL, NULL);
    if (!s) {
        snprintf(errstr, errsize, "cannot add a source to a running context");
        sl__instance_destroy(ins);
        return NULL;
    }
    s->source = ins;
    sl_stream_set_name(s, name);
    ins->stream = s;
    sl__instance_append(&ctx->sources, ins);
    ctx->nsources++;
    return s;
}

sl_stream *sl__simple_source(sl_context *ctx, const sl_connector *conn, const char *prefix,
                             const char *k1, const char *v1, const char *k2, const char *v2)
{
    char name[64], errstr[512];
    snprintf(name, sizeof(name), "%s-%d", prefix, ctx->nstreams);
    sl_options *o = sl_options_new();
    if (!o) {
        return NULL;
    }
    sl_options_set(o, k1, v1);
    if (k2) {
        sl_options_set(o, k2, v2);
    }
    sl_stream *s = sl_context_add_source_connector(ctx, conn, name, o, errstr, sizeof(errstr));
    sl_options_destroy(o);
    if (!s) {
        sl_log(SL_LOG_ERROR, "%s", errstr);
    }
    return s;
}

/* sl_context.c -- the context: connector instances, outputs, and the scheduler.
 *
 * Threads: the timer thread cuts receiver blocks every block interval and, at every batch
 * time, generates a job: each source's input for the interval is fixed (receiver blocks
 * or a direct source's next_batch) and the job is queued. The job thread runs one job at
 * a time (Spark's concurrentJobs = 1), so a slow batch shows up as scheduling delay of the
 * next. The worker pool runs each job's parallel stages. The sinks of a job write
 * concurrently, each on an output thread of its own made for the job (see run_outputs). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "sl_deadletter.h"
#include "sl_engine.h"
#include "sl_metrics.h"
#include "sl_options.h"

#define RETRY_BACKOFF_MIN_MS 100
#define RETRY_BACKOFF_MAX_MS 5000

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

const sl_option *sl_common_sink_options(void)
{
    return sl__deadletter_options(); /* errors.*: rejected records (sl_deadletter.c) */
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
    sl__receiver_init(&ins->rcv);
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
    sl__vlog(level, ins->name, fmt, ap);
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
    sl_instance_log(ins, SL_LOG_ERROR, "%s", msg);
}

void sl_instance_set_active(sl_instance *ins, bool active)
{
    atomic_store(&ins->active, active);
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

double sl_instance_rate_limit(const sl_instance *ins)
{
    double bp = sl_instance_backpressure_rate(ins);
    double cap = ins->common.max_rate;
    if (bp > 0 && cap > 0) {
        return SL_MIN(bp, cap);
    }
    return bp > 0 ? bp : cap;
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

struct sl_batch_input {
    sl_dataset *ds;
    char desc[96];
    size_t desc_len;
    char *definition;
};

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
        sl_record c = recs[i];
        c.key = sl__arena_dup(&p->arena, recs[i].key, recs[i].key_len);
        c.value = sl__arena_dup(&p->arena, recs[i].value, recs[i].value_len);
        c.meta = sl__meta_copy(&p->arena, recs[i].meta, &mc);
        if (recs[i].meta && !c.meta) {
            return SL_ERR_NOMEM;
        }
        if (!c.key || !c.value) {
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

/* ==== Context ==== */

sl_context *sl_context_new(const sl_context_conf *conf, char *errstr, size_t errsize)
{
    if (!conf || conf->batch_interval_ms < 10) {
        snprintf(errstr, errsize, "batch interval must be at least 10ms");
        return NULL;
    }
    if (conf->workers < 0 || conf->workers > 256) {
        snprintf(errstr, errsize, "workers must be between 1 and 256 (0: number of cores)");
        return NULL;
    }
    if (conf->block_interval_ms < 0 || conf->default_partitions < 0) {
        snprintf(errstr, errsize, "block interval and partitions must not be negative");
        return NULL;
    }
    sl_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ctx->cond, &ca);
    pthread_condattr_destroy(&ca);
    ctx->batch_interval = conf->batch_interval_ms;
    ctx->block_interval = conf->block_interval_ms ? conf->block_interval_ms : 200;
    ctx->block_interval = SL_MIN(ctx->block_interval, ctx->batch_interval);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ctx->workers = conf->workers ? conf->workers : (int)(cores > 0 ? cores : 1);
    ctx->default_partitions = conf->default_partitions ? conf->default_partitions : ctx->workers;
    ctx->max_infos = conf->max_batches_kept ? conf->max_batches_kept : 1000;
    ctx->name = strdup(conf->name ? conf->name : "sluice");
    ctx->checkpoint_dir = conf->checkpoint_dir ? strdup(conf->checkpoint_dir) : NULL;
    ctx->infos = calloc(ctx->max_infos, sizeof(*ctx->infos));
    ctx->pool = sl__pool_new(ctx->workers);
    if (!ctx->name || !ctx->infos || !ctx->pool || (conf->checkpoint_dir && !ctx->checkpoint_dir)) {
        snprintf(errstr, errsize, "out of memory or threads");
        sl_context_destroy(ctx);
        return NULL;
    }
    sl_backpressure_defaults(&ctx->backpressure);
    ctx->state = SL_CTX_CREATED;
    return ctx;
}

void sl_backpressure_defaults(sl_backpressure_conf *bp)
{
    *bp = (sl_backpressure_conf){
        .enabled = false,
        .initial_rate = 0,
        .proportional = 1.0,
        .integral = 0.2,
        .derivative = 0.0,
        .min_rate = 100,
    };
}

int sl_context_set_backpressure(sl_context *ctx, const sl_backpressure_conf *bp, char *errstr,
                                size_t errsize)
{
    if (bp->proportional < 0 || bp->integral < 0 || bp->derivative < 0 || bp->min_rate <= 0 ||
        bp->initial_rate < 0) {
        snprintf(errstr, errsize,
                 "backpressure: proportional, integral, derivative and initial_rate must be "
                 ">= 0 and min_rate > 0");
        return SL_ERR_INVAL;
    }
    pthread_mutex_lock(&ctx->lock);
    bool created = ctx->state == SL_CTX_CREATED;
    if (created) {
        ctx->backpressure = *bp;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (!created) {
        snprintf(errstr, errsize, "backpressure must be set before the context starts");
        return SL_ERR_STATE;
    }
    return SL_OK;
}

int64_t sl_context_batch_interval(const sl_context *ctx)
{
    return ctx->batch_interval;
}

const char *sl_context_checkpoint_dir(const sl_context *ctx)
{
    return ctx->checkpoint_dir;
}

const char *sl_context_name(const sl_context *ctx)
{
    return ctx->name;
}

int sl_context_workers(const sl_context *ctx)
{
    return ctx->workers;
}

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

/* A new instance of conn in role, its name unique among sources and sinks. NULL with
 * errstr on failure. */
static sl_instance *add_instance(sl_context *ctx, const sl_connector *conn, unsigned role,
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

static void append_instance(sl_instance **list, sl_instance *ins)
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
    sl_instance *ins = add_instance(ctx, conn, SL_SOURCE, name, opts, errstr, errsize);
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
    append_instance(&ctx->sources, ins);
    ctx->nsources++;
    return s;
}

static sl_stream *simple_source(sl_context *ctx, const char *type, const char *prefix,
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
    sl_stream *s = sl_context_add_source(ctx, type, name, o, errstr, sizeof(errstr));
    sl_options_destroy(o);
    if (!s) {
        sl_log(SL_LOG_ERROR, "%s", errstr);
    }
    return s;
}

sl_stream *sl_socket_text_stream(sl_context *ctx, const char *host, int port)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    return simple_source(ctx, "tcp", "socket", "host", host, "port", p);
}

sl_stream *sl_text_file_stream(sl_context *ctx, const char *directory)
{
    return simple_source(ctx, "file", "files", "path", directory, NULL, NULL);
}

/* ==== Outputs ==== */

static int add_output(sl_stream *s, sl_instance *sink, sl_foreach_fn fn, void *opaque,
                      const char *name)
{
    sl_context *ctx = s->ctx;
    pthread_mutex_lock(&ctx->lock);
    bool created = ctx->state == SL_CTX_CREATED;
    pthread_mutex_unlock(&ctx->lock);
    if (!created) {
        sl_log(SL_LOG_ERROR, "outputs cannot be added to a context that has started");
        return SL_ERR_STATE;
    }
    sl_output *o = calloc(1, sizeof(*o));
    if (!o) {
        return SL_ERR_NOMEM;
    }
    o->stream = s;
    o->sink = sink;
    o->foreach = fn;
    o->opaque = opaque;
    sl__strlcpy(o->name, name, sizeof(o->name));
    s->nconsumers++;
    if (ctx->outputs_tail) {
        ctx->outputs_tail->next = o;
    } else {
        ctx->outputs = o;
    }
    ctx->outputs_tail = o;
    ctx->noutputs++;
    return SL_OK;
}

int sl_stream_to(sl_stream *s, const char *type, const char *name, const sl_options *opts,
                 char *errstr, size_t errsize)
{
    if (!s) {
        snprintf(errstr, errsize, "no stream");
        return SL_ERR_INVAL;
    }
    const sl_connector *conn = sl_connector_find(type, SL_SINK);
    if (!conn) {
        snprintf(errstr, errsize, "unknown sink type '%s' (run 'sluice connectors')", type);
        return SL_ERR_NOTFOUND;
    }
    return sl_stream_to_connector(s, conn, name, opts, errstr, errsize);
}

int sl_stream_to_connector(sl_stream *s, const sl_connector *conn, const char *name,
                           const sl_options *opts, char *errstr, size_t errsize)
{
    if (!s) {
        snprintf(errstr, errsize, "no stream");
        return SL_ERR_INVAL;
    }
    sl_context *ctx = s->ctx;
    sl_instance *ins = add_instance(ctx, conn, SL_SINK, name, opts, errstr, errsize);
    if (!ins) {
        return SL_ERR_INVAL;
    }
    int rc = add_output(s, ins, NULL, NULL, name);
    if (rc != SL_OK) {
        snprintf(errstr, errsize, "%s", sl_err2str(rc));
        sl__instance_destroy(ins);
        return rc;
    }
    append_instance(&ctx->sinks, ins);
    return SL_OK;
}

static int simple_sink(sl_stream *s, const char *type, const char *prefix, const char *k1,
                       const char *v1, const char *k2, const char *v2)
{
    if (!s) {
        return SL_ERR_INVAL;
    }
    char name[64], errstr[512];
    snprintf(name, sizeof(name), "%s-%d", prefix, s->ctx->noutputs);
    sl_options *o = sl_options_new();
    if (!o) {
        return SL_ERR_NOMEM;
    }
    sl_options_set(o, k1, v1);
    if (k2 && v2) {
        sl_options_set(o, k2, v2);
    }
    int rc = sl_stream_to(s, type, name, o, errstr, sizeof(errstr));
    sl_options_destroy(o);
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "%s", errstr);
    }
    return rc;
}

int sl_stream_print(sl_stream *s, int n)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", n);
    return simple_sink(s, "stdout", "print", "num", num, NULL, NULL);
}

int sl_stream_save_as_text_files(sl_stream *s, const char *prefix, const char *suffix)
{
    return simple_sink(s, "file", "files", "prefix", prefix, "suffix", suffix);
}

int sl_stream_foreach_batch(sl_stream *s, sl_foreach_fn fn, void *opaque)
{
    if (!s || !fn) {
        return SL_ERR_INVAL;
    }
    char name[64];
    snprintf(name, sizeof(name), "foreach-%d", s->ctx->noutputs);
    return add_output(s, NULL, fn, opaque, name);
}

int sl_context_add_batch_listener(sl_context *ctx, sl_batch_listener_fn fn, void *opaque)
{
    sl_listener *l = calloc(1, sizeof(*l));
    if (!l) {
        return SL_ERR_NOMEM;
    }
    l->fn = fn;
    l->opaque = opaque;
    pthread_mutex_lock(&ctx->lock);
    l->next = ctx->listeners;
    ctx->listeners = l;
    pthread_mutex_unlock(&ctx->lock);
    return SL_OK;
}

/* ==== Job generation (timer thread) ==== */

/* The input of one source for batch t: a receiver's blocks, a direct source's next batch,
 * or (replay != NULL) a direct source's batch read again from its definition. *def gets
 * the definition to checkpoint (caller frees). */
static sl_dataset *source_input(sl_instance *ins, int64_t t, const char *replay, char *desc,
                                size_t descsize, char **def)
{
    sl_dataset *ds = NULL;
    int rc;
    *def = NULL;
    if (ins->receiver) {
        if (replay) {
            return sl__dataset_new(0, t); /* blocks do not survive a restart */
        }
        rc = sl__receiver_take(ins, t, &ds);
        if (rc == SL_OK) {
            snprintf(desc, descsize, "%zu blocks", ds->nparts);
        }
    } else {
        sl_batch_input in = {.ds = sl__dataset_new(0, t)};
        if (!in.ds) {
            rc = SL_ERR_NOMEM;
        } else if (replay) {
            rc = ins->conn->replay ? ins->conn->replay(ins->cctx, t, replay, &in) : SL_ERR_STATE;
        } else {
            rc = ins->conn->next_batch(ins->cctx, t, &in);
        }
        if (rc == SL_OK) {
            ds = in.ds;
            sl__strlcpy(desc, in.desc, descsize);
            *def = in.definition;
        } else {
            sl__dataset_release(in.ds);
            free(in.definition);
        }
    }
    if (rc != SL_OK || !ds) {
        sl_instance_error(ins, "no input for batch %" PRId64 "%s: %s", t,
                          replay ? " (replayed)" : "", sl_err2str(rc));
        ds = sl__dataset_new(0, t);
    }
    return ds;
}

/* Generates batch t: fixes every source's input (or, with replay, reads again the inputs
 * recorded in the checkpoint) and, with a checkpoint, records the inputs before the batch
 * can run. */
static sl_job *generate_job(sl_context *ctx, int64_t t, const sl_ckpt_batch *replay)
{
    sl_job *job = calloc(1, sizeof(*job));
    if (!job) {
        return NULL;
    }
    job->inputs = calloc(ctx->nsources + 1, sizeof(*job->inputs));
    char **defs = calloc(ctx->nsources + 1, sizeof(*defs));
    if (!job->inputs || !defs) {
        free(job->inputs);
        free(job);
        free(defs);
        return NULL;
    }
    job->time = t;
    job->info.batch_time = t;
    job->info.scheduling_delay = -1;
    job->info.processing_time = -1;
    job->info.total_delay = -1;
    size_t i = 0;
    json_t *inputs = json_object();
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next, i++) {
        char desc[96] = "";
        const char *rdef = replay ? (replay->defs[i] ? replay->defs[i] : "") : NULL;
        sl_dataset *ds = source_input(ins, t, rdef, desc, sizeof(desc), &defs[i]);
        size_t n = ds ? sl_dataset_count(ds) : 0;
        if (!ins->receiver) {
            atomic_fetch_add(&ins->records, n);
            atomic_fetch_add(&ctx->records_received, n);
        }
        job->inputs[i] = ds;
        job->info.inputs[i].name = ins->name;
        job->info.inputs[i].rate = sl_instance_rate_limit(ins);
        sl__strlcpy(job->info.inputs[i].description, desc, sizeof(desc));
        job->info.inputs[i].records = n;
        job->info.records += n;
        json_t *def = defs[i] ? json_loads(defs[i], JSON_DECODE_ANY, NULL) : NULL;
        json_object_set_new(inputs, ins->name, def ? def : json_string(desc));
    }
    job->inputs_json = json_dumps(inputs, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(inputs);
    job->ninputs = i;
    job->info.ninputs = i;
    job->info.submission_time = sl__now_ms();
    if (ctx->ckpt && !replay) {
        sl__ckpt_generated(ctx->ckpt, t, (const char *const *)defs);
    }
    for (i = 0; i < ctx->nsources; i++) {
        free(defs[i]);
    }
    free(defs);
    return job;
}

static void job_free(sl_job *job)
{
    free(job->inputs_json);
    for (size_t i = 0; i < job->ninputs; i++) {
        sl__dataset_release(job->inputs[i]);
    }
    free(job->inputs);
    free(job);
}

static void cut_blocks(sl_context *ctx)
{
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
        if (ins->receiver) {
            sl__receiver_cut(ins);
        }
    }
}

static void *stop_thread_main(void *arg)
{
    sl_context *ctx = arg;
    pthread_mutex_lock(&ctx->lock);
    bool graceful = ctx->fatal_err == SL_OK; /* after a fatal error, nothing more to do */
    pthread_mutex_unlock(&ctx->lock);
    sl_context_stop(ctx, graceful);
    return NULL;
}

/* Waits on ctx->cond until the wall-clock time until_ms or a change of state. Batch times
 * are wall-clock times; the wait itself runs on the monotonic clock, so a clock step
 * shortens or lengthens one wait at most. @locks ctx->lock held */
static void wait_until(sl_context *ctx, int64_t until_ms)
{
    int64_t d = until_ms - sl__now_ms();
    if (d <= 0) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += d / 1000;
    ts.tv_nsec += (d % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&ctx->cond, &ctx->lock, &ts);
}

static void *timer_main(void *arg)
{
    sl_context *ctx = arg;
    int64_t next_batch = ctx->first_batch;
    int64_t next_block = sl__now_ms() + ctx->block_interval;
    pthread_mutex_lock(&ctx->lock);
    for (;;) {
        if (atomic_load(&ctx->stop_requested) && ctx->state == SL_CTX_RUNNING &&
            !ctx->stop_thread_started) {
            /* A signal asked to stop: stop from another thread, which joins this one. */
            ctx->stop_thread_started =
                pthread_create(&ctx->stop_thread, NULL, stop_thread_main, ctx) == 0;
        }
        if (ctx->state == SL_CTX_STOPPING && (!ctx->graceful || ctx->timer_running == false)) {
            break;
        }
        int64_t wake = SL_MIN(next_batch, next_block);
        if (atomic_load(&ctx->stop_requested) && !ctx->stop_thread_started) {
            wake = SL_MIN(wake, sl__now_ms() + 50);
        }
        wait_until(ctx, SL_MIN(wake, sl__now_ms() + 200));
        int64_t now = sl__now_ms();
        bool final = ctx->state == SL_CTX_STOPPING;
        if (ctx->state == SL_CTX_STOPPING && !ctx->graceful) {
            break;
        }
        if (now >= next_block) {
            pthread_mutex_unlock(&ctx->lock);
            cut_blocks(ctx);
            pthread_mutex_lock(&ctx->lock);
            next_block += ctx->block_interval * ((now - next_block) / ctx->block_interval + 1);
        }
        if (now < next_batch) {
            continue;
        }
        pthread_mutex_unlock(&ctx->lock);
        sl_job *job = generate_job(ctx, next_batch, NULL);
        pthread_mutex_lock(&ctx->lock);
        if (job) {
            if (ctx->queue_tail) {
                ctx->queue_tail->next = job;
            } else {
                ctx->queue_head = job;
            }
            ctx->queue_tail = job;
            ctx->queued++;
            pthread_cond_broadcast(&ctx->cond);
        } else {
            sl_log(SL_LOG_ERROR, "out of memory generating batch %" PRId64, next_batch);
        }
        next_batch += ctx->batch_interval;
        if (final) {
            /* Graceful stop: the sources had stopped before this batch took their last
             * data. It is the last one. */
            break;
        }
    }
    ctx->timer_running = false;
    pthread_cond_broadcast(&ctx->cond);
    pthread_mutex_unlock(&ctx->lock);
    return NULL;
}

/* ==== Running jobs (job thread) ==== */

static bool abandon(sl_context *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    bool a = ctx->state == SL_CTX_STOPPING && !ctx->graceful;
    pthread_mutex_unlock(&ctx->lock);
    return a;
}

/* Runs one output for the batch on its computed dataset ds (NULL: empty), retrying with
 * capped exponential backoff while it asks to be retried: a sink that is down holds the
 * batch, it never drops it. Returns SL_ERR_RETRY only when the context stops without
 * waiting. @locality the job thread (foreach outputs) or an output thread (sinks; see
 * run_outputs) */
static int run_output(sl_context *ctx, sl_output *o, sl_job *job, const sl_dataset *ds, char *err,
                      size_t errsize)
{
    int rc;
    sl_dataset empty = {.nparts = 0, .time = job->time};
    if (!ds) {
        ds = &empty;
    }
    int64_t backoff = RETRY_BACKOFF_MIN_MS;
    uint64_t rejected = 0;
    for (int attempt = 0;; attempt++) {
        if (o->sink) {
            sl_batch_output out = {
                .batch_time = job->time,
                .ds = ds,
                .pipeline = ctx->name,
                .sink = o->sink->name,
                .inputs = job->inputs_json ? job->inputs_json : "{}",
                .attempt = attempt,
                .window_ms = sl__stream_span(o->stream),
            };
            sl__rejects_begin(o->sink->rejects, &out);
            rc = o->sink->conn->write(o->sink->cctx, &out);
            /* Dead letters written; rejected: the records left out. */
            rc = sl__rejects_end(o->sink->rejects, &out, rc, &rejected);
        } else {
            rc = o->foreach (ds, job->time, o->opaque);
        }
        if (rc == SL_OK) {
            if (o->sink) {
                uint64_t n = sl_dataset_count(ds);
                atomic_fetch_add(&o->sink->records, n - SL_MIN(n, rejected));
                sl_instance_set_active(o->sink, true);
            }
            return SL_OK;
        }
        char why[256];
        sl__strlcpy(why, sl_err2str(rc), sizeof(why));
        if (o->sink) {
            pthread_mutex_lock(&o->sink->err_lock);
            if (o->sink->last_error[0]) {
                sl__strlcpy(why, o->sink->last_error, sizeof(why));
            }
            pthread_mutex_unlock(&o->sink->err_lock);
        }
        snprintf(err, errsize, "%.60s: %.190s", o->name, why);
        if (rc != SL_ERR_RETRY) {
            return rc;
        }
        if (o->sink) {
            sl_instance_set_active(o->sink, false);
        }
        if (attempt == 0 || attempt % 10 == 0) {
            sl_log(SL_LOG_WARN, "output '%s' failed for batch %" PRId64 ", retrying: %s", o->name,
                   job->time, err);
        }
        for (int64_t slept = 0; slept < backoff; slept += 50) {
            if (abandon(ctx)) {
                return SL_ERR_RETRY;
            }
            sl__sleep_ms(50);
        }
        backoff = SL_MIN(backoff * 2, RETRY_BACKOFF_MAX_MS);
    }
}

/* Publishes the running batch's progress for sl_context_pending_batches. */
static void publish_info(sl_context *ctx, sl_job *job, const sl_batch_info *info)
{
    pthread_mutex_lock(&ctx->lock);
    job->info = *info;
    pthread_mutex_unlock(&ctx->lock);
}

/* ==== A batch's outputs ====
 * Every output's dataset is computed first, in order, on the job thread: computing uses the
 * worker pool and touches the graph's caches and keyed state, which only the job thread
 * may. Then the sinks write concurrently, each on its own thread with its own retries, so
 * that a sink that is down holds the batch without holding up the other sinks; meanwhile
 * the foreach outputs (user callbacks, which need not be thread-safe) run one after the
 * other on the job thread, in the order they were added, as Spark runs a batch's output
 * operations. The batch is done when every output has returned. A batch with one lane of
 * work (one sink, or foreach outputs only) runs it on the job thread: no thread is made. */

typedef struct out_run {
    sl_context *ctx;
    sl_job *job;
    pthread_mutex_t lock; /* guards info and abandoned; taken before ctx->lock */
    sl_batch_info *info;
    bool abandoned; /* an output was retrying when the context stopped: the batch stays */
} out_run;

typedef struct out_slot {
    out_run *run;
    sl_output *o;
    sl_dataset *ds; /* borrowed from the stream's cache until sl__stream_forget */
    int rc;         /* computing's result */
    pthread_t thread;
    bool threaded;
} out_slot;

/* Accounts for an output that returned rc: progress, the batch's first error, a retry
 * abandoned by a stop, a fatal error that stops the context. @locality any output's thread */
static void output_done(out_run *run, sl_output *o, int rc, const char *err)
{
    sl_context *ctx = run->ctx;
    pthread_mutex_lock(&run->lock);
    sl_batch_info *info = run->info;
    if (rc == SL_OK) {
        info->outputs_succeeded++;
        publish_info(ctx, run->job, info);
        pthread_mutex_unlock(&run->lock);
        return;
    }
    if (!info->error[0]) {
        sl__strlcpy(info->error, err, sizeof(info->error));
        sl_log(SL_LOG_ERROR, "batch %" PRId64 ": %s", run->job->time, err);
    }
    /* RETRY here: the context stopped while the output retried. Any other error fails the
     * batch as Spark fails its job: the pipeline stops and the batch stays pending, to run
     * again after a restart (a rejected record under errors.tolerance none, a table that
     * does not fit, a sink's I/O error, a foreach callback's error), rather than being
     * recorded as done without this output. */
    run->abandoned = true;
    pthread_mutex_unlock(&run->lock);
    if (rc != SL_ERR_RETRY) {
        /* Unrecoverable: the context stops at once, and says why. */
        pthread_mutex_lock(&ctx->lock);
        if (!ctx->fatal_err) {
            ctx->fatal_err = rc;
        }
        pthread_mutex_unlock(&ctx->lock);
        atomic_store(&ctx->stop_requested, true);
        sl_log(SL_LOG_ERROR, "stopping: output '%s' failed and cannot recover", o->name);
    }
}

/* Writes one sink's output (with its retries) and accounts for it. @locality an output
 * thread, or the job thread for a batch's only sink */
static void *sink_main(void *arg)
{
    out_slot *s = arg;
    char err[256] = "";
    int rc = run_output(s->run->ctx, s->o, s->run->job, s->ds, err, sizeof(err));
    output_done(s->run, s->o, rc, err);
    return NULL;
}

/* Runs the foreach outputs among slots[0..n), in order. @locality the job thread */
static void run_foreach_outputs(out_slot *slots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!slots[i].o->sink && slots[i].rc == SL_OK) {
            char err[256] = "";
            int rc = run_output(slots[i].run->ctx, slots[i].o, slots[i].run->job, slots[i].ds, err,
                                sizeof(err));
            output_done(slots[i].run, slots[i].o, rc, err);
        }
    }
}

/* Runs every output of the job that has a dataset at its time: see the section comment.
 * Returns true when an output was abandoned by a stop (the batch stays pending).
 * @locality the job thread */
static bool run_outputs(sl_context *ctx, sl_job *job, sl_batch_info *info)
{
    out_slot *slots = calloc((size_t)ctx->noutputs + 1, sizeof(*slots));
    if (!slots) {
        sl__strlcpy(info->error, "out of memory running the outputs", sizeof(info->error));
        sl_log(SL_LOG_ERROR, "batch %" PRId64 ": %s", job->time, info->error);
        return true; /* the batch stays pending */
    }
    out_run run = {.ctx = ctx, .job = job, .info = info};
    pthread_mutex_init(&run.lock, NULL);
    size_t n = 0, nforeach = 0;
    for (sl_output *o = ctx->outputs; o; o = o->next) {
        if (sl__stream_valid_time(o->stream, job->time)) {
            slots[n++] = (out_slot){.run = &run, .o = o};
        }
    }
    info->outputs_total = (int)n;
    publish_info(ctx, job, info);
    /* Compute, in order, on this thread. */
    for (size_t i = 0; i < n; i++) {
        out_slot *s = &slots[i];
        s->rc = sl__stream_compute(s->o->stream, job->time, &s->ds);
        if (s->rc != SL_OK) {
            char err[256];
            snprintf(err, sizeof(err), "%s: computing '%s' failed: %s", s->o->name,
                     s->o->stream->name, sl_err2str(s->rc));
            output_done(&run, s->o, s->rc, err);
        } else if (!s->o->sink) {
            nforeach++;
        }
    }
    /* Write: every sink on a thread of its own, except one sink when there are no foreach
     * outputs for this thread to run. A sink that gets no thread is written here after. */
    out_slot *own = NULL;
    for (size_t i = 0; i < n; i++) {
        out_slot *s = &slots[i];
        if (!s->o->sink || s->rc != SL_OK) {
            continue;
        }
        if (!nforeach && !own) {
            own = s;
            continue;
        }
        s->threaded = pthread_create(&s->thread, NULL, sink_main, s) == 0;
        if (!s->threaded) {
            sl_log(SL_LOG_WARN, "batch %" PRId64 ": no thread for output '%s': it writes later",
                   job->time, s->o->name);
        }
    }
    if (own) {
        sink_main(own);
    } else {
        run_foreach_outputs(slots, n);
    }
    for (size_t i = 0; i < n; i++) {
        out_slot *s = &slots[i];
        if (s != own && s->o->sink && s->rc == SL_OK && !s->threaded) {
            sink_main(s);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (slots[i].threaded) {
            pthread_join(slots[i].thread, NULL);
            slots[i].threaded = false;
        }
    }
    pthread_mutex_destroy(&run.lock);
    free(slots);
    return run.abandoned;
}

/* Backpressure: every completed batch, failed outputs included, feeds each input's PID
 * estimator with that input's records and the batch's delays. */
static void feed_estimators(sl_context *ctx, const sl_batch_info *info)
{
    if (!ctx->backpressure.enabled) {
        return;
    }
    size_t i = 0;
    for (sl_instance *ins = ctx->sources; ins && i < info->ninputs; ins = ins->next, i++) {
        double rate;
        pthread_mutex_lock(&ins->pid_lock);
        bool got =
            sl__pid_compute(&ins->pid, info->processing_end, (int64_t)info->inputs[i].records,
                            info->processing_time, info->scheduling_delay, &rate);
        pthread_mutex_unlock(&ins->pid_lock);
        if (got) {
            atomic_store(&ins->estimated_rate, rate);
            sl_log(SL_LOG_DEBUG, "backpressure: '%s' rate %.1f records/s", ins->name, rate);
        }
    }
}

static void run_job(sl_context *ctx, sl_job *job)
{
    sl_batch_info local = job->info;
    sl_batch_info *info = &local;
    info->processing_start = sl__now_ms();
    info->scheduling_delay = info->processing_start - info->submission_time;
    publish_info(ctx, job, info);
    uint64_t failed_before = atomic_load(&ctx->records_failed);
    bool abandoned = false; /* stopped while an output was retrying: the batch stays pending */

    size_t i = 0;
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next, i++) {
        sl__stream_put(ins->stream, job->time, job->inputs[i]);
        job->inputs[i] = NULL;
    }
    if (job->state_only) {
        /* Completed before a restart, after the state snapshot: only its state counts. */
        int rc = sl__state_replay(ctx, job->time);
        if (rc != SL_OK) {
            sl_log(SL_LOG_ERROR, "rebuilding the state at batch %" PRId64 " failed: %s", job->time,
                   sl_err2str(rc));
        }
    }
    if (!job->state_only) {
        abandoned = run_outputs(ctx, job, info);
    }
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        sl__stream_forget(s, job->time);
    }
    info->failed_records = atomic_load(&ctx->records_failed) - failed_before;
    if (info->failed_records) {
        sl_log(SL_LOG_WARN,
               "batch %" PRId64 ": %" PRIu64 " records were rejected (by operators or sinks)",
               job->time, info->failed_records);
    }
    sl__state_account(ctx);
    if (!abandoned && info->outputs_succeeded == info->outputs_total) {
        /* A state-only re-run completed too (again): sources that track their batches
         * (Kafka direct, replayed ones included) must see it, or they take the gap for a
         * failure and read its input a third time. */
        for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
            if (ins->conn->on_batch_done) {
                ins->conn->on_batch_done(ins->cctx, job->time);
            }
        }
    }
    if (job->state_only) {
        return;
    }
    if (ctx->ckpt && !abandoned) {
        sl__state_checkpoint(ctx, job->time); /* recorded by the completion's write */
        sl__ckpt_completed(ctx->ckpt, job->time);
    }
    info->processing_end = sl__now_ms();
    info->processing_time = info->processing_end - info->processing_start;
    info->total_delay = info->processing_end - info->batch_time;
    publish_info(ctx, job, info);
    feed_estimators(ctx, info);
}

static void record_info(sl_context *ctx, const sl_batch_info *info)
{
    ctx->infos[ctx->info_next] = *info;
    ctx->info_next = (ctx->info_next + 1) % ctx->max_infos;
    if (ctx->ninfos < ctx->max_infos) {
        ctx->ninfos++;
    }
    ctx->last_sched_delay = info->scheduling_delay;
    ctx->last_proc_time = info->processing_time;
    ctx->last_total_delay = info->total_delay;
    atomic_fetch_add(&ctx->batches_completed, 1);
    atomic_fetch_add(&ctx->records_processed, info->records);
}

static void *job_main(void *arg)
{
    sl_context *ctx = arg;
    pthread_mutex_lock(&ctx->lock);
    for (;;) {
        while (!ctx->queue_head && ctx->timer_running &&
               !(ctx->state == SL_CTX_STOPPING && !ctx->graceful)) {
            pthread_cond_wait(&ctx->cond, &ctx->lock);
        }
        if (ctx->state == SL_CTX_STOPPING && !ctx->graceful) {
            break; /* queued batches are dropped: replayable inputs re-run them */
        }
        sl_job *job = ctx->queue_head;
        if (!job) {
            break; /* the timer has finished and everything is done */
        }
        ctx->queue_head = job->next;
        if (!ctx->queue_head) {
            ctx->queue_tail = NULL;
        }
        ctx->queued--;
        ctx->running = job;
        pthread_mutex_unlock(&ctx->lock);

        run_job(ctx, job);

        pthread_mutex_lock(&ctx->lock);
        ctx->running = NULL;
        if (!job->state_only) {
            record_info(ctx, &job->info);
        }
        sl_listener *listeners = job->state_only ? NULL : ctx->listeners;
        pthread_mutex_unlock(&ctx->lock);
        for (sl_listener *l = listeners; l; l = l->next) {
            l->fn(&job->info, l->opaque);
        }
        job_free(job);
        pthread_mutex_lock(&ctx->lock);
    }
    ctx->job_running = false;
    pthread_cond_broadcast(&ctx->cond);
    pthread_mutex_unlock(&ctx->lock);
    return NULL;
}

/* Sets up the estimators, and warns where nothing bounds the first batch: with
 * backpressure on, Spark's most reported pain is a huge first batch when neither an
 * initial rate nor a cap is given. */
static void backpressure_prepare(sl_context *ctx)
{
    const sl_backpressure_conf *bp = &ctx->backpressure;
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
        sl__pid_init(&ins->pid, ctx->batch_interval, bp->proportional, bp->integral, bp->derivative,
                     bp->min_rate);
        if (bp->enabled && bp->initial_rate <= 0 && ins->common.max_rate <= 0 && ins->receiver) {
            sl_log(SL_LOG_WARN,
                   "source '%s': backpressure is on but neither backpressure.initial_rate nor "
                   "max_rate bounds the first batch: it takes whatever arrived",
                   ins->name);
        }
    }
}

/* ==== Synchronous batches (tests) ==== */

static int checkpoint_open(sl_context *ctx);
static int restore_sources(sl_context *ctx);
static int recover(sl_context *ctx);

int sl__context_step(sl_context *ctx, int64_t t, sl_batch_info *info)
{
    pthread_mutex_lock(&ctx->lock);
    bool created = ctx->state == SL_CTX_CREATED;
    if (created && !ctx->stepping) {
        ctx->stepping = true;
        ctx->zero_time = t - ctx->batch_interval;
        ctx->start_time = ctx->zero_time;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (!created) {
        return SL_ERR_STATE;
    }
    if (!ctx->graph_prepared) {
        sl__graph_prepare(ctx);
        backpressure_prepare(ctx);
        ctx->graph_prepared = true;
    }
    if (ctx->checkpoint_dir && !ctx->ckpt) {
        /* With a checkpoint directory, stepping checkpoints and recovers too: the state and
         * the batches to run again are loaded, and those batches run first. */
        int rc = checkpoint_open(ctx);
        if (rc == SL_OK) {
            rc = restore_sources(ctx);
        }
        if (rc == SL_OK) {
            rc = recover(ctx);
        }
        while (rc == SL_OK && ctx->queue_head) {
            sl_job *j = ctx->queue_head;
            ctx->queue_head = j->next;
            ctx->queued--;
            run_job(ctx, j);
            if (!j->state_only) {
                pthread_mutex_lock(&ctx->lock);
                record_info(ctx, &j->info);
                pthread_mutex_unlock(&ctx->lock);
            }
            job_free(j);
        }
        ctx->queue_tail = NULL;
        if (rc != SL_OK) {
            return rc;
        }
    }
    cut_blocks(ctx);
    sl_job *job = generate_job(ctx, t, NULL);
    if (!job) {
        return SL_ERR_NOMEM;
    }
    run_job(ctx, job);
    pthread_mutex_lock(&ctx->lock);
    record_info(ctx, &job->info);
    pthread_mutex_unlock(&ctx->lock);
    if (info) {
        *info = job->info;
    }
    job_free(job);
    return SL_OK;
}

/* ==== Start and stop ==== */

static void stop_instances(sl_instance *list)
{
    for (sl_instance *ins = list; ins; ins = ins->next) {
        atomic_store(&ins->stopping, true);
        if (ins->role == SL_SOURCE) {
            sl__receiver_close(ins);
        }
        if (ins->started && ins->conn->stop) {
            ins->conn->stop(ins->cctx);
        }
        ins->started = false;
    }
}

/* Opens the checkpoint and loads it. A new checkpoint records the zero time. */
static int checkpoint_open(sl_context *ctx)
{
    char err[1536];
    char *graph = sl__graph_describe(ctx);
    const char **names = calloc(ctx->nsources + 1, sizeof(*names));
    if (!graph || !names) {
        free(graph);
        free(names);
        return SL_ERR_NOMEM;
    }
    size_t i = 0;
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
        names[i++] = ins->name;
    }
    ctx->ckpt = sl__ckpt_new(ctx->checkpoint_dir, graph, ctx->batch_interval, ctx->nsources, names,
                             err, sizeof(err));
    free(graph);
    free(names);
    if (!ctx->ckpt) {
        sl_log(SL_LOG_ERROR, "%s", err);
        return SL_ERR_IO;
    }
    bool found;
    if (sl__ckpt_load(ctx->ckpt, &found, err, sizeof(err)) != SL_OK) {
        sl_log(SL_LOG_ERROR, "%s", err);
        sl__ckpt_destroy(ctx->ckpt);
        ctx->ckpt = NULL;
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

/* After a restart: sources continue after their last generated batch, and the batches that
 * were generated but did not complete are queued again with the same inputs, ahead of new
 * ones. Batch times keep the old alignment; the times the process was down are not
 * generated (their data is in the next batch). @locality the starting thread */
static int recover(sl_context *ctx)
{
    sl_checkpoint *ck = ctx->ckpt;
    if (!ck) {
        return SL_OK;
    }
    char err[1536];
    if (ck->zero_time == 0) { /* a new checkpoint */
        ck->zero_time = ctx->zero_time;
        ck->keep_done = sl__state_interval(ctx) > 0;
        return sl__ckpt_write(ck) == SL_OK ? SL_OK : SL_ERR_IO;
    }
    ctx->zero_time = ck->zero_time;
    if (sl__state_restore(ctx, err, sizeof(err)) != SL_OK) {
        sl_log(SL_LOG_ERROR, "%s", err);
        return SL_ERR_INVAL;
    }
    int64_t now = sl__now_ms();
    int64_t k = (now - ctx->zero_time) / ctx->batch_interval + 1;
    ctx->first_batch = ctx->zero_time + k * ctx->batch_interval;
    if (ck->last_completed >= ctx->first_batch) {
        ctx->first_batch = ck->last_completed + ctx->batch_interval;
    }
    for (size_t j = 0; j < ck->npending; j++) {
        if (ck->pending[j].time >= ctx->first_batch) {
            ctx->first_batch = ck->pending[j].time + ctx->batch_interval;
        }
    }
    sl_log(SL_LOG_INFO,
           "recovering from the checkpoint in %s: last completed batch %" PRId64
           ", %zu to run again",
           ck->dir, ck->last_completed, ck->npending);
    /* Completed batches after the state snapshot run first, for their state only. */
    for (size_t j = 0; j < ck->ndone + ck->npending; j++) {
        bool done = j < ck->ndone;
        sl_ckpt_batch *b = done ? &ck->done[j] : &ck->pending[j - ck->ndone];
        sl_job *job = generate_job(ctx, b->time, b);
        if (!job) {
            return SL_ERR_NOMEM;
        }
        job->state_only = done;
        if (ctx->queue_tail) {
            ctx->queue_tail->next = job;
        } else {
            ctx->queue_head = job;
        }
        ctx->queue_tail = job;
        ctx->queued++;
    }
    return SL_OK;
}

/* Sources continue after the batch each generated last before the restart. */
static int restore_sources(sl_context *ctx)
{
    if (!ctx->ckpt || ctx->ckpt->zero_time == 0) {
        return SL_OK;
    }
    size_t i = 0;
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next, i++) {
        const char *def = ctx->ckpt->last_defs[i];
        if (def && ins->conn->restore) {
            int rc = ins->conn->restore(ins->cctx, def);
            if (rc != SL_OK) {
                sl_log(SL_LOG_ERROR, "source '%s' cannot continue from the checkpoint: %s",
                       ins->name, sl_err2str(rc));
                return rc;
            }
        }
    }
    return SL_OK;
}

int sl_context_start(sl_context *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    if (ctx->state != SL_CTX_CREATED) {
        pthread_mutex_unlock(&ctx->lock);
        return SL_ERR_STATE;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (!ctx->outputs) {
        sl_log(SL_LOG_ERROR, "no output operation: nothing would be computed");
        return SL_ERR_INVAL;
    }
    if (!ctx->graph_prepared) {
        sl__graph_prepare(ctx);
        ctx->graph_prepared = true;
    }
    if (!ctx->checkpoint_dir && sl__state_interval(ctx) > 0) {
        sl_log(SL_LOG_ERROR, "the pipeline keeps state across batches (stateful streams or "
                             "windows with an inverse function): it needs a checkpoint directory");
        return SL_ERR_INVAL;
    }
    backpressure_prepare(ctx);
    if (ctx->checkpoint_dir && !ctx->ckpt) {
        int rc = checkpoint_open(ctx);
        if (rc == SL_OK) {
            rc = restore_sources(ctx);
        }
        if (rc != SL_OK) {
            pthread_mutex_lock(&ctx->lock);
            ctx->state = SL_CTX_STOPPED;
            ctx->fatal_err = rc;
            pthread_mutex_unlock(&ctx->lock);
            return rc;
        }
    }
    sl_instance *lists[2] = {ctx->sinks, ctx->sources};
    for (int k = 0; k < 2; k++) {
        for (sl_instance *ins = lists[k]; ins; ins = ins->next) {
            int rc = ins->conn->start ? ins->conn->start(ins->cctx) : SL_OK;
            if (rc != SL_OK) {
                sl_log(SL_LOG_ERROR, "%s '%s' could not start: %s",
                       ins->role == SL_SOURCE ? "source" : "sink", ins->name,
                       ins->last_error[0] ? ins->last_error : sl_err2str(rc));
                stop_instances(ctx->sources);
                stop_instances(ctx->sinks);
                pthread_mutex_lock(&ctx->lock);
                ctx->state = SL_CTX_STOPPED;
                ctx->fatal_err = rc;
                pthread_mutex_unlock(&ctx->lock);
                return rc;
            }
            ins->started = true;
        }
    }
    pthread_mutex_lock(&ctx->lock);
    ctx->start_time = sl__now_ms();
    /* The first batch time is the next multiple of the interval, as in Spark. */
    ctx->zero_time = (ctx->start_time / ctx->batch_interval) * ctx->batch_interval;
    ctx->first_batch = ctx->zero_time + ctx->batch_interval;
    pthread_mutex_unlock(&ctx->lock);
    int crc = recover(ctx);
    if (crc != SL_OK) {
        stop_instances(ctx->sources);
        stop_instances(ctx->sinks);
        pthread_mutex_lock(&ctx->lock);
        ctx->state = SL_CTX_STOPPED;
        ctx->fatal_err = crc;
        pthread_mutex_unlock(&ctx->lock);
        return crc;
    }
    pthread_mutex_lock(&ctx->lock);
    ctx->state = SL_CTX_RUNNING;
    ctx->timer_running = true;
    ctx->job_running = true;
    if (pthread_create(&ctx->job_thread, NULL, job_main, ctx) != 0) {
        ctx->job_running = false;
    }
    if (pthread_create(&ctx->timer_thread, NULL, timer_main, ctx) != 0) {
        ctx->timer_running = false;
    }
    bool ok = ctx->job_running && ctx->timer_running;
    pthread_mutex_unlock(&ctx->lock);
    if (!ok) {
        sl_log(SL_LOG_ERROR, "cannot create the scheduler's threads");
        sl_context_stop(ctx, false);
        return SL_ERR_FATAL;
    }
    sl_log(SL_LOG_INFO,
           "'%s' started: batch interval %" PRId64 "ms, %d workers, %zu sources, "
           "%d outputs",
           ctx->name, ctx->batch_interval, ctx->workers, ctx->nsources, ctx->noutputs);
    return SL_OK;
}

void sl_context_stop(sl_context *ctx, bool graceful)
{
    pthread_mutex_lock(&ctx->lock);
    if (ctx->state != SL_CTX_RUNNING) {
        if (ctx->state == SL_CTX_CREATED) {
            ctx->state = SL_CTX_STOPPED;
            pthread_cond_broadcast(&ctx->cond);
        } else if (ctx->state == SL_CTX_STOPPING && !graceful) {
            ctx->graceful = false; /* a second, impatient stop */
            pthread_cond_broadcast(&ctx->cond);
        }
        pthread_mutex_unlock(&ctx->lock);
        return;
    }
    ctx->state = SL_CTX_STOPPING;
    ctx->graceful = graceful;
    pthread_mutex_unlock(&ctx->lock);
    sl_log(SL_LOG_INFO, "stopping%s", graceful ? " gracefully" : "");

    /* Sources first: what they hold goes into their blocks; the timer's last batch takes
     * it. */
    stop_instances(ctx->sources);
    pthread_mutex_lock(&ctx->lock);
    pthread_cond_broadcast(&ctx->cond);
    pthread_mutex_unlock(&ctx->lock);
    pthread_join(ctx->timer_thread, NULL);
    pthread_join(ctx->job_thread, NULL);
    sl__state_final_checkpoint(ctx);
    stop_instances(ctx->sinks);

    pthread_mutex_lock(&ctx->lock);
    for (sl_job *j = ctx->queue_head; j;) {
        sl_job *next = j->next;
        job_free(j);
        j = next;
    }
    ctx->queue_head = ctx->queue_tail = NULL;
    ctx->queued = 0;
    ctx->state = SL_CTX_STOPPED;
    pthread_cond_broadcast(&ctx->cond);
    pthread_mutex_unlock(&ctx->lock);
    sl_log(SL_LOG_INFO, "stopped after %" PRIu64 " batches", atomic_load(&ctx->batches_completed));
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
        uint64_t over = atomic_load(&ins->oversize);
        sl_log(over ? SL_LOG_WARN : SL_LOG_INFO,
               "source '%s': %" PRIu64 " records received, %" PRIu64
               " skipped for exceeding max_record_size (%" PRId64 " bytes)",
               ins->name, atomic_load(&ins->records), over, ins->common.max_record_size);
    }
}

void sl_context_request_stop(sl_context *ctx)
{
    atomic_store(&ctx->stop_requested, true);
}

int sl_context_await_termination_or_timeout(sl_context *ctx, int64_t timeout_ms)
{
    int64_t deadline = sl__now_ms() + timeout_ms;
    pthread_mutex_lock(&ctx->lock);
    while (ctx->state != SL_CTX_STOPPED) {
        if (timeout_ms >= 0 && sl__now_ms() >= deadline) {
            pthread_mutex_unlock(&ctx->lock);
            return SL_ERR_RETRY;
        }
        wait_until(ctx,
                   timeout_ms >= 0 ? SL_MIN(deadline, sl__now_ms() + 200) : sl__now_ms() + 200);
    }
    int rc = ctx->fatal_err;
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

int sl_context_await_termination(sl_context *ctx)
{
    return sl_context_await_termination_or_timeout(ctx, -1);
}

void sl_context_destroy(sl_context *ctx)
{
    if (!ctx) {
        return;
    }
    sl_context_stop(ctx, false);
    if (ctx->stop_thread_started) {
        pthread_join(ctx->stop_thread, NULL);
    }
    /* Datasets go before the instances whose receivers they give space back to. */
    for (sl_stream *s = ctx->streams; s;) {
        sl_stream *next = s->next;
        sl__stream_free(s);
        s = next;
    }
    sl_instance *lists[2] = {ctx->sources, ctx->sinks};
    for (int k = 0; k < 2; k++) {
        for (sl_instance *ins = lists[k]; ins;) {
            sl_instance *next = ins->next;
            sl__instance_destroy(ins);
            ins = next;
        }
    }
    for (sl_output *o = ctx->outputs; o;) {
        sl_output *next = o->next;
        free(o);
        o = next;
    }
    for (sl_listener *l = ctx->listeners; l;) {
        sl_listener *next = l->next;
        free(l);
        l = next;
    }
    sl__pool_destroy(ctx->pool);
    sl__ckpt_destroy(ctx->ckpt);
    sl__metrics_forget(ctx);
    pthread_mutex_destroy(&ctx->lock);
    pthread_cond_destroy(&ctx->cond);
    free(ctx->infos);
    free(ctx->name);
    free(ctx->checkpoint_dir);
    free(ctx);
}

/* ==== Batch information and statistics ==== */

size_t sl_context_recent_batches(sl_context *ctx, sl_batch_info *out, size_t max)
{
    pthread_mutex_lock(&ctx->lock);
    size_t n = SL_MIN(max, ctx->ninfos);
    for (size_t i = 0; i < n; i++) {
        size_t at = (ctx->info_next + ctx->max_infos - 1 - i) % ctx->max_infos;
        out[i] = ctx->infos[at];
    }
    pthread_mutex_unlock(&ctx->lock);
    return n;
}

void sl_context_get_stats(sl_context *ctx, sl_context_stats *st)
{
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&ctx->lock);
    st->start_time = ctx->start_time;
    st->batches_waiting = ctx->queued;
    st->last_scheduling_delay = ctx->last_sched_delay;
    st->last_processing_time = ctx->last_proc_time;
    st->last_total_delay = ctx->last_total_delay;
    pthread_mutex_unlock(&ctx->lock);
    st->batches_completed = atomic_load(&ctx->batches_completed);
    st->records_received = atomic_load(&ctx->records_received);
    st->records_processed = atomic_load(&ctx->records_processed);
    st->records_failed = atomic_load(&ctx->records_failed);
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
        st->records_oversize += atomic_load(&ins->oversize);
    }
    st->window_bytes = atomic_load(&ctx->window_bytes);
    st->window_keys = atomic_load(&ctx->window_keys);
    st->state_bytes = atomic_load(&ctx->state_bytes);
    st->state_keys = atomic_load(&ctx->state_keys);
}

size_t sl_context_pending_batches(sl_context *ctx, sl_batch_info *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&ctx->lock);
    if (ctx->running && n < max) {
        out[n++] = ctx->running->info;
    }
    for (sl_job *j = ctx->queue_head; j && n < max; j = j->next) {
        out[n++] = j->info;
    }
    pthread_mutex_unlock(&ctx->lock);
    return n;
}

size_t sl_context_instances(sl_context *ctx, sl_instance_info *out, size_t max)
{
    size_t n = 0;
    sl_instance *lists[2] = {ctx->sources, ctx->sinks};
    for (int k = 0; k < 2; k++) {
        for (sl_instance *ins = lists[k]; ins; ins = ins->next, n++) {
            if (n >= max) {
                continue;
            }
            sl_instance_info *i = &out[n];
            memset(i, 0, sizeof(*i));
            i->name = ins->name;
            i->type = ins->conn->name;
            i->role = ins->role;
            i->active = atomic_load(&ins->active);
            i->records = atomic_load(&ins->records);
            i->oversize = atomic_load(&ins->oversize);
            i->rejected = sl__rejects_total(ins->rejects);
            i->dead_letters = sl__rejects_dead_letters(ins->rejects);
            i->max_rate = ins->common.max_rate;
            i->rate_limit = sl_instance_rate_limit(ins);
            i->estimated_rate = atomic_load(&ins->estimated_rate);
            pthread_mutex_lock(&ins->pid_lock);
            i->pid_processing_rate = ins->pid.processing_rate;
            i->pid_error = ins->pid.error;
            i->pid_historical_error = ins->pid.historical_error;
            pthread_mutex_unlock(&ins->pid_lock);
            pthread_mutex_lock(&ins->err_lock);
            i->last_error_time = ins->last_error_time;
            sl__strlcpy(i->last_error, ins->last_error, sizeof(i->last_error));
            pthread_mutex_unlock(&ins->err_lock);
        }
    }
    return n;
}

sl_context *sl_context_get_or_create(const char *dir,
                                     sl_context *(*create)(const char *dir, void *opaque),
                                     void *opaque, char *errstr, size_t errsize)
{
    sl_context *ctx = create(dir, opaque);
    if (!ctx) {
        snprintf(errstr, errsize, "the creating function returned no context");
        return NULL;
    }
    if (!ctx->checkpoint_dir || strcmp(ctx->checkpoint_dir, dir) != 0) {
        snprintf(errstr, errsize, "the context was not created with checkpoint_dir %s", dir);
        sl_context_destroy(ctx);
        return NULL;
    }
    sl__graph_prepare(ctx);
    ctx->graph_prepared = true;
    if (checkpoint_open(ctx) != SL_OK) {
        snprintf(errstr, errsize, "cannot use the checkpoint in %s (see the log)", dir);
        sl_context_destroy(ctx);
        return NULL;
    }
    if (restore_sources(ctx) != SL_OK) {
        snprintf(errstr, errsize, "sources cannot continue from the checkpoint in %s", dir);
        sl_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

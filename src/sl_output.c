/* sl_output.c -- outputs: declaring them (sinks and foreach callbacks) and running a
 * batch's outputs (computing their datasets, the sinks' threads and retries, the foreach
 * callbacks, the running batch's published progress). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_deadletter.h"
#include "sl_engine.h"
#include "sl_registry.h"

#define RETRY_BACKOFF_MIN_MS 100
#define RETRY_BACKOFF_MAX_MS 5000

/* ==== Declaring outputs ==== */

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
    sl_instance *ins = sl__instance_add(ctx, conn, SL_SINK, name, opts, errstr, errsize);
    if (!ins) {
        return SL_ERR_INVAL;
    }
    bool changelog = false;
    const char *cl = opts ? sl_options_get(opts, "changelog") : NULL;
    int rc = cl ? sl__parse_bool(cl, &changelog) : SL_OK;
    if (rc == SL_OK && changelog) {
        rc = sl__changelog_attach(s, ins, errstr, errsize);
        if (rc != SL_OK) {
            sl__instance_destroy(ins);
            return rc;
        }
    }
    rc = add_output(s, ins, NULL, NULL, name);
    if (rc != SL_OK) {
        snprintf(errstr, errsize, "%s", sl_err2str(rc));
        if (changelog) {
            sl__changelog_free(s);
        }
        sl__instance_destroy(ins);
        return rc;
    }
    ctx->outputs_tail->changelog = changelog;
    sl__instance_append(&ctx->sinks, ins);
    return SL_OK;
}

/* ==== The sources an output reads ==== */

int sl__outputs_prepare(sl_context *ctx)
{
    size_t n = (size_t)ctx->nstreams + 1;
    sl_stream **stack = calloc(n, sizeof(*stack));
    sl_stream **byid = calloc(n, sizeof(*byid));
    unsigned char *seen = calloc(n, 1);
    int rc = stack && byid && seen ? SL_OK : SL_ERR_NOMEM;
    for (sl_stream *s = ctx->streams; s && rc == SL_OK; s = s->next) {
        if (s->id >= 0 && (size_t)s->id < n) {
            byid[s->id] = s;
        }
    }
    for (sl_output *o = ctx->outputs; o && rc == SL_OK; o = o->next) {
        free(o->reads);
        o->reads = NULL;
        o->nreads = 0;
        memset(seen, 0, n);
        size_t top = 0;
        stack[top++] = o->stream;
        while (top > 0 && rc == SL_OK) {
            sl_stream *s = stack[--top];
            if (s->id < 0 || (size_t)s->id >= n || seen[s->id]) {
                continue;
            }
            seen[s->id] = 1;
            if (s->kind == SL_OP_SOURCE && s->source) {
                sl_instance **r = realloc(o->reads, (o->nreads + 1) * sizeof(*r));
                if (!r) {
                    rc = SL_ERR_NOMEM;
                    break;
                }
                o->reads = r;
                o->reads[o->nreads++] = s->source;
            }
            for (int i = 0; i < s->nparents; i++) {
                stack[top++] = s->parents[i];
            }
        }
    }
    free(stack);
    free(byid);
    free(seen);
    return rc;
}

bool sl__output_reads(const sl_output *o, const char *source)
{
    for (size_t i = 0; i < o->nreads; i++) {
        if (strcmp(o->reads[i]->name, source) == 0) {
            return true;
        }
    }
    return false;
}

bool sl__sink_reads(const sl_instance *sink, const sl_instance *src)
{
    for (const sl_output *o = sink->ctx->outputs; o; o = o->next) {
        if (o->sink == sink && sl__output_reads(o, src->name)) {
            return true;
        }
    }
    return false;
}

void sl__output_acc_clear(sl_output *o)
{
    sl__input_ranges_free(o->acc, o->nacc);
    o->acc = NULL;
    o->nacc = 0;
}

/* True when o's stream has a dataset less often than every batch. */
static bool slides_slower(const sl_output *o, const sl_context *ctx)
{
    return o->stream->slide > ctx->batch_interval;
}

/* Merges the ranges of job that o reads into o->acc: a range that continues a partition's
 * extends it; one that does not (its source resumed elsewhere) replaces it. */
static int acc_merge(sl_output *o, const sl_job *job)
{
    for (size_t i = 0; i < job->nranges; i++) {
        const sl_input_range *r = &job->ranges[i];
        if (!sl__output_reads(o, r->source)) {
            continue;
        }
        sl_input_range *e = NULL;
        for (size_t k = 0; k < o->nacc && !e; k++) {
            sl_input_range *a = &o->acc[k];
            if (a->partition == r->partition && strcmp(a->source, r->source) == 0 &&
                strcmp(a->topic, r->topic) == 0) {
                e = a;
            }
        }
        if (e) {
            e->from = r->from == e->until ? e->from : r->from;
            e->until = r->until;
            continue;
        }
        sl_input_range *grown = realloc(o->acc, (o->nacc + 1) * sizeof(*grown));
        char *topic = strdup(r->topic);
        if (!grown || !topic) {
            free(topic);
            if (grown) {
                o->acc = grown;
            }
            return SL_ERR_NOMEM;
        }
        o->acc = grown;
        o->acc[o->nacc++] = (sl_input_range){.source = r->source,
                                             .topic = topic,
                                             .partition = r->partition,
                                             .from = r->from,
                                             .until = r->until};
    }
    return SL_OK;
}

/* The ranges of the job that o reads: job's own array when it reads them all, else a copy
 * of those it reads in *own (freed by the caller); for a stream that slides slower than
 * the batches, those of every batch since its last dataset (o->acc). */
static const sl_input_range *output_ranges(const sl_context *ctx, const sl_output *o,
                                           const sl_job *job, sl_input_range **own, size_t *n)
{
    *own = NULL;
    *n = 0;
    if (slides_slower(o, ctx)) {
        *n = o->nacc;
        return o->acc;
    }
    size_t keep = 0;
    for (size_t i = 0; i < job->nranges; i++) {
        keep += sl__output_reads(o, job->ranges[i].source);
    }
    if (keep == job->nranges) {
        *n = job->nranges;
        return job->ranges;
    }
    if (keep == 0 || !(*own = calloc(keep, sizeof(**own)))) {
        return NULL;
    }
    for (size_t i = 0; i < job->nranges; i++) {
        if (sl__output_reads(o, job->ranges[i].source)) {
            (*own)[(*n)++] = job->ranges[i];
        }
    }
    return *own;
}

int sl__simple_sink(sl_stream *s, const sl_connector *conn, const char *prefix, const char *k1,
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
    int rc = sl_stream_to_connector(s, conn, name, o, errstr, sizeof(errstr));
    sl_options_destroy(o);
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "%s", errstr);
    }
    return rc;
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

/* ==== One output, with its retries ==== */

/* Runs one output for the batch on its computed dataset ds (NULL: empty), retrying with
 * capped exponential backoff while it asks to be retried: a sink that is down holds the
 * batch, it never drops it. Returns SL_ERR_RETRY only when the context stops without
 * waiting. @locality the job thread (foreach outputs) or an output thread (sinks; see
 * sl__outputs_run) */
static int run_output_retrying(sl_context *ctx, sl_output *o, sl_job *job, const sl_dataset *ds,
                               const sl_input_range *ranges, size_t nranges, char *err,
                               size_t errsize)
{
    int rc;
    sl_dataset empty = {.nparts = 0, .time = job->time};
    if (!ds) {
        ds = &empty;
    }
    int64_t backoff = RETRY_BACKOFF_MIN_MS;
    uint64_t rejected = 0;
    int64_t ewin = sl__stream_event_window(o->stream);
    for (int attempt = 0;; attempt++) {
        char why[256] = "";
        if (o->sink) {
            sl_batch_output out = {
                .batch_time = job->time,
                .ds = ds,
                .pipeline = ctx->name,
                .sink = o->sink->name,
                .inputs = job->inputs_json ? job->inputs_json : "{}",
                .attempt = attempt,
                .window_ms = ewin ? ewin : sl__stream_span(o->stream),
                .record_windows = ewin > 0,
                .ranges = ranges,
                .nranges = nranges,
            };
            /* The sink's errors, and those of its dead letters, land in why. */
            sl__instance_capture_begin(o->sink, why, sizeof(why));
            sl__rejects_begin(o->sink->rejects, &out);
            rc = o->sink->conn->write(o->sink->cctx, &out, why, sizeof(why));
            /* Dead letters written; rejected: the records left out. */
            rc = sl__rejects_end(o->sink->rejects, &out, rc, &rejected);
            sl__instance_capture_end();
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
        snprintf(err, errsize, "%.60s: %.190s", o->name, why[0] ? why : sl_err2str(rc));
        if (rc != SL_ERR_RETRY) {
            return rc;
        }
        if (o->sink) {
            sl_instance_set_active(o->sink, false);
            int64_t zero = 0; /* the first failed attempt of this batch: /ready says so */
            atomic_compare_exchange_strong(&o->sink->retrying_since, &zero, sl__now_ms());
        }
        if (attempt == 0 || attempt % 10 == 0) {
            sl_log(SL_LOG_WARN, "output '%s' failed for batch %" PRId64 ", retrying: %s", o->name,
                   job->time, err);
        }
        for (int64_t slept = 0; slept < backoff; slept += 50) {
            if (sl__context_abandoning(ctx)) {
                return SL_ERR_RETRY;
            }
            sl__sleep_ms(50);
        }
        backoff = SL_MIN(backoff * 2, RETRY_BACKOFF_MAX_MS);
    }
}

/* run_output_retrying, with the sink's retrying_since cleared once it returns. */
static int run_output(sl_context *ctx, sl_output *o, sl_job *job, const sl_dataset *ds, char *err,
                      size_t errsize)
{
    sl_input_range *own;
    size_t nranges;
    const sl_input_range *ranges = output_ranges(ctx, o, job, &own, &nranges);
    sl_input_range *trimmed = nranges ? malloc(nranges * sizeof(*trimmed)) : NULL;
    if (trimmed) {
        memcpy(trimmed, ranges, nranges * sizeof(*trimmed));
        sl__changelog_trim(o, trimmed, nranges);
        ranges = trimmed;
    }
    int rc = run_output_retrying(ctx, o, job, ds, ranges, nranges, err, errsize);
    free(trimmed);
    free(own);
    if (slides_slower(o, ctx)) {
        sl__output_acc_clear(o); /* written, fenced or abandoned: the next slide starts anew */
    }
    if (o->sink) {
        atomic_store(&o->sink->retrying_since, 0);
    }
    return rc;
}

void sl__job_publish(sl_context *ctx, sl_job *job, const sl_batch_info *info)
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
    bool failed;    /* an output did not succeed (abandoned, fenced, failed) */
} out_run;

typedef struct out_slot {
    out_run *run;
    sl_output *o;
    sl_dataset *ds;  /* borrowed from the stream's cache until sl__stream_forget */
    sl_dataset *own; /* a changelog's changes: a reference of its own */
    int rc;          /* computing's result */
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
        sl__job_publish(ctx, run->job, info);
        pthread_mutex_unlock(&run->lock);
        return;
    }
    run->failed = true;
    o->failed = true;
    if (!info->error[0]) {
        sl__strlcpy(info->error, err, sizeof(info->error));
        sl_log(rc == SL_ERR_FENCED ? SL_LOG_WARN : SL_LOG_ERROR, "batch %" PRId64 ": %s",
               run->job->time, err);
    }
    if (rc == SL_ERR_FENCED) {
        /* The sink holds this input elsewhere: the batch is done as it is (never run again:
         * not pending), and its sources, told it failed, resume where the sinks are. */
        pthread_mutex_unlock(&run->lock);
        return;
    }
    /* RETRY here: the context stopped while the output retried. Any other error fails the
     * batch as Spark fails its job: the pipeline stops and the batch stays pending, to run
     * again after a restart (a rejected record under errors.tolerance none, a table that
     * does not fit, a sink's I/O error, a foreach callback's error), rather than being
     * recorded as done without this output. */
    run->abandoned = true;
    pthread_mutex_unlock(&run->lock);
    if (rc != SL_ERR_RETRY) {
        /* Unrecoverable: the context stops at once, and says why. Once fatal_err is set the
         * job thread takes no further batch and the timer generates none; the broadcast
         * wakes the timer to start the stop now rather than at its next batch time. */
        pthread_mutex_lock(&ctx->lock);
        if (!ctx->fatal_err) {
            ctx->fatal_err = rc;
        }
        atomic_store(&ctx->stop_requested, true);
        pthread_cond_broadcast(&ctx->cond);
        pthread_mutex_unlock(&ctx->lock);
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

bool sl__outputs_run(sl_context *ctx, sl_job *job, sl_batch_info *info)
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
        o->failed = false;
        if (slides_slower(o, ctx) && acc_merge(o, job) != SL_OK) {
            sl__strlcpy(info->error, "out of memory merging input ranges", sizeof(info->error));
            run.abandoned = true;
        }
    }
    for (sl_output *o = ctx->outputs; o; o = o->next) {
        if (sl__stream_valid_time(o->stream, job->time)) {
            slots[n++] = (out_slot){.run = &run, .o = o};
        }
    }
    info->outputs_total = (int)n;
    sl__job_publish(ctx, job, info);
    /* Compute, in order, on this thread. */
    for (size_t i = 0; i < n; i++) {
        out_slot *s = &slots[i];
        s->rc = sl__stream_compute(s->o->stream, job->time, &s->ds);
        if (s->rc == SL_OK && s->o->changelog) {
            s->ds = s->own = sl__changelog_take(s->o->sink->changelog, job->time);
        }
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
        if (!s->o->sink || s->rc != SL_OK || s->o->changelog) {
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
        if (s != own && s->o->sink && s->rc == SL_OK && !s->threaded && !s->o->changelog) {
            sink_main(s);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (slots[i].threaded) {
            pthread_join(slots[i].thread, NULL);
            slots[i].threaded = false;
        }
    }
    /* Changelogs last, once every other output committed: the state they record is never
     * ahead of what the sinks hold (a crash in between replays the difference). */
    for (size_t i = 0; i < n; i++) {
        out_slot *s = &slots[i];
        if (s->o->changelog && s->rc == SL_OK) {
            if (!run.failed) {
                sink_main(s);
            } else {
                s->o->failed = true; /* not written: another output did not commit */
            }
        }
        sl__dataset_release(s->own);
    }
    pthread_mutex_destroy(&run.lock);
    free(slots);
    return run.abandoned;
}

sl_record_when sl_batch_output_when(const sl_batch_output *out, const sl_record *r)
{
    int64_t end = out->record_windows ? r->ts : out->batch_time;
    int64_t len = out->record_windows && r->meta && r->meta->window_ms > 0 ? r->meta->window_ms
                                                                           : out->window_ms;
    return (sl_record_when){out->batch_time, end - len, end};
}

/* sl_context.c -- the context's life cycle (new, start, stop, await, destroy) and its
 * statistics. Connector instances are in sl_instance.c, the timer and job threads in
 * sl_scheduler.c, a batch's outputs in sl_output.c, checkpoint recovery in sl_recovery.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sl_deadletter.h"
#include "sl_engine.h"
#include "sl_metrics.h"

#define SL_STOP_TIMEOUT_MS 90000 /* a graceful stop's bound: systemd's DefaultTimeoutStopSec */

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
    if (conf->block_interval_ms < 0 || conf->default_partitions < 0 || conf->stop_timeout_ms < 0) {
        snprintf(errstr, errsize,
                 "block interval, partitions and stop timeout must not be negative");
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
    ctx->window_offset = conf->window_offset_ms;
    ctx->block_interval = conf->block_interval_ms ? conf->block_interval_ms : 200;
    ctx->block_interval = SL_MIN(ctx->block_interval, ctx->batch_interval);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ctx->workers = conf->workers ? conf->workers : (int)(cores > 0 ? cores : 1);
    ctx->default_partitions = conf->default_partitions ? conf->default_partitions : ctx->workers;
    ctx->max_infos = conf->max_batches_kept ? conf->max_batches_kept : 1000;
    ctx->stop_timeout = conf->stop_timeout_ms ? conf->stop_timeout_ms : SL_STOP_TIMEOUT_MS;
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

/* ==== Internals shared with the scheduler, the outputs and the reporting modules ==== */

void sl__context_wait_until(sl_context *ctx, int64_t until_ms)
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

bool sl__context_abandoning(sl_context *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    bool a = ctx->state == SL_CTX_STOPPING && !ctx->graceful;
    pthread_mutex_unlock(&ctx->lock);
    return a;
}

const char *sl__context_state_name(sl_context *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    sl_ctx_state s = ctx->state;
    pthread_mutex_unlock(&ctx->lock);
    switch (s) {
    case SL_CTX_CREATED: return "created";
    case SL_CTX_RUNNING: return "running";
    case SL_CTX_STOPPING: return "stopping";
    default: return "stopped";
    }
}

bool sl__context_source_is_receiver(sl_context *ctx, const char *name)
{
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
        if (ins->name == name) {
            return ins->receiver;
        }
    }
    return false;
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

int64_t sl__graph_alignment(const sl_context *ctx)
{
    int64_t lcm = ctx->batch_interval;
    for (const sl_stream *s = ctx->streams; s; s = s->next) {
        int64_t a = lcm, b = s->slide > 0 ? s->slide : ctx->batch_interval;
        while (b) {
            int64_t r = a % b;
            a = b;
            b = r;
        }
        lcm = lcm / a * (s->slide > 0 ? s->slide : ctx->batch_interval);
        if (lcm > 86400000) {
            return ctx->batch_interval;
        }
    }
    return lcm;
}

int64_t sl__context_zero_time(const sl_context *ctx, int64_t now)
{
    int64_t align = sl__graph_alignment(ctx);
    int64_t off = (ctx->window_offset % align + align) % align;
    int64_t k = (now - off) / align - ((now - off) % align < 0);
    return k * align + off;
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
    sl__backpressure_prepare(ctx);
    if (ctx->checkpoint_dir && !ctx->ckpt) {
        int rc = sl__checkpoint_open(ctx);
        if (rc == SL_OK) {
            rc = sl__restore_sources(ctx);
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
            char why[256] = "";
            sl__instance_capture_begin(ins, why, sizeof(why));
            int rc = ins->conn->start ? ins->conn->start(ins->cctx, why, sizeof(why)) : SL_OK;
            sl__instance_capture_end();
            if (rc != SL_OK) {
                sl_log(SL_LOG_ERROR, "%s '%s' could not start: %s",
                       ins->role == SL_SOURCE ? "source" : "sink", ins->name,
                       why[0] ? why : sl_err2str(rc));
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
    /* The first batch time is the next multiple of the interval, as in Spark. Times count
     * from a multiple of every stream's slide, so that windows end at the same times on
     * every instance of a pipeline (a consumer group), whenever each started. */
    ctx->zero_time = sl__context_zero_time(ctx, ctx->start_time);
    ctx->first_batch =
        ctx->zero_time +
        ((ctx->start_time - ctx->zero_time) / ctx->batch_interval + 1) * ctx->batch_interval;
    pthread_mutex_unlock(&ctx->lock);
    int crc = sl__recover(ctx);
    if (crc != SL_OK) {
        stop_instances(ctx->sources);
        stop_instances(ctx->sinks);
        pthread_mutex_lock(&ctx->lock);
        ctx->state = SL_CTX_STOPPED;
        ctx->fatal_err = crc;
        pthread_mutex_unlock(&ctx->lock);
        return crc;
    }
    if (!sl__scheduler_start(ctx)) {
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

/* Appends the times of the running and queued batches to buf ("1000, 1100"). Returns how
 * many there are. @locks ctx->lock held */
static size_t unfinished_batches(sl_context *ctx, char *buf, size_t size)
{
    size_t n = 0, len = 0;
    buf[0] = '\0';
    sl_job *running = ctx->running;
    for (sl_job *j = running ? running : ctx->queue_head; j;
         j = j == running ? ctx->queue_head : j->next) {
        if (len + 32 < size) {
            len += (size_t)snprintf(buf + len, size - len, "%s%" PRId64, n ? ", " : "", j->time);
        } else if (len + 4 < size && buf[len - 1] != '.') {
            len += (size_t)snprintf(buf + len, size - len, "...");
        }
        n++;
    }
    return n;
}

/* A graceful stop's bound: waits until the timer and the job thread are done (the last
 * batch generated, every queued batch run) or stop_timeout has passed; then the stop turns
 * impatient: retrying outputs give up, queued batches are dropped, and the context's error
 * is SL_ERR_TIMEOUT. The batches left stay pending in the checkpoint. @locality the
 * stopping thread @locks takes ctx->lock */
static void await_batches_or_abandon(sl_context *ctx)
{
    int64_t deadline = sl__now_ms() + ctx->stop_timeout;
    pthread_mutex_lock(&ctx->lock);
    while ((ctx->timer_running || ctx->job_running) && ctx->graceful && sl__now_ms() < deadline) {
        sl__context_wait_until(ctx, SL_MIN(deadline, sl__now_ms() + 200));
    }
    if ((ctx->timer_running || ctx->job_running) && ctx->graceful) {
        char times[256];
        size_t n = unfinished_batches(ctx, times, sizeof(times));
        ctx->graceful = false;
        if (ctx->fatal_err == SL_OK) {
            ctx->fatal_err = SL_ERR_TIMEOUT;
        }
        pthread_cond_broadcast(&ctx->cond);
        pthread_mutex_unlock(&ctx->lock);
        if (n == 0) {
            sl_log(SL_LOG_ERROR, "stop: not done after the stop timeout (%" PRId64 "ms)",
                   ctx->stop_timeout);
        } else if (ctx->ckpt) {
            sl_log(SL_LOG_ERROR,
                   "stop: not done after the stop timeout (%" PRId64 "ms): abandoning %zu "
                   "batch%s (%s); %s pending in the checkpoint and run%s again after a restart",
                   ctx->stop_timeout, n, n == 1 ? "" : "es", times,
                   n == 1 ? "it stays" : "they stay", n == 1 ? "s" : "");
        } else {
            sl_log(SL_LOG_ERROR,
                   "stop: not done after the stop timeout (%" PRId64 "ms): abandoning %zu "
                   "batch%s (%s); without a checkpoint directory, only sources that can replay "
                   "(Kafka) read %s input again after a restart",
                   ctx->stop_timeout, n, n == 1 ? "" : "es", times, n == 1 ? "its" : "their");
        }
        return;
    }
    pthread_mutex_unlock(&ctx->lock);
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
    if (graceful) {
        await_batches_or_abandon(ctx);
    }
    pthread_join(ctx->timer_thread, NULL);
    pthread_join(ctx->job_thread, NULL);
    sl__state_final_checkpoint(ctx);
    stop_instances(ctx->sinks);

    pthread_mutex_lock(&ctx->lock);
    for (sl_instance *ins = ctx->sinks; ins; ins = ins->next) {
        if (atomic_load(&ins->failed_at_stop) && ctx->fatal_err == SL_OK) {
            ctx->fatal_err = SL_ERR_IO; /* data lost: the exit status says so */
        }
    }
    for (sl_job *j = ctx->queue_head; j;) {
        sl_job *next = j->next;
        sl__job_free(j);
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
        sl__context_wait_until(ctx, timeout_ms >= 0 ? SL_MIN(deadline, sl__now_ms() + 200)
                                                    : sl__now_ms() + 200);
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
    /* A source closing below may still say it lost partitions: no stream holds state. */
    ctx->streams = ctx->streams_tail = NULL;
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
        free(o->reads);
        sl__output_acc_clear(o);
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
    st->records_late = atomic_load(&ctx->records_late);
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
        st->records_oversize += atomic_load(&ins->oversize);
    }
    st->window_bytes = atomic_load(&ctx->window_bytes);
    st->window_keys = atomic_load(&ctx->window_keys);
    st->state_bytes = atomic_load(&ctx->state_bytes);
    st->state_keys = atomic_load(&ctx->state_keys);
    st->restored_records = atomic_load(&ctx->restored_records);
    st->restored_bytes = atomic_load(&ctx->restored_bytes);
    st->restore_ms = atomic_load(&ctx->restore_ms);
    st->restoring = atomic_load(&ctx->restoring);
    st->restored_tasks = atomic_load(&ctx->restored_tasks);
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

size_t sl_context_event_times(sl_context *ctx, sl_event_time_info *out, size_t max)
{
    size_t n = 0;
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        if (!s->event_time) {
            continue;
        }
        if (n < max) {
            out[n] = (sl_event_time_info){.stream = s->name,
                                          .watermark = atomic_load(&s->watermark),
                                          .stream_time = atomic_load(&s->stream_time),
                                          .late_records = atomic_load(&s->late)};
        }
        n++;
    }
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
            i->retrying_since = atomic_load(&ins->retrying_since);
            i->records = atomic_load(&ins->records);
            i->oversize = atomic_load(&ins->oversize);
            i->rejected = sl__rejects_total(ins->rejects);
            i->dead_letters = sl__rejects_dead_letters(ins->rejects);
            i->max_rate = ins->common.max_rate;
            i->rate_limit = sl_instance_rate_limit(ins);
            i->estimated_rate = atomic_load(&ins->estimated_rate);
            i->waiting = atomic_load(&ins->waiting);
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

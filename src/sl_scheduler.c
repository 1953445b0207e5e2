/* sl_scheduler.c -- the scheduler: the timer thread cuts receiver blocks every block
 * interval and, at every batch time, generates a job: each source's input for the interval
 * is fixed (receiver blocks or a direct source's next_batch) and the job is queued. The job
 * thread runs one job at a time (Spark's concurrentJobs = 1), so a slow batch shows up as
 * scheduling delay of the next; the worker pool runs each job's parallel stages and the
 * sinks write on threads of their own (sl_output.c). sl__context_step runs a batch
 * synchronously, for tests. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "sl_engine.h"

/* ==== Job generation (timer thread) ==== */

/* Appends a source's ranges to the job's, named for the source (topics copied). */
static int job_add_ranges(sl_job *job, sl_instance *ins, sl_batch_input *in)
{
    sl_input_range *r = realloc(job->ranges, (job->nranges + in->nranges) * sizeof(*r));
    if (!r) {
        return SL_ERR_NOMEM;
    }
    job->ranges = r;
    for (size_t i = 0; i < in->nranges; i++) {
        r[job->nranges] = in->ranges[i];
        r[job->nranges].source = ins->name;
        r[job->nranges].topic = strdup(in->ranges[i].topic);
        if (!r[job->nranges].topic) {
            return SL_ERR_NOMEM;
        }
        job->nranges++;
    }
    return SL_OK;
}

/* The input of one source for batch t: a receiver's blocks, a direct source's next batch,
 * or (replay != NULL) a direct source's batch read again from its definition. *def gets
 * the definition to checkpoint (caller frees). */
static sl_dataset *source_input(sl_instance *ins, int64_t t, const char *replay, char *desc,
                                size_t descsize, char **def, sl_job *job)
{
    sl_dataset *ds = NULL;
    int rc;
    *def = NULL;
    if (ins->receiver) {
        if (replay) {
            /* Blocks do not survive a restart; with a write-ahead log, the batch's records
             * are read back from it. */
            rc = sl__receiver_replay(ins, t, replay, &ds);
            if (rc == SL_OK) {
                snprintf(desc, descsize, "%zu records from the write-ahead log",
                         sl_dataset_count(ds));
            }
        } else {
            rc = sl__receiver_take(ins, t, &ds, def);
            if (rc == SL_OK) {
                snprintf(desc, descsize, "%zu blocks", ds->nparts);
            }
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
        if (rc == SL_OK && in.nranges) {
            rc = job_add_ranges(job, ins, &in);
        }
        if (rc == SL_OK) {
            ds = in.ds;
            sl__strlcpy(desc, in.desc, descsize);
            *def = in.definition;
        } else {
            sl__dataset_release(in.ds);
            free(in.definition);
        }
        sl__input_ranges_free(in.ranges, in.nranges);
    }
    if (rc != SL_OK || !ds) {
        sl_instance_error(ins, "no input for batch %" PRId64 "%s: %s", t,
                          replay ? " (replayed)" : "", sl_err2str(rc));
        ds = sl__dataset_new(0, t);
    }
    return ds;
}

sl_job *sl__job_generate(sl_context *ctx, int64_t t, const sl_ckpt_batch *replay)
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
    atomic_store(&ctx->gen_time, t); /* restores and drops asked now apply from t */
    job->info.batch_time = t;
    job->info.scheduling_delay = -1;
    job->info.processing_time = -1;
    job->info.total_delay = -1;
    size_t i = 0;
    json_t *inputs = json_object();
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next, i++) {
        char desc[96] = "";
        const char *rdef = replay ? (replay->defs[i] ? replay->defs[i] : "") : NULL;
        sl_dataset *ds = source_input(ins, t, rdef, desc, sizeof(desc), &defs[i], job);
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
    atomic_store(&ctx->gen_time, t + ctx->batch_interval); /* between batches: the next */
    return job;
}

void sl__job_free(sl_job *job)
{
    free(job->inputs_json);
    sl__input_ranges_free(job->ranges, job->nranges);
    for (size_t i = 0; i < job->ninputs; i++) {
        sl__dataset_release(job->inputs[i]);
    }
    free(job->inputs);
    free(job);
}

void sl__job_enqueue(sl_context *ctx, sl_job *job)
{
    if (ctx->queue_tail) {
        ctx->queue_tail->next = job;
    } else {
        ctx->queue_head = job;
    }
    ctx->queue_tail = job;
    ctx->queued++;
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
        sl__context_wait_until(ctx, SL_MIN(wake, sl__now_ms() + 200));
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
        /* A graceful stop does not wait for the next batch time: the sources have stopped,
         * so the last batch (at that time, to keep batch times aligned) takes what they
         * hold now, and the stop takes about a second, not up to a batch interval. */
        if (now < next_batch && !final) {
            continue;
        }
        if (ctx->fatal_err != SL_OK) {
            /* An output failed and the context is stopping: no batch after the failed one
             * (its input stays at the source). */
            if (final) {
                break;
            }
            next_batch += ctx->batch_interval;
            continue;
        }
        pthread_mutex_unlock(&ctx->lock);
        sl_job *job = sl__job_generate(ctx, next_batch, NULL);
        pthread_mutex_lock(&ctx->lock);
        if (job) {
            sl__job_enqueue(ctx, job);
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
    sl__job_publish(ctx, job, info);
    uint64_t failed_before = atomic_load(&ctx->records_failed);
    bool abandoned = false; /* stopped while an output was retrying: the batch stays pending */
    ctx->computing = job;

    size_t i = 0;
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next, i++) {
        sl__stream_put(ins->stream, job->time, job->inputs[i]);
        job->inputs[i] = NULL;
    }
    /* Keyed state with a changelog: restores and drops asked up to this batch, and the
     * tasks whose input in it the restored state holds, before anything is computed. */
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        if (s->chg && sl__changelog_apply(s, job->time) != SL_OK) {
            sl_log(SL_LOG_ERROR, "batch %" PRId64 ": the state of '%s' cannot be restored",
                   job->time, s->name);
        }
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
        abandoned = sl__outputs_run(ctx, job, info);
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
    } else if (!job->state_only && info->outputs_succeeded < info->outputs_total) {
        /* An output failed or was abandoned by a stop: sources that can read or push the
         * batch's input again do. When outputs were only fenced (the batch is not pending),
         * only the sources they read are told: the others' sinks committed the batch. */
        for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
            bool hit = abandoned;
            for (sl_output *o = ctx->outputs; o && !hit; o = o->next) {
                hit = o->failed && sl__output_reads(o, ins->name);
            }
            if (hit && ins->conn->on_batch_failed) {
                ins->conn->on_batch_failed(ins->cctx, job->time);
            } else if (!hit && ins->conn->on_batch_done) {
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
    /* A graceful stop runs its last batch before its time: no negative delay. */
    info->total_delay = SL_MAX(0, info->processing_end - info->batch_time);
    sl__job_publish(ctx, job, info);
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
        while (!ctx->queue_head && ctx->timer_running && ctx->fatal_err == SL_OK &&
               !(ctx->state == SL_CTX_STOPPING && !ctx->graceful)) {
            pthread_cond_wait(&ctx->cond, &ctx->lock);
        }
        if ((ctx->state == SL_CTX_STOPPING && !ctx->graceful) || ctx->fatal_err != SL_OK) {
            /* Queued batches are dropped: replayable inputs re-run them. After an output's
             * fatal error they are dropped at once, before the stop (which the timer starts
             * from another thread) takes effect: no batch's outputs run after the failed
             * one, as no job runs after a failed one in Spark. */
            break;
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
        if (!job->state_only) {
            sl__batch_log_add(ctx, &job->info);
        }
        for (sl_listener *l = listeners; l; l = l->next) {
            l->fn(&job->info, l->opaque);
        }
        sl__job_free(job);
        pthread_mutex_lock(&ctx->lock);
    }
    pthread_mutex_unlock(&ctx->lock);
    sl__batch_log_flush(ctx);
    pthread_mutex_lock(&ctx->lock);
    ctx->job_running = false;
    pthread_cond_broadcast(&ctx->cond);
    pthread_mutex_unlock(&ctx->lock);
    return NULL;
}

bool sl__scheduler_start(sl_context *ctx)
{
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
    return ok;
}

void sl__backpressure_prepare(sl_context *ctx)
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
        sl__backpressure_prepare(ctx);
        ctx->graph_prepared = true;
    }
    if (ctx->checkpoint_dir && !ctx->ckpt) {
        /* With a checkpoint directory, stepping checkpoints and recovers too: the state and
         * the batches to run again are loaded, and those batches run first. */
        int rc = sl__checkpoint_open(ctx);
        if (rc == SL_OK) {
            rc = sl__restore_sources(ctx);
        }
        if (rc == SL_OK) {
            rc = sl__recover(ctx);
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
            sl__job_free(j);
        }
        ctx->queue_tail = NULL;
        if (rc != SL_OK) {
            return rc;
        }
    }
    cut_blocks(ctx);
    sl_job *job = sl__job_generate(ctx, t, NULL);
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
    sl__job_free(job);
    return SL_OK;
}

/* sl_recovery.c -- checkpoints of the scheduler: opening the checkpoint, sources that
 * continue after their last generated batch, and the batches queued again after a
 * restart. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sl_engine.h"

int sl__checkpoint_open(sl_context *ctx)
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
int sl__recover(sl_context *ctx)
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
    if (sl__changelog_any(ctx) && ck->ndone + ck->npending > 0) {
        /* Keyed state with a changelog is restored per partition when the sources take
         * their partitions, and they resume where the sinks are: batches of the checkpoint
         * run again would meet state that is not restored yet. */
        sl_log(SL_LOG_INFO,
               "%zu batches of the checkpoint are not run again: the pipeline has a changelog, "
               "its sources resume where the sinks are, else after the last completed batch",
               ck->npending);
        return sl__ckpt_drop_pending(ck) == SL_OK ? SL_OK : SL_ERR_IO;
    }
    /* Completed batches after the state snapshot run first, for their state only. */
    for (size_t j = 0; j < ck->ndone + ck->npending; j++) {
        bool done = j < ck->ndone;
        sl_ckpt_batch *b = done ? &ck->done[j] : &ck->pending[j - ck->ndone];
        sl_job *job = sl__job_generate(ctx, b->time, b);
        if (!job) {
            return SL_ERR_NOMEM;
        }
        job->state_only = done;
        sl__job_enqueue(ctx, job);
    }
    return SL_OK;
}

/* Sources continue after the batch each generated last before the restart: those batches
 * run again (sl__recover). In a pipeline with a changelog they do not (the state comes from
 * the changelog as the partitions are taken), so the sources continue after the last batch
 * completed: where the generated ones started, for the partitions no sink holds. (Continuing
 * after the generated ones lost their input.) */
int sl__restore_sources(sl_context *ctx)
{
    if (!ctx->ckpt || ctx->ckpt->zero_time == 0) {
        return SL_OK;
    }
    char **defs = sl__changelog_any(ctx) ? ctx->ckpt->completed_defs : ctx->ckpt->last_defs;
    size_t i = 0;
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next, i++) {
        const char *def = defs[i];
        if (def && ins->receiver) {
            sl__receiver_restore(ins, def);
        }
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
    if (sl__checkpoint_open(ctx) != SL_OK) {
        snprintf(errstr, errsize, "cannot use the checkpoint in %s (see the log)", dir);
        sl_context_destroy(ctx);
        return NULL;
    }
    if (sl__restore_sources(ctx) != SL_OK) {
        snprintf(errstr, errsize, "sources cannot continue from the checkpoint in %s", dir);
        sl_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

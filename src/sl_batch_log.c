/* sl_batch_log.c -- the per-batch info line: what an operator of a pipeline without a
 * console sink (SL_CONSOLE: stdout) sees of its batches (records in and out, processing
 * time, delays), at most one line every SL_BATCH_LOG_MS, summing up the batches since the
 * previous one; and the delay histograms of /metrics, fed from the same place. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sl_engine.h"

#define SL_BATCH_LOG_MS 10000

void sl__batch_log_prepare(sl_context *ctx)
{
    bool printed = false;
    for (sl_instance *ins = ctx->sinks; ins; ins = ins->next) {
        printed = printed || (ins->conn->flags & SL_CONSOLE);
    }
    memset(&ctx->summary, 0, sizeof(ctx->summary));
    ctx->summary.enabled = !printed;
}

static uint64_t sink_records(sl_context *ctx)
{
    uint64_t n = 0;
    for (sl_instance *ins = ctx->sinks; ins; ins = ins->next) {
        n += atomic_load(&ins->records);
    }
    return n;
}

void sl__batch_log_flush(sl_context *ctx)
{
    sl_batch_summary *m = &ctx->summary;
    if (!m->enabled || m->batches == 0) {
        return;
    }
    uint64_t written = sink_records(ctx);
    uint64_t out = written - SL_MIN(written, m->sink_records);
    int64_t avg = m->proc_sum / (int64_t)m->batches;
    char span[64], fields[512];
    if (m->batches == 1) {
        snprintf(span, sizeof(span), "batch %" PRId64, m->first);
    } else {
        snprintf(span, sizeof(span), "%" PRIu64 " batches %" PRId64 "..%" PRId64, m->batches,
                 m->first, m->last);
    }
    snprintf(fields, sizeof(fields),
             "{\"batches\":%" PRIu64 ",\"first_batch_time\":%" PRId64
             ",\"last_batch_time\":%" PRId64 ",\"records_in\":%" PRIu64 ",\"records_out\":%" PRIu64
             ",\"processing_ms_avg\":%" PRId64 ",\"processing_ms_max\":%" PRId64
             ",\"scheduling_delay_ms_max\":%" PRId64 ",\"total_delay_ms_max\":%" PRId64 "}",
             m->batches, m->first, m->last, m->records_in, out, avg, m->proc_max, m->sched_max,
             m->total_max);
    sl__log_fields(SL_LOG_INFO, fields,
                   "%s: %" PRIu64 " records in, %" PRIu64 " out; processing %" PRId64
                   " ms (max %" PRId64 " ms), scheduling delay max %" PRId64
                   " ms, total delay max %" PRId64 " ms",
                   span, m->records_in, out, avg, m->proc_max, m->sched_max, m->total_max);
    m->sink_records = written;
    m->batches = 0;
    m->records_in = 0;
    m->proc_sum = m->proc_max = m->sched_max = m->total_max = 0;
}

void sl__batch_log_add(sl_context *ctx, const sl_batch_info *info)
{
    sl__hist_observe(&ctx->hist_processing, info->processing_time);
    sl__hist_observe(&ctx->hist_scheduling, info->scheduling_delay);
    sl__hist_observe(&ctx->hist_total, info->total_delay);
    sl_batch_summary *m = &ctx->summary;
    if (!m->enabled) {
        return;
    }
    if (m->batches == 0) {
        m->first = info->batch_time;
    }
    m->last = info->batch_time;
    m->batches++;
    m->records_in += info->records;
    m->proc_sum += info->processing_time;
    m->proc_max = SL_MAX(m->proc_max, info->processing_time);
    m->sched_max = SL_MAX(m->sched_max, info->scheduling_delay);
    m->total_max = SL_MAX(m->total_max, info->total_delay);
    int64_t now = sl__mono_ms();
    if (m->logged_at == 0 || now - m->logged_at >= SL_BATCH_LOG_MS) {
        m->logged_at = now;
        sl__batch_log_flush(ctx);
    }
}

/* sl_metrics_engine.c -- the /metrics families read from the engine's own counters (part of
 * the exposition of sl_metrics.c): histograms of the batches' processing time, scheduling
 * delay and total delay; per operator (label operator=, a stream node that computed a
 * dataset: a named stream, or an op of it that is not fused into the next) the records it
 * produced and its time; per sink (label sink=) the time spent writing and the writes. */
#include <stdio.h>
#include <string.h>

#include "sl_engine.h"
#include "sl_metrics.h"

static void labelled(sl_buf *b, const char *name, const char *label, const char *value, double v)
{
    char esc[512];
    sl_metrics_escape_label(value, esc, sizeof(esc));
    sl__buf_printf(b, "%s{%s=\"%s\"} %.9g\n", name, label, esc, v);
}

static void operators(sl_context *ctx, sl_buf *b)
{
    static const struct {
        const char *name, *help;
    } fams[] = {
        {"sluice_operator_records_total",
         "Records produced by the operator (its computed datasets, every batch)."},
        {"sluice_operator_seconds_total",
         "Time spent computing the operator's datasets, with the fused operators before it and "
         "without the operators it reads from."},
        {"sluice_operator_batches_total",
         "Datasets the operator computed (one per batch or slide)."},
    };
    for (size_t f = 0; f < SL_ARRAY_LEN(fams); f++) {
        bool any = false;
        for (sl_stream *s = ctx->streams; s; s = s->next) {
            uint64_t n = atomic_load(&s->computes);
            if (s->kind == SL_OP_SOURCE || n == 0) {
                continue;
            }
            if (!any) {
                sl__buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n", fams[f].name, fams[f].help,
                               fams[f].name);
                any = true;
            }
            double v = f == 0   ? (double)atomic_load(&s->computed_records)
                       : f == 1 ? (double)atomic_load(&s->compute_us) / 1e6
                                : (double)n;
            labelled(b, fams[f].name, "operator", s->name, v);
        }
    }
}

static void sinks(sl_context *ctx, sl_buf *b)
{
    if (!ctx->sinks) {
        return;
    }
    sl__buf_printf(b, "# HELP sluice_sink_seconds_total Time the sink spent writing batches, "
                      "retries included.\n# TYPE sluice_sink_seconds_total counter\n");
    for (sl_instance *ins = ctx->sinks; ins; ins = ins->next) {
        labelled(b, "sluice_sink_seconds_total", "sink", ins->name,
                 (double)atomic_load(&ins->write_us) / 1e6);
    }
    sl__buf_printf(b, "# HELP sluice_sink_writes_total Batches written by the sink, each "
                      "attempt counted.\n# TYPE sluice_sink_writes_total counter\n");
    for (sl_instance *ins = ctx->sinks; ins; ins = ins->next) {
        labelled(b, "sluice_sink_writes_total", "sink", ins->name,
                 (double)atomic_load(&ins->writes));
    }
}

void sl__metrics_render_engine(sl_context *ctx, sl_buf *b)
{
    sl__hist_render(b, "sluice_batch_processing_seconds",
                    "Processing time of completed batches (processing end - start).",
                    &ctx->hist_processing);
    sl__hist_render(b, "sluice_batch_scheduling_delay_seconds",
                    "Scheduling delay of completed batches (processing start - submission).",
                    &ctx->hist_scheduling);
    sl__hist_render(b, "sluice_batch_total_delay_seconds",
                    "Total delay of completed batches (processing end - batch time).",
                    &ctx->hist_total);
    operators(ctx, b);
    sinks(ctx, b);
}

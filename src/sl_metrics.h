/* sl_metrics.h -- the Prometheus text exposition (format 0.0.4) of a context: built-in
 * metrics from the engine's statistics and the gauges published with sl_metrics_gauge_set
 * (declared in sluice.h), written into an sl_buf. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "sl_util.h"
#include "sluice.h"

/* At most this many gauge series per context, and these lengths. */
#define SL_METRICS_MAX_SERIES 1024
#define SL_METRICS_MAX_NAME   128
#define SL_METRICS_MAX_LABELS 512
#define SL_METRICS_MAX_HELP   256

/* ==== Exposition ==== */

/* What the engine's lock guards, read at once: statistics, whether a batch runs, the state.
 * The HTTP server reuses one for a few ms so that clients cannot keep the lock busy. */
typedef struct sl_metrics_snapshot {
    sl_context_stats stats;
    bool batch_running;
    const char *state; /* "created", "running", "stopping" or "stopped" */
} sl_metrics_snapshot;

/* Takes a snapshot (locks the context briefly). @locality any thread. */
void sl__metrics_snapshot(sl_context *ctx, sl_metrics_snapshot *snap);

/* Appends every metric of ctx in the text format to b: HELP and TYPE lines, the "sluice_"
 * prefix, "_total" on counters, label values escaped. snap: a recent snapshot, or NULL to
 * take one. Secrets never appear: only names, counts, times and states are exported.
 * @locality any thread. */
void sl__metrics_render(sl_context *ctx, const sl_metrics_snapshot *snap, sl_buf *b);

/* Appends the histograms of batch delays and the per-operator and per-sink counters
 * (sl_metrics_engine.c). @locality any thread */
void sl__metrics_render_engine(sl_context *ctx, sl_buf *b);

/* Forgets the gauges published for ctx. sl_context_destroy should call it (a context
 * created later at the same address would otherwise inherit them). */
void sl__metrics_forget(sl_context *ctx);

/* Number of gauge series held for ctx (for tests). */
size_t sl__metrics_gauge_count(sl_context *ctx);

/* True when s is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*). */
bool sl__metrics_valid_name(const char *s);
/* True when s is a valid preformatted label set (`a="x",b="y\"z"`); "" is valid. */
bool sl__metrics_valid_labels(const char *s);

#endif /* SL_METRICS_H */

/* sl_hist.h -- fixed-bucket histograms of durations, updated lock-free, read by /metrics as
 * Prometheus histograms (cumulative buckets, _sum and _count). */
#ifndef SL_HIST_H
#define SL_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#include "sl_util.h"

/* Upper bounds in seconds of the buckets before +Inf (sl_hist.c: sl__hist_bounds). */
#define SL_HIST_BUCKETS 14

typedef struct sl_hist {
    _Atomic uint64_t buckets[SL_HIST_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
} sl_hist;

/* Adds one observation of ms milliseconds (negative: counted as 0). @locality any thread */
void sl__hist_observe(sl_hist *h, int64_t ms);
/* The bucket bounds, seconds, SL_HIST_BUCKETS of them, increasing. */
const double *sl__hist_bounds(void);
/* Appends the family name to b: HELP, TYPE histogram, name_bucket{le=...} (cumulative),
 * name_sum (seconds) and name_count. */
void sl__hist_render(sl_buf *b, const char *name, const char *help, const sl_hist *h);

#endif /* SL_HIST_H */

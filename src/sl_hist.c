/* sl_hist.c -- fixed-bucket histograms of durations for /metrics (sl_hist.h). */
#include <stdio.h>

#include "sl_hist.h"

/* Seconds: from a 10 ms batch's work to minutes of delay. */
static const double bounds[SL_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                               1,     2.5,  5,     10,   30,  60,   300};

const double *sl__hist_bounds(void)
{
    return bounds;
}

void sl__hist_observe(sl_hist *h, int64_t ms)
{
    if (ms < 0) {
        ms = 0;
    }
    double s = (double)ms / 1000.0;
    size_t i = 0;
    while (i < SL_HIST_BUCKETS && s > bounds[i]) {
        i++;
    }
    atomic_fetch_add(&h->buckets[i], 1);
    atomic_fetch_add(&h->sum_us, (uint64_t)ms * 1000);
    atomic_fetch_add(&h->count, 1);
}

void sl__hist_render(sl_buf *b, const char *name, const char *help, const sl_hist *h)
{
    /* Read the buckets first and derive the count from them, so that a scrape during an
     * update is consistent (+Inf equals _count). */
    uint64_t n[SL_HIST_BUCKETS + 1], cum = 0;
    for (size_t i = 0; i <= SL_HIST_BUCKETS; i++) {
        n[i] = atomic_load(&h->buckets[i]);
    }
    uint64_t sum_us = atomic_load(&h->sum_us);
    sl__buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < SL_HIST_BUCKETS; i++) {
        cum += n[i];
        sl__buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += n[SL_HIST_BUCKETS];
    sl__buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    sl__buf_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, (double)sum_us / 1e6, name,
                   (unsigned long long)cum);
}

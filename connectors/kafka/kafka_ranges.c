/* kafka_ranges.c -- the offset ranges of a direct Kafka batch: see kafka_ranges.h. */
#include <math.h>

#include "kafka_ranges.h"

/* Messages from a rate over a batch, floored, without overflowing int64. */
static int64_t messages_for(double limit, double batch_s, int64_t floor_msgs)
{
    double m = floor(batch_s * limit);
    int64_t msgs = m >= 9.0e18 ? INT64_MAX / 2 : (int64_t)m;
    return msgs > floor_msgs ? msgs : floor_msgs;
}

void sl__kafka_compute_until(size_t n, const int64_t *from, const int64_t *latest,
                             const sl_kafka_limits *lim, int64_t *until)
{
    double total_lag = 0;
    for (size_t i = 0; i < n; i++) {
        if (latest[i] > from[i]) {
            total_lag += (double)(latest[i] - from[i]);
        }
    }
    double cap = lim->max_rate_per_partition > 0 ? lim->max_rate_per_partition : 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double lag = latest[i] > from[i] ? (double)(latest[i] - from[i]) : 0;
        double limit;
        if (lim->rate > 0) {
            limit = total_lag > 0 ? lag / total_lag * lim->rate : 0;
            if (cap > 0 && limit > cap) {
                limit = cap;
            }
        } else {
            limit = cap;
        }
        sum += limit;
    }
    double batch_s = (double)lim->batch_ms / 1000.0;
    int64_t floor_msgs = lim->min_rate_per_partition > 0 ? lim->min_rate_per_partition : 0;
    for (size_t i = 0; i < n; i++) {
        if (latest[i] <= from[i]) {
            until[i] = from[i];
            continue;
        }
        if (sum <= 0) {
            until[i] = latest[i];
            continue;
        }
        int64_t lag = latest[i] - from[i];
        double limit;
        if (lim->rate > 0) {
            limit = (double)lag / total_lag * lim->rate;
            if (cap > 0 && limit > cap) {
                limit = cap;
            }
        } else {
            limit = cap;
        }
        int64_t msgs = messages_for(limit, batch_s, floor_msgs);
        until[i] = msgs >= lag ? latest[i] : from[i] + msgs;
    }
}

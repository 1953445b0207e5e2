/* kafka_ranges.h -- the offset ranges of a direct Kafka batch (SEMANTICS.md, "Direct Kafka
 * input"): a pure function over arrays, so that it can be tested with hand-computed cases.
 * No librdkafka here. */
#ifndef SL_KAFKA_RANGES_H
#define SL_KAFKA_RANGES_H

#include <stddef.h>
#include <stdint.h>

/* The limits that bound a batch. */
typedef struct sl_kafka_limits {
    int64_t batch_ms;               /* the batch interval */
    double max_rate_per_partition;  /* messages/s per partition; 0 = no cap */
    int64_t min_rate_per_partition; /* floor of messages per partition and batch when capped */
    double rate;                    /* the rate R of the whole input (backpressure or initial
                                     * rate), messages/s; 0 = none */
} sl_kafka_limits;

/* Computes until[i] for n partitions from their current offsets from[i] and latest offsets
 * latest[i]:
 *
 *   lag(p) = max(latest - from, 0)
 *   R > 0:  limit(p) = lag(p) / total_lag * R, capped by max_rate_per_partition when set
 *   else:   limit(p) = max_rate_per_partition (0 when not set)
 *   sum of limits > 0:  messages(p) = max(floor(batch_s * limit(p)), min_rate_per_partition)
 *                       until(p) = min(from(p) + messages(p), latest(p))
 *   otherwise:          until(p) = latest(p)
 *
 * until is never below from (a latest below from gives an empty range). Pure: no locks, no
 * allocation; any thread. */
void sl__kafka_compute_until(size_t n, const int64_t *from, const int64_t *latest,
                             const sl_kafka_limits *lim, int64_t *until);

#endif /* SL_KAFKA_RANGES_H */

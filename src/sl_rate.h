/* sl_rate.h -- the PID rate estimator of Spark Streaming's backpressure
 * (PIDRateEstimator): from each completed batch's size and delays, the rate in records/s
 * at which an input can be ingested so that batches keep up. */
#ifndef SL_RATE_H
#define SL_RATE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_pid {
    int64_t batch_interval; /* ms */
    double proportional, integral, derivative, min_rate;
    bool first_run;
    int64_t last_time; /* ms; processing end of the last batch that counted */
    double last_rate;
    double last_error;
    /* The last computation's terms, for the status. */
    double processing_rate, error, historical_error;
} sl_pid;

/* Spark's defaults: proportional 1.0, integral 0.2, derivative 0.0, min_rate 100. */
void sl__pid_init(sl_pid *p, int64_t batch_interval, double proportional, double integral,
                  double derivative, double min_rate);

/* Feeds one completed batch of this input: time = processing end (ms), n = its records,
 * processing_delay and scheduling_delay in ms. Returns true with *rate set when there is a
 * new rate; false for the first valid batch (which only sets the starting point) and for
 * batches that cannot count (time not after the last one, no records, no processing
 * time). */
bool sl__pid_compute(sl_pid *p, int64_t time, int64_t n, int64_t processing_delay,
                     int64_t scheduling_delay, double *rate);

#endif

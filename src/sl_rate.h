/* sl_rate.h -- rates of Spark Streaming's backpressure: the PID rate estimator
 * (PIDRateEstimator), from each completed batch's size and delays the rate in records/s at
 * which an input can be ingested so that batches keep up; and the token bucket that holds a
 * receiver to a rate (Spark's receiver RateLimiter). */
#ifndef SL_RATE_H
#define SL_RATE_H

#include <stdbool.h>
#include <stddef.h>
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

/* ==== Token bucket ==== */

/* Time a waiting receiver lets pass before it takes records again: at most this much of
 * the rate goes in at once, so the records of a batch interval follow the rate closely. */
#define SL_RATE_QUANTUM_NS 1000000 /* 1 ms */

/* Takes up to want records at now_ns from the bucket *next_ns (the time the next record
 * may go; 0 for a new bucket) at rate records/s (> 0). Record i of a run may go at
 * *next_ns + i / rate; credit not used is kept for at most burst_ns (at least a quantum,
 * so that a waiter finds the records it waited for). Like Spark's receivers, which take
 * one permit per record from Guava's RateLimiter, records are paid for when they go, never
 * ahead: a new rate applies to the next record. Returns how many may go now (0..want) and
 * moves *next_ns past them. When it returns 0, *wait_ns is the time until a quantum
 * (SL_RATE_QUANTUM_NS of the rate, at least one record, at most want) may go. Pure: the
 * caller holds the bucket's lock. */
size_t sl__rate_take(int64_t *next_ns, double rate, int64_t burst_ns, int64_t now_ns, size_t want,
                     int64_t *wait_ns);

/* The clock of the receivers' rate limit (CLOCK_MONOTONIC, ns) and its sleep. Unit tests
 * replace them to run the limit on a simulated clock; nothing else writes them. */
extern int64_t (*sl__rate_now_ns)(void);
extern void (*sl__rate_sleep_ns)(int64_t ns);

#endif

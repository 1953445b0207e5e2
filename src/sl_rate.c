/* sl_rate.c -- the PID rate estimator and the receivers' token bucket (see sl_rate.h and
 * SEMANTICS.md). */
#include "sl_rate.h"

#include <errno.h>
#include <math.h>
#include <time.h>

#include "sl_util.h"

void sl__pid_init(sl_pid *p, int64_t batch_interval, double proportional, double integral,
                  double derivative, double min_rate)
{
    *p = (sl_pid){
        .batch_interval = batch_interval,
        .proportional = proportional,
        .integral = integral,
        .derivative = derivative,
        .min_rate = min_rate,
        .first_run = true,
        .last_time = -1,
        .last_rate = -1,
    };
}

bool sl__pid_compute(sl_pid *p, int64_t time, int64_t n, int64_t processing_delay,
                     int64_t scheduling_delay, double *rate)
{
    if (!(time > p->last_time && n > 0 && processing_delay > 0)) {
        return false;
    }
    double dt = (double)(time - p->last_time) / 1000.0;
    double processing_rate = (double)n / (double)processing_delay * 1000.0;
    double error = p->last_rate - processing_rate;
    double historical_error =
        (double)scheduling_delay * processing_rate / (double)p->batch_interval;
    double d_error = (error - p->last_error) / dt;
    double new_rate = p->last_rate - p->proportional * error - p->integral * historical_error -
                      p->derivative * d_error;
    if (new_rate < p->min_rate) {
        new_rate = p->min_rate;
    }
    p->last_time = time;
    p->processing_rate = processing_rate;
    if (p->first_run) {
        p->last_rate = processing_rate;
        p->last_error = 0;
        p->first_run = false;
        p->error = 0;
        p->historical_error = 0;
        return false;
    }
    p->last_rate = new_rate;
    p->last_error = error;
    p->error = error;
    p->historical_error = historical_error;
    *rate = new_rate;
    return true;
}

/* ==== Token bucket ==== */

size_t sl__rate_take(int64_t *next_ns, double rate, int64_t burst_ns, int64_t now_ns, size_t want,
                     int64_t *wait_ns)
{
    double per = 1e9 / rate; /* ns per record */
    int64_t keep = burst_ns > SL_RATE_QUANTUM_NS ? burst_ns : SL_RATE_QUANTUM_NS;
    if (*next_ns < now_ns - keep) {
        *next_ns = now_ns - keep;
    }
    if (want == 0) {
        return 0;
    }
    if (now_ns >= *next_ns) {
        double avail = floor((double)(now_ns - *next_ns) / per) + 1;
        size_t k = avail < (double)want ? (size_t)avail : want;
        *next_ns += (int64_t)llround((double)k * per);
        return k;
    }
    double quantum = floor((double)SL_RATE_QUANTUM_NS / per);
    size_t q = quantum < 1 ? 1 : quantum < (double)want ? (size_t)quantum : want;
    *wait_ns = *next_ns + (int64_t)ceil((double)(q - 1) * per) - now_ns;
    return 0;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (ns > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int64_t (*sl__rate_now_ns)(void) = sl__mono_ns;
void (*sl__rate_sleep_ns)(int64_t ns) = sleep_ns;

/* sl_rate.c -- the PID rate estimator (see sl_rate.h and SEMANTICS.md). */
#include "sl_rate.h"

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

/* sl_yamlops_burn.c -- the burn op (test only): a known CPU cost per record. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_util.h"
#include "sl_yamlops_int.h"

sl_yamlop *sl__yamlops_burn_new(int64_t per_record_us, const sl_yamlops_burn_step *schedule,
                                size_t nsteps, char *errstr, size_t errsize)
{
    if (per_record_us < 0 || per_record_us > SL_YAMLOPS_BURN_MAX_US) {
        sl__yamlops_err(errstr, errsize,
                        "per_record must be between 0us and 10s, got %" PRId64 "us", per_record_us);
        return NULL;
    }
    if (nsteps > SL_YAMLOPS_BURN_MAX_STEPS || (nsteps > 0 && !schedule)) {
        sl__yamlops_err(errstr, errsize, "a schedule has at most %d steps",
                        SL_YAMLOPS_BURN_MAX_STEPS);
        return NULL;
    }
    for (size_t i = 0; i < nsteps; i++) {
        if (schedule[i].after_ms < 0 ||
            (i > 0 && schedule[i].after_ms <= schedule[i - 1].after_ms)) {
            sl__yamlops_err(errstr, errsize, "schedule step %zu: 'after' must be >= 0 and increase",
                            i + 1);
            return NULL;
        }
        if (schedule[i].per_record_us < 0 || schedule[i].per_record_us > SL_YAMLOPS_BURN_MAX_US) {
            sl__yamlops_err(errstr, errsize,
                            "schedule step %zu: per_record must be between 0us and 10s", i + 1);
            return NULL;
        }
    }
    sl_yamlop *op = sl__yamlops_new(YOP_BURN);
    if (!op || !(op->first_ns = calloc(1, sizeof(*op->first_ns))) ||
        (nsteps > 0 && !(op->steps = malloc(nsteps * sizeof(*op->steps))))) {
        sl__yamlops_destroy(op);
        sl__yamlops_err(errstr, errsize, "out of memory");
        return NULL;
    }
    atomic_init(op->first_ns, 0);
    op->burn_us = per_record_us;
    if (nsteps > 0) {
        memcpy(op->steps, schedule, nsteps * sizeof(*op->steps));
    }
    op->nsteps = nsteps;
    return op;
}

int64_t sl__yamlops_burn_cost_us(const sl_yamlop *op, int64_t elapsed_ms)
{
    int64_t us = op->burn_us;
    for (size_t i = 0; i < op->nsteps && elapsed_ms >= op->steps[i].after_ms; i++) {
        us = op->steps[i].per_record_us;
    }
    return us;
}

int sl__yamlops_parse_us(const char *s, int64_t *us)
{
    if (!s) {
        return SL_ERR_INVAL;
    }
    while (sl__yamlops_is_space(*s)) {
        s++;
    }
    if (!isdigit((unsigned char)*s) && *s != '.') {
        return SL_ERR_INVAL;
    }
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !(v >= 0)) {
        return SL_ERR_INVAL;
    }
    double mult;
    if (strcmp(end, "us") == 0 || strcmp(end, "\u00b5s") == 0 || *end == '\0') {
        mult = 1;
    } else if (strcmp(end, "ms") == 0) {
        mult = 1e3;
    } else if (strcmp(end, "s") == 0) {
        mult = 1e6;
    } else {
        return SL_ERR_INVAL;
    }
    v *= mult;
    if (v > (double)SL_YAMLOPS_BURN_MAX_US) {
        return SL_ERR_INVAL;
    }
    *us = (int64_t)(v + 0.5);
    return SL_OK;
}

/* This thread's CPU time in ns: the spin burns CPU, not wall time (the toolkit has no
 * helper for this clock). */
static int64_t yop_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sl__yamlops_burn_spin(int64_t us)
{
    if (us <= 0) {
        return;
    }
    int64_t until = yop_cpu_ns() + us * 1000;
    while (yop_cpu_ns() < until) {
        /* spin */
    }
}

int sl__yamlops_burn(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    (void)in;
    (void)out;
    (void)e;
    const sl_yamlop *op = opaque;
    int64_t us = op->burn_us;
    if (op->nsteps > 0) {
        int64_t now = sl__mono_ns();
        int64_t first = atomic_load(op->first_ns);
        if (first == 0 && !atomic_compare_exchange_strong(op->first_ns, &first, now)) {
            /* another thread was first: first holds its time */
        } else if (first == 0) {
            first = now;
        }
        us = sl__yamlops_burn_cost_us(op, (now - first) / 1000000);
    }
    sl__yamlops_burn_spin(us);
    return SL_OK;
}

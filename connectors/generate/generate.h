/* generate.h -- the generate source's context: lines of a text emitted at a steady rate,
 * the demo's built-in input (like Fluent Bit's dummy input). */
#ifndef SL_GENERATE_H
#define SL_GENERATE_H

#include <pthread.h>
#include <stdatomic.h>

#include "sl_connector.h"
#include "sl_lines.h"

typedef struct sl_generate_line {
    const char *s;
    size_t len;
} sl_generate_line;

typedef struct sl_generate_ctx {
    /* Options, filled by the engine. */
    const char *text; /* NULL: the built-in sample */
    double rate;      /* lines per second */
    int64_t count;    /* lines in total; 0 = no limit */
    bool loop;        /* start over at the end of the text */

    /* State. ins is set first in init; destroy does nothing more when it is NULL. */
    sl_instance *ins;
    char *buf; /* a copy of the text, which lines point into */
    sl_generate_line *lines;
    size_t nlines;
    sl_lines_batch *batch;
    pthread_t thread;
    bool started;
    atomic_bool stop;
} sl_generate_ctx;

#endif /* SL_GENERATE_H */

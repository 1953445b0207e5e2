/* stdout.h -- the stdout sink's context (DStream.print()). */
#ifndef SL_STDOUT_H
#define SL_STDOUT_H

#include <stdio.h>

#include "sl_connector.h"

typedef struct sl_stdout_ctx {
    int64_t num; /* option: records printed per batch */
    sl_instance *ins;
} sl_stdout_ctx;

#endif /* SL_STDOUT_H */

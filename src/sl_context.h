/* sl_context.h -- what the modules that report on a context (metrics, dead letters) may ask
 * it beyond sluice.h, without seeing its internals (sl_engine.h). */
#ifndef SL_CONTEXT_H
#define SL_CONTEXT_H

#include <stdbool.h>

#include "sluice.h"

/* True once the context stops without waiting: retries give up. @locks takes ctx->lock */
bool sl__context_abandoning(sl_context *ctx);
/* "created", "running", "stopping" or "stopped". @locks takes ctx->lock */
const char *sl__context_state_name(sl_context *ctx);
/* True when the source called name (the very pointer sl_context_instances gives) has a
 * receiver thread. */
bool sl__context_source_is_receiver(sl_context *ctx, const char *name);

#endif /* SL_CONTEXT_H */

/* sl_yamlops_running.c -- the running op: a running sum, count, min or max per key. */
#include <string.h>

#include "sl_yamlops_int.h"

sl_yamlop *sl__yamlops_running_new(const char *fn, char *errstr, size_t errsize)
{
    sl_reduce_fn reduce;
    if (fn && (strcmp(fn, "sum") == 0 || strcmp(fn, "count") == 0)) {
        reduce = sl_reduce_sum;
    } else if (fn && strcmp(fn, "min") == 0) {
        reduce = sl_reduce_min;
    } else if (fn && strcmp(fn, "max") == 0) {
        reduce = sl_reduce_max;
    } else {
        sl__yamlops_err(errstr, errsize,
                        "unknown running function '%s' (valid: sum, count, min, max)",
                        fn ? fn : "");
        return NULL;
    }
    sl_yamlop *op = sl__yamlops_new(YOP_RUNNING);
    if (!op) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        return NULL;
    }
    op->reduce = reduce;
    return op;
}

int sl__yamlops_running(const sl_record *in, sl_state *state, sl_emitter *e, void *opaque)
{
    const sl_yamlop *op = opaque;
    if (state->timing_out) {
        return SL_OK; /* the key expires without a record */
    }
    sl_record acc = {
        .key = in->key,
        .key_len = in->key_len,
        .num_type = in->num_type,
        .num = in->num,
    };
    if (state->exists) {
        sl_record old = {.key = in->key, .key_len = in->key_len, .num_type = state->num_type};
        memcpy(&old.num, &state->num, sizeof(old.num));
        acc = old;
        int rc = op->reduce(&acc, in, e, NULL);
        if (rc < 0) {
            return rc;
        }
    }
    state->exists = true;
    state->num_type = acc.num_type;
    memcpy(&state->num, &acc.num, sizeof(state->num));
    state->bytes = NULL;
    state->len = 0;
    sl_record out = {
        .key = in->key,
        .key_len = in->key_len,
        .num_type = acc.num_type,
        .num = acc.num,
        .ts = sl_emitter_batch_time(e),
        .meta = in->meta,
    };
    return sl_emit(e, &out);
}

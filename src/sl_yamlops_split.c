/* sl_yamlops_split.c -- the split op: one record per token of the value. */
#include <stdlib.h>
#include <string.h>

#include "sl_yamlops_int.h"

sl_yamlop *sl__yamlops_split_new(const char *delim, char *errstr, size_t errsize)
{
    if (delim && !*delim) {
        sl__yamlops_err(errstr, errsize, "empty delimiter");
        return NULL;
    }
    sl_yamlop *op = sl__yamlops_new(YOP_SPLIT);
    if (!op) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        return NULL;
    }
    if (delim) {
        op->delim = strdup(delim);
        op->delim_len = strlen(delim);
        if (!op->delim) {
            sl__yamlops_err(errstr, errsize, "out of memory");
            sl__yamlops_destroy(op);
            return NULL;
        }
    }
    return op;
}

int sl__yamlops_split_next(const sl_yamlop *op, const char *s, size_t len, size_t *pos,
                           const char **tok, size_t *toklen)
{
    size_t p = *pos;
    if (!op->delim) {
        while (p < len && sl__yamlops_is_space(s[p])) {
            p++;
        }
        if (p >= len) {
            *pos = len;
            return 0;
        }
        size_t start = p;
        while (p < len && !sl__yamlops_is_space(s[p])) {
            p++;
        }
        *tok = s + start;
        *toklen = p - start;
        *pos = p;
        return 1;
    }
    while (p < len) {
        const char *found = memmem(s + p, len - p, op->delim, op->delim_len);
        size_t end = found ? (size_t)(found - s) : len;
        size_t start = p;
        p = found ? end + op->delim_len : len;
        if (end > start) {
            *tok = s + start;
            *toklen = end - start;
            *pos = p;
            return 1;
        }
    }
    *pos = len;
    return 0;
}

int sl__yamlops_flat_map(const sl_record *in, sl_emitter *e, void *opaque)
{
    const sl_yamlop *op = opaque;
    size_t pos = 0;
    const char *tok;
    size_t toklen;
    const char *s = in->value ? in->value : "";
    while (sl__yamlops_split_next(op, s, in->value_len, &pos, &tok, &toklen)) {
        sl_record r = *in;
        r.value = tok;
        r.value_len = (uint32_t)toklen;
        r.num_type = SL_NUM_NONE;
        r.num.i = 0;
        int rc = sl_emit(e, &r);
        if (rc < 0) {
            return rc;
        }
    }
    return SL_OK;
}

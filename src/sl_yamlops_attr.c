/* sl_yamlops_attr.c -- the record attributes the ops read: meta (topic, partition, ...) and
 * headers. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sl_yamlops_int.h"

static const char *const yop_meta_names[] = {
    [SL_YOP_META_TOPIC] = "topic",         [SL_YOP_META_PARTITION] = "partition",
    [SL_YOP_META_OFFSET] = "offset",       [SL_YOP_META_SOURCE] = "source",
    [SL_YOP_META_TIMESTAMP] = "timestamp",
};

int sl__yamlops_meta_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof(yop_meta_names) / sizeof(yop_meta_names[0]); i++) {
        if (strcmp(name, yop_meta_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *sl__yamlops_meta_names(void)
{
    return "topic, partition, offset, source, timestamp";
}

bool sl__yamlops_meta_is_number(sl_yamlop_meta m)
{
    return m == SL_YOP_META_PARTITION || m == SL_YOP_META_OFFSET || m == SL_YOP_META_TIMESTAMP;
}

/* Reads op's attribute (SL_YOP_ON_META or SL_YOP_ON_HEADER) of in. false when in has none. */
bool sl__yamlops_attr_get(const sl_yamlop *op, const sl_record *in, yop_attr *a)
{
    const sl_record_meta *m = in->meta;
    memset(a, 0, sizeof(*a));
    if (op->target == SL_YOP_ON_HEADER) {
        const sl_header *h = sl_record_header(in, op->header);
        if (!h) {
            return false;
        }
        a->s = h->value ? h->value : "";
        a->len = h->value ? h->value_len : 0;
        return true;
    }
    int64_t v;
    switch (op->meta) {
    case SL_YOP_META_TOPIC:
    case SL_YOP_META_SOURCE:
        a->s = !m ? NULL : op->meta == SL_YOP_META_TOPIC ? m->topic : m->source;
        if (!a->s) {
            return false;
        }
        a->len = strlen(a->s);
        return true;
    case SL_YOP_META_PARTITION:
    case SL_YOP_META_OFFSET:
        v = !m ? -1 : op->meta == SL_YOP_META_PARTITION ? m->partition : m->offset;
        if (v < 0) {
            return false; /* -1: not applicable */
        }
        break;
    case SL_YOP_META_TIMESTAMP: v = in->ts; break;
    default: return false;
    }
    a->is_num = true;
    a->num.type = SL_NUM_INT;
    a->num.i = v;
    a->num.d = (double)v;
    return true;
}

/* The text of an attribute: an integer is formatted into buf. */
void sl__yamlops_attr_text(const yop_attr *a, char *buf, size_t size, const char **s, size_t *len)
{
    if (a->is_num) {
        int n = snprintf(buf, size, "%" PRId64, a->num.i);
        *s = buf;
        *len = n > 0 ? (size_t)n : 0;
    } else {
        *s = a->s;
        *len = a->len;
    }
}

/* The number an attribute holds: an integer, or text holding a number. */
bool sl__yamlops_attr_num(const yop_attr *a, yop_num *n)
{
    if (a->is_num) {
        *n = a->num;
        return true;
    }
    return sl__yamlops_parse_num(a->s, a->len, n);
}

int sl__yamlops_reject_attr(const sl_yamlop *op)
{
    if (op->target == SL_YOP_ON_HEADER) {
        sl_reject_reason("no header '%s'", op->header);
    } else {
        sl_reject_reason("the record has no %s", yop_meta_names[op->meta]);
    }
    return SL_ERR_RECORD;
}

int sl__yamlops_reject_attr_nan(const sl_yamlop *op, const yop_attr *a)
{
    char what[96];
    if (op->target == SL_YOP_ON_HEADER) {
        snprintf(what, sizeof(what), "header '%s'", op->header);
    } else {
        snprintf(what, sizeof(what), "%s", yop_meta_names[op->meta]);
    }
    return sl__yamlops_reject_nan(what, a->s, a->len);
}

/* Sets what op reads: a meta attribute by name or a header. */
static int yop_set_attr(sl_yamlop *op, sl_yamlop_target target, const char *name, char *errstr,
                        size_t errsize)
{
    op->target = target;
    if (target == SL_YOP_ON_META) {
        int m = sl__yamlops_meta_from_name(name);
        if (m < 0) {
            sl__yamlops_err(errstr, errsize, "unknown meta '%s' (valid: %s)", name ? name : "",
                            sl__yamlops_meta_names());
            return SL_ERR_INVAL;
        }
        op->meta = (sl_yamlop_meta)m;
        return SL_OK;
    }
    if (!name || !*name) {
        sl__yamlops_err(errstr, errsize, "empty header name");
        return SL_ERR_INVAL;
    }
    op->header = strdup(name);
    if (!op->header) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

/* Builds an op of kind that reads an attribute (target SL_YOP_ON_META or _HEADER). */
sl_yamlop *sl__yamlops_new_attr(yop_kind kind, sl_yamlop_target target, const char *name,
                                char *errstr, size_t errsize)
{
    sl_yamlop *op = sl__yamlops_new(kind);
    if (!op) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        return NULL;
    }
    if (yop_set_attr(op, target, name, errstr, errsize) != SL_OK) {
        sl__yamlops_destroy(op);
        return NULL;
    }
    return op;
}

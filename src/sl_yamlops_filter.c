/* sl_yamlops_filter.c -- the filter op: compares a record's value, key, JSON field, meta or
 * header with an operand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sl_yamlops_int.h"

static const char *const yop_cmp_names[] = {
    [SL_YOP_EQUALS] = "equals",
    [SL_YOP_NOT_EQUALS] = "not_equals",
    [SL_YOP_GT] = "gt",
    [SL_YOP_GE] = "ge",
    [SL_YOP_LT] = "lt",
    [SL_YOP_LE] = "le",
    [SL_YOP_CONTAINS] = "contains",
    [SL_YOP_MATCHES] = "matches",
};

int sl__yamlops_cmp_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(yop_cmp_names) / sizeof(yop_cmp_names[0]); i++) {
        if (strcmp(name, yop_cmp_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *sl__yamlops_cmp_name(sl_yamlop_cmp cmp)
{
    return (unsigned)cmp <= SL_YOP_MATCHES ? yop_cmp_names[cmp] : "?";
}

sl_yamlop *sl__yamlops_filter_new(sl_yamlop_target target, const char *name, sl_yamlop_cmp cmp,
                                  const char *operand, char *errstr, size_t errsize)
{
    if ((unsigned)cmp > SL_YOP_MATCHES || !operand) {
        sl__yamlops_err(errstr, errsize, "bad filter");
        return NULL;
    }
    sl_yamlop *op;
    if (target == SL_YOP_ON_JSON) {
        op = sl__yamlops_new_json(YOP_FILTER, name, errstr, errsize);
    } else if (target == SL_YOP_ON_META || target == SL_YOP_ON_HEADER) {
        op = sl__yamlops_new_attr(YOP_FILTER, target, name, errstr, errsize);
    } else {
        op = sl__yamlops_new(YOP_FILTER);
        if (!op) {
            sl__yamlops_err(errstr, errsize, "out of memory");
        }
    }
    if (!op) {
        return NULL;
    }
    op->target = target;
    op->cmp = cmp;
    op->operand = strdup(operand);
    if (!op->operand) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        sl__yamlops_destroy(op);
        return NULL;
    }
    op->operand_len = strlen(operand);
    op->operand_is_num = sl__yamlops_parse_num(operand, op->operand_len, &op->num);
    if (cmp >= SL_YOP_GT && cmp <= SL_YOP_LE && !op->operand_is_num) {
        sl__yamlops_err(errstr, errsize, "%s needs a number, got '%s'", yop_cmp_names[cmp],
                        operand);
        sl__yamlops_destroy(op);
        return NULL;
    }
    if (cmp == SL_YOP_MATCHES) {
        char msg[200];
        op->re = sl__yamlops_re_new(operand, msg, sizeof(msg));
        if (!op->re) {
            sl__yamlops_err(errstr, errsize, "bad regular expression '%s': %s", operand, msg);
            sl__yamlops_destroy(op);
            return NULL;
        }
    }
    return op;
}

/* Compares two numbers: <0, 0, >0. Integers compare exactly. */
static int yop_num_cmp(const yop_num *a, const yop_num *b)
{
    if (a->type == SL_NUM_INT && b->type == SL_NUM_INT) {
        return a->i < b->i ? -1 : a->i > b->i;
    }
    double x = a->type == SL_NUM_INT ? (double)a->i : a->d;
    double y = b->type == SL_NUM_INT ? (double)b->i : b->d;
    return x < y ? -1 : x > y;
}

/* Applies a text comparison (equals, not_equals, contains, matches) to s[0..len). */
static int yop_filter_text(const sl_yamlop *op, const char *s, size_t len)
{
    switch (op->cmp) {
    case SL_YOP_EQUALS: return len == op->operand_len && memcmp(s, op->operand, len) == 0;
    case SL_YOP_NOT_EQUALS: return !(len == op->operand_len && memcmp(s, op->operand, len) == 0);
    case SL_YOP_CONTAINS:
        return op->operand_len == 0 || (len > 0 && memmem(s, len, op->operand, op->operand_len));
    case SL_YOP_MATCHES: return sl__yamlops_re_find(op->re, s, len);
    default: return SL_ERR_INVAL;
    }
}

/* Applies a numeric comparison (all six) of n with the operand. */
static int yop_filter_num(const sl_yamlop *op, const yop_num *n)
{
    int c = yop_num_cmp(n, &op->num);
    switch (op->cmp) {
    case SL_YOP_EQUALS: return c == 0;
    case SL_YOP_NOT_EQUALS: return c != 0;
    case SL_YOP_GT: return c > 0;
    case SL_YOP_GE: return c >= 0;
    case SL_YOP_LT: return c < 0;
    case SL_YOP_LE: return c <= 0;
    default: return SL_ERR_INVAL;
    }
}

static bool yop_cmp_is_numeric(sl_yamlop_cmp cmp)
{
    return cmp >= SL_YOP_GT && cmp <= SL_YOP_LE;
}

static int yop_filter_json(const sl_yamlop *op, const sl_record *in)
{
    json_t *root = sl__yamlops_json_load(in);
    if (!root) {
        return sl__yamlops_reject_json(&op->path, false);
    }
    json_t *v = sl__jpath_get(&op->path, root);
    int rc;
    if (!v) {
        /* An absent field equals nothing. */
        rc = op->cmp == SL_YOP_NOT_EQUALS;
    } else if (yop_cmp_is_numeric(op->cmp)) {
        yop_num n;
        rc = sl__yamlops_json_num(v, &n) ? yop_filter_num(op, &n)
                                         : sl__yamlops_reject_json_nan(&op->path, v);
    } else if ((op->cmp == SL_YOP_EQUALS || op->cmp == SL_YOP_NOT_EQUALS) && json_is_number(v) &&
               op->operand_is_num) {
        yop_num n;
        sl__yamlops_json_num(v, &n);
        rc = yop_filter_num(op, &n);
    } else {
        char buf[64];
        char *heap;
        size_t len;
        const char *text = sl__yamlops_json_text(v, buf, sizeof(buf), &len, &heap);
        rc = text ? yop_filter_text(op, text, len) : SL_ERR_NOMEM;
        free(heap);
    }
    json_decref(root);
    return rc;
}

static int yop_filter_attr(const sl_yamlop *op, const sl_record *in)
{
    yop_attr a;
    if (!sl__yamlops_attr_get(op, in, &a)) {
        return op->cmp == SL_YOP_NOT_EQUALS; /* like a missing JSON field */
    }
    yop_num n;
    if (yop_cmp_is_numeric(op->cmp)) {
        return sl__yamlops_attr_num(&a, &n) ? yop_filter_num(op, &n)
                                            : sl__yamlops_reject_attr_nan(op, &a);
    }
    if (a.is_num && op->operand_is_num &&
        (op->cmp == SL_YOP_EQUALS || op->cmp == SL_YOP_NOT_EQUALS)) {
        return yop_filter_num(op, &a.num);
    }
    char buf[32];
    const char *t;
    size_t len;
    sl__yamlops_attr_text(&a, buf, sizeof(buf), &t, &len);
    return yop_filter_text(op, t, len);
}

int sl__yamlops_filter(const sl_record *in, void *opaque)
{
    const sl_yamlop *op = opaque;
    if (op->target == SL_YOP_ON_JSON) {
        return yop_filter_json(op, in);
    }
    if (op->target == SL_YOP_ON_META || op->target == SL_YOP_ON_HEADER) {
        return yop_filter_attr(op, in);
    }
    const char *s = op->target == SL_YOP_ON_KEY ? in->key : in->value;
    size_t len = op->target == SL_YOP_ON_KEY ? in->key_len : in->value_len;
    if (!s) {
        s = "";
        len = 0;
    }
    bool typed = op->target == SL_YOP_ON_VALUE && in->num_type != SL_NUM_NONE;
    if (yop_cmp_is_numeric(op->cmp) ||
        (typed && op->operand_is_num &&
         (op->cmp == SL_YOP_EQUALS || op->cmp == SL_YOP_NOT_EQUALS))) {
        yop_num n;
        if (typed) {
            n.type = in->num_type;
            n.i = in->num_type == SL_NUM_INT ? in->num.i : 0;
            n.d = in->num_type == SL_NUM_DOUBLE ? in->num.d : (double)in->num.i;
        } else if (!sl__yamlops_parse_num(s, len, &n)) {
            return sl__yamlops_reject_nan(op->target == SL_YOP_ON_KEY ? "the key" : "the value", s,
                                          len);
        }
        return yop_filter_num(op, &n);
    }
    return yop_filter_text(op, s, len);
}

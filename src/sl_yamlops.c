/* sl_yamlops.c -- the op object and its shared helpers (numbers, JSON paths), and the key,
 * value and map ops. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sl_yamlops_int.h"

/* ==== Helpers ==== */

void sl__yamlops_err(char *errstr, size_t errsize, const char *fmt, ...)
{
    if (errstr && errsize > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errsize, fmt, ap);
        va_end(ap);
    }
}

sl_yamlop *sl__yamlops_new(yop_kind kind)
{
    sl_yamlop *op = calloc(1, sizeof(*op));
    if (op) {
        op->kind = kind;
    }
    return op;
}

bool sl__yamlops_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Parses s[0..len) as a decimal number: optional sign, digits, optional fraction and
 * exponent, surrounded by optional ASCII whitespace. Integers that fit stay integers.
 * Returns true and fills *n on success. */
bool sl__yamlops_parse_num(const char *s, size_t len, yop_num *n)
{
    char buf[80];
    while (len > 0 && sl__yamlops_is_space(*s)) {
        s++;
        len--;
    }
    while (len > 0 && sl__yamlops_is_space(s[len - 1])) {
        len--;
    }
    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    size_t i = 0;
    bool integral = true;
    if (s[i] == '+' || s[i] == '-') {
        i++;
    }
    size_t digits = 0;
    while (i < len && isdigit((unsigned char)s[i])) {
        i++;
        digits++;
    }
    if (i < len && s[i] == '.') {
        integral = false;
        i++;
        while (i < len && isdigit((unsigned char)s[i])) {
            i++;
            digits++;
        }
    }
    if (digits == 0) {
        return false;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        integral = false;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        size_t edigits = 0;
        while (i < len && isdigit((unsigned char)s[i])) {
            i++;
            edigits++;
        }
        if (edigits == 0) {
            return false;
        }
    }
    if (i != len) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (integral) {
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == 0) {
            n->type = SL_NUM_INT;
            n->i = v;
            n->d = (double)v;
            return true;
        }
    }
    errno = 0;
    double d = strtod(buf, NULL);
    if (!isfinite(d)) {
        return false;
    }
    n->type = SL_NUM_DOUBLE;
    n->d = d;
    n->i = 0;
    return true;
}

/* Parses a dotted path into op->path, with a message for an empty path or segment. */
static int yop_set_path(sl_yamlop *op, const char *path, char *errstr, size_t errsize)
{
    int rc = sl__jpath_parse(&op->path, path);
    if (rc == SL_ERR_INVAL && (!path || !*path)) {
        sl__yamlops_err(errstr, errsize, "empty JSON path");
    } else if (rc == SL_ERR_INVAL) {
        sl__yamlops_err(errstr, errsize, "bad JSON path '%s': empty segment", path);
    }
    return rc;
}

/* Parses the record's value as JSON. NULL for malformed JSON. */
json_t *sl__yamlops_json_load(const sl_record *in)
{
    if (!in->value || in->value_len == 0) {
        return NULL;
    }
    return json_loadb(in->value, in->value_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

/* The number held by a JSON value: a number, or a string holding one. */
bool sl__yamlops_json_num(json_t *v, yop_num *n)
{
    if (json_is_integer(v)) {
        n->type = SL_NUM_INT;
        n->i = json_integer_value(v);
        n->d = (double)n->i;
        return true;
    }
    if (json_is_real(v)) {
        n->type = SL_NUM_DOUBLE;
        n->d = json_real_value(v);
        n->i = 0;
        return true;
    }
    if (json_is_string(v)) {
        return sl__yamlops_parse_num(json_string_value(v), json_string_length(v), n);
    }
    return false;
}

/* The text of a JSON value: a string's content, a number as written by printf (doubles in
 * the shortest form that reads back), true/false/null, or compact JSON for containers.
 * Small texts go to buf; larger ones are malloc'ed and *heap is set to be freed. Returns
 * the text (length in *len) or NULL when out of memory. */
const char *sl__yamlops_json_text(json_t *v, char *buf, size_t bufsize, size_t *len, char **heap)
{
    *heap = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING: *len = json_string_length(v); return json_string_value(v);
    case JSON_INTEGER:
        *len = (size_t)snprintf(buf, bufsize, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    case JSON_REAL: {
        double d = json_real_value(v);
        snprintf(buf, bufsize, "%.15g", d);
        if (strtod(buf, NULL) != d) {
            snprintf(buf, bufsize, "%.17g", d);
        }
        *len = strlen(buf);
        return buf;
    }
    case JSON_TRUE: *len = 4; return "true";
    case JSON_FALSE: *len = 5; return "false";
    case JSON_NULL: *len = 4; return "null";
    default:
        *heap = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!*heap) {
            return NULL;
        }
        *len = strlen(*heap);
        return *heap;
    }
}

/* ==== Rejections: each says why (sl_reject_reason) and returns SL_ERR_RECORD ==== */

int sl__yamlops_reject_json(const sl_jpath *path, bool have_root)
{
    if (!have_root) {
        sl_reject_reason("the value is not JSON");
    } else if (path && path->depth > 0) {
        char buf[128];
        sl_reject_reason("missing JSON field '%s'", sl__jpath_text(path, buf, sizeof(buf)));
    } else {
        sl_reject_reason("the value is not a JSON object");
    }
    return SL_ERR_RECORD;
}

const char *sl__yamlops_preview(const char *s, size_t len, char *buf, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < size && i < 40; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (len > 40 && n + 4 < size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

int sl__yamlops_reject_nan(const char *what, const char *s, size_t len)
{
    char pv[64];
    sl_reject_reason("%s '%s' is not a number", what,
                     sl__yamlops_preview(s ? s : "", s ? len : 0, pv, sizeof(pv)));
    return SL_ERR_RECORD;
}

int sl__yamlops_reject_json_nan(const sl_jpath *path, json_t *v)
{
    char p[96], buf[64], pv[64];
    char *heap;
    size_t len;
    const char *text = sl__yamlops_json_text(v, buf, sizeof(buf), &len, &heap);
    sl_reject_reason("JSON field '%s' is %s%s%s, not a number", sl__jpath_text(path, p, sizeof(p)),
                     json_is_string(v) ? "'" : "",
                     text ? sl__yamlops_preview(text, len, pv, sizeof(pv)) : "?",
                     json_is_string(v) ? "'" : "");
    free(heap);
    return SL_ERR_RECORD;
}

/* Copies len bytes with alloc. A zero length needs no memory: *out points to fallback. */
static int yop_copy(const char *bytes, size_t len, const char *fallback, sl_yamlops_alloc_fn alloc,
                    void *arg, const char **out, uint32_t *out_len)
{
    if (len > UINT32_MAX) {
        return SL_ERR_TOOBIG;
    }
    if (len == 0) {
        *out = fallback ? fallback : bytes;
        *out_len = 0;
        return SL_OK;
    }
    char *p = alloc(arg, len);
    if (!p) {
        return SL_ERR_NOMEM;
    }
    memcpy(p, bytes, len);
    *out = p;
    *out_len = (uint32_t)len;
    return SL_OK;
}
/* ==== Constructors ==== */

/* Builds an op of kind that reads the JSON field at path. */
sl_yamlop *sl__yamlops_new_json(yop_kind kind, const char *path, char *errstr, size_t errsize)
{
    sl_yamlop *op = sl__yamlops_new(kind);
    if (!op) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        return NULL;
    }
    int rc = yop_set_path(op, path, errstr, errsize);
    if (rc != SL_OK) {
        if (rc == SL_ERR_NOMEM) {
            sl__yamlops_err(errstr, errsize, "out of memory");
        }
        sl__yamlops_destroy(op);
        return NULL;
    }
    return op;
}

sl_yamlop *sl__yamlops_key_new(const char *json_path, char *errstr, size_t errsize)
{
    if (!json_path) {
        sl_yamlop *op = sl__yamlops_new(YOP_KEY_VALUE);
        if (!op) {
            sl__yamlops_err(errstr, errsize, "out of memory");
        }
        return op;
    }
    return sl__yamlops_new_json(YOP_KEY_JSON, json_path, errstr, errsize);
}

sl_yamlop *sl__yamlops_key_from_new(sl_yamlop_target target, const char *name, char *errstr,
                                    size_t errsize)
{
    switch (target) {
    case SL_YOP_ON_VALUE: return sl__yamlops_key_new(NULL, errstr, errsize);
    case SL_YOP_ON_JSON:
        if (!name) {
            sl__yamlops_err(errstr, errsize, "empty JSON path");
            return NULL;
        }
        return sl__yamlops_key_new(name, errstr, errsize);
    case SL_YOP_ON_META:
    case SL_YOP_ON_HEADER: return sl__yamlops_new_attr(YOP_KEY_ATTR, target, name, errstr, errsize);
    default: sl__yamlops_err(errstr, errsize, "a key comes from the value, JSON, meta or a header");
    }
    return NULL;
}

sl_yamlop *sl__yamlops_value_literal_new(const char *literal, char *errstr, size_t errsize)
{
    yop_num n;
    if (!literal || !sl__yamlops_parse_num(literal, strlen(literal), &n)) {
        sl__yamlops_err(errstr, errsize,
                        "'%s' is not a number (an int such as 1 or a float such as 0.5)",
                        literal ? literal : "");
        return NULL;
    }
    sl_yamlop *op = sl__yamlops_new(YOP_VALUE_LITERAL);
    if (!op) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        return NULL;
    }
    op->num = n;
    return op;
}

sl_yamlop *sl__yamlops_value_json_new(const char *json_path, bool as_text, char *errstr,
                                      size_t errsize)
{
    return sl__yamlops_new_json(as_text ? YOP_VALUE_JSON_TEXT : YOP_VALUE_JSON_NUM, json_path,
                                errstr, errsize);
}

sl_yamlop *sl__yamlops_value_from_new(sl_yamlop_target target, const char *name, bool as_text,
                                      char *errstr, size_t errsize)
{
    switch (target) {
    case SL_YOP_ON_VALUE: {
        if (as_text) {
            sl__yamlops_err(errstr, errsize, "the value bytes already are the value's text");
            return NULL;
        }
        sl_yamlop *op = sl__yamlops_new(YOP_VALUE_NUM);
        if (!op) {
            sl__yamlops_err(errstr, errsize, "out of memory");
        }
        return op;
    }
    case SL_YOP_ON_JSON: return sl__yamlops_value_json_new(name, as_text, errstr, errsize);
    case SL_YOP_ON_META:
        if (!as_text && sl__yamlops_meta_from_name(name) >= 0 &&
            !sl__yamlops_meta_is_number((sl_yamlop_meta)sl__yamlops_meta_from_name(name))) {
            sl__yamlops_err(errstr, errsize, "meta '%s' is text, not a number: use as: text", name);
            return NULL;
        }
        /* fall through */
    case SL_YOP_ON_HEADER:
        return sl__yamlops_new_attr(as_text ? YOP_VALUE_ATTR_TEXT : YOP_VALUE_ATTR_NUM, target,
                                    name, errstr, errsize);
    default:
        sl__yamlops_err(errstr, errsize, "a value comes from the value, JSON, meta or a header");
    }
    return NULL;
}

sl_yamlop *sl__yamlops_transform_new(const char *name, char *errstr, size_t errsize)
{
    yop_kind kind;
    if (name && strcmp(name, "lower") == 0) {
        kind = YOP_LOWER;
    } else if (name && strcmp(name, "upper") == 0) {
        kind = YOP_UPPER;
    } else if (name && strcmp(name, "trim") == 0) {
        kind = YOP_TRIM;
    } else {
        sl__yamlops_err(errstr, errsize, "unknown map '%s' (valid: lower, upper, trim)",
                        name ? name : "");
        return NULL;
    }
    sl_yamlop *op = sl__yamlops_new(kind);
    if (!op) {
        sl__yamlops_err(errstr, errsize, "out of memory");
    }
    return op;
}

void sl__yamlops_destroy(sl_yamlop *op)
{
    if (!op) {
        return;
    }
    free(op->delim);
    sl__jpath_free(&op->path);
    free(op->operand);
    free(op->header);
    free(op->steps);
    free(op->ts_pattern);
    free((void *)op->first_ns);
    sl__yamlops_re_free(op->re);
    sl__yamlops_parse_free(op->parse);
    sl__yamlops_shape_free(op->shape);
    free(op);
}

/* ==== Key, value and transforms ==== */

/* Sets out's key or value bytes (to_key) to the text of the JSON field at op->path. */
static int yop_apply_json_text(const sl_yamlop *op, const sl_record *in, sl_record *out,
                               bool to_key, sl_yamlops_alloc_fn alloc, void *arg)
{
    json_t *root = sl__yamlops_json_load(in);
    if (!root) {
        return sl__yamlops_reject_json(&op->path, false);
    }
    json_t *v = sl__jpath_get(&op->path, root);
    if (!v) {
        json_decref(root);
        return sl__yamlops_reject_json(&op->path, true);
    }
    char buf[64];
    char *heap;
    size_t len;
    const char *text = sl__yamlops_json_text(v, buf, sizeof(buf), &len, &heap);
    int rc = SL_ERR_NOMEM;
    if (text) {
        if (to_key) {
            rc = yop_copy(text, len, in->value, alloc, arg, &out->key, &out->key_len);
        } else {
            rc = yop_copy(text, len, in->value, alloc, arg, &out->value, &out->value_len);
        }
    }
    free(heap);
    json_decref(root);
    return rc;
}

/* Gives out the typed value n. */
static void yop_set_num(sl_record *out, const yop_num *n)
{
    out->num_type = n->type;
    if (n->type == SL_NUM_INT) {
        out->num.i = n->i;
    } else {
        out->num.d = n->d;
    }
}

static int yop_apply_json_num(const sl_yamlop *op, const sl_record *in, sl_record *out)
{
    json_t *root = sl__yamlops_json_load(in);
    if (!root) {
        return sl__yamlops_reject_json(&op->path, false);
    }
    json_t *v = sl__jpath_get(&op->path, root);
    yop_num n;
    int rc = SL_OK;
    if (!v) {
        rc = sl__yamlops_reject_json(&op->path, true);
    } else if (!sl__yamlops_json_num(v, &n)) {
        rc = sl__yamlops_reject_json_nan(&op->path, v);
    }
    json_decref(root);
    if (rc != SL_OK) {
        return rc;
    }
    yop_set_num(out, &n);
    return SL_OK;
}

/* Sets out's key or value bytes (to_key), or its typed value (as_num), from op's attribute.
 * Text attributes are referenced, not copied: they live as long as the record's batch. */
static int yop_apply_attr(const sl_yamlop *op, const sl_record *in, sl_record *out, bool to_key,
                          bool as_num, sl_yamlops_alloc_fn alloc, void *arg)
{
    yop_attr a;
    if (!sl__yamlops_attr_get(op, in, &a)) {
        return sl__yamlops_reject_attr(op);
    }
    if (as_num) {
        yop_num n;
        if (!sl__yamlops_attr_num(&a, &n)) {
            return sl__yamlops_reject_attr_nan(op, &a);
        }
        yop_set_num(out, &n);
        return SL_OK;
    }
    const char **bytes = to_key ? &out->key : &out->value;
    uint32_t *blen = to_key ? &out->key_len : &out->value_len;
    if (a.is_num) {
        char buf[32];
        const char *t;
        size_t len;
        sl__yamlops_attr_text(&a, buf, sizeof(buf), &t, &len);
        return yop_copy(t, len, NULL, alloc, arg, bytes, blen);
    }
    if (a.len > UINT32_MAX) {
        return SL_ERR_TOOBIG;
    }
    *bytes = a.s;
    *blen = (uint32_t)a.len;
    return SL_OK;
}

static int yop_apply_case(const sl_yamlop *op, const sl_record *in, sl_record *out,
                          sl_yamlops_alloc_fn alloc, void *arg)
{
    if (in->value_len == 0) {
        return SL_OK;
    }
    char *p = alloc(arg, in->value_len);
    if (!p) {
        return SL_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < in->value_len; i++) {
        unsigned char c = (unsigned char)in->value[i];
        p[i] = (char)(op->kind == YOP_LOWER ? tolower(c) : toupper(c));
    }
    out->value = p;
    out->value_len = in->value_len;
    return SL_OK;
}

int sl__yamlops_apply(const sl_yamlop *op, const sl_record *in, sl_record *out,
                      sl_yamlops_alloc_fn alloc, void *arg)
{
    switch (op->kind) {
    case YOP_KEY_VALUE:
        out->key = in->value;
        out->key_len = in->value_len;
        return SL_OK;
    case YOP_KEY_JSON: return yop_apply_json_text(op, in, out, true, alloc, arg);
    case YOP_KEY_ATTR: return yop_apply_attr(op, in, out, true, false, alloc, arg);
    case YOP_VALUE_ATTR_NUM: return yop_apply_attr(op, in, out, false, true, alloc, arg);
    case YOP_VALUE_ATTR_TEXT: return yop_apply_attr(op, in, out, false, false, alloc, arg);
    case YOP_VALUE_LITERAL: yop_set_num(out, &op->num); return SL_OK;
    case YOP_VALUE_NUM: {
        yop_num n;
        if (!in->value || !sl__yamlops_parse_num(in->value, in->value_len, &n)) {
            return sl__yamlops_reject_nan("the value", in->value, in->value_len);
        }
        yop_set_num(out, &n);
        return SL_OK;
    }
    case YOP_VALUE_JSON_NUM: return yop_apply_json_num(op, in, out);
    case YOP_VALUE_JSON_TEXT: return yop_apply_json_text(op, in, out, false, alloc, arg);
    case YOP_LOWER:
    case YOP_UPPER: return yop_apply_case(op, in, out, alloc, arg);
    case YOP_TRIM: {
        const char *s = in->value;
        uint32_t len = in->value_len;
        while (len > 0 && sl__yamlops_is_space(*s)) {
            s++;
            len--;
        }
        while (len > 0 && sl__yamlops_is_space(s[len - 1])) {
            len--;
        }
        out->value = s;
        out->value_len = len;
        return SL_OK;
    }
    case YOP_BURN: return sl__yamlops_burn(in, out, NULL, (void *)op);
    case YOP_TIMESTAMP: return sl__yamlops_timestamp(op, in, out);
    case YOP_PARSE: return sl__yamlops_parse_apply(op, in, out, alloc, arg);
    case YOP_SHAPE: return sl__yamlops_shape_apply(op, in, out, alloc, arg);
    default: return SL_ERR_INVAL;
    }
}

static void *yop_emitter_alloc(void *arg, size_t size)
{
    return sl_emitter_alloc(arg, size);
}

int sl__yamlops_map(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    return sl__yamlops_apply(opaque, in, out, yop_emitter_alloc, e);
}

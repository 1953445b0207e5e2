/* sl_yamlops.c -- the built-in operations of the YAML front end as operator functions. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "sl_yamlops.h"

typedef enum yop_kind {
    YOP_SPLIT,
    YOP_KEY_VALUE,
    YOP_KEY_JSON,
    YOP_VALUE_LITERAL,
    YOP_VALUE_JSON_NUM,
    YOP_VALUE_JSON_TEXT,
    YOP_KEY_ATTR,        /* key from a meta attribute or a header */
    YOP_VALUE_ATTR_NUM,  /* typed value from a meta attribute or a header */
    YOP_VALUE_ATTR_TEXT, /* value bytes from a meta attribute or a header */
    YOP_FILTER,
    YOP_LOWER,
    YOP_UPPER,
    YOP_TRIM,
    YOP_RUNNING,
    YOP_BURN,
} yop_kind;

/* A number as the ops see it: an int, a double, or none. */
typedef struct yop_num {
    uint8_t type; /* sl_num_type */
    int64_t i;
    double d;
} yop_num;

struct sl_yamlop {
    yop_kind kind;
    /* split */
    char *delim;
    size_t delim_len;
    /* JSON path: segments, each NUL-terminated */
    char **path;
    size_t depth;
    /* literal value, numeric operand */
    yop_num num;
    /* filter, and the key and value ops that read an attribute (SL_YOP_ON_META/HEADER) */
    sl_yamlop_target target;
    sl_yamlop_meta meta;
    char *header;
    sl_yamlop_cmp cmp;
    char *operand;
    size_t operand_len;
    bool operand_is_num;
    bool has_regex;
    regex_t regex;
    /* running */
    sl_reduce_fn reduce;
    /* burn */
    int64_t burn_us;
    sl_yamlops_burn_step *steps;
    size_t nsteps;
    _Atomic int64_t *first_ns; /* CLOCK_MONOTONIC of the first record, 0 before */
};

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

static const char *const yop_meta_names[] = {
    [SL_YOP_META_TOPIC] = "topic",         [SL_YOP_META_PARTITION] = "partition",
    [SL_YOP_META_OFFSET] = "offset",       [SL_YOP_META_SOURCE] = "source",
    [SL_YOP_META_TIMESTAMP] = "timestamp",
};

/* ==== Helpers ==== */

static void yop_err(char *errstr, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void yop_err(char *errstr, size_t errsize, const char *fmt, ...)
{
    if (errstr && errsize > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errsize, fmt, ap);
        va_end(ap);
    }
}

static sl_yamlop *yop_new(yop_kind kind)
{
    sl_yamlop *op = calloc(1, sizeof(*op));
    if (op) {
        op->kind = kind;
    }
    return op;
}

static bool yop_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Parses s[0..len) as a decimal number: optional sign, digits, optional fraction and
 * exponent, surrounded by optional ASCII whitespace. Integers that fit stay integers.
 * Returns true and fills *n on success. */
static bool yop_parse_num(const char *s, size_t len, yop_num *n)
{
    char buf[80];
    while (len > 0 && yop_is_space(*s)) {
        s++;
        len--;
    }
    while (len > 0 && yop_is_space(s[len - 1])) {
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

/* Splits a dotted path into op->path. Empty segments are an error. */
static int yop_set_path(sl_yamlop *op, const char *path, char *errstr, size_t errsize)
{
    if (!path || !*path) {
        yop_err(errstr, errsize, "empty JSON path");
        return SL_ERR_INVAL;
    }
    size_t n = 1;
    for (const char *p = path; *p; p++) {
        n += *p == '.';
    }
    op->path = calloc(n, sizeof(char *));
    if (!op->path) {
        return SL_ERR_NOMEM;
    }
    const char *start = path;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(start, '.');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        if (len == 0) {
            yop_err(errstr, errsize, "bad JSON path '%s': empty segment", path);
            return SL_ERR_INVAL;
        }
        op->path[i] = strndup(start, len);
        if (!op->path[i]) {
            return SL_ERR_NOMEM;
        }
        op->depth = i + 1;
        start = end ? end + 1 : start + len;
    }
    return SL_OK;
}

/* Finds the field at op->path in root; NULL when absent. */
static json_t *yop_json_field(const sl_yamlop *op, json_t *root)
{
    json_t *cur = root;
    for (size_t i = 0; cur && i < op->depth; i++) {
        const char *seg = op->path[i];
        if (json_is_object(cur)) {
            cur = json_object_get(cur, seg);
        } else if (json_is_array(cur)) {
            char *end;
            errno = 0;
            unsigned long idx = strtoul(seg, &end, 10);
            if (!isdigit((unsigned char)seg[0]) || *end || errno) {
                return NULL;
            }
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
    }
    return cur;
}

/* Parses the record's value as JSON. NULL for malformed JSON. */
static json_t *yop_json_load(const sl_record *in)
{
    if (!in->value || in->value_len == 0) {
        return NULL;
    }
    return json_loadb(in->value, in->value_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

/* The number held by a JSON value: a number, or a string holding one. */
static bool yop_json_num(json_t *v, yop_num *n)
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
        return yop_parse_num(json_string_value(v), json_string_length(v), n);
    }
    return false;
}

/* The text of a JSON value: a string's content, a number as written by printf (doubles in
 * the shortest form that reads back), true/false/null, or compact JSON for containers.
 * Small texts go to buf; larger ones are malloc'ed and *heap is set to be freed. Returns
 * the text (length in *len) or NULL when out of memory. */
static const char *yop_json_text(json_t *v, char *buf, size_t bufsize, size_t *len, char **heap)
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

/* ==== Record attributes: meta and headers ==== */

int sl_yamlops_meta_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof(yop_meta_names) / sizeof(yop_meta_names[0]); i++) {
        if (strcmp(name, yop_meta_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *sl_yamlops_meta_names(void)
{
    return "topic, partition, offset, source, timestamp";
}

bool sl_yamlops_meta_is_number(sl_yamlop_meta m)
{
    return m == SL_YOP_META_PARTITION || m == SL_YOP_META_OFFSET || m == SL_YOP_META_TIMESTAMP;
}

/* An attribute of a record as the ops see it: an integer, or text borrowed from the record
 * (whose bytes live as long as the batch's data). */
typedef struct yop_attr {
    bool is_num;
    yop_num num;
    const char *s;
    size_t len;
} yop_attr;

/* Reads op's attribute (SL_YOP_ON_META or SL_YOP_ON_HEADER) of in. false when in has none. */
static bool yop_attr_get(const sl_yamlop *op, const sl_record *in, yop_attr *a)
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
static void yop_attr_text(const yop_attr *a, char *buf, size_t size, const char **s, size_t *len)
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
static bool yop_attr_num(const yop_attr *a, yop_num *n)
{
    if (a->is_num) {
        *n = a->num;
        return true;
    }
    return yop_parse_num(a->s, a->len, n);
}

/* Sets what op reads: a meta attribute by name or a header. */
static int yop_set_attr(sl_yamlop *op, sl_yamlop_target target, const char *name, char *errstr,
                        size_t errsize)
{
    op->target = target;
    if (target == SL_YOP_ON_META) {
        int m = sl_yamlops_meta_from_name(name);
        if (m < 0) {
            yop_err(errstr, errsize, "unknown meta '%s' (valid: %s)", name ? name : "",
                    sl_yamlops_meta_names());
            return SL_ERR_INVAL;
        }
        op->meta = (sl_yamlop_meta)m;
        return SL_OK;
    }
    if (!name || !*name) {
        yop_err(errstr, errsize, "empty header name");
        return SL_ERR_INVAL;
    }
    op->header = strdup(name);
    if (!op->header) {
        yop_err(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

/* Builds an op of kind that reads an attribute (target SL_YOP_ON_META or _HEADER). */
static sl_yamlop *yop_new_attr(yop_kind kind, sl_yamlop_target target, const char *name,
                               char *errstr, size_t errsize)
{
    sl_yamlop *op = yop_new(kind);
    if (!op) {
        yop_err(errstr, errsize, "out of memory");
        return NULL;
    }
    if (yop_set_attr(op, target, name, errstr, errsize) != SL_OK) {
        sl_yamlops_destroy(op);
        return NULL;
    }
    return op;
}

/* ==== Constructors ==== */

sl_yamlop *sl_yamlops_split_new(const char *delim, char *errstr, size_t errsize)
{
    if (delim && !*delim) {
        yop_err(errstr, errsize, "empty delimiter");
        return NULL;
    }
    sl_yamlop *op = yop_new(YOP_SPLIT);
    if (!op) {
        yop_err(errstr, errsize, "out of memory");
        return NULL;
    }
    if (delim) {
        op->delim = strdup(delim);
        op->delim_len = strlen(delim);
        if (!op->delim) {
            yop_err(errstr, errsize, "out of memory");
            sl_yamlops_destroy(op);
            return NULL;
        }
    }
    return op;
}

/* Builds an op of kind that reads the JSON field at path. */
static sl_yamlop *yop_new_json(yop_kind kind, const char *path, char *errstr, size_t errsize)
{
    sl_yamlop *op = yop_new(kind);
    if (!op) {
        yop_err(errstr, errsize, "out of memory");
        return NULL;
    }
    int rc = yop_set_path(op, path, errstr, errsize);
    if (rc != SL_OK) {
        if (rc == SL_ERR_NOMEM) {
            yop_err(errstr, errsize, "out of memory");
        }
        sl_yamlops_destroy(op);
        return NULL;
    }
    return op;
}

sl_yamlop *sl_yamlops_key_new(const char *json_path, char *errstr, size_t errsize)
{
    if (!json_path) {
        sl_yamlop *op = yop_new(YOP_KEY_VALUE);
        if (!op) {
            yop_err(errstr, errsize, "out of memory");
        }
        return op;
    }
    return yop_new_json(YOP_KEY_JSON, json_path, errstr, errsize);
}

sl_yamlop *sl_yamlops_key_from_new(sl_yamlop_target target, const char *name, char *errstr,
                                   size_t errsize)
{
    switch (target) {
    case SL_YOP_ON_VALUE: return sl_yamlops_key_new(NULL, errstr, errsize);
    case SL_YOP_ON_JSON:
        if (!name) {
            yop_err(errstr, errsize, "empty JSON path");
            return NULL;
        }
        return sl_yamlops_key_new(name, errstr, errsize);
    case SL_YOP_ON_META:
    case SL_YOP_ON_HEADER: return yop_new_attr(YOP_KEY_ATTR, target, name, errstr, errsize);
    default: yop_err(errstr, errsize, "a key comes from the value, JSON, meta or a header");
    }
    return NULL;
}

sl_yamlop *sl_yamlops_value_literal_new(const char *literal, char *errstr, size_t errsize)
{
    yop_num n;
    if (!literal || !yop_parse_num(literal, strlen(literal), &n)) {
        yop_err(errstr, errsize, "'%s' is not a number (an int such as 1 or a float such as 0.5)",
                literal ? literal : "");
        return NULL;
    }
    sl_yamlop *op = yop_new(YOP_VALUE_LITERAL);
    if (!op) {
        yop_err(errstr, errsize, "out of memory");
        return NULL;
    }
    op->num = n;
    return op;
}

sl_yamlop *sl_yamlops_value_json_new(const char *json_path, bool as_text, char *errstr,
                                     size_t errsize)
{
    return yop_new_json(as_text ? YOP_VALUE_JSON_TEXT : YOP_VALUE_JSON_NUM, json_path, errstr,
                        errsize);
}

sl_yamlop *sl_yamlops_value_from_new(sl_yamlop_target target, const char *name, bool as_text,
                                     char *errstr, size_t errsize)
{
    switch (target) {
    case SL_YOP_ON_JSON: return sl_yamlops_value_json_new(name, as_text, errstr, errsize);
    case SL_YOP_ON_META:
        if (!as_text && sl_yamlops_meta_from_name(name) >= 0 &&
            !sl_yamlops_meta_is_number((sl_yamlop_meta)sl_yamlops_meta_from_name(name))) {
            yop_err(errstr, errsize, "meta '%s' is text, not a number: use as: text", name);
            return NULL;
        }
        /* fall through */
    case SL_YOP_ON_HEADER:
        return yop_new_attr(as_text ? YOP_VALUE_ATTR_TEXT : YOP_VALUE_ATTR_NUM, target, name,
                            errstr, errsize);
    default: yop_err(errstr, errsize, "a value comes from JSON, meta or a header");
    }
    return NULL;
}

sl_yamlop *sl_yamlops_filter_new(sl_yamlop_target target, const char *name, sl_yamlop_cmp cmp,
                                 const char *operand, char *errstr, size_t errsize)
{
    if ((unsigned)cmp > SL_YOP_MATCHES || !operand) {
        yop_err(errstr, errsize, "bad filter");
        return NULL;
    }
    sl_yamlop *op;
    if (target == SL_YOP_ON_JSON) {
        op = yop_new_json(YOP_FILTER, name, errstr, errsize);
    } else if (target == SL_YOP_ON_META || target == SL_YOP_ON_HEADER) {
        op = yop_new_attr(YOP_FILTER, target, name, errstr, errsize);
    } else {
        op = yop_new(YOP_FILTER);
        if (!op) {
            yop_err(errstr, errsize, "out of memory");
        }
    }
    if (!op) {
        return NULL;
    }
    op->target = target;
    op->cmp = cmp;
    op->operand = strdup(operand);
    if (!op->operand) {
        yop_err(errstr, errsize, "out of memory");
        sl_yamlops_destroy(op);
        return NULL;
    }
    op->operand_len = strlen(operand);
    op->operand_is_num = yop_parse_num(operand, op->operand_len, &op->num);
    if (cmp >= SL_YOP_GT && cmp <= SL_YOP_LE && !op->operand_is_num) {
        yop_err(errstr, errsize, "%s needs a number, got '%s'", yop_cmp_names[cmp], operand);
        sl_yamlops_destroy(op);
        return NULL;
    }
    if (cmp == SL_YOP_MATCHES) {
        int rc = regcomp(&op->regex, operand, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &op->regex, msg, sizeof(msg));
            yop_err(errstr, errsize, "bad regular expression '%s': %s", operand, msg);
            sl_yamlops_destroy(op);
            return NULL;
        }
        op->has_regex = true;
    }
    return op;
}

sl_yamlop *sl_yamlops_transform_new(const char *name, char *errstr, size_t errsize)
{
    yop_kind kind;
    if (name && strcmp(name, "lower") == 0) {
        kind = YOP_LOWER;
    } else if (name && strcmp(name, "upper") == 0) {
        kind = YOP_UPPER;
    } else if (name && strcmp(name, "trim") == 0) {
        kind = YOP_TRIM;
    } else {
        yop_err(errstr, errsize, "unknown map '%s' (valid: lower, upper, trim)", name ? name : "");
        return NULL;
    }
    sl_yamlop *op = yop_new(kind);
    if (!op) {
        yop_err(errstr, errsize, "out of memory");
    }
    return op;
}

/* ==== Burn (test only) ==== */

sl_yamlop *sl_yamlops_burn_new(int64_t per_record_us, const sl_yamlops_burn_step *schedule,
                               size_t nsteps, char *errstr, size_t errsize)
{
    if (per_record_us < 0 || per_record_us > SL_YAMLOPS_BURN_MAX_US) {
        yop_err(errstr, errsize, "per_record must be between 0us and 10s, got %" PRId64 "us",
                per_record_us);
        return NULL;
    }
    if (nsteps > SL_YAMLOPS_BURN_MAX_STEPS || (nsteps > 0 && !schedule)) {
        yop_err(errstr, errsize, "a schedule has at most %d steps", SL_YAMLOPS_BURN_MAX_STEPS);
        return NULL;
    }
    for (size_t i = 0; i < nsteps; i++) {
        if (schedule[i].after_ms < 0 ||
            (i > 0 && schedule[i].after_ms <= schedule[i - 1].after_ms)) {
            yop_err(errstr, errsize, "schedule step %zu: 'after' must be >= 0 and increase", i + 1);
            return NULL;
        }
        if (schedule[i].per_record_us < 0 || schedule[i].per_record_us > SL_YAMLOPS_BURN_MAX_US) {
            yop_err(errstr, errsize, "schedule step %zu: per_record must be between 0us and 10s",
                    i + 1);
            return NULL;
        }
    }
    sl_yamlop *op = yop_new(YOP_BURN);
    if (!op || !(op->first_ns = calloc(1, sizeof(*op->first_ns))) ||
        (nsteps > 0 && !(op->steps = malloc(nsteps * sizeof(*op->steps))))) {
        sl_yamlops_destroy(op);
        yop_err(errstr, errsize, "out of memory");
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

int64_t sl_yamlops_burn_cost_us(const sl_yamlop *op, int64_t elapsed_ms)
{
    int64_t us = op->burn_us;
    for (size_t i = 0; i < op->nsteps && elapsed_ms >= op->steps[i].after_ms; i++) {
        us = op->steps[i].per_record_us;
    }
    return us;
}

int sl_yamlops_parse_us(const char *s, int64_t *us)
{
    if (!s) {
        return SL_ERR_INVAL;
    }
    while (yop_is_space(*s)) {
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

static int64_t yop_clock_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sl_yamlops_burn_spin(int64_t us)
{
    if (us <= 0) {
        return;
    }
    int64_t until = yop_clock_ns(CLOCK_THREAD_CPUTIME_ID) + us * 1000;
    while (yop_clock_ns(CLOCK_THREAD_CPUTIME_ID) < until) {
        /* spin */
    }
}

int sl_yamlops_burn(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    (void)in;
    (void)out;
    (void)e;
    const sl_yamlop *op = opaque;
    int64_t us = op->burn_us;
    if (op->nsteps > 0) {
        int64_t now = yop_clock_ns(CLOCK_MONOTONIC);
        int64_t first = atomic_load(op->first_ns);
        if (first == 0 && !atomic_compare_exchange_strong(op->first_ns, &first, now)) {
            /* another thread was first: first holds its time */
        } else if (first == 0) {
            first = now;
        }
        us = sl_yamlops_burn_cost_us(op, (now - first) / 1000000);
    }
    sl_yamlops_burn_spin(us);
    return SL_OK;
}

void sl_yamlops_destroy(sl_yamlop *op)
{
    if (!op) {
        return;
    }
    free(op->delim);
    if (op->path) {
        for (size_t i = 0; i < op->depth; i++) {
            free(op->path[i]);
        }
        free(op->path);
    }
    free(op->operand);
    free(op->header);
    free(op->steps);
    free((void *)op->first_ns);
    if (op->has_regex) {
        regfree(&op->regex);
    }
    free(op);
}

int sl_yamlops_cmp_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(yop_cmp_names) / sizeof(yop_cmp_names[0]); i++) {
        if (strcmp(name, yop_cmp_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *sl_yamlops_cmp_name(sl_yamlop_cmp cmp)
{
    return (unsigned)cmp <= SL_YOP_MATCHES ? yop_cmp_names[cmp] : "?";
}

/* ==== Split ==== */

int sl_yamlops_split_next(const sl_yamlop *op, const char *s, size_t len, size_t *pos,
                          const char **tok, size_t *toklen)
{
    size_t p = *pos;
    if (!op->delim) {
        while (p < len && yop_is_space(s[p])) {
            p++;
        }
        if (p >= len) {
            *pos = len;
            return 0;
        }
        size_t start = p;
        while (p < len && !yop_is_space(s[p])) {
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

int sl_yamlops_flat_map(const sl_record *in, sl_emitter *e, void *opaque)
{
    const sl_yamlop *op = opaque;
    size_t pos = 0;
    const char *tok;
    size_t toklen;
    const char *s = in->value ? in->value : "";
    while (sl_yamlops_split_next(op, s, in->value_len, &pos, &tok, &toklen)) {
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

/* ==== Key, value and transforms ==== */

/* Sets out's key or value bytes (to_key) to the text of the JSON field at op->path. */
static int yop_apply_json_text(const sl_yamlop *op, const sl_record *in, sl_record *out,
                               bool to_key, sl_yamlops_alloc_fn alloc, void *arg)
{
    json_t *root = yop_json_load(in);
    if (!root) {
        return SL_ERR_RECORD;
    }
    json_t *v = yop_json_field(op, root);
    if (!v) {
        json_decref(root);
        return SL_ERR_RECORD;
    }
    char buf[64];
    char *heap;
    size_t len;
    const char *text = yop_json_text(v, buf, sizeof(buf), &len, &heap);
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
    json_t *root = yop_json_load(in);
    if (!root) {
        return SL_ERR_RECORD;
    }
    json_t *v = yop_json_field(op, root);
    yop_num n;
    bool ok = v && yop_json_num(v, &n);
    json_decref(root);
    if (!ok) {
        return SL_ERR_RECORD;
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
    if (!yop_attr_get(op, in, &a)) {
        return SL_ERR_RECORD;
    }
    if (as_num) {
        yop_num n;
        if (!yop_attr_num(&a, &n)) {
            return SL_ERR_RECORD;
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
        yop_attr_text(&a, buf, sizeof(buf), &t, &len);
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

int sl_yamlops_apply(const sl_yamlop *op, const sl_record *in, sl_record *out,
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
    case YOP_VALUE_JSON_NUM: return yop_apply_json_num(op, in, out);
    case YOP_VALUE_JSON_TEXT: return yop_apply_json_text(op, in, out, false, alloc, arg);
    case YOP_LOWER:
    case YOP_UPPER: return yop_apply_case(op, in, out, alloc, arg);
    case YOP_TRIM: {
        const char *s = in->value;
        uint32_t len = in->value_len;
        while (len > 0 && yop_is_space(*s)) {
            s++;
            len--;
        }
        while (len > 0 && yop_is_space(s[len - 1])) {
            len--;
        }
        out->value = s;
        out->value_len = len;
        return SL_OK;
    }
    case YOP_BURN: return sl_yamlops_burn(in, out, NULL, (void *)op);
    default: return SL_ERR_INVAL;
    }
}

static void *yop_emitter_alloc(void *arg, size_t size)
{
    return sl_emitter_alloc(arg, size);
}

int sl_yamlops_map(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    return sl_yamlops_apply(opaque, in, out, yop_emitter_alloc, e);
}

/* ==== Filter ==== */

/* Applies a text comparison (equals, not_equals, contains, matches) to s[0..len). */
static int yop_filter_text(const sl_yamlop *op, const char *s, size_t len)
{
    switch (op->cmp) {
    case SL_YOP_EQUALS: return len == op->operand_len && memcmp(s, op->operand, len) == 0;
    case SL_YOP_NOT_EQUALS: return !(len == op->operand_len && memcmp(s, op->operand, len) == 0);
    case SL_YOP_CONTAINS:
        return op->operand_len == 0 || (len > 0 && memmem(s, len, op->operand, op->operand_len));
    case SL_YOP_MATCHES: {
#ifdef REG_STARTEND
        regmatch_t m[1];
        m[0].rm_so = 0;
        m[0].rm_eo = (regoff_t)len;
        return regexec(&op->regex, len ? s : "", 1, m, REG_STARTEND) == 0;
#else
        char small[256];
        char *buf = len < sizeof(small) ? small : malloc(len + 1);
        if (!buf) {
            return SL_ERR_NOMEM;
        }
        memcpy(buf, s, len);
        buf[len] = '\0';
        int rc = regexec(&op->regex, buf, 0, NULL, 0) == 0;
        if (buf != small) {
            free(buf);
        }
        return rc;
#endif
    }
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
    json_t *root = yop_json_load(in);
    if (!root) {
        return SL_ERR_RECORD;
    }
    json_t *v = yop_json_field(op, root);
    int rc;
    if (!v) {
        /* An absent field equals nothing. */
        rc = op->cmp == SL_YOP_NOT_EQUALS;
    } else if (yop_cmp_is_numeric(op->cmp)) {
        yop_num n;
        rc = yop_json_num(v, &n) ? yop_filter_num(op, &n) : SL_ERR_RECORD;
    } else if ((op->cmp == SL_YOP_EQUALS || op->cmp == SL_YOP_NOT_EQUALS) && json_is_number(v) &&
               op->operand_is_num) {
        yop_num n;
        yop_json_num(v, &n);
        rc = yop_filter_num(op, &n);
    } else {
        char buf[64];
        char *heap;
        size_t len;
        const char *text = yop_json_text(v, buf, sizeof(buf), &len, &heap);
        rc = text ? yop_filter_text(op, text, len) : SL_ERR_NOMEM;
        free(heap);
    }
    json_decref(root);
    return rc;
}

static int yop_filter_attr(const sl_yamlop *op, const sl_record *in)
{
    yop_attr a;
    if (!yop_attr_get(op, in, &a)) {
        return op->cmp == SL_YOP_NOT_EQUALS; /* like a missing JSON field */
    }
    yop_num n;
    if (yop_cmp_is_numeric(op->cmp)) {
        return yop_attr_num(&a, &n) ? yop_filter_num(op, &n) : SL_ERR_RECORD;
    }
    if (a.is_num && op->operand_is_num &&
        (op->cmp == SL_YOP_EQUALS || op->cmp == SL_YOP_NOT_EQUALS)) {
        return yop_filter_num(op, &a.num);
    }
    char buf[32];
    const char *t;
    size_t len;
    yop_attr_text(&a, buf, sizeof(buf), &t, &len);
    return yop_filter_text(op, t, len);
}

int sl_yamlops_filter(const sl_record *in, void *opaque)
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
        } else if (!yop_parse_num(s, len, &n)) {
            return SL_ERR_RECORD;
        }
        return yop_filter_num(op, &n);
    }
    return yop_filter_text(op, s, len);
}

/* ==== Running aggregates ==== */

sl_yamlop *sl_yamlops_running_new(const char *fn, char *errstr, size_t errsize)
{
    sl_reduce_fn reduce;
    if (fn && (strcmp(fn, "sum") == 0 || strcmp(fn, "count") == 0)) {
        reduce = sl_reduce_sum;
    } else if (fn && strcmp(fn, "min") == 0) {
        reduce = sl_reduce_min;
    } else if (fn && strcmp(fn, "max") == 0) {
        reduce = sl_reduce_max;
    } else {
        yop_err(errstr, errsize, "unknown running function '%s' (valid: sum, count, min, max)",
                fn ? fn : "");
        return NULL;
    }
    sl_yamlop *op = yop_new(YOP_RUNNING);
    if (!op) {
        yop_err(errstr, errsize, "out of memory");
        return NULL;
    }
    op->reduce = reduce;
    return op;
}

int sl_yamlops_running(const sl_record *in, sl_state *state, sl_emitter *e, void *opaque)
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

/* sl_yamlops_int.h -- internals of the YAML ops shared by sl_yamlops.c and sl_yamlops_*.c. */
#ifndef SL_YAMLOPS_INT_H
#define SL_YAMLOPS_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sl_util.h"
#include "sl_yamlops.h"

typedef enum yop_kind {
    YOP_SPLIT,
    YOP_KEY_VALUE,
    YOP_KEY_JSON,
    YOP_VALUE_LITERAL,
    YOP_VALUE_NUM, /* typed value from the number the value bytes hold as text */
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
    YOP_TIMESTAMP,
    YOP_PARSE, /* sl_yamlops_parse.c */
    YOP_SHAPE, /* sl_yamlops_shape.c */
} yop_kind;

/* The timestamp op's formats: epoch numbers in a unit, RFC 3339, a strptime pattern. */
typedef enum yop_ts_format {
    YOP_TS_S,
    YOP_TS_MS,
    YOP_TS_US,
    YOP_TS_NS,
    YOP_TS_RFC3339,
    YOP_TS_PATTERN,
} yop_ts_format;

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
    /* JSON path */
    sl_jpath path;
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
    struct yop_re *re; /* filter matches, parse (PCRE2) */
    /* running */
    sl_reduce_fn reduce;
    /* burn */
    int64_t burn_us;
    sl_yamlops_burn_step *steps;
    size_t nsteps;
    _Atomic int64_t *first_ns; /* CLOCK_MONOTONIC of the first record, 0 before */
    /* timestamp (target: SL_YOP_ON_VALUE, _JSON or _HEADER) */
    yop_ts_format ts_format;
    char *ts_pattern;
    /* parse (captures, format) and the JSON shaping steps (set, rename, drop, keep) run on
     * the value's object; a parse op may carry the steps of the shaping ops after it */
    struct yop_parse *parse;
    struct yop_shape *shape;
};

/* An attribute of a record as the ops see it: an integer, or text borrowed from the record
 * (whose bytes live as long as the batch's data). */
typedef struct yop_attr {
    bool is_num;
    yop_num num;
    const char *s;
    size_t len;
} yop_attr;

/* ==== Helpers (sl_yamlops.c) ==== */

/* Formats an error into errstr (if not NULL). */
void sl__yamlops_err(char *errstr, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A zeroed op of kind; NULL when out of memory. */
sl_yamlop *sl__yamlops_new(yop_kind kind);
/* ASCII whitespace. */
bool sl__yamlops_is_space(char c);
/* Parses s[0..len) as a decimal number (see its definition); true and *n on success. */
bool sl__yamlops_parse_num(const char *s, size_t len, yop_num *n);
/* Builds an op of kind that reads the JSON field at path; NULL with errstr set on failure. */
sl_yamlop *sl__yamlops_new_json(yop_kind kind, const char *path, char *errstr, size_t errsize);
/* The record's value parsed as JSON; NULL for malformed JSON. */
json_t *sl__yamlops_json_load(const sl_record *in);
/* The number held by a JSON value: a number, or a string holding one. */
bool sl__yamlops_json_num(json_t *v, yop_num *n);
/* The text of a JSON value (small texts in buf, larger ones in *heap, to be freed); NULL when
 * out of memory. */
const char *sl__yamlops_json_text(json_t *v, char *buf, size_t bufsize, size_t *len, char **heap);

/* ==== Record attributes (sl_yamlops_attr.c) ==== */

/* Reads op's attribute (SL_YOP_ON_META or SL_YOP_ON_HEADER) of in. false when in has none. */
bool sl__yamlops_attr_get(const sl_yamlop *op, const sl_record *in, yop_attr *a);
/* The text of an attribute: an integer is formatted into buf. */
void sl__yamlops_attr_text(const yop_attr *a, char *buf, size_t size, const char **s, size_t *len);
/* The number an attribute holds: an integer, or text holding a number. */
bool sl__yamlops_attr_num(const yop_attr *a, yop_num *n);
/* Builds an op of kind that reads an attribute (target SL_YOP_ON_META or _HEADER). */
sl_yamlop *sl__yamlops_new_attr(yop_kind kind, sl_yamlop_target target, const char *name,
                                char *errstr, size_t errsize);

/* ==== Regular expressions (PCRE2, sl_yamlops_parse.c) ==== */

typedef struct yop_re yop_re;

/* Compiles pattern (JIT when available); NULL with "MESSAGE at offset N" in errstr. */
yop_re *sl__yamlops_re_new(const char *pattern, char *errstr, size_t errsize);
/* 1 when re matches somewhere in s[0..len), 0 when not, SL_ERR_RECORD (with the reject
 * reason set) when the match gave up (its step limit). Thread-safe. */
int sl__yamlops_re_find(const yop_re *re, const char *s, size_t len);
void sl__yamlops_re_free(yop_re *re);

/* ==== Parse and shaping ops (sl_yamlops_parse.c, sl_yamlops_shape.c) ==== */

int sl__yamlops_parse_apply(const sl_yamlop *op, const sl_record *in, sl_record *out,
                            sl_yamlops_alloc_fn alloc, void *arg);
void sl__yamlops_parse_free(struct yop_parse *pp);
int sl__yamlops_shape_apply(const sl_yamlop *op, const sl_record *in, sl_record *out,
                            sl_yamlops_alloc_fn alloc, void *arg);
/* Runs the steps of sh on the object root. SL_OK, or SL_ERR_RECORD with the reason set. */
int sl__yamlops_shape_run(const struct yop_shape *sh, json_t *root);
/* Encodes root (compact) into out's value bytes. SL_OK, SL_ERR_NOMEM, or SL_ERR_RECORD. */
int sl__yamlops_json_out(json_t *root, sl_record *out, sl_yamlops_alloc_fn alloc, void *arg);
void sl__yamlops_shape_free(struct yop_shape *sh);

/* ==== Rejections: each says why (sl_reject_reason) and returns SL_ERR_RECORD ==== */

/* have_root false: "the value is not JSON"; else "missing JSON field 'PATH'" (a NULL or
 * empty path: "the value is not a JSON object"). sl_yamlops.c */
int sl__yamlops_reject_json(const sl_jpath *path, bool have_root);
/* "JSON field 'PATH' is 'abc', not a number". sl_yamlops.c */
int sl__yamlops_reject_json_nan(const sl_jpath *path, json_t *v);
/* Up to 40 bytes of s (then "..."), bytes outside printable ASCII as '?', into buf (size >=
 * 48), for the reasons. */
const char *sl__yamlops_preview(const char *s, size_t len, char *buf, size_t size);
/* "WHAT 'abc' is not a number" (s as sl__yamlops_preview writes it). */
int sl__yamlops_reject_nan(const char *what, const char *s, size_t len);
/* "no header 'NAME'" or "the record has no partition" (op's attribute). sl_yamlops_attr.c */
int sl__yamlops_reject_attr(const sl_yamlop *op);
/* "header 'NAME' 'abc' is not a number". sl_yamlops_attr.c */
int sl__yamlops_reject_attr_nan(const sl_yamlop *op, const yop_attr *a);

#endif /* SL_YAMLOPS_INT_H */

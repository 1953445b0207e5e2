/* sl_yamlops.h -- the built-in operations of the YAML front end (split, key, value, filter,
 * map, timestamp, running, parse, the JSON shaping ops set, rename, drop and keep, and the
 * test-only burn), written as ordinary operator functions of the public API.
 *
 * An operation is described by an sl_yamlop, built once at load time (regular expressions
 * compiled, JSON paths split, literals parsed). The operator functions below take it as
 * their opaque argument: sl_stream_flat_map(s, sl__yamlops_flat_map, op) and so on. They
 * only read the op, so one op may be used by every worker thread at once.
 *
 * Ownership: an sl_yamlop must outlive every stream that uses it (the config that made it
 * is destroyed after the context). sl__yamlops_destroy() accepts NULL.
 *
 * Records the functions reject (malformed JSON, a missing field where one is needed, a
 * field that is not a number where one is needed) make them return SL_ERR_RECORD, which the
 * engine counts as a failed record, logged with the reason they give (sl_reject_reason);
 * processing goes on.
 */
#ifndef SL_YAMLOPS_H
#define SL_YAMLOPS_H

#include "sluice.h"

typedef struct sl_yamlop sl_yamlop;

/* What a filter compares. */
typedef enum sl_yamlop_cmp {
    SL_YOP_EQUALS,
    SL_YOP_NOT_EQUALS,
    SL_YOP_GT,
    SL_YOP_GE,
    SL_YOP_LT,
    SL_YOP_LE,
    SL_YOP_CONTAINS,
    SL_YOP_MATCHES, /* PCRE2 regular expression, unanchored */
} sl_yamlop_cmp;

/* What a filter, a key or a value op looks at. */
typedef enum sl_yamlop_target {
    SL_YOP_ON_VALUE,  /* the value bytes (the typed value for numeric compares, if set) */
    SL_YOP_ON_KEY,    /* the key bytes */
    SL_YOP_ON_JSON,   /* a field of the value parsed as JSON */
    SL_YOP_ON_META,   /* where the record came from, or its timestamp (sl_yamlop_meta) */
    SL_YOP_ON_HEADER, /* a Kafka header's value (the last header of that name) */
} sl_yamlop_target;

/* The record attributes SL_YOP_ON_META reads, by their YAML names. partition, offset and
 * timestamp are integers; topic and source are text. A record without the attribute (no
 * meta, a NULL topic, a partition or offset of -1) does not have it. */
typedef enum sl_yamlop_meta {
    SL_YOP_META_TOPIC,     /* "topic": Kafka topic, file name or peer address */
    SL_YOP_META_PARTITION, /* "partition" */
    SL_YOP_META_OFFSET,    /* "offset": Kafka offset, or line number in a file */
    SL_YOP_META_SOURCE,    /* "source": the input's name */
    SL_YOP_META_TIMESTAMP, /* "timestamp": the record's timestamp, ms since the epoch */
} sl_yamlop_meta;

/* The attribute named name, or -1. */
int sl__yamlops_meta_from_name(const char *name);
/* The valid names, for error messages: "topic, partition, offset, source, timestamp". */
const char *sl__yamlops_meta_names(void);
/* True for the integer attributes (partition, offset, timestamp). */
bool sl__yamlops_meta_is_number(sl_yamlop_meta m);

/* ==== Constructors: NULL with errstr set on a bad argument ==== */

/* split: delim NULL splits on runs of ASCII whitespace; otherwise on every occurrence of
 * the delimiter bytes. Empty tokens are dropped. Each token becomes the value of a record
 * that otherwise copies the input (key, timestamp, meta); the typed value is cleared. */
sl_yamlop *sl__yamlops_split_new(const char *delim, char *errstr, size_t errsize);
/* key: json_path NULL sets the key to the value bytes; otherwise to the text of the JSON
 * field at the dotted path (user.id; a number segment indexes an array: items.0.sku). */
sl_yamlop *sl__yamlops_key_new(const char *json_path, char *errstr, size_t errsize);
/* key from another attribute: target SL_YOP_ON_VALUE (name NULL: as sl__yamlops_key_new(NULL)),
 * SL_YOP_ON_JSON (name: the path), SL_YOP_ON_META (name: topic, partition, offset, source or
 * timestamp; numbers become their decimal text) or SL_YOP_ON_HEADER (name: the header's
 * name; a null value gives an empty key). A record without the attribute is rejected. */
sl_yamlop *sl__yamlops_key_from_new(sl_yamlop_target target, const char *name, char *errstr,
                                    size_t errsize);
/* timestamp: the record's time (ts, ms) from target SL_YOP_ON_VALUE (name NULL: the value
 * bytes), SL_YOP_ON_JSON (name: the path; a JSON number or string) or SL_YOP_ON_HEADER, in
 * format "s", "ms", "us", "ns" (epoch numbers; seconds may have a fraction), "rfc3339" (also
 * ISO 8601 with a space, a comma, no seconds or no offset: UTC) or a strptime pattern (any
 * text with a '%'; UTC unless it has %z). A record without a valid time is rejected. */
sl_yamlop *sl__yamlops_timestamp_new(sl_yamlop_target target, const char *name, const char *format,
                                     char *errstr, size_t errsize);
int sl__yamlops_timestamp(const sl_yamlop *op, const sl_record *in, sl_record *out);
/* value: a literal typed value, "1" (int) or "0.5" (double). */
sl_yamlop *sl__yamlops_value_literal_new(const char *literal, char *errstr, size_t errsize);
/* value: from a JSON field; as_text false sets the typed value from a number (or a string
 * holding a number), true sets the value bytes to the field's text. */
sl_yamlop *sl__yamlops_value_json_new(const char *json_path, bool as_text, char *errstr,
                                      size_t errsize);
/* value from another attribute: target SL_YOP_ON_VALUE (name NULL; as_text false: the typed
 * value from the decimal number the value bytes hold, an int when it is one that fits, else
 * a double, ASCII whitespace around it allowed; the bytes stay), SL_YOP_ON_JSON (as
 * sl__yamlops_value_json_new), SL_YOP_ON_META or SL_YOP_ON_HEADER with its name. as_text
 * false sets the typed value from an integer attribute or from text holding a number (topic
 * and source: SL_ERR_INVAL here); true sets the value bytes to its text (a null header
 * value: empty). A record without the attribute, or whose text is not a number where one is
 * needed, is rejected. */
sl_yamlop *sl__yamlops_value_from_new(sl_yamlop_target target, const char *name, bool as_text,
                                      char *errstr, size_t errsize);
/* filter: target, name (the JSON path for SL_YOP_ON_JSON, the attribute for SL_YOP_ON_META,
 * the header for SL_YOP_ON_HEADER, else NULL), comparison and operand. GT..LE need a numeric
 * operand; MATCHES compiles the operand as a PCRE2 regex (bytes, no UTF-8 mode). Integer attributes
 * compare as numbers with GT..LE and with a numeric operand, else as their decimal text; headers
 * and text attributes compare as text (as numbers with GT..LE). A missing JSON field, header or
 * attribute matches no comparison but not_equals; a null header value compares as empty. */
sl_yamlop *sl__yamlops_filter_new(sl_yamlop_target target, const char *name, sl_yamlop_cmp cmp,
                                  const char *operand, char *errstr, size_t errsize);
/* map: "lower", "upper" (ASCII) or "trim" (ASCII whitespace at both ends) of the value. */
sl_yamlop *sl__yamlops_transform_new(const char *name, char *errstr, size_t errsize);

/* running: a running sum, count, min or max per key (count is a sum of 1s: map the typed
 * value to 1 first), for sl_stream_map_with_state. */
sl_yamlop *sl__yamlops_running_new(const char *fn, char *errstr, size_t errsize);

/* burn (test only): costs per_record_us of CPU time per record (a busy loop on the
 * thread's CPU clock, never a sleep) and passes the record on unchanged, so that a
 * pipeline's capacity is known. schedule (nsteps entries, after_ms strictly increasing,
 * may be NULL when nsteps is 0) changes the cost once after_ms have passed since the first
 * record the op saw (on any thread): the last step whose after_ms has passed applies. */
typedef struct sl_yamlops_burn_step {
    int64_t after_ms;
    int64_t per_record_us;
} sl_yamlops_burn_step;

#define SL_YAMLOPS_BURN_MAX_STEPS 64
#define SL_YAMLOPS_BURN_MAX_US    10000000 /* 10 s per record */

sl_yamlop *sl__yamlops_burn_new(int64_t per_record_us, const sl_yamlops_burn_step *schedule,
                                size_t nsteps, char *errstr, size_t errsize);
/* The cost (us per record) in force elapsed_ms after the first record. */
int64_t sl__yamlops_burn_cost_us(const sl_yamlop *op, int64_t elapsed_ms);
/* Parses a per-record cost: 20us, 0.5ms, 1s, or a bare number of microseconds; 0 allowed.
 * Returns SL_OK or SL_ERR_INVAL. */
int sl__yamlops_parse_us(const char *s, int64_t *us);
/* Busy-loops for us microseconds of the calling thread's CPU time. */
void sl__yamlops_burn_spin(int64_t us);
/* For sl_stream_map with a burn op (sl__yamlops_map does the same). Thread-safe. */
int sl__yamlops_burn(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque);

/* ==== parse and the JSON shaping ops (set, rename, drop, keep) ====
 * They read the value as a JSON object (parse: with json:) and write it back, compact. A
 * record they cannot process is rejected with the reason (sl_reject_reason). */

/* A capture's type in a parse op: "string" (the default), "int", "float" or "bool". */
typedef struct sl_yamlops_capture_type {
    const char *name; /* the capture's name */
    const char *type;
} sl_yamlops_capture_type;

/* parse: matches regex (PCRE2, named captures (?<name>...)) or the named format (see
 * sl__yamlops_parse_formats; exactly one of the two) against target's text: the value
 * (SL_YOP_ON_VALUE), the key (SL_YOP_ON_KEY) or the JSON field at path (SL_YOP_ON_JSON). The
 * named captures that took part in the match become the fields of a JSON object, in the
 * pattern's order: the new value, or, for SL_YOP_ON_JSON, added to the value's object.
 * types (ntypes entries, may be NULL) convert captures; a typed capture of "" or "-" is
 * null. A record that does not match, or whose typed capture does not convert, is
 * rejected. NULL with errstr set ("... at offset N" for a bad regex). */
sl_yamlop *sl__yamlops_parse_new(sl_yamlop_target target, const char *path, const char *regex,
                                 const char *format, const sl_yamlops_capture_type *types,
                                 size_t ntypes, char *errstr, size_t errsize);
/* The formats parse knows: "nginx_combined, apache_combined, apache_common, syslog_rfc5424". */
const char *sl__yamlops_parse_formats(void);

/* set: the field at the dotted path field (objects created on the way) from exactly one
 * of: from (another field's path; missing: rejected), literal_json (JSON text: 1, "a",
 * true, null, {...}) or expr (numbers, field paths, + - * / and parentheses; see
 * sl_yamlops_shape.c). */
sl_yamlop *sl__yamlops_set_new(const char *field, const char *from, const char *literal_json,
                               const char *expr, char *errstr, size_t errsize);
/* rename: moves the field at from to to (replacing what is there); a missing from: as is. */
sl_yamlop *sl__yamlops_rename_new(const char *from, const char *to, char *errstr, size_t errsize);
/* drop (keep false): removes the fields at paths (missing ones: nothing); keep (true):
 * keeps only them (the missing ones stay missing). */
sl_yamlop *sl__yamlops_drop_new(const char *const *paths, size_t npaths, bool keep, char *errstr,
                                size_t errsize);
/* True for a parse or shaping op that the steps of a following shaping op can join. */
bool sl__yamlops_shape_can_fuse(const sl_yamlop *op);
/* Moves the steps of the shaping op next (destroyed by this call) to the end of op's, so
 * that the value is decoded and encoded once for both. SL_OK or SL_ERR_NOMEM (then nothing
 * changed and next is still the caller's). */
int sl__yamlops_shape_fuse(sl_yamlop *op, sl_yamlop *next);

void sl__yamlops_destroy(sl_yamlop *op);

/* Names of comparisons as written in YAML ("equals", "gt", ...); -1 if unknown. */
int sl__yamlops_cmp_from_name(const char *name);
const char *sl__yamlops_cmp_name(sl_yamlop_cmp cmp);

/* ==== Operator functions (opaque is the sl_yamlop) ==== */

/* For sl_stream_flat_map with a split op. */
int sl__yamlops_flat_map(const sl_record *in, sl_emitter *e, void *opaque);
/* For sl_stream_key_by (key op), sl_stream_map_values (value op) and sl_stream_map
 * (transform or burn op). */
int sl__yamlops_map(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque);
/* For sl_stream_filter with a filter op: 1 keeps, 0 drops, SL_ERR_RECORD fails. */
int sl__yamlops_filter(const sl_record *in, void *opaque);
/* For sl_stream_map_with_state with a running op: folds the record's typed value into the
 * key's state and emits (key, the new aggregate, ts = batch time); expiring keys emit
 * nothing. Meant to follow a reduce_by_key with the same function (one record per key and
 * batch, so one output per key and batch). */
int sl__yamlops_running(const sl_record *in, sl_state *state, sl_emitter *e, void *opaque);

/* The YAML join's function (sl_yamlops_join.c): when the left value and the right one (or a
 * missing right of a left join) are JSON objects, the output value is the object
 * {"left": LEFT, "right": RIGHT} (RIGHT null when missing), each side's bytes as they came;
 * otherwise "(left,right)" as without a function (sl__join_text). The typed value is the
 * left one's. Thread-safe; opaque unused. */
int sl__yamlops_join(const sl_record *l, const sl_record *r, sl_record *out, sl_emitter *e,
                     void *opaque);

/* ==== The same without an emitter (what the functions above use; unit tests call them) ==== */

/* Allocates size bytes that live as long as the output record. NULL when out of memory. */
typedef void *(*sl_yamlops_alloc_fn)(void *arg, size_t size);

/* Applies a key, value, transform or burn op: *out must start as a copy of *in. Returns SL_OK,
 * SL_ERR_RECORD for a record the op rejects, or SL_ERR_NOMEM. */
int sl__yamlops_apply(const sl_yamlop *op, const sl_record *in, sl_record *out,
                      sl_yamlops_alloc_fn alloc, void *arg);
/* Iterates the tokens of a split op over s[0..len): start with *pos = 0; returns 1 and the
 * token in *tok and *toklen, or 0 at the end. */
int sl__yamlops_split_next(const sl_yamlop *op, const char *s, size_t len, size_t *pos,
                           const char **tok, size_t *toklen);

#endif /* SL_YAMLOPS_H */

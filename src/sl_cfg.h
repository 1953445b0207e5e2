/* sl_cfg.h -- internals of the YAML front end shared by sl_config.c and sl_cfg_*.c. */
#ifndef SL_CFG_H
#define SL_CFG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <yaml.h>

#include "sl_config.h"
#include "sl_util.h"
#include "sl_reducers.h"
#include "sl_yamlops.h"

#define CFG_MAX_PARTITIONS 4096
#define CFG_MAX_WORKERS    256
#define CFG_MIN_BATCH_MS   10

/* ==== The in-memory description ==== */

typedef struct cfg_loc {
    int line; /* 1-based */
    int col;  /* 1-based */
} cfg_loc;

/* A reference to a source or stream by name, resolved to an index: sources first, then
 * streams (idx - nsources). */
typedef struct cfg_ref {
    char *name;
    cfg_loc loc;
    size_t idx;
} cfg_ref;

/* A source or a sink: a connector instance. */
typedef struct cfg_endpoint {
    char *name;
    char *type;
    unsigned role; /* SL_SOURCE or SL_SINK */
    cfg_loc loc;
    const sl_connector *conn;
    sl_options *opts;
    cfg_ref from;    /* sinks */
    char **opt_keys; /* the options as written, and where their values are */
    cfg_loc *opt_locs;
    size_t nopt_locs;
    char **flat_keys; /* dotted names of nested options (errors: {tolerance: none}) */
    size_t nflat;
    struct cfg_kv *kv; /* the options as written, nested ones flattened (cfg_flatten) */
} cfg_endpoint;

typedef struct cfg_op cfg_op;
typedef struct cfg_parser cfg_parser;

/* Flags of an op in the op table (sl__cfg_ops). */
#define CFG_OP_ARG_OPTIONAL 0x1u /* may be written without an argument ("- count") */
#define CFG_OP_WINDOWED     0x2u /* length and slide: multiples of the parent's slide */
#define CFG_OP_STATEFUL     0x4u /* keeps state across batches: needs app.checkpoint_dir */
#define CFG_OP_JOINS        0x8u /* reads a second stream, op->with (resolved, same slide) */

#define CFG_OP_MAX_FORMS 6 /* ways to write an op (cfg_op_def.forms) */

/* One YAML operation: everything about it is this entry and its two functions. */
typedef struct cfg_op_def {
    const char *name; /* the key in ops: */
    unsigned flags;   /* CFG_OP_* */
    /* Checks the argument (NULL when absent and CFG_OP_ARG_OPTIONAL) and fills op,
     * including op->desc, the line sluice check prints. SL_OK or sl__cfg_error's code. */
    int (*parse)(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
    /* Builds the op on s through the public API; handles are the built sources and
     * streams by cfg_ref index. NULL when the engine refuses. */
    sl_stream *(*apply)(const cfg_op *op, sl_stream *s, sl_stream *const *handles);
    /* The ways to write it (the syntax), NULL after the last unless all are used. */
    const char *forms[CFG_OP_MAX_FORMS];
    const char *doc; /* what it does (Markdown), for sluice ops and the README */
} cfg_op_def;

struct cfg_op {
    const cfg_op_def *def;
    cfg_loc loc;
    char *desc;     /* as printed by sl__config_print_graph */
    sl_yamlop *yop; /* split, key, value, filter, map, burn; value 1 for a count reducer */
    sl_reduce_fn reduce;
    int partitions;      /* 0: the context's default */
    int64_t length_ms;   /* window */
    int64_t slide_ms;    /* window; 0: the parent's slide */
    cfg_ref with;        /* join */
    bool left;           /* join */
    bool inverse;        /* reduce_by_key_and_window */
    bool drop_zero;      /* reduce_by_key_and_window */
    bool keyed;          /* reduce_by_key_and_window: each key's window as keyed state */
    bool event_time;     /* reduce_by_key_and_window: windows of the records' own time */
    int64_t disorder_ms; /* event_time: max_out_of_orderness */
    int64_t lateness_ms; /* event_time: allowed_lateness */
    int64_t idle_ms;     /* event_time: idle_timeout */
    int64_t gap_ms;      /* event_time: session windows' gap; 0: length and slide */
    int64_t offset_ms;   /* windows: their alignment's offset (any sign) */
    /* event_time: late: NAME (owned); the op of a late stream: its window's (borrowed) */
    struct cfg_late *late;
    const struct cfg_late *late_of;
    int64_t ttl_ms;    /* running; 0: none */
    sl_yamlop *run;    /* running */
    bool reads_header; /* key, value, filter: {header: NAME} */
    /* avg, first, last, count_distinct (sl_reducers.h); NULL for the others */
    const sl_reducer *agg;
    /* the Lua form of an op ({lua: CODE}, sl_cfg_lua.c) */
    struct sl_lua_fn *lua;
};

/* The late output of an event-time window: the stream NAME its op makes, built with it. */
typedef struct cfg_late {
    char *name;
    size_t stream;   /* the stream whose op it is (index in streams) */
    sl_stream *node; /* set when the window is built */
} cfg_late;

typedef struct cfg_stream {
    char *name;
    cfg_loc loc;
    cfg_loc from_loc;
    cfg_ref *from;
    size_t nfrom;
    cfg_op *ops;
    size_t nops;
    int64_t slide_ms; /* computed at load */
} cfg_stream;

struct sl_config {
    char *path;
    cfg_loc app_loc;
    /* app: read through sl__cfg_app_options (offsets into this struct) */
    char *name;
    int64_t batch_ms;
    int64_t workers;
    char *checkpoint_dir;
    int64_t block_ms;
    int64_t window_offset_ms; /* the offset of the processing-time windows (they agree) */
    int64_t stop_timeout_ms;
    int64_t partitions;
    int log_level; /* index in sl__cfg_app_options' log_level choices, -1: not given */
    sl_backpressure_conf backpressure;
    cfg_endpoint *sources;
    size_t nsources;
    cfg_stream *streams;
    size_t nstreams;
    cfg_endpoint *sinks;
    size_t nsinks;
    size_t *order; /* stream indexes in build order */
    bool has_http; /* an http: section (sl__config_http) */
    /* http: read through sl__cfg_http_options */
    bool http_enabled;
    bool http_allow_remote;
    char *http_listen;
    char *http_token; /* secret: never printed */
};

/* ==== Parser state ==== */

/* Names to indexes, open addressing: the keys are borrowed from the config. */
typedef struct cfg_names {
    const char **keys; /* NULL: an empty slot */
    size_t *idx;
    size_t cap; /* a power of two, or 0 */
    size_t n;
} cfg_names;

struct cfg_parser {
    const char *path;
    const char *src; /* the text as read, for clamping error locations */
    size_t srclen;
    yaml_document_t doc;
    bool has_doc;
    char **text; /* expanded text of each scalar node, by node id - 1 */
    size_t nnodes;
    char *errstr;
    size_t errsize;
    bool failed;
    sl_config *cfg;
    cfg_names names[2]; /* [0] sources and streams (cfg_ref indexes), [1] sinks */
};

/* ==== YAML nodes, scalars and errors (sl_cfg_yaml.c) ==== */

/* Writes "PATH:LINE:COL: error: MESSAGE" into errstr for the first error only. Returns
 * SL_ERR_INVAL so callers can `return sl__cfg_error(...)`. */
int sl__cfg_error(cfg_parser *p, cfg_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A malloc'ed formatted string, NULL when out of memory. */
char *sl__cfg_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
cfg_loc sl__cfg_loc_of(const yaml_node_t *n);
cfg_loc sl__cfg_loc_at(size_t line0, size_t col0);
yaml_node_t *sl__cfg_node(cfg_parser *p, int id);
/* The expanded text of a scalar node. */
const char *sl__cfg_text(cfg_parser *p, const yaml_node_t *n);
/* "a mapping", "a list" or "a scalar", for messages. */
const char *sl__cfg_kind(const yaml_node_t *n);
/* A plain empty value, ~ or null. */
bool sl__cfg_is_null(cfg_parser *p, const yaml_node_t *n);
bool sl__cfg_in_list(const char *s, const char *const *list);
/* Joins list with ", " into buf. */
const char *sl__cfg_join(const char *const *list, char *buf, size_t size);
/* Reports an unknown key (or name) with a suggestion and the valid ones. */
int sl__cfg_unknown(cfg_parser *p, cfg_loc loc, const char *what, const char *s, const char *where,
                    const char *const *valid);
/* Checks that map is a mapping whose keys are scalars, not repeated, and in valid (a
 * NULL-terminated list; NULL accepts any key). where names the mapping in messages. */
int sl__cfg_check_map(cfg_parser *p, yaml_node_t *map, const char *where, const char *const *valid);
/* The value (or the key node) of key in a (checked) mapping, or NULL. */
yaml_node_t *sl__cfg_get(cfg_parser *p, yaml_node_t *map, const char *key);
yaml_node_t *sl__cfg_get_key(cfg_parser *p, yaml_node_t *map, const char *key);
/* The text of a scalar value; an error if n is not a scalar or is empty. */
int sl__cfg_scalar(cfg_parser *p, yaml_node_t *n, const char *what, const char **out);
/* A required or optional key's scalar: *out stays NULL when absent (and not required). */
int sl__cfg_key_scalar(cfg_parser *p, yaml_node_t *map, const char *key, const char *where,
                       bool required, const char **out, yaml_node_t **node);
int sl__cfg_int(cfg_parser *p, yaml_node_t *n, const char *what, int64_t min, int64_t max,
                int64_t *out);
/* A non-negative number (a rate or a PID gain), or, with positive, > 0. */
int sl__cfg_number(cfg_parser *p, yaml_node_t *n, const char *what, bool positive, double *out);
/* 250ms, 1s, 5m, 2h: the shortest exact form. */
void sl__cfg_fmt_duration(int64_t ms, char *buf, size_t size);
int sl__cfg_duration(cfg_parser *p, yaml_node_t *n, const char *what, int64_t min_ms, int64_t *out);
int sl__cfg_bool(cfg_parser *p, yaml_node_t *n, const char *what, bool *out);
/* One of a fixed list of words. Returns its index in *out. */
int sl__cfg_choice(cfg_parser *p, yaml_node_t *n, const char *what, const char *const *words,
                   int *out);
/* The name: key of an item: letters, digits, '_', '-', '.'; *out is malloc'ed. */
int sl__cfg_name(cfg_parser *p, yaml_node_t *map, const char *where, char **out, cfg_loc *loc);
/* Reports a libyaml error with its position. */
int sl__cfg_yaml_error(cfg_parser *p, yaml_parser_t *yp, const char *text, size_t len);

/* ==== ${VAR} expansion (sl_cfg_expand.c) ==== */

/* Expands every scalar of the document into p->text. */
int sl__cfg_expand_all(cfg_parser *p);

/* ==== app: and http: (sl_cfg_app.c) ==== */

int sl__cfg_parse_app(cfg_parser *p, yaml_node_t *app, cfg_loc root_loc);
int sl__cfg_parse_http(cfg_parser *p, yaml_node_t *http);
/* The name of a log level as app.log_level writes it, in buf. */
const char *sl__cfg_log_level_name(int level, char *buf, size_t size);

/* ==== Sources and sinks (sl_cfg_endpoint.c) ==== */

/* An error when another item of the same namespace is called name; else records name
 * (borrowed: the config owns it) as the item idx (a cfg_ref index, or a sink's). */
int sl__cfg_unique(cfg_parser *p, const char *name, cfg_loc loc, bool sinks, size_t idx);
/* The index sl__cfg_unique recorded for name, or SIZE_MAX. */
size_t sl__cfg_lookup(const cfg_parser *p, const char *name, bool sinks);
void sl__cfg_names_free(cfg_parser *p);
/* Parses a source or sink item: name, type, from (sinks) and the connector's options. */
int sl__cfg_parse_endpoint(cfg_parser *p, yaml_node_t *item, unsigned role, cfg_endpoint *ep);
const sl_option *sl__cfg_common_options(unsigned role);
const sl_option *sl__cfg_find_option(const sl_option *t1, const sl_option *t2, const char *key);
/* The distinct keys one level below prefix (NULL: the top level) of the options of t1 and
 * t2, into names (NULL-terminated, at most max - 1); each is held in pool. */
void sl__cfg_level_keys(const sl_option *t1, const sl_option *t2, const char *prefix,
                        const char **names, char (*pool)[64], size_t max);

/* ==== Ops (sl_cfg_ops.c) ==== */

/* The op table, ending with an entry whose name is NULL. */
extern const cfg_op_def sl__cfg_ops[];
/* Parses one item of ops: NAME: ARG, or a bare NAME for ops without arguments. */
int sl__cfg_parse_op(cfg_parser *p, yaml_node_t *item, const char *where, cfg_op *op);

/* For the op parsers (here and in sl_cfg_window.c). The reducers' names, NULL-terminated. */
extern const char *const sl__cfg_reducers[];
#define CFG_REDUCER_NAMES "sum, count, min, max, avg, first, last, count_distinct"
/* An op's argument as a mapping with valid keys; a null argument is an empty mapping. */
int sl__cfg_op_args(cfg_parser *p, yaml_node_t *arg, const char *opname, const char *const *valid);
/* Adds the streams that the late: keys of event-time windows name (sl_cfg_window.c). */
int sl__cfg_add_late_streams(cfg_parser *p);
/* The offset of the processing-time windows into cfg->window_offset_ms: one for all, as
 * their batch times count from one zero time; an error where two differ. */
int sl__cfg_window_offset(cfg_parser *p);
/* A window's offset: a duration, maybe negative ("-30m"). */
int sl__cfg_offset(cfg_parser *p, yaml_node_t *n, const char *what, int64_t *out);
/* The optional partitions: key of an op's mapping into op->partitions. */
int sl__cfg_op_partitions(cfg_parser *p, yaml_node_t *arg, const char *opname, cfg_op *op);
/* The required fn of a windowed or running op; sets the reducer. *which gets its index. */
int sl__cfg_op_fn(cfg_parser *p, yaml_node_t *arg, const char *opname, cfg_op *op, int *which);
/* An op that keeps state across batches needs app.checkpoint_dir (parsed before streams). */
int sl__cfg_op_needs_checkpoint(cfg_parser *p, cfg_loc loc, const char *what);
/* s with the typed value 1 first when op counts (a count reducer is a sum of ones), or each
 * record lifted to a partial result for op->agg (sl_reducers.h). */
sl_stream *sl__cfg_count_ones(const cfg_op *op, sl_stream *s);
/* The reduced stream s with op->agg's partial results finished (s itself without agg). */
sl_stream *sl__cfg_finish(const cfg_op *op, sl_stream *s);

/* ==== parse and the JSON shaping ops (sl_cfg_ops_shape.c) ==== */

/* The docs of their entries in the op table. */
extern const char sl__cfg_doc_parse[], sl__cfg_doc_set[], sl__cfg_doc_rename[], sl__cfg_doc_drop[],
    sl__cfg_doc_keep[];
int sl__cfg_op_parse(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_set(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_rename(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_drop(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_keep(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
sl_stream *sl__cfg_apply_shape(const cfg_op *op, sl_stream *s, sl_stream *const *handles);
/* Joins each run of consecutive shaping ops (set, rename, drop, keep), and such a run after a
 * parse op, into its first op, so that a record's JSON is decoded and encoded once: the
 * others keep their desc and add no node. SL_OK or SL_ERR_NOMEM. */
int sl__cfg_fuse_shapes(cfg_op *ops, size_t nops);

/* ==== Windowed and stateful ops (sl_cfg_window.c) ==== */

int sl__cfg_op_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_reduce_by_key_and_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_count_by_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_reduce_by_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_count_by_value_and_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_running(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
sl_stream *sl__cfg_apply_window(const cfg_op *op, sl_stream *s, sl_stream *const *handles);
sl_stream *sl__cfg_apply_reduce_by_key_and_window(const cfg_op *op, sl_stream *s,
                                                  sl_stream *const *handles);
sl_stream *sl__cfg_apply_count_by_window(const cfg_op *op, sl_stream *s, sl_stream *const *handles);
sl_stream *sl__cfg_apply_reduce_by_window(const cfg_op *op, sl_stream *s,
                                          sl_stream *const *handles);
sl_stream *sl__cfg_apply_count_by_value_and_window(const cfg_op *op, sl_stream *s,
                                                   sl_stream *const *handles);
sl_stream *sl__cfg_apply_running(const cfg_op *op, sl_stream *s, sl_stream *const *handles);

/* ==== Graph checks (sl_cfg_graph.c) ==== */

/* Resolves names, orders streams (cycles are errors), computes and checks slides and turns
 * on headers where they are read. */
int sl__cfg_check_graph(cfg_parser *p, cfg_loc root_loc);

/* ==== Lua forms of ops (sl_cfg_lua.c) ==== */

/* True when arg is a mapping with lua: or lua_file:. */
bool sl__cfg_lua_form(cfg_parser *p, const yaml_node_t *arg);
/* Parses a Lua form (lua or lua_file, function, allow, instructions, memory_mb, and the keys
 * of extra) into op->lua, compiled as a function of kind (sl_lua_kind), and op->desc. */
int sl__cfg_lua_parse(cfg_parser *p, yaml_node_t *arg, cfg_op *op, int kind,
                      const char *const *extra);
/* Parses the Lua form of op (the ops without one: an error naming those with one). */
int sl__cfg_lua_op(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
/* Builds an op whose Lua form is the whole op (map, filter, flat_map, key, value, reduce,
 * reduce_by_key, update_state) on s. */
sl_stream *sl__cfg_lua_apply(const cfg_op *op, sl_stream *s);
int sl__cfg_op_flat_map(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
int sl__cfg_op_update_state(cfg_parser *p, yaml_node_t *arg, cfg_op *op);
sl_stream *sl__cfg_apply_lua(const cfg_op *op, sl_stream *s, sl_stream *const *handles);
/* Frees op->lua. */
void sl__cfg_lua_free(cfg_op *op);

#endif /* SL_CFG_H */

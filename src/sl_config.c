/* sl_config.c -- the YAML front end: load, check and build a pipeline from a YAML file.
 *
 * The loader only calls the public C API (sluice.h): the YAML is a front end to the
 * library, not a second engine. It parses the file with libyaml's document API (every node
 * keeps its line and column), expands ${VAR} in every scalar, checks everything it can
 * before any context exists, and keeps an in-memory description (sl_config). Building calls
 * sl_context_new, sl_context_add_source, sl_stream_* and sl_stream_to.
 *
 * ==== The format ====
 *
 *   app:
 *     name: wordcount            # default "sluice"
 *     batch_interval: 1s         # required; >= 10ms
 *     workers: 2                 # default: number of cores; 1..256
 *     checkpoint_dir: /var/lib/sluice   # optional
 *     block_interval: 200ms      # optional; receivers cut blocks this often (>= 1ms)
 *     partitions: 4              # optional; default partitions of shuffles (1..4096)
 *     log_level: info            # error|warn|info|debug (sluice --log-level overrides)
 *     backpressure:              # Spark's PID rate estimator per input (optional)
 *       enabled: true            # default false
 *       initial_rate: 1000       # records/s until the first estimate (0: none)
 *       pid: {proportional: 1.0, integral: 0.2, derivative: 0.0, min_rate: 100}
 *   sources:
 *     - name: lines              # required; unique among sources and streams
 *       type: tcp                # a source connector (`sluice connectors` lists them)
 *       mode: connect            # the connector's own options ...
 *       host: localhost
 *       port: 9999
 *       max_record_size: 1MiB    # ... and the options common to every source
 *   streams:
 *     - name: counts             # required; unique among sources and streams
 *       from: lines              # a source or stream name, or a list of them (a union)
 *       ops:                     # optional; applied in order
 *         - split: whitespace    # or {delimiter: ","}: each token becomes the value
 *         - key: value           # key := value bytes; or {json: user.id}: key := the field;
 *                                #   {meta: partition}, {header: trace-id}: see below
 *         - value: 1             # typed value := 1 (int or float literal)
 *         - filter: {json: level, equals: error}
 *         - reduce_by_key: sum   # sum|count|min|max, or {fn: sum, partitions: 4}
 *         - reduce: sum          # sum|count|min|max, or {fn: sum}: one record per batch
 *         - count: {}            # one record per batch: the number of records
 *         - count_by_value: {}   # or {partitions: 4}: key := value, typed value := count
 *         - map: lower           # lower|upper|trim of the value bytes (ASCII)
 *         - repartition: 4
 *         - window: {length: 30s, slide: 10s}   # slide optional (= parent's slide)
 *         - join: other_stream   # or {with: other_stream, type: inner|left, partitions: 4}
 *         - reduce_by_key_and_window: {fn: sum, length: 30s, slide: 10s, inverse: true}
 *         - count_by_window: {length: 30s, slide: 10s}
 *         - reduce_by_window: {fn: max, length: 30s, slide: 10s}
 *         - count_by_value_and_window: {length: 30s, slide: 10s}
 *         - running: {fn: count, ttl: 10m}     # running aggregate per key (state)
 *         - burn: 20us           # test only: costs 20us of CPU per record (see below)
 *   sinks:
 *     - name: out                # required; unique among sinks
 *       type: stdout             # a sink connector
 *       from: counts             # one stream or source
 *       num: 20                  # the connector's options and the common sink options:
 *       errors:                  # records the sink cannot write (sl_deadletter.h)
 *         tolerance: all         # all: skip, count, log, dead-letter; none: stop (exit 1)
 *         dead_letter: {type: file, path: /var/lib/sluice/dead}   # or type: kafka, brokers,
 *                                # topic, properties; nested keys are the dotted options
 *                                # errors.tolerance, errors.dead_letter.type, ...
 *   http:                        # optional: the status page, JSON API and /metrics
 *     listen: 127.0.0.1:4040     # HOST:PORT or [IPV6]:PORT; port 0 = any free port
 *     token: ${SLUICE_TOKEN}     # optional secret: clients send "Authorization: Bearer T"
 *     allow_remote: false        # a non-loopback listen address needs a token unless true
 *     enabled: true              # false: no server (sluice demo serves 127.0.0.1:4040
 *                                # without this section, or the next free port)
 *
 * Sections: app (required), sources (at least one), streams (optional), sinks (at least
 * one), http (optional; the token is never printed nor logged). Streams may be declared in
 * any order: they are built in dependency order, and a cycle is an error naming it
 * (a -> b -> a). Names are letters, digits, '_', '-', '.'.
 *
 * Ops in detail:
 *   split: whitespace | {delimiter: STR}   flat_map; empty tokens are dropped.
 *   key: value | {json: PATH} | {meta: NAME} | {header: NAME}   key_by. PATH is dotted
 *                                           (user.id); a number segment indexes an array
 *                                           (items.0.sku). meta NAME: topic, partition,
 *                                           offset, source or timestamp (numbers as decimal
 *                                           text); header NAME: a Kafka header's value (the
 *                                           last of that name; a null value: empty). A Kafka
 *                                           source already sets the key to the message key.
 *   value: NUMBER | {json: PATH | meta: NAME | header: NAME, as: number|text}   map_values.
 *                                           as: number (the default, but text for meta topic
 *                                           and source) sets the typed value from a JSON
 *                                           number, an integer meta attribute, or text holding
 *                                           a number; as: text sets the value bytes to the
 *                                           field's, attribute's or header's text.
 *                                           A record without the field, attribute or header
 *                                           is rejected (counted, logged with its source,
 *                                           partition and offset).
 *   filter: {[json: PATH | meta: NAME | header: NAME | key: true], OP: OPERAND}  with exactly one
 * OP of equals, not_equals, gt, ge, lt, le (numbers), contains, matches (POSIX extended regex,
 * compiled at load). Without json: the value bytes (the typed value for gt..le, and for
 * equals/not_equals with a number when the record has one); key: true looks at the key bytes.
 * Integer meta attributes compare as numbers (as text with contains and matches); headers as text.
 * A missing JSON field, meta attribute or header matches no OP but not_equals. reduce_by_key /
 * reduce: sum|min|max over the typed value; count counts records. window: {length: DURATION, slide:
 * DURATION} or window: DURATION (length only). Both must be multiples of the parent's slide. join:
 * NAME | {with: NAME, type: inner|left, partitions: N}   the current stream is the left side; both
 * must have the same slide. reduce_by_key_and_window: {fn: sum|count|min|max, length: D, slide: D,
 * inverse: BOOL, drop_zero: BOOL, partitions: N} per key over the window, every slide (slide
 *                                           optional: the parent's). inverse: true (sum and
 *                                           count only) updates the previous window with the
 *                                           batches that leave and enter instead of reducing
 *                                           the whole window; drop_zero: true drops keys whose
 *                                           value is 0. Default false for both.
 *   count_by_window: {length: D, slide: D}  one record per slide: the window's record count.
 *   reduce_by_window: {fn: sum|count|min|max, length: D, slide: D}   one record per slide
 *                                           (none for an empty window).
 *   count_by_value_and_window: {length: D, slide: D, partitions: N}   key := value, typed
 *                                           value := its count in the window; zero counts
 *                                           are dropped (computed with the inverse).
 *   running: {fn: sum|count|min|max, ttl: D, partitions: N}   a running aggregate per key
 *                                           kept across batches: each batch emits (key, the
 *                                           aggregate so far) for the keys it has; a key idle
 *                                           for longer than ttl is forgotten (optional; no
 *                                           ttl: kept forever).
 *   burn: COST | {per_record: COST, schedule: [{after: D, per_record: COST}, ...]}
 *                                           test only: a map that passes records on unchanged
 *                                           and busy-loops COST of the worker's CPU time per
 *                                           record (never sleeps), so that capacity is known
 *                                           (1 worker: 1/COST records/s). COST: 20us, 0.5ms,
 *                                           1s (at most 10s). The schedule changes the cost
 *                                           when `after` has passed since the first record
 *                                           the op saw (after values must increase), e.g.
 *                                           {per_record: 20us, schedule: [{after: 30s,
 *                                           per_record: 40us}, {after: 60s, per_record:
 *                                           10us}]} halves then doubles capacity.
 *   Windows' lengths and slides must be multiples of the parent's slide. Ops that keep state
 *   across batches (reduce_by_key_and_window with inverse: true, count_by_value_and_window,
 *   running) need app.checkpoint_dir, where their state is checkpointed.
 * Records an op cannot process (malformed JSON, missing field where one is needed, not a
 * number) are counted as failed by the engine; processing goes on.
 *
 * Values:
 * - Durations: 250ms, 1s, 1.5s, 5m, 2h (sl_parse_duration). Sizes: 512, 64KiB, 1MiB.
 * - ${VAR} and ${VAR:-default} are expanded in every scalar before it is interpreted; the
 *   default also applies when VAR is set but empty; "$$" is a literal "$"; a "$" followed by
 *   anything else stays as it is. An unset VAR without default, "${}", "${" without "}" or
 *   a name with other characters than letters, digits and '_' is an error.
 * - Connector options are checked against the connector's option table and the common
 *   source or sink options (sl_options_check): unknown keys, types, ranges, required
 *   options. A YAML list becomes a comma-separated value (for list options only); an empty
 *   plain value (key with nothing after it, ~ or null) leaves the option unset.
 * - Errors are one line, FILE:LINE:COLUMN: error: MESSAGE, for the first problem found.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "sl_config.h"
#include "sl_http.h"
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

typedef enum cfg_op_kind {
    OP_SPLIT,
    OP_KEY,
    OP_VALUE,
    OP_FILTER,
    OP_REDUCE_BY_KEY,
    OP_REDUCE,
    OP_COUNT,
    OP_COUNT_BY_VALUE,
    OP_MAP,
    OP_REPARTITION,
    OP_WINDOW,
    OP_JOIN,
    OP_REDUCE_BY_KEY_AND_WINDOW,
    OP_COUNT_BY_WINDOW,
    OP_REDUCE_BY_WINDOW,
    OP_COUNT_BY_VALUE_AND_WINDOW,
    OP_RUNNING,
    OP_BURN,
} cfg_op_kind;

typedef struct cfg_op {
    cfg_op_kind kind;
    cfg_loc loc;
    char *desc;     /* as printed by sl_config_print_graph */
    sl_yamlop *yop; /* split, key, value, filter, map, burn; value 1 for a count reducer */
    sl_reduce_fn reduce;
    int partitions;    /* 0: the context's default */
    int64_t length_ms; /* window */
    int64_t slide_ms;  /* window; 0: the parent's slide */
    cfg_ref with;      /* join */
    bool left;         /* join */
    bool inverse;      /* reduce_by_key_and_window */
    bool drop_zero;    /* reduce_by_key_and_window */
    int64_t ttl_ms;    /* running; 0: none */
    sl_yamlop *run;    /* running */
    bool reads_header; /* key, value, filter: {header: NAME} */
} cfg_op;

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
    char *name;
    cfg_loc app_loc;
    int64_t batch_ms;
    int workers;
    char *checkpoint_dir;
    int64_t block_ms;
    int partitions;
    bool has_log_level;
    sl_log_level log_level;
    sl_backpressure_conf backpressure;
    cfg_endpoint *sources;
    size_t nsources;
    cfg_stream *streams;
    size_t nstreams;
    cfg_endpoint *sinks;
    size_t nsinks;
    size_t *order; /* stream indexes in build order */
    bool has_http; /* an http: section (sl_config_http) */
    bool http_enabled;
    bool http_allow_remote;
    char *http_listen;
    char *http_token; /* secret: never printed */
};

/* ==== Parser state and errors ==== */

typedef struct cfg_parser {
    const char *path;
    yaml_document_t doc;
    bool has_doc;
    char **text; /* expanded text of each scalar node, by node id - 1 */
    size_t nnodes;
    char *errstr;
    size_t errsize;
    bool failed;
    sl_config *cfg;
} cfg_parser;

static int cfg_error(cfg_parser *p, cfg_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static char *cfg_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes "PATH:LINE:COL: error: MESSAGE" into errstr for the first error only. Returns
 * SL_ERR_INVAL so callers can `return cfg_error(...)`. */
static int cfg_error(cfg_parser *p, cfg_loc loc, const char *fmt, ...)
{
    if (p->failed) {
        return SL_ERR_INVAL;
    }
    p->failed = true;
    if (!p->errstr || p->errsize == 0) {
        return SL_ERR_INVAL;
    }
    int n = snprintf(p->errstr, p->errsize, "%s:%d:%d: error: ", p->path, loc.line, loc.col);
    if (n >= 0 && (size_t)n < p->errsize) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->errstr + n, p->errsize - (size_t)n, fmt, ap);
        va_end(ap);
    }
    /* One line: a message from a library could hold a newline. */
    for (char *c = p->errstr; *c; c++) {
        if (*c == '\n' || *c == '\r') {
            *c = ' ';
        }
    }
    return SL_ERR_INVAL;
}

static char *cfg_strdupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        s = NULL;
    }
    va_end(ap);
    return s;
}

static cfg_loc cfg_loc_of(const yaml_node_t *n)
{
    cfg_loc loc = {(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return loc;
}

static cfg_loc cfg_loc_at(size_t line0, size_t col0)
{
    cfg_loc loc = {(int)line0 + 1, (int)col0 + 1};
    return loc;
}

static yaml_node_t *cfg_node(cfg_parser *p, int id)
{
    return yaml_document_get_node(&p->doc, id);
}

/* The expanded text of a scalar node. */
static const char *cfg_text(cfg_parser *p, const yaml_node_t *n)
{
    size_t i = (size_t)(n - p->doc.nodes.start);
    return i < p->nnodes && p->text[i] ? p->text[i] : "";
}

static const char *cfg_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return "a scalar";
    }
}

/* A plain empty value, ~ or null. */
static bool cfg_is_null(cfg_parser *p, const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *t = cfg_text(p, n);
    return !*t || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 || strcmp(t, "Null") == 0 ||
           strcmp(t, "NULL") == 0;
}

static bool cfg_in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        if (strcmp(s, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Edit distance, for "did you mean". Strings longer than 63 are never close. */
static size_t cfg_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) {
        return 64;
    }
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            if (up + 1 < best) {
                best = up + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest of list to s, or NULL when none is close. */
static const char *cfg_closest(const char *s, const char *const *list)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; list[i]; i++) {
        size_t d = cfg_distance(s, list[i]);
        if (d < best_d && d < strlen(list[i])) {
            best = list[i];
            best_d = d;
        }
    }
    return best;
}

/* Joins list with ", " into buf. */
static const char *cfg_join(const char *const *list, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; list[i] && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", list[i]);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return buf;
}

/* Reports an unknown key (or name) with a suggestion and the valid ones. */
static int cfg_unknown(cfg_parser *p, cfg_loc loc, const char *what, const char *s,
                       const char *where, const char *const *valid)
{
    char list[1024];
    const char *close = cfg_closest(s, valid);
    char hint[160] = "";
    if (close) {
        snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
    }
    return cfg_error(p, loc, "unknown %s '%s'%s%s%s; valid %ss: %s", what, s, where ? " in " : "",
                     where ? where : "", hint, what, cfg_join(valid, list, sizeof(list)));
}

/* ==== ${VAR} expansion ==== */

static bool cfg_name_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

static bool cfg_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* A growing string. */
typedef struct cfg_buf {
    char *s;
    size_t len, cap;
} cfg_buf;

static int cfg_buf_add(cfg_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *ns = realloc(b->s, cap);
        if (!ns) {
            return SL_ERR_NOMEM;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return SL_OK;
}

int sl_config_expand(const char *s, size_t len, char **out, size_t *err_off, char *errstr,
                     size_t errsize)
{
    cfg_buf b = {0};
    int rc = cfg_buf_add(&b, "", 0);
    size_t i = 0;
    while (rc == SL_OK && i < len) {
        if (s[i] != '$' || i + 1 >= len || (s[i + 1] != '$' && s[i + 1] != '{')) {
            rc = cfg_buf_add(&b, s + i, 1);
            i++;
            continue;
        }
        if (s[i + 1] == '$') {
            rc = cfg_buf_add(&b, "$", 1);
            i += 2;
            continue;
        }
        /* ${NAME} or ${NAME:-default} */
        size_t start = i;
        size_t j = i + 2;
        const char *msg = NULL;
        if (j < len && s[j] == '}') {
            msg = "empty variable name in '${}'";
        } else if (j < len && !cfg_name_start(s[j])) {
            msg = "bad variable name after '${' (names are letters, digits and '_', not "
                  "starting with a digit)";
        }
        while (!msg && j < len && cfg_name_char(s[j])) {
            j++;
        }
        size_t name_end = j;
        const char *def = NULL;
        size_t def_len = 0;
        if (!msg && j < len && s[j] == ':' && j + 1 < len && s[j + 1] == '-') {
            def = s + j + 2;
            j += 2;
            while (j < len && s[j] != '}') {
                if (s[j] == '$' && j + 1 < len && s[j + 1] == '{') {
                    msg = "nested '${' in a default value is not supported";
                    break;
                }
                j++;
            }
            def_len = (size_t)(s + j - def);
        }
        if (!msg && j >= len) {
            msg = "unterminated '${' (missing '}')";
        } else if (!msg && s[j] != '}') {
            msg = "bad character in variable name after '${' (names are letters, digits and "
                  "'_'; a default is written ${VAR:-default})";
        }
        if (msg) {
            snprintf(errstr, errsize, "%s", msg);
            *err_off = start;
            free(b.s);
            return SL_ERR_INVAL;
        }
        char name[256];
        size_t nlen = name_end - (start + 2);
        if (nlen >= sizeof(name)) {
            snprintf(errstr, errsize, "variable name too long");
            *err_off = start;
            free(b.s);
            return SL_ERR_INVAL;
        }
        memcpy(name, s + start + 2, nlen);
        name[nlen] = '\0';
        const char *val = getenv(name);
        if (val && *val) {
            rc = cfg_buf_add(&b, val, strlen(val));
        } else if (def) {
            rc = cfg_buf_add(&b, def, def_len);
        } else if (val) {
            rc = SL_OK; /* set but empty, no default: empty */
        } else {
            snprintf(errstr, errsize,
                     "environment variable '%s' is not set (give a default with "
                     "${%s:-default})",
                     name, name);
            *err_off = start;
            free(b.s);
            return SL_ERR_INVAL;
        }
        i = j + 1;
    }
    if (rc != SL_OK) {
        free(b.s);
        snprintf(errstr, errsize, "out of memory");
        return rc;
    }
    *out = b.s;
    return SL_OK;
}

/* Expands every scalar of the document into p->text. */
static int cfg_expand_all(cfg_parser *p)
{
    p->nnodes = (size_t)(p->doc.nodes.top - p->doc.nodes.start);
    p->text = calloc(p->nnodes ? p->nnodes : 1, sizeof(char *));
    if (!p->text) {
        return cfg_error(p, cfg_loc_at(0, 0), "out of memory");
    }
    for (size_t i = 0; i < p->nnodes; i++) {
        yaml_node_t *n = p->doc.nodes.start + i;
        if (n->type != YAML_SCALAR_NODE) {
            continue;
        }
        char msg[256];
        size_t off = 0;
        int rc = sl_config_expand((const char *)n->data.scalar.value, n->data.scalar.length,
                                  &p->text[i], &off, msg, sizeof(msg));
        if (rc != SL_OK) {
            cfg_loc loc = cfg_loc_of(n);
            /* Point at the "${" itself when the scalar is written as it is read. */
            bool one_line = n->start_mark.line == n->end_mark.line;
            if (one_line && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
                loc.col += (int)off;
            } else if (one_line && memchr(n->data.scalar.value, '\\', off) == NULL &&
                       memchr(n->data.scalar.value, '\'', off) == NULL &&
                       (n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                        n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)) {
                loc.col += (int)off + 1;
            }
            return cfg_error(p, loc, "%s", msg);
        }
    }
    return SL_OK;
}

/* ==== Mappings and scalars ==== */

/* Checks that map is a mapping whose keys are scalars, not repeated, and in valid (a
 * NULL-terminated list; NULL accepts any key). where names the mapping in messages. */
static int cfg_check_map(cfg_parser *p, yaml_node_t *map, const char *where,
                         const char *const *valid)
{
    if (map->type != YAML_MAPPING_NODE) {
        return cfg_error(p, cfg_loc_of(map), "%s must be a mapping, got %s", where, cfg_kind(map));
    }
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        yaml_node_t *k = cfg_node(p, a->key);
        if (k->type != YAML_SCALAR_NODE) {
            return cfg_error(p, cfg_loc_of(k), "keys in %s must be scalars, got %s", where,
                             cfg_kind(k));
        }
        const char *ks = cfg_text(p, k);
        for (yaml_node_pair_t *b = map->data.mapping.pairs.start; b < a; b++) {
            yaml_node_t *kb = cfg_node(p, b->key);
            if (strcmp(cfg_text(p, kb), ks) == 0) {
                return cfg_error(p, cfg_loc_of(k), "duplicate key '%s' in %s (first at line %d)",
                                 ks, where, cfg_loc_of(kb).line);
            }
        }
        if (valid && !cfg_in_list(ks, valid)) {
            if (strcmp(where, "the top level") == 0) {
                return cfg_unknown(p, cfg_loc_of(k), "section", ks, NULL, valid);
            }
            return cfg_unknown(p, cfg_loc_of(k), "key", ks, where, valid);
        }
    }
    return SL_OK;
}

/* The value of key in a (checked) mapping, or NULL. */
static yaml_node_t *cfg_get(cfg_parser *p, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        if (strcmp(cfg_text(p, cfg_node(p, a->key)), key) == 0) {
            return cfg_node(p, a->value);
        }
    }
    return NULL;
}

/* The key node of key in a mapping, or NULL. */
static yaml_node_t *cfg_get_key(cfg_parser *p, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        yaml_node_t *k = cfg_node(p, a->key);
        if (strcmp(cfg_text(p, k), key) == 0) {
            return k;
        }
    }
    return NULL;
}

/* The text of a scalar value; an error if n is not a scalar or is empty. */
static int cfg_scalar(cfg_parser *p, yaml_node_t *n, const char *what, const char **out)
{
    *out = ""; /* set on every path: -O3 cannot see that cfg_error never returns SL_OK */
    if (n->type != YAML_SCALAR_NODE) {
        return cfg_error(p, cfg_loc_of(n), "%s must be a scalar, got %s", what, cfg_kind(n));
    }
    if (cfg_is_null(p, n)) {
        return cfg_error(p, cfg_loc_of(n), "%s has no value", what);
    }
    *out = cfg_text(p, n);
    return SL_OK;
}

/* A required or optional key's scalar: *out stays NULL when absent (and not required). */
static int cfg_key_scalar(cfg_parser *p, yaml_node_t *map, const char *key, const char *where,
                          bool required, const char **out, yaml_node_t **node)
{
    yaml_node_t *n = cfg_get(p, map, key);
    *out = NULL;
    if (node) {
        *node = n;
    }
    if (!n || (cfg_is_null(p, n) && !required)) {
        if (required) {
            return cfg_error(p, cfg_loc_of(map), "missing required key '%s' in %s", key, where);
        }
        return SL_OK;
    }
    char what[160];
    snprintf(what, sizeof(what), "'%s' in %s", key, where);
    return cfg_scalar(p, n, what, out);
}

static int cfg_int(cfg_parser *p, yaml_node_t *n, const char *what, int64_t min, int64_t max,
                   int64_t *out)
{
    const char *s;
    int rc = cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || isspace((unsigned char)*s)) {
        return cfg_error(p, cfg_loc_of(n), "%s must be an integer, got '%s'", what, s);
    }
    if (v < min || v > max) {
        return cfg_error(p, cfg_loc_of(n),
                         "%s must be between %" PRId64 " and %" PRId64 ", got %lld", what, min, max,
                         v);
    }
    *out = v;
    return SL_OK;
}

static void cfg_fmt_duration(int64_t ms, char *buf, size_t size)
{
    if (ms != 0 && ms % 3600000 == 0) {
        snprintf(buf, size, "%" PRId64 "h", ms / 3600000);
    } else if (ms != 0 && ms % 60000 == 0) {
        snprintf(buf, size, "%" PRId64 "m", ms / 60000);
    } else if (ms != 0 && ms % 1000 == 0) {
        snprintf(buf, size, "%" PRId64 "s", ms / 1000);
    } else {
        snprintf(buf, size, "%" PRId64 "ms", ms);
    }
}

static int cfg_duration(cfg_parser *p, yaml_node_t *n, const char *what, int64_t min_ms,
                        int64_t *out)
{
    const char *s;
    int rc = cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    int64_t ms;
    if (sl_parse_duration(s, &ms) != SL_OK) {
        return cfg_error(p, cfg_loc_of(n),
                         "%s: bad duration '%s' (write e.g. 250ms, 1s, 1.5s, 5m, 2h)", what, s);
    }
    if (ms < min_ms) {
        char m[32];
        cfg_fmt_duration(min_ms, m, sizeof(m));
        return cfg_error(p, cfg_loc_of(n), "%s must be at least %s, got '%s'", what, m, s);
    }
    *out = ms;
    return SL_OK;
}

static int cfg_bool(cfg_parser *p, yaml_node_t *n, const char *what, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "On", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "off", "Off", NULL};
    const char *s;
    int rc = cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    if (cfg_in_list(s, yes)) {
        *out = true;
    } else if (cfg_in_list(s, no)) {
        *out = false;
    } else {
        return cfg_error(p, cfg_loc_of(n), "%s must be true or false, got '%s'", what, s);
    }
    return SL_OK;
}

/* One of a fixed list of words. Returns its index in *out. */
static int cfg_choice(cfg_parser *p, yaml_node_t *n, const char *what, const char *const *words,
                      int *out)
{
    const char *s;
    int rc = cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    for (int i = 0; words[i]; i++) {
        if (strcmp(s, words[i]) == 0) {
            *out = i;
            return SL_OK;
        }
    }
    char list[256];
    return cfg_error(p, cfg_loc_of(n), "%s: unknown value '%s'; valid values: %s", what, s,
                     cfg_join(words, list, sizeof(list)));
}

/* A name: letters, digits, '_', '-', '.'. */
static int cfg_name(cfg_parser *p, yaml_node_t *map, const char *where, char **out, cfg_loc *loc)
{
    const char *s;
    yaml_node_t *n;
    int rc = cfg_key_scalar(p, map, "name", where, true, &s, &n);
    if (rc != SL_OK) {
        return rc;
    }
    if (!*s) {
        return cfg_error(p, cfg_loc_of(n), "empty name in %s", where);
    }
    for (const char *c = s; *c; c++) {
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.') {
            return cfg_error(p, cfg_loc_of(n),
                             "bad name '%s' in %s: use letters, digits, '_', '-' and '.'", s,
                             where);
        }
    }
    *out = strdup(s);
    *loc = cfg_loc_of(n);
    return *out ? SL_OK : cfg_error(p, *loc, "out of memory");
}

/* ==== app ==== */

static const char *const cfg_app_keys[] = {
    "name",      "batch_interval", "workers", "checkpoint_dir", "block_interval", "partitions",
    "log_level", "backpressure",   NULL,
};

/* A non-negative number (a rate or a PID gain), or, with positive, > 0. */
static int cfg_number(cfg_parser *p, yaml_node_t *n, const char *what, bool positive, double *out)
{
    const char *s;
    int rc = cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0) || v > 1e15 || (positive && v == 0)) {
        return cfg_error(p, cfg_loc_of(n), "%s: '%s' is not a number %s", what, s,
                         positive ? "> 0" : ">= 0");
    }
    *out = v;
    return SL_OK;
}

/* app.backpressure: {enabled, initial_rate, pid: {proportional, integral, derivative,
 * min_rate}}, Spark's spark.streaming.backpressure.* with its defaults. */
static int cfg_parse_backpressure(cfg_parser *p, yaml_node_t *bp)
{
    static const char *const keys[] = {"enabled", "initial_rate", "pid", NULL};
    static const char *const pid_keys[] = {"proportional", "integral", "derivative", "min_rate",
                                           NULL};
    sl_backpressure_conf *c = &p->cfg->backpressure;
    int rc = cfg_check_map(p, bp, "app.backpressure", keys);
    yaml_node_t *n;
    if (rc == SL_OK && (n = cfg_get(p, bp, "enabled")) && !cfg_is_null(p, n)) {
        rc = cfg_bool(p, n, "app.backpressure.enabled", &c->enabled);
    }
    if (rc == SL_OK && (n = cfg_get(p, bp, "initial_rate")) && !cfg_is_null(p, n)) {
        rc = cfg_number(p, n, "app.backpressure.initial_rate", false, &c->initial_rate);
    }
    yaml_node_t *pid = rc == SL_OK ? cfg_get(p, bp, "pid") : NULL;
    if (pid && !cfg_is_null(p, pid)) {
        rc = cfg_check_map(p, pid, "app.backpressure.pid", pid_keys);
        double *fields[] = {&c->proportional, &c->integral, &c->derivative, &c->min_rate};
        for (int i = 0; rc == SL_OK && pid_keys[i]; i++) {
            char what[64];
            snprintf(what, sizeof(what), "app.backpressure.pid.%s", pid_keys[i]);
            if ((n = cfg_get(p, pid, pid_keys[i])) && !cfg_is_null(p, n)) {
                rc = cfg_number(p, n, what, i == 3, fields[i]);
            }
        }
    }
    return rc;
}

static const char *const cfg_log_levels[] = {"error", "warn", "info", "debug", NULL};

static int cfg_parse_app(cfg_parser *p, yaml_node_t *app, cfg_loc root_loc)
{
    sl_config *cfg = p->cfg;
    if (!app) {
        return cfg_error(p, root_loc, "missing required section 'app' (with batch_interval)");
    }
    int rc = cfg_check_map(p, app, "app", cfg_app_keys);
    if (rc != SL_OK) {
        return rc;
    }
    cfg->app_loc = cfg_loc_of(app);
    const char *s;
    yaml_node_t *n;
    if ((rc = cfg_key_scalar(p, app, "name", "app", false, &s, NULL)) != SL_OK) {
        return rc;
    }
    cfg->name = strdup(s ? s : "sluice");
    if (!cfg->name) {
        return cfg_error(p, cfg->app_loc, "out of memory");
    }
    n = cfg_get(p, app, "batch_interval");
    if (!n) {
        return cfg_error(p, cfg->app_loc, "missing required key 'batch_interval' in app");
    }
    rc = cfg_duration(p, n, "app.batch_interval", CFG_MIN_BATCH_MS, &cfg->batch_ms);
    if (rc != SL_OK) {
        return rc;
    }
    int64_t v;
    if ((n = cfg_get(p, app, "workers")) && !cfg_is_null(p, n)) {
        if ((rc = cfg_int(p, n, "app.workers", 1, CFG_MAX_WORKERS, &v)) != SL_OK) {
            return rc;
        }
        cfg->workers = (int)v;
    }
    if ((n = cfg_get(p, app, "partitions")) && !cfg_is_null(p, n)) {
        if ((rc = cfg_int(p, n, "app.partitions", 1, CFG_MAX_PARTITIONS, &v)) != SL_OK) {
            return rc;
        }
        cfg->partitions = (int)v;
    }
    if ((n = cfg_get(p, app, "block_interval")) && !cfg_is_null(p, n)) {
        if ((rc = cfg_duration(p, n, "app.block_interval", 1, &cfg->block_ms)) != SL_OK) {
            return rc;
        }
    }
    if ((rc = cfg_key_scalar(p, app, "checkpoint_dir", "app", false, &s, NULL)) != SL_OK) {
        return rc;
    }
    if (s && !(cfg->checkpoint_dir = strdup(s))) {
        return cfg_error(p, cfg->app_loc, "out of memory");
    }
    if ((n = cfg_get(p, app, "log_level")) && !cfg_is_null(p, n)) {
        int lvl;
        if ((rc = cfg_choice(p, n, "app.log_level", cfg_log_levels, &lvl)) != SL_OK) {
            return rc;
        }
        cfg->has_log_level = true;
        cfg->log_level = (sl_log_level)lvl;
    }
    sl_backpressure_defaults(&cfg->backpressure);
    if ((n = cfg_get(p, app, "backpressure")) && !cfg_is_null(p, n)) {
        if ((rc = cfg_parse_backpressure(p, n)) != SL_OK) {
            return rc;
        }
    }
    return SL_OK;
}

/* ==== http ==== */

static const char *const cfg_http_keys[] = {"listen", "token", "allow_remote", "enabled", NULL};

/* The optional http: section. An empty one ("http:") serves with the defaults. The token's
 * value never goes into a message. */
static int cfg_parse_http(cfg_parser *p, yaml_node_t *http)
{
    sl_config *cfg = p->cfg;
    if (!http) {
        return SL_OK;
    }
    cfg->has_http = true;
    cfg->http_enabled = true;
    if (cfg_is_null(p, http)) {
        return SL_OK;
    }
    int rc = cfg_check_map(p, http, "http", cfg_http_keys);
    if (rc != SL_OK) {
        return rc;
    }
    yaml_node_t *n;
    if ((n = cfg_get(p, http, "enabled")) && !cfg_is_null(p, n)) {
        if ((rc = cfg_bool(p, n, "http.enabled", &cfg->http_enabled)) != SL_OK) {
            return rc;
        }
    }
    if ((n = cfg_get(p, http, "allow_remote")) && !cfg_is_null(p, n)) {
        if ((rc = cfg_bool(p, n, "http.allow_remote", &cfg->http_allow_remote)) != SL_OK) {
            return rc;
        }
    }
    const char *token, *listen;
    yaml_node_t *tn, *ln;
    if ((rc = cfg_key_scalar(p, http, "token", "http", false, &token, &tn)) != SL_OK) {
        return rc;
    }
    if (token && !*token) {
        return cfg_error(p, cfg_loc_of(tn),
                         "http.token is empty (remove it for no token, or set a secret; an "
                         "unset ${VAR} in it needs a default)");
    }
    if (token && !(cfg->http_token = strdup(token))) {
        return cfg_error(p, cfg_loc_of(tn), "out of memory");
    }
    if ((rc = cfg_key_scalar(p, http, "listen", "http", false, &listen, &ln)) != SL_OK) {
        return rc;
    }
    if (!(cfg->http_listen = strdup(listen ? listen : SL_HTTP_DEFAULT_LISTEN))) {
        return cfg_error(p, cfg_loc_of(http), "out of memory");
    }
    if (cfg->http_enabled) {
        char msg[512];
        if (sl_http_check_listen(cfg->http_listen, token != NULL, cfg->http_allow_remote, msg,
                                 sizeof(msg)) != SL_OK) {
            return cfg_error(p, cfg_loc_of(ln ? ln : http), "http.listen: %s", msg);
        }
    }
    return SL_OK;
}

bool sl_config_http(const sl_config *cfg, sl_http_conf *conf, bool *present)
{
    memset(conf, 0, sizeof(*conf));
    conf->listen = cfg->http_listen ? cfg->http_listen : SL_HTTP_DEFAULT_LISTEN;
    conf->token = cfg->http_token;
    conf->allow_remote = cfg->http_allow_remote;
    if (present) {
        *present = cfg->has_http;
    }
    return cfg->has_http && cfg->http_enabled;
}

/* ==== Names ==== */

/* Where another item of the same namespace called name is (name itself is skipped), or
 * NULL. */
static const cfg_loc *cfg_find_name(const sl_config *cfg, const char *name, bool sinks)
{
    if (sinks) {
        for (size_t i = 0; i < cfg->nsinks; i++) {
            if (cfg->sinks[i].name && cfg->sinks[i].name != name &&
                strcmp(cfg->sinks[i].name, name) == 0) {
                return &cfg->sinks[i].loc;
            }
        }
        return NULL;
    }
    for (size_t i = 0; i < cfg->nsources; i++) {
        if (cfg->sources[i].name && cfg->sources[i].name != name &&
            strcmp(cfg->sources[i].name, name) == 0) {
            return &cfg->sources[i].loc;
        }
    }
    for (size_t i = 0; i < cfg->nstreams; i++) {
        if (cfg->streams[i].name && cfg->streams[i].name != name &&
            strcmp(cfg->streams[i].name, name) == 0) {
            return &cfg->streams[i].loc;
        }
    }
    return NULL;
}

static int cfg_unique(cfg_parser *p, const char *name, cfg_loc loc, bool sinks)
{
    const cfg_loc *prev = cfg_find_name(p->cfg, name, sinks);
    if (prev) {
        return cfg_error(p, loc, "duplicate name '%s' (already used at line %d)%s", name,
                         prev->line, sinks ? "" : "; sources and streams share one namespace");
    }
    return SL_OK;
}

/* ==== Sources and sinks ==== */

static const sl_option *cfg_common_options(unsigned role)
{
    return role == SL_SOURCE ? sl_common_source_options() : sl_common_sink_options();
}

static const sl_option *cfg_find_option(const sl_option *t1, const sl_option *t2, const char *key)
{
    const sl_option *tables[2] = {t1, t2};
    for (int t = 0; t < 2; t++) {
        for (const sl_option *o = tables[t]; o && o->name; o++) {
            if (strcmp(o->name, key) == 0) {
                return o;
            }
        }
    }
    return NULL;
}

/* Replaces every occurrence of the values of secret options of opts in msg by "***". */
static void cfg_scrub(char *msg, size_t size, const sl_option *t1, const sl_option *t2,
                      const sl_options *opts)
{
    for (size_t i = 0; opts && i < sl_options_count(opts); i++) {
        const char *k, *v;
        sl_options_at(opts, i, &k, &v);
        const sl_option *o = cfg_find_option(t1, t2, k);
        if (!o || !(o->flags & SL_OPT_SECRET) || !v || !*v) {
            continue;
        }
        size_t vlen = strlen(v);
        char *hit;
        while ((hit = strstr(msg, v)) != NULL) {
            size_t tail = strlen(hit + vlen);
            if ((size_t)(hit - msg) + 3 + tail + 1 > size) {
                *hit = '\0';
                break;
            }
            memmove(hit + 3, hit + vlen, tail + 1);
            memcpy(hit, "***", 3);
        }
    }
}

/* The names of every connector of role, NULL-terminated, in a static-sized list. */
static void cfg_connector_names(unsigned role, const char **names, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; n + 1 < max; i++) {
        const sl_connector *c = sl_connector_at(i);
        if (!c) {
            break;
        }
        if (!(sl_connector_flags(c) & role)) {
            continue;
        }
        const char *name = sl_connector_name(c);
        bool seen = false;
        for (size_t j = 0; j < n; j++) {
            seen = seen || strcmp(names[j], name) == 0;
        }
        if (!seen) {
            names[n++] = name;
        }
    }
    names[n] = NULL;
}

/* An option of a source or sink item as written: nested mappings under a key that prefixes
 * dotted option names are flattened (errors: {dead_letter: {type: file}} sets the option
 * errors.dead_letter.type). */
typedef struct cfg_kv {
    const char *key; /* the node's text, or a dotted name held in ep->flat_keys */
    yaml_node_t *k, *v;
} cfg_kv;

/* The distinct keys one level below prefix (NULL: the top level) of the options of t1 and
 * t2, into names (NULL-terminated, at most max - 1); each is held in pool. */
static void cfg_level_keys(const sl_option *t1, const sl_option *t2, const char *prefix,
                           const char **names, char (*pool)[64], size_t max)
{
    size_t n = 0, plen = prefix ? strlen(prefix) : 0;
    const sl_option *tables[2] = {t1, t2};
    for (int t = 0; t < 2; t++) {
        for (const sl_option *o = tables[t]; o && o->name && n + 1 < max; o++) {
            const char *rest = o->name;
            if (prefix) {
                if (strncmp(o->name, prefix, plen) != 0 || o->name[plen] != '.') {
                    continue;
                }
                rest = o->name + plen + 1;
            }
            size_t len = strcspn(rest, ".");
            snprintf(pool[n], 64, "%.*s", (int)len, rest);
            bool seen = false;
            for (size_t i = 0; i < n && !seen; i++) {
                seen = strcmp(names[i], pool[n]) == 0;
            }
            if (!seen) {
                names[n] = pool[n];
                n++;
            }
        }
    }
    names[n] = NULL;
}

/* True when an option of t1 or t2 is named prefix.SOMETHING. */
static bool cfg_option_prefix(const sl_option *t1, const sl_option *t2, const char *prefix)
{
    const char *names[2];
    char pool[2][64];
    cfg_level_keys(t1, t2, prefix, names, pool, 2);
    return names[0] != NULL;
}

/* Appends the pairs of map to *kv, flattening nested option mappings. */
static int cfg_flatten(cfg_parser *p, yaml_node_t *map, const char *prefix, const sl_option *t1,
                       const sl_option *t2, const char *where, cfg_endpoint *ep, cfg_kv **kv,
                       size_t *n, size_t *cap)
{
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        yaml_node_t *k = cfg_node(p, a->key);
        yaml_node_t *v = cfg_node(p, a->value);
        const char *name = cfg_text(p, k);
        if (prefix) {
            char **fk = realloc(ep->flat_keys, (ep->nflat + 1) * sizeof(*fk));
            if (fk) {
                ep->flat_keys = fk;
            }
            char *full = fk ? cfg_strdupf("%s.%s", prefix, name) : NULL;
            if (!full) {
                return cfg_error(p, cfg_loc_of(k), "out of memory");
            }
            ep->flat_keys[ep->nflat++] = full;
            name = full;
        }
        bool nested = cfg_option_prefix(t1, t2, name);
        if (nested && v->type == YAML_MAPPING_NODE) {
            int rc = cfg_flatten(p, v, name, t1, t2, where, ep, kv, n, cap);
            if (rc != SL_OK) {
                return rc;
            }
            continue;
        }
        if (nested && !cfg_find_option(t1, t2, name)) {
            const char *keys[64];
            char pool[64][64], list[1024];
            cfg_level_keys(t1, t2, name, keys, pool, 64);
            return cfg_error(p, cfg_loc_of(v), "'%s' in %s must be a mapping with the keys: %s",
                             name, where, cfg_join(keys, list, sizeof(list)));
        }
        if (prefix && !cfg_find_option(t1, t2, name)) {
            const char *keys[64];
            char pool[64][64], list[1024], hint[160] = "";
            cfg_level_keys(t1, t2, prefix, keys, pool, 64);
            const char *close = cfg_closest(cfg_text(p, k), keys);
            if (close) {
                snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
            }
            return cfg_error(p, cfg_loc_of(k), "unknown key '%s' in '%s' of %s%s; valid keys: %s",
                             cfg_text(p, k), prefix, where, hint,
                             cfg_join(keys, list, sizeof(list)));
        }
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 16;
            cfg_kv *x = realloc(*kv, c * sizeof(*x));
            if (!x) {
                return cfg_error(p, cfg_loc_of(k), "out of memory");
            }
            *kv = x;
            *cap = c;
        }
        (*kv)[(*n)++] = (cfg_kv){.key = name, .k = k, .v = v};
    }
    return SL_OK;
}

/* Parses a source or sink item: name, type, from (sinks) and the connector's options. */
static int cfg_parse_endpoint(cfg_parser *p, yaml_node_t *item, unsigned role, cfg_endpoint *ep)
{
    const char *rname = role == SL_SOURCE ? "source" : "sink";
    char where[160];
    snprintf(where, sizeof(where), "a %s", rname);
    ep->role = role;
    int rc = cfg_check_map(p, item, where, NULL);
    if (rc != SL_OK) {
        return rc;
    }
    ep->loc = cfg_loc_of(item);
    cfg_loc name_loc;
    if ((rc = cfg_name(p, item, where, &ep->name, &name_loc)) != SL_OK) {
        return rc;
    }
    if ((rc = cfg_unique(p, ep->name, name_loc, role == SL_SINK)) != SL_OK) {
        return rc;
    }
    snprintf(where, sizeof(where), "%s '%s'", rname, ep->name);

    /* type */
    const char *type;
    yaml_node_t *type_node;
    if ((rc = cfg_key_scalar(p, item, "type", where, true, &type, &type_node)) != SL_OK) {
        return rc;
    }
    ep->conn = sl_connector_find(type, role);
    if (!ep->conn) {
        const char *names[64];
        cfg_connector_names(role, names, 64);
        char list[512];
        cfg_join(names, list, sizeof(list));
        unsigned other = role == SL_SOURCE ? SL_SINK : SL_SOURCE;
        if (sl_connector_find(type, other)) {
            return cfg_error(p, cfg_loc_of(type_node),
                             "'%s' is not a %s type (it is a %s); %s "
                             "types: %s",
                             type, rname, role == SL_SOURCE ? "sink" : "source", rname, list);
        }
        const char *close = cfg_closest(type, names);
        char hint[160] = "";
        if (close) {
            snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
        }
        return cfg_error(p, cfg_loc_of(type_node), "unknown %s type '%s'%s; known %s types: %s",
                         rname, type, hint, rname, list);
    }
    if (!(ep->type = strdup(type))) {
        return cfg_error(p, ep->loc, "out of memory");
    }
    snprintf(where, sizeof(where), "%s %s '%s'", type, rname, ep->name);

    /* from (sinks) */
    if (role == SL_SINK) {
        yaml_node_t *from = cfg_get(p, item, "from");
        if (!from || cfg_is_null(p, from)) {
            return cfg_error(p, ep->loc, "missing required key 'from' in %s", where);
        }
        if (from->type == YAML_SEQUENCE_NODE) {
            return cfg_error(p, cfg_loc_of(from),
                             "'from' in %s must name one stream or source "
                             "(for a union, declare a stream with a list in its 'from')",
                             where);
        }
        const char *f;
        if ((rc = cfg_scalar(p, from, "'from'", &f)) != SL_OK) {
            return rc;
        }
        ep->from.name = strdup(f);
        ep->from.loc = cfg_loc_of(from);
        if (!ep->from.name) {
            return cfg_error(p, ep->loc, "out of memory");
        }
    }

    /* Options: every other key, checked against the tables. */
    const sl_option *common = cfg_common_options(role);
    const sl_option *copts = sl_connector_options(ep->conn);
    static const char *const src_structural[] = {"name", "type", NULL};
    static const char *const sink_structural[] = {"name", "type", "from", NULL};
    const char *const *structural = role == SL_SOURCE ? src_structural : sink_structural;
    size_t npairs = 0, kvcap = 0;
    if ((rc = cfg_flatten(p, item, NULL, common, copts, where, ep, &ep->kv, &npairs, &kvcap))) {
        return rc;
    }
    ep->opts = sl_options_new();
    ep->opt_keys = calloc(npairs ? npairs : 1, sizeof(char *));
    ep->opt_locs = calloc(npairs ? npairs : 1, sizeof(cfg_loc));
    if (!ep->opts || !ep->opt_keys || !ep->opt_locs) {
        return cfg_error(p, ep->loc, "out of memory");
    }
    for (size_t ki = 0; ki < npairs; ki++) {
        yaml_node_t *k = ep->kv[ki].k;
        yaml_node_t *v = ep->kv[ki].v;
        const char *key = ep->kv[ki].key;
        const sl_option *o = cfg_find_option(common, copts, key);
        if (cfg_in_list(key, structural) && !o) {
            continue;
        }
        if (!o) {
            const char *valid[256];
            size_t n = 0;
            for (size_t i = 0; structural[i] && n < 255; i++) {
                valid[n++] = structural[i];
            }
            const char *level[256];
            char pool[256][64];
            cfg_level_keys(common, copts, NULL, level, pool, 256);
            for (size_t i = 0; level[i] && n < 255; i++) {
                if (!cfg_in_list(level[i], structural)) {
                    valid[n++] = level[i];
                }
            }
            valid[n] = NULL;
            char list[1024];
            const char *close = cfg_closest(key, valid);
            char hint[160] = "";
            if (close) {
                snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
            }
            return cfg_error(p, cfg_loc_of(k), "unknown option '%s' for %s%s; valid options: %s",
                             key, where, hint, cfg_join(valid, list, sizeof(list)));
        }
        if (cfg_is_null(p, v)) {
            continue;
        }
        if (v->type == YAML_MAPPING_NODE) {
            return cfg_error(p, cfg_loc_of(v),
                             "option '%s' of %s must be a scalar%s, got a "
                             "mapping",
                             key, where, o->type == SL_OPT_LIST ? " or a list" : "");
        }
        if (v->type == YAML_SEQUENCE_NODE) {
            if (o->type != SL_OPT_LIST) {
                return cfg_error(p, cfg_loc_of(v),
                                 "option '%s' of %s takes one value, not a "
                                 "list",
                                 key, where);
            }
            cfg_buf b = {0};
            rc = cfg_buf_add(&b, "", 0);
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 rc == SL_OK && it < v->data.sequence.items.top; it++) {
                yaml_node_t *e = cfg_node(p, *it);
                if (e->type != YAML_SCALAR_NODE) {
                    free(b.s);
                    return cfg_error(p, cfg_loc_of(e),
                                     "items of option '%s' of %s must be "
                                     "scalars, got %s",
                                     key, where, cfg_kind(e));
                }
                if (b.len > 0) {
                    rc = cfg_buf_add(&b, ",", 1);
                }
                if (rc == SL_OK) {
                    const char *t = cfg_text(p, e);
                    rc = cfg_buf_add(&b, t, strlen(t));
                }
            }
            rc = rc == SL_OK ? sl_options_set(ep->opts, key, b.s) : rc;
            free(b.s);
        } else {
            rc = sl_options_set(ep->opts, key, cfg_text(p, v));
        }
        if (rc != SL_OK || !(ep->opt_keys[ep->nopt_locs] = strdup(key))) {
            return cfg_error(p, cfg_loc_of(v), "cannot set option '%s' of %s: %s", key, where,
                             sl_err2str(rc != SL_OK ? rc : SL_ERR_NOMEM));
        }
        ep->opt_locs[ep->nopt_locs++] = cfg_loc_of(v);
    }
    /* The structural keys the tables know (such as name) are options too. */
    for (size_t i = 0; structural[i]; i++) {
        if (cfg_find_option(common, copts, structural[i]) &&
            !sl_options_get(ep->opts, structural[i])) {
            const char *val = strcmp(structural[i], "name") == 0   ? ep->name
                              : strcmp(structural[i], "type") == 0 ? ep->type
                                                                   : ep->from.name;
            if (val && sl_options_set(ep->opts, structural[i], val) != SL_OK) {
                return cfg_error(p, ep->loc, "out of memory");
            }
        }
    }
    /* Required options. */
    const sl_option *tables[2] = {common, copts};
    for (int t = 0; t < 2; t++) {
        for (const sl_option *o = tables[t]; o && o->name; o++) {
            if ((o->flags & SL_OPT_REQUIRED) && !sl_options_get(ep->opts, o->name)) {
                return cfg_error(p, ep->loc, "missing required option '%s' in %s%s%s%s", o->name,
                                 where, o->doc ? " (" : "", o->doc ? o->doc : "",
                                 o->doc ? ")" : "");
            }
        }
    }
    /* Types and ranges, as the engine checks them. */
    char msg[768];
    const char *bad = NULL;
    msg[0] = '\0';
    if (sl_options_check(common, copts, ep->opts, msg, sizeof(msg), &bad) != SL_OK) {
        cfg_loc loc = ep->loc;
        yaml_node_t *bk = bad ? cfg_get_key(p, item, bad) : NULL;
        if (bk) {
            loc = cfg_loc_of(cfg_get(p, item, bad));
        }
        for (size_t i = 0; !bk && bad && i < ep->nopt_locs; i++) {
            if (strcmp(ep->opt_keys[i], bad) == 0) {
                loc = ep->opt_locs[i]; /* a nested option (errors: ...) */
            }
        }
        cfg_scrub(msg, sizeof(msg), common, copts, ep->opts);
        return cfg_error(p, loc, "%s: %s", where, msg[0] ? msg : "invalid options");
    }
    return SL_OK;
}

/* ==== Streams and ops ==== */

static const char *const cfg_op_names[] = {
    [OP_SPLIT] = "split",
    [OP_KEY] = "key",
    [OP_VALUE] = "value",
    [OP_FILTER] = "filter",
    [OP_REDUCE_BY_KEY] = "reduce_by_key",
    [OP_REDUCE] = "reduce",
    [OP_COUNT] = "count",
    [OP_COUNT_BY_VALUE] = "count_by_value",
    [OP_MAP] = "map",
    [OP_REPARTITION] = "repartition",
    [OP_WINDOW] = "window",
    [OP_JOIN] = "join",
    [OP_REDUCE_BY_KEY_AND_WINDOW] = "reduce_by_key_and_window",
    [OP_COUNT_BY_WINDOW] = "count_by_window",
    [OP_REDUCE_BY_WINDOW] = "reduce_by_window",
    [OP_COUNT_BY_VALUE_AND_WINDOW] = "count_by_value_and_window",
    [OP_RUNNING] = "running",
    [OP_BURN] = "burn",
    NULL,
};

static const char *const cfg_reducers[] = {"sum", "count", "min", "max", NULL};

/* Sets the reducer of op from its name (index in cfg_reducers). count is sum over 1s. */
static int cfg_set_reducer(cfg_parser *p, cfg_op *op, int which, cfg_loc loc)
{
    static sl_reduce_fn const fns[] = {sl_reduce_sum, sl_reduce_sum, sl_reduce_min, sl_reduce_max};
    op->reduce = fns[which];
    if (which == 1) {
        char msg[256];
        op->yop = sl_yamlops_value_literal_new("1", msg, sizeof(msg));
        if (!op->yop) {
            return cfg_error(p, loc, "%s", msg);
        }
    }
    return SL_OK;
}

/* An op's argument as a mapping with valid keys; a null argument is an empty mapping. */
static int cfg_op_args(cfg_parser *p, yaml_node_t *arg, const char *opname,
                       const char *const *valid)
{
    char where[96];
    snprintf(where, sizeof(where), "op '%s'", opname);
    if (arg->type != YAML_MAPPING_NODE) {
        char list[256];
        return cfg_error(p, cfg_loc_of(arg), "op '%s' takes a mapping with keys %s, got %s", opname,
                         valid[0] ? cfg_join(valid, list, sizeof(list)) : "(none)", cfg_kind(arg));
    }
    return cfg_check_map(p, arg, where, valid);
}

static int cfg_op_partitions(cfg_parser *p, yaml_node_t *arg, const char *opname, cfg_op *op)
{
    yaml_node_t *n = cfg_get(p, arg, "partitions");
    if (!n || cfg_is_null(p, n)) {
        return SL_OK;
    }
    char what[96];
    int64_t v;
    snprintf(what, sizeof(what), "%s.partitions", opname);
    int rc = cfg_int(p, n, what, 1, CFG_MAX_PARTITIONS, &v);
    op->partitions = (int)v;
    return rc;
}

static int cfg_op_split(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    char msg[256];
    const char *delim = NULL;
    int rc;
    if (arg->type == YAML_SCALAR_NODE) {
        const char *s = cfg_text(p, arg);
        if (strcmp(s, "whitespace") != 0) {
            return cfg_error(p, cfg_loc_of(arg),
                             "split takes 'whitespace' or {delimiter: STR}, "
                             "got '%s'",
                             s);
        }
        op->desc = strdup("split whitespace");
    } else {
        static const char *const keys[] = {"delimiter", NULL};
        if ((rc = cfg_op_args(p, arg, "split", keys)) != SL_OK) {
            return rc;
        }
        yaml_node_t *n = cfg_get(p, arg, "delimiter");
        if (!n) {
            return cfg_error(p, cfg_loc_of(arg),
                             "missing required key 'delimiter' in op "
                             "'split'");
        }
        if (n->type != YAML_SCALAR_NODE || !*cfg_text(p, n)) {
            return cfg_error(p, cfg_loc_of(n), "split.delimiter must be a non-empty string");
        }
        delim = cfg_text(p, n);
        op->desc = cfg_strdupf("split delimiter '%s'", delim);
    }
    op->yop = sl_yamlops_split_new(delim, msg, sizeof(msg));
    return op->yop ? SL_OK : cfg_error(p, cfg_loc_of(arg), "split: %s", msg);
}

/* {json: PATH} for key and value. */
static int cfg_op_json_path(cfg_parser *p, yaml_node_t *arg, const char *opname, const char **path,
                            yaml_node_t **node)
{
    int rc = cfg_key_scalar(p, arg, "json", opname, true, path, node);
    if (rc == SL_OK &&
        (!**path || strstr(*path, "..") || **path == '.' || (*path)[strlen(*path) - 1] == '.')) {
        return cfg_error(p, cfg_loc_of(*node), "bad JSON path '%s' in %s: empty segment", *path,
                         opname);
    }
    return rc;
}

/* What a key, value or filter op reads besides the value bytes: at most one of json: PATH,
 * meta: NAME (sl_yamlops_meta_from_name) and header: NAME. *target is SL_YOP_ON_VALUE when
 * there is none (an error when required). *name is the path or name, *node its node. */
static int cfg_op_attr(cfg_parser *p, yaml_node_t *arg, const char *opname, bool required,
                       sl_yamlop_target *target, const char **name, yaml_node_t **node)
{
    static const char *const attrs[] = {"json", "meta", "header", NULL};
    static const sl_yamlop_target targets[] = {SL_YOP_ON_JSON, SL_YOP_ON_META, SL_YOP_ON_HEADER};
    char where[64];
    snprintf(where, sizeof(where), "op '%s'", opname);
    int which = -1;
    *target = SL_YOP_ON_VALUE;
    *name = NULL;
    *node = NULL;
    for (int i = 0; attrs[i]; i++) {
        yaml_node_t *n = cfg_get(p, arg, attrs[i]);
        if (!n) {
            continue;
        }
        if (which >= 0) {
            return cfg_error(p, cfg_loc_of(n),
                             "%s reads one of json, meta or header, got '%s' and '%s'", where,
                             attrs[which], attrs[i]);
        }
        which = i;
    }
    if (which < 0) {
        return required ? cfg_error(p, cfg_loc_of(arg),
                                    "%s needs one of json: PATH, meta: NAME or header: NAME", where)
                        : SL_OK;
    }
    *target = targets[which];
    if (*target == SL_YOP_ON_JSON) {
        return cfg_op_json_path(p, arg, where, name, node);
    }
    int rc = cfg_key_scalar(p, arg, attrs[which], where, true, name, node);
    if (rc != SL_OK) {
        return rc;
    }
    if (*target == SL_YOP_ON_META && sl_yamlops_meta_from_name(*name) < 0) {
        return cfg_error(p, cfg_loc_of(*node), "unknown meta '%s' in %s (valid: %s)", *name, where,
                         sl_yamlops_meta_names());
    }
    if (*target == SL_YOP_ON_HEADER && !**name) {
        return cfg_error(p, cfg_loc_of(*node), "empty header name in %s", where);
    }
    return SL_OK;
}

static const char *const cfg_attr_words[] = {
    [SL_YOP_ON_VALUE] = "value", [SL_YOP_ON_KEY] = "key",       [SL_YOP_ON_JSON] = "json",
    [SL_YOP_ON_META] = "meta",   [SL_YOP_ON_HEADER] = "header",
};

static int cfg_op_key(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    char msg[256];
    if (arg->type == YAML_SCALAR_NODE) {
        if (strcmp(cfg_text(p, arg), "value") != 0) {
            return cfg_error(p, cfg_loc_of(arg),
                             "key takes 'value', {json: PATH}, {meta: NAME} or {header: NAME}, "
                             "got '%s'",
                             cfg_text(p, arg));
        }
        op->yop = sl_yamlops_key_new(NULL, msg, sizeof(msg));
        op->desc = strdup("key value");
    } else {
        static const char *const keys[] = {"json", "meta", "header", NULL};
        const char *name;
        yaml_node_t *n;
        sl_yamlop_target target;
        int rc = cfg_op_args(p, arg, "key", keys);
        if (rc != SL_OK || (rc = cfg_op_attr(p, arg, "key", true, &target, &name, &n)) != SL_OK) {
            return rc;
        }
        op->yop = sl_yamlops_key_from_new(target, name, msg, sizeof(msg));
        op->desc = cfg_strdupf("key %s %s", cfg_attr_words[target], name);
        op->reads_header = target == SL_YOP_ON_HEADER;
    }
    return op->yop ? SL_OK : cfg_error(p, cfg_loc_of(arg), "key: %s", msg);
}

static int cfg_op_value(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    char msg[256];
    if (arg->type == YAML_SCALAR_NODE) {
        const char *s = cfg_text(p, arg);
        op->yop = sl_yamlops_value_literal_new(s, msg, sizeof(msg));
        op->desc = cfg_strdupf("value %s", s);
    } else {
        static const char *const keys[] = {"json", "meta", "header", "as", NULL};
        static const char *const as_words[] = {"number", "text", NULL};
        const char *name;
        yaml_node_t *n;
        sl_yamlop_target target;
        int rc = cfg_op_args(p, arg, "value", keys);
        if (rc != SL_OK || (rc = cfg_op_attr(p, arg, "value", true, &target, &name, &n)) != SL_OK) {
            return rc;
        }
        /* as: number by default, but text for the meta attributes that are text */
        bool text_meta =
            target == SL_YOP_ON_META &&
            !sl_yamlops_meta_is_number((sl_yamlop_meta)sl_yamlops_meta_from_name(name));
        int as = text_meta ? 1 : 0;
        if ((n = cfg_get(p, arg, "as")) && !cfg_is_null(p, n)) {
            if ((rc = cfg_choice(p, n, "value.as", as_words, &as)) != SL_OK) {
                return rc;
            }
            if (text_meta && as == 0) {
                return cfg_error(p, cfg_loc_of(n), "meta '%s' is text, not a number: use as: text",
                                 name);
            }
        }
        op->yop = sl_yamlops_value_from_new(target, name, as == 1, msg, sizeof(msg));
        op->desc = cfg_strdupf("value %s %s as %s", cfg_attr_words[target], name, as_words[as]);
        op->reads_header = target == SL_YOP_ON_HEADER;
    }
    return op->yop ? SL_OK : cfg_error(p, cfg_loc_of(arg), "value: %s", msg);
}

static int cfg_op_filter(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"json",       "meta",    "header", "key", "equals",
                                       "not_equals", "gt",      "ge",     "lt",  "le",
                                       "contains",   "matches", NULL};
    int rc = cfg_op_args(p, arg, "filter", keys);
    if (rc != SL_OK) {
        return rc;
    }
    yaml_node_t *cmp_key = NULL, *cmp_val = NULL;
    for (yaml_node_pair_t *a = arg->data.mapping.pairs.start; a < arg->data.mapping.pairs.top;
         a++) {
        yaml_node_t *k = cfg_node(p, a->key);
        if (sl_yamlops_cmp_from_name(cfg_text(p, k)) < 0) {
            continue;
        }
        if (cmp_key) {
            return cfg_error(p, cfg_loc_of(k), "filter takes one comparison, got '%s' and '%s'",
                             cfg_text(p, cmp_key), cfg_text(p, k));
        }
        cmp_key = k;
        cmp_val = cfg_node(p, a->value);
    }
    if (!cmp_key) {
        return cfg_error(p, cfg_loc_of(arg),
                         "filter needs one comparison: equals, not_equals, "
                         "gt, ge, lt, le, contains or matches");
    }
    const char *path = NULL;
    yaml_node_t *n;
    sl_yamlop_target attr;
    if ((rc = cfg_op_attr(p, arg, "filter", false, &attr, &path, &n)) != SL_OK) {
        return rc;
    }
    bool on_key = false;
    if ((n = cfg_get(p, arg, "key")) && (rc = cfg_bool(p, n, "filter.key", &on_key))) {
        return rc;
    }
    if (path && on_key) {
        return cfg_error(p, cfg_loc_of(n),
                         "filter looks at a JSON field (json:), a meta attribute (meta:), a "
                         "header (header:) or the key (key: true), only one");
    }
    const char *cmp_name = cfg_text(p, cmp_key);
    char what[64];
    snprintf(what, sizeof(what), "filter.%s", cmp_name);
    if (cmp_val->type != YAML_SCALAR_NODE) {
        return cfg_error(p, cfg_loc_of(cmp_val), "%s must be a scalar, got %s", what,
                         cfg_kind(cmp_val));
    }
    const char *operand = cfg_text(p, cmp_val);
    sl_yamlop_cmp cmp = (sl_yamlop_cmp)sl_yamlops_cmp_from_name(cmp_name);
    sl_yamlop_target target = path ? attr : on_key ? SL_YOP_ON_KEY : SL_YOP_ON_VALUE;
    op->reads_header = target == SL_YOP_ON_HEADER;
    char msg[256];
    op->yop = sl_yamlops_filter_new(target, path, cmp, operand, msg, sizeof(msg));
    if (!op->yop) {
        return cfg_error(p, cfg_loc_of(cmp_val), "filter: %s", msg);
    }
    if (path) {
        op->desc =
            cfg_strdupf("filter %s %s %s '%s'", cfg_attr_words[attr], path, cmp_name, operand);
    } else {
        op->desc = cfg_strdupf("filter %s %s '%s'", on_key ? "key" : "value", cmp_name, operand);
    }
    return SL_OK;
}

static int cfg_op_reduce(cfg_parser *p, yaml_node_t *arg, cfg_op *op, bool by_key)
{
    const char *opname = by_key ? "reduce_by_key" : "reduce";
    yaml_node_t *fn = arg;
    int rc;
    if (arg->type != YAML_SCALAR_NODE) {
        static const char *const keys_bk[] = {"fn", "partitions", NULL};
        static const char *const keys[] = {"fn", NULL};
        if ((rc = cfg_op_args(p, arg, opname, by_key ? keys_bk : keys)) != SL_OK) {
            return rc;
        }
        if (!(fn = cfg_get(p, arg, "fn"))) {
            return cfg_error(p, cfg_loc_of(arg),
                             "missing required key 'fn' in op '%s' (one of "
                             "sum, count, min, max)",
                             opname);
        }
        if (by_key && (rc = cfg_op_partitions(p, arg, opname, op)) != SL_OK) {
            return rc;
        }
    }
    char what[64];
    snprintf(what, sizeof(what), "%s function", opname);
    int which;
    if ((rc = cfg_choice(p, fn, what, cfg_reducers, &which)) != SL_OK) {
        return rc;
    }
    if (op->partitions > 0) {
        op->desc =
            cfg_strdupf("%s %s (partitions %d)", opname, cfg_reducers[which], op->partitions);
    } else {
        op->desc = cfg_strdupf("%s %s", opname, cfg_reducers[which]);
    }
    return cfg_set_reducer(p, op, which, cfg_loc_of(fn));
}

static int cfg_op_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    int rc;
    if (arg->type == YAML_SCALAR_NODE) {
        rc = cfg_duration(p, arg, "window length", 1, &op->length_ms);
    } else {
        static const char *const keys[] = {"length", "slide", NULL};
        if ((rc = cfg_op_args(p, arg, "window", keys)) != SL_OK) {
            return rc;
        }
        yaml_node_t *n = cfg_get(p, arg, "length");
        if (!n) {
            return cfg_error(p, cfg_loc_of(arg), "missing required key 'length' in op 'window'");
        }
        if ((rc = cfg_duration(p, n, "window.length", 1, &op->length_ms)) != SL_OK) {
            return rc;
        }
        if ((n = cfg_get(p, arg, "slide")) && !cfg_is_null(p, n)) {
            rc = cfg_duration(p, n, "window.slide", 1, &op->slide_ms);
        }
    }
    char l[32], s[32];
    cfg_fmt_duration(op->length_ms, l, sizeof(l));
    cfg_fmt_duration(op->slide_ms, s, sizeof(s));
    op->desc = op->slide_ms ? cfg_strdupf("window length %s slide %s", l, s)
                            : cfg_strdupf("window length %s", l);
    return rc;
}

static int cfg_op_join(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    yaml_node_t *with = arg;
    int rc;
    if (arg->type != YAML_SCALAR_NODE) {
        static const char *const keys[] = {"with", "type", "partitions", NULL};
        static const char *const types[] = {"inner", "left", NULL};
        if ((rc = cfg_op_args(p, arg, "join", keys)) != SL_OK) {
            return rc;
        }
        if (!(with = cfg_get(p, arg, "with"))) {
            return cfg_error(p, cfg_loc_of(arg), "missing required key 'with' in op 'join'");
        }
        yaml_node_t *n = cfg_get(p, arg, "type");
        int t = 0;
        if (n && !cfg_is_null(p, n) && (rc = cfg_choice(p, n, "join.type", types, &t))) {
            return rc;
        }
        op->left = t == 1;
        if ((rc = cfg_op_partitions(p, arg, "join", op)) != SL_OK) {
            return rc;
        }
    }
    const char *name;
    if ((rc = cfg_scalar(p, with, "join's stream", &name)) != SL_OK) {
        return rc;
    }
    op->with.name = strdup(name);
    op->with.loc = cfg_loc_of(with);
    op->desc = cfg_strdupf("join %s (%s)", name, op->left ? "left" : "inner");
    return SL_OK;
}

/* ==== Windowed and stateful ops ==== */

/* An op that keeps state across batches needs app.checkpoint_dir (parsed before streams). */
static int cfg_op_needs_checkpoint(cfg_parser *p, cfg_loc loc, const char *what)
{
    if (p->cfg->checkpoint_dir) {
        return SL_OK;
    }
    return cfg_error(p, loc,
                     "%s keeps state across batches: it needs app.checkpoint_dir (a directory "
                     "where that state is checkpointed)",
                     what);
}

/* length (required) and slide (optional: the parent's) of a windowed op. */
static int cfg_op_window_span(cfg_parser *p, yaml_node_t *arg, const char *opname, cfg_op *op)
{
    char what[96];
    yaml_node_t *n = cfg_get(p, arg, "length");
    if (!n || cfg_is_null(p, n)) {
        return cfg_error(p, cfg_loc_of(arg), "missing required key 'length' in op '%s'", opname);
    }
    snprintf(what, sizeof(what), "%s.length", opname);
    int rc = cfg_duration(p, n, what, 1, &op->length_ms);
    if (rc == SL_OK && (n = cfg_get(p, arg, "slide")) && !cfg_is_null(p, n)) {
        snprintf(what, sizeof(what), "%s.slide", opname);
        rc = cfg_duration(p, n, what, 1, &op->slide_ms);
    }
    return rc;
}

/* The required fn of a windowed or running op; sets the reducer. *which gets its index. */
static int cfg_op_fn(cfg_parser *p, yaml_node_t *arg, const char *opname, cfg_op *op, int *which)
{
    yaml_node_t *fn = cfg_get(p, arg, "fn");
    if (!fn || cfg_is_null(p, fn)) {
        return cfg_error(p, cfg_loc_of(arg),
                         "missing required key 'fn' in op '%s' (one of sum, count, min, max)",
                         opname);
    }
    char what[96];
    snprintf(what, sizeof(what), "%s.fn", opname);
    int rc = cfg_choice(p, fn, what, cfg_reducers, which);
    return rc == SL_OK ? cfg_set_reducer(p, op, *which, cfg_loc_of(fn)) : rc;
}

/* " length 30s slide 10s" for descriptions. */
static void cfg_span_desc(const cfg_op *op, char *buf, size_t size)
{
    char l[32], s[32];
    cfg_fmt_duration(op->length_ms, l, sizeof(l));
    cfg_fmt_duration(op->slide_ms, s, sizeof(s));
    if (op->slide_ms) {
        snprintf(buf, size, " length %s slide %s", l, s);
    } else {
        snprintf(buf, size, " length %s", l);
    }
}

static int cfg_op_windowed(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys_rbkw[] = {"fn",        "length",     "slide", "inverse",
                                            "drop_zero", "partitions", NULL};
    static const char *const keys_cbw[] = {"length", "slide", NULL};
    static const char *const keys_rbw[] = {"fn", "length", "slide", NULL};
    static const char *const keys_cbvw[] = {"length", "slide", "partitions", NULL};
    const char *opname = cfg_op_names[op->kind];
    const char *const *keys = op->kind == OP_REDUCE_BY_KEY_AND_WINDOW ? keys_rbkw
                              : op->kind == OP_COUNT_BY_WINDOW        ? keys_cbw
                              : op->kind == OP_REDUCE_BY_WINDOW       ? keys_rbw
                                                                      : keys_cbvw;
    int rc = cfg_op_args(p, arg, opname, keys);
    int which = -1;
    if (rc == SL_OK) {
        rc = cfg_op_window_span(p, arg, opname, op);
    }
    if (rc == SL_OK &&
        (op->kind == OP_REDUCE_BY_KEY_AND_WINDOW || op->kind == OP_REDUCE_BY_WINDOW)) {
        rc = cfg_op_fn(p, arg, opname, op, &which);
    }
    if (rc == SL_OK && op->kind != OP_COUNT_BY_WINDOW && op->kind != OP_REDUCE_BY_WINDOW) {
        rc = cfg_op_partitions(p, arg, opname, op);
    }
    yaml_node_t *n;
    if (rc == SL_OK && (n = cfg_get(p, arg, "drop_zero")) && !cfg_is_null(p, n)) {
        rc = cfg_bool(p, n, "reduce_by_key_and_window.drop_zero", &op->drop_zero);
    }
    if (rc == SL_OK && (n = cfg_get(p, arg, "inverse")) && !cfg_is_null(p, n)) {
        rc = cfg_bool(p, n, "reduce_by_key_and_window.inverse", &op->inverse);
        if (rc == SL_OK && op->inverse && op->reduce != sl_reduce_sum) {
            return cfg_error(p, cfg_loc_of(n),
                             "reduce_by_key_and_window.inverse: true is available for fn sum "
                             "and count only (%s has no inverse)",
                             cfg_reducers[which]);
        }
        if (rc == SL_OK && op->inverse) {
            rc = cfg_op_needs_checkpoint(p, cfg_loc_of(n),
                                         "reduce_by_key_and_window with inverse: true");
        }
    }
    if (rc == SL_OK && op->kind == OP_COUNT_BY_VALUE_AND_WINDOW) {
        rc = cfg_op_needs_checkpoint(p, op->loc, "count_by_value_and_window");
    }
    if (rc != SL_OK) {
        return rc;
    }
    char span[96], parts[32] = "";
    cfg_span_desc(op, span, sizeof(span));
    if (op->partitions) {
        snprintf(parts, sizeof(parts), " (partitions %d)", op->partitions);
    }
    op->desc = cfg_strdupf("%s%s%s%s%s%s", opname, which >= 0 ? " " : "",
                           which >= 0 ? cfg_reducers[which] : "", span,
                           op->inverse ? " inverse" : "", op->drop_zero ? " drop_zero" : "");
    if (op->desc && parts[0]) {
        char *d = cfg_strdupf("%s%s", op->desc, parts);
        free(op->desc);
        op->desc = d;
    }
    return SL_OK;
}

static int cfg_op_running(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"fn", "ttl", "partitions", NULL};
    int which = -1;
    int rc = cfg_op_args(p, arg, "running", keys);
    if (rc == SL_OK) {
        rc = cfg_op_fn(p, arg, "running", op, &which);
    }
    if (rc == SL_OK) {
        rc = cfg_op_partitions(p, arg, "running", op);
    }
    yaml_node_t *n;
    if (rc == SL_OK && (n = cfg_get(p, arg, "ttl")) && !cfg_is_null(p, n)) {
        rc = cfg_duration(p, n, "running.ttl", 1, &op->ttl_ms);
    }
    if (rc == SL_OK) {
        rc = cfg_op_needs_checkpoint(p, op->loc, "op 'running'");
    }
    if (rc != SL_OK) {
        return rc;
    }
    char msg[256], ttl[32] = "";
    op->run = sl_yamlops_running_new(cfg_reducers[which], msg, sizeof(msg));
    if (!op->run) {
        return cfg_error(p, op->loc, "running: %s", msg);
    }
    if (op->ttl_ms) {
        cfg_fmt_duration(op->ttl_ms, ttl, sizeof(ttl));
    }
    if (op->partitions) {
        op->desc = cfg_strdupf("running %s%s%s (partitions %d)", cfg_reducers[which],
                               ttl[0] ? " ttl " : "", ttl, op->partitions);
    } else {
        op->desc = cfg_strdupf("running %s%s%s", cfg_reducers[which], ttl[0] ? " ttl " : "", ttl);
    }
    return SL_OK;
}

/* A per-record cost of burn: 20us, 0.5ms, 1s. */
static int cfg_burn_us(cfg_parser *p, yaml_node_t *n, const char *what, int64_t *us)
{
    const char *s;
    int rc = cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    if (sl_yamlops_parse_us(s, us) != SL_OK) {
        return cfg_error(p, cfg_loc_of(n),
                         "%s: bad per-record cost '%s' (write e.g. 20us, 0.5ms; at most 10s)", what,
                         s);
    }
    return SL_OK;
}

/* burn: COST | {per_record: COST, schedule: [{after: DURATION, per_record: COST}, ...]} */
static int cfg_op_burn(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"per_record", "schedule", NULL};
    static const char *const step_keys[] = {"after", "per_record", NULL};
    sl_yamlops_burn_step steps[SL_YAMLOPS_BURN_MAX_STEPS];
    size_t nsteps = 0;
    int64_t us = 0;
    int rc;
    if (arg->type == YAML_SCALAR_NODE) {
        rc = cfg_burn_us(p, arg, "burn", &us);
    } else if ((rc = cfg_op_args(p, arg, "burn", keys)) == SL_OK) {
        yaml_node_t *n = cfg_get(p, arg, "per_record");
        if (!n || cfg_is_null(p, n)) {
            return cfg_error(p, cfg_loc_of(arg), "missing required key 'per_record' in op 'burn'");
        }
        rc = cfg_burn_us(p, n, "burn.per_record", &us);
        yaml_node_t *sched = cfg_get(p, arg, "schedule");
        if (rc == SL_OK && sched && !cfg_is_null(p, sched)) {
            if (sched->type != YAML_SEQUENCE_NODE) {
                return cfg_error(p, cfg_loc_of(sched), "burn.schedule must be a list, got %s",
                                 cfg_kind(sched));
            }
            size_t k = (size_t)(sched->data.sequence.items.top - sched->data.sequence.items.start);
            if (k > SL_YAMLOPS_BURN_MAX_STEPS) {
                return cfg_error(p, cfg_loc_of(sched), "burn.schedule has more than %d steps",
                                 SL_YAMLOPS_BURN_MAX_STEPS);
            }
            for (size_t i = 0; i < k && rc == SL_OK; i++) {
                yaml_node_t *st = cfg_node(p, sched->data.sequence.items.start[i]);
                if ((rc = cfg_check_map(p, st, "a step of burn.schedule", step_keys)) != SL_OK) {
                    break;
                }
                yaml_node_t *after = cfg_get(p, st, "after");
                yaml_node_t *cost = cfg_get(p, st, "per_record");
                if (!after || cfg_is_null(p, after) || !cost || cfg_is_null(p, cost)) {
                    return cfg_error(p, cfg_loc_of(st),
                                     "a step of burn.schedule needs 'after' and 'per_record'");
                }
                rc = cfg_duration(p, after, "burn.schedule.after", 0, &steps[i].after_ms);
                if (rc == SL_OK) {
                    rc = cfg_burn_us(p, cost, "burn.schedule.per_record", &steps[i].per_record_us);
                }
                if (rc == SL_OK && i > 0 && steps[i].after_ms <= steps[i - 1].after_ms) {
                    return cfg_error(p, cfg_loc_of(after),
                                     "burn.schedule: 'after' must increase from step to step");
                }
                nsteps = i + 1;
            }
        }
    }
    if (rc != SL_OK) {
        return rc;
    }
    char msg[256];
    op->yop = sl_yamlops_burn_new(us, steps, nsteps, msg, sizeof(msg));
    if (!op->yop) {
        return cfg_error(p, op->loc, "burn: %s", msg);
    }
    op->desc = nsteps ? cfg_strdupf("burn %" PRId64 "us (schedule of %zu steps)", us, nsteps)
                      : cfg_strdupf("burn %" PRId64 "us", us);
    return SL_OK;
}

/* Parses one item of ops: NAME: ARG, or a bare NAME for ops without arguments. */
static int cfg_parse_op(cfg_parser *p, yaml_node_t *item, const char *where, cfg_op *op)
{
    yaml_node_t *name_node, *arg;
    op->loc = cfg_loc_of(item);
    if (item->type == YAML_SCALAR_NODE) {
        name_node = item;
        arg = NULL;
    } else if (item->type == YAML_MAPPING_NODE) {
        int rc = cfg_check_map(p, item, where, NULL);
        if (rc != SL_OK) {
            return rc;
        }
        size_t n = (size_t)(item->data.mapping.pairs.top - item->data.mapping.pairs.start);
        if (n != 1) {
            return cfg_error(p, op->loc,
                             "an op is a mapping with one key, the op's name (got "
                             "%zu keys); write each op as its own '- ' item",
                             n);
        }
        name_node = cfg_node(p, item->data.mapping.pairs.start->key);
        arg = cfg_node(p, item->data.mapping.pairs.start->value);
        if (cfg_is_null(p, arg)) {
            arg = NULL;
        }
    } else {
        return cfg_error(p, op->loc,
                         "an op must be a mapping such as '- split: whitespace', "
                         "got %s",
                         cfg_kind(item));
    }
    const char *name = cfg_text(p, name_node);
    int kind = -1;
    for (int i = 0; cfg_op_names[i]; i++) {
        if (strcmp(name, cfg_op_names[i]) == 0) {
            kind = i;
        }
    }
    if (kind < 0) {
        return cfg_unknown(p, cfg_loc_of(name_node), "op", name, where, cfg_op_names);
    }
    op->kind = (cfg_op_kind)kind;
    op->loc = cfg_loc_of(name_node);
    if (!arg && kind != OP_COUNT && kind != OP_COUNT_BY_VALUE) {
        return cfg_error(p, op->loc, "op '%s' needs an argument", name);
    }
    static const char *const none[] = {NULL};
    static const char *const parts[] = {"partitions", NULL};
    static const char *const map_words[] = {"lower", "upper", "trim", NULL};
    char msg[256];
    int rc;
    int64_t v;
    switch (op->kind) {
    case OP_SPLIT: return cfg_op_split(p, arg, op);
    case OP_KEY: return cfg_op_key(p, arg, op);
    case OP_VALUE: return cfg_op_value(p, arg, op);
    case OP_FILTER: return cfg_op_filter(p, arg, op);
    case OP_REDUCE_BY_KEY: return cfg_op_reduce(p, arg, op, true);
    case OP_REDUCE: return cfg_op_reduce(p, arg, op, false);
    case OP_COUNT:
        op->desc = strdup("count");
        return arg ? cfg_op_args(p, arg, "count", none) : SL_OK;
    case OP_COUNT_BY_VALUE:
        if (arg && ((rc = cfg_op_args(p, arg, "count_by_value", parts)) ||
                    (rc = cfg_op_partitions(p, arg, "count_by_value", op)))) {
            return rc;
        }
        op->desc = op->partitions ? cfg_strdupf("count_by_value (partitions %d)", op->partitions)
                                  : strdup("count_by_value");
        return SL_OK;
    case OP_MAP: {
        int which;
        if ((rc = cfg_choice(p, arg, "map", map_words, &which)) != SL_OK) {
            return rc;
        }
        op->yop = sl_yamlops_transform_new(map_words[which], msg, sizeof(msg));
        op->desc = cfg_strdupf("map %s", map_words[which]);
        return op->yop ? SL_OK : cfg_error(p, cfg_loc_of(arg), "map: %s", msg);
    }
    case OP_REPARTITION:
        if ((rc = cfg_int(p, arg, "repartition", 1, CFG_MAX_PARTITIONS, &v)) != SL_OK) {
            return rc;
        }
        op->partitions = (int)v;
        op->desc = cfg_strdupf("repartition %d", op->partitions);
        return SL_OK;
    case OP_WINDOW: return cfg_op_window(p, arg, op);
    case OP_JOIN: return cfg_op_join(p, arg, op);
    case OP_REDUCE_BY_KEY_AND_WINDOW:
    case OP_COUNT_BY_WINDOW:
    case OP_REDUCE_BY_WINDOW:
    case OP_COUNT_BY_VALUE_AND_WINDOW: return cfg_op_windowed(p, arg, op);
    case OP_RUNNING: return cfg_op_running(p, arg, op);
    case OP_BURN: return cfg_op_burn(p, arg, op);
    }
    return SL_OK;
}

static const char *const cfg_stream_keys[] = {"name", "from", "ops", NULL};

static int cfg_parse_stream(cfg_parser *p, yaml_node_t *item, cfg_stream *st)
{
    int rc = cfg_check_map(p, item, "a stream", cfg_stream_keys);
    if (rc != SL_OK) {
        return rc;
    }
    cfg_loc name_loc;
    if ((rc = cfg_name(p, item, "a stream", &st->name, &name_loc)) != SL_OK) {
        return rc;
    }
    st->loc = cfg_loc_of(item);
    if ((rc = cfg_unique(p, st->name, name_loc, false)) != SL_OK) {
        return rc;
    }
    char where[160];
    snprintf(where, sizeof(where), "stream '%s'", st->name);
    yaml_node_t *from = cfg_get(p, item, "from");
    if (!from || cfg_is_null(p, from)) {
        return cfg_error(p, st->loc, "missing required key 'from' in %s", where);
    }
    st->from_loc = cfg_loc_of(from);
    if (from->type == YAML_MAPPING_NODE) {
        return cfg_error(p, st->from_loc,
                         "'from' in %s must be a name or a list of names, got "
                         "a mapping",
                         where);
    }
    size_t n = from->type == YAML_SEQUENCE_NODE
                   ? (size_t)(from->data.sequence.items.top - from->data.sequence.items.start)
                   : 1;
    if (n == 0) {
        return cfg_error(p, st->from_loc, "'from' in %s is an empty list", where);
    }
    if (!(st->from = calloc(n, sizeof(cfg_ref)))) {
        return cfg_error(p, st->loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *e = from->type == YAML_SEQUENCE_NODE
                             ? cfg_node(p, from->data.sequence.items.start[i])
                             : from;
        const char *s;
        if ((rc = cfg_scalar(p, e, "a name in 'from'", &s)) != SL_OK) {
            return rc;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(st->from[j].name, s) == 0) {
                return cfg_error(p, cfg_loc_of(e), "'%s' is listed twice in 'from' of %s", s,
                                 where);
            }
        }
        st->from[i].name = strdup(s);
        st->from[i].loc = cfg_loc_of(e);
        st->nfrom = i + 1;
        if (!st->from[i].name) {
            return cfg_error(p, st->loc, "out of memory");
        }
    }
    yaml_node_t *ops = cfg_get(p, item, "ops");
    if (!ops || cfg_is_null(p, ops)) {
        return SL_OK;
    }
    if (ops->type != YAML_SEQUENCE_NODE) {
        return cfg_error(p, cfg_loc_of(ops), "'ops' in %s must be a list of ops, got %s", where,
                         cfg_kind(ops));
    }
    n = (size_t)(ops->data.sequence.items.top - ops->data.sequence.items.start);
    if (n == 0) {
        return SL_OK;
    }
    if (!(st->ops = calloc(n, sizeof(cfg_op)))) {
        return cfg_error(p, st->loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        st->nops = i + 1;
        yaml_node_t *e = cfg_node(p, ops->data.sequence.items.start[i]);
        if ((rc = cfg_parse_op(p, e, where, &st->ops[i])) != SL_OK) {
            return rc;
        }
        if (!st->ops[i].desc) {
            return cfg_error(p, st->ops[i].loc, "out of memory");
        }
    }
    return SL_OK;
}

/* ==== Sections ==== */

/* The items of a list section; *n = 0 for an absent or empty section. */
static int cfg_section_items(cfg_parser *p, yaml_node_t *sec, const char *name,
                             yaml_node_item_t **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    if (!sec || cfg_is_null(p, sec)) {
        return SL_OK;
    }
    if (sec->type != YAML_SEQUENCE_NODE) {
        return cfg_error(p, cfg_loc_of(sec),
                         "section '%s' must be a list of items ('- name: "
                         "...'), got %s",
                         name, cfg_kind(sec));
    }
    *items = sec->data.sequence.items.start;
    *n = (size_t)(sec->data.sequence.items.top - sec->data.sequence.items.start);
    return SL_OK;
}

static const char *const cfg_sections[] = {"app", "sources", "streams", "sinks", "http", NULL};

/* ==== References, cycles and slides ==== */

static const char *cfg_ref_name(const sl_config *cfg, size_t idx)
{
    return idx < cfg->nsources ? cfg->sources[idx].name : cfg->streams[idx - cfg->nsources].name;
}

static int cfg_resolve(cfg_parser *p, cfg_ref *ref, const char *what)
{
    sl_config *cfg = p->cfg;
    for (size_t i = 0; i < cfg->nsources + cfg->nstreams; i++) {
        if (strcmp(cfg_ref_name(cfg, i), ref->name) == 0) {
            ref->idx = i;
            return SL_OK;
        }
    }
    const char *names[256];
    size_t n = 0;
    for (size_t i = 0; i < cfg->nsources + cfg->nstreams && n < 255; i++) {
        names[n++] = cfg_ref_name(cfg, i);
    }
    names[n] = NULL;
    char list[1024];
    const char *close = cfg_closest(ref->name, names);
    char hint[160] = "";
    if (close) {
        snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
    }
    return cfg_error(p, ref->loc, "unknown stream or source '%s' in %s%s; known: %s", ref->name,
                     what, hint, cfg_join(names, list, sizeof(list)));
}

/* Depth-first visit for the build order; state: 0 new, 1 on the path, 2 done. */
static int cfg_visit(cfg_parser *p, size_t s, int *state, size_t *path, size_t depth,
                     size_t *norder)
{
    sl_config *cfg = p->cfg;
    cfg_stream *st = &cfg->streams[s];
    state[s] = 1;
    path[depth] = s;
    size_t nrefs = st->nfrom + st->nops;
    for (size_t r = 0; r < nrefs; r++) {
        cfg_ref *ref = r < st->nfrom ? &st->from[r] : &st->ops[r - st->nfrom].with;
        if (r >= st->nfrom && st->ops[r - st->nfrom].kind != OP_JOIN) {
            continue;
        }
        if (ref->idx < cfg->nsources) {
            continue;
        }
        size_t t = ref->idx - cfg->nsources;
        if (state[t] == 1) {
            /* path[k..depth] each read the next one and path[depth] reads t == path[k]:
             * print it the way data flows, "x -> y" when y reads x. */
            cfg_buf b = {0};
            size_t k = 0;
            while (path[k] != t) {
                k++;
            }
            const char *first = cfg->streams[t].name;
            int rc = cfg_buf_add(&b, first, strlen(first));
            for (size_t m = depth + 1; rc == SL_OK && m-- > k;) {
                const char *nm = cfg->streams[path[m]].name;
                rc = cfg_buf_add(&b, " -> ", 4);
                rc = rc == SL_OK ? cfg_buf_add(&b, nm, strlen(nm)) : rc;
            }
            rc = cfg_error(p, ref->loc, "cycle among streams: %s", b.s ? b.s : "?");
            free(b.s);
            return rc;
        }
        if (state[t] == 0) {
            int rc = cfg_visit(p, t, state, path, depth + 1, norder);
            if (rc != SL_OK) {
                return rc;
            }
        }
    }
    state[s] = 2;
    cfg->order[(*norder)++] = s;
    return SL_OK;
}

static int64_t cfg_slide_of(const sl_config *cfg, size_t idx)
{
    return idx < cfg->nsources ? cfg->batch_ms : cfg->streams[idx - cfg->nsources].slide_ms;
}

/* A kafka source gives records the messages' headers only with headers: true (finding them
 * costs a parse per message). Turns it on for the kafka sources whose records reach an op
 * that reads a header or a kafka sink that forwards them (headers not false), unless the
 * file sets it. Needs the build order. */
static int cfg_want_headers(cfg_parser *p)
{
    sl_config *cfg = p->cfg;
    size_t n = cfg->nsources + cfg->nstreams;
    bool *need = calloc(n ? n : 1, sizeof(*need));
    if (!need) {
        return cfg_error(p, cfg->app_loc, "out of memory");
    }
    for (size_t i = 0; i < cfg->nsinks; i++) {
        const cfg_endpoint *ep = &cfg->sinks[i];
        const char *h = sl_options_get(ep->opts, "headers");
        bool off = h && (!strcasecmp(h, "false") || !strcasecmp(h, "no") || !strcasecmp(h, "off") ||
                         !strcmp(h, "0"));
        if (strcmp(ep->type, "kafka") == 0 && !off && ep->from.idx < n) {
            need[ep->from.idx] = true;
        }
        const char *cols = sl_options_get(ep->opts, "columns");
        if (strcmp(ep->type, "postgres") == 0 && cols && strstr(cols, "header:") &&
            ep->from.idx < n) {
            need[ep->from.idx] = true; /* a column maps a header */
        }
    }
    /* Streams in reverse build order: a stream's need reaches its parents first. */
    for (size_t k = cfg->nstreams; k-- > 0;) {
        size_t s = cfg->order[k];
        const cfg_stream *st = &cfg->streams[s];
        for (size_t j = 0; j < st->nops; j++) {
            need[cfg->nsources + s] = need[cfg->nsources + s] || st->ops[j].reads_header;
        }
        if (!need[cfg->nsources + s]) {
            continue;
        }
        for (size_t j = 0; j < st->nfrom; j++) {
            need[st->from[j].idx] = true;
        }
        for (size_t j = 0; j < st->nops; j++) {
            if (st->ops[j].kind == OP_JOIN) {
                need[st->ops[j].with.idx] = true;
            }
        }
    }
    int rc = SL_OK;
    for (size_t i = 0; i < cfg->nsources && rc == SL_OK; i++) {
        cfg_endpoint *ep = &cfg->sources[i];
        if (need[i] && strcmp(ep->type, "kafka") == 0 && !sl_options_get(ep->opts, "headers") &&
            sl_options_set(ep->opts, "headers", "true") != SL_OK) {
            rc = cfg_error(p, ep->loc, "out of memory");
        }
    }
    free(need);
    return rc;
}

/* Computes each stream's slide in build order and checks windows, unions and joins. */
static int cfg_check_slides(cfg_parser *p)
{
    sl_config *cfg = p->cfg;
    char a[32], b[32];
    for (size_t i = 0; i < cfg->nstreams; i++) {
        cfg_stream *st = &cfg->streams[cfg->order[i]];
        int64_t slide = cfg_slide_of(cfg, st->from[0].idx);
        for (size_t j = 1; j < st->nfrom; j++) {
            int64_t other = cfg_slide_of(cfg, st->from[j].idx);
            if (other != slide) {
                cfg_fmt_duration(slide, a, sizeof(a));
                cfg_fmt_duration(other, b, sizeof(b));
                return cfg_error(p, st->from[j].loc,
                                 "cannot union streams with different "
                                 "slides: '%s' slides every %s, '%s' every %s",
                                 st->from[0].name, a, st->from[j].name, b);
            }
        }
        for (size_t j = 0; j < st->nops; j++) {
            cfg_op *op = &st->ops[j];
            if (op->kind == OP_WINDOW || op->kind == OP_REDUCE_BY_KEY_AND_WINDOW ||
                op->kind == OP_COUNT_BY_WINDOW || op->kind == OP_REDUCE_BY_WINDOW ||
                op->kind == OP_COUNT_BY_VALUE_AND_WINDOW) {
                cfg_fmt_duration(slide, b, sizeof(b));
                if (op->length_ms % slide != 0) {
                    cfg_fmt_duration(op->length_ms, a, sizeof(a));
                    return cfg_error(p, op->loc,
                                     "window length %s is not a multiple of the "
                                     "parent's slide %s (in stream '%s')",
                                     a, b, st->name);
                }
                if (op->slide_ms % slide != 0) {
                    cfg_fmt_duration(op->slide_ms, a, sizeof(a));
                    return cfg_error(p, op->loc,
                                     "window slide %s is not a multiple of the "
                                     "parent's slide %s (in stream '%s')",
                                     a, b, st->name);
                }
                slide = op->slide_ms ? op->slide_ms : slide;
            } else if (op->kind == OP_JOIN) {
                int64_t other = cfg_slide_of(cfg, op->with.idx);
                if (other != slide) {
                    cfg_fmt_duration(slide, a, sizeof(a));
                    cfg_fmt_duration(other, b, sizeof(b));
                    return cfg_error(p, op->with.loc,
                                     "cannot join streams with different "
                                     "slides: '%s' slides every %s here, '%s' every %s",
                                     st->name, a, op->with.name, b);
                }
            }
        }
        st->slide_ms = slide;
    }
    return SL_OK;
}

static int cfg_check_graph(cfg_parser *p, cfg_loc root_loc)
{
    sl_config *cfg = p->cfg;
    int rc;
    for (size_t i = 0; i < cfg->nstreams; i++) {
        cfg_stream *st = &cfg->streams[i];
        char what[160];
        snprintf(what, sizeof(what), "'from' of stream '%s'", st->name);
        for (size_t j = 0; j < st->nfrom; j++) {
            if ((rc = cfg_resolve(p, &st->from[j], what)) != SL_OK) {
                return rc;
            }
        }
        snprintf(what, sizeof(what), "'join' of stream '%s'", st->name);
        for (size_t j = 0; j < st->nops; j++) {
            if (st->ops[j].kind == OP_JOIN &&
                (rc = cfg_resolve(p, &st->ops[j].with, what)) != SL_OK) {
                return rc;
            }
        }
    }
    for (size_t i = 0; i < cfg->nsinks; i++) {
        char what[160];
        snprintf(what, sizeof(what), "'from' of sink '%s'", cfg->sinks[i].name);
        if ((rc = cfg_resolve(p, &cfg->sinks[i].from, what)) != SL_OK) {
            return rc;
        }
    }
    if (cfg->nsources == 0) {
        return cfg_error(p, root_loc,
                         "no sources: a pipeline needs at least one item in "
                         "'sources'");
    }
    if (cfg->nsinks == 0) {
        return cfg_error(p, root_loc,
                         "no sinks: a pipeline needs at least one item in 'sinks' "
                         "(such as type: stdout)");
    }
    size_t n = cfg->nstreams ? cfg->nstreams : 1;
    int *state = calloc(n, sizeof(int));
    size_t *path = calloc(n, sizeof(size_t));
    cfg->order = calloc(n, sizeof(size_t));
    rc = state && path && cfg->order ? SL_OK : cfg_error(p, root_loc, "out of memory");
    size_t norder = 0;
    for (size_t i = 0; rc == SL_OK && i < cfg->nstreams; i++) {
        if (state[i] == 0) {
            rc = cfg_visit(p, i, state, path, 0, &norder);
        }
    }
    free(state);
    free(path);
    if (rc == SL_OK) {
        rc = cfg_check_slides(p);
    }
    return rc == SL_OK ? cfg_want_headers(p) : rc;
}

/* ==== Loading ==== */

static void cfg_free_endpoint(cfg_endpoint *ep)
{
    for (size_t i = 0; i < ep->nopt_locs; i++) {
        free(ep->opt_keys[i]);
    }
    free(ep->opt_keys);
    free(ep->opt_locs);
    for (size_t i = 0; i < ep->nflat; i++) {
        free(ep->flat_keys[i]);
    }
    free(ep->flat_keys);
    free(ep->kv);
    free(ep->name);
    free(ep->type);
    free(ep->from.name);
    sl_options_destroy(ep->opts);
}

void sl_config_destroy(sl_config *cfg)
{
    if (!cfg) {
        return;
    }
    for (size_t i = 0; i < cfg->nsources; i++) {
        cfg_free_endpoint(&cfg->sources[i]);
    }
    for (size_t i = 0; i < cfg->nsinks; i++) {
        cfg_free_endpoint(&cfg->sinks[i]);
    }
    for (size_t i = 0; i < cfg->nstreams; i++) {
        cfg_stream *st = &cfg->streams[i];
        for (size_t j = 0; j < st->nfrom; j++) {
            free(st->from[j].name);
        }
        for (size_t j = 0; j < st->nops; j++) {
            free(st->ops[j].desc);
            free(st->ops[j].with.name);
            sl_yamlops_destroy(st->ops[j].yop);
            sl_yamlops_destroy(st->ops[j].run);
        }
        free(st->from);
        free(st->ops);
        free(st->name);
    }
    free(cfg->sources);
    free(cfg->streams);
    free(cfg->sinks);
    free(cfg->order);
    free(cfg->path);
    free(cfg->name);
    free(cfg->checkpoint_dir);
    free(cfg->http_listen);
    if (cfg->http_token) {
        memset(cfg->http_token, 0, strlen(cfg->http_token));
    }
    free(cfg->http_token);
    free(cfg);
}

/* Reports a libyaml error with its position. */
static int cfg_yaml_error(cfg_parser *p, yaml_parser_t *yp, const char *text, size_t len)
{
    cfg_loc loc = cfg_loc_at(yp->problem_mark.line, yp->problem_mark.column);
    if (yp->error == YAML_READER_ERROR) {
        /* The reader gives a byte offset: count lines up to it. */
        size_t off = yp->problem_offset < len ? yp->problem_offset : len;
        size_t line = 0, col = 0;
        for (size_t i = 0; i < off; i++) {
            if (text[i] == '\n') {
                line++;
                col = 0;
            } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
                col++;
            }
        }
        loc = cfg_loc_at(line, col);
        return cfg_error(p, loc, "not a valid YAML text: %s", yp->problem ? yp->problem : "?");
    }
    if (yp->context) {
        return cfg_error(p, loc, "YAML syntax error: %s (%s at line %d, column %d)",
                         yp->problem ? yp->problem : "?", yp->context,
                         (int)yp->context_mark.line + 1, (int)yp->context_mark.column + 1);
    }
    return cfg_error(p, loc, "YAML syntax error: %s", yp->problem ? yp->problem : "?");
}

static int cfg_parse_doc(cfg_parser *p)
{
    sl_config *cfg = p->cfg;
    yaml_node_t *root = yaml_document_get_root_node(&p->doc);
    cfg_loc root_loc = cfg_loc_of(root);
    if (root->type != YAML_MAPPING_NODE) {
        return cfg_error(p, root_loc,
                         "the top level must be a mapping with the sections app, "
                         "sources, streams and sinks; got %s",
                         cfg_kind(root));
    }
    int rc = cfg_check_map(p, root, "the top level", cfg_sections);
    if (rc != SL_OK) {
        return rc;
    }
    if ((rc = cfg_parse_app(p, cfg_get(p, root, "app"), root_loc)) != SL_OK) {
        return rc;
    }
    if ((rc = cfg_parse_http(p, cfg_get(p, root, "http"))) != SL_OK) {
        return rc;
    }
    yaml_node_item_t *items;
    size_t n;
    /* Sources */
    if ((rc = cfg_section_items(p, cfg_get(p, root, "sources"), "sources", &items, &n))) {
        return rc;
    }
    if (n && !(cfg->sources = calloc(n, sizeof(cfg_endpoint)))) {
        return cfg_error(p, root_loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cfg->nsources = i + 1;
        if ((rc = cfg_parse_endpoint(p, cfg_node(p, items[i]), SL_SOURCE, &cfg->sources[i]))) {
            return rc;
        }
    }
    /* Streams */
    if ((rc = cfg_section_items(p, cfg_get(p, root, "streams"), "streams", &items, &n))) {
        return rc;
    }
    if (n && !(cfg->streams = calloc(n, sizeof(cfg_stream)))) {
        return cfg_error(p, root_loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cfg->nstreams = i + 1;
        if ((rc = cfg_parse_stream(p, cfg_node(p, items[i]), &cfg->streams[i])) != SL_OK) {
            return rc;
        }
    }
    /* Sinks */
    if ((rc = cfg_section_items(p, cfg_get(p, root, "sinks"), "sinks", &items, &n))) {
        return rc;
    }
    if (n && !(cfg->sinks = calloc(n, sizeof(cfg_endpoint)))) {
        return cfg_error(p, root_loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cfg->nsinks = i + 1;
        if ((rc = cfg_parse_endpoint(p, cfg_node(p, items[i]), SL_SINK, &cfg->sinks[i]))) {
            return rc;
        }
    }
    return cfg_check_graph(p, root_loc);
}

int sl_config_load_string(const char *text, size_t len, const char *name, sl_config **out,
                          char *errstr, size_t errsize)
{
    cfg_parser p = {.path = name ? name : "<config>", .errstr = errstr, .errsize = errsize};
    if (errstr && errsize) {
        errstr[0] = '\0';
    }
    *out = NULL;
    p.cfg = calloc(1, sizeof(sl_config));
    if (!p.cfg || !(p.cfg->path = strdup(p.path))) {
        sl_config_destroy(p.cfg);
        cfg_error(&p, cfg_loc_at(0, 0), "out of memory");
        return SL_ERR_NOMEM;
    }
    yaml_parser_t yp;
    if (!yaml_parser_initialize(&yp)) {
        sl_config_destroy(p.cfg);
        cfg_error(&p, cfg_loc_at(0, 0), "out of memory");
        return SL_ERR_NOMEM;
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
    int rc = SL_OK;
    if (!yaml_parser_load(&yp, &p.doc)) {
        rc = cfg_yaml_error(&p, &yp, text, len);
    } else {
        p.has_doc = true;
        yaml_node_t *root = yaml_document_get_root_node(&p.doc);
        if (!root) {
            rc = cfg_error(&p, cfg_loc_at(0, 0),
                           "empty configuration: no YAML document (a "
                           "pipeline needs at least the sections app, sources and sinks)");
        } else {
            yaml_document_t next;
            if (!yaml_parser_load(&yp, &next)) {
                rc = cfg_yaml_error(&p, &yp, text, len);
            } else {
                yaml_node_t *r2 = yaml_document_get_root_node(&next);
                if (r2) {
                    rc = cfg_error(&p, cfg_loc_of(r2),
                                   "a second YAML document: a "
                                   "configuration is one document");
                }
                yaml_document_delete(&next);
            }
        }
    }
    if (rc == SL_OK) {
        rc = cfg_expand_all(&p);
    }
    if (rc == SL_OK) {
        rc = cfg_parse_doc(&p);
    }
    if (p.text) {
        for (size_t i = 0; i < p.nnodes; i++) {
            free(p.text[i]);
        }
        free(p.text);
    }
    if (p.has_doc) {
        yaml_document_delete(&p.doc);
    }
    yaml_parser_delete(&yp);
    if (rc != SL_OK) {
        sl_config_destroy(p.cfg);
        return rc;
    }
    *out = p.cfg;
    return SL_OK;
}

int sl_config_load(const char *path, sl_config **out, char *errstr, size_t errsize)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    cfg_buf b = {0};
    int rc = cfg_buf_add(&b, "", 0);
    int err = 0;
    if (!f) {
        err = errno;
    } else {
        char chunk[8192];
        size_t n;
        while (rc == SL_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
            rc = cfg_buf_add(&b, chunk, n);
        }
        if (ferror(f)) {
            err = errno ? errno : EIO;
        }
        fclose(f);
    }
    if (err || rc != SL_OK) {
        snprintf(errstr, errsize, "%s:1:1: error: cannot read the file: %s", path,
                 err ? strerror(err) : "out of memory");
        free(b.s);
        return err ? SL_ERR_IO : SL_ERR_NOMEM;
    }
    rc = sl_config_load_string(b.s, b.len, path, out, errstr, errsize);
    free(b.s);
    return rc;
}

/* ==== Accessors ==== */

const char *sl_config_app_name(const sl_config *cfg)
{
    return cfg->name;
}

int64_t sl_config_batch_interval(const sl_config *cfg)
{
    return cfg->batch_ms;
}

bool sl_config_log_level(const sl_config *cfg, sl_log_level *level)
{
    if (cfg->has_log_level) {
        *level = cfg->log_level;
    }
    return cfg->has_log_level;
}

/* ==== Building ==== */

/* A build error at loc, in the load error format. Secrets of ep are scrubbed. */
static sl_context *cfg_build_fail(const sl_config *cfg, sl_context *ctx, cfg_loc loc,
                                  const cfg_endpoint *ep, char *errstr, size_t errsize,
                                  const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static sl_context *cfg_build_fail(const sl_config *cfg, sl_context *ctx, cfg_loc loc,
                                  const cfg_endpoint *ep, char *errstr, size_t errsize,
                                  const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ep) {
        cfg_scrub(msg, sizeof(msg), cfg_common_options(ep->role), sl_connector_options(ep->conn),
                  ep->opts);
    }
    for (char *c = msg; *c; c++) {
        if (*c == '\n' || *c == '\r') {
            *c = ' ';
        }
    }
    snprintf(errstr, errsize, "%s:%d:%d: error: %s", cfg->path, loc.line, loc.col, msg);
    sl_context_destroy(ctx);
    return NULL;
}

/* Where an engine message about an endpoint points in the file: at the value of an option
 * it names ('key' or "key: "), else at the item. */
static cfg_loc cfg_endpoint_msg_loc(const cfg_endpoint *ep, const char *msg)
{
    for (size_t i = 0; i < ep->nopt_locs; i++) {
        const char *k = ep->opt_keys[i];
        size_t n = strlen(k);
        for (const char *at = strstr(msg, k); at; at = strstr(at + 1, k)) {
            bool quoted = at > msg && at[-1] == '\'' && at[n] == '\'';
            bool labeled = (at == msg || at[-1] == ' ') && at[n] == ':' && at[n + 1] == ' ';
            if (quoted || labeled) {
                return ep->opt_locs[i];
            }
        }
    }
    return ep->loc;
}

/* Builds "TYPE ROLE 'NAME': MSG", unless MSG already names the instance. */
static void cfg_endpoint_msg(const cfg_endpoint *ep, const char *msg, char *out, size_t size)
{
    char quoted[256];
    snprintf(quoted, sizeof(quoted), "'%s'", ep->name);
    if (msg[0] && strstr(msg, quoted)) {
        snprintf(out, size, "%s", msg);
    } else {
        snprintf(out, size, "%s %s '%s': %s", ep->type, ep->role == SL_SOURCE ? "source" : "sink",
                 ep->name, msg[0] ? msg : "cannot be created");
    }
}

/* Applies one op to s through the public API. NULL when the engine refuses. */
static sl_stream *cfg_apply_op(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    switch (op->kind) {
    case OP_SPLIT: return sl_stream_flat_map(s, sl_yamlops_flat_map, op->yop);
    case OP_KEY: return sl_stream_key_by(s, sl_yamlops_map, op->yop);
    case OP_VALUE: return sl_stream_map_values(s, sl_yamlops_map, op->yop);
    case OP_FILTER: return sl_stream_filter(s, sl_yamlops_filter, op->yop);
    case OP_REDUCE_BY_KEY:
        if (op->yop) {
            s = sl_stream_map_values(s, sl_yamlops_map, op->yop);
        }
        return sl_stream_reduce_by_key(s, op->reduce, NULL, op->partitions);
    case OP_REDUCE:
        if (op->yop) {
            s = sl_stream_map_values(s, sl_yamlops_map, op->yop);
        }
        return sl_stream_reduce(s, op->reduce, NULL);
    case OP_COUNT: return sl_stream_count(s);
    case OP_COUNT_BY_VALUE: return sl_stream_count_by_value(s, op->partitions);
    case OP_MAP: return sl_stream_map(s, sl_yamlops_map, op->yop);
    case OP_BURN: return sl_stream_map(s, sl_yamlops_burn, op->yop);
    case OP_REPARTITION: return sl_stream_repartition(s, op->partitions);
    case OP_WINDOW: return sl_stream_window(s, op->length_ms, op->slide_ms);
    case OP_JOIN:
        if (op->left) {
            return sl_stream_left_join(s, handles[op->with.idx], NULL, NULL, op->partitions);
        }
        return sl_stream_join(s, handles[op->with.idx], NULL, NULL, op->partitions);
    case OP_REDUCE_BY_KEY_AND_WINDOW:
        if (op->yop) {
            s = sl_stream_map_values(s, sl_yamlops_map, op->yop);
        }
        return sl_stream_reduce_by_key_and_window(s, op->reduce,
                                                  op->inverse ? sl_reduce_sum_inverse : NULL,
                                                  op->drop_zero ? sl_filter_nonzero : NULL, NULL,
                                                  op->length_ms, op->slide_ms, op->partitions);
    case OP_COUNT_BY_WINDOW: return sl_stream_count_by_window(s, op->length_ms, op->slide_ms);
    case OP_REDUCE_BY_WINDOW:
        if (op->yop) {
            s = sl_stream_map_values(s, sl_yamlops_map, op->yop);
        }
        return sl_stream_reduce_by_window(s, op->reduce, NULL, op->length_ms, op->slide_ms);
    case OP_COUNT_BY_VALUE_AND_WINDOW:
        return sl_stream_count_by_value_and_window(s, op->length_ms, op->slide_ms, op->partitions);
    case OP_RUNNING:
        /* One record per key and batch (reduced first), folded into the key's state. */
        if (op->yop) {
            s = sl_stream_map_values(s, sl_yamlops_map, op->yop);
        }
        s = sl_stream_reduce_by_key(s, op->reduce, NULL, op->partitions);
        return sl_stream_map_with_state(s, sl_yamlops_running, op->run, op->ttl_ms, op->partitions);
    }
    return NULL;
}

sl_context *sl_config_build(const sl_config *cfg, char *errstr, size_t errsize)
{
    char msg[512];
    sl_context_conf conf = {
        .name = cfg->name,
        .batch_interval_ms = cfg->batch_ms,
        .workers = cfg->workers,
        .checkpoint_dir = cfg->checkpoint_dir,
        .block_interval_ms = cfg->block_ms,
        .default_partitions = cfg->partitions,
    };
    msg[0] = '\0';
    sl_context *ctx = sl_context_new(&conf, msg, sizeof(msg));
    if (!ctx) {
        return cfg_build_fail(cfg, NULL, cfg->app_loc, NULL, errstr, errsize,
                              "cannot create the context: %s", msg[0] ? msg : "failed");
    }
    if (sl_context_set_backpressure(ctx, &cfg->backpressure, msg, sizeof(msg)) != SL_OK) {
        return cfg_build_fail(cfg, ctx, cfg->app_loc, NULL, errstr, errsize, "%s", msg);
    }
    size_t total = cfg->nsources + cfg->nstreams;
    sl_stream **handles = calloc(total ? total : 1, sizeof(sl_stream *));
    if (!handles) {
        return cfg_build_fail(cfg, ctx, cfg->app_loc, NULL, errstr, errsize, "out of memory");
    }
    for (size_t i = 0; i < cfg->nsources; i++) {
        const cfg_endpoint *ep = &cfg->sources[i];
        msg[0] = '\0';
        handles[i] = sl_context_add_source(ctx, ep->type, ep->name, ep->opts, msg, sizeof(msg));
        if (!handles[i]) {
            char full[768];
            cfg_endpoint_msg(ep, msg, full, sizeof(full));
            free(handles);
            return cfg_build_fail(cfg, ctx, cfg_endpoint_msg_loc(ep, msg), ep, errstr, errsize,
                                  "%s", full);
        }
    }
    for (size_t i = 0; i < cfg->nstreams; i++) {
        const cfg_stream *st = &cfg->streams[cfg->order[i]];
        sl_stream *s = handles[st->from[0].idx];
        for (size_t j = 1; s && j < st->nfrom; j++) {
            s = sl_stream_union(s, handles[st->from[j].idx]);
        }
        if (!s) {
            free(handles);
            return cfg_build_fail(cfg, ctx, st->from_loc, NULL, errstr, errsize,
                                  "stream '%s': the engine refused the union of its inputs "
                                  "(see the log above)",
                                  st->name);
        }
        for (size_t j = 0; j < st->nops; j++) {
            const cfg_op *op = &st->ops[j];
            s = cfg_apply_op(op, s, handles);
            if (!s) {
                free(handles);
                return cfg_build_fail(cfg, ctx, op->loc, NULL, errstr, errsize,
                                      "stream '%s': the engine refused op '%s' (see the log "
                                      "above)",
                                      st->name, op->desc);
            }
            if (j + 1 < st->nops) {
                char nm[256];
                snprintf(nm, sizeof(nm), "%s/%zu.%s", st->name, j + 1, cfg_op_names[op->kind]);
                sl_stream_set_name(s, nm);
            }
        }
        if (st->nops > 0 || st->nfrom > 1) {
            sl_stream_set_name(s, st->name);
        }
        handles[cfg->nsources + cfg->order[i]] = s;
    }
    for (size_t i = 0; i < cfg->nsinks; i++) {
        const cfg_endpoint *ep = &cfg->sinks[i];
        msg[0] = '\0';
        int rc =
            sl_stream_to(handles[ep->from.idx], ep->type, ep->name, ep->opts, msg, sizeof(msg));
        if (rc != SL_OK) {
            char full[768];
            if (!msg[0]) {
                snprintf(msg, sizeof(msg), "%s", sl_err2str(rc));
            }
            cfg_endpoint_msg(ep, msg, full, sizeof(full));
            free(handles);
            return cfg_build_fail(cfg, ctx, cfg_endpoint_msg_loc(ep, msg), ep, errstr, errsize,
                                  "%s", full);
        }
    }
    free(handles);
    return ctx;
}

/* ==== Printing ==== */

static void cfg_print_options(const cfg_endpoint *ep, FILE *f)
{
    const sl_option *common = cfg_common_options(ep->role);
    const sl_option *copts = sl_connector_options(ep->conn);
    for (size_t i = 0; i < sl_options_count(ep->opts); i++) {
        const char *k, *v;
        sl_options_at(ep->opts, i, &k, &v);
        if (strcmp(k, "name") == 0 || strcmp(k, "type") == 0 || strcmp(k, "from") == 0) {
            continue;
        }
        const sl_option *o = cfg_find_option(common, copts, k);
        bool secret = o && (o->flags & SL_OPT_SECRET);
        fprintf(f, "      %s: %s\n", k, secret ? "***" : v);
    }
}

void sl_config_print_graph(const sl_config *cfg, FILE *f)
{
    char d[32], b[32];
    cfg_fmt_duration(cfg->batch_ms, d, sizeof(d));
    fprintf(f, "app: %s\n", cfg->name);
    fprintf(f, "  batch_interval: %s\n", d);
    if (cfg->workers) {
        fprintf(f, "  workers: %d\n", cfg->workers);
    } else {
        fprintf(f, "  workers: auto (number of cores)\n");
    }
    if (cfg->partitions) {
        fprintf(f, "  partitions: %d\n", cfg->partitions);
    }
    if (cfg->block_ms) {
        cfg_fmt_duration(cfg->block_ms, b, sizeof(b));
        fprintf(f, "  block_interval: %s\n", b);
    }
    if (cfg->checkpoint_dir) {
        fprintf(f, "  checkpoint_dir: %s\n", cfg->checkpoint_dir);
    }
    if (cfg->has_log_level) {
        fprintf(f, "  log_level: %s\n", cfg_log_levels[cfg->log_level]);
    }
    fprintf(f, "sources:\n");
    for (size_t i = 0; i < cfg->nsources; i++) {
        fprintf(f, "  %s (%s)\n", cfg->sources[i].name, cfg->sources[i].type);
        cfg_print_options(&cfg->sources[i], f);
    }
    fprintf(f, "streams:%s\n", cfg->nstreams ? "" : " (none)");
    for (size_t i = 0; i < cfg->nstreams; i++) {
        const cfg_stream *st = &cfg->streams[cfg->order[i]];
        cfg_fmt_duration(st->slide_ms, d, sizeof(d));
        fprintf(f, "  %s <- ", st->name);
        for (size_t j = 0; j < st->nfrom; j++) {
            fprintf(f, "%s%s", j ? " + " : "", st->from[j].name);
        }
        fprintf(f, " (%severy %s)\n", st->nfrom > 1 ? "union, " : "", d);
        for (size_t j = 0; j < st->nops; j++) {
            fprintf(f, "    %zu. %s\n", j + 1, st->ops[j].desc);
        }
    }
    fprintf(f, "sinks:\n");
    for (size_t i = 0; i < cfg->nsinks; i++) {
        fprintf(f, "  %s (%s) <- %s\n", cfg->sinks[i].name, cfg->sinks[i].type,
                cfg->sinks[i].from.name);
        cfg_print_options(&cfg->sinks[i], f);
    }
    if (cfg->has_http) {
        fprintf(f, "http:%s\n", cfg->http_enabled ? "" : " (disabled)");
        fprintf(f, "  listen: %s\n", cfg->http_listen ? cfg->http_listen : SL_HTTP_DEFAULT_LISTEN);
        fprintf(f, "  token: %s\n", cfg->http_token ? "***" : "(none)");
        if (cfg->http_allow_remote) {
            fprintf(f, "  allow_remote: true\n");
        }
    }
}

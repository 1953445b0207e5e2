/* sl_config.c -- the YAML front end: load, check and build a pipeline from a YAML file.
 *
 * The loader only calls the public C API (sluice.h): the YAML is a front end to the
 * library, not a second engine. It parses the file with libyaml's document API (every node
 * keeps its line and column), expands ${VAR} in every scalar, checks everything it can
 * before any context exists, and keeps an in-memory description (sl_config). Building calls
 * sl_context_new, sl_context_add_source, sl_stream_* and sl_stream_to.
 *
 * This file loads (and frees) a config and holds its accessors; the rest is in sl_cfg_*.c:
 * yaml (nodes, scalars, errors), expand (${VAR}), app (app: and http:), endpoint (sources
 * and sinks), ops (the op table), graph (names, order, slides), build (build and print).
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
 * Ops: each is one entry of the op table in sl_cfg_ops.c, with its syntax and what it
 * does (`sluice ops` prints it; the README's operations reference is generated from it).
 * Windows' lengths and slides must be multiples of the parent's slide. Ops that keep state
 * across batches need app.checkpoint_dir, where their state is checkpointed.
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
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cfg.h"

/* ==== Streams and sections ==== */

static const char *const cfg_stream_keys[] = {"name", "from", "ops", NULL};

static int cfg_parse_stream(cfg_parser *p, yaml_node_t *item, cfg_stream *st)
{
    int rc = sl__cfg_check_map(p, item, "a stream", cfg_stream_keys);
    if (rc != SL_OK) {
        return rc;
    }
    cfg_loc name_loc;
    if ((rc = sl__cfg_name(p, item, "a stream", &st->name, &name_loc)) != SL_OK) {
        return rc;
    }
    st->loc = sl__cfg_loc_of(item);
    size_t idx = p->cfg->nsources + (size_t)(st - p->cfg->streams);
    if ((rc = sl__cfg_unique(p, st->name, name_loc, false, idx)) != SL_OK) {
        return rc;
    }
    char where[160];
    snprintf(where, sizeof(where), "stream '%s'", st->name);
    yaml_node_t *from = sl__cfg_get(p, item, "from");
    if (!from || sl__cfg_is_null(p, from)) {
        return sl__cfg_error(p, st->loc, "missing required key 'from' in %s", where);
    }
    st->from_loc = sl__cfg_loc_of(from);
    if (from->type == YAML_MAPPING_NODE) {
        return sl__cfg_error(p, st->from_loc,
                             "'from' in %s must be a name or a list of names, got "
                             "a mapping",
                             where);
    }
    size_t n = from->type == YAML_SEQUENCE_NODE
                   ? (size_t)(from->data.sequence.items.top - from->data.sequence.items.start)
                   : 1;
    if (n == 0) {
        return sl__cfg_error(p, st->from_loc, "'from' in %s is an empty list", where);
    }
    if (!(st->from = calloc(n, sizeof(cfg_ref)))) {
        return sl__cfg_error(p, st->loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *e = from->type == YAML_SEQUENCE_NODE
                             ? sl__cfg_node(p, from->data.sequence.items.start[i])
                             : from;
        const char *s;
        if ((rc = sl__cfg_scalar(p, e, "a name in 'from'", &s)) != SL_OK) {
            return rc;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(st->from[j].name, s) == 0) {
                return sl__cfg_error(p, sl__cfg_loc_of(e), "'%s' is listed twice in 'from' of %s",
                                     s, where);
            }
        }
        st->from[i].name = strdup(s);
        st->from[i].loc = sl__cfg_loc_of(e);
        st->nfrom = i + 1;
        if (!st->from[i].name) {
            return sl__cfg_error(p, st->loc, "out of memory");
        }
    }
    yaml_node_t *ops = sl__cfg_get(p, item, "ops");
    if (!ops || sl__cfg_is_null(p, ops)) {
        return SL_OK;
    }
    if (ops->type != YAML_SEQUENCE_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(ops), "'ops' in %s must be a list of ops, got %s",
                             where, sl__cfg_kind(ops));
    }
    n = (size_t)(ops->data.sequence.items.top - ops->data.sequence.items.start);
    if (n == 0) {
        return SL_OK;
    }
    if (!(st->ops = calloc(n, sizeof(cfg_op)))) {
        return sl__cfg_error(p, st->loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        st->nops = i + 1;
        yaml_node_t *e = sl__cfg_node(p, ops->data.sequence.items.start[i]);
        if ((rc = sl__cfg_parse_op(p, e, where, &st->ops[i])) != SL_OK) {
            return rc;
        }
        if (!st->ops[i].desc) {
            return sl__cfg_error(p, st->ops[i].loc, "out of memory");
        }
    }
    if (sl__cfg_fuse_shapes(st->ops, st->nops) != SL_OK) {
        return sl__cfg_error(p, st->loc, "out of memory");
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
    if (!sec || sl__cfg_is_null(p, sec)) {
        return SL_OK;
    }
    if (sec->type != YAML_SEQUENCE_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(sec),
                             "section '%s' must be a list of items ('- name: "
                             "...'), got %s",
                             name, sl__cfg_kind(sec));
    }
    *items = sec->data.sequence.items.start;
    *n = (size_t)(sec->data.sequence.items.top - sec->data.sequence.items.start);
    return SL_OK;
}

static const char *const cfg_sections[] = {"app", "sources", "streams", "sinks", "http", NULL};

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

void sl__config_destroy(sl_config *cfg)
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
            sl__yamlops_destroy(st->ops[j].yop);
            sl__yamlops_destroy(st->ops[j].run);
            sl__cfg_lua_free(&st->ops[j]);
            if (st->ops[j].late) {
                free(st->ops[j].late->name);
                free(st->ops[j].late);
            }
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

static int cfg_parse_doc(cfg_parser *p)
{
    sl_config *cfg = p->cfg;
    yaml_node_t *root = yaml_document_get_root_node(&p->doc);
    cfg_loc root_loc = sl__cfg_loc_of(root);
    if (root->type != YAML_MAPPING_NODE) {
        return sl__cfg_error(p, root_loc,
                             "the top level must be a mapping with the sections app, "
                             "sources, streams and sinks; got %s",
                             sl__cfg_kind(root));
    }
    int rc = sl__cfg_check_map(p, root, "the top level", cfg_sections);
    if (rc != SL_OK) {
        return rc;
    }
    if ((rc = sl__cfg_parse_app(p, sl__cfg_get(p, root, "app"), root_loc)) != SL_OK) {
        return rc;
    }
    if ((rc = sl__cfg_parse_http(p, sl__cfg_get(p, root, "http"))) != SL_OK) {
        return rc;
    }
    yaml_node_item_t *items;
    size_t n;
    /* Sources */
    if ((rc = cfg_section_items(p, sl__cfg_get(p, root, "sources"), "sources", &items, &n))) {
        return rc;
    }
    if (n && !(cfg->sources = calloc(n, sizeof(cfg_endpoint)))) {
        return sl__cfg_error(p, root_loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cfg->nsources = i + 1;
        if ((rc = sl__cfg_parse_endpoint(p, sl__cfg_node(p, items[i]), SL_SOURCE,
                                         &cfg->sources[i]))) {
            return rc;
        }
    }
    /* Streams */
    if ((rc = cfg_section_items(p, sl__cfg_get(p, root, "streams"), "streams", &items, &n))) {
        return rc;
    }
    if (n && !(cfg->streams = calloc(n, sizeof(cfg_stream)))) {
        return sl__cfg_error(p, root_loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cfg->nstreams = i + 1;
        if ((rc = cfg_parse_stream(p, sl__cfg_node(p, items[i]), &cfg->streams[i])) != SL_OK) {
            return rc;
        }
    }
    if ((rc = sl__cfg_add_late_streams(p)) != SL_OK || (rc = sl__cfg_window_offset(p)) != SL_OK) {
        return rc;
    }
    /* Sinks */
    if ((rc = cfg_section_items(p, sl__cfg_get(p, root, "sinks"), "sinks", &items, &n))) {
        return rc;
    }
    if (n && !(cfg->sinks = calloc(n, sizeof(cfg_endpoint)))) {
        return sl__cfg_error(p, root_loc, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cfg->nsinks = i + 1;
        if ((rc = sl__cfg_parse_endpoint(p, sl__cfg_node(p, items[i]), SL_SINK, &cfg->sinks[i]))) {
            return rc;
        }
    }
    return sl__cfg_check_graph(p, root_loc);
}

int sl__config_load_string(const char *text, size_t len, const char *name, sl_config **out,
                           char *errstr, size_t errsize)
{
    cfg_parser p = {.path = name ? name : "<config>",
                    .src = text,
                    .srclen = len,
                    .errstr = errstr,
                    .errsize = errsize};
    if (errstr && errsize) {
        errstr[0] = '\0';
    }
    *out = NULL;
    p.cfg = calloc(1, sizeof(sl_config));
    if (p.cfg) {
        p.cfg->log_level = -1;
    }
    if (!p.cfg || !(p.cfg->path = strdup(p.path))) {
        sl__config_destroy(p.cfg);
        sl__cfg_error(&p, sl__cfg_loc_at(0, 0), "out of memory");
        return SL_ERR_NOMEM;
    }
    yaml_parser_t yp;
    if (!yaml_parser_initialize(&yp)) {
        sl__config_destroy(p.cfg);
        sl__cfg_error(&p, sl__cfg_loc_at(0, 0), "out of memory");
        return SL_ERR_NOMEM;
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
    int rc = SL_OK;
    if (!yaml_parser_load(&yp, &p.doc)) {
        rc = sl__cfg_yaml_error(&p, &yp, text, len);
    } else {
        p.has_doc = true;
        yaml_node_t *root = yaml_document_get_root_node(&p.doc);
        if (!root) {
            rc = sl__cfg_error(&p, sl__cfg_loc_at(0, 0),
                               "empty configuration: no YAML document (a "
                               "pipeline needs at least the sections app, sources and sinks)");
        } else {
            yaml_document_t next;
            if (!yaml_parser_load(&yp, &next)) {
                rc = sl__cfg_yaml_error(&p, &yp, text, len);
            } else {
                yaml_node_t *r2 = yaml_document_get_root_node(&next);
                if (r2) {
                    rc = sl__cfg_error(&p, sl__cfg_loc_of(r2),
                                       "a second YAML document: a "
                                       "configuration is one document");
                }
                yaml_document_delete(&next);
            }
        }
    }
    if (rc == SL_OK) {
        rc = sl__cfg_expand_all(&p);
    }
    if (rc == SL_OK) {
        rc = cfg_parse_doc(&p);
    }
    sl__cfg_names_free(&p);
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
        sl__config_destroy(p.cfg);
        return rc;
    }
    *out = p.cfg;
    return SL_OK;
}

int sl__config_load(const char *path, sl_config **out, char *errstr, size_t errsize)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    sl_buf b = {0};
    int rc = sl__buf_append(&b, "", 0);
    int err = 0;
    if (!f) {
        err = errno;
    } else {
        char chunk[8192];
        size_t n;
        while (rc == SL_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
            rc = sl__buf_append(&b, chunk, n);
        }
        if (ferror(f)) {
            err = errno ? errno : EIO;
        }
        fclose(f);
    }
    if (err || rc != SL_OK) {
        snprintf(errstr, errsize, "%s:1:1: error: cannot read the file: %s", path,
                 err ? strerror(err) : "out of memory");
        sl__buf_free(&b);
        return err ? SL_ERR_IO : SL_ERR_NOMEM;
    }
    rc = sl__config_load_string(b.p, b.len, path, out, errstr, errsize);
    sl__buf_free(&b);
    return rc;
}

/* ==== Accessors ==== */

const char *sl__config_app_name(const sl_config *cfg)
{
    return cfg->name;
}

int64_t sl__config_batch_interval(const sl_config *cfg)
{
    return cfg->batch_ms;
}

bool sl__config_log_level(const sl_config *cfg, sl_log_level *level)
{
    if (cfg->log_level >= 0) {
        *level = (sl_log_level)cfg->log_level;
    }
    return cfg->log_level >= 0;
}

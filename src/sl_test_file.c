/* sl_test_file.c -- the test files of `sluice test`: read, checked against their pipeline,
 * and turned into each test's batches, inputs and expectations (sl_test.h).
 *
 * ==== The format ====
 *
 *   pipeline: wordcount.yaml        # required: the pipeline, relative to this file
 *   env: {LOG_DIR: /tmp}            # optional: set before the pipeline is read (${VAR})
 *   start: 2026-01-01T00:00:00Z     # optional: the clock's zero (this by default); batch k
 *                                   #   (from 1) runs at start + k * batch_interval
 *   tests:
 *     - name: counts words           # required
 *       start: ...                   # optional: this test's own zero
 *       ordered: false               # optional: true compares a batch's records in order
 *       batches:                     # required: run one after the other, no sleeping
 *         - time: 3s                 # optional: the batch at start + 3s (a duration, or an
 *                                    #   RFC 3339 time); the batches skipped run empty and
 *                                    #   what they write counts as this batch's
 *           inputs:                  # per source: its records in this batch
 *             lines: ["to be or not to be", {key: k, value: v}]
 *           outputs:                 # per sink: everything it writes in this batch
 *             out: ["(to,2)", {key: be, num: 2}]
 *       expect:                      # optional, per sink: a list per batch (~: not checked),
 *         out: [[...], [...]]        #   or a list of records: all it writes in the test
 *
 * An input record is a scalar (its value) or a mapping of key, value, json (the value as
 * compact JSON, from any YAML), timestamp (ms, RFC 3339, or a duration after start; default
 * the start of its batch's interval), partition (default 0), offset (default: the next of its
 * partition), topic (default the first of the source's `topics`), headers (name: value).
 *
 * An expected record is a scalar, compared with the record as the stdout sink prints it
 * ("(key,value)" or "value", a typed value in place of the value; numbers compared as
 * numbers), or a mapping of the fields to compare (the others are not): key, value, json
 * (the value parsed as JSON, compared as JSON, numbers as numbers), num (the typed value;
 * ~: none), timestamp, window_start, window_end, batch_time (ms, RFC 3339 or a duration after
 * start), topic, partition, offset, source, tombstone (true: no value nor typed value). A sink
 * named in a test is checked in every batch of it: a batch that does not list it expects
 * nothing from it. Values are taken as written: no ${VAR} expansion.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_engine.h"
#include "sl_test_int.h"

#define TEST_DEFAULT_START 1767225600000LL /* 2026-01-01T00:00:00Z */

static size_t name_index(char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* An error for a name that is not one of names (a source or a sink of the pipeline). */
static int unknown_name(cfg_parser *p, yaml_node_t *k, const char *what, const char *name,
                        char *const *names, size_t n, const char *pipeline)
{
    const char *list[65];
    size_t m = 0;
    for (; m < n && m < 64; m++) {
        list[m] = names[m];
    }
    list[m] = NULL;
    char all[1024];
    return sl__cfg_error(p, sl__cfg_loc_of(k), "no %s '%s' in %s; its %ss: %s", what, name,
                         pipeline, what, m ? sl__cfg_join(list, all, sizeof(all)) : "(none)");
}

/* ==== Input records ==== */

typedef struct tf_offsets { /* the next offset of each (source, topic, partition) */
    char **keys;
    int64_t *next;
    size_t n;
} tf_offsets;

static int64_t *offset_slot(tf_offsets *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++) {
        if (strcmp(o->keys[i], key) == 0) {
            return &o->next[i];
        }
    }
    char **k = realloc(o->keys, (o->n + 1) * sizeof(*k));
    if (k) {
        o->keys = k;
    }
    int64_t *v = k ? realloc(o->next, (o->n + 1) * sizeof(*v)) : NULL;
    if (!v) {
        return NULL;
    }
    o->next = v;
    if (!(o->keys[o->n] = strdup(key))) {
        return NULL;
    }
    o->next[o->n] = 0;
    return &o->next[o->n++];
}

static const char *const input_keys[] = {"key",    "value", "json",    "timestamp", "partition",
                                         "offset", "topic", "headers", NULL};

/* One input record of source src as the testbench source's JSON. */
static int parse_input(cfg_parser *p, yaml_node_t *n, const sl_tfile *tf, size_t src,
                       const char *topic, int64_t start, int64_t ts, tf_offsets *offs, json_t **out)
{
    json_t *r = json_object();
    *out = r;
    if (!r) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "out of memory");
    }
    const char *s;
    int64_t partition = 0, offset = -1;
    if (topic) {
        json_object_set_new(r, "topic", json_string(topic));
    }
    if (n->type != YAML_MAPPING_NODE) {
        if (n->type != YAML_SCALAR_NODE) {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "an input record must be a scalar (its value) or a mapping "
                                 "(key, value, json, timestamp, partition, offset, topic, "
                                 "headers), got %s",
                                 sl__cfg_kind(n));
        }
        json_object_set_new(r, "value", json_string(sl__cfg_text(p, n)));
    } else {
        int rc = sl__cfg_check_map(p, n, "an input record", input_keys);
        if (rc != SL_OK) {
            return rc;
        }
        yaml_node_t *v;
        if ((v = sl__cfg_get(p, n, "key")) && !sl__cfg_is_null(p, v)) {
            if ((rc = sl__cfg_scalar(p, v, "'key'", &s)) != SL_OK) {
                return rc;
            }
            json_object_set_new(r, "key", json_string(s));
        }
        yaml_node_t *jv = sl__cfg_get(p, n, "json");
        if ((v = sl__cfg_get(p, n, "value")) && jv) {
            return sl__cfg_error(p, sl__cfg_loc_of(jv),
                                 "an input record has 'value' or 'json', "
                                 "not both");
        }
        if (v && !sl__cfg_is_null(p, v)) {
            if (v->type != YAML_SCALAR_NODE) {
                return sl__cfg_error(p, sl__cfg_loc_of(v),
                                     "'value' must be a scalar (for a JSON value, write "
                                     "json: instead), got %s",
                                     sl__cfg_kind(v));
            }
            json_object_set_new(r, "value", json_string(sl__cfg_text(p, v)));
        }
        if (jv) {
            json_t *j = sl__tyaml_json(p, jv);
            char *text =
                j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
            json_decref(j);
            if (!text) {
                return sl__cfg_error(p, sl__cfg_loc_of(jv), "out of memory");
            }
            json_object_set_new(r, "value", json_string(text));
            free(text);
        }
        if ((v = sl__cfg_get(p, n, "timestamp")) &&
            (rc = sl__tparse_time(p, v, "'timestamp'", start, &ts)) != SL_OK) {
            return rc;
        }
        if ((v = sl__cfg_get(p, n, "partition")) &&
            (rc = sl__cfg_int(p, v, "'partition'", 0, INT32_MAX, &partition)) != SL_OK) {
            return rc;
        }
        if ((v = sl__cfg_get(p, n, "offset")) &&
            (rc = sl__cfg_int(p, v, "'offset'", 0, INT64_MAX - 1, &offset)) != SL_OK) {
            return rc;
        }
        if ((v = sl__cfg_get(p, n, "topic"))) {
            if ((rc = sl__cfg_scalar(p, v, "'topic'", &s)) != SL_OK) {
                return rc;
            }
            topic = s;
            json_object_set_new(r, "topic", json_string(s));
        }
        if ((v = sl__cfg_get(p, n, "headers"))) {
            if ((rc = sl__cfg_check_map(p, v, "'headers'", NULL)) != SL_OK) {
                return rc;
            }
            json_t *hs = json_array();
            for (yaml_node_pair_t *a = v->data.mapping.pairs.start;
                 hs && a < v->data.mapping.pairs.top; a++) {
                yaml_node_t *hv = sl__cfg_node(p, a->value);
                if (hv->type != YAML_SCALAR_NODE) {
                    json_decref(hs);
                    return sl__cfg_error(p, sl__cfg_loc_of(hv),
                                         "a header's value must be a "
                                         "scalar");
                }
                json_array_append_new(
                    hs, json_pack("[so]", sl__cfg_text(p, sl__cfg_node(p, a->key)),
                                  sl__cfg_is_null(p, hv) ? json_null()
                                                         : json_string(sl__cfg_text(p, hv))));
            }
            json_object_set_new(r, "headers", hs);
        }
    }
    char key[512];
    snprintf(key, sizeof(key), "%s\n%s\n%" PRId64, tf->sources[src], topic ? topic : "", partition);
    int64_t *next = offset_slot(offs, key);
    if (!next) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "out of memory");
    }
    if (offset < 0) {
        offset = *next;
    }
    *next = offset + 1;
    json_object_set_new(r, "ts", json_integer(ts));
    json_object_set_new(r, "partition", json_integer(partition));
    json_object_set_new(r, "offset", json_integer(offset));
    return SL_OK;
}

/* ==== Tests ==== */

static const char *const test_keys[] = {"name", "start", "ordered", "batches", "expect", NULL};
static const char *const batch_keys[] = {"time", "inputs", "outputs", NULL};

/* The first of a source's `topics` (a Kafka source's), the default topic of its records. */
static const char *source_topic(const sl_config *cfg, size_t src, char *buf, size_t size)
{
    const char *t = sl_options_get(cfg->sources[src].opts, "topics");
    if (!t || !*t) {
        return NULL;
    }
    snprintf(buf, size, "%.*s", (int)strcspn(t, ","), t);
    return buf;
}

static int parse_test(cfg_parser *p, yaml_node_t *n, sl_tfile *tf, const sl_config *cfg,
                      int64_t start, int64_t align, sl_tcase *tc)
{
    int rc = sl__cfg_check_map(p, n, "a test", test_keys);
    if (rc != SL_OK) {
        return rc;
    }
    tc->loc = sl__tloc_of(n);
    const char *s;
    yaml_node_t *v;
    if ((rc = sl__cfg_key_scalar(p, n, "name", "a test", true, &s, NULL)) != SL_OK) {
        return rc;
    }
    if (!(tc->name = strdup(s))) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "out of memory");
    }
    if ((v = sl__cfg_get(p, n, "start")) &&
        (rc = sl__tparse_time(p, v, "'start'", TEST_DEFAULT_START, &start)) != SL_OK) {
        return rc;
    }
    /* A run's batch times count from a multiple of every stream's slide (plus the windows'
     * offset, as sl__context_zero_time). */
    int64_t off = cfg->window_offset_ms % align;
    tc->start = start - (((start - off) % align) + align) % align;
    if ((v = sl__cfg_get(p, n, "ordered")) &&
        (rc = sl__cfg_bool(p, v, "'ordered'", &tc->ordered)) != SL_OK) {
        return rc;
    }
    yaml_node_t *bl = sl__cfg_get(p, n, "batches");
    if (!bl) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "missing required key 'batches' in test '%s'",
                             tc->name);
    }
    yaml_node_item_t *items = NULL;
    size_t nb = 0;
    if ((rc = sl__tlist_items(p, bl, "'batches'", &items, &nb)) != SL_OK) {
        return rc;
    }
    if (nb == 0) {
        return sl__cfg_error(p, sl__cfg_loc_of(bl), "test '%s' has no batches", tc->name);
    }
    tc->batches = calloc(nb, sizeof(*tc->batches));
    tc->ninputs = tf->nsources;
    tc->inputs = calloc(tf->nsources ? tf->nsources : 1, sizeof(*tc->inputs));
    if (!tc->batches || !tc->inputs) {
        return sl__cfg_error(p, sl__cfg_loc_of(bl), "out of memory");
    }
    for (size_t i = 0; i < tf->nsources; i++) {
        if (!(tc->inputs[i] = json_array())) {
            return sl__cfg_error(p, sl__cfg_loc_of(bl), "out of memory");
        }
    }
    tf_offsets offs = {0};
    int64_t prev = tc->start;
    int64_t iv = tf->interval;
    for (size_t b = 0; b < nb && rc == SL_OK; b++) {
        yaml_node_t *bn = sl__cfg_node(p, items[b]);
        sl_tbatch *tb = &tc->batches[b];
        tc->nbatches = b + 1;
        tb->loc = sl__tloc_of(bn);
        if ((rc = sl__cfg_check_map(p, bn, "a batch", batch_keys)) != SL_OK) {
            break;
        }
        tb->time = prev + iv;
        if ((v = sl__cfg_get(p, bn, "time"))) {
            if ((rc = sl__tparse_time(p, v, "'time'", tc->start, &tb->time)) != SL_OK) {
                break;
            }
            char d[32];
            sl__cfg_fmt_duration(iv, d, sizeof(d));
            if (tb->time <= prev || (tb->time - tc->start) % iv != 0) {
                rc = sl__cfg_error(p, sl__cfg_loc_of(v),
                                   "'time' must come after the batch before it and be a multiple "
                                   "of the batch interval (%s) after the start",
                                   d);
                break;
            }
        }
        /* Empty batches up to this one, then this one's records. */
        for (int64_t t = prev + iv; t < tb->time; t += iv) {
            for (size_t i = 0; i < tf->nsources; i++) {
                json_array_append_new(tc->inputs[i], json_array());
            }
        }
        json_t **now = calloc(tf->nsources ? tf->nsources : 1, sizeof(*now));
        for (size_t i = 0; now && i < tf->nsources; i++) {
            now[i] = json_array();
            json_array_append_new(tc->inputs[i], now[i]);
        }
        if (!now) {
            rc = sl__cfg_error(p, tb->loc.line ? sl__cfg_loc_of(bn) : sl__cfg_loc_of(bn),
                               "out of memory");
            break;
        }
        yaml_node_t *in = sl__cfg_get(p, bn, "inputs");
        if (in && !sl__cfg_is_null(p, in) &&
            (rc = sl__cfg_check_map(p, in, "'inputs' (source: records)", NULL)) == SL_OK) {
            for (yaml_node_pair_t *a = in->data.mapping.pairs.start;
                 rc == SL_OK && a < in->data.mapping.pairs.top; a++) {
                yaml_node_t *k = sl__cfg_node(p, a->key);
                const char *name = sl__cfg_text(p, k);
                size_t src = name_index(tf->sources, tf->nsources, name);
                if (src == SIZE_MAX) {
                    rc =
                        unknown_name(p, k, "source", name, tf->sources, tf->nsources, tf->pipeline);
                    break;
                }
                char tbuf[256];
                const char *topic = source_topic(cfg, src, tbuf, sizeof(tbuf));
                yaml_node_item_t *ri = NULL;
                size_t nr = 0;
                if ((rc = sl__tlist_items(p, sl__cfg_node(p, a->value), "a source's records", &ri,
                                          &nr)) != SL_OK) {
                    break;
                }
                for (size_t r = 0; rc == SL_OK && r < nr; r++) {
                    json_t *rec = NULL;
                    rc = parse_input(p, sl__cfg_node(p, ri[r]), tf, src, topic, tc->start,
                                     tb->time - iv, &offs, &rec);
                    json_array_append_new(now[src], rec);
                }
            }
        }
        free(now);
        yaml_node_t *out = sl__cfg_get(p, bn, "outputs");
        if (rc == SL_OK && out && !sl__cfg_is_null(p, out) &&
            (rc = sl__cfg_check_map(p, out, "'outputs' (sink: records)", NULL)) == SL_OK) {
            for (yaml_node_pair_t *a = out->data.mapping.pairs.start;
                 rc == SL_OK && a < out->data.mapping.pairs.top; a++) {
                yaml_node_t *k = sl__cfg_node(p, a->key);
                const char *name = sl__cfg_text(p, k);
                size_t sk = name_index(tf->sinks, tf->nsinks, name);
                if (sk == SIZE_MAX) {
                    rc = unknown_name(p, k, "sink", name, tf->sinks, tf->nsinks, tf->pipeline);
                } else if (tf->changelog[sk]) {
                    rc = sl__cfg_error(p, sl__cfg_loc_of(k),
                                       "sink '%s' is a changelog (the state of its stream): "
                                       "sluice test leaves it out; test a sink of the stream",
                                       name);
                } else {
                    rc = sl__tparse_group(p, sl__cfg_node(p, a->value), tc, sk, b, b,
                                          "a sink's records");
                }
            }
        }
        prev = tb->time;
    }
    for (size_t i = 0; i < offs.n; i++) {
        free(offs.keys[i]);
    }
    free(offs.keys);
    free(offs.next);
    if (rc != SL_OK) {
        return rc;
    }
    /* A sink listed in some batches' outputs expects nothing in the others. */
    size_t listed = tc->ngroups;
    for (size_t g = 0; g < listed; g++) {
        for (size_t b = 0; b < tc->nbatches; b++) {
            bool has = false;
            for (size_t h = 0; h < tc->ngroups && !has; h++) {
                has = tc->groups[h].sink == tc->groups[g].sink && tc->groups[h].first == b;
            }
            sl_tgroup *ng = has ? tc->groups : realloc(tc->groups, (tc->ngroups + 1) * sizeof(*ng));
            if (!ng) {
                return sl__cfg_error(p, sl__cfg_loc_of(n), "out of memory");
            }
            tc->groups = ng;
            if (!has) {
                tc->groups[tc->ngroups++] = (sl_tgroup){.sink = tc->groups[g].sink,
                                                        .first = b,
                                                        .last = b,
                                                        .checked = true,
                                                        .loc = tc->batches[b].loc};
            }
        }
    }
    yaml_node_t *ex = sl__cfg_get(p, n, "expect");
    if (ex && (rc = sl__cfg_check_map(p, ex, "'expect' (sink: records)", NULL)) == SL_OK) {
        for (yaml_node_pair_t *a = ex->data.mapping.pairs.start;
             rc == SL_OK && a < ex->data.mapping.pairs.top; a++) {
            yaml_node_t *k = sl__cfg_node(p, a->key);
            yaml_node_t *lv = sl__cfg_node(p, a->value);
            const char *name = sl__cfg_text(p, k);
            size_t sk = name_index(tf->sinks, tf->nsinks, name);
            if (sk == SIZE_MAX) {
                return unknown_name(p, k, "sink", name, tf->sinks, tf->nsinks, tf->pipeline);
            }
            for (size_t g = 0; g < tc->ngroups; g++) {
                if (tc->groups[g].sink == sk) {
                    return sl__cfg_error(p, sl__cfg_loc_of(k),
                                         "sink '%s' is in the batches' outputs already", name);
                }
            }
            yaml_node_item_t *li = NULL;
            size_t nl = 0;
            if ((rc = sl__tlist_items(p, lv, "a sink's records in 'expect'", &li, &nl)) != SL_OK) {
                return rc;
            }
            bool per_batch = nl > 0 && sl__cfg_node(p, li[0])->type == YAML_SEQUENCE_NODE;
            if (!per_batch) {
                rc = sl__tparse_group(p, lv, tc, sk, 0, tc->nbatches - 1, "a sink's records");
                continue;
            }
            if (nl != tc->nbatches) {
                return sl__cfg_error(p, sl__cfg_loc_of(lv),
                                     "'expect' of sink '%s' has %zu batches, the test %zu", name,
                                     nl, tc->nbatches);
            }
            for (size_t b = 0; rc == SL_OK && b < nl; b++) {
                yaml_node_t *bn = sl__cfg_node(p, li[b]);
                if (bn->type != YAML_SEQUENCE_NODE && !sl__cfg_is_null(p, bn)) {
                    return sl__cfg_error(p, sl__cfg_loc_of(bn),
                                         "'expect' of sink '%s': a list of batches, each a list "
                                         "of records (or ~), got %s",
                                         name, sl__cfg_kind(bn));
                }
                rc = sl__tparse_group(p, bn, tc, sk, b, b, "a batch's records");
            }
        }
    }
    if (rc == SL_OK && tc->ngroups == 0) {
        return sl__cfg_error(p, sl__cfg_loc_of(n),
                             "test '%s' expects nothing: give the batches' 'outputs' or "
                             "'expect'",
                             tc->name);
    }
    return rc;
}

/* ==== The file ==== */

static const char *const root_keys[] = {"pipeline", "env", "start", "tests", NULL};

/* Reads the pipeline (after env) and keeps its names, interval and slides' alignment. */
static int load_pipeline(cfg_parser *p, yaml_node_t *root, sl_tfile *tf, sl_config **cfg,
                         int64_t *align, char *errstr, size_t errsize)
{
    const char *s;
    yaml_node_t *pn;
    int rc = sl__cfg_key_scalar(p, root, "pipeline", "the test file", true, &s, &pn);
    if (rc != SL_OK) {
        return rc;
    }
    tf->pipeline_loc = sl__tloc_of(pn);
    const char *slash = strrchr(tf->path, '/');
    tf->pipeline = s[0] == '/' || !slash
                       ? strdup(s)
                       : sl__cfg_strdupf("%.*s/%s", (int)(slash - tf->path), tf->path, s);
    if (!tf->pipeline) {
        return sl__cfg_error(p, sl__cfg_loc_of(pn), "out of memory");
    }
    yaml_node_t *env = sl__cfg_get(p, root, "env");
    if (env && (rc = sl__cfg_check_map(p, env, "'env'", NULL)) != SL_OK) {
        return rc;
    }
    for (yaml_node_pair_t *a = env ? env->data.mapping.pairs.start : NULL;
         env && a < env->data.mapping.pairs.top; a++) {
        yaml_node_t *v = sl__cfg_node(p, a->value);
        if (v->type != YAML_SCALAR_NODE) {
            return sl__cfg_error(p, sl__cfg_loc_of(v), "a value of 'env' must be a scalar");
        }
        setenv(sl__cfg_text(p, sl__cfg_node(p, a->key)), sl__cfg_text(p, v), 1);
    }
    char perr[1024];
    if (sl__config_load(tf->pipeline, cfg, perr, sizeof(perr)) != SL_OK) {
        p->failed = true;
        snprintf(errstr, errsize, "%s:%d:%d: error: pipeline %s: %s", tf->path,
                 tf->pipeline_loc.line, tf->pipeline_loc.col, s, perr);
        return SL_ERR_INVAL;
    }
    const sl_config *c = *cfg;
    tf->interval = c->batch_ms;
    tf->nsources = c->nsources;
    tf->nsinks = c->nsinks;
    tf->sources = calloc(c->nsources + 1, sizeof(char *));
    tf->sinks = calloc(c->nsinks + 1, sizeof(char *));
    tf->changelog = calloc(c->nsinks + 1, sizeof(bool));
    if (!tf->sources || !tf->sinks || !tf->changelog) {
        return sl__cfg_error(p, sl__cfg_loc_of(pn), "out of memory");
    }
    for (size_t i = 0; i < c->nsources; i++) {
        if (!(tf->sources[i] = strdup(c->sources[i].name))) {
            return sl__cfg_error(p, sl__cfg_loc_of(pn), "out of memory");
        }
    }
    for (size_t i = 0; i < c->nsinks; i++) {
        const char *cl = sl_options_get(c->sinks[i].opts, "changelog");
        bool on = false;
        tf->changelog[i] = cl && sl__parse_bool(cl, &on) == SL_OK && on;
        if (!(tf->sinks[i] = strdup(c->sinks[i].name))) {
            return sl__cfg_error(p, sl__cfg_loc_of(pn), "out of memory");
        }
    }
    /* The alignment of batch times, from the graph the test builds. */
    const char *srct, *sinkt;
    if (!sl__test_doubles(&srct, &sinkt)) {
        return sl__cfg_error(p, sl__cfg_loc_of(pn), "no test double connectors built in");
    }
    sl_options *empty = sl_options_new();
    sl_options *sinko = sl_options_new();
    const sl_options **so = calloc(c->nsources + 1, sizeof(*so));
    const sl_options **ko = calloc(c->nsinks + 1, sizeof(*ko));
    rc = empty && sinko && so && ko ? sl_options_set(sinko, "path", "/dev/null") : SL_ERR_NOMEM;
    for (size_t i = 0; rc == SL_OK && i < c->nsources; i++) {
        so[i] = empty;
    }
    for (size_t i = 0; rc == SL_OK && i < c->nsinks; i++) {
        ko[i] = tf->changelog[i] ? NULL : sinko;
    }
    sl_config_swap swap = {.checkpoint_dir = "/nonexistent",
                           .source_type = srct,
                           .source_opts = so,
                           .sink_type = sinkt,
                           .sink_opts = ko};
    sl_context *ctx = rc == SL_OK ? sl__config_build_swapped(c, &swap, perr, sizeof(perr)) : NULL;
    if (ctx) {
        *align = sl__graph_alignment(ctx);
    }
    sl_context_destroy(ctx);
    sl_options_destroy(empty);
    sl_options_destroy(sinko);
    free(so);
    free(ko);
    if (!ctx) {
        p->failed = true;
        snprintf(errstr, errsize, "%s:%d:%d: error: pipeline %s: %s", tf->path,
                 tf->pipeline_loc.line, tf->pipeline_loc.col, s,
                 rc == SL_OK ? perr : "out of memory");
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

static int parse_file(cfg_parser *p, sl_tfile *tf, char *errstr, size_t errsize)
{
    yaml_node_t *root = yaml_document_get_root_node(&p->doc);
    if (!root) {
        return sl__cfg_error(p, sl__cfg_loc_at(0, 0),
                             "empty test file: it needs 'pipeline' and 'tests'");
    }
    if (root->type != YAML_MAPPING_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(root),
                             "the top level must be a mapping with the keys pipeline, env, start "
                             "and tests; got %s",
                             sl__cfg_kind(root));
    }
    int rc = sl__cfg_check_map(p, root, "the test file", root_keys);
    if (rc != SL_OK) {
        return rc;
    }
    sl_config *cfg = NULL;
    int64_t align = 1;
    if ((rc = load_pipeline(p, root, tf, &cfg, &align, errstr, errsize)) != SL_OK) {
        sl__config_destroy(cfg);
        return rc;
    }
    int64_t start = TEST_DEFAULT_START;
    yaml_node_t *v = sl__cfg_get(p, root, "start");
    if (v && (rc = sl__tparse_time(p, v, "'start'", TEST_DEFAULT_START, &start)) != SL_OK) {
        sl__config_destroy(cfg);
        return rc;
    }
    yaml_node_t *tl = sl__cfg_get(p, root, "tests");
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    if (!tl) {
        rc = sl__cfg_error(p, sl__cfg_loc_of(root), "missing required key 'tests'");
    } else if ((rc = sl__tlist_items(p, tl, "'tests'", &items, &n)) == SL_OK && n == 0) {
        rc = sl__cfg_error(p, sl__cfg_loc_of(tl), "'tests' is empty");
    }
    if (rc == SL_OK && !(tf->tests = calloc(n, sizeof(*tf->tests)))) {
        rc = sl__cfg_error(p, sl__cfg_loc_of(tl), "out of memory");
    }
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        tf->ntests = i + 1;
        rc = parse_test(p, sl__cfg_node(p, items[i]), tf, cfg, start, align, &tf->tests[i]);
        for (size_t j = 0; rc == SL_OK && j < i; j++) {
            if (strcmp(tf->tests[j].name, tf->tests[i].name) == 0) {
                rc = sl__cfg_error(p, sl__cfg_loc_of(sl__cfg_node(p, items[i])),
                                   "duplicate test name '%s' (already at line %d)",
                                   tf->tests[i].name, tf->tests[j].loc.line);
            }
        }
    }
    sl__config_destroy(cfg);
    return rc;
}

int sl__tfile_load(const char *path, sl_tfile **out, char *errstr, size_t errsize)
{
    *out = NULL;
    errstr[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errstr, errsize, "%s:1:1: error: cannot read the file: %s", path, strerror(errno));
        return SL_ERR_IO;
    }
    sl_buf b = {0};
    char chunk[8192];
    size_t n;
    int rc = sl__buf_append(&b, "", 0);
    while (rc == SL_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = sl__buf_append(&b, chunk, n);
    }
    fclose(f);
    sl_tfile *tf = calloc(1, sizeof(*tf));
    cfg_parser p = {
        .path = path, .src = b.p, .srclen = b.len, .errstr = errstr, .errsize = errsize};
    yaml_parser_t yp;
    bool yp_ok = false;
    if (rc != SL_OK || !tf || !(tf->path = strdup(path))) {
        snprintf(errstr, errsize, "%s:1:1: error: out of memory", path);
        rc = SL_ERR_NOMEM;
    } else if (!(yp_ok = yaml_parser_initialize(&yp))) {
        rc = sl__cfg_error(&p, sl__cfg_loc_at(0, 0), "out of memory");
    } else {
        yaml_parser_set_input_string(&yp, (const unsigned char *)b.p, b.len);
        if (!yaml_parser_load(&yp, &p.doc)) {
            rc = sl__cfg_yaml_error(&p, &yp, b.p, b.len);
        } else {
            p.has_doc = true;
            /* The text of every scalar, as written (no ${VAR} expansion in test data). */
            p.nnodes = (size_t)(p.doc.nodes.top - p.doc.nodes.start);
            p.text = calloc(p.nnodes ? p.nnodes : 1, sizeof(char *));
            rc = p.text ? SL_OK : sl__cfg_error(&p, sl__cfg_loc_at(0, 0), "out of memory");
            for (size_t i = 0; rc == SL_OK && i < p.nnodes; i++) {
                yaml_node_t *nd = p.doc.nodes.start + i;
                if (nd->type == YAML_SCALAR_NODE &&
                    !(p.text[i] =
                          strndup((const char *)nd->data.scalar.value, nd->data.scalar.length))) {
                    rc = sl__cfg_error(&p, sl__cfg_loc_at(0, 0), "out of memory");
                }
            }
            if (rc == SL_OK) {
                rc = parse_file(&p, tf, errstr, errsize);
            }
        }
    }
    for (size_t i = 0; p.text && i < p.nnodes; i++) {
        free(p.text[i]);
    }
    free(p.text);
    if (p.has_doc) {
        yaml_document_delete(&p.doc);
    }
    if (yp_ok) {
        yaml_parser_delete(&yp);
    }
    sl__buf_free(&b);
    if (rc != SL_OK) {
        sl__tfile_destroy(tf);
        return rc;
    }
    *out = tf;
    return SL_OK;
}

void sl__tfile_destroy(sl_tfile *tf)
{
    if (!tf) {
        return;
    }
    for (size_t t = 0; t < tf->ntests; t++) {
        sl_tcase *tc = &tf->tests[t];
        for (size_t g = 0; g < tc->ngroups; g++) {
            for (size_t r = 0; r < tc->groups[g].nrecs; r++) {
                sl_texp *e = &tc->groups[g].recs[r];
                free(e->text);
                free(e->key);
                free(e->value);
                free(e->topic);
                free(e->source);
                json_decref(e->json);
            }
            free(tc->groups[g].recs);
        }
        for (size_t i = 0; tc->inputs && i < tc->ninputs; i++) {
            json_decref(tc->inputs[i]);
        }
        free(tc->inputs);
        free(tc->groups);
        free(tc->batches);
        free(tc->name);
    }
    free(tf->tests);
    for (size_t i = 0; i < tf->nsources; i++) {
        free(tf->sources ? tf->sources[i] : NULL);
    }
    for (size_t i = 0; i < tf->nsinks; i++) {
        free(tf->sinks ? tf->sinks[i] : NULL);
    }
    free(tf->sources);
    free(tf->sinks);
    free(tf->changelog);
    free(tf->pipeline);
    free(tf->path);
    free(tf);
}

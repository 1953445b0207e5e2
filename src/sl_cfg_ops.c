/* sl_cfg_ops.c -- the YAML operations (ops: of a stream): one table entry each, with its
 * parser, how it is built into the stream graph, its flags and its documentation. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cfg.h"
#include "sl_lua.h"

/* ==== Arguments ==== */

const char *const sl__cfg_reducers[] = {"sum",  "count",          "min", "max", "avg", "first",
                                        "last", "count_distinct", NULL};

/* Sets the reducer of op from its name (index in sl__cfg_reducers). count is sum over 1s;
 * avg, first, last and count_distinct combine partial results (sl_reducers.h). */
static int cfg_set_reducer(cfg_parser *p, cfg_op *op, int which, cfg_loc loc)
{
    static sl_reduce_fn const fns[] = {sl_reduce_sum, sl_reduce_sum, sl_reduce_min, sl_reduce_max};
    if (which >= 4) {
        op->agg = sl__reducer_get(sl__cfg_reducers[which]);
        op->reduce = sl__reducer_combine;
        return SL_OK;
    }
    op->reduce = fns[which];
    if (which == 1) {
        char msg[256];
        op->yop = sl__yamlops_value_literal_new("1", msg, sizeof(msg));
        if (!op->yop) {
            return sl__cfg_error(p, loc, "%s", msg);
        }
    }
    return SL_OK;
}

/* An op's argument as a mapping with valid keys; a null argument is an empty mapping. */
int sl__cfg_op_args(cfg_parser *p, yaml_node_t *arg, const char *opname, const char *const *valid)
{
    char where[96];
    snprintf(where, sizeof(where), "op '%s'", opname);
    if (arg->type != YAML_MAPPING_NODE) {
        char list[256];
        return sl__cfg_error(p, sl__cfg_loc_of(arg), "op '%s' takes a mapping with keys %s, got %s",
                             opname, valid[0] ? sl__cfg_join(valid, list, sizeof(list)) : "(none)",
                             sl__cfg_kind(arg));
    }
    return sl__cfg_check_map(p, arg, where, valid);
}

int sl__cfg_op_partitions(cfg_parser *p, yaml_node_t *arg, const char *opname, cfg_op *op)
{
    yaml_node_t *n = sl__cfg_get(p, arg, "partitions");
    if (!n || sl__cfg_is_null(p, n)) {
        return SL_OK;
    }
    char what[96];
    int64_t v;
    snprintf(what, sizeof(what), "%s.partitions", opname);
    int rc = sl__cfg_int(p, n, what, 1, CFG_MAX_PARTITIONS, &v);
    op->partitions = (int)v;
    return rc;
}

static int cfg_op_split(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    char msg[256];
    const char *delim = NULL;
    int rc;
    if (arg->type == YAML_SCALAR_NODE) {
        const char *s = sl__cfg_text(p, arg);
        if (strcmp(s, "whitespace") != 0) {
            return sl__cfg_error(p, sl__cfg_loc_of(arg),
                                 "split takes 'whitespace' or {delimiter: STR}, "
                                 "got '%s'",
                                 s);
        }
        op->desc = strdup("split whitespace");
    } else {
        static const char *const keys[] = {"delimiter", NULL};
        if ((rc = sl__cfg_op_args(p, arg, "split", keys)) != SL_OK) {
            return rc;
        }
        yaml_node_t *n = sl__cfg_get(p, arg, "delimiter");
        if (!n) {
            return sl__cfg_error(p, sl__cfg_loc_of(arg),
                                 "missing required key 'delimiter' in op "
                                 "'split'");
        }
        if (n->type != YAML_SCALAR_NODE || !*sl__cfg_text(p, n)) {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "split.delimiter must be a non-empty string");
        }
        delim = sl__cfg_text(p, n);
        op->desc = sl__cfg_strdupf("split delimiter '%s'", delim);
    }
    op->yop = sl__yamlops_split_new(delim, msg, sizeof(msg));
    return op->yop ? SL_OK : sl__cfg_error(p, sl__cfg_loc_of(arg), "split: %s", msg);
}

/* {json: PATH} for key and value. */
static int cfg_op_json_path(cfg_parser *p, yaml_node_t *arg, const char *opname, const char **path,
                            yaml_node_t **node)
{
    int rc = sl__cfg_key_scalar(p, arg, "json", opname, true, path, node);
    if (rc == SL_OK &&
        (!**path || strstr(*path, "..") || **path == '.' || (*path)[strlen(*path) - 1] == '.')) {
        return sl__cfg_error(p, sl__cfg_loc_of(*node), "bad JSON path '%s' in %s: empty segment",
                             *path, opname);
    }
    return rc;
}

/* What a key, value or filter op reads besides the value bytes: at most one of json: PATH,
 * meta: NAME (sl__yamlops_meta_from_name) and header: NAME. *target is SL_YOP_ON_VALUE when
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
        yaml_node_t *n = sl__cfg_get(p, arg, attrs[i]);
        if (!n) {
            continue;
        }
        if (which >= 0) {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "%s reads one of json, meta or header, got '%s' and '%s'", where,
                                 attrs[which], attrs[i]);
        }
        which = i;
    }
    if (which < 0) {
        return required
                   ? sl__cfg_error(p, sl__cfg_loc_of(arg),
                                   "%s needs one of json: PATH, meta: NAME or header: NAME", where)
                   : SL_OK;
    }
    *target = targets[which];
    if (*target == SL_YOP_ON_JSON) {
        return cfg_op_json_path(p, arg, where, name, node);
    }
    int rc = sl__cfg_key_scalar(p, arg, attrs[which], where, true, name, node);
    if (rc != SL_OK) {
        return rc;
    }
    if (*target == SL_YOP_ON_META && sl__yamlops_meta_from_name(*name) < 0) {
        return sl__cfg_error(p, sl__cfg_loc_of(*node), "unknown meta '%s' in %s (valid: %s)", *name,
                             where, sl__yamlops_meta_names());
    }
    if (*target == SL_YOP_ON_HEADER && !**name) {
        return sl__cfg_error(p, sl__cfg_loc_of(*node), "empty header name in %s", where);
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
        if (strcmp(sl__cfg_text(p, arg), "value") != 0) {
            return sl__cfg_error(p, sl__cfg_loc_of(arg),
                                 "key takes 'value', {json: PATH}, {meta: NAME} or {header: NAME}, "
                                 "got '%s'",
                                 sl__cfg_text(p, arg));
        }
        op->yop = sl__yamlops_key_new(NULL, msg, sizeof(msg));
        op->desc = strdup("key value");
    } else {
        static const char *const keys[] = {"json", "meta", "header", NULL};
        const char *name;
        yaml_node_t *n;
        sl_yamlop_target target;
        int rc = sl__cfg_op_args(p, arg, "key", keys);
        if (rc != SL_OK || (rc = cfg_op_attr(p, arg, "key", true, &target, &name, &n)) != SL_OK) {
            return rc;
        }
        op->yop = sl__yamlops_key_from_new(target, name, msg, sizeof(msg));
        op->desc = sl__cfg_strdupf("key %s %s", cfg_attr_words[target], name);
        op->reads_header = target == SL_YOP_ON_HEADER;
    }
    return op->yop ? SL_OK : sl__cfg_error(p, sl__cfg_loc_of(arg), "key: %s", msg);
}

static int cfg_op_value(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    char msg[256];
    if (arg->type == YAML_SCALAR_NODE && strcmp(sl__cfg_text(p, arg), "number") == 0) {
        op->yop = sl__yamlops_value_from_new(SL_YOP_ON_VALUE, NULL, false, msg, sizeof(msg));
        op->desc = strdup("value number");
    } else if (arg->type == YAML_SCALAR_NODE) {
        const char *s = sl__cfg_text(p, arg);
        op->yop = sl__yamlops_value_literal_new(s, msg, sizeof(msg));
        op->desc = sl__cfg_strdupf("value %s", s);
    } else {
        static const char *const keys[] = {"json", "meta", "header", "as", NULL};
        static const char *const as_words[] = {"number", "text", NULL};
        const char *name;
        yaml_node_t *n;
        sl_yamlop_target target;
        int rc = sl__cfg_op_args(p, arg, "value", keys);
        if (rc != SL_OK || (rc = cfg_op_attr(p, arg, "value", true, &target, &name, &n)) != SL_OK) {
            return rc;
        }
        /* as: number by default, but text for the meta attributes that are text */
        bool text_meta =
            target == SL_YOP_ON_META &&
            !sl__yamlops_meta_is_number((sl_yamlop_meta)sl__yamlops_meta_from_name(name));
        int as = text_meta ? 1 : 0;
        if ((n = sl__cfg_get(p, arg, "as")) && !sl__cfg_is_null(p, n)) {
            if ((rc = sl__cfg_choice(p, n, "value.as", as_words, &as)) != SL_OK) {
                return rc;
            }
            if (text_meta && as == 0) {
                return sl__cfg_error(p, sl__cfg_loc_of(n),
                                     "meta '%s' is text, not a number: use as: text", name);
            }
        }
        op->yop = sl__yamlops_value_from_new(target, name, as == 1, msg, sizeof(msg));
        op->desc = sl__cfg_strdupf("value %s %s as %s", cfg_attr_words[target], name, as_words[as]);
        op->reads_header = target == SL_YOP_ON_HEADER;
    }
    return op->yop ? SL_OK : sl__cfg_error(p, sl__cfg_loc_of(arg), "value: %s", msg);
}

static int cfg_op_timestamp(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"json", "header", "format", NULL};
    char msg[256];
    const char *name = NULL, *format;
    yaml_node_t *n, *f;
    sl_yamlop_target target = SL_YOP_ON_VALUE;
    int rc = arg->type == YAML_MAPPING_NODE
                 ? sl__cfg_op_args(p, arg, "timestamp", keys)
                 : sl__cfg_error(p, sl__cfg_loc_of(arg),
                                 "timestamp takes {format: F}, {json: PATH, format: F} or "
                                 "{header: NAME, format: F}");
    if (rc == SL_OK && (sl__cfg_get(p, arg, "json") || sl__cfg_get(p, arg, "header"))) {
        rc = cfg_op_attr(p, arg, "timestamp", true, &target, &name, &n);
    }
    if (rc == SL_OK) {
        rc = sl__cfg_key_scalar(p, arg, "format", "timestamp", true, &format, &f);
    }
    if (rc != SL_OK) {
        return rc;
    }
    op->yop = sl__yamlops_timestamp_new(target, name, format, msg, sizeof(msg));
    if (!op->yop) {
        return sl__cfg_error(p, sl__cfg_loc_of(f), "timestamp: %s", msg);
    }
    op->desc = sl__cfg_strdupf("timestamp %s%s%s as %s", cfg_attr_words[target], name ? " " : "",
                               name ? name : "", format);
    op->reads_header = target == SL_YOP_ON_HEADER;
    return SL_OK;
}

static int cfg_op_filter(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"json",       "meta",    "header", "key", "equals",
                                       "not_equals", "gt",      "ge",     "lt",  "le",
                                       "contains",   "matches", NULL};
    int rc = sl__cfg_op_args(p, arg, "filter", keys);
    if (rc != SL_OK) {
        return rc;
    }
    yaml_node_t *cmp_key = NULL, *cmp_val = NULL;
    for (yaml_node_pair_t *a = arg->data.mapping.pairs.start; a < arg->data.mapping.pairs.top;
         a++) {
        yaml_node_t *k = sl__cfg_node(p, a->key);
        if (sl__yamlops_cmp_from_name(sl__cfg_text(p, k)) < 0) {
            continue;
        }
        if (cmp_key) {
            return sl__cfg_error(p, sl__cfg_loc_of(k),
                                 "filter takes one comparison, got '%s' and '%s'",
                                 sl__cfg_text(p, cmp_key), sl__cfg_text(p, k));
        }
        cmp_key = k;
        cmp_val = sl__cfg_node(p, a->value);
    }
    if (!cmp_key) {
        return sl__cfg_error(p, sl__cfg_loc_of(arg),
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
    if ((n = sl__cfg_get(p, arg, "key")) && (rc = sl__cfg_bool(p, n, "filter.key", &on_key))) {
        return rc;
    }
    if (path && on_key) {
        return sl__cfg_error(p, sl__cfg_loc_of(n),
                             "filter looks at a JSON field (json:), a meta attribute (meta:), a "
                             "header (header:) or the key (key: true), only one");
    }
    const char *cmp_name = sl__cfg_text(p, cmp_key);
    char what[64];
    snprintf(what, sizeof(what), "filter.%s", cmp_name);
    if (cmp_val->type != YAML_SCALAR_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(cmp_val), "%s must be a scalar, got %s", what,
                             sl__cfg_kind(cmp_val));
    }
    const char *operand = sl__cfg_text(p, cmp_val);
    sl_yamlop_cmp cmp = (sl_yamlop_cmp)sl__yamlops_cmp_from_name(cmp_name);
    sl_yamlop_target target = path ? attr : on_key ? SL_YOP_ON_KEY : SL_YOP_ON_VALUE;
    op->reads_header = target == SL_YOP_ON_HEADER;
    char msg[256];
    op->yop = sl__yamlops_filter_new(target, path, cmp, operand, msg, sizeof(msg));
    if (!op->yop) {
        return sl__cfg_error(p, sl__cfg_loc_of(cmp_val), "filter: %s", msg);
    }
    if (path) {
        op->desc =
            sl__cfg_strdupf("filter %s %s %s '%s'", cfg_attr_words[attr], path, cmp_name, operand);
    } else {
        op->desc =
            sl__cfg_strdupf("filter %s %s '%s'", on_key ? "key" : "value", cmp_name, operand);
    }
    return SL_OK;
}

static int cfg_op_reduce_common(cfg_parser *p, yaml_node_t *arg, cfg_op *op, bool by_key)
{
    const char *opname = op->def->name;
    yaml_node_t *fn = arg;
    int rc;
    if (arg->type != YAML_SCALAR_NODE) {
        static const char *const keys_bk[] = {"fn", "partitions", NULL};
        static const char *const keys[] = {"fn", NULL};
        if ((rc = sl__cfg_op_args(p, arg, opname, by_key ? keys_bk : keys)) != SL_OK) {
            return rc;
        }
        if (!(fn = sl__cfg_get(p, arg, "fn"))) {
            return sl__cfg_error(p, sl__cfg_loc_of(arg),
                                 "missing required key 'fn' in op '%s' (one of %s)", opname,
                                 CFG_REDUCER_NAMES);
        }
        if (by_key && (rc = sl__cfg_op_partitions(p, arg, opname, op)) != SL_OK) {
            return rc;
        }
    }
    char what[64];
    snprintf(what, sizeof(what), "%s function", opname);
    int which;
    if ((rc = sl__cfg_choice(p, fn, what, sl__cfg_reducers, &which)) != SL_OK) {
        return rc;
    }
    if (op->partitions > 0) {
        op->desc = sl__cfg_strdupf("%s %s (partitions %d)", opname, sl__cfg_reducers[which],
                                   op->partitions);
    } else {
        op->desc = sl__cfg_strdupf("%s %s", opname, sl__cfg_reducers[which]);
    }
    return cfg_set_reducer(p, op, which, sl__cfg_loc_of(fn));
}

static int cfg_op_join(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    yaml_node_t *with = arg;
    int rc;
    if (arg->type != YAML_SCALAR_NODE) {
        static const char *const keys[] = {"with", "type", "partitions", NULL};
        static const char *const types[] = {"inner", "left", NULL};
        if ((rc = sl__cfg_op_args(p, arg, "join", keys)) != SL_OK) {
            return rc;
        }
        if (!(with = sl__cfg_get(p, arg, "with"))) {
            return sl__cfg_error(p, sl__cfg_loc_of(arg),
                                 "missing required key 'with' in op 'join'");
        }
        yaml_node_t *n = sl__cfg_get(p, arg, "type");
        int t = 0;
        if (n && !sl__cfg_is_null(p, n) && (rc = sl__cfg_choice(p, n, "join.type", types, &t))) {
            return rc;
        }
        op->left = t == 1;
        if ((rc = sl__cfg_op_partitions(p, arg, "join", op)) != SL_OK) {
            return rc;
        }
    }
    const char *name;
    if ((rc = sl__cfg_scalar(p, with, "join's stream", &name)) != SL_OK) {
        return rc;
    }
    op->with.name = strdup(name);
    op->with.loc = sl__cfg_loc_of(with);
    op->desc = sl__cfg_strdupf("join %s (%s)", name, op->left ? "left" : "inner");
    return SL_OK;
}

/* The required fn of a windowed or running op; sets the reducer. *which gets its index. */
int sl__cfg_op_fn(cfg_parser *p, yaml_node_t *arg, const char *opname, cfg_op *op, int *which)
{
    yaml_node_t *fn = sl__cfg_get(p, arg, "fn");
    if (!fn || sl__cfg_is_null(p, fn)) {
        return sl__cfg_error(p, sl__cfg_loc_of(arg),
                             "missing required key 'fn' in op '%s' (one of %s)", opname,
                             CFG_REDUCER_NAMES);
    }
    if (fn->type == YAML_MAPPING_NODE && strcmp(opname, "running") != 0) {
        *which = -1; /* a Lua reducer: {lua: CODE} */
        int rc = sl__cfg_lua_parse(p, fn, op, SL_LUA_REDUCE, NULL);
        op->reduce = sl__lua_reduce;
        free(op->desc); /* the windowed op writes its own */
        op->desc = NULL;
        return rc;
    }
    char what[96];
    snprintf(what, sizeof(what), "%s.fn", opname);
    int rc = sl__cfg_choice(p, fn, what, sl__cfg_reducers, which);
    return rc == SL_OK ? cfg_set_reducer(p, op, *which, sl__cfg_loc_of(fn)) : rc;
}

/* An op that keeps state across batches needs app.checkpoint_dir (parsed before streams). */
int sl__cfg_op_needs_checkpoint(cfg_parser *p, cfg_loc loc, const char *what)
{
    if (p->cfg->checkpoint_dir) {
        return SL_OK;
    }
    return sl__cfg_error(p, loc,
                         "%s keeps state across batches: it needs app.checkpoint_dir (a directory "
                         "where that state is checkpointed)",
                         what);
}

/* A per-record cost of burn: 20us, 0.5ms, 1s. */
static int cfg_burn_us(cfg_parser *p, yaml_node_t *n, const char *what, int64_t *us)
{
    const char *s;
    int rc = sl__cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    if (sl__yamlops_parse_us(s, us) != SL_OK) {
        return sl__cfg_error(p, sl__cfg_loc_of(n),
                             "%s: bad per-record cost '%s' (write e.g. 20us, 0.5ms; at most 10s)",
                             what, s);
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
    } else if ((rc = sl__cfg_op_args(p, arg, "burn", keys)) == SL_OK) {
        yaml_node_t *n = sl__cfg_get(p, arg, "per_record");
        if (!n || sl__cfg_is_null(p, n)) {
            return sl__cfg_error(p, sl__cfg_loc_of(arg),
                                 "missing required key 'per_record' in op 'burn'");
        }
        rc = cfg_burn_us(p, n, "burn.per_record", &us);
        yaml_node_t *sched = sl__cfg_get(p, arg, "schedule");
        if (rc == SL_OK && sched && !sl__cfg_is_null(p, sched)) {
            if (sched->type != YAML_SEQUENCE_NODE) {
                return sl__cfg_error(p, sl__cfg_loc_of(sched),
                                     "burn.schedule must be a list, got %s", sl__cfg_kind(sched));
            }
            size_t k = (size_t)(sched->data.sequence.items.top - sched->data.sequence.items.start);
            if (k > SL_YAMLOPS_BURN_MAX_STEPS) {
                return sl__cfg_error(p, sl__cfg_loc_of(sched),
                                     "burn.schedule has more than %d steps",
                                     SL_YAMLOPS_BURN_MAX_STEPS);
            }
            for (size_t i = 0; i < k && rc == SL_OK; i++) {
                yaml_node_t *st = sl__cfg_node(p, sched->data.sequence.items.start[i]);
                if ((rc = sl__cfg_check_map(p, st, "a step of burn.schedule", step_keys)) !=
                    SL_OK) {
                    break;
                }
                yaml_node_t *after = sl__cfg_get(p, st, "after");
                yaml_node_t *cost = sl__cfg_get(p, st, "per_record");
                if (!after || sl__cfg_is_null(p, after) || !cost || sl__cfg_is_null(p, cost)) {
                    return sl__cfg_error(p, sl__cfg_loc_of(st),
                                         "a step of burn.schedule needs 'after' and 'per_record'");
                }
                rc = sl__cfg_duration(p, after, "burn.schedule.after", 0, &steps[i].after_ms);
                if (rc == SL_OK) {
                    rc = cfg_burn_us(p, cost, "burn.schedule.per_record", &steps[i].per_record_us);
                }
                if (rc == SL_OK && i > 0 && steps[i].after_ms <= steps[i - 1].after_ms) {
                    return sl__cfg_error(p, sl__cfg_loc_of(after),
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
    op->yop = sl__yamlops_burn_new(us, steps, nsteps, msg, sizeof(msg));
    if (!op->yop) {
        return sl__cfg_error(p, op->loc, "burn: %s", msg);
    }
    op->desc = nsteps ? sl__cfg_strdupf("burn %" PRId64 "us (schedule of %zu steps)", us, nsteps)
                      : sl__cfg_strdupf("burn %" PRId64 "us", us);
    return SL_OK;
}

/* ==== Parsers of the ops without one above ==== */

static int cfg_op_reduce_by_key(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    return cfg_op_reduce_common(p, arg, op, true);
}

static int cfg_op_reduce(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    return cfg_op_reduce_common(p, arg, op, false);
}

static int cfg_op_count(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const none[] = {NULL};
    op->desc = strdup("count");
    return arg ? sl__cfg_op_args(p, arg, "count", none) : SL_OK;
}

static int cfg_op_count_by_value(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const parts[] = {"partitions", NULL};
    int rc;
    if (arg && ((rc = sl__cfg_op_args(p, arg, "count_by_value", parts)) ||
                (rc = sl__cfg_op_partitions(p, arg, "count_by_value", op)))) {
        return rc;
    }
    op->desc = op->partitions ? sl__cfg_strdupf("count_by_value (partitions %d)", op->partitions)
                              : strdup("count_by_value");
    return SL_OK;
}

static int cfg_op_map(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const map_words[] = {"lower", "upper", "trim", NULL};
    char msg[256];
    int which;
    int rc = sl__cfg_choice(p, arg, "map", map_words, &which);
    if (rc != SL_OK) {
        return rc;
    }
    op->yop = sl__yamlops_transform_new(map_words[which], msg, sizeof(msg));
    op->desc = sl__cfg_strdupf("map %s", map_words[which]);
    return op->yop ? SL_OK : sl__cfg_error(p, sl__cfg_loc_of(arg), "map: %s", msg);
}

static int cfg_op_repartition(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    int64_t v;
    int rc = sl__cfg_int(p, arg, "repartition", 1, CFG_MAX_PARTITIONS, &v);
    if (rc != SL_OK) {
        return rc;
    }
    op->partitions = (int)v;
    op->desc = sl__cfg_strdupf("repartition %d", op->partitions);
    return SL_OK;
}

/* ==== Building: each op through the public API ==== */

/* The typed value 1 before a count reducer, partial results before avg, first, last and
 * count_distinct (cfg_set_reducer). */
sl_stream *sl__cfg_count_ones(const cfg_op *op, sl_stream *s)
{
    if (op->agg) {
        return sl_stream_map_values(s, sl__reducer_lift, (void *)op->agg);
    }
    return op->yop ? sl_stream_map_values(s, sl__yamlops_map, op->yop) : s;
}

sl_stream *sl__cfg_finish(const cfg_op *op, sl_stream *s)
{
    return op->agg && s ? sl_stream_map_values(s, sl__reducer_finish, NULL) : s;
}

static sl_stream *cfg_apply_split(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_flat_map(s, sl__yamlops_flat_map, op->yop);
}

static sl_stream *cfg_apply_key(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_key_by(s, sl__yamlops_map, op->yop);
}

static sl_stream *cfg_apply_value(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_map_values(s, sl__yamlops_map, op->yop);
}

static sl_stream *cfg_apply_filter(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_filter(s, sl__yamlops_filter, op->yop);
}

static sl_stream *cfg_apply_reduce_by_key(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl__cfg_finish(
        op, sl_stream_reduce_by_key(sl__cfg_count_ones(op, s), op->reduce, NULL, op->partitions));
}

static sl_stream *cfg_apply_reduce(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl__cfg_finish(op, sl_stream_reduce(sl__cfg_count_ones(op, s), op->reduce, NULL));
}

static sl_stream *cfg_apply_count(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)op;
    (void)handles;
    return sl_stream_count(s);
}

static sl_stream *cfg_apply_count_by_value(const cfg_op *op, sl_stream *s,
                                           sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_count_by_value(s, op->partitions);
}

static sl_stream *cfg_apply_map(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_map(s, sl__yamlops_map, op->yop);
}

static sl_stream *cfg_apply_repartition(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_repartition(s, op->partitions);
}

static sl_stream *cfg_apply_join(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    if (op->left) {
        return sl_stream_left_join(s, handles[op->with.idx], sl__yamlops_join, NULL,
                                   op->partitions);
    }
    return sl_stream_join(s, handles[op->with.idx], sl__yamlops_join, NULL, op->partitions);
}

static sl_stream *cfg_apply_burn(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_map(s, sl__yamlops_burn, op->yop);
}

/* ==== The op table ====
 * Adding an op: its parse and apply functions (above, or in sl_cfg_window.c for windowed
 * and stateful ops, declared in sl_cfg.h), and one entry here (in the order the
 * docs list them). Dispatch, sluice check's lines (op->desc, set by parse), sluice ops and
 * the README's operations reference come from here. */

const cfg_op_def sl__cfg_ops[] = {
    {.name = "split",
     .parse = cfg_op_split,
     .apply = cfg_apply_split,
     .forms = {"split: whitespace", "split: {delimiter: \",\"}"},
     .doc = "one record per token (the value); empty tokens dropped"},
    {.name = "key",
     .parse = cfg_op_key,
     .apply = cfg_apply_key,
     .forms = {"key: value", "key: {json: user.id}",
               "key: {meta: partition|topic|offset|source|timestamp}", "key: {header: NAME}",
               "key: {lua: \"function(r) return r.topic end\"}"},
     .doc = "the key becomes the value bytes, a field of the JSON value (dotted path; a number "
            "indexes an array: `items.0.sku`), a record attribute (numbers as text) or a Kafka "
            "header's value (the last of that name; a null value: empty); a record without it "
            "is rejected. A Kafka record's key is already the message key. With `lua:` (or "
            "`lua_file:`) the key is what the function returns (a string or a number; nil "
            "rejects the record)"},
    {.name = "value",
     .parse = cfg_op_value,
     .apply = cfg_apply_value,
     .forms = {"value: 1", "value: number", "value: {json: amount}", "value: {meta: offset}",
               "value: {header: NAME, as: text}",
               "value: {lua: \"function(r) return #r.value end\"}"},
     .doc = "the typed value becomes a literal (integer or float); with `number`, the number the "
            "value bytes hold as text (integer, else float; e.g. counts a kafka sink wrote); or, "
            "with `as: number` (the default), the typed value from a JSON number, from "
            "partition, offset or timestamp, or from a field or header holding a number; `as: "
            "text` (the default for `meta: topic` and `source`) sets the value bytes to the "
            "field's, attribute's or header's text. A record without it, or whose text is not a "
            "number, is rejected (counted, logged with the reason, such as `missing JSON field "
            "'amount'`, and its source, partition and offset). With "
            "`lua:`, a number the function returns becomes the typed value, a string the value "
            "bytes, a table sets the record's fields (as `map`); nil rejects"},
    {.name = "filter",
     .parse = cfg_op_filter,
     .apply = cfg_apply_filter,
     .forms = {"filter: {json: level, equals: error}", "filter: {header: NAME, equals: x}",
               "filter: {meta: partition, equals: 3}", "filter: {key: true, matches: REGEX}",
               "filter: {lua: \"function(r) return r.num > 10 end\"}"},
     .doc = "keeps matching records; one of `equals`, `not_equals`, `gt`, `ge`, `lt`, `le`, "
            "`contains`, `matches` (a PCRE2 regular expression, unanchored, on the bytes: `\\d`, "
            "`(?i)`; a bad one is a config error with PCRE2's message and offset; a match that "
            "backtracks over a million steps rejects the record); without `json:`, `meta:` or "
            "`header:` on the value (the typed value for `gt`..`le`, and for `equals` and "
            "`not_equals` with a number when the record has one), with `key: true` on the key; "
            "integer attributes compare as numbers (as text with `contains` and `matches`), "
            "headers as text; a missing field, header or attribute matches only `not_equals`; with "
            "`lua:`, keeps the records for which the function returns a true value"},
    {.name = "timestamp",
     .parse = cfg_op_timestamp,
     .apply = cfg_apply_value,
     .forms = {"timestamp: {json: time, format: rfc3339}", "timestamp: {json: ts, format: ms}",
               "timestamp: {header: NAME, format: s}",
               "timestamp: {format: \"%d/%b/%Y:%H:%M:%S %z\"}"},
     .doc = "the record's event time (what `time: event` windows use; Kafka's message "
            "timestamp until then) from a JSON field (a number or a string), a Kafka header or "
            "the value: epoch `s` (a fraction too), `ms`, `us` or `ns`, `rfc3339` (ISO 8601: "
            "`2026-12-07T21:44:00.5+01:00`, a space for the T, no offset: UTC) or a strptime "
            "pattern (UTC unless it has `%z`); a record without a valid time is rejected "
            "(counted, logged with its source, partition and offset)"},
    {.name = "parse",
     .parse = sl__cfg_op_parse,
     .apply = sl__cfg_apply_shape,
     .forms = {"parse: {regex: '^(?<ip>\\S+) .* (?<status>\\d{3}) ', types: {status: int}}",
               "parse: {format: nginx_combined}", "parse: syslog_rfc5424",
               "parse: {regex: REGEX, json: msg}", "parse: {regex: REGEX, key: true}"},
     .doc = sl__cfg_doc_parse},
    {.name = "set",
     .parse = sl__cfg_op_set,
     .apply = sl__cfg_apply_shape,
     .forms = {"set: {field: total, expr: \"price * qty\"}", "set: {field: user.id, from: uid}",
               "set: {field: env, value: prod}"},
     .doc = sl__cfg_doc_set},
    {.name = "rename",
     .parse = sl__cfg_op_rename,
     .apply = sl__cfg_apply_shape,
     .forms = {"rename: {from: a.b, to: c}"},
     .doc = sl__cfg_doc_rename},
    {.name = "drop",
     .parse = sl__cfg_op_drop,
     .apply = sl__cfg_apply_shape,
     .forms = {"drop: [a, b.c]", "drop: a"},
     .doc = sl__cfg_doc_drop},
    {.name = "keep",
     .parse = sl__cfg_op_keep,
     .apply = sl__cfg_apply_shape,
     .forms = {"keep: [a, b.c]"},
     .doc = sl__cfg_doc_keep},
    {.name = "reduce_by_key",
     .parse = cfg_op_reduce_by_key,
     .apply = cfg_apply_reduce_by_key,
     .forms = {"reduce_by_key: sum", "reduce_by_key: {fn: avg, partitions: 4}",
               "reduce_by_key: {lua: \"function(a, b) return a + b end\", partitions: 4}"},
     .doc = "per key: `sum`, `count`, `min`, `max` of the typed value (`count` counts records); "
            "`avg`: the sum over the count, exact over windows too (never an average of "
            "averages), records without a typed value skipped, a double; `first`, `last`: the "
            "record with the earliest or latest time (ts), equal times ordered by partition, "
            "offset, typed value and bytes, so the result does not depend on scheduling: its "
            "typed value and value bytes; `count_distinct`: how many distinct values, the typed "
            "value when a record has one (`value: {json: user_id}`; 7 and 7.0 alike), else the "
            "value bytes (`value: {json: user, as: text}`), exact: the set is kept per key (per "
            "batch, window or running state), so memory grows with the distinct values; a Lua "
            "function combines two values (the typed value, else the value bytes) into one (a "
            "number: the typed value; a string: the value bytes); it must be associative and "
            "commutative"},
    {.name = "reduce",
     .parse = cfg_op_reduce,
     .apply = cfg_apply_reduce,
     .forms = {"reduce: sum", "reduce: {fn: avg}",
               "reduce: {lua: \"function(a, b) return a + b end\"}"},
     .doc = "one record per batch: its records reduced with any `fn` of `reduce_by_key`, or a "
            "Lua function of two values (as in `reduce_by_key`)"},
    {.name = "count",
     .parse = cfg_op_count,
     .apply = cfg_apply_count,
     .flags = CFG_OP_ARG_OPTIONAL,
     .forms = {"count: {}"},
     .doc = "one record per batch: the number of records (0 for an empty batch)"},
    {.name = "count_by_value",
     .parse = cfg_op_count_by_value,
     .apply = cfg_apply_count_by_value,
     .flags = CFG_OP_ARG_OPTIONAL,
     .forms = {"count_by_value: {}", "count_by_value: {partitions: 4}"},
     .doc = "key = value, typed value = its count"},
    {.name = "map",
     .parse = cfg_op_map,
     .apply = cfg_apply_map,
     .forms = {"map: lower", "map: upper", "map: trim",
               "map: {lua: \"function(r) r.value = r.value:upper() return r end\"}",
               "map: {lua_file: scripts/shape.lua, function: shape}"},
     .doc = "changes the value bytes (ASCII); or a Lua function of the record table (`key`, "
            "`value`, `num`, `timestamp`, `topic`, `partition`, `offset`, `source`, `headers`) "
            "returning the record: a table sets `key`, `value`, `num` and `timestamp` (absent "
            "or nil: unchanged; false: cleared), a string the value; nil or an error rejects "
            "the record. Lua forms also take `allow:`, `instructions:` and `memory_mb:` (see "
            "\"Writing functions in Lua\")"},
    {.name = "flat_map",
     .parse = sl__cfg_op_flat_map,
     .apply = sl__cfg_apply_lua,
     .forms = {"flat_map: {lua: \"function(r) return {r.value, r.value} end\"}"},
     .doc = "zero or more records per record: the Lua function returns a list of records "
            "(tables, as `map` returns, or strings: the value), one record table, or nil "
            "(none); each starts as a copy of the input record"},
    {.name = "repartition",
     .parse = cfg_op_repartition,
     .apply = cfg_apply_repartition,
     .forms = {"repartition: 4"},
     .doc = "spreads records round-robin over 4 partitions (1..4096)"},
    {.name = "window",
     .parse = sl__cfg_op_window,
     .apply = sl__cfg_apply_window,
     .flags = CFG_OP_WINDOWED,
     .forms = {"window: {length: 30s, slide: 10s}", "window: 30s",
               "window: {length: 24h, slide: 24h, offset: -1h}"},
     .doc = "the union of the last 30 s of batches, every 10 s (`slide` optional: the parent's "
            "slide); batch times count from a multiple of every slide since the epoch, so a "
            "window of 1 m every 1 m starts on the minute; `offset` (any sign; also on the other "
            "windows) shifts that, e.g. days from midnight UTC+1 with `-1h`: every window on "
            "processing time in a pipeline must give the same offset"},
    {.name = "join",
     .parse = cfg_op_join,
     .apply = cfg_apply_join,
     .flags = CFG_OP_JOINS,
     .forms = {"join: other", "join: {with: other, type: inner|left, partitions: 4}"},
     .doc = "records of both streams with equal keys in the same batch; the current stream is "
            "the left side; both must have the same slide; the value is "
            "`{\"left\": L, \"right\": R}` when both are JSON objects (each side's fields kept "
            "apart, as it came; a left join's missing right is `null`), else `(L,R)` as text "
            "(typed values as numbers); the typed value is the left one's"},
    {.name = "reduce_by_key_and_window",
     .parse = sl__cfg_op_reduce_by_key_and_window,
     .apply = sl__cfg_apply_reduce_by_key_and_window,
     .flags = CFG_OP_WINDOWED,
     .forms = {"reduce_by_key_and_window: {fn: sum, length: 30s, slide: 10s}",
               "reduce_by_key_and_window: {fn: count, length: 30s, keyed: true}",
               "reduce_by_key_and_window: {fn: count, length: 1m, time: event, "
               "max_out_of_orderness: 5s}",
               "reduce_by_key_and_window: {fn: sum, gap: 30s, time: event, allowed_lateness: 10s, "
               "late: too_late}",
               "reduce_by_key_and_window: {fn: count, length: 24h, time: event, offset: -1h}"},
     .doc = "per key over the window, every slide (`slide` optional: the parent's); `fn`: any "
            "of `reduce_by_key` (`avg`, `first`, `last`, `count_distinct` exact over the whole "
            "window in every form: each slide or pane keeps its partial result); "
            "`inverse: true` (sum, count and avg only; an avg whose records all left is dropped; "
            "keeps state "
            "across batches, so it needs `app.checkpoint_dir`) updates the previous window with "
            "the batches that leave and enter instead of reducing the whole window; "
            "`keyed: true` keeps each key's window as keyed state (one result per slide; needs "
            "`app.checkpoint_dir`), which a sink with `changelog: true` moves with the "
            "partitions across a consumer group; "
            "`time: event` windows the records' own time (Kafka: the message timestamp) instead "
            "of the batches': windows aligned to the epoch (plus `offset`, any sign: `-1h` starts "
            "days at midnight UTC+1), each emitted once per key when the "
            "watermark of the key's partition (its highest record time less "
            "`max_out_of_orderness`, default 0) passes the window's end, with the window's end as "
            "the record's time and the sinks' `window_start`/`window_end` its bounds; for "
            "`allowed_lateness` (default 0) after that a late record updates its windows, "
            "emitted again (sinks upsert them by their bounds); later records are left out and "
            "counted (`sluice_late_records_total`) and, with `late: NAME`, go as they came in to "
            "a stream NAME (read with `from: NAME`); `gap` instead of `length` and `slide` "
            "makes session windows: per key, records less than the gap apart make one window "
            "[first, last + gap), emitted when the watermark passes its end; a late record can "
            "extend a session or bridge two into one, and the bounds emitted before are then "
            "retracted first by a tombstone with those bounds (the postgres sink in `upsert` with "
            "`window_start`/`window_end` among `key_columns` deletes that row, the redis sink "
            "DELs its key), so no stale session stays; with `idle_timeout` a partition without "
            "records for that long follows the others' event time, so its windows close; the "
            "open windows are keyed state (needs "
            "`app.checkpoint_dir`; moves with the partitions with a `changelog: true` sink); "
            "`drop_zero: true` drops keys whose value is 0; `partitions: N`; without `inverse`, "
            "`keyed` and `time: event`, a key of the previous slide's result missing from this one "
            "(its records left the window, or `drop_zero` dropped it) comes once more as a "
            "tombstone (no value), which the redis sink turns into DEL/HDEL/ZREM, so no stale "
            "value stays (the postgres sink deletes its row in `upsert` and adds nothing in "
            "`increment`; the keys are not kept across a restart)"},
    {.name = "count_by_window",
     .parse = sl__cfg_op_count_by_window,
     .apply = sl__cfg_apply_count_by_window,
     .flags = CFG_OP_WINDOWED,
     .forms = {"count_by_window: {length: 30s, slide: 10s}"},
     .doc = "one record per slide: the number of records in the window (0 too)"},
    {.name = "reduce_by_window",
     .parse = sl__cfg_op_reduce_by_window,
     .apply = sl__cfg_apply_reduce_by_window,
     .flags = CFG_OP_WINDOWED,
     .forms = {"reduce_by_window: {fn: max, length: 30s, slide: 10s}"},
     .doc = "one record per slide: the window's records reduced with any `fn` of "
            "`reduce_by_key` (none for an empty window)"},
    {.name = "count_by_value_and_window",
     .parse = sl__cfg_op_count_by_value_and_window,
     .apply = sl__cfg_apply_count_by_value_and_window,
     .flags = CFG_OP_WINDOWED | CFG_OP_STATEFUL,
     .forms = {"count_by_value_and_window: {length: 30s, slide: 10s}"},
     .doc = "key = value, typed value = its count in the window; zero counts dropped; "
            "computed with the inverse; `partitions: N`"},
    {.name = "running",
     .parse = sl__cfg_op_running,
     .apply = sl__cfg_apply_running,
     .flags = CFG_OP_STATEFUL,
     .forms = {"running: {fn: count, ttl: 10m}"},
     .doc = "a running aggregate per key across batches (any `fn` of `reduce_by_key`): each "
            "batch emits (key, aggregate so far) for its keys; keys idle longer than `ttl` are "
            "forgotten (no `ttl`: kept); `partitions: N`"},
    {.name = "update_state",
     .parse = sl__cfg_op_update_state,
     .apply = sl__cfg_apply_lua,
     .flags = CFG_OP_STATEFUL,
     .forms = {"update_state: {lua: \"function(key, values, state) return (state or 0) + "
               "#values end\", partitions: 4}",
               "update_state: {lua: \"function(k, vs, s) local n = (s or 0) + #vs; "
               "if n >= 100 and (s or 0) < 100 then return n, {value = 'hot'} end; "
               "return n end\", emit: true}"},
     .doc = "Spark's updateStateByKey in Lua: per key with state or records in the batch, the "
            "function gets the key, the list of the batch's record tables of the key (maybe "
            "empty) and the previous state (nil for a new key; a number, a string or a table) "
            "and returns the new state (nil removes the key); the output is one record per key "
            "with state: a number as the typed value, a string as the value, a table as JSON "
            "text in the value; with `emit: true` the function returns the new state and the "
            "records to emit (a list of record tables or strings, one record table, or nil; "
            "keyed by the key unless they set one, at the batch time), and those are the "
            "output instead; `partitions: N`"},
    {.name = "burn",
     .parse = cfg_op_burn,
     .apply = cfg_apply_burn,
     .forms = {"burn: 20us",
               "burn: {per_record: 20us, schedule: [{after: 30s, per_record: 40us}]}"},
     .doc = "test only: passes records on and busy-loops this much of the worker's CPU time per "
            "record (never sleeps), so that capacity is known (1 worker: 1/COST records/s); "
            "COST: `20us`, `0.5ms`, `1s` (at most 10s); the schedule changes the cost once "
            "`after` has passed since the first record the op saw (`after` values increase)"},
    {0},
};

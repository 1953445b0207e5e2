/* sl_cfg_endpoint.c -- sources and sinks of a pipeline file: connector, options as
 * written (nested mappings flattened to dotted names), checked against the option tables. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cfg.h"

/* ==== Names ==== */

/* FNV-1a: the hash of the name index. */
static size_t cfg_name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return (size_t)h;
}

/* The slot of name in t: the one holding it, or the empty one where it would go. */
static size_t cfg_names_slot(const cfg_names *t, const char *name)
{
    size_t mask = t->cap - 1;
    size_t i = cfg_name_hash(name) & mask;
    while (t->keys[i] && strcmp(t->keys[i], name) != 0) {
        i = (i + 1) & mask;
    }
    return i;
}

/* Adds name (borrowed: the config owns it) with idx; the table stays at most half full. */
static int cfg_names_add(cfg_names *t, const char *name, size_t idx)
{
    if (2 * (t->n + 1) > t->cap) {
        cfg_names bigger = {.cap = t->cap ? 2 * t->cap : 64};
        bigger.keys = calloc(bigger.cap, sizeof(*bigger.keys));
        bigger.idx = calloc(bigger.cap, sizeof(*bigger.idx));
        if (!bigger.keys || !bigger.idx) {
            free(bigger.keys);
            free(bigger.idx);
            return SL_ERR_NOMEM;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (t->keys[i]) {
                size_t j = cfg_names_slot(&bigger, t->keys[i]);
                bigger.keys[j] = t->keys[i];
                bigger.idx[j] = t->idx[i];
            }
        }
        bigger.n = t->n;
        free(t->keys);
        free(t->idx);
        *t = bigger;
    }
    size_t i = cfg_names_slot(t, name);
    t->keys[i] = name;
    t->idx[i] = idx;
    t->n++;
    return SL_OK;
}

size_t sl__cfg_lookup(const cfg_parser *p, const char *name, bool sinks)
{
    const cfg_names *t = &p->names[sinks];
    if (!t->cap) {
        return SIZE_MAX;
    }
    size_t i = cfg_names_slot(t, name);
    return t->keys[i] ? t->idx[i] : SIZE_MAX;
}

void sl__cfg_names_free(cfg_parser *p)
{
    for (int k = 0; k < 2; k++) {
        free(p->names[k].keys);
        free(p->names[k].idx);
        p->names[k] = (cfg_names){0};
    }
}

int sl__cfg_unique(cfg_parser *p, const char *name, cfg_loc loc, bool sinks, size_t idx)
{
    const sl_config *cfg = p->cfg;
    size_t prev = sl__cfg_lookup(p, name, sinks);
    if (prev != SIZE_MAX) {
        const cfg_loc *at = sinks                  ? &cfg->sinks[prev].loc
                            : prev < cfg->nsources ? &cfg->sources[prev].loc
                                                   : &cfg->streams[prev - cfg->nsources].loc;
        return sl__cfg_error(p, loc, "duplicate name '%s' (already used at line %d)%s", name,
                             at->line, sinks ? "" : "; sources and streams share one namespace");
    }
    if (cfg_names_add(&p->names[sinks], name, idx) != SL_OK) {
        return sl__cfg_error(p, loc, "out of memory");
    }
    return SL_OK;
}

/* ==== Sources and sinks ==== */

const sl_option *sl__cfg_common_options(unsigned role)
{
    return role == SL_SOURCE ? sl_common_source_options() : sl_common_sink_options();
}

const sl_option *sl__cfg_find_option(const sl_option *t1, const sl_option *t2, const char *key)
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
void sl__cfg_level_keys(const sl_option *t1, const sl_option *t2, const char *prefix,
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
    sl__cfg_level_keys(t1, t2, prefix, names, pool, 2);
    return names[0] != NULL;
}

/* Appends the pairs of map to *kv, flattening nested option mappings. */
static int cfg_flatten(cfg_parser *p, yaml_node_t *map, const char *prefix, const sl_option *t1,
                       const sl_option *t2, const char *where, cfg_endpoint *ep, cfg_kv **kv,
                       size_t *n, size_t *cap)
{
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        yaml_node_t *k = sl__cfg_node(p, a->key);
        yaml_node_t *v = sl__cfg_node(p, a->value);
        const char *name = sl__cfg_text(p, k);
        if (prefix) {
            char **fk = realloc(ep->flat_keys, (ep->nflat + 1) * sizeof(*fk));
            if (fk) {
                ep->flat_keys = fk;
            }
            char *full = fk ? sl__cfg_strdupf("%s.%s", prefix, name) : NULL;
            if (!full) {
                return sl__cfg_error(p, sl__cfg_loc_of(k), "out of memory");
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
        if (nested && !sl__cfg_find_option(t1, t2, name)) {
            const char *keys[64];
            char pool[64][64], list[1024];
            sl__cfg_level_keys(t1, t2, name, keys, pool, 64);
            return sl__cfg_error(p, sl__cfg_loc_of(v),
                                 "'%s' in %s must be a mapping with the keys: %s", name, where,
                                 sl__cfg_join(keys, list, sizeof(list)));
        }
        if (prefix && !sl__cfg_find_option(t1, t2, name)) {
            const char *keys[64];
            char pool[64][64], list[1024], hint[160] = "";
            sl__cfg_level_keys(t1, t2, prefix, keys, pool, 64);
            const char *close = sl__closest(sl__cfg_text(p, k), keys);
            if (close) {
                snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
            }
            return sl__cfg_error(
                p, sl__cfg_loc_of(k), "unknown key '%s' in '%s' of %s%s; valid keys: %s",
                sl__cfg_text(p, k), prefix, where, hint, sl__cfg_join(keys, list, sizeof(list)));
        }
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 16;
            cfg_kv *x = realloc(*kv, c * sizeof(*x));
            if (!x) {
                return sl__cfg_error(p, sl__cfg_loc_of(k), "out of memory");
            }
            *kv = x;
            *cap = c;
        }
        (*kv)[(*n)++] = (cfg_kv){.key = name, .k = k, .v = v};
    }
    return SL_OK;
}

/* Parses a source or sink item: name, type, from (sinks) and the connector's options. */
int sl__cfg_parse_endpoint(cfg_parser *p, yaml_node_t *item, unsigned role, cfg_endpoint *ep)
{
    const char *rname = role == SL_SOURCE ? "source" : "sink";
    char where[160];
    snprintf(where, sizeof(where), "a %s", rname);
    ep->role = role;
    int rc = sl__cfg_check_map(p, item, where, NULL);
    if (rc != SL_OK) {
        return rc;
    }
    ep->loc = sl__cfg_loc_of(item);
    cfg_loc name_loc;
    if ((rc = sl__cfg_name(p, item, where, &ep->name, &name_loc)) != SL_OK) {
        return rc;
    }
    size_t idx = (size_t)(role == SL_SINK ? ep - p->cfg->sinks : ep - p->cfg->sources);
    if ((rc = sl__cfg_unique(p, ep->name, name_loc, role == SL_SINK, idx)) != SL_OK) {
        return rc;
    }
    snprintf(where, sizeof(where), "%s '%s'", rname, ep->name);

    /* type */
    const char *type;
    yaml_node_t *type_node;
    if ((rc = sl__cfg_key_scalar(p, item, "type", where, true, &type, &type_node)) != SL_OK) {
        return rc;
    }
    ep->conn = sl_connector_find(type, role);
    if (!ep->conn) {
        const char *names[64];
        cfg_connector_names(role, names, 64);
        char list[512];
        sl__cfg_join(names, list, sizeof(list));
        unsigned other = role == SL_SOURCE ? SL_SINK : SL_SOURCE;
        if (sl_connector_find(type, other)) {
            return sl__cfg_error(p, sl__cfg_loc_of(type_node),
                                 "'%s' is not a %s type (it is a %s); %s "
                                 "types: %s",
                                 type, rname, role == SL_SOURCE ? "sink" : "source", rname, list);
        }
        const char *close = sl__closest(type, names);
        char hint[160] = "";
        if (close) {
            snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
        }
        return sl__cfg_error(p, sl__cfg_loc_of(type_node),
                             "unknown %s type '%s'%s; known %s types: %s", rname, type, hint, rname,
                             list);
    }
    if (!(ep->type = strdup(type))) {
        return sl__cfg_error(p, ep->loc, "out of memory");
    }
    snprintf(where, sizeof(where), "%s %s '%s'", type, rname, ep->name);

    /* from (sinks) */
    if (role == SL_SINK) {
        yaml_node_t *from = sl__cfg_get(p, item, "from");
        if (!from || sl__cfg_is_null(p, from)) {
            return sl__cfg_error(p, ep->loc, "missing required key 'from' in %s", where);
        }
        if (from->type == YAML_SEQUENCE_NODE) {
            return sl__cfg_error(p, sl__cfg_loc_of(from),
                                 "'from' in %s must name one stream or source "
                                 "(for a union, declare a stream with a list in its 'from')",
                                 where);
        }
        const char *f;
        if ((rc = sl__cfg_scalar(p, from, "'from'", &f)) != SL_OK) {
            return rc;
        }
        ep->from.name = strdup(f);
        ep->from.loc = sl__cfg_loc_of(from);
        if (!ep->from.name) {
            return sl__cfg_error(p, ep->loc, "out of memory");
        }
    }

    /* Options: every other key, checked against the tables. */
    const sl_option *common = sl__cfg_common_options(role);
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
        return sl__cfg_error(p, ep->loc, "out of memory");
    }
    for (size_t ki = 0; ki < npairs; ki++) {
        yaml_node_t *k = ep->kv[ki].k;
        yaml_node_t *v = ep->kv[ki].v;
        const char *key = ep->kv[ki].key;
        const sl_option *o = sl__cfg_find_option(common, copts, key);
        if (sl__cfg_in_list(key, structural) && !o) {
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
            sl__cfg_level_keys(common, copts, NULL, level, pool, 256);
            for (size_t i = 0; level[i] && n < 255; i++) {
                if (!sl__cfg_in_list(level[i], structural)) {
                    valid[n++] = level[i];
                }
            }
            valid[n] = NULL;
            char list[1024];
            const char *close = sl__closest(key, valid);
            char hint[160] = "";
            if (close) {
                snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
            }
            return sl__cfg_error(p, sl__cfg_loc_of(k),
                                 "unknown option '%s' for %s%s; valid options: %s", key, where,
                                 hint, sl__cfg_join(valid, list, sizeof(list)));
        }
        if (sl__cfg_is_null(p, v)) {
            continue;
        }
        if (v->type == YAML_MAPPING_NODE) {
            return sl__cfg_error(p, sl__cfg_loc_of(v),
                                 "option '%s' of %s must be a scalar%s, got a "
                                 "mapping",
                                 key, where, o->type == SL_OPT_LIST ? " or a list" : "");
        }
        if (v->type == YAML_SEQUENCE_NODE) {
            if (o->type != SL_OPT_LIST) {
                return sl__cfg_error(p, sl__cfg_loc_of(v),
                                     "option '%s' of %s takes one value, not a "
                                     "list",
                                     key, where);
            }
            sl_buf b = {0};
            rc = sl__buf_append(&b, "", 0);
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 rc == SL_OK && it < v->data.sequence.items.top; it++) {
                yaml_node_t *e = sl__cfg_node(p, *it);
                if (e->type != YAML_SCALAR_NODE) {
                    sl__buf_free(&b);
                    return sl__cfg_error(p, sl__cfg_loc_of(e),
                                         "items of option '%s' of %s must be "
                                         "scalars, got %s",
                                         key, where, sl__cfg_kind(e));
                }
                if (b.len > 0) {
                    rc = sl__buf_append(&b, ",", 1);
                }
                if (rc == SL_OK) {
                    const char *t = sl__cfg_text(p, e);
                    rc = sl__buf_append(&b, t, strlen(t));
                }
            }
            rc = rc == SL_OK ? sl_options_set(ep->opts, key, b.p) : rc;
            sl__buf_free(&b);
        } else {
            rc = sl_options_set(ep->opts, key, sl__cfg_text(p, v));
        }
        if (rc != SL_OK || !(ep->opt_keys[ep->nopt_locs] = strdup(key))) {
            return sl__cfg_error(p, sl__cfg_loc_of(v), "cannot set option '%s' of %s: %s", key,
                                 where, sl_err2str(rc != SL_OK ? rc : SL_ERR_NOMEM));
        }
        ep->opt_locs[ep->nopt_locs++] = sl__cfg_loc_of(v);
    }
    /* The structural keys the tables know (such as name) are options too. */
    for (size_t i = 0; structural[i]; i++) {
        if (sl__cfg_find_option(common, copts, structural[i]) &&
            !sl_options_get(ep->opts, structural[i])) {
            const char *val = strcmp(structural[i], "name") == 0   ? ep->name
                              : strcmp(structural[i], "type") == 0 ? ep->type
                                                                   : ep->from.name;
            if (val && sl_options_set(ep->opts, structural[i], val) != SL_OK) {
                return sl__cfg_error(p, ep->loc, "out of memory");
            }
        }
    }
    /* Required options. */
    const sl_option *tables[2] = {common, copts};
    for (int t = 0; t < 2; t++) {
        for (const sl_option *o = tables[t]; o && o->name; o++) {
            if ((o->flags & SL_OPT_REQUIRED) && !sl_options_get(ep->opts, o->name)) {
                return sl__cfg_error(p, ep->loc, "missing required option '%s' in %s%s%s%s",
                                     o->name, where, o->doc ? " (" : "", o->doc ? o->doc : "",
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
        yaml_node_t *bk = bad ? sl__cfg_get_key(p, item, bad) : NULL;
        if (bk) {
            loc = sl__cfg_loc_of(sl__cfg_get(p, item, bad));
        }
        for (size_t i = 0; !bk && bad && i < ep->nopt_locs; i++) {
            if (strcmp(ep->opt_keys[i], bad) == 0) {
                loc = ep->opt_locs[i]; /* a nested option (errors: ...) */
            }
        }
        sl__scrub_options(msg, sizeof(msg), common, copts, ep->opts);
        return sl__cfg_error(p, loc, "%s: %s", where, msg[0] ? msg : "invalid options");
    }
    return SL_OK;
}

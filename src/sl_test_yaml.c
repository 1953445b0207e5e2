/* sl_test_yaml.c -- the values of `sluice test` files: times, YAML as JSON, lists, and the
 * records a sink is expected to write (the format is at the top of sl_test_file.c). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_test_int.h"

/* ==== Times ==== */

bool sl__tparse_rfc3339(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    int n = 0;
    char sep;
    if (sscanf(s, "%4d-%2d-%2d%c%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &sep,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 7 ||
        (sep != 'T' && sep != 't' && sep != ' ') || n != 19) {
        return false;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + n;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++) {
            if (digits < 3) {
                frac = frac * 10 + (*p - '0');
            }
        }
        if (digits == 0) {
            return false;
        }
        for (; digits < 3; digits++) {
            frac *= 10;
        }
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &k) != 2 || k != 5) {
            return false;
        }
        off = (*p == '-' ? -1 : 1) * ((int64_t)hh * 3600 + mm * 60);
        p += 6;
    }
    if (*p || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
        return false;
    }
    *ms = ((int64_t)timegm(&tm) - off) * 1000 + frac;
    return true;
}

void sl__tfmt_time(int64_t ms, char *buf, size_t size)
{
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int64_t rest = ms - (int64_t)secs * 1000;
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest) {
        snprintf(buf + n, size - n, ".%03" PRId64 "Z", rest);
    } else {
        snprintf(buf + n, size - n, "Z");
    }
}

/* ==== YAML helpers ==== */

sl_tloc sl__tloc_of(const yaml_node_t *n)
{
    return (sl_tloc){(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
}

/* A time: an integer (ms since the epoch), an RFC 3339 time or a duration after start. */
int sl__tparse_time(cfg_parser *p, yaml_node_t *n, const char *what, int64_t start, int64_t *out)
{
    const char *s;
    int rc = sl__cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    int64_t d;
    if (end != s && !*end && errno == 0 && !isspace((unsigned char)*s)) {
        *out = v;
    } else if (sl__tparse_rfc3339(s, out)) {
        return SL_OK;
    } else if (sl_parse_duration(s + (*s == '-'), &d) == SL_OK) {
        *out = *s == '-' ? start - d : start + d;
    } else {
        return sl__cfg_error(
            p, sl__cfg_loc_of(n),
            "%s: bad time '%s' (ms since the epoch, an RFC 3339 time such as "
            "2026-01-01T00:00:05Z, or a duration after the start such as 5s or -5s)",
            what, s);
    }
    return SL_OK;
}

/* A plain scalar that YAML reads as a number, a boolean or null, as JSON. */
static json_t *plain_scalar_json(const char *s)
{
    if (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
        strcmp(s, "NULL") == 0) {
        return json_null();
    }
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
        return json_true();
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
        return json_false();
    }
    char *end;
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (end != s && !*end && errno == 0 && !isspace((unsigned char)*s)) {
        return json_integer(i);
    }
    double d = strtod(s, &end);
    bool numeric = end != s && !*end && !isspace((unsigned char)*s) &&
                   strspn(s, "+-0123456789.eE") == strlen(s);
    return numeric ? json_real(d) : json_string(s);
}

/* Any YAML node as JSON (new reference; NULL when out of memory). */
json_t *sl__tyaml_json(cfg_parser *p, yaml_node_t *n)
{
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = sl__cfg_text(p, n);
        return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_scalar_json(s)
                                                               : json_string(s);
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             a && it < n->data.sequence.items.top; it++) {
            json_array_append_new(a, sl__tyaml_json(p, sl__cfg_node(p, *it)));
        }
        return a;
    }
    json_t *o = json_object();
    for (yaml_node_pair_t *a = n->data.mapping.pairs.start; o && a < n->data.mapping.pairs.top;
         a++) {
        json_object_set_new(o, sl__cfg_text(p, sl__cfg_node(p, a->key)),
                            sl__tyaml_json(p, sl__cfg_node(p, a->value)));
    }
    return o;
}

/* The items of a list node; an error naming what when it is not a list. */
int sl__tlist_items(cfg_parser *p, yaml_node_t *n, const char *what, yaml_node_item_t **items,
                    size_t *count)
{
    *items = NULL;
    *count = 0;
    if (n->type != YAML_SEQUENCE_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "%s must be a list, got %s", what,
                             sl__cfg_kind(n));
    }
    *items = n->data.sequence.items.start;
    *count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    return SL_OK;
}

/* ==== Expected records ==== */

static const char *const exp_keys[] = {
    "key",        "value", "json",      "num",    "timestamp", "window_start", "window_end",
    "batch_time", "topic", "partition", "offset", "source",    "tombstone",    NULL};

/* A scalar field into a copy (*out NULL for ~). */
static int exp_text(cfg_parser *p, yaml_node_t *v, const char *what, char **out)
{
    if (v->type != YAML_SCALAR_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(v), "'%s' must be a scalar, got %s", what,
                             sl__cfg_kind(v));
    }
    if (sl__cfg_is_null(p, v)) {
        return SL_OK;
    }
    if (!(*out = strdup(sl__cfg_text(p, v)))) {
        return sl__cfg_error(p, sl__cfg_loc_of(v), "out of memory");
    }
    return SL_OK;
}

static int parse_expected(cfg_parser *p, yaml_node_t *n, int64_t start, sl_texp *e)
{
    e->loc = sl__tloc_of(n);
    if (n->type == YAML_SCALAR_NODE) {
        if (!(e->text = strdup(sl__cfg_text(p, n)))) {
            return sl__cfg_error(p, sl__cfg_loc_of(n), "out of memory");
        }
        return SL_OK;
    }
    if (n->type != YAML_MAPPING_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(n),
                             "an expected record must be a scalar (as the stdout sink prints "
                             "it: \"(key,value)\" or \"value\") or a mapping of the fields to "
                             "compare, got %s",
                             sl__cfg_kind(n));
    }
    int rc = sl__cfg_check_map(p, n, "an expected record", exp_keys);
    if (rc != SL_OK) {
        return rc;
    }
    static const struct {
        const char *name;
        unsigned bit;
    } times[] = {{"timestamp", SL_TX_TS},
                 {"window_start", SL_TX_WSTART},
                 {"window_end", SL_TX_WEND},
                 {"batch_time", SL_TX_BATCH}};
    int64_t *tv[] = {&e->ts, &e->window_start, &e->window_end, &e->batch_time};
    for (size_t i = 0; i < 4; i++) {
        yaml_node_t *v = sl__cfg_get(p, n, times[i].name);
        if (v) {
            char what[64];
            snprintf(what, sizeof(what), "'%s'", times[i].name);
            if ((rc = sl__tparse_time(p, v, what, start, tv[i])) != SL_OK) {
                return rc;
            }
            e->has |= times[i].bit;
        }
    }
    yaml_node_t *v;
    if ((v = sl__cfg_get(p, n, "key"))) {
        e->has |= SL_TX_KEY;
        if ((rc = exp_text(p, v, "key", &e->key)) != SL_OK) {
            return rc;
        }
    }
    if ((v = sl__cfg_get(p, n, "value"))) {
        e->has |= SL_TX_VALUE;
        if ((rc = exp_text(p, v, "value", &e->value)) != SL_OK) {
            return rc;
        }
    }
    if ((v = sl__cfg_get(p, n, "topic"))) {
        e->has |= SL_TX_TOPIC;
        if ((rc = exp_text(p, v, "topic", &e->topic)) != SL_OK) {
            return rc;
        }
    }
    if ((v = sl__cfg_get(p, n, "source"))) {
        e->has |= SL_TX_SOURCE;
        if ((rc = exp_text(p, v, "source", &e->source)) != SL_OK) {
            return rc;
        }
    }
    if ((v = sl__cfg_get(p, n, "json"))) {
        e->has |= SL_TX_JSON;
        if (!(e->json = sl__tyaml_json(p, v))) {
            return sl__cfg_error(p, sl__cfg_loc_of(v), "out of memory");
        }
    }
    if ((v = sl__cfg_get(p, n, "num"))) {
        e->has |= SL_TX_NUM;
        const char *t = v->type == YAML_SCALAR_NODE ? sl__cfg_text(p, v) : "";
        char *end;
        errno = 0;
        if (sl__cfg_is_null(p, v)) {
            e->num_none = true;
        } else if ((e->num = strtod(t, &end)), end == t || *end || errno == ERANGE) {
            return sl__cfg_error(p, sl__cfg_loc_of(v), "'num' must be a number or ~, got %s%s%s",
                                 *t ? "'" : "", *t ? t : sl__cfg_kind(v), *t ? "'" : "");
        }
    }
    if ((v = sl__cfg_get(p, n, "partition"))) {
        e->has |= SL_TX_PARTITION;
        if ((rc = sl__cfg_int(p, v, "'partition'", -1, INT32_MAX, &e->partition)) != SL_OK) {
            return rc;
        }
    }
    if ((v = sl__cfg_get(p, n, "offset"))) {
        e->has |= SL_TX_OFFSET;
        if ((rc = sl__cfg_int(p, v, "'offset'", -1, INT64_MAX, &e->offset)) != SL_OK) {
            return rc;
        }
    }
    if ((v = sl__cfg_get(p, n, "tombstone"))) {
        e->has |= SL_TX_TOMBSTONE;
        if ((rc = sl__cfg_bool(p, v, "'tombstone'", &e->tombstone)) != SL_OK) {
            return rc;
        }
    }
    return SL_OK;
}

/* A group of expected records of sink over listed batches first..last: a list, or ~. */
int sl__tparse_group(cfg_parser *p, yaml_node_t *list, sl_tcase *tc, size_t sink, size_t first,
                     size_t last, const char *what)
{
    sl_tgroup *g = realloc(tc->groups, (tc->ngroups + 1) * sizeof(*g));
    if (!g) {
        return sl__cfg_error(p, sl__cfg_loc_of(list), "out of memory");
    }
    tc->groups = g;
    g = &tc->groups[tc->ngroups++];
    *g = (sl_tgroup){.sink = sink, .first = first, .last = last, .loc = sl__tloc_of(list)};
    if (sl__cfg_is_null(p, list)) {
        return SL_OK;
    }
    g->checked = true;
    yaml_node_item_t *items = NULL;
    size_t n = 0;
    int rc = sl__tlist_items(p, list, what, &items, &n);
    if (rc != SL_OK) {
        return rc;
    }
    g->recs = calloc(n ? n : 1, sizeof(*g->recs));
    if (!g->recs) {
        return sl__cfg_error(p, sl__cfg_loc_of(list), "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        g->nrecs = i + 1;
        if ((rc = parse_expected(p, sl__cfg_node(p, items[i]), tc->start, &g->recs[i])) != SL_OK) {
            return rc;
        }
    }
    return SL_OK;
}

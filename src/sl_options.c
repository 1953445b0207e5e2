/* sl_options.c -- string options, their tables, durations and sizes. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sl_options.h"
#include "sl_util.h"

struct sl_options {
    char **keys;
    char **values;
    size_t n, cap;
};

sl_options *sl_options_new(void)
{
    return calloc(1, sizeof(sl_options));
}

void sl_options_destroy(sl_options *o)
{
    if (!o) {
        return;
    }
    for (size_t i = 0; i < o->n; i++) {
        free(o->keys[i]);
        free(o->values[i]);
    }
    free(o->keys);
    free(o->values);
    free(o);
}

int sl_options_set(sl_options *o, const char *key, const char *value)
{
    char *v = strdup(value ? value : "");
    if (!v) {
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < o->n; i++) {
        if (strcmp(o->keys[i], key) == 0) {
            free(o->values[i]);
            o->values[i] = v;
            return SL_OK;
        }
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        char **k = realloc(o->keys, cap * sizeof(*k));
        if (!k) {
            free(v);
            return SL_ERR_NOMEM;
        }
        o->keys = k;
        char **vv = realloc(o->values, cap * sizeof(*vv));
        if (!vv) {
            free(v);
            return SL_ERR_NOMEM;
        }
        o->values = vv;
        o->cap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return SL_ERR_NOMEM;
    }
    o->keys[o->n] = k;
    o->values[o->n] = v;
    o->n++;
    return SL_OK;
}

const char *sl_options_get(const sl_options *o, const char *key)
{
    for (size_t i = 0; o && i < o->n; i++) {
        if (strcmp(o->keys[i], key) == 0) {
            return o->values[i];
        }
    }
    return NULL;
}

size_t sl_options_count(const sl_options *o)
{
    return o ? o->n : 0;
}

void sl_options_at(const sl_options *o, size_t i, const char **key, const char **value)
{
    *key = o->keys[i];
    *value = o->values[i];
}

/* ==== Durations and sizes ==== */

/* Parses a non-negative decimal number followed by a unit; the unit is returned in *unit,
 * *ulen bytes long (white space around it left out). Only digits, one '.' and an exponent:
 * strtod would also take hex ("0x10s" is not 16 s). */
static int parse_number_unit(const char *s, double *num, const char **unit, size_t *ulen)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (!isdigit((unsigned char)*s) && *s != '.') {
        return SL_ERR_INVAL;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0 ||
        strspn(s, "0123456789.eE+-") < (size_t)(end - s)) {
        return SL_ERR_INVAL;
    }
    while (isspace((unsigned char)*end)) {
        end++;
    }
    size_t n = strlen(end);
    while (n && isspace((unsigned char)end[n - 1])) {
        n--;
    }
    *num = v;
    *unit = end;
    *ulen = n;
    return SL_OK;
}

int sl_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"min", 60000}, {"h", 3600000}};
    double v;
    const char *unit;
    size_t ulen;
    if (!s || parse_number_unit(s, &v, &unit, &ulen) != SL_OK) {
        return SL_ERR_INVAL;
    }
    /* A bare 0 needs no unit; any other number does. */
    if (ulen == 0) {
        if (v == 0) {
            *ms = 0;
            return SL_OK;
        }
        return SL_ERR_INVAL;
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++) {
        if (strlen(units[i].unit) == ulen && strncmp(unit, units[i].unit, ulen) == 0) {
            double r = v * units[i].ms;
            if (r > 9.2e15 || r != floor(r)) {
                return SL_ERR_INVAL;
            }
            *ms = (int64_t)r;
            return SL_OK;
        }
    }
    return SL_ERR_INVAL;
}

int sl_parse_size(const char *s, int64_t *bytes)
{
    static const struct {
        const char *unit;
        double mul;
    } units[] = {{"", 1},         {"b", 1},    {"k", 1e3},           {"kb", 1e3},
                 {"kib", 1024.0}, {"m", 1e6},  {"mb", 1e6},          {"mib", 1048576.0},
                 {"g", 1e9},      {"gb", 1e9}, {"gib", 1073741824.0}};
    double v;
    const char *unit;
    size_t ulen;
    if (!s || parse_number_unit(s, &v, &unit, &ulen) != SL_OK) {
        return SL_ERR_INVAL;
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(units); i++) {
        if (strlen(units[i].unit) == ulen && strncasecmp(unit, units[i].unit, ulen) == 0) {
            /* A whole number of bytes: 1.5kb is 1500, 0.9 is not a size (it was 0). The
             * tolerance takes 1.1kb, whose product is 1100.0000000000002. */
            double x = v * units[i].mul;
            double r = nearbyint(x);
            if (r > 9.2e18 || fabs(x - r) > 1e-9 * fmax(1.0, x)) {
                return SL_ERR_INVAL;
            }
            *bytes = (int64_t)r;
            return SL_OK;
        }
    }
    return SL_ERR_INVAL;
}

/* ==== Tables ==== */

static const char *type_name(sl_opt_type t)
{
    switch (t) {
    case SL_OPT_STR: return "string";
    case SL_OPT_INT: return "integer";
    case SL_OPT_BOOL: return "boolean";
    case SL_OPT_DOUBLE: return "number";
    case SL_OPT_DURATION: return "duration";
    case SL_OPT_SIZE: return "size";
    case SL_OPT_ENUM: return "enum";
    case SL_OPT_LIST: return "list";
    }
    return "?";
}

int sl__option_enum_index(const sl_option *opt, const char *v)
{
    size_t vl = strlen(v);
    const char *p = opt->choices;
    for (int i = 0; p && *p; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vl && strncmp(p, v, n) == 0) {
            return i;
        }
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

const char *sl__option_enum_name(const sl_option *opt, int index, char *buf, size_t size)
{
    const char *p = opt->choices;
    for (int i = 0; p && *p && index >= 0; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (i == index) {
            snprintf(buf, size, "%.*s", (int)n, p);
            return buf;
        }
        p = bar ? bar + 1 : NULL;
    }
    snprintf(buf, size, "?");
    return buf;
}

/* Parses value per opt; stores the number in *num (for numeric types). */
static int parse_value(const sl_option *opt, const char *value, double *num, char *errstr,
                       size_t errsize)
{
    const char *shown = (opt->flags & SL_OPT_SECRET) ? "***" : value;
    int64_t i64;
    char *end;
    *num = 0;
    switch (opt->type) {
    case SL_OPT_STR:
    case SL_OPT_LIST:
        if ((opt->flags & SL_OPT_REQUIRED) && !*value) {
            snprintf(errstr, errsize, "option '%s' must not be empty", opt->name);
            return SL_ERR_INVAL;
        }
        return SL_OK;
    case SL_OPT_ENUM:
        if ((*num = sl__option_enum_index(opt, value)) < 0) {
            snprintf(errstr, errsize, "option '%s': '%s' is not one of %s", opt->name, shown,
                     opt->choices);
            return SL_ERR_INVAL;
        }
        return SL_OK;
    case SL_OPT_BOOL: {
        bool b;
        if (sl__parse_bool(value, &b) != SL_OK) {
            snprintf(errstr, errsize, "option '%s': '%s' is not a boolean (true or false)",
                     opt->name, shown);
            return SL_ERR_INVAL;
        }
        return SL_OK;
    }
    case SL_OPT_INT:
        errno = 0;
        i64 = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            snprintf(errstr, errsize, "option '%s': '%s' is not an integer", opt->name, shown);
            return SL_ERR_INVAL;
        }
        *num = (double)i64;
        break;
    case SL_OPT_DOUBLE:
        errno = 0;
        *num = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(*num)) {
            snprintf(errstr, errsize, "option '%s': '%s' is not a number", opt->name, shown);
            return SL_ERR_INVAL;
        }
        break;
    case SL_OPT_DURATION:
    case SL_OPT_SIZE: {
        bool dur = opt->type == SL_OPT_DURATION;
        if ((dur ? sl_parse_duration(value, &i64) : sl_parse_size(value, &i64)) != SL_OK) {
            snprintf(errstr, errsize, "option '%s': '%s' is not %s", opt->name, shown,
                     dur ? "a duration (a number with a unit: ms, s, m, h; e.g. 250ms)"
                         : "a size (bytes, or with a unit: KiB, MiB, GiB, KB, MB, GB)");
            return SL_ERR_INVAL;
        }
        *num = (double)i64;
        break;
    }
    }
    if ((opt->flags & SL_OPT_RANGE) && (*num < opt->min || *num > opt->max)) {
        if (opt->type == SL_OPT_DURATION) {
            snprintf(errstr, errsize, "option '%s': %s is out of range [%.0fms, %.0fms]", opt->name,
                     shown, opt->min, opt->max);
        } else {
            snprintf(errstr, errsize, "option '%s': %s is out of range [%.15g, %.15g]", opt->name,
                     shown, opt->min, opt->max);
        }
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

int sl__option_check_value(const sl_option *opt, const char *value, char *errstr, size_t errsize)
{
    double num;
    return parse_value(opt, value, &num, errstr, errsize);
}

int sl__options_has(const sl_option *table, const char *key)
{
    for (const sl_option *opt = table; opt && opt->name; opt++) {
        if (strcmp(opt->name, key) == 0) {
            return 1;
        }
    }
    return 0;
}

static const sl_option *find_option(const sl_option *t1, const sl_option *t2, const char *key)
{
    for (const sl_option *opt = t1; opt && opt->name; opt++) {
        if (strcmp(opt->name, key) == 0) {
            return opt;
        }
    }
    for (const sl_option *opt = t2; opt && opt->name; opt++) {
        if (strcmp(opt->name, key) == 0) {
            return opt;
        }
    }
    return NULL;
}

static void list_keys(const sl_option *t1, const sl_option *t2, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    const sl_option *tables[2] = {t1, t2};
    for (int k = 0; k < 2; k++) {
        for (const sl_option *opt = tables[k]; opt && opt->name; opt++) {
            int n = snprintf(buf + off, size - off, "%s%s", off ? ", " : "", opt->name);
            if (n < 0 || (size_t)n >= size - off) {
                return;
            }
            off += (size_t)n;
        }
    }
}

int sl_options_check(const sl_option *table, const sl_option *table2, const sl_options *o,
                     char *errstr, size_t errsize, const char **bad_key)
{
    if (bad_key) {
        *bad_key = NULL;
    }
    for (size_t i = 0; i < sl_options_count(o); i++) {
        const char *key, *value;
        sl_options_at(o, i, &key, &value);
        const sl_option *opt = find_option(table, table2, key);
        if (!opt) {
            char valid[1024];
            list_keys(table, table2, valid, sizeof(valid));
            snprintf(errstr, errsize, "unknown option '%s' (valid options: %s)", key, valid);
            if (bad_key) {
                *bad_key = key;
            }
            return SL_ERR_INVAL;
        }
        if (sl__option_check_value(opt, value, errstr, errsize) != SL_OK) {
            if (bad_key) {
                *bad_key = key;
            }
            return SL_ERR_INVAL;
        }
    }
    const sl_option *tables[2] = {table, table2};
    for (int k = 0; k < 2; k++) {
        for (const sl_option *opt = tables[k]; opt && opt->name; opt++) {
            if ((opt->flags & SL_OPT_REQUIRED) && !sl_options_get(o, opt->name)) {
                snprintf(errstr, errsize, "missing required option '%s' (%s)", opt->name,
                         opt->doc ? opt->doc : type_name(opt->type));
                return SL_ERR_INVAL;
            }
        }
    }
    return SL_OK;
}

int sl__options_apply(const sl_option *table, const sl_options *o, void *base, char *errstr,
                      size_t errsize)
{
    for (const sl_option *opt = table; opt && opt->name; opt++) {
        const char *v = sl_options_get(o, opt->name);
        if (!v) {
            v = opt->def;
        }
        if (!v) {
            if (opt->flags & SL_OPT_REQUIRED) {
                snprintf(errstr, errsize, "missing required option '%s'", opt->name);
                return SL_ERR_INVAL;
            }
            if (opt->type == SL_OPT_ENUM) {
                *(int *)((char *)base + opt->offset) = -1;
            }
            continue; /* left zeroed / NULL */
        }
        double num;
        if (parse_value(opt, v, &num, errstr, errsize) != SL_OK) {
            return SL_ERR_INVAL;
        }
        char *field = (char *)base + opt->offset;
        switch (opt->type) {
        case SL_OPT_STR:
        case SL_OPT_LIST: *(const char **)field = v; break;
        case SL_OPT_ENUM: *(int *)field = (int)num; break;
        case SL_OPT_BOOL: {
            bool b = false;
            sl__parse_bool(v, &b);
            *(bool *)field = b;
            break;
        }
        case SL_OPT_INT:
            *(int64_t *)field = strtoll(v, NULL, 10); /* exact beyond 2^53 */
            break;
        case SL_OPT_DURATION: sl_parse_duration(v, (int64_t *)field); break;
        case SL_OPT_SIZE: sl_parse_size(v, (int64_t *)field); break;
        case SL_OPT_DOUBLE: *(double *)field = num; break;
        }
    }
    return SL_OK;
}

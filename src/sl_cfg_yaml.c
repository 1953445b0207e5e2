/* sl_cfg_yaml.c -- YAML nodes and scalars of a pipeline file, and its error messages. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cfg.h"

/* ==== Errors ==== */

/* Writes "PATH:LINE:COL: error: MESSAGE" into errstr for the first error only. Returns
 * SL_ERR_INVAL so callers can `return sl__cfg_error(...)`. */
/* Keeps one more error of a collecting parse (an exact repeat is dropped). */
static void keep_error(cfg_parser *p, cfg_loc loc, const char *text)
{
    for (size_t i = 0; i < p->nerrors; i++) {
        if (strcmp(p->errors[i].text, text) == 0) {
            return;
        }
    }
    if (p->nerrors == CFG_MAX_ERRORS) {
        return;
    }
    if (!p->errors && !(p->errors = calloc(CFG_MAX_ERRORS, sizeof(*p->errors)))) {
        return;
    }
    char *copy = strdup(text);
    if (copy) {
        p->errors[p->nerrors++] = (cfg_error){.loc = loc, .text = copy};
    }
}

int sl__cfg_error(cfg_parser *p, cfg_loc loc, const char *fmt, ...)
{
    if (p->failed && !p->collect) {
        return SL_ERR_INVAL;
    }
    /* libyaml reports the end of the input one line below the last: point at the file's last
     * character instead (columns count characters). */
    if (p->src && p->srclen) {
        size_t last = p->srclen - 1;
        while (last > 0 && ((unsigned char)p->src[last] & 0xC0) == 0x80) {
            last--;
        }
        cfg_loc end = {1, 1};
        for (size_t i = 0; i < last; i++) {
            if (p->src[i] == '\n') {
                end.line++;
                end.col = 1;
            } else if (((unsigned char)p->src[i] & 0xC0) != 0x80) {
                end.col++;
            }
        }
        if (loc.line > end.line || (loc.line == end.line && loc.col > end.col)) {
            loc = end;
        }
    }
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s:%d:%d: error: ", p->path, loc.line, loc.col);
    if (n >= 0 && (size_t)n < sizeof(line)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    /* One line: a message from a library could hold a newline. */
    for (char *c = line; *c; c++) {
        if (*c == '\n' || *c == '\r') {
            *c = ' ';
        }
    }
    if (!p->failed && p->errstr && p->errsize) {
        snprintf(p->errstr, p->errsize, "%s", line);
    }
    p->failed = true;
    if (p->collect) {
        keep_error(p, loc, line);
    }
    return SL_ERR_INVAL;
}

char *sl__cfg_strdupf(const char *fmt, ...)
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

cfg_loc sl__cfg_loc_of(const yaml_node_t *n)
{
    cfg_loc loc = {(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return loc;
}

cfg_loc sl__cfg_loc_at(size_t line0, size_t col0)
{
    cfg_loc loc = {(int)line0 + 1, (int)col0 + 1};
    return loc;
}

yaml_node_t *sl__cfg_node(cfg_parser *p, int id)
{
    return yaml_document_get_node(&p->doc, id);
}

/* The expanded text of a scalar node. */
const char *sl__cfg_text(cfg_parser *p, const yaml_node_t *n)
{
    size_t i = (size_t)(n - p->doc.nodes.start);
    return i < p->nnodes && p->text[i] ? p->text[i] : "";
}

const char *sl__cfg_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SEQUENCE_NODE: return "a list";
    default: return "a scalar";
    }
}

/* A plain empty value, ~ or null. */
bool sl__cfg_is_null(cfg_parser *p, const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *t = sl__cfg_text(p, n);
    return !*t || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 || strcmp(t, "Null") == 0 ||
           strcmp(t, "NULL") == 0;
}

bool sl__cfg_in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        if (strcmp(s, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Joins list with ", " into buf. */
const char *sl__cfg_join(const char *const *list, char *buf, size_t size)
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
int sl__cfg_unknown(cfg_parser *p, cfg_loc loc, const char *what, const char *s, const char *where,
                    const char *const *valid)
{
    char list[1024];
    const char *close = sl__closest(s, valid);
    char hint[160] = "";
    if (close) {
        snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
    }
    return sl__cfg_error(p, loc, "unknown %s '%s'%s%s%s; valid %ss: %s", what, s,
                         where ? " in " : "", where ? where : "", hint, what,
                         sl__cfg_join(valid, list, sizeof(list)));
}

/* ==== Mappings and scalars ==== */

/* Checks that map is a mapping whose keys are scalars, not repeated, and in valid (a
 * NULL-terminated list; NULL accepts any key). where names the mapping in messages. */
int sl__cfg_check_map(cfg_parser *p, yaml_node_t *map, const char *where, const char *const *valid)
{
    if (map->type != YAML_MAPPING_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(map), "%s must be a mapping, got %s", where,
                             sl__cfg_kind(map));
    }
    int rc = SL_OK;
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        yaml_node_t *k = sl__cfg_node(p, a->key);
        if (k->type != YAML_SCALAR_NODE) {
            return sl__cfg_error(p, sl__cfg_loc_of(k), "keys in %s must be scalars, got %s", where,
                                 sl__cfg_kind(k));
        }
        const char *ks = sl__cfg_text(p, k);
        for (yaml_node_pair_t *b = map->data.mapping.pairs.start; b < a; b++) {
            yaml_node_t *kb = sl__cfg_node(p, b->key);
            if (strcmp(sl__cfg_text(p, kb), ks) == 0) {
                return sl__cfg_error(p, sl__cfg_loc_of(k),
                                     "duplicate key '%s' in %s (first at line %d)", ks, where,
                                     sl__cfg_loc_of(kb).line);
            }
        }
        if (valid && !sl__cfg_in_list(ks, valid)) {
            bool top = strcmp(where, "the top level") == 0;
            rc = sl__cfg_unknown(p, sl__cfg_loc_of(k), top ? "section" : "key", ks,
                                 top ? NULL : where, valid);
            if (!p->collect) {
                return rc; /* else every unknown key of the map is reported */
            }
        }
    }
    return rc;
}

/* The value of key in a (checked) mapping, or NULL. */
yaml_node_t *sl__cfg_get(cfg_parser *p, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        if (strcmp(sl__cfg_text(p, sl__cfg_node(p, a->key)), key) == 0) {
            return sl__cfg_node(p, a->value);
        }
    }
    return NULL;
}

/* The key node of key in a mapping, or NULL. */
yaml_node_t *sl__cfg_get_key(cfg_parser *p, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top;
         a++) {
        yaml_node_t *k = sl__cfg_node(p, a->key);
        if (strcmp(sl__cfg_text(p, k), key) == 0) {
            return k;
        }
    }
    return NULL;
}

/* The text of a scalar value; an error if n is not a scalar or is empty. */
int sl__cfg_scalar(cfg_parser *p, yaml_node_t *n, const char *what, const char **out)
{
    *out = ""; /* set on every path: -O3 cannot see that sl__cfg_error never returns SL_OK */
    if (n->type != YAML_SCALAR_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "%s must be a scalar, got %s", what,
                             sl__cfg_kind(n));
    }
    if (sl__cfg_is_null(p, n)) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "%s has no value", what);
    }
    *out = sl__cfg_text(p, n);
    return SL_OK;
}

/* A required or optional key's scalar: *out stays NULL when absent (and not required). */
int sl__cfg_key_scalar(cfg_parser *p, yaml_node_t *map, const char *key, const char *where,
                       bool required, const char **out, yaml_node_t **node)
{
    yaml_node_t *n = sl__cfg_get(p, map, key);
    *out = NULL;
    if (node) {
        *node = n;
    }
    if (!n || (sl__cfg_is_null(p, n) && !required)) {
        if (required) {
            return sl__cfg_error(p, sl__cfg_loc_of(map), "missing required key '%s' in %s", key,
                                 where);
        }
        return SL_OK;
    }
    char what[160];
    snprintf(what, sizeof(what), "'%s' in %s", key, where);
    return sl__cfg_scalar(p, n, what, out);
}

int sl__cfg_int(cfg_parser *p, yaml_node_t *n, const char *what, int64_t min, int64_t max,
                int64_t *out)
{
    const char *s;
    int rc = sl__cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || isspace((unsigned char)*s)) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "%s must be an integer, got '%s'", what, s);
    }
    if (v < min || v > max) {
        return sl__cfg_error(p, sl__cfg_loc_of(n),
                             "%s must be between %" PRId64 " and %" PRId64 ", got %lld", what, min,
                             max, v);
    }
    *out = v;
    return SL_OK;
}

void sl__cfg_fmt_duration(int64_t ms, char *buf, size_t size)
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

int sl__cfg_duration(cfg_parser *p, yaml_node_t *n, const char *what, int64_t min_ms, int64_t *out)
{
    const char *s;
    int rc = sl__cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    int64_t ms;
    if (sl_parse_duration(s, &ms) != SL_OK) {
        return sl__cfg_error(p, sl__cfg_loc_of(n),
                             "%s: bad duration '%s' (write e.g. 250ms, 1s, 1.5s, 5m, 2h)", what, s);
    }
    if (ms < min_ms) {
        char m[32];
        sl__cfg_fmt_duration(min_ms, m, sizeof(m));
        return sl__cfg_error(p, sl__cfg_loc_of(n), "%s must be at least %s, got '%s'", what, m, s);
    }
    *out = ms;
    return SL_OK;
}

int sl__cfg_bool(cfg_parser *p, yaml_node_t *n, const char *what, bool *out)
{
    const char *s;
    int rc = sl__cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    if (sl__parse_bool(s, out) != SL_OK) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "%s must be true or false, got '%s'", what, s);
    }
    return SL_OK;
}

/* One of a fixed list of words. Returns its index in *out. */
int sl__cfg_choice(cfg_parser *p, yaml_node_t *n, const char *what, const char *const *words,
                   int *out)
{
    const char *s;
    int rc = sl__cfg_scalar(p, n, what, &s);
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
    return sl__cfg_error(p, sl__cfg_loc_of(n), "%s: unknown value '%s'; valid values: %s", what, s,
                         sl__cfg_join(words, list, sizeof(list)));
}

/* A name: letters, digits, '_', '-', '.'. */
int sl__cfg_name(cfg_parser *p, yaml_node_t *map, const char *where, char **out, cfg_loc *loc)
{
    const char *s;
    yaml_node_t *n;
    int rc = sl__cfg_key_scalar(p, map, "name", where, true, &s, &n);
    if (rc != SL_OK) {
        return rc;
    }
    if (!*s) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "empty name in %s", where);
    }
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
        /* Names are directory names under the checkpoint dir. */
        return sl__cfg_error(p, sl__cfg_loc_of(n),
                             "bad name '%s' in %s: '.' and '..' are not names (names become "
                             "directory names)",
                             s, where);
    }
    for (const char *c = s; *c; c++) {
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.') {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "bad name '%s' in %s: use letters, digits, '_', '-' and '.'", s,
                                 where);
        }
    }
    *out = strdup(s);
    *loc = sl__cfg_loc_of(n);
    return *out ? SL_OK : sl__cfg_error(p, *loc, "out of memory");
}

/* A non-negative number (a rate or a PID gain), or, with positive, > 0. */
int sl__cfg_number(cfg_parser *p, yaml_node_t *n, const char *what, bool positive, double *out)
{
    const char *s;
    int rc = sl__cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0) || v > 1e15 || (positive && v == 0)) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "%s: '%s' is not a number %s", what, s,
                             positive ? "> 0" : ">= 0");
    }
    *out = v;
    return SL_OK;
}

/* Reports a libyaml error with its position. */
int sl__cfg_yaml_error(cfg_parser *p, yaml_parser_t *yp, const char *text, size_t len)
{
    cfg_loc loc = sl__cfg_loc_at(yp->problem_mark.line, yp->problem_mark.column);
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
        loc = sl__cfg_loc_at(line, col);
        return sl__cfg_error(p, loc, "not a valid YAML text: %s", yp->problem ? yp->problem : "?");
    }
    if (yp->context) {
        return sl__cfg_error(p, loc, "YAML syntax error: %s (%s at line %d, column %d)",
                             yp->problem ? yp->problem : "?", yp->context,
                             (int)yp->context_mark.line + 1, (int)yp->context_mark.column + 1);
    }
    return sl__cfg_error(p, loc, "YAML syntax error: %s", yp->problem ? yp->problem : "?");
}

/* postgres_rows.c -- records to column values for the postgres sink: the text of each
 * mapped part, checked against the column's type before anything is sent (so that one bad
 * record is skipped instead of failing the batch), and the escaping of COPY's text format
 * and of array literals. No libpq here: pure functions, unit-tested. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "postgres.h"

#define PG_NUM_MAX 64 /* longest number text accepted */

/* ==== Text checks ==== */

bool sl__pg_utf8_ok(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        unsigned min;
        if ((c & 0xe0) == 0xc0) {
            n = 1;
            min = 0x80;
            c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            min = 0x800;
            c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            min = 0x10000;
            c &= 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= n) {
            return false;
        }
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return false;
            }
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return false;
        }
        p += n + 1;
    }
    return true;
}

/* Strict integer: [+-]digits, in int64 range. */
static bool pg_int_ok(const char *s, size_t len)
{
    char buf[PG_NUM_MAX];
    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == len) {
        return false;
    }
    for (size_t j = i; j < len; j++) {
        if (!isdigit((unsigned char)s[j])) {
            return false;
        }
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    (void)strtoll(buf, NULL, 10);
    return errno == 0;
}

/* A finite decimal number as PostgreSQL reads it: [+-]digits[.digits][e[+-]digits]. */
static bool pg_float_ok(const char *s, size_t len, double *out)
{
    char buf[PG_NUM_MAX];
    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!strchr("0123456789+-.eE", s[i])) {
            return false;
        }
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (end != buf + len || !isfinite(d) || errno == ERANGE) {
        return false;
    }
    if (out) {
        *out = d;
    }
    return true;
}

static bool pg_leap(long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads exactly n digits at *p. */
static bool pg_digits(const char **p, const char *end, int n, long *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (*p >= end || !isdigit((unsigned char)**p)) {
            return false;
        }
        *v = *v * 10 + (**p - '0');
        (*p)++;
    }
    return true;
}

/* ISO 8601 as PostgreSQL reads it: YYYY-MM-DD[(T| )HH:MM[:SS[.frac]]][Z|(+|-)HH[[:]MM]],
 * with the fields in range. */
static bool pg_timestamp_ok(const char *s, size_t len)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s, *end = s + len;
    long y, mo, d, h, mi, sec, v;
    if (!pg_digits(&p, end, 4, &y) || p >= end || *p++ != '-' || !pg_digits(&p, end, 2, &mo) ||
        p >= end || *p++ != '-' || !pg_digits(&p, end, 2, &d)) {
        return false;
    }
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && pg_leap(y))) {
        return false;
    }
    if (p == end) {
        return true;
    }
    if (*p != 'T' && *p != ' ') {
        return false;
    }
    p++;
    if (!pg_digits(&p, end, 2, &h) || p >= end || *p++ != ':' || !pg_digits(&p, end, 2, &mi) ||
        h > 23 || mi > 59) {
        return false;
    }
    if (p < end && *p == ':') {
        p++;
        if (!pg_digits(&p, end, 2, &sec) || sec > 60) {
            return false;
        }
        if (p < end && *p == '.') {
            p++;
            const char *f = p;
            while (p < end && isdigit((unsigned char)*p)) {
                p++;
            }
            if (p == f) {
                return false;
            }
        }
    }
    if (p == end) {
        return true;
    }
    if (*p == 'Z' || *p == 'z') {
        return p + 1 == end;
    }
    if (*p != '+' && *p != '-') {
        return false;
    }
    p++;
    if (!pg_digits(&p, end, 2, &v) || v > 15) {
        return false;
    }
    if (p < end && *p == ':') {
        p++;
    }
    if (p < end && (!pg_digits(&p, end, 2, &v) || v > 59)) {
        return false;
    }
    return p == end;
}

static bool pg_bool_ok(const char *s, size_t len)
{
    static const char *const words[] = {"true", "false", "t",   "f", "yes",
                                        "no",   "on",    "off", "1", "0"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i]) == len && strncasecmp(words[i], s, len) == 0) {
            return true;
        }
    }
    return false;
}

void sl__pg_format_ms(int64_t ms, char *buf, size_t size)
{
    int64_t secs = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

/* The shortest "%.Ng" form of d that reads back as d. */
static void pg_format_double(double d, char *buf, size_t size)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            return;
        }
    }
}

/* ==== Rows ==== */

int sl__pg_row_init(sl_pg_row *row, size_t ncols)
{
    memset(row, 0, sizeof(*row));
    size_t n = ncols ? ncols : 1;
    row->vals = calloc(n, sizeof(*row->vals));
    row->lens = calloc(n, sizeof(*row->lens));
    row->offs = calloc(n, sizeof(*row->offs));
    if (!row->vals || !row->lens || !row->offs) {
        sl__pg_row_free(row);
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

void sl__pg_row_free(sl_pg_row *row)
{
    free(row->vals);
    free(row->lens);
    free(row->offs);
    sl__buf_free(&row->scratch);
    memset(row, 0, sizeof(*row));
}

/* A short printable excerpt of bytes for messages. */
static void pg_excerpt(const char *s, size_t len, char *buf, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < size && i < 40; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (len > 40 && n + 4 < size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
}

/* One column's value being computed: text t (tl bytes) that points into the record, into
 * num, or into the scratch buffer at off. */
typedef struct pg_val {
    const char *t;
    size_t tl;
    bool null;
    size_t off; /* (size_t)-1 unless the text is in scratch */
    char num[PG_NUM_MAX];
    int64_t ms; /* SL_PG_SRC_TS / BATCH_TIME: the time */
    bool is_time;
    bool is_json_num; /* a JSON number (a time in ms for timestamptz) */
} pg_val;

static int pg_val_scratch(sl_pg_row *row, pg_val *v, const char *bytes, size_t n)
{
    v->off = row->scratch.len;
    if (sl__buf_append(&row->scratch, bytes, n) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    row->scratch.len++; /* past the NUL, so that each value stays a C string */
    v->t = NULL;
    v->tl = n;
    return SL_OK;
}

static void pg_val_number(pg_val *v, const sl_record *r)
{
    if (r->num_type == SL_NUM_INT) {
        snprintf(v->num, sizeof(v->num), "%" PRId64, r->num.i);
    } else {
        pg_format_double(r->num.d, v->num, sizeof(v->num));
    }
    v->t = v->num;
    v->tl = strlen(v->num);
}

/* The raw text of column c of r, before the type check. */
static int pg_val_get(const sl_pg_column *c, const sl_record *r, json_t *root,
                      const sl_record_when *when, sl_pg_row *row, pg_val *v, char *why,
                      size_t whysize)
{
    switch (c->src) {
    case SL_PG_SRC_KEY:
        v->t = r->key ? r->key : "";
        v->tl = r->key_len;
        return SL_OK;
    case SL_PG_SRC_VALUE:
    case SL_PG_SRC_NUM:
        if (r->num_type == SL_NUM_INT || r->num_type == SL_NUM_DOUBLE) {
            pg_val_number(v, r);
        } else if (sl_record_is_tombstone(r) &&
                   (c->src == SL_PG_SRC_NUM || c->type != SL_PG_TEXT)) {
            /* The key has no value any more (it left a window): NULL, so that an upsert
             * clears the last one; a text value column keeps '' for an empty value. */
            v->null = true;
            v->t = "";
        } else {
            v->t = r->value ? r->value : "";
            v->tl = r->value_len;
        }
        return SL_OK;
    case SL_PG_SRC_TS:
    case SL_PG_SRC_BATCH_TIME:
    case SL_PG_SRC_WINDOW_START:
    case SL_PG_SRC_WINDOW_END:
        v->ms = c->src == SL_PG_SRC_TS             ? r->ts
                : c->src == SL_PG_SRC_BATCH_TIME   ? when->batch_time
                : c->src == SL_PG_SRC_WINDOW_START ? when->window_start
                                                   : when->window_end;
        v->is_time = true;
        snprintf(v->num, sizeof(v->num), "%" PRId64, v->ms);
        v->t = v->num;
        v->tl = strlen(v->num);
        return SL_OK;
    case SL_PG_SRC_TOPIC:
        v->null = !r->meta || !r->meta->topic;
        v->t = v->null ? "" : r->meta->topic;
        v->tl = strlen(v->t);
        return SL_OK;
    case SL_PG_SRC_PARTITION:
    case SL_PG_SRC_OFFSET: {
        int64_t x = !r->meta                        ? -1
                    : c->src == SL_PG_SRC_PARTITION ? r->meta->partition
                                                    : r->meta->offset;
        v->null = x < 0;
        snprintf(v->num, sizeof(v->num), "%" PRId64, x);
        v->t = v->num;
        v->tl = strlen(v->num);
        return SL_OK;
    }
    case SL_PG_SRC_HEADER: {
        const sl_header *h = sl_record_header(r, c->header);
        if (!h) {
            snprintf(why, whysize, "column %.60s: header '%.100s' is missing", c->qname, c->header);
            return SL_ERR_RECORD;
        }
        v->null = !h->value;
        v->t = h->value ? h->value : "";
        v->tl = h->value ? h->value_len : 0;
        return SL_OK;
    }
    case SL_PG_SRC_JSON: {
        json_t *f = sl__jpath_get(&c->path, root);
        if (!f) {
            char path[128];
            snprintf(why, whysize, "column %.60s: JSON field '%.100s' is missing", c->qname,
                     sl__jpath_text(&c->path, path, sizeof(path)));
            return SL_ERR_RECORD;
        }
        if (json_is_null(f)) {
            v->null = true;
            v->t = "";
            return SL_OK;
        }
        if (c->type == SL_PG_JSONB || json_is_object(f) || json_is_array(f)) {
            char *s = json_dumps(f, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!s) {
                return SL_ERR_NOMEM;
            }
            int rc = pg_val_scratch(row, v, s, strlen(s));
            free(s);
            return rc;
        }
        if (json_is_string(f)) {
            return pg_val_scratch(row, v, json_string_value(f), json_string_length(f));
        }
        if (json_is_integer(f)) {
            snprintf(v->num, sizeof(v->num), "%" JSON_INTEGER_FORMAT, json_integer_value(f));
            v->is_json_num = true;
        } else if (json_is_real(f)) {
            pg_format_double(json_real_value(f), v->num, sizeof(v->num));
            v->is_json_num = true;
        } else {
            snprintf(v->num, sizeof(v->num), "%s", json_is_true(f) ? "true" : "false");
        }
        v->t = v->num;
        v->tl = strlen(v->num);
        return SL_OK;
    }
    }
    return SL_OK;
}

/* Checks v against the column's type; rewrites it where the type needs another form
 * (times, integral doubles). */
static int pg_val_check(const sl_pg_column *c, sl_pg_row *row, pg_val *v, char *why, size_t whysize)
{
    const char *t = v->off != (size_t)-1 ? row->scratch.p + v->off : v->t;
    char ex[64];
    double d;
    if (v->null) {
        return SL_OK;
    }
    switch (c->type) {
    case SL_PG_TEXT:
        if (v->is_time) {
            sl__pg_format_ms(v->ms, v->num, sizeof(v->num));
            v->t = v->num;
            v->tl = strlen(v->num);
            return SL_OK;
        }
        if (!sl__pg_utf8_ok(t, v->tl)) {
            snprintf(why, whysize, "column %.60s: not valid UTF-8 text (or holds NUL)", c->qname);
            return SL_ERR_RECORD;
        }
        return SL_OK;
    case SL_PG_BIGINT:
        if (pg_int_ok(t, v->tl)) {
            return SL_OK;
        }
        if (pg_float_ok(t, v->tl, &d) && d == floor(d) && fabs(d) < 9.2e18) {
            snprintf(v->num, sizeof(v->num), "%" PRId64, (int64_t)d);
            v->t = v->num;
            v->tl = strlen(v->num);
            v->off = (size_t)-1;
            return SL_OK;
        }
        pg_excerpt(t, v->tl, ex, sizeof(ex));
        snprintf(why, whysize, "column %.60s: '%s' is not an integer", c->qname, ex);
        return SL_ERR_RECORD;
    case SL_PG_DOUBLE:
    case SL_PG_NUMERIC:
        if (pg_float_ok(t, v->tl, NULL)) {
            return SL_OK;
        }
        pg_excerpt(t, v->tl, ex, sizeof(ex));
        snprintf(why, whysize, "column %.60s: '%s' is not a number", c->qname, ex);
        return SL_ERR_RECORD;
    case SL_PG_TIMESTAMPTZ:
        if (v->is_time || v->is_json_num || pg_int_ok(t, v->tl)) {
            /* Milliseconds since the epoch. */
            int64_t ms = v->is_time ? v->ms : 0;
            if (!v->is_time) {
                if (!pg_float_ok(t, v->tl, &d) || fabs(d) > 1e15) {
                    pg_excerpt(t, v->tl, ex, sizeof(ex));
                    snprintf(why, whysize, "column %.60s: '%s' is not a time in ms", c->qname, ex);
                    return SL_ERR_RECORD;
                }
                ms = (int64_t)d;
            }
            sl__pg_format_ms(ms, v->num, sizeof(v->num));
            v->t = v->num;
            v->tl = strlen(v->num);
            v->off = (size_t)-1;
            return SL_OK;
        }
        if (pg_timestamp_ok(t, v->tl)) {
            return SL_OK;
        }
        pg_excerpt(t, v->tl, ex, sizeof(ex));
        snprintf(why, whysize, "column %.60s: '%s' is not a time (ms since the epoch or ISO 8601)",
                 c->qname, ex);
        return SL_ERR_RECORD;
    case SL_PG_BOOLEAN:
        if (pg_bool_ok(t, v->tl)) {
            return SL_OK;
        }
        pg_excerpt(t, v->tl, ex, sizeof(ex));
        snprintf(why, whysize, "column %.60s: '%s' is not a boolean", c->qname, ex);
        return SL_ERR_RECORD;
    case SL_PG_JSONB: {
        json_t *j = json_loadb(t, v->tl, JSON_DECODE_ANY, NULL);
        if (j) {
            json_decref(j);
            return SL_OK;
        }
        pg_excerpt(t, v->tl, ex, sizeof(ex));
        snprintf(why, whysize, "column %.60s: '%s' is not JSON", c->qname, ex);
        return SL_ERR_RECORD;
    }
    }
    return SL_OK;
}

int sl__pg_row_build(const sl_pg_column *cols, size_t ncols, bool need_json, const sl_record *r,
                     const sl_record_when *when, sl_pg_row *row, char *why, size_t whysize)
{
    json_t *root = NULL;
    pg_val v;
    int rc = SL_OK;

    sl__buf_reset(&row->scratch);
    if (need_json) {
        root = r->value_len ? json_loadb(r->value, r->value_len, JSON_DECODE_ANY, NULL) : NULL;
        if (!root) {
            snprintf(why, whysize, "the value is not JSON");
            return SL_ERR_RECORD;
        }
    }
    for (size_t i = 0; i < ncols && rc == SL_OK; i++) {
        memset(&v, 0, sizeof(v));
        v.off = (size_t)-1;
        rc = pg_val_get(&cols[i], r, root, when, row, &v, why, whysize);
        if (rc == SL_OK) {
            rc = pg_val_check(&cols[i], row, &v, why, whysize);
        }
        if (rc != SL_OK) {
            break;
        }
        row->lens[i] = v.tl;
        row->offs[i] = v.off;
        if (v.null) {
            row->vals[i] = NULL;
            row->offs[i] = (size_t)-1;
        } else if (v.off != (size_t)-1) {
            row->vals[i] = NULL; /* resolved below: scratch may still move */
        } else if (v.t == v.num) {
            /* v.num is reused by the next column: keep a copy. */
            size_t off = row->scratch.len;
            if (sl__buf_append(&row->scratch, v.num, v.tl) != SL_OK) {
                rc = SL_ERR_NOMEM;
                break;
            }
            row->scratch.len++;
            row->offs[i] = off;
            row->vals[i] = NULL;
        } else {
            row->vals[i] = v.t;
        }
    }
    json_decref(root);
    if (rc != SL_OK) {
        return rc;
    }
    for (size_t i = 0; i < ncols; i++) {
        if (row->offs[i] != (size_t)-1) {
            row->vals[i] = row->scratch.p + row->offs[i];
        }
    }
    return SL_OK;
}

/* ==== Escaping ==== */

/* Appends bytes with COPY text-format escapes for backslash, newline, CR and tab. */
static int pg_copy_escape(sl_buf *b, const char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        char e;
        switch (s[i]) {
        case '\\': e = '\\'; break;
        case '\n': e = 'n'; break;
        case '\r': e = 'r'; break;
        case '\t': e = 't'; break;
        default: continue;
        }
        char esc[2] = {'\\', e};
        if (sl__buf_append(b, s + run, i - run) != SL_OK || sl__buf_append(b, esc, 2) != SL_OK) {
            return SL_ERR_NOMEM;
        }
        run = i + 1;
    }
    return sl__buf_append(b, s + run, len - run);
}

int sl__pg_copy_line(sl_buf *b, const sl_pg_row *row, size_t ncols)
{
    for (size_t i = 0; i < ncols; i++) {
        if (i > 0 && sl__buf_append(b, "\t", 1) != SL_OK) {
            return SL_ERR_NOMEM;
        }
        int rc = row->vals[i] ? pg_copy_escape(b, row->vals[i], row->lens[i])
                              : sl__buf_append(b, "\\N", 2);
        if (rc != SL_OK) {
            return rc;
        }
    }
    return sl__buf_append(b, "\n", 1);
}

int sl__pg_array_elem(sl_buf *b, const char *val, size_t len, bool first)
{
    if (!first && sl__buf_append(b, ",", 1) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    if (!val) {
        return sl__buf_append(b, "NULL", 4);
    }
    if (sl__buf_append(b, "\"", 1) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (val[i] != '"' && val[i] != '\\') {
            continue;
        }
        if (sl__buf_append(b, val + run, i - run) != SL_OK || sl__buf_append(b, "\\", 1) != SL_OK) {
            return SL_ERR_NOMEM;
        }
        run = i; /* the quote or backslash itself follows its escape */
    }
    if (sl__buf_append(b, val + run, len - run) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    return sl__buf_append(b, "\"", 1);
}

/* ==== Input ranges ==== */

int sl__pg_range_arrays(const sl_input_range *r, size_t n, sl_buf arr[4])
{
    for (int a = 0; a < 4; a++) {
        sl__buf_reset(&arr[a]);
        sl__buf_append(&arr[a], "{", 1);
    }
    for (size_t i = 0; i < n; i++) {
        char part[16], until[24];
        snprintf(part, sizeof(part), "%" PRId32, r[i].partition);
        snprintf(until, sizeof(until), "%" PRId64, r[i].until);
        const char *src = r[i].source ? r[i].source : "";
        const char *topic = r[i].topic ? r[i].topic : "";
        if (sl__pg_array_elem(&arr[0], src, strlen(src), i == 0) != SL_OK ||
            sl__pg_array_elem(&arr[1], topic, strlen(topic), i == 0) != SL_OK ||
            sl__pg_array_elem(&arr[2], part, strlen(part), i == 0) != SL_OK ||
            sl__pg_array_elem(&arr[3], until, strlen(until), i == 0) != SL_OK) {
            return SL_ERR_NOMEM;
        }
    }
    for (int a = 0; a < 4; a++) {
        if (sl__buf_append(&arr[a], "}", 1) != SL_OK || !arr[a].p) {
            return SL_ERR_NOMEM;
        }
    }
    return SL_OK;
}

/* sl_yamlops_time.c -- the timestamp op: a record's event time (sl_record.ts, ms since the
 * epoch) from its data: a JSON field, a Kafka header or the value, holding epoch seconds,
 * milliseconds, microseconds or nanoseconds, an RFC 3339 / ISO 8601 time, or text in a
 * strptime pattern. A record without a valid time is rejected (counted and logged by the
 * engine) and keeps none. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_yamlops_int.h"

static const char *const format_names[] = {
    [YOP_TS_S] = "s",   [YOP_TS_MS] = "ms",           [YOP_TS_US] = "us",
    [YOP_TS_NS] = "ns", [YOP_TS_RFC3339] = "rfc3339",
};

sl_yamlop *sl__yamlops_timestamp_new(sl_yamlop_target target, const char *name, const char *format,
                                     char *errstr, size_t errsize)
{
    int f = -1;
    for (int i = 0; i < (int)(sizeof(format_names) / sizeof(format_names[0])); i++) {
        f = strcmp(format, format_names[i]) == 0 ? i : f;
    }
    if (f < 0 && !strchr(format, '%')) {
        sl__yamlops_err(errstr, errsize,
                        "unknown format '%s' (s, ms, us, ns, rfc3339 or a strptime pattern such "
                        "as \"%%d/%%b/%%Y:%%H:%%M:%%S %%z\")",
                        format);
        return NULL;
    }
    sl_yamlop *op = target == SL_YOP_ON_JSON
                        ? sl__yamlops_new_json(YOP_TIMESTAMP, name, errstr, errsize)
                    : target == SL_YOP_ON_VALUE
                        ? sl__yamlops_new(YOP_TIMESTAMP)
                        : sl__yamlops_new_attr(YOP_TIMESTAMP, target, name, errstr, errsize);
    if (!op) {
        if (target == SL_YOP_ON_VALUE) {
            sl__yamlops_err(errstr, errsize, "out of memory");
        }
        return NULL;
    }
    op->target = target;
    op->ts_format = f < 0 ? YOP_TS_PATTERN : f;
    if (f < 0 && !(op->ts_pattern = strdup(format))) {
        sl__yamlops_destroy(op);
        sl__yamlops_err(errstr, errsize, "out of memory");
        return NULL;
    }
    return op;
}

/* ==== Parsing times ==== */

/* n digits of s at *i as a number; -1 when they are not all digits. */
static int digits(const char *s, size_t len, size_t *i, int n)
{
    int v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || !isdigit((unsigned char)s[*i])) {
            return -1;
        }
        v = v * 10 + (s[*i] - '0');
    }
    return v;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* RFC 3339 / ISO 8601: YYYY-MM-DD(T| )hh:mm[:ss[.frac]][Z|±hh[:]mm], no offset meaning UTC. */
static bool parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    int y = digits(s, len, &i, 4);
    int mo = i < len && s[i] == '-' ? (i++, digits(s, len, &i, 2)) : -1;
    int d = i < len && s[i] == '-' ? (i++, digits(s, len, &i, 2)) : -1;
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || i >= len ||
        (s[i] != 'T' && s[i] != 't' && s[i] != ' ')) {
        return false;
    }
    i++;
    int h = digits(s, len, &i, 2);
    int mi = i < len && s[i] == ':' ? (i++, digits(s, len, &i, 2)) : -1;
    int sec = 0;
    if (i < len && s[i] == ':') {
        i++;
        sec = digits(s, len, &i, 2);
    }
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60) {
        return false;
    }
    int64_t frac = 0, scale = 1000;
    if (i < len && (s[i] == '.' || s[i] == ',')) {
        size_t start = ++i;
        while (i < len && isdigit((unsigned char)s[i])) {
            if (scale > 1) {
                scale /= 10;
                frac += (s[i] - '0') * scale;
            }
            i++;
        }
        if (i == start) {
            return false;
        }
    }
    int64_t off = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i++] == '-' ? -1 : 1;
        int oh = digits(s, len, &i, 2);
        if (i < len && s[i] == ':') {
            i++;
        }
        int om = digits(s, len, &i, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return false;
        }
        off = sign * (oh * 3600 + om * 60);
    }
    if (i != len) {
        return false;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    *ms = secs * 1000 + frac;
    return true;
}

/* Text in a strptime pattern; without %z (or %Z) the time is UTC. */
static bool parse_pattern(const char *pattern, const char *s, size_t len, int64_t *ms)
{
    char buf[256];
    if (len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct tm tm = {0};
    const char *end = strptime(buf, pattern, &tm);
    if (!end || *end) {
        return false;
    }
    long gmtoff = tm.tm_gmtoff;
    time_t t = timegm(&tm);
    if (t == (time_t)-1 && (tm.tm_year != 69 || tm.tm_mday != 31)) {
        return false;
    }
    *ms = ((int64_t)t - gmtoff) * 1000;
    return true;
}

/* An epoch number in op's unit: ms. Seconds may have a fraction. */
static bool epoch_ms(const sl_yamlop *op, const yop_num *n, int64_t *ms)
{
    static const double per_ms[] = {
        [YOP_TS_S] = 1e-3, [YOP_TS_MS] = 1, [YOP_TS_US] = 1e3, [YOP_TS_NS] = 1e6};
    double v = n->type == SL_NUM_INT ? (double)n->i : n->d;
    if (n->type == SL_NUM_INT && op->ts_format == YOP_TS_MS) {
        *ms = n->i;
        return true;
    }
    v = floor(v / per_ms[op->ts_format]);
    if (!isfinite(v) || v < -9.2e15 || v > 9.2e15) {
        return false;
    }
    *ms = (int64_t)v;
    return true;
}

/* The time text s (a number for the epoch formats) means, in ms. */
static bool text_ms(const sl_yamlop *op, const char *s, size_t len, int64_t *ms)
{
    switch (op->ts_format) {
    case YOP_TS_RFC3339: return parse_rfc3339(s, len, ms);
    case YOP_TS_PATTERN: return parse_pattern(op->ts_pattern, s, len, ms);
    default: {
        yop_num n;
        return sl__yamlops_parse_num(s, len, &n) && epoch_ms(op, &n, ms);
    }
    }
}

/* Says why the text s[0..len) (from what) is not a time in op's format. */
static int reject_time(const sl_yamlop *op, const char *what, const char *s, size_t len)
{
    char pv[48];
    sl__yamlops_preview(s, len, pv, sizeof(pv));
    sl_reject_reason("%s '%s' is not a time in format %s", what, pv,
                     op->ts_format == YOP_TS_PATTERN ? op->ts_pattern
                                                     : format_names[op->ts_format]);
    return SL_ERR_RECORD;
}

int sl__yamlops_timestamp(const sl_yamlop *op, const sl_record *in, sl_record *out)
{
    int64_t ms = 0;
    if (op->target == SL_YOP_ON_VALUE) {
        if (!in->value || !text_ms(op, in->value, in->value_len, &ms)) {
            return reject_time(op, "the value", in->value ? in->value : "",
                               in->value ? in->value_len : 0);
        }
    } else if (op->target == SL_YOP_ON_JSON) {
        json_t *root = sl__yamlops_json_load(in);
        json_t *v = root ? sl__jpath_get(&op->path, root) : NULL;
        yop_num n;
        bool ok = false;
        if (v && json_is_string(v)) {
            ok = text_ms(op, json_string_value(v), json_string_length(v), &ms);
        } else if (v && json_is_number(v) && op->ts_format <= YOP_TS_NS) {
            ok = sl__yamlops_json_num(v, &n) && epoch_ms(op, &n, &ms);
        }
        int rc = SL_OK;
        if (!v) {
            rc = sl__yamlops_reject_json(&op->path, root != NULL);
        } else if (!ok) {
            char buf[64], p[96], what[128];
            char *heap;
            size_t len;
            const char *text = sl__yamlops_json_text(v, buf, sizeof(buf), &len, &heap);
            snprintf(what, sizeof(what), "JSON field '%s'",
                     sl__jpath_text(&op->path, p, sizeof(p)));
            rc = reject_time(op, what, text ? text : "", text ? len : 0);
            free(heap);
        }
        json_decref(root);
        if (rc != SL_OK) {
            return rc;
        }
    } else {
        yop_attr a;
        if (!sl__yamlops_attr_get(op, in, &a)) {
            return sl__yamlops_reject_attr(op);
        }
        char buf[32], what[96];
        const char *s;
        size_t len;
        sl__yamlops_attr_text(&a, buf, sizeof(buf), &s, &len);
        if (!text_ms(op, s, len, &ms)) {
            snprintf(what, sizeof(what), "header '%s'", op->header ? op->header : "?");
            return reject_time(op, what, s, len);
        }
    }
    out->ts = ms;
    return SL_OK;
}

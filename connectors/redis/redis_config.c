/* redis_config.c -- the redis sink's options, its key templates and the command each record
 * becomes. No hiredis here: pure functions, unit-tested. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

#define REDIS_NUM_MAX 64

/* ==== Templates ==== */

static const struct {
    const char *name;
    sl_redis_part_kind kind;
} redis_placeholders[] = {
    {"key", SL_REDIS_PH_KEY},
    {"value", SL_REDIS_PH_VALUE},
    {"batch_time", SL_REDIS_PH_BATCH_TIME},
    {"window_start", SL_REDIS_PH_WINDOW_START},
    {"window_end", SL_REDIS_PH_WINDOW_END},
    {"topic", SL_REDIS_PH_TOPIC},
    {"partition", SL_REDIS_PH_PARTITION},
    {"offset", SL_REDIS_PH_OFFSET},
};

void sl__redis_tpl_free(sl_redis_tpl *t)
{
    for (size_t i = 0; t->parts && i < t->nparts; i++) {
        free(t->parts[i].text);
    }
    free(t->parts);
    t->parts = NULL;
    t->nparts = 0;
}

static int redis_tpl_add(sl_redis_tpl *t, sl_redis_part_kind kind, const char *text, size_t len)
{
    if (kind == SL_REDIS_LIT && t->nparts > 0 && t->parts[t->nparts - 1].kind == SL_REDIS_LIT) {
        sl_redis_part *p = &t->parts[t->nparts - 1];
        char *s = realloc(p->text, p->len + len + 1);
        if (!s) {
            return SL_ERR_NOMEM;
        }
        memcpy(s + p->len, text, len);
        p->text = s;
        p->len += len;
        s[p->len] = '\0';
        return SL_OK;
    }
    sl_redis_part *v = realloc(t->parts, (t->nparts + 1) * sizeof(*v));
    if (!v) {
        return SL_ERR_NOMEM;
    }
    t->parts = v;
    sl_redis_part *p = &v[t->nparts];
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    if (kind == SL_REDIS_LIT) {
        p->text = malloc(len + 1);
        if (!p->text) {
            return SL_ERR_NOMEM;
        }
        if (len) {
            memcpy(p->text, text, len);
        }
        p->text[len] = '\0';
        p->len = len;
    }
    t->nparts++;
    return SL_OK;
}

int sl__redis_tpl_parse(sl_redis_tpl *t, const char *s, const char *what, char *errstr,
                        size_t errsize)
{
    memset(t, 0, sizeof(*t));
    for (const char *p = s; *p;) {
        int rc = SL_OK;
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            rc = redis_tpl_add(t, SL_REDIS_LIT, p, 1);
            p += 2;
        } else if (*p == '}') {
            snprintf(errstr, errsize, "%s: '%s': a lone '}' (write }} for a brace)", what, s);
            return SL_ERR_INVAL;
        } else if (*p == '{') {
            const char *end = strchr(p, '}');
            if (!end) {
                snprintf(errstr, errsize, "%s: '%s': '{' without '}' (write {{ for a brace)", what,
                         s);
                return SL_ERR_INVAL;
            }
            size_t n = (size_t)(end - p - 1);
            bool found = false;
            for (size_t i = 0; i < sizeof(redis_placeholders) / sizeof(redis_placeholders[0]);
                 i++) {
                if (strlen(redis_placeholders[i].name) == n &&
                    strncmp(p + 1, redis_placeholders[i].name, n) == 0) {
                    rc = redis_tpl_add(t, redis_placeholders[i].kind, NULL, 0);
                    found = true;
                    break;
                }
            }
            if (!found) {
                snprintf(errstr, errsize,
                         "%s: '%s': unknown placeholder {%.*s} (one of {key}, {value}, "
                         "{batch_time}, {window_start}, {window_end}, {topic}, {partition}, "
                         "{offset}; {{ and "
                         "}} for braces)",
                         what, s, (int)n, p + 1);
                return SL_ERR_INVAL;
            }
            p = end + 1;
        } else {
            const char *q = p;
            while (*q && *q != '{' && *q != '}') {
                q++;
            }
            rc = redis_tpl_add(t, SL_REDIS_LIT, p, (size_t)(q - p));
            p = q;
        }
        if (rc != SL_OK) {
            snprintf(errstr, errsize, "out of memory");
            return rc;
        }
    }
    return SL_OK;
}

/* The shortest "%.Ng" form of d that reads back as d. */
static void redis_format_double(double d, char *buf, size_t size)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            return;
        }
    }
}

/* The record's value as print() shows it: the typed value if any, else the bytes. */
static const char *redis_value_text(const sl_record *r, char *num, size_t numsize, size_t *len)
{
    if (r->num_type == SL_NUM_INT) {
        snprintf(num, numsize, "%" PRId64, r->num.i);
    } else if (r->num_type == SL_NUM_DOUBLE) {
        redis_format_double(r->num.d, num, numsize);
    } else {
        *len = r->value_len;
        return r->value ? r->value : "";
    }
    *len = strlen(num);
    return num;
}

int sl__redis_tpl_expand(const sl_redis_tpl *t, const sl_record *r, const sl_record_when *when,
                         sl_buf *b)
{
    char num[REDIS_NUM_MAX];
    for (size_t i = 0; i < t->nparts; i++) {
        const sl_redis_part *p = &t->parts[i];
        const char *s = num;
        size_t n = 0;
        switch (p->kind) {
        case SL_REDIS_LIT:
            s = p->text;
            n = p->len;
            break;
        case SL_REDIS_PH_KEY:
            s = r->key ? r->key : "";
            n = r->key_len;
            break;
        case SL_REDIS_PH_VALUE: s = redis_value_text(r, num, sizeof(num), &n); break;
        case SL_REDIS_PH_BATCH_TIME:
        case SL_REDIS_PH_WINDOW_START:
        case SL_REDIS_PH_WINDOW_END:
            n = (size_t)snprintf(num, sizeof(num), "%" PRId64,
                                 p->kind == SL_REDIS_PH_BATCH_TIME     ? when->batch_time
                                 : p->kind == SL_REDIS_PH_WINDOW_START ? when->window_start
                                                                       : when->window_end);
            break;
        case SL_REDIS_PH_TOPIC:
            s = r->meta && r->meta->topic ? r->meta->topic : "";
            n = strlen(s);
            break;
        case SL_REDIS_PH_PARTITION:
            n = (size_t)snprintf(num, sizeof(num), "%d", r->meta ? (int)r->meta->partition : -1);
            break;
        case SL_REDIS_PH_OFFSET:
            n = (size_t)snprintf(num, sizeof(num), "%" PRId64,
                                 r->meta ? r->meta->offset : (int64_t)-1);
            break;
        }
        if (sl__buf_append(b, s, n) != SL_OK) {
            return SL_ERR_NOMEM;
        }
    }
    return SL_OK;
}

/* ==== Commands ==== */

/* The record's number as the command's argument: integer or float text. */
static int redis_number(const sl_record *r, bool integer, char *num, size_t size, char *why,
                        size_t whysize)
{
    char buf[REDIS_NUM_MAX];
    double d;
    if (r->num_type == SL_NUM_INT) {
        snprintf(num, size, "%" PRId64, r->num.i);
        return SL_OK;
    }
    if (r->num_type == SL_NUM_DOUBLE) {
        d = r->num.d;
    } else {
        if (r->value_len == 0 || r->value_len >= sizeof(buf)) {
            snprintf(why, whysize, "the record has no number");
            return SL_ERR_RECORD;
        }
        memcpy(buf, r->value, r->value_len);
        buf[r->value_len] = '\0';
        for (size_t i = 0; i < r->value_len; i++) {
            if (!strchr("0123456789+-.eE", buf[i])) {
                snprintf(why, whysize, "the value '%.40s' is not a number", buf);
                return SL_ERR_RECORD;
            }
        }
        char *end;
        errno = 0;
        if (integer) {
            long long v = strtoll(buf, &end, 10);
            if (*end == '\0' && errno == 0) {
                snprintf(num, size, "%lld", v);
                return SL_OK;
            }
        }
        errno = 0;
        d = strtod(buf, &end);
        if (*end != '\0' || errno == ERANGE) {
            snprintf(why, whysize, "the value '%.40s' is not a number", buf);
            return SL_ERR_RECORD;
        }
    }
    if (!isfinite(d)) {
        snprintf(why, whysize, "the number is not finite");
        return SL_ERR_RECORD;
    }
    if (integer) {
        if (d != floor(d) || fabs(d) >= 9.2e18) {
            snprintf(why, whysize, "%.17g is not an integer", d);
            return SL_ERR_RECORD;
        }
        snprintf(num, size, "%" PRId64, (int64_t)d);
        return SL_OK;
    }
    redis_format_double(d, num, size);
    return SL_OK;
}

/* Arguments are gathered as offsets into out->buf (it may move) or constant pointers. */
typedef struct redis_argv {
    sl_redis_cmds *out;
    size_t off[2][SL_REDIS_MAX_ARGS];
    int rc;
    const sl_record_when *when; /* for the templates */
} redis_argv;

#define REDIS_CONST ((size_t)-1)

static void redis_arg_const(redis_argv *a, int c, const char *s)
{
    int i = a->out->argc[c]++;
    a->off[c][i] = REDIS_CONST;
    a->out->argv[c][i] = s;
    a->out->argvlen[c][i] = strlen(s);
}

static void redis_arg_bytes(redis_argv *a, int c, const char *s, size_t n)
{
    int i = a->out->argc[c]++;
    a->off[c][i] = a->out->buf.len;
    a->out->argvlen[c][i] = n;
    if (a->rc == SL_OK) {
        a->rc = sl__buf_append(&a->out->buf, s, n);
    }
}

static void redis_arg_tpl(redis_argv *a, int c, const sl_redis_tpl *t, const sl_record *r)
{
    int i = a->out->argc[c]++;
    size_t start = a->out->buf.len;
    a->off[c][i] = start;
    if (a->rc == SL_OK) {
        a->rc = sl__redis_tpl_expand(t, r, a->when, &a->out->buf);
    }
    a->out->argvlen[c][i] = a->out->buf.len - start;
}

/* A tombstone (sl_record_is_tombstone: the key has no value any more, as a key that left a
 * window): SET and HSET delete the key or field, ZADD removes the member, the increments add
 * nothing (no command); false for XADD and LPUSH, which append it as any record. */
static bool redis_build_removal(const sl_redis_ctx *ctx, const sl_record *r, redis_argv *a)
{
    switch (ctx->cmd) {
    case SL_REDIS_SET:
        redis_arg_const(a, 0, "DEL");
        redis_arg_tpl(a, 0, &ctx->tkey, r);
        break;
    case SL_REDIS_HSET:
        redis_arg_const(a, 0, "HDEL");
        redis_arg_tpl(a, 0, &ctx->tkey, r);
        redis_arg_tpl(a, 0, &ctx->tfield, r);
        break;
    case SL_REDIS_ZADD:
        redis_arg_const(a, 0, "ZREM");
        redis_arg_tpl(a, 0, &ctx->tkey, r);
        redis_arg_tpl(a, 0, &ctx->tmember, r);
        break;
    case SL_REDIS_HINCRBY:
    case SL_REDIS_INCRBY:
    case SL_REDIS_INCRBYFLOAT:
    case SL_REDIS_ZINCRBY: a->out->ncmds = 0; return true;
    case SL_REDIS_XADD:
    case SL_REDIS_LPUSH: return false;
    }
    for (int i = 0; a->rc == SL_OK && i < a->out->argc[0]; i++) {
        if (a->off[0][i] != REDIS_CONST) {
            a->out->argv[0][i] = a->out->buf.p + a->off[0][i];
        }
    }
    return true;
}

int sl__redis_build(const sl_redis_ctx *ctx, const sl_record *r, const sl_record_when *when,
                    sl_redis_cmds *out, char *why, size_t whysize)
{
    redis_argv a = {.out = out, .rc = SL_OK, .when = when};
    char num[REDIS_NUM_MAX], vnum[REDIS_NUM_MAX];
    size_t vlen = 0;
    const char *v;
    int rc;

    out->ncmds = 1;
    out->argc[0] = out->argc[1] = 0;
    sl__buf_reset(&out->buf);
    if (sl_record_is_tombstone(r) && redis_build_removal(ctx, r, &a)) {
        return a.rc;
    }
    switch (ctx->cmd) {
    case SL_REDIS_SET:
        redis_arg_const(&a, 0, "SET");
        redis_arg_tpl(&a, 0, &ctx->tkey, r);
        redis_arg_tpl(&a, 0, &ctx->tvalue, r);
        if (ctx->ttl > 0) {
            redis_arg_const(&a, 0, "PX");
            redis_arg_const(&a, 0, ctx->ttl_text);
        }
        break;
    case SL_REDIS_HSET:
        redis_arg_const(&a, 0, "HSET");
        redis_arg_tpl(&a, 0, &ctx->tkey, r);
        redis_arg_tpl(&a, 0, &ctx->tfield, r);
        redis_arg_tpl(&a, 0, &ctx->tvalue, r);
        break;
    case SL_REDIS_HINCRBY:
    case SL_REDIS_INCRBY:
    case SL_REDIS_INCRBYFLOAT:
        rc = redis_number(r, ctx->cmd != SL_REDIS_INCRBYFLOAT, num, sizeof(num), why, whysize);
        if (rc != SL_OK) {
            return rc;
        }
        redis_arg_const(&a, 0,
                        ctx->cmd == SL_REDIS_HINCRBY  ? "HINCRBY"
                        : ctx->cmd == SL_REDIS_INCRBY ? "INCRBY"
                                                      : "INCRBYFLOAT");
        redis_arg_tpl(&a, 0, &ctx->tkey, r);
        if (ctx->cmd == SL_REDIS_HINCRBY) {
            redis_arg_tpl(&a, 0, &ctx->tfield, r);
        }
        redis_arg_bytes(&a, 0, num, strlen(num));
        break;
    case SL_REDIS_ZADD:
    case SL_REDIS_ZINCRBY:
        rc = redis_number(r, false, num, sizeof(num), why, whysize);
        if (rc != SL_OK) {
            return rc;
        }
        redis_arg_const(&a, 0, ctx->cmd == SL_REDIS_ZADD ? "ZADD" : "ZINCRBY");
        redis_arg_tpl(&a, 0, &ctx->tkey, r);
        redis_arg_bytes(&a, 0, num, strlen(num));
        redis_arg_tpl(&a, 0, &ctx->tmember, r);
        break;
    case SL_REDIS_XADD:
        redis_arg_const(&a, 0, "XADD");
        redis_arg_tpl(&a, 0, &ctx->tkey, r);
        if (ctx->maxlen > 0) {
            redis_arg_const(&a, 0, "MAXLEN");
            redis_arg_const(&a, 0, "~");
            redis_arg_const(&a, 0, ctx->maxlen_text);
        }
        redis_arg_const(&a, 0, "*");
        if (r->key_len > 0) {
            redis_arg_const(&a, 0, "key");
            redis_arg_bytes(&a, 0, r->key, r->key_len);
        }
        v = redis_value_text(r, vnum, sizeof(vnum), &vlen);
        redis_arg_const(&a, 0, "value");
        redis_arg_bytes(&a, 0, v, vlen);
        break;
    case SL_REDIS_LPUSH:
        redis_arg_const(&a, 0, "LPUSH");
        redis_arg_tpl(&a, 0, &ctx->tkey, r);
        redis_arg_tpl(&a, 0, &ctx->tvalue, r);
        if (ctx->trim > 0) {
            out->ncmds = 2;
            redis_arg_const(&a, 1, "LTRIM");
            redis_arg_tpl(&a, 1, &ctx->tkey, r);
            redis_arg_const(&a, 1, "0");
            redis_arg_const(&a, 1, ctx->trim_text);
        }
        break;
    }
    if (a.rc != SL_OK) {
        return a.rc;
    }
    for (int c = 0; c < out->ncmds; c++) {
        for (int i = 0; i < out->argc[c]; i++) {
            if (a.off[c][i] != REDIS_CONST) {
                out->argv[c][i] = out->buf.p + a.off[c][i];
            }
        }
    }
    return SL_OK;
}

int sl__redis_commit_key(const sl_redis_ctx *ctx, const char *pipeline, const char *sink,
                         int64_t batch_time, sl_buf *b)
{
    char bt[32];
    snprintf(bt, sizeof(bt), "%" PRId64, batch_time);
    const char *inst = ctx->instance ? ctx->instance : "";
    sl__buf_reset(b);
    if (sl__buf_append(b, ctx->commit_prefix, strlen(ctx->commit_prefix)) != SL_OK ||
        sl__buf_append(b, pipeline, strlen(pipeline)) != SL_OK ||
        sl__buf_append(b, ":", 1) != SL_OK || sl__buf_append(b, sink, strlen(sink)) != SL_OK ||
        (*inst &&
         (sl__buf_append(b, ":", 1) != SL_OK || sl__buf_append(b, inst, strlen(inst)) != SL_OK)) ||
        sl__buf_append(b, ":", 1) != SL_OK || sl__buf_append(b, bt, strlen(bt)) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

/* ==== Input positions ==== */

int sl__redis_positions_key(const sl_redis_ctx *ctx, const char *pipeline, const char *sink,
                            sl_buf *b)
{
    sl__buf_reset(b);
    sl__buf_puts(b, ctx->commit_prefix);
    sl__buf_puts(b, "positions:");
    sl__buf_puts(b, pipeline);
    sl__buf_puts(b, ":");
    sl__buf_puts(b, sink);
    return b->failed ? SL_ERR_NOMEM : SL_OK;
}

int sl__redis_position_field(const char *source, const char *topic, int32_t partition, sl_buf *b)
{
    return sl__buf_printf(b, "%s\t%s\t%" PRId32, source ? source : "", topic ? topic : "",
                          partition);
}

int sl__redis_position_parse(const char *s, size_t len, int64_t *next)
{
    *next = -1;
    if (!s) {
        return SL_OK;
    }
    if (len == 0 || len > 19) {
        return SL_ERR_INVAL;
    }
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return SL_ERR_INVAL;
        }
        if (v > (INT64_MAX - (s[i] - '0')) / 10) {
            return SL_ERR_INVAL;
        }
        v = v * 10 + (s[i] - '0');
    }
    *next = v;
    return SL_OK;
}

sl_position_check sl__redis_positions_decide(const sl_input_range *r, const int64_t *held, size_t n,
                                             size_t *culprit)
{
    sl_position_check first = sl_position_check_range(&r[0], held[0]);
    size_t differs = n;
    *culprit = 0;
    for (size_t i = 0; i < n; i++) {
        sl_position_check c = sl_position_check_range(&r[i], held[i]);
        if (c == SL_POSITION_FENCED) {
            *culprit = i;
            return SL_POSITION_FENCED;
        }
        if (c != first && differs == n) {
            differs = i;
        }
    }
    if (differs < n) {
        *culprit = differs;
        return SL_POSITION_FENCED;
    }
    return first;
}

/* ==== Options ==== */

int sl__redis_config_check(sl_redis_ctx *ctx, char *errstr, size_t errsize)
{
    /* command and the ranges of the numbers were checked against the option table. */
    if (!ctx->host || !*ctx->host) {
        ctx->host = "127.0.0.1";
    }
    if (ctx->username && *ctx->username && (!ctx->password || !*ctx->password)) {
        snprintf(errstr, errsize, "username: needs a password");
        return SL_ERR_INVAL;
    }
    if (ctx->ttl > 0 && ctx->cmd != SL_REDIS_SET) {
        snprintf(errstr, errsize, "ttl: only for command set");
        return SL_ERR_INVAL;
    }
    if (ctx->trim > 0 && ctx->cmd != SL_REDIS_LPUSH) {
        snprintf(errstr, errsize, "trim: only for command lpush");
        return SL_ERR_INVAL;
    }
    if (ctx->maxlen > 0 && ctx->cmd != SL_REDIS_XADD) {
        snprintf(errstr, errsize, "maxlen: only for command xadd");
        return SL_ERR_INVAL;
    }
    if (!ctx->commit_prefix || !*ctx->commit_prefix) {
        snprintf(errstr, errsize, "commit_prefix: must not be empty");
        return SL_ERR_INVAL;
    }
    if (!ctx->instance) {
        ctx->instance = "";
    }
    snprintf(ctx->ttl_text, sizeof(ctx->ttl_text), "%lld", (long long)ctx->ttl);
    snprintf(ctx->trim_text, sizeof(ctx->trim_text), "%lld", (long long)ctx->trim - 1);
    snprintf(ctx->maxlen_text, sizeof(ctx->maxlen_text), "%lld", (long long)ctx->maxlen);

    if (!ctx->key || !*ctx->key) {
        snprintf(errstr, errsize, "key: required (a template such as words:{key})");
        return SL_ERR_INVAL;
    }
    int rc = sl__redis_tpl_parse(&ctx->tkey, ctx->key, "key", errstr, errsize);
    if (rc == SL_OK) {
        rc = sl__redis_tpl_parse(&ctx->tfield, ctx->field ? ctx->field : "{key}", "field", errstr,
                                 errsize);
    }
    if (rc == SL_OK) {
        rc = sl__redis_tpl_parse(&ctx->tvalue, ctx->value ? ctx->value : "{value}", "value", errstr,
                                 errsize);
    }
    if (rc == SL_OK) {
        rc = sl__redis_tpl_parse(&ctx->tmember, ctx->member ? ctx->member : "{key}", "member",
                                 errstr, errsize);
    }
    return rc;
}

void sl__redis_config_free(sl_redis_ctx *ctx)
{
    sl__redis_tpl_free(&ctx->tkey);
    sl__redis_tpl_free(&ctx->tfield);
    sl__redis_tpl_free(&ctx->tvalue);
    sl__redis_tpl_free(&ctx->tmember);
}

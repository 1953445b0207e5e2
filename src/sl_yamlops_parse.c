/* sl_yamlops_parse.c -- the parse op (a regex with named captures, or a known log format, into
 * the fields of a JSON object) and the PCRE2 regular expressions it and the filter's
 * `matches` use. */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <pcre2.h>

#include "sl_yamlops_int.h"

/* ==== Regular expressions ==== */

/* A match that takes more steps than this gives up (catastrophic backtracking, such as
 * (a+)+$ on a long run of a's): the record is rejected instead of holding a worker. */
#define YOP_RE_MATCH_LIMIT 1000000u

struct yop_re {
    pcre2_code *code;
    pcre2_match_context *mctx;
    uint32_t pairs; /* captures + 1: the ovector pairs a match fills */
};

/* Each thread keeps one match data block, grown to the largest pattern it matched, and a
 * JIT stack (32 KB growing to YOP_RE_JIT_STACK) for patterns that backtrack over long
 * texts; both are freed when the thread exits. */
#define YOP_RE_JIT_STACK (8u << 20)

typedef struct re_tls {
    pcre2_match_data *md;
    pcre2_jit_stack *js;
} re_tls;

static pthread_key_t re_key;
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

static void re_key_free(void *p)
{
    re_tls *t = p;
    pcre2_match_data_free(t->md);
    pcre2_jit_stack_free(t->js);
    free(t);
}

static void re_key_init(void)
{
    if (pthread_key_create(&re_key, re_key_free) != 0) {
        abort(); /* out of keys at start-up */
    }
}

/* The calling thread's state; NULL when out of memory. */
static re_tls *re_tls_get(void)
{
    pthread_once(&re_once, re_key_init);
    re_tls *t = pthread_getspecific(re_key);
    if (!t && (t = calloc(1, sizeof(*t))) && pthread_setspecific(re_key, t) != 0) {
        free(t);
        t = NULL;
    }
    return t;
}

/* The calling thread's match data with room for pairs; NULL when out of memory. */
static pcre2_match_data *re_match_data(uint32_t pairs)
{
    re_tls *t = re_tls_get();
    if (!t) {
        return NULL;
    }
    if (t->md && pcre2_get_ovector_count(t->md) >= pairs) {
        return t->md;
    }
    pcre2_match_data_free(t->md);
    t->md = pcre2_match_data_create(pairs < 16 ? 16 : pairs, NULL);
    return t->md;
}

/* PCRE2's callback for the JIT stack of a match: the calling thread's (NULL: PCRE2's 32 KB
 * on the machine stack). */
static pcre2_jit_stack *re_jit_stack(void *data)
{
    (void)data;
    re_tls *t = re_tls_get();
    if (t && !t->js) {
        t->js = pcre2_jit_stack_create(32u << 10, YOP_RE_JIT_STACK, NULL);
    }
    return t ? t->js : NULL;
}

yop_re *sl__yamlops_re_new(const char *pattern, char *errstr, size_t errsize)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof(msg));
        sl__yamlops_err(errstr, errsize, "%s at offset %zu", (const char *)msg, (size_t)off);
        return NULL;
    }
    yop_re *re = calloc(1, sizeof(*re));
    if (!re || !(re->mctx = pcre2_match_context_create(NULL))) {
        free(re);
        pcre2_code_free(code);
        sl__yamlops_err(errstr, errsize, "out of memory");
        return NULL;
    }
    re->code = code;
    pcre2_set_match_limit(re->mctx, YOP_RE_MATCH_LIMIT);
    pcre2_jit_stack_assign(re->mctx, re_jit_stack, NULL);
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* without JIT: the interpreter */
    uint32_t ncap = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &ncap);
    re->pairs = ncap + 1;
    return re;
}

void sl__yamlops_re_free(yop_re *re)
{
    if (re) {
        pcre2_match_context_free(re->mctx);
        pcre2_code_free(re->code);
        free(re);
    }
}

/* Matches re in s[0..len): the number of pairs set (> 0), 0 for no match, or SL_ERR_RECORD
 * or SL_ERR_NOMEM with the reason set. *ov gets the offsets. */
static int re_exec(const yop_re *re, const char *s, size_t len, PCRE2_SIZE **ov)
{
    pcre2_match_data *md = re_match_data(re->pairs);
    if (!md) {
        return SL_ERR_NOMEM;
    }
    int rc = pcre2_match(re->code, (PCRE2_SPTR)(len ? s : ""), len, 0, 0, md, re->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) {
        return 0;
    }
    if (rc < 0) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        sl_reject_reason("the regular expression gave up: %s", (const char *)msg);
        return SL_ERR_RECORD;
    }
    *ov = pcre2_get_ovector_pointer(md);
    return rc;
}

int sl__yamlops_re_find(const yop_re *re, const char *s, size_t len)
{
    PCRE2_SIZE *ov;
    int rc = re_exec(re, s, len, &ov);
    return rc > 0 ? 1 : rc;
}

/* ==== Formats ==== */

/* A quoted field's content: anything but a quote, with backslash escapes (Apache writes \",
 * nginx \x22). The quantifiers are possessive (no backtracking into them), so that a long
 * field does not fill the JIT stack with positions to return to. */
#define QS "(?:[^\"\\\\]++|\\\\.)*+"
/* The start of the access log formats, through the status and the size. The request is
 * METHOD PATH PROTOCOL when it has that shape (the path may hold spaces and may stop without
 * a protocol), else only request is set. */
#define ACCESS_HEAD                                                                                \
    "^(?<remote_addr>\\S+) \\S+ (?<remote_user>\\S+) \\[(?<time_local>[^\\]]*+)\\] "               \
    "\"(?<request>(?<method>[A-Za-z]++) (?<path>(?:[^\"\\\\ ]++|\\\\.| (?!HTTP/[0-9.]+\"))*+)"     \
    "(?: (?<protocol>HTTP/[0-9.]+))?(?=\")|" QS ")\" (?<status>\\d{3}) (?<body_bytes_sent>\\d+|-)"

typedef struct yop_format {
    const char *name;
    const char *regex;
    const char *ints; /* captures that are integers, space-separated with spaces around */
    const char *nils; /* captures where "-" (RFC 5424's NILVALUE) is null */
    bool syslog_pri;  /* adds facility and severity after pri */
} yop_format;

static const yop_format yop_formats[] = {
    {.name = "nginx_combined",
     .regex = ACCESS_HEAD " \"(?<http_referer>" QS ")\" \"(?<http_user_agent>" QS ")\"",
     .ints = " status body_bytes_sent "},
    {.name = "apache_combined",
     .regex = ACCESS_HEAD " \"(?<http_referer>" QS ")\" \"(?<http_user_agent>" QS ")\"",
     .ints = " status body_bytes_sent "},
    {.name = "apache_common", .regex = ACCESS_HEAD "(?: |$)", .ints = " status body_bytes_sent "},
    {.name = "syslog_rfc5424",
     .regex = "^<(?<pri>\\d{1,3})>(?<version>[1-9]\\d{0,2}) (?<timestamp>\\S+) (?<hostname>\\S+) "
              "(?<appname>\\S+) (?<procid>\\S+) (?<msgid>\\S+) "
              "(?<structured_data>-|(?:\\[(?:[^\\]\"\\\\]++|\\\\.|\"" QS "\")*+\\])++)"
              "(?: (?:\\xEF\\xBB\\xBF)?(?<message>(?s:.*)))?$",
     .ints = " pri version ",
     .nils = " timestamp hostname appname procid msgid structured_data ",
     .syslog_pri = true},
};

#define YOP_NFORMATS (sizeof(yop_formats) / sizeof(yop_formats[0]))

const char *sl__yamlops_parse_formats(void)
{
    return "nginx_combined, apache_combined, apache_common, syslog_rfc5424";
}

/* True when the word w is in the list " a b c ". */
static bool in_words(const char *list, const char *w)
{
    if (!list) {
        return false;
    }
    size_t n = strlen(w);
    for (const char *p = strstr(list, w); p; p = strstr(p + 1, w)) {
        if (p[-1] == ' ' && p[n] == ' ') {
            return true;
        }
    }
    return false;
}

/* ==== The parse op ==== */

typedef enum yop_cap_type {
    YOP_CAP_STRING,
    YOP_CAP_INT,
    YOP_CAP_FLOAT,
    YOP_CAP_BOOL
} yop_cap_type;

static const char *const yop_cap_type_names[] = {"string", "int", "float", "bool", NULL};

typedef struct yop_capture {
    uint32_t group;
    char *name;
    yop_cap_type type;
    bool nil_dash; /* "-" is null */
} yop_capture;

struct yop_parse {
    const yop_format *format; /* NULL for a regex */
    yop_capture *caps;        /* the named captures in group order */
    size_t ncaps;
};

void sl__yamlops_parse_free(struct yop_parse *pp)
{
    if (!pp) {
        return;
    }
    for (size_t i = 0; i < pp->ncaps; i++) {
        free(pp->caps[i].name);
    }
    free(pp->caps);
    free(pp);
}

static int cap_cmp(const void *a, const void *b)
{
    const yop_capture *x = a, *y = b;
    return x->group < y->group ? -1 : x->group > y->group;
}

/* Reads the named captures of the pattern into pp, in group order. */
static int parse_captures(struct yop_parse *pp, const yop_re *re, char *errstr, size_t errsize)
{
    uint32_t count = 0, entry = 0;
    PCRE2_SPTR table;
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMECOUNT, &count);
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(re->code, PCRE2_INFO_NAMETABLE, &table);
    if (count == 0) {
        sl__yamlops_err(errstr, errsize,
                        "the regular expression has no named capture such as (?<name>\\S+)");
        return SL_ERR_INVAL;
    }
    pp->caps = calloc(count, sizeof(*pp->caps));
    if (!pp->caps) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < count; i++) {
        PCRE2_SPTR e = table + (size_t)i * entry;
        yop_capture *c = &pp->caps[pp->ncaps++];
        c->group = ((uint32_t)e[0] << 8) | e[1];
        c->name = strdup((const char *)e + 2);
        if (!c->name) {
            sl__yamlops_err(errstr, errsize, "out of memory");
            return SL_ERR_NOMEM;
        }
        if (pp->format) {
            c->type = in_words(pp->format->ints, c->name) ? YOP_CAP_INT : YOP_CAP_STRING;
            c->nil_dash = in_words(pp->format->nils, c->name);
        }
    }
    qsort(pp->caps, pp->ncaps, sizeof(*pp->caps), cap_cmp);
    return SL_OK;
}

/* Applies types to the captures of pp. */
static int parse_types(struct yop_parse *pp, const sl_yamlops_capture_type *types, size_t ntypes,
                       char *errstr, size_t errsize)
{
    for (size_t i = 0; i < ntypes; i++) {
        yop_capture *c = NULL;
        for (size_t j = 0; j < pp->ncaps && !c; j++) {
            c = strcmp(pp->caps[j].name, types[i].name) == 0 ? &pp->caps[j] : NULL;
        }
        if (!c) {
            char names[256];
            size_t off = 0;
            names[0] = '\0';
            for (size_t j = 0; j < pp->ncaps && off < sizeof(names); j++) {
                int n = snprintf(names + off, sizeof(names) - off, "%s%s", j ? ", " : "",
                                 pp->caps[j].name);
                off += n > 0 ? (size_t)n : 0;
            }
            sl__yamlops_err(errstr, errsize, "types: no capture named '%s' (captures: %s)",
                            types[i].name, names);
            return SL_ERR_INVAL;
        }
        int t = -1;
        for (int k = 0; yop_cap_type_names[k] && types[i].type; k++) {
            t = strcmp(types[i].type, yop_cap_type_names[k]) == 0 ? k : t;
        }
        if (t < 0) {
            sl__yamlops_err(errstr, errsize,
                            "types: unknown type '%s' for '%s' (valid: string, int, float, bool)",
                            types[i].type ? types[i].type : "", types[i].name);
            return SL_ERR_INVAL;
        }
        c->type = (yop_cap_type)t;
    }
    return SL_OK;
}

sl_yamlop *sl__yamlops_parse_new(sl_yamlop_target target, const char *path, const char *regex,
                                 const char *format, const sl_yamlops_capture_type *types,
                                 size_t ntypes, char *errstr, size_t errsize)
{
    if (!regex == !format) {
        sl__yamlops_err(errstr, errsize, "parse takes one of regex and format");
        return NULL;
    }
    const yop_format *f = NULL;
    for (size_t i = 0; format && i < YOP_NFORMATS; i++) {
        f = strcmp(format, yop_formats[i].name) == 0 ? &yop_formats[i] : f;
    }
    if (format && !f) {
        sl__yamlops_err(errstr, errsize, "unknown format '%s' (valid: %s)", format,
                        sl__yamlops_parse_formats());
        return NULL;
    }
    if (target != SL_YOP_ON_VALUE && target != SL_YOP_ON_KEY && target != SL_YOP_ON_JSON) {
        sl__yamlops_err(errstr, errsize, "parse reads the value, the key or a JSON field");
        return NULL;
    }
    sl_yamlop *op = target == SL_YOP_ON_JSON
                        ? sl__yamlops_new_json(YOP_PARSE, path, errstr, errsize)
                        : sl__yamlops_new(YOP_PARSE);
    if (!op) {
        if (target != SL_YOP_ON_JSON) {
            sl__yamlops_err(errstr, errsize, "out of memory");
        }
        return NULL;
    }
    op->target = target;
    char msg[200];
    op->parse = calloc(1, sizeof(*op->parse));
    if (!op->parse) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        goto fail;
    }
    op->parse->format = f;
    op->re = sl__yamlops_re_new(f ? f->regex : regex, msg, sizeof(msg));
    if (!op->re) {
        sl__yamlops_err(errstr, errsize, "bad regular expression: %s", msg);
        goto fail;
    }
    if (parse_captures(op->parse, op->re, errstr, errsize) != SL_OK ||
        parse_types(op->parse, types, ntypes, errstr, errsize) != SL_OK) {
        goto fail;
    }
    return op;
fail:
    sl__yamlops_destroy(op);
    return NULL;
}

/* The JSON value of capture c's text s[0..len); NULL with the reason set when it does not
 * convert (or out of memory). */
static json_t *cap_value(const yop_capture *c, const char *s, size_t len)
{
    if ((c->nil_dash || c->type != YOP_CAP_STRING) && (len == 0 || (len == 1 && *s == '-'))) {
        return json_null();
    }
    yop_num n;
    switch (c->type) {
    case YOP_CAP_INT:
    case YOP_CAP_FLOAT:
        if (!sl__yamlops_parse_num(s, len, &n) ||
            (c->type == YOP_CAP_INT && n.type != SL_NUM_INT)) {
            sl_reject_reason("capture '%s' is '%.*s', not %s", c->name, len > 40 ? 40 : (int)len, s,
                             c->type == YOP_CAP_INT ? "an int" : "a number");
            return NULL;
        }
        return n.type == SL_NUM_INT && c->type == YOP_CAP_INT ? json_integer(n.i) : json_real(n.d);
    case YOP_CAP_BOOL:
        if (len == 4 && strncasecmp(s, "true", 4) == 0) {
            return json_true();
        }
        if (len == 5 && strncasecmp(s, "false", 5) == 0) {
            return json_false();
        }
        sl_reject_reason("capture '%s' is '%.*s', not true or false", c->name,
                         len > 40 ? 40 : (int)len, s);
        return NULL;
    default: {
        json_t *v = json_stringn(s, len);
        if (!v) {
            sl_reject_reason("capture '%s' is not valid UTF-8", c->name);
        }
        return v;
    }
    }
}

/* Adds facility and severity from the RFC 5424 PRI. */
static int add_syslog_pri(json_t *obj, json_t *pri)
{
    json_int_t v = json_integer_value(pri);
    if (!json_is_integer(pri) || v > 191) {
        sl_reject_reason("PRI %" JSON_INTEGER_FORMAT " is over 191", v);
        return SL_ERR_RECORD;
    }
    json_object_set_new(obj, "facility", json_integer(v >> 3));
    json_object_set_new(obj, "severity", json_integer(v & 7));
    return SL_OK;
}

/* RFC 5424's STRUCTURED-DATA s[0..len) (not "-") as an object: {SD-ID: {PARAM: VALUE}},
 * values unescaped (\" \\ \]; another backslash stays); a repeated name: the last. NULL with
 * the reason set when it is not well-formed. */
static json_t *sd_object(const char *s, size_t len)
{
    const char *p = s, *end = s + len;
    json_t *sd = json_object();
    char small[256];
    char *val = NULL; /* unescaped value: small, or malloc'ed when longer */
    while (sd && p < end) {
        const char *name = ++p; /* past '[' */
        while (p < end && *p != ' ' && *p != ']' && *p != '=' && *p != '"') {
            p++;
        }
        if (p == name || p == end || *p == '=' || *p == '"') {
            goto bad;
        }
        json_t *el = json_object(); /* the setn_new takes it, also when it fails */
        if (!el || json_object_setn_new(sd, name, (size_t)(p - name), el) != 0) {
            goto bad;
        }
        while (p < end && *p == ' ') {
            const char *pn = ++p;
            while (p < end && *p != '=' && *p != ' ' && *p != ']' && *p != '"') {
                p++;
            }
            size_t pnlen = (size_t)(p - pn);
            if (pnlen == 0 || p + 1 >= end || p[0] != '=' || p[1] != '"') {
                goto bad;
            }
            p += 2;
            const char *v = p;
            while (p < end && *p != '"') {
                p += *p == '\\' && p + 1 < end ? 2 : 1;
            }
            if (p >= end) {
                goto bad;
            }
            size_t vlen = (size_t)(p - v), n = 0;
            char *buf = vlen < sizeof(small) ? small : (val = realloc(val, vlen));
            if (!buf) {
                goto bad;
            }
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] == '\\' && i + 1 < vlen &&
                    (v[i + 1] == '"' || v[i + 1] == '\\' || v[i + 1] == ']')) {
                    i++;
                }
                buf[n++] = v[i];
            }
            json_t *js = json_stringn(buf, n);
            if (!js || json_object_setn_new(el, pn, pnlen, js) != 0) {
                goto bad;
            }
            p++; /* past the closing quote */
        }
        if (p >= end || *p != ']' || (++p < end && *p != '[')) {
            goto bad;
        }
    }
    free(val);
    return sd;
bad:
    free(val);
    json_decref(sd);
    sl_reject_reason("malformed or non-UTF-8 structured data at offset %zu of it", (size_t)(p - s));
    return NULL;
}

/* The captures of op's pattern in s[0..len) as the fields of obj. */
static int parse_text(const sl_yamlop *op, const char *s, size_t len, json_t *obj)
{
    const struct yop_parse *pp = op->parse;
    PCRE2_SIZE *ov = NULL;
    int rc = re_exec(op->re, s, len, &ov);
    if (rc == 0) {
        if (pp->format) {
            sl_reject_reason("not a %s line", pp->format->name);
        } else {
            sl_reject_reason("no match of the regular expression");
        }
        return SL_ERR_RECORD;
    }
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < pp->ncaps; i++) {
        const yop_capture *c = &pp->caps[i];
        if ((int)c->group >= rc || ov[2 * c->group] == PCRE2_UNSET) {
            continue; /* did not take part in the match */
        }
        size_t so = ov[2 * c->group], eo = ov[2 * c->group + 1];
        bool sd = pp->format && pp->format->syslog_pri && strcmp(c->name, "structured_data") == 0 &&
                  !(eo - so == 1 && s[so] == '-');
        json_t *v = sd ? sd_object(s + so, eo - so) : cap_value(c, s + so, eo - so);
        if (!v || json_object_set_new(obj, c->name, v) != 0) {
            return SL_ERR_RECORD;
        }
        if (pp->format && pp->format->syslog_pri && strcmp(c->name, "pri") == 0 &&
            add_syslog_pri(obj, v) != SL_OK) {
            return SL_ERR_RECORD;
        }
    }
    return SL_OK;
}

int sl__yamlops_parse_apply(const sl_yamlop *op, const sl_record *in, sl_record *out,
                            sl_yamlops_alloc_fn alloc, void *arg)
{
    json_t *obj = json_object(), *root = NULL;
    if (!obj) {
        return SL_ERR_NOMEM;
    }
    int rc;
    if (op->target == SL_YOP_ON_JSON) {
        root = sl__yamlops_json_load(in);
        json_t *v = root ? sl__jpath_get(&op->path, root) : NULL;
        if (!v) {
            rc = sl__yamlops_reject_json(&op->path, root != NULL);
        } else if (!json_is_object(root)) {
            sl_reject_reason("the value is not a JSON object");
            rc = SL_ERR_RECORD;
        } else {
            char buf[64];
            char *heap;
            size_t len;
            const char *text = sl__yamlops_json_text(v, buf, sizeof(buf), &len, &heap);
            rc = text ? parse_text(op, text, len, obj) : SL_ERR_NOMEM;
            free(heap);
            if (rc == SL_OK && json_object_update(root, obj) != 0) {
                rc = SL_ERR_NOMEM;
            }
            json_decref(obj);
            obj = root;
            root = NULL;
        }
    } else {
        const char *s = op->target == SL_YOP_ON_KEY ? in->key : in->value;
        size_t len = op->target == SL_YOP_ON_KEY ? in->key_len : in->value_len;
        rc = parse_text(op, s ? s : "", s ? len : 0, obj);
    }
    if (rc == SL_OK && op->shape) {
        rc = sl__yamlops_shape_run(op->shape, obj);
    }
    if (rc == SL_OK) {
        rc = sl__yamlops_json_out(obj, out, alloc, arg);
    }
    json_decref(obj);
    json_decref(root);
    return rc;
}

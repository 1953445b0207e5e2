/* sl_yamlops_shape.c -- the JSON shaping ops on a JSON object value: set (from a field, a
 * literal or an arithmetic expression), rename, drop and keep. Consecutive shaping ops (and
 * a parse op before them) are fused into one op whose steps share one decode and encode.
 *
 * The expression language of set's expr: numbers (12, 0.5, 1e3), field paths (price,
 * order.qty, items.0.price: letters, digits and '_' in segments, a segment starting with a
 * letter or '_' first), the binary operators + - * / with the usual precedence and left
 * associativity, unary minus, and parentheses. A field must hold a number (or a string
 * holding one). + - * of integers give an integer (a float when it overflows); / always
 * gives a float; anything with a float gives a float. A missing field, a field that is not a
 * number, a division by zero or a result that is not finite rejects the record. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sl_yamlops_int.h"

/* ==== Expressions ==== */

#define EXPR_MAX_TOKENS 128
#define EXPR_MAX_DEPTH  32 /* operands pending at once while evaluating */

typedef enum expr_tok_kind {
    EX_NUM,
    EX_FIELD,
    EX_ADD,
    EX_SUB,
    EX_MUL,
    EX_DIV,
    EX_NEG
} expr_tok_kind;

/* One token of the expression in postfix order. */
typedef struct expr_tok {
    expr_tok_kind kind;
    yop_num num;   /* EX_NUM */
    sl_jpath path; /* EX_FIELD */
} expr_tok;

typedef struct yop_expr {
    expr_tok *toks;
    size_t n;
    char *text;
} yop_expr;

static void expr_free(yop_expr *e)
{
    if (!e) {
        return;
    }
    for (size_t i = 0; i < e->n; i++) {
        sl__jpath_free(&e->toks[i].path);
    }
    free(e->toks);
    free(e->text);
    free(e);
}

/* A recursive-descent parser that writes postfix tokens. */
typedef struct expr_parser {
    const char *s, *p;
    yop_expr *e;
    int depth, max_depth; /* operands on the evaluation stack */
    char *errstr;
    size_t errsize;
} expr_parser;

static int expr_sum(expr_parser *ep, int nest);

static int expr_fail(expr_parser *ep, const char *what)
{
    sl__yamlops_err(ep->errstr, ep->errsize, "bad expression '%s': %s at offset %zu", ep->s, what,
                    (size_t)(ep->p - ep->s));
    return SL_ERR_INVAL;
}

static void expr_skip(expr_parser *ep)
{
    while (sl__yamlops_is_space(*ep->p)) {
        ep->p++;
    }
}

static expr_tok *expr_push(expr_parser *ep, expr_tok_kind kind)
{
    if (ep->e->n == EXPR_MAX_TOKENS) {
        expr_fail(ep, "too long (at most 128 numbers, fields and operators)");
        return NULL;
    }
    expr_tok *t = &ep->e->toks[ep->e->n++];
    memset(t, 0, sizeof(*t));
    t->kind = kind;
    if (kind == EX_NUM || kind == EX_FIELD) {
        if (++ep->depth > ep->max_depth) {
            ep->max_depth = ep->depth;
        }
    } else if (kind != EX_NEG) {
        ep->depth--;
    }
    return t;
}

static bool expr_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* A number, a field, a parenthesized expression, or a unary minus before one of them. */
static int expr_primary(expr_parser *ep, int nest)
{
    expr_skip(ep);
    const char *start = ep->p;
    if (*ep->p == '-') {
        ep->p++;
        int rc = expr_primary(ep, nest + 1);
        return rc == SL_OK ? (expr_push(ep, EX_NEG) ? SL_OK : SL_ERR_INVAL) : rc;
    }
    if (*ep->p == '(') {
        if (nest > 64) {
            return expr_fail(ep, "nested too deep");
        }
        ep->p++;
        int rc = expr_sum(ep, nest + 1);
        if (rc != SL_OK) {
            return rc;
        }
        expr_skip(ep);
        if (*ep->p != ')') {
            return expr_fail(ep, "missing ')'");
        }
        ep->p++;
        return SL_OK;
    }
    if (isdigit((unsigned char)*ep->p) || (*ep->p == '.' && isdigit((unsigned char)ep->p[1]))) {
        while (isdigit((unsigned char)*ep->p) || *ep->p == '.') {
            ep->p++;
        }
        if ((*ep->p == 'e' || *ep->p == 'E') &&
            (isdigit((unsigned char)ep->p[1]) ||
             ((ep->p[1] == '+' || ep->p[1] == '-') && isdigit((unsigned char)ep->p[2])))) {
            ep->p += 2;
            while (isdigit((unsigned char)*ep->p)) {
                ep->p++;
            }
        }
        yop_num n;
        if (!sl__yamlops_parse_num(start, (size_t)(ep->p - start), &n)) {
            ep->p = start;
            return expr_fail(ep, "bad number");
        }
        expr_tok *t = expr_push(ep, EX_NUM);
        if (!t) {
            return SL_ERR_INVAL;
        }
        t->num = n;
        return SL_OK;
    }
    if (isalpha((unsigned char)*ep->p) || *ep->p == '_') {
        while (expr_ident_char(*ep->p) || (*ep->p == '.' && expr_ident_char(ep->p[1]))) {
            ep->p++;
        }
        char path[256];
        size_t len = (size_t)(ep->p - start);
        if (len >= sizeof(path)) {
            ep->p = start;
            return expr_fail(ep, "field path too long");
        }
        memcpy(path, start, len);
        path[len] = '\0';
        expr_tok *t = expr_push(ep, EX_FIELD);
        if (!t) {
            return SL_ERR_INVAL;
        }
        if (sl__jpath_parse(&t->path, path) != SL_OK) {
            return expr_fail(ep, "out of memory");
        }
        return SL_OK;
    }
    return expr_fail(ep, *ep->p ? "expected a number, a field or '('" : "unexpected end");
}

/* A product: primaries joined by * and /. */
static int expr_product(expr_parser *ep, int nest)
{
    int rc = expr_primary(ep, nest);
    for (;;) {
        expr_skip(ep);
        if (rc != SL_OK || (*ep->p != '*' && *ep->p != '/')) {
            return rc;
        }
        expr_tok_kind k = *ep->p == '*' ? EX_MUL : EX_DIV;
        ep->p++;
        if ((rc = expr_primary(ep, nest)) == SL_OK && !expr_push(ep, k)) {
            rc = SL_ERR_INVAL;
        }
    }
}

/* A sum: products joined by + and -. */
static int expr_sum(expr_parser *ep, int nest)
{
    int rc = expr_product(ep, nest);
    for (;;) {
        expr_skip(ep);
        if (rc != SL_OK || (*ep->p != '+' && *ep->p != '-')) {
            return rc;
        }
        expr_tok_kind k = *ep->p == '+' ? EX_ADD : EX_SUB;
        ep->p++;
        if ((rc = expr_product(ep, nest)) == SL_OK && !expr_push(ep, k)) {
            rc = SL_ERR_INVAL;
        }
    }
}

static yop_expr *expr_new(const char *text, char *errstr, size_t errsize)
{
    yop_expr *e = calloc(1, sizeof(*e));
    if (!e || !(e->toks = calloc(EXPR_MAX_TOKENS, sizeof(*e->toks))) || !(e->text = strdup(text))) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        expr_free(e);
        return NULL;
    }
    expr_parser ep = {.s = text, .p = text, .e = e, .errstr = errstr, .errsize = errsize};
    int rc = expr_sum(&ep, 0);
    if (rc == SL_OK && *ep.p) {
        rc = expr_fail(&ep, *ep.p == ')' ? "unbalanced ')'" : "expected an operator");
    }
    if (rc == SL_OK && ep.max_depth > EXPR_MAX_DEPTH) {
        rc = expr_fail(&ep, "too many operands pending (at most 32)");
    }
    if (rc != SL_OK) {
        expr_free(e);
        return NULL;
    }
    return e;
}

static double num_d(const yop_num *n)
{
    return n->type == SL_NUM_INT ? (double)n->i : n->d;
}

static void num_set_d(yop_num *n, double d)
{
    n->type = SL_NUM_DOUBLE;
    n->d = d;
    n->i = 0;
}

/* Applies a binary operator: a = a OP b. false (with the reason set) on a division by zero. */
static bool expr_binary(expr_tok_kind k, yop_num *a, const yop_num *b, const yop_expr *e,
                        const char *field)
{
    bool ints = a->type == SL_NUM_INT && b->type == SL_NUM_INT;
    int64_t r;
    switch (k) {
    case EX_ADD:
        if (ints && !__builtin_add_overflow(a->i, b->i, &r)) {
            a->i = r;
            return true;
        }
        num_set_d(a, num_d(a) + num_d(b));
        return true;
    case EX_SUB:
        if (ints && !__builtin_sub_overflow(a->i, b->i, &r)) {
            a->i = r;
            return true;
        }
        num_set_d(a, num_d(a) - num_d(b));
        return true;
    case EX_MUL:
        if (ints && !__builtin_mul_overflow(a->i, b->i, &r)) {
            a->i = r;
            return true;
        }
        num_set_d(a, num_d(a) * num_d(b));
        return true;
    default: /* EX_DIV */
        if (num_d(b) == 0.0) {
            sl_reject_reason("set %s: division by zero in '%s'", field, e->text);
            return false;
        }
        num_set_d(a, num_d(a) / num_d(b));
        return true;
    }
}

/* Evaluates e over root into *res. SL_OK, or SL_ERR_RECORD with the reason set (which names
 * field, the one set sets). */
static int expr_eval(const yop_expr *e, json_t *root, yop_num *res, const char *field)
{
    yop_num st[EXPR_MAX_DEPTH];
    size_t sp = 0;
    for (size_t i = 0; i < e->n; i++) {
        const expr_tok *t = &e->toks[i];
        switch (t->kind) {
        case EX_NUM: st[sp++] = t->num; break;
        case EX_FIELD: {
            json_t *v = sl__jpath_get(&t->path, root);
            if (!v || !sl__yamlops_json_num(v, &st[sp])) {
                char p[128];
                sl__jpath_text(&t->path, p, sizeof(p));
                sl_reject_reason(v ? "set %s: JSON field '%s' is not a number"
                                   : "set %s: missing JSON field '%s'",
                                 field, p);
                return SL_ERR_RECORD;
            }
            sp++;
            break;
        }
        case EX_NEG:
            if (st[sp - 1].type == SL_NUM_INT && st[sp - 1].i != INT64_MIN) {
                st[sp - 1].i = -st[sp - 1].i;
            } else {
                num_set_d(&st[sp - 1], -num_d(&st[sp - 1]));
            }
            break;
        default:
            if (!expr_binary(t->kind, &st[sp - 2], &st[sp - 1], e, field)) {
                return SL_ERR_RECORD;
            }
            sp--;
        }
    }
    *res = st[0];
    if (res->type == SL_NUM_DOUBLE && !isfinite(res->d)) {
        sl_reject_reason("set %s: '%s' is not a finite number", field, e->text);
        return SL_ERR_RECORD;
    }
    return SL_OK;
}

/* ==== Steps ==== */

typedef enum step_kind {
    STEP_SET_FROM,
    STEP_SET_VALUE,
    STEP_SET_EXPR,
    STEP_RENAME,
    STEP_DROP,
    STEP_KEEP,
} step_kind;

typedef struct yop_step {
    step_kind kind;
    sl_jpath to;     /* set's field, rename's to */
    sl_jpath from;   /* set's from, rename's from */
    json_t *literal; /* set's value */
    yop_expr *expr;  /* set's expr */
    sl_jpath *paths; /* drop, keep */
    size_t npaths;
} yop_step;

struct yop_shape {
    yop_step *steps;
    size_t n;
};

static void step_clear(yop_step *s)
{
    sl__jpath_free(&s->to);
    sl__jpath_free(&s->from);
    json_decref(s->literal);
    expr_free(s->expr);
    for (size_t i = 0; i < s->npaths; i++) {
        sl__jpath_free(&s->paths[i]);
    }
    free(s->paths);
}

void sl__yamlops_shape_free(struct yop_shape *sh)
{
    if (!sh) {
        return;
    }
    for (size_t i = 0; i < sh->n; i++) {
        step_clear(&sh->steps[i]);
    }
    free(sh->steps);
    free(sh);
}

/* True when seg is an array index. */
static bool seg_index(const char *seg, size_t *idx)
{
    if (!isdigit((unsigned char)*seg)) {
        return false;
    }
    char *end;
    unsigned long v = strtoul(seg, &end, 10);
    *idx = v;
    return *end == '\0';
}

/* The container that holds the last segment of p, creating objects on the way when create;
 * NULL when a segment on the way is neither an object nor an array element. */
static json_t *jpath_parent(const sl_jpath *p, json_t *root, bool create)
{
    json_t *cur = root;
    for (size_t i = 0; cur && i + 1 < p->depth; i++) {
        const char *seg = p->seg[i];
        size_t idx;
        if (json_is_object(cur)) {
            json_t *next = json_object_get(cur, seg);
            if (!next && create) {
                next = json_object();
                if (!next || json_object_set_new(cur, seg, next) != 0) {
                    return NULL;
                }
            }
            cur = next;
        } else if (json_is_array(cur) && seg_index(seg, &idx)) {
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
    }
    return cur;
}

/* Sets the field at p to v (a reference taken). false with the reason set when a segment on
 * the way is not an object (or an array with that index). */
static bool jpath_set(const sl_jpath *p, json_t *root, json_t *v)
{
    json_t *parent = jpath_parent(p, root, true);
    const char *last = p->seg[p->depth - 1];
    size_t idx;
    bool ok;
    if (json_is_object(parent)) {
        ok = json_object_set_new(parent, last, v) == 0; /* takes v, also on failure */
    } else if (json_is_array(parent) && seg_index(last, &idx)) {
        ok = json_array_set_new(parent, idx, v) == 0;
    } else {
        json_decref(v);
        ok = false;
    }
    if (!ok) {
        char buf[128];
        sl_reject_reason("cannot set '%s': what holds it is not an object",
                         sl__jpath_text(p, buf, sizeof(buf)));
    }
    return ok;
}

/* Removes the field at p; its value (a reference) in *v when v is not NULL. */
static void jpath_del(const sl_jpath *p, json_t *root, json_t **v)
{
    json_t *parent = jpath_parent(p, root, false);
    const char *last = p->seg[p->depth - 1];
    size_t idx;
    json_t *cur = NULL;
    if (json_is_object(parent) && (cur = json_object_get(parent, last))) {
        json_incref(cur);
        json_object_del(parent, last);
    } else if (json_is_array(parent) && seg_index(last, &idx) &&
               (cur = json_array_get(parent, idx))) {
        json_incref(cur);
        json_array_remove(parent, idx);
    }
    if (v) {
        *v = cur;
    } else {
        json_decref(cur);
    }
}

static json_t *num_json(const yop_num *n)
{
    return n->type == SL_NUM_INT ? json_integer(n->i) : json_real(n->d);
}

static int step_run(const yop_step *s, json_t **root)
{
    json_t *v = NULL;
    char to[96];
    switch (s->kind) {
    case STEP_SET_FROM:
        v = sl__jpath_get(&s->from, *root);
        if (!v) {
            char buf[96];
            sl_reject_reason("set %s: missing JSON field '%s'",
                             sl__jpath_text(&s->to, to, sizeof(to)),
                             sl__jpath_text(&s->from, buf, sizeof(buf)));
            return SL_ERR_RECORD;
        }
        /* a container is copied: set a.b from a would make a cycle */
        v = json_is_object(v) || json_is_array(v) ? json_deep_copy(v) : json_incref(v);
        return v && jpath_set(&s->to, *root, v) ? SL_OK : SL_ERR_RECORD;
    case STEP_SET_VALUE:
        v = json_is_object(s->literal) || json_is_array(s->literal) ? json_deep_copy(s->literal)
                                                                    : json_incref(s->literal);
        return v && jpath_set(&s->to, *root, v) ? SL_OK : SL_ERR_RECORD;
    case STEP_SET_EXPR: {
        yop_num n;
        int rc = expr_eval(s->expr, *root, &n, sl__jpath_text(&s->to, to, sizeof(to)));
        if (rc != SL_OK) {
            return rc;
        }
        if (!(v = num_json(&n))) {
            return SL_ERR_NOMEM;
        }
        return jpath_set(&s->to, *root, v) ? SL_OK : SL_ERR_RECORD;
    }
    case STEP_RENAME:
        jpath_del(&s->from, *root, &v);
        return !v || jpath_set(&s->to, *root, v) ? SL_OK : SL_ERR_RECORD;
    case STEP_DROP:
        for (size_t i = 0; i < s->npaths; i++) {
            jpath_del(&s->paths[i], *root, NULL);
        }
        return SL_OK;
    case STEP_KEEP: {
        json_t *kept = json_object();
        if (!kept) {
            return SL_ERR_NOMEM;
        }
        for (size_t i = 0; i < s->npaths; i++) {
            json_t *f = sl__jpath_get(&s->paths[i], *root);
            if (f && !jpath_set(&s->paths[i], kept, json_incref(f))) {
                json_decref(kept);
                return SL_ERR_RECORD;
            }
        }
        json_decref(*root);
        *root = kept;
        return SL_OK;
    }
    }
    return SL_ERR_INVAL;
}

int sl__yamlops_shape_run(const struct yop_shape *sh, json_t *root)
{
    /* keep replaces the object: the result is copied back into root */
    json_t *cur = json_incref(root);
    int rc = SL_OK;
    for (size_t i = 0; i < sh->n && rc == SL_OK; i++) {
        rc = step_run(&sh->steps[i], &cur);
    }
    if (rc == SL_OK && cur != root) {
        json_object_clear(root);
        rc = json_object_update(root, cur) == 0 ? SL_OK : SL_ERR_NOMEM;
    }
    json_decref(cur);
    return rc;
}

/* ==== Encoding ====
 * Our own compact encoder rather than json_dumpb: jansson writes doubles with 17 digits
 * (0.1 becomes 0.10000000000000001), which would change every number a record passes
 * through a shaping op with; here a double takes the fewest digits that read back the same. */

#define ENC_MAX_DEPTH 2048 /* jansson's decoder does not nest deeper */

typedef struct enc_buf {
    char *p;
    size_t len, cap;
    bool heap, failed;
} enc_buf;

static void enc_put(enc_buf *b, const char *s, size_t n)
{
    if (b->failed) {
        return;
    }
    if (n > b->cap - b->len) {
        size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n + 256;
        char *p = b->heap ? realloc(b->p, cap) : malloc(cap);
        if (!p) {
            b->failed = true;
            return;
        }
        if (!b->heap) {
            memcpy(p, b->p, b->len);
        }
        b->p = p;
        b->cap = cap;
        b->heap = true;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void enc_string(enc_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    enc_put(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, pending */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        enc_put(b, s + i - run, run);
        run = 0;
        char esc[6] = {'\\', 0};
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            enc_put(b, esc, 6);
            continue;
        }
        enc_put(b, esc, 2);
    }
    enc_put(b, s + n - run, run);
    enc_put(b, "\"", 1);
}

/* The shortest of %.15g, %.16g and %.17g that reads back as d, with ".0" when it would
 * read as an integer. */
static void enc_real(enc_buf *b, double d)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    if (!strpbrk(buf, ".eEni")) {
        strcat(buf, ".0");
    }
    enc_put(b, buf, strlen(buf));
}

static void enc_value(enc_buf *b, json_t *v, int depth)
{
    char num[32];
    if (depth > ENC_MAX_DEPTH) {
        b->failed = true;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        enc_put(b, "{", 1);
        bool first = true;
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            if (!first) {
                enc_put(b, ",", 1);
            }
            first = false;
            enc_string(b, json_object_iter_key(it), json_object_iter_key_len(it));
            enc_put(b, ":", 1);
            enc_value(b, json_object_iter_value(it), depth + 1);
        }
        enc_put(b, "}", 1);
        return;
    }
    case JSON_ARRAY:
        enc_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) {
                enc_put(b, ",", 1);
            }
            enc_value(b, json_array_get(v, i), depth + 1);
        }
        enc_put(b, "]", 1);
        return;
    case JSON_STRING: enc_string(b, json_string_value(v), json_string_length(v)); return;
    case JSON_INTEGER:
        enc_put(b, num,
                (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v)));
        return;
    case JSON_REAL: enc_real(b, json_real_value(v)); return;
    case JSON_TRUE: enc_put(b, "true", 4); return;
    case JSON_FALSE: enc_put(b, "false", 5); return;
    default: enc_put(b, "null", 4); return;
    }
}

int sl__yamlops_json_out(json_t *root, sl_record *out, sl_yamlops_alloc_fn alloc, void *arg)
{
    char stack[2048];
    enc_buf b = {.p = stack, .cap = sizeof(stack)};
    enc_value(&b, root, 0);
    int rc = SL_OK;
    char *p = NULL;
    if (b.failed || b.len > UINT32_MAX) {
        sl_reject_reason("the JSON result cannot be encoded (too large or too deep)");
        rc = SL_ERR_RECORD;
    } else if (!(p = alloc(arg, b.len ? b.len : 1))) {
        rc = SL_ERR_NOMEM;
    } else {
        memcpy(p, b.p, b.len);
        out->value = p;
        out->value_len = (uint32_t)b.len;
    }
    if (b.heap) {
        free(b.p);
    }
    return rc;
}

int sl__yamlops_shape_apply(const sl_yamlop *op, const sl_record *in, sl_record *out,
                            sl_yamlops_alloc_fn alloc, void *arg)
{
    json_t *root = sl__yamlops_json_load(in);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        if (root) {
            sl_reject_reason("the value is not a JSON object");
            return SL_ERR_RECORD;
        }
        return sl__yamlops_reject_json(NULL, false);
    }
    int rc = sl__yamlops_shape_run(op->shape, root);
    if (rc == SL_OK) {
        rc = sl__yamlops_json_out(root, out, alloc, arg);
    }
    json_decref(root);
    return rc;
}

/* ==== Constructors ==== */

/* A shaping op with one step, zeroed; NULL when out of memory. */
static sl_yamlop *shape_new(step_kind kind, yop_step **step, char *errstr, size_t errsize)
{
    sl_yamlop *op = sl__yamlops_new(YOP_SHAPE);
    if (op && (op->shape = calloc(1, sizeof(*op->shape))) &&
        (op->shape->steps = calloc(1, sizeof(yop_step)))) {
        op->shape->n = 1;
        *step = &op->shape->steps[0];
        (*step)->kind = kind;
        return op;
    }
    sl__yamlops_err(errstr, errsize, "out of memory");
    sl__yamlops_destroy(op);
    return NULL;
}

/* Parses a dotted path, with the message for an empty one or an empty segment. */
static bool shape_path(sl_jpath *p, const char *path, const char *what, char *errstr,
                       size_t errsize)
{
    int rc = sl__jpath_parse(p, path);
    if (rc == SL_ERR_NOMEM) {
        sl__yamlops_err(errstr, errsize, "out of memory");
    } else if (rc != SL_OK) {
        sl__yamlops_err(errstr, errsize, "bad JSON path '%s' in %s: empty segment",
                        path ? path : "", what);
    }
    return rc == SL_OK;
}

sl_yamlop *sl__yamlops_set_new(const char *field, const char *from, const char *literal_json,
                               const char *expr, char *errstr, size_t errsize)
{
    if ((from != NULL) + (literal_json != NULL) + (expr != NULL) != 1) {
        sl__yamlops_err(errstr, errsize, "set takes one of from, value and expr");
        return NULL;
    }
    yop_step *s = NULL;
    sl_yamlop *op = shape_new(from   ? STEP_SET_FROM
                              : expr ? STEP_SET_EXPR
                                     : STEP_SET_VALUE,
                              &s, errstr, errsize);
    if (!op) {
        return NULL;
    }
    bool ok = shape_path(&s->to, field, "set.field", errstr, errsize);
    if (ok && from) {
        ok = shape_path(&s->from, from, "set.from", errstr, errsize);
    } else if (ok && expr) {
        ok = (s->expr = expr_new(expr, errstr, errsize)) != NULL;
    } else if (ok) {
        json_error_t jerr;
        s->literal = json_loads(literal_json, JSON_DECODE_ANY, &jerr);
        if (!s->literal) {
            sl__yamlops_err(errstr, errsize, "set.value is not JSON: %s", jerr.text);
            ok = false;
        }
    }
    if (!ok) {
        sl__yamlops_destroy(op);
        return NULL;
    }
    return op;
}

sl_yamlop *sl__yamlops_rename_new(const char *from, const char *to, char *errstr, size_t errsize)
{
    yop_step *s = NULL;
    sl_yamlop *op = shape_new(STEP_RENAME, &s, errstr, errsize);
    if (op && (!shape_path(&s->from, from, "rename.from", errstr, errsize) ||
               !shape_path(&s->to, to, "rename.to", errstr, errsize))) {
        sl__yamlops_destroy(op);
        return NULL;
    }
    return op;
}

sl_yamlop *sl__yamlops_drop_new(const char *const *paths, size_t npaths, bool keep, char *errstr,
                                size_t errsize)
{
    if (npaths == 0) {
        sl__yamlops_err(errstr, errsize, "%s needs at least one field", keep ? "keep" : "drop");
        return NULL;
    }
    yop_step *s = NULL;
    sl_yamlop *op = shape_new(keep ? STEP_KEEP : STEP_DROP, &s, errstr, errsize);
    if (op && !(s->paths = calloc(npaths, sizeof(*s->paths)))) {
        sl__yamlops_err(errstr, errsize, "out of memory");
        sl__yamlops_destroy(op);
        return NULL;
    }
    for (size_t i = 0; op && i < npaths; i++) {
        s->npaths = i + 1;
        if (!shape_path(&s->paths[i], paths[i], keep ? "keep" : "drop", errstr, errsize)) {
            sl__yamlops_destroy(op);
            return NULL;
        }
    }
    return op;
}

bool sl__yamlops_shape_can_fuse(const sl_yamlop *op)
{
    return op && (op->kind == YOP_SHAPE || op->kind == YOP_PARSE);
}

int sl__yamlops_shape_fuse(sl_yamlop *op, sl_yamlop *next)
{
    if (!op->shape && !(op->shape = calloc(1, sizeof(*op->shape)))) {
        return SL_ERR_NOMEM;
    }
    struct yop_shape *a = op->shape, *b = next->shape;
    yop_step *steps = realloc(a->steps, (a->n + b->n) * sizeof(*steps));
    if (!steps) {
        return SL_ERR_NOMEM;
    }
    memcpy(steps + a->n, b->steps, b->n * sizeof(*steps));
    a->steps = steps;
    a->n += b->n;
    b->n = 0;
    sl__yamlops_destroy(next);
    return SL_OK;
}

/* sl_lua_json.c -- json.decode and json.encode for Lua scripts: JSON text straight into Lua
 * tables and back, without an intermediate tree. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "sl_lua.h"

#define JSON_MAX_DEPTH 128

/* ==== Decoding ==== */

typedef struct json_dec {
    lua_State *L;
    const char *s;
    const char *end;
    const char *err;
    int depth;
} json_dec;

static void json_skip_ws(json_dec *d)
{
    while (d->s < d->end && (*d->s == ' ' || *d->s == '\t' || *d->s == '\n' || *d->s == '\r')) {
        d->s++;
    }
}

static bool json_fail(json_dec *d, const char *msg)
{
    d->err = msg;
    return false;
}

static int json_hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v |= c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v |= c - 'A' + 10;
        } else {
            return -1;
        }
    }
    return v;
}

static void json_add_utf8(luaL_Buffer *b, unsigned cp)
{
    if (cp < 0x80) {
        luaL_addchar(b, (char)cp);
    } else if (cp < 0x800) {
        luaL_addchar(b, (char)(0xC0 | (cp >> 6)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        luaL_addchar(b, (char)(0xE0 | (cp >> 12)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        luaL_addchar(b, (char)(0xF0 | (cp >> 18)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        luaL_addchar(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* A string (d->s at its opening quote) pushed onto the stack. */
static bool json_string(json_dec *d)
{
    const char *p = ++d->s;
    while (p < d->end && *p != '"' && *p != '\\') {
        if ((unsigned char)*p < 0x20) {
            return json_fail(d, "control character in a string");
        }
        p++;
    }
    if (p < d->end && *p == '"') { /* no escapes: one copy */
        lua_pushlstring(d->L, d->s, (size_t)(p - d->s));
        d->s = p + 1;
        return true;
    }
    luaL_Buffer b;
    luaL_buffinit(d->L, &b);
    luaL_addlstring(&b, d->s, (size_t)(p - d->s));
    while (p < d->end && *p != '"') {
        if ((unsigned char)*p < 0x20) {
            return json_fail(d, "control character in a string");
        }
        if (*p != '\\') {
            luaL_addchar(&b, *p++);
            continue;
        }
        if (++p >= d->end) {
            break;
        }
        char c = *p++;
        switch (c) {
        case '"':
        case '\\':
        case '/': luaL_addchar(&b, c); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            int cp = d->end - p >= 4 ? json_hex4(p) : -1;
            if (cp < 0) {
                return json_fail(d, "bad \\u escape");
            }
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                int lo = d->end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? json_hex4(p + 2) : -1;
                if (lo < 0xDC00 || lo >= 0xE000) {
                    return json_fail(d, "lone UTF-16 surrogate");
                }
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            json_add_utf8(&b, (unsigned)cp);
            break;
        }
        default: return json_fail(d, "bad escape in a string");
        }
    }
    if (p >= d->end) {
        return json_fail(d, "unterminated string");
    }
    luaL_pushresult(&b);
    d->s = p + 1;
    return true;
}

/* Powers of ten that doubles hold exactly. */
static const double json_pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The number at s without strtod, for the common case: at most 15 significant digits, a
 * fraction perhaps, no exponent. Then m / 10^k with m < 2^53 and 10^k exact is one correctly
 * rounded division, the same double strtod gives (Clinger's fast path). Returns the end of
 * the number, or NULL to leave it to strtod. */
static const char *json_number_fast(const char *s, const char *end, double *out)
{
    const char *p = s;
    bool neg = p < end && *p == '-';
    p += neg;
    const char *start = p;
    uint64_t m = 0;
    int nd = 0, frac = 0;
    while (p < end && *p >= '0' && *p <= '9' && nd < 16) {
        m = m * 10 + (uint64_t)(*p++ - '0');
        nd++;
    }
    if (nd == 0 || (nd > 1 && *start == '0')) {
        return NULL;
    }
    if (p < end && *p == '.') {
        const char *f = ++p;
        while (p < end && *p >= '0' && *p <= '9' && nd < 16) {
            m = m * 10 + (uint64_t)(*p++ - '0');
            nd++;
        }
        frac = (int)(p - f);
        if (frac == 0) {
            return NULL;
        }
    }
    if (nd > 15 || (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
                                *p == '+' || *p == '-'))) {
        return NULL;
    }
    double v = (double)m / json_pow10[frac];
    *out = neg ? -v : v;
    return p;
}

static bool json_number(json_dec *d)
{
    double v;
    const char *fast = json_number_fast(d->s, d->end, &v);
    if (fast) {
        lua_pushnumber(d->L, v);
        d->s = fast;
        return true;
    }
    const char *p = d->s;
    if (p < d->end && *p == '-') {
        p++;
    }
    const char *digits = p;
    while (p < d->end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
                          *p == '+' || *p == '-')) {
        p++;
    }
    char buf[64];
    size_t n = (size_t)(p - d->s);
    if (p == digits || n >= sizeof(buf) || !(*digits >= '0' && *digits <= '9')) {
        return json_fail(d, "bad number");
    }
    memcpy(buf, d->s, n);
    buf[n] = '\0';
    char *endp;
    v = strtod(buf, &endp);
    if (*endp) {
        return json_fail(d, "bad number");
    }
    lua_pushnumber(d->L, v);
    d->s = p;
    return true;
}

static bool json_literal(json_dec *d, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(d->end - d->s) < n || memcmp(d->s, word, n) != 0) {
        return json_fail(d, "unexpected character");
    }
    d->s += n;
    return true;
}

static bool json_value(json_dec *d);

/* How many entries the last object and array at each depth had on this thread: a new table
 * is made that size, so that records of one shape are decoded without growing tables (each
 * growth rehashes the table). */
static _Thread_local uint16_t json_size_hint[2][JSON_MAX_DEPTH + 2];

static bool json_container(json_dec *d, bool object)
{
    if (++d->depth > JSON_MAX_DEPTH || !lua_checkstack(d->L, 4)) {
        return json_fail(d, "nested too deep");
    }
    lua_State *L = d->L;
    char close = object ? '}' : ']';
    d->s++;
    uint16_t *hint = &json_size_hint[object][d->depth];
    lua_createtable(L, object ? 0 : *hint, object ? *hint : 0);
    json_skip_ws(d);
    if (d->s < d->end && *d->s == close) {
        d->s++;
        d->depth--;
        return true;
    }
    for (int i = 1;; i++) {
        json_skip_ws(d);
        if (object) {
            if (d->s >= d->end || *d->s != '"') {
                return json_fail(d, "expected a string key");
            }
            if (!json_string(d)) {
                return false;
            }
            json_skip_ws(d);
            if (d->s >= d->end || *d->s != ':') {
                return json_fail(d, "expected ':'");
            }
            d->s++;
        }
        if (!json_value(d)) {
            return false;
        }
        if (object) {
            lua_rawset(L, -3);
        } else {
            lua_rawseti(L, -2, i);
        }
        json_skip_ws(d);
        if (d->s < d->end && *d->s == ',') {
            d->s++;
            continue;
        }
        if (d->s < d->end && *d->s == close) {
            d->s++;
            d->depth--;
            *hint = (uint16_t)(i < 256 ? i : 256);
            return true;
        }
        return json_fail(d, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool json_value(json_dec *d)
{
    json_skip_ws(d);
    if (d->s >= d->end) {
        return json_fail(d, "unexpected end");
    }
    switch (*d->s) {
    case '{': return json_container(d, true);
    case '[': return json_container(d, false);
    case '"': return json_string(d);
    case 't': lua_pushboolean(d->L, 1); return json_literal(d, "true");
    case 'f': lua_pushboolean(d->L, 0); return json_literal(d, "false");
    case 'n': lua_pushlightuserdata(d->L, NULL); return json_literal(d, "null");
    default: return json_number(d);
    }
}

int sl__lua_json_decode_to(lua_State *L, const char *s, size_t len, const char **err)
{
    json_dec d = {.L = L, .s = s, .end = s + len};
    int top = lua_gettop(L);
    bool ok = json_value(&d);
    if (ok) {
        json_skip_ws(&d);
        if (d.s != d.end) {
            ok = json_fail(&d, "text after the value");
        }
    }
    if (!ok) {
        lua_settop(L, top);
        *err = d.err;
        return 0;
    }
    lua_settop(L, top + 1);
    return 1;
}

/* json.decode(s): the value, or nil and a message. */
static int json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *err;
    if (sl__lua_json_decode_to(L, s, len, &err)) {
        return 1;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "json.decode: %s", err);
    return 2;
}

/* ==== Encoding ==== */

/* The text being encoded: in the caller's stack buffer until it outgrows it. */
typedef struct json_buf {
    char *p;
    size_t n;
    size_t cap;
    bool heap; /* p was malloc'ed */
    const char *err;
} json_buf;

/* Makes room for n more bytes. */
static bool jb_grow(json_buf *b, size_t n)
{
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->n + n) {
        cap *= 2;
    }
    char *q = b->heap ? realloc(b->p, cap) : malloc(cap);
    if (!q) {
        b->err = "out of memory";
        return false;
    }
    if (!b->heap && b->n) {
        memcpy(q, b->p, b->n);
    }
    b->p = q;
    b->cap = cap;
    b->heap = true;
    return true;
}

static inline bool jb_add(json_buf *b, const char *s, size_t n)
{
    if (b->n + n > b->cap && !jb_grow(b, n)) {
        return false;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

static bool jb_str(json_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!jb_add(b, "\"", 1)) {
        return false;
    }
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        if (!jb_add(b, s + run, i - run)) {
            return false;
        }
        char esc[6] = {'\\', (char)c, 0};
        size_t k = 2;
        switch (c) {
        case '"':
        case '\\': break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            k = 6;
        }
        if (!jb_add(b, esc, k)) {
            return false;
        }
        run = i + 1;
    }
    return jb_add(b, s + run, n - run) && jb_add(b, "\"", 1);
}

/* Writes v's decimal digits ending at end; returns where they start. */
static char *json_u64_digits(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* v as the fewest digits that read back as v: integers as such; other numbers as a plain
 * decimal m / 10^k with the fewest fraction digits k when m has at most 15 digits (m and
 * 10^k are exact doubles, so the text reads back as the division m / 10^k, which is
 * checked), else the shortest of %.15g, %.16g and %.17g that reads back. Without printf in
 * the common cases: it was most of json.encode's time. */
static bool jb_num(json_buf *b, double v)
{
    char buf[48];
    char *end = buf + sizeof(buf), *p;
    if (!isfinite(v)) {
        b->err = "cannot encode NaN or infinity";
        return false;
    }
    double a = fabs(v);
    if (v == floor(v) && a < 9.0e15) {
        p = json_u64_digits(end, (uint64_t)a);
        if (v < 0) {
            *--p = '-';
        }
        return jb_add(b, p, (size_t)(end - p));
    }
    for (int k = 1; k <= 15 && a < 1e15; k++) {
        double m = floor(a * json_pow10[k] + 0.5);
        if (m >= 1e15) {
            break;
        }
        if (m / json_pow10[k] == a) {
            p = json_u64_digits(end, (uint64_t)m);
            while (end - p <= k) {
                *--p = '0'; /* 0.05: m = 5, k = 2 */
            }
            char *point = end - k;
            memmove(p - 1, p, (size_t)(point - p));
            p--;
            point[-1] = '.';
            if (v < 0) {
                *--p = '-';
            }
            return jb_add(b, p, (size_t)(end - p));
        }
    }
    int k = 0;
    for (int prec = 15; prec <= 17; prec++) {
        k = snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    return jb_add(b, buf, (size_t)k);
}

/* The length of the table at idx as an array (keys 1..n), or -1 when it is an object. */
static long json_array_len(lua_State *L, int idx)
{
    long n = 0;
    double max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER) {
            lua_pop(L, 1);
            return -1;
        }
        double k = lua_tonumber(L, -1);
        if (k < 1 || k != floor(k)) {
            lua_pop(L, 1);
            return -1;
        }
        max = k > max ? k : max;
        n++;
    }
    return n > 0 && max == (double)n ? n : -1;
}

static bool jb_value(json_buf *b, lua_State *L, int idx, int depth)
{
    size_t len;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: return jb_add(b, "null", 4);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            return jb_add(b, "null", 4);
        }
        break;
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? jb_add(b, "true", 4) : jb_add(b, "false", 5);
    case LUA_TNUMBER: return jb_num(b, lua_tonumber(L, idx));
    case LUA_TSTRING: s = lua_tolstring(L, idx, &len); return jb_str(b, s, len);
    case LUA_TTABLE: {
        if (depth > JSON_MAX_DEPTH || !lua_checkstack(L, 4)) {
            b->err = "nested too deep (a table that contains itself?)";
            return false;
        }
        long n = json_array_len(L, idx);
        if (n >= 0) {
            if (!jb_add(b, "[", 1)) {
                return false;
            }
            for (long i = 1; i <= n; i++) {
                lua_rawgeti(L, idx, (int)i);
                bool ok = (i == 1 || jb_add(b, ",", 1)) && jb_value(b, L, lua_gettop(L), depth + 1);
                lua_pop(L, 1);
                if (!ok) {
                    return false;
                }
            }
            return jb_add(b, "]", 1);
        }
        if (!jb_add(b, "{", 1)) {
            return false;
        }
        bool first = true;
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            int kt = lua_type(L, -2);
            if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
                lua_pop(L, 2);
                b->err = "cannot encode a table key that is not a string or a number";
                return false;
            }
            lua_pushvalue(L, -2); /* tolstring on a copy: lua_next needs the key as is */
            s = lua_tolstring(L, -1, &len);
            bool ok = (first || jb_add(b, ",", 1)) && jb_str(b, s, len) && jb_add(b, ":", 1) &&
                      jb_value(b, L, lua_gettop(L) - 1, depth + 1);
            lua_pop(L, 2);
            if (!ok) {
                lua_pop(L, 1);
                return false;
            }
            first = false;
        }
        return jb_add(b, "}", 1);
    }
    default: break;
    }
    b->err = "cannot encode a function, userdata or thread";
    return false;
}

void sl__lua_json_encode_at(lua_State *L, int idx)
{
    char stack[1024];
    json_buf b = {.p = stack, .cap = sizeof(stack)};
    if (idx < 0) {
        idx = lua_gettop(L) + idx + 1;
    }
    bool ok = jb_value(&b, L, idx, 0);
    if (ok) {
        lua_pushlstring(L, b.p, b.n);
    }
    if (b.heap) {
        free(b.p);
    }
    if (!ok) {
        luaL_error(L, "json.encode: %s", b.err);
    }
}

/* json.encode(v): the JSON text; raises an error for what JSON cannot hold. */
static int json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    sl__lua_json_encode_at(L, 1);
    return 1;
}

void sl__lua_json_push(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, json_decode);
    lua_setfield(L, -2, "decode");
    lua_pushcfunction(L, json_encode);
    lua_setfield(L, -2, "encode");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
}

/* sl_util.c -- clocks, arenas, hashing, the key table, error names, directories,
 * JSON text, and the toolkit: buffers, booleans, secrets, "did you mean", JSON paths. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "sl_util.h"

/* ==== Clocks ==== */

int64_t sl__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sl__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sl__mono_ms(void)
{
    return sl__mono_ns() / 1000000;
}

void sl__sleep_ms(int64_t ms)
{
    if (ms <= 0) {
        return;
    }
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ==== Arena ==== */

struct sl_arena_chunk {
    sl_arena_chunk *next;
    size_t size, used;
    _Alignas(16) char data[];
};

void sl__arena_init(sl_arena *a, size_t chunk_size)
{
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    a->bytes = 0;
}

void *sl__arena_alloc(sl_arena *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    sl_arena_chunk *c = a->head;
    if (!c || c->size - c->used < n) {
        /* A large allocation gets a chunk of its own, placed behind the current one so
         * that the space left in the current chunk is not wasted. */
        size_t size = n > a->chunk_size / 4 ? n : a->chunk_size;
        sl_arena_chunk *nc = malloc(sizeof(*nc) + size);
        if (!nc) {
            return NULL;
        }
        nc->size = size;
        nc->used = 0;
        a->bytes += size;
        if (c && size != a->chunk_size) {
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            a->head = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void *sl__arena_dup(sl_arena *a, const void *p, size_t n)
{
    void *d = sl__arena_alloc(a, n ? n : 1);
    if (d && n) {
        memcpy(d, p, n);
    }
    return d;
}

void sl__arena_steal(sl_arena *dst, sl_arena *src)
{
    if (!src->head) {
        return;
    }
    /* Keep dst's current chunk in front: it is the one with room. */
    sl_arena_chunk *tail = src->head;
    while (tail->next) {
        tail = tail->next;
    }
    if (dst->head) {
        tail->next = dst->head->next;
        dst->head->next = src->head;
    } else {
        dst->head = src->head;
    }
    dst->bytes += src->bytes;
    src->head = NULL;
    src->bytes = 0;
}

void sl__arena_free(sl_arena *a)
{
    sl_arena_chunk *c = a->head;
    while (c) {
        sl_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->bytes = 0;
}

/* ==== Hashing ====
 * sl__hash: 64-bit multiply-xorshift over 8-byte words, finished with an avalanche step.
 * Fast on short keys (words), the same in every process: for partitioning and fingerprints.
 * sl__hash_seeded: for the buckets of in-memory tables, whose keys may come from the
 * network: wyhash's structure (64x64->128-bit multiplies folded), keyed with three secrets
 * drawn from getrandom() when the process starts, so that keys cannot be chosen to collide
 * (hash flooding) without knowing them. Both are about as fast on short keys. */

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t sl__hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    const uint64_t m = 0x9e3779b97f4a7c15ULL;
    uint64_t h = 0x2545f4914f6cdd1dULL ^ (n * m);
    while (n >= 8) {
        h = (h ^ load64(s)) * m;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t t = 0;
        memcpy(&t, s, n);
        h = (h ^ t) * m;
        h ^= h >> 29;
    }
    return mix64(h);
}

/* The per-process secrets of sl__hash_seeded; set once, before main. */
static uint64_t hash_secret[3] = {0x2d358dccaa6c78a5ULL, 0x8bb84b93962eacc9ULL,
                                  0x4b33a62ed433d4a3ULL};

static inline uint64_t load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* The 128-bit product of a and b, its halves xored. */
static inline uint64_t mum(uint64_t a, uint64_t b)
{
    unsigned __int128 r = (unsigned __int128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

__attribute__((constructor)) static void hash_secret_init(void)
{
    uint64_t k[3];
    if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
        /* No entropy yet (early boot): the clock, the pid and where the stack is. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
        k[1] = (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&ts;
        k[2] = mix64(k[0] ^ mix64(k[1]));
    }
    for (int i = 0; i < 3; i++) {
        /* Odd and with bits in both halves: a multiplier that never becomes 0. */
        hash_secret[i] ^= mix64(k[i] + (uint64_t)i);
        hash_secret[i] |= 0x0000000100000001ULL;
    }
}

uint64_t sl__hash_seeded(const void *p, size_t n)
{
    const unsigned char *s = p;
    const uint64_t s0 = hash_secret[0], s1 = hash_secret[1];
    uint64_t seed = hash_secret[2], a, b;
    if (n <= 16) {
        if (n >= 4) {
            size_t q = (n >> 3) << 2;
            a = load32(s) << 32 | load32(s + q);
            b = load32(s + n - 4) << 32 | load32(s + n - 4 - q);
        } else if (n > 0) {
            a = (uint64_t)s[0] << 16 | (uint64_t)s[n >> 1] << 8 | s[n - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t i = n;
        while (i > 16) {
            seed = mum(load64(s) ^ s1, load64(s + 8) ^ seed);
            s += 16;
            i -= 16;
        }
        a = load64(s + i - 16);
        b = load64(s + i - 8);
    }
    return mum(s0 ^ n, mum(a ^ s1, b ^ seed));
}

/* ==== CRC-32C ==== */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc_table[0][i];
        for (int k = 1; k < 8; k++) {
            c = crc_table[0][c & 0xff] ^ (c >> 8);
            crc_table[k][i] = c;
        }
    }
}

uint32_t sl__crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = buf;
    crc = ~crc;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
#endif
    while (len > 0) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    return ~crc;
}

/* ==== Key table ==== */

void sl__keytab_init(sl_keytab *t)
{
    memset(t, 0, sizeof(*t));
}

static int keytab_grow(sl_keytab *t)
{
    size_t nslots = t->mask ? (t->mask + 1) * 2 : 64;
    uint32_t *slots = calloc(nslots, sizeof(*slots));
    if (!slots) {
        return SL_ERR_NOMEM;
    }
    size_t mask = nslots - 1;
    for (size_t i = 0; i < t->n; i++) {
        sl__slots_put(slots, mask, t->hashes[i], i);
    }
    free(t->slots);
    t->slots = slots;
    t->mask = mask;
    return SL_OK;
}

sl_record *sl__keytab_upsert(sl_keytab *t, const char *key, uint32_t len, uint64_t h, int *added)
{
    /* Load factor at most 1/2: probes stay short. */
    if ((t->n + 1) * 2 > t->mask + 1 && keytab_grow(t) != SL_OK) {
        return NULL;
    }
    size_t s = h & t->mask;
    for (;;) {
        uint32_t idx = t->slots[s];
        if (!idx) {
            break;
        }
        sl_record *r = &t->recs[idx - 1];
        if (t->hashes[idx - 1] == h && r->key_len == len && memcmp(r->key, key, len) == 0) {
            *added = 0;
            return r;
        }
        s = (s + 1) & t->mask;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        sl_record *recs = realloc(t->recs, cap * sizeof(*recs));
        if (!recs) {
            return NULL;
        }
        t->recs = recs;
        uint64_t *hashes = realloc(t->hashes, cap * sizeof(*hashes));
        if (!hashes) {
            return NULL;
        }
        t->hashes = hashes;
        t->cap = cap;
    }
    size_t i = t->n++;
    t->slots[s] = (uint32_t)(i + 1);
    t->hashes[i] = h;
    memset(&t->recs[i], 0, sizeof(t->recs[i]));
    *added = 1;
    return &t->recs[i];
}

void sl__keytab_free(sl_keytab *t)
{
    free(t->slots);
    free(t->recs);
    free(t->hashes);
    memset(t, 0, sizeof(*t));
}

/* ==== Records ==== */

int sl__record_copy(sl_arena *a, sl_record *dst, const sl_record *src)
{
    *dst = *src;
    dst->key = src->key ? sl__arena_dup(a, src->key, src->key_len) : NULL;
    dst->value = src->value ? sl__arena_dup(a, src->value, src->value_len) : NULL;
    if ((src->key && !dst->key) || (src->value && !dst->value)) {
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

int sl__recvec_push(sl_recvec *v, const sl_record *r)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        sl_record *recs = realloc(v->recs, cap * sizeof(*recs));
        if (!recs) {
            return SL_ERR_NOMEM;
        }
        v->recs = recs;
        v->cap = cap;
    }
    v->recs[v->n++] = *r;
    return SL_OK;
}

void sl__strlcpy(char *dst, const char *src, size_t size)
{
    if (size == 0) {
        return;
    }
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ==== Errors ==== */

const char *sl_err2str(int err)
{
    switch (err) {
    case SL_OK: return "success";
    case SL_ERR_NOMEM: return "out of memory";
    case SL_ERR_INVAL: return "invalid argument";
    case SL_ERR_IO: return "I/O error";
    case SL_ERR_RETRY: return "temporary failure, retrying";
    case SL_ERR_STATE: return "not allowed in this state";
    case SL_ERR_NOTFOUND: return "not found";
    case SL_ERR_RECORD: return "record could not be processed";
    case SL_ERR_TOOBIG: return "record too large";
    case SL_ERR_FATAL: return "fatal error";
    case SL_ERR_FENCED: return "input held elsewhere: resuming where the sinks are";
    case SL_ERR_TIMEOUT: return "timed out";
    default: return "unknown error";
    }
}

/* ==== Directories ==== */

int sl__mkdirs(const char *dir, mode_t mode)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0) {
        errno = ENOENT;
        return -1;
    }
    if (len >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        if (mkdir(path, mode) != 0 && errno != EEXIST) {
            return -1;
        }
        *p = '/';
    }
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        return -1;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int sl__fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* ==== JSON text ==== */

size_t sl__utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        return 1;
    }
    /* The ranges of the second byte exclude overlong forms, surrogates and > U+10FFFF. */
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < len; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
    }
    return len;
}

bool sl__utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t l = sl__utf8_seq((const unsigned char *)s + i, n - i);
        if (l == 0) {
            return false;
        }
        i += l;
    }
    return true;
}

void sl__json_text(sl_json_put_fn put, void *out, const char *s, size_t n)
{
    put(out, "\"", 1);
    size_t run = 0; /* bytes before i copied as they are, pending */
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t l = sl__utf8_seq((const unsigned char *)s + i, n - i);
        const char *esc = NULL;
        char u[8];
        if (l == 0) {
            esc = "\\ufffd";
            l = 1;
        } else if (l == 1) {
            switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    snprintf(u, sizeof(u), "\\u%04x", c);
                    esc = u;
                }
            }
        }
        if (esc) {
            if (run) {
                put(out, s + i - run, run);
                run = 0;
            }
            put(out, esc, strlen(esc));
        } else {
            run += l;
        }
        i += l;
    }
    if (run) {
        put(out, s + n - run, run);
    }
    put(out, "\"", 1);
}

static void json_base64(sl_json_put_fn put, void *out, const unsigned char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    put(out, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)s[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= s[i + 2];
        }
        char o[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        put(out, o, 4);
    }
    put(out, "\"", 1);
}

void sl__json_bytes(sl_json_put_fn put, void *out, const char *name, const char *s, size_t n)
{
    size_t name_len = strlen(name);
    put(out, "\"", 1);
    put(out, name, name_len);
    put(out, "\":", 2);
    if (!s) {
        put(out, "null", 4);
    } else if (sl__utf8_valid(s, n)) {
        sl__json_text(put, out, s, n);
    } else {
        json_base64(put, out, (const unsigned char *)s, n);
        put(out, ",\"", 2);
        put(out, name, name_len);
        put(out, "_encoding\":\"base64\"", 19);
    }
}

/* ==== Growable buffer ==== */

int sl__buf_reserve(sl_buf *b, size_t n)
{
    if (b->failed) {
        return SL_ERR_NOMEM;
    }
    if (n > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return SL_ERR_NOMEM;
    }
    if (b->len + n + 1 <= b->cap) {
        return SL_OK;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return SL_ERR_NOMEM;
    }
    b->p = p;
    b->cap = cap;
    return SL_OK;
}

int sl__buf_append(sl_buf *b, const void *s, size_t n)
{
    if (sl__buf_reserve(b, n) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    if (n) {
        memcpy(b->p + b->len, s, n);
    }
    b->len += n;
    b->p[b->len] = '\0';
    return SL_OK;
}

int sl__buf_puts(sl_buf *b, const char *s)
{
    return sl__buf_append(b, s, strlen(s));
}

int sl__buf_printf(sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return SL_ERR_INVAL;
    }
    if (sl__buf_reserve(b, (size_t)n) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return SL_OK;
}

void sl__buf_put(void *out, const void *s, size_t n)
{
    sl__buf_append(out, s, n);
}

void sl__buf_reset(sl_buf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->p) {
        b->p[0] = '\0';
    }
}

char *sl__buf_steal(sl_buf *b)
{
    char *p = NULL;
    if (!b->failed && sl__buf_reserve(b, 0) == SL_OK) {
        p = b->p;
        p[b->len] = '\0';
        b->p = NULL;
    }
    sl__buf_free(b);
    return p;
}

void sl__buf_free(sl_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ==== Booleans ==== */

int sl__parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; s && i < SL_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return SL_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return SL_OK;
        }
    }
    return SL_ERR_INVAL;
}

/* ==== Secrets ==== */

void sl__scrub(char *msg, size_t size, const char *secret)
{
    size_t sl = secret ? strlen(secret) : 0;
    if (sl == 0 || size == 0) {
        return;
    }
    char *from = msg, *at;
    while ((at = strstr(from, secret)) != NULL) {
        size_t tail = strlen(at + sl);
        if (sl >= 3) {
            memcpy(at, "***", 3);
            memmove(at + 3, at + sl, tail + 1);
        } else {
            /* Grows by up to 2 bytes; the end of msg is cut if it does not fit. */
            size_t pos = (size_t)(at - msg);
            if (pos + 3 >= size) {
                at[0] = '\0';
                return;
            }
            size_t keep = SL_MIN(tail, size - pos - 4);
            memmove(at + 3, at + sl, keep);
            memcpy(at, "***", 3);
            at[3 + keep] = '\0';
        }
        from = at + 3; /* a secret made of '*' is not found again in its own mask */
    }
}

void sl__scrub_options(char *msg, size_t size, const sl_option *t1, const sl_option *t2,
                       const sl_options *o)
{
    const sl_option *tables[2] = {t1, t2};
    for (int t = 0; t < 2; t++) {
        for (const sl_option *opt = tables[t]; opt && opt->name; opt++) {
            if (opt->flags & SL_OPT_SECRET) {
                sl__scrub(msg, size, sl_options_get(o, opt->name));
            }
        }
    }
}

/* ==== Did you mean ==== */

size_t sl__edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) {
        return 64;
    }
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            if (up + 1 < best) {
                best = up + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *sl__closest(const char *s, const char *const *list)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; list && list[i]; i++) {
        size_t d = sl__edit_distance(s, list[i]);
        if (d < best_d && d < strlen(list[i])) {
            best = list[i];
            best_d = d;
        }
    }
    return best;
}

/* ==== JSON paths ==== */

int sl__jpath_parse(sl_jpath *p, const char *path)
{
    p->seg = NULL;
    p->depth = 0;
    if (!path || !*path) {
        return SL_ERR_INVAL;
    }
    size_t n = 1;
    for (const char *c = path; *c; c++) {
        n += *c == '.';
    }
    p->seg = calloc(n, sizeof(char *));
    if (!p->seg) {
        return SL_ERR_NOMEM;
    }
    int rc = SL_OK;
    const char *start = path;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        const char *end = strchr(start, '.');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        if (len == 0) {
            rc = SL_ERR_INVAL;
        } else if (!(p->seg[i] = strndup(start, len))) {
            rc = SL_ERR_NOMEM;
        } else {
            p->depth = i + 1;
        }
        start = end ? end + 1 : start + len;
    }
    if (rc != SL_OK) {
        sl__jpath_free(p);
    }
    return rc;
}

json_t *sl__jpath_get(const sl_jpath *p, json_t *root)
{
    json_t *cur = root;
    for (size_t i = 0; cur && i < p->depth; i++) {
        const char *seg = p->seg[i];
        if (json_is_object(cur)) {
            cur = json_object_get(cur, seg);
        } else if (json_is_array(cur)) {
            char *end;
            errno = 0;
            unsigned long idx = strtoul(seg, &end, 10);
            if (!isdigit((unsigned char)seg[0]) || *end || errno) {
                return NULL;
            }
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
    }
    return cur;
}

const char *sl__jpath_text(const sl_jpath *p, char *buf, size_t size)
{
    size_t off = 0;
    if (size) {
        buf[0] = '\0';
    }
    for (size_t i = 0; i < p->depth && off < size; i++) {
        int n = snprintf(buf + off, size - off, "%s%s", i ? "." : "", p->seg[i]);
        if (n < 0) {
            break;
        }
        off += (size_t)n;
    }
    return buf;
}

void sl__jpath_free(sl_jpath *p)
{
    for (size_t i = 0; i < p->depth; i++) {
        free(p->seg[i]);
    }
    free(p->seg);
    p->seg = NULL;
    p->depth = 0;
}

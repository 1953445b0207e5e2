/* sl_util.h -- small internals shared by the engine (and the connectors that include it):
 * clocks, arenas, hashing, CRC-32C, directories, JSON text, and the toolkit that everything
 * uses instead of writing its own: a growable buffer, a boolean parser, a secret scrubber,
 * "did you mean", a JSON path walker and the copy of a record into an arena. */
#ifndef SL_UTIL_H
#define SL_UTIL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "sluice.h"

#define SL_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ==== Clocks ==== */

/* The latest batch time a checkpoint or a client may name: 9999-12-31T23:59:59.999Z in ms.
 * Batch times are 0..SL_TIME_MAX_MS, so sums and differences of two of them cannot overflow. */
#define SL_TIME_MAX_MS INT64_C(253402300799999)

/* Wall clock in ms since the epoch (batch times are wall-clock times, as in Spark). */
int64_t sl__now_ms(void);
/* Monotonic clock in ns, for measuring durations. */
int64_t sl__mono_ns(void);
/* Monotonic clock in ms, for deadlines and intervals. */
int64_t sl__mono_ms(void);
/* Sleeps ms milliseconds (restarting after signals). */
void sl__sleep_ms(int64_t ms);

/* ==== Arena ====
 * A chain of chunks; allocations are freed all at once. Not thread-safe: one arena per
 * task or partition. */

typedef struct sl_arena_chunk sl_arena_chunk;

typedef struct sl_arena {
    sl_arena_chunk *head;
    size_t chunk_size; /* size of ordinary chunks */
    size_t bytes;      /* bytes held in chunks */
} sl_arena;

void sl__arena_init(sl_arena *a, size_t chunk_size);
/* 8-byte aligned memory, NULL when out of memory. */
void *sl__arena_alloc(sl_arena *a, size_t n);
/* Copies n bytes; NULL when out of memory. n == 0 returns a valid non-NULL pointer. */
void *sl__arena_dup(sl_arena *a, const void *p, size_t n);
/* Moves every chunk of src to dst; src is left empty. */
void sl__arena_steal(sl_arena *dst, sl_arena *src);
void sl__arena_free(sl_arena *a);

/* ==== Hashing ==== */

/* The same value in every process and version: for what must be reproducible across
 * restarts (the partition of a key, fingerprints). Not for tables of keys from outside. */
uint64_t sl__hash(const void *p, size_t n);
/* Keyed with a per-process random secret (set before main): for the buckets of in-memory
 * hash tables, so that keys sent over the network cannot be chosen to collide. Differs
 * between processes: never for partitioning, never stored. @locality any thread */
uint64_t sl__hash_seeded(const void *p, size_t n);

/* Maps a hash onto [0, n) using its high bits (the low ones index hash tables). */
static inline size_t sl__hash_bucket(uint64_t h, size_t n)
{
    return (size_t)(((unsigned __int128)(h >> 32 | h << 32) * n) >> 64);
}

/* ==== CRC-32C ==== */

/* CRC-32C (Castagnoli), table-driven, slicing by 8: crc is 0 for a fresh checksum, or the
 * result of a previous call to continue one. Used by the WAL, checkpoints and state files. */
uint32_t sl__crc32c(uint32_t crc, const void *buf, size_t len);

/* ==== Key table ====
 * An open-addressing table from key bytes to records, used to combine by key. Records
 * live in one array, in insertion order, so that the array can become a partition. */

/* Its slots, like those of the keyed state's table (sl_ktable.c): open addressing with
 * linear probing, each slot 0 (empty) or an entry's index + 1, mask the slot count - 1. */

/* Puts index + 1 in the first empty slot from h's. There must be an empty slot. */
static inline void sl__slots_put(uint32_t *slots, size_t mask, uint64_t h, size_t index)
{
    size_t s = h & mask;
    while (slots[s]) {
        s = (s + 1) & mask;
    }
    slots[s] = (uint32_t)(index + 1);
}

typedef struct sl_keytab {
    uint32_t *slots; /* index + 1 into recs; 0 = empty */
    size_t mask;     /* slots - 1 */
    sl_record *recs;
    uint64_t *hashes;
    size_t n, cap;
} sl_keytab;

void sl__keytab_init(sl_keytab *t);
/* Finds the key or adds a zeroed record for it (*added = 1). NULL when out of memory.
 * The returned pointer is valid until the next insertion. */
sl_record *sl__keytab_upsert(sl_keytab *t, const char *key, uint32_t len, uint64_t h, int *added);
/* Frees the table; the record array is freed too unless it was taken. */
void sl__keytab_free(sl_keytab *t);

/* ==== Records ==== */

/* Copies src into *dst with its key and value bytes duplicated into a: a NULL key or value
 * stays NULL (no key), one that is present stays present, even when empty (a Kafka message
 * with an empty key keeps it). Everything else (typed value, ts, meta pointer) is copied
 * as it is: the caller copies meta when it must. Returns SL_OK or SL_ERR_NOMEM. */
int sl__record_copy(sl_arena *a, sl_record *dst, const sl_record *src);

/* ==== Records vectors ==== */

typedef struct sl_recvec {
    sl_record *recs;
    size_t n, cap;
} sl_recvec;

/* Appends r; SL_OK or SL_ERR_NOMEM. */
int sl__recvec_push(sl_recvec *v, const sl_record *r);

/* ==== Logging ==== */

/* Writes one log line on stderr, in the format of sl_set_log_format. component: the source,
 * sink or operator the line is about, NULL for the engine ("sluice" in JSON lines, no
 * prefix in text ones); fields: NULL or the text of a JSON object with the line's figures
 * (JSON lines only: text lines carry them in the message). @locality any thread */
void sl__vlog(sl_log_level level, const char *component, const char *fields, const char *fmt,
              va_list ap);
int sl__log_enabled(sl_log_level level);
/* Logs with fields (see sl__vlog), for the engine. */
void sl__log_fields(sl_log_level level, const char *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Logs a line about component (an operator, an output): the JSON lines' "component"; the
 * text lines keep the message as it is (it names the component already). */
void sl__log_as(sl_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The pipeline that JSON lines name (the context's app name); "sluice" until one is set. */
void sl__log_set_pipeline(const char *name);
/* Parses "text" or "json"; false for anything else. */
bool sl__log_format_parse(const char *s, sl_log_format *format);

/* Formats into a fixed buffer, always terminated. */
void sl__strlcpy(char *dst, const char *src, size_t size);

/* ==== Directories ==== */

/* Creates dir and its missing parents with mode (before the umask), as mkdir -p does.
 * Returns 0 when dir is a directory, or -1 with errno set (ENOTDIR when it is something
 * else). */
int sl__mkdirs(const char *dir, mode_t mode);
/* fsyncs a directory so that the names in it (a file created, renamed) are durable.
 * Returns 0 or -1 with errno set. */
int sl__fsync_dir(const char *dir);

/* ==== JSON text ====
 * For JSON lines that never lose bytes (dead letters, the file sink's json format): bytes
 * that are valid UTF-8 are written as a JSON string, other bytes in base64. Writers append
 * through a callback, so that the same code fills a buffer or a FILE. */

/* Appends n bytes of JSON text to out. */
typedef void (*sl_json_put_fn)(void *out, const void *s, size_t n);

/* The length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), 0 when it is not one. n >= 1. */
size_t sl__utf8_seq(const unsigned char *s, size_t n);
/* True when the n bytes at s are valid UTF-8. */
bool sl__utf8_valid(const char *s, size_t n);
/* Writes n bytes as a JSON string, "..." with escapes; a byte that is not part of valid
 * UTF-8 becomes U+FFFD (for names and messages; sl__json_bytes keeps every byte). */
void sl__json_text(sl_json_put_fn put, void *out, const char *s, size_t n);
/* Writes "name":<bytes>: a JSON string when they are valid UTF-8, else their base64 followed
 * by ,"name_encoding":"base64"; null when s is NULL. */
void sl__json_bytes(sl_json_put_fn put, void *out, const char *name, const char *s, size_t n);

/* ==== Growable buffer ====
 * Bytes that grow by doubling and stay NUL-terminated. An allocation failure latches:
 * later appends do nothing, b->failed stays set until sl__buf_reset, so that a writer
 * checks once at the end. A zeroed sl_buf is empty and valid. */

typedef struct sl_buf {
    char *p;     /* NULL until the first append */
    size_t len;  /* bytes held, not counting the NUL */
    size_t cap;  /* bytes allocated */
    bool failed; /* an append could not grow the buffer */
} sl_buf;

/* Makes room for n more bytes (and the NUL). SL_OK or SL_ERR_NOMEM (failed set). */
int sl__buf_reserve(sl_buf *b, size_t n);
/* Appends n bytes. SL_OK or SL_ERR_NOMEM. */
int sl__buf_append(sl_buf *b, const void *s, size_t n);
int sl__buf_puts(sl_buf *b, const char *s);
int sl__buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The sl_json_put_fn of a buffer: out is an sl_buf. */
void sl__buf_put(void *out, const void *s, size_t n);
/* Empties the buffer (keeps its memory) and clears failed. */
void sl__buf_reset(sl_buf *b);
/* The bytes, NUL-terminated, now owned by the caller (free); the buffer is left empty.
 * NULL when out of memory or after a failed append. */
char *sl__buf_steal(sl_buf *b);
void sl__buf_free(sl_buf *b);

/* ==== Booleans ====
 * The one parser of yes/no words, for options, the pipeline file and the environment:
 * true, yes, on, 1 and false, no, off, 0, in any case. */

#define SL_BOOL_WORDS "true, yes, on, 1 or false, no, off, 0"

/* SL_OK with *out set, or SL_ERR_INVAL (*out untouched). */
int sl__parse_bool(const char *s, bool *out);

/* ==== Secrets ==== */

/* Replaces every occurrence of secret in msg (size bytes, NUL-terminated) by "***"; the end
 * of msg is cut when a short secret makes it longer than size. Nothing for a NULL or empty
 * secret. */
void sl__scrub(char *msg, size_t size, const char *secret);
/* Scrubs from msg the values in o of every option flagged SL_OPT_SECRET in t1 or t2 (either
 * may be NULL). */
void sl__scrub_options(char *msg, size_t size, const sl_option *t1, const sl_option *t2,
                       const sl_options *o);

/* ==== Did you mean ==== */

/* Levenshtein distance of a and b; strings longer than 63 bytes are 64 away from all. */
size_t sl__edit_distance(const char *a, const char *b);
/* The word of the NULL-terminated list closest to s when it is close (fewer than 3 edits,
 * and fewer than its length), else NULL. For "unknown key 'x' (did you mean 'y'?)". */
const char *sl__closest(const char *s, const char *const *list);

/* ==== JSON paths ====
 * A dotted path into JSON ("a.b.0"): object members by name, array elements by index. */

struct json_t; /* jansson */

typedef struct sl_jpath {
    char **seg; /* depth segments, each NUL-terminated */
    size_t depth;
} sl_jpath;

/* Splits path into p. SL_OK, SL_ERR_INVAL for an empty path or an empty segment ("a..b"),
 * SL_ERR_NOMEM. p is valid for sl__jpath_free in every case. */
int sl__jpath_parse(sl_jpath *p, const char *path);
/* The value at p in root (borrowed from root), NULL when absent. */
struct json_t *sl__jpath_get(const sl_jpath *p, struct json_t *root);
/* Writes the path back, dotted, into buf. */
const char *sl__jpath_text(const sl_jpath *p, char *buf, size_t size);
void sl__jpath_free(sl_jpath *p);

#endif

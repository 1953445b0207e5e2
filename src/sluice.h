/* sluice.h -- the one public header of libsluice, a micro-batch stream processor.
 *
 * The model is Spark Streaming's DStream: a live stream is cut into batches every batch
 * interval; each batch runs through a graph of operators; output operations push the
 * results of every batch to sinks.
 *
 *     sl_context *ctx = sl_context_new(&conf, errstr, sizeof(errstr));
 *     sl_stream *lines = sl_socket_text_stream(ctx, "localhost", 9999);
 *     sl_stream *words = sl_stream_flat_map(lines, split_words, NULL);
 *     sl_stream *pairs = sl_stream_map(words, to_pair, NULL);
 *     sl_stream *counts = sl_stream_reduce_by_key(pairs, sl_reduce_sum, NULL, 0);
 *     sl_stream_print(counts, 10);
 *     sl_context_start(ctx);
 *     sl_context_await_termination(ctx);
 *     sl_context_destroy(ctx);
 *
 * Ownership: streams belong to their context and are freed with it. Records handed to a
 * user function are borrowed for the call. Every _new has a _destroy that accepts NULL.
 * Errors are SL_OK (0) or a negative SL_ERR_*; sl_err2str() names them.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Everything declared here is the library's public API: the only symbols libsluice.so
 * exports (it is built with -fvisibility=hidden; internal functions carry sl__). */
#pragma GCC visibility push(default)

#define SLUICE_VERSION "0.1.0"

/* ==== Errors ==== */

typedef enum sl_err {
    SL_OK = 0,
    SL_ERR_NOMEM = -1,    /* out of memory */
    SL_ERR_INVAL = -2,    /* invalid argument or configuration */
    SL_ERR_IO = -3,       /* I/O or system call failed */
    SL_ERR_RETRY = -4,    /* transient failure: the engine retries, nothing is lost */
    SL_ERR_STATE = -5,    /* call not allowed in the current state */
    SL_ERR_NOTFOUND = -6, /* no such stream, connector or option */
    SL_ERR_RECORD = -7,   /* a record could not be processed (counted and reported) */
    SL_ERR_TOOBIG = -8,   /* a record exceeded a size limit */
    SL_ERR_FATAL = -9,    /* unrecoverable: the pipeline stops */
    SL_ERR_FENCED = -10,  /* a sink holds this input elsewhere (another instance wrote it, or
                           * this one lost the partition): the batch is dropped and the
                           * source resumes where the sinks are */
    SL_ERR_TIMEOUT = -11, /* a graceful stop did not finish within the stop timeout: the
                           * unfinished batches stay pending */
} sl_err;

/* Returns a static string naming the error code. Never NULL. */
const char *sl_err2str(int err);

/* ==== Records ==== */

typedef enum sl_num_type {
    SL_NUM_NONE = 0, /* no typed value */
    SL_NUM_INT = 1,
    SL_NUM_DOUBLE = 2,
} sl_num_type;

/* A Kafka message header. Names may repeat within a message; order is the producer's. */
typedef struct sl_header {
    const char *name;   /* NUL-terminated */
    const char *value;  /* value_len bytes, not NUL-terminated; NULL for a null value */
    uint32_t value_len; /* 0 for a null or an empty value */
} sl_header;

/* Where a record came from. Sources that have no such notion leave it NULL. */
typedef struct sl_record_meta {
    const char *source; /* input name */
    const char *topic;  /* Kafka topic, file name or peer address; may be NULL */
    int32_t partition;  /* -1 when not applicable */
    int64_t offset;     /* offset in partition, or line number in a file; -1 if none */
    /* Kafka message headers, in the message's order, from kafka sources with the option
     * headers: true (finding them costs a parse per message); NULL and 0 when there are none.
     * Like the rest of the meta they live as long as the batch's data. Zero these fields
     * when filling a meta by hand. */
    const sl_header *headers;
    uint32_t nheaders;
    /* > 0: the record is a session window [ts - window_ms, ts) of its own
     * (sl_batch_output_when); 0: the stream's window length. */
    int64_t window_ms;
} sl_record_meta;

/* A record: key and value bytes, a typed value for aggregation and a timestamp (ms).
 * Bytes are not NUL-terminated and may contain NUL. A record is a value type: copying the
 * struct copies the references, not the bytes. */
typedef struct sl_record {
    const char *key;
    const char *value;
    uint32_t key_len;
    uint32_t value_len;
    uint8_t num_type; /* sl_num_type */
    union {
        int64_t i;
        double d;
    } num;
    int64_t ts; /* event or ingestion time, ms since the epoch */
    const sl_record_meta *meta;
} sl_record;

/* The record's header called name (the last one when the name repeats: Kafka's
 * lastHeader), or NULL when the record has no such header. A header whose value is null is
 * returned with value NULL. Borrowed from the record. */
const sl_header *sl_record_header(const sl_record *r, const char *name);

/* Typed-value helpers. sl_record_num() converts to double whatever the type (0 if none). */
double sl_record_num(const sl_record *r);
/* True when r is a tombstone: neither a typed value nor a value (NULL: Kafka's tombstone; an
 * empty value is a value), which says that its key
 * has no value any more (reduce_by_key_and_window without an inverse emits one for a key
 * that left the window). Sinks that keep a value per key clear it: PostgreSQL writes NULL
 * for `num`, Redis deletes the key, field or member. */
bool sl_record_is_tombstone(const sl_record *r);
void sl_record_set_int(sl_record *r, int64_t v);
void sl_record_set_double(sl_record *r, double v);

/* ==== Emitting records from user functions ==== */

/* An emitter receives the records an operator function produces. The bytes a record
 * points to must stay valid for the batch: point into the input record's bytes, or into
 * memory from sl_emitter_alloc()/sl_emitter_copy(), which live as long as the batch's
 * data. No other memory may be referenced. */
typedef struct sl_emitter sl_emitter;

/* Hands r on to the next operator. Returns SL_OK or a negative error. */
int sl_emit(sl_emitter *e, const sl_record *r);
/* Memory for bytes of emitted records, freed with the batch. NULL when out of memory. */
void *sl_emitter_alloc(sl_emitter *e, size_t size);
/* Copies size bytes into batch memory and returns the copy. NULL when out of memory. */
const char *sl_emitter_copy(sl_emitter *e, const void *bytes, size_t size);
/* The batch time (ms) that is being computed. */
int64_t sl_emitter_batch_time(const sl_emitter *e);

/* ==== Operator functions ====
 * Functions run on worker threads, several at once: they must be thread-safe. A negative
 * return marks the input record as failed: it is counted, reported with its source
 * coordinates, and processing goes on. */

/* map: *out starts as a copy of *in; change what should change. */
typedef int (*sl_map_fn)(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque);
/* flat_map: emit zero or more records with sl_emit(). */
typedef int (*sl_flat_map_fn)(const sl_record *in, sl_emitter *e, void *opaque);
/* filter: 1 keeps the record, 0 drops it, negative marks it failed. */
typedef int (*sl_filter_fn)(const sl_record *in, void *opaque);
/* reduce: fold r into acc (acc starts as a copy of the first record of its key). Must be
 * associative and commutative. Allocate new bytes with e. */
typedef int (*sl_reduce_fn)(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque);
/* join: build *out from a left and a right record of the same key; right is NULL for an
 * unmatched left record of a left join. *out starts with the key and the left record. */
typedef int (*sl_join_fn)(const sl_record *left, const sl_record *right, sl_record *out,
                          sl_emitter *e, void *opaque);

/* Says why the record the calling function is about to fail (return a negative error) is
 * rejected: the engine adds the reason to its log line ("operator 'parse' rejected a record
 * (no match of the pattern) from ..."). Thread-local; each failed record takes and clears
 * it, so a function that returns SL_OK must not leave one behind. */
void sl_reject_reason(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Built-in reducers over the typed value. They drop the value bytes of the result.
 * Integer inputs stay integer; a double among them makes the result double. */
int sl_reduce_sum(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque);
int sl_reduce_min(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque);
int sl_reduce_max(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque);

/* ==== Datasets (read access, for transform and foreach_batch) ==== */

/* The records of one stream at one batch time, split in partitions. Borrowed. */
typedef struct sl_dataset sl_dataset;

size_t sl_dataset_partitions(const sl_dataset *ds);
/* Returns the records of partition p and stores their count in *n. */
const sl_record *sl_dataset_partition(const sl_dataset *ds, size_t p, size_t *n);
/* Total number of records. */
size_t sl_dataset_count(const sl_dataset *ds);

/* transform: compute a new dataset from a whole dataset. Emit into e (the output has one
 * partition per emitter; e is the only one). */
typedef int (*sl_transform_fn)(const sl_dataset *in, int64_t batch_time, sl_emitter *e,
                               void *opaque);
/* foreach_batch: an output operation called once per batch on the job thread. Return
 * SL_OK, SL_ERR_RETRY to have the engine retry the batch later, or another error: the batch
 * fails and the context stops with that error, leaving the batch pending (with a checkpoint
 * it runs again after a restart). */
typedef int (*sl_foreach_fn)(const sl_dataset *ds, int64_t batch_time, void *opaque);

/* ==== Options ====
 * Connectors are configured with string key/value options, checked against the
 * connector's option table (sluice connectors prints them). */

typedef struct sl_options sl_options;

sl_options *sl_options_new(void);
void sl_options_destroy(sl_options *o);
/* Sets key to value (both copied); a later set of the same key replaces it. */
int sl_options_set(sl_options *o, const char *key, const char *value);
/* Returns the value of key, or NULL. */
const char *sl_options_get(const sl_options *o, const char *key);
size_t sl_options_count(const sl_options *o);
/* The i-th key and value, in order of first set. */
void sl_options_at(const sl_options *o, size_t i, const char **key, const char **value);

typedef enum sl_opt_type {
    SL_OPT_STR,
    SL_OPT_INT,
    SL_OPT_BOOL,
    SL_OPT_DOUBLE,
    SL_OPT_DURATION, /* "250ms", "1s", "5m", "2h": stored as int64 ms */
    SL_OPT_SIZE,     /* "512", "64KiB", "1MiB", "1GiB": stored as int64 bytes */
    SL_OPT_ENUM,     /* one of choices, stored as an int: see sl_option.choices */
    SL_OPT_LIST,     /* a comma-separated list (a YAML sequence), stored as a string */
} sl_opt_type;

#define SL_OPT_REQUIRED 0x1u /* must be given */
#define SL_OPT_SECRET   0x2u /* never printed, logged or shown */
#define SL_OPT_RANGE    0x4u /* a number with a range: min and max are checked */

/* One entry of an option table. Tables end with an entry whose name is NULL. */
typedef struct sl_option {
    const char *name;
    sl_opt_type type;
    const char *def; /* default as a string, NULL for none */
    double min, max; /* numbers, durations and sizes with SL_OPT_RANGE: the inclusive
                      * range (without the flag, none); unused by other types */
    /* ENUM: the names "a|b|c". The field at offset is an int holding the index of the name
     * given (a: 0, b: 1, ...), so a C enum lists its values in the order of the names; -1
     * when the option has neither a value nor a default. */
    const char *choices;
    unsigned flags; /* SL_OPT_* */
    size_t offset;  /* where the parsed value goes in the connector's config */
    const char *doc;
} sl_option;

/* Parses a duration such as "250ms", "1.5s", "5m", "2h" into ms. Returns SL_OK or
 * SL_ERR_INVAL. */
int sl_parse_duration(const char *s, int64_t *ms);
/* Parses a size such as "512", "64KiB", "1MiB", "2GB" into bytes. */
int sl_parse_size(const char *s, int64_t *bytes);

/* ==== Connectors ==== */

#define SL_SOURCE 0x1u
#define SL_SINK   0x2u

typedef struct sl_connector sl_connector;

/* Looks up a connector by its type name and role (SL_SOURCE or SL_SINK): a type such as
 * "file" can be both, with different options. NULL if there is none. */
const sl_connector *sl_connector_find(const char *name, unsigned role);
/* The i-th registered connector, NULL past the end. */
const sl_connector *sl_connector_at(size_t i);
const char *sl_connector_name(const sl_connector *c);
const char *sl_connector_description(const sl_connector *c);
unsigned sl_connector_flags(const sl_connector *c);
/* The option table, terminated by an entry with a NULL name. Engine options common to
 * every source or sink come first (see sl_common_source_options). */
const sl_option *sl_connector_options(const sl_connector *c);
/* Options the engine takes for every source (name, max_record_size, ...) or sink. */
const sl_option *sl_common_source_options(void);
const sl_option *sl_common_sink_options(void);

/* Checks options against a table: unknown keys, types and ranges. Returns SL_OK, or
 * SL_ERR_INVAL with errstr naming the key, the problem and, for unknown keys, the valid
 * ones. The key at fault is stored in *bad_key when bad_key is not NULL. */
int sl_options_check(const sl_option *table, const sl_option *table2, const sl_options *o,
                     char *errstr, size_t errsize, const char **bad_key);

/* ==== Context ==== */

typedef struct sl_context sl_context;
typedef struct sl_stream sl_stream;

typedef enum sl_log_level {
    SL_LOG_ERROR = 0,
    SL_LOG_WARN = 1,
    SL_LOG_INFO = 2,
    SL_LOG_DEBUG = 3,
} sl_log_level;

typedef struct sl_context_conf {
    const char *name;           /* application name; default "sluice" */
    int64_t batch_interval_ms;  /* >= 10 */
    int workers;                /* worker threads; 0 = number of cores */
    const char *checkpoint_dir; /* NULL: none */
    int64_t block_interval_ms;  /* receivers cut blocks this often; 0 = 200 */
    int default_partitions;     /* partitions of shuffles; 0 = workers */
    size_t max_batches_kept;    /* batch infos kept for the status; 0 = 1000 */
    int64_t stop_timeout_ms;    /* a graceful stop waits this long for the running and queued
                                 * batches, then abandons them; 0 = 90000 */
    int64_t window_offset_ms;   /* batch times count from a multiple of every slide plus this
                                 * (any sign): windows of 1 day from midnight UTC+1 have -1h;
                                 * 0: from the epoch */
} sl_context_conf;

/* Creates a context. Returns NULL with errstr set when conf is invalid. */
sl_context *sl_context_new(const sl_context_conf *conf, char *errstr, size_t errsize);
/* Spark's StreamingContext.getOrCreate: create builds the pipeline (with checkpoint_dir set
 * to dir) and returns it not started. If dir holds a checkpoint of the same pipeline,
 * sl_context_start recovers from it: sources continue where they were, and batches that
 * were generated but not completed run again with the same input. A checkpoint of a
 * different pipeline is refused here: NULL with errstr saying what differs. */
sl_context *sl_context_get_or_create(const char *dir,
                                     sl_context *(*create)(const char *dir, void *opaque),
                                     void *opaque, char *errstr, size_t errsize);
/* Stops the context if it runs and frees it with every stream. NULL is fine. */
void sl_context_destroy(sl_context *ctx);

/* Starts receivers, the timer and the job thread. Returns SL_OK, or an error with the
 * reason logged (a source or sink that cannot start). */
int sl_context_start(sl_context *ctx);
/* Stops. graceful: receivers stop, what they received is processed, sinks are flushed.
 * Otherwise the running batch finishes and queued ones are dropped (they are re-run after
 * a restart where the input can be replayed). A graceful stop is bounded by the conf's
 * stop_timeout_ms: past it, the running batch's retrying outputs give up, the queued
 * batches are dropped, the unfinished batches stay pending in the checkpoint (logged) and
 * the context's termination error is SL_ERR_TIMEOUT. May be called from any thread, also from a
 * signal-handling thread; not from a signal handler (use sl_context_request_stop). */
void sl_context_stop(sl_context *ctx, bool graceful);
/* Async-signal-safe: asks the context to stop gracefully. */
void sl_context_request_stop(sl_context *ctx);
/* Waits until the context has stopped. Returns SL_OK, or the fatal error that stopped it. */
int sl_context_await_termination(sl_context *ctx);
/* As above with a timeout: returns SL_ERR_RETRY when still running after timeout_ms. */
int sl_context_await_termination_or_timeout(sl_context *ctx, int64_t timeout_ms);

/* Backpressure (Spark's spark.streaming.backpressure.*): a PID estimator per input sets
 * the rate at which it is read from each completed batch's size and delays. */
typedef struct sl_backpressure_conf {
    bool enabled;
    double initial_rate; /* records/s per input until the estimator has a rate; 0: none */
    double proportional; /* >= 0, default 1.0 */
    double integral;     /* >= 0, default 0.2 */
    double derivative;   /* >= 0, default 0.0 */
    double min_rate;     /* > 0, default 100 records/s */
} sl_backpressure_conf;

/* Fills bp with Spark's defaults (disabled). */
void sl_backpressure_defaults(sl_backpressure_conf *bp);
/* Sets backpressure before the context starts. SL_ERR_INVAL with errstr when a parameter
 * is out of range, SL_ERR_STATE after start. */
int sl_context_set_backpressure(sl_context *ctx, const sl_backpressure_conf *bp, char *errstr,
                                size_t errsize);

int64_t sl_context_batch_interval(const sl_context *ctx);
/* The checkpoint directory, NULL when none was configured. */
const char *sl_context_checkpoint_dir(const sl_context *ctx);
const char *sl_context_name(const sl_context *ctx);
int sl_context_workers(const sl_context *ctx);

/* Logging: the level and where lines go (default stderr). */
void sl_set_log_level(sl_log_level level);
void sl_log(sl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ==== Sources ====
 * A source is a connector instance. Names must be unique in a context. */

/* Adds a source of connector type with options; the source is a stream. Returns NULL with
 * errstr set on bad options. opts is copied. */
sl_stream *sl_context_add_source(sl_context *ctx, const char *type, const char *name,
                                 const sl_options *opts, char *errstr, size_t errsize);
/* Spark's socketTextStream: lines from host:port, reconnecting every 2 s. */
sl_stream *sl_socket_text_stream(sl_context *ctx, const char *host, int port);
/* Spark's textFileStream: new files of a directory, one record per line. */
sl_stream *sl_text_file_stream(sl_context *ctx, const char *directory);

/* ==== Transformations ====
 * Each returns a new stream, or NULL (with the reason logged) when an argument is invalid.
 * A NULL parent yields NULL, so calls can be chained and checked once at the end.
 * partitions: 0 means the context's default. */

sl_stream *sl_stream_map(sl_stream *s, sl_map_fn fn, void *opaque);
sl_stream *sl_stream_flat_map(sl_stream *s, sl_flat_map_fn fn, void *opaque);
sl_stream *sl_stream_filter(sl_stream *s, sl_filter_fn fn, void *opaque);
/* map_values: fn may change only the value and the typed value; the key is kept. */
sl_stream *sl_stream_map_values(sl_stream *s, sl_map_fn fn, void *opaque);
/* key_by: fn returns the key in *out (out->key, out->key_len); the rest is kept. */
sl_stream *sl_stream_key_by(sl_stream *s, sl_map_fn fn, void *opaque);
sl_stream *sl_stream_union(sl_stream *a, sl_stream *b);
sl_stream *sl_stream_repartition(sl_stream *s, int partitions);
sl_stream *sl_stream_transform(sl_stream *s, sl_transform_fn fn, void *opaque);
/* count: one record per batch with the number of records as its typed value (0 too). */
sl_stream *sl_stream_count(sl_stream *s);
/* count_by_value: one record per distinct value (bytes): key = value, typed value = count. */
sl_stream *sl_stream_count_by_value(sl_stream *s, int partitions);
/* reduce: one record per batch (none when the batch is empty). */
sl_stream *sl_stream_reduce(sl_stream *s, sl_reduce_fn fn, void *opaque);
/* reduce_by_key: hash shuffle by key into partitions, combining on the map side. */
sl_stream *sl_stream_reduce_by_key(sl_stream *s, sl_reduce_fn fn, void *opaque, int partitions);
/* join: every pair of records of a and b with equal keys in the same batch. fn NULL:
 * the output value is "(left,right)" in text and the typed value is the left one. */
sl_stream *sl_stream_join(sl_stream *a, sl_stream *b, sl_join_fn fn, void *opaque, int partitions);
sl_stream *sl_stream_left_join(sl_stream *a, sl_stream *b, sl_join_fn fn, void *opaque,
                               int partitions);
/* window: the union of the parent's batches in (t - length, t], computed every slide.
 * Length and slide must be multiples of the parent's slide (slide 0 = parent's slide). */
sl_stream *sl_stream_window(sl_stream *s, int64_t length_ms, int64_t slide_ms);
/* reduce_by_window: every slide, one record reducing the window's records with fn (none when
 * the window is empty): each batch is reduced once, then the window's reductions. */
sl_stream *sl_stream_reduce_by_window(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                      int64_t length_ms, int64_t slide_ms);
/* count_by_window: every slide, one record whose typed value counts the window's records
 * (0 too). */
sl_stream *sl_stream_count_by_window(sl_stream *s, int64_t length_ms, int64_t slide_ms);
/* reduce_by_key_and_window: every slide, one record per key of the window, its values
 * reduced with fn. Records are hash-partitioned by key into partitions.
 * Without inv_fn, each batch is reduced by key once and the window's reductions reduced
 * again (Spark's way). With inv_fn, the inverse of fn (inv_fn(fn(a, b), b) == a, e.g.
 * sl_reduce_sum_inverse), the previous window's result is updated per key:
 * new = fn(inv_fn(prev, reduce(leaving batches)), reduce(entering batches)), which costs the
 * batches that enter and leave instead of the whole window; a key whose value returns to
 * the identity stays (with 0) unless filter_fn drops it (it keeps a key when it returns 1;
 * sl_filter_nonzero drops zeros). Without inv_fn, filter_fn (if any) filters the result,
 * and a key of the previous slide's result that is not in this one (its records left the
 * window, or filter_fn dropped it) comes once more as a tombstone (sl_record_is_tombstone:
 * no typed value, a NULL value), so that a sink keeping a value per key clears it; the keys of
 * the last result are kept in memory for that (not checkpointed: after a restart, keys of
 * the result before it get no tombstone).
 * With inv_fn the stream keeps state across batches: the context needs a checkpoint
 * directory (NULL otherwise), where the previous result and the reduced batches of the
 * window are checkpointed. opaque goes to the three functions. */
sl_stream *sl_stream_reduce_by_key_and_window(sl_stream *s, sl_reduce_fn fn, sl_reduce_fn inv_fn,
                                              sl_filter_fn filter_fn, void *opaque,
                                              int64_t length_ms, int64_t slide_ms, int partitions);
/* count_by_value_and_window: every slide, one record per distinct value (bytes) of the
 * window: key = value, typed value = its count in the window. Computed with the inverse
 * (counts of leaving batches are subtracted) and zero counts dropped: needs a checkpoint
 * directory. */
sl_stream *sl_stream_count_by_value_and_window(sl_stream *s, int64_t length_ms, int64_t slide_ms,
                                               int partitions);
/* The inverse of sl_reduce_sum: acc -= r (integers stay integers). */
int sl_reduce_sum_inverse(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque);
/* A filter keeping records whose typed value is not 0 (or that have none). */
int sl_filter_nonzero(const sl_record *r, void *opaque);

/* ==== State across batches ====
 * The state of a key is a typed value and bytes, like a record's. The engine owns it: the
 * bytes a function finds in an sl_state are valid during the call only. To change them,
 * point bytes at other memory valid during the call (sl_emitter_alloc, or a value's bytes):
 * the engine copies them. Records emitted must not point into state bytes (copy them with
 * sl_emitter_copy). State lives in one table per partition, without a malloc per key, and
 * is checkpointed: stateful streams need a checkpoint directory (they are NULL otherwise). */

typedef struct sl_state {
    bool exists;      /* in: the key has state; out: false removes it ("none") */
    bool timing_out;  /* map_with_state: the last call for a key idle past the timeout;
                       * the state is removed whatever the function does */
    uint8_t num_type; /* sl_num_type */
    union {
        int64_t i;
        double d;
    } num;
    const char *bytes; /* NULL when len is 0 */
    uint32_t len;
    int64_t updated; /* in: the last batch time that brought data for the key (ms) */
} sl_state;

/* update_state_by_key: called for every key that has state or values in the batch, with
 * the batch's values of the key (n may be 0; they are borrowed) and its state (exists false
 * for a new key). Set *state to the new state; exists = false removes the key. A negative
 * return marks the key's first value (or the key) failed and keeps the old state. Emitting
 * is not allowed (e is for memory: sl_emitter_alloc). */
typedef int (*sl_update_state_fn)(const char *key, uint32_t key_len, const sl_record *values,
                                  size_t n, sl_state *state, sl_emitter *e, void *opaque);
/* map_with_state: called once per record of the batch, in order, with the state of its key
 * as the previous calls left it; emits any number of mapped records with sl_emit(). With an
 * idle timeout, a key that got no record for longer than the timeout gets one last call with
 * state->timing_out set and a record that has the key only (no value, no typed value); its
 * state is then removed. */
typedef int (*sl_map_with_state_fn)(const sl_record *in, sl_state *state, sl_emitter *e,
                                    void *opaque);

/* update_state_by_key: Spark's updateStateByKey. The output has one record per key with
 * state after the batch: key, the state's bytes as value, its typed value, ts = batch
 * time. Records are hash-partitioned by key into partitions (no shuffle when the parent
 * is a reduce_by_key with as many partitions). */
sl_stream *sl_stream_update_state_by_key(sl_stream *s, sl_update_state_fn fn, void *opaque,
                                         int partitions);
/* map_with_state: Spark's mapWithState with StateSpec.timeout(idle_timeout_ms) (0: keys
 * never time out). The output is what fn emits. */
sl_stream *sl_stream_map_with_state(sl_stream *s, sl_map_with_state_fn fn, void *opaque,
                                    int64_t idle_timeout_ms, int partitions);

/* reduce_by_key_and_window with each key's window kept as keyed state (one partial result
 * of the typed value per slide): the same results as without an inverse, and the state can
 * have a changelog (sl_stream_changelog) so that windows move with their partitions across a
 * consumer group. fn reduces typed values (the value bytes are not kept). Needs a checkpoint
 * directory. */
sl_stream *sl_stream_reduce_by_key_and_window_state(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                                    int64_t length_ms, int64_t slide_ms,
                                                    int partitions);

/* Windows on event time (sl_stream_reduce_by_key_and_event_window). */
typedef struct sl_event_window {
    int64_t length_ms;
    int64_t slide_ms;                /* 0: length_ms (tumbling) */
    int64_t max_out_of_orderness_ms; /* how far a watermark is behind its stream time */
    int64_t allowed_lateness_ms;     /* how long an emitted window still takes late records */
    int64_t idle_timeout_ms;         /* a partition without records for this long (batch
                                      * time) follows the others' lowest stream time; 0: its
                                      * windows wait for its own records */
    int64_t gap_ms;    /* > 0: session windows (length and slide 0): per key, records less than
                        * the gap apart are one window [first, last + gap) */
    int64_t offset_ms; /* windows aligned to the epoch plus this (any sign): a 1-day window
                        * from midnight UTC+1 has -1h; 0 for sessions */
} sl_event_window;

/* reduce_by_key_and_window on event time (the records' ts: for Kafka the message
 * timestamp): per key, windows of w->length_ms every w->slide_ms aligned to the epoch, each
 * emitted once when the watermark of the key's task passes its end. A task's watermark is
 * the highest record time seen from its source partition less max_out_of_orderness_ms
 * (Kafka Streams' stream time less its grace). For allowed_lateness_ms after that an emitted
 * window still takes late records, and is emitted again with them (sinks upsert it by its
 * bounds); a record later than that for every window it belongs to is left out and counted
 * (sl_context_stats.records_late). The output: one record per key and window, its typed value
 * the window's result and its ts the window's end (sinks' window_start and window_end are
 * the window's bounds). The open windows are keyed state per task, which a changelog moves
 * across a consumer group. Needs a checkpoint directory.
 * With w->offset_ms the windows start on multiples of the slide plus the offset. With
 * w->gap_ms (length and slide 0) they are sessions: per key, records less than the gap apart
 * make one window [first, last + gap); a late record can extend an emitted session or merge
 * two, and the bounds emitted before then come again as a tombstone (each output record's
 * meta->window_ms gives its own length: sl_batch_output_when). Records later than the allowed
 * lateness also go to sl_stream_late's stream when it is asked for. */
sl_stream *sl_stream_reduce_by_key_and_event_window(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                                    const sl_event_window *w, int partitions);

/* The late output of s, a reduce_by_key_and_window on event time (or a map, map_values or
 * filter of one): per batch, the records that came later than its allowed lateness, as they
 * came in (their headers left out), ordered by source partition and offset. They are still
 * counted (sl_context_stats.records_late). One late output per window; NULL for another s. */
sl_stream *sl_stream_late(sl_stream *s);

/* Keeps the keyed state of a stateful stream (update_state_by_key, map_with_state) per task
 * and logs its changes through a sink of connector type that supports changelogs (kafka),
 * so that the state moves with its partitions across a consumer group (see "Keyed state"
 * in sl_connector.h). The stream's keys must come from a partitioned source (their records'
 * meta->partition): a source read by key, such as a repartition topic. Returns SL_OK or an
 * error with errstr. */
int sl_stream_changelog(sl_stream *s, const char *type, const char *name, const sl_options *opts,
                        char *errstr, size_t errsize);

/* The stream's slide (batch interval for most streams) and name (for logs and errors). */
int64_t sl_stream_slide(const sl_stream *s);
const char *sl_stream_name(const sl_stream *s);
void sl_stream_set_name(sl_stream *s, const char *name);
sl_context *sl_stream_context(const sl_stream *s);

/* ==== Output operations ==== */

/* DStream.print(): a header with the batch time and the first n records, on stdout. */
int sl_stream_print(sl_stream *s, int n);
/* saveAsTextFiles: <prefix>-<batch ms>[.<suffix>]/part-NNNNN, renamed when complete. */
int sl_stream_save_as_text_files(sl_stream *s, const char *prefix, const char *suffix);
int sl_stream_foreach_batch(sl_stream *s, sl_foreach_fn fn, void *opaque);
/* Pushes every batch to a sink connector of type with options. */
int sl_stream_to(sl_stream *s, const char *type, const char *name, const sl_options *opts,
                 char *errstr, size_t errsize);

/* ==== Batch information ==== */

#define SL_MAX_INPUTS_PER_INFO 16

typedef struct sl_batch_info {
    int64_t batch_time;       /* ms */
    int64_t submission_time;  /* ms: when the batch was generated and queued */
    int64_t processing_start; /* ms; 0 while waiting */
    int64_t processing_end;   /* ms; 0 while waiting or running */
    int64_t scheduling_delay; /* start - submission; -1 while waiting */
    int64_t processing_time;  /* end - start; -1 until done */
    int64_t total_delay;      /* end - batch_time; -1 until done */
    uint64_t records;         /* records of all inputs */
    size_t ninputs;
    struct {
        const char *name;
        uint64_t records;
        double rate;          /* rate limit in force when the batch was cut, 0: none */
        char description[96]; /* e.g. blocks, offset ranges or files */
    } inputs[SL_MAX_INPUTS_PER_INFO];
    int outputs_total;
    int outputs_succeeded;
    uint64_t failed_records; /* records an operator rejected in this batch */
    char error[256];         /* first output error, empty when none */
} sl_batch_info;

/* Called on the job thread after every batch completes (successfully or not). */
typedef void (*sl_batch_listener_fn)(const sl_batch_info *info, void *opaque);
int sl_context_add_batch_listener(sl_context *ctx, sl_batch_listener_fn fn, void *opaque);

/* Copies up to max of the most recent completed batch infos, newest first. */
size_t sl_context_recent_batches(sl_context *ctx, sl_batch_info *out, size_t max);

/* Counters since start. */
typedef struct sl_context_stats {
    int64_t start_time; /* ms */
    uint64_t batches_completed;
    uint64_t batches_waiting;
    uint64_t records_received;
    uint64_t records_processed;
    uint64_t records_failed;   /* rejected by operators, sources (undecodable) or sinks */
    uint64_t records_oversize; /* dropped by sources for exceeding max_record_size */
    uint64_t records_late;     /* event time: too late for every window they belong to */
    int64_t last_scheduling_delay;
    int64_t last_processing_time;
    int64_t last_total_delay;
    /* Memory held across batches, as of the last batch: datasets remembered for windows
     * and the tables of windows with an inverse; the tables of stateful operators. */
    uint64_t window_bytes;
    uint64_t window_keys; /* keys in the results of windows with an inverse */
    uint64_t state_bytes;
    uint64_t state_keys;
    /* Keyed state restored from changelogs when sources took partitions: records and bytes
     * read back, ms spent, tasks being restored now, tasks restored so far. */
    uint64_t restored_records;
    uint64_t restored_bytes;
    int64_t restore_ms;
    int restoring;
    uint64_t restored_tasks;
} sl_context_stats;

void sl_context_get_stats(sl_context *ctx, sl_context_stats *st);

/* Batches generated and not completed: the running one first (processing_start set),
 * then the waiting ones in order. Returns how many were copied. */
size_t sl_context_pending_batches(sl_context *ctx, sl_batch_info *out, size_t max);

/* The state of a source or sink, for status pages and metrics. No option values: secrets
 * stay out. */
typedef struct sl_instance_info {
    const char *name;        /* valid while the context lives */
    const char *type;        /* connector name */
    unsigned role;           /* SL_SOURCE or SL_SINK */
    bool active;             /* connected / last write succeeded */
    uint64_t records;        /* sources: received; sinks: written */
    uint64_t oversize;       /* sources: skipped for exceeding max_record_size */
    int64_t last_error_time; /* ms, 0 when none */
    char last_error[256];
    double max_rate;            /* sources: configured max_rate, 0 = none */
    double rate_limit;          /* sources: the limit in force now (records/s), 0 = none */
    double estimated_rate;      /* sources: the backpressure estimate, 0 = none yet */
    double pid_processing_rate; /* the estimator's last terms (records/s) */
    double pid_error;
    double pid_historical_error;
    uint64_t rejected;      /* sinks: records left out (errors.tolerance: all), since start */
    uint64_t dead_letters;  /* sinks: of which written to errors.dead_letter (retries count) */
    int64_t retrying_since; /* sinks: epoch ms since the running batch's write
                             * failed and is being retried; 0: not retrying */
    bool waiting;           /* sources: waiting for partitions (sl_instance_set_waiting) */
} sl_instance_info;

/* Copies the state of up to max instances, sources first. Returns the number of
 * instances (which may exceed max). */
size_t sl_context_instances(sl_context *ctx, sl_instance_info *out, size_t max);

/* Where event time is, per stream with windows on event time (after its last batch). */
typedef struct sl_event_time_info {
    const char *stream;    /* valid while the context lives */
    int64_t watermark;     /* ms: the lowest of its partitions' watermarks; INT64_MIN: none */
    int64_t stream_time;   /* ms: the highest record time seen; INT64_MIN: none */
    uint64_t late_records; /* left out: after every window they belong to was closed */
} sl_event_time_info;

/* Copies up to max of them; returns how many streams there are (which may exceed max). */
size_t sl_context_event_times(sl_context *ctx, sl_event_time_info *out, size_t max);

/* ==== HTTP status server ====
 * A status page like Spark's Streaming tab, a JSON API, Prometheus /metrics, /health and
 * /ready, served from memory by libmicrohttpd on threads of its own (the paths and the
 * JSON shapes are described at the top of sl_http.c). The token and the values of options
 * flagged SL_OPT_SECRET never appear in a page, a JSON document, a metric or a log. */

typedef struct sl_http_conf {
    /* "HOST:PORT", "[IPv6]:PORT" or a host name; NULL: "127.0.0.1:4040". Port 0 lets the
     * kernel choose (sl_http_port tells which). */
    const char *listen;
    /* NULL or "": no authentication. Otherwise every request needs the header
     * "Authorization: Bearer TOKEN" or the query argument token=TOKEN (for the page). */
    const char *token;
    bool allow_remote;        /* serve a non-loopback address without a token */
    int port_retries;         /* when the port is taken, try up to this many next ports */
    unsigned max_connections; /* open connections at once; 0: 64 */
    unsigned timeout_s;       /* an idle connection is closed after this; 0: 10 s */
} sl_http_conf;

typedef struct sl_http_server sl_http_server;

/* Starts serving the status of ctx. Returns the server, or NULL with errstr set: bad listen
 * address, a non-loopback address without a token (unless allow_remote), a port that is
 * taken. conf is copied. ctx is borrowed: call this once its sources and sinks are added,
 * and stop the server before sl_context_destroy. It may start before sl_context_start (the
 * page then shows that nothing runs yet).
 * @locality any thread; requests are served on the server's own threads. */
sl_http_server *sl_http_start(sl_context *ctx, const sl_http_conf *conf, char *errstr,
                              size_t errsize);
/* Stops serving (waits for the requests being answered) and frees srv. NULL is fine. */
void sl_http_stop(sl_http_server *srv);
/* The port srv listens on. */
int sl_http_port(const sl_http_server *srv);
/* The page's address, e.g. "http://127.0.0.1:4040/" (never with the token). Valid while srv
 * lives. */
const char *sl_http_url(const sl_http_server *srv);

/* Gauges of engine modules, connectors and programs, exported in /metrics next to the
 * built-in metrics: e.g. a Kafka source's consumer lag per partition, the backpressure
 * rate, WAL and checkpoint sizes. name: [a-zA-Z_:][a-zA-Z0-9_:]*, given the prefix
 * "sluice_" when it has none; it must not be a built-in metric's name. help: one line
 * (NULL keeps the previous one). labels: NULL or "" for none, else preformatted as
 * `partition="3",topic="t"`, values escaped (sl_metrics_escape_label). Setting an existing
 * series (same name and labels) replaces its value. At most 1024 series per context.
 * Returns SL_OK, SL_ERR_INVAL (bad name or labels), SL_ERR_TOOBIG (too many series) or
 * SL_ERR_NOMEM. @locality any thread; thread-safe. */
int sl_metrics_gauge_set(sl_context *ctx, const char *name, const char *help, const char *labels,
                         double value);
/* Removes a series (e.g. a partition that was revoked). SL_OK or SL_ERR_NOTFOUND. */
int sl_metrics_gauge_remove(sl_context *ctx, const char *name, const char *labels);
/* Writes value escaped for a label value (\\, \" and \n) into buf, always terminated.
 * Returns the length the escaped text needs (like snprintf). */
size_t sl_metrics_escape_label(const char *value, char *buf, size_t size);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_H */

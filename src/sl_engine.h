/* sl_engine.h -- the engine's internal types: datasets, the DStream graph, connector
 * instances with their receivers, the worker pool and the context. */
#ifndef SL_ENGINE_H
#define SL_ENGINE_H

#include <pthread.h>
#include <stdbool.h>

#include "sl_checkpoint.h"
#include "sl_connector.h"
#include "sl_context.h"
#include "sl_rate.h"
#include "sl_util.h"
#include "sl_wal.h"

/* ==== Worker pool ==== */

typedef struct sl_pool sl_pool;
/* A task of a parallel stage; returns SL_OK or an error (the stage returns the first). */
typedef int (*sl_task_fn)(void *arg, size_t task);

sl_pool *sl__pool_new(int threads);
void sl__pool_destroy(sl_pool *p);
/* Runs fn(arg, 0..ntasks-1) on the pool's threads and waits for all of them.
 * @locality the job thread (one stage at a time). */
int sl__pool_run(sl_pool *p, size_t ntasks, sl_task_fn fn, void *arg);

/* ==== Datasets ==== */

typedef struct sl_part {
    sl_record *recs;
    size_t n;
    sl_arena arena; /* bytes of records created for this partition */
    bool borrowed;  /* recs belong to another dataset (a window's union) */
} sl_part;

struct sl_dataset {
    _Atomic int refs;
    int64_t time;
    size_t nparts;
    sl_part *parts;
    /* Datasets whose bytes these records point into: kept alive as long as this one. */
    sl_dataset **deps;
    size_t ndeps;
    /* Called when freed, e.g. to give a receiver its buffer space back. */
    void (*on_free)(void *arg, size_t bytes);
    void *on_free_arg;
    size_t on_free_bytes;
};

/* A dataset with nparts empty partitions and one reference. NULL when out of memory. */
sl_dataset *sl__dataset_new(size_t nparts, int64_t time);
void sl__dataset_retain(sl_dataset *ds);
void sl__dataset_release(sl_dataset *ds);
/* Makes ds keep dep alive (once, however often it is called for the same dep). */
int sl__dataset_add_dep(sl_dataset *ds, sl_dataset *dep);
/* Bytes held by the dataset itself (arenas and record arrays). */
size_t sl__dataset_bytes(const sl_dataset *ds);

/* ==== Record meta ==== */

/* Remembers the last meta and strings copied by one bulk copy (a receiver's push, a direct
 * source's partition), so that a topic or source name shared by many records is stored
 * once. Within one bulk copy, equal pointers must mean equal strings. */
typedef struct sl_meta_cache {
    const sl_record_meta *from;
    sl_record_meta *to;
    const char *source_from, *source_to;
    const char *topic_from, *topic_to;
} sl_meta_cache;

/* Copies m (and its strings, once per cache) into a. NULL when m is NULL or out of
 * memory. */
const sl_record_meta *sl__meta_copy(sl_arena *a, const sl_record_meta *m, sl_meta_cache *mc);

/* ==== Emitters ==== */

struct sl_emitter {
    int (*push)(sl_emitter *e, const sl_record *r);
    sl_emitter *next; /* where this operator's output goes */
    sl_arena *arena;  /* memory for new bytes */
    int64_t batch_time;
    sl_stream *node; /* the operator */
    void *state;     /* the terminal consumer's state */
    /* update_state_by_key on a node that follows event time (sl_stream.event_time): the
     * event time of the key's task before the batch and with it; NULL otherwise. */
    const struct sl_stream_time *stime;
};

/* The event time a task has reached ("stream time", as Kafka Streams calls it): the
 * highest record time seen from the task's partition, INT64_MIN for none. */
typedef struct sl_stream_time {
    int64_t before; /* before the batch being computed */
    int64_t after;  /* with it */
    int64_t seen;   /* the batch time of the task's last records; 0: not yet known */
} sl_stream_time;

/* ==== The DStream graph ==== */

typedef enum sl_op_kind {
    SL_OP_SOURCE,
    SL_OP_MAP,
    SL_OP_FLAT_MAP,
    SL_OP_FILTER,
    SL_OP_MAP_VALUES,
    SL_OP_KEY_BY,
    SL_OP_UNION,
    SL_OP_REPARTITION,
    SL_OP_TRANSFORM,
    SL_OP_REDUCE_BY_KEY,
    SL_OP_JOIN,
    SL_OP_WINDOW,
    SL_OP_WINDOW_INV,   /* reduce_by_key_and_window with an inverse (sl_window.c) */
    SL_OP_UPDATE_STATE, /* update_state_by_key (sl_stateful.c) */
    SL_OP_MAP_STATE,    /* map_with_state (sl_stateful.c) */
    SL_OP_KEYS_LEFT,    /* a window's result and a tombstone per key that left it (sl_window.c) */
} sl_op_kind;

#define SL_RBK_GLOBAL        0x1u /* ignore keys: one group (reduce, count) */
#define SL_RBK_ZERO_IF_EMPTY 0x2u /* an empty batch yields one record of 0 (count) */
#define SL_JOIN_LEFT         0x4u
#define SL_RBK_TASK                                                                                \
    0x8u /* results keep the partition of the source their key came                                \
          * from (meta->partition): keyed state with a changelog */

typedef struct sl_gen {
    int64_t time;
    sl_dataset *ds;
} sl_gen;

struct sl_stream {
    sl_context *ctx;
    int id;
    char name[64];
    sl_op_kind kind;
    sl_stream *parents[2];
    int nparents;
    int nconsumers; /* child streams and outputs reading this one */
    bool remembered_by_window;
    bool materialize;   /* computed once per batch and cached; otherwise fused */
    int64_t slide;      /* ms */
    int64_t window_len; /* ms, windows only */
    int64_t remember;   /* how long generated datasets are kept, ms */
    union {
        sl_map_fn map;
        sl_flat_map_fn flat_map;
        sl_filter_fn filter;
        sl_reduce_fn reduce;
        sl_join_fn join;
        sl_transform_fn transform;
        sl_update_state_fn update_state;
        sl_map_with_state_fn map_state;
    } fn;
    void *opaque;
    int partitions;
    unsigned flags;
    sl_instance *source; /* SL_OP_SOURCE */
    /* Windows with an inverse and stateful operators (sl_window.c, sl_stateful.c). */
    sl_reduce_fn inv;         /* SL_OP_WINDOW_INV: the inverse of fn.reduce */
    sl_filter_fn keep;        /* SL_OP_WINDOW_INV: keys of the result it refuses are dropped */
    int64_t timeout;          /* SL_OP_MAP_STATE: idle timeout, ms; 0: none */
    int64_t remember_parents; /* > 0: how long the parents keep their datasets for this node,
                               * instead of its own remember (a materialized node whose
                               * past datasets a window reads from its own cache) */
    struct sl_kstate *kstate; /* keyed state of the node, NULL for other kinds */
    struct sl_chg *chg;       /* its changelog (sl_changelog.c), NULL for none */
    void *owned;              /* freed with the node (an opaque the engine made) */
    bool state_windows;       /* its state is windows: input its sinks hold was emitted */
    bool event_time;          /* SL_OP_UPDATE_STATE: keeps each task's stream time; a key's
                               * entry time is the highest record time of the key */
    bool state_emits;         /* SL_OP_UPDATE_STATE: the output is what the function emits,
                               * not the state of every key */
    sl_gen *gen;              /* generated datasets, oldest first */
    size_t ngen, capgen;
    _Atomic uint64_t failed; /* records an operator function rejected */
    _Atomic uint64_t failed_logged;
    _Atomic uint64_t late;       /* event time: records too late for every window */
    int64_t event_window;        /* > 0: its records are event-time windows of this length, each
                                  * record's time the window's end */
    int64_t disorder;            /* event_time: what a watermark is behind its stream time, ms */
    int64_t idle_timeout;        /* event_time: a task without records for this long (batch time)
                                  * follows the others' lowest stream time; 0: never */
    _Atomic int64_t watermark;   /* event_time: after the last batch, INT64_MIN: none */
    _Atomic int64_t stream_time; /* event_time: the highest, INT64_MIN: none */
    /* event_time: where late records go (sl_stream_late); NULL: counted only */
    struct sl_late_out *late_out;
    sl_stream *next;
};

/* Adds a stream node to the graph (NULL once the context has started). */
sl_stream *sl__stream_new(sl_context *ctx, sl_op_kind kind, sl_stream *a, sl_stream *b);
/* A reduce_by_key node on s (flags: SL_RBK_*); NULL for a NULL s or fn, negative partitions
 * or once the context has started. */
sl_stream *sl__stream_reduce_node(sl_stream *s, sl_reduce_fn fn, void *opaque, int partitions,
                                  unsigned flags);
/* Computes the stream's dataset at time t (cached). *out is borrowed (NULL when the time is
 * not one of the stream's). @locality the job thread. */
int sl__stream_compute(sl_stream *s, int64_t t, sl_dataset **out);
/* Ends the computation of s at t: SL_OK with *out = ds when rc is SL_OK; otherwise logs the
 * failure, releases ds and returns rc. @locality the job thread. */
int sl__stream_result(const sl_stream *s, int64_t t, int rc, sl_dataset *ds, sl_dataset **out);
/* map: (value, 1) -> the record keyed by its value with the number 1 (count_by_value and
 * its windowed form). */
int sl__value_to_key_one(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque);
/* The span of input time a dataset of s covers, ms (sl_batch_output.window_ms): its slide
 * without a window on its way from the sources, a window's length after one, more after a
 * window of windows, the widest of several parents. */
int64_t sl__stream_span(const sl_stream *s);
/* > 0: the records of s are event-time windows of this length (their time is the window's
 * end), made by s or by the node a chain of one-parent operators leads back to. */
int64_t sl__stream_event_window(const sl_stream *s);
/* Checks a window's length and slide against the parent s (slide 0 becomes s's slide):
 * positive multiples of s's slide. Logs what is wrong, naming what, and returns false. */
bool sl__window_args(const sl_stream *s, int64_t length_ms, int64_t *slide_ms, const char *what);
/* Checks the arguments of reduce_by_key_and_window (s, fn, partitions, the window; slide 0
 * becomes s's slide). Logs what is wrong and returns false. */
bool sl__rbkw_args(const sl_stream *s, sl_reduce_fn fn, int partitions, int64_t length_ms,
                   int64_t *slide_ms);
/* Stores a source's input for time t. Takes over the reference. */
int sl__stream_put(sl_stream *s, int64_t t, sl_dataset *ds);
/* Forgets datasets no longer needed after batch t completed. */
void sl__stream_forget(sl_stream *s, int64_t t);
/* Decides materialization and remember durations; called once at start. */
void sl__graph_prepare(sl_context *ctx);
/* True when t is a time at which the stream has a dataset. */
bool sl__stream_valid_time(const sl_stream *s, int64_t t);
void sl__stream_free(sl_stream *s);

/* Shuffles (sl_shuffle.c). @locality the job thread. */
int sl__shuffle_reduce_by_key(sl_stream *s, int64_t t, sl_dataset **out);
int sl__shuffle_repartition(sl_stream *s, int64_t t, sl_dataset **out);
int sl__shuffle_join(sl_stream *s, int64_t t, sl_dataset **out);
/* The join's output value when it has no function: "(left,right)", each side its typed value
 * as text if it has one, else its value bytes ("null" for a missing right), in e's memory. */
int sl__join_text(const sl_record *l, const sl_record *r, sl_record *out, sl_emitter *e);

/* sl_stream_reduce_by_key_and_window_state and sl_stream_reduce_by_key_and_event_window that
 * keep each slide's or pane's value bytes with its typed value and give the window's reduced
 * bytes as the output's value: for reducers whose partial results are in the bytes
 * (sl_reducers.h). Memory and state grow with the bytes. (sl_window_state.c) */
sl_stream *sl__stream_rbkw_state_bytes(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                       int64_t length_ms, int64_t slide_ms, int partitions);
sl_stream *sl__stream_event_window_bytes(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                         sl_map_fn lift, void *lift_opaque,
                                         const sl_event_window *ew, int partitions);
/* On event time, lift (NULL: none) makes each record the window takes a partial result
 * (sl__reducer_lift), after the late check: the late output (sl_stream_late) has the records
 * as they came. A record lift rejects is counted as failed and left out. */
/* Session windows (ew->gap_ms > 0), bytes and lift as above (sl_window_session.c). */
sl_stream *sl__stream_session_windows(sl_stream *s, sl_reduce_fn fn, void *opaque, sl_map_fn lift,
                                      void *lift_opaque, const sl_event_window *ew, int partitions,
                                      bool bytes);
/* lift (when not NULL) applied to v into *out for a window: SL_OK with out pointing at the
 * record to take, SL_ERR_RECORD when it was rejected (counted and logged), or an error. */
int sl__window_lift(sl_stream *node, sl_map_fn lift, void *lift_opaque, const sl_record *v,
                    sl_record *buf, const sl_record **out, sl_emitter *e);

/* ==== Keyed state (sl_ktable.c, sl_stateful.c) ====
 * A table per partition from key bytes to a typed value and bytes, the storage of
 * update_state_by_key, map_with_state and of windows with an inverse. Open addressing over
 * an entry array; keys and value bytes live in a storage dataset whose bytes never change
 * once written, so that output records may point into it (an output keeps the storage as a
 * dependency). Removed entries and replaced bytes are garbage until the table is compacted
 * into a new storage, which happens when garbage piles up. One thread at a time. */

typedef struct sl_kentry {
    uint64_t hash;
    const char *key;   /* in the storage */
    const char *bytes; /* in the storage; NULL when len is 0 */
    uint32_t key_len, len;
    uint8_t num_type; /* sl_num_type */
    uint8_t dead;     /* removed: skipped until the next compaction */
    uint16_t task;    /* with a changelog: the source partition the key belongs to + 1; 0: none */
    uint32_t mark;    /* the batch (kstate epoch) that last touched the key */
    union {
        int64_t i;
        double d;
    } num;
    int64_t ts; /* last batch time with data for the key (event_time: its highest record time) */
} sl_kentry;

typedef struct sl_ktable {
    uint32_t *slots; /* index + 1 into e; 0 = empty; dead entries stay as tombstones */
    size_t mask;     /* slots - 1; 0 when there are none */
    size_t used;     /* slots in use, tombstones included */
    sl_kentry *e;
    size_t n, cap; /* entries, dead ones included */
    size_t live;
    sl_dataset *store; /* storage of keys and bytes: parts[0].arena */
    size_t garbage;    /* bytes of the storage held by dead keys and replaced bytes */
} sl_ktable;

void sl__ktable_init(sl_ktable *t);
void sl__ktable_free(sl_ktable *t);
/* Drops every entry (a new storage; outputs keep the old one alive). */
void sl__ktable_clear(sl_ktable *t);
/* The live entry of key, or NULL. Entry pointers stay valid until the next add or compact. */
sl_kentry *sl__ktable_find(sl_ktable *t, const char *key, uint32_t len, uint64_t h);
/* Adds key (copied into the storage), which must not be present: a zeroed entry. NULL when
 * out of memory. */
sl_kentry *sl__ktable_add(sl_ktable *t, const char *key, uint32_t len, uint64_t h);
/* Sets the bytes of e: copied into the storage unless they are e's bytes already. */
int sl__ktable_set_bytes(sl_ktable *t, sl_kentry *e, const char *bytes, uint32_t len);
void sl__ktable_remove(sl_ktable *t, sl_kentry *e);
/* The record of entry e (key, value bytes, number, ts), pointing into the storage. */
void sl__kentry_record(const sl_kentry *e, sl_record *r);
/* Compacts when removed entries or replaced bytes pile up (or always with force). */
int sl__ktable_compact(sl_ktable *t, bool force);
/* Memory held: slots, entries and storage. */
size_t sl__ktable_bytes(const sl_ktable *t);
/* Fills part with one record per live entry (key and bytes point into the storage; ts is
 * the entry's unless ts_override > 0). The caller adds t->store to the dataset's deps. */
int sl__ktable_to_part(const sl_ktable *t, sl_part *part, int64_t ts_override);

/* The keyed state of a node: one table per partition. */
typedef struct sl_kstate {
    size_t nparts;
    sl_ktable *tabs;
    int64_t time;          /* the batch time the tables reflect; 0: none yet */
    uint32_t epoch;        /* counts the batches applied */
    int64_t saved_upto;    /* windows: reduced batches up to this time are on disk */
    uint64_t inconsistent; /* windows: leaving keys missing from the previous result */
    sl_stream_time *stime; /* event_time: per task + 1 (0: records of no partition) */
    size_t nstime;
    /* event_time without a changelog: the input's stream time, the lowest of the tasks'
     * (a key's records may come from several partitions) */
    sl_stream_time input;
} sl_kstate;

sl_kstate *sl__kstate_new(size_t nparts);
/* The stream time of task (-1: none), grown as needed; NULL when out of memory. */
sl_stream_time *sl__kstate_stime(sl_kstate *ks, int32_t task);
/* Folds the entry times of every key of task (all tasks when task is -2) into the tasks'
 * stream times, after the state was restored. */
int sl__kstate_stime_rebuild(sl_kstate *ks, int32_t task);
void sl__kstate_free(sl_kstate *ks);

/* update_state_by_key and map_with_state at t. @locality the job thread. */
int sl__state_compute(sl_stream *s, int64_t t, sl_dataset **out);
/* reduce_by_key_and_window with an inverse at t (sl_window.c). @locality the job thread. */
int sl__window_compute(sl_stream *s, int64_t t, sl_dataset **out);
/* The result of a window without an inverse at t and a tombstone for every key of the
 * node's previous result missing from it (sl_window.c). @locality the job thread. */
int sl__keys_left_compute(sl_stream *s, int64_t t, sl_dataset **out);
/* The partitions of a shuffle of s (its own, or the context's default). */
size_t sl__stream_partitions(const sl_stream *s);
/* True when partition r of parent's datasets holds exactly the keys that hash to bucket r of
 * nparts (a reduce_by_key with that many partitions): no shuffle is needed to read it by
 * key. */
bool sl__copartitioned(const sl_stream *parent, size_t nparts);
/* A cached dataset of s at t, NULL when there is none. */
sl_dataset *sl__stream_cached(sl_stream *s, int64_t t);

/* ==== Changelogs (sl_changelog.c): keyed state that moves with its partitions ==== */

/* Makes sink the changelog of stateful stream s. SL_OK or an error with errstr. */
int sl__changelog_attach(sl_stream *s, sl_instance *sink, char *errstr, size_t errsize);
void sl__changelog_free(sl_stream *s);
/* True when some stream of the context has a changelog. */
bool sl__changelog_any(const sl_context *ctx);
/* Appends to v the change of a key of task: its entry e (NULL: the key has no state any
 * more), key and value copied into a. */
int sl__changelog_change(sl_recvec *v, sl_arena *a, const sl_kentry *e, const char *key,
                         uint32_t len, int32_t task);
/* The changes of the batch s just computed (takes the reference). @locality the job thread */
void sl__changelog_set(sl_stream *s, sl_dataset *changes);
/* The changes of batch t (a new reference), NULL when none. @locality the job thread */
sl_dataset *sl__changelog_take(sl_stream *s, int64_t t);
/* Restores, for every changelog stream reading src, the state of pos[0..n) from the
 * changelog sink, counting those sinks in *sinks and merging their positions into pos.
 * @locality the thread of src's next_batch */
int sl__changelog_restore(sl_instance *src, sl_source_position *pos, size_t n, size_t *sinks,
                          char *errstr, size_t errsize);
/* Applies the restores and drops asked up to batch t, and finds the tasks whose input in
 * batch t the restored state holds already. @locality the job thread */
int sl__changelog_apply(sl_stream *s, int64_t t);
/* True when the records of task in the batch being computed must not change the state:
 * its restored state reflects them (they run again for the sinks that are behind). */
bool sl__changelog_skips(const sl_stream *s, int32_t task);
/* Whether record r still counts for s's state: its task is this instance's and the
 * restored state does not hold it already (by offset). @locality the job thread or a
 * worker of its stages */
bool sl__changelog_counts(const sl_stream *s, const sl_record *r);

/* ==== Checkpoints of state (sl_state_snapshot.c) ====
 * Nodes whose result depends on earlier batches (stateful operators and windows with an
 * inverse) write their state under <checkpoint_dir>/state every max(1, ceil(10 s / slide))
 * slides, recorded in the checkpoint metadata with the batch time it reflects. Completed
 * batches after that time stay in the metadata; after a restart the state is loaded and
 * those batches run again (their state only, no outputs) before the pending ones. */

/* True for the kinds that keep state across batches and need a checkpoint directory. */
bool sl__stream_is_stateful(const sl_stream *s);
/* Refuses a stateful node of a context without a checkpoint directory (logged). */
bool sl__state_check_dir(sl_context *ctx, const char *what);
/* Milliseconds between state snapshots, 0 when the pipeline has no stateful node. */
int64_t sl__state_interval(sl_context *ctx);
/* After batch t completed: when t is a snapshot time, writes the state files and records
 * them in the checkpoint (written by the completion that follows). @locality job thread */
int sl__state_checkpoint(sl_context *ctx, int64_t t);
/* At stop: a last snapshot at the last completed batch when the state reflects it. */
void sl__state_final_checkpoint(sl_context *ctx);
/* After the metadata was loaded: loads the state files it names. SL_OK, or an error with
 * errstr saying which file and why. */
int sl__state_restore(sl_context *ctx, char *errstr, size_t errsize);
/* A batch re-run after a restart to rebuild state: computes the stateful nodes at t. */
int sl__state_replay(sl_context *ctx, int64_t t);
/* Updates the context's window and state memory figures. @locality the job thread */
void sl__state_account(sl_context *ctx);

/* Chain execution, shared by sl_stream.c and sl_shuffle.c. */
typedef struct sl_chain_ctx {
    int64_t time;
    sl_dataset *deps_into; /* materialized ancestors are added as its deps; may be NULL */
} sl_chain_ctx;

/* Makes every materialized ancestor feeding s's chain computed at t and adds it to the
 * deps of into (when not NULL). @locality the job thread. */
int sl__chain_prepare(sl_stream *s, int64_t t, sl_dataset *into);
/* Partitions of s at t (after sl__chain_prepare). */
size_t sl__chain_partitions(sl_stream *s, int64_t t);
/* Pushes every record of partition p of s at t into out. @locality any worker. */
int sl__chain_run(sl_stream *s, int64_t t, size_t p, sl_emitter *out);

/* ==== Connector instances ==== */

typedef struct sl_block {
    struct sl_block *next;
    sl_recvec v;
    sl_arena arena;
    size_t bytes;
    /* Records pushed through a write-ahead log: the first one and the one after the last,
     * each as (the end of its log block, its index in that block). */
    bool logged;
    sl_wal_pos from_end, to_end;
    uint32_t from_idx, to_idx;
} sl_block;

typedef struct sl_receiver {
    pthread_mutex_t lock;
    pthread_cond_t room;
    sl_block *cur;                    /* being filled */
    sl_block *head, *tail;            /* cut, waiting for a batch */
    size_t buffered;                  /* bytes pushed and not yet freed */
    bool closed;                      /* no more waiting for room */
    int64_t rate_next_ns;             /* token bucket: when the next record may be pushed */
    int64_t block_interval;           /* ms: the rate limiter's burst */
    _Atomic uint64_t *received_total; /* the context's count of records received */
    /* A receiver with a write-ahead log (sl__receiver_set_wal; owned by the connector). */
    sl_wal *wal;
    sl_wal_pos next_end;   /* the log position after the last record taken by a batch */
    uint32_t next_idx;     /* (block end, index), as in sl_block */
    sl_wal_pos resume_end; /* records before this were in batches of the checkpoint */
    uint32_t resume_idx;
    uint64_t resume_dropped; /* records pushed again and dropped for that */
} sl_receiver;

typedef struct sl_source_common {
    int64_t max_record_size;
    int64_t max_buffered;
    double max_rate;
} sl_source_common;

struct sl_instance {
    sl_context *ctx;
    const sl_connector *conn;
    char *name;
    unsigned role; /* SL_SOURCE or SL_SINK */
    sl_options *opts;
    void *cctx; /* the connector's context */
    bool started;
    bool receiver;      /* a receiver: blocks, not next_batch */
    bool positions_off; /* a sink with a positions callback that does not record them */
    sl_source_common common;
    sl_receiver rcv;
    sl_stream *stream;             /* sources: their stream */
    sl_pid pid;                    /* sources: the backpressure estimator (job thread) */
    _Atomic double estimated_rate; /* its last rate, 0 = none yet */
    pthread_mutex_t pid_lock;      /* guards pid's terms for readers off the job thread */
    _Atomic uint64_t records;      /* sources: received; sinks: written */
    _Atomic uint64_t oversize;
    struct sl_rejects *rejects; /* sinks: records rejected, dead letters (sl_deadletter.c) */
    _Atomic bool active;
    _Atomic int64_t retrying_since; /* sinks: ms of the batch's first failed attempt, 0: none */
    _Atomic bool stopping;
    _Atomic bool waiting;        /* sources: waiting for partitions (sl_instance_set_waiting) */
    sl_stream *changelog;        /* sinks: the stateful stream whose changelog this is, or NULL */
    _Atomic bool failed_at_stop; /* sinks: lost data when stopped (sl_instance_fail_at_stop) */
    pthread_mutex_t err_lock;
    char last_error[256];
    int64_t last_error_time;
    sl_instance *next;
};

/* Creates an instance of conn: options checked and applied, init called. NULL with errstr
 * on failure. (sl_instance.c, as what follows up to the receivers.) */
sl_instance *sl__instance_new(sl_context *ctx, const sl_connector *conn, unsigned role,
                              const char *name, const sl_options *opts, char *errstr,
                              size_t errsize);
void sl__instance_destroy(sl_instance *ins);
/* A new instance of conn in role for ctx (sl__instance_new), after checking that conn can
 * take the role and that the name is unique among sources and sinks; opts may be NULL.
 * Not yet in ctx's lists. NULL with errstr on failure. */
sl_instance *sl__instance_add(sl_context *ctx, const sl_connector *conn, unsigned role,
                              const char *name, const sl_options *opts, char *errstr,
                              size_t errsize);
/* Appends ins to a list of instances (ctx->sources or ctx->sinks). */
void sl__instance_append(sl_instance **list, sl_instance *ins);
/* Until sl__instance_capture_end, sl_instance_error(ins, ...) called on this thread also
 * copies its message into errstr (emptied now; the last message stays): how the errors a
 * start or write reports, itself or through the engine's dead letters, reach its errstr.
 * One capture per thread at a time. @locality the thread calling the connector */
void sl__instance_capture_begin(const sl_instance *ins, char *errstr, size_t errsize);
void sl__instance_capture_end(void);

/* What a direct source's next_batch or replay fills (sl_batch_input_* in sl_instance.c). */
struct sl_batch_input {
    sl_dataset *ds;
    char desc[96];
    size_t desc_len;
    char *definition; /* malloc'ed; NULL when the source set none */
    /* sl_batch_input_add_range: source is set by the engine; topics are malloc'ed. */
    sl_input_range *ranges;
    size_t nranges, capranges;
};

/* Frees the ranges of in (sl_positions.c). */
void sl__input_ranges_free(sl_input_range *ranges, size_t n);

/* Receivers (sl_receiver.c). */
/* The receiver of an instance of a context with that block interval (ms), counting what it
 * takes in *received_total too. */
void sl__receiver_init(sl_receiver *r, int64_t block_interval, _Atomic uint64_t *received_total);
void sl__receiver_destroy(sl_receiver *r);
/* Cuts the current block so that it waits for the next batch. */
void sl__receiver_cut(sl_instance *ins);
/* Takes every cut block into a dataset for batch t (one partition per block). For a receiver
 * with a write-ahead log, *def gets the batch's definition to checkpoint (caller frees; NULL
 * otherwise): {"wal":[from_end,from_idx,to_end,to_idx],"records":n}. */
int sl__receiver_take(sl_instance *ins, int64_t t, sl_dataset **out, char **def);
/* After a restart: the dataset of batch t read back from the write-ahead log with the
 * definition def of sl__receiver_take (same records); empty when the receiver has no log
 * or def has no log range. Returns SL_OK, SL_ERR_NOMEM, SL_ERR_IO. */
int sl__receiver_replay(sl_instance *ins, int64_t t, const char *def, sl_dataset **out);
/* After a restart: def is the definition of the last batch generated before it; records
 * pushed again from the log up to its end are dropped (they re-run with their batches). */
void sl__receiver_restore(sl_instance *ins, const char *def);
/* Wakes threads blocked in sl_receiver_push; they return SL_ERR_STATE. */
void sl__receiver_close(sl_instance *ins);

/* ==== Outputs ==== */

typedef struct sl_output {
    sl_stream *stream;
    sl_instance *sink; /* a sink connector, or NULL */
    sl_foreach_fn foreach;
    void *opaque;
    char name[64];
    bool changelog; /* the changelog of its stream: written after the others committed */
    bool failed;    /* did not succeed for the batch being run (sl__outputs_run) */
    /* The sources the output's stream reads (sl__outputs_prepare), by instance. */
    sl_instance **reads;
    size_t nreads;
    /* A stream that slides slower than the batches: the ranges of the batches since its
     * last dataset, merged per partition (topics malloc'ed). @locality the job thread */
    sl_input_range *acc;
    size_t nacc;
    struct sl_output *next;
} sl_output;

/* Ranges r[0..n) of output o: where o's records come from windows kept as keyed state
 * with a changelog, a range's start moves up to the position the restored state holds (it
 * left out the input before it, which the windows' sinks had emitted). */
void sl__changelog_trim(const sl_output *o, sl_input_range *r, size_t n);
/* Frees an output's merged ranges. */
void sl__output_acc_clear(sl_output *o);

/* Finds, for every output, the sources its stream reads. Called once at start. */
int sl__outputs_prepare(sl_context *ctx);
/* True when o's stream reads the source instance called source. */
bool sl__output_reads(const sl_output *o, const char *source);
/* True when the sink instance's output reads source src. */
bool sl__sink_reads(const sl_instance *sink, const sl_instance *src);

/* ==== Context ==== */

typedef struct sl_job {
    int64_t time;
    size_t ninputs;
    sl_dataset **inputs;    /* one per source, in source order */
    char *inputs_json;      /* every input's definition or description, for sinks */
    sl_input_range *ranges; /* every source's ranges (sl_batch_input_add_range), for sinks */
    size_t nranges;
    bool state_only; /* re-run after a restart to rebuild state: no outputs */
    sl_batch_info info;
    struct sl_job *next;
} sl_job;

typedef struct sl_listener {
    sl_batch_listener_fn fn;
    void *opaque;
    struct sl_listener *next;
} sl_listener;

typedef enum sl_ctx_state {
    SL_CTX_CREATED,
    SL_CTX_RUNNING,
    SL_CTX_STOPPING,
    SL_CTX_STOPPED,
} sl_ctx_state;

struct sl_context {
    char *name;
    char *checkpoint_dir;
    int64_t batch_interval;
    int64_t block_interval;
    int workers;
    int default_partitions;
    size_t max_infos;
    sl_pool *pool;

    sl_stream *streams, *streams_tail;
    int nstreams;
    sl_instance *sources, *sinks;
    size_t nsources;
    sl_output *outputs, *outputs_tail;
    int noutputs;
    sl_listener *listeners;
    sl_backpressure_conf backpressure;
    sl_checkpoint *ckpt; /* NULL without checkpoint_dir */
    int64_t first_batch; /* the timer's first batch time */

    pthread_mutex_t lock; /* state, the job queue, infos */
    pthread_cond_t cond;
    sl_ctx_state state;
    bool graceful;
    int64_t stop_timeout; /* ms a graceful stop waits for the batches before abandoning them */
    _Atomic bool stop_requested;
    int fatal_err;
    bool timer_running, job_running;
    pthread_t timer_thread, job_thread, stop_thread;
    bool stop_thread_started;
    bool graph_prepared;
    bool stepping; /* driven by sl__context_step, no threads */
    sl_job *queue_head, *queue_tail;
    size_t queued;
    sl_job *running;
    int64_t zero_time; /* batch times are zero_time + k * batch_interval */
    /* zero_time is a multiple of every slide plus this */
    int64_t window_offset;
    int64_t start_time;

    sl_batch_info *infos; /* ring of completed batch infos */
    size_t ninfos, info_next;

    _Atomic uint64_t batches_completed;
    _Atomic uint64_t records_received;
    _Atomic uint64_t records_processed;
    _Atomic uint64_t records_failed;
    _Atomic uint64_t records_late;
    int64_t last_sched_delay, last_proc_time, last_total_delay;
    /* Memory of windows and state (sl__state_account), and state snapshots. */
    _Atomic uint64_t window_bytes, window_keys, state_bytes, state_keys;
    int64_t state_gens[4]; /* times of the state snapshots whose files are kept, oldest first */
    /* Changelog restores (sl_changelog.c): records and bytes read back, time spent, tasks
     * being restored now, tasks restored. */
    _Atomic uint64_t restored_records, restored_bytes;
    _Atomic int64_t restore_ms;
    _Atomic int restoring;
    _Atomic uint64_t restored_tasks;
    _Atomic int64_t gen_time; /* the batch being generated, or the next one */
    sl_job *computing;        /* the job the job thread runs (its ranges); job thread only */
    size_t nstate_gens;
};

/* Waits on ctx->cond until the wall-clock time until_ms or a change of state. Batch times
 * are wall-clock times; the wait itself runs on the monotonic clock, so a clock step
 * shortens or lengthens one wait at most. @locks ctx->lock held (sl_context.c) */
void sl__context_wait_until(sl_context *ctx, int64_t until_ms);

/* ==== Scheduler (sl_scheduler.c) ==== */

/* Generates batch t: fixes every source's input (or, with replay, reads again the inputs
 * recorded in the checkpoint) and, with a checkpoint, records the inputs before the batch
 * can run. NULL when out of memory. @locality the timer thread, or the starting thread
 * (recovery, stepping) */
sl_job *sl__job_generate(sl_context *ctx, int64_t t, const sl_ckpt_batch *replay);
void sl__job_free(sl_job *job);
/* Appends job to the queue. @locks ctx->lock held, or no scheduler thread yet */
void sl__job_enqueue(sl_context *ctx, sl_job *job);
/* Sets up the estimators, and warns where nothing bounds the first batch: with
 * backpressure on, Spark's most reported pain is a huge first batch when neither an
 * initial rate nor a cap is given. */
void sl__backpressure_prepare(sl_context *ctx);
/* Marks the context running and starts the timer and job threads; false when one of them
 * could not be made (the caller stops the context). @locks takes ctx->lock */
bool sl__scheduler_start(sl_context *ctx);

/* Generates and runs the batch at time t on the calling thread, with no timer or job
 * thread: for tests. The first call fixes the zero time at t - batch interval. Sources
 * need not be started; receivers' pushed records go into the batch. */
int sl__context_step(sl_context *ctx, int64_t t, sl_batch_info *info);
/* The least common multiple of the streams' slides (the batch interval when it would
 * exceed a day): a run's batch times count from a multiple of it (sl_context.c). */
int64_t sl__graph_alignment(const sl_context *ctx);

/* ==== A batch's outputs (sl_output.c) ==== */

/* Runs every output of the job that has a dataset at its time (see sl_output.c). Returns
 * true when an output was abandoned by a stop or failed (the batch stays pending).
 * @locality the job thread */
bool sl__outputs_run(sl_context *ctx, sl_job *job, sl_batch_info *info);
/* Publishes the running batch's progress for sl_context_pending_batches. @locks takes
 * ctx->lock */
void sl__job_publish(sl_context *ctx, sl_job *job, const sl_batch_info *info);

/* ==== Recovery (sl_recovery.c) ==== */

/* The zero time of a context started at now: the latest multiple of every stream's slide
 * (the batch interval when that would exceed a day) plus the window offset, <= now. The
 * graph must be prepared. (sl_context.c) */
int64_t sl__context_zero_time(const sl_context *ctx, int64_t now);

/* Opens the checkpoint and loads it. A new checkpoint records the zero time. */
int sl__checkpoint_open(sl_context *ctx);
/* Sources continue after the batch each generated last before the restart. */
int sl__restore_sources(sl_context *ctx);
/* After a restart: the batches to run again are queued, ahead of new ones (see
 * sl_recovery.c); a new checkpoint records the zero time. @locality the starting thread */
int sl__recover(sl_context *ctx);

/* The pipeline's structure as text, one line per source, stream and output: its hash is
 * the checkpoint's fingerprint. Caller frees. */
char *sl__graph_describe(sl_context *ctx);

/* Records a rejected record of node: counted, the first few logged with where it came from. */
void sl__record_failed(sl_stream *node, const sl_record *r, int err);
/* Counts a record that came after the watermark passed every window it belongs to (logged
 * the first few times). */
void sl__stream_late(sl_stream *node, int64_t t, const sl_record *r);

/* The late output of an event-time window (sl_window_late.c): a late record of batch t
 * copied for the late stream (thread-safe); the buffer freed with its node. */
typedef struct sl_late_out sl_late_out;
int sl__late_add(sl_late_out *lo, int64_t t, const sl_record *r);
void sl__late_free(sl_late_out *lo);

#endif

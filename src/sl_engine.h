/* sl_engine.h -- the engine's internal types: datasets, the DStream graph, connector
 * instances with their receivers, the worker pool and the context. */
#ifndef SL_ENGINE_H
#define SL_ENGINE_H

#include <pthread.h>
#include <stdbool.h>

#include "sl_checkpoint.h"
#include "sl_connector.h"
#include "sl_rate.h"
#include "sl_util.h"

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

/* ==== Emitters ==== */

struct sl_emitter {
    int (*push)(sl_emitter *e, const sl_record *r);
    sl_emitter *next; /* where this operator's output goes */
    sl_arena *arena;  /* memory for new bytes */
    int64_t batch_time;
    sl_stream *node; /* the operator */
    void *state;     /* the terminal consumer's state */
};

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
} sl_op_kind;

#define SL_RBK_GLOBAL        0x1u /* ignore keys: one group (reduce, count) */
#define SL_RBK_ZERO_IF_EMPTY 0x2u /* an empty batch yields one record of 0 (count) */
#define SL_JOIN_LEFT         0x4u

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
    } fn;
    void *opaque;
    int partitions;
    unsigned flags;
    sl_instance *source; /* SL_OP_SOURCE */
    sl_gen *gen;         /* generated datasets, oldest first */
    size_t ngen, capgen;
    _Atomic uint64_t failed; /* records an operator function rejected */
    _Atomic uint64_t failed_logged;
    sl_stream *next;
};

/* Adds a stream node to the graph (NULL once the context has started). */
sl_stream *sl__stream_new(sl_context *ctx, sl_op_kind kind, sl_stream *a, sl_stream *b);
/* Computes the stream's dataset at time t (cached). *out is borrowed (NULL when the time is
 * not one of the stream's). @locality the job thread. */
int sl__stream_compute(sl_stream *s, int64_t t, sl_dataset **out);
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
} sl_block;

typedef struct sl_receiver {
    pthread_mutex_t lock;
    pthread_cond_t room;
    sl_block *cur;         /* being filled */
    sl_block *head, *tail; /* cut, waiting for a batch */
    size_t buffered;       /* bytes pushed and not yet freed */
    bool closed;           /* no more waiting for room */
    int64_t rate_next_ns;  /* token bucket: when the next record may be pushed */
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
    sl_source_common common;
    sl_receiver rcv;
    sl_stream *stream;        /* sources: their stream */
    sl_pid pid;               /* sources: the backpressure estimator (job thread) */
    _Atomic double estimated_rate; /* its last rate, 0 = none yet */
    pthread_mutex_t pid_lock; /* guards pid's terms for readers off the job thread */
    _Atomic uint64_t records; /* sources: received; sinks: written */
    _Atomic uint64_t oversize;
    _Atomic bool active;
    _Atomic bool stopping;
    pthread_mutex_t err_lock;
    char last_error[256];
    int64_t last_error_time;
    sl_instance *next;
};

/* Creates an instance of conn: options checked and applied, init called. NULL with errstr
 * on failure. */
sl_instance *sl__instance_new(sl_context *ctx, const sl_connector *conn, unsigned role,
                              const char *name, const sl_options *opts, char *errstr,
                              size_t errsize);
void sl__instance_destroy(sl_instance *ins);

/* Receivers (sl_receiver.c). */
void sl__receiver_init(sl_receiver *r);
void sl__receiver_destroy(sl_receiver *r);
/* Cuts the current block so that it waits for the next batch. */
void sl__receiver_cut(sl_instance *ins);
/* Takes every cut block into a dataset for batch t (one partition per block). */
int sl__receiver_take(sl_instance *ins, int64_t t, sl_dataset **out);
/* Wakes threads blocked in sl_receiver_push; they return SL_ERR_STATE. */
void sl__receiver_close(sl_instance *ins);

/* ==== Outputs ==== */

typedef struct sl_output {
    sl_stream *stream;
    sl_instance *sink; /* a sink connector, or NULL */
    sl_foreach_fn foreach;
    void *opaque;
    char name[64];
    struct sl_output *next;
} sl_output;

/* ==== Context ==== */

typedef struct sl_job {
    int64_t time;
    size_t ninputs;
    sl_dataset **inputs; /* one per source, in source order */
    char inputs_desc[1024]; /* every input's description, for sinks' manifests */
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
    sl_checkpoint *ckpt;        /* NULL without checkpoint_dir */
    int64_t first_batch;        /* the timer's first batch time */

    pthread_mutex_t lock; /* state, the job queue, infos */
    pthread_cond_t cond;
    sl_ctx_state state;
    bool graceful;
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
    int64_t start_time;

    sl_batch_info *infos; /* ring of completed batch infos */
    size_t ninfos, info_next;

    _Atomic uint64_t batches_completed;
    _Atomic uint64_t records_received;
    _Atomic uint64_t records_processed;
    _Atomic uint64_t records_failed;
    int64_t last_sched_delay, last_proc_time, last_total_delay;
};

/* Generates and runs the batch at time t on the calling thread, with no timer or job
 * thread: for tests. The first call fixes the zero time at t - batch interval. Sources
 * need not be started; receivers' pushed records go into the batch. */
int sl__context_step(sl_context *ctx, int64_t t, sl_batch_info *info);

/* The pipeline's structure as text, one line per source, stream and output: its hash is
 * the checkpoint's fingerprint. Caller frees. */
char *sl__graph_describe(sl_context *ctx);

/* Records a rejected record of node: counted, the first few logged with where it came from. */
void sl__record_failed(sl_stream *node, const sl_record *r, int err);

#endif

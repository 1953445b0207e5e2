/* kafka.h -- the kafka connector's context structs: the source (direct mode, Spark's direct
 * stream; receiver mode, a consumer-group member with a write-ahead log) and the sink (a
 * producer), plus the functions the files of the connector share. */
#ifndef SL_KAFKA_H
#define SL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "sl_connector.h"
#include "sl_util.h"
#include "sl_wal.h"
#include "kafka_ranges.h"

#define SL_KAFKA_EMBEDDED "embedded"

/* The enumerated options, each in the order of its choices in the option table. */

typedef enum sl_kafka_mode {
    SL_KAFKA_MODE_DIRECT,
    SL_KAFKA_MODE_RECEIVER,
} sl_kafka_mode;

typedef enum sl_kafka_start {
    SL_KAFKA_START_EARLIEST,
    SL_KAFKA_START_LATEST,
    SL_KAFKA_START_COMMITTED,
} sl_kafka_start;

typedef enum sl_kafka_oor {
    SL_KAFKA_OOR_FAIL,
    SL_KAFKA_OOR_EARLIEST,
    SL_KAFKA_OOR_LATEST,
} sl_kafka_oor;

/* librdkafka's partitioners, in the order of the sink's partitioner option. */
#define SL_KAFKA_PARTITIONERS                                                                      \
    "murmur2_random|murmur2|consistent_random|consistent|random|fnv1a|fnv1a_random"

typedef enum sl_kafka_format {
    SL_KAFKA_FORMAT_TEXT,
    SL_KAFKA_FORMAT_JSON,
    SL_KAFKA_FORMAT_BYTES,
} sl_kafka_format;

/* ==== Direct mode ==== */

/* One partition assigned to a direct source. */
typedef struct sl_kafka_part {
    const char *topic; /* interned: lives as long as the source */
    int32_t partition;
    rd_kafka_queue_t *queue;    /* its own fetch queue (not forwarded to the consumer's) */
    int64_t next;               /* where the next batch starts (the generation cursor) */
    int64_t read;               /* where the queue and stash continue */
    int64_t done;               /* every batch up to here completed; committed */
    int64_t committed;          /* last offset sent in a commit; -1 none */
    int64_t latest;             /* high watermark at the last batch; -1 unknown */
    rd_kafka_message_t **stash; /* messages fetched past a batch's end, in offset order */
    size_t nstash, capstash;
    int want;                /* SL_KAFKA_WANT_*: how its start offset is still to be found */
    bool assigned;           /* handed to librdkafka (rd_kafka_*assign) */
    bool broken;             /* out of range with on_offset_out_of_range: fail */
    int64_t broken_reported; /* ms, when the breakage was last reported */
    int64_t stuck_at;        /* a range ended short here last time (a gap): do not wait */
    int64_t jump_to;         /* out of range: the next batch starts here; -1 none */
    /* Where other sinks are, ahead of next (input positions): a batch reads this partition
     * alone and stops at cut[0], so that each sink either holds all of it or none. */
    int64_t cut[SL_POSITION_CUTS];
    size_t ncut;
    bool later; /* came after the first assignment (for the start without positions) */
} sl_kafka_part;

/* How the start offset of a partition is found. */
#define SL_KAFKA_WANT_NONE      0 /* known: next is set */
#define SL_KAFKA_WANT_COMMITTED 1 /* the group's committed offset, else the fallback */
#define SL_KAFKA_WANT_EARLIEST  2
#define SL_KAFKA_WANT_LATEST    3
#define SL_KAFKA_WANT_SINKS     4 /* where the sinks are (input positions), else as above */

/* Headers of the messages of a chunk or range, in record order: they borrow the names and
 * values of the messages. Grown as needed and reused (no allocation per message). The metas
 * point into it only once sl__kafka_hdrs_link ran: the array may move while it fills. */
typedef struct sl_kafka_hdrs {
    sl_header *v;
    size_t n, cap;
} sl_kafka_hdrs;

/* The records of one range while a direct batch is read: they borrow the bytes of the
 * messages held until the engine copied them. */
typedef struct sl_kafka_rbuf {
    sl_record *recs;
    sl_record_meta *metas;
    rd_kafka_message_t **held;
    size_t n, cap;
    sl_kafka_hdrs hdrs;
} sl_kafka_rbuf;

/* A position restored from the engine's checkpoint (direct mode). */
typedef struct sl_kafka_saved {
    const char *topic; /* interned */
    int32_t partition;
    int64_t offset;
} sl_kafka_saved;

/* A range of a generated batch. */
typedef struct sl_kafka_range {
    const char *topic; /* interned */
    int32_t partition;
    int64_t from, until;
} sl_kafka_range;

/* A batch generated and not yet known to be complete. */
typedef struct sl_kafka_pending {
    int64_t time;
    sl_kafka_range *ranges;
    size_t n;
    struct sl_kafka_pending *next;
} sl_kafka_pending;

/* ==== Receiver mode ==== */

/* ==== The source ==== */

typedef struct sl_kafka_src {
    sl_instance *ins; /* first, as in the sink: librdkafka's log callback finds it there; set
                       * first in init, NULL means init never ran */

    /* Options, filled by the engine. */
    sl_kafka_mode mode;
    const char *brokers;
    const char *topics;
    const char *topic_pattern;
    const char *group;
    const char *group_instance_id; /* static membership: group.instance.id */
    sl_kafka_start start;
    sl_kafka_start start_fallback; /* EARLIEST or LATEST */
    double max_rate_per_partition;
    int64_t min_rate_per_partition;
    double initial_rate;
    sl_kafka_oor oor;
    sl_kafka_format format;
    const char *properties;
    int64_t poll_timeout;     /* ms */
    int64_t metadata_refresh; /* ms */
    int64_t embedded_partitions;
    bool embedded_sample;
    double embedded_rate;
    bool headers_opt;              /* read the messages' headers (they cost a parse per message) */
    sl_receiver_wal_opts wal_opts; /* wal, wal_segment_size, wal_fsync */

    /* Parsed options. */
    bool receiver;
    char **topic_list; /* NULL-terminated, from topics */
    size_t ntopic_list;
    regex_t pattern; /* from topic_pattern */
    bool has_pattern;
    char *bootstrap; /* brokers, or the embedded cluster's address */
    bool embedded;
    const char *name; /* instance name */
    int64_t batch_ms;

    /* librdkafka. */
    rd_kafka_t *rk;
    bool started;
    _Atomic bool stop;

    /* Interned topic names (never freed before destroy). */
    char **interned;
    size_t ninterned, capinterned;

    /* Reporting. */
    _Atomic uint64_t malformed; /* JSON records skipped */
    _Atomic uint64_t oversize;
    _Atomic bool brokers_down; /* an outage was reported and has not ended */
    int64_t down_reported;     /* ms */

    /* Direct mode state; lock protects everything below. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when a batch completes or fails */
    bool lock_init;
    sl_kafka_part *parts;
    size_t nparts, capparts;
    bool assigned_once;   /* the first assignment (start applies) happened */
    int64_t next_refresh; /* ms: next metadata look-up (without a group) */
    bool subscribed;      /* group mode: partitions come from the group */
    bool closing;         /* destroy runs: revokes do not wait */
    sl_kafka_pending *pending, *pending_tail;
    bool first_done;       /* a batch completed (initial_rate no longer applies) */
    uint64_t rewinds;      /* failed batches made `next` go back this many times */
    sl_kafka_saved *saved; /* positions restored from the engine's checkpoint */
    size_t nsaved, capsaved;
    bool restored;            /* restore() gave them: they come before anything else */
    bool missing_reported;    /* a missing topic was reported */
    size_t position_sinks;    /* sinks that record input positions (known once asked) */
    int64_t waiting_since;    /* ms: subscribed and no partition assigned since; 0 assigned */
    int64_t waiting_reported; /* ms: when that was last reported */
    /* Buffers reused by every batch. */
    sl_kafka_rbuf *rbufs; /* one per range of a batch */
    size_t caprbufs;
    rd_kafka_message_t **chunk; /* READ_CHUNK messages taken from a queue at once */
    int64_t *from_buf, *latest_buf, *until_buf;
    size_t capbuf;

    /* Receiver mode state. */
    pthread_t thread;
    bool thread_started;
    sl_receiver_log *rlog; /* pushes (with their offsets when there is no log) and the log */
    sl_wal *wal;           /* rlog's log, NULL when there is none */
    rd_kafka_topic_partition_list_t *appended; /* next offsets appended to the WAL (thread) */
    int64_t last_sync;                         /* ms (thread) */
    bool dirty;           /* appended since the last sync and commit (thread) */
    bool recv_paused;     /* the assignment is paused while a push waits (thread) */
    bool recv_reassigned; /* a rebalance assigned partitions since the last pause (thread) */
    int recv_nassigned;   /* partitions the group gave the receiver (its rebalance callback) */
    /* The syncer thread: fsyncs the log and then commits, while the receiver goes on. */
    pthread_t sync_thread;
    bool sync_started;
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_cond;
    rd_kafka_topic_partition_list_t *sync_req; /* commit these once the log is fsynced */
    bool sync_busy;
    bool sync_stop;
} sl_kafka_src;

/* ==== The sink ==== */

typedef struct sl_kafka_sink {
    sl_instance *ins; /* first: see sl_kafka_src */

    /* Options. */
    const char *brokers;
    const char *topic;
    const char *properties;
    bool headers;          /* forward the records' Kafka headers */
    int64_t flush_timeout; /* ms */
    int partitioner;       /* an index into SL_KAFKA_PARTITIONERS */

    rd_kafka_t *rk;
    char *bootstrap;
    bool embedded;
    _Atomic uint64_t failed;    /* delivery failures of the current write, retried */
    _Atomic bool topic_missing; /* the current write met "unknown topic" */
    bool missing_reported;      /* the missing topic was logged; cleared by a delivered batch */
    char first_error[192];
    /* Messages the broker refused for what they are (too large, invalid): rejected after
     * the flush, as records (dead letters), not retried. Guarded by err_lock. */
    struct sl_kafka_refused {
        const sl_record *r;
        rd_kafka_resp_err_t err;
    } * refused;
    size_t nrefused, refused_cap;
    bool refused_nomem;
    pthread_mutex_t err_lock;
    bool lock_init;

    /* Transactions (exactly-once v2): options. */
    bool transactional;
    const char *transactional_id; /* NULL: <pipeline>-<sink>-<instance> */
    const char *instance;         /* NULL: the host name */
    const char *group;            /* the consumer group whose offsets go in the transaction */
    int64_t transaction_timeout;  /* ms */
    /* Parsed, and state. */
    char *txn_id;       /* the transactional.id in use */
    bool txn_ready;     /* init_transactions succeeded on rk */
    char *txn_group;    /* the group claimed (sl__kafka_txn_group_claim), NULL for none */
    rd_kafka_t *pos_rk; /* a consumer of group for its committed offsets (positions); made
                         * on first use, never subscribes; guarded by pos_lock */
    pthread_mutex_t pos_lock;

    /* Changelog mode (kafka_changelog.c): the instance is a stateful stream's changelog. */
    bool changelog;         /* known at start (sl_instance_is_changelog) */
    char *group_found;      /* group unset: the group of the kafka source of the input */
    int32_t cl_partitions;  /* the changelog topic's partitions; 0 until looked up */
    struct sl_kafka_clpos { /* the position each marker holds, written or restored */
        char *source, *topic;
        int32_t partition;
        int64_t next;
    } * clpos;
    size_t nclpos, capclpos;
    pthread_mutex_t cl_lock; /* guards clpos */
    rd_kafka_t *restore_rk;  /* a read_committed consumer for restores; restore_lock */
    pthread_mutex_t restore_lock;
} sl_kafka_sink;

/* ==== kafka_config.c ==== */

/* Checks and parses the source's options. Returns SL_OK or SL_ERR_INVAL with errstr. */
int sl__kafka_src_config(sl_kafka_src *ctx, char *errstr, size_t errsize);
/* Checks the sink's options and sets ctx->txn_id when transactional. SL_OK or SL_ERR_INVAL
 * with errstr. */
int sl__kafka_sink_config(sl_kafka_sink *ctx, char *errstr, size_t errsize);
/* Sets ctx->txn_id: transactional_id, else <pipeline>-<sink>-<instance or host name>.
 * SL_OK, SL_ERR_INVAL or SL_ERR_NOMEM with errstr. */
int sl__kafka_sink_txn_id(sl_kafka_sink *ctx, char *errstr, size_t errsize);
/* What a librdkafka configuration is for: its defaults differ. */
typedef enum sl_kafka_role {
    SL_KAFKA_DIRECT,   /* a consumer with a fetch queue per partition */
    SL_KAFKA_RECEIVER, /* a consumer whose partitions share one queue */
    SL_KAFKA_PRODUCER,
} sl_kafka_role;

/* A librdkafka configuration: bootstrap servers, sluice's defaults for the role, then
 * properties ("key=value" items), which override them. NULL with errstr naming the bad
 * property. The caller owns the result (rd_kafka_conf_destroy, or rd_kafka_new takes it). */
rd_kafka_conf_t *sl__kafka_conf_new(sl_instance *ins, const char *bootstrap, const char *properties,
                                    sl_kafka_role role, char *errstr, size_t errsize);
/* True when a librdkafka property name looks like it holds a secret. */
bool sl__kafka_secret_key(const char *key);
/* Routes librdkafka's logs and errors to the instance's log (set on every conf). */
void sl__kafka_conf_logging(rd_kafka_conf_t *conf, sl_instance *ins);
/* True when the topic is one the source reads (topics or topic_pattern). */
bool sl__kafka_topic_wanted(const sl_kafka_src *ctx, const char *topic);
/* The interned copy of a topic name (lives as long as ctx); NULL when out of memory. */
const char *sl__kafka_intern(sl_kafka_src *ctx, const char *topic);

/* ==== kafka_msg.c ==== */

/* Fills r (and meta) from m, borrowing its bytes. m's headers, if any, are appended to hdrs
 * (meta->nheaders says how many; meta->headers stays NULL until sl__kafka_hdrs_link).
 * Returns SL_OK, SL_ERR_RECORD for a record that format json rejects, or SL_ERR_TOOBIG for
 * one over max_record_size; both are counted and reported with their topic, partition and
 * offset; SL_ERR_NOMEM when hdrs cannot grow. */
int sl__kafka_msg_record(sl_kafka_src *ctx, const rd_kafka_message_t *m, const char *topic,
                         sl_record *r, sl_record_meta *meta, sl_kafka_hdrs *hdrs);
/* Points the metas of recs[0..n) that have headers at their place in hdrs, in order. */
void sl__kafka_hdrs_link(sl_record_meta *metas, size_t n, sl_kafka_hdrs *hdrs);
/* Maps a librdkafka error to an sl_err. */
int sl__kafka_err(rd_kafka_resp_err_t err);
/* sluice check --connect: a TCP connect to each bootstrap broker (kafka_probe.c). */
int sl__kafka_src_probe(void *ctx, sl_probe_report_fn report, void *opaque);
int sl__kafka_sink_probe(void *ctx, sl_probe_report_fn report, void *opaque);

/* ==== kafka_embedded.c ==== */

/* Starts (or shares) the in-process mock cluster with the topics created (partitions each)
 * and, when sample is true, filled with text lines and fed rate lines per second. Returns
 * its bootstrap address (owned by the caller) or NULL with errstr. */
char *sl__kafka_embedded_acquire(const char *const *topics, int partitions, bool sample,
                                 double rate, char *errstr, size_t errsize);
void sl__kafka_embedded_release(void);

/* ==== kafka_direct.c ==== */

int sl__kafka_direct_start(sl_kafka_src *ctx);
int sl__kafka_direct_next_batch(sl_kafka_src *ctx, int64_t batch_time, sl_batch_input *in);
void sl__kafka_direct_done(sl_kafka_src *ctx, int64_t batch_time);
void sl__kafka_direct_failed(sl_kafka_src *ctx, int64_t batch_time);
void sl__kafka_direct_destroy(sl_kafka_src *ctx);
/* After a restart: reads again the ranges of a batch the checkpoint holds as pending
 * (definition: what next_batch set), and continues after the last generated batch. */
int sl__kafka_direct_replay(sl_kafka_src *ctx, int64_t batch_time, const char *definition,
                            sl_batch_input *in);
int sl__kafka_direct_restore(sl_kafka_src *ctx, const char *definition);

/* ==== kafka_receiver.c ==== */

int sl__kafka_receiver_start(sl_kafka_src *ctx);
void sl__kafka_receiver_done(sl_kafka_src *ctx, int64_t batch_time);
void sl__kafka_receiver_failed(sl_kafka_src *ctx, int64_t batch_time);
void sl__kafka_receiver_stop(sl_kafka_src *ctx);
void sl__kafka_receiver_destroy(sl_kafka_src *ctx);

/* ==== Shared helpers (kafka.c) ==== */

/* Commits offsets and waits at most timeout_ms for the result. Returns SL_OK or an error
 * (logged). Any thread. */
int sl__kafka_commit_sync(sl_kafka_src *ctx, rd_kafka_topic_partition_list_t *offsets,
                          int64_t timeout_ms);
/* Sets ctx->bootstrap: the brokers, or the embedded cluster (started here). */
int sl__kafka_src_bootstrap(sl_kafka_src *ctx);
/* librdkafka's error callback of the sources (opaque: the sl_kafka_src): brokers down are
 * reported once (sl__kafka_report_down), fatal errors as errors, the rest at debug level. */
void sl__kafka_src_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque);
/* Reports a broker outage once (then at debug level) and its end. */
void sl__kafka_report_down(sl_kafka_src *ctx, const char *what, rd_kafka_resp_err_t err);
void sl__kafka_report_up(sl_kafka_src *ctx);
/* Subscribes ctx->rk to the topics and the pattern (as a librdkafka regex, "^..."). SL_OK,
 * or SL_ERR_INVAL with errstr. */
int sl__kafka_subscribe(sl_kafka_src *ctx, char *errstr, size_t errsize);
/* Writes the partitions of l, "topic[partition] ...", into buf (cut to size). */
void sl__kafka_list_text(const rd_kafka_topic_partition_list_t *l, char *buf, size_t size);
/* Takes (take) or gives up the partitions l of a rebalance: incrementally under the
 * cooperative protocol (coop), else by setting the whole assignment (to l, or to none).
 * Returns false with errstr when librdkafka refused. @locality a rebalance callback. */
bool sl__kafka_rebalance_apply(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, bool coop,
                               bool take, char *errstr, size_t errsize);

/* The consumers of the process by group, for the transactional sink's consumer group
 * metadata (KIP-447: the generation and member id with which the broker fences a zombie's
 * offsets). A direct source (src; NULL in tests) registers its consumer once it subscribed
 * and unregisters it before destroying it. @locality any thread (a mutex) */
void sl__kafka_group_register(const char *group, rd_kafka_t *rk, const sl_kafka_src *src);
void sl__kafka_group_unregister(const char *group, rd_kafka_t *rk);
/* The metadata of group's registered consumer, now (the caller destroys it with
 * rd_kafka_consumer_group_metadata_destroy); NULL when none is registered. */
rd_kafka_consumer_group_metadata_t *sl__kafka_group_lookup(const char *group);
/* Groups whose committed offsets a transactional sink of the process writes in its
 * transactions (its positions). A direct source of such a group commits none of its own: a
 * plain commit of the offsets it completed (where the lowest sink was when it took a
 * partition, say) would move the group's offsets back behind what the sink holds, and the
 * sink would write that input again after the next move. Counted: each sink claims once and
 * releases when destroyed. @locality any thread (a mutex) */
void sl__kafka_txn_group_claim(const char *group);
/* The sink's claim of its group, once it knows it (a changelog learns it at its first
 * batch). @locality start or write */
void sl__kafka_txn_claim(sl_kafka_sink *ctx);
void sl__kafka_txn_group_release(const char *group);
bool sl__kafka_txn_group_claimed(const char *group);
/* The group of the registered source named source that reads topic, copied into group;
 * false when none or more than one (in different contexts) answers. */
bool sl__kafka_group_of_source(const char *source, const char *topic, char *group, size_t size);

/* ==== kafka_sink.c: the producer, shared with kafka_txn.c and kafka_changelog.c ==== */

/* True for an error that refuses the message for what it is: sending it again would not
 * help. */
bool sl__kafka_record_error(rd_kafka_resp_err_t err);
/* librdkafka's error callback of the sink's clients (opaque: the sl_kafka_sink). */
void sl__kafka_sink_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque);
/* Creates the producer ctx->rk: with transactional.id and idempotence when transactional.
 * SL_OK or SL_ERR_INVAL (reported). */
int sl__kafka_producer_new(sl_kafka_sink *ctx);
/* Produces r to the topic (waiting for room in librdkafka's queue); its opaque is r.
 * Returns the producer's error; on one that refuses the record itself, why says so. */
rd_kafka_resp_err_t sl__kafka_sink_produce(sl_kafka_sink *ctx, const sl_record *r, char *why,
                                           size_t whysize);
/* Starts an attempt: no failure, no refused message yet. */
void sl__kafka_attempt_reset(sl_kafka_sink *ctx);
/* A copy of the records the broker refused so far (*n of them; NULL when none, or out of
 * memory with *n > 0). The caller frees it. */
const sl_record **sl__kafka_refused_records(sl_kafka_sink *ctx, size_t *n);
/* Why the broker refused the first refused message since the last reset; 0 when none. */
rd_kafka_resp_err_t sl__kafka_refused_error(sl_kafka_sink *ctx);

/* ==== kafka_txn.c: transactions (exactly-once v2) ==== */

/* init_transactions: fences an older producer with the same transactional.id (a restarted
 * instance's zombie) and aborts the transaction it left open. SL_OK; SL_ERR_RETRY when the
 * brokers did not answer in time (call it again); SL_ERR_FATAL when the producer cannot be
 * used (reported). @locality start or write */
int sl__kafka_txn_init(sl_kafka_sink *ctx);
/* A batch in one transaction with its input offsets (see kafka_txn.c). @locality the sink's
 * output thread */
int sl__kafka_txn_write(sl_kafka_sink *ctx, const sl_batch_output *out);
/* The positions callback: the group's committed offsets (-1 everywhere when not
 * transactional; the changelog's markers in changelog mode). */
int sl__kafka_sink_positions(void *data, const char *pipeline, sl_position *pos, size_t n,
                             char *errstr, size_t errsize);
/* The group's committed offsets of l's partitions, in l (-1 where none). SL_OK or
 * SL_ERR_RETRY with errstr. @locality any (pos_lock) */
int sl__kafka_committed_fetch(sl_kafka_sink *ctx, rd_kafka_topic_partition_list_t *l, char *errstr,
                              size_t errsize);
/* Handles e (taken) of the transactional call what, for the batch out: SL_ERR_RETRY (the
 * transaction aborted), SL_ERR_FENCED (the producer made anew, or the consumer generation
 * of the offsets stale: member) or SL_ERR_FATAL. */
int sl__kafka_txn_fail(sl_kafka_sink *ctx, const sl_batch_output *out, const char *what,
                       rd_kafka_error_t *e, bool member);
/* A new attempt of batch out: the attempt's state reset, a transaction begun. SL_OK or the
 * result of sl__kafka_txn_fail. */
int sl__kafka_txn_begin(sl_kafka_sink *ctx, const sl_batch_output *out);
/* Sends offsets to the open transaction with the group's consumer metadata (the registered
 * consumer's, with its generation, when there is one), then commits it. SL_OK or the result
 * of sl__kafka_txn_fail. */
int sl__kafka_txn_finish(sl_kafka_sink *ctx, const sl_batch_output *out,
                         const rd_kafka_topic_partition_list_t *offsets);

/* ==== kafka_changelog.c: changelog mode ==== */

/* The key of a position marker: "\0sluice.position\0" SOURCE "\0" TOPIC (see
 * kafka_changelog.c). */
#define SL_KAFKA_MARKER_PREFIX     "\0sluice.position\0"
#define SL_KAFKA_MARKER_PREFIX_LEN (sizeof(SL_KAFKA_MARKER_PREFIX) - 1)

/* What a changelog read found. */
typedef struct sl_kafka_restore_stats {
    uint64_t records, markers, bytes; /* state records (fn's calls), markers, their bytes */
    int64_t from, end;                /* the offsets read: [from, end) */
    int64_t ms;
} sl_kafka_restore_stats;

/* Called by start when the instance is a changelog: forces transactional on. SL_OK or an
 * error with errstr. */
int sl__kafka_changelog_start(sl_kafka_sink *ctx, char *errstr, size_t errsize);
/* A batch's state changes and position markers in one transaction (write in changelog
 * mode). @locality the sink's output thread */
int sl__kafka_changelog_write(sl_kafka_sink *ctx, const sl_batch_output *out, char *errstr,
                              size_t errsize);
/* The restore_state callback. @locality the engine's timer thread (restore_lock) */
int sl__kafka_changelog_restore(void *data, const char *pipeline, sl_position *pos,
                                sl_restore_fn fn, void *arg, char *errstr, size_t errsize);
/* The positions callback in changelog mode: the markers' positions, read from the topic. */
int sl__kafka_changelog_positions(sl_kafka_sink *ctx, sl_position *pos, size_t n, char *errstr,
                                  size_t errsize);
/* Frees what changelog mode holds. */
void sl__kafka_changelog_destroy(sl_kafka_sink *ctx);
/* A consumer for changelog reads: isolation.level=read_committed, partition EOF events,
 * the brokers and properties given (ins and opaque, whose first member is an sl_instance
 * pointer, for the logs: both may be NULL). NULL with errstr. */
rd_kafka_t *sl__kafka_changelog_consumer(sl_instance *ins, const char *bootstrap,
                                         const char *properties, void *opaque, char *errstr,
                                         size_t errsize);
/* Reads partition pos->partition of topic with rk (a consumer of
 * sl__kafka_changelog_consumer) from its low watermark to its last stable offset, calling
 * fn(arg, r) for each state record in order (fn may be NULL: markers only), and sets
 * pos->next to the last marker of pos->source and pos->topic (-1: none). SL_OK;
 * SL_ERR_INVAL when the topic or the partition does not exist; SL_ERR_RETRY when the brokers
 * do not answer or the read makes no progress for stall_ms; fn's error. ins (may be NULL):
 * its stop ends the read (SL_ERR_RETRY). errstr says why. */
int sl__kafka_changelog_read(rd_kafka_t *rk, const sl_instance *ins, const char *topic,
                             sl_position *pos, sl_restore_fn fn, void *arg, int64_t stall_ms,
                             sl_kafka_restore_stats *st, char *errstr, size_t errsize);
/* The marker key of source and topic in buf; its length (> size: cut). */
size_t sl__kafka_marker_key(const char *source, const char *topic, char *buf, size_t size);

/* kafka_deadletter.c: the dead-letter target errors.dead_letter.type: kafka, provided by
 * the kafka sink. */
extern const struct sl_dl_target sl__kafka_dl_target;

#endif /* SL_KAFKA_H */

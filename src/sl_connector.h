/* sl_connector.h -- the connector interface: what a source or sink implements, and the
 * engine services (receivers, logging, options) it may call. Included by connectors/, and
 * installed with sluice.h for programs that bring their own connector. */
#ifndef SL_CONNECTOR_H
#define SL_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice.h"

/* The connector interface is public API, exported like sluice.h. */
#pragma GCC visibility push(default)

/* An instance of a connector in a pipeline: its name, options, statistics and, for
 * receiver sources, the block generator. Owned by the engine. */
typedef struct sl_instance sl_instance;

/* ==== Source input of one batch (for sources that define batches themselves) ==== */

/* What a direct source (one that is not a receiver) hands to the engine for a batch. It
 * appends partitions of records with sl_batch_input_add_records(). */
typedef struct sl_batch_input sl_batch_input;

/* Adds a partition whose records are copied (bytes too) into batch memory. A NULL key or
 * value stays NULL, an empty one stays empty (as in sl_receiver_push). */
int sl_batch_input_add_records(sl_batch_input *in, const sl_record *recs, size_t n);
/* Replayable direct sources: the definition of this batch's input (e.g. Kafka offset ranges
 * as JSON), written to the checkpoint before the batch runs; after a restart, replay() gets
 * it back to read the same records again. Copied. */
int sl_batch_input_set_definition(sl_batch_input *in, const char *definition);
/* Describes the batch's input for the batch info and the checkpoint (offset ranges, file
 * names): appended, printf-style. */
void sl_batch_input_describe(sl_batch_input *in, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ==== Input positions: exactly once across a consumer group ====
 * A partitioned, replayable source (Kafka direct) declares the ranges each batch reads;
 * sinks that record, in the same transaction as the data, where each partition's input is
 * written up to (its position) give those positions back. Whatever instance takes a
 * partition then resumes where the sinks are, not where its own checkpoint was, and a
 * sink writes a batch only when each range starts exactly at its position (a
 * compare-and-set), so a stale instance can never write over a newer owner. */

/* Records [from, until) of one partition of a source in a batch. */
typedef struct sl_input_range {
    const char *source; /* the source instance's name */
    const char *topic;
    int32_t partition;
    int64_t from, until;
} sl_input_range;

/* A partition's position in a sink: the offset after the last record it holds. */
typedef struct sl_position {
    const char *source, *topic; /* in */
    int32_t partition;          /* in */
    int64_t next;               /* out: -1 when the sink holds nothing of it */
} sl_position;

/* Direct sources with positions: declares that the batch reads [from, until) of topic's
 * partition (copied). Call it in next_batch and replay for every non-empty range. */
int sl_batch_input_add_range(sl_batch_input *in, const char *topic, int32_t partition, int64_t from,
                             int64_t until);

/* What a sink that records positions does with a batch's ranges (out->ranges): SL_OK to
 * write the batch and move every range's partition to its until, when each range starts
 * at the partition's position (or the sink holds nothing of it); SKIP when every range
 * ends at or before the position (the batch is already held: write nothing, report
 * success); FENCED otherwise (return SL_ERR_FENCED without writing). */
typedef enum sl_position_check {
    SL_POSITION_WRITE = 0,
    SL_POSITION_SKIP = 1,
    SL_POSITION_FENCED = 2,
} sl_position_check;

/* The rule above for one range, given the sink's position of its partition (-1: none). */
sl_position_check sl_position_check_range(const sl_input_range *r, int64_t position);

/* ==== Keyed state that moves with its partitions (changelogs) ====
 * A stateful stream given a changelog sink (sl_stream_changelog; YAML `changelog:`) keeps
 * its state per task: a key belongs to the partition of the partitioned source its records
 * come from (their meta->partition), so every key has one owner across a consumer group.
 * After every other output of a batch has committed, the changelog sink gets the batch's
 * state changes: one record per key whose state changed (key: the key; value: the state,
 * encoded by the engine; meta->partition: the task; a NULL value: the key has no state any
 * more), and out->ranges, the input positions of the sources the stream reads, which it
 * records in the same transaction as the changes. When a source takes a partition (it asks
 * where the sinks are, sl_instance_sink_positions), the engine asks the changelog sink to
 * read the task's state back (restore_state); the position it returns counts as a sink's, so the
 * source replays from there what the other sinks already hold (they skip it) and the state
 * catches up. */

/* Called by a changelog sink's restore for each state record, in the order written. */
typedef int (*sl_restore_fn)(void *arg, const sl_record *r);

/* True for a sink instance that is a stream's changelog (see above). */
bool sl_instance_is_changelog(const sl_instance *ins);

/* ==== Sink output of one batch ==== */

typedef struct sl_batch_output {
    int64_t batch_time;   /* ms */
    const sl_dataset *ds; /* borrowed for the call */
    const char *pipeline; /* application name */
    const char *sink;     /* sink instance name */
    const char *inputs;   /* the batch's input as a JSON object: per source, its checkpoint
                           * definition (e.g. Kafka offset ranges) or its description */
    int attempt;          /* 0 on the first try, then 1, 2, ... */
    int64_t window_ms;    /* the span of input the dataset covers, ms: its records came in
                           * [batch_time - window_ms, batch_time). A window's length for a
                           * windowed stream (and what is derived from it), else the batch
                           * interval. 0 when unknown (treat as batch_time). */
    bool record_windows;  /* event-time windows: each record is a window [ts - window_ms, ts)
                           * of its own (use sl_batch_output_when) */
    /* The engine's reject queue, for sl_batch_output_reject; may be NULL. */
    struct sl_rejects *rejects;
    /* The ranges of partitioned sources this batch read (sl_batch_input_add_range), for
     * sinks that record positions. Borrowed for the call. */
    const sl_input_range *ranges;
    size_t nranges;
} sl_batch_output;

/* When record r of a batch output was made: the batch's time and its window's bounds. */
typedef struct sl_record_when {
    int64_t batch_time;
    int64_t window_start; /* ms: the window is [window_start, window_end) */
    int64_t window_end;
} sl_record_when;

/* The window of r: the batch's, [batch_time - window_ms, batch_time), or with
 * record_windows the record's own event-time window, [r->ts - window_ms, r->ts) (a session's
 * length is its meta's window_ms). */
sl_record_when sl_batch_output_when(const sl_batch_output *out, const sl_record *r);

/* Rejected records (dead letters). A sink calls this for a record it cannot write (a value
 * that does not fit its column, a command the server refused): the record is counted, the
 * first few of a batch are logged with their source, topic, partition and offset (then a
 * summary), and it is queued for the sink's dead-letter target (errors.dead_letter), copied.
 * Rejecting the same record (the same pointer into out->ds) again in an attempt, as a sink
 * that redoes its write does, counts it once. Returns SL_OK: leave the record out and go
 * on; or SL_ERR_FATAL under errors.tolerance none (reported): abort the write without
 * committing and return it; the pipeline stops and the batch runs again after a restart
 * (likewise SL_ERR_RETRY when it cannot be queued for lack of memory: the batch is retried).
 * @locality the thread of the sink's write */
int sl_batch_output_reject(const sl_batch_output *out, const sl_record *r, const char *why);
/* Makes the records rejected so far durable in the dead-letter target. Call it just before
 * the sink's own commit (COMMIT, EXEC, rename), so that the dead letters of a committed batch
 * exist. SL_OK (also without a target), or SL_ERR_RETRY (reported): do not commit, return
 * it; the batch is retried and its dead letters may be written twice (at least once). The
 * engine writes what is left after a successful write itself, for sinks that do not call
 * this or reject records after their commit. */
int sl_batch_output_flush_rejects(const sl_batch_output *out);

/* ==== The connector ==== */

#define SL_RECEIVER 0x4u /* source with a receiver thread: the engine cuts its blocks */
/* A test double: `sluice test` builds the pipeline under test with the connector of this
 * flag in place of every source (options: batches, JSON records per batch) and every sink
 * (option: path, where each batch is appended as a JSON line). */
#define SL_TEST_DOUBLE 0x8u

/* A connector: one struct, filled with designated initializers. Every callback but init is
 * optional (NULL: nothing to do), except next_batch for direct sources and write for sinks.
 * ctx is the connector's context struct (ctx_size bytes, owned by the engine, freed after
 * destroy). Calls for one instance never overlap unless said otherwise; a callback that
 * fails with errstr says why in it (NUL-terminated, at most errsize bytes). Besides, while
 * start or write runs, sl_instance_error() called on the same thread copies its message
 * into that call's errstr, so an error reported deep inside reaches it too; the engine
 * shows sl_err2str() of the result when errstr stays empty. */
struct sl_connector {
    const char *name; /* the YAML `type:` */
    const char *description;
    unsigned flags;           /* SL_SOURCE | SL_SINK | SL_RECEIVER */
    const sl_option *options; /* parsed into the context struct at each offset */
    size_t ctx_size;          /* the context struct, zeroed then filled with options */

    /* Checks the parsed options and prepares. No thread, no connection yet. ins is valid
     * until destroy returns. SL_OK, or an error with errstr: the instance is not created
     * (destroy is still called).
     * @locality the thread adding the source or sink (sl_context_add_source, sl_stream_to,
     * the YAML loader) */
    int (*init)(sl_instance *ins, void *ctx, char *errstr, size_t errsize);
    /* Starts threads and connections; receivers start their thread here. SL_OK, or an error
     * with errstr: the context does not start (stop is not called for this instance, stop
     * and destroy are for the others). Sinks start before sources.
     * @locality the thread calling sl_context_start */
    int (*start)(void *ctx, char *errstr, size_t errsize);
    /* Direct sources: appends the input of the batch at batch_time to in (borrowed for the
     * call; what is added is copied). An error gives the batch an empty input for this
     * source (reported).
     * @locality the timer thread (the thread of sl__context_step in tests) */
    int (*next_batch)(void *ctx, int64_t batch_time, sl_batch_input *in);
    /* Sinks: write a batch. out and its dataset are borrowed for the call. SL_OK,
     * SL_ERR_RETRY (retried with backoff: the batch is held, never dropped) or an error (the
     * pipeline stops and the batch stays pending, to run again after a restart), with
     * errstr for anything but SL_OK. The sinks of one batch write concurrently, each on a
     * thread of its own (the job thread when there is one sink): calls for one instance
     * never overlap, calls for different instances may.
     * @locality an output thread of the batch, or the job thread */
    int (*write)(void *ctx, const sl_batch_output *out, char *errstr, size_t errsize);
    /* Sources: batch_time is complete in every sink (commit offsets, release WAL). Also
     * after a batch re-run after a restart to rebuild state.
     * @locality the job thread (the thread of sl__context_step in tests) */
    void (*on_batch_done)(void *ctx, int64_t batch_time);
    /* Sources: an output of batch_time failed, or was retrying when the context stopped:
     * the batch is not complete and stays pending. A source that can read or push its
     * input again (Kafka) does. on_batch_done is not called for that batch.
     * @locality the job thread (the thread of sl__context_step in tests) */
    void (*on_batch_failed)(void *ctx, int64_t batch_time);
    /* Replayable direct sources, after a restart: read again the input of the batch whose
     * definition next_batch set (pending when the process stopped). Must not move the
     * source's position. definition and in are borrowed for the call.
     * @locality the thread calling sl_context_start (or sl__context_step) */
    int (*replay)(void *ctx, int64_t batch_time, const char *definition, sl_batch_input *in);
    /* Replayable direct sources, after a restart and before start: continue after the
     * batch with this definition (the last one generated before the stop; borrowed).
     * @locality the thread calling sl_context_start or sl_context_get_or_create */
    int (*restore)(void *ctx, const char *definition);
    /* Stops threads and flushes; receivers push what they hold before returning. Called
     * once for a started instance: sources when the context stops (before its last batch),
     * sinks after the last batch.
     * @locality the thread calling sl_context_stop or sl_context_destroy, or the engine's
     * stop thread after sl_context_request_stop or a fatal error */
    void (*stop)(void *ctx);
    /* Frees what init and start allocated (not ctx itself). Called once, also when init
     * failed. @locality the thread calling sl_context_destroy (or adding the instance, when
     * init failed) */
    void (*destroy)(void *ctx);

    /* Record headers, for the YAML loader (both optional). A sink that writes the records'
     * headers with these options (the kafka sink unless headers: false, a postgres column
     * header:NAME) says so in wants_headers. A source that supplies headers only on request
     * names its boolean option in headers_option: the loader sets it to true when an op or a
     * sink downstream reads headers, unless the file sets it. */
    bool (*wants_headers)(const sl_options *opts);
    const char *headers_option;

    /* A dead-letter target this connector provides (a choice of errors.dead_letter.type,
     * see sl_deadletter.h), or NULL. */
    const struct sl_dl_target *dead_letter;

    /* Sinks that record input positions (see "Input positions" above): fills pos[i].next
     * for each of pos[0..n), -1 where the sink holds nothing. SL_OK, or an error with errstr
     * (SL_ERR_RETRY: not reachable now, ask again). Must not use the connection of write:
     * it may run while write does. @locality the thread of a source's next_batch (the
     * engine's timer thread) */
    int (*positions)(void *ctx, const char *pipeline, sl_position *pos, size_t n, char *errstr,
                     size_t errsize);

    /* Changelog sinks (see "Keyed state" above): reads back the state held for one partition
     * (pos->source, topic, partition in), calling fn(arg, r) for each state record in the
     * order written (a NULL value removes the key), and sets pos->next to the position that
     * state reflects (the offset after the last input it includes; -1: nothing held). SL_OK
     * or an error with errstr (SL_ERR_RETRY: not reachable now, ask again); fn's error ends
     * the read and is returned. @locality the engine's timer thread */
    int (*restore_state)(void *ctx, const char *pipeline, sl_position *pos, sl_restore_fn fn,
                         void *arg, char *errstr, size_t errsize);
};

/* ==== Engine services for connectors ==== */

const char *sl_instance_name(const sl_instance *ins);
const sl_options *sl_instance_options(const sl_instance *ins);
sl_context *sl_instance_context(const sl_instance *ins);

/* Logs at level with the instance name as prefix. */
void sl_instance_log(const sl_instance *ins, sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records an error shown in the status (last error and its time) and logs it. Called on the
 * thread of a start or write of ins, it also fills that call's errstr. @locality any */
void sl_instance_error(sl_instance *ins, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Marks that a sink lost data when it stopped (messages still queued, dropped), after it
 * said so with sl_instance_error: the context's result (sl_context_await_termination)
 * becomes SL_ERR_IO, so the process does not exit 0. @locality stop (any thread) */
void sl_instance_fail_at_stop(sl_instance *ins);
/* Marks the instance active (connected) or not, for the status. */
void sl_instance_set_active(sl_instance *ins, bool active);
/* Counts records a connector could not take (a sink: a value that does not fit its column)
 * after it reported them: they show in the batch info and the failed-records counter. */
void sl_instance_count_failed(sl_instance *ins, uint64_t n);
/* Counts records a source dropped for exceeding max_record_size. */
void sl_instance_count_oversize(sl_instance *ins, uint64_t n);
/* The engine's max_record_size for this source (bytes). */
size_t sl_instance_max_record_size(const sl_instance *ins);
/* The rate limit in force for a source (records/s, 0 = none): the backpressure estimate
 * (or the initial rate until there is one) capped by max_rate. Receivers get it applied by
 * sl_receiver_push; direct sources apply it themselves. */
double sl_instance_rate_limit(const sl_instance *ins);
/* The backpressure rate alone (estimate, else initial rate; 0 = none or disabled), for
 * direct sources that split it themselves (Kafka: by lag over partitions). */
double sl_instance_backpressure_rate(const sl_instance *ins);
/* Makes this instance a receiver (blocks of sl_receiver_push) or a direct source (next_batch),
 * whatever its connector's SL_RECEIVER flag says: for connectors whose options choose (the
 * kafka source's mode). Call it in init. */
void sl_instance_set_receiver(sl_instance *ins, bool receiver);
/* Where the sinks are, for a partitioned source's partitions: one entry per partition. */
#define SL_POSITION_CUTS 8
typedef struct sl_source_position {
    const char *topic;             /* in */
    int32_t partition;             /* in */
    int64_t next;                  /* out: the lowest position a sink holds; -1 none */
    int64_t cut[SL_POSITION_CUTS]; /* out: the higher positions other sinks hold, rising: a
                                    * batch must not read across one (the sinks ahead
                                    * skip it, the others write it) */
    size_t ncut;                   /* out */
    bool missing; /* out: a sink holds nothing of it while another holds some: that sink
                   * needs the input from where the source would start without positions
                   * (the group's committed offset or `start`), another cut to merge */
} sl_source_position;
/* Asks every sink that records positions where it is for pos[0..n) of this source. *sinks
 * gets how many sinks record positions (0: resume as without them). SL_OK, or an error
 * with errstr (a sink that could not answer: SL_ERR_RETRY, ask again).
 * @locality the source's next_batch thread (the timer thread) */
int sl_instance_sink_positions(sl_instance *ins, sl_source_position *pos, size_t n, size_t *sinks,
                               char *errstr, size_t errsize);
/* Whether this sink instance records input positions, for connectors whose options decide
 * (the kafka sink only when transactional): without it, a connector with a positions
 * callback does. Call it in init. */
void sl_instance_set_positions(sl_instance *ins, bool records);
/* Merges another position v (-1: none) into pos, as a sink's would be (a source's own
 * fallback start for pos->missing). */
void sl_source_position_merge(sl_source_position *pos, int64_t v);
/* True once the engine asked the instance to stop. */
bool sl_instance_stopping(const sl_instance *ins);
/* Partitioned sources: this instance no longer reads partition of topic (a rebalance took
 * it): the keyed state of its task is dropped before the next batch (its new owner restores
 * it from the changelog). @locality the source's threads */
void sl_instance_release_partition(sl_instance *ins, const char *topic, int32_t partition);
/* Sources: waiting for partitions (a consumer group's assignment) or not, for the status
 * page and /api/status. */
void sl_instance_set_waiting(sl_instance *ins, bool waiting);

/* ==== Receivers ====
 * A receiver thread pushes records; the engine cuts them into blocks every block interval
 * and hands the blocks received up to a batch time to that batch, one partition each. */

/* Copies n records (their key, value and meta) into the current block; a NULL key or value
 * stays NULL, an empty one stays empty. Blocks the caller
 * while the receiver holds more unprocessed data than max_buffered or while the rate
 * limiter says so, which is what makes TCP senders slow down: nothing is dropped. Under a
 * rate limit the records go in a few at a time, so one push may span batches. Returns
 * SL_OK, or SL_ERR_STATE when the engine is stopping (the records were still taken). */
int sl_receiver_push(sl_instance *ins, const sl_record *recs, size_t n);
/* Waits (bounded by timeout_ms) until the receiver may push again; true when it may. */
bool sl_receiver_wait_room(sl_instance *ins, int64_t timeout_ms);

/* ==== Connectors that are not in the registry ====
 * A program may bring its own source or sink (Spark's custom receivers). conn must outlive
 * the context. Same results as sl_context_add_source and sl_stream_to. */
sl_stream *sl_context_add_source_connector(sl_context *ctx, const sl_connector *conn,
                                           const char *name, const sl_options *opts, char *errstr,
                                           size_t errsize);
int sl_stream_to_connector(sl_stream *s, const sl_connector *conn, const char *name,
                           const sl_options *opts, char *errstr, size_t errsize);

#pragma GCC visibility pop

#endif /* SL_CONNECTOR_H */

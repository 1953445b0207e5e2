/* sl_deadletter.h -- records a sink rejects: the errors.* options every sink takes, the
 * reject queue of a sink instance, and the interface of the dead-letter targets it writes
 * to. Targets are provided by connectors (struct sl_connector's dead_letter: a file in
 * connectors/file, a Kafka topic in connectors/kafka); the engine names none of them.
 *
 * A sink calls sl_batch_output_reject() (sl_connector.h) for each record it cannot write,
 * and sl_batch_output_flush_rejects() just before its own commit. The engine brackets
 * every write attempt with sl__rejects_begin() and sl__rejects_end(): the first starts the
 * attempt with an empty queue, the second discards the queue of a failed attempt and, after
 * a successful one, writes what is left (retried with backoff until it is written: the
 * batch is held meanwhile), counts and logs a summary.
 *
 * Delivery of dead letters: at least once, never lost once the sink committed, with one
 * exception: rejects a sink discovers after its commit (Redis commands failing inside EXEC)
 * are lost when the process stops without waiting while their target is down. A flush
 * followed by a failed commit writes the same records again at the next attempt. */
#ifndef SL_DEADLETTER_H
#define SL_DEADLETTER_H

#include <stdbool.h>
#include <stdint.h>

#include "sl_connector.h"
#include "sl_util.h"

/* ==== Options (common to every sink) ==== */

/* errors.tolerance, in the order of its choices. */
typedef enum sl_dl_tolerance {
    SL_DL_TOLERANCE_ALL,  /* skip, count, log, dead-letter */
    SL_DL_TOLERANCE_NONE, /* stop */
} sl_dl_tolerance;

/* The values of the engine's errors.* options, applied by the engine to every sink. */
typedef struct sl_dl_conf {
    sl_dl_tolerance tolerance;
    int64_t log_limit; /* rejected records logged one by one per batch */
    int type;          /* errors.dead_letter.type: the index of the target among the
                        * registered ones (sl__deadletter_target), -1 for none */
} sl_dl_conf;

/* The errors.* option table (sl_common_sink_options() returns it): the engine's options,
 * then each registered target's errors.dead_letter.* options. Built at the first call;
 * thread-safe. */
const sl_option *sl__deadletter_options(void);

/* ==== Targets ==== */

/* One rejected record as a target gets it. The bytes are copies owned by the queue. */
typedef struct sl_dl_entry {
    const char *key, *value; /* NULL when the record has none */
    uint32_t key_len, value_len;
    uint8_t num_type; /* sl_num_type: the record's typed value, if any */
    union {
        int64_t i;
        double d;
    } num;
    int64_t ts;
    const char *error;  /* why the sink rejected it */
    const char *source; /* the record's meta; NULL when unknown */
    const char *topic;
    int32_t partition; /* -1 when unknown */
    int64_t offset;    /* -1 when unknown */
} sl_dl_entry;

/* What the entries of one write share. */
typedef struct sl_dl_batch {
    const char *pipeline;
    const char *sink;
    int64_t batch_time;
} sl_dl_batch;

/* A dead-letter target, provided by a connector: it sets the dead_letter field of its
 * struct sl_connector to one of these, and every connector of the registry that has one
 * is a choice of errors.dead_letter.type (in the order of the registry).
 *
 * options are its errors.dead_letter.* keys (the full names), applied by the engine into a
 * zeroed conf of conf_size bytes (strings point into the sink's options, which outlive the
 * target). open checks that configuration without I/O (the target is opened by its first
 * write); write makes n entries durable (a file: written and fsync'ed; Kafka: acknowledged
 * by the broker) or fails with errstr set (some may have been written: the caller writes
 * them all again); close frees.
 * @locality the thread of the sink's writes */
typedef struct sl_dl_target {
    const char *name; /* the value of errors.dead_letter.type */
    const char *doc;  /* where the records go, for the doc of errors.dead_letter.type */
    const sl_option *options;
    size_t conf_size;
    void *(*open)(sl_instance *ins, const void *conf, char *errstr, size_t errsize);
    int (*write)(void *t, const sl_dl_batch *b, const sl_dl_entry *e, size_t n, char *errstr,
                 size_t errsize);
    /* Where the entries go, for logs ("file /var/dead/p-s.jsonl", "kafka topic dlq"). */
    const char *(*describe)(void *t);
    void (*close)(void *t);
} sl_dl_target;

/* The i-th registered target, NULL past the end. */
const sl_dl_target *sl__deadletter_target(size_t i);

/* Appends the JSON line (with its '\n') of e to b: {"pipeline","sink","batch_time","error",
 * "source","topic","partition","offset","ts","key","value"} plus "num" for a typed value;
 * error, source, topic, key and value are text when they are valid UTF-8, else base64 with
 * "<field>_encoding":"base64" (e.g. "topic_encoding"); unknown meta is null. Returns SL_OK, or
 * SL_ERR_NOMEM with b as it was before the call (failed cleared). */
int sl__dl_json_line(sl_buf *b, const sl_dl_batch *bt, const sl_dl_entry *e);

/* ==== The reject queue of a sink instance ==== */

typedef struct sl_rejects sl_rejects;

/* Reads the errors.* options of the sink ins (already checked against the table) and
 * checks the target's configuration: NULL with errstr naming the option when it is wrong
 * (e.g. type kafka in a build without Kafka). No file is opened, no connection made. */
sl_rejects *sl__rejects_new(sl_instance *ins, char *errstr, size_t errsize);
void sl__rejects_destroy(sl_rejects *rj);

/* Starts an attempt: out->rejects is set to rj and the queue emptied. */
void sl__rejects_begin(sl_rejects *rj, sl_batch_output *out);
/* Ends the attempt whose write returned rc: see the file comment. Returns rc, SL_ERR_FATAL
 * when a record was rejected under tolerance none (even if the sink ignored it), or
 * SL_ERR_RETRY when the dead letters could not be written before the context stopped
 * without waiting. On SL_OK, *rejected (may be NULL) is the number of records the
 * attempt left out. @locality the sink's thread */
int sl__rejects_end(sl_rejects *rj, const sl_batch_output *out, int rc, uint64_t *rejected);

/* Records rejected in batches that completed, and dead letters written (a retried attempt
 * may write some twice). */
uint64_t sl__rejects_total(const sl_rejects *rj);
uint64_t sl__rejects_dead_letters(const sl_rejects *rj);

#endif /* SL_DEADLETTER_H */

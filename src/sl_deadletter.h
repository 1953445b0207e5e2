/* sl_deadletter.h -- records a sink rejects: the errors.* options every sink takes, the
 * reject queue of a sink instance, and the dead-letter targets it writes to (a file in the
 * engine, a Kafka topic in connectors/kafka, registered in sl_deadletter.c).
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

/* ==== Options (common to every sink) ==== */

/* The values of the errors.* options, applied by the engine to every sink. Strings point
 * into the instance's options. */
typedef struct sl_dl_conf {
    const char *tolerance;  /* "all": skip, count, log, dead-letter; "none": stop */
    int64_t log_limit;      /* rejected records logged one by one per batch */
    const char *type;       /* dead-letter target: NULL (none), "file" or "kafka" */
    const char *path;       /* file: directory of <pipeline>-<sink>.jsonl */
    const char *brokers;    /* kafka */
    const char *topic;      /* kafka */
    const char *properties; /* kafka: librdkafka producer settings key=value,... (secret) */
    int64_t timeout;        /* kafka: longest wait for delivery, ms */
} sl_dl_conf;

/* The errors.* option table (sl_common_sink_options() returns it). */
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

/* A dead-letter target type. open checks the configuration without I/O (the target is
 * opened by its first write), write makes n entries durable (a file: written and fsync'ed;
 * Kafka: acknowledged by the broker) or fails with errstr set (some may have been written:
 * the caller writes them all again), close frees. Calls come from the sink's thread.
 * @locality the thread of the sink's writes */
typedef struct sl_dl_target {
    const char *type; /* errors.dead_letter.type */
    void *(*open)(sl_instance *ins, const sl_dl_conf *conf, char *errstr, size_t errsize);
    int (*write)(void *t, const sl_dl_batch *b, const sl_dl_entry *e, size_t n, char *errstr,
                 size_t errsize);
    /* Where the entries go, for logs ("file /var/dead/p-s.jsonl", "kafka topic dlq"). */
    const char *(*describe)(void *t);
    void (*close)(void *t);
} sl_dl_target;

/* Appends the JSON line (with its '\n') of e to *buf (malloc'ed, *len bytes, *cap
 * allocated; grown as needed): {"pipeline","sink","batch_time","error","source","topic",
 * "partition","offset","ts","key","value"} plus "num" for a typed value; key and value are
 * text when they are valid UTF-8, else base64 with "key_encoding"/"value_encoding":
 * "base64"; unknown meta is null. Returns SL_OK or SL_ERR_NOMEM. */
int sl__dl_json_line(char **buf, size_t *len, size_t *cap, const sl_dl_batch *b,
                     const sl_dl_entry *e);

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

/* kafka_sink.c -- the kafka sink: a producer. Each record becomes a message (key: the
 * record's key; value: its typed value as text when it has one, else its value bytes;
 * timestamp: the record's; headers: the Kafka headers it came with, unless headers: false).
 * A batch is flushed before write returns; when a message cannot be delivered the write
 * returns SL_ERR_RETRY and the engine writes the batch again (at-least-once: messages
 * delivered by the failed attempt are sent twice). A message refused for itself (larger
 * than the topic's max.message.bytes, an invalid record or timestamp), when producing or in
 * its delivery report, is a rejected record: dead-lettered (errors.dead_letter), the rest
 * of the batch written. The broker refuses whole produce requests, so the messages refused
 * in delivery reports go again one at a time to find those at fault (slow, but only then).
 *
 * transactional: true (exactly-once v2, KIP-447): a batch is one Kafka transaction that
 * holds its messages and the batch's input offsets (the ranges' until) committed to the
 * source's consumer group, so a read_committed consumer sees each batch once, and the
 * group's committed offsets are where the sink is (the positions callback); see kafka_txn.c.
 *
 * As a stateful stream's changelog (sl_stream_changelog), each batch's state changes and the
 * positions of its input go to a compacted topic in one transaction, and restore_state reads
 * a task's state back: see kafka_changelog.c. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kafka.h"

#define PRODUCE_WAIT_MS 100 /* wait for room when librdkafka's queue is full */

/* True for an error that refuses the message for what it is: sending it again would not
 * help. */
bool sl__kafka_record_error(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE || err == RD_KAFKA_RESP_ERR_INVALID_RECORD ||
           err == RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP;
}

/* True for the errors that say the topic does not exist (in a produce call, a delivery
 * report, or the metadata). */
static bool unknown_topic_error(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

/* Delivery reports: failures counted per write, the first error kept; refused records
 * listed (their opaque is the record). @locality librdkafka's poll, called from write on the
 * sink's output thread */
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    sl_kafka_sink *ctx = opaque;
    (void)rk;
    if (!m->err) {
        return;
    }
    if (unknown_topic_error(m->err)) {
        atomic_store(&ctx->topic_missing, true);
    }
    if (sl__kafka_record_error(m->err) && m->_private) {
        pthread_mutex_lock(&ctx->err_lock);
        if (ctx->nrefused == ctx->refused_cap) {
            size_t cap = ctx->refused_cap ? 2 * ctx->refused_cap : 16;
            void *p = realloc(ctx->refused, cap * sizeof(*ctx->refused));
            if (p) {
                ctx->refused = p;
                ctx->refused_cap = cap;
            }
        }
        if (ctx->nrefused < ctx->refused_cap) {
            ctx->refused[ctx->nrefused].r = m->_private;
            ctx->refused[ctx->nrefused++].err = m->err;
            pthread_mutex_unlock(&ctx->err_lock);
            return;
        }
        ctx->refused_nomem = true; /* not listed: the batch is retried instead */
        pthread_mutex_unlock(&ctx->err_lock);
    }
    if (atomic_fetch_add(&ctx->failed, 1) == 0) {
        pthread_mutex_lock(&ctx->err_lock);
        snprintf(ctx->first_error, sizeof(ctx->first_error), "%s", rd_kafka_err2str(m->err));
        pthread_mutex_unlock(&ctx->err_lock);
    }
}

void sl__kafka_sink_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    sl_kafka_sink *ctx = opaque;
    (void)rk;
    sl_instance_log(ctx->ins,
                    err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? SL_LOG_WARN : SL_LOG_DEBUG,
                    "Kafka: %s", reason);
}

static int kafka_sink_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_kafka_sink *ctx = data;
    ctx->ins = ins;
    pthread_mutex_init(&ctx->err_lock, NULL);
    pthread_mutex_init(&ctx->pos_lock, NULL);
    pthread_mutex_init(&ctx->cl_lock, NULL);
    pthread_mutex_init(&ctx->restore_lock, NULL);
    ctx->lock_init = true;
    atomic_init(&ctx->failed, 0);
    int rc = sl__kafka_sink_config(ctx, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    sl_instance_set_positions(ins, ctx->transactional); /* only a transaction records them */
    rd_kafka_conf_t *conf = sl__kafka_conf_new(ins, ctx->embedded ? "127.0.0.1:9092" : ctx->brokers,
                                               ctx->properties, SL_KAFKA_PRODUCER, errstr, errsize);
    if (!conf) {
        return SL_ERR_INVAL;
    }
    rd_kafka_conf_destroy(conf);
    return SL_OK;
}

/* The name of partitioner choice i (SL_KAFKA_PARTITIONERS) in buf. */
static int partitioner_name(int i, char *buf, size_t size)
{
    const char *p = SL_KAFKA_PARTITIONERS;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '|');
        p = p ? p + 1 : NULL;
    }
    if (!p || size == 0) {
        return SL_ERR_INVAL;
    }
    size_t n = strcspn(p, "|");
    snprintf(buf, size, "%.*s", (int)n, p);
    return n < size ? SL_OK : SL_ERR_INVAL;
}

/* Creates the producer ctx->rk: with transactional.id and idempotence when transactional.
 * SL_OK or SL_ERR_INVAL (reported). */
int sl__kafka_producer_new(sl_kafka_sink *ctx)
{
    char errstr[512];
    rd_kafka_conf_t *conf = sl__kafka_conf_new(ctx->ins, ctx->bootstrap, ctx->properties,
                                               SL_KAFKA_PRODUCER, errstr, sizeof(errstr));
    if (!conf) {
        sl_instance_error(ctx->ins, "%s", errstr);
        return SL_ERR_INVAL;
    }
    char name[24];
    snprintf(errstr, sizeof(errstr), "choice %d is unknown", ctx->partitioner);
    if (partitioner_name(ctx->partitioner, name, sizeof(name)) != SL_OK ||
        rd_kafka_conf_set(conf, "partitioner", name, errstr, sizeof(errstr))) {
        rd_kafka_conf_destroy(conf);
        sl_instance_error(ctx->ins, "partitioner: %s", errstr);
        return SL_ERR_INVAL;
    }
    if (ctx->transactional) {
        char tmo[32];
        snprintf(tmo, sizeof(tmo), "%" PRId64, ctx->transaction_timeout);
        if (rd_kafka_conf_set(conf, "transactional.id", ctx->txn_id, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "transaction.timeout.ms", tmo, errstr, sizeof(errstr))) {
            rd_kafka_conf_destroy(conf);
            sl_instance_error(ctx->ins, "transactional: %s", errstr);
            return SL_ERR_INVAL;
        }
    }
    rd_kafka_conf_set_opaque(conf, ctx);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, sl__kafka_sink_error_cb);
    ctx->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!ctx->rk) {
        rd_kafka_conf_destroy(conf);
        sl_instance_error(ctx->ins, "cannot create the Kafka producer: %s", errstr);
        return SL_ERR_INVAL;
    }
    ctx->txn_ready = false;
    return SL_OK;
}

static int kafka_sink_start(void *data, char *err, size_t errsize)
{
    sl_kafka_sink *ctx = data;
    char errstr[512];
    if (ctx->rk) {
        return SL_OK;
    }
    if (!ctx->changelog && sl_instance_is_changelog(ctx->ins)) {
        int rc = sl__kafka_changelog_start(ctx, err, errsize);
        if (rc != SL_OK) {
            return rc;
        }
    }
    if (!ctx->bootstrap) {
        if (ctx->embedded) {
            const char *topics[] = {ctx->topic, NULL};
            ctx->bootstrap =
                sl__kafka_embedded_acquire(topics, 4, false, 0, errstr, sizeof(errstr));
        } else {
            ctx->bootstrap = strdup(ctx->brokers);
            snprintf(errstr, sizeof(errstr), "out of memory");
        }
        if (!ctx->bootstrap) {
            sl_instance_error(ctx->ins, "%s", errstr);
            return SL_ERR_IO;
        }
    }
    int rc = sl__kafka_producer_new(ctx);
    if (rc == SL_OK && ctx->transactional) {
        rc = sl__kafka_txn_init(ctx);
        if (rc == SL_ERR_RETRY) {
            rc = SL_OK; /* brokers not there yet: the first write tries again */
        }
    }
    return rc;
}

/* The message value of r: its typed value as text, else its bytes. */
static const char *sink_value(const sl_record *r, char *num, size_t size, size_t *len)
{
    if (r->num_type == SL_NUM_INT) {
        *len = (size_t)snprintf(num, size, "%" PRId64, r->num.i);
        return num;
    }
    if (r->num_type == SL_NUM_DOUBLE) {
        for (int prec = 15; prec <= 17; prec++) {
            *len = (size_t)snprintf(num, size, "%.*g", prec, r->num.d);
            if (strtod(num, NULL) == r->num.d) {
                break;
            }
        }
        return num;
    }
    *len = r->value_len;
    return r->value;
}

/* The headers to produce with r: its Kafka headers when the headers option is on, else
 * NULL. The caller owns the result until rd_kafka_producev succeeds. */
static rd_kafka_headers_t *sink_headers(const sl_kafka_sink *ctx, const sl_record *r)
{
    const sl_record_meta *m = r->meta;
    if (!ctx->headers || !m || m->nheaders == 0 || !m->headers) {
        return NULL;
    }
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(m->nheaders);
    for (uint32_t i = 0; hdrs && i < m->nheaders; i++) {
        const sl_header *h = &m->headers[i];
        rd_kafka_header_add(hdrs, h->name, -1, h->value, h->value ? (ssize_t)h->value_len : 0);
    }
    return hdrs;
}

/* Produces r (waiting for room in librdkafka's queue); its opaque is r. Returns the
 * producer's error; on one that refuses the record itself, why says so. */
rd_kafka_resp_err_t sl__kafka_sink_produce(sl_kafka_sink *ctx, const sl_record *r, char *why,
                                           size_t whysize)
{
    char num[40];
    size_t vlen = 0;
    const char *v = sink_value(r, num, sizeof(num), &vlen);
    rd_kafka_headers_t *hdrs = sink_headers(ctx, r);
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(ctx->rk, RD_KAFKA_V_TOPIC(ctx->topic),
                                RD_KAFKA_V_KEY(r->key_len ? (void *)r->key : NULL, r->key_len),
                                RD_KAFKA_V_VALUE((void *)v, vlen),
                                RD_KAFKA_V_TIMESTAMP(r->ts > 0 ? r->ts : 0),
                                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)r),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            break;
        }
        rd_kafka_poll(ctx->rk, PRODUCE_WAIT_MS);
    }
    if (err && hdrs) {
        rd_kafka_headers_destroy(hdrs); /* taken by librdkafka only on success */
    }
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        snprintf(why, whysize, "a message of %zu bytes is larger than message.max.bytes allows",
                 (size_t)r->key_len + vlen);
    } else if (sl__kafka_record_error(err)) {
        snprintf(why, whysize, "the producer refused the message: %s", rd_kafka_err2str(err));
    } else if (unknown_topic_error(err)) {
        atomic_store(&ctx->topic_missing, true); /* reported once by the write */
    } else if (err) {
        sl_instance_error(ctx->ins, "cannot produce to %s: %s", ctx->topic, rd_kafka_err2str(err));
    }
    return err;
}

/* Starts an attempt: no failure, no refused message yet. */
void sl__kafka_attempt_reset(sl_kafka_sink *ctx)
{
    atomic_store(&ctx->failed, 0);
    atomic_store(&ctx->topic_missing, false);
    pthread_mutex_lock(&ctx->err_lock);
    ctx->first_error[0] = '\0';
    ctx->nrefused = 0;
    ctx->refused_nomem = false;
    pthread_mutex_unlock(&ctx->err_lock);
}

/* True when the cluster's metadata says the topic does not exist (asked when a flush timed
 * out: librdkafka holds messages for an unknown topic until topic.metadata.propagation.max.ms
 * without a delivery report). False when it exists or the brokers do not answer.
 * @locality the sink's output thread */
static bool topic_missing_in_metadata(sl_kafka_sink *ctx)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(ctx->rk, ctx->topic, NULL);
    if (!rkt) {
        return false;
    }
    const struct rd_kafka_metadata *md = NULL;
    int timeout = (int)SL_MIN(ctx->flush_timeout, 2000);
    bool missing = false;
    if (rd_kafka_metadata(ctx->rk, 0, rkt, &md, timeout) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        missing = md->topic_cnt == 1 && unknown_topic_error(md->topics[0].err);
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return missing;
}

/* Says that the topic does not exist (the batch is retried: the topic may be created later):
 * logged once per outage, missing_reported being cleared by the next delivered batch; on
 * the retries only errstr says it. */
static void report_topic_missing(sl_kafka_sink *ctx, char *errstr, size_t errsize)
{
    const char *at = ctx->bootstrap ? ctx->bootstrap : ctx->brokers;
    if (ctx->missing_reported) {
        snprintf(errstr, errsize, "topic '%s' does not exist at %s", ctx->topic, at);
        return;
    }
    ctx->missing_reported = true;
    sl_instance_error(ctx->ins,
                      "topic '%s' does not exist at %s (create it, or allow auto-creation); "
                      "retrying",
                      ctx->topic, at);
}

/* A copy of the records the broker refused so far (*n of them; NULL when none, or out of
 * memory with *n > 0). The caller frees it. */
const sl_record **sl__kafka_refused_records(sl_kafka_sink *ctx, size_t *n)
{
    pthread_mutex_lock(&ctx->err_lock);
    *n = ctx->nrefused;
    const sl_record **recs = *n ? malloc(*n * sizeof(*recs)) : NULL;
    for (size_t i = 0; recs && i < *n; i++) {
        recs[i] = ctx->refused[i].r;
    }
    pthread_mutex_unlock(&ctx->err_lock);
    return recs;
}

/* Why the broker refused the first refused message since the last reset; 0 when none. */
rd_kafka_resp_err_t sl__kafka_refused_error(sl_kafka_sink *ctx)
{
    pthread_mutex_lock(&ctx->err_lock);
    rd_kafka_resp_err_t err = ctx->nrefused ? ctx->refused[0].err : 0;
    pthread_mutex_unlock(&ctx->err_lock);
    return err;
}

/* The broker refuses a whole produce request when it is too large or holds an invalid
 * record, small and good messages with it. So the refused messages go again one at a
 * time: those delivered now are written, one refused on its own is a rejected record. SL_OK,
 * SL_ERR_RETRY (a message could not be delivered for another reason), or the reject's code
 * (errors.tolerance none). */
static int sink_redo_refused(sl_kafka_sink *ctx, const sl_batch_output *out)
{
    size_t n;
    const sl_record **recs = sl__kafka_refused_records(ctx, &n);
    if (n && !recs) {
        return SL_ERR_RETRY;
    }
    sl_instance_log(ctx->ins, SL_LOG_WARN,
                    "batch %" PRId64 ": the broker refused %zu messages for %s; sending them "
                    "one at a time to find the ones at fault",
                    out->batch_time, n, ctx->topic);
    int rc = SL_OK;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        char why[160];
        sl__kafka_attempt_reset(ctx);
        rd_kafka_resp_err_t err = sl__kafka_sink_produce(ctx, recs[i], why, sizeof(why));
        if (sl__kafka_record_error(err)) {
            rc = sl_batch_output_reject(out, recs[i], why);
            continue;
        }
        if (err || rd_kafka_flush(ctx->rk, (int)ctx->flush_timeout)) {
            rc = SL_ERR_RETRY;
            break;
        }
        rd_kafka_resp_err_t refused = sl__kafka_refused_error(ctx);
        if (refused) {
            snprintf(why, sizeof(why), "the broker refused the message: %s",
                     rd_kafka_err2str(refused));
            rc = sl_batch_output_reject(out, recs[i], why);
        } else if (atomic_load(&ctx->failed)) {
            rc = SL_ERR_RETRY;
        }
    }
    free(recs);
    return rc;
}

static int kafka_sink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    sl_kafka_sink *ctx = data;
    if (!ctx->rk) {
        int rc = kafka_sink_start(ctx, errstr, errsize); /* driven without start() (tests) */
        if (rc != SL_OK) {
            return SL_ERR_RETRY;
        }
    }
    if (ctx->changelog) {
        return sl__kafka_changelog_write(ctx, out, errstr, errsize);
    }
    if (ctx->transactional) {
        return sl__kafka_txn_write(ctx, out);
    }
    sl__kafka_attempt_reset(ctx);
    size_t nparts = out->ds ? sl_dataset_partitions(out->ds) : 0;
    rd_kafka_resp_err_t perr = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t p = 0; p < nparts && !perr; p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n && !perr; i++) {
            char why[160];
            perr = sl__kafka_sink_produce(ctx, &recs[i], why, sizeof(why));
            if (sl__kafka_record_error(perr)) {
                /* A record error: left out and dead-lettered, or the pipeline stops. */
                int rrc = sl_batch_output_reject(out, &recs[i], why);
                if (rrc != SL_OK) {
                    rd_kafka_flush(ctx->rk, (int)ctx->flush_timeout);
                    return rrc;
                }
                perr = RD_KAFKA_RESP_ERR_NO_ERROR;
            }
        }
    }
    rd_kafka_resp_err_t ferr = rd_kafka_flush(ctx->rk, (int)ctx->flush_timeout);
    uint64_t failed = atomic_load(&ctx->failed);
    pthread_mutex_lock(&ctx->err_lock);
    bool refused = ctx->nrefused > 0, nomem = ctx->refused_nomem;
    pthread_mutex_unlock(&ctx->err_lock);
    if (!perr && !ferr && !failed && !nomem && refused) {
        /* Every report is in and the only failures are refusals. */
        int rc = sink_redo_refused(ctx, out);
        if (rc != SL_ERR_RETRY) {
            return rc; /* SL_OK, or errors.tolerance none (reported) */
        }
        failed = atomic_load(&ctx->failed);
    }
    if (perr || ferr || failed || nomem || refused) {
        if (atomic_load(&ctx->topic_missing) || unknown_topic_error(perr) ||
            (ferr && !failed && topic_missing_in_metadata(ctx))) {
            report_topic_missing(ctx, errstr, errsize);
            return SL_ERR_RETRY;
        }
        pthread_mutex_lock(&ctx->err_lock);
        sl_instance_error(ctx->ins,
                          "batch %" PRId64 " not fully delivered to %s: %s; retrying the batch",
                          out->batch_time, ctx->topic,
                          failed    ? ctx->first_error
                          : ferr    ? "flush timed out"
                          : perr    ? rd_kafka_err2str(perr)
                          : refused ? "messages the broker refused could not be sent again"
                                    : "out of memory listing refused messages");
        pthread_mutex_unlock(&ctx->err_lock);
        return SL_ERR_RETRY;
    }
    ctx->missing_reported = false;
    sl_instance_set_active(ctx->ins, true);
    return SL_OK;
}

/* Flushes what librdkafka still holds (a failed batch's messages, retried by librdkafka)
 * for at most flush_timeout. Messages still queued then are dropped: logged with their count,
 * and the context's result becomes an error, so the process does not exit 0.
 * @locality the thread stopping the context */
static void kafka_sink_stop(void *data)
{
    sl_kafka_sink *ctx = data;
    if (!ctx->rk) {
        return;
    }
    rd_kafka_flush(ctx->rk, (int)ctx->flush_timeout);
    int left = rd_kafka_outq_len(ctx->rk);
    if (left > 0) {
        sl_instance_error(ctx->ins,
                          "stop: %d message%s to %s still queued after flush_timeout (%" PRId64
                          "ms), dropped",
                          left, left == 1 ? "" : "s", ctx->topic, ctx->flush_timeout);
        sl_instance_fail_at_stop(ctx->ins);
        rd_kafka_purge(ctx->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(ctx->rk, 0); /* their delivery reports */
    }
}

static void kafka_sink_destroy(void *data)
{
    sl_kafka_sink *ctx = data;
    if (!ctx->ins) {
        return;
    }
    if (ctx->rk) {
        rd_kafka_flush(ctx->rk, (int)ctx->flush_timeout);
        rd_kafka_destroy(ctx->rk);
        ctx->rk = NULL;
    }
    if (ctx->pos_rk) {
        rd_kafka_destroy(ctx->pos_rk);
        ctx->pos_rk = NULL;
    }
    sl__kafka_changelog_destroy(ctx);
    if (ctx->txn_group) {
        sl__kafka_txn_group_release(ctx->txn_group);
        free(ctx->txn_group);
    }
    if (ctx->embedded && ctx->bootstrap) {
        sl__kafka_embedded_release();
    }
    free(ctx->bootstrap);
    free(ctx->refused);
    free(ctx->txn_id);
    if (ctx->lock_init) {
        pthread_mutex_destroy(&ctx->err_lock);
        pthread_mutex_destroy(&ctx->pos_lock);
        pthread_mutex_destroy(&ctx->cl_lock);
        pthread_mutex_destroy(&ctx->restore_lock);
    }
}

static const sl_option kafka_sink_options[] = {
    {.name = "brokers",
     .type = SL_OPT_STR,
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(sl_kafka_sink, brokers),
     .doc = "bootstrap brokers host:port,...; 'embedded': the in-process mock cluster"},
    {.name = "topic",
     .type = SL_OPT_STR,
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(sl_kafka_sink, topic),
     .doc = "topic to produce to"},
    {.name = "properties",
     .type = SL_OPT_LIST,
     .flags = SL_OPT_SECRET,
     .offset = offsetof(sl_kafka_sink, properties),
     .doc = "librdkafka producer settings key=value (acks, compression.type, "
            "message.max.bytes, security), each checked at start; never shown"},
    {.name = "headers",
     .type = SL_OPT_BOOL,
     .def = "true",
     .offset = offsetof(sl_kafka_sink, headers),
     .doc = "produce each record with the Kafka headers it carries (records of a kafka source "
            "with headers: true keep them through key, value, filter and map ops; aggregates "
            "have none)"},
    {.name = "partitioner",
     .type = SL_OPT_ENUM,
     .def = "murmur2_random",
     .choices = SL_KAFKA_PARTITIONERS,
     .offset = offsetof(sl_kafka_sink, partitioner),
     .doc = "the partition of a keyed message (librdkafka's partitioners); murmur2_random, the "
            "default, is that of the Java clients and Kafka Streams (a key goes where a Java "
            "producer puts it, as a repartition topic needs; keyless messages: random); "
            "consistent_random was librdkafka's (CRC32)"},
    {.name = "flush_timeout",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_sink, flush_timeout),
     .doc = "longest wait for a batch's messages to be delivered before it is retried"},
    {.name = "transactional",
     .type = SL_OPT_BOOL,
     .def = "false",
     .offset = offsetof(sl_kafka_sink, transactional),
     .doc = "exactly once: each batch is one Kafka transaction holding its messages and the "
            "batch's input offsets, committed to group (read them with "
            "isolation.level=read_committed); the group's committed offsets are the sink's "
            "positions; a restarted instance fences its zombie. Always on for a changelog"},
    {.name = "group",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_kafka_sink, group),
     .doc = "transactional: the consumer group of the kafka source whose offsets each "
            "transaction commits (required; a changelog takes that of the kafka source in this "
            "process that reads its input). Fenced by the generation of that source's consumer "
            "in this process (KIP-447); without one, by the transactional.id only"},
    {.name = "transactional_id",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_kafka_sink, transactional_id),
     .doc = "transactional: the producer's transactional.id, stable across restarts of one "
            "instance and unique among instances (default <pipeline>-<sink>-<instance>)"},
    {.name = "instance",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_kafka_sink, instance),
     .doc = "transactional: this instance's name in the default transactional_id (default "
            "the host name)"},
    {.name = "transaction_timeout",
     .type = SL_OPT_DURATION,
     .def = "60s",
     .min = 1000,
     .max = 900000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_sink, transaction_timeout),
     .doc = "transactional: the broker aborts a transaction open longer than this "
            "(transaction.timeout.ms; at most the broker's transaction.max.timeout.ms)"},
    {0},
};

/* The YAML loader turns on the source's headers when this sink forwards them. */
static bool kafka_sink_wants_headers(const sl_options *opts)
{
    const char *h = sl_options_get(opts, "headers");
    return !(h && (!strcasecmp(h, "false") || !strcasecmp(h, "no") || !strcasecmp(h, "off") ||
                   !strcmp(h, "0")));
}

const sl_connector sl__connector_kafka_sink = {
    .name = "kafka",
    .description = "Produce each record to a Kafka topic (key, value or typed value as text), "
                   "flushed per batch, or one transaction per batch with its input offsets "
                   "(transactional: exactly once); a stateful stream's changelog (its keyed "
                   "state per partition, restored from it when a partition moves)",
    .flags = SL_SINK,
    .dead_letter = &sl__kafka_dl_target,
    .options = kafka_sink_options,
    .ctx_size = sizeof(sl_kafka_sink),
    .init = kafka_sink_init,
    .start = kafka_sink_start,
    .write = kafka_sink_write,
    .stop = kafka_sink_stop,
    .destroy = kafka_sink_destroy,
    .probe = sl__kafka_sink_probe,
    .wants_headers = kafka_sink_wants_headers,
    .positions = sl__kafka_sink_positions,
    .restore_state = sl__kafka_changelog_restore,
};

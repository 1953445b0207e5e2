/* kafka_sink.c -- the kafka sink: a producer. Each record becomes a message (key: the
 * record's key; value: its typed value as text when it has one, else its value bytes;
 * timestamp: the record's; headers: the Kafka headers it came with, unless headers: false).
 * A batch is flushed before write returns; when a message cannot be delivered the write
 * returns SL_ERR_RETRY and the engine writes the batch again (at-least-once: messages
 * delivered by the failed attempt are sent twice). A message refused for itself (larger
 * than the topic's max.message.bytes, an invalid record or timestamp), when producing or in
 * its delivery report, is a rejected record: dead-lettered (errors.dead_letter), the rest
 * of the batch written. The broker refuses whole produce requests, so the messages refused
 * in delivery reports go again one at a time to find those at fault (slow, but only then). */
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
static bool record_error(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
           err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE || err == RD_KAFKA_RESP_ERR_INVALID_RECORD ||
           err == RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP;
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
    if (record_error(m->err) && m->_private) {
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

static void sink_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
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
    ctx->lock_init = true;
    atomic_init(&ctx->failed, 0);
    if (!ctx->brokers || !*ctx->brokers) {
        snprintf(errstr, errsize, "brokers: give the bootstrap brokers or 'embedded'");
        return SL_ERR_INVAL;
    }
    if (!ctx->topic || !*ctx->topic) {
        snprintf(errstr, errsize, "topic: give the topic to produce to");
        return SL_ERR_INVAL;
    }
    ctx->embedded = strcmp(ctx->brokers, SL_KAFKA_EMBEDDED) == 0;
    rd_kafka_conf_t *conf = sl__kafka_conf_new(ins, ctx->embedded ? "127.0.0.1:9092" : ctx->brokers,
                                               ctx->properties, SL_KAFKA_PRODUCER, errstr, errsize);
    if (!conf) {
        return SL_ERR_INVAL;
    }
    rd_kafka_conf_destroy(conf);
    return SL_OK;
}

static int kafka_sink_start(void *data, char *err, size_t errsize)
{
    sl_kafka_sink *ctx = data;
    char errstr[512];
    if (ctx->rk) {
        return SL_OK;
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
    rd_kafka_conf_t *conf = sl__kafka_conf_new(ctx->ins, ctx->bootstrap, ctx->properties,
                                               SL_KAFKA_PRODUCER, errstr, sizeof(errstr));
    if (!conf) {
        sl_instance_error(ctx->ins, "%s", errstr);
        return SL_ERR_INVAL;
    }
    rd_kafka_conf_set_opaque(conf, ctx);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, sink_error_cb);
    ctx->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!ctx->rk) {
        rd_kafka_conf_destroy(conf);
        sl_instance_error(ctx->ins, "cannot create the Kafka producer: %s", errstr);
        return SL_ERR_INVAL;
    }
    return SL_OK;
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
static rd_kafka_resp_err_t sink_produce(sl_kafka_sink *ctx, const sl_record *r, char *why,
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
                                RD_KAFKA_V_VALUE(vlen ? (void *)v : NULL, vlen),
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
    } else if (record_error(err)) {
        snprintf(why, whysize, "the producer refused the message: %s", rd_kafka_err2str(err));
    } else if (err) {
        sl_instance_error(ctx->ins, "cannot produce to %s: %s", ctx->topic, rd_kafka_err2str(err));
    }
    return err;
}

/* Starts an attempt: no failure, no refused message yet. */
static void sink_attempt_reset(sl_kafka_sink *ctx)
{
    atomic_store(&ctx->failed, 0);
    pthread_mutex_lock(&ctx->err_lock);
    ctx->first_error[0] = '\0';
    ctx->nrefused = 0;
    ctx->refused_nomem = false;
    pthread_mutex_unlock(&ctx->err_lock);
}

/* The broker refuses a whole produce request when it is too large or holds an invalid
 * record, small and good messages with it. So the refused messages go again one at a
 * time: those delivered now are written, one refused on its own is a rejected record. SL_OK,
 * SL_ERR_RETRY (a message could not be delivered for another reason), or the reject's code
 * (errors.tolerance none). */
static int sink_redo_refused(sl_kafka_sink *ctx, const sl_batch_output *out)
{
    pthread_mutex_lock(&ctx->err_lock);
    size_t n = ctx->nrefused;
    const sl_record **recs = n ? malloc(n * sizeof(*recs)) : NULL;
    for (size_t i = 0; recs && i < n; i++) {
        recs[i] = ctx->refused[i].r;
    }
    pthread_mutex_unlock(&ctx->err_lock);
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
        sink_attempt_reset(ctx);
        rd_kafka_resp_err_t err = sink_produce(ctx, recs[i], why, sizeof(why));
        if (record_error(err)) {
            rc = sl_batch_output_reject(out, recs[i], why);
            continue;
        }
        if (err || rd_kafka_flush(ctx->rk, (int)ctx->flush_timeout)) {
            rc = SL_ERR_RETRY;
            break;
        }
        pthread_mutex_lock(&ctx->err_lock);
        rd_kafka_resp_err_t refused = ctx->nrefused ? ctx->refused[0].err : 0;
        pthread_mutex_unlock(&ctx->err_lock);
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
    sink_attempt_reset(ctx);
    size_t nparts = out->ds ? sl_dataset_partitions(out->ds) : 0;
    rd_kafka_resp_err_t perr = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t p = 0; p < nparts && !perr; p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n && !perr; i++) {
            char why[160];
            perr = sink_produce(ctx, &recs[i], why, sizeof(why));
            if (record_error(perr)) {
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
    sl_instance_set_active(ctx->ins, true);
    return SL_OK;
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
    if (ctx->embedded && ctx->bootstrap) {
        sl__kafka_embedded_release();
    }
    free(ctx->bootstrap);
    free(ctx->refused);
    if (ctx->lock_init) {
        pthread_mutex_destroy(&ctx->err_lock);
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
    {.name = "flush_timeout",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_sink, flush_timeout),
     .doc = "longest wait for a batch's messages to be delivered before it is retried"},
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
                   "flushed per batch",
    .flags = SL_SINK,
    .dead_letter = &sl__kafka_dl_target,
    .options = kafka_sink_options,
    .ctx_size = sizeof(sl_kafka_sink),
    .init = kafka_sink_init,
    .start = kafka_sink_start,
    .write = kafka_sink_write,
    .destroy = kafka_sink_destroy,
    .wants_headers = kafka_sink_wants_headers,
};

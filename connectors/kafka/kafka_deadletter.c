/* kafka_deadletter.c -- the kafka dead-letter target (errors.dead_letter.type: kafka): each
 * record a sink rejected becomes a message of the dead-letter topic with the record's key,
 * value and timestamp, and headers saying why and where it came from, as Kafka Connect's
 * __connect.errors.* headers do: sluice.error, sluice.pipeline, sluice.sink,
 * sluice.batch_time, and when known sluice.source, sluice.topic, sluice.partition,
 * sluice.offset, sluice.num (a typed value). A write returns once the broker acknowledged
 * every message (librdkafka's acks=all by default), or fails and is written again whole:
 * at least once. Provided by the kafka sink connector (its dead_letter field). */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "sl_deadletter.h"

#define DL_PRODUCE_WAIT_MS 100 /* wait for room when librdkafka's queue is full */

/* The target's options. */
typedef struct kafka_dl_conf {
    const char *brokers;
    const char *topic;
    const char *properties; /* librdkafka producer settings key=value,... (secret) */
    int64_t timeout;        /* longest wait for delivery, ms */
} kafka_dl_conf;

typedef struct kafka_dl {
    sl_instance *ins;
    char *brokers;
    char *topic;
    char *properties;
    int64_t timeout; /* ms */
    rd_kafka_t *rk;  /* made by the first write */
    _Atomic uint64_t failed;
    char first_error[256]; /* of the write being flushed; written by dl_dr_cb on that thread */
    char desc[300];
} kafka_dl;

static char *dl_strdup(const char *s)
{
    return strdup(s ? s : "");
}

static void *kafka_dl_open(sl_instance *ins, const void *cf, char *errstr, size_t errsize)
{
    const kafka_dl_conf *conf = cf;
    if (!conf->brokers || !*conf->brokers) {
        snprintf(errstr, errsize,
                 "errors.dead_letter.brokers: give the bootstrap brokers of the dead-letter "
                 "topic for errors.dead_letter.type: kafka");
        return NULL;
    }
    if (!conf->topic || !*conf->topic) {
        snprintf(errstr, errsize,
                 "errors.dead_letter.topic: give the dead-letter topic for "
                 "errors.dead_letter.type: kafka");
        return NULL;
    }
    char why[512];
    rd_kafka_conf_t *c = sl__kafka_conf_new(ins, conf->brokers, conf->properties, SL_KAFKA_PRODUCER,
                                            why, sizeof(why));
    if (!c) {
        snprintf(errstr, errsize, "errors.dead_letter.%s", why);
        return NULL;
    }
    rd_kafka_conf_destroy(c);
    kafka_dl *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    d->ins = ins;
    d->timeout = conf->timeout;
    d->brokers = dl_strdup(conf->brokers);
    d->topic = dl_strdup(conf->topic);
    d->properties = dl_strdup(conf->properties);
    atomic_init(&d->failed, 0);
    snprintf(d->desc, sizeof(d->desc), "kafka topic %s", conf->topic);
    if (!d->brokers || !d->topic || !d->properties) {
        free(d->brokers);
        free(d->topic);
        free(d->properties);
        free(d);
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    return d;
}

/* Delivery reports: counted, the first error kept. @locality librdkafka's poll, called from
 * write on the sink's thread */
static void dl_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kafka_dl *d = opaque;
    (void)rk;
    if (m->err && atomic_fetch_add(&d->failed, 1) == 0) {
        snprintf(d->first_error, sizeof(d->first_error), "%s", rd_kafka_err2str(m->err));
    }
}

static int dl_producer(kafka_dl *d, char *errstr, size_t errsize)
{
    if (d->rk) {
        return SL_OK;
    }
    char why[512];
    rd_kafka_conf_t *c =
        sl__kafka_conf_new(d->ins, d->brokers, d->properties, SL_KAFKA_PRODUCER, why, sizeof(why));
    if (!c) {
        snprintf(errstr, errsize, "%s", why);
        return SL_ERR_INVAL;
    }
    rd_kafka_conf_set_opaque(c, d);
    rd_kafka_conf_set_dr_msg_cb(c, dl_dr_cb);
    d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, why, sizeof(why));
    if (!d->rk) {
        rd_kafka_conf_destroy(c);
        snprintf(errstr, errsize, "cannot create the producer: %s", why);
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

/* Adds header name with a text value. */
static void dl_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    if (value) {
        rd_kafka_header_add(h, name, -1, value, -1);
    }
}

static int kafka_dl_write(void *t, const sl_dl_batch *b, const sl_dl_entry *e, size_t n,
                          char *errstr, size_t errsize)
{
    kafka_dl *d = t;
    int rc = dl_producer(d, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    atomic_store(&d->failed, 0);
    d->first_error[0] = '\0';
    rd_kafka_resp_err_t perr = RD_KAFKA_RESP_ERR_NO_ERROR;
    char num[48];
    snprintf(num, sizeof(num), "%" PRId64, b->batch_time);
    for (size_t i = 0; i < n && !perr; i++) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(9);
        char part[16], off[24], tnum[48];
        dl_header(h, "sluice.error", e[i].error);
        dl_header(h, "sluice.pipeline", b->pipeline);
        dl_header(h, "sluice.sink", b->sink);
        dl_header(h, "sluice.batch_time", num);
        dl_header(h, "sluice.source", e[i].source);
        dl_header(h, "sluice.topic", e[i].topic);
        if (e[i].partition >= 0) {
            snprintf(part, sizeof(part), "%" PRId32, e[i].partition);
            dl_header(h, "sluice.partition", part);
        }
        if (e[i].offset >= 0) {
            snprintf(off, sizeof(off), "%" PRId64, e[i].offset);
            dl_header(h, "sluice.offset", off);
        }
        if (e[i].num_type == SL_NUM_INT) {
            snprintf(tnum, sizeof(tnum), "%" PRId64, e[i].num.i);
            dl_header(h, "sluice.num", tnum);
        } else if (e[i].num_type == SL_NUM_DOUBLE) {
            snprintf(tnum, sizeof(tnum), "%.17g", e[i].num.d);
            dl_header(h, "sluice.num", tnum);
        }
        for (;;) {
            perr = rd_kafka_producev(
                d->rk, RD_KAFKA_V_TOPIC(d->topic),
                RD_KAFKA_V_KEY(e[i].key ? (void *)e[i].key : NULL, e[i].key_len),
                RD_KAFKA_V_VALUE(e[i].value ? (void *)e[i].value : NULL, e[i].value_len),
                RD_KAFKA_V_TIMESTAMP(e[i].ts > 0 ? e[i].ts : 0), RD_KAFKA_V_HEADERS(h),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (perr != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                break;
            }
            rd_kafka_poll(d->rk, DL_PRODUCE_WAIT_MS);
        }
        if (perr) {
            rd_kafka_headers_destroy(h); /* kept by librdkafka only on success */
        }
    }
    rd_kafka_resp_err_t ferr = rd_kafka_flush(d->rk, (int)d->timeout);
    uint64_t failed = atomic_load(&d->failed);
    if (perr || ferr || failed) {
        snprintf(errstr, errsize, "%s",
                 perr     ? rd_kafka_err2str(perr)
                 : failed ? d->first_error
                          : "not acknowledged within errors.dead_letter.timeout");
        return SL_ERR_IO;
    }
    return SL_OK;
}

static const char *kafka_dl_describe(void *t)
{
    return ((kafka_dl *)t)->desc;
}

static void kafka_dl_close(void *t)
{
    kafka_dl *d = t;
    if (!d) {
        return;
    }
    if (d->rk) {
        rd_kafka_flush(d->rk, 1000);
        rd_kafka_destroy(d->rk);
    }
    free(d->brokers);
    free(d->topic);
    free(d->properties);
    free(d);
}

static const sl_option kafka_dl_options[] = {
    {.name = "errors.dead_letter.brokers",
     .type = SL_OPT_STR,
     .offset = offsetof(kafka_dl_conf, brokers),
     .doc = "kafka: bootstrap brokers host:port,..."},
    {.name = "errors.dead_letter.topic",
     .type = SL_OPT_STR,
     .offset = offsetof(kafka_dl_conf, topic),
     .doc = "kafka: the dead-letter topic"},
    {.name = "errors.dead_letter.properties",
     .type = SL_OPT_LIST,
     .flags = SL_OPT_SECRET,
     .offset = offsetof(kafka_dl_conf, properties),
     .doc = "kafka: librdkafka producer settings key=value (security, compression); never "
            "shown"},
    {.name = "errors.dead_letter.timeout",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(kafka_dl_conf, timeout),
     .doc = "kafka: longest wait for the dead letters to be acknowledged before the batch is "
            "retried"},
    {0},
};

const sl_dl_target sl__kafka_dl_target = {
    .name = "kafka",
    .doc = "messages to a topic (the record's key and value, headers sluice.error, "
           "sluice.source, ...)",
    .options = kafka_dl_options,
    .conf_size = sizeof(kafka_dl_conf),
    .open = kafka_dl_open,
    .write = kafka_dl_write,
    .describe = kafka_dl_describe,
    .close = kafka_dl_close,
};

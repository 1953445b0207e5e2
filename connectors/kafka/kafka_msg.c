/* kafka_msg.c -- Kafka messages as sluice records (both modes): key, value, timestamp,
 * headers and where the message came from; json checks; oversize records. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "kafka.h"

/* Reports the first rejected records of a source, then one in REPORT_EVERY. */
#define REPORT_FIRST 20
#define REPORT_EVERY 1000

int sl__kafka_err(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: return SL_OK;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION: return SL_ERR_RETRY;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION: return SL_ERR_NOTFOUND;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__INVALID_TYPE: return SL_ERR_INVAL;
    default: return SL_ERR_IO;
    }
}

static bool should_report(uint64_t nth)
{
    return nth <= REPORT_FIRST || nth % REPORT_EVERY == 0;
}

/* Appends the headers of m to hdrs; their count in *n (0 when it has none). */
static int msg_headers(rd_kafka_message_t *m, sl_kafka_hdrs *hdrs, uint32_t *n)
{
    *n = 0;
    rd_kafka_headers_t *h = NULL;
    /* Not free even for a message without headers (librdkafka allocates a buffer to find
     * that out), hence the headers option. */
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || !h) {
        return SL_OK;
    }
    size_t cnt = rd_kafka_header_cnt(h);
    if (cnt == 0) {
        return SL_OK;
    }
    if (cnt > UINT32_MAX) {
        return SL_ERR_TOOBIG;
    }
    if (hdrs->n + cnt > hdrs->cap) {
        size_t cap = hdrs->cap ? hdrs->cap : 64;
        while (cap < hdrs->n + cnt) {
            cap *= 2;
        }
        sl_header *v = realloc(hdrs->v, cap * sizeof(*v));
        if (!v) {
            return SL_ERR_NOMEM;
        }
        hdrs->v = v;
        hdrs->cap = cap;
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *name;
        const void *value;
        size_t size;
        if (rd_kafka_header_get_all(h, i, &name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            break;
        }
        if (size > UINT32_MAX) {
            return SL_ERR_TOOBIG;
        }
        sl_header *o = &hdrs->v[hdrs->n + *n];
        o->name = name;
        o->value = value;
        o->value_len = value ? (uint32_t)size : 0;
        (*n)++;
    }
    hdrs->n += *n;
    return SL_OK;
}

void sl__kafka_hdrs_link(sl_record_meta *metas, size_t n, sl_kafka_hdrs *hdrs)
{
    size_t at = 0;
    for (size_t i = 0; i < n && at < hdrs->n; i++) {
        if (metas[i].nheaders > 0) {
            metas[i].headers = &hdrs->v[at];
            at += metas[i].nheaders;
        }
    }
}

int sl__kafka_msg_record(sl_kafka_src *ctx, const rd_kafka_message_t *m, const char *topic,
                         sl_record *r, sl_record_meta *meta, sl_kafka_hdrs *hdrs)
{
    size_t max = sl_instance_max_record_size(ctx->ins);
    if (m->len > max || m->key_len > max || m->len > UINT32_MAX || m->key_len > UINT32_MAX) {
        uint64_t nth = atomic_fetch_add(&ctx->oversize, 1) + 1;
        sl_instance_count_oversize(ctx->ins, 1);
        if (should_report(nth)) {
            sl_instance_error(ctx->ins,
                              "%s [%" PRId32 "] offset %" PRId64 ": %zu bytes is more than "
                              "max_record_size (%zu): skipped (%" PRIu64 " so far)",
                              topic, m->partition, m->offset, m->len > max ? m->len : m->key_len,
                              max, nth);
        }
        return SL_ERR_TOOBIG;
    }
    if (ctx->format == SL_KAFKA_FORMAT_JSON) {
        json_error_t jerr;
        json_t *j = m->payload ? json_loadb(m->payload, m->len, JSON_DECODE_ANY, &jerr) : NULL;
        if (!j) {
            uint64_t nth = atomic_fetch_add(&ctx->malformed, 1) + 1;
            sl_instance_count_failed(ctx->ins, 1);
            if (should_report(nth) && !m->payload) {
                sl_instance_error(ctx->ins,
                                  "%s [%" PRId32 "] offset %" PRId64 ": malformed JSON (an empty "
                                  "message): skipped (%" PRIu64 " so far)",
                                  topic, m->partition, m->offset, nth);
            } else if (should_report(nth)) {
                sl_instance_error(ctx->ins,
                                  "%s [%" PRId32 "] offset %" PRId64 ": malformed JSON (%s at "
                                  "line %d, column %d): skipped (%" PRIu64 " so far)",
                                  topic, m->partition, m->offset, jerr.text, jerr.line, jerr.column,
                                  nth);
            }
            return SL_ERR_RECORD;
        }
        json_decref(j);
    }
    /* Headers last: a record rejected above must not leave its headers in hdrs. The header
     * parse caches its result in the message, which is why m is cast (librdkafka's API takes
     * a non-const message). */
    uint32_t nh = 0;
    int hrc = ctx->headers_opt ? msg_headers((rd_kafka_message_t *)m, hdrs, &nh) : SL_OK;
    if (hrc != SL_OK) {
        sl_instance_error(ctx->ins,
                          "%s [%" PRId32 "] offset %" PRId64 ": its headers cannot be read (%s): "
                          "skipped",
                          topic, m->partition, m->offset, sl_err2str(hrc));
        sl_instance_count_failed(ctx->ins, 1);
        return hrc == SL_ERR_NOMEM ? SL_ERR_NOMEM : SL_ERR_RECORD;
    }
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    meta->headers = NULL;
    meta->nheaders = nh;
    meta->source = ctx->name;
    meta->topic = topic;
    meta->partition = m->partition;
    meta->offset = m->offset;
    meta->window_ms = 0;
    r->key = m->key;
    r->key_len = (uint32_t)m->key_len;
    r->value = m->payload;
    r->value_len = (uint32_t)m->len;
    r->num_type = SL_NUM_NONE;
    r->num.i = 0;
    r->ts = ts >= 0 ? ts : sl__now_ms();
    r->meta = meta;
    return SL_OK;
}

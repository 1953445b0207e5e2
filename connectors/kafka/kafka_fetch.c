/* kafka_fetch.c -- reading a direct batch's offset ranges into its input: each partition's
 * own fetch queue (and stash) taken in turn until every range is complete or the deadline
 * passes, out-of-range offsets handled, partitions sought where a range starts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_direct.h"

#define READ_SLICE_MS 100 /* longest single wait for messages */

/* ==== Reading a batch ==== */

/* Queries the earliest and latest offsets of p after an out-of-range fetch (or a start
 * past the latest offset) and applies on_offset_out_of_range. @locks ctx->lock held */
void sl__kafka_out_of_range(sl_kafka_src *ctx, sl_kafka_part *p, int64_t offset)
{
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(ctx->rk, p->topic, p->partition, &lo,
                                                               &hi, (int)ctx->poll_timeout);
    if (err) {
        sl_instance_error(ctx->ins,
                          "%s [%" PRId32 "]: offset %" PRId64 " is out of range and the "
                          "partition's offsets cannot be looked up: %s",
                          p->topic, p->partition, offset, rd_kafka_err2str(err));
        return;
    }
    if (offset >= lo && offset <= hi) {
        return; /* in range again (a broker that was catching up) */
    }
    if (ctx->oor == SL_KAFKA_OOR_FAIL) {
        p->broken = true;
        p->broken_reported = sl__mono_ms();
        sl_instance_error(ctx->ins,
                          "%s [%" PRId32 "]: OFFSET OUT OF RANGE: offset %" PRId64 " is not in "
                          "the partition (it holds %" PRId64 "..%" PRId64 "); the partition is "
                          "no longer read (on_offset_out_of_range: fail); set "
                          "on_offset_out_of_range to earliest or latest to skip ahead",
                          p->topic, p->partition, offset, lo, hi);
        return;
    }
    int64_t to = ctx->oor == SL_KAFKA_OOR_EARLIEST ? lo : hi;
    sl_instance_error(ctx->ins,
                      "%s [%" PRId32 "]: OFFSET OUT OF RANGE: offset %" PRId64 " is not in the "
                      "partition (it holds %" PRId64 "..%" PRId64 "); jumping to %" PRId64
                      " (on_offset_out_of_range: %s)%s",
                      p->topic, p->partition, offset, lo, hi, to,
                      ctx->oor == SL_KAFKA_OOR_EARLIEST ? "earliest" : "latest",
                      offset < lo ? ": the messages before it were deleted and are lost" : "");
    p->jump_to = to;
}

/* Room for need records in rb. */
static int rbuf_grow(sl_kafka_rbuf *rb, size_t need)
{
    if (need <= rb->cap) {
        return SL_OK;
    }
    size_t cap = rb->cap ? rb->cap : 1024;
    while (cap < need) {
        cap *= 2;
    }
    sl_record *r = realloc(rb->recs, cap * sizeof(*r));
    if (r) {
        rb->recs = r;
    }
    sl_record_meta *m = realloc(rb->metas, cap * sizeof(*m));
    if (m) {
        rb->metas = m;
    }
    rd_kafka_message_t **h = realloc(rb->held, cap * sizeof(*h));
    if (h) {
        rb->held = h;
    }
    if (!r || !m || !h) {
        return SL_ERR_NOMEM;
    }
    rb->cap = cap;
    return SL_OK;
}

/* Takes m into the range's records (or drops it when it is rejected). */
static int take_message(sl_kafka_src *ctx, sl_kafka_range_read *rr, rd_kafka_message_t *m)
{
    sl_kafka_rbuf *rb = rr->rb;
    rr->p->read = m->offset + 1;
    if (rbuf_grow(rb, rb->n + 1) != SL_OK) {
        rd_kafka_message_destroy(m);
        return SL_ERR_NOMEM;
    }
    int rc =
        sl__kafka_msg_record(ctx, m, rr->p->topic, &rb->recs[rb->n], &rb->metas[rb->n], &rb->hdrs);
    if (rc == SL_OK) {
        rb->held[rb->n++] = m;
    } else {
        rd_kafka_message_destroy(m);
    }
    return rc == SL_ERR_NOMEM ? rc : SL_OK;
}

/* Handles one message taken from the range's queue. */
static int handle_message(sl_kafka_src *ctx, sl_kafka_range_read *rr, rd_kafka_message_t *m)
{
    sl_kafka_part *p = rr->p;
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
            m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
            rr->oor = true;
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            sl_instance_log(ctx->ins, SL_LOG_WARN, "%s [%" PRId32 "]: %s", p->topic, p->partition,
                            rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
        return SL_OK;
    }
    if (rr->done || m->offset >= rr->until) {
        rr->done = true; /* past the range: kept for the next batch */
        return sl__kafka_part_stash(p, m);
    }
    if (m->offset < p->read) {
        rd_kafka_message_destroy(m); /* from before a seek */
        return SL_OK;
    }
    int rc = take_message(ctx, rr, m);
    if (p->read >= rr->until) {
        rr->done = true;
    }
    return rc;
}

/* Takes what the stash holds for the range. */
static int take_stash(sl_kafka_src *ctx, sl_kafka_range_read *rr)
{
    sl_kafka_part *p = rr->p;
    size_t si = 0;
    int rc = SL_OK;
    while (si < p->nstash && rc == SL_OK) {
        rd_kafka_message_t *m = p->stash[si];
        if (m->offset >= rr->until) {
            rr->done = true;
            break;
        }
        si++;
        if (m->offset < p->read) {
            rd_kafka_message_destroy(m);
            continue;
        }
        rc = take_message(ctx, rr, m);
    }
    if (si > 0) {
        memmove(p->stash, p->stash + si, (p->nstash - si) * sizeof(*p->stash));
        p->nstash -= si;
    }
    if (p->read >= rr->until) {
        rr->done = true;
    }
    return rc;
}

/* True when the consumer's position of p passed until although no message came: a gap at
 * the end of the range (compaction, transaction markers). */
static bool position_passed(const sl_kafka_range_read *rr)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rr->p->topic, rr->p->partition);
    bool passed = !rd_kafka_position(rr->rk, l) && l->elems[0].offset >= rr->until;
    rd_kafka_topic_partition_list_destroy(l);
    return passed;
}

/* Takes what the queue of rr has now (or within wait_ms). Returns the messages taken. */
static ssize_t take_queue(sl_kafka_src *ctx, sl_kafka_range_read *rr, int wait_ms, int *rc)
{
    int64_t want = rr->until - rr->p->read;
    if (want <= 0) {
        want = 1;
    }
    ssize_t got = rd_kafka_consume_batch_queue(rr->p->queue, wait_ms, ctx->chunk,
                                               (size_t)(want < READ_CHUNK ? want : READ_CHUNK));
    if (got < 0) {
        sl_instance_log(ctx->ins, SL_LOG_WARN, "%s [%" PRId32 "]: reading failed: %s", rr->p->topic,
                        rr->p->partition, rd_kafka_err2str(rd_kafka_last_error()));
        return 0;
    }
    for (ssize_t i = 0; i < got; i++) {
        int r = handle_message(ctx, rr, ctx->chunk[i]);
        if (r != SL_OK && *rc == SL_OK) {
            *rc = r;
        }
    }
    if (got > 0) {
        rr->last_at = sl__mono_ms();
    }
    return got;
}

/* Reads every range at once: the queues are taken in turn, without waiting while any has
 * messages, so that librdkafka keeps fetching every partition. A range that has no message
 * for READ_SLICE_MS while the consumer's position passed its end is complete (a gap); a
 * range that started where the last one stopped short gets one slice only; the others get
 * until the deadline. Returns SL_OK or SL_ERR_NOMEM. @locks ctx->lock held */
int sl__kafka_read_ranges(sl_kafka_src *ctx, sl_kafka_range_read *rrs, size_t n, int64_t deadline)
{
    int rc = SL_OK;
    size_t left = 0;
    int64_t start = sl__mono_ms();
    for (size_t k = 0; k < n && rc == SL_OK; k++) {
        rrs[k].last_at = start;
        rc = take_stash(ctx, &rrs[k]);
        left += !rrs[k].done;
    }
    while (left > 0 && rc == SL_OK) {
        ssize_t taken = 0;
        for (size_t k = 0; k < n && rc == SL_OK; k++) {
            if (!rrs[k].done && !rrs[k].oor) {
                taken += take_queue(ctx, &rrs[k], 0, &rc);
            }
        }
        /* Ranges that are complete, or that will not be by waiting. */
        int64_t now = sl__mono_ms();
        left = 0;
        sl_kafka_range_read *wait_on = NULL;
        for (size_t k = 0; k < n; k++) {
            sl_kafka_range_read *rr = &rrs[k];
            if (rr->done || rr->oor) {
                continue;
            }
            bool idle = now - rr->last_at >= READ_SLICE_MS;
            if (idle && position_passed(rr)) {
                rr->done = true;
                continue;
            }
            if (now >= deadline || (idle && rr->p->stuck_at == rr->from)) {
                continue; /* given up for this batch */
            }
            left++;
            if (!wait_on) {
                wait_on = rr;
            }
        }
        if (taken == 0 && wait_on) {
            int64_t w = deadline - now;
            take_queue(ctx, wait_on, (int)(w < 10 ? w : 10), &rc);
        }
    }
    return rc;
}

/* Ends the read of a range: the offset it reached. */
int64_t sl__kafka_range_end(sl_kafka_src *ctx, sl_kafka_range_read *rr)
{
    sl_kafka_part *p = rr->p;
    if (rr->oor && !rr->replay) {
        sl__kafka_out_of_range(ctx, p, p->read);
    }
    if (rr->done) {
        p->read = rr->until;
        p->stuck_at = -1;
        return rr->until;
    }
    if (!rr->oor && p->stuck_at != p->read) {
        sl_instance_log(ctx->ins, SL_LOG_INFO,
                        "%s [%" PRId32 "]: offsets %" PRId64 "..%" PRId64 " did not arrive "
                        "within poll_timeout; the next batch reads them",
                        p->topic, p->partition, p->read, rr->until - 1);
    }
    p->stuck_at = p->read;
    return p->read > rr->from ? p->read : rr->from;
}

/* Seeks every partition whose queue is not where its range starts (from[k]). */
void sl__kafka_seek_parts(sl_kafka_src *ctx, const size_t *idx, const int64_t *from, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n + 1);
    for (size_t k = 0; k < n; k++) {
        sl_kafka_part *p = &ctx->parts[idx[k]];
        if (p->read != from[k]) {
            sl__kafka_part_clear_stash(p);
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = from[k];
        }
    }
    if (l->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(ctx->rk, l, (int)ctx->poll_timeout);
        if (e) {
            sl_instance_log(ctx->ins, SL_LOG_WARN, "seeking failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        } else {
            for (int i = 0; i < l->cnt; i++) {
                sl_kafka_part *p =
                    sl__kafka_part_find(ctx, l->elems[i].topic, l->elems[i].partition);
                if (p && !l->elems[i].err) {
                    p->read = l->elems[i].offset;
                    sl_instance_log(ctx->ins, SL_LOG_DEBUG, "%s [%" PRId32 "]: at %" PRId64,
                                    p->topic, p->partition, p->read);
                }
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Appends " topic[p]:from-until" to a growing text. */
void sl__kafka_range_describe(char **buf, size_t *len, size_t *cap, const sl_kafka_range *r)
{
    char item[320];
    int n = snprintf(item, sizeof(item), "%s%s[%" PRId32 "]:%" PRId64 "-%" PRId64, *len ? " " : "",
                     r->topic, r->partition, r->from, r->until);
    if (n <= 0) {
        return;
    }
    if (*len + (size_t)n + 1 > *cap) {
        size_t c = (*cap ? *cap * 2 : 256) + (size_t)n;
        char *b = realloc(*buf, c);
        if (!b) {
            return;
        }
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, item, (size_t)n + 1);
    *len += (size_t)n;
}

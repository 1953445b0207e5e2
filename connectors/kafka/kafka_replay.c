/* kafka_replay.c -- the direct source after a restart: restore() puts the positions of the
 * checkpoint's last batch definition back, replay() reads a pending batch's ranges again
 * (exactly-once input: the same offsets as the first time, no position moves). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "kafka_direct.h"

/* ==== After a restart: replay and restore ==== */

/* Parses a definition's array `key` of [topic, partition, offset(, offset)] items. */
static json_t *definition_items(const char *definition, const char *key, json_t **root)
{
    json_error_t jerr;
    *root = json_loads(definition, 0, &jerr);
    json_t *a = *root ? json_object_get(*root, key) : NULL;
    return json_is_array(a) ? a : NULL;
}

int sl__kafka_direct_replay(sl_kafka_src *ctx, int64_t batch_time, const char *definition,
                            sl_batch_input *in)
{
    json_t *root;
    json_t *items = definition_items(definition, "ranges", &root);
    if (!items) {
        json_decref(root);
        sl_instance_error(ctx->ins,
                          "batch %" PRId64 ": its checkpointed definition is not "
                          "readable; it cannot be read again",
                          batch_time);
        return SL_ERR_INVAL;
    }
    size_t n = json_array_size(items);
    int rc = sl__kafka_src_bootstrap(ctx);
    sl_kafka_part *tmp = calloc(n + 1, sizeof(*tmp));
    sl_kafka_range_read *rrs = calloc(n + 1, sizeof(*rrs));
    sl_kafka_rbuf *rbs = calloc(n + 1, sizeof(*rbs));
    sl_kafka_range *ranges = calloc(n + 1, sizeof(*ranges));
    sl_kafka_pending *e = calloc(1, sizeof(*e));
    if (!ctx->chunk) {
        ctx->chunk = malloc(READ_CHUNK * sizeof(*ctx->chunk));
    }
    if (rc == SL_OK && (!tmp || !rrs || !rbs || !ranges || !e || !ctx->chunk)) {
        rc = SL_ERR_NOMEM;
    }
    /* A consumer of its own: the source's position and assignment do not move. */
    rd_kafka_t *rk = NULL;
    char errstr[512];
    if (rc == SL_OK) {
        rd_kafka_conf_t *conf = sl__kafka_conf_new(ctx->ins, ctx->bootstrap, ctx->properties,
                                                   SL_KAFKA_DIRECT, errstr, sizeof(errstr));
        char gid[256];
        snprintf(gid, sizeof(gid), "sluice-replay-%s-%ld", ctx->name, (long)getpid());
        if (conf) {
            rd_kafka_conf_set(conf, "group.id", gid, errstr, sizeof(errstr));
            rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
            if (!rk) {
                rd_kafka_conf_destroy(conf);
            }
        }
        if (!rk) {
            sl_instance_error(ctx->ins, "batch %" PRId64 ": cannot read it again: %s", batch_time,
                              errstr);
            rc = SL_ERR_IO;
        }
    }
    size_t nr = 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n + 1);
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        json_t *it = json_array_get(items, i);
        const char *topic = json_string_value(json_array_get(it, 0));
        int64_t part = json_integer_value(json_array_get(it, 1));
        int64_t from = json_integer_value(json_array_get(it, 2));
        int64_t until = json_integer_value(json_array_get(it, 3));
        const char *t = topic ? sl__kafka_intern(ctx, topic) : NULL;
        if (!t || until <= from || from < 0) {
            continue;
        }
        ranges[nr] =
            (sl_kafka_range){.topic = t, .partition = (int32_t)part, .from = from, .until = until};
        tmp[nr] = (sl_kafka_part){
            .topic = t, .partition = (int32_t)part, .read = from, .stuck_at = -1, .jump_to = -1};
        tmp[nr].queue = rd_kafka_queue_get_partition(rk, t, (int32_t)part);
        if (tmp[nr].queue) {
            rd_kafka_queue_forward(tmp[nr].queue, NULL);
        }
        rd_kafka_topic_partition_list_add(l, t, (int32_t)part)->offset = from;
        rrs[nr] = (sl_kafka_range_read){
            .rk = rk, .replay = true, .p = &tmp[nr], .rb = &rbs[nr], .from = from, .until = until};
        nr++;
    }
    if (rc == SL_OK && nr > 0) {
        rd_kafka_error_t *err = rd_kafka_incremental_assign(rk, l);
        if (err) {
            sl_instance_error(ctx->ins, "batch %" PRId64 ": cannot read it again: %s", batch_time,
                              rd_kafka_error_string(err));
            rd_kafka_error_destroy(err);
            rc = SL_ERR_IO;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (rc == SL_OK && nr > 0) {
        rc = sl__kafka_read_ranges(ctx, rrs, nr, sl__mono_ms() + 3 * ctx->poll_timeout);
    }
    char *desc = NULL;
    size_t dlen = 0, dcap = 0, total = 0;
    for (size_t r = 0; r < nr; r++) {
        sl_kafka_rbuf *rb = &rbs[r];
        if (!rrs[r].done) {
            sl_instance_error(ctx->ins,
                              "batch %" PRId64 " (replayed): %s [%" PRId32 "] offsets %" PRId64
                              "..%" PRId64 " could not all be read again (%s); %zu records",
                              batch_time, ranges[r].topic, ranges[r].partition, ranges[r].from,
                              ranges[r].until - 1,
                              rrs[r].oor ? "no longer in the partition" : "not within poll_timeout",
                              rb->n);
        }
        for (size_t i = 0; i < rb->n; i++) {
            rb->recs[i].meta = &rb->metas[i];
        }
        sl__kafka_hdrs_link(rb->metas, rb->n, &rb->hdrs);
        if (rc == SL_OK && rb->n > 0) {
            rc = sl_batch_input_add_records(in, rb->recs, rb->n);
        }
        for (size_t i = 0; i < rb->n; i++) {
            rd_kafka_message_destroy(rb->held[i]);
        }
        total += rb->n;
        sl__kafka_range_describe(&desc, &dlen, &dcap, &ranges[r]);
        free(rb->recs);
        free(rb->metas);
        free(rb->held);
        free(rb->hdrs.v);
        sl__kafka_part_free(&tmp[r]);
    }
    if (rk) {
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    if (rc == SL_OK) {
        /* Its completion moves `done` like any batch's. */
        rc = sl_batch_input_set_definition(in, definition);
        for (size_t r = 0; r < nr && rc == SL_OK; r++) {
            rc = sl_batch_input_add_range(in, ranges[r].topic, ranges[r].partition, ranges[r].from,
                                          ranges[r].until);
        }
        sl_batch_input_describe(in, "%s", desc ? desc : "no new offsets");
        sl_instance_log(ctx->ins, SL_LOG_INFO, "batch %" PRId64 " read again: %zu records: %s",
                        batch_time, total, desc ? desc : "no new offsets");
        pthread_mutex_lock(&ctx->lock);
        e->time = batch_time;
        e->ranges = ranges;
        e->n = nr;
        if (ctx->pending_tail) {
            ctx->pending_tail->next = e;
        } else {
            ctx->pending = e;
        }
        ctx->pending_tail = e;
        pthread_mutex_unlock(&ctx->lock);
        e = NULL;
        ranges = NULL;
    }
    free(desc);
    free(e);
    free(ranges);
    free(rbs);
    free(rrs);
    free(tmp);
    json_decref(root);
    return rc;
}

int sl__kafka_direct_restore(sl_kafka_src *ctx, const char *definition)
{
    json_t *root;
    json_t *items = definition_items(definition, "next", &root);
    if (!items) {
        json_decref(root);
        sl_instance_error(ctx->ins, "the checkpoint's position is not readable");
        return SL_ERR_INVAL;
    }
    int rc = SL_OK;
    size_t n = json_array_size(items);
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        json_t *it = json_array_get(items, i);
        const char *topic = json_string_value(json_array_get(it, 0));
        int64_t off = json_integer_value(json_array_get(it, 2));
        if (topic && off >= 0) {
            rc = sl__kafka_saved_set(ctx, topic, (int32_t)json_integer_value(json_array_get(it, 1)),
                                     off);
        }
    }
    ctx->restored = true;
    pthread_mutex_unlock(&ctx->lock);
    json_decref(root);
    if (rc == SL_OK) {
        sl_instance_log(ctx->ins, SL_LOG_INFO, "continuing from the checkpoint: %zu partitions", n);
    }
    return rc;
}

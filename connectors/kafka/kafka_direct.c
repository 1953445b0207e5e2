/* kafka_direct.c -- the direct source, Spark's direct stream: at each batch time, the latest
 * offset of every assigned partition; ranges [from, until) bounded as SEMANTICS.md says;
 * exactly the messages of those ranges read, in offset order, one batch partition per Kafka
 * partition. This file: batches (next_batch, in phases), completion and commits, start,
 * destroy. The partition table and its assignment: kafka_assign.c; reading the ranges:
 * kafka_fetch.c; replay and restore after a restart: kafka_replay.c.
 *
 * Reading: one consumer; every partition has its own fetch queue (not forwarded to the
 * consumer's), so librdkafka prefetches all partitions in the background while a batch
 * takes exactly its range from each queue. A message fetched past a range's end waits in
 * the partition's stash for the next batch. When a batch must start elsewhere than where the
 * queue is (a failed batch re-read, an offset reset), the partition is sought.
 *
 * Positions: `next` (where the next batch starts) moves when a batch is generated; `done`
 * moves only when the engine reports the batch complete (on_batch_done), and is what is
 * committed to the group. When a batch fails, the next batch starts again at the failed
 * batch's ranges: nothing is lost. Each batch's definition (its ranges, and where every
 * partition continues) goes to the engine's checkpoint: after a restart, restore() puts the
 * positions back and replay() reads a pending batch's ranges again (exactly-once input).
 *
 * Assignment: without a group, every partition of the topics (or of those matching the
 * pattern), looked up every metadata_refresh. With a group, the group's subscription only
 * assigns partitions (rebalance callback); offsets stay ours.
 *
 * Threads: next_batch runs on the timer thread and reads without the lock (only this thread
 * changes the partition table); on_batch_done and the failure listener run on the job
 * thread; ctx->lock guards the table's changes, `next`, `done` and the pending batches.
 * librdkafka's rebalance and commit callbacks run only inside our polls, with the lock
 * held. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "kafka_direct.h"

static void publish_lag(sl_kafka_src *ctx, const size_t *idx, size_t n);

#define BROKEN_REPORT_MS  10000 /* a stopped partition is reported again after this long */
#define START_TIMEOUT_MS  1000  /* longest wait for the brokers in start() */
#define WAITING_REPORT_MS 5000  /* waiting for an assignment is reported this often */

/* ==== Pending batches, completion and failure ==== */

static void pending_free(sl_kafka_pending *e)
{
    if (e) {
        free(e->ranges);
        free(e);
    }
}

/* The offsets to commit: every partition's done offset. NULL when there is none. */
rd_kafka_topic_partition_list_t *sl__kafka_done_offsets(sl_kafka_src *ctx,
                                                        const rd_kafka_topic_partition_list_t *only)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (size_t i = 0; i < ctx->nparts; i++) {
        sl_kafka_part *p = &ctx->parts[i];
        if (p->done < 0 || p->done == p->committed ||
            (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))) {
            continue;
        }
        if (!l) {
            l = rd_kafka_topic_partition_list_new((int)ctx->nparts);
        }
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->done;
    }
    return l;
}

/* Marks offsets of l as committed (after a successful commit). @locks ctx->lock held */
void sl__kafka_note_committed(sl_kafka_src *ctx, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        sl_kafka_part *p = sl__kafka_part_find(ctx, l->elems[i].topic, l->elems[i].partition);
        if (p && !l->elems[i].err) {
            p->committed = l->elems[i].offset;
        }
    }
}

/* Batches from e on will not all complete: the next batch re-reads each partition from
 * the first range of it they hold, and none of them moves `done`. @locks ctx->lock held */
static void rewind_from(sl_kafka_src *ctx, int64_t failed_time)
{
    char text[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < ctx->nparts; i++) {
        sl_kafka_part *p = &ctx->parts[i];
        for (sl_kafka_pending *e = ctx->pending; e; e = e->next) {
            bool hit = false;
            for (size_t r = 0; r < e->n && !hit; r++) {
                sl_kafka_range *rg = &e->ranges[r];
                if (rg->partition == p->partition && rg->topic == p->topic) {
                    hit = true;
                    if (rg->from < p->next) {
                        p->next = rg->from;
                    }
                }
            }
            if (hit) {
                if (len + 1 < sizeof(text)) {
                    int n = snprintf(text + len, sizeof(text) - len, " %s[%" PRId32 "]@%" PRId64,
                                     p->topic, p->partition, p->next);
                    len += n > 0 ? (size_t)n : 0;
                }
                break;
            }
        }
    }
    for (sl_kafka_pending *e = ctx->pending; e;) {
        sl_kafka_pending *next = e->next;
        pending_free(e);
        e = next;
    }
    ctx->pending = ctx->pending_tail = NULL;
    ctx->rewinds++;
    if (ctx->position_sinks > 0) {
        /* A sink may hold the input elsewhere (it fenced the batch): every partition
         * continues where the sinks are now. */
        for (size_t i = 0; i < ctx->nparts; i++) {
            ctx->parts[i].want = SL_KAFKA_WANT_SINKS;
            ctx->parts[i].later = true;
        }
    }
    sl_instance_log(ctx->ins, SL_LOG_WARN,
                    "batch %" PRId64 " did not complete: its input is read again from%s",
                    failed_time, len ? text : " the same offsets");
    pthread_cond_broadcast(&ctx->cond);
}

void sl__kafka_direct_done(sl_kafka_src *ctx, int64_t batch_time)
{
    pthread_mutex_lock(&ctx->lock);
    if (ctx->pending && ctx->pending->time < batch_time) {
        /* An earlier batch never completed: this one is superseded as well. */
        rewind_from(ctx, ctx->pending->time);
    }
    rd_kafka_topic_partition_list_t *commit = NULL;
    if (ctx->pending && ctx->pending->time == batch_time) {
        sl_kafka_pending *e = ctx->pending;
        ctx->pending = e->next;
        if (!ctx->pending) {
            ctx->pending_tail = NULL;
        }
        for (size_t r = 0; r < e->n; r++) {
            sl_kafka_part *p = sl__kafka_part_find(ctx, e->ranges[r].topic, e->ranges[r].partition);
            if (p && e->ranges[r].until > p->done) {
                p->done = e->ranges[r].until;
            }
        }
        pending_free(e);
        ctx->first_done = true;
        if (sl__kafka_has_group(ctx) && ctx->rk && !sl__kafka_txn_group_claimed(ctx->group)) {
            commit = sl__kafka_done_offsets(ctx, NULL);
        }
        pthread_cond_broadcast(&ctx->cond);
    }
    if (commit) {
        /* Asynchronous: a batch does not wait for the coordinator; a failed commit is
         * retried with the next batch's. */
        rd_kafka_resp_err_t err = rd_kafka_commit(ctx->rk, commit, 1);
        if (!err) {
            sl__kafka_note_committed(ctx, commit);
        }
        rd_kafka_topic_partition_list_destroy(commit);
    }
    pthread_mutex_unlock(&ctx->lock);
}

void sl__kafka_direct_failed(sl_kafka_src *ctx, int64_t batch_time)
{
    pthread_mutex_lock(&ctx->lock);
    for (sl_kafka_pending *e = ctx->pending; e; e = e->next) {
        if (e->time == batch_time) {
            rewind_from(ctx, ctx->pending->time);
            break;
        }
    }
    pthread_mutex_unlock(&ctx->lock);
}

static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    sl_kafka_src *ctx = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
        return;
    }
    if (err) {
        sl_instance_log(ctx->ins, SL_LOG_WARN,
                        "committing offsets failed: %s (retried with the "
                        "next batch)",
                        rd_kafka_err2str(err));
    }
    /* Partitions whose commit failed are committed again with the next batch. */
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        if (err || offsets->elems[i].err) {
            sl_kafka_part *p =
                sl__kafka_part_find(ctx, offsets->elems[i].topic, offsets->elems[i].partition);
            if (p) {
                p->committed = -1;
            }
        }
    }
}

/* ==== Start ==== */

int sl__kafka_direct_start(sl_kafka_src *ctx)
{
    char errstr[512];
    if (ctx->rk) {
        return SL_OK;
    }
    int rc = sl__kafka_src_bootstrap(ctx);
    if (rc != SL_OK) {
        return rc;
    }
    rd_kafka_conf_t *conf = sl__kafka_conf_new(ctx->ins, ctx->bootstrap, ctx->properties,
                                               SL_KAFKA_DIRECT, errstr, sizeof(errstr));
    if (!conf) {
        sl_instance_error(ctx->ins, "%s", errstr);
        return SL_ERR_INVAL;
    }
    char gid[256], ms[32];
    if (sl__kafka_has_group(ctx)) {
        snprintf(gid, sizeof(gid), "%s", ctx->group);
    } else {
        /* librdkafka's assign() needs a group id; this one is never joined nor committed. */
        snprintf(gid, sizeof(gid), "sluice-%s-%ld-%lld", ctx->name, (long)getpid(),
                 (long long)sl__mono_ms());
    }
    snprintf(ms, sizeof(ms), "%lld", (long long)ctx->metadata_refresh);
    rd_kafka_conf_set(conf, "group.id", gid, errstr, sizeof(errstr));
    if (sl__kafka_has_group(ctx) && ctx->group_instance_id && *ctx->group_instance_id &&
        rd_kafka_conf_set(conf, "group.instance.id", ctx->group_instance_id, errstr,
                          sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        sl_instance_error(ctx->ins, "group_instance_id: %s", errstr);
        return SL_ERR_INVAL;
    }
    rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", ms, errstr, sizeof(errstr));
    rd_kafka_conf_set_opaque(conf, ctx);
    rd_kafka_conf_set_error_cb(conf, sl__kafka_src_error_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
    if (sl__kafka_has_group(ctx)) {
        rd_kafka_conf_set_rebalance_cb(conf, sl__kafka_rebalance_cb);
    }
    ctx->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!ctx->rk) {
        rd_kafka_conf_destroy(conf);
        sl_instance_error(ctx->ins, "cannot create the Kafka consumer: %s", errstr);
        return SL_ERR_INVAL;
    }
    if (sl__kafka_has_group(ctx)) {
        if (sl__kafka_subscribe(ctx, errstr, sizeof(errstr)) != SL_OK) {
            sl_instance_error(ctx->ins, "%s", errstr);
            return SL_ERR_INVAL;
        }
        ctx->subscribed = true;
        /* A transactional kafka sink of this process sends offsets with this consumer's
         * group metadata (generation, member), which lets the broker fence a zombie. */
        sl__kafka_group_register(ctx->group, ctx->rk, ctx);
        sl_instance_set_waiting(ctx->ins, true); /* until the group assigns partitions */
    }
    ctx->chunk = malloc(READ_CHUNK * sizeof(*ctx->chunk));
    if (!ctx->chunk) {
        return SL_ERR_NOMEM;
    }
    sl_instance_log(ctx->ins, SL_LOG_INFO, "direct Kafka input from %s%s%s", ctx->bootstrap,
                    sl__kafka_has_group(ctx) ? ", group " : "",
                    sl__kafka_has_group(ctx) ? ctx->group : "");
    if (!ctx->subscribed) {
        /* Partitions assigned now are fetched before the first batch. A broker that is not
         * there yet does not hold the start up long: batches look again. */
        int timeout =
            (int)(ctx->poll_timeout < START_TIMEOUT_MS ? ctx->poll_timeout : START_TIMEOUT_MS);
        pthread_mutex_lock(&ctx->lock);
        sl__kafka_refresh_metadata(ctx, timeout);
        ctx->next_refresh = sl__mono_ms() + ctx->metadata_refresh;
        sl__kafka_resolve_parts(ctx, timeout);
        sl__kafka_assign_manual(ctx);
        pthread_mutex_unlock(&ctx->lock);
    }
    return SL_OK;
}

/* ==== Events ==== */

/* Serves librdkafka's queues: errors, logs, commit results and, with a group, rebalances.
 * @locks ctx->lock held */
static void serve_events(sl_kafka_src *ctx)
{
    rd_kafka_poll(ctx->rk, 0);
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(ctx->rk, 0)) != NULL) {
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
                if (!ctx->missing_reported) {
                    sl_instance_error(
                        ctx->ins, "%s%s%s (at %s); it is read once it is created",
                        m->rkt ? "topic " : "", m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                        m->rkt ? ": does not exist" : rd_kafka_message_errstr(m), ctx->bootstrap);
                    ctx->missing_reported = true;
                }
            } else {
                sl_instance_log(ctx->ins, SL_LOG_WARN, "Kafka: %s", rd_kafka_message_errstr(m));
            }
        }
        rd_kafka_message_destroy(m);
    }
}

static int grow_rbufs(sl_kafka_src *ctx, size_t n)
{
    if (n <= ctx->caprbufs) {
        return SL_OK;
    }
    sl_kafka_rbuf *v = realloc(ctx->rbufs, n * sizeof(*v));
    if (!v) {
        return SL_ERR_NOMEM;
    }
    memset(v + ctx->caprbufs, 0, (n - ctx->caprbufs) * sizeof(*v));
    ctx->rbufs = v;
    ctx->caprbufs = n;
    return SL_OK;
}

static int grow_bufs(sl_kafka_src *ctx, size_t n)
{
    if (n <= ctx->capbuf) {
        return SL_OK;
    }
    size_t cap = n * 2;
    int64_t *a = realloc(ctx->from_buf, cap * sizeof(*a));
    if (a) {
        ctx->from_buf = a;
    }
    int64_t *b = realloc(ctx->latest_buf, cap * sizeof(*b));
    if (b) {
        ctx->latest_buf = b;
    }
    int64_t *c = realloc(ctx->until_buf, cap * sizeof(*c));
    if (c) {
        ctx->until_buf = c;
    }
    if (!a || !b || !c) {
        return SL_ERR_NOMEM;
    }
    ctx->capbuf = cap;
    return SL_OK;
}

/* The rate R of SEMANTICS.md: the engine's backpressure rate (its estimate, or its
 * initial rate until there is one), else this source's initial_rate until a batch
 * completed. @locks ctx->lock held */
static double input_rate(const sl_kafka_src *ctx)
{
    double r = sl_instance_backpressure_rate(ctx->ins);
    if (r > 0) {
        return r;
    }
    return !ctx->first_done && ctx->initial_rate > 0 ? ctx->initial_rate : 0;
}

/* The partitions a batch reads: resolved, assigned, not stopped. */
static size_t active_parts(sl_kafka_src *ctx, size_t *idx)
{
    size_t n = 0;
    int64_t now = sl__mono_ms();
    for (size_t i = 0; i < ctx->nparts; i++) {
        sl_kafka_part *p = &ctx->parts[i];
        if (p->broken && now - p->broken_reported >= BROKEN_REPORT_MS) {
            p->broken_reported = now;
            sl_instance_error(ctx->ins,
                              "%s [%" PRId32 "] is stopped at offset %" PRId64
                              " (out of range, on_offset_out_of_range: fail)",
                              p->topic, p->partition, p->next);
        }
        if (p->assigned && p->want == SL_KAFKA_WANT_NONE && !p->broken && p->queue) {
            idx[n++] = i;
        }
    }
    return n;
}

/* Looks up the latest offset of every active partition into p->latest (-1 when unknown).
 * Returns SL_OK or the error of the whole request. */
static int query_latest(sl_kafka_src *ctx, const size_t *idx, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t k = 0; k < n; k++) {
        sl_kafka_part *p = &ctx->parts[idx[k]];
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = -1;
        p->latest = -1;
    }
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(ctx->rk, l, (int)ctx->poll_timeout);
    if (err) {
        sl__kafka_report_down(ctx, "cannot look up the latest offsets", err);
    } else {
        sl__kafka_report_up(ctx);
        for (int i = 0; i < l->cnt; i++) {
            sl_kafka_part *p = sl__kafka_part_find(ctx, l->elems[i].topic, l->elems[i].partition);
            if (p && !l->elems[i].err && l->elems[i].offset >= 0) {
                p->latest = l->elems[i].offset;
            } else if (p) {
                sl_instance_log(ctx->ins, SL_LOG_DEBUG, "%s [%" PRId32 "]: no latest offset: %s",
                                p->topic, p->partition, rd_kafka_err2str(l->elems[i].err));
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return err ? sl__kafka_err(err) : SL_OK;
}

/* The definition of a batch for the engine's checkpoint: its ranges (to read them again
 * after a restart) and where every partition continues after it:
 * {"ranges":[[topic,partition,from,until],...],"next":[[topic,partition,offset],...]}.
 * "next" also carries the checkpoint's positions of partitions not held. NULL when out of memory
 * (the batch then has no definition). @locks ctx->lock held */
static char *definition_json(sl_kafka_src *ctx, const sl_kafka_range *ranges, size_t n)
{
    json_t *root = json_object(), *jr = json_array(), *jn = json_array();
    for (size_t i = 0; root && jr && i < n; i++) {
        json_array_append_new(jr,
                              json_pack("[s,i,I,I]", ranges[i].topic, (int)ranges[i].partition,
                                        (json_int_t)ranges[i].from, (json_int_t)ranges[i].until));
    }
    for (size_t i = 0; root && jn && i < ctx->nparts; i++) {
        sl_kafka_part *p = &ctx->parts[i];
        if (p->want == SL_KAFKA_WANT_NONE && p->next >= 0) {
            json_array_append_new(
                jn, json_pack("[s,i,I]", p->topic, (int)p->partition, (json_int_t)p->next));
        }
    }
    /* Positions restored from the checkpoint and not used yet (the partition is not held,
     * or not placed yet) stay in it: an instance that held no partitions for a while must
     * not make the next restart fall back to `start`. */
    for (size_t i = 0; root && jn && i < ctx->nsaved; i++) {
        const sl_kafka_saved *sv = &ctx->saved[i];
        const sl_kafka_part *p = sl__kafka_part_find(ctx, sv->topic, sv->partition);
        if (sv->offset >= 0 && !(p && p->want == SL_KAFKA_WANT_NONE && p->next >= 0)) {
            json_array_append_new(
                jn, json_pack("[s,i,I]", sv->topic, (int)sv->partition, (json_int_t)sv->offset));
        }
    }
    char *text = NULL;
    if (root && jr && jn) {
        json_object_set(root, "ranges", jr);
        json_object_set(root, "next", jn);
        text = json_dumps(root, JSON_COMPACT);
    }
    json_decref(jr);
    json_decref(jn);
    json_decref(root);
    return text;
}

/* A batch while next_batch builds it. */
typedef struct batch_build {
    size_t *idx;            /* the active partitions: indexes into ctx->parts */
    size_t n;               /* ctx->from_buf[k], latest_buf[k], until_buf[k] are idx[k]'s */
    uint64_t rewinds;       /* ctx->rewinds when the batch was planned */
    sl_kafka_limits lim;    /* what bounds the ranges */
    sl_kafka_range *ranges; /* the ranges read (non-empty), for the pending batch */
    size_t nranges, total;  /* total: records */
    char *desc;             /* " topic[p]:from-until" of each range */
    size_t dlen, dcap;
} batch_build;

/* Phase 1: the partitions follow the group or the topics' metadata, start offsets are
 * resolved, and without a group the new ones assigned. @locks ctx->lock held */
static void update_assignment(sl_kafka_src *ctx)
{
    serve_events(ctx);
    sl_instance_set_waiting(ctx->ins, ctx->subscribed && ctx->nparts == 0);
    if (ctx->subscribed && ctx->nparts == 0) {
        int64_t now = sl__mono_ms();
        if (!ctx->waiting_since) {
            ctx->waiting_since = now;
        } else if (now - ctx->waiting_since >= WAITING_REPORT_MS &&
                   now - ctx->waiting_reported >= WAITING_REPORT_MS) {
            ctx->waiting_reported = now;
            sl_instance_log(ctx->ins, SL_LOG_WARN,
                            "waiting %" PRId64 " s for group %s to assign partitions (members "
                            "that are gone hold theirs until session.timeout.ms passes; "
                            "group_instance_id gives a restarted instance its own back at once)",
                            (now - ctx->waiting_since) / 1000, ctx->group);
        }
    }
    if (!ctx->subscribed && sl__mono_ms() >= ctx->next_refresh) {
        sl__kafka_refresh_metadata(ctx, (int)ctx->poll_timeout);
        ctx->next_refresh = sl__mono_ms() + ctx->metadata_refresh;
    }
    for (size_t i = 0; i < ctx->nparts; i++) {
        if (ctx->parts[i].want != SL_KAFKA_WANT_NONE) {
            sl__kafka_resolve_parts(ctx, (int)ctx->poll_timeout);
            break;
        }
    }
    if (!ctx->subscribed) {
        sl__kafka_assign_manual(ctx);
    }
}

/* Phase 2: the partitions the batch reads, where each starts, and the limits.
 * @locks ctx->lock held */
static int plan_batch(sl_kafka_src *ctx, batch_build *bb)
{
    int rc = grow_bufs(ctx, ctx->nparts + 1);
    bb->idx = rc == SL_OK ? malloc((ctx->nparts + 1) * sizeof(*bb->idx)) : NULL;
    bb->n = bb->idx ? active_parts(ctx, bb->idx) : 0;
    if (!bb->idx) {
        rc = SL_ERR_NOMEM;
    }
    for (size_t k = 0; k < bb->n; k++) {
        ctx->from_buf[k] = ctx->parts[bb->idx[k]].next;
    }
    bb->rewinds = ctx->rewinds;
    if (ctx->max_rate_per_partition > 0 && bb->n > 0) {
        /* What the status page shows as the rate limit: the cap over the partitions read. */
        sl_instance_set_rate_cap(ctx->ins, ctx->max_rate_per_partition * (double)bb->n);
    }
    bb->lim = (sl_kafka_limits){
        .batch_ms = ctx->batch_ms,
        .max_rate_per_partition = ctx->max_rate_per_partition,
        .min_rate_per_partition = ctx->min_rate_per_partition,
        .rate = input_rate(ctx),
    };
    return rc;
}

/* While sinks disagree on where a partition is (input positions: some hold more of it
 * than others), a batch reads that partition alone, up to the next sink's position, so
 * that each sink holds either all of the batch (and skips it) or none of it (and writes
 * it). Without the lock (the cuts change only on this thread). */
static void catch_up(sl_kafka_src *ctx, batch_build *bb)
{
    size_t alone = bb->n;
    for (size_t k = 0; k < bb->n && alone == bb->n; k++) {
        if (ctx->parts[bb->idx[k]].ncut > 0) {
            alone = k;
        }
    }
    for (size_t k = 0; alone < bb->n && k < bb->n; k++) {
        const sl_kafka_part *p = &ctx->parts[bb->idx[k]];
        if (k != alone) {
            ctx->until_buf[k] = ctx->from_buf[k];
        } else if (ctx->until_buf[k] > p->cut[0]) {
            ctx->until_buf[k] = p->cut[0];
        }
    }
}

/* Phase 3: the ranges [from, until) from the latest offsets and the limits; the queues
 * sought where a range starts. A partition whose latest offset is unknown gets an empty
 * range; when the lookup fails, the batch has no partition. Without the lock. */
static void compute_ranges(sl_kafka_src *ctx, batch_build *bb, int rc)
{
    if (rc == SL_OK && bb->n > 0 && query_latest(ctx, bb->idx, bb->n) != SL_OK) {
        bb->n = 0; /* no input this time; the next batch tries again */
    }
    for (size_t k = 0; k < bb->n; k++) {
        sl_kafka_part *p = &ctx->parts[bb->idx[k]];
        int64_t from = ctx->from_buf[k];
        if (p->latest >= 0 && from > p->latest) {
            sl__kafka_out_of_range(ctx, p, from);
        }
        ctx->latest_buf[k] = p->latest >= from ? p->latest : from;
        if (p->jump_to >= 0 || p->broken) {
            ctx->latest_buf[k] = from;
        }
    }
    sl__kafka_compute_until(bb->n, ctx->from_buf, ctx->latest_buf, &bb->lim, ctx->until_buf);
    catch_up(ctx, bb);
    if (bb->n > 0) {
        sl__kafka_seek_parts(ctx, bb->idx, ctx->from_buf, bb->n);
    }
    publish_lag(ctx, bb->idx, bb->n);
}

/* Phase 4: reads each range into in, one batch partition per Kafka partition; until_buf[k]
 * becomes where partition k's range really ended. The messages are released whatever
 * happens. Without the lock. */
static int read_batch(sl_kafka_src *ctx, batch_build *bb, sl_batch_input *in, int rc)
{
    int64_t deadline = sl__mono_ms() + ctx->poll_timeout;
    sl_kafka_range_read *rrs = calloc(bb->n + 1, sizeof(*rrs));
    size_t *rk = calloc(bb->n + 1, sizeof(*rk));
    if (!rrs || !rk || grow_rbufs(ctx, bb->n + 1) != SL_OK) {
        rc = SL_ERR_NOMEM;
    }
    size_t nr = 0;
    for (size_t k = 0; k < bb->n && rc == SL_OK; k++) {
        sl_kafka_part *p = &ctx->parts[bb->idx[k]];
        if (ctx->until_buf[k] <= ctx->from_buf[k]) {
            continue;
        }
        if (p->read != ctx->from_buf[k]) {
            ctx->until_buf[k] = ctx->from_buf[k]; /* the seek failed: next time */
            continue;
        }
        ctx->rbufs[nr].n = 0;
        ctx->rbufs[nr].hdrs.n = 0;
        rrs[nr] = (sl_kafka_range_read){.rk = ctx->rk,
                                        .p = p,
                                        .rb = &ctx->rbufs[nr],
                                        .from = ctx->from_buf[k],
                                        .until = ctx->until_buf[k]};
        rk[nr++] = k;
    }
    if (rc == SL_OK) {
        rc = sl__kafka_read_ranges(ctx, rrs, nr, deadline);
    }
    for (size_t r = 0; r < nr; r++) {
        sl_kafka_range_read *rr = &rrs[r];
        sl_kafka_rbuf *rb = rr->rb;
        int64_t reached = sl__kafka_range_end(ctx, rr);
        for (size_t i = 0; i < rb->n; i++) {
            rb->recs[i].meta = &rb->metas[i]; /* the arrays may have moved */
        }
        sl__kafka_hdrs_link(rb->metas, rb->n, &rb->hdrs);
        if (rc == SL_OK && rb->n > 0) {
            rc = sl_batch_input_add_records(in, rb->recs, rb->n);
        }
        for (size_t i = 0; i < rb->n; i++) {
            rd_kafka_message_destroy(rb->held[i]);
        }
        ctx->until_buf[rk[r]] = reached;
        if (reached > rr->from) {
            bb->ranges[bb->nranges] = (sl_kafka_range){.topic = rr->p->topic,
                                                       .partition = rr->p->partition,
                                                       .from = rr->from,
                                                       .until = reached};
            sl__kafka_range_describe(&bb->desc, &bb->dlen, &bb->dcap, &bb->ranges[bb->nranges]);
            bb->nranges++;
            bb->total += rb->n;
        }
        rb->n = 0;
        rb->hdrs.n = 0;
    }
    free(rrs);
    free(rk);
    return rc;
}

/* Phase 5: the positions move on: the next batch starts where this one ends. Unless a
 * batch failed while this one was read (`next` went back): then this batch is superseded,
 * its input is delivered but does not count as processed, since the offsets before it are
 * read again. Returns whether it was superseded. @locks ctx->lock held */
static bool advance_positions(sl_kafka_src *ctx, const batch_build *bb)
{
    if (ctx->rewinds != bb->rewinds) {
        for (size_t k = 0; k < bb->n; k++) {
            ctx->parts[bb->idx[k]].jump_to = -1;
        }
        return true;
    }
    for (size_t k = 0; k < bb->n; k++) {
        sl_kafka_part *p = &ctx->parts[bb->idx[k]];
        if (ctx->until_buf[k] > p->next) {
            p->next = ctx->until_buf[k];
        }
        if (p->jump_to >= 0) {
            p->next = p->jump_to;
            p->jump_to = -1;
        }
        while (p->ncut > 0 && p->next >= p->cut[0]) {
            memmove(p->cut, p->cut + 1, --p->ncut * sizeof(p->cut[0]));
        }
    }
    return false;
}

/* Phase 6: the batch's definition for the checkpoint, and the batch queued as pending
 * until the engine reports it complete (its ranges move to the pending entry e).
 * @locks ctx->lock held */
static int queue_pending(sl_kafka_src *ctx, batch_build *bb, int64_t batch_time, sl_batch_input *in,
                         sl_kafka_pending *e, bool superseded)
{
    int rc = SL_OK;
    /* The ranges, for sinks that record positions: a superseded batch's too, which they
     * then fence instead of writing its input twice. */
    for (size_t r = 0; r < bb->nranges && rc == SL_OK; r++) {
        rc = sl_batch_input_add_range(in, bb->ranges[r].topic, bb->ranges[r].partition,
                                      bb->ranges[r].from, bb->ranges[r].until);
    }
    char *def = rc == SL_OK ? definition_json(ctx, bb->ranges, bb->nranges) : NULL;
    if (def) {
        rc = sl_batch_input_set_definition(in, def);
        free(def);
    }
    if (rc != SL_OK) {
        return rc;
    }
    e->time = batch_time;
    e->ranges = bb->ranges;
    e->n = superseded ? 0 : bb->nranges;
    if (ctx->pending_tail) {
        ctx->pending_tail->next = e;
    } else {
        ctx->pending = e;
    }
    ctx->pending_tail = e;
    bb->ranges = NULL;
    const char *desc = bb->desc ? bb->desc : "no new offsets";
    sl_batch_input_describe(in, "%s", desc);
    sl_instance_log(ctx->ins, SL_LOG_DEBUG, "batch %" PRId64 ": %zu records: %s", batch_time,
                    bb->total, desc);
    return SL_OK;
}

int sl__kafka_direct_next_batch(sl_kafka_src *ctx, int64_t batch_time, sl_batch_input *in)
{
    if (!ctx->rk) {
        int rc = sl__kafka_direct_start(ctx); /* driven without start() (tests) */
        if (rc != SL_OK) {
            return rc;
        }
    }
    batch_build bb = {0};
    pthread_mutex_lock(&ctx->lock);
    update_assignment(ctx);
    int rc = plan_batch(ctx, &bb);
    /* The partition table changes only on this thread, so the batch is read without the
     * lock: on_batch_done (the job thread) is never held up by a read. */
    pthread_mutex_unlock(&ctx->lock);

    compute_ranges(ctx, &bb, rc);
    sl_kafka_pending *e = calloc(1, sizeof(*e));
    bb.ranges = calloc(bb.n + 1, sizeof(*bb.ranges));
    if (!e || !bb.ranges) {
        rc = SL_ERR_NOMEM;
    }
    rc = read_batch(ctx, &bb, in, rc);

    pthread_mutex_lock(&ctx->lock);
    bool superseded = rc == SL_OK && advance_positions(ctx, &bb);
    if (rc == SL_OK) {
        rc = queue_pending(ctx, &bb, batch_time, in, e, superseded);
    }
    if (rc == SL_OK) {
        e = NULL; /* queued */
    } else {
        /* Nothing of this batch is kept: its offsets are read again by the next one. */
        sl_instance_error(ctx->ins, "batch %" PRId64 ": reading failed: %s", batch_time,
                          sl_err2str(rc));
    }
    free(bb.desc);
    free(bb.ranges);
    free(e);
    free(bb.idx);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

/* ==== Metrics ==== */

/* Consumer lag per partition (latest offset - where the batch starts) in /metrics, like
 * Kafka's consumer-group tool shows it. */
static void publish_lag(sl_kafka_src *ctx, const size_t *idx, size_t n)
{
    sl_context *sc = sl_instance_context(ctx->ins);
    char src[256], topic[512], labels[1024];
    sl_metrics_escape_label(sl_instance_name(ctx->ins), src, sizeof(src));
    for (size_t k = 0; k < n; k++) {
        const sl_kafka_part *p = &ctx->parts[idx[k]];
        sl_metrics_escape_label(p->topic, topic, sizeof(topic));
        snprintf(labels, sizeof(labels), "input=\"%s\",topic=\"%s\",partition=\"%d\"", src, topic,
                 (int)p->partition);
        sl_metrics_gauge_set(sc, "kafka_consumer_lag",
                             "messages between a partition's latest offset and where the "
                             "batch starts",
                             labels, (double)(ctx->latest_buf[k] - ctx->from_buf[k]));
    }
}

/* ==== Destroy ==== */

void sl__kafka_direct_destroy(sl_kafka_src *ctx)
{
    if (!ctx->rk) {
        return;
    }
    if (ctx->subscribed) {
        sl__kafka_group_unregister(ctx->group, ctx->rk);
    }
    pthread_mutex_lock(&ctx->lock);
    ctx->closing = true;
    if (sl__kafka_has_group(ctx) && !sl__kafka_txn_group_claimed(ctx->group)) {
        rd_kafka_topic_partition_list_t *commit = sl__kafka_done_offsets(ctx, NULL);
        if (commit) {
            if (sl__kafka_commit_sync(ctx, commit, SYNC_TIMEOUT_MS) == SL_OK) {
                sl__kafka_note_committed(ctx, commit);
                sl_instance_log(ctx->ins, SL_LOG_INFO, "committed the offsets of %d partitions",
                                commit->cnt);
            }
            rd_kafka_topic_partition_list_destroy(commit);
        }
    }
    /* Leave the group (serving the revoke) unless the brokers are out of reach, in which
     * case closing could wait for them. */
    bool close = !atomic_load(&ctx->brokers_down);
    if (close && ctx->subscribed) {
        rd_kafka_consumer_close(ctx->rk);
    }
    for (size_t i = 0; i < ctx->nparts; i++) {
        sl__kafka_part_free(&ctx->parts[i]);
    }
    ctx->nparts = 0;
    for (sl_kafka_pending *e = ctx->pending; e;) {
        sl_kafka_pending *next = e->next;
        pending_free(e);
        e = next;
    }
    ctx->pending = ctx->pending_tail = NULL;
    pthread_mutex_unlock(&ctx->lock);
    rd_kafka_destroy_flags(ctx->rk,
                           close && ctx->subscribed ? 0 : RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    ctx->rk = NULL;
}

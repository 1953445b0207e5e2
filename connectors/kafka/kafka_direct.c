/* kafka_direct.c -- the direct source, Spark's direct stream: at each batch time, the latest
 * offset of every assigned partition; ranges [from, until) bounded as SEMANTICS.md says;
 * exactly the messages of those ranges read, in offset order, one batch partition per Kafka
 * partition.
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

#include "kafka.h"

static void publish_lag(sl_kafka_src *ctx, const size_t *idx, size_t n);

#define READ_CHUNK       4096  /* messages taken from a queue at once */
#define READ_SLICE_MS    100   /* longest single wait for messages */
#define SYNC_TIMEOUT_MS  10000 /* commits at revoke and close */
#define REVOKE_WAIT_MS   30000 /* a revoke waits this long for the batches of its partitions */
#define BROKEN_REPORT_MS 10000 /* a stopped partition is reported again after this long */
#define START_TIMEOUT_MS 1000  /* longest wait for the brokers in start() */

/* ==== Partitions ==== */

static sl_kafka_part *part_find(sl_kafka_src *ctx, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < ctx->nparts; i++) {
        sl_kafka_part *p = &ctx->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            return p;
        }
    }
    return NULL;
}

static void part_clear_stash(sl_kafka_part *p)
{
    for (size_t i = 0; i < p->nstash; i++) {
        rd_kafka_message_destroy(p->stash[i]);
    }
    p->nstash = 0;
}

static int part_stash(sl_kafka_part *p, rd_kafka_message_t *m)
{
    if (p->nstash == p->capstash) {
        size_t cap = p->capstash ? p->capstash * 2 : 64;
        rd_kafka_message_t **s = realloc(p->stash, cap * sizeof(*s));
        if (!s) {
            rd_kafka_message_destroy(m);
            return SL_ERR_NOMEM;
        }
        p->stash = s;
        p->capstash = cap;
    }
    p->stash[p->nstash++] = m;
    return SL_OK;
}

/* Adds a partition with its own fetch queue. NULL when out of memory. Pointers into
 * ctx->parts are invalid afterwards. */
static sl_kafka_part *part_add(sl_kafka_src *ctx, const char *topic, int32_t partition, int want,
                               int64_t offset)
{
    const char *t = sl__kafka_intern(ctx, topic);
    if (!t) {
        return NULL;
    }
    if (ctx->nparts == ctx->capparts) {
        size_t cap = ctx->capparts ? ctx->capparts * 2 : 16;
        sl_kafka_part *v = realloc(ctx->parts, cap * sizeof(*v));
        if (!v) {
            return NULL;
        }
        ctx->parts = v;
        ctx->capparts = cap;
    }
    sl_kafka_part *p = &ctx->parts[ctx->nparts++];
    memset(p, 0, sizeof(*p));
    p->topic = t;
    p->partition = partition;
    p->next = p->done = want == SL_KAFKA_WANT_NONE ? offset : -1;
    p->read = p->committed = p->latest = p->stuck_at = p->jump_to = -1;
    p->want = want;
    /* Before the partition is assigned, so that librdkafka never forwards its queue. */
    p->queue = rd_kafka_queue_get_partition(ctx->rk, t, partition);
    if (p->queue) {
        rd_kafka_queue_forward(p->queue, NULL);
    }
    return p;
}

static void part_free(sl_kafka_part *p)
{
    part_clear_stash(p);
    free(p->stash);
    if (p->queue) {
        rd_kafka_queue_destroy(p->queue);
    }
}

static void part_remove(sl_kafka_src *ctx, sl_kafka_part *p)
{
    size_t i = (size_t)(p - ctx->parts);
    part_free(p);
    ctx->parts[i] = ctx->parts[--ctx->nparts];
}

/* "t[0] t[1] ..." for logs, cut at size. */
static void list_text(const rd_kafka_topic_partition_list_t *l, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->cnt && len + 1 < size; i++) {
        int n = snprintf(buf + len, size - len, "%s%s[%" PRId32 "]", i ? " " : "",
                         l->elems[i].topic, l->elems[i].partition);
        if (n < 0) {
            break;
        }
        len += (size_t)n;
    }
}

/* ==== Positions restored from the engine's checkpoint ==== */

static int64_t saved_offset(sl_kafka_src *ctx, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < ctx->nsaved; i++) {
        if (ctx->saved[i].partition == partition && strcmp(ctx->saved[i].topic, topic) == 0) {
            return ctx->saved[i].offset;
        }
    }
    return -1;
}

static int saved_set(sl_kafka_src *ctx, const char *topic, int32_t partition, int64_t offset)
{
    for (size_t i = 0; i < ctx->nsaved; i++) {
        if (ctx->saved[i].partition == partition && strcmp(ctx->saved[i].topic, topic) == 0) {
            ctx->saved[i].offset = offset;
            return SL_OK;
        }
    }
    if (ctx->nsaved == ctx->capsaved) {
        size_t cap = ctx->capsaved ? ctx->capsaved * 2 : 16;
        sl_kafka_saved *v = realloc(ctx->saved, cap * sizeof(*v));
        if (!v) {
            return SL_ERR_NOMEM;
        }
        ctx->saved = v;
        ctx->capsaved = cap;
    }
    const char *t = sl__kafka_intern(ctx, topic);
    if (!t) {
        return SL_ERR_NOMEM;
    }
    ctx->saved[ctx->nsaved++] =
        (sl_kafka_saved){.topic = t, .partition = partition, .offset = offset};
    return SL_OK;
}

/* ==== Start offsets ==== */

static bool has_group(const sl_kafka_src *ctx)
{
    return ctx->group && *ctx->group;
}

static int want_of(sl_kafka_start s)
{
    return s == SL_KAFKA_START_LATEST ? SL_KAFKA_WANT_LATEST : SL_KAFKA_WANT_EARLIEST;
}

/* How a partition the source did not have starts. later: it came after the first
 * assignment (a new partition, a new topic, or one taken over from another instance). */
static int want_for_new(sl_kafka_src *ctx, const char *topic, int32_t partition, bool later,
                        int64_t *offset)
{
    *offset = saved_offset(ctx, topic, partition);
    if (*offset >= 0) {
        /* The checkpoint's position comes first, once: a partition that comes back later
         * (a rebalance) continues from the group's offset, which others may have moved. */
        saved_set(ctx, topic, partition, -1);
        return SL_KAFKA_WANT_NONE;
    }
    if (has_group(ctx) && (ctx->start == SL_KAFKA_START_COMMITTED || later)) {
        return SL_KAFKA_WANT_COMMITTED;
    }
    if (later) {
        return SL_KAFKA_WANT_EARLIEST; /* a new partition: from its first message */
    }
    return want_of(ctx->start);
}

static const char *want_name(int want)
{
    switch (want) {
    case SL_KAFKA_WANT_COMMITTED: return "the group's committed offset";
    case SL_KAFKA_WANT_EARLIEST: return "earliest";
    case SL_KAFKA_WANT_LATEST: return "latest";
    default: return "the checkpoint";
    }
}

static void set_resolved(sl_kafka_src *ctx, sl_kafka_part *p, int64_t offset, int how)
{
    p->want = SL_KAFKA_WANT_NONE;
    p->next = p->done = offset;
    sl_instance_log(ctx->ins, SL_LOG_INFO, "%s [%" PRId32 "] starts at offset %" PRId64 " (%s)",
                    p->topic, p->partition, offset, want_name(how));
}

/* Finds the start offsets still unknown: committed offsets, then earliest and latest.
 * Failures leave partitions unresolved until the next batch. @locks ctx->lock held */
static void resolve_parts(sl_kafka_src *ctx, int timeout)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < ctx->nparts; i++) {
        if (ctx->parts[i].want == SL_KAFKA_WANT_COMMITTED) {
            rd_kafka_topic_partition_list_add(l, ctx->parts[i].topic, ctx->parts[i].partition);
        }
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_committed(ctx->rk, l, timeout);
        if (err) {
            sl__kafka_report_down(ctx, "cannot fetch the group's committed offsets", err);
        }
        for (int i = 0; !err && i < l->cnt; i++) {
            sl_kafka_part *p = part_find(ctx, l->elems[i].topic, l->elems[i].partition);
            if (!p || l->elems[i].err) {
                continue;
            }
            if (l->elems[i].offset >= 0) {
                set_resolved(ctx, p, l->elems[i].offset, SL_KAFKA_WANT_COMMITTED);
            } else {
                p->want = want_of(ctx->start == SL_KAFKA_START_COMMITTED ? ctx->start_fallback
                                                                         : ctx->start);
                sl_instance_log(ctx->ins, SL_LOG_INFO,
                                "%s [%" PRId32 "]: no committed offset for group %s; "
                                "starting at %s",
                                p->topic, p->partition, ctx->group, want_name(p->want));
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(l);

    for (int want = SL_KAFKA_WANT_EARLIEST; want <= SL_KAFKA_WANT_LATEST; want++) {
        l = rd_kafka_topic_partition_list_new(8);
        for (size_t i = 0; i < ctx->nparts; i++) {
            if (ctx->parts[i].want == want) {
                rd_kafka_topic_partition_list_add(l, ctx->parts[i].topic, ctx->parts[i].partition)
                    ->offset = want == SL_KAFKA_WANT_EARLIEST ? -2 : -1;
            }
        }
        if (l->cnt > 0) {
            rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(ctx->rk, l, timeout);
            if (err) {
                sl__kafka_report_down(ctx, "cannot look up offsets", err);
            }
            for (int i = 0; !err && i < l->cnt; i++) {
                sl_kafka_part *p = part_find(ctx, l->elems[i].topic, l->elems[i].partition);
                if (p && !l->elems[i].err && l->elems[i].offset >= 0) {
                    set_resolved(ctx, p, l->elems[i].offset, want);
                }
            }
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
}

/* ==== Assignment without a group ==== */

/* Hands the resolved, unassigned partitions to librdkafka at their start offsets.
 * @locks ctx->lock held */
static void assign_manual(sl_kafka_src *ctx)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < ctx->nparts; i++) {
        sl_kafka_part *p = &ctx->parts[i];
        if (!p->assigned && p->want == SL_KAFKA_WANT_NONE) {
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->next;
        }
    }
    if (l->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(ctx->rk, l);
        if (e) {
            sl_instance_error(ctx->ins, "cannot assign partitions: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        } else {
            for (int i = 0; i < l->cnt; i++) {
                sl_kafka_part *p = part_find(ctx, l->elems[i].topic, l->elems[i].partition);
                p->assigned = true;
                p->read = p->next;
            }
            char text[256];
            list_text(l, text, sizeof(text));
            sl_instance_log(ctx->ins, SL_LOG_INFO, "reading %d partitions: %s", l->cnt, text);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Looks up the topics and their partitions; new ones are added, partitions of deleted
 * topics removed, missing topics reported. @locks ctx->lock held */
static void refresh_metadata(sl_kafka_src *ctx, int timeout)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(ctx->rk, 1, NULL, &md, timeout);
    if (err) {
        sl__kafka_report_down(ctx, "cannot fetch metadata", err);
        return;
    }
    sl__kafka_report_up(ctx);
    bool later = ctx->assigned_once;
    for (int t = 0; t < md->topic_cnt; t++) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[t];
        if (mt->err || !sl__kafka_topic_wanted(ctx, mt->topic)) {
            continue;
        }
        for (int i = 0; i < mt->partition_cnt; i++) {
            int32_t part = mt->partitions[i].id;
            if (!part_find(ctx, mt->topic, part)) {
                int64_t off;
                int want = want_for_new(ctx, mt->topic, part, later, &off);
                if (!part_add(ctx, mt->topic, part, want, off)) {
                    sl_instance_error(ctx->ins, "out of memory adding %s [%" PRId32 "]", mt->topic,
                                      part);
                } else if (want == SL_KAFKA_WANT_NONE) {
                    sl_instance_log(ctx->ins, SL_LOG_INFO,
                                    "%s [%" PRId32 "] resumes at offset %" PRId64
                                    " (the checkpoint)",
                                    mt->topic, part, off);
                }
            }
        }
    }
    /* Partitions of topics that are gone. */
    for (size_t i = 0; i < ctx->nparts;) {
        sl_kafka_part *p = &ctx->parts[i];
        bool found = false;
        for (int t = 0; t < md->topic_cnt && !found; t++) {
            found = !md->topics[t].err && strcmp(md->topics[t].topic, p->topic) == 0;
        }
        if (found) {
            i++;
            continue;
        }
        sl_instance_log(ctx->ins, SL_LOG_WARN,
                        "%s [%" PRId32 "]: the topic is gone; no longer read", p->topic,
                        p->partition);
        if (p->assigned) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(ctx->rk, l);
            if (e) {
                rd_kafka_error_destroy(e);
            }
            rd_kafka_topic_partition_list_destroy(l);
        }
        part_remove(ctx, p);
    }
    /* Topics of the list that do not exist. */
    char missing[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < ctx->ntopic_list; i++) {
        bool found = false;
        for (int t = 0; t < md->topic_cnt && !found; t++) {
            found = !md->topics[t].err && strcmp(md->topics[t].topic, ctx->topic_list[i]) == 0;
        }
        if (!found && len + 1 < sizeof(missing)) {
            int n = snprintf(missing + len, sizeof(missing) - len, "%s'%s'", len ? ", " : "",
                             ctx->topic_list[i]);
            len += n > 0 ? (size_t)n : 0;
        }
    }
    if (len > 0 && !ctx->missing_reported) {
        sl_instance_error(ctx->ins,
                          "topic %s does not exist at %s; it is read once it is "
                          "created (looked up every %lld ms)",
                          missing, ctx->bootstrap, (long long)ctx->metadata_refresh);
        ctx->missing_reported = true;
    } else if (len == 0 && ctx->missing_reported) {
        sl_instance_log(ctx->ins, SL_LOG_INFO, "every topic exists now");
        ctx->missing_reported = false;
    }
    if (ctx->has_pattern && ctx->nparts == 0 && !ctx->missing_reported) {
        sl_instance_log(ctx->ins, SL_LOG_WARN, "no topic matches topic_pattern '%s' yet",
                        ctx->topic_pattern);
        ctx->missing_reported = true;
    } else if (ctx->has_pattern && ctx->nparts > 0 && ctx->missing_reported) {
        ctx->missing_reported = false;
    }
    rd_kafka_metadata_destroy(md);
    ctx->assigned_once = true;
}

/* ==== Pending batches, completion and failure ==== */

static void pending_free(sl_kafka_pending *e)
{
    if (e) {
        free(e->ranges);
        free(e);
    }
}

/* The offsets to commit: every partition's done offset. NULL when there is none. */
static rd_kafka_topic_partition_list_t *done_offsets(sl_kafka_src *ctx,
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
static void note_committed(sl_kafka_src *ctx, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        sl_kafka_part *p = part_find(ctx, l->elems[i].topic, l->elems[i].partition);
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
            sl_kafka_part *p = part_find(ctx, e->ranges[r].topic, e->ranges[r].partition);
            if (p && e->ranges[r].until > p->done) {
                p->done = e->ranges[r].until;
            }
        }
        pending_free(e);
        ctx->first_done = true;
        if (has_group(ctx) && ctx->rk) {
            commit = done_offsets(ctx, NULL);
        }
        pthread_cond_broadcast(&ctx->cond);
    }
    if (commit) {
        /* Asynchronous: a batch does not wait for the coordinator; a failed commit is
         * retried with the next batch's. */
        rd_kafka_resp_err_t err = rd_kafka_commit(ctx->rk, commit, 1);
        if (!err) {
            note_committed(ctx, commit);
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
            sl_kafka_part *p = part_find(ctx, offsets->elems[i].topic, offsets->elems[i].partition);
            if (p) {
                p->committed = -1;
            }
        }
    }
}

/* ==== Group assignment ==== */

/* True while a pending batch holds a non-empty range of a partition of l. */
static bool pending_holds(sl_kafka_src *ctx, const rd_kafka_topic_partition_list_t *l)
{
    for (sl_kafka_pending *e = ctx->pending; e; e = e->next) {
        for (size_t r = 0; r < e->n; r++) {
            if (e->ranges[r].until > e->ranges[r].from &&
                rd_kafka_topic_partition_list_find(l, e->ranges[r].topic, e->ranges[r].partition)) {
                return true;
            }
        }
    }
    return false;
}

/* Waits (bounded) for the batches holding revoked partitions, so that their offsets are
 * committed before another member takes them over. @locks ctx->lock held */
static void wait_pending(sl_kafka_src *ctx, const rd_kafka_topic_partition_list_t *l)
{
    int64_t deadline = sl__kafka_now_ms() + REVOKE_WAIT_MS;
    while (pending_holds(ctx, l) && !ctx->closing) {
        int64_t now = sl__kafka_now_ms();
        if (now >= deadline) {
            sl_instance_log(ctx->ins, SL_LOG_WARN,
                            "revoked partitions are released before their last batches "
                            "completed: their new owner reads those batches again");
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ctx->cond, &ctx->lock, &ts);
    }
}

static void on_assign(sl_kafka_src *ctx, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
                      bool coop)
{
    bool later = ctx->assigned_once;
    for (int i = 0; i < l->cnt; i++) {
        if (!part_find(ctx, l->elems[i].topic, l->elems[i].partition)) {
            int64_t off;
            int want = want_for_new(ctx, l->elems[i].topic, l->elems[i].partition, later, &off);
            if (!part_add(ctx, l->elems[i].topic, l->elems[i].partition, want, off)) {
                sl_instance_error(ctx->ins, "out of memory taking %s [%" PRId32 "]",
                                  l->elems[i].topic, l->elems[i].partition);
            }
        }
    }
    resolve_parts(ctx, (int)ctx->poll_timeout);
    for (int i = 0; i < l->cnt; i++) {
        sl_kafka_part *p = part_find(ctx, l->elems[i].topic, l->elems[i].partition);
        if (!p) {
            l->elems[i].offset = RD_KAFKA_OFFSET_END;
            continue;
        }
        part_clear_stash(p);
        p->assigned = true;
        /* Unresolved: a placeholder position, sought once the offset is known. */
        p->read = p->want == SL_KAFKA_WANT_NONE ? p->next : -1;
        l->elems[i].offset = p->want == SL_KAFKA_WANT_NONE ? p->next : RD_KAFKA_OFFSET_END;
    }
    if (coop) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, l);
        if (e) {
            sl_instance_error(ctx->ins, "cannot take partitions: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, l);
        if (err) {
            sl_instance_error(ctx->ins, "cannot take partitions: %s", rd_kafka_err2str(err));
        }
    }
    ctx->assigned_once = true;
    char text[256];
    list_text(l, text, sizeof(text));
    sl_instance_log(ctx->ins, SL_LOG_INFO, "group %s assigned %d partitions: %s", ctx->group,
                    l->cnt, text);
}

static void on_revoke(sl_kafka_src *ctx, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
                      bool coop)
{
    bool lost = rd_kafka_assignment_lost(rk);
    if (!lost) {
        wait_pending(ctx, l);
        rd_kafka_topic_partition_list_t *commit = done_offsets(ctx, l);
        if (commit) {
            if (sl__kafka_commit_sync(ctx, commit, SYNC_TIMEOUT_MS) == SL_OK) {
                note_committed(ctx, commit);
            }
            rd_kafka_topic_partition_list_destroy(commit);
        }
    }
    for (int i = 0; i < l->cnt; i++) {
        sl_kafka_part *p = part_find(ctx, l->elems[i].topic, l->elems[i].partition);
        if (p) {
            part_remove(ctx, p);
        }
    }
    if (coop) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, l);
        if (e) {
            rd_kafka_error_destroy(e);
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
    char text[256];
    list_text(l, text, sizeof(text));
    sl_instance_log(ctx->ins, SL_LOG_INFO, "group %s %s %d partitions: %s", ctx->group,
                    lost ? "lost" : "revoked", l->cnt, text);
}

/* @locks ctx->lock held: it runs only inside our polls (next_batch, destroy). */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    sl_kafka_src *ctx = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(ctx, rk, l, coop);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(ctx, rk, l, coop);
    } else {
        sl_instance_error(ctx->ins, "rebalance failed: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
}

/* ==== Start ==== */

/* The subscription: the topics, or the pattern as a librdkafka regex ("^..."). */
static int subscribe(sl_kafka_src *ctx, char *errstr, size_t errsize)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    char re[1024];
    if (ctx->has_pattern) {
        snprintf(re, sizeof(re), "%s%s", ctx->topic_pattern[0] == '^' ? "" : "^",
                 ctx->topic_pattern);
        rd_kafka_topic_partition_list_add(l, re, RD_KAFKA_PARTITION_UA);
    }
    for (size_t i = 0; i < ctx->ntopic_list; i++) {
        rd_kafka_topic_partition_list_add(l, ctx->topic_list[i], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(ctx->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errstr, errsize, "cannot subscribe: %s", rd_kafka_err2str(err));
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

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
    if (has_group(ctx)) {
        snprintf(gid, sizeof(gid), "%s", ctx->group);
    } else {
        /* librdkafka's assign() needs a group id; this one is never joined nor committed. */
        snprintf(gid, sizeof(gid), "sluice-%s-%ld-%lld", ctx->name, (long)getpid(),
                 (long long)sl__kafka_mono_ms());
    }
    snprintf(ms, sizeof(ms), "%lld", (long long)ctx->metadata_refresh);
    rd_kafka_conf_set(conf, "group.id", gid, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", ms, errstr, sizeof(errstr));
    rd_kafka_conf_set_opaque(conf, ctx);
    rd_kafka_conf_set_error_cb(conf, sl__kafka_src_error_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
    if (has_group(ctx)) {
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    }
    ctx->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!ctx->rk) {
        rd_kafka_conf_destroy(conf);
        sl_instance_error(ctx->ins, "cannot create the Kafka consumer: %s", errstr);
        return SL_ERR_INVAL;
    }
    if (has_group(ctx)) {
        if (subscribe(ctx, errstr, sizeof(errstr)) != SL_OK) {
            sl_instance_error(ctx->ins, "%s", errstr);
            return SL_ERR_INVAL;
        }
        ctx->subscribed = true;
    }
    ctx->chunk = malloc(READ_CHUNK * sizeof(*ctx->chunk));
    if (!ctx->chunk) {
        return SL_ERR_NOMEM;
    }
    sl_instance_log(ctx->ins, SL_LOG_INFO, "direct Kafka input from %s%s%s", ctx->bootstrap,
                    has_group(ctx) ? ", group " : "", has_group(ctx) ? ctx->group : "");
    if (!ctx->subscribed) {
        /* Partitions assigned now are fetched before the first batch. A broker that is not
         * there yet does not hold the start up long: batches look again. */
        int timeout =
            (int)(ctx->poll_timeout < START_TIMEOUT_MS ? ctx->poll_timeout : START_TIMEOUT_MS);
        pthread_mutex_lock(&ctx->lock);
        refresh_metadata(ctx, timeout);
        ctx->next_refresh = sl__kafka_mono_ms() + ctx->metadata_refresh;
        resolve_parts(ctx, timeout);
        assign_manual(ctx);
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

/* ==== Reading a batch ==== */

/* Queries the earliest and latest offsets of p after an out-of-range fetch (or a start
 * past the latest offset) and applies on_offset_out_of_range. @locks ctx->lock held */
static void out_of_range(sl_kafka_src *ctx, sl_kafka_part *p, int64_t offset)
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
        p->broken_reported = sl__kafka_mono_ms();
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

/* One range being read. */
typedef struct range_read {
    rd_kafka_t *rk; /* the consumer whose queue it is */
    bool replay;    /* read again after a restart: no position moves */
    sl_kafka_part *p;
    sl_kafka_rbuf *rb;
    int64_t from, until;
    bool done;       /* every offset of the range was seen (or passed) */
    bool oor;        /* the fetch said out of range */
    int64_t last_at; /* ms (monotonic): when a message last came */
} range_read;

/* Takes m into the range's records (or drops it when it is rejected). */
static int take_message(sl_kafka_src *ctx, range_read *rr, rd_kafka_message_t *m)
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
static int handle_message(sl_kafka_src *ctx, range_read *rr, rd_kafka_message_t *m)
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
        return part_stash(p, m);
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
static int take_stash(sl_kafka_src *ctx, range_read *rr)
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
static bool position_passed(const range_read *rr)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rr->p->topic, rr->p->partition);
    bool passed = !rd_kafka_position(rr->rk, l) && l->elems[0].offset >= rr->until;
    rd_kafka_topic_partition_list_destroy(l);
    return passed;
}

/* Takes what the queue of rr has now (or within wait_ms). Returns the messages taken. */
static ssize_t take_queue(sl_kafka_src *ctx, range_read *rr, int wait_ms, int *rc)
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
        rr->last_at = sl__kafka_mono_ms();
    }
    return got;
}

/* Reads every range at once: the queues are taken in turn, without waiting while any has
 * messages, so that librdkafka keeps fetching every partition. A range that has no message
 * for READ_SLICE_MS while the consumer's position passed its end is complete (a gap); a
 * range that started where the last one stopped short gets one slice only; the others get
 * until the deadline. Returns SL_OK or SL_ERR_NOMEM. @locks ctx->lock held */
static int read_ranges(sl_kafka_src *ctx, range_read *rrs, size_t n, int64_t deadline)
{
    int rc = SL_OK;
    size_t left = 0;
    int64_t start = sl__kafka_mono_ms();
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
        int64_t now = sl__kafka_mono_ms();
        left = 0;
        range_read *wait_on = NULL;
        for (size_t k = 0; k < n; k++) {
            range_read *rr = &rrs[k];
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
static int64_t range_end(sl_kafka_src *ctx, range_read *rr)
{
    sl_kafka_part *p = rr->p;
    if (rr->oor && !rr->replay) {
        out_of_range(ctx, p, p->read);
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
static void seek_parts(sl_kafka_src *ctx, const size_t *idx, const int64_t *from, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n + 1);
    for (size_t k = 0; k < n; k++) {
        sl_kafka_part *p = &ctx->parts[idx[k]];
        if (p->read != from[k]) {
            part_clear_stash(p);
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
                sl_kafka_part *p = part_find(ctx, l->elems[i].topic, l->elems[i].partition);
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
static void desc_add(char **buf, size_t *len, size_t *cap, const sl_kafka_range *r)
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
    int64_t now = sl__kafka_mono_ms();
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
            sl_kafka_part *p = part_find(ctx, l->elems[i].topic, l->elems[i].partition);
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
 * NULL when out of memory (the batch then has no definition). @locks ctx->lock held */
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

int sl__kafka_direct_next_batch(sl_kafka_src *ctx, int64_t batch_time, sl_batch_input *in)
{
    if (!ctx->rk) {
        int rc = sl__kafka_direct_start(ctx); /* driven without start() (tests) */
        if (rc != SL_OK) {
            return rc;
        }
    }
    pthread_mutex_lock(&ctx->lock);
    serve_events(ctx);
    if (!ctx->subscribed && sl__kafka_mono_ms() >= ctx->next_refresh) {
        refresh_metadata(ctx, (int)ctx->poll_timeout);
        ctx->next_refresh = sl__kafka_mono_ms() + ctx->metadata_refresh;
    }
    for (size_t i = 0; i < ctx->nparts; i++) {
        if (ctx->parts[i].want != SL_KAFKA_WANT_NONE) {
            resolve_parts(ctx, (int)ctx->poll_timeout);
            break;
        }
    }
    if (!ctx->subscribed) {
        assign_manual(ctx);
    }

    int rc = grow_bufs(ctx, ctx->nparts + 1);
    size_t *idx = rc == SL_OK ? malloc((ctx->nparts + 1) * sizeof(*idx)) : NULL;
    size_t n = idx ? active_parts(ctx, idx) : 0;
    if (!idx) {
        rc = SL_ERR_NOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        ctx->from_buf[k] = ctx->parts[idx[k]].next;
    }
    uint64_t rewinds = ctx->rewinds;
    sl_kafka_limits lim = {
        .batch_ms = ctx->batch_ms,
        .max_rate_per_partition = ctx->max_rate_per_partition,
        .min_rate_per_partition = ctx->min_rate_per_partition,
        .rate = input_rate(ctx),
    };
    /* The partition table changes only on this thread, so the batch is read without the
     * lock: on_batch_done (the job thread) is never held up by a read. */
    pthread_mutex_unlock(&ctx->lock);

    if (rc == SL_OK && n > 0 && query_latest(ctx, idx, n) != SL_OK) {
        n = 0; /* no input this time; the next batch tries again */
    }
    /* The ranges. A partition whose latest offset is unknown gets an empty range. */
    for (size_t k = 0; k < n; k++) {
        sl_kafka_part *p = &ctx->parts[idx[k]];
        int64_t from = ctx->from_buf[k];
        if (p->latest >= 0 && from > p->latest) {
            out_of_range(ctx, p, from);
        }
        ctx->latest_buf[k] = p->latest >= from ? p->latest : from;
        if (p->jump_to >= 0 || p->broken) {
            ctx->latest_buf[k] = from;
        }
    }
    sl_kafka_compute_until(n, ctx->from_buf, ctx->latest_buf, &lim, ctx->until_buf);
    if (n > 0) {
        seek_parts(ctx, idx, ctx->from_buf, n);
    }
    publish_lag(ctx, idx, n);

    /* Read each range, one batch partition per Kafka partition. */
    sl_kafka_pending *e = calloc(1, sizeof(*e));
    sl_kafka_range *ranges = calloc(n + 1, sizeof(*ranges));
    if (!e || !ranges) {
        rc = SL_ERR_NOMEM;
    }
    int64_t deadline = sl__kafka_mono_ms() + ctx->poll_timeout;
    size_t nranges = 0, total = 0;
    char *desc = NULL;
    size_t dlen = 0, dcap = 0;
    range_read *rrs = calloc(n + 1, sizeof(*rrs));
    size_t *rk = calloc(n + 1, sizeof(*rk));
    if (!rrs || !rk || grow_rbufs(ctx, n + 1) != SL_OK) {
        rc = SL_ERR_NOMEM;
    }
    size_t nr = 0;
    for (size_t k = 0; k < n && rc == SL_OK; k++) {
        sl_kafka_part *p = &ctx->parts[idx[k]];
        if (ctx->until_buf[k] <= ctx->from_buf[k]) {
            continue;
        }
        if (p->read != ctx->from_buf[k]) {
            ctx->until_buf[k] = ctx->from_buf[k]; /* the seek failed: next time */
            continue;
        }
        ctx->rbufs[nr].n = 0;
        ctx->rbufs[nr].hdrs.n = 0;
        rrs[nr] = (range_read){.rk = ctx->rk,
                               .p = p,
                               .rb = &ctx->rbufs[nr],
                               .from = ctx->from_buf[k],
                               .until = ctx->until_buf[k]};
        rk[nr++] = k;
    }
    if (rc == SL_OK) {
        rc = read_ranges(ctx, rrs, nr, deadline);
    }
    for (size_t r = 0; r < nr; r++) {
        range_read *rr = &rrs[r];
        sl_kafka_rbuf *rb = rr->rb;
        int64_t reached = range_end(ctx, rr);
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
            ranges[nranges] = (sl_kafka_range){.topic = rr->p->topic,
                                               .partition = rr->p->partition,
                                               .from = rr->from,
                                               .until = reached};
            desc_add(&desc, &dlen, &dcap, &ranges[nranges]);
            nranges++;
            total += rb->n;
        }
        rb->n = 0;
        rb->hdrs.n = 0;
    }
    free(rrs);
    free(rk);
    pthread_mutex_lock(&ctx->lock);
    bool superseded = rc == SL_OK && ctx->rewinds != rewinds;
    if (superseded) {
        /* A batch failed while this one was read: `next` went back, and this batch is
         * superseded: its input is delivered but does not count as processed, since the
         * offsets before it are read again. */
        for (size_t k = 0; k < n; k++) {
            ctx->parts[idx[k]].jump_to = -1;
        }
    } else if (rc == SL_OK) {
        /* The batch is fixed: the next one starts where this one ends. */
        for (size_t k = 0; k < n; k++) {
            sl_kafka_part *p = &ctx->parts[idx[k]];
            if (ctx->until_buf[k] > p->next) {
                p->next = ctx->until_buf[k];
            }
            if (p->jump_to >= 0) {
                p->next = p->jump_to;
                p->jump_to = -1;
            }
        }
    }
    char *def = rc == SL_OK ? definition_json(ctx, ranges, nranges) : NULL;
    if (def) {
        rc = sl_batch_input_set_definition(in, def);
        free(def);
    }
    if (rc == SL_OK) {
        e->time = batch_time;
        e->ranges = ranges;
        e->n = superseded ? 0 : nranges;
        if (ctx->pending_tail) {
            ctx->pending_tail->next = e;
        } else {
            ctx->pending = e;
        }
        ctx->pending_tail = e;
        e = NULL;
        ranges = NULL;
        sl_batch_input_describe(in, "%s", desc ? desc : "no new offsets");
        sl_instance_log(ctx->ins, SL_LOG_DEBUG, "batch %" PRId64 ": %zu records: %s", batch_time,
                        total, desc ? desc : "no new offsets");
    } else {
        /* Nothing of this batch is kept: its offsets are read again by the next one. */
        sl_instance_error(ctx->ins, "batch %" PRId64 ": reading failed: %s", batch_time,
                          sl_err2str(rc));
    }
    free(desc);
    free(ranges);
    free(e);
    free(idx);
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
    range_read *rrs = calloc(n + 1, sizeof(*rrs));
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
        rrs[nr] = (range_read){
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
        rc = read_ranges(ctx, rrs, nr, sl__kafka_mono_ms() + 3 * ctx->poll_timeout);
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
        desc_add(&desc, &dlen, &dcap, &ranges[r]);
        free(rb->recs);
        free(rb->metas);
        free(rb->held);
        free(rb->hdrs.v);
        part_free(&tmp[r]);
    }
    if (rk) {
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    }
    if (rc == SL_OK) {
        /* Its completion moves `done` like any batch's. */
        rc = sl_batch_input_set_definition(in, definition);
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
            rc = saved_set(ctx, topic, (int32_t)json_integer_value(json_array_get(it, 1)), off);
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

/* ==== Destroy ==== */

void sl__kafka_direct_destroy(sl_kafka_src *ctx)
{
    if (!ctx->rk) {
        return;
    }
    pthread_mutex_lock(&ctx->lock);
    ctx->closing = true;
    if (has_group(ctx)) {
        rd_kafka_topic_partition_list_t *commit = done_offsets(ctx, NULL);
        if (commit) {
            if (sl__kafka_commit_sync(ctx, commit, SYNC_TIMEOUT_MS) == SL_OK) {
                note_committed(ctx, commit);
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
        part_free(&ctx->parts[i]);
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

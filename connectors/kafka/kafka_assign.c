/* kafka_assign.c -- the direct source's partition table and its assignment: partitions
 * added and removed, positions restored from the checkpoint, start offsets resolved, every
 * partition of the topics without a group, the group's rebalance callbacks with one.
 *
 * Without a group, the partitions are those of the topics (or of those matching the
 * pattern), looked up every metadata_refresh. With a group, the group's subscription only
 * assigns partitions (rebalance callback); offsets stay ours: a revoke waits for the pending
 * batches of its partitions and commits what completed. @locks ctx->lock held throughout
 * (librdkafka's rebalance callback runs only inside our polls, with the lock held). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_direct.h"

#define REVOKE_WAIT_MS 30000 /* a revoke waits this long for the batches of its partitions */

/* ==== Partitions ==== */

sl_kafka_part *sl__kafka_part_find(sl_kafka_src *ctx, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < ctx->nparts; i++) {
        sl_kafka_part *p = &ctx->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            return p;
        }
    }
    return NULL;
}

void sl__kafka_part_clear_stash(sl_kafka_part *p)
{
    for (size_t i = 0; i < p->nstash; i++) {
        rd_kafka_message_destroy(p->stash[i]);
    }
    p->nstash = 0;
}

int sl__kafka_part_stash(sl_kafka_part *p, rd_kafka_message_t *m)
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

void sl__kafka_part_free(sl_kafka_part *p)
{
    sl__kafka_part_clear_stash(p);
    free(p->stash);
    if (p->queue) {
        rd_kafka_queue_destroy(p->queue);
    }
}

static void part_remove(sl_kafka_src *ctx, sl_kafka_part *p)
{
    size_t i = (size_t)(p - ctx->parts);
    sl__kafka_part_free(p);
    ctx->parts[i] = ctx->parts[--ctx->nparts];
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

int sl__kafka_saved_set(sl_kafka_src *ctx, const char *topic, int32_t partition, int64_t offset)
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

bool sl__kafka_has_group(const sl_kafka_src *ctx)
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
        sl__kafka_saved_set(ctx, topic, partition, -1);
        return SL_KAFKA_WANT_NONE;
    }
    if (sl__kafka_has_group(ctx) && (ctx->start == SL_KAFKA_START_COMMITTED || later)) {
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
    case SL_KAFKA_WANT_SINKS: return "where the sinks are";
    default: return "the checkpoint";
    }
}

static void set_resolved(sl_kafka_src *ctx, sl_kafka_part *p, int64_t offset, int how)
{
    if (saved_offset(ctx, p->topic, p->partition) >= 0) {
        /* Placed (by the sinks' positions, say): the checkpoint's position is used up. */
        sl__kafka_saved_set(ctx, p->topic, p->partition, -1);
    }
    p->want = SL_KAFKA_WANT_NONE;
    p->next = p->done = offset;
    sl_instance_log(ctx->ins, SL_LOG_INFO, "%s [%" PRId32 "] starts at offset %" PRId64 " (%s)",
                    p->topic, p->partition, offset, want_name(how));
}

/* The group's committed offset of p, else its earliest offset; -1 when neither is known. */
static int64_t fallback_offset(sl_kafka_src *ctx, const sl_kafka_part *p, int timeout)
{
    int64_t off = -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    if (!rd_kafka_committed(ctx->rk, l, timeout) && !l->elems[0].err) {
        off = l->elems[0].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    int64_t lo = -1, hi = -1;
    if (off < 0 &&
        !rd_kafka_query_watermark_offsets(ctx->rk, p->topic, p->partition, &lo, &hi, timeout)) {
        off = lo;
    }
    return off;
}

/* Partitions that start where the sinks are (input positions): the lowest position any
 * sink holds, with the higher ones as cuts; without a sink that records positions, or with
 * none holding the partition, as the source would start without them. A failure to ask
 * leaves them unresolved until the next batch. @locks ctx->lock held */
static void resolve_from_sinks(sl_kafka_src *ctx, int timeout)
{
    size_t n = 0;
    for (size_t i = 0; i < ctx->nparts; i++) {
        n += ctx->parts[i].want == SL_KAFKA_WANT_SINKS;
    }
    if (n == 0) {
        return;
    }
    sl_source_position *pos = calloc(n, sizeof(*pos));
    size_t *ix = calloc(n, sizeof(*ix));
    if (!pos || !ix) {
        free(pos);
        free(ix);
        return;
    }
    for (size_t i = 0, k = 0; i < ctx->nparts; i++) {
        if (ctx->parts[i].want == SL_KAFKA_WANT_SINKS) {
            pos[k] = (sl_source_position){.topic = ctx->parts[i].topic,
                                          .partition = ctx->parts[i].partition};
            ix[k++] = i;
        }
    }
    char why[256] = "";
    size_t sinks = 0;
    int rc = sl_instance_sink_positions(ctx->ins, pos, n, &sinks, why, sizeof(why));
    if (rc != SL_OK) {
        sl_instance_error(ctx->ins, "cannot read where the sinks are (asking again): %s", why);
        free(pos);
        free(ix);
        return;
    }
    ctx->position_sinks = sinks;
    for (size_t k = 0; k < n; k++) {
        sl_kafka_part *p = &ctx->parts[ix[k]];
        if (pos[k].next < 0) {
            int64_t off;
            p->want = want_for_new(ctx, p->topic, p->partition, p->later, &off);
            if (p->want == SL_KAFKA_WANT_NONE) {
                set_resolved(ctx, p, off, SL_KAFKA_WANT_NONE);
            }
            continue;
        }
        if (pos[k].missing) {
            /* A sink holds nothing of it: it needs the input from the fallback start. */
            sl_source_position_merge(&pos[k], fallback_offset(ctx, p, timeout));
        }
        p->ncut = pos[k].ncut;
        memcpy(p->cut, pos[k].cut, sizeof(p->cut));
        set_resolved(ctx, p, pos[k].next, SL_KAFKA_WANT_SINKS);
        if (p->ncut) {
            sl_instance_log(ctx->ins, SL_LOG_INFO,
                            "%s [%" PRId32 "]: the sinks are at %" PRId64 " to %" PRId64
                            ": batches of this partition alone catch the others up first",
                            p->topic, p->partition, p->next, p->cut[p->ncut - 1]);
        }
    }
    free(pos);
    free(ix);
}

/* Finds the start offsets still unknown: where the sinks are, committed offsets, then
 * earliest and latest. Failures leave partitions unresolved until the next batch.
 * @locks ctx->lock held */
void sl__kafka_resolve_parts(sl_kafka_src *ctx, int timeout)
{
    resolve_from_sinks(ctx, timeout);
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
            sl_kafka_part *p = sl__kafka_part_find(ctx, l->elems[i].topic, l->elems[i].partition);
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
                sl_kafka_part *p =
                    sl__kafka_part_find(ctx, l->elems[i].topic, l->elems[i].partition);
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
void sl__kafka_assign_manual(sl_kafka_src *ctx)
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
                sl_kafka_part *p =
                    sl__kafka_part_find(ctx, l->elems[i].topic, l->elems[i].partition);
                p->assigned = true;
                p->read = p->next;
            }
            char text[256];
            sl__kafka_list_text(l, text, sizeof(text));
            sl_instance_log(ctx->ins, SL_LOG_INFO, "reading %d partitions: %s", l->cnt, text);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Looks up the topics and their partitions; new ones are added, partitions of deleted
 * topics removed, missing topics reported. @locks ctx->lock held */
void sl__kafka_refresh_metadata(sl_kafka_src *ctx, int timeout)
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
            if (!sl__kafka_part_find(ctx, mt->topic, part)) {
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
        sl_instance_release_partition(ctx->ins, p->topic, p->partition);
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
    int64_t deadline = sl__now_ms() + REVOKE_WAIT_MS;
    while (pending_holds(ctx, l) && !ctx->closing) {
        int64_t now = sl__now_ms();
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
        if (!sl__kafka_part_find(ctx, l->elems[i].topic, l->elems[i].partition)) {
            /* A group's partition starts where the sinks are: whoever had it before. */
            sl_kafka_part *p =
                part_add(ctx, l->elems[i].topic, l->elems[i].partition, SL_KAFKA_WANT_SINKS, -1);
            if (!p) {
                sl_instance_error(ctx->ins, "out of memory taking %s [%" PRId32 "]",
                                  l->elems[i].topic, l->elems[i].partition);
            } else {
                p->later = later;
            }
        }
    }
    sl__kafka_resolve_parts(ctx, (int)ctx->poll_timeout);
    for (int i = 0; i < l->cnt; i++) {
        sl_kafka_part *p = sl__kafka_part_find(ctx, l->elems[i].topic, l->elems[i].partition);
        if (!p) {
            l->elems[i].offset = RD_KAFKA_OFFSET_END;
            continue;
        }
        sl__kafka_part_clear_stash(p);
        p->assigned = true;
        /* Unresolved: a placeholder position, sought once the offset is known. */
        p->read = p->want == SL_KAFKA_WANT_NONE ? p->next : -1;
        l->elems[i].offset = p->want == SL_KAFKA_WANT_NONE ? p->next : RD_KAFKA_OFFSET_END;
    }
    char why[512];
    if (!sl__kafka_rebalance_apply(rk, l, coop, true, why, sizeof(why))) {
        sl_instance_error(ctx->ins, "cannot take partitions: %s", why);
    }
    ctx->assigned_once = true;
    ctx->waiting_since = 0;
    sl_instance_set_waiting(ctx->ins, ctx->nparts == 0);
    char text[256];
    sl__kafka_list_text(l, text, sizeof(text));
    sl_instance_log(ctx->ins, SL_LOG_INFO, "group %s assigned %d partitions: %s", ctx->group,
                    l->cnt, text);
}

static void on_revoke(sl_kafka_src *ctx, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l,
                      bool coop)
{
    bool lost = rd_kafka_assignment_lost(rk);
    if (!lost) {
        wait_pending(ctx, l);
        rd_kafka_topic_partition_list_t *commit = sl__kafka_done_offsets(ctx, l);
        if (commit) {
            if (sl__kafka_commit_sync(ctx, commit, SYNC_TIMEOUT_MS) == SL_OK) {
                sl__kafka_note_committed(ctx, commit);
            }
            rd_kafka_topic_partition_list_destroy(commit);
        }
    }
    for (int i = 0; i < l->cnt; i++) {
        sl_kafka_part *p = sl__kafka_part_find(ctx, l->elems[i].topic, l->elems[i].partition);
        if (p) {
            part_remove(ctx, p);
        }
        /* Its keyed state goes: the new owner restores it from the changelog. */
        sl_instance_release_partition(ctx->ins, l->elems[i].topic, l->elems[i].partition);
    }
    char why[512];
    sl__kafka_rebalance_apply(rk, l, coop, false, why, sizeof(why)); /* gone either way */
    char text[256];
    sl__kafka_list_text(l, text, sizeof(text));
    sl_instance_log(ctx->ins, SL_LOG_INFO, "group %s %s %d partitions: %s", ctx->group,
                    lost ? "lost" : "revoked", l->cnt, text);
}

/* @locks ctx->lock held: it runs only inside our polls (next_batch, destroy). */
void sl__kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
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

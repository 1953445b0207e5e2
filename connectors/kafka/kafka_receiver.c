/* kafka_receiver.c -- the receiver source: a consumer-group member on its own thread that
 * pushes what it consumes to the engine's block generator (sl_receiver_push: max_rate and
 * max_buffered apply), Spark's reliable receiver.
 *
 * With a write-ahead log (a checkpoint directory and wal: true), each chunk of consumed
 * records is appended to the log before it is pushed, and the offsets are committed to
 * Kafka only after the log is fsynced: a crash loses nothing, the records in the log that
 * no completed batch processed are pushed again at the next start. Each chunk is pushed
 * with its place in the log (sl__receiver_push_logged), so the engine checkpoints each batch
 * as a range of log records: after a crash, the batches that had not completed run again
 * with those records, and the records of the log that a checkpointed batch holds are not
 * pushed again. The offsets the log holds are noted at the start, so that what Kafka
 * delivers again (a crash before their commit) is skipped. Without a log, offsets are
 * committed when the batch that holds the records completed.
 *
 * Which records a batch holds: the engine hands a batch at time t every record pushed
 * before t (blocks are cut at the batch time), so a push that returned at wall time < t is
 * in a batch <= t. Each push is remembered with its time, its log position and (without a
 * log) its offsets; when batch t completes, what was pushed before t is processed. That
 * bookkeeping, the log's opening and its replay are shared with the other receivers with a
 * log (src/sl_receiver_wal.c); the offsets, the syncer and the keepalive are Kafka's.
 *
 * A batch that fails makes the thread push again what is not processed: from the log, or
 * (without one) by seeking back to the committed offsets. Without a log, at-least-once:
 * nothing is lost, records may come twice.
 *
 * Staying in the group: a push waits while the engine holds max_buffered bytes or the rate
 * limit says so, which may last longer than max.poll.interval.ms (then librdkafka leaves the
 * group and the partitions go to another member). A push that waits longer than
 * KEEPALIVE_AFTER_MS pauses the assigned partitions and goes on polling (which fetches
 * nothing but keeps the membership) until the engine has room, then resumes them. What a
 * poll returns meanwhile (fetched before the pause took effect, or of partitions assigned
 * by a rebalance) is kept in a backlog and handled next: nothing consumed is dropped, and
 * librdkafka resumes fetching after the last message it handed out. A rate-limited push is
 * cut into slices of RECV_POLL_MS worth of records, with a poll between them.
 *
 * Threads: the receiver thread consumes, appends, pushes and commits; the job thread runs
 * on_batch_done and the failure listener; ctx->lock guards the list of pushes. The
 * rebalance callback runs on the receiver thread (inside its consume call) or in destroy. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

#define RECV_CHUNK         2048  /* messages consumed at once */
#define RECV_POLL_MS       100   /* longest wait in one consume call */
#define SYNC_INTERVAL_MS   200   /* the log is fsynced and offsets committed this often */
#define SYNC_TIMEOUT_MS    10000 /* synchronous commits (revoke, stop) */
#define WAL_RETRY_MS       1000  /* a failing log is tried again after this long */
#define KEEPALIVE_AFTER_MS 500   /* a push waiting longer pauses the partitions and polls */

/* ==== Offsets ==== */

/* Sets the next offset of topic/partition in l to at least next. */
static void offsets_note(rd_kafka_topic_partition_list_t *l, const char *topic, int32_t partition,
                         int64_t next)
{
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(l, topic, partition);
    if (!tp) {
        tp = rd_kafka_topic_partition_list_add(l, topic, partition);
        tp->offset = next;
    } else if (next > tp->offset) {
        tp->offset = next;
    }
}

/* The entries of `from` that are (also) in `only`, or all of them when only is NULL. */
static rd_kafka_topic_partition_list_t *offsets_copy(const rd_kafka_topic_partition_list_t *from,
                                                     const rd_kafka_topic_partition_list_t *only)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(from->cnt + 1);
    for (int i = 0; i < from->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &from->elems[i];
        if (!only || rd_kafka_topic_partition_list_find(only, tp->topic, tp->partition)) {
            rd_kafka_topic_partition_list_add(l, tp->topic, tp->partition)->offset = tp->offset;
        }
    }
    return l;
}

/* Frees an offset list noted with a push (sl__receiver_log_note's free_data). */
static void offsets_free(void *data)
{
    rd_kafka_topic_partition_list_destroy(data);
}

/* ==== Durability ==== */

/* The syncer thread: fsyncs the log, then commits the offsets of what was appended before
 * the request (asynchronously). The receiver thread goes on appending meanwhile. */
static void *syncer_main(void *arg)
{
    sl_kafka_src *ctx = arg;
    pthread_mutex_lock(&ctx->sync_lock);
    for (;;) {
        while (!ctx->sync_req && !ctx->sync_stop) {
            pthread_cond_wait(&ctx->sync_cond, &ctx->sync_lock);
        }
        rd_kafka_topic_partition_list_t *l = ctx->sync_req;
        if (!l) {
            break; /* stopping, nothing left */
        }
        ctx->sync_req = NULL;
        ctx->sync_busy = true;
        pthread_mutex_unlock(&ctx->sync_lock);
        if (sl__wal_sync(ctx->wal) == SL_OK) {
            if (l->cnt > 0) {
                rd_kafka_commit(ctx->rk, l, 1);
            }
        } else {
            sl_instance_error(ctx->ins, "the write-ahead log cannot be synced: offsets are not "
                                        "committed");
        }
        rd_kafka_topic_partition_list_destroy(l);
        pthread_mutex_lock(&ctx->sync_lock);
        ctx->sync_busy = false;
        pthread_cond_broadcast(&ctx->sync_cond);
    }
    pthread_mutex_unlock(&ctx->sync_lock);
    return NULL;
}

/* Asks the syncer to make what was appended so far durable, then commit it. A request not
 * yet taken is replaced: the newer one covers it. @locality the receiver thread */
static void request_sync(sl_kafka_src *ctx)
{
    if (!ctx->wal || !ctx->appended) {
        return;
    }
    rd_kafka_topic_partition_list_t *l = offsets_copy(ctx->appended, NULL);
    pthread_mutex_lock(&ctx->sync_lock);
    if (ctx->sync_req) {
        rd_kafka_topic_partition_list_destroy(ctx->sync_req);
    }
    ctx->sync_req = l;
    pthread_cond_broadcast(&ctx->sync_cond);
    pthread_mutex_unlock(&ctx->sync_lock);
    ctx->dirty = false;
    ctx->last_sync = sl__mono_ms();
}

/* Waits until the syncer has nothing to do. */
static void syncer_drain(sl_kafka_src *ctx)
{
    if (!ctx->sync_started) {
        return;
    }
    pthread_mutex_lock(&ctx->sync_lock);
    while (ctx->sync_req || ctx->sync_busy) {
        pthread_cond_wait(&ctx->sync_cond, &ctx->sync_lock);
    }
    pthread_mutex_unlock(&ctx->sync_lock);
}

/* fsyncs the log and commits what was appended (only the partitions of `only` when it is
 * not NULL), synchronously, after what the syncer had to do: at a revoke and at the stop.
 * @locality the receiver thread, or destroy */
static void sync_and_commit(sl_kafka_src *ctx, const rd_kafka_topic_partition_list_t *only)
{
    if (!ctx->wal || !ctx->appended) {
        return;
    }
    syncer_drain(ctx);
    if (sl__wal_sync(ctx->wal) != SL_OK) {
        sl_instance_error(ctx->ins, "the write-ahead log cannot be synced: offsets are not "
                                    "committed");
        return;
    }
    ctx->dirty = false;
    ctx->last_sync = sl__mono_ms();
    if (ctx->appended->cnt == 0) {
        return;
    }
    rd_kafka_topic_partition_list_t *l = offsets_copy(ctx->appended, only);
    if (l->cnt > 0) {
        sl__kafka_commit_sync(ctx, l, SYNC_TIMEOUT_MS);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* ==== Replay from the log ==== */

typedef struct recv_io recv_io;
static int push_live(sl_kafka_src *ctx, recv_io *io, const sl_record *recs, size_t n,
                     sl_wal_pos end);

typedef struct replay_state {
    sl_kafka_src *ctx;
    recv_io *io;
} replay_state;

static int replay_block(void *arg, const sl_record *recs, size_t n, sl_wal_pos end)
{
    replay_state *st = arg;
    /* What the log holds is not consumed again: a crash may come before its offsets were
     * committed (they are, once the log is synced), and Kafka would deliver it again. */
    for (size_t i = 0; i < n; i++) {
        const sl_record_meta *m = recs[i].meta;
        const char *topic = m && m->topic ? sl__kafka_intern(st->ctx, m->topic) : NULL;
        if (topic && m->offset >= 0) {
            offsets_note(st->ctx->appended, topic, m->partition, m->offset + 1);
            st->ctx->dirty = true;
        }
    }
    return push_live(st->ctx, st->io, recs, n, end);
}

/* Pushes every record of the log that no completed batch processed. */
static void replay_wal(sl_kafka_src *ctx, recv_io *io, const char *why)
{
    replay_state st = {.ctx = ctx, .io = io};
    sl__receiver_log_replay(ctx->rlog, why, replay_block, &st);
}

/* Without a log: seeks the assigned partitions back to the group's committed offsets. */
static void seek_to_committed(sl_kafka_src *ctx)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(ctx->rk, &l) || !l) {
        return;
    }
    if (l->cnt > 0 && !rd_kafka_committed(ctx->rk, l, (int)ctx->poll_timeout)) {
        rd_kafka_topic_partition_list_t *s = rd_kafka_topic_partition_list_new(l->cnt);
        for (int i = 0; i < l->cnt; i++) {
            if (!l->elems[i].err && l->elems[i].offset >= 0) {
                rd_kafka_topic_partition_list_add(s, l->elems[i].topic, l->elems[i].partition)
                    ->offset = l->elems[i].offset;
            }
        }
        rd_kafka_error_t *e =
            s->cnt ? rd_kafka_seek_partitions(ctx->rk, s, (int)ctx->poll_timeout) : NULL;
        if (e) {
            sl_instance_error(ctx->ins, "cannot seek back to the committed offsets: %s",
                              rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        } else {
            sl_instance_log(ctx->ins, SL_LOG_WARN,
                            "a batch failed: %d partitions read again from their committed "
                            "offsets",
                            s->cnt);
        }
        rd_kafka_topic_partition_list_destroy(s);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* ==== Rebalances ==== */

/* Waiting for the group while the consumer holds no partition: counted from the
 * rebalances themselves (eager ones replace the assignment, cooperative ones add or take
 * some). Not rd_kafka_assignment(): called in the callback while the consumer closes, it
 * waits on the group thread, which waits on the callback (a stop that hung). */
static void recv_note_waiting(sl_kafka_src *ctx, const rd_kafka_topic_partition_list_t *l,
                              bool coop, bool assigned)
{
    if (!coop) {
        ctx->recv_nassigned = assigned ? l->cnt : 0;
    } else {
        ctx->recv_nassigned += assigned ? l->cnt : -l->cnt;
        ctx->recv_nassigned = ctx->recv_nassigned < 0 ? 0 : ctx->recv_nassigned;
    }
    sl_instance_set_waiting(ctx->ins, ctx->recv_nassigned == 0);
}

static void recv_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t *l, void *opaque)
{
    sl_kafka_src *ctx = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    char text[256], why[512];
    sl__kafka_list_text(l, text, sizeof(text));
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        sl_instance_log(ctx->ins, SL_LOG_INFO, "group %s assigned %d partitions: %s", ctx->group,
                        l->cnt, text);
        ctx->recv_reassigned = true; /* paused while a push waits: pause these too */
        sl__kafka_rebalance_apply(rk, l, coop, true, why, sizeof(why));
        recv_note_waiting(ctx, l, coop, true);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        /* What was received is made durable and committed before the partitions go. */
        if (!rd_kafka_assignment_lost(rk)) {
            sync_and_commit(ctx, l);
        }
        if (ctx->appended) {
            rd_kafka_topic_partition_list_t *keep = rd_kafka_topic_partition_list_new(4);
            for (int i = 0; i < ctx->appended->cnt; i++) {
                rd_kafka_topic_partition_t *tp = &ctx->appended->elems[i];
                if (!rd_kafka_topic_partition_list_find(l, tp->topic, tp->partition)) {
                    rd_kafka_topic_partition_list_add(keep, tp->topic, tp->partition)->offset =
                        tp->offset;
                }
            }
            rd_kafka_topic_partition_list_destroy(ctx->appended);
            ctx->appended = keep;
        }
        sl__kafka_rebalance_apply(rk, l, coop, false, why, sizeof(why));
        for (int i = 0; i < l->cnt; i++) {
            sl_instance_release_partition(ctx->ins, l->elems[i].topic, l->elems[i].partition);
        }
        recv_note_waiting(ctx, l, coop, false);
        sl_instance_log(ctx->ins, SL_LOG_INFO, "group %s revoked %d partitions: %s", ctx->group,
                        l->cnt, text);
        return;
    }
    sl_instance_error(ctx->ins, "rebalance failed: %s", rd_kafka_err2str(err));
    rd_kafka_assign(rk, NULL);
}

/* ==== The thread ==== */

static bool stopping(sl_kafka_src *ctx)
{
    return atomic_load(&ctx->stop) || sl_instance_stopping(ctx->ins);
}

/* What the receiver thread consumes with: the chunk being handled and the messages polled
 * while it waited. @locality the receiver thread */
struct recv_io {
    rd_kafka_queue_t *q;
    rd_kafka_message_t **msgs; /* the chunk being handled, RECV_CHUNK at most */
    sl_record *recs;
    sl_record_meta *metas;
    sl_kafka_hdrs hdrs;
    rd_kafka_message_t **backlog; /* consumed while a push waited: handled next, in order */
    size_t nbacklog, capbacklog;
};

/* Pauses (or resumes) every assigned partition. */
static void recv_pause(sl_kafka_src *ctx, bool pause)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(ctx->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || !l) {
        return;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t err =
            pause ? rd_kafka_pause_partitions(ctx->rk, l) : rd_kafka_resume_partitions(ctx->rk, l);
        if (err) {
            sl_instance_log(ctx->ins, SL_LOG_WARN, "cannot %s the partitions: %s",
                            pause ? "pause" : "resume", rd_kafka_err2str(err));
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Keeps the group membership while a push waits: pauses the assignment (again after a
 * rebalance) and polls without waiting. What the poll returns goes to the backlog. */
static void keepalive(sl_kafka_src *ctx, recv_io *io)
{
    if (!ctx->recv_paused || ctx->recv_reassigned) {
        if (!ctx->recv_paused) {
            sl_instance_log(ctx->ins, SL_LOG_DEBUG,
                            "the engine has no room (max_buffered or the rate limit): "
                            "partitions paused, polling to stay in group %s",
                            ctx->group);
        }
        ctx->recv_reassigned = false;
        ctx->recv_paused = true;
        recv_pause(ctx, true);
    }
    if (io->nbacklog + RECV_CHUNK > io->capbacklog) {
        size_t cap = io->capbacklog ? io->capbacklog * 2 : 2 * RECV_CHUNK;
        rd_kafka_message_t **b = realloc(io->backlog, cap * sizeof(*b));
        if (!b) {
            return; /* no room to keep what a poll returns: do not poll now */
        }
        io->backlog = b;
        io->capbacklog = cap;
    }
    ssize_t n = rd_kafka_consume_batch_queue(io->q, 0, io->backlog + io->nbacklog, RECV_CHUNK);
    if (n > 0) {
        io->nbacklog += (size_t)n;
    }
}

/* Resumes the partitions a wait paused. */
static void keepalive_end(sl_kafka_src *ctx)
{
    if (ctx->recv_paused) {
        recv_pause(ctx, false);
        ctx->recv_paused = false;
        ctx->recv_reassigned = false;
        sl_instance_log(ctx->ins, SL_LOG_DEBUG, "the engine has room again: partitions resumed");
    }
}

/* Sleeps ms (or until the source stops), polling to keep the membership when it must. */
static void idle_wait(sl_kafka_src *ctx, recv_io *io, int64_t ms)
{
    for (int64_t t = 0; t < ms && !stopping(ctx); t += RECV_POLL_MS) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = RECV_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        keepalive(ctx, io);
    }
}

/* Pushes records to the engine (sl_receiver_push: it waits while the engine has no room),
 * without leaving the group however long that lasts (see the top of the file). end is the
 * end of the log block that holds recs (0: not in the log). Returns SL_OK, or SL_ERR_STATE
 * when the engine stops (the records were taken). */
static int push_live(sl_kafka_src *ctx, recv_io *io, const sl_record *recs, size_t n,
                     sl_wal_pos end)
{
    size_t done = 0;
    int rc = SL_OK;
    int64_t waited = 0;
    while (done < n) {
        if (!sl_receiver_wait_room(ctx->ins, waited < KEEPALIVE_AFTER_MS ? RECV_POLL_MS : 0)) {
            waited += RECV_POLL_MS;
            if (waited >= KEEPALIVE_AFTER_MS) {
                keepalive(ctx, io);
                sl_receiver_wait_room(ctx->ins, RECV_POLL_MS);
            }
            continue;
        }
        size_t k = n - done;
        double rate = sl_instance_rate_limit(ctx->ins);
        if (rate > 0) {
            double slice = rate * RECV_POLL_MS / 1000.0;
            k = slice < 1 ? 1 : slice < (double)k ? (size_t)slice : k;
        }
        int64_t t0 = sl__mono_ms();
        int prc = sl__receiver_push_logged(ctx->ins, recs + done, k, end, done);
        if (prc != SL_OK && rc == SL_OK) {
            rc = prc;
        }
        done += k;
        waited += sl__mono_ms() - t0;
        if (done < n && waited >= KEEPALIVE_AFTER_MS) {
            keepalive(ctx, io);
        }
    }
    keepalive_end(ctx);
    return rc;
}

/* Handles one consumed chunk: records made, appended to the log, pushed, remembered. */
static void handle_chunk(sl_kafka_src *ctx, recv_io *io, rd_kafka_message_t **msgs, size_t n)
{
    size_t nrec = 0;
    sl_record *recs = io->recs;
    sl_record_meta *metas = io->metas;
    io->hdrs.n = 0;
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(8);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = msgs[i];
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
                if (!ctx->missing_reported) {
                    sl_instance_error(ctx->ins, "%s (at %s); it is read once it is created",
                                      rd_kafka_message_errstr(m), ctx->bootstrap);
                    ctx->missing_reported = true;
                }
            } else if (m->err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                       m->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
                sl__kafka_report_down(ctx, rd_kafka_message_errstr(m), m->err);
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                sl_instance_log(ctx->ins, SL_LOG_WARN, "Kafka: %s", rd_kafka_message_errstr(m));
            }
            continue;
        }
        const char *topic = sl__kafka_intern(ctx, rd_kafka_topic_name(m->rkt));
        if (!topic) {
            continue;
        }
        if (ctx->wal) {
            const rd_kafka_topic_partition_t *a =
                rd_kafka_topic_partition_list_find(ctx->appended, topic, m->partition);
            if (a && m->offset < a->offset) {
                continue; /* in the log already (consumed again after a crash) */
            }
        }
        offsets_note(offsets, topic, m->partition, m->offset + 1);
        if (sl__kafka_msg_record(ctx, m, topic, &recs[nrec], &metas[nrec], &io->hdrs) == SL_OK) {
            nrec++;
        }
    }
    sl__kafka_hdrs_link(metas, nrec, &io->hdrs);
    if (offsets->cnt > 0) {
        sl__kafka_report_up(ctx);
    }
    sl_wal_pos end = 0;
    if (ctx->wal && nrec > 0) {
        int rc;
        while ((rc = sl__wal_append(ctx->wal, recs, nrec, &end)) != SL_OK) {
            sl_instance_error(ctx->ins, "cannot append to the write-ahead log %s: %s; retrying",
                              sl__wal_dir(ctx->wal), sl_err2str(rc));
            idle_wait(ctx, io, WAL_RETRY_MS);
            if (stopping(ctx)) {
                break; /* not in the log: not committed either, so Kafka has them */
            }
        }
        keepalive_end(ctx);
        if (rc == SL_OK) {
            ctx->dirty = true;
        }
    }
    if (ctx->wal) {
        for (int i = 0; i < offsets->cnt; i++) {
            offsets_note(ctx->appended, offsets->elems[i].topic, offsets->elems[i].partition,
                         offsets->elems[i].offset);
        }
    }
    if (nrec > 0) {
        push_live(ctx, io, recs, nrec, end);
    }
    if (offsets->cnt > 0) {
        sl__receiver_log_note(ctx->rlog, end, ctx->wal ? NULL : offsets);
        if (!ctx->wal) {
            offsets = NULL;
        }
    }
    if (offsets) {
        rd_kafka_topic_partition_list_destroy(offsets);
    }
}

/* The next chunk: the backlog's oldest messages first, else a consume call. Returns the
 * number of messages in io->msgs, or -1 when consuming failed. */
static ssize_t next_chunk(recv_io *io)
{
    if (io->nbacklog == 0) {
        return rd_kafka_consume_batch_queue(io->q, RECV_POLL_MS, io->msgs, RECV_CHUNK);
    }
    size_t n = io->nbacklog < RECV_CHUNK ? io->nbacklog : RECV_CHUNK;
    memcpy(io->msgs, io->backlog, n * sizeof(*io->msgs));
    memmove(io->backlog, io->backlog + n, (io->nbacklog - n) * sizeof(*io->backlog));
    io->nbacklog -= n;
    return (ssize_t)n;
}

static void *receiver_main(void *arg)
{
    sl_kafka_src *ctx = arg;
    recv_io io = {
        .msgs = malloc(RECV_CHUNK * sizeof(*io.msgs)),
        .recs = malloc(RECV_CHUNK * sizeof(*io.recs)),
        .metas = malloc(RECV_CHUNK * sizeof(*io.metas)),
        .q = rd_kafka_queue_get_consumer(ctx->rk),
    };
    if (!io.msgs || !io.recs || !io.metas || !io.q) {
        sl_instance_error(ctx->ins, "out of memory");
        goto out;
    }
    if (ctx->wal) {
        replay_wal(ctx, &io, "restart");
    }
    sl_instance_set_active(ctx->ins, true);
    while (!stopping(ctx)) {
        if (sl__receiver_log_take_failure(ctx->rlog)) {
            /* Pushes from now on count; the ones before were dropped by the failure. */
            if (ctx->wal) {
                sync_and_commit(ctx, NULL);
                replay_wal(ctx, &io, "a batch failed");
            } else {
                seek_to_committed(ctx);
            }
        }
        ssize_t n = next_chunk(&io);
        if (n < 0) {
            sl_instance_log(ctx->ins, SL_LOG_WARN, "consuming failed: %s",
                            rd_kafka_err2str(rd_kafka_last_error()));
            continue;
        }
        if (n > 0) {
            handle_chunk(ctx, &io, io.msgs, (size_t)n);
            for (ssize_t i = 0; i < n; i++) {
                rd_kafka_message_destroy(io.msgs[i]);
            }
        }
        if (ctx->dirty && (n == 0 || sl__mono_ms() - ctx->last_sync >= SYNC_INTERVAL_MS)) {
            request_sync(ctx);
        }
    }
    /* Stopping: what was received is durable and committed; the engine's last batch takes
     * what was pushed. The backlog was neither logged nor pushed, so not committed either:
     * Kafka still has it. */
    sync_and_commit(ctx, NULL);
out:
    for (size_t i = 0; i < io.nbacklog; i++) {
        rd_kafka_message_destroy(io.backlog[i]);
    }
    free(io.backlog);
    if (io.q) {
        rd_kafka_queue_destroy(io.q);
    }
    free(io.msgs);
    free(io.recs);
    free(io.metas);
    free(io.hdrs.v);
    sl_instance_set_active(ctx->ins, false);
    return NULL;
}

/* ==== Callbacks ==== */

int sl__kafka_receiver_start(sl_kafka_src *ctx)
{
    char errstr[512];
    int rc = sl__kafka_src_bootstrap(ctx);
    if (rc != SL_OK) {
        return rc;
    }
    ctx->rlog = sl__receiver_log_new(ctx->ins, &ctx->wal_opts,
                                     "offsets are committed after each batch completes",
                                     offsets_free, errstr, sizeof(errstr));
    if (!ctx->rlog) {
        sl_instance_error(ctx->ins, "%s", errstr);
        return SL_ERR_IO;
    }
    ctx->wal = sl__receiver_log_wal(ctx->rlog);
    if (ctx->wal) {
        ctx->appended = rd_kafka_topic_partition_list_new(8);
        pthread_mutex_init(&ctx->sync_lock, NULL);
        pthread_cond_init(&ctx->sync_cond, NULL);
    }
    rd_kafka_conf_t *conf = sl__kafka_conf_new(ctx->ins, ctx->bootstrap, ctx->properties,
                                               SL_KAFKA_RECEIVER, errstr, sizeof(errstr));
    if (!conf) {
        sl_instance_error(ctx->ins, "%s", errstr);
        return SL_ERR_INVAL;
    }
    sl_kafka_start s = ctx->start == SL_KAFKA_START_COMMITTED ? ctx->start_fallback : ctx->start;
    char ms[32];
    snprintf(ms, sizeof(ms), "%lld", (long long)ctx->metadata_refresh);
    if (rd_kafka_conf_set(conf, "group.id", ctx->group, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "auto.offset.reset",
                          s == SL_KAFKA_START_EARLIEST ? "earliest" : "latest", errstr,
                          sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "topic.metadata.refresh.interval.ms", ms, errstr, sizeof(errstr)) ||
        (ctx->group_instance_id && *ctx->group_instance_id &&
         rd_kafka_conf_set(conf, "group.instance.id", ctx->group_instance_id, errstr,
                           sizeof(errstr)))) {
        rd_kafka_conf_destroy(conf);
        sl_instance_error(ctx->ins, "%s", errstr);
        return SL_ERR_INVAL;
    }
    rd_kafka_conf_set_opaque(conf, ctx);
    rd_kafka_conf_set_error_cb(conf, sl__kafka_src_error_cb);
    rd_kafka_conf_set_rebalance_cb(conf, recv_rebalance_cb);
    ctx->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!ctx->rk) {
        rd_kafka_conf_destroy(conf);
        sl_instance_error(ctx->ins, "cannot create the Kafka consumer: %s", errstr);
        return SL_ERR_INVAL;
    }
    rd_kafka_poll_set_consumer(ctx->rk);
    if (sl__kafka_subscribe(ctx, errstr, sizeof(errstr)) != SL_OK) {
        sl_instance_error(ctx->ins, "%s", errstr);
        return SL_ERR_INVAL;
    }
    sl_instance_set_waiting(ctx->ins, true); /* until the group assigns partitions */
    atomic_store(&ctx->stop, false);
    if (ctx->wal) {
        int se = pthread_create(&ctx->sync_thread, NULL, syncer_main, ctx);
        if (se != 0) {
            sl_instance_error(ctx->ins, "cannot start the syncer thread: %s", strerror(se));
            return SL_ERR_IO;
        }
        ctx->sync_started = true;
    }
    int e = pthread_create(&ctx->thread, NULL, receiver_main, ctx);
    if (e != 0) {
        sl_instance_error(ctx->ins, "cannot start the receiver thread: %s", strerror(e));
        return SL_ERR_IO;
    }
    ctx->thread_started = true;
    sl_instance_log(ctx->ins, SL_LOG_INFO, "Kafka receiver for group %s at %s%s%s", ctx->group,
                    ctx->bootstrap, ctx->wal ? ", write-ahead log " : ", no write-ahead log",
                    ctx->wal ? sl__wal_dir(ctx->wal) : "");
    return SL_OK;
}

/* Adds the offsets of a processed push to the list to commit. */
static void offsets_merge(void *arg, void *data)
{
    rd_kafka_topic_partition_list_t **commit = arg;
    const rd_kafka_topic_partition_list_t *l = data;
    for (int i = 0; i < l->cnt; i++) {
        if (!*commit) {
            *commit = rd_kafka_topic_partition_list_new(8);
        }
        offsets_note(*commit, l->elems[i].topic, l->elems[i].partition, l->elems[i].offset);
    }
}

void sl__kafka_receiver_done(sl_kafka_src *ctx, int64_t batch_time)
{
    rd_kafka_topic_partition_list_t *commit = NULL;
    sl__receiver_log_done(ctx->rlog, batch_time, offsets_merge, &commit);
    if (commit) {
        if (ctx->rk) {
            rd_kafka_commit(ctx->rk, commit, 1);
        }
        rd_kafka_topic_partition_list_destroy(commit);
    }
}

void sl__kafka_receiver_failed(sl_kafka_src *ctx, int64_t batch_time)
{
    /* What was pushed so far is pushed again; none of it may be marked processed. */
    sl__receiver_log_failed(ctx->rlog, batch_time);
}

void sl__kafka_receiver_stop(sl_kafka_src *ctx)
{
    atomic_store(&ctx->stop, true);
    if (ctx->thread_started) {
        pthread_join(ctx->thread, NULL);
        ctx->thread_started = false;
    }
    if (ctx->sync_started) {
        pthread_mutex_lock(&ctx->sync_lock);
        ctx->sync_stop = true;
        pthread_cond_broadcast(&ctx->sync_cond);
        pthread_mutex_unlock(&ctx->sync_lock);
        pthread_join(ctx->sync_thread, NULL);
        ctx->sync_started = false;
    }
}

void sl__kafka_receiver_destroy(sl_kafka_src *ctx)
{
    sl__kafka_receiver_stop(ctx);
    if (ctx->rk) {
        if (!atomic_load(&ctx->brokers_down)) {
            rd_kafka_consumer_close(ctx->rk);
            rd_kafka_destroy(ctx->rk);
        } else {
            rd_kafka_destroy_flags(ctx->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        }
        ctx->rk = NULL;
    }
    if (ctx->appended) {
        rd_kafka_topic_partition_list_destroy(ctx->appended);
        ctx->appended = NULL;
        if (ctx->sync_req) {
            rd_kafka_topic_partition_list_destroy(ctx->sync_req);
            ctx->sync_req = NULL;
        }
        pthread_mutex_destroy(&ctx->sync_lock);
        pthread_cond_destroy(&ctx->sync_cond);
    }
    sl__receiver_log_destroy(ctx->rlog);
    ctx->rlog = NULL;
    ctx->wal = NULL;
}

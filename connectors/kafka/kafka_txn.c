/* kafka_txn.c -- the kafka sink's transactions (exactly-once v2, KIP-447): each batch is one
 * Kafka transaction holding its messages and the batch's input offsets committed to the
 * source's consumer group; the group's committed offsets are the sink's positions, checked
 * before a batch is written (held: skipped; held elsewhere: fenced). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

/* init_transactions: fences an older producer with the same transactional.id (a restarted
 * instance's zombie) and aborts the transaction it left open. SL_OK; SL_ERR_RETRY when the
 * brokers did not answer in time (call it again); SL_ERR_FATAL when the producer cannot be
 * used (reported). @locality start or write */
void sl__kafka_txn_claim(sl_kafka_sink *ctx)
{
    if (!ctx->txn_group && ctx->group && (ctx->txn_group = strdup(ctx->group))) {
        sl__kafka_txn_group_claim(ctx->txn_group);
    }
}

int sl__kafka_txn_init(sl_kafka_sink *ctx)
{
    rd_kafka_error_t *e = rd_kafka_init_transactions(ctx->rk, (int)ctx->flush_timeout);
    if (!e) {
        ctx->txn_ready = true;
        sl__kafka_txn_claim(ctx);
        sl_instance_log(ctx->ins, SL_LOG_INFO, "transactional producer %s ready (group %s)",
                        ctx->txn_id, ctx->group ? ctx->group : "not known yet");
        return SL_OK;
    }
    int rc = rd_kafka_error_is_retriable(e) ? SL_ERR_RETRY : SL_ERR_FATAL;
    sl_instance_error(ctx->ins, "cannot initialise transactions (transactional.id %s): %s",
                      ctx->txn_id, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return rc;
}

/* ==== Transactions (exactly-once v2) ==== */

#define POSITIONS_TIMEOUT_MS 10000 /* longest wait for the group's committed offsets */
#define COMMIT_TRIES         3     /* commit_transaction calls after retriable errors */

/* A batch's input ranges (the direct source's offset ranges: sl_batch_input_add_range). */
typedef struct txn_ranges {
    const sl_input_range *v;
    size_t n;
} txn_ranges;

/* The group's committed offsets of l's partitions, in l (-1 where none), from the sink's
 * own consumer of the group (made here once; it never subscribes, so it never joins). Its
 * isolation.level is read_committed, so the broker answers once no transaction of the group
 * is pending. SL_OK or SL_ERR_RETRY with errstr. @locality any (pos_lock) */
int sl__kafka_committed_fetch(sl_kafka_sink *ctx, rd_kafka_topic_partition_list_t *l, char *errstr,
                              size_t errsize)
{
    pthread_mutex_lock(&ctx->pos_lock);
    int rc = SL_OK;
    if (!ctx->pos_rk) {
        rd_kafka_conf_t *conf = ctx->bootstrap
                                    ? sl__kafka_conf_new(ctx->ins, ctx->bootstrap, ctx->properties,
                                                         SL_KAFKA_DIRECT, errstr, errsize)
                                    : NULL;
        if (!ctx->bootstrap) {
            snprintf(errstr, errsize, "not started");
        }
        if (conf &&
            (rd_kafka_conf_set(conf, "group.id", ctx->group, errstr, errsize) ||
             rd_kafka_conf_set(conf, "isolation.level", "read_committed", errstr, errsize))) {
            rd_kafka_conf_destroy(conf);
            conf = NULL;
        }
        if (conf) {
            rd_kafka_conf_set_opaque(conf, ctx);
            rd_kafka_conf_set_error_cb(conf, sl__kafka_sink_error_cb);
            ctx->pos_rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errsize);
            if (!ctx->pos_rk) {
                rd_kafka_conf_destroy(conf);
            }
        }
        rc = ctx->pos_rk ? SL_OK : SL_ERR_RETRY;
    }
    if (rc == SL_OK) {
        int tmo = ctx->flush_timeout < POSITIONS_TIMEOUT_MS ? (int)ctx->flush_timeout
                                                            : POSITIONS_TIMEOUT_MS;
        rd_kafka_resp_err_t err = rd_kafka_committed(ctx->pos_rk, l, tmo);
        for (int i = 0; !err && i < l->cnt; i++) {
            err = l->elems[i].err;
            if (l->elems[i].offset < 0) {
                l->elems[i].offset = -1;
            }
        }
        if (err) {
            snprintf(errstr, errsize, "cannot read the committed offsets of group %s: %s",
                     ctx->group, rd_kafka_err2str(err));
            rc = SL_ERR_RETRY;
        }
    }
    pthread_mutex_unlock(&ctx->pos_lock);
    return rc;
}

/* Where the sink is: the group's committed offsets, which move only in its transactions
 * (and in the source's commits of completed batches, the same values). A sink that is not
 * transactional records no positions: -1 everywhere. @locality the engine's timer thread */
int sl__kafka_sink_positions(void *data, const char *pipeline, sl_position *pos, size_t n,
                             char *errstr, size_t errsize)
{
    sl_kafka_sink *ctx = data;
    (void)pipeline; /* the group names the pipeline's input */
    for (size_t i = 0; i < n; i++) {
        pos[i].next = -1;
    }
    if (ctx->changelog) {
        return sl__kafka_changelog_positions(ctx, pos, n, errstr, errsize);
    }
    if (!ctx->transactional || n == 0) {
        return SL_OK;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_list_add(l, pos[i].topic, pos[i].partition);
    }
    int rc = sl__kafka_committed_fetch(ctx, l, errstr, errsize);
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        pos[i].next = l->elems[i].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* The offsets to commit with the batch: each partition's highest until. */
static rd_kafka_topic_partition_list_t *txn_offsets(const txn_ranges *r)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)r->n + 1);
    for (size_t i = 0; i < r->n; i++) {
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, r->v[i].topic, r->v[i].partition);
        if (!tp) {
            tp = rd_kafka_topic_partition_list_add(l, r->v[i].topic, r->v[i].partition);
            tp->offset = r->v[i].until;
        } else if (r->v[i].until > tp->offset) {
            tp->offset = r->v[i].until;
        }
    }
    return l;
}

/* The position rule (sl_position_check_range) for the whole batch against the group's
 * committed offsets in committed: WRITE, SKIP (every range is held) or FENCED. */
static sl_position_check txn_check(const txn_ranges *r,
                                   const rd_kafka_topic_partition_list_t *committed)
{
    size_t skip = 0;
    for (size_t i = 0; i < r->n; i++) {
        const rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(
            (rd_kafka_topic_partition_list_t *)committed, r->v[i].topic, r->v[i].partition);
        sl_position_check c = sl_position_check_range(&r->v[i], tp ? tp->offset : -1);
        if (c == SL_POSITION_SKIP) {
            skip++;
        } else if (c == SL_POSITION_FENCED) {
            return SL_POSITION_FENCED;
        }
    }
    return r->n && skip == r->n ? SL_POSITION_SKIP : skip ? SL_POSITION_FENCED : SL_POSITION_WRITE;
}

/* Makes the producer anew after it was fenced or failed fatally. SL_ERR_FENCED (the batch
 * is dropped: its sources resume where the sinks are) or SL_ERR_FATAL. */
static int txn_renew(sl_kafka_sink *ctx)
{
    rd_kafka_purge(ctx->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(ctx->rk);
    ctx->rk = NULL;
    int rc = sl__kafka_producer_new(ctx);
    if (rc == SL_OK) {
        rc = sl__kafka_txn_init(ctx);
    }
    return rc == SL_OK ? SL_ERR_FENCED : SL_ERR_FATAL;
}

/* True for the errors of a transactional offset commit from a consumer generation that is
 * no longer current: a rebalance happened, the batch's partitions may be another's now. */
static bool generation_error(rd_kafka_resp_err_t code)
{
    return code == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
           code == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
           code == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
}

/* Handles e (taken) of the transactional call what: a fenced or fatal producer is made anew
 * (SL_ERR_FENCED, or SL_ERR_FATAL when that fails); otherwise the transaction is aborted
 * and the batch retried (SL_ERR_RETRY), or dropped (SL_ERR_FENCED) when the consumer
 * generation of the offsets is stale (member: they were the registered consumer's). */
int sl__kafka_txn_fail(sl_kafka_sink *ctx, const sl_batch_output *out, const char *what,
                       rd_kafka_error_t *e, bool member)
{
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    bool fenced = code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
                  code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
    if (rd_kafka_error_is_fatal(e) || fenced) {
        sl_instance_error(ctx->ins,
                          "batch %" PRId64 ": %s: %s; %s%s; making the producer anew and "
                          "dropping the batch (its input resumes where the sinks are)",
                          out->batch_time, what, rd_kafka_error_string(e),
                          fenced ? "another producer has transactional.id " : "fatal error",
                          fenced ? ctx->txn_id : "");
        rd_kafka_error_destroy(e);
        return txn_renew(ctx);
    }
    sl_instance_error(ctx->ins, "batch %" PRId64 " to %s: %s: %s; aborting the transaction",
                      out->batch_time, ctx->topic, what, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    rd_kafka_error_t *ae = rd_kafka_abort_transaction(ctx->rk, (int)ctx->flush_timeout);
    if (ae) {
        bool fatal = rd_kafka_error_is_fatal(ae);
        sl_instance_error(ctx->ins,
                          "batch %" PRId64 ": abort_transaction: %s; making the producer anew",
                          out->batch_time, rd_kafka_error_string(ae));
        rd_kafka_error_destroy(ae);
        /* A new producer's init_transactions aborts what this one left open. */
        int rc = txn_renew(ctx);
        return fatal || rc == SL_ERR_FATAL ? rc : SL_ERR_RETRY;
    }
    return member && generation_error(code) ? SL_ERR_FENCED : SL_ERR_RETRY;
}

/* Linear: the excluded records are the few the broker refused. */
static bool excluded(const sl_record *const *ex, size_t nex, const sl_record *r)
{
    for (size_t i = 0; i < nex; i++) {
        if (ex[i] == r) {
            return true;
        }
    }
    return false;
}

/* The messages the broker refused in delivery reports (with good ones in the same request)
 * go again one at a time, each in a transaction that is aborted: those refused alone are
 * rejected and added to *ex. SL_OK (run the batch's transaction again), or an error. */
static int txn_find_refused(sl_kafka_sink *ctx, const sl_batch_output *out, const sl_record ***ex,
                            size_t *nex)
{
    size_t n;
    const sl_record **recs = sl__kafka_refused_records(ctx, &n);
    const sl_record **grown = realloc(*ex, (*nex + n + 1) * sizeof(**ex));
    if (!recs || !grown) {
        free(recs);
        return SL_ERR_RETRY;
    }
    *ex = grown;
    sl_instance_log(ctx->ins, SL_LOG_WARN,
                    "batch %" PRId64 ": the broker refused %zu messages for %s; sending them "
                    "one at a time (aborted) to find the ones at fault",
                    out->batch_time, n, ctx->topic);
    int rc = SL_OK;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        char why[160] = "";
        sl__kafka_attempt_reset(ctx);
        rd_kafka_error_t *e = rd_kafka_begin_transaction(ctx->rk);
        if (e) {
            rc = sl__kafka_txn_fail(ctx, out, "begin_transaction", e, false);
            break;
        }
        rd_kafka_resp_err_t err = sl__kafka_sink_produce(ctx, recs[i], why, sizeof(why));
        if (!err) {
            rd_kafka_flush(ctx->rk, (int)ctx->flush_timeout);
            err = sl__kafka_refused_error(ctx);
            if (err) {
                snprintf(why, sizeof(why), "the broker refused the message: %s",
                         rd_kafka_err2str(err));
            }
        }
        e = rd_kafka_abort_transaction(ctx->rk, (int)ctx->flush_timeout);
        if (e) {
            rc = sl__kafka_txn_fail(ctx, out, "abort_transaction", e, false);
            break;
        }
        if (sl__kafka_record_error(err)) {
            (*ex)[(*nex)++] = recs[i];
            rc = sl_batch_output_reject(out, recs[i], why);
        }
    }
    free(recs);
    return rc;
}

int sl__kafka_txn_begin(sl_kafka_sink *ctx, const sl_batch_output *out)
{
    sl__kafka_attempt_reset(ctx);
    rd_kafka_error_t *e = rd_kafka_begin_transaction(ctx->rk);
    return e ? sl__kafka_txn_fail(ctx, out, "begin_transaction", e, false) : SL_OK;
}

int sl__kafka_txn_finish(sl_kafka_sink *ctx, const sl_batch_output *out,
                         const rd_kafka_topic_partition_list_t *offsets)
{
    rd_kafka_error_t *e;
    sl__kafka_txn_claim(ctx);
    if (offsets->cnt > 0) {
        /* The source's consumer, when it runs in this process, carries its generation: the
         * broker refuses offsets of a member that is no longer in the group. */
        rd_kafka_consumer_group_metadata_t *md = sl__kafka_group_lookup(ctx->group);
        bool member = md != NULL;
        if (!md) {
            md = rd_kafka_consumer_group_metadata_new(ctx->group);
        }
        e = rd_kafka_send_offsets_to_transaction(ctx->rk, offsets, md, (int)ctx->flush_timeout);
        rd_kafka_consumer_group_metadata_destroy(md);
        if (e) {
            return sl__kafka_txn_fail(ctx, out, "send_offsets_to_transaction", e, member);
        }
    }
    for (int tries = 1;; tries++) {
        e = rd_kafka_commit_transaction(ctx->rk, (int)ctx->flush_timeout);
        if (!e || !rd_kafka_error_is_retriable(e) || tries == COMMIT_TRIES) {
            break;
        }
        rd_kafka_error_destroy(e); /* the outcome is unknown: commit again */
    }
    return e ? sl__kafka_txn_fail(ctx, out, "commit_transaction", e, false) : SL_OK;
}

/* One transaction of the batch, records in ex[0..nex) left out. SL_OK (committed), EAGAIN
 * as SL_ERR_STATE (messages refused: their culprits joined ex, run it again), or the
 * result of sl__kafka_txn_fail. */
static int txn_attempt(sl_kafka_sink *ctx, const sl_batch_output *out,
                       const rd_kafka_topic_partition_list_t *offsets, const sl_record ***ex,
                       size_t *nex)
{
    int brc = sl__kafka_txn_begin(ctx, out);
    if (brc != SL_OK) {
        return brc;
    }
    rd_kafka_error_t *e;
    size_t nparts = out->ds ? sl_dataset_partitions(out->ds) : 0;
    rd_kafka_resp_err_t perr = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t p = 0; p < nparts && !perr; p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n && !perr; i++) {
            char why[160];
            if (excluded(*ex, *nex, &recs[i])) {
                continue;
            }
            perr = sl__kafka_sink_produce(ctx, &recs[i], why, sizeof(why));
            if (sl__kafka_record_error(perr)) {
                int rrc = sl_batch_output_reject(out, &recs[i], why);
                if (rrc != SL_OK) {
                    e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL, "a rejected record");
                    int frc = sl__kafka_txn_fail(ctx, out, "errors.tolerance none", e, false);
                    return frc == SL_ERR_RETRY ? rrc : frc;
                }
                perr = RD_KAFKA_RESP_ERR_NO_ERROR;
            }
        }
    }
    if (perr) {
        e = rd_kafka_error_new(perr, "%s", rd_kafka_err2str(perr));
        return sl__kafka_txn_fail(ctx, out, "produce", e, false);
    }
    /* Every delivery report, before the offsets: refusals are found and left out. */
    rd_kafka_resp_err_t ferr = rd_kafka_flush(ctx->rk, (int)ctx->flush_timeout);
    pthread_mutex_lock(&ctx->err_lock);
    bool refused = ctx->nrefused > 0, nomem = ctx->refused_nomem;
    pthread_mutex_unlock(&ctx->err_lock);
    uint64_t failed = atomic_load(&ctx->failed);
    if (ferr || failed || nomem) {
        pthread_mutex_lock(&ctx->err_lock);
        e = rd_kafka_error_new(ferr ? ferr : RD_KAFKA_RESP_ERR__FAIL, "%s",
                               ferr     ? "flush timed out"
                               : failed ? ctx->first_error
                                        : "out of memory");
        pthread_mutex_unlock(&ctx->err_lock);
        return sl__kafka_txn_fail(ctx, out, "delivery", e, false);
    }
    if (refused) {
        e = rd_kafka_abort_transaction(ctx->rk, (int)ctx->flush_timeout);
        if (e) {
            return sl__kafka_txn_fail(ctx, out, "abort_transaction", e, false);
        }
        int rc = txn_find_refused(ctx, out, ex, nex);
        return rc == SL_OK ? SL_ERR_STATE : rc;
    }
    if (sl_batch_output_flush_rejects(out) != SL_OK) {
        e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__FAIL, "the dead letters are not written");
        return sl__kafka_txn_fail(ctx, out, "dead letters", e, false);
    }
    return sl__kafka_txn_finish(ctx, out, offsets);
}

/* A batch in one transaction: skipped when the group's offsets show it held, dropped
 * (SL_ERR_FENCED) when they show it held elsewhere, else its messages and offsets
 * committed together. @locality the sink's output thread */
int sl__kafka_txn_write(sl_kafka_sink *ctx, const sl_batch_output *out)
{
    char errstr[256];
    txn_ranges r = {.v = out->ranges, .n = out->nranges};
    rd_kafka_topic_partition_list_t *offsets = txn_offsets(&r);
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_copy(offsets);
    const sl_record **ex = NULL;
    size_t nex = 0;
    int rc = SL_OK;
    if (committed->cnt > 0) {
        rc = sl__kafka_committed_fetch(ctx, committed, errstr, sizeof(errstr));
        if (rc != SL_OK) {
            sl_instance_error(ctx->ins, "batch %" PRId64 ": %s; retrying", out->batch_time, errstr);
        }
    }
    sl_position_check c = rc == SL_OK ? txn_check(&r, committed) : SL_POSITION_WRITE;
    if (rc == SL_OK && c == SL_POSITION_SKIP) {
        sl_instance_log(ctx->ins, SL_LOG_INFO,
                        "batch %" PRId64 ": group %s already holds its input; skipped",
                        out->batch_time, ctx->group);
    } else if (rc == SL_OK && c == SL_POSITION_FENCED) {
        sl_instance_log(ctx->ins, SL_LOG_WARN,
                        "batch %" PRId64 ": group %s's offsets are elsewhere than its input "
                        "starts; dropped (its input resumes where the sinks are)",
                        out->batch_time, ctx->group);
        rc = SL_ERR_FENCED;
    } else if (rc == SL_OK) {
        rc = ctx->txn_ready ? SL_OK : sl__kafka_txn_init(ctx);
        for (int round = 0; rc == SL_OK && round < 2; round++) {
            rc = txn_attempt(ctx, out, offsets, &ex, &nex);
            if (rc == SL_ERR_STATE) {
                rc = round == 0 ? SL_OK : SL_ERR_RETRY; /* refusals again: retried later */
            } else {
                break;
            }
        }
    }
    if (rc == SL_OK) {
        sl_instance_set_active(ctx->ins, true);
    }
    free(ex);
    rd_kafka_topic_partition_list_destroy(committed);
    rd_kafka_topic_partition_list_destroy(offsets);
    return rc;
}

/* sl_receiver_wal.c -- what receivers with a write-ahead log share (Spark's WAL-backed
 * receivers): the log opened under the checkpoint directory, each push remembered with its
 * time and log position, the log marked processed when a batch completes, and the records
 * no completed batch processed pushed again after a restart or a failed batch. See
 * sl_wal.h. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "sl_util.h"
#include "sl_wal.h"

/* One push: the wall time it returned, the end of its log block, the connector's data. */
typedef struct rl_push {
    int64_t time;   /* ms, wall clock */
    sl_wal_pos end; /* 0: not in the log */
    void *data;
    int gen; /* the failure generation it was pushed in */
    struct rl_push *next;
} rl_push;

struct sl_receiver_log {
    sl_instance *ins;
    sl_wal *wal; /* NULL: no log */
    sl_wal_fsync fsync;
    void (*free_data)(void *);
    pthread_mutex_t lock;
    rl_push *pushed, *pushed_tail; /* guarded by lock */
    _Atomic bool failure;          /* a batch failed: push again what is not processed */
    _Atomic int fail_gen;          /* batches that failed so far */
    int push_gen;                  /* failures the receiver thread has handled */
};

/* ==== Life ==== */

sl_receiver_log *sl__receiver_log_new(sl_instance *ins, const sl_receiver_wal_opts *opts,
                                      const char *without, void (*free_data)(void *), char *errstr,
                                      size_t errsize)
{
    sl_receiver_log *rl = calloc(1, sizeof(*rl));
    if (!rl) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    rl->ins = ins;
    rl->fsync = opts->fsync;
    rl->free_data = free_data;
    pthread_mutex_init(&rl->lock, NULL);
    atomic_init(&rl->failure, false);
    atomic_init(&rl->fail_gen, 0);
    const char *dir = sl_context_checkpoint_dir(sl_instance_context(ins));
    if (opts->wal && dir) {
        sl_wal_conf wc = {.fsync = opts->fsync, .segment_size = (uint64_t)opts->segment_size};
        char err[512];
        rl->wal = sl__wal_open(dir, sl_instance_name(ins), &wc, err, sizeof(err));
        if (!rl->wal) {
            snprintf(errstr, errsize, "write-ahead log: %s", err);
            pthread_mutex_destroy(&rl->lock);
            free(rl);
            return NULL;
        }
        sl__receiver_set_wal(ins, rl->wal);
    } else if (opts->wal && sl_options_get(sl_instance_options(ins), "wal")) {
        sl_instance_log(ins, SL_LOG_WARN,
                        "wal: true without a checkpoint directory: no "
                        "write-ahead log; %s",
                        without);
    }
    return rl;
}

static void free_list(sl_receiver_log *rl, rl_push *e)
{
    while (e) {
        rl_push *next = e->next;
        if (e->data && rl->free_data) {
            rl->free_data(e->data);
        }
        free(e);
        e = next;
    }
}

void sl__receiver_log_destroy(sl_receiver_log *rl)
{
    if (!rl) {
        return;
    }
    if (rl->wal) {
        sl__receiver_set_wal(rl->ins, NULL);
        sl__wal_close(rl->wal);
    }
    free_list(rl, rl->pushed);
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

sl_wal *sl__receiver_log_wal(const sl_receiver_log *rl)
{
    return rl ? rl->wal : NULL;
}

/* ==== Pushes ==== */

void sl__receiver_log_note(sl_receiver_log *rl, sl_wal_pos end, void *data)
{
    rl_push *e = calloc(1, sizeof(*e));
    if (!e) {
        if (data && rl->free_data) {
            rl->free_data(data);
        }
        return; /* not tracked: its records are processed again after a restart */
    }
    e->time = sl__now_ms();
    e->end = end;
    e->data = data;
    e->gen = rl->push_gen;
    pthread_mutex_lock(&rl->lock);
    if (rl->pushed_tail) {
        rl->pushed_tail->next = e;
    } else {
        rl->pushed = e;
    }
    rl->pushed_tail = e;
    pthread_mutex_unlock(&rl->lock);
}

int sl__receiver_log_push(sl_receiver_log *rl, const sl_record *recs, size_t n)
{
    if (n == 0) {
        return SL_OK;
    }
    sl_wal_pos end = 0;
    if (rl->wal) {
        int rc = sl__wal_append(rl->wal, recs, n, &end);
        if (rc != SL_OK) {
            return rc; /* the segment was cut back: the block is not in the log */
        }
        if (rl->fsync == SL_WAL_FSYNC_EXPLICIT && sl__wal_sync(rl->wal) != SL_OK) {
            /* The block is in the log (a later block marked processed covers it): it is
             * pushed, durable or not. */
            sl_instance_error(rl->ins, "the write-ahead log %s cannot be synced",
                              sl__wal_dir(rl->wal));
        }
    }
    int rc = sl__receiver_push_logged(rl->ins, recs, n, end, 0);
    sl__receiver_log_note(rl, end, NULL);
    return rc;
}

/* ==== Replay ==== */

typedef struct replay_state {
    sl_receiver_log *rl;
    sl_receiver_log_push_fn push;
    void *arg;
    uint64_t records;
} replay_state;

static int replay_block(void *arg, const sl_record *recs, size_t n, sl_wal_pos end)
{
    replay_state *st = arg;
    int rc = SL_OK;
    if (n > 0) {
        rc = st->push ? st->push(st->arg, recs, n, end)
                      : sl__receiver_push_logged(st->rl->ins, recs, n, end, 0);
    }
    sl__receiver_log_note(st->rl, end, NULL);
    st->records += n;
    return rc == SL_ERR_STATE ? SL_OK : rc;
}

void sl__receiver_log_replay(sl_receiver_log *rl, const char *why, sl_receiver_log_push_fn push,
                             void *arg)
{
    if (!rl->wal) {
        return;
    }
    replay_state st = {.rl = rl, .push = push, .arg = arg};
    uint64_t blocks = 0;
    int rc = sl__wal_replay(rl->wal, sl__wal_processed(rl->wal), replay_block, &st, &blocks);
    if (rc != SL_OK) {
        sl_instance_error(rl->ins, "replaying the write-ahead log failed: %s", sl_err2str(rc));
    }
    if (blocks > 0) {
        sl_instance_log(rl->ins, SL_LOG_INFO,
                        "%s: %" PRIu64 " records (%" PRIu64 " blocks) pushed again from the "
                        "write-ahead log %s",
                        why, st.records, blocks, sl__wal_dir(rl->wal));
    }
}

/* ==== Batches ==== */

void sl__receiver_log_done(sl_receiver_log *rl, int64_t batch_time,
                           void (*each)(void *arg, void *data), void *arg)
{
    if (!rl) {
        return;
    }
    pthread_mutex_lock(&rl->lock);
    rl_push *done = NULL, **tail = &done;
    while (rl->pushed && rl->pushed->time < batch_time) {
        rl_push *e = rl->pushed;
        rl->pushed = e->next;
        e->next = NULL;
        *tail = e;
        tail = &e->next;
    }
    if (!rl->pushed) {
        rl->pushed_tail = NULL;
    }
    pthread_mutex_unlock(&rl->lock);
    if (!done) {
        return;
    }
    sl_wal_pos processed = 0;
    int gen = atomic_load(&rl->fail_gen);
    for (rl_push *e = done; e; e = e->next) {
        if (e->gen != gen) {
            continue; /* pushed before a failure was handled: it is pushed again */
        }
        if (e->end > processed) {
            processed = e->end;
        }
        if (each && e->data) {
            each(arg, e->data);
        }
    }
    free_list(rl, done);
    if (!rl->wal || processed == 0 || sl__wal_mark_processed(rl->wal, processed) != SL_OK) {
        return;
    }
    int n = sl__wal_cleanup(rl->wal);
    if (n > 0) {
        sl_instance_log(rl->ins, SL_LOG_DEBUG, "%d write-ahead log segments deleted", n);
    }
    char input[256], labels[300];
    sl_metrics_escape_label(sl_instance_name(rl->ins), input, sizeof(input));
    snprintf(labels, sizeof(labels), "input=\"%s\"", input);
    sl_metrics_gauge_set(sl_instance_context(rl->ins), "wal_bytes",
                         "bytes in the write-ahead log's segment files", labels,
                         (double)sl__wal_bytes(rl->wal));
}

void sl__receiver_log_failed(sl_receiver_log *rl, int64_t batch_time)
{
    if (!rl) {
        return;
    }
    pthread_mutex_lock(&rl->lock);
    free_list(rl, rl->pushed);
    rl->pushed = rl->pushed_tail = NULL;
    atomic_fetch_add(&rl->fail_gen, 1);
    pthread_mutex_unlock(&rl->lock);
    sl_instance_log(rl->ins, SL_LOG_WARN,
                    "batch %" PRId64 " did not complete: what it held is pushed again", batch_time);
    atomic_store(&rl->failure, true);
}

bool sl__receiver_log_take_failure(sl_receiver_log *rl)
{
    if (!atomic_exchange(&rl->failure, false)) {
        return false;
    }
    rl->push_gen = atomic_load(&rl->fail_gen);
    return true;
}

/* sl_receiver.c -- the block generator of receiver sources: records pushed by a receiver
 * thread are copied into the current block; blocks are cut every block interval and at
 * each batch time, and the blocks cut up to a batch time become that batch's partitions.
 *
 * Flow control: a receiver holds at most max_buffered bytes that no completed batch has
 * released; past that, sl_receiver_push blocks its caller, so a TCP receiver stops reading
 * and the kernel's flow control slows the sender. Nothing is dropped. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sl_engine.h"

#define BLOCK_CHUNK (256 * 1024)

void sl__receiver_init(sl_receiver *r, int64_t block_interval, _Atomic uint64_t *received_total)
{
    memset(r, 0, sizeof(*r));
    r->block_interval = block_interval;
    r->received_total = received_total;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->room, NULL);
}

static void block_free(sl_block *b)
{
    if (b) {
        free(b->v.recs);
        sl__arena_free(&b->arena);
        free(b);
    }
}

void sl__receiver_destroy(sl_receiver *r)
{
    block_free(r->cur);
    for (sl_block *b = r->head; b;) {
        sl_block *next = b->next;
        block_free(b);
        b = next;
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->room);
}

static bool full(const sl_instance *ins)
{
    return !ins->rcv.closed && ins->common.max_buffered > 0 &&
           ins->rcv.buffered >= (size_t)ins->common.max_buffered;
}

static size_t block_bytes(const sl_block *b)
{
    return b->arena.bytes + b->v.cap * sizeof(sl_record);
}

/* The rate limit: how many of want records may go in now, after waiting for them (the
 * token bucket of sl_rate.h, with a burst of at most one block interval's worth; Spark's
 * receivers keep up to 1 s). A wait lasts until a quantum of records (1 ms of the rate) may
 * go, so a big push goes in a few records at a time at the rate, and the rate is read again
 * after each wait: a new estimate applies at once. Sleeps in the caller's thread, so a TCP
 * receiver stops reading and the sender is slowed by TCP itself. Returns want when there
 * is no limit or the instance is stopping or closed. */
static size_t rate_take(sl_instance *ins, size_t want)
{
    sl_receiver *r = &ins->rcv;
    int64_t burst = r->block_interval * 1000000;
    for (;;) {
        double rate = sl_instance_rate_limit(ins);
        if (rate <= 0 || atomic_load(&ins->stopping)) {
            return want;
        }
        int64_t wait = 0;
        pthread_mutex_lock(&r->lock);
        size_t k = r->closed ? want
                             : sl__rate_take(&r->rate_next_ns, rate, burst, sl__rate_now_ns(), want,
                                             &wait);
        pthread_mutex_unlock(&r->lock);
        if (k > 0) {
            return k;
        }
        sl__rate_sleep_ns(SL_MIN(wait, 20000000)); /* 20 ms: a new rate is seen soon */
    }
}

/* Copies n records into the current block, waiting for room; they are the records
 * first.. of the log block ending at block_end (0: not logged). @locks takes r->lock */
static int push_some(sl_instance *ins, const sl_record *recs, size_t n, sl_wal_pos block_end,
                     size_t first)
{
    sl_receiver *r = &ins->rcv;
    pthread_mutex_lock(&r->lock);
    while (full(ins)) {
        pthread_cond_wait(&r->room, &r->lock);
    }
    if (!r->cur) {
        r->cur = calloc(1, sizeof(*r->cur));
        if (!r->cur) {
            pthread_mutex_unlock(&r->lock);
            return SL_ERR_NOMEM;
        }
        sl__arena_init(&r->cur->arena, BLOCK_CHUNK);
    }
    sl_block *b = r->cur;
    size_t before = block_bytes(b);
    sl_meta_cache mc = {0};
    int rc = SL_OK;
    size_t i;
    for (i = 0; i < n; i++) {
        sl_record c;
        if (sl__record_copy(&b->arena, &c, &recs[i]) != SL_OK) {
            rc = SL_ERR_NOMEM;
            break;
        }
        c.meta = sl__meta_copy(&b->arena, recs[i].meta, &mc);
        if ((recs[i].meta && !c.meta) || sl__recvec_push(&b->v, &c) != SL_OK) {
            rc = SL_ERR_NOMEM;
            break;
        }
    }
    if (block_end != 0 && i > 0) {
        if (!b->logged) {
            b->logged = true;
            b->from_end = block_end;
            b->from_idx = (uint32_t)first;
        }
        b->to_end = block_end;
        b->to_idx = (uint32_t)(first + i);
    }
    size_t after = block_bytes(b);
    b->bytes = after;
    r->buffered += after - before;
    bool closed = r->closed;
    pthread_mutex_unlock(&r->lock);
    atomic_fetch_add(&ins->records, i);
    atomic_fetch_add(r->received_total, i);
    if (rc == SL_OK && closed) {
        rc = SL_ERR_STATE;
    }
    return rc;
}

/* Under a rate limit the records go in a few at a time (rate_take), so one push may span
 * blocks and batches; it returns once all of them are in. */
static int push_all(sl_instance *ins, const sl_record *recs, size_t n, sl_wal_pos block_end,
                    size_t first)
{
    if (n == 0) {
        return push_some(ins, recs, 0, 0, 0);
    }
    int rc = SL_OK;
    for (size_t done = 0; done < n;) {
        size_t k = rate_take(ins, n - done);
        int e = push_some(ins, recs + done, k, block_end, first + done);
        if (e == SL_ERR_NOMEM) {
            return e;
        }
        if (e != SL_OK) {
            rc = e; /* stopping: the records are still taken */
        }
        done += k;
    }
    return rc;
}

int sl_receiver_push(sl_instance *ins, const sl_record *recs, size_t n)
{
    return push_all(ins, recs, n, 0, 0);
}

int sl__receiver_push_logged(sl_instance *ins, const sl_record *recs, size_t n,
                             sl_wal_pos block_end, size_t first)
{
    sl_receiver *r = &ins->rcv;
    size_t skip = 0;
    if (block_end != 0) {
        pthread_mutex_lock(&r->lock);
        if (block_end < r->resume_end) {
            skip = n;
        } else if (block_end == r->resume_end && r->resume_idx > first) {
            skip = SL_MIN(n, (size_t)r->resume_idx - first);
        }
        r->resume_dropped += skip;
        pthread_mutex_unlock(&r->lock);
    }
    if (skip == n && n > 0) {
        return atomic_load(&ins->stopping) ? SL_ERR_STATE : SL_OK;
    }
    return push_all(ins, recs + skip, n - skip, block_end, first + skip);
}

void sl__receiver_set_wal(sl_instance *ins, sl_wal *wal)
{
    sl_receiver *r = &ins->rcv;
    pthread_mutex_lock(&r->lock);
    r->wal = wal;
    if (wal && r->resume_end > sl__wal_end(wal)) {
        /* The log is behind the checkpoint (deleted or another one): its positions say
         * nothing about the checkpoint's batches. */
        sl_log(SL_LOG_WARN,
               "source '%s': the write-ahead log %s ends before the checkpoint's last batch: "
               "its records are not matched with the checkpoint's batches",
               ins->name, sl__wal_dir(wal));
        r->resume_end = 0;
        r->resume_idx = 0;
        r->next_end = 0;
        r->next_idx = 0;
    }
    pthread_mutex_unlock(&r->lock);
}

bool sl_receiver_wait_room(sl_instance *ins, int64_t timeout_ms)
{
    sl_receiver *r = &ins->rcv;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&r->lock);
    while (full(ins)) {
        if (pthread_cond_timedwait(&r->room, &r->lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    bool ok = !full(ins);
    pthread_mutex_unlock(&r->lock);
    return ok;
}

/* @locks r->lock held */
static void cut_locked(sl_receiver *r)
{
    sl_block *b = r->cur;
    if (!b || b->v.n == 0) {
        return;
    }
    r->cur = NULL;
    if (r->tail) {
        r->tail->next = b;
    } else {
        r->head = b;
    }
    r->tail = b;
}

void sl__receiver_cut(sl_instance *ins)
{
    pthread_mutex_lock(&ins->rcv.lock);
    cut_locked(&ins->rcv);
    pthread_mutex_unlock(&ins->rcv.lock);
}

static void release_bytes(void *arg, size_t bytes)
{
    sl_instance *ins = arg;
    pthread_mutex_lock(&ins->rcv.lock);
    ins->rcv.buffered -= bytes;
    pthread_cond_broadcast(&ins->rcv.room);
    pthread_mutex_unlock(&ins->rcv.lock);
}

/* The definition of a batch of a receiver with a log: the range of log records it holds,
 * from the first block's first record to the last block's end (pushes come in log order).
 * An empty batch holds the empty range at where the previous one ended. @locks r->lock */
static char *range_def_locked(sl_receiver *r, const sl_block *list, uint64_t nrecs)
{
    sl_wal_pos fe = r->next_end, te = r->next_end;
    uint32_t fi = r->next_idx, ti = r->next_idx;
    bool first = true;
    for (const sl_block *b = list; b; b = b->next) {
        if (!b->logged) {
            continue;
        }
        if (first) {
            fe = b->from_end;
            fi = b->from_idx;
            first = false;
        }
        te = b->to_end;
        ti = b->to_idx;
    }
    r->next_end = te;
    r->next_idx = ti;
    char buf[160];
    snprintf(buf, sizeof(buf),
             "{\"wal\":[%" PRIu64 ",%" PRIu32 ",%" PRIu64 ",%" PRIu32 "],\"records\":%" PRIu64 "}",
             fe, fi, te, ti, nrecs);
    return strdup(buf);
}

int sl__receiver_take(sl_instance *ins, int64_t t, sl_dataset **out, char **def)
{
    sl_receiver *r = &ins->rcv;
    *def = NULL;
    pthread_mutex_lock(&r->lock);
    cut_locked(r);
    sl_block *list = r->head;
    r->head = r->tail = NULL;
    if (r->wal) {
        uint64_t nrecs = 0;
        for (sl_block *b = list; b; b = b->next) {
            nrecs += b->v.n;
        }
        *def = range_def_locked(r, list, nrecs);
    }
    pthread_mutex_unlock(&r->lock);

    size_t n = 0;
    for (sl_block *b = list; b; b = b->next) {
        n++;
    }
    sl_dataset *ds = sl__dataset_new(n, t);
    if (!ds) {
        /* Put the blocks back: the next batch takes them. */
        pthread_mutex_lock(&r->lock);
        if (list) {
            sl_block *last = list;
            while (last->next) {
                last = last->next;
            }
            last->next = r->head;
            r->head = list;
            if (!r->tail) {
                r->tail = last;
            }
        }
        pthread_mutex_unlock(&r->lock);
        free(*def);
        *def = NULL;
        return SL_ERR_NOMEM;
    }
    size_t i = 0, bytes = 0;
    for (sl_block *b = list; b; i++) {
        sl_block *next = b->next;
        ds->parts[i].recs = b->v.recs;
        ds->parts[i].n = b->v.n;
        ds->parts[i].arena = b->arena;
        bytes += b->bytes;
        free(b);
        b = next;
    }
    ds->on_free = release_bytes;
    ds->on_free_arg = ins;
    ds->on_free_bytes = bytes;
    *out = ds;
    return SL_OK;
}

void sl__receiver_close(sl_instance *ins)
{
    pthread_mutex_lock(&ins->rcv.lock);
    ins->rcv.closed = true;
    pthread_cond_broadcast(&ins->rcv.room);
    pthread_mutex_unlock(&ins->rcv.lock);
}

/* ==== After a restart: batches read back from the write-ahead log ==== */

/* Parses {"wal":[from_end,from_idx,to_end,to_idx],"records":n}. Returns false when def
 * holds no log range. */
static bool range_parse(const char *def, sl_wal_pos *fe, uint32_t *fi, sl_wal_pos *te, uint32_t *ti,
                        uint64_t *n)
{
    json_t *root = def ? json_loads(def, JSON_DECODE_ANY, NULL) : NULL;
    json_t *w = json_object_get(root, "wal");
    bool ok = json_is_array(w) && json_array_size(w) == 4;
    for (size_t k = 0; ok && k < 4; k++) {
        ok = json_is_integer(json_array_get(w, k)) && json_integer_value(json_array_get(w, k)) >= 0;
    }
    if (ok) {
        *fe = (sl_wal_pos)json_integer_value(json_array_get(w, 0));
        *fi = (uint32_t)json_integer_value(json_array_get(w, 1));
        *te = (sl_wal_pos)json_integer_value(json_array_get(w, 2));
        *ti = (uint32_t)json_integer_value(json_array_get(w, 3));
        json_t *jn = json_object_get(root, "records");
        *n = json_is_integer(jn) ? (uint64_t)json_integer_value(jn) : 0;
    }
    json_decref(root);
    return ok;
}

typedef struct range_read {
    sl_wal_pos fe, te;
    uint32_t fi, ti;
    sl_block *b;
    bool done;
    int err;
} range_read;

/* The records of one replayed block that are in [from, to). Returns 1 past the range. */
static int range_block(void *arg, const sl_record *recs, size_t n, sl_wal_pos end)
{
    range_read *rr = arg;
    if (end < rr->fe) {
        return SL_OK;
    }
    if (end > rr->te) {
        rr->done = true;
        return 1; /* stops the replay */
    }
    size_t lo = end == rr->fe ? rr->fi : 0;
    size_t hi = end == rr->te ? SL_MIN((size_t)rr->ti, n) : n;
    sl_meta_cache mc = {0};
    for (size_t i = lo; i < hi; i++) {
        sl_record c;
        if (sl__record_copy(&rr->b->arena, &c, &recs[i]) != SL_OK) {
            rr->err = SL_ERR_NOMEM;
            return 1;
        }
        c.meta = sl__meta_copy(&rr->b->arena, recs[i].meta, &mc);
        if ((recs[i].meta && !c.meta) || sl__recvec_push(&rr->b->v, &c) != SL_OK) {
            rr->err = SL_ERR_NOMEM;
            return 1;
        }
    }
    if (end == rr->te) {
        rr->done = true;
        return 1;
    }
    return SL_OK;
}

int sl__receiver_replay(sl_instance *ins, int64_t t, const char *def, sl_dataset **out)
{
    sl_receiver *r = &ins->rcv;
    sl_wal_pos fe = 0, te = 0;
    uint32_t fi = 0, ti = 0;
    uint64_t want = 0;
    *out = NULL;
    if (!r->wal || !range_parse(def, &fe, &fi, &te, &ti, &want) || want == 0) {
        *out = sl__dataset_new(0, t);
        return *out ? SL_OK : SL_ERR_NOMEM;
    }
    range_read rr = {.fe = fe, .fi = fi, .te = te, .ti = ti};
    rr.b = calloc(1, sizeof(*rr.b));
    sl_dataset *ds = sl__dataset_new(1, t);
    int rc = rr.b && ds ? SL_OK : SL_ERR_NOMEM;
    if (rc == SL_OK) {
        sl__arena_init(&rr.b->arena, BLOCK_CHUNK);
        /* A block ending at fe lies in fe's segment: its replay starts there. */
        rc = sl__wal_replay(r->wal, SL_WAL_POS(SL_WAL_POS_SEQ(fe), 0), range_block, &rr, NULL);
        if (rc == 1) {
            rc = rr.err;
        }
    }
    if (rc == SL_OK) {
        if (rr.b->v.n != want) {
            sl_instance_error(ins,
                              "batch %" PRId64 ": %zu of its %" PRIu64 " records are in the "
                              "write-ahead log %s",
                              t, rr.b->v.n, want, sl__wal_dir(r->wal));
        }
        ds->parts[0].recs = rr.b->v.recs;
        ds->parts[0].n = rr.b->v.n;
        ds->parts[0].arena = rr.b->arena;
        free(rr.b);
        *out = ds;
        return SL_OK;
    }
    block_free(rr.b);
    sl__dataset_release(ds);
    return rc;
}

void sl__receiver_restore(sl_instance *ins, const char *def)
{
    sl_receiver *r = &ins->rcv;
    sl_wal_pos fe, te;
    uint32_t fi, ti;
    uint64_t n;
    if (!range_parse(def, &fe, &fi, &te, &ti, &n)) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    r->resume_end = r->next_end = te;
    r->resume_idx = r->next_idx = ti;
    pthread_mutex_unlock(&r->lock);
}

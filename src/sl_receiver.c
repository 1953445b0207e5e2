/* sl_receiver.c -- the block generator of receiver sources: records pushed by a receiver
 * thread are copied into the current block; blocks are cut every block interval and at
 * each batch time, and the blocks cut up to a batch time become that batch's partitions.
 *
 * Flow control: a receiver holds at most max_buffered bytes that no completed batch has
 * released; past that, sl_receiver_push blocks its caller, so a TCP receiver stops reading
 * and the kernel's flow control slows the sender. Nothing is dropped. */
#include <errno.h>
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

/* Copies n records into the current block, waiting for room. @locks takes r->lock */
static int push_some(sl_instance *ins, const sl_record *recs, size_t n)
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
int sl_receiver_push(sl_instance *ins, const sl_record *recs, size_t n)
{
    if (n == 0) {
        return push_some(ins, recs, 0);
    }
    int rc = SL_OK;
    for (size_t done = 0; done < n;) {
        size_t k = rate_take(ins, n - done);
        int e = push_some(ins, recs + done, k);
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

int sl__receiver_take(sl_instance *ins, int64_t t, sl_dataset **out)
{
    sl_receiver *r = &ins->rcv;
    pthread_mutex_lock(&r->lock);
    cut_locked(r);
    sl_block *list = r->head;
    r->head = r->tail = NULL;
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

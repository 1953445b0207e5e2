/* sl_pool.c -- the worker pool: a fixed set of threads that run the tasks of one parallel
 * stage at a time, each task claimed with an atomic counter. */
#include <stdlib.h>

#include "sl_engine.h"

struct sl_pool {
    int nthreads;
    pthread_t *threads;
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    uint64_t stage; /* incremented for every stage */
    bool quit;
    sl_task_fn fn;
    void *arg;
    size_t ntasks;
    _Atomic size_t next; /* next task to claim */
    size_t finished;     /* threads done with the current stage */
    _Atomic int err;
};

static void run_tasks(sl_pool *p)
{
    for (;;) {
        size_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->ntasks) {
            return;
        }
        int rc = p->fn(p->arg, t);
        if (rc != SL_OK) {
            int expected = SL_OK;
            atomic_compare_exchange_strong(&p->err, &expected, rc);
        }
    }
}

static void *worker_main(void *arg)
{
    sl_pool *p = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->quit && p->stage == seen) {
            pthread_cond_wait(&p->work, &p->lock);
        }
        if (p->quit) {
            break;
        }
        seen = p->stage;
        pthread_mutex_unlock(&p->lock);
        run_tasks(p);
        pthread_mutex_lock(&p->lock);
        if (++p->finished == (size_t)p->nthreads) {
            pthread_cond_signal(&p->done);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

sl_pool *sl__pool_new(int threads)
{
    sl_pool *p = calloc(1, sizeof(*p));
    if (!p) {
        return NULL;
    }
    p->threads = calloc((size_t)threads, sizeof(*p->threads));
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            break;
        }
        p->nthreads++;
    }
    if (p->nthreads == 0) {
        sl__pool_destroy(p);
        return NULL;
    }
    return p;
}

void sl__pool_destroy(sl_pool *p)
{
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int sl__pool_run(sl_pool *p, size_t ntasks, sl_task_fn fn, void *arg)
{
    if (ntasks == 0) {
        return SL_OK;
    }
    if (ntasks == 1) {
        return fn(arg, 0); /* no hand-off for a single task */
    }
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->ntasks = ntasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->err, SL_OK);
    p->finished = 0;
    p->stage++;
    pthread_cond_broadcast(&p->work);
    while (p->finished < (size_t)p->nthreads) {
        pthread_cond_wait(&p->done, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return atomic_load(&p->err);
}

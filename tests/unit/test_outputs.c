/* test_outputs.c -- the outputs of one batch: sinks write concurrently, each with its own
 * retries; foreach outputs stay on the job thread, in order; a batch completes when every
 * output has returned, a fatal sink stops the context, a stop during a retry leaves the
 * batch pending. Test sinks record when each write started and ended, so that concurrency
 * is checked by overlapping intervals, not by a duration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "support.h"

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ==== A test sink ==== */

#define TSINK_MAX_CALLS 64

typedef struct tsink {
    /* Options. */
    int64_t sleep_ms; /* every call sleeps this long */
    int64_t retries;  /* answer SL_ERR_RETRY this many times first; -1: always */
    int64_t fatal;    /* answer this error to a batch with records (0: none) */

    sl_instance *ins;
    pthread_mutex_t lock;
    bool lock_ok;
    int calls;   /* write calls */
    int written; /* calls that returned SL_OK */
    int64_t start_us[TSINK_MAX_CALLS], end_us[TSINK_MAX_CALLS];
    int64_t times[TSINK_MAX_CALLS]; /* batch time of each call */
    int attempts[TSINK_MAX_CALLS];  /* out->attempt of each call */
    pthread_t thread[TSINK_MAX_CALLS];
    size_t records; /* of the last successful write */
} tsink;

static const sl_option tsink_options[] = {
    {.name = "sleep_ms", .type = SL_OPT_INT, .def = "0", .offset = offsetof(tsink, sleep_ms)},
    {.name = "retries", .type = SL_OPT_INT, .def = "0", .offset = offsetof(tsink, retries)},
    {.name = "fatal", .type = SL_OPT_INT, .def = "0", .offset = offsetof(tsink, fatal)},
    {0},
};

static int tsink_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    tsink *k = data;
    k->ins = ins;
    k->lock_ok = pthread_mutex_init(&k->lock, NULL) == 0;
    return k->lock_ok ? SL_OK : SL_ERR_NOMEM;
}

static int tsink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    tsink *k = data;
    int64_t start = mono_us();
    if (k->sleep_ms > 0) {
        sl__sleep_ms(k->sleep_ms);
    }
    pthread_mutex_lock(&k->lock);
    int i = k->calls++;
    int rc = SL_OK;
    if (k->fatal && sl_dataset_count(out->ds) > 0) {
        rc = (int)k->fatal;
        sl_instance_error(k->ins, "test sink: refused batch %lld", (long long)out->batch_time);
    } else if (k->retries < 0 || i < k->retries) {
        rc = SL_ERR_RETRY;
    }
    if (i < TSINK_MAX_CALLS) {
        k->start_us[i] = start;
        k->end_us[i] = mono_us();
        k->times[i] = out->batch_time;
        k->attempts[i] = out->attempt;
        k->thread[i] = pthread_self();
    }
    if (rc == SL_OK) {
        k->written++;
        k->records = sl_dataset_count(out->ds);
    }
    pthread_mutex_unlock(&k->lock);
    return rc;
}

static void tsink_destroy(void *data)
{
    tsink *k = data;
    if (k->lock_ok) {
        pthread_mutex_destroy(&k->lock);
    }
}

static const sl_connector tsink_connector = {
    .name = "test-sink",
    .description = "records its calls",
    .flags = SL_SINK,
    .options = tsink_options,
    .ctx_size = sizeof(tsink),
    .init = tsink_init,
    .write = tsink_write,
    .destroy = tsink_destroy,
};

/* Adds a test sink reading s; sleep_ms, retries and fatal as the options say. */
static tsink *add_tsink(sl_stream *s, const char *name, int sleep_ms, int retries, int fatal)
{
    char v[3][24], err[256];
    snprintf(v[0], sizeof(v[0]), "%d", sleep_ms);
    snprintf(v[1], sizeof(v[1]), "%d", retries);
    snprintf(v[2], sizeof(v[2]), "%d", fatal);
    sl_options *o = sl_options_new();
    sl_options_set(o, "sleep_ms", v[0]);
    sl_options_set(o, "retries", v[1]);
    sl_options_set(o, "fatal", v[2]);
    int rc = sl_stream_to_connector(s, &tsink_connector, name, o, err, sizeof(err));
    sl_options_destroy(o);
    if (rc != SL_OK) {
        fprintf(stderr, "add_tsink: %s\n", err);
        return NULL;
    }
    for (sl_instance *ins = sl_stream_context(s)->sinks; ins; ins = ins->next) {
        if (strcmp(ins->name, name) == 0) {
            return ins->cctx;
        }
    }
    return NULL;
}

static int tsink_calls(tsink *k)
{
    pthread_mutex_lock(&k->lock);
    int n = k->calls;
    pthread_mutex_unlock(&k->lock);
    return n;
}

/* ==== A source that counts completed batches ==== */

typedef struct csource {
    int64_t records; /* option: records per batch */
    pthread_mutex_t lock;
    bool lock_ok;
    int done; /* on_batch_done calls */
    int64_t done_times[64];
    int failed; /* on_batch_failed calls */
    int64_t failed_times[64];
} csource;

static const sl_option csource_options[] = {
    {.name = "records", .type = SL_OPT_INT, .def = "3", .offset = offsetof(csource, records)},
    {0},
};

static int csource_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    csource *c = data;
    c->lock_ok = pthread_mutex_init(&c->lock, NULL) == 0;
    return c->lock_ok ? SL_OK : SL_ERR_NOMEM;
}

static int csource_next_batch(void *data, int64_t t, sl_batch_input *in)
{
    csource *c = data;
    sl_record recs[16];
    size_t n = (size_t)SL_MIN(c->records, 16);
    for (size_t i = 0; i < n; i++) {
        recs[i] = (sl_record){.value = "x", .value_len = 1};
    }
    sl_batch_input_describe(in, "%zu counted", n);
    return sl_batch_input_add_records(in, recs, n);
}

static void csource_on_batch_done(void *data, int64_t t)
{
    csource *c = data;
    pthread_mutex_lock(&c->lock);
    if (c->done < 64) {
        c->done_times[c->done] = t;
    }
    c->done++;
    pthread_mutex_unlock(&c->lock);
}

static void csource_on_batch_failed(void *data, int64_t t)
{
    csource *c = data;
    pthread_mutex_lock(&c->lock);
    if (c->failed < 64) {
        c->failed_times[c->failed] = t;
    }
    c->failed++;
    pthread_mutex_unlock(&c->lock);
}

static void csource_destroy(void *data)
{
    csource *c = data;
    if (c->lock_ok) {
        pthread_mutex_destroy(&c->lock);
    }
}

static const sl_connector csource_connector = {
    .name = "counted-source",
    .description = "records per batch, completions counted",
    .flags = SL_SOURCE,
    .options = csource_options,
    .ctx_size = sizeof(csource),
    .init = csource_init,
    .next_batch = csource_next_batch,
    .on_batch_done = csource_on_batch_done,
    .on_batch_failed = csource_on_batch_failed,
    .destroy = csource_destroy,
};

static sl_stream *add_csource(sl_context *ctx, csource **out)
{
    char err[256];
    sl_stream *s =
        sl_context_add_source_connector(ctx, &csource_connector, "in", NULL, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "add_csource: %s\n", err);
        return NULL;
    }
    *out = s->source->cctx;
    return s;
}

static bool batch_done(csource *c, int64_t t)
{
    pthread_mutex_lock(&c->lock);
    bool found = false;
    for (int i = 0; i < c->done && i < 64; i++) {
        found = found || c->done_times[i] == t;
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

/* ==== foreach outputs ==== */

typedef struct fe_log {
    pthread_mutex_t lock;
    int order[8]; /* ids of the callbacks, in call order */
    int n;
    pthread_t thread[8];
    int64_t start_us[8], end_us[8];
} fe_log;

typedef struct fe_out {
    fe_log *log;
    int id;
    int sleep_ms;
} fe_out;

static int fe_record(const sl_dataset *ds, int64_t t, void *opaque)
{
    fe_out *f = opaque;
    int64_t start = mono_us();
    if (f->sleep_ms) {
        sl__sleep_ms(f->sleep_ms);
    }
    pthread_mutex_lock(&f->log->lock);
    int i = f->log->n++;
    if (i < 8) {
        f->log->order[i] = f->id;
        f->log->thread[i] = pthread_self();
        f->log->start_us[i] = start;
        f->log->end_us[i] = mono_us();
    }
    pthread_mutex_unlock(&f->log->lock);
    return SL_OK;
}

/* ==== Tests ==== */

/* Two sinks sleeping 300 ms each write one batch at the same time: their writes overlap,
 * each writes once, and the batch takes about one write, not two. */
static void test_two_sinks_write_concurrently(void)
{
    sl_context *ctx = ts_context(100, 2);
    csource *src = NULL;
    sl_stream *in = add_csource(ctx, &src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    tsink *a = add_tsink(in, "a", 300, 0, 0);
    tsink *b = add_tsink(in, "b", 300, 0, 0);
    CU_ASSERT_FATAL(a && b);
    sl_batch_info info;
    CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(a->calls, 1);
    CU_ASSERT_EQUAL(b->calls, 1);
    CU_ASSERT_EQUAL(a->records, 3);
    CU_ASSERT_EQUAL(b->records, 3);
    /* Overlap: each started before the other ended. */
    CU_ASSERT(a->start_us[0] < b->end_us[0]);
    CU_ASSERT(b->start_us[0] < a->end_us[0]);
    CU_ASSERT_FALSE(pthread_equal(a->thread[0], b->thread[0]));
    CU_ASSERT_EQUAL(info.outputs_total, 2);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 2);
    CU_ASSERT_STRING_EQUAL(info.error, "");
    CU_ASSERT(info.processing_time >= 300);
    CU_ASSERT_TRUE(batch_done(src, 1000));
    sl_context_destroy(ctx);
}

/* A batch with one sink writes it on the thread that runs the batch: no thread is made. */
static void test_single_sink_writes_on_the_job_thread(void)
{
    sl_context *ctx = ts_context(100, 2);
    csource *src = NULL;
    sl_stream *in = add_csource(ctx, &src);
    tsink *a = add_tsink(in, "only", 0, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, 1000, NULL), SL_OK);
    CU_ASSERT_EQUAL_FATAL(a->calls, 1);
    CU_ASSERT_TRUE(pthread_equal(a->thread[0], pthread_self()));
    sl_context_destroy(ctx);
}

/* foreach outputs run on the job thread one after the other, in the order they were added,
 * while the sinks write on their own threads. */
static void test_foreach_outputs_stay_on_the_job_thread_in_order(void)
{
    sl_context *ctx = ts_context(100, 2);
    csource *src = NULL;
    sl_stream *in = add_csource(ctx, &src);
    fe_log log = {.n = 0};
    pthread_mutex_init(&log.lock, NULL);
    fe_out f1 = {.log = &log, .id = 1, .sleep_ms = 150};
    fe_out f2 = {.log = &log, .id = 2, .sleep_ms = 150};
    CU_ASSERT_EQUAL(sl_stream_foreach_batch(in, fe_record, &f1), SL_OK);
    tsink *a = add_tsink(in, "a", 300, 0, 0);
    CU_ASSERT_EQUAL(sl_stream_foreach_batch(in, fe_record, &f2), SL_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    sl_batch_info info;
    CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL_FATAL(log.n, 2);
    CU_ASSERT_EQUAL(log.order[0], 1);
    CU_ASSERT_EQUAL(log.order[1], 2);
    CU_ASSERT_TRUE(pthread_equal(log.thread[0], pthread_self()));
    CU_ASSERT_TRUE(pthread_equal(log.thread[1], pthread_self()));
    CU_ASSERT(log.end_us[0] <= log.start_us[1]); /* one after the other */
    CU_ASSERT_EQUAL_FATAL(a->calls, 1);
    CU_ASSERT_FALSE(pthread_equal(a->thread[0], pthread_self()));
    CU_ASSERT(a->start_us[0] < log.end_us[0]); /* the sink wrote meanwhile */
    CU_ASSERT_EQUAL(info.outputs_succeeded, 3);
    pthread_mutex_destroy(&log.lock);
    sl_context_destroy(ctx);
}

/* A sink answering "retry" twice holds the batch while the other sink writes it once and
 * is not called again; the batch completes after the third attempt succeeds. */
static void test_retrying_sink_holds_the_batch_not_the_other_sink(void)
{
    sl_context *ctx = ts_context(100, 2);
    csource *src = NULL;
    sl_stream *in = add_csource(ctx, &src);
    tsink *down = add_tsink(in, "down", 0, 2, 0);
    tsink *up = add_tsink(in, "up", 0, 0, 0);
    CU_ASSERT_FATAL(down && up);
    sl_batch_info info;
    CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL_FATAL(down->calls, 3);
    CU_ASSERT_EQUAL(down->written, 1);
    CU_ASSERT_EQUAL(down->attempts[0], 0);
    CU_ASSERT_EQUAL(down->attempts[2], 2);
    CU_ASSERT_EQUAL(up->calls, 1);
    CU_ASSERT_EQUAL(up->written, 1);
    CU_ASSERT_EQUAL(up->records, 3);
    CU_ASSERT_EQUAL(down->records, 3);
    /* The other sink was done before the down one's last attempt began (backoff 100 + 200
     * ms): it did not wait for it. */
    CU_ASSERT(up->end_us[0] < down->start_us[2]);
    /* The batch completed after the retries (backoff 100 + 200 ms), and completed fully. */
    CU_ASSERT(info.processing_time >= 300);
    CU_ASSERT_EQUAL(info.outputs_total, 2);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 2);
    CU_ASSERT_STRING_EQUAL(info.error, "");
    CU_ASSERT_TRUE(batch_done(src, 1000));
    /* The next batch calls each sink once more, nothing else. */
    CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, 1100, &info), SL_OK);
    CU_ASSERT_EQUAL(down->calls, 4);
    CU_ASSERT_EQUAL(up->calls, 2);
    CU_ASSERT_EQUAL(down->times[3], 1100);
    CU_ASSERT_EQUAL(up->times[1], 1100);
    sl_context_destroy(ctx);
}

/* A fatal sink stops the running context with SL_ERR_FATAL; the other sink still wrote the
 * batch; the batch is not reported done to the source. */
static void test_fatal_sink_stops_the_context(void)
{
    sl_context *ctx = ts_context(50, 2);
    csource *src = NULL;
    sl_stream *in = add_csource(ctx, &src);
    tsink *bad = add_tsink(in, "bad", 0, 0, SL_ERR_FATAL);
    tsink *good = add_tsink(in, "good", 100, 0, 0);
    CU_ASSERT_FATAL(bad && good);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    CU_ASSERT_EQUAL(sl_context_await_termination_or_timeout(ctx, 10000), SL_ERR_FATAL);
    CU_ASSERT(tsink_calls(bad) >= 1);
    pthread_mutex_lock(&good->lock);
    CU_ASSERT(good->written >= 1);
    int64_t t = good->calls > 0 ? good->times[0] : 0;
    pthread_mutex_unlock(&good->lock);
    CU_ASSERT_FALSE(batch_done(src, t));
    sl_batch_info infos[4];
    size_t n = sl_context_recent_batches(ctx, infos, 4);
    CU_ASSERT(n >= 1);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (infos[i].batch_time == t) {
            found = true;
            CU_ASSERT_EQUAL(infos[i].outputs_total, 2);
            CU_ASSERT_EQUAL(infos[i].outputs_succeeded, 1);
            CU_ASSERT_PTR_NOT_NULL(strstr(infos[i].error, "bad"));
        }
    }
    CU_ASSERT_TRUE(found);
    sl_context_destroy(ctx);
}

/* A context of 2 workers and 100 ms batches checkpointing into a new directory (dir, a
 * mkdtemp template); NULL on failure. */
static sl_context *ckpt_context(char *dir)
{
    char err[256];
    if (!mkdtemp(dir)) {
        return NULL;
    }
    sl_context_conf conf = {
        .name = "outputs", .batch_interval_ms = 100, .workers = 2, .checkpoint_dir = dir};
    return sl_context_new(&conf, err, sizeof(err));
}

/* Destroys ctx and removes its checkpoint directory. */
static void ckpt_context_destroy(sl_context *ctx, const char *dir)
{
    sl_context_destroy(ctx);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* True when the checkpoint in dir has batch t pending, and not completed. */
static bool ckpt_pending(sl_context *ctx, const char *dir, int64_t t)
{
    char err[256];
    char *graph = sl__graph_describe(ctx);
    const char *names[] = {"in"};
    sl_checkpoint *ck = sl__ckpt_new(dir, graph, 100, 1, names, err, sizeof(err));
    free(graph);
    bool found = false, pending = false;
    if (ck && sl__ckpt_load(ck, &found, err, sizeof(err)) == SL_OK && found &&
        ck->last_completed < t) {
        for (size_t i = 0; i < ck->npending; i++) {
            pending = pending || ck->pending[i].time == t;
        }
    }
    sl__ckpt_destroy(ck);
    return pending;
}

static int fe_fail(const sl_dataset *ds, int64_t t, void *opaque)
{
    return sl_dataset_count(ds) > 0 ? *(int *)opaque : SL_OK;
}

/* An output that fails with an error other than RETRY (a sink's I/O error, a foreach
 * callback's own error) fails the batch as Spark fails its job: the context stops with that
 * error, and the batch stays pending in the checkpoint and unacknowledged at the source, to
 * run again after a restart, instead of being lost. No batch runs after it: the failing sink
 * writes for longer than the batch interval, so the next batch is always queued when it
 * fails (the job thread used to run that batch before the stop took effect). */
static void test_failed_output_leaves_the_batch_pending(void)
{
    for (int variant = 0; variant < 2; variant++) {
        char dir[] = "/tmp/sl_outputs_XXXXXX";
        sl_context *ctx = ckpt_context(dir);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
        csource *src = NULL;
        sl_stream *in = add_csource(ctx, &src);
        tsink *up = add_tsink(in, "up", 0, 0, 0);
        tsink *bad = NULL;
        int fe_rc = SL_ERR_INVAL;
        if (variant == 0) {
            bad = add_tsink(in, "bad", 150, 0, SL_ERR_IO);
            CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
        } else {
            CU_ASSERT_EQUAL_FATAL(sl_stream_foreach_batch(in, fe_fail, &fe_rc), SL_OK);
        }
        CU_ASSERT_PTR_NOT_NULL_FATAL(up);
        CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
        int rc = sl_context_await_termination_or_timeout(ctx, 10000);
        CU_ASSERT_EQUAL(rc, variant == 0 ? SL_ERR_IO : SL_ERR_INVAL);
        if (rc == SL_ERR_RETRY) {
            sl_context_stop(ctx, false);
        }
        pthread_mutex_lock(&up->lock);
        int64_t t = up->calls > 0 ? up->times[0] : 0;
        int up_calls = up->calls;
        pthread_mutex_unlock(&up->lock);
        CU_ASSERT(t > 0);
        if (bad) {
            CU_ASSERT_EQUAL(tsink_calls(bad), 1); /* not retried, no next batch */
            CU_ASSERT_EQUAL(up_calls, 1);
        }
        CU_ASSERT_FALSE(batch_done(src, t));
        CU_ASSERT_TRUE(ckpt_pending(ctx, dir, t));
        ckpt_context_destroy(ctx, dir);
    }
}

/* A batch whose output fails reaches its sources through the connector interface:
 * on_batch_failed, not on_batch_done; a batch that succeeds, on_batch_done only. The error
 * the sink reported with sl_instance_error during its write is the batch's error. */
static void test_failed_batch_reaches_the_source_by_on_batch_failed(void)
{
    sl_context *ctx = ts_context(100, 2);
    csource *src = NULL;
    sl_stream *in = add_csource(ctx, &src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    int fe_rc = SL_OK;
    CU_ASSERT_EQUAL_FATAL(sl_stream_foreach_batch(in, fe_fail, &fe_rc), SL_OK);
    tsink *bad = add_tsink(in, "bad", 0, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);

    sl_batch_info info;
    CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 2);
    CU_ASSERT_TRUE(batch_done(src, 1000));
    CU_ASSERT_EQUAL(src->failed, 0);

    bad->fatal = SL_ERR_IO; /* the next batch fails in the sink */
    CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, 1100, &info), SL_OK);
    CU_ASSERT_EQUAL(info.outputs_total, 2);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(info.error, "bad: test sink: refused batch 1100"));
    CU_ASSERT_FALSE(batch_done(src, 1100));
    CU_ASSERT_EQUAL(src->done, 1);
    CU_ASSERT_EQUAL_FATAL(src->failed, 1);
    CU_ASSERT_EQUAL(src->failed_times[0], 1100);
    sl_context_destroy(ctx);
}

/* A stop without waiting while two sinks retry: both give up (the stop returns), the sink
 * that worked wrote once, and the batch stays pending in the checkpoint, to run again after
 * a restart. */
static void test_stop_during_retry_leaves_the_batch_pending(void)
{
    char dir[] = "/tmp/sl_outputs_XXXXXX";
    sl_context *ctx = ckpt_context(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    csource *src = NULL;
    sl_stream *in = add_csource(ctx, &src);
    tsink *d1 = add_tsink(in, "down1", 0, -1, 0);
    tsink *d2 = add_tsink(in, "down2", 0, -1, 0);
    tsink *up = add_tsink(in, "up", 0, 0, 0);
    CU_ASSERT_FATAL(d1 && d2 && up);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    /* Wait until both down sinks have retried the first batch at least once. */
    for (int i = 0; i < 200 && (tsink_calls(d1) < 2 || tsink_calls(d2) < 2); i++) {
        usleep(20 * 1000);
    }
    CU_ASSERT_FATAL(tsink_calls(d1) >= 2 && tsink_calls(d2) >= 2);
    int64_t t0 = mono_us();
    sl_context_stop(ctx, false);
    int64_t stop_us = mono_us() - t0;
    int64_t t = d1->times[0];             /* the threads that wrote it are joined */
    CU_ASSERT(stop_us < 5 * 1000 * 1000); /* every retry loop observed the stop */
    int c1 = tsink_calls(d1), c2 = tsink_calls(d2);
    CU_ASSERT_EQUAL(d1->times[c1 - 1], t);
    CU_ASSERT_EQUAL(d2->times[c2 - 1], t);
    CU_ASSERT_EQUAL(d1->written, 0);
    CU_ASSERT_EQUAL(d2->written, 0);
    CU_ASSERT_EQUAL(up->written, 1); /* written once, not again for every retry */
    CU_ASSERT_EQUAL(up->calls, 1);
    CU_ASSERT_EQUAL(up->times[0], t);
    CU_ASSERT_FALSE(batch_done(src, t));
    usleep(200 * 1000);
    CU_ASSERT_EQUAL(tsink_calls(d1), c1); /* nothing runs after the stop */
    CU_ASSERT_EQUAL(tsink_calls(d2), c2);

    /* The checkpoint on disk has t pending, not completed. */
    CU_ASSERT_TRUE(ckpt_pending(ctx, dir, t));
    ckpt_context_destroy(ctx, dir);
}

static void *graceful_stop_main(void *arg)
{
    sl_context_stop(arg, true);
    return NULL;
}

/* Issue 15: a graceful stop is bounded. With a sink that retries forever (a database that
 * is down), a graceful stop used to wait for ever; past stop_timeout (1s here) the retrying
 * output gives up, the stop returns, the context ends with SL_ERR_TIMEOUT and the batch
 * stays pending in the checkpoint, to run again after a restart. */
static void test_graceful_stop_is_bounded_by_stop_timeout(void)
{
    char dir[] = "/tmp/sl_outputs_XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char err[256];
    sl_context_conf conf = {.name = "outputs",
                            .batch_interval_ms = 100,
                            .workers = 2,
                            .checkpoint_dir = dir,
                            .stop_timeout_ms = 1000};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    csource *src = NULL;
    sl_stream *in = add_csource(ctx, &src);
    tsink *down = add_tsink(in, "down", 0, -1, 0);
    CU_ASSERT_FATAL(in && down);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    for (int i = 0; i < 200 && tsink_calls(down) < 2; i++) {
        usleep(20 * 1000);
    }
    CU_ASSERT_FATAL(tsink_calls(down) >= 2);
    pthread_mutex_lock(&down->lock);
    int64_t t = down->times[0];
    pthread_mutex_unlock(&down->lock);

    int64_t t0 = mono_us();
    pthread_t stopper;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&stopper, NULL, graceful_stop_main, ctx), 0);
    int rc = sl_context_await_termination_or_timeout(ctx, 10000);
    int64_t stop_us = mono_us() - t0;
    if (rc == SL_ERR_RETRY) {
        sl_context_stop(ctx, false); /* unbounded: unblock the stopper, fail below */
    }
    pthread_join(stopper, NULL);
    CU_ASSERT_EQUAL(rc, SL_ERR_TIMEOUT);
    CU_ASSERT(stop_us >= 900 * 1000);     /* it did wait for the batch */
    CU_ASSERT(stop_us < 5 * 1000 * 1000); /* and not for ever */
    CU_ASSERT_EQUAL(down->written, 0);
    CU_ASSERT_FALSE(batch_done(src, t));
    CU_ASSERT_TRUE(ckpt_pending(ctx, dir, t));
    ckpt_context_destroy(ctx, dir);
}

/* Batches run one at a time: with sinks slower than the batch interval, the next batch
 * starts after the previous one ended, even though its sinks write concurrently. */
static void test_next_batch_waits_for_every_sink(void)
{
    sl_context *ctx = ts_context(50, 2);
    csource *src = NULL;
    sl_stream *in = add_csource(ctx, &src);
    tsink *a = add_tsink(in, "a", 120, 0, 0);
    tsink *b = add_tsink(in, "b", 60, 0, 0);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    for (int i = 0; i < 200 && tsink_calls(a) < 4; i++) {
        usleep(20 * 1000);
    }
    sl_context_stop(ctx, false);
    CU_ASSERT_FATAL(a->calls >= 4);
    int n = SL_MIN(SL_MIN(a->calls, b->calls), TSINK_MAX_CALLS);
    for (int i = 1; i < n; i++) {
        CU_ASSERT_EQUAL(a->times[i], b->times[i]);
        /* Batch i began after both writes of batch i - 1 ended. */
        CU_ASSERT(a->start_us[i] >= a->end_us[i - 1]);
        CU_ASSERT(a->start_us[i] >= b->end_us[i - 1]);
        CU_ASSERT(b->start_us[i] >= a->end_us[i - 1]);
    }
    sl_batch_info infos[8];
    size_t k = sl_context_recent_batches(ctx, infos, 8);
    for (size_t i = 0; i + 1 < k; i++) {
        CU_ASSERT(infos[i].processing_start >= infos[i + 1].processing_end);
    }
    sl_context_destroy(ctx);
}

void sl_test_register(void)
{
    SL_SUITE("outputs", SL_TEST(two_sinks_write_concurrently),
             SL_TEST(single_sink_writes_on_the_job_thread),
             SL_TEST(foreach_outputs_stay_on_the_job_thread_in_order),
             SL_TEST(retrying_sink_holds_the_batch_not_the_other_sink),
             SL_TEST(fatal_sink_stops_the_context), SL_TEST(failed_output_leaves_the_batch_pending),
             SL_TEST(stop_during_retry_leaves_the_batch_pending),
             SL_TEST(graceful_stop_is_bounded_by_stop_timeout),
             SL_TEST(next_batch_waits_for_every_sink),
             SL_TEST(failed_batch_reaches_the_source_by_on_batch_failed));
}

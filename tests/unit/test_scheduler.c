/* test_scheduler.c -- the timer and job threads, receivers with flow control, graceful and
 * immediate stops, batch infos. Real threads, short batch intervals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "support.h"

/* A receiver that pushes `total` numbered records as fast as it may, in pushes of 100. */
typedef struct counter_rcv {
    sl_instance *ins;
    int64_t total;
    _Atomic int64_t pushed;
    int64_t record_size;
    pthread_t thread;
    _Atomic bool quit;
} counter_rcv;

static counter_rcv *last_rcv;

static const sl_option counter_options[] = {
    {.name = "total", .type = SL_OPT_INT, .def = "1000", .offset = offsetof(counter_rcv, total)},
    {.name = "record_size",
     .type = SL_OPT_SIZE,
     .def = "16",
     .offset = offsetof(counter_rcv, record_size)},
    {0},
};

static int counter_init(sl_instance *ins, void *ctx, char *errstr, size_t errsize)
{
    counter_rcv *c = ctx;
    c->ins = ins;
    last_rcv = c;
    return SL_OK;
}

static void *counter_main(void *arg)
{
    counter_rcv *c = arg;
    char *buf = calloc(1, (size_t)c->record_size);
    sl_record recs[100];
    while (!atomic_load(&c->quit) && atomic_load(&c->pushed) < c->total) {
        int64_t n = SL_MIN(100, c->total - atomic_load(&c->pushed));
        for (int64_t i = 0; i < n; i++) {
            recs[i] = (sl_record){.value = buf, .value_len = (uint32_t)c->record_size};
            sl_record_set_int(&recs[i], 1);
        }
        sl_receiver_push(c->ins, recs, (size_t)n);
        atomic_fetch_add(&c->pushed, n);
    }
    free(buf);
    return NULL;
}

static int counter_start(void *ctx, char *errstr, size_t errsize)
{
    counter_rcv *c = ctx;
    return pthread_create(&c->thread, NULL, counter_main, c) == 0 ? SL_OK : SL_ERR_IO;
}

static void counter_stop(void *ctx)
{
    counter_rcv *c = ctx;
    atomic_store(&c->quit, true);
    pthread_join(c->thread, NULL);
}

static const sl_connector counter_connector = {
    .name = "counter",
    .flags = SL_SOURCE | SL_RECEIVER,
    .options = counter_options,
    .ctx_size = sizeof(counter_rcv),
    .init = counter_init,
    .start = counter_start,
    .stop = counter_stop,
};

typedef struct totals {
    _Atomic int64_t records;
    _Atomic int batches;
    int delay_ms;
} totals;

static int count_batch(const sl_dataset *ds, int64_t t, void *opaque)
{
    totals *tt = opaque;
    atomic_fetch_add(&tt->records, (int64_t)sl_dataset_count(ds));
    atomic_fetch_add(&tt->batches, 1);
    if (tt->delay_ms) {
        sl__sleep_ms(tt->delay_ms);
    }
    return SL_OK;
}

static sl_stream *add_counter(sl_context *ctx, const char *total, const char *max_buffered)
{
    sl_options *o = sl_options_new();
    sl_options_set(o, "total", total);
    if (max_buffered) {
        sl_options_set(o, "max_buffered", max_buffered);
    }
    char err[256];
    sl_stream *s =
        sl_context_add_source_connector(ctx, &counter_connector, "counter", o, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "add_counter: %s\n", err);
    }
    sl_options_destroy(o);
    return s;
}

/* Everything a receiver pushed before a graceful stop is processed. */
static void test_graceful_stop_processes_everything(void)
{
    sl_context *ctx = ts_context(50, 2);
    sl_stream *in = add_counter(ctx, "200000", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    totals t = {0};
    sl_stream_foreach_batch(in, count_batch, &t);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    while (atomic_load(&last_rcv->pushed) < 200000) {
        sl__sleep_ms(10);
    }
    sl_context_stop(ctx, true);
    CU_ASSERT_EQUAL(sl_context_await_termination(ctx), SL_OK);
    CU_ASSERT_EQUAL(atomic_load(&t.records), 200000);
    sl_context_stats st;
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.records_received, 200000);
    CU_ASSERT_EQUAL(st.records_processed, 200000);
    CU_ASSERT(st.batches_completed >= 1);
    sl_context_destroy(ctx);
}

/* A slow output: the receiver may hold max_buffered bytes, then it is held back; nothing
 * is dropped and batches queue up as scheduling delay. */
static void test_flow_control_bounds_buffer(void)
{
    sl_context *ctx = ts_context(50, 1);
    sl_stream *in = add_counter(ctx, "1000000", "64KiB");
    totals t = {.delay_ms = 100};
    sl_stream_foreach_batch(in, count_batch, &t);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    sl_instance *ins = ctx->sources;
    size_t peak = 0;
    for (int i = 0; i < 30; i++) {
        sl__sleep_ms(20);
        pthread_mutex_lock(&ins->rcv.lock);
        peak = SL_MAX(peak, ins->rcv.buffered);
        pthread_mutex_unlock(&ins->rcv.lock);
    }
    /* The receiver is held back long before it pushed everything. */
    CU_ASSERT(atomic_load(&last_rcv->pushed) < 1000000);
    /* One push may overshoot the limit by at most a push and a chunk. */
    CU_ASSERT(peak < 64 * 1024 + 512 * 1024);
    sl_batch_info infos[64];
    size_t n = sl_context_recent_batches(ctx, infos, 64);
    CU_ASSERT(n >= 2);
    bool delayed = false;
    for (size_t i = 0; i < n; i++) {
        delayed |= infos[i].scheduling_delay >= 40;
        CU_ASSERT(infos[i].processing_time >= 100);
        CU_ASSERT_EQUAL(infos[i].total_delay, infos[i].processing_end - infos[i].batch_time);
    }
    CU_ASSERT_TRUE(delayed); /* 100 ms batches every 50 ms queue up */
    /* The status sees the running batch first, then waiting ones. */
    sl_batch_info pending[16];
    size_t np = sl_context_pending_batches(ctx, pending, 16);
    CU_ASSERT(np >= 1);
    for (size_t i = 1; i < np; i++) {
        CU_ASSERT(pending[i].batch_time > pending[i - 1].batch_time);
        CU_ASSERT_EQUAL(pending[i].processing_start, 0);
    }
    sl_instance_info ii[4];
    CU_ASSERT_EQUAL(sl_context_instances(ctx, ii, 4), 1);
    CU_ASSERT_STRING_EQUAL(ii[0].name, "counter");
    CU_ASSERT_STRING_EQUAL(ii[0].type, "counter");
    CU_ASSERT_EQUAL(ii[0].role, SL_SOURCE);
    CU_ASSERT(ii[0].records > 0);
    sl_context_stop(ctx, false);
    sl_context_destroy(ctx);
}

static void test_batch_times_are_aligned(void)
{
    sl_context *ctx = ts_context(100, 1);
    sl_stream *in = add_counter(ctx, "10", NULL);
    totals t = {0};
    sl_stream_foreach_batch(in, count_batch, &t);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    sl__sleep_ms(550);
    sl_context_stop(ctx, true);
    sl_context_await_termination(ctx);
    sl_batch_info infos[16];
    size_t n = sl_context_recent_batches(ctx, infos, 16);
    CU_ASSERT(n >= 4);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(infos[i].batch_time % 100, 0);
        if (i + 1 < n) {
            CU_ASSERT_EQUAL(infos[i].batch_time - infos[i + 1].batch_time, 100);
        }
        /* The newest is the stop's last batch: generated at once, before its time. */
        CU_ASSERT(i == 0 || infos[i].submission_time >= infos[i].batch_time);
        CU_ASSERT_STRING_EQUAL(infos[i].inputs[0].name, "counter");
    }
    CU_ASSERT_EQUAL(atomic_load(&t.records), 10);
    sl_context_destroy(ctx);
}

/* Windows end at multiples of their slide in wall-clock time, so that instances of one
 * pipeline started at different moments cut the same windows. */
static void test_windows_are_aligned_to_the_clock(void)
{
    for (int run = 0; run < 2; run++) {
        sl_context *ctx = ts_context(100, 1);
        sl_stream *in = add_counter(ctx, "10", NULL);
        sl_stream *w = sl_stream_window(in, 700, 700);
        totals t = {0};
        CU_ASSERT_PTR_NOT_NULL_FATAL(w);
        sl_stream_foreach_batch(w, count_batch, &t);
        CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
        CU_ASSERT_EQUAL(ctx->zero_time % 700, 0);
        CU_ASSERT_EQUAL(ctx->first_batch % 100, 0);
        CU_ASSERT(ctx->first_batch > ctx->start_time);
        CU_ASSERT(ctx->first_batch <= ctx->start_time + 100);
        sl__sleep_ms(250 + run * 130); /* the second run starts at another phase */
        sl_context_stop(ctx, false);
        sl_context_await_termination(ctx);
        sl_context_destroy(ctx);
    }
}

static void test_request_stop_from_signal_path(void)
{
    sl_context *ctx = ts_context(50, 1);
    sl_stream *in = add_counter(ctx, "100", NULL);
    totals t = {0};
    sl_stream_foreach_batch(in, count_batch, &t);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    sl__sleep_ms(120);
    sl_context_request_stop(ctx);
    CU_ASSERT_EQUAL(sl_context_await_termination_or_timeout(ctx, 5000), SL_OK);
    CU_ASSERT_EQUAL(atomic_load(&t.records), 100);
    sl_context_destroy(ctx);
}

/* max_rate holds a receiver to its rate: 2000 records at 4000/s take about half a second
 * (minus the burst of one block interval). */
static void test_max_rate_limits_receiver(void)
{
    sl_context *ctx = ts_context(100, 1);
    sl_options *o = sl_options_new();
    sl_options_set(o, "total", "2000");
    sl_options_set(o, "max_rate", "4000");
    char err[256];
    sl_stream *in =
        sl_context_add_source_connector(ctx, &counter_connector, "counter", o, err, sizeof(err));
    sl_options_destroy(o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    totals t = {0};
    sl_stream_foreach_batch(in, count_batch, &t);
    int64_t start = sl__mono_ns();
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    while (atomic_load(&last_rcv->pushed) < 2000 && sl__mono_ns() - start < 5000000000LL) {
        sl__sleep_ms(5);
    }
    double secs = (double)(sl__mono_ns() - start) / 1e9;
    CU_ASSERT(secs >= 0.25);
    CU_ASSERT(secs < 2.0);
    sl_context_stop(ctx, true);
    sl_context_await_termination(ctx);
    CU_ASSERT_EQUAL(atomic_load(&t.records), 2000);
    sl_context_destroy(ctx);
}

/* An output whose cost is 50 us per record: capacity 20000 records/s. */
static int costly_output(const sl_dataset *ds, int64_t t, void *opaque)
{
    totals *tt = opaque;
    size_t n = sl_dataset_count(ds);
    atomic_fetch_add(&tt->records, (int64_t)n);
    atomic_fetch_add(&tt->batches, 1);
    sl__sleep_ms((int64_t)n / 20);
    return SL_OK;
}

/* A receiver that could push millions of records per second, with backpressure: the
 * estimated rate settles near the capacity and batches keep up. */
static void test_backpressure_settles_at_capacity(void)
{
    sl_context *ctx = ts_context(200, 1);
    sl_options *o = sl_options_new();
    sl_options_set(o, "total", "100000000");
    char err[256];
    sl_stream *in =
        sl_context_add_source_connector(ctx, &counter_connector, "counter", o, err, sizeof(err));
    sl_options_destroy(o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    totals t = {0};
    sl_stream_foreach_batch(in, costly_output, &t);
    sl_backpressure_conf bp;
    sl_backpressure_defaults(&bp);
    bp.enabled = true;
    bp.initial_rate = 5000;
    CU_ASSERT_EQUAL(sl_context_set_backpressure(ctx, &bp, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    sl__sleep_ms(5000);
    sl_instance_info ii;
    sl_context_instances(ctx, &ii, 1);
    sl_batch_info infos[5];
    size_t n = sl_context_recent_batches(ctx, infos, 5);
    sl_context_stop(ctx, false);
    CU_ASSERT(ii.estimated_rate > 14000 && ii.estimated_rate < 26000);
    CU_ASSERT_DOUBLE_EQUAL(ii.rate_limit, ii.estimated_rate, 1e-9);
    CU_ASSERT_EQUAL(n, 5);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT(infos[i].scheduling_delay < 400); /* under 2 batch intervals */
        CU_ASSERT(infos[i].inputs[0].rate > 0);
    }
    /* Set after start: refused. */
    CU_ASSERT_EQUAL(sl_context_set_backpressure(ctx, &bp, err, sizeof(err)), SL_ERR_STATE);
    bp.min_rate = 0;
    sl_context_destroy(ctx);
    sl_context *c2 = ts_context(200, 1);
    CU_ASSERT_EQUAL(sl_context_set_backpressure(c2, &bp, err, sizeof(err)), SL_ERR_INVAL);
    sl_context_destroy(c2);
}

static int fail_fatally(const sl_dataset *ds, int64_t t, void *opaque)
{
    return sl_dataset_count(ds) ? SL_ERR_FATAL : SL_OK;
}

/* An output that cannot recover stops the context, and await says why. */
static void test_fatal_output_stops_context(void)
{
    sl_context *ctx = ts_context(50, 1);
    sl_stream *in = add_counter(ctx, "10", NULL);
    sl_stream_foreach_batch(in, fail_fatally, NULL);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    CU_ASSERT_EQUAL(sl_context_await_termination_or_timeout(ctx, 5000), SL_ERR_FATAL);
    sl_context_destroy(ctx);
}

/* A graceful stop does not wait for the next batch time (3 s away here): the last batch
 * runs at once with what the sources hold, so the stop takes well under a second. */
static void test_graceful_stop_does_not_wait_for_batch_time(void)
{
    sl_context *ctx = ts_context(3000, 1);
    sl_stream *in = add_counter(ctx, "10", NULL);
    totals t = {0};
    sl_stream_foreach_batch(in, count_batch, &t);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    sl__sleep_ms(200);
    int64_t start = sl__mono_ms();
    sl_context_stop(ctx, true);
    CU_ASSERT_EQUAL(sl_context_await_termination(ctx), SL_OK);
    CU_ASSERT(sl__mono_ms() - start < 1000);
    CU_ASSERT_EQUAL(atomic_load(&t.records), 10);
    sl_batch_info info;
    CU_ASSERT_EQUAL_FATAL(sl_context_recent_batches(ctx, &info, 1), 1);
    CU_ASSERT_EQUAL(info.batch_time % 3000, 0);
    CU_ASSERT(info.total_delay >= 0);
    sl_context_destroy(ctx);
}

static void test_destroy_without_start(void)
{
    sl_context *ctx = ts_context(50, 2);
    add_counter(ctx, "100", NULL);
    sl_context_destroy(ctx);
    sl_context_destroy(NULL);
    CU_PASS("destroyed");
}

void sl_test_register(void)
{
    SL_SUITE("scheduler", SL_TEST(graceful_stop_processes_everything),
             SL_TEST(flow_control_bounds_buffer), SL_TEST(batch_times_are_aligned),
             SL_TEST(windows_are_aligned_to_the_clock), SL_TEST(request_stop_from_signal_path),
             SL_TEST(max_rate_limits_receiver), SL_TEST(fatal_output_stops_context),
             SL_TEST(backpressure_settles_at_capacity), SL_TEST(destroy_without_start),
             SL_TEST(graceful_stop_does_not_wait_for_batch_time));
}

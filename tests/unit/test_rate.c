/* test_rate.c -- the PID rate estimator against sequences computed by hand from Spark's
 * formula (SEMANTICS.md); the receivers' token bucket, alone and in sl_receiver_push, on a
 * simulated clock (no test here depends on how fast the machine is). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "sl_rate.h"

#define EPS 1e-9

static void test_first_call_sets_starting_point(void)
{
    sl_pid p;
    sl__pid_init(&p, 1000, 1.0, 0.2, 0.0, 100);
    double rate = -1;
    /* 1000 records in 500 ms: processing rate 2000/s; the first call returns nothing. */
    CU_ASSERT_FALSE(sl__pid_compute(&p, 10000, 1000, 500, 0, &rate));
    CU_ASSERT_DOUBLE_EQUAL(p.last_rate, 2000, EPS);
    CU_ASSERT_DOUBLE_EQUAL(p.last_error, 0, EPS);
    CU_ASSERT_EQUAL(p.last_time, 10000);
    CU_ASSERT_DOUBLE_EQUAL(rate, -1, EPS); /* untouched */
}

static void test_hand_computed_sequence(void)
{
    sl_pid p;
    sl__pid_init(&p, 1000, 1.0, 0.2, 0.0, 100);
    double rate;
    CU_ASSERT_FALSE(sl__pid_compute(&p, 10000, 1000, 500, 0, &rate)); /* last_rate 2000 */
    /* t=11000: 2000 records in 1600 ms, 300 ms scheduling delay.
     * processing_rate = 2000/1600*1000 = 1250; error = 2000 - 1250 = 750;
     * historical = 300 * 1250 / 1000 = 375; new = 2000 - 750 - 0.2*375 = 1175. */
    CU_ASSERT_TRUE(sl__pid_compute(&p, 11000, 2000, 1600, 300, &rate));
    CU_ASSERT_DOUBLE_EQUAL(rate, 1175, EPS);
    CU_ASSERT_DOUBLE_EQUAL(p.last_error, 750, EPS);
    /* t=12500: 1175 records in 1000 ms, 900 ms delay. processing_rate = 1175;
     * error = 1175 - 1175 = 0; historical = 900 * 1175 / 1000 = 1057.5;
     * new = 1175 - 0 - 211.5 = 963.5. */
    CU_ASSERT_TRUE(sl__pid_compute(&p, 12500, 1175, 1000, 900, &rate));
    CU_ASSERT_DOUBLE_EQUAL(rate, 963.5, EPS);
    CU_ASSERT_DOUBLE_EQUAL(p.historical_error, 1057.5, EPS);
}

static void test_derivative_term(void)
{
    sl_pid p;
    sl__pid_init(&p, 2000, 0.5, 0.0, 0.1, 10);
    double rate;
    sl__pid_compute(&p, 1000, 4000, 2000, 0, &rate); /* processing 2000/s */
    /* t=3000: dt = 2 s; 1000 in 1000 ms -> 1000/s; error = 2000 - 1000 = 1000;
     * d_error = (1000 - 0) / 2 = 500; new = 2000 - 0.5*1000 - 0 - 0.1*500 = 1450. */
    CU_ASSERT_TRUE(sl__pid_compute(&p, 3000, 1000, 1000, 0, &rate));
    CU_ASSERT_DOUBLE_EQUAL(rate, 1450, EPS);
}

static void test_min_rate_floor(void)
{
    sl_pid p;
    sl__pid_init(&p, 1000, 1.0, 0.2, 0.0, 100);
    double rate;
    sl__pid_compute(&p, 1000, 1000, 1000, 0, &rate); /* 1000/s */
    /* 10 records in 1000 ms: 10/s; error = 990; historical = 5000*10/1000 = 50;
     * new = 1000 - 990 - 10 = 0 -> floored to 100. */
    CU_ASSERT_TRUE(sl__pid_compute(&p, 2000, 10, 1000, 5000, &rate));
    CU_ASSERT_DOUBLE_EQUAL(rate, 100, EPS);
    CU_ASSERT_DOUBLE_EQUAL(p.last_rate, 100, EPS);
}

static void test_skipped_calls(void)
{
    sl_pid p;
    sl__pid_init(&p, 1000, 1.0, 0.2, 0.0, 100);
    double rate = 7;
    /* No records, no processing time: nothing, and the state does not move. */
    CU_ASSERT_FALSE(sl__pid_compute(&p, 1000, 0, 100, 0, &rate));
    CU_ASSERT_FALSE(sl__pid_compute(&p, 1000, 10, 0, 0, &rate));
    CU_ASSERT_TRUE(p.first_run);
    CU_ASSERT_FALSE(sl__pid_compute(&p, 2000, 1000, 1000, 0, &rate)); /* first valid */
    /* Not after the last time: skipped. */
    CU_ASSERT_FALSE(sl__pid_compute(&p, 2000, 1000, 500, 0, &rate));
    CU_ASSERT_FALSE(sl__pid_compute(&p, 1500, 1000, 500, 0, &rate));
    CU_ASSERT_DOUBLE_EQUAL(p.last_rate, 1000, EPS);
    CU_ASSERT_DOUBLE_EQUAL(rate, 7, EPS);
    /* The next valid one counts from the last valid time. */
    CU_ASSERT_TRUE(sl__pid_compute(&p, 3000, 1000, 1000, 0, &rate));
    CU_ASSERT_DOUBLE_EQUAL(rate, 1000, EPS);
}

static void test_converges_to_capacity(void)
{
    /* An input that can process 5000 records/s, offered more than it can take: the
     * estimator's rate settles near 5000 within a few batches. */
    sl_pid p;
    sl__pid_init(&p, 1000, 1.0, 0.2, 0.0, 100);
    double rate = 15000, r;
    int64_t t = 0, sched = 0;
    for (int b = 0; b < 20; b++) {
        int64_t n = (int64_t)rate;
        int64_t proc = n * 1000 / 5000;
        sched = sched + proc > 1000 ? sched + proc - 1000 : 0;
        t += 1000;
        if (sl__pid_compute(&p, t + proc, n, proc, sched, &r)) {
            rate = r;
        }
    }
    CU_ASSERT(fabs(rate - 5000) < 500);
}

/* ==== Token bucket ==== */

#define SEC 1000000000LL

/* A fresh bucket lets a quantum and one record go at once (2 at 1000/s), then one every
 * 1/rate: a waiter that sleeps what it is told takes 1024 records in 1022 ms, one at a
 * time. */
static void test_bucket_spaces_records(void)
{
    int64_t next = 0, wait = -1, now = 5 * SEC;
    CU_ASSERT_EQUAL(sl__rate_take(&next, 1000, 0, now, 1024, &wait), 2);
    CU_ASSERT_EQUAL(next, now + 1000000);
    size_t taken = 2, calls = 0;
    while (taken < 1024 && calls < 10000) {
        size_t k = sl__rate_take(&next, 1000, 0, now, 1024 - taken, &wait);
        if (k == 0) {
            CU_ASSERT_EQUAL(wait, next - now); /* one record per quantum at 1000/s */
            now += wait;
        }
        CU_ASSERT(k <= 1);
        taken += k;
        calls++;
    }
    CU_ASSERT_EQUAL(taken, 1024);
    CU_ASSERT_EQUAL(now, 5 * SEC + 1022000000);
}

/* Records whose time has come go together, up to want; the rest waits for the next call. */
static void test_bucket_takes_what_is_due(void)
{
    int64_t next = 0, wait = 0, now = SEC, burst = 10000000;
    CU_ASSERT_EQUAL(sl__rate_take(&next, 1000, burst, now, 100, &wait), 11); /* burst + 1 */
    CU_ASSERT_EQUAL(next, now + 1000000);
    CU_ASSERT_EQUAL(sl__rate_take(&next, 1000, burst, now + 3200000, 100, &wait), 3);
    CU_ASSERT_EQUAL(next, now + 4000000);
    CU_ASSERT_EQUAL(sl__rate_take(&next, 1000, burst, now + 8000000, 2, &wait), 2);
    CU_ASSERT_EQUAL(sl__rate_take(&next, 1000, burst, now + 8000000, 100, &wait), 3);
}

/* Credit not used is kept for burst_ns only: after a long pause, the burst and one. */
static void test_bucket_burst_is_bounded(void)
{
    int64_t next = 0, wait = 0;
    CU_ASSERT_EQUAL(sl__rate_take(&next, 1000, 100000000, SEC, 1, &wait), 1);
    next = SEC + 1000000; /* as if the burst had been used */
    CU_ASSERT_EQUAL(sl__rate_take(&next, 1000, 100000000, 60 * SEC, 1000000, &wait), 101);
    CU_ASSERT_EQUAL(sl__rate_take(&next, 1000, 100000000, 60 * SEC, 1000000, &wait), 0);
}

/* At a high rate a waiter waits for a quantum (1 ms of records), not for one record. */
static void test_bucket_waits_for_a_quantum(void)
{
    int64_t next = 0, wait = 0, now = SEC;
    CU_ASSERT_EQUAL(sl__rate_take(&next, 20000, 0, now, 5000, &wait), 21); /* quantum + 1 */
    CU_ASSERT_EQUAL(sl__rate_take(&next, 20000, 0, now, 5000, &wait), 0);
    CU_ASSERT_EQUAL(wait, 1000000); /* 20 records: the 1st at 50 us, the 20th at 1 ms */
    CU_ASSERT_EQUAL(sl__rate_take(&next, 20000, 0, now + wait, 5000, &wait), 20);
    /* ... but never for more than it wants. */
    CU_ASSERT_EQUAL(sl__rate_take(&next, 20000, 0, now + 1000000, 2, &wait), 0);
    CU_ASSERT_EQUAL(wait, 100000);
}

/* Records are paid for when they go: after one record at 100/s, a rate of 100000/s applies
 * 10 ms later, not after what a bigger push would have reserved at 100/s. */
static void test_bucket_new_rate_applies_to_next_record(void)
{
    int64_t next = 0, wait = 0, now = SEC;
    CU_ASSERT_EQUAL(sl__rate_take(&next, 100, 0, now, 1024, &wait), 1);
    CU_ASSERT_EQUAL(sl__rate_take(&next, 100000, 0, now, 1023, &wait), 0);
    CU_ASSERT_EQUAL(wait, 9000000 + 990000); /* the slot at 9 ms, then 100 per ms */
    CU_ASSERT_EQUAL(sl__rate_take(&next, 100000, 0, now + wait, 1023, &wait), 100);
}

/* sl_receiver_push on a simulated clock: a receiver instance with no thread of its own. */
static sl_instance *probe_ins;
static int64_t sim_now, sim_start;
static double sim_rate;      /* the limit the test expects */
static int64_t sim_raise_at; /* simulated ns after which max_rate becomes sim_raise_to */
static double sim_raise_to;
static double sim_worst;       /* largest |pushed - expected| seen while waiting */
static int64_t sim_burst_recs; /* records of the burst */

static int64_t sim_now_ns(void)
{
    return sim_now;
}

static uint64_t pushed(void)
{
    return atomic_load(&probe_ins->records);
}

static void sim_sleep_ns(int64_t ns)
{
    CU_ASSERT(ns > 0 && ns <= 20000000);
    /* Before each wait, what went in follows the rate: the first record and the burst at
     * once, then rate records per second, less the quantum being waited for. */
    double expected = 1.0 + (double)sim_burst_recs + sim_rate * (double)(sim_now - sim_start) / 1e9;
    double off = fabs((double)pushed() - expected);
    sim_worst = off > sim_worst ? off : sim_worst;
    sim_now += ns;
    if (sim_raise_at > 0 && sim_now - sim_start >= sim_raise_at) {
        probe_ins->common.max_rate = sim_raise_to;
        sim_raise_at = 0;
    }
}

static int probe_init(sl_instance *ins, void *ctx, char *errstr, size_t errsize)
{
    (void)ctx, (void)errstr, (void)errsize;
    probe_ins = ins;
    return SL_OK;
}

static const sl_option probe_options[] = {{0}};

static const sl_connector probe_connector = {
    .name = "probe",
    .flags = SL_SOURCE | SL_RECEIVER,
    .options = probe_options,
    .ctx_size = sizeof(int),
    .init = probe_init,
};

/* A context (block interval 100 ms) with a probe receiver limited to max_rate, and the
 * simulated clock in place. */
static sl_context *probe_context(const char *max_rate)
{
    char err[256];
    sl_context_conf conf = {
        .name = "rate", .batch_interval_ms = 1000, .workers = 1, .block_interval_ms = 100};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    sl_options *o = sl_options_new();
    sl_options_set(o, "max_rate", max_rate);
    CU_ASSERT_PTR_NOT_NULL_FATAL(
        sl_context_add_source_connector(ctx, &probe_connector, "probe", o, err, sizeof(err)));
    sl_options_destroy(o);
    sim_now = sim_start = 7 * SEC;
    sim_worst = 0;
    sim_raise_at = 0;
    sl__rate_now_ns = sim_now_ns;
    sl__rate_sleep_ns = sim_sleep_ns;
    return ctx;
}

static void probe_done(sl_context *ctx)
{
    sl__rate_now_ns = sl__mono_ns;
    sl_context_destroy(ctx);
}

/* A push of 1024 records at 10000/s goes in at the rate, 1 ms at a time, not at once: the
 * records of any interval follow the rate within a quantum (10 records) and it returns
 * when the last record's time has come. Before, the whole push went in at once. */
static void test_receiver_push_follows_rate(void)
{
    sl_context *ctx = probe_context("10000");
    void (*real_sleep)(int64_t) = sl__rate_sleep_ns;
    sim_rate = 10000;
    sim_burst_recs = 1000; /* 100 ms at 10000/s */
    static sl_record recs[1024];
    for (size_t i = 0; i < 1024; i++) {
        recs[i] = (sl_record){.value = "x", .value_len = 1};
    }
    for (int k = 0; k < 5; k++) {
        CU_ASSERT_EQUAL(sl_receiver_push(probe_ins, recs, 1024), SL_OK);
    }
    CU_ASSERT_EQUAL(pushed(), 5 * 1024);
    /* 5120 records: 1001 at once, the rest at 10000/s. */
    CU_ASSERT(sim_now - sim_start >= (int64_t)(4119 * 1e5));
    CU_ASSERT(sim_now - sim_start <= (int64_t)(4119 * 1e5) + 1000000);
    CU_ASSERT(sim_worst <= 11);
    sl__rate_sleep_ns = real_sleep;
    probe_done(ctx);
}

/* A push waiting at a low rate takes a higher rate at once: 1024 records at 100/s, the rate
 * raised to 1000000/s after 1 s: all in shortly after 1 s, not after 10 s. */
static void test_receiver_push_takes_new_rate(void)
{
    sl_context *ctx = probe_context("100");
    void (*real_sleep)(int64_t) = sl__rate_sleep_ns;
    sim_rate = 100;
    sim_burst_recs = 10;
    sim_raise_at = SEC;
    sim_raise_to = 1000000;
    static sl_record recs[1024];
    for (size_t i = 0; i < 1024; i++) {
        recs[i] = (sl_record){.value = "x", .value_len = 1};
    }
    CU_ASSERT_EQUAL(sl_receiver_push(probe_ins, recs, 1024), SL_OK);
    CU_ASSERT_EQUAL(pushed(), 1024);
    CU_ASSERT(sim_now - sim_start >= SEC); /* at 100/s until the raise */
    CU_ASSERT(sim_now - sim_start <= SEC + 30000000);
    CU_ASSERT(sim_worst <= 2);
    sl__rate_sleep_ns = real_sleep;
    probe_done(ctx);
}

/* ==== The file source at a rate ====
 * The reader thread's waits go through a gate: it may run on the simulated clock up to
 * gate_until, then it blocks until the test moves the gate after cutting a batch. */

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int64_t gate_until, gate_blocked_at;
static bool gate_open;

static void gated_sleep_ns(int64_t ns)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate_open && sim_now + ns > gate_until) {
        gate_blocked_at = gate_until;
        pthread_cond_broadcast(&gate_cond);
        pthread_cond_wait(&gate_cond, &gate_lock);
    }
    sim_now += ns;
    pthread_mutex_unlock(&gate_lock);
}

typedef struct lines_seen {
    uint64_t n;
    uint64_t out_of_order;
} lines_seen;

static int check_lines(const sl_dataset *ds, int64_t t, void *opaque)
{
    (void)t;
    lines_seen *ls = opaque;
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t k;
        const sl_record *recs = sl_dataset_partition(ds, p, &k);
        for (size_t i = 0; i < k; i++) {
            char want[16];
            int len = snprintf(want, sizeof(want), "line%04llu", (unsigned long long)ls->n);
            if (recs[i].value_len != (uint32_t)len || memcmp(recs[i].value, want, (size_t)len)) {
                ls->out_of_order++;
            }
            ls->n++;
        }
    }
    return SL_OK;
}

/* A file of 2500 lines read by the file source at max_rate 1000/s (block interval 100 ms:
 * a burst of 100): the first batch holds the burst, the first record and 1 s of the rate,
 * the second 1 s of the rate, the rest of the file comes in the third; in order, none lost. */
static void test_file_source_reads_at_the_rate(void)
{
    char dir[64], path[128], err[256];
    snprintf(dir, sizeof(dir), "/tmp/sluice-test-rate-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/lines.txt", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 2500; i++) {
        fprintf(f, "line%04d\n", i);
    }
    fclose(f);

    sl_context_conf conf = {
        .name = "rate", .batch_interval_ms = 1000, .workers = 1, .block_interval_ms = 100};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    sl_options *o = sl_options_new();
    sl_options_set(o, "path", dir);
    sl_options_set(o, "include_existing", "true");
    sl_options_set(o, "max_rate", "1000");
    sl_stream *in = sl_context_add_source(ctx, "file", "in", o, err, sizeof(err));
    sl_options_destroy(o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    lines_seen ls = {0};
    sl_stream_foreach_batch(in, check_lines, &ls);
    sl_instance *ins = ctx->sources;

    sim_now = 7 * SEC;
    gate_until = sim_now + SEC;
    gate_blocked_at = 0;
    gate_open = false;
    sl__rate_now_ns = sim_now_ns;
    void (*real_sleep)(int64_t) = sl__rate_sleep_ns;
    sl__rate_sleep_ns = gated_sleep_ns;
    CU_ASSERT_EQUAL_FATAL(ins->conn->start(ins->cctx, err, sizeof(err)), SL_OK);
    uint64_t counts[5] = {0};
    for (int k = 0; k < 5; k++) {
        /* Until the reader waits at the gate, or has read the whole file. */
        pthread_mutex_lock(&gate_lock);
        for (int spins = 0;
             gate_blocked_at != gate_until && atomic_load(&ins->records) < 2500 && spins < 10000;
             spins++) {
            pthread_mutex_unlock(&gate_lock);
            usleep(1000);
            pthread_mutex_lock(&gate_lock);
        }
        pthread_mutex_unlock(&gate_lock);
        sl_batch_info info;
        CU_ASSERT_EQUAL(sl__context_step(ctx, 1000 * (k + 1), &info), SL_OK);
        counts[k] = info.records;
        pthread_mutex_lock(&gate_lock);
        gate_until += SEC;
        pthread_cond_broadcast(&gate_cond);
        pthread_mutex_unlock(&gate_lock);
    }
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    ins->conn->stop(ins->cctx);
    sl__rate_now_ns = sl__mono_ns;
    sl__rate_sleep_ns = real_sleep;

    CU_ASSERT(counts[0] >= 1100 && counts[0] <= 1102);
    CU_ASSERT(counts[1] >= 999 && counts[1] <= 1001);
    CU_ASSERT_EQUAL(counts[0] + counts[1] + counts[2], 2500);
    CU_ASSERT_EQUAL(counts[3] + counts[4], 0);
    CU_ASSERT_EQUAL(ls.n, 2500);
    CU_ASSERT_EQUAL(ls.out_of_order, 0);
    sl_context_destroy(ctx);
    unlink(path);
    rmdir(dir);
}

void sl_test_register(void)
{
    SL_SUITE("pid", SL_TEST(first_call_sets_starting_point), SL_TEST(hand_computed_sequence),
             SL_TEST(derivative_term), SL_TEST(min_rate_floor), SL_TEST(skipped_calls),
             SL_TEST(converges_to_capacity));
    SL_SUITE("token_bucket", SL_TEST(bucket_spaces_records), SL_TEST(bucket_takes_what_is_due),
             SL_TEST(bucket_burst_is_bounded), SL_TEST(bucket_waits_for_a_quantum),
             SL_TEST(bucket_new_rate_applies_to_next_record), SL_TEST(receiver_push_follows_rate),
             SL_TEST(receiver_push_takes_new_rate), SL_TEST(file_source_reads_at_the_rate));
}

/* test_rate.c -- the PID rate estimator against sequences computed by hand from Spark's
 * formula (SEMANTICS.md). */
#include <math.h>

#include "cu_main.h"
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

void sl_test_register(void)
{
    SL_SUITE("pid", {"first_call_sets_starting_point", test_first_call_sets_starting_point},
             {"hand_computed_sequence", test_hand_computed_sequence},
             {"derivative_term", test_derivative_term}, {"min_rate_floor", test_min_rate_floor},
             {"skipped_calls", test_skipped_calls},
             {"converges_to_capacity", test_converges_to_capacity});
}

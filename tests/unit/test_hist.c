/* test_hist.c -- the duration histograms of /metrics (sl_hist.c): each observation lands in
 * the first bucket whose bound holds it, the exposition is cumulative with +Inf equal to
 * _count, and the sum is in seconds; and the JSON log lines' format switch. */
#include <stdio.h>
#include <string.h>

#include "cu_main.h"
#include "sl_hist.h"
#include "sl_util.h"

static void test_observations_land_in_their_buckets(void)
{
    sl_hist h;
    memset(&h, 0, sizeof(h));
    sl__hist_observe(&h, 0);      /* <= 5 ms */
    sl__hist_observe(&h, 5);      /* <= 5 ms: a bound holds its own value */
    sl__hist_observe(&h, 6);      /* <= 10 ms */
    sl__hist_observe(&h, 1000);   /* <= 1 s */
    sl__hist_observe(&h, -3);     /* a negative delay counts as 0 */
    sl__hist_observe(&h, 400000); /* past 300 s: +Inf only */
    CU_ASSERT_EQUAL(atomic_load(&h.buckets[0]), 3);
    CU_ASSERT_EQUAL(atomic_load(&h.buckets[1]), 1);
    CU_ASSERT_EQUAL(atomic_load(&h.buckets[7]), 1);
    CU_ASSERT_EQUAL(atomic_load(&h.buckets[SL_HIST_BUCKETS]), 1);
    CU_ASSERT_EQUAL(atomic_load(&h.count), 6);
    CU_ASSERT_DOUBLE_EQUAL(sl__hist_bounds()[7], 1.0, 1e-12);
}

static void test_exposition_is_cumulative(void)
{
    sl_hist h;
    memset(&h, 0, sizeof(h));
    sl__hist_observe(&h, 3);
    sl__hist_observe(&h, 20);
    sl__hist_observe(&h, 20);
    sl__hist_observe(&h, 2000);
    sl_buf b = {0};
    sl__hist_render(&b, "sluice_x_seconds", "X.", &h);
    CU_ASSERT_FALSE_FATAL(b.failed);
    const char *want[] = {
        "# HELP sluice_x_seconds X.\n# TYPE sluice_x_seconds histogram\n",
        "sluice_x_seconds_bucket{le=\"0.005\"} 1\n",
        "sluice_x_seconds_bucket{le=\"0.01\"} 1\n",
        "sluice_x_seconds_bucket{le=\"0.025\"} 3\n",
        "sluice_x_seconds_bucket{le=\"2.5\"} 4\n",
        "sluice_x_seconds_bucket{le=\"300\"} 4\n",
        "sluice_x_seconds_bucket{le=\"+Inf\"} 4\n",
        "sluice_x_seconds_sum 2.043000\n",
        "sluice_x_seconds_count 4\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (!strstr(b.p, want[i])) {
            fprintf(stderr, "missing: %s in:\n%s", want[i], b.p);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(b.p, want[i]));
    }
    sl__buf_free(&b);
}

static void test_log_format_names(void)
{
    sl_log_format f = SL_LOG_TEXT;
    CU_ASSERT_TRUE(sl__log_format_parse("json", &f));
    CU_ASSERT_EQUAL(f, SL_LOG_JSON);
    CU_ASSERT_TRUE(sl__log_format_parse("text", &f));
    CU_ASSERT_EQUAL(f, SL_LOG_TEXT);
    CU_ASSERT_FALSE(sl__log_format_parse("JSON ", &f));
    CU_ASSERT_FALSE(sl__log_format_parse("", &f));
}

void sl_test_register(void)
{
    SL_SUITE("hist", SL_TEST(observations_land_in_their_buckets), SL_TEST(exposition_is_cumulative),
             SL_TEST(log_format_names));
}

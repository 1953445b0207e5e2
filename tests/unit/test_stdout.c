/* test_stdout.c -- the stdout sink (DStream.print()): the exact text of batches, driven one
 * batch at a time by sl__context_step, with stdout captured in a temporary file. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "support.h"

#define RULE "-------------------------------------------\n"

/* ==== Capturing stdout ==== */

typedef struct capture {
    char path[64];
    int saved;
} capture;

static void capture_begin(capture *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/sluice-test-stdout-XXXXXX");
    int fd = mkstemp(c->path);
    fflush(stdout);
    c->saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    close(fd);
}

/* Restores stdout and returns what was written (malloc'd, *len bytes, NUL-terminated). */
static char *capture_end(capture *c, size_t *len)
{
    fflush(stdout);
    dup2(c->saved, STDOUT_FILENO);
    close(c->saved);
    FILE *f = fopen(c->path, "rb");
    char *buf = calloc(1, 1 << 16);
    *len = f ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    if (f) {
        fclose(f);
    }
    unlink(c->path);
    return buf;
}

static void assert_text(const char *got, size_t got_len, const char *want, size_t want_len)
{
    CU_ASSERT_EQUAL(got_len, want_len);
    CU_ASSERT(got_len == want_len && memcmp(got, want, want_len) == 0);
    if (got_len != want_len || memcmp(got, want, want_len) != 0) {
        fprintf(stderr, "\n--- want (%zu bytes) ---\n", want_len);
        fwrite(want, 1, want_len, stderr);
        fprintf(stderr, "--- got (%zu bytes) ---\n", got_len);
        fwrite(got, 1, got_len, stderr);
    }
}

/* ==== Tests ==== */

static void test_stdout_prints_first_num_then_dots(void)
{
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_FATAL(sl_stream_print(s, 3) == SL_OK);

    sl_record recs[5] = {
        {.key = "a", .key_len = 1, .num_type = SL_NUM_INT, .num.i = 1},
        {.num_type = SL_NUM_DOUBLE, .num.d = 0.1},
        {.key = "k", .key_len = 1, .value = "v", .value_len = 1},
        {.value = "d", .value_len = 1},
        {.value = "e", .value_len = 1},
    };
    ts_feed_records(src, recs, 5);

    capture cap;
    capture_begin(&cap);
    sl_batch_info info;
    int rc1 = sl__context_step(ctx, 1000, &info);
    int rc2 = sl__context_step(ctx, 2000, &info); /* empty: the header still shows */
    size_t len;
    char *out = capture_end(&cap, &len);
    CU_ASSERT(rc1 == SL_OK && rc2 == SL_OK);

    static const char want[] =
        RULE "Time: 1000 ms\n" RULE "(a,1)\n0.1\n(k,v)\n...\n\n" RULE "Time: 2000 ms\n" RULE "\n";
    assert_text(out, len, want, sizeof(want) - 1);
    free(out);
    sl_context_destroy(ctx);
}

static void test_stdout_writes_bytes_and_numbers_exactly(void)
{
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_FATAL(sl_stream_print(s, 10) == SL_OK);

    sl_record recs[6] = {
        {.value = "x\0y", .value_len = 3},
        {.key = "k\0", .key_len = 2, .value = "\xff\xfe", .value_len = 2},
        {.key = "big", .key_len = 3, .num_type = SL_NUM_INT, .num.i = INT64_MIN},
        {.num_type = SL_NUM_DOUBLE, .num.d = 2.5},
        {.num_type = SL_NUM_DOUBLE, .num.d = 1.0 / 3.0},
        {.value = "", .value_len = 0},
    };
    ts_feed_records(src, recs, 6);

    capture cap;
    capture_begin(&cap);
    int rc = sl__context_step(ctx, 5000, NULL);
    size_t len;
    char *out = capture_end(&cap, &len);
    CU_ASSERT(rc == SL_OK);

    static const char want[] = RULE "Time: 5000 ms\n" RULE "x\0y\n(k\0,\xff\xfe)\n"
                                    "(big,-9223372036854775808)\n2.5\n0.3333333333333333\n"
                                    "\n\n";
    assert_text(out, len, want, sizeof(want) - 1);
    free(out);
    sl_context_destroy(ctx);
}

static void test_stdout_counts_across_partitions(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    sl_stream *r = sl_stream_repartition(s, 4);
    CU_ASSERT_FATAL(r != NULL);
    CU_ASSERT_FATAL(sl_stream_print(r, 5) == SL_OK);
    char vals[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(vals[i], sizeof(vals[i]), "v%02d", i);
        sl_record rec = {.value = vals[i], .value_len = 3};
        ts_feed_records(src, &rec, 1);
    }
    capture cap;
    capture_begin(&cap);
    int rc = sl__context_step(ctx, 1000, NULL);
    size_t len;
    char *out = capture_end(&cap, &len);
    CU_ASSERT(rc == SL_OK);

    /* Header, 5 records, "...", the empty line. */
    const char *p = out;
    CU_ASSERT(strncmp(p, RULE "Time: 1000 ms\n" RULE, 2 * strlen(RULE) + 14) == 0);
    p += 2 * strlen(RULE) + 14;
    int lines = 0;
    for (int i = 0; i < 5; i++) {
        CU_ASSERT(p[0] == 'v' && p[3] == '\n');
        p += 4;
        lines++;
    }
    CU_ASSERT_STRING_EQUAL(p, "...\n\n");
    CU_ASSERT_EQUAL(lines, 5);
    free(out);
    sl_context_destroy(ctx);
}

static void test_stdout_num_below_one_is_refused(void)
{
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    CU_ASSERT(sl_stream_print(s, 0) != SL_OK);
    char err[256];
    sl_options *o = sl_options_new();
    sl_options_set(o, "num", "many");
    CU_ASSERT(sl_stream_to(s, "stdout", "out", o, err, sizeof(err)) != SL_OK);
    CU_ASSERT(strstr(err, "num") != NULL);
    sl_options_destroy(o);
    sl_context_destroy(ctx);
}

void sl_test_register(void)
{
    SL_SUITE("stdout", SL_TEST(stdout_prints_first_num_then_dots),
             SL_TEST(stdout_writes_bytes_and_numbers_exactly),
             SL_TEST(stdout_counts_across_partitions), SL_TEST(stdout_num_below_one_is_refused));
}

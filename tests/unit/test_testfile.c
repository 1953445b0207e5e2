/* test_testfile.c -- `sluice test` (src/sl_test_*.c): times of test files, a test file
 * loaded against its pipeline and run (numbers compared as numbers, JSON as JSON), the
 * differences of a failing test, and errors that name the test file's line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_test.h"
#include "support.h"

static const char wordcount_yaml[] = "app: {name: wc, batch_interval: 1s, workers: 2}\n"
                                     "sources:\n"
                                     "  - {name: lines, type: tcp, mode: listen, port: 9999}\n"
                                     "streams:\n"
                                     "  - name: counts\n"
                                     "    from: lines\n"
                                     "    ops: [split: whitespace, key: value, value: 1,\n"
                                     "          reduce_by_key: sum]\n"
                                     "sinks:\n"
                                     "  - {name: out, type: stdout, from: counts}\n"
                                     "  - {name: raw, type: stdout, from: lines}\n";

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* Loads the test file text (beside the word count) and runs it: the number of failed tests,
 * -2 when it does not load (errstr in err), and what it printed in out. */
static int run_text(const char *text, char *out, size_t outsize, char *err, size_t errsize)
{
    char dir[128], path[256];
    CU_ASSERT_FATAL(ts_tmpdir(dir, sizeof(dir), "testfile"));
    write_file(dir, "wc.yaml", wordcount_yaml);
    write_file(dir, "wc.test.yaml", text);
    snprintf(path, sizeof(path), "%s/wc.test.yaml", dir);
    sl_tfile *tf = NULL;
    int rc = sl__tfile_load(path, &tf, err, errsize);
    out[0] = '\0';
    if (rc == SL_OK) {
        FILE *o = fmemopen(out, outsize, "w");
        rc = sl__tfile_run(tf, o, stderr);
        fclose(o);
    } else {
        /* The message without the temporary directory. */
        const char *at = strstr(err, "wc.test.yaml");
        memmove(err, at ? at : err, strlen(at ? at : err) + 1);
        rc = -2;
    }
    sl__tfile_destroy(tf);
    CU_ASSERT(ts_rmdir(dir));
    return rc;
}

static void test_rfc3339_times_parse_and_print(void)
{
    int64_t ms = 0;
    CU_ASSERT(sl__tparse_rfc3339("2026-01-01T00:00:05Z", &ms));
    CU_ASSERT_EQUAL(ms, 1767225605000);
    CU_ASSERT(sl__tparse_rfc3339("2026-01-01 01:00:05.25+01:00", &ms));
    CU_ASSERT_EQUAL(ms, 1767225605250);
    CU_ASSERT(sl__tparse_rfc3339("2026-01-01T00:00:00", &ms)); /* no offset: UTC */
    CU_ASSERT_EQUAL(ms, 1767225600000);
    CU_ASSERT_FALSE(sl__tparse_rfc3339("2026-13-01T00:00:00Z", &ms));
    CU_ASSERT_FALSE(sl__tparse_rfc3339("2026-01-01T00:00:00Zx", &ms));
    CU_ASSERT_FALSE(sl__tparse_rfc3339("5s", &ms));
    char buf[64];
    sl__tfmt_time(1767225605250, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "2026-01-01T00:00:05.250Z");
    sl__tfmt_time(1767225600000, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "2026-01-01T00:00:00Z");
}

/* Typed values compare as numbers in both forms, JSON values as JSON (key order, 1 = 1.0). */
static void test_numbers_and_json_compare_by_value(void)
{
    char out[4096], err[1024];
    int rc = run_text("pipeline: wc.yaml\n"
                      "tests:\n"
                      "  - name: t\n"
                      "    batches:\n"
                      "      - inputs: {lines: ['{\"b\":[1,2],\"a\":1}', x x]}\n"
                      "        outputs:\n"
                      "          out: ['(x,2.0)', {key: '{\"b\":[1,2],\"a\":1}', num: 1e0}]\n"
                      "          raw: [{json: {a: 1.0, b: [1, 2.0]}, partition: 0}, x x]\n",
                      out, sizeof(out), err, sizeof(err));
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ok   "));
}

/* A failing test names the sink, the batch and the line, then what is missing and what was
 * not expected; a batch that does not list a sink expects nothing from it. */
static void test_a_failing_test_prints_missing_and_unexpected(void)
{
    char out[4096], err[1024];
    int rc = run_text("pipeline: wc.yaml\n"
                      "tests:\n"
                      "  - name: t\n"
                      "    batches:\n"
                      "      - inputs: {lines: [a a b]}\n"
                      "        outputs:\n"
                      "          out: ['(a,2)', '(b,2)']\n"
                      "      - inputs: {lines: [c]}\n",
                      out, sizeof(out), err, sizeof(err));
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "FAIL "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "sink 'out', batch 1 at +1s ("));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "wc.test.yaml:7): 1 missing, 1 unexpected\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "      - (b,2)    (line 7)\n      + (b,1)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "sink 'out', batch 2 at +2s"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "0 missing, 1 unexpected\n      + (c,1)\n"));
}

static void test_errors_name_the_test_file_line(void)
{
    char out[4096], err[1024];
    CU_ASSERT_EQUAL(run_text("pipeline: wc.yaml\n"
                             "tests:\n"
                             "  - name: t\n"
                             "    batches:\n"
                             "      - inputs: {line: [a]}\n",
                             out, sizeof(out), err, sizeof(err)),
                    -2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "wc.test.yaml:5:18: error: no source 'line' in "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "its sources: lines"));
    CU_ASSERT_EQUAL(run_text("pipeline: wc.yaml\n"
                             "tests:\n"
                             "  - name: t\n"
                             "    batches:\n"
                             "      - inputs: {lines: [a]}\n",
                             out, sizeof(out), err, sizeof(err)),
                    -2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "wc.test.yaml:3:5: error: test 't' expects nothing"));
    CU_ASSERT_EQUAL(run_text("pipeline: wc.yaml\n"
                             "tests:\n"
                             "  - name: t\n"
                             "    batches:\n"
                             "      - {outputs: {out: []}}\n"
                             "      - {time: 500ms, outputs: {out: []}}\n",
                             out, sizeof(out), err, sizeof(err)),
                    -2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "wc.test.yaml:6:16: error: 'time' must come after"));
    CU_ASSERT_EQUAL(run_text("pipeline: wc.yaml\n"
                             "tests:\n"
                             "  - name: t\n"
                             "    batches:\n"
                             "      - outputs: {out: [{key: a, num: x}]}\n",
                             out, sizeof(out), err, sizeof(err)),
                    -2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "wc.test.yaml:5:39: error: 'num' must be a number"));
}

void sl_test_register(void)
{
    SL_SUITE("testfile", SL_TEST(rfc3339_times_parse_and_print),
             SL_TEST(numbers_and_json_compare_by_value),
             SL_TEST(a_failing_test_prints_missing_and_unexpected),
             SL_TEST(errors_name_the_test_file_line));
}

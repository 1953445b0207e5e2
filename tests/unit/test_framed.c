/* test_framed.c -- framed files (sl_framed.c: the checkpoint's and the state's format): a
 * round trip, and the reader refusing a huge length, a bad CRC, a wrong magic or version
 * and a file truncated in its header or body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_framed.h"
#include "support.h"

static char dir[256];

static void fresh_dir(void)
{
    CU_ASSERT_TRUE_FATAL(ts_tmpdir(dir, sizeof(dir), "framed-test"));
}

static void remove_dir(void)
{
    CU_ASSERT_TRUE(ts_rmdir(dir));
}

static void write_raw(const char *name, const char *bytes, size_t n)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static char *read_framed(const char *name, size_t max_len, size_t *len, char *why, size_t size)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    why[0] = '\0';
    return sl__framed_read(path, "SLUICE-TEST", 1, max_len, "test", len, why, size);
}

static void test_framed_round_trip(void)
{
    fresh_dir();
    size_t written = 0, len = 0;
    char why[256];
    CU_ASSERT_EQUAL(sl__framed_write(dir, "a", "SLUICE-TEST", 1, "hello\0x", 7, true, &written),
                    SL_OK);
    CU_ASSERT_EQUAL(written, strlen("SLUICE-TEST 1 00000000 7\n") + 7);
    char *body = read_framed("a", 100, &len, why, sizeof(why));
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    CU_ASSERT_EQUAL(len, 7);
    CU_ASSERT_EQUAL(memcmp(body, "hello\0x", 7), 0);
    CU_ASSERT_EQUAL(body[7], '\0');
    free(body);
    /* An empty body is a body. */
    CU_ASSERT_EQUAL(sl__framed_write(dir, "e", "SLUICE-TEST", 1, "", 0, false, NULL), SL_OK);
    body = read_framed("e", 100, &len, why, sizeof(why));
    CU_ASSERT_PTR_NOT_NULL(body);
    CU_ASSERT_EQUAL(len, 0);
    free(body);
    /* No temporary file is left. */
    char tmp[400];
    snprintf(tmp, sizeof(tmp), "%s/.a.tmp", dir);
    CU_ASSERT_NOT_EQUAL(access(tmp, F_OK), 0);
    remove_dir();
}

static void test_framed_read_rejects_huge_length(void)
{
    fresh_dir();
    char why[256];
    size_t len = 0;
    /* Over the cap: refused before anything is allocated. */
    const char *huge = "SLUICE-TEST 1 00000000 9000000000000000000\nabc";
    write_raw("huge", huge, strlen(huge));
    CU_ASSERT_PTR_NULL(read_framed("huge", 1u << 30, &len, why, sizeof(why)));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "over the limit"));
    /* Under the cap but more than the file holds: truncated, also before allocating. */
    const char *big = "SLUICE-TEST 1 00000000 1000000000\nabc";
    write_raw("big", big, strlen(big));
    CU_ASSERT_PTR_NULL(read_framed("big", (size_t)1 << 40, &len, why, sizeof(why)));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "truncated: 3 of 1000000000 bytes"));
    /* A negative length is not a length. */
    const char *neg = "SLUICE-TEST 1 00000000 -1\nabc";
    write_raw("neg", neg, strlen(neg));
    CU_ASSERT_PTR_NULL(read_framed("neg", (size_t)1 << 40, &len, why, sizeof(why)));
    CU_ASSERT_STRING_EQUAL(why, "not a test file (bad header)");
    remove_dir();
}

static void test_framed_read_rejects_bad_crc(void)
{
    fresh_dir();
    char why[256], path[400];
    size_t len = 0;
    CU_ASSERT_EQUAL(sl__framed_write(dir, "c", "SLUICE-TEST", 1, "payload", 7, true, NULL), SL_OK);
    snprintf(path, sizeof(path), "%s/c", dir);
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fseek(f, -1, SEEK_END);
    fputc('X', f); /* one byte of the body changed */
    fclose(f);
    CU_ASSERT_PTR_NULL(read_framed("c", 100, &len, why, sizeof(why)));
    CU_ASSERT_STRING_EQUAL(why, "checksum mismatch: the file is corrupt");
    /* Another magic or version: not this kind of file. */
    CU_ASSERT_EQUAL(sl__framed_write(dir, "v", "SLUICE-TEST", 2, "payload", 7, true, NULL), SL_OK);
    CU_ASSERT_PTR_NULL(read_framed("v", 100, &len, why, sizeof(why)));
    CU_ASSERT_STRING_EQUAL(why, "not a test file (bad header)");
    CU_ASSERT_EQUAL(sl__framed_write(dir, "m", "SLUICE-OTHER", 1, "payload", 7, true, NULL), SL_OK);
    CU_ASSERT_PTR_NULL(read_framed("m", 100, &len, why, sizeof(why)));
    CU_ASSERT_STRING_EQUAL(why, "not a test file (bad header)");
    remove_dir();
}

static void test_framed_read_rejects_truncated(void)
{
    fresh_dir();
    char why[256], path[400];
    size_t len = 0;
    CU_ASSERT_EQUAL(sl__framed_write(dir, "t", "SLUICE-TEST", 1, "0123456789", 10, true, NULL),
                    SL_OK);
    snprintf(path, sizeof(path), "%s/t", dir);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(truncate(path, st.st_size - 4), 0);
    CU_ASSERT_PTR_NULL(read_framed("t", 100, &len, why, sizeof(why)));
    CU_ASSERT_STRING_EQUAL(why, "truncated: 6 of 10 bytes");
    /* Cut inside the header line. */
    CU_ASSERT_EQUAL(truncate(path, 12), 0);
    CU_ASSERT_PTR_NULL(read_framed("t", 100, &len, why, sizeof(why)));
    CU_ASSERT_STRING_EQUAL(why, "not a test file (bad header)");
    remove_dir();
}

void sl_test_register(void)
{
    SL_SUITE("framed", SL_TEST(framed_round_trip), SL_TEST(framed_read_rejects_huge_length),
             SL_TEST(framed_read_rejects_bad_crc), SL_TEST(framed_read_rejects_truncated));
}

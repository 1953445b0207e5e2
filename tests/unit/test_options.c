/* test_options.c -- option tables (sl_options.c): durations and sizes, parsing a table into a
 * struct with its defaults, required and secret options, enumerations stored as the index
 * of their name, and ranges checked only where the table says so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "sl_options.h"

static void test_durations(void)
{
    int64_t ms;
    CU_ASSERT_EQUAL(sl_parse_duration("250ms", &ms), SL_OK);
    CU_ASSERT_EQUAL(ms, 250);
    CU_ASSERT_EQUAL(sl_parse_duration("1s", &ms), SL_OK);
    CU_ASSERT_EQUAL(ms, 1000);
    CU_ASSERT_EQUAL(sl_parse_duration("1.5s", &ms), SL_OK);
    CU_ASSERT_EQUAL(ms, 1500);
    CU_ASSERT_EQUAL(sl_parse_duration("5m", &ms), SL_OK);
    CU_ASSERT_EQUAL(ms, 300000);
    CU_ASSERT_EQUAL(sl_parse_duration("2h", &ms), SL_OK);
    CU_ASSERT_EQUAL(ms, 7200000);
    CU_ASSERT_EQUAL(sl_parse_duration("0", &ms), SL_OK);
    CU_ASSERT_EQUAL(ms, 0);
    const char *bad[] = {"", "s", "10", "-1s", "1x", "1.0001ms", "ms5", "1 s s", "nan", NULL};
    for (int i = 0; bad[i]; i++) {
        CU_ASSERT_EQUAL(sl_parse_duration(bad[i], &ms), SL_ERR_INVAL);
    }
}

static void test_sizes(void)
{
    int64_t b;
    CU_ASSERT_EQUAL(sl_parse_size("512", &b), SL_OK);
    CU_ASSERT_EQUAL(b, 512);
    CU_ASSERT_EQUAL(sl_parse_size("64KiB", &b), SL_OK);
    CU_ASSERT_EQUAL(b, 65536);
    CU_ASSERT_EQUAL(sl_parse_size("1MiB", &b), SL_OK);
    CU_ASSERT_EQUAL(b, 1048576);
    CU_ASSERT_EQUAL(sl_parse_size("2GB", &b), SL_OK);
    CU_ASSERT_EQUAL(b, 2000000000);
    CU_ASSERT_EQUAL(sl_parse_size("1.5kb", &b), SL_OK);
    CU_ASSERT_EQUAL(b, 1500);
    CU_ASSERT_EQUAL(sl_parse_size("12 parsecs", &b), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_parse_size("-1", &b), SL_ERR_INVAL);
}

/* strtod reads hex: "0x10s" was 16 s and "0x1p3" 8 bytes. */
static void test_durations_and_sizes_reject_hex(void)
{
    int64_t v = -1;
    const char *bad[] = {"0x10s", "0X10ms", "0x1p3s", "0x.8s", NULL};
    for (int i = 0; bad[i]; i++) {
        CU_ASSERT_EQUAL(sl_parse_duration(bad[i], &v), SL_ERR_INVAL);
    }
    const char *bad_sizes[] = {"0x10", "0x10kb", "0x1p3", "0X1P3MiB", NULL};
    for (int i = 0; bad_sizes[i]; i++) {
        CU_ASSERT_EQUAL(sl_parse_size(bad_sizes[i], &v), SL_ERR_INVAL);
    }
    CU_ASSERT_EQUAL(sl_parse_duration("1e3ms", &v), SL_OK); /* decimal exponents stay */
    CU_ASSERT_EQUAL(v, 1000);
}

/* A size is a whole number of bytes: "0.9" was truncated to 0, "1.0001kb" to 1000. */
static void test_sizes_reject_fractions_of_a_byte(void)
{
    int64_t b = -1;
    const char *bad[] = {"0.9", "0.5b", "1.0001kb", "1.5", "0.0000001KiB", NULL};
    for (int i = 0; bad[i]; i++) {
        CU_ASSERT_EQUAL(sl_parse_size(bad[i], &b), SL_ERR_INVAL);
    }
    CU_ASSERT_EQUAL(sl_parse_size("1.1kb", &b), SL_OK); /* 1100.0000000000002 in a double */
    CU_ASSERT_EQUAL(b, 1100);
    CU_ASSERT_EQUAL(sl_parse_size("0.5KiB", &b), SL_OK);
    CU_ASSERT_EQUAL(b, 512);
    CU_ASSERT_EQUAL(sl_parse_size("2.0", &b), SL_OK);
    CU_ASSERT_EQUAL(b, 2);
    CU_ASSERT_EQUAL(sl_parse_size("0", &b), SL_OK);
    CU_ASSERT_EQUAL(b, 0);
}

typedef struct conf {
    const char *host;
    int64_t port;
    bool tls;
    double ratio;
    int64_t wait;
    int64_t buf;
    int mode; /* 0 connect, 1 listen */
    int side; /* no default: -1 */
    const char *password;
} conf;

static const sl_option table[] = {
    {.name = "host", .type = SL_OPT_STR, .def = "localhost", .offset = offsetof(conf, host)},
    {.name = "port",
     .type = SL_OPT_INT,
     .min = 1,
     .max = 65535,
     .flags = SL_OPT_REQUIRED | SL_OPT_RANGE,
     .offset = offsetof(conf, port),
     .doc = "TCP port"},
    {.name = "tls", .type = SL_OPT_BOOL, .def = "false", .offset = offsetof(conf, tls)},
    {.name = "ratio",
     .type = SL_OPT_DOUBLE,
     .def = "0.5",
     .min = 0,
     .max = 1,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(conf, ratio)},
    {.name = "wait",
     .type = SL_OPT_DURATION,
     .def = "2s",
     .min = 0,
     .max = 60000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(conf, wait)},
    {.name = "buf",
     .type = SL_OPT_SIZE,
     .def = "64KiB",
     .offset = offsetof(conf, buf)}, /* no SL_OPT_RANGE: any size */
    {.name = "mode",
     .type = SL_OPT_ENUM,
     .def = "connect",
     .choices = "connect|listen",
     .offset = offsetof(conf, mode)},
    {.name = "side", .type = SL_OPT_ENUM, .choices = "left|right", .offset = offsetof(conf, side)},
    {.name = "password",
     .type = SL_OPT_STR,
     .flags = SL_OPT_SECRET,
     .offset = offsetof(conf, password)},
    {0},
};

static int check(const char *k1, const char *v1, const char *k2, const char *v2, char *err)
{
    sl_options *o = sl_options_new();
    sl_options_set(o, k1, v1);
    if (k2) {
        sl_options_set(o, k2, v2);
    }
    int rc = sl_options_check(table, NULL, o, err, 512, NULL);
    sl_options_destroy(o);
    return rc;
}

static void test_option_tables(void)
{
    char err[512];
    CU_ASSERT_EQUAL(check("port", "80", NULL, NULL, err), SL_OK);
    CU_ASSERT_EQUAL(check("prot", "80", NULL, NULL, err), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown option 'prot'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "host, port, tls"));
    CU_ASSERT_EQUAL(check("port", "eighty", NULL, NULL, err), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not an integer"));
    CU_ASSERT_EQUAL(check("port", "70000", NULL, NULL, err), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of range [1, 65535]"));
    CU_ASSERT_EQUAL(check("port", "1", "wait", "soon", err), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a duration"));
    CU_ASSERT_EQUAL(check("port", "1", "mode", "both", err), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "connect|listen"));
    CU_ASSERT_EQUAL(check("port", "1", "tls", "maybe", err), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(check("host", "x", NULL, NULL, err), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "missing required option 'port'"));
    /* A secret's value never shows in an error. */
    CU_ASSERT_EQUAL(check("port", "1", "ratio", "hunter2", err), SL_ERR_INVAL);
    const sl_option secret_num[] = {{.name = "pin", .type = SL_OPT_INT, .flags = SL_OPT_SECRET},
                                    {0}};
    sl_options *o = sl_options_new();
    sl_options_set(o, "pin", "hunter2");
    CU_ASSERT_EQUAL(sl_options_check(secret_num, NULL, o, err, sizeof(err), NULL), SL_ERR_INVAL);
    CU_ASSERT_PTR_NULL(strstr(err, "hunter2"));
    sl_options_destroy(o);

    conf c;
    memset(&c, 0, sizeof(c));
    o = sl_options_new();
    sl_options_set(o, "port", "9092");
    sl_options_set(o, "tls", "yes");
    sl_options_set(o, "wait", "250ms");
    sl_options_set(o, "port", "9093"); /* a later set replaces */
    CU_ASSERT_EQUAL(sl__options_apply(table, o, &c, err, sizeof(err)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c.host, "localhost");
    CU_ASSERT_EQUAL(c.port, 9093);
    CU_ASSERT_TRUE(c.tls);
    CU_ASSERT_DOUBLE_EQUAL(c.ratio, 0.5, 1e-12);
    CU_ASSERT_EQUAL(c.wait, 250);
    CU_ASSERT_EQUAL(c.buf, 65536);
    CU_ASSERT_EQUAL(c.mode, 0);
    CU_ASSERT_EQUAL(c.side, -1);
    CU_ASSERT_PTR_NULL(c.password);
    CU_ASSERT_EQUAL(sl_options_count(o), 3);
    sl_options_destroy(o);
}

/* An enumeration is stored as the index of its name; a number without SL_OPT_RANGE takes
 * any value, one with it is checked; booleans take the words of sl__parse_bool. */
static void test_option_enum_index_and_range_flag(void)
{
    char err[512], name[16];
    conf c;
    memset(&c, 0, sizeof(c));
    sl_options *o = sl_options_new();
    sl_options_set(o, "port", "1");
    sl_options_set(o, "mode", "listen");
    sl_options_set(o, "side", "right");
    sl_options_set(o, "buf", "1GiB");
    sl_options_set(o, "tls", "ON");
    CU_ASSERT_EQUAL(sl__options_apply(table, o, &c, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(c.mode, 1);
    CU_ASSERT_EQUAL(c.side, 1);
    CU_ASSERT_EQUAL(c.buf, 1 << 30);
    CU_ASSERT_TRUE(c.tls);
    sl_options_set(o, "ratio", "1.5");
    CU_ASSERT_EQUAL(sl__options_apply(table, o, &c, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of range [0, 1]"));
    sl_options_destroy(o);
    CU_ASSERT_EQUAL(sl__option_enum_index(&table[6], "listen"), 1);
    CU_ASSERT_EQUAL(sl__option_enum_index(&table[6], "liste"), -1);
    CU_ASSERT_STRING_EQUAL(sl__option_enum_name(&table[6], 1, name, sizeof(name)), "listen");
    CU_ASSERT_STRING_EQUAL(sl__option_enum_name(&table[6], 2, name, sizeof(name)), "?");
}

void sl_test_register(void)
{
    SL_SUITE("options", SL_TEST(durations), SL_TEST(sizes), SL_TEST(durations_and_sizes_reject_hex),
             SL_TEST(sizes_reject_fractions_of_a_byte), SL_TEST(option_tables),
             SL_TEST(option_enum_index_and_range_flag));
}

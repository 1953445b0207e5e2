/* test_yamlops.c -- the built-in ops of the YAML front end: split, key, value, filter, map,
 * on their own (sl__yamlops_apply, sl__yamlops_split_next, sl__yamlops_filter) and through
 * the engine (sl__context_step with a scripted source). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cu_main.h"
#include "sl_config.h"
#include "sl_engine.h"
#include "sl_yamlops.h"
#include "support.h"

#define T0 1000000

/* ==== Helpers ==== */

/* An allocator for sl__yamlops_apply: a list of blocks freed by test_free_all. */
typedef struct test_arena {
    void *blocks[64];
    size_t n;
} test_arena;

static void *test_alloc(void *arg, size_t size)
{
    test_arena *a = arg;
    if (a->n == 64) {
        return NULL;
    }
    a->blocks[a->n] = malloc(size);
    return a->blocks[a->n++];
}

static void test_free_all(test_arena *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->blocks[i]);
    }
    a->n = 0;
}

static sl_record rec(const char *value)
{
    sl_record r = {0};
    r.value = value;
    r.value_len = (uint32_t)strlen(value);
    return r;
}

static sl_record keyed(const char *key, const char *value)
{
    sl_record r = rec(value);
    r.key = key;
    r.key_len = (uint32_t)strlen(key);
    return r;
}

/* Applies op to a record whose value is json; returns the code, the result in *out. */
static int apply(const sl_yamlop *op, const char *value, sl_record *out, test_arena *a)
{
    sl_record in = rec(value);
    *out = in;
    return sl__yamlops_apply(op, &in, out, test_alloc, a);
}

static int filter_value(sl_yamlop_target target, const char *path, sl_yamlop_cmp cmp,
                        const char *operand, const char *value)
{
    char err[256];
    sl_yamlop *op = sl__yamlops_filter_new(target, path, cmp, operand, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    sl_record r = rec(value);
    int rc = sl__yamlops_filter(&r, op);
    sl__yamlops_destroy(op);
    return rc;
}

static int filter_json(const char *path, sl_yamlop_cmp cmp, const char *operand, const char *json)
{
    return filter_value(SL_YOP_ON_JSON, path, cmp, operand, json);
}

/* The tokens of a split, joined with '|'. */
static void split_all(const char *delim, const char *s, size_t len, char *buf, size_t size)
{
    char err[128];
    sl_yamlop *op = sl__yamlops_split_new(delim, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    size_t pos = 0, off = 0;
    const char *tok;
    size_t toklen;
    buf[0] = '\0';
    while (sl__yamlops_split_next(op, s, len, &pos, &tok, &toklen)) {
        off += (size_t)snprintf(buf + off, size - off, "%s%.*s", off ? "|" : "", (int)toklen, tok);
    }
    sl__yamlops_destroy(op);
}

/* ==== Split ==== */

static void test_split_whitespace_drops_empty_tokens(void)
{
    char buf[256];
    const char *s = "  the\tquick  brown\r\nfox ";
    split_all(NULL, s, strlen(s), buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "the|quick|brown|fox");
    split_all(NULL, "", 0, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "");
    split_all(NULL, "   ", 3, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "");
}

static void test_split_delimiter(void)
{
    char buf[256];
    split_all(",", "a,,b,c,", 7, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "a|b|c");
    split_all("::", "x::y:z::::w", 11, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "x|y:z|w");
    /* Bytes past the length are not read: the value is not NUL-terminated. */
    split_all(",", "a,b,c", 3, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "a|b");
    char err[128];
    CU_ASSERT_PTR_NULL(sl__yamlops_split_new("", err, sizeof(err)));
}

/* ==== Key and value ==== */

static void test_key_value_bytes(void)
{
    char err[128];
    test_arena a = {0};
    sl_yamlop *op = sl__yamlops_key_new(NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    sl_record out;
    CU_ASSERT_EQUAL(apply(op, "word", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.key_len, 4);
    CU_ASSERT_EQUAL(memcmp(out.key, "word", 4), 0);
    CU_ASSERT_EQUAL(out.value_len, 4);
    sl__yamlops_destroy(op);
    test_free_all(&a);
}

static void test_key_json_nested_paths(void)
{
    char err[128];
    test_arena a = {0};
    sl_record out;
    const char *doc = "{\"user\": {\"id\": \"u\\\"42\", \"n\": 7, \"r\": 0.5, \"ok\": true,"
                      " \"tags\": [\"a\", {\"b\": 3}]}, \"e\": \"\"}";
    static const struct {
        const char *path;
        const char *want;
    } cases[] = {
        {"user.id", "u\"42"},
        {"user.n", "7"},
        {"user.r", "0.5"},
        {"user.ok", "true"},
        {"user.tags.0", "a"},
        {"user.tags.1.b", "3"},
        {"user.tags.1", "{\"b\":3}"},
        {"e", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_yamlop *op = sl__yamlops_key_new(cases[i].path, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(op);
        CU_ASSERT_EQUAL(apply(op, doc, &out, &a), SL_OK);
        CU_ASSERT_EQUAL(out.key_len, strlen(cases[i].want));
        CU_ASSERT_EQUAL(memcmp(out.key, cases[i].want, out.key_len), 0);
        sl__yamlops_destroy(op);
    }
    test_free_all(&a);
}

static void test_key_json_missing_or_malformed_fails_record(void)
{
    char err[128];
    test_arena a = {0};
    sl_record out;
    sl_yamlop *op = sl__yamlops_key_new("user.id", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    static const char *const bad[] = {
        "{\"user\": {}}",
        "{\"user\": 3}",
        "{\"user\": {\"id\": ",
        "not json",
        "",
        "[1,2]",
        "{\"user\": {\"id\": 1}} trailing",
        "\xff\xfe{}",
        "{\"user\": [1]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(apply(op, bad[i], &out, &a), SL_ERR_RECORD);
    }
    sl__yamlops_destroy(op);
    /* Paths with empty segments are refused at load. */
    CU_ASSERT_PTR_NULL(sl__yamlops_key_new("a..b", err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty segment"));
    CU_ASSERT_PTR_NULL(sl__yamlops_key_new("a.", err, sizeof(err)));
    CU_ASSERT_PTR_NULL(sl__yamlops_key_new("", err, sizeof(err)));
    test_free_all(&a);
}

static void test_value_literal(void)
{
    char err[128];
    test_arena a = {0};
    sl_record out;
    sl_yamlop *op = sl__yamlops_value_literal_new("1", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_EQUAL(apply(op, "word", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_INT);
    CU_ASSERT_EQUAL(out.num.i, 1);
    CU_ASSERT_EQUAL(out.value_len, 4); /* the bytes stay */
    sl__yamlops_destroy(op);
    op = sl__yamlops_value_literal_new("-2.5e1", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_EQUAL(apply(op, "x", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_DOUBLE);
    CU_ASSERT_DOUBLE_EQUAL(out.num.d, -25.0, 1e-12);
    sl__yamlops_destroy(op);
    static const char *const bad[] = {"abc", "", "1x", "0x10", "nan", "inf", "1.", "-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (strcmp(bad[i], "1.") == 0) {
            continue; /* "1." is a valid float */
        }
        CU_ASSERT_PTR_NULL(sl__yamlops_value_literal_new(bad[i], err, sizeof(err)));
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a number"));
    test_free_all(&a);
}

/* value: number -- the typed value from the number the value bytes hold as text (what a
 * kafka sink writes for a typed value): an int when it is one, else a double; anything else
 * fails the record. */
static void test_value_number_from_text(void)
{
    char err[128];
    test_arena a = {0};
    sl_record out;
    sl_yamlop *op = sl__yamlops_value_from_new(SL_YOP_ON_VALUE, NULL, false, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_EQUAL(apply(op, "42", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_INT);
    CU_ASSERT_EQUAL(out.num.i, 42);
    CU_ASSERT_EQUAL(out.value_len, 2); /* the bytes stay */
    CU_ASSERT_EQUAL(apply(op, " -7\n", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_INT);
    CU_ASSERT_EQUAL(out.num.i, -7);
    CU_ASSERT_EQUAL(apply(op, "9223372036854775807", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_INT);
    CU_ASSERT_EQUAL(out.num.i, INT64_MAX);
    CU_ASSERT_EQUAL(apply(op, "2.5", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_DOUBLE);
    CU_ASSERT_DOUBLE_EQUAL(out.num.d, 2.5, 1e-12);
    CU_ASSERT_EQUAL(apply(op, "1e3", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_DOUBLE);
    CU_ASSERT_DOUBLE_EQUAL(out.num.d, 1000.0, 1e-12);
    /* Too large for an int: a double. */
    CU_ASSERT_EQUAL(apply(op, "9223372036854775808", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_DOUBLE);
    static const char *const bad[] = {"", "  ", "abc", "12x", "0x10", "nan", "inf", "1 2", "-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(apply(op, bad[i], &out, &a), SL_ERR_RECORD);
    }
    /* Bytes without a terminating NUL: only value_len of them are read. */
    sl_record in = rec("123456");
    in.value_len = 3;
    out = in;
    CU_ASSERT_EQUAL(sl__yamlops_apply(op, &in, &out, test_alloc, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num.i, 123);
    sl_record none = {0};
    out = none;
    CU_ASSERT_EQUAL(sl__yamlops_apply(op, &none, &out, test_alloc, &a), SL_ERR_RECORD);
    sl__yamlops_destroy(op);
    /* The value bytes are already text. */
    CU_ASSERT_PTR_NULL(sl__yamlops_value_from_new(SL_YOP_ON_VALUE, NULL, true, err, sizeof(err)));
    test_free_all(&a);
}

static void test_value_json_number_and_text(void)
{
    char err[128];
    test_arena a = {0};
    sl_record out;
    sl_yamlop *num = sl__yamlops_value_json_new("order.amount", false, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(num);
    CU_ASSERT_EQUAL(apply(num, "{\"order\": {\"amount\": 12}}", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_INT);
    CU_ASSERT_EQUAL(out.num.i, 12);
    CU_ASSERT_EQUAL(apply(num, "{\"order\": {\"amount\": 1.25}}", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_DOUBLE);
    CU_ASSERT_DOUBLE_EQUAL(out.num.d, 1.25, 1e-12);
    /* A string that holds a number is a number. */
    CU_ASSERT_EQUAL(apply(num, "{\"order\": {\"amount\": \" 7 \"}}", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.num.i, 7);
    CU_ASSERT_EQUAL(apply(num, "{\"order\": {\"amount\": \"seven\"}}", &out, &a), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(apply(num, "{\"order\": {\"amount\": true}}", &out, &a), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(apply(num, "{\"order\": {}}", &out, &a), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(apply(num, "{\"order\": {\"amount\": 1", &out, &a), SL_ERR_RECORD);
    sl__yamlops_destroy(num);

    sl_yamlop *text = sl__yamlops_value_json_new("name", true, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_EQUAL(apply(text, "{\"name\": \"caf\\u00e9\"}", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.value_len, 5);
    CU_ASSERT_EQUAL(memcmp(out.value, "caf\xc3\xa9", 5), 0);
    CU_ASSERT_EQUAL(apply(text, "{\"name\": 3.0e2}", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.value_len, 3);
    CU_ASSERT_EQUAL(memcmp(out.value, "300", 3), 0);
    CU_ASSERT_EQUAL(apply(text, "{\"name\": 0.1}", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.value_len, 3);
    CU_ASSERT_EQUAL(memcmp(out.value, "0.1", 3), 0);
    CU_ASSERT_EQUAL(apply(text, "{\"nam\": 1}", &out, &a), SL_ERR_RECORD);
    sl__yamlops_destroy(text);
    test_free_all(&a);
}

static void test_map_lower_upper_trim(void)
{
    char err[128];
    test_arena a = {0};
    sl_record out;
    sl_yamlop *lower = sl__yamlops_transform_new("lower", err, sizeof(err));
    sl_yamlop *upper = sl__yamlops_transform_new("upper", err, sizeof(err));
    sl_yamlop *trim = sl__yamlops_transform_new("trim", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(lower);
    CU_ASSERT_PTR_NOT_NULL_FATAL(upper);
    CU_ASSERT_PTR_NOT_NULL_FATAL(trim);
    const char *in = "The River";
    CU_ASSERT_EQUAL(apply(lower, in, &out, &a), SL_OK);
    CU_ASSERT_EQUAL(memcmp(out.value, "the river", 9), 0);
    CU_ASSERT_STRING_EQUAL(in, "The River"); /* the input is not changed */
    CU_ASSERT_EQUAL(apply(upper, in, &out, &a), SL_OK);
    CU_ASSERT_EQUAL(memcmp(out.value, "THE RIVER", 9), 0);
    CU_ASSERT_EQUAL(apply(trim, " \t x y \r\n", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.value_len, 3);
    CU_ASSERT_EQUAL(memcmp(out.value, "x y", 3), 0);
    CU_ASSERT_EQUAL(apply(trim, "   ", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.value_len, 0);
    CU_ASSERT_EQUAL(apply(lower, "", &out, &a), SL_OK);
    CU_ASSERT_EQUAL(out.value_len, 0);
    CU_ASSERT_PTR_NULL(sl__yamlops_transform_new("title", err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "lower, upper, trim"));
    sl__yamlops_destroy(lower);
    sl__yamlops_destroy(upper);
    sl__yamlops_destroy(trim);
    test_free_all(&a);
}

/* ==== Filters ==== */

static void test_filter_json_equals_and_missing_fields(void)
{
    const char *err_line = "{\"level\": \"error\", \"code\": 5, \"ctx\": {\"host\": \"a1\"}}";
    CU_ASSERT_EQUAL(filter_json("level", SL_YOP_EQUALS, "error", err_line), 1);
    CU_ASSERT_EQUAL(filter_json("level", SL_YOP_EQUALS, "warn", err_line), 0);
    CU_ASSERT_EQUAL(filter_json("level", SL_YOP_NOT_EQUALS, "warn", err_line), 1);
    CU_ASSERT_EQUAL(filter_json("ctx.host", SL_YOP_EQUALS, "a1", err_line), 1);
    /* Numbers compare as numbers when both sides are numbers. */
    CU_ASSERT_EQUAL(filter_json("code", SL_YOP_EQUALS, "5.0", err_line), 1);
    CU_ASSERT_EQUAL(filter_json("code", SL_YOP_NOT_EQUALS, "5", err_line), 0);
    /* A missing field equals nothing. */
    CU_ASSERT_EQUAL(filter_json("nope", SL_YOP_EQUALS, "error", err_line), 0);
    CU_ASSERT_EQUAL(filter_json("nope", SL_YOP_NOT_EQUALS, "error", err_line), 1);
    CU_ASSERT_EQUAL(filter_json("nope", SL_YOP_GT, "1", err_line), 0);
    CU_ASSERT_EQUAL(filter_json("nope", SL_YOP_MATCHES, ".*", err_line), 0);
    CU_ASSERT_EQUAL(filter_json("level.x", SL_YOP_CONTAINS, "e", err_line), 0);
}

static void test_filter_json_numeric_compares(void)
{
    const char *doc = "{\"n\": 10, \"d\": 2.5, \"s\": \"12\", \"t\": \"abc\", \"b\": false}";
    CU_ASSERT_EQUAL(filter_json("n", SL_YOP_GT, "9", doc), 1);
    CU_ASSERT_EQUAL(filter_json("n", SL_YOP_GT, "10", doc), 0);
    CU_ASSERT_EQUAL(filter_json("n", SL_YOP_GE, "10", doc), 1);
    CU_ASSERT_EQUAL(filter_json("n", SL_YOP_LT, "10.5", doc), 1);
    CU_ASSERT_EQUAL(filter_json("n", SL_YOP_LE, "9.99", doc), 0);
    CU_ASSERT_EQUAL(filter_json("d", SL_YOP_GT, "2", doc), 1);
    CU_ASSERT_EQUAL(filter_json("d", SL_YOP_LE, "2.5", doc), 1);
    CU_ASSERT_EQUAL(filter_json("s", SL_YOP_GT, "11", doc), 1);
    /* A field that is no number cannot be compared: the record fails. */
    CU_ASSERT_EQUAL(filter_json("t", SL_YOP_GT, "1", doc), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(filter_json("b", SL_YOP_LT, "1", doc), SL_ERR_RECORD);
    /* Large integers compare exactly. */
    CU_ASSERT_EQUAL(filter_json("x", SL_YOP_GT, "9007199254740992", "{\"x\": 9007199254740993}"),
                    1);
}

static void test_filter_contains_and_regex(void)
{
    const char *doc = "{\"msg\": \"disk full on /dev/sda1\", \"n\": 42}";
    CU_ASSERT_EQUAL(filter_json("msg", SL_YOP_CONTAINS, "full", doc), 1);
    CU_ASSERT_EQUAL(filter_json("msg", SL_YOP_CONTAINS, "empty", doc), 0);
    CU_ASSERT_EQUAL(filter_json("msg", SL_YOP_MATCHES, "^disk (full|empty)", doc), 1);
    CU_ASSERT_EQUAL(filter_json("msg", SL_YOP_MATCHES, "sda[0-9]$", doc), 1);
    CU_ASSERT_EQUAL(filter_json("msg", SL_YOP_MATCHES, "^full", doc), 0);
    CU_ASSERT_EQUAL(filter_json("n", SL_YOP_MATCHES, "^4[0-9]$", doc), 1);
    CU_ASSERT_EQUAL(filter_value(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, "^[a-z]+$", "word"), 1);
    CU_ASSERT_EQUAL(filter_value(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, "^[a-z]+$", "w0rd"), 0);
    CU_ASSERT_EQUAL(filter_value(SL_YOP_ON_VALUE, NULL, SL_YOP_CONTAINS, "or", "word"), 1);

    /* The regex sees only value_len bytes: "abcX" with length 3 ends at "c". */
    char err[256];
    sl_yamlop *op =
        sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, "c$", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    sl_record r = rec("abcX");
    r.value_len = 3;
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, op), 1);
    r.value_len = 4;
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, op), 0);
    sl__yamlops_destroy(op);

    /* A bad regex is refused when the op is built, with regerror's reason. */
    CU_ASSERT_PTR_NULL(
        sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, "a(b", err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad regular expression 'a(b'"));
    CU_ASSERT_PTR_NULL(
        sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_GT, "ten", err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "gt needs a number"));
}

static void test_filter_value_bytes_typed_value_and_key(void)
{
    char err[256];
    /* Bytes: equals is exact. */
    CU_ASSERT_EQUAL(filter_value(SL_YOP_ON_VALUE, NULL, SL_YOP_EQUALS, "error", "error"), 1);
    CU_ASSERT_EQUAL(filter_value(SL_YOP_ON_VALUE, NULL, SL_YOP_EQUALS, "error", "errors"), 0);
    /* Numeric compares parse the bytes when there is no typed value. */
    CU_ASSERT_EQUAL(filter_value(SL_YOP_ON_VALUE, NULL, SL_YOP_GT, "3", "4"), 1);
    CU_ASSERT_EQUAL(filter_value(SL_YOP_ON_VALUE, NULL, SL_YOP_GT, "3", "four"), SL_ERR_RECORD);
    /* The typed value wins when there is one. */
    sl_yamlop *gt =
        sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_GT, "100", err, sizeof(err));
    sl_yamlop *eq =
        sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_EQUALS, "3", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(gt);
    CU_ASSERT_PTR_NOT_NULL_FATAL(eq);
    sl_record r = keyed("word", "");
    sl_record_set_int(&r, 150);
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, gt), 1);
    sl_record_set_double(&r, 99.5);
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, gt), 0);
    sl_record_set_int(&r, 3);
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, eq), 1);
    sl__yamlops_destroy(gt);
    sl__yamlops_destroy(eq);
    /* key: true looks at the key. */
    sl_yamlop *k =
        sl__yamlops_filter_new(SL_YOP_ON_KEY, NULL, SL_YOP_MATCHES, "^u[0-9]+$", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    r = keyed("u42", "value");
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, k), 1);
    r = keyed("x42", "u42");
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, k), 0);
    sl__yamlops_destroy(k);
}

static void test_filter_malformed_json_fails_record(void)
{
    static const char *const bad[] = {
        "", "{", "{\"a\":}", "nul", "{\"a\": 1,}", "\"unterminated", "{\"a\": [1, 2}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT(filter_json("a", SL_YOP_EQUALS, "1", bad[i]) < 0);
        CU_ASSERT(filter_json("a", SL_YOP_NOT_EQUALS, "1", bad[i]) < 0);
    }
}

/* Random and truncated inputs: every op returns a code, none crashes. */
static void test_ops_survive_garbage(void)
{
    char err[256];
    test_arena a = {0};
    sl_yamlop *ops[] = {
        sl__yamlops_key_new("a.b.0", err, sizeof(err)),
        sl__yamlops_value_json_new("a", false, err, sizeof(err)),
        sl__yamlops_value_json_new("a.b", true, err, sizeof(err)),
    };
    sl_yamlop *flt =
        sl__yamlops_filter_new(SL_YOP_ON_JSON, "a", SL_YOP_MATCHES, "x", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(flt);
    const char *good = "{\"a\": {\"b\": [\"x\", 2]}, \"c\": \"\\u0000\"}";
    char buf[128];
    unsigned seed = 12345;
    for (int iter = 0; iter < 4000; iter++) {
        size_t len;
        if (iter % 2 == 0) {
            len = (size_t)iter % strlen(good); /* truncated JSON */
            memcpy(buf, good, len);
        } else {
            len = (size_t)(rand_r(&seed) % sizeof(buf));
            for (size_t i = 0; i < len; i++) {
                buf[i] = "{}[]\":,0123456789.eE-+abtrufnl\\ \x00\xff"[rand_r(&seed) % 35];
            }
        }
        sl_record in = {.value = buf, .value_len = (uint32_t)len};
        for (size_t k = 0; k < 3; k++) {
            CU_ASSERT_PTR_NOT_NULL_FATAL(ops[k]);
            sl_record out = in;
            int rc = sl__yamlops_apply(ops[k], &in, &out, test_alloc, &a);
            CU_ASSERT(rc == SL_OK || rc == SL_ERR_RECORD);
            test_free_all(&a);
        }
        int rc = sl__yamlops_filter(&in, flt);
        CU_ASSERT(rc == 0 || rc == 1 || rc == SL_ERR_RECORD);
    }
    for (size_t k = 0; k < 3; k++) {
        sl__yamlops_destroy(ops[k]);
    }
    sl__yamlops_destroy(flt);
    sl__yamlops_destroy(NULL);
}

/* ==== Record meta and Kafka headers ==== */

/* A record from Kafka: topic "orders", partition 3, offset 42, ts 1700000000123, with the
 * headers trace=t-9, null (a null value), empty (""), num=17, dup=first, dup=last. */
static const sl_header kafka_headers[] = {
    {.name = "trace", .value = "t-9", .value_len = 3},
    {.name = "null", .value = NULL, .value_len = 0},
    {.name = "empty", .value = "", .value_len = 0},
    {.name = "num", .value = "17", .value_len = 2},
    {.name = "dup", .value = "first", .value_len = 5},
    {.name = "dup", .value = "last", .value_len = 4},
};
static const sl_record_meta kafka_meta = {
    .source = "kin",
    .topic = "orders",
    .partition = 3,
    .offset = 42,
    .headers = kafka_headers,
    .nheaders = 6,
};

static sl_record kafka_rec(void)
{
    sl_record r = keyed("k1", "{\"a\":1}");
    r.ts = 1700000000123LL;
    r.meta = &kafka_meta;
    return r;
}

/* Applies op to kafka_rec(); the key or value bytes of the result as text in buf. */
static int apply_kafka(const sl_yamlop *op, bool want_key, char *buf, size_t size, sl_record *out)
{
    test_arena a = {0};
    sl_record in = kafka_rec();
    *out = in;
    int rc = sl__yamlops_apply(op, &in, out, test_alloc, &a);
    snprintf(buf, size, "%.*s", (int)(want_key ? out->key_len : out->value_len),
             want_key ? (out->key ? out->key : "") : (out->value ? out->value : ""));
    test_free_all(&a);
    return rc;
}

static void test_record_header_lookup(void)
{
    sl_record r = kafka_rec();
    const sl_header *h = sl_record_header(&r, "trace");
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(h->value_len, 3);
    CU_ASSERT_EQUAL(memcmp(h->value, "t-9", 3), 0);
    /* A repeated name: the last one (Kafka's lastHeader). */
    h = sl_record_header(&r, "dup");
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(memcmp(h->value, "last", 4), 0);
    /* A null value is there, with value NULL; an empty one is not null. */
    h = sl_record_header(&r, "null");
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_NULL(h->value);
    h = sl_record_header(&r, "empty");
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_NOT_NULL(h->value);
    CU_ASSERT_PTR_NULL(sl_record_header(&r, "TRACE")); /* names are case-sensitive */
    CU_ASSERT_PTR_NULL(sl_record_header(&r, "missing"));
    sl_record bare = rec("x");
    CU_ASSERT_PTR_NULL(sl_record_header(&bare, "trace"));
}

static void test_key_from_meta_and_headers(void)
{
    static const struct {
        sl_yamlop_target target;
        const char *name;
        const char *key;
    } cases[] = {
        {SL_YOP_ON_META, "topic", "orders"},
        {SL_YOP_ON_META, "partition", "3"},
        {SL_YOP_ON_META, "offset", "42"},
        {SL_YOP_ON_META, "source", "kin"},
        {SL_YOP_ON_META, "timestamp", "1700000000123"},
        {SL_YOP_ON_HEADER, "trace", "t-9"},
        {SL_YOP_ON_HEADER, "dup", "last"},
        {SL_YOP_ON_HEADER, "null", ""},
        {SL_YOP_ON_HEADER, "empty", ""},
        {SL_YOP_ON_JSON, "a", "1"},
        {SL_YOP_ON_VALUE, NULL, "{\"a\":1}"},
    };
    char err[256], buf[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_yamlop *op = sl__yamlops_key_from_new(cases[i].target, cases[i].name, err, sizeof(err));
        CU_ASSERT_PTR_NOT_NULL_FATAL(op);
        sl_record out;
        CU_ASSERT_EQUAL(apply_kafka(op, true, buf, sizeof(buf), &out), SL_OK);
        CU_ASSERT_STRING_EQUAL(buf, cases[i].key);
        CU_ASSERT_EQUAL(out.value_len, 7); /* the value is left alone */
        sl__yamlops_destroy(op);
    }
}

static void test_meta_and_header_missing_fail_record(void)
{
    char err[256];
    sl_yamlop *hdr = sl__yamlops_key_from_new(SL_YOP_ON_HEADER, "nope", err, sizeof(err));
    sl_yamlop *part = sl__yamlops_key_from_new(SL_YOP_ON_META, "partition", err, sizeof(err));
    sl_yamlop *topic = sl__yamlops_value_from_new(SL_YOP_ON_META, "topic", true, err, sizeof(err));
    sl_yamlop *ts =
        sl__yamlops_value_from_new(SL_YOP_ON_META, "timestamp", false, err, sizeof(err));
    CU_ASSERT_FATAL(hdr && part && topic && ts);
    char buf[64];
    sl_record out;
    CU_ASSERT_EQUAL(apply_kafka(hdr, true, buf, sizeof(buf), &out), SL_ERR_RECORD);
    /* A record without a meta (an aggregate) has no partition or topic, but a timestamp. */
    test_arena a = {0};
    sl_record in = rec("v");
    in.ts = 5;
    out = in;
    CU_ASSERT_EQUAL(sl__yamlops_apply(part, &in, &out, test_alloc, &a), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(sl__yamlops_apply(topic, &in, &out, test_alloc, &a), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(sl__yamlops_apply(hdr, &in, &out, test_alloc, &a), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(sl__yamlops_apply(ts, &in, &out, test_alloc, &a), SL_OK);
    CU_ASSERT(out.num_type == SL_NUM_INT && out.num.i == 5);
    /* A partition of -1 (a file or TCP source) is none. */
    sl_record_meta m = {.source = "lines", .topic = NULL, .partition = -1, .offset = 7};
    in.meta = &m;
    out = in;
    CU_ASSERT_EQUAL(sl__yamlops_apply(part, &in, &out, test_alloc, &a), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(sl__yamlops_apply(topic, &in, &out, test_alloc, &a), SL_ERR_RECORD);
    test_free_all(&a);
    sl__yamlops_destroy(hdr);
    sl__yamlops_destroy(part);
    sl__yamlops_destroy(topic);
    sl__yamlops_destroy(ts);
}

static void test_value_from_meta_and_headers(void)
{
    char err[256], buf[64];
    sl_record out;
    /* Integers become typed integers; the value bytes stay. */
    sl_yamlop *off = sl__yamlops_value_from_new(SL_YOP_ON_META, "offset", false, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(off);
    CU_ASSERT_EQUAL(apply_kafka(off, false, buf, sizeof(buf), &out), SL_OK);
    CU_ASSERT(out.num_type == SL_NUM_INT && out.num.i == 42);
    CU_ASSERT_STRING_EQUAL(buf, "{\"a\":1}");
    sl__yamlops_destroy(off);
    /* as text: the decimal text as the value bytes. */
    sl_yamlop *part =
        sl__yamlops_value_from_new(SL_YOP_ON_META, "partition", true, err, sizeof(err));
    CU_ASSERT_EQUAL(apply_kafka(part, false, buf, sizeof(buf), &out), SL_OK);
    CU_ASSERT_STRING_EQUAL(buf, "3");
    sl__yamlops_destroy(part);
    /* A header as text, and as a number (text holding one). */
    sl_yamlop *tr = sl__yamlops_value_from_new(SL_YOP_ON_HEADER, "trace", true, err, sizeof(err));
    CU_ASSERT_EQUAL(apply_kafka(tr, false, buf, sizeof(buf), &out), SL_OK);
    CU_ASSERT_STRING_EQUAL(buf, "t-9");
    CU_ASSERT_EQUAL(out.num_type, SL_NUM_NONE);
    sl__yamlops_destroy(tr);
    sl_yamlop *num = sl__yamlops_value_from_new(SL_YOP_ON_HEADER, "num", false, err, sizeof(err));
    CU_ASSERT_EQUAL(apply_kafka(num, false, buf, sizeof(buf), &out), SL_OK);
    CU_ASSERT(out.num_type == SL_NUM_INT && out.num.i == 17);
    sl__yamlops_destroy(num);
    /* Not a number, or a null value where a number is needed: rejected. */
    sl_yamlop *bad = sl__yamlops_value_from_new(SL_YOP_ON_HEADER, "trace", false, err, sizeof(err));
    CU_ASSERT_EQUAL(apply_kafka(bad, false, buf, sizeof(buf), &out), SL_ERR_RECORD);
    sl__yamlops_destroy(bad);
    bad = sl__yamlops_value_from_new(SL_YOP_ON_HEADER, "null", false, err, sizeof(err));
    CU_ASSERT_EQUAL(apply_kafka(bad, false, buf, sizeof(buf), &out), SL_ERR_RECORD);
    sl__yamlops_destroy(bad);
    /* A null value as text is empty. */
    sl_yamlop *nul = sl__yamlops_value_from_new(SL_YOP_ON_HEADER, "null", true, err, sizeof(err));
    CU_ASSERT_EQUAL(apply_kafka(nul, false, buf, sizeof(buf), &out), SL_OK);
    CU_ASSERT_EQUAL(out.value_len, 0);
    sl__yamlops_destroy(nul);
}

static void test_meta_and_header_bad_names_rejected(void)
{
    char err[256];
    CU_ASSERT_PTR_NULL(sl__yamlops_key_from_new(SL_YOP_ON_META, "offsets", err, sizeof(err)));
    CU_ASSERT(strstr(err, "unknown meta 'offsets'") && strstr(err, "partition"));
    CU_ASSERT_PTR_NULL(
        sl__yamlops_filter_new(SL_YOP_ON_META, "lag", SL_YOP_EQUALS, "1", err, sizeof(err)));
    CU_ASSERT(strstr(err, "unknown meta 'lag'") != NULL);
    CU_ASSERT_PTR_NULL(sl__yamlops_key_from_new(SL_YOP_ON_HEADER, "", err, sizeof(err)));
    CU_ASSERT(strstr(err, "empty header name") != NULL);
    CU_ASSERT_PTR_NULL(
        sl__yamlops_value_from_new(SL_YOP_ON_META, "topic", false, err, sizeof(err)));
    CU_ASSERT(strstr(err, "as: text") != NULL);
    CU_ASSERT_PTR_NULL(sl__yamlops_key_from_new(SL_YOP_ON_KEY, NULL, err, sizeof(err)));
    CU_ASSERT_EQUAL(sl__yamlops_meta_from_name("timestamp"), SL_YOP_META_TIMESTAMP);
    CU_ASSERT_EQUAL(sl__yamlops_meta_from_name("ts"), -1);
}

static int filter_kafka(sl_yamlop_target target, const char *name, sl_yamlop_cmp cmp,
                        const char *operand)
{
    char err[256];
    sl_yamlop *op = sl__yamlops_filter_new(target, name, cmp, operand, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    sl_record r = kafka_rec();
    int rc = sl__yamlops_filter(&r, op);
    sl__yamlops_destroy(op);
    return rc;
}

static void test_filter_meta_and_headers(void)
{
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "partition", SL_YOP_EQUALS, "3"), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "partition", SL_YOP_EQUALS, "4"), 0);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "partition", SL_YOP_EQUALS, "3.0"), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "partition", SL_YOP_NOT_EQUALS, "3"), 0);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "offset", SL_YOP_GE, "42"), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "offset", SL_YOP_GT, "42"), 0);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "offset", SL_YOP_MATCHES, "^4[0-9]$"), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "timestamp", SL_YOP_LT, "1800000000000"), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "topic", SL_YOP_EQUALS, "orders"), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "source", SL_YOP_CONTAINS, "ki"), 1);
    /* Text in a numeric compare: the record is rejected, like a JSON string. */
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_META, "topic", SL_YOP_GT, "1"), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_HEADER, "trace", SL_YOP_EQUALS, "t-9"), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_HEADER, "trace", SL_YOP_EQUALS, "t-1"), 0);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_HEADER, "dup", SL_YOP_EQUALS, "last"), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_HEADER, "num", SL_YOP_GT, "16.5"), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_HEADER, "trace", SL_YOP_GT, "1"), SL_ERR_RECORD);
    /* A null value compares as empty text; a missing header matches only not_equals. */
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_HEADER, "null", SL_YOP_EQUALS, ""), 1);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_HEADER, "missing", SL_YOP_EQUALS, ""), 0);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_HEADER, "missing", SL_YOP_CONTAINS, ""), 0);
    CU_ASSERT_EQUAL(filter_kafka(SL_YOP_ON_HEADER, "missing", SL_YOP_NOT_EQUALS, "x"), 1);
    /* A record without a meta: no partition (no match), but a timestamp. */
    char err[256];
    sl_yamlop *op =
        sl__yamlops_filter_new(SL_YOP_ON_META, "partition", SL_YOP_EQUALS, "0", err, sizeof(err));
    sl_record r = rec("x");
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, op), 0);
    sl__yamlops_destroy(op);
}

/* Keyed by a header and counted through the engine: records without the header are
 * rejected (counted as failed), with headers carried by the scripted source's records. */
static void test_header_ops_in_a_pipeline(void)
{
    char err[256];
    sl_yamlop *key = sl__yamlops_key_from_new(SL_YOP_ON_HEADER, "tenant", err, sizeof(err));
    sl_yamlop *one = sl__yamlops_value_literal_new("1", err, sizeof(err));
    sl_yamlop *flt = sl__yamlops_filter_new(SL_YOP_ON_META, "partition", SL_YOP_NOT_EQUALS, "9",
                                            err, sizeof(err));
    CU_ASSERT_FATAL(key && one && flt);
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "in", &src);
    s = sl_stream_filter(s, sl__yamlops_filter, flt);
    s = sl_stream_key_by(s, sl__yamlops_map, key);
    s = sl_stream_map_values(s, sl__yamlops_map, one);
    s = sl_stream_reduce_by_key(s, sl_reduce_sum, NULL, 0);
    ts_out out;
    CU_ASSERT_EQUAL_FATAL(ts_collect(s, &out), SL_OK);
    static const sl_header ha[] = {{.name = "tenant", .value = "acme", .value_len = 4}};
    static const sl_header hb[] = {{.name = "x", .value = NULL},
                                   {.name = "tenant", .value = "bolt", .value_len = 4}};
    sl_record_meta ma = {
        .source = "in", .topic = "t", .partition = 0, .headers = ha, .nheaders = 1};
    sl_record_meta mb = {
        .source = "in", .topic = "t", .partition = 1, .headers = hb, .nheaders = 2};
    sl_record_meta mn = {.source = "in", .topic = "t", .partition = 2}; /* no headers */
    sl_record_meta m9 = {
        .source = "in", .topic = "t", .partition = 9, .headers = ha, .nheaders = 1};
    sl_record recs[6];
    const sl_record_meta *metas[6] = {&ma, &mb, &ma, &mn, &m9, &mb};
    for (int i = 0; i < 6; i++) {
        recs[i] = rec("v");
        recs[i].meta = metas[i];
    }
    ts_feed_records(src, recs, 6);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, &info), SL_OK);
    CU_ASSERT_STRING_EQUAL(out.text, "acme:2 bolt:2");
    CU_ASSERT_EQUAL(info.failed_records, 1); /* the record without headers */
    sl_context_destroy(ctx);
    sl__yamlops_destroy(key);
    sl__yamlops_destroy(one);
    sl__yamlops_destroy(flt);
}

/* ==== In YAML (sl_config) ==== */

/* A pipeline with `op` as its only op (on line 11, column 9). */
static char *yaml_with_op(const char *op)
{
    static const char head[] = "app:\n"                 /* 1 */
                               "  batch_interval: 1s\n" /* 2 */
                               "sources:\n"             /* 3 */
                               "  - name: lines\n"      /* 4 */
                               "    type: tcp\n"        /* 5 */
                               "    port: 9999\n"       /* 6 */
                               "streams:\n"             /* 7 */
                               "  - name: s\n"          /* 8 */
                               "    from: lines\n"      /* 9 */
                               "    ops:\n"             /* 10 */
                               "      - ";              /* 11 */
    static const char tail[] = "\nsinks:\n  - {name: out, type: stdout, from: s}\n";
    char *y = malloc(sizeof(head) + strlen(op) + sizeof(tail));
    sprintf(y, "%s%s%s", head, op, tail);
    return y;
}

/* Loads the pipeline with op; returns the error (empty when it loaded) in err, and the graph
 * line of the op in desc. */
static int load_op(const char *op, char *err, size_t errsize, char *desc, size_t descsize)
{
    char *y = yaml_with_op(op);
    sl_config *cfg;
    int rc = ts_config_load(y, &cfg, desc, descsize, err, errsize);
    if (rc == SL_OK) {
        sl_context *ctx = sl__config_build(cfg, err, errsize);
        CU_ASSERT_PTR_NOT_NULL(ctx);
        sl_context_destroy(ctx);
    }
    sl__config_destroy(cfg);
    free(y);
    return rc;
}

/* matches is PCRE2: \d, (?i), \b, POSIX classes and possessive quantifiers work; a bad regex
 * fails at load with PCRE2's message and offset, in a pipeline file at the op's line. */
static void test_filter_matches_is_pcre2(void)
{
    static const struct {
        const char *re, *value;
        int want;
    } cases[] = {
        {"\\d{3}", "code 404", 1},         {"\\d{3}", "code 40", 0},
        {"(?i)^error\\b", "ERROR: x", 1},  {"(?i)^error\\b", "errors", 0},
        {"^[[:alpha:]]+$", "abc", 1},      {"a++b", "aaab", 1},
        {"^(cart|login)$", "login", 1},    {"^(cart|login)$", "logout", 0},
        {"[0-9]{2,3}-\\w+", "x 12-ab", 1},
    };
    char err[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CU_ASSERT_EQUAL(
            filter_value(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, cases[i].re, cases[i].value),
            cases[i].want);
    }
    static const char *const bad[] = {"a**", "(ab", "[z-a]", "\\", "(?<n>a)(?<n>b)", NULL};
    for (int i = 0; bad[i]; i++) {
        sl_yamlop *op =
            sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, bad[i], err, sizeof(err));
        CU_ASSERT_PTR_NULL(op);
        sl__yamlops_destroy(op);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad regular expression"));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, " at offset "));
    }
    sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, "a**", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "quantifier does not follow a repeatable item at offset 2"));
    /* In a pipeline file: one line at the op. */
    char desc[256];
    CU_ASSERT_EQUAL(load_op("filter: {matches: \"a**\"}", err, sizeof(err), desc, sizeof(desc)),
                    SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:11:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "quantifier does not follow a repeatable item at offset 2"));
}

/* A record's bytes have no NUL after them: the regex reads value_len bytes only, and NUL
 * bytes inside are bytes. */
static void test_filter_matches_value_without_nul(void)
{
    char err[256];
    sl_yamlop *op =
        sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, "^ab+c$", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    char *v = malloc(4); /* exactly the value, no terminator */
    memcpy(v, "abbc", 4);
    sl_record r = {.value = v, .value_len = 4};
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, op), 1);
    r.value_len = 3;
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, op), 0);
    free(v);
    char *big = malloc(300); /* over the copy's stack buffer */
    memset(big, 'b', 300);
    big[0] = 'a';
    big[299] = 'c';
    r = (sl_record){.value = big, .value_len = 300};
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, op), 1);
    free(big);
    sl__yamlops_destroy(op);
    op = sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, "x$", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    r = (sl_record){.value = "a\0x", .value_len = 3}; /* past a NUL byte */
    CU_ASSERT_EQUAL(sl__yamlops_filter(&r, op), 1);
    sl__yamlops_destroy(op);
}

/* `value: number` in YAML, and through the engine: counts read back as text are summed per
 * key, and a value that is not a number is a failed record. */
static void test_yaml_value_number(void)
{
    char err[1024], desc[4096];
    CU_ASSERT_EQUAL(load_op("value: number", err, sizeof(err), desc, sizeof(desc)), SL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, "value number"));
    CU_ASSERT_EQUAL(load_op("value: numbers", err, sizeof(err), desc, sizeof(desc)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'numbers' is not a number"));

    sl_yamlop *num = sl__yamlops_value_from_new(SL_YOP_ON_VALUE, NULL, false, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(num);
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "in", &src);
    s = sl_stream_map_values(s, sl__yamlops_map, num);
    s = sl_stream_reduce_by_key(s, sl_reduce_sum, NULL, 0);
    ts_out out;
    CU_ASSERT_EQUAL_FATAL(ts_collect(s, &out), SL_OK);
    sl_record_meta m = {.source = "in", .topic = "t", .partition = 3, .offset = 17};
    sl_record recs[] = {keyed("a", "3"), keyed("b", "10"), keyed("a", "4"), keyed("b", "ten"),
                        keyed("c", "")};
    for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
        recs[i].meta = &m;
    }
    ts_feed_records(src, recs, sizeof(recs) / sizeof(recs[0]));
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, &info), SL_OK);
    CU_ASSERT_STRING_EQUAL(out.text, "a:7 b:10");
    CU_ASSERT_EQUAL(info.failed_records, 2);
    sl_context_destroy(ctx);
    sl__yamlops_destroy(num);
}

static void test_yaml_meta_and_header_ops(void)
{
    static const struct {
        const char *op;
        const char *desc;
    } ok[] = {
        {"key: {meta: partition}", "key meta partition"},
        {"key: {meta: topic}", "key meta topic"},
        {"key: {header: tenant}", "key header tenant"},
        {"key: {json: user.id}", "key json user.id"},
        {"value: {meta: offset}", "value meta offset as number"},
        {"value: {meta: timestamp, as: text}", "value meta timestamp as text"},
        {"value: {meta: source}", "value meta source as text"},
        {"value: {header: amount}", "value header amount as number"},
        {"value: {header: trace-id, as: text}", "value header trace-id as text"},
        {"filter: {header: tenant, equals: acme}", "filter header tenant equals 'acme'"},
        {"filter: {meta: partition, equals: 3}", "filter meta partition equals '3'"},
        {"filter: {meta: offset, ge: 100}", "filter meta offset ge '100'"},
        {"filter: {header: env, not_equals: test}", "filter header env not_equals 'test'"},
    };
    char err[1024], desc[4096];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int rc = load_op(ok[i].op, err, sizeof(err), desc, sizeof(desc));
        if (rc != SL_OK || !strstr(desc, ok[i].desc)) {
            fprintf(stderr, "\n    %s: %s%s\n", ok[i].op, err, desc);
        }
        CU_ASSERT_EQUAL(rc, SL_OK);
        CU_ASSERT_PTR_NOT_NULL(strstr(desc, ok[i].desc));
    }
}

static void test_yaml_meta_and_header_errors(void)
{
    static const struct {
        const char *op;
        const char *prefix; /* FILE:LINE:COL: error: */
        const char *words;
    } bad[] = {
        {"key: {meta: offsets}", "t.yaml:11:21: error: ",
         "unknown meta 'offsets' in op 'key' (valid: topic, partition, offset, source, "
         "timestamp)"},
        {"value: {meta: lag}", "t.yaml:11:23: error: ", "unknown meta 'lag' in op 'value'"},
        {"filter: {meta: part, equals: 3}", "t.yaml:11:24: error: ", "unknown meta 'part'"},
        {"value: {meta: topic, as: number}",
         "t.yaml:11:34: error: ", "meta 'topic' is text, not a number: use as: text"},
        {"key: {header: \"\"}", "t.yaml:11:23: error: ", "empty header name in op 'key'"},
        {"key: {json: a, header: b}", "t.yaml:11:32: error: ",
         "op 'key' reads one of json, meta or header, got 'json' and 'header'"},
        {"key: {}", "t.yaml:11:14: error: ", "op 'key' needs one of json: PATH, meta: NAME"},
        {"key: {headers: x}", "t.yaml:11:15: error: ", "unknown key 'headers'"},
        {"filter: {meta: partition, key: true, equals: 1}", "t.yaml:11:40: error: ", "only one"},
        {"key: kafka_key", "t.yaml:11:14: error: ", "{header: NAME}"},
    };
    char err[1024], desc[4096];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = load_op(bad[i].op, err, sizeof(err), desc, sizeof(desc));
        bool ok = rc == SL_ERR_INVAL && strncmp(err, bad[i].prefix, strlen(bad[i].prefix)) == 0 &&
                  strstr(err, bad[i].words) && !strchr(err, '\n');
        if (!ok) {
            fprintf(stderr, "\n    %s: got '%s'\n", bad[i].op, err);
        }
        CU_ASSERT(ok);
    }
}

/* The headers option of the kafka sources after loading yaml: "unset" when not set. */
static void kafka_headers_opts(const char *yaml, char *out, size_t size)
{
    char err[1024];
    sl_config *cfg = NULL;
    out[0] = '\0';
    int rc = sl__config_load_string(yaml, strlen(yaml), "t.yaml", &cfg, err, sizeof(err));
    if (rc != SL_OK) {
        fprintf(stderr, "\n    %s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, SL_OK);
    sl_context *ctx = sl__config_build(cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    size_t off = 0;
    for (sl_instance *ins = ctx->sources; ins; ins = ins->next) {
        const char *h = sl_options_get(ins->opts, "headers");
        off += (size_t)snprintf(out + off, size - off, "%s=%s ", ins->name, h ? h : "unset");
    }
    sl_context_destroy(ctx);
    sl__config_destroy(cfg);
}

/* A YAML pipeline turns headers on for the kafka sources that feed an op reading a header
 * (through streams, unions and joins) or a kafka sink, and leaves the others alone. */
static void test_yaml_kafka_headers_turned_on_when_needed(void)
{
    static const char head[] = "app: {batch_interval: 1s}\n"
                               "sources:\n"
                               "  - {name: a, type: kafka, brokers: embedded, topics: [ta]}\n"
                               "  - {name: b, type: kafka, brokers: embedded, topics: [tb]}\n"
                               "  - {name: c, type: kafka, brokers: embedded, topics: [tc], "
                               "headers: false}\n"
                               "  - {name: d, type: kafka, brokers: embedded, topics: [td]}\n";
    char yaml[4096], got[256];
    /* a feeds a header op; b only a stream without one (a union with a); c says false. */
    snprintf(yaml, sizeof(yaml),
             "%sstreams:\n"
             "  - {name: ab, from: [a, b], ops: [{key: value}]}\n"
             "  - {name: x, from: a, ops: [{filter: {header: h, equals: v}}]}\n"
             "  - {name: y, from: c, ops: [{key: {header: h}}]}\n"
             "sinks:\n"
             "  - {name: o1, type: stdout, from: x}\n"
             "  - {name: o2, type: stdout, from: y}\n"
             "  - {name: o3, type: stdout, from: ab}\n"
             "  - {name: o4, type: stdout, from: d}\n",
             head);
    kafka_headers_opts(yaml, got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "a=true b=unset c=false d=unset ");
    /* A header op after a join reaches both sides; a kafka sink wants its input's. */
    snprintf(yaml, sizeof(yaml),
             "%sstreams:\n"
             "  - {name: j, from: a, ops: [{join: b}, {value: {header: n, as: text}}]}\n"
             "sinks:\n"
             "  - {name: o1, type: stdout, from: j}\n"
             "  - {name: o2, type: kafka, from: d, brokers: embedded, topic: out}\n"
             "  - {name: o3, type: kafka, from: c, brokers: embedded, topic: out2, "
             "headers: false}\n",
             head);
    kafka_headers_opts(yaml, got, sizeof(got));
    CU_ASSERT_STRING_EQUAL(got, "a=true b=true c=false d=true ");
}

/* ==== Through the engine ==== */

/* The ops as operator functions of streams: a JSON word count with a filter, and the
 * failed-record count for malformed lines. */
static void test_ops_in_a_pipeline(void)
{
    char err[256];
    sl_yamlop *flt =
        sl__yamlops_filter_new(SL_YOP_ON_JSON, "level", SL_YOP_EQUALS, "error", err, sizeof(err));
    sl_yamlop *text = sl__yamlops_value_json_new("msg", true, err, sizeof(err));
    sl_yamlop *lower = sl__yamlops_transform_new("lower", err, sizeof(err));
    sl_yamlop *split = sl__yamlops_split_new(NULL, err, sizeof(err));
    sl_yamlop *key = sl__yamlops_key_new(NULL, err, sizeof(err));
    sl_yamlop *one = sl__yamlops_value_literal_new("1", err, sizeof(err));
    CU_ASSERT_FATAL(flt && text && lower && split && key && one);

    sl_context *ctx = ts_context(1000, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "in", &src);
    s = sl_stream_filter(s, sl__yamlops_filter, flt);
    s = sl_stream_map_values(s, sl__yamlops_map, text);
    s = sl_stream_map(s, sl__yamlops_map, lower);
    s = sl_stream_flat_map(s, sl__yamlops_flat_map, split);
    s = sl_stream_key_by(s, sl__yamlops_map, key);
    s = sl_stream_map_values(s, sl__yamlops_map, one);
    s = sl_stream_reduce_by_key(s, sl_reduce_sum, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    ts_out out;
    CU_ASSERT_EQUAL_FATAL(ts_collect(s, &out), SL_OK);
    static const char *const lines[] = {
        "{\"level\": \"error\", \"msg\": \"Disk full\"}",
        "{\"level\": \"info\", \"msg\": \"disk ok\"}",
        "{\"level\": \"error\", \"msg\": \"disk  FULL again\"}",
        "{\"level\": \"error\"",                        /* malformed: fails in the filter */
        "{\"level\": \"error\", \"text\": \"no msg\"}", /* no msg: fails in value */
        NULL,
    };
    ts_feed(src, lines);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, &info), SL_OK);
    CU_ASSERT_STRING_EQUAL(out.text, "again:1 disk:2 full:2");
    CU_ASSERT_EQUAL(info.failed_records, 2);
    sl_context_destroy(ctx);
    sl__yamlops_destroy(flt);
    sl__yamlops_destroy(text);
    sl__yamlops_destroy(lower);
    sl__yamlops_destroy(split);
    sl__yamlops_destroy(key);
    sl__yamlops_destroy(one);
}

/* ==== Burn ==== */

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_burn_parse_and_schedule(void)
{
    int64_t us = -1;
    CU_ASSERT_EQUAL(sl__yamlops_parse_us("20us", &us), SL_OK);
    CU_ASSERT_EQUAL(us, 20);
    CU_ASSERT_EQUAL(sl__yamlops_parse_us("0.5ms", &us), SL_OK);
    CU_ASSERT_EQUAL(us, 500);
    CU_ASSERT_EQUAL(sl__yamlops_parse_us("2s", &us), SL_OK);
    CU_ASSERT_EQUAL(us, 2000000);
    CU_ASSERT_EQUAL(sl__yamlops_parse_us("7", &us), SL_OK);
    CU_ASSERT_EQUAL(us, 7);
    CU_ASSERT_EQUAL(sl__yamlops_parse_us("0us", &us), SL_OK);
    CU_ASSERT_EQUAL(us, 0);
    const char *bad[] = {"", "us", "-1us", "20 parsecs", "20m", "11s", "x20us"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(sl__yamlops_parse_us(bad[i], &us), SL_ERR_INVAL);
    }

    sl_yamlops_burn_step steps[] = {{30000, 40}, {60000, 10}};
    char err[256];
    sl_yamlop *op = sl__yamlops_burn_new(20, steps, 2, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_EQUAL(sl__yamlops_burn_cost_us(op, 0), 20);
    CU_ASSERT_EQUAL(sl__yamlops_burn_cost_us(op, 29999), 20);
    CU_ASSERT_EQUAL(sl__yamlops_burn_cost_us(op, 30000), 40);
    CU_ASSERT_EQUAL(sl__yamlops_burn_cost_us(op, 59999), 40);
    CU_ASSERT_EQUAL(sl__yamlops_burn_cost_us(op, 60000), 10);
    CU_ASSERT_EQUAL(sl__yamlops_burn_cost_us(op, 1000000), 10);
    sl__yamlops_destroy(op);

    sl_yamlops_burn_step unordered[] = {{60000, 40}, {30000, 10}};
    CU_ASSERT_PTR_NULL(sl__yamlops_burn_new(20, unordered, 2, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "increase"));
    CU_ASSERT_PTR_NULL(sl__yamlops_burn_new(-1, NULL, 0, err, sizeof(err)));
}

/* The op passes records on unchanged and costs its CPU time per record, not less. */
static void test_burn_costs_cpu_time(void)
{
    char err[256];
    sl_yamlop *op = sl__yamlops_burn_new(500, NULL, 0, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    test_arena a = {0};
    sl_record in = {.key = "k", .key_len = 1, .value = "v", .value_len = 1};
    sl_record out = in;
    double t0 = thread_cpu_s();
    for (int i = 0; i < 20; i++) {
        out = in;
        CU_ASSERT_EQUAL(sl__yamlops_apply(op, &in, &out, test_alloc, &a), SL_OK);
    }
    double spent = thread_cpu_s() - t0;
    CU_ASSERT(spent >= 0.010);
    CU_ASSERT(spent < 0.050);
    CU_ASSERT_PTR_EQUAL(out.value, in.value);
    CU_ASSERT_EQUAL(out.value_len, 1);
    sl__yamlops_destroy(op);

    /* A schedule starts at the first record: 0us for 100 ms, then 2ms per record. */
    sl_yamlops_burn_step steps[] = {{100, 2000}};
    op = sl__yamlops_burn_new(0, steps, 1, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    t0 = thread_cpu_s();
    CU_ASSERT_EQUAL(sl__yamlops_burn(&in, &out, NULL, op), SL_OK);
    CU_ASSERT(thread_cpu_s() - t0 < 0.001);
    struct timespec pause = {.tv_nsec = 120 * 1000000};
    nanosleep(&pause, NULL);
    t0 = thread_cpu_s();
    CU_ASSERT_EQUAL(sl__yamlops_burn(&in, &out, NULL, op), SL_OK);
    CU_ASSERT(thread_cpu_s() - t0 >= 0.002);
    sl__yamlops_destroy(op);
    test_free_all(&a);
}

void sl_test_register(void)
{
    SL_SUITE("yamlops_split", SL_TEST(split_whitespace_drops_empty_tokens),
             SL_TEST(split_delimiter));
    SL_SUITE("yamlops_key_value", SL_TEST(key_value_bytes), SL_TEST(key_json_nested_paths),
             SL_TEST(key_json_missing_or_malformed_fails_record), SL_TEST(value_literal),
             SL_TEST(value_number_from_text), SL_TEST(yaml_value_number),
             SL_TEST(value_json_number_and_text), SL_TEST(map_lower_upper_trim));
    SL_SUITE("yamlops_filter", SL_TEST(filter_json_equals_and_missing_fields),
             SL_TEST(filter_json_numeric_compares), SL_TEST(filter_contains_and_regex),
             SL_TEST(filter_value_bytes_typed_value_and_key),
             SL_TEST(filter_malformed_json_fails_record), SL_TEST(ops_survive_garbage),
             SL_TEST(filter_matches_is_pcre2), SL_TEST(filter_matches_value_without_nul));
    SL_SUITE("yamlops_meta_headers", SL_TEST(record_header_lookup),
             SL_TEST(key_from_meta_and_headers), SL_TEST(meta_and_header_missing_fail_record),
             SL_TEST(value_from_meta_and_headers), SL_TEST(meta_and_header_bad_names_rejected),
             SL_TEST(filter_meta_and_headers), SL_TEST(header_ops_in_a_pipeline),
             SL_TEST(yaml_meta_and_header_ops), SL_TEST(yaml_meta_and_header_errors),
             SL_TEST(yaml_kafka_headers_turned_on_when_needed));
    SL_SUITE("yamlops_engine", SL_TEST(ops_in_a_pipeline));
    SL_SUITE("yamlops_burn", SL_TEST(burn_parse_and_schedule), SL_TEST(burn_costs_cpu_time));
}

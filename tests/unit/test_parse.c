/* test_parse.c -- the parse op (regexes with named captures, the named log formats) and the
 * JSON shaping ops (set, rename, drop, keep), on their own (sl__yamlops_apply), through the
 * engine (the reasons of rejected records in its log line) and in YAML (config errors,
 * fused chains); and the reasons the other YAML ops give for the records they reject. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_cfg.h"
#include "sl_config.h"
#include "sl_engine.h"
#include "sl_yamlops.h"
#include "support.h"

#define T0 1000000

/* ==== Helpers ==== */

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

/* Applies op to a record with value (and key, if not NULL): the code, and the value it
 * leaves as text in buf (empty after a failure). */
static int apply_kv(const sl_yamlop *op, const char *key, const char *value, char *buf, size_t size)
{
    test_arena a = {0};
    sl_record in = {.value = value, .value_len = (uint32_t)strlen(value)};
    if (key) {
        in.key = key;
        in.key_len = (uint32_t)strlen(key);
    }
    sl_record out = in;
    int rc = sl__yamlops_apply(op, &in, &out, test_alloc, &a);
    snprintf(buf, size, "%.*s", rc == SL_OK ? (int)out.value_len : 0, out.value);
    test_free_all(&a);
    return rc;
}

static int apply(const sl_yamlop *op, const char *value, char *buf, size_t size)
{
    return apply_kv(op, NULL, value, buf, size);
}

/* Asserts that op turns value into want (compact JSON). */
#define CHECK_OUT(op, value, want)                                                                 \
    do {                                                                                           \
        char out_[4096];                                                                           \
        CU_ASSERT_EQUAL(apply((op), (value), out_, sizeof(out_)), SL_OK);                          \
        CU_ASSERT_STRING_EQUAL(out_, (want));                                                      \
        if (strcmp(out_, (want)) != 0) {                                                           \
            fprintf(stderr, "\n  got  %s\n  want %s\n", out_, (want));                             \
        }                                                                                          \
    } while (0)

/* Runs the record r through op (a filter op with sl_stream_filter, else sl_stream_map) in
 * the engine, with stderr captured: the log (where a rejection's reason is) in log, the
 * number of failed records returned. */
static size_t run_record(sl_yamlop *op, bool filter, const sl_record *r, char *log, size_t size)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
    dup2(fileno(tmp), 2);
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "in", &src);
    s = filter ? sl_stream_filter(s, sl__yamlops_filter, op)
               : sl_stream_map(s, sl__yamlops_map, op);
    ts_out out;
    CU_ASSERT_EQUAL(ts_collect(s, &out), SL_OK);
    ts_feed_records(src, r, 1);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, &info), SL_OK);
    sl_context_destroy(ctx);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(log, 1, size - 1, tmp);
    log[n] = '\0';
    fclose(tmp);
    return (size_t)info.failed_records;
}

/* Asserts that op (built by the caller, destroyed here) rejects r with reason. */
static void check_op_reason(sl_yamlop *op, bool filter, const sl_record *r, const char *reason)
{
    char log[4096], want[512];
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_EQUAL(run_record(op, filter, r, log, sizeof(log)), 1);
    snprintf(want, sizeof(want), "rejected a record (%s) from ", reason);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, want));
    if (!strstr(log, want)) {
        fprintf(stderr, "\n  log: %s  want: %s\n", log, want);
    }
    sl__yamlops_destroy(op);
}

/* Runs one record with value (from "in" topic t partition 0 offset 7) through op. */
static size_t run_logged(sl_yamlop *op, const char *value, char *log, size_t size)
{
    static const sl_record_meta m = {.source = "in", .topic = "t", .partition = 0, .offset = 7};
    sl_record r = {.value = value, .value_len = (uint32_t)strlen(value), .meta = &m};
    return run_record(op, false, &r, log, size);
}

/* Asserts that op rejects value, and that the engine's log line gives reason. */
static void check_reason(sl_yamlop *op, const char *value, const char *reason)
{
    char log[4096], want[512];
    CU_ASSERT_EQUAL(run_logged(op, value, log, sizeof(log)), 1);
    snprintf(want, sizeof(want), "rejected a record (%s) from in t partition 0 offset 7", reason);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, want));
    if (!strstr(log, want)) {
        fprintf(stderr, "\n  log: %s  want: %s\n", log, want);
    }
}

static sl_yamlop *parse_re(const char *re, const sl_yamlops_capture_type *types, size_t ntypes)
{
    char err[512];
    sl_yamlop *op =
        sl__yamlops_parse_new(SL_YOP_ON_VALUE, NULL, re, NULL, types, ntypes, err, sizeof(err));
    if (!op) {
        fprintf(stderr, "\n%s: %s\n", re, err);
    }
    return op;
}

static sl_yamlop *parse_fmt(const char *format)
{
    char err[512];
    return sl__yamlops_parse_new(SL_YOP_ON_VALUE, NULL, NULL, format, NULL, 0, err, sizeof(err));
}

/* ==== parse with a regex ==== */

static void test_parse_regex_named_captures_become_fields(void)
{
    static const sl_yamlops_capture_type types[] = {{"status", "int"}};
    sl_yamlop *op = parse_re("^(?<ip>\\S+) .* (?<status>\\d{3}) ", types, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "10.1.2.3 - GET /x 404 12", "{\"ip\":\"10.1.2.3\",\"status\":404}");
    sl__yamlops_destroy(op);
    /* PCRE2 syntax: (?i), \d, \b; the fields come in the pattern's order, not by name */
    op = parse_re("(?i)^(?<zlevel>error|warn)\\b\\D*(?<acode>\\d+)", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "ERROR: disk 42 full", "{\"zlevel\":\"ERROR\",\"acode\":\"42\"}");
    sl__yamlops_destroy(op);
}

static void test_parse_group_outside_the_match_is_absent(void)
{
    sl_yamlop *op = parse_re("^(?<a>\\d+)(?:-(?<b>\\d+))?$", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "12", "{\"a\":\"12\"}");
    CHECK_OUT(op, "12-34", "{\"a\":\"12\",\"b\":\"34\"}");
    sl__yamlops_destroy(op);
}

static void test_parse_typed_captures(void)
{
    static const sl_yamlops_capture_type types[] = {
        {"n", "int"}, {"f", "float"}, {"b", "bool"}, {"s", "string"}};
    sl_yamlop *op = parse_re("^(?<n>\\S*) (?<f>\\S*) (?<b>\\S*) (?<s>\\S*)$", types, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "-7 2.5 TRUE -", "{\"n\":-7,\"f\":2.5,\"b\":true,\"s\":\"-\"}");
    CHECK_OUT(op, "- 3 false x", "{\"n\":null,\"f\":3.0,\"b\":false,\"s\":\"x\"}");
    CHECK_OUT(op, "  false ", "{\"n\":null,\"f\":null,\"b\":false,\"s\":\"\"}");
    char buf[256];
    CU_ASSERT_EQUAL(apply(op, "1.5 1 true x", buf, sizeof(buf)), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(apply(op, "1 x true x", buf, sizeof(buf)), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(apply(op, "1 1 yes x", buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, "abc 1 true x", "capture 'n' is 'abc', not an int");
    check_reason(op, "1 1 yes x", "capture 'b' is 'yes', not true or false");
    sl__yamlops_destroy(op);
}

static void test_parse_no_match_is_rejected_with_reason(void)
{
    sl_yamlop *op = parse_re("^(?<word>[a-z]+)$", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    char buf[64];
    CU_ASSERT_EQUAL(apply(op, "ABC", buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, "ABC", "no match of the regular expression");
    sl__yamlops_destroy(op);
    op = parse_re("(?<x>\\S+)", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_EQUAL(apply(op, "", buf, sizeof(buf)), SL_ERR_RECORD);
    sl__yamlops_destroy(op);
}

/* Invalid UTF-8 in a capture cannot be a JSON string: the record is rejected. */
static void test_parse_capture_of_invalid_utf8_is_rejected(void)
{
    sl_yamlop *op = parse_re("(?<x>\\S+)", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    char buf[64];
    CU_ASSERT_EQUAL(apply(op, "a\xff", buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, "a\xff", "capture 'x' is not valid UTF-8");
    CHECK_OUT(op, "caf\xc3\xa9", "{\"x\":\"caf\xc3\xa9\"}");
    sl__yamlops_destroy(op);
}

static void test_parse_catastrophic_backtracking_gives_up(void)
{
    sl_yamlop *op = parse_re("^(?<a>(x+x+)+y)$", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    char buf[64], line[64];
    memset(line, 'x', 40);
    strcpy(line + 40, "!y"); /* a y to find, past what the x's can match */
    CU_ASSERT_EQUAL(apply(op, line, buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, line, "the regular expression gave up: match limit exceeded");
    sl__yamlops_destroy(op);
}

static void test_parse_bad_arguments_fail_with_message(void)
{
    char err[512];
    static const struct {
        const char *re, *format, *want;
        sl_yamlops_capture_type type;
    } cases[] = {
        {"(?<a>x", NULL, "missing closing parenthesis at offset 6", {0}},
        {"a**(?<a>x)", NULL, "quantifier does not follow a repeatable item at offset 2", {0}},
        {"(?<a>x)(?<a>y)", NULL, "two named subpatterns have the same name", {0}},
        {"(x)(y)", NULL, "no named capture", {0}},
        {"(?<a>x)", NULL, "types: no capture named 'b' (captures: a)", {"b", "int"}},
        {"(?<a>x)", NULL, "types: unknown type 'integer' for 'a'", {"a", "integer"}},
        {NULL, "nginx", "unknown format 'nginx' (valid: nginx_combined", {0}},
        {NULL, NULL, "one of regex and format", {0}},
        {"(?<a>x)", "nginx_combined", "one of regex and format", {0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        sl_yamlop *op =
            sl__yamlops_parse_new(SL_YOP_ON_VALUE, NULL, cases[i].re, cases[i].format,
                                  &cases[i].type, cases[i].type.name ? 1 : 0, err, sizeof(err));
        CU_ASSERT_PTR_NULL(op);
        sl__yamlops_destroy(op);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
        if (!strstr(err, cases[i].want)) {
            fprintf(stderr, "\n  case %zu: %s\n", i, err);
        }
    }
}

static void test_parse_json_field_adds_to_the_object(void)
{
    static const sl_yamlops_capture_type types[] = {{"id", "int"}};
    char err[256];
    sl_yamlop *op =
        sl__yamlops_parse_new(SL_YOP_ON_JSON, "log.msg", "user=(?<user>\\w+) id=(?<id>\\d+)", NULL,
                              types, 1, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "{\"log\":{\"msg\":\"login user=bob id=7\"},\"user\":\"x\"}",
              "{\"log\":{\"msg\":\"login user=bob id=7\"},\"user\":\"bob\",\"id\":7}");
    char buf[256];
    CU_ASSERT_EQUAL(apply(op, "{\"log\":{}}", buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, "{\"log\":{}}", "missing JSON field 'log.msg'");
    check_reason(op, "user=bob id=7", "the value is not JSON");
    check_reason(op, "[{\"log\":{\"msg\":\"user=bob id=7\"}}]", "missing JSON field 'log.msg'");
    sl__yamlops_destroy(op);
}

static void test_parse_key_replaces_the_value(void)
{
    char err[256], buf[256];
    sl_yamlop *op = sl__yamlops_parse_new(SL_YOP_ON_KEY, NULL, "^(?<tenant>[^:]+):(?<id>.*)$", NULL,
                                          NULL, 0, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CU_ASSERT_EQUAL(apply_kv(op, "acme:42", "whatever", buf, sizeof(buf)), SL_OK);
    CU_ASSERT_STRING_EQUAL(buf, "{\"tenant\":\"acme\",\"id\":\"42\"}");
    CU_ASSERT_EQUAL(apply_kv(op, "nocolon", "v", buf, sizeof(buf)), SL_ERR_RECORD);
    sl__yamlops_destroy(op);
}

/* ==== Named formats ==== */

static void test_parse_nginx_combined_lines(void)
{
    sl_yamlop *op = parse_fmt("nginx_combined");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    /* a request with a space in its path; Apache's \" in the user agent */
    CHECK_OUT(
        op,
        "203.0.113.9 - alice [07/Dec/2026:10:00:00 +0000] \"GET /search?q=a b HTTP/1.1\" "
        "200 5123 \"https://example.com/\" \"Mozilla/5.0 (X11; Linux x86_64) \\\"quoted\\\"\"",
        "{\"remote_addr\":\"203.0.113.9\",\"remote_user\":\"alice\","
        "\"time_local\":\"07/Dec/2026:10:00:00 +0000\","
        "\"request\":\"GET /search?q=a b HTTP/1.1\",\"method\":\"GET\","
        "\"path\":\"/search?q=a b\",\"protocol\":\"HTTP/1.1\",\"status\":200,"
        "\"body_bytes_sent\":5123,\"http_referer\":\"https://example.com/\","
        "\"http_user_agent\":\"Mozilla/5.0 (X11; Linux x86_64) \\\\\\\"quoted\\\\\\\"\"}");
    /* '-' for the bytes (null), nginx's \x22 for a quote, a trailing field after the agent */
    CHECK_OUT(op,
              "10.0.0.2 - - [07/Dec/2026:10:00:01 +0000] \"HEAD /favicon.ico HTTP/2.0\" 304 - "
              "\"-\" \"curl \\x22x\\x22\" \"10.9.9.9\"",
              "{\"remote_addr\":\"10.0.0.2\",\"remote_user\":\"-\","
              "\"time_local\":\"07/Dec/2026:10:00:01 +0000\","
              "\"request\":\"HEAD /favicon.ico HTTP/2.0\",\"method\":\"HEAD\","
              "\"path\":\"/favicon.ico\",\"protocol\":\"HTTP/2.0\",\"status\":304,"
              "\"body_bytes_sent\":null,\"http_referer\":\"-\","
              "\"http_user_agent\":\"curl \\\\x22x\\\\x22\"}");
    /* a TLS handshake on the plain port: the request has no method */
    CHECK_OUT(op,
              "198.51.100.7 - - [07/Dec/2026:10:00:02 +0000] \"\\x16\\x03\\x01\\x02\\x00\" 400 "
              "157 \"-\" \"-\"",
              "{\"remote_addr\":\"198.51.100.7\",\"remote_user\":\"-\","
              "\"time_local\":\"07/Dec/2026:10:00:02 +0000\","
              "\"request\":\"\\\\x16\\\\x03\\\\x01\\\\x02\\\\x00\",\"status\":400,"
              "\"body_bytes_sent\":157,\"http_referer\":\"-\",\"http_user_agent\":\"-\"}");
    char buf[256];
    CU_ASSERT_EQUAL(apply(op, "GET /index.html 200", buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, "GET /index.html 200", "not a nginx_combined line");
    sl__yamlops_destroy(op);
}

/* Long fields (a 100 KB user agent, a 20 KB path with spaces, a 100 KB structured data
 * value) parse: the formats do not backtrack over a field, and a user's pattern that does
 * gets a JIT stack larger than PCRE2's default 32 KB. */
static void test_parse_long_fields(void)
{
    size_t n = 100000;
    char *line = malloc(n + 30000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(line);
    sl_yamlop *op = parse_fmt("nginx_combined");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    int k = sprintf(line, "1.2.3.4 - - [07/Dec/2026:10:00:00 +0000] \"GET /");
    for (size_t i = 0; i < 20000; i++) {
        line[k++] = i % 10 == 9 ? ' ' : 'p';
    }
    k += sprintf(line + k, " HTTP/1.1\" 200 1 \"-\" \"");
    memset(line + k, 'A', n);
    strcpy(line + k + n, "\"");
    char *out = malloc(3 * n);
    CU_ASSERT_EQUAL(apply(op, line, out, 3 * n), SL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\",\"protocol\":\"HTTP/1.1\",\"status\":200,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "AAAAA\"}"));
    sl__yamlops_destroy(op);
    op = parse_fmt("syslog_rfc5424");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    k = sprintf(line, "<14>1 - h a - - [x@1 k=\"");
    memset(line + k, 'v', n);
    strcpy(line + k + n, "\\\"\"] msg");
    CU_ASSERT_EQUAL(apply(op, line, out, 3 * n), SL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "vvv\\\"\"}},\"message\":\"msg\"}"));
    sl__yamlops_destroy(op);
    op = parse_re("^(?<a>(?:a|b)*)c$", NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    memset(line, 'a', 50000);
    strcpy(line + 50000, "c");
    CU_ASSERT_EQUAL(apply(op, line, out, 3 * n), SL_OK);
    sl__yamlops_destroy(op);
    free(line);
    free(out);
}

static void test_parse_apache_common_lines(void)
{
    sl_yamlop *op = parse_fmt("apache_common");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op,
              "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" "
              "200 2326",
              "{\"remote_addr\":\"127.0.0.1\",\"remote_user\":\"frank\","
              "\"time_local\":\"10/Oct/2000:13:55:36 -0700\","
              "\"request\":\"GET /apache_pb.gif HTTP/1.0\",\"method\":\"GET\","
              "\"path\":\"/apache_pb.gif\",\"protocol\":\"HTTP/1.0\",\"status\":200,"
              "\"body_bytes_sent\":2326}");
    char buf[256];
    CU_ASSERT_EQUAL(apply(op,
                          "127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" "
                          "200 2326x",
                          buf, sizeof(buf)),
                    SL_ERR_RECORD);
    sl__yamlops_destroy(op);
}

static void test_parse_syslog_rfc5424_lines(void)
{
    sl_yamlop *op = parse_fmt("syslog_rfc5424");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    /* RFC 5424's example with structured data */
    CHECK_OUT(op,
              "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
              "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] An "
              "application event log entry...",
              "{\"pri\":165,\"facility\":20,\"severity\":5,\"version\":1,"
              "\"timestamp\":\"2003-10-11T22:14:15.003Z\",\"hostname\":\"mymachine.example.com\","
              "\"appname\":\"evntslog\",\"procid\":null,\"msgid\":\"ID47\","
              "\"structured_data\":{\"exampleSDID@32473\":{\"iut\":\"3\",\"eventSource\":"
              "\"Application\",\"eventID\":\"1011\"}},\"message\":\"An application event log "
              "entry...\"}");
    /* no structured data, a BOM before the message */
    CHECK_OUT(op,
              "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
              "\xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
              "{\"pri\":34,\"facility\":4,\"severity\":2,\"version\":1,"
              "\"timestamp\":\"2003-10-11T22:14:15.003Z\",\"hostname\":\"mymachine.example.com\","
              "\"appname\":\"su\",\"procid\":null,\"msgid\":\"ID47\",\"structured_data\":null,"
              "\"message\":\"'su root' failed for lonvick on /dev/pts/8\"}");
    /* every field NILVALUE, no message */
    CHECK_OUT(op, "<0>1 - - - - - -",
              "{\"pri\":0,\"facility\":0,\"severity\":0,\"version\":1,\"timestamp\":null,"
              "\"hostname\":null,\"appname\":null,\"procid\":null,\"msgid\":null,"
              "\"structured_data\":null}");
    /* two SD elements, one empty; values with escaped ] " and \, a space, a \n kept as is */
    CHECK_OUT(
        op,
        "<14>1 2026-12-07T10:00:00+01:00 h app 4242 - [a@1 x=\"y\\] z\" q=\"\\\"\\\\\\n\"][b@2] "
        "hi",
        "{\"pri\":14,\"facility\":1,\"severity\":6,\"version\":1,"
        "\"timestamp\":\"2026-12-07T10:00:00+01:00\",\"hostname\":\"h\",\"appname\":\"app\","
        "\"procid\":\"4242\",\"msgid\":null,"
        "\"structured_data\":{\"a@1\":{\"x\":\"y] z\",\"q\":\"\\\"\\\\\\\\n\"},\"b@2\":{}},"
        "\"message\":\"hi\"}");
    char buf[256];
    CU_ASSERT_EQUAL(apply(op, "<14>1 - h a - - [a@1 x=y] m", buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, "<14>1 - h a - - [a@1 x=y] m",
                 "malformed or non-UTF-8 structured data at offset 6 of it");
    CU_ASSERT_EQUAL(apply(op, "<14>1 - h a - - [a@1 x=\"y\"]junk", buf, sizeof(buf)),
                    SL_ERR_RECORD);
    CU_ASSERT_EQUAL(apply(op, "<14>1 - h a - - [=1] m", buf, sizeof(buf)), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(apply(op, "<14>1 - h a - - [] m", buf, sizeof(buf)), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(apply(op, "<14>1 - h a - - [a@1][] m", buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, "<200>1 - - - - - -", "PRI 200 is over 191");
    CU_ASSERT_EQUAL(apply(op, "<13>Dec  7 10:00:00 host app: BSD syslog", buf, sizeof(buf)),
                    SL_ERR_RECORD);
    check_reason(op, "<13>Dec  7 10:00:00 host app: BSD", "not a syslog_rfc5424 line");
    sl__yamlops_destroy(op);
}

/* ==== Shaping ==== */

static sl_yamlop *set_expr(const char *field, const char *expr)
{
    char err[512];
    sl_yamlop *op = sl__yamlops_set_new(field, NULL, NULL, expr, err, sizeof(err));
    if (!op) {
        fprintf(stderr, "\n%s: %s\n", expr, err);
    }
    return op;
}

static void test_set_expr_arithmetic(void)
{
    static const struct {
        const char *expr, *value, *want;
    } cases[] = {
        {"price * qty", "{\"price\":3,\"qty\":4}", "{\"price\":3,\"qty\":4,\"t\":12}"},
        {"price * qty", "{\"price\":2.5,\"qty\":4}", "{\"price\":2.5,\"qty\":4,\"t\":10.0}"},
        {"a + b * c", "{\"a\":1,\"b\":2,\"c\":3}", "{\"a\":1,\"b\":2,\"c\":3,\"t\":7}"},
        {"(a + b) * c", "{\"a\":1,\"b\":2,\"c\":3}", "{\"a\":1,\"b\":2,\"c\":3,\"t\":9}"},
        {"a - b - c", "{\"a\":10,\"b\":2,\"c\":3}", "{\"a\":10,\"b\":2,\"c\":3,\"t\":5}"},
        {"a / b", "{\"a\":7,\"b\":2}", "{\"a\":7,\"b\":2,\"t\":3.5}"},
        {"a / b / 2", "{\"a\":8,\"b\":2}", "{\"a\":8,\"b\":2,\"t\":2.0}"},
        {"-a * -(b - 1)", "{\"a\":3,\"b\":5}", "{\"a\":3,\"b\":5,\"t\":12}"},
        {"o.items.1.p * 2 + 1e1", "{\"o\":{\"items\":[{},{\"p\":\"4\"}]}}",
         "{\"o\":{\"items\":[{},{\"p\":\"4\"}]},\"t\":18.0}"},
        {"a * 2", "{\"a\":9223372036854775807}",
         "{\"a\":9223372036854775807,\"t\":1.8446744073709552e+19}"},
        {" 0.5+.5 ", "{}", "{\"t\":1.0}"},
        {"t + 1", "{\"t\":1}", "{\"t\":2}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sl_yamlop *op = set_expr("t", cases[i].expr);
        CU_ASSERT_PTR_NOT_NULL_FATAL(op);
        CHECK_OUT(op, cases[i].value, cases[i].want);
        sl__yamlops_destroy(op);
    }
}

static void test_set_expr_rejects_with_reason(void)
{
    sl_yamlop *op = set_expr("total", "price / qty");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    char buf[256];
    CU_ASSERT_EQUAL(apply(op, "{\"price\":1,\"qty\":0}", buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, "{\"price\":1,\"qty\":0}", "set total: division by zero in 'price / qty'");
    check_reason(op, "{\"price\":1,\"qty\":0.0}", "set total: division by zero in 'price / qty'");
    check_reason(op, "{\"price\":1}", "set total: missing JSON field 'qty'");
    check_reason(op, "{\"price\":1,\"qty\":\"abc\"}",
                 "set total: JSON field 'qty' is not a number");
    check_reason(op, "{\"price\":1,\"qty\":null}", "set total: JSON field 'qty' is not a number");
    check_reason(op, "not json", "the value is not JSON");
    check_reason(op, "[1,2]", "the value is not a JSON object");
    sl__yamlops_destroy(op);
    op = set_expr("t", "a * 1e308 * 10");
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    check_reason(op, "{\"a\":1}", "set t: 'a * 1e308 * 10' is not a finite number");
    sl__yamlops_destroy(op);
}

static void test_set_expr_syntax_errors(void)
{
    static const struct {
        const char *expr, *want;
    } cases[] = {
        {"price *", "unexpected end at offset 7"},
        {"(a + b", "missing ')' at offset 6"},
        {"a b", "expected an operator at offset 2"},
        {"a + b)", "unbalanced ')' at offset 5"},
        {"1..2", "bad number at offset 0"},
        {"", "unexpected end at offset 0"},
        {"a % b", "expected an operator at offset 2"},
        {"$x", "expected a number, a field or '(' at offset 0"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        sl_yamlop *op = sl__yamlops_set_new("t", NULL, NULL, cases[i].expr, err, sizeof(err));
        CU_ASSERT_PTR_NULL(op);
        sl__yamlops_destroy(op);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
        if (!strstr(err, cases[i].want)) {
            fprintf(stderr, "\n  '%s': %s\n", cases[i].expr, err);
        }
    }
    /* deep nesting is refused at load, not on the C stack at run time */
    char deep[400];
    memset(deep, '(', 200);
    strcpy(deep + 200, "1");
    memset(deep + 201, ')', 198 - 0);
    deep[399] = '\0';
    sl_yamlop *op = sl__yamlops_set_new("t", NULL, NULL, deep, err, sizeof(err));
    CU_ASSERT_PTR_NULL(op);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "nested too deep"));
}

static void test_set_from_and_value(void)
{
    char err[256], buf[256];
    sl_yamlop *op = sl__yamlops_set_new("user.id", "uid", NULL, NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "{\"uid\":7}", "{\"uid\":7,\"user\":{\"id\":7}}");
    CHECK_OUT(op, "{\"uid\":7,\"user\":{\"n\":1}}", "{\"uid\":7,\"user\":{\"n\":1,\"id\":7}}");
    CU_ASSERT_EQUAL(apply(op, "{\"uid\":7,\"user\":3}", buf, sizeof(buf)), SL_ERR_RECORD);
    check_reason(op, "{\"uid\":7,\"user\":3}",
                 "cannot set 'user.id': what holds it is not an object");
    check_reason(op, "{\"id\":7}", "set user.id: missing JSON field 'uid'");
    sl__yamlops_destroy(op);
    /* from a container into itself: a copy, no cycle */
    op = sl__yamlops_set_new("a.b", "a", NULL, NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "{\"a\":{\"x\":1}}", "{\"a\":{\"x\":1,\"b\":{\"x\":1}}}");
    sl__yamlops_destroy(op);
    op = sl__yamlops_set_new("env", NULL, "\"prod\"", NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "{\"env\":1,\"a\":2}", "{\"env\":\"prod\",\"a\":2}");
    sl__yamlops_destroy(op);
    op = sl__yamlops_set_new("items.1", NULL, "{\"k\":[true]}", NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "{\"items\":[0,1]}", "{\"items\":[0,{\"k\":[true]}]}");
    CU_ASSERT_EQUAL(apply(op, "{\"items\":[0]}", buf, sizeof(buf)), SL_ERR_RECORD);
    sl__yamlops_destroy(op);
    CU_ASSERT_PTR_NULL(sl__yamlops_set_new("a", NULL, "{bad", NULL, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "set.value is not JSON"));
    CU_ASSERT_PTR_NULL(sl__yamlops_set_new("a", "b", NULL, "1", err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "one of from, value and expr"));
    CU_ASSERT_PTR_NULL(sl__yamlops_set_new("a..b", "b", NULL, NULL, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty segment"));
}

static void test_rename_moves_fields(void)
{
    char err[256];
    sl_yamlop *op = sl__yamlops_rename_new("a.b", "c", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "{\"a\":{\"b\":1,\"x\":2},\"c\":0}", "{\"a\":{\"x\":2},\"c\":1}");
    CHECK_OUT(op, "{\"a\":{\"x\":2}}", "{\"a\":{\"x\":2}}"); /* missing from: as is */
    CHECK_OUT(op, "{\"a\":5}", "{\"a\":5}");
    sl__yamlops_destroy(op);
    op = sl__yamlops_rename_new("a", "a.inner", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "{\"a\":{\"x\":1}}", "{\"a\":{\"inner\":{\"x\":1}}}");
    sl__yamlops_destroy(op);
    op = sl__yamlops_rename_new("k", "o.k", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    check_reason(op, "{\"k\":1,\"o\":[]}", "cannot set 'o.k': what holds it is not an object");
    sl__yamlops_destroy(op);
}

/* What a shaping op does not touch comes out as it came in: doubles with the fewest digits
 * that read back the same (jansson's own encoder writes 0.1 as 0.10000000000000001),
 * escapes, NUL bytes, non-ASCII text, key order. */
static void test_shaping_keeps_other_values_as_they_were(void)
{
    static const char *const drop[] = {"x"};
    char err[256];
    sl_yamlop *op = sl__yamlops_drop_new(drop, 1, false, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(
        op,
        "{\"z\":0.1, \"b\":13.44, \"c\":1e300, \"d\":1.0, \"e\":-0.0, \"f\":0.30000000000000004,"
        " \"x\":1, \"i\":-9223372036854775808, \"a\":[true,false,null,{}],"
        " \"s\":\"q\\\"\\\\\\n\\u0001\\u0000\\u00e9/\\ud83d\\ude00\", \"k\\n\":\"\"}",
        "{\"z\":0.1,\"b\":13.44,\"c\":1e+300,\"d\":1.0,\"e\":-0.0,\"f\":0.30000000000000004,"
        "\"i\":-9223372036854775808,\"a\":[true,false,null,{}],"
        "\"s\":\"q\\\"\\\\\\n\\u0001\\u0000\xc3\xa9/\xf0\x9f\x98\x80\",\"k\\n\":\"\"}");
    sl__yamlops_destroy(op);
}

static void test_drop_and_keep_nested_fields(void)
{
    char err[256];
    static const char *const drop[] = {"a", "b.c", "missing", "x.y.z", "l.0"};
    sl_yamlop *op = sl__yamlops_drop_new(drop, 5, false, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "{\"a\":1,\"b\":{\"c\":2,\"d\":3},\"l\":[1,2],\"x\":4}",
              "{\"b\":{\"d\":3},\"l\":[2],\"x\":4}");
    CHECK_OUT(op, "{}", "{}");
    sl__yamlops_destroy(op);
    static const char *const keep[] = {"a", "b.c", "missing"};
    op = sl__yamlops_drop_new(keep, 3, true, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    CHECK_OUT(op, "{\"e\":0,\"a\":1,\"b\":{\"c\":2,\"d\":3},\"f\":4}", "{\"a\":1,\"b\":{\"c\":2}}");
    CHECK_OUT(op, "{\"z\":1}", "{}");
    check_reason(op, "\"str\"", "the value is not a JSON object");
    sl__yamlops_destroy(op);
    CU_ASSERT_PTR_NULL(sl__yamlops_drop_new(keep, 0, false, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "drop needs at least one field"));
}

/* ==== The other ops' rejections say why ==== */

static sl_record value_rec(const char *value, const sl_record_meta *m)
{
    sl_record r = {.value = value, .value_len = (uint32_t)strlen(value), .meta = m};
    return r;
}

static void test_key_and_value_ops_give_reasons(void)
{
    char err[256];
    static const sl_header hs[] = {{.name = "h", .value = "abc", .value_len = 3}};
    sl_record_meta m = {.source = "in", .topic = "t", .partition = -1, .offset = 1};
    sl_record_meta mh = {.source = "in", .partition = 2, .offset = 1, .headers = hs, .nheaders = 1};
    sl_record r = value_rec("{\"x\":1}", &m);
    check_op_reason(sl__yamlops_value_json_new("amount", false, err, sizeof(err)), false, &r,
                    "missing JSON field 'amount'");
    r = value_rec("{\"amount\":\"abc\"}", &m);
    check_op_reason(sl__yamlops_value_json_new("amount", false, err, sizeof(err)), false, &r,
                    "JSON field 'amount' is 'abc', not a number");
    r = value_rec("{\"amount\":[1]}", &m);
    check_op_reason(sl__yamlops_value_json_new("amount", false, err, sizeof(err)), false, &r,
                    "JSON field 'amount' is [1], not a number");
    r = value_rec("abc", &m);
    check_op_reason(sl__yamlops_value_json_new("amount", true, err, sizeof(err)), false, &r,
                    "the value is not JSON");
    check_op_reason(sl__yamlops_value_from_new(SL_YOP_ON_VALUE, NULL, false, err, sizeof(err)),
                    false, &r, "the value 'abc' is not a number");
    r = value_rec("{}", &m);
    check_op_reason(sl__yamlops_key_new("user.id", err, sizeof(err)), false, &r,
                    "missing JSON field 'user.id'");
    check_op_reason(sl__yamlops_key_from_new(SL_YOP_ON_HEADER, "x", err, sizeof(err)), false, &r,
                    "no header 'x'");
    check_op_reason(sl__yamlops_key_from_new(SL_YOP_ON_META, "partition", err, sizeof(err)), false,
                    &r, "the record has no partition");
    r = value_rec("{}", &mh);
    check_op_reason(sl__yamlops_value_from_new(SL_YOP_ON_HEADER, "h", false, err, sizeof(err)),
                    false, &r, "header 'h' 'abc' is not a number");
    check_op_reason(sl__yamlops_value_from_new(SL_YOP_ON_META, "topic", true, err, sizeof(err)),
                    false, &r, "the record has no topic");
}

static void test_filter_and_timestamp_ops_give_reasons(void)
{
    char err[256];
    static const sl_header hs[] = {{.name = "h", .value = "soon", .value_len = 4}};
    sl_record_meta m = {.source = "in", .partition = 0, .offset = 1, .headers = hs, .nheaders = 1};
    sl_record r = value_rec("{\"n\":\"abc\"}", &m);
    check_op_reason(sl__yamlops_filter_new(SL_YOP_ON_JSON, "n", SL_YOP_GT, "1", err, sizeof(err)),
                    true, &r, "JSON field 'n' is 'abc', not a number");
    check_op_reason(sl__yamlops_filter_new(SL_YOP_ON_VALUE, NULL, SL_YOP_GT, "1", err, sizeof(err)),
                    true, &r, "the value '{\"n\":\"abc\"}' is not a number");
    check_op_reason(sl__yamlops_filter_new(SL_YOP_ON_HEADER, "h", SL_YOP_LT, "1", err, sizeof(err)),
                    true, &r, "header 'h' 'soon' is not a number");
    r = value_rec("{\"n\":", &m);
    check_op_reason(
        sl__yamlops_filter_new(SL_YOP_ON_JSON, "n", SL_YOP_EQUALS, "1", err, sizeof(err)), true, &r,
        "the value is not JSON");
    r = value_rec("yesterday\x01", &m);
    check_op_reason(sl__yamlops_timestamp_new(SL_YOP_ON_VALUE, NULL, "rfc3339", err, sizeof(err)),
                    false, &r, "the value 'yesterday?' is not a time in format rfc3339");
    r = value_rec("{\"t\":1.5e300}", &m);
    check_op_reason(sl__yamlops_timestamp_new(SL_YOP_ON_JSON, "t", "s", err, sizeof(err)), false,
                    &r, "JSON field 't' '1.5e+300' is not a time in format s");
    check_op_reason(sl__yamlops_timestamp_new(SL_YOP_ON_JSON, "u", "s", err, sizeof(err)), false,
                    &r, "missing JSON field 'u'");
    check_op_reason(sl__yamlops_timestamp_new(SL_YOP_ON_HEADER, "h", "%Y-%m-%d", err, sizeof(err)),
                    false, &r, "header 'h' 'soon' is not a time in format %Y-%m-%d");
    check_op_reason(sl__yamlops_timestamp_new(SL_YOP_ON_HEADER, "g", "ms", err, sizeof(err)), false,
                    &r, "no header 'g'");
}

/* ==== In YAML ==== */

/* The yamlop of op j of stream i (NULL when it has none, such as a fused shaping op). */
static sl_yamlop *sl__config_stream_op(sl_config *cfg, size_t i, size_t j)
{
    return i < cfg->nstreams && j < cfg->streams[i].nops ? cfg->streams[i].ops[j].yop : NULL;
}

static char *yaml_with_ops(const char *ops)
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
                               "    ops:\n";            /* 10 */
    static const char tail[] = "sinks:\n  - {name: out, type: stdout, from: s}\n";
    char *y = malloc(sizeof(head) + strlen(ops) + sizeof(tail));
    sprintf(y, "%s%s%s", head, ops, tail);
    return y;
}

/* Loads the pipeline with ops (lines from 11, each "      - OP\n"); the error in err. */
static int load_ops(const char *ops, char *err, size_t errsize, char *desc, size_t descsize)
{
    char *y = yaml_with_ops(ops);
    sl_config *cfg = NULL;
    err[0] = '\0';
    int rc = ts_config_load(y, &cfg, desc, descsize, err, errsize);
    sl__config_destroy(cfg);
    free(y);
    return rc;
}

static void test_yaml_config_errors_name_the_line(void)
{
    static const struct {
        const char *ops, *want;
    } cases[] = {
        {"      - parse: {regex: '(?<a>x'}\n",
         "t.yaml:11:24: error: parse: bad regular expression: missing closing parenthesis at "
         "offset 6"},
        {"      - parse: {format: nginx}\n", "t.yaml:11:25: error: parse: unknown format 'nginx'"},
        {"      - parse: nginx\n", "unknown format 'nginx'"},
        {"      - parse: {regex: '(?<a>x)', format: apache_common}\n",
         "op 'parse' takes one of regex: REGEX and format: NAME"},
        {"      - parse: {regex: '(?<a>x)', types: {b: int}}\n",
         "t.yaml:11:42: error: parse: types: no capture named 'b'"},
        {"      - parse: {regex: '(?<a>x)', json: m, key: true}\n", "only one"},
        {"      - parse: {regex: '(?<a>x)', flags: i}\n", "flags"},
        {"      - set: {field: t, expr: 'a * (b'}\n",
         "t.yaml:11:31: error: set: bad expression 'a * (b': missing ')' at offset 6"},
        {"      - set: {field: t}\n", "one of from: PATH, value: SCALAR and expr: EXPRESSION"},
        {"      - set: {field: t, from: a, value: 1}\n", "one of from"},
        {"      - set: {field: t, value: [1]}\n", "set.value must be a scalar"},
        {"      - set: {field: a..b, value: 1}\n", "bad JSON path 'a..b' in set.field"},
        {"      - rename: {from: a}\n", "missing required key 'to'"},
        {"      - drop: []\n", "op 'drop' takes 1 to 64 fields, got 0"},
        {"      - keep: {a: 1}\n", "op 'keep' takes a list of fields"},
        {"      - drop: [a, .b]\n", "bad JSON path '.b' in drop"},
        {"      - filter: {matches: 'a**'}\n",
         "t.yaml:11:27: error: filter: bad regular expression 'a**': quantifier does not follow "
         "a repeatable item at offset 2"},
    };
    char err[1024], desc[2048];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CU_ASSERT_EQUAL(load_ops(cases[i].ops, err, sizeof(err), desc, sizeof(desc)), SL_ERR_INVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].want));
        if (!strstr(err, cases[i].want)) {
            fprintf(stderr, "\n  %s  got: %s\n", cases[i].ops, err);
        }
    }
}

static void test_yaml_set_value_literals(void)
{
    static const struct {
        const char *value, *want;
    } cases[] = {
        {"1", "{\"v\":1}"},
        {"2.5", "{\"v\":2.5}"},
        {"true", "{\"v\":true}"},
        {"null", "{\"v\":null}"},
        {"'1'", "{\"v\":\"1\"}"},
        {"prod", "{\"v\":\"prod\"}"},
        {"\"true\"", "{\"v\":\"true\"}"},
        {"a b", "{\"v\":\"a b\"}"},
        {"~", "{\"v\":null}"},
        {"''", "{\"v\":\"\"}"},
        {"-1.5e2", "{\"v\":-150.0}"},
    };
    char err[1024], desc[2048], ops[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(ops, sizeof(ops), "      - set: {field: v, value: %s}\n", cases[i].value);
        char *y = yaml_with_ops(ops);
        sl_config *cfg = NULL;
        CU_ASSERT_EQUAL_FATAL(ts_config_load(y, &cfg, desc, sizeof(desc), err, sizeof(err)), SL_OK);
        sl_yamlop *op = sl__config_stream_op(cfg, 0, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(op);
        CHECK_OUT(op, "{}", cases[i].want);
        sl__config_destroy(cfg);
        free(y);
    }
}

/* A chain of shaping ops after a parse runs as one op (one decode and encode) with the same
 * result as the ops one by one; a non-shaping op in between splits the chain. */
static void test_yaml_shaping_chain_is_fused(void)
{
    static const char ops[] = "      - parse: {regex: '^(?<p>\\d+) (?<q>\\d+) (?<n>\\w+)$', "
                              "types: {p: int, q: int}}\n"
                              "      - set: {field: total, expr: p * 12 / q}\n"
                              "      - rename: {from: n, to: item.name}\n"
                              "      - drop: [p]\n"
                              "      - map: trim\n"
                              "      - keep: [total, item]\n"
                              "      - set: {field: ok, value: true}\n";
    char err[1024], desc[4096];
    char *y = yaml_with_ops(ops);
    sl_config *cfg = NULL;
    CU_ASSERT_EQUAL_FATAL(ts_config_load(y, &cfg, desc, sizeof(desc), err, sizeof(err)), SL_OK);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(desc, "2. set total = p * 12 / q (runs in op 1: one JSON decode)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, "4. drop p (runs in op 1: one JSON decode)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, "6. keep total, item\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, "7. set ok to true (runs in op 6: one JSON decode)"));
    sl_yamlop *first = sl__config_stream_op(cfg, 0, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(first);
    CU_ASSERT_PTR_NULL(sl__config_stream_op(cfg, 0, 1));
    CHECK_OUT(first, "3 4 widget", "{\"q\":4,\"total\":9.0,\"item\":{\"name\":\"widget\"}}");
    sl_yamlop *sixth = sl__config_stream_op(cfg, 0, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sixth);
    CHECK_OUT(sixth, "{\"q\":4,\"total\":12,\"item\":{\"name\":\"widget\"}}",
              "{\"total\":12,\"item\":{\"name\":\"widget\"},\"ok\":true}");
    /* a later step's rejection rejects the record */
    check_reason(first, "3 0 x", "set total: division by zero in 'p * 12 / q'");
    check_reason(first, "3 x", "no match of the regular expression");
    sl__config_destroy(cfg);
    free(y);
    /* and through the engine, built from the config */
    y = yaml_with_ops(ops);
    CU_ASSERT_EQUAL_FATAL(ts_config_load(y, &cfg, desc, sizeof(desc), err, sizeof(err)), SL_OK);
    sl_context *ctx = sl__config_build(cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(ctx);
    sl_context_destroy(ctx);
    sl__config_destroy(cfg);
    free(y);
}

void sl_test_register(void)
{
    SL_SUITE("parse", SL_TEST(parse_regex_named_captures_become_fields),
             SL_TEST(parse_group_outside_the_match_is_absent), SL_TEST(parse_typed_captures),
             SL_TEST(parse_no_match_is_rejected_with_reason),
             SL_TEST(parse_capture_of_invalid_utf8_is_rejected),
             SL_TEST(parse_catastrophic_backtracking_gives_up),
             SL_TEST(parse_bad_arguments_fail_with_message),
             SL_TEST(parse_json_field_adds_to_the_object), SL_TEST(parse_key_replaces_the_value));
    SL_SUITE("parse_formats", SL_TEST(parse_nginx_combined_lines),
             SL_TEST(parse_apache_common_lines), SL_TEST(parse_syslog_rfc5424_lines),
             SL_TEST(parse_long_fields));
    SL_SUITE("shape", SL_TEST(set_expr_arithmetic), SL_TEST(set_expr_rejects_with_reason),
             SL_TEST(set_expr_syntax_errors), SL_TEST(set_from_and_value),
             SL_TEST(rename_moves_fields), SL_TEST(shaping_keeps_other_values_as_they_were),
             SL_TEST(drop_and_keep_nested_fields));
    SL_SUITE("yamlops_reasons", SL_TEST(key_and_value_ops_give_reasons),
             SL_TEST(filter_and_timestamp_ops_give_reasons));
    SL_SUITE("shape_yaml", SL_TEST(yaml_config_errors_name_the_line),
             SL_TEST(yaml_set_value_literals), SL_TEST(yaml_shaping_chain_is_fused));
}

/* test_redis.c -- the redis sink without a server: key templates, the command each record
 * becomes (binary-safe arguments, numbers checked), commit keys, option checks, and the
 * input positions (the hash, its fields, its values, what a batch's ranges decide). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sluice.h"

#ifdef SLUICE_WITH_REDIS

#include "../../connectors/redis/redis.h"

/* ==== Helpers ==== */

static void ctx_defaults(sl_redis_ctx *ctx, sl_redis_cmd cmd, const char *key)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->host = "127.0.0.1";
    ctx->port = 6379;
    ctx->cmd = cmd;
    ctx->key = key;
    ctx->field = "{key}";
    ctx->value = "{value}";
    ctx->member = "{key}";
    ctx->commit_prefix = "sluice:commit:";
    ctx->commit_ttl = 7 * 24 * 3600 * 1000LL;
    ctx->instance = "";
    ctx->connect_timeout = 5000;
    ctx->timeout = 30000;
    ctx->pipeline_depth = 1000;
}

static sl_record rec_kv(const char *key, const char *value)
{
    sl_record r = {0};
    r.key = key;
    r.key_len = key ? (uint32_t)strlen(key) : 0;
    r.value = value;
    r.value_len = value ? (uint32_t)strlen(value) : 0;
    return r;
}

/* Command c of the record as text, arguments joined by ' '. */
static void cmd_text(const sl_redis_cmds *cmds, int c, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < cmds->argc[c]; i++) {
        n += (size_t)snprintf(out + n, size - n, "%s%.*s", i ? " " : "", (int)cmds->argvlen[c][i],
                              cmds->argv[c][i]);
    }
}

/* Builds the record's command for ctx; returns the rc and the text of command 0 (and 1). */
static int build(sl_redis_ctx *ctx, const sl_record *r, char *c0, char *c1, size_t size)
{
    char err[256], why[256];
    CU_ASSERT_EQUAL_FATAL(sl__redis_config_check(ctx, err, sizeof(err)), SL_OK);
    sl_redis_cmds cmds = {0};
    sl_record_when when = {1700000000000, 1700000000000 - 60000, 1700000000000};
    int rc = sl__redis_build(ctx, r, &when, &cmds, why, sizeof(why));
    c0[0] = '\0';
    if (c1) {
        c1[0] = '\0';
    }
    if (rc == SL_OK) {
        cmd_text(&cmds, 0, c0, size);
        if (c1 && cmds.ncmds > 1) {
            cmd_text(&cmds, 1, c1, size);
        }
    }
    sl__buf_free(&cmds.buf);
    sl__redis_config_free(ctx);
    return rc;
}

/* ==== Templates ==== */

static void test_redis_template_expands_placeholders(void)
{
    sl_redis_tpl t;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(sl__redis_tpl_parse(&t,
                                              "w:{key}:{{{batch_time}}}:{value}:{topic}/"
                                              "{partition}/{offset}:{window_start}-{window_end}",
                                              "key", err, sizeof(err)),
                          SL_OK);
    sl_record_meta m = {.source = "s", .topic = "tp", .partition = 2, .offset = 9};
    sl_record r = rec_kv("hello", "v");
    r.meta = &m;
    sl_record_set_int(&r, 5);
    sl_buf b = {0};
    sl_record_when when = {31000, 1000, 31000};
    CU_ASSERT_EQUAL(sl__redis_tpl_expand(&t, &r, &when, &b), SL_OK);
    CU_ASSERT_STRING_EQUAL(b.p, "w:hello:{31000}:5:tp/2/9:1000-31000");
    sl__buf_free(&b);
    sl__redis_tpl_free(&t);
}

static void test_redis_template_errors(void)
{
    sl_redis_tpl t;
    char err[256];
    CU_ASSERT_EQUAL(sl__redis_tpl_parse(&t, "a:{nope}", "key", err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown placeholder {nope}"));
    sl__redis_tpl_free(&t);
    CU_ASSERT_EQUAL(sl__redis_tpl_parse(&t, "a:{key", "key", err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "without '}'"));
    sl__redis_tpl_free(&t);
    CU_ASSERT_EQUAL(sl__redis_tpl_parse(&t, "a}b", "field", err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "field: 'a}b': a lone '}'"));
    sl__redis_tpl_free(&t);
}

/* ==== Commands ==== */

static void test_redis_commands_of_each_kind(void)
{
    sl_redis_ctx ctx;
    char c0[512], c1[512];
    sl_record r = rec_kv("w", "hello");

    ctx_defaults(&ctx, SL_REDIS_SET, "k:{key}");
    ctx.ttl = 60000;
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "SET k:w hello PX 60000");

    ctx_defaults(&ctx, SL_REDIS_HSET, "h");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "HSET h w hello");

    sl_record n = rec_kv("w", NULL);
    sl_record_set_int(&n, 3);
    ctx_defaults(&ctx, SL_REDIS_HINCRBY, "wordcount");
    CU_ASSERT_EQUAL(build(&ctx, &n, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "HINCRBY wordcount w 3");

    ctx_defaults(&ctx, SL_REDIS_INCRBY, "c:{key}");
    CU_ASSERT_EQUAL(build(&ctx, &n, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "INCRBY c:w 3");

    sl_record_set_double(&n, 0.25);
    ctx_defaults(&ctx, SL_REDIS_INCRBYFLOAT, "f");
    CU_ASSERT_EQUAL(build(&ctx, &n, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "INCRBYFLOAT f 0.25");

    ctx_defaults(&ctx, SL_REDIS_ZADD, "z");
    CU_ASSERT_EQUAL(build(&ctx, &n, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "ZADD z 0.25 w");

    ctx_defaults(&ctx, SL_REDIS_ZINCRBY, "z");
    ctx.member = "m:{key}";
    CU_ASSERT_EQUAL(build(&ctx, &n, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "ZINCRBY z 0.25 m:w");

    ctx_defaults(&ctx, SL_REDIS_XADD, "s");
    ctx.maxlen = 100;
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "XADD s MAXLEN ~ 100 * key w value hello");

    ctx_defaults(&ctx, SL_REDIS_LPUSH, "l");
    ctx.trim = 10;
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "LPUSH l hello");
    CU_ASSERT_STRING_EQUAL(c1, "LTRIM l 0 9");
}

static void test_redis_numbers_are_checked(void)
{
    sl_redis_ctx ctx;
    char c0[256];
    sl_record r = rec_kv("w", "12");
    ctx_defaults(&ctx, SL_REDIS_HINCRBY, "h");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, NULL, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "HINCRBY h w 12");
    r = rec_kv("w", "abc");
    ctx_defaults(&ctx, SL_REDIS_HINCRBY, "h");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, NULL, sizeof(c0)), SL_ERR_RECORD);
    r = rec_kv("w", "1.5");
    ctx_defaults(&ctx, SL_REDIS_INCRBY, "h");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, NULL, sizeof(c0)), SL_ERR_RECORD);
    ctx_defaults(&ctx, SL_REDIS_INCRBYFLOAT, "h");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, NULL, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "INCRBYFLOAT h 1.5");
    r = rec_kv("w", NULL);
    sl_record_set_double(&r, 4.0);
    ctx_defaults(&ctx, SL_REDIS_INCRBY, "h");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, NULL, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "INCRBY h 4");
    r = rec_kv("w", "x");
    ctx_defaults(&ctx, SL_REDIS_ZADD, "h");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, NULL, sizeof(c0)), SL_ERR_RECORD);
}

/* Issue 15, item 13: a tombstone (no typed value, no bytes: a key that left a window without
 * an inverse) clears what the key holds instead of writing an empty value or failing. */
static void test_redis_tombstone_deletes(void)
{
    sl_redis_ctx ctx;
    char c0[256], c1[256];
    sl_record r = rec_kv("svc", NULL);
    ctx_defaults(&ctx, SL_REDIS_HSET, "metrics:latency");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "HDEL metrics:latency svc");
    ctx_defaults(&ctx, SL_REDIS_SET, "latency:{key}");
    ctx.ttl = 60000;
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "DEL latency:svc");
    ctx_defaults(&ctx, SL_REDIS_ZADD, "top");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "ZREM top svc");
    static const sl_redis_cmd incs[] = {SL_REDIS_HINCRBY, SL_REDIS_INCRBY, SL_REDIS_INCRBYFLOAT,
                                        SL_REDIS_ZINCRBY};
    for (size_t i = 0; i < SL_ARRAY_LEN(incs); i++) {
        ctx_defaults(&ctx, incs[i], "c");
        CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
        CU_ASSERT_STRING_EQUAL(c0, ""); /* no command */
    }
    ctx_defaults(&ctx, SL_REDIS_LPUSH, "l"); /* a log of records: appended as any */
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "LPUSH l ");
    /* A number, or bytes, make it a record like any other. */
    sl_record_set_int(&r, 0);
    ctx_defaults(&ctx, SL_REDIS_HSET, "h");
    CU_ASSERT_EQUAL(build(&ctx, &r, c0, c1, sizeof(c0)), SL_OK);
    CU_ASSERT_STRING_EQUAL(c0, "HSET h svc 0");
}

static void test_redis_arguments_are_binary_safe(void)
{
    sl_redis_ctx ctx;
    char err[256], why[256];
    ctx_defaults(&ctx, SL_REDIS_HSET, "h:{key}");
    CU_ASSERT_EQUAL_FATAL(sl__redis_config_check(&ctx, err, sizeof(err)), SL_OK);
    sl_record r = {0};
    r.key = "a\0b\r\n";
    r.key_len = 5;
    r.value = "\"'; FLUSHALL\r\n";
    r.value_len = (uint32_t)strlen(r.value);
    sl_redis_cmds cmds = {0};
    sl_record_when zero = {0};
    CU_ASSERT_EQUAL(sl__redis_build(&ctx, &r, &zero, &cmds, why, sizeof(why)), SL_OK);
    CU_ASSERT_EQUAL(cmds.argc[0], 4);
    CU_ASSERT_EQUAL(cmds.argvlen[0][1], 7);
    CU_ASSERT(memcmp(cmds.argv[0][1], "h:a\0b\r\n", 7) == 0);
    CU_ASSERT_EQUAL(cmds.argvlen[0][2], 5);
    CU_ASSERT(memcmp(cmds.argv[0][2], "a\0b\r\n", 5) == 0);
    CU_ASSERT_EQUAL(cmds.argvlen[0][3], r.value_len);
    CU_ASSERT(memcmp(cmds.argv[0][3], r.value, r.value_len) == 0);
    sl__buf_free(&cmds.buf);
    sl__redis_config_free(&ctx);
}

static void test_redis_commit_key(void)
{
    sl_redis_ctx ctx;
    sl_buf b = {0};
    ctx_defaults(&ctx, SL_REDIS_SET, "k");
    CU_ASSERT_EQUAL(sl__redis_commit_key(&ctx, "wc", "out", 1000, &b), SL_OK);
    CU_ASSERT_STRING_EQUAL(b.p, "sluice:commit:wc:out:1000");
    ctx.instance = "host-2";
    CU_ASSERT_EQUAL(sl__redis_commit_key(&ctx, "wc", "out", 1000, &b), SL_OK);
    CU_ASSERT_STRING_EQUAL(b.p, "sluice:commit:wc:out:host-2:1000");
    sl__buf_free(&b);
}

static void expect_config_error(sl_redis_ctx *ctx, const char *part)
{
    char err[512] = "";
    CU_ASSERT_EQUAL(sl__redis_config_check(ctx, err, sizeof(err)), SL_ERR_INVAL);
    if (!strstr(err, part)) {
        fprintf(stderr, "\nerror '%s' lacks '%s'\n", err, part);
        CU_FAIL("error message");
    }
    sl__redis_config_free(ctx);
}

static void test_redis_config_errors(void)
{
    sl_redis_ctx ctx;
    ctx_defaults(&ctx, SL_REDIS_HINCRBY, "h");
    ctx.ttl = 1000;
    expect_config_error(&ctx, "ttl: only for command set");
    ctx_defaults(&ctx, SL_REDIS_SET, "h");
    ctx.trim = 5;
    expect_config_error(&ctx, "trim: only for command lpush");
    ctx_defaults(&ctx, SL_REDIS_SET, "h");
    ctx.maxlen = 5;
    expect_config_error(&ctx, "maxlen: only for command xadd");
    const sl_connector *c = sl_connector_find("redis", SL_SINK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    sl_options *o = sl_options_new();
    sl_options_set(o, "key", "h");
    sl_options_set(o, "command", "publish");
    char err[512] = "";
    CU_ASSERT_EQUAL(sl_options_check(sl_connector_options(c), NULL, o, err, sizeof(err), NULL),
                    SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'publish' is not one of set|hset"));
    sl_options_destroy(o);
    ctx_defaults(&ctx, SL_REDIS_SET, "");
    expect_config_error(&ctx, "key: required");
    ctx_defaults(&ctx, SL_REDIS_SET, "k");
    ctx.username = "u";
    expect_config_error(&ctx, "needs a password");
    ctx_defaults(&ctx, SL_REDIS_HSET, "k");
    ctx.field = "{nope}";
    expect_config_error(&ctx, "field:");
}

/* ==== Input positions ==== */

static void test_redis_positions_key_and_fields(void)
{
    sl_redis_ctx ctx;
    ctx_defaults(&ctx, SL_REDIS_HINCRBY, "h");
    sl_buf b = {0};
    CU_ASSERT_EQUAL(sl__redis_positions_key(&ctx, "app", "out", &b), SL_OK);
    CU_ASSERT_STRING_EQUAL(b.p, "sluice:commit:positions:app:out");
    ctx.commit_prefix = "ns:";
    ctx.instance = "host1"; /* shared by every instance: no instance part */
    CU_ASSERT_EQUAL(sl__redis_positions_key(&ctx, "a:b", "c", &b), SL_OK);
    CU_ASSERT_STRING_EQUAL(b.p, "ns:positions:a:b:c");

    sl__buf_reset(&b);
    CU_ASSERT_EQUAL(sl__redis_position_field("kin", "words", 3, &b), SL_OK);
    CU_ASSERT_STRING_EQUAL(b.p, "kin\twords\t3");
    /* ':' in a source or topic name does not make two partitions share a field */
    sl_buf c = {0};
    sl__buf_reset(&b);
    sl__redis_position_field("a:b", "c", 0, &b);
    sl__redis_position_field("a", "b:c", 0, &c);
    CU_ASSERT_STRING_NOT_EQUAL(b.p, c.p);
    sl__buf_reset(&b);
    sl__buf_reset(&c);
    sl__redis_position_field("s", "t1", 0, &b);
    sl__redis_position_field("s", "t", 10, &c);
    CU_ASSERT_STRING_NOT_EQUAL(b.p, c.p);
    sl__buf_free(&b);
    sl__buf_free(&c);
}

static void test_redis_position_values(void)
{
    int64_t v = 7;
    CU_ASSERT_EQUAL(sl__redis_position_parse(NULL, 0, &v), SL_OK);
    CU_ASSERT_EQUAL(v, -1);
    CU_ASSERT_EQUAL(sl__redis_position_parse("0", 1, &v), SL_OK);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(sl__redis_position_parse("1234x", 4, &v), SL_OK); /* len bounds it */
    CU_ASSERT_EQUAL(v, 1234);
    CU_ASSERT_EQUAL(sl__redis_position_parse("9223372036854775807", 19, &v), SL_OK);
    CU_ASSERT_EQUAL(v, INT64_MAX);
    static const char *const bad[] = {
        "", "-1", "+1", "12a", " 1", "1.5", "9223372036854775808", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(sl__redis_position_parse(bad[i], strlen(bad[i]), &v), SL_ERR_INVAL);
    }
}

static void test_redis_positions_decide(void)
{
    sl_input_range r[2] = {{.source = "k", .topic = "t", .partition = 0, .from = 10, .until = 20},
                           {.source = "k", .topic = "t", .partition = 1, .from = 5, .until = 8}};
    size_t culprit = 99;
    /* first batch of a partition, and one that starts at the position: written */
    CU_ASSERT_EQUAL(sl__redis_positions_decide(r, (int64_t[]){-1, 5}, 2, &culprit),
                    SL_POSITION_WRITE);
    /* both held already (a replay, or written by another instance): skipped */
    CU_ASSERT_EQUAL(sl__redis_positions_decide(r, (int64_t[]){20, 9}, 2, &culprit),
                    SL_POSITION_SKIP);
    /* a range that starts elsewhere: fenced, named */
    CU_ASSERT_EQUAL(sl__redis_positions_decide(r, (int64_t[]){10, 6}, 2, &culprit),
                    SL_POSITION_FENCED);
    CU_ASSERT_EQUAL(culprit, 1);
    CU_ASSERT_EQUAL(sl__redis_positions_decide(r, (int64_t[]){15, 5}, 2, &culprit),
                    SL_POSITION_FENCED);
    CU_ASSERT_EQUAL(culprit, 0);
    /* one held, one new: fenced, naming the one that differs from the first */
    CU_ASSERT_EQUAL(sl__redis_positions_decide(r, (int64_t[]){20, 5}, 2, &culprit),
                    SL_POSITION_FENCED);
    CU_ASSERT_EQUAL(culprit, 1);
    CU_ASSERT_EQUAL(sl__redis_positions_decide(r, (int64_t[]){10, 8}, 2, &culprit),
                    SL_POSITION_FENCED);
    CU_ASSERT_EQUAL(culprit, 1);
    /* one range alone */
    CU_ASSERT_EQUAL(sl__redis_positions_decide(r, (int64_t[]){10}, 1, &culprit), SL_POSITION_WRITE);
    CU_ASSERT_EQUAL(sl__redis_positions_decide(r, (int64_t[]){25}, 1, &culprit), SL_POSITION_SKIP);
}

void sl_test_register(void)
{
    SL_SUITE("redis_templates", SL_TEST(redis_template_expands_placeholders),
             SL_TEST(redis_template_errors));
    SL_SUITE("redis_commands", SL_TEST(redis_commands_of_each_kind),
             SL_TEST(redis_numbers_are_checked), SL_TEST(redis_arguments_are_binary_safe),
             SL_TEST(redis_commit_key), SL_TEST(redis_config_errors),
             SL_TEST(redis_tombstone_deletes));
    SL_SUITE("redis_positions", SL_TEST(redis_positions_key_and_fields),
             SL_TEST(redis_position_values), SL_TEST(redis_positions_decide));
}

#else /* !SLUICE_WITH_REDIS */

static void test_redis_not_built(void)
{
    CU_PASS("built without the redis sink");
}

void sl_test_register(void)
{
    SL_SUITE("redis", SL_TEST(redis_not_built));
}

#endif

/* test_timestamp.c -- the timestamp op (sl_yamlops_time.c): a record's event time from a
 * JSON field, a header or the value, in epoch units, RFC 3339 / ISO 8601 and strptime
 * patterns; records without a valid time rejected; the op in YAML, feeding windows on event
 * time through the engine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sl_config.h"
#include "sl_engine.h"
#include "sl_yamlops.h"
#include "support.h"

/* The time op (target, name, format) reads from value; -1 when it rejects the record. */
static int64_t ts_of(sl_yamlop_target target, const char *name, const char *format,
                     const char *value)
{
    char err[256];
    sl_yamlop *op = sl__yamlops_timestamp_new(target, name, format, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(op);
    sl_header h = {.name = "t", .value = value, .value_len = (uint32_t)strlen(value)};
    sl_record_meta m = {
        .source = "in", .partition = -1, .offset = -1, .headers = &h, .nheaders = 1};
    sl_record in = {.value = value, .value_len = (uint32_t)strlen(value), .ts = 77, .meta = &m};
    sl_record out = in;
    int rc = sl__yamlops_timestamp(op, &in, &out);
    sl__yamlops_destroy(op);
    return rc == SL_OK ? out.ts : rc == SL_ERR_RECORD ? -1 : -2;
}

static void test_epoch_units(void)
{
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "ts", "ms", "{\"ts\":1700000000123}"), 1700000000123);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "ts", "ms", "{\"ts\":\"1700000000123\"}"), 1700000000123);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "a.t", "s", "{\"a\":{\"t\":1700000000.25}}"),
                    1700000000250);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "t", "s", "{\"t\":1700000000}"), 1700000000000);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "t", "us", "{\"t\":1700000000123456}"), 1700000000123);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "t", "ns", "{\"t\":1700000000123456789}"), 1700000000123);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_VALUE, NULL, "ms", "1500"), 1500);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_HEADER, "t", "s", "2"), 2000);
}

static void test_rfc3339_and_iso8601(void)
{
    const struct {
        const char *text;
        int64_t ms;
    } ok[] = {
        {"2026-12-07T21:44:00Z", 1796679840000},
        {"2026-12-07T21:44:00.5Z", 1796679840500},
        {"2026-12-07T21:44:00.123456789Z", 1796679840123},
        {"2026-12-07T22:44:00+01:00", 1796679840000},
        {"2026-12-07T20:14:00-0130", 1796679840000},
        {"2026-12-07 21:44:00", 1796679840000}, /* no offset: UTC */
        {"2026-12-07T21:44Z", 1796679840000},
        {"1970-01-01T00:00:00Z", 0},
        {"1969-12-31T23:59:59Z", -1000},
        {"2024-02-29T12:00:00Z", 1709208000000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char json[128];
        snprintf(json, sizeof(json), "{\"time\":\"%s\"}", ok[i].text);
        CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "time", "rfc3339", json), ok[i].ms);
        CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_VALUE, NULL, "rfc3339", ok[i].text), ok[i].ms);
    }
    const char *bad[] = {"2026-13-07T21:44:00Z",
                         "2026-12-07",
                         "2026-12-07T25:00:00Z",
                         "2026-12-07T21:44:00+",
                         "2026-12-07T21:44:00Zjunk",
                         "yesterday",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_VALUE, NULL, "rfc3339", bad[i]), -1);
    }
}

static void test_strptime_patterns(void)
{
    /* An access log's time, with its offset. */
    CU_ASSERT_EQUAL(
        ts_of(SL_YOP_ON_VALUE, NULL, "%d/%b/%Y:%H:%M:%S %z", "07/Dec/2026:22:44:00 +0100"),
        1796679840000);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_VALUE, NULL, "%Y-%m-%d %H:%M:%S", "2026-12-07 21:44:00"),
                    1796679840000); /* UTC */
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_VALUE, NULL, "%Y-%m-%d %H:%M:%S", "2026-12-07 21:44:00 x"), -1);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_VALUE, NULL, "%Y-%m-%d", "December"), -1);
}

static void test_records_without_a_time_are_rejected(void)
{
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "ts", "ms", "{\"other\":1}"), -1);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "ts", "ms", "not json"), -1);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "ts", "ms", "{\"ts\":\"soon\"}"), -1);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "ts", "ms", "{\"ts\":true}"), -1);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "ts", "rfc3339", "{\"ts\":1700000000}"), -1);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_JSON, "ts", "s", "{\"ts\":1e300}"), -1);
    CU_ASSERT_EQUAL(ts_of(SL_YOP_ON_HEADER, "missing", "ms", "1"), -1);
    char err[256];
    CU_ASSERT_PTR_NULL(
        sl__yamlops_timestamp_new(SL_YOP_ON_VALUE, NULL, "minutes", err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown format 'minutes'"));
}

/* ==== In YAML, and before windows on event time ==== */

/* Loads a pipeline whose stream has ops; its graph's text in desc, the error in err. */
static int load(const char *ops, char *desc, size_t descsize, char *err, size_t errsize)
{
    char y[1024];
    snprintf(y, sizeof(y),
             "app: {name: tsy, batch_interval: 1s, checkpoint_dir: /tmp/sluice-ts-unused}\n"
             "sources: [{name: in, type: tcp, port: 9999}]\n"
             "streams:\n"
             "  - name: w\n"
             "    from: in\n"
             "    ops:\n%s"
             "sinks: [{name: out, type: stdout, from: w}]\n",
             ops);
    sl_config *cfg;
    int rc = ts_config_load(y, &cfg, desc, descsize, err, errsize);
    sl__config_destroy(cfg);
    return rc;
}

static void test_yaml_timestamp_op(void)
{
    char desc[4096], err[1024];
    CU_ASSERT_EQUAL(load("      - key: {json: user}\n"
                         "      - timestamp: {json: at, format: rfc3339}\n"
                         "      - reduce_by_key_and_window: {fn: count, length: 1m, time: event,"
                         " max_out_of_orderness: 5s}\n",
                         desc, sizeof(desc), err, sizeof(err)),
                    SL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, "timestamp json at as rfc3339"));
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, "event time (out of order 5s)"));
    CU_ASSERT_EQUAL(load("      - timestamp: {format: \"%d/%b/%Y:%H:%M:%S %z\"}\n", desc,
                         sizeof(desc), err, sizeof(err)),
                    SL_OK);
    CU_ASSERT_EQUAL(load("      - timestamp: {json: at, format: fortnights}\n", desc, sizeof(desc),
                         err, sizeof(err)),
                    SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:7"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown format 'fortnights'"));
    CU_ASSERT_EQUAL(load("      - timestamp: {json: at}\n", desc, sizeof(desc), err, sizeof(err)),
                    SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "format"));
    CU_ASSERT_EQUAL(load("      - timestamp: ms\n", desc, sizeof(desc), err, sizeof(err)),
                    SL_ERR_INVAL);
    CU_ASSERT_EQUAL(load("      - reduce_by_key_and_window: {fn: count, length: 1m,"
                         " max_out_of_orderness: 5s}\n",
                         desc, sizeof(desc), err, sizeof(err)),
                    SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "time: event"));
}

/* A context whose stream keys JSON records by user, times them by "at" (RFC 3339) and
 * counts them in windows of a minute on event time, with lateness_ms allowed. */
typedef struct tw {
    char dir[256];
    sl_context *ctx;
    ts_source *src;
    sl_yamlop *ops[3];
    ts_out out;
    sl_batch_info info; /* of the last step */
} tw;

static void tw_new(tw *w, int64_t lateness_ms)
{
    char err[256];
    memset(w, 0, sizeof(*w));
    CU_ASSERT_TRUE_FATAL(ts_tmpdir(w->dir, sizeof(w->dir), "tswin"));
    sl_context_conf conf = {.name = "tsw", .batch_interval_ms = 1000, .checkpoint_dir = w->dir};
    w->ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(w->ctx);
    sl_stream *s = ts_source_add(w->ctx, "in", &w->src);
    w->ops[0] = sl__yamlops_key_from_new(SL_YOP_ON_JSON, "user", err, sizeof(err));
    w->ops[1] = sl__yamlops_timestamp_new(SL_YOP_ON_JSON, "at", "rfc3339", err, sizeof(err));
    w->ops[2] = sl__yamlops_value_literal_new("1", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(w->ops[0] && w->ops[1] && w->ops[2]);
    s = sl_stream_key_by(s, sl__yamlops_map, w->ops[0]);
    s = sl_stream_map_values(s, sl__yamlops_map, w->ops[1]);
    s = sl_stream_map_values(s, sl__yamlops_map, w->ops[2]);
    sl_event_window ew = {.length_ms = 60000, .allowed_lateness_ms = lateness_ms};
    s = sl_stream_reduce_by_key_and_event_window(s, sl_reduce_sum, NULL, &ew, 1);
    CU_ASSERT_EQUAL_FATAL(ts_collect(s, &w->out), SL_OK);
}

/* Feeds "user@HH:MM:SS" records (7 December 2026, UTC) as batch k; returns its windows. */
static const char *tw_step(tw *w, int k, const char *const *recs)
{
    char json[16][96];
    const char *lines[17];
    size_t n = 0;
    for (; recs[n] && n < 16; n++) {
        const char *at = strchr(recs[n], '@');
        snprintf(json[n], sizeof(json[n]), "{\"user\":\"%.*s\",\"at\":\"2026-12-07T%sZ\"}",
                 (int)(at - recs[n]), recs[n], at + 1);
        lines[n] = json[n];
    }
    lines[n] = NULL;
    ts_feed(w->src, lines);
    w->out.text[0] = '\0';
    CU_ASSERT_EQUAL(sl__context_step(w->ctx, 1796679840000 + 1000 * k, &w->info), SL_OK);
    return w->out.text;
}

static void tw_free(tw *w)
{
    sl_context_destroy(w->ctx);
    for (int i = 0; i < 3; i++) {
        sl__yamlops_destroy(w->ops[i]);
    }
    ts_rmdir(w->dir);
}

/* Within the allowed lateness a late record updates its window, emitted again; later, it is
 * left out and counted. */
static void test_late_records_within_the_lateness_update_their_window(void)
{
    tw w;
    tw_new(&w, 30000);
    uint64_t late = atomic_load(&w.ctx->records_late);
    const char *b1[] = {"ann@21:44:10", "ann@21:45:05", NULL};
    CU_ASSERT_STRING_EQUAL(tw_step(&w, 1, b1), "ann:1"); /* [21:44, 21:45) closes */
    const char *b2[] = {"ann@21:44:50", NULL};           /* late, within 30 s */
    CU_ASSERT_STRING_EQUAL(tw_step(&w, 2, b2), "ann:2"); /* emitted again, updated */
    const char *b3[] = {"bob@21:45:40", NULL};           /* [21:44, 21:45) is done */
    CU_ASSERT_STRING_EQUAL(tw_step(&w, 3, b3), "");
    const char *b4[] = {"ann@21:44:55", NULL}; /* too late: left out */
    CU_ASSERT_STRING_EQUAL(tw_step(&w, 4, b4), "");
    CU_ASSERT_EQUAL(atomic_load(&w.ctx->records_late), late + 1);
    const char *b5[] = {"cy@21:46:01", NULL};
    CU_ASSERT_STRING_EQUAL(tw_step(&w, 5, b5), "ann:1 bob:1"); /* [21:45, 21:46) */
    tw_free(&w);
    /* Without lateness, the first late record is left out already. */
    tw_new(&w, 0);
    CU_ASSERT_STRING_EQUAL(tw_step(&w, 1, b1), "ann:1");
    CU_ASSERT_STRING_EQUAL(tw_step(&w, 2, b2), "");
    tw_free(&w);
}

/* The times of JSON records feed windows of a minute: out of arrival order, a record with
 * no time rejected, windows emitted as the times pass them. */
static void test_json_times_feed_event_windows(void)
{
    tw w;
    tw_new(&w, 0);
    const char *b1[] = {"ann@21:44:10", "bob@21:43:59", "ann@21:44:59.999", "ann@soon", NULL};
    CU_ASSERT_STRING_EQUAL(tw_step(&w, 1, b1), "bob:1"); /* [21:43, 21:44) */
    CU_ASSERT_EQUAL(w.info.failed_records, 1);           /* ann@soon */
    const char *b2[] = {"bob@21:45:01", NULL};
    CU_ASSERT_STRING_EQUAL(tw_step(&w, 2, b2), "ann:2"); /* [21:44, 21:45) */
    tw_free(&w);
}

void sl_test_register(void)
{
    SL_SUITE("timestamp", SL_TEST(epoch_units), SL_TEST(rfc3339_and_iso8601),
             SL_TEST(strptime_patterns), SL_TEST(records_without_a_time_are_rejected),
             SL_TEST(yaml_timestamp_op), SL_TEST(json_times_feed_event_windows),
             SL_TEST(late_records_within_the_lateness_update_their_window));
}

/* test_deadletter.c -- records sinks reject (sl_deadletter.c): the JSON line of a dead letter
 * (text, nulls, non-UTF-8 bytes in base64), and the engine's side of the protocol, driven
 * by sl__context_step with a scripted sink that rejects the records whose value starts with
 * "bad": the file target, errors.tolerance none, attempts that fail before or after the
 * flush, a record rejected twice, a target that is down after the commit, bounded logs, a
 * torn last line, and the configuration errors. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cu_main.h"
#include "sl_config.h"
#include "sl_deadletter.h"
#include "sl_engine.h"
#include "support.h"

/* ==== JSON lines ==== */

static char *line_of(const sl_dl_batch *b, const sl_dl_entry *e)
{
    sl_buf buf = {0};
    CU_ASSERT_EQUAL(sl__dl_json_line(&buf, b, e), SL_OK);
    CU_ASSERT(buf.p != NULL && strlen(buf.p) == buf.len);
    return sl__buf_steal(&buf);
}

static void test_dl_json_line_text(void)
{
    sl_dl_batch b = {.pipeline = "pipe", .sink = "db", .batch_time = 1700000000000};
    sl_dl_entry e = {
        .key = "k\"1",
        .key_len = 3,
        .value = "{\"n\":\"abc\"}\n\t\x01 Gr\xc3\xbc\xc3\x9f"
                 "e",
        .value_len = 22,
        .ts = 1699999999999,
        .error = "column \"n\": 'abc' is not an integer",
        .source = "kin",
        .topic = "orders",
        .partition = 2,
        .offset = 17,
    };
    char *got = line_of(&b, &e);
    const char *want =
        "{\"pipeline\":\"pipe\",\"sink\":\"db\",\"batch_time\":1700000000000,"
        "\"error\":\"column \\\"n\\\": 'abc' is not an integer\",\"source\":\"kin\","
        "\"topic\":\"orders\",\"partition\":2,\"offset\":17,\"ts\":1699999999999,"
        "\"key\":\"k\\\"1\",\"value\":\"{\\\"n\\\":\\\"abc\\\"}\\n\\t\\u0001 Gr\xc3\xbc\xc3\x9f"
        "e\"}\n";
    CU_ASSERT_STRING_EQUAL(got, want);
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "\n got: %s\nwant: %s\n", got, want);
    }
    free(got);
}

/* Bytes that are not UTF-8 (a lone 0xff, a truncated sequence, an overlong '/', a
 * surrogate) are kept whole in base64; unknown meta is null; a typed value is "num". */
static void test_dl_json_line_binary_in_base64(void)
{
    sl_dl_batch b = {.pipeline = "p", .sink = "s", .batch_time = 5};
    static const char bin[] = {'a', (char)0xff, 0, (char)0xc3};
    static const char overlong[] = {(char)0xc0, (char)0xaf};
    static const char surrogate[] = {(char)0xed, (char)0xa0, (char)0x80};
    sl_dl_entry e = {
        .key = overlong,
        .key_len = 2,
        .value = bin,
        .value_len = 4,
        .num_type = SL_NUM_INT,
        .num.i = -3,
        .error = "bad \xff byte in a message",
        .partition = -1,
        .offset = -1,
    };
    char *got = line_of(&b, &e);
    CU_ASSERT_STRING_EQUAL(
        got, "{\"pipeline\":\"p\",\"sink\":\"s\",\"batch_time\":5,"
             "\"error\":\"YmFkIP8gYnl0ZSBpbiBhIG1lc3NhZ2U=\",\"error_encoding\":\"base64\","
             "\"source\":null,"
             "\"topic\":null,\"partition\":null,\"offset\":null,\"ts\":0,"
             "\"key\":\"wK8=\",\"key_encoding\":\"base64\","
             "\"value\":\"Yf8Aww==\",\"value_encoding\":\"base64\","
             "\"num\":-3}\n");
    free(got);

    sl_dl_entry e2 = {.value = surrogate, .value_len = 3, .partition = 0, .offset = 0};
    got = line_of(&b, &e2);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"key\":null,\"value\":\"7aCA\",\"value_encoding\":"
                                       "\"base64\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"partition\":0,\"offset\":0,"));
    free(got);

    /* Empty but present bytes are "", not null; NUL is valid UTF-8 (\u0000). */
    sl_dl_entry e3 = {.key = "", .value = "a\0b", .value_len = 3, .partition = -1, .offset = -1};
    got = line_of(&b, &e3);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"key\":\"\",\"value\":\"a\\u0000b\"}\n"));
    free(got);
}

/* Decodes base64 (no whitespace); returns the length, or -1. */
static long b64_decode(const char *in, unsigned char *out, size_t size)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = in; *p && *p != '='; p++) {
        const char *c = strchr(tab, *p);
        if (!c) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)(c - tab);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == size) {
                return -1;
            }
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)n;
}

/* field is base64 with field_encoding "base64", decoding to the n bytes of want. */
static void check_base64_field(json_t *o, const char *field, const char *want, size_t n)
{
    char enc[64];
    snprintf(enc, sizeof enc, "%s_encoding", field);
    const char *e = json_string_value(json_object_get(o, enc));
    CU_ASSERT(e && strcmp(e, "base64") == 0);
    const char *v = json_string_value(json_object_get(o, field));
    unsigned char got[256];
    long len = v ? b64_decode(v, got, sizeof got) : -1;
    CU_ASSERT_EQUAL(len, (long)n);
    if (len == (long)n) {
        CU_ASSERT_EQUAL(memcmp(got, want, n), 0);
    }
}

/* Issue 15: the text fields (error, source, topic) keep their bytes like key and value: not
 * UTF-8, they are base64 with "<field>_encoding"; valid ones stay text without a marker. */
static void test_dl_json_line_text_fields_keep_their_bytes(void)
{
    sl_dl_batch b = {.pipeline = "p", .sink = "s", .batch_time = 5};
    static const char topic[] = "or\xff"
                                "ders\xc3";
    static const char source[] = "k\xc0\xafin";
    static const char error[] = "bad \xff"
                                " byte";
    sl_dl_entry e = {
        .value = "v",
        .value_len = 1,
        .error = error,
        .source = source,
        .topic = topic,
        .partition = 1,
        .offset = 2,
    };
    char *got = line_of(&b, &e);
    json_error_t jerr;
    json_t *o = json_loads(got, 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    check_base64_field(o, "topic", topic, strlen(topic));
    check_base64_field(o, "source", source, strlen(source));
    check_base64_field(o, "error", error, strlen(error));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "value")), "v");
    CU_ASSERT_PTR_NULL(json_object_get(o, "value_encoding"));
    json_decref(o);
    free(got);

    /* Valid UTF-8 meta stays text, without a marker. */
    sl_dl_entry e2 = {.error = "Gr\xc3\xbc\xc3\x9f",
                      .source = "kin",
                      .topic = "t",
                      .partition = -1,
                      .offset = -1};
    got = line_of(&b, &e2);
    o = json_loads(got, 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "error")), "Gr\xc3\xbc\xc3\x9f");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "topic")), "t");
    CU_ASSERT_PTR_NULL(json_object_get(o, "error_encoding"));
    CU_ASSERT_PTR_NULL(json_object_get(o, "topic_encoding"));
    CU_ASSERT_PTR_NULL(json_object_get(o, "source_encoding"));
    json_decref(o);
    free(got);
}

/* ==== A scripted sink ==== */

typedef struct dls {
    int reject_rc[64];
    size_t nreject;
    int flush_rc[8];
    size_t nflush;
    int attempts;
    size_t written;
    bool no_flush;        /* leave the dead letters to the engine */
    bool ignore_refusal;  /* go on after a refusal */
    bool reject_twice;    /* reject each bad record twice in an attempt */
    int fail_after_flush; /* attempts that fail after their flush (a failed commit) */
    int fail_before;      /* attempts that fail before their flush */
    char unblock[512];    /* removed after a failed flush, so that the next one works */
    size_t lines_at_commit;
    char file[600]; /* the dead-letter file, to count lines at commit */
} dls;

static dls st;

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        n += c == '\n';
    }
    fclose(f);
    return n;
}

static int dls_write(void *ctx, const sl_batch_output *out, char *errstr, size_t errsize)
{
    (void)ctx;
    st.attempts++;
    st.written = 0;
    for (size_t p = 0; p < sl_dataset_partitions(out->ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            if (r[i].value_len >= 3 && memcmp(r[i].value, "bad", 3) == 0) {
                int rc = sl_batch_output_reject(out, &r[i], "the value is bad");
                if (st.reject_twice) {
                    rc = sl_batch_output_reject(out, &r[i], "again");
                }
                if (st.nreject < 64) {
                    st.reject_rc[st.nreject++] = rc;
                }
                if (rc != SL_OK && !st.ignore_refusal) {
                    return rc;
                }
                continue;
            }
            st.written++;
        }
    }
    if (st.fail_before > 0) {
        st.fail_before--;
        return SL_ERR_RETRY;
    }
    if (!st.no_flush) {
        int rc = sl_batch_output_flush_rejects(out);
        if (st.nflush < 8) {
            st.flush_rc[st.nflush++] = rc;
        }
        if (rc != SL_OK) {
            if (st.unblock[0]) {
                unlink(st.unblock);
            }
            return rc;
        }
    }
    if (st.fail_after_flush > 0) {
        st.fail_after_flush--;
        return SL_ERR_RETRY;
    }
    st.lines_at_commit = st.file[0] ? count_lines(st.file) : 0;
    return SL_OK;
}

static const sl_option dls_options[] = {{0}};

static const sl_connector dls_connector = {
    .name = "dl-test",
    .flags = SL_SINK,
    .options = dls_options,
    .write = dls_write,
};

typedef struct fixture {
    char dir[64];
    sl_context *ctx;
    ts_source *src;
    sl_stream *s;
} fixture;

static const sl_record_meta metas[6] = {
    {.source = "src", .topic = "t", .partition = 3, .offset = 10},
    {.source = "src", .topic = "t", .partition = 3, .offset = 11},
    {.source = "src", .topic = "t", .partition = 3, .offset = 12},
    {.source = "src", .topic = "t", .partition = 4, .offset = 7},
    {.source = "src", .topic = "t", .partition = 4, .offset = 8},
    {.source = "src", .topic = "t", .partition = 4, .offset = 9},
};

/* A context whose source yields good and bad records, and the sink with options (pairs of
 * key, value, NULL-terminated). Returns the sink's result; errstr gets the error. */
static int fixture_setup(fixture *f, const char *const *kv, char *errstr, size_t errsize)
{
    memset(&st, 0, sizeof(st));
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-test-dl-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(f->dir) != NULL);
    f->ctx = ts_context(1000, 1);
    f->s = ts_source_add(f->ctx, "src", &f->src);
    CU_ASSERT_FATAL(f->s != NULL);
    sl_options *o = sl_options_new();
    for (size_t i = 0; kv && kv[i]; i += 2) {
        char val[256];
        /* A leading "@" stands for the fixture's directory: the dead letters go there. */
        if (kv[i + 1][0] == '@') {
            snprintf(val, sizeof(val), "%s%s", f->dir, kv[i + 1] + 1);
            snprintf(st.file, sizeof(st.file), "%s/test-db.jsonl", val);
        } else {
            snprintf(val, sizeof(val), "%s", kv[i + 1]);
        }
        sl_options_set(o, kv[i], val);
    }
    int rc = sl_stream_to_connector(f->s, &dls_connector, "db", o, errstr, errsize);
    sl_options_destroy(o);
    if (!st.file[0]) {
        snprintf(st.file, sizeof(st.file), "%s/test-db.jsonl", f->dir);
    }
    return rc;
}

static void fixture_feed(fixture *f)
{
    static const char *const values[6] = {"good1", "bad1", "good2", "bad2", "good3", "bad3"};
    sl_record recs[6];
    for (int i = 0; i < 6; i++) {
        recs[i] = (sl_record){.key = "k",
                              .key_len = 1,
                              .value = values[i],
                              .value_len = (uint32_t)strlen(values[i]),
                              .ts = 1000 + i,
                              .meta = &metas[i]};
    }
    ts_feed_records(f->src, recs, 6);
}

static void fixture_teardown(fixture *f)
{
    sl_context_destroy(f->ctx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    CU_ASSERT(system(cmd) == 0);
}

static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        return strdup("");
    }
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

enum {
    SINK_REJECTED,
    SINK_DEAD,
    SINK_RECORDS
};

static uint64_t sink_counter(sl_context *ctx, int which)
{
    sl_instance_info infos[4];
    size_t n = sl_context_instances(ctx, infos, 4);
    for (size_t i = 0; i < n && i < 4; i++) {
        if (infos[i].role == SL_SINK) {
            return which == SINK_DEAD      ? infos[i].dead_letters
                   : which == SINK_RECORDS ? infos[i].records
                                           : infos[i].rejected;
        }
    }
    return 0;
}

/* ==== The engine's side ==== */

static void test_dl_file_holds_rejected_records_before_commit(void)
{
    fixture f;
    char err[512];
    const char *kv[] = {"errors.dead_letter.type", "file", "errors.dead_letter.path", "@", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    fixture_feed(&f);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    CU_ASSERT_EQUAL(info.failed_records, 3);
    CU_ASSERT_EQUAL(st.written, 3);
    CU_ASSERT_EQUAL(st.nflush, 1);
    CU_ASSERT_EQUAL(st.flush_rc[0], SL_OK);
    CU_ASSERT_EQUAL(st.lines_at_commit, 3); /* durable before the sink's commit */
    char *got = read_all(st.file);
    CU_ASSERT_EQUAL(count_of(got, "\n"), 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "{\"pipeline\":\"test\",\"sink\":\"db\",\"batch_time\":1000,"
                                       "\"error\":\"the value is bad\",\"source\":\"src\","
                                       "\"topic\":\"t\",\"partition\":3,\"offset\":11,"
                                       "\"ts\":1001,\"key\":\"k\",\"value\":\"bad1\"}\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"partition\":4,\"offset\":7,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"partition\":4,\"offset\":9,"));
    CU_ASSERT_PTR_NULL(strstr(got, "good"));
    free(got);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_REJECTED), 3);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_DEAD), 3);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_RECORDS), st.written); /* written, not rejected */

    /* The next batch appends. */
    fixture_feed(&f);
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 2000, &info), SL_OK);
    CU_ASSERT_EQUAL(count_lines(st.file), 6);
    fixture_teardown(&f);
}

static void test_dl_without_target_counts_only(void)
{
    fixture f;
    char err[512];
    CU_ASSERT_FATAL(fixture_setup(&f, NULL, err, sizeof(err)) == SL_OK);
    fixture_feed(&f);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    CU_ASSERT_EQUAL(st.nreject, 3);
    CU_ASSERT_EQUAL(st.reject_rc[0], SL_OK);
    CU_ASSERT_EQUAL(st.flush_rc[0], SL_OK);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_REJECTED), 3);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_DEAD), 0);
    CU_ASSERT_EQUAL(access(st.file, F_OK), -1);
    fixture_teardown(&f);
}

static void test_dl_tolerance_none_fails_the_batch(void)
{
    fixture f;
    char err[512];
    const char *kv[] = {"errors.tolerance", "none", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    fixture_feed(&f);
    sl_batch_info info;
    sl__context_step(f.ctx, 1000, &info);
    CU_ASSERT_EQUAL(st.nreject, 1);
    CU_ASSERT_EQUAL(st.reject_rc[0], SL_ERR_FATAL);
    CU_ASSERT_EQUAL(st.nflush, 0); /* the sink stopped at the record */
    CU_ASSERT_EQUAL(info.outputs_succeeded, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(info.error, "db: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(info.error, "partition 3, offset 11"));
    CU_ASSERT_PTR_NOT_NULL(strstr(info.error, "errors.tolerance is none"));
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_REJECTED), 0);
    fixture_teardown(&f);
}

/* A sink that goes on after the refusal still fails: the engine does not trust it. */
static void test_dl_tolerance_none_when_the_sink_ignores_it(void)
{
    fixture f;
    char err[512];
    const char *kv[] = {"errors.tolerance", "none", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    st.ignore_refusal = true;
    fixture_feed(&f);
    sl_batch_info info;
    sl__context_step(f.ctx, 1000, &info);
    CU_ASSERT_EQUAL(st.nreject, 3);
    CU_ASSERT_EQUAL(st.nflush, 1);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(info.error, "offset 11"));
    fixture_teardown(&f);
}

/* An attempt that fails before its flush leaves nothing: the retry writes each once. */
static void test_dl_failed_attempt_is_discarded(void)
{
    fixture f;
    char err[512];
    const char *kv[] = {"errors.dead_letter.type", "file", "errors.dead_letter.path", "@", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    st.fail_before = 2;
    fixture_feed(&f);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(st.attempts, 3);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    CU_ASSERT_EQUAL(count_lines(st.file), 3);
    char *got = read_all(st.file);
    CU_ASSERT_EQUAL(count_of(got, "\"offset\":11,"), 1);
    free(got);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_REJECTED), 3); /* counted once per batch */
    fixture_teardown(&f);
}

/* An attempt that flushed and then failed to commit: its dead letters stay, and the retry
 * writes them again (at least once). */
static void test_dl_flushed_then_failed_is_written_again(void)
{
    fixture f;
    char err[512];
    const char *kv[] = {"errors.dead_letter.type", "file", "errors.dead_letter.path", "@", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    st.fail_after_flush = 1;
    fixture_feed(&f);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(st.attempts, 2);
    CU_ASSERT_EQUAL(count_lines(st.file), 6);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_REJECTED), 3);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_DEAD), 6);
    fixture_teardown(&f);
}

static void test_dl_same_record_twice_counts_once(void)
{
    fixture f;
    char err[512];
    const char *kv[] = {"errors.dead_letter.type", "file", "errors.dead_letter.path", "@", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    st.reject_twice = true;
    fixture_feed(&f);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(count_lines(st.file), 3);
    char *got = read_all(st.file);
    CU_ASSERT_EQUAL(count_of(got, "the value is bad"), 3); /* the first reason is kept */
    free(got);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_REJECTED), 3);
    fixture_teardown(&f);
}

/* The flush fails (the directory cannot be made: <dir>/blocker is a file): the sink does not
 * commit, the batch is retried and its dead letters written once the target works. */
static void test_dl_flush_failure_retries_the_batch(void)
{
    fixture f;
    char err[512];
    const char *kv[] = {"errors.dead_letter.type", "file", "errors.dead_letter.path",
                        "@/blocker/dead", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    snprintf(st.unblock, sizeof(st.unblock), "%s/blocker", f.dir);
    FILE *b = fopen(st.unblock, "w");
    CU_ASSERT_FATAL(b != NULL);
    fclose(b);
    fixture_feed(&f);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(st.nflush, 2);
    CU_ASSERT_EQUAL(st.flush_rc[0], SL_ERR_RETRY);
    CU_ASSERT_EQUAL(st.flush_rc[1], SL_OK);
    CU_ASSERT_EQUAL(st.attempts, 2);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    CU_ASSERT_EQUAL(count_lines(st.file), 3);
    CU_ASSERT_EQUAL(st.lines_at_commit, 3);
    fixture_teardown(&f);
}

static void *unblock_later(void *arg)
{
    sl__sleep_ms(400);
    unlink((const char *)arg);
    return NULL;
}

/* A sink that does not flush: the engine writes the dead letters after its commit, holding
 * the batch until the target works. */
static void test_dl_engine_writes_what_is_left_and_holds_the_batch(void)
{
    fixture f;
    char err[512], blocker[600];
    const char *kv[] = {"errors.dead_letter.type", "file", "errors.dead_letter.path",
                        "@/blocker/dead", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    snprintf(blocker, sizeof(blocker), "%s/blocker", f.dir);
    FILE *b = fopen(blocker, "w");
    CU_ASSERT_FATAL(b != NULL);
    fclose(b);
    st.no_flush = true;
    fixture_feed(&f);
    pthread_t th;
    pthread_create(&th, NULL, unblock_later, blocker);
    int64_t t0 = sl__now_ms();
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK);
    pthread_join(th, NULL);
    CU_ASSERT(sl__now_ms() - t0 >= 400); /* held until the target worked */
    CU_ASSERT_EQUAL(st.attempts, 1);     /* the sink is not asked again */
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    CU_ASSERT_EQUAL(count_lines(st.file), 3);
    CU_ASSERT_EQUAL(sink_counter(f.ctx, SINK_DEAD), 3);
    fixture_teardown(&f);
}

/* A crash in the middle of a line: the torn line is cut before new lines are appended. */
static void test_dl_file_cuts_a_torn_last_line(void)
{
    fixture f;
    char err[512];
    const char *kv[] = {"errors.dead_letter.type", "file", "errors.dead_letter.path", "@", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    FILE *fp = fopen(st.file, "w");
    CU_ASSERT_FATAL(fp != NULL);
    fputs("{\"old\":1}\n{\"torn\":", fp);
    fclose(fp);
    fixture_feed(&f);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(f.ctx, 1000, &info), SL_OK);
    char *got = read_all(st.file);
    CU_ASSERT_EQUAL(strncmp(got, "{\"old\":1}\n{\"pipeline\":", 22), 0);
    CU_ASSERT_PTR_NULL(strstr(got, "torn"));
    CU_ASSERT_EQUAL(count_of(got, "\n"), 4);
    free(got);
    fixture_teardown(&f);
}

/* Logs: errors.log_limit records one by one per batch, then one summary line. */
static void test_dl_log_is_bounded(void)
{
    fixture f;
    char err[512];
    const char *kv[] = {"errors.log_limit", "2", NULL};
    CU_ASSERT_FATAL(fixture_setup(&f, kv, err, sizeof(err)) == SL_OK);
    sl_record recs[40];
    static sl_record_meta m[40];
    for (int i = 0; i < 40; i++) {
        m[i] = (sl_record_meta){.source = "src", .topic = "t", .partition = 0, .offset = i};
        recs[i] = (sl_record){.value = "bad", .value_len = 3, .meta = &m[i]};
    }
    ts_feed_records(f.src, recs, 40);
    st.fail_before = 1; /* a retried batch does not log its records again */

    char path[] = "/tmp/sluice-test-dl-log-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    sl_batch_info info;
    int rc = sl__context_step(f.ctx, 1000, &info);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    CU_ASSERT_EQUAL(rc, SL_OK);
    char *log = read_all(path);
    unlink(path);
    CU_ASSERT_EQUAL(count_of(log, "record skipped"), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "record skipped (source src, topic t, partition 0, "
                                       "offset 0): the value is bad"));
    CU_ASSERT_EQUAL(count_of(log, "40 records skipped (not written) (38 not logged one by one)"),
                    1);
    free(log);
    fixture_teardown(&f);
}

static void test_dl_config_errors_name_the_option(void)
{
    fixture f;
    char err[512] = "";
    const char *no_path[] = {"errors.dead_letter.type", "file", NULL};
    CU_ASSERT_EQUAL(fixture_setup(&f, no_path, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "errors.dead_letter.path: give the directory"));
    fixture_teardown(&f);

    const char *no_type[] = {"errors.dead_letter.path", "/tmp", NULL};
    CU_ASSERT_EQUAL(fixture_setup(&f, no_type, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "errors.dead_letter.path: set errors.dead_letter.type"));
    fixture_teardown(&f);

    const char *none[] = {"errors.tolerance",
                          "none",
                          "errors.dead_letter.type",
                          "file",
                          "errors.dead_letter.path",
                          "@",
                          NULL};
    CU_ASSERT_EQUAL(fixture_setup(&f, none, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "errors.dead_letter.type: dead letters need"));
    fixture_teardown(&f);

    const char *bad[] = {"errors.tolerance", "some", NULL};
    CU_ASSERT_EQUAL(fixture_setup(&f, bad, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "errors.tolerance"));
    fixture_teardown(&f);

#ifndef SLUICE_WITH_KAFKA
    const char *kafka[] = {"errors.dead_letter.type", "kafka", NULL};
    CU_ASSERT_EQUAL(fixture_setup(&f, kafka, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'kafka' is not one of file"));
    fixture_teardown(&f);
#else
    const char *kafka[] = {"errors.dead_letter.type", "kafka", "errors.dead_letter.brokers",
                           "127.0.0.1:1", NULL};
    CU_ASSERT_EQUAL(fixture_setup(&f, kafka, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "errors.dead_letter.topic: give the dead-letter topic"));
    fixture_teardown(&f);
#endif
}

#ifdef SLUICE_WITH_KAFKA
/* The kafka sink: a message larger than message.max.bytes is a record error, dead-lettered;
 * the others are produced and the batch succeeds. */
static void test_dl_kafka_sink_too_large_message(void)
{
    char dir[] = "/tmp/sluice-test-dl-k-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char err[512];
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", "embedded");
    sl_options_set(o, "topic", "dl-too-large");
    sl_options_set(o, "properties", "message.max.bytes=1000");
    sl_options_set(o, "errors.dead_letter.type", "file");
    sl_options_set(o, "errors.dead_letter.path", dir);
    CU_ASSERT_FATAL(sl_stream_to(s, "kafka", "out", o, err, sizeof(err)) == SL_OK);
    sl_options_destroy(o);
    static char big[3000];
    memset(big, 'x', sizeof(big));
    sl_record recs[3] = {
        {.value = "small1", .value_len = 6, .meta = &metas[0]},
        {.value = big, .value_len = sizeof(big), .meta = &metas[1]},
        {.value = "small2", .value_len = 6, .meta = &metas[2]},
    };
    ts_feed_records(src, recs, 3);
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    CU_ASSERT_EQUAL(sink_counter(ctx, false), 1);
    char path[128];
    snprintf(path, sizeof(path), "%s/test-out.jsonl", dir);
    char *got = read_all(path);
    CU_ASSERT_EQUAL(count_of(got, "\n"), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"partition\":3,\"offset\":11,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "larger than message.max.bytes"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "xxxxxxxxxx\"}\n"));
    free(got);
    sl_context_destroy(ctx);
    unlink(path);
    rmdir(dir);
}
#endif

/* ==== YAML ==== */

/* Loads and builds a pipeline whose stdout sink has the errors lines given; returns the
 * error text ("" when it loaded and built). */
static void yaml_errors(const char *errors, char *err, size_t errsize)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "app:\n  name: y\n  batch_interval: 1s\nsources:\n  - name: g\n    type: generate\n"
             "sinks:\n  - name: out\n    type: stdout\n    from: g\n%s",
             errors);
    sl_config *cfg = NULL;
    err[0] = '\0';
    if (sl__config_load_string(text, strlen(text), "p.yaml", &cfg, err, errsize) == SL_OK) {
        sl_context *ctx = sl__config_build(cfg, err, errsize);
        if (ctx) {
            err[0] = '\0';
        }
        sl_context_destroy(ctx);
    }
    sl__config_destroy(cfg);
}

static void test_dl_yaml_nested_errors(void)
{
    char err[1024];
    yaml_errors("    errors:\n      tolerance: all\n      log_limit: 3\n      dead_letter:\n"
                "        type: file\n        path: /tmp/sluice-test-dl-yaml\n",
                err, sizeof(err));
    CU_ASSERT_STRING_EQUAL(err, "");
    /* The dotted names work too. */
    yaml_errors("    errors.tolerance: none\n", err, sizeof(err));
    CU_ASSERT_STRING_EQUAL(err, "");

    yaml_errors("    errors:\n      dead_letter:\n        type: file\n        pathh: /tmp\n", err,
                sizeof(err));
    CU_ASSERT_STRING_EQUAL(err, "p.yaml:14:9: error: unknown key 'pathh' in "
                                "'errors.dead_letter' of stdout sink 'out' (did you mean "
                                "'path'?); valid keys: type, path, brokers, topic, properties, "
                                "timeout");
    yaml_errors("    errors:\n      tolerance: some\n", err, sizeof(err));
    CU_ASSERT(strncmp(err, "p.yaml:12:18: error: ", 21) == 0 && strstr(err, "errors.tolerance"));
    yaml_errors("    errors: none\n", err, sizeof(err));
    CU_ASSERT(strncmp(err,
                      "p.yaml:11:13: error: 'errors' in stdout sink 'out' must be a "
                      "mapping with the keys: tolerance, log_limit, dead_letter",
                      100) == 0);
    yaml_errors("    errorz:\n      tolerance: all\n", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "p.yaml:11:5: error: unknown option 'errorz'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "(did you mean 'errors'?); valid options: name, type, "
                                       "from, changelog, errors,"));
    /* A target's problem found when the sink is made points at its option. */
    yaml_errors("    errors:\n      dead_letter:\n        type: file\n", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "p.yaml:13:15: error: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "errors.dead_letter.path: give the directory"));
#ifndef SLUICE_WITH_KAFKA
    yaml_errors("    errors:\n      dead_letter:\n        type: kafka\n", err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "p.yaml:13:15: error: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'kafka' is not one of file"));
#endif
}

/* Without the engine (a sink driven by a test), a reject is logged and tolerated. */
static void test_dl_reject_without_engine(void)
{
    sl_batch_output out = {.batch_time = 5, .sink = "x"};
    sl_record r = {.value = "v", .value_len = 1};
    CU_ASSERT_EQUAL(sl_batch_output_reject(&out, &r, "why"), SL_OK);
    CU_ASSERT_EQUAL(sl_batch_output_flush_rejects(&out), SL_OK);
}

void sl_test_register(void)
{
    SL_SUITE("deadletter", SL_TEST(dl_json_line_text), SL_TEST(dl_json_line_binary_in_base64),
             SL_TEST(dl_json_line_text_fields_keep_their_bytes),
             SL_TEST(dl_file_holds_rejected_records_before_commit),
             SL_TEST(dl_without_target_counts_only), SL_TEST(dl_tolerance_none_fails_the_batch),
             SL_TEST(dl_tolerance_none_when_the_sink_ignores_it),
             SL_TEST(dl_failed_attempt_is_discarded),
             SL_TEST(dl_flushed_then_failed_is_written_again),
             SL_TEST(dl_same_record_twice_counts_once), SL_TEST(dl_flush_failure_retries_the_batch),
             SL_TEST(dl_engine_writes_what_is_left_and_holds_the_batch),
             SL_TEST(dl_file_cuts_a_torn_last_line), SL_TEST(dl_log_is_bounded),
             SL_TEST(dl_config_errors_name_the_option), SL_TEST(dl_yaml_nested_errors),
             SL_TEST(dl_reject_without_engine));
#ifdef SLUICE_WITH_KAFKA
    SL_SUITE("deadletter_kafka", SL_TEST(dl_kafka_sink_too_large_message));
#endif
}

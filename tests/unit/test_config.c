/* test_config.c -- the YAML front end: loading, every kind of error with its
 * file:line:column, ${VAR} expansion, durations, build order and building a context. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_config.h"
#include "sl_connector.h"
#include "sl_util.h"

/* ==== Helpers ==== */

/* A valid pipeline that the error tests break in one place each. Line numbers matter. */
static const char base_yaml[] = "app:\n"                      /* 1 */
                                "  batch_interval: 1s\n"      /* 2 */
                                "sources:\n"                  /* 3 */
                                "  - name: lines\n"           /* 4 */
                                "    type: tcp\n"             /* 5 */
                                "    port: 9999\n"            /* 6 */
                                "streams:\n"                  /* 7 */
                                "  - name: counts\n"          /* 8 */
                                "    from: lines\n"           /* 9 */
                                "    ops:\n"                  /* 10 */
                                "      - split: whitespace\n" /* 11 */
                                "sinks:\n"                    /* 12 */
                                "  - name: out\n"             /* 13 */
                                "    type: stdout\n"          /* 14 */
                                "    from: counts\n";         /* 15 */

static int load(const char *yaml, sl_config **cfg, char *err, size_t errsize)
{
    return sl__config_load_string(yaml, strlen(yaml), "t.yaml", cfg, err, errsize);
}

/* base_yaml with the first occurrence of `from` replaced by `to`. */
static char *patched(const char *from, const char *to)
{
    const char *at = strstr(base_yaml, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    size_t pre = (size_t)(at - base_yaml);
    char *s = malloc(sizeof(base_yaml) + strlen(to) + 1);
    memcpy(s, base_yaml, pre);
    strcpy(s + pre, to);
    strcat(s, at + strlen(from));
    return s;
}

/* Loads yaml, expects failure with the message starting "t.yaml:LOC: error: " and holding
 * every one of the NULL-terminated words. The message must be a single line. */
static void expect_error_in(const char *yaml, const char *loc, const char *const *words)
{
    char err[1024];
    sl_config *cfg = NULL;
    int rc = load(yaml, &cfg, err, sizeof(err));
    CU_ASSERT_EQUAL(rc, SL_ERR_INVAL);
    CU_ASSERT_PTR_NULL(cfg);
    sl__config_destroy(cfg);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "t.yaml:%s: error: ", loc);
    if (strncmp(err, prefix, strlen(prefix)) != 0) {
        fprintf(stderr, "\n    expected prefix '%s', got '%s'\n", prefix, err);
        CU_FAIL("error prefix");
    }
    CU_ASSERT_PTR_NULL(strchr(err, '\n'));
    for (size_t i = 0; words[i]; i++) {
        if (!strstr(err, words[i])) {
            fprintf(stderr, "\n    expected '%s' in '%s'\n", words[i], err);
            CU_FAIL("error words");
        }
    }
}

#define EXPECT_ERROR(yaml, loc, ...)                                                               \
    do {                                                                                           \
        static const char *const w_[] = {__VA_ARGS__, NULL};                                       \
        expect_error_in(yaml, loc, w_);                                                            \
    } while (0)

#define EXPECT_PATCH_ERROR(from, to, loc, ...)                                                     \
    do {                                                                                           \
        char *y_ = patched(from, to);                                                              \
        EXPECT_ERROR(y_, loc, __VA_ARGS__);                                                        \
        free(y_);                                                                                  \
    } while (0)

/* The graph as sluice check prints it. */
static char *graph_of(const sl_config *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sl__config_print_graph(cfg, f);
    fclose(f);
    char *copy = strdup(buf); /* a heap string of its own, not the stream's buffer */
    free(buf);
    return copy;
}

/* ==== Loading valid pipelines ==== */

static void test_load_valid_base(void)
{
    char err[1024];
    sl_config *cfg;
    CU_ASSERT_EQUAL_FATAL(load(base_yaml, &cfg, err, sizeof(err)), SL_OK);
    CU_ASSERT_STRING_EQUAL(sl__config_app_name(cfg), "sluice");
    CU_ASSERT_EQUAL(sl__config_batch_interval(cfg), 1000);
    sl_log_level level;
    CU_ASSERT_FALSE(sl__config_log_level(cfg, &level));
    char *g = graph_of(cfg);
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "lines (tcp)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "port: 9999"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "counts <- lines"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "1. split whitespace"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "out (stdout) <- counts"));
    free(g);
    sl__config_destroy(cfg);
}

static void test_durations_and_app_keys(void)
{
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {{"250ms", 250}, {"1s", 1000},    {"1.5s", 1500},
                 {"5m", 300000}, {"2h", 7200000}, {"10ms", 10}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[64], err[1024];
        snprintf(line, sizeof(line), "  batch_interval: %s\n", cases[i].text);
        char *y = patched("  batch_interval: 1s\n", line);
        sl_config *cfg;
        CU_ASSERT_EQUAL(load(y, &cfg, err, sizeof(err)), SL_OK);
        if (cfg) {
            CU_ASSERT_EQUAL(sl__config_batch_interval(cfg), cases[i].ms);
        }
        sl__config_destroy(cfg);
        free(y);
    }
    char err[1024];
    sl_config *cfg;
    char *y = patched("  batch_interval: 1s\n",
                      "  name: wc\n  batch_interval: 1s\n  workers: 2\n  partitions: 4\n"
                      "  block_interval: 100ms\n  checkpoint_dir: /tmp/x\n  log_level: debug\n");
    CU_ASSERT_EQUAL_FATAL(load(y, &cfg, err, sizeof(err)), SL_OK);
    sl_log_level level;
    CU_ASSERT_TRUE(sl__config_log_level(cfg, &level));
    CU_ASSERT_EQUAL(level, SL_LOG_DEBUG);
    CU_ASSERT_STRING_EQUAL(sl__config_app_name(cfg), "wc");
    char *g = graph_of(cfg);
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "workers: 2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "partitions: 4"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "block_interval: 100ms"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "checkpoint_dir: /tmp/x"));
    free(g);
    sl__config_destroy(cfg);
    free(y);
}

/* Streams declared before what they read are built after it. */
static void test_streams_in_any_order(void)
{
    const char *yaml = "app: {batch_interval: 1s}\n"
                       "sources: [{name: s, type: tcp, port: 1}, {name: s2, type: tcp, port: 2}]\n"
                       "streams:\n"
                       "  - {name: c, from: b, ops: [{join: {with: a, type: left}}]}\n"
                       "  - {name: b, from: [a, s2]}\n"
                       "  - {name: a, from: s, ops: [{key: value}]}\n"
                       "sinks: [{name: o, type: stdout, from: c}]\n";
    char err[1024];
    sl_config *cfg;
    CU_ASSERT_EQUAL_FATAL(load(yaml, &cfg, err, sizeof(err)), SL_OK);
    char *g = graph_of(cfg);
    char *a = strstr(g, "  a <- s"), *b = strstr(g, "  b <- a + s2"), *c = strstr(g, "  c <- b");
    CU_ASSERT_FATAL(a && b && c);
    CU_ASSERT(a < b && b < c);
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "join a (left)"));
    free(g);
    sl_context *ctx = sl__config_build(cfg, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(ctx);
    sl_context_destroy(ctx);
    sl__config_destroy(cfg);
}

/* Every op, in both forms where it has two, loads and builds through the public API. */
static void test_every_op_builds(void)
{
    const char *yaml = "app: {batch_interval: 1s, workers: 2}\n"
                       "sources:\n"
                       "  - {name: s, type: generate, rate: 5}\n"
                       "streams:\n"
                       "  - name: all\n"
                       "    from: s\n"
                       "    ops:\n"
                       "      - split: whitespace\n"
                       "      - split: {delimiter: \",\"}\n"
                       "      - map: trim\n"
                       "      - map: lower\n"
                       "      - map: upper\n"
                       "      - filter: {matches: \"^[A-Z]+$\"}\n"
                       "      - filter: {contains: A}\n"
                       "      - filter: {not_equals: THE}\n"
                       "      - key: value\n"
                       "      - key: {json: user.id}\n"
                       "      - filter: {key: true, equals: x}\n"
                       "      - filter: {json: a.b, ge: 1}\n"
                       "      - value: 1\n"
                       "      - value: 0.5\n"
                       "      - value: {json: amount}\n"
                       "      - value: {json: name, as: text}\n"
                       "      - repartition: 3\n"
                       "      - window: {length: 4s, slide: 2s}\n"
                       "      - window: 4s\n"
                       "      - reduce_by_key: sum\n"
                       "      - reduce_by_key: {fn: count, partitions: 4}\n"
                       "      - reduce_by_key: min\n"
                       "      - reduce_by_key: {fn: max}\n"
                       "      - join: other\n"
                       "      - join: {with: other, type: left, partitions: 2}\n"
                       "      - count_by_value: {}\n"
                       "      - count_by_value: {partitions: 2}\n"
                       "      - count: {}\n"
                       "      - count\n"
                       "      - reduce: sum\n"
                       "      - reduce: {fn: count}\n"
                       "  - name: other\n"
                       "    from: s\n"
                       "    ops: [{window: {length: 2s, slide: 2s}}]\n"
                       "sinks:\n"
                       "  - {name: o, type: stdout, from: all, num: 3}\n"
                       "  - {name: o2, type: stdout, from: s}\n";
    char err[1024];
    sl_config *cfg;
    int rc = load(yaml, &cfg, err, sizeof(err));
    if (rc != SL_OK) {
        fprintf(stderr, "\n    %s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, SL_OK);
    sl_context *ctx = sl__config_build(cfg, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "\n    %s\n", err);
    }
    CU_ASSERT_PTR_NOT_NULL(ctx);
    sl_context_destroy(ctx);
    char *g = graph_of(cfg);
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "split delimiter ','"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "filter json a.b ge '1'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "reduce_by_key count (partitions 4)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "window length 4s slide 2s"));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "all <- s (every 2s)"));
    free(g);
    sl__config_destroy(cfg);
}

static void test_load_file_and_missing_file(void)
{
    char path[] = "/tmp/sluice-test-config-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, base_yaml, strlen(base_yaml)), (ssize_t)strlen(base_yaml));
    close(fd);
    char err[1024];
    sl_config *cfg;
    CU_ASSERT_EQUAL(sl__config_load(path, &cfg, err, sizeof(err)), SL_OK);
    sl__config_destroy(cfg);
    unlink(path);
    CU_ASSERT_EQUAL(sl__config_load(path, &cfg, err, sizeof(err)), SL_ERR_IO);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1:1: error: cannot read the file"));
}

/* ==== Errors, each with its place ==== */

static void test_error_unknown_keys(void)
{
    EXPECT_PATCH_ERROR("batch_interval", "batch_intervl", "2:3", "unknown key 'batch_intervl'",
                       "did you mean 'batch_interval'", "valid keys: name, batch_interval");
    EXPECT_PATCH_ERROR("    port: 9999\n", "    port: 9999\n    hots: x\n", "7:5",
                       "unknown option 'hots'", "did you mean 'host'", "mode, host, port");
    EXPECT_PATCH_ERROR("    from: counts\n", "    from: counts\n    numm: 3\n", "16:5",
                       "unknown option 'numm'", "stdout sink 'out'", "num");
    EXPECT_PATCH_ERROR("    from: lines\n", "    from: lines\n    opz: []\n", "10:5",
                       "unknown key 'opz' in a stream", "name, from, ops");
    EXPECT_PATCH_ERROR("split: whitespace", "splitt: whitespace", "11:9", "unknown op 'splitt'",
                       "did you mean 'split'", "valid ops: split, key, value, filter");
    EXPECT_PATCH_ERROR("split: whitespace", "split: {delimiter: \",\", x: 1}", "11:33",
                       "unknown key 'x' in op 'split'", "valid keys: delimiter");
    EXPECT_PATCH_ERROR("split: whitespace", "window: {length: 2s, slid: 1s}", "11:30",
                       "unknown key 'slid'", "did you mean 'slide'", "length, slide");
    char *y = malloc(sizeof(base_yaml) + 32);
    sprintf(y, "%sextra: 1\n", base_yaml);
    EXPECT_ERROR(y, "16:1", "unknown section 'extra'", "app, sources, streams, sinks");
    free(y);
}

static void test_error_wrong_types_and_ranges(void)
{
    EXPECT_PATCH_ERROR("  batch_interval: 1s\n", "  batch_interval: 1s\n  workers: abc\n", "3:12",
                       "app.workers must be an integer, got 'abc'");
    EXPECT_PATCH_ERROR("  batch_interval: 1s\n", "  batch_interval: 1s\n  workers: 300\n", "3:12",
                       "between 1 and 256");
    EXPECT_PATCH_ERROR("  batch_interval: 1s\n", "  batch_interval: 1s\n  log_level: loud\n",
                       "3:14", "unknown value 'loud'", "error, warn, info, debug");
    EXPECT_PATCH_ERROR("port: 9999", "port: abc", "6:11", "tcp source 'lines'", "'port'",
                       "not an integer");
    EXPECT_PATCH_ERROR("port: 9999", "port: 70000", "6:11", "'port'", "70000", "out of range");
    EXPECT_PATCH_ERROR("port: 9999", "port: [1, 2]", "6:11", "option 'port'",
                       "one value, not a list");
    EXPECT_PATCH_ERROR("port: 9999", "port: {a: 1}", "6:11", "option 'port'", "a mapping");
    EXPECT_PATCH_ERROR("  - name: out", "  - name: {a: 1}", "13:11", "'name' in a sink",
                       "must be a scalar, got a mapping");
    EXPECT_PATCH_ERROR("  - name: out", "  - name: a b", "13:11", "bad name 'a b'");
    EXPECT_PATCH_ERROR("split: whitespace", "repartition: many", "11:22",
                       "repartition must be an integer");
    EXPECT_PATCH_ERROR("split: whitespace", "split: \",\"", "11:16", "split takes 'whitespace'");
    EXPECT_PATCH_ERROR("split: whitespace", "reduce_by_key: median", "11:24",
                       "unknown value 'median'",
                       "sum, count, min, max, avg, first, last, "
                       "count_distinct");
    EXPECT_PATCH_ERROR("split: whitespace", "value: abc", "11:16", "'abc' is not a number");
    EXPECT_PATCH_ERROR("split: whitespace", "filter: {gt: abc}", "11:22", "gt needs a number");
    EXPECT_PATCH_ERROR("split: whitespace", "filter: {matches: \"a(b\"}", "11:27",
                       "bad regular expression 'a(b'");
    EXPECT_PATCH_ERROR("split: whitespace", "filter: {gt: 1, lt: 2}", "11:25",
                       "one comparison, got 'gt' and 'lt'");
    EXPECT_PATCH_ERROR("split: whitespace", "filter: {json: a}", "11:17",
                       "filter needs one comparison");
    EXPECT_PATCH_ERROR("split: whitespace", "key: {json: a..b}", "11:21", "bad JSON path");
    EXPECT_PATCH_ERROR("split: whitespace", "split", "11:9", "op 'split' needs an argument");
    EXPECT_PATCH_ERROR("      - split: whitespace\n",
                       "      - split: whitespace\n        key: value\n", "11:9",
                       "an op is a mapping with one key");
    EXPECT_PATCH_ERROR("    ops:\n      - split: whitespace\n", "    ops: split\n", "10:10",
                       "'ops' in stream 'counts' must "
                       "be a list");
    EXPECT_ERROR("- a\n- b\n", "1:1", "top level must be a mapping", "got a list");
    EXPECT_ERROR("just text\n", "1:1", "top level must be a mapping", "got a scalar");
    EXPECT_PATCH_ERROR("sources:\n  - name: lines\n    type: tcp\n    port: 9999\n",
                       "sources: {a: 1}\n", "3:10",
                       "section 'sources' must be "
                       "a list");
}

static void test_error_durations(void)
{
    EXPECT_PATCH_ERROR("batch_interval: 1s", "batch_interval: 1 sec", "2:19",
                       "bad duration '1 sec'", "250ms");
    EXPECT_PATCH_ERROR("batch_interval: 1s", "batch_interval: 1000", "2:19", "bad duration '1000'");
    EXPECT_PATCH_ERROR("batch_interval: 1s", "batch_interval: 5ms", "2:19", "at least 10ms",
                       "'5ms'");
    EXPECT_PATCH_ERROR("split: whitespace", "window: {length: soon}", "11:26",
                       "window.length: bad duration 'soon'");
}

static void test_error_missing_required(void)
{
    EXPECT_PATCH_ERROR("  batch_interval: 1s\n", "  name: x\n", "2:3",
                       "missing required key 'batch_interval' in app");
    EXPECT_PATCH_ERROR("app:\n  batch_interval: 1s\n", "", "1:1", "missing required section 'app'");
    EXPECT_PATCH_ERROR("    from: lines\n", "", "8:5",
                       "missing required key 'from' in stream "
                       "'counts'");
    EXPECT_PATCH_ERROR("    from: counts\n", "", "13:5", "missing required key 'from'",
                       "sink 'out'");
    EXPECT_PATCH_ERROR("    type: tcp\n", "", "4:5",
                       "missing required key 'type' in source "
                       "'lines'");
    EXPECT_PATCH_ERROR("  - name: out\n", "  - nam: out\n", "13:5",
                       "missing required key 'name' in a sink");
    EXPECT_PATCH_ERROR("    port: 9999\n", "", "4:5", "missing required option 'port'",
                       "tcp source 'lines'");
    EXPECT_PATCH_ERROR("sinks:\n  - name: out\n    type: stdout\n    from: counts\n", "", "1:1",
                       "no sinks");
    EXPECT_PATCH_ERROR("split: whitespace", "window: {slide: 1s}", "11:17",
                       "missing required key 'length' in op 'window'");
    EXPECT_PATCH_ERROR("split: whitespace", "join: {type: left}", "11:15",
                       "missing required key 'with' in op 'join'");
}

static void test_error_references_and_cycles(void)
{
    EXPECT_PATCH_ERROR("from: lines", "from: linez", "9:11", "unknown stream or source 'linez'",
                       "did you mean 'lines'", "known: lines, counts");
    EXPECT_PATCH_ERROR("from: counts", "from: nothing", "15:11",
                       "unknown stream or source 'nothing'", "'from' of sink 'out'");
    EXPECT_PATCH_ERROR("split: whitespace", "join: other", "11:15",
                       "unknown stream or source 'other'", "'join' of stream 'counts'");
    EXPECT_PATCH_ERROR("from: lines", "from: [lines, lines]", "9:19", "listed twice");
    EXPECT_PATCH_ERROR("from: lines", "from: []", "9:11", "empty list");
    EXPECT_PATCH_ERROR("from: counts", "from: [counts, lines]", "15:11",
                       "must name one stream or source");
    EXPECT_PATCH_ERROR("from: lines", "from: counts", "9:11",
                       "cycle among streams: counts -> "
                       "counts");
    const char *cycle = "app: {batch_interval: 1s}\n"
                        "sources: [{name: s, type: tcp, port: 1}]\n"
                        "streams:\n"
                        "  - {name: a, from: [s, c]}\n"
                        "  - {name: b, from: a}\n"
                        "  - {name: c, from: b}\n"
                        "sinks: [{name: o, type: stdout, from: c}]\n";
    EXPECT_ERROR(cycle, "5:21", "cycle among streams: a -> b -> c -> a");
    const char *join_cycle = "app: {batch_interval: 1s}\n"
                             "sources: [{name: s, type: tcp, port: 1}]\n"
                             "streams:\n"
                             "  - {name: a, from: s, ops: [{join: b}]}\n"
                             "  - {name: b, from: s, ops: [{join: {with: a}}]}\n"
                             "sinks: [{name: o, type: stdout, from: a}]\n";
    EXPECT_ERROR(join_cycle, "5:44", "cycle among streams: a -> b -> a");
}

static void test_error_windows_and_slides(void)
{
    EXPECT_PATCH_ERROR("split: whitespace", "window: {length: 2500ms}", "11:9",
                       "window length 2500ms is not a multiple of the parent's slide 1s");
    EXPECT_PATCH_ERROR("split: whitespace", "window: {length: 4s, slide: 1500ms}", "11:9",
                       "window slide 1500ms is not a multiple of the parent's slide 1s");
    /* The parent of the second window slides every 2s. */
    EXPECT_PATCH_ERROR("      - split: whitespace\n",
                       "      - window: {length: 4s, slide: 2s}\n      - window: 3s\n", "12:9",
                       "window length 3s is not a multiple of the parent's slide 2s");
    const char *join = "app: {batch_interval: 1s}\n"
                       "sources: [{name: s, type: tcp, port: 1}]\n"
                       "streams:\n"
                       "  - {name: w, from: s, ops: [{window: {length: 4s, slide: 2s}}]}\n"
                       "  - {name: j, from: s, ops: [{join: w}]}\n"
                       "  - {name: u, from: [s, w]}\n"
                       "sinks: [{name: o, type: stdout, from: j}]\n";
    EXPECT_ERROR(join, "5:37", "cannot join streams with different slides");
    const char *uni = "app: {batch_interval: 1s}\n"
                      "sources: [{name: s, type: tcp, port: 1}]\n"
                      "streams:\n"
                      "  - {name: w, from: s, ops: [{window: {length: 4s, slide: 2s}}]}\n"
                      "  - {name: u, from: [s, w]}\n"
                      "sinks: [{name: o, type: stdout, from: u}]\n";
    EXPECT_ERROR(uni, "5:25", "cannot union streams with different slides");
}

/* A pipeline with checkpoint_dir whose only op is op (line 12, column 9). */
static char *with_state_op(const char *op)
{
    static const char head[] = "app:\n"                           /* 1 */
                               "  batch_interval: 1s\n"           /* 2 */
                               "  checkpoint_dir: /tmp/nowhere\n" /* 3 */
                               "sources:\n"                       /* 4 */
                               "  - name: lines\n"                /* 5 */
                               "    type: tcp\n"                  /* 6 */
                               "    port: 9999\n"                 /* 7 */
                               "streams:\n"                       /* 8 */
                               "  - name: s\n"                    /* 9 */
                               "    from: lines\n"                /* 10 */
                               "    ops:\n"                       /* 11 */
                               "      - ";                        /* 12 */
    static const char tail[] = "\nsinks: [{name: out, type: stdout, from: s}]\n";
    char *y = malloc(sizeof(head) + strlen(op) + sizeof(tail));
    sprintf(y, "%s%s%s", head, op, tail);
    return y;
}

/* avg, first, last and count_distinct: first, last and count_distinct have no inverse (the
 * config fails at the key with the reason); every other form loads. */
static void test_error_reducers_without_inverse(void)
{
    static const struct {
        const char *op, *loc, *words[3];
    } bad[] = {
        {"reduce_by_key_and_window: {fn: first, length: 2s, inverse: true}",
         "12:68",
         {"inverse: true is available for fn sum, count and avg only", "first has no inverse"}},
        {"reduce_by_key_and_window: {fn: count_distinct, length: 2s, inverse: true}",
         "12:77",
         {"count_distinct has no inverse"}},
        {"reduce_by_key_and_window: {fn: last, length: 2s, inverse: true}",
         "12:67",
         {"last has no inverse"}},
        {"reduce_by_key_and_window: {length: 2s}",
         "12:35",
         {"missing required key 'fn'", "avg, first, last, count_distinct"}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *y = with_state_op(bad[i].op);
        const char *const *w = bad[i].words;
        const char *const words[] = {w[0], w[1], w[2], NULL};
        expect_error_in(y, bad[i].loc, words[1] ? words : (const char *const[]){w[0], NULL});
        free(y);
    }
    static const char *const good[] = {
        "reduce_by_key_and_window: {fn: avg, length: 2s, inverse: true, drop_zero: true}",
        "reduce_by_key_and_window: {fn: first, length: 2s, slide: 1s, partitions: 2}",
        "reduce_by_key_and_window: {fn: avg, length: 2s, keyed: true}",
        "reduce_by_key_and_window: {fn: first, length: 2s, time: event, allowed_lateness: 1s}",
        "reduce_by_key_and_window: {fn: count_distinct, length: 2s, keyed: true, drop_zero: true}",
        "reduce_by_window: {fn: count_distinct, length: 2s}",
        "reduce_by_key: {fn: last, partitions: 2}",
        "reduce: avg",
        "running: {fn: count_distinct, ttl: 1m}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *y = with_state_op(good[i]);
        char err[1024];
        sl_config *cfg = NULL;
        int rc = load(y, &cfg, err, sizeof(err));
        if (rc != SL_OK) {
            fprintf(stderr, "\n    %s: %s\n", good[i], err);
        }
        CU_ASSERT_EQUAL(rc, SL_OK);
        sl__config_destroy(cfg);
        free(y);
    }
}

static void test_error_names_and_types(void)
{
    EXPECT_PATCH_ERROR("  - name: counts", "  - name: lines", "8:11", "duplicate name 'lines'",
                       "line 4");
    EXPECT_PATCH_ERROR("    port: 9999\n", "    port: 9999\n    port: 1\n", "7:5",
                       "duplicate key 'port'");
    EXPECT_PATCH_ERROR("type: tcp", "type: tpc", "5:11", "unknown source type 'tpc'",
                       "did you mean 'tcp'", "tcp", "file", "generate");
    EXPECT_PATCH_ERROR("type: tcp", "type: stdout", "5:11", "'stdout' is not a source type");
    /* Issue 15: names become directory names under the checkpoint dir. */
    EXPECT_PATCH_ERROR("name: lines", "name: .", "4:11", "bad name '.'");
    EXPECT_PATCH_ERROR("name: lines", "name: ..", "4:11", "bad name '..'");
    EXPECT_PATCH_ERROR("name: counts", "name: \"..\"", "8:11", "bad name '..'");
    EXPECT_PATCH_ERROR("name: lines", "name: a/b", "4:11", "bad name 'a/b'");
    EXPECT_PATCH_ERROR("type: stdout", "type: kafkaa", "14:11", "unknown sink type 'kafkaa'",
                       "stdout");
}

static void test_error_yaml_syntax_and_empty(void)
{
    EXPECT_ERROR("", "1:1", "empty configuration");
    EXPECT_ERROR("# nothing but a comment\n\n", "1:1", "empty configuration");
    EXPECT_ERROR("app: [1, 2\nfoo: 3\n", "2:4", "YAML syntax error");
    EXPECT_ERROR("app:\n  batch_interval: 1s\n\tsources: x\n", "3:1", "YAML syntax error", "tab");
    EXPECT_ERROR("a: b: c\n", "1:5", "YAML syntax error", "mapping values are not allowed");
    /* Issue 15: an error at the end of the input points at the last character, not at a
     * line below the file. */
    EXPECT_ERROR("app: [1, 2\n", "1:11", "YAML syntax error");
    EXPECT_ERROR("app: [1, \u00e9\n", "1:11", "YAML syntax error");
    EXPECT_ERROR("app: {a: 1\n\n\n", "3:1", "YAML syntax error");
    static const char binary[] = "app:\n  x: \x01\x02";
    EXPECT_ERROR(binary, "2:6", "not a valid YAML text");
    static const char bad_utf8[] = "app:\n  x: \xff\xfe";
    EXPECT_ERROR(bad_utf8, "2:6", "not a valid YAML text");
    char *two = malloc(sizeof(base_yaml) + 32);
    sprintf(two, "%s---\na: 1\n", base_yaml);
    EXPECT_ERROR(two, "17:1", "a second YAML document");
    free(two);
}

/* Errors found while building (a connector's init) point into the file too. */
static void test_build_error_points_at_option(void)
{
    const char *yaml = "app: {batch_interval: 1s}\n"
                       "sources:\n"
                       "  - name: files\n"
                       "    type: file\n"
                       "    path: /nonexistent-sluice-test-dir\n"
                       "sinks: [{name: o, type: stdout, from: files}]\n";
    char err[1024];
    sl_config *cfg;
    CU_ASSERT_EQUAL_FATAL(load(yaml, &cfg, err, sizeof(err)), SL_OK);
    sl_context *ctx = sl__config_build(cfg, err, sizeof(err));
    CU_ASSERT_PTR_NULL(ctx);
    sl_context_destroy(ctx);
    if (strncmp(err, "t.yaml:5:11: error: ", 20) != 0 || !strstr(err, "files") ||
        !strstr(err, "/nonexistent-sluice-test-dir")) {
        fprintf(stderr, "\n    got '%s'\n", err);
        CU_FAIL("build error");
    }
    sl__config_destroy(cfg);
}

/* ==== ${VAR} ==== */

static void test_expand(void)
{
    setenv("SL_T_HOST", "example", 1);
    setenv("SL_T_EMPTY", "", 1);
    unsetenv("SL_T_UNSET");
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"plain", "plain"},
        {"${SL_T_HOST}", "example"},
        {"http://${SL_T_HOST}:80/${SL_T_HOST}", "http://example:80/example"},
        {"${SL_T_UNSET:-def}", "def"},
        {"${SL_T_UNSET:-}", ""},
        {"${SL_T_EMPTY:-fallback}", "fallback"},
        {"${SL_T_EMPTY}", ""},
        {"${SL_T_HOST:-x}", "example"},
        {"${SL_T_UNSET:-a b:c-d/e}", "a b:c-d/e"},
        {"$$", "$"},
        {"$${SL_T_HOST}", "${SL_T_HOST}"},
        {"cost $5 and ^a.*$", "cost $5 and ^a.*$"},
        {"$", "$"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *out = NULL, err[256];
        size_t off = 0;
        int rc = sl__config_expand(ok[i].in, strlen(ok[i].in), &out, &off, err, sizeof(err));
        CU_ASSERT_EQUAL(rc, SL_OK);
        if (rc == SL_OK) {
            CU_ASSERT_STRING_EQUAL(out, ok[i].out);
        }
        free(out);
    }
    static const struct {
        const char *in;
        size_t off;
        const char *msg;
    } bad[] = {
        {"${SL_T_UNSET}", 0, "'SL_T_UNSET' is not set"},
        {"a${", 1, "unterminated"},
        {"x ${SL_T_HOST", 2, "unterminated"},
        {"${}", 0, "empty variable name"},
        {"${1A}", 0, "bad variable name"},
        {"${A-B}", 0, "bad character"},
        {"${A B}", 0, "bad character"},
        {"ok ${SL_T_HOST} ${SL_T_UNSET:-${X}}", 16, "nested"},
        {"${SL_T_UNSET:-never closed", 0, "unterminated"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *out = NULL, err[256] = "";
        size_t off = 99;
        int rc = sl__config_expand(bad[i].in, strlen(bad[i].in), &out, &off, err, sizeof(err));
        CU_ASSERT_EQUAL(rc, SL_ERR_INVAL);
        CU_ASSERT_PTR_NULL(out);
        CU_ASSERT_EQUAL(off, bad[i].off);
        if (!strstr(err, bad[i].msg)) {
            fprintf(stderr, "\n    '%s': expected '%s' in '%s'\n", bad[i].in, bad[i].msg, err);
            CU_FAIL("expand message");
        }
    }
}

static void test_expand_in_config(void)
{
    setenv("SL_T_PORT", "7777", 1);
    unsetenv("SL_T_UNSET");
    char err[1024];
    sl_config *cfg;
    char *y = patched("port: 9999", "port: ${SL_T_PORT}");
    CU_ASSERT_EQUAL_FATAL(load(y, &cfg, err, sizeof(err)), SL_OK);
    char *g = graph_of(cfg);
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "port: 7777"));
    free(g);
    sl__config_destroy(cfg);
    free(y);
    /* Expanded before interpretation: a default that is a bad value is a bad value. */
    EXPECT_PATCH_ERROR("port: 9999", "port: ${SL_T_UNSET:-http}", "6:11", "not an integer");
    EXPECT_PATCH_ERROR("batch_interval: 1s", "batch_interval: ${SL_T_UNSET:-2s}x", "2:19",
                       "bad duration '2sx'");
    /* Errors point at the "${" inside the scalar. */
    EXPECT_PATCH_ERROR("port: 9999", "port: 99${SL_T_UNSET}", "6:13",
                       "environment variable 'SL_T_UNSET' is not set");
    EXPECT_PATCH_ERROR("port: 9999", "port: \"a${\"", "6:13", "unterminated");
    EXPECT_PATCH_ERROR("port: 9999", "port: ${}", "6:11", "empty variable name");
    EXPECT_PATCH_ERROR("port: 9999", "port: ${9}", "6:11", "bad variable name");
    /* Issue 15: columns count characters, as libyaml's do: "\u00e9\u00e9" is two. */
    EXPECT_PATCH_ERROR("port: 9999", "port: \u00e9\u00e9${SL_T_UNSET}", "6:13", "not set");
    EXPECT_PATCH_ERROR("port: 9999", "port: \"\u00e9\u00e9${SL_T_UNSET}\"", "6:14", "not set");
    /* Keys are scalars too. */
    EXPECT_PATCH_ERROR("    port: 9999\n", "    ${SL_T_UNSET}: 1\n", "6:5", "not set");
    /* An empty plain value leaves an option unset: port is then missing. */
    EXPECT_PATCH_ERROR("port: 9999", "port: ${SL_T_UNSET:-}", "4:5",
                       "missing required option 'port'");
}

/* ==== Secrets ==== */

/* Finds a connector option flagged secret; false when no connector has one (then there is
 * nothing to leak). */
static bool find_secret(const sl_connector **conn, const sl_option **secret)
{
    for (size_t i = 0; sl_connector_at(i); i++) {
        const sl_connector *c = sl_connector_at(i);
        for (const sl_option *o = sl_connector_options(c); o && o->name; o++) {
            if ((o->flags & SL_OPT_SECRET) && (o->type == SL_OPT_STR)) {
                *conn = c;
                *secret = o;
                return true;
            }
        }
    }
    return false;
}

/* A valid value for an option, from its table. */
static void some_value(const sl_option *o, char *buf, size_t size)
{
    switch (o->type) {
    case SL_OPT_INT:
    case SL_OPT_DOUBLE: snprintf(buf, size, "%.0f", o->min <= o->max ? o->min : 1); break;
    case SL_OPT_BOOL: snprintf(buf, size, "true"); break;
    case SL_OPT_DURATION: snprintf(buf, size, "%.0fms", o->min <= o->max ? o->min : 1000); break;
    case SL_OPT_SIZE: snprintf(buf, size, "%.0f", o->min <= o->max ? o->min : 1024); break;
    case SL_OPT_ENUM: snprintf(buf, size, "%.*s", (int)strcspn(o->choices, "|"), o->choices); break;
    default: snprintf(buf, size, "x"); break;
    }
}

static void test_secrets_never_shown(void)
{
    const sl_connector *c;
    const sl_option *secret;
    if (!find_secret(&c, &secret)) {
        return; /* no connector of this build has a secret option */
    }
    const char *value = "Sup3rS3cretV4lue";
    char yaml[4096], val[128];
    unsigned flags = sl_connector_flags(c);
    bool source = flags & SL_SOURCE;
    int n = snprintf(yaml, sizeof(yaml),
                     "app: {batch_interval: 1s}\n"
                     "sources:\n"
                     "  - name: s\n"
                     "    type: %s\n",
                     source ? sl_connector_name(c) : "tcp");
    if (!source) {
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "    port: 1\n");
    }
    n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "%s",
                  source ? "" : "sinks:\n  - name: k\n    from: s\n");
    if (!source) {
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "    type: %s\n", sl_connector_name(c));
    }
    for (const sl_option *o = sl_connector_options(c); o && o->name; o++) {
        if (o == secret) {
            n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "    %s: %s\n", o->name, value);
        } else if (o->flags & SL_OPT_REQUIRED) {
            some_value(o, val, sizeof(val));
            n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "    %s: \"%s\"\n", o->name, val);
        }
    }
    if (source) {
        n += snprintf(yaml + n, sizeof(yaml) - (size_t)n,
                      "sinks: [{name: o, type: stdout, from: s}]\n");
    }
    char err[1024];
    sl_config *cfg;
    int rc = load(yaml, &cfg, err, sizeof(err));
    if (rc != SL_OK) {
        CU_ASSERT_PTR_NULL(strstr(err, value));
        return;
    }
    char *g = graph_of(cfg);
    CU_ASSERT_PTR_NULL(strstr(g, value));
    CU_ASSERT_PTR_NOT_NULL(strstr(g, "***"));
    free(g);
    sl__config_destroy(cfg);
    /* An error next to the secret does not show it either. */
    char bad[4200];
    snprintf(bad, sizeof(bad), "%s", yaml);
    char *at = strstr(bad, value);
    snprintf(at + strlen(value), sizeof(bad) - (size_t)(at - bad) - strlen(value),
             "\n    no_such_option_x: 1\n%s", strstr(yaml, value) + strlen(value) + 1);
    CU_ASSERT_NOT_EQUAL(load(bad, &cfg, err, sizeof(err)), SL_OK);
    CU_ASSERT_PTR_NULL(strstr(err, value));
}

/* Issue 15: a chain of 50,000 streams, each reading the one before. The graph check used
 * to recurse once per stream (a stack overflow) and every name lookup scanned all names.
 * The load runs on a thread with a 1 MiB stack: what it needs must not grow with the
 * pipeline. */
typedef struct chain_load {
    sl_buf text;
    int rc;
    char err[1024];
} chain_load;

static void *chain_load_run(void *arg)
{
    chain_load *c = arg;
    sl_config *cfg = NULL;
    c->rc = sl__config_load_string(c->text.p, c->text.len, "t.yaml", &cfg, c->err, sizeof(c->err));
    sl__config_destroy(cfg);
    return NULL;
}

static void test_long_chain_loads(void)
{
    enum {
        NSTREAMS = 50000
    };
    chain_load c = {.rc = -1};
    char line[160];
    const char *head = "app: {batch_interval: 1s}\n"
                       "sources: [{name: s0, type: tcp, port: 9999}]\n"
                       "streams:\n";
    CU_ASSERT_EQUAL_FATAL(sl__buf_append(&c.text, head, strlen(head)), SL_OK);
    /* Written from the sink back to the source: the first stream is the deepest. */
    for (int i = 1; i <= NSTREAMS; i++) {
        int n =
            snprintf(line, sizeof(line), "  - {name: s%d, from: s%d, ops: [split: whitespace]}\n",
                     i, i == NSTREAMS ? 0 : i + 1);
        CU_ASSERT_EQUAL_FATAL(sl__buf_append(&c.text, line, (size_t)n), SL_OK);
    }
    const char *tail = "sinks: [{name: out, type: stdout, from: s1}]\n";
    CU_ASSERT_EQUAL_FATAL(sl__buf_append(&c.text, tail, strlen(tail)), SL_OK);
    pthread_attr_t attr;
    pthread_t th;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, &attr, chain_load_run, &c), 0);
    pthread_join(th, NULL);
    pthread_attr_destroy(&attr);
    CU_ASSERT_EQUAL(c.rc, SL_OK);
    if (c.rc != SL_OK) {
        fprintf(stderr, "%s\n", c.err);
    }
    sl__buf_free(&c.text);
}

void sl_test_register(void)
{
    SL_SUITE("config_load", SL_TEST(load_valid_base), SL_TEST(durations_and_app_keys),
             SL_TEST(streams_in_any_order), SL_TEST(every_op_builds),
             SL_TEST(load_file_and_missing_file), SL_TEST(long_chain_loads));
    SL_SUITE("config_errors", SL_TEST(error_unknown_keys), SL_TEST(error_wrong_types_and_ranges),
             SL_TEST(error_durations), SL_TEST(error_missing_required),
             SL_TEST(error_references_and_cycles), SL_TEST(error_windows_and_slides),
             SL_TEST(error_reducers_without_inverse), SL_TEST(error_names_and_types),
             SL_TEST(error_yaml_syntax_and_empty), SL_TEST(build_error_points_at_option));
    SL_SUITE("config_expand", SL_TEST(expand), SL_TEST(expand_in_config));
    SL_SUITE("config_secrets", SL_TEST(secrets_never_shown));
}

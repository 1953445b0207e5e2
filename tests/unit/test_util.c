/* test_util.c -- arenas, hashing, the key table, directories, JSON text, and the toolkit: buffers,
 * booleans, secrets, "did you mean", JSON paths, record copies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "sl_options.h"

static void test_arena_alignment_and_large(void)
{
    sl_arena a;
    sl__arena_init(&a, 1024);
    for (int i = 0; i < 1000; i++) {
        char *p = sl__arena_alloc(&a, (size_t)(i % 13) + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL((uintptr_t)p % 8, 0);
        memset(p, 'x', (size_t)(i % 13) + 1);
    }
    char *big = sl__arena_alloc(&a, 100000); /* larger than a chunk: a chunk of its own */
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    memset(big, 'y', 100000);
    char *after = sl__arena_alloc(&a, 8); /* still served from the current chunk */
    CU_ASSERT_PTR_NOT_NULL(after);
    CU_ASSERT(a.bytes >= 100000);
    sl_arena b;
    sl__arena_init(&b, 0);
    const char *d = sl__arena_dup(&b, "hello", 5);
    CU_ASSERT_EQUAL(memcmp(d, "hello", 5), 0);
    size_t total = a.bytes + b.bytes;
    sl__arena_steal(&a, &b);
    CU_ASSERT_EQUAL(a.bytes, total);
    CU_ASSERT_EQUAL(b.bytes, 0);
    CU_ASSERT_EQUAL(memcmp(d, "hello", 5), 0);
    CU_ASSERT_PTR_NOT_NULL(sl__arena_dup(&a, NULL, 0));
    sl__arena_free(&a);
    sl__arena_free(&b);
}

static void test_hash_spread(void)
{
    /* Keys that differ in one byte land in different buckets about evenly. */
    size_t buckets[8] = {0};
    for (int i = 0; i < 8000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "key%d", i);
        buckets[sl__hash_bucket(sl__hash(k, (size_t)n), 8)]++;
    }
    for (int b = 0; b < 8; b++) {
        CU_ASSERT(buckets[b] > 800 && buckets[b] < 1200);
    }
    CU_ASSERT_NOT_EQUAL(sl__hash("a", 1), sl__hash("b", 1));
    CU_ASSERT_NOT_EQUAL(sl__hash("", 0), sl__hash("\0", 1));
    CU_ASSERT_EQUAL(sl__hash("abcdefghij", 10), sl__hash("abcdefghij", 10));
}

static void test_keytab(void)
{
    sl_keytab t;
    sl__keytab_init(&t);
    char keys[3000][8];
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(keys[i], sizeof(keys[i]), "%d", i % 1000);
        int added;
        sl_record *r =
            sl__keytab_upsert(&t, keys[i], (uint32_t)n, sl__hash(keys[i], (size_t)n), &added);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL(added, i < 1000);
        if (added) {
            r->key = keys[i];
            r->key_len = (uint32_t)n;
        }
        r->num.i++;
    }
    CU_ASSERT_EQUAL(t.n, 1000);
    for (size_t i = 0; i < t.n; i++) {
        CU_ASSERT_EQUAL(t.recs[i].num.i, 3);
    }
    sl__keytab_free(&t);
}

/* ==== Toolkit ==== */

static void test_buf_grows_and_latches_failure(void)
{
    sl_buf b = {0};
    CU_ASSERT_EQUAL(sl__buf_puts(&b, "ab"), SL_OK);
    for (int i = 0; i < 1000; i++) {
        CU_ASSERT_EQUAL_FATAL(sl__buf_printf(&b, "%03d", i % 1000), SL_OK);
    }
    CU_ASSERT_EQUAL(b.len, 3002);
    CU_ASSERT_EQUAL(strlen(b.p), b.len);
    CU_ASSERT(memcmp(b.p, "ab000001", 8) == 0);
    CU_ASSERT_EQUAL(sl__buf_append(&b, "\0x", 2), SL_OK);
    CU_ASSERT_EQUAL(b.len, 3004);
    sl__buf_reset(&b);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_STRING_EQUAL(b.p, "");
    b.failed = true; /* as after a failed allocation: appends do nothing until a reset */
    CU_ASSERT_EQUAL(sl__buf_puts(&b, "x"), SL_ERR_NOMEM);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_PTR_NULL(sl__buf_steal(&b));
    CU_ASSERT_PTR_NULL(b.p);
    sl__json_text(sl__buf_put, &b, "a\"b", 3);
    char *s = sl__buf_steal(&b);
    CU_ASSERT_STRING_EQUAL(s, "\"a\\\"b\"");
    free(s);
    sl__buf_free(&b);
}

static void test_parse_bool_accepts_the_union(void)
{
    const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "On", "1"};
    const char *no[] = {"false", "False", "FALSE", "no", "No", "off", "Off", "0"};
    for (size_t i = 0; i < SL_ARRAY_LEN(yes); i++) {
        bool b = false;
        CU_ASSERT_EQUAL(sl__parse_bool(yes[i], &b), SL_OK);
        CU_ASSERT_TRUE(b);
        CU_ASSERT_EQUAL(sl__parse_bool(no[i], &b), SL_OK);
        CU_ASSERT_FALSE(b);
    }
    bool b = true;
    CU_ASSERT_EQUAL(sl__parse_bool("maybe", &b), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl__parse_bool("", &b), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl__parse_bool("t", &b), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl__parse_bool(NULL, &b), SL_ERR_INVAL);
    CU_ASSERT_TRUE(b);
}

/* A secret made of stars is found again in its own mask "***": the scrubber must go on
 * after each mask, not loop forever. */
static void test_scrub_secret_of_stars_terminates(void)
{
    char m1[64] = "a*b**c***d";
    sl__scrub(m1, sizeof(m1), "*");
    CU_ASSERT_STRING_EQUAL(m1, "a***b******c*********d");
    char m2[64] = "a*b**c***d";
    sl__scrub(m2, sizeof(m2), "**");
    CU_ASSERT_STRING_EQUAL(m2, "a*b***c****d");
    char m3[64] = "a*b**c***d";
    sl__scrub(m3, sizeof(m3), "***");
    CU_ASSERT_STRING_EQUAL(m3, "a*b**c***d");
    char full[8] = "*******"; /* grows past the buffer: cut, still terminated */
    sl__scrub(full, sizeof(full), "*");
    CU_ASSERT(strlen(full) < sizeof(full));
    CU_ASSERT_EQUAL(strspn(full, "*"), strlen(full));
    char tiny[4] = "**";
    sl__scrub(tiny, sizeof(tiny), "**");
    CU_ASSERT(strlen(tiny) < sizeof(tiny));
}

static void test_scrub_masks_every_occurrence(void)
{
    char msg[64] = "auth hunter2 failed: hunter2";
    sl__scrub(msg, sizeof(msg), "hunter2");
    CU_ASSERT_STRING_EQUAL(msg, "auth *** failed: ***");
    char small[12] = "a=x b=x";
    sl__scrub(small, sizeof(small), "x"); /* grows: the end is cut to fit */
    CU_ASSERT_STRING_EQUAL(small, "a=*** b=***");
    char same[16] = "****";
    sl__scrub(same, sizeof(same), "****"); /* a mask is not scrubbed again */
    CU_ASSERT_STRING_EQUAL(same, "***");
    sl__scrub(msg, sizeof(msg), "");
    sl__scrub(msg, sizeof(msg), NULL);
    CU_ASSERT_STRING_EQUAL(msg, "auth *** failed: ***");
    char m2[64] = "host=h pw=s3cret";
    static const sl_option table[] = {
        {.name = "host", .type = SL_OPT_STR},
        {.name = "password", .type = SL_OPT_STR, .flags = SL_OPT_SECRET},
        {0},
    };
    sl_options *o = sl_options_new();
    sl_options_set(o, "password", "s3cret");
    sl_options_set(o, "host", "h");
    sl__scrub_options(m2, sizeof(m2), table, NULL, o);
    CU_ASSERT_STRING_EQUAL(m2, "host=h pw=***");
    sl_options_destroy(o);
}

static void test_closest_suggests_near_words(void)
{
    const char *const words[] = {"brokers", "topics", "group", "ab", NULL};
    CU_ASSERT_EQUAL(sl__edit_distance("kitten", "sitting"), 3);
    CU_ASSERT_EQUAL(sl__edit_distance("", "abc"), 3);
    CU_ASSERT_STRING_EQUAL(sl__closest("brokres", words), "brokers");
    CU_ASSERT_STRING_EQUAL(sl__closest("topic", words), "topics");
    CU_ASSERT_PTR_NULL(sl__closest("partitions", words));
    CU_ASSERT_PTR_NULL(sl__closest("xy", words)); /* 2 edits of a 2-letter word: not close */
}

static void test_jpath_walks_objects_and_arrays(void)
{
    sl_jpath p;
    char text[64];
    json_t *root = json_loads("{\"a\":{\"b\":[10,{\"c\":\"x\"}]}}", 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT_EQUAL_FATAL(sl__jpath_parse(&p, "a.b.1.c"), SL_OK);
    CU_ASSERT_EQUAL(p.depth, 4);
    CU_ASSERT_STRING_EQUAL(json_string_value(sl__jpath_get(&p, root)), "x");
    CU_ASSERT_STRING_EQUAL(sl__jpath_text(&p, text, sizeof(text)), "a.b.1.c");
    sl__jpath_free(&p);
    CU_ASSERT_EQUAL_FATAL(sl__jpath_parse(&p, "a.b.0"), SL_OK);
    CU_ASSERT_EQUAL(json_integer_value(sl__jpath_get(&p, root)), 10);
    sl__jpath_free(&p);
    CU_ASSERT_EQUAL_FATAL(sl__jpath_parse(&p, "a.b.x"), SL_OK);
    CU_ASSERT_PTR_NULL(sl__jpath_get(&p, root));
    sl__jpath_free(&p);
    CU_ASSERT_EQUAL_FATAL(sl__jpath_parse(&p, "a.z"), SL_OK);
    CU_ASSERT_PTR_NULL(sl__jpath_get(&p, root));
    sl__jpath_free(&p);
    CU_ASSERT_EQUAL(sl__jpath_parse(&p, "a..b"), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(p.depth, 0);
    CU_ASSERT_EQUAL(sl__jpath_parse(&p, ""), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl__jpath_parse(&p, "a."), SL_ERR_INVAL);
    sl__jpath_free(&p);
    json_decref(root);
}

/* A missing key stays missing, an empty one stays present (and empty). */
static void test_record_copy_keeps_null_and_empty_apart(void)
{
    sl_arena a;
    sl__arena_init(&a, 0);
    sl_record src = {.key = NULL, .value = "v", .value_len = 1, .ts = 7}, dst;
    CU_ASSERT_EQUAL(sl__record_copy(&a, &dst, &src), SL_OK);
    CU_ASSERT_PTR_NULL(dst.key);
    CU_ASSERT(dst.value != src.value && memcmp(dst.value, "v", 1) == 0);
    CU_ASSERT_EQUAL(dst.ts, 7);
    src.key = "";
    src.value = NULL;
    src.value_len = 0;
    CU_ASSERT_EQUAL(sl__record_copy(&a, &dst, &src), SL_OK);
    CU_ASSERT_PTR_NOT_NULL(dst.key);
    CU_ASSERT_EQUAL(dst.key_len, 0);
    CU_ASSERT_PTR_NULL(dst.value);
    sl__arena_free(&a);
}

/* mkdir -p: missing parents are created, an existing directory is fine, a file in the way
 * or an empty name is an error. */
static void test_mkdirs(void)
{
    char dir[] = "/tmp/sl_test_mkdirs_XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char path[256], file[256];
    snprintf(path, sizeof(path), "%s/a/b//c/", dir);
    CU_ASSERT_EQUAL(sl__mkdirs(path, 0777), 0);
    CU_ASSERT_EQUAL(sl__mkdirs(path, 0777), 0);
    struct stat st;
    CU_ASSERT(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    CU_ASSERT_EQUAL(sl__fsync_dir(path), 0);
    snprintf(file, sizeof(file), "%s/f", dir);
    FILE *f = fopen(file, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    errno = 0;
    CU_ASSERT_EQUAL(sl__mkdirs(file, 0777), -1);
    CU_ASSERT_EQUAL(errno, ENOTDIR);
    snprintf(path, sizeof(path), "%s/f/g", dir);
    CU_ASSERT_EQUAL(sl__mkdirs(path, 0777), -1);
    CU_ASSERT_EQUAL(sl__mkdirs("", 0777), -1);
    CU_ASSERT_EQUAL(sl__fsync_dir(file), -1); /* not a directory */
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

typedef struct json_out {
    char buf[512];
    size_t len;
} json_out;

static void json_out_put(void *out, const void *s, size_t n)
{
    json_out *o = out;
    CU_ASSERT_FATAL(o->len + n < sizeof(o->buf));
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

/* Escapes (the two-character ones where JSON has one), multi-byte UTF-8 kept, an invalid
 * byte as U+FFFD in text; bytes as text, base64 with <name>_encoding, or null. */
static void test_json_text(void)
{
    static const char text[] = "q\"b\\n\nr\rt\tb\bf\f\x01\x1f\x7f\0 \xc3\xa9\xf0\x9f\x98\x80 \xff";
    json_out o = {.len = 0};
    sl__json_text(json_out_put, &o, text, sizeof(text) - 1);
    CU_ASSERT_STRING_EQUAL(o.buf, "\"q\\\"b\\\\n\\nr\\rt\\tb\\bf\\f\\u0001\\u001f\\u007f\\u0000 "
                                  "\xc3\xa9\xf0\x9f\x98\x80 \\ufffd\"");
    CU_ASSERT_TRUE(sl__utf8_valid("\xc3\xa9\xf0\x9f\x98\x80", 6));
    CU_ASSERT_FALSE(sl__utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    CU_ASSERT_FALSE(sl__utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
    CU_ASSERT_FALSE(sl__utf8_valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    CU_ASSERT_FALSE(sl__utf8_valid("\xe2\x82", 2));         /* truncated */

    o.len = 0;
    sl__json_bytes(json_out_put, &o, "key", "k\n", 2);
    json_out_put(&o, ",", 1);
    sl__json_bytes(json_out_put, &o, "value", "a\xff\0", 3);
    json_out_put(&o, ",", 1);
    sl__json_bytes(json_out_put, &o, "topic", NULL, 0);
    json_out_put(&o, ",", 1);
    sl__json_bytes(json_out_put, &o, "e", "", 0);
    CU_ASSERT_STRING_EQUAL(o.buf, "\"key\":\"k\\n\",\"value\":\"Yf8A\",\"value_encoding\":"
                                  "\"base64\",\"topic\":null,\"e\":\"\"");
}

/* ==== Record copies in the engine ====
 * A NULL key (or value) stays NULL and an empty one stays empty, whether a direct source
 * adds the records to its batch or a receiver pushes them. Before, the direct input turned
 * NULL into "" and the receiver turned "" into NULL. */

static const sl_record key_cases[] = {
    {.key = NULL, .value = "a", .value_len = 1},
    {.key = "", .key_len = 0, .value = "", .value_len = 0},
    {.key = "k", .key_len = 1, .value = NULL},
};

static void check_key_cases(const sl_dataset *ds)
{
    size_t n = 0;
    const sl_record *r = sl_dataset_partition(ds, 0, &n);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_PTR_NULL(r[0].key);
    CU_ASSERT_PTR_NOT_NULL(r[0].value);
    CU_ASSERT_PTR_NOT_NULL(r[1].key);
    CU_ASSERT_EQUAL(r[1].key_len, 0);
    CU_ASSERT_PTR_NOT_NULL(r[1].value);
    CU_ASSERT_EQUAL(r[1].value_len, 0);
    CU_ASSERT_EQUAL(r[2].key_len, 1);
    CU_ASSERT_PTR_NULL(r[2].value);
}

static void test_batch_input_keeps_null_and_empty_keys(void)
{
    sl_batch_input in = {.ds = sl__dataset_new(0, 1000)};
    CU_ASSERT_PTR_NOT_NULL_FATAL(in.ds);
    CU_ASSERT_EQUAL_FATAL(sl_batch_input_add_records(&in, key_cases, 3), SL_OK);
    check_key_cases(in.ds);
    sl__dataset_release(in.ds);
}

static sl_instance *probe_ins;

static int probe_init(sl_instance *ins, void *ctx, char *errstr, size_t errsize)
{
    (void)ctx, (void)errstr, (void)errsize;
    probe_ins = ins;
    return SL_OK;
}

static const sl_option probe_options[] = {{0}};

/* A receiver with no thread of its own: the test pushes. */
static const sl_connector probe_connector = {
    .name = "probe",
    .flags = SL_SOURCE | SL_RECEIVER,
    .options = probe_options,
    .ctx_size = sizeof(int),
    .init = probe_init,
};

static void test_receiver_push_keeps_null_and_empty_keys(void)
{
    char err[256];
    sl_context_conf cc = {
        .name = "copy", .batch_interval_ms = 1000, .workers = 1, .block_interval_ms = 100};
    sl_context *ctx = sl_context_new(&cc, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(
        sl_context_add_source_connector(ctx, &probe_connector, "probe", NULL, err, sizeof(err)));
    CU_ASSERT_EQUAL_FATAL(sl_receiver_push(probe_ins, key_cases, 3), SL_OK);
    sl__receiver_cut(probe_ins);
    sl_dataset *ds = NULL;
    char *def = NULL;
    CU_ASSERT_EQUAL_FATAL(sl__receiver_take(probe_ins, 1000, &ds, &def), SL_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_PTR_NULL(def); /* no write-ahead log */
    check_key_cases(ds);
    sl__dataset_release(ds);
    sl_context_destroy(ctx);
}

void sl_test_register(void)
{
    SL_SUITE("util", SL_TEST(arena_alignment_and_large), SL_TEST(hash_spread), SL_TEST(keytab),
             SL_TEST(mkdirs), SL_TEST(json_text));
    SL_SUITE("toolkit", SL_TEST(buf_grows_and_latches_failure),
             SL_TEST(parse_bool_accepts_the_union), SL_TEST(scrub_masks_every_occurrence),
             SL_TEST(scrub_secret_of_stars_terminates), SL_TEST(closest_suggests_near_words),
             SL_TEST(jpath_walks_objects_and_arrays),
             SL_TEST(record_copy_keeps_null_and_empty_apart),
             SL_TEST(batch_input_keeps_null_and_empty_keys),
             SL_TEST(receiver_push_keeps_null_and_empty_keys));
}

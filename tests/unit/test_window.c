/* test_window.c -- windowed operators batch by batch through sl__context_step:
 * reduce_by_key_and_window with the inverse against the plain one on random input,
 * count_by_value_and_window dropping zero counts, count_by_window and reduce_by_window,
 * the checkpoint directory a window with an inverse needs, a stream joined with a window of
 * another, and the memory figures of windows. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "support.h"

#define T0 1000000 /* first batch time used by the tests */

static char dir[256];

/* A context with a checkpoint directory of its own (windows with an inverse need one). */
static sl_context *wctx(int workers)
{
    snprintf(dir, sizeof(dir), "/tmp/sluice-window-test-%d-XXXXXX", (int)getpid());
    if (!mkdtemp(dir)) {
        return NULL;
    }
    char err[256];
    sl_context_conf conf = {
        .name = "window",
        .batch_interval_ms = 1000,
        .workers = workers,
        .checkpoint_dir = dir,
    };
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "wctx: %s\n", err);
    }
    return ctx;
}

static void wctx_destroy(sl_context *ctx)
{
    sl_context_destroy(ctx);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* The text of a collector without the keys whose value is 0. */
static void drop_zeros(const char *text, char *out, size_t size)
{
    char *copy = strdup(text);
    size_t off = 0;
    out[0] = '\0';
    for (char *save, *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        size_t n = strlen(tok);
        if ((n >= 2 && strcmp(tok + n - 2, ":0") == 0) ||
            (n >= 3 && strcmp(tok + n - 3, ":-0") == 0)) {
            continue;
        }
        off += (size_t)snprintf(out + off, size - off, "%s%s", off ? " " : "", tok);
    }
    free(copy);
}

/* True when every token of a is a token of b. */
static bool tokens_within(const char *a, const char *b)
{
    char *copy = strdup(a);
    bool ok = true;
    size_t bl = strlen(b);
    char *hay = malloc(bl + 3);
    snprintf(hay, bl + 3, " %s ", b);
    for (char *save, *tok = strtok_r(copy, " ", &save); tok && ok;
         tok = strtok_r(NULL, " ", &save)) {
        char needle[128];
        snprintf(needle, sizeof(needle), " %s ", tok);
        ok = strstr(hay, needle) != NULL;
    }
    free(copy);
    free(hay);
    return ok;
}

/* The text of a collector without its tombstones ("k=": a key that left the result). */
static void drop_tombstones(const char *text, char *out, size_t size)
{
    char *copy = strdup(text);
    size_t off = 0;
    out[0] = '\0';
    for (char *save, *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (tok[strlen(tok) - 1] != '=') {
            off += (size_t)snprintf(out + off, size - off, "%s%s", off ? " " : "", tok);
        }
    }
    free(copy);
}

/* True when the key of token tok ("k:3", "k=") is a key of the tokens of text. */
static bool has_key(const char *text, const char *tok)
{
    size_t kl = strcspn(tok, ":=");
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, " ");
        if (strcspn(p, ":=") == kl && strncmp(p, tok, kl) == 0) {
            return true;
        }
        p += n + (p[n] == ' ');
    }
    return false;
}

/* True when text, a plain window's result, says "k=" exactly for the keys of prev (the
 * previous result without tombstones) that are not in it. */
static bool tombstones_exact(const char *prev, const char *text)
{
    char *copy = strdup(text);
    char *kept = malloc(strlen(text) + 1);
    drop_tombstones(text, kept, strlen(text) + 1);
    bool ok = true;
    size_t n = 0;
    for (char *save, *tok = strtok_r(copy, " ", &save); tok && ok;
         tok = strtok_r(NULL, " ", &save)) {
        if (tok[strlen(tok) - 1] == '=') {
            ok = has_key(prev, tok) && !has_key(kept, tok);
            n++;
        }
    }
    free(copy);
    copy = strdup(prev);
    for (char *save, *tok = strtok_r(copy, " ", &save); tok && ok;
         tok = strtok_r(NULL, " ", &save)) {
        ok = has_key(kept, tok) || n-- > 0;
    }
    ok = ok && n == 0;
    free(copy);
    free(kept);
    return ok;
}

static unsigned next_rand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 8) & 0xffffff;
}

/* Random keyed batches: up to 40 records of 60 keys, integer values in [-10, 10] or
 * halves (exact in binary, so sums do not depend on the order). */
static void feed_random(ts_source *src, unsigned *seed, bool doubles)
{
    unsigned n = next_rand(seed) % 7 == 0 ? 0 : next_rand(seed) % 40;
    for (unsigned i = 0; i < n; i++) {
        char key[16];
        int kl = snprintf(key, sizeof(key), "k%u", next_rand(seed) % 60);
        int v = (int)(next_rand(seed) % 21) - 10;
        sl_record r = {.key = key, .key_len = (uint32_t)kl, .ts = T0};
        if (doubles) {
            sl_record_set_double(&r, v / 2.0);
        } else {
            sl_record_set_int(&r, v);
        }
        ts_feed_records(src, &r, 1);
    }
}

static int absolute(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    if (in->num_type == SL_NUM_INT) {
        sl_record_set_int(out, in->num.i < 0 ? -in->num.i : in->num.i);
    } else {
        sl_record_set_double(out, in->num.d < 0 ? -in->num.d : in->num.d);
    }
    return SL_OK;
}

/* ==== Tests ==== */

/* For many window/slide combinations, on random input: the inverse gives the plain
 * result, except for keys whose value came back to 0 (kept without a filter). With the
 * filter that drops zeros, on values that are not negative (a sum of 0 then means that
 * nothing of the key is left, as for counts), it gives the plain result without its zero
 * keys. */
static void test_inverse_equals_plain_random(void)
{
    static const int combos[][2] = {{1, 1}, {2, 1}, {3, 1}, {5, 1},  {4, 2},  {6, 2},  {3, 3},
                                    {6, 3}, {9, 3}, {8, 4}, {10, 5}, {12, 4}, {30, 1}, {7, 7}};
    for (size_t c = 0; c < SL_ARRAY_LEN(combos); c++) {
        int64_t w = combos[c][0] * 1000, sl = combos[c][1] * 1000;
        int parts = 1 + (int)(c % 3);
        bool doubles = c % 2 == 1;
        sl_context *ctx = wctx(2);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
        ts_source *src;
        sl_stream *in = ts_source_add(ctx, "in", &src);
        ts_out plain, inv, plain_abs, invf;
        sl_stream *sp =
            sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, NULL, NULL, NULL, w, sl, parts);
        sl_stream *si = sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, sl_reduce_sum_inverse,
                                                           NULL, NULL, w, sl, parts);
        sl_stream *pos = sl_stream_map_values(in, absolute, NULL);
        sl_stream *spa =
            sl_stream_reduce_by_key_and_window(pos, sl_reduce_sum, NULL, NULL, NULL, w, sl, parts);
        sl_stream *sf = sl_stream_reduce_by_key_and_window(
            pos, sl_reduce_sum, sl_reduce_sum_inverse, sl_filter_nonzero, NULL, w, sl, parts);
        CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
        CU_ASSERT_PTR_NOT_NULL_FATAL(si);
        CU_ASSERT_PTR_NOT_NULL_FATAL(spa);
        CU_ASSERT_PTR_NOT_NULL_FATAL(sf);
        CU_ASSERT_EQUAL(sl_stream_slide(si), sl);
        ts_collect(sp, &plain);
        ts_collect(si, &inv);
        ts_collect(spa, &plain_abs);
        ts_collect(sf, &invf);
        unsigned seed = 7919u * (unsigned)(c + 1);
        size_t slides = 0, nonempty = 0;
        static char prev[65536]; /* the plain result of the last slide, without tombstones */
        prev[0] = '\0';
        for (int b = 0; b < 30; b++) {
            feed_random(src, &seed, doubles);
            size_t before = plain.batches;
            CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, T0 + b * 1000, NULL), SL_OK);
            if (plain.batches == before) {
                CU_ASSERT_EQUAL(inv.batches, before);
                continue;
            }
            slides++;
            nonempty += plain.records > 0;
            CU_ASSERT_EQUAL(inv.batches, plain.batches);
            CU_ASSERT_EQUAL(invf.batches, plain.batches);
            CU_ASSERT_EQUAL(inv.partitions, (size_t)parts);
            /* The plain result's tombstones are the keys of its previous slide missing now;
             * the inverse's result has none (its keys stay, with 0). */
            static char a[65536], bz[65536], az[65536], pt[65536];
            CU_ASSERT_TRUE(tombstones_exact(prev, plain.text));
            drop_tombstones(plain.text, pt, sizeof(pt));
            memcpy(prev, pt, sizeof(prev));
            drop_zeros(pt, a, sizeof(a));
            drop_zeros(inv.text, bz, sizeof(bz));
            drop_tombstones(plain_abs.text, pt, sizeof(pt));
            drop_zeros(pt, az, sizeof(az));
            drop_tombstones(plain.text, pt, sizeof(pt));
            if (strcmp(a, bz) != 0 || strcmp(az, invf.text) != 0 || !tokens_within(pt, inv.text)) {
                fprintf(stderr,
                        "\ncombo %zu (w %" PRId64 " s %" PRId64 ") batch %d:\n plain %s\n "
                        "inverse %s\n filtered %s\n",
                        c, w, sl, b, plain.text, inv.text, invf.text);
            }
            CU_ASSERT_STRING_EQUAL(bz, a);
            CU_ASSERT_STRING_EQUAL(invf.text, az);
            CU_ASSERT_TRUE(tokens_within(pt, inv.text));
        }
        CU_ASSERT_EQUAL(slides, (size_t)(30 / combos[c][1]));
        CU_ASSERT(nonempty > 0);
        /* The reduced batches are kept a window and a slide, the raw input a slide. */
        CU_ASSERT(in->ngen <= (size_t)combos[c][1]);
        wctx_destroy(ctx);
    }
}

static void feed_words(ts_source *src, const char *const *words)
{
    ts_feed(src, words);
}

static void test_count_by_value_and_window_drops_zeros(void)
{
    sl_context *ctx = wctx(2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out cbv;
    sl_stream *c = sl_stream_count_by_value_and_window(in, 2000, 1000, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    ts_collect(c, &cbv);
    const char *const b1[] = {"a", "a", "b", NULL};
    const char *const b2[] = {"a", NULL};
    const char *const b3[] = {"c", NULL};
    const char *const none[] = {NULL};
    feed_words(src, b1);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(cbv.text, "a:2 b:1");
    feed_words(src, b2);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 1000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(cbv.text, "a:3 b:1");
    feed_words(src, b3);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 2000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(cbv.text, "a:1 c:1"); /* b's count is 0: dropped */
    feed_words(src, none);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 3000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(cbv.text, "c:1");
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 4000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(cbv.text, "");
    CU_ASSERT_EQUAL(cbv.batches, 5);
    /* A value that comes again starts from its new count. */
    feed_words(src, b2);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 5000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(cbv.text, "a:1");
    wctx_destroy(ctx);
}

static int key_is_value(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    out->key = in->value;
    out->key_len = in->value_len;
    sl_record_set_int(out, 1);
    return SL_OK;
}

/* Plain reduce_by_key_and_window with an inverse keeps keys whose value is back to 0. */
static void test_inverse_without_filter_keeps_zeros(void)
{
    sl_context *ctx = wctx(1);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out o;
    ts_collect(sl_stream_reduce_by_key_and_window(sl_stream_map(in, key_is_value, NULL),
                                                  sl_reduce_sum, sl_reduce_sum_inverse, NULL, NULL,
                                                  2000, 1000, 2),
               &o);
    const char *const b1[] = {"x", "y", NULL};
    const char *const b2[] = {"y", NULL};
    feed_words(src, b1);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "x:1 y:1");
    feed_words(src, b2);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 1000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "x:1 y:2");
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 2000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "x:0 y:1");
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 3000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "x:0 y:0");
    wctx_destroy(ctx);
}

static void test_count_and_reduce_by_window(void)
{
    sl_context *ctx = ts_context(1000, 2); /* no checkpoint directory needed */
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out cnt, sum, mx;
    sl_stream *c = sl_stream_count_by_window(in, 3000, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    ts_collect(c, &cnt);
    sl_stream *nums = sl_stream_map(in, key_is_value, NULL);
    ts_collect(sl_stream_reduce_by_window(nums, sl_reduce_sum, NULL, 2000, 2000), &sum);
    ts_collect(sl_stream_reduce_by_window(sl_stream_map(in, key_is_value, NULL), sl_reduce_max,
                                          NULL, 3000, 1000),
               &mx);
    const char *const batches[][4] = {{"a", "b", NULL}, {"c", NULL}, {NULL}, {"d", "e", "f", NULL},
                                      {NULL},           {NULL},      {NULL}};
    const char *const counts[] = {":2", ":3", ":3", ":4", ":3", ":3", ":0"};
    const char *const sums[] = {NULL, ":3", NULL, ":3", NULL, ":0"};
    for (int b = 0; b < 7; b++) {
        feed_words(src, batches[b]);
        size_t before = sum.batches;
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + b * 1000, NULL), SL_OK);
        CU_ASSERT_STRING_EQUAL(cnt.text, counts[b]);
        if (b < 6 && sums[b]) {
            CU_ASSERT_EQUAL(sum.batches, before + 1);
            if (strcmp(sums[b], ":0") == 0) {
                CU_ASSERT_EQUAL(sum.records, 0); /* an empty window reduces to nothing */
            } else {
                CU_ASSERT_STRING_EQUAL(sum.text, sums[b]);
            }
        }
    }
    CU_ASSERT_EQUAL(cnt.batches, 7);
    CU_ASSERT_EQUAL(mx.records, 0);
    sl_context_destroy(ctx);
}

static void test_window_arguments_and_checkpoint_dir(void)
{
    sl_context *ctx = ts_context(1000, 1); /* no checkpoint directory */
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    /* An inverse keeps state: refused without a checkpoint directory. */
    CU_ASSERT_PTR_NULL(sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, sl_reduce_sum_inverse,
                                                          NULL, NULL, 3000, 1000, 0));
    CU_ASSERT_PTR_NULL(sl_stream_count_by_value_and_window(in, 3000, 1000, 0));
    /* Without it, nothing is kept across batches but the window. */
    CU_ASSERT_PTR_NOT_NULL(
        sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, NULL, NULL, NULL, 3000, 1000, 0));
    /* Lengths and slides must be multiples of the parent's slide. */
    CU_ASSERT_PTR_NULL(
        sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, NULL, NULL, NULL, 2500, 1000, 0));
    CU_ASSERT_PTR_NULL(sl_stream_count_by_window(in, 3000, 1500));
    CU_ASSERT_PTR_NULL(sl_stream_reduce_by_window(in, sl_reduce_sum, NULL, 0, 1000));
    CU_ASSERT_PTR_NULL(sl_stream_reduce_by_window(in, NULL, NULL, 1000, 1000));
    CU_ASSERT_PTR_NULL(
        sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, NULL, NULL, NULL, 3000, 1000, -1));
    CU_ASSERT_PTR_NULL(sl_stream_count_by_window(NULL, 3000, 1000));
    /* A window of a window: multiples of the window's slide. */
    sl_stream *w = sl_stream_window(in, 4000, 2000);
    CU_ASSERT_PTR_NULL(sl_stream_count_by_window(w, 4000, 1000));
    CU_ASSERT_PTR_NOT_NULL(sl_stream_count_by_window(w, 4000, 0));
    sl_context_destroy(ctx);
}

static int join_sum(const sl_record *l, const sl_record *r, sl_record *out, sl_emitter *e,
                    void *opaque)
{
    sl_record_set_int(out, l->num.i * 100 + (r ? r->num.i : 0));
    return SL_OK;
}

static void feed_kv(ts_source *src, const char *key, int64_t v)
{
    sl_record r = {.key = key, .key_len = (uint32_t)strlen(key)};
    sl_record_set_int(&r, v);
    ts_feed_records(src, &r, 1);
}

/* Joins across time: each batch of a keyed stream with the last 3 batches of another (the
 * window slides every batch, so the slides match). */
static void test_join_with_window_of_other_stream(void)
{
    sl_context *ctx = ts_context(1000, 2);
    ts_source *a, *b;
    sl_stream *sa = ts_source_add(ctx, "clicks", &a);
    sl_stream *sb = ts_source_add(ctx, "views", &b);
    sl_stream *recent = sl_stream_window(sb, 3000, 0);
    CU_ASSERT_EQUAL(sl_stream_slide(recent), 1000);
    ts_out j, lj;
    ts_collect(sl_stream_join(sa, recent, join_sum, NULL, 0), &j);
    ts_collect(sl_stream_left_join(sa, recent, join_sum, NULL, 3), &lj);
    /* The same with the views reduced per window (a windowed aggregate as a lookup). */
    ts_out agg;
    ts_collect(sl_stream_join(sa,
                              sl_stream_reduce_by_key_and_window(sb, sl_reduce_sum, NULL, NULL,
                                                                 NULL, 3000, 1000, 0),
                              join_sum, NULL, 0),
               &agg);
    feed_kv(b, "u1", 1);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK); /* views of u1 at 0 */
    CU_ASSERT_STRING_EQUAL(j.text, "");
    feed_kv(b, "u2", 2);
    feed_kv(a, "u1", 5);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 1000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(j.text, "u1:501");
    feed_kv(b, "u1", 3);
    feed_kv(a, "u1", 6);
    feed_kv(a, "u2", 7);
    feed_kv(a, "u3", 8);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 2000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(j.text, "u1:601 u1:603 u2:702");
    CU_ASSERT_STRING_EQUAL(lj.text, "u1:601 u1:603 u2:702 u3:800");
    CU_ASSERT_STRING_EQUAL(agg.text, "u1:604 u2:702");
    /* Batch 0 has left the window: u1's first view no longer joins. */
    feed_kv(a, "u1", 9);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 3000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(j.text, "u1:903");
    CU_ASSERT_STRING_EQUAL(agg.text, "u1:903");
    sl_context_destroy(ctx);
}

static void test_window_memory_accounted(void)
{
    sl_context *ctx = wctx(2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out o, p;
    ts_collect(sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, sl_reduce_sum_inverse, NULL,
                                                  NULL, 5000, 1000, 2),
               &o);
    ts_collect(sl_stream_window(in, 2000, 1000), &p);
    sl_context_stats st;
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.window_bytes, 0);
    for (int b = 0; b < 8; b++) {
        for (int k = 0; k < 100; k++) {
            char key[16];
            snprintf(key, sizeof(key), "key-%d", (b * 37 + k) % 300);
            feed_kv(src, key, 1);
        }
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + b * 1000, NULL), SL_OK);
    }
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.window_keys, o.records);
    CU_ASSERT(st.window_keys > 100);
    CU_ASSERT(st.window_bytes > st.window_keys * 40);
    CU_ASSERT(st.window_bytes < 4u << 20);
    CU_ASSERT_EQUAL(st.state_keys, 0);
    wctx_destroy(ctx);
}

/* Issue 15, item 13: a windowed max without an inverse stopped emitting a key whose records
 * left the window, so that a sink keeping a value per key (HSET, an upsert) held the last max
 * forever. The key now comes once more as a tombstone ("b=": no typed value, no bytes), in
 * the slide after it left and only then; a key the filter drops is gone the same way. */
static void test_plain_window_tombstones_keys_that_left(void)
{
    sl_context *ctx = ts_context(1000, 2); /* no checkpoint directory needed */
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out mx, nz, cnt;
    ts_collect(
        sl_stream_reduce_by_key_and_window(in, sl_reduce_max, NULL, NULL, NULL, 3000, 1000, 2),
        &mx);
    ts_collect(sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, NULL, sl_filter_nonzero, NULL,
                                                  2000, 1000, 0),
               &nz);
    ts_collect(sl_stream_count_by_window(in, 3000, 1000), &cnt);
    feed_kv(src, "a", 5);
    feed_kv(src, "b", 999);
    feed_kv(src, "c", 1);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(mx.text, "a:5 b:999 c:1");
    CU_ASSERT_STRING_EQUAL(nz.text, "a:5 b:999 c:1");
    feed_kv(src, "a", 3);
    feed_kv(src, "c", -1);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 1000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(mx.text, "a:5 b:999 c:1");
    CU_ASSERT_STRING_EQUAL(nz.text, "a:8 b:999 c="); /* c's sum is 0: dropped, so gone */
    feed_kv(src, "a", 1);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 2000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(mx.text, "a:5 b:999 c:1");
    CU_ASSERT_STRING_EQUAL(nz.text, "a:4 b= c:-1");
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 3000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(mx.text, "a:3 b= c:-1"); /* batch 0 left: b is gone */
    CU_ASSERT_EQUAL(mx.records, 3);
    CU_ASSERT_STRING_EQUAL(nz.text, "a:1 c=");
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 4000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(mx.text, "a:1 c="); /* b is said to be gone once */
    CU_ASSERT_STRING_EQUAL(nz.text, "a=");
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 5000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(mx.text, "a=");
    CU_ASSERT_STRING_EQUAL(nz.text, "");
    /* A key that comes back is a key like any other. */
    feed_kv(src, "b", 7);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 6000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(mx.text, "b:7");
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 7000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(mx.text, "b:7");
    CU_ASSERT_EQUAL(mx.batches, 8);
    /* count_by_window is unchanged: one count per slide, 0 too. */
    CU_ASSERT_STRING_EQUAL(cnt.text, ":1");
    sl_record t = {.key = "b", .key_len = 1};
    CU_ASSERT_TRUE(sl_record_is_tombstone(&t));
    sl_record_set_int(&t, 0);
    CU_ASSERT_FALSE(sl_record_is_tombstone(&t));
    sl_record empty = {.key = "b", .key_len = 1, .value = "", .value_len = 0};
    CU_ASSERT_FALSE(sl_record_is_tombstone(&empty)); /* an empty value is a value */
    sl_context_destroy(ctx);
}

void sl_test_register(void)
{
    SL_SUITE("window", SL_TEST(inverse_equals_plain_random),
             SL_TEST(count_by_value_and_window_drops_zeros),
             SL_TEST(inverse_without_filter_keeps_zeros), SL_TEST(count_and_reduce_by_window),
             SL_TEST(window_arguments_and_checkpoint_dir),
             SL_TEST(join_with_window_of_other_stream), SL_TEST(window_memory_accounted),
             SL_TEST(plain_window_tombstones_keys_that_left));
}

/* test_state.c -- update_state_by_key and map_with_state batch by batch (deletion on none,
 * idle timeouts, bytes of state, co-partitioned input, failed keys, memory per key), and
 * state that survives a restart through the checkpoint: stopped at various points and
 * continued in a new context on the same directory, a pipeline with both stateful
 * operators and a window with an inverse gives exactly what an uninterrupted run gives. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "support.h"

#define T0 1000000 /* first batch time used by the tests */

static char dir[256];

static void fresh_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sluice-state-test-%d-XXXXXX", (int)getpid());
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void remove_dir(const char *d)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static sl_context *sctx(const char *checkpoint_dir, int workers)
{
    char err[256];
    sl_context_conf conf = {
        .name = "state",
        .batch_interval_ms = 1000,
        .workers = workers,
        .checkpoint_dir = checkpoint_dir,
    };
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "sctx: %s\n", err);
    }
    return ctx;
}

static void feed_kv(ts_source *src, const char *key, const char *value, int64_t v)
{
    sl_record r = {.key = key, .key_len = (uint32_t)strlen(key)};
    if (value) {
        r.value = value;
        r.value_len = (uint32_t)strlen(value);
    } else {
        sl_record_set_int(&r, v);
    }
    ts_feed_records(src, &r, 1);
}

/* ==== Functions ==== */

static _Atomic int empty_calls; /* update calls without values */

/* A running sum; a value "stop" removes the key (returns "none"). */
static int running_sum(const char *key, uint32_t len, const sl_record *vals, size_t n,
                       sl_state *state, sl_emitter *e, void *opaque)
{
    if (n == 0) {
        atomic_fetch_add(&empty_calls, 1);
    }
    int64_t sum = state->exists ? state->num.i : 0;
    for (size_t i = 0; i < n; i++) {
        if (vals[i].value_len == 4 && memcmp(vals[i].value, "stop", 4) == 0) {
            state->exists = false;
            return SL_OK;
        }
        if (vals[i].value_len == 4 && memcmp(vals[i].value, "fail", 4) == 0) {
            return SL_ERR_RECORD;
        }
        sum += vals[i].num.i;
    }
    state->exists = true;
    state->num_type = SL_NUM_INT;
    state->num.i = sum;
    return SL_OK;
}

/* State bytes: the values' bytes appended to what was there. */
static int concat(const char *key, uint32_t len, const sl_record *vals, size_t n, sl_state *state,
                  sl_emitter *e, void *opaque)
{
    if (n == 0) {
        return SL_OK; /* unchanged */
    }
    size_t total = state->exists ? state->len : 0;
    for (size_t i = 0; i < n; i++) {
        total += vals[i].value_len;
    }
    char *p = sl_emitter_alloc(e, total);
    if (!p) {
        return SL_ERR_NOMEM;
    }
    size_t at = 0;
    if (state->exists && state->len) {
        memcpy(p, state->bytes, state->len);
        at = state->len;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(p + at, vals[i].value, vals[i].value_len);
        at += vals[i].value_len;
    }
    state->exists = true;
    state->num_type = SL_NUM_NONE;
    state->bytes = p;
    state->len = (uint32_t)total;
    return SL_OK;
}

/* map_with_state: counts the records of each key and emits (key, count) per record; a key
 * timing out emits (key, -count). Every call is logged. */
typedef struct call_log {
    pthread_mutex_t lock;
    char text[4096];
} call_log;

static int count_records(const sl_record *in, sl_state *state, sl_emitter *e, void *opaque)
{
    call_log *log = opaque;
    int64_t count = state->exists ? state->num.i : 0;
    sl_record out = {.key = in->key, .key_len = in->key_len, .ts = in->ts};
    if (log) {
        pthread_mutex_lock(&log->lock);
        size_t n = strlen(log->text);
        snprintf(log->text + n, sizeof(log->text) - n, "%s%.*s%s@%" PRId64, n ? " " : "",
                 (int)in->key_len, in->key, state->timing_out ? "!" : "",
                 (sl_emitter_batch_time(e) - T0) / 1000);
        pthread_mutex_unlock(&log->lock);
    }
    if (state->timing_out) {
        sl_record_set_int(&out, -count);
        return sl_emit(e, &out);
    }
    state->exists = true;
    state->num_type = SL_NUM_INT;
    state->num.i = count + 1;
    sl_record_set_int(&out, count + 1);
    return sl_emit(e, &out);
}

/* ==== Tests ==== */

static void test_update_state_by_key_deletes_on_none(void)
{
    fresh_dir();
    sl_context *ctx = sctx(dir, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    sl_stream *st = sl_stream_update_state_by_key(in, running_sum, NULL, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    ts_out o;
    ts_collect(st, &o);
    atomic_store(&empty_calls, 0);
    feed_kv(src, "a", NULL, 1);
    feed_kv(src, "b", NULL, 2);
    feed_kv(src, "c", "stop", 0); /* none for a new key: never created */
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "a:1 b:2");
    CU_ASSERT_EQUAL(o.partitions, 3);
    CU_ASSERT_EQUAL(atomic_load(&empty_calls), 0);
    feed_kv(src, "a", NULL, 3);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 1000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "a:4 b:2"); /* b: called without values, kept */
    CU_ASSERT_EQUAL(atomic_load(&empty_calls), 1);
    feed_kv(src, "b", "stop", 0);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 2000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "a:4"); /* b returned none: deleted */
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 3000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "a:4");
    CU_ASSERT_EQUAL(atomic_load(&empty_calls), 3);
    feed_kv(src, "b", NULL, 5);
    feed_kv(src, "a", "fail", 0); /* a failed key keeps its state */
    sl_batch_info info;
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 4000, &info), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "a:4 b:5"); /* b starts again */
    CU_ASSERT_EQUAL(info.failed_records, 1);
    sl_context_stats stats;
    sl_context_get_stats(ctx, &stats);
    CU_ASSERT_EQUAL(stats.state_keys, 2);
    CU_ASSERT(stats.state_bytes > 0);
    sl_context_destroy(ctx);
    remove_dir(dir);
}

static void test_update_state_bytes(void)
{
    fresh_dir();
    sl_context *ctx = sctx(dir, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out o;
    ts_collect(sl_stream_update_state_by_key(in, concat, NULL, 0), &o);
    feed_kv(src, "k", "ab", 0);
    feed_kv(src, "j", "x", 0);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "j=x k=ab");
    feed_kv(src, "k", "cd", 0);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 1000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "j=x k=abcd");
    /* Many replacements: the storage is compacted, the state stays. */
    for (int b = 2; b < 200; b++) {
        feed_kv(src, "j", "y", 0);
        CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, T0 + b * 1000, NULL), SL_OK);
    }
    CU_ASSERT_EQUAL(strlen(o.text), strlen("j=x k=abcd") + 198);
    CU_ASSERT_PTR_NOT_NULL(strstr(o.text, " k=abcd"));
    sl_context_destroy(ctx);
    remove_dir(dir);
}

static void test_map_with_state_timeouts(void)
{
    fresh_dir();
    sl_context *ctx = sctx(dir, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    call_log log = {.lock = PTHREAD_MUTEX_INITIALIZER};
    ts_out o;
    ts_collect(sl_stream_map_with_state(in, count_records, &log, 2000, 2), &o);
    /* Batch k at T0 + k s. A key idle for longer than 2 s times out: seen at 0, it is idle
     * 2 s at 2 (not longer) and 3 s at 3: one last call at 3, then it is gone. */
    const char *const feeds[][3] = {{"a", "a", NULL}, {"b", NULL}, {NULL}, {NULL}, {"b", NULL},
                                    {NULL},           {"a", NULL}, {NULL}, {NULL}, {NULL}};
    const char *const outs[] = {"a:1 a:2", "b:1", "", "a:-2", "b:2", "", "a:1", "b:-2", "", "a:-1"};
    const char *const calls[] = {"a@0 a@0", "b@1", "",     "a!@3", "b@4",
                                 "",        "a@6", "b!@7", "",     "a!@9"};
    for (int k = 0; k < 10; k++) {
        for (int i = 0; feeds[k][i]; i++) {
            feed_kv(src, feeds[k][i], NULL, 1);
        }
        log.text[0] = '\0';
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + k * 1000, NULL), SL_OK);
        CU_ASSERT_STRING_EQUAL(o.text, outs[k]);
        CU_ASSERT_STRING_EQUAL(log.text, calls[k]);
    }
    sl_context_stats st;
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.state_keys, 0);
    sl_context_destroy(ctx);
    remove_dir(dir);
}

/* map_with_state without a timeout: keys stay; the function sees the records in order. */
static void test_map_with_state_no_timeout(void)
{
    fresh_dir();
    sl_context *ctx = sctx(dir, 1);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out o;
    ts_collect(sl_stream_map_with_state(in, count_records, NULL, 0, 0), &o);
    feed_kv(src, "x", NULL, 1);
    feed_kv(src, "y", NULL, 1);
    feed_kv(src, "x", NULL, 1);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "x:1 x:2 y:1");
    for (int k = 1; k < 20; k++) {
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + k * 1000, NULL), SL_OK);
    }
    feed_kv(src, "x", NULL, 1);
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + 20000, NULL), SL_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "x:3");
    sl_context_destroy(ctx);
    remove_dir(dir);
}

/* Over a reduce_by_key with as many partitions the state reads its input as it is; over
 * anything else it shuffles: the same states either way. */
static void test_copartitioned_input(void)
{
    fresh_dir();
    sl_context *ctx = sctx(dir, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out direct, same, other;
    ts_collect(sl_stream_update_state_by_key(in, running_sum, NULL, 4), &direct);
    sl_stream *r4 = sl_stream_reduce_by_key(in, sl_reduce_sum, NULL, 4);
    ts_collect(sl_stream_update_state_by_key(r4, running_sum, NULL, 4), &same);
    ts_collect(sl_stream_update_state_by_key(r4, running_sum, NULL, 3), &other);
    CU_ASSERT_TRUE(sl__copartitioned(r4, 4));
    CU_ASSERT_FALSE(sl__copartitioned(r4, 3));
    unsigned seed = 5;
    for (int k = 0; k < 10; k++) {
        for (int i = 0; i < 300; i++) {
            seed = seed * 1103515245u + 12345u;
            char key[16];
            snprintf(key, sizeof(key), "k%u", (seed >> 8) % 500);
            feed_kv(src, key, NULL, (seed >> 4) % 10);
        }
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + k * 1000, NULL), SL_OK);
        CU_ASSERT_STRING_EQUAL(direct.text, same.text);
        CU_ASSERT_STRING_EQUAL(direct.text, other.text);
    }
    CU_ASSERT(direct.records > 400);
    sl_context_destroy(ctx);
    remove_dir(dir);
}

static int count_up(const char *key, uint32_t len, const sl_record *vals, size_t n, sl_state *state,
                    sl_emitter *e, void *opaque)
{
    state->exists = n > 0 || (state->exists && state->num.i < 3);
    state->num_type = SL_NUM_INT;
    state->num.i = n ? (state->exists ? state->num.i : 0) + (int64_t)n : state->num.i + 1;
    return SL_OK;
}

/* Memory per live key, and deletions that are compacted away. */
static void test_state_memory_per_key(void)
{
    fresh_dir();
    sl_context *ctx = sctx(dir, 2);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    ts_out o;
    ts_collect(sl_stream_update_state_by_key(in, count_up, NULL, 2), &o);
    enum {
        NKEYS = 50000
    };
    for (int i = 0; i < NKEYS; i++) {
        char key[24];
        snprintf(key, sizeof(key), "user-%07d", i);
        feed_kv(src, key, NULL, 1);
    }
    CU_ASSERT_EQUAL(sl__context_step(ctx, T0, NULL), SL_OK);
    sl_context_stats st;
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.state_keys, NKEYS);
    double per_key = (double)st.state_bytes / (double)st.state_keys;
    CU_ASSERT(per_key <= 200);
    /* Keys without values count up and go at 3: all gone after a few batches. */
    for (int k = 1; k <= 4; k++) {
        CU_ASSERT_EQUAL(sl__context_step(ctx, T0 + k * 1000, NULL), SL_OK);
    }
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.state_keys, 0);
    CU_ASSERT(st.state_bytes < 64 * 1024); /* compacted */
    CU_ASSERT_EQUAL(o.records, 0);
    sl_context_destroy(ctx);
    remove_dir(dir);
}

static void test_stateful_needs_checkpoint_dir(void)
{
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *in = ts_source_add(ctx, "in", &src);
    CU_ASSERT_PTR_NULL(sl_stream_update_state_by_key(in, running_sum, NULL, 0));
    CU_ASSERT_PTR_NULL(sl_stream_map_with_state(in, count_records, NULL, 1000, 0));
    sl_context_destroy(ctx);
    fresh_dir();
    ctx = sctx(dir, 1);
    in = ts_source_add(ctx, "in", &src);
    CU_ASSERT_PTR_NULL(sl_stream_update_state_by_key(in, NULL, NULL, 0));
    CU_ASSERT_PTR_NULL(sl_stream_map_with_state(in, count_records, NULL, -1, 0));
    CU_ASSERT_PTR_NULL(sl_stream_map_with_state(in, count_records, NULL, 0, -2));
    CU_ASSERT_PTR_NOT_NULL(sl_stream_map_with_state(in, count_records, NULL, 0, 0));
    sl_context_destroy(ctx);
    remove_dir(dir);
}

/* ==== Restart ====
 * A replayable direct source: batch k is generated from k alone (its definition), so a
 * batch read again after a restart has the same records. */

typedef struct rp_src {
    int64_t pos;
    int replays;
} rp_src;

typedef struct rp_batch {
    sl_record recs[32];
    char keys[32][16], vals[32][8];
    int n;
} rp_batch;

/* The records of batch seq. */
static void rp_gen(int64_t seq, rp_batch *b)
{
    sl_record *recs = b->recs;
    char(*keys)[16] = b->keys;
    char(*vals)[8] = b->vals;
    unsigned seed = (unsigned)(seq * 2654435761u + 17u);
    int n = seq % 6 == 5 ? 0 : 4 + (int)((seed >> 3) % 25);
    b->n = n;
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        int kl = snprintf(keys[i], sizeof(keys[i]), "k%u", (seed >> 8) % 15);
        int v = (int)((seed >> 16) % 10);
        recs[i] = (sl_record){.key = keys[i], .key_len = (uint32_t)kl, .ts = seq};
        if (v == 0) { /* a marker that removes the key from update_state_by_key's state */
            memcpy(vals[i], "stop", 5);
            recs[i].value = vals[i];
            recs[i].value_len = 4;
        }
        sl_record_set_int(&recs[i], v);
    }
}

static int rp_emit(sl_batch_input *in, int64_t seq)
{
    rp_batch b;
    rp_gen(seq, &b);
    char def[32];
    snprintf(def, sizeof(def), "%" PRId64, seq);
    sl_batch_input_describe(in, "seq %s", def);
    int rc = sl_batch_input_add_records(in, b.recs, (size_t)b.n);
    return rc == SL_OK ? sl_batch_input_set_definition(in, def) : rc;
}

static int rp_next(void *ctx, int64_t t, sl_batch_input *in)
{
    rp_src *s = ctx;
    return rp_emit(in, s->pos++);
}

static int rp_replay(void *ctx, int64_t t, const char *def, sl_batch_input *in)
{
    rp_src *s = ctx;
    s->replays++;
    return rp_emit(in, strtoll(def, NULL, 10));
}

static int rp_restore(void *ctx, const char *def)
{
    rp_src *s = ctx;
    s->pos = strtoll(def, NULL, 10) + 1;
    return SL_OK;
}

static const sl_option rp_options[] = {{0}};
static const sl_connector rp_connector = {
    .name = "replayable",
    .flags = SL_SOURCE,
    .options = rp_options,
    .ctx_size = sizeof(rp_src),
    .next_batch = rp_next,
    .replay = rp_replay,
    .restore = rp_restore,
};

#define NBATCHES 40

/* What each output gave at each batch ("-" when it gave nothing). */
typedef struct run_out {
    char text[3][NBATCHES][2048];
} run_out;

typedef struct pipeline {
    sl_context *ctx;
    ts_out o[3];
    rp_src *src;
} pipeline;

static void build_pipeline(pipeline *p, const char *d)
{
    char err[256];
    p->ctx = sctx(d, 2);
    sl_stream *in =
        sl_context_add_source_connector(p->ctx, &rp_connector, "numbers", NULL, err, sizeof(err));
    p->src = in->source->cctx;
    ts_collect(sl_stream_update_state_by_key(in, running_sum, NULL, 3), &p->o[0]);
    ts_collect(sl_stream_map_with_state(in, count_records, NULL, 3000, 2), &p->o[1]);
    /* A window with an inverse that slides every 2 batches: snapshots at multiples of 2 s. */
    ts_collect(sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, sl_reduce_sum_inverse,
                                                  sl_filter_nonzero, NULL, 6000, 2000, 2),
               &p->o[2]);
}

static int run_batches(pipeline *p, int from, int to, run_out *r)
{
    for (int k = from; k < to; k++) {
        size_t before[3];
        for (int i = 0; i < 3; i++) {
            before[i] = p->o[i].batches;
        }
        int rc = sl__context_step(p->ctx, T0 + k * 1000, NULL);
        if (rc != SL_OK) {
            return rc;
        }
        for (int i = 0; i < 3; i++) {
            sl__strlcpy(r->text[i][k], p->o[i].batches > before[i] ? p->o[i].text : "-",
                        sizeof(r->text[i][k]));
        }
    }
    return SL_OK;
}

static void test_state_survives_restart(void)
{
    static run_out want, got;
    char dir_u[256];
    fresh_dir();
    snprintf(dir_u, sizeof(dir_u), "%s", dir);
    pipeline u;
    build_pipeline(&u, dir_u);
    CU_ASSERT_EQUAL_FATAL(run_batches(&u, 0, NBATCHES, &want), SL_OK);
    sl_context_destroy(u.ctx);
    remove_dir(dir_u);

    /* Stopped (as by a crash: no last snapshot) before the first snapshot, right after one,
     * and between snapshots; each continued in a new context on the same directory. */
    static const int stops[] = {4, 9, 13, 27, 38};
    for (size_t s = 0; s < SL_ARRAY_LEN(stops); s++) {
        fresh_dir();
        memset(&got, 0, sizeof(got));
        pipeline a;
        build_pipeline(&a, dir);
        CU_ASSERT_EQUAL_FATAL(run_batches(&a, 0, stops[s] + 1, &got), SL_OK);
        sl_context_destroy(a.ctx);
        pipeline b;
        build_pipeline(&b, dir);
        CU_ASSERT_EQUAL_FATAL(run_batches(&b, stops[s] + 1, NBATCHES, &got), SL_OK);
        /* The batches completed after the last snapshot were read again. */
        int since_snapshot = (stops[s] + 1) % 10;
        CU_ASSERT_EQUAL(b.src->replays, since_snapshot);
        for (int i = 0; i < 3; i++) {
            for (int k = 0; k < NBATCHES; k++) {
                if (strcmp(want.text[i][k], got.text[i][k]) != 0) {
                    fprintf(stderr, "\nstop %d output %d batch %d:\n want %s\n got  %s\n", stops[s],
                            i, k, want.text[i][k], got.text[i][k]);
                }
                CU_ASSERT_STRING_EQUAL(got.text[i][k], want.text[i][k]);
            }
        }
        sl_context_destroy(b.ctx);
        remove_dir(dir);
    }
}

/* A corrupt state file: the checkpoint is refused with the file and the reason. */
static void test_corrupt_state_file_refused(void)
{
    static run_out got;
    fresh_dir();
    pipeline a;
    build_pipeline(&a, dir);
    CU_ASSERT_EQUAL_FATAL(run_batches(&a, 0, 12, &got), SL_OK);
    sl_context_destroy(a.ctx);
    char path[512];
    snprintf(path, sizeof(path), "%s/state/n1-%d.tab", dir, T0 + 9000);
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fseek(f, 40, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 40, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
    pipeline b;
    build_pipeline(&b, dir);
    CU_ASSERT_NOT_EQUAL(run_batches(&b, 12, 13, &got), SL_OK);
    sl_context_destroy(b.ctx);
    remove_dir(dir);
}

/* A state file whose header claims 2^64 - 1 bytes (a length that once overflowed the
 * allocation of length + 1): the restart refuses it with the reason, without allocating. */
static void test_state_file_huge_length_refused(void)
{
    static run_out got;
    fresh_dir();
    pipeline a;
    build_pipeline(&a, dir);
    CU_ASSERT_EQUAL_FATAL(run_batches(&a, 0, 12, &got), SL_OK);
    sl_context_destroy(a.ctx);
    char path[512];
    snprintf(path, sizeof(path), "%s/state/n1-%d.tab", dir, T0 + 9000);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("SLUICE-STATE 1 00000000 18446744073709551615\nabc", f);
    fclose(f);
    pipeline b;
    build_pipeline(&b, dir);
    CU_ASSERT_NOT_EQUAL(run_batches(&b, 12, 13, &got), SL_OK);
    sl_context_destroy(b.ctx);
    remove_dir(dir);
}

/* The text of running_sum's state after batches 0 .. n-1 of the replayable source. */
static void expected_sums(int64_t n, char *out, size_t size)
{
    enum {
        NK = 15
    };
    bool exists[NK] = {false};
    int64_t sum[NK] = {0};
    for (int64_t seq = 0; seq < n; seq++) {
        rp_batch b;
        rp_gen(seq, &b);
        bool stop[NK] = {false}, seen[NK] = {false};
        int64_t add[NK] = {0};
        for (int i = 0; i < b.n; i++) {
            int k = atoi(b.keys[i] + 1);
            seen[k] = true;
            stop[k] |= b.recs[i].value_len == 4;
            add[k] += b.recs[i].num.i;
        }
        for (int k = 0; k < NK; k++) {
            if (stop[k]) {
                exists[k] = false;
            } else if (seen[k]) {
                sum[k] = (exists[k] ? sum[k] : 0) + add[k];
                exists[k] = true;
            }
        }
    }
    char *tokens[NK];
    int nt = 0;
    for (int k = 0; k < NK; k++) {
        if (exists[k]) {
            tokens[nt] = malloc(32);
            snprintf(tokens[nt++], 32, "k%d:%" PRId64, k, sum[k]);
        }
    }
    for (int i = 1; i < nt; i++) { /* sorted as the collector sorts */
        for (int j = i; j > 0 && strcmp(tokens[j - 1], tokens[j]) > 0; j--) {
            char *x = tokens[j];
            tokens[j] = tokens[j - 1];
            tokens[j - 1] = x;
        }
    }
    size_t off = 0;
    out[0] = '\0';
    for (int i = 0; i < nt; i++) {
        off += (size_t)snprintf(out + off, size - off, "%s%s", i ? " " : "", tokens[i]);
        free(tokens[i]);
    }
}

static sl_context *threaded_pipeline(ts_out *o, rp_src **src)
{
    char err[256];
    sl_context_conf conf = {
        .name = "state-threads",
        .batch_interval_ms = 40,
        .workers = 2,
        .checkpoint_dir = dir,
    };
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    sl_stream *in =
        sl_context_add_source_connector(ctx, &rp_connector, "numbers", NULL, err, sizeof(err));
    *src = in->source->cctx;
    ts_collect(sl_stream_update_state_by_key(in, running_sum, NULL, 3), o);
    return ctx;
}

static void wait_batches(sl_context *ctx, uint64_t n)
{
    sl_context_stats st;
    for (int i = 0; i < 1000; i++) {
        sl_context_get_stats(ctx, &st);
        if (st.batches_completed >= n) {
            return;
        }
        sl__sleep_ms(10);
    }
}

/* With the scheduler's threads: a sink that is down leaves batches pending and the context
 * is stopped without waiting (a crash as far as the checkpoint goes); the restarted
 * context runs the completed batches after the snapshot again for their state and the
 * pending ones normally, and ends with the state of every batch applied once. A graceful
 * stop takes a last snapshot: the next start has nothing to run again. */
static void test_state_restart_with_threads(void)
{
    static ts_out o;
    static char want[4096];
    rp_src *src;
    fresh_dir();
    sl_context *ctx = threaded_pipeline(&o, &src);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    wait_batches(ctx, 13);
    o.fail_times = 1 << 30; /* the sink goes down */
    sl__sleep_ms(300);
    sl_context_stop(ctx, false);
    int64_t generated = src->pos;
    sl_context_destroy(ctx);

    ctx = threaded_pipeline(&o, &src);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    CU_ASSERT_EQUAL(src->pos, generated); /* restored; replays do not move it */
    wait_batches(ctx, 10);
    sl_context_stop(ctx, true);
    CU_ASSERT(src->replays >= 1);
    expected_sums(src->pos, want, sizeof(want));
    CU_ASSERT_STRING_EQUAL(o.text, want);
    sl_context_destroy(ctx);

    ctx = threaded_pipeline(&o, &src);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    wait_batches(ctx, 5);
    sl_context_stop(ctx, true);
    CU_ASSERT_EQUAL(src->replays, 0); /* the last snapshot covered every batch */
    expected_sums(src->pos, want, sizeof(want));
    CU_ASSERT_STRING_EQUAL(o.text, want);
    sl_context_destroy(ctx);
    remove_dir(dir);
}

/* Partitions use the stable hash: the same value in every process and version, so that a
 * replayed batch is partitioned as it was. Tables use the seeded one: the same within the
 * process, spread over the low bits (the slots), and not the stable one. */
static void test_partition_hash_stable_table_hash_seeded(void)
{
    CU_ASSERT_EQUAL(sl__hash("sluice", 6), 0x981241a0fb1f12d6ULL);
    CU_ASSERT_EQUAL(sl__hash_seeded("sluice", 6), sl__hash_seeded("sluice", 6));
    CU_ASSERT_NOT_EQUAL(sl__hash_seeded("sluice", 6), sl__hash("sluice", 6));
    char key[64];
    for (size_t n = 0; n < 40; n++) { /* every length path: 0, 1-3, 4-16, longer */
        memset(key, 'k', n);
        CU_ASSERT_NOT_EQUAL(sl__hash_seeded(key, n), sl__hash_seeded(key, n + 1));
    }
    size_t slots[8] = {0};
    for (int i = 0; i < 8000; i++) {
        int n = snprintf(key, sizeof(key), "key%d", i);
        slots[sl__hash_seeded(key, (size_t)n) & 7]++;
    }
    for (int b = 0; b < 8; b++) {
        CU_ASSERT(slots[b] > 800 && slots[b] < 1200);
    }
}

void sl_test_register(void)
{
    SL_SUITE("state", SL_TEST(update_state_by_key_deletes_on_none), SL_TEST(update_state_bytes),
             SL_TEST(map_with_state_timeouts), SL_TEST(map_with_state_no_timeout),
             SL_TEST(copartitioned_input), SL_TEST(state_memory_per_key),
             SL_TEST(stateful_needs_checkpoint_dir), SL_TEST(state_survives_restart),
             SL_TEST(partition_hash_stable_table_hash_seeded), SL_TEST(corrupt_state_file_refused),
             SL_TEST(state_file_huge_length_refused), SL_TEST(state_restart_with_threads));
}

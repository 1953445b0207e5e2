/* test_checkpoint.c -- checkpoint files (atomic, checksummed, the newest few kept, corrupt
 * ones skipped), incompatible pipelines refused, and recovery: batches generated but not
 * completed run again after a restart with the same input, and a replayable source
 * continues where it was. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cu_main.h"
#include "support.h"
#include "sl_engine.h"

static char dir[256];

static void fresh_dir(void)
{
    CU_ASSERT_TRUE_FATAL(ts_tmpdir(dir, sizeof(dir), "ckpt-test"));
}

static void remove_dir(void)
{
    CU_ASSERT_TRUE(ts_rmdir(dir));
}

static const char *names[] = {"k", "tcp"};

static sl_checkpoint *open_ck(const char *graph)
{
    char err[512];
    sl_checkpoint *ck = sl__ckpt_new(dir, graph, 1000, 2, names, err, sizeof(err));
    if (!ck) {
        fprintf(stderr, "%s\n", err);
    }
    return ck;
}

static int count_files(void)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/metadata", dir);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        n += strncmp(e->d_name, "checkpoint-", 11) == 0;
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void newest_file(char *out, size_t size)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/metadata", dir);
    DIR *d = opendir(path);
    struct dirent *e;
    char best[256] = "";
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, "checkpoint-", 11) == 0 && strcmp(e->d_name, best) > 0) {
            snprintf(best, sizeof(best), "%s", e->d_name);
        }
    }
    if (d) {
        closedir(d);
    }
    snprintf(out, size, "%s/%s", path, best);
}

static void test_round_trip_and_keep(void)
{
    fresh_dir();
    sl_checkpoint *ck = open_ck("source 0 k type=kafka\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck);
    ck->zero_time = 5000;
    const char *d1[] = {"{\"r\":[0,10]}", NULL};
    const char *d2[] = {"{\"r\":[10,20]}", NULL};
    CU_ASSERT_EQUAL(sl__ckpt_generated(ck, 6000, d1), SL_OK);
    CU_ASSERT_EQUAL(sl__ckpt_generated(ck, 7000, d2), SL_OK);
    CU_ASSERT_EQUAL(sl__ckpt_completed(ck, 6000), SL_OK);
    CU_ASSERT_EQUAL(count_files(), SL_CKPT_KEEP); /* 3 writes, 3 kept */
    CU_ASSERT_EQUAL(sl__ckpt_write(ck), SL_OK);
    CU_ASSERT_EQUAL(count_files(), SL_CKPT_KEEP); /* the oldest went */
    sl__ckpt_destroy(ck);

    ck = open_ck("source 0 k type=kafka\n");
    bool found;
    char err[512];
    CU_ASSERT_EQUAL(sl__ckpt_load(ck, &found, err, sizeof(err)), SL_OK);
    CU_ASSERT_TRUE(found);
    CU_ASSERT_EQUAL(ck->zero_time, 5000);
    CU_ASSERT_EQUAL(ck->last_completed, 6000);
    CU_ASSERT_EQUAL_FATAL(ck->npending, 1);
    CU_ASSERT_EQUAL(ck->pending[0].time, 7000);
    CU_ASSERT_STRING_EQUAL(ck->pending[0].defs[0], "{\"r\":[10,20]}");
    CU_ASSERT_PTR_NULL(ck->pending[0].defs[1]);
    CU_ASSERT_STRING_EQUAL(ck->last_defs[0], "{\"r\":[10,20]}");
    sl__ckpt_destroy(ck);
    remove_dir();
}

/* Where sources continue when the generated batches do not run again (a pipeline with a
 * changelog): after the newest batch completed with every one before it, kept across a
 * reload; a batch completed out of order does not move it. */
static void test_completed_positions_and_dropped_batches(void)
{
    fresh_dir();
    sl_checkpoint *ck = open_ck("source 0 k type=kafka\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ck);
    ck->zero_time = 5000;
    const char *d1[] = {"{\"next\":10}", NULL};
    const char *d2[] = {"{\"next\":20}", NULL};
    const char *d3[] = {"{\"next\":30}", "t3"};
    CU_ASSERT_EQUAL(sl__ckpt_generated(ck, 6000, d1), SL_OK);
    CU_ASSERT_EQUAL(sl__ckpt_generated(ck, 7000, d2), SL_OK);
    CU_ASSERT_EQUAL(sl__ckpt_generated(ck, 8000, d3), SL_OK);
    CU_ASSERT_PTR_NULL(ck->completed_defs[0]); /* nothing completed yet */
    CU_ASSERT_EQUAL(sl__ckpt_completed(ck, 7000), SL_OK);
    CU_ASSERT_PTR_NULL(ck->completed_defs[0]); /* 6000 has not completed */
    CU_ASSERT_EQUAL(sl__ckpt_completed(ck, 6000), SL_OK);
    CU_ASSERT_STRING_EQUAL(ck->completed_defs[0], "{\"next\":10}");
    sl__ckpt_destroy(ck);

    ck = open_ck("source 0 k type=kafka\n");
    bool found;
    char err[512];
    CU_ASSERT_EQUAL_FATAL(sl__ckpt_load(ck, &found, err, sizeof(err)), SL_OK);
    CU_ASSERT_STRING_EQUAL(ck->completed_defs[0], "{\"next\":10}");
    CU_ASSERT_PTR_NULL(ck->completed_defs[1]);
    CU_ASSERT_STRING_EQUAL(ck->last_defs[0], "{\"next\":30}");
    CU_ASSERT_EQUAL(ck->npending, 1);
    CU_ASSERT_EQUAL(sl__ckpt_drop_pending(ck), SL_OK);
    CU_ASSERT_EQUAL(ck->npending, 0);
    CU_ASSERT_STRING_EQUAL(ck->last_defs[0], "{\"next\":10}");
    CU_ASSERT_PTR_NULL(ck->last_defs[1]);
    sl__ckpt_destroy(ck);

    ck = open_ck("source 0 k type=kafka\n");
    CU_ASSERT_EQUAL_FATAL(sl__ckpt_load(ck, &found, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(ck->npending, 0);
    CU_ASSERT_STRING_EQUAL(ck->last_defs[0], "{\"next\":10}");
    sl__ckpt_destroy(ck);
    remove_dir();
}

static void test_corrupt_and_truncated_use_previous(void)
{
    fresh_dir();
    sl_checkpoint *ck = open_ck("g\n");
    ck->zero_time = 1000;
    const char *d[] = {"a", NULL};
    sl__ckpt_generated(ck, 2000, d); /* file 1: pending 2000 */
    sl__ckpt_completed(ck, 2000);    /* file 2: last 2000 */
    sl__ckpt_generated(ck, 3000, d); /* file 3: pending 3000 */
    sl__ckpt_destroy(ck);

    /* Flip one byte of the newest file's JSON: its checksum no longer matches. */
    char path[600];
    newest_file(path, sizeof(path));
    int fd = open(path, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    char c;
    CU_ASSERT_EQUAL(pread(fd, &c, 1, 60), 1);
    c ^= 0x20;
    CU_ASSERT_EQUAL(pwrite(fd, &c, 1, 60), 1);
    close(fd);
    ck = open_ck("g\n");
    bool found;
    char err[512];
    CU_ASSERT_EQUAL(sl__ckpt_load(ck, &found, err, sizeof(err)), SL_OK);
    CU_ASSERT_TRUE(found);
    CU_ASSERT_EQUAL(ck->last_completed, 2000); /* file 2 */
    CU_ASSERT_EQUAL(ck->npending, 0);
    sl__ckpt_destroy(ck);

    /* Truncate it instead: the same. */
    CU_ASSERT_EQUAL(truncate(path, 40), 0);
    ck = open_ck("g\n");
    CU_ASSERT_EQUAL(sl__ckpt_load(ck, &found, err, sizeof(err)), SL_OK);
    CU_ASSERT_TRUE(found);
    CU_ASSERT_EQUAL(ck->last_completed, 2000);
    sl__ckpt_destroy(ck);
    remove_dir();
}

/* Captures what the process writes to stderr (the log) from start to stop. */
static char log_path[] = "/tmp/sluice-test-ckpt-log-XXXXXX";
static int log_saved = -1;

static void log_capture_start(void)
{
    snprintf(log_path, sizeof(log_path), "/tmp/sluice-test-ckpt-log-XXXXXX");
    int fd = mkstemp(log_path);
    CU_ASSERT_FATAL(fd >= 0);
    fflush(stderr);
    log_saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

/* The captured text, malloc'ed. */
static char *log_capture_stop(void)
{
    fflush(stderr);
    dup2(log_saved, STDERR_FILENO);
    close(log_saved);
    char *text = calloc(1, 65536);
    FILE *f = fopen(log_path, "r");
    if (f && text) {
        size_t n = fread(text, 1, 65535, f);
        text[n] = '\0';
    }
    if (f) {
        fclose(f);
    }
    unlink(log_path);
    return text;
}

/* Issue 15: a checkpoint whose batch times are out of range (INT64_MIN overflowed in
 * recovery) is refused as corrupt, by file name, and the one before it is used. */
static void test_out_of_range_times_refused(void)
{
    fresh_dir();
    sl_checkpoint *ck = open_ck("g\n");
    ck->zero_time = 1000;
    const char *d[] = {"a", NULL};
    sl__ckpt_completed(ck, 2000);             /* file 1: last 2000 */
    sl__ckpt_generated(ck, INT64_MIN + 5, d); /* file 2: pending INT64_MIN + 5 */
    sl__ckpt_destroy(ck);
    char newest[600];
    newest_file(newest, sizeof(newest));
    bool found;
    char err[512];
    log_capture_start();
    ck = open_ck("g\n");
    CU_ASSERT_EQUAL(sl__ckpt_load(ck, &found, err, sizeof(err)), SL_OK);
    char *log = log_capture_stop();
    CU_ASSERT_TRUE(found);
    CU_ASSERT_EQUAL(ck->last_completed, 2000);
    CU_ASSERT_EQUAL(ck->npending, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, newest));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "corrupt"));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "out of range"));
    free(log);
    sl__ckpt_destroy(ck);

    /* Beyond year 9999, in the zero time of the only file: starting fresh. */
    fresh_dir();
    ck = open_ck("g\n");
    ck->zero_time = SL_TIME_MAX_MS + 1;
    CU_ASSERT_EQUAL(sl__ckpt_write(ck), SL_OK);
    sl__ckpt_destroy(ck);
    ck = open_ck("g\n");
    CU_ASSERT_EQUAL(sl__ckpt_load(ck, &found, err, sizeof(err)), SL_OK);
    CU_ASSERT_FALSE(found);
    sl__ckpt_destroy(ck);
    remove_dir();
}

static void test_incompatible_pipeline_refused(void)
{
    fresh_dir();
    sl_checkpoint *ck = open_ck("source 0 k type=kafka\nstream 1 map parents=0,-1\n");
    ck->zero_time = 1000;
    CU_ASSERT_EQUAL(sl__ckpt_write(ck), SL_OK);
    sl__ckpt_destroy(ck);
    ck = open_ck("source 0 k type=kafka\nstream 1 filter parents=0,-1\n");
    bool found;
    char err[1024];
    CU_ASSERT_EQUAL(sl__ckpt_load(ck, &found, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_FALSE(found);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "different pipeline"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "was: stream 1 map"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "now: stream 1 filter"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "delete"));
    sl__ckpt_destroy(ck);
    remove_dir();
}

static void test_unusable_directory(void)
{
    char err[512];
    /* A path below a regular file cannot be a directory. */
    sl_checkpoint *ck = sl__ckpt_new("/etc/hostname/ckpt", "g", 1000, 0, NULL, err, sizeof(err));
    CU_ASSERT_PTR_NULL(ck);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/etc/hostname/ckpt/metadata"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot be created"));
    /* A missing directory is created. */
    fresh_dir();
    char sub[400];
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    ck = sl__ckpt_new(sub, "g", 1000, 0, NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(ck);
    sl__ckpt_destroy(ck);
    remove_dir();
}

/* ==== Recovery with a replayable source ====
 * A direct source over an endless numbered log: each batch takes the next 10 numbers, its
 * definition "from,until". */

typedef struct log_src {
    int64_t pos;
    int replays;
} log_src;

static int log_emit(sl_batch_input *in, int64_t from, int64_t until)
{
    sl_record recs[16];
    char texts[16][24];
    for (int64_t i = from; i < until; i++) {
        int n = snprintf(texts[i - from], sizeof(texts[0]), "%" PRId64, i);
        recs[i - from] = (sl_record){.value = texts[i - from], .value_len = (uint32_t)n};
        sl_record_set_int(&recs[i - from], i);
    }
    char def[64];
    snprintf(def, sizeof(def), "%" PRId64 ",%" PRId64, from, until);
    sl_batch_input_describe(in, "%s", def);
    int rc = sl_batch_input_add_records(in, recs, (size_t)(until - from));
    return rc == SL_OK ? sl_batch_input_set_definition(in, def) : rc;
}

static int log_next(void *ctx, int64_t t, sl_batch_input *in)
{
    log_src *s = ctx;
    int rc = log_emit(in, s->pos, s->pos + 10);
    s->pos += 10;
    return rc;
}

static int log_replay(void *ctx, int64_t t, const char *def, sl_batch_input *in)
{
    log_src *s = ctx;
    long long from, until;
    if (sscanf(def, "%lld,%lld", &from, &until) != 2) {
        return SL_ERR_INVAL;
    }
    s->replays++;
    return log_emit(in, from, until);
}

static int log_restore(void *ctx, const char *def)
{
    log_src *s = ctx;
    long long from, until;
    if (sscanf(def, "%lld,%lld", &from, &until) != 2) {
        return SL_ERR_INVAL;
    }
    s->pos = until;
    return SL_OK;
}

static const sl_option log_options[] = {{0}};
static const sl_connector log_connector = {
    .name = "numbers",
    .flags = SL_SOURCE,
    .options = log_options,
    .ctx_size = sizeof(log_src),
    .next_batch = log_next,
    .replay = log_replay,
    .restore = log_restore,
};

/* The output: sums what it saw; fails (retry) from a batch on, to leave it pending. */
typedef struct seen {
    _Atomic int64_t sum, count;
    _Atomic int64_t first, last;
    _Atomic int stuck; /* refuse every batch */
} seen;

static int sum_numbers(const sl_dataset *ds, int64_t t, void *opaque)
{
    seen *s = opaque;
    if (atomic_load(&s->stuck) && sl_dataset_count(ds)) {
        return SL_ERR_RETRY;
    }
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            int64_t v = r[i].num.i;
            atomic_fetch_add(&s->sum, v);
            atomic_fetch_add(&s->count, 1);
            if (atomic_load(&s->first) < 0) {
                atomic_store(&s->first, v);
            }
            atomic_store(&s->last, v);
        }
    }
    return SL_OK;
}

static sl_context *build(seen *s, sl_stream **src)
{
    char err[256];
    sl_context_conf conf = {
        .name = "replay", .batch_interval_ms = 100, .workers = 1, .checkpoint_dir = dir};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    *src = sl_context_add_source_connector(ctx, &log_connector, "numbers", NULL, err, sizeof(err));
    sl_stream_foreach_batch(*src, sum_numbers, s);
    return ctx;
}

static sl_context *create_fn(const char *d, void *opaque)
{
    sl_stream *src;
    return build(opaque, &src);
}

static void test_pending_batches_replayed_after_restart(void)
{
    fresh_dir();
    seen a = {.first = -1};
    sl_stream *src;
    sl_context *ctx = build(&a, &src);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    while (atomic_load(&a.count) < 50) {
        sl__sleep_ms(10);
    }
    atomic_store(&a.stuck, 1); /* the sink goes down: batches stay pending */
    sl__sleep_ms(350);
    sl_context_stop(ctx, false); /* a crash, as far as the checkpoint is concerned */
    int64_t done = atomic_load(&a.count);
    int64_t last = atomic_load(&a.last);
    CU_ASSERT_EQUAL(done % 10, 0);
    CU_ASSERT_EQUAL(last, done - 1); /* 0 .. done-1, each once */
    sl_context_destroy(ctx);

    /* Restart: what was not written is written now, from done on, each number once. */
    seen b = {.first = -1};
    char err[512];
    ctx = sl_context_get_or_create(dir, create_fn, &b, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    int64_t want = done + 100;
    for (int i = 0; i < 500 && atomic_load(&b.last) < want; i++) {
        sl__sleep_ms(10);
    }
    sl_context_stop(ctx, true);
    CU_ASSERT_EQUAL(atomic_load(&b.first), done);
    int64_t n = atomic_load(&b.count), l = atomic_load(&b.last);
    CU_ASSERT_EQUAL(l, done + n - 1);
    CU_ASSERT_EQUAL(atomic_load(&b.sum), (done + l) * n / 2); /* no gap, no repeat */
    log_src *ls = ctx->sources->cctx;
    CU_ASSERT(ls->replays >= 1);
    sl_context_destroy(ctx);

    /* The same directory with another pipeline: refused, with the difference. */
    seen c = {.first = -1};
    char err2[1024];
    sl_context *other = sl_context_get_or_create(dir, create_fn, &c, err2, sizeof(err2));
    CU_ASSERT_PTR_NOT_NULL(other); /* same pipeline: fine */
    sl_context_destroy(other);
    remove_dir();
}

/* ==== Recovery with a receiver and a write-ahead log ====
 * A receiver connector that appends what it receives to a log under the checkpoint
 * directory and pushes it, and at its start pushes the whole log again (it never marks
 * anything processed). The sink is a store that records the batch times it committed and
 * skips those (as the PostgreSQL and Redis sinks do). */

typedef struct wal_recv {
    sl_instance *ins;
    sl_wal *wal;
} wal_recv;

static wal_recv *the_recv;

static int wal_recv_push_block(void *arg, const sl_record *recs, size_t n, sl_wal_pos end)
{
    wal_recv *w = arg;
    return sl__receiver_push_logged(w->ins, recs, n, end, 0);
}

static int wal_recv_init(sl_instance *ins, void *ctx, char *errstr, size_t errsize)
{
    (void)errstr, (void)errsize;
    wal_recv *w = ctx;
    w->ins = ins;
    the_recv = w;
    return SL_OK;
}

static int wal_recv_start(void *ctx, char *errstr, size_t errsize)
{
    wal_recv *w = ctx;
    w->wal = sl__wal_open(sl_context_checkpoint_dir(sl_instance_context(w->ins)), "recv", NULL,
                          errstr, errsize);
    if (!w->wal) {
        return SL_ERR_IO;
    }
    sl__receiver_set_wal(w->ins, w->wal);
    return sl__wal_replay(w->wal, 0, wal_recv_push_block, w, NULL);
}

static void wal_recv_destroy(void *ctx)
{
    wal_recv *w = ctx;
    if (w->wal) {
        sl__receiver_set_wal(w->ins, NULL);
    }
    sl__wal_close(w->wal);
}

static const sl_connector wal_recv_connector = {
    .name = "walrecv",
    .flags = SL_SOURCE | SL_RECEIVER,
    .options = log_options,
    .ctx_size = sizeof(wal_recv),
    .init = wal_recv_init,
    .start = wal_recv_start,
    .destroy = wal_recv_destroy,
};

/* Receives n records "<prefix><i>": appended to the log, then pushed. */
static void wal_recv_receive(const char *prefix, int n)
{
    sl_record recs[8];
    char texts[8][16];
    for (int i = 0; i < n; i++) {
        int len = snprintf(texts[i], sizeof(texts[i]), "%s%d", prefix, i);
        recs[i] = (sl_record){.value = texts[i], .value_len = (uint32_t)len};
    }
    sl_wal_pos end = 0;
    CU_ASSERT_EQUAL_FATAL(sl__wal_append(the_recv->wal, recs, (size_t)n, &end), SL_OK);
    CU_ASSERT_EQUAL(sl__receiver_push_logged(the_recv->ins, recs, (size_t)n, end, 0), SL_OK);
}

/* The sink's store: survives the crash. */
#define STORE_MAX 64
typedef struct store {
    pthread_mutex_t lock;
    char names[STORE_MAX][16];
    int counts[STORE_MAX];
    int nnames;
    int64_t committed[STORE_MAX];
    int ncommitted;
    int total;
    bool dead;            /* commits, then fails: the crash comes before the checkpoint */
    int64_t dead_time;    /* the batch it committed last while dead */
    int64_t rerun_time;   /* the first batch with records seen after the restart */
    int rerun_records;    /* its records */
    char rerun_first[16]; /* its first record */
} store;

static store the_store = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int store_write(const sl_dataset *ds, int64_t t, void *opaque)
{
    store *st = opaque;
    size_t total = sl_dataset_count(ds);
    pthread_mutex_lock(&st->lock);
    if (total > 0 && st->rerun_time == 0 && !st->dead && st->dead_time != 0) {
        st->rerun_time = t;
        st->rerun_records = (int)total;
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, 0, &n);
        snprintf(st->rerun_first, sizeof(st->rerun_first), "%.*s", (int)r[0].value_len, r[0].value);
    }
    for (int c = 0; c < st->ncommitted; c++) {
        if (st->committed[c] == t) {
            pthread_mutex_unlock(&st->lock);
            return st->dead ? SL_ERR_RETRY : SL_OK; /* already written */
        }
    }
    if (total > 0) {
        for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
            size_t n;
            const sl_record *r = sl_dataset_partition(ds, p, &n);
            for (size_t i = 0; i < n; i++) {
                int k = 0;
                while (k < st->nnames && (strlen(st->names[k]) != r[i].value_len ||
                                          memcmp(st->names[k], r[i].value, r[i].value_len) != 0)) {
                    k++;
                }
                if (k == st->nnames && k < STORE_MAX) {
                    snprintf(st->names[k], sizeof(st->names[k]), "%.*s", (int)r[i].value_len,
                             r[i].value);
                    st->nnames++;
                }
                st->counts[k]++;
                st->total++;
            }
        }
        if (st->ncommitted < STORE_MAX) {
            st->committed[st->ncommitted++] = t;
        }
        if (st->dead) {
            st->dead_time = t;
        }
    }
    bool dead = st->dead;
    pthread_mutex_unlock(&st->lock);
    return dead ? SL_ERR_RETRY : SL_OK;
}

static int store_total(void)
{
    pthread_mutex_lock(&the_store.lock);
    int n = the_store.total;
    pthread_mutex_unlock(&the_store.lock);
    return n;
}

static sl_context *wal_create_fn(const char *d, void *opaque)
{
    (void)opaque;
    char err[256];
    sl_context_conf conf = {.name = "walrecv",
                            .batch_interval_ms = 100,
                            .block_interval_ms = 20,
                            .workers = 1,
                            .checkpoint_dir = d};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    sl_stream *src =
        sl_context_add_source_connector(ctx, &wal_recv_connector, "recv", NULL, err, sizeof(err));
    sl_stream_foreach_batch(src, store_write, &the_store);
    return ctx;
}

static bool wait_total(int want)
{
    for (int i = 0; i < 300 && store_total() < want; i++) {
        sl__sleep_ms(10);
    }
    return store_total() >= want;
}

static void test_receiver_wal_pending_batch_rerun_exactly(void)
{
    fresh_dir();
    char err[512];
    sl_context *ctx = sl_context_get_or_create(dir, wal_create_fn, NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    wal_recv_receive("a", 3);
    CU_ASSERT_FATAL(wait_total(3)); /* written and completed */
    sl__sleep_ms(250);

    /* The sink commits the next batch, then the process dies before the checkpoint says it
     * completed; more records arrive meanwhile. */
    pthread_mutex_lock(&the_store.lock);
    the_store.dead = true;
    pthread_mutex_unlock(&the_store.lock);
    wal_recv_receive("b", 4);
    CU_ASSERT_FATAL(wait_total(7));
    sl__sleep_ms(150);
    wal_recv_receive("c", 2);
    sl__sleep_ms(150);
    wal_recv_receive("d", 5);
    sl_context_stop(ctx, false);
    sl_context_destroy(ctx); /* the crash: nothing completed */
    pthread_mutex_lock(&the_store.lock);
    int64_t dead_time = the_store.dead_time;
    the_store.dead = false;
    pthread_mutex_unlock(&the_store.lock);
    CU_ASSERT_NOT_EQUAL(dead_time, 0);

    /* Restart: the pending batch runs again with its records and its time (the sink skips
     * it), and everything else comes exactly once. */
    ctx = sl_context_get_or_create(dir, wal_create_fn, NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    wait_total(14);
    sl__sleep_ms(300);
    sl_context_stop(ctx, true);
    sl_context_destroy(ctx);

    pthread_mutex_lock(&the_store.lock);
    CU_ASSERT_EQUAL(the_store.rerun_time, dead_time);
    CU_ASSERT_EQUAL(the_store.rerun_records, 4);
    CU_ASSERT_STRING_EQUAL(the_store.rerun_first, "b0");
    CU_ASSERT_EQUAL(the_store.total, 14);
    CU_ASSERT_EQUAL(the_store.nnames, 14);
    for (int k = 0; k < the_store.nnames; k++) {
        if (the_store.counts[k] != 1) {
            fprintf(stderr, "%s counted %d times\n", the_store.names[k], the_store.counts[k]);
        }
        CU_ASSERT_EQUAL(the_store.counts[k], 1);
    }
    pthread_mutex_unlock(&the_store.lock);
    remove_dir();
}

void sl_test_register(void)
{
    SL_SUITE("checkpoint", SL_TEST(round_trip_and_keep),
             SL_TEST(completed_positions_and_dropped_batches),
             SL_TEST(corrupt_and_truncated_use_previous), SL_TEST(incompatible_pipeline_refused),
             SL_TEST(out_of_range_times_refused), SL_TEST(unusable_directory),
             SL_TEST(pending_batches_replayed_after_restart),
             SL_TEST(receiver_wal_pending_batch_rerun_exactly));
}

/* test_file.c -- the file source (new files of a directory, through a running context and a
 * collecting output) and the file sink (batch directories, driven by sl__context_step). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "support.h"

/* ==== Collecting records ==== */

typedef struct rec {
    char *value;
    size_t len;
    char topic[64];
    int64_t offset;
} rec;

typedef struct collector {
    pthread_mutex_t lock;
    rec *recs;
    size_t n, cap;
} collector;

static void collector_init(collector *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
}

static void collector_free(collector *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->recs[i].value);
    }
    free(c->recs);
    pthread_mutex_destroy(&c->lock);
}

static int collect(const sl_dataset *ds, int64_t t, void *opaque)
{
    collector *c = opaque;
    (void)t;
    pthread_mutex_lock(&c->lock);
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 64;
                c->recs = realloc(c->recs, c->cap * sizeof(*c->recs));
            }
            rec *x = &c->recs[c->n++];
            memset(x, 0, sizeof(*x));
            x->len = r[i].value_len;
            x->value = malloc(x->len + 1);
            if (x->len > 0) {
                memcpy(x->value, r[i].value, x->len);
            }
            x->value[x->len] = '\0';
            x->offset = r[i].meta ? r[i].meta->offset : -2;
            if (r[i].meta && r[i].meta->topic) {
                snprintf(x->topic, sizeof(x->topic), "%s", r[i].meta->topic);
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
    return SL_OK;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t collector_count(collector *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->n;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Waits until a record with this value arrived. */
static bool collector_wait_value(collector *c, const char *value, int64_t timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    do {
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++) {
            if (strcmp(c->recs[i].value, value) == 0) {
                pthread_mutex_unlock(&c->lock);
                return true;
            }
        }
        pthread_mutex_unlock(&c->lock);
        usleep(20 * 1000);
    } while (now_ms() < until);
    return false;
}

static size_t collector_count_topic(collector *c, const char *topic)
{
    size_t k = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        k += strcmp(c->recs[i].topic, topic) == 0;
    }
    pthread_mutex_unlock(&c->lock);
    return k;
}

/* ==== Files ==== */

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Writes data under dir/../stage/name, sets its mtime age_s seconds back (if > 0), then
 * renames it into dir: a file moved in whole. */
static void move_in(const char *dir, const char *name, const char *data, time_t age_s)
{
    char stage[256], path[512], final[512];
    snprintf(stage, sizeof(stage), "%s.stage", dir);
    mkdir(stage, 0777);
    snprintf(path, sizeof(path), "%s/%s", stage, name);
    snprintf(final, sizeof(final), "%s/%s", dir, name);
    write_file(path, data, strlen(data));
    if (age_s > 0) {
        struct timeval tv[2];
        gettimeofday(&tv[0], NULL);
        tv[0].tv_sec -= age_s;
        tv[1] = tv[0];
        CU_ASSERT(utimes(path, tv) == 0);
    }
    CU_ASSERT(rename(path, final) == 0);
}

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s.stage'", path, path);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", path);
    }
}

static char *make_dir(char *buf, size_t size)
{
    snprintf(buf, size, "/tmp/sluice-test-file-XXXXXX");
    return mkdtemp(buf);
}

/* A context with a file source "in" with the given options (key, value, ..., NULL). */
static sl_context *file_context(collector *col, char *err, size_t errsize, ...)
{
    sl_context_conf conf = {
        .name = "test_file", .batch_interval_ms = 100, .workers = 2, .block_interval_ms = 50};
    sl_context *ctx = sl_context_new(&conf, err, errsize);
    if (!ctx) {
        return NULL;
    }
    sl_options *o = sl_options_new();
    va_list ap;
    va_start(ap, errsize);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        sl_options_set(o, k, va_arg(ap, const char *));
    }
    va_end(ap);
    sl_stream *s = sl_context_add_source(ctx, "file", "in", o, err, errsize);
    sl_options_destroy(o);
    if (!s || sl_stream_foreach_batch(s, collect, col) != SL_OK) {
        sl_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

static void stop_context(sl_context *ctx)
{
    sl_context_stop(ctx, true);
    sl_context_await_termination(ctx);
}

/* ==== File source ==== */

static void test_file_source_reads_a_moved_in_file_once(void)
{
    char dir[64], err[256];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    collector col;
    collector_init(&col);
    sl_context *ctx = file_context(&col, err, sizeof(err), "path", dir, "poll_interval", "50ms",
                                   "max_record_size", "64", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);

    char big[201];
    memset(big, 'x', 200);
    big[200] = '\0';
    char text[512];
    snprintf(text, sizeof(text), "l1\nl2\r\n\n%s\nl5", big);
    move_in(dir, "a.txt", text, 0);
    CU_ASSERT(collector_wait_value(&col, "l5", 5000));
    usleep(300 * 1000); /* several polls: the file is not read again */
    CU_ASSERT_EQUAL(collector_count(&col), 4);

    /* Not taken: dot-files, subdirectories, files older than remember. The sentinel
     * comes after them, so once it is read they were all seen by a poll. */
    move_in(dir, ".hidden", "hidden\n", 0);
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    mkdir(sub, 0777);
    snprintf(sub, sizeof(sub), "%s/sub/inner.txt", dir);
    write_file(sub, "inner\n", 6);
    move_in(dir, "old.txt", "old\n", 2 * 3600);
    usleep(120 * 1000);
    move_in(dir, "sentinel.txt", "sentinel\n", 0);
    CU_ASSERT(collector_wait_value(&col, "sentinel", 5000));

    /* A file replaced under the same name (new mtime and size) is a new file. */
    usleep(20 * 1000);
    move_in(dir, "a.txt", "again\n", 0);
    CU_ASSERT(collector_wait_value(&col, "again", 5000));
    stop_context(ctx);

    CU_ASSERT_EQUAL(col.n, 6);
    CU_ASSERT_EQUAL(collector_count_topic(&col, "a.txt"), 5);
    CU_ASSERT_EQUAL(collector_count_topic(&col, "sentinel.txt"), 1);
    if (col.n == 6) {
        static const struct {
            const char *v;
            int64_t offset;
        } want[] = {{"l1", 1}, {"l2", 2}, {"", 3}, {"l5", 5}, {"sentinel", 1}, {"again", 1}};
        for (size_t i = 0; i < 6; i++) {
            CU_ASSERT_STRING_EQUAL(col.recs[i].value, want[i].v);
            CU_ASSERT_EQUAL(col.recs[i].offset, want[i].offset);
        }
    }
    sl_context_stats st;
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.records_oversize, 1);
    sl_context_destroy(ctx);
    collector_free(&col);
    rm_rf(dir);
}

static void test_file_source_skips_files_present_at_start(void)
{
    char dir[64], err[256];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    move_in(dir, "before.txt", "before\n", 0);
    collector col;
    collector_init(&col);
    sl_context *ctx =
        file_context(&col, err, sizeof(err), "path", dir, "poll_interval", "50ms", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    move_in(dir, "after.txt", "after\n", 0);
    CU_ASSERT(collector_wait_value(&col, "after", 5000));
    usleep(150 * 1000);
    stop_context(ctx);
    CU_ASSERT_EQUAL(col.n, 1);
    sl_context_destroy(ctx);
    collector_free(&col);
    rm_rf(dir);
}

static void test_file_source_include_existing_takes_old_files(void)
{
    char dir[64], err[256];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    move_in(dir, "ancient.txt", "ancient\n", 24 * 3600);
    move_in(dir, "recent.txt", "recent\n", 0);
    collector col;
    collector_init(&col);
    sl_context *ctx = file_context(&col, err, sizeof(err), "path", dir, "poll_interval", "50ms",
                                   "include_existing", "true", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    CU_ASSERT(collector_wait_value(&col, "ancient", 5000));
    CU_ASSERT(collector_wait_value(&col, "recent", 5000));
    usleep(200 * 1000); /* read once, not at every poll */
    stop_context(ctx);
    CU_ASSERT_EQUAL(col.n, 2);
    sl_context_destroy(ctx);
    collector_free(&col);
    rm_rf(dir);
}

static void test_file_source_missing_directory_is_refused(void)
{
    char err[256] = "";
    collector col;
    collector_init(&col);
    const char *missing = "/tmp/sluice-test-no-such-dir/inner";
    CU_ASSERT(file_context(&col, err, sizeof(err), "path", missing, NULL) == NULL);
    CU_ASSERT(strstr(err, missing) != NULL);
    char file[] = "/tmp/sluice-test-file-XXXXXX";
    int fd = mkstemp(file);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    CU_ASSERT(file_context(&col, err, sizeof(err), "path", file, NULL) == NULL);
    CU_ASSERT(strstr(err, "not a directory") != NULL);
    unlink(file);
    collector_free(&col);
}

/* ==== File sink ==== */

/* The lines of every file in dir, sorted and joined by '|'; the files' names (sorted,
 * joined by ' ') in names. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void read_dir_lines(const char *dir, char *lines, size_t lsize, char *names, size_t nsize)
{
    char *ln[256], *nm[64];
    size_t nl = 0, nn = 0;
    DIR *d = opendir(dir);
    lines[0] = names[0] = '\0';
    if (!d) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || nn == 64) {
            continue;
        }
        nm[nn++] = strdup(de->d_name);
        char path[512], buf[256];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "r");
        while (f && fgets(buf, sizeof(buf), f) && nl < 256) {
            buf[strcspn(buf, "\n")] = '\0';
            ln[nl++] = strdup(buf);
        }
        if (f) {
            fclose(f);
        }
    }
    closedir(d);
    qsort(ln, nl, sizeof(*ln), cmp_str);
    qsort(nm, nn, sizeof(*nm), cmp_str);
    size_t off = 0;
    for (size_t i = 0; i < nl; i++) {
        off += (size_t)snprintf(lines + off, lsize - off, "%s%s", i ? "|" : "", ln[i]);
        free(ln[i]);
    }
    off = 0;
    for (size_t i = 0; i < nn; i++) {
        off += (size_t)snprintf(names + off, nsize - off, "%s%s", i ? " " : "", nm[i]);
        free(nm[i]);
    }
}

static void feed_sample(ts_source *src)
{
    sl_record recs[4] = {
        {.key = "a", .key_len = 1, .num_type = SL_NUM_INT, .num.i = 3},
        {.key = "b", .key_len = 1, .value = "x", .value_len = 1},
        {.value = "plain", .value_len = 5},
        {.num_type = SL_NUM_DOUBLE, .num.d = 2.5},
    };
    ts_feed_records(src, recs, 4);
}

static void test_file_sink_writes_one_directory_per_batch(void)
{
    char dir[64], prefix[128], path[256], lines[1024], names[512];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    snprintf(prefix, sizeof(prefix), "%s/out/sub/counts", dir); /* parents are created */
    sl_context *ctx = ts_context(1000, 2);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    sl_stream *r = sl_stream_repartition(s, 3);
    CU_ASSERT_FATAL(sl_stream_save_as_text_files(r, prefix, "txt") == SL_OK);

    feed_sample(src);
    sl_batch_info info;
    CU_ASSERT(sl__context_step(ctx, 1000, &info) == SL_OK);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    snprintf(path, sizeof(path), "%s-1000.txt", prefix);
    read_dir_lines(path, lines, sizeof(lines), names, sizeof(names));
    CU_ASSERT_STRING_EQUAL(names, "part-00000 part-00001 part-00002");
    CU_ASSERT_STRING_EQUAL(lines, "(a,3)|(b,x)|2.5|plain");

    /* An empty batch still gets its directory. */
    CU_ASSERT(sl__context_step(ctx, 2000, &info) == SL_OK);
    snprintf(path, sizeof(path), "%s-2000.txt", prefix);
    read_dir_lines(path, lines, sizeof(lines), names, sizeof(names));
    CU_ASSERT_STRING_EQUAL(names, "part-00000 part-00001 part-00002");
    CU_ASSERT_STRING_EQUAL(lines, "");

    /* Nothing but the two batches next to them: no temporary directory left. */
    snprintf(path, sizeof(path), "%s/out/sub", dir);
    read_dir_lines(path, lines, sizeof(lines), names, sizeof(names));
    CU_ASSERT_STRING_EQUAL(names, "counts-1000.txt counts-2000.txt");
    sl_context_destroy(ctx);
    rm_rf(dir);
}

static void test_file_sink_skips_a_batch_written_before(void)
{
    char dir[64], prefix[128], path[256], lines[1024], names[512];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    snprintf(prefix, sizeof(prefix), "%s/counts", dir);
    snprintf(path, sizeof(path), "%s-3000", prefix);
    mkdir(path, 0777);
    snprintf(path, sizeof(path), "%s-3000/part-00000", prefix);
    write_file(path, "earlier\n", 8);

    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    CU_ASSERT_FATAL(sl_stream_save_as_text_files(s, prefix, NULL) == SL_OK);
    feed_sample(src);
    sl_batch_info info;
    CU_ASSERT(sl__context_step(ctx, 3000, &info) == SL_OK);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    snprintf(path, sizeof(path), "%s-3000", prefix);
    read_dir_lines(path, lines, sizeof(lines), names, sizeof(names));
    CU_ASSERT_STRING_EQUAL(names, "part-00000");
    CU_ASSERT_STRING_EQUAL(lines, "earlier");
    sl_context_destroy(ctx);
    rm_rf(dir);
}

/* Removes the file that blocks the sink's directory after a while. */
static void *unblock_main(void *arg)
{
    usleep(300 * 1000);
    unlink((const char *)arg);
    return NULL;
}

static void test_file_sink_retries_after_an_io_error(void)
{
    char dir[64], blocker[128], prefix[160], path[256], lines[1024], names[512];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    snprintf(blocker, sizeof(blocker), "%s/out", dir);
    write_file(blocker, "in the way\n", 11); /* a file where the directory should be */
    snprintf(prefix, sizeof(prefix), "%s/counts", blocker);

    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    CU_ASSERT_FATAL(sl_stream_save_as_text_files(s, prefix, NULL) == SL_OK);
    feed_sample(src);
    pthread_t th;
    pthread_create(&th, NULL, unblock_main, blocker);
    sl_batch_info info;
    CU_ASSERT(sl__context_step(ctx, 4000, &info) == SL_OK);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(info.outputs_succeeded, 1);
    snprintf(path, sizeof(path), "%s-4000", prefix);
    read_dir_lines(path, lines, sizeof(lines), names, sizeof(names));
    CU_ASSERT_STRING_EQUAL(lines, "(a,3)|(b,x)|2.5|plain"); /* nothing lost */
    sl_context_destroy(ctx);
    rm_rf(dir);
}

static void test_file_sink_bad_options_are_refused(void)
{
    char err[256];
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    sl_options *o = sl_options_new();
    CU_ASSERT(sl_stream_to(s, "file", "out", o, err, sizeof(err)) != SL_OK);
    CU_ASSERT(strstr(err, "prefix") != NULL);
    sl_options_set(o, "prefix", "/tmp/x/");
    CU_ASSERT(sl_stream_to(s, "file", "out", o, err, sizeof(err)) != SL_OK);
    sl_options_set(o, "prefix", "/tmp/x");
    sl_options_set(o, "format", "csv");
    CU_ASSERT(sl_stream_to(s, "file", "out", o, err, sizeof(err)) != SL_OK);
    sl_options_destroy(o);
    sl_context_destroy(ctx);
}

void sl_test_register(void)
{
    SL_SUITE(
        "file_source",
        {"file_source_reads_a_moved_in_file_once", test_file_source_reads_a_moved_in_file_once},
        {"file_source_skips_files_present_at_start", test_file_source_skips_files_present_at_start},
        {"file_source_include_existing_takes_old_files",
         test_file_source_include_existing_takes_old_files},
        {"file_source_missing_directory_is_refused",
         test_file_source_missing_directory_is_refused});
    SL_SUITE(
        "file_sink",
        {"file_sink_writes_one_directory_per_batch", test_file_sink_writes_one_directory_per_batch},
        {"file_sink_skips_a_batch_written_before", test_file_sink_skips_a_batch_written_before},
        {"file_sink_retries_after_an_io_error", test_file_sink_retries_after_an_io_error},
        {"file_sink_bad_options_are_refused", test_file_sink_bad_options_are_refused});
}

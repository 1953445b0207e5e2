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

#include <jansson.h>
#include <math.h>

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
        if (strncmp(de->d_name, "part-", 5) != 0) {
            continue; /* the manifest: checked on its own */
        }
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
    CU_ASSERT_STRING_EQUAL(names, "_manifest.json part-00000 part-00001 part-00002");
    CU_ASSERT_STRING_EQUAL(lines, "(a,3)|(b,x)|2.5|plain");

    /* An empty batch still gets its directory. */
    CU_ASSERT(sl__context_step(ctx, 2000, &info) == SL_OK);
    snprintf(path, sizeof(path), "%s-2000.txt", prefix);
    read_dir_lines(path, lines, sizeof(lines), names, sizeof(names));
    CU_ASSERT_STRING_EQUAL(names, "_manifest.json part-00000 part-00001 part-00002");
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
    sl_options_set(o, "format", "xml");
    CU_ASSERT(sl_stream_to(s, "file", "out", o, err, sizeof(err)) != SL_OK);
    sl_options_destroy(o);
    sl_context_destroy(ctx);
}

/* ==== Formats and manifest ==== */

/* A whole file: malloc'ed, NUL-terminated after *len bytes; NULL when unreadable. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
    }
    *len = n;
    return buf;
}

/* Runs one batch of recs through a file sink with these options (key, value, ..., NULL) on
 * one partition and returns part-00000's bytes (caller frees). */
static char *sink_one_batch(const char *dir, const sl_record *recs, size_t n, size_t *len, ...)
{
    char prefix[160], path[256], err[256];
    snprintf(prefix, sizeof(prefix), "%s/out", dir);
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "src", &src);
    sl_options *o = sl_options_new();
    sl_options_set(o, "prefix", prefix);
    va_list ap;
    va_start(ap, len);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        sl_options_set(o, k, va_arg(ap, const char *));
    }
    va_end(ap);
    int rc = sl_stream_to(s, "file", "saved", o, err, sizeof(err));
    sl_options_destroy(o);
    if (rc != SL_OK) {
        fprintf(stderr, "sink_one_batch: %s\n", err);
        sl_context_destroy(ctx);
        return NULL;
    }
    ts_feed_records(src, recs, n);
    sl_batch_info info;
    rc = sl__context_step(ctx, 1000, &info);
    sl_context_destroy(ctx);
    if (rc != SL_OK || info.outputs_succeeded != 1) {
        return NULL;
    }
    snprintf(path, sizeof(path), "%s-1000/part-00000", prefix);
    return read_all(path, len);
}

static void test_file_sink_csv_quotes_fields(void)
{
    char dir[64];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    static const sl_record_meta meta = {
        .source = "src", .topic = "t\"q", .partition = 2, .offset = 7};
    sl_record recs[] = {
        {.key = "k,1", .key_len = 3, .value = "a,b", .value_len = 3, .ts = 5, .meta = &meta},
        {.value = "say \"hi\"", .value_len = 8, .ts = 6},
        {.key = "x", .key_len = 1, .value = "line1\nline2\r\nend", .value_len = 16},
        {.key = "n", .key_len = 1, .value = "a\0b", .value_len = 3},
        {.key = "c",
         .key_len = 1,
         .value = "bytes",
         .value_len = 5,
         .num_type = SL_NUM_INT,
         .num.i = -42},
        {.key = "d", .key_len = 1, .num_type = SL_NUM_DOUBLE, .num.d = 0.1},
        {.value = "\xff\xfe plain", .value_len = 8},
    };
    size_t len = 0;
    char *got = sink_one_batch(dir, recs, sizeof(recs) / sizeof(recs[0]), &len, "format", "csv",
                               "header", "true", "columns",
                               "key,value,num,ts,source,topic,partition,offset,batch_time", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    static const char want[] = "key,value,num,ts,source,topic,partition,offset,batch_time\n"
                               "\"k,1\",\"a,b\",,5,src,\"t\"\"q\",2,7,1000\n"
                               ",\"say \"\"hi\"\"\",,6,,,,,1000\n"
                               "x,\"line1\nline2\r\nend\",,0,,,,,1000\n"
                               "n,\"a\0b\",,0,,,,,1000\n"
                               "c,-42,-42,0,,,,,1000\n"
                               "d,0.1,0.1,0,,,,,1000\n"
                               ",\xff\xfe plain,,0,,,,,1000\n";
    CU_ASSERT_EQUAL(len, sizeof(want) - 1);
    CU_ASSERT(len == sizeof(want) - 1 && memcmp(got, want, len) == 0);
    if (len != sizeof(want) - 1 || memcmp(got, want, len) != 0) {
        fwrite(got, 1, len, stderr);
    }
    free(got);

    /* Default columns: key,value; no header. */
    rm_rf(dir);
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    got = sink_one_batch(dir, recs, 2, &len, "format", "csv", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_STRING_EQUAL(got, "\"k,1\",\"a,b\"\n,\"say \"\"hi\"\"\"\n");
    free(got);
    rm_rf(dir);
}

static void test_file_sink_json_escapes_and_keeps_every_byte(void)
{
    char dir[64];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    static const sl_record_meta meta = {
        .source = "src", .topic = "events", .partition = 3, .offset = 42};
    static const char v1[] = "tab\there \"q\" back\\slash nl\n cr\r ctl\x01\x1f del\x7f nul\0 "
                             "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    sl_record recs[] = {
        {.key = "k",
         .key_len = 1,
         .value = v1,
         .value_len = sizeof(v1) - 1,
         .num_type = SL_NUM_INT,
         .num.i = 7,
         .ts = 1234,
         .meta = &meta},
        {.value = "\xff\xfe\0a", .value_len = 4},
        {.key = "\xc0\xaf", .key_len = 2, .value = "\xed\xa0\x80", .value_len = 3},
        {.key = "t", .key_len = 1, .value = "\xe2\x82", .value_len = 2},
        {.key = "d", .key_len = 1, .num_type = SL_NUM_DOUBLE, .num.d = 0.1},
        {.key = "nan", .key_len = 3, .num_type = SL_NUM_DOUBLE, .num.d = NAN},
    };
    size_t len = 0;
    char *got =
        sink_one_batch(dir, recs, sizeof(recs) / sizeof(recs[0]), &len, "format", "json", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    static const char want[] =
        "{\"key\":\"k\",\"value\":\"tab\\there \\\"q\\\" back\\\\slash nl\\n cr\\r "
        "ctl\\u0001\\u001f del\\u007f nul\\u0000 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
        "\"num\":7,\"ts\":1234,\"source\":\"src\",\"topic\":\"events\",\"partition\":3,"
        "\"offset\":42}\n"
        "{\"key\":null,\"value\":\"//4AYQ==\",\"value_encoding\":\"base64\",\"ts\":0,"
        "\"source\":null,\"topic\":null,\"partition\":null,\"offset\":null}\n"
        "{\"key\":\"wK8=\",\"key_encoding\":\"base64\",\"value\":\"7aCA\","
        "\"value_encoding\":\"base64\",\"ts\":0,\"source\":null,\"topic\":null,"
        "\"partition\":null,\"offset\":null}\n"
        "{\"key\":\"t\",\"value\":\"4oI=\",\"value_encoding\":\"base64\",\"ts\":0,"
        "\"source\":null,\"topic\":null,\"partition\":null,\"offset\":null}\n"
        "{\"key\":\"d\",\"value\":\"\",\"num\":0.1,\"ts\":0,\"source\":null,\"topic\":null,"
        "\"partition\":null,\"offset\":null}\n"
        "{\"key\":\"nan\",\"value\":\"\",\"num\":null,\"ts\":0,\"source\":null,\"topic\":null,"
        "\"partition\":null,\"offset\":null}\n";
    CU_ASSERT_STRING_EQUAL(got, want);
    /* Every line is JSON, and the first value reads back as the bytes sent. */
    char *save = NULL;
    size_t lines = 0;
    for (char *line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &jerr);
        CU_ASSERT_PTR_NOT_NULL(j);
        if (j && lines == 0) {
            json_t *v = json_object_get(j, "value");
            CU_ASSERT_EQUAL(json_string_length(v), sizeof(v1) - 1);
            CU_ASSERT(memcmp(json_string_value(v), v1, sizeof(v1) - 1) == 0);
        }
        json_decref(j);
        lines++;
    }
    CU_ASSERT_EQUAL(lines, 6);
    free(got);
    rm_rf(dir);
}

static void test_file_sink_json_value_json_embeds_documents(void)
{
    char dir[64];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    sl_record recs[] = {
        {.value = "{\"a\": 1,\n \"b\": [true]}", .value_len = 22},
        {.value = "not json", .value_len = 8},
        {.value = "\"quoted\"", .value_len = 8},
        {.value = "{\"a\":1} trailing", .value_len = 16},
        {.value = "12345678901234567890123", .value_len = 23},
    };
    size_t len = 0;
    char *got = sink_one_batch(dir, recs, sizeof(recs) / sizeof(recs[0]), &len, "format", "json",
                               "value_json", "true", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    static const char tail[] = ",\"ts\":0,\"source\":null,\"topic\":null,\"partition\":null,"
                               "\"offset\":null}\n";
    char want[2048];
    snprintf(want, sizeof(want),
             "{\"key\":null,\"value\":{\"a\": 1,  \"b\": [true]},\"value_encoding\":\"json\"%s"
             "{\"key\":null,\"value\":\"not json\"%s"
             "{\"key\":null,\"value\":\"quoted\",\"value_encoding\":\"json\"%s"
             "{\"key\":null,\"value\":\"{\\\"a\\\":1} trailing\"%s"
             "{\"key\":null,\"value\":\"12345678901234567890123\"%s",
             tail, tail, tail, tail, tail);
    CU_ASSERT_STRING_EQUAL(got, want);
    free(got);
    rm_rf(dir);
}

/* A direct source whose batches have a definition, as Kafka's offset ranges. */
typedef struct ranged_src {
    int64_t next;
} ranged_src;

static int ranged_next_batch(void *data, int64_t t, sl_batch_input *in)
{
    ranged_src *r = data;
    sl_record recs[5];
    static const sl_record_meta meta = {.source = "ranged", .topic = "tp", .partition = 0};
    sl_record_meta metas[5];
    for (int i = 0; i < 5; i++) {
        metas[i] = meta;
        metas[i].offset = r->next + i;
        recs[i] = (sl_record){.value = "v", .value_len = 1, .meta = &metas[i]};
    }
    char def[96];
    snprintf(def, sizeof(def), "{\"tp\":{\"0\":[%lld,%lld]}}", (long long)r->next,
             (long long)r->next + 5);
    r->next += 5;
    sl_batch_input_set_definition(in, def);
    int rc = sl_batch_input_add_records(in, recs, 3);
    return rc == SL_OK ? sl_batch_input_add_records(in, recs + 3, 2) : rc;
}

static const sl_option ranged_options[] = {{0}};

static const sl_connector ranged_connector = {
    .name = "ranged",
    .flags = SL_SOURCE,
    .options = ranged_options,
    .ctx_size = sizeof(ranged_src),
    .next_batch = ranged_next_batch,
};

static void test_file_sink_manifest_lists_parts_and_inputs(void)
{
    char dir[64], prefix[160], path[256], err[256];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    snprintf(prefix, sizeof(prefix), "%s/m", dir);
    sl_context *ctx = ts_context(1000, 2);
    sl_stream *s =
        sl_context_add_source_connector(ctx, &ranged_connector, "kin", NULL, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    sl_options *o = sl_options_new();
    sl_options_set(o, "prefix", prefix);
    sl_options_set(o, "format", "json");
    CU_ASSERT_EQUAL_FATAL(sl_stream_to(s, "file", "saved", o, err, sizeof(err)), SL_OK);
    sl_options_destroy(o);
    sl_batch_info info;
    CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, 1000, &info), SL_OK);
    CU_ASSERT_EQUAL_FATAL(sl__context_step(ctx, 2000, &info), SL_OK);
    sl_context_destroy(ctx);

    for (int b = 0; b < 2; b++) {
        int64_t t = 1000 * (b + 1);
        snprintf(path, sizeof(path), "%s-%lld/_manifest.json", prefix, (long long)t);
        json_error_t jerr;
        json_t *m = json_load_file(path, 0, &jerr);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(m, "pipeline")), "test");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(m, "sink")), "saved");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(m, "batch_time")), t);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(m, "format")), "json");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(m, "records")), 5);
        json_t *parts = json_object_get(m, "parts");
        CU_ASSERT_EQUAL_FATAL(json_array_size(parts), 2);
        static const int counts[2] = {3, 2};
        for (size_t p = 0; p < 2; p++) {
            json_t *part = json_array_get(parts, p);
            char name[16];
            snprintf(name, sizeof(name), "part-%05zu", p);
            CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(part, "name")), name);
            CU_ASSERT_EQUAL(json_integer_value(json_object_get(part, "records")), counts[p]);
            snprintf(path, sizeof(path), "%s-%lld/%s", prefix, (long long)t, name);
            struct stat st;
            CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
            CU_ASSERT_EQUAL(json_integer_value(json_object_get(part, "bytes")), st.st_size);
        }
        /* The input: the source's definition of this batch, its offset range. */
        json_t *range = json_object_get(
            json_object_get(json_object_get(json_object_get(m, "inputs"), "kin"), "tp"), "0");
        CU_ASSERT_EQUAL(json_array_size(range), 2);
        CU_ASSERT_EQUAL(json_integer_value(json_array_get(range, 0)), 5 * b);
        CU_ASSERT_EQUAL(json_integer_value(json_array_get(range, 1)), 5 * b + 5);
        json_decref(m);
    }
    /* The records carry the offsets of that range. */
    size_t len;
    snprintf(path, sizeof(path), "%s-2000/part-00001", prefix);
    char *got = read_all(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"topic\":\"tp\",\"partition\":0,\"offset\":8}\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"offset\":9}\n"));
    free(got);
    rm_rf(dir);
}

/* manifest: false leaves the part files alone, as before manifests existed. */
static void test_file_sink_manifest_can_be_turned_off(void)
{
    char dir[64], path[256], lines[1024], names[512];
    CU_ASSERT_FATAL(make_dir(dir, sizeof(dir)) != NULL);
    sl_record recs[] = {{.value = "plain", .value_len = 5}};
    size_t len;
    char *got = sink_one_batch(dir, recs, 1, &len, "manifest", "false", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_STRING_EQUAL(got, "plain\n");
    free(got);
    snprintf(path, sizeof(path), "%s/out-1000", dir);
    read_dir_lines(path, lines, sizeof(lines), names, sizeof(names));
    CU_ASSERT_STRING_EQUAL(names, "part-00000");
    rm_rf(dir);
}

static void test_file_sink_format_options_are_checked(void)
{
    static const char *const bad[][5] = {
        {"format", "json", "columns", "key", "columns"},
        {"format", "csv", "columns", "key,bogus", "bogus"},
        {"format", "csv", "columns", "key,,value", "columns"},
        {"format", "text", "value_json", "true", "value_json"},
        {"format", "json", "header", "true", "header"},
        {"format", "xml", NULL, NULL, "format"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        sl_context *ctx = ts_context(1000, 1);
        ts_source *src;
        sl_stream *s = ts_source_add(ctx, "src", &src);
        sl_options *o = sl_options_new();
        sl_options_set(o, "prefix", "/tmp/x");
        sl_options_set(o, bad[i][0], bad[i][1]);
        if (bad[i][2]) {
            sl_options_set(o, bad[i][2], bad[i][3]);
        }
        CU_ASSERT(sl_stream_to(s, "file", "out", o, err, sizeof(err)) == SL_ERR_INVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i][4]));
        sl_options_destroy(o);
        sl_context_destroy(ctx);
    }
}

void sl_test_register(void)
{
    SL_SUITE("file_source", SL_TEST(file_source_reads_a_moved_in_file_once),
             SL_TEST(file_source_skips_files_present_at_start),
             SL_TEST(file_source_include_existing_takes_old_files),
             SL_TEST(file_source_missing_directory_is_refused));
    SL_SUITE("file_sink", SL_TEST(file_sink_writes_one_directory_per_batch),
             SL_TEST(file_sink_skips_a_batch_written_before),
             SL_TEST(file_sink_retries_after_an_io_error),
             SL_TEST(file_sink_bad_options_are_refused), SL_TEST(file_sink_csv_quotes_fields),
             SL_TEST(file_sink_json_escapes_and_keeps_every_byte),
             SL_TEST(file_sink_json_value_json_embeds_documents),
             SL_TEST(file_sink_manifest_lists_parts_and_inputs),
             SL_TEST(file_sink_manifest_can_be_turned_off),
             SL_TEST(file_sink_format_options_are_checked));
}

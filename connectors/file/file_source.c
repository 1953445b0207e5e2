/* file_source.c -- the file source, Spark's textFileStream: every poll_interval, list the
 * directory (not recursively) and read, once and line by line, each regular file whose name
 * does not start with "." and whose modification time is in (now - remember, now]. Files
 * must be moved in whole (rename); a file that is later replaced (new mtime or size) is a
 * new file. Files taken are remembered by name, mtime and size while their mtime is within
 * remember, so memory stays bounded. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "sl_registry.h"

#define FILE_READ_BUFSIZE (64 * 1024)
#define FILE_POLL_STEP_MS 100
#define FILE_MIN_BUCKETS  64

/* A file found by a poll that is to be read. */
typedef struct file_candidate {
    char *name;
    int64_t mtime;
    int64_t size;
} file_candidate;

static bool file_stopping(sl_file_source_ctx *ctx)
{
    return atomic_load(&ctx->stop) || sl_instance_stopping(ctx->ins);
}

static int64_t file_mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* ==== Files seen ==== */

static size_t file_hash(const char *s)
{
    size_t h = 14695981039346656037u; /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    }
    return h;
}

static bool file_seen_has(const sl_file_source_ctx *ctx, const char *name, int64_t mtime,
                          int64_t size)
{
    if (ctx->nbuckets == 0) {
        return false;
    }
    for (sl_file_seen *e = ctx->seen[file_hash(name) % ctx->nbuckets]; e; e = e->next) {
        if (e->mtime == mtime && e->size == size && strcmp(e->name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Resizes the table to nbuckets chains. Returns SL_OK or SL_ERR_NOMEM (table unchanged). */
static int file_seen_resize(sl_file_source_ctx *ctx, size_t nbuckets)
{
    sl_file_seen **t = calloc(nbuckets, sizeof(*t));
    if (!t) {
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < ctx->nbuckets; i++) {
        sl_file_seen *e = ctx->seen[i];
        while (e) {
            sl_file_seen *next = e->next;
            size_t b = file_hash(e->name) % nbuckets;
            e->next = t[b];
            t[b] = e;
            e = next;
        }
    }
    free(ctx->seen);
    ctx->seen = t;
    ctx->nbuckets = nbuckets;
    return SL_OK;
}

static int file_seen_add(sl_file_source_ctx *ctx, const char *name, int64_t mtime, int64_t size)
{
    if (ctx->nseen >= ctx->nbuckets &&
        file_seen_resize(ctx, ctx->nbuckets ? ctx->nbuckets * 2 : FILE_MIN_BUCKETS) != SL_OK &&
        ctx->nbuckets == 0) {
        return SL_ERR_NOMEM;
    }
    size_t len = strlen(name);
    sl_file_seen *e = malloc(sizeof(*e) + len + 1);
    if (!e) {
        return SL_ERR_NOMEM;
    }
    e->mtime = mtime;
    e->size = size;
    memcpy(e->name, name, len + 1);
    size_t b = file_hash(name) % ctx->nbuckets;
    e->next = ctx->seen[b];
    ctx->seen[b] = e;
    ctx->nseen++;
    return SL_OK;
}

/* Forgets files whose mtime is at or before oldest: they are out of the window anyway. */
static void file_seen_expire(sl_file_source_ctx *ctx, int64_t oldest)
{
    for (size_t i = 0; i < ctx->nbuckets; i++) {
        sl_file_seen **pp = &ctx->seen[i];
        while (*pp) {
            sl_file_seen *e = *pp;
            if (e->mtime <= oldest) {
                *pp = e->next;
                free(e);
                ctx->nseen--;
            } else {
                pp = &e->next;
            }
        }
    }
    if (ctx->nbuckets > FILE_MIN_BUCKETS && ctx->nseen < ctx->nbuckets / 8) {
        file_seen_resize(ctx, ctx->nbuckets / 4); /* on failure the big table stays */
    }
}

static void file_seen_clear(sl_file_source_ctx *ctx)
{
    file_seen_expire(ctx, INT64_MAX);
    free(ctx->seen);
    ctx->seen = NULL;
    ctx->nbuckets = 0;
}

/* ==== Polling ==== */

/* Reads the file name of the directory line by line and pushes its records. */
static void file_read(sl_file_source_ctx *ctx, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", ctx->path, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sl_instance_error(ctx->ins, "cannot read %s: %s", path, strerror(errno));
        return;
    }
    sl_lines lines;
    sl__lines_init(&lines, ctx->ins, name);
    for (;;) {
        if (file_stopping(ctx)) {
            sl_instance_log(ctx->ins, SL_LOG_WARN, "stopping: %s read up to line %lld only", path,
                            (long long)lines.line_no);
            break;
        }
        ssize_t n = read(fd, ctx->rbuf, ctx->rbuf_size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            sl_instance_error(ctx->ins, "cannot read %s after line %lld: %s", path,
                              (long long)lines.line_no, strerror(errno));
            break;
        }
        if (n == 0) {
            break;
        }
        if (sl__lines_feed(&lines, ctx->batch, ctx->rbuf, (size_t)n, sl__now_ms()) ==
            SL_ERR_NOMEM) {
            sl_instance_error(ctx->ins, "out of memory reading %s", path);
            break;
        }
    }
    sl__lines_finish(&lines, ctx->batch, sl__now_ms());
    sl_instance_log(ctx->ins, SL_LOG_DEBUG, "read %s: %lld lines", path, (long long)lines.line_no);
    sl__lines_free(&lines);
    close(fd);
}

static int file_candidate_cmp(const void *a, const void *b)
{
    const file_candidate *x = a, *y = b;
    if (x->mtime != y->mtime) {
        return x->mtime < y->mtime ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

/* Lists the directory and reads each new file in the window, oldest first. take_all: every
 * regular file qualifies whatever its age (include_existing at the first poll). read:
 * false only marks the files seen (the files present at start, include_existing off). */
static void file_poll(sl_file_source_ctx *ctx, bool take_all, bool read)
{
    int64_t now = sl__now_ms();
    DIR *d = opendir(ctx->path);
    if (!d) {
        if (!ctx->dir_failed) {
            sl_instance_error(ctx->ins, "cannot list %s: %s", ctx->path, strerror(errno));
            sl_instance_set_active(ctx->ins, false);
            ctx->dir_failed = true;
        }
        return;
    }
    if (ctx->dir_failed) {
        sl_instance_log(ctx->ins, SL_LOG_INFO, "listing %s works again", ctx->path);
        sl_instance_set_active(ctx->ins, true);
        ctx->dir_failed = false;
    }

    file_candidate *cands = NULL;
    size_t ncands = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.') {
            continue;
        }
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0) {
            if (errno != ENOENT) {
                sl_instance_error(ctx->ins, "cannot stat %s/%s: %s", ctx->path, de->d_name,
                                  strerror(errno));
            }
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            continue;
        }
        int64_t mtime = file_mtime_ms(&st);
        bool in_window = mtime > now - ctx->remember && (mtime <= now || !read);
        if (!(take_all || in_window) || file_seen_has(ctx, de->d_name, mtime, st.st_size)) {
            continue;
        }
        if (ncands == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            file_candidate *c = realloc(cands, ncap * sizeof(*c));
            if (!c) {
                break; /* the others are found at the next poll */
            }
            cands = c;
            cap = ncap;
        }
        cands[ncands].name = strdup(de->d_name);
        if (!cands[ncands].name) {
            break;
        }
        cands[ncands].mtime = mtime;
        cands[ncands].size = st.st_size;
        ncands++;
    }
    closedir(d);

    if (ncands > 1) {
        qsort(cands, ncands, sizeof(*cands), file_candidate_cmp);
    }
    size_t i = 0;
    for (; i < ncands && !(read && file_stopping(ctx)); i++) {
        if (read) {
            sl_instance_log(ctx->ins, SL_LOG_DEBUG, "new file %s", cands[i].name);
            file_read(ctx, cands[i].name);
        }
        if (file_seen_add(ctx, cands[i].name, cands[i].mtime, cands[i].size) != SL_OK) {
            sl_instance_error(ctx->ins, "out of memory remembering %s", cands[i].name);
        }
        free(cands[i].name);
    }
    for (; i < ncands; i++) {
        free(cands[i].name);
    }
    free(cands);
    file_seen_expire(ctx, now - ctx->remember);
}

static void *file_thread(void *arg)
{
    sl_file_source_ctx *ctx = arg;
    sl_instance_set_active(ctx->ins, true);
    while (!file_stopping(ctx)) {
        file_poll(ctx, ctx->first_poll, true);
        ctx->first_poll = false;
        int64_t until = sl__mono_ms() + ctx->poll_interval;
        for (int64_t left; (left = until - sl__mono_ms()) > 0 && !file_stopping(ctx);) {
            poll(NULL, 0, (int)(left < FILE_POLL_STEP_MS ? left : FILE_POLL_STEP_MS));
        }
    }
    sl_instance_set_active(ctx->ins, false);
    return NULL;
}

/* ==== Callbacks ==== */

static int file_source_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_file_source_ctx *ctx = data;
    ctx->ins = ins;
    atomic_init(&ctx->stop, false);
    int rc = sl__file_source_config_check(ctx, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    ctx->rbuf_size = FILE_READ_BUFSIZE;
    ctx->rbuf = malloc(ctx->rbuf_size);
    ctx->batch = sl__lines_batch_new(ins);
    if (!ctx->rbuf || !ctx->batch) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

/* Notes the files present now (unless include_existing), then starts the thread. */
static int file_source_start(void *data, char *errstr, size_t errsize)
{
    sl_file_source_ctx *ctx = data;
    if (ctx->started) {
        return SL_ERR_STATE;
    }
    if (ctx->include_existing) {
        ctx->first_poll = true;
    } else {
        file_poll(ctx, false, false);
    }
    atomic_store(&ctx->stop, false);
    int e = pthread_create(&ctx->thread, NULL, file_thread, ctx);
    if (e != 0) {
        sl_instance_error(ctx->ins, "cannot start the receiver thread: %s", strerror(e));
        return SL_ERR_IO;
    }
    ctx->started = true;
    return SL_OK;
}

static void file_source_stop(void *data)
{
    sl_file_source_ctx *ctx = data;
    atomic_store(&ctx->stop, true);
    if (ctx->started) {
        pthread_join(ctx->thread, NULL);
        ctx->started = false;
    }
}

static void file_source_destroy(void *data)
{
    sl_file_source_ctx *ctx = data;
    if (!ctx->ins) {
        return; /* init never ran */
    }
    file_source_stop(ctx);
    file_seen_clear(ctx);
    sl__lines_batch_destroy(ctx->batch);
    ctx->batch = NULL;
    free(ctx->rbuf);
    ctx->rbuf = NULL;
}

/* ==== Registration ==== */

static const sl_option file_source_options[] = {
    {.name = "path",
     .type = SL_OPT_STR,
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(sl_file_source_ctx, path),
     .doc = "directory to watch (not recursive); move files in whole, with rename"},
    {.name = "remember",
     .type = SL_OPT_DURATION,
     .def = "60s",
     .min = 10,
     .max = 7 * 24 * 3600000.0,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_file_source_ctx, remember),
     .doc = "take files modified within this long before each poll"},
    {.name = "poll_interval",
     .type = SL_OPT_DURATION,
     .def = "200ms",
     .min = 10,
     .max = 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_file_source_ctx, poll_interval),
     .doc = "how often the directory is listed"},
    {.name = "include_existing",
     .type = SL_OPT_BOOL,
     .def = "false",
     .offset = offsetof(sl_file_source_ctx, include_existing),
     .doc = "also read the files present at start, whatever their age "
            "(Spark's newFilesOnly=false)"},
    {0},
};

const sl_connector sl__connector_file_source = {
    .name = "file",
    .description = "Lines of the new files of a directory, each file read once "
                   "(Spark's textFileStream)",
    .flags = SL_SOURCE | SL_RECEIVER,
    .options = file_source_options,
    .ctx_size = sizeof(sl_file_source_ctx),
    .init = file_source_init,
    .start = file_source_start,
    .stop = file_source_stop,
    .destroy = file_source_destroy,
};

/* Spark's textFileStream: a file source watching a directory. */
sl_stream *sl_text_file_stream(sl_context *ctx, const char *directory)
{
    return sl__simple_source(ctx, &sl__connector_file_source, "files", "path", directory, NULL,
                             NULL);
}

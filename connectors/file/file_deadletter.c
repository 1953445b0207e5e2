/* file_deadletter.c -- the file dead-letter target (errors.dead_letter.type: file): each
 * record a sink rejected becomes a JSON line (sl__dl_json_line) appended to
 * <path>/<pipeline>-<sink>.jsonl; a write returns once the lines are fsync'ed. A line that a
 * crash left half written is cut when the file is opened again. Provided by the file sink
 * connector (its dead_letter field). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "sl_deadletter.h"

/* The target's options. */
typedef struct dl_file_conf {
    const char *path;
} dl_file_conf;

typedef struct dl_file {
    char *dir;
    char *path;
    char desc[PATH_MAX + 8];
    int fd; /* -1 until the first write, and after a failed one */
    sl_buf buf;
} dl_file;

/* A name of the file: the pipeline's and the sink's names with '/' replaced. */
static void dl_file_name(char *out, size_t size, const char *pipeline, const char *sink)
{
    snprintf(out, size, "%s-%s.jsonl", pipeline, sink);
    for (char *c = out; *c; c++) {
        if (*c == '/') {
            *c = '_';
        }
    }
}

static void *dl_file_open(sl_instance *ins, const void *cf, char *errstr, size_t errsize)
{
    const dl_file_conf *conf = cf;
    if (!conf->path || !*conf->path) {
        snprintf(errstr, errsize,
                 "errors.dead_letter.path: give the directory of the dead-letter file for "
                 "errors.dead_letter.type: file");
        return NULL;
    }
    dl_file *f = calloc(1, sizeof(*f));
    char name[512];
    dl_file_name(name, sizeof(name), sl_context_name(sl_instance_context(ins)),
                 sl_instance_name(ins));
    if (f) {
        f->fd = -1;
        f->dir = strdup(conf->path);
        f->path = malloc(strlen(conf->path) + strlen(name) + 2);
    }
    if (!f || !f->dir || !f->path) {
        if (f) {
            free(f->dir);
            free(f->path);
            free(f);
        }
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    sprintf(f->path, "%s/%s", conf->path, name);
    snprintf(f->desc, sizeof(f->desc), "file %s", f->path);
    return f;
}

/* Cuts a line that a crash left half written (it belongs to a batch that did not commit:
 * it is written again whole). Returns 0 or -1 with errno. */
static int dl_file_trim(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -1;
    }
    off_t end = st.st_size;
    char chunk[4096];
    while (end > 0) {
        size_t n = (size_t)SL_MIN((off_t)sizeof(chunk), end);
        if (pread(fd, chunk, n, end - (off_t)n) != (ssize_t)n) {
            return -1;
        }
        for (size_t i = n; i > 0; i--) {
            if (chunk[i - 1] == '\n') {
                off_t keep = end - (off_t)n + (off_t)i;
                return keep == st.st_size ? 0 : ftruncate(fd, keep);
            }
        }
        end -= (off_t)n;
    }
    return st.st_size ? ftruncate(fd, 0) : 0;
}

static int dl_file_ensure(dl_file *f, char *errstr, size_t errsize)
{
    if (f->fd >= 0) {
        return SL_OK;
    }
    if (sl__mkdirs(f->dir, 0777) != 0) {
        snprintf(errstr, errsize, "cannot create directory %s: %s", f->dir, strerror(errno));
        return SL_ERR_IO;
    }
    bool existed = access(f->path, F_OK) == 0;
    f->fd = open(f->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        snprintf(errstr, errsize, "cannot open %s: %s", f->path, strerror(errno));
        return SL_ERR_IO;
    }
    if (dl_file_trim(f->fd) != 0) {
        snprintf(errstr, errsize, "cannot read %s: %s", f->path, strerror(errno));
        close(f->fd);
        f->fd = -1;
        return SL_ERR_IO;
    }
    if (!existed) {
        sl__fsync_dir(f->dir); /* the new name is durable too */
    }
    return SL_OK;
}

static int dl_file_write(void *t, const sl_dl_batch *b, const sl_dl_entry *e, size_t n,
                         char *errstr, size_t errsize)
{
    dl_file *f = t;
    sl__buf_reset(&f->buf);
    for (size_t i = 0; i < n; i++) {
        if (sl__dl_json_line(&f->buf, b, &e[i]) != SL_OK) {
            snprintf(errstr, errsize, "out of memory");
            return SL_ERR_NOMEM;
        }
    }
    int rc = dl_file_ensure(f, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    off_t before = lseek(f->fd, 0, SEEK_END);
    size_t done = 0;
    while (done < f->buf.len) {
        ssize_t w = write(f->fd, f->buf.p + done, f->buf.len - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break;
        }
        done += (size_t)w;
    }
    if (done < f->buf.len || fsync(f->fd) != 0) {
        int e2 = done < f->buf.len && errno == 0 ? EIO : errno;
        snprintf(errstr, errsize, "cannot write %s: %s", f->path, strerror(e2));
        if (before >= 0 && ftruncate(f->fd, before) != 0) {
            /* dl_file_trim cuts the partial line when the file is opened again */
        }
        close(f->fd);
        f->fd = -1;
        return SL_ERR_IO;
    }
    return SL_OK;
}

static const char *dl_file_describe(void *t)
{
    return ((dl_file *)t)->desc;
}

static void dl_file_close(void *t)
{
    dl_file *f = t;
    if (!f) {
        return;
    }
    if (f->fd >= 0) {
        close(f->fd);
    }
    sl__buf_free(&f->buf);
    free(f->dir);
    free(f->path);
    free(f);
}

static const sl_option dl_file_options[] = {
    {.name = "errors.dead_letter.path",
     .type = SL_OPT_STR,
     .offset = offsetof(dl_file_conf, path),
     .doc = "file: the directory of the dead-letter file, created if missing; a file has one "
            "writer: instances of a scaled-out pipeline need a directory each (e.g. "
            "/var/lib/sluice/dead/${HOSTNAME})"},
    {0},
};

const sl_dl_target sl__file_dl_target = {
    .name = "file",
    .doc = "JSON lines appended to <path>/<pipeline>-<sink>.jsonl",
    .options = dl_file_options,
    .conf_size = sizeof(dl_file_conf),
    .open = dl_file_open,
    .write = dl_file_write,
    .describe = dl_file_describe,
    .close = dl_file_close,
};

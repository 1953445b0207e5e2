/* file_sink.c -- the file sink, Spark's saveAsTextFiles: each batch becomes the directory
 * <prefix>-<batch ms>[.<suffix>] holding one part-NNNNN file per partition, one line per
 * record (text, JSON lines or CSV: file_format.c), and _manifest.json: the batch's parts and
 * its input (per source, e.g. Kafka offset ranges). The directory is written under a hidden
 * temporary name, every file and the directory fsynced, and renamed into place, so a reader
 * never sees half a batch, and a batch whose directory exists is skipped (a replay after a
 * restart): exactly one copy of each batch. */
#include <dirent.h>
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
#include "sl_util.h"
#include "sl_record_text.h"
#include "sl_registry.h"

#define FILE_SINK_BUFSIZE  (64 * 1024)
#define FILE_SINK_MANIFEST "_manifest.json"

/* ==== Helpers ==== */

/* Removes a temporary directory of ours and the files in it (it has no subdirectory). */
static void file_remove_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    int fd = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            unlinkat(fd, de->d_name, 0);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* Writes partition p of out to path in the sink's format, fsynced; *info gets its records
 * and bytes. Returns 0 or -1 with errno set. */
static int file_write_part(const char *path, const sl_file_sink_ctx *ctx,
                           const sl_batch_output *out, size_t p, sl_file_part_info *info)
{
    size_t n = 0;
    const sl_record *recs = sl_dataset_partition(out->ds, p, &n);
    FILE *f = fopen(path, "we");
    if (!f) {
        return -1;
    }
    setvbuf(f, NULL, _IOFBF, FILE_SINK_BUFSIZE);
    int rc = sl__file_part_begin(f, ctx);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = sl__file_record_write(f, ctx, &recs[i], out->batch_time);
    }
    if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0)) {
        rc = -1;
    }
    off_t bytes = rc == 0 ? ftello(f) : -1;
    info->records = n;
    info->bytes = bytes > 0 ? (uint64_t)bytes : 0;
    int e = errno;
    if (fclose(f) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    errno = e;
    return rc;
}

/* Writes bytes to path, fsynced. Returns 0 or -1 with errno set. */
static int file_write_bytes(const char *path, const char *bytes, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        return -1;
    }
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0;) {
        ssize_t w = write(fd, bytes + off, len - off);
        if (w < 0 && errno != EINTR) {
            rc = -1;
        } else if (w > 0) {
            off += (size_t)w;
        }
    }
    if (rc == 0 && fsync(fd) != 0) {
        rc = -1;
    }
    int e = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    errno = e;
    return rc;
}

/* Writes the batch's part files and, with the manifest option, _manifest.json into the
 * directory dir. Returns 0, or -1 with errno set and what naming the file that failed. */
static int file_write_batch(const sl_file_sink_ctx *ctx, const sl_batch_output *out,
                            const char *dir, char *what, size_t whatsize)
{
    size_t nparts = out->ds ? sl_dataset_partitions(out->ds) : 0;
    sl_file_part_info *parts = calloc(nparts + 1, sizeof(*parts));
    char *manifest = NULL;
    int rc = -1;
    snprintf(what, whatsize, "%s", dir);
    if (!parts) {
        errno = ENOMEM;
        goto done;
    }
    for (size_t p = 0; p < nparts; p++) {
        snprintf(parts[p].name, sizeof(parts[p].name), "part-%05zu", p);
        snprintf(what, whatsize, "%s/%s", dir, parts[p].name);
        if (file_write_part(what, ctx, out, p, &parts[p]) != 0) {
            goto done;
        }
    }
    if (ctx->manifest) {
        snprintf(what, whatsize, "%s/" FILE_SINK_MANIFEST, dir);
        manifest = sl__file_manifest(ctx, out, parts, nparts);
        if (!manifest) {
            errno = ENOMEM;
            goto done;
        }
        if (file_write_bytes(what, manifest, strlen(manifest)) != 0) {
            goto done;
        }
    }
    rc = 0;
done:;
    int e = errno;
    free(manifest);
    free(parts);
    errno = e;
    return rc;
}

/* ==== Callbacks ==== */

static int file_sink_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_file_sink_ctx *ctx = data;
    ctx->ins = ins;
    return sl__file_sink_config_check(ctx, errstr, errsize);
}

/* Writes one batch: see the file comment. Runs on the sink's output thread. Returns SL_OK
 * (also when the batch was there already) or SL_ERR_RETRY after an I/O error, reported. */
static int file_sink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    sl_file_sink_ctx *ctx = data;
    char final[PATH_MAX], parent[PATH_MAX], tmp[PATH_MAX], what[PATH_MAX + 32];
    const char *suffix = ctx->suffix && ctx->suffix[0] ? ctx->suffix : NULL;
    struct stat st;

    int len = snprintf(final, sizeof(final), "%s-%lld%s%s", ctx->prefix, (long long)out->batch_time,
                       suffix ? "." : "", suffix ? suffix : "");
    if (len < 0 || (size_t)len >= sizeof(final)) {
        sl_instance_error(ctx->ins, "%s-%lld: %s", ctx->prefix, (long long)out->batch_time,
                          strerror(ENAMETOOLONG));
        return SL_ERR_INVAL;
    }
    if (lstat(final, &st) == 0) {
        sl_instance_log(ctx->ins, SL_LOG_INFO, "%s exists (batch %lld written before): skipped",
                        final, (long long)out->batch_time);
        return SL_OK;
    }
    if (errno != ENOENT) {
        sl_instance_error(ctx->ins, "%s: %s", final, strerror(errno));
        return SL_ERR_RETRY;
    }

    /* The temporary directory is a hidden sibling, so that the rename stays on one file
     * system and readers that skip dot-files (our file source, Spark's) ignore it. */
    const char *slash = strrchr(final, '/');
    const char *base = slash ? slash + 1 : final;
    if (!slash) {
        snprintf(parent, sizeof(parent), ".");
    } else if (slash == final) {
        snprintf(parent, sizeof(parent), "/");
    } else {
        snprintf(parent, sizeof(parent), "%.*s", (int)(slash - final), final);
    }
    len = snprintf(tmp, sizeof(tmp), "%s/.%s._tmp-%ld", parent, base, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof(tmp)) {
        sl_instance_error(ctx->ins, "%s: %s", final, strerror(ENAMETOOLONG));
        return SL_ERR_INVAL;
    }
    if (sl__mkdirs(parent, 0777) != 0) {
        sl_instance_error(ctx->ins, "cannot create directory %s: %s", parent, strerror(errno));
        return SL_ERR_RETRY;
    }
    file_remove_tmp(tmp); /* left by an attempt that failed */
    if (mkdir(tmp, 0777) != 0) {
        sl_instance_error(ctx->ins, "cannot create directory %s: %s", tmp, strerror(errno));
        return SL_ERR_RETRY;
    }

    size_t nparts = out->ds ? sl_dataset_partitions(out->ds) : 0;
    if (file_write_batch(ctx, out, tmp, what, sizeof(what)) != 0) {
        sl_instance_error(ctx->ins, "cannot write %s: %s", what, strerror(errno));
        file_remove_tmp(tmp);
        return SL_ERR_RETRY;
    }
    if (sl__fsync_dir(tmp) != 0) {
        sl_instance_error(ctx->ins, "cannot sync %s: %s", tmp, strerror(errno));
        file_remove_tmp(tmp);
        return SL_ERR_RETRY;
    }
    if (rename(tmp, final) != 0) {
        int e = errno;
        file_remove_tmp(tmp);
        if (e == EEXIST || e == ENOTEMPTY) {
            sl_instance_log(ctx->ins, SL_LOG_INFO, "%s appeared meanwhile: skipped", final);
            return SL_OK;
        }
        sl_instance_error(ctx->ins, "cannot rename %s to %s: %s", tmp, final, strerror(e));
        return SL_ERR_RETRY;
    }
    if (sl__fsync_dir(parent) != 0) {
        /* The batch is complete and visible; only its durability across a crash is in
         * doubt, and a replay would skip it. Report, do not retry. */
        sl_instance_log(ctx->ins, SL_LOG_WARN, "cannot sync %s: %s", parent, strerror(errno));
    }
    sl_instance_log(ctx->ins, SL_LOG_DEBUG, "wrote %s (%zu partitions)", final, nparts);
    return SL_OK;
}

static void file_sink_destroy(void *data)
{
    (void)data; /* nothing allocated */
}

/* ==== Registration ==== */

static const sl_option file_sink_options[] = {
    {.name = "prefix",
     .type = SL_OPT_STR,
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(sl_file_sink_ctx, prefix),
     .doc = "start of each batch's directory name, directories included: "
            "<prefix>-<batch ms>[.<suffix>]"},
    {.name = "suffix",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_file_sink_ctx, suffix),
     .doc = "appended to each directory name after a '.'"},
    {.name = "format",
     .type = SL_OPT_ENUM,
     .def = "text",
     .choices = "text|json|csv",
     .offset = offsetof(sl_file_sink_ctx, fmt),
     .doc = "text: one line per record, \"(key,value)\" or \"value\" as print() shows it; "
            "json: one object per line, {key, value, num (typed value, when set), ts, source, "
            "topic, partition, offset}, bytes that are not UTF-8 in base64 with "
            "\"<field>_encoding\":\"base64\"; csv: RFC 4180 fields (see columns)"},
    {.name = "value_json",
     .type = SL_OPT_BOOL,
     .def = "false",
     .offset = offsetof(sl_file_sink_ctx, value_json),
     .doc = "json: a value that is a JSON document is written as that document, with "
            "\"value_encoding\":\"json\"; other values stay strings"},
    {.name = "columns",
     .type = SL_OPT_LIST,
     .offset = offsetof(sl_file_sink_ctx, columns),
     .doc = "csv: the columns, default key,value; among key, value (the typed value when set, "
            "else the bytes), num, ts, source, topic, partition, offset, batch_time"},
    {.name = "header",
     .type = SL_OPT_BOOL,
     .def = "false",
     .offset = offsetof(sl_file_sink_ctx, header),
     .doc = "csv: each part file opens with a line of the column names"},
    {.name = "manifest",
     .type = SL_OPT_BOOL,
     .def = "true",
     .offset = offsetof(sl_file_sink_ctx, manifest),
     .doc = "write _manifest.json into each batch directory: pipeline, sink, batch_time, "
            "window_start and window_end (ms: the window's bounds, or the batch's), format, "
            "records, parts (name, records, bytes) and inputs (per source, its offset ranges "
            "or description)"},
    {0},
};

const sl_connector sl__connector_file_sink = {
    .name = "file",
    .description = "Writes each batch as a directory of part files, renamed into place when "
                   "complete (saveAsTextFiles)",
    .flags = SL_SINK,
    .dead_letter = &sl__file_dl_target,
    .options = file_sink_options,
    .ctx_size = sizeof(sl_file_sink_ctx),
    .init = file_sink_init,
    .write = file_sink_write,
    .destroy = file_sink_destroy,
};

/* Spark's saveAsTextFiles: a file sink writing prefix-<time>.suffix directories. */
int sl_stream_save_as_text_files(sl_stream *s, const char *prefix, const char *suffix)
{
    return sl__simple_sink(s, &sl__connector_file_sink, "files", "prefix", prefix, "suffix",
                           suffix);
}

/* file_config.c -- checks the options of the file source and the file sink. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"

int sl__file_source_config_check(sl_file_source_ctx *ctx, char *errstr, size_t errsize)
{
    struct stat st;
    if (!ctx->path || !ctx->path[0]) {
        snprintf(errstr, errsize, "path: the directory to watch is required");
        return SL_ERR_INVAL;
    }
    if (stat(ctx->path, &st) != 0) {
        snprintf(errstr, errsize, "path: directory '%s': %s", ctx->path, strerror(errno));
        return SL_ERR_INVAL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(errstr, errsize, "path: '%s' is not a directory", ctx->path);
        return SL_ERR_INVAL;
    }
    if (ctx->remember < ctx->poll_interval) {
        snprintf(errstr, errsize,
                 "remember (%lld ms) is shorter than poll_interval (%lld ms): files could be "
                 "missed",
                 (long long)ctx->remember, (long long)ctx->poll_interval);
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

/* CSV columns, in the order of sl_file_column. */
static const char *const file_column_names[] = {
    "key", "value", "num", "ts", "source", "topic", "partition", "offset", "batch_time",
};

const char *sl__file_column_name(sl_file_column c)
{
    return (size_t)c < sizeof(file_column_names) / sizeof(file_column_names[0])
               ? file_column_names[c]
               : "?";
}

/* Parses the columns option (comma-separated names) into ctx->cols. */
static int file_columns_parse(sl_file_sink_ctx *ctx, char *errstr, size_t errsize)
{
    const char *p = ctx->columns && ctx->columns[0] ? ctx->columns : "key,value";
    const size_t nnames = sizeof(file_column_names) / sizeof(file_column_names[0]);
    ctx->ncols = 0;
    if (ctx->columns && ctx->fmt != SL_FILE_CSV) {
        snprintf(errstr, errsize, "columns: applies to format csv only");
        return SL_ERR_INVAL;
    }
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        size_t c = 0;
        while (c < nnames && !(strlen(file_column_names[c]) == len &&
                               strncmp(file_column_names[c], p, len) == 0)) {
            c++;
        }
        if (c == nnames) {
            snprintf(errstr, errsize,
                     "columns: '%.*s' is not one of key, value, num, ts, source, topic, "
                     "partition, offset, batch_time",
                     len > 64 ? 64 : (int)len, p);
            return SL_ERR_INVAL;
        }
        if (ctx->ncols == SL_FILE_MAX_COLUMNS) {
            snprintf(errstr, errsize, "columns: more than %d", SL_FILE_MAX_COLUMNS);
            return SL_ERR_INVAL;
        }
        ctx->cols[ctx->ncols++] = (sl_file_column)c;
        if (!end) {
            break;
        }
        p = end + 1;
    }
    if (ctx->ncols == 0) {
        snprintf(errstr, errsize, "columns: none given");
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

int sl__file_sink_config_check(sl_file_sink_ctx *ctx, char *errstr, size_t errsize)
{
    if (!ctx->prefix || !ctx->prefix[0]) {
        snprintf(errstr, errsize, "prefix: required (e.g. out/counts)");
        return SL_ERR_INVAL;
    }
    size_t len = strlen(ctx->prefix);
    if (ctx->prefix[len - 1] == '/') {
        snprintf(errstr, errsize,
                 "prefix: '%s' ends with '/': give the start of the directory names "
                 "(e.g. %scounts)",
                 ctx->prefix, ctx->prefix);
        return SL_ERR_INVAL;
    }
    if (ctx->suffix && strchr(ctx->suffix, '/')) {
        snprintf(errstr, errsize, "suffix: '%s' contains '/'", ctx->suffix);
        return SL_ERR_INVAL;
    }
    if (ctx->value_json && ctx->fmt != SL_FILE_JSON) {
        snprintf(errstr, errsize, "value_json: applies to format json only");
        return SL_ERR_INVAL;
    }
    if (ctx->header && ctx->fmt != SL_FILE_CSV) {
        snprintf(errstr, errsize, "header: applies to format csv only");
        return SL_ERR_INVAL;
    }
    return file_columns_parse(ctx, errstr, errsize);
}

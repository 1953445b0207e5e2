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
    if (ctx->poll_interval < 10) {
        snprintf(errstr, errsize, "poll_interval: %lld ms is less than 10 ms",
                 (long long)ctx->poll_interval);
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
    if (ctx->format && strcmp(ctx->format, "text") != 0) {
        snprintf(errstr, errsize, "format: '%s' is not one of text", ctx->format);
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

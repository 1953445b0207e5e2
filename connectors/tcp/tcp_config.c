/* tcp_config.c -- checks the tcp source's options and fills the defaults that depend on the
 * mode. */
#include <stdio.h>
#include <string.h>

#include "tcp.h"

int sl__tcp_config_check(sl_tcp_ctx *ctx, char *errstr, size_t errsize)
{
    if (!ctx->mode || strcmp(ctx->mode, "connect") == 0) {
        ctx->listen = false;
    } else if (strcmp(ctx->mode, "listen") == 0) {
        ctx->listen = true;
    } else {
        snprintf(errstr, errsize, "mode: '%s' is not one of connect, listen", ctx->mode);
        return SL_ERR_INVAL;
    }
    if (!ctx->host || !ctx->host[0]) {
        ctx->host = ctx->listen ? "127.0.0.1" : "localhost";
    }
    if (ctx->port < 1 || ctx->port > 65535) {
        snprintf(errstr, errsize, "port: %lld is not in 1..65535", (long long)ctx->port);
        return SL_ERR_INVAL;
    }
    if (ctx->reconnect_interval < 10) {
        snprintf(errstr, errsize, "reconnect_interval: %lld ms is less than 10 ms",
                 (long long)ctx->reconnect_interval);
        return SL_ERR_INVAL;
    }
    if (ctx->read_buffer < 1024 || ctx->read_buffer > 64 * 1024 * 1024) {
        snprintf(errstr, errsize, "read_buffer: %lld bytes is not in 1KiB..64MiB",
                 (long long)ctx->read_buffer);
        return SL_ERR_INVAL;
    }
    if (ctx->max_connections < 1 || ctx->max_connections > 65536) {
        snprintf(errstr, errsize, "max_connections: %lld is not in 1..65536",
                 (long long)ctx->max_connections);
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

/* tcp_config.c -- checks the tcp source's options and fills the defaults that depend on the
 * mode (the option table checked the values). */
#include <stdio.h>

#include "tcp.h"

int sl__tcp_config_check(sl_tcp_ctx *ctx, char *errstr, size_t errsize)
{
    (void)errstr;
    (void)errsize;
    /* mode and the ranges of the numbers were checked against the option table. */
    ctx->listen = ctx->mode == SL_TCP_LISTEN;
    if (!ctx->host || !ctx->host[0]) {
        ctx->host = ctx->listen ? "127.0.0.1" : "localhost";
    }
    return SL_OK;
}

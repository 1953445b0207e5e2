/* redis_probe.c -- `sluice check --connect` for the redis sink: connect, AUTH when a
 * password is set, PING, within connect_timeout. */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "redis.h"

/* Sends argv and returns NULL when the reply is what a healthy server answers, else why. */
static const char *command_error(redisContext *c, int argc, const char **argv, char *why,
                                 size_t size)
{
    redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
    if (!reply) {
        snprintf(why, size, "%s: %s", argv[0], c->errstr[0] ? c->errstr : "no reply");
        return why;
    }
    const char *ret = NULL;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, size, "%s refused: %.200s", argv[0], reply->str);
        ret = why;
    }
    freeReplyObject(reply);
    return ret;
}

int sl__redis_probe(void *vctx, sl_probe_report_fn report, void *opaque)
{
    sl_redis_ctx *ctx = vctx;
    char endpoint[300], why[300] = "";
    snprintf(endpoint, sizeof(endpoint), "redis %s:%lld", ctx->host, (long long)ctx->port);
    struct timeval tv = {.tv_sec = ctx->connect_timeout / 1000,
                         .tv_usec = (ctx->connect_timeout % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(ctx->host, (int)ctx->port, tv);
    const char *err = NULL;
    if (!c || c->err) {
        snprintf(why, sizeof(why), "cannot connect: %s", c ? c->errstr : "out of memory");
        err = why;
    } else {
        redisSetTimeout(c, tv);
        if (ctx->password && *ctx->password) {
            bool user = ctx->username && *ctx->username;
            const char *auth[3] = {"AUTH", user ? ctx->username : ctx->password, ctx->password};
            err = command_error(c, user ? 3 : 2, auth, why, sizeof(why));
        }
        const char *ping[1] = {"PING"};
        err = err ? err : command_error(c, 1, ping, why, sizeof(why));
    }
    if (c) {
        redisFree(c);
    }
    report(opaque, endpoint, err == NULL, err ? err : "PING answered");
    return SL_OK;
}

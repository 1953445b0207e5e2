/* fuzz_redis.c -- fuzzes the redis sink's templates and commands (redis_config.c): fuzzed
 * key/field/value templates parsed, then expanded into a record's commands. */
#include "fuzz_util.h"
#include "redis/redis.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sl_set_log_level((sl_log_level)-1);
    return 0;
}

/* The next line of [*p, end) as a new string (NULL when the input is used up). */
static char *next_line(const char **p, const char *end)
{
    if (*p >= end) {
        return NULL;
    }
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p += n + (nl ? 1 : 0);
    return s;
}

/* The first byte: the command (low 4 bits) and the record's typed value (high bits); then
 * lines: key template, field template, value template, the record's key; the rest is its
 * value. A missing template takes the default. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) {
        return 0;
    }
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    char *key = next_line(&p, end), *field = next_line(&p, end), *value = next_line(&p, end);
    char *rkey = next_line(&p, end);
    sl_redis_ctx ctx = {
        .host = "127.0.0.1",
        .port = 6379,
        .cmd = (sl_redis_cmd)(data[0] & 15) % (SL_REDIS_LPUSH + 1),
        .key = key ? key : "k:{key}",
        .field = field,
        .value = value,
        .member = field,
        .ttl = data[0] & 16 ? 1000 : 0,
        .trim = data[0] & 16 ? 10 : 0,
        .maxlen = data[0] & 16 ? 100 : 0,
        .commit_prefix = "sluice:commit:",
        .instance = "",
    };
    switch (ctx.cmd) { /* the options the check allows for each command only */
    case SL_REDIS_SET: ctx.trim = ctx.maxlen = 0; break;
    case SL_REDIS_LPUSH: ctx.ttl = ctx.maxlen = 0; break;
    case SL_REDIS_XADD: ctx.ttl = ctx.trim = 0; break;
    default: ctx.ttl = ctx.trim = ctx.maxlen = 0; break;
    }
    char err[256], why[256];
    if (sl__redis_config_check(&ctx, err, sizeof(err)) == SL_OK) {
        sl_record_meta meta = {.source = "s", .topic = "t", .partition = 2, .offset = 7};
        sl_record r = {.key = rkey,
                       .key_len = rkey ? (uint32_t)strlen(rkey) : 0,
                       .value = p,
                       .value_len = (uint32_t)(end - p),
                       .ts = 5,
                       .meta = &meta};
        if (data[0] & 32) {
            sl_record_set_int(&r, (int64_t)data[0] << 40);
        } else if (data[0] & 64) {
            sl_record_set_double(&r, data[0] & 128 ? 0.1 : 1e300);
        }
        sl_redis_cmds cmds = {0};
        sl_record_when when = {1700000000000, 1700000000000 - 60000, 1700000000000};
        if (sl__redis_build(&ctx, &r, &when, &cmds, why, sizeof(why)) == SL_OK) {
            for (int c = 0; c < cmds.ncmds; c++) {
                for (int i = 0; i < cmds.argc[c]; i++) {
                    if (cmds.argvlen[c][i] && cmds.argv[c][i][cmds.argvlen[c][i] - 1] == 1) {
                        why[0] = 1; /* reads the argument's last byte */
                    }
                }
            }
        }
        sl__buf_free(&cmds.buf);
        sl_buf b = {0};
        sl__redis_commit_key(&ctx, "pipe", "sink", 1700000000000, &b);
        sl__buf_free(&b);
    }
    sl__redis_config_free(&ctx);
    free(key);
    free(field);
    free(value);
    free(rkey);
    return 0;
}

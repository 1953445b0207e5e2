/* redis.c -- the redis sink (hiredis): each batch's commands in one MULTI/EXEC together with
 * a commit key.
 *
 *   WATCH <commit key>  EXISTS <commit key>
 *       -> 1: the batch was written before a crash or a lost reply: UNWATCH, skip it
 *   MULTI  <one command per record, pipelined>  SET <commit key> <inputs> PX <commit_ttl>
 *   EXEC   -> nil: another writer touched the commit key meanwhile: retried (and skipped)
 *
 * The commit key is <commit_prefix><pipeline>:<sink>[:<instance>]:<batch time>. Commands
 * are written pipeline_depth at a time before their replies are read. A record that cannot
 * make its command (no number for an increment) is rejected (sl_batch_output_reject: left
 * out, counted, logged, sent to the sink's dead letters, which are made durable just before
 * EXEC; with errors.tolerance none the transaction is dropped and the pipeline stops), and
 * so is one whose command fails inside EXEC (WRONGTYPE): Redis runs the others. Those are
 * known only once EXEC ran: their dead letters are written after it, and errors.tolerance
 * none cannot keep the rest of the batch out. Connection problems return SL_ERR_RETRY: the
 * engine retries with backoff and each attempt reconnects. Calls never overlap (one thread
 * at a time). Arguments are passed with their lengths (binary-safe). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "redis.h"

/* ==== Errors ==== */

static void redis_drop(sl_redis_ctx *ctx)
{
    if (ctx->conn) {
        redisFree(ctx->conn);
        ctx->conn = NULL;
    }
    sl_instance_set_active(ctx->ins, false);
}

/* True for replies that a configuration problem causes: no retry can fix them. */
static bool redis_config_error(const char *s)
{
    static const char *const prefixes[] = {"NOAUTH",
                                           "WRONGPASS",
                                           "NOPERM",
                                           "ERR invalid password",
                                           "ERR AUTH",
                                           "ERR Client sent AUTH",
                                           "ERR invalid DB index",
                                           "ERR DB index is out of range",
                                           "ERR unknown command"};
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0) {
            return true;
        }
    }
    return false;
}

/* The one place where hiredis's errors become SL_ERR_*: a broken connection (I/O, EOF,
 * timeout, protocol) and transient server states (LOADING, BUSY, OOM, READONLY, ...) are
 * SL_ERR_RETRY, the connection dropped when broken; authentication, database index and
 * unknown commands are SL_ERR_FATAL. The error is reported with what was being done;
 * reply may be NULL. */
static int redis_map_error(sl_redis_ctx *ctx, const redisReply *reply, const char *what)
{
    if (!ctx->conn || ctx->conn->err || !reply) {
        sl_instance_error(ctx->ins, "redis %s:%lld: %s: %s", ctx->host, (long long)ctx->port, what,
                          ctx->conn && ctx->conn->err ? ctx->conn->errstr : "no connection");
        redis_drop(ctx);
        return SL_ERR_RETRY;
    }
    const char *s = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    sl_instance_error(ctx->ins, "redis %s:%lld: %s: %.200s", ctx->host, (long long)ctx->port, what,
                      s);
    return redis_config_error(s) ? SL_ERR_FATAL : SL_ERR_RETRY;
}

/* ==== Connecting ==== */

static struct timeval redis_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Runs one command and checks that its reply is not an error. */
static int redis_simple(sl_redis_ctx *ctx, int argc, const char **argv, const char *what)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    redisReply *reply = redisCommandArgv(ctx->conn, argc, argv, lens);
    int rc = SL_OK;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        rc = redis_map_error(ctx, reply, what);
    }
    if (reply) {
        freeReplyObject(reply);
    }
    return rc;
}

/* Connects (bounded by connect_timeout), authenticates and selects the database when there
 * is no usable connection. SL_OK, SL_ERR_RETRY or SL_ERR_FATAL. */
static int redis_ensure(sl_redis_ctx *ctx)
{
    if (ctx->conn && !ctx->conn->err) {
        return SL_OK;
    }
    redis_drop(ctx);
    ctx->conn = redisConnectWithTimeout(ctx->host, (int)ctx->port, redis_tv(ctx->connect_timeout));
    if (!ctx->conn || ctx->conn->err) {
        sl_instance_error(ctx->ins, "redis %s:%lld: cannot connect: %s", ctx->host,
                          (long long)ctx->port, ctx->conn ? ctx->conn->errstr : "out of memory");
        redis_drop(ctx);
        return SL_ERR_RETRY;
    }
    redisSetTimeout(ctx->conn, redis_tv(ctx->timeout));
    redisEnableKeepAlive(ctx->conn);
    int rc = SL_OK;
    if (ctx->password && *ctx->password) {
        const char *auth[3] = {"AUTH", ctx->username, ctx->password};
        if (ctx->username && *ctx->username) {
            rc = redis_simple(ctx, 3, auth, "AUTH");
        } else {
            auth[1] = ctx->password;
            rc = redis_simple(ctx, 2, auth, "AUTH");
        }
    }
    if (rc == SL_OK && ctx->db > 0) {
        char db[24];
        snprintf(db, sizeof(db), "%lld", (long long)ctx->db);
        const char *sel[2] = {"SELECT", db};
        rc = redis_simple(ctx, 2, sel, "SELECT");
    }
    if (rc != SL_OK) {
        redis_drop(ctx);
        return rc;
    }
    sl_instance_log(ctx->ins, SL_LOG_INFO, "redis: connected to %s:%lld, db %lld", ctx->host,
                    (long long)ctx->port, (long long)ctx->db);
    sl_instance_set_active(ctx->ins, true);
    return SL_OK;
}

/* ==== Writing a batch ==== */

typedef struct redis_batch {
    const sl_batch_output *out;
    const sl_record **recs; /* the record of each queued command; NULL for our own */
    size_t n, cap;
    size_t unread; /* replies not read yet */
    bool queue_failed;
    uint64_t written, skipped;
} redis_batch;

/* Leaves r out: the engine counts, logs and dead-letters it. Returns SL_OK, or the code
 * that aborts the write (errors.tolerance none). */
static int redis_reject(redis_batch *b, const sl_record *r, const char *why)
{
    b->skipped++;
    return sl_batch_output_reject(b->out, r, why);
}

/* Appends a command inside MULTI, remembering its record. */
static int redis_queue(sl_redis_ctx *ctx, redis_batch *b, const sl_record *r, int argc,
                       const char **argv, const size_t *lens)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        const sl_record **v = realloc(b->recs, cap * sizeof(*v));
        if (!v) {
            return SL_ERR_NOMEM;
        }
        b->recs = v;
        b->cap = cap;
    }
    if (redisAppendCommandArgv(ctx->conn, argc, argv, lens) != REDIS_OK) {
        return redis_map_error(ctx, NULL, "queuing a command");
    }
    b->recs[b->n++] = r;
    b->unread++;
    return SL_OK;
}

/* Reads the replies of the commands queued so far: +QUEUED, or an error that makes EXEC
 * fail (reported). */
static int redis_read_queued(sl_redis_ctx *ctx, redis_batch *b)
{
    while (b->unread > 0) {
        redisReply *reply = NULL;
        if (redisGetReply(ctx->conn, (void **)&reply) != REDIS_OK || !reply) {
            return redis_map_error(ctx, NULL, "MULTI");
        }
        b->unread--;
        if (reply->type == REDIS_REPLY_ERROR && !b->queue_failed) {
            b->queue_failed = true;
            sl_instance_error(ctx->ins, "redis: batch %" PRId64 ": a command was refused: %.200s",
                              b->out->batch_time, reply->str);
        }
        freeReplyObject(reply);
    }
    return SL_OK;
}

/* WATCH and EXISTS of the commit key: *done is set when it exists (then UNWATCHed). */
static int redis_committed(sl_redis_ctx *ctx, const sl_buf *ck, bool *done)
{
    const char *argv[2] = {"WATCH", ck->p};
    size_t lens[2] = {5, ck->len};
    redisAppendCommandArgv(ctx->conn, 2, argv, lens);
    argv[0] = "EXISTS";
    lens[0] = 6;
    redisAppendCommandArgv(ctx->conn, 2, argv, lens);
    int rc = SL_OK;
    for (int i = 0; i < 2; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(ctx->conn, (void **)&reply) != REDIS_OK || !reply) {
            return redis_map_error(ctx, NULL, "reading the commit key");
        }
        if (reply->type == REDIS_REPLY_ERROR && rc == SL_OK) {
            rc = redis_map_error(ctx, reply, "reading the commit key");
        } else if (i == 1 && reply->type == REDIS_REPLY_INTEGER) {
            *done = reply->integer > 0;
        }
        freeReplyObject(reply);
    }
    if (rc == SL_OK && *done) {
        const char *unwatch[1] = {"UNWATCH"};
        rc = redis_simple(ctx, 1, unwatch, "UNWATCH");
    }
    return rc;
}

/* Reads EXEC's reply: per-command errors skip their records. */
static int redis_exec_reply(sl_redis_ctx *ctx, redis_batch *b)
{
    redisReply *reply = NULL;
    if (redisGetReply(ctx->conn, (void **)&reply) != REDIS_OK || !reply) {
        return redis_map_error(ctx, NULL, "EXEC"); /* a retry finds out through the key */
    }
    int rc = SL_OK;
    if (reply->type == REDIS_REPLY_NIL) {
        sl_instance_error(ctx->ins,
                          "redis: batch %" PRId64 ": the commit key changed during the "
                          "transaction (another writer): retried",
                          b->out->batch_time);
        rc = SL_ERR_RETRY;
    } else if (reply->type != REDIS_REPLY_ARRAY) {
        rc = redis_map_error(ctx, reply, "EXEC");
    } else {
        /* Element i answers queued command i + 1 (command 0 is MULTI). */
        const sl_record *last = NULL;
        for (size_t i = 0; i < reply->elements && i + 1 < b->n; i++) {
            const redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_ERROR) {
                continue;
            }
            const sl_record *r = b->recs[i + 1];
            if (r == last && r) {
                continue; /* the LTRIM after a failed LPUSH */
            }
            last = r;
            if (r) {
                char why[256];
                snprintf(why, sizeof(why), "failed in EXEC: %.200s", e->str);
                b->written--;
                int rrc = redis_reject(b, r, why);
                if (rrc != SL_OK && rc == SL_OK) {
                    rc = rrc; /* tolerance none: too late to keep the others out */
                }
            } else {
                sl_instance_error(ctx->ins, "redis: batch %" PRId64 ": writing the commit key: %s",
                                  b->out->batch_time, e->str);
            }
        }
    }
    freeReplyObject(reply);
    return rc;
}

static int redis_txn(sl_redis_ctx *ctx, redis_batch *b, const sl_buf *ck, bool *skipped)
{
    int rc = redis_committed(ctx, ck, skipped);
    if (rc != SL_OK || *skipped) {
        return rc;
    }
    const char *multi[1] = {"MULTI"};
    size_t mlen[1] = {5};
    if ((rc = redis_queue(ctx, b, NULL, 1, multi, mlen)) != SL_OK) {
        return rc;
    }

    sl_redis_cmds cmds = {0};
    size_t nparts = b->out->ds ? sl_dataset_partitions(b->out->ds) : 0;
    for (size_t p = 0; p < nparts && rc == SL_OK; p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(b->out->ds, p, &n);
        for (size_t i = 0; i < n && rc == SL_OK; i++) {
            char why[256];
            int r = sl__redis_build(ctx, &recs[i], b->out->batch_time, b->out->window_ms, &cmds,
                                    why, sizeof(why));
            if (r == SL_ERR_RECORD) {
                rc = redis_reject(b, &recs[i], why);
                continue;
            }
            if (r != SL_OK) {
                sl_instance_error(ctx->ins, "redis: out of memory");
                rc = r;
                break;
            }
            for (int c = 0; c < cmds.ncmds && rc == SL_OK; c++) {
                rc = redis_queue(ctx, b, &recs[i], cmds.argc[c], cmds.argv[c], cmds.argvlen[c]);
            }
            b->written++;
            if (rc == SL_OK && b->unread >= (size_t)ctx->pipeline_depth) {
                rc = redis_read_queued(ctx, b);
            }
        }
    }
    sl__buf_free(&cmds.buf);
    if (rc != SL_OK) {
        redis_drop(ctx); /* in MULTI with unread replies: start afresh */
        return rc;
    }

    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ctx->commit_ttl);
    const char *inputs = b->out->inputs ? b->out->inputs : "";
    const char *set[5] = {"SET", ck->p, inputs, "PX", ttl};
    size_t setlen[5] = {3, ck->len, strlen(inputs), 2, strlen(ttl)};
    rc = redis_queue(ctx, b, NULL, 5, set, setlen);
    if (rc == SL_OK) {
        rc = sl_batch_output_flush_rejects(b->out); /* dead letters exist before EXEC */
    }
    if (rc == SL_OK && redisAppendCommand(ctx->conn, "EXEC") != REDIS_OK) {
        rc = redis_map_error(ctx, NULL, "EXEC");
    }
    if (rc == SL_OK) {
        rc = redis_read_queued(ctx, b);
    }
    if (rc == SL_OK) {
        rc = redis_exec_reply(ctx, b);
    }
    if (rc != SL_OK) {
        redis_drop(ctx);
    } else if (b->queue_failed) {
        rc = SL_ERR_RETRY; /* EXEC was refused: nothing was written */
    }
    return rc;
}

/* ==== Callbacks ==== */

static int redis_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_redis_ctx *ctx = data;
    ctx->ins = ins;
    return sl__redis_config_check(ctx, errstr, errsize);
}

/* Connects. A server that cannot be reached is not an error here (the first batch retries
 * until it can); a refused password or database is. */
static int redis_start(void *data, char *errstr, size_t errsize)
{
    sl_redis_ctx *ctx = data;
    int rc = redis_ensure(ctx);
    if (rc == SL_ERR_RETRY) {
        sl_instance_log(ctx->ins, SL_LOG_WARN,
                        "redis: not reachable yet; batches wait until it is");
        return SL_OK;
    }
    return rc == SL_OK ? SL_OK : SL_ERR_INVAL;
}

/* Writes one batch: see the file comment. Runs on the sink's output thread. */
static int redis_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    sl_redis_ctx *ctx = data;
    int rc = redis_ensure(ctx);
    if (rc != SL_OK) {
        return rc;
    }
    sl_buf ck = {0};
    if (sl__redis_commit_key(ctx, out->pipeline ? out->pipeline : "", out->sink ? out->sink : "",
                             out->batch_time, &ck) != SL_OK) {
        sl_instance_error(ctx->ins, "redis: out of memory");
        return SL_ERR_NOMEM;
    }
    redis_batch b = {.out = out};
    bool skipped = false;
    rc = redis_txn(ctx, &b, &ck, &skipped);
    if (rc == SL_OK && skipped) {
        sl_instance_log(ctx->ins, SL_LOG_INFO,
                        "batch %" PRId64 " already committed (a replay): "
                        "skipped",
                        out->batch_time);
    } else if (rc == SL_OK) {
        /* The engine sums up the rejected records (sl_batch_output_reject). */
        sl_instance_log(ctx->ins, SL_LOG_DEBUG,
                        "batch %" PRId64 ": %" PRIu64 " records written, %" PRIu64 " rejected",
                        out->batch_time, b.written, b.skipped);
    }
    free(b.recs);
    sl__buf_free(&ck);
    return rc;
}

static void redis_stop(void *data)
{
    sl_redis_ctx *ctx = data;
    if (ctx->ins) {
        redis_drop(ctx);
    }
}

static void redis_destroy(void *data)
{
    sl_redis_ctx *ctx = data;
    if (!ctx->ins) {
        return;
    }
    if (ctx->conn) {
        redisFree(ctx->conn);
        ctx->conn = NULL;
    }
    sl__redis_config_free(ctx);
}

/* ==== Registration ==== */

static const sl_option redis_options[] = {
    {.name = "host",
     .type = SL_OPT_STR,
     .def = "127.0.0.1",
     .offset = offsetof(sl_redis_ctx, host),
     .doc = "server host name or address"},
    {.name = "port",
     .type = SL_OPT_INT,
     .def = "6379",
     .min = 1,
     .max = 65535,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, port),
     .doc = "server port"},
    {.name = "username",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_redis_ctx, username),
     .doc = "ACL user for AUTH (Redis 6+); needs password"},
    {.name = "password",
     .type = SL_OPT_STR,
     .flags = SL_OPT_SECRET,
     .offset = offsetof(sl_redis_ctx, password),
     .doc = "AUTH password; none by default"},
    {.name = "db",
     .type = SL_OPT_INT,
     .def = "0",
     .min = 0,
     .max = 1000000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, db),
     .doc = "database number (SELECT)"},
    {.name = "command",
     .type = SL_OPT_ENUM,
     .flags = SL_OPT_REQUIRED,
     .choices = "set|hset|hincrby|incrby|incrbyfloat|zadd|zincrby|xadd|lpush",
     .offset = offsetof(sl_redis_ctx, cmd),
     .doc = "per record: SET key value [PX ttl]; HSET key field value; HINCRBY key field num; "
            "INCRBY key num; INCRBYFLOAT key num; ZADD key num member; ZINCRBY key num member; "
            "XADD key [MAXLEN ~ maxlen] * key <key> value <value>; LPUSH key value [LTRIM]. "
            "num is the typed value, or the value read as a number"},
    {.name = "key",
     .type = SL_OPT_STR,
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(sl_redis_ctx, key),
     .doc = "template of the Redis key: text with {key}, {value}, {batch_time}, "
            "{window_start}, {window_end} (ms: the window's bounds, window_end = batch_time), "
            "{topic}, {partition}, {offset} ({{ and }} for braces), e.g. words:{key} or "
            "wordcount"},
    {.name = "field",
     .type = SL_OPT_STR,
     .def = "{key}",
     .offset = offsetof(sl_redis_ctx, field),
     .doc = "template of the hash field (hset, hincrby)"},
    {.name = "value",
     .type = SL_OPT_STR,
     .def = "{value}",
     .offset = offsetof(sl_redis_ctx, value),
     .doc = "template of the value (set, hset, lpush)"},
    {.name = "member",
     .type = SL_OPT_STR,
     .def = "{key}",
     .offset = offsetof(sl_redis_ctx, member),
     .doc = "template of the sorted-set member (zadd, zincrby)"},
    {.name = "ttl",
     .type = SL_OPT_DURATION,
     .def = "0",
     .min = 0,
     .max = 8760.0 * 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, ttl),
     .doc = "set: expiry of the keys written (SET ... PX); 0: none"},
    {.name = "trim",
     .type = SL_OPT_INT,
     .def = "0",
     .min = 0,
     .max = 1e12,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, trim),
     .doc = "lpush: keep the newest N elements (LTRIM key 0 N-1); 0: no trim"},
    {.name = "maxlen",
     .type = SL_OPT_INT,
     .def = "0",
     .min = 0,
     .max = 1e12,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, maxlen),
     .doc = "xadd: MAXLEN ~ N; 0: no limit"},
    {.name = "commit_prefix",
     .type = SL_OPT_STR,
     .def = "sluice:commit:",
     .offset = offsetof(sl_redis_ctx, commit_prefix),
     .doc = "commit keys are <commit_prefix><pipeline>:<sink>[:<instance>]:<batch ms>, set in "
            "each batch's MULTI/EXEC to skip a replayed batch"},
    {.name = "commit_ttl",
     .type = SL_OPT_DURATION,
     .def = "168h",
     .min = 1000,
     .max = 8760.0 * 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, commit_ttl),
     .doc = "expiry of commit keys: a batch replayed later than this would be written again"},
    {.name = "instance",
     .type = SL_OPT_STR,
     .def = "",
     .offset = offsetof(sl_redis_ctx, instance),
     .doc = "names this instance in commit keys when several instances of one pipeline write "
            "the same keys (scaling out): each needs its own, e.g. ${HOSTNAME}"},
    {.name = "connect_timeout",
     .type = SL_OPT_DURATION,
     .def = "5s",
     .min = 10,
     .max = 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, connect_timeout),
     .doc = "longest wait for a connection; the batch is retried after it"},
    {.name = "timeout",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .min = 10,
     .max = 86400000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, timeout),
     .doc = "longest wait for a reply; the connection is dropped and the batch retried"},
    {.name = "pipeline_depth",
     .type = SL_OPT_INT,
     .def = "1000",
     .min = 1,
     .max = 1000000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, pipeline_depth),
     .doc = "commands written before their replies are read"},
    {0},
};

const sl_connector sl__connector_redis = {
    .name = "redis",
    .description = "Writes each batch to Redis in one MULTI/EXEC with a commit key, so that a "
                   "replayed batch is skipped (SET, HSET, HINCRBY, INCRBY, ZADD, XADD, LPUSH ...)",
    .flags = SL_SINK,
    .options = redis_options,
    .ctx_size = sizeof(sl_redis_ctx),
    .init = redis_init,
    .start = redis_start,
    .write = redis_write,
    .stop = redis_stop,
    .destroy = redis_destroy,
};

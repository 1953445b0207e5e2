/* redis.c -- the redis sink (hiredis): each batch's commands in one MULTI/EXEC together with
 * a commit key and, for a batch that read partitioned sources (Kafka direct), the input
 * positions.
 *
 *   WATCH <commit key> [<positions>]  EXISTS <commit key>  [HMGET <positions> <field>...]
 *       -> commit key exists: the batch was written before a crash or a lost reply:
 *          UNWATCH, skip it
 *       -> positions: every range starts at its partition's position (or none is held):
 *          go on; every range ends at or before it: UNWATCH, skip it (held already);
 *          otherwise UNWATCH, SL_ERR_FENCED (another instance owns the partition now)
 *   MULTI  <one command per record, pipelined>  [HSET <positions> <field> <until>...]
 *          SET <commit key> <inputs> PX <commit_ttl>
 *   EXEC   -> nil: another writer touched a watched key meanwhile: with positions the
 *          check runs again (REDIS_CONFLICT_TRIES times, then SL_ERR_RETRY), without it is
 *          retried by the engine (and skipped)
 *
 * The commit key is <commit_prefix><pipeline>:<sink>[:<instance>]:<batch time>; the
 * positions hash <commit_prefix>positions:<pipeline>:<sink>, shared by every instance, a
 * field <source> TAB <topic> TAB <partition> holding the offset after the last record
 * written. The WATCH, the check's replies and the transaction are on one connection with
 * nothing else pending, so the replies come back in order; WATCH of two keys needs them in
 * one slot: a single server, not Redis Cluster. The positions callback reads the hash on a
 * connection of its own (it runs on the timer thread while writes run).
 *
 * Commands are written pipeline_depth at a time before their replies are read. A record
 * that cannot make its command (no number for an increment) is rejected
 * (sl_batch_output_reject: left out, counted, logged, sent to the sink's dead letters, which
 * are made durable just before EXEC; with errors.tolerance none the transaction is dropped
 * and the pipeline stops), and
 * so is one whose command fails inside EXEC (WRONGTYPE): Redis runs the others. Those are
 * known only once EXEC ran: their dead letters are written after it, and errors.tolerance
 * none cannot keep the rest of the batch out. Connection problems return SL_ERR_RETRY: the
 * engine retries with backoff and each attempt reconnects. Writes never overlap (one thread
 * at a time). Arguments are passed with their lengths (binary-safe). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "redis.h"

/* ==== Errors ==== */

/* Drops a connection: the write's (*cp is ctx->conn, the instance shows inactive) or the
 * positions callback's (ctx->pconn). */
static void redis_drop(sl_redis_ctx *ctx, struct redisContext **cp)
{
    if (*cp) {
        redisFree(*cp);
        *cp = NULL;
    }
    if (cp == &ctx->conn) {
        sl_instance_set_active(ctx->ins, false);
    }
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

/* Reports an error of connection *cp: to the instance (sl_instance_error) and, for the
 * positions connection, into ctx->perr for the callback's errstr. */
static void redis_report(sl_redis_ctx *ctx, struct redisContext **cp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void redis_report(sl_redis_ctx *ctx, struct redisContext **cp, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sl_instance_error(ctx->ins, "%s", msg);
    if (cp == &ctx->pconn) {
        sl__strlcpy(ctx->perr, msg, sizeof(ctx->perr));
    }
}

/* The one place where hiredis's errors become SL_ERR_*: a broken connection (I/O, EOF,
 * timeout, protocol) and transient server states (LOADING, BUSY, OOM, READONLY, ...) are
 * SL_ERR_RETRY, the connection dropped when broken; authentication, database index and
 * unknown commands are SL_ERR_FATAL. The error is reported with what was being done;
 * reply may be NULL. */
static int redis_map_error(sl_redis_ctx *ctx, struct redisContext **cp, const redisReply *reply,
                           const char *what)
{
    if (!*cp || (*cp)->err || !reply) {
        redis_report(ctx, cp, "redis %s:%lld: %s: %s", ctx->host, (long long)ctx->port, what,
                     *cp && (*cp)->err ? (*cp)->errstr : "no connection");
        redis_drop(ctx, cp);
        return SL_ERR_RETRY;
    }
    const char *s = reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    redis_report(ctx, cp, "redis %s:%lld: %s: %.200s", ctx->host, (long long)ctx->port, what, s);
    return redis_config_error(s) ? SL_ERR_FATAL : SL_ERR_RETRY;
}

/* ==== Connecting ==== */

static struct timeval redis_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* Runs one command on *cp and checks that its reply is not an error. */
static int redis_simple(sl_redis_ctx *ctx, struct redisContext **cp, int argc, const char **argv,
                        const char *what)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    redisReply *reply = redisCommandArgv(*cp, argc, argv, lens);
    int rc = SL_OK;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        rc = redis_map_error(ctx, cp, reply, what);
    }
    if (reply) {
        freeReplyObject(reply);
    }
    return rc;
}

/* Authenticates a new connection: AUTH [username] password when a password is set, else a
 * PING, so that a server that requires a password says so now (NOAUTH) rather than at the
 * first write. A refusal is permanent (README, "Errors: retried or not"): SL_ERR_FATAL,
 * reported as "redis HOST:PORT: authentication failed (AUTH): <the server's reply>". A
 * broken connection is SL_ERR_RETRY. */
static int redis_auth(sl_redis_ctx *ctx, struct redisContext **cp)
{
    bool pw = ctx->password && *ctx->password;
    bool user = pw && ctx->username && *ctx->username;
    const char *argv[3] = {"AUTH", user ? ctx->username : ctx->password, ctx->password};
    size_t lens[3];
    int argc = pw ? (user ? 3 : 2) : 1;
    if (!pw) {
        argv[0] = "PING";
    }
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    redisReply *reply = redisCommandArgv(*cp, argc, argv, lens);
    int rc = SL_OK;
    if (!reply) {
        rc = redis_map_error(ctx, cp, NULL, argv[0]);
    } else if (reply->type == REDIS_REPLY_ERROR && (pw || redis_config_error(reply->str))) {
        redis_report(ctx, cp, "redis %s:%lld: authentication failed (%s): %.200s", ctx->host,
                     (long long)ctx->port, pw ? "AUTH" : "no password set", reply->str);
        rc = SL_ERR_FATAL;
    }
    if (reply) {
        freeReplyObject(reply);
    }
    return rc;
}

/* Connects *cp (bounded by connect_timeout), authenticates and selects the database when
 * there is no usable connection. SL_OK, SL_ERR_RETRY or SL_ERR_FATAL. */
static int redis_ensure(sl_redis_ctx *ctx, struct redisContext **cp)
{
    if (*cp && !(*cp)->err) {
        return SL_OK;
    }
    redis_drop(ctx, cp);
    *cp = redisConnectWithTimeout(ctx->host, (int)ctx->port, redis_tv(ctx->connect_timeout));
    if (!*cp || (*cp)->err) {
        redis_report(ctx, cp, "redis %s:%lld: cannot connect: %s", ctx->host, (long long)ctx->port,
                     *cp ? (*cp)->errstr : "out of memory");
        redis_drop(ctx, cp);
        return SL_ERR_RETRY;
    }
    redisSetTimeout(*cp, redis_tv(ctx->timeout));
    redisEnableKeepAlive(*cp);
    int rc = redis_auth(ctx, cp);
    if (rc == SL_OK && ctx->db > 0) {
        char db[24];
        snprintf(db, sizeof(db), "%lld", (long long)ctx->db);
        const char *sel[2] = {"SELECT", db};
        rc = redis_simple(ctx, cp, 2, sel, "SELECT");
    }
    if (rc != SL_OK) {
        redis_drop(ctx, cp);
        return rc;
    }
    if (cp == &ctx->conn) {
        sl_instance_log(ctx->ins, SL_LOG_INFO, "redis: connected to %s:%lld, db %lld", ctx->host,
                        (long long)ctx->port, (long long)ctx->db);
        sl_instance_set_active(ctx->ins, true);
    }
    return SL_OK;
}

/* ==== Positions: the fields of a batch's partitions ==== */

/* The positions hash and the fields of n partitions, with the arguments of HMGET (and of
 * HSET once the untils are set). */
typedef struct redis_fields {
    sl_buf key;
    sl_buf text;       /* fields, then untils, one after another */
    size_t n;          /* partitions */
    size_t *off, *len; /* of field i in text, then of until i at n + i */
    const char **argv; /* 2 + 2n: HMGET key f... or HSET key f u ... */
    size_t *argvlen;
    int64_t *held; /* HMGET's answer: the positions, -1 for none */
} redis_fields;

static void redis_fields_free(redis_fields *f)
{
    sl__buf_free(&f->key);
    sl__buf_free(&f->text);
    free(f->off);
    free(f->len);
    free(f->argv);
    free(f->argvlen);
    free(f->held);
}

static int redis_fields_alloc(redis_fields *f, size_t n)
{
    f->n = n;
    f->off = calloc(2 * n, sizeof(*f->off));
    f->len = calloc(2 * n, sizeof(*f->len));
    f->argv = calloc(2 + 2 * n, sizeof(*f->argv));
    f->argvlen = calloc(2 + 2 * n, sizeof(*f->argvlen));
    f->held = calloc(n, sizeof(*f->held));
    return f->off && f->len && f->argv && f->argvlen && f->held ? SL_OK : SL_ERR_NOMEM;
}

/* Appends piece i (a field, or an until at n + i) with sl__redis_position_field or
 * printf: records where it is in text. */
static void redis_fields_mark(redis_fields *f, size_t i, size_t start)
{
    f->off[i] = start;
    f->len[i] = f->text.len - start;
}

/* The fields of a batch's ranges and their untils. SL_OK or SL_ERR_NOMEM. */
static int redis_fields_of_ranges(redis_fields *f, const sl_redis_ctx *ctx,
                                  const sl_batch_output *out)
{
    if (redis_fields_alloc(f, out->nranges) != SL_OK ||
        sl__redis_positions_key(ctx, out->pipeline ? out->pipeline : "", out->sink ? out->sink : "",
                                &f->key) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < f->n; i++) {
        const sl_input_range *r = &out->ranges[i];
        size_t start = f->text.len;
        sl__redis_position_field(r->source, r->topic, r->partition, &f->text);
        redis_fields_mark(f, i, start);
    }
    for (size_t i = 0; i < f->n; i++) {
        size_t start = f->text.len;
        sl__buf_printf(&f->text, "%" PRId64, out->ranges[i].until);
        redis_fields_mark(f, f->n + i, start);
    }
    return f->text.failed ? SL_ERR_NOMEM : SL_OK;
}

/* The fields of the positions asked for. SL_OK or SL_ERR_NOMEM. */
static int redis_fields_of_positions(redis_fields *f, const sl_redis_ctx *ctx, const char *pipeline,
                                     const sl_position *pos, size_t n)
{
    if (redis_fields_alloc(f, n) != SL_OK ||
        sl__redis_positions_key(ctx, pipeline ? pipeline : "", sl_instance_name(ctx->ins),
                                &f->key) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t start = f->text.len;
        sl__redis_position_field(pos[i].source, pos[i].topic, pos[i].partition, &f->text);
        redis_fields_mark(f, i, start);
    }
    return f->text.failed ? SL_ERR_NOMEM : SL_OK;
}

/* Fills argv: HMGET key f0 f1 ... (returns argc 2 + n), or with set HSET key f0 u0 f1 u1 ...
 * (2 + 2n). */
static int redis_fields_argv(redis_fields *f, bool set)
{
    f->argv[0] = set ? "HSET" : "HMGET";
    f->argvlen[0] = set ? 4 : 5;
    f->argv[1] = f->key.p;
    f->argvlen[1] = f->key.len;
    int argc = 2;
    for (size_t i = 0; i < f->n; i++) {
        f->argv[argc] = f->text.p + f->off[i];
        f->argvlen[argc++] = f->len[i];
        if (set) {
            f->argv[argc] = f->text.p + f->off[f->n + i];
            f->argvlen[argc++] = f->len[f->n + i];
        }
    }
    return argc;
}

/* Reads HMGET's reply into f->held. SL_OK, SL_ERR_RETRY (an error reply) or SL_ERR_FATAL
 * (a value that is no offset: the hash was written by something else), reported. */
static int redis_fields_held(sl_redis_ctx *ctx, struct redisContext **cp, redis_fields *f,
                             const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != f->n) {
        return redis_map_error(ctx, cp, reply, "reading the positions");
    }
    for (size_t i = 0; i < f->n; i++) {
        const redisReply *e = reply->element[i];
        const char *s = e->type == REDIS_REPLY_STRING ? e->str : NULL;
        if ((e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_NIL) ||
            sl__redis_position_parse(s, s ? e->len : 0, &f->held[i]) != SL_OK) {
            redis_report(ctx, cp, "redis: positions hash %s, field '%.*s': '%.40s' is no offset",
                         f->key.p, (int)f->len[i], f->text.p + f->off[i], s ? s : "?");
            return SL_ERR_FATAL;
        }
    }
    return SL_OK;
}

/* ==== Writing a batch ==== */

/* Tries of one write when the positions hash changes between WATCH and EXEC. */
#define REDIS_CONFLICT_TRIES 5

/* How an attempt at a batch ended (with SL_OK). */
typedef enum redis_outcome {
    REDIS_WRITTEN,  /* EXEC ran */
    REDIS_REPLAY,   /* the commit key exists: written before (a replay) */
    REDIS_HELD,     /* every range ends at or before its position: written before */
    REDIS_FENCED,   /* a range does not start at its position: not ours to write */
    REDIS_CONFLICT, /* EXEC returned nil: a watched key changed meanwhile */
} redis_outcome;

typedef struct redis_batch {
    const sl_batch_output *out;
    redis_fields *pos;      /* the batch's positions; NULL when it has no ranges */
    const sl_record **recs; /* the record of each queued command; NULL for our own */
    size_t n, cap;
    size_t unread; /* replies not read yet */
    bool queue_failed;
    redis_outcome outcome;
    size_t culprit; /* REDIS_FENCED: the range that decided it */
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
        return redis_map_error(ctx, &ctx->conn, NULL, "queuing a command");
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
            return redis_map_error(ctx, &ctx->conn, NULL, "MULTI");
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

/* Before MULTI, on the write's connection with no reply pending (so that the replies come
 * in this order): WATCH the commit key and the positions hash, EXISTS the commit key, HMGET
 * the batch's fields, pipelined. Sets b->outcome: REPLAY when the commit key exists, else
 * the positions' decision (WRITTEN: go on under WATCH); UNWATCHes unless going on. An error
 * drops the connection (and with it the WATCH). */
static int redis_check(sl_redis_ctx *ctx, redis_batch *b, const sl_buf *ck)
{
    const char *argv[3] = {"WATCH", ck->p, b->pos ? b->pos->key.p : NULL};
    size_t lens[3] = {5, ck->len, b->pos ? b->pos->key.len : 0};
    int nreplies = 2;
    bool appended = redisAppendCommandArgv(ctx->conn, b->pos ? 3 : 2, argv, lens) == REDIS_OK;
    argv[0] = "EXISTS";
    lens[0] = 6;
    appended = appended && redisAppendCommandArgv(ctx->conn, 2, argv, lens) == REDIS_OK;
    if (b->pos) {
        int argc = redis_fields_argv(b->pos, false);
        appended = appended && redisAppendCommandArgv(ctx->conn, argc, b->pos->argv,
                                                      b->pos->argvlen) == REDIS_OK;
        nreplies++;
    }
    if (!appended) {
        return redis_map_error(ctx, &ctx->conn, NULL, "reading the commit key");
    }
    int rc = SL_OK;
    bool done = false;
    for (int i = 0; i < nreplies; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(ctx->conn, (void **)&reply) != REDIS_OK || !reply) {
            return redis_map_error(ctx, &ctx->conn, NULL, "reading the commit key");
        }
        if (rc != SL_OK) {
            /* the first error is reported; the other replies are read and dropped */
        } else if (reply->type == REDIS_REPLY_ERROR) {
            rc = redis_map_error(ctx, &ctx->conn, reply,
                                 i < 2 ? "reading the commit key" : "reading the positions");
        } else if (i == 1 && reply->type == REDIS_REPLY_INTEGER) {
            done = reply->integer > 0;
        } else if (i == 2) {
            rc = redis_fields_held(ctx, &ctx->conn, b->pos, reply);
        }
        freeReplyObject(reply);
    }
    if (rc != SL_OK) {
        redis_drop(ctx, &ctx->conn);
        return rc;
    }
    b->outcome = REDIS_WRITTEN;
    if (done) {
        b->outcome = REDIS_REPLAY;
    } else if (b->pos) {
        switch (sl__redis_positions_decide(b->out->ranges, b->pos->held, b->pos->n, &b->culprit)) {
        case SL_POSITION_WRITE: break;
        case SL_POSITION_SKIP: b->outcome = REDIS_HELD; break;
        case SL_POSITION_FENCED: b->outcome = REDIS_FENCED; break;
        }
    }
    if (b->outcome != REDIS_WRITTEN) {
        const char *unwatch[1] = {"UNWATCH"};
        rc = redis_simple(ctx, &ctx->conn, 1, unwatch, "UNWATCH");
    }
    return rc;
}

/* Reads EXEC's reply: per-command errors skip their records; nil (a watched key changed)
 * sets b->outcome to REDIS_CONFLICT. */
static int redis_exec_reply(sl_redis_ctx *ctx, redis_batch *b)
{
    redisReply *reply = NULL;
    if (redisGetReply(ctx->conn, (void **)&reply) != REDIS_OK || !reply) {
        /* a retry finds out through the commit key and the positions */
        return redis_map_error(ctx, &ctx->conn, NULL, "EXEC");
    }
    int rc = SL_OK;
    if (reply->type == REDIS_REPLY_NIL) {
        b->outcome = REDIS_CONFLICT;
    } else if (reply->type != REDIS_REPLY_ARRAY) {
        rc = redis_map_error(ctx, &ctx->conn, reply, "EXEC");
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
                sl_instance_error(ctx->ins,
                                  "redis: batch %" PRId64
                                  ": writing the positions or the commit key: %s",
                                  b->out->batch_time, e->str);
            }
        }
    }
    freeReplyObject(reply);
    return rc;
}

/* One attempt at the batch: the check, then (outcome WRITTEN) MULTI, the records'
 * commands, HSET of the positions, SET of the commit key, EXEC. */
static int redis_txn(sl_redis_ctx *ctx, redis_batch *b, const sl_buf *ck)
{
    int rc = redis_check(ctx, b, ck);
    if (rc != SL_OK || b->outcome != REDIS_WRITTEN) {
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
            sl_record_when when = sl_batch_output_when(b->out, &recs[i]);
            int r = sl__redis_build(ctx, &recs[i], &when, &cmds, why, sizeof(why));
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
        redis_drop(ctx, &ctx->conn); /* in MULTI with unread replies: start afresh */
        return rc;
    }

    if (b->pos) {
        int argc = redis_fields_argv(b->pos, true);
        rc = redis_queue(ctx, b, NULL, argc, b->pos->argv, b->pos->argvlen);
    }
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)ctx->commit_ttl);
    const char *inputs = b->out->inputs ? b->out->inputs : "";
    const char *set[5] = {"SET", ck->p, inputs, "PX", ttl};
    size_t setlen[5] = {3, ck->len, strlen(inputs), 2, strlen(ttl)};
    if (rc == SL_OK) {
        rc = redis_queue(ctx, b, NULL, 5, set, setlen);
    }
    if (rc == SL_OK) {
        rc = sl_batch_output_flush_rejects(b->out); /* dead letters exist before EXEC */
    }
    if (rc == SL_OK && redisAppendCommand(ctx->conn, "EXEC") != REDIS_OK) {
        rc = redis_map_error(ctx, &ctx->conn, NULL, "EXEC");
    }
    if (rc == SL_OK) {
        rc = redis_read_queued(ctx, b);
    }
    if (rc == SL_OK) {
        rc = redis_exec_reply(ctx, b);
    }
    if (rc != SL_OK) {
        redis_drop(ctx, &ctx->conn);
    } else if (b->queue_failed) {
        rc = SL_ERR_RETRY; /* EXEC was refused: nothing was written */
    }
    return rc;
}

/* Says in errstr which range fenced the batch off. */
static void redis_fenced(const redis_batch *b, char *errstr, size_t errsize)
{
    const sl_input_range *r = &b->out->ranges[b->culprit];
    int64_t held = b->pos->held[b->culprit];
    char where[64];
    if (held < 0) {
        snprintf(where, sizeof(where), "holds nothing of it");
    } else {
        snprintf(where, sizeof(where), "is at offset %" PRId64, held);
    }
    snprintf(errstr, errsize,
             "redis: batch %" PRId64 ": source '%s', topic '%s', partition %" PRId32
             ": the sink %s (positions hash %s), the batch reads [%" PRId64 ", %" PRId64
             "): not written (another instance wrote this partition)",
             b->out->batch_time, r->source ? r->source : "", r->topic ? r->topic : "", r->partition,
             where, b->pos->key.p, r->from, r->until);
}

/* ==== Callbacks ==== */

static int redis_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_redis_ctx *ctx = data;
    ctx->ins = ins;
    return sl__redis_config_check(ctx, errstr, errsize);
}

/* Connects. A server that cannot be reached is not an error here (the first batch retries
 * until it can); a refused password or database is (SL_ERR_FATAL: the pipeline does not
 * run). */
static int redis_start(void *data, char *errstr, size_t errsize)
{
    sl_redis_ctx *ctx = data;
    int rc = redis_ensure(ctx, &ctx->conn);
    if (rc == SL_ERR_RETRY) {
        sl_instance_log(ctx->ins, SL_LOG_WARN,
                        "redis: not reachable yet; batches wait until it is");
        return SL_OK;
    }
    return rc;
}

/* Writes one batch: see the file comment. Runs on the sink's output thread. */
static int redis_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    sl_redis_ctx *ctx = data;
    sl_buf ck = {0};
    redis_fields pos = {0};
    if (sl__redis_commit_key(ctx, out->pipeline ? out->pipeline : "", out->sink ? out->sink : "",
                             out->batch_time, &ck) != SL_OK ||
        (out->nranges > 0 && redis_fields_of_ranges(&pos, ctx, out) != SL_OK)) {
        sl_instance_error(ctx->ins, "redis: out of memory");
        sl__buf_free(&ck);
        redis_fields_free(&pos);
        return SL_ERR_NOMEM;
    }
    redis_batch b = {.out = out};
    int rc = SL_OK;
    for (int attempt = 1;; attempt++) {
        free(b.recs);
        b = (redis_batch){.out = out, .pos = out->nranges > 0 ? &pos : NULL};
        rc = redis_ensure(ctx, &ctx->conn);
        if (rc == SL_OK) {
            rc = redis_txn(ctx, &b, &ck);
        }
        if (rc != SL_OK || b.outcome != REDIS_CONFLICT) {
            break;
        }
        if (!b.pos || attempt == REDIS_CONFLICT_TRIES) {
            sl_instance_error(ctx->ins,
                              "redis: batch %" PRId64 ": the %s changed during the transaction "
                              "(another writer), %d time(s) in a row: retried",
                              out->batch_time, b.pos ? "positions or the commit key" : "commit key",
                              attempt);
            rc = SL_ERR_RETRY;
            break;
        }
        sl_instance_log(ctx->ins, SL_LOG_INFO,
                        "batch %" PRId64 ": the positions changed during the transaction "
                        "(another instance wrote): checking again",
                        out->batch_time);
    }
    if (rc == SL_OK && b.outcome == REDIS_REPLAY) {
        sl_instance_log(ctx->ins, SL_LOG_INFO,
                        "batch %" PRId64 " already committed (a replay): "
                        "skipped",
                        out->batch_time);
    } else if (rc == SL_OK && b.outcome == REDIS_HELD) {
        sl_instance_log(ctx->ins, SL_LOG_INFO,
                        "batch %" PRId64 " already committed (the positions hold its input): "
                        "skipped",
                        out->batch_time);
    } else if (rc == SL_OK && b.outcome == REDIS_FENCED) {
        redis_fenced(&b, errstr, errsize);
        rc = SL_ERR_FENCED;
    } else if (rc == SL_OK) {
        /* The engine sums up the rejected records (sl_batch_output_reject). */
        sl_instance_log(ctx->ins, SL_LOG_DEBUG,
                        "batch %" PRId64 ": %" PRIu64 " records written, %" PRIu64 " rejected",
                        out->batch_time, b.written, b.skipped);
    }
    free(b.recs);
    sl__buf_free(&ck);
    redis_fields_free(&pos);
    return rc;
}

/* The positions of pos[0..n) in this sink's hash: one HMGET on the callback's own
 * connection (connected on first use, again after an error). Runs on the timer thread,
 * possibly while a write runs. */
static int redis_positions(void *data, const char *pipeline, sl_position *pos, size_t n,
                           char *errstr, size_t errsize)
{
    sl_redis_ctx *ctx = data;
    if (n == 0) {
        return SL_OK;
    }
    ctx->perr[0] = '\0';
    redis_fields f = {0};
    int rc = redis_fields_of_positions(&f, ctx, pipeline, pos, n);
    if (rc != SL_OK) {
        snprintf(ctx->perr, sizeof(ctx->perr), "redis: out of memory");
    }
    if (rc == SL_OK) {
        rc = redis_ensure(ctx, &ctx->pconn);
    }
    if (rc == SL_OK) {
        int argc = redis_fields_argv(&f, false);
        redisReply *reply = redisCommandArgv(ctx->pconn, argc, f.argv, f.argvlen);
        if (!reply || reply->type == REDIS_REPLY_ERROR) {
            rc = redis_map_error(ctx, &ctx->pconn, reply, "reading the positions");
        } else {
            rc = redis_fields_held(ctx, &ctx->pconn, &f, reply);
        }
        if (reply) {
            freeReplyObject(reply);
        }
    }
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        pos[i].next = f.held[i];
    }
    if (rc != SL_OK) {
        snprintf(errstr, errsize, "%s", ctx->perr[0] ? ctx->perr : sl_err2str(rc));
    }
    redis_fields_free(&f);
    return rc;
}

static void redis_stop(void *data)
{
    sl_redis_ctx *ctx = data;
    if (ctx->ins) {
        redis_drop(ctx, &ctx->conn);
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
    if (ctx->pconn) {
        redisFree(ctx->pconn);
        ctx->pconn = NULL;
    }
    sl__redis_config_free(ctx);
}

/* ==== Registration ==== */

static const sl_option redis_options[] = {
    {.name = "host",
     .type = SL_OPT_STR,
     .def = "127.0.0.1",
     .offset = offsetof(sl_redis_ctx, host),
     .doc = "server host name or address: a single server (or a primary), not Redis Cluster "
            "(a batch WATCHes its commit key and positions hash together)"},
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
            "num is the typed value, or the value read as a number. A record with neither a "
            "typed value nor a value (NULL: a tombstone, as a key that left a "
            "reduce_by_key_and_window without inverse) deletes instead: DEL key, HDEL key "
            "field, ZREM key member; the "
            "increments skip it"},
    {.name = "key",
     .type = SL_OPT_STR,
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(sl_redis_ctx, key),
     .doc = "template of the Redis key: text with {key}, {value}, {batch_time}, "
            "{window_start}, {window_end} (ms: the window's bounds, window_end = batch_time; "
            "an event-time window's own), "
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
            "each batch's MULTI/EXEC to skip a replayed batch; the input positions of "
            "partitioned sources (Kafka direct, for exactly once across a consumer group) are "
            "the hash <commit_prefix>positions:<pipeline>:<sink>, field <source> TAB <topic> "
            "TAB <partition>, value the next offset, shared by all instances"},
    {.name = "commit_ttl",
     .type = SL_OPT_DURATION,
     .def = "168h",
     .min = 1000,
     .max = 8760.0 * 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_redis_ctx, commit_ttl),
     .doc = "expiry of commit keys: a batch replayed later than this would be written again, "
            "unless its input positions say it is held (they do not expire)"},
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
    .description = "Writes each batch to Redis in one MULTI/EXEC with a commit key and the input "
                   "positions, so that a replayed batch is skipped and a partition that moves "
                   "between instances is written once (SET, HSET, HINCRBY, INCRBY, ZADD, XADD, "
                   "LPUSH ...)",
    .flags = SL_SINK,
    .options = redis_options,
    .ctx_size = sizeof(sl_redis_ctx),
    .init = redis_init,
    .start = redis_start,
    .write = redis_write,
    .stop = redis_stop,
    .destroy = redis_destroy,
    .probe = sl__redis_probe,
    .positions = redis_positions,
};

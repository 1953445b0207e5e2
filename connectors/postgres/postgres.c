/* postgres.c -- the postgres sink (libpq): each batch in one transaction together with its
 * row in the commit table.
 *
 *   BEGIN
 *   INSERT INTO sluice_commits (pipeline, sink, instance, batch_time, inputs) ...
 *       ON CONFLICT DO NOTHING RETURNING 1
 *       -> no row: the batch was written before a crash or a lost reply (or by another
 *          writer, whose transaction this one waited for): ROLLBACK, skip it
 *   COPY ... FROM STDIN (append; the rows streamed in chunks as they are formatted), or
 *       INSERT ... SELECT FROM unnest($1::type[], ...) ON CONFLICT (key_columns) DO UPDATE
 *       (upsert, increment)
 *   COMMIT
 *
 * Records whose values do not fit their columns are rejected (sl_batch_output_reject: left
 * out, counted, logged and sent to the sink's dead letters; or, with errors.tolerance none,
 * the transaction is rolled back and the pipeline stops) before anything is sent. Should the
 * server still reject data (a constraint, a trigger), the batch is written again with a
 * savepoint per statement and then per row, so that only the rejected rows are left out (and
 * rejected likewise). The dead letters are made durable just before COMMIT. Connection
 * problems return SL_ERR_RETRY: the engine retries the batch with backoff and each attempt
 * reconnects, bounded by connect_timeout; a replayed COMMIT whose reply was lost is caught
 * by the commit row. Every call of the sink runs on its output thread, one at a time;
 * sl_postgres_last_commit uses a connection of its own. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "postgres.h"

/* Bytes of COPY data sent at once: the server parses one chunk while the next is formatted. */
#define PG_COPY_FLUSH  (32 * 1024)
#define PG_PRUNE_EVERY 100 /* batches between deletions of old commit rows */
#define PG_STMT_INSERT "sluice_insert"
#define PG_STMT_CLAIM  "sluice_claim"
#define PG_ERR_DATA    1 /* internal: the server rejected data, redo with savepoints */

/* ==== Helpers ==== */

static int64_t pg_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies msg to out with the password replaced by "***" wherever it stands as a word of its
 * own, and the trailing newline that libpq adds removed. */
static void pg_scrub(const sl_pg_ctx *ctx, const char *msg, char *out, size_t size)
{
    const char *pw = ctx->password;
    size_t pl = pw ? strlen(pw) : 0, n = 0;
    if (!msg) {
        msg = "(no message)";
    }
    for (const char *p = msg; *p && n + 1 < size;) {
        if (pl && strncmp(p, pw, pl) == 0) {
            bool before = p == msg || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
            bool after = !(isalnum((unsigned char)p[pl]) || p[pl] == '_');
            if (before && after) {
                for (const char *s = "***"; *s && n + 1 < size; s++) {
                    out[n++] = *s;
                }
                p += pl;
                continue;
            }
        }
        char c = *p == '\n' || *p == '\t' ? ' ' : *p;
        if (c != ' ' || (n > 0 && out[n - 1] != ' ')) {
            out[n++] = c; /* libpq's lines and indents become single spaces */
        }
        p++;
    }
    while (n > 0 && out[n - 1] == ' ') {
        n--;
    }
    out[n] = '\0';
}

/* The text of PG_DIAG_MESSAGE_PRIMARY, or of the whole error. */
static const char *pg_res_msg(const PGresult *res, const PGconn *conn)
{
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (m) {
        return m;
    }
    m = res ? PQresultErrorMessage(res) : NULL;
    if (m && *m) {
        return m;
    }
    return conn ? PQerrorMessage(conn) : "no connection";
}

static const char *pg_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

static bool pg_res_ok(const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* True when the server rejected data: a value (22), a constraint (23) or a trigger's
 * exception (P0). Such a batch is redone row by row. */
static bool pg_is_data_error(const PGresult *res)
{
    const char *s = pg_sqlstate(res);
    return strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0 || strncmp(s, "P0", 2) == 0;
}

static void pg_drop(sl_pg_ctx *ctx)
{
    if (ctx->conn) {
        PQfinish(ctx->conn);
        ctx->conn = NULL;
    }
    sl_instance_set_active(ctx->ins, false);
}

/* The one place where libpq's errors become SL_ERR_*: a lost connection, a server that
 * shuts down or starts, lack of resources, serialization failures and deadlocks are
 * transient (SL_ERR_RETRY, the connection is dropped when it is broken); a missing table or
 * column, a privilege or a statement that the table cannot take are configuration problems
 * no retry can fix (SL_ERR_FATAL: the pipeline stops, the batch is replayed after a
 * restart). The error is reported with what was being done; res may be NULL. */
static int pg_map_error(sl_pg_ctx *ctx, PGresult *res, const char *what)
{
    char msg[200];
    const char *state = pg_sqlstate(res);
    bool broken = !ctx->conn || PQstatus(ctx->conn) != CONNECTION_OK;
    pg_scrub(ctx, pg_res_msg(res, ctx->conn), msg, sizeof(msg));
    int rc = SL_ERR_RETRY;
    if (!broken && (strncmp(state, "42", 2) == 0 || strncmp(state, "0A", 2) == 0 ||
                    strncmp(state, "3F", 2) == 0 || strncmp(state, "28", 2) == 0 ||
                    strncmp(state, "3D", 2) == 0)) {
        rc = SL_ERR_FATAL;
    }
    const char *hint = strcmp(state, "42P01") == 0   ? "; create it or set create_table: true"
                       : strcmp(state, "42P10") == 0 ? "; key_columns must be the table's primary "
                                                       "key or a unique index"
                                                     : "";
    sl_instance_error(ctx->ins, "postgres: %s: %s%s%s%s%s", what, msg, *state ? " (SQLSTATE " : "",
                      state, *state ? ")" : "", hint);
    if (broken) {
        pg_drop(ctx);
    }
    return rc;
}

/* ==== Statements with a deadline ==== */

/* Waits for the results of the query sent on conn, until timeout_ms. Returns the first
 * error result, else the last result (COPY_IN returns at once), or NULL when the
 * connection failed or the time ran out (msg says which). The caller PQclears. */
static PGresult *pg_wait(PGconn *conn, int64_t timeout_ms, char *msg, size_t msgsize)
{
    int64_t deadline = pg_mono_ms() + timeout_ms;
    PGresult *keep = NULL;
    for (;;) {
        while (PQisBusy(conn)) {
            int64_t left = deadline - pg_mono_ms();
            if (left <= 0) {
                snprintf(msg, msgsize, "no reply within %lld ms", (long long)timeout_ms);
                PQclear(keep);
                return NULL;
            }
            struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
            int n = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
            if (n < 0 && errno != EINTR) {
                snprintf(msg, msgsize, "poll: %s", strerror(errno));
                PQclear(keep);
                return NULL;
            }
            if (!PQconsumeInput(conn)) {
                snprintf(msg, msgsize, "%s", PQerrorMessage(conn));
                PQclear(keep);
                return NULL;
            }
        }
        PGresult *r = PQgetResult(conn);
        if (!r) {
            break;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN) {
            PQclear(keep);
            return r;
        }
        if (keep && !pg_res_ok(keep)) {
            PQclear(r); /* the first error is the one that matters */
        } else {
            PQclear(keep);
            keep = r;
        }
    }
    if (!keep) {
        snprintf(msg, msgsize, "%s", PQerrorMessage(conn));
    }
    return keep;
}

/* Runs sql (or the prepared statement stmt when sql is NULL) with text parameters. Returns
 * the result, or NULL when the connection broke or timed out: then the error is reported,
 * the connection dropped and *rc is SL_ERR_RETRY. */
static PGresult *pg_exec(sl_pg_ctx *ctx, const char *sql, const char *stmt, int nparams,
                         const char *const *params, const char *what, int *rc)
{
    char msg[256], clean[200];
    int sent = sql ? PQsendQueryParams(ctx->conn, sql, nparams, NULL, params, NULL, NULL, 0)
                   : PQsendQueryPrepared(ctx->conn, stmt, nparams, params, NULL, NULL, 0);
    PGresult *res = NULL;
    if (sent) {
        res = pg_wait(ctx->conn, ctx->query_timeout, msg, sizeof(msg));
    } else {
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(ctx->conn));
    }
    if (!res) {
        pg_scrub(ctx, msg, clean, sizeof(clean));
        sl_instance_error(ctx->ins, "postgres: %s: %s", what, clean);
        pg_drop(ctx);
        *rc = SL_ERR_RETRY;
    }
    return res;
}

/* Runs a statement without parameters whose failure is an error. */
static int pg_simple(sl_pg_ctx *ctx, const char *sql, const char *what)
{
    int rc = SL_OK;
    PGresult *res = pg_exec(ctx, sql, NULL, 0, NULL, what, &rc);
    if (!res) {
        return rc;
    }
    if (!pg_res_ok(res)) {
        rc = pg_map_error(ctx, res, what);
    }
    PQclear(res);
    return rc;
}

/* Ends a failed transaction, if the connection still lives. */
static void pg_rollback(sl_pg_ctx *ctx)
{
    if (ctx->conn && PQstatus(ctx->conn) == CONNECTION_OK &&
        PQtransactionStatus(ctx->conn) != PQTRANS_IDLE) {
        char msg[256];
        if (PQsendQuery(ctx->conn, "ROLLBACK")) {
            PQclear(pg_wait(ctx->conn, ctx->query_timeout, msg, sizeof(msg)));
        }
        if (PQtransactionStatus(ctx->conn) != PQTRANS_IDLE) {
            pg_drop(ctx);
        }
    }
}

/* ==== Connecting ==== */

static void pg_notice(void *arg, const char *message)
{
    sl_pg_ctx *ctx = arg;
    char msg[200];
    pg_scrub(ctx, message, msg, sizeof(msg));
    sl_instance_log(ctx->ins, SL_LOG_DEBUG, "postgres: %s", msg);
}

/* Connects without blocking longer than connect_timeout. Returns the connection or NULL
 * with msg set (scrubbed). */
static PGconn *pg_connect(const sl_pg_ctx *ctx, char *msg, size_t msgsize)
{
    char user_timeout[32];
    snprintf(user_timeout, sizeof(user_timeout), "%lld", (long long)ctx->query_timeout);
    /* Defaults first: the user's conninfo (expanded from dbname) overrides them; the
     * encoding comes last since identifiers and text are checked as UTF-8. */
    const char *kw[10], *vals[10];
    size_t n = 0;
    kw[n] = "fallback_application_name", vals[n++] = "sluice";
    kw[n] = "keepalives", vals[n++] = "1";
    kw[n] = "keepalives_idle", vals[n++] = "30";
    kw[n] = "keepalives_interval", vals[n++] = "10";
    kw[n] = "keepalives_count", vals[n++] = "3";
    kw[n] = "tcp_user_timeout", vals[n++] = user_timeout;
    if (ctx->conninfo && *ctx->conninfo) {
        kw[n] = "dbname", vals[n++] = ctx->conninfo;
    }
    kw[n] = "client_encoding", vals[n++] = "UTF8";
    kw[n] = NULL, vals[n] = NULL;
    PGconn *conn = PQconnectStartParams(kw, vals, 1);
    if (!conn) {
        snprintf(msg, msgsize, "out of memory");
        return NULL;
    }
    int64_t deadline = pg_mono_ms() + ctx->connect_timeout;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        int64_t left = deadline - pg_mono_ms();
        if (left <= 0) {
            snprintf(msg, msgsize, "no connection within %lld ms (connect_timeout)",
                     (long long)ctx->connect_timeout);
            PQfinish(conn);
            return NULL;
        }
        struct pollfd pfd = {.fd = PQsocket(conn),
                             .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        int ready = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
        if (ready < 0 && errno != EINTR) {
            snprintf(msg, msgsize, "poll: %s", strerror(errno));
            PQfinish(conn);
            return NULL;
        }
        if (ready > 0) {
            st = PQconnectPoll(conn);
        }
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        pg_scrub(ctx, PQerrorMessage(conn), msg, msgsize);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, pg_notice, (void *)ctx);
    return conn;
}

/* Ignores "already exists" from a CREATE ... IF NOT EXISTS that raced with another one. */
static int pg_create(sl_pg_ctx *ctx, const char *sql, const char *what)
{
    int rc = SL_OK;
    PGresult *res = pg_exec(ctx, sql, NULL, 0, NULL, what, &rc);
    if (!res) {
        return rc;
    }
    const char *st = pg_sqlstate(res);
    if (!pg_res_ok(res) && strcmp(st, "42P07") != 0 && strcmp(st, "23505") != 0) {
        rc = pg_map_error(ctx, res, what);
    }
    PQclear(res);
    return rc;
}

static int pg_prepare(sl_pg_ctx *ctx, const char *name, const char *sql, int nparams,
                      const char *what)
{
    char msg[256], clean[200];
    if (!PQsendPrepare(ctx->conn, name, sql, nparams, NULL)) {
        pg_scrub(ctx, PQerrorMessage(ctx->conn), clean, sizeof(clean));
        sl_instance_error(ctx->ins, "postgres: %s: %s", what, clean);
        pg_drop(ctx);
        return SL_ERR_RETRY;
    }
    PGresult *res = pg_wait(ctx->conn, ctx->query_timeout, msg, sizeof(msg));
    if (!res) {
        pg_scrub(ctx, msg, clean, sizeof(clean));
        sl_instance_error(ctx->ins, "postgres: %s: %s", what, clean);
        pg_drop(ctx);
        return SL_ERR_RETRY;
    }
    int rc = pg_res_ok(res) ? SL_OK : pg_map_error(ctx, res, what);
    PQclear(res);
    return rc;
}

/* Connects when there is no usable connection, then creates the commit table (and the
 * table with create_table), checks that the table has the mapped columns and prepares the
 * statements. Returns SL_OK, SL_ERR_RETRY (server unreachable) or SL_ERR_FATAL (the table
 * does not fit the mapping). */
static int pg_ensure(sl_pg_ctx *ctx)
{
    if (ctx->conn && PQstatus(ctx->conn) == CONNECTION_OK) {
        if (PQtransactionStatus(ctx->conn) == PQTRANS_IDLE) {
            return SL_OK;
        }
        pg_drop(ctx); /* left inside a transaction: start afresh */
    }
    pg_drop(ctx);
    char msg[256];
    ctx->conn = pg_connect(ctx, msg, sizeof(msg));
    if (!ctx->conn) {
        sl_instance_error(ctx->ins, "postgres: cannot connect: %s", msg);
        return SL_ERR_RETRY;
    }
    int rc = pg_create(ctx, ctx->sql.create_commits, "creating the commit table");
    if (rc == SL_OK && ctx->sql.create_table) {
        rc = pg_create(ctx, ctx->sql.create_table, "creating the table");
    }
    if (rc == SL_OK) {
        rc = pg_prepare(ctx, PG_STMT_CLAIM, ctx->sql.claim_commit, 5, "preparing the commit row");
    }
    if (rc == SL_OK) {
        rc = pg_simple(ctx, ctx->sql.check_table, "checking that the table has the mapped columns");
    }
    if (rc == SL_OK) {
        rc = pg_prepare(ctx, PG_STMT_INSERT, ctx->sql.insert, (int)ctx->ncols,
                        "preparing the INSERT for the mapped columns and key_columns");
    }
    if (rc == SL_OK && ctx->mode != SL_PG_APPEND) {
        /* Planning finds the unique index that ON CONFLICT needs: fail now, not at the
         * first batch. The arguments are empty arrays, constants. */
        sl_pg_buf sql = {0};
        const char *head = "EXPLAIN EXECUTE " PG_STMT_INSERT "(";
        bool ok = sl__pg_buf_put(&sql, head, strlen(head)) == SL_OK;
        for (size_t i = 0; ok && i < ctx->ncols; i++) {
            ok = sl__pg_buf_put(&sql, i ? ", '{}'" : "'{}'", i ? 6 : 4) == SL_OK;
        }
        ok = ok && sl__pg_buf_put(&sql, ")", 1) == SL_OK;
        rc =
            ok ? pg_simple(ctx, sql.p, "checking the conflict target (key_columns)") : SL_ERR_NOMEM;
        sl__pg_buf_free(&sql);
    }
    if (rc != SL_OK) {
        pg_drop(ctx);
        return rc;
    }
    sl_instance_log(ctx->ins, SL_LOG_INFO, "postgres: connected to %s:%s, database %s (server %d)",
                    PQhost(ctx->conn), PQport(ctx->conn), PQdb(ctx->conn),
                    PQserverVersion(ctx->conn));
    sl_instance_set_active(ctx->ins, true);
    return SL_OK;
}

/* ==== Writing rows ==== */

/* The state of one attempt at a batch. */
typedef struct pg_batch {
    const sl_batch_output *out;
    bool careful; /* savepoints: the server rejected data on the first try */
    sl_pg_row row;
    sl_pg_buf *arrays;      /* one array literal per column */
    const sl_record **recs; /* the rows of the statement being built */
    size_t nrecs, cap;
    uint64_t written, skipped;
} pg_batch;

/* Leaves r out of the batch: the engine counts, logs and dead-letters it. Returns SL_OK, or
 * the code that aborts the write (errors.tolerance none). */
static int pg_reject(pg_batch *b, const sl_record *r, const char *why)
{
    b->skipped++;
    return sl_batch_output_reject(b->out, r, why);
}

/* Builds the row of r into b->row. SL_OK, SL_ERR_RECORD (rejected: leave it out), NOMEM,
 * or the code that aborts the write. */
static int pg_row(sl_pg_ctx *ctx, pg_batch *b, const sl_record *r)
{
    char why[256];
    int rc = sl__pg_row_build(ctx->cols, ctx->ncols, ctx->need_json, r, b->out->batch_time,
                              b->out->window_ms, &b->row, why, sizeof(why));
    if (rc == SL_ERR_RECORD) {
        int rrc = pg_reject(b, r, why);
        return rrc == SL_OK ? SL_ERR_RECORD : rrc;
    }
    return rc;
}

/* append, first try: the whole batch in one COPY. */
static int pg_copy_batch(sl_pg_ctx *ctx, pg_batch *b)
{
    int rc = SL_OK;
    PGresult *res = pg_exec(ctx, ctx->sql.copy, NULL, 0, NULL, "COPY", &rc);
    if (!res) {
        return rc;
    }
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        rc = pg_is_data_error(res) ? PG_ERR_DATA : pg_map_error(ctx, res, "COPY");
        PQclear(res);
        return rc;
    }
    PQclear(res);
    sl_pg_buf data = {0};
    const char *fail = NULL;
    int abort_rc = SL_OK; /* a rejected record stops the write (errors.tolerance none) */
    size_t nparts = b->out->ds ? sl_dataset_partitions(b->out->ds) : 0;
    for (size_t p = 0; p < nparts && !fail; p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(b->out->ds, p, &n);
        for (size_t i = 0; i < n && !fail; i++) {
            int r = pg_row(ctx, b, &recs[i]);
            if (r == SL_ERR_RECORD) {
                continue;
            }
            if (r != SL_OK && r != SL_ERR_NOMEM) {
                fail = "a record was rejected";
                abort_rc = r;
                break;
            }
            if (r != SL_OK || sl__pg_copy_line(&data, &b->row, ctx->ncols) != SL_OK) {
                fail = "out of memory";
                break;
            }
            b->written++;
            if (data.len >= PG_COPY_FLUSH) {
                if (PQputCopyData(ctx->conn, data.p, (int)data.len) != 1) {
                    fail = PQerrorMessage(ctx->conn);
                }
                data.len = 0;
            }
        }
    }
    if (!fail && data.len > 0 && PQputCopyData(ctx->conn, data.p, (int)data.len) != 1) {
        fail = PQerrorMessage(ctx->conn);
    }
    sl__pg_buf_free(&data);
    if (PQputCopyEnd(ctx->conn, fail) != 1) {
        return pg_map_error(ctx, NULL, "COPY");
    }
    char msg[256], clean[200];
    res = pg_wait(ctx->conn, ctx->query_timeout, msg, sizeof(msg));
    if (!res) {
        pg_scrub(ctx, msg, clean, sizeof(clean));
        sl_instance_error(ctx->ins, "postgres: COPY: %s", clean);
        pg_drop(ctx);
        return SL_ERR_RETRY;
    }
    if (pg_res_ok(res)) {
        rc = SL_OK;
    } else if (abort_rc != SL_OK) {
        rc = abort_rc; /* the COPY was abandoned on purpose; the record was reported */
    } else if (fail && strcmp(fail, "out of memory") == 0) {
        sl_instance_error(ctx->ins, "postgres: COPY: out of memory");
        rc = SL_ERR_NOMEM;
    } else {
        rc = pg_is_data_error(res) ? PG_ERR_DATA : pg_map_error(ctx, res, "COPY");
    }
    PQclear(res);
    return rc;
}

/* Runs the prepared INSERT over the rows recs[from, to). *rejected is set when the server
 * rejected the data (nothing else is reported then). */
static int pg_insert_rows(sl_pg_ctx *ctx, pg_batch *b, size_t from, size_t to, PGresult **rejected)
{
    *rejected = NULL;
    for (size_t c = 0; c < ctx->ncols; c++) {
        b->arrays[c].len = 0;
        if (sl__pg_buf_put(&b->arrays[c], "{", 1) != SL_OK) {
            return SL_ERR_NOMEM;
        }
    }
    for (size_t i = from; i < to; i++) {
        char why[256];
        int r = sl__pg_row_build(ctx->cols, ctx->ncols, ctx->need_json, b->recs[i],
                                 b->out->batch_time, b->out->window_ms, &b->row, why, sizeof(why));
        if (r != SL_OK) {
            return r; /* checked when the row was taken: only NOMEM */
        }
        for (size_t c = 0; c < ctx->ncols; c++) {
            if (sl__pg_array_elem(&b->arrays[c], b->row.vals[c], b->row.lens[c], i == from) !=
                SL_OK) {
                return SL_ERR_NOMEM;
            }
        }
    }
    const char **params = calloc(ctx->ncols, sizeof(*params));
    if (!params) {
        return SL_ERR_NOMEM;
    }
    for (size_t c = 0; c < ctx->ncols; c++) {
        if (sl__pg_buf_put(&b->arrays[c], "}", 1) != SL_OK) {
            free(params);
            return SL_ERR_NOMEM;
        }
        params[c] = b->arrays[c].p;
    }
    int rc = SL_OK;
    PGresult *res = pg_exec(ctx, NULL, PG_STMT_INSERT, (int)ctx->ncols, params, "INSERT", &rc);
    free(params);
    if (!res) {
        return rc;
    }
    if (pg_res_ok(res)) {
        PQclear(res);
        return SL_OK;
    }
    if (pg_is_data_error(res)) {
        *rejected = res;
        return PG_ERR_DATA;
    }
    rc = pg_map_error(ctx, res, "INSERT");
    PQclear(res);
    return rc;
}

/* Careful mode: rows one by one, each in a savepoint; rejected ones are skipped. */
static int pg_insert_one_by_one(sl_pg_ctx *ctx, pg_batch *b)
{
    for (size_t i = 0; i < b->nrecs; i++) {
        int rc = pg_simple(ctx, "SAVEPOINT sluice_row", "SAVEPOINT");
        if (rc != SL_OK) {
            return rc;
        }
        PGresult *rej;
        rc = pg_insert_rows(ctx, b, i, i + 1, &rej);
        if (rc == PG_ERR_DATA) {
            char msg[200];
            pg_scrub(ctx, pg_res_msg(rej, ctx->conn), msg, sizeof(msg));
            char why[256];
            snprintf(why, sizeof(why), "rejected by the server: %s (SQLSTATE %s)", msg,
                     pg_sqlstate(rej));
            PQclear(rej);
            b->written--;
            if ((rc = pg_reject(b, b->recs[i], why)) != SL_OK) {
                return rc; /* the transaction is rolled back */
            }
            rc = pg_simple(ctx, "ROLLBACK TO SAVEPOINT sluice_row", "ROLLBACK TO SAVEPOINT");
        } else if (rc == SL_OK) {
            rc = pg_simple(ctx, "RELEASE SAVEPOINT sluice_row", "RELEASE SAVEPOINT");
        }
        if (rc != SL_OK) {
            return rc;
        }
    }
    return SL_OK;
}

/* Sends the rows gathered in b->recs as one statement (careful: in a savepoint, row by row
 * when the server rejects the statement). */
static int pg_flush_rows(sl_pg_ctx *ctx, pg_batch *b)
{
    if (b->nrecs == 0) {
        return SL_OK;
    }
    int rc;
    if (b->careful && (rc = pg_simple(ctx, "SAVEPOINT sluice_stmt", "SAVEPOINT")) != SL_OK) {
        return rc;
    }
    PGresult *rej;
    rc = pg_insert_rows(ctx, b, 0, b->nrecs, &rej);
    PQclear(rej);
    if (rc == PG_ERR_DATA && b->careful) {
        rc = pg_simple(ctx, "ROLLBACK TO SAVEPOINT sluice_stmt", "ROLLBACK TO SAVEPOINT");
        if (rc == SL_OK) {
            rc = pg_insert_one_by_one(ctx, b);
        }
    } else if (rc == SL_OK && b->careful) {
        rc = pg_simple(ctx, "RELEASE SAVEPOINT sluice_stmt", "RELEASE SAVEPOINT");
    }
    b->nrecs = 0;
    return rc;
}

/* upsert and increment, or any mode in careful mode: statements of rows_per_statement. */
static int pg_insert_batch(sl_pg_ctx *ctx, pg_batch *b)
{
    size_t nparts = b->out->ds ? sl_dataset_partitions(b->out->ds) : 0;
    for (size_t p = 0; p < nparts; p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(b->out->ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            int rc = pg_row(ctx, b, &recs[i]);
            if (rc == SL_ERR_RECORD) {
                continue;
            }
            if (rc != SL_OK) {
                return rc;
            }
            if (b->nrecs == b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 256;
                const sl_record **v = realloc(b->recs, cap * sizeof(*v));
                if (!v) {
                    return SL_ERR_NOMEM;
                }
                b->recs = v;
                b->cap = cap;
            }
            b->recs[b->nrecs++] = &recs[i];
            b->written++;
            if (b->nrecs >= (size_t)ctx->rows_per_statement && (rc = pg_flush_rows(ctx, b))) {
                return rc;
            }
        }
    }
    return pg_flush_rows(ctx, b);
}

/* ==== The batch transaction ==== */

/* One attempt at the batch in a transaction. Returns SL_OK (written or skipped), an error,
 * or PG_ERR_DATA when the server rejected data and careful mode should redo it. */
static int pg_txn(sl_pg_ctx *ctx, pg_batch *b, const char *const *key, bool *skipped)
{
    int rc = pg_simple(ctx, "BEGIN", "BEGIN");
    if (rc != SL_OK) {
        return rc;
    }
    /* The commit row first: one round trip both checks and claims the batch. */
    const char *params[5] = {key[0], key[1], key[2], key[3], b->out->inputs ? b->out->inputs : ""};
    PGresult *res = pg_exec(ctx, NULL, PG_STMT_CLAIM, 5, params, "writing the commit row", &rc);
    if (!res) {
        return rc;
    }
    if (!pg_res_ok(res)) {
        rc = pg_map_error(ctx, res, "writing the commit row");
        PQclear(res);
        pg_rollback(ctx);
        return rc;
    }
    bool claimed = PQntuples(res) > 0;
    PQclear(res);
    if (!claimed) {
        *skipped = true;
        return pg_simple(ctx, "ROLLBACK", "ROLLBACK");
    }

    if (ctx->mode == SL_PG_APPEND && !b->careful) {
        rc = pg_copy_batch(ctx, b);
    } else {
        rc = pg_insert_batch(ctx, b);
    }
    if (rc != SL_OK) {
        if (rc == SL_ERR_NOMEM) {
            sl_instance_error(ctx->ins, "postgres: out of memory building batch %" PRId64,
                              b->out->batch_time);
        }
        pg_rollback(ctx);
        return rc;
    }

    if (ctx->commit_retention > 0 && ++ctx->writes % PG_PRUNE_EVERY == 0) {
        char oldest[32];
        snprintf(oldest, sizeof(oldest), "%" PRId64, b->out->batch_time - ctx->commit_retention);
        const char *pp[4] = {key[0], key[1], key[2], oldest};
        res = pg_exec(ctx, ctx->sql.prune_commits, NULL, 4, pp, "pruning the commit table", &rc);
        if (!res) {
            return rc;
        }
        if (!pg_res_ok(res)) {
            rc = pg_map_error(ctx, res, "pruning the commit table");
            PQclear(res);
            pg_rollback(ctx);
            return rc;
        }
        PQclear(res);
    }

    /* The dead letters of the batch exist before it commits (at least once). */
    if ((rc = sl_batch_output_flush_rejects(b->out)) != SL_OK) {
        pg_rollback(ctx);
        return rc;
    }
    res = pg_exec(ctx, "COMMIT", NULL, 0, NULL, "COMMIT", &rc);
    if (!res) {
        return rc; /* committed or not: the retry finds out through the commit row */
    }
    const char *tag = PQcmdStatus(res);
    if (!pg_res_ok(res) || strcmp(tag, "COMMIT") != 0) {
        rc = pg_res_ok(res) ? SL_ERR_RETRY : pg_map_error(ctx, res, "COMMIT");
        if (rc == SL_ERR_RETRY && pg_res_ok(res)) {
            sl_instance_error(ctx->ins, "postgres: COMMIT of batch %" PRId64 " ended as %s",
                              b->out->batch_time, tag);
        }
    }
    PQclear(res);
    return rc;
}

static int pg_batch_init(sl_pg_ctx *ctx, pg_batch *b, const sl_batch_output *out)
{
    memset(b, 0, sizeof(*b));
    b->out = out;
    b->arrays = calloc(ctx->ncols, sizeof(*b->arrays));
    if (!b->arrays || sl__pg_row_init(&b->row, ctx->ncols) != SL_OK) {
        free(b->arrays);
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

static void pg_batch_free(sl_pg_ctx *ctx, pg_batch *b)
{
    for (size_t c = 0; b->arrays && c < ctx->ncols; c++) {
        sl__pg_buf_free(&b->arrays[c]);
    }
    free(b->arrays);
    free(b->recs);
    sl__pg_row_free(&b->row);
}

/* ==== Callbacks ==== */

/* Reads the password out of the conninfo so that messages can be scrubbed of it. */
static int pg_conninfo_check(sl_pg_ctx *ctx, char *errstr, size_t errsize)
{
    if (!ctx->conninfo || !*ctx->conninfo) {
        return SL_OK;
    }
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(ctx->conninfo, &err);
    if (!opts) {
        /* libpq quotes the part it could not read, which may be the password: not shown. */
        char clean[160];
        size_t n = 0;
        bool quoted = false;
        for (const char *p = err ? err : "cannot be parsed"; *p && n + 4 < sizeof(clean); p++) {
            if (*p == '"') {
                if (!quoted) {
                    memcpy(clean + n, "\"***", 4);
                    n += 4;
                } else {
                    clean[n++] = '"';
                }
                quoted = !quoted;
            } else if (!quoted && *p != '\n') {
                clean[n++] = *p;
            }
        }
        clean[n] = '\0';
        snprintf(errstr, errsize, "conninfo: %s", clean);
        PQfreemem(err);
        return SL_ERR_INVAL;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
            ctx->password = strdup(o->val);
            if (!ctx->password) {
                PQconninfoFree(opts);
                snprintf(errstr, errsize, "out of memory");
                return SL_ERR_NOMEM;
            }
        }
    }
    PQconninfoFree(opts);
    return SL_OK;
}

static int pg_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_pg_ctx *ctx = data;
    ctx->ins = ins;
    int rc = sl__pg_config_check(ctx, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    return pg_conninfo_check(ctx, errstr, errsize);
}

/* Connects and prepares. A server that cannot be reached is not an error here (the first
 * batch retries until it can); a table that does not fit the mapping is. */
static int pg_start(void *data, char *errstr, size_t errsize)
{
    sl_pg_ctx *ctx = data;
    int rc = pg_ensure(ctx);
    if (rc == SL_ERR_RETRY) {
        sl_instance_log(ctx->ins, SL_LOG_WARN,
                        "postgres: not reachable yet; batches wait until it is");
        return SL_OK;
    }
    return rc == SL_OK ? SL_OK : SL_ERR_INVAL;
}

/* Writes one batch: see the file comment. Runs on the sink's output thread. */
static int pg_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    sl_pg_ctx *ctx = data;
    int rc = pg_ensure(ctx);
    if (rc != SL_OK) {
        return rc;
    }
    char bt[32];
    snprintf(bt, sizeof(bt), "%" PRId64, out->batch_time);
    const char *key[4] = {out->pipeline ? out->pipeline : "", out->sink ? out->sink : "",
                          ctx->instance, bt};
    pg_batch b;
    if (pg_batch_init(ctx, &b, out) != SL_OK) {
        sl_instance_error(ctx->ins, "postgres: out of memory");
        return SL_ERR_NOMEM;
    }
    bool skipped = false;
    rc = pg_txn(ctx, &b, key, &skipped);
    if (rc == PG_ERR_DATA) {
        pg_rollback(ctx);
        sl_instance_log(ctx->ins, SL_LOG_WARN,
                        "batch %" PRId64 ": the server rejected data; writing it again with a "
                        "savepoint per statement to leave out only the rejected rows",
                        out->batch_time);
        pg_batch_free(ctx, &b);
        if (pg_batch_init(ctx, &b, out) != SL_OK) {
            sl_instance_error(ctx->ins, "postgres: out of memory");
            return SL_ERR_NOMEM;
        }
        b.careful = true;
        rc = pg_ensure(ctx);
        if (rc == SL_OK) {
            rc = pg_txn(ctx, &b, key, &skipped);
        }
    }
    if (rc == SL_OK && skipped) {
        sl_instance_log(ctx->ins, SL_LOG_INFO,
                        "batch %" PRId64 " already committed (a replay): skipped", out->batch_time);
    } else if (rc == SL_OK) {
        /* The engine sums up the rejected records (sl_batch_output_reject). */
        sl_instance_log(ctx->ins, SL_LOG_DEBUG,
                        "batch %" PRId64 ": %" PRIu64 " rows committed, %" PRIu64 " rejected",
                        out->batch_time, b.written, b.skipped);
    } else if (rc == PG_ERR_DATA) {
        rc = SL_ERR_RETRY; /* careful mode handles data errors; cannot happen */
    }
    pg_batch_free(ctx, &b);
    return rc;
}

static void pg_stop(void *data)
{
    sl_pg_ctx *ctx = data;
    if (ctx->ins) {
        pg_drop(ctx);
    }
}

static void pg_destroy(void *data)
{
    sl_pg_ctx *ctx = data;
    if (!ctx->ins) {
        return;
    }
    if (ctx->conn) {
        PQfinish(ctx->conn);
        ctx->conn = NULL;
    }
    sl__pg_config_free(ctx);
    free(ctx->password);
    ctx->password = NULL;
}

/* ==== For the engine: the last committed batch ==== */

int sl_postgres_last_commit(void *data, const char *pipeline, int64_t *batch_time, char **inputs,
                            char *errstr, size_t errsize)
{
    const sl_pg_ctx *ctx = data;
    char msg[256];
    *inputs = NULL;
    PGconn *conn = pg_connect(ctx, msg, sizeof(msg));
    if (!conn) {
        snprintf(errstr, errsize, "postgres: cannot connect: %s", msg);
        return SL_ERR_RETRY;
    }
    int rc = SL_OK;
    const char *params[3] = {pipeline, sl_instance_name(ctx->ins), ctx->instance};
    PGresult *res = NULL;
    if (!PQsendQueryParams(conn, ctx->sql.last_commit, 3, NULL, params, NULL, NULL, 0) ||
        !(res = pg_wait(conn, ctx->query_timeout, msg, sizeof(msg)))) {
        if (!res && !*msg) {
            snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
        }
        char clean[200];
        pg_scrub(ctx, msg, clean, sizeof(clean));
        snprintf(errstr, errsize, "postgres: reading the commit table: %s", clean);
        rc = SL_ERR_RETRY;
    } else if (!pg_res_ok(res)) {
        char clean[200];
        pg_scrub(ctx, pg_res_msg(res, conn), clean, sizeof(clean));
        bool missing = strcmp(pg_sqlstate(res), "42P01") == 0;
        snprintf(errstr, errsize, "postgres: reading the commit table: %s", clean);
        rc = missing ? SL_ERR_NOTFOUND : SL_ERR_IO;
    } else if (PQntuples(res) == 0) {
        snprintf(errstr, errsize, "postgres: no batch committed yet");
        rc = SL_ERR_NOTFOUND;
    } else {
        *batch_time = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        *inputs = strdup(PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1));
        if (!*inputs) {
            snprintf(errstr, errsize, "out of memory");
            rc = SL_ERR_NOMEM;
        }
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* ==== Registration ==== */

static const sl_option pg_options[] = {
    {.name = "conninfo",
     .type = SL_OPT_STR,
     .def = "",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(sl_pg_ctx, conninfo),
     .doc = "libpq connection string or URI (host=... dbname=... or postgresql://...); "
            "empty: the PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE environment"},
    {.name = "table",
     .type = SL_OPT_STR,
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(sl_pg_ctx, table),
     .doc = "the table written to (one identifier, quoted as it is: see schema)"},
    {.name = "schema",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_pg_ctx, schema),
     .doc = "schema of the table and the commit table; default: the search_path"},
    {.name = "mode",
     .type = SL_OPT_ENUM,
     .def = "append",
     .choices = "append|upsert|increment",
     .offset = offsetof(sl_pg_ctx, mode),
     .doc = "append: COPY every record; upsert: INSERT ... ON CONFLICT (key_columns) DO UPDATE "
            "SET col = EXCLUDED.col; increment: numeric columns add up (col = table.col + "
            "EXCLUDED.col), so that partial aggregates of several instances combine"},
    {.name = "columns",
     .type = SL_OPT_LIST,
     .def = "key=key,value=value",
     .offset = offsetof(sl_pg_ctx, columns),
     .doc = "COLUMN=SOURCE[::TYPE] entries; SOURCE: key, value, num, ts, batch_time, "
            "window_start, window_end (the bounds of the window the row comes from: "
            "window_end is batch_time, window_start is batch_time less the window's length, "
            "or less the batch interval when there is no window), topic, partition, offset, "
            "json:PATH, header:NAME (a Kafka header); TYPE: text, bigint, double, numeric, "
            "timestamptz, boolean, jsonb (default from the source: num bigint, ts, batch_time "
            "and the window bounds timestamptz, partition and offset bigint, others text)"},
    {.name = "key_columns",
     .type = SL_OPT_LIST,
     .offset = offsetof(sl_pg_ctx, key_columns),
     .doc = "the conflict target of upsert and increment (the table's primary key or a unique "
            "index); the primary key with create_table"},
    {.name = "create_table",
     .type = SL_OPT_BOOL,
     .def = "false",
     .offset = offsetof(sl_pg_ctx, create_table),
     .doc = "CREATE TABLE IF NOT EXISTS with the columns' types and key_columns as primary key"},
    {.name = "commit_table",
     .type = SL_OPT_STR,
     .def = "sluice_commits",
     .offset = offsetof(sl_pg_ctx, commit_table),
     .doc = "table of committed batches (pipeline, sink, instance, batch_time, inputs, "
            "committed_at), created if missing"},
    {.name = "instance",
     .type = SL_OPT_STR,
     .def = "",
     .offset = offsetof(sl_pg_ctx, instance),
     .doc = "names this instance in the commit table when several instances of one pipeline "
            "write the same table (scaling out): each needs its own, e.g. ${HOSTNAME}"},
    {.name = "connect_timeout",
     .type = SL_OPT_DURATION,
     .def = "5s",
     .min = 100,
     .max = 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_pg_ctx, connect_timeout),
     .doc = "longest wait for a connection; the batch is retried after it"},
    {.name = "query_timeout",
     .type = SL_OPT_DURATION,
     .def = "60s",
     .min = 100,
     .max = 86400000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_pg_ctx, query_timeout),
     .doc = "longest wait for a statement's reply (and TCP user timeout); the connection is "
            "dropped and the batch retried after it"},
    {.name = "rows_per_statement",
     .type = SL_OPT_INT,
     .def = "10000",
     .min = 1,
     .max = 10000000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_pg_ctx, rows_per_statement),
     .doc = "rows per INSERT in upsert and increment mode (append sends one COPY per batch)"},
    {.name = "commit_retention",
     .type = SL_OPT_DURATION,
     .def = "168h",
     .min = 0,
     .max = 8760.0 * 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_pg_ctx, commit_retention),
     .doc = "commit rows older than this (in batch time) are deleted every 100 batches; "
            "0 keeps them all"},
    {0},
};

/* The YAML loader turns on the source's headers when a column maps one (header:NAME). */
static bool pg_wants_headers(const sl_options *opts)
{
    const char *cols = sl_options_get(opts, "columns");
    return cols && strstr(cols, "header:");
}

const sl_connector sl_connector_postgres = {
    .name = "postgres",
    .description = "Writes each batch to a PostgreSQL table in one transaction with a commit "
                   "row, so that a replayed batch is skipped (append, upsert, increment)",
    .flags = SL_SINK,
    .options = pg_options,
    .ctx_size = sizeof(sl_pg_ctx),
    .init = pg_init,
    .start = pg_start,
    .write = pg_write,
    .stop = pg_stop,
    .destroy = pg_destroy,
    .wants_headers = pg_wants_headers,
};

/* postgres_conn.c -- the postgres connection: connecting, statements with a deadline, errors. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "postgres.h"
#include "sl_util.h"

/* ==== Helpers ==== */

/* Copies msg to out with the password replaced by "***" wherever it stands as a word of its
 * own, and the trailing newline that libpq adds removed. */
void sl__pg_scrub(const sl_pg_ctx *ctx, const char *msg, char *out, size_t size)
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
const char *sl__pg_res_msg(const PGresult *res, const PGconn *conn)
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

const char *sl__pg_sqlstate(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

bool sl__pg_res_ok(const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

void sl__pg_drop(sl_pg_ctx *ctx)
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
int sl__pg_map_error(sl_pg_ctx *ctx, PGresult *res, const char *what)
{
    char msg[200];
    const char *state = sl__pg_sqlstate(res);
    bool broken = !ctx->conn || PQstatus(ctx->conn) != CONNECTION_OK;
    sl__pg_scrub(ctx, sl__pg_res_msg(res, ctx->conn), msg, sizeof(msg));
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
        sl__pg_drop(ctx);
    }
    return rc;
}

/* ==== Statements with a deadline ==== */

#define SL_PG_STALL_WARN_MS 10000 /* a statement waiting this long is logged (once) */

/* Waits for the results of the query sent on conn, until timeout_ms. Returns the first
 * error result, else the last result (COPY_IN returns at once), or NULL when the
 * connection failed or the time ran out (msg says which). The caller PQclears. */
PGresult *sl__pg_wait(const sl_pg_ctx *ctx, PGconn *conn, int64_t timeout_ms, char *msg,
                      size_t msgsize)
{
    int64_t start = sl__mono_ms(), deadline = start + timeout_ms;
    bool warned = false;
    PGresult *keep = NULL;
    for (;;) {
        while (PQisBusy(conn)) {
            int64_t now = sl__mono_ms(), left = deadline - now;
            if (!warned && now - start >= SL_PG_STALL_WARN_MS && left > 0) {
                /* A stalled server or network is otherwise silent until query_timeout. */
                warned = true;
                sl_instance_log(ctx->ins, SL_LOG_WARN,
                                "postgres: no reply from %s:%s for %lld s; still waiting, up to "
                                "query_timeout (%lld ms)",
                                PQhost(conn), PQport(conn), (long long)(now - start) / 1000,
                                (long long)timeout_ms);
            }
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
        if (keep && !sl__pg_res_ok(keep)) {
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
PGresult *sl__pg_exec(sl_pg_ctx *ctx, const char *sql, const char *stmt, int nparams,
                      const char *const *params, const char *what, int *rc)
{
    char msg[256], clean[200];
    int sent = sql ? PQsendQueryParams(ctx->conn, sql, nparams, NULL, params, NULL, NULL, 0)
                   : PQsendQueryPrepared(ctx->conn, stmt, nparams, params, NULL, NULL, 0);
    PGresult *res = NULL;
    if (sent) {
        res = sl__pg_wait(ctx, ctx->conn, ctx->query_timeout, msg, sizeof(msg));
    } else {
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(ctx->conn));
    }
    if (!res) {
        sl__pg_scrub(ctx, msg, clean, sizeof(clean));
        sl_instance_error(ctx->ins, "postgres: %s: %s", what, clean);
        sl__pg_drop(ctx);
        *rc = SL_ERR_RETRY;
    }
    return res;
}

/* Runs a statement without parameters whose failure is an error. */
int sl__pg_simple(sl_pg_ctx *ctx, const char *sql, const char *what)
{
    int rc = SL_OK;
    PGresult *res = sl__pg_exec(ctx, sql, NULL, 0, NULL, what, &rc);
    if (!res) {
        return rc;
    }
    if (!sl__pg_res_ok(res)) {
        rc = sl__pg_map_error(ctx, res, what);
    }
    PQclear(res);
    return rc;
}

/* ==== Connecting ==== */

static void pg_notice(void *arg, const char *message)
{
    sl_pg_ctx *ctx = arg;
    char msg[200];
    sl__pg_scrub(ctx, message, msg, sizeof(msg));
    sl_instance_log(ctx->ins, SL_LOG_DEBUG, "postgres: %s", msg);
}

/* True when libpq's connection error says the server refused who we are (SQLSTATE class
 * 28 at connect: a wrong or missing password, an unknown role, no pg_hba.conf entry). libpq
 * gives no SQLSTATE for a failed connection: its message is all there is. */
static bool pg_auth_refused(const char *m)
{
    static const char *const words[] = {
        "password authentication failed", "no password supplied", "authentication failed",
        "pg_hba.conf rejects connection", "no pg_hba.conf entry",
    };
    for (size_t i = 0; m && i < sizeof(words) / sizeof(words[0]); i++) {
        if (strstr(m, words[i])) {
            return true;
        }
    }
    return m && strstr(m, "role \"") && strstr(m, "\" does not exist");
}

/* Connects without blocking longer than connect_timeout. Returns the connection or NULL
 * with msg set (scrubbed) and *auth true when the server refused the credentials (msg then
 * names the user and the server). */
PGconn *sl__pg_connect(const sl_pg_ctx *ctx, char *msg, size_t msgsize, bool *auth)
{
    *auth = false;
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
    int64_t deadline = sl__mono_ms() + ctx->connect_timeout;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        int64_t left = deadline - sl__mono_ms();
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
        char clean[200];
        const char *m = PQerrorMessage(conn);
        sl__pg_scrub(ctx, m, clean, sizeof(clean));
        *auth = pg_auth_refused(m);
        if (*auth) {
            const char *user = PQuser(conn), *host = PQhost(conn), *port = PQport(conn);
            snprintf(msg, msgsize, "authentication failed for user %s at %s:%s: %s",
                     user && *user ? user : "(default)", host && *host ? host : "(default)",
                     port && *port ? port : "5432", clean);
        } else {
            snprintf(msg, msgsize, "%s", clean);
        }
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
    PGresult *res = sl__pg_exec(ctx, sql, NULL, 0, NULL, what, &rc);
    if (!res) {
        return rc;
    }
    const char *st = sl__pg_sqlstate(res);
    if (!sl__pg_res_ok(res) && strcmp(st, "42P07") != 0 && strcmp(st, "23505") != 0) {
        rc = sl__pg_map_error(ctx, res, what);
    }
    PQclear(res);
    return rc;
}

static int pg_prepare(sl_pg_ctx *ctx, const char *name, const char *sql, int nparams,
                      const char *what)
{
    char msg[256], clean[200];
    if (!PQsendPrepare(ctx->conn, name, sql, nparams, NULL)) {
        sl__pg_scrub(ctx, PQerrorMessage(ctx->conn), clean, sizeof(clean));
        sl_instance_error(ctx->ins, "postgres: %s: %s", what, clean);
        sl__pg_drop(ctx);
        return SL_ERR_RETRY;
    }
    PGresult *res = sl__pg_wait(ctx, ctx->conn, ctx->query_timeout, msg, sizeof(msg));
    if (!res) {
        sl__pg_scrub(ctx, msg, clean, sizeof(clean));
        sl_instance_error(ctx->ins, "postgres: %s: %s", what, clean);
        sl__pg_drop(ctx);
        return SL_ERR_RETRY;
    }
    int rc = sl__pg_res_ok(res) ? SL_OK : sl__pg_map_error(ctx, res, what);
    PQclear(res);
    return rc;
}

/* Connects when there is no usable connection, then creates the commit and positions
 * tables (and the table with create_table), checks that the table has the mapped columns and
 * prepares the statements. Returns SL_OK, SL_ERR_RETRY (server unreachable) or SL_ERR_FATAL (the
 * server refused the credentials, or the table does not fit the mapping). */
int sl__pg_ensure(sl_pg_ctx *ctx)
{
    if (ctx->conn && PQstatus(ctx->conn) == CONNECTION_OK) {
        if (PQtransactionStatus(ctx->conn) == PQTRANS_IDLE) {
            return SL_OK;
        }
        sl__pg_drop(ctx); /* left inside a transaction: start afresh */
    }
    sl__pg_drop(ctx);
    char msg[320];
    bool auth = false;
    ctx->conn = sl__pg_connect(ctx, msg, sizeof(msg), &auth);
    ctx->auth_refused = auth;
    if (!ctx->conn && auth) {
        /* Permanent: no retry fixes a wrong password (README, "Errors: retried or not"). */
        sl_instance_error(ctx->ins, "postgres: %s", msg);
        return SL_ERR_FATAL;
    }
    if (!ctx->conn) {
        sl_instance_error(ctx->ins, "postgres: cannot connect: %s", msg);
        return SL_ERR_RETRY;
    }
    int rc = pg_create(ctx, ctx->sql.create_commits, "creating the commit table");
    if (rc == SL_OK) {
        rc = pg_create(ctx, ctx->sql.create_positions, "creating the positions table");
    }
    if (rc == SL_OK && ctx->sql.create_table) {
        rc = pg_create(ctx, ctx->sql.create_table, "creating the table");
    }
    if (rc == SL_OK) {
        rc =
            pg_prepare(ctx, SL_PG_STMT_CLAIM, ctx->sql.claim_commit, 5, "preparing the commit row");
    }
    if (rc == SL_OK) {
        rc = sl__pg_simple(ctx, ctx->sql.check_table,
                           "checking that the table has the mapped columns");
    }
    if (rc == SL_OK) {
        rc = pg_prepare(ctx, SL_PG_STMT_INSERT, ctx->sql.insert, (int)ctx->ncols,
                        "preparing the INSERT for the mapped columns and key_columns");
    }
    if (rc == SL_OK && ctx->mode == SL_PG_UPSERT) {
        rc = pg_prepare(ctx, SL_PG_STMT_REMOVE, ctx->sql.remove, (int)ctx->ncols,
                        "preparing the DELETE of tombstones by key_columns");
    }
    if (rc == SL_OK && ctx->mode != SL_PG_APPEND) {
        /* Planning finds the unique index that ON CONFLICT needs: fail now, not at the
         * first batch. The arguments are empty arrays, constants. */
        sl_buf sql = {0};
        const char *head = "EXPLAIN EXECUTE " SL_PG_STMT_INSERT "(";
        bool ok = sl__buf_append(&sql, head, strlen(head)) == SL_OK;
        for (size_t i = 0; ok && i < ctx->ncols; i++) {
            ok = sl__buf_append(&sql, i ? ", '{}'" : "'{}'", i ? 6 : 4) == SL_OK;
        }
        ok = ok && sl__buf_append(&sql, ")", 1) == SL_OK;
        rc = ok ? sl__pg_simple(ctx, sql.p, "checking the conflict target (key_columns)")
                : SL_ERR_NOMEM;
        sl__buf_free(&sql);
    }
    if (rc != SL_OK) {
        sl__pg_drop(ctx);
        return rc;
    }
    sl_instance_log(ctx->ins, SL_LOG_INFO, "postgres: connected to %s:%s, database %s (server %d)",
                    PQhost(ctx->conn), PQport(ctx->conn), PQdb(ctx->conn),
                    PQserverVersion(ctx->conn));
    sl_instance_set_active(ctx->ins, true);
    return SL_OK;
}

/* sluice check --connect: a libpq connection (and login) within connect_timeout, closed at
 * once. The endpoint is the server libpq reached, or the conninfo's (password scrubbed). */
int sl__pg_probe(void *vctx, sl_probe_report_fn report, void *opaque)
{
    const sl_pg_ctx *ctx = vctx;
    char msg[512] = "", endpoint[300];
    bool auth;
    PGconn *conn = sl__pg_connect(ctx, msg, sizeof(msg), &auth);
    if (conn) {
        snprintf(endpoint, sizeof(endpoint), "postgres %s:%s/%s", PQhost(conn), PQport(conn),
                 PQdb(conn));
        PQfinish(conn);
        report(opaque, endpoint, true, "connected and logged in");
    } else {
        report(opaque, "postgres", false, msg[0] ? msg : "cannot connect");
    }
    return SL_OK;
}

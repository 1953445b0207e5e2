/* postgres.c -- the postgres sink (libpq): its callbacks, the last commit, its registration.
 *
 * Each batch is written in one transaction together with its row in the commit table
 * (postgres_write.c), on a connection kept by postgres_conn.c. Every call of the sink runs
 * on its output thread, one at a time; sl__postgres_last_commit uses a connection of its own. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "postgres.h"

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
    int rc = sl__pg_ensure(ctx);
    if (rc == SL_ERR_RETRY) {
        sl_instance_log(ctx->ins, SL_LOG_WARN,
                        "postgres: not reachable yet; batches wait until it is");
        return SL_OK;
    }
    return rc == SL_OK ? SL_OK : SL_ERR_INVAL;
}

/* Writes one batch (see postgres_write.c). Runs on the sink's output thread. */
static int pg_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    return sl__pg_batch_write(data, out);
}

static void pg_stop(void *data)
{
    sl_pg_ctx *ctx = data;
    if (ctx->ins) {
        sl__pg_drop(ctx);
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

int sl__postgres_last_commit(void *data, const char *pipeline, int64_t *batch_time, char **inputs,
                             char *errstr, size_t errsize)
{
    const sl_pg_ctx *ctx = data;
    char msg[256];
    *inputs = NULL;
    PGconn *conn = sl__pg_connect(ctx, msg, sizeof(msg));
    if (!conn) {
        snprintf(errstr, errsize, "postgres: cannot connect: %s", msg);
        return SL_ERR_RETRY;
    }
    int rc = SL_OK;
    const char *params[3] = {pipeline, sl_instance_name(ctx->ins), ctx->instance};
    PGresult *res = NULL;
    if (!PQsendQueryParams(conn, ctx->sql.last_commit, 3, NULL, params, NULL, NULL, 0) ||
        !(res = sl__pg_wait(conn, ctx->query_timeout, msg, sizeof(msg)))) {
        if (!res && !*msg) {
            snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
        }
        char clean[200];
        sl__pg_scrub(ctx, msg, clean, sizeof(clean));
        snprintf(errstr, errsize, "postgres: reading the commit table: %s", clean);
        rc = SL_ERR_RETRY;
    } else if (!sl__pg_res_ok(res)) {
        char clean[200];
        sl__pg_scrub(ctx, sl__pg_res_msg(res, conn), clean, sizeof(clean));
        bool missing = strcmp(sl__pg_sqlstate(res), "42P01") == 0;
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

const sl_connector sl__connector_postgres = {
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

/* postgres.c -- the postgres sink (libpq): its callbacks, the last commit, its registration.
 *
 * Each batch is written in one transaction together with its row in the commit table
 * (postgres_write.c), on a connection kept by postgres_conn.c. Every call of the sink runs
 * on its output thread, one at a time; sl__postgres_last_commit and the positions callback
 * use a connection of their own. */
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
 * batch retries until it can); refused credentials (SL_ERR_FATAL) and a table that does not
 * fit the mapping (SL_ERR_INVAL) are: the pipeline does not run. */
static int pg_start(void *data, char *errstr, size_t errsize)
{
    sl_pg_ctx *ctx = data;
    int rc = sl__pg_ensure(ctx);
    if (rc == SL_ERR_RETRY) {
        sl_instance_log(ctx->ins, SL_LOG_WARN,
                        "postgres: not reachable yet; batches wait until it is");
        return SL_OK;
    }
    if (rc == SL_ERR_FATAL && ctx->auth_refused) {
        return SL_ERR_FATAL;
    }
    return rc == SL_OK ? SL_OK : SL_ERR_INVAL;
}

/* Writes one batch (see postgres_write.c). Runs on the sink's output thread. */
static int pg_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    return sl__pg_batch_write(data, out, errstr, errsize);
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

/* ==== For the engine: the last committed batch, the input positions ==== */

/* Runs sql with text parameters on a connection of its own (closed before returning), for
 * callers on other threads than the sink's writes. SL_OK with *out (a TUPLES_OK result,
 * the caller PQclears); else errstr says what failed in doing what: SL_ERR_RETRY when the
 * server cannot be reached or did not reply, SL_ERR_NOTFOUND when a table is missing,
 * SL_ERR_IO for another error. */
static int pg_query_apart(const sl_pg_ctx *ctx, const char *sql, int nparams,
                          const char *const *params, const char *what, PGresult **out, char *errstr,
                          size_t errsize)
{
    char msg[320], clean[200];
    *out = NULL;
    bool auth = false;
    PGconn *conn = sl__pg_connect(ctx, msg, sizeof(msg), &auth);
    if (!conn) {
        snprintf(errstr, errsize, "postgres: %s%s", auth ? "" : "cannot connect: ", msg);
        return auth ? SL_ERR_IO : SL_ERR_RETRY;
    }
    int rc = SL_OK;
    PGresult *res = NULL;
    if (!PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0) ||
        !(res = sl__pg_wait(ctx, conn, ctx->query_timeout, msg, sizeof(msg)))) {
        if (!res && !*msg) {
            snprintf(msg, sizeof(msg), "%s", PQerrorMessage(conn));
        }
        sl__pg_scrub(ctx, msg, clean, sizeof(clean));
        snprintf(errstr, errsize, "postgres: %s: %s", what, clean);
        rc = SL_ERR_RETRY;
    } else if (!sl__pg_res_ok(res)) {
        sl__pg_scrub(ctx, sl__pg_res_msg(res, conn), clean, sizeof(clean));
        snprintf(errstr, errsize, "postgres: %s: %s", what, clean);
        rc = strcmp(sl__pg_sqlstate(res), "42P01") == 0 ? SL_ERR_NOTFOUND : SL_ERR_IO;
        PQclear(res);
    } else {
        *out = res;
    }
    PQfinish(conn);
    return rc;
}

int sl__postgres_last_commit(void *data, const char *pipeline, int64_t *batch_time, char **inputs,
                             char *errstr, size_t errsize)
{
    const sl_pg_ctx *ctx = data;
    *inputs = NULL;
    const char *params[3] = {pipeline, sl_instance_name(ctx->ins), ctx->instance};
    PGresult *res = NULL;
    int rc = pg_query_apart(ctx, ctx->sql.last_commit, 3, params, "reading the commit table", &res,
                            errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    if (PQntuples(res) == 0) {
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
    return rc;
}

/* The positions callback: one query, on a connection of its own (write may run meanwhile),
 * for all of pos[0..n). A positions table that does not exist yet holds nothing (-1).
 * @locality the engine's timer thread */
static int pg_positions_read(void *data, const char *pipeline, sl_position *pos, size_t n,
                             char *errstr, size_t errsize)
{
    const sl_pg_ctx *ctx = data;
    for (size_t i = 0; i < n; i++) {
        pos[i].next = -1;
    }
    if (n == 0) {
        return SL_OK;
    }
    sl_input_range *r = calloc(n, sizeof(*r));
    sl_buf arr[4] = {{0}};
    int rc = SL_ERR_NOMEM;
    PGresult *res = NULL;
    if (r) {
        for (size_t i = 0; i < n; i++) {
            r[i] = (sl_input_range){
                .source = pos[i].source, .topic = pos[i].topic, .partition = pos[i].partition};
        }
        rc = sl__pg_range_arrays(r, n, arr);
    }
    if (rc != SL_OK) {
        snprintf(errstr, errsize, "postgres: out of memory reading the input positions");
        goto done;
    }
    const char *params[SL_PG_POS_READ_PARAMS] = {pipeline, sl_instance_name(ctx->ins), arr[0].p,
                                                 arr[1].p, arr[2].p};
    rc = pg_query_apart(ctx, ctx->sql.read_positions, SL_PG_POS_READ_PARAMS, params,
                        "reading the input positions", &res, errstr, errsize);
    if (rc == SL_ERR_NOTFOUND) {
        errstr[0] = '\0';
        rc = SL_OK; /* no positions table yet: nothing held */
        goto done;
    }
    if (rc != SL_OK) {
        goto done;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        long long ord = strtoll(PQgetvalue(res, row, 0), NULL, 10);
        if (ord >= 1 && (size_t)ord <= n && !PQgetisnull(res, row, 1)) {
            int64_t next = strtoll(PQgetvalue(res, row, 1), NULL, 10);
            pos[ord - 1].next = next < 0 ? -1 : next;
        }
    }
done:
    PQclear(res);
    for (int a = 0; a < 4; a++) {
        sl__buf_free(&arr[a]);
    }
    free(r);
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
            "SET col = EXCLUDED.col, and a tombstone (no typed value, a NULL value: a key that "
            "left a window) DELETEs its key's row; increment: numeric columns add up (col = "
            "table.col + EXCLUDED.col), so that partial aggregates of several instances combine "
            "(tombstones add nothing)"},
    {.name = "columns",
     .type = SL_OPT_LIST,
     .def = "key=key,value=value",
     .offset = offsetof(sl_pg_ctx, columns),
     .doc = "COLUMN=SOURCE[::TYPE] entries; SOURCE: key, value, num, ts, batch_time, "
            "window_start, window_end (the bounds of the window the row comes from: "
            "window_end is batch_time, window_start is batch_time less the window's length, "
            "or less the batch interval when there is no window; an event-time window's own "
            "bounds), topic, partition, offset, "
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
    {.name = "positions_table",
     .type = SL_OPT_STR,
     .def = "sluice_positions",
     .offset = offsetof(sl_pg_ctx, positions_table),
     .doc = "table of input positions, in the schema of the commit table, created if missing: "
            "per (pipeline, sink, source, topic, kafka_partition) the Kafka offset after the "
            "last record the sink holds (next_offset), written in each batch's transaction "
            "with updated_at and the instance that wrote it. A batch is written only when "
            "each of its partitions' ranges starts there, and an instance that takes over a "
            "partition (consumer group) resumes there: exactly once across instances"},
    {.name = "instance",
     .type = SL_OPT_STR,
     .def = "",
     .offset = offsetof(sl_pg_ctx, instance),
     .doc = "names this instance in the commit and positions tables when several instances "
            "of one pipeline write the same table (scaling out): each needs its own, e.g. "
            "${HOSTNAME}"},
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
                   "row and the input positions, so that a replayed batch is skipped and a "
                   "partition moved to another instance resumes where the table is (append, "
                   "upsert, increment)",
    .flags = SL_SINK,
    .options = pg_options,
    .ctx_size = sizeof(sl_pg_ctx),
    .init = pg_init,
    .start = pg_start,
    .write = pg_write,
    .stop = pg_stop,
    .destroy = pg_destroy,
    .probe = sl__pg_probe,
    .wants_headers = pg_wants_headers,
    .positions = pg_positions_read,
};

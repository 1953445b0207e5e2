/* postgres_write.c -- the postgres sink's batch: one transaction with its commit row.
 *
 *   BEGIN
 *   when the batch has input ranges (out->ranges, a partitioned source's offsets):
 *     INSERT INTO sluice_positions ... ON CONFLICT DO NOTHING   (a row for a new partition)
 *     SELECT ... FROM sluice_positions JOIN unnest(ranges) ... FOR UPDATE
 *       -> each range starts at its partition's position: go on; every range is held
 *          already: ROLLBACK, skip it; else ROLLBACK, SL_ERR_FENCED (another instance owns
 *          the partition now, or this one is behind)
 *     INSERT INTO sluice_positions ... ON CONFLICT DO UPDATE SET next_offset = until
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
 * by the commit row. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "postgres.h"

/* Bytes of COPY data sent at once: the server parses one chunk while the next is formatted. */
#define PG_COPY_FLUSH  (32 * 1024)
#define PG_PRUNE_EVERY 100 /* batches between deletions of old commit rows */
#define PG_ERR_DATA    1   /* internal: the server rejected data, redo with savepoints */

/* ==== Helpers ==== */

/* True when the server rejected data: a value (22), a constraint (23) or a trigger's
 * exception (P0). Such a batch is redone row by row. */
static bool pg_is_data_error(const PGresult *res)
{
    const char *s = sl__pg_sqlstate(res);
    return strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0 || strncmp(s, "P0", 2) == 0;
}

/* Ends a failed transaction, if the connection still lives. */
static void pg_rollback(sl_pg_ctx *ctx)
{
    if (ctx->conn && PQstatus(ctx->conn) == CONNECTION_OK &&
        PQtransactionStatus(ctx->conn) != PQTRANS_IDLE) {
        char msg[256];
        if (PQsendQuery(ctx->conn, "ROLLBACK")) {
            PQclear(sl__pg_wait(ctx, ctx->conn, ctx->query_timeout, msg, sizeof(msg)));
        }
        if (PQtransactionStatus(ctx->conn) != PQTRANS_IDLE) {
            sl__pg_drop(ctx);
        }
    }
}

/* ==== Writing rows ==== */

/* The state of one attempt at a batch. */
typedef struct pg_batch {
    const sl_batch_output *out;
    char fenced[256]; /* why the batch was fenced (SL_ERR_FENCED) */
    bool careful;     /* savepoints: the server rejected data on the first try */
    sl_pg_row row;
    sl_buf *arrays;         /* one array literal per column */
    const sl_record **recs; /* the rows of the statement being built */
    size_t nrecs, cap;
    const sl_record **gone; /* upsert: tombstones, whose rows are deleted */
    size_t ngone, capgone;
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
    sl_record_when when = sl_batch_output_when(b->out, r);
    int rc = sl__pg_row_build(ctx->cols, ctx->ncols, ctx->need_json, r, &when, &b->row, why,
                              sizeof(why));
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
    PGresult *res = sl__pg_exec(ctx, ctx->sql.copy, NULL, 0, NULL, "COPY", &rc);
    if (!res) {
        return rc;
    }
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        rc = pg_is_data_error(res) ? PG_ERR_DATA : sl__pg_map_error(ctx, res, "COPY");
        PQclear(res);
        return rc;
    }
    PQclear(res);
    sl_buf data = {0};
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
                sl__buf_reset(&data);
            }
        }
    }
    if (!fail && data.len > 0 && PQputCopyData(ctx->conn, data.p, (int)data.len) != 1) {
        fail = PQerrorMessage(ctx->conn);
    }
    sl__buf_free(&data);
    if (PQputCopyEnd(ctx->conn, fail) != 1) {
        return sl__pg_map_error(ctx, NULL, "COPY");
    }
    char msg[256], clean[200];
    res = sl__pg_wait(ctx, ctx->conn, ctx->query_timeout, msg, sizeof(msg));
    if (!res) {
        sl__pg_scrub(ctx, msg, clean, sizeof(clean));
        sl_instance_error(ctx->ins, "postgres: COPY: %s", clean);
        sl__pg_drop(ctx);
        return SL_ERR_RETRY;
    }
    if (sl__pg_res_ok(res)) {
        rc = SL_OK;
    } else if (abort_rc != SL_OK) {
        rc = abort_rc; /* the COPY was abandoned on purpose; the record was reported */
    } else if (fail && strcmp(fail, "out of memory") == 0) {
        sl_instance_error(ctx->ins, "postgres: COPY: out of memory");
        rc = SL_ERR_NOMEM;
    } else {
        rc = pg_is_data_error(res) ? PG_ERR_DATA : sl__pg_map_error(ctx, res, "COPY");
    }
    PQclear(res);
    return rc;
}

/* Runs the prepared INSERT over the rows recs[from, to). *rejected is set when the server
 * rejected the data (nothing else is reported then). */
static int pg_exec_rows(sl_pg_ctx *ctx, pg_batch *b, const sl_record *const *recs, size_t from,
                        size_t to, const char *stmt, const char *what, PGresult **rejected)
{
    *rejected = NULL;
    for (size_t c = 0; c < ctx->ncols; c++) {
        sl__buf_reset(&b->arrays[c]);
        if (sl__buf_append(&b->arrays[c], "{", 1) != SL_OK) {
            return SL_ERR_NOMEM;
        }
    }
    for (size_t i = from; i < to; i++) {
        char why[256];
        sl_record_when when = sl_batch_output_when(b->out, recs[i]);
        int r = sl__pg_row_build(ctx->cols, ctx->ncols, ctx->need_json, recs[i], &when, &b->row,
                                 why, sizeof(why));
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
        if (sl__buf_append(&b->arrays[c], "}", 1) != SL_OK) {
            free(params);
            return SL_ERR_NOMEM;
        }
        params[c] = b->arrays[c].p;
    }
    int rc = SL_OK;
    PGresult *res = sl__pg_exec(ctx, NULL, stmt, (int)ctx->ncols, params, what, &rc);
    free(params);
    if (!res) {
        return rc;
    }
    if (sl__pg_res_ok(res)) {
        PQclear(res);
        return SL_OK;
    }
    if (pg_is_data_error(res)) {
        *rejected = res;
        return PG_ERR_DATA;
    }
    rc = sl__pg_map_error(ctx, res, what);
    PQclear(res);
    return rc;
}

static int pg_insert_rows(sl_pg_ctx *ctx, pg_batch *b, size_t from, size_t to, PGresult **rejected)
{
    return pg_exec_rows(ctx, b, b->recs, from, to, SL_PG_STMT_INSERT, "INSERT", rejected);
}

/* upsert: deletes the rows of the tombstones' keys (after the batch's rows). */
static int pg_remove_gone(sl_pg_ctx *ctx, pg_batch *b)
{
    if (b->ngone == 0) {
        return SL_OK;
    }
    PGresult *rej;
    int rc = pg_exec_rows(ctx, b, b->gone, 0, b->ngone, SL_PG_STMT_REMOVE, "DELETE", &rej);
    if (rc == PG_ERR_DATA) {
        rc = sl__pg_map_error(ctx, rej, "DELETE");
    }
    PQclear(rej);
    b->ngone = 0;
    return rc;
}

/* Careful mode: rows one by one, each in a savepoint; rejected ones are skipped. */
static int pg_insert_one_by_one(sl_pg_ctx *ctx, pg_batch *b)
{
    for (size_t i = 0; i < b->nrecs; i++) {
        int rc = sl__pg_simple(ctx, "SAVEPOINT sluice_row", "SAVEPOINT");
        if (rc != SL_OK) {
            return rc;
        }
        PGresult *rej;
        rc = pg_insert_rows(ctx, b, i, i + 1, &rej);
        if (rc == PG_ERR_DATA) {
            char msg[200];
            sl__pg_scrub(ctx, sl__pg_res_msg(rej, ctx->conn), msg, sizeof(msg));
            char why[256];
            snprintf(why, sizeof(why), "rejected by the server: %s (SQLSTATE %s)", msg,
                     sl__pg_sqlstate(rej));
            PQclear(rej);
            b->written--;
            if ((rc = pg_reject(b, b->recs[i], why)) != SL_OK) {
                return rc; /* the transaction is rolled back */
            }
            rc = sl__pg_simple(ctx, "ROLLBACK TO SAVEPOINT sluice_row", "ROLLBACK TO SAVEPOINT");
        } else if (rc == SL_OK) {
            rc = sl__pg_simple(ctx, "RELEASE SAVEPOINT sluice_row", "RELEASE SAVEPOINT");
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
    if (b->careful && (rc = sl__pg_simple(ctx, "SAVEPOINT sluice_stmt", "SAVEPOINT")) != SL_OK) {
        return rc;
    }
    PGresult *rej;
    rc = pg_insert_rows(ctx, b, 0, b->nrecs, &rej);
    PQclear(rej);
    if (rc == PG_ERR_DATA && b->careful) {
        rc = sl__pg_simple(ctx, "ROLLBACK TO SAVEPOINT sluice_stmt", "ROLLBACK TO SAVEPOINT");
        if (rc == SL_OK) {
            rc = pg_insert_one_by_one(ctx, b);
        }
    } else if (rc == SL_OK && b->careful) {
        rc = sl__pg_simple(ctx, "RELEASE SAVEPOINT sluice_stmt", "RELEASE SAVEPOINT");
    }
    b->nrecs = 0;
    return rc;
}

static int gone_add(pg_batch *b, const sl_record *r)
{
    if (b->ngone == b->capgone) {
        size_t cap = b->capgone ? b->capgone * 2 : 64;
        const sl_record **v = realloc(b->gone, cap * sizeof(*v));
        if (!v) {
            return SL_ERR_NOMEM;
        }
        b->gone = v;
        b->capgone = cap;
    }
    b->gone[b->ngone++] = r;
    return SL_OK;
}

/* upsert and increment, or any mode in careful mode: statements of rows_per_statement. */
static int pg_insert_batch(sl_pg_ctx *ctx, pg_batch *b)
{
    b->ngone = 0;
    size_t nparts = b->out->ds ? sl_dataset_partitions(b->out->ds) : 0;
    for (size_t p = 0; p < nparts; p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(b->out->ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            if (ctx->mode != SL_PG_APPEND && sl_record_is_tombstone(&recs[i])) {
                /* A key with no value any more (it left a window): upsert deletes its row
                 * (none in a table keyed by the window's bounds), increment adds nothing. */
                if (ctx->mode == SL_PG_INCREMENT) {
                    continue;
                }
                /* Its key columns must be computable (json: ones cannot be): else rejected
                 * with the reason, as any record whose row cannot be built. */
                int rc = pg_row(ctx, b, &recs[i]);
                if (rc == SL_OK) {
                    rc = gone_add(b, &recs[i]);
                }
                if (rc != SL_OK && rc != SL_ERR_RECORD) {
                    return rc;
                }
                continue;
            }
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
    int rc = pg_flush_rows(ctx, b);
    return rc == SL_OK ? pg_remove_gone(ctx, b) : rc;
}

/* ==== Input positions ==== */

sl_position_check sl__pg_positions_decide(const sl_input_range *r, size_t n, const int64_t *held,
                                          char *why, size_t whysize)
{
    size_t write = n, skip = n; /* the first range of each verdict */
    for (size_t i = 0; i < n; i++) {
        sl_position_check c = sl_position_check_range(&r[i], held[i]);
        if (c == SL_POSITION_FENCED) {
            snprintf(why, whysize,
                     "%s [%" PRId32 "]: this sink is at offset %" PRId64
                     ", the batch reads %" PRId64 "-%" PRId64,
                     r[i].topic, r[i].partition, held[i], r[i].from, r[i].until);
            return SL_POSITION_FENCED;
        }
        if (c == SL_POSITION_WRITE && write == n) {
            write = i;
        } else if (c == SL_POSITION_SKIP && skip == n) {
            skip = i;
        }
    }
    if (skip == n) {
        return SL_POSITION_WRITE;
    }
    if (write == n) {
        return SL_POSITION_SKIP;
    }
    snprintf(why, whysize,
             "%s [%" PRId32 "]: this sink is at offset %" PRId64 ", the batch reads %" PRId64
             "-%" PRId64 " (held already), but %s [%" PRId32 "] %" PRId64 "-%" PRId64
             " is not held (the sink is at %" PRId64 ")",
             r[skip].topic, r[skip].partition, held[skip], r[skip].from, r[skip].until,
             r[write].topic, r[write].partition, r[write].from, r[write].until, held[write]);
    return SL_POSITION_FENCED;
}

/* A partition that two ranges of the batch read (the engine gives each once): its index,
 * or n when there is none. */
static size_t pg_ranges_duplicate(const sl_input_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            if (r[i].partition == r[j].partition && strcmp(r[i].topic, r[j].topic) == 0 &&
                strcmp(r[i].source ? r[i].source : "", r[j].source ? r[j].source : "") == 0) {
                return i;
            }
        }
    }
    return n;
}

/* Runs one position statement; on an error result reports it and rolls back. */
static int pg_positions_exec(sl_pg_ctx *ctx, const char *sql, int nparams,
                             const char *const *params, PGresult **out)
{
    int rc = SL_OK;
    *out = sl__pg_exec(ctx, sql, NULL, nparams, params, "the input positions", &rc);
    if (!*out) {
        return rc;
    }
    if (!sl__pg_res_ok(*out)) {
        rc = sl__pg_map_error(ctx, *out, "the input positions");
        PQclear(*out);
        *out = NULL;
        pg_rollback(ctx);
    }
    return rc;
}

/* In the batch's transaction: locks the positions of the batch's partitions (inserting the
 * rows of new ones first), decides with sl__pg_positions_decide and, on WRITE, moves every
 * partition to its range's until. SL_OK with *verdict set (b->fenced says why when FENCED),
 * or an error (the transaction rolled back or the connection dropped). */
static int pg_positions(sl_pg_ctx *ctx, pg_batch *b, const char *const *key,
                        sl_position_check *verdict)
{
    const sl_batch_output *out = b->out;
    sl_buf arr[4] = {{0}};
    int64_t *held = malloc(out->nranges * sizeof(*held));
    int rc = SL_OK;
    PGresult *res = NULL;
    if (!held || sl__pg_range_arrays(out->ranges, out->nranges, arr) != SL_OK) {
        sl_instance_error(ctx->ins, "postgres: out of memory reading the input positions");
        pg_rollback(ctx);
        rc = SL_ERR_NOMEM;
        goto done;
    }
    const char *params[SL_PG_POS_SAVE_PARAMS] = {key[0],   key[1], arr[0].p, arr[1].p,
                                                 arr[2].p, key[2], arr[3].p};
    rc = pg_positions_exec(ctx, ctx->sql.seed_positions, SL_PG_POS_SEED_PARAMS, params, &res);
    PQclear(res);
    res = NULL;
    if (rc != SL_OK) {
        goto done;
    }
    rc = pg_positions_exec(ctx, ctx->sql.lock_positions, SL_PG_POS_READ_PARAMS, params, &res);
    if (rc != SL_OK) {
        goto done;
    }
    for (size_t i = 0; i < out->nranges; i++) {
        held[i] = -1;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        long long ord = strtoll(PQgetvalue(res, row, 0), NULL, 10);
        if (ord >= 1 && (size_t)ord <= out->nranges && !PQgetisnull(res, row, 1)) {
            held[ord - 1] = strtoll(PQgetvalue(res, row, 1), NULL, 10);
        }
    }
    PQclear(res);
    res = NULL;
    *verdict =
        sl__pg_positions_decide(out->ranges, out->nranges, held, b->fenced, sizeof(b->fenced));
    if (*verdict == SL_POSITION_WRITE) {
        rc = pg_positions_exec(ctx, ctx->sql.save_positions, SL_PG_POS_SAVE_PARAMS, params, &res);
        PQclear(res);
    }
done:
    for (int a = 0; a < 4; a++) {
        sl__buf_free(&arr[a]);
    }
    free(held);
    return rc;
}

/* ==== The batch transaction ==== */

/* One attempt at the batch in a transaction. Returns SL_OK (written or skipped),
 * SL_ERR_FENCED (b->fenced says why), an error, or PG_ERR_DATA when the server rejected data
 * and careful mode should redo it. */
static int pg_txn(sl_pg_ctx *ctx, pg_batch *b, const char *const *key, bool *skipped)
{
    int rc = sl__pg_simple(ctx, "BEGIN", "BEGIN");
    if (rc != SL_OK) {
        return rc;
    }
    /* The positions first: a batch another instance wrote (or is writing: this one waits
     * for its row locks) is never claimed by batch time below. */
    if (b->out->nranges > 0) {
        sl_position_check verdict = SL_POSITION_WRITE;
        if ((rc = pg_positions(ctx, b, key, &verdict)) != SL_OK) {
            return rc;
        }
        if (verdict != SL_POSITION_WRITE) {
            if ((rc = sl__pg_simple(ctx, "ROLLBACK", "ROLLBACK")) != SL_OK) {
                return rc;
            }
            *skipped = verdict == SL_POSITION_SKIP;
            return *skipped ? SL_OK : SL_ERR_FENCED;
        }
    }
    /* The commit row first: one round trip both checks and claims the batch. */
    const char *params[5] = {key[0], key[1], key[2], key[3], b->out->inputs ? b->out->inputs : ""};
    PGresult *res =
        sl__pg_exec(ctx, NULL, SL_PG_STMT_CLAIM, 5, params, "writing the commit row", &rc);
    if (!res) {
        return rc;
    }
    if (!sl__pg_res_ok(res)) {
        rc = sl__pg_map_error(ctx, res, "writing the commit row");
        PQclear(res);
        pg_rollback(ctx);
        return rc;
    }
    bool claimed = PQntuples(res) > 0;
    PQclear(res);
    if (!claimed) {
        *skipped = true;
        return sl__pg_simple(ctx, "ROLLBACK", "ROLLBACK");
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
        res =
            sl__pg_exec(ctx, ctx->sql.prune_commits, NULL, 4, pp, "pruning the commit table", &rc);
        if (!res) {
            return rc;
        }
        if (!sl__pg_res_ok(res)) {
            rc = sl__pg_map_error(ctx, res, "pruning the commit table");
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
    res = sl__pg_exec(ctx, "COMMIT", NULL, 0, NULL, "COMMIT", &rc);
    if (!res) {
        return rc; /* committed or not: the retry finds out through the commit row */
    }
    const char *tag = PQcmdStatus(res);
    if (!sl__pg_res_ok(res) || strcmp(tag, "COMMIT") != 0) {
        rc = sl__pg_res_ok(res) ? SL_ERR_RETRY : sl__pg_map_error(ctx, res, "COMMIT");
        if (rc == SL_ERR_RETRY && sl__pg_res_ok(res)) {
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
        sl__buf_free(&b->arrays[c]);
    }
    free(b->arrays);
    free(b->recs);
    free(b->gone);
    sl__pg_row_free(&b->row);
}

int sl__pg_batch_write(sl_pg_ctx *ctx, const sl_batch_output *out, char *errstr, size_t errsize)
{
    size_t dup = pg_ranges_duplicate(out->ranges, out->nranges);
    if (dup < out->nranges) {
        snprintf(errstr, errsize, "postgres: batch %" PRId64 " reads %s [%" PRId32 "] twice",
                 out->batch_time, out->ranges[dup].topic, out->ranges[dup].partition);
        return SL_ERR_INVAL;
    }
    int rc = sl__pg_ensure(ctx);
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
        rc = sl__pg_ensure(ctx);
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
    } else if (rc == SL_ERR_FENCED) {
        snprintf(errstr, errsize, "%s", b.fenced);
    } else if (rc == PG_ERR_DATA) {
        rc = SL_ERR_RETRY; /* careful mode handles data errors; cannot happen */
    }
    pg_batch_free(ctx, &b);
    return rc;
}

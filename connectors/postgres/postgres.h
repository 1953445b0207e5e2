/* postgres.h -- the postgres sink's context: each batch is written in one transaction
 * together with its row in the commit table, so that a replayed batch is skipped.
 *
 * postgres_config.c parses the options and generates every SQL statement once, before any
 * connection (pure functions, unit-tested); postgres_rows.c turns records into column
 * values and escapes them for COPY and for array parameters (pure too); postgres_conn.c
 * holds the connection and runs statements with a deadline; postgres_write.c writes a batch
 * in its transaction; postgres.c holds the callbacks and the registration. Only this folder
 * includes libpq-fe.h: the context keeps the connection as the opaque struct pg_conn, and
 * the declarations below name libpq's PGconn and PGresult by their struct tags. */
#ifndef SL_POSTGRES_H
#define SL_POSTGRES_H

#include <stdatomic.h>

#include "sl_connector.h"
#include "sl_util.h"

struct pg_conn;   /* libpq's PGconn */
struct pg_result; /* libpq's PGresult */

/* The mode option, in the order of its choices. */
typedef enum sl_pg_mode {
    SL_PG_APPEND = 0,    /* COPY FROM STDIN */
    SL_PG_UPSERT = 1,    /* INSERT ... ON CONFLICT DO UPDATE SET c = EXCLUDED.c */
    SL_PG_INCREMENT = 2, /* ... SET c = table.c + EXCLUDED.c for numeric columns */
} sl_pg_mode;

/* Where a column's value comes from. */
typedef enum sl_pg_source {
    SL_PG_SRC_KEY,          /* key bytes */
    SL_PG_SRC_VALUE,        /* the typed value if any, else the value bytes (as print()) */
    SL_PG_SRC_NUM,          /* the typed value, else the value bytes read as a number */
    SL_PG_SRC_TS,           /* record timestamp */
    SL_PG_SRC_BATCH_TIME,   /* the batch's time */
    SL_PG_SRC_WINDOW_START, /* the start of the record's window (sl_batch_output_when) */
    SL_PG_SRC_WINDOW_END,   /* its end: the batch's time, or an event-time window's end */
    SL_PG_SRC_TOPIC,        /* meta: topic, file name or peer */
    SL_PG_SRC_PARTITION,    /* meta: partition */
    SL_PG_SRC_OFFSET,       /* meta: offset or line number */
    SL_PG_SRC_JSON,         /* a field of the value parsed as JSON */
    SL_PG_SRC_HEADER,       /* a Kafka header's value (the last of that name); path[0] the name */
} sl_pg_source;

/* The SQL type of a column: inferred from the source, or given as col=source::type. */
typedef enum sl_pg_type {
    SL_PG_TEXT,
    SL_PG_BIGINT,
    SL_PG_DOUBLE,
    SL_PG_NUMERIC,
    SL_PG_TIMESTAMPTZ,
    SL_PG_BOOLEAN,
    SL_PG_JSONB,
} sl_pg_type;

typedef struct sl_pg_column {
    char *name;  /* as written in the option (the table's column name) */
    char *qname; /* quoted identifier */
    sl_pg_source src;
    sl_pg_type type;
    sl_jpath path; /* SL_PG_SRC_JSON: the dotted path */
    char *header;  /* SL_PG_SRC_HEADER: the header's name */
    bool key;      /* one of key_columns */
} sl_pg_column;

/* Every statement the sink runs, generated at init. Parameters are $n, never data. */
typedef struct sl_pg_sql {
    char *create_commits; /* CREATE TABLE IF NOT EXISTS commit table */
    char *create_table;   /* NULL unless create_table */
    char *check_table;    /* SELECT the mapped columns ... LIMIT 0: the table fits */
    char *claim_commit;   /* $1 pipeline $2 sink $3 instance $4 batch_time $5 inputs */
    char *prune_commits;  /* $1..$3, $4 oldest batch_time kept */
    char *last_commit;    /* $1..$3: the newest row */
    char *copy;           /* append mode: COPY ... FROM STDIN */
    char *insert;         /* INSERT ... SELECT FROM unnest($1::type[], ...) [ON CONFLICT] */
    char *remove;         /* upsert: DELETE the rows of the keys in unnest($1::type[], ...) */
    /* Input positions, all over one list of parameters (SL_PG_POS_*): $1 pipeline, $2 sink,
     * $3 sources text[], $4 topics text[], $5 partitions int[], $6 instance, $7 untils
     * bigint[]; each statement takes the first nparams of them. */
    char *create_positions; /* CREATE TABLE IF NOT EXISTS positions table */
    char *seed_positions;   /* $1..$6: a row (next_offset -1) for each partition lacking one */
    char *lock_positions;   /* $1..$5: (ordinality, next_offset), locked FOR UPDATE in key order */
    char *read_positions;   /* $1..$5: the same, not locked (the positions callback) */
    char *save_positions;   /* $1..$7: upsert next_offset = until */
} sl_pg_sql;

/* The number of parameters of the position statements (see sl_pg_sql). */
#define SL_PG_POS_READ_PARAMS 5
#define SL_PG_POS_SEED_PARAMS 6
#define SL_PG_POS_SAVE_PARAMS 7

typedef struct sl_pg_ctx {
    /* Options, filled by the engine. */
    const char *conninfo; /* secret; empty: libpq's PG* environment */
    const char *schema;   /* NULL: the search_path */
    const char *table;
    int mode; /* sl_pg_mode */
    const char *columns;
    const char *key_columns;
    bool create_table;
    const char *commit_table;
    const char *positions_table;
    const char *instance;    /* tells instances of one pipeline apart in the commit table */
    int64_t connect_timeout; /* ms */
    int64_t query_timeout;   /* ms */
    int64_t rows_per_statement;
    int64_t commit_retention; /* ms; 0 keeps every commit row */

    /* Derived at init. ins is set first; destroy does nothing more when it is NULL. */
    sl_instance *ins;
    sl_pg_column *cols;
    size_t ncols;
    bool need_json; /* some column reads the value as JSON */
    sl_pg_sql sql;
    char *password; /* the conninfo's password: scrubbed from messages; NULL if none */

    /* Connection: used by the sink's writes only, one at a time. */
    struct pg_conn *conn;
    uint64_t writes;   /* batches written, for pruning every so often */
    bool auth_refused; /* the last connection attempt: the server refused the credentials */
} sl_pg_ctx;

/* ==== postgres_config.c ==== */

/* Checks the options, parses columns and key_columns and generates the SQL. Returns SL_OK
 * or SL_ERR_INVAL / SL_ERR_NOMEM with errstr set. What it allocates is freed by
 * sl__pg_config_free, also after a failure. */
int sl__pg_config_check(sl_pg_ctx *ctx, char *errstr, size_t errsize);
void sl__pg_config_free(sl_pg_ctx *ctx);

/* Parses the columns list ("col=source[::type],...") and key_columns into cols. Returns
 * SL_OK or SL_ERR_INVAL with errstr naming the entry. */
int sl__pg_columns_parse(const char *columns, const char *key_columns, sl_pg_mode mode,
                         sl_pg_column **cols, size_t *ncols, char *errstr, size_t errsize);
void sl__pg_columns_free(sl_pg_column *cols, size_t ncols);

/* Generates the statements for the parsed ctx (cols, schema, table, commit_table). */
int sl__pg_sql_build(sl_pg_ctx *ctx, char *errstr, size_t errsize);

/* Quotes an identifier as PQescapeIdentifier does for a UTF-8 connection: in double
 * quotes, each '"' doubled. Returns a malloc'ed string, NULL when out of memory or when s
 * is empty or not valid UTF-8. PQescapeIdentifier itself needs a connection; the SQL is
 * generated at load, before there is one, so that a bad name fails early and the text can
 * be unit-tested (the connection's client_encoding is always UTF8). */
char *sl__pg_quote_ident(const char *s);

/* The SQL name of a type ("bigint", "double precision", ...). */
const char *sl__pg_type_name(sl_pg_type t);

/* ==== postgres_rows.c ==== */

/* One record's column values as text: vals[i] (lens[i] bytes) or NULL for SQL NULL. The
 * texts live in scratch (reset by the caller per record) or in the record. */
typedef struct sl_pg_row {
    const char **vals;
    size_t *lens;
    sl_buf scratch;
    size_t *offs; /* offsets into scratch for values stored there, (size_t)-1 otherwise */
} sl_pg_row;

int sl__pg_row_init(sl_pg_row *row, size_t ncols);
void sl__pg_row_free(sl_pg_row *row);

/* Computes the text of every column of r (made when says) and checks it fits the column's
 * type. Returns SL_OK, SL_ERR_RECORD with why (a static-length message naming the column)
 * when the record cannot be written, or SL_ERR_NOMEM. */
int sl__pg_row_build(const sl_pg_column *cols, size_t ncols, bool need_json, const sl_record *r,
                     const sl_record_when *when, sl_pg_row *row, char *why, size_t whysize);

/* Appends the row as one line of COPY's text format (tab-separated, \N for NULL). */
int sl__pg_copy_line(sl_buf *b, const sl_pg_row *row, size_t ncols);
/* Appends one element to an array literal being built in b ("{" and "}" are the caller's):
 * a double-quoted element with '"' and '\' escaped, or NULL. */
int sl__pg_array_elem(sl_buf *b, const char *val, size_t len, bool first);

/* The array parameters of the position statements for ranges r[0..n): sources, topics,
 * partitions and untils as array literals, in arr[0..4) (reset first). SL_OK or
 * SL_ERR_NOMEM. */
int sl__pg_range_arrays(const sl_input_range *r, size_t n, sl_buf arr[4]);

/* Formats a time in ms since the epoch as "YYYY-MM-DD HH:MM:SS.mmm+00". */
void sl__pg_format_ms(int64_t ms, char *buf, size_t size);

/* True when s (len bytes) is valid UTF-8 without NUL. */
bool sl__pg_utf8_ok(const char *s, size_t len);

/* ==== postgres_conn.c ==== */

/* The names of the prepared statements. */
#define SL_PG_STMT_INSERT "sluice_insert"
#define SL_PG_STMT_REMOVE "sluice_remove"
#define SL_PG_STMT_CLAIM  "sluice_claim"

/* Copies msg to out with the conninfo's password replaced by "***" and libpq's newlines
 * removed. */
void sl__pg_scrub(const sl_pg_ctx *ctx, const char *msg, char *out, size_t size);
/* The primary message of an error result, else of the whole error. */
const char *sl__pg_res_msg(const struct pg_result *res, const struct pg_conn *conn);
/* The SQLSTATE of a result, "" when there is none. */
const char *sl__pg_sqlstate(const struct pg_result *res);
/* True for a COMMAND_OK or TUPLES_OK result. */
bool sl__pg_res_ok(const struct pg_result *res);
/* Closes the connection (if any) and marks the instance inactive. */
void sl__pg_drop(sl_pg_ctx *ctx);
/* Reports an error result (res may be NULL) and maps it: SL_ERR_RETRY or SL_ERR_FATAL. */
int sl__pg_map_error(sl_pg_ctx *ctx, struct pg_result *res, const char *what);
/* Waits up to timeout_ms for the results of the query sent on conn (ctx's or one apart);
 * NULL with msg set when the connection failed or the time ran out. A wait past 10 s is
 * logged as a warning, once. The caller PQclears. */
struct pg_result *sl__pg_wait(const sl_pg_ctx *ctx, struct pg_conn *conn, int64_t timeout_ms,
                              char *msg, size_t msgsize);
/* Runs sql, or the prepared statement stmt, within query_timeout; NULL (reported, the
 * connection dropped, *rc SL_ERR_RETRY) when the connection broke or timed out. */
struct pg_result *sl__pg_exec(sl_pg_ctx *ctx, const char *sql, const char *stmt, int nparams,
                              const char *const *params, const char *what, int *rc);
/* Runs a statement without parameters whose failure is an error. */
int sl__pg_simple(sl_pg_ctx *ctx, const char *sql, const char *what);
/* Connects within connect_timeout; NULL with msg set (scrubbed) and *auth true when the
 * server refused the credentials (msg names the user, host and port). */
struct pg_conn *sl__pg_connect(const sl_pg_ctx *ctx, char *msg, size_t msgsize, bool *auth);
/* Connects when there is no usable connection, creates the tables, checks the mapping and
 * prepares the statements. SL_OK, SL_ERR_RETRY or SL_ERR_FATAL. */
int sl__pg_ensure(sl_pg_ctx *ctx);
/* sluice check --connect: connect and log in, then close (postgres_conn.c). */
int sl__pg_probe(void *ctx, sl_probe_report_fn report, void *opaque);

/* ==== postgres_write.c ==== */

/* Writes one batch in its transaction (again in careful mode when the server rejects data).
 * Returns SL_OK (written, or skipped as already committed), SL_ERR_FENCED (a range does not
 * start at its partition's position: nothing written, errstr says which), SL_ERR_RETRY,
 * SL_ERR_FATAL, SL_ERR_NOMEM or the code of a rejection that aborts it. On the sink's
 * output thread. */
int sl__pg_batch_write(sl_pg_ctx *ctx, const sl_batch_output *out, char *errstr, size_t errsize);

/* Applies sl_position_check_range to each of r[0..n) with held[i] its partition's position
 * (-1: none) and decides for the batch: WRITE when every range says so, SKIP when every
 * range does, else FENCED with why naming the first range that does not fit (a mix of WRITE
 * and SKIP is FENCED too: part of the batch is held, part is not). */
sl_position_check sl__pg_positions_decide(const sl_input_range *r, size_t n, const int64_t *held,
                                          char *why, size_t whysize);

/* ==== postgres.c: for the engine and the Kafka source ==== */

/* Reads the newest row of the commit table for (pipeline, this sink, instance): the batch
 * time in *batch_time and the batch's input description in *inputs (malloc'ed, the
 * caller frees it). Returns SL_OK, SL_ERR_NOTFOUND when the sink committed no batch yet,
 * SL_ERR_RETRY when the server cannot be reached, or another error, with errstr set.
 * Uses a connection of its own: may be called from any thread, before or after start.
 * ctx is the sink's context (the connector's ctx pointer). */
int sl__postgres_last_commit(void *ctx, const char *pipeline, int64_t *batch_time, char **inputs,
                             char *errstr, size_t errsize);

#endif /* SL_POSTGRES_H */

/* postgres_config.c -- the postgres sink's options: the column mapping, the mode, and every
 * SQL statement, generated once at init with quoted identifiers and $n parameters. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres.h"

#define PG_MAX_COLUMNS 1000

/* ==== Identifiers ==== */

char *sl__pg_quote_ident(const char *s)
{
    if (!s || !*s || !sl__pg_utf8_ok(s, strlen(s))) {
        return NULL;
    }
    size_t n = 2;
    for (const char *p = s; *p; p++) {
        n += *p == '"' ? 2 : 1;
    }
    char *q = malloc(n + 1);
    if (!q) {
        return NULL;
    }
    char *w = q;
    *w++ = '"';
    for (const char *p = s; *p; p++) {
        if (*p == '"') {
            *w++ = '"';
        }
        *w++ = *p;
    }
    *w++ = '"';
    *w = '\0';
    return q;
}

const char *sl__pg_type_name(sl_pg_type t)
{
    switch (t) {
    case SL_PG_TEXT: return "text";
    case SL_PG_BIGINT: return "bigint";
    case SL_PG_DOUBLE: return "double precision";
    case SL_PG_NUMERIC: return "numeric";
    case SL_PG_TIMESTAMPTZ: return "timestamptz";
    case SL_PG_BOOLEAN: return "boolean";
    case SL_PG_JSONB: return "jsonb";
    }
    return "text";
}

static bool pg_type_numeric(sl_pg_type t)
{
    return t == SL_PG_BIGINT || t == SL_PG_DOUBLE || t == SL_PG_NUMERIC;
}

/* ==== The column mapping ==== */

static const struct {
    const char *name;
    sl_pg_source src;
    sl_pg_type type; /* inferred */
} pg_sources[] = {
    {"key", SL_PG_SRC_KEY, SL_PG_TEXT},
    {"value", SL_PG_SRC_VALUE, SL_PG_TEXT},
    {"num", SL_PG_SRC_NUM, SL_PG_BIGINT},
    {"ts", SL_PG_SRC_TS, SL_PG_TIMESTAMPTZ},
    {"batch_time", SL_PG_SRC_BATCH_TIME, SL_PG_TIMESTAMPTZ},
    {"window_start", SL_PG_SRC_WINDOW_START, SL_PG_TIMESTAMPTZ},
    {"window_end", SL_PG_SRC_WINDOW_END, SL_PG_TIMESTAMPTZ},
    {"topic", SL_PG_SRC_TOPIC, SL_PG_TEXT},
    {"partition", SL_PG_SRC_PARTITION, SL_PG_BIGINT},
    {"offset", SL_PG_SRC_OFFSET, SL_PG_BIGINT},
};

static const struct {
    const char *name;
    sl_pg_type type;
} pg_types[] = {
    {"text", SL_PG_TEXT},       {"bigint", SL_PG_BIGINT},   {"int", SL_PG_BIGINT},
    {"integer", SL_PG_BIGINT},  {"double", SL_PG_DOUBLE},   {"double precision", SL_PG_DOUBLE},
    {"float", SL_PG_DOUBLE},    {"numeric", SL_PG_NUMERIC}, {"timestamptz", SL_PG_TIMESTAMPTZ},
    {"boolean", SL_PG_BOOLEAN}, {"bool", SL_PG_BOOLEAN},    {"jsonb", SL_PG_JSONB},
};

/* Copies s[0..len) without the surrounding blanks into a new string. */
static char *pg_strip_dup(const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1])) {
        len--;
    }
    return strndup(s, len);
}

/* Splits a comma-separated list into stripped entries. Returns the count, or -1 when out
 * of memory; *out is a NULL-terminated array to free with pg_list_free. */
static long pg_list_split(const char *list, char ***out)
{
    size_t n = 1;
    for (const char *p = list; *p; p++) {
        n += *p == ',';
    }
    char **v = calloc(n + 1, sizeof(char *));
    if (!v) {
        return -1;
    }
    const char *start = list;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(start, ',');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        v[i] = pg_strip_dup(start, len);
        if (!v[i]) {
            for (size_t j = 0; j < i; j++) {
                free(v[j]);
            }
            free(v);
            return -1;
        }
        start = end ? end + 1 : start + len;
    }
    *out = v;
    return (long)n;
}

static void pg_list_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++) {
        free(v[i]);
    }
    free(v);
}

/* Parses a JSON path ("a.b.0") into c->path. */
static int pg_path_parse(sl_pg_column *c, const char *path, char *errstr, size_t errsize)
{
    int rc = sl__jpath_parse(&c->path, path);
    if (rc == SL_ERR_INVAL) {
        snprintf(errstr, errsize, "columns: '%s': bad JSON path '%s' (empty segment)", c->name,
                 path);
    } else if (rc != SL_OK) {
        snprintf(errstr, errsize, "out of memory");
    }
    return rc;
}

/* Parses "source[::type]" into c. */
static int pg_source_parse(sl_pg_column *c, const char *spec, char *errstr, size_t errsize)
{
    const char *cast = strstr(spec, "::");
    size_t slen = cast ? (size_t)(cast - spec) : strlen(spec);
    char *src = pg_strip_dup(spec, slen);
    if (!src) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    int rc = SL_OK;
    bool found = false;
    if (strncmp(src, "json:", 5) == 0) {
        c->src = SL_PG_SRC_JSON;
        c->type = SL_PG_TEXT;
        found = true;
        rc = pg_path_parse(c, src + 5, errstr, errsize);
    } else if (strncmp(src, "header:", 7) == 0) {
        c->src = SL_PG_SRC_HEADER;
        c->type = SL_PG_TEXT;
        found = true;
        if (!src[7]) {
            snprintf(errstr, errsize, "columns: '%s': header: needs a header name", c->name);
            rc = SL_ERR_INVAL;
        } else if (!(c->header = strdup(src + 7))) {
            snprintf(errstr, errsize, "out of memory");
            rc = SL_ERR_NOMEM;
        }
    } else {
        for (size_t i = 0; i < sizeof(pg_sources) / sizeof(pg_sources[0]); i++) {
            if (strcmp(src, pg_sources[i].name) == 0) {
                c->src = pg_sources[i].src;
                c->type = pg_sources[i].type;
                found = true;
                break;
            }
        }
    }
    if (!found) {
        snprintf(errstr, errsize,
                 "columns: '%s': unknown source '%s' (one of key, value, num, ts, batch_time, "
                 "window_start, window_end, topic, partition, offset, json:PATH, header:NAME, each "
                 "optionally followed by ::TYPE)",
                 c->name, src);
        rc = SL_ERR_INVAL;
    }
    free(src);
    if (rc != SL_OK || !cast) {
        return rc;
    }
    char *type = pg_strip_dup(cast + 2, strlen(cast + 2));
    if (!type) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    for (char *p = type; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    found = false;
    for (size_t i = 0; i < sizeof(pg_types) / sizeof(pg_types[0]); i++) {
        if (strcmp(type, pg_types[i].name) == 0) {
            c->type = pg_types[i].type;
            found = true;
            break;
        }
    }
    if (!found) {
        snprintf(errstr, errsize,
                 "columns: '%s': unknown type '%s' (one of text, bigint, double, numeric, "
                 "timestamptz, boolean, jsonb)",
                 c->name, type);
        rc = SL_ERR_INVAL;
    }
    free(type);
    return rc;
}

void sl__pg_columns_free(sl_pg_column *cols, size_t ncols)
{
    for (size_t i = 0; cols && i < ncols; i++) {
        free(cols[i].name);
        free(cols[i].qname);
        sl__jpath_free(&cols[i].path);
        free(cols[i].header);
    }
    free(cols);
}

int sl__pg_columns_parse(const char *columns, const char *key_columns, sl_pg_mode mode,
                         sl_pg_column **out, size_t *nout, char *errstr, size_t errsize)
{
    char **ents = NULL, **keys = NULL;
    sl_pg_column *cols = NULL;
    size_t n = 0;
    int rc = SL_ERR_INVAL;

    *out = NULL;
    *nout = 0;
    if (!columns || !*columns) {
        snprintf(errstr, errsize, "columns: required (e.g. word=key,count=num)");
        return SL_ERR_INVAL;
    }
    long ne = pg_list_split(columns, &ents);
    if (ne < 0) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    if (ne > PG_MAX_COLUMNS) {
        snprintf(errstr, errsize, "columns: %ld entries, at most %d", ne, PG_MAX_COLUMNS);
        goto done;
    }
    cols = calloc((size_t)ne, sizeof(*cols));
    if (!cols) {
        rc = SL_ERR_NOMEM;
        snprintf(errstr, errsize, "out of memory");
        goto done;
    }
    for (long i = 0; i < ne; i++) {
        const char *e = ents[i];
        const char *eq = strchr(e, '=');
        if (!*e) {
            snprintf(errstr, errsize, "columns: entry %ld is empty", i + 1);
            goto done;
        }
        if (!eq) {
            snprintf(errstr, errsize, "columns: '%s' is not COLUMN=SOURCE (e.g. count=num)", e);
            goto done;
        }
        sl_pg_column *c = &cols[n++];
        c->name = pg_strip_dup(e, (size_t)(eq - e));
        if (!c->name) {
            rc = SL_ERR_NOMEM;
            snprintf(errstr, errsize, "out of memory");
            goto done;
        }
        if (!*c->name) {
            snprintf(errstr, errsize, "columns: '%s' has no column name before '='", e);
            goto done;
        }
        c->qname = sl__pg_quote_ident(c->name);
        if (!c->qname) {
            snprintf(errstr, errsize, "columns: column name '%s' is not valid UTF-8", c->name);
            goto done;
        }
        for (size_t j = 0; j + 1 < n; j++) {
            if (strcmp(cols[j].name, c->name) == 0) {
                snprintf(errstr, errsize, "columns: column '%s' is mapped twice", c->name);
                goto done;
            }
        }
        int prc = pg_source_parse(c, eq + 1, errstr, errsize);
        if (prc != SL_OK) {
            rc = prc;
            goto done;
        }
    }

    if (key_columns && *key_columns) {
        long nk = pg_list_split(key_columns, &keys);
        if (nk < 0) {
            rc = SL_ERR_NOMEM;
            snprintf(errstr, errsize, "out of memory");
            goto done;
        }
        for (long k = 0; k < nk; k++) {
            bool found = false;
            for (size_t j = 0; j < n; j++) {
                if (strcmp(cols[j].name, keys[k]) == 0) {
                    if (cols[j].key) {
                        snprintf(errstr, errsize, "key_columns: '%s' is listed twice", keys[k]);
                        goto done;
                    }
                    cols[j].key = true;
                    found = true;
                }
            }
            if (!found) {
                snprintf(errstr, errsize, "key_columns: '%s' is not one of the columns", keys[k]);
                goto done;
            }
        }
    } else if (mode != SL_PG_APPEND) {
        snprintf(errstr, errsize,
                 "key_columns: required in %s mode (the columns of the table's primary key or "
                 "unique index, e.g. [word])",
                 mode == SL_PG_UPSERT ? "upsert" : "increment");
        goto done;
    }
    if (mode == SL_PG_INCREMENT) {
        bool any = false;
        for (size_t j = 0; j < n; j++) {
            any = any || (!cols[j].key && pg_type_numeric(cols[j].type));
        }
        if (!any) {
            snprintf(errstr, errsize,
                     "columns: increment mode needs a numeric column besides the key columns "
                     "(e.g. count=num)");
            goto done;
        }
    }
    rc = SL_OK;
done:
    pg_list_free(ents);
    pg_list_free(keys);
    if (rc != SL_OK) {
        sl__pg_columns_free(cols, n);
        return rc;
    }
    *out = cols;
    *nout = n;
    return SL_OK;
}

/* ==== SQL generation ==== */

/* The quoted names of the columns: which < 0 all, 0 the non-key ones, 1 the key ones. */
static void pg_names(sl_buf *s, const sl_pg_ctx *ctx, int which)
{
    bool first = true;
    for (size_t i = 0; i < ctx->ncols; i++) {
        if (which >= 0 && (int)ctx->cols[i].key != which) {
            continue;
        }
        sl__buf_printf(s, "%s%s", first ? "" : ", ", ctx->cols[i].qname);
        first = false;
    }
}

/* "v1, v3": the unnest aliases of the key columns. */
static void pg_key_aliases(sl_buf *s, const sl_pg_ctx *ctx)
{
    bool first = true;
    for (size_t i = 0; i < ctx->ncols; i++) {
        if (ctx->cols[i].key) {
            sl__buf_printf(s, "%sv%zu", first ? "" : ", ", i + 1);
            first = false;
        }
    }
}

/* DELETE of the rows whose key columns equal one of the rows of unnest of one array
 * parameter per column (the same parameters as the INSERT's): tombstones in upsert. */
static void pg_build_remove(sl_buf *s, const sl_pg_ctx *ctx, const char *target)
{
    sl__buf_printf(s, "DELETE FROM %s AS sl_target USING unnest(", target);
    for (size_t i = 0; i < ctx->ncols; i++) {
        sl__buf_printf(s, "%s$%zu::%s[]", i ? ", " : "", i + 1,
                       sl__pg_type_name(ctx->cols[i].type));
    }
    sl__buf_printf(s, ") AS u(");
    for (size_t i = 0; i < ctx->ncols; i++) {
        sl__buf_printf(s, "%sv%zu", i ? ", " : "", i + 1);
    }
    sl__buf_printf(s, ") WHERE ");
    bool first = true;
    for (size_t i = 0; i < ctx->ncols; i++) {
        if (ctx->cols[i].key) {
            sl__buf_printf(s, "%ssl_target.%s IS NOT DISTINCT FROM u.v%zu", first ? "" : " AND ",
                           ctx->cols[i].qname, i + 1);
            first = false;
        }
    }
}

/* INSERT ... SELECT FROM unnest of one array parameter per column. Upsert keeps the last
 * row of each key (a conflict target may not be hit twice by one statement); increment
 * sums the rows of each key first, so partial aggregates add up. */
static void pg_build_insert(sl_buf *s, const sl_pg_ctx *ctx, const char *target)
{
    bool conflict = ctx->mode != SL_PG_APPEND;
    sl__buf_printf(s, "INSERT INTO %s%s (", target, conflict ? " AS sl_target" : "");
    pg_names(s, ctx, -1);
    sl__buf_printf(s, ") SELECT ");
    if (ctx->mode == SL_PG_UPSERT) {
        sl__buf_printf(s, "DISTINCT ON (");
        pg_key_aliases(s, ctx);
        sl__buf_printf(s, ") ");
    }
    for (size_t i = 0; i < ctx->ncols; i++) {
        const sl_pg_column *c = &ctx->cols[i];
        const char *sep = i ? ", " : "";
        if (ctx->mode != SL_PG_INCREMENT || c->key) {
            sl__buf_printf(s, "%sv%zu", sep, i + 1);
        } else if (pg_type_numeric(c->type)) {
            sl__buf_printf(s, "%ssum(v%zu)", sep, i + 1);
        } else {
            /* Not addable: the batch's last value, as upsert would set it. */
            sl__buf_printf(s, "%s(array_agg(v%zu ORDER BY ord DESC))[1]", sep, i + 1);
        }
    }
    sl__buf_printf(s, " FROM unnest(");
    for (size_t i = 0; i < ctx->ncols; i++) {
        sl__buf_printf(s, "%s$%zu::%s[]", i ? ", " : "", i + 1,
                       sl__pg_type_name(ctx->cols[i].type));
    }
    sl__buf_printf(s, ")%s AS u(", conflict ? " WITH ORDINALITY" : "");
    for (size_t i = 0; i < ctx->ncols; i++) {
        sl__buf_printf(s, "%sv%zu", i ? ", " : "", i + 1);
    }
    sl__buf_printf(s, "%s)", conflict ? ", ord" : "");
    if (ctx->mode == SL_PG_UPSERT) {
        sl__buf_printf(s, " ORDER BY ");
        pg_key_aliases(s, ctx);
        sl__buf_printf(s, ", ord DESC");
    } else if (ctx->mode == SL_PG_INCREMENT) {
        sl__buf_printf(s, " GROUP BY ");
        pg_key_aliases(s, ctx);
    }
    if (!conflict) {
        return;
    }
    sl__buf_printf(s, " ON CONFLICT (");
    pg_names(s, ctx, 1);
    bool any = false;
    for (size_t i = 0; i < ctx->ncols; i++) {
        any = any || !ctx->cols[i].key;
    }
    if (!any) {
        sl__buf_printf(s, ") DO NOTHING");
        return;
    }
    sl__buf_printf(s, ") DO UPDATE SET ");
    bool first = true;
    for (size_t i = 0; i < ctx->ncols; i++) {
        const sl_pg_column *c = &ctx->cols[i];
        if (c->key) {
            continue;
        }
        const char *sep = first ? "" : ", ";
        first = false;
        if (ctx->mode == SL_PG_INCREMENT && pg_type_numeric(c->type)) {
            sl__buf_printf(s, "%s%s = COALESCE(sl_target.%s, 0) + COALESCE(EXCLUDED.%s, 0)", sep,
                           c->qname, c->qname, c->qname);
        } else {
            sl__buf_printf(s, "%s%s = EXCLUDED.%s", sep, c->qname, c->qname);
        }
    }
}

/* The statements of the positions table (qualified name ptarget). The batch's partitions
 * come as arrays (SL_PG_POS_*), never in the text. A missing row is inserted first (ON
 * CONFLICT DO NOTHING waits for a concurrent insert of the same row and then sees it), so
 * that the SELECT ... FOR UPDATE always finds a row to lock: two writers of a new partition
 * serialise like those of a known one. Rows are inserted and locked in key order, so that
 * writers of overlapping sets of partitions do not deadlock. */
static int pg_build_positions(sl_pg_sql *q, const char *ptarget)
{
    static const char *const keys = "(pipeline, sink, source, topic, kafka_partition)";
    static const char *const ranges =
        "unnest($3::text[], $4::text[], $5::int[]) WITH ORDINALITY AS u(source, topic, "
        "kafka_partition, ord)";
    static const char *const join =
        "p.source = u.source AND p.topic = u.topic AND p.kafka_partition = u.kafka_partition "
        "WHERE p.pipeline = $1 AND p.sink = $2";
    sl_buf s = {0};
    sl__buf_printf(&s,
                   "CREATE TABLE IF NOT EXISTS %s (pipeline text NOT NULL, sink text NOT NULL, "
                   "source text NOT NULL, topic text NOT NULL, kafka_partition int NOT NULL, "
                   "next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
                   "instance text NOT NULL DEFAULT '', PRIMARY KEY %s)",
                   ptarget, keys);
    q->create_positions = sl__buf_steal(&s);
    sl__buf_printf(&s,
                   "INSERT INTO %s (pipeline, sink, source, topic, kafka_partition, next_offset, "
                   "instance) SELECT DISTINCT $1, $2, u.source, u.topic, u.kafka_partition, "
                   "-1::bigint, $6 FROM unnest($3::text[], $4::text[], $5::int[]) AS u(source, "
                   "topic, kafka_partition) ORDER BY 3, 4, 5 ON CONFLICT DO NOTHING",
                   ptarget);
    q->seed_positions = sl__buf_steal(&s);
    sl__buf_printf(&s,
                   "SELECT u.ord, p.next_offset FROM %s AS p JOIN %s ON %s ORDER BY p.source, "
                   "p.topic, p.kafka_partition FOR UPDATE OF p",
                   ptarget, ranges, join);
    q->lock_positions = sl__buf_steal(&s);
    sl__buf_printf(&s, "SELECT u.ord, p.next_offset FROM %s AS p JOIN %s ON %s", ptarget, ranges,
                   join);
    q->read_positions = sl__buf_steal(&s);
    sl__buf_printf(&s,
                   "INSERT INTO %s (pipeline, sink, source, topic, kafka_partition, next_offset, "
                   "instance, updated_at) SELECT $1, $2, u.source, u.topic, u.kafka_partition, "
                   "u.next_offset, $6, now() FROM unnest($3::text[], $4::text[], $5::int[], "
                   "$7::bigint[]) AS u(source, topic, kafka_partition, next_offset) ON CONFLICT "
                   "%s DO UPDATE SET next_offset = EXCLUDED.next_offset, instance = "
                   "EXCLUDED.instance, updated_at = EXCLUDED.updated_at",
                   ptarget, keys);
    q->save_positions = sl__buf_steal(&s);
    sl__buf_free(&s);
    return q->create_positions && q->seed_positions && q->lock_positions && q->read_positions &&
                   q->save_positions
               ? SL_OK
               : SL_ERR_NOMEM;
}

int sl__pg_sql_build(sl_pg_ctx *ctx, char *errstr, size_t errsize)
{
    sl_pg_sql *q = &ctx->sql;
    sl_buf s = {0};
    char *schema = NULL, *table = NULL, *commits = NULL, *positions = NULL;
    char *target = NULL, *ctarget = NULL, *ptarget = NULL;
    int rc = SL_ERR_INVAL;

    if (ctx->schema && *ctx->schema && !(schema = sl__pg_quote_ident(ctx->schema))) {
        snprintf(errstr, errsize, "schema: '%s' is not valid UTF-8", ctx->schema);
        goto done;
    }
    if (!(table = sl__pg_quote_ident(ctx->table))) {
        snprintf(errstr, errsize, "table: '%s' is empty or not valid UTF-8",
                 ctx->table ? ctx->table : "");
        goto done;
    }
    if (!(commits = sl__pg_quote_ident(ctx->commit_table))) {
        snprintf(errstr, errsize, "commit_table: '%s' is empty or not valid UTF-8",
                 ctx->commit_table ? ctx->commit_table : "");
        goto done;
    }
    if (!(positions = sl__pg_quote_ident(ctx->positions_table))) {
        snprintf(errstr, errsize, "positions_table: '%s' is empty or not valid UTF-8",
                 ctx->positions_table ? ctx->positions_table : "");
        goto done;
    }
    rc = SL_ERR_NOMEM;
    sl__buf_printf(&s, "%s%s%s", schema ? schema : "", schema ? "." : "", table);
    target = sl__buf_steal(&s);
    sl__buf_printf(&s, "%s%s%s", schema ? schema : "", schema ? "." : "", commits);
    ctarget = sl__buf_steal(&s);
    sl__buf_printf(&s, "%s%s%s", schema ? schema : "", schema ? "." : "", positions);
    ptarget = sl__buf_steal(&s);
    if (!target || !ctarget || !ptarget) {
        goto done;
    }
    if (pg_build_positions(q, ptarget) != SL_OK) {
        goto done;
    }

    sl__buf_printf(&s,
                   "CREATE TABLE IF NOT EXISTS %s (pipeline text NOT NULL, sink text NOT NULL, "
                   "instance text NOT NULL DEFAULT '', batch_time bigint NOT NULL, inputs text, "
                   "committed_at timestamptz NOT NULL DEFAULT now(), "
                   "PRIMARY KEY (pipeline, sink, instance, batch_time))",
                   ctarget);
    q->create_commits = sl__buf_steal(&s);
    /* The batch claims its row first: no row back means it was committed already (or by
     * another writer, whose transaction this one waited for). */
    sl__buf_printf(&s,
                   "INSERT INTO %s (pipeline, sink, instance, batch_time, inputs, committed_at) "
                   "VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT DO NOTHING RETURNING 1",
                   ctarget);
    q->claim_commit = sl__buf_steal(&s);
    sl__buf_printf(&s,
                   "DELETE FROM %s WHERE pipeline = $1 AND sink = $2 AND instance = $3 "
                   "AND batch_time < $4",
                   ctarget);
    q->prune_commits = sl__buf_steal(&s);
    sl__buf_printf(&s,
                   "SELECT batch_time, inputs FROM %s WHERE pipeline = $1 AND sink = $2 "
                   "AND instance = $3 ORDER BY batch_time DESC LIMIT 1",
                   ctarget);
    q->last_commit = sl__buf_steal(&s);

    if (ctx->create_table) {
        sl__buf_printf(&s, "CREATE TABLE IF NOT EXISTS %s (", target);
        bool keyed = false;
        for (size_t i = 0; i < ctx->ncols; i++) {
            sl__buf_printf(&s, "%s%s %s", i ? ", " : "", ctx->cols[i].qname,
                           sl__pg_type_name(ctx->cols[i].type));
            keyed = keyed || ctx->cols[i].key;
        }
        if (keyed) {
            sl__buf_printf(&s, ", PRIMARY KEY (");
            pg_names(&s, ctx, 1);
            sl__buf_printf(&s, ")");
        }
        sl__buf_printf(&s, ")");
        if (!(q->create_table = sl__buf_steal(&s))) {
            goto done;
        }
    }
    sl__buf_printf(&s, "SELECT ");
    pg_names(&s, ctx, -1);
    sl__buf_printf(&s, " FROM %s LIMIT 0", target);
    q->check_table = sl__buf_steal(&s);
    sl__buf_printf(&s, "COPY %s (", target);
    pg_names(&s, ctx, -1);
    sl__buf_printf(&s, ") FROM STDIN");
    q->copy = sl__buf_steal(&s);
    pg_build_insert(&s, ctx, target);
    q->insert = sl__buf_steal(&s);
    pg_build_remove(&s, ctx, target);
    q->remove = sl__buf_steal(&s);
    if (q->create_commits && q->claim_commit && q->prune_commits && q->last_commit &&
        q->check_table && q->copy && q->insert && q->remove && q->create_positions &&
        q->seed_positions && q->lock_positions && q->read_positions && q->save_positions) {
        rc = SL_OK;
    }
done:
    if (rc == SL_ERR_NOMEM) {
        snprintf(errstr, errsize, "out of memory");
    }
    sl__buf_free(&s);
    free(schema);
    free(table);
    free(commits);
    free(positions);
    free(target);
    free(ctarget);
    free(ptarget);
    return rc;
}

/* ==== Options ==== */

int sl__pg_config_check(sl_pg_ctx *ctx, char *errstr, size_t errsize)
{
    if (!ctx->table || !*ctx->table) {
        snprintf(errstr, errsize, "table: required");
        return SL_ERR_INVAL;
    }
    if (!ctx->commit_table || !*ctx->commit_table) {
        ctx->commit_table = "sluice_commits";
    }
    if (!ctx->positions_table || !*ctx->positions_table) {
        ctx->positions_table = "sluice_positions";
    }
    if (!ctx->instance) {
        ctx->instance = "";
    }
    /* mode and the ranges of the numbers were checked against the option table. */
    int rc = sl__pg_columns_parse(ctx->columns, ctx->key_columns, ctx->mode, &ctx->cols,
                                  &ctx->ncols, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    ctx->need_json = false;
    for (size_t i = 0; i < ctx->ncols; i++) {
        ctx->need_json = ctx->need_json || ctx->cols[i].src == SL_PG_SRC_JSON;
    }
    return sl__pg_sql_build(ctx, errstr, errsize);
}

void sl__pg_config_free(sl_pg_ctx *ctx)
{
    sl__pg_columns_free(ctx->cols, ctx->ncols);
    ctx->cols = NULL;
    ctx->ncols = 0;
    char **all[] = {&ctx->sql.create_commits, &ctx->sql.create_table,   &ctx->sql.check_table,
                    &ctx->sql.claim_commit,   &ctx->sql.prune_commits,  &ctx->sql.last_commit,
                    &ctx->sql.copy,           &ctx->sql.insert,         &ctx->sql.create_positions,
                    &ctx->sql.seed_positions, &ctx->sql.lock_positions, &ctx->sql.read_positions,
                    &ctx->sql.save_positions, &ctx->sql.remove};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        free(*all[i]);
        *all[i] = NULL;
    }
}

/* test_postgres.c -- the postgres sink without a server: the column mapping, the SQL text it
 * generates (identifiers quoted, data only in parameters), the conversion of records to
 * column values and the escaping of COPY lines and array literals. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "sluice.h"

#ifdef SLUICE_WITH_POSTGRES

#include "../../connectors/postgres/postgres.h"

/* ==== Helpers ==== */

/* A context as the engine fills it, with the defaults of the option table. */
static void ctx_defaults(sl_pg_ctx *ctx, sl_pg_mode mode, const char *columns, const char *keys)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->table = "counts";
    ctx->mode = mode;
    ctx->columns = columns;
    ctx->key_columns = keys;
    ctx->commit_table = "sluice_commits";
    ctx->positions_table = "sluice_positions";
    ctx->instance = "";
    ctx->connect_timeout = 5000;
    ctx->query_timeout = 60000;
    ctx->rows_per_statement = 10000;
    ctx->commit_retention = 0;
}

static int check(sl_pg_ctx *ctx, char *err, size_t errsize)
{
    err[0] = '\0';
    return sl__pg_config_check(ctx, err, errsize);
}

static sl_record rec_kv(const char *key, const char *value)
{
    sl_record r = {0};
    r.key = key;
    r.key_len = key ? (uint32_t)strlen(key) : 0;
    r.value = value;
    r.value_len = value ? (uint32_t)strlen(value) : 0;
    return r;
}

/* Builds the row of r for a fresh mapping; returns the rc and the values joined by '|'
 * (NULL shown as <null>). */
static int row_text(const char *columns, const sl_record *r, int64_t bt, char *out, size_t size,
                    char *why, size_t whysize)
{
    sl_pg_column *cols;
    size_t n;
    char err[256];
    out[0] = '\0';
    why[0] = '\0';
    int rc = sl__pg_columns_parse(columns, NULL, SL_PG_APPEND, &cols, &n, err, sizeof(err));
    CU_ASSERT_EQUAL_FATAL(rc, SL_OK);
    bool json = false;
    for (size_t i = 0; i < n; i++) {
        json = json || cols[i].src == SL_PG_SRC_JSON;
    }
    sl_pg_row row;
    CU_ASSERT_EQUAL_FATAL(sl__pg_row_init(&row, n), SL_OK);
    sl_record_when when = {bt, bt - 30000, bt}; /* 30 s window */
    rc = sl__pg_row_build(cols, n, json, r, &when, &row, why, whysize);
    if (rc == SL_OK) {
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            len += (size_t)snprintf(out + len, size - len, "%s%.*s", i ? "|" : "",
                                    row.vals[i] ? (int)row.lens[i] : 6,
                                    row.vals[i] ? row.vals[i] : "<null>");
        }
    }
    sl__pg_row_free(&row);
    sl__pg_columns_free(cols, n);
    return rc;
}

/* ==== Identifiers ==== */

static void test_pg_quote_ident_doubles_quotes(void)
{
    char *q = sl__pg_quote_ident("counts");
    CU_ASSERT_STRING_EQUAL(q, "\"counts\"");
    free(q);
    q = sl__pg_quote_ident("a\"b");
    CU_ASSERT_STRING_EQUAL(q, "\"a\"\"b\"");
    free(q);
    q = sl__pg_quote_ident("x\"); DROP TABLE t; --");
    CU_ASSERT_STRING_EQUAL(q, "\"x\"\"); DROP TABLE t; --\"");
    free(q);
    q = sl__pg_quote_ident("Wörter");
    CU_ASSERT_STRING_EQUAL(q, "\"Wörter\"");
    free(q);
}

static void test_pg_quote_ident_refuses_empty_and_bad_utf8(void)
{
    CU_ASSERT_PTR_NULL(sl__pg_quote_ident(""));
    CU_ASSERT_PTR_NULL(sl__pg_quote_ident(NULL));
    CU_ASSERT_PTR_NULL(sl__pg_quote_ident("a\xff"));
    CU_ASSERT_PTR_NULL(sl__pg_quote_ident("\xc3"));
    CU_ASSERT_PTR_NULL(sl__pg_quote_ident("\xed\xa0\x80")); /* a surrogate */
}

/* ==== The column mapping ==== */

static void test_pg_columns_infer_types_and_keys(void)
{
    sl_pg_column *c;
    size_t n;
    char err[256];
    int rc = sl__pg_columns_parse(
        " word = key , count=num,at=batch_time, t=ts,p=partition,o=offset,topic=topic,"
        "amount=json:order.amount::double,v=value::jsonb,ok=json:ok::bool",
        "word", SL_PG_INCREMENT, &c, &n, err, sizeof(err));
    CU_ASSERT_EQUAL_FATAL(rc, SL_OK);
    CU_ASSERT_EQUAL_FATAL(n, 10);
    CU_ASSERT_STRING_EQUAL(c[0].name, "word");
    CU_ASSERT_STRING_EQUAL(c[0].qname, "\"word\"");
    CU_ASSERT(c[0].key);
    CU_ASSERT_EQUAL(c[0].type, SL_PG_TEXT);
    CU_ASSERT_FALSE(c[1].key);
    CU_ASSERT_EQUAL(c[1].type, SL_PG_BIGINT);
    CU_ASSERT_EQUAL(c[2].type, SL_PG_TIMESTAMPTZ);
    CU_ASSERT_EQUAL(c[3].type, SL_PG_TIMESTAMPTZ);
    CU_ASSERT_EQUAL(c[4].type, SL_PG_BIGINT);
    CU_ASSERT_EQUAL(c[5].type, SL_PG_BIGINT);
    CU_ASSERT_EQUAL(c[6].type, SL_PG_TEXT);
    CU_ASSERT_EQUAL(c[7].src, SL_PG_SRC_JSON);
    CU_ASSERT_EQUAL(c[7].type, SL_PG_DOUBLE);
    CU_ASSERT_EQUAL(c[7].path.depth, 2);
    CU_ASSERT_STRING_EQUAL(c[7].path.seg[1], "amount");
    CU_ASSERT_EQUAL(c[8].type, SL_PG_JSONB);
    CU_ASSERT_EQUAL(c[9].type, SL_PG_BOOLEAN);
    sl__pg_columns_free(c, n);
}

static void expect_columns_error(const char *columns, const char *keys, sl_pg_mode mode,
                                 const char *part)
{
    sl_pg_column *c = NULL;
    size_t n = 0;
    char err[512] = "";
    int rc = sl__pg_columns_parse(columns, keys, mode, &c, &n, err, sizeof(err));
    CU_ASSERT_EQUAL(rc, SL_ERR_INVAL);
    CU_ASSERT_PTR_NULL(c);
    if (!strstr(err, part)) {
        fprintf(stderr, "\nerror '%s' lacks '%s'\n", err, part);
        CU_FAIL("error message");
    }
}

static void test_pg_columns_errors_are_clear(void)
{
    expect_columns_error("a=nope", NULL, SL_PG_APPEND, "unknown source 'nope'");
    expect_columns_error("a", NULL, SL_PG_APPEND, "is not COLUMN=SOURCE");
    expect_columns_error("=key", NULL, SL_PG_APPEND, "no column name");
    expect_columns_error("a=key,a=value", NULL, SL_PG_APPEND, "mapped twice");
    expect_columns_error("a=key,,b=num", NULL, SL_PG_APPEND, "entry 2 is empty");
    expect_columns_error("a=key::varchar", NULL, SL_PG_APPEND, "unknown type 'varchar'");
    expect_columns_error("a=json:x..y", NULL, SL_PG_APPEND, "empty segment");
    expect_columns_error("a=key,b=num", "c", SL_PG_UPSERT, "'c' is not one of the columns");
    expect_columns_error("a=key,b=num", NULL, SL_PG_UPSERT, "required in upsert mode");
    expect_columns_error("a=key,b=value", "a", SL_PG_INCREMENT, "needs a numeric column");
    expect_columns_error("a=key,b=num", "a,a", SL_PG_UPSERT, "listed twice");
    expect_columns_error("", NULL, SL_PG_APPEND, "required");
}

/* ==== SQL text ==== */

static void test_pg_sql_append_uses_copy_and_quotes_names(void)
{
    sl_pg_ctx ctx;
    char err[256];
    ctx_defaults(&ctx, SL_PG_APPEND, "w=key,\"n\"=num", NULL);
    ctx.table = "my \"table\"; DROP TABLE x; --";
    ctx.schema = "s";
    ctx.create_table = true;
    CU_ASSERT_EQUAL_FATAL(check(&ctx, err, sizeof(err)), SL_OK);
    CU_ASSERT_STRING_EQUAL(
        ctx.sql.copy, "COPY \"s\".\"my \"\"table\"\"; DROP TABLE x; --\" (\"w\", \"\"\"n\"\"\") "
                      "FROM STDIN");
    CU_ASSERT_STRING_EQUAL(ctx.sql.create_table,
                           "CREATE TABLE IF NOT EXISTS \"s\".\"my \"\"table\"\"; DROP TABLE x; "
                           "--\" (\"w\" text, \"\"\"n\"\"\" bigint)");
    CU_ASSERT_STRING_EQUAL(ctx.sql.insert,
                           "INSERT INTO \"s\".\"my \"\"table\"\"; DROP TABLE x; --\" (\"w\", "
                           "\"\"\"n\"\"\") SELECT v1, v2 FROM unnest($1::text[], $2::bigint[]) "
                           "AS u(v1, v2)");
    CU_ASSERT_STRING_EQUAL(ctx.sql.check_table,
                           "SELECT \"w\", \"\"\"n\"\"\" FROM \"s\".\"my \"\"table\"\"; DROP "
                           "TABLE x; --\" LIMIT 0");
    sl__pg_config_free(&ctx);
}

static void test_pg_sql_upsert_keeps_last_row_per_key(void)
{
    sl_pg_ctx ctx;
    char err[256];
    ctx_defaults(&ctx, SL_PG_UPSERT, "k=key,v=value,at=batch_time", "k");
    CU_ASSERT_EQUAL_FATAL(check(&ctx, err, sizeof(err)), SL_OK);
    CU_ASSERT_STRING_EQUAL(ctx.sql.insert,
                           "INSERT INTO \"counts\" AS sl_target (\"k\", \"v\", \"at\") SELECT "
                           "DISTINCT ON (v1) v1, v2, v3 FROM unnest($1::text[], $2::text[], "
                           "$3::timestamptz[]) WITH ORDINALITY AS u(v1, v2, v3, ord) ORDER BY "
                           "v1, ord DESC ON CONFLICT (\"k\") DO UPDATE SET \"v\" = EXCLUDED.\"v\", "
                           "\"at\" = EXCLUDED.\"at\"");
    /* Tombstones delete their key's row, with the same parameters. */
    CU_ASSERT_STRING_EQUAL(
        ctx.sql.remove, "DELETE FROM \"counts\" AS sl_target USING unnest($1::text[], $2::text[], "
                        "$3::timestamptz[]) AS u(v1, v2, v3) WHERE sl_target.\"k\" IS NOT "
                        "DISTINCT FROM u.v1");
    sl__pg_config_free(&ctx);
}

static void test_pg_sql_increment_adds_numeric_columns(void)
{
    sl_pg_ctx ctx;
    char err[256];
    ctx_defaults(&ctx, SL_PG_INCREMENT, "word=key,day=json:day,count=num,at=batch_time",
                 "word, day");
    ctx.create_table = true;
    CU_ASSERT_EQUAL_FATAL(check(&ctx, err, sizeof(err)), SL_OK);
    CU_ASSERT_STRING_EQUAL(
        ctx.sql.insert,
        "INSERT INTO \"counts\" AS sl_target (\"word\", \"day\", \"count\", \"at\") SELECT v1, "
        "v2, sum(v3), (array_agg(v4 ORDER BY ord DESC))[1] FROM unnest($1::text[], $2::text[], "
        "$3::bigint[], $4::timestamptz[]) WITH ORDINALITY AS u(v1, v2, v3, v4, ord) GROUP BY v1, "
        "v2 ON CONFLICT (\"word\", \"day\") DO UPDATE SET \"count\" = "
        "COALESCE(sl_target.\"count\", 0) + COALESCE(EXCLUDED.\"count\", 0), \"at\" = "
        "EXCLUDED.\"at\"");
    CU_ASSERT_STRING_EQUAL(
        ctx.sql.create_table,
        "CREATE TABLE IF NOT EXISTS \"counts\" (\"word\" text, \"day\" text, "
        "\"count\" bigint, \"at\" timestamptz, PRIMARY KEY (\"word\", \"day\"))");
    CU_ASSERT(ctx.need_json);
    sl__pg_config_free(&ctx);
}

static void test_pg_sql_upsert_of_keys_only_does_nothing_on_conflict(void)
{
    sl_pg_ctx ctx;
    char err[256];
    ctx_defaults(&ctx, SL_PG_UPSERT, "k=key", "k");
    CU_ASSERT_EQUAL_FATAL(check(&ctx, err, sizeof(err)), SL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.sql.insert, "ON CONFLICT (\"k\") DO NOTHING"));
    sl__pg_config_free(&ctx);
}

static void test_pg_sql_commit_table_statements(void)
{
    sl_pg_ctx ctx;
    char err[256];
    ctx_defaults(&ctx, SL_PG_APPEND, "k=key", NULL);
    ctx.commit_table = "my_commits";
    CU_ASSERT_EQUAL_FATAL(check(&ctx, err, sizeof(err)), SL_OK);
    CU_ASSERT_STRING_EQUAL(ctx.sql.create_commits,
                           "CREATE TABLE IF NOT EXISTS \"my_commits\" (pipeline text NOT NULL, "
                           "sink text NOT NULL, instance text NOT NULL DEFAULT '', batch_time "
                           "bigint NOT NULL, inputs text, committed_at timestamptz NOT NULL "
                           "DEFAULT now(), PRIMARY KEY (pipeline, sink, instance, batch_time))");
    CU_ASSERT_STRING_EQUAL(ctx.sql.claim_commit,
                           "INSERT INTO \"my_commits\" (pipeline, sink, instance, batch_time, "
                           "inputs, committed_at) VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT "
                           "DO NOTHING RETURNING 1");
    CU_ASSERT_STRING_EQUAL(ctx.sql.last_commit,
                           "SELECT batch_time, inputs FROM \"my_commits\" WHERE pipeline = $1 AND "
                           "sink = $2 AND instance = $3 ORDER BY batch_time DESC LIMIT 1");
    CU_ASSERT_PTR_NULL(ctx.sql.create_table);
    sl__pg_config_free(&ctx);
}

/* The positions statements: in the sink's schema, identifiers quoted, the batch's partitions
 * as array parameters only. */
static void test_pg_sql_positions_statements(void)
{
    sl_pg_ctx ctx;
    char err[256];
    ctx_defaults(&ctx, SL_PG_APPEND, "k=key", NULL);
    ctx.schema = "my schema";
    ctx.positions_table = "pos\"itions";
    CU_ASSERT_EQUAL_FATAL(check(&ctx, err, sizeof(err)), SL_OK);
    CU_ASSERT_STRING_EQUAL(ctx.sql.create_positions,
                           "CREATE TABLE IF NOT EXISTS \"my schema\".\"pos\"\"itions\" (pipeline "
                           "text NOT NULL, sink text NOT NULL, source text NOT NULL, topic text "
                           "NOT NULL, kafka_partition int NOT NULL, next_offset bigint NOT NULL, "
                           "updated_at timestamptz NOT NULL DEFAULT now(), instance text NOT NULL "
                           "DEFAULT '', PRIMARY KEY (pipeline, sink, source, topic, "
                           "kafka_partition))");
    CU_ASSERT_STRING_EQUAL(ctx.sql.seed_positions,
                           "INSERT INTO \"my schema\".\"pos\"\"itions\" (pipeline, sink, source, "
                           "topic, kafka_partition, next_offset, instance) SELECT DISTINCT $1, $2, "
                           "u.source, u.topic, u.kafka_partition, -1::bigint, $6 FROM "
                           "unnest($3::text[], $4::text[], $5::int[]) AS u(source, topic, "
                           "kafka_partition) ORDER BY 3, 4, 5 ON CONFLICT DO NOTHING");
    CU_ASSERT_STRING_EQUAL(ctx.sql.lock_positions,
                           "SELECT u.ord, p.next_offset FROM \"my schema\".\"pos\"\"itions\" AS p "
                           "JOIN unnest($3::text[], $4::text[], $5::int[]) WITH ORDINALITY AS "
                           "u(source, topic, kafka_partition, ord) ON p.source = u.source AND "
                           "p.topic = u.topic AND p.kafka_partition = u.kafka_partition WHERE "
                           "p.pipeline = $1 AND p.sink = $2 ORDER BY p.source, p.topic, "
                           "p.kafka_partition FOR UPDATE OF p");
    CU_ASSERT_STRING_EQUAL(ctx.sql.read_positions,
                           "SELECT u.ord, p.next_offset FROM \"my schema\".\"pos\"\"itions\" AS p "
                           "JOIN unnest($3::text[], $4::text[], $5::int[]) WITH ORDINALITY AS "
                           "u(source, topic, kafka_partition, ord) ON p.source = u.source AND "
                           "p.topic = u.topic AND p.kafka_partition = u.kafka_partition WHERE "
                           "p.pipeline = $1 AND p.sink = $2");
    CU_ASSERT_STRING_EQUAL(ctx.sql.save_positions,
                           "INSERT INTO \"my schema\".\"pos\"\"itions\" (pipeline, sink, source, "
                           "topic, kafka_partition, next_offset, instance, updated_at) SELECT $1, "
                           "$2, u.source, u.topic, u.kafka_partition, u.next_offset, $6, now() "
                           "FROM unnest($3::text[], $4::text[], $5::int[], $7::bigint[]) AS "
                           "u(source, topic, kafka_partition, next_offset) ON CONFLICT (pipeline, "
                           "sink, source, topic, kafka_partition) DO UPDATE SET next_offset = "
                           "EXCLUDED.next_offset, instance = EXCLUDED.instance, updated_at = "
                           "EXCLUDED.updated_at");
    sl__pg_config_free(&ctx);
}

static void test_pg_positions_table_default_and_bad_name(void)
{
    sl_pg_ctx ctx;
    char err[256];
    ctx_defaults(&ctx, SL_PG_APPEND, "k=key", NULL);
    ctx.positions_table = NULL; /* as the engine leaves an option it has no default for */
    CU_ASSERT_EQUAL_FATAL(check(&ctx, err, sizeof(err)), SL_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(ctx.sql.create_positions, "EXISTS \"sluice_positions\" ("));
    sl__pg_config_free(&ctx);
    ctx_defaults(&ctx, SL_PG_APPEND, "k=key", NULL);
    ctx.positions_table = "bad\xff";
    CU_ASSERT_EQUAL(check(&ctx, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "positions_table:"));
    sl__pg_config_free(&ctx);
}

/* A sink that records positions says so in its connector struct. */
static void test_pg_sink_has_positions_callback(void)
{
    const sl_connector *c = sl_connector_find("postgres", SL_SINK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL(c->positions);
}

/* The batch's ranges become array literals: names escaped, numbers as text. */
static void test_pg_range_arrays_escape_names(void)
{
    sl_input_range r[2] = {
        {.source = "kin", .topic = "or\"ders", .partition = 3, .from = 1100, .until = 1300},
        {.source = "k\\2", .topic = "t", .partition = 2147483647, .from = 0, .until = 9000000000},
    };
    sl_buf arr[4] = {{0}};
    CU_ASSERT_EQUAL_FATAL(sl__pg_range_arrays(r, 2, arr), SL_OK);
    CU_ASSERT_STRING_EQUAL(arr[0].p, "{\"kin\",\"k\\\\2\"}");
    CU_ASSERT_STRING_EQUAL(arr[1].p, "{\"or\\\"ders\",\"t\"}");
    CU_ASSERT_STRING_EQUAL(arr[2].p, "{\"3\",\"2147483647\"}");
    CU_ASSERT_STRING_EQUAL(arr[3].p, "{\"1300\",\"9000000000\"}");
    /* Used again for fewer ranges: reset first. */
    CU_ASSERT_EQUAL_FATAL(sl__pg_range_arrays(r, 1, arr), SL_OK);
    CU_ASSERT_STRING_EQUAL(arr[2].p, "{\"3\"}");
    for (int a = 0; a < 4; a++) {
        sl__buf_free(&arr[a]);
    }
}

/* WRITE when every range starts at its position (or nothing is held), SKIP when every range
 * is held, FENCED otherwise, also for a mix of held and new ranges. */
static void test_pg_positions_decide_write_skip_fenced(void)
{
    sl_input_range r[2] = {
        {.source = "kin", .topic = "orders", .partition = 3, .from = 1100, .until = 1300},
        {.source = "kin", .topic = "orders", .partition = 4, .from = 50, .until = 60},
    };
    char why[256];
    int64_t fresh[2] = {-1, -1}, at[2] = {1100, 50}, held[2] = {1300, 70};
    CU_ASSERT_EQUAL(sl__pg_positions_decide(r, 2, fresh, why, sizeof(why)), SL_POSITION_WRITE);
    CU_ASSERT_EQUAL(sl__pg_positions_decide(r, 2, at, why, sizeof(why)), SL_POSITION_WRITE);
    int64_t one_new[2] = {1100, -1};
    CU_ASSERT_EQUAL(sl__pg_positions_decide(r, 2, one_new, why, sizeof(why)), SL_POSITION_WRITE);
    CU_ASSERT_EQUAL(sl__pg_positions_decide(r, 2, held, why, sizeof(why)), SL_POSITION_SKIP);

    why[0] = '\0';
    int64_t inside[2] = {1200, 50};
    CU_ASSERT_EQUAL(sl__pg_positions_decide(r, 2, inside, why, sizeof(why)), SL_POSITION_FENCED);
    CU_ASSERT_STRING_EQUAL(why,
                           "orders [3]: this sink is at offset 1200, the batch reads 1100-1300");
    int64_t behind[2] = {1100, 40};
    CU_ASSERT_EQUAL(sl__pg_positions_decide(r, 2, behind, why, sizeof(why)), SL_POSITION_FENCED);
    CU_ASSERT_STRING_EQUAL(why, "orders [4]: this sink is at offset 40, the batch reads 50-60");

    int64_t mix[2] = {1300, -1};
    CU_ASSERT_EQUAL(sl__pg_positions_decide(r, 2, mix, why, sizeof(why)), SL_POSITION_FENCED);
    CU_ASSERT_STRING_EQUAL(why, "orders [3]: this sink is at offset 1300, the batch reads "
                                "1100-1300 (held already), but orders [4] 50-60 is not held "
                                "(the sink is at -1)");
    int64_t mix2[2] = {1100, 60};
    CU_ASSERT_EQUAL(sl__pg_positions_decide(r, 2, mix2, why, sizeof(why)), SL_POSITION_FENCED);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "orders [4]: this sink is at offset 60"));
}

/* A value the option table refuses (mode and ranges are checked there, not by hand). */
static void expect_table_error(const char *key, const char *value, const char *want)
{
    char err[256] = "";
    sl_options *o = sl_options_new();
    sl_options_set(o, "table", "t");
    sl_options_set(o, key, value);
    const sl_connector *c = sl_connector_find("postgres", SL_SINK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(sl_options_check(sl_connector_options(c), NULL, o, err, sizeof(err), NULL),
                    SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    sl_options_destroy(o);
}

static void test_pg_config_errors_name_the_option(void)
{
    sl_pg_ctx ctx;
    char err[256];
    expect_table_error("mode", "merge", "'merge' is not one of append|upsert|increment");
    expect_table_error("rows_per_statement", "0", "rows_per_statement");
    ctx_defaults(&ctx, SL_PG_APPEND, "k=key", NULL);
    ctx.table = "bad\xff";
    CU_ASSERT_EQUAL(check(&ctx, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "table:"));
    sl__pg_config_free(&ctx);
}

/* Through the engine: a sink with bad options is refused when it is added, with no server. */
static void test_pg_sink_bad_options_refused_at_load(void)
{
    char err[512];
    sl_context_conf conf = {.batch_interval_ms = 1000, .workers = 1};
    sl_context *sc = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(sc);
    sl_stream *s = sl_text_file_stream(sc, "/tmp");
    sl_options *o = sl_options_new();
    sl_options_set(o, "table", "t");
    sl_options_set(o, "mode", "increment");
    sl_options_set(o, "columns", "w=key,c=num");
    sl_options_set(o, "conninfo", "password=hunter22 host=nowhere");
    CU_ASSERT_EQUAL(sl_stream_to(s, "postgres", "db", o, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "key_columns"));
    CU_ASSERT_PTR_NULL(strstr(err, "hunter22"));
    sl_options_set(o, "key_columns", "w");
    sl_options_set(o, "conninfo", "host=x password=hunter22 nonsense");
    CU_ASSERT_EQUAL(sl_stream_to(s, "postgres", "db", o, err, sizeof(err)), SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "conninfo"));
    CU_ASSERT_PTR_NULL(strstr(err, "hunter22"));
    CU_ASSERT_PTR_NULL(strstr(err, "nonsense"));
    sl_options_set(o, "conninfo", "host=x password=hunter22");
    CU_ASSERT_EQUAL(sl_stream_to(s, "postgres", "db", o, err, sizeof(err)), SL_OK);
    sl_options_destroy(o);
    sl_context_destroy(sc);
}

/* ==== Rows ==== */

static void test_pg_row_values_of_each_source(void)
{
    char out[512], why[256];
    sl_record_meta m = {.source = "in", .topic = "tp", .partition = 3, .offset = 42};
    sl_record r = rec_kv("word", "raw");
    r.meta = &m;
    r.ts = 1700000000123;
    sl_record_set_int(&r, 7);
    int rc = row_text("k=key,v=value,n=num,ts=ts,bt=batch_time,t=topic,p=partition,o=offset,"
                      "btn=batch_time::bigint,ws=window_start,we=window_end,"
                      "wsn=window_start::bigint",
                      &r, 1700000001000, out, sizeof(out), why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "word|7|7|2023-11-14 22:13:20.123+00|2023-11-14 22:13:21.000+00|"
                                "tp|3|42|1700000001000|2023-11-14 22:12:51.000+00|"
                                "2023-11-14 22:13:21.000+00|1699999971000");
    /* Without meta: NULLs. */
    r.meta = NULL;
    rc = row_text("t=topic,p=partition,o=offset", &r, 0, out, sizeof(out), why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "<null>|<null>|<null>");
}

static void test_pg_row_numbers_are_checked(void)
{
    char out[256], why[256];
    sl_record r = rec_kv("k", "12");
    CU_ASSERT_EQUAL(row_text("n=num", &r, 0, out, sizeof(out), why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "12");
    r = rec_kv("k", "12abc");
    CU_ASSERT_EQUAL(row_text("n=num", &r, 0, out, sizeof(out), why, sizeof(why)), SL_ERR_RECORD);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "'12abc' is not an integer"));
    r = rec_kv("k", "1.5");
    CU_ASSERT_EQUAL(row_text("n=num", &r, 0, out, sizeof(out), why, sizeof(why)), SL_ERR_RECORD);
    CU_ASSERT_EQUAL(row_text("n=num::double", &r, 0, out, sizeof(out), why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "1.5");
    r = rec_kv("k", "99999999999999999999");
    CU_ASSERT_EQUAL(row_text("n=num", &r, 0, out, sizeof(out), why, sizeof(why)), SL_ERR_RECORD);
    r = rec_kv("k", "0x10");
    CU_ASSERT_EQUAL(row_text("n=num::double", &r, 0, out, sizeof(out), why, sizeof(why)),
                    SL_ERR_RECORD);
    /* A tombstone (no typed value, no bytes: a key that left a window) clears the number
     * (issue 15, item 13); a text value column keeps '' for it. */
    r = rec_kv("k", NULL);
    CU_ASSERT_EQUAL(row_text("n=num", &r, 0, out, sizeof(out), why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "<null>");
    CU_ASSERT_EQUAL(row_text("k=key,n=num::double,v=value::bigint,t=value", &r, 0, out, sizeof(out),
                             why, sizeof(why)),
                    SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "k|<null>|<null>|");
    /* An integral double goes into a bigint column. */
    sl_record_set_double(&r, 3.0);
    CU_ASSERT_EQUAL(row_text("n=num", &r, 0, out, sizeof(out), why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "3");
    sl_record_set_double(&r, 0.1);
    CU_ASSERT_EQUAL(row_text("n=num::double", &r, 0, out, sizeof(out), why, sizeof(why)), SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "0.1");
}

static void test_pg_row_json_fields(void)
{
    char out[512], why[256];
    sl_record r = rec_kv(NULL, "{\"user\":{\"id\":5,\"name\":\"a\\\"b\"},\"tags\":[\"x\",\"y\"],"
                               "\"n\":null,\"at\":\"2024-02-29T10:00:00Z\",\"ok\":true}");
    int rc = row_text("id=json:user.id::bigint,name=json:user.name,tag=json:tags.1,"
                      "tags=json:tags::jsonb,n=json:n,at=json:at::timestamptz,ok=json:ok::boolean,"
                      "user=json:user",
                      &r, 0, out, sizeof(out), why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "5|a\"b|y|[\"x\",\"y\"]|<null>|2024-02-29T10:00:00Z|true|"
                                "{\"id\":5,\"name\":\"a\\\"b\"}");
    rc = row_text("id=json:user.missing", &r, 0, out, sizeof(out), why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_ERR_RECORD);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "JSON field 'user.missing' is missing"));
    rc = row_text("id=json:user.name::bigint", &r, 0, out, sizeof(out), why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_ERR_RECORD);
    r = rec_kv(NULL, "not json");
    rc = row_text("id=json:a", &r, 0, out, sizeof(out), why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_ERR_RECORD);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "not JSON"));
}

static void test_pg_row_header_columns(void)
{
    char out[512], why[256];
    sl_header hs[] = {{.name = "tenant", .value = "a", .value_len = 1},
                      {.name = "none", .value = NULL, .value_len = 0},
                      {.name = "tenant", .value = "b'c", .value_len = 3},
                      {.name = "n", .value = "42", .value_len = 2}};
    sl_record_meta m = {
        .source = "in", .topic = "t", .partition = 1, .offset = 7, .headers = hs, .nheaders = 4};
    sl_record r = rec_kv("k", "v");
    r.meta = &m;
    int rc = row_text("tenant=header:tenant,none=header:none,n=header:n::bigint,k=key", &r, 0, out,
                      sizeof(out), why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "b'c|<null>|42|k"); /* the last header of a name */
    rc = row_text("x=header:missing", &r, 0, out, sizeof(out), why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_ERR_RECORD);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "header 'missing' is missing"));
    rc = row_text("t=header:tenant::bigint", &r, 0, out, sizeof(out), why, sizeof(why));
    CU_ASSERT_EQUAL(rc, SL_ERR_RECORD); /* "b'c" is not a bigint */
    sl_pg_column *cols;
    size_t n;
    char err[256];
    rc = sl__pg_columns_parse("x=header:", NULL, SL_PG_APPEND, &cols, &n, err, sizeof(err));
    CU_ASSERT_EQUAL(rc, SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "header: needs a header name"));
}

static void test_pg_row_text_and_times_are_checked(void)
{
    char out[256], why[256];
    sl_record r = rec_kv("a\xff", "v");
    CU_ASSERT_EQUAL(row_text("k=key", &r, 0, out, sizeof(out), why, sizeof(why)), SL_ERR_RECORD);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "UTF-8"));
    r = rec_kv("k", "x");
    r.value_len = 3;
    r.value = "a\0b";
    CU_ASSERT_EQUAL(row_text("v=value", &r, 0, out, sizeof(out), why, sizeof(why)), SL_ERR_RECORD);
    const char *good[] = {"2024-01-31", "2024-02-29 23:59:59.999", "2024-01-01T00:00:00+02:00",
                          "2024-01-01T00:00Z", "1700000000000"};
    const char *bad[] = {"2023-02-29", "2024-13-01", "2024-01-01 25:00", "yesterday",
                         "2024-01-01T00:00:00+99"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        r = rec_kv("k", good[i]);
        CU_ASSERT_EQUAL(row_text("t=value::timestamptz", &r, 0, out, sizeof(out), why, sizeof(why)),
                        SL_OK);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = rec_kv("k", bad[i]);
        CU_ASSERT_EQUAL(row_text("t=value::timestamptz", &r, 0, out, sizeof(out), why, sizeof(why)),
                        SL_ERR_RECORD);
    }
    r = rec_kv("k", "1700000000000");
    CU_ASSERT_EQUAL(row_text("t=value::timestamptz", &r, 0, out, sizeof(out), why, sizeof(why)),
                    SL_OK);
    CU_ASSERT_STRING_EQUAL(out, "2023-11-14 22:13:20.000+00");
    r = rec_kv("k", "{\"a\":");
    CU_ASSERT_EQUAL(row_text("j=value::jsonb", &r, 0, out, sizeof(out), why, sizeof(why)),
                    SL_ERR_RECORD);
}

/* ==== Escaping ==== */

static void test_pg_copy_line_escapes_specials(void)
{
    sl_pg_row row;
    CU_ASSERT_EQUAL_FATAL(sl__pg_row_init(&row, 3), SL_OK);
    const char *a = "tab\there\nnew\\back\rcr";
    row.vals[0] = a;
    row.lens[0] = strlen(a);
    row.vals[1] = NULL;
    row.vals[2] = "'); DROP TABLE x; --";
    row.lens[2] = strlen(row.vals[2]);
    sl_buf b = {0};
    CU_ASSERT_EQUAL(sl__pg_copy_line(&b, &row, 3), SL_OK);
    CU_ASSERT_STRING_EQUAL(b.p, "tab\\there\\nnew\\\\back\\rcr\t\\N\t'); DROP TABLE x; --\n");
    sl__buf_free(&b);
    sl__pg_row_free(&row);
}

static void test_pg_array_elements_are_quoted(void)
{
    sl_buf b = {0};
    sl__buf_append(&b, "{", 1);
    CU_ASSERT_EQUAL(sl__pg_array_elem(&b, "a\"b", 3, true), SL_OK);
    CU_ASSERT_EQUAL(sl__pg_array_elem(&b, "c\\d", 3, false), SL_OK);
    CU_ASSERT_EQUAL(sl__pg_array_elem(&b, NULL, 0, false), SL_OK);
    CU_ASSERT_EQUAL(sl__pg_array_elem(&b, "NULL", 4, false), SL_OK);
    CU_ASSERT_EQUAL(sl__pg_array_elem(&b, "{x, y}", 6, false), SL_OK);
    CU_ASSERT_EQUAL(sl__pg_array_elem(&b, "", 0, false), SL_OK);
    sl__buf_append(&b, "}", 1);
    CU_ASSERT_STRING_EQUAL(b.p, "{\"a\\\"b\",\"c\\\\d\",NULL,\"NULL\",\"{x, y}\",\"\"}");
    sl__buf_free(&b);
}

static void test_pg_format_ms(void)
{
    char buf[64];
    sl__pg_format_ms(0, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "1970-01-01 00:00:00.000+00");
    sl__pg_format_ms(-1, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "1969-12-31 23:59:59.999+00");
    sl__pg_format_ms(1709164800007, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "2024-02-29 00:00:00.007+00");
}

void sl_test_register(void)
{
    SL_SUITE("pg_identifiers", SL_TEST(pg_quote_ident_doubles_quotes),
             SL_TEST(pg_quote_ident_refuses_empty_and_bad_utf8));
    SL_SUITE("pg_columns", SL_TEST(pg_columns_infer_types_and_keys),
             SL_TEST(pg_columns_errors_are_clear), SL_TEST(pg_config_errors_name_the_option),
             SL_TEST(pg_sink_bad_options_refused_at_load));
    SL_SUITE("pg_sql", SL_TEST(pg_sql_append_uses_copy_and_quotes_names),
             SL_TEST(pg_sql_upsert_keeps_last_row_per_key),
             SL_TEST(pg_sql_increment_adds_numeric_columns),
             SL_TEST(pg_sql_upsert_of_keys_only_does_nothing_on_conflict),
             SL_TEST(pg_sql_commit_table_statements), SL_TEST(pg_sql_positions_statements),
             SL_TEST(pg_positions_table_default_and_bad_name),
             SL_TEST(pg_sink_has_positions_callback));
    SL_SUITE("pg_positions", SL_TEST(pg_range_arrays_escape_names),
             SL_TEST(pg_positions_decide_write_skip_fenced));
    SL_SUITE("pg_rows", SL_TEST(pg_row_values_of_each_source), SL_TEST(pg_row_numbers_are_checked),
             SL_TEST(pg_row_json_fields), SL_TEST(pg_row_header_columns),
             SL_TEST(pg_row_text_and_times_are_checked), SL_TEST(pg_copy_line_escapes_specials),
             SL_TEST(pg_array_elements_are_quoted), SL_TEST(pg_format_ms));
}

#else /* !SLUICE_WITH_POSTGRES */

static void test_pg_not_built(void)
{
    CU_PASS("built without the postgres sink");
}

void sl_test_register(void)
{
    SL_SUITE("pg", SL_TEST(pg_not_built));
}

#endif

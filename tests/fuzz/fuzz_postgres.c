/* fuzz_postgres.c -- fuzzes the postgres sink's column mappings (postgres_config.c) and row
 * values (postgres_rows.c): fuzzed columns and key_columns parsed into SQL, then a record's
 * row built and escaped for COPY and for array parameters. */
#include "fuzz_util.h"
#include "postgres/postgres.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sl_set_log_level((sl_log_level)-1);
    return 0;
}

static char *next_line(const char **p, const char *end)
{
    if (*p >= end) {
        return NULL;
    }
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p += n + (nl ? 1 : 0);
    return s;
}

/* The first byte: the mode (low 2 bits), create_table, a schema, the typed value; then
 * lines: columns, key_columns (empty: none), the record's key; the rest is its value. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) {
        return 0;
    }
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    char *columns = next_line(&p, end), *keys = next_line(&p, end), *rkey = next_line(&p, end);
    sl_pg_ctx ctx = {
        .table = "counts",
        .schema = data[0] & 8 ? "s\"x" : NULL,
        .mode = (data[0] & 3) % 3,
        .columns = columns ? columns : "word=key,n=value",
        .key_columns = keys && *keys ? keys : NULL,
        .create_table = data[0] & 4,
        .commit_table = "sluice_commits",
        .instance = "",
        .connect_timeout = 5000,
        .query_timeout = 60000,
        .rows_per_statement = 10000,
    };
    char err[512], why[256];
    if (sl__pg_config_check(&ctx, err, sizeof(err)) == SL_OK) {
        sl_header hdr = {.name = "h", .value = p, .value_len = (uint32_t)(end - p)};
        sl_record_meta meta = {.source = "s",
                               .topic = "t\tx",
                               .partition = 2,
                               .offset = 7,
                               .headers = &hdr,
                               .nheaders = 1};
        sl_record r = {.key = rkey,
                       .key_len = rkey ? (uint32_t)strlen(rkey) : 0,
                       .value = p,
                       .value_len = (uint32_t)(end - p),
                       .ts = 5,
                       .meta = &meta};
        if (data[0] & 16) {
            sl_record_set_int(&r, (int64_t)data[0] * -1000003);
        } else if (data[0] & 32) {
            sl_record_set_double(&r, data[0] & 64 ? 0.1 : -1e300);
        }
        sl_pg_row row;
        sl_record_when when = {1700000000000, 1700000000000 - 60000, 1700000000000};
        if (sl__pg_row_init(&row, ctx.ncols) == SL_OK) {
            if (sl__pg_row_build(ctx.cols, ctx.ncols, ctx.need_json, &r, &when, &row, why,
                                 sizeof(why)) == SL_OK) {
                sl_buf b = {0};
                sl__pg_copy_line(&b, &row, ctx.ncols);
                sl__buf_append(&b, "{", 1);
                for (size_t i = 0; i < ctx.ncols; i++) {
                    sl__pg_array_elem(&b, row.vals[i], row.lens[i], i == 0);
                }
                sl__buf_free(&b);
            }
            sl__pg_row_free(&row);
        }
    }
    sl__pg_config_free(&ctx);
    free(columns);
    free(keys);
    free(rkey);
    return 0;
}

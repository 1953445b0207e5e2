/* pg_append.c -- rows per second of the postgres sink in append mode (COPY, one transaction
 * with its commit row per batch), driven through the connector struct. bench/pg_append.sh
 * runs it next to psql's \copy of the same rows.
 *
 *   pg_append TABLE ROWS BATCH_ROWS [DUMP_FILE]
 *
 * The rows: key "key-<i % 10000>", value "value <i> with some text", num i. DUMP_FILE gets
 * them in COPY text format (for \copy). Connection from the PG* environment. Prints
 * "rows=N batch_rows=B seconds=S rows_per_s=R". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_engine.h"

#ifdef SLUICE_WITH_POSTGRES

extern const sl_connector sl__connector_postgres;

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: pg_append TABLE ROWS BATCH_ROWS [DUMP_FILE]\n");
        return 2;
    }
    const char *table = argv[1];
    size_t rows = strtoull(argv[2], NULL, 10), batch = strtoull(argv[3], NULL, 10);
    if (rows == 0 || batch == 0) {
        fprintf(stderr, "pg_append: ROWS and BATCH_ROWS must be positive\n");
        return 2;
    }
    char err[512];
    sl_set_log_level(SL_LOG_WARN);
    sl_context_conf conf = {.name = "pg_append_bench", .batch_interval_ms = 1000, .workers = 1};
    sl_context *sc = sl_context_new(&conf, err, sizeof(err));
    sl_options *o = sl_options_new();
    sl_options_set(o, "table", table);
    sl_options_set(o, "columns", "k=key,v=value,n=num::bigint");
    sl_options_set(o, "create_table", "true");
    sl_instance *ins =
        sc ? sl__instance_new(sc, &sl__connector_postgres, SL_SINK, "bench", o, err, sizeof(err))
           : NULL;
    sl_options_destroy(o);
    if (!ins) {
        fprintf(stderr, "pg_append: %s\n", err);
        return 1;
    }

    /* Every row's bytes in one buffer, made before the clock starts. */
    char *bytes = malloc(rows * 64);
    sl_record *recs = calloc(rows, sizeof(*recs));
    FILE *dump = argc > 4 ? fopen(argv[4], "w") : NULL;
    if (!bytes || !recs || (argc > 4 && !dump)) {
        fprintf(stderr, "pg_append: out of memory or cannot open %s\n", argc > 4 ? argv[4] : "");
        return 1;
    }
    char *p = bytes;
    for (size_t i = 0; i < rows; i++) {
        int kl = sprintf(p, "key-%zu", i % 10000);
        recs[i].key = p;
        recs[i].key_len = (uint32_t)kl;
        p += kl;
        int vl = sprintf(p, "value %zu with some text", i);
        recs[i].value = p;
        recs[i].value_len = (uint32_t)vl;
        p += vl;
        recs[i].num_type = SL_NUM_NONE;
        if (dump) {
            fprintf(dump, "%.*s\t%.*s\t%zu\n", kl, recs[i].key, vl, recs[i].value, i);
        }
    }
    if (dump) {
        fclose(dump);
    }
    /* num reads the value bytes when there is no typed value: give each record its i. */
    for (size_t i = 0; i < rows; i++) {
        sl_record_set_int(&recs[i], (int64_t)i);
    }

    char why[256] = "";
    int rc = ins->conn->start(ins->cctx, why, sizeof(why));
    double t0 = bench_now();
    size_t done = 0;
    for (int64_t t = 1000; rc == SL_OK && done < rows; t += 1000) {
        size_t n = rows - done < batch ? rows - done : batch;
        sl_dataset *ds = sl__dataset_new(1, t);
        ds->parts[0].recs = recs + done;
        ds->parts[0].n = n;
        ds->parts[0].borrowed = true;
        sl_batch_output out = {.batch_time = t,
                               .ds = ds,
                               .pipeline = "pg_append_bench",
                               .sink = table,
                               .inputs = "bench"};
        rc = ins->conn->write(ins->cctx, &out, why, sizeof(why));
        sl__dataset_release(ds);
        done += n;
    }
    double secs = bench_now() - t0;
    ins->conn->stop(ins->cctx);
    if (rc != SL_OK) {
        fprintf(stderr, "pg_append: write failed: %s\n", why[0] ? why : sl_err2str(rc));
    } else {
        printf("rows=%zu batch_rows=%zu seconds=%.3f rows_per_s=%.0f\n", rows, batch, secs,
               (double)rows / secs);
    }
    sl__instance_destroy(ins);
    sl_context_destroy(sc);
    free(recs);
    free(bytes);
    return rc == SL_OK ? 0 : 1;
}

#else

int main(void)
{
    fprintf(stderr, "pg_append: built without the postgres sink\n");
    return 77;
}

#endif

/* pg_replay.c -- drives the postgres sink directly through its connector struct, one batch
 * per run, for tests/integration/test_postgres_replay.sh: running it twice with the same
 * batch time is a replay after a restart.
 *
 *   pg_replay write TABLE MODE BATCH_MS [CREATE]   writes the fixed batch below (PG* env)
 *   pg_replay last TABLE                            prints "BATCH_MS INPUTS" of the last commit
 *
 * The batch: (a,1) (b,2) (big,1000) and (bad,"x"), whose value is no number: three rows for
 * the table (bad is skipped by the sink), in mode increment keyed by word. Exit status 0
 * when the sink returned SL_OK. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

#ifdef SLUICE_WITH_POSTGRES

#include "../../connectors/postgres/postgres.h"

extern const sl_connector sl__connector_postgres;

static sl_instance *make_sink(sl_context *sc, const char *table, const char *mode,
                              const char *create)
{
    char err[512];
    sl_options *o = sl_options_new();
    sl_options_set(o, "table", table);
    sl_options_set(o, "mode", mode);
    sl_options_set(o, "columns", "word=key,count=num");
    sl_options_set(o, "key_columns", "word");
    sl_options_set(o, "create_table", create);
    sl_instance *ins =
        sl__instance_new(sc, &sl__connector_postgres, SL_SINK, "replay_sink", o, err, sizeof(err));
    sl_options_destroy(o);
    if (!ins) {
        fprintf(stderr, "pg_replay: %s\n", err);
    }
    return ins;
}

static int do_write(sl_instance *ins, int64_t t)
{
    static const sl_record_meta meta = {.source = "test", .topic = "words", .partition = 0};
    sl_record recs[4] = {{.key = "a", .key_len = 1},
                         {.key = "b", .key_len = 1},
                         {.key = "big", .key_len = 3},
                         {.key = "bad", .key_len = 3, .value = "x", .value_len = 1}};
    sl_record_set_int(&recs[0], 1);
    sl_record_set_int(&recs[1], 2);
    sl_record_set_int(&recs[2], 1000);
    for (int i = 0; i < 4; i++) {
        recs[i].meta = &meta;
    }
    sl_dataset *ds = sl__dataset_new(1, t);
    ds->parts[0].recs = malloc(sizeof(recs));
    memcpy(ds->parts[0].recs, recs, sizeof(recs));
    ds->parts[0].n = 4;
    sl_batch_output out = {.batch_time = t,
                           .ds = ds,
                           .pipeline = "pg_replay",
                           .sink = "replay_sink",
                           .inputs = "words-0: [10, 14)",
                           .attempt = 0};
    char why[256];
    int rc = ins->conn->start(ins->cctx, why, sizeof(why));
    if (rc == SL_OK) {
        rc = ins->conn->write(ins->cctx, &out, why, sizeof(why));
    }
    ins->conn->stop(ins->cctx);
    sl__dataset_release(ds);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pg_replay write TABLE MODE BATCH_MS [CREATE] | last TABLE\n");
        return 2;
    }
    char err[512];
    sl_context_conf conf = {.name = "pg_replay", .batch_interval_ms = 1000, .workers = 1};
    sl_context *sc = sl_context_new(&conf, err, sizeof(err));
    if (!sc) {
        fprintf(stderr, "pg_replay: %s\n", err);
        return 1;
    }
    int rc = SL_ERR_INVAL;
    if (strcmp(argv[1], "write") == 0 && argc >= 5) {
        sl_instance *ins = make_sink(sc, argv[2], argv[3], argc > 5 ? argv[5] : "true");
        if (ins) {
            rc = do_write(ins, strtoll(argv[4], NULL, 10));
            printf("write: %s\n", sl_err2str(rc));
            sl__instance_destroy(ins);
        }
    } else if (strcmp(argv[1], "last") == 0) {
        sl_instance *ins = make_sink(sc, argv[2], "increment", "false");
        if (ins) {
            int64_t t = 0;
            char *inputs = NULL;
            rc = sl__postgres_last_commit(ins->cctx, "pg_replay", &t, &inputs, err, sizeof(err));
            if (rc == SL_OK) {
                printf("%lld %s\n", (long long)t, inputs);
            } else {
                printf("last: %s: %s\n", sl_err2str(rc), err);
            }
            free(inputs);
            sl__instance_destroy(ins);
        }
    }
    sl_context_destroy(sc);
    return rc == SL_OK ? 0 : 1;
}

#else

int main(void)
{
    fprintf(stderr, "pg_replay: built without the postgres sink\n");
    return 77;
}

#endif

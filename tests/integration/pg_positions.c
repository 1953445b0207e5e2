/* pg_positions.c -- drives the postgres sink's input positions directly through its
 * connector struct, for tests/integration/test_postgres_positions.sh: one batch (or one
 * positions question) per run, as one instance of a consumer group would.
 *
 *   pg_positions write TABLE PIPELINE INSTANCE BATCH_MS RANGE...
 *       writes a batch that reads each RANGE (SOURCE:TOPIC:PARTITION:FROM:UNTIL): one row per
 *       offset (k "TOPIC/PARTITION/OFFSET", part, off) to TABLE (created, append mode).
 *       Prints "write: RESULT" (sl_err2str) and, when the sink says why, "why: ERRSTR".
 *   pg_positions read TABLE PIPELINE PARTITION...
 *       asks the positions callback for each PARTITION (SOURCE:TOPIC:PARTITION); prints
 *       "TOPIC [PARTITION] NEXT" per partition, or "read: RESULT: ERRSTR".
 *
 * The sink is named pos_sink. PG* environment for the server. Exit status 0 for SL_OK, 3 for
 * SL_ERR_FENCED, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

#ifdef SLUICE_WITH_POSTGRES

extern const sl_connector sl__connector_postgres;

#define MAX_RANGES 16

static sl_instance *make_sink(sl_context *sc, const char *table, const char *instance)
{
    char err[512];
    sl_options *o = sl_options_new();
    sl_options_set(o, "table", table);
    sl_options_set(o, "mode", "append");
    sl_options_set(o, "columns", "k=key,part=partition,off=offset");
    sl_options_set(o, "create_table", "true");
    sl_options_set(o, "instance", instance);
    sl_instance *ins =
        sl__instance_new(sc, &sl__connector_postgres, SL_SINK, "pos_sink", o, err, sizeof(err));
    sl_options_destroy(o);
    if (!ins) {
        fprintf(stderr, "pg_positions: %s\n", err);
    }
    return ins;
}

/* Splits "a:b:c..." in place into at most max fields; returns how many. */
static int split(char *s, char **f, int max)
{
    int n = 0;
    for (char *p = s; n < max;) {
        f[n++] = p;
        p = strchr(p, ':');
        if (!p) {
            break;
        }
        *p++ = '\0';
    }
    return n;
}

static int do_write(sl_instance *ins, const char *pipeline, int64_t t, char **args, int nargs)
{
    sl_input_range ranges[MAX_RANGES];
    size_t nrecs = 0;
    if (nargs > MAX_RANGES) {
        fprintf(stderr, "pg_positions: at most %d ranges\n", MAX_RANGES);
        return SL_ERR_INVAL;
    }
    for (int i = 0; i < nargs; i++) {
        char *f[5];
        if (split(args[i], f, 5) != 5) {
            fprintf(stderr, "pg_positions: a range is SOURCE:TOPIC:PARTITION:FROM:UNTIL\n");
            return SL_ERR_INVAL;
        }
        ranges[i] = (sl_input_range){.source = f[0],
                                     .topic = f[1],
                                     .partition = (int32_t)atoi(f[2]),
                                     .from = strtoll(f[3], NULL, 10),
                                     .until = strtoll(f[4], NULL, 10)};
        nrecs += (size_t)(ranges[i].until - ranges[i].from);
    }
    sl_dataset *ds = sl__dataset_new(1, t);
    sl_record *recs = calloc(nrecs ? nrecs : 1, sizeof(*recs));
    sl_record_meta *metas = calloc(nrecs ? nrecs : 1, sizeof(*metas));
    char *keys = calloc(nrecs ? nrecs : 1, 64);
    if (!ds || !recs || !metas || !keys) {
        free(recs);
        free(metas);
        free(keys);
        sl__dataset_release(ds);
        return SL_ERR_NOMEM;
    }
    size_t n = 0;
    for (int i = 0; i < nargs; i++) {
        for (int64_t off = ranges[i].from; off < ranges[i].until; off++, n++) {
            metas[n] = (sl_record_meta){.source = ranges[i].source,
                                        .topic = ranges[i].topic,
                                        .partition = ranges[i].partition,
                                        .offset = off};
            char *k = keys + n * 64;
            snprintf(k, 64, "%s/%d/%lld", ranges[i].topic, (int)ranges[i].partition,
                     (long long)off);
            recs[n].key = k;
            recs[n].key_len = (uint32_t)strlen(k);
            recs[n].value = "1";
            recs[n].value_len = 1;
            recs[n].meta = &metas[n];
        }
    }
    ds->parts[0].recs = recs;
    ds->parts[0].n = n;
    char inputs[64];
    snprintf(inputs, sizeof(inputs), "{\"pg_positions\": %d}", nargs);
    sl_batch_output out = {.batch_time = t,
                           .ds = ds,
                           .pipeline = pipeline,
                           .sink = "pos_sink",
                           .inputs = inputs,
                           .ranges = ranges,
                           .nranges = (size_t)nargs};
    char why[256] = "";
    int rc = ins->conn->start(ins->cctx, why, sizeof(why));
    if (rc == SL_OK) {
        rc = ins->conn->write(ins->cctx, &out, why, sizeof(why));
    }
    ins->conn->stop(ins->cctx);
    printf("write: %s\n", sl_err2str(rc));
    if (rc != SL_OK && why[0]) {
        printf("why: %s\n", why);
    }
    sl__dataset_release(ds); /* frees recs */
    free(metas);
    free(keys);
    return rc;
}

static int do_read(sl_instance *ins, const char *pipeline, char **args, int nargs)
{
    sl_position pos[MAX_RANGES];
    if (nargs > MAX_RANGES) {
        return SL_ERR_INVAL;
    }
    for (int i = 0; i < nargs; i++) {
        char *f[3];
        if (split(args[i], f, 3) != 3) {
            fprintf(stderr, "pg_positions: a partition is SOURCE:TOPIC:PARTITION\n");
            return SL_ERR_INVAL;
        }
        pos[i] = (sl_position){
            .source = f[0], .topic = f[1], .partition = (int32_t)atoi(f[2]), .next = -2};
    }
    char why[256] = "";
    int rc = ins->conn->positions(ins->cctx, pipeline, pos, (size_t)nargs, why, sizeof(why));
    if (rc != SL_OK) {
        printf("read: %s: %s\n", sl_err2str(rc), why);
        return rc;
    }
    for (int i = 0; i < nargs; i++) {
        printf("%s [%d] %lld\n", pos[i].topic, (int)pos[i].partition, (long long)pos[i].next);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: pg_positions write TABLE PIPELINE INSTANCE BATCH_MS RANGE... | "
                        "read TABLE PIPELINE PARTITION...\n");
        return 2;
    }
    char err[512];
    sl_context_conf conf = {.name = "pg_positions", .batch_interval_ms = 1000, .workers = 1};
    sl_context *sc = sl_context_new(&conf, err, sizeof(err));
    if (!sc) {
        fprintf(stderr, "pg_positions: %s\n", err);
        return 1;
    }
    int rc = SL_ERR_INVAL;
    if (strcmp(argv[1], "write") == 0 && argc >= 7) {
        sl_instance *ins = make_sink(sc, argv[2], argv[4]);
        if (ins) {
            rc = do_write(ins, argv[3], strtoll(argv[5], NULL, 10), argv + 6, argc - 6);
            sl__instance_destroy(ins);
        }
    } else if (strcmp(argv[1], "read") == 0) {
        sl_instance *ins = make_sink(sc, argv[2], "");
        if (ins) {
            rc = do_read(ins, argv[3], argv + 4, argc - 4);
            sl__instance_destroy(ins);
        }
    }
    sl_context_destroy(sc);
    return rc == SL_OK ? 0 : rc == SL_ERR_FENCED ? 3 : 1;
}

#else

int main(void)
{
    fprintf(stderr, "pg_positions: built without the postgres sink\n");
    return 77;
}

#endif

/* redis_replay.c -- drives the redis sink directly through its connector struct, one batch
 * per run, for tests/integration/test_redis_replay.sh: running it twice with the same batch
 * time is a replay after a restart.
 *
 *   redis_replay PORT COMMAND KEY_TEMPLATE BATCH_MS
 *
 * The batch: (a,1) (b,2) (big,1000) and (bad,"x"), whose value is no number (skipped by
 * the increment commands). Exit status 0 when the sink returned SL_OK. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

#ifdef SLUICE_WITH_REDIS

extern const sl_connector sl__connector_redis;

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: redis_replay PORT COMMAND KEY_TEMPLATE BATCH_MS\n");
        return 2;
    }
    char err[512];
    sl_context_conf conf = {.name = "redis_replay", .batch_interval_ms = 1000, .workers = 1};
    sl_context *sc = sl_context_new(&conf, err, sizeof(err));
    if (!sc) {
        fprintf(stderr, "redis_replay: %s\n", err);
        return 1;
    }
    sl_options *o = sl_options_new();
    sl_options_set(o, "port", argv[1]);
    sl_options_set(o, "command", argv[2]);
    sl_options_set(o, "key", argv[3]);
    sl_instance *ins =
        sl__instance_new(sc, &sl__connector_redis, SL_SINK, "replay_sink", o, err, sizeof(err));
    sl_options_destroy(o);
    if (!ins) {
        fprintf(stderr, "redis_replay: %s\n", err);
        sl_context_destroy(sc);
        return 1;
    }
    int64_t t = strtoll(argv[4], NULL, 10);
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
                           .pipeline = "redis_replay",
                           .sink = "replay_sink",
                           .inputs = "words-0: [10, 14)",
                           .attempt = 0};
    char why[256];
    int rc = ins->conn->start(ins->cctx, why, sizeof(why));
    if (rc == SL_OK) {
        rc = ins->conn->write(ins->cctx, &out, why, sizeof(why));
    }
    printf("write: %s\n", sl_err2str(rc));
    ins->conn->stop(ins->cctx);
    sl__dataset_release(ds);
    sl__instance_destroy(ins);
    sl_context_destroy(sc);
    return rc == SL_OK ? 0 : 1;
}

#else

int main(void)
{
    fprintf(stderr, "redis_replay: built without the redis sink\n");
    return 77;
}

#endif

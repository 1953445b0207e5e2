/* redis_sink.c -- commands per second of the redis sink (each batch in MULTI/EXEC with its
 * commit key, pipeline_depth commands written before their replies are read), driven
 * through the connector struct. bench/redis_sink.sh runs it next to redis-benchmark with
 * the same command and pipeline depth.
 *
 *   redis_sink PORT COMMANDS BATCH DEPTH KEY
 *
 * Each record is HINCRBY KEY field:<i % 10000> 1. Prints
 * "commands=N batch=B depth=D seconds=S commands_per_s=R". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_engine.h"

#ifdef SLUICE_WITH_REDIS

extern const sl_connector sl__connector_redis;

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: redis_sink PORT COMMANDS BATCH DEPTH KEY\n");
        return 2;
    }
    size_t total = strtoull(argv[2], NULL, 10), batch = strtoull(argv[3], NULL, 10);
    if (total == 0 || batch == 0) {
        fprintf(stderr, "redis_sink: COMMANDS and BATCH must be positive\n");
        return 2;
    }
    char err[512];
    sl_set_log_level(SL_LOG_WARN);
    sl_context_conf conf = {.name = "redis_sink_bench", .batch_interval_ms = 1000, .workers = 1};
    sl_context *sc = sl_context_new(&conf, err, sizeof(err));
    sl_options *o = sl_options_new();
    sl_options_set(o, "port", argv[1]);
    sl_options_set(o, "command", "hincrby");
    sl_options_set(o, "key", argv[5]);
    sl_options_set(o, "field", "field:{key}");
    sl_options_set(o, "pipeline_depth", argv[4]);
    sl_instance *ins =
        sc ? sl__instance_new(sc, &sl__connector_redis, SL_SINK, "bench", o, err, sizeof(err))
           : NULL;
    sl_options_destroy(o);
    if (!ins) {
        fprintf(stderr, "redis_sink: %s\n", err);
        return 1;
    }
    char *bytes = malloc(total * 8);
    sl_record *recs = calloc(total, sizeof(*recs));
    if (!bytes || !recs) {
        fprintf(stderr, "redis_sink: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < total; i++) {
        char *p = bytes + i * 8;
        int n = sprintf(p, "%zu", i % 10000);
        recs[i].key = p;
        recs[i].key_len = (uint32_t)n;
        sl_record_set_int(&recs[i], 1);
    }

    char why[256] = "";
    int rc = ins->conn->start(ins->cctx, why, sizeof(why));
    double t0 = bench_now();
    size_t done = 0;
    int64_t base = (int64_t)time(NULL) * 1000; /* fresh commit keys on every run */
    for (int64_t t = base; rc == SL_OK && done < total; t++) {
        size_t n = total - done < batch ? total - done : batch;
        sl_dataset *ds = sl__dataset_new(1, t);
        ds->parts[0].recs = recs + done;
        ds->parts[0].n = n;
        ds->parts[0].borrowed = true;
        sl_batch_output out = {.batch_time = t,
                               .ds = ds,
                               .pipeline = "redis_sink_bench",
                               .sink = argv[5],
                               .inputs = "bench"};
        rc = ins->conn->write(ins->cctx, &out, why, sizeof(why));
        sl__dataset_release(ds);
        done += n;
    }
    double secs = bench_now() - t0;
    ins->conn->stop(ins->cctx);
    if (rc != SL_OK) {
        fprintf(stderr, "redis_sink: write failed: %s\n", why[0] ? why : sl_err2str(rc));
    } else {
        printf("commands=%zu batch=%zu depth=%s seconds=%.3f commands_per_s=%.0f\n", total, batch,
               argv[4], secs, (double)total / secs);
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
    fprintf(stderr, "redis_sink: built without the redis sink\n");
    return 77;
}

#endif

/* redis_positions.c -- drives the redis sink's input positions directly through its
 * connector struct, for tests/integration/test_redis_positions.sh: one process per batch, as
 * the instances of a consumer group would write them.
 *
 *   redis_positions PORT write KEY BATCH_MS TOPIC,PARTITION,FROM,UNTIL...
 *   redis_positions PORT positions TOPIC,PARTITION...
 *
 * write: a batch of source "kin" with these ranges, one record per offset, key
 * <topic>-<partition> and value 1, written with HINCRBY KEY <key> 1 (so the hash counts the
 * offsets written); prints "write: <result>" and "errstr: <errstr>"; exit status 0 for
 * SL_OK, 3 for SL_ERR_FENCED, 1 otherwise. positions: prints "<topic>,<partition> <next>" for
 * each, from the positions callback; exit status 0 when it returned SL_OK. The pipeline is
 * redis_positions, the sink pos_sink. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

#ifdef SLUICE_WITH_REDIS

extern const sl_connector sl__connector_redis;

#define MAX_RANGES 16

/* Parses TOPIC,PARTITION[,FROM,UNTIL] in place (the topic may hold ':'). */
static int parse_spec(char *s, sl_input_range *r, bool with_offsets)
{
    char *parts[4] = {0};
    int n = 0;
    for (char *p = s; n < 4; n++) {
        parts[n] = p;
        char *comma = strchr(p, ',');
        if (!comma) {
            n++;
            break;
        }
        *comma = '\0';
        p = comma + 1;
    }
    if (n != (with_offsets ? 4 : 2)) {
        return -1;
    }
    *r = (sl_input_range){.source = "kin", .topic = parts[0], .partition = atoi(parts[1])};
    if (with_offsets) {
        r->from = strtoll(parts[2], NULL, 10);
        r->until = strtoll(parts[3], NULL, 10);
    }
    return 0;
}

static int do_write(sl_instance *ins, int64_t t, sl_input_range *ranges, size_t nranges)
{
    static sl_record_meta metas[MAX_RANGES];
    static char keys[MAX_RANGES][128];
    size_t nrecs = 0;
    for (size_t i = 0; i < nranges; i++) {
        nrecs += (size_t)(ranges[i].until - ranges[i].from);
    }
    sl_dataset *ds = sl__dataset_new(1, t);
    sl_record *recs = calloc(nrecs ? nrecs : 1, sizeof(*recs));
    size_t k = 0;
    for (size_t i = 0; i < nranges; i++) {
        metas[i] = (sl_record_meta){
            .source = "kin", .topic = ranges[i].topic, .partition = ranges[i].partition};
        snprintf(keys[i], sizeof(keys[i]), "%s-%" PRId32, ranges[i].topic, ranges[i].partition);
        for (int64_t o = ranges[i].from; o < ranges[i].until; o++, k++) {
            recs[k].key = keys[i];
            recs[k].key_len = (uint32_t)strlen(keys[i]);
            recs[k].meta = &metas[i];
            sl_record_set_int(&recs[k], 1);
        }
    }
    ds->parts[0].recs = recs;
    ds->parts[0].n = nrecs;
    sl_batch_output out = {.batch_time = t,
                           .ds = ds,
                           .pipeline = "redis_positions",
                           .sink = "pos_sink",
                           .inputs = "{}",
                           .ranges = ranges,
                           .nranges = nranges};
    char why[512] = "";
    int rc = ins->conn->start(ins->cctx, why, sizeof(why));
    if (rc == SL_OK) {
        rc = ins->conn->write(ins->cctx, &out, why, sizeof(why));
    }
    printf("write: %s\nerrstr: %s\n", sl_err2str(rc), why);
    ins->conn->stop(ins->cctx);
    sl__dataset_release(ds);
    return rc == SL_OK ? 0 : rc == SL_ERR_FENCED ? 3 : 1;
}

static int do_positions(sl_instance *ins, sl_input_range *ranges, size_t n)
{
    sl_position pos[MAX_RANGES];
    for (size_t i = 0; i < n; i++) {
        pos[i] = (sl_position){.source = ranges[i].source,
                               .topic = ranges[i].topic,
                               .partition = ranges[i].partition,
                               .next = -2};
    }
    char why[512] = "";
    int rc = ins->conn->positions(ins->cctx, "redis_positions", pos, n, why, sizeof(why));
    if (rc != SL_OK) {
        printf("positions: %s\nerrstr: %s\n", sl_err2str(rc), why);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        printf("%s,%" PRId32 " %" PRId64 "\n", pos[i].topic, pos[i].partition, pos[i].next);
    }
    return 0;
}

int main(int argc, char **argv)
{
    bool write = argc >= 6 && strcmp(argv[2], "write") == 0;
    bool positions = argc >= 4 && strcmp(argv[2], "positions") == 0;
    int first = write ? 5 : 3;
    if ((!write && !positions) || argc - first > MAX_RANGES) {
        fprintf(stderr,
                "usage: redis_positions PORT write KEY BATCH_MS TOPIC,PARTITION,FROM,UNTIL..."
                "\n       redis_positions PORT positions TOPIC,PARTITION...\n");
        return 2;
    }
    sl_input_range ranges[MAX_RANGES];
    size_t n = 0;
    for (int i = first; i < argc; i++, n++) {
        if (parse_spec(argv[i], &ranges[n], write) != 0) {
            fprintf(stderr, "redis_positions: bad range '%s'\n", argv[i]);
            return 2;
        }
    }
    char err[512];
    sl_context_conf conf = {.name = "redis_positions", .batch_interval_ms = 1000, .workers = 1};
    sl_context *sc = sl_context_new(&conf, err, sizeof(err));
    if (!sc) {
        fprintf(stderr, "redis_positions: %s\n", err);
        return 1;
    }
    sl_options *o = sl_options_new();
    sl_options_set(o, "port", argv[1]);
    sl_options_set(o, "command", "hincrby");
    sl_options_set(o, "key", write ? argv[3] : "unused");
    sl_options_set(o, "connect_timeout", "2s");
    sl_instance *ins =
        sl__instance_new(sc, &sl__connector_redis, SL_SINK, "pos_sink", o, err, sizeof(err));
    sl_options_destroy(o);
    if (!ins) {
        fprintf(stderr, "redis_positions: %s\n", err);
        sl_context_destroy(sc);
        return 1;
    }
    int rc =
        write ? do_write(ins, strtoll(argv[4], NULL, 10), ranges, n) : do_positions(ins, ranges, n);
    sl__instance_destroy(ins);
    sl_context_destroy(sc);
    return rc;
}

#else

int main(void)
{
    fprintf(stderr, "redis_positions: built without the redis sink\n");
    return 77;
}

#endif

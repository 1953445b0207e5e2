/* kafka_changelog.c -- drives the kafka sink as a changelog through its connector struct, for
 * tests/integration/test_kafka_changelog.sh (the real broker: read_committed, control
 * records, aborted and open transactions).
 *
 *   kafka_changelog write BROKERS TOPIC GROUP ITEM...
 *       one batch of the changelog sink "cl" (instance "it"): ITEM is TASK:KEY=VALUE (a state
 *       record), TASK:KEY~ (the key has no state any more: a tombstone) or
 *       @SOURCE:TOPIC:PARTITION:FROM:UNTIL (an input range). Prints "write: RESULT" and, when
 *       the sink says why, "why: ERRSTR".
 *   kafka_changelog restore BROKERS TOPIC TASK SOURCE SRCTOPIC
 *       restore_state of TASK: one line per record ("KEY=VALUE" or "KEY~"), then "next: N"
 *       and "restore: RESULT" (with "why: ERRSTR" on failure).
 *   kafka_changelog aborted BROKERS TOPIC TASK ITEM...
 *       a transaction of another producer with the records KEY=VALUE and markers
 *       @SOURCE:SRCTOPIC:UNTIL on partition TASK, aborted.
 *   kafka_changelog open BROKERS TOPIC TASK SOURCE SRCTOPIC ITEM...
 *       such a transaction left open while TASK is restored (lines prefixed "open: "), then
 *       committed and TASK restored again (prefixed "committed: ").
 *
 * Exit status 0 for SL_OK, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

#ifdef SLUICE_WITH_KAFKA

#include "../../connectors/kafka/kafka.h"

#define MAX_ITEMS 32

extern const sl_connector sl__connector_kafka_sink;

static sl_instance *make_sink(sl_context *sc, const char *brokers, const char *topic,
                              const char *group)
{
    char err[512];
    sl_options *o = sl_options_new();
    sl_options_set(o, "brokers", brokers);
    sl_options_set(o, "topic", topic);
    sl_options_set(o, "instance", "it");
    sl_options_set(o, "flush_timeout", "10s");
    if (group) {
        sl_options_set(o, "group", group);
    }
    sl_instance *ins =
        sl__instance_new(sc, &sl__connector_kafka_sink, SL_SINK, "cl", o, err, sizeof(err));
    sl_options_destroy(o);
    if (!ins) {
        fprintf(stderr, "kafka_changelog: %s\n", err);
        return NULL;
    }
    /* What sl_stream_changelog does: a mark, never dereferenced by the connector. */
    ins->changelog = (sl_stream *)ins;
    int rc = ins->conn->start(ins->cctx, err, sizeof(err));
    if (rc != SL_OK) {
        fprintf(stderr, "kafka_changelog: start: %s: %s\n", sl_err2str(rc), err);
        ins->changelog = NULL;
        sl__instance_destroy(ins);
        return NULL;
    }
    return ins;
}

static void free_sink(sl_instance *ins)
{
    if (ins) {
        ins->conn->stop(ins->cctx);
        ins->changelog = NULL;
        sl__instance_destroy(ins);
    }
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

static int do_write(sl_instance *ins, char **items, int n)
{
    sl_record recs[MAX_ITEMS];
    sl_record_meta metas[MAX_ITEMS];
    sl_input_range ranges[MAX_ITEMS];
    size_t nrecs = 0, nranges = 0;
    for (int i = 0; i < n && i < MAX_ITEMS; i++) {
        char *f[5];
        if (items[i][0] == '@') {
            if (split(items[i] + 1, f, 5) != 5) {
                fprintf(stderr, "kafka_changelog: a range is @SOURCE:TOPIC:PARTITION:FROM:UNTIL\n");
                return SL_ERR_INVAL;
            }
            ranges[nranges++] = (sl_input_range){.source = f[0],
                                                 .topic = f[1],
                                                 .partition = (int32_t)atoi(f[2]),
                                                 .from = strtoll(f[3], NULL, 10),
                                                 .until = strtoll(f[4], NULL, 10)};
            continue;
        }
        char *colon = strchr(items[i], ':');
        if (!colon) {
            fprintf(stderr, "kafka_changelog: a state is TASK:KEY=VALUE or TASK:KEY~\n");
            return SL_ERR_INVAL;
        }
        *colon = '\0';
        char *key = colon + 1, *eq = strchr(key, '=');
        size_t klen = strlen(key);
        const char *value = NULL;
        if (eq) {
            *eq = '\0';
            value = eq + 1;
            klen = strlen(key);
        } else if (klen && key[klen - 1] == '~') {
            key[--klen] = '\0';
        }
        metas[nrecs] = (sl_record_meta){.partition = (int32_t)atoi(items[i]), .offset = -1};
        recs[nrecs] = (sl_record){.key = key,
                                  .key_len = (uint32_t)klen,
                                  .value = value,
                                  .value_len = value ? (uint32_t)strlen(value) : 0,
                                  .meta = &metas[nrecs]};
        nrecs++;
    }
    sl_part part = {.recs = recs, .n = nrecs, .borrowed = true};
    sl_dataset ds = {.time = 1000, .nparts = 1, .parts = &part};
    sl_batch_output out = {.batch_time = 1000,
                           .ds = &ds,
                           .pipeline = "it",
                           .sink = "cl",
                           .ranges = ranges,
                           .nranges = nranges};
    char why[512] = "";
    int rc = ins->conn->write(ins->cctx, &out, why, sizeof(why));
    printf("write: %s\n", sl_err2str(rc));
    if (rc != SL_OK && why[0]) {
        printf("why: %s\n", why);
    }
    return rc;
}

static int print_record(void *arg, const sl_record *r)
{
    const char *prefix = arg;
    if (r->value) {
        printf("%s%.*s=%.*s\n", prefix, (int)r->key_len, r->key, (int)r->value_len, r->value);
    } else {
        printf("%s%.*s~\n", prefix, (int)r->key_len, r->key);
    }
    return SL_OK;
}

static int do_restore(sl_instance *ins, int32_t task, const char *source, const char *topic,
                      const char *prefix)
{
    sl_position pos = {.source = source, .topic = topic, .partition = task, .next = -2};
    char why[512] = "";
    int rc = ins->conn->restore_state(ins->cctx, "it", &pos, print_record, (void *)prefix, why,
                                      sizeof(why));
    printf("%snext: %lld\n", prefix, (long long)pos.next);
    printf("%srestore: %s\n", prefix, sl_err2str(rc));
    if (rc != SL_OK) {
        printf("%swhy: %s\n", prefix, why);
    }
    fflush(stdout);
    return rc;
}

/* A transactional producer of its own with the items (KEY=VALUE, @SOURCE:TOPIC:UNTIL) in an
 * open transaction on partition task. NULL on failure. */
static rd_kafka_t *other_txn(const char *brokers, const char *topic, int32_t task, char **items,
                             int n)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "transactional.id", "kafka-changelog-other", err, sizeof(err))) {
        fprintf(stderr, "kafka_changelog: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kafka_changelog: %s\n", err);
        return NULL;
    }
    rd_kafka_error_t *e = rd_kafka_init_transactions(rk, 30000);
    if (!e) {
        e = rd_kafka_begin_transaction(rk);
    }
    for (int i = 0; !e && i < n; i++) {
        char key[512], *value;
        size_t klen;
        if (items[i][0] == '@') {
            char *f[3];
            if (split(items[i] + 1, f, 3) != 3) {
                break;
            }
            klen = sl__kafka_marker_key(f[0], f[1], key, sizeof(key));
            value = f[2];
        } else {
            char *eq = strchr(items[i], '=');
            if (!eq) {
                break;
            }
            *eq = '\0';
            klen = (size_t)snprintf(key, sizeof(key), "%s", items[i]);
            value = eq + 1;
        }
        rd_kafka_resp_err_t perr =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(task),
                              RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE(value, strlen(value)),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (perr) {
            e = rd_kafka_error_new(perr, "%s", rd_kafka_err2str(perr));
        }
    }
    if (!e && rd_kafka_flush(rk, 30000)) {
        e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__TIMED_OUT, "flush timed out");
    }
    if (e) {
        fprintf(stderr, "kafka_changelog: the other transaction: %s\n", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

static int end_txn(rd_kafka_t *rk, bool commit)
{
    rd_kafka_error_t *e =
        commit ? rd_kafka_commit_transaction(rk, 30000) : rd_kafka_abort_transaction(rk, 30000);
    int rc = SL_OK;
    if (e) {
        fprintf(stderr, "kafka_changelog: %s: %s\n", commit ? "commit" : "abort",
                rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = SL_ERR_IO;
    }
    rd_kafka_destroy(rk);
    printf("%s: %s\n", commit ? "committed" : "aborted", sl_err2str(rc));
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: kafka_changelog write BROKERS TOPIC GROUP ITEM... | restore "
                        "BROKERS TOPIC TASK SOURCE SRCTOPIC | aborted BROKERS TOPIC TASK ITEM... "
                        "| open BROKERS TOPIC TASK SOURCE SRCTOPIC ITEM...\n");
        return 2;
    }
    char err[512];
    sl_context_conf conf = {.name = "it", .batch_interval_ms = 1000, .workers = 1};
    sl_context *sc = sl_context_new(&conf, err, sizeof(err));
    if (!sc) {
        fprintf(stderr, "kafka_changelog: %s\n", err);
        return 1;
    }
    const char *cmd = argv[1], *brokers = argv[2], *topic = argv[3];
    int rc = SL_ERR_INVAL;
    if (strcmp(cmd, "write") == 0) {
        sl_instance *ins = make_sink(sc, brokers, topic, argv[4]);
        rc = ins ? do_write(ins, argv + 5, argc - 5) : SL_ERR_INVAL;
        free_sink(ins);
    } else if (strcmp(cmd, "restore") == 0 && argc == 7) {
        sl_instance *ins = make_sink(sc, brokers, topic, NULL);
        rc = ins ? do_restore(ins, (int32_t)atoi(argv[4]), argv[5], argv[6], "") : SL_ERR_INVAL;
        free_sink(ins);
    } else if (strcmp(cmd, "aborted") == 0) {
        rd_kafka_t *rk = other_txn(brokers, topic, (int32_t)atoi(argv[4]), argv + 5, argc - 5);
        rc = rk ? end_txn(rk, false) : SL_ERR_IO;
    } else if (strcmp(cmd, "open") == 0 && argc >= 7) {
        int32_t task = (int32_t)atoi(argv[4]);
        rd_kafka_t *rk = other_txn(brokers, topic, task, argv + 7, argc - 7);
        sl_instance *ins = rk ? make_sink(sc, brokers, topic, NULL) : NULL;
        if (ins) {
            rc = do_restore(ins, task, argv[5], argv[6], "open: ");
            if (end_txn(rk, true) == SL_OK && rc == SL_OK) {
                rc = do_restore(ins, task, argv[5], argv[6], "committed: ");
            }
        } else if (rk) {
            rd_kafka_destroy(rk);
        }
        free_sink(ins);
    }
    sl_context_destroy(sc);
    return rc == SL_OK ? 0 : 1;
}

#else

int main(void)
{
    fprintf(stderr, "kafka_changelog: built without the kafka connector\n");
    return 77;
}

#endif

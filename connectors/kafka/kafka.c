/* kafka.c -- the kafka connector: the source's callbacks (direct and receiver modes, see
 * kafka_direct.c and kafka_receiver.c), the helpers they share, and the registration of the
 * source and the sink with their option tables. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

/* ==== Shared helpers ==== */

int sl__kafka_subscribe(sl_kafka_src *ctx, char *errstr, size_t errsize)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    char re[1024];
    if (ctx->has_pattern) {
        snprintf(re, sizeof(re), "%s%s", ctx->topic_pattern[0] == '^' ? "" : "^",
                 ctx->topic_pattern);
        rd_kafka_topic_partition_list_add(l, re, RD_KAFKA_PARTITION_UA);
    }
    for (size_t i = 0; i < ctx->ntopic_list; i++) {
        rd_kafka_topic_partition_list_add(l, ctx->topic_list[i], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(ctx->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(errstr, errsize, "cannot subscribe: %s", rd_kafka_err2str(err));
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

void sl__kafka_list_text(const rd_kafka_topic_partition_list_t *l, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->cnt && len + 1 < size; i++) {
        int n = snprintf(buf + len, size - len, "%s%s[%" PRId32 "]", i ? " " : "",
                         l->elems[i].topic, l->elems[i].partition);
        if (n < 0) {
            break;
        }
        len += (size_t)n;
    }
}

bool sl__kafka_rebalance_apply(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, bool coop,
                               bool take, char *errstr, size_t errsize)
{
    if (coop) {
        rd_kafka_error_t *e =
            take ? rd_kafka_incremental_assign(rk, l) : rd_kafka_incremental_unassign(rk, l);
        if (e) {
            snprintf(errstr, errsize, "%s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return false;
        }
        return true;
    }
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, take ? l : NULL);
    if (err) {
        snprintf(errstr, errsize, "%s", rd_kafka_err2str(err));
        return false;
    }
    return true;
}

int sl__kafka_commit_sync(sl_kafka_src *ctx, rd_kafka_topic_partition_list_t *offsets,
                          int64_t timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(ctx->rk);
    if (!q) {
        return SL_ERR_NOMEM;
    }
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(ctx->rk, offsets, q, NULL, NULL);
    if (!err) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)timeout_ms);
        if (!ev) {
            err = RD_KAFKA_RESP_ERR__TIMED_OUT;
        } else {
            err = rd_kafka_event_error(ev);
            const rd_kafka_topic_partition_list_t *l = rd_kafka_event_topic_partition_list(ev);
            for (int i = 0; !err && l && i < l->cnt; i++) {
                err = l->elems[i].err;
            }
            rd_kafka_event_destroy(ev);
        }
    }
    rd_kafka_queue_destroy(q);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
        return SL_OK;
    }
    if (err) {
        sl_instance_log(ctx->ins, SL_LOG_WARN, "committing offsets to group %s failed: %s",
                        ctx->group, rd_kafka_err2str(err));
        return sl__kafka_err(err);
    }
    return SL_OK;
}

void sl__kafka_report_down(sl_kafka_src *ctx, const char *what, rd_kafka_resp_err_t err)
{
    if (!atomic_exchange(&ctx->brokers_down, true)) {
        ctx->down_reported = sl__mono_ms();
        sl_instance_set_active(ctx->ins, false);
        sl_instance_error(ctx->ins, "Kafka at %s is not reachable: %s: %s; retrying",
                          ctx->bootstrap ? ctx->bootstrap : ctx->brokers, what,
                          rd_kafka_err2str(err));
    } else {
        sl_instance_log(ctx->ins, SL_LOG_DEBUG, "Kafka still not reachable: %s: %s", what,
                        rd_kafka_err2str(err));
    }
}

void sl__kafka_src_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    sl_kafka_src *ctx = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        sl__kafka_report_down(ctx, reason, err);
    } else if (rd_kafka_fatal_error(rk, NULL, 0)) {
        sl_instance_error(ctx->ins, "fatal Kafka error: %s", reason);
    } else {
        sl_instance_log(ctx->ins, SL_LOG_DEBUG, "librdkafka: %s: %s",
                        rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    }
}

void sl__kafka_report_up(sl_kafka_src *ctx)
{
    if (atomic_exchange(&ctx->brokers_down, false)) {
        sl_instance_log(ctx->ins, SL_LOG_INFO, "Kafka at %s is reachable again (after %lld ms)",
                        ctx->bootstrap, (long long)(sl__mono_ms() - ctx->down_reported));
    }
    sl_instance_set_active(ctx->ins, true);
}

int sl__kafka_src_bootstrap(sl_kafka_src *ctx)
{
    if (ctx->bootstrap) {
        return SL_OK;
    }
    if (!ctx->embedded) {
        ctx->bootstrap = strdup(ctx->brokers);
        return ctx->bootstrap ? SL_OK : SL_ERR_NOMEM;
    }
    char errstr[256];
    ctx->bootstrap = sl__kafka_embedded_acquire((const char *const *)ctx->topic_list,
                                                (int)ctx->embedded_partitions, ctx->embedded_sample,
                                                ctx->embedded_rate, errstr, sizeof(errstr));
    if (!ctx->bootstrap) {
        sl_instance_error(ctx->ins, "%s", errstr);
        return SL_ERR_IO;
    }
    return SL_OK;
}

/* ==== Consumers by group ==== */

/* A consumer of the process registered for its group: few (one per direct source with a
 * group), so a list. */
typedef struct group_entry {
    char *group;
    rd_kafka_t *rk;
    const sl_kafka_src *src; /* NULL: unknown */
    struct group_entry *next;
} group_entry;

static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;
static group_entry *groups;

void sl__kafka_group_register(const char *group, rd_kafka_t *rk, const sl_kafka_src *src)
{
    group_entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->group = strdup(group))) {
        free(e); /* the sink falls back to metadata without a generation */
        return;
    }
    e->rk = rk;
    e->src = src;
    pthread_mutex_lock(&groups_lock);
    e->next = groups;
    groups = e;
    pthread_mutex_unlock(&groups_lock);
}

void sl__kafka_group_unregister(const char *group, rd_kafka_t *rk)
{
    pthread_mutex_lock(&groups_lock);
    for (group_entry **pe = &groups; *pe; pe = &(*pe)->next) {
        group_entry *e = *pe;
        if (e->rk == rk && strcmp(e->group, group) == 0) {
            *pe = e->next;
            free(e->group);
            free(e);
            break;
        }
    }
    pthread_mutex_unlock(&groups_lock);
}

rd_kafka_consumer_group_metadata_t *sl__kafka_group_lookup(const char *group)
{
    rd_kafka_consumer_group_metadata_t *md = NULL;
    pthread_mutex_lock(&groups_lock); /* the consumer is not destroyed meanwhile */
    for (group_entry *e = groups; e && !md; e = e->next) {
        if (strcmp(e->group, group) == 0) {
            md = rd_kafka_consumer_group_metadata(e->rk);
        }
    }
    pthread_mutex_unlock(&groups_lock);
    return md;
}

typedef struct txn_group {
    char *group;
    int refs;
    struct txn_group *next;
} txn_group;

static txn_group *txn_groups; /* guarded by groups_lock */

void sl__kafka_txn_group_claim(const char *group)
{
    pthread_mutex_lock(&groups_lock);
    txn_group *g = txn_groups;
    while (g && strcmp(g->group, group) != 0) {
        g = g->next;
    }
    if (!g) {
        g = calloc(1, sizeof(*g));
        if (g && !(g->group = strdup(group))) {
            free(g);
            g = NULL;
        }
        if (g) {
            g->next = txn_groups;
            txn_groups = g;
        }
    }
    if (g) {
        g->refs++; /* out of memory: the source commits as before */
    }
    pthread_mutex_unlock(&groups_lock);
}

void sl__kafka_txn_group_release(const char *group)
{
    pthread_mutex_lock(&groups_lock);
    for (txn_group **pg = &txn_groups; *pg; pg = &(*pg)->next) {
        txn_group *g = *pg;
        if (strcmp(g->group, group) == 0) {
            if (--g->refs == 0) {
                *pg = g->next;
                free(g->group);
                free(g);
            }
            break;
        }
    }
    pthread_mutex_unlock(&groups_lock);
}

bool sl__kafka_txn_group_claimed(const char *group)
{
    bool yes = false;
    pthread_mutex_lock(&groups_lock);
    for (const txn_group *g = txn_groups; g && !yes; g = g->next) {
        yes = strcmp(g->group, group) == 0;
    }
    pthread_mutex_unlock(&groups_lock);
    return yes;
}

bool sl__kafka_group_of_source(const char *source, const char *topic, char *group, size_t size)
{
    size_t found = 0;
    pthread_mutex_lock(&groups_lock); /* the source is not destroyed meanwhile */
    for (group_entry *e = groups; e; e = e->next) {
        if (!e->src || !e->src->name || strcmp(e->src->name, source) != 0 ||
            !sl__kafka_topic_wanted(e->src, topic)) {
            continue;
        }
        if (found == 0) {
            snprintf(group, size, "%s", e->group);
            found = 1;
        } else if (strcmp(group, e->group) != 0) {
            found = 2; /* sources of that name in two contexts, in different groups */
        }
    }
    pthread_mutex_unlock(&groups_lock);
    return found == 1;
}

/* ==== The source ==== */

/* A batch whose outputs did not all succeed makes the source read its input again (direct)
 * or push it again (receiver). @locality the job thread */
static void kafka_src_on_batch_failed(void *data, int64_t batch_time)
{
    sl_kafka_src *ctx = data;
    if (!ctx->started) {
        return;
    }
    if (ctx->receiver) {
        sl__kafka_receiver_failed(ctx, batch_time);
    } else {
        sl__kafka_direct_failed(ctx, batch_time);
    }
}

static int kafka_src_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_kafka_src *ctx = data;
    ctx->ins = ins;
    ctx->name = sl_instance_name(ins);
    ctx->batch_ms = sl_context_batch_interval(sl_instance_context(ins));
    atomic_init(&ctx->stop, false);
    atomic_init(&ctx->brokers_down, false);
    atomic_init(&ctx->malformed, 0);
    atomic_init(&ctx->oversize, 0);
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_cond_init(&ctx->cond, NULL);
    ctx->lock_init = true;

    int rc = sl__kafka_src_config(ctx, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    /* Every property is checked by librdkafka now, so that a bad one fails the config. */
    rd_kafka_conf_t *conf = sl__kafka_conf_new(ins, ctx->embedded ? "127.0.0.1:9092" : ctx->brokers,
                                               ctx->properties, SL_KAFKA_DIRECT, errstr, errsize);
    if (!conf) {
        return SL_ERR_INVAL;
    }
    rd_kafka_conf_destroy(conf);

    if (ctx->receiver) {
        sl_instance_set_receiver(ins, true); /* the kafka source is a receiver in this mode */
    } else {
        bool from_earliest = ctx->start == SL_KAFKA_START_EARLIEST ||
                             (ctx->start == SL_KAFKA_START_COMMITTED &&
                              ctx->start_fallback == SL_KAFKA_START_EARLIEST);
        /* Backpressure's initial rate (set before the source) bounds it too. */
        if (from_earliest && ctx->initial_rate <= 0 && ctx->max_rate_per_partition <= 0 &&
            sl_instance_backpressure_rate(ins) <= 0) {
            sl_instance_log(ins, SL_LOG_WARN,
                            "start: earliest with neither initial_rate nor "
                            "max_rate_per_partition: the first batch takes every message of "
                            "the topics at once; set max_rate_per_partition to bound it");
        }
    }
    return SL_OK;
}

static int kafka_src_start(void *data, char *errstr, size_t errsize)
{
    sl_kafka_src *ctx = data;
    if (ctx->started) {
        return SL_ERR_STATE;
    }
    int rc = ctx->receiver ? sl__kafka_receiver_start(ctx) : sl__kafka_direct_start(ctx);
    if (rc != SL_OK) {
        return rc;
    }
    ctx->started = true;
    return SL_OK;
}

static int kafka_src_next_batch(void *data, int64_t batch_time, sl_batch_input *in)
{
    sl_kafka_src *ctx = data;
    if (ctx->receiver) {
        return SL_OK; /* the engine cuts a receiver's blocks itself */
    }
    return sl__kafka_direct_next_batch(ctx, batch_time, in);
}

static int kafka_src_replay(void *data, int64_t batch_time, const char *definition,
                            sl_batch_input *in)
{
    sl_kafka_src *ctx = data;
    if (ctx->receiver) {
        return SL_OK; /* the write-ahead log replays what a receiver held */
    }
    return sl__kafka_direct_replay(ctx, batch_time, definition, in);
}

static int kafka_src_restore(void *data, const char *definition)
{
    sl_kafka_src *ctx = data;
    return ctx->receiver ? SL_OK : sl__kafka_direct_restore(ctx, definition);
}

static void kafka_src_batch_done(void *data, int64_t batch_time)
{
    sl_kafka_src *ctx = data;
    if (ctx->receiver) {
        sl__kafka_receiver_done(ctx, batch_time);
    } else {
        sl__kafka_direct_done(ctx, batch_time);
    }
}

/* Receivers stop their thread, pushing what they hold; a direct source keeps its consumer
 * for the last batch and commits in destroy. */
static void kafka_src_stop(void *data)
{
    sl_kafka_src *ctx = data;
    atomic_store(&ctx->stop, true);
    if (ctx->receiver) {
        sl__kafka_receiver_stop(ctx);
    }
}

static void kafka_src_destroy(void *data)
{
    sl_kafka_src *ctx = data;
    if (!ctx->ins) {
        return;
    }
    if (ctx->lock_init) {
        if (ctx->receiver) {
            sl__kafka_receiver_destroy(ctx);
        } else {
            sl__kafka_direct_destroy(ctx);
        }
    }
    uint64_t malformed = atomic_load(&ctx->malformed);
    if (malformed > 0) {
        sl_instance_log(ctx->ins, SL_LOG_WARN, "%" PRIu64 " malformed JSON records were skipped",
                        malformed);
    }
    if (ctx->embedded && ctx->bootstrap) {
        sl__kafka_embedded_release();
    }
    free(ctx->bootstrap);
    for (size_t i = 0; i < ctx->ntopic_list; i++) {
        free(ctx->topic_list[i]);
    }
    free(ctx->topic_list);
    if (ctx->has_pattern) {
        regfree(&ctx->pattern);
    }
    for (size_t i = 0; i < ctx->ninterned; i++) {
        free(ctx->interned[i]);
    }
    free(ctx->interned);
    free(ctx->parts);
    free(ctx->saved);
    for (size_t i = 0; i < ctx->caprbufs; i++) {
        free(ctx->rbufs[i].recs);
        free(ctx->rbufs[i].metas);
        free(ctx->rbufs[i].held);
        free(ctx->rbufs[i].hdrs.v);
    }
    free(ctx->rbufs);
    free(ctx->chunk);
    free(ctx->from_buf);
    free(ctx->latest_buf);
    free(ctx->until_buf);
    if (ctx->lock_init) {
        pthread_mutex_destroy(&ctx->lock);
        pthread_cond_destroy(&ctx->cond);
    }
}

/* ==== Registration ==== */

static const sl_option kafka_src_options[] = {
    {.name = "mode",
     .type = SL_OPT_ENUM,
     .def = "direct",
     .choices = "direct|receiver",
     .offset = offsetof(sl_kafka_src, mode),
     .doc = "direct: each batch reads exact offset ranges (Spark's direct stream, exactly-once "
            "input); receiver: a consumer-group member on its own thread with a write-ahead "
            "log"},
    {.name = "brokers",
     .type = SL_OPT_STR,
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(sl_kafka_src, brokers),
     .doc = "bootstrap brokers host:port,...; 'embedded' starts an in-process mock cluster "
            "(no server needed: demos and tests)"},
    {.name = "topics",
     .type = SL_OPT_LIST,
     .offset = offsetof(sl_kafka_src, topics),
     .doc = "topics to read (give this or topic_pattern)"},
    {.name = "topic_pattern",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_kafka_src, topic_pattern),
     .doc = "POSIX extended regular expression, anchored at the start, for the topics to read; "
            "new matching topics are picked up"},
    {.name = "group",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_kafka_src, group),
     .doc = "consumer group: offsets are committed to it after each batch completes, and "
            "instances with the same group share the partitions; in direct mode a partition "
            "resumes where the sinks that record input positions are (PostgreSQL, Redis, "
            "transactional Kafka), whichever instance had it before"},
    {.name = "group_instance_id",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_kafka_src, group_instance_id),
     .doc = "static membership (group.instance.id), unique per instance and stable across its "
            "restarts, e.g. ${INSTANCE}: a restarted instance gets its partitions back at once "
            "instead of a rebalance; a member that is gone keeps them until "
            "session.timeout.ms (properties) passes"},
    {.name = "start",
     .type = SL_OPT_ENUM,
     .def = "latest",
     .choices = "earliest|latest|committed",
     .offset = offsetof(sl_kafka_src, start),
     .doc = "where a partition starts when no checkpoint holds its offset; committed: the "
            "group's committed offset (needs group), else start_fallback"},
    {.name = "start_fallback",
     .type = SL_OPT_ENUM,
     .def = "latest",
     .choices = "earliest|latest",
     .offset = offsetof(sl_kafka_src, start_fallback),
     .doc = "start: committed, for partitions without a committed offset"},
    {.name = "max_rate_per_partition",
     .type = SL_OPT_DOUBLE,
     .def = "0",
     .min = 0,
     .max = 1e12,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_src, max_rate_per_partition),
     .doc = "direct: most messages per second per partition in a batch (0: no cap)"},
    {.name = "min_rate_per_partition",
     .type = SL_OPT_INT,
     .def = "1",
     .min = 1,
     .max = 1e12,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_src, min_rate_per_partition),
     .doc = "direct: when batches are capped, each partition with lag still takes at least "
            "this many messages per batch"},
    {.name = "initial_rate",
     .type = SL_OPT_DOUBLE,
     .def = "0",
     .min = 0,
     .max = 1e12,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_src, initial_rate),
     .doc = "direct: messages per second of the whole input, split by lag, until the first "
            "batch completes (0: none)"},
    {.name = "on_offset_out_of_range",
     .type = SL_OPT_ENUM,
     .def = "fail",
     .choices = "fail|earliest|latest",
     .offset = offsetof(sl_kafka_src, oor),
     .doc = "direct: when a partition no longer holds the next offset (retention): fail stops "
            "reading it; earliest or latest jump there (messages are lost); always logged"},
    {.name = "format",
     .type = SL_OPT_ENUM,
     .def = "text",
     .choices = "text|json|bytes",
     .offset = offsetof(sl_kafka_src, format),
     .doc = "text and bytes pass messages through; json skips (counts and reports) messages "
            "that are not JSON"},
    {.name = "properties",
     .type = SL_OPT_LIST,
     .flags = SL_OPT_SECRET,
     .offset = offsetof(sl_kafka_src, properties),
     .doc = "librdkafka settings key=value (security.protocol, sasl.*, ssl.*, fetch sizes), "
            "each checked at start; never shown"},
    {.name = "poll_timeout",
     .type = SL_OPT_DURATION,
     .def = "5s",
     .min = 10,
     .max = 600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_src, poll_timeout),
     .doc = "longest wait for the brokers in a batch (offset look-ups, a range's messages); "
            "what does not come in time goes to the next batch"},
    {.name = "metadata_refresh",
     .type = SL_OPT_DURATION,
     .def = "5s",
     .min = 100,
     .max = 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_src, metadata_refresh),
     .doc = "how often new partitions and topics are looked for"},
    {.name = "embedded_partitions",
     .type = SL_OPT_INT,
     .def = "4",
     .min = 1,
     .max = 1000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_src, embedded_partitions),
     .doc = "brokers: embedded: partitions of each topic created"},
    {.name = "embedded_sample",
     .type = SL_OPT_BOOL,
     .def = "false",
     .offset = offsetof(sl_kafka_src, embedded_sample),
     .doc = "brokers: embedded: fill the topics with sample text lines"},
    {.name = "embedded_rate",
     .type = SL_OPT_DOUBLE,
     .def = "10",
     .min = 0,
     .max = 1e6,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_src, embedded_rate),
     .doc = "brokers: embedded with embedded_sample: sample lines per second after the first "
            "fill (0: none)"},
    {.name = "headers",
     .type = SL_OPT_BOOL,
     .def = "false",
     .offset = offsetof(sl_kafka_src, headers_opt),
     .doc = "give records the messages' headers (sl_record_meta.headers; header: ops, the kafka "
            "sink); off by default since finding them costs about 70 ns per message. A YAML "
            "pipeline turns it on for the sources that feed an op reading a header or a kafka "
            "sink forwarding them, unless set"},
    {.name = "wal",
     .type = SL_OPT_BOOL,
     .def = "true",
     .offset = offsetof(sl_kafka_src, wal_opts.wal),
     .doc = "receiver: keep a write-ahead log under the checkpoint directory (when there is "
            "one): offsets are committed once records are in it"},
    {.name = "wal_segment_size",
     .type = SL_OPT_SIZE,
     .def = "64MiB",
     .min = 65536,
     .max = 1073741824.0,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_kafka_src, wal_opts.segment_size),
     .doc = "receiver: write-ahead log segment files are rolled at this size"},
    {.name = "wal_fsync",
     .type = SL_OPT_ENUM,
     .def = "block",
     .choices = "block|always|never",
     .offset = offsetof(sl_kafka_src, wal_opts.fsync),
     .doc = "receiver: block: fsync each block before committing its offsets; always: each "
            "append; never: leave it to the OS (a crash may lose records)"},
    {0},
};

const sl_connector sl__connector_kafka_source = {
    .name = "kafka",
    .description = "Kafka topics: direct (exact offset ranges per batch, Spark's direct "
                   "stream) or receiver (consumer group, write-ahead log)",
    .flags = SL_SOURCE,
    .options = kafka_src_options,
    .ctx_size = sizeof(sl_kafka_src),
    .init = kafka_src_init,
    .start = kafka_src_start,
    .next_batch = kafka_src_next_batch,
    .on_batch_done = kafka_src_batch_done,
    .on_batch_failed = kafka_src_on_batch_failed,
    .replay = kafka_src_replay,
    .restore = kafka_src_restore,
    .stop = kafka_src_stop,
    .destroy = kafka_src_destroy,
    .probe = sl__kafka_src_probe,
    .headers_option = "headers",
};

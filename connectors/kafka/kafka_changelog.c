/* kafka_changelog.c -- the kafka sink as a stateful stream's changelog (Kafka Streams style):
 * each batch's state changes and the positions of its input go to a compacted topic in one
 * transaction, and a task's state is read back from its partition when a source takes it.
 *
 * A state record goes to partition meta->partition of the topic (the task: the partition of
 * the input its key belongs to), key the state key, value the encoded state or null (a
 * tombstone: compaction removes the key). Each input range of the batch adds a position
 * marker to the range's partition:
 *
 *     key   = "\0sluice.position\0" SOURCE "\0" TOPIC  (a NUL, "sluice.position", a NUL, the
 *             source instance's name, a NUL, the input topic: no user key starts so)
 *     value = the range's until in decimal ASCII ("1234"), the offset after the input the
 *             state includes
 *
 * Compaction keeps the last marker of each key per partition, with the state. Restoring a
 * task reads its partition from the low watermark to the last stable offset with a
 * read_committed consumer of its own (aborted transactions never show), hands every state
 * record to the engine in order and returns the last marker of the source and topic asked
 * for: the position the state reflects.
 *
 * The transaction also commits the input offsets to the source's consumer group, with the
 * consumer's group metadata when the source runs in this process (KIP-447: a member whose
 * partitions moved is fenced). The committed offsets never go back: a changelog catching up
 * behind the other sinks commits what the group holds already. Its own position check uses
 * the markers' positions (written, or read by a restore), not the group's offsets, which the
 * other sinks move first. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"

#define RESTORE_STALL_MS    30000 /* a restore that makes no progress this long: retry */
#define RESTORE_QUERY_MS    10000 /* longest wait for metadata and watermarks */
#define METADATA_TIMEOUT_MS 10000
#define PRODUCE_WAIT_MS     100

/* ==== Markers ==== */

size_t sl__kafka_marker_key(const char *source, const char *topic, char *buf, size_t size)
{
    size_t ls = strlen(source), lt = strlen(topic);
    size_t len = SL_KAFKA_MARKER_PREFIX_LEN + ls + 1 + lt;
    if (len <= size) {
        memcpy(buf, SL_KAFKA_MARKER_PREFIX, SL_KAFKA_MARKER_PREFIX_LEN);
        memcpy(buf + SL_KAFKA_MARKER_PREFIX_LEN, source, ls);
        buf[SL_KAFKA_MARKER_PREFIX_LEN + ls] = '\0';
        memcpy(buf + SL_KAFKA_MARKER_PREFIX_LEN + ls + 1, topic, lt);
    }
    return len;
}

/* True when key is a marker; *source (NUL-terminated by the key) and *topic (topic_len
 * bytes) then point into it. */
static bool marker_parse(const char *key, size_t len, const char **source, const char **topic,
                         size_t *topic_len)
{
    if (!key || len <= SL_KAFKA_MARKER_PREFIX_LEN ||
        memcmp(key, SL_KAFKA_MARKER_PREFIX, SL_KAFKA_MARKER_PREFIX_LEN) != 0) {
        return false;
    }
    const char *s = key + SL_KAFKA_MARKER_PREFIX_LEN;
    const char *nul = memchr(s, '\0', len - SL_KAFKA_MARKER_PREFIX_LEN);
    if (!nul) {
        return false;
    }
    *source = s;
    *topic = nul + 1;
    *topic_len = len - (size_t)(*topic - key);
    return true;
}

/* The offset a marker's value holds; -1 when it is not a decimal number. */
static int64_t marker_value(const char *v, size_t len)
{
    if (!v || len == 0 || len > 19) {
        return -1;
    }
    int64_t x = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)v[i])) {
            return -1;
        }
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

/* A key for messages: printable bytes as they are, the others as \xNN, cut to size. */
static const char *key_text(const char *key, size_t len, char *buf, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        unsigned char c = (unsigned char)key[i];
        o += (size_t)snprintf(buf + o, size - o, isprint(c) && c != '\\' ? "%c" : "\\x%02x", c);
    }
    if (o + 5 >= size && size > 4) {
        memcpy(buf + size - 4, "...", 4);
    } else if (size) {
        buf[o] = '\0';
    }
    return buf;
}

/* ==== Positions of the markers ==== */

/* The position ctx holds of a marker; -1 when none is known. @locks cl_lock */
static struct sl_kafka_clpos *clpos_find(sl_kafka_sink *ctx, const char *source, const char *topic,
                                         int32_t partition)
{
    for (size_t i = 0; i < ctx->nclpos; i++) {
        struct sl_kafka_clpos *c = &ctx->clpos[i];
        if (c->partition == partition && strcmp(c->source, source) == 0 &&
            strcmp(c->topic, topic) == 0) {
            return c;
        }
    }
    return NULL;
}

static int64_t clpos_get(sl_kafka_sink *ctx, const char *source, const char *topic,
                         int32_t partition)
{
    pthread_mutex_lock(&ctx->cl_lock);
    struct sl_kafka_clpos *c = clpos_find(ctx, source, topic, partition);
    int64_t next = c ? c->next : -1;
    pthread_mutex_unlock(&ctx->cl_lock);
    return next;
}

/* Remembers the position of a marker (forgotten when out of memory: the next batch is then
 * written without a check, which a changelog tolerates: its last value per key wins). */
static void clpos_set(sl_kafka_sink *ctx, const char *source, const char *topic, int32_t partition,
                      int64_t next)
{
    pthread_mutex_lock(&ctx->cl_lock);
    struct sl_kafka_clpos *c = clpos_find(ctx, source, topic, partition);
    if (!c && ctx->nclpos == ctx->capclpos) {
        size_t cap = ctx->capclpos ? 2 * ctx->capclpos : 16;
        void *v = realloc(ctx->clpos, cap * sizeof(*ctx->clpos));
        if (v) {
            ctx->clpos = v;
            ctx->capclpos = cap;
        }
    }
    if (!c && ctx->nclpos < ctx->capclpos) {
        c = &ctx->clpos[ctx->nclpos];
        c->source = strdup(source);
        c->topic = strdup(topic);
        c->partition = partition;
        if (c->source && c->topic) {
            ctx->nclpos++;
        } else {
            free(c->source);
            free(c->topic);
            c = NULL;
        }
    }
    if (c) {
        c->next = next;
    }
    pthread_mutex_unlock(&ctx->cl_lock);
}

/* ==== Reading a partition back ==== */

rd_kafka_t *sl__kafka_changelog_consumer(sl_instance *ins, const char *bootstrap,
                                         const char *properties, void *opaque, char *errstr,
                                         size_t errsize)
{
    rd_kafka_conf_t *conf =
        sl__kafka_conf_new(ins, bootstrap, properties, SL_KAFKA_DIRECT, errstr, errsize);
    if (!conf) {
        return NULL;
    }
    /* A group id only for assign(): never joined, nothing committed. */
    char gid[300];
    snprintf(gid, sizeof(gid), "sluice-restore-%s", ins ? sl_instance_name(ins) : "test");
    if (rd_kafka_conf_set(conf, "group.id", gid, errstr, errsize) ||
        rd_kafka_conf_set(conf, "isolation.level", "read_committed", errstr, errsize) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, errsize) ||
        /* Read to the end, then stop: no waiting for more at the end of a fetch. */
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", errstr, errsize) ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errsize)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (opaque) {
        rd_kafka_conf_set_opaque(conf, opaque);
        rd_kafka_conf_set_error_cb(conf, sl__kafka_sink_error_cb);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errsize);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* The partition count of topic as rk's metadata says: 0 when the topic does not exist, -1
 * with errstr when the brokers did not answer. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int timeout, char *errstr,
                            size_t errsize)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt) {
        snprintf(errstr, errsize, "topic %s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout);
    int n = -1;
    if (err) {
        snprintf(errstr, errsize, "cannot read the metadata of %s: %s", topic,
                 rd_kafka_err2str(err));
    } else if (md->topic_cnt != 1) {
        snprintf(errstr, errsize, "no metadata for %s", topic);
    } else if (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
               md->topics[0].err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        n = 0;
    } else if (md->topics[0].err) {
        snprintf(errstr, errsize, "metadata of %s: %s", topic, rd_kafka_err2str(md->topics[0].err));
    } else {
        n = md->topics[0].partition_cnt;
    }
    if (md) {
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    return n;
}

/* Hands message m of the read to fn (a state record) or takes its position (a marker of
 * pos's source and topic). Returns fn's result. */
static int read_message(const rd_kafka_message_t *m, const char *topic, sl_position *pos,
                        sl_restore_fn fn, void *arg, sl_kafka_restore_stats *st)
{
    const char *source, *mtopic;
    size_t tlen;
    st->bytes += m->key_len + m->len;
    if (marker_parse(m->key, m->key_len, &source, &mtopic, &tlen)) {
        st->markers++;
        if (strcmp(source, pos->source) == 0 && tlen == strlen(pos->topic) &&
            memcmp(mtopic, pos->topic, tlen) == 0) {
            int64_t v = marker_value(m->payload, m->len);
            if (v >= 0) {
                pos->next = v;
            }
        }
        return SL_OK;
    }
    st->records++;
    if (!fn) {
        return SL_OK;
    }
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    sl_record_meta meta = {.topic = topic, .partition = m->partition, .offset = m->offset};
    sl_record r = {.key = m->key,
                   .key_len = (uint32_t)m->key_len,
                   .value = m->payload, /* NULL: a tombstone */
                   .value_len = (uint32_t)m->len,
                   .ts = ts > 0 ? ts : 0,
                   .meta = &meta};
    return fn(arg, &r);
}

#define RESTORE_BATCH 4096 /* messages taken from the queue at a time */

/* Consumes the assigned partition until rk's position reaches end (control records of
 * transactions are never delivered, but move the position) or a partition EOF at end.
 * @locality the caller's */
static int read_until(rd_kafka_t *rk, const sl_instance *ins, const char *topic, sl_position *pos,
                      int64_t end, sl_restore_fn fn, void *arg, int64_t stall_ms,
                      sl_kafka_restore_stats *st, char *errstr, size_t errsize)
{
    rd_kafka_topic_partition_list_t *at = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(at, topic, pos->partition);
    int64_t seen = st->from, progress = sl__mono_ms();
    char last_err[160] = "";
    int rc = SL_OK;
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t *batch[RESTORE_BATCH];
    size_t nbatch = 0, next = 0;
    for (;;) {
        if (next == nbatch) {
            /* Between batches of messages: where the position is. */
            at->elems[0].offset = RD_KAFKA_OFFSET_INVALID;
            if (!rd_kafka_position(rk, at) && at->elems[0].offset >= end) {
                break;
            }
        }
        if (at->elems[0].offset > seen) {
            seen = at->elems[0].offset;
            progress = sl__mono_ms();
        }
        if (ins && sl_instance_stopping(ins)) {
            snprintf(errstr, errsize, "stopping while restoring %s [%" PRId32 "]", topic,
                     pos->partition);
            rc = SL_ERR_RETRY;
            break;
        }
        if (sl__mono_ms() - progress > stall_ms) {
            snprintf(errstr, errsize,
                     "restoring %s [%" PRId32 "]: no progress for %" PRId64 " ms at offset %" PRId64
                     " of [%" PRId64 ", %" PRId64 ")%s%s",
                     topic, pos->partition, stall_ms, seen, st->from, end, last_err[0] ? ": " : "",
                     last_err);
            rc = SL_ERR_RETRY;
            break;
        }
        if (next == nbatch) {
            ssize_t got = q ? rd_kafka_consume_batch_queue(q, 100, batch, RESTORE_BATCH) : -1;
            nbatch = got > 0 ? (size_t)got : 0;
            next = 0;
            if (nbatch == 0) {
                if (!q) {
                    rd_kafka_message_t *one = rd_kafka_consumer_poll(rk, 100);
                    if (one) {
                        batch[0] = one;
                        nbatch = 1;
                    }
                }
                continue;
            }
        }
        rd_kafka_message_t *m = batch[next++];
        bool ours = m->rkt && m->partition == pos->partition &&
                    strcmp(rd_kafka_topic_name(m->rkt), topic) == 0;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            bool done = ours && m->offset >= end;
            rd_kafka_message_destroy(m);
            if (done) {
                break;
            }
            continue;
        }
        if (m->err) {
            rd_kafka_resp_err_t err = m->err;
            snprintf(last_err, sizeof(last_err), "%s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
                snprintf(errstr, errsize, "changelog topic %s [%" PRId32 "]: %s", topic,
                         pos->partition, last_err);
                rc = SL_ERR_INVAL;
                break;
            }
            continue; /* librdkafka retries; the stall bound ends it */
        }
        if (ours && m->offset >= seen) {
            seen = m->offset + 1;
            progress = sl__mono_ms();
            rc = read_message(m, topic, pos, fn, arg, st);
        }
        rd_kafka_message_destroy(m);
        if (rc != SL_OK) {
            snprintf(errstr, errsize, "restoring %s [%" PRId32 "]: a state record was refused: %s",
                     topic, pos->partition, sl_err2str(rc));
            break;
        }
    }
    while (next < nbatch) {
        rd_kafka_message_destroy(batch[next++]);
    }
    if (q) {
        rd_kafka_queue_destroy(q);
    }
    rd_kafka_topic_partition_list_destroy(at);
    return rc;
}

int sl__kafka_changelog_read(rd_kafka_t *rk, const sl_instance *ins, const char *topic,
                             sl_position *pos, sl_restore_fn fn, void *arg, int64_t stall_ms,
                             sl_kafka_restore_stats *st, char *errstr, size_t errsize)
{
    int64_t t0 = sl__mono_ms();
    memset(st, 0, sizeof(*st));
    st->from = st->end = -1;
    pos->next = -1;
    int n = topic_partitions(rk, topic, RESTORE_QUERY_MS, errstr, errsize);
    if (n < 0) {
        return SL_ERR_RETRY;
    }
    if (n == 0 || pos->partition < 0 || pos->partition >= n) {
        if (n == 0) {
            snprintf(errstr, errsize, "changelog topic %s does not exist (task %" PRId32 ")", topic,
                     pos->partition);
        } else {
            snprintf(errstr, errsize,
                     "changelog topic %s has %d partitions; task %" PRId32
                     " needs at least %" PRId32
                     ": create it with as many partitions as the input topic",
                     topic, n, pos->partition, pos->partition + 1);
        }
        return SL_ERR_INVAL;
    }
    /* The end: the last stable offset, since rk reads committed messages only. */
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rk, topic, pos->partition, &lo, &hi, RESTORE_QUERY_MS);
    if (err) {
        snprintf(errstr, errsize, "cannot read the offsets of changelog %s [%" PRId32 "]: %s",
                 topic, pos->partition, rd_kafka_err2str(err));
        return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? SL_ERR_INVAL : SL_ERR_RETRY;
    }
    st->from = lo;
    st->end = hi;
    int rc = SL_OK;
    if (hi > lo) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, pos->partition)->offset = lo;
        err = rd_kafka_assign(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (err) {
            snprintf(errstr, errsize, "cannot read changelog %s [%" PRId32 "]: %s", topic,
                     pos->partition, rd_kafka_err2str(err));
            return SL_ERR_RETRY;
        }
        rc = read_until(rk, ins, topic, pos, hi, fn, arg, stall_ms, st, errstr, errsize);
        rd_kafka_assign(rk, NULL);
    }
    st->ms = sl__mono_ms() - t0;
    return rc;
}

int sl__kafka_changelog_restore(void *data, const char *pipeline, sl_position *pos,
                                sl_restore_fn fn, void *arg, char *errstr, size_t errsize)
{
    sl_kafka_sink *ctx = data;
    (void)pipeline; /* the topic names the pipeline's state */
    pos->next = -1;
    if (!ctx->bootstrap) {
        snprintf(errstr, errsize, "the sink has not started");
        return SL_ERR_RETRY;
    }
    pthread_mutex_lock(&ctx->restore_lock);
    if (!ctx->restore_rk) {
        ctx->restore_rk = sl__kafka_changelog_consumer(ctx->ins, ctx->bootstrap, ctx->properties,
                                                       ctx, errstr, errsize);
    }
    int rc = SL_ERR_RETRY;
    sl_kafka_restore_stats st = {0};
    if (ctx->restore_rk) {
        rc = sl__kafka_changelog_read(ctx->restore_rk, ctx->ins, ctx->topic, pos, fn, arg,
                                      RESTORE_STALL_MS, &st, errstr, errsize);
        if (rc == SL_ERR_RETRY) {
            rd_kafka_destroy(ctx->restore_rk); /* a new consumer for the next attempt */
            ctx->restore_rk = NULL;
        }
    }
    pthread_mutex_unlock(&ctx->restore_lock);
    if (rc != SL_OK) {
        return rc;
    }
    clpos_set(ctx, pos->source, pos->topic, pos->partition, pos->next);
    sl_instance_log(ctx->ins, SL_LOG_INFO,
                    "restored %s [%" PRId32 "]: %" PRIu64 " records, %" PRIu64 " bytes in %" PRId64
                    " ms (offsets %" PRId64 " to %" PRId64 "); %s %s [%" PRId32
                    "] resumes at %" PRId64,
                    ctx->topic, pos->partition, st.records, st.bytes, st.ms, st.from, st.end,
                    pos->source, pos->topic, pos->partition, pos->next);
    return SL_OK;
}

int sl__kafka_changelog_positions(sl_kafka_sink *ctx, sl_position *pos, size_t n, char *errstr,
                                  size_t errsize)
{
    for (size_t i = 0; i < n; i++) {
        sl_position p = pos[i];
        pthread_mutex_lock(&ctx->restore_lock);
        if (!ctx->restore_rk) {
            ctx->restore_rk = sl__kafka_changelog_consumer(ctx->ins, ctx->bootstrap,
                                                           ctx->properties, ctx, errstr, errsize);
        }
        int rc = SL_ERR_RETRY;
        sl_kafka_restore_stats st;
        if (ctx->restore_rk) {
            rc = sl__kafka_changelog_read(ctx->restore_rk, ctx->ins, ctx->topic, &p, NULL, NULL,
                                          RESTORE_STALL_MS, &st, errstr, errsize);
        }
        pthread_mutex_unlock(&ctx->restore_lock);
        if (rc != SL_OK) {
            return rc == SL_ERR_INVAL ? SL_ERR_INVAL : SL_ERR_RETRY;
        }
        pos[i].next = p.next;
    }
    return SL_OK;
}

/* ==== Writing a batch ==== */

int sl__kafka_changelog_start(sl_kafka_sink *ctx, char *errstr, size_t errsize)
{
    ctx->changelog = true;
    if (!ctx->transactional) {
        ctx->transactional = true; /* a changelog is exactly once or nothing */
        int rc = sl__kafka_sink_txn_id(ctx, errstr, errsize);
        if (rc != SL_OK) {
            return rc;
        }
    }
    sl_instance_log(ctx->ins, SL_LOG_INFO,
                    "changelog of keyed state in %s: transactional (transactional.id %s), "
                    "offsets to group %s",
                    ctx->topic, ctx->txn_id,
                    ctx->group && *ctx->group ? ctx->group : "(that of the kafka source read)");
    return SL_OK;
}

/* Reports an error of a write: in errstr and the instance's status. Returns rc. */
static int cl_fail(sl_kafka_sink *ctx, int rc, char *errstr, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int cl_fail(sl_kafka_sink *ctx, int rc, char *errstr, size_t errsize, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errsize, fmt, ap);
    va_end(ap);
    sl_instance_error(ctx->ins, "%s", errstr);
    return rc;
}

/* Sets ctx->group when unset, from the kafka source of this process that reads the batch's
 * input. SL_OK or SL_ERR_INVAL with errstr (reported). */
static int find_group(sl_kafka_sink *ctx, const sl_batch_output *out, char *errstr, size_t errsize)
{
    if ((ctx->group && *ctx->group) || out->nranges == 0) {
        return SL_OK;
    }
    const sl_input_range *r = &out->ranges[0];
    char group[256];
    if (!sl__kafka_group_of_source(r->source, r->topic, group, sizeof(group))) {
        return cl_fail(ctx, SL_ERR_INVAL, errstr, errsize,
                       "changelog: set group, the consumer group of the kafka source whose input "
                       "the state reflects (source %s, topic %s: no kafka source with a group in "
                       "this process reads it)",
                       r->source, r->topic);
    }
    ctx->group_found = strdup(group);
    if (!ctx->group_found) {
        return cl_fail(ctx, SL_ERR_NOMEM, errstr, errsize, "out of memory");
    }
    ctx->group = ctx->group_found;
    sl__kafka_txn_claim(ctx);
    sl_instance_log(ctx->ins, SL_LOG_INFO, "changelog: offsets to group %s (of source %s)",
                    ctx->group, r->source);
    return SL_OK;
}

/* The changelog topic's partition count (looked up again when refresh). > 0; 0 when the topic
 * does not exist, -1 when the brokers did not answer (both reported, in errstr). */
static int32_t cl_partitions(sl_kafka_sink *ctx, bool refresh, char *errstr, size_t errsize)
{
    if (ctx->cl_partitions > 0 && !refresh) {
        return ctx->cl_partitions;
    }
    char why[256];
    int n = topic_partitions(ctx->rk, ctx->topic, (int)SL_MIN(ctx->flush_timeout, 10000), why,
                             sizeof(why));
    if (n < 0) {
        cl_fail(ctx, SL_ERR_RETRY, errstr, errsize, "%s; retrying", why);
    } else if (n == 0) {
        cl_fail(ctx, SL_ERR_RETRY, errstr, errsize,
                "changelog topic '%s' does not exist at %s: create it compacted "
                "(cleanup.policy=compact) with as many partitions as the input topic; retrying",
                ctx->topic, ctx->bootstrap);
    } else {
        ctx->cl_partitions = n;
    }
    return n;
}

/* Checks that the task of every state record and range is a partition of the topic. SL_OK,
 * SL_ERR_RETRY (the topic cannot be looked up) or SL_ERR_INVAL, with errstr (reported). */
static int check_tasks(sl_kafka_sink *ctx, const sl_batch_output *out, char *errstr, size_t errsize)
{
    int32_t n = cl_partitions(ctx, false, errstr, errsize);
    size_t nparts = out->ds ? sl_dataset_partitions(out->ds) : 0;
    for (size_t p = 0; n > 0 && p <= nparts; p++) {
        size_t cnt = 0;
        const sl_record *recs = p < nparts ? sl_dataset_partition(out->ds, p, &cnt) : NULL;
        cnt = p < nparts ? cnt : out->nranges; /* last round: the ranges' partitions */
        for (size_t i = 0; i < cnt; i++) {
            int32_t task =
                recs ? (recs[i].meta ? recs[i].meta->partition : -1) : out->ranges[i].partition;
            char what[128], k[80];
            if (recs) {
                key_text(recs[i].key ? recs[i].key : "", recs[i].key_len, k, sizeof(k));
                snprintf(what, sizeof(what), "key '%s'", k);
            } else {
                snprintf(what, sizeof(what), "the input range of %s, %.60s [%" PRId32 "]",
                         out->ranges[i].source, out->ranges[i].topic, task);
            }
            if (task < 0) {
                return cl_fail(ctx, SL_ERR_INVAL, errstr, errsize,
                               "changelog %s: state %s has no task (partition %" PRId32
                               "): a changelog needs keys from a partitioned source",
                               ctx->topic, what, task);
            }
            if (task >= n && (n = cl_partitions(ctx, true, errstr, errsize)) > 0 && task >= n) {
                return cl_fail(ctx, SL_ERR_INVAL, errstr, errsize,
                               "changelog topic %s has %" PRId32 " partitions; task %" PRId32
                               " needs at least %" PRId32
                               ": create it with as many partitions as the input topic (%s)",
                               ctx->topic, n, task, task + 1, what);
            }
        }
    }
    return n > 0 ? SL_OK : SL_ERR_RETRY;
}

/* The batch against the markers' positions: SKIP when every range is held, else WRITE.
 * State is a fold of its input: what the engine hands over reflects every input up to each
 * range's end, whatever part of it the state left out because it held it already (after a
 * restore) or the sinks had it; so a range that does not start at the marker is no gap. A
 * stale instance is fenced by the group's generation in the transaction (KIP-447). */
static sl_position_check check_ranges(sl_kafka_sink *ctx, const sl_batch_output *out)
{
    size_t skip = 0;
    for (size_t i = 0; i < out->nranges; i++) {
        const sl_input_range *r = &out->ranges[i];
        int64_t at = clpos_get(ctx, r->source, r->topic, r->partition);
        skip += sl_position_check_range(r, at) == SL_POSITION_SKIP;
    }
    return out->nranges && skip == out->nranges ? SL_POSITION_SKIP : SL_POSITION_WRITE;
}

/* Produces one message to partition of the topic, waiting for room. */
static rd_kafka_resp_err_t produce(sl_kafka_sink *ctx, int32_t partition, const void *key,
                                   size_t klen, const void *value, size_t vlen, int64_t ts,
                                   void *opaque)
{
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(ctx->rk, RD_KAFKA_V_TOPIC(ctx->topic),
                                RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY((void *)key, klen),
                                RD_KAFKA_V_VALUE((void *)value, vlen), RD_KAFKA_V_TIMESTAMP(ts),
                                RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            return err;
        }
        rd_kafka_poll(ctx->rk, PRODUCE_WAIT_MS);
    }
}

/* The offset list of the batch: per input partition, the highest until, or the group's
 * committed offset when that is higher (a changelog catching up never moves it back).
 * NULL with errstr (SL_ERR_RETRY) when the committed offsets cannot be read. */
static rd_kafka_topic_partition_list_t *
batch_offsets(sl_kafka_sink *ctx, const sl_batch_output *out, char *errstr, size_t errsize)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)out->nranges + 1);
    for (size_t i = 0; i < out->nranges; i++) {
        const sl_input_range *r = &out->ranges[i];
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, r->topic, r->partition);
        if (!tp) {
            tp = rd_kafka_topic_partition_list_add(l, r->topic, r->partition);
            tp->offset = r->until;
        } else if (r->until > tp->offset) {
            tp->offset = r->until;
        }
    }
    if (l->cnt == 0) {
        return l;
    }
    rd_kafka_topic_partition_list_t *c = rd_kafka_topic_partition_list_copy(l);
    if (sl__kafka_committed_fetch(ctx, c, errstr, errsize) != SL_OK) {
        rd_kafka_topic_partition_list_destroy(c);
        rd_kafka_topic_partition_list_destroy(l);
        return NULL;
    }
    for (int i = 0; i < l->cnt; i++) {
        if (c->elems[i].offset > l->elems[i].offset) {
            l->elems[i].offset = c->elems[i].offset;
        }
    }
    rd_kafka_topic_partition_list_destroy(c);
    return l;
}

/* The markers of the batch's ranges, one per source, topic and partition (the highest
 * until), in the open transaction. */
static rd_kafka_resp_err_t produce_markers(sl_kafka_sink *ctx, const sl_batch_output *out)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < out->nranges && !err; i++) {
        const sl_input_range *r = &out->ranges[i];
        int64_t until = r->until;
        bool later = false; /* a later range of the same partition writes it */
        for (size_t j = 0; j < out->nranges; j++) {
            const sl_input_range *o = &out->ranges[j];
            if (j != i && o->partition == r->partition && strcmp(o->source, r->source) == 0 &&
                strcmp(o->topic, r->topic) == 0) {
                until = SL_MAX(until, o->until);
                later = later || j > i;
            }
        }
        if (later || until <= clpos_get(ctx, r->source, r->topic, r->partition)) {
            continue; /* a marker never goes back */
        }
        char key[600], value[24];
        size_t klen = sl__kafka_marker_key(r->source, r->topic, key, sizeof(key));
        if (klen > sizeof(key)) {
            return RD_KAFKA_RESP_ERR__INVALID_ARG; /* names of 250 bytes at most */
        }
        int vlen = snprintf(value, sizeof(value), "%" PRId64, until);
        err = produce(ctx, r->partition, key, klen, value, (size_t)vlen, 0, NULL);
    }
    return err;
}

/* One transaction: the state records, the markers, the offsets. SL_OK or an error
 * (reported). */
static int cl_attempt(sl_kafka_sink *ctx, const sl_batch_output *out,
                      const rd_kafka_topic_partition_list_t *offsets)
{
    int brc = sl__kafka_txn_begin(ctx, out);
    if (brc != SL_OK) {
        return brc;
    }
    size_t nparts = out->ds ? sl_dataset_partitions(out->ds) : 0;
    rd_kafka_resp_err_t perr = RD_KAFKA_RESP_ERR_NO_ERROR;
    const sl_record *bad = NULL;
    for (size_t p = 0; p < nparts && !perr; p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n && !perr; i++) {
            const sl_record *r = &recs[i];
            /* A compacted topic refuses null keys: an empty key stays empty, not null. */
            perr = produce(ctx, r->meta->partition, r->key ? r->key : "", r->key_len, r->value,
                           r->value ? r->value_len : 0, r->ts > 0 ? r->ts : 0, (void *)r);
            bad = perr ? r : NULL;
        }
    }
    if (!perr) {
        perr = produce_markers(ctx, out);
    }
    rd_kafka_resp_err_t ferr = perr ? perr : rd_kafka_flush(ctx->rk, (int)ctx->flush_timeout);
    size_t nref = 0;
    const sl_record **refused = sl__kafka_refused_records(ctx, &nref);
    if (nref && refused) {
        bad = refused[0];
        perr = sl__kafka_refused_error(ctx);
    }
    free(refused);
    if (bad && sl__kafka_record_error(perr)) {
        /* Leaving a state change out would corrupt the state: the pipeline stops. */
        char k[80];
        key_text(bad->key ? bad->key : "", bad->key_len, k, sizeof(k));
        rd_kafka_error_t *e =
            rd_kafka_error_new(perr,
                               "the state of key '%s' (task %" PRId32 ", %u bytes) was "
                               "refused: %s",
                               k, bad->meta->partition, bad->value_len, rd_kafka_err2str(perr));
        int rc = sl__kafka_txn_fail(ctx, out, "produce", e, false);
        return rc == SL_ERR_RETRY ? SL_ERR_FATAL : rc;
    }
    uint64_t failed = atomic_load(&ctx->failed);
    if (ferr || failed || nref) {
        pthread_mutex_lock(&ctx->err_lock);
        rd_kafka_error_t *e = rd_kafka_error_new(ferr ? ferr : RD_KAFKA_RESP_ERR__FAIL, "%s",
                                                 perr     ? rd_kafka_err2str(perr)
                                                 : ferr   ? "flush timed out"
                                                 : failed ? ctx->first_error
                                                          : "out of memory");
        pthread_mutex_unlock(&ctx->err_lock);
        return sl__kafka_txn_fail(ctx, out, "delivery", e, false);
    }
    return sl__kafka_txn_finish(ctx, out, offsets);
}

int sl__kafka_changelog_write(sl_kafka_sink *ctx, const sl_batch_output *out, char *errstr,
                              size_t errsize)
{
    size_t nrecs = out->ds ? sl_dataset_count(out->ds) : 0;
    if (nrecs == 0 && out->nranges == 0) {
        return SL_OK;
    }
    int rc = find_group(ctx, out, errstr, errsize);
    if (rc == SL_OK) {
        rc = check_tasks(ctx, out, errstr, errsize);
    }
    if (rc != SL_OK) {
        return rc;
    }
    sl_position_check c = check_ranges(ctx, out);
    if (c == SL_POSITION_SKIP) {
        sl_instance_log(ctx->ins, SL_LOG_INFO,
                        "batch %" PRId64 ": the changelog already holds its input; skipped",
                        out->batch_time);
        return SL_OK;
    }
    if (c == SL_POSITION_FENCED) {
        snprintf(errstr, errsize,
                 "batch %" PRId64 ": the changelog's positions are elsewhere than its input "
                 "starts; dropped (its input resumes where the sinks are)",
                 out->batch_time);
        sl_instance_log(ctx->ins, SL_LOG_WARN, "%s", errstr);
        return SL_ERR_FENCED;
    }
    rd_kafka_topic_partition_list_t *offsets = batch_offsets(ctx, out, errstr, errsize);
    if (!offsets) {
        sl_instance_error(ctx->ins, "batch %" PRId64 ": %s; retrying", out->batch_time, errstr);
        return SL_ERR_RETRY;
    }
    rc = ctx->txn_ready ? SL_OK : sl__kafka_txn_init(ctx);
    if (rc == SL_OK) {
        rc = cl_attempt(ctx, out, offsets);
    }
    rd_kafka_topic_partition_list_destroy(offsets);
    if (rc != SL_OK) {
        return rc;
    }
    for (size_t i = 0; i < out->nranges; i++) {
        const sl_input_range *r = &out->ranges[i];
        if (r->until > clpos_get(ctx, r->source, r->topic, r->partition)) {
            clpos_set(ctx, r->source, r->topic, r->partition, r->until);
        }
    }
    sl_instance_set_active(ctx->ins, true);
    return SL_OK;
}

void sl__kafka_changelog_destroy(sl_kafka_sink *ctx)
{
    if (ctx->restore_rk) {
        rd_kafka_destroy(ctx->restore_rk);
        ctx->restore_rk = NULL;
    }
    for (size_t i = 0; i < ctx->nclpos; i++) {
        free(ctx->clpos[i].source);
        free(ctx->clpos[i].topic);
    }
    free(ctx->clpos);
    ctx->clpos = NULL;
    ctx->nclpos = ctx->capclpos = 0;
    free(ctx->group_found);
    ctx->group_found = NULL;
}

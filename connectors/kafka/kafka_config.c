/* kafka_config.c -- the kafka connector's option checks, its librdkafka configurations
 * (sluice's defaults, then the user's `properties`, each checked by librdkafka itself) and
 * the routing of librdkafka's logs. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kafka.h"

/* ==== Helpers ==== */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    return s;
}

static bool topic_name_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 249 || strcmp(t, ".") == 0 || strcmp(t, "..") == 0) {
        return false;
    }
    for (const char *p = t; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') {
            return false;
        }
    }
    return true;
}

bool sl__kafka_secret_key(const char *key)
{
    static const char *const words[] = {"password", "secret", "token", "credential", NULL};
    if (strncasecmp(key, "sasl.", 5) == 0 || strncasecmp(key, "ssl.key", 7) == 0) {
        return true;
    }
    for (size_t i = 0; words[i]; i++) {
        if (strcasestr(key, words[i])) {
            return true;
        }
    }
    return false;
}

/* ==== Source options ==== */

/* Splits the topics option into ctx->topic_list. */
static int parse_topics(sl_kafka_src *ctx, char *errstr, size_t errsize)
{
    char *copy = strdup(ctx->topics);
    if (!copy) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    size_t n = 1;
    for (const char *p = copy; *p; p++) {
        n += *p == ',';
    }
    ctx->topic_list = calloc(n + 1, sizeof(char *));
    if (!ctx->topic_list) {
        free(copy);
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    int rc = SL_OK;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = trim(tok);
        if (!topic_name_ok(t)) {
            snprintf(errstr, errsize,
                     "topics: '%s' is not a topic name (1 to 249 of a-z A-Z 0-9 . _ -)", t);
            rc = SL_ERR_INVAL;
            break;
        }
        bool dup = false;
        for (size_t i = 0; i < ctx->ntopic_list; i++) {
            dup = dup || strcmp(ctx->topic_list[i], t) == 0;
        }
        if (!dup && !(ctx->topic_list[ctx->ntopic_list++] = strdup(t))) {
            snprintf(errstr, errsize, "out of memory");
            rc = SL_ERR_NOMEM;
            break;
        }
    }
    free(copy);
    if (rc == SL_OK && ctx->ntopic_list == 0) {
        snprintf(errstr, errsize, "topics: no topic given");
        rc = SL_ERR_INVAL;
    }
    return rc;
}

int sl__kafka_src_config(sl_kafka_src *ctx, char *errstr, size_t errsize)
{
    /* The enumerations and the ranges of the numbers were checked against the option
     * table. */
    ctx->receiver = ctx->mode == SL_KAFKA_MODE_RECEIVER;
    if (!ctx->brokers || !*ctx->brokers) {
        snprintf(errstr, errsize,
                 "brokers: give the bootstrap brokers (host:port,...) or "
                 "'embedded'");
        return SL_ERR_INVAL;
    }
    ctx->embedded = strcmp(ctx->brokers, SL_KAFKA_EMBEDDED) == 0;
    bool has_topics = ctx->topics && *ctx->topics;
    bool has_pattern = ctx->topic_pattern && *ctx->topic_pattern;
    if (has_topics == has_pattern) {
        snprintf(errstr, errsize,
                 "give exactly one of topics (a list) and topic_pattern (a "
                 "regular expression)");
        return SL_ERR_INVAL;
    }
    if (has_topics) {
        int rc = parse_topics(ctx, errstr, errsize);
        if (rc != SL_OK) {
            return rc;
        }
    } else {
        if (ctx->embedded) {
            snprintf(errstr, errsize,
                     "brokers: embedded needs topics (a list), not "
                     "topic_pattern");
            return SL_ERR_INVAL;
        }
        const char *p = ctx->topic_pattern;
        size_t len = strlen(p) + 4;
        char *re = malloc(len);
        if (!re) {
            snprintf(errstr, errsize, "out of memory");
            return SL_ERR_NOMEM;
        }
        snprintf(re, len, "%s%s", p[0] == '^' ? "" : "^", p);
        int e = regcomp(&ctx->pattern, re, REG_EXTENDED | REG_NOSUB);
        free(re);
        if (e != 0) {
            char why[128];
            regerror(e, &ctx->pattern, why, sizeof(why));
            snprintf(errstr, errsize, "topic_pattern: '%s' is not a regular expression: %s", p,
                     why);
            return SL_ERR_INVAL;
        }
        ctx->has_pattern = true;
    }
    bool has_group = ctx->group && *ctx->group;
    if (ctx->start == SL_KAFKA_START_COMMITTED && !has_group) {
        snprintf(errstr, errsize,
                 "start: committed needs a group (the consumer group whose "
                 "committed offsets to start from)");
        return SL_ERR_INVAL;
    }
    if (ctx->receiver && !has_group) {
        snprintf(errstr, errsize,
                 "mode: receiver needs a group (it is a consumer-group "
                 "member)");
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

bool sl__kafka_topic_wanted(const sl_kafka_src *ctx, const char *topic)
{
    if (ctx->has_pattern) {
        return strncmp(topic, "__", 2) != 0 && regexec(&ctx->pattern, topic, 0, NULL, 0) == 0;
    }
    for (size_t i = 0; i < ctx->ntopic_list; i++) {
        if (strcmp(ctx->topic_list[i], topic) == 0) {
            return true;
        }
    }
    return false;
}

const char *sl__kafka_intern(sl_kafka_src *ctx, const char *topic)
{
    for (size_t i = 0; i < ctx->ninterned; i++) {
        if (strcmp(ctx->interned[i], topic) == 0) {
            return ctx->interned[i];
        }
    }
    if (ctx->ninterned == ctx->capinterned) {
        size_t cap = ctx->capinterned ? ctx->capinterned * 2 : 8;
        char **v = realloc(ctx->interned, cap * sizeof(*v));
        if (!v) {
            return NULL;
        }
        ctx->interned = v;
        ctx->capinterned = cap;
    }
    char *c = strdup(topic);
    if (c) {
        ctx->interned[ctx->ninterned++] = c;
    }
    return c;
}

/* ==== Sink options ==== */

int sl__kafka_sink_config(sl_kafka_sink *ctx, char *errstr, size_t errsize)
{
    if (!ctx->brokers || !*ctx->brokers) {
        snprintf(errstr, errsize, "brokers: give the bootstrap brokers or 'embedded'");
        return SL_ERR_INVAL;
    }
    if (!ctx->topic || !*ctx->topic) {
        snprintf(errstr, errsize, "topic: give the topic to produce to");
        return SL_ERR_INVAL;
    }
    ctx->embedded = strcmp(ctx->brokers, SL_KAFKA_EMBEDDED) == 0;
    if (!ctx->transactional) {
        return SL_OK;
    }
    if (!ctx->group || !*ctx->group) {
        snprintf(errstr, errsize,
                 "transactional: true needs group (the kafka source's consumer group, whose "
                 "offsets each transaction commits)");
        return SL_ERR_INVAL;
    }
    return sl__kafka_sink_txn_id(ctx, errstr, errsize);
}

int sl__kafka_sink_txn_id(sl_kafka_sink *ctx, char *errstr, size_t errsize)
{
    free(ctx->txn_id);
    ctx->txn_id = NULL;
    if (ctx->transactional_id && *ctx->transactional_id) {
        ctx->txn_id = strdup(ctx->transactional_id);
    } else {
        /* Stable across restarts of the same instance: a restarted instance fences the
         * producer it left behind. */
        char host[256] = "";
        const char *instance = ctx->instance && *ctx->instance ? ctx->instance : host;
        if (instance == host && (gethostname(host, sizeof(host) - 1) != 0 || !host[0])) {
            snprintf(errstr, errsize,
                     "transactional: the host name is unknown; set instance or "
                     "transactional_id");
            return SL_ERR_INVAL;
        }
        const char *pipeline = sl_context_name(sl_instance_context(ctx->ins));
        const char *sink = sl_instance_name(ctx->ins);
        size_t len = strlen(pipeline) + strlen(sink) + strlen(instance) + 3;
        ctx->txn_id = malloc(len);
        if (ctx->txn_id) {
            snprintf(ctx->txn_id, len, "%s-%s-%s", pipeline, sink, instance);
        }
    }
    if (!ctx->txn_id) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

/* ==== librdkafka configuration ==== */

/* librdkafka's syslog levels to ours: its errors are mostly connection failures that it
 * retries, which sluice reports itself, so they are warnings. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    sl_instance **ins = rd_kafka_opaque(rk);
    sl_log_level l = level <= 4 ? SL_LOG_WARN : SL_LOG_DEBUG;
    if (ins && *ins) {
        sl_instance_log(*ins, l, "librdkafka %s: %s", fac, buf);
    } else {
        sl_log(l, "librdkafka %s: %s", fac, buf);
    }
}

void sl__kafka_conf_logging(rd_kafka_conf_t *conf, sl_instance *ins)
{
    (void)ins;
    rd_kafka_conf_set_log_cb(conf, log_cb);
}

/* Sets key=value, naming the key (never a secret's value) in errstr on failure. */
static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, bool user,
                    char *errstr, size_t errsize)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        if (sl__kafka_secret_key(key)) {
            snprintf(errstr, errsize, "%sproperty '%s': rejected by librdkafka (value hidden)",
                     user ? "properties: " : "", key);
        } else {
            snprintf(errstr, errsize, "%sproperty '%s': %s", user ? "properties: " : "", key, why);
        }
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

/* Properties that options of the connector set, or that sluice manages itself. */
static const char *managed_property(const char *key)
{
    static const struct {
        const char *key, *why;
    } managed[] = {
        {"bootstrap.servers", "set it with the brokers option"},
        {"metadata.broker.list", "set it with the brokers option"},
        {"group.id", "set it with the group option"},
        {"group.instance.id", "set it with the group_instance_id option"},
        {"transactional.id", "set it with the transactional_id option of the kafka sink"},
        {"enable.auto.commit", "sluice commits offsets itself, after batches complete"},
        {"enable.auto.offset.store", "sluice commits offsets itself, after batches complete"},
        {"auto.offset.reset", "set it with the start and on_offset_out_of_range options"},
        {"partitioner", "set it with the partitioner option of the kafka sink"},
    };
    for (size_t i = 0; i < sizeof(managed) / sizeof(managed[0]); i++) {
        if (strcmp(key, managed[i].key) == 0) {
            return managed[i].why;
        }
    }
    return NULL;
}

/* Applies the "key=value,key=value" list. An item without '=' continues the previous
 * value (a value with commas, such as a list of cipher suites, was split by the list). */
static int apply_properties(rd_kafka_conf_t *conf, sl_instance *ins, const char *properties,
                            char *errstr, size_t errsize)
{
    if (!properties || !*properties) {
        return SL_OK;
    }
    char *copy = strdup(properties);
    if (!copy) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    /* Items, joined back where a value held commas. */
    size_t n = 0;
    char **items = calloc(strlen(copy) / 2 + 2, sizeof(char *));
    if (!items) {
        free(copy);
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) {
            *comma = '\0';
        }
        if (strchr(p, '=') || n == 0) {
            items[n++] = p;
        } else {
            p[-1] = ','; /* continue the previous item */
        }
        if (!comma) {
            break;
        }
        p = comma + 1;
    }
    int rc = SL_OK;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        char *eq = strchr(items[i], '=');
        if (!eq) {
            snprintf(errstr, errsize, "properties: '%s' is not key=value", trim(items[i]));
            rc = SL_ERR_INVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(items[i]), *value = trim(eq + 1);
        const char *why = managed_property(key);
        if (why) {
            snprintf(errstr, errsize, "properties: '%s' cannot be set here: %s", key, why);
            rc = SL_ERR_INVAL;
            break;
        }
        rc = conf_set(conf, key, value, true, errstr, errsize);
        if (rc == SL_OK && ins) {
            sl_instance_log(ins, SL_LOG_DEBUG, "librdkafka property %s=%s", key,
                            sl__kafka_secret_key(key) ? "***" : value);
        }
    }
    free(items);
    free(copy);
    return rc;
}

rd_kafka_conf_t *sl__kafka_conf_new(sl_instance *ins, const char *bootstrap, const char *properties,
                                    sl_kafka_role role, char *errstr, size_t errsize)
{
    /* librdkafka bounds a partition's prefetch by the length of the queue it lands in:
     * direct mode has a queue per partition, receiver mode one for all. A full queue makes
     * the fetcher back off by fetch.error.backoff.ms (librdkafka 2.0), 500 ms by default:
     * long enough to starve a consumer that catches up, hence 50. */
    static const char *const client_defaults[][2] = {
        {"log.connection.close", "false"},
        {"client.id", "sluice"},
        {NULL, NULL},
    };
    static const char *const consumer_defaults[][2] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"fetch.wait.max.ms", "100"},
        {"fetch.error.backoff.ms", "50"},
        {"fetch.max.bytes", "52428800"},
        {NULL, NULL},
    };
    static const char *const direct_defaults[][2] = {
        {"auto.offset.reset", "error"},
        {"queued.max.messages.kbytes", "16384"},
        {"queued.min.messages", "50000"},
        {NULL, NULL},
    };
    static const char *const receiver_defaults[][2] = {
        {"queued.max.messages.kbytes", "131072"},
        {"queued.min.messages", "400000"},
        {NULL, NULL},
    };
    static const char *const producer_defaults[][2] = {
        {"linger.ms", "5"},
        {NULL, NULL},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    int rc = conf_set(conf, "bootstrap.servers", bootstrap, false, errstr, errsize);
    /* Every client's defaults, then a consumer's, then the role's own. */
    const char *const(*defs[3])[2] = {client_defaults, producer_defaults, NULL};
    if (role != SL_KAFKA_PRODUCER) {
        defs[1] = consumer_defaults;
        defs[2] = role == SL_KAFKA_DIRECT ? direct_defaults : receiver_defaults;
    }
    for (size_t t = 0; rc == SL_OK && t < SL_ARRAY_LEN(defs) && defs[t]; t++) {
        for (size_t i = 0; rc == SL_OK && defs[t][i][0]; i++) {
            rc = conf_set(conf, defs[t][i][0], defs[t][i][1], false, errstr, errsize);
        }
    }
    if (rc == SL_OK) {
        rc = apply_properties(conf, ins, properties, errstr, errsize);
    }
    if (rc != SL_OK) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    sl__kafka_conf_logging(conf, ins);
    return conf;
}

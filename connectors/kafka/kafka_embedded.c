/* kafka_embedded.c -- `brokers: embedded`: librdkafka's mock cluster, started in-process so
 * that the demo runs the Kafka path with no server installed. One cluster per process,
 * shared by every kafka source and sink that asks for it and stopped with the last one. A
 * feeder thread keeps sample text lines coming. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h, which kafka.h includes */

/* Shakespeare's Sonnet 18: the sample text. */
static const char *const sample_lines[] = {
    "Shall I compare thee to a summer's day?",
    "Thou art more lovely and more temperate:",
    "Rough winds do shake the darling buds of May,",
    "And summer's lease hath all too short a date;",
    "Sometime too hot the eye of heaven shines,",
    "And often is his gold complexion dimm'd;",
    "And every fair from fair sometime declines,",
    "By chance or nature's changing course untrimm'd;",
    "But thy eternal summer shall not fade,",
    "Nor lose possession of that fair thou ow'st;",
    "Nor shall death brag thou wander'st in his shade,",
    "When in eternal lines to time thou grow'st:",
    "So long as men can breathe or eyes can see,",
    "So long lives this, and this gives life to thee.",
};

#define SAMPLE_N (sizeof(sample_lines) / sizeof(sample_lines[0]))

static struct {
    pthread_mutex_t lock;
    int refs;
    rd_kafka_t *owner; /* the handle the mock cluster belongs to */
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
    rd_kafka_t *producer; /* feeds sample lines */
    char **topics;        /* topics fed */
    size_t ntopics;
    double rate;
    pthread_t feeder;
    bool feeding;
    atomic_bool stop;
} emb = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Produces line i of the sample to every fed topic. @locks emb.lock held or feeder thread */
static void produce_line(size_t i)
{
    const char *line = sample_lines[i % SAMPLE_N];
    for (size_t t = 0; t < emb.ntopics; t++) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(emb.producer, RD_KAFKA_V_TOPIC(emb.topics[t]),
                              RD_KAFKA_V_VALUE((void *)line, strlen(line)),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(emb.producer, 100);
        }
    }
    rd_kafka_poll(emb.producer, 0);
}

static void *feeder_main(void *arg)
{
    (void)arg;
    size_t i = 0;
    int64_t next = sl__mono_ms();
    while (!atomic_load(&emb.stop)) {
        int64_t now = sl__mono_ms();
        if (now < next) {
            int64_t wait = next - now < 100 ? next - now : 100;
            struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait * 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        /* Never waits for the lock: shutdown holds it while it joins this thread. */
        if (pthread_mutex_trylock(&emb.lock) == 0) {
            produce_line(i++);
            pthread_mutex_unlock(&emb.lock);
        }
        next += (int64_t)(1000.0 / emb.rate);
        if (next < now - 1000) {
            next = now; /* do not catch up after a stall */
        }
    }
    return NULL;
}

static int add_fed_topic(const char *topic)
{
    for (size_t i = 0; i < emb.ntopics; i++) {
        if (strcmp(emb.topics[i], topic) == 0) {
            return 0;
        }
    }
    char **v = realloc(emb.topics, (emb.ntopics + 1) * sizeof(*v));
    if (!v) {
        return -1;
    }
    emb.topics = v;
    if (!(emb.topics[emb.ntopics] = strdup(topic))) {
        return -1;
    }
    emb.ntopics++;
    return 1;
}

static void shutdown_locked(void)
{
    if (emb.feeding) {
        atomic_store(&emb.stop, true);
        pthread_join(emb.feeder, NULL);
        emb.feeding = false;
    }
    if (emb.producer) {
        rd_kafka_flush(emb.producer, 2000);
        rd_kafka_destroy(emb.producer);
        emb.producer = NULL;
    }
    if (emb.mc) {
        rd_kafka_mock_cluster_destroy(emb.mc);
        emb.mc = NULL;
    }
    if (emb.owner) {
        rd_kafka_destroy(emb.owner);
        emb.owner = NULL;
    }
    for (size_t i = 0; i < emb.ntopics; i++) {
        free(emb.topics[i]);
    }
    free(emb.topics);
    emb.topics = NULL;
    emb.ntopics = 0;
    free(emb.bootstraps);
    emb.bootstraps = NULL;
    emb.rate = 0;
}

char *sl__kafka_embedded_acquire(const char *const *topics, int partitions, bool sample,
                                 double rate, char *errstr, size_t errsize)
{
    char why[512];
    pthread_mutex_lock(&emb.lock);
    if (emb.refs == 0) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log.connection.close", "false", why, sizeof(why));
        sl__kafka_conf_logging(conf, NULL);
        emb.owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
        if (!emb.owner) {
            rd_kafka_conf_destroy(conf);
            snprintf(errstr, errsize, "embedded cluster: %s", why);
            pthread_mutex_unlock(&emb.lock);
            return NULL;
        }
        emb.mc = rd_kafka_mock_cluster_new(emb.owner, 1);
        const char *bs = emb.mc ? rd_kafka_mock_cluster_bootstraps(emb.mc) : NULL;
        emb.bootstraps = bs ? strdup(bs) : NULL;
        if (!emb.bootstraps) {
            snprintf(errstr, errsize, "embedded cluster: cannot start librdkafka's mock cluster");
            shutdown_locked();
            pthread_mutex_unlock(&emb.lock);
            return NULL;
        }
        sl_log(SL_LOG_INFO, "embedded Kafka (librdkafka mock cluster) at %s", emb.bootstraps);
    }
    emb.refs++;
    for (size_t i = 0; topics && topics[i]; i++) {
        /* An existing topic keeps its partitions; the error is expected then. */
        rd_kafka_mock_topic_create(emb.mc, topics[i], partitions, 1);
    }
    if (sample && topics) {
        if (!emb.producer) {
            rd_kafka_conf_t *conf = rd_kafka_conf_new();
            rd_kafka_conf_set(conf, "bootstrap.servers", emb.bootstraps, why, sizeof(why));
            rd_kafka_conf_set(conf, "linger.ms", "5", why, sizeof(why));
            sl__kafka_conf_logging(conf, NULL);
            emb.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
            if (!emb.producer) {
                rd_kafka_conf_destroy(conf);
            }
        }
        for (size_t i = 0; emb.producer && topics[i]; i++) {
            if (add_fed_topic(topics[i]) > 0) {
                /* The whole text once, so that the first batch has words to count. */
                for (size_t l = 0; l < SAMPLE_N; l++) {
                    const char *line = sample_lines[l];
                    rd_kafka_producev(emb.producer, RD_KAFKA_V_TOPIC(topics[i]),
                                      RD_KAFKA_V_VALUE((void *)line, strlen(line)),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                }
            }
        }
        if (emb.producer) {
            rd_kafka_flush(emb.producer, 5000);
        }
        if (emb.producer && rate > 0 && !emb.feeding) {
            emb.rate = rate;
            atomic_store(&emb.stop, false);
            emb.feeding = pthread_create(&emb.feeder, NULL, feeder_main, NULL) == 0;
        }
    }
    char *bs = strdup(emb.bootstraps);
    if (!bs) {
        snprintf(errstr, errsize, "out of memory");
        if (--emb.refs == 0) {
            shutdown_locked();
        }
    }
    pthread_mutex_unlock(&emb.lock);
    return bs;
}

void sl__kafka_embedded_release(void)
{
    pthread_mutex_lock(&emb.lock);
    if (emb.refs > 0 && --emb.refs == 0) {
        shutdown_locked();
    }
    pthread_mutex_unlock(&emb.lock);
}

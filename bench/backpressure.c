/* backpressure.c -- the PID rate estimator against a pipeline of known capacity.
 *
 * Pipeline: a source -> burn (a fixed cost per record on the schedule of a burn op,
 * sl__yamlops_burn: by default paced on the wall clock, so that a shared machine does not
 * change the capacity; --clock cpu: the op itself, thread CPU time) -> a sink that counts
 * records and checks each one's number; 1 worker, so the capacity is C = 1 / cost records/s.
 * Three variants, each offered 3C:
 *
 *   tcp:   a listen-mode TCP source (a receiver: token bucket at the estimated rate); a
 *          sender thread writes numbered lines paced at 3C (a throttled receiver stops
 *          reading, and TCP flow control slows the sender);
 *   kafka: a direct Kafka source on the real broker (the estimated rate split over the
 *          partitions by lag); a topic of 4 partitions (lag 1:2:3:4) holding a backlog of
 *          2 s at 3C before the start, fed at 3C by a producer thread;
 *   kafka_receiver: the Kafka receiver (consumer group, write-ahead log: a token bucket at
 *          the estimated rate, as for tcp) on the same kind of topic.
 *
 * Runs of each variant:
 *   a) no backpressure: the scheduling delay grows without bound (kafka, no cap: the first
 *      batch takes the whole backlog, as Spark's direct stream does);
 *   b) backpressure, initial rate C/2: within 10 batches the ingest rate is within 10% of C,
 *      and the scheduling delay stays under 2 batch intervals afterwards;
 *   c) backpressure, capacity C -> C/2 -> C (a burn schedule, phases of 20 batches).
 * The input is offered for the measured phases only; then the cost drops to 0 (drain) and
 * the run ends when the sink has seen every record sent: nothing may be lost or repeated.
 *
 * Per phase: "reach", the first batch (from the phase's start, 1-based) whose ingest rate is
 * within 10% of the phase's capacity; "settle", the first batch from which the ingest rate
 * stays within 10% of the capacity and the scheduling delay under 2 batch intervals until the
 * phase ends. Next to each, "ideal": the same estimator (sl__pid_compute) in a simulated loop
 * with an exact rate, no overhead and the same schedule -- what Spark's PIDRateEstimator does
 * at best with these gains.
 *
 * Checks (exit status 1 when one fails): a) the delay of the last offered batch is over 4
 * intervals and the largest so far; b) and phases at C (first, and after the capacity
 * doubled): settle <= 10; the halved phase: reach <= 10 and settle <= ideal + 2 (settle <= 10
 * is reported, and checked with --strict only: Spark's default gains need 14 batches even
 * in the ideal loop and no gains meet it with a margin, see the note printed at the end and
 * --ideal-only); every run: sent == at sink, no record twice.
 *
 * Per run a CSV (OUT/backpressure_<variant>_<run>.csv); bench/backpressure.sh plots them.
 *
 *   backpressure [--variants tcp,kafka,kafka_receiver] [--cost-us 50] [--batch-ms 1000]
 *                [--out bench/out] [--brokers HOST:PORT] [--pid P,I,D] [--clock wall|cpu]
 *                [--strict] [--ideal-only]
 *
 * --ideal-only: only the ideal loop of runs b and c (no pipeline, no broker), e.g. to see
 * what other gains (--pid) would do.
 *
 * Brokers: --brokers, else $KAFKA_BOOTSTRAP, else ${SLUICE_STATE:-/tmp/sluice-infra}/kafka/
 * bootstrap (tests/infra/kafka.sh); without a broker the kafka variant is skipped. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef SLUICE_WITH_KAFKA
#include <librdkafka/rdkafka.h>
#endif

#include "sl_rate.h"
#include "sl_yamlops.h"
#include "sluice.h"

#define MAX_BATCHES   512
#define LINE_LEN      9 /* "%08u\n" */
#define CONVERGE_TOL  0.10
#define MAX_CONVERGE  10
#define PHASE_BATCHES 20
#define MAX_PHASES    3
#define KAFKA_PARTS   4
#define MAX_RECORDS   100000000 /* record numbers are 8 digits */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==== Runs ==== */

typedef enum variant {
    V_TCP,
    V_KAFKA,
    V_KAFKA_RCV,
    V_COUNT
} variant;
static const char *const variant_names[V_COUNT] = {"tcp", "kafka", "kafka_receiver"};

typedef struct sample {
    int64_t batch_time; /* ms */
    uint64_t records;
    double rate_limit; /* records/s in force when the batch was cut, 0: none */
    int64_t processing_ms, sched_ms;
    int64_t start_ms; /* processing start (wall ms) */
} sample;

typedef struct run {
    variant v;
    char id; /* 'a', 'b', 'c' */
    const char *title;
    bool backpressure;
    double initial_rate;
    double pid[3];
    int64_t cost_us;
    sl_yamlops_burn_step steps[4]; /* the last one: cost 0 (drain) */
    size_t nsteps;
    int64_t offer_ms; /* offered at 3C until this long after the first record */
    uint64_t prefill; /* kafka: records in the topic before the start */
    const char *brokers;
    char topic[96];
    /* results */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sample s[MAX_BATCHES];
    size_t n;
    uint64_t processed, duplicates, bad;
    uint8_t *seen; /* bitmap of record numbers */
    _Atomic uint64_t sent;
    _Atomic bool sending_done;
    _Atomic int64_t first_ms; /* wall ms of the first record the burn saw */
    _Atomic uint64_t batches_done;
    sl_yamlop *burn;
    bool failed_setup;
} run;

static bool wall_clock_burn = true;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The burn. cpu: the YAML op itself (CPU time of the thread: on a shared machine the
 * capacity drops when the thread waits for a core). wall: the op's schedule, paced on the
 * monotonic clock: record i of a batch ends at the batch's first record + i x cost, so a
 * thread that lost its core catches up and the capacity stays C in wall time. */
static int burn_and_note(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    static _Thread_local int64_t due_ns;
    static _Thread_local uint64_t batch_seen = UINT64_MAX;
    run *r = opaque;
    int64_t f = atomic_load_explicit(&r->first_ms, memory_order_relaxed);
    if (f == 0) {
        int64_t zero = 0;
        f = wall_ms();
        if (!atomic_compare_exchange_strong(&r->first_ms, &zero, f)) {
            f = zero;
        }
    }
    if (!wall_clock_burn) {
        return sl__yamlops_burn(in, out, e, r->burn);
    }
    int64_t us = sl__yamlops_burn_cost_us(r->burn, wall_ms() - f);
    if (us > 0) {
        int64_t now = mono_ns();
        uint64_t b = atomic_load(&r->batches_done);
        if (b != batch_seen || due_ns < now - 1000000000) {
            batch_seen = b; /* a new batch (one worker: batches run in turn) */
            due_ns = now;
        }
        due_ns += us * 1000;
        while (mono_ns() < due_ns) {
            /* spin */
        }
    }
    return SL_OK;
}

/* Counts the records and checks each number once. */
static int count_sink(const sl_dataset *ds, int64_t t, void *opaque)
{
    (void)t;
    run *r = opaque;
    uint64_t n = 0, dup = 0, bad = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t k;
        const sl_record *recs = sl_dataset_partition(ds, p, &k);
        for (size_t i = 0; i < k; i++) {
            uint64_t num = 0;
            for (uint32_t j = 0; j < recs[i].value_len && j < 8; j++) {
                num = num * 10 + (uint64_t)(recs[i].value[j] - '0');
            }
            if (recs[i].value_len < 8 || num >= MAX_RECORDS) {
                bad++;
            } else if (r->seen[num / 8] & (1u << (num % 8))) {
                dup++;
            } else {
                r->seen[num / 8] |= (uint8_t)(1u << (num % 8));
            }
        }
        n += k;
    }
    r->processed += n;
    r->duplicates += dup;
    r->bad += bad;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return SL_OK;
}

static void on_batch(const sl_batch_info *info, void *opaque)
{
    run *r = opaque;
    atomic_fetch_add(&r->batches_done, 1);
    pthread_mutex_lock(&r->lock);
    if (r->n < MAX_BATCHES) {
        sample *s = &r->s[r->n++];
        s->batch_time = info->batch_time;
        s->records = info->records;
        s->rate_limit = info->ninputs > 0 ? info->inputs[0].rate : 0;
        s->processing_ms = info->processing_time;
        s->sched_ms = info->scheduling_delay;
        s->start_ms = info->processing_start;
        int64_t f = atomic_load(&r->first_ms);
        if (!r->backpressure && info->records > 0) {
            printf("    batch %3zu: %7" PRIu64 " records, processing %6" PRId64
                   " ms, scheduling delay %6" PRId64 " ms%s\n",
                   r->n, info->records, info->processing_time, info->scheduling_delay,
                   f && info->processing_start >= f + r->offer_ms ? " (drain)" : "");
            fflush(stdout);
        }
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* True while the input is still offered: until offer_ms after the first record (or, if no
 * record was processed yet, 30 s after start). */
static bool offering(const run *r, double start)
{
    int64_t f = atomic_load(&r->first_ms);
    return f ? wall_ms() < f + r->offer_ms : now_s() - start < 30;
}

static double capacity_of(const run *r)
{
    return 1e6 / (double)r->cost_us;
}

/* ==== TCP: the sender ==== */

typedef struct tcp_sender {
    run *r;
    int port;
} tcp_sender;

static int connect_retry(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    for (int i = 0; i < 500; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            return fd;
        }
        close(fd);
        usleep(10000);
    }
    return -1;
}

/* Writes numbered lines paced at 3C while offering(); then the lines due by then. */
static void *tcp_sender_main(void *arg)
{
    tcp_sender *ts = arg;
    run *r = ts->r;
    int fd = connect_retry(ts->port);
    char *buf = malloc(65536 * LINE_LEN);
    uint64_t sent = 0, cap = UINT64_MAX;
    double rate = 3 * capacity_of(r), start = now_s();
    while (fd >= 0 && buf) {
        uint64_t due = (uint64_t)((now_s() - start) * rate);
        if (cap == UINT64_MAX && !offering(r, start)) {
            cap = due;
        }
        due = due < cap ? due : cap;
        while (sent < due) {
            uint64_t n = due - sent < 65536 ? due - sent : 65536;
            char *p = buf;
            for (uint64_t i = 0; i < n; i++) {
                p += snprintf(p, LINE_LEN + 1, "%08" PRIu64 "\n", sent + i);
            }
            for (size_t len = (size_t)(p - buf), off = 0; off < len;) {
                ssize_t w = write(fd, buf + off, len - off);
                if (w <= 0) {
                    perror("write");
                    goto out;
                }
                off += (size_t)w;
            }
            sent += n;
        }
        if (sent >= cap) {
            break;
        }
        usleep(5000);
    }
out:
    if (fd < 0) {
        perror("connect");
    }
    atomic_store(&r->sent, sent);
    atomic_store(&r->sending_done, true);
    free(buf);
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* ==== Kafka: the topic and the producer ==== */

#ifdef SLUICE_WITH_KAFKA
static _Atomic uint64_t kafka_failed; /* delivery reports with an error */

static void kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err) {
        atomic_fetch_add(&kafka_failed, 1);
    }
}

static rd_kafka_t *kafka_client(const char *brokers)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *props[][2] = {
        {"bootstrap.servers", brokers},
        {"linger.ms", "5"},
        {"batch.num.messages", "10000"},
        {"queue.buffering.max.messages", "1000000"},
        {"acks", "all"},
        {NULL, NULL},
    };
    for (int i = 0; props[i][0]; i++) {
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, sizeof(err))) {
            fprintf(stderr, "%s\n", err);
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, kafka_dr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kafka: %s\n", err);
    }
    return rk;
}

/* Creates (delete: deletes) the topic. Returns 0 on success. */
static int kafka_topic_admin(const char *brokers, const char *topic, bool delete)
{
    rd_kafka_t *rk = kafka_client(brokers);
    if (!rk) {
        return -1;
    }
    char err[512];
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_NewTopic_t *nt = NULL;
    rd_kafka_DeleteTopic_t *dt = NULL;
    if (delete) {
        dt = rd_kafka_DeleteTopic_new(topic);
        rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    } else {
        nt = rd_kafka_NewTopic_new(topic, KAFKA_PARTS, 1, err, sizeof(err));
        rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    }
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = -1;
    if (ev) {
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            delete
                ? rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n)
                : rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        rc = n == 1 && !rd_kafka_topic_result_error(tr[0]) ? 0 : -1;
        if (rc != 0 && n == 1) {
            fprintf(stderr, "kafka: %s %s: %s\n", delete ? "deleting" : "creating", topic,
                    rd_kafka_topic_result_error_string(tr[0]));
        }
        rd_kafka_event_destroy(ev);
    }
    if (nt) {
        rd_kafka_NewTopic_destroy(nt);
    }
    if (dt) {
        rd_kafka_DeleteTopic_destroy(dt);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

/* Record i's partition: lags 1:2:3:4 over the 4 partitions. */
static int32_t kafka_partition_of(uint64_t i)
{
    static const int32_t of[10] = {0, 1, 1, 2, 2, 2, 3, 3, 3, 3};
    return of[i % 10];
}

static int kafka_produce_range(rd_kafka_t *rk, const char *topic, uint64_t from, uint64_t to)
{
    char v[16];
    for (uint64_t i = from; i < to; i++) {
        int len = snprintf(v, sizeof(v), "%08" PRIu64, i);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(kafka_partition_of(i)),
                RD_KAFKA_V_VALUE(v, (size_t)len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 10);
                continue;
            }
            if (e) {
                fprintf(stderr, "kafka: produce: %s\n", rd_kafka_err2str(e));
                return -1;
            }
            break;
        }
    }
    rd_kafka_poll(rk, 0);
    return 0;
}

typedef struct kafka_feeder {
    run *r;
    rd_kafka_t *rk;
} kafka_feeder;

/* Produces numbered records paced at 3C after the prefilled ones while offering(). */
static void *kafka_feeder_main(void *arg)
{
    kafka_feeder *kf = arg;
    run *r = kf->r;
    uint64_t sent = r->prefill;
    double rate = 3 * capacity_of(r), start = now_s();
    while (offering(r, start)) {
        uint64_t due = r->prefill + (uint64_t)((now_s() - start) * rate);
        if (due > sent && kafka_produce_range(kf->rk, r->topic, sent, due) != 0) {
            break;
        }
        sent = due > sent ? due : sent;
        usleep(5000);
    }
    if (rd_kafka_flush(kf->rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka: flush timed out\n");
    }
    atomic_store(&r->sent, sent);
    atomic_store(&r->sending_done, true);
    return NULL;
}
#endif

/* ==== One run ==== */

static sl_stream *add_source(run *r, sl_context *ctx, int *port)
{
    char err[256], portstr[16];
    sl_options *o = sl_options_new();
    sl_stream *in = NULL;
    if (r->v == V_TCP) {
        *port = free_port();
        snprintf(portstr, sizeof(portstr), "%d", *port);
        sl_options_set(o, "mode", "listen");
        sl_options_set(o, "host", "127.0.0.1");
        sl_options_set(o, "port", portstr);
        in = sl_context_add_source(ctx, "tcp", "lines", o, err, sizeof(err));
    } else {
        sl_options_set(o, "mode", r->v == V_KAFKA ? "direct" : "receiver");
        sl_options_set(o, "brokers", r->brokers);
        sl_options_set(o, "topics", r->topic);
        sl_options_set(o, "start", "earliest");
        if (r->v == V_KAFKA_RCV) {
            sl_options_set(o, "group", r->topic);
        }
        in = sl_context_add_source(ctx, "kafka", "topic", o, err, sizeof(err));
    }
    sl_options_destroy(o);
    if (!in) {
        fprintf(stderr, "%s\n", err);
    }
    return in;
}

static int do_run(run *r, int64_t batch_ms)
{
    char err[256];
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    atomic_init(&r->first_ms, 0);
    atomic_init(&r->batches_done, 0);
    atomic_init(&r->sent, 0);
    atomic_init(&r->sending_done, false);
    r->seen = calloc(MAX_RECORDS / 8, 1);
    r->burn = sl__yamlops_burn_new(r->cost_us, r->steps, r->nsteps, err, sizeof(err));
    if (!r->burn || !r->seen) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
#ifdef SLUICE_WITH_KAFKA
    rd_kafka_t *producer = NULL;
    if (r->v != V_TCP) {
        snprintf(r->topic, sizeof(r->topic), "sluice-backpressure-%ld-%c%c", (long)getpid(),
                 r->v == V_KAFKA ? 'd' : 'r', r->id);
        atomic_store(&kafka_failed, 0);
        producer = kafka_client(r->brokers);
        if (!producer || kafka_topic_admin(r->brokers, r->topic, false) != 0 ||
            kafka_produce_range(producer, r->topic, 0, r->prefill) != 0 ||
            rd_kafka_flush(producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "kafka: cannot fill the topic %s\n", r->topic);
            return -1;
        }
    }
#endif
    /* The Kafka receiver keeps a write-ahead log (a reliable receiver) in a fresh directory. */
    char dir[64] = "";
    if (r->v == V_KAFKA_RCV) {
        snprintf(dir, sizeof(dir), "/tmp/sluice-backpressure-XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return -1;
        }
    }
    sl_context_conf conf = {.name = "backpressure",
                            .batch_interval_ms = batch_ms,
                            .workers = 1,
                            .block_interval_ms = 100,
                            .checkpoint_dir = dir[0] ? dir : NULL};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    sl_backpressure_conf bp;
    sl_backpressure_defaults(&bp);
    bp.enabled = r->backpressure;
    bp.initial_rate = r->initial_rate;
    bp.proportional = r->pid[0];
    bp.integral = r->pid[1];
    bp.derivative = r->pid[2];
    if (sl_context_set_backpressure(ctx, &bp, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    int port = 0;
    sl_stream *in = add_source(r, ctx, &port);
    if (!in) {
        return -1;
    }
    sl_stream_foreach_batch(sl_stream_map(in, burn_and_note, r), count_sink, r);
    sl_context_add_batch_listener(ctx, on_batch, r);
    if (sl_context_start(ctx) != SL_OK) {
        return -1;
    }
    pthread_t th;
    tcp_sender ts = {.r = r, .port = port};
#ifdef SLUICE_WITH_KAFKA
    kafka_feeder kf = {.r = r, .rk = producer};
    if (r->v != V_TCP) {
        pthread_create(&th, NULL, kafka_feeder_main, &kf);
    } else
#endif
    {
        pthread_create(&th, NULL, tcp_sender_main, &ts);
    }
    double start = now_s(), timeout = (double)r->offer_ms / 1000.0 + 90;
    pthread_mutex_lock(&r->lock);
    while (!(atomic_load(&r->sending_done) && r->processed >= atomic_load(&r->sent)) &&
           now_s() - start < timeout) {
        struct timespec ts2;
        clock_gettime(CLOCK_REALTIME, &ts2);
        ts2.tv_sec += 1;
        pthread_cond_timedwait(&r->cond, &r->lock, &ts2);
    }
    pthread_mutex_unlock(&r->lock);
    pthread_join(th, NULL);
    sl_context_stop(ctx, true);
    sl_context_await_termination(ctx);
    sl_context_destroy(ctx);
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "cannot remove %s\n", dir);
        }
    }
    sl__yamlops_destroy(r->burn);
    free(r->seen);
    r->seen = NULL;
#ifdef SLUICE_WITH_KAFKA
    if (producer) {
        if (atomic_load(&kafka_failed)) {
            fprintf(stderr, "kafka: %" PRIu64 " records were not delivered\n",
                    atomic_load(&kafka_failed));
            r->failed_setup = true;
        }
        rd_kafka_destroy(producer);
        kafka_topic_admin(r->brokers, r->topic, true);
    }
#endif
    return 0;
}

/* ==== The ideal loop ==== */

/* The cost in force elapsed_ms after the first record. */
static int64_t cost_at(const run *r, int64_t elapsed_ms)
{
    int64_t us = r->cost_us;
    for (size_t i = 0; i < r->nsteps && elapsed_ms >= r->steps[i].after_ms; i++) {
        us = r->steps[i].per_record_us;
    }
    return us;
}

/* Seconds to process n records from time t (s; the first record is processed at t0). */
static double ideal_processing(const run *r, double t0, double t, double n)
{
    double start = t;
    while (n > 1e-9) {
        int64_t el = (int64_t)floor((t - t0) * 1000.0 + 1e-6);
        int64_t us = cost_at(r, el);
        if (us == 0) {
            break;
        }
        double next = 1e18;
        for (size_t i = 0; i < r->nsteps; i++) {
            if (r->steps[i].after_ms > el) {
                next = t0 + (double)r->steps[i].after_ms / 1000.0;
                break;
            }
        }
        double can = (next - t) * 1e6 / (double)us;
        if (can >= n) {
            t += n * (double)us / 1e6;
            n = 0;
        } else {
            n -= can;
            t = next;
        }
    }
    return t - start;
}

/* The loop with this run's estimator and schedule, nothing else: the rate is exact (a
 * receiver takes the rate in force over each interval; a direct source the rate at the
 * batch time, times the interval), the sender always has more, one worker processes the
 * batches in turn at the scheduled cost, and the estimator is fed when each completes.
 * Fills s with the batches until the drain; returns how many. first_ms is set to the
 * processing start of batch 1. */
static size_t ideal_run(const run *r, int64_t batch_ms, sample *s, size_t max, int64_t *first_ms)
{
    double T = (double)batch_ms / 1000.0;
    sl_pid pid;
    sl__pid_init(&pid, batch_ms, r->pid[0], r->pid[1], r->pid[2], 100);
    double ch_t[MAX_BATCHES + 1], ch_r[MAX_BATCHES + 1];
    size_t nch = 0;
    ch_t[nch] = 0;
    ch_r[nch++] = r->initial_rate;
    double end_prev = 0, t0 = T;
    size_t n = 0;
    *first_ms = (int64_t)llround(t0 * 1000);
    for (size_t k = 1; k < max && n < max; k++) {
        double bt = (double)k * T;
        if ((bt - t0) * 1000.0 >= (double)r->offer_ms) {
            break;
        }
        double recs = 0, rate_now = ch_r[0];
        for (size_t i = 0; i < nch; i++) {
            double a = ch_t[i], b = i + 1 < nch ? ch_t[i + 1] : 1e18;
            double lo = a > bt - T ? a : bt - T, hi = b < bt ? b : bt;
            if (hi > lo) {
                recs += (hi - lo) * ch_r[i];
            }
            if (a < bt) { /* a rate published at the batch time comes too late for it */
                rate_now = ch_r[i];
            }
        }
        if (r->v == V_KAFKA) { /* direct: the rate at the batch time */
            recs = floor(rate_now * T);
        }
        recs = floor(recs);
        double start = bt > end_prev ? bt : end_prev;
        double pt = ideal_processing(r, t0, start, recs);
        double end = start + pt;
        s[n++] = (sample){.batch_time = (int64_t)llround(bt * 1000),
                          .records = (uint64_t)recs,
                          .rate_limit = rate_now,
                          .processing_ms = (int64_t)llround(pt * 1000),
                          .sched_ms = (int64_t)llround((start - bt) * 1000),
                          .start_ms = (int64_t)llround(start * 1000)};
        double rate;
        if (sl__pid_compute(&pid, (int64_t)llround(end * 1000), (int64_t)recs,
                            (int64_t)llround(pt * 1000), (int64_t)llround((start - bt) * 1000),
                            &rate) &&
            nch < MAX_BATCHES) {
            /* Changes come in time order: batches complete in turn. */
            ch_t[nch] = end;
            ch_r[nch++] = rate;
        }
        end_prev = end;
    }
    return n;
}

/* ==== Analysis ==== */

static double capacity_at(const run *r, int64_t batch_time, int64_t first_ms)
{
    int64_t us = cost_at(r, first_ms ? batch_time - first_ms : 0);
    return us > 0 ? 1e6 / (double)us : INFINITY;
}

typedef struct phase {
    double capacity;
    size_t from, to; /* sample indexes [from, to) */
    int reach, settle;
    double ingest_after;     /* mean ingest / C from settle on */
    int64_t max_sched_after; /* ms, from settle on */
    int64_t max_sched;       /* ms, whole phase */
    double min_ingest;       /* records/s */
    double seen_capacity;    /* median records / processing time of its batches */
} phase;

typedef struct verdict {
    phase ph[MAX_PHASES];
    size_t nphases;
    size_t batches;         /* non-empty, before the drain */
    uint64_t first_records; /* of the first non-empty batch */
    int64_t first_sched, last_sched, max_sched;
} verdict;

static double ingest_of(const sample *s, int64_t batch_ms)
{
    return (double)s->records * 1000.0 / (double)batch_ms;
}

static bool within(const sample *s, double c, int64_t batch_ms)
{
    return fabs(ingest_of(s, batch_ms) - c) <= CONVERGE_TOL * c;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static verdict analyse(const run *r, const sample *s, size_t n, int64_t batch_ms, int64_t first_ms)
{
    verdict v = {0};
    size_t first = n, end = n;
    for (size_t i = 0; i < n; i++) {
        if (first == n && s[i].records > 0) {
            first = i;
        }
        if (first < n && (isinf(capacity_at(r, s[i].batch_time, first_ms)) ||
                          s[i].start_ms >= first_ms + r->offer_ms)) {
            end = i; /* processed in the drain */
            break;
        }
    }
    if (first >= end) {
        return v;
    }
    v.first_records = s[first].records;
    v.first_sched = s[first].sched_ms;
    for (size_t i = first; i < end; i++) {
        v.batches += s[i].records > 0;
        v.last_sched = s[i].sched_ms;
        v.max_sched = s[i].sched_ms > v.max_sched ? s[i].sched_ms : v.max_sched;
        double c = capacity_at(r, s[i].batch_time, first_ms);
        if (v.nphases == 0 || c != v.ph[v.nphases - 1].capacity) {
            if (v.nphases == MAX_PHASES) {
                break;
            }
            v.ph[v.nphases++] = (phase){.capacity = c, .from = i};
        }
        v.ph[v.nphases - 1].to = i + 1;
    }
    for (size_t p = 0; p < v.nphases; p++) {
        phase *ph = &v.ph[p];
        ph->reach = ph->settle = -1;
        ph->min_ingest = INFINITY;
        for (size_t i = ph->from; i < ph->to; i++) {
            if (ph->reach < 0 && within(&s[i], ph->capacity, batch_ms)) {
                ph->reach = (int)(i - ph->from + 1);
            }
            ph->max_sched = s[i].sched_ms > ph->max_sched ? s[i].sched_ms : ph->max_sched;
            double in = ingest_of(&s[i], batch_ms);
            ph->min_ingest = in < ph->min_ingest ? in : ph->min_ingest;
        }
        double rates[MAX_BATCHES];
        size_t nr = 0;
        for (size_t i = ph->from; i < ph->to; i++) {
            if (s[i].processing_ms >= 100) {
                rates[nr++] = (double)s[i].records * 1000.0 / (double)s[i].processing_ms;
            }
        }
        qsort(rates, nr, sizeof(*rates), cmp_double);
        ph->seen_capacity = nr ? rates[nr / 2] : NAN;
        for (size_t k = ph->from; k < ph->to && ph->settle < 0; k++) {
            bool all = true;
            for (size_t j = k; j < ph->to && all; j++) {
                all = within(&s[j], ph->capacity, batch_ms) && s[j].sched_ms < 2 * batch_ms;
            }
            if (all) {
                ph->settle = (int)(k - ph->from + 1);
                double sum = 0;
                for (size_t j = k; j < ph->to; j++) {
                    sum += ingest_of(&s[j], batch_ms) / ph->capacity;
                    ph->max_sched_after =
                        s[j].sched_ms > ph->max_sched_after ? s[j].sched_ms : ph->max_sched_after;
                }
                ph->ingest_after = sum / (double)(ph->to - k);
            }
        }
    }
    return v;
}

static void write_csv(const run *r, const char *dir, int64_t batch_ms, int64_t first_ms,
                      const sample *ideal, size_t nideal)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/backpressure_%s_%c.csv", dir, variant_names[r->v], r->id);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    fprintf(f, "batch,t_s,records,ingest_rate,rate_limit,capacity,processing_ms,"
               "scheduling_delay_ms,ideal_ingest_rate,ideal_scheduling_delay_ms,drain\n");
    size_t first = 0;
    while (first < r->n && r->s[first].records == 0) {
        first++;
    }
    int64_t t0 = r->n ? r->s[0].batch_time : 0;
    for (size_t i = 0; i < r->n; i++) {
        const sample *s = &r->s[i];
        double c = capacity_at(r, s->batch_time, first_ms);
        fprintf(f, "%zu,%.3f,%" PRIu64 ",%.1f,%.1f,", i + 1, (double)(s->batch_time - t0) / 1000.0,
                s->records, ingest_of(s, batch_ms), s->rate_limit);
        if (isinf(c)) {
            fprintf(f, "NaN,");
        } else {
            fprintf(f, "%.1f,", c);
        }
        fprintf(f, "%" PRId64 ",%" PRId64 ",", s->processing_ms, s->sched_ms);
        /* The ideal loop's batch k lines up with the k-th batch that had records. */
        if (i >= first && i - first < nideal) {
            const sample *m = &ideal[i - first];
            fprintf(f, "%.1f,%" PRId64 ",", ingest_of(m, batch_ms), m->sched_ms);
        } else {
            fprintf(f, "NaN,NaN,");
        }
        /* 1: processed once the cost had dropped to 0, after the measured phases. */
        fprintf(f, "%d\n", isinf(c) || (first_ms && s->start_ms >= first_ms + r->offer_ms));
    }
    fclose(f);
}

/* ==== Main ==== */

static void usage(void)
{
    fprintf(stderr, "usage: backpressure [--variants tcp,kafka,kafka_receiver] [--cost-us N > 0] "
                    "[--batch-ms N >= 100] [--out DIR] [--brokers HOST:PORT] [--pid P,I,D] "
                    "[--clock wall|cpu] [--strict] [--ideal-only]\n");
    exit(2);
}

static char *default_brokers(void)
{
    static char buf[256];
    if (getenv("KAFKA_BOOTSTRAP") && *getenv("KAFKA_BOOTSTRAP")) {
        snprintf(buf, sizeof(buf), "%s", getenv("KAFKA_BOOTSTRAP"));
        return buf;
    }
    char path[512];
    const char *state = getenv("SLUICE_STATE") ? getenv("SLUICE_STATE") : "/tmp/sluice-infra";
    snprintf(path, sizeof(path), "%s/kafka/bootstrap", state);
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    char *ok = fgets(buf, sizeof(buf), f);
    fclose(f);
    if (!ok) {
        return NULL;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] ? buf : NULL;
}

typedef struct result {
    run *r;
    verdict v, ideal;
    bool ran;
} result;

static void fmt_int(char *buf, size_t size, int k)
{
    if (k < 0) {
        snprintf(buf, size, "never");
    } else {
        snprintf(buf, size, "%d", k);
    }
}

int main(int argc, char **argv)
{
    int64_t cost_us = 50, batch_ms = 1000;
    const char *outdir = "bench/out", *variants = "tcp,kafka,kafka_receiver";
    char *brokers = NULL;
    double pid[3] = {1.0, 0.2, 0.0};
    bool strict = false, ideal_only = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--strict") == 0 || strcmp(a, "--ideal-only") == 0) {
            strict = strict || a[2] == 's';
            ideal_only = ideal_only || a[2] == 'i';
            continue;
        }
        if (!val) {
            usage();
        }
        i++;
        if (strcmp(a, "--clock") == 0) {
            if (strcmp(val, "wall") != 0 && strcmp(val, "cpu") != 0) {
                usage();
            }
            wall_clock_burn = strcmp(val, "wall") == 0;
        } else if (strcmp(a, "--variants") == 0) {
            variants = val;
        } else if (strcmp(a, "--cost-us") == 0) {
            cost_us = atoll(val);
        } else if (strcmp(a, "--batch-ms") == 0) {
            batch_ms = atoll(val);
        } else if (strcmp(a, "--out") == 0) {
            outdir = val;
        } else if (strcmp(a, "--brokers") == 0) {
            brokers = (char *)val;
        } else if (strcmp(a, "--pid") == 0) {
            if (sscanf(val, "%lf,%lf,%lf", &pid[0], &pid[1], &pid[2]) != 3) {
                usage();
            }
        } else {
            usage();
        }
    }
    if (cost_us <= 0 || batch_ms < 100 || pid[0] < 0 || pid[1] < 0 || pid[2] < 0) {
        usage();
    }
    bool want[V_COUNT] = {false};
    char *vl = strdup(variants), *save = NULL;
    for (char *t = strtok_r(vl, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < V_COUNT && strcmp(t, variant_names[k]) != 0) {
            k++;
        }
        if (k == V_COUNT) {
            usage();
        }
        want[k] = true;
    }
    free(vl);
    for (int k = V_KAFKA; k <= V_KAFKA_RCV; k++) {
#ifndef SLUICE_WITH_KAFKA
        if (want[k]) {
            printf("%s variant skipped: built without the Kafka connector\n", variant_names[k]);
            want[k] = false;
        }
#endif
        if (want[k] && !brokers && !(brokers = default_brokers())) {
            printf("%s variant skipped: no broker (--brokers, $KAFKA_BOOTSTRAP or "
                   "tests/infra/kafka.sh start)\n",
                   variant_names[k]);
            want[k] = false;
        }
    }
    sl_set_log_level(SL_LOG_WARN);
    double c = 1e6 / (double)cost_us, bs = (double)batch_ms / 1000.0;
    int64_t phase_ms = (int64_t)llround(PHASE_BATCHES * bs * 1000);
    printf("Backpressure: source -> burn %" PRId64 " us/record (%s) -> count, 1 worker, batch "
           "%" PRId64 " ms, block 100 ms; capacity C = %.0f records/s, offered 3C = %.0f "
           "records/s; PID %.2g/%.2g/%.2g (proportional/integral/derivative), min_rate 100\n\n",
           cost_us, wall_clock_burn ? "paced on the wall clock" : "thread CPU time", batch_ms, c,
           3 * c, pid[0], pid[1], pid[2]);

    static run runs[V_COUNT][3];
    static result res[V_COUNT][3];
    int exit_code = 0;
    for (int v = 0; v < V_COUNT; v++) {
        if (!want[v]) {
            continue;
        }
        run *rv = runs[v];
        int64_t a_offer = (int64_t)llround(16 * bs * 1000);
        rv[0] = (run){.id = 'a',
                      .title = v == V_KAFKA ? "a) no backpressure, no cap" : "a) no backpressure",
                      .steps = {{a_offer, 0}},
                      .nsteps = 1,
                      .offer_ms = a_offer};
        rv[1] = (run){.id = 'b',
                      .title = "b) backpressure, initial C/2",
                      .backpressure = true,
                      .initial_rate = c / 2,
                      .steps = {{phase_ms, 0}},
                      .nsteps = 1,
                      .offer_ms = phase_ms};
        rv[2] =
            (run){.id = 'c',
                  .title = "c) C -> C/2 -> C",
                  .backpressure = true,
                  .initial_rate = c / 2,
                  .steps = {{phase_ms, 2 * cost_us}, {2 * phase_ms, cost_us}, {3 * phase_ms, 0}},
                  .nsteps = 3,
                  .offer_ms = 3 * phase_ms};
        printf("== %s: %s\n\n", variant_names[v],
               v == V_TCP     ? "TCP listen source (receiver), a sender paced at 3C"
               : v == V_KAFKA ? "Kafka direct source, 4 partitions (lag 1:2:3:4), a backlog of "
                                "2 batch intervals at 3C, then fed at 3C"
                              : "Kafka receiver (consumer group, write-ahead log), the same "
                                "topic, backlog and feed");
        for (int i = 0; i < 3; i++) {
            run *r = &rv[i];
            r->v = (variant)v;
            r->cost_us = cost_us;
            memcpy(r->pid, pid, sizeof(pid));
            r->brokers = brokers;
            r->prefill = v != V_TCP ? (uint64_t)(3 * c * 2 * bs) : 0;
            printf("%s: offered at 3C for %.0f s after the first record, then the cost drops to "
                   "0 (drain)\n",
                   r->title, (double)r->offer_ms / 1000.0);
            fflush(stdout);
            if (ideal_only) {
                if (r->backpressure) {
                    static sample ideal[MAX_BATCHES];
                    int64_t ideal_first = 0;
                    size_t nideal = ideal_run(r, batch_ms, ideal, MAX_BATCHES, &ideal_first);
                    verdict iv = analyse(r, ideal, nideal, batch_ms, ideal_first);
                    for (size_t p = 0; p < iv.nphases; p++) {
                        printf("    ideal loop, phase C = %.0f: reach %d, settle %d, largest delay "
                               "%" PRId64 " ms, lowest ingest %.0f/s\n",
                               iv.ph[p].capacity, iv.ph[p].reach, iv.ph[p].settle,
                               iv.ph[p].max_sched, iv.ph[p].min_ingest);
                    }
                }
                continue;
            }
            double t = now_s();
            if (do_run(r, batch_ms) != 0) {
                fprintf(stderr, "%s %s: could not run\n", variant_names[v], r->title);
                exit_code = 1;
                continue;
            }
            int64_t first_ms = atomic_load(&r->first_ms);
            static sample ideal[MAX_BATCHES];
            size_t nideal = 0;
            int64_t ideal_first = 0;
            result *re = &res[v][i];
            re->r = r;
            re->ran = true;
            re->v = analyse(r, r->s, r->n, batch_ms, first_ms);
            if (r->backpressure) {
                nideal = ideal_run(r, batch_ms, ideal, MAX_BATCHES, &ideal_first);
                re->ideal = analyse(r, ideal, nideal, batch_ms, ideal_first);
            }
            write_csv(r, outdir, batch_ms, first_ms, ideal, nideal);
            printf("    %.1f s, %zu batches, sent %" PRIu64 ", at the sink %" PRIu64
                   ", CSV %s/backpressure_%s_%c.csv\n\n",
                   now_s() - t, r->n, atomic_load(&r->sent), r->processed, outdir, variant_names[v],
                   r->id);
        }
    }

    /* The table. */
    printf("%-14s %-28s %-9s %7s %6s %15s %9s %11s %9s %9s %7s  %s\n", "variant", "run", "phase",
           "C seen", "reach", "settle (ideal)", "ingest/C", "max delay", "sent", "at sink", "lost",
           "verdict");
    bool halving_strict_failed = false;
    for (int v = 0; v < V_COUNT; v++) {
        for (int i = 0; i < 3; i++) {
            result *re = &res[v][i];
            if (!re->ran) {
                continue;
            }
            run *r = re->r;
            uint64_t sent = atomic_load(&r->sent);
            int64_t lost = (int64_t)sent - (int64_t)r->processed;
            bool lossless = lost == 0 && r->duplicates == 0 && r->bad == 0 && !r->failed_setup;
            char lostbuf[32];
            snprintf(lostbuf, sizeof(lostbuf), "%" PRId64 "%s", lost, r->duplicates ? " dup" : "");
            if (!r->backpressure) {
                const verdict *vd = &re->v;
                bool grows = vd->last_sched > 4 * batch_ms && vd->last_sched >= vd->max_sched;
                bool ok = grows && lossless;
                exit_code |= !ok;
                char delay[48], first[48];
                snprintf(delay, sizeof(delay), "%" PRId64 "->%" PRId64 " ms", vd->first_sched,
                         vd->last_sched);
                snprintf(first, sizeof(first), "batch 1: %" PRIu64, vd->first_records);
                printf("%-14s %-28s %-9s %7s %6s %15s %9s %11s %9" PRIu64 " %9" PRIu64 " %7s  %s\n",
                       variant_names[v], r->title, "3C", "-", "-", first, "-", delay, sent,
                       r->processed, lostbuf,
                       ok          ? "ok (delay grows)"
                       : !lossless ? "FAILED (lost or repeated)"
                                   : "FAILED (delay does not grow)");
                continue;
            }
            for (size_t p = 0; p < re->v.nphases; p++) {
                const phase *ph = &re->v.ph[p];
                const phase *ip = p < re->ideal.nphases ? &re->ideal.ph[p] : NULL;
                bool halved = p > 0 && ph->capacity < re->v.ph[p - 1].capacity;
                bool ok;
                const char *why = "";
                if (halved) {
                    ok = ph->reach > 0 && ph->reach <= MAX_CONVERGE && ph->settle > 0 &&
                         (!ip || ip->settle < 0 || ph->settle <= ip->settle + 2);
                    bool strict_ok = ph->settle > 0 && ph->settle <= MAX_CONVERGE;
                    if (!strict_ok) {
                        halving_strict_failed = true;
                        why = " (settle > 10: see note)";
                        ok = ok && !strict;
                    }
                } else {
                    ok = ph->settle > 0 && ph->settle <= MAX_CONVERGE;
                }
                bool last = p + 1 == re->v.nphases;
                ok = ok && (!last || lossless);
                exit_code |= !ok;
                char phname[16], reach[16], settle[32], is[16], ing[16], sched[24];
                snprintf(phname, sizeof(phname), "%s%.0fk", halved ? "C/2 " : "C ",
                         ph->capacity / 1000);
                fmt_int(reach, sizeof(reach), ph->reach);
                fmt_int(is, sizeof(is), ip ? ip->settle : -1);
                fmt_int(settle, sizeof(settle), ph->settle);
                snprintf(settle + strlen(settle), sizeof(settle) - strlen(settle), " (%s)", is);
                if (ph->settle > 0) {
                    snprintf(ing, sizeof(ing), "%.2f", ph->ingest_after);
                    snprintf(sched, sizeof(sched), "%" PRId64 " ms", ph->max_sched_after);
                } else {
                    snprintf(ing, sizeof(ing), "-");
                    snprintf(sched, sizeof(sched), "(%" PRId64 " ms)", ph->max_sched);
                }
                char sent_s[24] = "", sink_s[24] = "", lost_s[32] = "";
                if (last) {
                    snprintf(sent_s, sizeof(sent_s), "%" PRIu64, sent);
                    snprintf(sink_s, sizeof(sink_s), "%" PRIu64, r->processed);
                    snprintf(lost_s, sizeof(lost_s), "%s", lostbuf);
                }
                char seen[16];
                snprintf(seen, sizeof(seen), "%.1fk", ph->seen_capacity / 1000);
                printf("%-14s %-28s %-9s %7s %6s %15s %9s %11s %9s %9s %7s  %s%s\n",
                       p == 0 ? variant_names[v] : "", p == 0 ? r->title : "", phname, seen, reach,
                       settle, ing, sched, sent_s, sink_s, lost_s,
                       ok                  ? "ok"
                       : last && !lossless ? "FAILED (lost or repeated)"
                                           : "FAILED",
                       why);
            }
        }
    }
    printf("\nreach: first batch of the phase whose ingest rate is within 10%% of the phase's "
           "capacity; settle: first batch from which the ingest rate stays within 10%% of it and "
           "the scheduling delay under %" PRId64 " ms until the phase ends (%d batches); ideal: "
           "the same estimator in a loop with an exact rate and no overhead. ingest/C and max "
           "delay: from settle on (in brackets: the phase's largest delay when it never "
           "settles). a): batch 1's records and the scheduling delay, first -> last offered "
           "batch. C seen: the median processing rate of the phase's batches (what the machine "
           "gave). lost = sent - at sink; 'dup': a record seen twice.\n",
           2 * batch_ms, PHASE_BATCHES);
    printf("Checks: a) the delay grows past 4 intervals; b) and the phases at C: settle <= %d; "
           "the halved phase: reach <= %d and settle <= ideal + 2%s; nothing lost or "
           "repeated.\n",
           MAX_CONVERGE, MAX_CONVERGE, strict ? " and settle <= 10 (--strict)" : "");
    if (halving_strict_failed) {
        printf("Note: after the capacity halves, the batches cut before the first slow one "
               "completes were taken at the old rate: about 3 intervals of work pile up. "
               "Spark's estimator then sets the rate to about processing_rate x (1 - integral "
               "x delay / interval), below C on purpose until the delay is worked off, so the "
               "ingest rate cannot stay within 10%% of C/2 while the delay drains: the ideal "
               "loop needs the settle figure in brackets.\n");
    }
    return exit_code;
}

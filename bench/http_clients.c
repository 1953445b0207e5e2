/* http_clients.c -- do many HTTP clients slow batches down? One run of a word count (the
 * generate source at a steady rate -> split words -> (word, 1) -> reduce_by_key sum) with
 * the status server on 127.0.0.1, in three kinds of phase:
 *   1. no client;
 *   2. CLIENTS threads hammering /api/v1/status and /metrics over keep-alive connections,
 *      at normal priority: on a 2-core machine their own CPU time competes with the engine
 *      too, so this is the worst case, clients and server on the pipeline's machine;
 *   3. the same clients at idle priority (SCHED_IDLE), standing for clients on other
 *      machines: what remains is the server's own cost.
 * The three alternate in ROUNDS rounds (SECONDS / ROUNDS each), so that a change of the
 * machine's load during the run weighs on all three alike. Prints the batches' processing
 * time (median, mean, p95) and scheduling delay per kind, the requests served per second,
 * and the ratios loaded / quiet.
 *
 *     bench/http_clients [CLIENTS] [SECONDS] [LINES_PER_S] [BATCH_MS] [ROUNDS]
 *     defaults: 50 clients, 15 s per kind, 300000 lines/s, 500 ms, 3 rounds */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

#define WARMUP_MS   2000
#define MAX_BATCHES 100000

typedef struct sample {
    int phase; /* 0 warm-up, 1 quiet, 2 loaded, 3 loaded by idle clients, 4 after */
    int64_t proc_ms, sched_ms;
    uint64_t records;
} sample;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sample samples[MAX_BATCHES];
static size_t nsamples;
static _Atomic int phase;
static _Atomic bool clients_stop;
static _Atomic uint64_t phase_requests[5], phase_failures[5];
static int http_port;
static _Atomic bool idle_clients;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==== The pipeline ==== */

static int split_words(const sl_record *in, sl_emitter *e, void *opaque)
{
    const char *s = in->value, *end = in->value + in->value_len;
    while (s < end) {
        while (s < end && *s == ' ') {
            s++;
        }
        const char *w = s;
        while (s < end && *s != ' ') {
            s++;
        }
        if (s > w) {
            sl_record r = {
                .key = w, .key_len = (uint32_t)(s - w), .value = w, .value_len = (uint32_t)(s - w)};
            sl_record_set_int(&r, 1);
            int rc = sl_emit(e, &r);
            if (rc != SL_OK) {
                return rc;
            }
        }
    }
    return SL_OK;
}

static int count_result(const sl_dataset *ds, int64_t t, void *opaque)
{
    return SL_OK;
}

static void on_batch(const sl_batch_info *info, void *opaque)
{
    pthread_mutex_lock(&lock);
    if (nsamples < MAX_BATCHES) {
        samples[nsamples++] = (sample){.phase = atomic_load(&phase),
                                       .proc_ms = info->processing_time,
                                       .sched_ms = info->scheduling_delay,
                                       .records = info->records};
    }
    pthread_mutex_unlock(&lock);
}

/* ==== The clients ==== */

static int client_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Sends one request on a kept-alive connection and reads the whole answer. Returns the
 * status, or 0 when the connection broke. */
static int client_request(int fd, const char *path, char *buf, size_t size)
{
    char req[256];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        return 0;
    }
    size_t got = 0;
    char *body = NULL;
    long length = -1;
    for (;;) {
        if (got + 1 >= size) {
            return 0;
        }
        ssize_t r = recv(fd, buf + got, size - got - 1, 0);
        if (r <= 0) {
            return 0;
        }
        got += (size_t)r;
        buf[got] = '\0';
        if (!body && (body = strstr(buf, "\r\n\r\n")) != NULL) {
            body += 4;
            const char *cl = strcasestr(buf, "Content-Length:");
            length = cl ? strtol(cl + 15, NULL, 10) : 0;
        }
        if (body && (long)(got - (size_t)(body - buf)) >= length) {
            return atoi(buf + 9);
        }
    }
}

static void *client_main(void *arg)
{
    if (atomic_load(&idle_clients)) {
        struct sched_param sp = {0};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
    }
    size_t size = 1 << 20;
    char *buf = malloc(size);
    int fd = -1;
    for (uint64_t i = 0; !atomic_load(&clients_stop); i++) {
        if (fd < 0 && (fd = client_connect()) < 0) {
            atomic_fetch_add(&phase_failures[atomic_load(&phase)], 1);
            usleep(10000);
            continue;
        }
        int status = client_request(fd, i % 2 ? "/metrics" : "/api/v1/status", buf, size);
        if (status == 200) {
            atomic_fetch_add(&phase_requests[atomic_load(&phase)], 1);
        } else {
            atomic_fetch_add(&phase_failures[atomic_load(&phase)], 1);
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return NULL;
}

/* ==== Figures ==== */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct figures {
    size_t n;
    double median, mean, p95, sched_mean;
    int64_t sched_max;
    uint64_t records;
} figures;

static figures phase_figures(int ph)
{
    figures f = {0};
    int64_t *v = calloc(MAX_BATCHES, sizeof(*v));
    double sum = 0, ssum = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nsamples; i++) {
        if (samples[i].phase != ph) {
            continue;
        }
        v[f.n++] = samples[i].proc_ms;
        sum += (double)samples[i].proc_ms;
        ssum += (double)samples[i].sched_ms;
        f.sched_max = samples[i].sched_ms > f.sched_max ? samples[i].sched_ms : f.sched_max;
        f.records += samples[i].records;
    }
    pthread_mutex_unlock(&lock);
    if (f.n) {
        qsort(v, f.n, sizeof(*v), cmp_i64);
        f.median = f.n % 2 ? (double)v[f.n / 2] : (v[f.n / 2 - 1] + v[f.n / 2]) / 2.0;
        f.mean = sum / (double)f.n;
        f.p95 = (double)v[(size_t)((double)(f.n - 1) * 0.95)];
        f.sched_mean = ssum / (double)f.n;
    }
    free(v);
    return f;
}

static void print_figures(const char *name, figures f, double rps)
{
    printf("%-30s %7zu %10" PRIu64 " %9.1f %9.1f %9.1f %10.1f %9" PRId64 " %9.0f\n", name, f.n,
           f.records, f.median, f.mean, f.p95, f.sched_mean, f.sched_max, rps);
}

int main(int argc, char **argv)
{
    int clients = argc > 1 ? atoi(argv[1]) : 50;
    int seconds = argc > 2 ? atoi(argv[2]) : 15;
    double rate = argc > 3 ? atof(argv[3]) : 300000;
    int batch_ms = argc > 4 ? atoi(argv[4]) : 500;
    int rounds = argc > 5 ? atoi(argv[5]) : 3;
    if (clients < 1 || seconds < 1 || rate <= 0 || batch_ms < 10 || rounds < 1) {
        fprintf(stderr,
                "usage: http_clients [CLIENTS] [SECONDS] [LINES_PER_S] [BATCH_MS] [ROUNDS]\n");
        return 2;
    }
    sl_set_log_level(SL_LOG_WARN);
    char err[512], rs[32];
    sl_context_conf conf = {.name = "http_bench", .batch_interval_ms = batch_ms, .workers = 2};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "context: %s\n", err);
        return 1;
    }
    sl_options *o = sl_options_new();
    snprintf(rs, sizeof(rs), "%.0f", rate);
    sl_options_set(o, "rate", rs);
    sl_stream *lines = sl_context_add_source(ctx, "generate", "lines", o, err, sizeof(err));
    sl_options_destroy(o);
    sl_stream *counts = sl_stream_reduce_by_key(sl_stream_flat_map(lines, split_words, NULL),
                                                sl_reduce_sum, NULL, 0);
    if (!counts || sl_stream_foreach_batch(counts, count_result, NULL) != SL_OK) {
        fprintf(stderr, "pipeline: %s\n", lines ? "refused" : err);
        sl_context_destroy(ctx);
        return 1;
    }
    sl_context_add_batch_listener(ctx, on_batch, NULL);
    sl_http_server *srv =
        sl_http_start(ctx, &(sl_http_conf){.listen = "127.0.0.1:0"}, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "http: %s\n", err);
        sl_context_destroy(ctx);
        return 1;
    }
    http_port = sl_http_port(srv);
    if (sl_context_start(ctx) != SL_OK) {
        sl_http_stop(srv);
        sl_context_destroy(ctx);
        return 1;
    }
    printf("http_clients: %d clients, %d s per kind of phase in %d rounds, %.0f lines/s (~6 "
           "words each), batches of %d ms, 2 workers, %ld cores, server at %s\n",
           clients, seconds, rounds, rate, batch_ms, sysconf(_SC_NPROCESSORS_ONLN),
           sl_http_url(srv));
    fflush(stdout);

    usleep(WARMUP_MS * 1000);
    useconds_t slice = (useconds_t)((double)seconds / rounds * 1e6);
    double loaded_s[2] = {0, 0};
    pthread_t *th = calloc((size_t)clients, sizeof(*th));
    for (int round = 0; round < rounds; round++) {
        atomic_store(&phase, 1);
        usleep(slice);
        for (int k = 0; k < 2; k++) {
            atomic_store(&idle_clients, k == 1);
            atomic_store(&clients_stop, false);
            atomic_store(&phase, 2 + k);
            int64_t t0 = now_ms();
            for (int i = 0; i < clients; i++) {
                pthread_create(&th[i], NULL, client_main, NULL);
            }
            usleep(slice);
            atomic_store(&clients_stop, true);
            for (int i = 0; i < clients; i++) {
                pthread_join(th[i], NULL);
            }
            loaded_s[k] += (double)(now_ms() - t0) / 1000.0;
        }
    }
    atomic_store(&phase, 4);
    free(th);
    sl_context_stop(ctx, false);
    sl_http_stop(srv);
    sl_context_destroy(ctx);

    figures quiet = phase_figures(1);
    printf("\n%-30s %7s %10s %9s %9s %9s %10s %9s %9s\n", "phase", "batches", "records", "proc p50",
           "proc mean", "proc p95", "sched mean", "sched max", "requests");
    printf("%-30s %7s %10s %9s %9s %9s %10s %9s %9s\n", "", "", "", "(ms)", "(ms)", "(ms)", "(ms)",
           "(ms)", "(per s)");
    print_figures("no client", quiet, 0);
    for (int k = 0; k < 2; k++) {
        figures f = phase_figures(2 + k);
        char name[64];
        snprintf(name, sizeof(name), "%d clients, %s", clients,
                 k ? "idle priority" : "normal priority");
        print_figures(name, f, (double)atomic_load(&phase_requests[2 + k]) / loaded_s[k]);
    }
    printf("\n");
    for (int k = 0; k < 2; k++) {
        figures f = phase_figures(2 + k);
        printf("%s: %" PRIu64 " requests answered 200, %" PRIu64 " failed; processing time "
               "loaded / quiet: ",
               k ? "idle-priority clients" : "normal-priority clients",
               atomic_load(&phase_requests[2 + k]), atomic_load(&phase_failures[2 + k]));
        if (quiet.n && f.n && quiet.median > 0 && quiet.mean > 0 && quiet.p95 > 0) {
            printf("median %.2f, mean %.2f, p95 %.2f\n", f.median / quiet.median,
                   f.mean / quiet.mean, f.p95 / quiet.p95);
        } else {
            printf("n/a (the quiet batches take 0 ms: raise LINES_PER_S)\n");
        }
    }
    return 0;
}

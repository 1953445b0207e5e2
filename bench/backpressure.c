/* backpressure.c -- the PID rate estimator against a pipeline of known capacity.
 *
 * Pipeline: TCP listen source -> burn (a fixed CPU time per record, sl_yamlops_burn) ->
 * a sink that counts records; 1 worker, so the capacity is C = 1 / cost records/s. A
 * sender thread writes N numbered lines to the source's port, paced at 3C, then stops;
 * the run ends when the sink has counted all N records (nothing may be lost: a throttled
 * TCP receiver stops reading its socket and TCP flow control slows the sender).
 *
 *   a) no backpressure: the scheduling delay grows without bound (printed as it grows);
 *   b) backpressure, initial_rate C/2: within 10 batches the ingest rate is within 10% of
 *      C, and the scheduling delay stays under 2 batch intervals afterwards;
 *   c) backpressure, capacity halved then doubled mid-run (a burn schedule): the ingest
 *      rate follows within 10 batches.
 *
 * Per run: a table line, and the per-batch time series as CSV in OUTDIR/backpressure_X.csv
 * (bench/backpressure.sh plots them with gnuplot). Exit status 1 when a check fails.
 *
 *     bench/backpressure [COST_US] [BATCH_MS] [OUTDIR]    defaults: 50 us, 1000 ms, bench/out
 */
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

#include "sl_yamlops.h"
#include "sluice.h"

#define MAX_BATCHES  1024
#define RUN_TIMEOUT  120.0 /* s */
#define LINE_LEN     9     /* "%08u\n" */
#define CONVERGE_TOL 0.10
#define MAX_CONVERGE 10

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

/* ==== Sender: N numbered lines at a paced rate ==== */

typedef struct sender {
    int port;
    uint64_t lines;
    double rate; /* lines/s */
    double done; /* now_s() when the last byte was written */
} sender;

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

static void *sender_main(void *arg)
{
    sender *s = arg;
    int fd = connect_retry(s->port);
    if (fd < 0) {
        perror("connect");
        return NULL;
    }
    char *buf = malloc(65536 * LINE_LEN);
    uint64_t sent = 0;
    double start = now_s();
    while (sent < s->lines) {
        uint64_t due = (uint64_t)((now_s() - start) * s->rate);
        if (due > s->lines) {
            due = s->lines;
        }
        while (sent < due) {
            uint64_t n = due - sent < 65536 ? due - sent : 65536;
            char *p = buf;
            for (uint64_t i = 0; i < n; i++) {
                p += snprintf(p, LINE_LEN + 1, "%08" PRIu64 "\n", (sent + i) % 100000000);
            }
            size_t len = (size_t)(p - buf);
            for (size_t off = 0; off < len;) {
                ssize_t w = write(fd, buf + off, len - off);
                if (w <= 0) {
                    perror("write");
                    goto out;
                }
                off += (size_t)w;
            }
            sent += n;
        }
        usleep(5000);
    }
out:
    s->done = now_s();
    free(buf);
    close(fd);
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

/* ==== One run ==== */

typedef struct sample {
    int64_t batch_time; /* ms */
    uint64_t records;
    double rate_limit; /* records/s in force when the batch was cut, 0: none */
    int64_t processing_ms, sched_ms;
} sample;

typedef struct run {
    const char *name, *title;
    bool backpressure;
    double initial_rate;
    int64_t cost_us;
    sl_yamlops_burn_step steps[4];
    size_t nsteps;
    uint64_t lines;
    /* results */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sample s[MAX_BATCHES];
    size_t n;
    uint64_t processed;       /* counted at the sink */
    uint64_t received;        /* records of completed batches */
    _Atomic int64_t first_ms; /* wall ms of the first record the burn saw */
    sl_yamlop *burn;
    bool print_growth;
} run;

static int burn_and_note(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    run *r = opaque;
    if (atomic_load_explicit(&r->first_ms, memory_order_relaxed) == 0) {
        int64_t zero = 0;
        atomic_compare_exchange_strong(&r->first_ms, &zero, wall_ms());
    }
    return sl_yamlops_burn(in, out, e, r->burn);
}

static int count_sink(const sl_dataset *ds, int64_t t, void *opaque)
{
    (void)t;
    run *r = opaque;
    uint64_t n = 0;
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t k;
        sl_dataset_partition(ds, p, &k);
        n += k;
    }
    pthread_mutex_lock(&r->lock);
    r->processed += n;
    pthread_mutex_unlock(&r->lock);
    return SL_OK;
}

static void on_batch(const sl_batch_info *info, void *opaque)
{
    run *r = opaque;
    pthread_mutex_lock(&r->lock);
    if (r->n < MAX_BATCHES) {
        sample *s = &r->s[r->n++];
        s->batch_time = info->batch_time;
        s->records = info->records;
        s->rate_limit = info->ninputs > 0 ? info->inputs[0].rate : 0;
        s->processing_ms = info->processing_time;
        s->sched_ms = info->scheduling_delay;
        if (r->print_growth && info->records > 0) {
            printf("    batch %3zu: %6" PRIu64 " records, processing %5" PRId64
                   " ms, scheduling delay %6" PRId64 " ms\n",
                   r->n, info->records, info->processing_time, info->scheduling_delay);
            fflush(stdout);
        }
    }
    r->received += info->records;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static int do_run(run *r, int64_t batch_ms)
{
    char err[256], portstr[16];
    int port = free_port();
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    atomic_init(&r->first_ms, 0);
    r->burn = sl_yamlops_burn_new(r->cost_us, r->steps, r->nsteps, err, sizeof(err));
    sl_context_conf conf = {.name = "backpressure",
                            .batch_interval_ms = batch_ms,
                            .workers = 1,
                            .block_interval_ms = 100};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    if (!ctx || !r->burn) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    sl_backpressure_conf bp;
    sl_backpressure_defaults(&bp);
    bp.enabled = r->backpressure;
    bp.initial_rate = r->initial_rate;
    if (sl_context_set_backpressure(ctx, &bp, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    sl_options *o = sl_options_new();
    snprintf(portstr, sizeof(portstr), "%d", port);
    sl_options_set(o, "mode", "listen");
    sl_options_set(o, "host", "127.0.0.1");
    sl_options_set(o, "port", portstr);
    sl_stream *in = sl_context_add_source(ctx, "tcp", "lines", o, err, sizeof(err));
    sl_options_destroy(o);
    if (!in) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    sl_stream_foreach_batch(sl_stream_map(in, burn_and_note, r), count_sink, r);
    sl_context_add_batch_listener(ctx, on_batch, r);
    if (sl_context_start(ctx) != SL_OK) {
        return -1;
    }
    double capacity = 1e6 / (double)r->cost_us;
    sender snd = {.port = port, .lines = r->lines, .rate = 3 * capacity};
    pthread_t th;
    double start = now_s();
    pthread_create(&th, NULL, sender_main, &snd);
    pthread_mutex_lock(&r->lock);
    while (r->processed < r->lines && now_s() - start < RUN_TIMEOUT) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    pthread_join(th, NULL);
    sl_context_stop(ctx, true);
    sl_context_await_termination(ctx);
    sl_context_destroy(ctx);
    sl_yamlops_destroy(r->burn);
    return 0;
}

/* ==== Analysis ==== */

/* The cost in force for a batch cut at batch_time: the schedule runs from the first record. */
static double capacity_at(const run *r, int64_t batch_time, int64_t first_ms)
{
    int64_t elapsed = first_ms ? batch_time - first_ms : 0;
    int64_t us = r->cost_us;
    for (size_t i = 0; i < r->nsteps && elapsed >= r->steps[i].after_ms; i++) {
        us = r->steps[i].per_record_us;
    }
    return 1e6 / (double)us;
}

typedef struct verdict {
    size_t batches;    /* non-empty */
    double final_rate; /* ingest of the last full batch */
    int converge[3];   /* batches to converge per phase, -1: never */
    size_t nphases;
    int64_t max_sched_after; /* after convergence (b, c) or overall (a) */
    int64_t first_sched, last_sched;
    bool ok;
} verdict;

static void write_csv(const run *r, const char *dir, int64_t batch_ms, int64_t first_ms)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/backpressure_%s.csv", dir, r->name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    fprintf(f, "batch,t_s,records,ingest_rate,rate_limit,capacity,processing_ms,"
               "scheduling_delay_ms\n");
    int64_t t0 = r->n ? r->s[0].batch_time : 0;
    for (size_t i = 0; i < r->n; i++) {
        const sample *s = &r->s[i];
        fprintf(f, "%zu,%.3f,%" PRIu64 ",%.1f,%.1f,%.1f,%" PRId64 ",%" PRId64 "\n", i + 1,
                (double)(s->batch_time - t0) / 1000.0, s->records,
                (double)s->records * 1000.0 / (double)batch_ms, s->rate_limit,
                capacity_at(r, s->batch_time, first_ms), s->processing_ms, s->sched_ms);
    }
    fclose(f);
}

/* Converged at batch k of a phase [from, to): every ingest rate from k to the phase's end
 * is within CONVERGE_TOL of the capacity. Returns k - from + 1 (batches), or -1. */
static int converge_in(const run *r, size_t from, size_t to, int64_t batch_ms, int64_t first_ms)
{
    for (size_t k = from; k < to; k++) {
        bool all = true;
        for (size_t j = k; j < to && all; j++) {
            double c = capacity_at(r, r->s[j].batch_time, first_ms);
            double ingest = (double)r->s[j].records * 1000.0 / (double)batch_ms;
            all = fabs(ingest - c) <= CONVERGE_TOL * c;
        }
        if (all) {
            return (int)(k - from + 1);
        }
    }
    return -1;
}

static verdict analyse(const run *r, int64_t batch_ms, int64_t first_ms)
{
    verdict v = {.ok = true};
    /* Batches with records; the last one is partial (the sender ran out), so the checks use
     * [first, last) where last is the final non-empty batch. */
    size_t first = r->n, last = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->s[i].records > 0) {
            first = first < i ? first : i;
            last = i;
            v.batches++;
        }
    }
    if (v.batches < 3) {
        v.ok = false;
        return v;
    }
    v.final_rate = (double)r->s[last - 1].records * 1000.0 / (double)batch_ms;
    v.first_sched = r->s[first].sched_ms;
    v.last_sched = 0;
    for (size_t i = first; i <= last; i++) {
        v.last_sched = r->s[i].sched_ms > v.last_sched ? r->s[i].sched_ms : v.last_sched;
    }
    if (!r->backpressure) {
        v.max_sched_after = v.last_sched;
        /* Unbounded growth: the delay grows from batch to batch while input keeps coming. */
        v.ok = v.last_sched > 4 * batch_ms;
        return v;
    }
    /* Phases: boundaries where the capacity changes. */
    size_t bounds[5] = {first};
    size_t nb = 1;
    for (size_t i = first + 1; i < last && nb < 4; i++) {
        if (capacity_at(r, r->s[i].batch_time, first_ms) !=
            capacity_at(r, r->s[i - 1].batch_time, first_ms)) {
            bounds[nb++] = i;
        }
    }
    bounds[nb] = last;
    v.nphases = nb;
    v.max_sched_after = 0;
    for (size_t ph = 0; ph < nb && ph < 3; ph++) {
        int k = converge_in(r, bounds[ph], bounds[ph + 1], batch_ms, first_ms);
        v.converge[ph] = k;
        if (k < 0 || k > MAX_CONVERGE) {
            v.ok = false;
        }
        if (ph == 0 && k > 0) {
            for (size_t i = bounds[0] + (size_t)k - 1; i <= last; i++) {
                if (r->s[i].sched_ms > v.max_sched_after) {
                    v.max_sched_after = r->s[i].sched_ms;
                }
            }
        }
    }
    if (v.converge[0] < 0 || v.max_sched_after >= 2 * batch_ms) {
        v.ok = false;
    }
    return v;
}

int main(int argc, char **argv)
{
    int64_t cost_us = argc > 1 ? atoll(argv[1]) : 50;
    int64_t batch_ms = argc > 2 ? atoll(argv[2]) : 1000;
    const char *outdir = argc > 3 ? argv[3] : "bench/out";
    if (cost_us <= 0 || batch_ms < 100) {
        fprintf(stderr, "usage: backpressure [COST_US > 0] [BATCH_MS >= 100] [OUTDIR]\n");
        return 2;
    }
    sl_set_log_level(SL_LOG_WARN);
    double c = 1e6 / (double)cost_us;
    double bs = (double)batch_ms / 1000.0;
    printf("Backpressure: TCP listen source -> burn %" PRId64 " us/record -> count, 1 worker, "
           "batch %" PRId64 " ms, block 100 ms; capacity C = %.0f records/s, fed at 3C = %.0f "
           "records/s\n\n",
           cost_us, batch_ms, c, 3 * c);

    static run runs[3];
    runs[0] = (run){.name = "a",
                    .title = "a) no backpressure",
                    .cost_us = cost_us,
                    .lines = (uint64_t)(3 * c * 6),
                    .print_growth = true};
    runs[1] = (run){.name = "b",
                    .title = "b) backpressure, initial C/2",
                    .backpressure = true,
                    .initial_rate = c / 2,
                    .cost_us = cost_us,
                    .lines = (uint64_t)(c * 20)};
    /* c: C for 12 s, C/2 for 12 s, then C again (from the first record). */
    int64_t ph = (int64_t)(12 * bs) * 1000;
    ph = ph < 6000 ? 6000 : ph;
    runs[2] = (run){.name = "c",
                    .title = "c) capacity C -> C/2 -> C",
                    .backpressure = true,
                    .initial_rate = c / 2,
                    .cost_us = cost_us,
                    .steps = {{ph, 2 * cost_us}, {2 * ph, cost_us}},
                    .nsteps = 2,
                    .lines = (uint64_t)(c * (double)ph / 1000.0 * 2.5 + c * 4)};
    int exit_code = 0;
    verdict vs[3];
    for (int i = 0; i < 3; i++) {
        run *r = &runs[i];
        printf("%s: %" PRIu64 " records\n", r->title, r->lines);
        fflush(stdout);
        double t = now_s();
        if (do_run(r, batch_ms) != 0) {
            return 1;
        }
        int64_t first_ms = atomic_load(&r->first_ms);
        write_csv(r, outdir, batch_ms, first_ms);
        vs[i] = analyse(r, batch_ms, first_ms);
        printf("    %.1f s, %zu batches, CSV %s/backpressure_%s.csv\n\n", now_s() - t, r->n, outdir,
               r->name);
    }
    printf("%-30s %7s %11s %10s %15s %15s %9s %9s %s\n", "run", "batches", "final rate", "final/C",
           "max sched after", "to converge", "sent", "at sink", "verdict");
    for (int i = 0; i < 3; i++) {
        run *r = &runs[i];
        verdict *v = &vs[i];
        char conv[48] = "-", sched[32];
        if (r->backpressure) {
            char *p = conv;
            for (size_t k = 0; k < v->nphases && k < 3; k++) {
                p += snprintf(p, sizeof(conv) - (size_t)(p - conv), "%s%d", k ? "/" : "",
                              v->converge[k]);
            }
            snprintf(sched, sizeof(sched), "%" PRId64 " ms", v->max_sched_after);
        } else {
            snprintf(sched, sizeof(sched), "%" PRId64 "->%" PRId64 " ms", v->first_sched,
                     v->last_sched);
        }
        bool lossless = r->processed == r->lines;
        bool ok = v->ok && lossless;
        exit_code |= !ok;
        printf("%-30s %7zu %11.0f %10.2f %15s %15s %9" PRIu64 " %9" PRIu64 " %s\n", r->title,
               v->batches, v->final_rate, v->final_rate / c, sched, conv, r->lines, r->processed,
               ok         ? "ok"
               : lossless ? "FAILED"
                          : "FAILED (records lost)");
    }
    printf("\nfinal rate: ingest (records/s) of the last full batch; max sched after: the "
           "largest scheduling delay from convergence on (a: first -> largest), target under "
           "%" PRId64 " ms; to converge: batches until the ingest rate stays within 10%% of "
           "the capacity, per capacity phase (target <= %d).\n",
           2 * batch_ms, MAX_CONVERGE);
    return exit_code;
}

/* tcp_wordcount.c -- throughput of the whole pipeline: TCP listen source -> split words ->
 * (word, 1) -> reduce_by_key sum, on generated 10-word lines, with 1 and 2 workers.
 *
 * Each configuration runs in a child process so that its peak RSS is its own. A sender
 * thread writes LINES lines to the source's port as fast as the socket takes them; the
 * run ends when the batches have processed every line. The words counted must equal
 * 10 * LINES, or the run is reported as wrong.
 *
 * Baseline, measured in the same run: one thread that reads the same bytes from a socket
 * and counts words in an open-addressing table, the least a hand-written C program does.
 *
 *     bench/tcp_wordcount [LINES] [BATCH_MS]      defaults: 5000000 lines, 500 ms */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sluice.h"

#define WORDS_PER_LINE 10
#define VOCABULARY     10000
#define TEXT_LINES     100000 /* a text of this many lines is sent again and again */

typedef struct result {
    int ok;
    double seconds;
    uint64_t lines, words;
    int64_t max_sched_delay, max_proc_time, batches;
    long peak_rss_kib;
} result;

static char *text;
static size_t text_len;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Words of 3 to 9 letters with a skewed frequency, like prose. */
static void make_text(void)
{
    static char vocab[VOCABULARY][10];
    unsigned seed = 12345;
    for (int i = 0; i < VOCABULARY; i++) {
        seed = seed * 1103515245 + 12345;
        int len = 3 + (int)((seed >> 16) % 7);
        for (int j = 0; j < len; j++) {
            seed = seed * 1103515245 + 12345;
            vocab[i][j] = (char)('a' + (seed >> 16) % 26);
        }
        vocab[i][len] = '\0';
    }
    text = malloc((size_t)TEXT_LINES * WORDS_PER_LINE * 10 + TEXT_LINES);
    char *p = text;
    for (int l = 0; l < TEXT_LINES; l++) {
        for (int w = 0; w < WORDS_PER_LINE; w++) {
            seed = seed * 1103515245 + 12345;
            double u = (double)((seed >> 8) % 1000000) / 1e6;
            int k = (int)(u * u * u * VOCABULARY); /* skewed towards small indexes */
            size_t n = strlen(vocab[k]);
            memcpy(p, vocab[k], n);
            p += n;
            *p++ = w == WORDS_PER_LINE - 1 ? '\n' : ' ';
        }
    }
    text_len = (size_t)(p - text);
}

typedef struct sender {
    int port;
    uint64_t lines;
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
    uint64_t left = s->lines;
    while (left > 0) {
        size_t len = text_len;
        if (left < TEXT_LINES) { /* a prefix of whole lines */
            const char *q = text;
            for (uint64_t i = 0; i < left; i++) {
                q = memchr(q, '\n', text_len - (size_t)(q - text)) + 1;
            }
            len = (size_t)(q - text);
            left = 0;
        } else {
            left -= TEXT_LINES;
        }
        for (size_t off = 0; off < len;) {
            ssize_t n = write(fd, text + off, len - off);
            if (n <= 0) {
                perror("write");
                close(fd);
                return NULL;
            }
            off += (size_t)n;
        }
    }
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

/* ==== sluice ==== */

static int split_words(const sl_record *line, sl_emitter *out, void *opaque)
{
    const char *p = line->value, *end = p + line->value_len;
    while (p < end) {
        while (p < end && *p == ' ') {
            p++;
        }
        const char *start = p;
        while (p < end && *p != ' ') {
            p++;
        }
        if (p > start) {
            sl_record w = {
                .key = start, .key_len = (uint32_t)(p - start), .num_type = SL_NUM_INT, .num.i = 1};
            int rc = sl_emit(out, &w);
            if (rc != SL_OK) {
                return rc;
            }
        }
    }
    return SL_OK;
}

typedef struct progress {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t lines, words;
    int64_t max_sched, max_proc, batches;
    double end;
} progress;

static int count_words(const sl_dataset *ds, int64_t t, void *opaque)
{
    progress *pr = opaque;
    uint64_t w = 0;
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            w += (uint64_t)r[i].num.i;
        }
    }
    pthread_mutex_lock(&pr->lock);
    pr->words += w;
    pthread_mutex_unlock(&pr->lock);
    return SL_OK;
}

static void on_batch(const sl_batch_info *info, void *opaque)
{
    progress *pr = opaque;
    pthread_mutex_lock(&pr->lock);
    if (info->records) {
        pr->batches++;
        pr->max_sched =
            info->scheduling_delay > pr->max_sched ? info->scheduling_delay : pr->max_sched;
        pr->max_proc = info->processing_time > pr->max_proc ? info->processing_time : pr->max_proc;
    }
    pr->lines += info->records;
    pr->end = now_s();
    pthread_cond_broadcast(&pr->cond);
    pthread_mutex_unlock(&pr->lock);
}

static result run_sluice(int workers, uint64_t lines, int64_t batch_ms)
{
    result res = {0};
    int port = free_port();
    char err[256], portstr[16];
    sl_context_conf conf = {.name = "bench", .batch_interval_ms = batch_ms, .workers = workers};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    sl_options *o = sl_options_new();
    snprintf(portstr, sizeof(portstr), "%d", port);
    sl_options_set(o, "mode", "listen");
    sl_options_set(o, "host", "127.0.0.1");
    sl_options_set(o, "port", portstr);
    sl_stream *in = sl_context_add_source(ctx, "tcp", "lines", o, err, sizeof(err));
    sl_options_destroy(o);
    if (!in) {
        fprintf(stderr, "%s\n", err);
        return res;
    }
    progress pr = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    sl_stream *counts =
        sl_stream_reduce_by_key(sl_stream_flat_map(in, split_words, NULL), sl_reduce_sum, NULL, 0);
    sl_stream_foreach_batch(counts, count_words, &pr);
    sl_context_add_batch_listener(ctx, on_batch, &pr);
    if (sl_context_start(ctx) != SL_OK) {
        return res;
    }
    sender s = {.port = port, .lines = lines};
    pthread_t th;
    double start = now_s();
    pthread_create(&th, NULL, sender_main, &s);
    pthread_mutex_lock(&pr.lock);
    while (pr.lines < lines && now_s() - start < 300) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&pr.cond, &pr.lock, &ts);
    }
    pthread_mutex_unlock(&pr.lock);
    pthread_join(th, NULL);
    sl_context_stop(ctx, true);
    sl_context_await_termination(ctx);
    res.seconds = pr.end - start;
    res.lines = pr.lines;
    res.words = pr.words;
    res.max_sched_delay = pr.max_sched;
    res.max_proc_time = pr.max_proc;
    res.batches = pr.batches;
    res.ok = pr.lines == lines && pr.words == lines * WORDS_PER_LINE;
    sl_context_destroy(ctx);
    return res;
}

/* ==== Baseline: one thread, one socket, one hash table ==== */

typedef struct slot {
    uint64_t hash;
    uint32_t len;
    char word[12];
    uint64_t count;
} slot;

static result run_baseline(uint64_t lines)
{
    result res = {0};
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bind(lfd, (struct sockaddr *)&a, sizeof(a));
    socklen_t alen = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    listen(lfd, 1);
    sender s = {.port = ntohs(a.sin_port), .lines = lines};
    pthread_t th;
    double start = now_s();
    pthread_create(&th, NULL, sender_main, &s);
    int fd = accept(lfd, NULL, NULL);
    size_t nslots = 1 << 15;
    slot *tab = calloc(nslots, sizeof(*tab));
    char buf[65536 + 64];
    size_t have = 0;
    uint64_t words = 0, nl = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof(buf) - 64 - have);
        if (n <= 0) {
            break;
        }
        have += (size_t)n;
        char *p = buf, *end = buf + have;
        char *last_nl = memrchr(buf, '\n', have);
        if (!last_nl) {
            continue;
        }
        end = last_nl + 1;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\n')) {
                nl += *p == '\n';
                p++;
            }
            char *w = p;
            uint64_t h = 1469598103934665603ULL;
            while (p < end && *p != ' ' && *p != '\n') {
                h = (h ^ (unsigned char)*p++) * 1099511628211ULL;
            }
            uint32_t len = (uint32_t)(p - w);
            if (!len) {
                continue;
            }
            size_t i = h & (nslots - 1);
            while (tab[i].len &&
                   !(tab[i].hash == h && tab[i].len == len && memcmp(tab[i].word, w, len) == 0)) {
                i = (i + 1) & (nslots - 1);
            }
            if (!tab[i].len) {
                tab[i].hash = h;
                tab[i].len = len;
                memcpy(tab[i].word, w, len);
            }
            tab[i].count++;
            words++;
        }
        have = (size_t)(buf + have - end);
        memmove(buf, end, have);
    }
    res.seconds = now_s() - start;
    pthread_join(th, NULL);
    close(fd);
    close(lfd);
    free(tab);
    res.lines = nl;
    res.words = words;
    res.ok = nl == lines && words == lines * WORDS_PER_LINE;
    return res;
}

/* Runs fn in a child process, so that the peak RSS is that run's alone. */
static result in_child(int workers, uint64_t lines, int64_t batch_ms)
{
    int fds[2];
    result res = {0};
    if (pipe(fds) != 0) {
        return res;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        make_text();
        res = workers ? run_sluice(workers, lines, batch_ms) : run_baseline(lines);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        res.peak_rss_kib = ru.ru_maxrss;
        if (write(fds[1], &res, sizeof(res)) != sizeof(res)) {
            _exit(1);
        }
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], &res, sizeof(res)) != sizeof(res)) {
        res.ok = 0;
    }
    close(fds[0]);
    waitpid(pid, NULL, 0);
    return res;
}

int main(int argc, char **argv)
{
    uint64_t lines = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
    int64_t batch_ms = argc > 2 ? atoll(argv[2]) : 500;
    sl_set_log_level(SL_LOG_WARN);
    printf("TCP word count: %" PRIu64 " lines of %d words, %d-word vocabulary, batch %" PRId64
           " ms, %ld cores\n\n",
           lines, WORDS_PER_LINE, VOCABULARY, batch_ms, sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-22s %8s %12s %13s %9s %10s %10s %9s %s\n", "run", "seconds", "lines/s", "words/s",
           "batches", "max sched", "max proc", "peak RSS", "vs baseline");
    result base = in_child(0, lines, batch_ms);
    double base_rate = base.lines / base.seconds;
    printf("%-22s %8.2f %12.0f %13.0f %9s %10s %10s %6ld MiB %s\n", "baseline (1 thread C)",
           base.seconds, base_rate, base.words / base.seconds, "-", "-", "-",
           base.peak_rss_kib / 1024, base.ok ? "1.00" : "WRONG COUNT");
    int exit_code = base.ok ? 0 : 1;
    for (int workers = 1; workers <= 2; workers++) {
        result r = in_child(workers, lines, batch_ms);
        char name[32];
        snprintf(name, sizeof(name), "sluice, %d worker%s", workers, workers > 1 ? "s" : "");
        double rate = r.lines / r.seconds;
        printf("%-22s %8.2f %12.0f %13.0f %9" PRId64 " %7" PRId64 " ms %7" PRId64
               " ms %6ld MiB %.2f%s\n",
               name, r.seconds, rate, r.words / r.seconds, r.batches, r.max_sched_delay,
               r.max_proc_time, r.peak_rss_kib / 1024, rate / base_rate,
               r.ok ? "" : "  WRONG COUNT");
        exit_code |= !r.ok;
    }
    printf("\nmax sched: the largest scheduling delay of a batch (target: under one batch "
           "interval, %" PRId64 " ms)\n",
           batch_ms);
    return exit_code;
}

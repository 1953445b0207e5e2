/* test_tcp.c -- the tcp source through the public API: a test server or senders on
 * loopback, a context with the source and a foreach_batch output that collects records.
 * Also the generate source, which shares the tcp source's line splitter (lines.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_wal.h"
#include "sluice.h"
#include "support.h"

/* ==== Collecting records ==== */

typedef struct rec {
    char *value;
    size_t len;
    char topic[64];
    char source[32];
    int64_t offset;
} rec;

typedef struct collector {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    rec *recs;
    size_t n, cap;
    int delay_ms; /* a slow output: sleep this long per batch */
} collector;

static void collector_init(collector *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
}

static void collector_free(collector *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->recs[i].value);
    }
    free(c->recs);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
}

static int collect(const sl_dataset *ds, int64_t t, void *opaque)
{
    collector *c = opaque;
    (void)t;
    if (c->delay_ms > 0) {
        usleep((useconds_t)c->delay_ms * 1000);
    }
    pthread_mutex_lock(&c->lock);
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 64;
                c->recs = realloc(c->recs, c->cap * sizeof(*c->recs));
            }
            rec *x = &c->recs[c->n++];
            memset(x, 0, sizeof(*x));
            x->len = r[i].value_len;
            x->value = malloc(x->len + 1);
            if (x->len > 0) {
                memcpy(x->value, r[i].value, x->len);
            }
            x->value[x->len] = '\0';
            x->offset = r[i].meta ? r[i].meta->offset : -2;
            if (r[i].meta && r[i].meta->topic) {
                snprintf(x->topic, sizeof(x->topic), "%s", r[i].meta->topic);
            }
            if (r[i].meta && r[i].meta->source) {
                snprintf(x->source, sizeof(x->source), "%s", r[i].meta->source);
            }
        }
    }
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    return SL_OK;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until at least n records arrived. Returns the count. */
static size_t collector_wait(collector *c, size_t n, int64_t timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    pthread_mutex_lock(&c->lock);
    while (c->n < n && now_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&c->cond, &c->lock, &ts);
    }
    size_t got = c->n;
    pthread_mutex_unlock(&c->lock);
    return got;
}

/* The index of the record with this value, or -1. */
static long collector_find(collector *c, const char *value, size_t len)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->recs[i].len == len && memcmp(c->recs[i].value, value, len) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* ==== Sockets ==== */

/* Listens on 127.0.0.1:*port (0: any free port, stored back). Returns the socket or -1. */
static int listen_on(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0) {
        close(fd);
        return -1;
    }
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A port nobody listens on now. */
static int free_port(void)
{
    int port = 0;
    int fd = listen_on(&port);
    close(fd);
    return port;
}

/* Accepts one connection within timeout_ms. Returns it or -1. */
static int accept_within(int lfd, int timeout_ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1) {
        return -1;
    }
    return accept(lfd, NULL, NULL);
}

/* Connects to 127.0.0.1:port, retrying for up to timeout_ms. Returns the socket or -1. */
static int connect_within(int port, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    do {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            return fd;
        }
        close(fd);
        usleep(20 * 1000);
    } while (now_ms() < until);
    return -1;
}

static void write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) {
                continue;
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* ==== The context ==== */

/* A context with one source "in" of type with the given options (key, value, ..., NULL)
 * and a collecting output. NULL when the source is refused; err holds why. */
static sl_context *source_context(collector *col, const char *type, char *err, size_t errsize,
                                  va_list ap)
{
    sl_context *ctx;
    sl_context_conf conf = {
        .name = "test_tcp", .batch_interval_ms = 100, .workers = 2, .block_interval_ms = 50};
    ctx = sl_context_new(&conf, err, errsize);
    if (!ctx) {
        return NULL;
    }
    sl_options *o = sl_options_new();
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
        sl_options_set(o, k, va_arg(ap, const char *));
    }
    sl_stream *s = sl_context_add_source(ctx, type, "in", o, err, errsize);
    sl_options_destroy(o);
    if (!s || sl_stream_foreach_batch(s, collect, col) != SL_OK) {
        sl_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

static sl_context *tcp_context(collector *col, char *err, size_t errsize, ...)
{
    va_list ap;
    va_start(ap, errsize);
    sl_context *ctx = source_context(col, "tcp", err, errsize, ap);
    va_end(ap);
    return ctx;
}

static sl_context *generate_context(collector *col, char *err, size_t errsize, ...)
{
    va_list ap;
    va_start(ap, errsize);
    sl_context *ctx = source_context(col, "generate", err, errsize, ap);
    va_end(ap);
    return ctx;
}

static void stop_context(sl_context *ctx)
{
    sl_context_stop(ctx, true);
    sl_context_await_termination(ctx);
}

/* ==== Connect mode ==== */

static void test_tcp_connect_splits_lines(void)
{
    char err[256], port_s[16];
    int port = 0;
    int lfd = listen_on(&port);
    CU_ASSERT_FATAL(lfd >= 0);
    snprintf(port_s, sizeof(port_s), "%d", port);
    collector col;
    collector_init(&col);
    sl_context *ctx = tcp_context(&col, err, sizeof(err), "host", "127.0.0.1", "port", port_s,
                                  "reconnect_interval", "100ms", "max_record_size", "1KiB", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);

    int fd = accept_within(lfd, 5000);
    CU_ASSERT_FATAL(fd >= 0);
    close(lfd); /* later reconnections are refused */
    write_all(fd, "alpha\nbeta\r\ngam", 15);
    usleep(50 * 1000);
    write_all(fd, "ma\nx\0y\n", 7);
    char *big = malloc(5001);
    memset(big, 'z', 5000);
    big[5000] = '\n';
    write_all(fd, big, 5001);
    free(big);
    write_all(fd, "\r\nafter\ntail", 12);
    close(fd);

    CU_ASSERT(collector_wait(&col, 7, 5000) == 7);
    stop_context(ctx);
    sl_context_stats st;
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.records_oversize, 1);

    /* alpha, beta, gamma, x\0y, (oversize: line 5), "", after, tail */
    static const struct {
        const char *v;
        size_t len;
        int64_t offset;
    } want[] = {{"alpha", 5, 1}, {"beta", 4, 2},  {"gamma", 5, 3}, {"x\0y", 3, 4},
                {"", 0, 6},      {"after", 5, 7}, {"tail", 4, 8}};
    CU_ASSERT_EQUAL(col.n, 7);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]) && i < col.n; i++) {
        CU_ASSERT_EQUAL(col.recs[i].len, want[i].len);
        CU_ASSERT(memcmp(col.recs[i].value, want[i].v, want[i].len) == 0);
        CU_ASSERT_EQUAL(col.recs[i].offset, want[i].offset);
        CU_ASSERT(strncmp(col.recs[i].topic, "127.0.0.1:", 10) == 0);
        CU_ASSERT_STRING_EQUAL(col.recs[i].source, "in");
    }
    sl_context_destroy(ctx);
    collector_free(&col);
}

static void test_tcp_connect_reconnects_after_close(void)
{
    char err[256], port_s[16];
    int port = 0;
    int lfd = listen_on(&port);
    CU_ASSERT_FATAL(lfd >= 0);
    snprintf(port_s, sizeof(port_s), "%d", port);
    collector col;
    collector_init(&col);
    sl_context *ctx = tcp_context(&col, err, sizeof(err), "host", "127.0.0.1", "port", port_s,
                                  "reconnect_interval", "100ms", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);

    int fd = accept_within(lfd, 5000);
    CU_ASSERT_FATAL(fd >= 0);
    write_all(fd, "one\n", 4);
    close(fd);
    int64_t closed = now_ms();
    fd = accept_within(lfd, 5000);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(now_ms() - closed >= 90); /* it waited reconnect_interval */
    write_all(fd, "two\nthree", 9);
    close(fd);
    close(lfd);

    CU_ASSERT(collector_wait(&col, 3, 5000) == 3);
    stop_context(ctx);
    CU_ASSERT_EQUAL(col.n, 3);
    long one = collector_find(&col, "one", 3), two = collector_find(&col, "two", 3);
    long three = collector_find(&col, "three", 5);
    CU_ASSERT(one >= 0 && two >= 0 && three >= 0);
    if (one >= 0 && two >= 0 && three >= 0) {
        /* line numbers count per connection */
        CU_ASSERT_EQUAL(col.recs[one].offset, 1);
        CU_ASSERT_EQUAL(col.recs[two].offset, 1);
        CU_ASSERT_EQUAL(col.recs[three].offset, 2);
        CU_ASSERT_STRING_EQUAL(col.recs[one].topic, col.recs[two].topic); /* the server */
    }
    sl_context_destroy(ctx);
    collector_free(&col);
}

static void test_tcp_connect_retries_when_refused(void)
{
    char err[256], port_s[16];
    int port = free_port();
    snprintf(port_s, sizeof(port_s), "%d", port);
    collector col;
    collector_init(&col);
    sl_context *ctx = tcp_context(&col, err, sizeof(err), "host", "127.0.0.1", "port", port_s,
                                  "reconnect_interval", "100ms", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK); /* refused is not a start failure */
    usleep(400 * 1000);

    int lfd = listen_on(&port);
    CU_ASSERT_FATAL(lfd >= 0);
    int fd = accept_within(lfd, 5000);
    CU_ASSERT_FATAL(fd >= 0);
    write_all(fd, "late\n", 5);
    CU_ASSERT(collector_wait(&col, 1, 5000) == 1);
    int64_t t0 = now_ms();
    stop_context(ctx); /* the peer stays connected and silent: stop must not wait for it */
    CU_ASSERT(now_ms() - t0 < 2000);
    close(fd);
    close(lfd);
    CU_ASSERT(col.n == 1 && col.n > 0 && strcmp(col.recs[0].value, "late") == 0);
    sl_context_destroy(ctx);
    collector_free(&col);
}

/* ==== Listen mode ==== */

typedef struct sender {
    int port;
    int id;
    int lines;
} sender;

/* Sends "s<id>-<i>" lines in uneven chunks, then closes. */
static void *sender_main(void *arg)
{
    sender *s = arg;
    int fd = connect_within(s->port, 3000);
    if (fd < 0) {
        return NULL;
    }
    char buf[64 * 32];
    size_t off = 0;
    for (int i = 1; i <= s->lines; i++) {
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "s%d-%d\n", s->id, i);
        if (off > sizeof(buf) - 64 || i == s->lines) {
            size_t half = off / 3;
            write_all(fd, buf, half); /* a line cut in two */
            usleep(1000);
            write_all(fd, buf + half, off - half);
            off = 0;
        }
    }
    close(fd);
    return NULL;
}

/* Spark's socketTextStream keeps the last line when the peer closes; when sluice stops
 * while the peer is still connected, the unterminated line may be half a line: dropped. */
static void test_tcp_connect_partial_line_dropped_at_stop_kept_at_close(void)
{
    char err[256], port_s[16];
    int port = 0;
    int lfd = listen_on(&port);
    CU_ASSERT_FATAL(lfd >= 0);
    snprintf(port_s, sizeof(port_s), "%d", port);
    collector col;
    collector_init(&col);
    sl_context *ctx = tcp_context(&col, err, sizeof(err), "host", "127.0.0.1", "port", port_s,
                                  "reconnect_interval", "50ms", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);

    int fd = accept_within(lfd, 5000);
    CU_ASSERT_FATAL(fd >= 0);
    write_all(fd, "first\nlast-kept", 15);
    close(fd); /* the peer closes: "last-kept" is a record */
    fd = accept_within(lfd, 5000);
    CU_ASSERT_FATAL(fd >= 0);
    write_all(fd, "whole\nhalf-a-li", 15);
    CU_ASSERT(collector_wait(&col, 3, 5000) == 3);
    usleep(200 * 1000); /* the half line has been read */
    stop_context(ctx);  /* the peer is still connected */
    close(fd);
    close(lfd);

    CU_ASSERT_EQUAL(col.n, 3);
    CU_ASSERT(collector_find(&col, "first", 5) >= 0);
    CU_ASSERT(collector_find(&col, "last-kept", 9) >= 0);
    CU_ASSERT(collector_find(&col, "whole", 5) >= 0);
    CU_ASSERT(collector_find(&col, "half-a-li", 9) < 0);
    sl_context_destroy(ctx);
    collector_free(&col);
}

static void test_tcp_listen_many_senders_and_a_stalled_one(void)
{
    char err[256], port_s[16];
    int port = free_port();
    snprintf(port_s, sizeof(port_s), "%d", port);
    collector col;
    collector_init(&col);
    sl_context *ctx = tcp_context(&col, err, sizeof(err), "mode", "listen", "port", port_s, NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);

    int stalled = connect_within(port, 3000);
    CU_ASSERT_FATAL(stalled >= 0);
    write_all(stalled, "stall", 5); /* no newline, and it never sends more */

    enum {
        NSENDERS = 4,
        NLINES = 300
    };
    pthread_t th[NSENDERS];
    sender snd[NSENDERS];
    for (int k = 0; k < NSENDERS; k++) {
        snd[k] = (sender){.port = port, .id = k, .lines = NLINES};
        pthread_create(&th[k], NULL, sender_main, &snd[k]);
    }
    for (int k = 0; k < NSENDERS; k++) {
        pthread_join(th[k], NULL);
    }
    CU_ASSERT(collector_wait(&col, NSENDERS * NLINES, 10000) == NSENDERS * NLINES);
    CU_ASSERT(collector_find(&col, "stall", 5) < 0);

    int64_t t0 = now_ms();
    stop_context(ctx);
    CU_ASSERT(now_ms() - t0 < 2000);
    close(stalled);

    /* The stalled peer is still connected at the stop: its unterminated line is not a
     * record (it is dropped and logged). */
    CU_ASSERT_EQUAL(col.n, NSENDERS * NLINES);
    CU_ASSERT(collector_find(&col, "stall", 5) < 0);
    /* Each sender's lines: all there, in order, numbered 1.. on their own connection. */
    for (int k = 0; k < NSENDERS; k++) {
        char v[32], topic[64] = "";
        int64_t last = 0;
        int seen = 0;
        for (size_t i = 0; i < col.n; i++) {
            int id, line;
            if (sscanf(col.recs[i].value, "s%d-%d", &id, &line) != 2 || id != k) {
                continue;
            }
            snprintf(v, sizeof(v), "s%d-%d", k, line);
            CU_ASSERT_STRING_EQUAL(col.recs[i].value, v);
            CU_ASSERT_EQUAL(col.recs[i].offset, line);
            CU_ASSERT_EQUAL(line, last + 1);
            if (!topic[0]) {
                memcpy(topic, col.recs[i].topic, sizeof(topic));
            }
            CU_ASSERT_STRING_EQUAL(col.recs[i].topic, topic);
            last = line;
            seen++;
        }
        CU_ASSERT_EQUAL(seen, NLINES);
    }
    sl_context_destroy(ctx);
    collector_free(&col);
}

static void test_tcp_listen_flooding_sender_is_slowed_not_dropped(void)
{
    char err[256], port_s[16];
    int port = free_port();
    snprintf(port_s, sizeof(port_s), "%d", port);
    collector col;
    collector_init(&col);
    col.delay_ms = 30;
    sl_context *ctx = tcp_context(&col, err, sizeof(err), "mode", "listen", "port", port_s,
                                  "max_buffered", "16KiB", "read_buffer", "4KiB", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    sender snd = {.port = port, .id = 7, .lines = 10000}; /* about 90 KiB */
    pthread_t th;
    pthread_create(&th, NULL, sender_main, &snd);
    pthread_join(th, NULL);
    CU_ASSERT(collector_wait(&col, 10000, 30000) == 10000);
    stop_context(ctx);
    CU_ASSERT_EQUAL(col.n, 10000);
    for (size_t i = 0; i < col.n; i++) {
        if (col.recs[i].offset != (int64_t)i + 1) {
            CU_FAIL("a line is missing or out of order");
            break;
        }
    }
    sl_context_destroy(ctx);
    collector_free(&col);
}

/* Resident memory in KiB. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f) {
        return 0;
    }
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
        rss = 0;
    }
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_tcp_listen_huge_line_is_discarded_unbuffered(void)
{
    char err[256], port_s[16];
    int port = free_port();
    snprintf(port_s, sizeof(port_s), "%d", port);
    collector col;
    collector_init(&col);
    sl_context *ctx = tcp_context(&col, err, sizeof(err), "mode", "listen", "port", port_s,
                                  "max_record_size", "4KiB", "read_buffer", "8KiB", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);

    int fd = connect_within(port, 3000);
    CU_ASSERT_FATAL(fd >= 0);
    write_all(fd, "ok1\n", 4);
    CU_ASSERT(collector_wait(&col, 1, 5000) == 1);
    long before = rss_kib();
    size_t chunk = 1 << 16;
    char *x = malloc(chunk);
    memset(x, 'x', chunk);
    for (int i = 0; i < 64 * 16; i++) { /* 64 MiB without a newline */
        write_all(fd, x, chunk);
    }
    free(x);
    write_all(fd, "\nok2\n", 5);
    CU_ASSERT(collector_wait(&col, 2, 10000) == 2);
    long grown = rss_kib() - before;
    close(fd);
    stop_context(ctx);

    CU_ASSERT(grown < 16 * 1024); /* far less than the 64 MiB line */
    CU_ASSERT_EQUAL(col.n, 2);
    if (col.n == 2) {
        CU_ASSERT_STRING_EQUAL(col.recs[0].value, "ok1");
        CU_ASSERT_STRING_EQUAL(col.recs[1].value, "ok2");
        CU_ASSERT_EQUAL(col.recs[1].offset, 3);
    }
    sl_context_stats st;
    sl_context_get_stats(ctx, &st);
    CU_ASSERT_EQUAL(st.records_oversize, 1);
    sl_context_destroy(ctx);
    collector_free(&col);
}

static void test_tcp_listen_port_in_use_fails_start(void)
{
    char err[256], port_s[16];
    int port = 0;
    int lfd = listen_on(&port); /* without SO_REUSEPORT: the port is taken */
    CU_ASSERT_FATAL(lfd >= 0);
    snprintf(port_s, sizeof(port_s), "%d", port);
    collector col;
    collector_init(&col);
    sl_context *ctx = tcp_context(&col, err, sizeof(err), "mode", "listen", "port", port_s, NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT(sl_context_start(ctx) != SL_OK);
    sl_context_destroy(ctx);
    close(lfd);
    collector_free(&col);
}

static void test_tcp_bad_options_are_refused(void)
{
    char err[256];
    collector col;
    collector_init(&col);
    CU_ASSERT(tcp_context(&col, err, sizeof(err), "host", "127.0.0.1", NULL) == NULL);
    CU_ASSERT(strstr(err, "port") != NULL);
    CU_ASSERT(tcp_context(&col, err, sizeof(err), "port", "70000", NULL) == NULL);
    CU_ASSERT(tcp_context(&col, err, sizeof(err), "port", "9", "mode", "both", NULL) == NULL);
    CU_ASSERT(tcp_context(&col, err, sizeof(err), "port", "9", "colour", "red", NULL) == NULL);
    /* a source that never starts is destroyed cleanly */
    sl_context *ctx = tcp_context(&col, err, sizeof(err), "port", "9", NULL);
    CU_ASSERT(ctx != NULL);
    sl_context_destroy(ctx);
    collector_free(&col);
}

/* ==== Write-ahead log ==== */

/* A listening tcp source "in" with wal: true under checkpoint directory dir, collecting. */
static sl_context *tcp_wal_context(collector *col, const char *dir, int port)
{
    char err[256], port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    sl_context_conf conf = {.name = "test_tcp_wal",
                            .batch_interval_ms = 100,
                            .workers = 2,
                            .block_interval_ms = 50,
                            .checkpoint_dir = dir};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    CU_ASSERT_FATAL(ctx != NULL);
    sl_options *o = sl_options_new();
    sl_options_set(o, "mode", "listen");
    sl_options_set(o, "port", port_s);
    sl_options_set(o, "wal", "true");
    sl_stream *s = sl_context_add_source(ctx, "tcp", "in", o, err, sizeof(err));
    sl_options_destroy(o);
    CU_ASSERT_FATAL(s != NULL);
    CU_ASSERT_FATAL(sl_stream_foreach_batch(s, collect, col) == SL_OK);
    return ctx;
}

/* Lines in the log that no batch processed (a crash after they were logged) are pushed at
 * the start; lines received are logged; after a clean stop nothing comes again. */
static void test_tcp_wal_logged_lines_come_back_once(void)
{
    char dir[128];
    CU_ASSERT_FATAL(ts_tmpdir(dir, sizeof(dir), "tcpwal"));
    char err[256];
    sl_wal *wal = sl__wal_open(dir, "in", NULL, err, sizeof(err));
    CU_ASSERT_FATAL(wal != NULL);
    sl_record recs[2] = {{.value = "logged1", .value_len = 7, .num_type = SL_NUM_NONE},
                         {.value = "logged2", .value_len = 7, .num_type = SL_NUM_NONE}};
    CU_ASSERT(sl__wal_append(wal, recs, 2, NULL) == SL_OK);
    sl__wal_close(wal);

    int port = free_port();
    collector col;
    collector_init(&col);
    sl_context *ctx = tcp_wal_context(&col, dir, port);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    CU_ASSERT(collector_wait(&col, 2, 5000) == 2);
    int fd = connect_within(port, 5000);
    CU_ASSERT_FATAL(fd >= 0);
    write_all(fd, "sent1\nsent2\n", 12);
    close(fd);
    CU_ASSERT(collector_wait(&col, 4, 5000) == 4);
    stop_context(ctx);
    sl_context_destroy(ctx);
    CU_ASSERT(collector_find(&col, "logged1", 7) >= 0);
    CU_ASSERT(collector_find(&col, "logged2", 7) >= 0);
    CU_ASSERT(collector_find(&col, "sent1", 5) >= 0);
    CU_ASSERT(collector_find(&col, "sent2", 5) >= 0);
    collector_free(&col);

    /* Everything was processed: a restart pushes nothing again. */
    collector_init(&col);
    ctx = tcp_wal_context(&col, dir, port);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    CU_ASSERT(collector_wait(&col, 1, 1000) == 0);
    stop_context(ctx);
    sl_context_destroy(ctx);
    collector_free(&col);
    CU_ASSERT(ts_rmdir(dir));
}

/* ==== generate (it shares the tcp source's line splitter) ==== */

static void test_generate_emits_count_lines_round_robin(void)
{
    char err[256];
    collector col;
    collector_init(&col);
    sl_context *ctx = generate_context(&col, err, sizeof(err), "text", "a\nb\r\nc\n", "rate", "200",
                                       "count", "7", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    CU_ASSERT(collector_wait(&col, 7, 5000) == 7);
    usleep(300 * 1000); /* and no more */
    stop_context(ctx);
    CU_ASSERT_EQUAL(col.n, 7);
    static const char *want[] = {"a", "b", "c", "a", "b", "c", "a"};
    for (size_t i = 0; i < 7 && i < col.n; i++) {
        CU_ASSERT_STRING_EQUAL(col.recs[i].value, want[i]);
        CU_ASSERT_EQUAL(col.recs[i].offset, (int64_t)i + 1);
        CU_ASSERT_STRING_EQUAL(col.recs[i].topic, "generate");
        CU_ASSERT_STRING_EQUAL(col.recs[i].source, "in");
    }
    sl_context_destroy(ctx);
    collector_free(&col);
}

static void test_generate_without_loop_emits_the_text_once(void)
{
    char err[256];
    collector col;
    collector_init(&col);
    sl_context *ctx = generate_context(&col, err, sizeof(err), "text", "x\ny", "rate", "1000",
                                       "loop", "false", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    CU_ASSERT(collector_wait(&col, 2, 5000) == 2);
    usleep(200 * 1000);
    stop_context(ctx);
    CU_ASSERT_EQUAL(col.n, 2);
    sl_context_destroy(ctx);
    collector_free(&col);
}

static void test_generate_keeps_its_rate(void)
{
    char err[256];
    collector col;
    collector_init(&col);
    sl_context *ctx = generate_context(&col, err, sizeof(err), "rate", "20", NULL);
    CU_ASSERT_FATAL(ctx != NULL);
    CU_ASSERT_FATAL(sl_context_start(ctx) == SL_OK);
    usleep(1000 * 1000);
    stop_context(ctx);
    /* about 21 lines in a second (the first one at once); generous bounds for slow CI */
    CU_ASSERT(col.n >= 12 && col.n <= 26);
    /* the built-in text */
    CU_ASSERT(col.n > 0 &&
              strcmp(col.recs[0].value, "the river comes down from the hills in the morning") == 0);
    sl_context_destroy(ctx);
    collector_free(&col);
}

static void test_generate_bad_options_are_refused(void)
{
    char err[256];
    collector col;
    collector_init(&col);
    CU_ASSERT(generate_context(&col, err, sizeof(err), "rate", "0", NULL) == NULL);
    CU_ASSERT(generate_context(&col, err, sizeof(err), "text", "", NULL) == NULL);
    CU_ASSERT(strstr(err, "text") != NULL);
    CU_ASSERT(generate_context(&col, err, sizeof(err), "count", "-1", NULL) == NULL);
    collector_free(&col);
}

void sl_test_register(void)
{
    SL_SUITE("tcp_connect", SL_TEST(tcp_connect_splits_lines),
             SL_TEST(tcp_connect_reconnects_after_close), SL_TEST(tcp_connect_retries_when_refused),
             SL_TEST(tcp_connect_partial_line_dropped_at_stop_kept_at_close));
    SL_SUITE("tcp_listen", SL_TEST(tcp_listen_many_senders_and_a_stalled_one),
             SL_TEST(tcp_listen_flooding_sender_is_slowed_not_dropped),
             SL_TEST(tcp_listen_huge_line_is_discarded_unbuffered),
             SL_TEST(tcp_listen_port_in_use_fails_start));
    SL_SUITE("tcp_options", SL_TEST(tcp_bad_options_are_refused));
    SL_SUITE("tcp_wal", SL_TEST(tcp_wal_logged_lines_come_back_once));
    SL_SUITE("generate", SL_TEST(generate_emits_count_lines_round_robin),
             SL_TEST(generate_without_loop_emits_the_text_once), SL_TEST(generate_keeps_its_rate),
             SL_TEST(generate_bad_options_are_refused));
}

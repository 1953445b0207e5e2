/* tcp.c -- the tcp source: one record per line read from TCP. In connect mode it is Spark's
 * socketTextStream (connect, read, reconnect after reconnect_interval); in listen mode it
 * accepts many senders at once, each with its own line state. One receiver thread polls
 * with a short timeout, so that a stalled peer blocks nobody and stop() is prompt.
 *
 * With a write-ahead log (wal: true and a checkpoint directory; sl_receiver_wal.c), each
 * push of lines is appended to the log (and fsynced, as wal_fsync says) before it goes to
 * the engine, so a batch is a range of log records: after a crash, the pending batches run
 * again with exactly their lines, and the lines logged after them are pushed again at the
 * start. A sender cannot send again, so without the log what sluice held in memory is lost
 * at a crash (at-most-once). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4() */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp.h"
#include "sl_registry.h"

#define TCP_POLL_MS            100  /* longest wait between two looks at the stop flag */
#define TCP_CONNECT_TIMEOUT_MS 5000 /* per address */
#define TCP_BACKLOG            128
#define TCP_WAL_RETRY_MS       1000 /* a failing log is tried again after this long */

/* ==== Helpers ==== */

static bool tcp_stopping(sl_tcp_ctx *ctx)
{
    return atomic_load(&ctx->stop) || sl_instance_stopping(ctx->ins);
}

/* Sleeps ms, waking every TCP_POLL_MS to look at the stop flag. */
static void tcp_sleep(sl_tcp_ctx *ctx, int64_t ms)
{
    int64_t until = sl__mono_ms() + ms;
    for (;;) {
        int64_t left = until - sl__mono_ms();
        if (left <= 0 || tcp_stopping(ctx)) {
            return;
        }
        poll(NULL, 0, (int)(left < TCP_POLL_MS ? left : TCP_POLL_MS));
    }
}

/* ==== Write-ahead log ==== */

/* The lines batch's push with a log: appended (and synced), then pushed. A log that fails
 * is tried again until it works or sluice stops (then the lines are dropped, reported: they
 * were neither logged nor pushed). @locality the receiver thread */
static int tcp_wal_push(void *arg, const sl_record *recs, size_t n)
{
    sl_tcp_ctx *ctx = arg;
    int rc;
    while ((rc = sl__receiver_log_push(ctx->rlog, recs, n)) != SL_OK && rc != SL_ERR_STATE) {
        if (tcp_stopping(ctx)) {
            sl_instance_error(ctx->ins, "%zu lines dropped: the write-ahead log %s fails: %s", n,
                              sl__wal_dir(sl__receiver_log_wal(ctx->rlog)), sl_err2str(rc));
            return rc;
        }
        sl_instance_error(ctx->ins, "cannot append to the write-ahead log %s: %s; retrying",
                          sl__wal_dir(sl__receiver_log_wal(ctx->rlog)), sl_err2str(rc));
        poll(NULL, 0, TCP_WAL_RETRY_MS);
    }
    return rc;
}

/* After a failed batch, pushes again from the log what no completed batch processed.
 * Called between reads, when the lines batch is empty. @locality the receiver thread */
static void tcp_wal_tick(sl_tcp_ctx *ctx)
{
    if (ctx->rlog && sl__receiver_log_take_failure(ctx->rlog)) {
        sl__receiver_log_replay(ctx->rlog, "a batch failed", NULL, NULL);
    }
}

/* Writes "ip:port" (or "[ip6]:port") of sa into buf. */
static void tcp_format_addr(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
}

/* Reads what is there from c once and splits it into records. Returns the bytes read (or 1
 * when nothing was there yet), 0 when the peer closed, or -errno. */
static ssize_t tcp_read_once(sl_tcp_ctx *ctx, sl_tcp_conn *c)
{
    ssize_t n = recv(c->fd, ctx->rbuf, ctx->rbuf_size, 0);
    if (n > 0) {
        int rc = sl__lines_feed(&c->lines, ctx->batch, ctx->rbuf, (size_t)n, sl__now_ms());
        if (rc == SL_ERR_NOMEM) {
            return -ENOMEM;
        }
        return n;
    }
    if (n == 0) {
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return 1;
    }
    return -errno;
}

/* Ends a connection and closes its socket. When the peer closed it (rc 0), its last
 * unterminated line is a record, as in Spark's socketTextStream; when the connection failed
 * (rc < 0) or sluice stops while the peer is still connected (rc > 0), that line is not
 * known to be complete: it is dropped, logged and counted, never emitted as half a line. */
static void tcp_conn_close(sl_tcp_ctx *ctx, sl_tcp_conn *c, ssize_t rc)
{
    if (rc == 0) {
        sl__lines_finish(&c->lines, ctx->batch, sl__now_ms());
    } else {
        uint64_t dropped = 0;
        sl__lines_discard(&c->lines, ctx->batch, &dropped);
        if (dropped > 0) {
            uint64_t total = atomic_fetch_add(&ctx->partial_dropped, 1) + 1;
            sl_instance_log(ctx->ins, SL_LOG_WARN,
                            "%s: an unterminated line of %llu bytes dropped (%s); %llu so far",
                            c->peer, (unsigned long long)dropped,
                            rc > 0 ? "stopping while the sender is connected"
                                   : "the connection failed",
                            (unsigned long long)total);
            char input[128], labels[160];
            sl_metrics_escape_label(sl_instance_name(ctx->ins), input, sizeof(input));
            snprintf(labels, sizeof(labels), "input=\"%s\"", input);
            sl_metrics_gauge_set(sl_instance_context(ctx->ins), "tcp_partial_lines_dropped",
                                 "unterminated last lines dropped when a connection was cut "
                                 "off (sluice stopping, or a failed connection)",
                                 labels, (double)total);
        }
    }
    sl__lines_free(&c->lines);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* ==== Connect mode ==== */

/* Connects to host:port, trying each address in turn and waiting in steps of TCP_POLL_MS
 * so that stop is prompt. Returns the socket, or -1 with the reason in err. */
static int tcp_connect(sl_tcp_ctx *ctx, char *err, size_t errsize)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%lld", (long long)ctx->port);
    int gai = getaddrinfo(ctx->host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errsize, "%s", gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return -1;
    }

    int fd = -1;
    snprintf(err, errsize, "no address");
    for (struct addrinfo *ai = res; ai && fd < 0 && !tcp_stopping(ctx); ai = ai->ai_next) {
        int s =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (s < 0) {
            snprintf(err, errsize, "socket: %s", strerror(errno));
            continue;
        }
        int e = 0;
        if (connect(s, ai->ai_addr, ai->ai_addrlen) != 0) {
            e = errno;
            if (e == EINPROGRESS) {
                e = ETIMEDOUT;
                for (int waited = 0; waited < TCP_CONNECT_TIMEOUT_MS && !tcp_stopping(ctx);
                     waited += TCP_POLL_MS) {
                    struct pollfd pfd = {.fd = s, .events = POLLOUT};
                    int n = poll(&pfd, 1, TCP_POLL_MS);
                    if (n > 0) {
                        socklen_t len = sizeof(e);
                        if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &len) != 0) {
                            e = errno;
                        }
                        break;
                    }
                    if (n < 0 && errno != EINTR) {
                        e = errno;
                        break;
                    }
                }
            }
        }
        if (e == 0) {
            fd = s;
        } else {
            snprintf(err, errsize, "%s", strerror(e));
            close(s);
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Reads c until the peer closes (returns 0), an error (-errno) or stop (1). */
static ssize_t tcp_read_until_closed(sl_tcp_ctx *ctx, sl_tcp_conn *c)
{
    while (!tcp_stopping(ctx)) {
        tcp_wal_tick(ctx);
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int n = poll(&pfd, 1, TCP_POLL_MS);
        if (n < 0 && errno != EINTR) {
            return -errno;
        }
        if (n <= 0) {
            continue;
        }
        ssize_t rc = tcp_read_once(ctx, c);
        if (rc <= 0) {
            return rc;
        }
    }
    return 1;
}

/* The receiver thread in connect mode: connect, read, reconnect. An outage is reported
 * once, not at every attempt. */
static void tcp_run_connect(sl_tcp_ctx *ctx)
{
    sl_tcp_conn *c = &ctx->conn;
    bool reported = false;
    char err[256];

    while (!tcp_stopping(ctx)) {
        tcp_wal_tick(ctx);
        c->fd = tcp_connect(ctx, err, sizeof(err));
        if (c->fd < 0) {
            if (tcp_stopping(ctx)) {
                break;
            }
            if (!reported) {
                sl_instance_error(ctx->ins, "cannot connect to %s:%lld: %s; retrying every %lld ms",
                                  ctx->host, (long long)ctx->port, err,
                                  (long long)ctx->reconnect_interval);
                reported = true;
            } else {
                sl_instance_log(ctx->ins, SL_LOG_DEBUG, "cannot connect to %s:%lld: %s", ctx->host,
                                (long long)ctx->port, err);
            }
            tcp_sleep(ctx, ctx->reconnect_interval);
            continue;
        }

        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
            tcp_format_addr((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
        } else {
            snprintf(c->peer, sizeof(c->peer), "%s:%lld", ctx->host, (long long)ctx->port);
        }
        sl__lines_init(&c->lines, ctx->ins, c->peer);
        sl_instance_set_active(ctx->ins, true);
        char want[SL_TCP_PEER_MAX + 8];
        snprintf(want, sizeof(want), "%s:%lld", ctx->host, (long long)ctx->port);
        if (strcmp(want, c->peer) == 0) {
            sl_instance_log(ctx->ins, SL_LOG_INFO, "connected to %s", c->peer);
        } else {
            sl_instance_log(ctx->ins, SL_LOG_INFO, "connected to %s:%lld (%s)", ctx->host,
                            (long long)ctx->port, c->peer);
        }
        reported = false;

        ssize_t rc = tcp_read_until_closed(ctx, c);
        int64_t lines = c->lines.line_no;
        tcp_conn_close(ctx, c, rc);
        sl_instance_set_active(ctx->ins, false);
        if (rc > 0) {
            break; /* stopping */
        }
        if (rc == 0) {
            sl_instance_log(ctx->ins, SL_LOG_WARN,
                            "%s closed the connection after %lld lines; reconnecting in %lld ms",
                            c->peer, (long long)lines, (long long)ctx->reconnect_interval);
        } else {
            sl_instance_error(ctx->ins, "connection to %s failed: %s; reconnecting in %lld ms",
                              c->peer, strerror((int)-rc), (long long)ctx->reconnect_interval);
        }
        tcp_sleep(ctx, ctx->reconnect_interval);
    }
}

/* ==== Listen mode ==== */

/* Binds host:port with SO_REUSEADDR and listens. Returns SL_OK or SL_ERR_IO (reported). */
static int tcp_listen_open(sl_tcp_ctx *ctx)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%lld", (long long)ctx->port);
    int gai = getaddrinfo(ctx->host, port, &hints, &res);
    if (gai != 0) {
        sl_instance_error(ctx->ins, "cannot resolve %s: %s", ctx->host,
                          gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return SL_ERR_IO;
    }
    int e = 0;
    for (struct addrinfo *ai = res; ai && ctx->listen_fd < 0; ai = ai->ai_next) {
        int s =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (s < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(s, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s, TCP_BACKLOG) != 0) {
            e = errno;
            close(s);
            continue;
        }
        ctx->listen_fd = s;
    }
    freeaddrinfo(res);
    if (ctx->listen_fd < 0) {
        sl_instance_error(ctx->ins, "cannot listen on %s:%lld: %s", ctx->host, (long long)ctx->port,
                          strerror(e));
        return SL_ERR_IO;
    }
    sl_instance_log(ctx->ins, SL_LOG_INFO, "listening on %s:%lld", ctx->host, (long long)ctx->port);
    return SL_OK;
}

/* Accepts every pending connection. Returns false when accepting should pause for a while
 * (out of file descriptors), true otherwise. */
static bool tcp_accept(sl_tcp_ctx *ctx)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd =
            accept4(ctx->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                sl_instance_error(ctx->ins, "cannot accept a connection: %s", strerror(errno));
                return false;
            }
            return true; /* EAGAIN, or an aborted connection */
        }
        char peer[SL_TCP_PEER_MAX];
        tcp_format_addr((struct sockaddr *)&ss, peer, sizeof(peer));
        if (ctx->nconns == (size_t)ctx->max_connections) {
            sl_instance_error(ctx->ins, "refusing %s: max_connections (%lld) reached", peer,
                              (long long)ctx->max_connections);
            close(fd);
            continue;
        }
        sl_tcp_conn *c = &ctx->conns[ctx->nconns++];
        c->fd = fd;
        memcpy(c->peer, peer, sizeof(peer));
        sl__lines_init(&c->lines, ctx->ins, c->peer);
        sl_instance_log(ctx->ins, SL_LOG_DEBUG, "connection from %s", c->peer);
    }
}

/* Closes connection i (rc: 0 the peer closed it, < 0 it failed, > 0 stopping; see
 * tcp_conn_close) and moves the last one into its slot. */
static void tcp_conn_remove(sl_tcp_ctx *ctx, size_t i, ssize_t rc)
{
    sl_tcp_conn *c = &ctx->conns[i];
    if (rc < 0) {
        sl_instance_log(ctx->ins, SL_LOG_WARN, "connection from %s failed: %s", c->peer,
                        strerror((int)-rc));
    } else {
        sl_instance_log(ctx->ins, SL_LOG_DEBUG, "%s %s after %lld lines", c->peer,
                        rc == 0 ? "closed the connection" : "disconnected (stopping)",
                        (long long)c->lines.line_no);
    }
    tcp_conn_close(ctx, c, rc);
    ctx->nconns--;
    if (i != ctx->nconns) {
        *c = ctx->conns[ctx->nconns];
        c->lines.topic = c->peer; /* it pointed into the old slot */
    }
    memset(&ctx->conns[ctx->nconns], 0, sizeof(*c));
    ctx->conns[ctx->nconns].fd = -1;
}

/* The receiver thread in listen mode: one poll() over the listening socket and every
 * connection; each readable connection gets one read per round, so no peer starves the
 * others. */
static void tcp_run_listen(sl_tcp_ctx *ctx)
{
    size_t max = (size_t)ctx->max_connections;
    struct pollfd *pfds = calloc(max + 1, sizeof(*pfds));
    if (!pfds) {
        sl_instance_error(ctx->ins, "out of memory");
        return;
    }
    int64_t accept_after = 0;
    sl_instance_set_active(ctx->ins, true);

    while (!tcp_stopping(ctx)) {
        tcp_wal_tick(ctx);
        size_t n = ctx->nconns;
        bool accepting = sl__mono_ms() >= accept_after;
        pfds[0].fd = accepting ? ctx->listen_fd : -1;
        pfds[0].events = POLLIN;
        pfds[0].revents = 0;
        for (size_t i = 0; i < n; i++) {
            pfds[i + 1].fd = ctx->conns[i].fd;
            pfds[i + 1].events = POLLIN;
            pfds[i + 1].revents = 0;
        }
        int ready = poll(pfds, n + 1, TCP_POLL_MS);
        if (ready < 0 && errno != EINTR) {
            sl_instance_error(ctx->ins, "poll: %s", strerror(errno));
            tcp_sleep(ctx, TCP_POLL_MS);
            continue;
        }
        if (ready <= 0) {
            continue;
        }
        /* Backwards, so that moving the last connection into a freed slot moves one that
         * was already served. */
        for (size_t i = n; i-- > 0;) {
            if (pfds[i + 1].revents == 0) {
                continue;
            }
            ssize_t rc = tcp_read_once(ctx, &ctx->conns[i]);
            if (rc <= 0) {
                tcp_conn_remove(ctx, i, rc);
            }
        }
        if (pfds[0].revents & POLLIN) {
            if (!tcp_accept(ctx)) {
                accept_after = sl__mono_ms() + TCP_POLL_MS;
            }
        }
    }

    while (ctx->nconns > 0) {
        tcp_conn_remove(ctx, ctx->nconns - 1, 1); /* stopping */
    }
    free(pfds);
    sl_instance_set_active(ctx->ins, false);
}

/* ==== Callbacks ==== */

static void *tcp_thread(void *arg)
{
    sl_tcp_ctx *ctx = arg;
    if (ctx->rlog) {
        sl__receiver_log_replay(ctx->rlog, "restart", NULL, NULL);
    }
    if (ctx->listen) {
        tcp_run_listen(ctx);
    } else {
        tcp_run_connect(ctx);
    }
    return NULL;
}

static int tcp_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_tcp_ctx *ctx = data;
    ctx->ins = ins;
    ctx->listen_fd = -1;
    ctx->conn.fd = -1;
    atomic_init(&ctx->stop, false);

    int rc = sl__tcp_config_check(ctx, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    ctx->rbuf_size = (size_t)ctx->read_buffer;
    ctx->rbuf = malloc(ctx->rbuf_size);
    ctx->batch = sl__lines_batch_new(ins);
    if (ctx->listen) {
        ctx->conns = calloc((size_t)ctx->max_connections, sizeof(*ctx->conns));
    }
    if (!ctx->rbuf || !ctx->batch || (ctx->listen && !ctx->conns)) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    for (int64_t i = 0; ctx->listen && i < ctx->max_connections; i++) {
        ctx->conns[i].fd = -1;
    }
    return SL_OK;
}

static int tcp_start(void *data, char *errstr, size_t errsize)
{
    sl_tcp_ctx *ctx = data;
    if (ctx->started) {
        return SL_ERR_STATE;
    }
    if (ctx->listen && ctx->listen_fd < 0 && tcp_listen_open(ctx) != SL_OK) {
        return SL_ERR_IO;
    }
    if (ctx->wal_opts.wal && !ctx->rlog) {
        ctx->rlog = sl__receiver_log_new(ctx->ins, &ctx->wal_opts,
                                         "what sluice holds in memory is lost at a crash", NULL,
                                         errstr, errsize);
        if (!ctx->rlog) {
            return SL_ERR_IO;
        }
        if (!sl__receiver_log_wal(ctx->rlog)) {
            sl__receiver_log_destroy(ctx->rlog); /* no checkpoint directory: no log */
            ctx->rlog = NULL;
        } else {
            ctx->batch->push = tcp_wal_push;
            ctx->batch->push_arg = ctx;
            sl_instance_log(ctx->ins, SL_LOG_INFO, "write-ahead log %s",
                            sl__wal_dir(sl__receiver_log_wal(ctx->rlog)));
        }
    }
    atomic_store(&ctx->stop, false);
    int e = pthread_create(&ctx->thread, NULL, tcp_thread, ctx);
    if (e != 0) {
        sl_instance_error(ctx->ins, "cannot start the receiver thread: %s", strerror(e));
        return SL_ERR_IO;
    }
    ctx->started = true;
    return SL_OK;
}

/* Makes the thread push what it holds and return, then joins it. */
static void tcp_stop(void *data)
{
    sl_tcp_ctx *ctx = data;
    atomic_store(&ctx->stop, true);
    if (ctx->started) {
        pthread_join(ctx->thread, NULL);
        ctx->started = false;
    }
}

static void tcp_destroy(void *data)
{
    sl_tcp_ctx *ctx = data;
    if (!ctx->ins) {
        return; /* init never ran */
    }
    tcp_stop(ctx);
    sl__receiver_log_destroy(ctx->rlog);
    ctx->rlog = NULL;
    if (ctx->listen_fd >= 0) {
        close(ctx->listen_fd);
        ctx->listen_fd = -1;
    }
    free(ctx->conns);
    ctx->conns = NULL;
    sl__lines_batch_destroy(ctx->batch);
    ctx->batch = NULL;
    free(ctx->rbuf);
    ctx->rbuf = NULL;
}

/* A completed batch: the log is marked processed up to what it held. @locality the job
 * thread */
static void tcp_batch_done(void *data, int64_t batch_time)
{
    sl_tcp_ctx *ctx = data;
    sl__receiver_log_done(ctx->rlog, batch_time, NULL, NULL);
}

/* A failed batch: with a log, its lines are pushed again (tcp_wal_tick); without, they are
 * gone (a sender cannot send again). @locality the job thread */
static void tcp_batch_failed(void *data, int64_t batch_time)
{
    sl_tcp_ctx *ctx = data;
    sl__receiver_log_failed(ctx->rlog, batch_time);
}

/* ==== Registration ==== */

static const sl_option tcp_options[] = {
    {.name = "mode",
     .type = SL_OPT_ENUM,
     .def = "connect",
     .choices = "connect|listen",
     .offset = offsetof(sl_tcp_ctx, mode),
     .doc = "connect: read lines from a server, reconnecting (Spark's socketTextStream); "
            "listen: accept senders on host:port"},
    {.name = "host",
     .type = SL_OPT_STR,
     .def = NULL,
     .offset = offsetof(sl_tcp_ctx, host),
     .doc = "server to connect to, or address to listen on "
            "(default localhost, or 127.0.0.1 when listening)"},
    {.name = "port",
     .type = SL_OPT_INT,
     .def = NULL,
     .min = 1,
     .max = 65535,
     .flags = SL_OPT_REQUIRED | SL_OPT_RANGE,
     .offset = offsetof(sl_tcp_ctx, port),
     .doc = "TCP port"},
    {.name = "reconnect_interval",
     .type = SL_OPT_DURATION,
     .def = "2s",
     .min = 10,
     .max = 3600000,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_tcp_ctx, reconnect_interval),
     .doc = "connect mode: wait this long before connecting again after a close or failure"},
    {.name = "read_buffer",
     .type = SL_OPT_SIZE,
     .def = "64KiB",
     .min = 1024,
     .max = 64.0 * 1024 * 1024,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_tcp_ctx, read_buffer),
     .doc = "bytes read at once (lines may be longer, up to max_record_size)"},
    {.name = "max_connections",
     .type = SL_OPT_INT,
     .def = "1024",
     .min = 1,
     .max = 65536,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_tcp_ctx, max_connections),
     .doc = "listen mode: senders connected at once; more are refused"},
    {.name = "wal",
     .type = SL_OPT_BOOL,
     .def = "false",
     .offset = offsetof(sl_tcp_ctx, wal_opts.wal),
     .doc = "keep a write-ahead log under the checkpoint directory (app.checkpoint_dir): "
            "every line is in it before it is pushed, so the lines received before a crash "
            "come back after the restart, the pending batches with exactly their lines "
            "(without it, what sluice holds in memory is lost at a crash: a sender cannot "
            "send again)"},
    {.name = "wal_segment_size",
     .type = SL_OPT_SIZE,
     .def = "64MiB",
     .min = 65536,
     .max = 1073741824.0,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_tcp_ctx, wal_opts.segment_size),
     .doc = "write-ahead log segment files are rolled at this size"},
    {.name = "wal_fsync",
     .type = SL_OPT_ENUM,
     .def = "block",
     .choices = "block|always|never",
     .offset = offsetof(sl_tcp_ctx, wal_opts.fsync),
     .doc = "block: fsync each block of lines before pushing it; always: each append (the "
            "same here); never: leave it to the OS (a crash of the machine may lose lines)"},
    {0},
};

/* sluice check --connect: connect mode connects to the server; listen mode binds its port
 * (and closes it), as start will. */
static int tcp_probe(void *vctx, sl_probe_report_fn report, void *opaque)
{
    sl_tcp_ctx *ctx = vctx;
    bool listen = ctx->mode == SL_TCP_LISTEN;
    const char *host = ctx->host ? ctx->host : listen ? "127.0.0.1" : "localhost";
    char endpoint[300], why[256] = "";
    snprintf(endpoint, sizeof(endpoint), "%s %s:%lld", listen ? "listen on" : "server", host,
             (long long)ctx->port);
    int rc = listen ? sl_probe_listen(host, (int)ctx->port, why, sizeof(why))
                    : sl_probe_tcp(host, (int)ctx->port, 3000, why, sizeof(why));
    report(opaque, endpoint, rc == SL_OK, why);
    return SL_OK;
}

const sl_connector sl__connector_tcp = {
    .name = "tcp",
    .description = "Lines from TCP: connect to a server (Spark's socketTextStream) or listen "
                   "for senders; one record per line. A last line without a newline is a "
                   "record when the sender closes the connection; when sluice stops (or the "
                   "connection fails) while a line is unfinished, that part is dropped and "
                   "logged (metric tcp_partial_lines_dropped), never emitted as half a line. With "
                   "wal: true, lines are logged before they are pushed and survive a crash",
    .flags = SL_SOURCE | SL_RECEIVER,
    .options = tcp_options,
    .ctx_size = sizeof(sl_tcp_ctx),
    .init = tcp_init,
    .start = tcp_start,
    .on_batch_done = tcp_batch_done,
    .on_batch_failed = tcp_batch_failed,
    .stop = tcp_stop,
    .destroy = tcp_destroy,
    .probe = tcp_probe,
};

/* Spark's socketTextStream: a tcp source connecting to host:port. */
sl_stream *sl_socket_text_stream(sl_context *ctx, const char *host, int port)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    return sl__simple_source(ctx, &sl__connector_tcp, "socket", "host", host, "port", p);
}

/* sl_http.c -- the HTTP status server: a status page like Spark's Streaming tab, a JSON
 * API, Prometheus /metrics, /health and /ready, served by libmicrohttpd (one internal
 * polling thread under SCHED_IDLE, so that clients cannot slow batches down; completed batch
 * infos are copied into a cache of the server's, and the engine's counters are read at most
 * every 50 ms, so that requests do not keep the context's lock busy).
 *
 * ==== Paths ====
 *
 *   GET /                      the status page (also /index.html); /batch?time=T is the page
 *                              of one batch (the same document; its script reads the path)
 *   GET /api/v1/status         the pipeline's summary (below)
 *   GET /api/v1/batches        completed batches, newest first. ?limit=N (1..1000, default
 *                              100); ?since=T only those with batch_time > T; ?status=
 *                              completed (default) | pending (running, then waiting) | all
 *   GET /api/v1/batches/T      the batch with batch_time T (completed or pending); 404 when
 *                              unknown, 400 when T is not a number
 *   GET /api/v1/inputs         the inputs (sources)
 *   GET /api/v1/sinks          the sinks
 *   GET /metrics               Prometheus text format 0.0.4 (sl_metrics.c)
 *   GET /health                200 "ok" while the process runs
 *   GET /ready                 200 {"ready":true} when the pipeline runs, every input is active
 *                              and the last batch's scheduling delay is under 2 batch
 *                              intervals; otherwise 503 {"ready":false,"reasons":[...]}
 *
 * HEAD works wherever GET does. Other methods get 405 with "Allow: GET, HEAD"; a request
 * target longer than 4 KiB gets 414; an unknown path 404. With a token, every request needs
 * "Authorization: Bearer TOKEN" (or ?token=TOKEN, for the page): 401 otherwise (compared in
 * constant time). Errors of the API are {"error": "..."}. At most max_connections (64) are
 * open at once (more wait in the listen backlog), and an idle connection is closed after
 * timeout_s (10 s). The page is served from memory (embedded at build time) with an ETag
 * and "Cache-Control: no-cache" (304 when unchanged); the API and /metrics with "no-store".
 * The engine's counters served are at most 50 ms old; pending lists hold at most 200
 * batches.
 *
 * ==== JSON shapes ====
 * Times are ms since the epoch, durations ms; null stands for "not yet" or "none".
 *
 * status:
 *   {"app": "wordcount", "version": "0.1.0", "state": "created|running|stopping|stopped",
 *    "now": 1700000000000, "start_time": 1700000000000|null, "uptime_ms": 5000,
 *    "batch_interval_ms": 1000, "batches_completed": 5, "batches_running": 1,
 *    "batches_waiting": 0, "records_received": 100, "records_processed": 90,
 *    "records_failed": 0, "records_oversize": 0, "inputs": 2, "inputs_active": 2,
 *    "receivers": 1, "receivers_active": 1, "sinks": 1,
 *    "last_batch": null | {"batch_time": T, "scheduling_delay_ms": 1,
 *                          "processing_time_ms": 12, "total_delay_ms": 13},
 *    "recent": {"batches": 5, "records": 90, "avg_input_rate": 18.0,
 *               "avg_scheduling_delay_ms": 1.2, "avg_processing_time_ms": 11.0,
 *               "avg_total_delay_ms": 12.2}}       (averages over the last 1000 batches,
 *                                                    null when there is none)
 * batch (an element of /api/v1/batches, or /api/v1/batches/T):
 *   {"batch_time": T, "status": "completed|running|waiting", "submission_time": T,
 *    "processing_start": T|null, "processing_end": T|null, "scheduling_delay_ms": n|null,
 *    "processing_time_ms": n|null, "total_delay_ms": n|null, "records": 18,
 *    "input_rate": 18.0 (records per second of batch interval), "failed_records": 0,
 *    "outputs_total": 1, "outputs_succeeded": 1, "error": null|"...",
 *    "inputs": [{"name": "lines", "records": 18, "rate_limit": 0 (when the batch was cut),
 *                "description": "2 blocks"}]}
 * input (an element of /api/v1/inputs):
 *   {"name": "lines", "type": "tcp", "receiver": true, "active": true, "records": 100,
 *    "records_oversize": 0, "avg_rate": 18.0 (over the last 1000 batches),
 *    "last_batch_records": 18, "max_rate": 0 (configured; 0: none), "rate_limit": 0 (in force
 *    now: max_rate or the backpressure estimate; 0: none), "estimated_rate": 0 (backpressure;
 *    0: none yet), "last_error": null | {"time": T, "message": "..."}}
 * sink (an element of /api/v1/sinks):
 *   {"name": "out", "type": "stdout", "state": "ok|failing|idle", "active": true,
 *    "records": 90, "records_rejected": 0 (left out: errors.tolerance all),
 *    "dead_letters": 0 (written to errors.dead_letter),
 *    "last_error": null | {"time": T, "message": "..."}}
 *
 * Secrets: no option value is ever served (instances are shown by name, type and state),
 * and error messages are scrubbed of the values of options flagged SL_OPT_SECRET and of the
 * token before they are served.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "sl_engine.h"
#include "sl_http.h"
#include "sl_metrics.h"

#define HTTP_BATCHES_KEPT  1000 /* like spark.streaming.ui.retainedBatches */
#define HTTP_DEFAULT_LIMIT 100
#define HTTP_MAX_PENDING   200 /* waiting batches listed at most */
#define HTTP_MAX_CONN      64
#define HTTP_TIMEOUT_S     10
#define HTTP_NICE          19 /* where SCHED_IDLE is refused */
#define HTTP_MAX_INSTANCES 1024
#define HTTP_SNAPSHOT_MS   50 /* how old the engine's statistics served may be */
#define HTTP_CSS_MARKER    "/*@APP_CSS@*/"
#define HTTP_JS_MARKER     "/*@APP_JS@*/"
#define HTTP_CT_JSON       "application/json"
#define HTTP_CT_TEXT       "text/plain; charset=utf-8"
#define HTTP_CT_HTML       "text/html; charset=utf-8"
#define HTTP_CT_METRICS    "text/plain; version=0.0.4; charset=utf-8"
#define HTTP_CSP                                                                                   \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "                  \
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "              \
    "frame-ancestors 'none'"

struct sl_http_server {
    sl_context *ctx;
    struct MHD_Daemon *daemon;
    char *token; /* NULL: none */
    size_t token_len;
    int port;
    char url[300];
    char *page; /* index.html with the CSS and the script inlined */
    size_t page_len;
    char etag[24];

    /* Completed batches, copied from the engine when it completes new ones, so that
     * requests do not hold the context's lock to read 1000 batch infos. */
    pthread_mutex_t cache_lock;
    sl_batch_info *ring; /* HTTP_BATCHES_KEPT; newest at (next - 1) */
    size_t nring, next;
    uint64_t seen; /* batches_completed when the cache was refreshed */
    sl_batch_info *scratch;

    pthread_mutex_t snap_lock;
    sl_metrics_snapshot snap;
    int64_t snap_time; /* monotonic ms; 0: none yet */
};

/* ==== Listen addresses ==== */

int sl_http_parse_listen(const char *listen, char *host, size_t hostsize, int *port, char *errstr,
                         size_t errsize)
{
    const char *colon, *h = listen, *hend;
    if (!listen || !*listen) {
        snprintf(errstr, errsize, "empty listen address (write HOST:PORT, e.g. %s)",
                 SL_HTTP_DEFAULT_LISTEN);
        return SL_ERR_INVAL;
    }
    if (listen[0] == '[') {
        hend = strchr(listen, ']');
        if (!hend || hend[1] != ':') {
            snprintf(errstr, errsize, "bad listen address '%s': write [IPV6]:PORT", listen);
            return SL_ERR_INVAL;
        }
        h = listen + 1;
        colon = hend + 1;
    } else {
        colon = strrchr(listen, ':');
        hend = colon;
        if (!colon) {
            snprintf(errstr, errsize, "bad listen address '%s': no port (write HOST:PORT)", listen);
            return SL_ERR_INVAL;
        }
        if (memchr(listen, ':', (size_t)(colon - listen))) {
            snprintf(errstr, errsize,
                     "bad listen address '%s': write an IPv6 address in brackets, "
                     "[::1]:4040",
                     listen);
            return SL_ERR_INVAL;
        }
    }
    size_t hlen = (size_t)(hend - h);
    if (hlen == 0 || hlen >= hostsize) {
        snprintf(errstr, errsize, "bad listen address '%s': %s", listen,
                 hlen ? "host name too long" : "no host (write e.g. 127.0.0.1:4040)");
        return SL_ERR_INVAL;
    }
    const char *p = colon + 1;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!*p || *end || errno || v < 0 || v > 65535 || *p == '-' || *p == '+' || *p == ' ') {
        snprintf(errstr, errsize, "bad listen address '%s': the port must be 0..65535", listen);
        return SL_ERR_INVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return SL_OK;
}

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
            return true;
        }
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            return in6->sin6_addr.s6_addr[12] == 127;
        }
    }
    return false;
}

/* Resolves host:port for listening. Returns the list (freeaddrinfo) or NULL with errstr. */
static struct addrinfo *resolve(const char *host, int port, char *errstr, size_t errsize)
{
    struct addrinfo hints, *res = NULL;
    char ps[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(ps, sizeof(ps), "%d", port);
    int gai = getaddrinfo(host, ps, &hints, &res);
    if (gai != 0) {
        snprintf(errstr, errsize, "cannot resolve listen host '%s': %s", host,
                 gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return NULL;
    }
    return res;
}

int sl_http_check_listen(const char *listen, bool has_token, bool allow_remote, char *errstr,
                         size_t errsize)
{
    char host[256];
    int port;
    int rc = sl_http_parse_listen(listen, host, sizeof(host), &port, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    struct addrinfo *res = resolve(host, port, errstr, errsize);
    if (!res) {
        return SL_ERR_INVAL;
    }
    bool loopback = true;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        loopback = loopback && addr_is_loopback(ai->ai_addr);
    }
    freeaddrinfo(res);
    if (!loopback && !has_token && !allow_remote) {
        snprintf(errstr, errsize,
                 "listen address '%s' is not a loopback address: set a token (clients "
                 "then send \"Authorization: Bearer TOKEN\"), or allow_remote: true to serve "
                 "it to anyone who can reach it",
                 listen);
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

/* Binds and listens on the first address of host:port that works. Returns the socket or
 * -1 with *err the errno of the last failure. */
static int open_listener(const char *host, int port, int *err, char *errstr, size_t errsize)
{
    struct addrinfo *res = resolve(host, port, errstr, errsize);
    *err = EINVAL;
    if (!res) {
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            *err = errno;
            continue;
        }
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (ai->ai_family == AF_INET6) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            *err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* ==== Small helpers ==== */

/* Compares the given token with the secret in time that depends only on the secret's length
 * and not on where they differ. */
static bool token_equal(const char *secret, size_t slen, const char *given)
{
    size_t glen = strlen(given);
    unsigned char d = (unsigned char)(slen != glen);
    for (size_t i = 0; i < slen; i++) {
        unsigned char g = glen ? (unsigned char)given[i % glen] : 0;
        d |= (unsigned char)((unsigned char)secret[i] ^ g);
    }
    return d == 0;
}

/* Scrubs one instance's secret option values from msg. */
static void scrub_instance(char *msg, size_t size, const sl_instance *ins)
{
    sl__scrub_options(
        msg, size, ins->role == SL_SOURCE ? sl_common_source_options() : sl_common_sink_options(),
        ins->conn->options, ins->opts);
}

/* Scrubs the token and every instance's secrets from msg. */
static void scrub(const sl_http_server *srv, char *msg, size_t size)
{
    sl__scrub(msg, size, srv->token);
    sl_instance *lists[2] = {srv->ctx->sources, srv->ctx->sinks};
    for (int k = 0; k < 2; k++) {
        for (sl_instance *ins = lists[k]; ins; ins = ins->next) {
            scrub_instance(msg, size, ins);
        }
    }
}

static sl_instance *find_instance(sl_context *ctx, const char *name, unsigned role)
{
    for (sl_instance *ins = role == SL_SOURCE ? ctx->sources : ctx->sinks; ins; ins = ins->next) {
        if (ins->name == name || strcmp(ins->name, name) == 0) {
            return ins;
        }
    }
    return NULL;
}

static json_t *json_ms(int64_t v, bool present)
{
    return present ? json_integer((json_int_t)v) : json_null();
}

static json_t *json_avg(double sum, size_t n)
{
    return n ? json_real(sum / (double)n) : json_null();
}

/* Parses a decimal int64; false when s is not one. */
static bool parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) {
        return false;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || end == s) {
        return false;
    }
    *out = v;
    return true;
}

/* The engine's state, at most HTTP_SNAPSHOT_MS old unless a batch completed since: the
 * context's lock is taken a few dozen times a second whatever the number of requests (a
 * low-priority server thread holding it would make the engine wait). */
static void snapshot(sl_http_server *srv, sl_metrics_snapshot *out)
{
    int64_t now = sl__mono_ns() / 1000000;
    uint64_t done = atomic_load(&srv->ctx->batches_completed);
    pthread_mutex_lock(&srv->snap_lock);
    if (!srv->snap_time || now - srv->snap_time >= HTTP_SNAPSHOT_MS ||
        done != srv->snap.stats.batches_completed) {
        sl__metrics_snapshot(srv->ctx, &srv->snap);
        srv->snap_time = now ? now : 1;
    }
    *out = srv->snap;
    pthread_mutex_unlock(&srv->snap_lock);
}

/* ==== The cache of completed batches ==== */

/* Copies the batches completed since the last call into the ring. Takes the context's lock
 * (inside the public calls) only to copy the new ones. @locks cache_lock held. */
static void cache_refresh(sl_http_server *srv, uint64_t completed)
{
    if (completed == srv->seen) {
        return;
    }
    uint64_t delta = completed > srv->seen ? completed - srv->seen : HTTP_BATCHES_KEPT;
    size_t want = (size_t)SL_MIN(delta + 1, (uint64_t)HTTP_BATCHES_KEPT);
    size_t got = sl_context_recent_batches(srv->ctx, srv->scratch, want);
    int64_t newest = INT64_MIN;
    if (srv->nring) {
        newest = srv->ring[(srv->next + HTTP_BATCHES_KEPT - 1) % HTTP_BATCHES_KEPT].batch_time;
    }
    for (size_t i = got; i-- > 0;) {
        if (srv->scratch[i].batch_time <= newest) {
            continue;
        }
        srv->ring[srv->next] = srv->scratch[i];
        srv->next = (srv->next + 1) % HTTP_BATCHES_KEPT;
        if (srv->nring < HTTP_BATCHES_KEPT) {
            srv->nring++;
        }
    }
    srv->seen = completed;
}

/* The i-th newest cached batch. @locks cache_lock held. */
static const sl_batch_info *cache_at(const sl_http_server *srv, size_t i)
{
    return &srv->ring[(srv->next + 2 * HTTP_BATCHES_KEPT - 1 - i) % HTTP_BATCHES_KEPT];
}

/* ==== JSON documents ==== */

static json_t *batch_json(const sl_http_server *srv, const sl_batch_info *b, const char *status)
{
    double interval_s = (double)sl_context_batch_interval(srv->ctx) / 1000.0;
    bool started = b->processing_start > 0;
    bool done = strcmp(status, "completed") == 0;
    char err[sizeof(b->error)];
    sl__strlcpy(err, b->error, sizeof(err));
    scrub(srv, err, sizeof(err));

    json_t *inputs = json_array();
    for (size_t i = 0; i < b->ninputs && i < SL_MAX_INPUTS_PER_INFO; i++) {
        char desc[sizeof(b->inputs[i].description)];
        sl__strlcpy(desc, b->inputs[i].description, sizeof(desc));
        scrub(srv, desc, sizeof(desc));
        json_array_append_new(inputs,
                              json_pack("{s:s, s:I, s:f, s:s}", "name",
                                        b->inputs[i].name ? b->inputs[i].name : "", "records",
                                        (json_int_t)b->inputs[i].records, "rate_limit",
                                        b->inputs[i].rate, "description", desc));
    }
    json_t *o = json_object();
    json_object_set_new(o, "batch_time", json_integer(b->batch_time));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "submission_time", json_integer(b->submission_time));
    json_object_set_new(o, "processing_start", json_ms(b->processing_start, started));
    json_object_set_new(o, "processing_end", json_ms(b->processing_end, done));
    json_object_set_new(o, "scheduling_delay_ms", json_ms(b->scheduling_delay, started));
    json_object_set_new(o, "processing_time_ms", json_ms(b->processing_time, done));
    json_object_set_new(o, "total_delay_ms", json_ms(b->total_delay, done));
    json_object_set_new(o, "records", json_integer((json_int_t)b->records));
    json_object_set_new(o, "input_rate",
                        json_real(interval_s > 0 ? (double)b->records / interval_s : 0));
    json_object_set_new(o, "failed_records", json_integer((json_int_t)b->failed_records));
    json_object_set_new(o, "outputs_total", json_integer(b->outputs_total));
    json_object_set_new(o, "outputs_succeeded", json_integer(b->outputs_succeeded));
    json_object_set_new(o, "error", err[0] ? json_string(err) : json_null());
    json_object_set_new(o, "inputs", inputs);
    return o;
}

/* Averages over the cached batches. @locks cache_lock held. */
typedef struct recent_stats {
    size_t n;
    uint64_t records;
    double rate, sched, proc, total;
} recent_stats;

static recent_stats recent(const sl_http_server *srv)
{
    recent_stats r = {0};
    double interval_s = (double)sl_context_batch_interval(srv->ctx) / 1000.0;
    for (size_t i = 0; i < srv->nring; i++) {
        const sl_batch_info *b = cache_at(srv, i);
        r.n++;
        r.records += b->records;
        r.rate += interval_s > 0 ? (double)b->records / interval_s : 0;
        r.sched += (double)SL_MAX(b->scheduling_delay, 0);
        r.proc += (double)SL_MAX(b->processing_time, 0);
        r.total += (double)SL_MAX(b->total_delay, 0);
    }
    return r;
}

/* The instances, or NULL when out of memory; *n is set. Free with free(). */
static sl_instance_info *instances(sl_context *ctx, size_t *n)
{
    size_t want = SL_MIN(sl_context_instances(ctx, NULL, 0), (size_t)HTTP_MAX_INSTANCES);
    sl_instance_info *infos = calloc(want ? want : 1, sizeof(*infos));
    if (!infos) {
        return NULL;
    }
    *n = SL_MIN(want, sl_context_instances(ctx, infos, want));
    return infos;
}

static json_t *last_error_json(const sl_http_server *srv, const sl_instance_info *i)
{
    if (!i->last_error_time && !i->last_error[0]) {
        return json_null();
    }
    char msg[sizeof(i->last_error)];
    sl__strlcpy(msg, i->last_error, sizeof(msg));
    scrub(srv, msg, sizeof(msg));
    return json_pack("{s:I, s:s}", "time", (json_int_t)i->last_error_time, "message", msg);
}

static json_t *status_json(sl_http_server *srv)
{
    sl_context *ctx = srv->ctx;
    sl_metrics_snapshot snap;
    snapshot(srv, &snap);
    const sl_context_stats st = snap.stats;
    bool is_running = snap.batch_running;
    size_t n = 0;
    sl_instance_info *infos = instances(ctx, &n);
    if (!infos) {
        return NULL;
    }
    int inputs = 0, inputs_active = 0, receivers = 0, receivers_active = 0, sinks = 0;
    for (size_t i = 0; i < n; i++) {
        if (infos[i].role == SL_SINK) {
            sinks++;
            continue;
        }
        inputs++;
        inputs_active += infos[i].active;
        sl_instance *ins = find_instance(ctx, infos[i].name, SL_SOURCE);
        if (ins && ins->receiver) {
            receivers++;
            receivers_active += infos[i].active;
        }
    }
    free(infos);

    pthread_mutex_lock(&srv->cache_lock);
    cache_refresh(srv, st.batches_completed);
    recent_stats r = recent(srv);
    json_t *last = json_null();
    if (srv->nring) {
        const sl_batch_info *b = cache_at(srv, 0);
        json_decref(last);
        last =
            json_pack("{s:I, s:I, s:I, s:I}", "batch_time", (json_int_t)b->batch_time,
                      "scheduling_delay_ms", (json_int_t)b->scheduling_delay, "processing_time_ms",
                      (json_int_t)b->processing_time, "total_delay_ms", (json_int_t)b->total_delay);
    }
    pthread_mutex_unlock(&srv->cache_lock);

    int64_t now = sl__now_ms();
    json_t *rec = json_object();
    json_object_set_new(rec, "batches", json_integer((json_int_t)r.n));
    json_object_set_new(rec, "records", json_integer((json_int_t)r.records));
    json_object_set_new(rec, "avg_input_rate", json_avg(r.rate, r.n));
    json_object_set_new(rec, "avg_scheduling_delay_ms", json_avg(r.sched, r.n));
    json_object_set_new(rec, "avg_processing_time_ms", json_avg(r.proc, r.n));
    json_object_set_new(rec, "avg_total_delay_ms", json_avg(r.total, r.n));

    json_t *o = json_object();
    json_object_set_new(o, "app", json_string(sl_context_name(ctx)));
    json_object_set_new(o, "version", json_string(SLUICE_VERSION));
    json_object_set_new(o, "state", json_string(snap.state));
    json_object_set_new(o, "now", json_integer(now));
    json_object_set_new(o, "start_time", json_ms(st.start_time, st.start_time > 0));
    json_object_set_new(o, "uptime_ms", json_integer(st.start_time > 0 ? now - st.start_time : 0));
    json_object_set_new(o, "batch_interval_ms", json_integer(sl_context_batch_interval(ctx)));
    json_object_set_new(o, "batches_completed", json_integer((json_int_t)st.batches_completed));
    json_object_set_new(o, "batches_running", json_integer(is_running ? 1 : 0));
    json_object_set_new(o, "batches_waiting", json_integer((json_int_t)st.batches_waiting));
    json_object_set_new(o, "records_received", json_integer((json_int_t)st.records_received));
    json_object_set_new(o, "records_processed", json_integer((json_int_t)st.records_processed));
    json_object_set_new(o, "records_failed", json_integer((json_int_t)st.records_failed));
    json_object_set_new(o, "records_oversize", json_integer((json_int_t)st.records_oversize));
    json_object_set_new(o, "inputs", json_integer(inputs));
    json_object_set_new(o, "inputs_active", json_integer(inputs_active));
    json_object_set_new(o, "receivers", json_integer(receivers));
    json_object_set_new(o, "receivers_active", json_integer(receivers_active));
    json_object_set_new(o, "sinks", json_integer(sinks));
    json_object_set_new(o, "last_batch", last);
    json_object_set_new(o, "recent", rec);
    return o;
}

static json_t *inputs_json(sl_http_server *srv)
{
    sl_context *ctx = srv->ctx;
    sl_metrics_snapshot snap;
    snapshot(srv, &snap);
    const sl_context_stats st = snap.stats;
    size_t n = 0;
    sl_instance_info *infos = instances(ctx, &n);
    if (!infos) {
        return NULL;
    }
    double interval_s = (double)sl_context_batch_interval(ctx) / 1000.0;
    json_t *arr = json_array();
    pthread_mutex_lock(&srv->cache_lock);
    cache_refresh(srv, st.batches_completed);
    for (size_t i = 0; i < n; i++) {
        const sl_instance_info *in = &infos[i];
        if (in->role != SL_SOURCE) {
            continue;
        }
        uint64_t sum = 0, last = 0;
        for (size_t k = 0; k < srv->nring; k++) {
            const sl_batch_info *b = cache_at(srv, k);
            for (size_t j = 0; j < b->ninputs && j < SL_MAX_INPUTS_PER_INFO; j++) {
                if (b->inputs[j].name && strcmp(b->inputs[j].name, in->name) == 0) {
                    sum += b->inputs[j].records;
                    last = k == 0 ? b->inputs[j].records : last;
                }
            }
        }
        double avg =
            srv->nring && interval_s > 0 ? (double)sum / ((double)srv->nring * interval_s) : 0;
        sl_instance *ins = find_instance(ctx, in->name, SL_SOURCE);
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(in->name));
        json_object_set_new(o, "type", json_string(in->type));
        json_object_set_new(o, "receiver", json_boolean(ins && ins->receiver));
        json_object_set_new(o, "active", json_boolean(in->active));
        json_object_set_new(o, "records", json_integer((json_int_t)in->records));
        json_object_set_new(o, "records_oversize", json_integer((json_int_t)in->oversize));
        json_object_set_new(o, "avg_rate", json_real(avg));
        json_object_set_new(o, "last_batch_records", json_integer((json_int_t)last));
        json_object_set_new(o, "max_rate", json_real(in->max_rate));
        json_object_set_new(o, "rate_limit", json_real(in->rate_limit));
        json_object_set_new(o, "estimated_rate", json_real(in->estimated_rate));
        json_object_set_new(o, "last_error", last_error_json(srv, in));
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&srv->cache_lock);
    free(infos);
    return arr;
}

static json_t *sinks_json(sl_http_server *srv)
{
    size_t n = 0;
    sl_instance_info *infos = instances(srv->ctx, &n);
    if (!infos) {
        return NULL;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const sl_instance_info *in = &infos[i];
        if (in->role != SL_SINK) {
            continue;
        }
        const char *state = in->active ? "ok" : in->last_error_time ? "failing" : "idle";
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(in->name));
        json_object_set_new(o, "type", json_string(in->type));
        json_object_set_new(o, "state", json_string(state));
        json_object_set_new(o, "active", json_boolean(in->active));
        json_object_set_new(o, "records", json_integer((json_int_t)in->records));
        json_object_set_new(o, "records_rejected", json_integer((json_int_t)in->rejected));
        json_object_set_new(o, "dead_letters", json_integer((json_int_t)in->dead_letters));
        json_object_set_new(o, "last_error", last_error_json(srv, in));
        json_array_append_new(arr, o);
    }
    free(infos);
    return arr;
}

/* Pending batches (running first, then waiting) appended to arr while limit allows and
 * their time is after since. */
static void append_pending(sl_http_server *srv, json_t *arr, size_t limit, int64_t since)
{
    sl_batch_info *p = calloc(HTTP_MAX_PENDING, sizeof(*p));
    if (!p) {
        return;
    }
    size_t n = sl_context_pending_batches(srv->ctx, p, HTTP_MAX_PENDING);
    for (size_t i = 0; i < n && json_array_size(arr) < limit; i++) {
        if (p[i].batch_time > since) {
            const char *st = p[i].processing_start > 0 ? "running" : "waiting";
            json_array_append_new(arr, batch_json(srv, &p[i], st));
        }
    }
    free(p);
}

/* ==== Responses ==== */

typedef struct http_req {
    sl_http_server *srv;
    struct MHD_Connection *conn;
} http_req;

/* Queues a response. body is taken over (freed by MHD) when must_free, else static. */
static enum MHD_Result respond(http_req *r, unsigned status, const char *ctype, const char *body,
                               size_t len, bool must_free, const char *cache)
{
    struct MHD_Response *res = MHD_create_response_from_buffer(
        len, (void *)body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!res) {
        if (must_free) {
            free((void *)body);
        }
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, cache ? cache : "no-store");
    MHD_add_response_header(res, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(res, "Referrer-Policy", "no-referrer");
    if (status == MHD_HTTP_UNAUTHORIZED) {
        MHD_add_response_header(res, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"sluice\"");
    }
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(res, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    if (strcmp(ctype, HTTP_CT_HTML) == 0) {
        MHD_add_response_header(res, "Content-Security-Policy", HTTP_CSP);
        MHD_add_response_header(res, "X-Frame-Options", "DENY");
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, status, res);
    MHD_destroy_response(res);
    return ret;
}

static enum MHD_Result respond_text(http_req *r, unsigned status, const char *text)
{
    return respond(r, status, HTTP_CT_TEXT, text, strlen(text), false, NULL);
}

/* Serializes o (taking it over) and sends it. */
static enum MHD_Result respond_json(http_req *r, unsigned status, json_t *o)
{
    if (!o) {
        return respond_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!s) {
        return respond_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    return respond(r, status, HTTP_CT_JSON, s, strlen(s), true, "no-store");
}

static enum MHD_Result respond_error(http_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum MHD_Result respond_error(http_req *r, unsigned status, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return respond_json(r, status, json_pack("{s:s}", "error", msg));
}

/* ==== Routes ==== */

static enum MHD_Result route_page(http_req *r)
{
    const char *inm =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && strstr(inm, r->srv->etag)) {
        struct MHD_Response *res =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!res) {
            return MHD_NO;
        }
        MHD_add_response_header(res, MHD_HTTP_HEADER_ETAG, r->srv->etag);
        MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ret = MHD_queue_response(r->conn, MHD_HTTP_NOT_MODIFIED, res);
        MHD_destroy_response(res);
        return ret;
    }
    struct MHD_Response *res =
        MHD_create_response_from_buffer(r->srv->page_len, r->srv->page, MHD_RESPMEM_PERSISTENT);
    if (!res) {
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, HTTP_CT_HTML);
    /* Revalidated every time (the binary may have changed), answered 304 when unchanged. */
    MHD_add_response_header(res, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(res, MHD_HTTP_HEADER_ETAG, r->srv->etag);
    MHD_add_response_header(res, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(res, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(res, "Content-Security-Policy", HTTP_CSP);
    MHD_add_response_header(res, "X-Frame-Options", "DENY");
    enum MHD_Result ret = MHD_queue_response(r->conn, MHD_HTTP_OK, res);
    MHD_destroy_response(res);
    return ret;
}

static enum MHD_Result route_batches(http_req *r)
{
    sl_http_server *srv = r->srv;
    const char *ls = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    const char *ss = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "since");
    const char *st = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "status");
    int64_t limit = HTTP_DEFAULT_LIMIT, since = INT64_MIN;
    if (ls && (!parse_i64(ls, &limit) || limit < 1 || limit > HTTP_BATCHES_KEPT)) {
        return respond_error(r, MHD_HTTP_BAD_REQUEST, "limit must be an integer in 1..%d",
                             HTTP_BATCHES_KEPT);
    }
    if (ss && !parse_i64(ss, &since)) {
        return respond_error(r, MHD_HTTP_BAD_REQUEST, "since must be a batch time in ms");
    }
    bool want_pending = false, want_completed = true;
    if (st && strcmp(st, "pending") == 0) {
        want_pending = true;
        want_completed = false;
    } else if (st && strcmp(st, "all") == 0) {
        want_pending = true;
    } else if (st && strcmp(st, "completed") != 0) {
        return respond_error(r, MHD_HTTP_BAD_REQUEST, "status must be completed, pending or all");
    }
    json_t *arr = json_array();
    if (want_pending) {
        append_pending(srv, arr, (size_t)limit, since);
    }
    if (want_completed) {
        sl_metrics_snapshot snap;
        snapshot(srv, &snap);
        pthread_mutex_lock(&srv->cache_lock);
        cache_refresh(srv, snap.stats.batches_completed);
        for (size_t i = 0; i < srv->nring && json_array_size(arr) < (size_t)limit; i++) {
            const sl_batch_info *b = cache_at(srv, i);
            if (b->batch_time <= since) {
                break;
            }
            json_array_append_new(arr, batch_json(srv, b, "completed"));
        }
        pthread_mutex_unlock(&srv->cache_lock);
    }
    return respond_json(r, MHD_HTTP_OK, arr);
}

static enum MHD_Result route_batch(http_req *r, const char *ts)
{
    sl_http_server *srv = r->srv;
    int64_t t;
    if (!parse_i64(ts, &t)) {
        return respond_error(r, MHD_HTTP_BAD_REQUEST, "a batch time is a number of ms");
    }
    sl_metrics_snapshot snap;
    snapshot(srv, &snap);
    json_t *found = NULL;
    pthread_mutex_lock(&srv->cache_lock);
    cache_refresh(srv, snap.stats.batches_completed);
    for (size_t i = 0; i < srv->nring && !found; i++) {
        const sl_batch_info *b = cache_at(srv, i);
        if (b->batch_time == t) {
            found = batch_json(srv, b, "completed");
        }
    }
    pthread_mutex_unlock(&srv->cache_lock);
    if (!found) {
        json_t *arr = json_array();
        append_pending(srv, arr, HTTP_MAX_PENDING, t - 1);
        json_t *first = json_array_get(arr, 0);
        if (first && json_integer_value(json_object_get(first, "batch_time")) == t) {
            found = json_incref(first);
        }
        json_decref(arr);
    }
    if (!found) {
        return respond_error(r, MHD_HTTP_NOT_FOUND,
                             "no batch at time %" PRId64 " among the last %d", t,
                             HTTP_BATCHES_KEPT);
    }
    return respond_json(r, MHD_HTTP_OK, found);
}

static enum MHD_Result route_ready(http_req *r)
{
    sl_context *ctx = r->srv->ctx;
    sl_metrics_snapshot snap;
    snapshot(r->srv, &snap);
    json_t *reasons = json_array();
    const char *state = snap.state;
    if (strcmp(state, "running") != 0) {
        json_array_append_new(reasons, json_sprintf("the pipeline is %s, not running", state));
    }
    size_t n = 0;
    sl_instance_info *infos = instances(ctx, &n);
    for (size_t i = 0; infos && i < n; i++) {
        if (infos[i].role == SL_SOURCE && !infos[i].active) {
            json_array_append_new(reasons, json_sprintf("input '%s' is not active", infos[i].name));
        }
    }
    free(infos);
    const sl_context_stats st = snap.stats;
    int64_t interval = sl_context_batch_interval(ctx);
    if (st.batches_completed > 0 && st.last_scheduling_delay >= 2 * interval) {
        json_array_append_new(reasons, json_sprintf("the last batch's scheduling delay (%" PRId64
                                                    " ms) is not under 2 batch intervals (%" PRId64
                                                    " ms): falling behind",
                                                    st.last_scheduling_delay, 2 * interval));
    }
    bool ready = json_array_size(reasons) == 0;
    json_t *o = json_object();
    json_object_set_new(o, "ready", json_boolean(ready));
    if (ready) {
        json_decref(reasons);
    } else {
        json_object_set_new(o, "reasons", reasons);
    }
    return respond_json(r, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, o);
}

static enum MHD_Result route_metrics(http_req *r)
{
    sl_metrics_buf b = {0};
    sl_metrics_snapshot snap;
    snapshot(r->srv, &snap);
    sl__metrics_render(r->srv->ctx, &snap, &b);
    if (b.failed || !b.s) {
        sl__metrics_buf_free(&b);
        return respond_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    return respond(r, MHD_HTTP_OK, HTTP_CT_METRICS, b.s, b.len, true, "no-store");
}

/* True when the request carries the token (or none is needed). */
static bool authorized(http_req *r)
{
    const sl_http_server *srv = r->srv;
    if (!srv->token) {
        return true;
    }
    const char *given = NULL;
    const char *h =
        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        given = h + 7;
        while (*given == ' ') {
            given++;
        }
    } else {
        given = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "token");
    }
    return given && token_equal(srv->token, srv->token_len, given);
}

/* The server's threads run under SCHED_IDLE: an engine thread that wakes up preempts them
 * at once, so clients cannot take CPU time from batches, yet the server keeps a small share
 * when the engine saturates the machine, so /metrics still answers. Where the policy is
 * refused, the lowest nice value (Linux sets both per thread). */
static void lower_priority(void)
{
    static _Thread_local bool done;
    if (!done) {
        done = true;
        struct sched_param sp = {0};
        if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0) {
            setpriority(PRIO_PROCESS, (id_t)gettid(), HTTP_NICE);
        }
    }
}

/* The request's state, kept in *req_cls without allocating: the length of the whole
 * request target (with its query) for the 414 check, shifted left, and in bit 0 whether the
 * handler has been called once. */
#define REQ_SEEN 1u

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    return (void *)(uintptr_t)((strlen(uri) + 1) << 1);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    http_req r = {.srv = cls, .conn = conn};
    lower_priority();
    uintptr_t state = (uintptr_t)*req_cls;
    size_t target_len = state >> 1 ? (state >> 1) - 1 : strlen(url);
    if (target_len > SL_HTTP_MAX_URL) {
        return respond_text(&r, MHD_HTTP_URI_TOO_LONG, "request target longer than 4 KiB\n");
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return respond_text(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are allowed\n");
    }
    /* Answered once the request is read whole (a body sent with GET is dropped), so that
     * the connection can be kept alive. */
    if (!(state & REQ_SEEN) || *upload_data_size) {
        *req_cls = (void *)(state | REQ_SEEN);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!authorized(&r)) {
        return respond_text(&r, MHD_HTTP_UNAUTHORIZED,
                            "a token is required: send \"Authorization: Bearer TOKEN\"\n");
    }
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0 || strcmp(url, "/batch") == 0) {
        return route_page(&r);
    }
    if (strcmp(url, "/health") == 0) {
        return respond_text(&r, MHD_HTTP_OK, "ok\n");
    }
    if (strcmp(url, "/ready") == 0) {
        return route_ready(&r);
    }
    if (strcmp(url, "/metrics") == 0) {
        return route_metrics(&r);
    }
    if (strcmp(url, "/api/v1/status") == 0) {
        return respond_json(&r, MHD_HTTP_OK, status_json(r.srv));
    }
    if (strcmp(url, "/api/v1/batches") == 0) {
        return route_batches(&r);
    }
    if (strncmp(url, "/api/v1/batches/", 16) == 0 && url[16] && !strchr(url + 16, '/')) {
        return route_batch(&r, url + 16);
    }
    if (strcmp(url, "/api/v1/inputs") == 0) {
        return respond_json(&r, MHD_HTTP_OK, inputs_json(r.srv));
    }
    if (strcmp(url, "/api/v1/sinks") == 0) {
        return respond_json(&r, MHD_HTTP_OK, sinks_json(r.srv));
    }
    if (strncmp(url, "/api/", 5) == 0) {
        return respond_error(&r, MHD_HTTP_NOT_FOUND, "no such API path");
    }
    return respond_text(&r, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* libmicrohttpd's own messages, at debug level, scrubbed of the token. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    const sl_http_server *srv = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    sl__scrub(msg, sizeof(msg), srv->token);
    sl_log(SL_LOG_DEBUG, "http: %s", msg);
}

/* ==== Start and stop ==== */

static const sl_ui_file *ui_file(const char *name)
{
    for (const sl_ui_file *f = sl_ui_files; f->name; f++) {
        if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

/* Builds the page: index.html with app.css and app.js put in place of their markers. */
static int build_page(sl_http_server *srv)
{
    const sl_ui_file *html = ui_file("index.html"), *css = ui_file("app.css"),
                     *js = ui_file("app.js");
    if (!html || !css || !js) {
        return SL_ERR_NOTFOUND;
    }
    const char *text = (const char *)html->data;
    const char *c = strstr(text, HTTP_CSS_MARKER), *j = strstr(text, HTTP_JS_MARKER);
    if (!c || !j || j < c) {
        return SL_ERR_INVAL;
    }
    sl_metrics_buf b = {0};
    sl__metrics_buf_add(&b, text, (size_t)(c - text));
    sl__metrics_buf_add(&b, (const char *)css->data, css->len);
    const char *after_c = c + strlen(HTTP_CSS_MARKER);
    sl__metrics_buf_add(&b, after_c, (size_t)(j - after_c));
    sl__metrics_buf_add(&b, (const char *)js->data, js->len);
    const char *after_j = j + strlen(HTTP_JS_MARKER);
    sl__metrics_buf_add(&b, after_j, html->len - (size_t)(after_j - text));
    if (b.failed) {
        sl__metrics_buf_free(&b);
        return SL_ERR_NOMEM;
    }
    srv->page = b.s;
    srv->page_len = b.len;
    snprintf(srv->etag, sizeof(srv->etag), "\"%016" PRIx64 "\"", sl__hash(b.s, b.len));
    return SL_OK;
}

static void server_free(sl_http_server *srv)
{
    if (!srv) {
        return;
    }
    if (srv->token) {
        memset(srv->token, 0, srv->token_len);
    }
    free(srv->token);
    free(srv->page);
    free(srv->ring);
    free(srv->scratch);
    pthread_mutex_destroy(&srv->cache_lock);
    pthread_mutex_destroy(&srv->snap_lock);
    free(srv);
}

sl_http_server *sl_http_start(sl_context *ctx, const sl_http_conf *conf, char *errstr,
                              size_t errsize)
{
    sl_http_conf defaults = {0};
    conf = conf ? conf : &defaults;
    const char *listen_at = conf->listen && *conf->listen ? conf->listen : SL_HTTP_DEFAULT_LISTEN;
    bool has_token = conf->token && *conf->token;
    if (!ctx) {
        snprintf(errstr, errsize, "no context");
        return NULL;
    }
    if (sl_http_check_listen(listen_at, has_token, conf->allow_remote, errstr, errsize) != SL_OK) {
        return NULL;
    }
    char host[256];
    int port;
    sl_http_parse_listen(listen_at, host, sizeof(host), &port, errstr, errsize);

    sl_http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&srv->cache_lock, NULL);
    pthread_mutex_init(&srv->snap_lock, NULL);
    srv->ctx = ctx;
    srv->ring = calloc(HTTP_BATCHES_KEPT, sizeof(*srv->ring));
    srv->scratch = calloc(HTTP_BATCHES_KEPT, sizeof(*srv->scratch));
    if (has_token) {
        srv->token = strdup(conf->token);
        srv->token_len = strlen(conf->token);
    }
    if (!srv->ring || !srv->scratch || (has_token && !srv->token)) {
        snprintf(errstr, errsize, "out of memory");
        server_free(srv);
        return NULL;
    }
    int rc = build_page(srv);
    if (rc != SL_OK) {
        snprintf(errstr, errsize, "the embedded status page is incomplete: %s", sl_err2str(rc));
        server_free(srv);
        return NULL;
    }

    int retries = conf->port_retries > 0 && port > 0 ? conf->port_retries : 0;
    int fd = -1, err = 0;
    int tried = port;
    for (int i = 0; i <= retries && fd < 0 && tried <= 65535; i++, tried++) {
        fd = open_listener(host, tried, &err, errstr, errsize);
        if (fd < 0 && err != EADDRINUSE) {
            break;
        }
    }
    if (fd < 0) {
        if (retries) {
            snprintf(errstr, errsize, "cannot listen on %s:%d..%d: %s", host, port, tried - 1,
                     strerror(err));
        } else {
            snprintf(errstr, errsize, "cannot listen on %s: %s", listen_at, strerror(err));
        }
        server_free(srv);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    } else {
        srv->port = tried - 1;
    }
    bool v6 = ss.ss_family == AF_INET6;
    snprintf(srv->url, sizeof(srv->url), "http://%s%s%s:%d/", v6 ? "[" : "", host, v6 ? "]" : "",
             srv->port);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (v6) {
        flags |= MHD_USE_IPv6;
    }
    unsigned max_conn = conf->max_connections ? conf->max_connections : HTTP_MAX_CONN;
    unsigned timeout = conf->timeout_s ? conf->timeout_s : HTTP_TIMEOUT_S;
    srv->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, handle, srv, MHD_OPTION_LISTEN_SOCKET, fd,
                         MHD_OPTION_CONNECTION_LIMIT, max_conn, MHD_OPTION_CONNECTION_TIMEOUT,
                         timeout, MHD_OPTION_URI_LOG_CALLBACK, uri_logger, srv,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv, MHD_OPTION_END);
    if (!srv->daemon) {
        close(fd);
        snprintf(errstr, errsize, "cannot start the HTTP server on %s", srv->url);
        server_free(srv);
        return NULL;
    }
    return srv;
}

void sl_http_stop(sl_http_server *srv)
{
    if (!srv) {
        return;
    }
    MHD_stop_daemon(srv->daemon);
    server_free(srv);
}

int sl_http_port(const sl_http_server *srv)
{
    return srv->port;
}

const char *sl_http_url(const sl_http_server *srv)
{
    return srv->url;
}

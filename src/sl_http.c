/* sl_http.c -- the HTTP status server: its routes, responses, start and stop.
 *
 * A status page like Spark's Streaming tab, a JSON API (its documents: sl_http_json.c),
 * Prometheus /metrics, /health and /ready, served by libmicrohttpd (one internal polling
 * thread under SCHED_IDLE, so that clients cannot slow batches down; completed batch infos
 * are copied into a cache of the server's, and the engine's counters are read at most every
 * 50 ms, so that requests do not keep the context's lock busy). Listen addresses are parsed,
 * checked and opened by sl_http_listen.c.
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
 *   GET /ready                 200 {"ready":true} when the pipeline runs, every input is active,
 *                              no sink is retrying a failed write, at most 10 batches wait,
 *                              none has waited 10 batch intervals to start and the last
 *                              batch's scheduling delay is under 2 batch intervals;
 *                              otherwise 503 {"ready":false,"reasons":[...]}, one per cause
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
 * Secrets: no option value is ever served (instances are shown by name, type and state),
 * and error messages are scrubbed of the values of options flagged SL_OPT_SECRET and of the
 * token before they are served.
 */
#include <errno.h>
#include <inttypes.h>
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

#include "sl_http_int.h"
#include "sl_util.h"

#define HTTP_DEFAULT_LIMIT 100
#define HTTP_MAX_CONN      64
#define HTTP_TIMEOUT_S     10
#define HTTP_NICE          19 /* where SCHED_IDLE is refused */
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
        sl__http_append_pending(srv, arr, (size_t)limit, since);
    }
    if (want_completed) {
        sl_metrics_snapshot snap;
        sl__http_snapshot(srv, &snap);
        pthread_mutex_lock(&srv->cache_lock);
        sl__http_cache_refresh(srv, snap.stats.batches_completed);
        for (size_t i = 0; i < srv->nring && json_array_size(arr) < (size_t)limit; i++) {
            const sl_batch_info *b = sl__http_cache_at(srv, i);
            if (b->batch_time <= since) {
                break;
            }
            json_array_append_new(arr, sl__http_batch_json(srv, b, "completed"));
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
    if (t < 0 || t > SL_TIME_MAX_MS) { /* no batch has it, and t - 1 below must not wrap */
        return respond_error(r, MHD_HTTP_NOT_FOUND,
                             "no batch at time %" PRId64 ": batch times are 0..%" PRId64 " ms", t,
                             SL_TIME_MAX_MS);
    }
    sl_metrics_snapshot snap;
    sl__http_snapshot(srv, &snap);
    json_t *found = NULL;
    pthread_mutex_lock(&srv->cache_lock);
    sl__http_cache_refresh(srv, snap.stats.batches_completed);
    for (size_t i = 0; i < srv->nring && !found; i++) {
        const sl_batch_info *b = sl__http_cache_at(srv, i);
        if (b->batch_time == t) {
            found = sl__http_batch_json(srv, b, "completed");
        }
    }
    pthread_mutex_unlock(&srv->cache_lock);
    if (!found) {
        json_t *arr = json_array();
        sl__http_append_pending(srv, arr, HTTP_MAX_PENDING, t - 1);
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

#define READY_MAX_WAITING        10 /* /ready: more batches waiting is falling behind */
#define READY_MAX_WAIT_INTERVALS 10 /* and so is a batch waiting this many intervals */

static enum MHD_Result route_ready(http_req *r)
{
    sl_context *ctx = r->srv->ctx;
    sl_metrics_snapshot snap;
    sl__http_snapshot(r->srv, &snap);
    json_t *reasons = json_array();
    const char *state = snap.state;
    if (strcmp(state, "running") != 0) {
        json_array_append_new(reasons, json_sprintf("the pipeline is %s, not running", state));
    }
    size_t n = 0;
    sl_instance_info *infos = sl__http_instances(ctx, &n);
    for (size_t i = 0; infos && i < n; i++) {
        if (infos[i].role == SL_SOURCE && !infos[i].active) {
            json_array_append_new(reasons, json_sprintf("input '%s' is not active", infos[i].name));
        }
    }
    int64_t now = sl__now_ms();
    for (size_t i = 0; infos && i < n; i++) {
        if (infos[i].role == SL_SINK && infos[i].retrying_since > 0) {
            json_array_append_new(
                reasons,
                json_sprintf("sink '%s' cannot write: retrying for %" PRId64 " s: %s",
                             infos[i].name, SL_MAX(now - infos[i].retrying_since, 0) / 1000,
                             infos[i].last_error[0] ? infos[i].last_error : "(no error reported)"));
        }
    }
    free(infos);
    const sl_context_stats st = snap.stats;
    int64_t interval = sl_context_batch_interval(ctx);
    if (st.batches_waiting > READY_MAX_WAITING) {
        json_array_append_new(reasons,
                              json_sprintf("%" PRIu64 " batches are waiting (more than %d): "
                                           "falling behind",
                                           st.batches_waiting, READY_MAX_WAITING));
    }
    /* The batches that wait have not started: their delay grows while a batch is stuck. */
    sl_batch_info pending[2];
    size_t np = sl_context_pending_batches(ctx, pending, 2);
    for (size_t i = 0; i < np; i++) {
        int64_t waited = now - pending[i].submission_time;
        if (pending[i].processing_start == 0 && waited >= READY_MAX_WAIT_INTERVALS * interval) {
            json_array_append_new(
                reasons, json_sprintf("batch %" PRId64 " has waited %" PRId64
                                      " ms to start (%d batch intervals or more): falling behind",
                                      pending[i].batch_time, waited, READY_MAX_WAIT_INTERVALS));
            break;
        }
    }
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
    sl_buf b = {0};
    sl_metrics_snapshot snap;
    sl__http_snapshot(r->srv, &snap);
    sl__metrics_render(r->srv->ctx, &snap, &b);
    if (b.failed || !b.p) {
        sl__buf_free(&b);
        return respond_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    return respond(r, MHD_HTTP_OK, HTTP_CT_METRICS, b.p, b.len, true, "no-store");
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
        return respond_json(&r, MHD_HTTP_OK, sl__http_status_json(r.srv));
    }
    if (strcmp(url, "/api/v1/batches") == 0) {
        return route_batches(&r);
    }
    if (strncmp(url, "/api/v1/batches/", 16) == 0 && url[16] && !strchr(url + 16, '/')) {
        return route_batch(&r, url + 16);
    }
    if (strcmp(url, "/api/v1/inputs") == 0) {
        return respond_json(&r, MHD_HTTP_OK, sl__http_inputs_json(r.srv));
    }
    if (strcmp(url, "/api/v1/sinks") == 0) {
        return respond_json(&r, MHD_HTTP_OK, sl__http_sinks_json(r.srv));
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
    for (const sl_ui_file *f = sl__ui_files; f->name; f++) {
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
    sl_buf b = {0};
    sl__buf_append(&b, text, (size_t)(c - text));
    sl__buf_append(&b, (const char *)css->data, css->len);
    const char *after_c = c + strlen(HTTP_CSS_MARKER);
    sl__buf_append(&b, after_c, (size_t)(j - after_c));
    sl__buf_append(&b, (const char *)js->data, js->len);
    const char *after_j = j + strlen(HTTP_JS_MARKER);
    sl__buf_append(&b, after_j, html->len - (size_t)(after_j - text));
    if (b.failed) {
        sl__buf_free(&b);
        return SL_ERR_NOMEM;
    }
    srv->page = b.p;
    srv->page_len = b.len;
    snprintf(srv->etag, sizeof(srv->etag), "\"%016" PRIx64 "\"", sl__hash(b.p, b.len));
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
    if (sl__http_check_listen(listen_at, has_token, conf->allow_remote, errstr, errsize) != SL_OK) {
        return NULL;
    }
    char host[256];
    int port;
    sl__http_parse_listen(listen_at, host, sizeof(host), &port, errstr, errsize);

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
        fd = sl__http_open_listener(host, tried, &err, errstr, errsize);
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

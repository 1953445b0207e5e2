/* test_http.c -- the HTTP status server: JSON shapes and values, the metrics text, the
 * published gauges, status codes of malformed requests, the token, the limits, and that no
 * secret is served. Batches are made deterministically with sl__context_step; requests go
 * through a plain socket client on 127.0.0.1. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_engine.h"
#include "sl_http.h"
#include "sl_metrics.h"
#include "support.h"

#define TOKEN    "t0ken-Secret-42"
#define PASSWORD "hunter2-Pa55word"
#define T0       1700000000000LL

/* ==== A plain HTTP client ==== */

typedef struct resp {
    int status; /* 0 when no answer */
    char head[4096];
    char *body;
    size_t body_len;
} resp;

static void resp_free(resp *r)
{
    free(r->body);
    r->body = NULL;
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends raw request bytes and reads the whole answer (the server closes: "Connection:
 * close"). Returns the parsed response; status 0 when nothing came back. */
static resp raw_request(int port, const char *req, size_t len)
{
    resp r = {0};
    int fd = connect_port(port);
    if (fd < 0) {
        return r;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (write_all(fd, req, len) == 0) {
        for (;;) {
            if (n + 4096 > cap) {
                cap *= 2;
                buf = realloc(buf, cap);
            }
            ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
            if (got <= 0) {
                break;
            }
            n += (size_t)got;
        }
    }
    close(fd);
    buf[n] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (n > 12 && strncmp(buf, "HTTP/1.", 7) == 0 && sep) {
        r.status = atoi(buf + 9);
        size_t hl = (size_t)(sep - buf);
        snprintf(r.head, sizeof(r.head), "%.*s", (int)SL_MIN(hl, sizeof(r.head) - 1), buf);
        r.body_len = n - hl - 4;
        r.body = malloc(r.body_len + 1);
        memcpy(r.body, sep + 4, r.body_len);
        r.body[r.body_len] = '\0';
    }
    free(buf);
    return r;
}

/* method target with an optional extra header line ("Name: value") and the token when
 * with_token. */
static resp request(int port, const char *method, const char *target, const char *header,
                    bool with_token)
{
    size_t len = strlen(target) + 512 + (header ? strlen(header) : 0);
    char *req = malloc(len);
    int n =
        snprintf(req, len, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s%s\r\n",
                 method, target, with_token ? "Authorization: Bearer " TOKEN "\r\n" : "",
                 header ? header : "", header ? "\r\n" : "", "");
    resp r = raw_request(port, req, (size_t)n);
    free(req);
    return r;
}

static resp get(int port, const char *target)
{
    return request(port, "GET", target, NULL, true);
}

static json_t *get_json(int port, const char *target, int want_status)
{
    resp r = get(port, target);
    CU_ASSERT_EQUAL(r.status, want_status);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.head, "Content-Type: application/json"));
    json_error_t e;
    json_t *j = r.body ? json_loads(r.body, 0, &e) : NULL;
    if (!j) {
        fprintf(stderr, "%s: not JSON: %s\n", target, r.body ? r.body : "(no body)");
    }
    resp_free(&r);
    return j;
}

static bool header_has(const resp *r, const char *line)
{
    return strstr(r->head, line) != NULL;
}

/* ==== A sink with a secret option, failing on demand with the secret in its error ==== */

typedef struct secret_sink {
    sl_instance *ins;
    const char *password;
    const char *user;
} secret_sink;

static _Atomic bool secret_sink_fails;

static const sl_option secret_options[] = {
    {.name = "password",
     .type = SL_OPT_STR,
     .flags = SL_OPT_SECRET,
     .offset = offsetof(secret_sink, password),
     .doc = "a secret"},
    {.name = "user", .type = SL_OPT_STR, .offset = offsetof(secret_sink, user), .doc = "a user"},
    {0},
};

static int secret_init(sl_instance *ins, void *ctx, char *errstr, size_t errsize)
{
    ((secret_sink *)ctx)->ins = ins;
    return SL_OK;
}

static int secret_write(void *ctx, const sl_batch_output *out, char *errstr, size_t errsize)
{
    secret_sink *s = ctx;
    if (atomic_load(&secret_sink_fails)) {
        sl_instance_error(s->ins, "login of %s refused with password %s", s->user, s->password);
        sl_instance_set_active(s->ins, false);
        return SL_ERR_IO;
    }
    sl_instance_set_active(s->ins, true);
    return SL_OK;
}

static const sl_connector secret_connector = {
    .name = "secret-sink",
    .description = "a sink with a secret option",
    .flags = SL_SINK,
    .options = secret_options,
    .ctx_size = sizeof(secret_sink),
    .init = secret_init,
    .write = secret_write,
};

/* ==== The fixture: a context with a scripted source, a sink, a server ==== */

typedef struct fixture {
    sl_context *ctx;
    ts_source *src;
    sl_stream *lines;
    sl_http_server *srv;
    int port;
    int64_t next_time;
} fixture;

static ts_out collected;

static bool fixture_start(fixture *f, const char *token)
{
    char err[256];
    memset(f, 0, sizeof(*f));
    atomic_store(&secret_sink_fails, false);
    f->ctx = ts_context(1000, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->ctx);
    f->lines = ts_source_add(f->ctx, "lines", &f->src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->lines);
    CU_ASSERT_EQUAL(ts_collect(f->lines, &collected), SL_OK);
    sl_options *o = sl_options_new();
    sl_options_set(o, "password", PASSWORD);
    sl_options_set(o, "user", "alice");
    int rc = sl_stream_to_connector(f->lines, &secret_connector, "db", o, err, sizeof(err));
    sl_options_destroy(o);
    CU_ASSERT_EQUAL_FATAL(rc, SL_OK);
    sl_http_conf conf = {.listen = "127.0.0.1:0", .token = token};
    f->srv = sl_http_start(f->ctx, &conf, err, sizeof(err));
    if (!f->srv) {
        fprintf(stderr, "sl_http_start: %s\n", err);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->srv);
    f->port = sl_http_port(f->srv);
    CU_ASSERT(f->port > 0);
    f->next_time = T0;
    return true;
}

static void fixture_stop(fixture *f)
{
    sl_http_stop(f->srv);
    sl__metrics_forget(f->ctx);
    sl_context_destroy(f->ctx);
}

/* Runs one batch with the given lines (NULL-terminated). */
static void step(fixture *f, const char *const *lines)
{
    sl_batch_info info;
    if (lines) {
        ts_feed(f->src, lines);
    }
    CU_ASSERT_EQUAL(sl__context_step(f->ctx, f->next_time, &info), SL_OK);
    f->next_time += 1000;
}

static const char *const three[] = {"a b", "c", "d e f", NULL};
static const char *const five[] = {"1", "2", "3", "4", "5", NULL};

/* Three batches: 3 records, 5 records, 0 records. */
static void three_batches(fixture *f)
{
    step(f, three);
    step(f, five);
    step(f, NULL);
}

/* ==== JSON ==== */

static void test_status_json_shape_and_values(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    json_t *j = get_json(f.port, "/api/v1/status", 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "app")), "test");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "batches_completed")), 0);
    CU_ASSERT(json_is_null(json_object_get(j, "last_batch")));
    CU_ASSERT(json_is_null(json_object_get(json_object_get(j, "recent"), "avg_input_rate")));
    json_decref(j);

    three_batches(&f);
    j = get_json(f.port, "/api/v1/status", 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "version")), SLUICE_VERSION);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "state")), "created");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "phase")), "created");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "batch_interval_ms")), 1000);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "batches_completed")), 3);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "batches_waiting")), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "batches_running")), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "records_processed")), 8);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "inputs")), 1);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "receivers")), 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "sinks")), 1);
    json_t *last = json_object_get(j, "last_batch");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(last, "batch_time")), T0 + 2000);
    CU_ASSERT(json_integer_value(json_object_get(last, "processing_time_ms")) >= 0);
    json_t *rec = json_object_get(j, "recent");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rec, "batches")), 3);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rec, "records")), 8);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(rec, "avg_input_rate")), 8.0 / 3, 1e-9);
    CU_ASSERT(json_is_real(json_object_get(rec, "avg_processing_time_ms")));
    CU_ASSERT(json_is_real(json_object_get(rec, "avg_total_delay_ms")));
    CU_ASSERT(json_is_integer(json_object_get(j, "inputs_waiting")));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "inputs_waiting")), 0);
    json_t *rs = json_object_get(j, "restore");
    CU_ASSERT_FATAL(json_is_object(rs));
    const char *zero[] = {"restoring", "tasks", "records", "bytes", "ms"};
    for (size_t i = 0; i < SL_ARRAY_LEN(zero); i++) {
        CU_ASSERT(json_is_integer(json_object_get(rs, zero[i])));
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(rs, zero[i])), 0);
    }
    CU_ASSERT(json_is_real(json_object_get(rs, "mb_per_s")));
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(rs, "mb_per_s")), 0, 1e-12);
    json_decref(j);
    fixture_stop(&f);
}

static void test_batches_json_newest_first_limit_since(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    three_batches(&f);
    json_t *j = get_json(f.port, "/api/v1/batches", 200);
    CU_ASSERT_FATAL(json_is_array(j));
    CU_ASSERT_EQUAL_FATAL(json_array_size(j), 3);
    int64_t want_time[] = {T0 + 2000, T0 + 1000, T0};
    int64_t want_records[] = {0, 5, 3};
    for (size_t i = 0; i < 3; i++) {
        json_t *b = json_array_get(j, i);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(b, "batch_time")), want_time[i]);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(b, "records")), want_records[i]);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(b, "status")), "completed");
        CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(b, "input_rate")),
                               (double)want_records[i], 1e-9);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(b, "outputs_total")), 2);
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(b, "outputs_succeeded")), 2);
        CU_ASSERT(json_is_null(json_object_get(b, "error")));
        CU_ASSERT(json_is_integer(json_object_get(b, "scheduling_delay_ms")));
        CU_ASSERT(json_is_integer(json_object_get(b, "processing_time_ms")));
        CU_ASSERT(json_is_integer(json_object_get(b, "total_delay_ms")));
        CU_ASSERT(json_is_integer(json_object_get(b, "processing_end")));
        json_t *in = json_array_get(json_object_get(b, "inputs"), 0);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(in, "name")), "lines");
        CU_ASSERT_EQUAL(json_integer_value(json_object_get(in, "records")), want_records[i]);
        char desc[32];
        snprintf(desc, sizeof(desc), "%d scripted", (int)want_records[i]);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(in, "description")), desc);
    }
    json_decref(j);

    j = get_json(f.port, "/api/v1/batches?limit=1", 200);
    CU_ASSERT_EQUAL(json_array_size(j), 1);
    json_decref(j);
    char target[128];
    snprintf(target, sizeof(target), "/api/v1/batches?since=%lld&limit=10", T0);
    j = get_json(f.port, target, 200);
    CU_ASSERT_EQUAL(json_array_size(j), 2);
    json_decref(j);
    j = get_json(f.port, "/api/v1/batches?status=pending", 200);
    CU_ASSERT_EQUAL(json_array_size(j), 0);
    json_decref(j);
    j = get_json(f.port, "/api/v1/batches?status=all", 200);
    CU_ASSERT_EQUAL(json_array_size(j), 3);
    json_decref(j);

    snprintf(target, sizeof(target), "/api/v1/batches/%lld", T0 + 1000);
    j = get_json(f.port, target, 200);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "records")), 5);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "batch_time")), T0 + 1000);
    json_decref(j);
    j = get_json(f.port, "/api/v1/batches/123", 404);
    CU_ASSERT(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    const char *bad[] = {"/api/v1/batches?limit=0",      "/api/v1/batches?limit=1001",
                         "/api/v1/batches?limit=abc",    "/api/v1/batches?since=x",
                         "/api/v1/batches?status=bogus", "/api/v1/batches/abc"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        j = get_json(f.port, bad[i], 400);
        CU_ASSERT(json_is_string(json_object_get(j, "error")));
        json_decref(j);
    }
    fixture_stop(&f);
}

/* Issue 15: INT64_MIN as a batch time wrapped in the route's arithmetic (UB). A time
 * outside 0..year 9999 is no batch's: 404 saying the range. */
static void test_batch_time_out_of_range_404(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    three_batches(&f);
    const char *far[] = {"/api/v1/batches/-9223372036854775808", "/api/v1/batches/-1",
                         "/api/v1/batches/9223372036854775807", "/api/v1/batches/253402300800000"};
    for (size_t i = 0; i < SL_ARRAY_LEN(far); i++) {
        json_t *j = get_json(f.port, far[i], 404);
        const char *e = json_string_value(json_object_get(j, "error"));
        CU_ASSERT_PTR_NOT_NULL(e);
        CU_ASSERT_PTR_NOT_NULL(e ? strstr(e, "batch times are 0..253402300799999 ms") : NULL);
        json_decref(j);
    }
    json_t *j = get_json(f.port, "/api/v1/batches/-9223372036854775809", 400);
    json_decref(j);
    fixture_stop(&f);
}

static void test_batches_json_keeps_the_last_1000(void)
{
    fixture f;
    fixture_start(&f, NULL);
    static const char *const one[] = {"x", NULL};
    for (int i = 0; i < 1003; i++) {
        step(&f, one);
    }
    json_t *j = get_json(f.port, "/api/v1/batches?limit=1000", 200);
    CU_ASSERT_EQUAL(json_array_size(j), 1000);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_array_get(j, 0), "batch_time")),
                    T0 + 1002 * 1000);
    json_decref(j);
    j = get_json(f.port, "/api/v1/status", 200);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "batches_completed")), 1003);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(j, "recent"), "batches")),
                    1000);
    json_decref(j);
    fixture_stop(&f);
}

static void test_inputs_and_sinks_json(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    three_batches(&f);
    json_t *j = get_json(f.port, "/api/v1/inputs", 200);
    CU_ASSERT_EQUAL_FATAL(json_array_size(j), 1);
    json_t *in = json_array_get(j, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(in, "name")), "lines");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(in, "type")), "test-source");
    CU_ASSERT(json_is_false(json_object_get(in, "receiver")));
    CU_ASSERT(json_is_boolean(json_object_get(in, "active")));
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(in, "avg_rate")), 8.0 / 3, 1e-9);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(in, "last_batch_records")), 0);
    CU_ASSERT(json_is_null(json_object_get(in, "last_error")));
    CU_ASSERT(json_is_real(json_object_get(in, "max_rate")));
    CU_ASSERT(json_is_real(json_object_get(in, "rate_limit")));
    CU_ASSERT(json_is_real(json_object_get(in, "estimated_rate")));
    json_decref(j);

    j = get_json(f.port, "/api/v1/sinks", 200);
    CU_ASSERT_EQUAL_FATAL(json_array_size(j), 1);
    json_t *s = json_array_get(j, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s, "name")), "db");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s, "type")), "secret-sink");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s, "state")), "ok");
    CU_ASSERT(json_is_null(json_object_get(s, "last_error")));
    json_decref(j);

    /* The sink fails: its state, its error (scrubbed), and the batch's error. */
    atomic_store(&secret_sink_fails, true);
    step(&f, three);
    j = get_json(f.port, "/api/v1/sinks", 200);
    s = json_array_get(j, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s, "state")), "failing");
    json_t *le = json_object_get(s, "last_error");
    CU_ASSERT(json_integer_value(json_object_get(le, "time")) > 0);
    const char *msg = json_string_value(json_object_get(le, "message"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
    CU_ASSERT_STRING_EQUAL(msg, "login of alice refused with password ***");
    json_decref(j);
    j = get_json(f.port, "/api/v1/batches?limit=1", 200);
    json_t *b = json_array_get(j, 0);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(b, "outputs_succeeded")), 1);
    const char *berr = json_string_value(json_object_get(b, "error"));
    CU_ASSERT_PTR_NOT_NULL(berr);
    CU_ASSERT(berr && strstr(berr, "***") && !strstr(berr, PASSWORD));
    json_decref(j);
    fixture_stop(&f);
}

/* ==== Metrics ==== */

/* Checks the exposition format line by line: every sample belongs to the family announced
 * by the HELP and TYPE lines before it, names and labels are well-formed, counters end in
 * _total. Returns the number of samples. */
static int check_exposition(const char *text)
{
    regex_t sample_re;
    CU_ASSERT_EQUAL_FATAL(
        regcomp(&sample_re,
                "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\","
                "?)*\\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$",
                REG_EXTENDED),
        0);
    char family[256] = "", type[32] = "";
    bool help_seen = false;
    int samples = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            sscanf(line + 7, "%255s", family);
            help_seen = true;
            type[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[256];
            sscanf(line + 7, "%255s %31s", name, type);
            CU_ASSERT_STRING_EQUAL(name, family);
            CU_ASSERT(help_seen);
            CU_ASSERT(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                      strcmp(type, "histogram") == 0);
            continue;
        }
        CU_ASSERT(line[0] != '#');
        regmatch_t m[2];
        int ok = regexec(&sample_re, line, 2, m, 0);
        if (ok != 0) {
            fprintf(stderr, "bad sample line: %s\n", line);
        }
        CU_ASSERT_EQUAL(ok, 0);
        bool histogram = strcmp(type, "histogram") == 0;
        if (ok == 0 && histogram) {
            /* A histogram's samples: FAMILY_bucket{le="..."}, FAMILY_sum, FAMILY_count. */
            const char *suffix = line + strlen(family);
            CU_ASSERT_EQUAL(strncmp(line, family, strlen(family)), 0);
            CU_ASSERT(strncmp(suffix, "_bucket{le=\"", 12) == 0 ||
                      strncmp(suffix, "_sum ", 5) == 0 || strncmp(suffix, "_count ", 7) == 0);
        } else if (ok == 0) {
            CU_ASSERT_EQUAL((size_t)(m[1].rm_eo - m[1].rm_so), strlen(family));
            CU_ASSERT_EQUAL(strncmp(line, family, strlen(family)), 0);
        }
        CU_ASSERT(strncmp(family, "sluice_", 7) == 0);
        size_t fl = strlen(family);
        bool total = fl > 6 && strcmp(family + fl - 6, "_total") == 0;
        CU_ASSERT(histogram || total == (strcmp(type, "counter") == 0));
        samples++;
    }
    free(copy);
    regfree(&sample_re);
    return samples;
}

static void test_metrics_text_format_and_values(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    three_batches(&f);
    resp r = get(f.port, "/metrics");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT(header_has(&r, "Content-Type: text/plain; version=0.0.4"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.body);
    CU_ASSERT(check_exposition(r.body) > 15);
    const char *want[] = {
        "# TYPE sluice_batches_completed_total counter\nsluice_batches_completed_total 3\n",
        "sluice_records_processed_total 8\n",
        "sluice_batch_interval_seconds 1\n",
        "sluice_batches_waiting 0\n",
        "sluice_batches_running 0\n",
        "sluice_receivers 0\n",
        "sluice_info{app=\"test\",version=\"" SLUICE_VERSION "\"} 1\n",
        "sluice_input_records_total{input=\"lines\"} ",
        "sluice_sink_records_total{sink=\"db\"} ",
        "sluice_sink_active{sink=\"db\"} 1\n",
        "# TYPE sluice_input_rate_limit gauge\nsluice_input_rate_limit{input=\"lines\"} 0\n",
        "# TYPE sluice_input_estimated_rate gauge\n",
        "# TYPE sluice_last_batch_processing_time_seconds gauge\n",
        "# TYPE sluice_last_batch_scheduling_delay_seconds gauge\n",
        "# TYPE sluice_last_batch_total_delay_seconds gauge\n",
        "sluice_state_restored_records_total 0\n",
        "sluice_state_restoring_tasks 0\n",
        "sluice_input_waiting{input=\"lines\"} 0\n",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(want); i++) {
        if (!strstr(r.body, want[i])) {
            fprintf(stderr, "missing in /metrics: %s\n", want[i]);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, want[i]));
    }
    resp_free(&r);
    fixture_stop(&f);
}

static void test_metrics_label_values_escaped(void)
{
    sl_context *ctx = ts_context(1000, 1);
    ts_source *src;
    CU_ASSERT_PTR_NOT_NULL_FATAL(ts_source_add(ctx, "we\"ird\\na\nme", &src));
    sl_buf b = {0};
    sl__metrics_render(ctx, NULL, &b);
    CU_ASSERT_FALSE(b.failed);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(b.p, "sluice_input_records_total{input=\"we\\\"ird\\\\na\\nme\"} 0\n"));
    CU_ASSERT(check_exposition(b.p) > 10);
    sl__buf_free(&b);

    char buf[64];
    CU_ASSERT_EQUAL(sl_metrics_escape_label("a\"b\\c\nd", buf, sizeof(buf)), 10);
    CU_ASSERT_STRING_EQUAL(buf, "a\\\"b\\\\c\\nd");
    CU_ASSERT_EQUAL(sl_metrics_escape_label("a\"b", buf, 3), 4);
    CU_ASSERT_STRING_EQUAL(buf, "a\\");
    sl_context_destroy(ctx);
}

/* A source waiting for partitions and the restores of keyed state: in the status, the
 * inputs and the metrics (the context's fields set directly, as the restores will). */
static void test_waiting_and_restore_shown(void)
{
    fixture f;
    fixture_start(&f, NULL);
    sl_instance_set_waiting(f.lines->source, true);
    atomic_store(&f.ctx->restored_records, 1000);
    atomic_store(&f.ctx->restored_bytes, 5000000);
    atomic_store(&f.ctx->restore_ms, 2000);
    atomic_store(&f.ctx->restoring, 2);
    atomic_store(&f.ctx->restored_tasks, 3);
    step(&f, NULL); /* a completed batch: the server takes a new snapshot */

    json_t *j = get_json(f.port, "/api/v1/status", 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "inputs_waiting")), 1);
    /* Not running: the phase is the state. */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "phase")), "created");
    json_t *rs = json_object_get(j, "restore");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rs, "restoring")), 2);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rs, "tasks")), 3);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rs, "records")), 1000);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rs, "bytes")), 5000000);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(rs, "ms")), 2000);
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(rs, "mb_per_s")), 2.5, 1e-9);
    json_decref(j);
    j = get_json(f.port, "/api/v1/inputs", 200);
    CU_ASSERT(json_is_true(json_object_get(json_array_get(j, 0), "waiting")));
    json_decref(j);

    resp r = get(f.port, "/metrics");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.body);
    check_exposition(r.body);
    const char *want[] = {
        "# TYPE sluice_state_restored_records_total counter\n"
        "sluice_state_restored_records_total 1000\n",
        "# TYPE sluice_state_restored_bytes_total counter\n"
        "sluice_state_restored_bytes_total 5000000\n",
        "# TYPE sluice_state_restore_seconds_total counter\n"
        "sluice_state_restore_seconds_total 2\n",
        "# TYPE sluice_state_restored_tasks_total counter\nsluice_state_restored_tasks_total 3\n",
        "# TYPE sluice_state_restoring_tasks gauge\nsluice_state_restoring_tasks 2\n",
        "# TYPE sluice_input_waiting gauge\nsluice_input_waiting{input=\"lines\"} 1\n",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(want); i++) {
        if (!strstr(r.body, want[i])) {
            fprintf(stderr, "missing in /metrics: %s\n", want[i]);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, want[i]));
    }
    resp_free(&r);

    sl_instance_set_waiting(f.lines->source, false);
    j = get_json(f.port, "/api/v1/inputs", 200);
    CU_ASSERT(json_is_false(json_object_get(json_array_get(j, 0), "waiting")));
    json_decref(j);
    r = get(f.port, "/metrics");
    CU_ASSERT_PTR_NOT_NULL(r.body ? strstr(r.body, "sluice_input_waiting{input=\"lines\"} 0\n")
                                  : NULL);
    resp_free(&r);
    fixture_stop(&f);
}

static void test_metrics_published_gauges(void)
{
    fixture f;
    fixture_start(&f, NULL);
    sl_context *ctx = f.ctx;
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "kafka_consumer_lag", "Consumer lag per partition.",
                                         "partition=\"3\",topic=\"t\"", 42),
                    SL_OK);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "sluice_kafka_consumer_lag", NULL,
                                         "partition=\"1\",topic=\"t\"", 7.5),
                    SL_OK);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "wal_bytes", "WAL size.\nIn bytes.", NULL, 1e12),
                    SL_OK);
    CU_ASSERT_EQUAL(
        sl_metrics_gauge_set(ctx, "kafka_consumer_lag", NULL, "partition=\"3\",topic=\"t\"", 40),
        SL_OK); /* replaces */
    CU_ASSERT_EQUAL(sl__metrics_gauge_count(ctx), 3);
    /* Refused: bad names, bad labels, built-in names. */
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "9lives", NULL, NULL, 1), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "a-b", NULL, NULL, 1), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "", NULL, NULL, 1), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "x", NULL, "p=3", 1), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "x", NULL, "p=\"a\"b\"", 1), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "x", NULL, "p=\"a\nb\"", 1), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "x", NULL, "p=\"a\",", 1), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "x", NULL, "__p=\"a\"", 1), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "batches_completed_total", NULL, NULL, 1),
                    SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "sluice_receivers", NULL, NULL, 1), SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "ok", NULL, "p=\"a\\\"b\\\\c\\n\"", 1), SL_OK);

    resp r = get(f.port, "/metrics");
    CU_ASSERT_EQUAL_FATAL(r.status, 200);
    CU_ASSERT(check_exposition(r.body) > 15);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "# HELP sluice_kafka_consumer_lag Consumer lag per "
                                          "partition.\n# TYPE sluice_kafka_consumer_lag gauge\n"
                                          "sluice_kafka_consumer_lag{partition=\"1\",topic=\"t\"} "
                                          "7.5\nsluice_kafka_consumer_lag{partition=\"3\",topic="
                                          "\"t\"} 40\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "# HELP sluice_wal_bytes WAL size.\\nIn bytes.\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "sluice_wal_bytes 1000000000000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "sluice_ok{p=\"a\\\"b\\\\c\\n\"} 1\n"));
    resp_free(&r);

    CU_ASSERT_EQUAL(
        sl_metrics_gauge_remove(ctx, "kafka_consumer_lag", "partition=\"1\",topic=\"t\""), SL_OK);
    CU_ASSERT_EQUAL(
        sl_metrics_gauge_remove(ctx, "kafka_consumer_lag", "partition=\"1\",topic=\"t\""),
        SL_ERR_NOTFOUND);
    CU_ASSERT_EQUAL(sl__metrics_gauge_count(ctx), 3);

    /* Bounded: past SL_METRICS_MAX_SERIES, new series are refused, old ones still update. */
    int rc = SL_OK;
    for (int i = 0; rc == SL_OK && i < SL_METRICS_MAX_SERIES + 10; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "i=\"%d\"", i);
        rc = sl_metrics_gauge_set(ctx, "many", "Many series.", labels, i);
    }
    CU_ASSERT_EQUAL(rc, SL_ERR_TOOBIG);
    CU_ASSERT_EQUAL(sl__metrics_gauge_count(ctx), SL_METRICS_MAX_SERIES);
    CU_ASSERT_EQUAL(sl_metrics_gauge_set(ctx, "wal_bytes", NULL, NULL, 5), SL_OK);
    fixture_stop(&f);
    CU_ASSERT_EQUAL(sl__metrics_gauge_count(f.ctx), 0);
}

/* ==== Status codes ==== */

static void test_status_codes_of_malformed_requests(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    /* A request target over 4 KiB: 414, with the length in the path or in the query. */
    size_t n = 5000;
    char *lng = malloc(n + 32);
    memset(lng, 'a', n + 31);
    memcpy(lng, "/api/v1/status?x=", 17);
    lng[n] = '\0';
    resp r = get(f.port, lng);
    CU_ASSERT_EQUAL(r.status, 414);
    resp_free(&r);
    lng[0] = '/';
    lng[1] = 'a';
    r = get(f.port, lng);
    CU_ASSERT_EQUAL(r.status, 414);
    resp_free(&r);
    free(lng);
    /* Far longer than the server's buffer: still refused, never served. */
    n = 200000;
    lng = malloc(n + 1);
    memset(lng, 'b', n);
    lng[0] = '/';
    lng[n] = '\0';
    r = get(f.port, lng);
    CU_ASSERT(r.status == 414 || r.status == 431 || r.status == 0);
    resp_free(&r);
    free(lng);
    /* 4 KiB exactly is fine. */
    lng = malloc(SL_HTTP_MAX_URL + 1);
    memset(lng, 'c', SL_HTTP_MAX_URL);
    memcpy(lng, "/health?x=", 10);
    lng[SL_HTTP_MAX_URL] = '\0';
    r = get(f.port, lng);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    free(lng);

    /* Unknown paths: 404. */
    const char *unknown[] = {"/nope",          "/api/v1/status/",     "/api/v1",
                             "/api/v2/status", "/api/v1/batches/1/x", "/metrics/x",
                             "/favicon.ico"};
    for (size_t i = 0; i < SL_ARRAY_LEN(unknown); i++) {
        r = get(f.port, unknown[i]);
        CU_ASSERT_EQUAL(r.status, 404);
        resp_free(&r);
    }
    /* Other methods: 405 with Allow. */
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < SL_ARRAY_LEN(methods); i++) {
        r = request(f.port, methods[i], "/api/v1/status", "Content-Length: 0", true);
        CU_ASSERT_EQUAL(r.status, 405);
        CU_ASSERT(header_has(&r, "Allow: GET, HEAD"));
        resp_free(&r);
    }
    const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        "Content-Length: 5\r\n\r\nhello";
    r = raw_request(f.port, post, sizeof(post) - 1);
    CU_ASSERT_EQUAL(r.status, 405);
    resp_free(&r);
    /* HEAD: the headers only. */
    r = request(f.port, "HEAD", "/api/v1/status", NULL, true);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(r.body_len, 0);
    resp_free(&r);
    /* Garbage instead of HTTP: an error or a close, and the server still serves. */
    const char junk[] = "\x01\x02 garbage\r\n\r\n";
    r = raw_request(f.port, junk, sizeof(junk) - 1);
    CU_ASSERT(r.status == 0 || r.status == 400 || r.status == 505);
    resp_free(&r);
    r = get(f.port, "/health");
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    fixture_stop(&f);
}

static void test_token_required_and_compared(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    const char *paths[] = {
        "/",        "/api/v1/status", "/api/v1/batches", "/api/v1/inputs", "/api/v1/sinks",
        "/metrics", "/health",        "/ready",          "/nope"};
    for (size_t i = 0; i < SL_ARRAY_LEN(paths); i++) {
        resp r = request(f.port, "GET", paths[i], NULL, false);
        CU_ASSERT_EQUAL(r.status, 401);
        CU_ASSERT(header_has(&r, "WWW-Authenticate: Bearer"));
        CU_ASSERT(r.body && !strstr(r.body, TOKEN));
        resp_free(&r);
    }
    const char *bad[] = {"Authorization: Bearer wrong",
                         "Authorization: Bearer " TOKEN "x",
                         "Authorization: Bearer t0ken-Secret-4",
                         "Authorization: Bearer ",
                         "Authorization: Basic dDBrZW4tU2VjcmV0LTQy",
                         "Authorization: " TOKEN};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        resp r = request(f.port, "GET", "/api/v1/status", bad[i], false);
        CU_ASSERT_EQUAL(r.status, 401);
        resp_free(&r);
    }
    resp r = request(f.port, "GET", "/api/v1/status", "Authorization: bearer " TOKEN, false);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    r = request(f.port, "GET", "/?token=" TOKEN, NULL, false);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    r = request(f.port, "GET", "/api/v1/status?token=" TOKEN, NULL, false);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    r = request(f.port, "GET", "/?token=wrong", NULL, false);
    CU_ASSERT_EQUAL(r.status, 401);
    resp_free(&r);
    /* Without a token configured, nothing is asked. */
    fixture_stop(&f);
    fixture_start(&f, NULL);
    r = request(f.port, "GET", "/api/v1/status", NULL, false);
    CU_ASSERT_EQUAL(r.status, 200);
    resp_free(&r);
    fixture_stop(&f);
}

/* ==== Page, health, readiness ==== */

static void test_page_served_from_memory(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    resp r = get(f.port, "/");
    CU_ASSERT_EQUAL_FATAL(r.status, 200);
    CU_ASSERT(header_has(&r, "Content-Type: text/html; charset=utf-8"));
    CU_ASSERT(header_has(&r, "Cache-Control: no-cache"));
    CU_ASSERT(header_has(&r, "Content-Security-Policy: "));
    CU_ASSERT(header_has(&r, "Referrer-Policy: no-referrer"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "Streaming Statistics"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "<svg"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "/api/v1/status")); /* the script is inlined */
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, ".topbar"));        /* and the style */
    CU_ASSERT_PTR_NULL(strstr(r.body, "@APP_"));              /* no marker left */
    /* Nothing is loaded from elsewhere. */
    CU_ASSERT_PTR_NULL(strstr(r.body, "src=\"http"));
    CU_ASSERT_PTR_NULL(strstr(r.body, "href=\"http"));
    CU_ASSERT_PTR_NULL(strstr(r.body, "url(http"));
    CU_ASSERT_PTR_NULL(strstr(r.body, "https://"));
    char *etag = strstr(r.head, "ETag: ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(etag);
    char inm[64];
    snprintf(inm, sizeof(inm), "If-None-Match: %.*s", (int)strcspn(etag + 6, "\r\n"), etag + 6);
    resp_free(&r);
    r = request(f.port, "GET", "/", inm, true);
    CU_ASSERT_EQUAL(r.status, 304);
    CU_ASSERT_EQUAL(r.body_len, 0);
    resp_free(&r);
    r = get(f.port, "/batch?time=1700000000000");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT(header_has(&r, "Content-Type: text/html"));
    resp_free(&r);
    fixture_stop(&f);
}

static void test_health_and_ready_when_not_running(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    resp r = get(f.port, "/health");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "ok\n");
    resp_free(&r);
    json_t *j = get_json(f.port, "/ready", 503);
    CU_ASSERT(json_is_false(json_object_get(j, "ready")));
    json_t *reasons = json_object_get(j, "reasons");
    CU_ASSERT_EQUAL(json_array_size(reasons), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(json_string_value(json_array_get(reasons, 0)), "not running"));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(reasons, 1)),
                           "input 'lines' is not active");
    json_decref(j);
    sl_instance_set_active(f.lines->source, true);
    j = get_json(f.port, "/ready", 503);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(j, "reasons")), 1);
    json_decref(j);
    fixture_stop(&f);
}

/* An output that takes sleep_ms per batch. */
static _Atomic int slow_ms;

static int slow_output(const sl_dataset *ds, int64_t t, void *opaque)
{
    int ms = atomic_load(&slow_ms);
    if (ms > 0) {
        sl__sleep_ms(ms);
    }
    return SL_OK;
}

static void test_ready_when_running_then_falling_behind(void)
{
    char err[256];
    sl_context *ctx = ts_context(100, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "lines", &src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(sl_stream_foreach_batch(s, slow_output, NULL), SL_OK);
    atomic_store(&slow_ms, 0);
    sl_http_server *srv =
        sl_http_start(ctx, &(sl_http_conf){.listen = "127.0.0.1:0"}, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    int port = sl_http_port(srv);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    sl_instance_set_active(s->source, true);
    int status = 0;
    for (int i = 0; i < 50 && status != 200; i++) {
        sl__sleep_ms(50);
        resp r = get(port, "/ready");
        status = r.status;
        resp_free(&r);
    }
    CU_ASSERT_EQUAL(status, 200);
    /* Batches now take 3 intervals: the scheduling delay grows past 2 intervals. */
    atomic_store(&slow_ms, 300);
    const char *reason = NULL;
    json_t *j = NULL;
    for (int i = 0; i < 60 && !reason; i++) {
        sl__sleep_ms(50);
        json_decref(j);
        resp r = get(port, "/ready");
        j = r.status == 503 ? json_loads(r.body, 0, NULL) : NULL;
        reason = j ? json_string_value(json_array_get(json_object_get(j, "reasons"), 0)) : NULL;
        resp_free(&r);
    }
    CU_ASSERT_PTR_NOT_NULL(reason);
    CU_ASSERT(reason && strstr(reason, "falling behind"));
    json_decref(j);
    /* Running and waiting batches are shown while it falls behind. */
    j = get_json(port, "/api/v1/batches?status=pending", 200);
    CU_ASSERT(json_array_size(j) >= 1);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(j, 0), "status")),
                           "running");
    json_decref(j);
    j = get_json(port, "/api/v1/status", 200);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "state")), "running");
    CU_ASSERT(json_integer_value(json_object_get(j, "start_time")) > 0);
    json_decref(j);
    atomic_store(&slow_ms, 0);
    sl_context_stop(ctx, false);
    sl_http_stop(srv);
    sl_context_destroy(ctx);
}

/* Polls /api/v1/status for up to ms: true once its phase is want. */
static bool phase_becomes(int port, const char *want, int ms)
{
    for (int waited = 0; waited <= ms; waited += 20) {
        json_t *j = get_json(port, "/api/v1/status", 200);
        const char *phase = json_string_value(json_object_get(j, "phase"));
        bool found = phase && strcmp(phase, want) == 0;
        json_decref(j);
        if (found) {
            return true;
        }
        sl__sleep_ms(20);
    }
    return false;
}

/* While running, the phase says that an input waits for partitions, else that state is
 * being restored, else "running"; the state stays "running" throughout. */
static void test_status_phase_while_running(void)
{
    char err[256];
    sl_context *ctx = ts_context(100, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "lines", &src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(sl_stream_foreach_batch(s, slow_output, NULL), SL_OK);
    atomic_store(&slow_ms, 0);
    sl_http_server *srv =
        sl_http_start(ctx, &(sl_http_conf){.listen = "127.0.0.1:0"}, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    int port = sl_http_port(srv);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    CU_ASSERT(phase_becomes(port, "running", 2000));
    sl_instance_set_waiting(s->source, true);
    atomic_store(&ctx->restoring, 1); /* waiting comes first */
    CU_ASSERT(phase_becomes(port, "waiting for partitions", 2000));
    sl_instance_set_waiting(s->source, false);
    CU_ASSERT(phase_becomes(port, "restoring state", 2000));
    json_t *j = get_json(port, "/api/v1/status", 200);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "state")), "running");
    json_decref(j);
    atomic_store(&ctx->restoring, 0);
    CU_ASSERT(phase_becomes(port, "running", 2000));
    sl_context_stop(ctx, false);
    sl_http_stop(srv);
    sl_context_destroy(ctx);
}

/* Polls /ready for up to ms: true once it answers 503 with a reason containing what. */
static bool ready_says(int port, const char *what, int ms)
{
    for (int waited = 0; waited <= ms; waited += 50) {
        resp r = get(port, "/ready");
        json_t *j = r.status == 503 ? json_loads(r.body, 0, NULL) : NULL;
        json_t *reasons = json_object_get(j, "reasons");
        bool found = false;
        for (size_t i = 0; i < json_array_size(reasons) && !found; i++) {
            const char *s = json_string_value(json_array_get(reasons, i));
            found = s && strstr(s, what);
        }
        json_decref(j);
        resp_free(&r);
        if (found) {
            return true;
        }
        sl__sleep_ms(50);
    }
    return false;
}

/* A sink that cannot write while down is set: SL_ERR_RETRY, with a reason. */
static _Atomic bool down_sink_down;

static int down_sink_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    *(sl_instance **)data = ins;
    return SL_OK;
}

static int down_sink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    if (atomic_load(&down_sink_down)) {
        sl_instance_error(*(sl_instance **)data, "test: connection refused");
        return SL_ERR_RETRY;
    }
    return SL_OK;
}

static const sl_option down_sink_options[] = {{0}};

static const sl_connector down_sink_connector = {
    .name = "test-down-sink",
    .description = "retries while down_sink_down is set",
    .flags = SL_SINK,
    .options = down_sink_options,
    .ctx_size = sizeof(sl_instance *),
    .init = down_sink_init,
    .write = down_sink_write,
};

/* Issue 15: /ready was 200 while a sink could not write (a database down: the batch held,
 * retried for ever). It now says which sink and why, and is ready again once it writes;
 * /health stays 200 meanwhile. */
static void test_ready_names_a_sink_that_cannot_write(void)
{
    char err[256];
    sl_context *ctx = ts_context(100, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "lines", &src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    sl_options *o = sl_options_new();
    CU_ASSERT_EQUAL_FATAL(
        sl_stream_to_connector(s, &down_sink_connector, "db", o, err, sizeof(err)), SL_OK);
    sl_options_destroy(o);
    atomic_store(&down_sink_down, true);
    sl_http_server *srv =
        sl_http_start(ctx, &(sl_http_conf){.listen = "127.0.0.1:0"}, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    int port = sl_http_port(srv);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    sl_instance_set_active(s->source, true);
    CU_ASSERT_TRUE(ready_says(port, "sink 'db' cannot write: retrying for", 3000));
    CU_ASSERT_TRUE(ready_says(port, "test: connection refused", 0));
    resp h = get(port, "/health");
    CU_ASSERT_EQUAL(h.status, 200);
    resp_free(&h);
    atomic_store(&down_sink_down, false); /* the server is back: ready again */
    int status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        sl__sleep_ms(50);
        resp r = get(port, "/ready");
        status = r.status;
        resp_free(&r);
    }
    CU_ASSERT_EQUAL(status, 200);
    sl_context_stop(ctx, false);
    sl_http_stop(srv);
    sl_context_destroy(ctx);
}

/* Issue 15: with one batch stuck, the last completed batch's scheduling delay says nothing;
 * /ready now counts the batches that wait (more than 10) and how long the oldest has
 * waited (10 batch intervals). */
static void test_ready_when_batches_pile_up(void)
{
    char err[256];
    sl_context *ctx = ts_context(20, 1);
    ts_source *src;
    sl_stream *s = ts_source_add(ctx, "lines", &src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(sl_stream_foreach_batch(s, slow_output, NULL), SL_OK);
    atomic_store(&slow_ms, 1500); /* the first batch holds the others */
    sl_http_server *srv =
        sl_http_start(ctx, &(sl_http_conf){.listen = "127.0.0.1:0"}, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    int port = sl_http_port(srv);
    CU_ASSERT_EQUAL_FATAL(sl_context_start(ctx), SL_OK);
    sl_instance_set_active(s->source, true);
    CU_ASSERT_TRUE(ready_says(port, "batches are waiting (more than 10)", 1200));
    CU_ASSERT_TRUE(ready_says(port, "ms to start (10 batch intervals or more)", 0));
    resp h = get(port, "/health");
    CU_ASSERT_EQUAL(h.status, 200);
    resp_free(&h);
    atomic_store(&slow_ms, 0);
    sl_context_stop(ctx, false);
    sl_http_stop(srv);
    sl_context_destroy(ctx);
}

/* ==== Secrets ==== */

static void test_no_secret_anywhere(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    three_batches(&f);
    atomic_store(&secret_sink_fails, true);
    step(&f, three);
    char target[64];
    snprintf(target, sizeof(target), "/api/v1/batches/%lld", (long long)(f.next_time - 1000));
    const char *paths[] = {
        "/",       "/batch?time=1",  "/api/v1/status", "/api/v1/batches?status=all&limit=1000",
        target,    "/api/v1/inputs", "/api/v1/sinks",  "/metrics",
        "/health", "/ready",         "/nope"};
    for (size_t i = 0; i < SL_ARRAY_LEN(paths); i++) {
        resp r = get(f.port, paths[i]);
        CU_ASSERT(r.status == 200 || r.status == 404 || r.status == 503);
        CU_ASSERT_PTR_NOT_NULL(r.body);
        bool leak = r.body && (strstr(r.body, PASSWORD) || strstr(r.body, TOKEN) ||
                               strstr(r.head, PASSWORD) || strstr(r.head, TOKEN));
        if (leak) {
            fprintf(stderr, "secret served by %s\n", paths[i]);
        }
        CU_ASSERT_FALSE(leak);
        resp_free(&r);
    }
    /* The error was there, scrubbed. */
    resp r = get(f.port, "/api/v1/sinks");
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "password ***"));
    resp_free(&r);
    fixture_stop(&f);
}

/* ==== Listening ==== */

static void test_listen_addresses_checked(void)
{
    char err[512], host[256];
    int port;
    CU_ASSERT_EQUAL(
        sl__http_parse_listen("127.0.0.1:4040", host, sizeof(host), &port, err, sizeof(err)),
        SL_OK);
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
    CU_ASSERT_EQUAL(port, 4040);
    CU_ASSERT_EQUAL(sl__http_parse_listen("[::1]:0", host, sizeof(host), &port, err, sizeof(err)),
                    SL_OK);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(port, 0);
    const char *bad[] = {"",        "127.0.0.1", "::1:4040", "[::1]4040", ":4040",    "host:65536",
                         "host:-1", "host:",     "host:12x", "[::1:80",   "host: 80", "host:+80"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        CU_ASSERT_EQUAL(sl__http_parse_listen(bad[i], host, sizeof(host), &port, err, sizeof(err)),
                        SL_ERR_INVAL);
    }
    CU_ASSERT_EQUAL(sl__http_check_listen("localhost:4040", false, false, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(sl__http_check_listen("127.0.0.2:4040", false, false, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(sl__http_check_listen("[::1]:4040", false, false, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(sl__http_check_listen("0.0.0.0:4040", false, false, err, sizeof(err)),
                    SL_ERR_INVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a loopback address"));
    CU_ASSERT_EQUAL(sl__http_check_listen("[::]:4040", false, false, err, sizeof(err)),
                    SL_ERR_INVAL);
    CU_ASSERT_EQUAL(sl__http_check_listen("0.0.0.0:4040", true, false, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(sl__http_check_listen("0.0.0.0:4040", false, true, err, sizeof(err)), SL_OK);
    CU_ASSERT_EQUAL(sl__http_check_listen("no-such-host.invalid:80", true, true, err, sizeof(err)),
                    SL_ERR_INVAL);

    /* The server refuses a remote address without a token, before binding anything. */
    sl_context *ctx = ts_context(1000, 1);
    sl_http_server *srv =
        sl_http_start(ctx, &(sl_http_conf){.listen = "0.0.0.0:0"}, err, sizeof(err));
    CU_ASSERT_PTR_NULL(srv);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a loopback address"));
    sl_context_destroy(ctx);
}

static void test_port_busy_and_retries(void)
{
    char err[512];
    sl_context *ctx = ts_context(1000, 1);
    sl_http_server *a =
        sl_http_start(ctx, &(sl_http_conf){.listen = "127.0.0.1:0"}, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", sl_http_port(a));
    sl_http_server *b = sl_http_start(ctx, &(sl_http_conf){.listen = listen}, err, sizeof(err));
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Address already in use"));
    sl_http_server *c =
        sl_http_start(ctx, &(sl_http_conf){.listen = listen, .port_retries = 20}, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL(c);
    if (c) {
        CU_ASSERT(sl_http_port(c) > sl_http_port(a));
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", sl_http_port(c));
        CU_ASSERT_STRING_EQUAL(sl_http_url(c), url);
    }
    sl_http_stop(c);
    sl_http_stop(a);
    sl_http_stop(NULL);
    sl_context_destroy(ctx);
}

static void test_connection_limit_and_idle_timeout(void)
{
    char err[256];
    sl_context *ctx = ts_context(1000, 1);
    sl_http_server *srv = sl_http_start(
        ctx, &(sl_http_conf){.listen = "127.0.0.1:0", .max_connections = 2, .timeout_s = 1}, err,
        sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
    int port = sl_http_port(srv);
    int idle[2];
    for (int i = 0; i < 2; i++) {
        idle[i] = connect_port(port);
        CU_ASSERT(idle[i] >= 0);
    }
    sl__sleep_ms(100);
    /* A third client waits (in the kernel's backlog) while two connections are open. */
    int third = connect_port(port);
    CU_ASSERT_FATAL(third >= 0);
    const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    CU_ASSERT_EQUAL(write_all(third, req, sizeof(req) - 1), 0);
    struct pollfd p3 = {.fd = third, .events = POLLIN};
    CU_ASSERT_EQUAL(poll(&p3, 1, 500), 0);
    /* Idle connections are closed after the timeout; then the third one is served. */
    for (int i = 0; i < 2; i++) {
        struct pollfd p = {.fd = idle[i], .events = POLLIN};
        CU_ASSERT_EQUAL(poll(&p, 1, 4000), 1);
        char c;
        CU_ASSERT_EQUAL(recv(idle[i], &c, 1, 0), 0);
        close(idle[i]);
    }
    CU_ASSERT_EQUAL(poll(&p3, 1, 4000), 1);
    char buf[64] = "";
    CU_ASSERT(recv(third, buf, sizeof(buf) - 1, 0) > 12);
    CU_ASSERT_EQUAL(strncmp(buf, "HTTP/1.1 200", 12), 0);
    close(third);
    sl_http_stop(srv);
    sl_context_destroy(ctx);
}

/* ==== Concurrency ==== */

typedef struct hammer {
    int port;
    _Atomic int ok, bad;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    const char *paths[] = {"/api/v1/status", "/metrics", "/api/v1/batches?limit=50",
                           "/api/v1/inputs"};
    for (int i = 0; i < 40; i++) {
        resp r = get(h->port, paths[i % 4]);
        if (r.status == 200) {
            atomic_fetch_add(&h->ok, 1);
        } else {
            atomic_fetch_add(&h->bad, 1);
        }
        resp_free(&r);
    }
    return NULL;
}

static void test_concurrent_clients_while_batches_run(void)
{
    fixture f;
    fixture_start(&f, TOKEN);
    hammer h = {.port = f.port};
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        pthread_create(&th[i], NULL, hammer_main, &h);
    }
    for (int i = 0; i < 60; i++) {
        step(&f, three);
        sl_metrics_gauge_set(f.ctx, "lag", "Lag.", "p=\"0\"", i);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
    }
    CU_ASSERT_EQUAL(atomic_load(&h.bad), 0);
    CU_ASSERT_EQUAL(atomic_load(&h.ok), 8 * 40);
    json_t *j = get_json(f.port, "/api/v1/status", 200);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "batches_completed")), 60);
    json_decref(j);
    j = get_json(f.port, "/api/v1/batches?limit=1000", 200);
    CU_ASSERT_EQUAL(json_array_size(j), 60);
    int64_t prev = INT64_MAX;
    for (size_t i = 0; i < json_array_size(j); i++) {
        int64_t t = json_integer_value(json_object_get(json_array_get(j, i), "batch_time"));
        CU_ASSERT(t < prev);
        prev = t;
    }
    json_decref(j);
    fixture_stop(&f);
}

void sl_test_register(void)
{
    sl_set_log_level(SL_LOG_WARN);
    SL_SUITE("http_json", SL_TEST(status_json_shape_and_values),
             SL_TEST(batches_json_newest_first_limit_since),
             SL_TEST(batches_json_keeps_the_last_1000), SL_TEST(batch_time_out_of_range_404),
             SL_TEST(inputs_and_sinks_json), SL_TEST(status_phase_while_running));
    SL_SUITE("http_metrics", SL_TEST(metrics_text_format_and_values),
             SL_TEST(metrics_label_values_escaped), SL_TEST(metrics_published_gauges),
             SL_TEST(waiting_and_restore_shown));
    SL_SUITE("http_requests", SL_TEST(status_codes_of_malformed_requests),
             SL_TEST(token_required_and_compared), SL_TEST(page_served_from_memory),
             SL_TEST(health_and_ready_when_not_running),
             SL_TEST(ready_when_running_then_falling_behind),
             SL_TEST(ready_names_a_sink_that_cannot_write), SL_TEST(ready_when_batches_pile_up),
             SL_TEST(no_secret_anywhere));
    SL_SUITE("http_server", SL_TEST(listen_addresses_checked), SL_TEST(port_busy_and_retries),
             SL_TEST(connection_limit_and_idle_timeout),
             SL_TEST(concurrent_clients_while_batches_run));
}

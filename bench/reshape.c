/* reshape.c -- records per second of one worker through the engine for one JSON reshape
 * (compute a field, rename one, drop a nested one) written four ways: the built-in ops
 * (`set`, `rename`, `drop`), a Lua map with json.decode/json.encode (with the default
 * instruction budget, so the JIT off, and with `instructions: 0`, the JIT on), and a C map
 * function using jansson, as a user would write it. A pass-through pipeline (no op) is the
 * baseline: its time is what the source and the sink cost, and the difference is the
 * reshape's own cost per record.
 *
 * Every variant reads the same events from memory through a direct source of the bench's
 * (its records are copied into batch memory, as any source's are) and ends in a sink that
 * counts records and bytes; the YAML variants are loaded from YAML text and built by the
 * YAML front end with that source and sink in place of the file's (as `sluice test` does);
 * the C variant is built through the public API. Batches are driven synchronously
 * (sl__context_step, app.workers: 1) so that no wall-clock wait counts. The variants run
 * interleaved, runs times each; each run is a fresh context.
 *
 *   reshape [--records N] [--batch N] [--runs N] [--events FILE] [VARIANT...]
 *   reshape --write-events FILE [--records N]     writes the generated events and exits
 *   reshape --show [VARIANT...]                   prints the first event and each output
 *   reshape --no-baseline VARIANT...              without the pass-through run (callgrind)
 *
 * Variants: passthrough, builtin, lua, lua_jit, c. Prints a line per run, then a table of
 * medians and ranges, and "RESULT <variant> <median records/s> <min> <max> <cpu s per 1 M
 * records>" lines for bench/reshape_lua.sh. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

#include "sl_config.h"
#include "sl_connector.h"
#include "sl_engine.h"

#define T0 INT64_C(1700000000000) /* simulated time of the first batch */

/* ==== Events ==== */

typedef struct events {
    char *buf;
    sl_record *recs;
    sl_record_meta meta;
    size_t n;
    size_t bytes;
} events;

static const char *const regions[] = {"eu-west-1", "us-east-2", "ap-south-1", "sa-east-1"};
static const char *const pages[] = {"/home", "/cart", "/products", "/search", "/checkout"};

/* Event i: about 200 bytes of JSON, numbers and texts varying with i. */
static int event_format(char *out, size_t size, uint64_t i)
{
    uint64_t h = (i + 1) * 0x9E3779B97F4A7C15ull;
    return snprintf(out, size,
                    "{\"id\":%" PRIu64 ",\"ts\":%" PRId64 ",\"user\":\"user-%05u\",\"page\":"
                    "\"%s/%u\",\"price\":%u.%02u,\"qty\":%u,\"a\":\"ref-%08x\",\"meta\":{\"debug\":"
                    "\"trace %016" PRIx64 "\",\"region\":\"%s\",\"ver\":\"2.1\"},\"ok\":%s}",
                    i, T0 + (int64_t)i * 7, (unsigned)(h % 100000), pages[(h >> 17) % 5],
                    (unsigned)((h >> 24) % 10000), (unsigned)((h >> 8) % 500), (unsigned)(h % 100),
                    (unsigned)((h >> 40) % 9 + 1), (unsigned)(h >> 32), h ^ (h >> 29),
                    regions[(h >> 20) % 4], (h & 1) ? "true" : "false");
}

static int events_generate(events *ev, size_t n)
{
    ev->buf = malloc(n * 256);
    ev->recs = calloc(n, sizeof(*ev->recs));
    if (!ev->buf || !ev->recs) {
        return -1;
    }
    ev->meta = (sl_record_meta){.source = "events", .topic = "events", .partition = 0};
    char *p = ev->buf;
    for (size_t i = 0; i < n; i++) {
        int len = event_format(p, 256, i);
        ev->recs[i] =
            (sl_record){.value = p, .value_len = (uint32_t)len, .ts = T0, .meta = &ev->meta};
        p += len;
        ev->bytes += (size_t)len;
    }
    ev->n = n;
    return 0;
}

/* One event per line of path. */
static int events_load(events *ev, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    ev->buf = malloc((size_t)size + 1);
    if (!ev->buf || fread(ev->buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        return -1;
    }
    fclose(f);
    size_t n = 0;
    for (long i = 0; i < size; i++) {
        n += ev->buf[i] == '\n';
    }
    ev->recs = calloc(n + 1, sizeof(*ev->recs));
    if (!ev->recs) {
        return -1;
    }
    ev->meta = (sl_record_meta){.source = "events", .topic = "events", .partition = 0};
    char *p = ev->buf, *end = ev->buf + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > 0) {
            ev->recs[ev->n++] =
                (sl_record){.value = p, .value_len = (uint32_t)len, .ts = T0, .meta = &ev->meta};
            ev->bytes += len;
        }
        p += len + 1;
    }
    return 0;
}

/* ==== The source: the events, batch records per batch ==== */

static events the_events;
static size_t the_batch = 100000;
static size_t next_event;

static int mem_next(void *ctx, int64_t t, sl_batch_input *in)
{
    (void)ctx;
    (void)t;
    size_t n = the_events.n - next_event < the_batch ? the_events.n - next_event : the_batch;
    int rc = sl_batch_input_add_records(in, the_events.recs + next_event, n);
    next_event += n;
    return rc;
}

static const sl_connector mem_source = {
    .name = "bench_events",
    .description = "the bench's events, from memory",
    .flags = SL_SOURCE,
    .options = (const sl_option[]){{0}},
    .next_batch = mem_next,
};

/* ==== The sink: counts records and bytes, and checks the reshape on one record a batch ==== */

typedef struct sink_count {
    uint64_t records, bytes;
    int check; /* 1: check the first record of each batch; 2: also print it */
    int bad;
} sink_count;

static sink_count the_sink;

/* True when v is event e reshaped: total = price * qty, a renamed b, meta.debug gone. */
static bool reshaped(const char *v, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb(v, len, 0, &jerr);
    if (!o) {
        return false;
    }
    json_t *meta = json_object_get(o, "meta");
    double want = json_number_value(json_object_get(o, "price")) *
                  json_number_value(json_object_get(o, "qty"));
    bool ok = json_is_number(json_object_get(o, "total")) &&
              fabs(json_number_value(json_object_get(o, "total")) - want) < 1e-9 &&
              json_is_string(json_object_get(o, "b")) && !json_object_get(o, "a") &&
              json_is_object(meta) && !json_object_get(meta, "debug") &&
              json_object_get(meta, "region") && json_object_get(o, "id");
    json_decref(o);
    return ok;
}

static int count_write(void *ctx, const sl_batch_output *out, char *errstr, size_t errsize)
{
    (void)ctx;
    (void)errstr;
    (void)errsize;
    sink_count *s = &the_sink;
    for (size_t p = 0; p < sl_dataset_partitions(out->ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            s->bytes += r[i].value_len;
        }
        s->records += n;
        if (s->check && n > 0) {
            if (s->check == 2) {
                printf("  %.*s\n", (int)r[0].value_len, r[0].value);
            }
            if (!reshaped(r[0].value, r[0].value_len)) {
                s->bad++;
            }
        }
    }
    return SL_OK;
}

static const sl_connector count_sink = {
    .name = "bench_count",
    .description = "counts records and bytes",
    .flags = SL_SINK,
    .options = (const sl_option[]){{0}},
    .write = count_write,
};

/* ==== The C map function, as a user would write it with jansson ==== */

static int reshape_c(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    (void)opaque;
    json_error_t jerr;
    json_t *o = json_loadb(in->value, in->value_len, 0, &jerr);
    if (!json_is_object(o)) {
        sl_reject_reason("not a JSON object: %s", jerr.text);
        json_decref(o);
        return SL_ERR_RECORD;
    }
    json_t *price = json_object_get(o, "price"), *qty = json_object_get(o, "qty");
    if (!json_is_number(price) || !json_is_number(qty)) {
        sl_reject_reason("price or qty is not a number");
        json_decref(o);
        return SL_ERR_RECORD;
    }
    if (json_is_integer(price) && json_is_integer(qty)) {
        json_object_set_new(o, "total",
                            json_integer(json_integer_value(price) * json_integer_value(qty)));
    } else {
        json_object_set_new(o, "total",
                            json_real(json_number_value(price) * json_number_value(qty)));
    }
    json_t *a = json_object_get(o, "a");
    if (a) {
        json_object_set(o, "b", a);
        json_object_del(o, "a");
    }
    json_t *meta = json_object_get(o, "meta");
    if (json_is_object(meta)) {
        json_object_del(meta, "debug");
    }
    char buf[4096];
    size_t len = json_dumpb(o, buf, sizeof(buf), JSON_COMPACT);
    json_decref(o);
    if (len == 0 || len > sizeof(buf)) {
        sl_reject_reason("the result does not fit in %zu bytes", sizeof(buf));
        return SL_ERR_RECORD;
    }
    out->value = sl_emitter_copy(e, buf, len);
    out->value_len = (uint32_t)len;
    return out->value ? SL_OK : SL_ERR_NOMEM;
}

/* ==== Variants ==== */

#define YAML_HEAD                                                                                  \
    "app: {name: reshape, batch_interval: 1s, workers: 1, log_level: warn}\n"                      \
    "sources:\n  - {name: events, type: generate}\n"                                               \
    "sinks:\n  - {name: out, type: stdout, from: shaped}\n"                                        \
    "streams:\n  - name: shaped\n    from: events\n    ops:\n"

#define LUA_RESHAPE                                                                                \
    "            function(r)\n"                                                                    \
    "              local t = json.decode(r.value)\n"                                               \
    "              t.total = t.price * t.qty\n"                                                    \
    "              t.b = t.a\n"                                                                    \
    "              t.a = nil\n"                                                                    \
    "              t.meta.debug = nil\n"                                                           \
    "              return json.encode(t)\n"                                                        \
    "            end\n"

typedef struct variant {
    const char *name;
    const char *what;
    const char *yaml; /* NULL: built through the C API */
    sl_map_fn fn;     /* the C API's map function, NULL: none (pass-through) */
} variant;

static const variant variants[] = {
    {"passthrough", "no op (source and sink only)", NULL, NULL},
    {"builtin", "set + rename + drop (YAML)",
     YAML_HEAD "      - set: {field: total, expr: \"price * qty\"}\n"
               "      - rename: {from: a, to: b}\n"
               "      - drop: [meta.debug]\n",
     NULL},
    {"lua", "Lua map, json.decode/encode (YAML, default budget: JIT off)",
     YAML_HEAD "      - map:\n          lua: |\n" LUA_RESHAPE, NULL},
    {"lua_jit", "the same with instructions: 0 (JIT on)",
     YAML_HEAD "      - map:\n          instructions: 0\n          lua: |\n" LUA_RESHAPE, NULL},
    {"c", "C map function with jansson (C API)", NULL, reshape_c},
};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Builds the variant's context; *cfg is the YAML config it keeps (destroy it after). */
static sl_context *variant_build(const variant *v, sl_config **cfg)
{
    char err[1024];
    *cfg = NULL;
    if (v->yaml) {
        if (sl__config_load_string(v->yaml, strlen(v->yaml), "reshape.yaml", cfg, err,
                                   sizeof(err)) != SL_OK) {
            fprintf(stderr, "%s: %s\n", v->name, err);
            return NULL;
        }
        const sl_options *none[1] = {NULL};
        sl_options *sink_opts = sl_options_new();
        const sl_options *sinks[1] = {sink_opts};
        sl_config_swap swap = {.source_opts = none,
                               .sink_opts = sinks,
                               .source_conn = &mem_source,
                               .sink_conn = &count_sink};
        sl_context *ctx = sl__config_build_swapped(*cfg, &swap, err, sizeof(err));
        sl_options_destroy(sink_opts);
        if (!ctx) {
            fprintf(stderr, "%s: %s\n", v->name, err);
        }
        return ctx;
    }
    sl_context_conf conf = {.name = "reshape", .batch_interval_ms = 1000, .workers = 1};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "%s: %s\n", v->name, err);
        return NULL;
    }
    sl_stream *s =
        sl_context_add_source_connector(ctx, &mem_source, "events", NULL, err, sizeof(err));
    if (s && v->fn) {
        s = sl_stream_map(s, v->fn, NULL);
    }
    if (!s || sl_stream_to_connector(s, &count_sink, "out", NULL, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "%s: cannot build: %s\n", v->name, err);
        sl_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

typedef struct run_result {
    double wall, cpu;
    uint64_t failed;
} run_result;

/* Runs every event through the variant once. Returns 0, or -1 when something failed. */
static int variant_run(const variant *v, int check, run_result *res)
{
    sl_config *cfg;
    sl_context *ctx = variant_build(v, &cfg);
    if (!ctx) {
        sl__config_destroy(cfg);
        return -1;
    }
    the_sink = (sink_count){.check = check};
    next_event = 0;
    res->failed = 0;
    double t0 = now_s(), c0 = cpu_s();
    int rc = 0;
    for (int64_t b = 0; next_event < the_events.n; b++) {
        sl_batch_info info;
        if (sl__context_step(ctx, T0 + b * 1000, &info) != SL_OK ||
            info.outputs_succeeded != info.outputs_total) {
            fprintf(stderr, "%s: batch %" PRId64 " failed: %s\n", v->name, b, info.error);
            rc = -1;
            break;
        }
        res->failed += info.failed_records;
    }
    res->wall = now_s() - t0;
    res->cpu = cpu_s() - c0;
    sl_context_destroy(ctx);
    sl__config_destroy(cfg);
    if (rc == 0 && (the_sink.records != the_events.n || res->failed || the_sink.bad)) {
        fprintf(stderr, "%s: %" PRIu64 " of %zu records out, %" PRIu64 " rejected, %d wrong\n",
                v->name, the_sink.records, the_events.n, res->failed, the_sink.bad);
        rc = -1;
    }
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ==== Main ==== */

int main(int argc, char **argv)
{
    size_t records = 1000000;
    int runs = 3, show = 0, baseline = 1;
    const char *events_path = NULL, *write_path = NULL;
    int want[NVARIANTS] = {0}, nwant = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--records") && val) {
            records = strtoull(val, NULL, 10);
            i++;
        } else if (!strcmp(a, "--batch") && val) {
            the_batch = strtoull(val, NULL, 10);
            i++;
        } else if (!strcmp(a, "--runs") && val) {
            runs = atoi(val);
            i++;
        } else if (!strcmp(a, "--events") && val) {
            events_path = val;
            i++;
        } else if (!strcmp(a, "--write-events") && val) {
            write_path = val;
            i++;
        } else if (!strcmp(a, "--no-baseline")) {
            baseline = 0;
        } else if (!strcmp(a, "--show")) {
            show = 1;
        } else {
            size_t v = 0;
            while (v < NVARIANTS && strcmp(a, variants[v].name) != 0) {
                v++;
            }
            if (v == NVARIANTS) {
                fprintf(stderr,
                        "usage: %s [--records N] [--batch N] [--runs N] [--events FILE] "
                        "[--write-events FILE] [--show] [--no-baseline] "
                        "[passthrough|builtin|lua|lua_jit|c...]\n",
                        argv[0]);
                return 2;
            }
            want[v] = 1;
            nwant++;
        }
    }
    if (records == 0 || the_batch == 0 || runs < 1) {
        fprintf(stderr, "records, batch and runs must be positive\n");
        return 2;
    }
    int rc = events_path ? events_load(&the_events, events_path)
                         : events_generate(&the_events, show ? 3 : records);
    if (rc != 0 || the_events.n == 0) {
        fprintf(stderr, "no events\n");
        return 1;
    }
    if (write_path) {
        FILE *f = fopen(write_path, "wb");
        for (size_t i = 0; f && i < the_events.n; i++) {
            fwrite(the_events.recs[i].value, 1, the_events.recs[i].value_len, f);
            fputc('\n', f);
        }
        if (!f || fclose(f) != 0) {
            perror(write_path);
            return 1;
        }
        return 0;
    }
    sl_set_log_level(SL_LOG_WARN);
    if (show) {
        the_batch = 1;
        printf("event: %.*s\n", (int)the_events.recs[0].value_len, the_events.recs[0].value);
        for (size_t v = 1; v < NVARIANTS; v++) {
            run_result r;
            if (!nwant || want[v]) {
                printf("%s:\n", variants[v].name);
                the_events.n = 1;
                if (variant_run(&variants[v], 2, &r) != 0) {
                    return 1;
                }
            }
        }
        return 0;
    }
    printf("reshape: %zu events of %.0f bytes on average, %zu per batch, one worker, %d runs "
           "per variant (interleaved)\n",
           the_events.n, (double)the_events.bytes / (double)the_events.n, the_batch, runs);
    static double rate[NVARIANTS][64], cpu[NVARIANTS][64], wall[NVARIANTS][64];
    runs = runs > 64 ? 64 : runs;
    if (baseline) {
        want[0] = 1;
    }
    for (int r = 0; r < runs; r++) {
        for (size_t v = 0; v < NVARIANTS; v++) {
            if (nwant && !want[v]) {
                continue;
            }
            run_result res;
            if (variant_run(&variants[v], r == 0 && v > 0, &res) != 0) {
                return 1;
            }
            wall[v][r] = res.wall;
            rate[v][r] = (double)the_events.n / res.wall;
            cpu[v][r] = res.cpu;
            printf("  %-12s run %d: %.3f s, cpu %.3f s: %9.0f records/s\n", variants[v].name, r + 1,
                   res.wall, res.cpu, rate[v][r]);
            fflush(stdout);
        }
    }
    double base_wall = 0;
    printf("\n| variant | records/s (median) | range | cpu s per 1 M | ns/record | reshape "
           "ns/record (less pass-through) |\n|---|---|---|---|---|---|\n");
    for (size_t v = 0; v < NVARIANTS; v++) {
        if (nwant && !want[v]) {
            continue;
        }
        qsort(rate[v], (size_t)runs, sizeof(double), cmp_double);
        qsort(cpu[v], (size_t)runs, sizeof(double), cmp_double);
        qsort(wall[v], (size_t)runs, sizeof(double), cmp_double);
        double med_wall = wall[v][runs / 2];
        if (v == 0) {
            base_wall = med_wall;
        }
        double ns = med_wall / (double)the_events.n * 1e9;
        double own = (med_wall - base_wall) / (double)the_events.n * 1e9;
        printf("| %s: %s | %.0f | %.0f-%.0f | %.3f | %.0f | %.0f |\n", variants[v].name,
               variants[v].what, rate[v][runs / 2], rate[v][0], rate[v][runs - 1],
               cpu[v][runs / 2] / (double)the_events.n * 1e6, ns, own);
    }
    for (size_t v = 0; v < NVARIANTS; v++) {
        if (!nwant || want[v]) {
            printf("RESULT %s %.0f %.0f %.0f %.3f\n", variants[v].name, rate[v][runs / 2],
                   rate[v][0], rate[v][runs - 1], cpu[v][runs / 2] / (double)the_events.n * 1e6);
        }
    }
    free(the_events.buf);
    free(the_events.recs);
    return 0;
}

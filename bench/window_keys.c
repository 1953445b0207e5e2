/* window_keys.c -- a 10-minute window sliding every second over a million distinct keys,
 * with and without the inverse function, and the stateful operators over the same keys.
 *
 * Batches are driven synchronously (one per simulated second, no waiting for the wall
 * clock) from a direct source built into the bench: batch b holds per_batch records whose
 * keys sweep the key space ("key-0000000" .. "key-0999999", each record's typed value 1),
 * so that the window holds every key once keys / per_batch batches have run, and keys leave
 * the window once it is full (with the defaults: after 600 batches). Each mode runs in a
 * child process of its own, so that its peak RSS is its own.
 *
 *   window_keys [--keys N] [--per-batch N] [--window S] [--batches MODE=N,...]
 *               [--workers N] [--dir DIR] [MODE...]
 *
 * Modes: inverse (reduce_by_key_and_window with sl_reduce_sum_inverse), plain (without:
 * the window's reduced batches are reduced again every second), update
 * (update_state_by_key: a running count per key) and mapstate (map_with_state with a
 * 10-minute idle timeout). A checkpoint directory is used (windows with an inverse and
 * stateful operators need one): state snapshots are written every 10 batches and count in
 * the processing time of those batches (the max column). Prints one table row per mode. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sl_connector.h"
#include "sl_engine.h"

#define T0 1700000000000LL /* simulated time of the first batch */

typedef struct bench_conf {
    uint32_t keys;
    uint32_t per_batch;
    int64_t window_s;
    int workers;
    const char *dir;
    int batches[4];
} bench_conf;

static const char *const mode_names[] = {"inverse", "plain", "update", "mapstate"};

/* ==== The source: a sweep over the key space ==== */

typedef struct sweep_src {
    const bench_conf *conf;
    uint64_t next; /* index of the next key */
    sl_record *recs;
    char *keys;
} sweep_src;

static sl_connector sweep_connector;

static int sweep_next(void *ctx, int64_t t, sl_batch_input *in)
{
    sweep_src *s = ctx;
    uint32_t n = s->conf->per_batch;
    if (!s->recs) {
        s->recs = calloc(n, sizeof(*s->recs));
        s->keys = malloc((size_t)n * 16);
        if (!s->recs || !s->keys) {
            return SL_ERR_NOMEM;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        char *k = s->keys + (size_t)i * 16;
        int len = snprintf(k, 16, "key-%07u", (unsigned)(s->next++ % s->conf->keys));
        s->recs[i] = (sl_record){.key = k, .key_len = (uint32_t)len, .ts = t};
        sl_record_set_int(&s->recs[i], 1);
    }
    sl_batch_input_describe(in, "%u keys", (unsigned)n);
    return sl_batch_input_add_records(in, s->recs, n);
}

static void sweep_destroy(void *ctx)
{
    sweep_src *s = ctx;
    free(s->recs);
    free(s->keys);
}

/* ==== Operators ==== */

static int count_up(const char *key, uint32_t len, const sl_record *vals, size_t n, sl_state *state,
                    sl_emitter *e, void *opaque)
{
    if (n == 0) {
        return SL_OK; /* unchanged */
    }
    int64_t c = state->exists ? state->num.i : 0;
    state->exists = true;
    state->num_type = SL_NUM_INT;
    state->num.i = c + (int64_t)n;
    return SL_OK;
}

static int count_records(const sl_record *in, sl_state *state, sl_emitter *e, void *opaque)
{
    if (state->timing_out) {
        return SL_OK;
    }
    int64_t c = state->exists ? state->num.i : 0;
    state->exists = true;
    state->num_type = SL_NUM_INT;
    state->num.i = c + 1;
    sl_record out = {.key = in->key, .key_len = in->key_len, .ts = in->ts};
    sl_record_set_int(&out, c + 1);
    return sl_emit(e, &out);
}

typedef struct sink_stats {
    uint64_t records; /* of the last batch */
} sink_stats;

static int count_output(const sl_dataset *ds, int64_t t, void *opaque)
{
    ((sink_stats *)opaque)->records = sl_dataset_count(ds);
    return SL_OK;
}

/* ==== One mode ==== */

typedef struct result {
    int batches;
    double median_ms, p90_ms, max_ms, last_mean_ms;
    uint64_t out_records;
    uint64_t window_bytes, window_keys, state_bytes, state_keys;
    long peak_rss_kb;
    int failed;
} result;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void run_mode(const bench_conf *bc, int mode, result *res)
{
    char dir[512], err[512];
    snprintf(dir, sizeof(dir), "%s/%s-XXXXXX", bc->dir, mode_names[mode]);
    memset(res, 0, sizeof(*res));
    res->failed = 1;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return;
    }
    sl_context_conf conf = {
        .name = "window_keys",
        .batch_interval_ms = 1000,
        .workers = bc->workers,
        .checkpoint_dir = dir,
    };
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    sl_set_log_level(SL_LOG_WARN);
    sl_stream *in =
        sl_context_add_source_connector(ctx, &sweep_connector, "keys", NULL, err, sizeof(err));
    if (!in) {
        fprintf(stderr, "%s\n", err);
        sl_context_destroy(ctx);
        return;
    }
    ((sweep_src *)in->source->cctx)->conf = bc;
    int64_t w = bc->window_s * 1000;
    sl_stream *out = NULL;
    switch (mode) {
    case 0:
        out = sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, sl_reduce_sum_inverse, NULL,
                                                 NULL, w, 1000, 0);
        break;
    case 1:
        out = sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, NULL, NULL, NULL, w, 1000, 0);
        break;
    case 2: out = sl_stream_update_state_by_key(in, count_up, NULL, 0); break;
    case 3: out = sl_stream_map_with_state(in, count_records, NULL, 600000, 0); break;
    }
    sink_stats sink = {0};
    if (!out || sl_stream_foreach_batch(out, count_output, &sink) != SL_OK) {
        sl_context_destroy(ctx);
        return;
    }
    int n = bc->batches[mode];
    int64_t *ms = calloc((size_t)n + 1, sizeof(*ms));
    for (int b = 0; b < n; b++) {
        sl_batch_info info;
        if (sl__context_step(ctx, T0 + (int64_t)b * 1000, &info) != SL_OK ||
            info.outputs_succeeded != info.outputs_total) {
            fprintf(stderr, "%s: batch %d failed: %s\n", mode_names[mode], b, info.error);
            free(ms);
            sl_context_destroy(ctx);
            return;
        }
        ms[b] = info.processing_time;
        if ((b + 1) % 60 == 0) {
            fprintf(stderr, "%s: %d batches, last %" PRId64 " ms\n", mode_names[mode], b + 1,
                    ms[b]);
        }
    }
    sl_context_stats st;
    sl_context_get_stats(ctx, &st);
    res->window_bytes = st.window_bytes;
    res->window_keys = st.window_keys;
    res->state_bytes = st.state_bytes;
    res->state_keys = st.state_keys;
    res->out_records = sink.records;
    int last = n < 10 ? n : 10;
    int64_t sum = 0;
    for (int b = n - last; b < n; b++) {
        sum += ms[b];
    }
    res->last_mean_ms = last ? (double)sum / last : 0;
    qsort(ms, (size_t)n, sizeof(*ms), cmp_i64);
    res->batches = n;
    res->median_ms = n ? (double)ms[n / 2] : 0;
    res->p90_ms = n ? (double)ms[(n * 9) / 10] : 0;
    res->max_ms = n ? (double)ms[n - 1] : 0;
    free(ms);
    sl_context_destroy(ctx);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    res->peak_rss_kb = ru.ru_maxrss;
    res->failed = 0;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
}

/* ==== Main ==== */

static int parse_batches(const char *arg, bench_conf *bc)
{
    char *copy = strdup(arg);
    int rc = 0;
    for (char *save, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        int found = 0;
        for (int m = 0; eq && m < 4; m++) {
            if ((size_t)(eq - tok) == strlen(mode_names[m]) &&
                strncmp(tok, mode_names[m], (size_t)(eq - tok)) == 0) {
                bc->batches[m] = atoi(eq + 1);
                found = 1;
            }
        }
        if (!found) {
            rc = -1;
        }
    }
    free(copy);
    return rc;
}

int main(int argc, char **argv)
{
    bench_conf bc = {
        .keys = 1000000,
        .per_batch = 20000,
        .window_s = 600,
        .workers = 0,
        .dir = "/tmp",
        .batches = {660, 60, 60, 60},
    };
    int want[4] = {0}, nwant = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--keys") && v) {
            bc.keys = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--per-batch") && v) {
            bc.per_batch = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--window") && v) {
            bc.window_s = strtoll(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--workers") && v) {
            bc.workers = atoi(v);
            i++;
        } else if (!strcmp(a, "--dir") && v) {
            bc.dir = v;
            i++;
        } else if (!strcmp(a, "--batches") && v && parse_batches(v, &bc) == 0) {
            i++;
        } else {
            int m = 0;
            while (m < 4 && strcmp(a, mode_names[m]) != 0) {
                m++;
            }
            if (m == 4) {
                fprintf(stderr,
                        "usage: %s [--keys N] [--per-batch N] [--window S] [--workers N] "
                        "[--dir DIR] [--batches MODE=N,...] [inverse|plain|update|mapstate...]\n",
                        argv[0]);
                return 2;
            }
            want[m] = 1;
            nwant++;
        }
    }
    if (bc.keys == 0 || bc.per_batch == 0 || bc.window_s <= 0) {
        fprintf(stderr, "keys, per-batch and window must be positive\n");
        return 2;
    }
    sweep_connector = (sl_connector){
        .name = "sweep",
        .description = "keys sweeping the key space",
        .flags = SL_SOURCE,
        .options = (const sl_option[]){{0}},
        .ctx_size = sizeof(sweep_src),
        .next_batch = sweep_next,
        .destroy = sweep_destroy,
    };
    printf("window_keys: %u distinct keys, %u records per 1 s batch, window %" PRId64
           " s sliding every 1 s\n\n",
           (unsigned)bc.keys, (unsigned)bc.per_batch, bc.window_s);
    printf("| mode | batches | median ms | p90 ms | max ms | last 10 mean ms | output records "
           "| keys held | window MiB | state MiB | state B/key | peak RSS MiB |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    int status = 0;
    for (int m = 0; m < 4; m++) {
        if (nwant && !want[m]) {
            continue;
        }
        int fds[2];
        if (pipe(fds) != 0) {
            perror("pipe");
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            result r;
            run_mode(&bc, m, &r);
            ssize_t wr = write(fds[1], &r, sizeof(r));
            _exit(wr == (ssize_t)sizeof(r) && !r.failed ? 0 : 1);
        }
        close(fds[1]);
        result r = {.failed = 1};
        ssize_t got = read(fds[0], &r, sizeof(r));
        close(fds[0]);
        int ws = 0;
        waitpid(pid, &ws, 0);
        if (got != (ssize_t)sizeof(r) || r.failed) {
            printf("| %s | failed | | | | | | | | | | |\n", mode_names[m]);
            status = 1;
            continue;
        }
        uint64_t keys_held = m < 2 ? (m == 0 ? r.window_keys : r.out_records) : r.state_keys;
        char per_key[32] = "-";
        if (r.state_keys) {
            snprintf(per_key, sizeof(per_key), "%.0f", (double)r.state_bytes / r.state_keys);
        }
        printf("| %s | %d | %.0f | %.0f | %.0f | %.1f | %" PRIu64 " | %" PRIu64
               " | %.1f | %.1f | %s | %.0f |\n",
               mode_names[m], r.batches, r.median_ms, r.p90_ms, r.max_ms, r.last_mean_ms,
               r.out_records, keys_held, r.window_bytes / 1048576.0, r.state_bytes / 1048576.0,
               per_key, r.peak_rss_kb / 1024.0);
        fflush(stdout);
    }
    return status;
}

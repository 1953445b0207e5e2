/* support.c -- see support.h. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sl_config.h"
#include "sl_engine.h"
#include "support.h"

struct ts_source {
    pthread_mutex_t lock;
    sl_record *recs;
    size_t n, cap;
    char **bytes;
    size_t nbytes, capbytes;
};

typedef struct ts_ctx {
    ts_source *src;
} ts_ctx;

static int ts_init(sl_instance *ins, void *ctx, char *errstr, size_t errsize)
{
    ts_ctx *c = ctx;
    c->src = calloc(1, sizeof(*c->src));
    pthread_mutex_init(&c->src->lock, NULL);
    return SL_OK;
}

static int ts_next_batch(void *ctx, int64_t t, sl_batch_input *in)
{
    ts_source *s = ((ts_ctx *)ctx)->src;
    pthread_mutex_lock(&s->lock);
    int rc = sl_batch_input_add_records(in, s->recs, s->n);
    sl_batch_input_describe(in, "%zu scripted", s->n);
    s->n = 0;
    for (size_t i = 0; i < s->nbytes; i++) {
        free(s->bytes[i]);
    }
    s->nbytes = 0;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static void ts_destroy(void *ctx)
{
    ts_source *s = ((ts_ctx *)ctx)->src;
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->nbytes; i++) {
        free(s->bytes[i]);
    }
    free(s->bytes);
    free(s->recs);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const sl_option ts_options[] = {{0}};

static const sl_connector ts_connector = {
    .name = "test-source",
    .description = "scripted records for tests",
    .flags = SL_SOURCE,
    .options = ts_options,
    .ctx_size = sizeof(ts_ctx),
    .init = ts_init,
    .next_batch = ts_next_batch,
    .destroy = ts_destroy,
};

sl_stream *ts_source_add(sl_context *ctx, const char *name, ts_source **src)
{
    char err[256];
    sl_stream *s =
        sl_context_add_source_connector(ctx, &ts_connector, name, NULL, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "ts_source_add: %s\n", err);
        return NULL;
    }
    *src = ((ts_ctx *)s->source->cctx)->src;
    return s;
}

static char *keep(ts_source *s, const char *p, size_t n)
{
    char *c = malloc(n + 1);
    memcpy(c, p, n);
    c[n] = '\0';
    if (s->nbytes == s->capbytes) {
        s->capbytes = s->capbytes ? s->capbytes * 2 : 64;
        s->bytes = realloc(s->bytes, s->capbytes * sizeof(*s->bytes));
    }
    s->bytes[s->nbytes++] = c;
    return c;
}

void ts_feed_records(ts_source *s, const sl_record *recs, size_t n)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 64;
            s->recs = realloc(s->recs, s->cap * sizeof(*s->recs));
        }
        sl_record r = recs[i];
        /* An empty key or value stays apart from none (NULL). */
        r.key = r.key_len ? keep(s, r.key, r.key_len) : r.key ? "" : NULL;
        r.value = r.value_len ? keep(s, r.value, r.value_len) : r.value ? "" : NULL;
        s->recs[s->n++] = r;
    }
    pthread_mutex_unlock(&s->lock);
}

void ts_feed(ts_source *s, const char *const *lines)
{
    for (; *lines; lines++) {
        sl_record r = {.value = *lines, .value_len = (uint32_t)strlen(*lines)};
        ts_feed_records(s, &r, 1);
    }
}

void ts_record_text(const sl_record *r, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%.*s", (int)r->key_len, r->key ? r->key : "");
    if (r->num_type == SL_NUM_INT) {
        snprintf(buf + n, size - (size_t)n, ":%" PRId64, r->num.i);
    } else if (r->num_type == SL_NUM_DOUBLE) {
        snprintf(buf + n, size - (size_t)n, ":%g", r->num.d);
    } else {
        snprintf(buf + n, size - (size_t)n, "%s%.*s", r->key_len ? "=" : "", (int)r->value_len,
                 r->value ? r->value : "");
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int collect_fn(const sl_dataset *ds, int64_t t, void *opaque)
{
    ts_out *out = opaque;
    if (out->fail_times > 0) {
        out->fail_times--;
        return SL_ERR_RETRY;
    }
    size_t total = sl_dataset_count(ds);
    char **lines = calloc(total + 1, sizeof(*lines));
    size_t k = 0;
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *r = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            char buf[512];
            ts_record_text(&r[i], buf, sizeof(buf));
            lines[k++] = strdup(buf);
        }
    }
    qsort(lines, k, sizeof(*lines), cmp_str);
    size_t off = 0;
    out->text[0] = '\0';
    for (size_t i = 0; i < k; i++) {
        off += (size_t)snprintf(out->text + off, sizeof(out->text) - off, "%s%s", i ? " " : "",
                                lines[i]);
        if (off >= sizeof(out->text)) {
            off = sizeof(out->text) - 1;
        }
        free(lines[i]);
    }
    free(lines);
    out->batches++;
    out->records = total;
    out->partitions = sl_dataset_partitions(ds);
    out->last_time = t;
    return SL_OK;
}

int ts_collect(sl_stream *s, ts_out *out)
{
    memset(out, 0, sizeof(*out));
    return sl_stream_foreach_batch(s, collect_fn, out);
}

sl_context *ts_context(int64_t interval, int workers)
{
    char err[256];
    sl_context_conf conf = {.name = "test", .batch_interval_ms = interval, .workers = workers};
    sl_context *ctx = sl_context_new(&conf, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "ts_context: %s\n", err);
    }
    return ctx;
}

bool ts_tmpdir(char *dir, size_t size, const char *what)
{
    snprintf(dir, size, "/tmp/sluice-%s-%d-XXXXXX", what, (int)getpid());
    return mkdtemp(dir) != NULL;
}

bool ts_rmdir(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return strncmp(dir, "/tmp/sluice-", 12) == 0 && system(cmd) == 0;
}

int ts_config_load(const char *y, struct sl_config **cfg, char *desc, size_t descsize, char *err,
                   size_t errsize)
{
    *cfg = NULL;
    err[0] = desc[0] = '\0';
    int rc = sl__config_load_string(y, strlen(y), "t.yaml", cfg, err, errsize);
    if (rc == SL_OK) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
            sl__config_print_graph(*cfg, f);
            fclose(f);
        }
        snprintf(desc, descsize, "%s", buf ? buf : "");
        free(buf);
    }
    return rc;
}

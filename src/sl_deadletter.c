/* sl_deadletter.c -- records sinks reject: the errors.* options, the reject queue of each
 * sink instance, the JSON line of a dead letter, the file target and the registry of
 * targets (see sl_deadletter.h for the protocol and its delivery guarantee).
 *
 * Attempts: the queue belongs to one write attempt. An attempt that fails discards it; the
 * next attempt rejects the records again (sinks rebuild their batch), so a failed attempt
 * leaves nothing behind but what it had already flushed, which is written again (at least
 * once). Within an attempt, a record is known by its pointer: rejecting it twice (a sink
 * that redoes its statement row by row) counts and queues it once. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sl_context.h"
#include "sl_deadletter.h"
#include "sl_options.h"
#include "sl_util.h"

#define DL_BACKOFF_MIN_MS 100
#define DL_BACKOFF_MAX_MS 5000
#define DL_ARENA_CHUNK    (64 * 1024)

/* ==== Options ==== */

static const sl_option dl_options[] = {
    {.name = "errors.tolerance",
     .type = SL_OPT_ENUM,
     .def = "all",
     .choices = "all|none",
     .offset = offsetof(sl_dl_conf, tolerance),
     .doc = "a record the sink cannot write (a value that does not fit its column, a command "
            "the server refuses): all: leave it out, count and log it, and send it to "
            "errors.dead_letter; none: stop the pipeline (exit status 1) without committing "
            "the batch, which runs again after a restart"},
    {.name = "errors.log_limit",
     .type = SL_OPT_INT,
     .def = "5",
     .min = 0,
     .max = 1000000,
     .offset = offsetof(sl_dl_conf, log_limit),
     .doc = "rejected records logged one by one per batch, with source, topic, partition and "
            "offset; the others are summed up in one line"},
    {.name = "errors.dead_letter.type",
     .type = SL_OPT_ENUM,
     .choices = "file|kafka",
     .offset = offsetof(sl_dl_conf, type),
     .doc = "where rejected records go (default: nowhere, they are counted and logged): file: "
            "JSON lines appended to <path>/<pipeline>-<sink>.jsonl; kafka: messages to a topic "
            "(the record's key and value, headers sluice.error, sluice.source, ...). Written "
            "before the sink commits the batch: at least once"},
    {.name = "errors.dead_letter.path",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_dl_conf, path),
     .doc = "file: the directory of the dead-letter file, created if missing; a file has one "
            "writer: instances of a scaled-out pipeline need a directory each (e.g. "
            "/var/lib/sluice/dead/${HOSTNAME})"},
    {.name = "errors.dead_letter.brokers",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_dl_conf, brokers),
     .doc = "kafka: bootstrap brokers host:port,..."},
    {.name = "errors.dead_letter.topic",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_dl_conf, topic),
     .doc = "kafka: the dead-letter topic"},
    {.name = "errors.dead_letter.properties",
     .type = SL_OPT_LIST,
     .flags = SL_OPT_SECRET,
     .offset = offsetof(sl_dl_conf, properties),
     .doc = "kafka: librdkafka producer settings key=value (security, compression); never "
            "shown"},
    {.name = "errors.dead_letter.timeout",
     .type = SL_OPT_DURATION,
     .def = "30s",
     .min = 100,
     .max = 3600000,
     .offset = offsetof(sl_dl_conf, timeout),
     .doc = "kafka: longest wait for the dead letters to be acknowledged before the batch is "
            "retried"},
    {0},
};

const sl_option *sl__deadletter_options(void)
{
    return dl_options;
}

/* ==== JSON lines ==== */

typedef struct dl_buf {
    char **p;
    size_t *len, *cap;
    bool failed;
} dl_buf;

static void buf_put(dl_buf *b, const void *s, size_t n)
{
    if (b->failed) {
        return;
    }
    if (*b->len + n + 1 > *b->cap) {
        size_t cap = *b->cap ? *b->cap : 256;
        while (*b->len + n + 1 > cap) {
            cap *= 2;
        }
        char *p = realloc(*b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        *b->p = p;
        *b->cap = cap;
    }
    memcpy(*b->p + *b->len, s, n);
    *b->len += n;
    (*b->p)[*b->len] = '\0';
}

static void buf_str(dl_buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_printf(dl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(dl_buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    buf_put(b, tmp, n > 0 ? (size_t)SL_MIN((size_t)n, sizeof(tmp) - 1) : 0);
}

/* The JSON text writers' callback: appends to the dl_buf out. */
static void buf_append(void *out, const void *s, size_t n)
{
    buf_put(out, s, n);
}

static void json_name(dl_buf *b, const char *s)
{
    if (!s) {
        buf_str(b, "null");
    } else {
        sl__json_text(buf_append, b, s, strlen(s));
    }
}

/* ,"name":<bytes> as text, or base64 with "name_encoding":"base64"; null when absent. */
static void json_bytes(dl_buf *b, const char *name, const char *s, size_t n)
{
    buf_put(b, ",", 1);
    sl__json_bytes(buf_append, b, name, s, n);
}

int sl__dl_json_line(char **buf, size_t *len, size_t *cap, const sl_dl_batch *bt,
                     const sl_dl_entry *e)
{
    dl_buf b = {.p = buf, .len = len, .cap = cap};
    size_t start = *len;
    buf_str(&b, "{\"pipeline\":");
    json_name(&b, bt->pipeline);
    buf_str(&b, ",\"sink\":");
    json_name(&b, bt->sink);
    buf_printf(&b, ",\"batch_time\":%" PRId64 ",\"error\":", bt->batch_time);
    json_name(&b, e->error);
    buf_str(&b, ",\"source\":");
    json_name(&b, e->source);
    buf_str(&b, ",\"topic\":");
    json_name(&b, e->topic);
    if (e->partition >= 0) {
        buf_printf(&b, ",\"partition\":%" PRId32, e->partition);
    } else {
        buf_str(&b, ",\"partition\":null");
    }
    if (e->offset >= 0) {
        buf_printf(&b, ",\"offset\":%" PRId64, e->offset);
    } else {
        buf_str(&b, ",\"offset\":null");
    }
    buf_printf(&b, ",\"ts\":%" PRId64, e->ts);
    json_bytes(&b, "key", e->key, e->key_len);
    json_bytes(&b, "value", e->value, e->value_len);
    if (e->num_type == SL_NUM_INT) {
        buf_printf(&b, ",\"num\":%" PRId64, e->num.i);
    } else if (e->num_type == SL_NUM_DOUBLE) {
        if (isfinite(e->num.d)) {
            buf_printf(&b, ",\"num\":%.17g", e->num.d);
        } else {
            buf_str(&b, ",\"num\":null");
        }
    }
    buf_str(&b, "}\n");
    if (b.failed) {
        *len = start;
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

/* ==== The file target ==== */

typedef struct dl_file {
    char *dir;
    char *path;
    char desc[PATH_MAX + 8];
    int fd; /* -1 until the first write, and after a failed one */
    char *buf;
    size_t len, cap;
} dl_file;

/* A name of the file: the pipeline's and the sink's names with '/' replaced. */
static void dl_file_name(char *out, size_t size, const char *pipeline, const char *sink)
{
    snprintf(out, size, "%s-%s.jsonl", pipeline, sink);
    for (char *c = out; *c; c++) {
        if (*c == '/') {
            *c = '_';
        }
    }
}

static void *dl_file_open(sl_instance *ins, const sl_dl_conf *conf, char *errstr, size_t errsize)
{
    if (!conf->path || !*conf->path) {
        snprintf(errstr, errsize,
                 "errors.dead_letter.path: give the directory of the dead-letter file for "
                 "errors.dead_letter.type: file");
        return NULL;
    }
    dl_file *f = calloc(1, sizeof(*f));
    char name[512];
    dl_file_name(name, sizeof(name), sl_context_name(sl_instance_context(ins)),
                 sl_instance_name(ins));
    if (f) {
        f->fd = -1;
        f->dir = strdup(conf->path);
        f->path = malloc(strlen(conf->path) + strlen(name) + 2);
    }
    if (!f || !f->dir || !f->path) {
        if (f) {
            free(f->dir);
            free(f->path);
            free(f);
        }
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    sprintf(f->path, "%s/%s", conf->path, name);
    snprintf(f->desc, sizeof(f->desc), "file %s", f->path);
    return f;
}

/* Cuts a line that a crash left half written (it belongs to a batch that did not commit:
 * it is written again whole). Returns 0 or -1 with errno. */
static int dl_file_trim(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -1;
    }
    off_t end = st.st_size;
    char chunk[4096];
    while (end > 0) {
        size_t n = (size_t)SL_MIN((off_t)sizeof(chunk), end);
        if (pread(fd, chunk, n, end - (off_t)n) != (ssize_t)n) {
            return -1;
        }
        for (size_t i = n; i > 0; i--) {
            if (chunk[i - 1] == '\n') {
                off_t keep = end - (off_t)n + (off_t)i;
                return keep == st.st_size ? 0 : ftruncate(fd, keep);
            }
        }
        end -= (off_t)n;
    }
    return st.st_size ? ftruncate(fd, 0) : 0;
}

static int dl_file_ensure(dl_file *f, char *errstr, size_t errsize)
{
    if (f->fd >= 0) {
        return SL_OK;
    }
    if (sl__mkdirs(f->dir, 0777) != 0) {
        snprintf(errstr, errsize, "cannot create directory %s: %s", f->dir, strerror(errno));
        return SL_ERR_IO;
    }
    bool existed = access(f->path, F_OK) == 0;
    f->fd = open(f->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        snprintf(errstr, errsize, "cannot open %s: %s", f->path, strerror(errno));
        return SL_ERR_IO;
    }
    if (dl_file_trim(f->fd) != 0) {
        snprintf(errstr, errsize, "cannot read %s: %s", f->path, strerror(errno));
        close(f->fd);
        f->fd = -1;
        return SL_ERR_IO;
    }
    if (!existed) {
        sl__fsync_dir(f->dir); /* the new name is durable too */
    }
    return SL_OK;
}

static int dl_file_write(void *t, const sl_dl_batch *b, const sl_dl_entry *e, size_t n,
                         char *errstr, size_t errsize)
{
    dl_file *f = t;
    f->len = 0;
    for (size_t i = 0; i < n; i++) {
        if (sl__dl_json_line(&f->buf, &f->len, &f->cap, b, &e[i]) != SL_OK) {
            snprintf(errstr, errsize, "out of memory");
            return SL_ERR_NOMEM;
        }
    }
    int rc = dl_file_ensure(f, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    off_t before = lseek(f->fd, 0, SEEK_END);
    size_t done = 0;
    while (done < f->len) {
        ssize_t w = write(f->fd, f->buf + done, f->len - done);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break;
        }
        done += (size_t)w;
    }
    if (done < f->len || fsync(f->fd) != 0) {
        int e2 = done < f->len && errno == 0 ? EIO : errno;
        snprintf(errstr, errsize, "cannot write %s: %s", f->path, strerror(e2));
        if (before >= 0 && ftruncate(f->fd, before) != 0) {
            /* dl_file_trim cuts the partial line when the file is opened again */
        }
        close(f->fd);
        f->fd = -1;
        return SL_ERR_IO;
    }
    return SL_OK;
}

static const char *dl_file_describe(void *t)
{
    return ((dl_file *)t)->desc;
}

static void dl_file_close(void *t)
{
    dl_file *f = t;
    if (!f) {
        return;
    }
    if (f->fd >= 0) {
        close(f->fd);
    }
    free(f->buf);
    free(f->dir);
    free(f->path);
    free(f);
}

static const sl_dl_target dl_file_target = {
    .type = "file",
    .open = dl_file_open,
    .write = dl_file_write,
    .describe = dl_file_describe,
    .close = dl_file_close,
};

/* ==== Registry ==== */

#ifdef SLUICE_WITH_KAFKA
extern const sl_dl_target sl__kafka_dl_target; /* connectors/kafka/kafka_deadletter.c */
#endif

static const sl_dl_target *const dl_targets[] = {
    &dl_file_target,
#ifdef SLUICE_WITH_KAFKA
    &sl__kafka_dl_target,
#endif
    NULL,
};

/* ==== The reject queue ==== */

struct sl_rejects {
    sl_instance *ins;
    sl_dl_conf conf;
    bool none; /* errors.tolerance: none */
    const sl_dl_target *target;
    void *t; /* the target's handle; NULL without a target */
    pthread_mutex_t lock;

    /* The current batch (all its attempts) and attempt. */
    int64_t batch_time;
    uint64_t logged; /* records logged one by one in this batch */
    uint64_t n;      /* records rejected in this attempt */
    bool refused;    /* one was rejected under tolerance none */
    bool nomem;      /* one could not be queued */
    sl_dl_entry *q;  /* the attempt's dead letters */
    size_t nq, capq;
    size_t flushed;  /* q[0, flushed) are written */
    sl_arena arena;  /* their bytes */
    uintptr_t *seen; /* the records rejected in this attempt: open addressing, 0 empty */
    size_t seen_cap, seen_n;

    _Atomic uint64_t total; /* rejected in completed writes */
    _Atomic uint64_t dead;  /* dead letters written */
};

sl_rejects *sl__rejects_new(sl_instance *ins, char *errstr, size_t errsize)
{
    sl_rejects *rj = calloc(1, sizeof(*rj));
    if (!rj) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    rj->ins = ins;
    pthread_mutex_init(&rj->lock, NULL);
    sl__arena_init(&rj->arena, DL_ARENA_CHUNK);
    if (sl__options_apply(dl_options, sl_instance_options(ins), &rj->conf, errstr, errsize) !=
        SL_OK) {
        sl__rejects_destroy(rj);
        return NULL;
    }
    const sl_dl_conf *c = &rj->conf;
    rj->none = c->tolerance && strcmp(c->tolerance, "none") == 0;
    const char *stray = c->path ? "path" : c->brokers ? "brokers" : c->topic ? "topic" : NULL;
    if (!c->type && stray) {
        snprintf(errstr, errsize,
                 "errors.dead_letter.%s: set errors.dead_letter.type (file or kafka) too", stray);
        sl__rejects_destroy(rj);
        return NULL;
    }
    if (!c->type) {
        return rj;
    }
    if (rj->none) {
        snprintf(errstr, errsize,
                 "errors.dead_letter.type: dead letters need errors.tolerance all (none stops "
                 "the pipeline at the first rejected record)");
        sl__rejects_destroy(rj);
        return NULL;
    }
    for (size_t i = 0; dl_targets[i]; i++) {
        if (strcmp(dl_targets[i]->type, c->type) == 0) {
            rj->target = dl_targets[i];
        }
    }
    if (!rj->target) {
        snprintf(errstr, errsize,
                 "errors.dead_letter.type: %s: this build of sluice has no %s support (built "
                 "with -DSLUICE_WITH_%s=OFF)",
                 c->type, c->type, strcmp(c->type, "kafka") == 0 ? "KAFKA" : "?");
        sl__rejects_destroy(rj);
        return NULL;
    }
    rj->t = rj->target->open(ins, c, errstr, errsize);
    if (!rj->t) {
        sl__rejects_destroy(rj);
        return NULL;
    }
    return rj;
}

/* Empties the attempt's queue and set. @locks rj->lock held (or no other thread) */
static void attempt_reset(sl_rejects *rj)
{
    rj->n = 0;
    rj->refused = false;
    rj->nomem = false;
    rj->nq = 0;
    rj->flushed = 0;
    sl__arena_free(&rj->arena);
    sl__arena_init(&rj->arena, DL_ARENA_CHUNK);
    if (rj->seen_cap > 4096) {
        free(rj->seen);
        rj->seen = NULL;
        rj->seen_cap = 0;
    } else if (rj->seen) {
        memset(rj->seen, 0, rj->seen_cap * sizeof(*rj->seen));
    }
    rj->seen_n = 0;
}

void sl__rejects_destroy(sl_rejects *rj)
{
    if (!rj) {
        return;
    }
    if (rj->t) {
        rj->target->close(rj->t);
    }
    attempt_reset(rj);
    sl__arena_free(&rj->arena);
    free(rj->seen);
    free(rj->q);
    pthread_mutex_destroy(&rj->lock);
    free(rj);
}

uint64_t sl__rejects_total(const sl_rejects *rj)
{
    return rj ? atomic_load(&((sl_rejects *)rj)->total) : 0;
}

uint64_t sl__rejects_dead_letters(const sl_rejects *rj)
{
    return rj ? atomic_load(&((sl_rejects *)rj)->dead) : 0;
}

static size_t seen_slot(uintptr_t p, size_t cap)
{
    uint64_t h = (uint64_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

/* Adds r to the attempt's set: true when it was not there (or the set cannot grow).
 * @locks rj->lock held */
static bool seen_add(sl_rejects *rj, const sl_record *r)
{
    uintptr_t p = (uintptr_t)r;
    if ((rj->seen_n + 1) * 2 > rj->seen_cap) {
        size_t cap = rj->seen_cap ? rj->seen_cap * 2 : 64;
        uintptr_t *s = calloc(cap, sizeof(*s));
        if (!s) {
            return true;
        }
        for (size_t i = 0; i < rj->seen_cap; i++) {
            if (rj->seen[i]) {
                size_t j = seen_slot(rj->seen[i], cap);
                while (s[j]) {
                    j = (j + 1) & (cap - 1);
                }
                s[j] = rj->seen[i];
            }
        }
        free(rj->seen);
        rj->seen = s;
        rj->seen_cap = cap;
    }
    size_t j = seen_slot(p, rj->seen_cap);
    while (rj->seen[j]) {
        if (rj->seen[j] == p) {
            return false;
        }
        j = (j + 1) & (rj->seen_cap - 1);
    }
    rj->seen[j] = p;
    rj->seen_n++;
    return true;
}

static const char *arena_str(sl_arena *a, const char *s)
{
    return s ? sl__arena_dup(a, s, strlen(s) + 1) : NULL;
}

/* Copies r into the queue. @locks rj->lock held */
static int queue_add(sl_rejects *rj, const sl_record *r, const char *why)
{
    if (rj->nq == rj->capq) {
        size_t cap = rj->capq ? rj->capq * 2 : 64;
        sl_dl_entry *q = realloc(rj->q, cap * sizeof(*q));
        if (!q) {
            return SL_ERR_NOMEM;
        }
        rj->q = q;
        rj->capq = cap;
    }
    const sl_record_meta *m = r->meta;
    sl_dl_entry e = {
        .key = r->key ? sl__arena_dup(&rj->arena, r->key, r->key_len) : NULL,
        .value = r->value ? sl__arena_dup(&rj->arena, r->value, r->value_len) : NULL,
        .key_len = r->key_len,
        .value_len = r->value_len,
        .num_type = r->num_type,
        .ts = r->ts,
        .error = arena_str(&rj->arena, why),
        .source = m ? arena_str(&rj->arena, m->source) : NULL,
        .topic = m ? arena_str(&rj->arena, m->topic) : NULL,
        .partition = m ? m->partition : -1,
        .offset = m ? m->offset : -1,
    };
    if (r->num_type == SL_NUM_INT) {
        e.num.i = r->num.i;
    } else {
        e.num.d = r->num.d;
    }
    if ((r->key && !e.key) || (r->value && !e.value) || !e.error || (m && m->source && !e.source) ||
        (m && m->topic && !e.topic)) {
        return SL_ERR_NOMEM;
    }
    rj->q[rj->nq++] = e;
    return SL_OK;
}

/* "source S, topic T, partition P, offset O" of r, "-" for what is unknown. */
static void where_of(const sl_record *r, char *buf, size_t size)
{
    const sl_record_meta *m = r ? r->meta : NULL;
    snprintf(buf, size, "source %s, topic %s, partition %d, offset %" PRId64,
             m && m->source ? m->source : "-", m && m->topic ? m->topic : "-",
             m ? (int)m->partition : -1, m ? m->offset : (int64_t)-1);
}

int sl_batch_output_reject(const sl_batch_output *out, const sl_record *r, const char *why)
{
    sl_rejects *rj = out ? out->rejects : NULL;
    char where[400];
    where_of(r, where, sizeof(where));
    why = why ? why : "rejected by the sink";
    if (!rj) {
        /* A sink driven without the engine (unit tests): logged only. */
        sl_log(SL_LOG_WARN, "%s: batch %" PRId64 ": record skipped (%s): %s",
               out && out->sink ? out->sink : "sink", out ? out->batch_time : (int64_t)0, where,
               why);
        return SL_OK;
    }
    pthread_mutex_lock(&rj->lock);
    if (!seen_add(rj, r)) {
        int rc = rj->none ? SL_ERR_FATAL : SL_OK; /* the same record again */
        pthread_mutex_unlock(&rj->lock);
        return rc;
    }
    rj->n++;
    if (rj->none) {
        bool first = !rj->refused; /* the status names the first one */
        rj->refused = true;
        pthread_mutex_unlock(&rj->lock);
        if (!first) {
            return SL_ERR_FATAL;
        }
        sl_instance_error(rj->ins,
                          "batch %" PRId64 ": record rejected (%s): %s; errors.tolerance is "
                          "none: the pipeline stops, the batch runs again after a restart",
                          out->batch_time, where, why);
        return SL_ERR_FATAL;
    }
    if (rj->logged < (uint64_t)rj->conf.log_limit) {
        rj->logged++;
        sl_instance_log(rj->ins, SL_LOG_WARN, "batch %" PRId64 ": record skipped (%s): %s",
                        out->batch_time, where, why);
    }
    int rc = SL_OK;
    if (rj->t && queue_add(rj, r, why) != SL_OK) {
        rj->nomem = true;
        rc = SL_ERR_RETRY;
    }
    pthread_mutex_unlock(&rj->lock);
    if (rc != SL_OK) {
        sl_instance_error(rj->ins, "batch %" PRId64 ": out of memory queuing a dead letter",
                          out->batch_time);
    }
    return rc;
}

/* Writes the queued dead letters not written yet. @locks rj->lock held */
static int flush_locked(sl_rejects *rj, const sl_batch_output *out, char *err, size_t errsize)
{
    if (rj->nomem) {
        snprintf(err, errsize, "out of memory queuing them");
        return SL_ERR_NOMEM;
    }
    if (!rj->t || rj->flushed == rj->nq) {
        return SL_OK;
    }
    sl_dl_batch b = {.pipeline = out->pipeline, .sink = out->sink, .batch_time = out->batch_time};
    int rc = rj->target->write(rj->t, &b, rj->q + rj->flushed, rj->nq - rj->flushed, err, errsize);
    if (rc == SL_OK) {
        atomic_fetch_add(&rj->dead, rj->nq - rj->flushed);
        rj->flushed = rj->nq;
    }
    return rc;
}

int sl_batch_output_flush_rejects(const sl_batch_output *out)
{
    sl_rejects *rj = out ? out->rejects : NULL;
    if (!rj || !rj->t) {
        return SL_OK;
    }
    char err[256] = "";
    pthread_mutex_lock(&rj->lock);
    size_t n = rj->nq - rj->flushed;
    int rc = flush_locked(rj, out, err, sizeof(err));
    pthread_mutex_unlock(&rj->lock);
    if (rc != SL_OK) {
        sl_instance_error(rj->ins,
                          "batch %" PRId64 ": cannot write %zu dead letters to %s: %s; the batch "
                          "is not committed and is retried",
                          out->batch_time, n, rj->target->describe(rj->t), err);
        return SL_ERR_RETRY;
    }
    return SL_OK;
}

void sl__rejects_begin(sl_rejects *rj, sl_batch_output *out)
{
    out->rejects = rj;
    if (!rj) {
        return;
    }
    pthread_mutex_lock(&rj->lock);
    attempt_reset(rj);
    if (rj->batch_time != out->batch_time) {
        rj->batch_time = out->batch_time;
        rj->logged = 0;
    }
    pthread_mutex_unlock(&rj->lock);
}

int sl__rejects_end(sl_rejects *rj, const sl_batch_output *out, int rc, uint64_t *rejected)
{
    if (rejected) {
        *rejected = 0;
    }
    if (!rj) {
        return rc;
    }
    pthread_mutex_lock(&rj->lock);
    if (rc == SL_OK && rj->refused) {
        rc = SL_ERR_FATAL; /* the sink went on after a refusal: it stops all the same */
    } else if (rc == SL_OK && rj->nomem) {
        rc = SL_ERR_RETRY; /* a dead letter could not be queued (reported): try again */
    }
    if (rc != SL_OK) {
        attempt_reset(rj); /* the next attempt rejects its records again */
        pthread_mutex_unlock(&rj->lock);
        return rc;
    }
    /* The sink committed: what it rejected after its flush (or without one) is written
     * now, however long it takes; the batch is held meanwhile. */
    int64_t backoff = DL_BACKOFF_MIN_MS;
    for (int tries = 1;; tries++) {
        char err[256] = "";
        size_t left = rj->nq - rj->flushed;
        int frc = flush_locked(rj, out, err, sizeof(err));
        if (frc == SL_OK) {
            break;
        }
        pthread_mutex_unlock(&rj->lock);
        if (tries == 1 || tries % 10 == 0) {
            sl_instance_error(rj->ins,
                              "batch %" PRId64 " (committed): cannot write %zu dead letters to "
                              "%s: %s; retrying, the batch is held",
                              out->batch_time, left, rj->target->describe(rj->t), err);
        }
        for (int64_t slept = 0; slept < backoff; slept += 50) {
            if (sl__context_abandoning(sl_instance_context(rj->ins))) {
                sl_instance_log(rj->ins, SL_LOG_ERROR,
                                "batch %" PRId64 ": stopping without waiting: %zu dead letters "
                                "of the committed batch are not written",
                                out->batch_time, left);
                pthread_mutex_lock(&rj->lock);
                attempt_reset(rj);
                pthread_mutex_unlock(&rj->lock);
                return SL_ERR_RETRY;
            }
            sl__sleep_ms(50);
        }
        backoff = SL_MIN(backoff * 2, DL_BACKOFF_MAX_MS);
        pthread_mutex_lock(&rj->lock);
    }
    uint64_t n = rj->n;
    uint64_t logged = rj->logged;
    attempt_reset(rj);
    pthread_mutex_unlock(&rj->lock);
    if (rejected) {
        *rejected = n;
    }
    if (n > 0) {
        uint64_t total = atomic_fetch_add(&rj->total, n) + n;
        sl_instance_count_failed(rj->ins, n);
        char unlogged[64] = "";
        if (n > logged) {
            snprintf(unlogged, sizeof(unlogged), " (%" PRIu64 " not logged one by one)",
                     n - SL_MIN(n, logged));
        }
        char dest[PATH_MAX + 64];
        if (rj->t) {
            snprintf(dest, sizeof(dest), "sent to the dead letters in %s",
                     rj->target->describe(rj->t));
        } else {
            snprintf(dest, sizeof(dest), "no dead-letter target (errors.dead_letter)");
        }
        sl_instance_log(rj->ins, SL_LOG_WARN,
                        "batch %" PRId64 ": %" PRIu64
                        " records skipped (not written)%s, %s; %" PRIu64 " since start",
                        out->batch_time, n, unlogged, dest, total);
    }
    return SL_OK;
}

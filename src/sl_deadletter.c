/* sl_deadletter.c -- records sinks reject: the errors.* options, the registry of the
 * dead-letter targets that connectors provide, the reject queue of each sink instance and
 * the JSON line of a dead letter (see sl_deadletter.h for the protocol and its delivery
 * guarantee).
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

/* The engine's own errors.* options; the registered targets' follow them in the table that
 * sl__deadletter_options() builds. */
enum {
    DL_OPT_TOLERANCE,
    DL_OPT_LOG_LIMIT,
    DL_OPT_TYPE,
    DL_OPT_BASE
};

static const sl_option dl_base_options[DL_OPT_BASE] = {
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
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_dl_conf, log_limit),
     .doc = "rejected records logged one by one per batch, with source, topic, partition and "
            "offset; the others are summed up in one line"},
    {.name = "errors.dead_letter.type",
     .type = SL_OPT_ENUM,
     .choices = NULL, /* the registered targets' names */
     .offset = offsetof(sl_dl_conf, type),
     .doc = NULL},
};

#define DL_MAX_TARGETS 16
#define DL_MAX_OPTIONS 64

static struct {
    pthread_once_t once;
    const sl_dl_target *targets[DL_MAX_TARGETS + 1];
    sl_option base[DL_OPT_BASE + 1];       /* the engine's options alone, applied to sl_dl_conf */
    sl_option options[DL_MAX_OPTIONS + 1]; /* base, then every target's */
    char choices[256];
    char names[256]; /* "file or kafka", for messages */
    char doc[2048];
} dl_reg = {.once = PTHREAD_ONCE_INIT};

/* Appends s to buf (size bytes) at *off, cut when it does not fit. */
static void dl_cat(char *buf, size_t size, size_t *off, const char *s)
{
    int n = snprintf(buf + *off, size - *off, "%s", s);
    if (n > 0) {
        *off = SL_MIN(*off + (size_t)n, size - 1);
    }
}

/* Finds the targets of the connector registry and builds the option table. */
static void dl_registry_build(void)
{
    size_t nt = 0, no = 0, oc = 0, on = 0, od = 0;
    for (size_t i = 0; sl_connector_at(i) && nt < DL_MAX_TARGETS; i++) {
        const sl_dl_target *t = sl_connector_at(i)->dead_letter;
        bool dup = false;
        for (size_t j = 0; j < nt; j++) {
            dup = dup || dl_reg.targets[j] == t;
        }
        if (t && !dup) {
            dl_reg.targets[nt++] = t;
        }
    }
    dl_cat(dl_reg.doc, sizeof(dl_reg.doc), &od,
           "where rejected records go (default: nowhere, they are counted and logged)");
    for (size_t j = 0; j < nt; j++) {
        const sl_dl_target *t = dl_reg.targets[j];
        dl_cat(dl_reg.choices, sizeof(dl_reg.choices), &oc, j ? "|" : "");
        dl_cat(dl_reg.choices, sizeof(dl_reg.choices), &oc, t->name);
        dl_cat(dl_reg.names, sizeof(dl_reg.names), &on, j ? " or " : "");
        dl_cat(dl_reg.names, sizeof(dl_reg.names), &on, t->name);
        dl_cat(dl_reg.doc, sizeof(dl_reg.doc), &od, j ? "; " : ": ");
        dl_cat(dl_reg.doc, sizeof(dl_reg.doc), &od, t->name);
        dl_cat(dl_reg.doc, sizeof(dl_reg.doc), &od, ": ");
        dl_cat(dl_reg.doc, sizeof(dl_reg.doc), &od, t->doc);
    }
    dl_cat(dl_reg.doc, sizeof(dl_reg.doc), &od,
           ". Written before the sink commits the batch: at least once");
    for (size_t k = 0; k < DL_OPT_BASE; k++) {
        dl_reg.options[no++] = dl_base_options[k];
    }
    dl_reg.options[DL_OPT_TYPE].choices = dl_reg.choices;
    dl_reg.options[DL_OPT_TYPE].doc = dl_reg.doc;
    memcpy(dl_reg.base, dl_reg.options, sizeof(dl_reg.options[0]) * DL_OPT_BASE);
    for (size_t j = 0; j < nt; j++) {
        for (const sl_option *o = dl_reg.targets[j]->options; o && o->name; o++) {
            if (no < DL_MAX_OPTIONS) {
                dl_reg.options[no++] = *o;
            }
        }
    }
}

const sl_option *sl__deadletter_options(void)
{
    pthread_once(&dl_reg.once, dl_registry_build);
    return dl_reg.options;
}

const sl_dl_target *sl__deadletter_target(size_t i)
{
    pthread_once(&dl_reg.once, dl_registry_build);
    for (size_t j = 0; j <= i; j++) {
        if (!dl_reg.targets[j]) {
            return NULL;
        }
    }
    return dl_reg.targets[i];
}

/* ==== JSON lines ==== */

static void json_name(sl_buf *b, const char *s)
{
    if (!s) {
        sl__buf_puts(b, "null");
    } else {
        sl__json_text(sl__buf_put, b, s, strlen(s));
    }
}

/* ,"name":<bytes> as text, or base64 with "name_encoding":"base64"; null when absent. */
static void json_bytes(sl_buf *b, const char *name, const char *s, size_t n)
{
    sl__buf_append(b, ",", 1);
    sl__json_bytes(sl__buf_put, b, name, s, n);
}

int sl__dl_json_line(sl_buf *b, const sl_dl_batch *bt, const sl_dl_entry *e)
{
    size_t start = b->len;
    sl__buf_puts(b, "{\"pipeline\":");
    json_name(b, bt->pipeline);
    sl__buf_puts(b, ",\"sink\":");
    json_name(b, bt->sink);
    sl__buf_printf(b, ",\"batch_time\":%" PRId64, bt->batch_time);
    /* The error (a server's message may quote the record), the source and the topic come
     * from outside: their bytes are kept like the key's. */
    json_bytes(b, "error", e->error, e->error ? strlen(e->error) : 0);
    json_bytes(b, "source", e->source, e->source ? strlen(e->source) : 0);
    json_bytes(b, "topic", e->topic, e->topic ? strlen(e->topic) : 0);
    if (e->partition >= 0) {
        sl__buf_printf(b, ",\"partition\":%" PRId32, e->partition);
    } else {
        sl__buf_puts(b, ",\"partition\":null");
    }
    if (e->offset >= 0) {
        sl__buf_printf(b, ",\"offset\":%" PRId64, e->offset);
    } else {
        sl__buf_puts(b, ",\"offset\":null");
    }
    sl__buf_printf(b, ",\"ts\":%" PRId64, e->ts);
    json_bytes(b, "key", e->key, e->key_len);
    json_bytes(b, "value", e->value, e->value_len);
    if (e->num_type == SL_NUM_INT) {
        sl__buf_printf(b, ",\"num\":%" PRId64, e->num.i);
    } else if (e->num_type == SL_NUM_DOUBLE) {
        if (isfinite(e->num.d)) {
            sl__buf_printf(b, ",\"num\":%.17g", e->num.d);
        } else {
            sl__buf_puts(b, ",\"num\":null");
        }
    }
    sl__buf_puts(b, "}\n");
    if (b->failed) {
        b->failed = false;
        b->len = start;
        if (b->p) {
            b->p[start] = '\0';
        }
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

/* ==== The reject queue ==== */

struct sl_rejects {
    sl_instance *ins;
    sl_dl_conf conf;
    bool none; /* errors.tolerance: none */
    const sl_dl_target *target;
    void *tconf; /* the target's options (target->conf_size bytes) */
    void *t;     /* the target's handle; NULL without a target */
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
    const sl_options *opts = sl_instance_options(ins);
    sl__deadletter_options(); /* the registry */
    if (sl__options_apply(dl_reg.base, opts, &rj->conf, errstr, errsize) != SL_OK) {
        sl__rejects_destroy(rj);
        return NULL;
    }
    const sl_dl_conf *c = &rj->conf;
    rj->none = c->tolerance == SL_DL_TOLERANCE_NONE;
    if (c->type < 0) {
        /* A target's option without a type is a mistake, not nothing to do. */
        const sl_option *all = sl__deadletter_options();
        for (const sl_option *o = all + DL_OPT_BASE; o->name; o++) {
            if (sl_options_get(opts, o->name)) {
                snprintf(errstr, errsize, "%s: set errors.dead_letter.type (%s) too", o->name,
                         dl_reg.names);
                sl__rejects_destroy(rj);
                return NULL;
            }
        }
        return rj;
    }
    if (rj->none) {
        snprintf(errstr, errsize,
                 "errors.dead_letter.type: dead letters need errors.tolerance all (none stops "
                 "the pipeline at the first rejected record)");
        sl__rejects_destroy(rj);
        return NULL;
    }
    rj->target = sl__deadletter_target((size_t)c->type);
    rj->tconf = rj->target ? calloc(1, rj->target->conf_size ? rj->target->conf_size : 1) : NULL;
    if (!rj->tconf) {
        snprintf(errstr, errsize, "out of memory");
        sl__rejects_destroy(rj);
        return NULL;
    }
    if (sl__options_apply(rj->target->options, opts, rj->tconf, errstr, errsize) != SL_OK) {
        sl__rejects_destroy(rj);
        return NULL;
    }
    rj->t = rj->target->open(ins, rj->tconf, errstr, errsize);
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
    free(rj->tconf);
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

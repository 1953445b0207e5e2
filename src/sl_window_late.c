/* sl_window_late.c -- the late output of an event-time window (sl_stream_late): the records
 * later than the allowed lateness, as they came in, as a stream of their own.
 *
 * The window's update functions run on the worker threads; each late record is copied into
 * the window node's late buffer (under its lock) with the batch time. The late stream is a
 * transform of the window node, so the window of batch t is computed before it: it takes the
 * buffer's records of t, sorted by partition and offset (the workers' order is not
 * deterministic). A buffer nobody reads keeps one batch's records at most. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

typedef struct late_rec {
    sl_record r; /* key and value point into bytes, meta at meta */
    sl_record_meta meta;
    char *bytes;
} late_rec;

struct sl_late_out {
    pthread_mutex_t lock;
    int64_t time; /* the batch time of the records held */
    late_rec *recs;
    size_t n, cap;
};

static void late_clear(sl_late_out *lo)
{
    for (size_t i = 0; i < lo->n; i++) {
        free(lo->recs[i].bytes);
    }
    lo->n = 0;
}

void sl__late_free(sl_late_out *lo)
{
    if (!lo) {
        return;
    }
    late_clear(lo);
    free(lo->recs);
    pthread_mutex_destroy(&lo->lock);
    free(lo);
}

int sl__late_add(sl_late_out *lo, int64_t t, const sl_record *r)
{
    char *b = malloc((size_t)r->key_len + r->value_len + 1);
    if (!b) {
        return SL_ERR_NOMEM;
    }
    if (r->key_len) {
        memcpy(b, r->key, r->key_len);
    }
    if (r->value_len) {
        memcpy(b + r->key_len, r->value, r->value_len);
    }
    late_rec lr = {.r = *r, .bytes = b};
    lr.r.key = r->key ? b : NULL;
    lr.r.value = r->value ? b + r->key_len : NULL;
    if (r->meta) {
        lr.meta = *r->meta;
        lr.meta.headers = NULL; /* they live with the batch's data only */
        lr.meta.nheaders = 0;
    }
    pthread_mutex_lock(&lo->lock);
    if (lo->time != t) {
        late_clear(lo); /* an older batch's, not taken */
        lo->time = t;
    }
    int rc = SL_OK;
    if (lo->n == lo->cap) {
        size_t cap = lo->cap ? 2 * lo->cap : 16;
        late_rec *p = realloc(lo->recs, cap * sizeof(*p));
        if (!p) {
            rc = SL_ERR_NOMEM;
        } else {
            lo->recs = p;
            lo->cap = cap;
        }
    }
    if (rc == SL_OK) {
        lo->recs[lo->n++] = lr;
    } else {
        free(b);
    }
    pthread_mutex_unlock(&lo->lock);
    return rc;
}

static int late_cmp(const void *a, const void *b)
{
    const late_rec *x = a, *y = b;
    int32_t px = x->r.meta ? x->meta.partition : -1, py = y->r.meta ? y->meta.partition : -1;
    int64_t ox = x->r.meta ? x->meta.offset : -1, oy = y->r.meta ? y->meta.offset : -1;
    if (px != py) {
        return px < py ? -1 : 1;
    }
    if (ox != oy) {
        return ox < oy ? -1 : 1;
    }
    return x->r.ts < y->r.ts ? -1 : x->r.ts > y->r.ts;
}

/* The transform: the window's late records of batch t, copied into e's memory. */
static int late_take(const sl_dataset *in, int64_t t, sl_emitter *e, void *opaque)
{
    (void)in;
    sl_late_out *lo = opaque;
    int rc = SL_OK;
    pthread_mutex_lock(&lo->lock);
    if (lo->time == t) {
        qsort(lo->recs, lo->n, sizeof(*lo->recs), late_cmp);
        for (size_t i = 0; i < lo->n && rc == SL_OK; i++) {
            late_rec *lr = &lo->recs[i];
            sl_record r = lr->r;
            sl_record_meta *m = NULL;
            if (r.meta && !(m = sl_emitter_alloc(e, sizeof(*m)))) {
                rc = SL_ERR_NOMEM;
                break;
            }
            if (m) {
                *m = lr->meta;
                r.meta = m;
            }
            if ((r.key_len && !(r.key = sl_emitter_copy(e, r.key, r.key_len))) ||
                (r.value_len && !(r.value = sl_emitter_copy(e, r.value, r.value_len)))) {
                rc = SL_ERR_NOMEM;
                break;
            }
            rc = sl_emit(e, &r);
        }
    }
    late_clear(lo);
    pthread_mutex_unlock(&lo->lock);
    return rc;
}

sl_stream *sl_stream_late(sl_stream *s)
{
    sl_stream *w = s;
    while (w && !w->event_time && w->nparents == 1 &&
           (w->kind == SL_OP_MAP || w->kind == SL_OP_MAP_VALUES || w->kind == SL_OP_FILTER)) {
        w = w->parents[0];
    }
    if (!w || !w->event_time || !w->state_emits) {
        if (s) {
            sl_log(SL_LOG_ERROR, "late output of '%s': not a window on event time", s->name);
        }
        return NULL;
    }
    if (w->late_out) {
        sl_log(SL_LOG_ERROR, "late output of '%s': it has one already", s->name);
        return NULL;
    }
    sl_late_out *lo = calloc(1, sizeof(*lo));
    if (!lo) {
        return NULL;
    }
    pthread_mutex_init(&lo->lock, NULL);
    lo->time = INT64_MIN;
    sl_stream *n = sl_stream_transform(w, late_take, lo);
    if (!n) {
        sl__late_free(lo);
        return NULL;
    }
    w->late_out = lo;
    snprintf(n->name, sizeof(n->name), "late-%d", n->id);
    return n;
}

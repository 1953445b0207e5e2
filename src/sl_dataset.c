/* sl_dataset.c -- datasets: the partitioned records of one stream at one batch time. */
#include <stdlib.h>

#include "sl_engine.h"

sl_dataset *sl__dataset_new(size_t nparts, int64_t time)
{
    sl_dataset *ds = calloc(1, sizeof(*ds));
    if (!ds) {
        return NULL;
    }
    ds->parts = calloc(nparts ? nparts : 1, sizeof(*ds->parts));
    if (!ds->parts) {
        free(ds);
        return NULL;
    }
    for (size_t i = 0; i < nparts; i++) {
        sl__arena_init(&ds->parts[i].arena, 0);
    }
    atomic_init(&ds->refs, 1);
    ds->nparts = nparts;
    ds->time = time;
    return ds;
}

void sl__dataset_retain(sl_dataset *ds)
{
    atomic_fetch_add(&ds->refs, 1);
}

void sl__dataset_release(sl_dataset *ds)
{
    if (!ds || atomic_fetch_sub(&ds->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < ds->nparts; i++) {
        if (!ds->parts[i].borrowed) {
            free(ds->parts[i].recs);
        }
        sl__arena_free(&ds->parts[i].arena);
    }
    for (size_t i = 0; i < ds->ndeps; i++) {
        sl__dataset_release(ds->deps[i]);
    }
    if (ds->on_free) {
        ds->on_free(ds->on_free_arg, ds->on_free_bytes);
    }
    free(ds->deps);
    free(ds->parts);
    free(ds);
}

int sl__dataset_add_dep(sl_dataset *ds, sl_dataset *dep)
{
    if (dep == ds) {
        return SL_OK;
    }
    for (size_t i = 0; i < ds->ndeps; i++) {
        if (ds->deps[i] == dep) {
            return SL_OK;
        }
    }
    sl_dataset **d = realloc(ds->deps, (ds->ndeps + 1) * sizeof(*d));
    if (!d) {
        return SL_ERR_NOMEM;
    }
    ds->deps = d;
    sl__dataset_retain(dep);
    ds->deps[ds->ndeps++] = dep;
    return SL_OK;
}

size_t sl__dataset_bytes(const sl_dataset *ds)
{
    size_t b = 0;
    for (size_t i = 0; i < ds->nparts; i++) {
        b += ds->parts[i].arena.bytes;
        if (!ds->parts[i].borrowed) {
            b += ds->parts[i].n * sizeof(sl_record);
        }
    }
    return b;
}

/* ==== Public read access ==== */

size_t sl_dataset_partitions(const sl_dataset *ds)
{
    return ds->nparts;
}

const sl_record *sl_dataset_partition(const sl_dataset *ds, size_t p, size_t *n)
{
    if (p >= ds->nparts) {
        *n = 0;
        return NULL;
    }
    *n = ds->parts[p].n;
    return ds->parts[p].recs;
}

size_t sl_dataset_count(const sl_dataset *ds)
{
    size_t n = 0;
    for (size_t i = 0; i < ds->nparts; i++) {
        n += ds->parts[i].n;
    }
    return n;
}

/* ==== Records ==== */

bool sl_record_is_tombstone(const sl_record *r)
{
    return r->num_type == SL_NUM_NONE && r->value == NULL;
}

double sl_record_num(const sl_record *r)
{
    switch (r->num_type) {
    case SL_NUM_INT: return (double)r->num.i;
    case SL_NUM_DOUBLE: return r->num.d;
    default: return 0;
    }
}

const sl_header *sl_record_header(const sl_record *r, const char *name)
{
    const sl_record_meta *m = r ? r->meta : NULL;
    if (!m || !name) {
        return NULL;
    }
    for (uint32_t i = m->nheaders; i > 0; i--) {
        if (strcmp(m->headers[i - 1].name, name) == 0) {
            return &m->headers[i - 1];
        }
    }
    return NULL;
}

void sl_record_set_int(sl_record *r, int64_t v)
{
    r->num_type = SL_NUM_INT;
    r->num.i = v;
}

void sl_record_set_double(sl_record *r, double v)
{
    r->num_type = SL_NUM_DOUBLE;
    r->num.d = v;
}

/* ==== Emitters ==== */

int sl_emit(sl_emitter *e, const sl_record *r)
{
    return e->push(e, r);
}

void *sl_emitter_alloc(sl_emitter *e, size_t size)
{
    return sl__arena_alloc(e->arena, size);
}

const char *sl_emitter_copy(sl_emitter *e, const void *bytes, size_t size)
{
    return sl__arena_dup(e->arena, bytes, size);
}

int64_t sl_emitter_batch_time(const sl_emitter *e)
{
    return e->batch_time;
}

/* ==== Built-in reducers ==== */

static void drop_value_bytes(sl_record *acc)
{
    acc->value = NULL;
    acc->value_len = 0;
}

int sl_reduce_sum(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque)
{
    drop_value_bytes(acc);
    if (acc->num_type == SL_NUM_INT && r->num_type == SL_NUM_INT) {
        acc->num.i = (int64_t)((uint64_t)acc->num.i + (uint64_t)r->num.i);
    } else if (r->num_type != SL_NUM_NONE || acc->num_type != SL_NUM_NONE) {
        sl_record_set_double(acc, sl_record_num(acc) + sl_record_num(r));
    }
    if (r->ts > acc->ts) {
        acc->ts = r->ts;
    }
    return SL_OK;
}

/* a < b on typed values, exact for two integers. */
static int num_less(const sl_record *a, const sl_record *b)
{
    if (a->num_type == SL_NUM_INT && b->num_type == SL_NUM_INT) {
        return a->num.i < b->num.i;
    }
    return sl_record_num(a) < sl_record_num(b);
}

static int reduce_extreme(sl_record *acc, const sl_record *r, int want_min)
{
    drop_value_bytes(acc);
    if (r->ts > acc->ts) {
        acc->ts = r->ts;
    }
    if (r->num_type == SL_NUM_NONE) {
        return SL_OK;
    }
    if (acc->num_type == SL_NUM_NONE || (want_min ? num_less(r, acc) : num_less(acc, r))) {
        acc->num_type = r->num_type;
        acc->num = r->num;
    }
    return SL_OK;
}

int sl_reduce_min(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque)
{
    return reduce_extreme(acc, r, 1);
}

int sl_reduce_max(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque)
{
    return reduce_extreme(acc, r, 0);
}

/* ==== Record meta ==== */

static const char *copy_str(sl_arena *a, const char *s, const char **from, const char **to)
{
    if (!s) {
        return NULL;
    }
    if (s != *from) {
        const char *c = sl__arena_dup(a, s, strlen(s) + 1);
        if (!c) {
            return NULL;
        }
        *to = c;
        *from = s;
    }
    return *to;
}

/* Copies n headers (names and values) into a. NULL when out of memory. */
static const sl_header *copy_headers(sl_arena *a, const sl_header *h, uint32_t n)
{
    sl_header *c = sl__arena_alloc(a, n * sizeof(*c));
    if (!c) {
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t len = strlen(h[i].name) + 1;
        c[i].name = sl__arena_dup(a, h[i].name, len);
        c[i].value_len = h[i].value ? h[i].value_len : 0;
        if (!h[i].value) {
            c[i].value = NULL;
        } else if (h[i].value_len == 0) {
            c[i].value = ""; /* empty, not null */
        } else {
            c[i].value = sl__arena_dup(a, h[i].value, h[i].value_len);
        }
        if (!c[i].name || (h[i].value && !c[i].value)) {
            return NULL;
        }
    }
    return c;
}

const sl_record_meta *sl__meta_copy(sl_arena *a, const sl_record_meta *m, sl_meta_cache *mc)
{
    if (!m) {
        return NULL;
    }
    if (m == mc->from && mc->to->offset == m->offset && mc->to->partition == m->partition &&
        mc->to->nheaders == m->nheaders) {
        return mc->to;
    }
    sl_record_meta *c = sl__arena_alloc(a, sizeof(*c));
    if (!c) {
        return NULL;
    }
    *c = *m;
    c->source = copy_str(a, m->source, &mc->source_from, &mc->source_to);
    c->topic = copy_str(a, m->topic, &mc->topic_from, &mc->topic_to);
    if ((m->source && !c->source) || (m->topic && !c->topic)) {
        return NULL;
    }
    /* Headers are per message: a meta with headers is copied with them (a message without
     * any costs nothing more). */
    c->headers = NULL;
    c->nheaders = 0;
    if (m->nheaders > 0 && m->headers) {
        c->headers = copy_headers(a, m->headers, m->nheaders);
        if (!c->headers) {
            return NULL;
        }
        c->nheaders = m->nheaders;
    }
    mc->from = m;
    mc->to = c;
    return c;
}

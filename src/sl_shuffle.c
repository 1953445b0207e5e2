/* sl_shuffle.c -- operators that move records between partitions by key: reduce_by_key
 * (with a combine on the map side, like Spark's combineByKey), repartition and join.
 *
 * Each runs two parallel stages on the worker pool. The map stage runs the parent's fused
 * chain over each input partition into per-task state; the reduce stage builds output
 * partition r from what every map task put in bucket r. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sl_engine.h"

static size_t shuffle_partitions(const sl_stream *s)
{
    if (s->flags & SL_RBK_GLOBAL) {
        return 1;
    }
    return s->partitions > 0 ? (size_t)s->partitions : (size_t)s->ctx->default_partitions;
}

/* The built-in reducers produce a number: their results need no bytes but the key's. */
static bool reducer_is_numeric(sl_reduce_fn fn)
{
    return fn == sl_reduce_sum || fn == sl_reduce_min || fn == sl_reduce_max;
}

/* Moves the arenas of the map tasks into the output, whose records may point into them. */
static void keep_arenas(sl_dataset *out, sl_arena *arenas, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (out && out->nparts) {
            sl__arena_steal(&out->parts[0].arena, &arenas[i]);
        }
        sl__arena_free(&arenas[i]);
    }
}

/* ==== reduce_by_key ==== */

typedef struct rbk_stage {
    sl_stream *s;
    int64_t t;
    size_t nmap, nred;
    bool numeric;
    sl_keytab *tabs;  /* one per map task */
    uint32_t **owner; /* per map task and table entry: its reduce partition (nred > 1) */
    sl_arena *arenas; /* one per map task */
    sl_dataset *out;
} rbk_stage;

/* Folds r into acc with the stream's reducer; the key stays the key. */
static int fold(sl_stream *s, sl_record *acc, const sl_record *r, sl_emitter *e)
{
    const char *key = acc->key;
    uint32_t key_len = acc->key_len;
    int rc = s->fn.reduce(acc, r, e, s->opaque);
    acc->key = key;
    acc->key_len = key_len;
    return rc;
}

/* A meta holding only the partition of m (the task of keyed state), in a; NULL for none. */
static const sl_record_meta *task_meta(sl_arena *a, const sl_record_meta *m)
{
    if (!m || m->partition < 0) {
        return NULL;
    }
    sl_record_meta *t = sl__arena_alloc(a, sizeof(*t));
    if (t) {
        *t = (sl_record_meta){.partition = m->partition, .offset = -1};
    }
    return t;
}

static int combine_push(sl_emitter *e, const sl_record *r)
{
    sl_stream *s = e->node;
    sl_keytab *tab = e->state;
    bool global = s->flags & SL_RBK_GLOBAL;
    const char *key = global ? "" : r->key;
    uint32_t key_len = global ? 0 : r->key_len;
    uint64_t h = global ? 0 : sl__hash_seeded(key, key_len);
    int added;
    sl_record *acc = sl__keytab_upsert(tab, key, key_len, h, &added);
    if (!acc) {
        return SL_ERR_NOMEM;
    }
    if (added) {
        *acc = *r;
        acc->key = key;
        acc->key_len = key_len;
        acc->meta = (s->flags & SL_RBK_TASK) ? task_meta(e->arena, r->meta) : NULL;
        if (reducer_is_numeric(s->fn.reduce)) {
            acc->value = NULL;
            acc->value_len = 0;
        }
        return SL_OK;
    }
    int rc = fold(s, acc, r, e);
    if (rc < 0) {
        sl__record_failed(s, r, rc);
    }
    return SL_OK;
}

static int rbk_map_task(void *arg, size_t i)
{
    rbk_stage *st = arg;
    sl_emitter e = {
        .push = combine_push,
        .arena = &st->arenas[i],
        .batch_time = st->t,
        .node = st->s,
        .state = &st->tabs[i],
    };
    int rc = sl__chain_run(st->s->parents[0], st->t, i, &e);
    const sl_keytab *tab = &st->tabs[i];
    if (rc == SL_OK && st->nred > 1 && tab->n) {
        /* The table's hashes are seeded (this process only); the partition of a key is the
         * stable hash's, the same after a restart. Once per key, not per record. */
        uint32_t *owner = malloc(tab->n * sizeof(*owner));
        if (!owner) {
            return SL_ERR_NOMEM;
        }
        for (size_t j = 0; j < tab->n; j++) {
            const sl_record *r = &tab->recs[j];
            owner[j] = (uint32_t)sl__hash_bucket(sl__hash(r->key, r->key_len), st->nred);
        }
        st->owner[i] = owner;
    }
    return rc;
}

static int rbk_reduce_task(void *arg, size_t r)
{
    rbk_stage *st = arg;
    sl_stream *s = st->s;
    sl_part *part = &st->out->parts[r];
    sl_keytab t;
    sl__keytab_init(&t);
    sl_emitter e = {.arena = &part->arena, .batch_time = st->t, .node = s};
    int rc = SL_OK;
    for (size_t i = 0; i < st->nmap && rc == SL_OK; i++) {
        const sl_keytab *m = &st->tabs[i];
        const uint32_t *owner = st->owner[i];
        for (size_t j = 0; j < m->n; j++) {
            if (owner && owner[j] != r) {
                continue;
            }
            const sl_record *rec = &m->recs[j];
            int added;
            sl_record *acc = sl__keytab_upsert(&t, rec->key, rec->key_len, m->hashes[j], &added);
            if (!acc) {
                rc = SL_ERR_NOMEM;
                break;
            }
            if (!added) {
                int frc = fold(s, acc, rec, &e);
                if (frc < 0) {
                    sl__record_failed(s, rec, frc);
                }
                continue;
            }
            /* A new key in this output partition: the output owns its bytes. */
            *acc = *rec;
            acc->key = sl__arena_dup(&part->arena, rec->key, rec->key_len);
            acc->meta = task_meta(&part->arena, rec->meta);
            if (rec->value_len) {
                acc->value = sl__arena_dup(&part->arena, rec->value, rec->value_len);
            }
            if (!acc->key || (rec->value_len && !acc->value)) {
                rc = SL_ERR_NOMEM;
                break;
            }
        }
    }
    if (rc == SL_OK && t.n == 0 && (s->flags & SL_RBK_ZERO_IF_EMPTY)) {
        int added;
        sl_record *zero = sl__keytab_upsert(&t, "", 0, 0, &added);
        if (!zero) {
            rc = SL_ERR_NOMEM;
        } else {
            sl_record_set_int(zero, 0);
            zero->ts = st->t;
        }
    }
    part->recs = t.recs;
    part->n = t.n;
    t.recs = NULL;
    sl__keytab_free(&t);
    return rc;
}

int sl__shuffle_reduce_by_key(sl_stream *s, int64_t t, sl_dataset **out)
{
    sl_stream *parent = s->parents[0];
    int rc = sl__chain_prepare(parent, t, NULL);
    if (rc != SL_OK) {
        return rc;
    }
    rbk_stage st = {.s = s, .t = t, .numeric = reducer_is_numeric(s->fn.reduce)};
    st.nmap = sl__chain_partitions(parent, t);
    st.nred = shuffle_partitions(s);
    st.tabs = calloc(st.nmap ? st.nmap : 1, sizeof(*st.tabs));
    st.owner = calloc(st.nmap ? st.nmap : 1, sizeof(*st.owner));
    st.arenas = calloc(st.nmap ? st.nmap : 1, sizeof(*st.arenas));
    st.out = sl__dataset_new(st.nred, t);
    if (!st.tabs || !st.owner || !st.arenas || !st.out) {
        rc = SL_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < st.nmap; i++) {
        sl__keytab_init(&st.tabs[i]);
        sl__arena_init(&st.arenas[i], 0);
    }
    rc = sl__pool_run(s->ctx->pool, st.nmap, rbk_map_task, &st);
    if (rc == SL_OK) {
        rc = sl__pool_run(s->ctx->pool, st.nred, rbk_reduce_task, &st);
    }
    /* A custom reducer may leave values pointing into its inputs or the map arenas. */
    if (rc == SL_OK && !st.numeric) {
        rc = sl__chain_prepare(parent, t, st.out);
        keep_arenas(st.out, st.arenas, st.nmap);
    }
done:
    for (size_t i = 0; st.tabs && i < st.nmap; i++) {
        sl__keytab_free(&st.tabs[i]);
    }
    for (size_t i = 0; st.owner && i < st.nmap; i++) {
        free(st.owner[i]);
    }
    free(st.owner);
    if (st.arenas) {
        keep_arenas(NULL, st.arenas, st.nmap);
    }
    free(st.tabs);
    free(st.arenas);
    if (rc != SL_OK) {
        sl__dataset_release(st.out);
        return rc;
    }
    *out = st.out;
    return SL_OK;
}

/* ==== Buckets: records routed to reduce partitions, shared by repartition and join ==== */

typedef struct bucket_stage {
    sl_stream *s;
    sl_stream *side; /* the parent being mapped */
    int64_t t;
    size_t nmap, nred;
    sl_recvec *buckets; /* nmap * nred, task-major */
    sl_arena *arenas;   /* one per map task */
    bool by_key;        /* hash of the key, else round-robin */
} bucket_stage;

typedef struct bucket_task {
    bucket_stage *st;
    size_t task;
    size_t rr; /* round-robin position */
    int err;
} bucket_task;

static int bucket_push(sl_emitter *e, const sl_record *r)
{
    bucket_task *bt = e->state;
    bucket_stage *st = bt->st;
    /* The stable hash: a key's partition is the same after a restart. */
    size_t b = st->by_key ? sl__hash_bucket(sl__hash(r->key, r->key_len), st->nred)
                          : (bt->rr++ % st->nred);
    return sl__recvec_push(&st->buckets[bt->task * st->nred + b], r);
}

static int bucket_map_task(void *arg, size_t i)
{
    bucket_stage *st = arg;
    bucket_task bt = {.st = st, .task = i, .rr = i};
    sl_emitter e = {
        .push = bucket_push,
        .arena = &st->arenas[i],
        .batch_time = st->t,
        .node = st->s,
        .state = &bt,
    };
    return sl__chain_run(st->side, st->t, i, &e);
}

/* Runs the map stage of side into buckets; the caller frees them with buckets_free. */
static int buckets_fill(bucket_stage *st, sl_stream *s, sl_stream *side, int64_t t, size_t nred,
                        bool by_key, sl_dataset *deps_into)
{
    *st = (bucket_stage){.s = s, .side = side, .t = t, .nred = nred, .by_key = by_key};
    int rc = sl__chain_prepare(side, t, deps_into);
    if (rc != SL_OK) {
        return rc;
    }
    st->nmap = sl__chain_partitions(side, t);
    st->buckets = calloc(st->nmap * nred + 1, sizeof(*st->buckets));
    st->arenas = calloc(st->nmap + 1, sizeof(*st->arenas));
    if (!st->buckets || !st->arenas) {
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < st->nmap; i++) {
        sl__arena_init(&st->arenas[i], 0);
    }
    return sl__pool_run(s->ctx->pool, st->nmap, bucket_map_task, st);
}

static void buckets_free(bucket_stage *st, sl_dataset *keep_in)
{
    for (size_t i = 0; st->buckets && i < st->nmap * st->nred; i++) {
        free(st->buckets[i].recs);
    }
    if (st->arenas) {
        keep_arenas(keep_in, st->arenas, st->nmap);
    }
    free(st->buckets);
    free(st->arenas);
}

/* ==== repartition ==== */

typedef struct repart_stage {
    bucket_stage b;
    sl_dataset *out;
} repart_stage;

static int repart_reduce_task(void *arg, size_t r)
{
    repart_stage *st = arg;
    size_t n = 0;
    for (size_t i = 0; i < st->b.nmap; i++) {
        n += st->b.buckets[i * st->b.nred + r].n;
    }
    sl_part *part = &st->out->parts[r];
    part->recs = malloc((n ? n : 1) * sizeof(sl_record));
    if (!part->recs) {
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < st->b.nmap; i++) {
        const sl_recvec *v = &st->b.buckets[i * st->b.nred + r];
        if (v->n) {
            memcpy(part->recs + part->n, v->recs, v->n * sizeof(sl_record));
        }
        part->n += v->n;
    }
    return SL_OK;
}

int sl__shuffle_repartition(sl_stream *s, int64_t t, sl_dataset **out)
{
    repart_stage st = {0};
    size_t nred = shuffle_partitions(s);
    st.out = sl__dataset_new(nred, t);
    if (!st.out) {
        return SL_ERR_NOMEM;
    }
    int rc = buckets_fill(&st.b, s, s->parents[0], t, nred, false, st.out);
    if (rc == SL_OK) {
        rc = sl__pool_run(s->ctx->pool, nred, repart_reduce_task, &st);
    }
    buckets_free(&st.b, rc == SL_OK ? st.out : NULL);
    if (rc != SL_OK) {
        sl__dataset_release(st.out);
        return rc;
    }
    *out = st.out;
    return SL_OK;
}

/* ==== join ==== */

typedef struct join_stage {
    sl_stream *s;
    int64_t t;
    bucket_stage left, right;
    sl_dataset *out;
} join_stage;

/* Text of a record's value for the default join output: the typed value if any. */
static int value_text(const sl_record *r, char *buf, size_t size, const char **p, size_t *n)
{
    if (!r) {
        *p = "null";
        *n = 4;
        return SL_OK;
    }
    if (r->num_type == SL_NUM_INT) {
        *n = (size_t)snprintf(buf, size, "%" PRId64, r->num.i);
        *p = buf;
    } else if (r->num_type == SL_NUM_DOUBLE) {
        *n = (size_t)snprintf(buf, size, "%.17g", r->num.d);
        *p = buf;
    } else {
        *p = r->value ? r->value : "";
        *n = r->value_len;
    }
    return SL_OK;
}

int sl__join_text(const sl_record *l, const sl_record *r, sl_record *out, sl_emitter *e)
{
    char lb[32], rb[32];
    const char *lp, *rp;
    size_t ln, rn;
    value_text(l, lb, sizeof(lb), &lp, &ln);
    value_text(r, rb, sizeof(rb), &rp, &rn);
    size_t n = ln + rn + 3;
    char *v = sl__arena_alloc(e->arena, n);
    if (!v) {
        return SL_ERR_NOMEM;
    }
    v[0] = '(';
    memcpy(v + 1, lp, ln);
    v[1 + ln] = ',';
    memcpy(v + 2 + ln, rp, rn);
    v[n - 1] = ')';
    out->value = v;
    out->value_len = (uint32_t)n;
    return SL_OK;
}

static int join_emit(join_stage *st, sl_recvec *outv, sl_emitter *e, const sl_record *l,
                     const sl_record *r)
{
    sl_stream *s = st->s;
    sl_record out = *l;
    int rc = s->fn.join ? s->fn.join(l, r, &out, e, s->opaque) : sl__join_text(l, r, &out, e);
    if (rc == SL_ERR_NOMEM) {
        return rc;
    }
    if (rc < 0) {
        sl__record_failed(s, l, rc);
        return SL_OK;
    }
    out.key = l->key;
    out.key_len = l->key_len;
    return sl__recvec_push(outv, &out);
}

static int join_reduce_task(void *arg, size_t r)
{
    join_stage *st = arg;
    size_t nred = st->left.nred;
    sl_part *part = &st->out->parts[r];
    sl_emitter e = {.arena = &part->arena, .batch_time = st->t, .node = st->s};
    sl_recvec outv = {0};
    /* Index the right side: chained lists through next[], heads in a power-of-two table. */
    size_t nright = 0;
    for (size_t i = 0; i < st->right.nmap; i++) {
        nright += st->right.buckets[i * nred + r].n;
    }
    size_t nslots = 16;
    while (nslots < nright * 2) {
        nslots *= 2;
    }
    const sl_record **rrecs = malloc((nright + 1) * sizeof(*rrecs));
    uint64_t *rhash = malloc((nright + 1) * sizeof(*rhash));
    uint32_t *next = malloc((nright + 1) * sizeof(*next));
    uint32_t *heads = calloc(nslots, sizeof(*heads));
    int rc = (rrecs && rhash && next && heads) ? SL_OK : SL_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < st->right.nmap && rc == SL_OK; i++) {
        const sl_recvec *v = &st->right.buckets[i * nred + r];
        for (size_t j = 0; j < v->n; j++, k++) {
            rrecs[k] = &v->recs[j];
            rhash[k] = sl__hash_seeded(v->recs[j].key, v->recs[j].key_len);
            size_t slot = rhash[k] & (nslots - 1);
            next[k] = heads[slot];
            heads[slot] = (uint32_t)(k + 1);
        }
    }
    for (size_t i = 0; i < st->left.nmap && rc == SL_OK; i++) {
        const sl_recvec *v = &st->left.buckets[i * nred + r];
        for (size_t j = 0; j < v->n && rc == SL_OK; j++) {
            const sl_record *l = &v->recs[j];
            uint64_t h = sl__hash_seeded(l->key, l->key_len);
            bool matched = false;
            for (uint32_t x = heads[h & (nslots - 1)]; x && rc == SL_OK; x = next[x - 1]) {
                const sl_record *rr = rrecs[x - 1];
                if (rhash[x - 1] == h && rr->key_len == l->key_len &&
                    memcmp(rr->key, l->key, l->key_len) == 0) {
                    matched = true;
                    rc = join_emit(st, &outv, &e, l, rr);
                }
            }
            if (!matched && (st->s->flags & SL_JOIN_LEFT) && rc == SL_OK) {
                rc = join_emit(st, &outv, &e, l, NULL);
            }
        }
    }
    free(rrecs);
    free(rhash);
    free(next);
    free(heads);
    part->recs = outv.recs;
    part->n = outv.n;
    return rc;
}

int sl__shuffle_join(sl_stream *s, int64_t t, sl_dataset **out)
{
    join_stage st = {.s = s, .t = t};
    size_t nred = shuffle_partitions(s);
    st.out = sl__dataset_new(nred, t);
    if (!st.out) {
        return SL_ERR_NOMEM;
    }
    int rc = buckets_fill(&st.left, s, s->parents[0], t, nred, true, st.out);
    if (rc == SL_OK) {
        rc = buckets_fill(&st.right, s, s->parents[1], t, nred, true, st.out);
    }
    if (rc == SL_OK) {
        rc = sl__pool_run(s->ctx->pool, nred, join_reduce_task, &st);
    }
    buckets_free(&st.left, rc == SL_OK ? st.out : NULL);
    buckets_free(&st.right, rc == SL_OK ? st.out : NULL);
    if (rc != SL_OK) {
        sl__dataset_release(st.out);
        return rc;
    }
    *out = st.out;
    return SL_OK;
}

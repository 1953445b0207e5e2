/* sl_window.c -- windowed operators: count_by_window, reduce_by_window,
 * reduce_by_key_and_window with and without an inverse function, and
 * count_by_value_and_window.
 *
 * Without an inverse, a windowed reduction is built from the plain operators as Spark
 * builds it: each batch is reduced once (by key or as a whole), a window gathers the
 * reduced batches, and they are reduced again. The reduced batches are what the window
 * remembers, not the raw input. reduce_by_key_and_window then adds a tombstone (no typed
 * value, no bytes) for each key of its previous result that is not in the new one: a key
 * whose records all left the window is said once to be gone, so that a sink keeping a value
 * per key (an upsert, HSET) clears it instead of holding the last one forever. The node
 * remembers the keys of its last result per partition, nothing more.
 *
 * With an inverse (Spark's ReducedWindowedDStream), the node keeps its previous result in a
 * table per partition and updates it with the reduced batches that leave and enter the
 * window: new = f(g(prev, reduce(leaving)), reduce(entering)) per key, then the filter over
 * the keys that changed. The reduced batches are a reduce_by_key with the node's number of
 * partitions, so partition r of every batch holds exactly the keys of table r: the
 * partitions are merged in parallel on the worker pool without a shuffle. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "sl_engine.h"

/* ==== Built-in functions ==== */

int sl_reduce_sum_inverse(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque)
{
    acc->value = NULL;
    acc->value_len = 0;
    if (acc->num_type == SL_NUM_INT && r->num_type == SL_NUM_INT) {
        acc->num.i = (int64_t)((uint64_t)acc->num.i - (uint64_t)r->num.i);
    } else if (r->num_type != SL_NUM_NONE || acc->num_type != SL_NUM_NONE) {
        sl_record_set_double(acc, sl_record_num(acc) - sl_record_num(r));
    }
    return SL_OK;
}

int sl_filter_nonzero(const sl_record *r, void *opaque)
{
    switch (r->num_type) {
    case SL_NUM_INT: return r->num.i != 0;
    case SL_NUM_DOUBLE: return r->num.d != 0;
    default: return 1;
    }
}

/* ==== Building ==== */

/* A reduce_by_key node (sl_stream_reduce_by_key with flags). Its datasets feed a window:
 * they are computed at every slide for the batches entering the window, so its parents
 * need their datasets for one slide only, not for the window's length. */
static sl_stream *reduced_batches(sl_stream *s, sl_reduce_fn fn, void *opaque, int partitions,
                                  unsigned flags, int64_t slide)
{
    sl_stream *n = sl__stream_reduce_node(s, fn, opaque, partitions, flags);
    if (n) {
        n->remember_parents = slide;
    }
    return n;
}

static void name_node(sl_stream *n, const char *what)
{
    if (n) {
        snprintf(n->name, sizeof(n->name), "%s-%d", what, n->id);
    }
}

sl_stream *sl_stream_reduce_by_window(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                      int64_t length_ms, int64_t slide_ms)
{
    if (!s || !fn || !sl__window_args(s, length_ms, &slide_ms, "reduce_by_window")) {
        return NULL;
    }
    sl_stream *r = reduced_batches(s, fn, opaque, 1, SL_RBK_GLOBAL, slide_ms);
    sl_stream *w = r ? sl_stream_window(r, length_ms, slide_ms) : NULL;
    sl_stream *n = w ? sl__stream_reduce_node(w, fn, opaque, 1, SL_RBK_GLOBAL) : NULL;
    if (n) {
        name_node(n, "reduce_by_window");
    }
    return n;
}

sl_stream *sl_stream_count_by_window(sl_stream *s, int64_t length_ms, int64_t slide_ms)
{
    if (!s || !sl__window_args(s, length_ms, &slide_ms, "count_by_window")) {
        return NULL;
    }
    /* count gives one record per batch (0 too); the window's counts are summed. */
    sl_stream *c = sl_stream_count(s);
    if (!c) {
        return NULL;
    }
    c->remember_parents = slide_ms;
    sl_stream *w = sl_stream_window(c, length_ms, slide_ms);
    sl_stream *n =
        w ? sl__stream_reduce_node(w, sl_reduce_sum, NULL, 1, SL_RBK_GLOBAL | SL_RBK_ZERO_IF_EMPTY)
          : NULL;
    if (n) {
        name_node(n, "count_by_window");
    }
    return n;
}

bool sl__rbkw_args(const sl_stream *s, sl_reduce_fn fn, int partitions, int64_t length_ms,
                   int64_t *slide_ms)
{
    if (!s) {
        return false;
    }
    if (!fn || partitions < 0) {
        sl_log(SL_LOG_ERROR, "reduce_by_key_and_window of '%s': %s", s->name,
               !fn ? "no reduce function" : "partitions must not be negative");
        return false;
    }
    return sl__window_args(s, length_ms, slide_ms, "reduce_by_key_and_window");
}

sl_stream *sl_stream_reduce_by_key_and_window(sl_stream *s, sl_reduce_fn fn, sl_reduce_fn inv_fn,
                                              sl_filter_fn filter_fn, void *opaque,
                                              int64_t length_ms, int64_t slide_ms, int partitions)
{
    if (!sl__rbkw_args(s, fn, partitions, length_ms, &slide_ms)) {
        return NULL;
    }
    if (!inv_fn) {
        sl_stream *r = reduced_batches(s, fn, opaque, partitions, 0, slide_ms);
        sl_stream *w = r ? sl_stream_window(r, length_ms, slide_ms) : NULL;
        sl_stream *n = w ? reduced_batches(w, fn, opaque, partitions, 0, 0) : NULL;
        if (n) {
            n->remember_parents = 0;
            name_node(n, "reduce_by_key_and_window");
        }
        /* After the filter: a key it drops has left the result too. */
        sl_stream *f = filter_fn ? sl_stream_filter(n, filter_fn, opaque) : n;
        sl_stream *k = f ? sl__stream_new(s->ctx, SL_OP_KEYS_LEFT, f, NULL) : NULL;
        if (k) {
            k->partitions = partitions;
            name_node(k, "reduce_by_key_and_window");
        }
        return k;
    }
    if (!sl__state_check_dir(s->ctx, "reduce_by_key_and_window with an inverse function")) {
        return NULL;
    }
    sl_stream *r = reduced_batches(s, fn, opaque, partitions, 0, slide_ms);
    sl_stream *n = r ? sl__stream_new(s->ctx, SL_OP_WINDOW_INV, r, NULL) : NULL;
    if (n) {
        n->fn.reduce = fn;
        n->inv = inv_fn;
        n->keep = filter_fn;
        n->opaque = opaque;
        n->partitions = partitions;
        n->window_len = length_ms;
        n->slide = slide_ms;
    }
    return n;
}

sl_stream *sl_stream_count_by_value_and_window(sl_stream *s, int64_t length_ms, int64_t slide_ms,
                                               int partitions)
{
    if (!s || !sl__state_check_dir(s->ctx, "count_by_value_and_window")) {
        return NULL;
    }
    sl_stream *n = sl_stream_reduce_by_key_and_window(
        sl_stream_map(s, sl__value_to_key_one, NULL), sl_reduce_sum, sl_reduce_sum_inverse,
        sl_filter_nonzero, NULL, length_ms, slide_ms, partitions);
    name_node(n, "count_by_value_and_window");
    return n;
}

/* ==== Computing a window with an inverse ==== */

typedef struct win_stage {
    sl_stream *s;
    int64_t t;
    bool scratch; /* no previous result: the whole window is reduced */
    uint32_t epoch;
    sl_dataset **leave, **enter; /* reduced batches leaving and entering the window */
    size_t nleave, nenter;
    sl_dataset *out;
    _Atomic uint64_t inconsistent;
} win_stage;

static int no_emit(sl_emitter *e, const sl_record *r)
{
    return SL_ERR_STATE; /* reduce functions do not emit */
}

/* Folds one reduced value of a key into the table: with the inverse for a leaving value,
 * with the reduce function for an entering one. */
static int apply_one(win_stage *st, sl_ktable *tab, sl_emitter *e, const sl_record *rec,
                     bool leaving)
{
    sl_stream *s = st->s;
    uint64_t h = sl__hash_seeded(rec->key, rec->key_len);
    sl_kentry *en = sl__ktable_find(tab, rec->key, rec->key_len, h);
    if (!en && leaving) {
        /* Spark: a key missing from the previous result keeps the entering values only. A
         * leaving value that the filter drops itself (a 0) was dropped with its key. */
        if (!s->keep || s->keep(rec, s->opaque) != 0) {
            atomic_fetch_add(&st->inconsistent, 1);
        }
        return SL_OK;
    }
    if (!en) {
        if (!(en = sl__ktable_add(tab, rec->key, rec->key_len, h))) {
            return SL_ERR_NOMEM;
        }
        en->num_type = rec->num_type;
        memcpy(&en->num, &rec->num, sizeof(en->num));
        en->ts = rec->ts;
        en->mark = st->epoch;
        return sl__ktable_set_bytes(tab, en, rec->value, rec->value_len);
    }
    sl_record acc;
    sl__kentry_record(en, &acc);
    int rc = leaving ? s->inv(&acc, rec, e, s->opaque) : s->fn.reduce(&acc, rec, e, s->opaque);
    if (rc < 0) {
        if (rc == SL_ERR_NOMEM) {
            return rc;
        }
        sl__record_failed(s, rec, rc);
        return SL_OK;
    }
    en->num_type = acc.num_type;
    memcpy(&en->num, &acc.num, sizeof(en->num));
    en->ts = acc.ts;
    en->mark = st->epoch;
    return sl__ktable_set_bytes(tab, en, acc.value, acc.value_len);
}

/* Applies the reduction of partition r of n reduced batches to the table. One batch is
 * applied as it is (its keys are distinct); several are first reduced together. */
static int apply_batches(win_stage *st, sl_ktable *tab, size_t r, sl_dataset **dss, size_t n,
                         bool leaving, sl_emitter *e)
{
    sl_stream *s = st->s;
    if (n == 1) {
        const sl_dataset *ds = dss[0];
        for (size_t i = 0; r < ds->nparts && i < ds->parts[r].n; i++) {
            int rc = apply_one(st, tab, e, &ds->parts[r].recs[i], leaving);
            if (rc != SL_OK) {
                return rc;
            }
        }
        return SL_OK;
    }
    sl_keytab k;
    sl__keytab_init(&k);
    int rc = SL_OK;
    for (size_t d = 0; d < n && rc == SL_OK; d++) {
        const sl_dataset *ds = dss[d];
        for (size_t i = 0; r < ds->nparts && i < ds->parts[r].n && rc == SL_OK; i++) {
            const sl_record *rec = &ds->parts[r].recs[i];
            int added;
            sl_record *acc = sl__keytab_upsert(&k, rec->key, rec->key_len,
                                               sl__hash_seeded(rec->key, rec->key_len), &added);
            if (!acc) {
                rc = SL_ERR_NOMEM;
            } else if (added) {
                *acc = *rec;
            } else {
                int frc = s->fn.reduce(acc, rec, e, s->opaque);
                acc->key = rec->key;
                acc->key_len = rec->key_len;
                if (frc == SL_ERR_NOMEM) {
                    rc = frc;
                } else if (frc < 0) {
                    sl__record_failed(s, rec, frc);
                }
            }
        }
    }
    for (size_t i = 0; i < k.n && rc == SL_OK; i++) {
        rc = apply_one(st, tab, e, &k.recs[i], leaving);
    }
    sl__keytab_free(&k);
    return rc;
}

static int win_task(void *arg, size_t r)
{
    win_stage *st = arg;
    sl_stream *s = st->s;
    sl_ktable *tab = &s->kstate->tabs[r];
    sl_arena scratch; /* bytes the functions allocate; copied into the table if kept */
    sl__arena_init(&scratch, 0);
    sl_emitter e = {.push = no_emit, .arena = &scratch, .batch_time = st->t, .node = s};
    int rc = SL_OK;
    if (st->scratch) {
        sl__ktable_clear(tab);
    }
    if (st->nleave) {
        rc = apply_batches(st, tab, r, st->leave, st->nleave, true, &e);
    }
    if (rc == SL_OK && st->nenter) {
        rc = apply_batches(st, tab, r, st->enter, st->nenter, false, &e);
    }
    /* The filter sees the keys whose value changed (the others passed it before). */
    for (size_t i = 0; s->keep && i < tab->n && rc == SL_OK; i++) {
        sl_kentry *en = &tab->e[i];
        if (en->dead || en->mark != st->epoch) {
            continue;
        }
        sl_record rec;
        sl__kentry_record(en, &rec);
        int keep = s->keep(&rec, s->opaque);
        if (keep < 0) {
            sl__record_failed(s, &rec, keep);
        } else if (keep == 0) {
            sl__ktable_remove(tab, en);
        }
    }
    if (rc == SL_OK) {
        rc = sl__ktable_compact(tab, false);
    }
    if (rc == SL_OK) {
        rc = sl__ktable_to_part(tab, &st->out->parts[r], 0);
    }
    sl__arena_free(&scratch);
    return rc;
}

/* Appends ds to a list of datasets. */
static int list_add(sl_dataset ***list, size_t *n, sl_dataset *ds)
{
    sl_dataset **l = realloc(*list, (*n + 1) * sizeof(**list));
    if (!l) {
        return SL_ERR_NOMEM;
    }
    *list = l;
    l[(*n)++] = ds;
    return SL_OK;
}

int sl__window_compute(sl_stream *s, int64_t t, sl_dataset **out)
{
    sl_stream *p = s->parents[0];
    size_t np = sl__stream_partitions(s);
    if (!s->kstate && !(s->kstate = sl__kstate_new(np))) {
        return SL_ERR_NOMEM;
    }
    sl_kstate *ks = s->kstate;
    int64_t tp = ks->time; /* the previous result's time */
    if (tp >= t) {
        sl_log(SL_LOG_ERROR,
               "'%s': the window's result is at batch %" PRId64 " already and cannot be "
               "computed for batch %" PRId64,
               s->name, tp, t);
        return SL_ERR_STATE;
    }
    int64_t w = s->window_len;
    win_stage st = {.s = s, .t = t, .scratch = tp == 0};
    int rc = SL_OK;
    /* Entering: the batches in (max(tp, t - w), t]; from scratch, all of (t - w, t]. */
    int64_t from = st.scratch ? t - w : SL_MAX(tp, t - w);
    for (int64_t tt = from + p->slide; tt <= t && rc == SL_OK; tt += p->slide) {
        sl_dataset *d = NULL;
        if (sl__stream_valid_time(p, tt)) {
            rc = sl__stream_compute(p, tt, &d);
        }
        if (rc == SL_OK && d) {
            rc = list_add(&st.enter, &st.nenter, d);
        }
    }
    /* Leaving: the previous window's batches in (tp - w, min(tp, t - w)]. A batch that is not
     * in the parent's cache never ran (the process was down then): nothing leaves. */
    for (int64_t tt = tp - w + p->slide; !st.scratch && tt <= SL_MIN(tp, t - w) && rc == SL_OK;
         tt += p->slide) {
        sl_dataset *d = sl__stream_cached(p, tt);
        if (d) {
            rc = list_add(&st.leave, &st.nleave, d);
        }
    }
    st.out = rc == SL_OK ? sl__dataset_new(np, t) : NULL;
    if (rc == SL_OK && !st.out) {
        rc = SL_ERR_NOMEM;
    }
    if (rc == SL_OK) {
        st.epoch = ++ks->epoch;
        rc = sl__pool_run(s->ctx->pool, np, win_task, &st);
        /* After a failure the tables are partly updated: the next result starts over. */
        ks->time = rc == SL_OK ? t : 0;
    }
    for (size_t r = 0; r < np && rc == SL_OK; r++) {
        if (ks->tabs[r].store) {
            rc = sl__dataset_add_dep(st.out, ks->tabs[r].store);
        }
    }
    uint64_t bad = atomic_load(&st.inconsistent);
    if (bad && ks->inconsistent == 0) {
        sl_log(SL_LOG_WARN,
               "'%s': %" PRIu64 " keys left the window that were not in its previous result "
               "(does the filter drop keys whose value is not the identity, or is the inverse "
               "function not the inverse of the reduce function?)",
               s->name, bad);
    }
    ks->inconsistent += bad;
    free(st.enter);
    free(st.leave);
    return sl__stream_result(s, t, rc, st.out, out);
}

/* ==== Keys that left a window without an inverse ==== */

typedef struct left_stage {
    sl_stream *s;
    const sl_dataset *in;
    sl_dataset *out;
    uint32_t epoch;
} left_stage;

/* Partition r: the result's records, marking their keys in the table, then a tombstone for
 * each key of the table left unmarked (it was in the previous result only), which the table
 * forgets. Tombstones copy their keys: the table's storage moves when it is compacted. */
static int left_task(void *arg, size_t r)
{
    left_stage *st = arg;
    sl_ktable *tab = &st->s->kstate->tabs[r];
    const sl_part *in = &st->in->parts[r];
    sl_part *out = &st->out->parts[r];
    sl_recvec v = {0};
    int rc = SL_OK;
    for (size_t i = 0; i < in->n && rc == SL_OK; i++) {
        const sl_record *rec = &in->recs[i];
        uint64_t h = sl__hash_seeded(rec->key, rec->key_len);
        sl_kentry *en = sl__ktable_find(tab, rec->key, rec->key_len, h);
        if (!en && !(en = sl__ktable_add(tab, rec->key, rec->key_len, h))) {
            rc = SL_ERR_NOMEM;
            break;
        }
        en->mark = st->epoch;
        rc = sl__recvec_push(&v, rec);
    }
    for (size_t i = 0; i < tab->n && rc == SL_OK; i++) {
        sl_kentry *en = &tab->e[i];
        if (en->dead || en->mark == st->epoch) {
            continue;
        }
        sl_record gone = {.key = "", .key_len = en->key_len, .ts = st->out->time};
        if (en->key_len && !(gone.key = sl__arena_dup(&out->arena, en->key, en->key_len))) {
            rc = SL_ERR_NOMEM;
            break;
        }
        rc = sl__recvec_push(&v, &gone);
        sl__ktable_remove(tab, en);
    }
    if (rc == SL_OK) {
        rc = sl__ktable_compact(tab, false);
    }
    out->recs = v.recs;
    out->n = v.n;
    return rc;
}

int sl__keys_left_compute(sl_stream *s, int64_t t, sl_dataset **out)
{
    sl_dataset *in;
    int rc = sl__stream_compute(s->parents[0], t, &in);
    if (rc != SL_OK || !in) {
        return rc;
    }
    if (s->kstate && s->kstate->nparts != in->nparts) {
        sl__kstate_free(s->kstate); /* not expected: partitions are fixed when built */
        s->kstate = NULL;
    }
    if (!s->kstate && !(s->kstate = sl__kstate_new(in->nparts))) {
        return SL_ERR_NOMEM;
    }
    sl_kstate *ks = s->kstate;
    left_stage st = {.s = s, .in = in, .out = sl__dataset_new(in->nparts, t)};
    if (!st.out) {
        return SL_ERR_NOMEM;
    }
    rc = sl__dataset_add_dep(st.out, in);
    if (rc == SL_OK) {
        st.epoch = ++ks->epoch;
        rc = sl__pool_run(s->ctx->pool, in->nparts, left_task, &st);
        /* After a failure the tables are partly updated: the next result starts over. */
        if (rc != SL_OK) {
            for (size_t r = 0; r < ks->nparts; r++) {
                sl__ktable_clear(&ks->tabs[r]);
            }
        }
        ks->time = rc == SL_OK ? t : 0;
    }
    return sl__stream_result(s, t, rc, st.out, out);
}

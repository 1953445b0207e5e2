/* sl_stateful.c -- the stateful operators: update_state_by_key and map_with_state (Spark's
 * updateStateByKey and mapWithState), and the memory figures of windows and state.
 *
 * A stateful node keeps one key table per partition (sl_ktable.c); the records of a batch
 * are hash-shuffled by key into those partitions (or read as they are when the parent is a
 * reduce_by_key with as many partitions), and the partitions are updated in parallel on the
 * worker pool. Their snapshots are written and read by sl_state_snapshot.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

/* ==== Helpers shared with sl_window.c ==== */

size_t sl__stream_partitions(const sl_stream *s)
{
    if (s->kind == SL_OP_REDUCE_BY_KEY && (s->flags & SL_RBK_GLOBAL)) {
        return 1;
    }
    return s->partitions > 0 ? (size_t)s->partitions : (size_t)s->ctx->default_partitions;
}

bool sl__copartitioned(const sl_stream *parent, size_t nparts)
{
    return parent->kind == SL_OP_REDUCE_BY_KEY && !(parent->flags & SL_RBK_GLOBAL) &&
           sl__stream_partitions(parent) == nparts;
}

sl_dataset *sl__stream_cached(sl_stream *s, int64_t t)
{
    for (size_t i = s->ngen; i-- > 0;) {
        if (s->gen[i].time == t) {
            return s->gen[i].ds;
        }
    }
    return NULL;
}

bool sl__stream_is_stateful(const sl_stream *s)
{
    return s->kind == SL_OP_WINDOW_INV || s->kind == SL_OP_UPDATE_STATE ||
           s->kind == SL_OP_MAP_STATE;
}

bool sl__state_check_dir(sl_context *ctx, const char *what)
{
    if (ctx->checkpoint_dir) {
        return true;
    }
    sl_log(SL_LOG_ERROR,
           "%s keeps state across batches: it needs a checkpoint directory, where that state "
           "is saved (set sl_context_conf.checkpoint_dir, or app.checkpoint_dir in YAML)",
           what);
    return false;
}

/* ==== Building the stateful streams ==== */

static sl_stream *state_node(sl_stream *s, sl_op_kind kind, void *fn, void *opaque, int64_t timeout,
                             int partitions)
{
    const char *what = kind == SL_OP_UPDATE_STATE ? "update_state_by_key" : "map_with_state";
    if (!s) {
        return NULL;
    }
    if (!fn || partitions < 0 || timeout < 0) {
        sl_log(SL_LOG_ERROR, "%s of '%s': %s", what, s->name,
               !fn ? "no function" : "partitions and the timeout must not be negative");
        return NULL;
    }
    if (!sl__state_check_dir(s->ctx, what)) {
        return NULL;
    }
    sl_stream *n = sl__stream_new(s->ctx, kind, s, NULL);
    if (!n) {
        return NULL;
    }
    /* Every member of the union is a function pointer: store through one of them. */
    n->fn.update_state = (sl_update_state_fn)fn;
    n->opaque = opaque;
    n->timeout = timeout;
    n->partitions = partitions;
    return n;
}

sl_stream *sl_stream_update_state_by_key(sl_stream *s, sl_update_state_fn fn, void *opaque,
                                         int partitions)
{
    return state_node(s, SL_OP_UPDATE_STATE, (void *)fn, opaque, 0, partitions);
}

sl_stream *sl_stream_map_with_state(sl_stream *s, sl_map_with_state_fn fn, void *opaque,
                                    int64_t idle_timeout_ms, int partitions)
{
    return state_node(s, SL_OP_MAP_STATE, (void *)fn, opaque, idle_timeout_ms, partitions);
}

/* ==== Computing the stateful streams ==== */

typedef struct state_stage {
    sl_stream *s;
    int64_t t;
    size_t nparts;
    uint32_t epoch;
    sl_dataset *in;     /* co-partitioned input (partition r is bucket r), or NULL */
    size_t nmap;        /* map tasks of the shuffle */
    sl_recvec *buckets; /* nmap * nparts, task-major */
    sl_arena *arenas;   /* one per map task: bytes made by fused operators */
    sl_dataset *out;
    sl_dataset **held; /* per partition: the storage before compaction, for out's deps */
    sl_recvec *chg;    /* with a changelog, per partition: the keys whose state changed */
    sl_arena *chg_arena;
} state_stage;

/* The task of a record: the partition of the source it came from; -1: none. */
static int32_t record_task(const sl_record *r)
{
    return r && r->meta ? r->meta->partition : -1;
}

/* True when state differs from e's (its number or bytes). */
static bool state_differs(const sl_kentry *e, const sl_state *state)
{
    return e->num_type != state->num_type || memcmp(&e->num, &state->num, sizeof(e->num)) != 0 ||
           e->len != state->len || (e->len && memcmp(e->bytes, state->bytes, e->len) != 0);
}

/* A key of a stream with a changelog came from two partitions a and b: an error. */
static int two_owners(const state_stage *st, const char *key, uint32_t len, int32_t a, int32_t b)
{
    sl_log(SL_LOG_ERROR,
           "'%s' has a changelog, but key '%.*s' comes from partitions %" PRId32 " and %" PRId32
           " of its source: its state would have two owners across the group (read the keys "
           "from a topic keyed by them, such as a repartition topic)",
           st->s->name, (int)SL_MIN(len, 64), key, a, b);
    return SL_ERR_INVAL;
}

/* Records the change of a key in partition r's changes (e NULL: the key's state went). */
static int state_changed(const state_stage *st, size_t r, const sl_kentry *e, const char *key,
                         uint32_t len, uint16_t task)
{
    if (task == 0) {
        sl_log(SL_LOG_ERROR,
               "'%s' has a changelog, but the records of key '%.*s' came from no partitioned "
               "source (a changelog keeps state per source partition: read the keys from a "
               "partitioned source, such as a Kafka topic keyed by them)",
               st->s->name, (int)SL_MIN(len, 64), key);
        return SL_ERR_INVAL;
    }
    return sl__changelog_change(&st->chg[r], &st->chg_arena[r], e, key, len, (int32_t)task - 1);
}

/* The slices of records of partition r: the co-partitioned input's, or each map task's
 * bucket. Returns how many were stored in v (at most nmap + 1). */
static size_t input_slices(const state_stage *st, size_t r, sl_recvec *v)
{
    if (!st->buckets) {
        if (st->in && r < st->in->nparts) {
            v[0] = (sl_recvec){.recs = st->in->parts[r].recs, .n = st->in->parts[r].n};
            return 1;
        }
        return 0;
    }
    for (size_t i = 0; i < st->nmap; i++) {
        v[i] = st->buckets[i * st->nparts + r];
    }
    return st->nmap;
}

static int bucket_push(sl_emitter *e, const sl_record *r)
{
    state_stage *st = e->state;
    size_t task = (size_t)(e->arena - st->arenas);
    /* The partition of a key: the stable hash, as reduce_by_key's (sl__copartitioned). */
    size_t b = sl__hash_bucket(sl__hash(r->key, r->key_len), st->nparts);
    return sl__recvec_push(&st->buckets[task * st->nparts + b], r);
}

static int shuffle_map_task(void *arg, size_t i)
{
    state_stage *st = arg;
    sl_emitter e = {
        .push = bucket_push,
        .arena = &st->arenas[i],
        .batch_time = st->t,
        .node = st->s,
        .state = st,
    };
    return sl__chain_run(st->s->parents[0], st->t, i, &e);
}

/* Runs the parent's chain into buckets by key. deps_into (may be NULL) gets the parent's
 * materialized ancestors as dependencies. */
static int shuffle_fill(state_stage *st, sl_dataset *deps_into)
{
    sl_stream *parent = st->s->parents[0];
    int rc = sl__chain_prepare(parent, st->t, deps_into);
    if (rc != SL_OK) {
        return rc;
    }
    st->nmap = sl__chain_partitions(parent, st->t);
    st->buckets = calloc(st->nmap * st->nparts + 1, sizeof(*st->buckets));
    st->arenas = calloc(st->nmap + 1, sizeof(*st->arenas));
    if (!st->buckets || !st->arenas) {
        return SL_ERR_NOMEM;
    }
    for (size_t i = 0; i < st->nmap; i++) {
        sl__arena_init(&st->arenas[i], 0);
    }
    return sl__pool_run(st->s->ctx->pool, st->nmap, shuffle_map_task, st);
}

static void state_from_entry(sl_state *state, const sl_kentry *e)
{
    *state = (sl_state){
        .exists = true,
        .num_type = e->num_type,
        .bytes = e->bytes,
        .len = e->len,
        .updated = e->ts,
    };
    memcpy(&state->num, &e->num, sizeof(state->num));
}

/* Stores what the function left in *state for key. en: the key's entry or NULL. data: the
 * batch brought values for the key (its update time becomes t). */
static int state_store(const state_stage *st, size_t r, sl_ktable *tab, sl_kentry *en,
                       const char *key, uint32_t len, uint64_t h, const sl_state *state, bool data,
                       int64_t data_ts, int32_t task)
{
    if (!state->exists) {
        int rc = SL_OK;
        if (en) {
            if (st->chg) {
                rc = state_changed(st, r, NULL, en->key, en->key_len, en->task);
            }
            sl__ktable_remove(tab, en);
        }
        return rc;
    }
    bool changed = !en || data || state_differs(en, state);
    if (!en) {
        if (!(en = sl__ktable_add(tab, key, len, h))) {
            return SL_ERR_NOMEM;
        }
        en->ts = data_ts;
    } else if (data && (!st->s->event_time || data_ts > en->ts)) {
        en->ts = data_ts;
    }
    en->num_type = state->num_type;
    memcpy(&en->num, &state->num, sizeof(en->num));
    en->mark = st->epoch;
    int rc = sl__ktable_set_bytes(tab, en, state->bytes, state->len);
    if (rc == SL_OK && st->chg && task >= 0 && en->task && en->task != task + 1) {
        return two_owners(st, key, len, en->task - 1, task);
    }
    if (task >= 0) {
        en->task = (uint16_t)(task + 1);
    }
    if (rc == SL_OK && st->chg && changed) {
        rc = state_changed(st, r, en, en->key, en->key_len, en->task);
    }
    return rc;
}

static int no_emit(sl_emitter *e, const sl_record *r)
{
    return SL_ERR_STATE; /* update_state_by_key's function does not emit */
}

static int collect_push(sl_emitter *e, const sl_record *r)
{
    return sl__recvec_push(e->state, r);
}

/* The stream time of task, read-only (the job's pass over the input made room for every
 * task of the batch, a restore for every task of the state). */
static const sl_stream_time *stream_time_of(const sl_kstate *ks, int32_t task)
{
    static const sl_stream_time none = {INT64_MIN, INT64_MIN, 0};
    size_t i = task < 0 ? 0 : (size_t)task + 1;
    return i < ks->nstime ? &ks->stime[i] : &none;
}

/* A task without records for idle_timeout (in batch time) no longer holds its windows back:
 * its stream time follows the lowest of the tasks that have records (Flink's idleness). A
 * task restored or new counts from the first batch that sees it. */
static void idle_follow(sl_kstate *ks, int64_t t, int64_t idle_timeout)
{
    int64_t low = INT64_MAX;
    for (size_t i = 0; i < ks->nstime; i++) {
        sl_stream_time *x = &ks->stime[i];
        x->seen = x->seen ? x->seen : t;
        if (x->after != INT64_MIN && t - x->seen < idle_timeout) {
            low = x->after < low ? x->after : low;
        }
    }
    for (size_t i = 0; idle_timeout > 0 && low != INT64_MAX && i < ks->nstime; i++) {
        sl_stream_time *x = &ks->stime[i];
        if (x->after != INT64_MIN && t - x->seen >= idle_timeout && x->after < low) {
            x->after = low;
        }
    }
}

/* Event time: each task's stream time advances with the highest record time of the batch
 * (before the keys are updated, so that every key of a task sees the same). */
static int stream_time_advance(const state_stage *st)
{
    sl_kstate *ks = st->s->kstate;
    for (size_t i = 0; i < ks->nstime; i++) {
        ks->stime[i].before = ks->stime[i].after;
    }
    size_t nv = st->buckets ? st->nmap * st->nparts : st->in ? st->in->nparts : 0;
    for (size_t i = 0; i < nv; i++) {
        const sl_record *recs = st->buckets ? st->buckets[i].recs : st->in->parts[i].recs;
        size_t n = st->buckets ? st->buckets[i].n : st->in->parts[i].n;
        for (size_t j = 0; j < n; j++) {
            if (sl__changelog_skips(st->s, record_task(&recs[j]))) {
                continue; /* the restored state holds it */
            }
            sl_stream_time *t = sl__kstate_stime(ks, record_task(&recs[j]));
            if (!t) {
                return SL_ERR_NOMEM;
            }
            if (recs[j].ts > t->after) {
                t->after = recs[j].ts;
            }
            t->seen = st->t;
        }
    }
    idle_follow(ks, st->t, st->s->idle_timeout);
    /* Without a changelog a key's records may come from any partition (keyed by a field, not
     * by the Kafka key): its windows follow the lowest stream time of the partitions, as
     * Flink's watermark is the minimum over its inputs. With one, keys come by partition and
     * each task keeps its own (Kafka Streams' stream time), which moves with it. */
    ks->input.before = ks->input.after;
    int64_t low = INT64_MAX;
    for (size_t i = 0; i < ks->nstime; i++) {
        if (ks->stime[i].after != INT64_MIN && ks->stime[i].after < low) {
            low = ks->stime[i].after;
        }
    }
    if (low != INT64_MAX && low > ks->input.after) {
        ks->input.after = low;
    }
    return SL_OK;
}

/* Publishes where s's event time is (for status pages): the lowest watermark of its tasks
 * and the highest stream time. */
static void event_time_publish(sl_stream *s)
{
    const sl_kstate *ks = s->kstate;
    int64_t low = INT64_MAX, high = INT64_MIN;
    for (size_t i = 0; i < ks->nstime; i++) {
        int64_t t = ks->stime[i].after;
        if (t != INT64_MIN) {
            low = t < low ? t : low;
            high = t > high ? t : high;
        }
    }
    atomic_store(&s->watermark, low == INT64_MAX ? INT64_MIN : low - s->disorder);
    atomic_store(&s->stream_time, high);
}

/* Calls update_state_by_key's function for one key and stores the result. */
static int update_one(const state_stage *st, size_t r, sl_ktable *tab, sl_emitter *e, sl_kentry *en,
                      const char *key, uint32_t len, uint64_t h, const sl_record *vals, size_t n)
{
    sl_stream *s = st->s;
    for (size_t i = 1; st->chg && i < n; i++) {
        if (record_task(&vals[i]) != record_task(vals)) {
            return two_owners(st, key, len, record_task(vals), record_task(&vals[i]));
        }
    }
    sl_state state = {0};
    if (en) {
        state_from_entry(&state, en);
    }
    int32_t task = n ? record_task(vals) : en ? (int32_t)en->task - 1 : -1;
    int64_t data_ts = st->t;
    if (s->event_time) {
        e->stime = s->chg ? stream_time_of(s->kstate, task) : &s->kstate->input;
        data_ts = INT64_MIN;
        for (size_t i = 0; i < n; i++) {
            data_ts = vals[i].ts > data_ts ? vals[i].ts : data_ts;
        }
    }
    int rc = s->fn.update_state(key, len, vals, n, &state, e, s->opaque);
    if (rc < 0) {
        if (rc == SL_ERR_NOMEM) {
            return rc;
        }
        sl_record failed = n ? vals[0] : (sl_record){.key = key, .key_len = len, .ts = st->t};
        sl__record_failed(s, &failed, rc);
        if (en) {
            en->mark = st->epoch;
        }
        return SL_OK;
    }
    state.timing_out = false;
    return state_store(st, r, tab, en, key, len, h, &state, n > 0, data_ts,
                       n ? record_task(vals) : -1);
}

/* The batch's records of a partition grouped by key: the records of group k are
 * recs[start[k] .. start[k + 1]). */
typedef struct groups {
    sl_record *recs;
    size_t *start;
    uint64_t *hash;
    size_t n;
} groups;

static void groups_free(groups *g)
{
    free(g->recs);
    free(g->start);
    free(g->hash);
}

/* Groups the records of v by key with the combine table (sl_keytab); the records of each
 * group keep their order. */
static int group_input(const sl_recvec *v, size_t nv, groups *g)
{
    memset(g, 0, sizeof(*g));
    size_t total = 0;
    for (size_t i = 0; i < nv; i++) {
        total += v[i].n;
    }
    if (total == 0) {
        return SL_OK;
    }
    sl_keytab t;
    sl__keytab_init(&t);
    uint32_t *gid = malloc(total * sizeof(*gid));
    size_t *count = calloc(total + 1, sizeof(*count));
    g->start = malloc((total + 1) * sizeof(*g->start));
    g->recs = malloc(total * sizeof(*g->recs));
    int rc = gid && count && g->start && g->recs ? SL_OK : SL_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < nv && rc == SL_OK; i++) {
        for (size_t j = 0; j < v[i].n; j++, k++) {
            const sl_record *r = &v[i].recs[j];
            int added;
            sl_record *first = sl__keytab_upsert(&t, r->key, r->key_len,
                                                 sl__hash_seeded(r->key, r->key_len), &added);
            if (!first) {
                rc = SL_ERR_NOMEM;
                break;
            }
            if (added) {
                *first = *r; /* the group's key, pointing into the input */
            }
            gid[k] = (uint32_t)(first - t.recs);
            count[gid[k]]++;
        }
    }
    if (rc == SL_OK) {
        g->n = t.n;
        g->hash = t.hashes; /* taken from the table */
        t.hashes = NULL;
        size_t at = 0;
        for (size_t x = 0; x < g->n; x++) {
            g->start[x] = at;
            at += count[x];
            count[x] = g->start[x]; /* now the next place of the group */
        }
        g->start[g->n] = at;
        k = 0;
        for (size_t i = 0; i < nv; i++) {
            for (size_t j = 0; j < v[i].n; j++, k++) {
                g->recs[count[gid[k]]++] = v[i].recs[j];
            }
        }
    }
    sl__keytab_free(&t);
    free(gid);
    free(count);
    if (rc != SL_OK) {
        groups_free(g);
    }
    return rc;
}

static int update_part(const state_stage *st, size_t r, sl_ktable *tab, sl_arena *scratch)
{
    sl_stream *s = st->s;
    sl_emitter e = {.push = no_emit, .arena = scratch, .batch_time = st->t, .node = s};
    sl_recvec outv = {0};
    if (s->state_emits) {
        e = (sl_emitter){.push = collect_push,
                         .arena = &st->out->parts[r].arena,
                         .batch_time = st->t,
                         .node = s,
                         .state = &outv};
    }
    sl_recvec *v = calloc(st->nmap + 2, sizeof(*v));
    if (!v) {
        return SL_ERR_NOMEM;
    }
    size_t nv = input_slices(st, r, v);
    int rc = SL_OK;
    if (!st->buckets) {
        /* Co-partitioned: one record per key, no grouping. */
        for (size_t i = 0; i < nv && rc == SL_OK; i++) {
            for (size_t j = 0; j < v[i].n && rc == SL_OK; j++) {
                const sl_record *rec = &v[i].recs[j];
                if (sl__changelog_skips(s, record_task(rec))) {
                    continue; /* the restored state holds it */
                }
                uint64_t h = sl__hash_seeded(rec->key, rec->key_len);
                sl_kentry *en = sl__ktable_find(tab, rec->key, rec->key_len, h);
                rc = update_one(st, r, tab, &e, en, rec->key, rec->key_len, h, rec, 1);
            }
        }
    } else {
        groups g;
        rc = group_input(v, nv, &g);
        if (rc == SL_OK) {
            for (size_t k = 0; k < g.n && rc == SL_OK; k++) {
                const sl_record *vals = &g.recs[g.start[k]];
                if (sl__changelog_skips(s, record_task(vals))) {
                    continue; /* the restored state holds them */
                }
                sl_kentry *en = sl__ktable_find(tab, vals[0].key, vals[0].key_len, g.hash[k]);
                rc = update_one(st, r, tab, &e, en, vals[0].key, vals[0].key_len, g.hash[k], vals,
                                g.start[k + 1] - g.start[k]);
            }
            groups_free(&g);
        }
    }
    free(v);
    /* Every key with state and no value in the batch (no entry is added below). */
    for (size_t i = 0; i < tab->n && rc == SL_OK; i++) {
        sl_kentry *en = &tab->e[i];
        if (!en->dead && en->mark != st->epoch) {
            rc = update_one(st, r, tab, &e, en, en->key, en->key_len, en->hash, NULL, 0);
        }
    }
    if (s->state_emits) {
        st->out->parts[r].recs = outv.recs;
        st->out->parts[r].n = outv.n;
    }
    return rc;
}

static int map_part(const state_stage *st, size_t r, sl_ktable *tab, sl_part *part)
{
    sl_stream *s = st->s;
    sl_recvec outv = {0};
    sl_emitter e = {
        .push = collect_push,
        .arena = &part->arena,
        .batch_time = st->t,
        .node = s,
        .state = &outv,
    };
    sl_recvec *v = calloc(st->nmap + 2, sizeof(*v));
    if (!v) {
        return SL_ERR_NOMEM;
    }
    size_t nv = input_slices(st, r, v);
    int rc = SL_OK;
    for (size_t i = 0; i < nv && rc == SL_OK; i++) {
        for (size_t j = 0; j < v[i].n && rc == SL_OK; j++) {
            const sl_record *rec = &v[i].recs[j];
            if (sl__changelog_skips(s, record_task(rec))) {
                continue; /* the restored state holds it */
            }
            uint64_t h = sl__hash_seeded(rec->key, rec->key_len);
            sl_kentry *en = sl__ktable_find(tab, rec->key, rec->key_len, h);
            sl_state state = {0};
            if (en) {
                state_from_entry(&state, en);
            }
            rc = s->fn.map_state(rec, &state, &e, s->opaque);
            if (rc < 0) {
                if (rc != SL_ERR_NOMEM) {
                    sl__record_failed(s, rec, rc);
                    rc = SL_OK;
                }
                continue;
            }
            state.timing_out = false;
            rc = state_store(st, r, tab, en, rec->key, rec->key_len, h, &state, true, st->t,
                             record_task(rec));
        }
    }
    free(v);
    /* Keys idle for longer than the timeout: one last call, then they go. */
    for (size_t i = 0; s->timeout > 0 && i < tab->n && rc == SL_OK; i++) {
        sl_kentry *en = &tab->e[i];
        if (en->dead || en->mark == st->epoch || en->ts >= st->t - s->timeout) {
            continue;
        }
        sl_record key_only = {.key = en->key, .key_len = en->key_len, .ts = st->t};
        sl_state state;
        state_from_entry(&state, en);
        state.timing_out = true;
        rc = s->fn.map_state(&key_only, &state, &e, s->opaque);
        if (rc < 0 && rc != SL_ERR_NOMEM) {
            sl__record_failed(s, &key_only, rc);
            rc = SL_OK;
        }
        if (rc == SL_OK && st->chg) {
            en = &tab->e[i];
            rc = state_changed(st, r, NULL, en->key, en->key_len, en->task);
        }
        sl__ktable_remove(tab, &tab->e[i]);
    }
    part->recs = outv.recs;
    part->n = outv.n;
    return rc;
}

static int state_task(void *arg, size_t r)
{
    state_stage *st = arg;
    sl_ktable *tab = &st->s->kstate->tabs[r];
    sl_arena scratch;
    sl__arena_init(&scratch, 0);
    int rc = st->s->kind == SL_OP_UPDATE_STATE ? update_part(st, r, tab, &scratch)
                                               : map_part(st, r, tab, &st->out->parts[r]);
    /* Records emitted by map_with_state may point into the storage (a timing-out key):
     * the output keeps the storage as it was before a compaction replaces it. */
    if (tab->store && st->s->kind == SL_OP_MAP_STATE) {
        sl__dataset_retain(tab->store);
        st->held[r] = tab->store;
    }
    if (rc == SL_OK) {
        rc = sl__ktable_compact(tab, false);
    }
    if (rc == SL_OK && st->s->kind == SL_OP_UPDATE_STATE && !st->s->state_emits) {
        rc = sl__ktable_to_part(tab, &st->out->parts[r], st->t);
    }
    sl__arena_free(&scratch);
    return rc;
}

/* Hands the changes collected in st to the changelog (when rc is SL_OK) and frees them.
 * Returns rc, or the error of doing so. */
static int changes_publish(state_stage *st, int rc)
{
    sl_dataset *ds = rc == SL_OK ? sl__dataset_new(st->nparts, st->t) : NULL;
    if (rc == SL_OK && !ds) {
        rc = SL_ERR_NOMEM;
    }
    for (size_t r = 0; r < st->nparts; r++) {
        if (ds) {
            ds->parts[r].recs = st->chg[r].recs;
            ds->parts[r].n = st->chg[r].n;
            sl__arena_steal(&ds->parts[r].arena, &st->chg_arena[r]);
        } else {
            free(st->chg[r].recs);
        }
        sl__arena_free(&st->chg_arena[r]);
    }
    free(st->chg);
    free(st->chg_arena);
    if (ds) {
        sl__changelog_set(st->s, ds);
    }
    return rc;
}

int sl__state_compute(sl_stream *s, int64_t t, sl_dataset **out)
{
    size_t np = sl__stream_partitions(s);
    if (!s->kstate && !(s->kstate = sl__kstate_new(np))) {
        return SL_ERR_NOMEM;
    }
    sl_kstate *ks = s->kstate;
    if (ks->time >= t) {
        sl_log(SL_LOG_ERROR,
               "'%s': the state is at batch %" PRId64 " already and cannot be computed for "
               "batch %" PRId64,
               s->name, ks->time, t);
        return SL_ERR_STATE;
    }
    state_stage st = {.s = s, .t = t, .nparts = np};
    st.out = sl__dataset_new(np, t);
    st.held = calloc(np, sizeof(*st.held));
    int rc = st.out && st.held ? SL_OK : SL_ERR_NOMEM;
    if (rc == SL_OK && s->chg) {
        /* Restores and drops asked up to this batch first; then collect the changes. */
        rc = sl__changelog_apply(s, t);
        st.chg = calloc(np, sizeof(*st.chg));
        st.chg_arena = calloc(np, sizeof(*st.chg_arena));
        if (rc == SL_OK && (!st.chg || !st.chg_arena)) {
            rc = SL_ERR_NOMEM;
        }
        for (size_t r = 0; st.chg_arena && r < np; r++) {
            sl__arena_init(&st.chg_arena[r], 0);
        }
    }
    sl_stream *parent = s->parents[0];
    bool mapped = s->kind == SL_OP_MAP_STATE; /* the output may point into the input */
    if (rc == SL_OK && sl__copartitioned(parent, np)) {
        rc = sl__stream_compute(parent, t, &st.in);
        if (rc == SL_OK && st.in && mapped) {
            rc = sl__dataset_add_dep(st.out, st.in);
        }
    } else if (rc == SL_OK) {
        rc = shuffle_fill(&st, mapped ? st.out : NULL);
    }
    if (rc == SL_OK && s->event_time) {
        rc = stream_time_advance(&st);
        event_time_publish(s);
    }
    if (rc == SL_OK) {
        st.epoch = ++ks->epoch;
        rc = sl__pool_run(s->ctx->pool, np, state_task, &st);
        ks->time = t; /* applied, even in part: never applied twice */
    }
    for (size_t r = 0; st.held && r < np; r++) {
        if (rc == SL_OK && st.held[r]) {
            rc = sl__dataset_add_dep(st.out, st.held[r]);
        }
        if (rc == SL_OK && ks->tabs[r].store) {
            rc = sl__dataset_add_dep(st.out, ks->tabs[r].store);
        }
        sl__dataset_release(st.held[r]);
    }
    for (size_t i = 0; st.buckets && i < st.nmap * np; i++) {
        free(st.buckets[i].recs);
    }
    for (size_t i = 0; st.arenas && i < st.nmap; i++) {
        if (rc == SL_OK && mapped && np) {
            sl__arena_steal(&st.out->parts[0].arena, &st.arenas[i]);
        }
        sl__arena_free(&st.arenas[i]);
    }
    free(st.buckets);
    free(st.arenas);
    free(st.held);
    if (st.chg) {
        rc = changes_publish(&st, rc);
    }
    return sl__stream_result(s, t, rc, st.out, out);
}

/* ==== Memory figures ==== */

void sl__state_account(sl_context *ctx)
{
    uint64_t wb = 0, wk = 0, sb = 0, sk = 0;
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        if (s->remembered_by_window) {
            for (size_t i = 0; i < s->ngen; i++) {
                wb += sl__dataset_bytes(s->gen[i].ds);
            }
        }
        if (!s->kstate) {
            continue;
        }
        uint64_t bytes = 0, keys = 0;
        for (size_t p = 0; p < s->kstate->nparts; p++) {
            bytes += sl__ktable_bytes(&s->kstate->tabs[p]);
            keys += s->kstate->tabs[p].live;
        }
        if (s->kind == SL_OP_WINDOW_INV || s->kind == SL_OP_KEYS_LEFT) {
            wb += bytes;
            wk += keys;
        } else {
            sb += bytes;
            sk += keys;
        }
    }
    atomic_store(&ctx->window_bytes, wb);
    atomic_store(&ctx->window_keys, wk);
    atomic_store(&ctx->state_bytes, sb);
    atomic_store(&ctx->state_keys, sk);
}

/* sl_state.c -- keyed state: the per-partition state tables, update_state_by_key and
 * map_with_state (Spark's updateStateByKey and mapWithState), the checkpoints of state
 * under <checkpoint_dir>/state, and the memory figures of windows and state.
 *
 * A stateful node keeps one table per partition; the records of a batch are hash-shuffled
 * by key into those partitions (or read as they are when the parent is a reduce_by_key with
 * as many partitions), and the partitions are updated in parallel on the worker pool.
 *
 * Checkpoints: every max(1, ceil(10 s / slide)) slides (the slide being the least common
 * multiple of the stateful nodes' slides), when a batch completes, each stateful node
 * writes its tables (and a window with an inverse the reduced batches of its window that
 * are not on disk yet, each once) to files written like the metadata: a temporary file,
 * fsynced, renamed, the directory fsynced, a CRC-32C over the content. The metadata records
 * the files and the batch time they reflect, and keeps the completed batches after it: after
 * a restart, the state is loaded and those batches run again for their state only (no
 * output), then the pending ones run as usual. Snapshotting every batch would write the
 * whole state every batch; keeping the batches since the snapshot costs a few lines of
 * metadata and replays at most one interval. Replaying needs sources that can read a batch
 * again (Kafka's offset ranges); for the others a snapshot is also taken at stop, at any
 * batch, so that a graceful stop loses nothing. The files of the newest few snapshots are
 * kept, older ones deleted. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sl_engine.h"
#include "sl_framed.h"
#include "sl_wal.h"

#define KT_MIN_SLOTS   64
#define KT_STORE_CHUNK (256 * 1024)
#define STATE_EVERY_MS 10000 /* state is checkpointed every max(1, ceil(10 s / slide)) slides */
#define STATE_KEEP     4     /* snapshots whose files are kept */
#define STATE_MAGIC    "SLUICE-STATE"
#define STATE_VERSION  1u
#define STATE_MAX_LEN  ((size_t)1 << 40) /* checked against the file's size too */

static size_t round8(size_t n)
{
    return ((n ? n : 1) + 7) & ~(size_t)7;
}

/* ==== State tables ==== */

static sl_dataset *store_new(void)
{
    sl_dataset *ds = sl__dataset_new(1, 0);
    if (ds) {
        sl__arena_init(&ds->parts[0].arena, KT_STORE_CHUNK);
    }
    return ds;
}

void sl__ktable_init(sl_ktable *t)
{
    memset(t, 0, sizeof(*t));
}

void sl__ktable_free(sl_ktable *t)
{
    free(t->slots);
    free(t->e);
    sl__dataset_release(t->store);
    memset(t, 0, sizeof(*t));
}

void sl__ktable_clear(sl_ktable *t)
{
    sl__ktable_free(t);
}

sl_kentry *sl__ktable_find(sl_ktable *t, const char *key, uint32_t len, uint64_t h)
{
    if (!t->mask) {
        return NULL;
    }
    for (size_t s = h & t->mask;; s = (s + 1) & t->mask) {
        uint32_t idx = t->slots[s];
        if (!idx) {
            return NULL;
        }
        sl_kentry *e = &t->e[idx - 1];
        if (!e->dead && e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) {
            return e;
        }
    }
}

/* Rebuilds the slots with nslots slots; dead entries are left out (no more tombstones). */
static int kt_rehash(sl_ktable *t, size_t nslots)
{
    uint32_t *slots = calloc(nslots, sizeof(*slots));
    if (!slots) {
        return SL_ERR_NOMEM;
    }
    size_t mask = nslots - 1;
    for (size_t i = 0; i < t->n; i++) {
        if (t->e[i].dead) {
            continue;
        }
        size_t s = t->e[i].hash & mask;
        while (slots[s]) {
            s = (s + 1) & mask;
        }
        slots[s] = (uint32_t)(i + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->mask = mask;
    t->used = t->live;
    return SL_OK;
}

/* The slot count for n live keys: a load of at most 1/4 right after a rebuild, so that
 * at least as many keys again can be added before the next (at 1/2, tombstones counted). */
static size_t kt_slots_for(size_t n)
{
    size_t nslots = KT_MIN_SLOTS;
    while (n * 4 > nslots) {
        nslots *= 2;
    }
    return nslots;
}

sl_kentry *sl__ktable_add(sl_ktable *t, const char *key, uint32_t len, uint64_t h)
{
    if (!t->store && !(t->store = store_new())) {
        return NULL;
    }
    if (!t->mask || (t->used + 1) * 2 > t->mask + 1) {
        if (kt_rehash(t, kt_slots_for(t->live + 1)) != SL_OK) {
            return NULL;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap + t->cap / 2 : 64;
        sl_kentry *e = realloc(t->e, cap * sizeof(*e));
        if (!e) {
            return NULL;
        }
        t->e = e;
        t->cap = cap;
    }
    const char *k = sl__arena_dup(&t->store->parts[0].arena, key, len);
    if (!k) {
        return NULL;
    }
    size_t s = h & t->mask;
    while (t->slots[s]) {
        s = (s + 1) & t->mask;
    }
    sl_kentry *e = &t->e[t->n];
    memset(e, 0, sizeof(*e));
    e->hash = h;
    e->key = k;
    e->key_len = len;
    t->slots[s] = (uint32_t)(t->n + 1);
    t->n++;
    t->live++;
    t->used++;
    return e;
}

int sl__ktable_set_bytes(sl_ktable *t, sl_kentry *e, const char *bytes, uint32_t len)
{
    if (len == e->len && (bytes == e->bytes || len == 0)) {
        return SL_OK;
    }
    if (e->len) {
        t->garbage += round8(e->len);
    }
    if (!len) {
        e->bytes = NULL;
        e->len = 0;
        return SL_OK;
    }
    const char *b = sl__arena_dup(&t->store->parts[0].arena, bytes, len);
    if (!b) {
        return SL_ERR_NOMEM;
    }
    e->bytes = b;
    e->len = len;
    return SL_OK;
}

void sl__ktable_remove(sl_ktable *t, sl_kentry *e)
{
    e->dead = 1;
    t->live--;
    t->garbage += round8(e->key_len) + (e->len ? round8(e->len) : 0);
}

int sl__ktable_compact(sl_ktable *t, bool force)
{
    size_t dead = t->n - t->live;
    size_t store_bytes = t->store ? t->store->parts[0].arena.bytes : 0;
    bool restore = t->store && (force || t->garbage * 2 > store_bytes + KT_STORE_CHUNK);
    bool entries = force || dead * 4 > t->n + 256 || restore;
    if (!entries) {
        return SL_OK;
    }
    sl_dataset *ns = NULL;
    if (restore) {
        ns = store_new();
        if (!ns) {
            return SL_ERR_NOMEM;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        sl_kentry e = t->e[i];
        if (e.dead) {
            continue;
        }
        if (ns) {
            e.key = sl__arena_dup(&ns->parts[0].arena, e.key, e.key_len);
            if (e.len) {
                e.bytes = sl__arena_dup(&ns->parts[0].arena, e.bytes, e.len);
            }
            if (!e.key || (e.len && !e.bytes)) {
                /* Nothing moved yet that cannot stay: keep the old storage. */
                sl__dataset_release(ns);
                return SL_ERR_NOMEM;
            }
        }
        t->e[k++] = e;
    }
    t->n = k;
    if (ns) {
        sl__dataset_release(t->store); /* outputs that point into it keep it alive */
        t->store = ns;
        t->garbage = 0;
    }
    if (t->cap > 2 * t->n + 64) {
        size_t cap = t->n + t->n / 2 + 64;
        sl_kentry *e = realloc(t->e, cap * sizeof(*e));
        if (e) {
            t->e = e;
            t->cap = cap;
        }
    }
    return t->n ? kt_rehash(t, kt_slots_for(t->live)) : (sl__ktable_free(t), SL_OK);
}

size_t sl__ktable_bytes(const sl_ktable *t)
{
    return (t->mask ? (t->mask + 1) * sizeof(uint32_t) : 0) + t->cap * sizeof(sl_kentry) +
           (t->store ? t->store->parts[0].arena.bytes : 0);
}

void sl__kentry_record(const sl_kentry *e, sl_record *r)
{
    *r = (sl_record){
        .key = e->key,
        .key_len = e->key_len,
        .value = e->bytes,
        .value_len = e->len,
        .num_type = e->num_type,
        .ts = e->ts,
    };
    memcpy(&r->num, &e->num, sizeof(r->num));
}

int sl__ktable_to_part(const sl_ktable *t, sl_part *part, int64_t ts_override)
{
    part->recs = malloc((t->live ? t->live : 1) * sizeof(sl_record));
    if (!part->recs) {
        return SL_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->e[i].dead) {
            continue;
        }
        sl__kentry_record(&t->e[i], &part->recs[k]);
        if (ts_override > 0) {
            part->recs[k].ts = ts_override;
        }
        k++;
    }
    part->n = k;
    return SL_OK;
}

sl_kstate *sl__kstate_new(size_t nparts)
{
    sl_kstate *ks = calloc(1, sizeof(*ks));
    if (!ks) {
        return NULL;
    }
    ks->tabs = calloc(nparts ? nparts : 1, sizeof(*ks->tabs));
    if (!ks->tabs) {
        free(ks);
        return NULL;
    }
    ks->nparts = nparts;
    return ks;
}

void sl__kstate_free(sl_kstate *ks)
{
    if (!ks) {
        return;
    }
    for (size_t i = 0; i < ks->nparts; i++) {
        sl__ktable_free(&ks->tabs[i]);
    }
    free(ks->tabs);
    free(ks);
}

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
} state_stage;

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
static int state_store(const state_stage *st, sl_ktable *tab, sl_kentry *en, const char *key,
                       uint32_t len, uint64_t h, const sl_state *state, bool data)
{
    if (!state->exists) {
        if (en) {
            sl__ktable_remove(tab, en);
        }
        return SL_OK;
    }
    if (!en) {
        if (!(en = sl__ktable_add(tab, key, len, h))) {
            return SL_ERR_NOMEM;
        }
        en->ts = st->t;
    } else if (data) {
        en->ts = st->t;
    }
    en->num_type = state->num_type;
    memcpy(&en->num, &state->num, sizeof(en->num));
    en->mark = st->epoch;
    return sl__ktable_set_bytes(tab, en, state->bytes, state->len);
}

static int no_emit(sl_emitter *e, const sl_record *r)
{
    return SL_ERR_STATE; /* update_state_by_key's function does not emit */
}

static int collect_push(sl_emitter *e, const sl_record *r)
{
    return sl__recvec_push(e->state, r);
}

/* Calls update_state_by_key's function for one key and stores the result. */
static int update_one(const state_stage *st, sl_ktable *tab, sl_emitter *e, sl_kentry *en,
                      const char *key, uint32_t len, uint64_t h, const sl_record *vals, size_t n)
{
    sl_stream *s = st->s;
    sl_state state = {0};
    if (en) {
        state_from_entry(&state, en);
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
    return state_store(st, tab, en, key, len, h, &state, n > 0);
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
    size_t nslots = 16;
    while (nslots < total * 2) {
        nslots *= 2;
    }
    const sl_record **flat = malloc(total * sizeof(*flat));
    uint32_t *gid = malloc(total * sizeof(*gid));
    uint32_t *slots = calloc(nslots, sizeof(*slots));
    size_t *first = malloc(total * sizeof(*first));
    size_t *count = calloc(total + 1, sizeof(*count));
    g->hash = malloc(total * sizeof(*g->hash));
    g->start = malloc((total + 1) * sizeof(*g->start));
    g->recs = malloc(total * sizeof(*g->recs));
    int rc = flat && gid && slots && first && count && g->hash && g->start && g->recs
                 ? SL_OK
                 : SL_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < nv && rc == SL_OK; i++) {
        for (size_t j = 0; j < v[i].n; j++, k++) {
            const sl_record *r = &v[i].recs[j];
            flat[k] = r;
            uint64_t h = sl__hash(r->key, r->key_len);
            size_t s = h & (nslots - 1);
            for (;; s = (s + 1) & (nslots - 1)) {
                uint32_t x = slots[s];
                if (!x) {
                    slots[s] = (uint32_t)(g->n + 1);
                    first[g->n] = k;
                    g->hash[g->n] = h;
                    gid[k] = (uint32_t)g->n++;
                    break;
                }
                const sl_record *f = flat[first[x - 1]];
                if (g->hash[x - 1] == h && f->key_len == r->key_len &&
                    memcmp(f->key, r->key, r->key_len) == 0) {
                    gid[k] = x - 1;
                    break;
                }
            }
            count[gid[k]]++;
        }
    }
    if (rc == SL_OK) {
        size_t at = 0;
        for (size_t x = 0; x < g->n; x++) {
            g->start[x] = at;
            at += count[x];
            count[x] = g->start[x]; /* now the next place of the group */
        }
        g->start[g->n] = at;
        for (k = 0; k < total; k++) {
            g->recs[count[gid[k]]++] = *flat[k];
        }
    }
    free(flat);
    free(gid);
    free(slots);
    free(first);
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
                uint64_t h = sl__hash(rec->key, rec->key_len);
                sl_kentry *en = sl__ktable_find(tab, rec->key, rec->key_len, h);
                rc = update_one(st, tab, &e, en, rec->key, rec->key_len, h, rec, 1);
            }
        }
    } else {
        groups g;
        rc = group_input(v, nv, &g);
        if (rc == SL_OK) {
            for (size_t k = 0; k < g.n && rc == SL_OK; k++) {
                const sl_record *vals = &g.recs[g.start[k]];
                sl_kentry *en = sl__ktable_find(tab, vals[0].key, vals[0].key_len, g.hash[k]);
                rc = update_one(st, tab, &e, en, vals[0].key, vals[0].key_len, g.hash[k], vals,
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
            rc = update_one(st, tab, &e, en, en->key, en->key_len, en->hash, NULL, 0);
        }
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
            uint64_t h = sl__hash(rec->key, rec->key_len);
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
            rc = state_store(st, tab, en, rec->key, rec->key_len, h, &state, true);
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
    if (rc == SL_OK && st->s->kind == SL_OP_UPDATE_STATE) {
        rc = sl__ktable_to_part(tab, &st->out->parts[r], st->t);
    }
    sl__arena_free(&scratch);
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
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "'%s' failed at batch %" PRId64 ": %s", s->name, t, sl_err2str(rc));
        sl__dataset_release(st.out);
        return rc;
    }
    *out = st.out;
    return SL_OK;
}

/* ==== Which nodes are checkpointed ==== */

/* Marks in need[id] the streams some output reads (directly or not). */
static bool *needed_streams(sl_context *ctx)
{
    bool *need = calloc((size_t)ctx->nstreams + 1, sizeof(bool));
    sl_stream **order = calloc((size_t)ctx->nstreams + 1, sizeof(*order));
    if (!need || !order) {
        free(need);
        free(order);
        return NULL;
    }
    int n = 0;
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        order[n++] = s;
    }
    for (sl_output *o = ctx->outputs; o; o = o->next) {
        need[o->stream->id] = true;
    }
    for (int i = n - 1; i >= 0; i--) { /* consumers come after their parents */
        if (need[order[i]->id]) {
            for (int k = 0; k < order[i]->nparents; k++) {
                need[order[i]->parents[k]->id] = true;
            }
        }
    }
    free(order);
    return need;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

int64_t sl__state_interval(sl_context *ctx)
{
    bool *need = needed_streams(ctx);
    int64_t lcm = 0;
    for (sl_stream *s = ctx->streams; s && need; s = s->next) {
        if (need[s->id] && sl__stream_is_stateful(s)) {
            lcm = lcm ? lcm / gcd64(lcm, s->slide) * s->slide : s->slide;
        }
    }
    free(need);
    if (!lcm) {
        return 0;
    }
    int64_t k = (STATE_EVERY_MS + lcm - 1) / lcm;
    return (k < 1 ? 1 : k) * lcm;
}

/* ==== State files ==== */

typedef struct wbuf {
    char *p;
    size_t len, cap;
    bool failed;
} wbuf;

static void wb_add(wbuf *b, const void *p, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) {
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
}

static void wb_u32(wbuf *b, uint32_t v)
{
    wb_add(b, &v, sizeof(v));
}

static void wb_u64(wbuf *b, uint64_t v)
{
    wb_add(b, &v, sizeof(v));
}

/* One record: key, bytes, typed value and time. */
static void wb_record(wbuf *b, const sl_record *r)
{
    uint64_t num;
    memcpy(&num, &r->num, sizeof(num));
    wb_u32(b, r->key_len);
    wb_u32(b, r->value_len);
    wb_u32(b, r->num_type);
    wb_u64(b, num);
    wb_u64(b, (uint64_t)r->ts);
    wb_add(b, r->key, r->key_len);
    wb_add(b, r->value, r->value_len);
}

#define KIND_TABLE   1u
#define KIND_DATASET 2u

/* The body of a state file: node id, kind, time, then per partition its records. */
static void wb_header(wbuf *b, const sl_stream *s, uint32_t kind, int64_t t, size_t nparts)
{
    wb_u32(b, (uint32_t)s->id);
    wb_u32(b, kind);
    wb_u64(b, (uint64_t)t);
    wb_u64(b, nparts);
}

static void state_dir(const sl_context *ctx, char *buf, size_t size)
{
    snprintf(buf, size, "%s/state", ctx->checkpoint_dir);
}

/* Writes body as file name of the state directory: a framed file (the caller fsyncs the
 * directory once after all of a snapshot's files). */
static int write_file(const char *dir, const char *name, const wbuf *body)
{
    if (body->failed) {
        return SL_ERR_NOMEM;
    }
    int rc =
        sl__framed_write(dir, name, STATE_MAGIC, STATE_VERSION, body->p, body->len, false, NULL);
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "cannot write the state file %s/%s: %s", dir, name, strerror(errno));
    }
    return rc;
}

static int write_table(const char *dir, const char *name, sl_stream *s, int64_t t)
{
    wbuf b = {0};
    sl_kstate *ks = s->kstate;
    wb_header(&b, s, KIND_TABLE, t, ks->nparts);
    for (size_t p = 0; p < ks->nparts; p++) {
        const sl_ktable *tab = &ks->tabs[p];
        wb_u64(&b, tab->live);
        for (size_t i = 0; i < tab->n; i++) {
            if (!tab->e[i].dead) {
                sl_record r;
                sl__kentry_record(&tab->e[i], &r);
                wb_record(&b, &r);
            }
        }
    }
    int rc = write_file(dir, name, &b);
    free(b.p);
    return rc;
}

static int write_dataset(const char *dir, const char *name, sl_stream *s, const sl_dataset *ds)
{
    wbuf b = {0};
    wb_header(&b, s, KIND_DATASET, ds->time, ds->nparts);
    for (size_t p = 0; p < ds->nparts; p++) {
        wb_u64(&b, ds->parts[p].n);
        for (size_t i = 0; i < ds->parts[p].n; i++) {
            wb_record(&b, &ds->parts[p].recs[i]);
        }
    }
    int rc = write_file(dir, name, &b);
    free(b.p);
    return rc;
}

static void table_name(char *buf, size_t size, const sl_stream *s, int64_t t)
{
    snprintf(buf, size, "n%d-%" PRId64 ".tab", s->id, t);
}

static void batch_name(char *buf, size_t size, const sl_stream *s, int64_t t)
{
    snprintf(buf, size, "n%d-b%" PRId64 ".ds", s->id, t);
}

/* Reads and verifies a state file; *body (caller frees) and *len. why on failure. */
static char *read_state_file(const char *path, size_t *len, char *why, size_t whysize)
{
    return sl__framed_read(path, STATE_MAGIC, STATE_VERSION, STATE_MAX_LEN, "state", len, why,
                           whysize);
}

typedef struct rbuf {
    const char *p;
    size_t len, off;
    bool bad;
} rbuf;

static void rb_get(rbuf *b, void *out, size_t n)
{
    if (b->bad || b->len - b->off < n) {
        b->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, b->p + b->off, n);
    b->off += n;
}

static const char *rb_bytes(rbuf *b, size_t n)
{
    if (b->bad || b->len - b->off < n) {
        b->bad = true;
        return NULL;
    }
    const char *p = b->p + b->off;
    b->off += n;
    return p;
}

/* Reads one record; its bytes point into the buffer. */
static bool rb_record(rbuf *b, sl_record *r)
{
    uint32_t klen, vlen, type;
    uint64_t num, ts;
    rb_get(b, &klen, sizeof(klen));
    rb_get(b, &vlen, sizeof(vlen));
    rb_get(b, &type, sizeof(type));
    rb_get(b, &num, sizeof(num));
    rb_get(b, &ts, sizeof(ts));
    *r = (sl_record){
        .key_len = klen, .value_len = vlen, .num_type = (uint8_t)type, .ts = (int64_t)ts};
    memcpy(&r->num, &num, sizeof(num));
    r->key = rb_bytes(b, klen);
    r->value = rb_bytes(b, vlen);
    return !b->bad && type <= SL_NUM_DOUBLE;
}

/* Loads a table file into s's tables; keys go to the partition of their hash, so the
 * number of partitions may have changed. */
static int load_table(sl_stream *s, rbuf *b, char *why, size_t whysize)
{
    uint64_t nparts;
    rb_get(b, &nparts, sizeof(nparts));
    size_t np = sl__stream_partitions(s);
    sl__kstate_free(s->kstate);
    if (!(s->kstate = sl__kstate_new(np))) {
        snprintf(why, whysize, "out of memory");
        return SL_ERR_NOMEM;
    }
    for (uint64_t p = 0; p < nparts && !b->bad; p++) {
        uint64_t n;
        rb_get(b, &n, sizeof(n));
        for (uint64_t i = 0; i < n && !b->bad; i++) {
            sl_record r;
            if (!rb_record(b, &r)) {
                break;
            }
            uint64_t h = sl__hash(r.key, r.key_len);
            sl_ktable *tab = &s->kstate->tabs[sl__hash_bucket(h, np)];
            sl_kentry *e = sl__ktable_find(tab, r.key, r.key_len, h);
            if (e || !(e = sl__ktable_add(tab, r.key, r.key_len, h))) {
                snprintf(why, whysize, e ? "a key is there twice" : "out of memory");
                return SL_ERR_INVAL;
            }
            e->num_type = r.num_type;
            memcpy(&e->num, &r.num, sizeof(e->num));
            e->ts = r.ts;
            if (sl__ktable_set_bytes(tab, e, r.value, r.value_len) != SL_OK) {
                snprintf(why, whysize, "out of memory");
                return SL_ERR_NOMEM;
            }
        }
    }
    if (b->bad || b->off != b->len) {
        snprintf(why, whysize, "malformed content");
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

/* Loads a reduced batch of a window into the cache of the window's parent, partitioned
 * for the parent's current number of partitions. */
static int load_dataset(sl_stream *s, int64_t t, rbuf *b, char *why, size_t whysize)
{
    sl_stream *parent = s->parents[0];
    uint64_t nparts;
    rb_get(b, &nparts, sizeof(nparts));
    size_t np = sl__stream_partitions(parent);
    sl_dataset *ds = sl__dataset_new(np, t);
    sl_recvec *v = calloc(np, sizeof(*v));
    int rc = ds && v ? SL_OK : SL_ERR_NOMEM;
    for (uint64_t p = 0; p < nparts && rc == SL_OK && !b->bad; p++) {
        uint64_t n;
        rb_get(b, &n, sizeof(n));
        for (uint64_t i = 0; i < n && rc == SL_OK && !b->bad; i++) {
            sl_record r;
            if (!rb_record(b, &r)) {
                break;
            }
            size_t q = sl__hash_bucket(sl__hash(r.key, r.key_len), np);
            r.key = sl__arena_dup(&ds->parts[q].arena, r.key, r.key_len);
            r.value = r.value_len ? sl__arena_dup(&ds->parts[q].arena, r.value, r.value_len) : NULL;
            rc = !r.key || (r.value_len && !r.value) ? SL_ERR_NOMEM : sl__recvec_push(&v[q], &r);
        }
    }
    if (rc == SL_OK && (b->bad || b->off != b->len)) {
        rc = SL_ERR_INVAL;
    }
    for (size_t q = 0; ds && v && q < np; q++) {
        ds->parts[q].recs = v[q].recs;
        ds->parts[q].n = v[q].n;
    }
    free(v);
    if (rc != SL_OK) {
        snprintf(why, whysize, rc == SL_ERR_NOMEM ? "out of memory" : "malformed content");
        sl__dataset_release(ds);
        return rc;
    }
    return sl__stream_put(parent, t, ds);
}

/* ==== Snapshots ==== */

typedef struct file_list {
    sl_ckpt_state_file *f;
    size_t n, cap;
    bool failed;
} file_list;

static void files_add(file_list *l, int node, int64_t t, const char *name)
{
    if (l->failed) {
        return;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sl_ckpt_state_file *f = realloc(l->f, cap * sizeof(*f));
        if (!f) {
            l->failed = true;
            return;
        }
        l->f = f;
        l->cap = cap;
    }
    l->f[l->n] = (sl_ckpt_state_file){.node = node, .time = t, .file = strdup(name)};
    if (!l->f[l->n].file) {
        l->failed = true;
        return;
    }
    l->n++;
}

static void files_free(file_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->f[i].file);
    }
    free(l->f);
}

/* The last time of s at or before t: the time its state has when batch t completed. */
static int64_t node_time(const sl_stream *s, int64_t t)
{
    return t - (t - s->ctx->zero_time) % s->slide;
}

/* Deletes the files of snapshots older than the ones kept: tables of older snapshots and
 * reduced batches no kept snapshot's window holds. */
static void delete_old_files(sl_context *ctx, int64_t oldest_kept)
{
    char dir[4096];
    state_dir(ctx, dir, sizeof(dir));
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        int id;
        long long t;
        char kind[8];
        bool old = false;
        sl_stream *s = NULL;
        if (sscanf(de->d_name, "n%d-b%lld.%7s", &id, &t, kind) == 3 && !strcmp(kind, "ds")) {
            for (s = ctx->streams; s && s->id != id; s = s->next) {
            }
            old = !s || t <= node_time(s, oldest_kept) - s->window_len;
        } else if (sscanf(de->d_name, "n%d-%lld.%7s", &id, &t, kind) == 3 && !strcmp(kind, "tab")) {
            for (s = ctx->streams; s && s->id != id; s = s->next) {
            }
            old = !s || t < node_time(s, oldest_kept);
        } else if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp")) {
            old = true; /* left by a crash while writing */
        }
        if (old) {
            char path[4400];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* Writes the state of every stateful node as it is when batch t completed: a node's table
 * at its last time up to t; for a window with an inverse also the reduced batches of its
 * window and those after its last slide (computed now if they were not), so that it
 * continues as if nothing happened. */
static int snapshot(sl_context *ctx, int64_t t)
{
    bool *need = needed_streams(ctx);
    if (!need) {
        return SL_ERR_NOMEM;
    }
    /* Every stateful node must be at its time, or the snapshot would mix times. */
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        if (!need[s->id] || !sl__stream_is_stateful(s)) {
            continue;
        }
        int64_t nt = node_time(s, t);
        int64_t at = s->kstate ? s->kstate->time : 0;
        if (at != nt && !(at == 0 && nt <= ctx->zero_time)) {
            sl_log(SL_LOG_DEBUG, "no state snapshot at %" PRId64 ": '%s' is at %" PRId64, t,
                   s->name, at);
            free(need);
            return SL_OK;
        }
    }
    char dir[4096], name[128];
    state_dir(ctx, dir, sizeof(dir));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        sl_log(SL_LOG_ERROR, "cannot create the state directory %s: %s", dir, strerror(errno));
        free(need);
        return SL_ERR_IO;
    }
    file_list files = {0};
    int rc = SL_OK;
    for (sl_stream *s = ctx->streams; s && rc == SL_OK; s = s->next) {
        if (!need[s->id] || !sl__stream_is_stateful(s) || !s->kstate || !s->kstate->time) {
            continue; /* no state yet */
        }
        int64_t nt = s->kstate->time;
        table_name(name, sizeof(name), s, nt);
        rc = write_table(dir, name, s, nt);
        files_add(&files, s->id, nt, name);
        if (s->kind != SL_OP_WINDOW_INV) {
            continue;
        }
        /* The reduced batches in (nt - window, t]; each written once. */
        sl_stream *parent = s->parents[0];
        for (int64_t tt = nt + parent->slide; tt <= t && rc == SL_OK; tt += parent->slide) {
            sl_dataset *ds;
            rc = sl__stream_compute(parent, tt, &ds);
        }
        for (size_t i = 0; i < parent->ngen && rc == SL_OK; i++) {
            int64_t tt = parent->gen[i].time;
            if (tt <= nt - s->window_len || tt > t) {
                continue;
            }
            batch_name(name, sizeof(name), s, tt);
            if (tt > s->kstate->saved_upto) {
                rc = write_dataset(dir, name, s, parent->gen[i].ds);
            }
            files_add(&files, s->id, tt, name);
        }
        if (rc == SL_OK) {
            s->kstate->saved_upto = t;
        }
    }
    free(need);
    if (rc == SL_OK && files.failed) {
        rc = SL_ERR_NOMEM;
    }
    if (rc == SL_OK && sl__fsync_dir(dir) != 0) {
        rc = SL_ERR_IO;
    }
    if (rc == SL_OK) {
        rc = sl__ckpt_set_state(ctx->ckpt, t, files.f, files.n);
    }
    files_free(&files);
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR,
               "state snapshot at batch %" PRId64 " failed (%s): the previous "
               "one stays in use",
               t, sl_err2str(rc));
        return rc;
    }
    if (ctx->nstate_gens == STATE_KEEP) {
        memmove(ctx->state_gens, ctx->state_gens + 1, (STATE_KEEP - 1) * sizeof(int64_t));
        ctx->nstate_gens--;
    }
    ctx->state_gens[ctx->nstate_gens++] = t;
    delete_old_files(ctx, ctx->state_gens[0]);
    return SL_OK;
}

int sl__state_checkpoint(sl_context *ctx, int64_t t)
{
    if (!ctx->ckpt) {
        return SL_OK;
    }
    int64_t every = sl__state_interval(ctx);
    if (!every || (t - ctx->zero_time) % every != 0) {
        return SL_OK;
    }
    return snapshot(ctx, t);
}

void sl__state_final_checkpoint(sl_context *ctx)
{
    sl_checkpoint *ck = ctx->ckpt;
    if (!ck) {
        return;
    }
    int64_t every = sl__state_interval(ctx);
    pthread_mutex_lock(&ck->lock);
    int64_t t = ck->last_completed;
    bool due = every && t > ck->state_time;
    pthread_mutex_unlock(&ck->lock);
    if (!due) {
        return;
    }
    if (snapshot(ctx, t) == SL_OK) {
        sl__ckpt_write(ck);
    }
}

int sl__state_restore(sl_context *ctx, char *errstr, size_t errsize)
{
    sl_checkpoint *ck = ctx->ckpt;
    if (!ck) {
        return SL_OK;
    }
    ck->keep_done = sl__state_interval(ctx) > 0;
    char dir[4096];
    state_dir(ctx, dir, sizeof(dir));
    int rc = SL_OK;
    for (size_t i = 0; i < ck->nstate_files && rc == SL_OK; i++) {
        const sl_ckpt_state_file *f = &ck->state_files[i];
        sl_stream *s = ctx->streams;
        while (s && s->id != f->node) {
            s = s->next;
        }
        char path[4400], why[256] = "";
        snprintf(path, sizeof(path), "%s/%s", dir, f->file);
        size_t len = 0;
        char *body = NULL;
        if (!s || !sl__stream_is_stateful(s)) {
            snprintf(why, sizeof(why), "it names stream %d, which keeps no state", f->node);
        } else {
            body = read_state_file(path, &len, why, sizeof(why));
        }
        if (body) {
            rbuf b = {.p = body, .len = len};
            uint32_t id, kind;
            uint64_t t;
            rb_get(&b, &id, sizeof(id));
            rb_get(&b, &kind, sizeof(kind));
            rb_get(&b, &t, sizeof(t));
            if (b.bad || (int)id != s->id || (int64_t)t != f->time) {
                snprintf(why, sizeof(why), "it is not the file the checkpoint names");
            } else if (kind == KIND_TABLE) {
                rc = load_table(s, &b, why, sizeof(why));
                if (rc == SL_OK) {
                    s->kstate->time = f->time;
                    s->kstate->saved_upto = ck->state_time;
                }
            } else if (kind == KIND_DATASET) {
                rc = load_dataset(s, f->time, &b, why, sizeof(why));
            } else {
                snprintf(why, sizeof(why), "unknown content");
            }
            free(body);
        }
        if (why[0]) {
            snprintf(errstr, errsize,
                     "cannot restore the state of '%s' from %s: %s (the checkpoint cannot be "
                     "used: to start fresh, move or delete %s)",
                     s ? s->name : "?", path, why, ctx->checkpoint_dir);
            return rc != SL_OK ? rc : SL_ERR_INVAL;
        }
    }
    if (ck->state_time) {
        ctx->state_gens[0] = ck->state_time;
        ctx->nstate_gens = 1;
        delete_old_files(ctx, ck->state_time);
        sl_log(SL_LOG_INFO,
               "state restored as of batch %" PRId64 "; %zu completed batches after it run "
               "again for their state",
               ck->state_time, ck->ndone);
    } else if (ck->ndone) {
        sl_log(SL_LOG_INFO,
               "no state snapshot yet: the %zu completed batches run again for their state",
               ck->ndone);
    }
    return SL_OK;
}

int sl__state_replay(sl_context *ctx, int64_t t)
{
    bool *need = needed_streams(ctx);
    if (!need) {
        return SL_ERR_NOMEM;
    }
    int rc = SL_OK;
    for (sl_stream *s = ctx->streams; s && rc == SL_OK; s = s->next) {
        if (need[s->id] && sl__stream_is_stateful(s) && sl__stream_valid_time(s, t) &&
            (!s->kstate || s->kstate->time < t)) {
            sl_dataset *ds;
            rc = sl__stream_compute(s, t, &ds);
        }
    }
    free(need);
    return rc;
}

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
        if (s->kind == SL_OP_WINDOW_INV) {
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

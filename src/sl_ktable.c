/* sl_ktable.c -- the key table: a hash table per partition from key bytes to a typed value and
 * bytes, the keyed state of update_state_by_key, map_with_state and windows with an inverse.
 *
 * Open addressing (linear probing over slots that index an entry array); keys and value
 * bytes live in a storage dataset whose bytes never change once written, so that output
 * records may point into it. Removed entries and replaced bytes are garbage until the table
 * is compacted into a new storage. The hash the callers pass is sl__hash_seeded: slots
 * depend on a per-process seed, so keys sent over the network cannot be made to collide. */
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

#define KT_MIN_SLOTS   64
#define KT_STORE_CHUNK (256 * 1024)

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
        if (!t->e[i].dead) {
            sl__slots_put(slots, mask, t->e[i].hash, i);
        }
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
    sl_kentry *e = &t->e[t->n];
    memset(e, 0, sizeof(*e));
    e->hash = h;
    e->key = k;
    e->key_len = len;
    sl__slots_put(t->slots, t->mask, h, t->n);
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
    ks->input = (sl_stream_time){INT64_MIN, INT64_MIN, 0};
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
    free(ks->stime);
    free(ks);
}

sl_stream_time *sl__kstate_stime(sl_kstate *ks, int32_t task)
{
    size_t i = task < 0 ? 0 : (size_t)task + 1;
    if (i >= ks->nstime) {
        size_t n = i + 1 > 2 * ks->nstime ? i + 1 : 2 * ks->nstime;
        sl_stream_time *st = realloc(ks->stime, n * sizeof(*st));
        if (!st) {
            return NULL;
        }
        for (size_t k = ks->nstime; k < n; k++) {
            st[k] = (sl_stream_time){INT64_MIN, INT64_MIN, 0};
        }
        ks->stime = st;
        ks->nstime = n;
    }
    return &ks->stime[i];
}

int sl__kstate_stime_rebuild(sl_kstate *ks, int32_t task)
{
    for (size_t p = 0; p < ks->nparts; p++) {
        const sl_ktable *t = &ks->tabs[p];
        for (size_t i = 0; i < t->n; i++) {
            const sl_kentry *e = &t->e[i];
            if (e->dead || (task != -2 && e->task != (uint16_t)(task + 1))) {
                continue;
            }
            sl_stream_time *st = sl__kstate_stime(ks, (int32_t)e->task - 1);
            if (!st) {
                return SL_ERR_NOMEM;
            }
            if (e->ts > st->after) {
                st->before = st->after = e->ts;
            }
        }
    }
    if (task == -2) {
        /* the input's stream time: the lowest of the tasks' (a lower bound of what it was) */
        int64_t low = INT64_MAX;
        for (size_t i = 0; i < ks->nstime; i++) {
            if (ks->stime[i].after != INT64_MIN && ks->stime[i].after < low) {
                low = ks->stime[i].after;
            }
        }
        if (low != INT64_MAX) {
            ks->input.before = ks->input.after = low;
        }
    }
    return SL_OK;
}

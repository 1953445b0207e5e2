/* sl_window_state.c -- reduce_by_key_and_window with each key's window kept as keyed state:
 * one partial result per slide for the last window length, so that the window moves with
 * its key's partition when the state has a changelog (sl_changelog.c), where the plain form
 * recomputes from batches only the instance that read them holds.
 *
 * Built as: the batches reduced by key (without the input a restored state holds already);
 * a window of one slide gathering them; an update_state_by_key whose state per key is its
 * slides' partial results (bytes) and whose typed value is their reduction, the window's
 * result; the state's bytes cleared from the output. Keys with nothing left in the window lose
 * their state. Windows end at the same wall-clock times on every instance (sl_context.c aligns
 * batch times), so a restored key's slides line up with the new owner's.
 *
 * On event time (sl_stream_reduce_by_key_and_event_window) the state per key is its open
 * panes (one partial result per slide of the records' own times), windows end on multiples
 * of the slide since the epoch, and a window is emitted once, when the watermark of its
 * key's task (the task's highest record time less the allowed disorder: Kafka Streams'
 * stream time and grace) passes its end. Everything follows from the partition's records, so
 * a replay, a restored checkpoint or a new owner with the changelog emit the same windows. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

typedef struct wspec {
    sl_reduce_fn fn;
    void *opaque;
    int64_t length;
    int64_t slide;    /* event time: the windows' step (the panes' width) */
    int64_t disorder; /* event time: how far behind its task's highest time a record may be */
    int64_t lateness; /* event time: how long an emitted window still takes late records */
    sl_stream *node;  /* the update_state_by_key node keeping the windows */
} wspec;

/* Before the per-batch reduce: a record that no longer counts for the node's state is left
 * out (its task was dropped, or the restored state holds it), judged per record: the
 * batches of a slide are reduced together when the slide ends. */
static int counted(const sl_record *in, void *opaque)
{
    const wspec *w = opaque;
    return !w->node || sl__changelog_counts(w->node, in);
}

/* A slide's partial result, as stored in the state's bytes. */
typedef struct slot {
    int64_t end; /* the batch time that closed the slide */
    int64_t bits;
    int64_t type;
} slot;

static sl_record slot_record(const slot *s, const char *key, uint32_t len)
{
    sl_record r = {.key = key, .key_len = len, .num_type = (uint8_t)s->type, .ts = s->end};
    memcpy(&r.num, &s->bits, sizeof(r.num));
    return r;
}

static slot record_slot(const sl_record *r, int64_t end)
{
    slot s = {.end = end, .type = r->num_type};
    memcpy(&s.bits, &r->num, sizeof(s.bits));
    return s;
}

static int window_update(const char *key, uint32_t len, const sl_record *vals, size_t n,
                         sl_state *state, sl_emitter *e, void *opaque)
{
    const wspec *w = opaque;
    int64_t t = sl_emitter_batch_time(e);
    size_t had = state->exists ? state->len / sizeof(slot) : 0;
    slot *slots = sl_emitter_alloc(e, (had + 1) * sizeof(slot));
    if (!slots) {
        return SL_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < had; i++) {
        slot s;
        memcpy(&s, state->bytes + i * sizeof(slot), sizeof(s));
        if (s.end > t - w->length) {
            slots[k++] = s; /* still in the window */
        }
    }
    if (n > 0) {
        sl_record acc = vals[0];
        for (size_t i = 1; i < n; i++) {
            int rc = w->fn(&acc, &vals[i], e, w->opaque);
            if (rc < 0) {
                return rc;
            }
        }
        slots[k++] = record_slot(&acc, t);
    }
    if (k == 0) {
        state->exists = false;
        return SL_OK;
    }
    sl_record acc = slot_record(&slots[0], key, len);
    for (size_t i = 1; i < k; i++) {
        sl_record r = slot_record(&slots[i], key, len);
        int rc = w->fn(&acc, &r, e, w->opaque);
        if (rc < 0) {
            return rc;
        }
    }
    state->exists = true;
    state->num_type = acc.num_type;
    memcpy(&state->num, &acc.num, sizeof(state->num));
    state->bytes = (const char *)slots;
    state->len = (uint32_t)(k * sizeof(slot));
    return SL_OK;
}

/* The output: the key and the window's result, without the state's bytes. */
static int clear_value(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    out->value = NULL;
    out->value_len = 0;
    return SL_OK;
}

/* The update_state_by_key node that keeps the windows of w (which it owns; freed here when
 * the node cannot be made). */
static sl_stream *windows_node(sl_stream *parent, sl_update_state_fn fn, wspec *w, int partitions)
{
    sl_stream *k = parent ? sl_stream_update_state_by_key(parent, fn, w, partitions) : NULL;
    if (!k) {
        free(w);
        return NULL;
    }
    k->owned = w;
    w->node = k;
    snprintf(k->name, sizeof(k->name), "reduce_by_key_and_window-%d", k->id);
    return k;
}

sl_stream *sl_stream_reduce_by_key_and_window_state(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                                    int64_t length_ms, int64_t slide_ms,
                                                    int partitions)
{
    if (!sl__rbkw_args(s, fn, partitions, length_ms, &slide_ms) ||
        !sl__state_check_dir(s->ctx, "reduce_by_key_and_window with keyed state")) {
        return NULL;
    }
    if (length_ms % slide_ms != 0) {
        sl_log(SL_LOG_ERROR,
               "reduce_by_key_and_window of '%s' with keyed state: the length (%" PRId64
               " ms) must be a multiple of the slide (%" PRId64 " ms): the state keeps one "
               "result per slide",
               s->name, length_ms, slide_ms);
        return NULL;
    }
    wspec *w = calloc(1, sizeof(*w));
    if (!w) {
        return NULL;
    }
    *w = (wspec){.fn = fn, .opaque = opaque, .length = length_ms};
    sl_stream *f = sl_stream_filter(s, counted, w);
    sl_stream *r = f ? sl__stream_reduce_node(f, fn, opaque, partitions, SL_RBK_TASK) : NULL;
    if (r) {
        r->remember_parents = slide_ms;
    }
    sl_stream *g = r && slide_ms > r->slide ? sl_stream_window(r, slide_ms, slide_ms) : r;
    sl_stream *k = windows_node(g, window_update, w, partitions);
    if (!k) {
        return NULL;
    }
    k->state_windows = true;
    return sl_stream_map_values(k, clear_value, NULL);
}

/* ==== Event time ==== */

/* a - b, saturated at INT64_MIN (no time yet). */
static int64_t minus(int64_t a, int64_t b)
{
    return a < INT64_MIN + b ? INT64_MIN : a - b;
}

/* The start of the pane of time t: a multiple of slide, rounded down for negative times. */
static int64_t pane_of(int64_t t, int64_t slide)
{
    int64_t q = t / slide;
    return (t % slide < 0 ? q - 1 : q) * slide;
}

/* Adds v into the panes (sorted by start; room for one more): returns how many there are. */
static int pane_add(const wspec *w, slot *panes, size_t *n, int64_t start, const sl_record *v,
                    sl_emitter *e)
{
    size_t i = 0;
    while (i < *n && panes[i].end < start) {
        i++;
    }
    if (i < *n && panes[i].end == start) {
        sl_record acc = slot_record(&panes[i], NULL, 0);
        int rc = w->fn(&acc, v, e, w->opaque);
        if (rc < 0) {
            return rc;
        }
        panes[i] = record_slot(&acc, start);
        return SL_OK;
    }
    memmove(&panes[i + 1], &panes[i], (*n - i) * sizeof(*panes));
    panes[i] = record_slot(v, start);
    (*n)++;
    return SL_OK;
}

/* Emits the window of key ending at end from the panes in it (at least one). */
static int window_emit(const wspec *w, const slot *panes, size_t n, int64_t end, const char *key,
                       uint32_t len, sl_emitter *e)
{
    sl_record acc = {0};
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (panes[i].end < end - w->length || panes[i].end >= end) {
            continue; /* slot.end holds the pane's start here */
        }
        sl_record r = slot_record(&panes[i], NULL, 0);
        int rc = any ? w->fn(&acc, &r, e, w->opaque) : SL_OK;
        if (rc < 0) {
            return rc;
        }
        if (!any) {
            acc = r;
            any = true;
        }
    }
    if (!any) {
        return SL_OK;
    }
    char *k = len ? sl__arena_dup(e->arena, key, len) : NULL;
    if (len && !k) {
        return SL_ERR_NOMEM;
    }
    acc.key = k ? k : "";
    acc.key_len = len;
    acc.value = NULL;
    acc.value_len = 0;
    acc.ts = end;
    acc.meta = NULL;
    return sl_emit(e, &acc);
}

static int event_update(const char *key, uint32_t len, const sl_record *vals, size_t n,
                        sl_state *state, sl_emitter *e, void *opaque)
{
    const wspec *w = opaque;
    int64_t before = minus(e->stime->before, w->disorder);
    int64_t after = minus(e->stime->after, w->disorder);
    size_t had = state->exists ? state->len / sizeof(slot) : 0;
    slot *panes = sl_emitter_alloc(e, (had + n + 1) * sizeof(slot));
    if (!panes) {
        return SL_ERR_NOMEM;
    }
    if (had) {
        memcpy(panes, state->bytes, had * sizeof(slot));
    }
    size_t k = had;
    int64_t dirty_lo = INT64_MAX, dirty_hi = INT64_MIN; /* panes of emitted windows updated */
    for (size_t i = 0; i < n; i++) {
        int64_t start = pane_of(vals[i].ts, w->slide);
        bool known = before != INT64_MIN;
        if (known && start + w->length + w->lateness <= before) {
            sl__stream_late(w->node, &vals[i]); /* its windows were emitted and closed */
            continue;
        }
        int rc = pane_add(w, panes, &k, start, &vals[i], e);
        if (rc < 0) {
            return rc;
        }
        if (known && start + w->slide <= before) {
            dirty_lo = start < dirty_lo ? start : dirty_lo;
            dirty_hi = start > dirty_hi ? start : dirty_hi;
        }
    }
    /* Windows emitted already that a late record (within the allowed lateness) changed:
     * emitted again, updated. */
    if (dirty_lo <= dirty_hi) {
        int64_t end = dirty_lo + w->slide;
        int64_t open = pane_of(before - w->lateness, w->slide) + w->slide; /* still taking */
        int64_t last = dirty_hi + w->length < before ? dirty_hi + w->length : before;
        for (end = end > open ? end : open; end <= last; end += w->slide) {
            int rc = window_emit(w, panes, k, end, key, len, e);
            if (rc < 0) {
                return rc;
            }
        }
    }
    /* The windows whose end the watermark passed in this batch, oldest first: those that
     * hold a pane end a slide after its start, within the window's length (slot.end holds the
     * pane's start). Empty stretches are jumped over. */
    if (after != INT64_MIN && k > 0) {
        int64_t end = panes[0].end + w->slide;
        if (before != INT64_MIN && end <= before) {
            end = pane_of(before, w->slide) + w->slide;
        }
        size_t i = 0;
        while (end <= after) {
            while (i < k && panes[i].end < end - w->length) {
                i++;
            }
            if (i == k) {
                break;
            }
            if (panes[i].end >= end) {
                end = panes[i].end + w->slide;
                continue;
            }
            int rc = window_emit(w, panes, k, end, key, len, e);
            if (rc < 0) {
                return rc;
            }
            end += w->slide;
        }
    }
    /* Panes whose last window was emitted and closed go. */
    size_t kept = 0;
    for (size_t i = 0; i < k; i++) {
        if (after == INT64_MIN || panes[i].end + w->length + w->lateness > after) {
            panes[kept++] = panes[i];
        }
    }
    state->exists = kept > 0;
    state->num_type = SL_NUM_NONE;
    state->bytes = kept ? (const char *)panes : NULL;
    state->len = (uint32_t)(kept * sizeof(slot));
    return SL_OK;
}

sl_stream *sl_stream_reduce_by_key_and_event_window(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                                    const sl_event_window *ew, int partitions)
{
    if (!s || !ew) {
        return NULL;
    }
    int64_t slide = ew->slide_ms > 0 ? ew->slide_ms : ew->length_ms;
    const char *bad =
        !fn                     ? "no reduce function"
        : partitions < 0        ? "partitions must not be negative"
        : ew->length_ms <= 0    ? "the length must be positive"
        : ew->length_ms % slide ? "the length must be a multiple of the slide"
        : ew->max_out_of_orderness_ms < 0 || ew->allowed_lateness_ms < 0 || ew->idle_timeout_ms < 0
            ? "the disorder, the lateness and the idle timeout must not be negative"
            : NULL;
    if (bad) {
        sl_log(SL_LOG_ERROR, "reduce_by_key_and_window on event time of '%s': %s", s->name, bad);
        return NULL;
    }
    if (!sl__state_check_dir(s->ctx, "reduce_by_key_and_window on event time")) {
        return NULL;
    }
    wspec *w = calloc(1, sizeof(*w));
    if (!w) {
        return NULL;
    }
    *w = (wspec){.fn = fn,
                 .opaque = opaque,
                 .length = ew->length_ms,
                 .slide = slide,
                 .disorder = ew->max_out_of_orderness_ms,
                 .lateness = ew->allowed_lateness_ms};
    sl_stream *k = windows_node(sl_stream_filter(s, counted, w), event_update, w, partitions);
    if (k) {
        k->event_time = true;
        k->state_emits = true;
        k->event_window = ew->length_ms;
        k->disorder = ew->max_out_of_orderness_ms;
        k->idle_timeout = ew->idle_timeout_ms;
        atomic_store(&k->watermark, INT64_MIN);
        atomic_store(&k->stream_time, INT64_MIN);
    }
    return k;
}

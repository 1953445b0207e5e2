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
    int64_t offset;   /* event time: windows start on multiples of the slide plus this */
    sl_map_fn lift;   /* event time: makes each record taken a partial result; NULL: none */
    void *lift_opaque;
    sl_stream *node; /* the update_state_by_key node keeping the windows */
    bool bytes;      /* keep each slide's or pane's value bytes (partial results of
                      * sl_reducers.h), and give the window's as the output's value */
} wspec;

/* Before the per-batch reduce: a record that no longer counts for the node's state is left
 * out (its task was dropped, or the restored state holds it), judged per record: the
 * batches of a slide are reduced together when the slide ends. */
static int counted(const sl_record *in, void *opaque)
{
    const wspec *w = opaque;
    return !w->node || sl__changelog_counts(w->node, in);
}

/* A slide's partial result. In the state's bytes: end, bits and type as three int64, the
 * type's bits from 8 on holding the length of the value bytes that follow (0 when they are
 * not kept, which is the layout from before bytes were kept: old states read the same). */
typedef struct slot {
    int64_t end; /* the batch time that closed the slide */
    int64_t bits;
    int64_t type;
    const char *bytes; /* valid for the call: state, input or e's memory; NULL when len is 0 */
    uint32_t len;
} slot;

#define SLOT_HEAD (3 * sizeof(int64_t))

static sl_record slot_record(const slot *s, const char *key, uint32_t len)
{
    sl_record r = {.key = key,
                   .key_len = len,
                   .num_type = (uint8_t)s->type,
                   .ts = s->end,
                   .value = s->bytes,
                   .value_len = s->len};
    memcpy(&r.num, &s->bits, sizeof(r.num));
    return r;
}

static slot record_slot(const wspec *w, const sl_record *r, int64_t end)
{
    slot s = {.end = end, .type = r->num_type};
    memcpy(&s.bits, &r->num, sizeof(s.bits));
    if (w->bytes && r->value && r->value_len) {
        s.bytes = r->value;
        s.len = r->value_len;
    }
    return s;
}

/* The slots stored in a state's bytes into out (room for len / SLOT_HEAD of them); returns
 * how many there are. */
static size_t slots_decode(const char *p, uint32_t len, slot *out)
{
    size_t k = 0, off = 0;
    while (off + SLOT_HEAD <= len) {
        slot s = {0};
        int64_t t;
        memcpy(&s.end, p + off, 8);
        memcpy(&s.bits, p + off + 8, 8);
        memcpy(&t, p + off + 16, 8);
        off += SLOT_HEAD;
        uint64_t n = (uint64_t)t >> 8;
        if (n > len - off) {
            break; /* cut short: what came before is kept */
        }
        s.type = t & 0xff;
        s.bytes = n ? p + off : NULL;
        s.len = (uint32_t)n;
        off += n;
        out[k++] = s;
    }
    return k;
}

/* Sets the state's bytes to the k slots, in e's memory (the engine copies them). */
static int slots_encode(const slot *slots, size_t k, sl_emitter *e, sl_state *state)
{
    size_t size = 0;
    for (size_t i = 0; i < k; i++) {
        size += SLOT_HEAD + slots[i].len;
    }
    if (size > UINT32_MAX) {
        sl_reject_reason("the window's state of a key is over 4 GiB");
        return SL_ERR_RECORD;
    }
    char *p = size ? sl_emitter_alloc(e, size) : NULL;
    if (size && !p) {
        return SL_ERR_NOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < k; i++) {
        int64_t t = (int64_t)(((uint64_t)slots[i].len << 8) | ((uint64_t)slots[i].type & 0xff));
        memcpy(p + off, &slots[i].end, 8);
        memcpy(p + off + 8, &slots[i].bits, 8);
        memcpy(p + off + 16, &t, 8);
        if (slots[i].len) {
            memcpy(p + off + SLOT_HEAD, slots[i].bytes, slots[i].len);
        }
        off += SLOT_HEAD + slots[i].len;
    }
    state->bytes = p;
    state->len = (uint32_t)size;
    return SL_OK;
}

static int window_update(const char *key, uint32_t len, const sl_record *vals, size_t n,
                         sl_state *state, sl_emitter *e, void *opaque)
{
    const wspec *w = opaque;
    int64_t t = sl_emitter_batch_time(e);
    size_t had = state->exists ? state->len / SLOT_HEAD : 0;
    slot *slots = sl_emitter_alloc(e, (had + 1) * sizeof(slot));
    if (!slots) {
        return SL_ERR_NOMEM;
    }
    had = had ? slots_decode(state->bytes, state->len, slots) : 0;
    size_t k = 0;
    for (size_t i = 0; i < had; i++) {
        if (slots[i].end > t - w->length) {
            slots[k++] = slots[i]; /* still in the window */
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
        slots[k++] = record_slot(w, &acc, t);
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
    return slots_encode(slots, k, e, state);
}

/* The output: the key and the window's result, without the state's bytes. */
static int clear_value(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    out->value = NULL;
    out->value_len = 0;
    return SL_OK;
}

/* The output with bytes kept: the key and the window's result, its slides (the state's bytes)
 * reduced again for the value bytes the typed value alone does not hold. */
static int window_result(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    const wspec *w = opaque;
    size_t cap = in->value ? in->value_len / SLOT_HEAD : 0;
    slot *slots = cap ? sl_emitter_alloc(e, cap * sizeof(slot)) : NULL;
    if (cap && !slots) {
        return SL_ERR_NOMEM;
    }
    size_t k = cap ? slots_decode(in->value, in->value_len, slots) : 0;
    out->value = NULL;
    out->value_len = 0;
    if (k == 0) {
        return SL_OK;
    }
    sl_record acc = slot_record(&slots[0], in->key, in->key_len);
    for (size_t i = 1; i < k; i++) {
        sl_record r = slot_record(&slots[i], in->key, in->key_len);
        int rc = w->fn(&acc, &r, e, w->opaque);
        if (rc < 0) {
            return rc;
        }
    }
    out->num_type = acc.num_type;
    out->num = acc.num;
    out->value = acc.value;
    out->value_len = acc.value_len;
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

static sl_stream *keyed_windows(sl_stream *s, sl_reduce_fn fn, void *opaque, int64_t length_ms,
                                int64_t slide_ms, int partitions, bool bytes)
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
    *w = (wspec){.fn = fn, .opaque = opaque, .length = length_ms, .bytes = bytes};
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
    return bytes ? sl_stream_map_values(k, window_result, w)
                 : sl_stream_map_values(k, clear_value, NULL);
}

sl_stream *sl_stream_reduce_by_key_and_window_state(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                                    int64_t length_ms, int64_t slide_ms,
                                                    int partitions)
{
    return keyed_windows(s, fn, opaque, length_ms, slide_ms, partitions, false);
}

sl_stream *sl__stream_rbkw_state_bytes(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                       int64_t length_ms, int64_t slide_ms, int partitions)
{
    return keyed_windows(s, fn, opaque, length_ms, slide_ms, partitions, true);
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

/* The start of w's pane of time t: panes start on multiples of the slide plus the offset. */
static int64_t pane_at(const wspec *w, int64_t t)
{
    return t == INT64_MIN ? t : pane_of(t - w->offset, w->slide) + w->offset;
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
        panes[i] = record_slot(w, &acc, start);
        return SL_OK;
    }
    memmove(&panes[i + 1], &panes[i], (*n - i) * sizeof(*panes));
    panes[i] = record_slot(w, v, start);
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
    if (w->bytes && acc.value_len) {
        /* the bytes may be the state's, which live for the call only */
        if (!(acc.value = sl_emitter_copy(e, acc.value, acc.value_len))) {
            return SL_ERR_NOMEM;
        }
    } else {
        acc.value = NULL;
        acc.value_len = 0;
    }
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
    size_t had = state->exists ? state->len / SLOT_HEAD : 0;
    slot *panes = sl_emitter_alloc(e, (had + n + 1) * sizeof(slot));
    if (!panes) {
        return SL_ERR_NOMEM;
    }
    had = had ? slots_decode(state->bytes, state->len, panes) : 0;
    size_t k = had;
    int64_t dirty_lo = INT64_MAX, dirty_hi = INT64_MIN; /* panes of emitted windows updated */
    for (size_t i = 0; i < n; i++) {
        int64_t start = pane_at(w, vals[i].ts);
        bool known = before != INT64_MIN;
        if (known && start + w->length + w->lateness <= before) {
            sl__stream_late(w->node, sl_emitter_batch_time(e),
                            &vals[i]); /* its windows were emitted and closed */
            continue;
        }
        sl_record buf;
        const sl_record *v;
        int rc = sl__window_lift(w->node, w->lift, w->lift_opaque, &vals[i], &buf, &v, e);
        if (rc == SL_ERR_RECORD) {
            continue;
        }
        if (rc == SL_OK) {
            rc = pane_add(w, panes, &k, start, v, e);
        }
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
        int64_t open = pane_at(w, before - w->lateness) + w->slide; /* still taking */
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
            end = pane_at(w, before) + w->slide;
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
    return slots_encode(panes, kept, e, state);
}

int sl__window_lift(sl_stream *node, sl_map_fn lift, void *lift_opaque, const sl_record *v,
                    sl_record *buf, const sl_record **out, sl_emitter *e)
{
    *out = v;
    if (!lift) {
        return SL_OK;
    }
    *buf = *v;
    int rc = lift(v, buf, e, lift_opaque);
    if (rc == SL_ERR_RECORD) {
        sl__record_failed(node, v, rc);
    }
    buf->ts = v->ts;
    *out = buf;
    return rc;
}

static sl_stream *event_windows(sl_stream *s, sl_reduce_fn fn, void *opaque, sl_map_fn lift,
                                void *lift_opaque, const sl_event_window *ew, int partitions,
                                bool bytes)
{
    if (!s || !ew) {
        return NULL;
    }
    if (ew->gap_ms) {
        return sl__stream_session_windows(s, fn, opaque, lift, lift_opaque, ew, partitions, bytes);
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
                 .lateness = ew->allowed_lateness_ms,
                 /* in [0, slide): a whole number of slides more aligns the same */
                 .offset = (ew->offset_ms % slide + slide) % slide,
                 .lift = lift,
                 .lift_opaque = lift_opaque,
                 .bytes = bytes};
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

sl_stream *sl_stream_reduce_by_key_and_event_window(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                                    const sl_event_window *ew, int partitions)
{
    return event_windows(s, fn, opaque, NULL, NULL, ew, partitions, false);
}

sl_stream *sl__stream_event_window_bytes(sl_stream *s, sl_reduce_fn fn, void *opaque,
                                         sl_map_fn lift, void *lift_opaque,
                                         const sl_event_window *ew, int partitions)
{
    return event_windows(s, fn, opaque, lift, lift_opaque, ew, partitions, true);
}

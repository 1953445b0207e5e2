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
 * batch times), so a restored key's slides line up with the new owner's. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

typedef struct wspec {
    sl_reduce_fn fn;
    void *opaque;
    int64_t length;
    sl_stream *node; /* the update_state_by_key node keeping the windows */
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
    sl_stream *k = g ? sl_stream_update_state_by_key(g, window_update, w, partitions) : NULL;
    if (!k) {
        free(w);
        return NULL;
    }
    k->owned = w;
    w->node = k;
    k->state_windows = true;
    snprintf(k->name, sizeof(k->name), "reduce_by_key_and_window-%d", k->id);
    return sl_stream_map_values(k, clear_value, NULL);
}

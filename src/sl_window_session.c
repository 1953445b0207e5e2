/* sl_window_session.c -- session windows on event time: reduce_by_key_and_window with a gap
 * instead of a length (sl_event_window.gap_ms).
 *
 * Per key, a record of time ts opens the session [ts, ts + gap), and merges with every open
 * session of the key it overlaps (a late record can bridge two sessions: they become one).
 * A session is emitted once the watermark of the key's task passes its end (its last record
 * + gap), as sl_window_state.c emits the other event-time windows; within allowed_lateness
 * a late record updates it and it is emitted again. A session emitted already whose bounds
 * change (a late record extends it or merges it with another) is retracted first: a
 * tombstone with its old bounds (sl_record_is_tombstone; the record's meta->window_ms gives
 * the sinks the bounds, sl_batch_output_when), so that a sink upserting by key and window
 * bounds keeps no stale row. The tombstones come in the batch of the change, the merged
 * session when the watermark passes its end.
 *
 * The state per key is its open sessions (keyed state: checkpointed, and moved with its
 * partition by a changelog), each with the bounds it was last emitted with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

typedef struct sspec {
    sl_reduce_fn fn;
    void *opaque;
    int64_t gap;
    int64_t disorder;
    int64_t lateness;
    sl_stream *node;
    sl_map_fn lift; /* makes each record taken a partial result; NULL: none */
    void *lift_opaque;
    bool bytes; /* keep each session's value bytes (partial results of sl_reducers.h) */
} sspec;

/* One session of a key. In the state's bytes: start, end, em_start, em_end, bits, and
 * type | len << 8 as six int64, then len value bytes. */
typedef struct session {
    int64_t start, end;       /* [start, end): end is the last record's time + gap */
    int64_t em_start, em_end; /* the bounds it was emitted with; em_end == em_start: not yet */
    int64_t bits;
    int64_t type;
    const char *bytes; /* valid for the call; NULL when len is 0 */
    uint32_t len;
    bool dirty; /* changed in this batch (not stored) */
} session;

#define SESSION_HEAD (6 * sizeof(int64_t))

static bool emitted(const session *s)
{
    return s->em_end != s->em_start;
}

static size_t sessions_decode(const char *p, uint32_t len, session *out)
{
    size_t k = 0, off = 0;
    while (off + SESSION_HEAD <= len) {
        session s = {0};
        int64_t h[6];
        memcpy(h, p + off, sizeof(h));
        off += SESSION_HEAD;
        uint64_t n = (uint64_t)h[5] >> 8;
        if (n > len - off) {
            break; /* cut short: what came before is kept */
        }
        s.start = h[0];
        s.end = h[1];
        s.em_start = h[2];
        s.em_end = h[3];
        s.bits = h[4];
        s.type = h[5] & 0xff;
        s.bytes = n ? p + off : NULL;
        s.len = (uint32_t)n;
        off += n;
        out[k++] = s;
    }
    return k;
}

/* Sets the state's bytes to the k sessions, in e's memory (the engine copies them). */
static int sessions_encode(const session *ss, size_t k, sl_emitter *e, sl_state *state)
{
    size_t size = 0;
    for (size_t i = 0; i < k; i++) {
        size += SESSION_HEAD + ss[i].len;
    }
    if (size > UINT32_MAX) {
        sl_reject_reason("the sessions of a key are over 4 GiB");
        return SL_ERR_RECORD;
    }
    char *p = size ? sl_emitter_alloc(e, size) : NULL;
    if (size && !p) {
        return SL_ERR_NOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < k; i++) {
        int64_t h[6] = {
            ss[i].start,    ss[i].end,
            ss[i].em_start, ss[i].em_end,
            ss[i].bits,     (int64_t)(((uint64_t)ss[i].len << 8) | ((uint64_t)ss[i].type & 0xff))};
        memcpy(p + off, h, sizeof(h));
        if (ss[i].len) {
            memcpy(p + off + SESSION_HEAD, ss[i].bytes, ss[i].len);
        }
        off += SESSION_HEAD + ss[i].len;
    }
    state->exists = k > 0;
    state->num_type = SL_NUM_NONE;
    state->bytes = p;
    state->len = (uint32_t)size;
    return SL_OK;
}

static sl_record session_record(const session *s)
{
    sl_record r = {.num_type = (uint8_t)s->type, .value = s->bytes, .value_len = s->len};
    memcpy(&r.num, &s->bits, sizeof(r.num));
    return r;
}

static void session_set(const sspec *w, session *s, const sl_record *acc)
{
    s->type = acc->num_type;
    memcpy(&s->bits, &acc->num, sizeof(s->bits));
    s->bytes = w->bytes && acc->value_len ? acc->value : NULL;
    s->len = w->bytes && acc->value ? acc->value_len : 0;
}

/* Emits key's window [start, end): the session's result, or a tombstone when s is NULL. */
static int session_emit(const sspec *w, const session *s, int64_t start, int64_t end,
                        const char *key, uint32_t len, sl_emitter *e)
{
    sl_record r = s ? session_record(s) : (sl_record){.num_type = SL_NUM_NONE};
    sl_record_meta *m = sl_emitter_alloc(e, sizeof(*m));
    char *k = len ? sl__arena_dup(e->arena, key, len) : NULL;
    if (!m || (len && !k)) {
        return SL_ERR_NOMEM;
    }
    *m = (sl_record_meta){.partition = -1, .offset = -1, .window_ms = end - start};
    if (w->bytes && r.value_len) {
        /* the bytes may be the state's, which live for the call only */
        if (!(r.value = sl_emitter_copy(e, r.value, r.value_len))) {
            return SL_ERR_NOMEM;
        }
    } else {
        r.value = NULL;
        r.value_len = 0;
    }
    r.key = k ? k : "";
    r.key_len = len;
    r.ts = end;
    r.meta = m;
    return sl_emit(e, &r);
}

/* a - b, saturated at INT64_MIN (no time yet). */
static int64_t minus(int64_t a, int64_t b)
{
    return a < INT64_MIN + b ? INT64_MIN : a - b;
}

/* Adds v (time ts) to the sessions (sorted by start, disjoint; room for one more): the
 * sessions it overlaps and v become one. The bounds of those emitted already go to
 * retired (room for k more). */
static int session_add(const sspec *w, session *ss, size_t *k, const sl_record *v,
                       int64_t (*retired)[2], size_t *nret, sl_emitter *e)
{
    int64_t lo = v->ts, hi = v->ts > INT64_MAX - w->gap ? INT64_MAX : v->ts + w->gap;
    size_t i = 0;
    while (i < *k && ss[i].end <= lo) {
        i++;
    }
    size_t j = i;
    while (j < *k && ss[j].start < hi) {
        j++;
    }
    session m = {.start = lo, .end = hi, .dirty = true};
    sl_record acc = *v;
    for (size_t x = i; x < j; x++) {
        sl_record r = session_record(&ss[x]);
        int rc = w->fn(&acc, &r, e, w->opaque);
        if (rc < 0) {
            return rc;
        }
        m.start = ss[x].start < m.start ? ss[x].start : m.start;
        m.end = ss[x].end > m.end ? ss[x].end : m.end;
        if (emitted(&ss[x])) {
            retired[*nret][0] = ss[x].em_start;
            retired[*nret][1] = ss[x].em_end;
            (*nret)++;
        }
    }
    session_set(w, &m, &acc);
    /* ss[i, j) become m */
    if (j == i) {
        memmove(&ss[i + 1], &ss[i], (*k - i) * sizeof(*ss));
        (*k)++;
    } else if (j > i + 1) {
        memmove(&ss[i + 1], &ss[j], (*k - j) * sizeof(*ss));
        *k -= j - i - 1;
    }
    ss[i] = m;
    return SL_OK;
}

/* Whether v belongs to no open session and its own ends before the watermark less the
 * allowed lateness: too late. */
static bool session_late(const sspec *w, const session *ss, size_t k, const sl_record *v,
                         int64_t before)
{
    if (before == INT64_MIN || v->ts > before - w->gap - w->lateness) {
        return false;
    }
    for (size_t i = 0; i < k; i++) {
        if (ss[i].start < v->ts + w->gap && v->ts < ss[i].end) {
            return false;
        }
    }
    return true;
}

static int session_update(const char *key, uint32_t len, const sl_record *vals, size_t n,
                          sl_state *state, sl_emitter *e, void *opaque)
{
    const sspec *w = opaque;
    int64_t before = minus(e->stime->before, w->disorder);
    int64_t after = minus(e->stime->after, w->disorder);
    size_t had = state->exists ? state->len / SESSION_HEAD : 0;
    session *ss = sl_emitter_alloc(e, (had + n + 1) * sizeof(*ss));
    int64_t(*retired)[2] = sl_emitter_alloc(e, (had + n + 1) * sizeof(*retired));
    if (!ss || !retired) {
        return SL_ERR_NOMEM;
    }
    size_t k = had ? sessions_decode(state->bytes, state->len, ss) : 0, nret = 0;
    for (size_t i = 0; i < n; i++) {
        if (session_late(w, ss, k, &vals[i], before)) {
            sl__stream_late(w->node, sl_emitter_batch_time(e), &vals[i]);
            continue;
        }
        sl_record buf;
        const sl_record *v;
        int rc = sl__window_lift(w->node, w->lift, w->lift_opaque, &vals[i], &buf, &v, e);
        if (rc == SL_ERR_RECORD) {
            continue;
        }
        if (rc == SL_OK) {
            rc = session_add(w, ss, &k, v, retired, &nret, e);
        }
        if (rc < 0) {
            return rc;
        }
    }
    /* A session whose bounds did not change keeps them: emitted again, not retracted. */
    for (size_t r = 0; r < nret; r++) {
        for (size_t i = 0; i < k; i++) {
            if (ss[i].start == retired[r][0] && ss[i].end == retired[r][1]) {
                ss[i].em_start = ss[i].start;
                ss[i].em_end = ss[i].end;
                retired[r][0] = retired[r][1] = 0;
            }
        }
    }
    for (size_t r = 0; r < nret; r++) {
        if (retired[r][0] != retired[r][1]) {
            int rc = session_emit(w, NULL, retired[r][0], retired[r][1], key, len, e);
            if (rc < 0) {
                return rc;
            }
        }
    }
    size_t kept = 0;
    for (size_t i = 0; i < k; i++) {
        session *s = &ss[i];
        bool closed = after != INT64_MIN && s->end <= after;
        if ((emitted(s) && s->dirty) || (!emitted(s) && closed)) {
            int rc = session_emit(w, s, s->start, s->end, key, len, e);
            if (rc < 0) {
                return rc;
            }
            s->em_start = s->start;
            s->em_end = s->end;
        }
        if (!closed || s->end > after - w->lateness) {
            ss[kept++] = *s; /* still open, or still taking late records */
        }
    }
    return sessions_encode(ss, kept, e, state);
}

/* Before the sessions: a record that no longer counts for the node's state is left out (its
 * task was dropped, or the restored state holds it). */
static int counted(const sl_record *in, void *opaque)
{
    const sspec *w = opaque;
    return !w->node || sl__changelog_counts(w->node, in);
}

sl_stream *sl__stream_session_windows(sl_stream *s, sl_reduce_fn fn, void *opaque, sl_map_fn lift,
                                      void *lift_opaque, const sl_event_window *ew, int partitions,
                                      bool bytes)
{
    const char *bad =
        !fn               ? "no reduce function"
        : partitions < 0  ? "partitions must not be negative"
        : ew->gap_ms <= 0 ? "the gap must be positive"
        : ew->length_ms   ? "a session has a gap, not a length"
        : ew->slide_ms    ? "a session has a gap, not a slide"
        : ew->offset_ms   ? "a session has no alignment (no offset)"
        : ew->max_out_of_orderness_ms < 0 || ew->allowed_lateness_ms < 0 || ew->idle_timeout_ms < 0
            ? "the disorder, the lateness and the idle timeout must not be negative"
            : NULL;
    if (bad) {
        sl_log(SL_LOG_ERROR, "session windows of '%s': %s", s->name, bad);
        return NULL;
    }
    if (!sl__state_check_dir(s->ctx, "session windows")) {
        return NULL;
    }
    sspec *w = calloc(1, sizeof(*w));
    if (!w) {
        return NULL;
    }
    *w = (sspec){.fn = fn,
                 .opaque = opaque,
                 .gap = ew->gap_ms,
                 .disorder = ew->max_out_of_orderness_ms,
                 .lateness = ew->allowed_lateness_ms,
                 .lift = lift,
                 .lift_opaque = lift_opaque,
                 .bytes = bytes};
    sl_stream *f = sl_stream_filter(s, counted, w);
    sl_stream *k = f ? sl_stream_update_state_by_key(f, session_update, w, partitions) : NULL;
    if (!k) {
        free(w);
        return NULL;
    }
    k->owned = w;
    w->node = k;
    snprintf(k->name, sizeof(k->name), "reduce_by_key_and_window-%d", k->id);
    k->event_time = true;
    k->state_emits = true;
    k->event_window = ew->gap_ms; /* each record's own bounds are in its meta */
    k->disorder = ew->max_out_of_orderness_ms;
    k->idle_timeout = ew->idle_timeout_ms;
    atomic_store(&k->watermark, INT64_MIN);
    atomic_store(&k->stream_time, INT64_MIN);
    return k;
}

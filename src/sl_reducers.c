/* sl_reducers.c -- the reducers avg, first, last and count_distinct: lift, combine, finish
 * (see sl_reducers.h).
 *
 * A partial result is a record whose value bytes start with a tag (PARTIAL_MAGIC, the
 * reducer's kind) followed by the kind's fields, in host byte order (like the windows'
 * slots in sl_window_state.c; checkpoints are read back on the same machine type):
 *
 *   avg             sum type (u8), sum (int64 or double), count (int64); the typed value is
 *                   the average so far (none while the count is 0)
 *   first, last     has value (u8), ts (int64), partition (int32), offset (int64), then the
 *                   record's value bytes; the typed value is the record's
 *   count_distinct  the distinct values, sorted, each as length (u32) and bytes; the typed
 *                   value is how many there are
 *
 * first and last order records by time (ts), then partition, offset, typed value and value
 * bytes: a total order over what the records hold, so that the result does not depend on
 * which worker reduced which records first. count_distinct counts distinct typed values when
 * a record has one (value: {json: user_id}: 7 and 7.0 are the same) and distinct value bytes
 * otherwise (value: {json: user, as: text}); the set is exact, kept per key and reduced
 * batch (and per slide of a window, and in running state): memory grows with the distinct
 * values. Sets are immutable (a partial may be the engine's stored state): a value new to a
 * key's set copies the set, so a batch with D distinct values for one key costs about
 * D * D / 2 element copies of batch memory; a value already in the set costs nothing. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sl_reducers.h"

#define PARTIAL_MAGIC 0xA7

typedef enum red_kind {
    RED_AVG = 'A',
    RED_FIRST = 'F',
    RED_LAST = 'L',
    RED_DISTINCT = 'D'
} red_kind;

struct sl_reducer {
    const char *name;
    red_kind kind;
    bool drop_zero;
    const sl_reducer *dropping; /* the same kind with drop_zero */
};

static const sl_reducer dropping[] = {
    {"avg", RED_AVG, true, &dropping[0]},
    {"first", RED_FIRST, true, &dropping[1]},
    {"last", RED_LAST, true, &dropping[2]},
    {"count_distinct", RED_DISTINCT, true, &dropping[3]},
};

static const sl_reducer reducers[] = {
    {"avg", RED_AVG, false, &dropping[0]},
    {"first", RED_FIRST, false, &dropping[1]},
    {"last", RED_LAST, false, &dropping[2]},
    {"count_distinct", RED_DISTINCT, false, &dropping[3]},
};

const sl_reducer *sl__reducer_get(const char *name)
{
    for (size_t i = 0; name && i < sizeof(reducers) / sizeof(reducers[0]); i++) {
        if (strcmp(reducers[i].name, name) == 0) {
            return &reducers[i];
        }
    }
    return NULL;
}

const sl_reducer *sl__reducer_dropping_zeros(const sl_reducer *rd)
{
    return rd ? rd->dropping : NULL;
}

const char *sl__reducer_name(const sl_reducer *rd)
{
    return rd ? rd->name : "";
}

bool sl__reducer_invertible(const sl_reducer *rd)
{
    return rd && rd->kind == RED_AVG;
}

/* ==== Encodings ==== */

#define HEAD    2u                         /* magic, kind */
#define AVG_LEN (HEAD + 1u + 8u + 8u)      /* sum type, sum, count */
#define POS_LEN (HEAD + 1u + 8u + 4u + 8u) /* has value, ts, partition, offset */

typedef struct avg_part {
    uint8_t sum_type; /* SL_NUM_INT or SL_NUM_DOUBLE */
    union {
        int64_t i;
        double d;
    } sum;
    int64_t count;
} avg_part;

typedef struct pos_part {
    bool has_value;
    int64_t ts;
    int32_t partition;
    int64_t offset;
    const char *value;
    uint32_t value_len;
} pos_part;

/* The kind of the partial r, or 0 when r is none. */
static int partial_kind(const sl_record *r)
{
    if (!r->value || r->value_len < HEAD || (uint8_t)r->value[0] != PARTIAL_MAGIC) {
        return 0;
    }
    switch (r->value[1]) {
    case RED_AVG: return r->value_len == AVG_LEN ? RED_AVG : 0;
    case RED_FIRST:
    case RED_LAST: return r->value_len >= POS_LEN ? r->value[1] : 0;
    case RED_DISTINCT: return RED_DISTINCT;
    default: return 0;
    }
}

static avg_part avg_decode(const sl_record *r)
{
    avg_part a;
    const char *p = r->value + HEAD;
    a.sum_type = (uint8_t)p[0];
    memcpy(&a.sum, p + 1, 8);
    memcpy(&a.count, p + 9, 8);
    return a;
}

static double avg_sum(const avg_part *a)
{
    return a->sum_type == SL_NUM_INT ? (double)a->sum.i : a->sum.d;
}

/* Sets r to the partial a, in new batch memory. */
static int avg_encode(sl_record *r, const avg_part *a, sl_emitter *e)
{
    char *p = sl_emitter_alloc(e, AVG_LEN);
    if (!p) {
        return SL_ERR_NOMEM;
    }
    p[0] = (char)PARTIAL_MAGIC;
    p[1] = RED_AVG;
    p[2] = (char)a->sum_type;
    memcpy(p + 3, &a->sum, 8);
    memcpy(p + 11, &a->count, 8);
    r->value = p;
    r->value_len = AVG_LEN;
    if (a->count > 0) {
        sl_record_set_double(r, avg_sum(a) / (double)a->count);
    } else {
        r->num_type = SL_NUM_NONE;
        r->num.i = 0;
    }
    return SL_OK;
}

static pos_part pos_decode(const sl_record *r)
{
    pos_part s;
    const char *p = r->value + HEAD;
    s.has_value = p[0] != 0;
    memcpy(&s.ts, p + 1, 8);
    memcpy(&s.partition, p + 9, 4);
    memcpy(&s.offset, p + 13, 8);
    s.value = r->value + POS_LEN;
    s.value_len = r->value_len - POS_LEN;
    return s;
}

/* The next element of a count_distinct set at *off, false at the end (or on bad bytes). */
static bool set_next(const sl_record *r, uint32_t *off, const char **bytes, uint32_t *len)
{
    if (*off + 4u > r->value_len) {
        return false;
    }
    memcpy(len, r->value + *off, 4);
    if (*len > r->value_len - *off - 4u) {
        return false;
    }
    *bytes = r->value + *off + 4;
    *off += 4u + *len;
    return true;
}

static int bytes_cmp(const char *a, uint32_t an, const char *b, uint32_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* ==== Lift ==== */

/* The element count_distinct counts for r: the text of its typed value, else its bytes. */
static bool distinct_element(const sl_record *r, char *buf, size_t size, const char **p,
                             uint32_t *n)
{
    int k;
    if (r->num_type == SL_NUM_INT) {
        k = snprintf(buf, size, "%" PRId64, r->num.i);
    } else if (r->num_type == SL_NUM_DOUBLE) {
        double d = r->num.d;
        if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d) {
            k = snprintf(buf, size, "%" PRId64, (int64_t)d); /* 7.0 is 7 */
        } else {
            k = snprintf(buf, size, "%.17g", d);
        }
    } else if (r->value) {
        *p = r->value;
        *n = r->value_len;
        return true;
    } else {
        return false; /* a tombstone: nothing to count */
    }
    *p = buf;
    *n = (uint32_t)k;
    return true;
}

int sl__reducer_lift(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    const sl_reducer *rd = opaque;
    switch (rd->kind) {
    case RED_AVG: {
        avg_part a = {.sum_type = SL_NUM_INT};
        if (in->num_type == SL_NUM_INT) {
            a.sum.i = in->num.i;
            a.count = 1;
        } else if (in->num_type == SL_NUM_DOUBLE) {
            a.sum_type = SL_NUM_DOUBLE;
            a.sum.d = in->num.d;
            a.count = 1;
        } /* no typed value: not counted (SQL's AVG skips NULLs) */
        return avg_encode(out, &a, e);
    }
    case RED_FIRST:
    case RED_LAST: {
        uint32_t n = in->value ? in->value_len : 0;
        if (n > UINT32_MAX - POS_LEN) {
            return SL_ERR_RECORD;
        }
        char *p = sl_emitter_alloc(e, POS_LEN + n);
        if (!p) {
            return SL_ERR_NOMEM;
        }
        int32_t part = in->meta ? in->meta->partition : -1;
        int64_t off = in->meta ? in->meta->offset : -1;
        p[0] = (char)PARTIAL_MAGIC;
        p[1] = (char)rd->kind;
        p[2] = in->value != NULL;
        memcpy(p + 3, &in->ts, 8);
        memcpy(p + 11, &part, 4);
        memcpy(p + 15, &off, 8);
        if (n) {
            memcpy(p + POS_LEN, in->value, n);
        }
        out->value = p;
        out->value_len = POS_LEN + n;
        return SL_OK;
    }
    case RED_DISTINCT: {
        char buf[32];
        const char *v = NULL;
        uint32_t n = 0;
        bool has = distinct_element(in, buf, sizeof(buf), &v, &n);
        if (has && n > UINT32_MAX - HEAD - 4u) {
            return SL_ERR_RECORD;
        }
        char *p = sl_emitter_alloc(e, HEAD + (has ? 4u + n : 0u));
        if (!p) {
            return SL_ERR_NOMEM;
        }
        p[0] = (char)PARTIAL_MAGIC;
        p[1] = RED_DISTINCT;
        if (has) {
            memcpy(p + HEAD, &n, 4);
            if (n) {
                memcpy(p + HEAD + 4, v, n);
            }
        }
        out->value = p;
        out->value_len = HEAD + (has ? 4u + n : 0u);
        sl_record_set_int(out, has ? 1 : 0);
        return SL_OK;
    }
    }
    return SL_ERR_INVAL;
}

/* ==== Combine ==== */

/* The order of first and last: < 0 when a comes before b. */
static int pos_cmp(const sl_record *ra, const sl_record *rb)
{
    pos_part a = pos_decode(ra), b = pos_decode(rb);
    if (a.ts != b.ts) {
        return a.ts < b.ts ? -1 : 1;
    }
    if (a.partition != b.partition) {
        return a.partition < b.partition ? -1 : 1;
    }
    if (a.offset != b.offset) {
        return a.offset < b.offset ? -1 : 1;
    }
    if (ra->num_type != rb->num_type) {
        return ra->num_type < rb->num_type ? -1 : 1;
    }
    if (ra->num_type == SL_NUM_INT && ra->num.i != rb->num.i) {
        return ra->num.i < rb->num.i ? -1 : 1;
    }
    if (ra->num_type == SL_NUM_DOUBLE && ra->num.d != rb->num.d) {
        return ra->num.d < rb->num.d ? -1 : 1;
    }
    if (a.has_value != b.has_value) {
        return a.has_value ? 1 : -1;
    }
    return bytes_cmp(a.value, a.value_len, b.value, b.value_len);
}

static int avg_combine(sl_record *acc, const sl_record *r, sl_emitter *e, bool inverse)
{
    avg_part a = avg_decode(acc), b = avg_decode(r);
    if (a.sum_type == SL_NUM_INT && b.sum_type == SL_NUM_INT) {
        uint64_t x = (uint64_t)a.sum.i, y = (uint64_t)b.sum.i;
        a.sum.i = (int64_t)(inverse ? x - y : x + y);
    } else {
        double x = avg_sum(&a), y = avg_sum(&b);
        a.sum_type = SL_NUM_DOUBLE;
        a.sum.d = inverse ? x - y : x + y;
    }
    a.count = inverse ? a.count - b.count : a.count + b.count;
    if (a.count == 0 && a.sum_type == SL_NUM_DOUBLE) {
        a.sum.d = 0; /* rounding left behind by the doubles that left */
    }
    return avg_encode(acc, &a, e);
}

/* acc's set united with r's. Keeps acc when r adds nothing (no memory then). */
static int distinct_combine(sl_record *acc, const sl_record *r, sl_emitter *e)
{
    const char *x = NULL, *y = NULL;
    uint32_t xn = 0, yn = 0, xo = HEAD, yo = HEAD;
    int64_t count = 0;
    size_t size = HEAD;
    bool hx = set_next(acc, &xo, &x, &xn), hy = set_next(r, &yo, &y, &yn);
    bool adds = false;
    while (hx || hy) { /* first pass: the union's size */
        int c = !hx ? 1 : !hy ? -1 : bytes_cmp(x, xn, y, yn);
        uint32_t n = c <= 0 ? xn : yn;
        size += 4u + n;
        count++;
        adds |= c > 0;
        if (c <= 0) {
            hx = set_next(acc, &xo, &x, &xn);
        }
        if (c >= 0) {
            hy = set_next(r, &yo, &y, &yn);
        }
    }
    if (!adds) {
        return SL_OK;
    }
    if (size > UINT32_MAX) {
        sl_reject_reason("count_distinct: the set of a key is over 4 GiB");
        return SL_ERR_RECORD;
    }
    char *p = sl_emitter_alloc(e, size);
    if (!p) {
        return SL_ERR_NOMEM;
    }
    p[0] = (char)PARTIAL_MAGIC;
    p[1] = RED_DISTINCT;
    size_t off = HEAD;
    xo = yo = HEAD;
    hx = set_next(acc, &xo, &x, &xn);
    hy = set_next(r, &yo, &y, &yn);
    while (hx || hy) {
        int c = !hx ? 1 : !hy ? -1 : bytes_cmp(x, xn, y, yn);
        const char *v = c <= 0 ? x : y;
        uint32_t n = c <= 0 ? xn : yn;
        memcpy(p + off, &n, 4);
        memcpy(p + off + 4, v, n);
        off += 4u + n;
        if (c <= 0) {
            hx = set_next(acc, &xo, &x, &xn);
        }
        if (c >= 0) {
            hy = set_next(r, &yo, &y, &yn);
        }
    }
    acc->value = p;
    acc->value_len = (uint32_t)size;
    sl_record_set_int(acc, count);
    return SL_OK;
}

int sl__reducer_combine(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque)
{
    (void)opaque;
    int k = partial_kind(acc);
    if (k == 0 || partial_kind(r) != k) {
        sl_reject_reason("not a partial result of avg, first, last or count_distinct");
        return SL_ERR_RECORD;
    }
    if (r->ts > acc->ts) {
        acc->ts = r->ts;
    }
    switch (k) {
    case RED_AVG: return avg_combine(acc, r, e, false);
    case RED_FIRST:
    case RED_LAST: {
        int c = pos_cmp(r, acc);
        if (k == RED_FIRST ? c < 0 : c > 0) {
            acc->value = r->value;
            acc->value_len = r->value_len;
            acc->num_type = r->num_type;
            acc->num = r->num;
        }
        return SL_OK;
    }
    default: return distinct_combine(acc, r, e);
    }
}

int sl__reducer_inverse(sl_record *acc, const sl_record *r, sl_emitter *e, void *opaque)
{
    (void)opaque;
    if (partial_kind(acc) != RED_AVG || partial_kind(r) != RED_AVG) {
        sl_reject_reason("the inverse is for partial results of avg");
        return SL_ERR_RECORD;
    }
    return avg_combine(acc, r, e, true);
}

/* ==== Finish ==== */

int sl__reducer_finish(const sl_record *in, sl_record *out, sl_emitter *e, void *opaque)
{
    (void)e;
    (void)opaque;
    switch (partial_kind(in)) {
    case RED_AVG: {
        avg_part a = avg_decode(in);
        out->value = NULL;
        out->value_len = 0;
        if (a.count == 0) {
            out->num_type = SL_NUM_NONE; /* no number: a tombstone */
            out->num.i = 0;
        } else {
            sl_record_set_double(out, avg_sum(&a) / (double)a.count);
        }
        return SL_OK;
    }
    case RED_FIRST:
    case RED_LAST: {
        pos_part s = pos_decode(in);
        out->value = s.has_value ? (s.value_len ? s.value : "") : NULL;
        out->value_len = s.value_len;
        return SL_OK;
    }
    case RED_DISTINCT:
        out->value = NULL;
        out->value_len = 0;
        return SL_OK;
    default: return SL_OK; /* a tombstone of a window: as it is */
    }
}

int sl__reducer_keep(const sl_record *r, void *opaque)
{
    const sl_reducer *rd = opaque;
    if (partial_kind(r) == RED_AVG && avg_decode(r).count == 0) {
        return 0;
    }
    return rd->drop_zero ? sl_filter_nonzero(r, NULL) : 1;
}

/* ==== running ==== */

int sl__reducer_running(const sl_record *in, sl_state *state, sl_emitter *e, void *opaque)
{
    (void)opaque;
    if (state->timing_out) {
        return SL_OK; /* the key expires without a record */
    }
    sl_record acc = *in;
    if (state->exists) {
        sl_record old = {.key = in->key,
                         .key_len = in->key_len,
                         .value = state->bytes,
                         .value_len = state->len,
                         .num_type = state->num_type,
                         .ts = in->ts};
        memcpy(&old.num, &state->num, sizeof(old.num));
        acc = old;
        int rc = sl__reducer_combine(&acc, in, e, NULL);
        if (rc < 0) {
            return rc;
        }
    }
    if (acc.value == state->bytes && acc.value_len) {
        /* the state won (first): its bytes live for the call only */
        if (!(acc.value = sl_emitter_copy(e, acc.value, acc.value_len))) {
            return SL_ERR_NOMEM;
        }
    }
    state->exists = true;
    state->num_type = acc.num_type;
    memcpy(&state->num, &acc.num, sizeof(state->num));
    state->bytes = acc.value;
    state->len = acc.value_len;
    sl_record out = acc;
    out.ts = sl_emitter_batch_time(e);
    out.meta = in->meta;
    int rc = sl__reducer_finish(&acc, &out, e, NULL);
    return rc < 0 ? rc : sl_emit(e, &out);
}

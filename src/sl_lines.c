/* sl_lines.c -- the line splitter of line-oriented sources (tcp, file, generate; see sl_lines.h).
 */
#include <stdlib.h>
#include <string.h>

#include "sl_lines.h"

/* ==== Batches of records ==== */

sl_lines_batch *sl__lines_batch_new(sl_instance *ins)
{
    sl_lines_batch *b = calloc(1, sizeof(*b));
    if (b) {
        b->ins = ins;
    }
    return b;
}

void sl__lines_batch_destroy(sl_lines_batch *b)
{
    free(b);
}

int sl__lines_batch_push(sl_lines_batch *b)
{
    if (b->n == 0) {
        return SL_OK;
    }
    int rc =
        b->push ? b->push(b->push_arg, b->recs, b->n) : sl_receiver_push(b->ins, b->recs, b->n);
    b->records += (int64_t)b->n;
    b->n = 0;
    return rc;
}

int sl__lines_batch_add(sl_lines_batch *b, const char *topic, int64_t offset, const char *value,
                        size_t len, int64_t ts)
{
    sl_record_meta *m = &b->meta[b->n];
    *m = (sl_record_meta){
        .source = sl_instance_name(b->ins), .topic = topic, .partition = -1, .offset = offset};

    sl_record *r = &b->recs[b->n];
    memset(r, 0, sizeof(*r));
    r->value = value;
    r->value_len = (uint32_t)len;
    r->num_type = SL_NUM_NONE;
    r->ts = ts;
    r->meta = m;
    b->n++;
    return b->n == SL_LINES_BULK ? sl__lines_batch_push(b) : SL_OK;
}

/* ==== Splitting ==== */

void sl__lines_init(sl_lines *l, sl_instance *ins, const char *topic)
{
    memset(l, 0, sizeof(*l));
    l->ins = ins;
    l->topic = topic;
    l->max = sl_instance_max_record_size(ins);
    if (l->max == 0 || l->max >= UINT32_MAX) {
        l->max = UINT32_MAX - 1; /* a record's length is 32-bit */
    }
}

void sl__lines_free(sl_lines *l)
{
    free(l->part);
    l->part = NULL;
    l->part_cap = 0;
    l->part_len = 0;
}

/* Reports a line that exceeds max_record_size; seen = its bytes so far. */
static void lines_oversize(sl_lines *l, uint64_t seen, bool complete)
{
    sl_instance_count_oversize(l->ins, 1);
    sl_instance_error(l->ins,
                      "line %lld from %s is longer than max_record_size %zu (%s%llu bytes): "
                      "discarded",
                      (long long)l->line_no, l->topic ? l->topic : "?", l->max,
                      complete ? "" : "at least ", (unsigned long long)seen);
}

/* Grows the partial-line buffer to hold need bytes (need <= max + 1). */
static int lines_reserve(sl_lines *l, size_t need)
{
    if (need <= l->part_cap) {
        return SL_OK;
    }
    size_t cap = l->part_cap ? l->part_cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > l->max + 1 && need <= l->max + 1) {
        cap = l->max + 1;
    }
    char *p = realloc(l->part, cap);
    if (!p) {
        return SL_ERR_NOMEM;
    }
    l->part = p;
    l->part_cap = cap;
    return SL_OK;
}

/* Adds the line [s, s + len) (newline excluded) as a record, or drops it when too long. */
static int lines_emit(sl_lines *l, sl_lines_batch *b, const char *s, size_t len, int64_t ts)
{
    if (len > 0 && s[len - 1] == '\r') {
        len--;
    }
    l->line_no++;
    if (len > l->max) {
        lines_oversize(l, len, true);
        return SL_OK;
    }
    return sl__lines_batch_add(b, l->topic, l->line_no, s, len, ts);
}

int sl__lines_feed(sl_lines *l, sl_lines_batch *b, const char *data, size_t n, int64_t ts)
{
    const char *p = data;
    const char *end = data + n;
    int rc = SL_OK;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (l->discarding) {
            if (!nl) {
                l->discard_len += (uint64_t)(end - p);
                p = end;
                break;
            }
            l->discarding = false;
            l->discard_len = 0;
            p = nl + 1;
            continue;
        }
        if (!nl) {
            break; /* the unterminated end, kept below after the push */
        }
        size_t len = (size_t)(nl - p);
        int r;
        if (l->part_len > 0) {
            /* The line began in an earlier chunk: join it in the partial buffer. It is
             * only written to again after the push below, so the record may point to it. */
            size_t total = l->part_len + len;
            if (total > l->max + 1) {
                l->line_no++;
                lines_oversize(l, total - (nl > p && nl[-1] == '\r'), true);
                r = SL_OK;
            } else if ((r = lines_reserve(l, total)) == SL_OK) {
                memcpy(l->part + l->part_len, p, len);
                r = lines_emit(l, b, l->part, total, ts);
            }
            l->part_len = 0;
        } else {
            r = lines_emit(l, b, p, len, ts);
        }
        if (r != SL_OK && rc == SL_OK) {
            rc = r;
        }
        p = nl + 1;
    }

    int r = sl__lines_batch_push(b);
    if (r != SL_OK && rc == SL_OK) {
        rc = r;
    }

    if (p < end) {
        /* Keep the unterminated end, unless the line already exceeds the limit (one byte
         * more is allowed for a "\r" before the newline): then skip up to the newline. */
        size_t rest = (size_t)(end - p);
        size_t total = l->part_len + rest;
        if (total > l->max + 1) {
            l->line_no++;
            lines_oversize(l, total, false);
            l->discarding = true;
            l->discard_len = total;
            l->part_len = 0;
        } else if ((r = lines_reserve(l, total)) == SL_OK) {
            memcpy(l->part + l->part_len, p, rest);
            l->part_len = total;
        } else if (rc == SL_OK) {
            rc = r;
        }
    }
    return rc;
}

int sl__lines_finish(sl_lines *l, sl_lines_batch *b, int64_t ts)
{
    int rc = SL_OK;
    if (l->discarding) {
        l->discarding = false; /* the oversize line ends here; it was counted already */
        l->discard_len = 0;
    } else if (l->part_len > 0) {
        rc = lines_emit(l, b, l->part, l->part_len, ts);
        l->part_len = 0;
    }
    int r = sl__lines_batch_push(b);
    return rc != SL_OK ? rc : r;
}

int sl__lines_discard(sl_lines *l, sl_lines_batch *b, uint64_t *dropped)
{
    *dropped = l->discarding ? 0 : l->part_len; /* an oversize line was counted already */
    l->discarding = false;
    l->discard_len = 0;
    l->part_len = 0;
    return sl__lines_batch_push(b);
}

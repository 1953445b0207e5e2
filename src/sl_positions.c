/* sl_positions.c -- input positions: the ranges a batch reads of partitioned sources, the
 * rule a sink applies to them, and where the sinks are when a source takes a partition
 * (see "Input positions" in sl_connector.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

int sl_batch_input_add_range(sl_batch_input *in, const char *topic, int32_t partition, int64_t from,
                             int64_t until)
{
    if (!in || !topic || until < from) {
        return SL_ERR_INVAL;
    }
    if (in->nranges == in->capranges) {
        size_t cap = in->capranges ? in->capranges * 2 : 8;
        sl_input_range *r = realloc(in->ranges, cap * sizeof(*r));
        if (!r) {
            return SL_ERR_NOMEM;
        }
        in->ranges = r;
        in->capranges = cap;
    }
    char *t = strdup(topic);
    if (!t) {
        return SL_ERR_NOMEM;
    }
    in->ranges[in->nranges++] =
        (sl_input_range){.topic = t, .partition = partition, .from = from, .until = until};
    return SL_OK;
}

void sl_instance_set_positions(sl_instance *ins, bool records)
{
    ins->positions_off = !records;
}

void sl__input_ranges_free(sl_input_range *ranges, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)ranges[i].topic);
    }
    free(ranges);
}

sl_position_check sl_position_check_range(const sl_input_range *r, int64_t position)
{
    if (position < 0 || r->from == position) {
        return SL_POSITION_WRITE;
    }
    if (r->until <= position) {
        return SL_POSITION_SKIP;
    }
    return SL_POSITION_FENCED;
}

/* Adds position v to pos's lowest and cuts (distinct, rising). */
static void merge(sl_source_position *pos, int64_t v)
{
    if (v < 0 || v == pos->next) {
        return;
    }
    if (pos->next < 0) {
        pos->next = v;
        return;
    }
    int64_t lo = v < pos->next ? v : pos->next, hi = v < pos->next ? pos->next : v;
    pos->next = lo;
    for (size_t i = 0; i < pos->ncut; i++) {
        if (pos->cut[i] == hi) {
            return;
        }
        if (pos->cut[i] > hi) {
            int64_t t = pos->cut[i];
            pos->cut[i] = hi;
            hi = t;
        }
    }
    if (pos->ncut < SL_POSITION_CUTS) {
        pos->cut[pos->ncut++] = hi;
    }
}

void sl_source_position_merge(sl_source_position *pos, int64_t v)
{
    merge(pos, v);
}

int sl_instance_sink_positions(sl_instance *ins, sl_source_position *pos, size_t n, size_t *sinks,
                               char *errstr, size_t errsize)
{
    *sinks = 0;
    for (size_t i = 0; i < n; i++) {
        pos[i].next = -1;
        pos[i].ncut = 0;
        pos[i].missing = false;
    }
    sl_position *q = calloc(n + 1, sizeof(*q));
    if (!q) {
        snprintf(errstr, errsize, "out of memory asking the sinks' positions");
        return SL_ERR_NOMEM;
    }
    int rc = SL_OK;
    for (sl_instance *s = ins->ctx->sinks; s && rc == SL_OK; s = s->next) {
        /* Changelogs say where they are as they restore (below). */
        if (!s->conn->positions || s->positions_off || s->changelog || !sl__sink_reads(s, ins)) {
            continue;
        }
        (*sinks)++;
        for (size_t i = 0; i < n; i++) {
            q[i] = (sl_position){.source = ins->name,
                                 .topic = pos[i].topic,
                                 .partition = pos[i].partition,
                                 .next = -1};
        }
        char why[256] = "";
        rc = s->conn->positions(s->cctx, ins->ctx->name, q, n, why, sizeof(why));
        if (rc != SL_OK) {
            snprintf(errstr, errsize, "sink '%s': %s", s->name, why[0] ? why : sl_err2str(rc));
            break;
        }
        for (size_t i = 0; i < n; i++) {
            merge(&pos[i], q[i].next);
            pos[i].missing = pos[i].missing || q[i].next < 0;
        }
    }
    if (rc == SL_OK) {
        rc = sl__changelog_restore(ins, pos, n, sinks, errstr, errsize);
    }
    for (size_t i = 0; i < n; i++) {
        pos[i].missing = pos[i].missing && pos[i].next >= 0;
    }
    free(q);
    return rc;
}

/* sl_cfg_graph.c -- the pipeline as a graph: names resolved, build order, cycles, slides
 * and where records need their headers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cfg.h"
#include "sl_connector.h"

/* ==== References, cycles and slides ==== */

static const char *cfg_ref_name(const sl_config *cfg, size_t idx)
{
    return idx < cfg->nsources ? cfg->sources[idx].name : cfg->streams[idx - cfg->nsources].name;
}

static int cfg_resolve(cfg_parser *p, cfg_ref *ref, const char *what)
{
    sl_config *cfg = p->cfg;
    size_t idx = sl__cfg_lookup(p, ref->name, false);
    if (idx != SIZE_MAX) {
        ref->idx = idx;
        return SL_OK;
    }
    const char *names[256];
    size_t n = 0;
    for (size_t i = 0; i < cfg->nsources + cfg->nstreams && n < 255; i++) {
        names[n++] = cfg_ref_name(cfg, i);
    }
    names[n] = NULL;
    char list[1024];
    const char *close = sl__closest(ref->name, names);
    char hint[160] = "";
    if (close) {
        snprintf(hint, sizeof(hint), " (did you mean '%s'?)", close);
    }
    return sl__cfg_error(p, ref->loc, "unknown stream or source '%s' in %s%s; known: %s", ref->name,
                         what, hint, sl__cfg_join(names, list, sizeof(list)));
}

/* The stream that reference r of st reads (r counts from, then ops), or SIZE_MAX when it
 * reads a source or the op reads no stream. */
static size_t cfg_reads(const sl_config *cfg, const cfg_stream *st, size_t r, cfg_loc *loc)
{
    const cfg_ref *ref = r < st->nfrom ? &st->from[r] : &st->ops[r - st->nfrom].with;
    if (r >= st->nfrom && !(st->ops[r - st->nfrom].def->flags & CFG_OP_JOINS)) {
        return SIZE_MAX;
    }
    *loc = ref->loc;
    return ref->idx < cfg->nsources ? SIZE_MAX : ref->idx - cfg->nsources;
}

/* Depth-first visit from stream s for the build order, with an explicit stack (a chain of
 * streams is as deep as it is long). state: 0 new, 1 on the path, 2 done; path and next
 * (the next reference to look at, per level) have room for every stream. */
static int cfg_visit(cfg_parser *p, size_t s, int *state, size_t *path, size_t *next,
                     size_t *norder)
{
    sl_config *cfg = p->cfg;
    size_t depth = 0;
    path[0] = s;
    next[0] = 0;
    state[s] = 1;
    for (;;) {
        size_t cur = path[depth];
        const cfg_stream *st = &cfg->streams[cur];
        if (next[depth] == st->nfrom + st->nops) {
            state[cur] = 2;
            cfg->order[(*norder)++] = cur;
            if (depth-- == 0) {
                return SL_OK;
            }
            continue;
        }
        cfg_loc loc;
        size_t t = cfg_reads(cfg, st, next[depth]++, &loc);
        if (t == SIZE_MAX || state[t] == 2) {
            continue;
        }
        if (state[t] == 0) {
            state[t] = 1;
            path[++depth] = t;
            next[depth] = 0;
            continue;
        }
        /* path[k..depth] each read the next one and path[depth] reads t == path[k]:
         * print it the way data flows, "x -> y" when y reads x. */
        sl_buf b = {0};
        size_t k = 0;
        while (path[k] != t) {
            k++;
        }
        const char *first = cfg->streams[t].name;
        int rc = sl__buf_append(&b, first, strlen(first));
        for (size_t m = depth + 1; rc == SL_OK && m-- > k;) {
            const char *nm = cfg->streams[path[m]].name;
            rc = sl__buf_append(&b, " -> ", 4);
            rc = rc == SL_OK ? sl__buf_append(&b, nm, strlen(nm)) : rc;
        }
        rc = sl__cfg_error(p, loc, "cycle among streams: %s", b.p ? b.p : "?");
        sl__buf_free(&b);
        return rc;
    }
}

static int64_t cfg_slide_of(const sl_config *cfg, size_t idx)
{
    return idx < cfg->nsources ? cfg->batch_ms : cfg->streams[idx - cfg->nsources].slide_ms;
}

/* A source may give records the messages' headers only on request (the kafka source's
 * headers: true: finding them costs a parse per message). Turns that option on for the
 * sources whose records reach an op that reads a header or a sink that wants them (its
 * connector says, from its options), unless the file sets it. Needs the build order. */
static int cfg_want_headers(cfg_parser *p)
{
    sl_config *cfg = p->cfg;
    size_t n = cfg->nsources + cfg->nstreams;
    bool *need = calloc(n ? n : 1, sizeof(*need));
    if (!need) {
        return sl__cfg_error(p, cfg->app_loc, "out of memory");
    }
    for (size_t i = 0; i < cfg->nsinks; i++) {
        const cfg_endpoint *ep = &cfg->sinks[i];
        if (ep->conn->wants_headers && ep->conn->wants_headers(ep->opts) && ep->from.idx < n) {
            need[ep->from.idx] = true;
        }
    }
    /* Streams in reverse build order: a stream's need reaches its parents first. */
    for (size_t k = cfg->nstreams; k-- > 0;) {
        size_t s = cfg->order[k];
        const cfg_stream *st = &cfg->streams[s];
        for (size_t j = 0; j < st->nops; j++) {
            need[cfg->nsources + s] = need[cfg->nsources + s] || st->ops[j].reads_header;
        }
        if (!need[cfg->nsources + s]) {
            continue;
        }
        for (size_t j = 0; j < st->nfrom; j++) {
            need[st->from[j].idx] = true;
        }
        for (size_t j = 0; j < st->nops; j++) {
            if (st->ops[j].def->flags & CFG_OP_JOINS) {
                need[st->ops[j].with.idx] = true;
            }
        }
    }
    int rc = SL_OK;
    for (size_t i = 0; i < cfg->nsources && rc == SL_OK; i++) {
        cfg_endpoint *ep = &cfg->sources[i];
        const char *opt = ep->conn->headers_option;
        if (need[i] && opt && !sl_options_get(ep->opts, opt) &&
            sl_options_set(ep->opts, opt, "true") != SL_OK) {
            rc = sl__cfg_error(p, ep->loc, "out of memory");
        }
    }
    free(need);
    return rc;
}

/* Computes each stream's slide in build order and checks windows, unions and joins. */
static int cfg_check_slides(cfg_parser *p)
{
    sl_config *cfg = p->cfg;
    char a[32], b[32];
    for (size_t i = 0; i < cfg->nstreams; i++) {
        cfg_stream *st = &cfg->streams[cfg->order[i]];
        int64_t slide = cfg_slide_of(cfg, st->from[0].idx);
        for (size_t j = 1; j < st->nfrom; j++) {
            int64_t other = cfg_slide_of(cfg, st->from[j].idx);
            if (other != slide) {
                sl__cfg_fmt_duration(slide, a, sizeof(a));
                sl__cfg_fmt_duration(other, b, sizeof(b));
                return sl__cfg_error(p, st->from[j].loc,
                                     "cannot union streams with different "
                                     "slides: '%s' slides every %s, '%s' every %s",
                                     st->from[0].name, a, st->from[j].name, b);
            }
        }
        for (size_t j = 0; j < st->nops; j++) {
            cfg_op *op = &st->ops[j];
            if ((op->def->flags & CFG_OP_WINDOWED) && !op->event_time) {
                sl__cfg_fmt_duration(slide, b, sizeof(b));
                if (op->length_ms % slide != 0) {
                    sl__cfg_fmt_duration(op->length_ms, a, sizeof(a));
                    return sl__cfg_error(p, op->loc,
                                         "window length %s is not a multiple of the "
                                         "parent's slide %s (in stream '%s')",
                                         a, b, st->name);
                }
                if (op->slide_ms % slide != 0) {
                    sl__cfg_fmt_duration(op->slide_ms, a, sizeof(a));
                    return sl__cfg_error(p, op->loc,
                                         "window slide %s is not a multiple of the "
                                         "parent's slide %s (in stream '%s')",
                                         a, b, st->name);
                }
                slide = op->slide_ms ? op->slide_ms : slide;
            } else if (op->def->flags & CFG_OP_JOINS) {
                int64_t other = cfg_slide_of(cfg, op->with.idx);
                if (other != slide) {
                    sl__cfg_fmt_duration(slide, a, sizeof(a));
                    sl__cfg_fmt_duration(other, b, sizeof(b));
                    return sl__cfg_error(p, op->with.loc,
                                         "cannot join streams with different "
                                         "slides: '%s' slides every %s here, '%s' every %s",
                                         st->name, a, op->with.name, b);
                }
            }
        }
        st->slide_ms = slide;
    }
    return SL_OK;
}

int sl__cfg_check_graph(cfg_parser *p, cfg_loc root_loc)
{
    sl_config *cfg = p->cfg;
    int rc;
    for (size_t i = 0; i < cfg->nstreams; i++) {
        cfg_stream *st = &cfg->streams[i];
        char what[160];
        snprintf(what, sizeof(what), "'from' of stream '%s'", st->name);
        for (size_t j = 0; j < st->nfrom; j++) {
            if ((rc = cfg_resolve(p, &st->from[j], what)) != SL_OK) {
                return rc;
            }
        }
        snprintf(what, sizeof(what), "'join' of stream '%s'", st->name);
        for (size_t j = 0; j < st->nops; j++) {
            if ((st->ops[j].def->flags & CFG_OP_JOINS) &&
                (rc = cfg_resolve(p, &st->ops[j].with, what)) != SL_OK) {
                return rc;
            }
        }
    }
    for (size_t i = 0; i < cfg->nsinks; i++) {
        char what[160];
        snprintf(what, sizeof(what), "'from' of sink '%s'", cfg->sinks[i].name);
        if ((rc = cfg_resolve(p, &cfg->sinks[i].from, what)) != SL_OK) {
            return rc;
        }
    }
    if (cfg->nsources == 0) {
        return sl__cfg_error(p, root_loc,
                             "no sources: a pipeline needs at least one item in "
                             "'sources'");
    }
    if (cfg->nsinks == 0) {
        return sl__cfg_error(p, root_loc,
                             "no sinks: a pipeline needs at least one item in 'sinks' "
                             "(such as type: stdout)");
    }
    size_t n = cfg->nstreams ? cfg->nstreams : 1;
    int *state = calloc(n, sizeof(int));
    size_t *path = calloc(n, sizeof(size_t));
    size_t *next = calloc(n, sizeof(size_t));
    cfg->order = calloc(n, sizeof(size_t));
    rc = state && path && next && cfg->order ? SL_OK : sl__cfg_error(p, root_loc, "out of memory");
    size_t norder = 0;
    for (size_t i = 0; rc == SL_OK && i < cfg->nstreams; i++) {
        if (state[i] == 0) {
            rc = cfg_visit(p, i, state, path, next, &norder);
        }
    }
    free(state);
    free(path);
    free(next);
    if (rc == SL_OK) {
        rc = cfg_check_slides(p);
    }
    return rc == SL_OK ? cfg_want_headers(p) : rc;
}

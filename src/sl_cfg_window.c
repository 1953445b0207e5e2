/* sl_cfg_window.c -- the windowed and stateful YAML ops: their arguments and how they are
 * built (their entries are in the op table, sl_cfg_ops.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cfg.h"
#include "sl_engine.h"

/* ==== Arguments ==== */

int sl__cfg_op_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    int rc;
    if (arg->type == YAML_SCALAR_NODE) {
        rc = sl__cfg_duration(p, arg, "window length", 1, &op->length_ms);
    } else {
        static const char *const keys[] = {"length", "slide", "offset", NULL};
        if ((rc = sl__cfg_op_args(p, arg, "window", keys)) != SL_OK) {
            return rc;
        }
        yaml_node_t *n = sl__cfg_get(p, arg, "length");
        if (!n) {
            return sl__cfg_error(p, sl__cfg_loc_of(arg),
                                 "missing required key 'length' in op 'window'");
        }
        if ((rc = sl__cfg_duration(p, n, "window.length", 1, &op->length_ms)) != SL_OK) {
            return rc;
        }
        if ((n = sl__cfg_get(p, arg, "slide")) && !sl__cfg_is_null(p, n)) {
            rc = sl__cfg_duration(p, n, "window.slide", 1, &op->slide_ms);
        }
        if (rc == SL_OK && (n = sl__cfg_get(p, arg, "offset")) && !sl__cfg_is_null(p, n)) {
            rc = sl__cfg_offset(p, n, "window.offset", &op->offset_ms);
        }
    }
    char l[32], s[32];
    sl__cfg_fmt_duration(op->length_ms, l, sizeof(l));
    sl__cfg_fmt_duration(op->slide_ms, s, sizeof(s));
    op->desc = op->slide_ms ? sl__cfg_strdupf("window length %s slide %s", l, s)
                            : sl__cfg_strdupf("window length %s", l);
    return rc;
}

int sl__cfg_offset(cfg_parser *p, yaml_node_t *n, const char *what, int64_t *out)
{
    const char *s;
    int rc = sl__cfg_scalar(p, n, what, &s);
    if (rc != SL_OK) {
        return rc;
    }
    bool neg = s[0] == '-';
    int64_t ms;
    if (sl_parse_duration(neg || s[0] == '+' ? s + 1 : s, &ms) != SL_OK) {
        return sl__cfg_error(p, sl__cfg_loc_of(n),
                             "%s: bad offset '%s' (a duration, maybe negative: 1h, -30m)", what, s);
    }
    *out = neg ? -ms : ms;
    return SL_OK;
}

/* length (required) and slide (optional: the parent's) of a windowed op; or the gap of
 * session windows, which have neither. */
static int cfg_op_window_span(cfg_parser *p, yaml_node_t *arg, const char *opname, cfg_op *op)
{
    char what[96];
    yaml_node_t *n = sl__cfg_get(p, arg, "gap");
    if (n && !sl__cfg_is_null(p, n)) {
        static const char *const not_with_gap[] = {"length",  "slide", "offset",
                                                   "inverse", "keyed", NULL};
        for (size_t i = 0; not_with_gap[i]; i++) {
            yaml_node_t *x = sl__cfg_get(p, arg, not_with_gap[i]);
            if (x && !sl__cfg_is_null(p, x)) {
                return sl__cfg_error(p, sl__cfg_loc_of(x),
                                     "%s: session windows (gap) take no %s: a session is as "
                                     "long as its records keep coming less than the gap apart",
                                     opname, not_with_gap[i]);
            }
        }
        snprintf(what, sizeof(what), "%s.gap", opname);
        return sl__cfg_duration(p, n, what, 1, &op->gap_ms);
    }
    n = sl__cfg_get(p, arg, "length");
    if (!n || sl__cfg_is_null(p, n)) {
        return sl__cfg_error(p, sl__cfg_loc_of(arg), "missing required key 'length' in op '%s'",
                             opname);
    }
    snprintf(what, sizeof(what), "%s.length", opname);
    int rc = sl__cfg_duration(p, n, what, 1, &op->length_ms);
    if (rc == SL_OK && (n = sl__cfg_get(p, arg, "slide")) && !sl__cfg_is_null(p, n)) {
        snprintf(what, sizeof(what), "%s.slide", opname);
        rc = sl__cfg_duration(p, n, what, 1, &op->slide_ms);
    }
    if (rc == SL_OK && (n = sl__cfg_get(p, arg, "offset")) && !sl__cfg_is_null(p, n)) {
        snprintf(what, sizeof(what), "%s.offset", opname);
        rc = sl__cfg_offset(p, n, what, &op->offset_ms);
    }
    return rc;
}

/* " length 30s slide 10s" for descriptions. */
static void cfg_span_desc(const cfg_op *op, char *buf, size_t size)
{
    char l[32], s[32], d[32], o[48] = "";
    sl__cfg_fmt_duration(op->gap_ms ? op->gap_ms : op->length_ms, l, sizeof(l));
    sl__cfg_fmt_duration(op->slide_ms, s, sizeof(s));
    if (op->offset_ms) {
        sl__cfg_fmt_duration(op->offset_ms < 0 ? -op->offset_ms : op->offset_ms, d, sizeof(d));
        snprintf(o, sizeof(o), " offset %s%s", op->offset_ms < 0 ? "-" : "", d);
    }
    if (op->gap_ms) {
        snprintf(buf, size, " session gap %s", l);
    } else if (op->slide_ms) {
        snprintf(buf, size, " length %s slide %s%s", l, s, o);
    } else {
        snprintf(buf, size, " length %s%s", l, o);
    }
}

/* The duration key of a window on event time (0 when absent); an error on other windows. */
static int cfg_event_duration(cfg_parser *p, yaml_node_t *arg, const cfg_op *op, const char *key,
                              int64_t *out)
{
    char what[96];
    yaml_node_t *n = sl__cfg_get(p, arg, key);
    if (!n || sl__cfg_is_null(p, n)) {
        return SL_OK;
    }
    snprintf(what, sizeof(what), "%s.%s", op->def->name, key);
    if (!op->event_time) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "%s is for windows on event time (time: event)",
                             what);
    }
    return sl__cfg_duration(p, n, what, 0, out);
}

/* The windowed ops but window: keys are the valid keys, has_fn and has_parts whether fn
 * (required) and partitions (optional) are among them. */
static int cfg_op_windowed(cfg_parser *p, yaml_node_t *arg, cfg_op *op, const char *const *keys,
                           bool has_fn, bool has_parts)
{
    const char *opname = op->def->name;
    int rc = sl__cfg_op_args(p, arg, opname, keys);
    int which = -1;
    if (rc == SL_OK) {
        rc = cfg_op_window_span(p, arg, opname, op);
    }
    if (rc == SL_OK && has_fn) {
        rc = sl__cfg_op_fn(p, arg, opname, op, &which);
    }
    if (rc == SL_OK && has_parts) {
        rc = sl__cfg_op_partitions(p, arg, opname, op);
    }
    yaml_node_t *n;
    if (rc == SL_OK && (n = sl__cfg_get(p, arg, "drop_zero")) && !sl__cfg_is_null(p, n)) {
        rc = sl__cfg_bool(p, n, "reduce_by_key_and_window.drop_zero", &op->drop_zero);
    }
    if (rc == SL_OK && (n = sl__cfg_get(p, arg, "inverse")) && !sl__cfg_is_null(p, n)) {
        rc = sl__cfg_bool(p, n, "reduce_by_key_and_window.inverse", &op->inverse);
        if (rc == SL_OK && op->inverse && op->reduce != sl_reduce_sum &&
            !sl__reducer_invertible(op->agg)) {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "reduce_by_key_and_window.inverse: true is available for fn sum, "
                                 "count and avg only (%s has no inverse)",
                                 which >= 0 ? sl__cfg_reducers[which] : "a Lua function");
        }
        if (rc == SL_OK && op->inverse) {
            rc = sl__cfg_op_needs_checkpoint(p, sl__cfg_loc_of(n),
                                             "reduce_by_key_and_window with inverse: true");
        }
    }
    if (rc == SL_OK && (n = sl__cfg_get(p, arg, "keyed")) && !sl__cfg_is_null(p, n)) {
        rc = sl__cfg_bool(p, n, "reduce_by_key_and_window.keyed", &op->keyed);
        if (rc == SL_OK && op->keyed && op->inverse) {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "reduce_by_key_and_window: keyed: true and inverse: true do not "
                                 "go together (keyed state keeps each slide's result: no inverse "
                                 "is needed)");
        }
        if (rc == SL_OK && op->keyed) {
            rc = sl__cfg_op_needs_checkpoint(p, sl__cfg_loc_of(n),
                                             "reduce_by_key_and_window with keyed: true");
        }
    }
    if (rc == SL_OK && (n = sl__cfg_get(p, arg, "time")) && !sl__cfg_is_null(p, n)) {
        static const char *const times[] = {"batch", "event", NULL};
        int which_time = 0;
        rc = sl__cfg_choice(p, n, "reduce_by_key_and_window.time", times, &which_time);
        op->event_time = which_time == 1;
        if (rc == SL_OK && op->event_time && (op->inverse || op->keyed)) {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "reduce_by_key_and_window: time: event keeps each key's open "
                                 "windows as keyed state already (no inverse or keyed: true)");
        }
        if (rc == SL_OK && op->event_time && op->slide_ms && op->length_ms % op->slide_ms) {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "reduce_by_key_and_window: on event time the length must be a "
                                 "multiple of the slide");
        }
        if (rc == SL_OK && op->event_time) {
            rc = sl__cfg_op_needs_checkpoint(p, sl__cfg_loc_of(n),
                                             "reduce_by_key_and_window with time: event");
        }
    }
    if (rc == SL_OK && op->gap_ms && !op->event_time) {
        return sl__cfg_error(p, sl__cfg_loc_of(sl__cfg_get(p, arg, "gap")),
                             "%s: session windows (gap) are on event time: add time: event",
                             opname);
    }
    if (rc == SL_OK && (n = sl__cfg_get(p, arg, "late")) && !sl__cfg_is_null(p, n)) {
        const char *name;
        if (!op->event_time) {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "%s.late is for windows on event time (time: event): other "
                                 "windows have no late records",
                                 opname);
        }
        if ((rc = sl__cfg_scalar(p, n, "reduce_by_key_and_window.late", &name)) != SL_OK) {
            return rc;
        }
        if (!name[0] || !(op->late = calloc(1, sizeof(*op->late))) ||
            !(op->late->name = strdup(name))) {
            return sl__cfg_error(p, sl__cfg_loc_of(n), "%s.late: %s", opname,
                                 name[0] ? "out of memory" : "a stream name is needed");
        }
    }
    if (rc == SL_OK) {
        rc = cfg_event_duration(p, arg, op, "max_out_of_orderness", &op->disorder_ms);
    }
    if (rc == SL_OK) {
        rc = cfg_event_duration(p, arg, op, "allowed_lateness", &op->lateness_ms);
    }
    if (rc == SL_OK) {
        rc = cfg_event_duration(p, arg, op, "idle_timeout", &op->idle_ms);
    }
    if (rc != SL_OK) {
        return rc;
    }
    char span[96], parts[32] = "";
    cfg_span_desc(op, span, sizeof(span));
    if (op->partitions) {
        snprintf(parts, sizeof(parts), " (partitions %d)", op->partitions);
    }
    char ooo[256] = "";
    if (op->event_time) {
        char d[32], l[32] = "";
        sl__cfg_fmt_duration(op->disorder_ms, d, sizeof(d));
        if (op->lateness_ms) {
            sl__cfg_fmt_duration(op->lateness_ms, l, sizeof(l));
        }
        snprintf(ooo, sizeof(ooo), " event time (out of order %s%s%s%s%s)", d,
                 l[0] ? ", lateness " : "", l, op->late ? ", late to " : "",
                 op->late ? op->late->name : "");
    }
    op->desc = sl__cfg_strdupf("%s%s%s%s%s%s%s%s", opname, which >= 0 ? " " : "",
                               which >= 0 ? sl__cfg_reducers[which] : "", span,
                               op->inverse ? " inverse" : "", op->keyed ? " keyed" : "", ooo,
                               op->drop_zero ? " drop_zero" : "");
    if (op->desc && parts[0]) {
        char *d = sl__cfg_strdupf("%s%s", op->desc, parts);
        free(op->desc);
        op->desc = d;
    }
    return SL_OK;
}

int sl__cfg_op_running(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"fn", "ttl", "partitions", NULL};
    int which = -1;
    int rc = sl__cfg_op_args(p, arg, "running", keys);
    if (rc == SL_OK) {
        rc = sl__cfg_op_fn(p, arg, "running", op, &which);
    }
    if (rc == SL_OK) {
        rc = sl__cfg_op_partitions(p, arg, "running", op);
    }
    yaml_node_t *n;
    if (rc == SL_OK && (n = sl__cfg_get(p, arg, "ttl")) && !sl__cfg_is_null(p, n)) {
        rc = sl__cfg_duration(p, n, "running.ttl", 1, &op->ttl_ms);
    }
    if (rc != SL_OK) {
        return rc;
    }
    char msg[256], ttl[32] = "";
    op->run = op->agg ? NULL : sl__yamlops_running_new(sl__cfg_reducers[which], msg, sizeof(msg));
    if (!op->run && !op->agg) {
        return sl__cfg_error(p, op->loc, "running: %s", msg);
    }
    if (op->ttl_ms) {
        sl__cfg_fmt_duration(op->ttl_ms, ttl, sizeof(ttl));
    }
    if (op->partitions) {
        op->desc = sl__cfg_strdupf("running %s%s%s (partitions %d)", sl__cfg_reducers[which],
                                   ttl[0] ? " ttl " : "", ttl, op->partitions);
    } else {
        op->desc =
            sl__cfg_strdupf("running %s%s%s", sl__cfg_reducers[which], ttl[0] ? " ttl " : "", ttl);
    }
    return SL_OK;
}

int sl__cfg_op_reduce_by_key_and_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"fn",
                                       "length",
                                       "slide",
                                       "inverse",
                                       "drop_zero",
                                       "partitions",
                                       "keyed",
                                       "time",
                                       "max_out_of_orderness",
                                       "allowed_lateness",
                                       "idle_timeout",
                                       "gap",
                                       "offset",
                                       "late",
                                       NULL};
    return cfg_op_windowed(p, arg, op, keys, true, true);
}

int sl__cfg_op_count_by_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"length", "slide", "offset", NULL};
    return cfg_op_windowed(p, arg, op, keys, false, false);
}

int sl__cfg_op_reduce_by_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"fn", "length", "slide", "offset", NULL};
    return cfg_op_windowed(p, arg, op, keys, true, false);
}

int sl__cfg_op_count_by_value_and_window(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"length", "slide", "offset", "partitions", NULL};
    return cfg_op_windowed(p, arg, op, keys, false, true);
}

/* ==== Late outputs ==== */

static int cfg_parse_late_of(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    (void)p;
    (void)arg;
    (void)op;
    return SL_OK;
}

/* The late stream: the node its window made (the stream reads the window's stream, so that
 * it is built after it). */
static sl_stream *cfg_apply_late_of(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)s;
    (void)handles;
    return op->late_of->node;
}

static const cfg_op_def cfg_late_of = {.name = "late",
                                       .parse = cfg_parse_late_of,
                                       .apply = cfg_apply_late_of,
                                       .doc = "the late records of an event-time window"};

int sl__cfg_add_late_streams(cfg_parser *p)
{
    sl_config *cfg = p->cfg;
    size_t n = cfg->nstreams, more = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < cfg->streams[i].nops; j++) {
            more += cfg->streams[i].ops[j].late != NULL;
        }
    }
    if (more == 0) {
        return SL_OK;
    }
    cfg_stream *all = realloc(cfg->streams, (n + more) * sizeof(*all));
    if (!all) {
        return sl__cfg_error(p, cfg->streams[0].loc, "out of memory");
    }
    cfg->streams = all;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < cfg->streams[i].nops; j++) {
            cfg_op *op = &cfg->streams[i].ops[j];
            if (!op->late) {
                continue;
            }
            op->late->stream = i;
            cfg_stream *ls = &cfg->streams[cfg->nstreams];
            *ls = (cfg_stream){.loc = op->loc, .from_loc = op->loc};
            cfg->nstreams++; /* freed with the config from here on */
            ls->name = strdup(op->late->name);
            ls->from = calloc(1, sizeof(*ls->from));
            ls->ops = calloc(1, sizeof(*ls->ops));
            if (!ls->name || !ls->from || !ls->ops ||
                !(ls->from[0].name = strdup(cfg->streams[i].name))) {
                return sl__cfg_error(p, op->loc, "out of memory");
            }
            ls->from[0].loc = op->loc;
            ls->nfrom = 1;
            ls->ops[0] = (cfg_op){.def = &cfg_late_of, .loc = op->loc, .late_of = op->late};
            ls->ops[0].desc = sl__cfg_strdupf("late records of %s", cfg->streams[i].name);
            ls->nops = 1;
            int rc = sl__cfg_unique(p, ls->name, op->loc, false, cfg->nsources + cfg->nstreams - 1);
            if (rc != SL_OK) {
                return rc;
            }
        }
    }
    return SL_OK;
}

int sl__cfg_window_offset(cfg_parser *p)
{
    sl_config *cfg = p->cfg;
    const cfg_op *first = NULL;
    const cfg_stream *first_st = NULL;
    for (size_t i = 0; i < cfg->nstreams; i++) {
        for (size_t j = 0; j < cfg->streams[i].nops; j++) {
            const cfg_op *op = &cfg->streams[i].ops[j];
            if (op->length_ms <= 0 || op->event_time) {
                continue; /* not a window on processing time */
            }
            if (!first) {
                first = op;
                first_st = &cfg->streams[i];
                cfg->window_offset_ms = op->offset_ms;
            } else if (op->offset_ms != first->offset_ms) {
                char a[32], b[32];
                sl__cfg_fmt_duration(op->offset_ms < 0 ? -op->offset_ms : op->offset_ms, a,
                                     sizeof(a));
                sl__cfg_fmt_duration(first->offset_ms < 0 ? -first->offset_ms : first->offset_ms, b,
                                     sizeof(b));
                return sl__cfg_error(
                    p, op->loc,
                    "%s: offset %s%s differs from the offset %s%s of the window in stream '%s' "
                    "(line %d): windows on processing time end on batch times, which count from "
                    "one zero time, so they all take the same offset (or use time: event, whose "
                    "windows each have their own)",
                    op->def->name, op->offset_ms < 0 ? "-" : "", a, first->offset_ms < 0 ? "-" : "",
                    b, first_st->name, first->loc.line);
            }
        }
    }
    return SL_OK;
}

/* ==== Building ==== */

sl_stream *sl__cfg_apply_window(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_window(s, op->length_ms, op->slide_ms);
}

sl_stream *sl__cfg_apply_reduce_by_key_and_window(const cfg_op *op, sl_stream *s,
                                                  sl_stream *const *handles)
{
    (void)handles;
    if (op->event_time) {
        sl_event_window ew = {.length_ms = op->length_ms,
                              .slide_ms = op->slide_ms,
                              .max_out_of_orderness_ms = op->disorder_ms,
                              .allowed_lateness_ms = op->lateness_ms,
                              .idle_timeout_ms = op->idle_ms,
                              .gap_ms = op->gap_ms,
                              .offset_ms = op->offset_ms};
        /* Reducers whose results are bytes (avg, first, last, count_distinct; a Lua function
         * may return a string) keep each pane's bytes. The window lifts the records to avg's
         * and the others' partial results itself, after its late check: the late output gets
         * the records as they came. */
        sl_stream *k =
            op->agg ? sl__cfg_finish(
                          op, sl__stream_event_window_bytes(s, op->reduce, NULL, sl__reducer_lift,
                                                            (void *)op->agg, &ew, op->partitions))
            : op->lua ? sl__cfg_finish(op, sl__stream_event_window_bytes(sl__cfg_count_ones(op, s),
                                                                         op->reduce, op->lua, NULL,
                                                                         NULL, &ew, op->partitions))
                      : sl_stream_reduce_by_key_and_event_window(
                            sl__cfg_count_ones(op, s), op->reduce, NULL, &ew, op->partitions);
        if (k && op->late && !(op->late->node = sl_stream_late(k))) {
            return NULL;
        }
        return k && op->drop_zero ? sl_stream_filter(k, sl_filter_nonzero, NULL) : k;
    }
    if (op->keyed) {
        sl_stream *k =
            op->agg || op->lua
                ? sl__cfg_finish(op, sl__stream_rbkw_state_bytes(sl__cfg_count_ones(op, s),
                                                                 op->reduce, op->lua, op->length_ms,
                                                                 op->slide_ms, op->partitions))
                : sl_stream_reduce_by_key_and_window_state(sl__cfg_count_ones(op, s), op->reduce,
                                                           NULL, op->length_ms, op->slide_ms,
                                                           op->partitions);
        return k && op->drop_zero ? sl_stream_filter(k, sl_filter_nonzero, NULL) : k;
    }
    if (op->agg) {
        /* partial results through the window, finished after; the filter sees partials */
        const sl_reducer *rd = op->drop_zero ? sl__reducer_dropping_zeros(op->agg) : op->agg;
        bool keep = op->drop_zero || op->inverse;
        return sl__cfg_finish(
            op, sl_stream_reduce_by_key_and_window(sl__cfg_count_ones(op, s), op->reduce,
                                                   op->inverse ? sl__reducer_inverse : NULL,
                                                   keep ? sl__reducer_keep : NULL, (void *)rd,
                                                   op->length_ms, op->slide_ms, op->partitions));
    }
    return sl_stream_reduce_by_key_and_window(sl__cfg_count_ones(op, s), op->reduce,
                                              op->inverse ? sl_reduce_sum_inverse : NULL,
                                              op->drop_zero ? sl_filter_nonzero : NULL, op->lua,
                                              op->length_ms, op->slide_ms, op->partitions);
}

sl_stream *sl__cfg_apply_count_by_window(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_count_by_window(s, op->length_ms, op->slide_ms);
}

sl_stream *sl__cfg_apply_reduce_by_window(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl__cfg_finish(op, sl_stream_reduce_by_window(sl__cfg_count_ones(op, s), op->reduce,
                                                         op->lua, op->length_ms, op->slide_ms));
}

sl_stream *sl__cfg_apply_count_by_value_and_window(const cfg_op *op, sl_stream *s,
                                                   sl_stream *const *handles)
{
    (void)handles;
    return sl_stream_count_by_value_and_window(s, op->length_ms, op->slide_ms, op->partitions);
}

/* One record per key and batch (reduced first), folded into the key's state. */
sl_stream *sl__cfg_apply_running(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    s = sl_stream_reduce_by_key(sl__cfg_count_ones(op, s), op->reduce, NULL, op->partitions);
    if (op->agg) {
        return sl_stream_map_with_state(s, sl__reducer_running, (void *)op->agg, op->ttl_ms,
                                        op->partitions);
    }
    return sl_stream_map_with_state(s, sl__yamlops_running, op->run, op->ttl_ms, op->partitions);
}

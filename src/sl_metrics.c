/* sl_metrics.c -- Prometheus text exposition of a context and the registry of gauges that
 * engine modules and connectors publish (sl_metrics_gauge_set).
 *
 * Built-in families (counters end in _total; durations in seconds):
 *   sluice_info{app,version} 1, sluice_start_time_seconds, sluice_batch_interval_seconds,
 *   sluice_receivers, sluice_receivers_active, sluice_batches_completed_total,
 *   sluice_batches_running, sluice_batches_waiting, sluice_records_received_total,
 *   sluice_records_processed_total, sluice_records_failed_total,
 *   sluice_records_oversize_total, sluice_last_batch_scheduling_delay_seconds,
 *   sluice_last_batch_processing_time_seconds, sluice_last_batch_total_delay_seconds,
 *   sluice_state_restored_records_total, sluice_state_restored_bytes_total,
 *   sluice_state_restore_seconds_total, sluice_state_restored_tasks_total,
 *   sluice_state_restoring_tasks (keyed state restored from changelogs);
 *   per input (label input=): sluice_input_records_total, sluice_input_records_oversize_total,
 *   sluice_input_active, sluice_input_last_error_timestamp_seconds, sluice_input_rate_limit,
 *   sluice_input_estimated_rate, sluice_input_waiting; per sink (label sink=):
 * sluice_sink_records_total, sluice_sink_active, sluice_sink_last_error_timestamp_seconds,
 *   sluice_sink_records_rejected_total, sluice_sink_dead_letters_total.
 * Then (sl_metrics_engine.c) the histograms sluice_batch_processing_seconds,
 * sluice_batch_scheduling_delay_seconds and sluice_batch_total_delay_seconds; per operator
 * sluice_operator_{records,seconds,batches}_total; per sink sluice_sink_{seconds,writes}_total.
 * Then the published gauges, sorted by name and labels.
 *
 * The registry is process-wide, keyed by context, behind one mutex: a context has no slot
 * of its own for it. Series are bounded (SL_METRICS_MAX_SERIES per context) and validated
 * when set, so that /metrics is always well-formed whatever a connector passes.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_context.h"
#include "sl_metrics.h"
#include "sl_util.h"

/* ==== Names and labels ==== */

/* Built-in metric names: a published gauge may not take one (the exposition would hold a
 * family twice, which Prometheus rejects). */
static const char *const builtin_names[] = {
    "sluice_info",
    "sluice_start_time_seconds",
    "sluice_batch_interval_seconds",
    "sluice_receivers",
    "sluice_receivers_active",
    "sluice_batches_completed_total",
    "sluice_batches_running",
    "sluice_batches_waiting",
    "sluice_records_received_total",
    "sluice_records_processed_total",
    "sluice_records_failed_total",
    "sluice_records_oversize_total",
    "sluice_late_records_total",
    "sluice_last_batch_scheduling_delay_seconds",
    "sluice_last_batch_processing_time_seconds",
    "sluice_last_batch_total_delay_seconds",
    "sluice_state_restored_records_total",
    "sluice_state_restored_bytes_total",
    "sluice_state_restore_seconds_total",
    "sluice_state_restored_tasks_total",
    "sluice_state_restoring_tasks",
    "sluice_input_records_total",
    "sluice_input_records_oversize_total",
    "sluice_input_active",
    "sluice_input_last_error_timestamp_seconds",
    "sluice_input_rate_limit",
    "sluice_input_estimated_rate",
    "sluice_input_waiting",
    "sluice_sink_records_total",
    "sluice_sink_active",
    "sluice_sink_last_error_timestamp_seconds",
    "sluice_sink_records_rejected_total",
    "sluice_sink_dead_letters_total",
    "sluice_watermark_seconds",
    "sluice_event_time_lag_seconds",
    "sluice_batch_processing_seconds",
    "sluice_batch_scheduling_delay_seconds",
    "sluice_batch_total_delay_seconds",
    "sluice_operator_records_total",
    "sluice_operator_seconds_total",
    "sluice_operator_batches_total",
    "sluice_sink_seconds_total",
    "sluice_sink_writes_total",
    NULL,
};

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

bool sl__metrics_valid_name(const char *s)
{
    if (!s || !is_name_start(*s)) {
        return false;
    }
    for (s++; *s; s++) {
        if (!is_name_char(*s)) {
            return false;
        }
    }
    return true;
}

bool sl__metrics_valid_labels(const char *s)
{
    if (!s || !*s) {
        return true;
    }
    const char *p = s;
    for (;;) {
        /* label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved) */
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')) {
            return false;
        }
        if (p[0] == '_' && p[1] == '_') {
            return false;
        }
        while (*p && *p != '=' && *p != ':' && is_name_char(*p)) {
            p++;
        }
        if (*p++ != '=' || *p++ != '"') {
            return false;
        }
        while (*p != '"') {
            if (*p == '\0' || *p == '\n') {
                return false;
            }
            if (*p == '\\') {
                p++;
                if (*p != '\\' && *p != '"' && *p != 'n') {
                    return false;
                }
            }
            p++;
        }
        p++; /* the closing quote */
        if (*p == '\0') {
            return true;
        }
        if (*p++ != ',') {
            return false;
        }
    }
}

size_t sl_metrics_escape_label(const char *value, char *buf, size_t size)
{
    size_t need = 0;
    for (const char *v = value ? value : ""; *v; v++) {
        const char *rep = NULL;
        char one[2] = {*v, '\0'};
        if (*v == '\\') {
            rep = "\\\\";
        } else if (*v == '"') {
            rep = "\\\"";
        } else if (*v == '\n') {
            rep = "\\n";
        } else {
            rep = one;
        }
        for (const char *r = rep; *r; r++, need++) {
            if (need + 1 < size) {
                buf[need] = *r;
            }
        }
    }
    if (size > 0) {
        buf[need < size ? need : size - 1] = '\0';
    }
    return need;
}

/* Appends value escaped as a label value. */
static void add_label_value(sl_buf *b, const char *value)
{
    char small[256];
    size_t n = sl_metrics_escape_label(value, small, sizeof(small));
    if (n < sizeof(small)) {
        sl__buf_append(b, small, n);
        return;
    }
    char *big = malloc(n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    sl_metrics_escape_label(value, big, n + 1);
    sl__buf_append(b, big, n);
    free(big);
}

/* Appends a HELP text: backslash and newline escaped. */
static void add_help_text(sl_buf *b, const char *help)
{
    for (const char *h = help; *h; h++) {
        if (*h == '\\') {
            sl__buf_append(b, "\\\\", 2);
        } else if (*h == '\n') {
            sl__buf_append(b, "\\n", 2);
        } else {
            sl__buf_append(b, h, 1);
        }
    }
}

/* Appends a sample value: integers exactly, NaN and infinities as Prometheus spells them. */
static void add_value(sl_buf *b, double v)
{
    if (isnan(v)) {
        sl__buf_append(b, "NaN", 3);
    } else if (isinf(v)) {
        sl__buf_append(b, v > 0 ? "+Inf" : "-Inf", 4);
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        sl__buf_printf(b, "%" PRId64, (int64_t)v);
    } else {
        /* The shortest text that reads back as v: 0.3, not 0.29999999999999999. */
        char text[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(text, sizeof(text), "%.*g", prec, v);
            if (strtod(text, NULL) == v) {
                break;
            }
        }
        sl__buf_append(b, text, strlen(text));
    }
}

/* ==== The gauge registry ==== */

typedef struct gauge {
    char *name; /* family */
    char *labels;
    uint64_t hash;
    double value;
} gauge;

typedef struct family {
    char *name;
    char *help;
} family;

typedef struct ctx_gauges {
    sl_context *ctx;
    gauge *g;
    size_t n, cap;
    family *f;
    size_t nf, capf;
    struct ctx_gauges *next;
} ctx_gauges;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static ctx_gauges *registry;

static ctx_gauges *reg_find(sl_context *ctx, bool create)
{
    for (ctx_gauges *c = registry; c; c = c->next) {
        if (c->ctx == ctx) {
            return c;
        }
    }
    if (!create) {
        return NULL;
    }
    ctx_gauges *c = calloc(1, sizeof(*c));
    if (c) {
        c->ctx = ctx;
        c->next = registry;
        registry = c;
    }
    return c;
}

static uint64_t series_hash(const char *name, const char *labels)
{
    return sl__hash(name, strlen(name)) * 31 + sl__hash(labels, strlen(labels));
}

/* The full name: "sluice_" + name unless it has the prefix already. */
static int full_name(const char *name, char *out, size_t size)
{
    if (!sl__metrics_valid_name(name)) {
        return SL_ERR_INVAL;
    }
    bool prefixed = strncmp(name, "sluice_", 7) == 0;
    int n = snprintf(out, size, "%s%s", prefixed ? "" : "sluice_", name);
    if (n < 0 || (size_t)n >= size) {
        return SL_ERR_INVAL;
    }
    for (size_t i = 0; builtin_names[i]; i++) {
        if (strcmp(out, builtin_names[i]) == 0) {
            return SL_ERR_INVAL;
        }
    }
    return SL_OK;
}

static family *family_find(ctx_gauges *c, const char *name)
{
    for (size_t i = 0; i < c->nf; i++) {
        if (strcmp(c->f[i].name, name) == 0) {
            return &c->f[i];
        }
    }
    return NULL;
}

/* Sets the family's help (creating the family). Returns SL_OK or SL_ERR_NOMEM. */
static int family_set(ctx_gauges *c, const char *name, const char *help)
{
    family *f = family_find(c, name);
    if (!f) {
        if (c->nf == c->capf) {
            size_t cap = c->capf ? c->capf * 2 : 8;
            family *nf = realloc(c->f, cap * sizeof(*nf));
            if (!nf) {
                return SL_ERR_NOMEM;
            }
            c->f = nf;
            c->capf = cap;
        }
        f = &c->f[c->nf];
        f->name = strdup(name);
        f->help = NULL;
        if (!f->name) {
            return SL_ERR_NOMEM;
        }
        c->nf++;
    }
    if (help) {
        char clipped[SL_METRICS_MAX_HELP];
        sl__strlcpy(clipped, help, sizeof(clipped));
        char *h = strdup(clipped);
        if (!h) {
            return SL_ERR_NOMEM;
        }
        free(f->help);
        f->help = h;
    }
    return SL_OK;
}

static gauge *gauge_find(ctx_gauges *c, const char *name, const char *labels, uint64_t h)
{
    for (size_t i = 0; i < c->n; i++) {
        gauge *g = &c->g[i];
        if (g->hash == h && strcmp(g->name, name) == 0 && strcmp(g->labels, labels) == 0) {
            return g;
        }
    }
    return NULL;
}

int sl_metrics_gauge_set(sl_context *ctx, const char *name, const char *help, const char *labels,
                         double value)
{
    char full[SL_METRICS_MAX_NAME];
    if (!ctx || full_name(name, full, sizeof(full)) != SL_OK) {
        return SL_ERR_INVAL;
    }
    labels = labels ? labels : "";
    if (strlen(labels) >= SL_METRICS_MAX_LABELS || !sl__metrics_valid_labels(labels)) {
        return SL_ERR_INVAL;
    }
    uint64_t h = series_hash(full, labels);
    int rc = SL_OK;
    pthread_mutex_lock(&reg_lock);
    ctx_gauges *c = reg_find(ctx, true);
    gauge *g = c ? gauge_find(c, full, labels, h) : NULL;
    if (!c) {
        rc = SL_ERR_NOMEM;
    } else if (g) {
        g->value = value;
        if (help) {
            rc = family_set(c, full, help);
        }
    } else if (c->n >= SL_METRICS_MAX_SERIES) {
        rc = SL_ERR_TOOBIG;
    } else {
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 16;
            gauge *ng = realloc(c->g, cap * sizeof(*ng));
            if (ng) {
                c->g = ng;
                c->cap = cap;
            } else {
                rc = SL_ERR_NOMEM;
            }
        }
        if (rc == SL_OK) {
            rc = family_set(c, full, help);
        }
        if (rc == SL_OK) {
            g = &c->g[c->n];
            g->name = strdup(full);
            g->labels = strdup(labels);
            g->hash = h;
            g->value = value;
            if (g->name && g->labels) {
                c->n++;
            } else {
                free(g->name);
                free(g->labels);
                rc = SL_ERR_NOMEM;
            }
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

int sl_metrics_gauge_remove(sl_context *ctx, const char *name, const char *labels)
{
    char full[SL_METRICS_MAX_NAME];
    if (!ctx || full_name(name, full, sizeof(full)) != SL_OK) {
        return SL_ERR_NOTFOUND;
    }
    labels = labels ? labels : "";
    uint64_t h = series_hash(full, labels);
    int rc = SL_ERR_NOTFOUND;
    pthread_mutex_lock(&reg_lock);
    ctx_gauges *c = reg_find(ctx, false);
    gauge *g = c ? gauge_find(c, full, labels, h) : NULL;
    if (g) {
        free(g->name);
        free(g->labels);
        *g = c->g[--c->n];
        rc = SL_OK;
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

void sl__metrics_forget(sl_context *ctx)
{
    pthread_mutex_lock(&reg_lock);
    for (ctx_gauges **pc = &registry; *pc; pc = &(*pc)->next) {
        ctx_gauges *c = *pc;
        if (c->ctx != ctx) {
            continue;
        }
        *pc = c->next;
        for (size_t i = 0; i < c->n; i++) {
            free(c->g[i].name);
            free(c->g[i].labels);
        }
        for (size_t i = 0; i < c->nf; i++) {
            free(c->f[i].name);
            free(c->f[i].help);
        }
        free(c->g);
        free(c->f);
        free(c);
        break;
    }
    pthread_mutex_unlock(&reg_lock);
}

size_t sl__metrics_gauge_count(sl_context *ctx)
{
    pthread_mutex_lock(&reg_lock);
    ctx_gauges *c = reg_find(ctx, false);
    size_t n = c ? c->n : 0;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

static int gauge_cmp(const void *a, const void *b)
{
    const gauge *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

/* Appends the published gauges, grouped by family, sorted. */
static void render_gauges(sl_context *ctx, sl_buf *b)
{
    pthread_mutex_lock(&reg_lock);
    ctx_gauges *c = reg_find(ctx, false);
    if (!c || c->n == 0) {
        pthread_mutex_unlock(&reg_lock);
        return;
    }
    qsort(c->g, c->n, sizeof(gauge), gauge_cmp);
    const char *prev = NULL;
    for (size_t i = 0; i < c->n; i++) {
        gauge *g = &c->g[i];
        if (!prev || strcmp(prev, g->name) != 0) {
            family *f = family_find(c, g->name);
            sl__buf_printf(b, "# HELP %s ", g->name);
            add_help_text(b, f && f->help ? f->help : "Published by a sluice module.");
            sl__buf_printf(b, "\n# TYPE %s gauge\n", g->name);
            prev = g->name;
        }
        sl__buf_append(b, g->name, strlen(g->name));
        if (g->labels[0]) {
            sl__buf_printf(b, "{%s}", g->labels);
        }
        sl__buf_append(b, " ", 1);
        add_value(b, g->value);
        sl__buf_append(b, "\n", 1);
    }
    pthread_mutex_unlock(&reg_lock);
}

/* ==== Built-in metrics ==== */

static void family_head(sl_buf *b, const char *name, const char *type, const char *help)
{
    sl__buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(sl_buf *b, const char *name, double v)
{
    sl__buf_append(b, name, strlen(name));
    sl__buf_append(b, " ", 1);
    add_value(b, v);
    sl__buf_append(b, "\n", 1);
}

static void one(sl_buf *b, const char *name, const char *type, const char *help, double v)
{
    family_head(b, name, type, help);
    sample(b, name, v);
}

/* One family with a sample per instance of role: label is "input" or "sink". */
typedef double (*inst_value_fn)(const sl_instance_info *i);

static void per_instance(sl_buf *b, const sl_instance_info *infos, size_t n, unsigned role,
                         const char *name, const char *type, const char *help, inst_value_fn fn)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (infos[i].role != role) {
            continue;
        }
        if (!any) {
            family_head(b, name, type, help);
            any = true;
        }
        sl__buf_printf(b, "%s{%s=\"", name, role == SL_SOURCE ? "input" : "sink");
        add_label_value(b, infos[i].name);
        sl__buf_append(b, "\"} ", 3);
        add_value(b, fn(&infos[i]));
        sl__buf_append(b, "\n", 1);
    }
}

/* Per stream with windows on event time (label stream=): its watermark and how far it is
 * behind the clock; streams with no record time yet are left out. */
static void event_times(sl_context *ctx, sl_buf *b)
{
    sl_event_time_info et[16];
    size_t n = SL_MIN(sl_context_event_times(ctx, et, SL_ARRAY_LEN(et)), SL_ARRAY_LEN(et));
    int64_t now = sl__now_ms();
    for (int k = 0; k < 2; k++) {
        bool any = false;
        for (size_t i = 0; i < n; i++) {
            if (et[i].watermark == INT64_MIN) {
                continue;
            }
            const char *name = k ? "sluice_event_time_lag_seconds" : "sluice_watermark_seconds";
            if (!any) {
                family_head(b, name, "gauge",
                            k ? "How far the stream's watermark is behind the clock, seconds."
                              : "The stream's event-time watermark (the lowest of its "
                                "partitions'), seconds since the epoch.");
                any = true;
            }
            sl__buf_printf(b, "%s{stream=\"", name);
            add_label_value(b, et[i].stream);
            sl__buf_append(b, "\"} ", 3);
            add_value(b, (double)(k ? now - et[i].watermark : et[i].watermark) / 1000.0);
            sl__buf_append(b, "\n", 1);
        }
    }
}

static double v_records(const sl_instance_info *i)
{
    return (double)i->records;
}

static double v_oversize(const sl_instance_info *i)
{
    return (double)i->oversize;
}

static double v_rejected(const sl_instance_info *i)
{
    return (double)i->rejected;
}

static double v_dead_letters(const sl_instance_info *i)
{
    return (double)i->dead_letters;
}

static double v_active(const sl_instance_info *i)
{
    return i->active ? 1 : 0;
}

static double v_waiting(const sl_instance_info *i)
{
    return i->waiting ? 1 : 0;
}

static double v_error_time(const sl_instance_info *i)
{
    return (double)i->last_error_time / 1000.0;
}

static double v_rate_limit(const sl_instance_info *i)
{
    return i->rate_limit;
}

static double v_estimated_rate(const sl_instance_info *i)
{
    return i->estimated_rate;
}

/* The families with a sample per input or per sink, in the order they are exported. */
static const struct {
    unsigned role;
    const char *name, *type, *help;
    inst_value_fn fn;
} instance_metrics[] = {
    {SL_SOURCE, "sluice_input_records_total", "counter", "Records received by the input.",
     v_records},
    {SL_SOURCE, "sluice_input_records_oversize_total", "counter",
     "Records the input dropped for exceeding max_record_size.", v_oversize},
    {SL_SOURCE, "sluice_input_active", "gauge", "1 when the input is connected or reading, else 0.",
     v_active},
    {SL_SOURCE, "sluice_input_last_error_timestamp_seconds", "gauge",
     "When the input's last error happened, in seconds since the epoch (0: none).", v_error_time},
    {SL_SOURCE, "sluice_input_rate_limit", "gauge",
     "The input's rate limit in force (records/s): max_rate or the backpressure estimate, the "
     "lower; 0: none.",
     v_rate_limit},
    {SL_SOURCE, "sluice_input_estimated_rate", "gauge",
     "The backpressure (PID) estimate of the rate the pipeline keeps up with (records/s); 0: none "
     "yet.",
     v_estimated_rate},
    {SL_SOURCE, "sluice_input_waiting", "gauge",
     "1 when the input waits for partitions (none assigned to it yet), else 0.", v_waiting},
    {SL_SINK, "sluice_sink_records_total", "counter", "Records written by the sink.", v_records},
    {SL_SINK, "sluice_sink_active", "gauge", "1 when the sink's last write succeeded, else 0.",
     v_active},
    {SL_SINK, "sluice_sink_last_error_timestamp_seconds", "gauge",
     "When the sink's last error happened, in seconds since the epoch (0: none).", v_error_time},
    {SL_SINK, "sluice_sink_records_rejected_total", "counter",
     "Records the sink could not write and left out (errors.tolerance: all).", v_rejected},
    {SL_SINK, "sluice_sink_dead_letters_total", "counter",
     "Rejected records written to the sink's dead-letter target (a retried batch may write some "
     "twice).",
     v_dead_letters},
};

void sl__metrics_snapshot(sl_context *ctx, sl_metrics_snapshot *snap)
{
    sl_context_get_stats(ctx, &snap->stats);
    sl_batch_info running;
    size_t pending = sl_context_pending_batches(ctx, &running, 1);
    snap->batch_running = pending > 0 && running.processing_start > 0;
    snap->state = sl__context_state_name(ctx);
}

void sl__metrics_render(sl_context *ctx, const sl_metrics_snapshot *snap, sl_buf *b)
{
    sl_metrics_snapshot own;
    if (!snap) {
        sl__metrics_snapshot(ctx, &own);
        snap = &own;
    }
    const sl_context_stats st = snap->stats;
    bool is_running = snap->batch_running;

    size_t n = sl_context_instances(ctx, NULL, 0);
    sl_instance_info *infos = n ? calloc(n, sizeof(*infos)) : NULL;
    if (n && !infos) {
        b->failed = true;
        return;
    }
    n = infos ? SL_MIN(n, sl_context_instances(ctx, infos, n)) : 0;
    int receivers = 0, receivers_active = 0;
    for (size_t i = 0; i < n; i++) {
        if (infos[i].role == SL_SOURCE && sl__context_source_is_receiver(ctx, infos[i].name)) {
            receivers++;
            receivers_active += infos[i].active ? 1 : 0;
        }
    }

    family_head(b, "sluice_info", "gauge", "Application name and sluice version; always 1.");
    sl__buf_append(b, "sluice_info{app=\"", 17);
    add_label_value(b, sl_context_name(ctx));
    sl__buf_printf(b, "\",version=\"%s\"} 1\n", SLUICE_VERSION);
    one(b, "sluice_start_time_seconds", "gauge",
        "When the pipeline started, in seconds since the epoch (0 before the start).",
        (double)st.start_time / 1000.0);
    one(b, "sluice_batch_interval_seconds", "gauge", "The batch interval in seconds.",
        (double)sl_context_batch_interval(ctx) / 1000.0);
    one(b, "sluice_receivers", "gauge", "Inputs that receive with a receiver thread.", receivers);
    one(b, "sluice_receivers_active", "gauge", "Receivers that are connected now.",
        receivers_active);
    one(b, "sluice_batches_completed_total", "counter", "Batches completed since the start.",
        (double)st.batches_completed);
    one(b, "sluice_batches_running", "gauge", "Batches being processed now (0 or 1).",
        is_running ? 1 : 0);
    one(b, "sluice_batches_waiting", "gauge", "Batches generated and waiting to be processed.",
        (double)st.batches_waiting);
    one(b, "sluice_records_received_total", "counter", "Records received by every input.",
        (double)st.records_received);
    one(b, "sluice_records_processed_total", "counter", "Records of completed batches.",
        (double)st.records_processed);
    one(b, "sluice_records_failed_total", "counter",
        "Records rejected: by operators, by a source (undecodable) or by a sink (not written).",
        (double)st.records_failed);
    one(b, "sluice_records_oversize_total", "counter",
        "Records that inputs dropped for exceeding max_record_size.", (double)st.records_oversize);
    one(b, "sluice_late_records_total", "counter",
        "Records that came after the watermark passed every event-time window they belong to "
        "(left out).",
        (double)st.records_late);
    one(b, "sluice_last_batch_scheduling_delay_seconds", "gauge",
        "Scheduling delay of the last completed batch (processing start - submission).",
        (double)st.last_scheduling_delay / 1000.0);
    one(b, "sluice_last_batch_processing_time_seconds", "gauge",
        "Processing time of the last completed batch.", (double)st.last_processing_time / 1000.0);
    one(b, "sluice_last_batch_total_delay_seconds", "gauge",
        "Total delay of the last completed batch (processing end - batch time).",
        (double)st.last_total_delay / 1000.0);
    one(b, "sluice_state_restored_records_total", "counter",
        "Records of keyed state read back from changelogs when inputs took partitions.",
        (double)st.restored_records);
    one(b, "sluice_state_restored_bytes_total", "counter",
        "Bytes of keyed state read back from changelogs.", (double)st.restored_bytes);
    one(b, "sluice_state_restore_seconds_total", "counter",
        "Time spent restoring keyed state from changelogs.", (double)st.restore_ms / 1000.0);
    one(b, "sluice_state_restored_tasks_total", "counter",
        "Tasks whose keyed state was restored from changelogs.", (double)st.restored_tasks);
    one(b, "sluice_state_restoring_tasks", "gauge",
        "Tasks whose keyed state is being restored now.", st.restoring);

    for (size_t i = 0; i < SL_ARRAY_LEN(instance_metrics); i++) {
        per_instance(b, infos, n, instance_metrics[i].role, instance_metrics[i].name,
                     instance_metrics[i].type, instance_metrics[i].help, instance_metrics[i].fn);
    }
    free(infos);
    event_times(ctx, b);
    sl__metrics_render_engine(ctx, b);

    render_gauges(ctx, b);
}

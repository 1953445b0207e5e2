/* sl_http_json.c -- the status server's JSON API documents and its cache of completed batches.
 *
 * ==== JSON shapes ====
 * Times are ms since the epoch, durations ms; null stands for "not yet" or "none".
 *
 * status:
 *   {"app": "wordcount", "version": "0.1.0", "state": "created|running|stopping|stopped",
 *    "phase": the state, or while running "waiting for partitions" (an input waits) or
 *             "restoring state" (restoring > 0), else "running",
 *    "now": 1700000000000, "start_time": 1700000000000|null, "uptime_ms": 5000,
 *    "batch_interval_ms": 1000, "batches_completed": 5, "batches_running": 1,
 *    "batches_waiting": 0, "records_received": 100, "records_processed": 90,
 *    "records_failed": 0, "records_oversize": 0, "inputs": 2, "inputs_active": 2,
 *    "inputs_waiting": 0 (for partitions), "receivers": 1, "receivers_active": 1, "sinks": 1,
 *    "last_batch": null | {"batch_time": T, "scheduling_delay_ms": 1,
 *                          "processing_time_ms": 12, "total_delay_ms": 13},
 *    "recent": {"batches": 5, "records": 90, "avg_input_rate": 18.0,
 *               "avg_scheduling_delay_ms": 1.2, "avg_processing_time_ms": 11.0,
 *               "avg_total_delay_ms": 12.2},       (averages over the last 1000 batches,
 *                                                    null when there is none)
 *    "restore": {"restoring": 0 (tasks now), "tasks": 3 (restored), "records": 1000,
 *                "bytes": 5000000, "ms": 2000, "mb_per_s": 2.5 (0 when ms is 0)}}
 *               (keyed state restored from changelogs when inputs took partitions)
 *    "event_time": [{"stream": "per_user", "watermark": T|null, "stream_time": T|null,
 *                    "lag_ms": n|null (now - watermark), "late_records": 0}]
 *               (streams with windows on event time)
 * batch (an element of /api/v1/batches, or /api/v1/batches/T):
 *   {"batch_time": T, "status": "completed|running|waiting", "submission_time": T,
 *    "processing_start": T|null, "processing_end": T|null, "scheduling_delay_ms": n|null,
 *    "processing_time_ms": n|null, "total_delay_ms": n|null, "records": 18,
 *    "input_rate": 18.0 (records per second of batch interval), "failed_records": 0,
 *    "outputs_total": 1, "outputs_succeeded": 1, "error": null|"...",
 *    "inputs": [{"name": "lines", "records": 18, "rate_limit": 0 (when the batch was cut),
 *                "description": "2 blocks"}]}
 * input (an element of /api/v1/inputs):
 *   {"name": "lines", "type": "tcp", "receiver": true, "active": true, "records": 100,
 *    "records_oversize": 0, "avg_rate": 18.0 (over the last 1000 batches),
 *    "last_batch_records": 18, "max_rate": 0 (configured; 0: none), "rate_limit": 0 (in force
 *    now: max_rate or the backpressure estimate; 0: none), "estimated_rate": 0 (backpressure;
 *    0: none yet), "waiting": false (for partitions), "last_error": null | {"time": T,
 *    "message": "..."}}
 * sink (an element of /api/v1/sinks):
 *   {"name": "out", "type": "stdout", "state": "ok|failing|idle", "active": true,
 *    "records": 90, "records_rejected": 0 (left out: errors.tolerance all),
 *    "dead_letters": 0 (written to errors.dead_letter),
 *    "last_error": null | {"time": T, "message": "..."}}
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sl_http_int.h"

#define HTTP_MAX_INSTANCES 1024
#define HTTP_SNAPSHOT_MS   50 /* how old the engine's statistics served may be */

/* ==== Small helpers ==== */

/* Scrubs one instance's secret option values from msg. */
static void scrub_instance(char *msg, size_t size, const sl_instance *ins)
{
    sl__scrub_options(
        msg, size, ins->role == SL_SOURCE ? sl_common_source_options() : sl_common_sink_options(),
        ins->conn->options, ins->opts);
}

/* Scrubs the token and every instance's secrets from msg. */
static void scrub(const sl_http_server *srv, char *msg, size_t size)
{
    sl__scrub(msg, size, srv->token);
    sl_instance *lists[2] = {srv->ctx->sources, srv->ctx->sinks};
    for (int k = 0; k < 2; k++) {
        for (sl_instance *ins = lists[k]; ins; ins = ins->next) {
            scrub_instance(msg, size, ins);
        }
    }
}

static sl_instance *find_instance(sl_context *ctx, const char *name, unsigned role)
{
    for (sl_instance *ins = role == SL_SOURCE ? ctx->sources : ctx->sinks; ins; ins = ins->next) {
        if (ins->name == name || strcmp(ins->name, name) == 0) {
            return ins;
        }
    }
    return NULL;
}

static json_t *json_ms(int64_t v, bool present)
{
    return present ? json_integer((json_int_t)v) : json_null();
}

static json_t *json_avg(double sum, size_t n)
{
    return n ? json_real(sum / (double)n) : json_null();
}

/* The engine's state, at most HTTP_SNAPSHOT_MS old unless a batch completed since: the
 * context's lock is taken a few dozen times a second whatever the number of requests (a
 * low-priority server thread holding it would make the engine wait). */
void sl__http_snapshot(sl_http_server *srv, sl_metrics_snapshot *out)
{
    int64_t now = sl__mono_ns() / 1000000;
    uint64_t done = atomic_load(&srv->ctx->batches_completed);
    pthread_mutex_lock(&srv->snap_lock);
    if (!srv->snap_time || now - srv->snap_time >= HTTP_SNAPSHOT_MS ||
        done != srv->snap.stats.batches_completed) {
        sl__metrics_snapshot(srv->ctx, &srv->snap);
        srv->snap_time = now ? now : 1;
    }
    *out = srv->snap;
    pthread_mutex_unlock(&srv->snap_lock);
}

/* ==== The cache of completed batches ==== */

/* Copies the batches completed since the last call into the ring. Takes the context's lock
 * (inside the public calls) only to copy the new ones. @locks cache_lock held. */
void sl__http_cache_refresh(sl_http_server *srv, uint64_t completed)
{
    if (completed == srv->seen) {
        return;
    }
    uint64_t delta = completed > srv->seen ? completed - srv->seen : HTTP_BATCHES_KEPT;
    size_t want = (size_t)SL_MIN(delta + 1, (uint64_t)HTTP_BATCHES_KEPT);
    size_t got = sl_context_recent_batches(srv->ctx, srv->scratch, want);
    int64_t newest = INT64_MIN;
    if (srv->nring) {
        newest = srv->ring[(srv->next + HTTP_BATCHES_KEPT - 1) % HTTP_BATCHES_KEPT].batch_time;
    }
    for (size_t i = got; i-- > 0;) {
        if (srv->scratch[i].batch_time <= newest) {
            continue;
        }
        srv->ring[srv->next] = srv->scratch[i];
        srv->next = (srv->next + 1) % HTTP_BATCHES_KEPT;
        if (srv->nring < HTTP_BATCHES_KEPT) {
            srv->nring++;
        }
    }
    srv->seen = completed;
}

/* The i-th newest cached batch. @locks cache_lock held. */
const sl_batch_info *sl__http_cache_at(const sl_http_server *srv, size_t i)
{
    return &srv->ring[(srv->next + 2 * HTTP_BATCHES_KEPT - 1 - i) % HTTP_BATCHES_KEPT];
}

/* ==== JSON documents ==== */

json_t *sl__http_batch_json(const sl_http_server *srv, const sl_batch_info *b, const char *status)
{
    double interval_s = (double)sl_context_batch_interval(srv->ctx) / 1000.0;
    bool started = b->processing_start > 0;
    bool done = strcmp(status, "completed") == 0;
    char err[sizeof(b->error)];
    sl__strlcpy(err, b->error, sizeof(err));
    scrub(srv, err, sizeof(err));

    json_t *inputs = json_array();
    for (size_t i = 0; i < b->ninputs && i < SL_MAX_INPUTS_PER_INFO; i++) {
        char desc[sizeof(b->inputs[i].description)];
        sl__strlcpy(desc, b->inputs[i].description, sizeof(desc));
        scrub(srv, desc, sizeof(desc));
        json_array_append_new(inputs,
                              json_pack("{s:s, s:I, s:f, s:s}", "name",
                                        b->inputs[i].name ? b->inputs[i].name : "", "records",
                                        (json_int_t)b->inputs[i].records, "rate_limit",
                                        b->inputs[i].rate, "description", desc));
    }
    json_t *o = json_object();
    json_object_set_new(o, "batch_time", json_integer(b->batch_time));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "submission_time", json_integer(b->submission_time));
    json_object_set_new(o, "processing_start", json_ms(b->processing_start, started));
    json_object_set_new(o, "processing_end", json_ms(b->processing_end, done));
    json_object_set_new(o, "scheduling_delay_ms", json_ms(b->scheduling_delay, started));
    json_object_set_new(o, "processing_time_ms", json_ms(b->processing_time, done));
    json_object_set_new(o, "total_delay_ms", json_ms(b->total_delay, done));
    json_object_set_new(o, "records", json_integer((json_int_t)b->records));
    json_object_set_new(o, "input_rate",
                        json_real(interval_s > 0 ? (double)b->records / interval_s : 0));
    json_object_set_new(o, "failed_records", json_integer((json_int_t)b->failed_records));
    json_object_set_new(o, "outputs_total", json_integer(b->outputs_total));
    json_object_set_new(o, "outputs_succeeded", json_integer(b->outputs_succeeded));
    json_object_set_new(o, "error", err[0] ? json_string(err) : json_null());
    json_object_set_new(o, "inputs", inputs);
    return o;
}

/* Averages over the cached batches. @locks cache_lock held. */
typedef struct recent_stats {
    size_t n;
    uint64_t records;
    double rate, sched, proc, total;
} recent_stats;

static recent_stats recent(const sl_http_server *srv)
{
    recent_stats r = {0};
    double interval_s = (double)sl_context_batch_interval(srv->ctx) / 1000.0;
    for (size_t i = 0; i < srv->nring; i++) {
        const sl_batch_info *b = sl__http_cache_at(srv, i);
        r.n++;
        r.records += b->records;
        r.rate += interval_s > 0 ? (double)b->records / interval_s : 0;
        r.sched += (double)SL_MAX(b->scheduling_delay, 0);
        r.proc += (double)SL_MAX(b->processing_time, 0);
        r.total += (double)SL_MAX(b->total_delay, 0);
    }
    return r;
}

/* The instances, or NULL when out of memory; *n is set. Free with free(). */
sl_instance_info *sl__http_instances(sl_context *ctx, size_t *n)
{
    size_t want = SL_MIN(sl_context_instances(ctx, NULL, 0), (size_t)HTTP_MAX_INSTANCES);
    sl_instance_info *infos = calloc(want ? want : 1, sizeof(*infos));
    if (!infos) {
        return NULL;
    }
    *n = SL_MIN(want, sl_context_instances(ctx, infos, want));
    return infos;
}

/* The restores of keyed state from changelogs, with their throughput. */
static json_t *restore_json(const sl_context_stats *st)
{
    double mb_per_s = st->restore_ms > 0
                          ? (double)st->restored_bytes / 1e6 / ((double)st->restore_ms / 1000.0)
                          : 0;
    json_t *o = json_object();
    json_object_set_new(o, "restoring", json_integer(st->restoring));
    json_object_set_new(o, "tasks", json_integer((json_int_t)st->restored_tasks));
    json_object_set_new(o, "records", json_integer((json_int_t)st->restored_records));
    json_object_set_new(o, "bytes", json_integer((json_int_t)st->restored_bytes));
    json_object_set_new(o, "ms", json_integer((json_int_t)st->restore_ms));
    json_object_set_new(o, "mb_per_s", json_real(mb_per_s));
    return o;
}

/* Where event time is in the streams with windows on event time. */
static json_t *event_time_json(sl_context *ctx)
{
    sl_event_time_info et[16];
    size_t n = SL_MIN(sl_context_event_times(ctx, et, SL_ARRAY_LEN(et)), SL_ARRAY_LEN(et));
    int64_t now = sl__now_ms();
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        bool wm = et[i].watermark != INT64_MIN;
        json_t *o = json_object();
        json_object_set_new(o, "stream", json_string(et[i].stream));
        json_object_set_new(o, "watermark", json_ms(et[i].watermark, wm));
        json_object_set_new(o, "stream_time",
                            json_ms(et[i].stream_time, et[i].stream_time != INT64_MIN));
        json_object_set_new(o, "lag_ms", json_ms(now - et[i].watermark, wm));
        json_object_set_new(o, "late_records", json_integer((json_int_t)et[i].late_records));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *last_error_json(const sl_http_server *srv, const sl_instance_info *i)
{
    if (!i->last_error_time && !i->last_error[0]) {
        return json_null();
    }
    char msg[sizeof(i->last_error)];
    sl__strlcpy(msg, i->last_error, sizeof(msg));
    scrub(srv, msg, sizeof(msg));
    return json_pack("{s:I, s:s}", "time", (json_int_t)i->last_error_time, "message", msg);
}

json_t *sl__http_status_json(sl_http_server *srv)
{
    sl_context *ctx = srv->ctx;
    sl_metrics_snapshot snap;
    sl__http_snapshot(srv, &snap);
    const sl_context_stats st = snap.stats;
    bool is_running = snap.batch_running;
    size_t n = 0;
    sl_instance_info *infos = sl__http_instances(ctx, &n);
    if (!infos) {
        return NULL;
    }
    int inputs = 0, inputs_active = 0, inputs_waiting = 0, receivers = 0, receivers_active = 0;
    int sinks = 0;
    for (size_t i = 0; i < n; i++) {
        if (infos[i].role == SL_SINK) {
            sinks++;
            continue;
        }
        inputs++;
        inputs_active += infos[i].active;
        inputs_waiting += infos[i].waiting;
        sl_instance *ins = find_instance(ctx, infos[i].name, SL_SOURCE);
        if (ins && ins->receiver) {
            receivers++;
            receivers_active += infos[i].active;
        }
    }
    free(infos);

    pthread_mutex_lock(&srv->cache_lock);
    sl__http_cache_refresh(srv, st.batches_completed);
    recent_stats r = recent(srv);
    json_t *last = json_null();
    if (srv->nring) {
        const sl_batch_info *b = sl__http_cache_at(srv, 0);
        json_decref(last);
        last =
            json_pack("{s:I, s:I, s:I, s:I}", "batch_time", (json_int_t)b->batch_time,
                      "scheduling_delay_ms", (json_int_t)b->scheduling_delay, "processing_time_ms",
                      (json_int_t)b->processing_time, "total_delay_ms", (json_int_t)b->total_delay);
    }
    pthread_mutex_unlock(&srv->cache_lock);

    int64_t now = sl__now_ms();
    json_t *rec = json_object();
    json_object_set_new(rec, "batches", json_integer((json_int_t)r.n));
    json_object_set_new(rec, "records", json_integer((json_int_t)r.records));
    json_object_set_new(rec, "avg_input_rate", json_avg(r.rate, r.n));
    json_object_set_new(rec, "avg_scheduling_delay_ms", json_avg(r.sched, r.n));
    json_object_set_new(rec, "avg_processing_time_ms", json_avg(r.proc, r.n));
    json_object_set_new(rec, "avg_total_delay_ms", json_avg(r.total, r.n));

    const char *phase = snap.state;
    if (strcmp(phase, "running") == 0) {
        phase = inputs_waiting     ? "waiting for partitions"
                : st.restoring > 0 ? "restoring state"
                                   : "running";
    }

    json_t *o = json_object();
    json_object_set_new(o, "app", json_string(sl_context_name(ctx)));
    json_object_set_new(o, "version", json_string(SLUICE_VERSION));
    json_object_set_new(o, "state", json_string(snap.state));
    json_object_set_new(o, "phase", json_string(phase));
    json_object_set_new(o, "now", json_integer(now));
    json_object_set_new(o, "start_time", json_ms(st.start_time, st.start_time > 0));
    json_object_set_new(o, "uptime_ms", json_integer(st.start_time > 0 ? now - st.start_time : 0));
    json_object_set_new(o, "batch_interval_ms", json_integer(sl_context_batch_interval(ctx)));
    json_object_set_new(o, "batches_completed", json_integer((json_int_t)st.batches_completed));
    json_object_set_new(o, "batches_running", json_integer(is_running ? 1 : 0));
    json_object_set_new(o, "batches_waiting", json_integer((json_int_t)st.batches_waiting));
    json_object_set_new(o, "records_received", json_integer((json_int_t)st.records_received));
    json_object_set_new(o, "records_processed", json_integer((json_int_t)st.records_processed));
    json_object_set_new(o, "records_failed", json_integer((json_int_t)st.records_failed));
    json_object_set_new(o, "records_late", json_integer((json_int_t)st.records_late));
    json_object_set_new(o, "records_oversize", json_integer((json_int_t)st.records_oversize));
    json_object_set_new(o, "inputs", json_integer(inputs));
    json_object_set_new(o, "inputs_active", json_integer(inputs_active));
    json_object_set_new(o, "inputs_waiting", json_integer(inputs_waiting));
    json_object_set_new(o, "receivers", json_integer(receivers));
    json_object_set_new(o, "receivers_active", json_integer(receivers_active));
    json_object_set_new(o, "sinks", json_integer(sinks));
    json_object_set_new(o, "last_batch", last);
    json_object_set_new(o, "recent", rec);
    json_object_set_new(o, "restore", restore_json(&st));
    json_object_set_new(o, "event_time", event_time_json(srv->ctx));
    return o;
}

json_t *sl__http_inputs_json(sl_http_server *srv)
{
    sl_context *ctx = srv->ctx;
    sl_metrics_snapshot snap;
    sl__http_snapshot(srv, &snap);
    const sl_context_stats st = snap.stats;
    size_t n = 0;
    sl_instance_info *infos = sl__http_instances(ctx, &n);
    if (!infos) {
        return NULL;
    }
    double interval_s = (double)sl_context_batch_interval(ctx) / 1000.0;
    json_t *arr = json_array();
    pthread_mutex_lock(&srv->cache_lock);
    sl__http_cache_refresh(srv, st.batches_completed);
    for (size_t i = 0; i < n; i++) {
        const sl_instance_info *in = &infos[i];
        if (in->role != SL_SOURCE) {
            continue;
        }
        uint64_t sum = 0, last = 0;
        for (size_t k = 0; k < srv->nring; k++) {
            const sl_batch_info *b = sl__http_cache_at(srv, k);
            for (size_t j = 0; j < b->ninputs && j < SL_MAX_INPUTS_PER_INFO; j++) {
                if (b->inputs[j].name && strcmp(b->inputs[j].name, in->name) == 0) {
                    sum += b->inputs[j].records;
                    last = k == 0 ? b->inputs[j].records : last;
                }
            }
        }
        double avg =
            srv->nring && interval_s > 0 ? (double)sum / ((double)srv->nring * interval_s) : 0;
        sl_instance *ins = find_instance(ctx, in->name, SL_SOURCE);
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(in->name));
        json_object_set_new(o, "type", json_string(in->type));
        json_object_set_new(o, "receiver", json_boolean(ins && ins->receiver));
        json_object_set_new(o, "active", json_boolean(in->active));
        json_object_set_new(o, "records", json_integer((json_int_t)in->records));
        json_object_set_new(o, "records_oversize", json_integer((json_int_t)in->oversize));
        json_object_set_new(o, "avg_rate", json_real(avg));
        json_object_set_new(o, "last_batch_records", json_integer((json_int_t)last));
        json_object_set_new(o, "max_rate", json_real(in->max_rate));
        json_object_set_new(o, "rate_limit", json_real(in->rate_limit));
        json_object_set_new(o, "estimated_rate", json_real(in->estimated_rate));
        json_object_set_new(o, "waiting", json_boolean(in->waiting));
        json_object_set_new(o, "last_error", last_error_json(srv, in));
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&srv->cache_lock);
    free(infos);
    return arr;
}

json_t *sl__http_sinks_json(sl_http_server *srv)
{
    size_t n = 0;
    sl_instance_info *infos = sl__http_instances(srv->ctx, &n);
    if (!infos) {
        return NULL;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const sl_instance_info *in = &infos[i];
        if (in->role != SL_SINK) {
            continue;
        }
        const char *state = in->active ? "ok" : in->last_error_time ? "failing" : "idle";
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(in->name));
        json_object_set_new(o, "type", json_string(in->type));
        json_object_set_new(o, "state", json_string(state));
        json_object_set_new(o, "active", json_boolean(in->active));
        json_object_set_new(o, "records", json_integer((json_int_t)in->records));
        json_object_set_new(o, "records_rejected", json_integer((json_int_t)in->rejected));
        json_object_set_new(o, "dead_letters", json_integer((json_int_t)in->dead_letters));
        json_object_set_new(o, "last_error", last_error_json(srv, in));
        json_array_append_new(arr, o);
    }
    free(infos);
    return arr;
}

/* Pending batches (running first, then waiting) appended to arr while limit allows and
 * their time is after since. */
void sl__http_append_pending(sl_http_server *srv, json_t *arr, size_t limit, int64_t since)
{
    sl_batch_info *p = calloc(HTTP_MAX_PENDING, sizeof(*p));
    if (!p) {
        return;
    }
    size_t n = sl_context_pending_batches(srv->ctx, p, HTTP_MAX_PENDING);
    for (size_t i = 0; i < n && json_array_size(arr) < limit; i++) {
        if (p[i].batch_time > since) {
            const char *st = p[i].processing_start > 0 ? "running" : "waiting";
            json_array_append_new(arr, sl__http_batch_json(srv, &p[i], st));
        }
    }
    free(p);
}

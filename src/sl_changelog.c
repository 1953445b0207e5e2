/* sl_changelog.c -- keyed state that moves with its partitions: a stateful stream's
 * changelog sink, the state changes it gets after each batch, restores when a source takes a
 * partition, and drops when it loses one (see "Keyed state" in sl_connector.h).
 *
 * A key's task is the partition of the source its records came from (their meta). A restore
 * or a drop is asked on the thread that generates a batch (a source's next_batch asking where
 * the sinks are, a rebalance taking partitions) and applied by the job thread just before it
 * computes that batch: batches generated earlier still see the state they were made for. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_engine.h"

/* The encoded state: a version byte, the number's type, the number and the last update time
 * (little-endian 64-bit each), then the state's bytes. */
#define STATE_VERSION 1
#define STATE_HEAD    18

typedef struct chg_op {
    int64_t gen;      /* applied before computing this batch */
    int32_t task;     /* the partition whose state is dropped, then restored */
    bool restore;     /* false: dropped only */
    int64_t position; /* restored: the input position the state reflects, -1 none */
    sl_recvec recs;
    sl_arena arena;
    struct chg_op *next;
} chg_op;

typedef struct sl_chg {
    sl_instance *sink;
    pthread_mutex_t lock; /* guards ops */
    chg_op *ops, *ops_tail;
    sl_dataset *changes; /* the changes of the last computed batch (job thread) */
    /* Per task (grown as needed): the position the restored state reflects (-1: none;
     * INT64_MAX: dropped, the task is not this instance's), and
     * whether the batch being computed is behind it. */
    int64_t *held;
    bool *skip;
    size_t ntasks;
} sl_chg;

/* ==== Attaching a changelog ==== */

/* The keyed state a stream's records come from: its own, or that of the stateful node a
 * chain of one-parent operators (a map, a filter) leads back to; NULL for none. */
static sl_stream *state_node(sl_stream *s)
{
    while (s->kind != SL_OP_UPDATE_STATE && s->kind != SL_OP_MAP_STATE && s->nparents == 1 &&
           (s->kind == SL_OP_MAP || s->kind == SL_OP_MAP_VALUES || s->kind == SL_OP_FILTER ||
            s->kind == SL_OP_FLAT_MAP)) {
        s = s->parents[0];
    }
    return s->kind == SL_OP_UPDATE_STATE || s->kind == SL_OP_MAP_STATE ? s : NULL;
}

int sl__changelog_attach(sl_stream *s, sl_instance *sink, char *errstr, size_t errsize)
{
    /* The stream's keyed state: its own, or that of the stateful node a chain of one-parent
     * operators (a map, a filter) leads back to. */
    sl_stream *from = s;
    s = state_node(s);
    if (!s) {
        s = from;
        snprintf(errstr, errsize,
                 "sink '%s' is a changelog, but stream '%s' keeps no keyed state (a changelog "
                 "is for update_state_by_key, map_with_state, the running op and "
                 "reduce_by_key_and_window with keyed: true)",
                 sink->name, s->name);
        return SL_ERR_INVAL;
    }
    if (!sink->conn->restore_state) {
        snprintf(errstr, errsize,
                 "sink '%s': type %s cannot hold a changelog (it cannot read state back)",
                 sink->name, sink->conn->name);
        return SL_ERR_INVAL;
    }
    if (s->chg) {
        snprintf(errstr, errsize, "stream '%s' has a changelog already: sink '%s'", s->name,
                 s->chg->sink->name);
        return SL_ERR_INVAL;
    }
    /* Keys reduced on their way from the source keep its partition. */
    for (sl_stream *a = s->parents[0]; a && a->nparents == 1; a = a->parents[0]) {
        if (a->kind == SL_OP_REDUCE_BY_KEY && !(a->flags & SL_RBK_GLOBAL)) {
            a->flags |= SL_RBK_TASK;
        }
    }
    sl_chg *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    c->sink = sink;
    pthread_mutex_init(&c->lock, NULL);
    s->chg = c;
    sink->changelog = s;
    return SL_OK;
}

static void op_free(chg_op *op)
{
    free(op->recs.recs);
    sl__arena_free(&op->arena);
    free(op);
}

void sl__changelog_free(sl_stream *s)
{
    sl_chg *c = s->chg;
    if (!c) {
        return;
    }
    for (chg_op *op = c->ops, *next; op; op = next) {
        next = op->next;
        op_free(op);
    }
    sl__dataset_release(c->changes);
    free(c->held);
    free(c->skip);
    pthread_mutex_destroy(&c->lock);
    free(c);
    s->chg = NULL;
}

bool sl__changelog_any(const sl_context *ctx)
{
    for (const sl_stream *s = ctx->streams; s; s = s->next) {
        if (s->chg) {
            return true;
        }
    }
    return false;
}

int sl_stream_changelog(sl_stream *s, const char *type, const char *name, const sl_options *opts,
                        char *errstr, size_t errsize)
{
    sl_options *o = sl_options_new();
    int rc = o ? SL_OK : SL_ERR_NOMEM;
    for (size_t i = 0; rc == SL_OK && opts && i < sl_options_count(opts); i++) {
        const char *k, *v;
        sl_options_at(opts, i, &k, &v);
        rc = sl_options_set(o, k, v);
    }
    if (rc == SL_OK) {
        rc = sl_options_set(o, "changelog", "true");
    }
    if (rc != SL_OK) {
        snprintf(errstr, errsize, "out of memory");
    } else {
        rc = sl_stream_to(s, type, name, o, errstr, errsize);
    }
    sl_options_destroy(o);
    return rc;
}

bool sl_instance_is_changelog(const sl_instance *ins)
{
    return ins && ins->changelog != NULL;
}

void sl_instance_set_waiting(sl_instance *ins, bool waiting)
{
    if (ins) {
        atomic_store(&ins->waiting, waiting);
    }
}

/* ==== A batch's changes ==== */

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

int sl__changelog_change(sl_recvec *v, sl_arena *a, const sl_kentry *e, const char *key,
                         uint32_t len, int32_t task)
{
    sl_record_meta *m = sl__arena_alloc(a, sizeof(*m));
    const char *k = len ? sl__arena_dup(a, key, len) : "";
    if (!m || !k) {
        return SL_ERR_NOMEM;
    }
    *m = (sl_record_meta){.partition = task, .offset = -1};
    sl_record r = {.key = k, .key_len = len, .meta = m};
    if (e) {
        unsigned char *b = sl__arena_alloc(a, STATE_HEAD + e->len);
        if (!b) {
            return SL_ERR_NOMEM;
        }
        uint64_t num;
        memcpy(&num, &e->num, sizeof(num));
        b[0] = STATE_VERSION;
        b[1] = e->num_type;
        put64(b + 2, num);
        put64(b + 10, (uint64_t)e->ts);
        if (e->len) {
            memcpy(b + STATE_HEAD, e->bytes, e->len);
        }
        r.value = (const char *)b;
        r.value_len = STATE_HEAD + e->len;
        r.ts = e->ts;
    }
    return sl__recvec_push(v, &r);
}

void sl__changelog_set(sl_stream *s, sl_dataset *changes)
{
    sl__dataset_release(s->chg->changes);
    s->chg->changes = changes;
}

sl_dataset *sl__changelog_take(sl_stream *s, int64_t t)
{
    sl_dataset *ds = s->chg ? s->chg->changes : NULL;
    if (!ds || ds->time != t) {
        return NULL;
    }
    sl__dataset_retain(ds);
    return ds;
}

/* ==== Restores and drops ==== */

static void op_enqueue(sl_stream *s, chg_op *op)
{
    sl_chg *c = s->chg;
    pthread_mutex_lock(&c->lock);
    if (c->ops_tail) {
        c->ops_tail->next = op;
    } else {
        c->ops = op;
    }
    c->ops_tail = op;
    pthread_mutex_unlock(&c->lock);
}

static chg_op *op_new(sl_context *ctx, int32_t task, bool restore)
{
    chg_op *op = calloc(1, sizeof(*op));
    if (op) {
        op->gen = atomic_load(&ctx->gen_time);
        op->task = task;
        op->restore = restore;
        sl__arena_init(&op->arena, 0);
    }
    return op;
}

/* True when a changelog stream reads source src (its output's sources include it). */
static bool reads_source(const sl_stream *s, const sl_instance *src)
{
    for (const sl_output *o = s->ctx->outputs; o; o = o->next) {
        if (o->sink == s->chg->sink) {
            return sl__output_reads(o, src->name);
        }
    }
    return false;
}

void sl_instance_release_partition(sl_instance *ins, const char *topic, int32_t partition)
{
    (void)topic; /* a task is a partition of the source, whatever its topic */
    for (sl_stream *s = ins ? ins->ctx->streams : NULL; s; s = s->next) {
        if (!s->chg || !reads_source(s, ins)) {
            continue;
        }
        chg_op *op = op_new(ins->ctx, partition, false);
        if (!op) {
            /* The state stays; it is replaced when the partition comes back. */
            sl_log(SL_LOG_WARN, "'%s': out of memory dropping the state of partition %" PRId32,
                   s->name, partition);
            continue;
        }
        op_enqueue(s, op);
    }
}

typedef struct restore_arg {
    chg_op *op;
    uint64_t bytes;
} restore_arg;

static int restore_put(void *arg, const sl_record *r)
{
    restore_arg *ra = arg;
    sl_record c = {.key_len = r->key_len, .value_len = r->value ? r->value_len : 0};
    /* Exactly the bytes given (an empty key or value: no bytes to read). */
    c.key = r->key_len ? sl__arena_dup(&ra->op->arena, r->key, r->key_len) : "";
    if (r->value) {
        c.value = r->value_len ? sl__arena_dup(&ra->op->arena, r->value, r->value_len) : "";
    }
    if (!c.key || (r->value && !c.value)) {
        return SL_ERR_NOMEM;
    }
    ra->bytes += r->key_len + c.value_len;
    return sl__recvec_push(&ra->op->recs, &c);
}

/* Windows kept as keyed state: input that the windows' sinks hold went into windows that
 * were emitted already. After a crash between such a sink's commit and the changelog's, the
 * state is behind the sink: that input must not go into the next windows again (for
 * tumbling windows, exactly right; sliding windows miss it in the windows after). Returns
 * the lowest position of the state's sinks for q's partition, or -1. */
static int64_t windows_emitted(sl_stream *s, const sl_position *q)
{
    int64_t low = -1;
    for (const sl_output *o = s->ctx->outputs; o; o = o->next) {
        sl_instance *k = o->sink;
        if (!k || k->changelog || !k->conn->positions || k->positions_off ||
            state_node(o->stream) != s) {
            continue;
        }
        sl_position p = *q;
        p.next = -1;
        char why[256] = "";
        if (k->conn->positions(k->cctx, s->ctx->name, &p, 1, why, sizeof(why)) != SL_OK ||
            p.next < 0) {
            return -1; /* unknown, or nothing emitted: only what the changelog holds */
        }
        low = low < 0 || p.next < low ? p.next : low;
    }
    return low;
}

int sl__changelog_restore(sl_instance *src, sl_source_position *pos, size_t n, size_t *sinks,
                          char *errstr, size_t errsize)
{
    sl_context *ctx = src->ctx;
    int rc = SL_OK;
    for (sl_stream *s = ctx->streams; s && rc == SL_OK; s = s->next) {
        if (!s->chg || !reads_source(s, src)) {
            continue;
        }
        sl_instance *sink = s->chg->sink;
        (*sinks)++;
        for (size_t i = 0; i < n && rc == SL_OK; i++) {
            chg_op *op = op_new(ctx, pos[i].partition, true);
            if (!op) {
                snprintf(errstr, errsize, "out of memory restoring the state of '%s'", s->name);
                return SL_ERR_NOMEM;
            }
            sl_position q = {.source = src->name,
                             .topic = pos[i].topic,
                             .partition = pos[i].partition,
                             .next = -1};
            restore_arg ra = {.op = op};
            char why[256] = "";
            atomic_fetch_add(&ctx->restoring, 1);
            int64_t t0 = sl__mono_ms();
            rc = sink->conn->restore_state(sink->cctx, ctx->name, &q, restore_put, &ra, why,
                                           sizeof(why));
            int64_t ms = sl__mono_ms() - t0;
            atomic_fetch_sub(&ctx->restoring, 1);
            if (rc != SL_OK) {
                snprintf(errstr, errsize, "changelog '%s' of '%s', partition %" PRId32 ": %s",
                         sink->name, s->name, pos[i].partition, why[0] ? why : sl_err2str(rc));
                op_free(op);
                break;
            }
            atomic_fetch_add(&ctx->restored_records, op->recs.n);
            atomic_fetch_add(&ctx->restored_bytes, ra.bytes);
            atomic_fetch_add(&ctx->restore_ms, ms);
            atomic_fetch_add(&ctx->restored_tasks, 1);
            sl_log(SL_LOG_INFO,
                   "'%s': restored partition %" PRId32 " of %s from changelog '%s': %zu records, "
                   "%" PRIu64 " bytes in %" PRId64 " ms, at offset %" PRId64,
                   s->name, pos[i].partition, pos[i].topic, sink->name, op->recs.n, ra.bytes, ms,
                   q.next);
            op->position = q.next;
            if (s->state_windows) {
                int64_t emitted = windows_emitted(s, &q);
                op->position = emitted > op->position ? emitted : op->position;
            }
            op_enqueue(s, op);
            sl_source_position_merge(&pos[i], q.next);
            pos[i].missing = pos[i].missing || q.next < 0;
        }
    }
    return rc;
}

/* The outputs of s's state that gather several batches (windows) forget what they
 * gathered of task: the state that came from it is gone (dropped, or replaced by a
 * restore), so their sinks must not be told they hold that input. */
static void forget_ranges(sl_stream *s, int32_t task)
{
    for (sl_output *o = s->ctx->outputs; o; o = o->next) {
        if (!o->nacc || state_node(o->stream) != s) {
            continue;
        }
        size_t k = 0;
        for (size_t i = 0; i < o->nacc; i++) {
            if (o->acc[i].partition == task) {
                free((char *)o->acc[i].topic);
            } else {
                o->acc[k++] = o->acc[i];
            }
        }
        o->nacc = k;
    }
}

/* Removes every key of task from the tables. */
static void drop_task(sl_kstate *ks, int32_t task)
{
    uint16_t tag = (uint16_t)(task + 1);
    for (size_t p = 0; p < ks->nparts; p++) {
        sl_ktable *t = &ks->tabs[p];
        for (size_t i = 0; i < t->n; i++) {
            if (!t->e[i].dead && t->e[i].task == tag) {
                sl__ktable_remove(t, &t->e[i]);
            }
        }
    }
}

static int restore_one(sl_stream *s, const chg_op *op, const sl_record *r)
{
    sl_kstate *ks = s->kstate;
    sl_ktable *t = &ks->tabs[sl__hash_bucket(sl__hash(r->key, r->key_len), ks->nparts)];
    uint64_t h = sl__hash_seeded(r->key, r->key_len);
    sl_kentry *e = sl__ktable_find(t, r->key, r->key_len, h);
    if (!r->value) {
        if (e) {
            sl__ktable_remove(t, e);
        }
        return SL_OK;
    }
    const unsigned char *b = (const unsigned char *)r->value;
    if (r->value_len < STATE_HEAD || b[0] != STATE_VERSION || b[1] > SL_NUM_DOUBLE) {
        sl_log(SL_LOG_ERROR,
               "'%s': changelog '%s', partition %" PRId32 ": the state of key '%.*s' is not "
               "one sluice wrote (%u bytes, version %u): is the topic shared with something "
               "else?",
               s->name, s->chg->sink->name, op->task, (int)SL_MIN(r->key_len, 64), r->key,
               r->value_len, r->value_len ? b[0] : 0);
        return SL_ERR_INVAL;
    }
    if (!e && !(e = sl__ktable_add(t, r->key, r->key_len, h))) {
        return SL_ERR_NOMEM;
    }
    e->num_type = b[1];
    uint64_t num = get64(b + 2);
    memcpy(&e->num, &num, sizeof(num));
    e->ts = (int64_t)get64(b + 10);
    e->task = (uint16_t)(op->task + 1);
    return sl__ktable_set_bytes(t, e, r->value + STATE_HEAD, r->value_len - STATE_HEAD);
}

/* Makes room for task in c's per-task arrays. */
static int tasks_grow(sl_chg *c, int32_t task)
{
    if (task < 0 || (size_t)task < c->ntasks) {
        return task < 0 ? SL_ERR_INVAL : SL_OK;
    }
    size_t n = (size_t)task + 1;
    int64_t *held = realloc(c->held, n * sizeof(*held));
    if (held) {
        c->held = held;
    }
    bool *skip = realloc(c->skip, n * sizeof(*skip));
    if (skip) {
        c->skip = skip;
    }
    if (!held || !skip) {
        return SL_ERR_NOMEM;
    }
    for (size_t i = c->ntasks; i < n; i++) {
        c->held[i] = -1;
        c->skip[i] = false;
    }
    c->ntasks = n;
    return SL_OK;
}

/* The position task's restored state reflects: -1 none, INT64_MAX dropped. */
static int64_t changelog_held(const sl_stream *s, int32_t task)
{
    const sl_chg *c = s->chg;
    return c && task >= 0 && (size_t)task < c->ntasks ? c->held[task] : -1;
}

void sl__changelog_trim(const sl_output *o, sl_input_range *r, size_t n)
{
    sl_stream *s = state_node(o->stream);
    if (!s || !s->chg || !s->state_windows) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t held = changelog_held(s, r[i].partition);
        if (held > r[i].from && held < r[i].until && sl__output_reads(o, r[i].source)) {
            r[i].from = held;
        }
    }
}

bool sl__changelog_counts(const sl_stream *s, const sl_record *r)
{
    const sl_chg *c = s->chg;
    int32_t task = r->meta ? r->meta->partition : -1;
    if (!c || task < 0 || (size_t)task >= c->ntasks) {
        return true;
    }
    return r->meta->offset < 0 || r->meta->offset >= c->held[task];
}

bool sl__changelog_skips(const sl_stream *s, int32_t task)
{
    const sl_chg *c = s->chg;
    return c && task >= 0 && (size_t)task < c->ntasks && c->skip[task];
}

/* For the batch being computed: a task whose range ends at or before the position its
 * restored state reflects is skipped (the state holds that input; the source read it again
 * for sinks that are behind, cutting batches at that position). */
static void find_skips(sl_stream *s, int64_t t)
{
    sl_chg *c = s->chg;
    for (size_t i = 0; i < c->ntasks; i++) {
        c->skip[i] = false;
    }
    const sl_job *job = s->ctx->computing;
    if (!job || job->time != t) {
        return;
    }
    const sl_output *o = NULL;
    for (const sl_output *x = s->ctx->outputs; x && !o; x = x->next) {
        o = x->sink == c->sink ? x : NULL;
    }
    for (size_t i = 0; o && i < job->nranges; i++) {
        const sl_input_range *r = &job->ranges[i];
        int32_t p = r->partition;
        if (p < 0 || (size_t)p >= c->ntasks || c->held[p] < 0 || !sl__output_reads(o, r->source)) {
            continue;
        }
        if (r->until <= c->held[p]) {
            c->skip[p] = true;
        }
    }
}

int sl__changelog_apply(sl_stream *s, int64_t t)
{
    sl_chg *c = s->chg;
    if (!c) {
        return SL_OK;
    }
    if (!s->kstate && !(s->kstate = sl__kstate_new(sl__stream_partitions(s)))) {
        return SL_ERR_NOMEM;
    }
    int rc = SL_OK;
    for (;;) {
        pthread_mutex_lock(&c->lock);
        chg_op *op = c->ops;
        if (op && op->gen <= t) {
            c->ops = op->next;
            if (!c->ops) {
                c->ops_tail = NULL;
            }
        } else {
            op = NULL;
        }
        pthread_mutex_unlock(&c->lock);
        if (!op) {
            break;
        }
        drop_task(s->kstate, op->task);
        forget_ranges(s, op->task);
        if ((rc = tasks_grow(c, op->task)) == SL_OK) {
            /* Dropped: none of its input counts any more (a window may still gather some). */
            c->held[op->task] = op->restore ? op->position : INT64_MAX;
        }
        for (size_t i = 0; op->restore && i < op->recs.n && rc == SL_OK; i++) {
            rc = restore_one(s, op, &op->recs.recs[i]);
        }
        if (rc == SL_OK && s->event_time) {
            /* The task's stream time is its keys' highest record time: the key that holds it
             * has a window still open, so its state is in the changelog. */
            sl_stream_time *st = sl__kstate_stime(s->kstate, op->task);
            if (st) {
                *st = (sl_stream_time){INT64_MIN, INT64_MIN, 0};
            }
            rc = st ? sl__kstate_stime_rebuild(s->kstate, op->task) : SL_ERR_NOMEM;
        }
        op_free(op);
        if (rc != SL_OK) {
            break;
        }
    }
    for (size_t p = 0; p < s->kstate->nparts && rc == SL_OK; p++) {
        rc = sl__ktable_compact(&s->kstate->tabs[p], false);
    }
    if (rc == SL_OK) {
        find_skips(s, t);
    }
    return rc;
}

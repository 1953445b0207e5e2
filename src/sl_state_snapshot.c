/* sl_state_snapshot.c -- snapshots of keyed state: which nodes are checkpointed and when,
 * their state files under <checkpoint_dir>/state, restore after a restart, and replay.
 *
 * Every max(1, ceil(10 s / slide)) slides (the slide being the least common multiple of the
 * stateful nodes' slides), when a batch completes, each stateful node writes its tables (and
 * a window with an inverse the reduced batches of its window that are not on disk yet, each
 * once) as framed files (sl_framed.h: a temporary file, fsynced, renamed, a CRC-32C over the
 * content); the directory is fsynced once. The metadata records the files and the batch time
 * they reflect, and keeps the completed batches after it: after a restart, the state is
 * loaded and those batches run again for their state only (no output), then the pending ones
 * run as usual. Snapshotting every batch would write the whole state every batch; keeping
 * the batches since the snapshot costs a few lines of metadata and replays at most one
 * interval. Replaying needs sources that can read a batch again (Kafka's offset ranges); for
 * the others a snapshot is also taken at stop, at any batch, so that a graceful stop loses
 * nothing. The files of the newest few snapshots are kept, older ones deleted. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sl_engine.h"
#include "sl_framed.h"

#define STATE_EVERY_MS 10000 /* state is checkpointed every max(1, ceil(10 s / slide)) slides */
#define STATE_KEEP     4     /* snapshots whose files are kept */
#define STATE_MAGIC    "SLUICE-STATE"
#define STATE_VERSION  1u
#define STATE_MAX_LEN  ((size_t)1 << 40) /* checked against the file's size too */

/* ==== Which nodes are checkpointed ==== */

/* Marks in need[id] the streams some output reads (directly or not). */
static bool *needed_streams(sl_context *ctx)
{
    bool *need = calloc((size_t)ctx->nstreams + 1, sizeof(bool));
    sl_stream **order = calloc((size_t)ctx->nstreams + 1, sizeof(*order));
    if (!need || !order) {
        free(need);
        free(order);
        return NULL;
    }
    int n = 0;
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        order[n++] = s;
    }
    for (sl_output *o = ctx->outputs; o; o = o->next) {
        need[o->stream->id] = true;
    }
    for (int i = n - 1; i >= 0; i--) { /* consumers come after their parents */
        if (need[order[i]->id]) {
            for (int k = 0; k < order[i]->nparents; k++) {
                need[order[i]->parents[k]->id] = true;
            }
        }
    }
    free(order);
    return need;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* Streams whose state is written here: the stateful ones without a changelog. */
static bool snapshotted(const sl_stream *s)
{
    return sl__stream_is_stateful(s) && !s->chg;
}

int64_t sl__state_interval(sl_context *ctx)
{
    bool *need = needed_streams(ctx);
    int64_t lcm = 0;
    for (sl_stream *s = ctx->streams; s && need; s = s->next) {
        if (need[s->id] && snapshotted(s)) {
            lcm = lcm ? lcm / gcd64(lcm, s->slide) * s->slide : s->slide;
        }
    }
    free(need);
    if (!lcm) {
        return 0;
    }
    int64_t k = (STATE_EVERY_MS + lcm - 1) / lcm;
    return (k < 1 ? 1 : k) * lcm;
}

/* ==== State files ==== */

typedef struct wbuf {
    char *p;
    size_t len, cap;
    bool failed;
} wbuf;

static void wb_add(wbuf *b, const void *p, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) {
            cap *= 2;
        }
        char *np = realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    if (n) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
}

static void wb_u32(wbuf *b, uint32_t v)
{
    wb_add(b, &v, sizeof(v));
}

static void wb_u64(wbuf *b, uint64_t v)
{
    wb_add(b, &v, sizeof(v));
}

/* One record: key, bytes, typed value and time. The word of the value's type holds in its
 * high 16 bits the task of a table's key (sl_kentry.task; 0 in datasets and older files). */
static void wb_record(wbuf *b, const sl_record *r, uint16_t task)
{
    uint64_t num;
    memcpy(&num, &r->num, sizeof(num));
    wb_u32(b, r->key_len);
    wb_u32(b, r->value_len);
    wb_u32(b, r->num_type | (uint32_t)task << 16);
    wb_u64(b, num);
    wb_u64(b, (uint64_t)r->ts);
    wb_add(b, r->key, r->key_len);
    wb_add(b, r->value, r->value_len);
}

#define KIND_TABLE   1u
#define KIND_DATASET 2u

/* The body of a state file: node id, kind, time, then per partition its records. */
static void wb_header(wbuf *b, const sl_stream *s, uint32_t kind, int64_t t, size_t nparts)
{
    wb_u32(b, (uint32_t)s->id);
    wb_u32(b, kind);
    wb_u64(b, (uint64_t)t);
    wb_u64(b, nparts);
}

static void state_dir(const sl_context *ctx, char *buf, size_t size)
{
    snprintf(buf, size, "%s/state", ctx->checkpoint_dir);
}

/* Writes body as file name of the state directory: a framed file (the caller fsyncs the
 * directory once after all of a snapshot's files). */
static int write_file(const char *dir, const char *name, const wbuf *body)
{
    if (body->failed) {
        return SL_ERR_NOMEM;
    }
    int rc =
        sl__framed_write(dir, name, STATE_MAGIC, STATE_VERSION, body->p, body->len, false, NULL);
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "cannot write the state file %s/%s: %s", dir, name, strerror(errno));
    }
    return rc;
}

static int write_table(const char *dir, const char *name, sl_stream *s, int64_t t)
{
    wbuf b = {0};
    sl_kstate *ks = s->kstate;
    wb_header(&b, s, KIND_TABLE, t, ks->nparts);
    for (size_t p = 0; p < ks->nparts; p++) {
        const sl_ktable *tab = &ks->tabs[p];
        wb_u64(&b, tab->live);
        for (size_t i = 0; i < tab->n; i++) {
            if (!tab->e[i].dead) {
                sl_record r;
                sl__kentry_record(&tab->e[i], &r);
                wb_record(&b, &r, tab->e[i].task);
            }
        }
    }
    int rc = write_file(dir, name, &b);
    free(b.p);
    return rc;
}

static int write_dataset(const char *dir, const char *name, sl_stream *s, const sl_dataset *ds)
{
    wbuf b = {0};
    wb_header(&b, s, KIND_DATASET, ds->time, ds->nparts);
    for (size_t p = 0; p < ds->nparts; p++) {
        wb_u64(&b, ds->parts[p].n);
        for (size_t i = 0; i < ds->parts[p].n; i++) {
            wb_record(&b, &ds->parts[p].recs[i], 0);
        }
    }
    int rc = write_file(dir, name, &b);
    free(b.p);
    return rc;
}

static void table_name(char *buf, size_t size, const sl_stream *s, int64_t t)
{
    snprintf(buf, size, "n%d-%" PRId64 ".tab", s->id, t);
}

static void batch_name(char *buf, size_t size, const sl_stream *s, int64_t t)
{
    snprintf(buf, size, "n%d-b%" PRId64 ".ds", s->id, t);
}

/* Reads and verifies a state file; *body (caller frees) and *len. why on failure. */
static char *read_state_file(const char *path, size_t *len, char *why, size_t whysize)
{
    return sl__framed_read(path, STATE_MAGIC, STATE_VERSION, STATE_MAX_LEN, "state", len, why,
                           whysize);
}

typedef struct rbuf {
    const char *p;
    size_t len, off;
    bool bad;
} rbuf;

static void rb_get(rbuf *b, void *out, size_t n)
{
    if (b->bad || b->len - b->off < n) {
        b->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, b->p + b->off, n);
    b->off += n;
}

static const char *rb_bytes(rbuf *b, size_t n)
{
    if (b->bad || b->len - b->off < n) {
        b->bad = true;
        return NULL;
    }
    const char *p = b->p + b->off;
    b->off += n;
    return p;
}

/* Reads one record (and its key's task, when task is not NULL); its bytes point into the
 * buffer. */
static bool rb_record(rbuf *b, sl_record *r, uint16_t *task)
{
    uint32_t klen, vlen, type;
    uint64_t num, ts;
    rb_get(b, &klen, sizeof(klen));
    rb_get(b, &vlen, sizeof(vlen));
    rb_get(b, &type, sizeof(type));
    rb_get(b, &num, sizeof(num));
    rb_get(b, &ts, sizeof(ts));
    if (task) {
        *task = (uint16_t)(type >> 16);
        type &= 0xffffu;
    }
    *r = (sl_record){
        .key_len = klen, .value_len = vlen, .num_type = (uint8_t)type, .ts = (int64_t)ts};
    memcpy(&r->num, &num, sizeof(num));
    r->key = rb_bytes(b, klen);
    r->value = rb_bytes(b, vlen);
    return !b->bad && type <= SL_NUM_DOUBLE;
}

/* Loads a table file into s's tables; keys go to the partition of their hash, so the
 * number of partitions may have changed. */
static int load_table(sl_stream *s, rbuf *b, char *why, size_t whysize)
{
    uint64_t nparts;
    rb_get(b, &nparts, sizeof(nparts));
    size_t np = sl__stream_partitions(s);
    sl__kstate_free(s->kstate);
    if (!(s->kstate = sl__kstate_new(np))) {
        snprintf(why, whysize, "out of memory");
        return SL_ERR_NOMEM;
    }
    for (uint64_t p = 0; p < nparts && !b->bad; p++) {
        uint64_t n;
        rb_get(b, &n, sizeof(n));
        for (uint64_t i = 0; i < n && !b->bad; i++) {
            sl_record r;
            uint16_t task;
            if (!rb_record(b, &r, &task)) {
                break;
            }
            uint64_t h = sl__hash_seeded(r.key, r.key_len);
            sl_ktable *tab = &s->kstate->tabs[sl__hash_bucket(sl__hash(r.key, r.key_len), np)];
            sl_kentry *e = sl__ktable_find(tab, r.key, r.key_len, h);
            if (e || !(e = sl__ktable_add(tab, r.key, r.key_len, h))) {
                snprintf(why, whysize, e ? "a key is there twice" : "out of memory");
                return SL_ERR_INVAL;
            }
            e->num_type = r.num_type;
            memcpy(&e->num, &r.num, sizeof(e->num));
            e->ts = r.ts;
            e->task = task;
            if (sl__ktable_set_bytes(tab, e, r.value, r.value_len) != SL_OK) {
                snprintf(why, whysize, "out of memory");
                return SL_ERR_NOMEM;
            }
        }
    }
    if (b->bad || b->off != b->len) {
        snprintf(why, whysize, "malformed content");
        return SL_ERR_INVAL;
    }
    if (s->event_time && sl__kstate_stime_rebuild(s->kstate, -2) != SL_OK) {
        snprintf(why, whysize, "out of memory");
        return SL_ERR_NOMEM;
    }
    return SL_OK;
}

/* Loads a reduced batch of a window into the cache of the window's parent, partitioned
 * for the parent's current number of partitions. */
static int load_dataset(sl_stream *s, int64_t t, rbuf *b, char *why, size_t whysize)
{
    sl_stream *parent = s->parents[0];
    uint64_t nparts;
    rb_get(b, &nparts, sizeof(nparts));
    size_t np = sl__stream_partitions(parent);
    sl_dataset *ds = sl__dataset_new(np, t);
    sl_recvec *v = calloc(np, sizeof(*v));
    int rc = ds && v ? SL_OK : SL_ERR_NOMEM;
    for (uint64_t p = 0; p < nparts && rc == SL_OK && !b->bad; p++) {
        uint64_t n;
        rb_get(b, &n, sizeof(n));
        for (uint64_t i = 0; i < n && rc == SL_OK && !b->bad; i++) {
            sl_record r;
            if (!rb_record(b, &r, NULL)) {
                break;
            }
            size_t q = sl__hash_bucket(sl__hash(r.key, r.key_len), np);
            r.key = sl__arena_dup(&ds->parts[q].arena, r.key, r.key_len);
            r.value = r.value_len ? sl__arena_dup(&ds->parts[q].arena, r.value, r.value_len) : NULL;
            rc = !r.key || (r.value_len && !r.value) ? SL_ERR_NOMEM : sl__recvec_push(&v[q], &r);
        }
    }
    if (rc == SL_OK && (b->bad || b->off != b->len)) {
        rc = SL_ERR_INVAL;
    }
    for (size_t q = 0; ds && v && q < np; q++) {
        ds->parts[q].recs = v[q].recs;
        ds->parts[q].n = v[q].n;
    }
    free(v);
    if (rc != SL_OK) {
        snprintf(why, whysize, rc == SL_ERR_NOMEM ? "out of memory" : "malformed content");
        sl__dataset_release(ds);
        return rc;
    }
    return sl__stream_put(parent, t, ds);
}

/* ==== Snapshots ==== */

typedef struct file_list {
    sl_ckpt_state_file *f;
    size_t n, cap;
    bool failed;
} file_list;

static void files_add(file_list *l, int node, int64_t t, const char *name)
{
    if (l->failed) {
        return;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        sl_ckpt_state_file *f = realloc(l->f, cap * sizeof(*f));
        if (!f) {
            l->failed = true;
            return;
        }
        l->f = f;
        l->cap = cap;
    }
    l->f[l->n] = (sl_ckpt_state_file){.node = node, .time = t, .file = strdup(name)};
    if (!l->f[l->n].file) {
        l->failed = true;
        return;
    }
    l->n++;
}

static void files_free(file_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->f[i].file);
    }
    free(l->f);
}

/* The last time of s at or before t: the time its state has when batch t completed. */
static int64_t node_time(const sl_stream *s, int64_t t)
{
    return t - (t - s->ctx->zero_time) % s->slide;
}

/* Deletes the files of snapshots older than the ones kept: tables of older snapshots and
 * reduced batches no kept snapshot's window holds. */
static void delete_old_files(sl_context *ctx, int64_t oldest_kept)
{
    char dir[4096];
    state_dir(ctx, dir, sizeof(dir));
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        int id;
        long long t;
        char kind[8];
        bool old = false;
        sl_stream *s = NULL;
        if (sscanf(de->d_name, "n%d-b%lld.%7s", &id, &t, kind) == 3 && !strcmp(kind, "ds")) {
            for (s = ctx->streams; s && s->id != id; s = s->next) {
            }
            old = !s || t <= node_time(s, oldest_kept) - s->window_len;
        } else if (sscanf(de->d_name, "n%d-%lld.%7s", &id, &t, kind) == 3 && !strcmp(kind, "tab")) {
            for (s = ctx->streams; s && s->id != id; s = s->next) {
            }
            old = !s || t < node_time(s, oldest_kept);
        } else if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp")) {
            old = true; /* left by a crash while writing */
        }
        if (old) {
            char path[4400];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* Writes the state of every stateful node as it is when batch t completed: a node's table
 * at its last time up to t; for a window with an inverse also the reduced batches of its
 * window and those after its last slide (computed now if they were not), so that it
 * continues as if nothing happened. */
static int snapshot(sl_context *ctx, int64_t t)
{
    bool *need = needed_streams(ctx);
    if (!need) {
        return SL_ERR_NOMEM;
    }
    /* Every stateful node must be at its time, or the snapshot would mix times. */
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        if (!need[s->id] || !snapshotted(s)) {
            continue;
        }
        int64_t nt = node_time(s, t);
        int64_t at = s->kstate ? s->kstate->time : 0;
        if (at != nt && !(at == 0 && nt <= ctx->zero_time)) {
            sl_log(SL_LOG_DEBUG, "no state snapshot at %" PRId64 ": '%s' is at %" PRId64, t,
                   s->name, at);
            free(need);
            return SL_OK;
        }
    }
    char dir[4096], name[128];
    state_dir(ctx, dir, sizeof(dir));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        sl_log(SL_LOG_ERROR, "cannot create the state directory %s: %s", dir, strerror(errno));
        free(need);
        return SL_ERR_IO;
    }
    file_list files = {0};
    int rc = SL_OK;
    for (sl_stream *s = ctx->streams; s && rc == SL_OK; s = s->next) {
        if (!need[s->id] || !snapshotted(s) || !s->kstate || !s->kstate->time) {
            continue; /* no state yet */
        }
        int64_t nt = s->kstate->time;
        table_name(name, sizeof(name), s, nt);
        rc = write_table(dir, name, s, nt);
        files_add(&files, s->id, nt, name);
        if (s->kind != SL_OP_WINDOW_INV) {
            continue;
        }
        /* The reduced batches in (nt - window, t]; each written once. */
        sl_stream *parent = s->parents[0];
        for (int64_t tt = nt + parent->slide; tt <= t && rc == SL_OK; tt += parent->slide) {
            sl_dataset *ds;
            rc = sl__stream_compute(parent, tt, &ds);
        }
        for (size_t i = 0; i < parent->ngen && rc == SL_OK; i++) {
            int64_t tt = parent->gen[i].time;
            if (tt <= nt - s->window_len || tt > t) {
                continue;
            }
            batch_name(name, sizeof(name), s, tt);
            if (tt > s->kstate->saved_upto) {
                rc = write_dataset(dir, name, s, parent->gen[i].ds);
            }
            files_add(&files, s->id, tt, name);
        }
        if (rc == SL_OK) {
            s->kstate->saved_upto = t;
        }
    }
    free(need);
    if (rc == SL_OK && files.failed) {
        rc = SL_ERR_NOMEM;
    }
    if (rc == SL_OK && sl__fsync_dir(dir) != 0) {
        rc = SL_ERR_IO;
    }
    if (rc == SL_OK) {
        rc = sl__ckpt_set_state(ctx->ckpt, t, files.f, files.n);
    }
    files_free(&files);
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR,
               "state snapshot at batch %" PRId64 " failed (%s): the previous "
               "one stays in use",
               t, sl_err2str(rc));
        return rc;
    }
    if (ctx->nstate_gens == STATE_KEEP) {
        memmove(ctx->state_gens, ctx->state_gens + 1, (STATE_KEEP - 1) * sizeof(int64_t));
        ctx->nstate_gens--;
    }
    ctx->state_gens[ctx->nstate_gens++] = t;
    delete_old_files(ctx, ctx->state_gens[0]);
    return SL_OK;
}

int sl__state_checkpoint(sl_context *ctx, int64_t t)
{
    if (!ctx->ckpt) {
        return SL_OK;
    }
    int64_t every = sl__state_interval(ctx);
    if (!every || (t - ctx->zero_time) % every != 0) {
        return SL_OK;
    }
    return snapshot(ctx, t);
}

void sl__state_final_checkpoint(sl_context *ctx)
{
    sl_checkpoint *ck = ctx->ckpt;
    if (!ck) {
        return;
    }
    int64_t every = sl__state_interval(ctx);
    pthread_mutex_lock(&ck->lock);
    int64_t t = ck->last_completed;
    bool due = every && t > ck->state_time;
    pthread_mutex_unlock(&ck->lock);
    if (!due) {
        return;
    }
    if (snapshot(ctx, t) == SL_OK) {
        sl__ckpt_write(ck);
    }
}

int sl__state_restore(sl_context *ctx, char *errstr, size_t errsize)
{
    sl_checkpoint *ck = ctx->ckpt;
    if (!ck) {
        return SL_OK;
    }
    ck->keep_done = sl__state_interval(ctx) > 0;
    char dir[4096];
    state_dir(ctx, dir, sizeof(dir));
    int rc = SL_OK;
    for (size_t i = 0; i < ck->nstate_files && rc == SL_OK; i++) {
        const sl_ckpt_state_file *f = &ck->state_files[i];
        sl_stream *s = ctx->streams;
        while (s && s->id != f->node) {
            s = s->next;
        }
        if (s && s->chg) {
            continue; /* its state comes from its changelog */
        }
        char path[4400], why[256] = "";
        snprintf(path, sizeof(path), "%s/%s", dir, f->file);
        size_t len = 0;
        char *body = NULL;
        if (!s || !sl__stream_is_stateful(s)) {
            snprintf(why, sizeof(why), "it names stream %d, which keeps no state", f->node);
        } else {
            body = read_state_file(path, &len, why, sizeof(why));
        }
        if (body) {
            rbuf b = {.p = body, .len = len};
            uint32_t id, kind;
            uint64_t t;
            rb_get(&b, &id, sizeof(id));
            rb_get(&b, &kind, sizeof(kind));
            rb_get(&b, &t, sizeof(t));
            if (b.bad || (int)id != s->id || (int64_t)t != f->time) {
                snprintf(why, sizeof(why), "it is not the file the checkpoint names");
            } else if (kind == KIND_TABLE) {
                rc = load_table(s, &b, why, sizeof(why));
                if (rc == SL_OK) {
                    s->kstate->time = f->time;
                    s->kstate->saved_upto = ck->state_time;
                }
            } else if (kind == KIND_DATASET) {
                rc = load_dataset(s, f->time, &b, why, sizeof(why));
            } else {
                snprintf(why, sizeof(why), "unknown content");
            }
            free(body);
        }
        if (why[0]) {
            snprintf(errstr, errsize,
                     "cannot restore the state of '%s' from %s: %s (the checkpoint cannot be "
                     "used: to start fresh, move or delete %s)",
                     s ? s->name : "?", path, why, ctx->checkpoint_dir);
            return rc != SL_OK ? rc : SL_ERR_INVAL;
        }
    }
    if (ck->state_time) {
        ctx->state_gens[0] = ck->state_time;
        ctx->nstate_gens = 1;
        delete_old_files(ctx, ck->state_time);
        sl_log(SL_LOG_INFO,
               "state restored as of batch %" PRId64 "; %zu completed batches after it run "
               "again for their state",
               ck->state_time, ck->ndone);
    } else if (ck->ndone) {
        sl_log(SL_LOG_INFO,
               "no state snapshot yet: the %zu completed batches run again for their state",
               ck->ndone);
    }
    return SL_OK;
}

int sl__state_replay(sl_context *ctx, int64_t t)
{
    bool *need = needed_streams(ctx);
    if (!need) {
        return SL_ERR_NOMEM;
    }
    int rc = SL_OK;
    for (sl_stream *s = ctx->streams; s && rc == SL_OK; s = s->next) {
        if (need[s->id] && snapshotted(s) && sl__stream_valid_time(s, t) &&
            (!s->kstate || s->kstate->time < t)) {
            sl_dataset *ds;
            rc = sl__stream_compute(s, t, &ds);
        }
    }
    free(need);
    return rc;
}

/* sl_checkpoint.c -- checkpoint metadata files (see sl_checkpoint.h).
 *
 * A file is a framed file (sl_framed.h) whose body is a JSON document:
 *     SLUICE-CHECKPOINT 1 <crc32c of the JSON, hex> <length of the JSON>\n{...}
 * named checkpoint-<seq>.json, seq growing by one per write. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "sl_checkpoint.h"
#include "sl_framed.h"
#include "sl_util.h"

#define MAGIC   "SLUICE-CHECKPOINT"
#define VERSION 1u
#define MAX_LEN ((size_t)1 << 30) /* a longer metadata file is not one of ours */

uint64_t sl__ckpt_fingerprint(const char *graph)
{
    return sl__hash(graph, strlen(graph));
}

static void batch_free(sl_ckpt_batch *b, size_t nsources)
{
    for (size_t i = 0; b->defs && i < nsources; i++) {
        free(b->defs[i]);
    }
    free(b->defs);
    b->defs = NULL;
}

static void state_files_free(sl_checkpoint *ck)
{
    for (size_t i = 0; i < ck->nstate_files; i++) {
        free(ck->state_files[i].file);
    }
    free(ck->state_files);
    ck->state_files = NULL;
    ck->nstate_files = 0;
}

static void clear_state(sl_checkpoint *ck)
{
    for (size_t i = 0; i < ck->npending; i++) {
        batch_free(&ck->pending[i], ck->nsources);
    }
    free(ck->pending);
    ck->pending = NULL;
    ck->npending = 0;
    for (size_t i = 0; i < ck->ndone; i++) {
        batch_free(&ck->done[i], ck->nsources);
    }
    free(ck->done);
    ck->done = NULL;
    ck->ndone = 0;
    state_files_free(ck);
    ck->state_time = 0;
    for (size_t i = 0; i < ck->nsources; i++) {
        free(ck->last_defs[i]);
        ck->last_defs[i] = NULL;
        free(ck->completed_defs[i]);
        ck->completed_defs[i] = NULL;
    }
}

void sl__ckpt_destroy(sl_checkpoint *ck)
{
    if (!ck) {
        return;
    }
    clear_state(ck);
    for (size_t i = 0; i < ck->nsources; i++) {
        free(ck->source_names[i]);
    }
    free(ck->source_names);
    free(ck->last_defs);
    free(ck->completed_defs);
    free(ck->graph);
    free(ck->dir);
    pthread_mutex_destroy(&ck->lock);
    free(ck);
}

/* Lists checkpoint-<seq>.json files; returns their seqs sorted descending. */
static size_t list_files(const char *dir, uint64_t **out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        return 0;
    }
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long seq;
        char tail[8];
        if (sscanf(e->d_name, "checkpoint-%llu.%7s", &seq, tail) == 2 &&
            strcmp(tail, "json") == 0) {
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                uint64_t *o = realloc(*out, cap * sizeof(**out));
                if (!o) {
                    break;
                }
                *out = o;
            }
            (*out)[n++] = seq;
        }
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) { /* insertion sort, descending: few files */
        uint64_t v = (*out)[i];
        size_t j = i;
        while (j > 0 && (*out)[j - 1] < v) {
            (*out)[j] = (*out)[j - 1];
            j--;
        }
        (*out)[j] = v;
    }
    return n;
}

sl_checkpoint *sl__ckpt_new(const char *dir, const char *graph, int64_t batch_interval,
                            size_t nsources, const char *const *source_names, char *errstr,
                            size_t errsize)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/metadata", dir);
    if (sl__mkdirs(path, 0755) != 0) {
        snprintf(errstr, errsize, "checkpoint directory %s cannot be created: %s", path,
                 strerror(errno));
        return NULL;
    }
    char probe[4200];
    snprintf(probe, sizeof(probe), "%s/.write-test-%d", path, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(errstr, errsize, "checkpoint directory %s is not writable: %s", path,
                 strerror(errno));
        return NULL;
    }
    close(fd);
    unlink(probe);
    sl_checkpoint *ck = calloc(1, sizeof(*ck));
    if (!ck) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&ck->lock, NULL);
    ck->dir = strdup(path);
    ck->graph = strdup(graph);
    ck->batch_interval = batch_interval;
    ck->nsources = nsources;
    ck->source_names = calloc(nsources + 1, sizeof(char *));
    ck->last_defs = calloc(nsources + 1, sizeof(char *));
    ck->completed_defs = calloc(nsources + 1, sizeof(char *));
    if (!ck->dir || !ck->graph || !ck->source_names || !ck->last_defs || !ck->completed_defs) {
        snprintf(errstr, errsize, "out of memory");
        sl__ckpt_destroy(ck);
        return NULL;
    }
    for (size_t i = 0; i < nsources; i++) {
        ck->source_names[i] = strdup(source_names[i]);
    }
    uint64_t *seqs;
    size_t n = list_files(ck->dir, &seqs);
    ck->seq = n ? seqs[0] + 1 : 1;
    free(seqs);
    return ck;
}

/* ==== Writing ==== */

static json_t *defs_json(const sl_checkpoint *ck, char *const *defs)
{
    json_t *o = json_object();
    for (size_t i = 0; i < ck->nsources; i++) {
        if (defs[i]) {
            json_object_set_new(o, ck->source_names[i], json_string(defs[i]));
        }
    }
    return o;
}

static char *serialize(const sl_checkpoint *ck)
{
    json_t *root = json_object();
    json_object_set_new(root, "fingerprint",
                        json_sprintf("%016" PRIx64, sl__ckpt_fingerprint(ck->graph)));
    json_object_set_new(root, "graph", json_string(ck->graph));
    json_object_set_new(root, "batch_interval", json_integer(ck->batch_interval));
    json_object_set_new(root, "zero_time", json_integer(ck->zero_time));
    json_object_set_new(root, "last_completed", json_integer(ck->last_completed));
    json_t *pending = json_array();
    for (size_t i = 0; i < ck->npending; i++) {
        json_t *b = json_object();
        json_object_set_new(b, "time", json_integer(ck->pending[i].time));
        json_object_set_new(b, "inputs", defs_json(ck, ck->pending[i].defs));
        json_array_append_new(pending, b);
    }
    json_object_set_new(root, "pending", pending);
    json_object_set_new(root, "positions", defs_json(ck, ck->last_defs));
    json_object_set_new(root, "completed_positions", defs_json(ck, ck->completed_defs));
    if (ck->state_time || ck->ndone) {
        json_t *state = json_object();
        json_t *files = json_array();
        for (size_t i = 0; i < ck->nstate_files; i++) {
            json_t *f = json_object();
            json_object_set_new(f, "node", json_integer(ck->state_files[i].node));
            json_object_set_new(f, "time", json_integer(ck->state_files[i].time));
            json_object_set_new(f, "file", json_string(ck->state_files[i].file));
            json_array_append_new(files, f);
        }
        json_t *done = json_array();
        for (size_t i = 0; i < ck->ndone; i++) {
            json_t *b = json_object();
            json_object_set_new(b, "time", json_integer(ck->done[i].time));
            json_object_set_new(b, "inputs", defs_json(ck, ck->done[i].defs));
            json_array_append_new(done, b);
        }
        json_object_set_new(state, "time", json_integer(ck->state_time));
        json_object_set_new(state, "files", files);
        json_object_set_new(state, "done", done);
        json_object_set_new(root, "state", state);
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* @locks ck->lock held */
static int write_locked(sl_checkpoint *ck)
{
    char *json = serialize(ck);
    if (!json) {
        return SL_ERR_NOMEM;
    }
    char name[64];
    snprintf(name, sizeof(name), "checkpoint-%010" PRIu64 ".json", ck->seq);
    size_t bytes = 0;
    int rc = sl__framed_write(ck->dir, name, MAGIC, VERSION, json, strlen(json), true, &bytes);
    int e = errno;
    free(json);
    if (rc != SL_OK) {
        if (ck->last_error == SL_OK) {
            sl_log(SL_LOG_ERROR, "cannot write a checkpoint in %s: %s", ck->dir, strerror(e));
        }
        ck->last_error = rc;
        return rc;
    }
    if (ck->last_error != SL_OK) {
        sl_log(SL_LOG_INFO, "checkpoints are written again in %s", ck->dir);
    }
    ck->last_error = SL_OK;
    ck->bytes = bytes;
    ck->seq++;
    /* Keep the newest few. */
    uint64_t *seqs;
    size_t n = list_files(ck->dir, &seqs);
    for (size_t i = SL_CKPT_KEEP; i < n; i++) {
        char old[4200];
        snprintf(old, sizeof(old), "%s/checkpoint-%010" PRIu64 ".json", ck->dir, seqs[i]);
        unlink(old);
    }
    free(seqs);
    return SL_OK;
}

int sl__ckpt_write(sl_checkpoint *ck)
{
    pthread_mutex_lock(&ck->lock);
    int rc = write_locked(ck);
    pthread_mutex_unlock(&ck->lock);
    return rc;
}

static char **copy_defs(size_t n, const char *const *defs)
{
    char **c = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; c && i < n; i++) {
        c[i] = defs && defs[i] ? strdup(defs[i]) : NULL;
    }
    return c;
}

int sl__ckpt_generated(sl_checkpoint *ck, int64_t t, const char *const *defs)
{
    pthread_mutex_lock(&ck->lock);
    sl_ckpt_batch *p = realloc(ck->pending, (ck->npending + 1) * sizeof(*p));
    if (!p) {
        pthread_mutex_unlock(&ck->lock);
        return SL_ERR_NOMEM;
    }
    ck->pending = p;
    ck->pending[ck->npending].time = t;
    ck->pending[ck->npending].defs = copy_defs(ck->nsources, defs);
    ck->npending++;
    for (size_t i = 0; defs && i < ck->nsources; i++) {
        if (defs[i]) {
            free(ck->last_defs[i]);
            ck->last_defs[i] = strdup(defs[i]);
        }
    }
    int rc = write_locked(ck);
    pthread_mutex_unlock(&ck->lock);
    return rc;
}

/* Drops the kept completed batches up to the state's time. @locks ck->lock held */
static void prune_done(sl_checkpoint *ck)
{
    size_t keep = 0;
    for (size_t i = 0; i < ck->ndone; i++) {
        if (ck->done[i].time <= ck->state_time) {
            batch_free(&ck->done[i], ck->nsources);
        } else {
            ck->done[keep++] = ck->done[i];
        }
    }
    ck->ndone = keep;
}

int sl__ckpt_set_state(sl_checkpoint *ck, int64_t t, const sl_ckpt_state_file *files, size_t n)
{
    sl_ckpt_state_file *c = calloc(n + 1, sizeof(*c));
    for (size_t i = 0; c && i < n; i++) {
        c[i] = files[i];
        c[i].file = strdup(files[i].file);
        if (!c[i].file) {
            for (size_t j = 0; j < i; j++) {
                free(c[j].file);
            }
            free(c);
            c = NULL;
        }
    }
    if (!c) {
        return SL_ERR_NOMEM;
    }
    pthread_mutex_lock(&ck->lock);
    state_files_free(ck);
    ck->state_files = c;
    ck->nstate_files = n;
    ck->state_time = t;
    prune_done(ck);
    pthread_mutex_unlock(&ck->lock);
    return SL_OK;
}

int sl__ckpt_completed(sl_checkpoint *ck, int64_t t)
{
    pthread_mutex_lock(&ck->lock);
    for (size_t i = 0; i < ck->npending; i++) {
        if (ck->pending[i].time == t) {
            /* The oldest batch not completed: every batch up to it has (one completed out of
             * order leaves the positions at this older one, which is behind: safe). */
            for (size_t k = 0; i == 0 && k < ck->nsources; k++) {
                char *d = ck->pending[i].defs ? ck->pending[i].defs[k] : NULL;
                if (d) {
                    free(ck->completed_defs[k]);
                    ck->completed_defs[k] = strdup(d);
                }
            }
            sl_ckpt_batch *d = ck->keep_done && t > ck->state_time
                                   ? realloc(ck->done, (ck->ndone + 1) * sizeof(*ck->done))
                                   : NULL;
            if (d) {
                /* Kept: after a restart it runs again to rebuild the state. */
                ck->done = d;
                ck->done[ck->ndone++] = ck->pending[i];
                ck->pending[i].defs = NULL;
            }
            batch_free(&ck->pending[i], ck->nsources);
            memmove(&ck->pending[i], &ck->pending[i + 1],
                    (ck->npending - i - 1) * sizeof(*ck->pending));
            ck->npending--;
            break;
        }
    }
    if (t > ck->last_completed) {
        ck->last_completed = t;
    }
    int rc = write_locked(ck);
    pthread_mutex_unlock(&ck->lock);
    return rc;
}

int sl__ckpt_drop_pending(sl_checkpoint *ck)
{
    pthread_mutex_lock(&ck->lock);
    for (size_t i = 0; i < ck->npending; i++) {
        batch_free(&ck->pending[i], ck->nsources);
    }
    ck->npending = 0;
    for (size_t k = 0; k < ck->nsources; k++) {
        free(ck->last_defs[k]);
        ck->last_defs[k] = ck->completed_defs[k] ? strdup(ck->completed_defs[k]) : NULL;
    }
    int rc = write_locked(ck);
    pthread_mutex_unlock(&ck->lock);
    return rc;
}

/* ==== Loading ==== */

/* Reads and verifies one file; returns its JSON or NULL with why set. */
static json_t *read_file(const char *path, char *why, size_t whysize)
{
    size_t len;
    char *buf = sl__framed_read(path, MAGIC, VERSION, MAX_LEN, "checkpoint", &len, why, whysize);
    if (!buf) {
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, 0, &jerr);
    if (!root) {
        snprintf(why, whysize, "invalid JSON: %s", jerr.text);
    }
    free(buf);
    return root;
}

/* Lines of a that are not in b, prefixed, into out. */
static void diff_lines(const char *a, const char *b, const char *prefix, char *out, size_t size)
{
    const char *p = a;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        bool found = false;
        for (const char *q = b; *q;) {
            const char *qnl = strchr(q, '\n');
            size_t m = qnl ? (size_t)(qnl - q) : strlen(q);
            if (m == n && strncmp(p, q, n) == 0) {
                found = true;
                break;
            }
            q += m + (qnl ? 1 : 0);
        }
        size_t used = strlen(out);
        if (!found && used + n + 8 < size) {
            snprintf(out + used, size - used, "%s%.*s; ", prefix, (int)n, p);
        }
        p += n + (nl ? 1 : 0);
    }
}

static char *json_str_dup(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? strdup(s) : NULL;
}

static void load_defs(sl_checkpoint *ck, json_t *o, char **defs)
{
    for (size_t i = 0; i < ck->nsources; i++) {
        defs[i] = json_str_dup(o, ck->source_names[i]);
    }
}

/* A batch time of the document outside 0..SL_TIME_MAX_MS: false with why set. Such a file
 * was not written by a working sluice, and recovery's arithmetic on it would overflow. */
static bool times_in_range(json_t *root, char *why, size_t whysize)
{
    json_t *state = json_object_get(root, "state");
    struct {
        const char *name;
        json_t *list; /* an array of objects with "time", or NULL */
        json_t *value;
    } times[] = {
        {"zero_time", NULL, json_object_get(root, "zero_time")},
        {"last_completed", NULL, json_object_get(root, "last_completed")},
        {"state.time", NULL, json_object_get(state, "time")},
        {"pending", json_object_get(root, "pending"), NULL},
        {"state.files", json_object_get(state, "files"), NULL},
        {"state.done", json_object_get(state, "done"), NULL},
    };
    for (size_t k = 0; k < sizeof(times) / sizeof(times[0]); k++) {
        size_t n = times[k].list ? json_array_size(times[k].list) : 1;
        for (size_t i = 0; i < n; i++) {
            json_t *v = times[k].list ? json_object_get(json_array_get(times[k].list, i), "time")
                                      : times[k].value;
            json_int_t t = json_integer_value(v);
            if (t < 0 || t > SL_TIME_MAX_MS) {
                snprintf(why, whysize,
                         "corrupt: batch time %" JSON_INTEGER_FORMAT " in %s is out of range "
                         "0..%" PRId64 " ms",
                         t, times[k].name, SL_TIME_MAX_MS);
                return false;
            }
        }
    }
    return true;
}

int sl__ckpt_load(sl_checkpoint *ck, bool *found, char *errstr, size_t errsize)
{
    *found = false;
    uint64_t *seqs;
    size_t n = list_files(ck->dir, &seqs);
    json_t *root = NULL;
    for (size_t i = 0; i < n && !root; i++) {
        char path[4200], why[256];
        snprintf(path, sizeof(path), "%s/checkpoint-%010" PRIu64 ".json", ck->dir, seqs[i]);
        root = read_file(path, why, sizeof(why));
        if (root && !times_in_range(root, why, sizeof(why))) {
            json_decref(root);
            root = NULL;
        }
        if (!root) {
            sl_log(SL_LOG_WARN, "checkpoint %s is unusable (%s): using the one before it", path,
                   why);
        }
    }
    free(seqs);
    if (!root) {
        if (n) {
            sl_log(SL_LOG_WARN, "no usable checkpoint in %s: starting fresh", ck->dir);
        }
        return SL_OK;
    }
    const char *old_graph = json_string_value(json_object_get(root, "graph"));
    int64_t interval = json_integer_value(json_object_get(root, "batch_interval"));
    if (!old_graph || strcmp(old_graph, ck->graph) != 0 || interval != ck->batch_interval) {
        char diff[1024] = "";
        if (interval != ck->batch_interval) {
            snprintf(diff, sizeof(diff), "batch interval %" PRId64 "ms -> %" PRId64 "ms; ",
                     interval, ck->batch_interval);
        }
        if (old_graph) {
            diff_lines(old_graph, ck->graph, "was: ", diff, sizeof(diff));
            diff_lines(ck->graph, old_graph, "now: ", diff, sizeof(diff));
        }
        snprintf(errstr, errsize,
                 "the checkpoint in %s was written by a different pipeline (%s): to start "
                 "fresh, move or delete that directory, or set another checkpoint_dir",
                 ck->dir, diff);
        json_decref(root);
        return SL_ERR_INVAL;
    }
    pthread_mutex_lock(&ck->lock);
    clear_state(ck);
    ck->zero_time = json_integer_value(json_object_get(root, "zero_time"));
    ck->last_completed = json_integer_value(json_object_get(root, "last_completed"));
    load_defs(ck, json_object_get(root, "positions"), ck->last_defs);
    load_defs(ck, json_object_get(root, "completed_positions"), ck->completed_defs);
    json_t *pending = json_object_get(root, "pending");
    size_t np = json_array_size(pending);
    ck->pending = calloc(np + 1, sizeof(*ck->pending));
    for (size_t i = 0; ck->pending && i < np; i++) {
        json_t *b = json_array_get(pending, i);
        ck->pending[i].time = json_integer_value(json_object_get(b, "time"));
        ck->pending[i].defs = calloc(ck->nsources + 1, sizeof(char *));
        if (ck->pending[i].defs) {
            load_defs(ck, json_object_get(b, "inputs"), ck->pending[i].defs);
        }
        ck->npending++;
    }
    json_t *state = json_object_get(root, "state");
    ck->state_time = json_integer_value(json_object_get(state, "time"));
    json_t *files = json_object_get(state, "files");
    size_t nf = json_array_size(files);
    ck->state_files = calloc(nf + 1, sizeof(*ck->state_files));
    for (size_t i = 0; ck->state_files && i < nf; i++) {
        json_t *f = json_array_get(files, i);
        sl_ckpt_state_file *sf = &ck->state_files[ck->nstate_files];
        sf->node = (int)json_integer_value(json_object_get(f, "node"));
        sf->time = json_integer_value(json_object_get(f, "time"));
        sf->file = json_str_dup(f, "file");
        if (sf->file) {
            ck->nstate_files++;
        }
    }
    json_t *done = json_object_get(state, "done");
    size_t nd = json_array_size(done);
    ck->done = calloc(nd + 1, sizeof(*ck->done));
    for (size_t i = 0; ck->done && i < nd; i++) {
        json_t *b = json_array_get(done, i);
        ck->done[i].time = json_integer_value(json_object_get(b, "time"));
        ck->done[i].defs = calloc(ck->nsources + 1, sizeof(char *));
        if (ck->done[i].defs) {
            load_defs(ck, json_object_get(b, "inputs"), ck->done[i].defs);
        }
        ck->ndone++;
    }
    pthread_mutex_unlock(&ck->lock);
    json_decref(root);
    *found = true;
    return SL_OK;
}

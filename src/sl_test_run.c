/* sl_test_run.c -- `sluice test`: each test of a test file runs its pipeline on a simulated
 * clock (sl__context_step, batch after batch, no sleeping) with the testbench connectors in
 * place of its sources and sinks, in a temporary directory (the checkpoint's and the sinks'
 * files, removed after); what each sink wrote is compared with what the test expects, and
 * the records missing and unexpected are printed per sink and batch. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sl_cfg.h"
#include "sl_engine.h"
#include "sl_record_text.h"
#include "sl_test.h"

/* ==== What a sink wrote ==== */

/* One record a sink wrote (an object of the testbench sink's line), with its batch time. */
typedef struct tr_act {
    json_t *j; /* borrowed from its line */
    int64_t batch_time;
} tr_act;

typedef struct tr_capture {
    json_t **lines;
    size_t nlines;
    tr_act *recs;
    size_t nrecs;
} tr_capture;

static void capture_free(tr_capture *c)
{
    for (size_t i = 0; i < c->nlines; i++) {
        json_decref(c->lines[i]);
    }
    free(c->lines);
    free(c->recs);
    *c = (tr_capture){0};
}

/* Reads the sink's file (none: it wrote nothing). SL_OK or an error. */
static int capture_read(const char *path, tr_capture *c)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return SL_OK;
    }
    char *line = NULL;
    size_t cap = 0;
    int rc = SL_OK;
    while (rc == SL_OK && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        json_t **l = realloc(c->lines, (c->nlines + 1) * sizeof(*l));
        json_t *recs = json_object_get(j, "records");
        tr_act *r =
            l ? realloc(c->recs, (c->nrecs + json_array_size(recs) + 1) * sizeof(*r)) : NULL;
        if (l) {
            c->lines = l;
        }
        if (r) {
            c->recs = r;
        }
        if (!j || !r) {
            json_decref(j);
            rc = j ? SL_ERR_NOMEM : SL_ERR_IO;
            break;
        }
        c->lines[c->nlines++] = j;
        int64_t t = json_integer_value(json_object_get(j, "batch_time"));
        for (size_t i = 0; i < json_array_size(recs); i++) {
            c->recs[c->nrecs++] = (tr_act){json_array_get(recs, i), t};
        }
    }
    free(line);
    fclose(f);
    return rc;
}

static int b64_digit(int ch)
{
    const char *set = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *at = ch ? strchr(set, ch) : NULL;
    return at ? (int)(at - set) : -1;
}

/* A bytes field of an actual record into b (NUL-terminated): false when it is null. */
static bool act_bytes(const json_t *a, const char *name, sl_buf *b)
{
    sl__buf_reset(b);
    sl__buf_append(b, "", 0);
    const json_t *v = json_object_get(a, name);
    if (!json_is_string(v)) {
        return false;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    char enc[64];
    snprintf(enc, sizeof(enc), "%s_encoding", name);
    if (!json_object_get(a, enc)) {
        sl__buf_append(b, s, n);
        return true;
    }
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int d = b64_digit((unsigned char)s[i]);
        if (d < 0) {
            continue;
        }
        acc = (acc << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char ch = (char)((acc >> bits) & 0xFF);
            sl__buf_append(b, &ch, 1);
        }
    }
    return true;
}

/* The typed value of an actual record: false when it has none. */
static bool act_num(const json_t *a, double *d, bool *is_int, int64_t *i)
{
    const char *type = json_string_value(json_object_get(a, "num_type"));
    const json_t *v = json_object_get(a, "num");
    if (!type) {
        return false;
    }
    *is_int = strcmp(type, "int") == 0;
    *i = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
    *d = json_is_string(v) ? strtod(json_string_value(v), NULL) : json_number_value(v);
    if (*is_int) {
        *d = (double)*i;
    }
    return true;
}

/* The record as the stdout sink prints it: "(key,value)" or "value". */
static void act_text(const json_t *a, sl_buf *out)
{
    sl_buf b = {0};
    sl__buf_reset(out);
    sl__buf_append(out, "", 0);
    bool keyed = act_bytes(a, "key", &b) && b.len > 0;
    if (keyed) {
        sl__buf_puts(out, "(");
        sl__buf_append(out, b.p, b.len);
        sl__buf_puts(out, ",");
    }
    double d;
    bool is_int;
    int64_t i;
    if (act_num(a, &d, &is_int, &i)) {
        char num[40];
        if (is_int) {
            snprintf(num, sizeof(num), "%" PRId64, i);
        } else {
            sl__record_format_double(d, num, sizeof(num));
        }
        sl__buf_puts(out, num);
    } else if (act_bytes(a, "value", &b)) {
        sl__buf_append(out, b.p, b.len);
    }
    if (keyed) {
        sl__buf_puts(out, ")");
    }
    sl__buf_free(&b);
}

/* ==== Comparing ==== */

/* JSON equality with numbers compared as numbers (1 equals 1.0). */
static bool json_same(const json_t *x, const json_t *y)
{
    if (json_is_number(x) && json_is_number(y)) {
        return json_number_value(x) == json_number_value(y);
    }
    if (json_typeof(x) != json_typeof(y)) {
        return false;
    }
    if (json_is_array(x)) {
        if (json_array_size(x) != json_array_size(y)) {
            return false;
        }
        for (size_t i = 0; i < json_array_size(x); i++) {
            if (!json_same(json_array_get(x, i), json_array_get(y, i))) {
                return false;
            }
        }
        return true;
    }
    if (json_is_object(x)) {
        if (json_object_size(x) != json_object_size(y)) {
            return false;
        }
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)x, k, v)
        {
            const json_t *w = json_object_get(y, k);
            if (!w || !json_same(v, w)) {
                return false;
            }
        }
        return true;
    }
    return json_equal((json_t *)x, (json_t *)y);
}

/* A number written as text equals d. */
static bool text_is_num(const char *s, size_t n, double d)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    return end != buf && !*end && v == d;
}

/* Does the actual record a match the expected e? */
static bool matches(const sl_texp *e, const tr_act *act)
{
    const json_t *a = act->j;
    sl_buf b = {0};
    bool ok = true;
    double d;
    bool is_int;
    int64_t iv;
    bool has_num = act_num(a, &d, &is_int, &iv);
    if (e->text) {
        act_text(a, &b);
        ok = strcmp(b.p, e->text) == 0;
        if (!ok && has_num) {
            /* The typed value as a number: "(be,2.0)" is "(be,2)". */
            const char *close = strrchr(b.p, ','); /* a key may hold commas, a number not */
            size_t head = b.p[0] == '(' && close ? (size_t)(close - b.p) + 1 : 0;
            size_t tail = head ? 1 : 0;
            size_t n = strlen(e->text);
            ok = n > head + tail && strncmp(e->text, b.p, head) == 0 &&
                 (!tail || e->text[n - 1] == ')') &&
                 text_is_num(e->text + head, n - head - tail, d);
        }
        sl__buf_free(&b);
        return ok;
    }
    if (ok && (e->has & SL_TX_KEY)) {
        bool k = act_bytes(a, "key", &b) && b.len > 0;
        ok = e->key ? k && strcmp(b.p, e->key) == 0 && b.len == strlen(e->key) : !k;
    }
    if (ok && (e->has & SL_TX_VALUE)) {
        bool v = act_bytes(a, "value", &b);
        ok = e->value ? v && b.len == strlen(e->value) && memcmp(b.p, e->value, b.len) == 0 : !v;
    }
    if (ok && (e->has & SL_TX_JSON)) {
        json_t *j =
            act_bytes(a, "value", &b) ? json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL) : NULL;
        ok = j && json_same(e->json, j);
        json_decref(j);
    }
    if (ok && (e->has & SL_TX_NUM)) {
        ok = e->num_none ? !has_num : has_num && d == e->num;
    }
    if (ok && (e->has & SL_TX_TOMBSTONE)) {
        ok = (!has_num && !json_is_string(json_object_get(a, "value"))) == e->tombstone;
    }
    static const struct {
        unsigned bit;
        const char *name;
        size_t off;
    } ints[] = {
        {SL_TX_TS, "ts", offsetof(sl_texp, ts)},
        {SL_TX_WSTART, "window_start", offsetof(sl_texp, window_start)},
        {SL_TX_WEND, "window_end", offsetof(sl_texp, window_end)},
        {SL_TX_PARTITION, "partition", offsetof(sl_texp, partition)},
        {SL_TX_OFFSET, "offset", offsetof(sl_texp, offset)},
    };
    for (size_t i = 0; ok && i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (e->has & ints[i].bit) {
            const json_t *v = json_object_get(a, ints[i].name);
            ok = json_is_integer(v) &&
                 json_integer_value(v) == *(const int64_t *)((const char *)e + ints[i].off);
        }
    }
    if (ok && (e->has & SL_TX_BATCH)) {
        ok = act->batch_time == e->batch_time;
    }
    const char *texts[2] = {"topic", "source"};
    const char *want[2] = {e->topic, e->source};
    unsigned bits[2] = {SL_TX_TOPIC, SL_TX_SOURCE};
    for (int i = 0; ok && i < 2; i++) {
        if (e->has & bits[i]) {
            bool v = act_bytes(a, texts[i], &b);
            ok = want[i] ? v && strcmp(b.p, want[i]) == 0 : !v;
        }
    }
    sl__buf_free(&b);
    return ok;
}

/* Kuhn's augmenting path from expected e (bipartite matching of expected to actual). */
static bool augment(const unsigned char *adj, size_t na, size_t e, bool *seen, size_t *owner)
{
    for (size_t a = 0; a < na; a++) {
        if (!adj[e * na + a] || seen[a]) {
            continue;
        }
        seen[a] = true;
        if (owner[a] == SIZE_MAX || augment(adj, na, owner[a], seen, owner)) {
            owner[a] = e;
            return true;
        }
    }
    return false;
}

/* ==== Printing ==== */

static void print_time(FILE *out, int64_t ms, int64_t start)
{
    char buf[64];
    int64_t d = ms - start;
    if (d > -365LL * 86400000 && d < 365LL * 86400000) {
        sl__cfg_fmt_duration(d >= 0 ? d : -d, buf, sizeof(buf));
        fprintf(out, "%s%s", d >= 0 ? "+" : "-", buf);
    } else {
        sl__tfmt_time(ms, buf, sizeof(buf));
        fputs(buf, out);
    }
}

static void print_expected(FILE *out, const sl_texp *e, int64_t start)
{
    if (e->text) {
        fputs(e->text, out);
        return;
    }
    const char *sep = "{";
    if (e->has & SL_TX_KEY) {
        fprintf(out, "%skey: %s", sep, e->key ? e->key : "~");
        sep = ", ";
    }
    if (e->has & SL_TX_VALUE) {
        fprintf(out, "%svalue: %s", sep, e->value ? e->value : "~");
        sep = ", ";
    }
    if (e->has & SL_TX_JSON) {
        char *j = json_dumps(e->json, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        fprintf(out, "%sjson: %s", sep, j ? j : "?");
        free(j);
        sep = ", ";
    }
    if (e->has & SL_TX_NUM) {
        char num[40] = "~";
        if (!e->num_none) {
            sl__record_format_double(e->num, num, sizeof(num));
        }
        fprintf(out, "%snum: %s", sep, num);
        sep = ", ";
    }
    const struct {
        unsigned bit;
        const char *name;
        int64_t v;
    } times[] = {{SL_TX_TS, "timestamp", e->ts},
                 {SL_TX_WSTART, "window_start", e->window_start},
                 {SL_TX_WEND, "window_end", e->window_end},
                 {SL_TX_BATCH, "batch_time", e->batch_time}};
    for (size_t i = 0; i < 4; i++) {
        if (e->has & times[i].bit) {
            fprintf(out, "%s%s: ", sep, times[i].name);
            print_time(out, times[i].v, start);
            sep = ", ";
        }
    }
    if (e->has & SL_TX_TOPIC) {
        fprintf(out, "%stopic: %s", sep, e->topic ? e->topic : "~");
        sep = ", ";
    }
    if (e->has & SL_TX_SOURCE) {
        fprintf(out, "%ssource: %s", sep, e->source ? e->source : "~");
        sep = ", ";
    }
    if (e->has & SL_TX_PARTITION) {
        fprintf(out, "%spartition: %" PRId64, sep, e->partition);
        sep = ", ";
    }
    if (e->has & SL_TX_OFFSET) {
        fprintf(out, "%soffset: %" PRId64, sep, e->offset);
        sep = ", ";
    }
    if (e->has & SL_TX_TOMBSTONE) {
        fprintf(out, "%stombstone: %s", sep, e->tombstone ? "true" : "false");
        sep = ", ";
    }
    fputs(*sep == '{' ? "{}" : "}", out);
}

/* An actual record: as the stdout sink prints it, then the fields the expectations use. */
static void print_actual(FILE *out, const tr_act *act, unsigned fields, int64_t start)
{
    sl_buf b = {0};
    act_text(act->j, &b);
    fputs(b.p, out);
    const json_t *a = act->j;
    if (!json_object_get(a, "num_type") && !json_is_string(json_object_get(a, "value"))) {
        fputs("  (tombstone)", out);
    }
    const char *sep = "  {";
    if (fields & (SL_TX_VALUE | SL_TX_JSON)) {
        bool v = act_bytes(a, "value", &b);
        fprintf(out, "%svalue: %s", sep, v ? b.p : "~");
        sep = ", ";
    }
    const struct {
        unsigned bit;
        const char *name, *field;
    } times[] = {{SL_TX_TS, "timestamp", "ts"},
                 {SL_TX_WSTART, "window_start", "window_start"},
                 {SL_TX_WEND, "window_end", "window_end"}};
    for (size_t i = 0; i < 3; i++) {
        if (fields & times[i].bit) {
            fprintf(out, "%s%s: ", sep, times[i].name);
            print_time(out, json_integer_value(json_object_get(a, times[i].field)), start);
            sep = ", ";
        }
    }
    if (fields & SL_TX_BATCH) {
        fprintf(out, "%sbatch_time: ", sep);
        print_time(out, act->batch_time, start);
        sep = ", ";
    }
    const struct {
        unsigned bit;
        const char *name;
    } metas[] = {{SL_TX_TOPIC, "topic"},
                 {SL_TX_SOURCE, "source"},
                 {SL_TX_PARTITION, "partition"},
                 {SL_TX_OFFSET, "offset"}};
    for (size_t i = 0; i < 4; i++) {
        if (fields & metas[i].bit) {
            const json_t *v = json_object_get(a, metas[i].name);
            if (json_is_integer(v)) {
                fprintf(out, "%s%s: %" JSON_INTEGER_FORMAT, sep, metas[i].name,
                        json_integer_value(v));
            } else {
                fprintf(out, "%s%s: %s", sep, metas[i].name,
                        json_is_string(v) ? json_string_value(v) : "~");
            }
            sep = ", ";
        }
    }
    if (*sep == ',') {
        fputs("}", out);
    }
    sl__buf_free(&b);
}

/* ==== One test ==== */

/* Compares a group with what its sink wrote in its batches; prints the differences. Returns
 * true when they agree. */
static bool check_group(const sl_tfile *tf, const sl_tcase *tc, const sl_tgroup *g,
                        const tr_capture *cap, FILE *out)
{
    int64_t from = g->first ? tc->batches[g->first - 1].time : tc->start;
    int64_t to = tc->batches[g->last].time;
    size_t na = 0;
    tr_act *acts = calloc(cap->nrecs + 1, sizeof(*acts));
    for (size_t i = 0; acts && i < cap->nrecs; i++) {
        if (cap->recs[i].batch_time > from && cap->recs[i].batch_time <= to) {
            acts[na++] = cap->recs[i];
        }
    }
    size_t ne = g->nrecs;
    unsigned char *adj = calloc(ne * na + 1, 1);
    size_t *owner = malloc((na + 1) * sizeof(*owner));
    bool *seen = malloc(na + 1);
    bool *got = calloc(ne + 1, sizeof(*got));
    if (!acts || !adj || !owner || !seen || !got) {
        fprintf(out, "    out of memory comparing sink '%s'\n", tf->sinks[g->sink]);
        free(acts), free(adj), free(owner), free(seen), free(got);
        return false;
    }
    unsigned fields = 0;
    for (size_t e = 0; e < ne; e++) {
        fields |= g->recs[e].has;
        for (size_t a = 0; a < na; a++) {
            adj[e * na + a] = matches(&g->recs[e], &acts[a]);
        }
    }
    for (size_t a = 0; a < na; a++) {
        owner[a] = SIZE_MAX;
    }
    size_t matched = 0;
    for (size_t e = 0; e < ne; e++) {
        memset(seen, 0, na + 1);
        matched += augment(adj, na, e, seen, owner);
    }
    for (size_t a = 0; a < na; a++) {
        if (owner[a] != SIZE_MAX) {
            got[owner[a]] = true;
        }
    }
    bool same = matched == ne && matched == na;
    bool order = true;
    for (size_t i = 0; same && tc->ordered && i < ne; i++) {
        order = order && adj[i * na + i];
    }
    if (!same || !order) {
        fprintf(out, "    sink '%s', ", tf->sinks[g->sink]);
        if (g->first == g->last) {
            fprintf(out, "batch %zu at ", g->first + 1);
            print_time(out, to, tc->start);
        } else {
            fprintf(out, "batches 1-%zu", g->last + 1);
        }
        fprintf(out, " (%s:%d): ", tf->path, g->loc.line);
        if (same) {
            fprintf(out, "the records in another order\n");
            for (size_t a = 0; a < na; a++) {
                fprintf(out, "      expected ");
                print_expected(out, &g->recs[a], tc->start);
                fprintf(out, "\n      written  ");
                print_actual(out, &acts[a], fields, tc->start);
                fputc('\n', out);
            }
        } else {
            fprintf(out, "%zu missing, %zu unexpected\n", ne - matched, na - matched);
            for (size_t e = 0; e < ne; e++) {
                if (!got[e]) {
                    fprintf(out, "      - ");
                    print_expected(out, &g->recs[e], tc->start);
                    fprintf(out, "    (line %d)\n", g->recs[e].loc.line);
                }
            }
            for (size_t a = 0; a < na; a++) {
                if (owner[a] == SIZE_MAX) {
                    fprintf(out, "      + ");
                    print_actual(out, &acts[a], fields, tc->start);
                    fputc('\n', out);
                }
            }
        }
    }
    free(acts), free(adj), free(owner), free(seen), free(got);
    return same && order;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

bool sl__test_doubles(const char **src, const char **sink)
{
    *src = *sink = NULL;
    for (size_t i = 0; sl_connector_at(i); i++) {
        const sl_connector *c = sl_connector_at(i);
        unsigned f = sl_connector_flags(c);
        if ((f & SL_TEST_DOUBLE) && (f & SL_SOURCE) && !*src) {
            *src = sl_connector_name(c);
        } else if ((f & SL_TEST_DOUBLE) && (f & SL_SINK) && !*sink) {
            *sink = sl_connector_name(c);
        }
    }
    return *src && *sink;
}

/* Runs the pipeline through the test's batches, the sinks writing into dir. SL_OK or an
 * error printed to err. */
static int run_batches(const sl_tfile *tf, const sl_tcase *tc, const char *dir, FILE *err)
{
    char msg[1024];
    sl_config *cfg = NULL;
    if (sl__config_load(tf->pipeline, &cfg, msg, sizeof(msg)) != SL_OK) {
        fprintf(err, "%s\n", msg);
        return SL_ERR_INVAL;
    }
    const char *srct, *sinkt;
    sl_options **so = calloc(tf->nsources + 1, sizeof(*so));
    sl_options **ko = calloc(tf->nsinks + 1, sizeof(*ko));
    char *ckpt = sl__cfg_strdupf("%s/checkpoint", dir);
    int rc = so && ko && ckpt && sl__test_doubles(&srct, &sinkt) ? SL_OK : SL_ERR_NOMEM;
    for (size_t i = 0; rc == SL_OK && i < tf->nsources; i++) {
        char *j = json_dumps(tc->inputs[i], JSON_COMPACT);
        so[i] = sl_options_new();
        rc = j && so[i] ? sl_options_set(so[i], "batches", j) : SL_ERR_NOMEM;
        free(j);
    }
    for (size_t i = 0; rc == SL_OK && i < tf->nsinks; i++) {
        if (tf->changelog[i]) {
            continue;
        }
        char path[4200];
        snprintf(path, sizeof(path), "%s/sink-%zu.jsonl", dir, i);
        ko[i] = sl_options_new();
        rc = ko[i] ? sl_options_set(ko[i], "path", path) : SL_ERR_NOMEM;
    }
    sl_context *ctx = NULL;
    if (rc == SL_OK) {
        sl_config_swap swap = {.checkpoint_dir = ckpt,
                               .source_type = srct,
                               .source_opts = (const sl_options *const *)so,
                               .sink_type = sinkt,
                               .sink_opts = (const sl_options *const *)ko};
        ctx = sl__config_build_swapped(cfg, &swap, msg, sizeof(msg));
        if (!ctx) {
            fprintf(err, "%s\n", msg);
            rc = SL_ERR_INVAL;
        }
    } else {
        fprintf(err, "sluice test: out of memory\n");
    }
    int64_t last = tc->batches[tc->nbatches - 1].time;
    for (int64_t t = tc->start + tf->interval; rc == SL_OK && t <= last; t += tf->interval) {
        rc = sl__context_step(ctx, t, NULL);
        if (rc != SL_OK) {
            fprintf(err, "%s: test '%s': the batch at ", tf->path, tc->name);
            print_time(err, t, tc->start);
            fprintf(err, " failed: %s (see the log above)\n", sl_err2str(rc));
        }
    }
    sl_context_destroy(ctx);
    sl__config_destroy(cfg);
    for (size_t i = 0; so && i < tf->nsources; i++) {
        sl_options_destroy(so[i]);
    }
    for (size_t i = 0; ko && i < tf->nsinks; i++) {
        sl_options_destroy(ko[i]);
    }
    free(so);
    free(ko);
    free(ckpt);
    return rc;
}

/* Runs one test: 1 passed, 0 failed (differences printed), -1 could not run. */
static int run_test(const sl_tfile *tf, const sl_tcase *tc, FILE *out, FILE *err)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/sluice-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(err, "sluice test: cannot make a temporary directory in %s\n",
                tmp && *tmp ? tmp : "/tmp");
        return -1;
    }
    int rc = run_batches(tf, tc, dir, err);
    tr_capture *caps = calloc(tf->nsinks + 1, sizeof(*caps));
    for (size_t i = 0; rc == SL_OK && caps && i < tf->nsinks; i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/sink-%zu.jsonl", dir, i);
        rc = capture_read(path, &caps[i]);
    }
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != SL_OK || !caps) {
        for (size_t i = 0; caps && i < tf->nsinks; i++) {
            capture_free(&caps[i]);
        }
        free(caps);
        fprintf(out, "ERROR %s: %s\n", tf->path, tc->name);
        return -1;
    }
    /* The differences are printed after the test's line: gather them first. */
    char *diff = NULL;
    size_t difflen = 0;
    FILE *d = open_memstream(&diff, &difflen);
    bool pass = d != NULL;
    for (size_t g = 0; d && g < tc->ngroups; g++) {
        if (tc->groups[g].checked) {
            pass &= check_group(tf, tc, &tc->groups[g], &caps[tc->groups[g].sink], d);
        }
    }
    if (d) {
        fclose(d);
    }
    fprintf(out, "%s %s: %s\n", pass ? "ok  " : "FAIL", tf->path, tc->name);
    if (!pass && diff) {
        fputs(diff, out);
    }
    free(diff);
    for (size_t i = 0; i < tf->nsinks; i++) {
        capture_free(&caps[i]);
    }
    free(caps);
    return pass ? 1 : 0;
}

int sl__tfile_run(const sl_tfile *tf, FILE *out, FILE *err)
{
    int failed = 0;
    for (size_t t = 0; t < tf->ntests; t++) {
        int r = run_test(tf, &tf->tests[t], out, err);
        fflush(out);
        if (r < 0) {
            return -1;
        }
        failed += r == 0;
    }
    return failed;
}

int sl__test_main(const char *const *paths, size_t n)
{
    size_t tests = 0, failed = 0;
    bool broken = false;
    for (size_t i = 0; i < n; i++) {
        char err[2048];
        sl_tfile *tf;
        if (sl__tfile_load(paths[i], &tf, err, sizeof(err)) != SL_OK) {
            fflush(stdout);
            fprintf(stderr, "%s\n", err);
            return 2;
        }
        int r = sl__tfile_run(tf, stdout, stderr);
        tests += tf->ntests;
        sl__tfile_destroy(tf);
        if (r < 0) {
            broken = true;
            break;
        }
        failed += (size_t)r;
    }
    if (broken) {
        printf("sluice test: a test could not run (see above)\n");
        return 1;
    }
    printf("%zu test%s, %zu passed, %zu failed\n", tests, tests == 1 ? "" : "s", tests - failed,
           failed);
    return failed ? 1 : 0;
}

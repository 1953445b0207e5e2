/* fuzz_yamlops.c -- fuzzes the YAML ops (split, key, value, filter, map, parse, set, rename,
 * drop, keep) on record bytes: JSON paths, numbers, regexes, text transforms, times (the
 * timestamp op's formats), the parse op's regexes and log formats, and the JSON shaping ops
 * (alone and fused into one op) applied to whatever a source may read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_yamlops.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 64

static sl_yamlop *maps[MAX_OPS], *filters[MAX_OPS], *splits[4];
static size_t nmaps, nfilters, nsplits;

static void add(sl_yamlop **v, size_t *n, sl_yamlop *op, const char *what)
{
    if (!op) {
        fprintf(stderr, "fuzz_yamlops: cannot build %s\n", what);
        abort();
    }
    v[(*n)++] = op;
}

static void add_filter(sl_yamlop_target target, const char *name, sl_yamlop_cmp cmp,
                       const char *operand)
{
    char err[256];
    add(filters, &nfilters, sl__yamlops_filter_new(target, name, cmp, operand, err, sizeof(err)),
        err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    sl_set_log_level((sl_log_level)-1);
    add(splits, &nsplits, sl__yamlops_split_new(NULL, err, sizeof(err)), "split");
    add(splits, &nsplits, sl__yamlops_split_new(",", err, sizeof(err)), "split ,");
    add(splits, &nsplits, sl__yamlops_split_new("::", err, sizeof(err)), "split ::");

    add(maps, &nmaps, sl__yamlops_key_new(NULL, err, sizeof(err)), "key");
    add(maps, &nmaps, sl__yamlops_key_new("service", err, sizeof(err)), "key service");
    add(maps, &nmaps, sl__yamlops_key_new("items.0.sku", err, sizeof(err)), "key items.0.sku");
    add(maps, &nmaps, sl__yamlops_key_from_new(SL_YOP_ON_META, "topic", err, sizeof(err)), "meta");
    add(maps, &nmaps, sl__yamlops_key_from_new(SL_YOP_ON_META, "offset", err, sizeof(err)), "off");
    add(maps, &nmaps, sl__yamlops_key_from_new(SL_YOP_ON_HEADER, "h", err, sizeof(err)), "header");
    add(maps, &nmaps, sl__yamlops_value_literal_new("1", err, sizeof(err)), "value 1");
    add(maps, &nmaps, sl__yamlops_value_literal_new("0.5", err, sizeof(err)), "value 0.5");
    add(maps, &nmaps, sl__yamlops_value_from_new(SL_YOP_ON_VALUE, NULL, false, err, sizeof(err)),
        "value number");
    add(maps, &nmaps, sl__yamlops_value_json_new("latency_ms", false, err, sizeof(err)), "num");
    add(maps, &nmaps, sl__yamlops_value_json_new("user.name", true, err, sizeof(err)), "text");
    add(maps, &nmaps, sl__yamlops_value_json_new("a.1.b", false, err, sizeof(err)), "a.1.b");
    add(maps, &nmaps, sl__yamlops_value_from_new(SL_YOP_ON_HEADER, "h", false, err, sizeof(err)),
        "hdr num");
    add(maps, &nmaps,
        sl__yamlops_value_from_new(SL_YOP_ON_META, "partition", true, err, sizeof(err)), "part");
    add(maps, &nmaps, sl__yamlops_transform_new("lower", err, sizeof(err)), "lower");
    add(maps, &nmaps, sl__yamlops_timestamp_new(SL_YOP_ON_VALUE, NULL, "rfc3339", err, sizeof(err)),
        "ts 3339");
    add(maps, &nmaps,
        sl__yamlops_timestamp_new(SL_YOP_ON_VALUE, NULL, "%d/%b/%Y:%H:%M:%S %z", err, sizeof(err)),
        "ts pattern");
    add(maps, &nmaps, sl__yamlops_timestamp_new(SL_YOP_ON_JSON, "t", "s", err, sizeof(err)),
        "ts json s");
    add(maps, &nmaps, sl__yamlops_timestamp_new(SL_YOP_ON_HEADER, "h", "ns", err, sizeof(err)),
        "ts header ns");
    add(maps, &nmaps, sl__yamlops_transform_new("upper", err, sizeof(err)), "upper");
    add(maps, &nmaps, sl__yamlops_transform_new("trim", err, sizeof(err)), "trim");

    /* parse: the formats, a regex with typed captures, on the value, the key, a JSON field */
    static const sl_yamlops_capture_type types[] = {{"n", "int"}, {"f", "float"}, {"b", "bool"}};
    static const char *const formats[] = {"nginx_combined", "apache_common", "syslog_rfc5424"};
    for (size_t i = 0; i < 3; i++) {
        add(maps, &nmaps,
            sl__yamlops_parse_new(SL_YOP_ON_VALUE, NULL, NULL, formats[i], NULL, 0, err,
                                  sizeof(err)),
            formats[i]);
    }
    static const char re[] = "^(?<n>-?\\d+)?,(?<f>[^,]*),(?<b>\\w*),(?<s>(?s:.*))$";
    add(maps, &nmaps,
        sl__yamlops_parse_new(SL_YOP_ON_VALUE, NULL, re, NULL, types, 3, err, sizeof(err)),
        "parse regex");
    add(maps, &nmaps,
        sl__yamlops_parse_new(SL_YOP_ON_KEY, NULL, re, NULL, types, 3, err, sizeof(err)),
        "parse key");
    add(maps, &nmaps,
        sl__yamlops_parse_new(SL_YOP_ON_JSON, "msg", "(?i)(?<level>error|warn)|(?<x>(a|aa)+$)",
                              NULL, NULL, 0, err, sizeof(err)),
        "parse json");
    /* shaping: each op alone, and a parse with every shaping step fused after it */
    static const char *const exprs[] = {"price * qty", "-(a.b + 1) / (c - 2) * 1e300",
                                        "items.0.p / items.1.p - 0.5"};
    for (size_t i = 0; i < 3; i++) {
        add(maps, &nmaps, sl__yamlops_set_new("total", NULL, NULL, exprs[i], err, sizeof(err)),
            exprs[i]);
    }
    add(maps, &nmaps, sl__yamlops_set_new("a.b.c", "items.1", NULL, NULL, err, sizeof(err)),
        "set from");
    add(maps, &nmaps, sl__yamlops_set_new("a", "a", NULL, NULL, err, sizeof(err)), "set self");
    add(maps, &nmaps, sl__yamlops_set_new("items.0", NULL, "{\"k\":[1]}", NULL, err, sizeof(err)),
        "set value");
    add(maps, &nmaps, sl__yamlops_rename_new("a", "a.b", err, sizeof(err)), "rename a a.b");
    add(maps, &nmaps, sl__yamlops_rename_new("a.b", "a", err, sizeof(err)), "rename a.b a");
    static const char *const paths[] = {"a.b", "items.0", "msg", "x.y.z"};
    add(maps, &nmaps, sl__yamlops_drop_new(paths, 4, false, err, sizeof(err)), "drop");
    add(maps, &nmaps, sl__yamlops_drop_new(paths, 4, true, err, sizeof(err)), "keep");
    sl_yamlop *chain =
        sl__yamlops_parse_new(SL_YOP_ON_JSON, "msg", "(?<a>\\d+)", NULL, NULL, 0, err, sizeof(err));
    sl_yamlop *steps[] = {
        sl__yamlops_set_new("t", NULL, NULL, "a * 2", err, sizeof(err)),
        sl__yamlops_rename_new("t", "o.t", err, sizeof(err)),
        sl__yamlops_drop_new(paths, 4, true, err, sizeof(err)),
        sl__yamlops_set_new("o.u", "o", NULL, NULL, err, sizeof(err)),
    };
    for (size_t i = 0; i < 4; i++) {
        if (!chain || !steps[i] || sl__yamlops_shape_fuse(chain, steps[i]) != SL_OK) {
            add(maps, &nmaps, NULL, "fused chain");
        }
    }
    add(maps, &nmaps, chain, "fused chain");

    add_filter(SL_YOP_ON_JSON, "service", SL_YOP_EQUALS, "cart");
    add_filter(SL_YOP_ON_JSON, "service", SL_YOP_NOT_EQUALS, "login");
    add_filter(SL_YOP_ON_JSON, "status", SL_YOP_GE, "400");
    add_filter(SL_YOP_ON_JSON, "latency_ms", SL_YOP_LT, "0.5");
    add_filter(SL_YOP_ON_JSON, "id", SL_YOP_GT, "-9223372036854775808");
    add_filter(SL_YOP_ON_JSON, "service", SL_YOP_CONTAINS, "out");
    add_filter(SL_YOP_ON_JSON, "service", SL_YOP_MATCHES, "^(cart|login)$");
    add_filter(SL_YOP_ON_JSON, "items.2", SL_YOP_EQUALS, "true");
    add_filter(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, "[0-9]+x?");
    add_filter(SL_YOP_ON_VALUE, NULL, SL_YOP_LE, "1e300");
    add_filter(SL_YOP_ON_VALUE, NULL, SL_YOP_EQUALS, "1");
    add_filter(SL_YOP_ON_KEY, NULL, SL_YOP_CONTAINS, "k");
    add_filter(SL_YOP_ON_META, "offset", SL_YOP_GT, "3");
    add_filter(SL_YOP_ON_META, "topic", SL_YOP_MATCHES, "^t");
    add_filter(SL_YOP_ON_VALUE, NULL, SL_YOP_MATCHES, "(?i)^(x+x+)+y\\b\\d");
    add_filter(SL_YOP_ON_HEADER, "h", SL_YOP_GE, "2.5");
    return 0;
}

/* Allocations of one op's output, freed after it. */
typedef struct fz_arena {
    void *blocks[64];
    size_t n;
} fz_arena;

static void *fz_alloc(void *arg, size_t size)
{
    fz_arena *a = arg;
    if (a->n == 64) {
        return NULL;
    }
    a->blocks[a->n] = malloc(size ? size : 1);
    return a->blocks[a->n++];
}

static void fz_free(fz_arena *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->blocks[i]);
    }
    a->n = 0;
}

/* The record: the first byte picks its typed value and header, the bytes up to the first
 * newline are its key (when there is one), the rest its value. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20) {
        return 0;
    }
    uint8_t sel = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(s, '\n', n);
    sl_header hdr = {
        .name = "h", .value = (sel & 128) ? NULL : s, .value_len = (sel & 128) ? 0 : (uint32_t)n};
    sl_record_meta meta = {.source = "fuzz",
                           .topic = (sel & 4) ? "topic" : NULL,
                           .partition = (sel & 8) ? 3 : -1,
                           .offset = sel,
                           .headers = &hdr,
                           .nheaders = (sel & 16) ? 1 : 0};
    sl_record r = {
        .value = s, .value_len = (uint32_t)n, .ts = 1000, .meta = (sel & 2) ? &meta : NULL};
    if (nl && (sel & 1)) {
        r.key = s;
        r.key_len = (uint32_t)(nl - s);
        r.value = nl + 1;
        r.value_len = (uint32_t)(n - (size_t)(nl + 1 - s));
    }
    if (sel & 32) {
        sl_record_set_int(&r, (int64_t)sel - 100);
    } else if (sel & 64) {
        sl_record_set_double(&r, (double)sel / 3.0);
    }
    fz_arena a = {0};
    for (size_t i = 0; i < nmaps; i++) {
        sl_record out = r;
        sl__yamlops_apply(maps[i], &r, &out, fz_alloc, &a);
        fz_free(&a);
    }
    for (size_t i = 0; i < nfilters; i++) {
        sl__yamlops_filter(&r, filters[i]);
    }
    for (size_t i = 0; i < nsplits; i++) {
        size_t pos = 0, toklen;
        const char *tok;
        while (sl__yamlops_split_next(splits[i], r.value, r.value_len, &pos, &tok, &toklen)) {
            if (toklen == 0 || tok < r.value || tok + toklen > r.value + r.value_len) {
                abort(); /* a token is non-empty and inside the value */
            }
        }
    }
    return 0;
}

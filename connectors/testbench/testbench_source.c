/* testbench_source.c -- the testbench source: the records of a test, given as JSON in the
 * option `batches` (an array with one element per batch, each an array of records), yielded
 * one element per batch in order, then nothing. `sluice test` puts it in place of every
 * source of the pipeline under test; it has no I/O and no thread. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sl_registry.h"
#include "testbench.h"

/* ==== Records from JSON ==== */

/* The bytes of a JSON string member (NULL when absent or null). */
static const char *member_bytes(const json_t *o, const char *name, uint32_t *len)
{
    const json_t *v = json_object_get(o, name);
    *len = 0;
    if (!json_is_string(v)) {
        return NULL;
    }
    *len = (uint32_t)json_string_length(v);
    return json_string_value(v);
}

static int64_t member_int(const json_t *o, const char *name, int64_t def)
{
    const json_t *v = json_object_get(o, name);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

/* Fills t from the JSON record j of source ins. SL_OK or SL_ERR_INVAL with errstr. */
static int record_from_json(sl_instance *ins, const json_t *j, sl_testbench_rec *t, char *errstr,
                            size_t errsize)
{
    memset(t, 0, sizeof(*t));
    if (!json_is_object(j)) {
        snprintf(errstr, errsize, "a record is not a JSON object");
        return SL_ERR_INVAL;
    }
    t->rec.key = member_bytes(j, "key", &t->rec.key_len);
    t->rec.value = member_bytes(j, "value", &t->rec.value_len);
    t->rec.ts = member_int(j, "ts", 0);
    t->meta.source = sl_instance_name(ins);
    t->meta.topic = json_string_value(json_object_get(j, "topic"));
    t->meta.partition = (int32_t)member_int(j, "partition", 0);
    t->meta.offset = member_int(j, "offset", -1);
    const json_t *hs = json_object_get(j, "headers");
    size_t nh = json_is_array(hs) ? json_array_size(hs) : 0;
    if (nh) {
        t->headers = calloc(nh, sizeof(*t->headers));
        if (!t->headers) {
            snprintf(errstr, errsize, "out of memory");
            return SL_ERR_NOMEM;
        }
        for (size_t i = 0; i < nh; i++) {
            const json_t *h = json_array_get(hs, i);
            const json_t *v = json_array_get(h, 1);
            t->headers[i].name = json_string_value(json_array_get(h, 0));
            t->headers[i].value = json_string_value(v);
            t->headers[i].value_len = json_is_string(v) ? (uint32_t)json_string_length(v) : 0;
            if (!t->headers[i].name) {
                snprintf(errstr, errsize, "a header is not [name, value]");
                return SL_ERR_INVAL;
            }
        }
        t->meta.headers = t->headers;
        t->meta.nheaders = (uint32_t)nh;
    }
    t->rec.meta = &t->meta;
    return SL_OK;
}

/* ==== The source ==== */

static int tbsrc_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_testbench_src *ctx = data;
    ctx->ins = ins;
    json_error_t jerr;
    ctx->doc = json_loads(ctx->batches ? ctx->batches : "[]", 0, &jerr);
    if (!json_is_array(ctx->doc)) {
        snprintf(errstr, errsize, "batches: not a JSON array of batches: %s",
                 ctx->doc ? "another value" : jerr.text);
        return SL_ERR_INVAL;
    }
    for (size_t i = 0; i < json_array_size(ctx->doc); i++) {
        if (!json_is_array(json_array_get(ctx->doc, i))) {
            snprintf(errstr, errsize, "batches: element %zu is not an array of records", i);
            return SL_ERR_INVAL;
        }
    }
    return SL_OK;
}

/* The next element, one partition of the batch per record partition (in the order they
 * first appear), as Kafka gives one per topic partition. */
static int tbsrc_next_batch(void *data, int64_t batch_time, sl_batch_input *in)
{
    (void)batch_time;
    sl_testbench_src *ctx = data;
    const json_t *batch = json_array_get(ctx->doc, ctx->next);
    size_t n = json_array_size(batch);
    ctx->next++;
    sl_testbench_rec *all = calloc(n ? n : 1, sizeof(*all));
    sl_record *part = calloc(n ? n : 1, sizeof(*part));
    bool *done = calloc(n ? n : 1, sizeof(*done));
    char err[256] = "";
    int rc = all && part && done ? SL_OK : SL_ERR_NOMEM;
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        rc = record_from_json(ctx->ins, json_array_get(batch, i), &all[i], err, sizeof(err));
    }
    for (size_t i = 0; rc == SL_OK && i < n; i++) {
        if (done[i]) {
            continue;
        }
        size_t np = 0;
        for (size_t j = i; j < n; j++) {
            if (!done[j] && all[j].meta.partition == all[i].meta.partition) {
                part[np] = all[j].rec;
                part[np++].meta = &all[j].meta;
                done[j] = true;
            }
        }
        rc = sl_batch_input_add_records(in, part, np);
    }
    if (rc == SL_OK) {
        sl_batch_input_describe(in, "%zu test records", n);
    } else if (err[0]) {
        sl_instance_error(ctx->ins, "batch %zu: %s", ctx->next - 1, err);
    }
    for (size_t i = 0; all && i < n; i++) {
        free(all[i].headers);
    }
    free(all);
    free(part);
    free(done);
    return rc;
}

static void tbsrc_destroy(void *data)
{
    sl_testbench_src *ctx = data;
    json_decref(ctx->doc);
}

/* ==== Registration ==== */

static const sl_option tbsrc_options[] = {
    {.name = "batches",
     .type = SL_OPT_STR,
     .def = "[]",
     .offset = offsetof(sl_testbench_src, batches),
     .doc = "JSON: one array of records per batch, each {key, value, ts, topic, partition, "
            "offset, headers: [[name, value]]}; after the last, batches are empty"},
    {0},
};

const sl_connector sl__connector_testbench_source = {
    .name = "testbench",
    .description = "The records of a test file, one batch after another (what `sluice test` "
                   "puts in place of every source)",
    .flags = SL_SOURCE | SL_TEST_DOUBLE,
    .options = tbsrc_options,
    .ctx_size = sizeof(sl_testbench_src),
    .init = tbsrc_init,
    .next_batch = tbsrc_next_batch,
    .destroy = tbsrc_destroy,
};

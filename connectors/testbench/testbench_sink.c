/* testbench_sink.c -- the testbench sink: appends what each batch wrote to the file `path`,
 * one JSON line per batch, {"batch_time", "records": [{key, value, num_type, num, ts,
 * window_start, window_end, source, topic, partition, offset}]} (bytes that are not UTF-8 in
 * base64, as sl__json_bytes writes them). `sluice test` puts it in place of every sink of the
 * pipeline under test and compares the lines with what the test expects. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "sl_record_text.h"
#include "sl_registry.h"
#include "sl_util.h"
#include "testbench.h"

/* ==== One batch as a JSON line ==== */

static void put_record(sl_buf *b, const sl_batch_output *out, const sl_record *r)
{
    sl__buf_puts(b, "{");
    sl__json_bytes(sl__buf_put, b, "key", r->key, r->key_len);
    sl__buf_puts(b, ",");
    sl__json_bytes(sl__buf_put, b, "value", r->value, r->value_len);
    if (r->num_type == SL_NUM_INT) {
        sl__buf_printf(b, ",\"num_type\":\"int\",\"num\":%" PRId64, r->num.i);
    } else if (r->num_type == SL_NUM_DOUBLE) {
        char num[40];
        sl__record_format_double(r->num.d, num, sizeof(num));
        /* JSON has no NaN nor infinity: those go as text. */
        sl__buf_printf(b,
                       isfinite(r->num.d) ? ",\"num_type\":\"double\",\"num\":%s"
                                          : ",\"num_type\":\"double\",\"num\":\"%s\"",
                       num);
    }
    sl_record_when w = sl_batch_output_when(out, r);
    sl__buf_printf(b, ",\"ts\":%" PRId64 ",\"window_start\":%" PRId64 ",\"window_end\":%" PRId64,
                   r->ts, w.window_start, w.window_end);
    if (r->meta) {
        if (r->meta->source) {
            sl__buf_puts(b, ",");
            sl__json_bytes(sl__buf_put, b, "source", r->meta->source, strlen(r->meta->source));
        }
        if (r->meta->topic) {
            sl__buf_puts(b, ",");
            sl__json_bytes(sl__buf_put, b, "topic", r->meta->topic, strlen(r->meta->topic));
        }
        sl__buf_printf(b, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64, r->meta->partition,
                       r->meta->offset);
    }
    sl__buf_puts(b, "}");
}

/* Appends the batch as one line. SL_OK, or SL_ERR_IO with errstr. */
static int tbsink_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    sl_testbench_sink *ctx = data;
    sl_buf b = {0};
    sl__buf_printf(&b, "{\"batch_time\":%" PRId64 ",\"records\":[", out->batch_time);
    size_t k = 0;
    for (size_t p = 0; out->ds && p < sl_dataset_partitions(out->ds); p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            sl__buf_puts(&b, k++ ? "," : "");
            put_record(&b, out, &recs[i]);
        }
    }
    int rc = sl__buf_puts(&b, "]}\n");
    if (rc != SL_OK) {
        sl__buf_free(&b);
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    FILE *f = fopen(ctx->path, "ab");
    bool ok = f && fwrite(b.p, 1, b.len, f) == b.len;
    int e = errno;
    if (f && fclose(f) != 0) {
        ok = false;
        e = errno;
    }
    sl__buf_free(&b);
    if (!ok) {
        snprintf(errstr, errsize, "%s: %s", ctx->path, strerror(e));
        return SL_ERR_IO;
    }
    return SL_OK;
}

static int tbsink_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    (void)errstr;
    (void)errsize;
    sl_testbench_sink *ctx = data;
    ctx->ins = ins;
    return SL_OK;
}

/* ==== Registration ==== */

static const sl_option tbsink_options[] = {
    {.name = "path",
     .type = SL_OPT_STR,
     .flags = SL_OPT_REQUIRED,
     .offset = offsetof(sl_testbench_sink, path),
     .doc = "file each batch is appended to as one JSON line: batch_time and its records "
            "(key, value, num, ts, window bounds, source, topic, partition, offset)"},
    {0},
};

const sl_connector sl__connector_testbench_sink = {
    .name = "testbench",
    .description = "Appends each batch's records to a JSON-lines file (what `sluice test` puts "
                   "in place of every sink, to compare with the test's expectations)",
    .flags = SL_SINK | SL_TEST_DOUBLE,
    .options = tbsink_options,
    .ctx_size = sizeof(sl_testbench_sink),
    .init = tbsink_init,
    .write = tbsink_write,
};

/* stdout.c -- the stdout sink, DStream.print(): each batch, a header with the batch time and
 * its first num records (written by sl_record_text.c, which the file sink shares). */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "sl_record_text.h"
#include "stdout.h"
#include "sl_registry.h"

#define STDOUT_RULE "-------------------------------------------\n"

/* ==== The sink ==== */

static int stdout_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    (void)errstr;
    (void)errsize;
    sl_stdout_ctx *ctx = data;
    ctx->ins = ins; /* num is within the table's range */
    return SL_OK;
}

/* Prints the batch as Spark's print() does, flushed once. Runs on the sink's output thread;
 * stdout is locked for the batch so that two print sinks, which write concurrently, do not
 * interleave. */
static int stdout_write(void *data, const sl_batch_output *out, char *errstr, size_t errsize)
{
    sl_stdout_ctx *ctx = data;
    size_t total = out->ds ? sl_dataset_count(out->ds) : 0;
    size_t nparts = out->ds ? sl_dataset_partitions(out->ds) : 0;
    size_t left = (size_t)ctx->num;

    flockfile(stdout);
    fprintf(stdout, STDOUT_RULE "Time: %lld ms\n" STDOUT_RULE, (long long)out->batch_time);
    for (size_t p = 0; p < nparts && left > 0; p++) {
        size_t n = 0;
        const sl_record *recs = sl_dataset_partition(out->ds, p, &n);
        for (size_t i = 0; i < n && left > 0; i++, left--) {
            sl__record_write(stdout, &recs[i]);
        }
    }
    if (total > (size_t)ctx->num) {
        fputs("...\n", stdout);
    }
    fputc('\n', stdout);
    int failed = fflush(stdout) != 0 || ferror(stdout);
    int e = errno;
    if (failed) {
        clearerr(stdout);
    }
    funlockfile(stdout);

    if (failed) {
        sl_instance_error(ctx->ins, "writing batch %lld to stdout: %s", (long long)out->batch_time,
                          strerror(e));
        /* Nobody reads any more (a closed pipe): no retry can help, the pipeline stops. */
        return e == EPIPE ? SL_ERR_FATAL : SL_ERR_IO;
    }
    return SL_OK;
}

static void stdout_destroy(void *data)
{
    (void)data; /* nothing allocated */
}

/* ==== Registration ==== */

static const sl_option stdout_options[] = {
    {.name = "num",
     .type = SL_OPT_INT,
     .def = "10",
     .min = 1,
     .max = 1e9,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_stdout_ctx, num),
     .doc = "records printed per batch; \"...\" follows when there are more"},
    {0},
};

const sl_connector sl__connector_stdout = {
    .name = "stdout",
    .description = "Prints each batch's first records on stdout (DStream.print())",
    .flags = SL_SINK | SL_CONSOLE,
    .options = stdout_options,
    .ctx_size = sizeof(sl_stdout_ctx),
    .init = stdout_init,
    .write = stdout_write,
    .destroy = stdout_destroy,
};

/* Spark's DStream.print(): a stdout sink showing the first n records of each batch. */
int sl_stream_print(sl_stream *s, int n)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", n);
    return sl__simple_sink(s, &sl__connector_stdout, "print", "num", num, NULL, NULL);
}

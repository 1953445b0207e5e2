/* fuzz_lines.c -- fuzzes the line splitter (sl__lines_feed/finish): fuzzed bytes fed in
 * fuzzed chunks to a receiver with a small max_record_size, the lines checked as a batch. */
#include "fuzz_util.h"
#include "sl_engine.h"
#include "sl_lines.h"

#define MAX_RECORD 64

static sl_context *ctx;
static sl_instance *rcv;
static sl_lines_batch *batch;
static int64_t next_t = 1000000;

static int grab(sl_instance *ins, void *c, char *errstr, size_t errsize)
{
    rcv = ins;
    return SL_OK;
}

static const sl_option no_options[] = {{0}};
static const sl_connector lines_source = {
    .name = "lines",
    .flags = SL_SOURCE | SL_RECEIVER,
    .options = no_options,
    .init = grab,
};

/* Every line is shorter than max_record_size and holds no newline. */
static int check(const sl_dataset *ds, int64_t batch_time, void *opaque)
{
    for (size_t p = 0; p < sl_dataset_partitions(ds); p++) {
        size_t n;
        const sl_record *recs = sl_dataset_partition(ds, p, &n);
        for (size_t i = 0; i < n; i++) {
            if (recs[i].value_len > MAX_RECORD ||
                (recs[i].value_len && memchr(recs[i].value, '\n', recs[i].value_len))) {
                abort();
            }
        }
    }
    return SL_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sl_set_log_level((sl_log_level)-1);
    char err[256];
    sl_context_conf conf = {.name = "fuzz", .batch_interval_ms = 1000, .workers = 1};
    ctx = sl_context_new(&conf, err, sizeof(err));
    sl_options *o = sl_options_new();
    sl_options_set(o, "max_record_size", "64");
    sl_stream *in =
        ctx ? sl_context_add_source_connector(ctx, &lines_source, "in", o, err, sizeof(err)) : NULL;
    sl_options_destroy(o);
    if (!in || sl_stream_foreach_batch(in, check, NULL) != SL_OK ||
        !(batch = sl__lines_batch_new(rcv))) {
        fprintf(stderr, "fuzz_lines: %s\n", err);
        abort();
    }
    return 0;
}

/* The first byte sets the chunk sizes (1 to 16 bytes, growing), the rest is the stream. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) {
        return 0;
    }
    size_t step = 1 + data[0] % 16, grow = data[0] >> 4;
    sl_lines l;
    sl__lines_init(&l, rcv, "peer");
    for (size_t off = 1; off < size;) {
        size_t n = step < size - off ? step : size - off;
        if (sl__lines_feed(&l, batch, (const char *)data + off, n, 1) != SL_OK) {
            abort();
        }
        off += n;
        step += grow;
    }
    if (sl__lines_finish(&l, batch, 1) != SL_OK) {
        abort();
    }
    sl__lines_free(&l);
    next_t += 1000;
    sl__context_step(ctx, next_t, NULL);
    return 0;
}

/* fuzz_changelog.c -- fuzzes the restore of keyed state from a changelog (sl_changelog.c):
 * the records a changelog sink reads back (keys, encoded states, tombstones) come from the
 * fuzzed bytes and are restored into a running sum (update_state_by_key) and a window kept
 * as keyed state, which then compute a batch over them. */
#include "fuzz_util.h"
#include "sl_engine.h"

static sl_context *ctx;
static const uint8_t *in_data;
static size_t in_size;
static int64_t next_t = 1000000;

/* One record of partition 0 per batch, after asking where the sinks are (the restore). */
static int one_batch(void *c, int64_t t, sl_batch_input *in)
{
    sl_instance *self = *(sl_instance **)c;
    sl_source_position pos = {.topic = "t", .partition = 0};
    size_t sinks;
    char err[256];
    sl_instance_sink_positions(self, &pos, 1, &sinks, err, sizeof(err));
    sl_record_meta meta = {.source = "in", .topic = "t", .partition = 0};
    sl_record r = {.key = "k", .key_len = 1, .value = "1", .value_len = 1, .meta = &meta};
    sl_record_set_int(&r, 1);
    int rc = sl_batch_input_add_records(in, &r, 1);
    return rc == SL_OK ? sl_batch_input_add_range(in, "t", 0, 0, 1) : rc;
}

static int keep_self(sl_instance *ins, void *c, char *errstr, size_t errsize)
{
    *(sl_instance **)c = ins;
    return SL_OK;
}

static const sl_option no_options[] = {{0}};
static const sl_connector one_source = {
    .name = "one",
    .flags = SL_SOURCE,
    .options = no_options,
    .ctx_size = sizeof(sl_instance *),
    .init = keep_self,
    .next_batch = one_batch,
};

static int ok_write(void *c, const sl_batch_output *out, char *errstr, size_t errsize)
{
    return SL_OK;
}

/* The fuzzed bytes as records: [key length (1 byte)][key][value length (2 bytes, LE; 65535:
 * a tombstone)][value], until they run out; the position is the last byte. */
static int fuzzed_restore(void *c, const char *pipeline, sl_position *pos, sl_restore_fn fn,
                          void *arg, char *errstr, size_t errsize)
{
    size_t off = 0;
    pos->next = in_size ? in_data[in_size - 1] : -1;
    while (off < in_size) {
        size_t klen = in_data[off++];
        if (off + klen + 2 > in_size) {
            break;
        }
        sl_record r = {.key = (const char *)in_data + off, .key_len = (uint32_t)klen};
        off += klen;
        size_t vlen = in_data[off] | (size_t)in_data[off + 1] << 8;
        off += 2;
        if (vlen != 65535) {
            if (off + vlen > in_size) {
                break;
            }
            r.value = (const char *)in_data + off;
            r.value_len = (uint32_t)vlen;
            off += vlen;
        }
        if (fn(arg, &r) != SL_OK) {
            break;
        }
    }
    return SL_OK;
}

static const sl_connector fuzz_changelog = {
    .name = "fuzzchg",
    .flags = SL_SINK,
    .options = no_options,
    .write = ok_write,
    .restore_state = fuzzed_restore,
};

static int sum(const char *key, uint32_t key_len, const sl_record *values, size_t n,
               sl_state *state, sl_emitter *e, void *opaque)
{
    int64_t total = state->exists && state->num_type == SL_NUM_INT ? state->num.i : 0;
    state->exists = true;
    state->num_type = SL_NUM_INT;
    state->num.i = total + (int64_t)n;
    return SL_OK;
}

static int drop(const sl_dataset *ds, int64_t batch_time, void *opaque)
{
    return SL_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_init("changelog");
    char err[256] = "";
    sl_context_conf conf = {
        .name = "fuzz", .batch_interval_ms = 1000, .workers = 1, .checkpoint_dir = fz_dir};
    ctx = sl_context_new(&conf, err, sizeof(err));
    sl_stream *in =
        ctx ? sl_context_add_source_connector(ctx, &one_source, "in", NULL, err, sizeof(err))
            : NULL;
    sl_stream *run = in ? sl_stream_update_state_by_key(in, sum, NULL, 2) : NULL;
    sl_stream *win =
        in ? sl_stream_reduce_by_key_and_window_state(in, sl_reduce_sum, NULL, 3000, 1000, 2)
           : NULL;
    sl_options *o = sl_options_new();
    sl_options_set(o, "changelog", "true");
    if (!run || !win || sl_stream_foreach_batch(run, drop, NULL) != SL_OK ||
        sl_stream_foreach_batch(win, drop, NULL) != SL_OK ||
        sl_stream_to_connector(run, &fuzz_changelog, "c1", o, err, sizeof(err)) != SL_OK ||
        sl_stream_to_connector(win, &fuzz_changelog, "c2", o, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "fuzz_changelog: cannot build the pipeline: %s\n", err);
        abort();
    }
    sl_options_destroy(o);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) {
        return 0;
    }
    in_data = data;
    in_size = size;
    sl_batch_info info;
    sl__context_step(ctx, next_t, &info);
    next_t += 1000;
    return 0;
}

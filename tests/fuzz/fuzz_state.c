/* fuzz_state.c -- fuzzes the state snapshot reader (sl__state_restore): a fuzzed table or
 * window dataset, framed as a state file that the checkpoint names, restored into a
 * pipeline with update_state_by_key, map_with_state and a window with an inverse. */
#include "fuzz_util.h"
#include "sl_checkpoint.h"
#include "sl_engine.h"
#include "sl_framed.h"

#define T0 1000000

static sl_context *ctx;
static sl_stream *stateful[8];
static size_t nstateful;

static int empty_batch(void *c, int64_t t, sl_batch_input *in)
{
    return SL_OK;
}

static const sl_option no_options[] = {{0}};
static const sl_connector empty_source = {
    .name = "empty",
    .flags = SL_SOURCE,
    .options = no_options,
    .next_batch = empty_batch,
};

static int keep_sum(const char *key, uint32_t key_len, const sl_record *values, size_t n,
                    sl_state *state, sl_emitter *e, void *opaque)
{
    return SL_OK;
}

static int count(const sl_record *in, sl_state *state, sl_emitter *e, void *opaque)
{
    return SL_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_init("state");
    char err[256];
    sl_context_conf conf = {
        .name = "fuzz", .batch_interval_ms = 1000, .workers = 1, .checkpoint_dir = fz_dir};
    ctx = sl_context_new(&conf, err, sizeof(err));
    sl_stream *in =
        ctx ? sl_context_add_source_connector(ctx, &empty_source, "in", NULL, err, sizeof(err))
            : NULL;
    if (!in || !sl_stream_update_state_by_key(in, keep_sum, NULL, 2) ||
        !sl_stream_map_with_state(in, count, NULL, 3000, 3) ||
        !sl_stream_reduce_by_key_and_window(in, sl_reduce_sum, sl_reduce_sum_inverse,
                                            sl_filter_nonzero, NULL, 4000, 2000, 2) ||
        sl__checkpoint_open(ctx) != SL_OK) {
        fprintf(stderr, "fuzz_state: cannot build the pipeline: %s\n", err);
        abort();
    }
    for (sl_stream *s = ctx->streams; s; s = s->next) {
        if (sl__stream_is_stateful(s) && nstateful < 8) {
            stateful[nstateful++] = s;
        }
    }
    if (nstateful == 0) {
        abort();
    }
    return 0;
}

/* The first byte picks the stream, the second the kind (1 table, 2 dataset, else as is);
 * the rest is the state file's content after its (stream, kind, time) header. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 20) {
        return 0;
    }
    sl_stream *s = stateful[data[0] % nstateful];
    int64_t t = T0 + 2000;
    uint32_t id = (uint32_t)s->id, kind = data[1] < 128 ? 1 + data[1] % 2 : data[1];
    uint64_t ut = (uint64_t)t;
    size_t len = 16 + size - 2;
    char *body = malloc(len);
    memcpy(body, &id, 4);
    memcpy(body + 4, &kind, 4);
    memcpy(body + 8, &ut, 8);
    memcpy(body + 16, data + 2, size - 2);
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/state", fz_dir);
    mkdir(dir, 0700);
    if (sl__framed_write(dir, "fuzz.tab", "SLUICE-STATE", 1, body, len, false, NULL) != SL_OK) {
        abort();
    }
    free(body);
    sl_ckpt_state_file f = {.node = s->id, .time = t, .file = "fuzz.tab"};
    sl_checkpoint *ck = ctx->ckpt;
    ck->state_files = &f;
    ck->nstate_files = 1;
    ck->state_time = 0;
    char err[1024];
    sl__state_restore(ctx, err, sizeof(err));
    ck->state_files = NULL;
    ck->nstate_files = 0;
    return 0;
}

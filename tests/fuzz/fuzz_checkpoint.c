/* fuzz_checkpoint.c -- fuzzes the checkpoint reader (sl__ckpt_load): fuzzed JSON as the body
 * of a well-framed metadata file (or the whole file), loaded, then written back. */
#include "fuzz_util.h"
#include "sl_checkpoint.h"
#include "sl_framed.h"

/* The graph and sources the seed checkpoints were written for. */
#define GRAPH "source in (generate)\nstream counts: reduce_by_key(in)\n"

static char meta_dir[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_init("ckpt");
    snprintf(meta_dir, sizeof(meta_dir), "%s/metadata", fz_dir);
    return 0;
}

/* The first byte: bit 0 writes the rest as the whole file (header included); otherwise as
 * the body of a framed file with a good header and CRC. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    static const char *const names[] = {"in", "other"};
    char err[1536];
    sl_checkpoint *ck = sl__ckpt_new(fz_dir, GRAPH, 1000, 2, names, err, sizeof(err));
    if (!ck) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    const char *name = "checkpoint-0000000007.json";
    if (data[0] & 1) {
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", meta_dir, name);
        fz_write(path, data + 1, size - 1);
    } else if (sl__framed_write(meta_dir, name, "SLUICE-CHECKPOINT", 1, data + 1, size - 1, false,
                                NULL) != SL_OK) {
        abort();
    }
    bool found = false;
    if (sl__ckpt_load(ck, &found, err, sizeof(err)) == SL_OK && found) {
        sl__ckpt_completed(ck, ck->last_completed + 1000);
    }
    sl__ckpt_destroy(ck);
    fz_rm_tree(meta_dir);
    return 0;
}

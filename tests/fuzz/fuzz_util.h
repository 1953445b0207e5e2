/* fuzz_util.h -- helpers of the fuzz targets: a temporary directory per process, files
 * written whole, and the prototypes libFuzzer calls. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sluice.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The process's temporary directory (/dev/shm or /tmp), removed at exit. */
static char fz_dir[64];

static inline int fz_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Removes path and everything under it (a path under fz_dir only). */
static inline void fz_rm_tree(const char *path)
{
    if (fz_dir[0] && strncmp(path, fz_dir, strlen(fz_dir)) == 0) {
        nftw(path, fz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

static inline void fz_rmdir(void)
{
    fz_rm_tree(fz_dir);
}

/* Makes fz_dir (aborts when it cannot) and silences the engine's log. */
static inline void fz_init(const char *what)
{
    sl_set_log_level((sl_log_level)-1);
    /* tmpfs when there is one: files rewritten at every input cost no disk writes. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz_dir, sizeof(fz_dir), "%s/sluice-fuzz-%s-%d-XXXXXX", base, what, (int)getpid());
    if (!mkdtemp(fz_dir)) {
        perror("mkdtemp");
        abort();
    }
    atexit(fz_rmdir);
}

/* Writes len bytes to path, replacing it; aborts on failure (the fuzzer's own fault). */
static inline void fz_write(const char *path, const void *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(p, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

#endif

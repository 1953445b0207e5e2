/* fuzz_framed.c -- fuzzes the framed-file reader (sl__framed_read) that checkpoints and state
 * files go through: header, length and CRC checks on a file of fuzzed bytes. */
#include "fuzz_util.h"
#include "sl_framed.h"

static char path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_init("framed");
    snprintf(path, sizeof(path), "%s/file", fz_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_write(path, data, size);
    char why[256];
    size_t len = 0;
    char *body =
        sl__framed_read(path, "SLUICE-STATE", 1, (size_t)1 << 20, "state", &len, why, sizeof(why));
    if (body && (len > size || body[len] != '\0')) {
        abort(); /* the body is inside the file and NUL-terminated */
    }
    free(body);
    return 0;
}

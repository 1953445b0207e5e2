/* fuzz_config.c -- fuzzes the config loader (sl__config_load_string): YAML text in, an error
 * or a config out, never a crash, a leak or a hang. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sl_config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sl_set_log_level((sl_log_level)-1); /* errors are expected: no log lines */
    devnull = fopen("/dev/null", "w");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_config *cfg = NULL;
    char err[512];
    if (sl__config_load_string((const char *)data, size, "fuzz.yaml", &cfg, err, sizeof(err)) ==
        SL_OK) {
        sl__config_print_graph(cfg, devnull);
        sl__config_destroy(cfg);
    }
    return 0;
}

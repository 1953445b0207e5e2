/* sl_cmd_check.c -- `sluice check FILE [--connect]`: every error of a pipeline file, or the
 * pipeline it describes; with --connect, each source's and sink's endpoints tried. */
#include <stdio.h>
#include <stdlib.h>

#include "sl_cmd.h"
#include "sl_config.h"
#include "sl_engine.h"

/* One line per endpoint a connector's probe tried; counts the failures. */
static void report(void *opaque, const char *endpoint, bool ok, const char *detail)
{
    int *failed = opaque;
    printf("  %-40s %s%s%s\n", endpoint, ok ? "ok" : "failed", detail && *detail ? ": " : "",
           detail ? detail : "");
    *failed += ok ? 0 : 1;
}

/* Tries the endpoints of every instance whose connector can probe. Returns how many
 * failed. */
static int probe_all(sl_context *ctx)
{
    int failed = 0;
    for (int role = 0; role < 2; role++) {
        for (sl_instance *ins = role ? ctx->sinks : ctx->sources; ins; ins = ins->next) {
            printf("%s '%s' (%s):\n", role ? "sink" : "source", ins->name, ins->conn->name);
            if (!ins->conn->probe) {
                printf("  (nothing to connect to)\n");
                continue;
            }
            int before = failed;
            int rc = ins->conn->probe(ins->cctx, report, &failed);
            if (rc != SL_OK && failed == before) {
                report(&failed, "-", false, sl_err2str(rc));
            }
        }
    }
    return failed;
}

int sl__cmd_check(const char *path, bool connect, int cli_level)
{
    char err[1024];
    sl_config *cfg;
    sl_buf errors = {0};
    if (sl__config_check_file(path, &cfg, &errors) != SL_OK) {
        fputs(errors.p ? errors.p : "", stderr);
        sl__buf_free(&errors);
        return 2;
    }
    sl__buf_free(&errors);
    sl_log_level level;
    if (cli_level < 0 && sl__config_log_level(cfg, &level)) {
        sl_set_log_level(level); /* what building logs follows the file, as `run` does */
    }
    /* Building runs the connectors' own checks (init); nothing starts. */
    sl_context *ctx = sl__config_build(cfg, err, sizeof(err));
    if (!ctx) {
        fprintf(stderr, "%s\n", err);
        sl__config_destroy(cfg);
        return 2;
    }
    int status = 0;
    if (connect) {
        int failed = probe_all(ctx);
        if (failed) {
            printf("%s: %d endpoint%s failed\n", path, failed, failed == 1 ? "" : "s");
            status = 1;
        } else {
            printf("%s: every endpoint answered\n", path);
        }
    } else {
        printf("%s: ok\n", path);
        sl__config_print_graph(cfg, stdout);
    }
    sl_context_destroy(ctx);
    sl__config_destroy(cfg);
    return status;
}

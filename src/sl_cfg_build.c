/* sl_cfg_build.c -- a loaded pipeline built into a context through the public API, and
 * printed as sluice check shows it. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cfg.h"
#include "sl_connector.h"
#include "sl_http.h"

/* ==== Building ==== */

/* A build error at loc, in the load error format. Secrets of ep are scrubbed. */
static sl_context *cfg_build_fail(const sl_config *cfg, sl_context *ctx, cfg_loc loc,
                                  const cfg_endpoint *ep, char *errstr, size_t errsize,
                                  const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static sl_context *cfg_build_fail(const sl_config *cfg, sl_context *ctx, cfg_loc loc,
                                  const cfg_endpoint *ep, char *errstr, size_t errsize,
                                  const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (ep) {
        sl__scrub_options(msg, sizeof(msg), sl__cfg_common_options(ep->role),
                          sl_connector_options(ep->conn), ep->opts);
    }
    for (char *c = msg; *c; c++) {
        if (*c == '\n' || *c == '\r') {
            *c = ' ';
        }
    }
    snprintf(errstr, errsize, "%s:%d:%d: error: %s", cfg->path, loc.line, loc.col, msg);
    sl_context_destroy(ctx);
    return NULL;
}

/* Where an engine message about an endpoint points in the file: at the value of an option
 * it names ('key' or "key: "), else at the item. */
static cfg_loc cfg_endpoint_msg_loc(const cfg_endpoint *ep, const char *msg)
{
    for (size_t i = 0; i < ep->nopt_locs; i++) {
        const char *k = ep->opt_keys[i];
        size_t n = strlen(k);
        for (const char *at = strstr(msg, k); at; at = strstr(at + 1, k)) {
            bool quoted = at > msg && at[-1] == '\'' && at[n] == '\'';
            bool labeled = (at == msg || at[-1] == ' ') && at[n] == ':' && at[n + 1] == ' ';
            if (quoted || labeled) {
                return ep->opt_locs[i];
            }
        }
    }
    return ep->loc;
}

/* Builds "TYPE ROLE 'NAME': MSG", unless MSG already names the instance. */
static void cfg_endpoint_msg(const cfg_endpoint *ep, const char *msg, char *out, size_t size)
{
    char quoted[256];
    snprintf(quoted, sizeof(quoted), "'%s'", ep->name);
    if (msg[0] && strstr(msg, quoted)) {
        snprintf(out, size, "%s", msg);
    } else {
        snprintf(out, size, "%s %s '%s': %s", ep->type, ep->role == SL_SOURCE ? "source" : "sink",
                 ep->name, msg[0] ? msg : "cannot be created");
    }
}

sl_context *sl__config_build(const sl_config *cfg, char *errstr, size_t errsize)
{
    return sl__config_build_swapped(cfg, NULL, errstr, errsize);
}

sl_context *sl__config_build_swapped(const sl_config *cfg, const sl_config_swap *swap, char *errstr,
                                     size_t errsize)
{
    char msg[512];
    sl_context_conf conf = {
        .name = cfg->name,
        .batch_interval_ms = cfg->batch_ms,
        .workers = (int)cfg->workers,
        .checkpoint_dir = swap && cfg->checkpoint_dir ? swap->checkpoint_dir : cfg->checkpoint_dir,
        .block_interval_ms = cfg->block_ms,
        .default_partitions = (int)cfg->partitions,
        .stop_timeout_ms = cfg->stop_timeout_ms,
        .window_offset_ms = cfg->window_offset_ms,
    };
    msg[0] = '\0';
    sl_context *ctx = sl_context_new(&conf, msg, sizeof(msg));
    if (!ctx) {
        return cfg_build_fail(cfg, NULL, cfg->app_loc, NULL, errstr, errsize,
                              "cannot create the context: %s", msg[0] ? msg : "failed");
    }
    if (sl_context_set_backpressure(ctx, &cfg->backpressure, msg, sizeof(msg)) != SL_OK) {
        return cfg_build_fail(cfg, ctx, cfg->app_loc, NULL, errstr, errsize, "%s", msg);
    }
    size_t total = cfg->nsources + cfg->nstreams;
    sl_stream **handles = calloc(total ? total : 1, sizeof(sl_stream *));
    if (!handles) {
        return cfg_build_fail(cfg, ctx, cfg->app_loc, NULL, errstr, errsize, "out of memory");
    }
    for (size_t i = 0; i < cfg->nsources; i++) {
        const cfg_endpoint *ep = &cfg->sources[i];
        msg[0] = '\0';
        if (swap && swap->source_conn) {
            handles[i] = sl_context_add_source_connector(ctx, swap->source_conn, ep->name,
                                                         swap->source_opts[i], msg, sizeof(msg));
        } else if (swap) {
            handles[i] = sl_context_add_source(ctx, swap->source_type, ep->name,
                                               swap->source_opts[i], msg, sizeof(msg));
        } else {
            handles[i] = sl_context_add_source(ctx, ep->type, ep->name, ep->opts, msg, sizeof(msg));
        }
        if (!handles[i]) {
            char full[768];
            cfg_endpoint_msg(ep, msg, full, sizeof(full));
            free(handles);
            return cfg_build_fail(cfg, ctx, cfg_endpoint_msg_loc(ep, msg), ep, errstr, errsize,
                                  "%s", full);
        }
    }
    for (size_t i = 0; i < cfg->nstreams; i++) {
        const cfg_stream *st = &cfg->streams[cfg->order[i]];
        sl_stream *s = handles[st->from[0].idx];
        for (size_t j = 1; s && j < st->nfrom; j++) {
            s = sl_stream_union(s, handles[st->from[j].idx]);
        }
        if (!s) {
            free(handles);
            return cfg_build_fail(cfg, ctx, st->from_loc, NULL, errstr, errsize,
                                  "stream '%s': the engine refused the union of its inputs "
                                  "(see the log above)",
                                  st->name);
        }
        for (size_t j = 0; j < st->nops; j++) {
            const cfg_op *op = &st->ops[j];
            s = op->lua && !(op->def->flags & CFG_OP_WINDOWED) ? sl__cfg_lua_apply(op, s)
                                                               : op->def->apply(op, s, handles);
            if (!s) {
                free(handles);
                return cfg_build_fail(cfg, ctx, op->loc, NULL, errstr, errsize,
                                      "stream '%s': the engine refused op '%s' (see the log "
                                      "above)",
                                      st->name, op->desc);
            }
            if (j + 1 < st->nops) {
                char nm[256];
                snprintf(nm, sizeof(nm), "%s/%zu.%s", st->name, j + 1, op->def->name);
                sl_stream_set_name(s, nm);
            }
        }
        if (st->nops > 0 || st->nfrom > 1) {
            sl_stream_set_name(s, st->name);
        }
        handles[cfg->nsources + cfg->order[i]] = s;
    }
    for (size_t i = 0; i < cfg->nsinks; i++) {
        const cfg_endpoint *ep = &cfg->sinks[i];
        msg[0] = '\0';
        if (swap && !swap->sink_opts[i]) {
            continue; /* left out */
        }
        int rc;
        if (swap && swap->sink_conn) {
            rc = sl_stream_to_connector(handles[ep->from.idx], swap->sink_conn, ep->name,
                                        swap->sink_opts[i], msg, sizeof(msg));
        } else if (swap) {
            rc = sl_stream_to(handles[ep->from.idx], swap->sink_type, ep->name, swap->sink_opts[i],
                              msg, sizeof(msg));
        } else {
            rc =
                sl_stream_to(handles[ep->from.idx], ep->type, ep->name, ep->opts, msg, sizeof(msg));
        }
        if (rc != SL_OK) {
            char full[768];
            if (!msg[0]) {
                snprintf(msg, sizeof(msg), "%s", sl_err2str(rc));
            }
            cfg_endpoint_msg(ep, msg, full, sizeof(full));
            free(handles);
            return cfg_build_fail(cfg, ctx, cfg_endpoint_msg_loc(ep, msg), ep, errstr, errsize,
                                  "%s", full);
        }
    }
    free(handles);
    return ctx;
}

/* ==== Printing ==== */

static void cfg_print_options(const cfg_endpoint *ep, FILE *f)
{
    const sl_option *common = sl__cfg_common_options(ep->role);
    const sl_option *copts = sl_connector_options(ep->conn);
    for (size_t i = 0; i < sl_options_count(ep->opts); i++) {
        const char *k, *v;
        sl_options_at(ep->opts, i, &k, &v);
        if (strcmp(k, "name") == 0 || strcmp(k, "type") == 0 || strcmp(k, "from") == 0) {
            continue;
        }
        const sl_option *o = sl__cfg_find_option(common, copts, k);
        bool secret = o && (o->flags & SL_OPT_SECRET);
        fprintf(f, "      %s: %s\n", k, secret ? "***" : v);
    }
}

void sl__config_print_graph(const sl_config *cfg, FILE *f)
{
    char d[32], b[32];
    sl__cfg_fmt_duration(cfg->batch_ms, d, sizeof(d));
    fprintf(f, "app: %s\n", cfg->name);
    fprintf(f, "  batch_interval: %s\n", d);
    if (cfg->workers) {
        fprintf(f, "  workers: %" PRId64 "\n", cfg->workers);
    } else {
        fprintf(f, "  workers: auto (number of cores)\n");
    }
    if (cfg->partitions) {
        fprintf(f, "  partitions: %" PRId64 "\n", cfg->partitions);
    }
    if (cfg->block_ms) {
        sl__cfg_fmt_duration(cfg->block_ms, b, sizeof(b));
        fprintf(f, "  block_interval: %s\n", b);
    }
    if (cfg->checkpoint_dir) {
        fprintf(f, "  checkpoint_dir: %s\n", cfg->checkpoint_dir);
    }
    if (cfg->log_level >= 0) {
        char lvl[32];
        fprintf(f, "  log_level: %s\n", sl__cfg_log_level_name(cfg->log_level, lvl, sizeof(lvl)));
    }
    if (cfg->log_format >= 0) {
        fprintf(f, "  log_format: %s\n", cfg->log_format == 1 ? "json" : "text");
    }
    fprintf(f, "sources:\n");
    for (size_t i = 0; i < cfg->nsources; i++) {
        fprintf(f, "  %s (%s)\n", cfg->sources[i].name, cfg->sources[i].type);
        cfg_print_options(&cfg->sources[i], f);
    }
    fprintf(f, "streams:%s\n", cfg->nstreams ? "" : " (none)");
    for (size_t i = 0; i < cfg->nstreams; i++) {
        const cfg_stream *st = &cfg->streams[cfg->order[i]];
        sl__cfg_fmt_duration(st->slide_ms, d, sizeof(d));
        fprintf(f, "  %s <- ", st->name);
        for (size_t j = 0; j < st->nfrom; j++) {
            fprintf(f, "%s%s", j ? " + " : "", st->from[j].name);
        }
        fprintf(f, " (%severy %s)\n", st->nfrom > 1 ? "union, " : "", d);
        for (size_t j = 0; j < st->nops; j++) {
            fprintf(f, "    %zu. %s\n", j + 1, st->ops[j].desc);
        }
    }
    fprintf(f, "sinks:\n");
    for (size_t i = 0; i < cfg->nsinks; i++) {
        fprintf(f, "  %s (%s) <- %s\n", cfg->sinks[i].name, cfg->sinks[i].type,
                cfg->sinks[i].from.name);
        cfg_print_options(&cfg->sinks[i], f);
    }
    if (cfg->has_http) {
        fprintf(f, "http:%s\n", cfg->http_enabled ? "" : " (disabled)");
        fprintf(f, "  listen: %s\n", cfg->http_listen ? cfg->http_listen : SL_HTTP_DEFAULT_LISTEN);
        fprintf(f, "  token: %s\n", cfg->http_token ? "***" : "(none)");
        if (cfg->http_allow_remote) {
            fprintf(f, "  allow_remote: true\n");
        }
    }
}

/* sl_cfg_lua.c -- the Lua forms of the YAML ops ({lua: CODE} or {lua_file: PATH}) and the ops
 * that exist only in Lua (flat_map, update_state). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cfg.h"
#include "sl_engine.h"
#include "sl_lua.h"

#define CFG_LUA_MAX_FILE (1u << 20)

bool sl__cfg_lua_form(cfg_parser *p, const yaml_node_t *arg)
{
    return arg && arg->type == YAML_MAPPING_NODE &&
           (sl__cfg_get(p, (yaml_node_t *)arg, "lua") ||
            sl__cfg_get(p, (yaml_node_t *)arg, "lua_file"));
}

/* Reads path (relative to the YAML file's directory) into a malloc'ed string; *full gets the
 * path as opened (malloc'ed). NULL with errno set on failure. */
static char *cfg_lua_read(const cfg_parser *p, const char *path, char **full)
{
    const char *slash = path[0] != '/' && p->path ? strrchr(p->path, '/') : NULL;
    *full =
        slash ? sl__cfg_strdupf("%.*s/%s", (int)(slash - p->path), p->path, path) : strdup(path);
    if (!*full) {
        return NULL;
    }
    FILE *f = fopen(*full, "rb");
    if (!f) {
        return NULL;
    }
    char *text = malloc(CFG_LUA_MAX_FILE + 1);
    size_t n = text ? fread(text, 1, CFG_LUA_MAX_FILE + 1, f) : 0;
    int err = ferror(f) ? EIO : n > CFG_LUA_MAX_FILE ? EFBIG : 0;
    fclose(f);
    if (!text || err) {
        free(text);
        errno = text ? err : ENOMEM;
        return NULL;
    }
    text[n] = '\0';
    return text;
}

/* allow: [io, os, require, debug, bytecode] */
static int cfg_lua_allow(cfg_parser *p, yaml_node_t *n, unsigned *allow)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "lua allow: must be a list of %s, got %s",
                             "io, os, require, debug, bytecode", sl__cfg_kind(n));
    }
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        int which;
        int rc = sl__cfg_choice(p, sl__cfg_node(p, *it), "lua allow", sl__lua_allow_names, &which);
        if (rc != SL_OK) {
            return rc;
        }
        *allow |= 1u << which;
    }
    return SL_OK;
}

int sl__cfg_lua_parse(cfg_parser *p, yaml_node_t *arg, cfg_op *op, int kind,
                      const char *const *extra)
{
    const char *opname = op->def->name;
    const char *keys[16] = {"lua", "lua_file", "function", "allow", "instructions", "memory_mb"};
    size_t nk = 6;
    for (; extra && *extra && nk < 15; extra++) {
        keys[nk++] = *extra;
    }
    int rc = sl__cfg_op_args(p, arg, opname, keys);
    if (rc != SL_OK) {
        return rc;
    }
    yaml_node_t *inl = sl__cfg_get(p, arg, "lua"), *file = sl__cfg_get(p, arg, "lua_file"), *n;
    if (inl && file) {
        return sl__cfg_error(p, sl__cfg_loc_of(file),
                             "op '%s' takes lua: CODE or lua_file: PATH, not both", opname);
    }
    sl_lua_conf conf = {.max_instructions = SL_LUA_DEFAULT_INSTRUCTIONS,
                        .max_memory = SL_LUA_DEFAULT_MEMORY};
    if ((n = sl__cfg_get(p, arg, "function")) && !sl__cfg_is_null(p, n) &&
        (rc = sl__cfg_scalar(p, n, "lua function", &conf.function)) != SL_OK) {
        return rc;
    }
    if ((n = sl__cfg_get(p, arg, "allow")) && !sl__cfg_is_null(p, n) &&
        (rc = cfg_lua_allow(p, n, &conf.allow)) != SL_OK) {
        return rc;
    }
    if ((n = sl__cfg_get(p, arg, "instructions")) && !sl__cfg_is_null(p, n) &&
        (rc = sl__cfg_int(p, n, "lua instructions", 0, INT64_C(1) << 40, &conf.max_instructions)) !=
            SL_OK) {
        return rc;
    }
    int64_t mb;
    if ((n = sl__cfg_get(p, arg, "memory_mb")) && !sl__cfg_is_null(p, n)) {
        if ((rc = sl__cfg_int(p, n, "lua memory_mb", 0, 1 << 20, &mb)) != SL_OK) {
            return rc;
        }
        conf.max_memory = (size_t)mb << 20;
    }
    char *text = NULL, *full = NULL;
    yaml_node_t *code_node = inl ? inl : file;
    if (code_node->type != YAML_SCALAR_NODE) {
        return sl__cfg_error(p, sl__cfg_loc_of(code_node), "%s.%s must be a string, got %s", opname,
                             inl ? "lua" : "lua_file", sl__cfg_kind(code_node));
    }
    cfg_loc loc = sl__cfg_loc_of(code_node);
    if (inl) {
        conf.code = sl__cfg_text(p, inl);
        conf.chunkname = p->path ? p->path : "pipeline";
        /* a block scalar (| or >) starts on the line after its indicator */
        yaml_scalar_style_t st = inl->data.scalar.style;
        conf.first_line =
            loc.line + (st == YAML_LITERAL_SCALAR_STYLE || st == YAML_FOLDED_SCALAR_STYLE);
    } else {
        if (!(text = cfg_lua_read(p, sl__cfg_text(p, file), &full))) {
            rc = sl__cfg_error(p, loc, "%s.lua_file: cannot read '%s': %s", opname,
                               full ? full : sl__cfg_text(p, file), strerror(errno));
            free(full);
            return rc;
        }
        conf.code = text;
        conf.chunkname = full;
        conf.first_line = 1;
    }
    char label[256];
    snprintf(label, sizeof(label), "%s at %s:%d", opname, p->path ? p->path : "pipeline",
             op->loc.line);
    conf.label = label;
    char msg[512];
    sl_lua_fn *fn = sl__lua_fn_new((sl_lua_kind)kind, &conf, msg, sizeof(msg));
    if (!fn) {
        rc = sl__cfg_error(p, loc, "lua: %s", msg);
    } else {
        op->lua = fn;
        /* Kafka sources parse headers only when asked: a script that names them asks */
        op->reads_header = strstr(conf.code, "headers") != NULL;
        op->desc = inl ? sl__cfg_strdupf("%s lua (line %d)", opname, loc.line)
                       : sl__cfg_strdupf("%s lua_file %s%s%s", opname, sl__cfg_text(p, file),
                                         conf.function ? " function " : "",
                                         conf.function ? conf.function : "");
    }
    free(text);
    free(full);
    return rc;
}

/* ==== Ops with a Lua form ==== */

sl_stream *sl__cfg_lua_apply(const cfg_op *op, sl_stream *s)
{
    sl_lua_fn *fn = op->lua;
    switch (sl__lua_fn_kind(fn)) {
    case SL_LUA_MAP: return sl_stream_map(s, sl__lua_map, fn);
    case SL_LUA_FILTER: return sl_stream_filter(s, sl__lua_filter, fn);
    case SL_LUA_FLAT_MAP: return sl_stream_flat_map(s, sl__lua_flat_map, fn);
    case SL_LUA_KEY: return sl_stream_key_by(s, sl__lua_key, fn);
    case SL_LUA_VALUE: return sl_stream_map_values(s, sl__lua_value, fn);
    case SL_LUA_REDUCE:
        return strcmp(op->def->name, "reduce") == 0
                   ? sl_stream_reduce(s, sl__lua_reduce, fn)
                   : sl_stream_reduce_by_key(s, sl__lua_reduce, fn, op->partitions);
    case SL_LUA_UPDATE_STATE: {
        sl_stream *k = sl_stream_update_state_by_key(s, sl__lua_update_state, fn, op->partitions);
        if (k && sl__lua_fn_emits(fn)) {
            k->state_emits = true; /* the output: what the function emits */
        }
        return k;
    }
    }
    return NULL;
}

/* The ops with a Lua form that is the whole op, and what their function computes. */
static const struct {
    const char *op;
    sl_lua_kind kind;
    bool partitions; /* takes partitions: too */
} cfg_lua_ops[] = {
    {"map", SL_LUA_MAP, false},           {"filter", SL_LUA_FILTER, false},
    {"flat_map", SL_LUA_FLAT_MAP, false}, {"key", SL_LUA_KEY, false},
    {"value", SL_LUA_VALUE, false},       {"reduce_by_key", SL_LUA_REDUCE, true},
    {"reduce", SL_LUA_REDUCE, false},     {"update_state", SL_LUA_UPDATE_STATE, true},
};

int sl__cfg_lua_op(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const parts[] = {"partitions", NULL};
    static const char *const parts_emit[] = {"partitions", "emit", NULL};
    const char *name = op->def->name;
    for (size_t i = 0; i < sizeof(cfg_lua_ops) / sizeof(cfg_lua_ops[0]); i++) {
        if (strcmp(name, cfg_lua_ops[i].op) != 0) {
            continue;
        }
        bool bp = cfg_lua_ops[i].partitions;
        bool us = cfg_lua_ops[i].kind == SL_LUA_UPDATE_STATE;
        int rc = sl__cfg_lua_parse(p, arg, op, cfg_lua_ops[i].kind,
                                   us   ? parts_emit
                                   : bp ? parts
                                        : NULL);
        yaml_node_t *n;
        if (rc == SL_OK && us && (n = sl__cfg_get(p, arg, "emit")) && !sl__cfg_is_null(p, n)) {
            bool emit = false;
            rc = sl__cfg_bool(p, n, "update_state.emit", &emit);
            sl__lua_fn_set_emits(op->lua, emit);
        }
        return rc == SL_OK && bp ? sl__cfg_op_partitions(p, arg, name, op) : rc;
    }
    return sl__cfg_error(p, sl__cfg_loc_of(arg),
                         "op '%s' has no Lua form (map, filter, flat_map, key, value, "
                         "reduce_by_key, reduce and update_state have; windowed reducers take "
                         "fn: {lua: CODE})",
                         name);
}

/* flat_map and update_state exist only in Lua (sl__cfg_lua_op parses that form). */
int sl__cfg_op_flat_map(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    return sl__cfg_error(p, sl__cfg_loc_of(arg),
                         "op '%s' takes {lua: CODE} or {lua_file: PATH, function: NAME}",
                         op->def->name);
}

int sl__cfg_op_update_state(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    return sl__cfg_op_flat_map(p, arg, op);
}

sl_stream *sl__cfg_apply_lua(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return sl__cfg_lua_apply(op, s);
}

void sl__cfg_lua_free(cfg_op *op)
{
    sl__lua_fn_destroy(op->lua);
    op->lua = NULL;
}

/* sl_cfg_ops_shape.c -- the YAML parsers of the parse op and of the JSON shaping ops (set,
 * rename, drop, keep), and the pass that fuses consecutive ones into one op. Their table
 * entries are in sl_cfg_ops.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sl_cfg.h"

#define CFG_MAX_TYPES 64 /* parse.types entries */
#define CFG_MAX_PATHS 64 /* drop and keep fields */

/* ==== Docs (the op table's, in sl_cfg_ops.c) ==== */

const char sl__cfg_doc_parse[] =
    "matches a PCRE2 regular expression with named captures `(?<name>...)` (unanchored: "
    "write `^` and `$`; in YAML single quotes, where `\\d` stays as it is) against the "
    "value, the key (`key: true`) or a JSON field's text "
    "(`json: PATH`), and makes the captures that took part in the match the fields of "
    "a JSON object, in the pattern's order: the new value, or, with `json:`, added to "
    "the value's object (replacing fields of the same name). `types` makes captures "
    "`int`, `float` or `bool` (default `string`); a typed capture of `-` or nothing is "
    "null. Formats by name: `nginx_combined` and `apache_combined` (remote_addr, "
    "remote_user, time_local, request, method, path, protocol, status, "
    "body_bytes_sent, http_referer, http_user_agent; quoted fields as written, escapes "
    "kept), `apache_common` (without the last two), `syslog_rfc5424` (pri, facility, "
    "severity, version, timestamp, hostname, appname, procid, msgid, structured_data "
    "as `{\"SD-ID\": {\"PARAM\": \"value\"}}` with the values unescaped, message; `-` fields "
    "are null). A record that does not match, or whose "
    "typed capture does not convert, is rejected with the reason, e.g. `{format: "
    "nginx_combined}` on `10.0.0.1 - - [07/Dec/2026:10:00:00 +0000] \"GET /a b "
    "HTTP/1.1\" 200 512 \"-\" \"curl/8\"` gives `{\"remote_addr\":\"10.0.0.1\", ... "
    "\"path\":\"/a b\", ... \"status\":200, ...}`";
const char sl__cfg_doc_set[] =
    "sets a field of the JSON object value (dotted path; missing objects on the way "
    "are created) from another field (`from`; missing: rejected), a literal (`value`: "
    "a plain number, true, false or null is that, anything else a string) or "
    "arithmetic (`expr`: numbers, field paths of letters, digits and `_`, `+ - * /`, "
    "unary `-`, parentheses; "
    "fields hold numbers or strings holding one; `+ - *` of integers stay integers, "
    "`/` gives a float; a missing or non-numeric field, or a division by zero, rejects "
    "the record with the reason). E.g. `{\"price\":2.5,\"qty\":4}` with `expr: \"price * "
    "qty\"` gets `\"total\":10.0`. A value that is not a JSON object is rejected. "
    "Consecutive `set`, `rename`, `drop` and `keep` ops (and those right after a "
    "`parse`) decode and encode the JSON once";
const char sl__cfg_doc_rename[] =
    "moves a field of the JSON object value (replacing what `to` held; objects on the "
    "way created); a missing `from` leaves the record as it is. E.g. "
    "`{\"a\":{\"b\":1}}` becomes `{\"a\":{},\"c\":1}`";
const char sl__cfg_doc_drop[] =
    "removes fields of the JSON object value, nested ones too (a number segment "
    "removes an array element); missing ones: nothing. E.g. `{\"a\":1,\"b\":{\"c\":2,"
    "\"d\":3}}` becomes `{\"b\":{\"d\":3}}`";
const char sl__cfg_doc_keep[] =
    "keeps only these fields of the JSON object value (nested ones inside their "
    "objects); missing ones stay missing. E.g. `{\"a\":1,\"b\":{\"c\":2,\"d\":3},"
    "\"e\":4}` becomes `{\"a\":1,\"b\":{\"c\":2}}`";

/* A dotted path: non-empty segments. */
static int cfg_path(cfg_parser *p, yaml_node_t *n, const char *what, const char **out)
{
    int rc = sl__cfg_scalar(p, n, what, out);
    if (rc == SL_OK && (strstr(*out, "..") || **out == '.' || (*out)[strlen(*out) - 1] == '.')) {
        return sl__cfg_error(p, sl__cfg_loc_of(n), "bad JSON path '%s' in %s: empty segment", *out,
                             what);
    }
    return rc;
}

/* parse: FORMAT | {format: F | regex: R, types: {NAME: TYPE}, json: PATH | key: true} */
int sl__cfg_op_parse(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"regex", "format", "types", "json", "key", NULL};
    const char *regex = NULL, *format = NULL, *path = NULL;
    yaml_node_t *rn = NULL, *fn = NULL, *n;
    sl_yamlops_capture_type types[CFG_MAX_TYPES];
    size_t ntypes = 0;
    bool on_key = false;
    int rc;
    if (arg->type == YAML_SCALAR_NODE) {
        format = sl__cfg_text(p, arg);
        fn = arg;
    } else {
        if ((rc = sl__cfg_op_args(p, arg, "parse", keys)) != SL_OK ||
            (rc = sl__cfg_key_scalar(p, arg, "regex", "op 'parse'", false, &regex, &rn)) ||
            (rc = sl__cfg_key_scalar(p, arg, "format", "op 'parse'", false, &format, &fn))) {
            return rc;
        }
        if (!regex == !format) {
            return sl__cfg_error(p, sl__cfg_loc_of(rn ? rn : arg),
                                 "op 'parse' takes one of regex: REGEX and format: NAME (%s)",
                                 sl__yamlops_parse_formats());
        }
        if ((n = sl__cfg_get(p, arg, "json")) && (rc = cfg_path(p, n, "parse.json", &path))) {
            return rc;
        }
        if ((n = sl__cfg_get(p, arg, "key")) && (rc = sl__cfg_bool(p, n, "parse.key", &on_key))) {
            return rc;
        }
        if (path && on_key) {
            return sl__cfg_error(p, sl__cfg_loc_of(n),
                                 "parse reads the value, a JSON field (json:) or the key "
                                 "(key: true), only one");
        }
        yaml_node_t *tn = sl__cfg_get(p, arg, "types");
        if (tn && !sl__cfg_is_null(p, tn)) {
            if ((rc = sl__cfg_check_map(p, tn, "parse.types", NULL)) != SL_OK) {
                return rc;
            }
            if (tn->data.mapping.pairs.top - tn->data.mapping.pairs.start > CFG_MAX_TYPES) {
                return sl__cfg_error(p, sl__cfg_loc_of(tn), "parse.types has more than %d entries",
                                     CFG_MAX_TYPES);
            }
            for (yaml_node_pair_t *a = tn->data.mapping.pairs.start; a < tn->data.mapping.pairs.top;
                 a++) {
                yaml_node_t *v = sl__cfg_node(p, a->value);
                types[ntypes].name = sl__cfg_text(p, sl__cfg_node(p, a->key));
                if ((rc = sl__cfg_scalar(p, v, "a type in parse.types", &types[ntypes].type))) {
                    return rc;
                }
                ntypes++;
            }
        }
    }
    sl_yamlop_target target = path ? SL_YOP_ON_JSON : on_key ? SL_YOP_ON_KEY : SL_YOP_ON_VALUE;
    char msg[512];
    op->yop = sl__yamlops_parse_new(target, path, regex, format, types, ntypes, msg, sizeof(msg));
    if (!op->yop) {
        yaml_node_t *at = strstr(msg, "types:") && arg->type == YAML_MAPPING_NODE
                              ? sl__cfg_get(p, arg, "types")
                          : rn ? rn
                               : fn;
        return sl__cfg_error(p, sl__cfg_loc_of(at ? at : arg), "parse: %s", msg);
    }
    const char *what = path ? path : on_key ? "key" : "value";
    op->desc = regex ? sl__cfg_strdupf("parse %s%s by regex '%s'", path ? "json " : "", what, regex)
                     : sl__cfg_strdupf("parse %s%s as %s", path ? "json " : "", what, format);
    return SL_OK;
}

/* The JSON text of set.value: a plain scalar that reads as JSON (a number, true, false,
 * null) is that; anything else (quoted scalars too) is a string; a mapping or a list is not
 * accepted (write it as a JSON string with from: or expr: instead). */
static char *cfg_literal_json(cfg_parser *p, yaml_node_t *n)
{
    const char *s = sl__cfg_text(p, n);
    if (sl__cfg_is_null(p, n)) {
        return strdup("null"); /* value: ~, value: null, value: */
    }
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        json_t *v = json_loads(s, JSON_DECODE_ANY, NULL);
        bool simple = v && !json_is_object(v) && !json_is_array(v) && !json_is_string(v);
        json_decref(v);
        if (simple) {
            return strdup(s);
        }
    }
    json_t *str = json_string(s);
    char *out = str ? json_dumps(str, JSON_ENCODE_ANY) : NULL;
    json_decref(str);
    return out;
}

/* set: {field: PATH, from: PATH | value: SCALAR | expr: EXPR} */
int sl__cfg_op_set(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"field", "from", "value", "expr", NULL};
    const char *field, *from = NULL, *expr = NULL;
    yaml_node_t *fn, *n = NULL, *vn;
    int rc = sl__cfg_op_args(p, arg, "set", keys);
    if (rc || (rc = sl__cfg_key_scalar(p, arg, "field", "op 'set'", true, &field, &fn)) ||
        (rc = cfg_path(p, fn, "set.field", &field))) {
        return rc;
    }
    int given = 0;
    if ((n = sl__cfg_get(p, arg, "from")) && (rc = cfg_path(p, n, "set.from", &from)) == SL_OK) {
        given++;
    }
    if (rc == SL_OK && (n = sl__cfg_get(p, arg, "expr")) &&
        (rc = sl__cfg_scalar(p, n, "set.expr", &expr)) == SL_OK) {
        given++;
    }
    if (rc != SL_OK) {
        return rc;
    }
    char *literal = NULL;
    if ((vn = sl__cfg_get(p, arg, "value"))) {
        if (vn->type != YAML_SCALAR_NODE) {
            return sl__cfg_error(p, sl__cfg_loc_of(vn), "set.value must be a scalar, got %s",
                                 sl__cfg_kind(vn));
        }
        if (!(literal = cfg_literal_json(p, vn))) {
            return sl__cfg_error(p, sl__cfg_loc_of(vn), "out of memory");
        }
        given++;
    }
    if (given != 1) {
        free(literal);
        return sl__cfg_error(p, sl__cfg_loc_of(arg),
                             "op 'set' takes field: PATH and one of from: PATH, value: SCALAR and "
                             "expr: EXPRESSION");
    }
    char msg[512];
    op->yop = sl__yamlops_set_new(field, from, literal, expr, msg, sizeof(msg));
    if (!op->yop) {
        free(literal);
        return sl__cfg_error(p, sl__cfg_loc_of(n ? n : vn ? vn : arg), "set: %s", msg);
    }
    op->desc = from      ? sl__cfg_strdupf("set %s from %s", field, from)
               : literal ? sl__cfg_strdupf("set %s to %s", field, literal)
                         : sl__cfg_strdupf("set %s = %s", field, expr);
    free(literal);
    return SL_OK;
}

/* rename: {from: PATH, to: PATH} */
int sl__cfg_op_rename(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    static const char *const keys[] = {"from", "to", NULL};
    const char *from, *to;
    yaml_node_t *fn, *tn;
    int rc = sl__cfg_op_args(p, arg, "rename", keys);
    if (rc || (rc = sl__cfg_key_scalar(p, arg, "from", "op 'rename'", true, &from, &fn)) ||
        (rc = sl__cfg_key_scalar(p, arg, "to", "op 'rename'", true, &to, &tn)) ||
        (rc = cfg_path(p, fn, "rename.from", &from)) || (rc = cfg_path(p, tn, "rename.to", &to))) {
        return rc;
    }
    char msg[512];
    op->yop = sl__yamlops_rename_new(from, to, msg, sizeof(msg));
    if (!op->yop) {
        return sl__cfg_error(p, sl__cfg_loc_of(arg), "rename: %s", msg);
    }
    op->desc = sl__cfg_strdupf("rename %s to %s", from, to);
    return SL_OK;
}

/* drop: [PATH, ...] | PATH, and keep the same. */
static int cfg_op_fields(cfg_parser *p, yaml_node_t *arg, cfg_op *op, bool keep)
{
    const char *name = keep ? "keep" : "drop";
    const char *paths[CFG_MAX_PATHS];
    size_t n = 0;
    int rc;
    if (arg->type == YAML_SCALAR_NODE) {
        if ((rc = cfg_path(p, arg, name, &paths[0])) != SL_OK) {
            return rc;
        }
        n = 1;
    } else if (arg->type == YAML_SEQUENCE_NODE) {
        size_t k = (size_t)(arg->data.sequence.items.top - arg->data.sequence.items.start);
        if (k == 0 || k > CFG_MAX_PATHS) {
            return sl__cfg_error(p, sl__cfg_loc_of(arg), "op '%s' takes 1 to %d fields, got %zu",
                                 name, CFG_MAX_PATHS, k);
        }
        for (size_t i = 0; i < k; i++) {
            yaml_node_t *e = sl__cfg_node(p, arg->data.sequence.items.start[i]);
            if ((rc = cfg_path(p, e, name, &paths[n])) != SL_OK) {
                return rc;
            }
            n++;
        }
    } else {
        return sl__cfg_error(p, sl__cfg_loc_of(arg),
                             "op '%s' takes a list of fields such as "
                             "[a, b.c], got %s",
                             name, sl__cfg_kind(arg));
    }
    char msg[512];
    op->yop = sl__yamlops_drop_new(paths, n, keep, msg, sizeof(msg));
    if (!op->yop) {
        return sl__cfg_error(p, sl__cfg_loc_of(arg), "%s: %s", name, msg);
    }
    char list[512];
    size_t off = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n && off < sizeof(list); i++) {
        int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", paths[i]);
        off += w > 0 ? (size_t)w : 0;
    }
    op->desc = sl__cfg_strdupf("%s %s", name, list);
    return SL_OK;
}

int sl__cfg_op_drop(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    return cfg_op_fields(p, arg, op, false);
}

int sl__cfg_op_keep(cfg_parser *p, yaml_node_t *arg, cfg_op *op)
{
    return cfg_op_fields(p, arg, op, true);
}

/* A fused op (its steps joined to an earlier op's) adds no node. */
sl_stream *sl__cfg_apply_shape(const cfg_op *op, sl_stream *s, sl_stream *const *handles)
{
    (void)handles;
    return op->yop ? sl_stream_map(s, sl__yamlops_map, op->yop) : s;
}

static bool cfg_is_shape(const cfg_op *op)
{
    return op->def->apply == sl__cfg_apply_shape && sl__yamlops_shape_can_fuse(op->yop);
}

int sl__cfg_fuse_shapes(cfg_op *ops, size_t nops)
{
    cfg_op *lead = NULL;
    size_t lead_idx = 0;
    for (size_t j = 0; j < nops; j++) {
        cfg_op *op = &ops[j];
        bool parse = op->def->parse == sl__cfg_op_parse;
        if (!cfg_is_shape(op)) {
            lead = NULL;
            continue;
        }
        if (!lead || parse) {
            lead = op;
            lead_idx = j;
            continue;
        }
        char *desc =
            sl__cfg_strdupf("%s (runs in op %zu: one JSON decode)", op->desc, lead_idx + 1);
        if (!desc || sl__yamlops_shape_fuse(lead->yop, op->yop) != SL_OK) {
            free(desc);
            return SL_ERR_NOMEM;
        }
        op->yop = NULL;
        free(op->desc);
        op->desc = desc;
    }
    return SL_OK;
}

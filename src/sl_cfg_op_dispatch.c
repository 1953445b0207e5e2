/* sl_cfg_op_dispatch.c -- one item of a stream's ops: finding its entry in the op table
 * (sl_cfg_ops.c), checking and parsing it (or its Lua form), and the table printed as the
 * docs of `sluice ops` and the README's operations reference. */
#include <stdio.h>
#include <string.h>

#include "sl_cfg.h"
#include "sl_lua.h"

/* What the docs add to an op's own for its flags, into buf. */
static const char *cfg_op_flag_doc(const cfg_op_def *d, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s",
             (d->flags & CFG_OP_WINDOWED) ? "; length and slide are multiples of the parent's "
                                            "slide (a source's: the batch interval)"
                                          : "",
             (d->flags & CFG_OP_STATEFUL)
                 ? "; keeps state across batches, checkpointed (needs `app.checkpoint_dir`)"
                 : "");
    return buf;
}

/* ==== Dispatch ==== */

int sl__cfg_parse_op(cfg_parser *p, yaml_node_t *item, const char *where, cfg_op *op)
{
    yaml_node_t *name_node, *arg;
    op->loc = sl__cfg_loc_of(item);
    if (item->type == YAML_SCALAR_NODE) {
        name_node = item;
        arg = NULL;
    } else if (item->type == YAML_MAPPING_NODE) {
        int rc = sl__cfg_check_map(p, item, where, NULL);
        if (rc != SL_OK) {
            return rc;
        }
        size_t n = (size_t)(item->data.mapping.pairs.top - item->data.mapping.pairs.start);
        if (n != 1) {
            return sl__cfg_error(p, op->loc,
                                 "an op is a mapping with one key, the op's name (got "
                                 "%zu keys); write each op as its own '- ' item",
                                 n);
        }
        name_node = sl__cfg_node(p, item->data.mapping.pairs.start->key);
        arg = sl__cfg_node(p, item->data.mapping.pairs.start->value);
        if (sl__cfg_is_null(p, arg)) {
            arg = NULL;
        }
    } else {
        return sl__cfg_error(p, op->loc,
                             "an op must be a mapping such as '- split: whitespace', "
                             "got %s",
                             sl__cfg_kind(item));
    }
    const char *name = sl__cfg_text(p, name_node);
    const char *names[64];
    size_t n = 0;
    for (const cfg_op_def *d = sl__cfg_ops; d->name && n + 1 < 64; d++) {
        names[n++] = d->name;
        if (strcmp(name, d->name) == 0) {
            op->def = d;
        }
    }
    names[n] = NULL;
    if (!op->def) {
        return sl__cfg_unknown(p, sl__cfg_loc_of(name_node), "op", name, where, names);
    }
    op->loc = sl__cfg_loc_of(name_node);
    if (!arg && !(op->def->flags & CFG_OP_ARG_OPTIONAL)) {
        return sl__cfg_error(p, op->loc, "op '%s' needs an argument", name);
    }
    int rc = sl__cfg_lua_form(p, arg) ? sl__cfg_lua_op(p, arg, op) : op->def->parse(p, arg, op);
    if (rc == SL_OK && (op->def->flags & CFG_OP_STATEFUL)) {
        char what[96];
        snprintf(what, sizeof(what), "op '%s'", name);
        rc = sl__cfg_op_needs_checkpoint(p, op->loc, what);
    }
    return rc;
}

/* ==== Docs ==== */

/* s, with '|' as "\|" when it goes into a Markdown table. */
static void cfg_put_cell(const char *s, bool markdown, FILE *f)
{
    for (; *s; s++) {
        if (markdown && *s == '|') {
            fputc('\\', f);
        }
        fputc(*s, f);
    }
}

void sl__config_print_ops(FILE *f, bool markdown)
{
    if (markdown) {
        fprintf(f, "Operations (`ops`), applied in order (generated from the op table by "
                   "`sluice ops --markdown`):\n\n| Op | Meaning |\n|---|---|\n");
    } else {
        fprintf(f, "Operations (ops), applied in order:\n");
    }
    for (const cfg_op_def *d = sl__cfg_ops; d->name; d++) {
        fprintf(f, markdown ? "| " : "\n");
        for (int i = 0; i < CFG_OP_MAX_FORMS && d->forms[i]; i++) {
            if (markdown) {
                fprintf(f, "%s`", i ? " or " : "");
                cfg_put_cell(d->forms[i], true, f);
                fprintf(f, "`");
            } else {
                fprintf(f, "  %s\n", d->forms[i]);
            }
        }
        fprintf(f, markdown ? " | " : "      ");
        cfg_put_cell(d->doc, markdown, f);
        char flags[256];
        cfg_put_cell(cfg_op_flag_doc(d, flags, sizeof(flags)), markdown, f);
        fprintf(f, markdown ? " |\n" : "\n");
    }
}

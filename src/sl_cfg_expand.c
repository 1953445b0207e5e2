/* sl_cfg_expand.c -- ${VAR} and ${VAR:-default} in the scalars of a pipeline file. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_cfg.h"

/* ==== ${VAR} expansion ==== */

static bool cfg_name_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

static bool cfg_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

int sl__config_expand(const char *s, size_t len, char **out, size_t *err_off, char *errstr,
                      size_t errsize)
{
    sl_buf b = {0};
    int rc = sl__buf_append(&b, "", 0);
    size_t i = 0;
    while (rc == SL_OK && i < len) {
        if (s[i] != '$' || i + 1 >= len || (s[i + 1] != '$' && s[i + 1] != '{')) {
            rc = sl__buf_append(&b, s + i, 1);
            i++;
            continue;
        }
        if (s[i + 1] == '$') {
            rc = sl__buf_append(&b, "$", 1);
            i += 2;
            continue;
        }
        /* ${NAME} or ${NAME:-default} */
        size_t start = i;
        size_t j = i + 2;
        const char *msg = NULL;
        if (j < len && s[j] == '}') {
            msg = "empty variable name in '${}'";
        } else if (j < len && !cfg_name_start(s[j])) {
            msg = "bad variable name after '${' (names are letters, digits and '_', not "
                  "starting with a digit)";
        }
        while (!msg && j < len && cfg_name_char(s[j])) {
            j++;
        }
        size_t name_end = j;
        const char *def = NULL;
        size_t def_len = 0;
        if (!msg && j < len && s[j] == ':' && j + 1 < len && s[j + 1] == '-') {
            def = s + j + 2;
            j += 2;
            while (j < len && s[j] != '}') {
                if (s[j] == '$' && j + 1 < len && s[j + 1] == '{') {
                    msg = "nested '${' in a default value is not supported";
                    break;
                }
                j++;
            }
            def_len = (size_t)(s + j - def);
        }
        if (!msg && j >= len) {
            msg = "unterminated '${' (missing '}')";
        } else if (!msg && s[j] != '}') {
            msg = "bad character in variable name after '${' (names are letters, digits and "
                  "'_'; a default is written ${VAR:-default})";
        }
        if (msg) {
            snprintf(errstr, errsize, "%s", msg);
            *err_off = start;
            sl__buf_free(&b);
            return SL_ERR_INVAL;
        }
        char name[256];
        size_t nlen = name_end - (start + 2);
        if (nlen >= sizeof(name)) {
            snprintf(errstr, errsize, "variable name too long");
            *err_off = start;
            sl__buf_free(&b);
            return SL_ERR_INVAL;
        }
        memcpy(name, s + start + 2, nlen);
        name[nlen] = '\0';
        const char *val = getenv(name);
        if (val && *val) {
            rc = sl__buf_append(&b, val, strlen(val));
        } else if (def) {
            rc = sl__buf_append(&b, def, def_len);
        } else if (val) {
            rc = SL_OK; /* set but empty, no default: empty */
        } else {
            snprintf(errstr, errsize,
                     "environment variable '%s' is not set (give a default with "
                     "${%s:-default})",
                     name, name);
            *err_off = start;
            sl__buf_free(&b);
            return SL_ERR_INVAL;
        }
        i = j + 1;
    }
    if (rc != SL_OK) {
        sl__buf_free(&b);
        snprintf(errstr, errsize, "out of memory");
        return rc;
    }
    *out = sl__buf_steal(&b);
    return SL_OK;
}

/* Expands every scalar of the document into p->text. */
int sl__cfg_expand_all(cfg_parser *p)
{
    p->nnodes = (size_t)(p->doc.nodes.top - p->doc.nodes.start);
    p->text = calloc(p->nnodes ? p->nnodes : 1, sizeof(char *));
    if (!p->text) {
        return sl__cfg_error(p, sl__cfg_loc_at(0, 0), "out of memory");
    }
    for (size_t i = 0; i < p->nnodes; i++) {
        yaml_node_t *n = p->doc.nodes.start + i;
        if (n->type != YAML_SCALAR_NODE) {
            continue;
        }
        char msg[256];
        size_t off = 0;
        int rc = sl__config_expand((const char *)n->data.scalar.value, n->data.scalar.length,
                                   &p->text[i], &off, msg, sizeof(msg));
        if (rc != SL_OK) {
            cfg_loc loc = sl__cfg_loc_of(n);
            /* Columns count characters (as libyaml's marks do), not bytes. */
            size_t chars = 0;
            for (size_t k = 0; k < off; k++) {
                chars += (n->data.scalar.value[k] & 0xC0) != 0x80;
            }
            /* Point at the "${" itself when the scalar is written as it is read. */
            bool one_line = n->start_mark.line == n->end_mark.line;
            if (one_line && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
                loc.col += (int)chars;
            } else if (one_line && memchr(n->data.scalar.value, '\\', off) == NULL &&
                       memchr(n->data.scalar.value, '\'', off) == NULL &&
                       (n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                        n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)) {
                loc.col += (int)chars + 1;
            }
            return sl__cfg_error(p, loc, "%s", msg);
        }
    }
    return SL_OK;
}

/* sl_cmd_connectors.c -- `sluice connectors [NAME] [--markdown]`: every connector's option
 * table (or one connector's), as text wrapped to the terminal or as the Markdown of
 * config/CONNECTORS.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "sl_cmd.h"
#include "sluice.h"

/* ==== Values as the tables show them ==== */

static const char *type_name(sl_opt_type t)
{
    switch (t) {
    case SL_OPT_STR: return "string";
    case SL_OPT_INT: return "int";
    case SL_OPT_BOOL: return "bool";
    case SL_OPT_DOUBLE: return "double";
    case SL_OPT_DURATION: return "duration";
    case SL_OPT_SIZE: return "size";
    case SL_OPT_ENUM: return "enum";
    case SL_OPT_LIST: return "list";
    }
    return "?";
}

static void fmt_duration(double ms, char *buf, size_t size)
{
    long long v = (long long)ms;
    if (v != 0 && v % 3600000 == 0) {
        snprintf(buf, size, "%lldh", v / 3600000);
    } else if (v != 0 && v % 60000 == 0) {
        snprintf(buf, size, "%lldm", v / 60000);
    } else if (v != 0 && v % 1000 == 0) {
        snprintf(buf, size, "%llds", v / 1000);
    } else {
        snprintf(buf, size, "%lldms", v);
    }
}

static void fmt_size(double bytes, char *buf, size_t size)
{
    long long v = (long long)bytes;
    if (v != 0 && v % (1LL << 30) == 0) {
        snprintf(buf, size, "%lldGiB", v >> 30);
    } else if (v != 0 && v % (1LL << 20) == 0) {
        snprintf(buf, size, "%lldMiB", v >> 20);
    } else if (v != 0 && v % 1024 == 0) {
        snprintf(buf, size, "%lldKiB", v >> 10);
    } else {
        snprintf(buf, size, "%lld", v);
    }
}

static void fmt_number(const sl_option *o, double v, char *buf, size_t size)
{
    if (o->type == SL_OPT_DURATION) {
        fmt_duration(v, buf, size);
    } else if (o->type == SL_OPT_SIZE) {
        fmt_size(v, buf, size);
    } else {
        snprintf(buf, size, "%.15g", v);
    }
}

/* The range or the choices of an option, "" when it has none. */
static void fmt_range(const sl_option *o, char *buf, size_t size)
{
    buf[0] = '\0';
    if (o->type == SL_OPT_ENUM && o->choices) {
        snprintf(buf, size, "%s", o->choices);
        return;
    }
    bool numeric = o->type == SL_OPT_INT || o->type == SL_OPT_DOUBLE ||
                   o->type == SL_OPT_DURATION || o->type == SL_OPT_SIZE;
    if (!numeric || !(o->flags & SL_OPT_RANGE)) {
        return;
    }
    char lo[32], hi[32];
    fmt_number(o, o->min, lo, sizeof(lo));
    if (o->max >= 1e12) {
        snprintf(buf, size, ">= %s", lo);
        return;
    }
    fmt_number(o, o->max, hi, sizeof(hi));
    snprintf(buf, size, "%s..%s", lo, hi);
}

static const char *fmt_flags(const sl_option *o)
{
    bool req = o->flags & SL_OPT_REQUIRED, sec = o->flags & SL_OPT_SECRET;
    return req && sec ? "required, secret" : req ? "required" : sec ? "secret" : "";
}

static const char *role_name(unsigned flags)
{
    if ((flags & SL_SOURCE) && (flags & SL_SINK)) {
        return "source and sink";
    }
    return flags & SL_SOURCE ? "source" : "sink";
}

/* ==== Text, wrapped ==== */

/* The width to wrap to: COLUMNS when set to a number, else the terminal's, else 80. */
static int term_width(void)
{
    const char *env = getenv("COLUMNS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v >= 20 && v <= 1000) {
            return (int)v;
        }
    }
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) {
        return ws.ws_col;
    }
    return 80;
}

/* Prints text from column `at` (the cursor is there) up to width, words wrapped; the next
 * lines start at column indent. A word longer than a line is cut. Ends the line. */
static void print_wrapped(const char *text, int at, int indent, int width)
{
    int col = at, room = width - indent < 10 ? 10 : width - indent;
    bool first = true;
    for (const char *p = text ? text : ""; *p;) {
        while (*p == ' ' || *p == '\n') {
            p++;
        }
        int len = (int)strcspn(p, " \n");
        if (len == 0) {
            break;
        }
        if (!first && col + 1 + len > width) {
            printf("\n%*s", indent, "");
            col = indent;
            first = true;
        }
        if (!first) {
            putchar(' ');
            col++;
        }
        int n = len > room ? room : len;
        printf("%.*s", n, p);
        col += n;
        p += n;
        first = false;
    }
    putchar('\n');
}

/* Prints one option table: aligned columns with the descriptions wrapped to the width;
 * when the columns leave less than 24 for the descriptions, one block per option. */
static void print_table_text(const sl_option *table, int width)
{
    int wn = 6, wt = 4, wd = 7, wr = 13, wf = 5;
    char range[128];
    if (!table || !table->name) {
        printf("    (no options)\n");
        return;
    }
    for (const sl_option *o = table; o->name; o++) {
        fmt_range(o, range, sizeof(range));
        int n = (int)strlen(o->name), t = (int)strlen(type_name(o->type));
        int d = o->def ? (int)strlen(o->def) : 1, r = (int)strlen(range);
        int f = (int)strlen(fmt_flags(o));
        wn = n > wn ? n : wn;
        wt = t > wt ? t : wt;
        wd = d > wd ? d : wd;
        wr = r > wr ? r : wr;
        wf = f > wf ? f : wf;
    }
    int desc_col = 4 + wn + 2 + wt + 2 + wd + 2 + wr + 2 + wf + 2;
    if (width - desc_col < 24) {
        for (const sl_option *o = table; o->name; o++) {
            fmt_range(o, range, sizeof(range));
            char head[512];
            int n = snprintf(head, sizeof(head), "%s (%s", o->name, type_name(o->type));
            if (o->def) {
                n += snprintf(head + n, sizeof(head) - (size_t)n, ", default %s", o->def);
            }
            if (range[0]) {
                n += snprintf(head + n, sizeof(head) - (size_t)n, ", %s", range);
            }
            if (fmt_flags(o)[0]) {
                n += snprintf(head + n, sizeof(head) - (size_t)n, ", %s", fmt_flags(o));
            }
            snprintf(head + n, sizeof(head) - (size_t)n, ")");
            printf("    ");
            print_wrapped(head, 4, 8, width);
            printf("        ");
            print_wrapped(o->doc, 8, 8, width);
        }
        return;
    }
    printf("    %-*s  %-*s  %-*s  %-*s  %-*s  %s\n", wn, "OPTION", wt, "TYPE", wd, "DEFAULT", wr,
           "RANGE/CHOICES", wf, "FLAGS", "DESCRIPTION");
    for (const sl_option *o = table; o->name; o++) {
        fmt_range(o, range, sizeof(range));
        printf("    %-*s  %-*s  %-*s  %-*s  %-*s  ", wn, o->name, wt, type_name(o->type), wd,
               o->def ? o->def : "-", wr, range[0] ? range : "-", wf,
               fmt_flags(o)[0] ? fmt_flags(o) : "-");
        print_wrapped(o->doc, desc_col, desc_col, width);
    }
}

/* A connector's title and description, then its table. */
static void print_connector_text(const sl_connector *c, int width)
{
    const char *desc = sl_connector_description(c);
    printf("%s (%s)\n    ", sl_connector_name(c), role_name(sl_connector_flags(c)));
    print_wrapped(desc ? desc : "", 4, 4, width);
    print_table_text(sl_connector_options(c), width);
}

/* ==== Markdown ==== */

/* Prints s for a Markdown table cell: pipes escaped. */
static void md_cell(const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|') {
            fputs("\\|", stdout);
        } else if (*s == '\n') {
            fputc(' ', stdout);
        } else {
            fputc(*s, stdout);
        }
    }
}

static void print_table_markdown(const sl_option *table)
{
    char range[128];
    if (!table || !table->name) {
        printf("No options.\n\n");
        return;
    }
    printf("| Option | Type | Default | Range / choices | Required / secret | Description |\n");
    printf("|---|---|---|---|---|---|\n");
    for (const sl_option *o = table; o->name; o++) {
        fmt_range(o, range, sizeof(range));
        printf("| `%s` | %s | ", o->name, type_name(o->type));
        if (o->def) {
            printf("`");
            md_cell(o->def);
            printf("`");
        }
        printf(" | ");
        md_cell(range);
        printf(" | %s | ", fmt_flags(o));
        md_cell(o->doc);
        printf(" |\n");
    }
    printf("\n");
}

/* ==== The command ==== */

/* Prints every connector's name once on stderr, for an unknown NAME. */
static void list_names(void)
{
    fprintf(stderr, "connectors:");
    for (size_t i = 0;; i++) {
        const sl_connector *c = sl_connector_at(i);
        if (!c) {
            break;
        }
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++) {
            seen = strcmp(sl_connector_name(sl_connector_at(k)), sl_connector_name(c)) == 0;
        }
        if (!seen) {
            fprintf(stderr, "%s %s", i ? "," : "", sl_connector_name(c));
        }
    }
    fprintf(stderr, "\n");
}

int sl__cmd_connectors(const char *name, bool markdown)
{
    int width = term_width();
    if (name) {
        /* One connector: both of its roles when it is a source and a sink. */
        int found = 0;
        for (size_t i = 0;; i++) {
            const sl_connector *c = sl_connector_at(i);
            if (!c) {
                break;
            }
            if (strcmp(sl_connector_name(c), name) != 0) {
                continue;
            }
            if (markdown) {
                const char *desc = sl_connector_description(c);
                printf("## %s (%s)\n\n%s\n\n", name, role_name(sl_connector_flags(c)),
                       desc ? desc : "");
                print_table_markdown(sl_connector_options(c));
            } else {
                printf("%s", found ? "\n" : "");
                print_connector_text(c, width);
            }
            found++;
        }
        if (!found) {
            fprintf(stderr, "sluice: unknown connector '%s'\n", name);
            list_names();
            return 2;
        }
        if (!markdown) {
            printf("\nand the options of every source or sink: sluice connectors\n");
        }
        return 0;
    }
    if (markdown) {
        printf("# Connectors\n\n");
        printf("Generated by `sluice connectors --markdown`. In a pipeline file, a source or "
               "sink item takes `name`, `type` (the connector) and these options.\n\n");
        printf("## Options of every source\n\n");
        print_table_markdown(sl_common_source_options());
        printf("## Options of every sink\n\n");
        print_table_markdown(sl_common_sink_options());
    } else {
        printf("Options of every source:\n");
        print_table_text(sl_common_source_options(), width);
        printf("\nOptions of every sink:\n");
        print_table_text(sl_common_sink_options(), width);
    }
    for (size_t i = 0;; i++) {
        const sl_connector *c = sl_connector_at(i);
        if (!c) {
            break;
        }
        if (markdown) {
            const char *desc = sl_connector_description(c);
            printf("## %s (%s)\n\n%s\n\n", sl_connector_name(c), role_name(sl_connector_flags(c)),
                   desc ? desc : "");
            print_table_markdown(sl_connector_options(c));
        } else {
            printf("\n");
            print_connector_text(c, width);
        }
    }
    return 0;
}

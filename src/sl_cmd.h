/* sl_cmd.h -- commands of the sluice binary that live beside main.c: connectors and check. */
#ifndef SL_CMD_H
#define SL_CMD_H

#include <stdbool.h>

/* `sluice connectors [NAME] [--markdown]`: every connector's options, or NAME's (both roles
 * when it has two), as text wrapped to the terminal (COLUMNS, else the terminal's width,
 * else 80) or as Markdown. Returns the exit status: 0, or 2 for an unknown NAME (the names
 * listed on stderr). */
int sl__cmd_connectors(const char *name, bool markdown);

/* `sluice check FILE [--connect]`: prints every error of FILE (up to 20, with line:col) on
 * stderr and returns 2; else, without connect, prints the pipeline and returns 0; with
 * connect, tries each source's and sink's endpoints (the connector's probe: a TCP connect,
 * a login, a PING), prints a line per endpoint and returns 1 when one failed. The log level
 * is cli_level (a --log-level), else the file's app.log_level. */
int sl__cmd_check(const char *path, bool connect, int cli_level);

#endif /* SL_CMD_H */

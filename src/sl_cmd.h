/* sl_cmd.h -- commands of the sluice binary that live beside main.c: connectors and check. */
#ifndef SL_CMD_H
#define SL_CMD_H

#include <stdbool.h>

/* `sluice connectors [NAME] [--markdown]`: every connector's options, or NAME's (both roles
 * when it has two), as text wrapped to the terminal (COLUMNS, else the terminal's width,
 * else 80) or as Markdown. Returns the exit status: 0, or 2 for an unknown NAME (the names
 * listed on stderr). */
int sl__cmd_connectors(const char *name, bool markdown);

#endif /* SL_CMD_H */

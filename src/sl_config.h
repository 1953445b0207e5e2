/* sl_config.h -- the YAML front end: loads a pipeline file, checks it, and builds the
 * context through the public API (the format is described at the top of sl_config.c).
 *
 *     sl_config *cfg;
 *     char err[512];
 *     if (sl__config_load("wordcount.yaml", &cfg, err, sizeof(err)) != SL_OK) {
 *         fprintf(stderr, "%s\n", err);        // wordcount.yaml:12:7: error: ...
 *     }
 *     sl_context *ctx = sl__config_build(cfg, err, sizeof(err));
 *     ... sl_context_start(ctx) ... sl_context_destroy(ctx);
 *     sl__config_destroy(cfg);                   // after the context: it owns the ops' state
 *
 * Every error message is one line, "FILE:LINE:COLUMN: error: MESSAGE" with 1-based line
 * and column, without a trailing newline. Values of options flagged SL_OPT_SECRET never
 * appear in messages nor in sl__config_print_graph().
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include <stdio.h>

#include "sl_util.h"
#include "sluice.h"

/* A loaded and checked pipeline description. No context exists yet. */
typedef struct sl_config sl_config;

/* Reads, expands (${VAR}), parses and checks the file at path. Returns SL_OK and stores a
 * new config in *out (the caller destroys it), or SL_ERR_INVAL for a bad config, SL_ERR_IO
 * when the file cannot be read, SL_ERR_NOMEM; errstr then holds the message. */
int sl__config_load(const char *path, sl_config **out, char *errstr, size_t errsize);
/* As sl__config_load, for `sluice check`: every error of the file (up to 20), one line
 * each ("PATH:LINE:COL: error: ..."), in the file's order, appended to errors; the parse
 * goes on after an error where it can (the other items of a section, the other sections).
 * SL_OK with *out set, or an error. */
int sl__config_check_file(const char *path, sl_config **out, sl_buf *errors);
/* The same from text in memory; name stands for the file name in messages. */
int sl__config_load_string(const char *text, size_t len, const char *name, sl_config **out,
                           char *errstr, size_t errsize);

/* Creates a context (sl_context_new) and builds the graph the config describes through the
 * public API: sources, streams in dependency order, sinks. Returns the context (not
 * started; the caller destroys it) or NULL with errstr set, in the same format as load
 * errors, at the place in the file the failing piece came from. cfg must outlive the
 * context: the operator functions use state that cfg owns. */
sl_context *sl__config_build(const sl_config *cfg, char *errstr, size_t errsize);

/* What `sluice test` builds in place of the file's sources and sinks: the connector
 * source_type with source_opts[i] for the i-th source, sink_type with sink_opts[i] for the
 * i-th sink (NULL: that sink is left out), and checkpoint_dir for app.checkpoint_dir when the
 * file sets one. source_conn and sink_conn, when set, are connectors that are not in the
 * registry (a benchmark's in-memory source and counting sink), used instead of the types;
 * they must outlive the context. Borrowed for the call. */
typedef struct sl_config_swap {
    const char *checkpoint_dir;
    const char *source_type;
    const sl_options *const *source_opts;
    const char *sink_type;
    const sl_options *const *sink_opts;
    const sl_connector *source_conn;
    const sl_connector *sink_conn;
} sl_config_swap;

/* sl__config_build with the sources and sinks swapped as swap says (NULL: none). */
sl_context *sl__config_build_swapped(const sl_config *cfg, const sl_config_swap *swap, char *errstr,
                                     size_t errsize);

/* Prints the pipeline as sluice check shows it: app settings, sources with their type and
 * options, streams in build order with their inputs and ops, sinks. Secrets as "***". */
void sl__config_print_graph(const sl_config *cfg, FILE *f);

/* Prints the operations a stream's ops: can use, from the op table: the ways to write each
 * and what it does. markdown: the table of the README's operations reference. */
void sl__config_print_ops(FILE *f, bool markdown);

/* Frees cfg. NULL is fine. Destroy the context built from it first. */
void sl__config_destroy(sl_config *cfg);

/* The app name ("sluice" by default) and batch interval (ms). */
const char *sl__config_app_name(const sl_config *cfg);
int64_t sl__config_batch_interval(const sl_config *cfg);
/* True and *level set when app.log_level is given. */
bool sl__config_log_level(const sl_config *cfg, sl_log_level *level);
/* True and *format set when app.log_format is given. */
bool sl__config_log_format(const sl_config *cfg, sl_log_format *format);

/* Expands ${VAR} and ${VAR:-default} (default also when VAR is empty) in s[0..len); "$$"
 * is a "$", and a "$" not followed by "{" or "$" stays as it is. Returns SL_OK with a new
 * malloc'ed string in *out, or SL_ERR_INVAL with errstr set and *err_off the offset of
 * the faulty "${" (unset variable without default, empty or bad name, unterminated), or
 * SL_ERR_NOMEM. */
int sl__config_expand(const char *s, size_t len, char **out, size_t *err_off, char *errstr,
                      size_t errsize);

#endif /* SL_CONFIG_H */

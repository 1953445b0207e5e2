/* file.h -- contexts of the file source (Spark's textFileStream: new files of a directory,
 * one record per line) and of the file sink (saveAsTextFiles: one directory per batch). */
#ifndef SL_FILE_H
#define SL_FILE_H

#include <pthread.h>
#include <stdatomic.h>

#include "sl_connector.h"
#include "../tcp/lines.h"

/* A file taken (or found at start and skipped): name, mtime and size identify it. */
typedef struct sl_file_seen {
    struct sl_file_seen *next; /* hash chain */
    int64_t mtime;             /* ms */
    int64_t size;
    char name[];
} sl_file_seen;

typedef struct sl_file_source_ctx {
    /* Options, filled by the engine. */
    const char *path;      /* the directory */
    int64_t remember;      /* ms */
    int64_t poll_interval; /* ms */
    bool include_existing;

    /* State. ins is set first in init; destroy does nothing more when it is NULL. */
    sl_instance *ins;
    char *rbuf;
    size_t rbuf_size;
    sl_lines_batch *batch;
    sl_file_seen **seen; /* hash table of files taken within remember */
    size_t nbuckets;
    size_t nseen;
    bool first_poll; /* include_existing: the first poll takes every file */
    bool dir_failed; /* listing failed: reported once until it works again */
    pthread_t thread;
    bool started;
    atomic_bool stop;
} sl_file_source_ctx;

typedef struct sl_file_sink_ctx {
    /* Options, filled by the engine. */
    const char *prefix; /* may include directories */
    const char *suffix; /* NULL or "": none */
    const char *format; /* "text" */

    sl_instance *ins;
} sl_file_sink_ctx;

/* file_config.c: check the options. Return SL_OK or SL_ERR_INVAL with errstr set. */
int sl__file_source_config_check(sl_file_source_ctx *ctx, char *errstr, size_t errsize);
int sl__file_sink_config_check(sl_file_sink_ctx *ctx, char *errstr, size_t errsize);

#endif /* SL_FILE_H */

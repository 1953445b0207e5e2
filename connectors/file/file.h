/* file.h -- contexts of the file source (Spark's textFileStream: new files of a directory,
 * one record per line) and of the file sink (saveAsTextFiles: one directory per batch). */
#ifndef SL_FILE_H
#define SL_FILE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "sl_connector.h"
#include "sl_lines.h"

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

/* How the file sink writes records (the format option, in the order of its choices). */
typedef enum sl_file_format {
    SL_FILE_TEXT, /* one line per record as print() shows it */
    SL_FILE_JSON, /* JSON lines: one object per record */
    SL_FILE_CSV,  /* RFC 4180 fields, one line per record */
} sl_file_format;

/* A CSV column (the columns option). */
typedef enum sl_file_column {
    SL_FILE_COL_KEY,
    SL_FILE_COL_VALUE, /* the typed value when there is one, else the value bytes */
    SL_FILE_COL_NUM,   /* the typed value; empty when there is none */
    SL_FILE_COL_TS,
    SL_FILE_COL_SOURCE,
    SL_FILE_COL_TOPIC,
    SL_FILE_COL_PARTITION,
    SL_FILE_COL_OFFSET,
    SL_FILE_COL_BATCH_TIME,
} sl_file_column;

#define SL_FILE_MAX_COLUMNS 32

typedef struct sl_file_sink_ctx {
    /* Options, filled by the engine. */
    const char *prefix;  /* may include directories */
    const char *suffix;  /* NULL or "": none */
    int fmt;             /* sl_file_format */
    bool value_json;     /* json: a value that is a JSON document is written as JSON */
    bool header;         /* csv: a header line opens each part */
    const char *columns; /* csv: comma-separated column names */
    bool manifest;       /* write _manifest.json into each batch directory */

    /* Parsed by sl__file_sink_config_check. */
    sl_file_column cols[SL_FILE_MAX_COLUMNS];
    size_t ncols;

    sl_instance *ins;
} sl_file_sink_ctx;

/* file_config.c: check the options. Return SL_OK or SL_ERR_INVAL with errstr set. */
int sl__file_source_config_check(sl_file_source_ctx *ctx, char *errstr, size_t errsize);
int sl__file_sink_config_check(sl_file_sink_ctx *ctx, char *errstr, size_t errsize);
/* The name of a CSV column, as in the columns option and the header. */
const char *sl__file_column_name(sl_file_column c);

/* file_format.c: records in the sink's format. Each returns 0, or -1 when f reported an
 * error. Bytes are never lost: JSON strings hold valid UTF-8 only (escaped), other bytes go
 * base64-encoded, followed by "<field>_encoding":"base64"; CSV fields hold the bytes as
 * they are, quoted when they contain a comma, a quote, CR, LF or NUL. */
/* Writes r as one line in the sink's format; batch_time is for the batch_time column. */
int sl__file_record_write(FILE *f, const sl_file_sink_ctx *ctx, const sl_record *r,
                          int64_t batch_time);
/* Writes what opens a part file: the CSV header when asked for, else nothing. */
int sl__file_part_begin(FILE *f, const sl_file_sink_ctx *ctx);
/* Writes bytes as one CSV field, quoted when needed. */
void sl__file_csv_field(FILE *f, const char *bytes, size_t len);

/* A part file of a batch directory, for the manifest. */
typedef struct sl_file_part_info {
    char name[32];
    size_t records;
    uint64_t bytes;
} sl_file_part_info;

/* The manifest of a batch directory as a JSON document and a newline (caller frees):
 * pipeline, sink, batch_time, format (with value_json, or columns and header), records,
 * parts and the batch's inputs (out->inputs parsed). NULL when out of memory. */
char *sl__file_manifest(const sl_file_sink_ctx *ctx, const sl_batch_output *out,
                        const sl_file_part_info *parts, size_t nparts);

/* file_deadletter.c: the dead-letter target errors.dead_letter.type: file, provided by the
 * file sink. */
extern const struct sl_dl_target sl__file_dl_target;

#endif /* SL_FILE_H */

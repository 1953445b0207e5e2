/* support.h -- helpers for the engine's unit tests: a scripted source and an output that
 * collects what a stream computed, as text. */
#ifndef SUPPORT_H
#define SUPPORT_H

#include "sl_connector.h"

/* A direct source whose next batch yields the lines queued with ts_feed(). */
typedef struct ts_source ts_source;

sl_stream *ts_source_add(sl_context *ctx, const char *name, ts_source **src);
/* Queues lines (values) for the next batch; NULL-terminated. */
void ts_feed(ts_source *src, const char *const *lines);
/* Queues n records for the next batch. */
void ts_feed_records(ts_source *src, const sl_record *recs, size_t n);

/* Collects a stream's batches: the text of the last batch's records, sorted. */
typedef struct ts_out {
    char text[65536];
    size_t batches;    /* batches seen */
    size_t records;    /* records in the last batch */
    size_t partitions; /* partitions of the last batch */
    int64_t last_time;
    int fail_times; /* return SL_ERR_RETRY this many times first */
} ts_out;

int ts_collect(sl_stream *s, ts_out *out);

/* Loads the YAML text y as "t.yaml": SL_OK with *cfg (the caller destroys it) and the text
 * of its graph (sluice check's) in desc, or the error in err. */
struct sl_config;
int ts_config_load(const char *y, struct sl_config **cfg, char *desc, size_t descsize, char *err,
                   size_t errsize);

/* A context for tests: batch interval ms, workers. */
sl_context *ts_context(int64_t interval, int workers);

/* One line of a record: "key=value" or "key:num", or "value" / ":num" without a key. */
void ts_record_text(const sl_record *r, char *buf, size_t size);

/* A new empty directory /tmp/sluice-<what>-<pid>-XXXXXX in dir (size >= 64); false when it
 * cannot be made. */
bool ts_tmpdir(char *dir, size_t size, const char *what);
/* Removes a directory made by ts_tmpdir and everything in it; false on failure. */
bool ts_rmdir(const char *dir);

#endif

/* sl_test.h -- `sluice test`: pipeline unit tests without any server. A test file names a
 * pipeline and lists tests, each a list of batches with the records of each source and what
 * each sink must write (the format is described at the top of sl_test_file.c). The pipeline
 * runs on a simulated clock, batch after batch with no sleeping (sl__context_step), with the
 * testbench connectors (SL_TEST_DOUBLE) in place of its sources and sinks; sl_test_run.c
 * compares what the sinks wrote with what the test expects and prints the differences. */
#ifndef SL_TEST_H
#define SL_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "sl_config.h"

/* A place in the test file (1-based). */
typedef struct sl_tloc {
    int line, col;
} sl_tloc;

/* The fields an expected record given as a mapping checks (sl_texp.has). */
enum {
    SL_TX_KEY = 1u << 0,
    SL_TX_VALUE = 1u << 1,
    SL_TX_JSON = 1u << 2,
    SL_TX_NUM = 1u << 3,
    SL_TX_TS = 1u << 4,
    SL_TX_WSTART = 1u << 5,
    SL_TX_WEND = 1u << 6,
    SL_TX_BATCH = 1u << 7,
    SL_TX_TOPIC = 1u << 8,
    SL_TX_PARTITION = 1u << 9,
    SL_TX_OFFSET = 1u << 10,
    SL_TX_SOURCE = 1u << 11,
    SL_TX_TOMBSTONE = 1u << 12,
};

/* An expected record: text (as the stdout sink prints a record: "(key,value)" or "value")
 * or the fields in has. Bytes fields are NUL-terminated copies; NULL means "none". */
typedef struct sl_texp {
    sl_tloc loc;
    char *text;
    unsigned has;
    char *key, *value, *topic, *source;
    json_t *json;
    bool num_none; /* num: ~ (no typed value) */
    double num;
    int64_t ts, window_start, window_end, batch_time, partition, offset;
    bool tombstone;
} sl_texp;

/* What one sink must write over listed batches first..last (one batch, or the whole test). */
typedef struct sl_tgroup {
    size_t sink;        /* index in the pipeline's sinks */
    size_t first, last; /* listed batches */
    bool checked;       /* false: written as ~, not compared */
    sl_texp *recs;
    size_t nrecs;
    sl_tloc loc;
} sl_tgroup;

typedef struct sl_tbatch {
    int64_t time; /* the batch time, ms */
    sl_tloc loc;
} sl_tbatch;

typedef struct sl_tcase {
    char *name;
    sl_tloc loc;
    int64_t start; /* the clock's zero: batch k (from 1) runs at start + k * interval */
    bool ordered;  /* records of a batch compared in order */
    sl_tbatch *batches;
    size_t nbatches;
    /* Per source of the pipeline: the testbench source's `batches` option, one element per
     * batch the engine runs (listed ones and the empty ones between them). */
    json_t **inputs;
    size_t ninputs;
    sl_tgroup *groups;
    size_t ngroups;
} sl_tcase;

typedef struct sl_tfile {
    char *path;     /* the test file, as given */
    char *pipeline; /* the pipeline's path, resolved from the test file's directory */
    sl_tloc pipeline_loc;
    int64_t interval; /* the pipeline's batch interval, ms */
    sl_tcase *tests;
    size_t ntests;
    /* The pipeline's source and sink names, by index (borrowed from nothing: copies). */
    char **sources, **sinks;
    size_t nsources, nsinks;
    bool *changelog; /* per sink: a changelog sink (left out of tests) */
} sl_tfile;

/* ==== The test file (sl_test_file.c) ==== */

/* Reads the test file at path: sets its env, loads its pipeline (sl__config_load) and parses
 * its tests against it. SL_OK with *out (sl__tfile_destroy frees it), or an error with errstr
 * ("FILE:LINE:COLUMN: error: MESSAGE", the test file's or the pipeline's). */
int sl__tfile_load(const char *path, sl_tfile **out, char *errstr, size_t errsize);
void sl__tfile_destroy(sl_tfile *tf);

/* Parses an RFC 3339 time ("2026-01-01T00:00:05.250Z", a space for the T, no offset: UTC)
 * into ms since the epoch. */
bool sl__tparse_rfc3339(const char *s, int64_t *ms);
/* Writes ms as RFC 3339 in UTC, with milliseconds when they are not 0. */
void sl__tfmt_time(int64_t ms, char *buf, size_t size);

/* ==== Running (sl_test_run.c) ==== */

/* Runs every test of tf, printing a line per test and the differences of those that fail
 * to out. Returns the number of tests that failed, or -1 when a test could not run (the
 * reason printed to err). */
int sl__tfile_run(const sl_tfile *tf, FILE *out, FILE *err);

/* The type names of the test doubles (SL_TEST_DOUBLE): false when there are none. */
bool sl__test_doubles(const char **source, const char **sink);

/* `sluice test FILE...`: the exit status (0 all passed, 1 a test failed or could not run, 2
 * a file is bad). */
int sl__test_main(const char *const *paths, size_t n);

#endif /* SL_TEST_H */

/* stdout.h -- the stdout sink's context (DStream.print()) and the record formatter that
 * the stdout and file sinks share. */
#ifndef SL_STDOUT_H
#define SL_STDOUT_H

#include <stdio.h>

#include "sl_connector.h"

typedef struct sl_stdout_ctx {
    int64_t num; /* option: records printed per batch */
    sl_instance *ins;
} sl_stdout_ctx;

/* Writes r as one line to f, as Spark prints an element: "(key,value)" when the record has
 * a key, else "value"; a typed value replaces the value bytes (integers exactly, doubles
 * in the shortest form that reads back the same). Bytes are written as they are, NUL
 * included, followed by "\n". Returns 0, or -1 when f reported an error. Does not lock f. */
int sl__record_write(FILE *f, const sl_record *r);
/* Writes r's typed value to f: an integer exactly, a double in the shortest form that reads
 * back the same; nothing when r has none. Does not lock f. */
void sl__record_write_num(FILE *f, const sl_record *r);
/* The shortest "%.Ng" form of d that reads back as d (at most 17 digits), into buf. */
void sl__record_format_double(double d, char *buf, size_t size);

#endif /* SL_STDOUT_H */

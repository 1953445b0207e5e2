/* sl_record_text.h -- records as text, the way Spark prints an element: for the sinks that
 * write text (stdout, files). */
#ifndef SL_RECORD_TEXT_H
#define SL_RECORD_TEXT_H

#include <stdio.h>

#include "sluice.h"

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

#endif /* SL_RECORD_TEXT_H */

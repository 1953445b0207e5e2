/* testbench.h -- the testbench source and sink: the test doubles that `sluice test` puts in
 * place of a pipeline's sources and sinks (flag SL_TEST_DOUBLE). The source yields records
 * given as JSON in its options, one batch per element; the sink appends what each batch
 * wrote to a JSON-lines file. */
#ifndef SL_TESTBENCH_H
#define SL_TESTBENCH_H

#include <stdint.h>

#include "sl_connector.h"

/* One input record, parsed from the source's `batches` option. Bytes point into the
 * parsed JSON document. */
typedef struct sl_testbench_rec {
    sl_record rec;
    sl_record_meta meta;
    sl_header *headers;
} sl_testbench_rec;

typedef struct sl_testbench_src {
    /* Options, filled by the engine. */
    const char *batches; /* JSON: an array of batches, each an array of records */

    /* State. */
    sl_instance *ins;
    struct json_t *doc; /* the parsed option */
    size_t next;        /* the element the next batch yields */
} sl_testbench_src;

typedef struct sl_testbench_sink {
    const char *path; /* option: the file each batch is appended to */
    sl_instance *ins;
} sl_testbench_sink;

#endif /* SL_TESTBENCH_H */

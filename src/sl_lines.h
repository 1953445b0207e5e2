/* sl_lines.h -- splits a byte stream into line records, shared by the tcp, file and generate
 * sources: "\n" or "\r\n" stripped, a last unterminated line kept at the end of the stream
 * (sl__lines_finish) or dropped when it is cut off (sl__lines_discard), a line longer
 * than max_record_size discarded up to its next newline without being buffered. */
#ifndef SL_LINES_H
#define SL_LINES_H

#include "sl_connector.h"
#include "sl_util.h"

/* Records collected before one sl_receiver_push(). */
#define SL_LINES_BULK 1024

/* Records waiting for one sl_receiver_push(). They reference the caller's read buffer and
 * the splitter's partial line, so they are pushed before either changes. One per receiver
 * thread; big (about 90 KiB), so allocate it. */
typedef struct sl_lines_batch {
    sl_instance *ins;
    /* Pushes instead of sl_receiver_push when set (e.g. through a write-ahead log). */
    int (*push)(void *arg, const sl_record *recs, size_t n);
    void *push_arg;
    size_t n;
    int64_t records; /* records pushed since creation, for logs */
    sl_record recs[SL_LINES_BULK];
    sl_record_meta meta[SL_LINES_BULK];
} sl_lines_batch;

/* One stream of lines: a connection or a file. */
typedef struct sl_lines {
    sl_instance *ins;
    const char *topic; /* peer address or file name, for meta.topic; borrowed */
    size_t max;        /* max_record_size in bytes */
    char *part;        /* the unterminated line carried over from the previous chunk */
    size_t part_len;
    size_t part_cap; /* never more than max + 1 */
    bool discarding; /* inside an oversize line: skip up to its newline */
    uint64_t discard_len;
    int64_t line_no; /* lines seen, oversize ones included: the last record's offset */
} sl_lines;

/* Allocates a batch for ins. NULL when out of memory. */
sl_lines_batch *sl__lines_batch_new(sl_instance *ins);
void sl__lines_batch_destroy(sl_lines_batch *b);
/* Pushes the collected records (if any). Returns what sl_receiver_push() returned. */
int sl__lines_batch_push(sl_lines_batch *b);
/* Adds one record (value bytes, no key) with its meta; pushes when the batch is full. The
 * bytes must stay valid until the push. Returns SL_OK or the push's error. */
int sl__lines_batch_add(sl_lines_batch *b, const char *topic, int64_t offset, const char *value,
                        size_t len, int64_t ts);

/* Prepares l for a new stream; whatever l held must have been freed. topic is borrowed and
 * must outlive the stream. */
void sl__lines_init(sl_lines *l, sl_instance *ins, const char *topic);
/* Frees the partial-line buffer. l may be initialised again afterwards. */
void sl__lines_free(sl_lines *l);
/* Splits n bytes of data into lines, adds them to b and pushes b before returning (data
 * may be reused afterwards); the unterminated end is kept in l. Returns SL_OK,
 * SL_ERR_NOMEM, or SL_ERR_STATE when the engine is stopping (the records were taken). */
int sl__lines_feed(sl_lines *l, sl_lines_batch *b, const char *data, size_t n, int64_t ts);
/* End of the stream: the last unterminated line becomes a record and b is pushed. */
int sl__lines_finish(sl_lines *l, sl_lines_batch *b, int64_t ts);
/* The stream is cut off (the reader stops, or the connection failed): the lines collected
 * in b are pushed, the last unterminated line is dropped, not half a record. *dropped gets
 * its length in bytes (0: there was none). Returns what the push returned. */
int sl__lines_discard(sl_lines *l, sl_lines_batch *b, uint64_t *dropped);

#endif /* SL_LINES_H */

/* kafka_direct.h -- what the files of the direct source share: kafka_direct.c (batches,
 * completion, start, replay), kafka_assign.c (the partition table and its assignment) and
 * kafka_fetch.c (reading offset ranges into a batch's input). Internal to the connector. */
#ifndef SL_KAFKA_DIRECT_H
#define SL_KAFKA_DIRECT_H

#include "kafka.h"

#define READ_CHUNK      4096  /* messages taken from a queue at once */
#define SYNC_TIMEOUT_MS 10000 /* commits at revoke and close */

/* ==== kafka_assign.c: the partition table, start offsets, assignment ==== */

/* The partition of the table, NULL when it is not there. */
sl_kafka_part *sl__kafka_part_find(sl_kafka_src *ctx, const char *topic, int32_t partition);
/* Drops the messages fetched past a range's end (before a seek). */
void sl__kafka_part_clear_stash(sl_kafka_part *p);
/* Keeps m, fetched past a range's end, for the next batch; it owns m from then on (freed
 * on failure). SL_OK or SL_ERR_NOMEM. */
int sl__kafka_part_stash(sl_kafka_part *p, rd_kafka_message_t *m);
/* Frees what p holds (its queue, its stash), not p. */
void sl__kafka_part_free(sl_kafka_part *p);
/* Records a partition's position restored from the checkpoint. SL_OK or SL_ERR_NOMEM. */
int sl__kafka_saved_set(sl_kafka_src *ctx, const char *topic, int32_t partition, int64_t offset);
/* True when the source consumes as a member of a group (a non-empty group). */
bool sl__kafka_has_group(const sl_kafka_src *ctx);
/* Finds the start offsets still unknown: committed offsets, then earliest and latest.
 * Failures leave partitions unresolved until the next batch. @locks ctx->lock held */
void sl__kafka_resolve_parts(sl_kafka_src *ctx, int timeout);
/* Hands the resolved, unassigned partitions to librdkafka at their start offsets.
 * @locks ctx->lock held */
void sl__kafka_assign_manual(sl_kafka_src *ctx);
/* Looks up the topics and their partitions; new ones are added, partitions of deleted
 * topics removed, missing topics reported. @locks ctx->lock held */
void sl__kafka_refresh_metadata(sl_kafka_src *ctx, int timeout);
/* @locks ctx->lock held: it runs only inside our polls (next_batch, destroy). */
void sl__kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *l, void *opaque);

/* ==== kafka_direct.c: pending batches and commits ==== */

/* The offsets to commit: every partition's done offset. NULL when there is none. */
rd_kafka_topic_partition_list_t *
sl__kafka_done_offsets(sl_kafka_src *ctx, const rd_kafka_topic_partition_list_t *only);
/* Marks offsets of l as committed (after a successful commit). @locks ctx->lock held */
void sl__kafka_note_committed(sl_kafka_src *ctx, const rd_kafka_topic_partition_list_t *l);

/* ==== kafka_fetch.c: reading ranges ==== */

/* One range being read. */
typedef struct sl_kafka_range_read {
    rd_kafka_t *rk; /* the consumer whose queue it is */
    bool replay;    /* read again after a restart: no position moves */
    sl_kafka_part *p;
    sl_kafka_rbuf *rb;
    int64_t from, until;
    bool done;       /* every offset of the range was seen (or passed) */
    bool oor;        /* the fetch said out of range */
    int64_t last_at; /* ms (monotonic): when a message last came */
} sl_kafka_range_read;

/* Queries the earliest and latest offsets of p after an out-of-range fetch (or a start
 * past the latest offset) and applies on_offset_out_of_range. @locks ctx->lock held */
void sl__kafka_out_of_range(sl_kafka_src *ctx, sl_kafka_part *p, int64_t offset);
/* Reads every range at once: the queues are taken in turn, without waiting while any has
 * messages, so that librdkafka keeps fetching every partition. A range that has no message
 * for READ_SLICE_MS while the consumer's position passed its end is complete (a gap); a
 * range that started where the last one stopped short gets one slice only; the others get
 * until the deadline. Returns SL_OK or SL_ERR_NOMEM. @locks ctx->lock held */
int sl__kafka_read_ranges(sl_kafka_src *ctx, sl_kafka_range_read *rrs, size_t n, int64_t deadline);
/* Ends the read of a range: the offset it reached. */
int64_t sl__kafka_range_end(sl_kafka_src *ctx, sl_kafka_range_read *rr);
/* Seeks every partition whose queue is not where its range starts (from[k]). */
void sl__kafka_seek_parts(sl_kafka_src *ctx, const size_t *idx, const int64_t *from, size_t n);
/* Appends " topic[p]:from-until" to a growing text (*buf may be NULL; left as it is when
 * out of memory). */
void sl__kafka_range_describe(char **buf, size_t *len, size_t *cap, const sl_kafka_range *r);

#endif

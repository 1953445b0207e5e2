/* sl_wal.h -- the write-ahead log of receivers: blocks of records appended to segment files
 * under <dir>/wal/<name>/, each framed with its length and a CRC-32C, made durable with
 * fsync, replayed after a crash, and deleted once a marker says they were processed.
 *
 * Layout: segment files <seq>.log (seq from 1, zero-padded so names sort) hold blocks
 *
 *     u32 payload length | u32 crc32c(length bytes, payload) | payload
 *
 * (little-endian). The payload is the serialized records of one append (key, value,
 * timestamp, typed value, and meta topic/partition/offset/headers). A record's flags byte
 * says whether it has a meta (1) and headers (2); logs written before headers existed have
 * 0 or 1 there and are read as they are, while a log holding headers cannot be read by a
 * version without them (its blocks are reported malformed). The file `processed` holds the
 * position up to which every block was processed (written to a temporary file, fsynced and
 * renamed, so it is the old or the new one after a crash).
 *
 * A torn or corrupt block (short read, impossible length, CRC mismatch) ends its segment:
 * replay logs it and goes on with the next segment. At open, a torn tail of the last
 * segment is cut off so that appends continue right after the last good block.
 *
 * Positions: an sl_wal_pos is (segment seq << 32 | byte offset in that segment); they grow
 * with every append. Appends return the position just past their block.
 *
 * Threads: every function may be called from any thread; a mutex serializes them. Replay
 * reads with its own file descriptors and may run while appends go on.
 */
#ifndef SL_WAL_H
#define SL_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "sl_connector.h"
#include "sluice.h"

typedef struct sl_wal sl_wal;

typedef uint64_t sl_wal_pos;

#define SL_WAL_POS(seq, off) (((uint64_t)(seq) << 32) | (uint64_t)(uint32_t)(off))
#define SL_WAL_POS_SEQ(pos)  ((uint32_t)((pos) >> 32))
#define SL_WAL_POS_OFF(pos)  ((uint32_t)(pos))

/* When appended bytes reach the disk. */
typedef enum sl_wal_fsync {
    SL_WAL_FSYNC_EXPLICIT = 0, /* at sl__wal_sync() (and when a segment is rolled) */
    SL_WAL_FSYNC_ALWAYS = 1,   /* at every append */
    SL_WAL_FSYNC_NEVER = 2,    /* never: the OS decides (benchmarks, tests) */
} sl_wal_fsync;

typedef struct sl_wal_conf {
    sl_wal_fsync fsync;
    uint64_t segment_size; /* a segment is rolled once it holds this much; 0 = 64 MiB */
} sl_wal_conf;

/* Opens (creating) the log <dir>/wal/<name>/. conf NULL takes the defaults. Returns NULL
 * with errstr set when the directory cannot be created or a segment cannot be read. */
sl_wal *sl__wal_open(const char *dir, const char *name, const sl_wal_conf *conf, char *errstr,
                     size_t errsize);
/* Syncs (unless the policy is NEVER) and frees. NULL is fine. */
void sl__wal_close(sl_wal *wal);

/* Appends one block holding recs[0..n) and stores the position just past it in *end (when
 * not NULL). Returns SL_OK, SL_ERR_NOMEM, SL_ERR_TOOBIG (a block over 1 GiB) or SL_ERR_IO (the
 * segment is cut back to its last good block). Durable after sl__wal_sync() unless the policy
 * is ALWAYS. */
int sl__wal_append(sl_wal *wal, const sl_record *recs, size_t n, sl_wal_pos *end);
/* fsyncs what was appended. Returns SL_OK or SL_ERR_IO. */
int sl__wal_sync(sl_wal *wal);

/* The position just past the last block appended. */
sl_wal_pos sl__wal_end(sl_wal *wal);
/* The position up to which blocks are marked processed (0 when none). */
sl_wal_pos sl__wal_processed(sl_wal *wal);

/* Called for each block replayed: its records (bytes and meta borrowed for the call; the
 * meta's source is the log's name) and the position just past the block. A return other
 * than SL_OK stops the replay and is returned by it. */
typedef int (*sl_wal_replay_fn)(void *arg, const sl_record *recs, size_t n, sl_wal_pos end);

/* Replays every good block that starts at or after from, in order, up to the end of the
 * log as it was when the replay started. A torn or corrupt block is logged and the rest of
 * its segment skipped. *blocks (when not NULL) gets the number of blocks replayed. Returns
 * SL_OK, SL_ERR_IO, SL_ERR_NOMEM or the callback's error. */
int sl__wal_replay(sl_wal *wal, sl_wal_pos from, sl_wal_replay_fn fn, void *arg, uint64_t *blocks);

/* Records durably that every block ending at or before pos was processed (a position not
 * past the current marker is ignored). Returns SL_OK or SL_ERR_IO. */
int sl__wal_mark_processed(sl_wal *wal, sl_wal_pos pos);
/* Deletes the segments that hold only processed blocks (never the one being written).
 * Returns the number of segments deleted, or SL_ERR_IO. */
int sl__wal_cleanup(sl_wal *wal);

/* The number of segment files and the directory of the log (for logs and tests). */
size_t sl__wal_segments(sl_wal *wal);
/* Bytes on disk in the WAL's segment files (for /metrics). */
uint64_t sl__wal_bytes(sl_wal *wal);
const char *sl__wal_dir(const sl_wal *wal);

/* ==== Receivers with a log (sl_receiver.c) ==== */
/* Receivers with a write-ahead log (Spark's WAL-backed receivers): the connector appends
 * what it receives to the log and pushes it with sl__receiver_push_logged. The engine
 * then checkpoints each batch as the range of log records it holds; after a restart, the
 * batches that had not completed run again with exactly those records read back from the
 * log (same batch time), and the connector's replay of the log (from its processed marker)
 * may push anything again: records that a checkpointed batch holds are dropped.
 * sl__receiver_set_wal is called in start(), before the first push; wal stays the
 * connector's and must outlive the instance's last batch (close it in destroy). */
void sl__receiver_set_wal(sl_instance *ins, sl_wal *wal);
/* sl_receiver_push for recs[0..n), the records first..first+n of the log block that ends at
 * block_end (what sl__wal_append or the replay gave). block_end 0: not in the log. */
int sl__receiver_push_logged(sl_instance *ins, const sl_record *recs, size_t n,
                             sl_wal_pos block_end, size_t first);

/* ==== A receiver's log and pushes (sl_receiver_wal.c) ==== */
/* What receiver connectors with a write-ahead log share: opening the log, remembering each
 * push with the wall time it returned (a batch at time t holds every record pushed before
 * t), marking the log processed when a batch completes, and, after a restart or a failed
 * batch, pushing again the records of the log that no completed batch processed.
 *
 * Threads: the receiver thread opens it (start), pushes, replays and notes pushes; the job
 * thread calls done and failed; a mutex guards the list of pushes. */
typedef struct sl_receiver_log sl_receiver_log;

/* Options of a receiver's log, filled from the connector's option table. */
typedef struct sl_receiver_wal_opts {
    bool wal;             /* the wal option */
    int64_t segment_size; /* wal_segment_size, bytes */
    sl_wal_fsync fsync;   /* wal_fsync: block (SL_WAL_FSYNC_EXPLICIT), always, never */
} sl_receiver_wal_opts;

/* The tracker of a receiver's pushes, with a log when opts->wal is set and the context has
 * a checkpoint directory: the log <checkpoint_dir>/wal/<instance name>/, handed to the
 * engine (sl__receiver_set_wal). When wal was set explicitly without a checkpoint
 * directory, logs a warning ending with `without` (what happens without a log).
 * free_data frees the data given to sl__receiver_log_note (NULL: none is given). Returns
 * NULL with errstr set when the log cannot be opened or memory runs out.
 * @locality the thread of start() */
sl_receiver_log *sl__receiver_log_new(sl_instance *ins, const sl_receiver_wal_opts *opts,
                                      const char *without, void (*free_data)(void *), char *errstr,
                                      size_t errsize);
/* Takes the log from the engine, closes it and frees. After the receiver thread ended and
 * before the instance goes. NULL is fine. */
void sl__receiver_log_destroy(sl_receiver_log *rl);
/* The log (owned by rl), or NULL when there is none. */
sl_wal *sl__receiver_log_wal(const sl_receiver_log *rl);

/* Appends recs[0..n) to the log and makes them durable as the wal_fsync option says
 * (block: fsync now), then pushes them (sl__receiver_push_logged) and notes the push.
 * Without a log, pushes and notes. Returns SL_OK, the log's error (nothing pushed: the
 * caller keeps the records or drops them) or SL_ERR_STATE when the engine stops (the
 * records were taken). @locality the receiver thread */
int sl__receiver_log_push(sl_receiver_log *rl, const sl_record *recs, size_t n);
/* Remembers a push of the log block ending at end (0: not in the log) that returned now.
 * data (may be NULL) is taken over: given to the `each` of sl__receiver_log_done, then
 * freed with free_data. @locality the receiver thread */
void sl__receiver_log_note(sl_receiver_log *rl, sl_wal_pos end, void *data);

/* Pushes one block read back from the log: the connector's push (e.g. with its own waits),
 * returning SL_OK or an error that stops the replay (SL_ERR_STATE does not). */
typedef int (*sl_receiver_log_push_fn)(void *arg, const sl_record *recs, size_t n, sl_wal_pos end);
/* Pushes again every record of the log that no completed batch processed, block by block,
 * with push (NULL: sl__receiver_push_logged), noting each block; logs what it did, `why`
 * saying when ("restart", "a batch failed"). Records that a checkpointed batch holds are
 * dropped by the engine. Nothing without a log. @locality the receiver thread */
void sl__receiver_log_replay(sl_receiver_log *rl, const char *why, sl_receiver_log_push_fn push,
                             void *arg);

/* Batch batch_time completed: the pushes before it are processed. For each one pushed
 * since the last failure was handled, each(arg, data) is called (when each is not NULL);
 * the log is marked processed up to the last of them and its processed segments deleted.
 * @locality the job thread */
void sl__receiver_log_done(sl_receiver_log *rl, int64_t batch_time,
                           void (*each)(void *arg, void *data), void *arg);
/* Batch batch_time failed: what was pushed so far must be pushed again and none of it is
 * marked processed; logs it. The receiver thread sees it with sl__receiver_log_take_failure.
 * @locality the job thread */
void sl__receiver_log_failed(sl_receiver_log *rl, int64_t batch_time);
/* True (once) when a batch failed since the last call: the caller pushes again what is not
 * processed (sl__receiver_log_replay, or its own way). Pushes noted from now on count.
 * @locality the receiver thread */
bool sl__receiver_log_take_failure(sl_receiver_log *rl);

#endif /* SL_WAL_H */

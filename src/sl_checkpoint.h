/* sl_checkpoint.h -- checkpoint metadata: which pipeline wrote it (a fingerprint of the
 * graph), the zero time, the last completed batch, the batches generated and not completed
 * with the definition of each source's input, and each source's last definition (where it
 * continues), and the state data of stateful streams: the files of the last snapshot, the
 * batch time they reflect and the completed batches since. Written before every batch runs and
 * after it completes: to a temporary file, fsynced, renamed, the directory fsynced; the newest few
 * files are kept, each with a CRC-32C so that a torn or corrupt one is detected and the one before
 * it used. */
#ifndef SL_CHECKPOINT_H
#define SL_CHECKPOINT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_CKPT_KEEP 3

typedef struct sl_ckpt_batch {
    int64_t time;
    char **defs; /* per source, NULL when the source has no definition */
} sl_ckpt_batch;

/* A file of state data under <checkpoint_dir>/state (see sl_state_snapshot.c). */
typedef struct sl_ckpt_state_file {
    int node;     /* the stream's id */
    int64_t time; /* the batch time its content reflects */
    char *file;   /* name in the state directory */
} sl_ckpt_state_file;

typedef struct sl_checkpoint {
    char *dir; /* <checkpoint_dir>/metadata */
    pthread_mutex_t lock;
    uint64_t seq; /* number of the next file */
    char *graph;  /* the pipeline's description; its hash is the fingerprint */
    int64_t batch_interval;
    int64_t zero_time;
    int64_t last_completed; /* 0: none */
    size_t nsources;
    char **source_names;
    char **last_defs; /* per source: definition of the last generated batch */
    /* Per source: definition of the newest batch that completed with every batch before it
     * (where a source continues when the generated batches are not run again). */
    char **completed_defs;
    sl_ckpt_batch *pending;
    size_t npending;
    /* State data: the files of the last snapshot and the batch time they reflect; with
     * keep_done (a pipeline with stateful streams), the completed batches after it, which
     * run again after a restart to bring the state up to the last completed batch. */
    bool keep_done;
    int64_t state_time; /* 0: no snapshot */
    sl_ckpt_state_file *state_files;
    size_t nstate_files;
    sl_ckpt_batch *done; /* oldest first */
    size_t ndone;
    size_t bytes;   /* size of the last file written */
    int last_error; /* SL_OK or the error of the last write */
} sl_checkpoint;

/* Creates <dir>/metadata if needed and checks that it can be written. Returns NULL with
 * errstr naming the directory and the reason. */
sl_checkpoint *sl__ckpt_new(const char *dir, const char *graph, int64_t batch_interval,
                            size_t nsources, const char *const *source_names, char *errstr,
                            size_t errsize);
void sl__ckpt_destroy(sl_checkpoint *ck);

/* Loads the newest valid checkpoint of the directory into ck (the graph of ck is the new
 * pipeline's). Returns SL_OK with *found false when there is none, SL_OK with *found true
 * when it was loaded, SL_ERR_INVAL with errstr saying what differs when it was written by
 * an incompatible pipeline. Corrupt or truncated files are logged and skipped. */
int sl__ckpt_load(sl_checkpoint *ck, bool *found, char *errstr, size_t errsize);

/* Records that batch t was generated with these per-source definitions (copied; NULLs
 * allowed) and writes the checkpoint. */
int sl__ckpt_generated(sl_checkpoint *ck, int64_t t, const char *const *defs);
/* Records that batch t completed and writes the checkpoint. */
int sl__ckpt_completed(sl_checkpoint *ck, int64_t t);
/* Forgets the batches generated and not completed, which will not run again: the sources
 * continue after the last batch completed with all before it (last_defs becomes
 * completed_defs). Writes the checkpoint. */
int sl__ckpt_drop_pending(sl_checkpoint *ck);
/* Records a snapshot of the state at batch t: its files (copied) replace the previous
 * ones, and completed batches up to t are no longer kept. Written with the next write. */
int sl__ckpt_set_state(sl_checkpoint *ck, int64_t t, const sl_ckpt_state_file *files, size_t n);
/* Writes the checkpoint as it is. */
int sl__ckpt_write(sl_checkpoint *ck);

/* The 64-bit fingerprint of a graph description. */
uint64_t sl__ckpt_fingerprint(const char *graph);

#endif

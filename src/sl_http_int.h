/* sl_http_int.h -- internals of the status server shared by sl_http.c and sl_http_*.c. */
#ifndef SL_HTTP_INT_H
#define SL_HTTP_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sl_engine.h"
#include "sl_http.h"
#include "sl_metrics.h"

#define HTTP_BATCHES_KEPT 1000 /* like spark.streaming.ui.retainedBatches */
#define HTTP_MAX_PENDING  200  /* waiting batches listed at most */

struct MHD_Daemon;

struct sl_http_server {
    sl_context *ctx;
    struct MHD_Daemon *daemon;
    char *token; /* NULL: none */
    size_t token_len;
    int port;
    char url[300];
    char *page; /* index.html with the CSS and the script inlined */
    size_t page_len;
    char etag[24];

    /* Completed batches, copied from the engine when it completes new ones, so that
     * requests do not hold the context's lock to read 1000 batch infos. */
    pthread_mutex_t cache_lock;
    sl_batch_info *ring; /* HTTP_BATCHES_KEPT; newest at (next - 1) */
    size_t nring, next;
    uint64_t seen; /* batches_completed when the cache was refreshed */
    sl_batch_info *scratch;

    pthread_mutex_t snap_lock;
    sl_metrics_snapshot snap;
    int64_t snap_time; /* monotonic ms; 0: none yet */
};

/* ==== Listen addresses (sl_http_listen.c) ==== */

/* Binds and listens on the first address of host:port that works. Returns the socket or
 * -1 with *err the errno of the last failure. */
int sl__http_open_listener(const char *host, int port, int *err, char *errstr, size_t errsize);

/* ==== JSON documents and the cache (sl_http_json.c) ==== */

/* The engine's state, at most 50 ms old unless a batch completed since. */
void sl__http_snapshot(sl_http_server *srv, sl_metrics_snapshot *out);
/* Copies the batches completed since the last call into the cache. @locks cache_lock held. */
void sl__http_cache_refresh(sl_http_server *srv, uint64_t completed);
/* The i-th newest cached batch. @locks cache_lock held. */
const sl_batch_info *sl__http_cache_at(const sl_http_server *srv, size_t i);
/* The instances, or NULL when out of memory; *n is set. Free with free(). */
sl_instance_info *sl__http_instances(sl_context *ctx, size_t *n);

/* The documents of the API (see sl_http_json.c for their shapes); NULL when out of memory.
 * The caller owns the returned reference. */
json_t *sl__http_batch_json(const sl_http_server *srv, const sl_batch_info *b, const char *status);
json_t *sl__http_status_json(sl_http_server *srv);
json_t *sl__http_inputs_json(sl_http_server *srv);
json_t *sl__http_sinks_json(sl_http_server *srv);
/* Pending batches (running first, then waiting) appended to arr while limit allows and
 * their time is after since. */
void sl__http_append_pending(sl_http_server *srv, json_t *arr, size_t limit, int64_t since);

#endif /* SL_HTTP_INT_H */

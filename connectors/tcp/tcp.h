/* tcp.h -- the tcp source's context: Spark's socketTextStream (connect mode) and a line
 * server accepting many senders (listen mode). */
#ifndef SL_TCP_H
#define SL_TCP_H

#include <pthread.h>
#include <stdatomic.h>

#include "sl_connector.h"
#include "sl_lines.h"
#include "sl_wal.h"

/* "[ipv6]:port" at most */
#define SL_TCP_PEER_MAX 64

/* One connection: its socket, its peer's address and its own line state. */
typedef struct sl_tcp_conn {
    int fd;
    char peer[SL_TCP_PEER_MAX];
    sl_lines lines;
} sl_tcp_conn;

/* The mode option, in the order of its choices. */
typedef enum sl_tcp_mode {
    SL_TCP_CONNECT,
    SL_TCP_LISTEN,
} sl_tcp_mode;

typedef struct sl_tcp_ctx {
    /* Options, filled by the engine. */
    int mode;         /* sl_tcp_mode */
    const char *host; /* NULL: localhost (connect) or 127.0.0.1 (listen) */
    int64_t port;
    int64_t reconnect_interval;    /* ms */
    int64_t read_buffer;           /* bytes read per read() */
    int64_t max_connections;       /* listen mode */
    sl_receiver_wal_opts wal_opts; /* wal, wal_segment_size, wal_fsync */

    /* State. ins is set first in init; destroy does nothing more when it is NULL. */
    sl_instance *ins;
    bool listen;
    char *rbuf;
    size_t rbuf_size;
    sl_lines_batch *batch;
    int listen_fd;
    sl_tcp_conn *conns; /* listen mode: max_connections slots */
    size_t nconns;
    sl_tcp_conn conn; /* connect mode */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    _Atomic uint64_t partial_dropped; /* unterminated lines dropped at a cut-off */
    sl_receiver_log *rlog;            /* with wal: the log and the pushes; NULL without */
} sl_tcp_ctx;

/* tcp_config.c: checks the options and fills the defaults. Returns SL_OK or SL_ERR_INVAL
 * with errstr set. */
int sl__tcp_config_check(sl_tcp_ctx *ctx, char *errstr, size_t errsize);

#endif /* SL_TCP_H */

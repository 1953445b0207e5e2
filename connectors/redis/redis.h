/* redis.h -- the redis sink's context: each batch's commands in one MULTI/EXEC together with
 * a commit key, so that a replayed batch is skipped, and with the input positions of its
 * partitioned sources (a hash per sink), so that a partition that moves to another
 * instance of the consumer group is neither written twice nor over a newer owner.
 *
 * redis_config.c parses the options and the key templates and builds each record's
 * command (pure functions, unit-tested); redis.c holds the connection, the transaction
 * and the registration. Only this folder includes hiredis.h: the context keeps the
 * connection as the opaque struct redisContext. */
#ifndef SL_REDIS_H
#define SL_REDIS_H

#include <stdatomic.h>

#include "sl_connector.h"
#include "sl_util.h"

struct redisContext; /* hiredis */

/* The command option, in the order of its choices. */
typedef enum sl_redis_cmd {
    SL_REDIS_SET,
    SL_REDIS_HSET,
    SL_REDIS_HINCRBY,
    SL_REDIS_INCRBY,
    SL_REDIS_INCRBYFLOAT,
    SL_REDIS_ZADD,
    SL_REDIS_ZINCRBY,
    SL_REDIS_XADD,
    SL_REDIS_LPUSH,
} sl_redis_cmd;

/* A template: literal text with {key}, {value}, {batch_time}, {topic}, {partition} and
 * {offset} placeholders; {{ and }} stand for braces. */
typedef enum sl_redis_part_kind {
    SL_REDIS_LIT,
    SL_REDIS_PH_KEY,
    SL_REDIS_PH_VALUE,
    SL_REDIS_PH_BATCH_TIME,
    SL_REDIS_PH_TOPIC,
    SL_REDIS_PH_PARTITION,
    SL_REDIS_PH_OFFSET,
    SL_REDIS_PH_WINDOW_START, /* the record's window (sl_batch_output_when): its start */
    SL_REDIS_PH_WINDOW_END,   /* and its end (the batch time, or an event-time window's) */
} sl_redis_part_kind;

typedef struct sl_redis_part {
    sl_redis_part_kind kind;
    char *text; /* SL_REDIS_LIT */
    size_t len;
} sl_redis_part;

typedef struct sl_redis_tpl {
    sl_redis_part *parts;
    size_t nparts;
} sl_redis_tpl;

#define SL_REDIS_MAX_ARGS 12

/* The commands of one record (one, or two for lpush with trim): argv[i] points into buf
 * (offsets until sl__redis_build returns) or to constants. */
typedef struct sl_redis_cmds {
    int ncmds;
    int argc[2];
    const char *argv[2][SL_REDIS_MAX_ARGS];
    size_t argvlen[2][SL_REDIS_MAX_ARGS];
    sl_buf buf;
} sl_redis_cmds;

typedef struct sl_redis_ctx {
    /* Options, filled by the engine. */
    const char *host;
    int64_t port;
    const char *username;
    const char *password; /* secret */
    int64_t db;
    sl_redis_cmd cmd; /* the command option */
    const char *key;
    const char *field;
    const char *value;
    const char *member;
    int64_t ttl;    /* ms, set: PX; 0 none */
    int64_t trim;   /* lpush: LTRIM key 0 trim-1; 0 none */
    int64_t maxlen; /* xadd: MAXLEN ~ maxlen; 0 none */
    const char *commit_prefix;
    int64_t commit_ttl; /* ms */
    const char *instance;
    int64_t connect_timeout; /* ms */
    int64_t timeout;         /* ms, replies */
    int64_t pipeline_depth;

    /* Derived at init. ins is set first; destroy does nothing more when it is NULL. */
    sl_instance *ins;
    sl_redis_tpl tkey, tfield, tvalue, tmember;
    char ttl_text[24], trim_text[24], maxlen_text[24];

    /* Connection: used by the sink's writes only, one at a time. */
    struct redisContext *conn;
    /* The positions callback's own connection (it runs on the timer thread, possibly while
     * a write runs) and the last error reported on it, for its errstr. Only that callback
     * (and destroy) touch them. */
    struct redisContext *pconn;
    char perr[256];
} sl_redis_ctx;

/* ==== redis_config.c ==== */

/* Checks the options and parses the templates. SL_OK or SL_ERR_INVAL / NOMEM with errstr.
 * sl__redis_config_free frees what it allocated, also after a failure. */
int sl__redis_config_check(sl_redis_ctx *ctx, char *errstr, size_t errsize);
void sl__redis_config_free(sl_redis_ctx *ctx);

/* Parses a template. SL_OK or SL_ERR_INVAL with errstr naming the option (what). */
int sl__redis_tpl_parse(sl_redis_tpl *t, const char *s, const char *what, char *errstr,
                        size_t errsize);
void sl__redis_tpl_free(sl_redis_tpl *t);
/* Appends the template's expansion for r to b. SL_OK or SL_ERR_NOMEM. */
int sl__redis_tpl_expand(const sl_redis_tpl *t, const sl_record *r, const sl_record_when *when,
                         sl_buf *b);

/* Builds the commands of record r (none, out->ncmds 0, for a tombstone given to an
 * increment; a tombstone deletes for set, hset and zadd). Returns SL_OK, SL_ERR_RECORD with
 * why when the record cannot make its command (no number for an increment), or
 * SL_ERR_NOMEM. */
int sl__redis_build(const sl_redis_ctx *ctx, const sl_record *r, const sl_record_when *when,
                    sl_redis_cmds *out, char *why, size_t whysize);

/* The commit key: <commit_prefix><pipeline>:<sink>[:<instance>]:<batch_time>, into b. */
int sl__redis_commit_key(const sl_redis_ctx *ctx, const char *pipeline, const char *sink,
                         int64_t batch_time, sl_buf *b);

/* ==== Input positions (redis_config.c) ====
 * A sink's positions live in one hash shared by every instance of the pipeline (the key has
 * no instance part), one field per (source, topic, partition), its value the offset after
 * the last record the sink holds, in decimal. */

/* The hash: <commit_prefix>positions:<pipeline>:<sink>, into b (reset first). SL_OK or
 * SL_ERR_NOMEM. */
int sl__redis_positions_key(const sl_redis_ctx *ctx, const char *pipeline, const char *sink,
                            sl_buf *b);
/* Appends the field of a partition to b: <source> TAB <topic> TAB <partition in decimal>.
 * Unambiguous read from the right: the partition is a number and topic names hold no tab
 * (Kafka allows [a-zA-Z0-9._-]); ':' anywhere is fine. SL_OK or SL_ERR_NOMEM. */
int sl__redis_position_field(const char *source, const char *topic, int32_t partition, sl_buf *b);
/* A field's value (len bytes at s; s NULL when the hash has no such field): *next gets the
 * offset, -1 for no field. SL_OK, or SL_ERR_INVAL when it is no offset (a decimal >= 0). */
int sl__redis_position_parse(const char *s, size_t len, int64_t *next);
/* What to do with a batch whose ranges r[0..n) meet the positions held[0..n) (-1: none),
 * by sl_position_check_range: WRITE when every range says write, SKIP when every range
 * says skip, else FENCED (a mix of write and skip too), *culprit then naming the first
 * range that says fenced, or else the first that differs from range 0. n > 0. */
sl_position_check sl__redis_positions_decide(const sl_input_range *r, const int64_t *held, size_t n,
                                             size_t *culprit);

/* sluice check --connect: connect, AUTH, PING (redis_probe.c). */
int sl__redis_probe(void *ctx, sl_probe_report_fn report, void *opaque);

#endif /* SL_REDIS_H */

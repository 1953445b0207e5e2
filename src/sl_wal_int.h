/* sl_wal_int.h -- internals of the write-ahead log shared by sl_wal.c and sl_wal_replay.c. */
#ifndef SL_WAL_INT_H
#define SL_WAL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sl_util.h"
#include "sl_wal.h"

#define WAL_HEADER          8u                    /* u32 length, u32 crc */
#define WAL_MAX_BLOCK       (1u << 30)            /* payload bytes of one block */
#define WAL_DEFAULT_SEGMENT (64u * 1024 * 1024)   /* bytes */
#define WAL_MAX_SEGMENT     (2048u * 1024 * 1024) /* offsets are 32 bits */
#define WAL_REC_HEADER      40u                   /* fixed part of a serialized record */
#define WAL_F_META          0x1u       /* record flags (byte 17): the record has a meta */
#define WAL_F_HEADERS       0x2u       /* its meta has headers (after the topic) */
#define WAL_NULL_VALUE      UINT32_MAX /* the value length of a header whose value is null */
#define WAL_MARKER          "processed"

struct sl_wal {
    pthread_mutex_t lock;
    char *dir;  /* <dir>/wal/<name> */
    char *name; /* the source name, set as the meta source of replayed records */
    sl_wal_conf conf;
    int fd;            /* the segment being written */
    uint32_t cur_seq;  /* its sequence number */
    uint64_t cur_size; /* its size: the offset of the next block */
    bool dirty;        /* appended since the last fsync */
    sl_wal_pos processed;
    uint32_t *segs; /* every segment, ascending */
    size_t nsegs, capsegs;
    sl_buf buf; /* the block being serialized, header first, in place */
};

/* ==== Little-endian encoding ==== */

static inline void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static inline void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static inline uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

/* ==== Shared by the files of the log ==== */

#define BLOCK_END  0 /* a clean end */
#define BLOCK_GOOD 1 /* a block was read */
#define BLOCK_BAD  2 /* a torn or corrupt block */

/* The path of segment seq. */
void sl__wal_seg_path(const sl_wal *wal, uint32_t seq, char *path, size_t size);
/* Writes all of buf at off. Returns 0 or -1 with errno set. */
int sl__wal_write_at(int fd, const void *buf, size_t n, uint64_t off);
/* Reads the block at off of a segment whose readable part ends at limit. Returns BLOCK_GOOD
 * with the payload in *buf (grown as needed) and its length in *len, BLOCK_END, BLOCK_BAD
 * (why says what is wrong), or SL_ERR_IO / SL_ERR_NOMEM. */
int sl__wal_block_read(int fd, uint64_t off, uint64_t limit, unsigned char **buf, size_t *cap,
                       uint32_t *len, const char **why);

#endif /* SL_WAL_INT_H */

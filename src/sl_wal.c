/* sl_wal.c -- the write-ahead log: CRC-framed blocks of records in segment files (see
 * sl_wal.h for the layout and the guarantees). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* ==== CRC-32C ==== */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc_table[0][i];
        for (int k = 1; k < 8; k++) {
            c = crc_table[0][c & 0xff] ^ (c >> 8);
            crc_table[k][i] = c;
        }
    }
}

uint32_t sl__crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = buf;
    crc = ~crc;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
#endif
    while (len > 0) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
    return ~crc;
}

/* ==== Little-endian encoding ==== */

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

/* The checksum of a block: its length bytes, then its payload. */
static uint32_t block_crc(const unsigned char *len_bytes, const void *payload, size_t len)
{
    return sl__crc32c(sl__crc32c(0, len_bytes, 4), payload, len);
}

/* ==== The log ==== */

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
    unsigned char *buf; /* the block being serialized */
    size_t bufcap;
};

static void seg_path(const sl_wal *wal, uint32_t seq, char *path, size_t size)
{
    snprintf(path, size, "%s/%010" PRIu32 ".log", wal->dir, seq);
}

static int seg_add(sl_wal *wal, uint32_t seq)
{
    if (wal->nsegs == wal->capsegs) {
        size_t cap = wal->capsegs ? wal->capsegs * 2 : 16;
        uint32_t *s = realloc(wal->segs, cap * sizeof(*s));
        if (!s) {
            return SL_ERR_NOMEM;
        }
        wal->segs = s;
        wal->capsegs = cap;
    }
    wal->segs[wal->nsegs++] = seq;
    return SL_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment files of the directory into wal->segs, ascending. */
static int seg_scan(sl_wal *wal, char *errstr, size_t errsize)
{
    DIR *d = opendir(wal->dir);
    if (!d) {
        snprintf(errstr, errsize, "cannot open %s: %s", wal->dir, strerror(errno));
        return SL_ERR_IO;
    }
    struct dirent *de;
    int rc = SL_OK;
    while (rc == SL_OK && (de = readdir(d)) != NULL) {
        char *end;
        unsigned long v = strtoul(de->d_name, &end, 10);
        if (end != de->d_name && strcmp(end, ".log") == 0 && v > 0 && v <= UINT32_MAX) {
            rc = seg_add(wal, (uint32_t)v);
        }
    }
    closedir(d);
    if (rc != SL_OK) {
        snprintf(errstr, errsize, "out of memory");
        return rc;
    }
    if (wal->nsegs > 1) {
        qsort(wal->segs, wal->nsegs, sizeof(*wal->segs), cmp_u32);
    }
    return SL_OK;
}

/* Reads the processed marker; a missing one means nothing was processed. */
static void marker_read(sl_wal *wal)
{
    char path[PATH_MAX], text[64] = "";
    snprintf(path, sizeof(path), "%s/" WAL_MARKER, wal->dir);
    FILE *f = fopen(path, "re");
    if (!f) {
        return;
    }
    if (fgets(text, sizeof(text), f)) {
        char *end;
        unsigned long long v = strtoull(text, &end, 16);
        if (end != text && (*end == '\n' || *end == '\0')) {
            wal->processed = (sl_wal_pos)v;
        } else {
            sl_log(SL_LOG_WARN, "wal %s: unreadable marker %s ignored: every block is replayed",
                   wal->name, path);
        }
    }
    fclose(f);
}

/* Reads exactly n bytes at off. Returns n, a shorter count at the end of the file, or -1. */
static ssize_t read_at(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

#define BLOCK_END  0 /* a clean end */
#define BLOCK_GOOD 1 /* a block was read */
#define BLOCK_BAD  2 /* a torn or corrupt block */

/* Reads the block at off of a segment whose readable part ends at limit. Returns BLOCK_GOOD
 * with the payload in *buf (grown as needed) and its length in *len, BLOCK_END, BLOCK_BAD
 * (why says what is wrong), or SL_ERR_IO / SL_ERR_NOMEM. */
static int block_read(int fd, uint64_t off, uint64_t limit, unsigned char **buf, size_t *cap,
                      uint32_t *len, const char **why)
{
    if (off == limit) {
        return BLOCK_END;
    }
    if (limit - off < WAL_HEADER) {
        *why = "short block header";
        return BLOCK_BAD;
    }
    unsigned char hdr[WAL_HEADER];
    ssize_t r = read_at(fd, hdr, WAL_HEADER, off);
    if (r < 0) {
        return SL_ERR_IO;
    }
    if (r < (ssize_t)WAL_HEADER) {
        *why = "short block header";
        return BLOCK_BAD;
    }
    uint32_t n = get_u32(hdr);
    if (n == 0 || n > WAL_MAX_BLOCK || n > limit - off - WAL_HEADER) {
        *why = n == 0 ? "empty block" : "block length past the end of the segment";
        return BLOCK_BAD;
    }
    if (*cap < n) {
        unsigned char *b = realloc(*buf, n);
        if (!b) {
            return SL_ERR_NOMEM;
        }
        *buf = b;
        *cap = n;
    }
    r = read_at(fd, *buf, n, off + WAL_HEADER);
    if (r < 0) {
        return SL_ERR_IO;
    }
    if (r < (ssize_t)n) {
        *why = "short block";
        return BLOCK_BAD;
    }
    if (block_crc(hdr, *buf, n) != get_u32(hdr + 4)) {
        *why = "CRC mismatch";
        return BLOCK_BAD;
    }
    *len = n;
    return BLOCK_GOOD;
}

/* Finds the end of the last good block of the segment open as fd (size bytes). */
static int seg_good_end(int fd, uint64_t size, uint64_t *good, const char **why)
{
    unsigned char *buf = NULL;
    size_t cap = 0;
    uint64_t off = 0;
    int rc;
    *why = NULL;
    for (;;) {
        uint32_t len;
        rc = block_read(fd, off, size, &buf, &cap, &len, why);
        if (rc != BLOCK_GOOD) {
            break;
        }
        off += WAL_HEADER + len;
    }
    free(buf);
    *good = off;
    return rc < 0 ? rc : SL_OK;
}

/* Opens segment seq for appending, cutting a torn tail. Creates it when create is true. */
static int seg_open_write(sl_wal *wal, uint32_t seq, bool create, char *errstr, size_t errsize)
{
    char path[PATH_MAX];
    seg_path(wal, seq, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0666);
    if (fd < 0) {
        snprintf(errstr, errsize, "cannot open %s: %s", path, strerror(errno));
        return SL_ERR_IO;
    }
    uint64_t size = 0;
    if (!create) {
        struct stat st;
        if (fstat(fd, &st) != 0) {
            snprintf(errstr, errsize, "cannot stat %s: %s", path, strerror(errno));
            close(fd);
            return SL_ERR_IO;
        }
        const char *why;
        uint64_t good;
        int rc = seg_good_end(fd, (uint64_t)st.st_size, &good, &why);
        if (rc != SL_OK) {
            snprintf(errstr, errsize, "cannot read %s: %s", path, sl_err2str(rc));
            close(fd);
            return rc;
        }
        if (good < (uint64_t)st.st_size) {
            sl_log(SL_LOG_WARN,
                   "wal %s: %s: %s at offset %" PRIu64 "; the %" PRIu64
                   " bytes after the last good block are cut off",
                   wal->name, path, why ? why : "torn block", good, (uint64_t)st.st_size - good);
            if (ftruncate(fd, (off_t)good) != 0 || fsync(fd) != 0) {
                snprintf(errstr, errsize, "cannot truncate %s: %s", path, strerror(errno));
                close(fd);
                return SL_ERR_IO;
            }
        }
        size = good;
    }
    if (wal->fd >= 0) {
        close(wal->fd);
    }
    wal->fd = fd;
    wal->cur_seq = seq;
    wal->cur_size = size;
    wal->dirty = false;
    if (create && wal->conf.fsync != SL_WAL_FSYNC_NEVER) {
        sl__fsync_dir(wal->dir);
    }
    return SL_OK;
}

sl_wal *sl_wal_open(const char *dir, const char *name, const sl_wal_conf *conf, char *errstr,
                    size_t errsize)
{
    sl_wal *wal = calloc(1, sizeof(*wal));
    if (!wal) {
        snprintf(errstr, errsize, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&wal->lock, NULL);
    wal->fd = -1;
    if (conf) {
        wal->conf = *conf;
    }
    if (wal->conf.segment_size == 0) {
        wal->conf.segment_size = WAL_DEFAULT_SEGMENT;
    }
    wal->conf.segment_size = SL_MIN(wal->conf.segment_size, (uint64_t)WAL_MAX_SEGMENT);
    size_t len = strlen(dir) + strlen(name) + 8;
    wal->dir = malloc(len);
    wal->name = strdup(name);
    if (!wal->dir || !wal->name) {
        snprintf(errstr, errsize, "out of memory");
        sl_wal_close(wal);
        return NULL;
    }
    snprintf(wal->dir, len, "%s/wal/%s", dir, name);
    if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(errstr, errsize, "'%s' cannot name a write-ahead log directory", name);
        sl_wal_close(wal);
        return NULL;
    }
    if (sl__mkdirs(wal->dir, 0777) != 0) {
        snprintf(errstr, errsize, "cannot create %s: %s", wal->dir, strerror(errno));
        sl_wal_close(wal);
        return NULL;
    }
    if (seg_scan(wal, errstr, errsize) != SL_OK) {
        sl_wal_close(wal);
        return NULL;
    }
    marker_read(wal);
    int rc;
    if (wal->nsegs == 0) {
        rc = seg_add(wal, 1);
        rc = rc == SL_OK ? seg_open_write(wal, 1, true, errstr, errsize) : rc;
    } else {
        rc = seg_open_write(wal, wal->segs[wal->nsegs - 1], false, errstr, errsize);
    }
    if (rc != SL_OK) {
        sl_wal_close(wal);
        return NULL;
    }
    return wal;
}

void sl_wal_close(sl_wal *wal)
{
    if (!wal) {
        return;
    }
    if (wal->fd >= 0) {
        if (wal->dirty && wal->conf.fsync != SL_WAL_FSYNC_NEVER) {
            fdatasync(wal->fd);
        }
        close(wal->fd);
    }
    pthread_mutex_destroy(&wal->lock);
    free(wal->segs);
    free(wal->buf);
    free(wal->dir);
    free(wal->name);
    free(wal);
}

/* ==== Appending ==== */

/* The bytes a record's headers take in a block (0 when it has none). */
static uint64_t headers_size(const sl_record_meta *m)
{
    if (!m || m->nheaders == 0 || !m->headers) {
        return 0;
    }
    uint64_t need = 4;
    for (uint32_t i = 0; i < m->nheaders; i++) {
        need += 8 + (uint64_t)strlen(m->headers[i].name) + 1 +
                (m->headers[i].value ? m->headers[i].value_len : 0);
    }
    return need;
}

/* Serializes recs into wal->buf after the block header. Returns the payload length. */
static int block_encode(sl_wal *wal, const sl_record *recs, size_t n, size_t *payload)
{
    uint64_t need = 4;
    for (size_t i = 0; i < n; i++) {
        const sl_record_meta *m = recs[i].meta;
        size_t tlen = m && m->topic ? strlen(m->topic) + 1 : 0;
        if (tlen > UINT16_MAX) {
            tlen = 0; /* a topic name is at most 249 bytes; anything else is not one */
        }
        need +=
            WAL_REC_HEADER + (uint64_t)recs[i].key_len + recs[i].value_len + tlen + headers_size(m);
    }
    if (need > WAL_MAX_BLOCK || n > UINT32_MAX) {
        return SL_ERR_TOOBIG;
    }
    size_t total = WAL_HEADER + (size_t)need;
    if (wal->bufcap < total) {
        size_t cap = SL_MAX(total, wal->bufcap * 2);
        unsigned char *b = realloc(wal->buf, cap);
        if (!b) {
            return SL_ERR_NOMEM;
        }
        wal->buf = b;
        wal->bufcap = cap;
    }
    unsigned char *p = wal->buf + WAL_HEADER;
    put_u32(p, (uint32_t)n);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        const sl_record *r = &recs[i];
        const sl_record_meta *m = r->meta;
        size_t tlen = m && m->topic ? strlen(m->topic) + 1 : 0;
        if (tlen > UINT16_MAX) {
            tlen = 0;
        }
        uint64_t num;
        memcpy(&num, &r->num, sizeof(num));
        put_u32(p, r->key_len);
        put_u32(p + 4, r->value_len);
        put_u64(p + 8, (uint64_t)r->ts);
        uint64_t hsize = headers_size(m);
        p[16] = r->num_type;
        p[17] = (unsigned char)((m ? WAL_F_META : 0) | (hsize ? WAL_F_HEADERS : 0));
        put_u16(p + 18, (uint16_t)tlen);
        put_u32(p + 20, (uint32_t)(m ? m->partition : -1));
        put_u64(p + 24, (uint64_t)(m ? m->offset : -1));
        put_u64(p + 32, num);
        p += WAL_REC_HEADER;
        if (r->key_len) {
            memcpy(p, r->key, r->key_len);
            p += r->key_len;
        }
        if (r->value_len) {
            memcpy(p, r->value, r->value_len);
            p += r->value_len;
        }
        if (tlen) {
            memcpy(p, m->topic, tlen);
            p += tlen;
        }
        if (hsize) {
            /* u32 count, then per header: u32 name length (with its NUL), u32 value length
             * (WAL_NULL_VALUE: null), the name, the value. */
            put_u32(p, m->nheaders);
            p += 4;
            for (uint32_t h = 0; h < m->nheaders; h++) {
                const sl_header *hd = &m->headers[h];
                size_t nlen = strlen(hd->name) + 1;
                uint32_t vlen = hd->value ? hd->value_len : 0;
                put_u32(p, (uint32_t)nlen);
                put_u32(p + 4, hd->value ? vlen : WAL_NULL_VALUE);
                memcpy(p + 8, hd->name, nlen);
                p += 8 + nlen;
                if (vlen) {
                    memcpy(p, hd->value, vlen);
                    p += vlen;
                }
            }
        }
    }
    *payload = (size_t)need;
    return SL_OK;
}

/* Writes all of buf at off. Returns 0 or -1 with errno set. */
static int write_at(int fd, const void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

/* Closes the current segment (synced) and starts the next one. @locks wal->lock held */
static int seg_roll(sl_wal *wal)
{
    if (wal->dirty && wal->conf.fsync != SL_WAL_FSYNC_NEVER && fdatasync(wal->fd) != 0) {
        sl_log(SL_LOG_ERROR, "wal %s: fsync of segment %" PRIu32 " failed: %s", wal->name,
               wal->cur_seq, strerror(errno));
        return SL_ERR_IO;
    }
    wal->dirty = false;
    if (wal->cur_seq == UINT32_MAX) {
        return SL_ERR_IO;
    }
    char errstr[256];
    uint32_t seq = wal->cur_seq + 1;
    if (seg_add(wal, seq) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    int rc = seg_open_write(wal, seq, true, errstr, sizeof(errstr));
    if (rc != SL_OK) {
        wal->nsegs--;
        sl_log(SL_LOG_ERROR, "wal %s: %s", wal->name, errstr);
    }
    return rc;
}

int sl_wal_append(sl_wal *wal, const sl_record *recs, size_t n, sl_wal_pos *end)
{
    pthread_mutex_lock(&wal->lock);
    size_t payload = 0;
    int rc = block_encode(wal, recs, n, &payload);
    size_t total = WAL_HEADER + payload;
    if (rc == SL_OK && wal->cur_size > 0 && wal->cur_size + total > wal->conf.segment_size) {
        rc = seg_roll(wal);
    }
    if (rc == SL_OK) {
        put_u32(wal->buf, (uint32_t)payload);
        put_u32(wal->buf + 4, block_crc(wal->buf, wal->buf + WAL_HEADER, payload));
        if (write_at(wal->fd, wal->buf, total, wal->cur_size) != 0) {
            sl_log(SL_LOG_ERROR, "wal %s: writing segment %" PRIu32 " failed: %s", wal->name,
                   wal->cur_seq, strerror(errno));
            if (ftruncate(wal->fd, (off_t)wal->cur_size) != 0) {
                sl_log(SL_LOG_ERROR, "wal %s: cannot cut segment %" PRIu32 " back: %s", wal->name,
                       wal->cur_seq, strerror(errno));
            }
            rc = SL_ERR_IO;
        }
    }
    if (rc == SL_OK) {
        wal->cur_size += total;
        wal->dirty = true;
        if (wal->conf.fsync == SL_WAL_FSYNC_ALWAYS) {
            if (fdatasync(wal->fd) != 0) {
                rc = SL_ERR_IO;
            } else {
                wal->dirty = false;
            }
        }
        if (end) {
            *end = SL_WAL_POS(wal->cur_seq, wal->cur_size);
        }
    }
    pthread_mutex_unlock(&wal->lock);
    return rc;
}

int sl_wal_sync(sl_wal *wal)
{
    /* The fsync runs on a duplicate of the descriptor, without the lock, so that appends go
     * on meanwhile; what was appended before the call is durable when it returns. */
    pthread_mutex_lock(&wal->lock);
    if (!wal->dirty || wal->conf.fsync == SL_WAL_FSYNC_NEVER) {
        pthread_mutex_unlock(&wal->lock);
        return SL_OK;
    }
    int fd = dup(wal->fd);
    if (fd < 0) {
        int rc = fdatasync(wal->fd) == 0 ? SL_OK : SL_ERR_IO;
        wal->dirty = rc != SL_OK;
        pthread_mutex_unlock(&wal->lock);
        return rc;
    }
    wal->dirty = false;
    pthread_mutex_unlock(&wal->lock);
    int rc = fdatasync(fd) == 0 ? SL_OK : SL_ERR_IO;
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "wal %s: fsync failed: %s", wal->name, strerror(errno));
        pthread_mutex_lock(&wal->lock);
        wal->dirty = true;
        pthread_mutex_unlock(&wal->lock);
    }
    close(fd);
    return rc;
}

sl_wal_pos sl_wal_end(sl_wal *wal)
{
    pthread_mutex_lock(&wal->lock);
    sl_wal_pos p = SL_WAL_POS(wal->cur_seq, wal->cur_size);
    pthread_mutex_unlock(&wal->lock);
    return p;
}

sl_wal_pos sl_wal_processed(sl_wal *wal)
{
    pthread_mutex_lock(&wal->lock);
    sl_wal_pos p = wal->processed;
    pthread_mutex_unlock(&wal->lock);
    return p;
}

/* ==== Replay ==== */

typedef struct decode_buf {
    sl_record *recs;
    sl_record_meta *metas;
    size_t cap;
    sl_header *hdrs; /* the headers of a block's records, in order */
    size_t nhdrs, caphdrs;
} decode_buf;

/* Decodes the headers of a record at *q (end: the payload's end) into d->hdrs; their count
 * in *count. Returns 0, -1 when malformed, -2 when out of memory. */
static int headers_decode(const unsigned char **q, const unsigned char *end, decode_buf *d,
                          uint32_t *count)
{
    const unsigned char *p = *q;
    if (end - p < 4) {
        return -1;
    }
    uint32_t n = get_u32(p);
    p += 4;
    if (n == 0 || (uint64_t)n * 9 > (uint64_t)(end - p)) {
        return -1; /* each header takes 9 bytes at least */
    }
    if (d->nhdrs + n > d->caphdrs) {
        size_t cap = d->caphdrs ? d->caphdrs : 64;
        while (cap < d->nhdrs + n) {
            cap *= 2;
        }
        sl_header *h = realloc(d->hdrs, cap * sizeof(*h));
        if (!h) {
            return -2;
        }
        d->hdrs = h;
        d->caphdrs = cap;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 8) {
            return -1;
        }
        uint32_t nlen = get_u32(p);
        uint32_t vlen = get_u32(p + 4);
        bool null = vlen == WAL_NULL_VALUE;
        uint64_t body = (uint64_t)nlen + (null ? 0 : vlen);
        p += 8;
        if (nlen == 0 || body > (uint64_t)(end - p) || p[nlen - 1] != '\0') {
            return -1;
        }
        sl_header *h = &d->hdrs[d->nhdrs + i];
        h->name = (const char *)p;
        p += nlen;
        h->value = null ? NULL : vlen ? (const char *)p : "";
        h->value_len = null ? 0 : vlen;
        p += null ? 0 : vlen;
    }
    d->nhdrs += n;
    *count = n;
    *q = p;
    return 0;
}

/* Decodes a payload into d. Returns the number of records, or -1 when it is malformed. */
static ssize_t block_decode(const unsigned char *p, size_t len, const char *source, decode_buf *d)
{
    if (len < 4) {
        return -1;
    }
    uint32_t n = get_u32(p);
    if ((uint64_t)n * WAL_REC_HEADER > len - 4) {
        return -1;
    }
    d->nhdrs = 0;
    if (d->cap < n) {
        sl_record *r = realloc(d->recs, n * sizeof(*r));
        if (r) {
            d->recs = r;
        }
        sl_record_meta *m = realloc(d->metas, n * sizeof(*m));
        if (m) {
            d->metas = m;
        }
        if (!r || !m) {
            return -2;
        }
        d->cap = n;
    }
    const unsigned char *q = p + 4, *end = p + len;
    for (uint32_t i = 0; i < n; i++) {
        if ((size_t)(end - q) < WAL_REC_HEADER) {
            return -1;
        }
        sl_record *r = &d->recs[i];
        memset(r, 0, sizeof(*r));
        r->key_len = get_u32(q);
        r->value_len = get_u32(q + 4);
        r->ts = (int64_t)get_u64(q + 8);
        r->num_type = q[16];
        /* Blocks written before headers were logged have 0 or 1 here: still read. */
        unsigned flags = q[17];
        bool has_meta = (flags & WAL_F_META) != 0;
        if (flags & ~(WAL_F_META | WAL_F_HEADERS) || (flags & WAL_F_HEADERS && !has_meta)) {
            return -1;
        }
        uint16_t tlen = get_u16(q + 18);
        int32_t partition = (int32_t)get_u32(q + 20);
        int64_t offset = (int64_t)get_u64(q + 24);
        uint64_t num = get_u64(q + 32);
        memcpy(&r->num, &num, sizeof(num));
        q += WAL_REC_HEADER;
        uint64_t body = (uint64_t)r->key_len + r->value_len + tlen;
        if (body > (uint64_t)(end - q) || r->num_type > SL_NUM_DOUBLE) {
            return -1;
        }
        r->key = (const char *)q;
        q += r->key_len;
        r->value = (const char *)q;
        q += r->value_len;
        if (has_meta) {
            sl_record_meta *m = &d->metas[i];
            m->source = source;
            m->topic = NULL;
            if (tlen > 0) {
                if (q[tlen - 1] != '\0') {
                    return -1;
                }
                m->topic = (const char *)q;
            }
            m->partition = partition;
            m->offset = offset;
            m->headers = NULL;
            m->nheaders = 0;
            r->meta = m;
        }
        q += tlen;
        if (flags & WAL_F_HEADERS) {
            int hrc = headers_decode(&q, end, d, &d->metas[i].nheaders);
            if (hrc < 0) {
                return hrc;
            }
        }
    }
    /* The header array is complete: point the metas into it, in order. */
    size_t at = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (d->recs[i].meta && d->metas[i].nheaders > 0) {
            d->metas[i].headers = &d->hdrs[at];
            at += d->metas[i].nheaders;
        }
    }
    return q == end ? (ssize_t)n : -1;
}

/* Replays the blocks of segment seq from off up to limit. */
static int seg_replay(sl_wal *wal, uint32_t seq, uint64_t off, uint64_t limit, sl_wal_replay_fn fn,
                      void *arg, uint64_t *blocks)
{
    char path[PATH_MAX];
    seg_path(wal, seq, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return SL_OK; /* deleted by a cleanup meanwhile */
        }
        sl_log(SL_LOG_ERROR, "wal %s: cannot open %s: %s", wal->name, path, strerror(errno));
        return SL_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return SL_ERR_IO;
    }
    limit = SL_MIN(limit, (uint64_t)st.st_size);
    unsigned char *buf = NULL;
    size_t cap = 0;
    decode_buf d = {0};
    int rc = SL_OK;
    while (off < limit && rc == SL_OK) {
        uint32_t len;
        const char *why = NULL;
        int r = block_read(fd, off, limit, &buf, &cap, &len, &why);
        ssize_t n = r == BLOCK_GOOD ? block_decode(buf, len, wal->name, &d) : 0;
        if (n == -2) {
            rc = SL_ERR_NOMEM;
            break;
        }
        if (r == BLOCK_GOOD && n < 0) {
            r = BLOCK_BAD;
            why = "malformed records";
        }
        if (r == BLOCK_BAD) {
            sl_log(SL_LOG_WARN,
                   "wal %s: %s: %s at offset %" PRIu64 "; the rest of the segment (%" PRIu64
                   " bytes) is skipped",
                   wal->name, path, why, off, limit - off);
            break;
        }
        if (r != BLOCK_GOOD) {
            rc = r == BLOCK_END ? SL_OK : r;
            break;
        }
        off += WAL_HEADER + len;
        rc = fn(arg, d.recs, (size_t)n, SL_WAL_POS(seq, off));
        if (blocks && rc == SL_OK) {
            (*blocks)++;
        }
    }
    free(buf);
    free(d.recs);
    free(d.metas);
    free(d.hdrs);
    close(fd);
    return rc;
}

int sl_wal_replay(sl_wal *wal, sl_wal_pos from, sl_wal_replay_fn fn, void *arg, uint64_t *blocks)
{
    if (blocks) {
        *blocks = 0;
    }
    pthread_mutex_lock(&wal->lock);
    uint32_t end_seq = wal->cur_seq;
    uint64_t end_off = wal->cur_size;
    size_t n = wal->nsegs;
    uint32_t *segs = malloc((n ? n : 1) * sizeof(*segs));
    if (segs && n > 0) {
        memcpy(segs, wal->segs, n * sizeof(*segs));
    }
    pthread_mutex_unlock(&wal->lock);
    if (!segs) {
        return SL_ERR_NOMEM;
    }
    int rc = SL_OK;
    for (size_t i = 0; i < n && rc == SL_OK; i++) {
        uint32_t seq = segs[i];
        if (seq < SL_WAL_POS_SEQ(from) || seq > end_seq) {
            continue;
        }
        uint64_t off = seq == SL_WAL_POS_SEQ(from) ? SL_WAL_POS_OFF(from) : 0;
        uint64_t limit = seq == end_seq ? end_off : UINT64_MAX;
        rc = seg_replay(wal, seq, off, limit, fn, arg, blocks);
    }
    free(segs);
    return rc;
}

/* ==== Processed marker and cleanup ==== */

int sl_wal_mark_processed(sl_wal *wal, sl_wal_pos pos)
{
    pthread_mutex_lock(&wal->lock);
    if (pos <= wal->processed) {
        pthread_mutex_unlock(&wal->lock);
        return SL_OK;
    }
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" WAL_MARKER, wal->dir);
    snprintf(tmp, sizeof(tmp), "%s/." WAL_MARKER ".tmp", wal->dir);
    int rc = SL_ERR_IO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd >= 0) {
        char text[32];
        int len = snprintf(text, sizeof(text), "%016" PRIx64 "\n", pos);
        bool ok = write_at(fd, text, (size_t)len, 0) == 0 &&
                  (wal->conf.fsync == SL_WAL_FSYNC_NEVER || fsync(fd) == 0);
        ok = close(fd) == 0 && ok;
        if (ok && rename(tmp, path) == 0) {
            if (wal->conf.fsync != SL_WAL_FSYNC_NEVER) {
                sl__fsync_dir(wal->dir);
            }
            wal->processed = pos;
            rc = SL_OK;
        }
    }
    if (rc != SL_OK) {
        sl_log(SL_LOG_ERROR, "wal %s: cannot write %s: %s", wal->name, path, strerror(errno));
    }
    pthread_mutex_unlock(&wal->lock);
    return rc;
}

int sl_wal_cleanup(sl_wal *wal)
{
    pthread_mutex_lock(&wal->lock);
    uint32_t pseq = SL_WAL_POS_SEQ(wal->processed);
    uint64_t poff = SL_WAL_POS_OFF(wal->processed);
    size_t keep = 0;
    int deleted = 0, rc = SL_OK;
    for (size_t i = 0; i < wal->nsegs; i++) {
        uint32_t seq = wal->segs[i];
        char path[PATH_MAX];
        seg_path(wal, seq, path, sizeof(path));
        bool done = false;
        if (seq != wal->cur_seq) {
            if (seq < pseq) {
                done = true;
            } else if (seq == pseq) {
                struct stat st;
                done = stat(path, &st) == 0 && poff >= (uint64_t)st.st_size;
            }
        }
        if (done && unlink(path) != 0 && errno != ENOENT) {
            sl_log(SL_LOG_ERROR, "wal %s: cannot delete %s: %s", wal->name, path, strerror(errno));
            rc = SL_ERR_IO;
            done = false;
        }
        if (done) {
            deleted++;
        } else {
            wal->segs[keep++] = seq;
        }
    }
    wal->nsegs = keep;
    pthread_mutex_unlock(&wal->lock);
    return rc != SL_OK ? rc : deleted;
}

size_t sl_wal_segments(sl_wal *wal)
{
    pthread_mutex_lock(&wal->lock);
    size_t n = wal->nsegs;
    pthread_mutex_unlock(&wal->lock);
    return n;
}

const char *sl_wal_dir(const sl_wal *wal)
{
    return wal->dir;
}

uint64_t sl_wal_bytes(sl_wal *wal)
{
    uint64_t total = 0;
    for (size_t i = 0; i < wal->nsegs; i++) {
        char path[4096];
        struct stat st;
        seg_path(wal, wal->segs[i], path, sizeof(path));
        if (stat(path, &st) == 0) {
            total += (uint64_t)st.st_size;
        }
    }
    return total;
}

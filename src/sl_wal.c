/* sl_wal.c -- the write-ahead log: opening it, reading and appending blocks (see sl_wal.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sl_wal_int.h"

/* ==== The log ==== */

/* The checksum of a block: its length bytes, then its payload. */
static uint32_t block_crc(const unsigned char *len_bytes, const void *payload, size_t len)
{
    return sl__crc32c(sl__crc32c(0, len_bytes, 4), payload, len);
}

void sl__wal_seg_path(const sl_wal *wal, uint32_t seq, char *path, size_t size)
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
        /* Only the names seg_path writes: ten digits and ".log" (not 1.log, +01.log...). */
        const char *nm = de->d_name;
        if (strlen(nm) != 14 || strspn(nm, "0123456789") != 10 || strcmp(nm + 10, ".log") != 0) {
            continue;
        }
        unsigned long long v = strtoull(nm, NULL, 10);
        if (v > 0 && v <= UINT32_MAX) {
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

int sl__wal_block_read(int fd, uint64_t off, uint64_t limit, unsigned char **buf, size_t *cap,
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
        rc = sl__wal_block_read(fd, off, size, &buf, &cap, &len, why);
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
    sl__wal_seg_path(wal, seq, path, sizeof(path));
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

sl_wal *sl__wal_open(const char *dir, const char *name, const sl_wal_conf *conf, char *errstr,
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
        sl__wal_close(wal);
        return NULL;
    }
    snprintf(wal->dir, len, "%s/wal/%s", dir, name);
    if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(errstr, errsize, "'%s' cannot name a write-ahead log directory", name);
        sl__wal_close(wal);
        return NULL;
    }
    if (sl__mkdirs(wal->dir, 0777) != 0) {
        snprintf(errstr, errsize, "cannot create %s: %s", wal->dir, strerror(errno));
        sl__wal_close(wal);
        return NULL;
    }
    if (seg_scan(wal, errstr, errsize) != SL_OK) {
        sl__wal_close(wal);
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
        sl__wal_close(wal);
        return NULL;
    }
    return wal;
}

void sl__wal_close(sl_wal *wal)
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
    sl__buf_free(&wal->buf);
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

/* Serializes recs into wal->buf after room for the block header; the payload length in
 * *payload. Returns SL_OK, SL_ERR_TOOBIG or SL_ERR_NOMEM. */
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
    /* The records are serialized in place, right after room for the block header. */
    size_t total = WAL_HEADER + (size_t)need;
    sl__buf_reset(&wal->buf);
    if (sl__buf_reserve(&wal->buf, total) != SL_OK) {
        return SL_ERR_NOMEM;
    }
    wal->buf.len = total;
    wal->buf.p[total] = '\0';
    unsigned char *p = (unsigned char *)wal->buf.p + WAL_HEADER;
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

int sl__wal_write_at(int fd, const void *buf, size_t n, uint64_t off)
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

int sl__wal_append(sl_wal *wal, const sl_record *recs, size_t n, sl_wal_pos *end)
{
    pthread_mutex_lock(&wal->lock);
    size_t payload = 0;
    int rc = block_encode(wal, recs, n, &payload);
    size_t total = WAL_HEADER + payload;
    if (rc == SL_OK && wal->cur_size > 0 && wal->cur_size + total > wal->conf.segment_size) {
        rc = seg_roll(wal);
    }
    if (rc == SL_OK) {
        unsigned char *blk = (unsigned char *)wal->buf.p;
        put_u32(blk, (uint32_t)payload);
        put_u32(blk + 4, block_crc(blk, blk + WAL_HEADER, payload));
        if (sl__wal_write_at(wal->fd, blk, total, wal->cur_size) != 0) {
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

int sl__wal_sync(sl_wal *wal)
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

sl_wal_pos sl__wal_end(sl_wal *wal)
{
    pthread_mutex_lock(&wal->lock);
    sl_wal_pos p = SL_WAL_POS(wal->cur_seq, wal->cur_size);
    pthread_mutex_unlock(&wal->lock);
    return p;
}

sl_wal_pos sl__wal_processed(sl_wal *wal)
{
    pthread_mutex_lock(&wal->lock);
    sl_wal_pos p = wal->processed;
    pthread_mutex_unlock(&wal->lock);
    return p;
}

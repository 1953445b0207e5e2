/* sl_wal_replay.c -- replaying the write-ahead log, its processed marker and cleanup. */
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
            m->window_ms = 0;
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
    sl__wal_seg_path(wal, seq, path, sizeof(path));
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
        int r = sl__wal_block_read(fd, off, limit, &buf, &cap, &len, &why);
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

int sl__wal_replay(sl_wal *wal, sl_wal_pos from, sl_wal_replay_fn fn, void *arg, uint64_t *blocks)
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

int sl__wal_mark_processed(sl_wal *wal, sl_wal_pos pos)
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
        bool ok = sl__wal_write_at(fd, text, (size_t)len, 0) == 0 &&
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

int sl__wal_cleanup(sl_wal *wal)
{
    pthread_mutex_lock(&wal->lock);
    uint32_t pseq = SL_WAL_POS_SEQ(wal->processed);
    uint64_t poff = SL_WAL_POS_OFF(wal->processed);
    size_t keep = 0;
    int deleted = 0, rc = SL_OK;
    for (size_t i = 0; i < wal->nsegs; i++) {
        uint32_t seq = wal->segs[i];
        char path[PATH_MAX];
        sl__wal_seg_path(wal, seq, path, sizeof(path));
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

size_t sl__wal_segments(sl_wal *wal)
{
    pthread_mutex_lock(&wal->lock);
    size_t n = wal->nsegs;
    pthread_mutex_unlock(&wal->lock);
    return n;
}

const char *sl__wal_dir(const sl_wal *wal)
{
    return wal->dir;
}

uint64_t sl__wal_bytes(sl_wal *wal)
{
    uint64_t total = 0;
    for (size_t i = 0; i < wal->nsegs; i++) {
        char path[4096];
        struct stat st;
        sl__wal_seg_path(wal, wal->segs[i], path, sizeof(path));
        if (stat(path, &st) == 0) {
            total += (uint64_t)st.st_size;
        }
    }
    return total;
}

/* fuzz_wal.c -- fuzzes the WAL reader: fuzzed blocks (framed with their length and CRC, or
 * raw) as a segment file, then open (torn-tail cut), replay and one append. */
#include "fuzz_util.h"
#include "sl_util.h"
#include "sl_wal.h"

static char wal_dir[256];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_init("wal");
    snprintf(wal_dir, sizeof(wal_dir), "%s/wal/src", fz_dir);
    return 0;
}

static int on_block(void *arg, const sl_record *recs, size_t n, sl_wal_pos end)
{
    size_t *sum = arg;
    for (size_t i = 0; i < n; i++) { /* touch every byte the reader hands out */
        for (uint32_t k = 0; k < recs[i].key_len; k++) {
            *sum += (unsigned char)recs[i].key[k];
        }
        for (uint32_t k = 0; k < recs[i].value_len; k++) {
            *sum += (unsigned char)recs[i].value[k];
        }
        const sl_record_meta *m = recs[i].meta;
        if (m) {
            *sum += m->topic ? strlen(m->topic) : 0;
            for (uint32_t h = 0; h < m->nheaders; h++) {
                *sum += strlen(m->headers[h].name) + m->headers[h].value_len;
                for (uint32_t k = 0; k < m->headers[h].value_len; k++) {
                    *sum += (unsigned char)m->headers[h].value[k];
                }
            }
        }
    }
    return SL_OK;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

/* The first byte: bit 0 writes the rest as the segment's raw bytes; otherwise the rest is
 * blocks of (u16 length, payload) written with a good header. Bit 1 adds a processed
 * marker holding the next 17 bytes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20) {
        return 0;
    }
    uint8_t mode = data[0];
    data++;
    size--;
    char path[400];
    snprintf(path, sizeof(path), "%s/wal", fz_dir);
    mkdir(path, 0700);
    mkdir(wal_dir, 0700);
    if (mode & 2) {
        size_t m = size < 17 ? size : 17;
        snprintf(path, sizeof(path), "%s/processed", wal_dir);
        fz_write(path, data, m);
        data += m;
        size -= m;
    }
    snprintf(path, sizeof(path), "%s/%010u.log", wal_dir, 1u);
    if (mode & 1) {
        fz_write(path, data, size);
    } else {
        unsigned char *seg = malloc(size / 2 * 8 + size + 8);
        size_t off = 0, n = 0;
        while (off + 2 <= size) {
            size_t len = data[off] | (size_t)data[off + 1] << 8;
            off += 2;
            len = len < size - off ? len : size - off;
            put32(seg + n, (uint32_t)len);
            put32(seg + n + 4, sl__crc32c(sl__crc32c(0, seg + n, 4), data + off, len));
            memcpy(seg + n + 8, data + off, len);
            n += 8 + len;
            off += len;
        }
        fz_write(path, seg, n);
        free(seg);
    }
    char err[256];
    sl_wal_conf conf = {.fsync = SL_WAL_FSYNC_NEVER};
    sl_wal *wal = sl__wal_open(fz_dir, "src", &conf, err, sizeof(err));
    if (wal) {
        size_t sum = 0;
        uint64_t blocks = 0;
        sl__wal_replay(wal, 0, on_block, &sum, &blocks);
        sl_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1};
        sl_wal_pos end;
        if (sl__wal_append(wal, &r, 1, &end) == SL_OK) {
            sl__wal_replay(wal, sl__wal_processed(wal), on_block, &sum, &blocks);
        }
        sl__wal_close(wal);
    }
    fz_rm_tree(wal_dir);
    return 0;
}

/* test_wal.c -- the write-ahead log: round trips, segments, torn and corrupt tails, the
 * processed marker and cleanup, reopening. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cu_main.h"
#include "sl_util.h"
#include "sl_wal.h"

/* ==== Helpers ==== */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmp_dir(void)
{
    char *d = strdup("/tmp/sluice-test-wal-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(d) != NULL);
    return d;
}

static sl_wal *wal_open(const char *dir, uint64_t segment_size)
{
    char err[256] = "";
    sl_wal_conf conf = {.fsync = SL_WAL_FSYNC_EXPLICIT, .segment_size = segment_size};
    sl_wal *wal = sl__wal_open(dir, "src", &conf, err, sizeof(err));
    if (!wal) {
        fprintf(stderr, "sl__wal_open: %s\n", err);
    }
    return wal;
}

/* Appends block number b: b + 1 records "b<b>-r<i>" with meta topic "t", partition b % 3 and
 * offset b * 100 + i. */
static sl_wal_pos append_block(sl_wal *wal, int b)
{
    sl_record recs[16];
    sl_record_meta metas[16];
    char bufs[16][32];
    int n = b % 15 + 1;
    for (int i = 0; i < n; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "b%d-r%d", b, i);
        metas[i] = (sl_record_meta){
            .source = "ignored", .topic = "t", .partition = b % 3, .offset = b * 100 + i};
        recs[i] = (sl_record){.key = i % 2 ? "k" : NULL,
                              .key_len = i % 2 ? 1 : 0,
                              .value = bufs[i],
                              .value_len = (uint32_t)strlen(bufs[i]),
                              .ts = 1000 + b,
                              .meta = i == 3 ? NULL : &metas[i]};
        if (i == 2) {
            sl_record_set_int(&recs[i], -42);
        } else if (i == 4) {
            sl_record_set_double(&recs[i], 2.5);
        }
    }
    sl_wal_pos end = 0;
    CU_ASSERT(sl__wal_append(wal, recs, (size_t)n, &end) == SL_OK);
    return end;
}

/* What replay saw: the block numbers in order, each block's records checked. */
typedef struct seen {
    int blocks[4096];
    sl_wal_pos ends[4096];
    int n;
    int bad;
} seen;

static int on_block(void *arg, const sl_record *recs, size_t n, sl_wal_pos end)
{
    seen *s = arg;
    int b = -1;
    if (n > 0 && sscanf(recs[0].value, "b%d-", &b) != 1) {
        s->bad++;
        return SL_OK;
    }
    if ((int)n != b % 15 + 1) {
        s->bad++;
    }
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "b%d-r%zu", b, i);
        const sl_record *r = &recs[i];
        bool ok = r->value_len == strlen(want) && memcmp(r->value, want, r->value_len) == 0 &&
                  r->ts == 1000 + b && r->key_len == (i % 2 ? 1u : 0u);
        if (i == 3) {
            ok = ok && r->meta == NULL;
        } else {
            ok = ok && r->meta && strcmp(r->meta->topic, "t") == 0 &&
                 strcmp(r->meta->source, "src") == 0 && r->meta->partition == b % 3 &&
                 r->meta->offset == b * 100 + (int64_t)i;
        }
        if (i == 2) {
            ok = ok && r->num_type == SL_NUM_INT && r->num.i == -42;
        } else if (i == 4) {
            ok = ok && r->num_type == SL_NUM_DOUBLE && r->num.d == 2.5;
        } else {
            ok = ok && r->num_type == SL_NUM_NONE;
        }
        if (!ok) {
            s->bad++;
        }
    }
    if (s->n < 4096) {
        s->ends[s->n] = end;
        s->blocks[s->n++] = b;
    }
    return SL_OK;
}

static seen *replay(sl_wal *wal, sl_wal_pos from)
{
    seen *s = calloc(1, sizeof(*s));
    uint64_t blocks = 0;
    CU_ASSERT(sl__wal_replay(wal, from, on_block, s, &blocks) == SL_OK);
    CU_ASSERT(blocks == (uint64_t)s->n);
    CU_ASSERT(s->bad == 0);
    return s;
}

static size_t count_files(const char *dir, const char *suffix)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/wal/src", dir);
    DIR *d = opendir(path);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        if (l > sl && strcmp(de->d_name + l - sl, suffix) == 0) {
            n++;
        }
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void seg_file(const char *dir, uint32_t seq, char *path, size_t size)
{
    snprintf(path, size, "%s/wal/src/%010u.log", dir, seq);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* ==== Kafka headers ==== */

/* What a replay of header records saw: copies of every record's headers, as text lines
 * "value|name=v,name=<null>,...". */
typedef struct hseen {
    char lines[8][8192];
    int n;
    uint32_t nheaders[8];
} hseen;

static int on_hblock(void *arg, const sl_record *recs, size_t n, sl_wal_pos end)
{
    (void)end;
    hseen *s = arg;
    for (size_t i = 0; i < n && s->n < 8; i++) {
        const sl_record *r = &recs[i];
        char *l = s->lines[s->n];
        size_t off = (size_t)snprintf(l, 8192, "%.*s|", (int)r->value_len, r->value);
        s->nheaders[s->n] = r->meta ? r->meta->nheaders : 0;
        for (uint32_t h = 0; r->meta && h < r->meta->nheaders && off < 8000; h++) {
            const sl_header *hd = &r->meta->headers[h];
            if (!hd->value) {
                off += (size_t)snprintf(l + off, 8192 - off, "%s=<null>,", hd->name);
            } else {
                off += (size_t)snprintf(l + off, 8192 - off, "%s=", hd->name);
                for (uint32_t k = 0; k < hd->value_len && off < 8000; k++) {
                    unsigned char c = (unsigned char)hd->value[k];
                    off += (size_t)snprintf(l + off, 8192 - off,
                                            c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
                }
                off += (size_t)snprintf(l + off, 8192 - off, ",");
            }
        }
        s->n++;
    }
    return SL_OK;
}

static void test_wal_headers_round_trip(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    static const sl_header h3[] = {
        {.name = "trace", .value = "t-1", .value_len = 3},
        {.name = "null", .value = NULL, .value_len = 0},
        {.name = "empty", .value = "", .value_len = 0},
        {.name = "bin", .value = "a\0b", .value_len = 3},
    };
    sl_header many[300];
    char names[300][8];
    for (int i = 0; i < 300; i++) {
        snprintf(names[i], sizeof(names[i]), "h%d", i);
        many[i] = (sl_header){.name = names[i], .value = names[i], .value_len = 1};
    }
    sl_record_meta m0 = {.topic = "t", .partition = 1, .offset = 10, .headers = h3, .nheaders = 4};
    sl_record_meta m1 = {.topic = "t", .partition = 1, .offset = 11}; /* none */
    sl_record_meta m3 = {
        .topic = "t", .partition = 2, .offset = 12, .headers = many, .nheaders = 300};
    sl_record recs[4] = {
        {.value = "r0", .value_len = 2, .meta = &m0},
        {.value = "r1", .value_len = 2, .meta = &m1},
        {.value = "r2", .value_len = 2, .meta = NULL},
        {.value = "r3", .value_len = 2, .meta = &m3},
    };
    CU_ASSERT(sl__wal_append(wal, recs, 4, NULL) == SL_OK);
    sl__wal_close(wal); /* the round trip goes through the disk and a new open */
    wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    hseen *s = calloc(1, sizeof(*s));
    CU_ASSERT(sl__wal_replay(wal, 0, on_hblock, s, NULL) == SL_OK);
    CU_ASSERT_EQUAL_FATAL(s->n, 4);
    CU_ASSERT_STRING_EQUAL(s->lines[0], "r0|trace=t-1,null=<null>,empty=,bin=a\\x00b,");
    CU_ASSERT_EQUAL(s->nheaders[0], 4);
    CU_ASSERT_STRING_EQUAL(s->lines[1], "r1|");
    CU_ASSERT_EQUAL(s->nheaders[1], 0);
    CU_ASSERT_STRING_EQUAL(s->lines[2], "r2|");
    CU_ASSERT_EQUAL(s->nheaders[3], 300);
    CU_ASSERT(strncmp(s->lines[3], "r3|h0=h,h1=h,h2=h,", 18) == 0);
    CU_ASSERT(strstr(s->lines[3], ",h299=h,") != NULL);
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

/* A record without headers is written exactly as before headers existed (so a log written
 * now without headers reads with an older sluice too), and a block written by an older
 * sluice (flags byte 1, nothing after the topic) reads as it did. */
static void test_wal_old_format_still_read(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    sl_record_meta m = {.topic = "tp", .partition = 5, .offset = 77};
    sl_record r = {.key = "k", .key_len = 1, .value = "val", .value_len = 3, .ts = 9, .meta = &m};
    CU_ASSERT(sl__wal_append(wal, &r, 1, NULL) == SL_OK);
    sl__wal_close(wal);
    char path[512];
    seg_file(dir, 1, path, sizeof(path));
    /* 8 block header + 4 count + 40 record header + key + value + "tp\0" */
    CU_ASSERT_EQUAL(file_size(path), 8 + 4 + 40 + 1 + 3 + 3);
    /* The same block by hand, as the old code wrote it, in a segment of its own. */
    unsigned char blk[8 + 4 + 40 + 1 + 3 + 3] = {0};
    unsigned char *p = blk + 8;
    p[0] = 1; /* one record */
    p += 4;
    p[0] = 1;   /* key length */
    p[4] = 3;   /* value length */
    p[8] = 9;   /* ts */
    p[17] = 1;  /* has a meta */
    p[18] = 3;  /* topic length with its NUL */
    p[20] = 5;  /* partition */
    p[24] = 77; /* offset */
    memcpy(p + 40,
           "kval"
           "tp",
           6);
    uint32_t len = sizeof(blk) - 8;
    for (int i = 0; i < 4; i++) {
        blk[i] = (unsigned char)(len >> (8 * i));
    }
    uint32_t crc = sl__crc32c(sl__crc32c(0, blk, 4), blk + 8, len);
    for (int i = 0; i < 4; i++) {
        blk[4 + i] = (unsigned char)(crc >> (8 * i));
    }
    unsigned char disk[sizeof(blk)];
    FILE *f = fopen(path, "rb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(fread(disk, 1, sizeof(disk), f), sizeof(disk));
    fclose(f);
    CU_ASSERT(memcmp(disk, blk, sizeof(blk)) == 0); /* byte for byte the old format */
    seg_file(dir, 2, path, sizeof(path));
    f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(fwrite(blk, 1, sizeof(blk), f), sizeof(blk));
    fclose(f);
    wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    hseen *s = calloc(1, sizeof(*s));
    uint64_t blocks = 0;
    CU_ASSERT(sl__wal_replay(wal, 0, on_hblock, s, &blocks) == SL_OK);
    CU_ASSERT_EQUAL(blocks, 2);
    CU_ASSERT_EQUAL(s->n, 2);
    CU_ASSERT_STRING_EQUAL(s->lines[1], "val|");
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

/* ==== Tests ==== */

static void test_crc32c_known_vectors(void)
{
    CU_ASSERT(sl__crc32c(0, "123456789", 9) == 0xE3069283u);
    CU_ASSERT(sl__crc32c(0, "", 0) == 0);
    /* Continuing a checksum equals one pass; unaligned starts give the same result. */
    char buf[1000];
    for (int i = 0; i < 1000; i++) {
        buf[i] = (char)(i * 7 + 3);
    }
    uint32_t whole = sl__crc32c(0, buf, sizeof(buf));
    CU_ASSERT(sl__crc32c(sl__crc32c(0, buf, 333), buf + 333, 667) == whole);
    char shifted[1001];
    memcpy(shifted + 1, buf, sizeof(buf));
    CU_ASSERT(sl__crc32c(0, shifted + 1, sizeof(buf)) == whole);
    /* 32 zero bytes: a published CRC-32C test vector (RFC 3720). */
    char zeros[32] = {0};
    CU_ASSERT(sl__crc32c(0, zeros, sizeof(zeros)) == 0x8A9136AAu);
}

/* Issue 15: a stray 1.log beside 0000000001.log was taken for segment 1 too, and its
 * blocks were replayed twice. Only the exact zero-padded names are segments. */
static void test_wal_stray_segment_names_ignored(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    for (int b = 0; b < 3; b++) {
        append_block(wal, b);
    }
    CU_ASSERT(sl__wal_sync(wal) == SL_OK);
    char seg[PATH_MAX], cmd[3 * PATH_MAX];
    snprintf(seg, sizeof(seg), "%s/0000000001.log", sl__wal_dir(wal));
    const char *strays[] = {"1.log", "01.log", "+0000000001.log", "00000000001.log"};
    for (size_t i = 0; i < sizeof(strays) / sizeof(strays[0]); i++) {
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s/%s'", seg, sl__wal_dir(wal), strays[i]);
        CU_ASSERT_EQUAL(system(cmd), 0);
    }
    sl__wal_close(wal);
    wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    CU_ASSERT_EQUAL(sl__wal_segments(wal), 1);
    seen *s = replay(wal, 0);
    CU_ASSERT_EQUAL(s->n, 3);
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

static void test_wal_round_trip(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    sl_wal_pos ends[20];
    for (int b = 0; b < 20; b++) {
        ends[b] = append_block(wal, b);
        CU_ASSERT(b == 0 || ends[b] > ends[b - 1]);
    }
    CU_ASSERT(sl__wal_sync(wal) == SL_OK);
    CU_ASSERT(sl__wal_end(wal) == ends[19]);
    seen *s = replay(wal, 0);
    CU_ASSERT(s->n == 20);
    for (int b = 0; b < 20 && b < s->n; b++) {
        CU_ASSERT(s->blocks[b] == b);
        CU_ASSERT(s->ends[b] == ends[b]);
    }
    free(s);
    /* From a block's end position: the blocks after it only. */
    s = replay(wal, ends[9]);
    CU_ASSERT(s->n == 10);
    CU_ASSERT(s->n > 0 && s->blocks[0] == 10);
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

static void test_wal_empty_records_and_block(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    sl_record r = {.value = "", .value_len = 0};
    sl_wal_pos end;
    CU_ASSERT(sl__wal_append(wal, &r, 1, &end) == SL_OK);
    CU_ASSERT(sl__wal_append(wal, NULL, 0, &end) == SL_OK);
    uint64_t blocks = 0;
    seen *s = calloc(1, sizeof(*s));
    CU_ASSERT(sl__wal_replay(wal, 0, on_block, s, &blocks) == SL_OK);
    CU_ASSERT(blocks == 2);
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

static void test_wal_many_segments(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 1024);
    CU_ASSERT_FATAL(wal != NULL);
    for (int b = 0; b < 300; b++) {
        append_block(wal, b);
    }
    CU_ASSERT(sl__wal_segments(wal) > 20);
    CU_ASSERT(count_files(dir, ".log") == sl__wal_segments(wal));
    seen *s = replay(wal, 0);
    CU_ASSERT(s->n == 300);
    for (int b = 0; b < s->n; b++) {
        CU_ASSERT(s->blocks[b] == b);
    }
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

static void test_wal_torn_tail_is_cut_at_open(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    sl_wal_pos ends[5];
    for (int b = 0; b < 5; b++) {
        ends[b] = append_block(wal, b);
    }
    sl__wal_close(wal);
    /* A crash in the middle of the last write: part of block 4 is missing. */
    char path[512];
    seg_file(dir, 1, path, sizeof(path));
    CU_ASSERT(truncate(path, file_size(path) - 5) == 0);

    /* Replay stops cleanly before the torn block... */
    wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    CU_ASSERT(sl__wal_end(wal) == ends[3]);
    CU_ASSERT(file_size(path) == (off_t)SL_WAL_POS_OFF(ends[3]));
    seen *s = replay(wal, 0);
    CU_ASSERT(s->n == 4);
    free(s);
    /* ... and a new block follows the last good one, readable after it. */
    append_block(wal, 5);
    s = replay(wal, 0);
    CU_ASSERT(s->n == 5);
    CU_ASSERT(s->n == 5 && s->blocks[3] == 3 && s->blocks[4] == 5);
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

static void test_wal_torn_header_only(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    sl_wal_pos end = append_block(wal, 1);
    sl__wal_close(wal);
    char path[512];
    seg_file(dir, 1, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_APPEND);
    CU_ASSERT(write(fd, "\x10\x00\x00", 3) == 3); /* 3 bytes of a header */
    close(fd);
    wal = wal_open(dir, 0);
    CU_ASSERT_FATAL(wal != NULL);
    CU_ASSERT(sl__wal_end(wal) == end);
    seen *s = replay(wal, 0);
    CU_ASSERT(s->n == 1);
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

static void test_wal_flipped_byte_ends_segment(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 4096);
    CU_ASSERT_FATAL(wal != NULL);
    sl_wal_pos ends[40];
    for (int b = 0; b < 40; b++) {
        ends[b] = append_block(wal, b);
    }
    CU_ASSERT_FATAL(SL_WAL_POS_SEQ(ends[39]) >= 3);
    /* Flip one payload byte of the third block of segment 1. */
    int third = 2;
    CU_ASSERT_FATAL(SL_WAL_POS_SEQ(ends[third]) == 1);
    char path[512];
    seg_file(dir, 1, path, sizeof(path));
    off_t at = (off_t)SL_WAL_POS_OFF(ends[third - 1]) + 8 + 20;
    int fd = open(path, O_RDWR);
    char c;
    CU_ASSERT(pread(fd, &c, 1, at) == 1);
    c ^= 0x40;
    CU_ASSERT(pwrite(fd, &c, 1, at) == 1);
    close(fd);

    /* Blocks 0 and 1, then nothing more of segment 1, then every block of the others. */
    seen *s = replay(wal, 0);
    int first_of_2 = 0;
    while (SL_WAL_POS_SEQ(ends[first_of_2]) == 1) {
        first_of_2++;
    }
    CU_ASSERT(s->n == 2 + (40 - first_of_2));
    CU_ASSERT(s->n > 2 && s->blocks[0] == 0 && s->blocks[1] == 1 && s->blocks[2] == first_of_2);
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

static void test_wal_cleanup_deletes_only_processed_segments(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 1024);
    CU_ASSERT_FATAL(wal != NULL);
    sl_wal_pos ends[100];
    for (int b = 0; b < 100; b++) {
        ends[b] = append_block(wal, b);
    }
    size_t before = sl__wal_segments(wal);
    uint64_t bytes_before = sl__wal_bytes(wal);
    CU_ASSERT(sl__wal_cleanup(wal) == 0); /* nothing processed yet */
    CU_ASSERT(sl__wal_segments(wal) == before);
    CU_ASSERT(bytes_before > 0);

    /* Blocks 0..59 processed: segments before block 60's one go, block 60's stays. */
    CU_ASSERT(sl__wal_mark_processed(wal, ends[59]) == SL_OK);
    CU_ASSERT(sl__wal_processed(wal) == ends[59]);
    int deleted = sl__wal_cleanup(wal);
    CU_ASSERT(deleted > 0);
    CU_ASSERT(sl__wal_segments(wal) == before - (size_t)deleted);
    CU_ASSERT(count_files(dir, ".log") == sl__wal_segments(wal));
    CU_ASSERT(sl__wal_bytes(wal) < bytes_before); /* what /metrics shows shrinks */
    char path[512];
    uint32_t seq60 = SL_WAL_POS_SEQ(ends[60]);
    if (SL_WAL_POS_OFF(ends[59]) < (uint32_t)SL_WAL_POS_OFF(ends[60]) &&
        SL_WAL_POS_SEQ(ends[59]) == seq60) {
        seg_file(dir, seq60, path, sizeof(path));
        CU_ASSERT(file_size(path) > 0);
    }
    seg_file(dir, seq60 - 1, path, sizeof(path));
    CU_ASSERT(file_size(path) < 0 || SL_WAL_POS_SEQ(ends[59]) == seq60 - 1);
    /* What is left replays from the marker: exactly blocks 60..99. */
    seen *s = replay(wal, sl__wal_processed(wal));
    CU_ASSERT(s->n == 40);
    CU_ASSERT(s->n > 0 && s->blocks[0] == 60);
    free(s);
    /* A marker that goes backwards is ignored. */
    CU_ASSERT(sl__wal_mark_processed(wal, ends[10]) == SL_OK);
    CU_ASSERT(sl__wal_processed(wal) == ends[59]);
    /* Everything processed: only the segment being written stays. */
    CU_ASSERT(sl__wal_mark_processed(wal, ends[99]) == SL_OK);
    CU_ASSERT(sl__wal_cleanup(wal) > 0);
    CU_ASSERT(sl__wal_segments(wal) == 1);
    s = replay(wal, sl__wal_processed(wal));
    CU_ASSERT(s->n == 0);
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

static void test_wal_reopen_continues_after_last_block(void)
{
    char *dir = tmp_dir();
    sl_wal *wal = wal_open(dir, 2048);
    CU_ASSERT_FATAL(wal != NULL);
    sl_wal_pos last = 0, mark = 0;
    for (int b = 0; b < 30; b++) {
        last = append_block(wal, b);
        if (b == 11) {
            mark = last;
        }
    }
    CU_ASSERT(sl__wal_mark_processed(wal, mark) == SL_OK);
    CU_ASSERT(sl__wal_sync(wal) == SL_OK);
    sl__wal_close(wal);

    wal = wal_open(dir, 2048);
    CU_ASSERT_FATAL(wal != NULL);
    CU_ASSERT(sl__wal_end(wal) == last);
    CU_ASSERT(sl__wal_processed(wal) == mark);
    sl_wal_pos next = append_block(wal, 30);
    CU_ASSERT(next > last);
    seen *s = replay(wal, sl__wal_processed(wal));
    CU_ASSERT(s->n == 19);
    for (int i = 0; i < s->n; i++) {
        CU_ASSERT(s->blocks[i] == 12 + i);
    }
    free(s);
    sl__wal_close(wal);
    rm_rf(dir);
    free(dir);
}

static void test_wal_bad_name_is_an_error(void)
{
    char err[256] = "";
    char *dir = tmp_dir();
    CU_ASSERT(sl__wal_open(dir, "../x", NULL, err, sizeof(err)) == NULL);
    CU_ASSERT(strstr(err, "../x") != NULL);
    CU_ASSERT(sl__wal_open("/proc/nonexistent-dir-for-wal", "a", NULL, err, sizeof(err)) == NULL);
    CU_ASSERT(strstr(err, "cannot create") != NULL);
    rm_rf(dir);
    free(dir);
}

void sl_test_register(void)
{
    SL_SUITE("wal", SL_TEST(crc32c_known_vectors), SL_TEST(wal_round_trip),
             SL_TEST(wal_empty_records_and_block), SL_TEST(wal_many_segments),
             SL_TEST(wal_torn_tail_is_cut_at_open), SL_TEST(wal_torn_header_only),
             SL_TEST(wal_flipped_byte_ends_segment),
             SL_TEST(wal_cleanup_deletes_only_processed_segments),
             SL_TEST(wal_reopen_continues_after_last_block), SL_TEST(wal_bad_name_is_an_error),
             SL_TEST(wal_headers_round_trip), SL_TEST(wal_old_format_still_read),
             SL_TEST(wal_stray_segment_names_ignored));
}

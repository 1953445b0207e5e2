/* corpus_gen.c -- writes the binary seed files of tests/fuzz/corpus (wal, checkpoint, state,
 * framed) with the library's own writers, in the input formats of the fuzz targets. Run
 * once by hand when a format changes: build-fuzz/corpus_gen tests/fuzz/corpus */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sl_checkpoint.h"
#include "sl_framed.h"
#include "sl_util.h"
#include "sl_wal.h"

static const char *out;
static char tmp[64];

static void put(const char *target, const char *name, const void *p, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", out, target);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", out, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    char *p = malloc(*len + 1);
    if (fread(p, 1, *len, f) != *len) {
        exit(1);
    }
    fclose(f);
    return p;
}

/* A segment of three blocks (plain records, meta, headers); fuzz_wal's inputs: mode 1 and
 * the raw segment, mode 0 and the blocks as (u16 length, payload). */
static void wal_seeds(void)
{
    sl_wal_conf conf = {.fsync = SL_WAL_FSYNC_NEVER};
    char err[256];
    sl_wal *wal = sl__wal_open(tmp, "src", &conf, err, sizeof(err));
    if (!wal) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    sl_header hdrs[2] = {{.name = "h", .value = "1", .value_len = 1}, {.name = "n"}};
    sl_record_meta meta = {.source = "s", .topic = "t", .partition = 1, .offset = 42};
    sl_record_meta hmeta = meta;
    hmeta.headers = hdrs;
    hmeta.nheaders = 2;
    sl_record recs[3] = {{.key = "k", .key_len = 1, .value = "hello", .value_len = 5, .ts = 9},
                         {.value = "x", .value_len = 1, .meta = &meta},
                         {.key = "", .value = "", .meta = &hmeta}};
    sl_record_set_int(&recs[1], -7);
    sl_record_set_double(&recs[2], 2.5);
    sl__wal_append(wal, recs, 1, NULL);
    sl__wal_append(wal, recs + 1, 1, NULL);
    sl__wal_append(wal, recs, 3, NULL);
    char path[512];
    snprintf(path, sizeof(path), "%s/0000000001.log", sl__wal_dir(wal));
    sl__wal_close(wal);
    size_t len;
    char *seg = slurp(path, &len);
    char *raw = malloc(len + 1), *blocks = malloc(len + 1);
    raw[0] = 1;
    memcpy(raw + 1, seg, len);
    put("wal", "raw-segment", raw, len + 1);
    size_t n = 1;
    blocks[0] = 0;
    for (size_t off = 0; off + 8 <= len;) {
        uint32_t bl = (unsigned char)seg[off] | (unsigned char)seg[off + 1] << 8 |
                      (uint32_t)(unsigned char)seg[off + 2] << 16;
        blocks[n++] = (char)(bl & 0xff);
        blocks[n++] = (char)(bl >> 8);
        memcpy(blocks + n, seg + off + 8, bl);
        n += bl;
        off += 8 + bl;
    }
    put("wal", "blocks", blocks, n);
    free(seg);
    free(raw);
    free(blocks);
}

/* A checkpoint with pending batches, positions and state files, for fuzz_checkpoint's
 * graph; the input is mode 0 and the JSON body. */
static void checkpoint_seeds(void)
{
    static const char *const names[] = {"in", "other"};
    char err[512];
    sl_checkpoint *ck =
        sl__ckpt_new(tmp, "source in (generate)\nstream counts: reduce_by_key(in)\n", 1000, 2,
                     names, err, sizeof(err));
    if (!ck) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    const char *defs[2] = {"{\"p0\":[0,10]}", NULL};
    ck->zero_time = 1000000;
    ck->keep_done = true;
    sl__ckpt_generated(ck, 1001000, defs);
    sl__ckpt_completed(ck, 1001000);
    sl__ckpt_generated(ck, 1002000, defs);
    sl_ckpt_state_file f[2] = {{.node = 1, .time = 1001000, .file = "n1-1001000.tab"},
                               {.node = 3, .time = 1000000, .file = "n3-b1000000.ds"}};
    sl__ckpt_set_state(ck, 1001000, f, 2);
    sl__ckpt_completed(ck, 1002000);
    char path[512];
    snprintf(path, sizeof(path), "%s/checkpoint-%010llu.json", ck->dir,
             (unsigned long long)(ck->seq - 1));
    sl__ckpt_destroy(ck);
    size_t len, blen;
    char why[256];
    char *body = sl__framed_read(path, "SLUICE-CHECKPOINT", 1, 1 << 20, "checkpoint", &blen, why,
                                 sizeof(why));
    char *file = slurp(path, &len);
    if (!body) {
        fprintf(stderr, "%s\n", why);
        exit(1);
    }
    char *in = malloc(blen + len + 1);
    in[0] = 0;
    memcpy(in + 1, body, blen);
    put("checkpoint", "body", in, blen + 1);
    in[0] = 1;
    memcpy(in + 1, file, len);
    put("checkpoint", "file", in, len + 1);
    put("framed", "checkpoint", file, len);
    free(in);
    free(body);
    free(file);
}

static void w32(sl_buf *b, uint32_t v)
{
    sl__buf_append(b, &v, 4);
}

static void w64(sl_buf *b, uint64_t v)
{
    sl__buf_append(b, &v, 8);
}

static void wrec(sl_buf *b, const char *k, const char *v, uint32_t type, uint64_t num)
{
    w32(b, (uint32_t)strlen(k));
    w32(b, (uint32_t)strlen(v));
    w32(b, type);
    w64(b, num);
    w64(b, 1000000);
    sl__buf_append(b, k, strlen(k));
    sl__buf_append(b, v, strlen(v));
}

/* fuzz_state's inputs: stream selector, kind, then the content after the state file's
 * (stream, kind, time) header: partitions, each with its records. */
static void state_seeds(void)
{
    for (int kind = 1; kind <= 2; kind++) {
        sl_buf b = {0};
        sl__buf_append(&b, kind == 1 ? "\0\0" : "\2\1", 2);
        w64(&b, 2);
        w64(&b, 2);
        wrec(&b, "apple", "", 1, 3);
        wrec(&b, "pear", "state bytes", 0, 0);
        w64(&b, 1);
        double d = 2.5;
        uint64_t u;
        memcpy(&u, &d, 8);
        wrec(&b, "plum", "", 2, u);
        put("state", kind == 1 ? "table" : "dataset", b.p, b.len);
        sl__buf_free(&b);
    }
    /* The framed reader's seeds: a good file, and the headers that must be refused. */
    sl__framed_write(tmp, "f", "SLUICE-STATE", 1, "body", 4, false, NULL);
    char path[512];
    snprintf(path, sizeof(path), "%s/f", tmp);
    size_t len;
    char *file = slurp(path, &len);
    put("framed", "good", file, len);
    free(file);
    const char *huge = "SLUICE-STATE 1 00000000 18446744073709551615\nabc";
    put("framed", "huge-length", huge, strlen(huge));
    const char *neg = "SLUICE-STATE 1 00000000 -1\n";
    put("framed", "negative-length", neg, strlen(neg));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: corpus_gen DIR (tests/fuzz/corpus)\n");
        return 2;
    }
    out = argv[1];
    sl_set_log_level(SL_LOG_ERROR);
    snprintf(tmp, sizeof(tmp), "/tmp/sluice-corpus-gen-XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    wal_seeds();
    checkpoint_seeds();
    state_seeds();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : 1;
}

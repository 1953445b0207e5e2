/* sl_framed.c -- framed files: header line, CRC-32C and length, atomic write (see sl_framed.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sl_framed.h"
#include "sl_util.h"
#include "sl_wal.h"

#define HEADER_MAX 128 /* a header line longer than this is not one */

/* Writes all n bytes of p, retrying short writes. 0 or -1 with errno set. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            if (w == 0) {
                errno = EIO;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int sl__framed_write(const char *dir, const char *name, const char *magic, unsigned version,
                     const void *body, size_t len, bool sync_dir, size_t *written)
{
    char header[HEADER_MAX], tmp[4200], final[4200];
    int hlen = snprintf(header, sizeof(header), "%s %u %08x %zu\n", magic, version,
                        sl__crc32c(0, body, len), len);
    if (hlen < 0 || (size_t)hlen >= sizeof(header)) {
        errno = EINVAL;
        return SL_ERR_IO;
    }
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    snprintf(final, sizeof(final), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd >= 0 ? SL_OK : SL_ERR_IO;
    if (rc == SL_OK && (write_all(fd, header, (size_t)hlen) != 0 || write_all(fd, body, len) != 0 ||
                        fsync(fd) != 0)) {
        rc = SL_ERR_IO;
    }
    int e = errno;
    if (fd >= 0) {
        close(fd);
    }
    if (rc == SL_OK && (rename(tmp, final) != 0 || (sync_dir && sl__fsync_dir(dir) != 0))) {
        rc = SL_ERR_IO;
        e = errno;
    }
    if (rc != SL_OK) {
        unlink(tmp);
        errno = e;
        return rc;
    }
    if (written) {
        *written = (size_t)hlen + len;
    }
    return SL_OK;
}

/* Parses "<magic> <version> <crc> <len>\n" strictly. */
static bool parse_header(const char *h, const char *magic, unsigned version, uint32_t *crc,
                         size_t *len)
{
    size_t m = strlen(magic);
    if (strncmp(h, magic, m) != 0 || h[m] != ' ') {
        return false;
    }
    const char *p = h + m + 1;
    char *end;
    errno = 0;
    unsigned long v = strtoul(p, &end, 10);
    if (end == p || *end != ' ' || v != version) {
        return false;
    }
    p = end + 1;
    if (strspn(p, "0123456789abcdefABCDEF") != 8 || p[8] != ' ') {
        return false;
    }
    *crc = (uint32_t)strtoul(p, NULL, 16);
    p += 9;
    if (*p < '0' || *p > '9') { /* no sign, no space: strtoull would take "-1" */
        return false;
    }
    unsigned long long n = strtoull(p, &end, 10);
    if (errno == ERANGE || *end != '\n' || end[1] != '\0' || n > SIZE_MAX - 1) {
        return false;
    }
    *len = (size_t)n;
    return true;
}

char *sl__framed_read(const char *path, const char *magic, unsigned version, size_t max_len,
                      const char *what, size_t *len, char *why, size_t whysize)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whysize, "%s", strerror(errno));
        return NULL;
    }
    char header[HEADER_MAX];
    uint32_t crc = 0;
    size_t n = 0;
    struct stat st;
    char *buf = NULL;
    if (!fgets(header, sizeof(header), f) || !parse_header(header, magic, version, &crc, &n)) {
        snprintf(why, whysize, "not a %s file (bad header)", what);
    } else if (n > max_len) {
        snprintf(why, whysize, "bad header: a length of %zu bytes, over the limit of %zu", n,
                 max_len);
    } else if (fstat(fileno(f), &st) == 0 && (uint64_t)st.st_size - strlen(header) < n) {
        snprintf(why, whysize, "truncated: %zu of %zu bytes",
                 (size_t)((uint64_t)st.st_size - strlen(header)), n);
    } else if (!(buf = malloc(n + 1))) {
        snprintf(why, whysize, "out of memory");
    } else {
        size_t got = fread(buf, 1, n, f);
        if (got != n) {
            snprintf(why, whysize, "truncated: %zu of %zu bytes", got, n);
        } else if (sl__crc32c(0, buf, n) != crc) {
            snprintf(why, whysize, "checksum mismatch: the file is corrupt");
        } else {
            buf[n] = '\0';
            *len = n;
            fclose(f);
            return buf;
        }
        free(buf);
    }
    fclose(f);
    return NULL;
}

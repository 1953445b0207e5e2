/* sl_framed.h -- framed files: one header line, a CRC-32C and a length over a body,
 * written atomically; the checkpoint metadata and the state files are framed files.
 *
 * A framed file is
 *     <MAGIC> <version> <crc32c of the body, 8 hex digits> <length of the body>\n<body>
 * written to a temporary file (.<name>.tmp in the same directory), fsynced and renamed, so
 * that a reader sees the old file or the new one, never a torn one; a file that is torn or
 * corrupt anyway (a disk error, a copy cut short) fails the length or CRC check. */
#ifndef SL_FRAMED_H
#define SL_FRAMED_H

#include <stdbool.h>
#include <stddef.h>

/* Writes dir/name as a framed file of len bytes of body: the temporary file, fsync, rename,
 * and with sync_dir an fsync of dir (else the caller fsyncs dir once after several files).
 * *written (may be NULL) gets the file's size. Returns SL_OK, or SL_ERR_IO with errno set
 * to the cause (the temporary file is removed); logs nothing. @locality any thread */
int sl__framed_write(const char *dir, const char *name, const char *magic, unsigned version,
                     const void *body, size_t len, bool sync_dir, size_t *written);

/* Reads and checks the framed file at path: its header must be magic and version, its
 * length at most max_len and at most what the file holds (checked before anything is
 * allocated), the CRC-32C of the body must match. Returns the body, NUL-terminated (the
 * caller frees it), with *len its length; or NULL with why saying what is wrong (what names
 * the kind of file in the message for a bad header: "not a <what> file (bad header)").
 * @locality any thread */
char *sl__framed_read(const char *path, const char *magic, unsigned version, size_t max_len,
                      const char *what, size_t *len, char *why, size_t whysize);

#endif

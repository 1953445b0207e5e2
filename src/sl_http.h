/* sl_http.h -- internals of the HTTP status server (sl_http.c): listen addresses, the
 * embedded page, and the YAML front end's access to the `http:` section. The public API is
 * in sluice.h ("HTTP status server"). */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "sluice.h"

#define SL_HTTP_DEFAULT_LISTEN "127.0.0.1:4040"
#define SL_HTTP_MAX_URL        4096 /* longer request targets get 414 */

/* ==== Listen addresses ==== */

/* Splits "HOST:PORT", "[V6]:PORT" into host (without brackets) and port (0..65535).
 * Returns SL_OK or SL_ERR_INVAL with errstr set. */
int sl__http_parse_listen(const char *listen, char *host, size_t hostsize, int *port, char *errstr,
                          size_t errsize);
/* Checks that listen can be served under conf's rules: it parses, the host resolves, and
 * a non-loopback address has a token or allow_remote. Returns SL_OK or SL_ERR_INVAL with
 * errstr set (the message never holds the token). */
int sl__http_check_listen(const char *listen, bool has_token, bool allow_remote, char *errstr,
                          size_t errsize);

/* ==== The embedded page (generated from src/ui/ at build time) ==== */

typedef struct sl_ui_file {
    const char *name; /* file name in src/ui/, e.g. "index.html" */
    const unsigned char *data;
    size_t len;
} sl_ui_file;

/* Every file of src/ui/ that is served, ending with an entry whose name is NULL. */
extern const sl_ui_file sl__ui_files[];

/* ==== The YAML front end ====
 * Defined in sl_config.c (declared here because sl_config.h belongs to the config module's
 * owner; it may move there). */

typedef struct sl_config sl_config;

/* Fills conf from the config's `http:` section (strings point into cfg, which must
 * outlive their use). Returns true when the section is present and enabled; *present
 * tells whether there was a section at all (demo serves by default without one). */
bool sl__config_http(const sl_config *cfg, sl_http_conf *conf, bool *present);

#endif /* SL_HTTP_H */

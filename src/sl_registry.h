/* sl_registry.h -- the connectors built in (generated/sl_registry.c, made by CMake from the
 * connector folders), and the engine's helpers for the convenience constructors that
 * connectors define in their own folders (sl_socket_text_stream in connectors/tcp, ...). */
#ifndef SL_REGISTRY_H
#define SL_REGISTRY_H

#include "sl_connector.h"

/* Every connector built in, sources first, NULL-terminated. */
extern const sl_connector *const sl__registry[];

/* A source of conn named "<prefix>-<n>" with one or two options (k2 may be NULL); errors
 * are logged. The stream, or NULL. */
sl_stream *sl__simple_source(sl_context *ctx, const sl_connector *conn, const char *prefix,
                             const char *k1, const char *v1, const char *k2, const char *v2);
/* The same for a sink of conn fed by s (k2 or v2 NULL: one option). SL_OK or an error. */
int sl__simple_sink(sl_stream *s, const sl_connector *conn, const char *prefix, const char *k1,
                    const char *v1, const char *k2, const char *v2);

#endif /* SL_REGISTRY_H */

/* sl_connector.c -- the registry of connectors and its lookup functions. */
#include <string.h>

#include "sl_connector.h"

extern const sl_connector sl__connector_tcp;
extern const sl_connector sl__connector_file_source;
extern const sl_connector sl__connector_file_sink;
extern const sl_connector sl__connector_stdout;
extern const sl_connector sl__connector_generate;
#ifdef SLUICE_WITH_KAFKA
extern const sl_connector sl__connector_kafka_source;
extern const sl_connector sl__connector_kafka_sink;
#endif
#ifdef SLUICE_WITH_POSTGRES
extern const sl_connector sl__connector_postgres;
#endif
#ifdef SLUICE_WITH_REDIS
extern const sl_connector sl__connector_redis;
#endif

/* Every connector, NULL-terminated. */
static const sl_connector *const registry[] = {
    &sl__connector_tcp,
    &sl__connector_file_source,
    &sl__connector_generate,
#ifdef SLUICE_WITH_KAFKA
    &sl__connector_kafka_source,
#endif
    &sl__connector_stdout,
    &sl__connector_file_sink,
#ifdef SLUICE_WITH_KAFKA
    &sl__connector_kafka_sink,
#endif
#ifdef SLUICE_WITH_POSTGRES
    &sl__connector_postgres,
#endif
#ifdef SLUICE_WITH_REDIS
    &sl__connector_redis,
#endif
    NULL,
};

const sl_connector *sl_connector_find(const char *name, unsigned role)
{
    for (size_t i = 0; registry[i]; i++) {
        const sl_connector *c = registry[i];
        if ((c->flags & role) && strcmp(c->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}

const sl_connector *sl_connector_at(size_t i)
{
    size_t n = sizeof(registry) / sizeof(registry[0]) - 1;
    return i < n ? registry[i] : NULL;
}

const char *sl_connector_name(const sl_connector *c)
{
    return c->name;
}

const char *sl_connector_description(const sl_connector *c)
{
    return c->description;
}

unsigned sl_connector_flags(const sl_connector *c)
{
    return c->flags;
}

const sl_option *sl_connector_options(const sl_connector *c)
{
    return c->options;
}

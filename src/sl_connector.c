/* sl_connector.c -- the registry of connectors and its lookup functions. */
#include <string.h>

#include "sl_registry.h"

const sl_connector *sl_connector_find(const char *name, unsigned role)
{
    for (size_t i = 0; sl__registry[i]; i++) {
        const sl_connector *c = sl__registry[i];
        if ((c->flags & role) && strcmp(c->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}

const sl_connector *sl_connector_at(size_t i)
{
    for (size_t k = 0; k < i; k++) {
        if (!sl__registry[k]) {
            return NULL;
        }
    }
    return sl__registry[i];
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

/* sl_cfg_app.c -- the app: and http: sections, read through option tables. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sl_cfg.h"
#include "sl_http.h"

/* A flag of these tables only (the loader's, beside SL_OPT_*): a number must be > 0. */
#define CFG_OPT_POSITIVE 0x8000u

#define CFG_ENUM_MAX 16

/* ==== The tables ====
 * Offsets are into sl_config. Each value is stored as the loader reads it: STR a strdup'ed
 * char * (sl__config_destroy frees it), BOOL a bool, INT and DURATION an int64_t, DOUBLE a
 * double, ENUM an int (the index of the choice). Options without a default keep the value
 * the struct holds (the backpressure defaults are the engine's, sl_backpressure_defaults).
 * Enumerations: app.log_level, app.log_format. */

static const sl_option cfg_app_options[] = {
    {.name = "name",
     .type = SL_OPT_STR,
     .def = "sluice",
     .offset = offsetof(sl_config, name),
     .doc = "application name"},
    {.name = "batch_interval",
     .type = SL_OPT_DURATION,
     .min = CFG_MIN_BATCH_MS,
     .max = 9.2e15,
     .flags = SL_OPT_REQUIRED | SL_OPT_RANGE,
     .offset = offsetof(sl_config, batch_ms),
     .doc = "a batch every this often"},
    {.name = "workers",
     .type = SL_OPT_INT,
     .min = 1,
     .max = CFG_MAX_WORKERS,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_config, workers),
     .doc = "worker threads (default: the number of cores)"},
    {.name = "checkpoint_dir",
     .type = SL_OPT_STR,
     .offset = offsetof(sl_config, checkpoint_dir),
     .doc = "directory for checkpoints and write-ahead logs"},
    {.name = "block_interval",
     .type = SL_OPT_DURATION,
     .min = 1,
     .max = 9.2e15,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_config, block_ms),
     .doc = "receivers cut blocks this often (default 200ms)"},
    {.name = "partitions",
     .type = SL_OPT_INT,
     .min = 1,
     .max = CFG_MAX_PARTITIONS,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_config, partitions),
     .doc = "default partitions of shuffles (default: workers)"},
    {.name = "stop_timeout",
     .type = SL_OPT_DURATION,
     .def = "90s",
     .min = 1,
     .max = 9.2e15,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_config, stop_timeout_ms),
     .doc = "a graceful stop waits this long for the running and queued batches, then "
            "leaves them pending and exits 1 (default 90s)"},
    {.name = "log_level",
     .type = SL_OPT_ENUM,
     .choices = "error|warn|info|debug",
     .offset = offsetof(sl_config, log_level),
     .doc = "sluice --log-level overrides it (default info)"},
    {.name = "log_format",
     .type = SL_OPT_ENUM,
     .choices = "text|json",
     .offset = offsetof(sl_config, log_format),
     .doc = "text, or json: one JSON object per line (sluice --log-format overrides it; "
            "default text)"},
    {.name = "backpressure.enabled",
     .type = SL_OPT_BOOL,
     .offset = offsetof(sl_config, backpressure.enabled),
     .doc = "Spark's PID rate estimator per input (default false)"},
    {.name = "backpressure.initial_rate",
     .type = SL_OPT_DOUBLE,
     .max = 1e15,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_config, backpressure.initial_rate),
     .doc = "records/s until the first estimate (default 0: none)"},
    {.name = "backpressure.pid.proportional",
     .type = SL_OPT_DOUBLE,
     .max = 1e15,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_config, backpressure.proportional),
     .doc = "default 1.0"},
    {.name = "backpressure.pid.integral",
     .type = SL_OPT_DOUBLE,
     .max = 1e15,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_config, backpressure.integral),
     .doc = "default 0.2"},
    {.name = "backpressure.pid.derivative",
     .type = SL_OPT_DOUBLE,
     .max = 1e15,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_config, backpressure.derivative),
     .doc = "default 0.0"},
    {.name = "backpressure.pid.min_rate",
     .type = SL_OPT_DOUBLE,
     .max = 1e15,
     .flags = CFG_OPT_POSITIVE | SL_OPT_RANGE,
     .offset = offsetof(sl_config, backpressure.min_rate),
     .doc = "the estimate never goes below this (records/s, default 100)"},
    {0},
};

static const sl_option cfg_http_options[] = {
    {.name = "listen",
     .type = SL_OPT_STR,
     .def = SL_HTTP_DEFAULT_LISTEN,
     .offset = offsetof(sl_config, http_listen),
     .doc = "HOST:PORT or [IPV6]:PORT; port 0: any free port"},
    {.name = "token",
     .type = SL_OPT_STR,
     .flags = SL_OPT_SECRET,
     .offset = offsetof(sl_config, http_token),
     .doc = "clients send \"Authorization: Bearer TOKEN\""},
    {.name = "allow_remote",
     .type = SL_OPT_BOOL,
     .def = "false",
     .offset = offsetof(sl_config, http_allow_remote),
     .doc = "a non-loopback listen address needs a token unless true"},
    {.name = "enabled",
     .type = SL_OPT_BOOL,
     .def = "true",
     .offset = offsetof(sl_config, http_enabled),
     .doc = "false: no server"},
    {0},
};

/* ==== Reading a section through its table ==== */

/* The words of an ENUM's choices "a|b|c" into words (NULL-terminated), held in pool. */
static void cfg_enum_words(const char *choices, const char **words, char (*pool)[32])
{
    size_t n = 0;
    for (const char *c = choices; c && *c && n + 1 < CFG_ENUM_MAX;) {
        size_t len = strcspn(c, "|");
        snprintf(pool[n], 32, "%.*s", (int)len, c);
        words[n] = pool[n];
        n++;
        c += len + (c[len] == '|');
    }
    words[n] = NULL;
}

/* Stores a default (a trusted string of the table) at field. */
static int cfg_store_default(const sl_option *o, char *field)
{
    const char *words[CFG_ENUM_MAX];
    char pool[CFG_ENUM_MAX][32];
    switch (o->type) {
    case SL_OPT_STR:
    case SL_OPT_LIST: return (*(char **)field = strdup(o->def)) ? SL_OK : SL_ERR_NOMEM;
    case SL_OPT_BOOL: *(bool *)field = strcasecmp(o->def, "true") == 0; return SL_OK;
    case SL_OPT_INT: *(int64_t *)field = strtoll(o->def, NULL, 10); return SL_OK;
    case SL_OPT_DOUBLE: *(double *)field = strtod(o->def, NULL); return SL_OK;
    case SL_OPT_DURATION: return sl_parse_duration(o->def, (int64_t *)field);
    case SL_OPT_SIZE: return sl_parse_size(o->def, (int64_t *)field);
    case SL_OPT_ENUM:
        cfg_enum_words(o->choices, words, pool);
        for (int i = 0; words[i]; i++) {
            if (strcmp(words[i], o->def) == 0) {
                *(int *)field = i;
            }
        }
        return SL_OK;
    }
    return SL_OK;
}

/* Reads the value node n of option o (named key in the mapping where) into field, with the
 * loader's messages: what is "SECTION.OPTION". */
static int cfg_read_value(cfg_parser *p, const sl_option *o, yaml_node_t *n, const char *key,
                          const char *where, const char *what, char *field)
{
    bool ranged = (o->flags & SL_OPT_RANGE) != 0;
    int64_t i64;
    int rc;
    switch (o->type) {
    case SL_OPT_STR:
    case SL_OPT_LIST: {
        const char *s;
        char w[224];
        snprintf(w, sizeof(w), "'%s' in %s", key, where);
        if ((rc = sl__cfg_scalar(p, n, w, &s)) != SL_OK) {
            return rc;
        }
        free(*(char **)field);
        *(char **)field = strdup(s);
        return *(char **)field ? SL_OK : sl__cfg_error(p, sl__cfg_loc_of(n), "out of memory");
    }
    case SL_OPT_BOOL: return sl__cfg_bool(p, n, what, (bool *)field);
    case SL_OPT_INT:
        return sl__cfg_int(p, n, what, ranged ? (int64_t)o->min : INT64_MIN,
                           ranged ? (int64_t)o->max : INT64_MAX, (int64_t *)field);
    case SL_OPT_DOUBLE:
        return sl__cfg_number(p, n, what, o->flags & CFG_OPT_POSITIVE, (double *)field);
    case SL_OPT_DURATION:
        rc = sl__cfg_duration(p, n, what, ranged ? (int64_t)o->min : 0, &i64);
        if (rc == SL_OK && ranged && (double)i64 > o->max) {
            char m[32];
            sl__cfg_fmt_duration((int64_t)o->max, m, sizeof(m));
            return sl__cfg_error(p, sl__cfg_loc_of(n), "%s must be at most %s, got '%s'", what, m,
                                 sl__cfg_text(p, n));
        }
        *(int64_t *)field = i64;
        return rc;
    case SL_OPT_SIZE: {
        const char *s;
        if ((rc = sl__cfg_scalar(p, n, what, &s)) != SL_OK) {
            return rc;
        }
        if (sl_parse_size(s, &i64) != SL_OK || (ranged && (i64 < o->min || i64 > o->max))) {
            return sl__cfg_error(p, sl__cfg_loc_of(n), "%s: bad size '%s'", what, s);
        }
        *(int64_t *)field = i64;
        return SL_OK;
    }
    case SL_OPT_ENUM: {
        const char *words[CFG_ENUM_MAX];
        char pool[CFG_ENUM_MAX][32];
        cfg_enum_words(o->choices, words, pool);
        return sl__cfg_choice(p, n, what, words, (int *)field);
    }
    }
    return SL_OK;
}

/* The mapping that holds the dotted option name, walking (and checking once) the nested
 * mappings on the way: *holder is NULL when one of them is absent or empty. */
static int cfg_holder(cfg_parser *p, yaml_node_t *map, const char *section, const sl_option *table,
                      const char *name, yaml_node_t **holder, yaml_node_t **checked,
                      size_t *nchecked)
{
    char prefix[128] = "", where[160];
    yaml_node_t *cur = map;
    for (const char *dot; (dot = strchr(name, '.')) != NULL; name = dot + 1) {
        size_t plen = strlen(prefix);
        snprintf(prefix + plen, sizeof(prefix) - plen, "%s%.*s", plen ? "." : "", (int)(dot - name),
                 name);
        yaml_node_t *n = sl__cfg_get(p, cur, prefix + (plen ? plen + 1 : 0));
        if (!n || sl__cfg_is_null(p, n)) {
            *holder = NULL;
            return SL_OK;
        }
        bool seen = false;
        for (size_t i = 0; i < *nchecked && !seen; i++) {
            seen = checked[i] == n;
        }
        if (!seen) {
            const char *keys[64];
            char pool[64][64];
            sl__cfg_level_keys(table, NULL, prefix, keys, pool, 64);
            snprintf(where, sizeof(where), "%s.%s", section, prefix);
            int rc = sl__cfg_check_map(p, n, where, keys);
            if (rc != SL_OK) {
                return rc;
            }
            checked[(*nchecked)++] = n;
        }
        cur = n;
    }
    *holder = cur;
    return SL_OK;
}

/* Reads the mapping map of section through table into base: every key must be an option or
 * lead to one (backpressure: {pid: {min_rate: 50}} sets backpressure.pid.min_rate), values
 * are checked with the table's types and ranges, absent ones get the table's default. */
static int cfg_read_section(cfg_parser *p, yaml_node_t *map, const char *section,
                            const sl_option *table, void *base)
{
    const char *keys[64];
    char pool[64][64];
    sl__cfg_level_keys(table, NULL, NULL, keys, pool, 64);
    int rc = sl__cfg_check_map(p, map, section, keys);
    int first = rc;
    bool unknown_key = rc != SL_OK;
    yaml_node_t *checked[16];
    size_t nchecked = 0;
    /* A collecting parse (sluice check) reads every option in spite of an error. */
    for (const sl_option *o = table; (rc == SL_OK || p->collect) && o->name; o++) {
        first = first != SL_OK ? first : rc;
        char *field = (char *)base + o->offset;
        yaml_node_t *holder, *n = NULL;
        if ((rc = cfg_holder(p, map, section, table, o->name, &holder, checked, &nchecked))) {
            break;
        }
        const char *key = strrchr(o->name, '.') ? strrchr(o->name, '.') + 1 : o->name;
        if (holder) {
            n = sl__cfg_get(p, holder, key);
        }
        if (n && !sl__cfg_is_null(p, n)) {
            char what[160], where[160];
            snprintf(what, sizeof(what), "%s.%s", section, o->name);
            snprintf(where, sizeof(where), "%s%s%.*s", section, key != o->name ? "." : "",
                     (int)(key - o->name - (key != o->name)), o->name);
            rc = cfg_read_value(p, o, n, key, where, what, field);
        } else if ((o->flags & SL_OPT_REQUIRED) && !(p->collect && unknown_key)) {
            /* (Collecting, after an unknown key: most likely the required one misspelt.) */
            rc = sl__cfg_error(p, sl__cfg_loc_of(holder ? holder : map),
                               "missing required key '%s' in %s", key, section);
        } else if (o->def && cfg_store_default(o, field) != SL_OK) {
            rc = sl__cfg_error(p, sl__cfg_loc_of(map), "out of memory");
        }
    }
    return first != SL_OK ? first : rc;
}

/* ==== app ==== */

int sl__cfg_parse_app(cfg_parser *p, yaml_node_t *app, cfg_loc root_loc)
{
    sl_config *cfg = p->cfg;
    if (!app) {
        return sl__cfg_error(p, root_loc, "missing required section 'app' (with batch_interval)");
    }
    cfg->app_loc = sl__cfg_loc_of(app);
    cfg->log_level = -1;
    cfg->log_format = -1;
    sl_backpressure_defaults(&cfg->backpressure);
    return cfg_read_section(p, app, "app", cfg_app_options, cfg);
}

const char *sl__cfg_log_level_name(int level, char *buf, size_t size)
{
    const char *words[CFG_ENUM_MAX] = {NULL};
    char pool[CFG_ENUM_MAX][32];
    for (const sl_option *o = cfg_app_options; o->name; o++) {
        if (strcmp(o->name, "log_level") == 0) {
            cfg_enum_words(o->choices, words, pool);
        }
    }
    for (int i = 0; words[i]; i++) {
        if (i == level) {
            snprintf(buf, size, "%s", words[i]);
            return buf;
        }
    }
    return "?";
}

/* ==== http ==== */

/* The optional http: section. An empty one ("http:") serves with the defaults. The token's
 * value never goes into a message. */
int sl__cfg_parse_http(cfg_parser *p, yaml_node_t *http)
{
    sl_config *cfg = p->cfg;
    if (!http) {
        return SL_OK;
    }
    cfg->has_http = true;
    cfg->http_enabled = true;
    if (sl__cfg_is_null(p, http)) {
        return SL_OK;
    }
    int rc = cfg_read_section(p, http, "http", cfg_http_options, cfg);
    if (rc != SL_OK) {
        return rc;
    }
    yaml_node_t *tn = sl__cfg_get(p, http, "token");
    if (cfg->http_token && !*cfg->http_token) {
        return sl__cfg_error(p, sl__cfg_loc_of(tn),
                             "http.token is empty (remove it for no token, or set a secret; an "
                             "unset ${VAR} in it needs a default)");
    }
    if (cfg->http_enabled) {
        char msg[512];
        yaml_node_t *ln = sl__cfg_get(p, http, "listen");
        if (ln && sl__cfg_is_null(p, ln)) {
            ln = NULL;
        }
        if (sl__http_check_listen(cfg->http_listen, cfg->http_token != NULL, cfg->http_allow_remote,
                                  msg, sizeof(msg)) != SL_OK) {
            return sl__cfg_error(p, sl__cfg_loc_of(ln ? ln : http), "http.listen: %s", msg);
        }
    }
    return SL_OK;
}

bool sl__config_http(const sl_config *cfg, sl_http_conf *conf, bool *present)
{
    memset(conf, 0, sizeof(*conf));
    conf->listen = cfg->http_listen ? cfg->http_listen : SL_HTTP_DEFAULT_LISTEN;
    conf->token = cfg->http_token;
    conf->allow_remote = cfg->http_allow_remote;
    if (present) {
        *present = cfg->has_http;
    }
    return cfg->has_http && cfg->http_enabled;
}

/* sl_log.c -- log lines: one path for the engine, the connectors and the command line, in
 * text (`TIME [level] component: message`) or JSON lines (sl_set_log_format), every line
 * timestamped (RFC 3339, UTC, milliseconds). */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sl_util.h"

static _Atomic int log_level = SL_LOG_INFO;
static _Atomic int log_format = SL_LOG_TEXT;
/* Guards pipeline and keeps lines whole. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char pipeline[128] = "sluice";

void sl_set_log_level(sl_log_level level)
{
    atomic_store(&log_level, (int)level);
}

void sl_set_log_format(sl_log_format format)
{
    atomic_store(&log_format, (int)format);
}

int sl__log_enabled(sl_log_level level)
{
    return (int)level <= atomic_load(&log_level);
}

bool sl__log_format_parse(const char *s, sl_log_format *format)
{
    if (strcmp(s, "text") == 0) {
        *format = SL_LOG_TEXT;
    } else if (strcmp(s, "json") == 0) {
        *format = SL_LOG_JSON;
    } else {
        return false;
    }
    return true;
}

void sl__log_set_pipeline(const char *name)
{
    pthread_mutex_lock(&log_lock);
    sl__strlcpy(pipeline, name && *name ? name : "sluice", sizeof(pipeline));
    pthread_mutex_unlock(&log_lock);
}

/* Writes s as a JSON string: quotes, backslashes and control characters escaped; a byte
 * that is not part of valid UTF-8 becomes U+FFFD, so that every line parses. */
static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c == '\n') {
            fputs("\\n", f);
            i++;
        } else if (c == '\t') {
            fputs("\\t", f);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            fputc(c, f);
            i++;
        } else {
            size_t l = sl__utf8_seq((const unsigned char *)s + i, n - i);
            if (l == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(s + i, 1, l, f);
                i += l;
            }
        }
    }
    fputc('"', f);
}

static void vlog(sl_log_level level, const char *component, bool prefix, const char *fields,
                 const char *fmt, va_list ap);

void sl__vlog(sl_log_level level, const char *component, const char *fields, const char *fmt,
              va_list ap)
{
    vlog(level, component, true, fields, fmt, ap);
}

/* prefix: text lines start with "component: " (sl__log_as's messages name it already). */
static void vlog(sl_log_level level, const char *component, bool prefix, const char *fields,
                 const char *fmt, va_list ap)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!sl__log_enabled(level)) {
        return;
    }
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[80];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    pthread_mutex_lock(&log_lock);
    if (atomic_load(&log_format) == SL_LOG_JSON) {
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"pipeline\":", when, names[level]);
        put_json_string(stderr, pipeline);
        fputs(",\"component\":", stderr);
        put_json_string(stderr, component ? component : "sluice");
        fputs(",\"message\":", stderr);
        put_json_string(stderr, msg);
        if (fields && fields[0] == '{') {
            fputs(",\"fields\":", stderr);
            fputs(fields, stderr);
        }
        fputs("}\n", stderr);
    } else {
        bool named = component && prefix;
        fprintf(stderr, "%s [%s] %s%s%s\n", when, names[level], named ? component : "",
                named ? ": " : "", msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&log_lock);
}

void sl_log(sl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl__vlog(level, NULL, NULL, fmt, ap);
    va_end(ap);
}

void sl__log_fields(sl_log_level level, const char *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl__vlog(level, NULL, fields, fmt, ap);
    va_end(ap);
}

void sl__log_as(sl_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, component, false, NULL, fmt, ap);
    va_end(ap);
}

/* file_format.c -- how the file sink writes a record: text (as print() shows it), JSON lines
 * or CSV; and the manifest of a batch directory.
 *
 * JSON lines: one object per record, the fields of the dead-letter lines:
 *   {"key":..,"value":..,"num":..,"ts":..,"source":..,"topic":..,"partition":..,"offset":..}
 * key is null when the record has none; value is always a string (empty for a count, whose
 * number is in num); num is there only for a typed value (null when not finite); unknown
 * meta is null. Bytes are never lost: a key, value, source or topic that is not valid UTF-8 is
 * written base64-encoded, with "<field>_encoding":"base64" after it. With value_json, a value
 * that is a JSON document is written as that document, with "value_encoding":"json" (line
 * breaks between its tokens become spaces, so that it stays one line); other values stay
 * text. No "<field>_encoding" means the field is the bytes as text.
 *
 * CSV (RFC 4180): the columns asked for, separated by commas, one line per record ending
 * with "\n". A field is quoted when it contains a comma, a quote, CR, LF or NUL, its quotes
 * doubled; bytes are written as they are (no transcoding). value is the typed value when the
 * record has one, else the value bytes (as in the text format and the postgres sink); num is
 * the typed value alone; a missing key, num or meta is an empty field. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "file.h"
#include "sl_util.h"
#include "sl_record_text.h"

/* ==== JSON ==== */

/* The JSON text writers' callback: appends to the FILE out. */
static void json_put(void *out, const void *s, size_t n)
{
    fwrite(s, 1, n, out);
}

/* <sep>"name":<bytes>: text, or base64 followed by ,"name_encoding":"base64"; null when s is
 * NULL. */
static void json_bytes(FILE *f, const char *sep, const char *name, const char *s, size_t n)
{
    fputs(sep, f);
    sl__json_bytes(json_put, f, name, s, n);
}

/* Writes the value as the JSON document it holds, if it is one: line breaks (which can only
 * be whitespace between tokens in a valid document) become spaces. false when it is not
 * one (nothing written). */
static bool json_raw_value(FILE *f, const char *s, size_t n)
{
    json_error_t jerr;
    json_t *j = s && n ? json_loadb(s, n, JSON_DECODE_ANY, &jerr) : NULL;
    if (!j) {
        return false;
    }
    json_decref(j);
    fputs(",\"value\":", f);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\n' && s[i] != '\r') {
            run++;
            continue;
        }
        fwrite(s + i - run, 1, run, f);
        run = 0;
        fputc(' ', f);
    }
    fwrite(s + n - run, 1, run, f);
    fputs(",\"value_encoding\":\"json\"", f);
    return true;
}

static void json_number(FILE *f, const sl_record *r)
{
    if (r->num_type == SL_NUM_INT) {
        fprintf(f, ",\"num\":%" PRId64, r->num.i);
    } else if (r->num_type == SL_NUM_DOUBLE) {
        char num[32];
        if (isfinite(r->num.d)) {
            sl__record_format_double(r->num.d, num, sizeof(num));
            fprintf(f, ",\"num\":%s", num);
        } else {
            fputs(",\"num\":null", f);
        }
    }
}

static void json_record(FILE *f, const sl_file_sink_ctx *ctx, const sl_record *r)
{
    const sl_record_meta *m = r->meta;
    const char *source = m ? m->source : NULL, *topic = m ? m->topic : NULL;
    fputc('{', f);
    json_bytes(f, "", "key", r->key_len ? r->key : NULL, r->key_len);
    if (!(ctx->value_json && json_raw_value(f, r->value, r->value_len))) {
        json_bytes(f, ",", "value", r->value ? r->value : "", r->value ? r->value_len : 0);
    }
    json_number(f, r);
    fprintf(f, ",\"ts\":%" PRId64, r->ts);
    json_bytes(f, ",", "source", source, source ? strlen(source) : 0);
    json_bytes(f, ",", "topic", topic, topic ? strlen(topic) : 0);
    if (m && m->partition >= 0) {
        fprintf(f, ",\"partition\":%" PRId32, m->partition);
    } else {
        fputs(",\"partition\":null", f);
    }
    if (m && m->offset >= 0) {
        fprintf(f, ",\"offset\":%" PRId64, m->offset);
    } else {
        fputs(",\"offset\":null", f);
    }
    fputs("}\n", f);
}

/* ==== CSV ==== */

void sl__file_csv_field(FILE *f, const char *s, size_t n)
{
    if (n == 0) {
        return; /* an empty field */
    }
    bool quote = false;
    for (size_t i = 0; i < n && !quote; i++) {
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n' || s[i] == '\0';
    }
    if (!quote) {
        fwrite(s, 1, n, f);
        return;
    }
    fputc('"', f);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        run++;
        if (s[i] == '"') {
            fwrite(s + i + 1 - run, 1, run, f); /* the quote included: doubled below */
            run = 0;
            fputc('"', f);
        }
    }
    fwrite(s + n - run, 1, run, f);
    fputc('"', f);
}

static void csv_string(FILE *f, const char *s)
{
    if (s) {
        sl__file_csv_field(f, s, strlen(s));
    }
}

static void csv_record(FILE *f, const sl_file_sink_ctx *ctx, const sl_record *r, int64_t batch_time)
{
    const sl_record_meta *m = r->meta;
    for (size_t c = 0; c < ctx->ncols; c++) {
        if (c > 0) {
            fputc(',', f);
        }
        switch (ctx->cols[c]) {
        case SL_FILE_COL_KEY: sl__file_csv_field(f, r->key, r->key_len); break;
        case SL_FILE_COL_VALUE:
            if (r->num_type == SL_NUM_INT || r->num_type == SL_NUM_DOUBLE) {
                sl__record_write_num(f, r);
            } else {
                sl__file_csv_field(f, r->value, r->value_len);
            }
            break;
        case SL_FILE_COL_NUM: sl__record_write_num(f, r); break;
        case SL_FILE_COL_TS: fprintf(f, "%" PRId64, r->ts); break;
        case SL_FILE_COL_SOURCE: csv_string(f, m ? m->source : NULL); break;
        case SL_FILE_COL_TOPIC: csv_string(f, m ? m->topic : NULL); break;
        case SL_FILE_COL_PARTITION:
            if (m && m->partition >= 0) {
                fprintf(f, "%" PRId32, m->partition);
            }
            break;
        case SL_FILE_COL_OFFSET:
            if (m && m->offset >= 0) {
                fprintf(f, "%" PRId64, m->offset);
            }
            break;
        case SL_FILE_COL_BATCH_TIME: fprintf(f, "%" PRId64, batch_time); break;
        }
    }
    fputc('\n', f);
}

/* ==== Records ==== */

int sl__file_part_begin(FILE *f, const sl_file_sink_ctx *ctx)
{
    if (ctx->fmt == SL_FILE_CSV && ctx->header) {
        for (size_t c = 0; c < ctx->ncols; c++) {
            fprintf(f, "%s%s", c ? "," : "", sl__file_column_name(ctx->cols[c]));
        }
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

int sl__file_record_write(FILE *f, const sl_file_sink_ctx *ctx, const sl_record *r,
                          int64_t batch_time)
{
    switch (ctx->fmt) {
    case SL_FILE_TEXT: return sl__record_write(f, r);
    case SL_FILE_JSON: json_record(f, ctx, r); break;
    case SL_FILE_CSV: csv_record(f, ctx, r, batch_time); break;
    }
    return ferror(f) ? -1 : 0;
}

/* ==== The manifest ==== */

/* A JSON string of a name we were given (UTF-8 expected); null when it is not UTF-8. */
static json_t *manifest_name(const char *s)
{
    json_t *j = s ? json_string(s) : NULL;
    return j ? j : json_null();
}

char *sl__file_manifest(const sl_file_sink_ctx *ctx, const sl_batch_output *out,
                        const sl_file_part_info *parts, size_t nparts)
{
    json_t *m = json_object();
    json_t *jparts = json_array();
    json_t *inputs = out->inputs ? json_loads(out->inputs, JSON_DECODE_ANY, NULL) : NULL;
    char *text = NULL;
    if (!m || !jparts) {
        goto done;
    }
    size_t records = 0;
    for (size_t p = 0; p < nparts; p++) {
        records += parts[p].records;
        json_array_append_new(jparts, json_pack("{s:s, s:I, s:I}", "name", parts[p].name, "records",
                                                (json_int_t)parts[p].records, "bytes",
                                                (json_int_t)parts[p].bytes));
    }
    json_object_set_new(m, "pipeline", manifest_name(out->pipeline));
    json_object_set_new(m, "sink", manifest_name(out->sink));
    json_object_set_new(m, "batch_time", json_integer(out->batch_time));
    /* The records came in [window_start, window_end): a window's bounds, or the batch's. */
    json_object_set_new(m, "window_start", json_integer(out->batch_time - out->window_ms));
    json_object_set_new(m, "window_end", json_integer(out->batch_time));
    json_object_set_new(m, "format",
                        json_string(ctx->fmt == SL_FILE_JSON  ? "json"
                                    : ctx->fmt == SL_FILE_CSV ? "csv"
                                                              : "text"));
    if (ctx->fmt == SL_FILE_JSON) {
        json_object_set_new(m, "value_json", json_boolean(ctx->value_json));
    }
    if (ctx->fmt == SL_FILE_CSV) {
        json_t *cols = json_array();
        for (size_t c = 0; c < ctx->ncols; c++) {
            json_array_append_new(cols, json_string(sl__file_column_name(ctx->cols[c])));
        }
        json_object_set_new(m, "columns", cols);
        json_object_set_new(m, "header", json_boolean(ctx->header));
    }
    json_object_set_new(m, "records", json_integer((json_int_t)records));
    json_object_set_new(m, "parts", jparts);
    jparts = NULL;
    /* The batch's input: per source, its offset ranges (or its description). */
    json_object_set_new(m, "inputs", inputs ? inputs : json_object());
    inputs = NULL;
    text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text) {
        size_t len = strlen(text);
        char *nl = realloc(text, len + 2);
        if (!nl) {
            free(text);
            text = NULL;
            goto done;
        }
        text = nl;
        memcpy(text + len, "\n", 2);
    }
done:
    json_decref(m);
    json_decref(jparts);
    json_decref(inputs);
    return text;
}

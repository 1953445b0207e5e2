/* generate.c -- the generate source: emits the lines of a text round-robin at `rate` lines
 * per second, one record per line, until `count` lines (0: forever) or, with loop off, the
 * end of the text. The demo's input when nothing else is at hand. */
#include <math.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"

#define GENERATE_STEP_MS 100         /* longest sleep between two looks at the stop flag */
#define GENERATE_MAX_RUN (64 * 1024) /* lines emitted before looking at the stop flag */

/* The built-in sample: verses written for sluice, free of any copyright. */
static const char generate_sample[] = "the river comes down from the hills in the morning\n"
                                      "the river is cold and the river is wide\n"
                                      "the miller stands up at the sluice in the morning\n"
                                      "and counts every log that goes down with the tide\n"
                                      "one for the mill and one for the water\n"
                                      "one for the boat and one for the sea\n"
                                      "the miller calls out to his son and his daughter\n"
                                      "count what goes by and then bring it to me\n"
                                      "the water goes fast when the snow leaves the mountain\n"
                                      "the water goes slow when the summer is long\n"
                                      "the daughter sits down by the gate and starts counting\n"
                                      "the son keeps the time with the words of a song\n"
                                      "a batch in the morning a batch in the evening\n"
                                      "a batch every second the whole day through\n"
                                      "the gate lets it in and the gate lets it out again\n"
                                      "and nothing is lost that the river once knew\n"
                                      "when the river is high and the gate cannot hold it\n"
                                      "the miller lets less of the water come in\n"
                                      "he waits for the wheel and the wheel never scolds it\n"
                                      "it turns as it can and the counting goes on\n"
                                      "so here is the sluice and here is the river\n"
                                      "and here is the mill and the wheel and the song\n"
                                      "the water goes by and the counts go on forever\n"
                                      "one for the mill as the day goes along\n";

static bool generate_stopping(sl_generate_ctx *ctx)
{
    return atomic_load(&ctx->stop) || sl_instance_stopping(ctx->ins);
}

/* Splits the copy of the text into lines ("\n" or "\r\n"; a final newline does not add an
 * empty line). Returns SL_OK, SL_ERR_NOMEM or SL_ERR_INVAL with errstr set. */
static int generate_split(sl_generate_ctx *ctx, char *errstr, size_t errsize)
{
    size_t n = 0, cap = 64;
    size_t max = sl_instance_max_record_size(ctx->ins);
    ctx->lines = malloc(cap * sizeof(*ctx->lines));
    if (!ctx->lines) {
        return SL_ERR_NOMEM;
    }
    for (char *p = ctx->buf; *p;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0 && p[len - 1] == '\r') {
            len--;
        }
        if (max > 0 && len > max) {
            snprintf(errstr, errsize, "text: line %zu is longer than max_record_size (%zu bytes)",
                     n + 1, max);
            return SL_ERR_INVAL;
        }
        if (n == cap) {
            sl_generate_line *l = realloc(ctx->lines, 2 * cap * sizeof(*l));
            if (!l) {
                return SL_ERR_NOMEM;
            }
            ctx->lines = l;
            cap *= 2;
        }
        ctx->lines[n].s = p;
        ctx->lines[n].len = len;
        n++;
        p = nl ? nl + 1 : p + strlen(p);
    }
    ctx->nlines = n;
    if (n == 0) {
        snprintf(errstr, errsize, "text: empty");
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

/* The receiver thread. Line k (from 0) of a run is due k / rate seconds after the run's
 * start; a run restarts when the thread falls more than a second behind (the engine's
 * backpressure held it), so that it does not burst afterwards. */
static void *generate_thread(void *arg)
{
    sl_generate_ctx *ctx = arg;
    int64_t total = ctx->loop ? INT64_MAX : (int64_t)ctx->nlines;
    if (ctx->count > 0 && ctx->count < total) {
        total = ctx->count;
    }
    int64_t emitted = 0, base = 0;
    int64_t start = sl__mono_ms();
    size_t idx = 0;

    sl_instance_set_active(ctx->ins, true);
    while (emitted < total && !generate_stopping(ctx)) {
        int64_t now = sl__mono_ms();
        double due_d = (double)base + floor((double)(now - start) * ctx->rate / 1000.0) + 1;
        if (due_d - (double)emitted > ctx->rate + SL_LINES_BULK) {
            start = now;
            base = emitted;
            due_d = (double)emitted + 1;
        }
        int64_t due = due_d >= (double)total ? total : (int64_t)due_d;
        if (due > emitted + GENERATE_MAX_RUN) {
            due = emitted + GENERATE_MAX_RUN;
        }

        int64_t ts = sl__now_ms();
        for (; emitted < due; emitted++) {
            const sl_generate_line *l = &ctx->lines[idx];
            sl__lines_batch_add(ctx->batch, "generate", emitted + 1, l->s, l->len, ts);
            if (++idx == ctx->nlines) {
                idx = 0;
            }
        }
        sl__lines_batch_push(ctx->batch);
        if (emitted >= total) {
            break;
        }

        int64_t next = start + (int64_t)ceil((double)(emitted - base) * 1000.0 / ctx->rate);
        int64_t wait = next - sl__mono_ms();
        if (wait > 0) {
            poll(NULL, 0, (int)(wait < GENERATE_STEP_MS ? wait : GENERATE_STEP_MS));
        }
    }
    if (emitted >= total) {
        sl_instance_log(ctx->ins, SL_LOG_INFO, "generated %lld lines: done", (long long)emitted);
    }
    sl_instance_set_active(ctx->ins, false);
    return NULL;
}

/* ==== Callbacks ==== */

static int generate_init(sl_instance *ins, void *data, char *errstr, size_t errsize)
{
    sl_generate_ctx *ctx = data;
    ctx->ins = ins;
    atomic_init(&ctx->stop, false);
    ctx->buf = strdup(ctx->text ? ctx->text : generate_sample);
    ctx->batch = sl__lines_batch_new(ins);
    if (!ctx->buf || !ctx->batch) {
        snprintf(errstr, errsize, "out of memory");
        return SL_ERR_NOMEM;
    }
    int rc = generate_split(ctx, errstr, errsize);
    if (rc == SL_ERR_NOMEM) {
        snprintf(errstr, errsize, "out of memory");
    }
    return rc;
}

static int generate_start(void *data, char *errstr, size_t errsize)
{
    sl_generate_ctx *ctx = data;
    if (ctx->started) {
        return SL_ERR_STATE;
    }
    atomic_store(&ctx->stop, false);
    int e = pthread_create(&ctx->thread, NULL, generate_thread, ctx);
    if (e != 0) {
        sl_instance_error(ctx->ins, "cannot start the receiver thread: %s", strerror(e));
        return SL_ERR_IO;
    }
    ctx->started = true;
    return SL_OK;
}

static void generate_stop(void *data)
{
    sl_generate_ctx *ctx = data;
    atomic_store(&ctx->stop, true);
    if (ctx->started) {
        pthread_join(ctx->thread, NULL);
        ctx->started = false;
    }
}

static void generate_destroy(void *data)
{
    sl_generate_ctx *ctx = data;
    if (!ctx->ins) {
        return; /* init never ran */
    }
    generate_stop(ctx);
    sl__lines_batch_destroy(ctx->batch);
    ctx->batch = NULL;
    free(ctx->lines);
    ctx->lines = NULL;
    free(ctx->buf);
    ctx->buf = NULL;
}

/* ==== Registration ==== */

static const sl_option generate_options[] = {
    {.name = "text",
     .type = SL_OPT_STR,
     .def = NULL,
     .offset = offsetof(sl_generate_ctx, text),
     .doc = "the lines to emit (default: a built-in poem of 24 lines)"},
    {.name = "rate",
     .type = SL_OPT_DOUBLE,
     .def = "10",
     .min = 0.001,
     .max = 1e9,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_generate_ctx, rate),
     .doc = "lines per second"},
    {.name = "count",
     .type = SL_OPT_INT,
     .def = "0",
     .min = 0,
     .max = 9e18,
     .flags = SL_OPT_RANGE,
     .offset = offsetof(sl_generate_ctx, count),
     .doc = "stop after this many lines in total; 0: no limit"},
    {.name = "loop",
     .type = SL_OPT_BOOL,
     .def = "true",
     .offset = offsetof(sl_generate_ctx, loop),
     .doc = "start over at the end of the text (false: emit it once)"},
    {0},
};

const sl_connector sl__connector_generate = {
    .name = "generate",
    .description = "Emits the lines of a text at a steady rate (the demo's built-in input)",
    .flags = SL_SOURCE | SL_RECEIVER,
    .options = generate_options,
    .ctx_size = sizeof(sl_generate_ctx),
    .init = generate_init,
    .start = generate_start,
    .stop = generate_stop,
    .destroy = generate_destroy,
};

/* network_word_count.c -- Spark Streaming's quick example, written against libsluice.
 *
 * Counts words in text received from a TCP server every second:
 *     nc -lk 9999                      # in one terminal: type lines
 *     ./network_word_count localhost 9999
 *
 * A local context with 2 workers and a 1 s batch interval; a socket text stream; each line
 * split into words; pairs (word, 1); reduce_by_key with a sum; the first 10 of each batch
 * printed. Ctrl-C (or SIGTERM) stops it gracefully; an optional third argument stops it by
 * itself after that many seconds. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sluice.h"

static sl_context *ctx;

static void on_signal(int sig)
{
    (void)sig;
    sl_context_request_stop(ctx); /* async-signal-safe */
}

/* flat_map: each word of a line becomes a record whose value is the word. The words point
 * into the line's bytes: no copy. */
static int split_words(const sl_record *line, sl_emitter *out, void *opaque)
{
    (void)opaque;
    uint32_t i = 0;
    while (i < line->value_len) {
        while (i < line->value_len && (line->value[i] == ' ' || line->value[i] == '\t')) {
            i++;
        }
        uint32_t start = i;
        while (i < line->value_len && line->value[i] != ' ' && line->value[i] != '\t') {
            i++;
        }
        if (i > start) {
            sl_record word = *line;
            word.value = line->value + start;
            word.value_len = i - start;
            int rc = sl_emit(out, &word);
            if (rc != SL_OK) {
                return rc;
            }
        }
    }
    return SL_OK;
}

/* map: word -> (word, 1) */
static int to_pair(const sl_record *word, sl_record *pair, sl_emitter *out, void *opaque)
{
    (void)out;
    (void)opaque;
    pair->key = word->value;
    pair->key_len = word->value_len;
    sl_record_set_int(pair, 1);
    return SL_OK;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [SECONDS]\n", argv[0]);
        return 2;
    }
    char errstr[256];
    sl_context_conf conf = {.name = "network_word_count", .batch_interval_ms = 1000, .workers = 2};
    ctx = sl_context_new(&conf, errstr, sizeof(errstr));
    if (!ctx) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    sl_stream *lines = sl_socket_text_stream(ctx, argv[1], atoi(argv[2]));
    sl_stream *words = sl_stream_flat_map(lines, split_words, NULL);
    sl_stream *pairs = sl_stream_map(words, to_pair, NULL);
    sl_stream *counts = sl_stream_reduce_by_key(pairs, sl_reduce_sum, NULL, 0);
    if (!counts || sl_stream_print(counts, 10) != SL_OK) {
        fprintf(stderr, "could not build the pipeline\n");
        sl_context_destroy(ctx);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (sl_context_start(ctx) != SL_OK) {
        sl_context_destroy(ctx);
        return 1;
    }
    int rc;
    if (argc > 3) {
        rc = sl_context_await_termination_or_timeout(ctx, atoll(argv[3]) * 1000);
        if (rc == SL_ERR_RETRY) {
            sl_context_stop(ctx, true);
            rc = sl_context_await_termination(ctx);
        }
    } else {
        rc = sl_context_await_termination(ctx);
    }
    sl_context_destroy(ctx);
    return rc == SL_OK ? 0 : 1;
}

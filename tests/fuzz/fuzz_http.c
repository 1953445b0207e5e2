/* fuzz_http.c -- fuzzes the status server's request handling: fuzzed bytes sent as a raw
 * request over loopback to servers started once (127.0.0.1, a port the kernel picks), one
 * without a token and one with; every request is bounded in time. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "fuzz_util.h"
#include "sl_engine.h"

static sl_context *ctx;
static sl_http_server *srv[2];

static int one_record(void *c, int64_t t, sl_batch_input *in)
{
    sl_record r = {.key = "k", .key_len = 1, .value = "v", .value_len = 1};
    sl_batch_input_describe(in, "one record at %lld", (long long)t);
    return sl_batch_input_add_records(in, &r, 1);
}

static const sl_option no_options[] = {{0}};
static const sl_connector one_source = {
    .name = "one",
    .flags = SL_SOURCE,
    .options = no_options,
    .next_batch = one_record,
};

static int drop(const sl_dataset *ds, int64_t batch_time, void *opaque)
{
    return SL_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    sl_set_log_level((sl_log_level)-1);
    char err[256] = "";
    sl_context_conf conf = {.name = "fuzz", .batch_interval_ms = 1000, .workers = 1};
    ctx = sl_context_new(&conf, err, sizeof(err));
    sl_stream *in =
        ctx ? sl_context_add_source_connector(ctx, &one_source, "in", NULL, err, sizeof(err))
            : NULL;
    if (!in || sl_stream_foreach_batch(in, drop, NULL) != SL_OK) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    for (int i = 1; i <= 3; i++) { /* batches for /api/v1/batches */
        sl__context_step(ctx, 1000000 + i * 1000, NULL);
    }
    sl_http_conf hc[2] = {{.listen = "127.0.0.1:0", .timeout_s = 2},
                          {.listen = "127.0.0.1:0", .timeout_s = 2, .token = "s3cret"}};
    for (int i = 0; i < 2; i++) {
        if (!(srv[i] = sl_http_start(ctx, &hc[i], err, sizeof(err)))) {
            fprintf(stderr, "fuzz_http: %s\n", err);
            abort();
        }
    }
    return 0;
}

/* The first byte picks the server (bit 0: the one with the token); the rest is sent as
 * the request, then the answer is read until the server closes (2 s at most). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) {
        return 0;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        abort();
    }
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)sl_http_port(srv[data[0] & 1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The server holds connections it cannot finish until its 2 s timeout and accepts a
     * bounded number: when they pile up, connecting waits for room (a 5-minute run hit the
     * limit). A server that accepts nothing for 10 s is a finding. */
    int tries = 0;
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (++tries > 100) {
            abort();
        }
        close(fd);
        usleep(100000);
        if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
            abort();
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    size_t off = 1;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0) {
            break;
        }
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    /* A kept-alive connection stays open after the answer, and the server does not notice
     * the half close of a request it has not read whole (it waits for the rest until its
     * timeout): read until the server closes, or until 20 ms pass without more bytes once
     * some came, or 100 ms before the first (answers from memory come within a few ms; a
     * longer wait made this target run at 3 inputs a second). */
    char buf[16384];
    bool got = false;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (poll(&pfd, 1, got ? 20 : 100) > 0 && recv(fd, buf, sizeof(buf), 0) > 0) {
        got = true;
    }
    close(fd);
    return 0;
}

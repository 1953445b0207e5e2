/* sl_probe.c -- what connectors' probes (`sluice check --connect`) share: a TCP connect
 * with a timeout, a trial bind of a port to listen on. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sl_connector.h"
#include "sl_util.h"

/* Connects fd to ai within timeout_ms. 0 or an errno. */
static int connect_within(int fd, const struct addrinfo *ai, int timeout_ms)
{
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return errno;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        return 0;
    }
    if (errno != EINPROGRESS) {
        return errno;
    }
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int n = poll(&pfd, 1, timeout_ms);
    if (n == 0) {
        return ETIMEDOUT;
    }
    if (n < 0) {
        return errno;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        return errno;
    }
    return err;
}

/* Resolves host:port for passive (listen) or active use. */
static struct addrinfo *resolve(const char *host, int port, bool passive, char *errstr,
                                size_t errsize)
{
    char svc[16];
    snprintf(svc, sizeof(svc), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host && *host ? host : NULL, svc, &hints, &res);
    if (rc != 0) {
        snprintf(errstr, errsize, "cannot resolve '%s': %s", host ? host : "", gai_strerror(rc));
        return NULL;
    }
    return res;
}

int sl_probe_tcp(const char *host, int port, int timeout_ms, char *errstr, size_t errsize)
{
    struct addrinfo *res = resolve(host, port, false, errstr, errsize);
    if (!res) {
        return SL_ERR_IO;
    }
    int err = ENOTCONN;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        err = connect_within(fd, ai, timeout_ms);
        close(fd);
        if (err == 0) {
            break;
        }
    }
    freeaddrinfo(res);
    if (err != 0) {
        snprintf(errstr, errsize, "%s", err == ETIMEDOUT ? "timed out" : strerror(err));
        return SL_ERR_IO;
    }
    return SL_OK;
}

int sl_probe_listen(const char *host, int port, char *errstr, size_t errsize)
{
    struct addrinfo *res = resolve(host, port, true, errstr, errsize);
    if (!res) {
        return SL_ERR_IO;
    }
    int err = EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        err = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        close(fd);
        if (err == 0) {
            break;
        }
    }
    freeaddrinfo(res);
    if (err != 0) {
        snprintf(errstr, errsize, "cannot listen: %s", strerror(err));
        return SL_ERR_IO;
    }
    return SL_OK;
}

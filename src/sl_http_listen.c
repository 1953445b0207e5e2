/* sl_http_listen.c -- the status server's listen addresses: parsed, checked and opened. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sl_http_int.h"

/* ==== Listen addresses ==== */

int sl__http_parse_listen(const char *listen, char *host, size_t hostsize, int *port, char *errstr,
                          size_t errsize)
{
    const char *colon, *h = listen, *hend;
    if (!listen || !*listen) {
        snprintf(errstr, errsize, "empty listen address (write HOST:PORT, e.g. %s)",
                 SL_HTTP_DEFAULT_LISTEN);
        return SL_ERR_INVAL;
    }
    if (listen[0] == '[') {
        hend = strchr(listen, ']');
        if (!hend || hend[1] != ':') {
            snprintf(errstr, errsize, "bad listen address '%s': write [IPV6]:PORT", listen);
            return SL_ERR_INVAL;
        }
        h = listen + 1;
        colon = hend + 1;
    } else {
        colon = strrchr(listen, ':');
        hend = colon;
        if (!colon) {
            snprintf(errstr, errsize, "bad listen address '%s': no port (write HOST:PORT)", listen);
            return SL_ERR_INVAL;
        }
        if (memchr(listen, ':', (size_t)(colon - listen))) {
            snprintf(errstr, errsize,
                     "bad listen address '%s': write an IPv6 address in brackets, "
                     "[::1]:4040",
                     listen);
            return SL_ERR_INVAL;
        }
    }
    size_t hlen = (size_t)(hend - h);
    if (hlen == 0 || hlen >= hostsize) {
        snprintf(errstr, errsize, "bad listen address '%s': %s", listen,
                 hlen ? "host name too long" : "no host (write e.g. 127.0.0.1:4040)");
        return SL_ERR_INVAL;
    }
    const char *p = colon + 1;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!*p || *end || errno || v < 0 || v > 65535 || *p == '-' || *p == '+' || *p == ' ') {
        snprintf(errstr, errsize, "bad listen address '%s': the port must be 0..65535", listen);
        return SL_ERR_INVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return SL_OK;
}

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
            return true;
        }
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            return in6->sin6_addr.s6_addr[12] == 127;
        }
    }
    return false;
}

/* Resolves host:port for listening. Returns the list (freeaddrinfo) or NULL with errstr. */
static struct addrinfo *resolve(const char *host, int port, char *errstr, size_t errsize)
{
    struct addrinfo hints, *res = NULL;
    char ps[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(ps, sizeof(ps), "%d", port);
    int gai = getaddrinfo(host, ps, &hints, &res);
    if (gai != 0) {
        snprintf(errstr, errsize, "cannot resolve listen host '%s': %s", host,
                 gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return NULL;
    }
    return res;
}

int sl__http_check_listen(const char *listen, bool has_token, bool allow_remote, char *errstr,
                          size_t errsize)
{
    char host[256];
    int port;
    int rc = sl__http_parse_listen(listen, host, sizeof(host), &port, errstr, errsize);
    if (rc != SL_OK) {
        return rc;
    }
    struct addrinfo *res = resolve(host, port, errstr, errsize);
    if (!res) {
        return SL_ERR_INVAL;
    }
    bool loopback = true;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        loopback = loopback && addr_is_loopback(ai->ai_addr);
    }
    freeaddrinfo(res);
    if (!loopback && !has_token && !allow_remote) {
        snprintf(errstr, errsize,
                 "listen address '%s' is not a loopback address: set a token (clients "
                 "then send \"Authorization: Bearer TOKEN\"), or allow_remote: true to serve "
                 "it to anyone who can reach it",
                 listen);
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

/* Binds and listens on the first address of host:port that works. Returns the socket or
 * -1 with *err the errno of the last failure. */
int sl__http_open_listener(const char *host, int port, int *err, char *errstr, size_t errsize)
{
    struct addrinfo *res = resolve(host, port, errstr, errsize);
    *err = EINVAL;
    if (!res) {
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            *err = errno;
            continue;
        }
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (ai->ai_family == AF_INET6) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            *err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

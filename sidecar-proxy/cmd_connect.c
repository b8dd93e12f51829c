/*
 * cmd_connect.c - `bottle-proxy connect`: ssh's ProxyCommand through the
 * sidecar's raw tunnel (see cmds.h and tunnel.h).
 *
 *   ssh -o ProxyCommand='bottle-proxy connect --proxy proxy:9099 \
 *       --token-file /gate/token %h %p' git@forge.example.com
 *
 * One process, one connection, a poll() loop: stdin -> proxy socket and
 * proxy socket -> stdout, each direction through its own buffer.  stdin's
 * EOF is passed on as shutdown(SHUT_WR) once the buffer is flushed, and
 * the socket is still read to its EOF; the socket's EOF closes stdout.
 * The token is read from a file (never argv), sent once in the CONNECT head
 * and wiped from memory right after.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "cmds.h"
#include "xalloc.h"

#define TOKEN_MAX    4096
#define HEAD_MAX     16384
#define HEAD_TIMEOUT 60000 /* ms for the proxy's answer (it dials the upstream first) */
#define RELAY_CHUNK  65536
#define REASON_WAIT  2000 /* ms to read the body of a refusal, for its reason */

static const char connect_usage[] =
    "usage: bottle-proxy connect [--proxy HOST:PORT] [--token-file FILE] HOST PORT\n"
    "\n"
    "Opens a tunnel to HOST:PORT through the sidecar (HTTP CONNECT) and relays\n"
    "stdin and stdout over it: an ssh ProxyCommand, e.g.\n"
    "  ssh -o ProxyCommand='bottle-proxy connect --token-file /gate/token %h %p' ...\n"
    "  --proxy HOST:PORT  the sidecar (default " CONNECT_PROXY_DEFAULT ")\n"
    "  --token-file FILE  sends 'Proxy-Authorization: Bearer <first line of FILE>'\n"
    "                     (the token is never taken on the command line)\n"
    "\n"
    "Exit status: 0 tunnel closed cleanly, 1 proxy unreachable, refused (status\n"
    "line on stderr) or connection failed, 2 usage error or unusable token file.\n";

static int cerr(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cerr(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bottle-proxy connect: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

/* A port 1..65535; 0 on error. */
static int parse_port(const char *s)
{
    int v = 0;
    if (!*s || strlen(s) > 5)
        return 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= 65535 ? v : 0;
}

/*
 * A host for the request line: letters, digits, '.', '-', '_' and UTF-8
 * (an IDN: the proxy normalises it), at most 1024 bytes.  No IP literal
 * check here: the proxy refuses those.
 */
static int host_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 1024)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x80 &&
            !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", s[i]))
            return 0;
    return 1;
}

/*
 * The token: the file's first line without its line end, 1-TOKEN_MAX
 * visible ASCII characters (what a header can carry).  Returns 0 and a
 * malloc'd string the caller wipes, or an exit status after the message.
 */
static int read_token(const char *path, char **ret)
{
    char buf[TOKEN_MAX + 2];
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cerr(2, "cannot open the token file '%s': %s", path, strerror(errno));
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            OPENSSL_cleanse(buf, sizeof(buf));
            return cerr(2, "cannot read the token file '%s': %s", path, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf) - 1 || memchr(buf, '\n', len))
            break;
    }
    close(fd);
    size_t end = 0;
    while (end < len && buf[end] != '\n')
        end++;
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    int bad = end == 0 || end > TOKEN_MAX;
    for (size_t i = 0; i < end && !bad; i++)
        bad = (unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f;
    if (bad) {
        OPENSSL_cleanse(buf, sizeof(buf));
        return cerr(2, "the token file '%s' must hold one line of 1-%d visible ASCII characters",
                    path, TOKEN_MAX);
    }
    *ret = xstrndup(buf, end);
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

/* "HOST:PORT" or "[V6]:PORT" into host and port strings (malloc'd). */
static int split_proxy(const char *s, char **host, char **port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !parse_port(colon + 1))
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return -1;
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl)) {
        return -1; /* a v6 literal needs brackets */
    }
    *host = xstrndup(h, hl);
    *port = xstrdup(colon + 1);
    return 0;
}

/* Connects to the proxy; the socket, or -1 after the message. */
static int dial_proxy(const char *spec)
{
    char *host = NULL, *port = NULL;
    struct addrinfo hints, *res = NULL;
    int fd = -1, err = 0;
    if (split_proxy(spec, &host, &port) < 0) {
        cerr(2, "--proxy: '%s' is not HOST:PORT", spec);
        return -2;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    int r = getaddrinfo(host, port, &hints, &res);
    if (r != 0) {
        cerr(1, "cannot resolve the proxy '%s': %s", host, gai_strerror(r));
        goto out;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        cerr(1, "cannot connect to the proxy %s: %s", spec, strerror(err));
out:
    if (res)
        freeaddrinfo(res);
    free(host);
    free(port);
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Waits up to ms for fd to be readable; 1 readable, 0 timeout, -1 error. */
static int wait_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    return r;
}

/* Prints the status line (and the first line of the reason body) of a refusal. */
static void report_refusal(int fd, struct buf *head, size_t head_len)
{
    const char *h = buf_cstr(head);
    size_t sl = strcspn(h, "\r\n");
    fprintf(stderr, "bottle-proxy connect: proxy refused the tunnel: %.*s\n", (int)sl, h);
    /* The proxy's body is one plain-text line saying why: read what comes quickly. */
    while (head->len - head_len < 1024 && wait_readable(fd, REASON_WAIT) > 0) {
        char tmp[1024];
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n <= 0 || buf_append(head, tmp, (size_t)n) < 0)
            break;
        if (memchr(tmp, '\n', (size_t)n))
            break;
    }
    const char *body = buf_cstr(head) + head_len;
    size_t bl = strcspn(body, "\r\n");
    int printable = bl > 0 && bl < 512;
    for (size_t i = 0; i < bl && printable; i++)
        printable = (unsigned char)body[i] >= 0x20 && (unsigned char)body[i] < 0x7f;
    if (printable)
        fprintf(stderr, "bottle-proxy connect: %.*s\n", (int)bl, body);
}

/*
 * Sends the CONNECT and reads the answer's head.  Returns 0 on 2xx with
 * the bytes after the head (the tunnel's first bytes) in *early, or an
 * exit status after the message.
 */
static int handshake(int fd, const char *host, const char *port, const char *token,
                     struct buf *early)
{
    struct buf req, head;
    int status = 1;
    buf_init(&req, HEAD_MAX);
    buf_init(&head, HEAD_MAX + 2048);
    buf_appendf(&req, "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n", host, port, host, port);
    if (token)
        buf_appendf(&req, "Proxy-Authorization: Bearer %s\r\n", token);
    buf_puts(&req, "\r\n");
    int w = write_all(fd, req.data, req.len);
    OPENSSL_cleanse(req.data, req.len);
    if (w < 0) {
        cerr(1, "cannot send the CONNECT to the proxy: %s", strerror(errno));
        goto out;
    }
    size_t head_len = 0;
    for (;;) {
        const char *end = head.len ? strstr(buf_cstr(&head), "\r\n\r\n") : NULL;
        if (end) {
            head_len = (size_t)(end - head.data) + 4;
            break;
        }
        if (head.len >= HEAD_MAX) {
            cerr(1, "the proxy's answer head is over %d bytes", HEAD_MAX);
            goto out;
        }
        int r = wait_readable(fd, HEAD_TIMEOUT);
        if (r == 0) {
            cerr(1, "no answer from the proxy within %d s", HEAD_TIMEOUT / 1000);
            goto out;
        }
        char tmp[2048];
        ssize_t n = r < 0 ? -1 : read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cerr(1, "reading the proxy's answer: %s", strerror(errno));
            goto out;
        }
        if (n == 0) {
            cerr(1, "the proxy closed the connection without answering");
            goto out;
        }
        if (memchr(tmp, '\0', (size_t)n)) {
            cerr(1, "the proxy's answer is not HTTP");
            goto out;
        }
        buf_append(&head, tmp, (size_t)n);
    }
    const char *h = head.data;
    if (head_len < 12 || strncmp(h, "HTTP/1.", 7) || h[8] != ' ' || h[9] < '0' || h[9] > '9' ||
        h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9') {
        cerr(1, "the proxy's answer is not HTTP: %.*s", (int)strcspn(h, "\r\n") % 200, h);
        goto out;
    }
    if (h[9] != '2') {
        report_refusal(fd, &head, head_len);
        goto out;
    }
    buf_append(early, head.data + head_len, head.len - head_len);
    status = 0;
out:
    buf_release(&req);
    buf_release(&head);
    return status;
}

/*
 * The relay.  a: stdin -> socket, b: socket -> stdout.  Returns the exit
 * status: 0 when both directions ended cleanly.
 */
static int relay(int fd, struct buf *early)
{
    static char a[RELAY_CHUNK], b[RELAY_CHUNK];
    size_t a_len = 0, a_off = 0, b_len = 0, b_off = 0;
    int in_eof = 0, sock_eof = 0, shut = 0, out_done = 0;
    if (early->len) {
        memcpy(b, early->data, early->len); /* early->max < RELAY_CHUNK */
        b_len = early->len;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        if (in_eof && a_off == a_len && !shut) {
            if (shutdown(fd, SHUT_WR) < 0 && errno != ENOTCONN)
                return cerr(1, "shutdown of the tunnel: %s", strerror(errno));
            shut = 1;
        }
        if (sock_eof && b_off == b_len && !out_done) {
            close(1);
            out_done = 1;
        }
        if (shut && out_done)
            return 0;
        struct pollfd p[3];
        int np = 0, i_in = -1, i_sock = -1, i_out = -1;
        if (!in_eof && a_len == 0) {
            p[np] = (struct pollfd){.fd = 0, .events = POLLIN};
            i_in = np++;
        }
        short sev = 0;
        if (a_off < a_len)
            sev |= POLLOUT;
        if (!sock_eof && b_len == 0)
            sev |= POLLIN;
        if (sev) {
            p[np] = (struct pollfd){.fd = fd, .events = sev};
            i_sock = np++;
        }
        if (b_off < b_len) {
            p[np] = (struct pollfd){.fd = 1, .events = POLLOUT};
            i_out = np++;
        }
        if (poll(p, (nfds_t)np, -1) < 0) {
            if (errno == EINTR)
                continue;
            return cerr(1, "poll: %s", strerror(errno));
        }
        if (i_in >= 0 && p[i_in].revents) {
            ssize_t n = read(0, a, sizeof(a));
            if (n > 0) {
                a_len = (size_t)n;
                a_off = 0;
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                in_eof = 1; /* a read error on stdin ends that direction too */
            }
        }
        if (i_sock >= 0 && (p[i_sock].revents & (POLLOUT | POLLERR | POLLHUP)) && a_off < a_len) {
            ssize_t n = send(fd, a + a_off, a_len - a_off, MSG_NOSIGNAL);
            if (n > 0) {
                a_off += (size_t)n;
                if (a_off == a_len)
                    a_off = a_len = 0;
            } else if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
                return cerr(1, "sending into the tunnel: %s", strerror(errno));
            }
        }
        if (i_sock >= 0 && (p[i_sock].revents & (POLLIN | POLLERR | POLLHUP)) && b_len == 0 &&
            !sock_eof) {
            ssize_t n = recv(fd, b, sizeof(b), 0);
            if (n > 0) {
                b_len = (size_t)n;
                b_off = 0;
            } else if (n == 0) {
                sock_eof = 1;
            } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
                return cerr(1, "reading from the tunnel: %s", strerror(errno));
            }
        }
        if (i_out >= 0 && p[i_out].revents) {
            ssize_t n = write(1, b + b_off, b_len - b_off);
            if (n > 0) {
                b_off += (size_t)n;
                if (b_off == b_len)
                    b_off = b_len = 0;
            } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
                /* Whoever read stdout is gone: nothing more can be delivered. */
                return errno == EPIPE ? 0 : cerr(1, "writing to stdout: %s", strerror(errno));
            }
        }
    }
}

int cmd_connect(int argc, char **argv)
{
    const char *proxy = NULL, *token_file = NULL, *host = NULL, *port = NULL;
    char *token = NULL;
    struct buf early;
    int fd = -1, status;
    buf_init(&early, HEAD_MAX + 2048);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(connect_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--proxy") || !strcmp(a, "--token-file")) {
            if (i + 1 >= argc || !argv[i + 1][0])
                return cerr(2, "%s needs a value\nTry 'bottle-proxy connect --help'.", a);
            if (a[2] == 'p')
                proxy = argv[++i];
            else
                token_file = argv[++i];
        } else if (!strncmp(a, "--proxy=", 8)) {
            proxy = a + 8;
        } else if (!strncmp(a, "--token-file=", 13)) {
            token_file = a + 13;
        } else if (!strncmp(a, "--token", 7)) {
            return cerr(2, "a token is never taken on the command line: use --token-file FILE");
        } else if (a[0] == '-' && a[1] != '\0') {
            return cerr(2, "unknown option '%s'\nTry 'bottle-proxy connect --help'.", a);
        } else if (!host) {
            host = a;
        } else if (!port) {
            port = a;
        } else {
            return cerr(2, "unexpected argument '%s'\nTry 'bottle-proxy connect --help'.", a);
        }
    }
    if (!host || !port)
        return cerr(2, "HOST and PORT are required\nTry 'bottle-proxy connect --help'.");
    if (!host_ok(host))
        return cerr(2, "'%s' is not a host name", host);
    if (!parse_port(port))
        return cerr(2, "'%s' is not a port (1-65535)", port);
    if (token_file && (status = read_token(token_file, &token)) != 0)
        return status;
    signal(SIGPIPE, SIG_IGN);
    fd = dial_proxy(proxy ? proxy : CONNECT_PROXY_DEFAULT);
    if (fd < 0) {
        status = fd == -2 ? 2 : 1;
        goto out;
    }
    status = handshake(fd, host, port, token, &early);
    if (token) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
        token = NULL;
    }
    if (status == 0)
        status = relay(fd, &early);
out:
    if (token) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    if (fd >= 0)
        close(fd);
    buf_release(&early);
    return status;
}

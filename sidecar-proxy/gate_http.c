/*
 * gate_http.c - `bottle-proxy gate`: the git gate's smart-HTTP server.
 *
 * One process per connection, at most --max-conns at once (one more gets a
 * 503), one request per connection (answers are close-delimited).  The
 * connection's process parses the request head with http.c, the sidecar's
 * strict parser, serves only the smart protocol of the configured repos:
 *
 *   GET  /<name>.git/info/refs?service=git-upload-pack|git-receive-pack
 *   POST /<name>.git/git-upload-pack | /<name>.git/git-receive-pack
 *
 * (anything else is a 404), fetches the repo from upstream before an
 * info/refs (so a fetch sees upstream's commits and a push's pre-receive
 * hook sees upstream's refs), then runs `git http-backend` as a CGI: the
 * request body (Content-Length or chunked, decoded) is streamed to its
 * stdin, its output (CGI head with "Status:", then the body) to the
 * client.  No shell is involved.
 *
 * Time limits: 30 s for the request head, an idle limit on every wait
 * (GATE_IDLE_S) and a limit on the whole request (GATE_REQUEST_S); the
 * connection's process is the leader of its own process group, so a limit
 * kills the CGI and whatever it started (the hook, git push, ssh) with it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "gate.h"
#include "http.h"
#include "xalloc.h"

#define GATE_HEAD_S    30
#define GATE_IDLE_S    600
#define GATE_REQUEST_S 3600
#define GATE_MAX_CONNS 16
#define GATE_CGI_HEAD  (64 << 10)
#define GATE_IO_CHUNK  (64 << 10)

static volatile sig_atomic_t stop_flag;

static void on_term(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_alarm(int sig)
{
    (void)sig;
    kill(0, SIGKILL); /* our process group: the CGI and everything it started */
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void answer(int fd, int status, const char *reason, const char *body)
{
    char *msg = xasprintf("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n%s",
                          status, reason, strlen(body), body);
    (void)write_all(fd, msg, strlen(msg));
    free(msg);
}

/* Waits for fd to be ready for events; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short events, int seconds)
{
    struct pollfd p = {fd, events, 0};
    for (;;) {
        int n = poll(&p, 1, seconds * 1000);
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -1 : n;
    }
}

static char *header_env(const struct http_request *req, const char *header, const char *var)
{
    const struct http_header *h = http_find_header(req->headers, req->n_headers, header);
    if (!h)
        return NULL;
    return xasprintf("%s=%.*s", var, (int)h->value.len, h->value.ptr);
}

/* Starts `git http-backend` with the CGI environment; its stdin/stdout pipes. */
static pid_t start_cgi(const struct gate_conf *c, const struct http_request *req,
                       const struct gate_route *rt, const char *peer, int *ret_in, int *ret_out)
{
    int pin[2], pout[2];
    if (pipe2(pin, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(pout, O_CLOEXEC) < 0) {
        close(pin[0]);
        close(pin[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        char *env[32];
        size_t n = 0;
        const char *keep[] = {"PATH",   "HOME", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL",
                              "TMPDIR", "LANG"};
        for (size_t i = 0; i < sizeof(keep) / sizeof(*keep); i++) {
            const char *v = getenv(keep[i]);
            if (v)
                env[n++] = xasprintf("%s=%s", keep[i], v);
        }
        env[n++] = xasprintf("GIT_PROJECT_ROOT=%s", c->root);
        env[n++] = xstrdup("GIT_HTTP_EXPORT_ALL=1");
        env[n++] = xstrdup("GATEWAY_INTERFACE=CGI/1.1");
        env[n++] = xstrdup("SERVER_PROTOCOL=HTTP/1.1");
        env[n++] = xasprintf("REQUEST_METHOD=%.*s", (int)req->method.len, req->method.ptr);
        env[n++] = xasprintf("PATH_INFO=%s", rt->path_info);
        env[n++] = xasprintf("QUERY_STRING=%s", rt->query);
        env[n++] = xstrdup("REMOTE_USER=agent");
        env[n++] = xasprintf("REMOTE_ADDR=%s", peer);
        if (req->has_content_length)
            env[n++] = xasprintf("CONTENT_LENGTH=%llu", (unsigned long long)req->content_length);
        char *e;
        if ((e = header_env(req, "Content-Type", "CONTENT_TYPE")))
            env[n++] = e;
        if ((e = header_env(req, "Content-Encoding", "HTTP_CONTENT_ENCODING")))
            env[n++] = e;
        if ((e = header_env(req, "Git-Protocol", "GIT_PROTOCOL")))
            env[n++] = e;
        env[n] = NULL;
        if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0)
            _exit(127);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        char *argv[] = {"git", "http-backend", NULL};
        execvpe("git", argv, env);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    if (pid < 0) {
        close(pin[1]);
        close(pout[0]);
        return -1;
    }
    *ret_in = pin[1];
    *ret_out = pout[0];
    return pid;
}

struct body_sink {
    struct buf *pending;
};

static int to_pending(void *arg, const char *p, size_t n)
{
    struct body_sink *s = arg;
    return buf_append(s->pending, p, n) < 0 ? HTTP_E_TOO_BIG : 0;
}

/*
 * Relays the request body (head_extra: bytes already read past the head)
 * to the CGI and its answer to the client.  Returns the HTTP status sent,
 * or a negative value when the exchange broke off.
 */
static int relay(int cfd, const struct http_request *req, const char *head_extra, size_t extra_len,
                 int cin, int cout)
{
    enum http_body body = http_request_body(req);
    uint64_t left = body == HTTP_BODY_LENGTH ? req->content_length : 0;
    int body_done = body == HTTP_BODY_NONE || (body == HTTP_BODY_LENGTH && left == 0);
    struct http_chunked ch;
    http_chunked_init(&ch, NULL);
    struct buf to_cgi, from_cgi, head_out;
    buf_init(&to_cgi, 4 * GATE_IO_CHUNK);
    buf_init(&from_cgi, GATE_CGI_HEAD + GATE_IO_CHUNK);
    buf_init(&head_out, GATE_CGI_HEAD + 256);
    struct body_sink sink = {&to_cgi};
    int status = -1, head_sent = 0, cgi_out_open = 1;
    char *raw = xmalloc(GATE_IO_CHUNK);
    size_t sent_off = 0;

    /* feed: client bytes into to_cgi (decoded); 0 ok, -1 bad body */
#define FEED(p, n)                                                                                 \
    do {                                                                                           \
        size_t used_;                                                                              \
        if (body == HTTP_BODY_LENGTH) {                                                            \
            size_t k_ = (n) < left ? (n) : (size_t)left;                                           \
            buf_append(&to_cgi, (p), k_);                                                          \
            left -= k_;                                                                            \
            if (!left)                                                                             \
                body_done = 1;                                                                     \
        } else if (body == HTTP_BODY_CHUNKED) {                                                    \
            int r_ = http_chunked_feed(&ch, (p), (n), &used_, to_pending, &sink);                  \
            if (r_ < 0)                                                                            \
                goto bad_body;                                                                     \
            if (r_ == 1)                                                                           \
                body_done = 1;                                                                     \
        }                                                                                          \
    } while (0)

    if (extra_len && !body_done)
        FEED(head_extra, extra_len);
    if (body_done && cin >= 0) {
        if (!to_cgi.len) {
            close(cin);
            cin = -1;
        }
    }
    while (cgi_out_open || (head_sent && sent_off < from_cgi.len)) {
        struct pollfd p[3];
        int np = 0, i_cli = -1, i_cin = -1, i_cout = -1;
        if (!body_done && to_cgi.len < GATE_IO_CHUNK) {
            i_cli = np;
            p[np++] = (struct pollfd){cfd, POLLIN, 0};
        }
        if (cin >= 0 && to_cgi.len) {
            i_cin = np;
            p[np++] = (struct pollfd){cin, POLLOUT, 0};
        }
        if (cgi_out_open && from_cgi.len < GATE_IO_CHUNK) {
            i_cout = np;
            p[np++] = (struct pollfd){cout, POLLIN, 0};
        }
        if (head_sent && sent_off < from_cgi.len) {
            /* the client's socket is blocking: write what we have */
            if (write_all(cfd, from_cgi.data + sent_off, from_cgi.len - sent_off) < 0)
                goto out;
            buf_reset(&from_cgi);
            sent_off = 0;
            continue;
        }
        int n = poll(p, (nfds_t)np, GATE_IDLE_S * 1000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            gate_log("request idle for %d s: closed", GATE_IDLE_S);
            goto out;
        }
        if (i_cli >= 0 && p[i_cli].revents) {
            ssize_t r = read(cfd, raw, GATE_IO_CHUNK);
            if (r <= 0) {
                if (r < 0 && errno == EINTR)
                    continue;
                goto bad_body; /* the client went away mid-body */
            }
            FEED(raw, (size_t)r);
        }
        if (i_cin >= 0 && p[i_cin].revents) {
            ssize_t w = write(cin, to_cgi.data, to_cgi.len);
            if (w < 0 && errno != EINTR && errno != EAGAIN) {
                /* the CGI stopped reading (it failed): drop the rest */
                close(cin);
                cin = -1;
                buf_reset(&to_cgi);
                body_done = 1;
            } else if (w > 0) {
                memmove(to_cgi.data, to_cgi.data + w, to_cgi.len - (size_t)w);
                to_cgi.len -= (size_t)w;
            }
        }
        if (body_done && cin >= 0 && !to_cgi.len) {
            close(cin);
            cin = -1;
        }
        if (i_cout >= 0 && p[i_cout].revents) {
            char tmp[GATE_IO_CHUNK];
            ssize_t r = read(cout, tmp, sizeof(tmp));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                cgi_out_open = 0;
            } else {
                buf_append(&from_cgi, tmp, (size_t)r);
            }
            if (!head_sent) {
                long used = gate_cgi_head(&from_cgi, &head_out);
                if (used < 0 || (used == 0 && (!cgi_out_open || from_cgi.len >= GATE_CGI_HEAD))) {
                    answer(cfd, 502, "Bad Gateway", "gate: git http-backend failed\n");
                    status = 502;
                    goto out;
                }
                if (used > 0) {
                    if (write_all(cfd, head_out.data, head_out.len) < 0)
                        goto out;
                    status = (int)strtol(head_out.data + 9, NULL, 10);
                    memmove(from_cgi.data, from_cgi.data + used, from_cgi.len - (size_t)used);
                    from_cgi.len -= (size_t)used;
                    head_sent = 1;
                }
            }
        }
    }
    goto out;
bad_body:
    if (!head_sent)
        answer(cfd, 400, "Bad Request", "gate: malformed or truncated request body\n");
    status = -1;
out:
#undef FEED
    if (cin >= 0)
        close(cin);
    free(raw);
    buf_release(&to_cgi);
    buf_release(&from_cgi);
    buf_release(&head_out);
    return status;
}

/* One connection, in its own process. */
static void serve(const struct gate_conf *c, int cfd, const char *peer)
{
    struct buf in;
    buf_init(&in, 32 << 10);
    struct http_request req;
    struct gate_route rt = {0};
    char *err = NULL;
    int r = 0, cin = -1, cout = -1;
    pid_t cgi = -1;
    time_t start = time(NULL);
    char tmp[8192];
    while (r == 0) {
        int left = GATE_HEAD_S - (int)(time(NULL) - start);
        if (left <= 0 || wait_fd(cfd, POLLIN, left) <= 0)
            goto out;
        ssize_t n = read(cfd, tmp, sizeof(tmp));
        if (n <= 0)
            goto out;
        if (buf_append(&in, tmp, (size_t)n) < 0) {
            answer(cfd, 431, "Request Header Fields Too Large", "gate: request head too large\n");
            goto out;
        }
        r = http_parse_request(in.data, in.len, NULL, &req);
    }
    if (r < 0) {
        int st = http_error_status(r);
        char *body = xasprintf("gate: %s\n", http_strerror(r));
        answer(cfd, st, st == 400 ? "Bad Request" : "Refused", body);
        free(body);
        gate_log("%s: refused a malformed request: %s", peer, http_strerror(r));
        goto out;
    }
    int st = gate_route_request(c, &req, &rt);
    if (st) {
        answer(cfd, st,
               st == 404   ? "Not Found"
               : st == 405 ? "Method Not Allowed"
                           : "Bad Request",
               "gate: not served here\n");
        gate_log("%s: %.*s %.*s: %d", peer, (int)req.method.len, req.method.ptr,
                 (int)req.target.len, req.target.ptr, st);
        goto out;
    }
    if (rt.info_refs && gate_fetch(c, rt.repo, &err) < 0) {
        char *body = xasprintf("gate: fetching %s from upstream failed:\n%s\n", rt.repo->url, err);
        answer(cfd, 502, "Bad Gateway", body);
        free(body);
        gate_log("%s: fetch of '%s' from upstream failed: %s", peer, rt.repo->name, err);
        goto out;
    }
    if (req.expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (write_all(cfd, cont, sizeof(cont) - 1) < 0)
            goto out;
    }
    cgi = start_cgi(c, &req, &rt, peer, &cin, &cout);
    if (cgi < 0) {
        answer(cfd, 500, "Internal Server Error", "gate: cannot start git http-backend\n");
        goto out;
    }
    st = relay(cfd, &req, in.data + r, in.len - (size_t)r, cin, cout);
    gate_log("%s: %.*s %s%s%s: %d", peer, (int)req.method.len, req.method.ptr, rt.path_info,
             *rt.query ? "?" : "", rt.query, st);
out:
    shutdown(cfd, SHUT_WR);
    close(cfd);
    if (cout >= 0)
        close(cout);
    if (cgi > 0)
        waitpid(cgi, NULL, 0);
    gate_route_release(&rt);
    free(err);
    buf_release(&in);
}

static int listen_on(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    char *host = xstrndup(addr, (size_t)(colon - addr));
    char *end;
    long port = strtol(colon + 1, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = -1, one = 1;
    if (*end || port < 1 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        goto out;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
        close(fd);
        fd = -1;
    }
out:
    free(host);
    return fd;
}

static const char gate_usage[] =
    "usage: bottle-proxy gate [--config FILE] [--listen ADDR:PORT] [--root DIR] [--max-conns N]\n"
    "\n"
    "The git gate: smart HTTP for the bottle's agent (http://gate:8080/<repo>.git),\n"
    "mirrors fetched from upstream before every fetch and push, pushes scanned for\n"
    "credentials by a pre-receive hook and pushed upstream over ssh through the\n"
    "sidecar's raw tunnel before they are accepted.\n"
    "  --config FILE     default " GATE_CONFIG_DEFAULT " (keys/<repo>, token and\n"
    "                    status.json live beside it)\n"
    "  --listen ADDR:PORT  default " GATE_LISTEN_DEFAULT "\n"
    "  --root DIR        the mirrors; default " GATE_ROOT_DEFAULT "\n"
    "  --max-conns N     requests served at once; default 16 (more get 503)\n"
    "Exit status: 0 after SIGTERM, 1 start-up failed, 2 usage.\n";

static int reap(pid_t *kids, size_t *n_kids)
{
    int ws, reaped = 0;
    pid_t p;
    while ((p = waitpid(-1, &ws, WNOHANG)) > 0) {
        for (size_t i = 0; i < *n_kids; i++)
            if (kids[i] == p) {
                kids[i] = kids[--*n_kids];
                reaped++;
                break;
            }
    }
    return reaped;
}

int cmd_gate(int argc, char **argv)
{
    const char *config = GATE_CONFIG_DEFAULT, *listen_addr = GATE_LISTEN_DEFAULT,
               *root = GATE_ROOT_DEFAULT;
    long max_conns = GATE_MAX_CONNS;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            fputs(gate_usage, stdout);
            return 0;
        } else if (i + 1 < argc && !strcmp(argv[i], "--config")) {
            config = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--listen")) {
            listen_addr = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--root")) {
            root = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--max-conns")) {
            char *end;
            max_conns = strtol(argv[++i], &end, 10);
            if (*end || max_conns < 1 || max_conns > 1024) {
                fprintf(stderr, "bottle-proxy gate: --max-conns must be 1..1024\n");
                return 2;
            }
        } else {
            fprintf(stderr, "bottle-proxy gate: unknown argument '%s'\n%s", argv[i], gate_usage);
            return 2;
        }
    }
    char rconf[PATH_MAX], rroot[PATH_MAX];
    struct gate_conf c;
    char *err = NULL;
    pid_t *kids = NULL;
    size_t n_kids = 0;
    int lfd = -1, status = 1;
    (void)mkdir(root, 0755);
    if (!realpath(config, rconf) || !realpath(root, rroot)) {
        fprintf(stderr, "bottle-proxy gate: %s: %s\n", realpath(config, rconf) ? root : config,
                strerror(errno));
        return 1;
    }
    if (gate_conf_load(rconf, rroot, &c, &err) < 0) {
        fprintf(stderr, "bottle-proxy gate: %s\n", err);
        free(err);
        return 1;
    }
    /* Only our settings: no global or system git config, no agent. */
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
    unsetenv("SSH_AUTH_SOCK");
    unsetenv("GIT_DIR");
    signal(SIGPIPE, SIG_IGN);
    if (mkdir(c.state, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "bottle-proxy gate: %s: %s\n", c.state, strerror(errno));
        goto out;
    }
    if (gate_status_init(&c) < 0) {
        fprintf(stderr, "bottle-proxy gate: cannot write %s/status.json: %s\n", c.dir,
                strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < c.n_repos; i++)
        if (gate_mirror_init(&c, &c.repos[i]) < 0)
            goto out;
    lfd = listen_on(listen_addr);
    if (lfd < 0) {
        fprintf(stderr, "bottle-proxy gate: cannot listen on %s: %s\n", listen_addr,
                strerror(errno));
        goto out;
    }
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    kids = xcalloc((size_t)max_conns, sizeof(*kids));
    gate_log("serving %zu repo%s on %s, mirrors in %s", c.n_repos, c.n_repos == 1 ? "" : "s",
             listen_addr, c.root);
    while (!stop_flag) {
        reap(kids, &n_kids);
        if (wait_fd(lfd, POLLIN, 1) <= 0)
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int cfd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        char peer[64] = "?";
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof(peer));
        reap(kids, &n_kids);
        if (n_kids >= (size_t)max_conns) {
            answer(cfd, 503, "Service Unavailable", "gate: busy, try again\n");
            close(cfd);
            continue;
        }
        pid_t p = fork();
        if (p == 0) {
            close(lfd);
            setpgid(0, 0);
            struct sigaction dfl = {.sa_handler = SIG_DFL}, al = {.sa_handler = on_alarm};
            sigaction(SIGTERM, &dfl, NULL);
            sigaction(SIGINT, &dfl, NULL);
            sigaction(SIGALRM, &al, NULL);
            alarm(GATE_REQUEST_S);
            serve(&c, cfd, peer);
            _exit(0);
        }
        close(cfd);
        if (p > 0) {
            setpgid(p, p);
            kids[n_kids++] = p;
        }
    }
    gate_log("stopping: %zu request%s in flight ended", n_kids, n_kids == 1 ? "" : "s");
    for (size_t i = 0; i < n_kids; i++)
        kill(-kids[i], SIGTERM);
    while (n_kids) {
        if (!reap(kids, &n_kids))
            usleep(50000);
    }
    status = 0;
out:
    if (lfd >= 0)
        close(lfd);
    free(kids);
    gate_conf_release(&c);
    return status;
}

/*
 * proxy.c - bottle-proxy's listeners and connection state machine.
 *
 * Design invariants:
 *   - one thread, one epoll loop (loop.h); nothing here blocks except the
 *     signer exchange on a leaf-cache miss (tens of microseconds) and the
 *     config load on reload;
 *   - a config snapshot (struct snapshot: pconf, route table, address
 *     policy, resolver, upstream TLS context) is immutable and reference
 *     counted; the proxy holds the current one, and every request takes a
 *     reference to the snapshot current when its head arrived and keeps it
 *     until its response is done.  A reload swaps the pointer; nothing is
 *     dropped;
 *   - deny by default: a request reaches an upstream only after the route
 *     lookup, the request match, the outbound scan (token patterns and
 *     known secrets, dlp.h) of target, headers and the whole (held,
 *     decoded if gzip/deflate) body, and the address policy of the
 *     resolver all said yes.  Not one byte of a refused request is sent;
 *   - the agent's Authorization and Proxy-Authorization never leave; the
 *     route's secret is added only to the head sent upstream over TLS and
 *     is never logged;
 *   - every size a peer controls is capped: heads (http_limits), held
 *     bodies (BODY_MAX), read buffers (CIN_LIMIT, UIN_LIMIT), relayed
 *     output (RELAY_HIGH: reading the upstream stops while the client's
 *     output is above it), connections (MAX_CONNS).
 *
 * Connection states (one per client connection; the upstream connection,
 * if any, belongs to it and may be reused for the next request to the
 * same host, port and scheme):
 *
 *   accept --> HEAD --CONNECT allowed--> CONNECT_OK --200 flushed--> TLS_ACCEPT
 *               ^ |                                                     |
 *               | +<------------- handshake done: requests inside -----+
 *               | |
 *               | +--head allowed, body to scan--> BODY --held, scanned--+
 *               | +--head allowed, no body, or body not scanned -------->+
 *               |                                                        |
 *               |      +--------- upstream kept for this host -----------+
 *               |      |                                                 v
 *               |      |          UP_TLS <-- DIAL <-- RESOLVE <--- (otherwise)
 *               |      v            |
 *               |   [REQ_BODY] <----+   (body streamed when not scanned)
 *               |      |
 *               |      v
 *               |   RESPONSE_HEAD --> RESPONSE_BODY --+
 *               |                                     |
 *               +----------- keep-alive --------------+
 *
 *   any refusal or failure --> CLOSING --flushed, half-closed, drained--> DEAD
 *
 * The one exception to bumping is a raw tunnel (tunnel.h: a CONNECT to
 * exactly a routes.json "tunnels" entry with its Bearer token).  It is
 * resolved and dialled first, answered 200 only once the upstream is
 * connected, and then relays bytes as they are, passing each side's EOF on
 * as a half-close:
 *
 *   HEAD --CONNECT, tunnel token--> RESOLVE --> DIAL --connected, 200--> RAW
 *   RAW --both EOFs passed on, an error, idle, entry gone + grace--> DEAD
 *
 * A body is held whole (up to BODY_MAX) and scanned before the request is
 * even resolved, unless the route has outbound DLP off: then it is
 * streamed, with its original framing, once the upstream is connected.
 * CLOSING half-closes and reads (and drops) what the client still sends
 * for a moment, so that a refused upload does not turn the answer into a
 * connection reset.
 *
 * Inbound DLP changes RESPONSE_BODY (gzip/deflate decoded) into one of
 * the modes below: for the injection scan on textual content types of
 * routes whose inbound action is not off, and, whenever the sidecar holds
 * secrets, for redacting echoed ones (any route, any content type; the
 * response head too, in step_response_head).  Redaction alone holds only
 * bodies of known length up to REDACT_HOLD_MAX and streams the rest:
 *
 *   IN_HOLD    the body (up to RESP_HOLD_MAX) is held, decoded and scanned
 *              before anything of the response is sent: on an injection
 *              hit with action block the client gets a 403 instead; else
 *              the head goes out with a Content-Length and the original
 *              body, or the decoded body with known secrets redacted;
 *   IN_STREAM  (text/event-stream, a body past the cap) the head goes out
 *              re-framed as chunked (or, for a body of known length that
 *              is not decoded, with its Content-Length, a secret then
 *              replaced by as many bytes) and the decoded text is scanned
 *              and redacted piece by piece (dlp_stream): SSE up to the
 *              last complete event, other text holding back the longest
 *              encoded secret.  A block hit ends the response: an "event:
 *              error" for SSE, otherwise a close without the terminating
 *              chunk (or short of the Content-Length).
 *
 *   RESPONSE_HEAD --inbound--> IN_HOLD --past the cap--> IN_STREAM
 *                         \--(SSE, big Content-Length)--> IN_STREAM
 *   IN_HOLD   --hit, block--> 403 --> CLOSING
 *   IN_STREAM --hit, block--> error event / truncation --> CLOSING
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "addrpolicy.h"
#include "buf.h"
#include "certmint.h"
#include "detect.h"
#include "diag.h"
#include "dlp.h"
#include "err.h"
#include "host.h"
#include "http.h"
#include "loop.h"
#include "pathnorm.h"
#include "pconf.h"
#include "proxy.h"
#include "resolve.h"
#include "route.h"
#include "secretscan.h"
#include "signer.h"
#include "tunnel.h"
#include "xalloc.h"

#define MAX_CONNS       1024 /* proxy clients */
#define MAX_ADMIN_CONNS 16
#define BODY_MAX        ((size_t)8 << 20)   /* held and scanned request body */
#define CIN_LIMIT       ((size_t)64 << 10)  /* client bytes read ahead of parsing */
#define UIN_LIMIT       ((size_t)64 << 10)  /* upstream bytes read ahead of relaying */
#define RELAY_HIGH      ((size_t)256 << 10) /* pending output that stops the other side */
#define READ_CHUNK      16384
#define HANDSHAKE_MS    10000
#define IDLE_MS         60000
#define DRAIN_MS        10000
#define MAX_ADDRS       16
#define MAX_DETECTORS   8
#define RES_SOCKS_MAX   32
#define UPHEAD_MAX      ((size_t)96 << 10)
#define ADMIN_BODY_MAX  ((size_t)64 << 10)
#define LINGER_MS       2000
#define DRIVE_PASSES    64 /* per wake-up and connection, for fairness */
#define ACCEPT_PAUSE_MS 100
#define GRACE_MS        2000   /* a tunnel whose route a reload removed */
#define RAW_IDLE_MS     600000 /* a raw tunnel with no byte either way (ssh sessions idle) */
#define LINGER_MAX      ((size_t)16 << 20)
#define RESP_HOLD_MAX   ((size_t)1 << 20)  /* response held whole for the inbound scan */
#define REDACT_HOLD_MAX ((size_t)64 << 10) /* ... when only redacted: streamed above */
#define INFLATE_RATIO   100u               /* decoded:encoded cap for compressed bodies */

/* ---- logging ---------------------------------------------------------- */

static int g_verbose;

static void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_msg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bottle-proxy: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- snapshots -------------------------------------------------------- */

struct proxy;

struct res_sock {
    struct loop_io io;
    int used;
    struct snapshot *snap;
};

struct snapshot {
    int refs;
    struct proxy *px;
    struct pconf *conf;
    struct route_table *routes;
    struct addr_policy *policy;
    struct resolver *resolver;
    SSL_CTX *up_ctx;
    struct secret_set *secrets; /* known_secrets: every secret conf holds */
    size_t secret_window;       /* the longest encoded secret (dlp.h) */
    struct loop_timer res_timer;
    struct res_sock socks[RES_SOCKS_MAX];
};

/* ---- connections ------------------------------------------------------ */

enum conn_state {
    CS_HEAD,          /* reading a request head (plain listener or inside a tunnel) */
    CS_CONNECT_OK,    /* "200 Connection Established" queued; bump once it is flushed */
    CS_TLS_ACCEPT,    /* TLS handshake with the agent, leaf minted for the tunnel host */
    CS_BODY,          /* holding the request body for the scan */
    CS_RESOLVE,       /* waiting for the resolver */
    CS_DIAL,          /* non-blocking connect to the upstream address */
    CS_UP_TLS,        /* TLS handshake with the upstream */
    CS_REQ_BODY,      /* streaming an unscanned body upstream (route without outbound DLP) */
    CS_RESPONSE_HEAD, /* request sent or being sent; waiting for the response head */
    CS_RESPONSE_BODY, /* relaying the response body */
    CS_RAW,           /* a raw tunnel (tunnel.h): bytes relayed both ways as they are */
    CS_CLOSING,       /* flushing a final answer, then half-close and drain a little */
    CS_DEAD,          /* closed; freed after the current batch */
};

static const char *const state_names[] = {
    "HEAD",     "CONNECT_OK",    "TLS_ACCEPT",    "BODY", "RESOLVE", "DIAL", "UP_TLS",
    "REQ_BODY", "RESPONSE_HEAD", "RESPONSE_BODY", "RAW",  "CLOSING", "DEAD",
};

struct stream {
    struct loop_io io; /* io.fd: -1 when closed */
    SSL *ssl;
    int want_read, want_write; /* what the last SSL call asked for */
    int eof, err;
    int drained; /* the socket's last read came back short: skip reads until EPOLLIN */
    struct buf in, out;
    size_t out_off; /* out[0..out_off) already written */
};

struct conn {
    struct proxy *px;
    enum conn_state state;
    int admin;
    int dead;
    struct conn *prev, *next;
    struct stream cl, up;
    struct loop_timer timer;
    char client[64];

    /* the tunnel, once CONNECT was allowed */
    char *tunnel_host;
    char *tunnel_route; /* the route's host pattern when the tunnel opened */
    int route_gone;     /* a reload removed the route: close when idle */
    int raw;            /* a raw tunnel: dialled before the 200, never bumped (tunnel.h) */
    unsigned char raw_sha256[32]; /* its entry's token digest, to follow reloads */
    int raw_up_shut, raw_cl_shut; /* the EOF of the other side was passed on */
    uint64_t gone_at;             /* raw tunnel whose entry a reload removed: closed then */
    uint16_t tunnel_port;
    uint64_t tunnel_t0, tunnel_in, tunnel_out;
    const char *tunnel_end; /* why the tunnel ended */

    /* the request in progress */
    struct snapshot *snap; /* ref taken when the head arrived */
    struct buf head;       /* copy of the head; req's slices point here */
    struct http_request req;
    enum http_body req_body;
    uint64_t body_left;
    struct http_chunked chunk;
    struct buf body;
    char *host; /* normalised destination */
    uint16_t port;
    int tls;
    const struct pconf_route *route;
    struct buf path;
    struct slice query;
    int req_keep;
    int stream_body;        /* unscanned body: streamed in REQ_BODY */
    int lingering;          /* CLOSING: half-closed, draining */
    struct loop_timer kick; /* another conn_drive() on the next loop turn */
    size_t drained;
    struct resolve_query *query_h;
    struct sockaddr_storage addrs[MAX_ADDRS];
    size_t n_addrs, next_addr;

    /* the response in progress */
    struct http_response resp;
    enum http_body resp_body;
    uint64_t resp_left;
    struct http_chunked rchunk;
    int resp_started; /* bytes of the response went to the client */

    /* inbound DLP of the response in progress (dlp.h) */
    enum { IN_PASS, IN_HOLD, IN_STREAM } in_mode;
    int in_scan_inj, in_redact, in_sse;
    int in_chunked_out; /* IN_STREAM: re-chunked to the client (else until close) */
    int in_abort;       /* the response was ended by the scan */
    enum dlp_coding in_coding;
    struct dlp_inflater *inf;
    struct buf rhead; /* the response head; resp's slices point here */
    struct buf rraw;  /* IN_HOLD: the body as the upstream framed it (maybe compressed) */
    struct buf rtext; /* IN_HOLD: the decoded body, when compressed */
    struct dlp_stream ds;
    size_t n_redacted;

    /* the upstream connection's identity, for reuse */
    char *up_host;
    uint16_t up_port;
    int up_tls;
    int up_busy;   /* a request was sent on it */
    int up_reused; /* the request in progress went out on a kept connection */

    /* audit of the request in progress */
    uint64_t t0;
    int in_request;
    char reason[192];
    const char *detectors[MAX_DETECTORS];
    size_t n_det;
    uint64_t bytes_in, bytes_out;
    int status;
};

struct listener {
    struct loop_io io;
    int admin;
    struct proxy *px;
    struct loop_timer pause; /* out of fds: accepting resumes when it fires */
};

struct proxy {
    const struct proxy_opts *opts;
    struct loop *loop;
    struct snapshot *snap; /* current */
    struct certmint *cm;
    SSL_CTX *srv_ctx;
    struct listener lis[2];
    int ready;
    int draining;
    struct conn *conns;
    size_t n_conns; /* all open connections, admin included */
    size_t n_admin; /* admin connections: capped apart, probes must get through */
    struct loop_timer drain_timer;
    struct http_limits lim;
    int audit_flush_queued; /* audit lines wait in stdout's buffer for the batch end */
    /* metrics */
    uint64_t req_allow, req_deny, reload_ok, reload_failed, conns_refused, conns_total;
};

static void conn_drive(struct conn *c);
static void conn_close(struct conn *c);
static void request_go_upstream(struct conn *c);

/* ---- small helpers ---------------------------------------------------- */

static void audit_flush(void *arg)
{
    struct proxy *px = arg;
    px->audit_flush_queued = 0;
    fflush(stdout);
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

static size_t out_pending(const struct stream *s)
{
    return s->out.len - s->out_off;
}

static char *slice_dup(struct slice s)
{
    return xstrndup(s.ptr ? s.ptr : "", s.len);
}

static void addr_str(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%u", ip, port);
    } else {
        snprintf(out, n, "?");
    }
}

/* "ADDR:PORT" or "[V6]:PORT" into a sockaddr.  0 or BD_E_INVAL. */
static int parse_hostport(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return BD_E_INVAL;
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || !end || *end || end == colon + 1 || port > 65535)
        return BD_E_INVAL;
    char host[INET6_ADDRSTRLEN + 2];
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof(host))
        return BD_E_INVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return BD_E_INVAL;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *ret_len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return BD_E_INVAL;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        *ret_len = sizeof(*a);
    }
    *ret = ss;
    return 0;
}

/* ---- snapshots -------------------------------------------------------- */

static void res_kick(struct snapshot *s)
{
    int ms = resolver_timeout_ms(s->resolver);
    if (ms < 0)
        loop_timer_cancel(s->px->loop, &s->res_timer);
    else
        loop_timer_arm(s->px->loop, &s->res_timer, (uint64_t)ms);
}

static void on_res_timer(struct loop_timer *t)
{
    struct snapshot *s = t->arg;
    resolver_process(s->resolver, -1, 0, 0);
    res_kick(s);
}

static void on_res_io(struct loop_io *io, uint32_t events)
{
    struct res_sock *rs = io->arg;
    struct snapshot *s = rs->snap;
    resolver_process(s->resolver, io->fd, (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0,
                     (events & EPOLLOUT) != 0);
    res_kick(s);
}

static void on_res_watch(void *arg, int fd, int readable, int writable)
{
    struct snapshot *s = arg;
    struct res_sock *slot = NULL, *free_slot = NULL;
    for (size_t i = 0; i < RES_SOCKS_MAX; i++) {
        if (s->socks[i].used && s->socks[i].io.fd == fd)
            slot = &s->socks[i];
        else if (!s->socks[i].used && !free_slot)
            free_slot = &s->socks[i];
    }
    if (!readable && !writable) {
        if (slot) {
            loop_io_del(s->px->loop, &slot->io);
            slot->used = 0;
        }
        return;
    }
    if (!slot) {
        if (!free_slot) {
            log_msg("resolver: more than %d sockets; lookups on fd %d will time out", RES_SOCKS_MAX,
                    fd);
            return;
        }
        slot = free_slot;
        slot->used = 1;
        slot->snap = s;
        loop_io_init(&slot->io, fd, on_res_io, slot);
    }
    uint32_t ev = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
    if (loop_io_set(s->px->loop, &slot->io, ev) < 0)
        log_msg("resolver: cannot watch fd %d: %s", fd, strerror(errno));
}

static void snapshot_free(void *arg)
{
    struct snapshot *s = arg;
    for (size_t i = 0; i < RES_SOCKS_MAX; i++)
        if (s->socks[i].used)
            loop_io_del(s->px->loop, &s->socks[i].io);
    loop_timer_cancel(s->px->loop, &s->res_timer);
    resolver_free(s->resolver);
    addr_policy_free(s->policy);
    route_table_free(s->routes);
    SSL_CTX_free(s->up_ctx);
    secret_set_free(s->secrets);
    pconf_unref(s->conf);
    free(s);
}

static struct snapshot *snapshot_ref(struct snapshot *s)
{
    s->refs++;
    return s;
}

static void snapshot_unref(struct snapshot *s)
{
    if (s && --s->refs == 0)
        loop_defer(s->px->loop, snapshot_free, s);
}

/* The upstream TLS context: verification against the bundle or the system store. */
static int make_up_ctx(const struct pconf *conf, SSL_CTX **ret, const char **why)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    BIO *bio = NULL;
    int r = BD_E_INTERNAL;
    if (!ctx) {
        *why = "cannot create the upstream TLS context";
        goto out;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* A close-delimited body ends at EOF; many servers skip close_notify. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1); /* a read syscall per buffer, not two per record */
    static const unsigned char alpn[] = "\x08http/1.1";
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0) {
        *why = "cannot set ALPN";
        goto out;
    }
    if (conf->upstream_ca_pem) {
        X509_STORE *st = SSL_CTX_get_cert_store(ctx);
        bio = BIO_new_mem_buf(conf->upstream_ca_pem, -1);
        int n = 0;
        X509 *x;
        while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
            X509_STORE_add_cert(st, x);
            X509_free(x);
            n++;
        }
        ERR_clear_error();
        if (n == 0) {
            *why = "upstream-ca.pem holds no certificate";
            r = BD_E_INVAL;
            goto out;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        *why = "cannot load the system CA store";
        goto out;
    }
    *ret = ctx;
    ctx = NULL;
    r = 0;
out:
    BIO_free(bio);
    SSL_CTX_free(ctx);
    return r;
}

/*
 * Builds a snapshot around conf (taking over its reference).  On failure
 * returns a negative code and a static reason, conf released.
 */
static int snapshot_new(struct proxy *px, struct pconf *conf, struct snapshot **ret,
                        const char **why)
{
    struct snapshot *s = xcalloc(1, sizeof(*s));
    struct diag_list diags;
    diag_list_init(&diags);
    int r;
    s->refs = 1;
    s->px = px;
    s->conf = conf;
    loop_timer_init(&s->res_timer, on_res_timer, s);
    r = route_table_build(conf, &diags, &s->routes);
    if (r < 0) {
        *why = "the route table cannot be built";
        goto out;
    }
    r = addr_policy_new(conf->allow_private, conf->n_allow_private, &s->policy);
    if (r < 0) {
        *why = "the address policy cannot be built";
        goto out;
    }
    r = resolver_new(conf->dns_server, conf->hosts, conf->n_hosts, s->policy, NULL, &s->resolver);
    if (r < 0) {
        *why = "the resolver cannot be started";
        goto out;
    }
    resolver_watch(s->resolver, on_res_watch, s);
    r = make_up_ctx(conf, &s->up_ctx, why);
    if (r < 0)
        goto out;
    size_t shorts = 0;
    s->secrets = dlp_secrets_build(conf, &s->secret_window, &shorts);
    if (shorts)
        log_msg("known_secrets: %zu secret(s) shorter than %d bytes cannot be recognised in "
                "traffic",
                shorts, SECRET_MIN_LEN);
    *ret = s;
    s = NULL;
out:
    diag_list_release(&diags);
    if (s) {
        resolver_free(s->resolver);
        addr_policy_free(s->policy);
        route_table_free(s->routes);
        SSL_CTX_free(s->up_ctx);
        pconf_unref(s->conf);
        free(s);
    }
    return r;
}

/* ---- streams ---------------------------------------------------------- */

/*
 * Watches the raw reads OpenSSL makes on a stream's socket: one that came
 * back short (or with EAGAIN) means the socket is empty for now, so
 * stream_read() waits for epoll instead of trying again.  With read-ahead
 * each read asks for a whole buffer, so that is the usual case.
 */
static long bio_read_watch(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
                           int ret, size_t *processed)
{
    (void)argp;
    (void)argi;
    (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        struct stream *s = (struct stream *)BIO_get_callback_arg(b);
        if (ret <= 0 ? BIO_should_retry(b) : processed && *processed < len)
            s->drained = 1;
    }
    return ret;
}

/* Attaches ssl to the stream's socket (with the read watch); 0 or -1. */
static int stream_set_ssl(struct stream *s, SSL *ssl)
{
    if (SSL_set_fd(ssl, s->io.fd) != 1)
        return -1;
    BIO *rb = SSL_get_rbio(ssl);
    BIO_set_callback_ex(rb, bio_read_watch);
    BIO_set_callback_arg(rb, (char *)s);
    s->drained = 0;
    return 0;
}

/* epoll said the socket has something (data, EOF, an error): read again. */
static void stream_ready(struct stream *s, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
        s->drained = 0;
}

static void stream_init(struct stream *s, int fd, struct conn *c, loop_io_cb cb, size_t in_max,
                        size_t out_max)
{
    memset(s, 0, sizeof(*s));
    loop_io_init(&s->io, fd, cb, c);
    buf_init(&s->in, in_max);
    buf_init(&s->out, out_max);
}

/* Closes the socket and TLS state; buffers are emptied but kept. */
static void stream_close(struct loop *l, struct stream *s)
{
    if (s->io.fd < 0)
        return;
    loop_io_del(l, &s->io);
    if (s->ssl) {
        if (!s->err)
            SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    close(s->io.fd);
    s->io.fd = -1;
    s->want_read = s->want_write = 0;
    s->eof = s->err = s->drained = 0;
    buf_reset(&s->in);
    OPENSSL_cleanse(s->out.data ? s->out.data : "", s->out.data ? s->out.len : 0);
    buf_reset(&s->out);
    s->out_off = 0;
}

static void stream_release(struct stream *s)
{
    buf_release(&s->in);
    if (s->out.data)
        OPENSSL_cleanse(s->out.data, s->out.len);
    buf_release(&s->out);
}

/* The result of an SSL call that did not succeed: 0 retry later, -1 failed, -2 clean EOF. */
static int ssl_result(struct stream *s, int r)
{
    int e = SSL_get_error(s->ssl, r);
    s->want_read = s->want_write = 0;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        s->want_read = 1;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        s->want_write = 1;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        return -2;
    default:
        return -1;
    }
}

/*
 * Reads while in holds less than limit.  Returns 1 if bytes arrived; sets eof/err.
 * Stopping at the limit can leave decrypted bytes inside OpenSSL (SSL_pending)
 * that no epoll event will announce.  conn_drive() needs no SSL_pending check
 * for them: a pass that ends without progress already called this for every
 * stream it would read next time, so in is at its limit and its consumer waits
 * for something with its own wake-up (the client's output draining, EPOLLOUT;
 * the response in progress ending); consuming is progress and runs a pass.
 */
static int stream_read(struct stream *s, size_t limit)
{
    int progress = 0;
    char tmp[READ_CHUNK];
    while (!s->eof && !s->err && s->in.len < limit) {
        if (s->drained && !(s->ssl && SSL_has_pending(s->ssl))) {
            s->want_read = s->ssl != NULL;
            break; /* nothing to read until epoll says so: no EAGAIN round trip */
        }
        size_t want = limit - s->in.len;
        if (want > sizeof(tmp))
            want = sizeof(tmp);
        size_t got = 0;
        if (s->ssl) {
            ERR_clear_error();
            int r = SSL_read_ex(s->ssl, tmp, want, &got);
            if (r <= 0) {
                int k = ssl_result(s, r);
                if (k == -2)
                    s->eof = 1;
                else if (k == -1)
                    s->err = 1;
                break;
            }
        } else {
            ssize_t n = recv(s->io.fd, tmp, want, 0);
            if (n == 0) {
                s->eof = 1;
                break;
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    s->drained = 1;
                else if (errno != EINTR)
                    s->err = 1;
                break;
            }
            got = (size_t)n;
            if (got < want)
                s->drained = 1;
        }
        buf_append(&s->in, tmp, got); /* limit <= in.max: cannot fail */
        progress = 1;
    }
    return progress;
}

/* Writes what is pending.  Returns 1 if bytes left; sets err. */
static int stream_flush(struct stream *s)
{
    int progress = 0;
    while (!s->err && out_pending(s) > 0) {
        size_t n = out_pending(s), w = 0;
        if (s->ssl) {
            ERR_clear_error();
            int r = SSL_write_ex(s->ssl, s->out.data + s->out_off, n, &w);
            if (r <= 0) {
                if (ssl_result(s, r) != 0)
                    s->err = 1;
                break;
            }
        } else {
            ssize_t k = send(s->io.fd, s->out.data + s->out_off, n, MSG_NOSIGNAL);
            if (k < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    s->err = 1;
                break;
            }
            w = (size_t)k;
        }
        s->out_off += w;
        progress = 1;
    }
    if (s->out_off == s->out.len) {
        buf_reset(&s->out);
        s->out_off = 0;
    } else if (s->out_off > ((size_t)64 << 10) && s->out_off > s->out.len / 2) {
        consume(&s->out, s->out_off);
        s->out_off = 0;
    }
    return progress;
}

/* ---- connection bookkeeping -------------------------------------------- */

static void set_state(struct conn *c, enum conn_state st)
{
    if (g_verbose)
        log_msg("conn %s: %s -> %s", c->client, state_names[c->state], state_names[st]);
    c->state = st;
}

/* Forgets the inbound state of the response in progress. */
static void inbound_reset(struct conn *c)
{
    c->in_mode = IN_PASS;
    c->in_abort = 0;
    c->resp_started = 0;
    c->n_redacted = 0;
    dlp_inflater_free(c->inf);
    c->inf = NULL;
    buf_reset(&c->rhead);
    if (c->rraw.data)
        OPENSSL_cleanse(c->rraw.data, c->rraw.len);
    buf_reset(&c->rraw);
    if (c->rtext.data)
        OPENSSL_cleanse(c->rtext.data, c->rtext.len);
    buf_reset(&c->rtext);
    dlp_stream_release(&c->ds);
}

static void conn_free(void *arg)
{
    struct conn *c = arg;
    inbound_reset(c);
    buf_release(&c->rhead);
    buf_release(&c->rraw);
    buf_release(&c->rtext);
    stream_release(&c->cl);
    stream_release(&c->up);
    buf_release(&c->head);
    if (c->body.data)
        OPENSSL_cleanse(c->body.data, c->body.len);
    buf_release(&c->body);
    buf_release(&c->path);
    free(c->tunnel_host);
    free(c->tunnel_route);
    free(c->host);
    free(c->up_host);
    free(c);
}

static const char *status_text(int st)
{
    switch (st) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

static void json_str_or_null(cJSON *o, const char *k, const char *v)
{
    cJSON_AddItemToObject(o, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/*
 * The audit line of the request in progress (or of a tunnel, with
 * tunnel = 1).  Only static reasons, normalised names and ids go in.
 */
static void audit(struct conn *c, int tunnel, const char *decision)
{
    struct proxy *px = c->px;
    if (c->admin)
        return;
    cJSON *o = cJSON_CreateObject();
    char ts[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const struct snapshot *snap = c->snap ? c->snap : px->snap;
    cJSON_AddStringToObject(o, "ts", ts);
    json_str_or_null(o, "bottle", snap ? snap->conf->bottle : NULL);
    cJSON_AddStringToObject(o, "client", c->client);
    if (tunnel) {
        json_str_or_null(o, "target", c->tunnel_host);
        cJSON_AddNumberToObject(o, "port", c->tunnel_port);
        cJSON_AddStringToObject(o, "method", "CONNECT");
        cJSON_AddNullToObject(o, "path");
        json_str_or_null(o, "route", c->tunnel_route);
        cJSON_AddStringToObject(o, "decision", decision);
        cJSON_AddStringToObject(o, "reason",
                                c->tunnel_end ? c->tunnel_end
                                : c->raw      ? "raw tunnel closed"
                                              : "tunnel closed");
        cJSON_AddArrayToObject(o, "detectors");
        cJSON_AddNumberToObject(o, "status", 200);
        cJSON_AddNumberToObject(o, "bytes_in", (double)c->tunnel_in);
        cJSON_AddNumberToObject(o, "bytes_out", (double)c->tunnel_out);
        cJSON_AddNumberToObject(o, "ms", (double)(wall_ms() - c->tunnel_t0));
    } else {
        json_str_or_null(o, "target", c->host);
        cJSON_AddNumberToObject(o, "port", c->port);
        char *m = c->head.len ? slice_dup(c->req.method) : NULL;
        json_str_or_null(o, "method", m);
        free(m);
        if (c->path.len && snap &&
            secret_set_scan(snap->secrets, c->path.data, c->path.len, NULL, 0)) {
            /* A known secret in the path (refused): log it redacted. */
            struct buf red;
            buf_init(&red, c->path.len * 4 + 256);
            secret_set_redact(snap->secrets, c->path.data, c->path.len, &red, NULL);
            json_str_or_null(o, "path", buf_cstr(&red));
            buf_release(&red);
        } else {
            json_str_or_null(o, "path", c->path.len ? buf_cstr(&c->path) : NULL);
        }
        json_str_or_null(o, "route", c->route ? c->route->host : NULL);
        cJSON_AddStringToObject(o, "decision", decision);
        cJSON_AddStringToObject(o, "reason", c->reason);
        cJSON *d = cJSON_AddArrayToObject(o, "detectors");
        for (size_t i = 0; i < c->n_det; i++)
            cJSON_AddItemToArray(d, cJSON_CreateString(c->detectors[i]));
        cJSON_AddNumberToObject(o, "status", c->status);
        cJSON_AddNumberToObject(o, "bytes_in", (double)c->bytes_in);
        cJSON_AddNumberToObject(o, "bytes_out", (double)c->bytes_out);
        cJSON_AddNumberToObject(o, "ms", (double)(wall_ms() - c->t0));
    }
    json_str_or_null(o, "config_hash", snap ? snap->conf->config_hash : NULL);
    char *line = cJSON_PrintUnformatted(o);
    fputs(line, stdout);
    fputc('\n', stdout);
    /* One write for all the lines of this batch of events, not one each. */
    if (!px->audit_flush_queued) {
        px->audit_flush_queued = 1;
        loop_defer(px->loop, audit_flush, px);
    }
    cJSON_free(line);
    cJSON_Delete(o);
    if (!tunnel) {
        if (!strcmp(decision, "allow"))
            px->req_allow++;
        else
            px->req_deny++;
    }
}

/* Ends the request in progress: audit line (if not yet), snapshot released. */
static void request_end(struct conn *c, const char *decision)
{
    if (c->in_request) {
        audit(c, 0, decision);
        if (c->tunnel_host) {
            c->tunnel_in += c->bytes_in;
            c->tunnel_out += c->bytes_out;
        }
    }
    c->in_request = 0;
    inbound_reset(c);
    snapshot_unref(c->snap);
    c->snap = NULL;
    if (c->head.data) /* it held the agent's credentials, or a tunnel token */
        OPENSSL_cleanse(c->head.data, c->head.len);
    buf_reset(&c->head);
    if (c->body.data)
        OPENSSL_cleanse(c->body.data, c->body.len);
    buf_reset(&c->body);
    buf_reset(&c->path);
    free(c->host);
    c->host = NULL;
    c->route = NULL;
    c->n_det = 0;
    c->reason[0] = '\0';
    c->status = 0;
    c->bytes_in = c->bytes_out = 0;
}

static void conn_close(struct conn *c)
{
    struct proxy *px = c->px;
    if (c->dead)
        return;
    if (c->in_request)
        request_end(c, c->status && c->status < 400 ? "allow" : "deny");
    if (c->tunnel_host)
        audit(c, 1, "allow");
    set_state(c, CS_DEAD);
    c->dead = 1;
    loop_timer_cancel(px->loop, &c->timer);
    loop_timer_cancel(px->loop, &c->kick);
    if (c->query_h && c->snap)
        resolver_cancel(c->snap->resolver, c->query_h);
    c->query_h = NULL;
    snapshot_unref(c->snap);
    c->snap = NULL;
    stream_close(px->loop, &c->up);
    stream_close(px->loop, &c->cl);
    if (c->prev)
        c->prev->next = c->next;
    else
        px->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    px->n_conns--;
    if (c->admin)
        px->n_admin--;
    loop_defer(px->loop, conn_free, c);
    if (px->draining && px->n_conns == 0)
        loop_stop(px->loop);
}

/*
 * Answers the request in progress with status and a plain-text reason, and
 * closes the connection once that is flushed.  decision is "deny" for a
 * policy refusal, "allow" for an allowed request that failed upstream.
 */
static void reply_error(struct conn *c, int status, const char *decision, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_error(struct conn *c, int status, const char *decision, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
    c->status = status;
    if (c->resp_started) {
        /* The client already has part of a response: only closing is honest. */
        conn_close(c);
        return;
    }
    stream_close(c->px->loop, &c->up);
    free(c->up_host);
    c->up_host = NULL;
    int before = (int)c->cl.out.len;
    buf_appendf(&c->cl.out,
                "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                status, status_text(status), strlen(c->reason) + 1, c->reason);
    c->bytes_out += c->cl.out.len - (size_t)before;
    c->in_request = 1;
    request_end(c, decision);
    if (c->tunnel_host && !c->tunnel_end)
        c->tunnel_end = "closed after a refused request";
    set_state(c, CS_CLOSING);
}

/* ---- admin endpoint -------------------------------------------------- */

static void admin_reply(struct conn *c, int status, const char *ctype, const char *body)
{
    buf_appendf(&c->cl.out,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                "Connection: close\r\n\r\n%s",
                status, status_text(status), ctype, strlen(body), body);
    set_state(c, CS_CLOSING);
}

static void admin_handle(struct conn *c)
{
    struct proxy *px = c->px;
    const struct http_request *req = &c->req;
    struct buf b;
    buf_init(&b, ADMIN_BODY_MAX);
    char *path = slice_dup(req->target);
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';
    if (!slice_eq_cstr(req->method, "GET") && !slice_eq_cstr(req->method, "HEAD")) {
        admin_reply(c, 405, "text/plain", "method not allowed\n");
    } else if (!strcmp(path, "/healthz")) {
        if (px->ready && !px->draining)
            admin_reply(c, 200, "text/plain", "ok\n");
        else
            admin_reply(c, 503, "text/plain", px->draining ? "draining\n" : "starting\n");
    } else if (!strcmp(path, "/config-hash")) {
        if (px->snap) {
            buf_appendf(&b, "%s\n", px->snap->conf->config_hash);
            admin_reply(c, 200, "text/plain", buf_cstr(&b));
        } else {
            admin_reply(c, 503, "text/plain", "no config\n");
        }
    } else if (!strcmp(path, "/metrics")) {
        buf_appendf(
            &b,
            "# HELP bottle_proxy_requests_total Requests decided, by decision.\n"
            "# TYPE bottle_proxy_requests_total counter\n"
            "bottle_proxy_requests_total{decision=\"allow\"} %llu\n"
            "bottle_proxy_requests_total{decision=\"deny\"} %llu\n"
            "# HELP bottle_proxy_connections_open Client connections open, admin included.\n"
            "# TYPE bottle_proxy_connections_open gauge\n"
            "bottle_proxy_connections_open %zu\n"
            "# HELP bottle_proxy_connections_total Client connections accepted.\n"
            "# TYPE bottle_proxy_connections_total counter\n"
            "bottle_proxy_connections_total %llu\n"
            "# HELP bottle_proxy_connections_refused_total Connections refused "
            "over the limit.\n"
            "# TYPE bottle_proxy_connections_refused_total counter\n"
            "bottle_proxy_connections_refused_total %llu\n"
            "# HELP bottle_proxy_reloads_total Config reloads, by result.\n"
            "# TYPE bottle_proxy_reloads_total counter\n"
            "bottle_proxy_reloads_total{result=\"ok\"} %llu\n"
            "bottle_proxy_reloads_total{result=\"failed\"} %llu\n",
            (unsigned long long)px->req_allow, (unsigned long long)px->req_deny, px->n_conns,
            (unsigned long long)px->conns_total, (unsigned long long)px->conns_refused,
            (unsigned long long)px->reload_ok, (unsigned long long)px->reload_failed);
        if (px->snap)
            buf_appendf(&b,
                        "# HELP bottle_proxy_config_info The config being served.\n"
                        "# TYPE bottle_proxy_config_info gauge\n"
                        "bottle_proxy_config_info{hash=\"%s\",generation=\"%s\"} 1\n",
                        px->snap->conf->config_hash, px->snap->conf->generation);
        admin_reply(c, 200, "text/plain; version=0.0.4", buf_cstr(&b));
    } else {
        admin_reply(c, 404, "text/plain", "not found\n");
    }
    free(path);
    buf_release(&b);
}

/* ---- requests --------------------------------------------------------- */

/* 1 if requests on r are scanned by the outbound detectors (bodies held). */
static int dlp_scans(const struct pconf_route *r)
{
    return (r->dlp_out & (PCONF_DLP_TOKEN_PATTERNS | PCONF_DLP_KNOWN_SECRETS)) &&
           r->dlp_out_action != PCONF_ACTION_OFF;
}

static void add_detector(struct conn *c, const char *id)
{
    for (size_t i = 0; i < c->n_det; i++)
        if (!strcmp(c->detectors[i], id))
            return;
    if (c->n_det < MAX_DETECTORS)
        c->detectors[c->n_det++] = id;
}

/*
 * Scans bytes with the outbound detectors (known secrets in any of their
 * encodings, token patterns); 1 if the request must be refused (answered).
 */
static int dlp_scan(struct conn *c, const char *p, size_t n, const char *where)
{
    const struct pconf_route *r = c->route;
    if (!dlp_scans(r))
        return 0;
    const char *secret = NULL, *token = NULL;
    if (r->dlp_out & PCONF_DLP_KNOWN_SECRETS) {
        struct secret_match sm;
        if (secret_set_scan(c->snap->secrets, p, n, &sm, 1)) {
            secret = sm.name;
            add_detector(c, "known_secrets");
        }
    }
    if (r->dlp_out & PCONF_DLP_TOKEN_PATTERNS) {
        struct detect_match m;
        if (detect_scan(p, n, &m)) {
            token = m.detector;
            add_detector(c, m.detector);
        }
    }
    if ((!secret && !token) || r->dlp_out_action != PCONF_ACTION_BLOCK)
        return 0;
    if (secret)
        reply_error(c, 403, "deny",
                    "outbound credential detected in the %s (detector known_secrets, secret %s)",
                    where, secret);
    else
        reply_error(c, 403, "deny", "outbound credential detected in the %s (detector %s)", where,
                    token);
    return 1;
}

/*
 * The held body as the scan must read it: decoded when the request says
 * Content-Encoding gzip or deflate (within BODY_MAX and INFLATE_RATIO).
 * 1 if the request was refused; otherwise *ret points to the bytes to scan
 * (the body itself or dec).
 */
static int request_body_decoded(struct conn *c, struct buf *dec, const char **ret, size_t *ret_n)
{
    const struct http_header *ce =
        http_find_header(c->req.headers, c->req.n_headers, "content-encoding");
    *ret = c->body.data ? c->body.data : "";
    *ret_n = c->body.len;
    if (!ce)
        return 0;
    enum dlp_coding cod = dlp_coding_of(ce->value);
    if (cod == DLP_CODING_IDENTITY)
        return 0;
    if (c->route->dlp_out_action != PCONF_ACTION_BLOCK) {
        /* Audit only: decode what can be decoded, refuse nothing. */
        if (cod == DLP_CODING_OTHER ||
            dlp_inflate_all(cod, *ret, *ret_n, BODY_MAX, INFLATE_RATIO, dec) < 0)
            return 0;
        *ret = dec->data ? dec->data : "";
        *ret_n = dec->len;
        return 0;
    }
    if (cod == DLP_CODING_OTHER) {
        reply_error(c, 415, "deny",
                    "request Content-Encoding the scan cannot decode (only gzip and deflate)");
        return 1;
    }
    int r = dlp_inflate_all(cod, *ret, *ret_n, BODY_MAX, INFLATE_RATIO, dec);
    if (r == DLP_E_SIZE) {
        reply_error(c, 413, "deny", "decompressed request body over the %zu-byte scan limit",
                    BODY_MAX);
        return 1;
    }
    if (r == DLP_E_RATIO) {
        reply_error(c, 413, "deny", "compressed request body over the %u:1 decompression ratio",
                    INFLATE_RATIO);
        return 1;
    }
    if (r < 0) {
        reply_error(c, 400, "deny", "compressed request body cannot be decoded");
        return 1;
    }
    *ret = dec->data ? dec->data : "";
    *ret_n = dec->len;
    return 0;
}

static int is_auth_header(struct slice name)
{
    return slice_ieq_cstr(name, "authorization") || slice_ieq_cstr(name, "proxy-authorization");
}

/*
 * A CONNECT that tunnel_check() accepted: resolved and dialled like any
 * request (address policy included); the 200 goes out only once the
 * upstream is connected (raw_established()), so a refused address or a
 * failed dial is an ordinary 403 or 502 the client can report.
 */
static void raw_open(struct conn *c, const struct pconf_tunnel *t)
{
    if (c->cl.in.len > 0) {
        reply_error(c, 400, "deny", "bytes sent before the CONNECT was answered");
        return;
    }
    c->raw = 1;
    memcpy(c->raw_sha256, t->token_sha256, sizeof(c->raw_sha256));
    c->tls = 0;
    snprintf(c->reason, sizeof(c->reason), "raw tunnel");
    request_go_upstream(c);
}

/* The raw tunnel's upstream is connected: answer 200 and relay (CS_RAW). */
static void raw_established(struct conn *c)
{
    struct proxy *px = c->px;
    if (!tunnel_kept(px->snap->conf, c->host, c->port, c->raw_sha256)) {
        reply_error(c, 403, "deny", "raw tunnel refused: its entry was removed by a reload");
        return;
    }
    c->up_busy = 1; /* never an idle keep-alive connection */
    c->tunnel_host = xstrdup(c->host);
    c->tunnel_port = c->port;
    c->tunnel_t0 = wall_ms();
    c->tunnel_in = c->head.len;
    buf_puts(&c->cl.out, "HTTP/1.1 200 Connection Established\r\n\r\n");
    c->tunnel_out = c->cl.out.len;
    /* One audit line for the whole tunnel, written when it ends. */
    c->in_request = 0;
    request_end(c, "allow");
    set_state(c, CS_RAW);
}

/*
 * RAW: client bytes to the upstream and back, each way held back while the
 * other side's output is above RELAY_HIGH; an EOF is passed on (shutdown
 * SHUT_WR) once everything before it is out, and the tunnel ends when both
 * ways are done or either side fails.
 */
static int step_raw(struct conn *c)
{
    int progress = 0;
    if (c->cl.err || c->up.err) {
        if (!c->tunnel_end)
            c->tunnel_end = c->cl.err ? "raw tunnel: client connection failed"
                                      : "raw tunnel: upstream connection failed";
        conn_close(c);
        return 1;
    }
    if (c->cl.in.len && out_pending(&c->up) < RELAY_HIGH) {
        if (buf_append(&c->up.out, c->cl.in.data, c->cl.in.len) == 0) {
            c->tunnel_in += c->cl.in.len;
            buf_reset(&c->cl.in);
            progress = 1;
        }
    }
    if (c->up.in.len && out_pending(&c->cl) < RELAY_HIGH) {
        if (buf_append(&c->cl.out, c->up.in.data, c->up.in.len) == 0) {
            c->tunnel_out += c->up.in.len;
            buf_reset(&c->up.in);
            progress = 1;
        }
    }
    if (c->cl.eof && !c->cl.in.len && !out_pending(&c->up) && !c->raw_up_shut) {
        shutdown(c->up.io.fd, SHUT_WR);
        c->raw_up_shut = 1;
        progress = 1;
    }
    if (c->up.eof && !c->up.in.len && !out_pending(&c->cl) && !c->raw_cl_shut) {
        shutdown(c->cl.io.fd, SHUT_WR);
        c->raw_cl_shut = 1;
        progress = 1;
    }
    if (c->raw_up_shut && c->raw_cl_shut) {
        conn_close(c);
        return 1;
    }
    return progress;
}

static void handle_connect(struct conn *c)
{
    const struct http_request *req = &c->req;
    char *host = NULL;
    const char *why = NULL;
    c->port = req->port;
    if (c->tunnel_host) {
        reply_error(c, 400, "deny", "CONNECT inside a tunnel is refused");
        return;
    }
    int r = host_normalize(req->host.ptr, req->host.len, 0, &host);
    if (r == HOST_E_IP_LITERAL || host_is_ip_literal(req->host.ptr, req->host.len)) {
        c->host = slice_dup(req->host);
        reply_error(c, 403, "deny", "IP-literal destinations are denied");
        goto out;
    }
    if (r < 0) {
        reply_error(c, 400, "deny", "bad CONNECT host: %s", host_strerror(r));
        goto out;
    }
    c->host = xstrdup(host);
    const struct pconf_tunnel *tun = NULL;
    enum tunnel_verdict tv =
        tunnel_check(c->snap->conf, host, req->port, req->headers, req->n_headers, &tun);
    if (tv == TUNNEL_OK) {
        raw_open(c, tun);
        goto out;
    }
    if (tv == TUNNEL_BAD_TOKEN) {
        log_msg("raw tunnel to %s:%u refused for %s: wrong token", host, req->port, c->client);
        reply_error(c, 403, "deny", "raw tunnel refused: wrong token");
        goto out;
    }
    c->route = route_lookup(c->snap->routes, host, req->port, &why);
    if (!c->route) {
        if (tv == TUNNEL_NO_TOKEN) {
            log_msg("raw tunnel to %s:%u refused for %s: no token", host, req->port, c->client);
            reply_error(c, 403, "deny",
                        "raw tunnel refused: no token (Proxy-Authorization: Bearer)");
        } else {
            reply_error(c, 403, "deny", "%s", why);
        }
        goto out;
    }
    if (c->cl.in.len > 0) {
        reply_error(c, 400, "deny", "bytes sent before the CONNECT was answered");
        goto out;
    }
    /* The tunnel gets its own audit line when it ends; requests inside get theirs. */
    c->tunnel_host = host;
    host = NULL;
    c->tunnel_port = req->port;
    c->tunnel_route = xstrdup(c->route->host);
    c->tunnel_t0 = wall_ms();
    c->tunnel_in = c->head.len;
    c->in_request = 0;
    buf_puts(&c->cl.out, "HTTP/1.1 200 Connection Established\r\n\r\n");
    c->tunnel_out = c->cl.out.len;
    request_end(c, "allow");
    set_state(c, CS_CONNECT_OK);
out:
    free(host);
}

/* Everything decided on the head of a non-CONNECT request.  0: go on; -1: answered. */
static int check_request_head(struct conn *c, struct slice target)
{
    const struct http_request *req = &c->req;
    const char *why = NULL;
    struct slice names[HTTP_MAX_HEADERS], values[HTTP_MAX_HEADERS];
    size_t n = 0;
    char *ctype = NULL;
    int ret = -1;

    c->route = route_lookup(c->snap->routes, c->host, c->port, &why);
    if (!c->route) {
        reply_error(c, 403, "deny", "%s", why);
        goto out;
    }
    if (!c->tls && c->route->auth_scheme) {
        reply_error(c, 403, "deny", "a route with credentials is served over https only");
        goto out;
    }
    if (req->upgrade || req->conn_upgrade) {
        reply_error(c, 403, "deny", "Upgrade is refused");
        goto out;
    }
    buf_release(&c->path);
    buf_init(&c->path, 3 * target.len + 16);
    if (path_normalize(target.ptr, target.len, &c->path, &c->query, &why) < 0) {
        reply_error(c, 403, "deny", "path refused: %s", why);
        goto out;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        if (is_auth_header(req->headers[i].name))
            continue;
        names[n] = req->headers[i].name;
        values[n] = req->headers[i].value;
        n++;
    }
    const struct http_header *ct = http_find_header(req->headers, req->n_headers, "content-type");
    if (ct)
        ctype = slice_dup(ct->value);
    char *method = slice_dup(req->method);
    int allow = route_match_request(c->snap->routes, c->route, method, names, values, n,
                                    buf_cstr(&c->path), c->query, ctype, &why);
    free(method);
    if (!allow) {
        reply_error(c, 403, "deny", "%s", why);
        goto out;
    }
    snprintf(c->reason, sizeof(c->reason), "%s", why); /* the allow reason, for the audit */
    /* Outbound scan: after the agent's credentials are gone, before injection. */
    if (dlp_scan(c, target.ptr, target.len, "request target"))
        goto out;
    for (size_t i = 0; i < n; i++)
        if (dlp_scan(c, values[i].ptr, values[i].len, "request headers") ||
            dlp_scan(c, names[i].ptr, names[i].len, "request headers"))
            goto out;
    ret = 0;
out:
    free(ctype);
    return ret;
}

static void handle_request(struct conn *c)
{
    struct proxy *px = c->px;
    const struct http_request *req = &c->req;
    struct slice target = req->target;
    char *host = NULL;
    int r;

    c->snap = snapshot_ref(px->snap);
    c->in_request = 1;
    c->t0 = wall_ms();
    c->bytes_in = c->head.len;
    c->req_keep = http_request_keep_alive(req);

    if (c->admin) {
        c->in_request = 0;
        admin_handle(c);
        return;
    }
    if (slice_eq_cstr(req->method, "CONNECT")) {
        handle_connect(c);
        return;
    }
    if (c->tunnel_host) {
        if (req->form != HTTP_FORM_ORIGIN) {
            reply_error(c, 400, "deny", "only origin-form requests are accepted in a tunnel");
            return;
        }
        c->host = xstrdup(c->tunnel_host);
        c->port = c->tunnel_port;
        c->tls = 1;
        r = host_normalize(req->host_header_name.ptr, req->host_header_name.len, 0, &host);
        if (r < 0 || strcmp(host, c->tunnel_host) ||
            (req->host_header_port && req->host_header_port != c->tunnel_port)) {
            reply_error(c, 403, "deny", "Host does not match the CONNECT target");
            goto out;
        }
    } else if (req->form == HTTP_FORM_ABSOLUTE) {
        /* http:// follows the port-80 rules; https:// (a client that sends
         * it without CONNECT) is forwarded over TLS, as origin-form is. */
        int https = slice_ieq_cstr(req->scheme, "https");
        r = host_normalize(req->host.ptr, req->host.len, 0, &host);
        c->port = req->port;
        if (r < 0) {
            c->host = slice_dup(req->host);
            if (r == HOST_E_IP_LITERAL || host_is_ip_literal(req->host.ptr, req->host.len))
                reply_error(c, 403, "deny", "IP-literal destinations are denied");
            else
                reply_error(c, 400, "deny", "bad host: %s", host_strerror(r));
            return;
        }
        c->host = host;
        host = NULL;
        c->tls = https;
        target = req->path.len ? req->path : SLICE_LIT("/");
    } else if (req->form == HTTP_FORM_ORIGIN) {
        if (!req->has_host) {
            reply_error(c, 400, "deny", "no Host header");
            return;
        }
        r = host_normalize(req->host_header_name.ptr, req->host_header_name.len, 0, &host);
        c->port = 443;
        if (r < 0) {
            c->host = slice_dup(req->host_header_name);
            if (r == HOST_E_IP_LITERAL)
                reply_error(c, 403, "deny", "IP-literal destinations are denied");
            else
                reply_error(c, 400, "deny", "bad Host: %s", host_strerror(r));
            return;
        }
        c->host = host;
        host = NULL;
        c->tls = 1;
    } else {
        reply_error(c, 400, "deny", "unsupported request form");
        return;
    }

    if (check_request_head(c, target) < 0)
        goto out;

    c->req_body = http_request_body(req);
    c->stream_body = 0;
    if (c->req_body != HTTP_BODY_NONE && !dlp_scans(c->route) &&
        !(c->req_body == HTTP_BODY_LENGTH && req->content_length == 0)) {
        /* Nothing to scan: stream it once the upstream is there. */
        c->stream_body = 1;
        c->body_left = req->content_length;
        http_chunked_init(&c->chunk, &px->lim);
        if (req->expect_continue) {
            buf_puts(&c->cl.out, "HTTP/1.1 100 Continue\r\n\r\n");
            c->bytes_out += 25;
        }
        request_go_upstream(c);
        goto out;
    }
    if (c->req_body == HTTP_BODY_LENGTH && req->content_length > BODY_MAX) {
        reply_error(c, 413, "deny", "request body over the %zu-byte scan limit", BODY_MAX);
        goto out;
    }
    if (c->req_body == HTTP_BODY_NONE ||
        (c->req_body == HTTP_BODY_LENGTH && req->content_length == 0)) {
        request_go_upstream(c);
        goto out;
    }
    c->body_left = req->content_length;
    http_chunked_init(&c->chunk, &px->lim);
    if (req->expect_continue) {
        buf_puts(&c->cl.out, "HTTP/1.1 100 Continue\r\n\r\n");
        c->bytes_out += 25;
    }
    set_state(c, CS_BODY);
out:
    free(host);
}

/* BODY: holds the body.  Returns 1 on progress. */
static int step_body(struct conn *c)
{
    struct buf *in = &c->cl.in;
    int done = 0;
    if (in->len == 0) {
        if (c->cl.eof || c->cl.err) {
            conn_close(c);
            return 1;
        }
        return 0;
    }
    if (c->req_body == HTTP_BODY_LENGTH) {
        size_t n = in->len < c->body_left ? in->len : (size_t)c->body_left;
        buf_append(&c->body, in->data, n); /* content_length <= BODY_MAX */
        consume(in, n);
        c->bytes_in += n;
        c->body_left -= n;
        done = c->body_left == 0;
    } else {
        size_t used = 0;
        int r = http_chunked_feed_buf(&c->chunk, in->data, in->len, &used, &c->body);
        if (r == HTTP_E_TOO_BIG) {
            reply_error(c, 413, "deny", "request body over the %zu-byte scan limit", BODY_MAX);
            return 1;
        }
        if (r < 0) {
            reply_error(c, 400, "deny", "bad chunked body: %s", http_strerror(r));
            return 1;
        }
        consume(in, used);
        c->bytes_in += used;
        done = r == 1;
    }
    if (done) {
        struct buf dec;
        const char *p;
        size_t pn;
        buf_init(&dec, BODY_MAX);
        int refused = request_body_decoded(c, &dec, &p, &pn) || dlp_scan(c, p, pn, "request body");
        if (dec.data)
            OPENSSL_cleanse(dec.data, dec.len);
        buf_release(&dec);
        if (refused)
            return 1;
        request_go_upstream(c);
    }
    return 1;
}

/* Serialises the head for upstream into up.out, then the body. */
static int queue_request(struct conn *c)
{
    const struct http_request *req = &c->req;
    static const struct slice drop[] = {
        SLICE_LIT("host"),   SLICE_LIT("authorization"),  SLICE_LIT("proxy-authorization"),
        SLICE_LIT("expect"), SLICE_LIT("content-length"), SLICE_LIT("accept-encoding"),
    };
    struct http_header add[6];
    size_t n_add = 0;
    char *hostval = NULL, *auth = NULL, *clen = NULL, *target = NULL, *ae = NULL;
    int r;
    int default_port = c->tls ? 443 : 80;
    hostval = c->port == default_port ? xstrdup(c->host) : xasprintf("%s:%u", c->host, c->port);
    add[n_add++] = (struct http_header){SLICE_LIT("Host"), slice_from_cstr(hostval)};
    if (c->stream_body && c->req_body == HTTP_BODY_CHUNKED) {
        add[n_add++] = (struct http_header){SLICE_LIT("Transfer-Encoding"), SLICE_LIT("chunked")};
    } else if (c->req_body != HTTP_BODY_NONE) {
        clen = xasprintf("%llu", c->stream_body ? (unsigned long long)c->req.content_length
                                                : (unsigned long long)c->body.len);
        add[n_add++] = (struct http_header){SLICE_LIT("Content-Length"), slice_from_cstr(clen)};
    }
    if (c->tls && c->route->auth_scheme && c->route->secret) {
        auth = xasprintf("%s %s", c->route->auth_scheme, c->route->secret->value);
        add[n_add++] = (struct http_header){SLICE_LIT("Authorization"), slice_from_cstr(auth)};
    }
    /* Only codings the inbound scan can decode. */
    const struct http_header *aeh =
        http_find_header(req->headers, req->n_headers, "accept-encoding");
    if (aeh) {
        ae = dlp_accept_encoding(aeh->value);
        add[n_add++] = (struct http_header){SLICE_LIT("Accept-Encoding"), slice_from_cstr(ae)};
    }
    if (c->query.ptr)
        target = xasprintf("%s?%.*s", buf_cstr(&c->path), (int)c->query.len, c->query.ptr);
    else
        target = xstrdup(buf_cstr(&c->path));
    struct http_forward fw = {
        .target = slice_from_cstr(target),
        .drop = drop,
        .n_drop = sizeof(drop) / sizeof(drop[0]),
        .add = add,
        .n_add = n_add,
    };
    r = http_request_serialize(req, &fw, &c->up.out);
    if (r == 0 && c->body.len)
        r = buf_append(&c->up.out, c->body.data, c->body.len);
    if (auth) {
        OPENSSL_cleanse(auth, strlen(auth));
        free(auth);
    }
    free(hostval);
    free(clen);
    free(target);
    free(ae);
    return r;
}

static void send_request(struct conn *c)
{
    if (queue_request(c) < 0) {
        reply_error(c, 400, "deny", "the request cannot be forwarded");
        return;
    }
    c->up_busy = 1;
    set_state(c, c->stream_body ? CS_REQ_BODY : CS_RESPONSE_HEAD);
}

/* REQ_BODY: relays an unscanned body as it arrives, framing checked. */
static int step_req_body(struct conn *c)
{
    struct buf *in = &c->cl.in;
    if (in->len == 0) {
        if (c->cl.eof || c->cl.err) {
            conn_close(c);
            return 1;
        }
        return 0;
    }
    if (out_pending(&c->up) >= RELAY_HIGH)
        return 0;
    size_t n = in->len;
    int done;
    if (c->req_body == HTTP_BODY_LENGTH) {
        if (n > c->body_left)
            n = (size_t)c->body_left;
        c->body_left -= n;
        done = c->body_left == 0;
    } else {
        size_t used = 0;
        int r = http_chunked_feed(&c->chunk, in->data, n, &used, NULL, NULL);
        if (r < 0) {
            reply_error(c, 400, "deny", "bad chunked body: %s", http_strerror(r));
            return 1;
        }
        n = used;
        done = r == 1;
    }
    if (buf_append(&c->up.out, in->data, n) < 0) {
        reply_error(c, 502, "allow", "upstream output buffer full");
        return 1;
    }
    consume(in, n);
    c->bytes_in += n;
    if (done)
        set_state(c, CS_RESPONSE_HEAD);
    return 1;
}

static void dial_next(struct conn *c);

static void on_resolved(void *arg, const struct resolve_result *res)
{
    struct conn *c = arg;
    c->query_h = NULL;
    if (c->dead)
        return;
    if (res->status != RESOLVE_OK) {
        if (res->status == RESOLVE_DENIED)
            reply_error(c, 403, "deny", "destination address refused: %s", res->reason);
        else
            reply_error(c, 502, "allow", "name resolution failed: %s",
                        res->reason ? res->reason : resolve_status_str(res->status));
        conn_drive(c);
        return;
    }
    c->n_addrs = res->n_addrs < MAX_ADDRS ? res->n_addrs : MAX_ADDRS;
    memcpy(c->addrs, res->addrs, c->n_addrs * sizeof(c->addrs[0]));
    c->next_addr = 0;
    dial_next(c);
    conn_drive(c);
}

static void on_up_io(struct loop_io *io, uint32_t events);

static void up_connected(struct conn *c)
{
    c->up_host = xstrdup(c->host);
    c->up_port = c->port;
    c->up_tls = c->tls;
    if (c->raw) {
        raw_established(c);
        return;
    }
    if (!c->tls) {
        send_request(c);
        return;
    }
    SSL *ssl = SSL_new(c->snap->up_ctx);
    if (!ssl || SSL_set_tlsext_host_name(ssl, c->host) != 1 || SSL_set1_host(ssl, c->host) != 1 ||
        stream_set_ssl(&c->up, ssl) < 0) {
        SSL_free(ssl);
        reply_error(c, 502, "allow", "upstream TLS set-up failed");
        return;
    }
    SSL_set_connect_state(ssl);
    c->up.ssl = ssl;
    set_state(c, CS_UP_TLS);
}

/* Dials the next allowed address; on running out answers 502. */
static void dial_next(struct conn *c)
{
    struct proxy *px = c->px;
    while (c->next_addr < c->n_addrs) {
        const struct sockaddr_storage *sa = &c->addrs[c->next_addr++];
        socklen_t len =
            sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        stream_close(px->loop, &c->up);
        loop_io_init(&c->up.io, fd, on_up_io, c);
        if (connect(fd, (const struct sockaddr *)sa, len) == 0) {
            up_connected(c);
            return;
        }
        if (errno == EINPROGRESS) {
            set_state(c, CS_DIAL);
            return;
        }
        close(fd);
        c->up.io.fd = -1;
    }
    reply_error(c, 502, "allow", "cannot connect to the upstream");
}

static void dial_done(struct conn *c)
{
    int err = 0;
    socklen_t l = sizeof(err);
    if (getsockopt(c->up.io.fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
        err = errno;
    if (err == EINPROGRESS)
        return;
    if (err) {
        stream_close(c->px->loop, &c->up);
        dial_next(c);
        return;
    }
    up_connected(c);
}

static void request_go_upstream(struct conn *c)
{
    int r;
    if (c->up.io.fd >= 0 && c->up_host && !strcmp(c->up_host, c->host) && c->up_port == c->port &&
        c->up_tls == c->tls && !c->up.eof && !c->up.err) {
        c->up_reused = 1;
        send_request(c);
        return;
    }
    c->up_reused = 0;
    stream_close(c->px->loop, &c->up);
    free(c->up_host);
    c->up_host = NULL;
    set_state(c, CS_RESOLVE);
    r = resolver_lookup(c->snap->resolver, c->host, c->port, on_resolved, c, &c->query_h);
    if (r < 0) {
        reply_error(c, 502, "allow", "name resolution cannot start: %s", bd_strerror(r));
        return;
    }
    res_kick(c->snap);
}

/* UP_TLS: drives the upstream handshake. */
static int step_up_tls(struct conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->up.ssl);
    if (r == 1) {
        const unsigned char *p = NULL;
        unsigned n = 0;
        SSL_get0_alpn_selected(c->up.ssl, &p, &n);
        if (n && (n != 8 || memcmp(p, "http/1.1", 8))) {
            reply_error(c, 502, "allow", "upstream chose a protocol other than http/1.1");
            return 1;
        }
        send_request(c);
        return 1;
    }
    if (ssl_result(&c->up, r) == 0)
        return 0;
    long v = SSL_get_verify_result(c->up.ssl);
    if (v != X509_V_OK)
        reply_error(c, 502, "allow", "upstream certificate refused: %s",
                    X509_verify_cert_error_string(v));
    else
        reply_error(c, 502, "allow", "upstream TLS handshake failed");
    return 1;
}

/* The response is complete: audit, keep or close both sides. */
static void response_done(struct conn *c)
{
    int up_keep = c->resp_body != HTTP_BODY_CLOSE && http_response_keep_alive(&c->resp) &&
                  !c->up.eof && !c->up.err;
    int cl_keep = up_keep && c->req_keep && !c->px->draining && !c->cl.eof && !c->route_gone;
    c->up_busy = 0;
    if (!up_keep) {
        stream_close(c->px->loop, &c->up);
        free(c->up_host);
        c->up_host = NULL;
    }
    request_end(c, "allow");
    set_state(c, cl_keep ? CS_HEAD : CS_CLOSING);
}

/* RFC 9110 9.2.2: a request that may be sent twice. */
static int idempotent(const struct conn *c)
{
    static const char *const m[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        if (slice_eq_cstr(c->req.method, m[i]))
            return 1;
    return 0;
}

/* ---- inbound DLP ------------------------------------------------------ */

#define IN_ABORTED (-3000) /* the response was ended or refused by the scan */

/*
 * 1 if the response whose head is in c->resp goes through the inbound
 * scan (and c->in_* say how); 0 to relay it untouched.  *refuse is set
 * when a blocking route gets a response it cannot decode.
 */
static int inbound_wanted(struct conn *c, const char **refuse)
{
    const struct pconf_route *r = c->route;
    const struct http_response *resp = &c->resp;
    *refuse = NULL;
    if (!r || c->resp_body == HTTP_BODY_NONE ||
        (c->resp_body == HTTP_BODY_LENGTH && c->resp_left == 0))
        return 0;
    const struct http_header *ct = http_find_header(resp->headers, resp->n_headers, "content-type");
    int sse = 0;
    int textual = dlp_textual(ct ? ct->value : SLICE_LIT(""), &sse);
    int scan_inj = r->dlp_in_action != PCONF_ACTION_OFF &&
                   (r->dlp_in & PCONF_DLP_NAIVE_INJECTION) != 0 && textual;
    /* Echoed secrets are redacted whatever the route's inbound detectors
     * and the content type say: the agent never sees a credential. */
    int redact = secret_set_count(c->snap->secrets) > 0;
    if (!scan_inj && !redact)
        return 0;
    enum dlp_coding cod = DLP_CODING_IDENTITY;
    size_t n_ce = 0;
    for (size_t i = 0; i < resp->n_headers; i++) {
        struct slice nm = resp->headers[i].name;
        if (slice_ieq_cstr(nm, "content-encoding")) {
            cod = n_ce++ ? DLP_CODING_OTHER : dlp_coding_of(resp->headers[i].value);
        }
    }
    if (cod == DLP_CODING_OTHER) {
        if (scan_inj && r->dlp_in_action == PCONF_ACTION_BLOCK)
            *refuse = "upstream response in a Content-Encoding the inbound scan cannot decode";
        return 0;
    }
    c->in_scan_inj = scan_inj;
    c->in_redact = redact;
    c->in_sse = sse;
    c->in_coding = cod;
    return 1;
}

/*
 * Appends the response head to the client's output without its framing
 * headers (and without Content-Encoding when drop_ce: the body goes out
 * decoded), then extra (complete header lines) and the blank line.
 */
static void emit_head(struct conn *c, int drop_ce, const char *extra)
{
    struct buf *o = &c->cl.out;
    const struct http_response *resp = &c->resp;
    size_t before = o->len;
    buf_appendf(o, "HTTP/1.1 %d %.*s\r\n", resp->status, (int)resp->reason.len,
                resp->reason.ptr ? resp->reason.ptr : "");
    for (size_t i = 0; i < resp->n_headers; i++) {
        struct slice nm = resp->headers[i].name, v = resp->headers[i].value;
        if (slice_ieq_cstr(nm, "content-length") || slice_ieq_cstr(nm, "transfer-encoding") ||
            (drop_ce && slice_ieq_cstr(nm, "content-encoding")))
            continue;
        buf_append(o, nm.ptr, nm.len);
        buf_puts(o, ": ");
        buf_append(o, v.ptr ? v.ptr : "", v.len);
        buf_puts(o, "\r\n");
    }
    buf_puts(o, extra);
    buf_puts(o, "\r\n");
    c->bytes_out += o->len - before;
    c->resp_started = 1;
}

/* One piece of a streamed response: a chunk, or raw bytes until close. */
static int emit_piece(struct conn *c, const char *p, size_t n)
{
    struct buf *o = &c->cl.out;
    size_t before = o->len;
    int r = 0;
    if (n == 0)
        return 0;
    if (c->in_chunked_out)
        r = buf_appendf(o, "%zx\r\n", n);
    if (r == 0)
        r = buf_append(o, p, n);
    if (r == 0 && c->in_chunked_out)
        r = buf_puts(o, "\r\n");
    if (r < 0) {
        o->len = before;
        if (o->data)
            o->data[before] = '\0';
        return r;
    }
    c->bytes_out += o->len - before;
    return 0;
}

static void note_audit_only(struct conn *c, const char *det)
{
    size_t l = strlen(c->reason);
    if (l < sizeof(c->reason) - 1)
        snprintf(c->reason + l, sizeof(c->reason) - l,
                 "%sresponse: prompt injection detected (detector %s), audit only", l ? "; " : "",
                 det);
}

/* Ends a streamed response the scan stopped: SSE error event, else truncation. */
static void inbound_block_stream(struct conn *c, const char *det)
{
    snprintf(c->reason, sizeof(c->reason),
             "response ended: prompt injection detected (detector %s)", det);
    if (c->in_sse) {
        char ev[256];
        int n = snprintf(ev, sizeof(ev),
                         "event: error\ndata: response blocked by bottle-proxy: prompt injection "
                         "detected (detector %s)\n\n",
                         det);
        emit_piece(c, ev, (size_t)n);
        if (c->in_chunked_out && buf_puts(&c->cl.out, "0\r\n\r\n") == 0)
            c->bytes_out += 5;
    }
    /* Otherwise no terminating chunk: the client sees a truncated body. */
    stream_close(c->px->loop, &c->up);
    free(c->up_host);
    c->up_host = NULL;
    c->up_busy = 0;
    request_end(c, "deny");
    if (c->tunnel_host && !c->tunnel_end)
        c->tunnel_end = "closed after a blocked response";
    set_state(c, CS_CLOSING);
}

/* The stream scanner's next piece out.  0, or IN_ABORTED (the response is over). */
static int inbound_pump(struct conn *c, int final)
{
    struct buf piece;
    const char *hit = NULL;
    buf_init(&piece, (size_t)32 << 20);
    size_t before = c->n_redacted;
    int r = dlp_stream_take(&c->ds, final, &piece, &hit, &c->n_redacted);
    if (c->n_redacted > before)
        add_detector(c, "known_secrets");
    if (r == 0 && hit) {
        add_detector(c, hit);
        if (c->route->dlp_in_action == PCONF_ACTION_BLOCK) {
            buf_release(&piece);
            inbound_block_stream(c, hit);
            return IN_ABORTED;
        }
        note_audit_only(c, hit);
    }
    if (r == 0)
        r = emit_piece(c, piece.data, piece.len);
    buf_release(&piece);
    if (r < 0) {
        snprintf(c->reason, sizeof(c->reason), "response too large to relay after the scan");
        conn_close(c);
        return IN_ABORTED;
    }
    return 0;
}

/* Head out (re-framed), scanner ready: the response is relayed as it is scanned. */
static void inbound_start_stream(struct conn *c)
{
    int decoded = c->in_coding != DLP_CODING_IDENTITY;
    /* A body of known length sent as it came keeps its length: redaction
     * then replaces a secret by as many bytes (a download keeps its
     * Content-Length; a block cuts it short and closes). */
    int same_length = !decoded && !c->in_sse && c->resp_body == HTTP_BODY_LENGTH;
    if (same_length) {
        char extra[64];
        snprintf(extra, sizeof(extra), "Content-Length: %llu\r\n",
                 (unsigned long long)c->resp.content_length);
        c->in_chunked_out = 0;
        emit_head(c, 0, extra);
    } else if (c->req.version_minor >= 1) {
        c->in_chunked_out = 1;
        emit_head(c, decoded, "Transfer-Encoding: chunked\r\n");
    } else {
        c->in_chunked_out = 0;
        c->req_keep = 0;
        emit_head(c, decoded, "Connection: close\r\n");
    }
    dlp_stream_init(&c->ds, c->in_redact ? c->snap->secrets : NULL, c->snap->secret_window,
                    c->in_scan_inj, c->in_sse);
    c->ds.same_length = same_length;
    if (decoded && !c->inf)
        c->inf = dlp_inflater_new(c->in_coding, INFLATE_RATIO);
    c->in_mode = IN_STREAM;
}

static int inbound_decode_failed(struct conn *c, int r)
{
    const char *why = r == DLP_E_RATIO ? "over the decompression ratio cap" : "cannot be decoded";
    if (!c->resp_started) {
        reply_error(c, 502, "deny", "upstream response body %s for the inbound scan", why);
    } else {
        snprintf(c->reason, sizeof(c->reason), "upstream response body %s for the inbound scan",
                 why);
        conn_close(c);
    }
    return IN_ABORTED;
}

static int inbound_hold_to_stream(struct conn *c)
{
    struct buf *t = c->in_coding != DLP_CODING_IDENTITY ? &c->rtext : &c->rraw;
    inbound_start_stream(c);
    int r = dlp_stream_push(&c->ds, t->data ? t->data : "", t->len);
    OPENSSL_cleanse(c->rraw.data ? c->rraw.data : "", c->rraw.len);
    buf_reset(&c->rraw);
    OPENSSL_cleanse(c->rtext.data ? c->rtext.data : "", c->rtext.len);
    buf_reset(&c->rtext);
    if (r < 0)
        return inbound_decode_failed(c, DLP_E_SIZE);
    return inbound_pump(c, 0);
}

/* Body bytes of the response (transfer framing removed).  0 or IN_ABORTED. */
static int inbound_data(struct conn *c, const char *p, size_t n)
{
    int r;
    if (c->in_mode == IN_HOLD) {
        if (c->rraw.len + n <= RESP_HOLD_MAX) {
            buf_append(&c->rraw, p, n);
            if (!c->inf)
                return 0;
            r = dlp_inflater_feed(c->inf, p, n, &c->rtext);
            if (r < 0)
                return inbound_decode_failed(c, r);
            if (c->rtext.len <= RESP_HOLD_MAX)
                return 0;
            return inbound_hold_to_stream(c); /* decoded text over the cap */
        }
        r = inbound_hold_to_stream(c);
        if (r < 0)
            return r;
    }
    if (c->inf) {
        struct buf dec;
        buf_init(&dec, (size_t)32 << 20);
        r = dlp_inflater_feed(c->inf, p, n, &dec);
        if (r == 0)
            r = dlp_stream_push(&c->ds, dec.data ? dec.data : "", dec.len) < 0 ? DLP_E_SIZE : 0;
        buf_release(&dec);
        if (r < 0)
            return inbound_decode_failed(c, r);
    } else if (dlp_stream_push(&c->ds, p, n) < 0) {
        return inbound_decode_failed(c, DLP_E_SIZE);
    }
    return inbound_pump(c, 0);
}

static int on_resp_data(void *arg, const char *p, size_t n)
{
    return inbound_data(arg, p, n);
}

/* The whole body arrived. */
static void inbound_finish(struct conn *c)
{
    if (c->in_mode == IN_STREAM) {
        if (inbound_pump(c, 1) < 0)
            return;
        if (c->in_chunked_out && buf_puts(&c->cl.out, "0\r\n\r\n") == 0)
            c->bytes_out += 5;
        response_done(c);
        return;
    }
    const struct secret_set *secrets = c->snap->secrets;
    struct buf *t = c->inf ? &c->rtext : &c->rraw;
    const char *txt = t->data ? t->data : "";
    if (c->in_scan_inj) {
        const char *hit = dlp_injection(txt, t->len);
        if (hit) {
            add_detector(c, hit);
            if (c->route->dlp_in_action == PCONF_ACTION_BLOCK) {
                reply_error(c, 403, "deny",
                            "response blocked: prompt injection detected (detector %s)", hit);
                return;
            }
            note_audit_only(c, hit);
        }
    }
    struct buf red;
    size_t cnt = 0;
    char extra[64];
    buf_init(&red, (size_t)4 << 20);
    if (c->in_redact && secret_set_scan(secrets, txt, t->len, NULL, 0) &&
        secret_set_redact(secrets, txt, t->len, &red, &cnt) < 0) {
        buf_release(&red);
        reply_error(c, 502, "deny", "response too large to relay after redaction");
        return;
    }
    size_t before;
    if (cnt) {
        add_detector(c, "known_secrets");
        snprintf(extra, sizeof(extra), "Content-Length: %zu\r\n", red.len);
        emit_head(c, 1, extra);
        before = c->cl.out.len;
        buf_append(&c->cl.out, red.data, red.len);
    } else {
        snprintf(extra, sizeof(extra), "Content-Length: %zu\r\n", c->rraw.len);
        emit_head(c, 0, extra);
        before = c->cl.out.len;
        buf_append(&c->cl.out, c->rraw.data ? c->rraw.data : "", c->rraw.len);
    }
    c->bytes_out += c->cl.out.len - before;
    buf_release(&red);
    response_done(c);
}

/* RESPONSE_BODY with the inbound scan. */
/*
 * The upstream closed (or failed) with nothing left to relay: a body
 * delimited by the close is complete and finished by finish(); any other
 * body was cut short and the client connection is closed.  Returns 1.
 */
static int upstream_ended(struct conn *c, void (*finish)(struct conn *))
{
    if (c->resp_body == HTTP_BODY_CLOSE && !c->up.err) {
        finish(c);
    } else {
        snprintf(c->reason, sizeof(c->reason), "upstream closed mid-response");
        conn_close(c);
    }
    return 1;
}

static int step_response_body_inbound(struct conn *c)
{
    struct buf *in = &c->up.in;
    int progress = 0;
    if (in->len > 0 && out_pending(&c->cl) < RELAY_HIGH) {
        size_t n = in->len;
        int done = 0, r;
        if (c->inf && n > 4096)
            n = 4096; /* bounds what one step decodes */
        if (c->resp_body == HTTP_BODY_LENGTH) {
            if (n > c->resp_left)
                n = (size_t)c->resp_left;
            c->resp_left -= n;
            done = c->resp_left == 0;
            r = inbound_data(c, in->data, n);
        } else if (c->resp_body == HTTP_BODY_CHUNKED) {
            size_t used = 0;
            r = http_chunked_feed(&c->rchunk, in->data, n, &used, on_resp_data, c);
            if (c->dead || c->state != CS_RESPONSE_BODY)
                return 1;
            if (r < 0) {
                snprintf(c->reason, sizeof(c->reason), "bad chunked upstream body: %s",
                         http_strerror(r));
                conn_close(c);
                return 1;
            }
            n = used;
            done = r == 1;
        } else {
            r = inbound_data(c, in->data, n);
        }
        if (c->dead || c->state != CS_RESPONSE_BODY)
            return 1;
        consume(in, n);
        progress = 1;
        if (done) {
            inbound_finish(c);
            return 1;
        }
    }
    if (in->len == 0 && (c->up.eof || c->up.err))
        return upstream_ended(c, inbound_finish);
    return progress;
}

/*
 * Known secrets echoed in the response head (a header that repeats the
 * request's Authorization, say) are redacted in place: the head in up.in
 * is rewritten and parsed again, and *head_len follows.  0, or -1 after
 * replying 502.
 */
static int redact_response_head(struct conn *c, int *head_len)
{
    const struct secret_set *secrets = c->snap->secrets;
    struct buf *in = &c->up.in;
    size_t n = (size_t)*head_len, cnt = 0;
    if (!secret_set_count(secrets) || !secret_set_scan(secrets, in->data, n, NULL, 0))
        return 0;
    struct buf fresh;
    buf_init(&fresh, in->max);
    if (secret_set_redact(secrets, in->data, n, &fresh, &cnt) < 0 ||
        buf_append(&fresh, in->data + n, in->len - n) < 0) {
        buf_release(&fresh);
        reply_error(c, 502, "deny", "response head too large to relay after redaction");
        return -1;
    }
    OPENSSL_cleanse(in->data, n);
    buf_release(in);
    *in = fresh;
    c->n_redacted += cnt;
    add_detector(c, "known_secrets");
    int r = http_parse_response(in->data, in->len, &c->px->lim, &c->resp);
    if (r <= 0) {
        reply_error(c, 502, "deny", "response head unusable after redaction");
        return -1;
    }
    *head_len = r;
    return 0;
}

static int step_response_head(struct conn *c)
{
    struct buf *in = &c->up.in;
    for (;;) {
        if (in->len == 0 && !c->up.eof && !c->up.err)
            return 0;
        int r = http_parse_response(in->data ? in->data : "", in->len, &c->px->lim, &c->resp);
        if (r == 0) {
            if (c->up.eof || c->up.err) {
                if (c->up_reused && in->len == 0 && !c->stream_body && idempotent(c)) {
                    /* A kept connection the upstream closed as we reused it:
                     * the request was not answered, send it once more on a
                     * fresh connection. */
                    stream_close(c->px->loop, &c->up);
                    free(c->up_host);
                    c->up_host = NULL;
                    c->up_busy = 0;
                    request_go_upstream(c);
                    return 1;
                }
                reply_error(c, 502, "allow", "upstream closed before answering");
                return 1;
            }
            return 0;
        }
        if (r < 0) {
            reply_error(c, 502, "allow", "bad upstream response: %s", http_strerror(r));
            return 1;
        }
        if (c->resp.status == 101) {
            reply_error(c, 502, "allow", "upstream switched protocols");
            return 1;
        }
        if (http_response_is_interim(&c->resp)) {
            consume(in, (size_t)r); /* our own 100 went out already; drop theirs */
            continue;
        }
        if (redact_response_head(c, &r) < 0)
            return 1;
        c->status = c->resp.status;
        c->resp_body = http_response_body(&c->resp, c->req.method);
        c->resp_left = c->resp.content_length;
        http_chunked_init(&c->rchunk, &c->px->lim);
        const char *refuse = NULL;
        if (inbound_wanted(c, &refuse)) {
            /* Held or streamed through the scan: keep the head, parsed anew. */
            buf_reset(&c->rhead);
            buf_append(&c->rhead, in->data, (size_t)r);
            consume(in, (size_t)r);
            http_parse_response(c->rhead.data, c->rhead.len, &c->px->lim, &c->resp);
            set_state(c, CS_RESPONSE_BODY);
            /* Held whole only where a block can still replace it, or where
             * it is small enough to keep its Content-Length. */
            size_t hold_max = c->in_scan_inj ? RESP_HOLD_MAX : REDACT_HOLD_MAX;
            if (c->in_sse || (c->resp_body != HTTP_BODY_LENGTH && !c->in_scan_inj) ||
                (c->resp_body == HTTP_BODY_LENGTH && c->resp_left > hold_max)) {
                inbound_start_stream(c);
            } else {
                c->in_mode = IN_HOLD;
                if (c->in_coding != DLP_CODING_IDENTITY)
                    c->inf = dlp_inflater_new(c->in_coding, INFLATE_RATIO);
            }
            return 1;
        }
        if (refuse) {
            reply_error(c, 502, "deny", "%s", refuse);
            return 1;
        }
        buf_append(&c->cl.out, in->data, (size_t)r);
        c->bytes_out += (size_t)r;
        c->resp_started = 1;
        consume(in, (size_t)r);
        set_state(c, CS_RESPONSE_BODY);
        if (c->resp_body == HTTP_BODY_NONE ||
            (c->resp_body == HTTP_BODY_LENGTH && c->resp_left == 0))
            response_done(c);
        return 1;
    }
}

static int step_response_body(struct conn *c)
{
    struct buf *in = &c->up.in;
    int progress = 0;
    if (c->in_mode != IN_PASS)
        return step_response_body_inbound(c);
    if (in->len > 0 && out_pending(&c->cl) < RELAY_HIGH) {
        size_t n = in->len;
        int done = 0;
        if (c->resp_body == HTTP_BODY_LENGTH) {
            if (n > c->resp_left)
                n = (size_t)c->resp_left;
            c->resp_left -= n;
            done = c->resp_left == 0;
        } else if (c->resp_body == HTTP_BODY_CHUNKED) {
            size_t used = 0;
            int r = http_chunked_feed(&c->rchunk, in->data, n, &used, NULL, NULL);
            if (r < 0) {
                c->reason[0] = '\0';
                snprintf(c->reason, sizeof(c->reason), "bad chunked upstream body: %s",
                         http_strerror(r));
                conn_close(c);
                return 1;
            }
            n = used;
            done = r == 1;
        }
        buf_append(&c->cl.out, in->data, n);
        c->bytes_out += n;
        consume(in, n);
        progress = 1;
        if (done) {
            response_done(c);
            return 1;
        }
    }
    if (in->len == 0 && (c->up.eof || c->up.err))
        return upstream_ended(c, response_done);
    return progress;
}

/* HEAD: parses the next request. */
static int step_head(struct conn *c)
{
    struct buf *in = &c->cl.in;
    if (in->len == 0) {
        if (c->cl.eof || c->cl.err || c->px->draining) {
            conn_close(c);
            return 1;
        }
        return 0;
    }
    int r = http_parse_request(in->data, in->len, &c->px->lim, &c->req);
    if (r == 0) {
        if (c->cl.eof || c->cl.err) {
            conn_close(c);
            return 1;
        }
        return 0;
    }
    if (r < 0) {
        c->snap = snapshot_ref(c->px->snap);
        c->t0 = wall_ms();
        c->bytes_in = in->len;
        if (c->admin)
            admin_reply(c, http_error_status(r), "text/plain", "bad request\n");
        else
            reply_error(c, http_error_status(r), "deny", "bad request: %s", http_strerror(r));
        return 1;
    }
    buf_reset(&c->head);
    buf_append(&c->head, in->data, (size_t)r);
    consume(in, (size_t)r);
    http_parse_request(c->head.data, c->head.len, &c->px->lim, &c->req);
    handle_request(c);
    return 1;
}

/* SNI must name the CONNECT host. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)arg;
    struct conn *c = SSL_get_app_data(ssl);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!sni || !c || !c->tunnel_host)
        return SSL_TLSEXT_ERR_OK;
    if (strcasecmp(sni, c->tunnel_host) != 0) {
        c->tunnel_end = "SNI does not match the CONNECT host";
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* CONNECT_OK: once the 200 is out, start the server-side handshake. */
static int step_connect_ok(struct conn *c)
{
    struct proxy *px = c->px;
    X509 *leaf = NULL;
    if (out_pending(&c->cl) > 0)
        return 0;
    int r = certmint_get(px->cm, c->tunnel_host, &leaf);
    if (r < 0) {
        log_msg("cannot mint a certificate for '%s': %s", c->tunnel_host, bd_strerror(r));
        c->tunnel_end = "certificate minting failed";
        conn_close(c);
        return 1;
    }
    SSL *ssl = SSL_new(px->srv_ctx);
    if (!ssl || SSL_use_certificate(ssl, leaf) != 1 ||
        SSL_use_PrivateKey(ssl, certmint_leaf_key(px->cm)) != 1 ||
        stream_set_ssl(&c->cl, ssl) < 0) {
        X509_free(leaf);
        SSL_free(ssl);
        log_msg("cannot set up TLS for '%s'", c->tunnel_host);
        c->tunnel_end = "TLS set-up failed";
        conn_close(c);
        return 1;
    }
    X509_free(leaf);
    SSL_set_app_data(ssl, c);
    SSL_set_accept_state(ssl);
    c->cl.ssl = ssl;
    set_state(c, CS_TLS_ACCEPT);
    return 1;
}

static int step_tls_accept(struct conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->cl.ssl);
    if (r == 1) {
        set_state(c, CS_HEAD);
        return 1;
    }
    if (ssl_result(&c->cl, r) == 0)
        return 0;
    if (!c->tunnel_end)
        c->tunnel_end = "TLS handshake with the client failed";
    c->cl.err = 1;
    conn_close(c);
    return 1;
}

/*
 * CLOSING: flush, half-close, then drop what the client still sends until
 * it closes, LINGER_MAX bytes or the LINGER_MS timer.
 */
static int step_closing(struct conn *c)
{
    if (c->cl.err || c->drained > LINGER_MAX) {
        conn_close(c);
        return 1;
    }
    if (out_pending(&c->cl) > 0)
        return 0;
    if (c->cl.eof) {
        conn_close(c);
        return 1;
    }
    if (!c->lingering) {
        c->lingering = 1;
        if (c->cl.ssl) {
            ERR_clear_error();
            SSL_shutdown(c->cl.ssl);
        }
        shutdown(c->cl.io.fd, SHUT_WR);
        loop_timer_arm(c->px->loop, &c->timer, LINGER_MS);
        return 1;
    }
    if (c->cl.in.len) {
        c->drained += c->cl.in.len;
        buf_reset(&c->cl.in);
        return 1;
    }
    return 0;
}

/* One step of the state machine; 1 when something changed. */
static int step(struct conn *c)
{
    switch (c->state) {
    case CS_HEAD:
        return step_head(c);
    case CS_CONNECT_OK:
        if (c->cl.err) {
            conn_close(c);
            return 1;
        }
        return step_connect_ok(c);
    case CS_TLS_ACCEPT:
        return step_tls_accept(c);
    case CS_BODY:
        return step_body(c);
    case CS_RESOLVE:
    case CS_DIAL:
        if (c->cl.err) {
            conn_close(c);
            return 1;
        }
        return 0;
    case CS_UP_TLS:
        if (c->cl.err) {
            conn_close(c);
            return 1;
        }
        return step_up_tls(c);
    case CS_REQ_BODY:
        if (c->up.err) {
            reply_error(c, 502, "allow", "upstream closed while receiving the body");
            return 1;
        }
        return step_req_body(c);
    case CS_RESPONSE_HEAD:
        if (c->cl.err) {
            conn_close(c);
            return 1;
        }
        return step_response_head(c);
    case CS_RESPONSE_BODY:
        if (c->cl.err) {
            conn_close(c);
            return 1;
        }
        return step_response_body(c);
    case CS_RAW:
        return step_raw(c);
    case CS_CLOSING:
        return step_closing(c);
    case CS_DEAD:
        return 0;
    }
    return 0;
}

static int client_reads(const struct conn *c)
{
    switch (c->state) {
    case CS_HEAD:
    case CS_BODY:
    case CS_RESOLVE:
    case CS_DIAL:
    case CS_UP_TLS:
    case CS_REQ_BODY:
    case CS_RESPONSE_HEAD:
    case CS_RESPONSE_BODY:
    case CS_RAW:
        return 1;
    case CS_CLOSING:
        return c->lingering;
    default:
        return 0;
    }
}

static int upstream_reads(const struct conn *c)
{
    if (c->up.io.fd < 0)
        return 0;
    switch (c->state) {
    case CS_RESPONSE_HEAD:
        return 1;
    case CS_RESPONSE_BODY:
    case CS_RAW:
        return out_pending(&c->cl) < RELAY_HIGH;
    case CS_DIAL:
    case CS_UP_TLS:
    case CS_REQ_BODY:
        return 0;
    default:
        return !c->up_busy; /* idle keep-alive: notice a close */
    }
}

static void update_interest(struct conn *c)
{
    struct loop *l = c->px->loop;
    uint32_t ev = 0;
    if ((client_reads(c) && c->cl.in.len < CIN_LIMIT && !c->cl.eof) || c->cl.want_read)
        ev |= EPOLLIN;
    if (out_pending(&c->cl) > 0 || c->cl.want_write)
        ev |= EPOLLOUT;
    if (c->cl.io.fd >= 0 && loop_io_set(l, &c->cl.io, ev) < 0) {
        conn_close(c);
        return;
    }
    if (c->up.io.fd >= 0) {
        ev = 0;
        if ((upstream_reads(c) && c->up.in.len < UIN_LIMIT && !c->up.eof) || c->up.want_read)
            ev |= EPOLLIN;
        if (out_pending(&c->up) > 0 || c->up.want_write || c->state == CS_DIAL)
            ev |= EPOLLOUT;
        if (loop_io_set(l, &c->up.io, ev) < 0)
            conn_close(c);
    }
}

static void arm_timer(struct conn *c)
{
    uint64_t ms = IDLE_MS;
    if (c->lingering)
        return; /* LINGER_MS runs from the half-close */
    if (c->route_gone && c->state == CS_HEAD)
        ms = GRACE_MS;
    if (c->state == CS_RAW) {
        /* A raw tunnel has no idle point between requests: a removed entry
         * ends it GRACE_MS after the reload, busy or not. */
        uint64_t now = loop_now_ms(c->px->loop);
        ms = !c->route_gone ? RAW_IDLE_MS : c->gone_at > now ? c->gone_at - now : 0;
    }
    switch (c->state) {
    case CS_CONNECT_OK:
    case CS_TLS_ACCEPT:
    case CS_RESOLVE:
    case CS_DIAL:
    case CS_UP_TLS:
        ms = HANDSHAKE_MS;
        break;
    default:
        break;
    }
    loop_timer_arm(c->px->loop, &c->timer, ms);
}

static void on_kick(struct loop_timer *t)
{
    struct conn *c = t->arg;
    if (!c->dead)
        conn_drive(c);
}

static void conn_drive(struct conn *c)
{
    int i;
    for (i = 0; i < DRIVE_PASSES && !c->dead; i++) {
        int progress = 0;
        /* Each pass re-learns what TLS waits for: stale wants would spin. */
        c->cl.want_read = c->cl.want_write = 0;
        c->up.want_read = c->up.want_write = 0;
        progress |= stream_flush(&c->cl);
        if (c->up.io.fd >= 0 && c->state != CS_DIAL)
            progress |= stream_flush(&c->up);
        if (c->up.err && c->state != CS_RESPONSE_HEAD && c->state != CS_RESPONSE_BODY &&
            c->state != CS_UP_TLS && c->state != CS_REQ_BODY && c->state != CS_RAW) {
            stream_close(c->px->loop, &c->up); /* an idle or finished upstream went away */
            free(c->up_host);
            c->up_host = NULL;
        }
        if (client_reads(c) && c->cl.io.fd >= 0)
            progress |= stream_read(&c->cl, CIN_LIMIT);
        if (upstream_reads(c))
            progress |= stream_read(&c->up, UIN_LIMIT);
        if (c->up.io.fd >= 0 && !c->up_busy && c->state != CS_DIAL && c->state != CS_UP_TLS &&
            (c->up.eof || c->up.in.len)) {
            /* The idle upstream closed, or spoke out of turn: drop it. */
            stream_close(c->px->loop, &c->up);
            free(c->up_host);
            c->up_host = NULL;
        }
        progress |= step(c);
        if (progress && !c->dead)
            arm_timer(c);
        if (!progress)
            break;
    }
    if (c->dead)
        return;
    update_interest(c);
    if (i == DRIVE_PASSES) {
        /* Fairness cap hit while still busy: TLS may hold decrypted bytes
         * no epoll event will announce, so come back on the next turn. */
        loop_timer_arm(c->px->loop, &c->kick, 0);
    }
}

static void on_client_io(struct loop_io *io, uint32_t events)
{
    struct conn *c = io->arg;
    stream_ready(&c->cl, events);
    if (!c->dead)
        conn_drive(c);
}

static void on_up_io(struct loop_io *io, uint32_t events)
{
    struct conn *c = io->arg;
    if (c->dead)
        return;
    stream_ready(&c->up, events);
    if (c->state == CS_DIAL && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        dial_done(c);
    if (!c->dead)
        conn_drive(c);
}

static void on_conn_timer(struct loop_timer *t)
{
    struct conn *c = t->arg;
    switch (c->state) {
    case CS_RESOLVE:
    case CS_DIAL:
    case CS_UP_TLS:
    case CS_RESPONSE_HEAD:
        reply_error(c, 504, "allow", "upstream timed out");
        conn_drive(c);
        return;
    case CS_CONNECT_OK:
    case CS_TLS_ACCEPT:
        c->tunnel_end = "TLS handshake timed out";
        break;
    case CS_HEAD:
        if (c->tunnel_host && !c->tunnel_end)
            c->tunnel_end = "idle timeout";
        break;
    case CS_RAW:
        if (!c->tunnel_end)
            c->tunnel_end = "raw tunnel: idle timeout";
        break;
    default:
        snprintf(c->reason, sizeof(c->reason), "idle timeout");
        break;
    }
    conn_close(c);
}

/* ---- listeners -------------------------------------------------------- */

static void on_accept(struct loop_io *io, uint32_t events)
{
    struct listener *li = io->arg;
    struct proxy *px = li->px;
    (void)events;
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Level-triggered: without a pause this would spin. */
                log_msg("cannot accept: %s; pausing the listener", strerror(errno));
                loop_io_set(px->loop, io, 0);
                loop_timer_arm(px->loop, &li->pause, ACCEPT_PAUSE_MS);
            }
            return;
        }
        int full =
            li->admin ? px->n_admin >= MAX_ADMIN_CONNS : px->n_conns - px->n_admin >= MAX_CONNS;
        if (full || px->draining) {
            px->conns_refused++;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = xcalloc(1, sizeof(*c));
        c->px = px;
        c->admin = li->admin;
        c->state = CS_HEAD;
        addr_str((struct sockaddr *)&ss, c->client, sizeof(c->client));
        stream_init(&c->cl, fd, c, on_client_io, CIN_LIMIT + READ_CHUNK, (size_t)4 << 20);
        stream_init(&c->up, -1, c, on_up_io, UIN_LIMIT + READ_CHUNK, BODY_MAX + UPHEAD_MAX);
        buf_init(&c->head, (size_t)64 << 10);
        buf_init(&c->body, BODY_MAX);
        buf_init(&c->path, 1);
        buf_init(&c->rhead, UIN_LIMIT);
        buf_init(&c->rraw, RESP_HOLD_MAX);
        buf_init(&c->rtext, RESP_HOLD_MAX + READ_CHUNK * INFLATE_RATIO + ((size_t)2 << 20));
        loop_timer_init(&c->timer, on_conn_timer, c);
        loop_timer_init(&c->kick, on_kick, c);
        c->next = px->conns;
        if (px->conns)
            px->conns->prev = c;
        px->conns = c;
        px->n_conns++;
        if (c->admin)
            px->n_admin++;
        px->conns_total++;
        arm_timer(c);
        conn_drive(c);
    }
}

static void on_accept_pause(struct loop_timer *t)
{
    struct listener *li = t->arg;
    if (li->io.fd >= 0)
        loop_io_set(li->px->loop, &li->io, EPOLLIN);
}

static int listen_on(struct proxy *px, int i, const char *spec)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_hostport(spec, &ss, &sl) < 0) {
        log_msg("bad listen address '%s' (want ADDR:PORT)", spec);
        return BD_E_INVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0) {
        log_msg("cannot listen on '%s': %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return BD_E_IO;
    }
    px->lis[i].admin = i == 1;
    px->lis[i].px = px;
    loop_timer_init(&px->lis[i].pause, on_accept_pause, &px->lis[i]);
    loop_io_init(&px->lis[i].io, fd, on_accept, &px->lis[i]);
    return loop_io_set(px->loop, &px->lis[i].io, EPOLLIN);
}

static void close_listeners(struct proxy *px)
{
    for (int i = 0; i < 2; i++) {
        if (px->loop)
            loop_timer_cancel(px->loop, &px->lis[i].pause);
        if (px->lis[i].io.fd >= 0) {
            loop_io_del(px->loop, &px->lis[i].io);
            close(px->lis[i].io.fd);
            px->lis[i].io.fd = -1;
        }
    }
}

/* ---- reload and signals ------------------------------------------------ */

/* Loads the generation `current` names; 0 and a snapshot, or logged failure. */
static int load_snapshot(struct proxy *px, struct snapshot **ret)
{
    struct diag_list diags;
    diag_list_init(&diags);
    struct pconf *conf = NULL;
    const char *why = NULL;
    int r = pconf_load(px->opts->cfg_dir, NULL, &diags, &conf);
    if (r < 0) {
        diag_list_sort(&diags);
        const struct diag *first = NULL;
        for (size_t i = 0; i < diags.n && !first; i++)
            if (diags.v[i].level == DIAG_ERROR)
                first = &diags.v[i];
        char *text = first ? diag_format(first) : xstrdup(bd_strerror(r));
        log_msg("config in '%s' rejected (%zu error%s): %s", px->opts->cfg_dir, diags.n_errors,
                diags.n_errors == 1 ? "" : "s", text);
        free(text);
        goto out;
    }
    /* Build everything first: the CA changes only for a config that will be served. */
    struct snapshot *snap = NULL;
    r = snapshot_new(px, conf, &snap, &why);
    if (r < 0) {
        log_msg("config rejected: %s", why);
        goto out;
    }
    conf = snap->conf;
    if (px->cm)
        r = certmint_set_ca(px->cm, conf->ca_cert_pem, conf->ca_key_pem, NULL);
    else
        r = certmint_new(conf->ca_cert_pem, conf->ca_key_pem, NULL, &px->cm);
    /* The snapshot never carries the CA key: the signer process holds it. */
    if (conf->ca_key_pem) {
        OPENSSL_cleanse(conf->ca_key_pem, strlen(conf->ca_key_pem));
        conf->ca_key_pem = NULL;
    }
    if (r < 0) {
        log_msg("config %s rejected: the bottle CA cannot be used: %s", conf->generation,
                bd_strerror(r));
        snapshot_unref(snap);
        goto out;
    }
    *ret = snap;
out:
    diag_list_release(&diags);
    return r;
}

static void reload(struct proxy *px, const char *trigger)
{
    struct snapshot *s = NULL;
    if (load_snapshot(px, &s) < 0) {
        px->reload_failed++;
        return;
    }
    if (px->snap && !strcmp(px->snap->conf->config_hash, s->conf->config_hash) &&
        !strcmp(px->snap->conf->generation, s->conf->generation)) {
        snapshot_unref(s);
        return; /* an inotify echo of what is already served */
    }
    log_msg("serving config %s (hash %s) after %s", s->conf->generation, s->conf->config_hash,
            trigger);
    snapshot_unref(px->snap);
    px->snap = s;
    px->reload_ok++;
    /* Tunnels whose route is gone: closed after a short grace once idle;
     * raw tunnels whose entry is gone (or has a new token): after the same
     * grace, idle or not. */
    for (struct conn *c = px->conns; c; c = c->next) {
        if (c->raw) {
            if (!c->tunnel_host || c->route_gone ||
                tunnel_kept(s->conf, c->tunnel_host, c->tunnel_port, c->raw_sha256))
                continue;
            c->route_gone = 1;
            c->tunnel_end = "raw tunnel entry removed by a reload";
            c->gone_at = loop_now_ms(px->loop) + GRACE_MS;
            loop_timer_arm(px->loop, &c->timer, GRACE_MS);
            continue;
        }
        if (!c->tunnel_host || c->route_gone ||
            route_lookup(s->routes, c->tunnel_host, c->tunnel_port, NULL))
            continue;
        c->route_gone = 1;
        c->tunnel_end = "route removed by a reload";
        if (c->state == CS_HEAD || c->state == CS_TLS_ACCEPT || c->state == CS_CONNECT_OK)
            loop_timer_arm(px->loop, &c->timer, GRACE_MS);
    }
}

static void on_drain_timer(struct loop_timer *t)
{
    struct proxy *px = t->arg;
    log_msg("shutdown grace period over, %zu connection%s dropped", px->n_conns,
            px->n_conns == 1 ? "" : "s");
    loop_stop(px->loop);
}

static void on_signal(void *arg, int sig)
{
    struct proxy *px = arg;
    if (sig == SIGHUP) {
        reload(px, "SIGHUP");
        return;
    }
    if (px->draining)
        return;
    px->draining = 1;
    close_listeners(px);
    /* Idle connections go now; busy ones after their response. */
    for (struct conn *c = px->conns, *n; c; c = n) {
        n = c->next;
        if (c->state == CS_HEAD && c->cl.in.len == 0)
            conn_close(c);
    }
    if (px->n_conns == 0)
        loop_stop(px->loop);
    else
        loop_timer_arm(px->loop, &px->drain_timer, DRAIN_MS);
}

static void on_current_changed(void *arg)
{
    reload(arg, "a change of 'current'");
}

static SSL_CTX *make_srv_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1); /* a read syscall per buffer, not two per record */
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    return ctx;
}

int proxy_run(const struct proxy_opts *opts)
{
    struct proxy px;
    int status = 1;
    memset(&px, 0, sizeof(px));
    px.opts = opts;
    px.lis[0].io.fd = px.lis[1].io.fd = -1;
    g_verbose = opts->verbose;
    http_limits_default(&px.lim);
    signal(SIGPIPE, SIG_IGN);
    /* Audit lines are flushed at the end of each batch of events (audit()). */
    static char audit_buf[64 << 10];
    setvbuf(stdout, audit_buf, _IOFBF, sizeof(audit_buf));
    static const int sigs[] = {SIGHUP, SIGTERM, SIGINT};
    /* Two sockets per connection, plus listeners, resolver and signer. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2 * MAX_CONNS + 64) {
        rl.rlim_cur = rl.rlim_max < 2 * MAX_CONNS + 64 ? rl.rlim_max : 2 * MAX_CONNS + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    /* Both addresses are checked before anything is bound or started. */
    const char *specs[] = {opts->listen, opts->admin};
    for (size_t i = 0; i < 2; i++) {
        struct sockaddr_storage ss;
        socklen_t sl;
        if (parse_hostport(specs[i], &ss, &sl) < 0) {
            log_msg("bad listen address '%s' (want ADDR:PORT or [V6]:PORT)", specs[i]);
            return 1;
        }
    }
    if (loop_new(&px.loop) < 0) {
        log_msg("cannot create the event loop: %s", strerror(errno));
        return 1;
    }
    loop_timer_init(&px.drain_timer, on_drain_timer, &px);
    if (loop_signals(px.loop, sigs, 3, on_signal, &px) < 0) {
        log_msg("cannot set up signals: %s", strerror(errno));
        goto out;
    }
    /* Admin first, so /healthz answers 503 while the rest comes up. */
    if (listen_on(&px, 1, opts->admin) < 0)
        goto out;
    /* The signer forks here: before any thread exists. */
    if (load_snapshot(&px, &px.snap) < 0)
        goto out;
    detect_rule_count(); /* parse the detector rules now, not on the first request */
    px.srv_ctx = make_srv_ctx();
    if (!px.srv_ctx) {
        log_msg("cannot create the TLS server context");
        goto out;
    }
    if (loop_watch(px.loop, opts->cfg_dir, "current", on_current_changed, &px) < 0)
        log_msg("cannot watch '%s/current' (%s); reloads need SIGHUP", opts->cfg_dir,
                strerror(errno));
    if (listen_on(&px, 0, opts->listen) < 0)
        goto out;
    px.ready = 1;
    log_msg("serving config %s (hash %s) on %s, admin on %s", px.snap->conf->generation,
            px.snap->conf->config_hash, opts->listen, opts->admin);
    if (loop_run(px.loop) < 0) {
        log_msg("event loop failed: %s", strerror(errno));
        goto out;
    }
    status = 0;
out:
    close_listeners(&px);
    while (px.conns)
        conn_close(px.conns);
    snapshot_unref(px.snap);
    loop_timer_cancel(px.loop, &px.drain_timer);
    loop_free(px.loop); /* runs the deferred frees */
    SSL_CTX_free(px.srv_ctx);
    certmint_free(px.cm);
    return status;
}

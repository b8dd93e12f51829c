/*
 * resolve.c - c-ares lookups checked by the address policy (see resolve.h).
 *
 * A query lives in one of three places until it is freed:
 *
 *   lookup --> in c-ares (in_ares) --answer--> done list --dispatch--> cb, freed
 *         \--> done list (static host entry) ----^
 *
 * resolver_cancel() frees a query on the done list at once; one still in
 * c-ares is marked cancelled and freed when c-ares calls back.  Callbacks
 * run only from dispatch(), which delivers the queries that were done when
 * it started, so a callback that starts lookups cannot keep it looping.
 * The sockets c-ares uses are tracked from its socket-state callback
 * rather than ares_getsock(), which newer c-ares deprecates.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <ares.h>

#include "err.h"
#include "host.h"
#include "resolve.h"
#include "xalloc.h"

#define HOST_MAX 253

/* Answers looked at per lookup, allowed or not: a huge answer costs nothing. */
#define MAX_EXAMINED 64

struct static_host {
    char *name; /* without a trailing dot */
    struct sockaddr_storage ss;
};

struct resolve_query {
    struct resolver *r;
    struct resolve_query *prev, *next; /* done list */
    char *name;
    uint16_t port;
    resolve_cb cb;
    void *arg;
    int in_ares, cancelled, queued;

    enum resolve_status status;
    const char *reason;
    struct sockaddr_storage *addrs;
    size_t n_addrs, n_examined, n_denied;
    struct sockaddr_storage denied;
};

struct resolver {
    ares_channel channel;
    const struct addr_policy *policy;
    struct static_host *hosts;
    size_t n_hosts;
    struct resolver_limits lim;

    struct resolver_sock *socks;
    size_t n_socks, cap_socks;
    resolver_sock_cb watch_cb;
    void *watch_arg;

    struct resolve_query *done_head, *done_tail;
    size_t n_done;
    size_t n_live; /* queries not yet freed, cancelled ones in c-ares included */
    int destroying;
};

const char *resolve_status_str(enum resolve_status s)
{
    switch (s) {
    case RESOLVE_OK:
        return "ok";
    case RESOLVE_DENIED:
        return "denied";
    case RESOLVE_NXDOMAIN:
        return "nxdomain";
    case RESOLVE_NODATA:
        return "nodata";
    case RESOLVE_TIMEOUT:
        return "timeout";
    case RESOLVE_FAIL:
        return "fail";
    }
    return "unknown";
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    size_t i;

    for (i = 0; i < r->n_socks; i++)
        if (r->socks[i].fd == fd)
            break;
    if (!readable && !writable) {
        if (i < r->n_socks)
            r->socks[i] = r->socks[--r->n_socks];
    } else {
        if (i == r->n_socks) {
            if (r->n_socks == r->cap_socks) {
                r->cap_socks = r->cap_socks ? 2 * r->cap_socks : 4;
                r->socks = xrealloc(r->socks, r->cap_socks * sizeof(*r->socks));
            }
            r->n_socks++;
        }
        r->socks[i] = (struct resolver_sock){fd, readable, writable};
    }
    /* At free, closing the fd takes it out of any epoll set by itself. */
    if (r->watch_cb && !r->destroying)
        r->watch_cb(r->watch_arg, fd, readable, writable);
}

static void query_free(struct resolve_query *q)
{
    q->r->n_live--;
    free(q->name);
    free(q->addrs);
    free(q);
}

static void done_push(struct resolver *r, struct resolve_query *q)
{
    q->queued = 1;
    q->next = NULL;
    q->prev = r->done_tail;
    if (r->done_tail)
        r->done_tail->next = q;
    else
        r->done_head = q;
    r->done_tail = q;
    r->n_done++;
}

static void done_unlink(struct resolver *r, struct resolve_query *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        r->done_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->done_tail = q->prev;
    q->prev = q->next = NULL;
    q->queued = 0;
    r->n_done--;
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                       &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr));
    return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
}

/* Copies an answer (a full sockaddr_in or sockaddr_in6), sets the port, classifies it. */
static void add_answer(struct resolve_query *q, const struct sockaddr *sa, size_t len)
{
    struct sockaddr_storage ss = {0};
    const char *reason = NULL;

    if (q->n_examined >= MAX_EXAMINED)
        return;
    q->n_examined++;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        memcpy(&ss, sa, sizeof(struct sockaddr_in));
        ((struct sockaddr_in *)&ss)->sin_port = htons(q->port);
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        memcpy(&ss, sa, sizeof(struct sockaddr_in6));
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(q->port);
    } else {
        return;
    }
    for (size_t i = 0; i < q->n_addrs; i++)
        if (same_addr(&q->addrs[i], &ss))
            return;
    if (!addr_allowed(q->r->policy, (const struct sockaddr *)&ss, &reason)) {
        q->n_denied++;
        q->denied = ss;
        q->reason = reason;
        return;
    }
    if (q->n_addrs >= q->r->lim.max_answers)
        return;
    if (!q->addrs)
        q->addrs = xcalloc(q->r->lim.max_answers, sizeof(*q->addrs));
    q->addrs[q->n_addrs++] = ss;
}

/* After the answers are in: the status when the source itself succeeded. */
static void settle(struct resolve_query *q)
{
    if (q->n_addrs) {
        q->status = RESOLVE_OK;
        q->reason = NULL;
    } else if (q->n_denied) {
        q->status = RESOLVE_DENIED;
    } else {
        q->status = RESOLVE_NODATA;
        q->reason = "no address records";
    }
}

/* Lowercase, stable texts for the audit line (ares_strerror() is neither). */
static const char *fail_reason(int status)
{
    switch (status) {
    case ARES_ESERVFAIL:
        return "dns server failure";
    case ARES_EREFUSED:
        return "dns server refused the query";
    case ARES_ECONNREFUSED:
        return "no dns server answered usefully"; /* c-ares: every server failed */
    case ARES_EBADRESP:
        return "malformed dns response";
    case ARES_EBADNAME:
        return "bad name";
    default:
        return "dns lookup failed";
    }
}

static void ares_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct resolve_query *q = arg;
    struct resolver *r = q->r;

    q->in_ares = 0;
    if (q->cancelled || status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        if (res)
            ares_freeaddrinfo(res);
        query_free(q);
        return;
    }
    switch (status) {
    case ARES_SUCCESS:
        for (struct ares_addrinfo_node *n = res ? res->nodes : NULL; n; n = n->ai_next)
            if (n->ai_addr)
                add_answer(q, n->ai_addr, (size_t)n->ai_addrlen);
        settle(q);
        break;
    case ARES_ENOTFOUND:
        q->status = RESOLVE_NXDOMAIN;
        q->reason = "name not found";
        break;
    case ARES_ENODATA:
        q->status = RESOLVE_NODATA;
        q->reason = "no address records";
        break;
    case ARES_ETIMEOUT:
        q->status = RESOLVE_TIMEOUT;
        q->reason = "dns timeout";
        break;
    default:
        q->status = RESOLVE_FAIL;
        q->reason = fail_reason(status);
        break;
    }
    if (res)
        ares_freeaddrinfo(res);
    done_push(r, q);
}

static void dispatch(struct resolver *r)
{
    size_t n = r->n_done;

    while (n-- > 0 && r->done_head) {
        struct resolve_query *q = r->done_head;
        struct resolve_result res = {
            .status = q->status,
            .name = q->name,
            .addrs = q->addrs,
            .n_addrs = q->n_addrs,
            .reason = q->reason,
            .n_denied = q->n_denied,
            .denied_addr = q->denied,
        };

        done_unlink(r, q);
        q->cb(q->arg, &res);
        query_free(q);
    }
}

/* Host name bytes only, no empty label, not an IP literal. */
static int valid_name(const char *name, size_t *ret_len)
{
    size_t len = strlen(name);

    if (len && name[len - 1] == '.')
        len--;
    if (len == 0 || len > HOST_MAX || host_is_ip_literal(name, len))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.') {
            if (i == 0 || name[i - 1] == '.')
                return 0;
        } else if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
                   c != '-' && c != '_') {
            return 0;
        }
    }
    *ret_len = len;
    return 1;
}

static int parse_ip(const char *s, struct sockaddr_storage *ret)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

    if (s && inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
    } else if (s && inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
    } else {
        return BD_E_INVAL;
    }
    *ret = ss;
    return 0;
}

int resolver_lookup(struct resolver *r, const char *name, uint16_t port, resolve_cb cb, void *arg,
                    struct resolve_query **ret_q)
{
    struct resolve_query *q;
    size_t len, n_static = 0;

    if (!name || !cb || !valid_name(name, &len))
        return BD_E_INVAL;
    if (r->n_live >= r->lim.max_queries)
        return BD_E_LIMIT;
    q = xcalloc(1, sizeof(*q));
    q->r = r;
    q->name = xstrdup(name);
    q->port = port;
    q->cb = cb;
    q->arg = arg;
    r->n_live++;

    for (size_t i = 0; i < r->n_hosts; i++) {
        const struct static_host *h = &r->hosts[i];
        if (strlen(h->name) == len && !strncasecmp(h->name, name, len)) {
            const struct sockaddr *sa = (const struct sockaddr *)&h->ss;
            add_answer(q, sa,
                       sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                : sizeof(struct sockaddr_in6));
            n_static++;
        }
    }
    if (ret_q)
        *ret_q = q;
    if (n_static) {
        settle(q);
        done_push(r, q);
        return 0;
    }

    struct ares_addrinfo_hints hints = {
        .ai_flags = ARES_AI_NOSORT,
        .ai_family = AF_UNSPEC,
    };
    q->in_ares = 1; /* c-ares may call back before returning */
    ares_getaddrinfo(r->channel, q->name, NULL, &hints, ares_done, q);
    return 0;
}

void resolver_cancel(struct resolver *r, struct resolve_query *q)
{
    if (!q)
        return;
    if (q->in_ares) {
        q->cancelled = 1;
    } else if (q->queued) {
        done_unlink(r, q);
        query_free(q);
    }
}

void resolver_watch(struct resolver *r, resolver_sock_cb cb, void *arg)
{
    r->watch_cb = cb;
    r->watch_arg = arg;
    for (size_t i = 0; cb && i < r->n_socks; i++)
        cb(arg, r->socks[i].fd, r->socks[i].readable, r->socks[i].writable);
}

size_t resolver_getsock(const struct resolver *r, struct resolver_sock *out, size_t max)
{
    for (size_t i = 0; i < r->n_socks && i < max; i++)
        out[i] = r->socks[i];
    return r->n_socks;
}

void resolver_process(struct resolver *r, int fd, int readable, int writable)
{
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

    if (fd >= 0 && readable)
        rfd = fd;
    if (fd >= 0 && writable)
        wfd = fd;
    ares_process_fd(r->channel, rfd, wfd);
    dispatch(r);
}

int resolver_timeout_ms(struct resolver *r)
{
    struct timeval tv, *t;

    if (r->n_done)
        return 0;
    if (r->n_live == 0)
        return -1;
    t = ares_timeout(r->channel, NULL, &tv);
    if (!t)
        return -1;
    /* Rounded up: waking a millisecond early would only spin. */
    long ms = (long)t->tv_sec * 1000 + (t->tv_usec + 999) / 1000;
    return ms > 60000 ? 60000 : (int)ms;
}

size_t resolver_pending(const struct resolver *r)
{
    return r->n_live;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int resolver_wait(struct resolver *r, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
    struct pollfd *pfd = NULL;
    int err = 0;

    dispatch(r);
    while (r->n_live) {
        int wait = resolver_timeout_ms(r);
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0) {
                err = BD_E_LIMIT;
                goto out;
            }
            if (wait < 0 || wait > left)
                wait = (int)left;
        }
        size_t n = r->n_socks;
        pfd = xrealloc(pfd, (n ? n : 1) * sizeof(*pfd));
        for (size_t i = 0; i < n; i++)
            pfd[i] = (struct pollfd){
                .fd = r->socks[i].fd,
                .events = (short)((r->socks[i].readable ? POLLIN : 0) |
                                  (r->socks[i].writable ? POLLOUT : 0)),
            };
        int ready = poll(pfd, (nfds_t)n, wait);
        if (ready < 0 && errno != EINTR) {
            err = BD_E_IO;
            goto out;
        }
        if (ready <= 0) {
            resolver_process(r, -1, 0, 0);
            continue;
        }
        /* pfd is a snapshot: processing one socket may close another. */
        for (size_t i = 0; i < n; i++) {
            short ev = pfd[i].revents;
            if (ev)
                ares_process_fd(r->channel,
                                ev & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
                                ev & (POLLOUT | POLLERR) ? pfd[i].fd : ARES_SOCKET_BAD);
        }
        dispatch(r);
    }
out:
    free(pfd);
    return err;
}

int resolver_new(const char *dns_server, const struct pconf_static_host *hosts, size_t n_hosts,
                 const struct addr_policy *policy, const struct resolver_limits *limits,
                 struct resolver **ret)
{
    struct resolver *r = NULL;
    struct ares_options opt;
    char lookups[] = "b";
    int optmask, err;

    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
        return BD_E_INTERNAL;
    r = xcalloc(1, sizeof(*r));
    r->policy = policy;
    r->lim = (struct resolver_limits){2000, 2, 16, 4096};
    if (limits && limits->timeout_ms > 0)
        r->lim.timeout_ms = limits->timeout_ms;
    if (limits && limits->tries > 0)
        r->lim.tries = limits->tries;
    if (limits && limits->max_answers > 0)
        r->lim.max_answers = limits->max_answers;
    if (limits && limits->max_queries > 0)
        r->lim.max_queries = limits->max_queries;

    if (n_hosts)
        r->hosts = xcalloc(n_hosts, sizeof(*r->hosts));
    for (size_t i = 0; i < n_hosts; i++) {
        size_t len;
        if (!hosts[i].name || !valid_name(hosts[i].name, &len) ||
            parse_ip(hosts[i].ip, &r->hosts[i].ss) < 0) {
            err = BD_E_INVAL;
            goto fail;
        }
        r->hosts[i].name = xstrndup(hosts[i].name, len);
        r->n_hosts++;
    }

    /*
     * Exactly the name asked: no search domains (a route host must not
     * turn into "host.corp.example"), no HOSTALIASES.  With a configured
     * server, DNS only: /etc/hosts belongs to the container, not to the
     * configuration.
     */
    memset(&opt, 0, sizeof(opt));
    opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    opt.timeout = r->lim.timeout_ms;
    opt.tries = r->lim.tries;
    opt.ndomains = 0;
    opt.domains = NULL;
    opt.sock_state_cb = sock_state;
    opt.sock_state_cb_data = r;
    optmask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS |
              ARES_OPT_SOCK_STATE_CB;
    if (dns_server) {
        opt.lookups = lookups;
        optmask |= ARES_OPT_LOOKUPS;
    }
    if (ares_init_options(&r->channel, &opt, optmask) != ARES_SUCCESS) {
        r->channel = NULL;
        err = BD_E_INTERNAL;
        goto fail;
    }
    if (dns_server &&
        (!*dns_server || ares_set_servers_ports_csv(r->channel, dns_server) != ARES_SUCCESS)) {
        err = BD_E_INVAL;
        goto fail;
    }
    *ret = r;
    return 0;
fail:
    resolver_free(r);
    return err;
}

void resolver_free(struct resolver *r)
{
    if (!r)
        return;
    r->destroying = 1;
    while (r->done_head) {
        struct resolve_query *q = r->done_head;
        done_unlink(r, q);
        query_free(q);
    }
    if (r->channel)
        ares_destroy(r->channel); /* calls back every query still in c-ares */
    for (size_t i = 0; i < r->n_hosts; i++)
        free(r->hosts[i].name);
    free(r->hosts);
    free(r->socks);
    free(r);
    ares_library_cleanup();
}

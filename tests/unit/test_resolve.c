/*
 * test_resolve.c - the sidecar's resolver against a real DNS server: a
 * small UDP responder started by the test on 127.0.0.1 (ephemeral port)
 * that answers A and AAAA from a table, so the configured-server path of
 * c-ares is really exercised.  The public-looking answers are data only:
 * nothing here connects to them, and no packet leaves 127.0.0.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "addrpolicy.h"
#include "err.h"
#include "resolve.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the DNS responder ------------------------------------------------ */

#define T_A    1
#define T_AAAA 28
#define T_TXT  16

struct rr {
    const char *name;
    int type;
    const char *addr; /* for T_TXT: unused, the name exists without addresses */
};

static const struct rr zone[] = {
    {"public.test", T_A, "93.184.216.34"},
    {"public.test", T_AAAA, "2606:2800:220:1:248:1893:25c8:1946"},
    {"private.test", T_A, "10.0.0.5"},
    {"mixed.test", T_A, "10.0.0.5"},
    {"mixed.test", T_A, "93.184.216.34"},
    {"mixed.test", T_AAAA, "::1"},
    {"meta.test", T_A, "169.254.169.254"},
    {"mapped.test", T_AAAA, "::ffff:10.0.0.5"},
    {"nat64.test", T_AAAA, "64:ff9b::a9fe:a9fe"},
    {"v6only.test", T_AAAA, "2606:2800:220:1::1"},
    {"static.test", T_A, "93.184.216.77"}, /* the static entry must win */
    {"noaddr.test", T_TXT, NULL},
};
/* Not in the table: "many.test" (24 A records, within 512 bytes), "slow.test" (never
 * answered), "servfail.test" (SERVFAIL); anything else is NXDOMAIN. */

struct dns_server {
    int fd, stop[2];
    uint16_t port;
    pthread_t thread;
    atomic_int queries, static_queries;
};

static struct dns_server srv;

static size_t put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

static size_t answer(uint8_t *out, size_t off, size_t cap, int type, const char *addr)
{
    uint8_t rdata[16];
    size_t len = type == T_A ? 4 : 16;

    if (off + 12 + len > cap || inet_pton(type == T_A ? AF_INET : AF_INET6, addr, rdata) != 1)
        return off;
    off += put16(out + off, 0xc00c); /* the name in the question */
    off += put16(out + off, (unsigned)type);
    off += put16(out + off, 1);
    off += put16(out + off, 0);
    off += put16(out + off, 60);
    off += put16(out + off, (unsigned)len);
    memcpy(out + off, rdata, len);
    return off + len;
}

/* Builds the reply to one query; returns its length, 0 to stay silent. */
static size_t respond(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap)
{
    char name[256];
    size_t off = 12, nlen = 0;
    unsigned rcode = 0, ancount = 0;

    if (qlen < 12 || (q[4] << 8 | q[5]) != 1)
        return 0;
    while (off < qlen && q[off]) {
        size_t l = q[off++];
        if (l > 63 || off + l > qlen || nlen + l + 1 >= sizeof(name))
            return 0;
        if (nlen)
            name[nlen++] = '.';
        memcpy(name + nlen, q + off, l);
        nlen += l;
        off += l;
    }
    name[nlen] = '\0';
    if (off + 5 > qlen)
        return 0;
    off++; /* root label */
    int qtype = q[off] << 8 | q[off + 1];
    off += 4;

    atomic_fetch_add(&srv.queries, 1);
    if (!strcasecmp(name, "static.test"))
        atomic_fetch_add(&srv.static_queries, 1);
    if (!strcasecmp(name, "slow.test"))
        return 0;

    memcpy(out, q, off); /* header and question */
    size_t w = off;
    int known = 0;
    if (!strcasecmp(name, "servfail.test")) {
        known = 1;
        rcode = 2;
    } else if (!strcasecmp(name, "many.test")) {
        known = 1;
        for (int i = 1; qtype == T_A && i <= 24; i++) {
            char a[32];
            snprintf(a, sizeof(a), "93.184.216.%d", i);
            w = answer(out, w, cap, T_A, a);
            ancount++;
        }
    } else {
        for (size_t i = 0; i < N(zone); i++) {
            if (strcasecmp(zone[i].name, name))
                continue;
            known = 1;
            if (zone[i].type == qtype) {
                w = answer(out, w, cap, qtype, zone[i].addr);
                ancount++;
            }
        }
    }
    if (!known)
        rcode = 3;                  /* NXDOMAIN */
    put16(out + 2, 0x8580 | rcode); /* QR AA RD RA */
    put16(out + 4, 1);
    put16(out + 6, ancount);
    put16(out + 8, 0);
    put16(out + 10, 0); /* an EDNS OPT in the query is not echoed */
    return w;
}

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd pfd[2] = {{srv.fd, POLLIN, 0}, {srv.stop[0], POLLIN, 0}};
        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            break;
        if (pfd[1].revents)
            break;
        if (!pfd[0].revents)
            continue;
        uint8_t q[512], out[1500];
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(srv.fd, q, sizeof(q), 0, (struct sockaddr *)&from, &flen);
        if (n <= 0)
            continue;
        size_t len = respond(q, (size_t)n, out, sizeof(out));
        if (len)
            sendto(srv.fd, out, len, 0, (struct sockaddr *)&from, flen);
    }
    return NULL;
}

static int server_start(void **state)
{
    (void)state;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);

    srv.fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (srv.fd < 0 || bind(srv.fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        getsockname(srv.fd, (struct sockaddr *)&sin, &len) < 0 || pipe(srv.stop) < 0)
        return -1;
    srv.port = ntohs(sin.sin_port);
    return pthread_create(&srv.thread, NULL, serve, NULL) == 0 ? 0 : -1;
}

static int server_stop(void **state)
{
    (void)state;
    if (write(srv.stop[1], "x", 1) != 1)
        return -1;
    pthread_join(srv.thread, NULL);
    close(srv.fd);
    close(srv.stop[0]);
    close(srv.stop[1]);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

struct got {
    int calls;
    enum resolve_status status;
    char reason[128];
    char addrs[16][INET6_ADDRSTRLEN];
    uint16_t ports[16];
    size_t n_addrs, n_denied;
    char denied[INET6_ADDRSTRLEN];
};

static void ntop(const struct sockaddr_storage *ss, char *out, uint16_t *ret_port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, out, INET6_ADDRSTRLEN);
        if (ret_port)
            *ret_port = ntohs(sin->sin_port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, out, INET6_ADDRSTRLEN);
        if (ret_port)
            *ret_port = ntohs(sin6->sin6_port);
    }
}

static void record(void *arg, const struct resolve_result *res)
{
    struct got *g = arg;

    g->calls++;
    g->status = res->status;
    snprintf(g->reason, sizeof(g->reason), "%s", res->reason ? res->reason : "");
    g->n_addrs = res->n_addrs;
    g->n_denied = res->n_denied;
    for (size_t i = 0; i < res->n_addrs && i < N(g->addrs); i++)
        ntop(&res->addrs[i], g->addrs[i], &g->ports[i]);
    if (res->n_denied)
        ntop(&res->denied_addr, g->denied, NULL);
}

static char server_csv[64];

static struct resolver *resolver_for_test(const struct pconf_static_host *hosts, size_t n,
                                          const struct addr_policy *p,
                                          const struct resolver_limits *lim)
{
    struct resolver *r = NULL;

    snprintf(server_csv, sizeof(server_csv), "127.0.0.1:%u", (unsigned)srv.port);
    assert_int_equal(resolver_new(server_csv, hosts, n, p, lim, &r), 0);
    return r;
}

static struct got lookup(struct resolver *r, const char *name)
{
    struct got g;

    memset(&g, 0, sizeof(g));
    assert_int_equal(resolver_lookup(r, name, 443, record, &g, NULL), 0);
    assert_int_equal(g.calls, 0); /* never from inside resolver_lookup() */
    assert_int_equal(resolver_wait(r, 10000), 0);
    assert_int_equal(g.calls, 1);
    return g;
}

static int has(const struct got *g, const char *addr)
{
    for (size_t i = 0; i < g->n_addrs && i < N(g->addrs); i++)
        if (!strcmp(g->addrs[i], addr))
            return 1;
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_public_allowed(void **state)
{
    (void)state;
    struct resolver *r = resolver_for_test(NULL, 0, NULL, NULL);
    struct got g = lookup(r, "public.test");

    assert_int_equal(g.status, RESOLVE_OK);
    assert_int_equal(g.n_addrs, 2);
    assert_true(has(&g, "93.184.216.34"));
    assert_true(has(&g, "2606:2800:220:1:248:1893:25c8:1946"));
    assert_int_equal(g.ports[0], 443);
    assert_int_equal(g.ports[1], 443);
    assert_int_equal(g.n_denied, 0);

    g = lookup(r, "v6only.test");
    assert_int_equal(g.status, RESOLVE_OK);
    assert_int_equal(g.n_addrs, 1);
    assert_string_equal(g.addrs[0], "2606:2800:220:1::1");

    g = lookup(r, "PUBLIC.test."); /* case and one trailing dot */
    assert_int_equal(g.status, RESOLVE_OK);
    assert_int_equal(g.n_addrs, 2);
    resolver_free(r);
}

static void test_private_denied(void **state)
{
    (void)state;
    struct resolver *r = resolver_for_test(NULL, 0, NULL, NULL);
    struct got g = lookup(r, "private.test");

    assert_int_equal(g.status, RESOLVE_DENIED);
    assert_int_equal(g.n_addrs, 0);
    assert_int_equal(g.n_denied, 1);
    assert_string_equal(g.reason, "private address");
    assert_string_equal(g.denied, "10.0.0.5");

    g = lookup(r, "meta.test");
    assert_int_equal(g.status, RESOLVE_DENIED);
    assert_string_equal(g.reason, "cloud metadata address");

    g = lookup(r, "mapped.test");
    assert_int_equal(g.status, RESOLVE_DENIED);
    assert_string_equal(g.reason, "private address (embedded in an IPv6 address)");

    g = lookup(r, "nat64.test");
    assert_int_equal(g.status, RESOLVE_DENIED);
    assert_string_equal(g.reason, "cloud metadata address (embedded in an IPv6 address)");
    resolver_free(r);
}

static void test_mixed_keeps_allowed_only(void **state)
{
    (void)state;
    struct resolver *r = resolver_for_test(NULL, 0, NULL, NULL);
    struct got g = lookup(r, "mixed.test");

    assert_int_equal(g.status, RESOLVE_OK);
    assert_int_equal(g.n_addrs, 1);
    assert_string_equal(g.addrs[0], "93.184.216.34");
    assert_int_equal(g.n_denied, 2); /* 10.0.0.5 and ::1 */
    resolver_free(r);
}

static void test_allow_private_range(void **state)
{
    (void)state;
    struct pconf_cidr allow = {.family = AF_INET, .addr = {10, 0, 0, 0}, .prefix = 24};
    struct addr_policy *p = NULL;

    assert_int_equal(addr_policy_new(&allow, 1, &p), 0);
    struct resolver *r = resolver_for_test(NULL, 0, p, NULL);
    struct got g = lookup(r, "private.test");
    assert_int_equal(g.status, RESOLVE_OK);
    assert_string_equal(g.addrs[0], "10.0.0.5");
    g = lookup(r, "mixed.test");
    assert_int_equal(g.n_addrs, 2);
    assert_int_equal(g.n_denied, 1);
    resolver_free(r);
    addr_policy_free(p);
}

static void test_static_hosts(void **state)
{
    (void)state;
    const struct pconf_static_host hosts[] = {
        {"static.test", "93.184.216.99"},
        {"static.test", "2606:2800:220:1::99"},
        {"intranet.test", "10.1.1.1"},
    };
    int before = atomic_load(&srv.queries);
    struct resolver *r = resolver_for_test(hosts, N(hosts), NULL, NULL);
    struct got g = lookup(r, "STATIC.test.");

    assert_int_equal(g.status, RESOLVE_OK);
    assert_int_equal(g.n_addrs, 2);
    assert_string_equal(g.addrs[0], "93.184.216.99");
    assert_string_equal(g.addrs[1], "2606:2800:220:1::99");
    assert_int_equal(g.ports[0], 443);
    /* a static entry is still classified */
    g = lookup(r, "intranet.test");
    assert_int_equal(g.status, RESOLVE_DENIED);
    assert_string_equal(g.reason, "private address");
    assert_int_equal(atomic_load(&srv.static_queries), 0);
    assert_int_equal(atomic_load(&srv.queries), before);
    resolver_free(r);

    /* without a configured server too: no DNS needed for a static name */
    assert_int_equal(resolver_new(NULL, hosts, N(hosts), NULL, NULL, &r), 0);
    g = lookup(r, "static.test");
    assert_int_equal(g.status, RESOLVE_OK);
    assert_int_equal(g.n_addrs, 2);
    resolver_free(r);
}

static void test_errors(void **state)
{
    (void)state;
    struct resolver_limits lim = {.timeout_ms = 200, .tries = 1};
    struct resolver *r = resolver_for_test(NULL, 0, NULL, &lim);
    struct got g = lookup(r, "nx.test");

    assert_int_equal(g.status, RESOLVE_NXDOMAIN);
    assert_string_equal(g.reason, "name not found");
    assert_int_equal(g.n_addrs, 0);

    g = lookup(r, "noaddr.test");
    assert_int_equal(g.status, RESOLVE_NODATA);

    g = lookup(r, "servfail.test");
    assert_int_equal(g.status, RESOLVE_FAIL);
    assert_string_equal(g.reason, "no dns server answered usefully");

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    g = lookup(r, "slow.test");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(g.status, RESOLVE_TIMEOUT);
    assert_string_equal(g.reason, "dns timeout");
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 150 && ms < 3000);
    resolver_free(r);
}

static void test_answer_cap(void **state)
{
    (void)state;
    struct resolver_limits lim = {.max_answers = 4};
    struct resolver *r = resolver_for_test(NULL, 0, NULL, &lim);
    struct got g = lookup(r, "many.test");

    assert_int_equal(g.status, RESOLVE_OK);
    assert_int_equal(g.n_addrs, 4);
    assert_string_equal(g.addrs[0], "93.184.216.1");
    resolver_free(r);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct resolver *r = resolver_for_test(NULL, 0, NULL, NULL);
    struct got g;
    static const char *bad[] = {
        "",
        ".",
        "10.0.0.5",
        "::1",
        "[::1]",
        "0x7f.1",
        "a..b",
        ".a",
        "a b.test",
        "a/b.test",
        "a\xc3\xa9.test",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
        "test",
    };

    memset(&g, 0, sizeof(g));
    for (size_t i = 0; i < N(bad); i++)
        if (resolver_lookup(r, bad[i], 443, record, &g, NULL) != BD_E_INVAL)
            fail_msg("\"%s\" accepted", bad[i]);
    assert_int_equal(resolver_lookup(r, NULL, 443, record, &g, NULL), BD_E_INVAL);
    assert_int_equal(resolver_lookup(r, "ok.test", 443, NULL, &g, NULL), BD_E_INVAL);
    assert_int_equal(resolver_pending(r), 0);
    resolver_free(r);

    const struct pconf_static_host bad_ip[] = {{"x.test", "10.0.0.300"}};
    const struct pconf_static_host bad_name[] = {{"10.0.0.1", "10.0.0.1"}};
    r = NULL;
    assert_int_equal(resolver_new(NULL, bad_ip, 1, NULL, NULL, &r), BD_E_INVAL);
    assert_int_equal(resolver_new(NULL, bad_name, 1, NULL, NULL, &r), BD_E_INVAL);
    assert_int_equal(resolver_new("not a server", NULL, 0, NULL, NULL, &r), BD_E_INVAL);
    assert_int_equal(resolver_new("", NULL, 0, NULL, NULL, &r), BD_E_INVAL);
    assert_null(r);
}

static void test_cancel_and_free(void **state)
{
    (void)state;
    const struct pconf_static_host hosts[] = {{"static.test", "93.184.216.99"}};
    struct resolver_limits lim = {.max_queries = 3, .timeout_ms = 200, .tries = 1};
    struct resolver *r = resolver_for_test(hosts, N(hosts), NULL, &lim);
    struct resolve_query *q1 = NULL, *q2 = NULL;
    struct got g1, g2, g3, g4;

    memset(&g1, 0, sizeof(g1));
    memset(&g2, 0, sizeof(g2));
    memset(&g3, 0, sizeof(g3));
    memset(&g4, 0, sizeof(g4));
    assert_int_equal(resolver_lookup(r, "public.test", 443, record, &g1, &q1), 0);
    assert_int_equal(resolver_lookup(r, "static.test", 443, record, &g2, &q2), 0);
    assert_int_equal(resolver_lookup(r, "private.test", 443, record, &g3, NULL), 0);
    assert_int_equal(resolver_lookup(r, "mixed.test", 443, record, &g4, NULL), BD_E_LIMIT);
    assert_int_equal(resolver_timeout_ms(r), 0); /* the static answer waits for delivery */
    resolver_cancel(r, q1);                      /* in c-ares */
    resolver_cancel(r, q2);                      /* on the done list */
    assert_int_equal(resolver_wait(r, 10000), 0);
    assert_int_equal(g1.calls, 0);
    assert_int_equal(g2.calls, 0);
    assert_int_equal(g3.calls, 1);
    assert_int_equal(resolver_pending(r), 0);
    assert_int_equal(resolver_timeout_ms(r), -1);

    /* freed with lookups outstanding: no callback, nothing leaked */
    assert_int_equal(resolver_lookup(r, "slow.test", 443, record, &g4, NULL), 0);
    assert_int_equal(resolver_lookup(r, "static.test", 443, record, &g4, NULL), 0);
    assert_int_equal(resolver_wait(r, 20), BD_E_LIMIT);
    assert_int_equal(g4.calls, 1); /* the static one */
    resolver_free(r);
    assert_int_equal(g4.calls, 1);
}

/* The way the proxy will drive it: its own epoll set, fed by resolver_watch(). */
struct loop {
    int ep;
    int n_watched, adds, dels;
};

static void on_sock(void *arg, int fd, int readable, int writable)
{
    struct loop *l = arg;
    struct epoll_event ev = {
        .events = (readable ? EPOLLIN : 0u) | (writable ? EPOLLOUT : 0u),
        .data.fd = fd,
    };

    if (!readable && !writable) {
        epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
        l->n_watched--;
        l->dels++;
    } else if (epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT) {
        assert_int_equal(epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev), 0);
        l->n_watched++;
        l->adds++;
    }
}

static void test_event_loop(void **state)
{
    (void)state;
    struct resolver *r = resolver_for_test(NULL, 0, NULL, NULL);
    struct loop l = {.ep = epoll_create1(EPOLL_CLOEXEC)};
    struct got a, b;

    assert_true(l.ep >= 0);
    resolver_watch(r, on_sock, &l);
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(resolver_lookup(r, "public.test", 8443, record, &a, NULL), 0);
    assert_int_equal(resolver_lookup(r, "private.test", 443, record, &b, NULL), 0);
    assert_true(l.adds >= 1);
    struct resolver_sock socks[4];
    assert_true(resolver_getsock(r, socks, N(socks)) >= 1);
    assert_true(socks[0].readable);

    for (int rounds = 0; resolver_pending(r) && rounds < 1000; rounds++) {
        struct epoll_event ev[8];
        int t = resolver_timeout_ms(r);
        assert_true(t >= 0 && t <= 60000);
        int n = epoll_wait(l.ep, ev, N(ev), t);
        if (n <= 0)
            resolver_process(r, -1, 0, 0);
        for (int i = 0; i < n; i++)
            resolver_process(r, ev[i].data.fd, !!(ev[i].events & (EPOLLIN | EPOLLERR)),
                             !!(ev[i].events & EPOLLOUT));
    }
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, RESOLVE_OK);
    assert_int_equal(a.ports[0], 8443);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, RESOLVE_DENIED);
    resolver_free(r);
    close(l.ep);
}

static void test_status_str(void **state)
{
    (void)state;
    assert_string_equal(resolve_status_str(RESOLVE_OK), "ok");
    assert_string_equal(resolve_status_str(RESOLVE_DENIED), "denied");
    assert_string_equal(resolve_status_str(RESOLVE_TIMEOUT), "timeout");
    assert_string_equal(resolve_status_str((enum resolve_status)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_public_allowed),
        cmocka_unit_test(test_private_denied),
        cmocka_unit_test(test_mixed_keeps_allowed_only),
        cmocka_unit_test(test_allow_private_range),
        cmocka_unit_test(test_static_hosts),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_answer_cap),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_cancel_and_free),
        cmocka_unit_test(test_event_loop),
        cmocka_unit_test(test_status_str),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}

/*
 * addrpolicy.c - classification of resolved addresses and the dial policy
 * (see addrpolicy.h for the ranges and the rules).
 *
 * An address is reduced to the list of "targets" it leads to: itself, or
 * for the IPv4-embedding IPv6 forms the IPv4 address(es) inside.  Every
 * target must pass on its own: its class (unless a configured range
 * re-allows a re-allowable class) and the local networks (unless a range
 * written without this machine's own addresses in it covers it).  The
 * outer IPv6 address of an embedding form is checked against the local
 * networks too.  Range tables are scanned in order and the first match
 * wins, so the single addresses (metadata, broadcast) come before the
 * ranges that contain them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addrpolicy.h"
#include "err.h"
#include "xalloc.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* name, text, re-allowable by a configured range */
#define ADDR_CLASSES(X)                                                                            \
    X(ADDR_PUBLIC, "public address", 1)                                                            \
    X(ADDR_UNSPECIFIED, "unspecified address", 0)                                                  \
    X(ADDR_LOOPBACK, "loopback address", 0)                                                        \
    X(ADDR_METADATA, "cloud metadata address", 0)                                                  \
    X(ADDR_MULTICAST, "multicast address", 0)                                                      \
    X(ADDR_BROADCAST, "broadcast address", 0)                                                      \
    X(ADDR_LINK_LOCAL, "link-local address", 1)                                                    \
    X(ADDR_PRIVATE, "private address", 1)                                                          \
    X(ADDR_CGNAT, "carrier-grade NAT address", 1)                                                  \
    X(ADDR_ULA, "unique local address", 1)                                                         \
    X(ADDR_SITE_LOCAL, "site-local address", 1)                                                    \
    X(ADDR_DOCUMENTATION, "documentation address", 1)                                              \
    X(ADDR_BENCHMARK, "benchmarking address", 1)                                                   \
    X(ADDR_PROTOCOL, "IETF protocol assignment address", 1)                                        \
    X(ADDR_RESERVED, "reserved address", 1)                                                        \
    X(ADDR_TEREDO, "Teredo address", 0)                                                            \
    X(ADDR_V4COMPAT, "IPv4-compatible IPv6 address", 0)                                            \
    X(ADDR_LOCAL_NET, "address on a local interface's network", 1)                                 \
    X(ADDR_BAD_FAMILY, "address of an unsupported family", 0)

#define X_TEXT(name, text, re) [name] = text,
#define X_EMB(name, text, re)  [name] = text " (embedded in an IPv6 address)",
#define X_RE(name, text, re)   [name] = re,
static const char *const class_text[] = {ADDR_CLASSES(X_TEXT)};
static const char *const class_text_embedded[] = {ADDR_CLASSES(X_EMB)};
static const int class_reallowable[] = {ADDR_CLASSES(X_RE)};

struct range {
    uint8_t a[16];
    int prefix;
    enum addr_class cls;
};

static const struct range v4_ranges[] = {
    {{169, 254, 169, 254}, 32, ADDR_METADATA}, /* AWS, GCP, Azure, OCI ... */
    {{169, 254, 170, 2}, 32, ADDR_METADATA},   /* ECS task metadata */
    {{169, 254, 170, 23}, 32, ADDR_METADATA},  /* EKS pod identity */
    {{100, 100, 100, 200}, 32, ADDR_METADATA}, /* Alibaba Cloud */
    {{192, 0, 0, 192}, 32, ADDR_METADATA},     /* Oracle Cloud */
    {{255, 255, 255, 255}, 32, ADDR_BROADCAST},
    {{0, 0, 0, 0}, 8, ADDR_UNSPECIFIED},
    {{127, 0, 0, 0}, 8, ADDR_LOOPBACK},
    {{169, 254, 0, 0}, 16, ADDR_LINK_LOCAL},
    {{10, 0, 0, 0}, 8, ADDR_PRIVATE},
    {{172, 16, 0, 0}, 12, ADDR_PRIVATE},
    {{192, 168, 0, 0}, 16, ADDR_PRIVATE},
    {{100, 64, 0, 0}, 10, ADDR_CGNAT},
    {{192, 0, 0, 0}, 24, ADDR_PROTOCOL},
    {{192, 0, 2, 0}, 24, ADDR_DOCUMENTATION},
    {{198, 51, 100, 0}, 24, ADDR_DOCUMENTATION},
    {{203, 0, 113, 0}, 24, ADDR_DOCUMENTATION},
    {{198, 18, 0, 0}, 15, ADDR_BENCHMARK},
    {{192, 88, 99, 0}, 24, ADDR_RESERVED}, /* former 6to4 relay anycast */
    {{224, 0, 0, 0}, 4, ADDR_MULTICAST},
    {{240, 0, 0, 0}, 4, ADDR_RESERVED},
};

/* Plain IPv6 ranges; the IPv4-embedding forms are recognised before these. */
static const struct range v6_ranges[] = {
    {{0}, 128, ADDR_UNSPECIFIED},
    {{[15] = 1}, 128, ADDR_LOOPBACK},
    {{0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54}, 128, ADDR_METADATA}, /* fd00:ec2::254 */
    {{0xfd, 0x00, 0x0e, 0xc2, [15] = 0x23}, 128, ADDR_METADATA},              /* fd00:ec2::23 */
    {{0xff}, 8, ADDR_MULTICAST},
    {{0xfe, 0x80}, 10, ADDR_LINK_LOCAL},
    {{0xfe, 0xc0}, 10, ADDR_SITE_LOCAL},
    {{0xfc}, 7, ADDR_ULA},
    {{0x20, 0x01, 0x00, 0x00}, 32, ADDR_TEREDO},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, ADDR_DOCUMENTATION},
    {{0x3f, 0xff, 0x00}, 20, ADDR_DOCUMENTATION},
    {{0x20, 0x01, 0x00, 0x02, 0x00, 0x00}, 48, ADDR_BENCHMARK},
    {{0x20, 0x01, 0x00}, 23, ADDR_PROTOCOL},
    {{0}, 96, ADDR_V4COMPAT}, /* after :: and ::1 */
};

struct ip {
    int family;
    uint8_t a[16]; /* IPv4 in a[0..3] */
};

struct local_if {
    struct ip ip; /* the interface's own address */
    int prefix;   /* its network */
};

struct allow_range {
    struct ip net;
    int prefix;
    int covers_own; /* contains an address of a local interface */
};

struct addr_policy {
    struct allow_range *allow;
    size_t n_allow;
    struct local_if *local;
    size_t n_local;
};

const char *addr_class_str(enum addr_class c)
{
    if ((size_t)c >= N(class_text) || !class_text[c])
        return "unknown address class";
    return class_text[c];
}

int addr_class_reallowable(enum addr_class c)
{
    return (size_t)c < N(class_reallowable) && class_reallowable[c];
}

static int prefix_match(const uint8_t *addr, const uint8_t *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;

    if (memcmp(addr, net, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (addr[full] & mask) == (net[full] & mask);
}

static int ip_in(const struct ip *ip, const struct ip *net, int prefix)
{
    return ip->family == net->family && prefix_match(ip->a, net->a, prefix);
}

static int family_bits(int family)
{
    return family == AF_INET ? 32 : 128;
}

static int ip_from_sockaddr(const struct sockaddr *sa, struct ip *ret)
{
    struct ip ip = {0};

    if (!sa)
        return BD_E_INVAL;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        ip.family = AF_INET;
        memcpy(ip.a, &sin.sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        ip.family = AF_INET6;
        memcpy(ip.a, &sin6.sin6_addr, 16);
    } else {
        return BD_E_INVAL;
    }
    *ret = ip;
    return 0;
}

static enum addr_class classify_table(const struct ip *ip)
{
    const struct range *t = ip->family == AF_INET ? v4_ranges : v6_ranges;
    size_t n = ip->family == AF_INET ? N(v4_ranges) : N(v6_ranges);

    for (size_t i = 0; i < n; i++)
        if (prefix_match(ip->a, t[i].a, t[i].prefix))
            return t[i].cls;
    /* Global unicast is 2000::/3; the rest of the space is not an upstream. */
    if (ip->family == AF_INET6 && (ip->a[0] & 0xe0) != 0x20)
        return ADDR_RESERVED;
    return ADDR_PUBLIC;
}

static void v4_at(struct ip *out, const uint8_t *a, int i0, int i1, int i2, int i3)
{
    memset(out, 0, sizeof(*out));
    out->family = AF_INET;
    out->a[0] = a[i0];
    out->a[1] = a[i1];
    out->a[2] = a[i2];
    out->a[3] = a[i3];
}

/*
 * The IPv4 addresses an IPv6 address leads to, if it is one of the
 * embedding forms: returns how many were written to out (at most 4), 0
 * for a plain IPv6 address.
 */
static size_t embedded_v4(const struct ip *ip, struct ip out[4])
{
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    static const uint8_t translated[12] = {[8] = 0xff, [9] = 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    static const uint8_t nat64_local[6] = {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01};
    const uint8_t *a = ip->a;

    if (ip->family != AF_INET6)
        return 0;
    if (!memcmp(a, mapped, 12) || !memcmp(a, translated, 12) || !memcmp(a, nat64, 12)) {
        v4_at(&out[0], a, 12, 13, 14, 15);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4 */
        v4_at(&out[0], a, 2, 3, 4, 5);
        return 1;
    }
    if (!memcmp(a, nat64_local, 6)) {     /* RFC 6052 section 2.2; byte 8 is "u" */
        v4_at(&out[0], a, 6, 7, 9, 10);   /* /48 */
        v4_at(&out[1], a, 7, 9, 10, 11);  /* /56 */
        v4_at(&out[2], a, 9, 10, 11, 12); /* /64 */
        v4_at(&out[3], a, 12, 13, 14, 15);
        return 4;
    }
    return 0;
}

/*
 * The targets an address must pass: itself, or its embedded IPv4
 * addresses.  With several candidate positions, those holding 0.0.0.0/8
 * are unused; if every one is, the first stays so that it is denied.
 */
static size_t targets(const struct ip *ip, struct ip out[4], int *ret_embedded)
{
    struct ip cand[4];
    size_t n = embedded_v4(ip, cand), k = 0;

    *ret_embedded = n > 0;
    if (n == 0) {
        out[0] = *ip;
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (n == 1 || cand[i].a[0] != 0)
            out[k++] = cand[i];
    if (k == 0)
        out[k++] = cand[0];
    return k;
}

enum addr_class addr_classify(const struct sockaddr *sa)
{
    struct ip ip, t[4];
    int embedded;

    if (ip_from_sockaddr(sa, &ip) < 0)
        return ADDR_BAD_FAMILY;
    size_t n = targets(&ip, t, &embedded);
    for (size_t i = 0; i < n; i++) {
        enum addr_class c = classify_table(&t[i]);
        if (c != ADDR_PUBLIC)
            return c;
    }
    return ADDR_PUBLIC;
}

static int in_local_net(const struct addr_policy *p, const struct ip *ip)
{
    for (size_t i = 0; i < p->n_local; i++)
        if (ip_in(ip, &p->local[i].ip, p->local[i].prefix))
            return 1;
    return 0;
}

/* 1 if a configured range covers ip; with local_too, only a range fit for local networks. */
static int reallowed(const struct addr_policy *p, const struct ip *ip, int local_too)
{
    for (size_t i = 0; i < p->n_allow; i++) {
        const struct allow_range *r = &p->allow[i];
        if (ip_in(ip, &r->net, r->prefix) && !(local_too && r->covers_own))
            return 1;
    }
    return 0;
}

static int deny(enum addr_class c, int embedded, const char **reason)
{
    if (reason)
        *reason = embedded ? class_text_embedded[c] : class_text[c];
    return 0;
}

int addr_allowed(const struct addr_policy *p, const struct sockaddr *sa, const char **reason)
{
    struct ip ip, t[4];
    int embedded;

    if (ip_from_sockaddr(sa, &ip) < 0)
        return deny(ADDR_BAD_FAMILY, 0, reason);
    size_t n = targets(&ip, t, &embedded);
    for (size_t i = 0; i < n; i++) {
        enum addr_class c = classify_table(&t[i]);
        if (c != ADDR_PUBLIC && !(p && addr_class_reallowable(c) && reallowed(p, &t[i], 0)))
            return deny(c, embedded, reason);
        if (p && in_local_net(p, &t[i]) && !reallowed(p, &t[i], 1))
            return deny(ADDR_LOCAL_NET, embedded, reason);
    }
    if (embedded && p && in_local_net(p, &ip) && !reallowed(p, &ip, 1))
        return deny(ADDR_LOCAL_NET, 0, reason);
    return 1;
}

static void compute_covers_own(struct addr_policy *p)
{
    for (size_t i = 0; i < p->n_allow; i++) {
        struct allow_range *r = &p->allow[i];
        r->covers_own = 0;
        for (size_t j = 0; j < p->n_local && !r->covers_own; j++)
            r->covers_own = ip_in(&p->local[j].ip, &r->net, r->prefix);
    }
}

static int valid_cidr(const struct pconf_cidr *c)
{
    return (c->family == AF_INET || c->family == AF_INET6) && c->prefix >= 0 &&
           c->prefix <= family_bits(c->family);
}

void addr_policy_set_local(struct addr_policy *p, const struct pconf_cidr *ifaddrs, size_t n)
{
    struct local_if *v = n ? xcalloc(n, sizeof(*v)) : NULL;
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (!valid_cidr(&ifaddrs[i]))
            continue;
        v[k].ip.family = ifaddrs[i].family;
        memcpy(v[k].ip.a, ifaddrs[i].addr, ifaddrs[i].family == AF_INET ? 4 : 16);
        v[k].prefix = ifaddrs[i].prefix;
        k++;
    }
    free(p->local);
    p->local = v;
    p->n_local = k;
    compute_covers_own(p);
}

static int mask_prefix(const uint8_t *m, size_t len)
{
    int bits = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t b = m[i];
        while (b & 0x80) {
            bits++;
            b = (uint8_t)(b << 1);
        }
        if (m[i] != 0xff)
            break;
    }
    return bits;
}

int addr_policy_refresh(struct addr_policy *p)
{
    struct ifaddrs *ifs = NULL;
    struct pconf_cidr *v = NULL;
    size_t n = 0, cap = 0;

    if (getifaddrs(&ifs) < 0)
        return BD_E_IO;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        const struct sockaddr *sa = i->ifa_addr;
        struct ip ip;

        if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
            continue;
        if (ip_from_sockaddr(sa, &ip) < 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            v = xrealloc(v, cap * sizeof(*v));
        }
        memset(&v[n], 0, sizeof(v[n]));
        v[n].family = ip.family;
        memcpy(v[n].addr, ip.a, sizeof(ip.a));
        v[n].prefix = family_bits(ip.family);
        /* No netmask (some point-to-point links): the address alone. */
        if (i->ifa_netmask && i->ifa_netmask->sa_family == sa->sa_family) {
            struct ip mask;
            if (ip_from_sockaddr(i->ifa_netmask, &mask) == 0)
                v[n].prefix = mask_prefix(mask.a, ip.family == AF_INET ? 4 : 16);
        }
        n++;
    }
    freeifaddrs(ifs);
    addr_policy_set_local(p, v, n);
    free(v);
    return 0;
}

int addr_policy_new(const struct pconf_cidr *allow, size_t n_allow, struct addr_policy **ret)
{
    struct addr_policy *p = NULL;
    int err;

    for (size_t i = 0; i < n_allow; i++)
        if (!valid_cidr(&allow[i]))
            return BD_E_INVAL;
    p = xcalloc(1, sizeof(*p));
    if (n_allow)
        p->allow = xcalloc(n_allow, sizeof(*p->allow));
    for (size_t i = 0; i < n_allow; i++) {
        struct allow_range *r = &p->allow[i];
        int len = allow[i].family == AF_INET ? 4 : 16;
        r->net.family = allow[i].family;
        memcpy(r->net.a, allow[i].addr, (size_t)len);
        r->prefix = allow[i].prefix;
    }
    p->n_allow = n_allow;
    err = addr_policy_refresh(p);
    if (err < 0) {
        addr_policy_free(p);
        return err;
    }
    *ret = p;
    return 0;
}

void addr_policy_free(struct addr_policy *p)
{
    if (!p)
        return;
    free(p->allow);
    free(p->local);
    free(p);
}

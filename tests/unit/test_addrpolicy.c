/*
 * test_addrpolicy.c - every denied range with a neighbour on each side that
 * is allowed, the IPv4-embedding IPv6 forms, allow_private re-allowing
 * what it may (and never metadata, loopback, multicast ...), and the local
 * interface networks, both set by hand and read from this machine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "addrpolicy.h"
#include "err.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct sockaddr_storage ss_of(const char *s)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(443);
    } else if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(443);
    } else {
        fail_msg("bad address in test table: %s", s);
    }
    return ss;
}

static struct pconf_cidr cidr_of(const char *s, int prefix)
{
    struct pconf_cidr c;

    memset(&c, 0, sizeof(c));
    c.family = strchr(s, ':') ? AF_INET6 : AF_INET;
    assert_int_equal(inet_pton(c.family, s, c.addr), 1);
    c.prefix = prefix;
    return c;
}

struct class_case {
    const char *addr;
    enum addr_class cls;
    int embedded; /* denial reason says "embedded" */
};

static const struct class_case class_cases[] = {
    /* unspecified 0/8 */
    {"0.0.0.0", ADDR_UNSPECIFIED, 0},
    {"0.255.255.255", ADDR_UNSPECIFIED, 0},
    {"1.0.0.0", ADDR_PUBLIC, 0},
    /* loopback 127/8 */
    {"126.255.255.255", ADDR_PUBLIC, 0},
    {"127.0.0.1", ADDR_LOOPBACK, 0},
    {"127.255.255.255", ADDR_LOOPBACK, 0},
    {"128.0.0.0", ADDR_PUBLIC, 0},
    /* link-local 169.254/16 and metadata inside it */
    {"169.253.255.255", ADDR_PUBLIC, 0},
    {"169.254.0.1", ADDR_LINK_LOCAL, 0},
    {"169.254.255.255", ADDR_LINK_LOCAL, 0},
    {"169.255.0.0", ADDR_PUBLIC, 0},
    {"169.254.169.254", ADDR_METADATA, 0},
    {"169.254.169.253", ADDR_LINK_LOCAL, 0},
    {"169.254.170.2", ADDR_METADATA, 0},
    {"169.254.170.23", ADDR_METADATA, 0},
    /* private */
    {"9.255.255.255", ADDR_PUBLIC, 0},
    {"10.0.0.0", ADDR_PRIVATE, 0},
    {"10.255.255.255", ADDR_PRIVATE, 0},
    {"11.0.0.0", ADDR_PUBLIC, 0},
    {"172.15.255.255", ADDR_PUBLIC, 0},
    {"172.16.0.0", ADDR_PRIVATE, 0},
    {"172.31.255.255", ADDR_PRIVATE, 0},
    {"172.32.0.0", ADDR_PUBLIC, 0},
    {"192.167.255.255", ADDR_PUBLIC, 0},
    {"192.168.0.1", ADDR_PRIVATE, 0},
    {"192.168.255.255", ADDR_PRIVATE, 0},
    {"192.169.0.0", ADDR_PUBLIC, 0},
    /* CGNAT 100.64/10, Alibaba's metadata inside it */
    {"100.63.255.255", ADDR_PUBLIC, 0},
    {"100.64.0.0", ADDR_CGNAT, 0},
    {"100.127.255.255", ADDR_CGNAT, 0},
    {"100.128.0.0", ADDR_PUBLIC, 0},
    {"100.100.100.200", ADDR_METADATA, 0},
    {"100.100.100.201", ADDR_CGNAT, 0},
    /* IETF protocol assignments, documentation, benchmarking */
    {"191.255.255.255", ADDR_PUBLIC, 0},
    {"192.0.0.8", ADDR_PROTOCOL, 0},
    {"192.0.0.192", ADDR_METADATA, 0},
    {"192.0.1.0", ADDR_PUBLIC, 0},
    {"192.0.2.1", ADDR_DOCUMENTATION, 0},
    {"192.0.3.0", ADDR_PUBLIC, 0},
    {"198.17.255.255", ADDR_PUBLIC, 0},
    {"198.18.0.1", ADDR_BENCHMARK, 0},
    {"198.19.255.255", ADDR_BENCHMARK, 0},
    {"198.20.0.0", ADDR_PUBLIC, 0},
    {"198.51.99.255", ADDR_PUBLIC, 0},
    {"198.51.100.7", ADDR_DOCUMENTATION, 0},
    {"198.51.101.0", ADDR_PUBLIC, 0},
    {"203.0.112.255", ADDR_PUBLIC, 0},
    {"203.0.113.9", ADDR_DOCUMENTATION, 0},
    {"203.0.114.0", ADDR_PUBLIC, 0},
    {"192.88.99.1", ADDR_RESERVED, 0},
    {"192.88.100.0", ADDR_PUBLIC, 0},
    /* multicast 224/4, reserved 240/4, broadcast */
    {"223.255.255.255", ADDR_PUBLIC, 0},
    {"224.0.0.1", ADDR_MULTICAST, 0},
    {"239.255.255.255", ADDR_MULTICAST, 0},
    {"240.0.0.1", ADDR_RESERVED, 0},
    {"255.255.255.254", ADDR_RESERVED, 0},
    {"255.255.255.255", ADDR_BROADCAST, 0},
    /* ordinary public */
    {"93.184.216.34", ADDR_PUBLIC, 0},
    {"8.8.8.8", ADDR_PUBLIC, 0},

    /* IPv6: unspecified, loopback, IPv4-compatible */
    {"::", ADDR_UNSPECIFIED, 0},
    {"::1", ADDR_LOOPBACK, 0},
    {"::2", ADDR_V4COMPAT, 0},
    {"::10.0.0.5", ADDR_V4COMPAT, 0},
    {"::93.184.216.34", ADDR_V4COMPAT, 0},
    /* link-local, site-local, ULA, multicast */
    {"fe7f:ffff::", ADDR_RESERVED, 0},
    {"fe80::1", ADDR_LINK_LOCAL, 0},
    {"febf:ffff::1", ADDR_LINK_LOCAL, 0},
    {"fec0::1", ADDR_SITE_LOCAL, 0},
    {"feff:ffff::1", ADDR_SITE_LOCAL, 0},
    {"fbff:ffff::1", ADDR_RESERVED, 0},
    {"fc00::1", ADDR_ULA, 0},
    {"fdff:ffff::1", ADDR_ULA, 0},
    {"fd00:ec2::254", ADDR_METADATA, 0},
    {"fd00:ec2::23", ADDR_METADATA, 0},
    {"fd00:ec2::253", ADDR_ULA, 0},
    {"ff02::1", ADDR_MULTICAST, 0},
    {"ff0e::1", ADDR_MULTICAST, 0},
    /* 2001::/23 with Teredo, benchmarking and documentation */
    {"2001::1", ADDR_TEREDO, 0},
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", ADDR_TEREDO, 0},
    {"2001:1::1", ADDR_PROTOCOL, 0},
    {"2001:2::1", ADDR_BENCHMARK, 0},
    {"2001:2:1::1", ADDR_PROTOCOL, 0},
    {"2001:1ff:ffff::1", ADDR_PROTOCOL, 0},
    {"2001:200::1", ADDR_PUBLIC, 0},
    {"2001:db7:ffff::1", ADDR_PUBLIC, 0},
    {"2001:db8::1", ADDR_DOCUMENTATION, 0},
    {"2001:db8:ffff::1", ADDR_DOCUMENTATION, 0},
    {"2001:db9::1", ADDR_PUBLIC, 0},
    {"3ffe:ffff::1", ADDR_PUBLIC, 0},
    {"3fff::1", ADDR_DOCUMENTATION, 0},
    {"3fff:fff::1", ADDR_DOCUMENTATION, 0},
    {"3fff:1000::1", ADDR_PUBLIC, 0},
    {"5f00::1", ADDR_RESERVED, 0}, /* SRv6 SIDs, outside 2000::/3 like the rest */
    /* outside 2000::/3 */
    {"1fff:ffff::1", ADDR_RESERVED, 0},
    {"2000::1", ADDR_PUBLIC, 0},
    {"3fff:ffff::1", ADDR_PUBLIC, 0},
    {"4000::1", ADDR_RESERVED, 0},
    {"100::1", ADDR_RESERVED, 0},
    {"2606:4700:4700::1111", ADDR_PUBLIC, 0},

    /* IPv4-mapped: judged by the IPv4 inside */
    {"::ffff:10.0.0.5", ADDR_PRIVATE, 1},
    {"::ffff:127.0.0.1", ADDR_LOOPBACK, 1},
    {"::ffff:169.254.169.254", ADDR_METADATA, 1},
    {"::ffff:0.0.0.0", ADDR_UNSPECIFIED, 1},
    {"::ffff:192.168.1.1", ADDR_PRIVATE, 1},
    {"::ffff:100.64.0.1", ADDR_CGNAT, 1},
    {"::ffff:93.184.216.34", ADDR_PUBLIC, 0},
    /* IPv4-translated ::ffff:0:0:0/96 */
    {"::ffff:0:10.0.0.5", ADDR_PRIVATE, 1},
    {"::ffff:0:93.184.216.34", ADDR_PUBLIC, 0},
    /* NAT64 well-known prefix */
    {"64:ff9b::10.0.0.5", ADDR_PRIVATE, 1},
    {"64:ff9b::127.0.0.1", ADDR_LOOPBACK, 1},
    {"64:ff9b::169.254.169.254", ADDR_METADATA, 1},
    {"64:ff9b::93.184.216.34", ADDR_PUBLIC, 0},
    {"64:ff9b:0:1::5db8:d822", ADDR_RESERVED, 0}, /* in 64:ff9b::/32, not the /96 */
    /* NAT64 local-use prefix: every RFC 6052 position */
    {"64:ff9b:1::10.0.0.5", ADDR_PRIVATE, 1},       /* /96 */
    {"64:ff9b:1:0:c0:a801:100:0", ADDR_PRIVATE, 1}, /* /64: 192.168.1.1 */
    {"64:ff9b:1:a00:0:500::", ADDR_PRIVATE, 1},     /* /48: 10.0.0.5 */
    {"64:ff9b:1:7f:0:1::", ADDR_LOOPBACK, 1},       /* /56: 127.0.0.1 */
    {"64:ff9b:1::93.184.216.34", ADDR_PUBLIC, 0},   /* /96, public */
    {"64:ff9b:1::", ADDR_UNSPECIFIED, 1},           /* nothing in any position */
    /* 6to4 */
    {"2002:a00:5::1", ADDR_PRIVATE, 1},
    {"2002:7f00:1::1", ADDR_LOOPBACK, 1},
    {"2002:a9fe:a9fe::1", ADDR_METADATA, 1},
    {"2002:5db8:d822::1", ADDR_PUBLIC, 0},
    {"2003::1", ADDR_PUBLIC, 0},
};

static void test_class_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(class_cases); i++) {
        const struct class_case *c = &class_cases[i];
        const char *addr = c->addr;
        struct sockaddr_storage ss = ss_of(addr);
        const struct sockaddr *sa = (const struct sockaddr *)&ss;
        const char *reason = NULL;
        int allowed = addr_allowed(NULL, sa, &reason);

        if (addr_classify(sa) != c->cls)
            fail_msg("%s: class %s, want %s", addr, addr_class_str(addr_classify(sa)),
                     addr_class_str(c->cls));
        if (allowed != (c->cls == ADDR_PUBLIC))
            fail_msg("%s: allowed=%d", addr, allowed);
        if (!allowed) {
            assert_non_null(reason);
            assert_true(!strncmp(reason, addr_class_str(c->cls), strlen(addr_class_str(c->cls))));
            if (c->embedded != (strstr(reason, "embedded") != NULL))
                fail_msg("%s: reason \"%s\"", addr, reason);
        }
    }
}

static void test_reasons(void **state)
{
    (void)state;
    struct sockaddr_storage ss = ss_of("10.0.0.5");
    const char *reason = NULL;

    assert_false(addr_allowed(NULL, (struct sockaddr *)&ss, &reason));
    assert_string_equal(reason, "private address");
    ss = ss_of("::ffff:10.0.0.5");
    assert_false(addr_allowed(NULL, (struct sockaddr *)&ss, &reason));
    assert_string_equal(reason, "private address (embedded in an IPv6 address)");
    ss = ss_of("169.254.169.254");
    assert_false(addr_allowed(NULL, (struct sockaddr *)&ss, NULL)); /* reason optional */

    struct sockaddr_storage un;
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    assert_int_equal(addr_classify((struct sockaddr *)&un), ADDR_BAD_FAMILY);
    assert_false(addr_allowed(NULL, (struct sockaddr *)&un, &reason));
    assert_string_equal(reason, addr_class_str(ADDR_BAD_FAMILY));
    assert_false(addr_allowed(NULL, NULL, &reason));

    /* every class has its own text */
    for (int i = ADDR_PUBLIC; i <= ADDR_BAD_FAMILY; i++)
        for (int j = ADDR_PUBLIC; j < i; j++)
            assert_string_not_equal(addr_class_str((enum addr_class)i),
                                    addr_class_str((enum addr_class)j));
    assert_non_null(addr_class_str((enum addr_class)1000));
}

static struct addr_policy *policy_with(const struct pconf_cidr *allow, size_t n,
                                       const struct pconf_cidr *local, size_t n_local)
{
    struct addr_policy *p = NULL;

    assert_int_equal(addr_policy_new(allow, n, &p), 0);
    addr_policy_set_local(p, local, n_local);
    return p;
}

static int allowed(const struct addr_policy *p, const char *addr)
{
    struct sockaddr_storage ss = ss_of(addr);
    return addr_allowed(p, (const struct sockaddr *)&ss, NULL);
}

static void test_allow_private(void **state)
{
    (void)state;
    const struct pconf_cidr allow[] = {
        cidr_of("10.0.0.0", 8),       cidr_of("169.254.0.0", 16), cidr_of("fd00::", 8),
        cidr_of("127.0.0.0", 8),      cidr_of("224.0.0.0", 4),    cidr_of("198.18.0.0", 15),
        cidr_of("100.100.100.0", 24), cidr_of("::", 127),
    };
    struct addr_policy *p = policy_with(allow, N(allow), NULL, 0);

    /* re-allowed, in every form that leads to the range */
    assert_true(allowed(p, "10.1.2.3"));
    assert_true(allowed(p, "::ffff:10.1.2.3"));
    assert_true(allowed(p, "64:ff9b::10.1.2.3"));
    assert_true(allowed(p, "2002:a01:203::1"));
    assert_true(allowed(p, "169.254.1.1"));
    assert_true(allowed(p, "fd00::1"));
    assert_true(allowed(p, "198.19.0.1"));
    assert_true(allowed(p, "100.100.100.1"));
    /* outside the ranges: still denied */
    assert_false(allowed(p, "192.168.1.1"));
    assert_false(allowed(p, "172.16.0.1"));
    assert_false(allowed(p, "fc00::1"));
    assert_false(allowed(p, "100.64.0.1"));
    /* never re-allowed */
    assert_false(allowed(p, "169.254.169.254"));
    assert_false(allowed(p, "::ffff:169.254.169.254"));
    assert_false(allowed(p, "fd00:ec2::254"));
    assert_false(allowed(p, "100.100.100.200"));
    assert_false(allowed(p, "127.0.0.1"));
    assert_false(allowed(p, "::ffff:127.0.0.1"));
    assert_false(allowed(p, "224.0.0.1"));
    assert_false(allowed(p, "::"));
    assert_false(allowed(p, "::1"));
    /* public stays allowed */
    assert_true(allowed(p, "93.184.216.34"));
    addr_policy_free(p);

    /* the widest ranges possible still leave the never-re-allowed classes shut */
    const struct pconf_cidr all[] = {cidr_of("0.0.0.0", 0), cidr_of("::", 0)};
    p = policy_with(all, N(all), NULL, 0);
    for (size_t i = 0; i < N(class_cases); i++) {
        const struct class_case *c = &class_cases[i];
        if (allowed(p, c->addr) != addr_class_reallowable(c->cls))
            fail_msg("%s with 0/0 allowed: got %d", c->addr, allowed(p, c->addr));
    }
    addr_policy_free(p);

    /* host bits beyond the prefix do not matter */
    const struct pconf_cidr sloppy[] = {cidr_of("10.9.9.9", 16)};
    p = policy_with(sloppy, N(sloppy), NULL, 0);
    assert_true(allowed(p, "10.9.0.1"));
    assert_false(allowed(p, "10.10.0.1"));
    addr_policy_free(p);
}

static void test_bad_ranges(void **state)
{
    (void)state;
    struct addr_policy *p = NULL;
    struct pconf_cidr bad[] = {cidr_of("10.0.0.0", 33)};

    assert_int_equal(addr_policy_new(bad, 1, &p), BD_E_INVAL);
    assert_null(p);
    bad[0] = cidr_of("fd00::", 129);
    assert_int_equal(addr_policy_new(bad, 1, &p), BD_E_INVAL);
    bad[0] = cidr_of("fd00::", 8);
    bad[0].family = AF_UNIX;
    assert_int_equal(addr_policy_new(bad, 1, &p), BD_E_INVAL);
    bad[0] = cidr_of("10.0.0.0", -1);
    assert_int_equal(addr_policy_new(bad, 1, &p), BD_E_INVAL);
    assert_null(p);
}

static void test_local_networks(void **state)
{
    (void)state;
    /* A bottle's view: public-looking subnets so that only the local rule can deny. */
    const struct pconf_cidr local[] = {
        cidr_of("93.184.216.2", 24),
        cidr_of("2a00:1450::5", 64),
        cidr_of("10.213.0.18", 28),
    };
    struct addr_policy *p = policy_with(NULL, 0, local, N(local));
    struct sockaddr_storage ss = ss_of("93.184.216.1");
    const char *reason = NULL;

    assert_false(addr_allowed(p, (struct sockaddr *)&ss, &reason)); /* the gateway */
    assert_string_equal(reason, "address on a local interface's network");
    assert_false(allowed(p, "93.184.216.2"));   /* our own address */
    assert_false(allowed(p, "93.184.216.255")); /* directed broadcast */
    assert_false(allowed(p, "::ffff:93.184.216.34"));
    assert_false(allowed(p, "64:ff9b::93.184.216.34"));
    assert_false(allowed(p, "2002:5db8:d822::1"));
    assert_true(allowed(p, "93.184.217.1"));
    assert_true(allowed(p, "93.184.215.255"));
    assert_false(allowed(p, "2a00:1450::1"));
    assert_false(allowed(p, "2a00:1450::ffff:ffff:ffff:ffff"));
    assert_true(allowed(p, "2a00:1450:0:1::1"));
    /* the outer IPv6 address of an embedding form is checked too */
    const struct pconf_cidr local6to4[] = {cidr_of("2002:5db8:d822::1", 48)};
    addr_policy_set_local(p, local6to4, N(local6to4));
    assert_false(allowed(p, "2002:5db8:d822::99"));
    assert_true(allowed(p, "2002:5db8:d823::1"));
    addr_policy_free(p);

    /*
     * A blanket range containing one of our own addresses does not open
     * our networks; a range written for a host there does.
     */
    const struct pconf_cidr blanket[] = {cidr_of("10.0.0.0", 8)};
    p = policy_with(blanket, N(blanket), local, N(local));
    assert_true(allowed(p, "10.5.0.1"));
    assert_false(allowed(p, "10.213.0.17"));
    assert_false(allowed(p, "10.213.0.18"));
    addr_policy_free(p);

    const struct pconf_cidr exact[] = {cidr_of("10.213.0.17", 32)};
    p = policy_with(exact, N(exact), local, N(local));
    assert_true(allowed(p, "10.213.0.17"));
    assert_false(allowed(p, "10.213.0.18"));
    assert_false(allowed(p, "10.213.0.19"));
    addr_policy_free(p);

    /* bad entries in a hand-made interface list are skipped */
    struct pconf_cidr odd[] = {cidr_of("93.184.216.2", 24), cidr_of("8.8.8.8", 40)};
    odd[0].family = AF_UNIX;
    p = policy_with(NULL, 0, odd, N(odd));
    assert_true(allowed(p, "93.184.216.1"));
    assert_true(allowed(p, "8.8.8.8"));
    addr_policy_free(p);
}

/* Whatever this machine's interfaces are, none of their addresses may be dialled. */
static void test_real_interfaces(void **state)
{
    (void)state;
    struct addr_policy *p = NULL;
    struct ifaddrs *ifs = NULL;
    size_t checked = 0;

    assert_int_equal(addr_policy_new(NULL, 0, &p), 0);
    assert_int_equal(getifaddrs(&ifs), 0);
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr ||
            (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        char text[INET6_ADDRSTRLEN] = "";
        const void *a = i->ifa_addr->sa_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
        inet_ntop(i->ifa_addr->sa_family, a, text, sizeof(text));
        struct sockaddr_storage ss = ss_of(text); /* drops the scope id */
        const char *reason = NULL;
        if (addr_allowed(p, (struct sockaddr *)&ss, &reason))
            fail_msg("interface %s address %s allowed", i->ifa_name, text);
        checked++;
    }
    freeifaddrs(ifs);
    assert_true(checked > 0); /* at least loopback */
    assert_int_equal(addr_policy_refresh(p), 0);
    addr_policy_free(p);

    /* with 0/0 allowed, an interface address is still denied: 0/0 covers our own */
    const struct pconf_cidr all[] = {cidr_of("0.0.0.0", 0), cidr_of("::", 0)};
    assert_int_equal(addr_policy_new(all, N(all), &p), 0);
    assert_int_equal(getifaddrs(&ifs), 0);
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        struct sockaddr_in sin;
        memcpy(&sin, i->ifa_addr, sizeof(sin));
        assert_false(addr_allowed(p, (struct sockaddr *)&sin, NULL));
    }
    freeifaddrs(ifs);
    addr_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_class_table),    cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_allow_private),  cmocka_unit_test(test_bad_ranges),
        cmocka_unit_test(test_local_networks), cmocka_unit_test(test_real_interfaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

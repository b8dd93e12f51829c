/*
 * addrpolicy.h - which resolved addresses the sidecar may dial.
 *
 * Every address a name resolves to is checked here before the proxy
 * connects to it, and the proxy dials only an address that passed (no
 * second resolution, so DNS rebinding between check and connect is moot).
 *
 * Denied by class (addr_classify()):
 *   IPv4  0/8 unspecified, 127/8 loopback, 169.254/16 link-local,
 *         10/8 172.16/12 192.168/16 private, 100.64/10 CGNAT,
 *         224/4 multicast, 255.255.255.255 broadcast, 240/4 and
 *         192.88.99/24 reserved, 192.0.0/24 IETF protocol assignments,
 *         192.0.2/24 198.51.100/24 203.0.113/24 documentation,
 *         198.18/15 benchmarking;
 *   IPv6  :: unspecified, ::1 loopback, fe80::/10 link-local, fec0::/10
 *         site-local, fc00::/7 ULA, ff00::/8 multicast, 2001:db8::/32 and
 *         3fff::/20 documentation, 2001:2::/48 benchmarking, 2001::/32
 *         Teredo, the rest of 2001::/23 (IETF protocol assignments),
 *         everything outside 2000::/3 reserved (5f00::/16 SRv6 included),
 *         ::/96 IPv4-compatible (deprecated);
 *   cloud metadata endpoints, whatever range they sit in: 169.254.169.254,
 *         169.254.170.2, 169.254.170.23, 100.100.100.200, 192.0.0.192,
 *         fd00:ec2::254, fd00:ec2::23.
 * IPv6 forms that carry an IPv4 address are judged by the IPv4 address
 * they lead to: IPv4-mapped ::ffff:0:0/96, IPv4-translated ::ffff:0:0:0/96,
 * NAT64 64:ff9b::/96, 6to4 2002::/16, and the local-use NAT64 prefix
 * 64:ff9b:1::/48, where the embedding position depends on a prefix length
 * we cannot know: every RFC 6052 position (/48, /56, /64, /96) is checked
 * and any non-public candidate denies (positions holding 0.0.0.0/8 are
 * taken as unused; if all are, the address is denied as unspecified).
 *
 * Denied by the machine (struct addr_policy): every address inside the
 * network of any local interface (getifaddrs(), at build time and on
 * addr_policy_refresh()).  That covers the interfaces' own addresses, the
 * bridge gateways (the host) and directed broadcasts without having to
 * guess which address in a subnet is the gateway.
 *
 * Re-allowed by configuration (allow_private CIDRs, --proxy-allow-private):
 * a configured range re-allows the classes link-local, private, CGNAT,
 * ULA, site-local, documentation, benchmarking, protocol assignments and
 * reserved.  It never re-allows unspecified, loopback, multicast,
 * broadcast, metadata, Teredo or IPv4-compatible addresses: none of them
 * is an upstream, and a broad range (169.254.0.0/16, fd00::/8) must not
 * open a metadata endpoint by accident.  A range re-allows an address on a
 * local interface's network only if the range contains none of the
 * interfaces' own addresses: "10.0.0.0/8" written for a corporate network
 * does not open the sidecar's own bridge gateway, "10.213.0.17/32" does.
 *
 * Addresses are passed as struct sockaddr pointing at a full sockaddr_in or
 * sockaddr_in6 (sockaddr_storage is fine); other families are denied.
 */
#ifndef BOTTLED_ADDRPOLICY_H
#define BOTTLED_ADDRPOLICY_H

#include <stddef.h>
#include <sys/socket.h>

#include "pconf.h"

enum addr_class {
    ADDR_PUBLIC = 0,
    ADDR_UNSPECIFIED,
    ADDR_LOOPBACK,
    ADDR_METADATA,
    ADDR_MULTICAST,
    ADDR_BROADCAST,
    ADDR_LINK_LOCAL,
    ADDR_PRIVATE,
    ADDR_CGNAT,
    ADDR_ULA,
    ADDR_SITE_LOCAL,
    ADDR_DOCUMENTATION,
    ADDR_BENCHMARK,
    ADDR_PROTOCOL, /* IETF protocol assignments: 192.0.0/24, 2001::/23 */
    ADDR_RESERVED,
    ADDR_TEREDO,
    ADDR_V4COMPAT,
    ADDR_LOCAL_NET,  /* on a local interface's network: only from addr_allowed() */
    ADDR_BAD_FAMILY, /* neither AF_INET nor AF_INET6 */
};

/*
 * The class of an address on its own, without the machine's interfaces or
 * the configuration.  For the IPv4-embedding IPv6 forms it is the class of
 * the embedded address (ADDR_PUBLIC if that is public).  Never returns
 * ADDR_LOCAL_NET.
 */
enum addr_class addr_classify(const struct sockaddr *sa);

/* Short lowercase name of a class, e.g. "private address"; never NULL. */
const char *addr_class_str(enum addr_class c);

/* 1 if a configured range may re-allow addresses of this class. */
int addr_class_reallowable(enum addr_class c);

struct addr_policy;

/*
 * Builds a policy from the configured allow_private ranges (copied; host
 * bits beyond the prefix are ignored) and the local interfaces read now.
 * Returns 0 and *ret, BD_E_INVAL for a range with a bad family or prefix,
 * or BD_E_IO (errno set) if the interfaces cannot be read.
 */
int addr_policy_new(const struct pconf_cidr *allow, size_t n_allow, struct addr_policy **ret);
void addr_policy_free(struct addr_policy *p);

/*
 * Re-reads the local interfaces (after a network was attached).  Returns
 * 0, or BD_E_IO with the previous list kept.  Not safe while another
 * thread calls addr_allowed() on the same policy.
 */
int addr_policy_refresh(struct addr_policy *p);

/*
 * Replaces the local interface list with the given interface addresses,
 * each with its network's prefix length (addr is the interface's own
 * address, not the network).  For tests and for callers that learn
 * interfaces another way (netlink).  Entries with a bad family or prefix
 * are skipped.
 */
void addr_policy_set_local(struct addr_policy *p, const struct pconf_cidr *ifaddrs, size_t n);

/*
 * 1 if the proxy may dial sa, else 0 with *reason (if reason is non-NULL)
 * set to a static string naming the class that denied it, e.g. "private
 * address" or "loopback address (embedded in an IPv6 address)".  p may be
 * NULL: classes only, nothing re-allowed, no interfaces.
 */
int addr_allowed(const struct addr_policy *p, const struct sockaddr *sa, const char **reason);

#endif

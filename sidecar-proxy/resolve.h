/*
 * resolve.h - asynchronous name resolution for the sidecar (c-ares), with
 * every answer already checked by the address policy.
 *
 * The proxy resolves route hosts itself so that a configured DNS server
 * (--proxy-dns) is honoured and its event loop never blocks.  A lookup
 * asks for A and AAAA, classifies each answer with addr_allowed() and
 * hands the caller only the addresses that passed: the caller dials one of
 * those, never resolves the name a second time, and so connects to exactly
 * the address that was checked.
 *
 * Sources, first match wins:
 *   1. static host entries (--proxy-add-host): answered without DNS; their
 *      addresses go through the policy like any other (a private address
 *      there also needs an allow_private range);
 *   2. DNS: the configured server ("IP", "IP:PORT", "[IPv6]:PORT", or a
 *      comma-separated list of those), asked for exactly the name (no
 *      search domains, no /etc/hosts, no HOSTALIASES); or, without one,
 *      the container's resolver as c-ares configures itself (servers from
 *      /etc/resolv.conf, /etc/hosts where nsswitch.conf puts it), still
 *      without search domains.
 *
 * Driving it from an event loop (single-threaded; nothing here blocks):
 *   - resolver_watch() reports each socket c-ares opens, changes interest
 *     in or closes (register/modify/remove it in epoll), or
 *     resolver_getsock() lists them for a poll()-style loop;
 *   - when a socket is ready call resolver_process(r, fd, readable,
 *     writable); when resolver_timeout_ms() elapses call
 *     resolver_process(r, -1, 0, 0);
 *   - callbacks run only inside resolver_process() and resolver_wait(),
 *     never inside resolver_lookup(), so a caller can start a lookup and
 *     then record the handle without racing its own callback.
 * resolver_wait() is a blocking driver for tests and tools.
 *
 * Limits: a lookup gives up after the c-ares timeout and tries (defaults
 * below), at most max_answers allowed addresses are kept (the first in
 * answer order, duplicates removed), and at most max_queries lookups may
 * be outstanding at once.
 *
 * Ownership: the resolver borrows the policy, which must outlive it; the
 * result passed to a callback is valid only during the call.  Never free
 * the resolver from inside one of its callbacks.
 */
#ifndef BOTTLED_RESOLVE_H
#define BOTTLED_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addrpolicy.h"
#include "pconf.h"

enum resolve_status {
    RESOLVE_OK = 0,   /* n_addrs >= 1 */
    RESOLVE_DENIED,   /* answers came, the policy refused all: reason says why */
    RESOLVE_NXDOMAIN, /* the name does not exist */
    RESOLVE_NODATA,   /* the name exists, without A or AAAA records */
    RESOLVE_TIMEOUT,  /* no answer in time */
    RESOLVE_FAIL,     /* server failure, refused, unreachable ...: reason says which */
};

struct resolve_result {
    enum resolve_status status;
    const char *name; /* as asked */
    /* Allowed addresses with the port set, in the order to try them. */
    const struct sockaddr_storage *addrs;
    size_t n_addrs;
    /*
     * Status other than RESOLVE_OK: a static lowercase text; for
     * RESOLVE_DENIED the policy's reason for the last refused address,
     * which is in denied_addr.
     */
    const char *reason;
    size_t n_denied;
    struct sockaddr_storage denied_addr;
};

typedef void (*resolve_cb)(void *arg, const struct resolve_result *res);

struct resolver_limits {
    int timeout_ms;     /* per try; default 2000 */
    int tries;          /* default 2 */
    size_t max_answers; /* allowed addresses kept per lookup; default 16 */
    size_t max_queries; /* outstanding lookups; default 4096 */
};

struct resolver;
struct resolve_query;

/*
 * dns_server NULL: the container's resolver.  hosts: static entries
 * (copied).  policy: borrowed.  limits NULL or zero fields: defaults.
 * Returns 0 and *ret, BD_E_INVAL for a dns_server c-ares cannot parse (an
 * empty string or a host name included) or a
 * static entry whose ip is not an IPv4 or IPv6 literal, or BD_E_INTERNAL
 * if c-ares cannot be initialised.
 */
int resolver_new(const char *dns_server, const struct pconf_static_host *hosts, size_t n_hosts,
                 const struct addr_policy *policy, const struct resolver_limits *limits,
                 struct resolver **ret);

/* Outstanding lookups are dropped without their callbacks being called. */
void resolver_free(struct resolver *r);

/*
 * Starts resolving name (a host name, at most 253 bytes, one trailing dot
 * allowed; IP literals are refused: the policy denies IP-literal
 * destinations before any lookup) for port.  cb will be called exactly
 * once, from resolver_process()/resolver_wait(), unless the lookup is
 * cancelled or the resolver freed first.  Returns 0 and, if ret_q is
 * non-NULL, a handle valid until cb runs or resolver_cancel(); BD_E_INVAL
 * for a bad name, BD_E_LIMIT when max_queries lookups are outstanding.
 */
int resolver_lookup(struct resolver *r, const char *name, uint16_t port, resolve_cb cb, void *arg,
                    struct resolve_query **ret_q);

/* The callback of q will not be called; q is invalid afterwards. */
void resolver_cancel(struct resolver *r, struct resolve_query *q);

/*
 * Socket interest changes: cb(arg, fd, readable, writable); both 0 means
 * the socket is being closed.  Set before the first lookup; sockets
 * opened earlier are reported at once.
 */
typedef void (*resolver_sock_cb)(void *arg, int fd, int readable, int writable);
void resolver_watch(struct resolver *r, resolver_sock_cb cb, void *arg);

struct resolver_sock {
    int fd;
    int readable, writable; /* interest */
};

/* Writes up to max sockets with their interest; returns how many exist. */
size_t resolver_getsock(const struct resolver *r, struct resolver_sock *out, size_t max);

/*
 * Processes fd (-1: none, just the timeouts) and calls the callbacks of
 * finished lookups.
 */
void resolver_process(struct resolver *r, int fd, int readable, int writable);

/*
 * Milliseconds until resolver_process(r, -1, 0, 0) is due: 0 when results
 * are waiting for delivery, -1 when nothing is outstanding.
 */
int resolver_timeout_ms(struct resolver *r);

/* Lookups started and not yet delivered or released. */
size_t resolver_pending(const struct resolver *r);

/*
 * Blocks, driving the resolver with poll(), until nothing is outstanding
 * or timeout_ms (-1: no limit) passes.  Returns 0, BD_E_LIMIT on timeout
 * or BD_E_IO (errno set) if poll fails.
 */
int resolver_wait(struct resolver *r, int timeout_ms);

/* "ok", "denied", "nxdomain", ... */
const char *resolve_status_str(enum resolve_status s);

#endif

/*
 * tunnel.h - the raw tunnels of routes.json "tunnels" (pconf.h): which
 * CONNECT the proxy relays byte for byte instead of bumping its TLS.
 *
 * architecture.md, "Git gate": the gate's ssh leaves through the sidecar
 * (`bottle-proxy connect` as ProxyCommand), as a CONNECT to exactly the
 * host and port of a tunnel entry, authenticated by a per-gate token the
 * agent never holds.  It is the only un-bumped tunnel the proxy opens.
 *
 * The decision, on the CONNECT's normalised host, its port and its header
 * fields:
 *   - no entry for exactly host:port (no wildcard, no other port):
 *     TUNNEL_NONE, the CONNECT takes the usual route path (bumped, or 403
 *     without a route);
 *   - an entry, and exactly one "Proxy-Authorization: Bearer <token>" with
 *     SHA-256(token) equal to the entry's token_sha256 (compared in
 *     constant time): TUNNEL_OK;
 *   - an entry and a Bearer credential that does not match (or several
 *     Proxy-Authorization fields): TUNNEL_BAD_TOKEN, refused with 403 even
 *     where a route would allow host:port;
 *   - an entry and no Bearer credential: TUNNEL_NO_TOKEN; the route path
 *     decides (a route for host:port bumps it as usual, otherwise 403).
 *
 * Nothing here copies, logs or keeps the token; the digest computed from it
 * is wiped.
 */
#ifndef BOTTLED_TUNNEL_H
#define BOTTLED_TUNNEL_H

#include <stddef.h>

#include "http.h"
#include "pconf.h"

enum tunnel_verdict {
    TUNNEL_NONE,      /* no entry for host:port */
    TUNNEL_NO_TOKEN,  /* an entry; no Bearer credential was sent */
    TUNNEL_BAD_TOKEN, /* an entry; the credential does not match it */
    TUNNEL_OK,        /* an entry and its token */
};

/* The entry for exactly host (normalised) and port, or NULL. */
const struct pconf_tunnel *tunnel_find(const struct pconf *c, const char *host, int port);

/*
 * Decides a CONNECT to host:port whose n header fields are hdrs.  *ret
 * (may be NULL) gets the entry for host:port, or NULL for TUNNEL_NONE.
 */
enum tunnel_verdict tunnel_check(const struct pconf *c, const char *host, int port,
                                 const struct http_header *hdrs, size_t n,
                                 const struct pconf_tunnel **ret);

/* 1 if c still has an entry for host:port with the same token digest as t. */
int tunnel_kept(const struct pconf *c, const char *host, int port,
                const unsigned char token_sha256[32]);

#endif

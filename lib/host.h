/*
 * host.h - host names as the manifest and the sidecar understand them.
 *
 * Route hosts are lower-cased and converted to IDNA A-labels (libidn2,
 * IDNA2008 non-transitional, NFC input), optionally prefixed by "*." for a
 * suffix match.  IP literals (IPv4 dotted in any of the forms inet_aton
 * accepts, IPv6 with or without brackets) are refused, and so is a name
 * whose last label is all digits or "0x" + hex (no TLD is, and it catches
 * "127.1" forms inet_aton does not).  One trailing dot is dropped.  A
 * wildcard is a leading "*." followed by at least two labels ("*.com" is
 * refused).  Labels are LDH, 1..63 bytes, no leading or trailing '-'; an
 * "xn--" label must be a valid A-label.  The result is at most 253 bytes.
 *
 * Matching (host_pattern_match):
 *   - "example.com" matches exactly "example.com";
 *   - "*.example.com" matches "a.example.com" and "a.b.example.com", never
 *     "example.com" itself.
 * host_match_specificity() orders candidates: an exact match beats every
 * suffix, and a longer suffix beats a shorter one.
 */
#ifndef BOTTLED_HOST_H
#define BOTTLED_HOST_H

#include <stddef.h>

enum host_error {
    HOST_OK = 0,
    HOST_E_EMPTY = -1,
    HOST_E_IP_LITERAL = -2,
    HOST_E_BAD_WILDCARD = -3, /* '*' other than a leading "*.", "*." when not allowed,
                                 or fewer than two labels after "*." */
    HOST_E_BAD_LABEL = -4,    /* empty label, > 63 bytes, bad characters, leading/trailing '-' */
    HOST_E_TOO_LONG = -5,     /* > 253 bytes once converted */
    HOST_E_IDNA = -6,         /* libidn2 refused the name */
    HOST_E_NUMERIC_TLD = -7,
};

/* Human text for a host_error, lowercase, e.g. "IP literals are not allowed". */
const char *host_strerror(int err);

/*
 * Normalises a host (optionally "*."-prefixed when allow_wildcard) to its
 * lowercase A-label form.  On success returns HOST_OK and a malloc'd string
 * in *ret; on failure a negative host_error and *ret untouched.
 */
int host_normalize(const char *in, size_t len, int allow_wildcard, char **ret);

/* 1 if s (any length, not NUL-terminated) is an IPv4 or IPv6 literal. */
int host_is_ip_literal(const char *s, size_t len);

/* 1 if normalised pattern matches normalised host. */
int host_pattern_match(const char *pattern, const char *host);

/*
 * Specificity of a matching pattern: larger wins.  Exact patterns score
 * above any wildcard; wildcards score by suffix length.  Only meaningful
 * when host_pattern_match() is true.
 */
size_t host_match_specificity(const char *pattern);

/*
 * Does a secret's host binding cover a route host (manifest.md, Secrets)?
 * binding holds normalised host names, "*.suffix" patterns, or "*" (an
 * explicit opt-out covering every host).  An exact entry covers that host;
 * "*.x" covers sub-domains of x; a route host that is itself "*.x" is
 * covered only by the same "*.x" entry (or "*").  One rule for both the
 * reconciler's secret store and the sidecar's config loader.
 */
int host_binding_covers(const char *const *binding, size_t n, const char *route_host);

#endif

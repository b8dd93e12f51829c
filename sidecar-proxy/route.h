/*
 * route.h - the compiled route table of one config snapshot, and the
 * per-request decisions made with it.
 *
 * Deny by default.  A request is allowed only if
 *   1. route_lookup() finds the route for its host and port, and
 *   2. route_match_request() allows its method, headers and normalised path
 *      (pathnorm.h) on that route.
 *
 * Host lookup (manifest.md, Route.host): an exact host wins, then the
 * longest "*.suffix" whose suffix the host ends with below the apex
 * ("*.example.com" never matches "example.com"); the port must then be one
 * the winning route lists.  A less specific route is never tried when the
 * more specific one refuses the port.  IP literals and port 853 (DNS over
 * TLS) are refused whatever the routes say.
 *
 * Request matching, in order:
 *   - always refused, whatever the route says: git push (a path holding
 *     "git-receive-pack" anywhere, a query parameter "service" whose
 *     form-decoded value holds "receive-pack", a Content-Type or Accept of
 *     application/x-git-receive-pack-{request,result,advertisement}) and
 *     DNS over HTTPS (a Content-Type or Accept of application/dns-message
 *     or application/dns-json, a last path segment "dns-query" at any
 *     depth, the path "/resolve" itself: "resolve" deeper down is a
 *     common API verb, "dns-query" is not; or, on any path, a query
 *     parameter "dns" whose value decodes as base64url to a DNS query
 *     message, RFC 8484's GET form).  Case-insensitive; a trailing
 *     '/' and ";parameters" of the last segment are ignored, as servlet
 *     containers ignore them;
 *   - route.git_fetch allows exactly "GET <repo>/info/refs" with the query
 *     "service=git-upload-pack" and "POST <repo>/git-upload-pack" with the
 *     Content-Type application/x-git-upload-pack-request, <repo> being at
 *     least one segment (so the fetch endpoint is no way around the route's
 *     matches for other bodies);
 *   - a route without matches allows everything else;
 *   - otherwise at least one matches entry must match: its methods list
 *     (if any) holds the method; each of its header rules (if any) matches
 *     some request header of that name (names case-insensitive; values
 *     trimmed of spaces and tabs, compared byte for byte or against an
 *     anchored regex); one of its path rules (if any) matches the
 *     normalised path.
 *
 * Path rules compare against the normalised path, query excluded:
 *   - prefix "/api" matches whole segments: "/api", "/api/", "/api/x",
 *     never "/apix".  A prefix ending in '/' ("/api/v1/") matches itself
 *     and everything below, but not "/api/v1": the one rule is "the path
 *     starts with the prefix, and the prefix ends in '/' or the path ends
 *     or continues with '/' right after it";
 *   - exact is byte equality;
 *   - regex is PCRE2, anchored at both ends, run under a match, depth and
 *     heap limit; hitting a limit denies the request ("regex match limit")
 *     at once, it never counts as a match.
 * Prefix and exact values from the config are themselves normalised when
 * the table is built ("/api/./v1" is "/api/v1"); one that normalisation
 * refuses is a build error.
 *
 * Reasons are static strings naming the rule; they never contain request
 * or config data, so they are safe for the 403 body and the audit line.
 *
 * Ownership: a table borrows its config: conf must outlive it (a table is
 * built for one snapshot and freed with it).  A table is immutable once
 * built and may be used from several threads.
 */
#ifndef BOTTLED_ROUTE_H
#define BOTTLED_ROUTE_H

#include <stddef.h>

#include "buf.h"
#include "diag.h"
#include "pconf.h"

/* Regex limits (pcre2_set_match_limit / depth_limit / heap_limit). */
#define ROUTE_REGEX_MATCH_LIMIT 100000u
#define ROUTE_REGEX_DEPTH_LIMIT 2000u
#define ROUTE_REGEX_HEAP_LIMIT  1024u /* KiB */

struct route_table;

/*
 * Compiles conf's routes: host index, regexes (JIT where available) and
 * normalised path values.  Returns 0 and a new table in *ret, or
 * BD_E_PARSE with one diagnostic per bad route part (invalid regex,
 * unnormalisable path, duplicate host) appended to diags, all of them
 * reported, not just the first.
 */
int route_table_build(const struct pconf *conf, struct diag_list *diags, struct route_table **ret);
void route_table_free(struct route_table *t);

/*
 * The route for host (lower-case A-labels, no trailing dot: the caller
 * normalises) and port, or NULL with *reason set ("IP-literal destinations
 * are denied", "DNS over TLS (port 853) is denied", "no route for host",
 * "port not allowed for host").  reason may be NULL.
 */
const struct pconf_route *route_lookup(const struct route_table *t, const char *host, int port,
                                       const char **reason);

/*
 * Decides one request on route r (from route_lookup() on the same table).
 * method is the request method as sent; hdr_names/hdr_values are the
 * n_hdrs request header fields; norm_path is path_normalize()'s output and
 * query its query slice ({NULL, 0} if none); content_type is the
 * Content-Type value or NULL (Content-Type and Accept headers in the list
 * are looked at as well).
 *
 * Returns 1 (allow) or 0 (deny) and sets *reason either way ("route has no
 * matches", "matches", "git fetch" / "git push (git-receive-pack) is
 * denied", "DNS over HTTPS is denied", "regex match limit", "no matches
 * entry allows the request" ...).  reason may be NULL.
 */
int route_match_request(const struct route_table *t, const struct pconf_route *r,
                        const char *method, const struct slice *hdr_names,
                        const struct slice *hdr_values, size_t n_hdrs, const char *norm_path,
                        struct slice query, const char *content_type, const char **reason);

#endif

/*
 * pathnorm.h - request path normalisation: the one form of a request path
 * that routes are matched against AND that is forwarded upstream.
 *
 * A path that matched a route must be byte for byte the path the upstream
 * receives, otherwise "/api/%2e%2e/admin" matches "/api" here and serves
 * "/admin" there.  So the proxy never forwards the agent's spelling: it
 * forwards the output of path_normalize(), and matches that same output.
 *
 * The input is an origin-form request target: a path starting with '/',
 * optionally followed by '?' and a query.  The output path obeys:
 *
 *   - it starts with '/'; it contains no empty segment ("//") except that
 *     it may end in '/'; it contains no "." or ".." segment;
 *   - percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are
 *     decoded, exactly once: "%41" -> "A", "a%2eb" -> "a.b";
 *   - every other escape is kept encoded, re-spelt with uppercase hex:
 *     reserved characters ("%3F", "%23", "%2B", "%3B", "%40" ...) would
 *     change the meaning of the path if decoded, and "%25" stays "%25" so
 *     that no second decoding, by us or by the upstream, can produce a new
 *     escape ("%252e" stays "%252e", it is never a dot);
 *   - raw bytes outside RFC 3986 pchar (", <, >, `, {, }, |, ^, [, ] and
 *     bytes >= 0x80) are percent-encoded, uppercase hex;
 *   - npm scoped names: a segment "@scope%2fname" (scope and name made of
 *     unreserved characters, name not starting with '.') keeps its single
 *     encoded '/' exactly as sent ("%2f" or "%2F"), so "/@types%2fnode"
 *     reaches the registry unchanged;
 *   - path_normalize(output) == output (idempotent).
 *
 * Dot-segments are resolved as RFC 3986 remove_dot_segments() does ("/a/."
 * -> "/a/", "/a/b/.." -> "/a/"), except that a ".." above the root is
 * refused, not clamped: it only ever comes from a client probing for
 * traversal.
 *
 * Refused (BD_E_INVAL and a short reason):
 *   - a target that does not start with '/' (only origin form here);
 *   - a fragment ('#' raw), raw control characters (0x00-0x1f, 0x7f) or
 *     space anywhere in the target;
 *   - an invalid percent-escape ('%' not followed by two hex digits), and
 *     "%00", anywhere in the target (query included);
 *   - in the path: a backslash, raw or "%5c"; an escaped control character
 *     ("%01".."%1F", "%7F": CR/LF injection into upstreams that decode);
 *     an escaped '/' ("%2f") outside the npm scoped form;
 *   - a segment whose part before ';' is a dot-segment ("..;x", ".;"):
 *     servlet containers strip path parameters before resolving dots, so
 *     "/api/..;/admin" would match "/api" here and serve "/admin" there;
 *   - a segment that decodes to "." or ".." but was spelt with escapes
 *     ("%2e", ".%2E", "%2e%2e"): literal dot-segments are normal and are
 *     resolved, encoded ones only ever come from a client hoping that some
 *     upstream decodes twice (the issue's rule);
 *   - ".." above the root.
 *
 * The query is not decoded and not changed: it is returned as a slice of
 * the input for forwarding as-is (it is still checked for the refusals
 * that apply "anywhere" above).
 */
#ifndef BOTTLED_PATHNORM_H
#define BOTTLED_PATHNORM_H

#include <stddef.h>

#include "buf.h"

/*
 * Normalises the request target (len bytes, not NUL-terminated; a NUL
 * byte inside is refused like any control character) as described above.
 *
 * On success returns 0, replaces the contents of ret_path (an initialised
 * buf whose max caps the output; the output is at most three times the
 * input) with the normalised path, NUL-terminated, and sets ret_query to the
 * bytes after the first '?' ({NULL, 0} when the target has no '?', {p, 0}
 * for a bare '?'; the slice points into target).
 *
 * On failure returns BD_E_INVAL (refused; *ret_reason is a static, short,
 * lowercase string naming the rule, e.g. "encoded '/' in path") or
 * BD_E_TOO_BIG (the output would exceed ret_path->max; reason "path too
 * long"); ret_path and ret_query are left untouched.  ret_reason may be
 * NULL.
 */
int path_normalize(const char *target, size_t len, struct buf *ret_path, struct slice *ret_query,
                   const char **ret_reason);

#endif

/*
 * detect.h - credential detectors shared by the reconciler and the sidecar.
 *
 * The rules live in one data file, lib/detectors.rules, compiled into the
 * binaries at build time (so a running binary never depends on a file
 * beside it).  The reconciler uses them to refuse manifest values that look
 * like credentials; the sidecar scans traffic with the same rules.
 *
 * Rule format (one per line, '#' comments, fields separated by whitespace):
 *
 *     <id> <prefix> <charset> <min> <max> <validator>
 *
 * A match is the literal <prefix> followed by between <min> and <max>
 * characters of <charset> (max may be '*' for "no upper bound"), and the
 * character after the match (if any) is not in the charset.  Charsets:
 * alnum, alnum_ (adds '_'), b64url (alnum, '-', '_'), b64url_pad (b64url
 * plus '='), b64 (alnum, '+', '/', '='), hex, upper_digit (A-Z 0-9),
 * any_token (b64url plus '.'; trailing dots are not part of a match), path
 * (b64url plus '/').  The prefix may contain "[abc]" groups, each meaning one
 * of those characters (at most 64 combinations).  A prefix that is itself
 * a PEM header ("-----BEGIN") with charset "pem" matches a PEM private-key
 * header.
 *
 * <validator> is '-' (none), "crc32_base62" (checksum of GitHub and npm
 * tokens: the run's last 6 characters are the base62 CRC32 of the rest) or
 * "jwt" (header.payload.signature, the header a JSON object naming "alg").
 * A jwt failure means no match.  A checksum failure still matches, with
 * verified = 0: a token-shaped value with a wrong checksum (a typo, a
 * made-up example) is still refused by the reconciler and blocked by the
 * DLP; callers that want fewer false positives may skip unverified ones.
 *
 * Ids are unique, [a-z][a-z0-9_]*.  The run of charset characters is taken
 * greedily, so a run longer than <max> is no match at all.  A prefix that
 * starts with a letter or digit must not continue a word: the byte before
 * it is not [A-Za-z0-9] unless it ends an escape ("%3D", "\n", "\u0022")
 * (details in detect.c).
 *
 * The engine finds every prefix in one Aho-Corasick pass over the input and
 * checks charset, length and validator only where a prefix occurs; the
 * cost is linear in the input whatever the number of rules.
 */
#ifndef BOTTLED_DETECT_H
#define BOTTLED_DETECT_H

#include <stddef.h>

struct detect_match {
    const char *detector; /* rule id, static storage */
    size_t off, len;      /* where in the scanned bytes */
    int verified;         /* the rule has a checksum and it holds */
};

/*
 * Number of rules loaded (for `bottled version` and tests).  The first call
 * into this module parses the embedded rules (thread-safe); a malformed
 * rules file is a build bug and aborts the process with its line numbers.
 */
size_t detect_rule_count(void);

/* Id of rule i (file order), static storage; NULL when i is out of range. */
const char *detect_rule_id(size_t i);

/*
 * Scans s[0..n) (any bytes, not NUL-terminated).  Returns 1 and fills *ret
 * (if non-NULL) with the first (leftmost) match, 0 if nothing matched.  At
 * one offset the rule listed first in the rules file wins.
 */
int detect_scan(const char *s, size_t n, struct detect_match *ret);

/*
 * Every match in s[0..n), for the DLP: the leftmost match (as
 * detect_scan() picks it), then the leftmost one starting at or after its
 * end, and so on; matches never overlap and come in order of offset.
 * Writes the first max of them to out (out may be NULL when max is 0) and
 * returns how many there are in all, which may exceed max.
 */
size_t detect_scan_all(const char *s, size_t n, struct detect_match *out, size_t max);

/*
 * A printable masked form of a value that must not be shown: the first four
 * characters of the match followed by "..." and the length, e.g.
 * "ghp_... (40 chars)".  Never reveals more than four characters, nor more
 * than a quarter of a short value; unprintable bytes show as '?'.  With m
 * NULL (or not inside s[0..n)) the whole of s[0..n) is the value.  malloc'd.
 */
char *detect_mask(const char *s, size_t n, const struct detect_match *m);

#endif

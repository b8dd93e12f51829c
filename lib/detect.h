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
 *     <id> <prefix> <charset> <min> <max>
 *
 * A match is the literal <prefix> followed by between <min> and <max>
 * characters of <charset> (max may be '*' for "no upper bound"), and the
 * character after the match (if any) is not in the charset.  Charsets:
 * alnum, alnum_ (adds '_'), b64url (alnum, '-', '_'), b64 (alnum, '+', '/',
 * '='), hex, upper_digit (A-Z 0-9), any_token (b64url plus '.').
 * The prefix may contain one alternation group "[abc]" meaning one of
 * those characters.  A prefix that is itself a PEM header
 * ("-----BEGIN") with charset "pem" matches a PEM private-key header.
 *
 * Ids are unique, [a-z][a-z0-9_]*.  The run of charset characters is taken
 * greedily, so a run longer than <max> is no match at all.  A prefix that
 * starts with a letter or digit must not continue a word: the byte before
 * it is not [A-Za-z0-9] unless it ends an escape ("%3D", "\n", "\u0022")
 * (details in detect.c).
 *
 * This is the plain matcher; the sidecar issue replaces the engine behind
 * detect_scan() with a faster multi-pattern one fed from the same file.
 */
#ifndef BOTTLED_DETECT_H
#define BOTTLED_DETECT_H

#include <stddef.h>

struct detect_match {
    const char *detector; /* rule id, static storage */
    size_t off, len;      /* where in the scanned bytes */
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
 * A printable masked form of a value that must not be shown: the first four
 * characters of the match followed by "..." and the length, e.g.
 * "ghp_... (40 chars)".  Never reveals more than four characters, nor more
 * than a quarter of a short value; unprintable bytes show as '?'.  With m
 * NULL (or not inside s[0..n)) the whole of s[0..n) is the value.  malloc'd.
 */
char *detect_mask(const char *s, size_t n, const struct detect_match *m);

#endif

/*
 * secretscan.h - find known secret values (the sidecar's known_secrets) in
 * traffic, however they are encoded, and redact them.
 *
 * A secret_set is built from (name, value) pairs: the credentials the
 * sidecar holds.  Each value is indexed in these encodings:
 *   raw          the bytes themselves;
 *   base64       standard alphabet, at each of the three alignments the
 *                value can have inside a longer base64 text (preceded by 0,
 *                1 or 2 unknown bytes): only the characters that depend on
 *                the value alone are indexed, so "user:" + value encoded as
 *                HTTP basic auth is found as well as value alone;
 *   base64url    the same with '-' and '_';
 *   hex          lower and upper case;
 *   percent      every byte as %XX (upper and lower case hex digits), and
 *                the usual form where only bytes outside RFC 3986's
 *                unreserved set (ALPHA DIGIT - . _ ~) are escaped.
 * An encoding identical to another one of the same value is indexed once.
 * Every encoding of every value goes into one index of 4-byte grams, and a
 * scan looks up every S-th position of the input (S = the shortest
 * encoding less 3; secretscan.c says why no occurrence is missed): one
 * sampled pass whatever the number of secrets.
 *
 * Values shorter than SECRET_MIN_LEN bytes are not indexed (secret_set_add
 * says so with BD_E_LIMIT and the set stays usable): short strings occur
 * by chance, and a base64 window of a 7-byte value is only 8 characters.
 * Such a secret must be caught by other means (route policy) or made
 * longer.
 *
 * Ownership: the set copies names and values (wiping value copies when it
 * is freed).  Results carry the secret's NAME and the encoding, never the
 * value; names point into the set and live as long as it.  A compiled set
 * is immutable and may be scanned from several threads at once.
 */
#ifndef BOTTLED_SECRETSCAN_H
#define BOTTLED_SECRETSCAN_H

#include <stddef.h>

#include "buf.h"

#define SECRET_MIN_LEN      8
#define SECRET_MAX_LEN      4096 /* a longer value is refused (BD_E_TOO_BIG) */
#define SECRET_MAX_NAME_LEN 128
#define SECRET_MAX_COUNT    1024

enum secret_encoding {
    SECRET_RAW,
    SECRET_BASE64,
    SECRET_BASE64URL,
    SECRET_HEX_LOWER,
    SECRET_HEX_UPPER,
    SECRET_PERCENT,          /* every byte escaped, upper-case hex digits */
    SECRET_PERCENT_LOWER,    /* every byte escaped, lower-case hex digits */
    SECRET_PERCENT_RESERVED, /* only bytes outside the unreserved set */
    SECRET_ENC_COUNT
};

/* "raw", "base64", "base64url", "hex", "HEX", "percent", ...; never NULL. */
const char *secret_encoding_name(enum secret_encoding e);

struct secret_match {
    const char *name; /* the secret's name, owned by the set */
    enum secret_encoding enc;
    size_t off, len; /* where in the scanned bytes */
};

struct secret_set;

struct secret_set *secret_set_new(void);

/*
 * Adds a secret.  Returns 0; BD_E_LIMIT when value is shorter than
 * SECRET_MIN_LEN (not indexed, nothing else changes); BD_E_TOO_BIG when it
 * is longer than SECRET_MAX_LEN or the set already has SECRET_MAX_COUNT
 * secrets; BD_E_INVAL for a name that is empty, longer than
 * SECRET_MAX_NAME_LEN or not printable ASCII, or after secret_set_compile().
 */
int secret_set_add(struct secret_set *set, const char *name, const void *value, size_t len);

/* Builds the automaton; call once after the last add.  Returns 0. */
int secret_set_compile(struct secret_set *set);

/* Number of secrets indexed (short ones excluded). */
size_t secret_set_count(const struct secret_set *set);

/*
 * Finds occurrences in s[0..n) (any bytes): leftmost first, the longest
 * at one offset, never overlapping.  Writes the first max to out (NULL
 * allowed when max is 0) and returns how many there are in all.  A set
 * that is empty or not compiled finds nothing.
 */
size_t secret_set_scan(const struct secret_set *set, const char *s, size_t n,
                       struct secret_match *out, size_t max);

/*
 * Appends s[0..n) to out with every occurrence of every encoding replaced
 * by "[REDACTED:<name>]" (overlapping or touching occurrences become one;
 * the name is the leftmost one's).  A base64 occurrence also takes the
 * character before and after it when those carry some bits of the value.
 * Sets *ret_count (if non-NULL) to the number of replacements.  Returns 0,
 * or BD_E_TOO_BIG when out's maximum is reached (out then holds a prefix of
 * the redacted text, never a raw secret byte beyond what was redacted).
 */
int secret_set_redact(const struct secret_set *set, const char *s, size_t n, struct buf *out,
                      size_t *ret_count);

/*
 * secret_set_redact(), but each span is replaced by as many bytes as it
 * had: "[REDACTED:<name>]" padded with '*', or "[REDACTED]" and '*'s when
 * the name does not fit, or only '*'s.  For bodies whose length was sent
 * before they were scanned (a streamed response with a Content-Length).
 */
int secret_set_redact_same_length(const struct secret_set *set, const char *s, size_t n,
                                  struct buf *out, size_t *ret_count);

/*
 * 1 and *ret_start if one of the spans secret_set_redact(s, n) would
 * replace starts before cut and ends after it (overlapping occurrences
 * merged, base64 partial characters included); else 0.  A streaming
 * redactor cuts its text only where this says 0, so no secret is split
 * between two pieces.
 */
int secret_set_span_across(const struct secret_set *set, const char *s, size_t n, size_t cut,
                           size_t *ret_start);

/* For tests: the number of patterns; pattern i (if there is one) in *ret_p, *ret_len. */
size_t secret_set_pattern(const struct secret_set *set, size_t i, const unsigned char **ret_p,
                          size_t *ret_len);

/* Frees the set, wiping its copies of the values.  NULL is allowed. */
void secret_set_free(struct secret_set *set);

#endif

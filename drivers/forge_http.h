/*
 * forge_http.h - the HTTPS transport the forge backends share, and its
 * pure parts (exposed for tests/unit/test_forge.c): Link headers,
 * Retry-After, the retry decision, same-origin checks, error bodies.
 *
 * Invariants:
 *   - HTTPS only, certificates and host names verified, redirects never
 *     followed (a redirect would carry the token elsewhere);
 *   - every URL requested has the API root's origin (scheme, host, port):
 *     a next-page link pointing elsewhere is refused, never fetched;
 *   - the token lives in one header line and in the handle (for scrubbing
 *     messages) and is wiped when the handle is freed;
 *   - response bodies and the headers we keep have caps;
 *   - each POST/DELETE sent (retries too) passes fault_point() and is
 *     counted in forge->mutations, before it is sent.
 */
#ifndef BOTTLED_FORGE_HTTP_H
#define BOTTLED_FORGE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "forge.h"

#define FORGE_RESP_MAX ((size_t)8 << 20) /* one response body */
#define FORGE_MSG_MAX  240               /* a forge's message, as quoted */

/* ---------------------------------------------------------------- transport */

struct forge_http;

/* Creates the transport of f (f->ops, f->api_root set); errmsg of f on failure. */
int forge_http_new(struct forge *f, const char *token, const char *ca_file);
/* Wipes the token and frees.  NULL is a no-op. */
void forge_http_free(struct forge_http *h);

/* The final answer to one request, after retries. */
struct forge_resp {
    long status;
    struct buf body;
    char *link;        /* Link header lines joined by ", "; NULL if none */
    char *total_count; /* X-Total-Count; NULL if absent */
    char *next_page;   /* X-Next-Page; "" when sent empty, NULL if absent */
    int attempts;      /* requests sent for this answer */
    long refused_wait; /* > 0: the forge asked for this many seconds, more
                          than max_wait_s, so it was not retried */
    bool rate_limited; /* the answer says the rate limit is exhausted */
};
void forge_resp_release(struct forge_resp *r);

/*
 * Sends method url (absolute, with the API root's origin) with an optional
 * JSON body and returns the final answer, whatever its status, after the
 * retries of struct forge_opts.  Messages start with f->what.  Errors
 * (message set, *ret untouched): BD_E_UNAVAIL the forge did not answer (or
 * a known rate limit runs for longer than max_wait_s), BD_E_TOO_BIG the
 * body exceeded FORGE_RESP_MAX, BD_E_PROTO url has another origin.
 */
int forge_http_request(struct forge *f, const char *method, const char *url, const char *json_body,
                       struct forge_resp *ret);

/*
 * Turns a non-success answer into a message and a code (forge.h):
 * 401 BD_E_PERM "token rejected", 403 BD_E_PERM (BD_E_UNAVAIL when it is
 * a rate limit), 404 BD_E_NOTFOUND, 400/422 BD_E_EXISTS when the forge's
 * message says "already", else BD_E_INVAL, 429/5xx BD_E_UNAVAIL, 3xx and
 * the rest BD_E_PROTO.
 */
int forge_http_fail(struct forge *f, const struct forge_resp *r);

/* Replaces every occurrence of the token in msg (and a tail of msg that is
 * the start of the token, as a cut might leave) with "***", in place. */
void forge_http_scrub(const struct forge_http *h, char *msg, size_t size);

/* The URL of api_root + path (path starts with '/'); allocated. */
char *forge_url(const struct forge *f, const char *path);

/* ---------------------------------------------------------------- pure parts */

/*
 * The target of the rel="next" link of a Link header value (RFC 8288:
 * comma-separated `<uri>; param=value` entries, rel possibly a quoted
 * space-separated list, names case-insensitive).  Returns 0 and an
 * allocated *ret_url, BD_E_NOTFOUND when there is no next link, BD_E_PARSE
 * when the value is malformed.
 */
int forge_parse_link_next(const char *link, char **ret_url);

/*
 * Retry-After (RFC 9110 10.2.3): delta-seconds, or an HTTP-date in any of
 * its three forms (IMF-fixdate, RFC 850, asctime), taken relative to now
 * (a date in the past is 0).  Returns 0 and *ret_s, or BD_E_PARSE.
 */
int forge_parse_retry_after(const char *s, time_t now, long *ret_s);

/* The rate-limit headers of one answer, as sent (NULL if absent). */
struct forge_rl {
    const char *retry_after;
    const char *remaining; /* X-RateLimit-Remaining (GitHub) or RateLimit-Remaining (GitLab) */
    const char *reset;     /* X-RateLimit-Reset or RateLimit-Reset: epoch seconds */
};

/* 1 if the headers say the rate limit is used up (remaining is 0). */
bool forge_rl_exhausted(const struct forge_rl *rl);

/*
 * Should an answer be retried, and after how long?  Retried: 429, 500,
 * 502, 503, 504, and a 403 that is a rate limit (remaining 0, or a
 * Retry-After: GitHub's secondary limit).  The wait is Retry-After if
 * given, else the rate-limit reset when remaining is 0, else backoff_ms
 * doubled per earlier attempt (attempt counts from 0).  Returns 1 and
 * *ret_ms, or 0 (not retryable).
 */
int forge_retry_wait(long status, const struct forge_rl *rl, time_t now, int attempt,
                     long backoff_ms, long *ret_ms);

/* 1 if the two absolute URLs have the same scheme, host and port. */
bool forge_same_origin(const char *a, const char *b);

/*
 * A forge's error message from a body: "message" when a string (all
 * three), GitLab's validation object {"message":{"field":["msg"]}}
 * flattened to "field msg", GitHub's "errors" array appended, OAuth's
 * "error"/"error_description"; else the first line of a non-JSON body.
 * Non-printable bytes become '?'; cut to max bytes; "" if none.
 */
void forge_error_message(const char *body, size_t len, char *out, size_t max);

#endif

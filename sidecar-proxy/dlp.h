/*
 * dlp.h - the sidecar's body scanning, apart from its I/O (proxy.c).
 *
 *   - the known_secrets set of a config snapshot (every secret the sidecar
 *     holds, in the encodings of secretscan.h);
 *   - Content-Encoding: which codings can be decoded (gzip, deflate), a
 *     one-shot inflate of held request bodies within a size and a ratio
 *     cap, a streaming inflater for responses (ratio-capped), and the
 *     Accept-Encoding sent upstream limited to those codings;
 *   - which response content types are text the inbound scan reads;
 *   - the inbound stream scanner: decoded response text goes in as it
 *     arrives, and comes out in pieces that are safe to emit: redacted
 *     (secret_set_redact), with the naive injection scan run over each
 *     piece plus an overlap window of what was emitted before it.  A piece
 *     ends where no secret encoding can straddle it: `window` bytes are held
 *     back (the longest encoded secret), or, for text/event-stream, at the
 *     last event boundary, so events are never delayed.
 *
 * Nothing here logs or does I/O; no result carries a secret value.
 */
#ifndef BOTTLED_DLP_H
#define BOTTLED_DLP_H

#include <stddef.h>

#include "buf.h"
#include "injection.h"
#include "pconf.h"
#include "secretscan.h"

#define DLP_E_SIZE    (-2001) /* decoded bytes over the size cap */
#define DLP_E_RATIO   (-2002) /* decoded/encoded over the ratio cap */
#define DLP_E_CORRUPT (-2003) /* not a valid gzip/deflate stream */

/*
 * The snapshot's secret set: every secret of conf that can be indexed (a
 * value shorter than SECRET_MIN_LEN cannot; *ret_short counts those, for a
 * log line).  *ret_window: bytes a stream scanner must hold back so that no
 * encoded occurrence straddles two emitted pieces.  Never NULL (an empty
 * set finds nothing).
 */
struct secret_set *dlp_secrets_build(const struct pconf *conf, size_t *ret_window,
                                     size_t *ret_short);

enum dlp_coding { DLP_CODING_IDENTITY, DLP_CODING_GZIP, DLP_CODING_DEFLATE, DLP_CODING_OTHER };

/* A Content-Encoding value: "gzip"/"x-gzip", "deflate", "identity" or "" (any case); else OTHER. */
enum dlp_coding dlp_coding_of(struct slice value);

/*
 * Inflates in[0..n) (gzip, or deflate: zlib format, raw deflate accepted)
 * into out (appended).  Returns 0, DLP_E_SIZE when the output would pass
 * max_out, DLP_E_RATIO when it would pass ratio times the input (plus 64
 * KiB of slack for tiny inputs), DLP_E_CORRUPT for a bad or truncated
 * stream.
 */
int dlp_inflate_all(enum dlp_coding coding, const char *in, size_t n, size_t max_out,
                    unsigned ratio, struct buf *out);

/* Streaming inflate with the same ratio rule over the whole stream. */
struct dlp_inflater;
struct dlp_inflater *dlp_inflater_new(enum dlp_coding coding, unsigned ratio);
/* Appends what in[0..n) decodes to.  0, DLP_E_RATIO or DLP_E_CORRUPT. */
int dlp_inflater_feed(struct dlp_inflater *z, const char *in, size_t n, struct buf *out);
void dlp_inflater_free(struct dlp_inflater *z);

/*
 * The Accept-Encoding to send upstream for the agent's value v: its
 * gzip, x-gzip, deflate and identity members (parameters kept), or
 * "identity" when none is left.  malloc'd.
 */
char *dlp_accept_encoding(struct slice v);

/* 1 if a Content-Type is text the inbound scan reads; *sse = 1 for text/event-stream. */
int dlp_textual(struct slice ctype, int *sse);

#define DLP_OVERLAP 512 /* bytes of emitted text rescanned with the next piece */

struct dlp_stream {
    const struct secret_set *secrets; /* NULL: no redaction */
    size_t window;
    int scan_injection;
    int sse;
    int same_length;        /* redact with secret_set_redact_same_length */
    struct buf pend;        /* decoded, not yet emitted */
    char tail[DLP_OVERLAP]; /* the end of what was emitted (unredacted) */
    size_t tail_len;
    size_t tail_open_back; /* the tail begins inside an HTML comment opened
                              this many bytes before it (0: outside one) */
    struct buf scan;       /* scratch: tail + piece */
};

void dlp_stream_init(struct dlp_stream *s, const struct secret_set *secrets, size_t window,
                     int scan_injection, int sse);
void dlp_stream_release(struct dlp_stream *s);
/* Appends decoded text.  0 or BD_E_TOO_BIG (the pending cap, 16 MiB). */
int dlp_stream_push(struct dlp_stream *s, const char *p, size_t n);

/*
 * Takes the next piece that may be emitted (everything with final = 1),
 * appends it to out redacted, and adds the number of redactions to
 * *n_redacted.  *hit is set to the first injection detector the piece
 * (with the overlap before it) shows, or NULL.  Returns 0 or BD_E_TOO_BIG.
 */
int dlp_stream_take(struct dlp_stream *s, int final, struct buf *out, const char **hit,
                    size_t *n_redacted);

/*
 * The first injection detector in s[0..n), or NULL.  (A convenience over
 * injection_scan for held bodies.)
 */
const char *dlp_injection(const char *s, size_t n);

#endif

/*
 * http.h - HTTP/1.1 message heads and chunked bodies for the egress proxy.
 *
 * The proxy sits between an agent that may be hostile and upstreams that
 * trust whatever framing reaches them, so this parser is strict where
 * RFC 9112 lets a recipient be lenient: any message whose framing two
 * implementations could read differently is refused, each with its own
 * error (see enum http_error), and never "repaired".
 *
 * Head parsers (http_parse_request, http_parse_response):
 *   - zero-copy: every slice in the result points into the caller's buffer,
 *     which must stay alive and unchanged while the result is used;
 *   - resumable by re-parsing: call again with the same bytes plus what
 *     arrived since.  The parse is a pure left-to-right function of the
 *     bytes, so a prefix of a message gives either 0 (need more) or the
 *     very result the whole message gives; an error is reported as soon as
 *     the offending byte is seen, not when the head ends.  Each call costs
 *     O(head), and the head is capped by http_limits.max_head;
 *   - returns > 0: the head is complete and that many bytes (up to and
 *     including the blank line) were consumed; body bytes follow;
 *     0: need more bytes; < 0: an enum http_error.  *ret is written only
 *     when the result is > 0.
 *
 * Strictness, for requests and responses alike: CRLF line endings only
 * (bare LF and bare CR refused); no obs-fold; no whitespace between a
 * header name and its colon; names are tokens; values carry no control
 * bytes but HTAB; one Content-Length at most (duplicates refused even when
 * equal), digits only, at most 2^53; Transfer-Encoding only as a single
 * header whose value is exactly "chunked" (any case), never together with
 * Content-Length, never in HTTP/1.0.  Requests additionally: exactly one
 * SP between the request-line parts; method a token of at most
 * max_method bytes; target visible ASCII without '#' of at most
 * max_target bytes; HTTP/1.0 or HTTP/1.1 only; exactly one Host in
 * HTTP/1.1 (at most one in 1.0); no userinfo in any authority; CONNECT
 * takes authority-form with a port and no body; Expect other than
 * 100-continue refused (417).  Empty lines before the request line are
 * skipped (RFC 9112 2.2) and count towards max_head.
 *
 * Chunked decoder (struct http_chunked): a byte-at-a-time state machine
 * that can be fed any split of the body; data spans are handed out
 * without copying.  Refuses non-hex sizes, sizes over 2^60 (or more than
 * 16 digits), chunk extensions over max_chunk_ext bytes, anything but
 * CRLF after chunk data, and trailer sections over max_trailer bytes.
 * Trailer fields are checked and discarded: they are never handed out.
 *
 * Nothing here allocates except http_chunked_feed_buf and
 * http_request_serialize, which append to a capped struct buf.
 */
#ifndef BOTTLED_HTTP_H
#define BOTTLED_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Negative results of every function here; 0 is success. */
enum http_error {
    HTTP_OK = 0,
    HTTP_E_REQUEST_LINE = -1,        /* malformed request line (extra spaces, missing parts) */
    HTTP_E_METHOD = -2,              /* method is not a token */
    HTTP_E_METHOD_TOO_LONG = -3,     /* method longer than max_method */
    HTTP_E_TARGET = -4,              /* request-target has bad bytes or the wrong form */
    HTTP_E_TARGET_TOO_LONG = -5,     /* request-target longer than max_target (414) */
    HTTP_E_VERSION = -6,             /* not HTTP/1.0 or HTTP/1.1 (505) */
    HTTP_E_BARE_LF = -7,             /* LF not preceded by CR */
    HTTP_E_BARE_CR = -8,             /* CR not followed by LF */
    HTTP_E_OBS_FOLD = -9,            /* header line starting with SP or HTAB */
    HTTP_E_SPACE_BEFORE_COLON = -10, /* whitespace between header name and ':' */
    HTTP_E_HEADER_NAME = -11,        /* empty or non-token header name, or no ':' */
    HTTP_E_HEADER_VALUE = -12,       /* control byte (other than HTAB) in a header value */
    HTTP_E_TOO_MANY_HEADERS = -13,   /* more than max_headers (431) */
    HTTP_E_HEAD_TOO_BIG = -14,       /* head longer than max_head (431) */
    HTTP_E_DUP_CONTENT_LENGTH = -15, /* more than one Content-Length */
    HTTP_E_CONTENT_LENGTH = -16,     /* Content-Length not 1*DIGIT <= 2^53 */
    HTTP_E_TRANSFER_ENCODING = -17,  /* Transfer-Encoding other than one "chunked" (501) */
    HTTP_E_TE_AND_CL = -18,          /* Transfer-Encoding and Content-Length together */
    HTTP_E_TE_HTTP10 = -19,          /* Transfer-Encoding in an HTTP/1.0 message */
    HTTP_E_NO_HOST = -20,            /* HTTP/1.1 request without Host */
    HTTP_E_DUP_HOST = -21,           /* more than one Host */
    HTTP_E_HOST = -22,               /* malformed host or port in Host or target */
    HTTP_E_USERINFO = -23,           /* user@ in an authority */
    HTTP_E_SCHEME = -24,             /* absolute-form scheme other than http/https */
    HTTP_E_CONNECT_BODY = -25,       /* CONNECT with Content-Length > 0 or chunked */
    HTTP_E_EXPECT = -26,             /* Expect other than 100-continue (417) */
    HTTP_E_STATUS_LINE = -27,        /* malformed response status line */
    HTTP_E_CHUNK_SIZE = -28,         /* chunk size missing or not hex */
    HTTP_E_CHUNK_OVERFLOW = -29,     /* chunk size over 2^60 or > 16 digits */
    HTTP_E_CHUNK_EXT = -30,          /* chunk extension malformed or over max_chunk_ext */
    HTTP_E_CHUNK_CRLF = -31,         /* chunk data not followed by CRLF */
    HTTP_E_TRAILER = -32,            /* malformed trailer field */
    HTTP_E_TRAILER_TOO_BIG = -33,    /* trailer section over max_trailer */
    HTTP_E_TOO_BIG = -34,            /* an output buffer hit its cap */
};

/* Short lowercase reason for an http_error, e.g. for a 400 body; never NULL. */
const char *http_strerror(int err);

/*
 * The status a server should answer a request-parse error with: 400, or
 * 414, 417, 431, 501, 505 where those say more.  Response-parse errors are
 * the proxy's 502, which the caller knows without asking.
 */
int http_error_status(int err);

/* Every size a peer controls.  Zeros are replaced by the defaults. */
struct http_limits {
    size_t max_head;      /* request/status line + headers + blank line; default 32 KiB */
    size_t max_headers;   /* header count; default 100, at most HTTP_MAX_HEADERS */
    size_t max_method;    /* default 32 */
    size_t max_target;    /* default 8 KiB */
    size_t max_chunk_ext; /* bytes of extensions on one chunk-size line; default 256 */
    size_t max_trailer;   /* bytes of the trailer section; default 8 KiB */
};

#define HTTP_MAX_HEADERS 128

/* Fills in the defaults. */
void http_limits_default(struct http_limits *lim);

struct http_header {
    struct slice name;  /* as sent; compare case-insensitively */
    struct slice value; /* leading and trailing SP/HTAB trimmed */
};

enum http_target_form {
    HTTP_FORM_ORIGIN,    /* "/path?query" */
    HTTP_FORM_ABSOLUTE,  /* "http://host:port/path?query" */
    HTTP_FORM_AUTHORITY, /* "host:port", CONNECT only */
    HTTP_FORM_ASTERISK,  /* "*", OPTIONS only */
};

/* How the body of a message is delimited. */
enum http_body {
    HTTP_BODY_NONE,    /* no body */
    HTTP_BODY_LENGTH,  /* content_length bytes */
    HTTP_BODY_CHUNKED, /* chunked coding: feed a struct http_chunked */
    HTTP_BODY_CLOSE,   /* responses only: until the connection closes */
};

struct http_request {
    size_t head_len; /* bytes consumed, same as the return value */
    struct slice method;
    struct slice target; /* raw, as sent */
    enum http_target_form form;
    /* Absolute-form: scheme as sent, authority host ("[v6]" keeps its
     * brackets), path + query ("" when the target had none).  Authority-form
     * (CONNECT): host.  port is explicit or the scheme's default; 0 for
     * origin and asterisk forms. */
    struct slice scheme, host, path;
    uint16_t port;
    int version_minor; /* 0 or 1 */
    /* The Host header: whole value and its parts; has_host is 0 when absent. */
    int has_host;
    struct slice host_header, host_header_name;
    uint16_t host_header_port; /* 0 when the Host value carries no port */
    int has_content_length;
    uint64_t content_length;
    int chunked;
    int conn_close, conn_keep_alive, conn_upgrade; /* Connection tokens seen */
    int expect_continue;                           /* HTTP/1.1 "Expect: 100-continue" */
    int upgrade;                                   /* an Upgrade header is present */
    size_t n_headers;
    struct http_header headers[HTTP_MAX_HEADERS];
};

struct http_response {
    size_t head_len;
    int version_minor;
    int status; /* 100..999 */
    struct slice reason;
    int has_content_length;
    uint64_t content_length;
    int chunked;
    int conn_close, conn_keep_alive, conn_upgrade;
    int upgrade;
    size_t n_headers;
    struct http_header headers[HTTP_MAX_HEADERS];
};

/* lim may be NULL for the defaults.  See the top of this file. */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       struct http_request *ret);
int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                        struct http_response *ret);

/* Framing of a parsed request's body: NONE, LENGTH or CHUNKED. */
enum http_body http_request_body(const struct http_request *req);

/*
 * Framing of a parsed response's body, which depends on the request:
 * responses to HEAD, 1xx, 204 and 304 have none, a 2xx to CONNECT has none
 * (the tunnel starts), otherwise chunked, Content-Length or until close.
 */
enum http_body http_response_body(const struct http_response *resp, struct slice request_method);

/* 1 if the connection may carry another message after this one. */
int http_request_keep_alive(const struct http_request *req);
int http_response_keep_alive(const struct http_response *resp);

/* 1 for a 1xx other than 101: another response head follows on the wire. */
int http_response_is_interim(const struct http_response *resp);

/*
 * Splits an authority "host[:port]" (no userinfo) into host (a "[v6]"
 * literal keeps its brackets) and port (0 when absent).  Host bytes are
 * letters, digits, '-', '.', '_'; a v6 literal hex digits, ':' and '.'.
 * The port is 1..65535 without sign or spaces.  Returns 0,
 * HTTP_E_USERINFO or HTTP_E_HOST; outputs written only on success.
 */
int http_split_authority(struct slice auth, struct slice *ret_host, uint16_t *ret_port);

/* First header named name (case-insensitive), or NULL. */
const struct http_header *http_find_header(const struct http_header *h, size_t n, const char *name);

/*
 * Chunked body decoder.  Diagram:
 *
 *   SIZE --hex--> SIZE --';'/BWS--> EXT --CR--> SIZE_LF --LF--+
 *     |                               ^                        |
 *     +--------------CR---------------|-----> SIZE_LF          |
 *                                                              v
 *          size > 0: DATA --n bytes--> DATA_CR --CR--> DATA_LF --LF--> SIZE
 *          size = 0: TRAILER --CR--> END_LF --LF--> DONE
 *                    TRAILER --name--> TRAILER_NAME --':'--> TRAILER_VALUE
 *                                          --CR--> TRAILER_LF --LF--> TRAILER
 *
 * Any unexpected byte moves to ERROR, which remembers the error code.
 */
enum http_chunked_state {
    HTTP_CHUNKED_SIZE,          /* reading hex digits of a chunk size */
    HTTP_CHUNKED_SIZE_BWS,      /* SP/HTAB after the size; only ';' or more BWS may follow */
    HTTP_CHUNKED_EXT,           /* inside chunk extensions, up to CR */
    HTTP_CHUNKED_SIZE_LF,       /* CR ended the size line; LF must follow */
    HTTP_CHUNKED_DATA,          /* `remaining` data bytes to hand out */
    HTTP_CHUNKED_DATA_CR,       /* chunk data done; CR must follow */
    HTTP_CHUNKED_DATA_LF,       /* LF must follow */
    HTTP_CHUNKED_TRAILER,       /* start of a trailer line, or CR of the final CRLF */
    HTTP_CHUNKED_TRAILER_NAME,  /* inside a trailer field name */
    HTTP_CHUNKED_TRAILER_VALUE, /* inside a trailer field value, up to CR */
    HTTP_CHUNKED_TRAILER_LF,    /* CR ended a trailer line; LF must follow */
    HTTP_CHUNKED_END_LF,        /* CR of the final CRLF seen; LF must follow */
    HTTP_CHUNKED_DONE,          /* body complete; nothing more is consumed */
    HTTP_CHUNKED_ERROR,         /* refused; `error` says why, every feed returns it */
};

struct http_chunked {
    enum http_chunked_state state;
    int error;          /* in state ERROR */
    uint64_t remaining; /* SIZE: size so far; DATA: bytes left in the chunk */
    size_t digits;      /* hex digits of the current size */
    size_t ext_len;     /* bytes of extensions on the current line */
    size_t trailer_len; /* bytes of the trailer section so far */
    uint64_t body_len;  /* decoded bytes handed out so far */
    size_t max_chunk_ext, max_trailer;
};

/* lim may be NULL for the defaults. */
void http_chunked_init(struct http_chunked *c, const struct http_limits *lim);

/*
 * Feeds in[0..len).  Each decoded data span is passed to on_data (may be
 * NULL to validate only) as it is found, pointing into in; a negative
 * return from on_data stops decoding and is returned as is (the decoder
 * then stays in ERROR).  Returns 1 when the body is complete (bytes after
 * it are not consumed: they are the next message), 0 when every byte was
 * consumed and more are needed, or a negative http_error.  *ret_consumed
 * is written unless an error is returned.
 */
int http_chunked_feed(struct http_chunked *c, const char *in, size_t len, size_t *ret_consumed,
                      int (*on_data)(void *arg, const char *p, size_t n), void *arg);

/* Same, appending decoded bytes to out; a full out gives HTTP_E_TOO_BIG. */
int http_chunked_feed_buf(struct http_chunked *c, const char *in, size_t len, size_t *ret_consumed,
                          struct buf *out);

/* What to change when forwarding a request head upstream. */
struct http_forward {
    struct slice target;           /* the origin-form target to send */
    const struct slice *drop;      /* more header names to drop (any case) */
    size_t n_drop;                 /*   ...how many */
    const struct http_header *add; /* headers appended after the kept ones */
    size_t n_add;                  /*   ...how many */
};

/*
 * Appends "METHOD target HTTP/1.1", the request's headers minus the
 * hop-by-hop ones (Connection and every header it names, Keep-Alive,
 * Proxy-Connection, Proxy-Authorization, TE, Trailer, Upgrade,
 * Transfer-Encoding: the caller frames the body and adds what it needs)
 * and minus fw->drop, then fw->add, then the blank line, to out.  Host
 * and Content-Length are never dropped because Connection names them (only
 * through fw->drop), so a client cannot unframe or unroute the forwarded
 * request that way.  Added
 * names must be tokens and values free of control bytes but HTAB, and the
 * target visible ASCII: HTTP_E_HEADER_NAME, HTTP_E_HEADER_VALUE,
 * HTTP_E_TARGET otherwise.  HTTP_E_TOO_BIG when out is full.  out is left
 * as it was on any error.
 */
int http_request_serialize(const struct http_request *req, const struct http_forward *fw,
                           struct buf *out);

#endif

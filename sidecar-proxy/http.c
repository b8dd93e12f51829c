/*
 * http.c - strict HTTP/1.1 head parsers, chunked decoder and head
 * serializer for the egress proxy (see http.h for the contract).
 *
 * Design invariants:
 *   - the head parsers keep no state between calls: a cursor walks the
 *     buffer left to right, and every decision depends only on bytes
 *     already walked.  Running out of bytes is "need more" (NEED below),
 *     except past max_head, which is "head too big".  This is what makes a
 *     prefix parse agree with the whole-message parse, which the unit tests
 *     and fuzz_http_head check on every split;
 *   - the cursor never reads at or past min(len, max_head), so nothing
 *     beyond the caller's bytes is touched and the head cap holds exactly;
 *   - framing headers are checked as each header line completes, so a
 *     smuggling attempt is refused at the line that makes it one.
 */
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "http.h"
#include "urlpath.h"

#define NEED 1 /* internal: ran out of bytes */

#define CL_MAX        ((uint64_t)1 << 53)
#define CHUNK_MAX     ((uint64_t)1 << 60)
#define CHUNK_DIGITS  16
#define MAX_HEAD_HARD ((size_t)1 << 20)

static const char *const errors[] = {
    [0] = "ok",
    [-HTTP_E_REQUEST_LINE] = "malformed request line",
    [-HTTP_E_METHOD] = "invalid method",
    [-HTTP_E_METHOD_TOO_LONG] = "method too long",
    [-HTTP_E_TARGET] = "invalid request target",
    [-HTTP_E_TARGET_TOO_LONG] = "request target too long",
    [-HTTP_E_VERSION] = "unsupported http version",
    [-HTTP_E_BARE_LF] = "bare lf line ending",
    [-HTTP_E_BARE_CR] = "bare cr",
    [-HTTP_E_OBS_FOLD] = "obsolete header line folding",
    [-HTTP_E_SPACE_BEFORE_COLON] = "whitespace before header colon",
    [-HTTP_E_HEADER_NAME] = "invalid header name",
    [-HTTP_E_HEADER_VALUE] = "control character in header value",
    [-HTTP_E_TOO_MANY_HEADERS] = "too many header fields",
    [-HTTP_E_HEAD_TOO_BIG] = "header section too large",
    [-HTTP_E_DUP_CONTENT_LENGTH] = "duplicate content-length",
    [-HTTP_E_CONTENT_LENGTH] = "invalid content-length",
    [-HTTP_E_TRANSFER_ENCODING] = "unsupported transfer-encoding",
    [-HTTP_E_TE_AND_CL] = "both transfer-encoding and content-length",
    [-HTTP_E_TE_HTTP10] = "transfer-encoding in http/1.0",
    [-HTTP_E_NO_HOST] = "missing host header",
    [-HTTP_E_DUP_HOST] = "duplicate host header",
    [-HTTP_E_HOST] = "invalid host",
    [-HTTP_E_USERINFO] = "userinfo in authority",
    [-HTTP_E_SCHEME] = "unsupported scheme",
    [-HTTP_E_CONNECT_BODY] = "connect request with a body",
    [-HTTP_E_EXPECT] = "unsupported expectation",
    [-HTTP_E_STATUS_LINE] = "malformed status line",
    [-HTTP_E_CHUNK_SIZE] = "invalid chunk size",
    [-HTTP_E_CHUNK_OVERFLOW] = "chunk size too large",
    [-HTTP_E_CHUNK_EXT] = "invalid or oversized chunk extension",
    [-HTTP_E_CHUNK_CRLF] = "missing crlf after chunk data",
    [-HTTP_E_TRAILER] = "invalid trailer field",
    [-HTTP_E_TRAILER_TOO_BIG] = "trailer section too large",
    [-HTTP_E_TOO_BIG] = "output too large",
};

const char *http_strerror(int err)
{
    if (err > 0 || (size_t)-err >= sizeof(errors) / sizeof(errors[0]) || !errors[-err])
        return "unknown http error";
    return errors[-err];
}

int http_error_status(int err)
{
    switch (err) {
    case HTTP_E_TARGET_TOO_LONG:
        return 414;
    case HTTP_E_EXPECT:
        return 417;
    case HTTP_E_TOO_MANY_HEADERS:
    case HTTP_E_HEAD_TOO_BIG:
        return 431;
    case HTTP_E_TRANSFER_ENCODING:
        return 501;
    case HTTP_E_VERSION:
        return 505;
    default:
        return 400;
    }
}

void http_limits_default(struct http_limits *lim)
{
    lim->max_head = 32 << 10;
    lim->max_headers = 100;
    lim->max_method = 32;
    lim->max_target = 8 << 10;
    lim->max_chunk_ext = 256;
    lim->max_trailer = 8 << 10;
}

/* lim with zeros filled in and values clamped to what the structs hold. */
static struct http_limits effective_limits(const struct http_limits *lim)
{
    struct http_limits d, r;

    http_limits_default(&d);
    if (!lim)
        return d;
    r = *lim;
    if (!r.max_head)
        r.max_head = d.max_head;
    if (r.max_head > MAX_HEAD_HARD)
        r.max_head = MAX_HEAD_HARD;
    if (!r.max_headers)
        r.max_headers = d.max_headers;
    if (r.max_headers > HTTP_MAX_HEADERS)
        r.max_headers = HTTP_MAX_HEADERS;
    if (!r.max_method)
        r.max_method = d.max_method;
    if (!r.max_target)
        r.max_target = d.max_target;
    if (!r.max_chunk_ext)
        r.max_chunk_ext = d.max_chunk_ext;
    if (!r.max_trailer)
        r.max_trailer = d.max_trailer;
    return r;
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
        return 1;
    default:
        return 0;
    }
}

/* A control byte that may not appear in a field value (HTAB may). */
static int is_bad_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int slice_ieq_slice(struct slice a, struct slice b)
{
    if (a.len != b.len)
        return 0;
    for (size_t i = 0; i < a.len; i++)
        if (lower((unsigned char)a.ptr[i]) != lower((unsigned char)b.ptr[i]))
            return 0;
    return 1;
}

static struct slice trim_ows(struct slice s)
{
    while (s.len && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
        s.ptr++;
        s.len--;
    }
    while (s.len && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/*
 * Calls fn for each element of a comma-separated list (RFC 9110 5.6.1),
 * OWS trimmed, empty elements skipped.  Stops at the first nonzero return.
 */
static int each_list_elem(struct slice v, int (*fn)(void *arg, struct slice elem), void *arg)
{
    size_t start = 0;
    for (size_t i = 0; i <= v.len; i++) {
        if (i == v.len || v.ptr[i] == ',') {
            struct slice e = trim_ows((struct slice){v.ptr + start, i - start});
            if (e.len) {
                int r = fn(arg, e);
                if (r)
                    return r;
            }
            start = i + 1;
        }
    }
    return 0;
}

const struct http_header *http_find_header(const struct http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (slice_ieq_cstr(h[i].name, name))
            return &h[i];
    return NULL;
}

static int parse_port(struct slice s, uint16_t *ret)
{
    uint32_t v = 0;
    if (s.len == 0 || s.len > 5)
        return HTTP_E_HOST;
    for (size_t i = 0; i < s.len; i++) {
        if (!is_digit((unsigned char)s.ptr[i]))
            return HTTP_E_HOST;
        v = v * 10 + (uint32_t)(s.ptr[i] - '0');
    }
    if (v == 0 || v > 65535)
        return HTTP_E_HOST;
    *ret = (uint16_t)v;
    return 0;
}

int http_split_authority(struct slice auth, struct slice *ret_host, uint16_t *ret_port)
{
    struct slice host;
    size_t i;
    uint16_t port = 0;

    if (memchr(auth.ptr, '@', auth.len))
        return HTTP_E_USERINFO;
    if (auth.len && auth.ptr[0] == '[') {
        for (i = 1; i < auth.len && auth.ptr[i] != ']'; i++) {
            unsigned char c = (unsigned char)auth.ptr[i];
            if (hex_digit(c) < 0 && c != ':' && c != '.')
                return HTTP_E_HOST;
        }
        if (i == auth.len || i < 3) /* no ']' or "[]" / "[x]" */
            return HTTP_E_HOST;
        host = (struct slice){auth.ptr, i + 1};
        i++;
    } else {
        for (i = 0; i < auth.len && auth.ptr[i] != ':'; i++) {
            unsigned char c = (unsigned char)auth.ptr[i];
            if (!(is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'z') || c == '-' || c == '.' ||
                  c == '_'))
                return HTTP_E_HOST;
        }
        if (i == 0)
            return HTTP_E_HOST;
        host = (struct slice){auth.ptr, i};
    }
    if (i < auth.len) {
        if (auth.ptr[i] != ':')
            return HTTP_E_HOST;
        if (parse_port((struct slice){auth.ptr + i + 1, auth.len - i - 1}, &port) < 0)
            return HTTP_E_HOST;
    }
    *ret_host = host;
    *ret_port = port;
    return 0;
}

/* ---- head parsing -------------------------------------------------------- */

/* Walks buf[0..end); end = min(len, max_head). */
struct cursor {
    const char *buf;
    size_t pos, end, len;
};

/* Result of running out of bytes at c->end. */
static int out_of_bytes(const struct cursor *c)
{
    return c->len > c->end ? HTTP_E_HEAD_TOO_BIG : NEED;
}

/* Consumes CRLF at the cursor; the CR is known to be there. */
static int eat_crlf(struct cursor *c)
{
    if (c->pos + 1 >= c->end)
        return out_of_bytes(c);
    if (c->buf[c->pos + 1] != '\n')
        return HTTP_E_BARE_CR;
    c->pos += 2;
    return 0;
}

/* Matches "HTTP/1.0" or "HTTP/1.1"; bad_sp is the error for a stray SP. */
static int parse_version(struct cursor *c, int bad_sp, int bad, int *ret_minor)
{
    static const char want[] = "HTTP/1.";
    for (size_t i = 0; i < 8; i++) {
        if (c->pos + i >= c->end)
            return out_of_bytes(c);
        char ch = c->buf[c->pos + i];
        if (i < 7 ? ch == want[i] : (ch == '0' || ch == '1'))
            continue;
        return ch == ' ' ? bad_sp : bad;
    }
    *ret_minor = c->buf[c->pos + 7] - '0';
    c->pos += 8;
    return 0;
}

/* Framing facts gathered from header lines, shared by both directions. */
struct framing {
    int version_minor;
    int is_request;
    int has_cl, te_seen, chunked;
    uint64_t cl;
    int conn_close, conn_keep_alive, conn_upgrade;
    int upgrade;
    int expect_continue;
    int has_host;
    struct slice host, host_name;
    uint16_t host_port;
};

static int parse_content_length(struct slice v, uint64_t *ret)
{
    uint64_t n = 0;
    if (v.len == 0)
        return HTTP_E_CONTENT_LENGTH;
    for (size_t i = 0; i < v.len; i++) {
        if (!is_digit((unsigned char)v.ptr[i]))
            return HTTP_E_CONTENT_LENGTH;
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
        if (n > CL_MAX)
            return HTTP_E_CONTENT_LENGTH;
    }
    *ret = n;
    return 0;
}

static int connection_token(void *arg, struct slice e)
{
    struct framing *f = arg;
    if (slice_ieq_cstr(e, "close"))
        f->conn_close = 1;
    else if (slice_ieq_cstr(e, "keep-alive"))
        f->conn_keep_alive = 1;
    else if (slice_ieq_cstr(e, "upgrade"))
        f->conn_upgrade = 1;
    return 0;
}

/* Checks one complete header line against what came before. */
static int on_header(struct framing *f, const struct http_header *h)
{
    int r;

    if (slice_ieq_cstr(h->name, "content-length")) {
        if (f->has_cl)
            return HTTP_E_DUP_CONTENT_LENGTH;
        if ((r = parse_content_length(h->value, &f->cl)) < 0)
            return r;
        if (f->te_seen)
            return HTTP_E_TE_AND_CL;
        f->has_cl = 1;
    } else if (slice_ieq_cstr(h->name, "transfer-encoding")) {
        if (f->version_minor == 0)
            return HTTP_E_TE_HTTP10;
        if (f->te_seen || !slice_ieq_cstr(h->value, "chunked"))
            return HTTP_E_TRANSFER_ENCODING;
        if (f->has_cl)
            return HTTP_E_TE_AND_CL;
        f->te_seen = f->chunked = 1;
    } else if (slice_ieq_cstr(h->name, "connection")) {
        each_list_elem(h->value, connection_token, f);
    } else if (slice_ieq_cstr(h->name, "upgrade")) {
        f->upgrade = 1;
    } else if (f->is_request && slice_ieq_cstr(h->name, "host")) {
        if (f->has_host)
            return HTTP_E_DUP_HOST;
        if ((r = http_split_authority(h->value, &f->host_name, &f->host_port)) < 0)
            return r;
        f->host = h->value;
        f->has_host = 1;
    } else if (f->is_request && slice_ieq_cstr(h->name, "expect")) {
        /* RFC 9110 10.1.1: an HTTP/1.0 expectation is ignored. */
        if (f->version_minor == 1) {
            if (!slice_ieq_cstr(h->value, "100-continue"))
                return HTTP_E_EXPECT;
            f->expect_continue = 1;
        }
    }
    return 0;
}

/*
 * Parses header lines up to and including the blank line.  Fills
 * headers[0..*n) as it goes and checks framing on each.
 */
static int parse_headers(struct cursor *c, size_t max_headers, struct http_header *headers,
                         size_t *n, struct framing *f)
{
    for (;;) {
        if (c->pos >= c->end)
            return out_of_bytes(c);
        unsigned char ch = (unsigned char)c->buf[c->pos];
        if (ch == '\r')
            return eat_crlf(c);
        if (ch == '\n')
            return HTTP_E_BARE_LF;
        if (ch == ' ' || ch == '\t')
            return HTTP_E_OBS_FOLD;
        if (*n >= max_headers)
            return HTTP_E_TOO_MANY_HEADERS;

        size_t name = c->pos;
        while (c->pos < c->end && is_tchar((unsigned char)c->buf[c->pos]))
            c->pos++;
        if (c->pos >= c->end)
            return out_of_bytes(c);
        ch = (unsigned char)c->buf[c->pos];
        if (ch == ' ' || ch == '\t')
            return c->pos > name ? HTTP_E_SPACE_BEFORE_COLON : HTTP_E_HEADER_NAME;
        if (ch == '\n')
            return HTTP_E_BARE_LF;
        if (ch != ':' || c->pos == name)
            return HTTP_E_HEADER_NAME;
        size_t name_end = c->pos++;

        while (c->pos < c->end && (c->buf[c->pos] == ' ' || c->buf[c->pos] == '\t'))
            c->pos++;
        size_t value = c->pos, value_end = c->pos;
        for (;;) {
            if (c->pos >= c->end)
                return out_of_bytes(c);
            ch = (unsigned char)c->buf[c->pos];
            if (ch == '\r')
                break;
            if (ch == '\n')
                return HTTP_E_BARE_LF;
            if (is_bad_ctl(ch))
                return HTTP_E_HEADER_VALUE;
            c->pos++;
            if (ch != ' ' && ch != '\t')
                value_end = c->pos;
        }
        int r = eat_crlf(c);
        if (r)
            return r;

        struct http_header *h = &headers[(*n)++];
        h->name = (struct slice){c->buf + name, name_end - name};
        h->value = (struct slice){c->buf + value, value_end - value};
        if ((r = on_header(f, h)) < 0)
            return r;
    }
}

static int parse_target(struct http_request *req)
{
    struct slice t = req->target;
    int r;

    req->scheme = req->host = req->path = (struct slice){t.ptr, 0};
    req->port = 0;
    if (slice_eq_cstr(req->method, "CONNECT")) {
        req->form = HTTP_FORM_AUTHORITY;
        if ((r = http_split_authority(t, &req->host, &req->port)) < 0)
            return r;
        return req->port ? 0 : HTTP_E_TARGET;
    }
    if (t.ptr[0] == '/') {
        req->form = HTTP_FORM_ORIGIN;
        req->path = t;
        return 0;
    }
    if (t.len == 1 && t.ptr[0] == '*') {
        req->form = HTTP_FORM_ASTERISK;
        return slice_eq_cstr(req->method, "OPTIONS") ? 0 : HTTP_E_TARGET;
    }

    req->form = HTTP_FORM_ABSOLUTE;
    size_t i = 0;
    while (i < t.len &&
           ((lower((unsigned char)t.ptr[i]) >= 'a' && lower((unsigned char)t.ptr[i]) <= 'z') ||
            (i > 0 && (is_digit((unsigned char)t.ptr[i]) || t.ptr[i] == '+' || t.ptr[i] == '-' ||
                       t.ptr[i] == '.'))))
        i++;
    if (i == 0 || t.len - i < 3 || memcmp(t.ptr + i, "://", 3) != 0)
        return HTTP_E_TARGET;
    req->scheme = (struct slice){t.ptr, i};
    uint16_t default_port;
    if (slice_ieq_cstr(req->scheme, "http"))
        default_port = 80;
    else if (slice_ieq_cstr(req->scheme, "https"))
        default_port = 443;
    else
        return HTTP_E_SCHEME;

    size_t a = i + 3, e = a;
    while (e < t.len && t.ptr[e] != '/' && t.ptr[e] != '?')
        e++;
    if ((r = http_split_authority((struct slice){t.ptr + a, e - a}, &req->host, &req->port)) < 0)
        return r;
    if (!req->port)
        req->port = default_port;
    req->path = (struct slice){t.ptr + e, t.len - e};
    return 0;
}

static int parse_request_line(struct cursor *c, const struct http_limits *lim,
                              struct http_request *req)
{
    int r;

    /* RFC 9112 2.2: empty lines before the request line are ignored. */
    for (;;) {
        if (c->pos >= c->end)
            return out_of_bytes(c);
        if (c->buf[c->pos] == '\n')
            return HTTP_E_BARE_LF;
        if (c->buf[c->pos] != '\r')
            break;
        if ((r = eat_crlf(c)))
            return r;
    }

    size_t m = c->pos;
    for (;;) {
        if (c->pos >= c->end)
            return out_of_bytes(c);
        unsigned char ch = (unsigned char)c->buf[c->pos];
        if (ch == ' ')
            break;
        if (!is_tchar(ch))
            return ch == '\r' || ch == '\n' || ch == '\t' ? HTTP_E_REQUEST_LINE : HTTP_E_METHOD;
        if (++c->pos - m > lim->max_method)
            return HTTP_E_METHOD_TOO_LONG;
    }
    if (c->pos == m)
        return HTTP_E_REQUEST_LINE;
    req->method = (struct slice){c->buf + m, c->pos - m};
    c->pos++;

    size_t t = c->pos;
    for (;;) {
        if (c->pos >= c->end)
            return out_of_bytes(c);
        unsigned char ch = (unsigned char)c->buf[c->pos];
        if (ch == ' ')
            break;
        if (ch == '\r' || ch == '\n')
            return HTTP_E_REQUEST_LINE;
        if (ch <= 0x20 || ch >= 0x7f || ch == '#')
            return HTTP_E_TARGET;
        if (++c->pos - t > lim->max_target)
            return HTTP_E_TARGET_TOO_LONG;
    }
    if (c->pos == t)
        return HTTP_E_REQUEST_LINE;
    req->target = (struct slice){c->buf + t, c->pos - t};
    c->pos++;

    if ((r = parse_version(c, HTTP_E_REQUEST_LINE, HTTP_E_VERSION, &req->version_minor)))
        return r;
    if (c->pos >= c->end)
        return out_of_bytes(c);
    switch (c->buf[c->pos]) {
    case '\r':
        if ((r = eat_crlf(c)))
            return r;
        break;
    case '\n':
        return HTTP_E_BARE_LF;
    case ' ':
        return HTTP_E_REQUEST_LINE;
    default:
        return HTTP_E_VERSION;
    }
    return parse_target(req);
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *limits,
                       struct http_request *ret)
{
    struct http_limits lim = effective_limits(limits);
    struct cursor c = {buf, 0, len < lim.max_head ? len : lim.max_head, len};
    struct framing f = {.is_request = 1};
    struct http_request req;
    int r;

    req.n_headers = 0;
    if ((r = parse_request_line(&c, &lim, &req)))
        goto out;
    f.version_minor = req.version_minor;
    if ((r = parse_headers(&c, lim.max_headers, req.headers, &req.n_headers, &f)))
        goto out;
    if (f.version_minor == 1 && !f.has_host) {
        r = HTTP_E_NO_HOST;
        goto out;
    }
    if (req.form == HTTP_FORM_AUTHORITY && (f.chunked || (f.has_cl && f.cl > 0))) {
        r = HTTP_E_CONNECT_BODY;
        goto out;
    }

    req.head_len = c.pos;
    req.has_host = f.has_host;
    req.host_header = f.host;
    req.host_header_name = f.host_name;
    req.host_header_port = f.host_port;
    req.has_content_length = f.has_cl;
    req.content_length = f.has_cl ? f.cl : 0;
    req.chunked = f.chunked;
    req.conn_close = f.conn_close;
    req.conn_keep_alive = f.conn_keep_alive;
    req.conn_upgrade = f.conn_upgrade;
    req.expect_continue = f.expect_continue;
    req.upgrade = f.upgrade;
    memcpy(ret, &req, offsetof(struct http_request, headers));
    memcpy(ret->headers, req.headers, req.n_headers * sizeof(req.headers[0]));
    r = (int)c.pos;
out:
    return r == NEED ? 0 : r;
}

static int parse_status_line(struct cursor *c, struct http_response *resp)
{
    int r;

    if ((r = parse_version(c, HTTP_E_STATUS_LINE, HTTP_E_STATUS_LINE, &resp->version_minor)))
        return r;
    int status = 0;
    for (size_t i = 0; i < 4; i++) {
        if (c->pos >= c->end)
            return out_of_bytes(c);
        unsigned char ch = (unsigned char)c->buf[c->pos];
        if (i == 0 ? ch != ' ' : !is_digit(ch))
            return HTTP_E_STATUS_LINE;
        if (i > 0)
            status = status * 10 + (ch - '0');
        c->pos++;
    }
    if (status < 100 || status > 599)
        return HTTP_E_STATUS_LINE;
    resp->status = status;

    if (c->pos >= c->end)
        return out_of_bytes(c);
    /* The SP before an empty reason is often left out; accept that. */
    if (c->buf[c->pos] == ' ')
        c->pos++;
    else if (c->buf[c->pos] != '\r')
        return c->buf[c->pos] == '\n' ? HTTP_E_BARE_LF : HTTP_E_STATUS_LINE;
    size_t reason = c->pos;
    for (;;) {
        if (c->pos >= c->end)
            return out_of_bytes(c);
        unsigned char ch = (unsigned char)c->buf[c->pos];
        if (ch == '\r')
            break;
        if (ch == '\n')
            return HTTP_E_BARE_LF;
        if (is_bad_ctl(ch))
            return HTTP_E_STATUS_LINE;
        c->pos++;
    }
    resp->reason = (struct slice){c->buf + reason, c->pos - reason};
    return eat_crlf(c);
}

int http_parse_response(const char *buf, size_t len, const struct http_limits *limits,
                        struct http_response *ret)
{
    struct http_limits lim = effective_limits(limits);
    struct cursor c = {buf, 0, len < lim.max_head ? len : lim.max_head, len};
    struct framing f = {0};
    struct http_response resp;
    int r;

    resp.n_headers = 0;
    if ((r = parse_status_line(&c, &resp)))
        goto out;
    f.version_minor = resp.version_minor;
    if ((r = parse_headers(&c, lim.max_headers, resp.headers, &resp.n_headers, &f)))
        goto out;

    resp.head_len = c.pos;
    resp.has_content_length = f.has_cl;
    resp.content_length = f.has_cl ? f.cl : 0;
    resp.chunked = f.chunked;
    resp.conn_close = f.conn_close;
    resp.conn_keep_alive = f.conn_keep_alive;
    resp.conn_upgrade = f.conn_upgrade;
    resp.upgrade = f.upgrade;
    memcpy(ret, &resp, offsetof(struct http_response, headers));
    memcpy(ret->headers, resp.headers, resp.n_headers * sizeof(resp.headers[0]));
    r = (int)c.pos;
out:
    return r == NEED ? 0 : r;
}

enum http_body http_request_body(const struct http_request *req)
{
    if (req->chunked)
        return HTTP_BODY_CHUNKED;
    if (req->has_content_length && req->content_length > 0)
        return HTTP_BODY_LENGTH;
    return HTTP_BODY_NONE;
}

enum http_body http_response_body(const struct http_response *resp, struct slice request_method)
{
    if (slice_eq_cstr(request_method, "HEAD") || resp->status < 200 || resp->status == 204 ||
        resp->status == 304)
        return HTTP_BODY_NONE;
    if (slice_eq_cstr(request_method, "CONNECT") && resp->status < 300)
        return HTTP_BODY_NONE;
    if (resp->chunked)
        return HTTP_BODY_CHUNKED;
    if (resp->has_content_length)
        return resp->content_length ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
    return HTTP_BODY_CLOSE;
}

int http_request_keep_alive(const struct http_request *req)
{
    if (req->conn_close)
        return 0;
    return req->version_minor == 1 || req->conn_keep_alive;
}

int http_response_keep_alive(const struct http_response *resp)
{
    if (resp->conn_close)
        return 0;
    if (!resp->chunked && !resp->has_content_length && resp->status >= 200 && resp->status != 204 &&
        resp->status != 304)
        return 0; /* close-delimited, unless the request was HEAD: the caller knows */
    return resp->version_minor == 1 || resp->conn_keep_alive;
}

int http_response_is_interim(const struct http_response *resp)
{
    return resp->status >= 100 && resp->status < 200 && resp->status != 101;
}

/* ---- chunked decoding ---------------------------------------------------- */

static const char *const chunked_state_names[] = {
    [HTTP_CHUNKED_SIZE] = "size",
    [HTTP_CHUNKED_SIZE_BWS] = "size-bws",
    [HTTP_CHUNKED_EXT] = "ext",
    [HTTP_CHUNKED_SIZE_LF] = "size-lf",
    [HTTP_CHUNKED_DATA] = "data",
    [HTTP_CHUNKED_DATA_CR] = "data-cr",
    [HTTP_CHUNKED_DATA_LF] = "data-lf",
    [HTTP_CHUNKED_TRAILER] = "trailer",
    [HTTP_CHUNKED_TRAILER_NAME] = "trailer-name",
    [HTTP_CHUNKED_TRAILER_VALUE] = "trailer-value",
    [HTTP_CHUNKED_TRAILER_LF] = "trailer-lf",
    [HTTP_CHUNKED_END_LF] = "end-lf",
    [HTTP_CHUNKED_DONE] = "done",
    [HTTP_CHUNKED_ERROR] = "error",
};

/* The one place the state changes; HTTP_TRACE_CHUNKED shows each move. */
static void chunked_set_state(struct http_chunked *c, enum http_chunked_state s)
{
#ifdef HTTP_TRACE_CHUNKED
    fprintf(stderr, "chunked: %s -> %s\n", chunked_state_names[c->state], chunked_state_names[s]);
#else
    (void)chunked_state_names;
#endif
    c->state = s;
}

static int chunked_fail(struct http_chunked *c, int err)
{
    c->error = err;
    chunked_set_state(c, HTTP_CHUNKED_ERROR);
    return err;
}

void http_chunked_init(struct http_chunked *c, const struct http_limits *limits)
{
    struct http_limits lim = effective_limits(limits);

    memset(c, 0, sizeof(*c));
    c->state = HTTP_CHUNKED_SIZE;
    c->max_chunk_ext = lim.max_chunk_ext;
    c->max_trailer = lim.max_trailer;
}

/* Counts one byte of the trailer section against its cap. */
static int trailer_byte(struct http_chunked *c)
{
    return ++c->trailer_len > c->max_trailer ? chunked_fail(c, HTTP_E_TRAILER_TOO_BIG) : 0;
}

int http_chunked_feed(struct http_chunked *c, const char *in, size_t len, size_t *ret_consumed,
                      int (*on_data)(void *arg, const char *p, size_t n), void *arg)
{
    size_t i = 0;
    int r;

    while (i < len) {
        unsigned char ch = (unsigned char)in[i];
        switch (c->state) {
        case HTTP_CHUNKED_SIZE: {
            int v = hex_digit(ch);
            if (v >= 0) {
                if (++c->digits > CHUNK_DIGITS || c->remaining > (CHUNK_MAX >> 4))
                    return chunked_fail(c, HTTP_E_CHUNK_OVERFLOW);
                c->remaining = (c->remaining << 4) | (uint64_t)v;
                if (c->remaining > CHUNK_MAX)
                    return chunked_fail(c, HTTP_E_CHUNK_OVERFLOW);
                break;
            }
            if (c->digits == 0)
                return chunked_fail(c, HTTP_E_CHUNK_SIZE);
            if (ch == ';') {
                c->ext_len = 1;
                chunked_set_state(c, HTTP_CHUNKED_EXT);
            } else if (ch == ' ' || ch == '\t') {
                c->ext_len = 1;
                chunked_set_state(c, HTTP_CHUNKED_SIZE_BWS);
            } else if (ch == '\r') {
                chunked_set_state(c, HTTP_CHUNKED_SIZE_LF);
            } else {
                return chunked_fail(c, ch == '\n' ? HTTP_E_BARE_LF : HTTP_E_CHUNK_SIZE);
            }
            break;
        }
        case HTTP_CHUNKED_SIZE_BWS:
            if (++c->ext_len > c->max_chunk_ext)
                return chunked_fail(c, HTTP_E_CHUNK_EXT);
            if (ch == ';')
                chunked_set_state(c, HTTP_CHUNKED_EXT);
            else if (ch != ' ' && ch != '\t')
                return chunked_fail(c, HTTP_E_CHUNK_EXT);
            break;
        case HTTP_CHUNKED_EXT:
            if (ch == '\r') {
                chunked_set_state(c, HTTP_CHUNKED_SIZE_LF);
                break;
            }
            if (ch == '\n')
                return chunked_fail(c, HTTP_E_BARE_LF);
            if (is_bad_ctl(ch) || ++c->ext_len > c->max_chunk_ext)
                return chunked_fail(c, HTTP_E_CHUNK_EXT);
            break;
        case HTTP_CHUNKED_SIZE_LF:
            if (ch != '\n')
                return chunked_fail(c, HTTP_E_BARE_CR);
            if (c->remaining == 0) {
                c->trailer_len = 0;
                chunked_set_state(c, HTTP_CHUNKED_TRAILER);
            } else {
                chunked_set_state(c, HTTP_CHUNKED_DATA);
            }
            break;
        case HTTP_CHUNKED_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            if (on_data && (r = on_data(arg, in + i, n)) < 0)
                return chunked_fail(c, r);
            c->remaining -= n;
            c->body_len += n;
            i += n;
            if (c->remaining == 0)
                chunked_set_state(c, HTTP_CHUNKED_DATA_CR);
            continue;
        }
        case HTTP_CHUNKED_DATA_CR:
            if (ch != '\r')
                return chunked_fail(c, HTTP_E_CHUNK_CRLF);
            chunked_set_state(c, HTTP_CHUNKED_DATA_LF);
            break;
        case HTTP_CHUNKED_DATA_LF:
            if (ch != '\n')
                return chunked_fail(c, HTTP_E_CHUNK_CRLF);
            c->digits = 0;
            c->ext_len = 0;
            chunked_set_state(c, HTTP_CHUNKED_SIZE);
            break;
        case HTTP_CHUNKED_TRAILER:
            if ((r = trailer_byte(c)) < 0)
                return r;
            if (ch == '\r')
                chunked_set_state(c, HTTP_CHUNKED_END_LF);
            else if (ch == '\n')
                return chunked_fail(c, HTTP_E_BARE_LF);
            else if (is_tchar(ch))
                chunked_set_state(c, HTTP_CHUNKED_TRAILER_NAME);
            else
                return chunked_fail(c, HTTP_E_TRAILER);
            break;
        case HTTP_CHUNKED_TRAILER_NAME:
            if ((r = trailer_byte(c)) < 0)
                return r;
            if (ch == ':')
                chunked_set_state(c, HTTP_CHUNKED_TRAILER_VALUE);
            else if (!is_tchar(ch))
                return chunked_fail(c, HTTP_E_TRAILER);
            break;
        case HTTP_CHUNKED_TRAILER_VALUE:
            if ((r = trailer_byte(c)) < 0)
                return r;
            if (ch == '\r')
                chunked_set_state(c, HTTP_CHUNKED_TRAILER_LF);
            else if (ch == '\n')
                return chunked_fail(c, HTTP_E_BARE_LF);
            else if (is_bad_ctl(ch))
                return chunked_fail(c, HTTP_E_TRAILER);
            break;
        case HTTP_CHUNKED_TRAILER_LF:
            if ((r = trailer_byte(c)) < 0)
                return r;
            if (ch != '\n')
                return chunked_fail(c, HTTP_E_BARE_CR);
            chunked_set_state(c, HTTP_CHUNKED_TRAILER);
            break;
        case HTTP_CHUNKED_END_LF:
            if ((r = trailer_byte(c)) < 0)
                return r;
            if (ch != '\n')
                return chunked_fail(c, HTTP_E_BARE_CR);
            chunked_set_state(c, HTTP_CHUNKED_DONE);
            *ret_consumed = i + 1;
            return 1;
        case HTTP_CHUNKED_DONE:
            *ret_consumed = i;
            return 1;
        case HTTP_CHUNKED_ERROR:
            return c->error;
        }
        i++;
    }
    if (c->state == HTTP_CHUNKED_ERROR)
        return c->error;
    *ret_consumed = i;
    return c->state == HTTP_CHUNKED_DONE ? 1 : 0;
}

static int append_to_buf(void *arg, const char *p, size_t n)
{
    return buf_append(arg, p, n) < 0 ? HTTP_E_TOO_BIG : 0;
}

int http_chunked_feed_buf(struct http_chunked *c, const char *in, size_t len, size_t *ret_consumed,
                          struct buf *out)
{
    return http_chunked_feed(c, in, len, ret_consumed, out ? append_to_buf : NULL, out);
}

/* ---- forwarding ---------------------------------------------------------- */

static const char *const hop_by_hop[] = {
    "connection", "keep-alive", "proxy-connection", "proxy-authorization",
    "te",         "trailer",    "upgrade",          "transfer-encoding",
};

struct named {
    struct slice name;
};

static int names_token(void *arg, struct slice e)
{
    return slice_ieq_slice(((struct named *)arg)->name, e);
}

static int must_drop(const struct http_request *req, const struct http_forward *fw,
                     struct slice name)
{
    for (size_t i = 0; i < sizeof(hop_by_hop) / sizeof(hop_by_hop[0]); i++)
        if (slice_ieq_cstr(name, hop_by_hop[i]))
            return 1;
    for (size_t i = 0; i < fw->n_drop; i++)
        if (slice_ieq_slice(name, fw->drop[i]))
            return 1;
    /* "Connection: content-length" must not unframe the body upstream, nor
     * "Connection: host" unroute it. */
    if (slice_ieq_cstr(name, "host") || slice_ieq_cstr(name, "content-length"))
        return 0;
    struct named n = {name};
    for (size_t i = 0; i < req->n_headers; i++)
        if (slice_ieq_cstr(req->headers[i].name, "connection") &&
            each_list_elem(req->headers[i].value, names_token, &n))
            return 1;
    return 0;
}

static int valid_added(const struct http_header *h)
{
    if (h->name.len == 0)
        return HTTP_E_HEADER_NAME;
    for (size_t i = 0; i < h->name.len; i++)
        if (!is_tchar((unsigned char)h->name.ptr[i]))
            return HTTP_E_HEADER_NAME;
    for (size_t i = 0; i < h->value.len; i++)
        if (is_bad_ctl((unsigned char)h->value.ptr[i]))
            return HTTP_E_HEADER_VALUE;
    return 0;
}

static int put_header(struct buf *out, struct slice name, struct slice value)
{
    if (buf_append(out, name.ptr, name.len) < 0 || buf_append(out, ": ", 2) < 0 ||
        buf_append(out, value.ptr, value.len) < 0 || buf_append(out, "\r\n", 2) < 0)
        return HTTP_E_TOO_BIG;
    return 0;
}

int http_request_serialize(const struct http_request *req, const struct http_forward *fw,
                           struct buf *out)
{
    size_t orig = out->len;
    int r;

    if (fw->target.len == 0) {
        r = HTTP_E_TARGET;
        goto out;
    }
    for (size_t i = 0; i < fw->target.len; i++) {
        unsigned char ch = (unsigned char)fw->target.ptr[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            r = HTTP_E_TARGET;
            goto out;
        }
    }
    for (size_t i = 0; i < fw->n_add; i++)
        if ((r = valid_added(&fw->add[i])) < 0)
            goto out;

    r = HTTP_E_TOO_BIG;
    if (buf_append(out, req->method.ptr, req->method.len) < 0 || buf_putc(out, ' ') < 0 ||
        buf_append(out, fw->target.ptr, fw->target.len) < 0 ||
        buf_append(out, " HTTP/1.1\r\n", 11) < 0)
        goto out;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (!must_drop(req, fw, h->name) && put_header(out, h->name, h->value) < 0)
            goto out;
    }
    for (size_t i = 0; i < fw->n_add; i++)
        if (put_header(out, fw->add[i].name, fw->add[i].value) < 0)
            goto out;
    if (buf_append(out, "\r\n", 2) < 0)
        goto out;
    r = 0;
out:
    if (r < 0 && out->len != orig) {
        out->len = orig;
        out->data[orig] = '\0';
    }
    return r;
}

/*
 * fuzz_http_head.c - libFuzzer target for the request and response head
 * parsers and the request serializer.
 *
 * The first byte picks the limits (defaults or tiny ones, so the caps are
 * reached) and a split point; the rest is the message, parsed as a request
 * and as a response.  Invariants:
 *   - the result is consumed bytes in 1..len, 0, or a known error;
 *   - every slice lies inside the consumed head;
 *   - the parse is a function of the prefix: the head alone gives the same
 *     result, one byte less gives "need more", and any shorter prefix gives
 *     "need more" or the very same error;
 *   - a parsed request serialized for forwarding parses again, with the
 *     same method and no hop-by-hop header left.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz_target.h"
#include "http.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

static void check_slice(struct slice s, const char *buf, size_t head)
{
    CHECK(s.ptr >= buf && s.len <= head && (size_t)(s.ptr - buf) <= head - s.len);
}

static int same_slice(struct slice a, struct slice b)
{
    return a.ptr == b.ptr && a.len == b.len;
}

static void check_headers(const struct http_header *h, size_t n, const char *buf, size_t head)
{
    CHECK(n <= HTTP_MAX_HEADERS);
    for (size_t i = 0; i < n; i++) {
        check_slice(h[i].name, buf, head);
        check_slice(h[i].value, buf, head);
        CHECK(h[i].name.len > 0);
    }
}

static int same_headers(const struct http_header *a, const struct http_header *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!same_slice(a[i].name, b[i].name) || !same_slice(a[i].value, b[i].value))
            return 0;
    return 1;
}

static int same_request(const struct http_request *a, const struct http_request *b)
{
    return a->head_len == b->head_len && same_slice(a->method, b->method) &&
           same_slice(a->target, b->target) && a->form == b->form && same_slice(a->host, b->host) &&
           same_slice(a->path, b->path) && same_slice(a->scheme, b->scheme) && a->port == b->port &&
           a->version_minor == b->version_minor && a->has_host == b->has_host &&
           a->has_content_length == b->has_content_length &&
           a->content_length == b->content_length && a->chunked == b->chunked &&
           a->conn_close == b->conn_close && a->expect_continue == b->expect_continue &&
           a->upgrade == b->upgrade && a->n_headers == b->n_headers &&
           same_headers(a->headers, b->headers, a->n_headers);
}

static int same_response(const struct http_response *a, const struct http_response *b)
{
    return a->head_len == b->head_len && a->status == b->status &&
           same_slice(a->reason, b->reason) && a->version_minor == b->version_minor &&
           a->has_content_length == b->has_content_length &&
           a->content_length == b->content_length && a->chunked == b->chunked &&
           a->conn_close == b->conn_close && a->n_headers == b->n_headers &&
           same_headers(a->headers, b->headers, a->n_headers);
}

static void check_result(int r, size_t len)
{
    CHECK(r <= 0 || (size_t)r <= len);
    CHECK(r >= HTTP_E_TOO_BIG);
    CHECK(r > 0 || strcmp(http_strerror(r), "unknown http error") != 0);
}

static void check_reserialize(const struct http_request *req)
{
    static const struct http_header add[] = {{SLICE_LIT("X-Fuzz"), SLICE_LIT("1")}};
    static const struct slice drop[] = {SLICE_LIT("expect")};
    struct http_forward fw = {SLICE_LIT("/fuzz"), drop, 1, add, 1};
    struct http_limits big = {.max_head = 1 << 20,
                              .max_headers = HTTP_MAX_HEADERS,
                              .max_target = 1 << 16,
                              .max_method = 1 << 16};
    struct http_request *again = malloc(sizeof(*again));
    struct buf out;

    if (req->form == HTTP_FORM_AUTHORITY || req->n_headers >= HTTP_MAX_HEADERS) {
        free(again);
        return;
    }
    buf_init(&out, 1 << 20);
    CHECK(http_request_serialize(req, &fw, &out) == 0);
    int r = http_parse_request(out.data, out.len, &big, again);
    if (req->has_host) {
        CHECK(r > 0 && (size_t)r == out.len);
        CHECK(again->method.len == req->method.len &&
              memcmp(again->method.ptr, req->method.ptr, req->method.len) == 0);
        CHECK(!again->chunked && !again->upgrade && again->version_minor == 1);
        CHECK(http_find_header(again->headers, again->n_headers, "connection") == NULL);
        CHECK(http_find_header(again->headers, again->n_headers, "x-fuzz") != NULL);
    } else {
        CHECK(r == HTTP_E_NO_HOST);
    }
    buf_release(&out);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_limits tiny = {
        .max_head = 200, .max_headers = 6, .max_method = 8, .max_target = 40};
    const struct http_limits *lim;
    struct http_request *req, *req2;
    struct http_response *resp, *resp2;

    if (size < 1)
        return 0;
    lim = (data[0] & 1) ? &tiny : NULL;
    size_t split_seed = data[0] >> 1;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;

    req = malloc(sizeof(*req));
    req2 = malloc(sizeof(*req2));
    resp = malloc(sizeof(*resp));
    resp2 = malloc(sizeof(*resp2));

    int r = http_parse_request(buf, len, lim, req);
    check_result(r, len);
    size_t split = len * split_seed / 128;
    int rs = http_parse_request(buf, split, lim, req2);
    if (r > 0) {
        CHECK((size_t)r == req->head_len);
        check_slice(req->method, buf, (size_t)r);
        check_slice(req->target, buf, (size_t)r);
        check_slice(req->host, buf, (size_t)r);
        check_slice(req->path, buf, (size_t)r);
        check_slice(req->scheme, buf, (size_t)r);
        if (req->has_host)
            check_slice(req->host_header, buf, (size_t)r);
        check_headers(req->headers, req->n_headers, buf, (size_t)r);
        CHECK(rs == (split >= (size_t)r ? r : 0));
        CHECK(http_parse_request(buf, (size_t)r, lim, req2) == r && same_request(req, req2));
        CHECK(http_parse_request(buf, (size_t)r - 1, lim, req2) == 0);
        check_reserialize(req);
    } else {
        CHECK(rs == 0 || rs == r);
    }

    r = http_parse_response(buf, len, lim, resp);
    check_result(r, len);
    rs = http_parse_response(buf, split, lim, resp2);
    if (r > 0) {
        CHECK((size_t)r == resp->head_len && resp->status >= 100 && resp->status <= 599);
        check_slice(resp->reason, buf, (size_t)r);
        check_headers(resp->headers, resp->n_headers, buf, (size_t)r);
        CHECK(rs == (split >= (size_t)r ? r : 0));
        CHECK(http_parse_response(buf, (size_t)r, lim, resp2) == r && same_response(resp, resp2));
        CHECK(http_parse_response(buf, (size_t)r - 1, lim, resp2) == 0);
        (void)http_response_body(resp, SLICE_LIT("GET"));
    } else {
        CHECK(rs == 0 || rs == r);
    }

    free(req);
    free(req2);
    free(resp);
    free(resp2);
    return 0;
}

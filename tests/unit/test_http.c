/*
 * test_http.c - the proxy's HTTP/1.1 head parsers, chunked decoder and
 * forwarding serializer.
 *
 * Requests are data: one table of heads the parser must accept and one of
 * heads it must refuse, each row run as its own named test and again at
 * every split point (a prefix must give "need more" or the very same
 * result).  The smuggling vectors (CL.TE, TE.CL, duplicate and listed
 * Content-Length, obs-fold, space before colon, odd Transfer-Encodings,
 * bare LF, NUL) each have their own row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "http.h"
#include "xalloc.h"

#define N(a)   (sizeof(a) / sizeof((a)[0]))
#define S(lit) lit, sizeof(lit) - 1

struct refusal {
    const char *name;
    const char *in;
    size_t len;
    int err;
};

static const struct refusal refusals[] = {
    /* request smuggling */
    {"cl_te",
     S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"),
     HTTP_E_TE_AND_CL},
    {"te_cl",
     S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
       "Content-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"),
     HTTP_E_TE_AND_CL},
    {"dup_content_length_equal",
     S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
     HTTP_E_DUP_CONTENT_LENGTH},
    {"dup_content_length_differ",
     S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n"),
     HTTP_E_DUP_CONTENT_LENGTH},
    {"content_length_list", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n"),
     HTTP_E_CONTENT_LENGTH},
    {"content_length_plus", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n"),
     HTTP_E_CONTENT_LENGTH},
    {"content_length_minus", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"),
     HTTP_E_CONTENT_LENGTH},
    {"content_length_inner_space", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 0\r\n\r\n"),
     HTTP_E_CONTENT_LENGTH},
    {"content_length_hex", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n"),
     HTTP_E_CONTENT_LENGTH},
    {"content_length_empty", S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"),
     HTTP_E_CONTENT_LENGTH},
    {"content_length_over_2_53",
     S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9007199254740993\r\n\r\n"),
     HTTP_E_CONTENT_LENGTH},
    {"content_length_huge",
     S("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999\r\n\r\n"),
     HTTP_E_CONTENT_LENGTH},
    {"obs_fold", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n"),
     HTTP_E_OBS_FOLD},
    {"obs_fold_tab", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\tmore\r\n\r\n"), HTTP_E_OBS_FOLD},
    {"first_header_indented", S("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), HTTP_E_OBS_FOLD},
    {"space_before_colon", S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n"),
     HTTP_E_SPACE_BEFORE_COLON},
    {"tab_before_colon", S("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n"), HTTP_E_SPACE_BEFORE_COLON},
    {"te_chunked_identity",
     S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
     HTTP_E_TRANSFER_ENCODING},
    {"te_identity", S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n"),
     HTTP_E_TRANSFER_ENCODING},
    {"te_xchunked", S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n"),
     HTTP_E_TRANSFER_ENCODING},
    {"te_gzip_chunked", S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
     HTTP_E_TRANSFER_ENCODING},
    {"te_twice",
     S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n"),
     HTTP_E_TRANSFER_ENCODING},
    {"te_vertical_tab", S("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \vchunked\r\n\r\n"),
     HTTP_E_HEADER_VALUE},
    {"te_http10", S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_E_TE_HTTP10},
    {"bare_lf_request_line", S("GET / HTTP/1.1\nHost: h\r\n\r\n"), HTTP_E_BARE_LF},
    {"bare_lf_header", S("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"), HTTP_E_BARE_LF},
    {"bare_lf_end", S("GET / HTTP/1.1\r\nHost: h\r\n\n"), HTTP_E_BARE_LF},
    {"bare_cr_header", S("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"), HTTP_E_BARE_CR},
    {"bare_cr_end", S("GET / HTTP/1.1\r\nHost: h\r\n\rX"), HTTP_E_BARE_CR},
    {"nul_in_value", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n"), HTTP_E_HEADER_VALUE},
    {"nul_in_name", S("GET / HTTP/1.1\r\nHost: h\r\nX\0A: b\r\n\r\n"), HTTP_E_HEADER_NAME},
    {"del_in_value", S("GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f\r\n\r\n"), HTTP_E_HEADER_VALUE},
    {"nul_in_target", S("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_TARGET},
    /* request line */
    {"double_space_after_method", S("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_REQUEST_LINE},
    {"double_space_after_target", S("GET /  HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_REQUEST_LINE},
    {"trailing_space", S("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), HTTP_E_REQUEST_LINE},
    {"leading_space", S(" GET / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_REQUEST_LINE},
    {"tab_separator", S("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_REQUEST_LINE},
    {"http09", S("GET /\r\n\r\n"), HTTP_E_REQUEST_LINE},
    {"method_bad_char", S("GE@T / HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_METHOD},
    {"method_too_long", S("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG / HTTP/1.1\r\nHost: h\r\n\r\n"),
     HTTP_E_METHOD_TOO_LONG},
    {"target_fragment", S("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_TARGET},
    {"target_high_byte", S("GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_TARGET},
    {"target_relative", S("GET foo HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_TARGET},
    {"asterisk_not_options", S("GET * HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_TARGET},
    {"version_1_2", S("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), HTTP_E_VERSION},
    {"version_2", S("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), HTTP_E_VERSION},
    {"version_lowercase", S("GET / http/1.1\r\nHost: h\r\n\r\n"), HTTP_E_VERSION},
    {"version_1_10", S("GET / HTTP/1.10\r\nHost: h\r\n\r\n"), HTTP_E_VERSION},
    /* Host and authority */
    {"no_host", S("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), HTTP_E_NO_HOST},
    {"dup_host", S("GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"),
     HTTP_E_DUP_HOST},
    {"dup_host_http10", S("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"), HTTP_E_DUP_HOST},
    {"empty_host", S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), HTTP_E_HOST},
    {"host_userinfo", S("GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n"), HTTP_E_USERINFO},
    {"host_bad_char", S("GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n"), HTTP_E_HOST},
    {"host_port_zero", S("GET / HTTP/1.1\r\nHost: example.com:0\r\n\r\n"), HTTP_E_HOST},
    {"host_port_big", S("GET / HTTP/1.1\r\nHost: example.com:65536\r\n\r\n"), HTTP_E_HOST},
    {"host_port_empty", S("GET / HTTP/1.1\r\nHost: example.com:\r\n\r\n"), HTTP_E_HOST},
    {"host_port_sign", S("GET / HTTP/1.1\r\nHost: example.com:+80\r\n\r\n"), HTTP_E_HOST},
    {"host_v6_unclosed", S("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), HTTP_E_HOST},
    {"host_percent", S("GET / HTTP/1.1\r\nHost: ex%61mple.com\r\n\r\n"), HTTP_E_HOST},
    {"absolute_userinfo",
     S("GET http://user:pw@example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"), HTTP_E_USERINFO},
    {"absolute_userinfo_at_only", S("GET http://@example.com/ HTTP/1.1\r\nHost: x\r\n\r\n"),
     HTTP_E_USERINFO},
    {"absolute_scheme_ftp", S("GET ftp://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     HTTP_E_SCHEME},
    {"absolute_no_host", S("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_HOST},
    {"absolute_no_slashes", S("GET http:example.com HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_TARGET},
    {"connect_no_port", S("CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     HTTP_E_TARGET},
    {"connect_origin_form", S("CONNECT / HTTP/1.1\r\nHost: example.com\r\n\r\n"), HTTP_E_HOST},
    {"connect_userinfo", S("CONNECT u@example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     HTTP_E_USERINFO},
    {"connect_body",
     S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n"
       "Content-Length: 5\r\n\r\n"),
     HTTP_E_CONNECT_BODY},
    {"connect_chunked",
     S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n"
       "Transfer-Encoding: chunked\r\n\r\n"),
     HTTP_E_CONNECT_BODY},
    /* headers */
    {"expect_other", S("POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n"), HTTP_E_EXPECT},
    {"empty_header_name", S("GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n"), HTTP_E_HEADER_NAME},
    {"header_no_colon", S("GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n"), HTTP_E_HEADER_NAME},
    {"header_name_bad_char", S("GET / HTTP/1.1\r\nHost: h\r\nX(A): 1\r\n\r\n"), HTTP_E_HEADER_NAME},
    {"header_name_high_byte", S("GET / HTTP/1.1\r\nHost: h\r\nX\xc3\xa9: 1\r\n\r\n"),
     HTTP_E_HEADER_NAME},
};

static const char *const accepted[] = {
    "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\n\r\n",
    "GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
    "GET https://EXAMPLE.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChUnKeD\r\n\r\n",
    "POST /u HTTP/1.1\r\nHost: h\r\nContent-Length: 9007199254740992\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "\r\n\r\nGET / HTTP/1.1\r\nHost: [::1]:8080\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
};

static int parse_str(const char *s, size_t len, struct http_request *req)
{
    return http_parse_request(s, len, NULL, req);
}

/* Every prefix gives 0 or the whole-message result. */
static void check_all_splits(const char *in, size_t len, const struct http_limits *lim)
{
    struct http_request *whole = xmalloc(sizeof(*whole)), *part = xmalloc(sizeof(*part));
    char *copy = xmalloc(len ? len : 1);
    int r;

    memcpy(copy, in, len);
    r = http_parse_request(copy, len, lim, whole);
    for (size_t k = 0; k < len; k++) {
        int rp = http_parse_request(copy, k, lim, part);
        if (r > 0) {
            assert_int_equal(rp, k >= (size_t)r ? r : 0);
            if (rp > 0) {
                assert_int_equal(part->n_headers, whole->n_headers);
                assert_true(slice_eq(part->target, whole->target));
            }
        } else if (rp != 0) {
            assert_int_equal(rp, r);
        }
    }
    free(copy);
    free(whole);
    free(part);
}

static void test_refusal(void **state)
{
    const struct refusal *c = *state;
    struct http_request *req = xmalloc(sizeof(*req));
    char *copy = xmalloc(c->len); /* exact size: ASan sees any overread */

    memcpy(copy, c->in, c->len);
    int r = http_parse_request(copy, c->len, NULL, req);
    if (r != c->err)
        fail_msg("%s: got %d (%s), want %d (%s)", c->name, r, http_strerror(r), c->err,
                 http_strerror(c->err));
    assert_true(http_error_status(r) >= 400);
    check_all_splits(c->in, c->len, NULL);
    free(copy);
    free(req);
}

static void test_accepted_splits(void **state)
{
    for (size_t i = 0; i < N(accepted); i++) {
        struct http_request req;
        size_t len = strlen(accepted[i]);
        int r = parse_str(accepted[i], len, &req);
        if (r != (int)len)
            fail_msg("accepted[%zu]: got %d (%s)", i, r, http_strerror(r));
        check_all_splits(accepted[i], len, NULL);
    }
}

static void test_origin_form(void **state)
{
    static const char in[] = "GET /a/b?x=1 HTTP/1.1\r\nHost: Example.COM:8443\r\n"
                             "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
                             "Expect: 100-continue\r\nContent-Length: 0\r\n\r\nBODY";
    struct http_request req;

    assert_int_equal(parse_str(in, sizeof(in) - 1, &req), sizeof(in) - 1 - 4);
    assert_int_equal(req.head_len, sizeof(in) - 1 - 4);
    assert_true(slice_eq_cstr(req.method, "GET"));
    assert_true(slice_eq_cstr(req.target, "/a/b?x=1"));
    assert_int_equal(req.form, HTTP_FORM_ORIGIN);
    assert_true(slice_eq_cstr(req.path, "/a/b?x=1"));
    assert_int_equal(req.port, 0);
    assert_int_equal(req.version_minor, 1);
    assert_true(req.has_host);
    assert_true(slice_eq_cstr(req.host_header, "Example.COM:8443"));
    assert_true(slice_eq_cstr(req.host_header_name, "Example.COM"));
    assert_int_equal(req.host_header_port, 8443);
    assert_true(req.has_content_length);
    assert_int_equal(req.content_length, 0);
    assert_int_equal(http_request_body(&req), HTTP_BODY_NONE);
    assert_true(req.conn_keep_alive && req.conn_upgrade && !req.conn_close);
    assert_true(req.upgrade);
    assert_true(req.expect_continue);
    assert_int_equal(req.n_headers, 5);
    assert_true(slice_eq_cstr(req.headers[3].name, "Expect"));
    assert_true(slice_eq_cstr(req.headers[3].value, "100-continue"));
    assert_true(http_request_keep_alive(&req));
    assert_non_null(http_find_header(req.headers, req.n_headers, "UPGRADE"));
    assert_null(http_find_header(req.headers, req.n_headers, "accept"));
}

static void test_absolute_form(void **state)
{
    struct http_request req;
    static const char a[] = "POST http://api.example.com/v1/x?y=2 HTTP/1.1\r\n"
                            "Host: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char b[] = "GET https://[2001:db8::1]:8443 HTTP/1.0\r\n\r\n";
    static const char c[] = "GET HTTP://h.example?q HTTP/1.1\r\nHost: h.example\r\n\r\n";

    assert_int_equal(parse_str(a, sizeof(a) - 1, &req), sizeof(a) - 1);
    assert_int_equal(req.form, HTTP_FORM_ABSOLUTE);
    assert_true(slice_eq_cstr(req.scheme, "http"));
    assert_true(slice_eq_cstr(req.host, "api.example.com"));
    assert_int_equal(req.port, 80);
    assert_true(slice_eq_cstr(req.path, "/v1/x?y=2"));
    assert_true(req.chunked);
    assert_int_equal(http_request_body(&req), HTTP_BODY_CHUNKED);

    assert_int_equal(parse_str(b, sizeof(b) - 1, &req), sizeof(b) - 1);
    assert_true(slice_eq_cstr(req.scheme, "https"));
    assert_true(slice_eq_cstr(req.host, "[2001:db8::1]"));
    assert_int_equal(req.port, 8443);
    assert_int_equal(req.path.len, 0);
    assert_int_equal(req.version_minor, 0);
    assert_false(req.has_host);
    assert_false(http_request_keep_alive(&req));

    assert_int_equal(parse_str(c, sizeof(c) - 1, &req), sizeof(c) - 1);
    assert_true(slice_eq_cstr(req.host, "h.example"));
    assert_true(slice_eq_cstr(req.path, "?q"));
}

static void test_authority_and_asterisk(void **state)
{
    struct http_request req;
    static const char a[] = "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n"
                            "Proxy-Authorization: Basic eDp5\r\n\r\n";
    static const char b[] = "OPTIONS * HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";

    assert_int_equal(parse_str(a, sizeof(a) - 1, &req), sizeof(a) - 1);
    assert_int_equal(req.form, HTTP_FORM_AUTHORITY);
    assert_true(slice_eq_cstr(req.host, "api.example.com"));
    assert_int_equal(req.port, 443);
    assert_int_equal(http_request_body(&req), HTTP_BODY_NONE);

    assert_int_equal(parse_str(b, sizeof(b) - 1, &req), sizeof(b) - 4);
    assert_int_equal(req.form, HTTP_FORM_ASTERISK);
    assert_int_equal(req.content_length, 3);
    assert_int_equal(http_request_body(&req), HTTP_BODY_LENGTH);
}

static void test_value_trimming_and_expect_http10(void **state)
{
    struct http_request req;
    static const char a[] = "GET / HTTP/1.0\r\nX-A: \t a b \t\r\nExpect: something\r\n"
                            "Connection: Keep-Alive\r\n\r\n";

    assert_int_equal(parse_str(a, sizeof(a) - 1, &req), sizeof(a) - 1);
    assert_true(slice_eq_cstr(req.headers[0].value, "a b"));
    assert_false(req.expect_continue); /* ignored in HTTP/1.0 */
    assert_true(http_request_keep_alive(&req));
}

static void test_limits(void **state)
{
    struct http_limits lim = {.max_head = 0, .max_headers = 3, .max_method = 4, .max_target = 8};
    struct http_request req;
    static const char three[] = "POST /1234567 HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    static const char four[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    static const char method5[] = "PATCH / HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char target9[] = "GET /12345678 HTTP/1.1\r\nHost: h\r\n\r\n";

    assert_int_equal(http_parse_request(three, sizeof(three) - 1, &lim, &req), sizeof(three) - 1);
    assert_int_equal(http_parse_request(four, sizeof(four) - 1, &lim, &req),
                     HTTP_E_TOO_MANY_HEADERS);
    assert_int_equal(http_error_status(HTTP_E_TOO_MANY_HEADERS), 431);
    assert_int_equal(http_parse_request(method5, sizeof(method5) - 1, &lim, &req),
                     HTTP_E_METHOD_TOO_LONG);
    assert_int_equal(http_parse_request(target9, sizeof(target9) - 1, &lim, &req),
                     HTTP_E_TARGET_TOO_LONG);
    assert_int_equal(http_error_status(HTTP_E_TARGET_TOO_LONG), 414);
    check_all_splits(four, sizeof(four) - 1, &lim);
    check_all_splits(target9, sizeof(target9) - 1, &lim);

    /* max_head is inclusive of the blank line, and exact */
    lim = (struct http_limits){.max_head = sizeof(three) - 1};
    assert_int_equal(http_parse_request(three, sizeof(three) - 1, &lim, &req), sizeof(three) - 1);
    lim.max_head--;
    assert_int_equal(http_parse_request(three, sizeof(three) - 2, &lim, &req), 0);
    assert_int_equal(http_parse_request(three, sizeof(three) - 1, &lim, &req), HTTP_E_HEAD_TOO_BIG);
    assert_int_equal(http_error_status(HTTP_E_HEAD_TOO_BIG), 431);
    check_all_splits(three, sizeof(three) - 1, &lim);

    /* a head that never ends is refused once it passes the default cap */
    size_t big = (32 << 10) + 1;
    char *flood = xmalloc(big);
    memset(flood, 'a', big);
    memcpy(flood, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(http_parse_request(flood, big - 1, NULL, &req), 0);
    assert_int_equal(http_parse_request(flood, big, NULL, &req), HTTP_E_HEAD_TOO_BIG);
    free(flood);

    /* the header array is the hard ceiling whatever the limits say */
    lim = (struct http_limits){.max_headers = 100000};
    struct buf b;
    buf_init(&b, 1 << 20);
    buf_puts(&b, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS; i++)
        buf_appendf(&b, "X-%d: y\r\n", i);
    buf_puts(&b, "\r\n");
    assert_int_equal(http_parse_request(b.data, b.len, &lim, &req), HTTP_E_TOO_MANY_HEADERS);
    buf_release(&b);
}

static void test_errors_have_reasons(void **state)
{
    for (int e = HTTP_OK; e >= HTTP_E_TOO_BIG; e--)
        assert_string_not_equal(http_strerror(e), "unknown http error");
    assert_string_equal(http_strerror(-1000), "unknown http error");
    assert_string_equal(http_strerror(HTTP_E_DUP_CONTENT_LENGTH), "duplicate content-length");
    assert_int_equal(http_error_status(HTTP_E_TE_AND_CL), 400);
    assert_int_equal(http_error_status(HTTP_E_TRANSFER_ENCODING), 501);
    assert_int_equal(http_error_status(HTTP_E_VERSION), 505);
    assert_int_equal(http_error_status(HTTP_E_EXPECT), 417);
}

static void test_split_authority(void **state)
{
    struct slice host;
    uint16_t port;

    assert_int_equal(http_split_authority(SLICE_LIT("a.b:65535"), &host, &port), 0);
    assert_true(slice_eq_cstr(host, "a.b"));
    assert_int_equal(port, 65535);
    assert_int_equal(http_split_authority(SLICE_LIT("[::ffff:127.0.0.1]"), &host, &port), 0);
    assert_true(slice_eq_cstr(host, "[::ffff:127.0.0.1]"));
    assert_int_equal(port, 0);
    assert_int_equal(http_split_authority(SLICE_LIT("[::1]x"), &host, &port), HTTP_E_HOST);
    assert_int_equal(http_split_authority(SLICE_LIT("[]"), &host, &port), HTTP_E_HOST);
    assert_int_equal(http_split_authority(SLICE_LIT("a:b:c"), &host, &port), HTTP_E_HOST);
    assert_int_equal(http_split_authority(SLICE_LIT("a:000080"), &host, &port), HTTP_E_HOST);
    assert_int_equal(http_split_authority(SLICE_LIT("a\\b"), &host, &port), HTTP_E_HOST);
}

/* ---- responses ----------------------------------------------------------- */

static void test_response_basic(void **state)
{
    struct http_response r;
    static const char a[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhello";
    static const char b[] = "HTTP/1.1 200 Fine Thanks\r\nTransfer-Encoding: chunked\r\n"
                            "Connection: close\r\n\r\n";
    static const char c[] = "HTTP/1.0 404\r\n\r\n";
    static const char d[] = "HTTP/1.1 204 \r\n\r\n";

    assert_int_equal(http_parse_response(a, sizeof(a) - 1, NULL, &r), sizeof(a) - 6);
    assert_int_equal(r.status, 200);
    assert_true(slice_eq_cstr(r.reason, "OK"));
    assert_int_equal(r.content_length, 5);
    assert_int_equal(http_response_body(&r, SLICE_LIT("GET")), HTTP_BODY_LENGTH);
    assert_int_equal(http_response_body(&r, SLICE_LIT("HEAD")), HTTP_BODY_NONE);
    assert_true(http_response_keep_alive(&r));
    assert_false(http_response_is_interim(&r));

    assert_int_equal(http_parse_response(b, sizeof(b) - 1, NULL, &r), sizeof(b) - 1);
    assert_true(slice_eq_cstr(r.reason, "Fine Thanks"));
    assert_int_equal(http_response_body(&r, SLICE_LIT("POST")), HTTP_BODY_CHUNKED);
    assert_false(http_response_keep_alive(&r));

    assert_int_equal(http_parse_response(c, sizeof(c) - 1, NULL, &r), sizeof(c) - 1);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.reason.len, 0);
    assert_int_equal(http_response_body(&r, SLICE_LIT("GET")), HTTP_BODY_CLOSE);
    assert_false(http_response_keep_alive(&r));

    assert_int_equal(http_parse_response(d, sizeof(d) - 1, NULL, &r), sizeof(d) - 1);
    assert_int_equal(http_response_body(&r, SLICE_LIT("GET")), HTTP_BODY_NONE);
    assert_true(http_response_keep_alive(&r));
}

static void test_response_interim(void **state)
{
    struct http_response r;
    static const char in[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                             "Content-Length: 0\r\n\r\n";
    static const char sw[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\n\r\n";
    static const char conn[] = "HTTP/1.1 200 Connection established\r\n\r\n";

    int n = http_parse_response(in, sizeof(in) - 1, NULL, &r);
    assert_int_equal(n, 25);
    assert_int_equal(r.status, 100);
    assert_true(http_response_is_interim(&r));
    assert_int_equal(http_response_body(&r, SLICE_LIT("POST")), HTTP_BODY_NONE);
    assert_int_equal(http_parse_response(in + n, sizeof(in) - 1 - n, NULL, &r), sizeof(in) - 1 - n);
    assert_int_equal(r.status, 201);

    assert_int_equal(http_parse_response(sw, sizeof(sw) - 1, NULL, &r), sizeof(sw) - 1);
    assert_false(http_response_is_interim(&r));
    assert_true(r.upgrade && r.conn_upgrade);

    assert_int_equal(http_parse_response(conn, sizeof(conn) - 1, NULL, &r), sizeof(conn) - 1);
    assert_int_equal(http_response_body(&r, SLICE_LIT("CONNECT")), HTTP_BODY_NONE);
}

static void test_response_refusals(void **state)
{
    static const struct refusal cases[] = {
        {"dup_cl", S("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
         HTTP_E_DUP_CONTENT_LENGTH},
        {"te_cl", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"),
         HTTP_E_TE_AND_CL},
        {"te_http10", S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_E_TE_HTTP10},
        {"status_99", S("HTTP/1.1 099 X\r\n\r\n"), HTTP_E_STATUS_LINE},
        {"status_600", S("HTTP/1.1 600 X\r\n\r\n"), HTTP_E_STATUS_LINE},
        {"status_4digits", S("HTTP/1.1 2000 OK\r\n\r\n"), HTTP_E_STATUS_LINE},
        {"status_2digits", S("HTTP/1.1 20 OK\r\n\r\n"), HTTP_E_STATUS_LINE},
        {"version", S("HTTP/2 200 OK\r\n\r\n"), HTTP_E_STATUS_LINE},
        {"bare_lf", S("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), HTTP_E_BARE_LF},
        {"reason_ctl", S("HTTP/1.1 200 O\x01K\r\n\r\n"), HTTP_E_STATUS_LINE},
        {"obs_fold", S("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n"), HTTP_E_OBS_FOLD},
    };
    struct http_response r;

    for (size_t i = 0; i < N(cases); i++) {
        int got = http_parse_response(cases[i].in, cases[i].len, NULL, &r);
        if (got != cases[i].err)
            fail_msg("%s: got %d (%s)", cases[i].name, got, http_strerror(got));
        for (size_t k = 0; k < cases[i].len; k++) {
            int rp = http_parse_response(cases[i].in, k, NULL, &r);
            assert_true(rp == 0 || rp == cases[i].err);
        }
    }
}

/* ---- chunked ------------------------------------------------------------- */

struct decoded {
    int r;
    size_t consumed;
    struct buf out;
};

/* Decodes in pieces cut at cuts[0..n) (sorted offsets); releases nothing. */
static void decode_cuts(const char *in, size_t len, const size_t *cuts, size_t n,
                        const struct http_limits *lim, struct decoded *d)
{
    struct http_chunked c;
    size_t pos = 0;

    http_chunked_init(&c, lim);
    buf_init(&d->out, 1 << 20);
    d->r = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t end = i < n ? cuts[i] : len;
        size_t used;
        if (end < pos)
            continue;
        d->r = http_chunked_feed_buf(&c, in + pos, end - pos, &used, &d->out);
        if (d->r < 0)
            break;
        pos += used;
        if (d->r == 1)
            break;
        assert_int_equal(pos, end);
    }
    d->consumed = pos;
}

static void decode_whole(const char *in, size_t len, const struct http_limits *lim,
                         struct decoded *d)
{
    decode_cuts(in, len, NULL, 0, lim, d);
}

static void test_chunked_valid(void **state)
{
    static const char in[] = "5\r\nhello\r\n6;name=value;x=\"q\"\r\n world\r\n"
                             "A \t; ext\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-B:two\r\n\r\nNEXT";
    struct decoded d;

    decode_whole(in, sizeof(in) - 1, NULL, &d);
    assert_int_equal(d.r, 1);
    assert_int_equal(d.consumed, sizeof(in) - 1 - 4);
    assert_int_equal(d.out.len, 21);
    assert_memory_equal(d.out.data, "hello world0123456789", 21);
    buf_release(&d.out);

    static const char zero[] = "0\r\n\r\n";
    decode_whole(zero, sizeof(zero) - 1, NULL, &d);
    assert_int_equal(d.r, 1);
    assert_int_equal(d.out.len, 0);
    buf_release(&d.out);

    static const char max[] = "0001000000000000\r\n"; /* 2^48, 16 digits: accepted */
    decode_whole(max, sizeof(max) - 1, NULL, &d);
    assert_int_equal(d.r, 0);
    buf_release(&d.out);

    static const char limit[] = "1000000000000000\r\n"; /* 2^60 exactly */
    decode_whole(limit, sizeof(limit) - 1, NULL, &d);
    assert_int_equal(d.r, 0);
    buf_release(&d.out);
}

static void test_chunked_refusals(void **state)
{
    static const struct refusal cases[] = {
        {"invalid_hex", S("5x\r\nhello\r\n0\r\n\r\n"), HTTP_E_CHUNK_SIZE},
        {"no_digits", S("\r\nhello\r\n0\r\n\r\n"), HTTP_E_CHUNK_SIZE},
        {"negative", S("-5\r\nhello\r\n"), HTTP_E_CHUNK_SIZE},
        {"prefix_0x", S("0x5\r\nhello\r\n"), HTTP_E_CHUNK_SIZE},
        {"overflow", S("ffffffffffffffffff\r\nx\r\n0\r\n\r\n"), HTTP_E_CHUNK_OVERFLOW},
        {"over_2_60", S("1000000000000001\r\n"), HTTP_E_CHUNK_OVERFLOW},
        {"17_digits", S("00000000000000005\r\nhello\r\n"), HTTP_E_CHUNK_OVERFLOW},
        {"missing_crlf_after_data", S("5\r\nhelloXX0\r\n\r\n"), HTTP_E_CHUNK_CRLF},
        {"lf_only_after_data", S("5\r\nhello\n0\r\n\r\n"), HTTP_E_CHUNK_CRLF},
        {"bare_lf_size", S("5\nhello\r\n"), HTTP_E_BARE_LF},
        {"bare_cr_size", S("5\rhello\r\n"), HTTP_E_BARE_CR},
        {"space_no_ext", S("5 \r\nhello\r\n"), HTTP_E_CHUNK_EXT},
        {"ext_too_long", S("5;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nhello\r\n"),
         HTTP_E_CHUNK_EXT},
        {"ext_ctl", S("5;a\x01\r\nhello\r\n"), HTTP_E_CHUNK_EXT},
        {"ext_bare_lf", S("5;a\nhello\r\n"), HTTP_E_BARE_LF},
        {"trailer_too_big", S("0\r\nX-Long-Trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"),
         HTTP_E_TRAILER_TOO_BIG},
        {"trailer_obs_fold", S("0\r\nA: 1\r\n B: 2\r\n\r\n"), HTTP_E_TRAILER},
        {"trailer_no_colon", S("0\r\nA 1\r\n\r\n"), HTTP_E_TRAILER},
        {"trailer_nul", S("0\r\nA: \0\r\n\r\n"), HTTP_E_TRAILER},
        {"trailer_bare_lf", S("0\r\nA: 1\n\r\n"), HTTP_E_BARE_LF},
        {"end_bare_cr", S("0\r\n\rX"), HTTP_E_BARE_CR},
    };
    struct http_limits lim = {.max_chunk_ext = 16, .max_trailer = 32};

    for (size_t i = 0; i < N(cases); i++) {
        struct decoded d;
        char *copy = xmalloc(cases[i].len);
        memcpy(copy, cases[i].in, cases[i].len);
        decode_whole(copy, cases[i].len, &lim, &d);
        if (d.r != cases[i].err)
            fail_msg("%s: got %d (%s)", cases[i].name, d.r, http_strerror(d.r));
        buf_release(&d.out);
        /* byte at a time gives the same error */
        size_t *cuts = xmalloc(cases[i].len * sizeof(*cuts));
        for (size_t k = 0; k < cases[i].len; k++)
            cuts[k] = k;
        decode_cuts(copy, cases[i].len, cuts, cases[i].len, &lim, &d);
        assert_int_equal(d.r, cases[i].err);
        buf_release(&d.out);
        free(cuts);
        free(copy);
    }
}

static void test_chunked_sticky_states(void **state)
{
    struct http_chunked c;
    size_t used = 99;

    http_chunked_init(&c, NULL);
    assert_int_equal(http_chunked_feed(&c, "zz", 2, &used, NULL, NULL), HTTP_E_CHUNK_SIZE);
    assert_int_equal(used, 99); /* not written on error */
    assert_int_equal(http_chunked_feed(&c, "0\r\n\r\n", 5, &used, NULL, NULL), HTTP_E_CHUNK_SIZE);
    assert_int_equal(http_chunked_feed(&c, "", 0, &used, NULL, NULL), HTTP_E_CHUNK_SIZE);

    http_chunked_init(&c, NULL);
    assert_int_equal(http_chunked_feed(&c, "0\r\n\r\nGET", 8, &used, NULL, NULL), 1);
    assert_int_equal(used, 5);
    assert_int_equal(http_chunked_feed(&c, "GET", 3, &used, NULL, NULL), 1);
    assert_int_equal(used, 0);
}

static int refuse_data(void *arg, const char *p, size_t n)
{
    (*(int *)arg)++;
    return -1234;
}

static void test_chunked_callback_and_cap(void **state)
{
    struct http_chunked c;
    size_t used;
    int calls = 0;
    struct buf small;

    http_chunked_init(&c, NULL);
    assert_int_equal(http_chunked_feed(&c, "3\r\nabc\r\n", 8, &used, refuse_data, &calls), -1234);
    assert_int_equal(calls, 1);
    assert_int_equal(c.state, HTTP_CHUNKED_ERROR);

    buf_init(&small, 4);
    http_chunked_init(&c, NULL);
    assert_int_equal(http_chunked_feed_buf(&c, "3\r\nabc\r\n3\r\ndef\r\n", 16, &used, &small),
                     HTTP_E_TOO_BIG);
    assert_int_equal(small.len, 3);
    buf_release(&small);
}

/* Every 2-way split and many random n-way splits decode identically. */
static void test_chunked_splits(void **state)
{
    struct buf in, want;
    struct decoded whole;
    uint32_t seed = 12345;

    buf_init(&in, 1 << 20);
    buf_init(&want, 1 << 20);
    for (int i = 0; i < 40; i++) {
        size_t n = (size_t)(i * 37 % 300) + 1;
        buf_appendf(&in, "%zx%s\r\n", n, i % 3 ? "" : ";e=1");
        for (size_t k = 0; k < n; k++) {
            char ch = (char)((i * 31 + k * 7) & 0xff); /* every byte value, CR and LF too */
            buf_putc(&in, ch);
            buf_putc(&want, ch);
        }
        buf_puts(&in, "\r\n");
    }
    buf_puts(&in, "0\r\nT: 1\r\n\r\nnext");

    decode_whole(in.data, in.len, NULL, &whole);
    assert_int_equal(whole.r, 1);
    assert_int_equal(whole.consumed, in.len - 4);
    assert_int_equal(whole.out.len, want.len);
    assert_memory_equal(whole.out.data, want.data, want.len);

    for (size_t k = 0; k <= in.len; k++) {
        struct decoded d;
        decode_cuts(in.data, in.len, &k, 1, NULL, &d);
        assert_int_equal(d.r, 1);
        assert_int_equal(d.consumed, whole.consumed);
        assert_int_equal(d.out.len, want.len);
        assert_memory_equal(d.out.data, want.data, want.len);
        buf_release(&d.out);
    }
    for (int round = 0; round < 300; round++) {
        size_t cuts[64], n = (size_t)(round % 63) + 1;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            cuts[i] = (seed >> 8) % (in.len + 1);
        }
        for (size_t i = 1; i < n; i++) /* insertion sort */
            for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                size_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        struct decoded d;
        decode_cuts(in.data, in.len, cuts, n, NULL, &d);
        assert_int_equal(d.r, 1);
        assert_int_equal(d.consumed, whole.consumed);
        assert_int_equal(d.out.len, want.len);
        assert_memory_equal(d.out.data, want.data, want.len);
        buf_release(&d.out);
    }
    buf_release(&whole.out);
    buf_release(&in);
    buf_release(&want);
}

/* ---- serializer ---------------------------------------------------------- */

static void test_serialize_drop_add(void **state)
{
    static const char in[] = "POST http://api.example.com/v1?x=1 HTTP/1.1\r\n"
                             "Host: api.example.com\r\n"
                             "Connection: keep-alive, X-Secret-Hop\r\n"
                             "Proxy-Connection: keep-alive\r\n"
                             "Proxy-Authorization: Basic eDp5\r\n"
                             "Authorization: Bearer agent-token\r\n"
                             "X-Secret-Hop: 1\r\n"
                             "Keep-Alive: timeout=5\r\n"
                             "TE: trailers\r\n"
                             "Trailer: X-Sum\r\n"
                             "Upgrade: h2c\r\n"
                             "Transfer-Encoding: chunked\r\n"
                             "Accept: */*\r\n\r\n";
    static const char want[] = "POST /v1?x=1 HTTP/1.1\r\n"
                               "Host: api.example.com\r\n"
                               "Accept: */*\r\n"
                               "Authorization: Bearer injected\r\n"
                               "Content-Length: 11\r\n\r\n";
    static const struct slice drop[] = {SLICE_LIT("AUTHORIZATION")};
    static const struct http_header add[] = {
        {SLICE_LIT("Authorization"), SLICE_LIT("Bearer injected")},
        {SLICE_LIT("Content-Length"), SLICE_LIT("11")},
    };
    struct http_request req;
    struct buf out;

    assert_int_equal(parse_str(in, sizeof(in) - 1, &req), sizeof(in) - 1);
    struct http_forward fw = {req.path, drop, N(drop), add, N(add)};
    buf_init(&out, 4096);
    assert_int_equal(http_request_serialize(&req, &fw, &out), 0);
    assert_string_equal(buf_cstr(&out), want);

    /* the result is itself a valid head */
    struct http_request again;
    assert_int_equal(parse_str(out.data, out.len, &again), out.len);
    assert_int_equal(again.content_length, 11);
    buf_release(&out);
}

/* Connection cannot be used to strip the framing or the routing header. */
static void test_serialize_connection_cannot_unframe(void **state)
{
    static const char in[] = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                             "Connection: content-length, host, x-forwarded-for\r\n"
                             "X-Forwarded-For: 1.2.3.4\r\n\r\nabc";
    static const char want[] = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    struct http_request req;
    struct buf out;

    assert_int_equal(parse_str(in, sizeof(in) - 1, &req), sizeof(in) - 4);
    struct http_forward fw = {req.target, NULL, 0, NULL, 0};
    buf_init(&out, 4096);
    assert_int_equal(http_request_serialize(&req, &fw, &out), 0);
    assert_string_equal(buf_cstr(&out), want);
    buf_release(&out);
}

static void test_serialize_refusals(void **state)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http_request req;
    struct buf out;
    struct http_header bad_value = {SLICE_LIT("X-A"), SLICE_LIT("1\r\nX-Injected: 1")};
    struct http_header bad_name = {SLICE_LIT("X A"), SLICE_LIT("1")};
    struct http_header empty_name = {SLICE_LIT(""), SLICE_LIT("1")};

    assert_int_equal(parse_str(in, sizeof(in) - 1, &req), sizeof(in) - 1);
    buf_init(&out, 64);
    buf_puts(&out, "keep");

    struct http_forward fw = {SLICE_LIT("/"), NULL, 0, &bad_value, 1};
    assert_int_equal(http_request_serialize(&req, &fw, &out), HTTP_E_HEADER_VALUE);
    fw.add = &bad_name;
    assert_int_equal(http_request_serialize(&req, &fw, &out), HTTP_E_HEADER_NAME);
    fw.add = &empty_name;
    assert_int_equal(http_request_serialize(&req, &fw, &out), HTTP_E_HEADER_NAME);
    fw.add = NULL;
    fw.n_add = 0;
    fw.target = SLICE_LIT("/a b");
    assert_int_equal(http_request_serialize(&req, &fw, &out), HTTP_E_TARGET);
    fw.target = SLICE_LIT("");
    assert_int_equal(http_request_serialize(&req, &fw, &out), HTTP_E_TARGET);
    assert_string_equal(buf_cstr(&out), "keep");

    /* a full buffer leaves it as it was */
    fw.target = SLICE_LIT("/a-rather-long-target-that-will-not-fit-in-sixty-four-bytes");
    assert_int_equal(http_request_serialize(&req, &fw, &out), HTTP_E_TOO_BIG);
    assert_string_equal(buf_cstr(&out), "keep");
    buf_release(&out);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_origin_form),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_authority_and_asterisk),
        cmocka_unit_test(test_value_trimming_and_expect_http10),
        cmocka_unit_test(test_accepted_splits),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_errors_have_reasons),
        cmocka_unit_test(test_split_authority),
        cmocka_unit_test(test_response_basic),
        cmocka_unit_test(test_response_interim),
        cmocka_unit_test(test_response_refusals),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_refusals),
        cmocka_unit_test(test_chunked_sticky_states),
        cmocka_unit_test(test_chunked_callback_and_cap),
        cmocka_unit_test(test_chunked_splits),
        cmocka_unit_test(test_serialize_drop_add),
        cmocka_unit_test(test_serialize_connection_cannot_unframe),
        cmocka_unit_test(test_serialize_refusals),
    };
    size_t n = N(fixed) + N(refusals);
    struct CMUnitTest *tests = xcalloc(n, sizeof(*tests));
    char **names = xcalloc(N(refusals), sizeof(*names));

    memcpy(tests, fixed, sizeof(fixed));
    for (size_t i = 0; i < N(refusals); i++) {
        names[i] = xasprintf("refuse_%s", refusals[i].name);
        tests[N(fixed) + i] = (struct CMUnitTest){
            .name = names[i],
            .test_func = test_refusal,
            .initial_state = (void *)&refusals[i],
        };
    }
    int failed = _cmocka_run_group_tests("http", tests, n, NULL, NULL);
    for (size_t i = 0; i < N(refusals); i++)
        free(names[i]);
    free(names);
    free(tests);
    return failed;
}

/*
 * test_pathnorm.c - request path normalisation: every rule of pathnorm.h
 * as an input target beside its expected path and query, or its refusal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "pathnorm.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct norm_case {
    const char *in;
    const char *path;  /* expected path, NULL: refused */
    const char *query; /* expected query, NULL: none */
    const char *reason;
};

#define OK(in, path)                                                                               \
    {                                                                                              \
        in, path, NULL, NULL                                                                       \
    }
#define OKQ(in, path, q)                                                                           \
    {                                                                                              \
        in, path, q, NULL                                                                          \
    }
#define REFUSED(in, reason)                                                                        \
    {                                                                                              \
        in, NULL, NULL, reason                                                                     \
    }

static const struct norm_case cases[] = {
    /* plain paths stay as they are */
    OK("/", "/"),
    OK("/api", "/api"),
    OK("/api/", "/api/"),
    OK("/api/v1/users", "/api/v1/users"),
    OK("/a:b@c!$&'()*+,;=", "/a:b@c!$&'()*+,;="),
    /* query split off, kept byte for byte */
    OKQ("/api?x=1", "/api", "x=1"),
    OKQ("/api?", "/api", ""),
    OKQ("/?a=%2F&b=%2e%2e/..//", "/", "a=%2F&b=%2e%2e/..//"),
    OKQ("/a?b?c", "/a", "b?c"),
    OKQ("/a?x=caf\xc3\xa9", "/a", "x=caf\xc3\xa9"),
    /* "//" collapses, a trailing '/' stays */
    OK("//", "/"),
    OK("//a//b", "/a/b"),
    OK("/a///", "/a/"),
    /* dot-segments */
    OK("/.", "/"),
    OK("/./", "/"),
    OK("/a/.", "/a/"),
    OK("/a/./b", "/a/b"),
    OK("/a/..", "/"),
    OK("/a/../", "/"),
    OK("/a/b/..", "/a/"),
    OK("/a/b/../c", "/a/c"),
    OK("/a/./b/../../c/", "/c/"),
    OK("/a/.../b", "/a/.../b"),
    OK("/a/..b/.c/b..", "/a/..b/.c/b.."),
    REFUSED("/..", "'..' above the root"),
    REFUSED("/../a", "'..' above the root"),
    REFUSED("/a/../..", "'..' above the root"),
    REFUSED("/a/b/c/../../../..", "'..' above the root"),
    /* encoded dots are dots: decoded once, then resolved */
    REFUSED("/%2e", "percent-encoded dot-segment in path"),
    REFUSED("/api/%2e%2e/admin", "percent-encoded dot-segment in path"),
    REFUSED("/api/%2E%2E/admin", "percent-encoded dot-segment in path"),
    REFUSED("/api/.%2e/x", "percent-encoded dot-segment in path"),
    REFUSED("/api/%2e./x", "percent-encoded dot-segment in path"),
    REFUSED("/a/%2e/b", "percent-encoded dot-segment in path"),
    REFUSED("/%2e%2e", "percent-encoded dot-segment in path"),
    REFUSED("/%2e%2e/etc/passwd", "percent-encoded dot-segment in path"),
    REFUSED("/..", "'..' above the root"),
    OK("/api/../admin", "/admin"),
    OK("/a/./b", "/a/b"),
    /* dot-segments with parameters (servlet containers strip them) */
    REFUSED("/api/..;/admin", "dot-segment with parameters in path"),
    REFUSED("/api/.;x/admin", "dot-segment with parameters in path"),
    REFUSED("/api/%2e%2e;/admin", "dot-segment with parameters in path"),
    OK("/api/..a;/admin", "/api/..a;/admin"),
    OK("/api/x;..", "/api/x;.."),
    OK("/api/%2e%2e%3B/admin", "/api/..%3B/admin"),
    /* double encoding: decoded once, "%25" stays encoded */
    OK("/%252e%252e/x", "/%252e%252e/x"),
    OK("/a%25", "/a%25"),
    OK("/%252f", "/%252f"),
    OK("/%255c", "/%255c"),
    OK("/%2500", "/%2500"),
    /* unreserved characters decoded, uppercase or lowercase hex */
    OK("/%41%42%43%61%7a%30%39", "/ABCaz09"),
    OK("/%7euser/%7Ex", "/~user/~x"),
    OK("/a%2db%5fc", "/a-b_c"),
    /* reserved and other characters stay encoded, uppercase hex */
    OK("/a%3fb", "/a%3Fb"),
    OK("/a%3Fb", "/a%3Fb"),
    OK("/a%23b", "/a%23b"),
    OK("/a%2bb", "/a%2Bb"),
    OK("/a%3bb", "/a%3Bb"),
    OK("/a%40b", "/a%40b"),
    OK("/a%20b", "/a%20b"),
    OK("/caf%c3%a9", "/caf%C3%A9"),
    /* raw bytes outside pchar are encoded */
    OK("/caf\xc3\xa9", "/caf%C3%A9"),
    OK("/{x}|[y]^`\"<>", "/%7Bx%7D%7C%5By%5D%5E%60%22%3C%3E"),
    /* npm scoped names keep their encoded '/' as sent */
    OK("/@types%2fnode", "/@types%2fnode"),
    OK("/@types%2Fnode", "/@types%2Fnode"),
    OK("/@babel%2fcore/-/core-7.0.0.tgz", "/@babel%2fcore/-/core-7.0.0.tgz"),
    OK("/-/package/@scope%2fname/dist-tags", "/-/package/@scope%2fname/dist-tags"),
    OK("/@my.scope%2fname_x", "/@my.scope%2fname_x"),
    OK("/@types%2f%6eode", "/@types%2fnode"),
    OK("/@types/node", "/@types/node"),
    REFUSED("/@types%2fnode%2fx", "encoded '/' in path"),
    REFUSED("/@%2fnode", "encoded '/' in path"),
    REFUSED("/@types%2f", "encoded '/' in path"),
    REFUSED("/@types%2f..", "encoded '/' in path"),
    REFUSED("/@types%2f.x", "encoded '/' in path"),
    REFUSED("/@ty%40pes%2fnode", "encoded '/' in path"),
    REFUSED("/x@types%2fnode", "encoded '/' in path"),
    REFUSED("/@types%2fno:de", "encoded '/' in path"),
    /* encoded '/' elsewhere */
    REFUSED("/a%2fb", "encoded '/' in path"),
    REFUSED("/a%2Fb", "encoded '/' in path"),
    REFUSED("/%2f", "encoded '/' in path"),
    REFUSED("/..%2f..%2fetc", "encoded '/' in path"),
    /* backslash */
    REFUSED("/a\\b", "backslash in path"),
    REFUSED("/a%5cb", "backslash in path"),
    REFUSED("/a%5Cb", "backslash in path"),
    REFUSED("/..%5c..%5cwindows", "backslash in path"),
    /* %00 anywhere */
    REFUSED("/a%00", "%00 in request target"),
    REFUSED("/a?x=%00", "%00 in request target"),
    /* invalid escapes anywhere */
    REFUSED("/a%", "invalid percent-escape"),
    REFUSED("/a%2", "invalid percent-escape"),
    REFUSED("/a%zz", "invalid percent-escape"),
    REFUSED("/a%%41", "invalid percent-escape"),
    REFUSED("/a?q=100%", "invalid percent-escape"),
    REFUSED("/a?q=%g0", "invalid percent-escape"),
    /* control characters, raw anywhere, encoded in the path */
    REFUSED("/a\tb", "control character in request target"),
    REFUSED("/a b", "control character in request target"),
    REFUSED("/a\x7f", "control character in request target"),
    REFUSED("/a?x=a b", "control character in request target"),
    REFUSED("/a?x=\r\n", "control character in request target"),
    REFUSED("/a%0d%0aSet-Cookie:x", "encoded control character in path"),
    REFUSED("/a%09", "encoded control character in path"),
    REFUSED("/a%7F", "encoded control character in path"),
    /* fragments */
    REFUSED("/a#frag", "fragment in request target"),
    REFUSED("/a?x#frag", "fragment in request target"),
    OK("/a%23frag", "/a%23frag"),
    /* origin form only */
    REFUSED("", "request target is not an absolute path"),
    REFUSED("*", "request target is not an absolute path"),
    REFUSED("a/b", "request target is not an absolute path"),
    REFUSED("http://example.com/", "request target is not an absolute path"),
    REFUSED("?x", "request target is not an absolute path"),
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(cases); i++) {
        const struct norm_case *c = &cases[i];
        struct buf out;
        struct slice q = {"untouched", 9};
        const char *reason = NULL;
        int r;

        buf_init(&out, 0);
        r = path_normalize(c->in, strlen(c->in), &out, &q, &reason);
        if (c->path) {
            if (r != 0)
                fail_msg("'%s': refused (%s), want '%s'", c->in, reason, c->path);
            if (strcmp(buf_cstr(&out), c->path) != 0)
                fail_msg("'%s': got '%s', want '%s'", c->in, buf_cstr(&out), c->path);
            if (c->query) {
                assert_non_null(q.ptr);
                if (q.len != strlen(c->query) || memcmp(q.ptr, c->query, q.len) != 0)
                    fail_msg("'%s': query '%.*s', want '%s'", c->in, (int)q.len, q.ptr, c->query);
            } else {
                assert_null(q.ptr);
                assert_int_equal(q.len, 0);
            }
            /* idempotent */
            struct buf again;
            struct slice q2;
            buf_init(&again, 0);
            assert_int_equal(path_normalize(out.data, out.len, &again, &q2, &reason), 0);
            assert_string_equal(buf_cstr(&again), c->path);
            buf_release(&again);
        } else {
            if (r != BD_E_INVAL)
                fail_msg("'%s': got %d ('%s'), want refusal '%s'", c->in, r, buf_cstr(&out),
                         c->reason);
            if (!reason || strcmp(reason, c->reason) != 0)
                fail_msg("'%s': reason '%s', want '%s'", c->in, reason ? reason : "(null)",
                         c->reason);
            /* outputs untouched on failure */
            assert_null(out.data);
            assert_int_equal(q.len, 9);
        }
        buf_release(&out);
    }
}

static void test_nul_and_length(void **state)
{
    struct buf out;
    struct slice q;
    const char *reason = NULL;
    static const char with_nul[] = "/a\0b";

    (void)state;
    buf_init(&out, 0);
    assert_int_equal(path_normalize(with_nul, sizeof(with_nul) - 1, &out, &q, &reason), BD_E_INVAL);
    assert_string_equal(reason, "control character in request target");
    /* not NUL-terminated: only len bytes are read */
    assert_int_equal(path_normalize("/abc/def", 4, &out, &q, &reason), 0);
    assert_string_equal(buf_cstr(&out), "/abc");
    buf_release(&out);

    /* the output cap: "/\xff" grows to "/%FF" */
    buf_init(&out, 3);
    assert_int_equal(path_normalize("/\xff", 2, &out, &q, &reason), BD_E_TOO_BIG);
    assert_string_equal(reason, "path too long");
    buf_release(&out);
    buf_init(&out, 4);
    assert_int_equal(path_normalize("/\xff", 2, &out, &q, &reason), 0);
    assert_string_equal(buf_cstr(&out), "/%FF");
    buf_release(&out);
}

static void test_replaces_previous_contents(void **state)
{
    struct buf out;
    struct slice q;
    const char *reason;

    (void)state;
    buf_init(&out, 0);
    buf_puts(&out, "old contents");
    assert_int_equal(path_normalize("/new", 4, &out, &q, &reason), 0);
    assert_string_equal(buf_cstr(&out), "/new");
    assert_int_equal(path_normalize("/bad%2f", 7, &out, &q, &reason), BD_E_INVAL);
    assert_string_equal(buf_cstr(&out), "/new");
    assert_int_equal(path_normalize("/x", 2, &out, &q, NULL), 0);
    buf_release(&out);
}

/* Deep dot-segment chains stay linear and correct. */
static void test_deep(void **state)
{
    struct buf in, out;
    struct slice q;
    const char *reason;

    (void)state;
    buf_init(&in, 0);
    buf_init(&out, 0);
    for (int i = 0; i < 10000; i++)
        buf_puts(&in, "/abc");
    for (int i = 0; i < 10000; i++)
        buf_puts(&in, "/..");
    assert_int_equal(path_normalize(in.data, in.len, &out, &q, &reason), 0);
    assert_string_equal(buf_cstr(&out), "/");
    buf_puts(&in, "/..");
    assert_int_equal(path_normalize(in.data, in.len, &out, &q, &reason), BD_E_INVAL);
    buf_release(&in);
    buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_nul_and_length),
        cmocka_unit_test(test_replaces_previous_contents),
        cmocka_unit_test(test_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_host.c - route host normalisation, IP literal refusal and wildcard
 * matching, as a manifest author sees them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host.h"
#include "xalloc.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

struct norm_case {
    const char *in;
    int wildcard;     /* allow_wildcard */
    int err;          /* expected result */
    const char *want; /* when err == HOST_OK */
};

static const struct norm_case norm_cases[] = {
    /* IDNA and case */
    {"Bücher.example", 0, HOST_OK, "xn--bcher-kva.example"},
    {"BÜCHER.example", 0, HOST_OK, "xn--bcher-kva.example"},
    {"faß.de", 0, HOST_OK, "xn--fa-hia.de"}, /* non-transitional: ß kept */
    {"EXAMPLE.COM", 0, HOST_OK, "example.com"},
    {"api.anthropic.com", 0, HOST_OK, "api.anthropic.com"},
    {"XN--BCHER-KVA.example", 0, HOST_OK, "xn--bcher-kva.example"},
    {"ümlaut\xe3\x80\x82"
     "de",
     0, HOST_OK, "xn--mlaut-jva.de"}, /* ideographic full stop */
    {"r3---sn-abc.googlevideo.com", 0, HOST_OK, "r3---sn-abc.googlevideo.com"},
    {"a1.b-2.c", 0, HOST_OK, "a1.b-2.c"},
    {"localhost", 0, HOST_OK, "localhost"},
    {"xn--zz.example", 0, HOST_E_IDNA, NULL},
    {"xn--abc.com", 0, HOST_E_IDNA, NULL},
    {"ex\xff.com", 0, HOST_E_IDNA, NULL},
    /* trailing dot */
    {"example.com.", 0, HOST_OK, "example.com"},
    {"example.com..", 0, HOST_E_BAD_LABEL, NULL},
    {".", 0, HOST_E_EMPTY, NULL},
    {"", 0, HOST_E_EMPTY, NULL},
    /* labels */
    {"a_b.com", 0, HOST_E_BAD_LABEL, NULL},
    {"-a.com", 0, HOST_E_BAD_LABEL, NULL},
    {"a-.com", 0, HOST_E_BAD_LABEL, NULL},
    {"a..b.com", 0, HOST_E_BAD_LABEL, NULL},
    {".example.com", 0, HOST_E_BAD_LABEL, NULL},
    {"exa mple.com", 0, HOST_E_BAD_LABEL, NULL},
    {"example.com:443", 0, HOST_E_BAD_LABEL, NULL},
    {"user@example.com", 0, HOST_E_BAD_LABEL, NULL},
    {"example.com/path", 0, HOST_E_BAD_LABEL, NULL},
    /* IP literals, in every spelling a resolver or URL parser accepts */
    {"127.0.0.1", 0, HOST_E_IP_LITERAL, NULL},
    {"127.0.0.1.", 0, HOST_E_IP_LITERAL, NULL},
    {"127.1", 0, HOST_E_IP_LITERAL, NULL},
    {"0x7f.0.0.1", 0, HOST_E_IP_LITERAL, NULL},
    {"0X7F.1", 0, HOST_E_IP_LITERAL, NULL},
    {"0177.0.0.1", 0, HOST_E_IP_LITERAL, NULL},
    {"2130706433", 0, HOST_E_IP_LITERAL, NULL},
    {"0x7f000001", 0, HOST_E_IP_LITERAL, NULL},
    {"169.254.169.254", 0, HOST_E_IP_LITERAL, NULL},
    {"::1", 0, HOST_E_IP_LITERAL, NULL},
    {"[::1]", 0, HOST_E_IP_LITERAL, NULL},
    {"[fe80::1%eth0]", 0, HOST_E_IP_LITERAL, NULL},
    {"2001:db8::1", 0, HOST_E_IP_LITERAL, NULL},
    {"::ffff:10.0.0.1", 0, HOST_E_IP_LITERAL, NULL},
    {"[127.0.0.1]", 0, HOST_E_IP_LITERAL, NULL},
    {"\xef\xbc\x91\xef\xbc\x92\xef\xbc\x97.\xef\xbc\x90.\xef\xbc\x90.\xef\xbc\x91", 0,
     HOST_E_IP_LITERAL, NULL}, /* full-width digits */
    {"*.127.0.0.1", 1, HOST_E_IP_LITERAL, NULL},
    /* numeric last label */
    {"1.2.3.999", 0, HOST_E_NUMERIC_TLD, NULL},
    {"example.123", 0, HOST_E_NUMERIC_TLD, NULL},
    {"example.0x1f", 0, HOST_E_NUMERIC_TLD, NULL},
    {"1.2.3.4.5", 0, HOST_E_NUMERIC_TLD, NULL},
    {"123.example", 0, HOST_OK, "123.example"},
    /* wildcards */
    {"*.Example.COM", 1, HOST_OK, "*.example.com"},
    {"*.bücher.example", 1, HOST_OK, "*.xn--bcher-kva.example"},
    {"*.a.b.example.com", 1, HOST_OK, "*.a.b.example.com"},
    {"*.example.com.", 1, HOST_OK, "*.example.com"},
    {"*.example.com", 0, HOST_E_BAD_WILDCARD, NULL},
    {"*.com", 1, HOST_E_BAD_WILDCARD, NULL},
    {"*", 1, HOST_E_BAD_WILDCARD, NULL},
    {"*.", 1, HOST_E_BAD_WILDCARD, NULL},
    {"**.example.com", 1, HOST_E_BAD_WILDCARD, NULL},
    {"*.*.example.com", 1, HOST_E_BAD_WILDCARD, NULL},
    {"a.*.example.com", 1, HOST_E_BAD_WILDCARD, NULL},
    {"*example.com", 1, HOST_E_BAD_WILDCARD, NULL},
    {"example.*", 1, HOST_E_BAD_WILDCARD, NULL},
};

static void test_normalize_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(norm_cases); i++) {
        const struct norm_case *c = &norm_cases[i];
        char *sentinel = (char *)"untouched";
        char *out = sentinel;
        int r = host_normalize(c->in, strlen(c->in), c->wildcard, &out);

        if (r != c->err)
            fail_msg("'%s': got %d (%s), want %d (%s)", c->in, r, host_strerror(r), c->err,
                     host_strerror(c->err));
        if (c->err == HOST_OK) {
            assert_string_equal(out, c->want);
            free(out);
        } else {
            assert_ptr_equal(out, sentinel);
        }
    }
}

static char *repeat(char c, size_t n)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_label_and_name_lengths(void **state)
{
    (void)state;
    char *l63 = repeat('a', 63), *l64 = repeat('a', 64), *out = NULL;
    char *s = xasprintf("%s.example", l63);

    assert_int_equal(host_normalize(s, strlen(s), 0, &out), HOST_OK);
    assert_string_equal(out, s);
    free(out);
    free(s);
    s = xasprintf("%s.example", l64);
    assert_int_equal(host_normalize(s, strlen(s), 0, &out), HOST_E_BAD_LABEL);
    free(s);

    /* 3 * 64 + 61 = 253 bytes: the longest allowed name. */
    char *l61 = repeat('b', 61);
    s = xasprintf("%s.%s.%s.%s", l63, l63, l63, l61);
    assert_int_equal(strlen(s), 253);
    assert_int_equal(host_normalize(s, strlen(s), 0, &out), HOST_OK);
    free(out);
    free(s);
    char *l62 = repeat('b', 62);
    s = xasprintf("%s.%s.%s.%s", l63, l63, l63, l62);
    assert_int_equal(host_normalize(s, strlen(s), 0, &out), HOST_E_TOO_LONG);
    free(s);
    /* The "*." counts: the pattern must fit too. */
    s = xasprintf("*.%s.%s.%s.%s", l63, l63, l63, l61);
    assert_int_equal(host_normalize(s, strlen(s), 1, &out), HOST_E_TOO_LONG);
    free(s);
    /* Absurd input is refused before any work. */
    char *huge = repeat('a', 5000);
    assert_int_equal(host_normalize(huge, 5000, 0, &out), HOST_E_TOO_LONG);
    free(huge);
    free(l61);
    free(l62);
    free(l63);
    free(l64);
}

static void test_normalize_uses_len(void **state)
{
    (void)state;
    char *out = NULL;

    /* Not NUL-terminated: only len bytes count. */
    assert_int_equal(host_normalize("example.comXYZ", 11, 0, &out), HOST_OK);
    assert_string_equal(out, "example.com");
    free(out);
    assert_int_equal(host_normalize("exam\0ple.com", 12, 0, &out), HOST_E_BAD_LABEL);
    assert_int_equal(host_normalize(NULL, 0, 0, &out), HOST_E_EMPTY);
}

static void test_is_ip_literal(void **state)
{
    (void)state;
    static const char *const yes[] = {
        "127.0.0.1", "127.1", "0x7f.0.0.1",     "2130706433",     "10.0.0.1.",
        "::1",       "[::1]", "fe80::1%25eth0", "::ffff:1.2.3.4", "0",
    };
    static const char *const no[] = {
        "example.com",  "1.2.3.4.5", "256.1.1.1.1", "[example.com]", "[]",           "[", "",
        "1.2.3.4 junk", "::g",       "0x",          "abc",           "deadbeef.com",
    };
    for (size_t i = 0; i < N(yes); i++) {
        if (!host_is_ip_literal(yes[i], strlen(yes[i])))
            fail_msg("'%s' should be an IP literal", yes[i]);
    }
    for (size_t i = 0; i < N(no); i++) {
        if (host_is_ip_literal(no[i], strlen(no[i])))
            fail_msg("'%s' should not be an IP literal", no[i]);
    }
    assert_true(host_is_ip_literal("127.0.0.1:8080", 9));
}

static void test_pattern_match(void **state)
{
    (void)state;
    assert_true(host_pattern_match("*.example.com", "a.example.com"));
    assert_true(host_pattern_match("*.example.com", "a.b.example.com"));
    assert_false(host_pattern_match("*.example.com", "example.com"));
    assert_false(host_pattern_match("*.example.com", "badexample.com"));
    assert_false(host_pattern_match("*.example.com", ".example.com"));
    assert_false(host_pattern_match("*.example.com", "example.com.evil"));
    assert_true(host_pattern_match("example.com", "example.com"));
    assert_false(host_pattern_match("example.com", "a.example.com"));
    assert_false(host_pattern_match("example.com", "example.co"));
    assert_false(host_pattern_match(NULL, "example.com"));
    assert_false(host_pattern_match("example.com", NULL));
}

/* The route a host would be sent to: the best-scoring matching pattern. */
static const char *pick(const char *const *patterns, size_t n, const char *host)
{
    const char *best = NULL;
    size_t best_score = 0;

    for (size_t i = 0; i < n; i++) {
        if (!host_pattern_match(patterns[i], host))
            continue;
        size_t score = host_match_specificity(patterns[i]);
        if (!best || score > best_score) {
            best = patterns[i];
            best_score = score;
        }
    }
    return best;
}

static void test_specificity(void **state)
{
    (void)state;
    static const char *const routes[] = {
        "*.example.com",
        "*.api.example.com",
        "api.example.com",
        "*.b.api.example.com",
    };

    assert_string_equal(pick(routes, N(routes), "api.example.com"), "api.example.com");
    assert_string_equal(pick(routes, N(routes), "v1.api.example.com"), "*.api.example.com");
    assert_string_equal(pick(routes, N(routes), "a.b.api.example.com"), "*.b.api.example.com");
    assert_string_equal(pick(routes, N(routes), "www.example.com"), "*.example.com");
    assert_null(pick(routes, N(routes), "example.com"));
    /* An exact name beats any wildcard, however long the wildcard is. */
    assert_true(host_match_specificity("x.io") >
                host_match_specificity("*.a.very.long.suffix.that.keeps.going.example.com"));
    assert_true(host_match_specificity("*.b.example.com") >
                host_match_specificity("*.example.com"));
}

static void test_strerror(void **state)
{
    (void)state;
    static const int codes[] = {HOST_E_EMPTY,      HOST_E_IP_LITERAL, HOST_E_BAD_WILDCARD,
                                HOST_E_BAD_LABEL,  HOST_E_TOO_LONG,   HOST_E_IDNA,
                                HOST_E_NUMERIC_TLD};
    assert_string_equal(host_strerror(HOST_E_IP_LITERAL), "IP literals are not allowed");
    for (size_t i = 0; i < N(codes); i++) {
        const char *s = host_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, host_strerror(codes[j]));
    }
    assert_non_null(host_strerror(-1000));
}

/* Secret bindings (manifest.md, Secrets): exact, suffix, same-wildcard, "*". */
static void test_binding_covers(void **state)
{
    (void)state;
    const char *const exact[] = {"api.example.com"};
    const char *const suffix[] = {"*.example.com"};
    const char *const any[] = {"*"};
    const char *const two[] = {"a.test", "*.b.test"};

    assert_true(host_binding_covers(exact, 1, "api.example.com"));
    assert_false(host_binding_covers(exact, 1, "x.api.example.com"));
    assert_false(host_binding_covers(exact, 1, "*.example.com"));
    assert_true(host_binding_covers(suffix, 1, "api.example.com"));
    assert_true(host_binding_covers(suffix, 1, "a.b.example.com"));
    assert_false(host_binding_covers(suffix, 1, "example.com"));
    assert_false(host_binding_covers(suffix, 1, "badexample.com"));
    /* a wildcard route needs the same wildcard, not a wider one */
    assert_true(host_binding_covers(suffix, 1, "*.example.com"));
    assert_false(host_binding_covers(suffix, 1, "*.x.example.com"));
    assert_true(host_binding_covers(any, 1, "*.anything.test"));
    assert_true(host_binding_covers(any, 1, "host.test"));
    assert_true(host_binding_covers(two, 2, "c.b.test"));
    assert_false(host_binding_covers(two, 2, "b.test"));
    assert_false(host_binding_covers(two, 0, "a.test"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_table),    cmocka_unit_test(test_label_and_name_lengths),
        cmocka_unit_test(test_normalize_uses_len), cmocka_unit_test(test_is_ip_literal),
        cmocka_unit_test(test_pattern_match),      cmocka_unit_test(test_specificity),
        cmocka_unit_test(test_strerror),           cmocka_unit_test(test_binding_covers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

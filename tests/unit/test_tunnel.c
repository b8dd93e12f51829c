/*
 * test_tunnel.c - sidecar-proxy/tunnel.c: which CONNECT is a raw tunnel
 * (exact host and port, the Bearer token whose SHA-256 the entry holds),
 * the verdicts for a missing, wrong, duplicated or non-Bearer credential,
 * and tunnel_kept() across reloads.  Entries come from the real loader
 * (pconf_parse_json), so the hex digest parsing is covered too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "diag.h"
#include "hash.h"
#include "pconf.h"
#include "tunnel.h"
#include "xalloc.h"

#define TOKEN "gate-token-0123456789abcdef"

static struct pconf *load(const char *tunnels_json)
{
    char *routes = xasprintf("{\"version\":1,\"bottle\":\"b\",\"routes\":[],\"dns\":null,"
                             "\"hosts\":[],\"allow_private\":[]%s%s}",
                             tunnels_json ? ",\"tunnels\":" : "", tunnels_json ? tunnels_json : "");
    static const char secrets[] = "{\"version\":1,\"secrets\":[]}";
    struct diag_list d;
    diag_list_init(&d);
    struct pconf *c = NULL;
    int r = pconf_parse_json("routes.json", routes, strlen(routes), "secrets.json", secrets,
                             sizeof(secrets) - 1, &d, &c);
    for (size_t i = 0; r < 0 && i < d.n; i++)
        fprintf(stderr, "%s\n", d.v[i].msg);
    assert_int_equal(r, 0);
    diag_list_release(&d);
    free(routes);
    return c;
}

static struct pconf *load_token(const char *token)
{
    char hex[SHA256_HEX_LEN + 1];
    sha256_hex(token, strlen(token), hex);
    char *t = xasprintf("[{\"host\":\"git.example.com\",\"port\":22,\"token_sha256\":\"%s\"},"
                        "{\"host\":\"git.example.com\",\"port\":2222,\"token_sha256\":\"%s\"}]",
                        hex, hex);
    struct pconf *c = load(t);
    free(t);
    return c;
}

static struct http_header H(const char *name, const char *value) {
    return (struct http_header){slice_from_cstr(name), slice_from_cstr(value)};
}

static void
test_find(void **state)
{
    (void)state;
    struct pconf *c = load_token(TOKEN);
    assert_int_equal(c->n_tunnels, 2);
    assert_non_null(tunnel_find(c, "git.example.com", 22));
    assert_int_equal(tunnel_find(c, "git.example.com", 2222)->port, 2222);
    assert_null(tunnel_find(c, "git.example.com", 443));
    assert_null(tunnel_find(c, "example.com", 22));
    assert_null(tunnel_find(c, "x.git.example.com", 22));
    pconf_unref(c);
    c = load(NULL);
    assert_int_equal(c->n_tunnels, 0);
    assert_null(tunnel_find(c, "git.example.com", 22));
    pconf_unref(c);
}

struct verdict_case {
    const char *what;
    const char *host;
    int port;
    struct http_header hdrs[3];
    size_t n;
    enum tunnel_verdict want;
};

static void test_check(void **state)
{
    (void)state;
    struct pconf *c = load_token(TOKEN);
    const struct verdict_case cases[] = {
        {"token", "git.example.com", 22, {H("Proxy-Authorization", "Bearer " TOKEN)}, 1, TUNNEL_OK},
        {"scheme any case, extra spaces",
         "git.example.com",
         2222,
         {H("host", "git.example.com:2222"), H("proxy-authorization", "bEaReR   " TOKEN)},
         2,
         TUNNEL_OK},
        {"no header", "git.example.com", 22, {H("Host", "git.example.com:22")}, 1, TUNNEL_NO_TOKEN},
        {"Basic is no token",
         "git.example.com",
         22,
         {H("Proxy-Authorization", "Basic dXNlcjpwYXNz")},
         1,
         TUNNEL_NO_TOKEN},
        {"Bearer without a token",
         "git.example.com",
         22,
         {H("Proxy-Authorization", "Bearer")},
         1,
         TUNNEL_NO_TOKEN},
        {"Authorization is not Proxy-Authorization",
         "git.example.com",
         22,
         {H("Authorization", "Bearer " TOKEN)},
         1,
         TUNNEL_NO_TOKEN},
        {"wrong token",
         "git.example.com",
         22,
         {H("Proxy-Authorization", "Bearer " TOKEN "x")},
         1,
         TUNNEL_BAD_TOKEN},
        {"prefix of the token",
         "git.example.com",
         22,
         {H("Proxy-Authorization", "Bearer gate-token")},
         1,
         TUNNEL_BAD_TOKEN},
        {"BearerTOKEN (no space)",
         "git.example.com",
         22,
         {H("Proxy-Authorization", "Bearer" TOKEN)},
         1,
         TUNNEL_NO_TOKEN},
        {"two fields, one right",
         "git.example.com",
         22,
         {H("Proxy-Authorization", "Bearer " TOKEN), H("Proxy-Authorization", "Bearer x")},
         2,
         TUNNEL_BAD_TOKEN},
        {"the right token and a Basic field",
         "git.example.com",
         22,
         {H("Proxy-Authorization", "Basic eA=="), H("Proxy-Authorization", "Bearer " TOKEN)},
         2,
         TUNNEL_BAD_TOKEN},
        {"another port",
         "git.example.com",
         23,
         {H("Proxy-Authorization", "Bearer " TOKEN)},
         1,
         TUNNEL_NONE},
        {"another host",
         "example.com",
         22,
         {H("Proxy-Authorization", "Bearer " TOKEN)},
         1,
         TUNNEL_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct pconf_tunnel *t = (const void *)1;
        enum tunnel_verdict v =
            tunnel_check(c, cases[i].host, cases[i].port, cases[i].hdrs, cases[i].n, &t);
        if (v != cases[i].want)
            fail_msg("%s: verdict %d, want %d", cases[i].what, v, cases[i].want);
        if ((t == NULL) != (cases[i].want == TUNNEL_NONE))
            fail_msg("%s: entry %p", cases[i].what, (const void *)t);
    }
    pconf_unref(c);
}

static void test_kept(void **state)
{
    (void)state;
    struct pconf *old = load_token(TOKEN), *same = load_token(TOKEN),
                 *rotated = load_token(TOKEN "-2"), *none = load(NULL);
    const struct pconf_tunnel *t = tunnel_find(old, "git.example.com", 22);
    assert_true(tunnel_kept(same, "git.example.com", 22, t->token_sha256));
    assert_false(tunnel_kept(rotated, "git.example.com", 22, t->token_sha256));
    assert_false(tunnel_kept(none, "git.example.com", 22, t->token_sha256));
    assert_false(tunnel_kept(same, "git.example.com", 23, t->token_sha256));
    pconf_unref(old);
    pconf_unref(same);
    pconf_unref(rotated);
    pconf_unref(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_gatestatus.c - the gate's status file parser (reconciler/gatestatus.c),
 * deploy key titles (deploykeys.h) and the gate's tunnel token (render.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "deploykeys.h"
#include "err.h"
#include "gatestatus.h"
#include "render.h"
#include "xalloc.h"

#define HK "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFZHv0KzwIz/wqv7TTr0JoJdTJRGABs1vK89dGYFaKTf"

static int parse(const char *s, struct gate_status *g)
{
    return gate_status_parse(s, strlen(s), g);
}

static void test_status_good(void **state)
{
    (void)state;
    struct gate_status g;
    assert_int_equal(parse("{\"auth_failures\": [{\"repo\": \"app\", \"at\": 1700000000, "
                           "\"message\": \"Permission denied (publickey)\"}, {\"repo\": \"app\", "
                           "\"at\": 1700000100, \"message\": \"x\"}],"
                           " \"learned_host_keys\": [{\"repo\": \"app\", \"host_key\": \"" HK
                           " root@host\"}], \"other\": 1}",
                           &g),
                     0);
    assert_int_equal(g.n_auth, 2);
    assert_int_equal(gate_status_auth_at(&g, "app"), 1700000100);
    assert_int_equal(gate_status_auth_at(&g, "lib"), 0);
    assert_int_equal(g.n_keys, 1);
    assert_string_equal(g.keys[0].repo, "app");
    assert_string_equal(g.keys[0].host_key, HK); /* comment dropped */
    gate_status_release(&g);
    assert_int_equal(parse("{}", &g), 0);
    assert_int_equal(g.n_auth + g.n_keys, 0);
    gate_status_release(&g);
}

static void test_status_hostile(void **state)
{
    (void)state;
    struct gate_status g;
    assert_int_equal(parse("[1]", &g), BD_E_PROTO);
    assert_int_equal(parse("{\"auth_failures\": [", &g), BD_E_PROTO);
    assert_int_equal(parse("", &g), BD_E_PROTO);
    char *big = xcalloc(GATE_STATUS_MAX + 2, 1);
    memset(big, ' ', GATE_STATUS_MAX + 1);
    assert_int_equal(gate_status_parse(big, GATE_STATUS_MAX + 1, &g), BD_E_TOO_BIG);
    free(big);
    /* entries that fail a check are skipped, the rest kept */
    assert_int_equal(
        parse(
            "{\"auth_failures\": [{\"repo\": \"../etc\", \"at\": 1}, {\"repo\": \"a\", \"at\": -5},"
            " {\"repo\": \"a\", \"at\": \"now\"}, {\"repo\": \"b\", \"at\": 7}],"
            " \"learned_host_keys\": [{\"repo\": \"a\", \"host_key\": \"ssh-dss "
            "AAAAB3NzaC1kc3MAAACBAP\"},"
            " {\"repo\": \"a\", \"host_key\": \"ssh-ed25519 AAAA\\nevil\"},"
            " {\"repo\": \"a\", \"host_key\": \"ssh-ed25519 short\"},"
            " {\"repo\": \"a b\", \"host_key\": \"" HK "\"}, {\"repo\": \"c\", \"host_key\": \"" HK
            "\"}]}",
            &g),
        0);
    assert_int_equal(g.n_auth, 1);
    assert_string_equal(g.auth[0].repo, "b");
    assert_int_equal(g.n_keys, 1);
    assert_string_equal(g.keys[0].repo, "c");
    gate_status_release(&g);
}

static void test_title_and_token(void **state)
{
    (void)state;
    char *t = dk_title("0123456789ab", "web", "app");
    assert_string_equal(t, "bottled:0123456789ab:web:app");
    free(t);

    unsigned char key[32];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)i;
    char tok[RENDER_GATE_TOKEN_LEN + 1];
    render_gate_token(key, sizeof(key), "web", tok);
    /* hex(HMAC-SHA256(key, "gate-tunnel\0" "web")) */
    unsigned char mac[32];
    unsigned int len = 0;
    static const unsigned char msg[] = "gate-tunnel\0web";
    assert_non_null(HMAC(EVP_sha256(), key, sizeof(key), msg, sizeof(msg) - 1, mac, &len));
    char want[65];
    for (unsigned i = 0; i < len; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    assert_string_equal(tok, want);
    char other[RENDER_GATE_TOKEN_LEN + 1];
    render_gate_token(key, sizeof(key), "web2", other);
    assert_string_not_equal(tok, other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_good),
        cmocka_unit_test(test_status_hostile),
        cmocka_unit_test(test_title_and_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_render.c - render_bottle()'s generation, loaded by the sidecar's own
 * loader (pconf_load), the config hash's properties, failing bottles, knobs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "err.h"
#include "loader.h"
#include "pconf.h"
#include "render.h"
#include "secrets.h"
#include "xalloc.h"

#define EXAMPLES TEST_DATA_DIR "/../../examples"
#define V_CLAUDE "claude-VALUE-\"quoted\\back\"-7a1"
#define V_GITEA  "gitea-VALUE-=x=-2b9"

static char tmpdir[] = "/tmp/test_render.XXXXXX";
static char *ca_cert, *ca_key;
static struct manifest_set set;
static const unsigned char key1[] = "key-one", key2[] = "key-two";

static char *to_pem(X509 *x, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    if (x)
        assert_int_equal(PEM_write_bio_X509(b, x), 1);
    else
        assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    long n = BIO_get_mem_data(b, &p);
    char *s = xstrndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

static void make_ca(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"test-ca", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign");
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    ca_cert = to_pem(x, NULL);
    ca_key = to_pem(NULL, k);
    X509_free(x);
    EVP_PKEY_free(k);
}

static char *write_file(const char *name, const char *data, size_t len, mode_t mode)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static struct secret_store *store_from(const char *text)
{
    char *path = write_file("secrets", text, strlen(text), 0600);
    struct diag_list d;
    diag_list_init(&d);
    struct secret_store *s = NULL;
    assert_int_equal(secret_store_load(path, 1, NULL, 0, &d, &s), 0);
    diag_list_release(&d);
    unlink(path);
    free(path);
    return s;
}

static const struct bottle *bottle(const char *name)
{
    long i = manifest_set_find(&set, name);
    assert_true(i >= 0);
    assert_non_null(set.bottles[i]);
    return set.bottles[i];
}

static struct render_output *render(const char *name, const struct secret_store *s,
                                    const struct render_knobs *k, const unsigned char *key,
                                    const struct render_ca *ca)
{
    struct diag_list d;
    diag_list_init(&d);
    struct render_output *r = NULL;
    int rc = render_bottle(bottle(name), s, k, key, strlen((const char *)key), ca, &d, &r);
    if (rc)
        fail_msg("render %s: %s: %s", name, bd_strerror(rc), d.n ? d.v[0].msg : "");
    diag_list_release(&d);
    return r;
}

static void test_generation_loads(void **state)
{
    (void)state;
    struct secret_store *s =
        store_from("CLAUDE_OAUTH_TOKEN@api.anthropic.com=" V_CLAUDE "\n"
                   "GITEA_TOKEN@gitea.example.com,*.example.com=" V_GITEA "\n");
    char *upstream = write_file("upstream.pem", ca_cert, strlen(ca_cert), 0644);
    struct diag_list d;
    diag_list_init(&d);
    struct render_knobs k;
    const char *hosts[] = {"pypi.org:2001:db8::1", "Gitea.Example.COM:192.168.1.10"};
    const char *priv[] = {"192.168.1.0/24", "fd00::/8", "192.168.1.0/24"};
    assert_int_equal(render_knobs_init(&k, "10.0.0.53", hosts, 2, priv, 3, upstream, &d), 0);
    struct render_ca ca = {ca_cert, strlen(ca_cert), ca_key, strlen(ca_key)};
    struct render_output *r = render("tools", s, &k, key1, &ca);

    assert_int_equal(r->n_files, 6);
    const char *names[] = {"routes.json", "secrets.json",    "ca.pem",
                           "ca-key.pem",  "upstream-ca.pem", "MANIFEST"};
    const int private[] = {0, 1, 0, 1, 0, 1};
    char *gen = xasprintf("%s/cfg/gen-1", tmpdir);
    char *cfg = xasprintf("%s/cfg", tmpdir);
    assert_int_equal(mkdir(cfg, 0700), 0);
    assert_int_equal(mkdir(gen, 0700), 0);
    for (size_t i = 0; i < r->n_files; i++) {
        assert_string_equal(r->files[i].name, names[i]);
        assert_int_equal(r->files[i].private, private[i]);
        char *rel = xasprintf("cfg/gen-1/%s", r->files[i].name);
        free(write_file(rel, r->files[i].data, r->files[i].len, r->files[i].private ? 0600 : 0644));
        free(rel);
    }
    free(write_file("cfg/current", "gen-1\n", 6, 0644));

    struct pconf *c = NULL;
    int rc = pconf_load(cfg, NULL, &d, &c);
    if (rc)
        fail_msg("pconf_load: %s", d.n ? diag_format(&d.v[0]) : bd_strerror(rc));
    assert_string_equal(c->config_hash, r->config_hash);
    assert_string_equal(c->bottle, "tools");
    assert_int_equal(c->n_routes, 4);
    assert_int_equal(c->n_secrets, 2);
    assert_string_equal(c->secrets[0].name, "CLAUDE_OAUTH_TOKEN");
    assert_string_equal(c->secrets[0].value, V_CLAUDE); /* '"' and '\' escaped and back */
    assert_string_equal(c->secrets[1].value, V_GITEA);
    assert_int_equal(c->secrets[1].n_hosts, 2);
    assert_string_equal(c->dns_server, "10.0.0.53");
    assert_int_equal(c->n_hosts, 2);
    assert_string_equal(c->hosts[0].name, "gitea.example.com");
    assert_string_equal(c->hosts[0].ip, "192.168.1.10");
    assert_int_equal(c->n_allow_private, 2); /* de-duplicated */
    assert_non_null(c->upstream_ca_pem);
    for (size_t i = 0; i < c->n_routes; i++)
        if (c->routes[i].token_ref)
            assert_non_null(c->routes[i].secret);
    pconf_unref(c);

    /* secrets.json holds the values; the masked copy and MANIFEST do not. */
    assert_non_null(strstr(r->secrets_json, "gitea-VALUE-=x=-2b9"));
    assert_null(strstr(r->secrets_masked, "VALUE"));
    assert_null(strstr(r->manifest, "VALUE"));
    assert_null(strstr(r->routes_json, "VALUE"));

    render_output_free(r);
    render_knobs_release(&k);
    secret_store_free(s);
    diag_list_release(&d);
    unlink(upstream);
    free(upstream);
    static const char *const files[] = {"routes.json", "secrets.json",    "ca.pem",
                                        "ca-key.pem",  "upstream-ca.pem", "MANIFEST"};
    for (size_t i = 0; i < 6; i++) {
        char *p = xasprintf("%s/%s", gen, files[i]);
        unlink(p);
        free(p);
    }
    char *cur = xasprintf("%s/current", cfg);
    unlink(cur);
    free(cur);
    rmdir(gen);
    rmdir(cfg);
    free(gen);
    free(cfg);
}

static void test_hash(void **state)
{
    (void)state;
    struct secret_store *a = store_from("CLAUDE_OAUTH_TOKEN@api.anthropic.com=" V_CLAUDE "\n"
                                        "GITEA_TOKEN@gitea.example.com=" V_GITEA "\n");
    struct secret_store *reordered =
        store_from("# other order\n"
                   "UNUSED@example.org=whatever\n"
                   "GITEA_TOKEN@gitea.example.com=" V_GITEA "\n"
                   "CLAUDE_OAUTH_TOKEN@api.anthropic.com=" V_CLAUDE "\n");
    struct secret_store *rotated = store_from("CLAUDE_OAUTH_TOKEN@api.anthropic.com=" V_CLAUDE "\n"
                                              "GITEA_TOKEN@gitea.example.com=new-value\n");
    struct secret_store *rebound = store_from("CLAUDE_OAUTH_TOKEN@api.anthropic.com=" V_CLAUDE "\n"
                                              "GITEA_TOKEN@*=" V_GITEA "\n");
    struct render_output *r1 = render("tools", a, NULL, key1, NULL);
    struct render_output *r2 = render("tools", reordered, NULL, key1, NULL);
    struct render_output *r3 = render("tools", rotated, NULL, key1, NULL);
    struct render_output *r4 = render("tools", a, NULL, key2, NULL);
    struct render_output *r5 = render("tools", rebound, NULL, key1, NULL);
    assert_string_equal(r1->config_hash, r2->config_hash);
    assert_string_equal(r1->secrets_json, r2->secrets_json); /* unused secrets left out */
    assert_string_not_equal(r1->config_hash, r3->config_hash);
    assert_string_equal(r1->routes_json, r3->routes_json);
    assert_string_not_equal(r1->config_hash, r4->config_hash);
    assert_string_not_equal(r1->config_hash, r5->config_hash);
    /* Without CA files: routes.json, secrets.json, MANIFEST. */
    assert_int_equal(r1->n_files, 3);
    assert_non_null(strstr(r1->manifest, r1->config_hash));
    render_output_free(r1);
    render_output_free(r2);
    render_output_free(r3);
    render_output_free(r4);
    render_output_free(r5);
    secret_store_free(a);
    secret_store_free(reordered);
    secret_store_free(rotated);
    secret_store_free(rebound);
}

static void test_failing_bottle(void **state)
{
    (void)state;
    struct secret_store *s = store_from("CLAUDE_OAUTH_TOKEN@api.anthropic.com=" V_CLAUDE "\n"
                                        "GITEA_TOKEN@gitlab.example.com=" V_GITEA "\n");
    struct diag_list d;
    diag_list_init(&d);
    struct render_output *r = NULL;
    assert_int_equal(render_bottle(bottle("webapp"), s, NULL, key1, 7, NULL, &d, &r), BD_E_PARSE);
    assert_null(r);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.v[0].bottle, "webapp");
    assert_true(d.v[0].line > 0);
    assert_non_null(strstr(d.v[0].msg, "secret 'GITHUB_READ_TOKEN'"));
    diag_list_release(&d);

    diag_list_init(&d);
    assert_int_equal(render_bottle(bottle("tools"), s, NULL, key1, 7, NULL, &d, &r), BD_E_PARSE);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.v[0].msg, "secret 'GITEA_TOKEN' may not be used for host "
                                       "'gitea.example.com': outside its host binding"));
    for (size_t i = 0; i < d.n; i++) {
        char *t = diag_format(&d.v[i]);
        assert_null(strstr(t, "VALUE"));
        free(t);
    }
    diag_list_release(&d);
    secret_store_free(s);
}

static void test_knob_errors(void **state)
{
    (void)state;
    struct diag_list d;
    diag_list_init(&d);
    struct render_knobs k;
    const char *hosts[] = {"nocolon", "bad host:10.0.0.1", "a.example.com:999.1.1.1",
                           "b.example.com:10.0.0.1", "B.example.com:10.0.0.2"};
    const char *priv[] = {"10.0.0.1/8", "10.0.0.0/33", "10.0.0.0", "x/8", "fd00::/8"};
    assert_int_equal(render_knobs_init(&k, "10.0.0", hosts, 5, priv, 5, NULL, &d), BD_E_PARSE);
    assert_int_equal(d.n_errors, 1 + 4 + 4);
    diag_list_release(&d);

    diag_list_init(&d);
    char *notpem = write_file("notpem", "hello\n", 6, 0644);
    assert_int_equal(render_knobs_init(&k, NULL, NULL, 0, NULL, 0, notpem, &d), BD_E_PARSE);
    assert_int_equal(render_knobs_init(&k, NULL, NULL, 0, NULL, 0, "/nonexistent/ca.pem", &d),
                     BD_E_IO);
    unlink(notpem);
    free(notpem);
    diag_list_release(&d);

    diag_list_init(&d);
    const char *v6[] = {"2001:DB8:0:0::/32"};
    assert_int_equal(render_knobs_init(&k, "2001:DB8::0001", NULL, 0, v6, 1, NULL, &d), 0);
    assert_string_equal(k.dns, "2001:db8::1");
    assert_string_equal(k.allow_private[0], "2001:db8::/32");
    render_knobs_release(&k);
    diag_list_release(&d);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir))
        return -1;
    make_ca();
    struct diag_list d;
    diag_list_init(&d);
    int rc = manifest_set_load(&set, EXAMPLES, &d);
    diag_list_release(&d);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    manifest_set_release(&set);
    free(ca_cert);
    free(ca_key);
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generation_loads),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_failing_bottle),
        cmocka_unit_test(test_knob_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

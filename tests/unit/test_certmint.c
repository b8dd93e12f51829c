/*
 * test_certmint.c - leaf minting, the LRU cache and the CA signer process.
 *
 * CAs are made here with the OpenSSL API; leaves are checked the way a TLS
 * client checks them (X509_verify_cert, purpose SSL server, host name),
 * and once, when the openssl CLI is installed, by a real `openssl
 * s_client` handshake against a server using a minted leaf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "certmint.h"
#include "err.h"
#include "signer.h"
#include "xalloc.h"

/* ---- helpers ------------------------------------------------------------ */

struct ca {
    X509 *cert;
    EVP_PKEY *key;
    char *cert_pem, *key_pem;
};

static char *to_pem(X509 *x, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;
    long n;

    assert_non_null(b);
    if (x != NULL)
        assert_int_equal(PEM_write_bio_X509(b, x), 1);
    else
        assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(b, &p);
    char *s = xstrndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/* A self-signed CA valid from an hour ago for `seconds`. */
static void make_ca(struct ca *ca, const char *cn, int rsa, long seconds)
{
    ca->key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    assert_non_null(ca->key);
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), seconds);
    X509_set_pubkey(x, ca->key);
    add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(x, x, NID_subject_key_identifier, "hash");
    assert_true(X509_sign(x, ca->key, EVP_sha256()) > 0);
    ca->cert = x;
    ca->cert_pem = to_pem(x, NULL);
    ca->key_pem = to_pem(NULL, ca->key);
}

static void free_ca(struct ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca->cert_pem);
    free(ca->key_pem);
}

/* X509_verify_cert against ca alone, as a TLS client would for host. */
static int verify(X509 *ca, X509 *leaf, const char *host)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();

    assert_non_null(store);
    assert_non_null(ctx);
    assert_int_equal(X509_STORE_add_cert(store, ca), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
    assert_int_equal(X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER), 1);
    X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
    if (host != NULL)
        X509_VERIFY_PARAM_set1_host(p, host, 0);
    int ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok == 1;
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
    struct tm tm;

    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return timegm(&tm);
}

static struct certmint *new_cm(struct ca *ca, size_t cache_max, int timeout_ms)
{
    struct certmint_opts o = {.cache_max = cache_max, .signer_timeout_ms = timeout_ms};
    struct certmint *cm = NULL;

    assert_int_equal(certmint_new(ca->cert_pem, ca->key_pem, &o, &cm), 0);
    assert_non_null(cm);
    return cm;
}

/* ---- the leaf ----------------------------------------------------------- */

static void test_leaf_fields(void **state)
{
    (void)state;
    struct ca ca;
    X509 *leaf = NULL;

    make_ca(&ca, "bottle test CA", 0, 365L * 86400);
    struct certmint *cm = new_cm(&ca, 0, 0);
    time_t now = time(NULL);
    assert_int_equal(certmint_get(cm, "api.example.com", &leaf), 0);

    assert_true(verify(ca.cert, leaf, "api.example.com"));
    assert_false(verify(ca.cert, leaf, "other.example.com"));
    assert_int_equal(X509_check_host(leaf, "api.example.com", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_host(leaf, "example.com", 0, 0, NULL), 1);

    /* SAN: exactly one DNS name */
    GENERAL_NAMES *san = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    assert_non_null(san);
    assert_int_equal(sk_GENERAL_NAME_num(san), 1);
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, 0);
    assert_int_equal(gn->type, GEN_DNS);
    assert_int_equal(ASN1_STRING_length(gn->d.dNSName), 15);
    assert_memory_equal(ASN1_STRING_get0_data(gn->d.dNSName), "api.example.com", 15);
    GENERAL_NAMES_free(san);

    char cn[80];
    assert_int_equal(
        X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn)), 15);
    assert_string_equal(cn, "api.example.com");
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca.cert)), 0);

    /* not a CA; digitalSignature only; serverAuth */
    uint32_t fl = X509_get_extension_flags(leaf);
    assert_true(fl & EXFLAG_BCONS);
    assert_false(fl & EXFLAG_CA);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(leaf, NID_key_usage, &crit, NULL);
    assert_non_null(ku);
    assert_int_equal(crit, 1);
    ASN1_BIT_STRING_free(ku);
    assert_int_equal(X509_check_issued(ca.cert, leaf), X509_V_OK); /* names and AKID */
    assert_non_null(X509_get0_subject_key_id(leaf));
    assert_non_null(X509_get0_authority_key_id(leaf));

    /* validity: now - 1 h .. now + 7 d */
    time_t nb = asn1_to_time(X509_get0_notBefore(leaf));
    time_t na = asn1_to_time(X509_get0_notAfter(leaf));
    assert_true(nb <= now - 3600 + 5 && nb >= now - 3600 - 5);
    assert_true(na <= now + CERTMINT_VALIDITY_S + 5 && na >= now + CERTMINT_VALIDITY_S - 5);

    /* 128-bit positive serial; ECDSA-SHA256 by the CA; the leaf key is not the CA's */
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    assert_non_null(serial);
    assert_false(BN_is_negative(serial));
    assert_true(BN_num_bits(serial) > 120 && BN_num_bits(serial) <= 127);
    BN_free(serial);
    assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), certmint_leaf_key(cm)), 1);
    assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), ca.key), 1);
    assert_int_equal(X509_verify(leaf, ca.key), 1);

    /* two names, two serials, one leaf key */
    X509 *other = NULL;
    assert_int_equal(certmint_get(cm, "b.example.org", &other), 0);
    assert_int_not_equal(
        ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf), X509_get0_serialNumber(other)), 0);
    assert_true(verify(ca.cert, other, "b.example.org"));
    X509_free(other);
    X509_free(leaf);
    certmint_free(cm);
    free_ca(&ca);
}

static void test_long_name_rsa_ca_short_ca(void **state)
{
    (void)state;
    struct ca ca;
    X509 *leaf = NULL;
    /* 70 bytes: too long for a CN */
    const char *longname =
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbb.example";

    make_ca(&ca, "rsa CA expiring soon", 1, 2L * 86400);
    struct certmint *cm = new_cm(&ca, 0, 0);
    assert_int_equal(certmint_get(cm, longname, &leaf), 0);
    assert_true(verify(ca.cert, leaf, longname));
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
    int crit = -1;
    GENERAL_NAMES *san = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
    assert_non_null(san);
    assert_int_equal(crit, 1); /* empty subject: SAN must be critical */
    GENERAL_NAMES_free(san);
    assert_int_equal(X509_get_signature_nid(leaf), NID_sha256WithRSAEncryption);
    /* capped at the CA's notAfter */
    assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(leaf), X509_get0_notAfter(ca.cert)), 0);
    X509_free(leaf);
    certmint_free(cm);
    free_ca(&ca);
}

static void test_bad_names(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "API.example.com",
        "1.2.3.4",
        "127.1",
        "*.example.com",
        "a..b",
        ".a.example",
        "a.example.",
        "exa mple",
        "a_b.com",
        "::1",
        "[::1]",
        "ex\xc3\xa4mple.com",
    };
    struct ca ca;
    X509 *leaf = NULL;
    char big[300];

    make_ca(&ca, "CA", 0, 86400L * 30);
    struct certmint *cm = new_cm(&ca, 0, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(certmint_get(cm, bad[i], &leaf), BD_E_INVAL);
    assert_int_equal(certmint_get(cm, NULL, &leaf), BD_E_INVAL);
    memset(big, 'a', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(certmint_get(cm, big, &leaf), BD_E_INVAL); /* 64-byte label, 299 bytes */
    for (size_t i = 63; i < sizeof(big); i += 64)
        big[i] = '.';
    big[254] = '\0';
    assert_int_equal(certmint_get(cm, big, &leaf), BD_E_INVAL); /* 254 bytes */
    big[253] = '\0';
    big[252] = 'z';
    assert_int_equal(certmint_get(cm, big, &leaf), 0); /* 253 bytes is fine */
    X509_free(leaf);
    assert_int_equal(certmint_get(cm, "xn--bcher-kva.example", &leaf), 0);
    X509_free(leaf);
    certmint_free(cm);
    free_ca(&ca);
}

/* ---- the cache ---------------------------------------------------------- */

static void test_lru(void **state)
{
    (void)state;
    struct ca ca;
    struct certmint_stats st;
    X509 *a = NULL, *b = NULL, *c = NULL, *x = NULL, *held = NULL;

    make_ca(&ca, "CA", 0, 86400L * 30);
    struct certmint *cm = new_cm(&ca, 3, 0);
    assert_int_equal(certmint_get(cm, "a.example", &a), 0);
    assert_int_equal(certmint_get(cm, "b.example", &b), 0);
    assert_int_equal(certmint_get(cm, "c.example", &c), 0);
    assert_int_equal(certmint_get(cm, "a.example", &x), 0);
    assert_ptr_equal(x, a); /* a hot name is minted once */
    X509_free(x);
    certmint_get_stats(cm, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.mints, 3);
    assert_int_equal(st.entries, 3);

    /* d evicts the least recently used: b (a was touched) */
    held = b;
    b = NULL;
    assert_int_equal(certmint_get(cm, "d.example", &x), 0);
    X509_free(x);
    certmint_get_stats(cm, &st);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.entries, 3);
    assert_int_equal(certmint_get(cm, "a.example", &x), 0);
    assert_ptr_equal(x, a);
    X509_free(x);
    assert_int_equal(certmint_get(cm, "c.example", &x), 0);
    assert_ptr_equal(x, c);
    X509_free(x);
    /* b comes back as a new certificate; the evicted one is still ours */
    assert_int_equal(certmint_get(cm, "b.example", &b), 0);
    assert_ptr_not_equal(b, held);
    assert_true(verify(ca.cert, held, "b.example"));
    X509_free(held);

    /* flush drops only the cache's references */
    certmint_flush(cm);
    certmint_get_stats(cm, &st);
    assert_int_equal(st.entries, 0);
    assert_true(verify(ca.cert, a, "a.example"));
    assert_true(verify(ca.cert, b, "b.example"));
    X509_free(a);
    X509_free(b);
    X509_free(c);

    /* many names through a small cache */
    char name[32];
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "h%d.example", i);
        assert_int_equal(certmint_get(cm, name, &x), 0);
        X509_free(x);
    }
    certmint_get_stats(cm, &st);
    assert_int_equal(st.entries, 3);
    /* a freed certmint leaves handed-out leaves alive */
    assert_int_equal(certmint_get(cm, "last.example", &x), 0);
    certmint_free(cm);
    assert_true(verify(ca.cert, x, "last.example"));
    X509_free(x);
    free_ca(&ca);
}

/* ---- CA loading and reload ---------------------------------------------- */

static void test_bad_ca(void **state)
{
    (void)state;
    struct ca ca1, ca2, expired;
    struct certmint *cm = NULL;
    X509 *leaf = NULL;

    make_ca(&ca1, "one", 0, 86400L * 30);
    make_ca(&ca2, "two", 0, 86400L * 30);
    make_ca(&expired, "old", 0, -60);
    assert_int_equal(certmint_new(ca1.cert_pem, ca2.key_pem, NULL, &cm), BD_E_INVAL);
    assert_int_equal(certmint_new("garbage", ca1.key_pem, NULL, &cm), BD_E_INVAL);
    assert_int_equal(certmint_new(ca1.cert_pem, "garbage", NULL, &cm), BD_E_INVAL);
    assert_int_equal(certmint_new(ca1.cert_pem, NULL, NULL, &cm), BD_E_INVAL);
    assert_int_equal(certmint_new(expired.cert_pem, expired.key_pem, NULL, &cm), BD_E_INVAL);
    assert_null(cm);

    /* a leaf is not a CA */
    cm = new_cm(&ca1, 0, 0);
    assert_int_equal(certmint_get(cm, "leaf.example", &leaf), 0);
    char *leaf_pem = to_pem(leaf, NULL);
    char *leaf_key = to_pem(NULL, certmint_leaf_key(cm));
    struct certmint *cm2 = NULL;
    assert_int_equal(certmint_new(leaf_pem, leaf_key, NULL, &cm2), BD_E_INVAL);
    assert_null(cm2);
    signer_wipe_str(&leaf_key);
    assert_null(leaf_key);
    free(leaf_pem);
    X509_free(leaf);
    certmint_free(cm);
    free_ca(&ca1);
    free_ca(&ca2);
    free_ca(&expired);
}

static void test_set_ca(void **state)
{
    (void)state;
    struct ca ca1, ca2;
    struct certmint_stats st;
    X509 *old = NULL, *x = NULL;
    int changed = -1;

    make_ca(&ca1, "one", 0, 86400L * 30);
    make_ca(&ca2, "two", 1, 86400L * 30);
    struct certmint *cm = new_cm(&ca1, 0, 0);
    assert_int_equal(certmint_get(cm, "api.example.com", &old), 0);
    pid_t pid1 = signer_pid(certmint_signer(cm));

    /* same CA, no key needed: nothing changes */
    assert_int_equal(certmint_set_ca(cm, ca1.cert_pem, NULL, &changed), 0);
    assert_int_equal(changed, 0);
    assert_int_equal(signer_pid(certmint_signer(cm)), pid1);
    assert_int_equal(certmint_get(cm, "api.example.com", &x), 0);
    assert_ptr_equal(x, old);
    X509_free(x);

    /* a new CA with a key that is not its own: refused, old one serves */
    assert_int_equal(certmint_set_ca(cm, ca2.cert_pem, ca1.key_pem, &changed), BD_E_INVAL);
    assert_int_equal(certmint_set_ca(cm, ca2.cert_pem, NULL, &changed), BD_E_INVAL);
    assert_int_equal(signer_pid(certmint_signer(cm)), pid1);
    assert_int_equal(certmint_get(cm, "new.example.com", &x), 0);
    assert_true(verify(ca1.cert, x, "new.example.com"));
    X509_free(x);

    /* the new CA: new signer, cache dropped, leaves chain to it */
    assert_int_equal(certmint_set_ca(cm, ca2.cert_pem, ca2.key_pem, &changed), 0);
    assert_int_equal(changed, 1);
    assert_int_not_equal(signer_pid(certmint_signer(cm)), pid1);
    assert_int_equal(kill(pid1, 0), -1); /* the old signer is gone (and reaped) */
    certmint_get_stats(cm, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(certmint_get(cm, "api.example.com", &x), 0);
    assert_ptr_not_equal(x, old);
    assert_true(verify(ca2.cert, x, "api.example.com"));
    assert_false(verify(ca1.cert, x, "api.example.com"));
    assert_true(verify(ca1.cert, old, "api.example.com"));
    X509_free(x);
    X509_free(old);
    certmint_free(cm);
    free_ca(&ca1);
    free_ca(&ca2);
}

/* ---- the signer --------------------------------------------------------- */

static void test_signer_restart(void **state)
{
    (void)state;
    struct ca ca;
    X509 *x = NULL;

    make_ca(&ca, "CA", 0, 86400L * 30);
    struct certmint *cm = new_cm(&ca, 0, 300);
    struct signer *s = certmint_signer(cm);
    pid_t pid = signer_pid(s);
    assert_true(pid > 0);
    assert_int_not_equal(pid, getpid());

    /* killed: the next mint restarts it */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(certmint_get(cm, "a.example", &x), 0);
    assert_true(verify(ca.cert, x, "a.example"));
    X509_free(x);
    assert_int_equal(signer_restarts(s), 1);
    pid_t pid2 = signer_pid(s);
    assert_int_not_equal(pid2, pid);
    assert_int_equal(kill(pid, 0), -1); /* reaped, not a zombie */

    /* hung: the deadline passes, it is killed and restarted */
    assert_int_equal(kill(pid2, SIGSTOP), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(certmint_get(cm, "b.example", &x), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(verify(ca.cert, x, "b.example"));
    X509_free(x);
    assert_int_equal(signer_restarts(s), 2);
    assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 290);
    assert_int_equal(kill(pid2, 0), -1);

    char path_cmd[64];
    /* a fresh image of this program (signer_exec_entry in main), not a
     * copy of ours: its command line is the signer's own */
    char cmdline[128] = {0};
    snprintf(path_cmd, sizeof(path_cmd), "/proc/%d/cmdline", (int)signer_pid(s));
    FILE *f = fopen(path_cmd, "r");
    assert_non_null(f);
    size_t got = fread(cmdline, 1, sizeof(cmdline) - 1, f);
    fclose(f);
    assert_int_equal(got, strlen("bottle-proxy-signer") + 1 + strlen(SIGNER_CHILD_ARG) + 1);
    assert_string_equal(cmdline, "bottle-proxy-signer");
    assert_string_equal(cmdline + strlen(cmdline) + 1, SIGNER_CHILD_ARG);

    /* the child keeps 0-3 and nothing else (readable only where we may) */
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd/4", (int)signer_pid(s));
    char link[256];
    errno = 0;
    assert_int_equal(readlink(path, link, sizeof(link)), -1);
    assert_true(errno == ENOENT || errno == EACCES);
    certmint_free(cm);
    free_ca(&ca);
}

/* A request certificate issued in the CA's name, signed by some other key. */
static unsigned char *make_request(struct ca *ca, const char *ca_ext, long days, int wrong_issuer,
                                   size_t *ret_len)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    unsigned char *der = NULL;

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    if (wrong_issuer) {
        X509_NAME *n = X509_NAME_new();
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"evil", -1, -1, 0);
        X509_set_issuer_name(x, n);
        X509_NAME_free(n);
    } else {
        X509_set_issuer_name(x, X509_get_subject_name(ca->cert));
    }
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
    X509_set_pubkey(x, k);
    if (ca_ext != NULL)
        add_ext(x, ca->cert, NID_basic_constraints, ca_ext);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    int len = i2d_X509(x, &der);
    assert_true(len > 0);
    *ret_len = (size_t)len;
    X509_free(x);
    EVP_PKEY_free(k);
    return der;
}

static void test_signer_policy(void **state)
{
    (void)state;
    struct ca ca, other;
    struct signer *s = NULL;
    unsigned char *out = NULL, *req;
    size_t len, olen;

    make_ca(&ca, "CA", 0, 86400L * 30);
    make_ca(&other, "other", 0, 86400L * 30);
    assert_int_equal(signer_start(ca.cert_pem, other.key_pem, 500, &s), BD_E_INVAL);
    assert_int_equal(signer_start(ca.cert_pem, "", 500, &s), BD_E_INVAL);
    char *huge = xmalloc(SIGNER_PEM_MAX + 2);
    memset(huge, 'A', SIGNER_PEM_MAX + 1);
    huge[SIGNER_PEM_MAX + 1] = '\0';
    assert_int_equal(signer_start(ca.cert_pem, huge, 500, &s), BD_E_TOO_BIG);
    free(huge);
    assert_null(s);

    assert_int_equal(signer_start(ca.cert_pem, ca.key_pem, 500, &s), 0);
    pid_t pid = signer_pid(s);

    /* a leaf: signed, and verifiable with the CA key */
    req = make_request(&ca, "critical,CA:FALSE", 7, 0, &len);
    assert_int_equal(signer_sign(s, req, len, &out, &olen), 0);
    const unsigned char *p = out;
    X509 *x = d2i_X509(NULL, &p, (long)olen);
    assert_non_null(x);
    assert_int_equal(X509_verify(x, ca.key), 1);
    X509_free(x);
    free(out);
    OPENSSL_free(req);

    /* refused: sub-CA, no basicConstraints, someone else's issuer, too long */
    req = make_request(&ca, "critical,CA:TRUE", 7, 0, &len);
    assert_int_equal(signer_sign(s, req, len, &out, &olen), BD_E_INVAL);
    OPENSSL_free(req);
    req = make_request(&ca, NULL, 7, 0, &len);
    assert_int_equal(signer_sign(s, req, len, &out, &olen), BD_E_INVAL);
    OPENSSL_free(req);
    req = make_request(&ca, "critical,CA:FALSE", 7, 1, &len);
    assert_int_equal(signer_sign(s, req, len, &out, &olen), BD_E_INVAL);
    OPENSSL_free(req);
    req = make_request(&ca, "critical,CA:FALSE", 20, 0, &len);
    assert_int_equal(signer_sign(s, req, len, &out, &olen), BD_E_INVAL);
    OPENSSL_free(req);

    /* malformed and oversized */
    assert_int_equal(signer_sign(s, (const unsigned char *)"\x30\x03\x02\x01", 4, &out, &olen),
                     BD_E_INVAL);
    unsigned char *big = xcalloc(1, SIGNER_MSG_MAX);
    assert_int_equal(signer_sign(s, big, SIGNER_MSG_MAX, &out, &olen), BD_E_TOO_BIG);
    assert_int_equal(signer_sign(s, big, 100, &out, &olen), BD_E_INVAL);
    free(big);
    assert_int_equal(signer_sign(s, NULL, 0, &out, &olen), BD_E_INVAL);

    /* none of that cost the child its life */
    assert_int_equal(signer_pid(s), pid);
    assert_int_equal(signer_restarts(s), 0);
    req = make_request(&ca, "critical,CA:FALSE", 1, 0, &len);
    assert_int_equal(signer_sign(s, req, len, &out, &olen), 0);
    free(out);
    OPENSSL_free(req);
    signer_free(s);
    assert_int_equal(kill(pid, 0), -1);
    free_ca(&ca);
    free_ca(&other);
}

/* The child's own checks, driven over a raw socket. */
static int key_memfd(const char *cert, const char *key, long bogus_len)
{
    int fd = memfd_create("test", MFD_CLOEXEC);
    size_t clen = strlen(cert);
    unsigned long hl = bogus_len >= 0 ? (unsigned long)bogus_len : (unsigned long)clen;
    unsigned char hdr[4] = {(unsigned char)(hl >> 24), (unsigned char)(hl >> 16),
                            (unsigned char)(hl >> 8), (unsigned char)hl};

    assert_true(fd >= 0);
    assert_int_equal(write(fd, hdr, 4), 4);
    assert_int_equal(write(fd, cert, clen), (ssize_t)clen);
    assert_int_equal(write(fd, key, strlen(key)), (ssize_t)strlen(key));
    return fd;
}

static pid_t fork_child(int key_fd, int *ret_sock)
{
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[0]);
        _exit(signer_child_main(sv[1], key_fd));
    }
    close(sv[1]);
    close(key_fd);
    *ret_sock = sv[0];
    return pid;
}

static unsigned char roundtrip(int sock, const void *req, size_t len, size_t *ret_len)
{
    static unsigned char ans[SIGNER_MSG_MAX];

    assert_int_equal(send(sock, req, len, MSG_NOSIGNAL), (ssize_t)len);
    ssize_t n = recv(sock, ans, sizeof(ans), 0);
    assert_true(n >= 1);
    if (ret_len != NULL)
        *ret_len = (size_t)n;
    return ans[0];
}

static void test_child_protocol(void **state)
{
    (void)state;
    struct ca ca;
    int sock, status;
    unsigned char st;
    size_t len, n;

    make_ca(&ca, "CA", 0, 86400L * 30);

    /* a cert length pointing past the end: refused at start */
    pid_t pid = fork_child(key_memfd(ca.cert_pem, ca.key_pem, 1L << 20), &sock);
    assert_int_equal(recv(sock, &st, 1, 0), 1);
    assert_int_equal(st, SIGNER_ST_BAD_KEY);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    close(sock);

    pid = fork_child(key_memfd(ca.cert_pem, ca.key_pem, -1), &sock);
    assert_int_equal(recv(sock, &st, 1, 0), 1);
    assert_int_equal(st, SIGNER_ST_OK);

    unsigned char *big = xcalloc(1, SIGNER_MSG_MAX + 100);
    big[0] = 'S';
    assert_int_equal(roundtrip(sock, big, SIGNER_MSG_MAX + 100, &n), SIGNER_ST_TOO_BIG);
    assert_int_equal(n, 1);
    assert_int_equal(roundtrip(sock, "S", 1, NULL), SIGNER_ST_BAD_REQUEST);
    assert_int_equal(roundtrip(sock, "X\x30\x00", 3, NULL), SIGNER_ST_BAD_REQUEST);
    assert_int_equal(roundtrip(sock, "S\x30\x03\x02\x01\x01", 6, NULL), SIGNER_ST_BAD_CERT);
    unsigned char *req = make_request(&ca, "critical,CA:FALSE", 7, 0, &len);
    big[0] = 'S';
    memcpy(big + 1, req, len);
    big[1 + len] = 0; /* one trailing byte */
    assert_int_equal(roundtrip(sock, big, len + 2, NULL), SIGNER_ST_BAD_REQUEST);
    assert_int_equal(roundtrip(sock, big, len + 1, &n), SIGNER_ST_OK);
    assert_true(n > len / 2);
    OPENSSL_free(req);
    free(big);

    /* EOF: a clean exit */
    close(sock);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free_ca(&ca);
}

/* ---- a real client ------------------------------------------------------ */

static int have_openssl_cli(void)
{
    return system("openssl version >/dev/null 2>&1") == 0;
}

/* Serves one handshake on a loopback listener while s_client verifies;
 * prints what s_client said when the outcome is not the expected one. */
static int s_client_verifies(struct certmint *cm, const char *dir, const char *servername,
                             const char *verify_name, int expect)
{
    X509 *leaf = NULL;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    char cmd[1024], out[8192];

    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(ls, 1), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    assert_int_equal(certmint_get(cm, servername, &leaf), 0);

    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, certmint_leaf_key(cm)), 1);
    snprintf(cmd, sizeof(cmd),
             "openssl s_client -connect 127.0.0.1:%d -servername %s -verify_return_error "
             "-verify_hostname %s -CAfile %s/ca.pem </dev/null 2>&1",
             ntohs(sa.sin_port), servername, verify_name, dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int cs = accept(ls, NULL, NULL);
    assert_true(cs >= 0);
    SSL *ssl = SSL_new(ctx);
    assert_int_equal(SSL_use_certificate(ssl, leaf), 1); /* per connection: the leaf */
    SSL_set_fd(ssl, cs);
    if (SSL_accept(ssl) == 1)
        SSL_shutdown(ssl);
    SSL_free(ssl);
    close(cs);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    SSL_CTX_free(ctx);
    close(ls);
    X509_free(leaf);
    ERR_clear_error();
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
             strstr(out, "Verify return code: 0 (ok)") != NULL;
    if (ok != expect)
        print_message("s_client:\n%s\n", out);
    return ok;
}

static void test_s_client(void **state)
{
    (void)state;
    struct ca ca;
    char dir[] = "/tmp/certmint-XXXXXX", path[64];

    if (!have_openssl_cli())
        skip();
    signal(SIGPIPE, SIG_IGN);
    make_ca(&ca, "bottle CA", 0, 86400L * 30);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ca.pem", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(ca.cert_pem, f);
    fclose(f);
    struct certmint *cm = new_cm(&ca, 0, 0);
    signer_wipe_str(&ca.key_pem); /* as the proxy does once the signer has it */

    assert_true(s_client_verifies(cm, dir, "api.example.com", "api.example.com", 1));
    assert_false(s_client_verifies(cm, dir, "api.example.com", "evil.example.com", 0));

    certmint_free(cm);
    unlink(path);
    rmdir(dir);
    free_ca(&ca);
}

int main(int argc, char **argv)
{
    signer_exec_entry(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leaf_fields),    cmocka_unit_test(test_long_name_rsa_ca_short_ca),
        cmocka_unit_test(test_bad_names),      cmocka_unit_test(test_lru),
        cmocka_unit_test(test_bad_ca),         cmocka_unit_test(test_set_ca),
        cmocka_unit_test(test_signer_restart), cmocka_unit_test(test_signer_policy),
        cmocka_unit_test(test_child_protocol), cmocka_unit_test(test_s_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

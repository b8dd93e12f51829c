/*
 * mint_bench.c - how fast the sidecar gets a leaf certificate for a
 * bumped CONNECT: uncached mints (build, pre-sign, one round trip to the
 * signer process, parse) and cached lookups, for a P-256 and an RSA-2048
 * bottle CA.
 *
 *   mint_bench [SECONDS-PER-FIGURE]     (default 1)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "certmint.h"
#include "xalloc.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *pem_of(X509 *x, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p;

    if (b == NULL)
        abort();
    if ((x != NULL && !PEM_write_bio_X509(b, x)) ||
        (x == NULL && !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)))
        abort();
    long n = BIO_get_mem_data(b, &p);
    char *s = xstrndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void make_ca(int rsa, char **ret_cert, char **ret_key)
{
    EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509V3_CTX ctx;
    static const struct {
        int nid;
        const char *v;
    } ext[] = {{NID_basic_constraints, "critical,CA:TRUE"},
               {NID_key_usage, "critical,keyCertSign,cRLSign"},
               {NID_subject_key_identifier, "hash"}};

    if (k == NULL || x == NULL)
        abort();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"bench CA", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
    X509_set_pubkey(x, k);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, ext[i].nid, ext[i].v);
        if (e == NULL || !X509_add_ext(x, e, -1))
            abort();
        X509_EXTENSION_free(e);
    }
    if (X509_sign(x, k, EVP_sha256()) <= 0)
        abort();
    *ret_cert = pem_of(x, NULL);
    *ret_key = pem_of(NULL, k);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void run(const char *label, int rsa, double secs)
{
    char *cert, *key, name[64];
    struct certmint *cm = NULL;
    struct certmint_opts o = {.cache_max = 1024};
    X509 *x;
    long n = 0;

    make_ca(rsa, &cert, &key);
    if (certmint_new(cert, key, &o, &cm) < 0) {
        fprintf(stderr, "mint_bench: certmint_new failed\n");
        exit(1);
    }
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 16; i++, n++) {
            snprintf(name, sizeof(name), "h%ld.example.com", n);
            if (certmint_mint(cm, name, &x) < 0)
                abort();
            X509_free(x);
        }
        t = now_s() - t0;
    } while (t < secs);
    double mint_rate = (double)n / t;

    /* 1000 hot names, all cached */
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "hot%d.example.com", i);
        if (certmint_get(cm, name, &x) < 0)
            abort();
        X509_free(x);
    }
    long m = 0;
    t0 = now_s();
    do {
        for (int i = 0; i < 1000; i++, m++) {
            snprintf(name, sizeof(name), "hot%d.example.com", i);
            if (certmint_get(cm, name, &x) < 0)
                abort();
            X509_free(x);
        }
        t = now_s() - t0;
    } while (t < secs);
    double hit_rate = (double)m / t;
    struct certmint_stats st;
    certmint_get_stats(cm, &st);

    printf("%-9s uncached mints (through the signer): %8.0f /s  (%6.1f us each)\n", label,
           mint_rate, 1e6 / mint_rate);
    printf("%-9s cached lookups:                      %8.0f /s  (%6.3f us each, %llu misses)\n",
           label, hit_rate, 1e6 / hit_rate, (unsigned long long)(st.misses - 1000));
    certmint_free(cm);
    free(cert);
    free(key);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? strtod(argv[1], NULL) : 1.0;

    if (!(secs > 0))
        secs = 1.0;
    run("P-256 CA", 0, secs);
    run("RSA-2048", 1, secs);
    return 0;
}

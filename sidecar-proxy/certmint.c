/*
 * certmint.c - leaf minting and the LRU cache in front of it (certmint.h).
 *
 * Invariants:
 *   - every entry is in exactly one hash chain and in the recency list,
 *     head = most recently used; n_entries <= cache_max;
 *   - an entry holds one X509 reference; nothing else in here does;
 *   - cm->ca, cm->ext[] and cm->signer always belong to the same CA: they
 *     are replaced together, and only after the new signer passed a test
 *     mint.
 * Everything but the SAN, subject, serial and dates is the same for every
 * leaf of one CA, so those extensions are built once per CA.
 */
#include <stdint.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "certmint.h"
#include "err.h"
#include "host.h"
#include "signer.h"
#include "xalloc.h"

#define N_EXT     5
#define NAME_MAX_ 253
#define CN_MAX    64
#define SELF_TEST "certmint-self-test.invalid"

struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* recency list */
    uint64_t hash;
    time_t refresh_at; /* re-mint from here on: half the lifetime is gone */
    X509 *x509;
    size_t len;
    char name[]; /* NUL-terminated */
};

struct certmint {
    X509 *ca;
    X509_EXTENSION *ext[N_EXT];
    struct signer *signer;
    EVP_PKEY *leaf_key;
    X509_PUBKEY *leaf_pub; /* its SubjectPublicKeyInfo, encoded once */
    int signer_timeout_ms;

    struct entry **buckets;
    size_t n_buckets; /* power of two, >= 2 * cache_max */
    struct entry *head, *tail;
    size_t n_entries, cache_max;
    uint8_t hash_key[16];
    struct certmint_stats st;
};

/* ---- SipHash-2-4 (Aumasson, Bernstein), for the cache's keyed hash ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t siphash(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56;
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t m = le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the CA and its fixed extensions ----------------------------------- */

static void free_exts(X509_EXTENSION **ext)
{
    for (int i = 0; i < N_EXT; i++) {
        X509_EXTENSION_free(ext[i]);
        ext[i] = NULL;
    }
}

static int parse_ca(const char *pem, X509 **ret)
{
    BIO *b = NULL;
    X509 *ca = NULL;
    int rc = BD_E_INVAL;

    if (pem == NULL)
        return BD_E_INVAL;
    size_t len = strlen(pem);
    if (len > SIGNER_PEM_MAX)
        return BD_E_TOO_BIG;
    b = BIO_new_mem_buf(pem, (int)len);
    if (b == NULL) {
        rc = BD_E_INTERNAL;
        goto out;
    }
    ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
    /* A CA that can sign certificates and has not expired. */
    if (ca == NULL || X509_check_ca(ca) < 1 || X509_cmp_current_time(X509_get0_notAfter(ca)) <= 0)
        goto out;
    uint32_t ku = X509_get_key_usage(ca);
    if ((X509_get_extension_flags(ca) & EXFLAG_KUSAGE) && !(ku & KU_KEY_CERT_SIGN))
        goto out;
    *ret = ca;
    ca = NULL;
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(b);
    X509_free(ca);
    return rc;
}

/* The extensions every leaf of this CA carries. */
static int build_exts(X509 *ca, EVP_PKEY *leaf_key, X509_EXTENSION **ext)
{
    static const struct {
        int nid;
        const char *value;
    } tmpl[N_EXT] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_ext_key_usage, "serverAuth"},
        {NID_subject_key_identifier, "hash"},
        /* keyid when the CA has one, else its issuer and serial */
        {NID_authority_key_identifier, "keyid,issuer"},
    };
    X509V3_CTX ctx;
    X509 *subject = X509_new();
    int rc = BD_E_INTERNAL;

    if (subject == NULL || !X509_set_pubkey(subject, leaf_key))
        goto out;
    X509V3_set_ctx(&ctx, ca, subject, NULL, NULL, 0);
    for (int i = 0; i < N_EXT; i++) {
        ext[i] = X509V3_EXT_conf_nid(NULL, &ctx, tmpl[i].nid, tmpl[i].value);
        if (ext[i] == NULL)
            goto out;
    }
    rc = 0;
out:
    if (rc < 0)
        free_exts(ext);
    ERR_clear_error();
    X509_free(subject);
    return rc;
}

/* ---- minting ------------------------------------------------------------ */

static int name_ok(const char *name, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > NAME_MAX_ || name[0] == '.' || name[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
        if (++label > 63)
            return 0;
    }
    return !host_is_ip_literal(name, len);
}

static int set_serial(X509 *x)
{
    unsigned char r[16];
    BIGNUM *bn = NULL;
    int ok = 0;

    if (RAND_bytes(r, sizeof(r)) != 1)
        return 0;
    r[0] &= 0x7f; /* positive, and at most 16 content bytes */
    r[0] |= 0x40; /* never zero, never shortened below 16 bytes */
    bn = BN_bin2bn(r, sizeof(r), NULL);
    ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    return ok;
}

static int add_san(X509 *x, const char *name, size_t len, int critical)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    int ok = 0;

    if (gens == NULL || gn == NULL || ia5 == NULL || !ASN1_STRING_set(ia5, name, (int)len))
        goto out;
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    ia5 = NULL;
    if (!sk_GENERAL_NAME_push(gens, gn))
        goto out;
    gn = NULL;
    ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical, X509V3_ADD_DEFAULT) == 1;
out:
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gn);
    GENERAL_NAMES_free(gens);
    return ok;
}

/*
 * Sets the leaf's SubjectPublicKeyInfo from the one encoded at start.
 * X509_set_pubkey() would do the same, but with OpenSSL 3.0 it runs the
 * provider encoder and decoder for every call, which was a third of the
 * cost of a mint.
 */
static int set_leaf_pub(X509 *x, const X509_PUBKEY *tmpl)
{
    ASN1_OBJECT *ppkalg;
    const unsigned char *pk;
    int pklen, ptype;
    X509_ALGOR *palg;
    const ASN1_OBJECT *aobj;
    const void *pval;

    if (!X509_PUBKEY_get0_param(&ppkalg, &pk, &pklen, &palg, tmpl))
        return 0;
    X509_ALGOR_get0(&aobj, &ptype, &pval, palg);
    if (ptype != V_ASN1_OBJECT) /* a named curve, always, for our P-256 key */
        return 0;
    ASN1_OBJECT *alg = OBJ_dup(aobj), *param = OBJ_dup(pval);
    unsigned char *enc = OPENSSL_memdup(pk, (size_t)pklen);
    if (alg == NULL || param == NULL || enc == NULL ||
        !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), alg, V_ASN1_OBJECT, param, enc, pklen)) {
        ASN1_OBJECT_free(alg);
        ASN1_OBJECT_free(param);
        OPENSSL_free(enc);
        return 0;
    }
    return 1;
}

/* Builds the leaf, pre-signed with the leaf key so that it has a DER form. */
static int build_leaf(struct certmint *cm, X509 *ca, X509_EXTENSION **ext, const char *name,
                      size_t len, time_t now, X509 **ret)
{
    X509 *x = X509_new();
    X509_NAME *subj = NULL;
    int rc = BD_E_INTERNAL;

    if (x == NULL || !X509_set_version(x, X509_VERSION_3) || !set_serial(x) ||
        !X509_set_issuer_name(x, X509_get_subject_name(ca)) || !set_leaf_pub(x, cm->leaf_pub))
        goto out;
    subj = X509_NAME_new();
    if (subj == NULL)
        goto out;
    if (len <= CN_MAX && !X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_ASC,
                                                     (const unsigned char *)name, (int)len, -1, 0))
        goto out;
    if (!X509_set_subject_name(x, subj))
        goto out;

    time_t nb = now - CERTMINT_BACKDATE_S, na = now + CERTMINT_VALIDITY_S;
    const ASN1_TIME *ca_nb = X509_get0_notBefore(ca), *ca_na = X509_get0_notAfter(ca);
    if (X509_cmp_time(ca_nb, &nb) > 0) {
        if (!X509_set1_notBefore(x, ca_nb))
            goto out;
    } else if (X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &nb) == NULL) {
        goto out;
    }
    if (X509_cmp_time(ca_na, &na) < 0) {
        if (!X509_set1_notAfter(x, ca_na))
            goto out;
    } else if (X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &na) == NULL) {
        goto out;
    }

    for (int i = 0; i < N_EXT; i++)
        if (!X509_add_ext(x, ext[i], -1))
            goto out;
    if (!add_san(x, name, len, len > CN_MAX))
        goto out;
    if (X509_sign(x, cm->leaf_key, EVP_sha256()) <= 0)
        goto out;
    *ret = x;
    x = NULL;
    rc = 0;
out:
    ERR_clear_error();
    X509_NAME_free(subj);
    X509_free(x);
    return rc;
}

/* Mints name under (ca, ext, signer), which need not be cm's yet. */
static int mint_raw(struct certmint *cm, X509 *ca, X509_EXTENSION **ext, struct signer *signer,
                    const char *name, size_t len, X509 **ret)
{
    X509 *x = NULL, *signed_x = NULL;
    unsigned char *der = NULL, *sder = NULL;
    size_t slen = 0;
    int rc;

    rc = build_leaf(cm, ca, ext, name, len, time(NULL), &x);
    if (rc < 0)
        goto out;
    int dlen = i2d_X509(x, &der);
    if (dlen <= 0) {
        rc = BD_E_INTERNAL;
        goto out;
    }
    rc = signer_sign(signer, der, (size_t)dlen, &sder, &slen);
    if (rc < 0)
        goto out;
    const unsigned char *p = sder;
    signed_x = d2i_X509(NULL, &p, (long)slen);
    if (signed_x == NULL || p != sder + slen) {
        rc = BD_E_INTERNAL;
        goto out;
    }
    *ret = signed_x;
    signed_x = NULL;
    rc = 0;
out:
    ERR_clear_error();
    OPENSSL_free(der);
    free(sder);
    X509_free(x);
    X509_free(signed_x);
    return rc;
}

/* The same, counted in the statistics. */
static int mint_with(struct certmint *cm, X509 *ca, X509_EXTENSION **ext, struct signer *signer,
                     const char *name, size_t len, X509 **ret)
{
    int rc = mint_raw(cm, ca, ext, signer, name, len, ret);

    if (rc < 0)
        cm->st.mint_failures++;
    else
        cm->st.mints++;
    return rc;
}

int certmint_mint(struct certmint *cm, const char *name, X509 **ret)
{
    size_t len = name != NULL ? strlen(name) : 0;

    if (!name_ok(name, len))
        return BD_E_INVAL;
    return mint_with(cm, cm->ca, cm->ext, cm->signer, name, len, ret);
}

/* ---- the cache ---------------------------------------------------------- */

static void list_unlink(struct certmint *cm, struct entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        cm->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        cm->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(struct certmint *cm, struct entry *e)
{
    e->prev = NULL;
    e->next = cm->head;
    if (cm->head != NULL)
        cm->head->prev = e;
    cm->head = e;
    if (cm->tail == NULL)
        cm->tail = e;
}

static struct entry **bucket_of(struct certmint *cm, uint64_t h)
{
    return &cm->buckets[h & (cm->n_buckets - 1)];
}

static struct entry *lookup(struct certmint *cm, const char *name, size_t len, uint64_t h)
{
    for (struct entry *e = *bucket_of(cm, h); e != NULL; e = e->hnext)
        if (e->hash == h && e->len == len && memcmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

static void remove_entry(struct certmint *cm, struct entry *e)
{
    struct entry **pp = bucket_of(cm, e->hash);

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    list_unlink(cm, e);
    X509_free(e->x509); /* the cache's reference; users keep theirs */
    free(e);
    cm->n_entries--;
}

static time_t refresh_time(X509 *x, time_t now)
{
    struct tm tm;

    if (!ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
        return now; /* cannot tell: mint again next time */
    time_t na = timegm(&tm);
    return na > now ? now + (na - now) / 2 : now;
}

int certmint_get(struct certmint *cm, const char *name, X509 **ret)
{
    size_t len = name != NULL ? strlen(name) : 0;
    X509 *x = NULL;
    int rc;

    if (!name_ok(name, len))
        return BD_E_INVAL;
    uint64_t h = siphash(cm->hash_key, name, len);
    time_t now = time(NULL);
    struct entry *e = lookup(cm, name, len, h);
    if (e != NULL && now < e->refresh_at) {
        cm->st.hits++;
        list_unlink(cm, e);
        list_push_front(cm, e);
        X509_up_ref(e->x509);
        *ret = e->x509;
        return 0;
    }
    cm->st.misses++;
    rc = mint_with(cm, cm->ca, cm->ext, cm->signer, name, len, &x);
    if (rc < 0 && e != NULL) {
        /* Past half its life but still valid: better than no answer
         * while the signer is down.  Retried on the next lookup. */
        X509_up_ref(e->x509);
        *ret = e->x509;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (e != NULL) {
        remove_entry(cm, e);
    } else if (cm->n_entries >= cm->cache_max) {
        remove_entry(cm, cm->tail);
        cm->st.evictions++;
    }
    e = xmalloc(sizeof(*e) + len + 1);
    memcpy(e->name, name, len + 1);
    e->len = len;
    e->hash = h;
    e->refresh_at = refresh_time(x, now);
    e->x509 = x;
    struct entry **b = bucket_of(cm, h);
    e->hnext = *b;
    *b = e;
    list_push_front(cm, e);
    cm->n_entries++;
    X509_up_ref(x);
    *ret = x;
    return 0;
}

void certmint_flush(struct certmint *cm)
{
    while (cm->head != NULL)
        remove_entry(cm, cm->head);
}

/* ---- lifecycle ---------------------------------------------------------- */

int certmint_set_ca(struct certmint *cm, const char *ca_cert_pem, const char *ca_key_pem,
                    int *ret_changed)
{
    X509 *ca = NULL, *test = NULL;
    X509_EXTENSION *ext[N_EXT] = {NULL};
    struct signer *signer = NULL;
    int rc;

    rc = parse_ca(ca_cert_pem, &ca);
    if (rc < 0)
        goto out;
    if (cm->ca != NULL && X509_cmp(ca, cm->ca) == 0) {
        if (ret_changed != NULL)
            *ret_changed = 0;
        goto out;
    }
    rc = BD_E_INVAL;
    if (ca_key_pem == NULL)
        goto out;
    rc = build_exts(ca, cm->leaf_key, ext);
    if (rc < 0)
        goto out;
    rc = signer_start(ca_cert_pem, ca_key_pem, cm->signer_timeout_ms, &signer);
    if (rc < 0)
        goto out;
    /* The signer checked that its key belongs to the certificate; this
     * also proves the whole path, from building to verifying. */
    rc = mint_raw(cm, ca, ext, signer, SELF_TEST, strlen(SELF_TEST), &test);
    if (rc < 0)
        goto out;
    if (X509_verify(test, X509_get0_pubkey(ca)) != 1) {
        rc = BD_E_INVAL;
        goto out;
    }

    certmint_flush(cm);
    X509_free(cm->ca);
    free_exts(cm->ext);
    signer_free(cm->signer);
    cm->ca = ca;
    memcpy(cm->ext, ext, sizeof(ext));
    cm->signer = signer;
    ca = NULL;
    signer = NULL;
    memset(ext, 0, sizeof(ext));
    if (ret_changed != NULL)
        *ret_changed = 1;
    rc = 0;
out:
    ERR_clear_error();
    X509_free(test);
    X509_free(ca);
    free_exts(ext);
    signer_free(signer);
    return rc;
}

int certmint_new(const char *ca_cert_pem, const char *ca_key_pem, const struct certmint_opts *opts,
                 struct certmint **ret)
{
    struct certmint *cm = xcalloc(1, sizeof(*cm));
    int rc;

    cm->cache_max = opts != NULL && opts->cache_max > 0 ? opts->cache_max : CERTMINT_CACHE_DEFAULT;
    cm->signer_timeout_ms = opts != NULL ? opts->signer_timeout_ms : 0;
    cm->n_buckets = 16;
    while (cm->n_buckets < 2 * cm->cache_max)
        cm->n_buckets *= 2;
    cm->buckets = xcalloc(cm->n_buckets, sizeof(*cm->buckets));
    if (RAND_bytes(cm->hash_key, sizeof(cm->hash_key)) != 1) {
        rc = BD_E_INTERNAL;
        goto out;
    }
    cm->leaf_key = EVP_EC_gen("P-256");
    if (cm->leaf_key == NULL || !X509_PUBKEY_set(&cm->leaf_pub, cm->leaf_key)) {
        rc = BD_E_INTERNAL;
        goto out;
    }
    rc = certmint_set_ca(cm, ca_cert_pem, ca_key_pem, NULL);
    if (rc < 0)
        goto out;
    *ret = cm;
    cm = NULL;
out:
    ERR_clear_error();
    certmint_free(cm);
    return rc;
}

EVP_PKEY *certmint_leaf_key(const struct certmint *cm)
{
    return cm->leaf_key;
}

X509 *certmint_ca(const struct certmint *cm)
{
    return cm->ca;
}

struct signer *certmint_signer(const struct certmint *cm)
{
    return cm->signer;
}

void certmint_get_stats(const struct certmint *cm, struct certmint_stats *ret)
{
    *ret = cm->st;
    ret->entries = cm->n_entries;
}

void certmint_free(struct certmint *cm)
{
    if (cm == NULL)
        return;
    certmint_flush(cm);
    free(cm->buckets);
    X509_free(cm->ca);
    free_exts(cm->ext);
    signer_free(cm->signer);
    EVP_PKEY_free(cm->leaf_key);
    X509_PUBKEY_free(cm->leaf_pub);
    free(cm);
}

/*
 * ca.c - the per-bottle CA in ca/<bottle>/ (state.h: state_bottle_ca).
 *
 * The certificate reaches the agent (as /etc/bottle/ca.pem) and the key
 * only the sidecar's config; both files are 0600 in 0700 directories
 * because nothing but bottled reads them from here.  key.pem is written
 * before cert.pem, each through a temporary file and rename, so cert.pem
 * existing means the pair is complete; a crash in between leaves only a
 * key, and the next exclusive open mints a fresh pair over it.
 *
 * Lifetime: one year, no renewal yet (future work: re-mint once less than
 * a quarter of the lifetime is left, deliver the new certificate beside
 * the old one, then retire the old one).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "buf.h"
#include "err.h"
#include "state_int.h"
#include "xalloc.h"

#define CA_VALIDITY_DAYS 365
#define CA_PEM_MAX       (64 * 1024)
#define BOTTLE_NAME_MAX  128

static int plain_component(const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;

    if (len == 0 || len > BOTTLE_NAME_MAX || s[0] == '.')
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

static char *bio_string(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);

    return n >= 0 ? xmemdup0(p, (size_t)n) : NULL;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return 0;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* A new self-signed CA as PEM strings. */
static int mint(const char *instance, const char *bottle, char **ret_cert, char **ret_key)
{
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    BIGNUM *bn = NULL;
    BIO *cb = NULL, *kb = NULL;
    char *cn = xasprintf("bottled %s %s CA", instance, bottle);
    int rc = BD_E_INTERNAL;

    key = EVP_EC_gen("P-256");
    x = X509_new();
    bn = BN_new();
    if (key == NULL || x == NULL || bn == NULL)
        goto out;
    X509_NAME *name = X509_get_subject_name(x);
    /* 127 random bits: positive and at most 16 bytes, as RFC 5280 wants. */
    if (!X509_set_version(x, X509_VERSION_3) || !BN_rand(bn, 127, BN_RAND_TOP_ANY, 0) ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"bottled", -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_issuer_name(x, name) || X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), CA_VALIDITY_DAYS, 0, NULL) == NULL ||
        !X509_set_pubkey(x, key) ||
        !add_ext(x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(x, NID_subject_key_identifier, "hash") ||
        !add_ext(x, NID_authority_key_identifier, "keyid:always") ||
        X509_sign(x, key, EVP_sha256()) <= 0)
        goto out;
    cb = BIO_new(BIO_s_mem());
    kb = BIO_new(BIO_s_mem());
    if (cb == NULL || kb == NULL || !PEM_write_bio_X509(cb, x) ||
        !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL))
        goto out;
    *ret_cert = bio_string(cb);
    *ret_key = bio_string(kb);
    rc = 0;
out:
    ERR_clear_error();
    BIO_free(cb);
    if (kb != NULL) {
        char *p = NULL;
        long n = BIO_get_mem_data(kb, &p);
        if (n > 0)
            OPENSSL_cleanse(p, (size_t)n);
        BIO_free(kb);
    }
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(key);
    free(cn);
    return rc;
}

/* 0: the certificate is a CA and key is its key. */
static int check_pair(const char *cert_pem, const char *key_pem)
{
    BIO *cb = BIO_new_mem_buf(cert_pem, -1);
    BIO *kb = BIO_new_mem_buf(key_pem, -1);
    X509 *x = cb != NULL ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = kb != NULL ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    int rc = BD_E_INVAL;

    if (x != NULL && key != NULL && X509_check_ca(x) >= 1 && X509_check_private_key(x, key) == 1)
        rc = 0;
    ERR_clear_error();
    EVP_PKEY_free(key);
    X509_free(x);
    BIO_free(kb);
    BIO_free(cb);
    return rc;
}

/* Reads a private PEM file of dirfd; BD_E_NOTFOUND, BD_E_PERM, BD_E_IO. */
static int read_pem(int dirfd, const char *name, char **ret)
{
    struct stat sb;
    struct buf b;
    int fd, rc = BD_E_IO;

    buf_init(&b, CA_PEM_MAX);
    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? BD_E_NOTFOUND : BD_E_IO;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
        goto out;
    if (sb.st_uid != geteuid() || (sb.st_mode & 077)) {
        rc = BD_E_PERM;
        goto out;
    }
    for (;;) {
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        rc = buf_append(&b, chunk, (size_t)n);
        if (rc < 0)
            goto out;
        rc = BD_E_IO;
    }
    *ret = buf_detach(&b, NULL);
    rc = 0;
out:
    close(fd);
    buf_release(&b);
    return rc;
}

static int open_bottle_dir(struct state *st, const char *bottle, int create, int *ret_fd)
{
    int cafd = -1, fd = -1, rc = BD_E_IO;
    struct stat sb;

    cafd = openat(st->dirfd, "ca", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (cafd < 0) {
        rc = errno == ENOENT ? BD_E_NOTFOUND : BD_E_IO;
        goto out;
    }
    if (create && mkdirat(cafd, bottle, 0700) < 0 && errno != EEXIST)
        goto out;
    fd = openat(cafd, bottle, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        rc = errno == ENOENT ? BD_E_NOTFOUND : BD_E_IO;
        goto out;
    }
    if (fstat(fd, &sb) < 0)
        goto out;
    if (sb.st_uid != geteuid() || (sb.st_mode & 077)) {
        rc = BD_E_PERM;
        goto out;
    }
    *ret_fd = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (cafd >= 0)
        close(cafd);
    return rc;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

int state_bottle_ca(struct state *st, const char *bottle, char **ret_cert_pem, char **ret_key_pem)
{
    char *cert = NULL, *key = NULL;
    int fd = -1, rc;
    int create = st->mode == STATE_EXCLUSIVE;

    if (!plain_component(bottle))
        return BD_E_INVAL;
    rc = open_bottle_dir(st, bottle, create, &fd);
    if (rc < 0)
        goto out;
    rc = read_pem(fd, "cert.pem", &cert);
    if (rc == 0)
        rc = read_pem(fd, "key.pem", &key);
    if (rc == BD_E_NOTFOUND && create) {
        free(cert);
        free_secret(key);
        cert = key = NULL;
        rc = mint(st->instance, bottle, &cert, &key);
        if (rc == 0)
            rc = state_write_file(fd, "key.pem", key, strlen(key), 0);
        if (rc == 0)
            rc = state_write_file(fd, "cert.pem", cert, strlen(cert), 0);
    }
    if (rc < 0)
        goto out;
    rc = check_pair(cert, key);
    if (rc < 0)
        goto out;
    *ret_cert_pem = cert;
    *ret_key_pem = key;
    cert = key = NULL;
out:
    if (fd >= 0)
        close(fd);
    free(cert);
    free_secret(key);
    return rc;
}

int state_bottle_ca_remove(struct state *st, const char *bottle)
{
    int fd = -1, rc;

    if (!plain_component(bottle) || st->mode == STATE_RDONLY)
        return BD_E_INVAL;
    rc = open_bottle_dir(st, bottle, 0, &fd);
    if (rc == BD_E_NOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    /* The certificate first: its presence is what marks a complete pair. */
    if ((unlinkat(fd, "cert.pem", 0) < 0 && errno != ENOENT) ||
        (unlinkat(fd, "key.pem", 0) < 0 && errno != ENOENT))
        rc = BD_E_IO;
    close(fd);
    if (rc == 0) {
        int cafd = openat(st->dirfd, "ca", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (cafd < 0 || (unlinkat(cafd, bottle, AT_REMOVEDIR) < 0 && errno != ENOENT))
            rc = BD_E_IO;
        if (cafd >= 0)
            close(cafd);
    }
    return rc;
}

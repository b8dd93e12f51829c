/*
 * certmint.h - leaf certificates for bumped CONNECT tunnels, minted from
 * the bottle CA and kept in a bounded LRU cache.
 *
 * Every CONNECT is TLS-bumped, so the proxy presents a certificate for the
 * requested name that chains to the bottle CA the agent trusts.  A leaf:
 *   - subject CN=name (omitted when the name is longer than the 64 bytes a
 *     CN may hold; the subject is then empty and the SAN critical), SAN
 *     DNS:name only (never an IP: IP literals are denied before this);
 *   - serial: 128 random bits, positive;
 *   - notBefore: now - 1 h (clock skew), not before the CA's notBefore;
 *     notAfter: min(now + CERTMINT_VALIDITY_S, the CA's notAfter);
 *   - basicConstraints CA:FALSE (critical), keyUsage digitalSignature
 *     (critical), extendedKeyUsage serverAuth, subject and authority key
 *     identifiers; signed by the CA with SHA-256.
 *
 * One leaf key pair (ECDSA P-256) is generated per struct certmint and
 * shared by every leaf.  That is deliberate: a key pair per name would
 * cost a key generation per miss and buy nothing, because every leaf
 * lives in the same process and a client authenticates the name through
 * the CA's signature, not through the key.  It is not the CA key, which
 * the proxy never holds: signatures come from the signer process
 * (signer.h).  The SSL_CTX of the bumped side can load the leaf key once;
 * per connection only the certificate changes.
 *
 * Cache: name -> X509, at most cache_max entries (default 1024), O(1) get
 * and put through a hash table (SipHash with a per-process random key: the
 * names under a "*." route are chosen by the agent) and a doubly linked
 * recency list.  Entries are re-minted once half their lifetime is gone.
 * Certificates are reference counted with OpenSSL's own count: the cache
 * holds one reference, certmint_get() hands out another, which the caller
 * drops with X509_free().  Eviction and CA changes drop the cache's
 * reference only, so a certificate in use by a handshake stays valid.
 *
 * Not thread-safe: one struct certmint per event-loop thread.
 */
#ifndef BOTTLED_CERTMINT_H
#define BOTTLED_CERTMINT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define CERTMINT_CACHE_DEFAULT 1024
#define CERTMINT_VALIDITY_S    (7L * 24 * 3600)
#define CERTMINT_BACKDATE_S    3600L

struct signer;
struct certmint;

struct certmint_opts {
    size_t cache_max;      /* 0: CERTMINT_CACHE_DEFAULT */
    int signer_timeout_ms; /* 0: SIGNER_DEFAULT_TIMEOUT */
};

struct certmint_stats {
    uint64_t hits, misses, evictions, mints, mint_failures;
    size_t entries;
};

/*
 * Parses the CA certificate, starts the signer with the CA key (see
 * signer.h: after this returns the caller should wipe its copy of the key
 * with signer_wipe_str()), generates the leaf key and checks, with one
 * test mint, that the signer's key matches the certificate.  opts may be
 * NULL.  Errors: BD_E_INVAL (unreadable PEM, not a CA, expired, key and
 * certificate not a pair), BD_E_TOO_BIG, BD_E_IO (the signer could not
 * be started), BD_E_INTERNAL.
 */
int certmint_new(const char *ca_cert_pem, const char *ca_key_pem, const struct certmint_opts *opts,
                 struct certmint **ret);

/*
 * For a reload.  If ca_cert_pem is the certificate in use, nothing
 * changes and ca_key_pem may be NULL.  Otherwise a new signer is started
 * with the new key and tested; only when that succeeds are the old signer
 * and every cached leaf dropped.  On error the old CA keeps serving.
 * *ret_changed (may be NULL) says whether the CA changed.  Errors as
 * certmint_new().
 */
int certmint_set_ca(struct certmint *cm, const char *ca_cert_pem, const char *ca_key_pem,
                    int *ret_changed);

/*
 * The leaf for name (a lower-case A-label host name, no trailing dot, no
 * wildcard, not an IP literal): from the cache, or minted and cached.
 * Returns 0 and a new reference in *ret (release with X509_free()).
 * Errors: BD_E_INVAL (bad name), and those of signer_sign().
 */
int certmint_get(struct certmint *cm, const char *name, X509 **ret);

/* Mints a fresh leaf, bypassing the cache (benchmarks, tests). */
int certmint_mint(struct certmint *cm, const char *name, X509 **ret);

/* Drops every cached leaf (the cache's references only). */
void certmint_flush(struct certmint *cm);

/* Borrowed: valid until the next certmint_set_ca()/certmint_free(). */
EVP_PKEY *certmint_leaf_key(const struct certmint *cm);
X509 *certmint_ca(const struct certmint *cm);
struct signer *certmint_signer(const struct certmint *cm);

void certmint_get_stats(const struct certmint *cm, struct certmint_stats *ret);

void certmint_free(struct certmint *cm);

#endif

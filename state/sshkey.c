/*
 * sshkey.c - openssh-key-v1 private keys, public lines and fingerprints
 * (sshkey.h).
 *
 * The binary format (OpenSSH's PROTOCOL.key), with RFC 4251 types: uint32
 * big-endian, string = uint32 length + bytes, mpint = a string:
 *
 *   "openssh-key-v1\0"
 *   string ciphername      "none" here; anything else is encrypted
 *   string kdfname         "none"
 *   string kdfoptions      ""
 *   uint32 number of keys  1
 *   string public blob     string type, then the type's public fields
 *   string private section, a multiple of the cipher block size (8):
 *       uint32 check, uint32 check (equal: the decryption check)
 *       string type, the type's private fields, string comment
 *       padding 1, 2, 3, ... up to the block size
 *
 * The parser reads files a user controls (static keys) or that sit on a
 * disk someone else may write: every read goes through struct rd, which
 * checks the bytes left before it moves, and the text is capped at
 * SSHKEY_TEXT_MAX before anything is allocated.  Buffers that held key
 * material are OPENSSL_cleanse()d before they are freed, and are sized
 * once (no realloc that would leave a stale copy behind).
 */
#include <stdarg.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "buf.h"
#include "err.h"
#include "sshkey.h"
#include "xalloc.h"

#define MAGIC         "openssh-key-v1"
#define MAGIC_LEN     (sizeof(MAGIC)) /* with its NUL */
#define BEGIN_MARK    "-----BEGIN OPENSSH PRIVATE KEY-----"
#define END_MARK      "-----END OPENSSH PRIVATE KEY-----"
#define WRAP          70 /* base64 columns, as ssh-keygen writes */
#define BLOCK         8  /* the block size of cipher "none" */
#define ED25519_TYPE  "ssh-ed25519"
#define ED25519_SK    64 /* OpenSSH's ed25519 secret: seed || pk */
#define TYPE_CHARS    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._-"
#define WIRE_ED25519  1024 /* fits an ed25519 key with the longest comment */
#define PEM_LABEL_MAX 40

/* Characters of padded base64 for n bytes. */
#define B64_LEN(n) (((n) + 2) / 3 * 4)

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void say(struct buf *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(struct buf *why, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL)
        return;
    va_start(ap, fmt);
    (void)buf_vappendf(why, fmt, ap);
    va_end(ap);
}

/* ---- base64 ------------------------------------------------------------- */

/* Writes B64_LEN(n) characters (padded) and a NUL into out. */
static void b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64_chars[(v >> 18) & 63];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_chars[v & 63] : '=';
    }
    out[o] = '\0';
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Decodes padded base64, skipping whitespace, into out (room for len / 4 *
 * 3 bytes); 0 and *ret_len, or -1 for anything else than base64.
 */
static int b64_decode(const char *in, size_t len, uint8_t *out, size_t *ret_len)
{
    char q[4];
    size_t nq = 0, o = 0;
    int done = 0;

    for (size_t i = 0; i < len; i++) {
        if (is_space(in[i]))
            continue;
        if (done || (in[i] != '=' && b64_value((unsigned char)in[i]) < 0))
            return -1;
        q[nq++] = in[i];
        if (nq < 4)
            continue;
        nq = 0;
        if (q[0] == '=' || q[1] == '=' || (q[2] == '=' && q[3] != '='))
            return -1;
        uint32_t v = (uint32_t)b64_value((unsigned char)q[0]) << 18 |
                     (uint32_t)b64_value((unsigned char)q[1]) << 12;
        out[o++] = (uint8_t)(v >> 16);
        if (q[2] == '=') {
            done = 1;
            continue;
        }
        v |= (uint32_t)b64_value((unsigned char)q[2]) << 6;
        out[o++] = (uint8_t)(v >> 8);
        if (q[3] == '=') {
            done = 1;
            continue;
        }
        v |= (uint32_t)b64_value((unsigned char)q[3]);
        out[o++] = (uint8_t)v;
    }
    if (nq != 0)
        return -1;
    *ret_len = o;
    return 0;
}

/* ---- the wire format ------------------------------------------------------ */

/* A fixed-size output buffer; overflow sticks and is checked once at the end. */
struct wr {
    uint8_t *p;
    size_t len, cap;
    int overflow;
};

static void wr_bytes(struct wr *w, const void *d, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->p + w->len, d, n);
    w->len += n;
}

static void wr_u32(struct wr *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

    wr_bytes(w, b, sizeof(b));
}

static void wr_string(struct wr *w, const void *d, size_t n)
{
    wr_u32(w, (uint32_t)n);
    wr_bytes(w, d, n);
}

/* Reads from p: every function checks what is left before it moves. */
struct rd {
    const uint8_t *p;
    size_t left;
};

struct span {
    const uint8_t *p;
    size_t len;
};

static int rd_bytes(struct rd *r, size_t n, const uint8_t **ret)
{
    if (n > r->left)
        return -1;
    *ret = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *ret)
{
    const uint8_t *b;

    if (rd_bytes(r, 4, &b) < 0)
        return -1;
    *ret = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

static int rd_string(struct rd *r, struct span *ret)
{
    uint32_t n;

    if (rd_u32(r, &n) < 0 || rd_bytes(r, n, &ret->p) < 0)
        return -1;
    ret->len = n;
    return 0;
}

static int span_eq(struct span a, struct span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static int span_is(struct span a, const char *s)
{
    return span_eq(a, (struct span){(const uint8_t *)s, strlen(s)});
}

/* 1 for a plain name: 1 to SSHKEY_TYPE_MAX bytes of TYPE_CHARS. */
static int span_is_name(struct span a)
{
    if (a.len == 0 || a.len > SSHKEY_TYPE_MAX)
        return 0;
    for (size_t i = 0; i < a.len; i++)
        if (a.p[i] == '\0' || strchr(TYPE_CHARS, a.p[i]) == NULL)
            return 0;
    return 1;
}

/* ---- ed25519 -------------------------------------------------------------- */

int sshkey_ed25519_generate(struct sshkey_ed25519 *ret_key)
{
    struct sshkey_ed25519 k;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    size_t slen = sizeof(k.seed), plen = sizeof(k.pk);
    int rc = BD_E_INTERNAL;

    if (pkey == NULL || EVP_PKEY_get_raw_private_key(pkey, k.seed, &slen) != 1 ||
        EVP_PKEY_get_raw_public_key(pkey, k.pk, &plen) != 1 || slen != sizeof(k.seed) ||
        plen != sizeof(k.pk))
        goto out;
    *ret_key = k;
    rc = 0;
out:
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

void sshkey_ed25519_cleanse(struct sshkey_ed25519 *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

/* The public key of seed into pk: 0, or BD_E_INTERNAL. */
static int ed25519_derive(const uint8_t seed[SSHKEY_ED25519_LEN], uint8_t pk[SSHKEY_ED25519_LEN])
{
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_private_key_ex(NULL, "ED25519", NULL, seed, SSHKEY_ED25519_LEN);
    size_t plen = SSHKEY_ED25519_LEN;
    int rc = BD_E_INTERNAL;

    if (pkey != NULL && EVP_PKEY_get_raw_public_key(pkey, pk, &plen) == 1 &&
        plen == SSHKEY_ED25519_LEN)
        rc = 0;
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    return rc;
}

void sshkey_ed25519_blob(const struct sshkey_ed25519 *k, uint8_t out[SSHKEY_ED25519_BLOB_LEN])
{
    struct wr w = {out, 0, SSHKEY_ED25519_BLOB_LEN, 0};

    wr_string(&w, ED25519_TYPE, strlen(ED25519_TYPE));
    wr_string(&w, k->pk, sizeof(k->pk));
}

/* ---- public forms --------------------------------------------------------- */

void sshkey_fingerprint(const uint8_t *blob, size_t len, char out[SSHKEY_FP_SIZE])
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    char b64[B64_LEN(SHA256_DIGEST_LENGTH) + 1];
    size_t n;

    SHA256(blob, len, md);
    b64_encode(md, sizeof(md), b64);
    n = strcspn(b64, "=");
    memcpy(out, "SHA256:", 7);
    memcpy(out + 7, b64, n);
    out[7 + n] = '\0';
}

int sshkey_comment_valid(const char *comment)
{
    size_t len = comment != NULL ? strlen(comment) : 0;

    if (len > SSHKEY_COMMENT_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)comment[i] < 0x20 || comment[i] == 0x7f)
            return 0;
    return 1;
}

int sshkey_public_line(const uint8_t *blob, size_t len, const char *comment, char **ret_line)
{
    struct rd r = {blob, len};
    struct span type;
    char *b64;

    if (!sshkey_comment_valid(comment) || len > SSHKEY_TEXT_MAX || rd_string(&r, &type) < 0 ||
        !span_is_name(type))
        return BD_E_INVAL;
    b64 = xmalloc(B64_LEN(len) + 1);
    b64_encode(blob, len, b64);
    if (comment != NULL && comment[0] != '\0')
        *ret_line = xasprintf("%.*s %s %s", (int)type.len, (const char *)type.p, b64, comment);
    else
        *ret_line = xasprintf("%.*s %s", (int)type.len, (const char *)type.p, b64);
    free(b64);
    return 0;
}

void sshkey_text_free(char *text)
{
    if (text != NULL) {
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
}

/* ---- writing a private key ------------------------------------------------ */

/* The armored text of bin: BEGIN line, base64 wrapped at WRAP, END line. */
static char *armor(const uint8_t *bin, size_t len)
{
    size_t n64 = B64_LEN(len);
    size_t lines = (n64 + WRAP - 1) / WRAP;
    size_t size = strlen(BEGIN_MARK) + 1 + n64 + lines + strlen(END_MARK) + 1 + 1;
    char *b64 = xmalloc(n64 + 1);
    char *out = xmalloc(size);
    size_t o = 0;

    b64_encode(bin, len, b64);
    memcpy(out, BEGIN_MARK "\n", strlen(BEGIN_MARK) + 1);
    o = strlen(BEGIN_MARK) + 1;
    for (size_t i = 0; i < n64; i += WRAP) {
        size_t n = n64 - i < WRAP ? n64 - i : WRAP;
        memcpy(out + o, b64 + i, n);
        o += n;
        out[o++] = '\n';
    }
    memcpy(out + o, END_MARK "\n", strlen(END_MARK) + 1);
    o += strlen(END_MARK) + 1;
    out[o] = '\0';
    OPENSSL_cleanse(b64, n64);
    free(b64);
    return out;
}

int sshkey_private_openssh(const struct sshkey_ed25519 *k, const char *comment, char **ret_text)
{
    uint8_t priv[WIRE_ED25519], wire[WIRE_ED25519], sk[ED25519_SK];
    uint8_t blob[SSHKEY_ED25519_BLOB_LEN];
    struct wr p = {priv, 0, sizeof(priv), 0};
    struct wr w = {wire, 0, sizeof(wire), 0};
    uint32_t check;
    int rc = BD_E_INVAL;

    if (comment == NULL)
        comment = "";
    if (!sshkey_comment_valid(comment))
        return BD_E_INVAL;
    if (RAND_bytes((unsigned char *)&check, sizeof(check)) != 1) {
        ERR_clear_error();
        return BD_E_INTERNAL;
    }
    sshkey_ed25519_blob(k, blob);
    memcpy(sk, k->seed, SSHKEY_ED25519_LEN);
    memcpy(sk + SSHKEY_ED25519_LEN, k->pk, SSHKEY_ED25519_LEN);

    wr_u32(&p, check);
    wr_u32(&p, check);
    wr_string(&p, ED25519_TYPE, strlen(ED25519_TYPE));
    wr_string(&p, k->pk, sizeof(k->pk));
    wr_string(&p, sk, sizeof(sk));
    wr_string(&p, comment, strlen(comment));
    for (uint8_t pad = 1; p.len % BLOCK != 0; pad++)
        wr_bytes(&p, &pad, 1);

    wr_bytes(&w, MAGIC, MAGIC_LEN);
    wr_string(&w, "none", 4); /* cipher */
    wr_string(&w, "none", 4); /* kdf */
    wr_string(&w, "", 0);     /* kdf options */
    wr_u32(&w, 1);            /* keys */
    wr_string(&w, blob, sizeof(blob));
    wr_string(&w, priv, p.len);
    if (p.overflow || w.overflow) /* cannot happen with the comment capped */
        goto out;
    *ret_text = armor(wire, w.len);
    rc = 0;
out:
    OPENSSL_cleanse(priv, sizeof(priv));
    OPENSSL_cleanse(wire, sizeof(wire));
    OPENSSL_cleanse(sk, sizeof(sk));
    OPENSSL_cleanse(&check, sizeof(check));
    return rc;
}

/* ---- reading a private key ------------------------------------------------ */

void sshkey_private_release(struct sshkey_private *k)
{
    if (k == NULL)
        return;
    free(k->blob);
    free(k->comment);
    OPENSSL_cleanse(k, sizeof(*k));
}

/* 1 if the remaining bytes are the padding 1, 2, 3, ... (shorter than a block). */
static int padding_ok(const struct rd *r)
{
    if (r->left >= BLOCK)
        return 0;
    for (size_t i = 0; i < r->left; i++)
        if (r->p[i] != (uint8_t)(i + 1))
            return 0;
    return 1;
}

/* Which types we read and how many fields each has (PROTOCOL.key, sshkey.c). */
enum key_kind { KIND_ED25519, KIND_RSA, KIND_ECDSA };

static int kind_of(struct span type, enum key_kind *ret)
{
    if (span_is(type, ED25519_TYPE))
        *ret = KIND_ED25519;
    else if (span_is(type, "ssh-rsa"))
        *ret = KIND_RSA;
    else if (span_is(type, "ecdsa-sha2-nistp256") || span_is(type, "ecdsa-sha2-nistp384") ||
             span_is(type, "ecdsa-sha2-nistp521"))
        *ret = KIND_ECDSA;
    else
        return -1;
    return 0;
}

/*
 * The public fields of the blob (after its type) into f[]: ed25519 pk;
 * rsa e, n; ecdsa curve, Q.  -1 if the blob does not have that shape.
 */
static int public_fields(enum key_kind kind, struct span type, struct rd *r, struct span f[2])
{
    switch (kind) {
    case KIND_ED25519:
        if (rd_string(r, &f[0]) < 0 || f[0].len != SSHKEY_ED25519_LEN)
            return -1;
        break;
    case KIND_RSA:
        if (rd_string(r, &f[0]) < 0 || rd_string(r, &f[1]) < 0 || f[0].len == 0 || f[1].len == 0)
            return -1;
        break;
    case KIND_ECDSA: {
        /* the curve name is the type's suffix: ecdsa-sha2-nistp256 -> nistp256 */
        struct span curve = {type.p + strlen("ecdsa-sha2-"), type.len - strlen("ecdsa-sha2-")};
        if (rd_string(r, &f[0]) < 0 || !span_eq(f[0], curve) || rd_string(r, &f[1]) < 0 ||
            f[1].len == 0)
            return -1;
        break;
    }
    }
    return r->left == 0 ? 0 : -1;
}

/*
 * The private fields after the type, checked against the public ones pub[]:
 * ed25519 pk, sk (seed || pk); rsa n, e, d, iqmp, p, q; ecdsa curve, Q, d.
 * For ed25519 the seed is copied to *ed.  -1 for a mismatch or bad shape.
 */
static int private_fields(enum key_kind kind, struct rd *r, const struct span pub[2],
                          struct sshkey_ed25519 *ed)
{
    struct span f[6];

    switch (kind) {
    case KIND_ED25519:
        if (rd_string(r, &f[0]) < 0 || !span_eq(f[0], pub[0]) || rd_string(r, &f[1]) < 0 ||
            f[1].len != ED25519_SK ||
            memcmp(f[1].p + SSHKEY_ED25519_LEN, pub[0].p, SSHKEY_ED25519_LEN) != 0)
            return -1;
        memcpy(ed->seed, f[1].p, SSHKEY_ED25519_LEN);
        memcpy(ed->pk, pub[0].p, SSHKEY_ED25519_LEN);
        return 0;
    case KIND_RSA:
        for (int i = 0; i < 6; i++)
            if (rd_string(r, &f[i]) < 0 || f[i].len == 0)
                return -1;
        return span_eq(f[0], pub[1]) && span_eq(f[1], pub[0]) ? 0 : -1;
    case KIND_ECDSA:
        for (int i = 0; i < 3; i++)
            if (rd_string(r, &f[i]) < 0 || f[i].len == 0)
                return -1;
        return span_eq(f[0], pub[0]) && span_eq(f[1], pub[1]) ? 0 : -1;
    }
    return -1;
}

int sshkey_parse_private_binary(const uint8_t *bin, size_t len, struct sshkey_private *ret_key,
                                struct buf *why)
{
    struct sshkey_private k;
    struct rd r = {bin, len}, pr, br;
    struct span cipher, kdf, kdfopts, blob, priv, type, ptype, comment, pub[2] = {{NULL, 0}};
    const uint8_t *magic;
    uint32_t nkeys, check1, check2;
    enum key_kind kind;
    uint8_t derived[SSHKEY_ED25519_LEN];
    int rc = BD_E_INVAL;

    memset(&k, 0, sizeof(k));
    if (len > SSHKEY_TEXT_MAX) {
        say(why, "key is larger than %d bytes", SSHKEY_TEXT_MAX);
        return BD_E_TOO_BIG;
    }
    if (rd_bytes(&r, MAGIC_LEN, &magic) < 0 || memcmp(magic, MAGIC, MAGIC_LEN) != 0) {
        say(why, "not an openssh-key-v1 private key (bad magic)");
        goto out;
    }
    if (rd_string(&r, &cipher) < 0 || rd_string(&r, &kdf) < 0 || rd_string(&r, &kdfopts) < 0 ||
        rd_u32(&r, &nkeys) < 0) {
        say(why, "malformed private key: truncated header");
        goto out;
    }
    if (!span_is(cipher, "none")) {
        /* The cipher name is printed only when it is a plain name. */
        if (span_is_name(cipher))
            say(why,
                "key is passphrase-protected (cipher '%.*s'); bottled needs an unencrypted key",
                (int)cipher.len, (const char *)cipher.p);
        else
            say(why, "key is passphrase-protected; bottled needs an unencrypted key");
        goto out;
    }
    if (!span_is(kdf, "none") || kdfopts.len != 0) {
        say(why, "malformed private key: cipher 'none' with a kdf");
        goto out;
    }
    if (nkeys != 1) {
        say(why, "private key file holds %u keys; want 1", (unsigned)nkeys);
        goto out;
    }
    if (rd_string(&r, &blob) < 0 || rd_string(&r, &priv) < 0 || r.left != 0) {
        say(why, "malformed private key: bad key sections");
        goto out;
    }

    /* The public blob: its type names the key. */
    br = (struct rd){blob.p, blob.len};
    if (rd_string(&br, &type) < 0 || !span_is_name(type)) {
        say(why, "malformed private key: bad key type");
        goto out;
    }
    if (kind_of(type, &kind) < 0) {
        say(why, "unsupported key type '%.*s' (want ssh-ed25519, ssh-rsa or ecdsa-sha2-nistp*)",
            (int)type.len, (const char *)type.p);
        goto out;
    }
    if (public_fields(kind, type, &br, pub) < 0) {
        say(why, "malformed private key: bad %.*s public key", (int)type.len, (const char *)type.p);
        goto out;
    }

    /* The private section: check ints, the key again, comment, padding. */
    pr = (struct rd){priv.p, priv.len};
    if (priv.len % BLOCK != 0 || rd_u32(&pr, &check1) < 0 || rd_u32(&pr, &check2) < 0) {
        say(why, "malformed private key: bad private section length");
        goto out;
    }
    if (check1 != check2) {
        say(why, "malformed private key: check integers differ (corrupt file)");
        goto out;
    }
    if (rd_string(&pr, &ptype) < 0 || !span_eq(ptype, type) ||
        private_fields(kind, &pr, pub, &k.ed25519) < 0 || rd_string(&pr, &comment) < 0 ||
        !padding_ok(&pr)) {
        say(why, "malformed private key: private part does not match its public key");
        goto out;
    }
    if (kind == KIND_ED25519) {
        rc = ed25519_derive(k.ed25519.seed, derived);
        if (rc < 0) {
            say(why, "cannot derive the ed25519 public key (OpenSSL)");
            goto out;
        }
        if (memcmp(derived, k.ed25519.pk, SSHKEY_ED25519_LEN) != 0) {
            say(why, "malformed private key: ed25519 seed does not match its public key");
            rc = BD_E_INVAL;
            goto out;
        }
        k.is_ed25519 = 1;
    }

    memcpy(k.type, type.p, type.len);
    k.type[type.len] = '\0';
    k.blob = (uint8_t *)xmemdup0(blob.p, blob.len);
    k.blob_len = blob.len;
    sshkey_fingerprint(blob.p, blob.len, k.fingerprint);
    k.comment = xmemdup0(comment.p, comment.len);
    if (memchr(comment.p, '\0', comment.len) != NULL || !sshkey_comment_valid(k.comment))
        k.comment[0] = '\0';
    *ret_key = k;
    memset(&k, 0, sizeof(k));
    rc = 0;
out:
    sshkey_private_release(&k);
    OPENSSL_cleanse(derived, sizeof(derived));
    return rc;
}

/* Names what a non-openssh-key-v1 text is, for the refusal. */
static void say_not_openssh(const char *p, size_t len, struct buf *why)
{
    static const char begin[] = "-----BEGIN ";

    if (len > strlen(begin) && memcmp(p, begin, strlen(begin)) == 0) {
        const char *label = p + strlen(begin);
        size_t n = 0, max = len - strlen(begin);
        /* the label is printed only as far as it is plain: "RSA PRIVATE KEY" */
        while (n < max && n < PEM_LABEL_MAX && label[n] != '\0' &&
               strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", label[n]) != NULL)
            n++;
        say(why,
            "not an OpenSSH private key but a PEM '%.*s' block; convert it with "
            "ssh-keygen -p -f FILE",
            (int)n, label);
    } else if ((len >= 4 && memcmp(p, "ssh-", 4) == 0) ||
               (len >= 6 && memcmp(p, "ecdsa-", 6) == 0)) {
        say(why, "a public key line, not a private key");
    } else {
        say(why, "not an OpenSSH private key (no '" BEGIN_MARK "' line)");
    }
}

int sshkey_parse_private(const char *text, size_t len, struct sshkey_private *ret_key,
                         struct buf *why)
{
    const size_t blen = strlen(BEGIN_MARK), elen = strlen(END_MARK);
    const char *p = text, *end = text + len, *body, *stop;
    uint8_t *bin = NULL;
    size_t cap = 0, n = 0;
    int rc = BD_E_INVAL;

    if (len > SSHKEY_TEXT_MAX) {
        say(why, "key is larger than %d bytes", SSHKEY_TEXT_MAX);
        return BD_E_TOO_BIG;
    }
    while (p < end && is_space(*p))
        p++;
    if ((size_t)(end - p) < blen || memcmp(p, BEGIN_MARK, blen) != 0) {
        say_not_openssh(p, (size_t)(end - p), why);
        return BD_E_INVAL;
    }
    body = p + blen;
    if (body < end && *body == '\r')
        body++;
    if (body >= end || *body != '\n') {
        say(why, "malformed private key: no line break after the BEGIN line");
        return BD_E_INVAL;
    }
    stop = memmem(body, (size_t)(end - body), END_MARK, elen);
    if (stop == NULL) {
        say(why, "malformed private key: no '" END_MARK "' line");
        return BD_E_INVAL;
    }
    for (const char *q = stop + elen; q < end; q++) {
        if (!is_space(*q)) {
            say(why, "malformed private key: text after the END line");
            return BD_E_INVAL;
        }
    }
    cap = (size_t)(stop - body) / 4 * 3 + 3;
    bin = xmalloc(cap);
    if (b64_decode(body, (size_t)(stop - body), bin, &n) < 0) {
        say(why, "malformed private key: bad base64");
        goto out;
    }
    rc = sshkey_parse_private_binary(bin, n, ret_key, why);
out:
    OPENSSL_cleanse(bin, cap);
    free(bin);
    return rc;
}

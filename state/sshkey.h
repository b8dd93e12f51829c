/*
 * sshkey.h - OpenSSH key formats, for the gate's deploy keys.
 *
 * Generates ed25519 key pairs (OpenSSL 3), writes the private key in the
 * "openssh-key-v1" format (OpenSSH 9.2 does not read PKCS#8 ed25519 keys)
 * and the public key as an authorized_keys line, reads an openssh-key-v1
 * private key back (our own, or a user's static key), and computes the
 * fingerprint that `ssh-keygen -l` prints.  Pure functions: no files, no
 * logging.
 *
 * Secrets: struct sshkey_ed25519.seed, struct sshkey_private.ed25519 and
 * every private key text are key material.  They never go into a log line,
 * an error message (`why` names what is wrong, never a byte of the key),
 * argv or the database; release them with the functions below, which
 * overwrite them (OPENSSL_cleanse) before freeing.
 *
 * Errors: 0 or a negative enum bd_err (err.h).  The parsers explain a
 * refusal in one lowercase line appended to `why` (may be NULL):
 *   BD_E_INVAL     malformed input, a passphrase-protected key ("...
 *                  passphrase-protected ..."), an unsupported key type
 *                  ("unsupported key type 'X'"), a bad argument
 *   BD_E_TOO_BIG   the text is longer than SSHKEY_TEXT_MAX
 *   BD_E_INTERNAL  OpenSSL failed
 */
#ifndef BOTTLED_SSHKEY_H
#define BOTTLED_SSHKEY_H

#include <stddef.h>
#include <stdint.h>

struct buf;

#define SSHKEY_ED25519_LEN 32 /* seed and public key alike */
/* The public blob of an ed25519 key: string "ssh-ed25519", string pk. */
#define SSHKEY_ED25519_BLOB_LEN (4 + 11 + 4 + SSHKEY_ED25519_LEN)
/* "SHA256:" + 43 characters of unpadded base64 + NUL. */
#define SSHKEY_FP_SIZE     51
#define SSHKEY_TYPE_MAX    64
#define SSHKEY_COMMENT_MAX 256
/* Longest private key text read (a 16384-bit RSA key is about 12 KiB). */
#define SSHKEY_TEXT_MAX (64 * 1024)

struct sshkey_ed25519 {
    uint8_t seed[SSHKEY_ED25519_LEN]; /* secret: the RFC 8032 private key */
    uint8_t pk[SSHKEY_ED25519_LEN];
};

/* A fresh key pair from OpenSSL's generator.  BD_E_INTERNAL. */
int sshkey_ed25519_generate(struct sshkey_ed25519 *ret_key);
/* Overwrites the key (seed and pk). */
void sshkey_ed25519_cleanse(struct sshkey_ed25519 *k);

/* The public key blob of k (what fingerprints and public lines encode). */
void sshkey_ed25519_blob(const struct sshkey_ed25519 *k, uint8_t out[SSHKEY_ED25519_BLOB_LEN]);

/* "SHA256:" and the unpadded base64 of SHA-256(blob), as ssh-keygen -l. */
void sshkey_fingerprint(const uint8_t *blob, size_t len, char out[SSHKEY_FP_SIZE]);

/*
 * A comment is at most SSHKEY_COMMENT_MAX bytes without control characters
 * (bytes below 0x20 and 0x7f); NULL and "" mean none.
 */
int sshkey_comment_valid(const char *comment);

/*
 * The authorized_keys line "<type> <base64 blob>[ <comment>]" (no newline),
 * newly allocated, for a blob that starts with its type string (as every
 * blob sshkey_parse_private() returns does).  BD_E_INVAL for a bad comment
 * or blob.
 */
int sshkey_public_line(const uint8_t *blob, size_t len, const char *comment, char **ret_line);

/*
 * The private key k as unencrypted openssh-key-v1 text:
 * "-----BEGIN OPENSSH PRIVATE KEY-----\n", base64 wrapped at 70 columns,
 * "-----END OPENSSH PRIVATE KEY-----\n".  *ret_text is secret: free it
 * with sshkey_text_free().  BD_E_INVAL for a bad comment.
 */
int sshkey_private_openssh(const struct sshkey_ed25519 *k, const char *comment, char **ret_text);

/* Overwrites and frees a NUL-terminated secret string; NULL is fine. */
void sshkey_text_free(char *text);

/*
 * A parsed openssh-key-v1 private key.  Types read: ssh-ed25519 (the
 * private part checked against the public key: the seed must derive it),
 * ssh-rsa and ecdsa-sha2-nistp256/384/521 (checked structurally: the
 * private part's public fields equal the public blob's; the numbers
 * themselves are left to ssh).  Release with sshkey_private_release().
 */
struct sshkey_private {
    char type[SSHKEY_TYPE_MAX + 1]; /* from the public blob: "ssh-ed25519", ... */
    uint8_t *blob;                  /* the public key blob, owned */
    size_t blob_len;
    char fingerprint[SSHKEY_FP_SIZE];
    /* Owned; "" when the key's comment is empty or not sshkey_comment_valid(). */
    char *comment;
    int is_ed25519;
    struct sshkey_ed25519 ed25519; /* secret; set when is_ed25519 */
};

/*
 * Parses the text of an openssh-key-v1 private key: the BEGIN line (after
 * optional leading whitespace), base64 (whitespace ignored), the END line,
 * nothing but whitespace after it; not NUL-terminated, len bytes.  Exactly
 * one key, cipher and kdf "none": an encrypted key is refused as
 * passphrase-protected, another PEM block ("BEGIN RSA PRIVATE KEY", PKCS#8)
 * or a public key line is refused naming what it is.  On success *ret_key
 * is to be released.  Errors per the top of this file.
 */
int sshkey_parse_private(const char *text, size_t len, struct sshkey_private *ret_key,
                         struct buf *why);
/* The same for the decoded binary (what the base64 of the text holds). */
int sshkey_parse_private_binary(const uint8_t *bin, size_t len, struct sshkey_private *ret_key,
                                struct buf *why);
/* Frees and overwrites everything of k; a zeroed struct is fine. */
void sshkey_private_release(struct sshkey_private *k);

#endif

/*
 * keys.h - the gate's SSH keys: per-bottle deploy keys generated into the
 * state dir, and the static keys a manifest names in the keys dir.
 *
 * Generated keys (forge providers) live under the state dir's keys/, in a
 * subdirectory of their own, because keys/ is also the default --keys-dir
 * where users put static keys:
 *
 *   <state-dir>/keys/                      0700 (state_open creates it)
 *     bottled/<bottle>/<repo>/             0700 each
 *       id_ed25519                         0600, openssh-key-v1, unencrypted
 *       id_ed25519.pub                     0600, "ssh-ed25519 AAAA... comment\n"
 *
 * id_ed25519 is the truth: written once (temporary file, fsync, link, so
 * racing creators agree on one key), then read back; id_ed25519.pub is
 * derived from it and rewritten whenever it is missing or differs, so a
 * crash between the two writes heals on the next call.  Only the
 * fingerprint may reach the database; the private key text goes to the
 * gate container and nowhere else (see the top of state.h).
 *
 * Errors: 0 or a negative enum bd_err; `why` (may be NULL) gets one
 * lowercase line naming the path (never a byte of the key):
 *   BD_E_INVAL     a bad name or path, a malformed, passphrase-protected or
 *                  unsupported key (sshkey.h), a write through STATE_RDONLY
 *   BD_E_NOTFOUND  no such key (and the mode may not create one) or file
 *   BD_E_PERM      a key file or directory that is not ours or is
 *                  group/world accessible
 *   BD_E_TOO_BIG   a key file larger than SSHKEY_TEXT_MAX
 *   BD_E_IO        a file operation failed (errno)
 *   BD_E_INTERNAL  OpenSSL failed
 */
#ifndef BOTTLED_KEYS_H
#define BOTTLED_KEYS_H

#include "sshkey.h"

struct buf;
struct state;

/* The subdirectory of keys/ that holds generated keys. */
#define KEYS_GENERATED_DIR "bottled"

/* A key pair ready for the gate.  Release with deploy_key_release(). */
struct deploy_key {
    char type[SSHKEY_TYPE_MAX + 1];   /* "ssh-ed25519", "ssh-rsa", ... */
    char fingerprint[SSHKEY_FP_SIZE]; /* "SHA256:...", as ssh-keygen -l */
    char *public_line;                /* "<type> AAAA...[ comment]", no newline */
    char *private_text;               /* secret: the openssh-key-v1 file text */
};

/* Frees k's strings, overwriting the private text first; zeroes k. */
void deploy_key_release(struct deploy_key *k);

/*
 * The ed25519 deploy key of one bottle's repo.  STATE_EXCLUSIVE creates it
 * on first use, with `comment` (sshkey_comment_valid(); NULL for none), and
 * returns the same key, with the comment it was created with, afterwards;
 * the other modes only read it (BD_E_NOTFOUND).  bottle is a plain path
 * component ([A-Za-z0-9._-], no leading '.', at most 128 bytes); repo
 * matches ^[A-Za-z0-9._-]+$, at most 128 bytes, and is not "." or "..".
 * A file there that is not an unencrypted ed25519 key is BD_E_INVAL (it is
 * left alone: remove it by hand or with state_deploy_key_files_remove()).
 */
int state_deploy_key_ensure(struct state *st, const char *bottle, const char *repo,
                            const char *comment, struct deploy_key *ret_key, struct buf *why);

/*
 * Removes the key files of bottle/repo and their directory, and the
 * bottle's directory once empty (the forge no longer knows the key).
 * Missing is fine; STATE_RDONLY is BD_E_INVAL.
 */
int state_deploy_key_files_remove(struct state *st, const char *bottle, const char *repo,
                                  struct buf *why);

/*
 * A static key: keys_dir/rel_path, by manifest.md's rule.  rel_path is
 * relative with no ".." component; the file must exist, be a regular file
 * inside keys_dir after resolving links (realpath of both, compared at a
 * '/' boundary) but not under keys_dir/KEYS_GENERATED_DIR/ (another
 * bottle's generated keys), be owned by the running user and not
 * group/world accessible (as ssh itself demands), and hold an unencrypted
 * openssh-key-v1 key of a type sshkey_parse_private() reads.  private_text
 * is the file's text as it is; public_line carries the key's comment.
 *
 * A file swapped between the realpath check and the open is a race only
 * someone who can already write the keys dir can win.
 */
int static_key_load(const char *keys_dir, const char *rel_path, struct deploy_key *ret_key,
                    struct buf *why);

#endif

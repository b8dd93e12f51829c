/*
 * deploykeys.h - the lifecycle of a bottle's deploy keys at the forges, as
 * a finalizer (architecture.md "Order on create", "On delete", "State"):
 *
 *   - a bottle's repo with a forge provider gets one ed25519 key
 *     (state/keys.h), registered at the forge with write access under the
 *     title "bottled:<instance>:<bottle>:<repo>": the intent is recorded
 *     before the forge call, the key id after it;
 *   - a record that is not known to be registered (a new repo, an intent a
 *     crash left, a key that changed) is settled by listing the forge's
 *     keys: a key with our title and our public key is adopted, a key with
 *     our title and another public key is deleted, so there are never two
 *     keys for one bottle and repo;
 *   - a registered key is checked at the forge on a slow jittered schedule
 *     (dk_check_interval(), about 30 minutes) and when the gate reports an
 *     upstream authentication failure, and registered again when someone
 *     deleted it;
 *   - deleting a bottle deletes its keys at the forge (404 is done) before
 *     the records and key files are forgotten; a forge that fails leaves
 *     them, and the caller leaves the bottle Deleting;
 *   - `bottled gc` deletes keys titled "bottled:<instance>:" at every repo
 *     ever used (state_repos_used_each()) that no record owns.
 *
 * The forge token comes from the secret named by forge_token_env, looked
 * up for the API root's host (its binding must cover it); it goes to the
 * forge driver and nowhere else: messages name the secret, never its value.
 *
 * Threads: the functions take env->mu (when not NULL) around every use of
 * env->st; forge calls run without it.
 *
 * Errors: 0 or a negative enum bd_err with a malloc'd one-line message in
 * *ret_err (never a token or key): BD_E_UNAVAIL the forge did not answer
 * (retry later), BD_E_PERM / BD_E_NOTFOUND / BD_E_INVAL what the forge or
 * the secret store said, BD_E_IO the state.
 */
#ifndef BOTTLED_DEPLOYKEYS_H
#define BOTTLED_DEPLOYKEYS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "manifest.h"
#include "secrets.h"
#include "state.h"

#define DK_CHECK_INTERVAL_S 1800 /* the slow existence check, jittered +-25% */
#define DK_TITLE_PREFIX     "bottled:"

struct dk_env {
    struct state *st;
    pthread_mutex_t *mu; /* guards st; NULL: the caller's thread owns it */
    const struct secret_store *store;
    const char *forge_ca; /* --forge-ca; NULL: the system's trust store */
    const char *instance;
};

/* One repo of a bottle, resolved for the gate (pass.c fills these). */
struct dk_repo {
    const char *name;     /* the manifest's repo name */
    const char *provider; /* "static", "gitea", "github", "gitlab" */
    const char *api_root; /* forges: the API root */
    const char *repo_path;
    const char *token_env; /* forges: the secret's name */
    const char *url;       /* ssh://user@host:port/path */
    const char *host;
    int port;
    const char *host_key; /* pinned: the manifest's, else the learned one; NULL */
    int have_key;         /* key holds a key (generated, or static) */
    struct deploy_key key;
};

/*
 * Fills r from the manifest repo m: forge location and, with have_state,
 * the key (generated on first use when st is STATE_EXCLUSIVE, else only
 * read; a static key from keys_dir).  Strings are allocated in a.  0, or an
 * error with *ret_err (a static key that cannot be used, a bad url).
 * A forge key not generated yet (read-only) is not an error: have_key 0.
 */
struct arena;
int dk_repo_resolve(struct arena *a, struct state *st, const char *keys_dir, const char *bottle,
                    const struct m_repo *m, struct dk_repo *r, char **ret_err);
/* Wipes and frees r's key. */
void dk_repo_release(struct dk_repo *r);

/* "bottled:<instance>:<bottle>:<repo>", malloc'd. */
char *dk_title(const char *instance, const char *bottle, const char *repo);

/* The check interval in seconds: BOTTLED_KEY_CHECK_INTERVAL when set (tests), else
 * DK_CHECK_INTERVAL_S. */
long dk_check_interval(void);

/*
 * Why the bottle's keys need forge work now, or NULL: a forge repo with no
 * registered record for its key ("missing", "key changed", "intent
 * pending", "moved"), a record for a repo the bottle no longer has ("not
 * desired"), a check that is due ("check due"), or force ("gate
 * authentication failed").  Reads st only (st NULL: every forge repo is
 * missing).  The string is static or allocated in a.
 */
const char *dk_cause(struct arena *a, struct state *st, const char *bottle,
                     const struct dk_repo *repos, size_t n, int64_t auth_at);

/*
 * Brings the bottle's keys at the forges in line with repos: registers,
 * adopts, checks (when due, or auth_at is newer) and re-registers its forge keys, and
 * revokes the records of repos it no longer has.
 */
int dk_sync(const struct dk_env *env, const char *bottle, const struct dk_repo *repos, size_t n,
            int64_t auth_at, char **ret_err);

/*
 * Deletes every key of bottle at its forge, then forgets the records, the
 * key files and the learned host keys.  Stops at the first forge failure
 * (the rest stays recorded for the next try).  *ret_n: keys deleted.
 */
int dk_revoke_bottle(const struct dk_env *env, const char *bottle, size_t *ret_n, char **ret_err);

/* 1 if the state remembers keys of bottle. */
int dk_has_keys(struct state *st, const char *bottle);

/*
 * gc: at every repo ever used, deletes the keys titled "bottled:<instance>:"
 * that no record owns (another key id, or no record).  token_envs[] are
 * extra secret names to try for repos no record names (the manifests').
 * Counts in *ret_deleted; failures of single repos are reported in
 * *ret_err (the last one) and do not stop the others.
 */
int dk_gc(const struct dk_env *env, const char *const *token_envs, size_t n_token_envs,
          size_t *ret_deleted, char **ret_err);

#endif

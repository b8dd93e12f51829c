/*
 * state.h - the state directory and its SQLite database.
 *
 * SECRETS NEVER GO IN HERE.  Nothing in the state database or in the
 * plain files this module writes may hold a secret value, a token, an HMAC
 * of a single secret or a private key -- except the files that exist to
 * hold key material: hmac.key, each bottle CA's key.pem and each generated
 * deploy key's id_ed25519 (0600 in a 0700 directory).  Every string
 * argument below ends up in the database or a plain file and is assumed
 * not to be secret.
 *
 * Layout of a state dir (default: state_default_dir()):
 *
 *   <dir>/              0700, owned by the running user, else refused
 *     instance-id       0600, 12 lowercase hex + '\n', created once
 *     hmac.key          0600, 32 random bytes, created once
 *     lock              0600, flock()ed by mutating commands; holds the
 *                       holder's "pid N\nstarted T\n"
 *     keys/             0700, the default --keys-dir (users' static keys)
 *       bottled/<bottle>/<repo>/
 *                       0700, generated deploy keys: id_ed25519 and
 *                       id_ed25519.pub, 0600 (keys.h)
 *     ca/<bottle>/      0700, cert.pem and key.pem, both 0600
 *     repos-used        0600, "forge\tapi_root\trepo\n" lines, append-only
 *     state.db          0600, SQLite, WAL (plus -wal and -shm)
 *
 * The engine and the forges are the truth; the database is memory.  The
 * identity (instance-id, hmac.key) lives outside it on purpose: deleting
 * state.db alone must not change any name, label or hash, so that the next
 * pass adopts every resource again instead of recreating it.  The CA files
 * live outside it too (the key is secret).
 *
 * Modes (struct state_open_opts.mode):
 *   STATE_EXCLUSIVE  mutating commands (reconcile, watch, gc): takes the
 *                    lock without waiting (BD_E_LOCKED, naming the holder's
 *                    pid and start time, when another process has it);
 *                    creates the dir, identity files and database as
 *                    needed and applies migrations.
 *   STATE_RDONLY     read-only commands (plan, status, render, show): no
 *                    lock, nothing created or written; the database opens
 *                    with SQLITE_OPEN_READONLY and works while a writer
 *                    holds the lock.  A missing state.db reads as empty (an
 *                    in-memory database with the current schema); a missing
 *                    dir or identity file is BD_E_NOTFOUND.
 *   STATE_SHARED     approve-deletes only: the database read-write without
 *                    the lock (SQLite's own locking and the busy timeout
 *                    serialise it with a running `watch`); nothing else is
 *                    created or migrated.  Only state_approve_deletes() and
 *                    reads are meant for it.
 *
 * Errors: every function returns 0 or a negative enum bd_err.  state_open()
 * explains a failure in one lowercase line appended to `why` (may be NULL);
 * later calls leave the SQLite message in state_errmsg().  Codes with a
 * meaning of their own:
 *   BD_E_LOCKED    the lock is held (state_open), or the database stayed
 *                  busy past the timeout (any call): CLI exit 3
 *   BD_E_PERM      the state dir (or a file in it) is group/world
 *                  accessible or not owned by the running user: exit 2
 *   BD_E_MISMATCH  --instance differs from the recorded instance-id: exit 2
 *   BD_E_VERSION   state.db is newer than this binary (any mode), or older
 *                  and the mode cannot migrate (RDONLY, SHARED): exit 3
 *   BD_E_NOTFOUND  RDONLY/SHARED on a state dir (or identity file, or for
 *                  SHARED the database) that does not exist yet
 *   BD_E_INVAL     a malformed instance-id or hmac.key, a bad argument, or
 *                  a write through a STATE_RDONLY handle
 *   BD_E_IO        a file or the database failed (errno / state_errmsg())
 *
 * Strings handed to callbacks are borrowed and valid only during the call;
 * a callback returns 0 to go on, anything else to stop, and that value is
 * returned by the iterating function.
 *
 * Not thread-safe: one struct state per thread (the reconciler's loop).
 */
#ifndef BOTTLED_STATE_H
#define BOTTLED_STATE_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct state;

#define STATE_INSTANCE_ID_LEN 12
#define STATE_HMAC_KEY_LEN    32

enum state_mode {
    STATE_EXCLUSIVE,
    STATE_RDONLY,
    STATE_SHARED,
};

struct state_open_opts {
    const char *dir;      /* required */
    enum state_mode mode; /* see above */
    /*
     * --instance: 12 lowercase hex or NULL.  A new state dir records it
     * (adoption after losing the whole state dir); an existing one must
     * hold the same id, else BD_E_MISMATCH.
     */
    const char *instance;
    /* Milliseconds SQLite waits on a busy database; 0: 5000. */
    int busy_timeout_ms;
};

/*
 * The default state dir, newly allocated: /var/lib/bottled for root, else
 * $XDG_STATE_HOME/bottled (an absolute XDG_STATE_HOME only, per the XDG
 * spec), else $HOME/.local/state/bottled.  BD_E_NOTFOUND if neither
 * variable helps.
 */
int state_default_dir(char **ret_dir);

/*
 * Opens (and in STATE_EXCLUSIVE mode creates) the state dir o->dir.  Missing
 * parent directories are created 0700.  See the modes above.  On success
 * *ret_st is to be closed with state_close().
 */
int state_open(const struct state_open_opts *o, struct state **ret_st, struct buf *why);

/* Releases the lock (if held) and closes everything; NULL is fine. */
void state_close(struct state *st);

const char *state_dir(const struct state *st);
/* 12 lowercase hex characters, NUL-terminated. */
const char *state_instance_id(const struct state *st);
/* STATE_HMAC_KEY_LEN bytes: the instance key for config hashes. */
const uint8_t *state_hmac_key(const struct state *st);
/* The database's schema version (PRAGMA user_version). */
int state_schema_version(const struct state *st);
/* The newest schema version this binary knows. */
int state_schema_latest(void);
/* The last SQLite message of this connection; never NULL. */
const char *state_errmsg(const struct state *st);

/*
 * The CA of one bottle, as PEM strings the caller frees.  STATE_EXCLUSIVE
 * mints it on first use (EC P-256, self-signed, CA:TRUE pathlen:0,
 * keyUsage keyCertSign+cRLSign, 1 year, subject
 * "CN=bottled <instance> <bottle> CA") into ca/<bottle>/ and returns the
 * same pair afterwards; the other modes only read it (BD_E_NOTFOUND).  A
 * pair whose key does not match its certificate is BD_E_INVAL.  No
 * renewal yet: an expired CA is returned as it is (future work: re-mint
 * when less than a quarter of its lifetime is left, deliver, then retire).
 * The bottle name must be a plain path component ([A-Za-z0-9._-], no
 * leading '.', at most 128 bytes), else BD_E_INVAL.
 */
int state_bottle_ca(struct state *st, const char *bottle, char **ret_cert_pem, char **ret_key_pem);
/* Removes ca/<bottle>/ (the bottle is gone).  Missing is fine. */
int state_bottle_ca_remove(struct state *st, const char *bottle);

/* ---- transactions ------------------------------------------------------ */

/*
 * Groups writes into one transaction (BEGIN IMMEDIATE): a pass records
 * many small things and one commit is one fsync.  Without them every
 * write below is its own transaction.  Not nestable: BD_E_INVAL.
 */
int state_begin(struct state *st);
int state_commit(struct state *st);
/* Rolls back an open transaction; a no-op without one. */
void state_rollback(struct state *st);

/* ---- manifests seen ---------------------------------------------------- */

struct state_manifest {
    const char *path;
    const char *content_hash; /* sha256 hex of the bytes */
    const char *bottle;       /* the name it declares; NULL when unparsed */
    const char *parse_error;  /* first diagnostic; NULL when it parsed */
    int64_t seen_at;          /* set by put: now */
};

int state_manifest_put(struct state *st, const struct state_manifest *m);
int state_manifest_forget(struct state *st, const char *path);
int state_manifests_each(struct state *st, int (*cb)(const struct state_manifest *m, void *arg),
                         void *arg);

/* ---- bottles ----------------------------------------------------------- */

enum state_phase {
    STATE_PHASE_READY,       /* converged */
    STATE_PHASE_RECONCILING, /* work in progress or retrying after a failure */
    STATE_PHASE_STALLED,     /* waits for a person: invalid manifest, refused delete */
    STATE_PHASE_DEGRADED,    /* running with a known weakness (no host firewall) */
    STATE_PHASE_DELETING,    /* being removed; stays until the forge keys are gone */
};

/* "Ready", "Reconciling", ...; never NULL. */
const char *state_phase_name(enum state_phase p);
/* BD_E_INVAL for an unknown name. */
int state_phase_parse(const char *s, enum state_phase *ret_phase);

struct state_bottle {
    const char *name;
    int64_t generation; /* read only: bumped by put when spec_hash changes */
    const char *spec_hash;
    const char *manifest_hash;
    const char *config_hash;
    enum state_phase phase;
    const char *reason;
    const char *last_error; /* never a secret value: name the secret instead */
    int failures;           /* consecutive failures, for the backoff */
    int64_t next_retry;     /* 0: none */
    int64_t updated_at;     /* read only: set by put */
    int64_t last_pass_at;   /* the last pass that worked on it ended (Unix s); 0: none */
    int64_t last_pass_ms;   /* the bottle's own work in that pass, ms */
};

/* Inserts or replaces every field but generation and updated_at. */
int state_bottle_put(struct state *st, const struct state_bottle *b);
/*
 * Reads one bottle into *ret_b, with strings the caller owns: release
 * with state_bottle_release().  BD_E_NOTFOUND if there is no such row.
 */
int state_bottle_get(struct state *st, const char *name, struct state_bottle *ret_b);
void state_bottle_release(struct state_bottle *b);
int state_bottles_each(struct state *st, int (*cb)(const struct state_bottle *b, void *arg),
                       void *arg);
/* Forgets a bottle and its resources (not its deploy keys or events). */
int state_bottle_forget(struct state *st, const char *name);

/* ---- engine resources -------------------------------------------------- */

struct state_resource {
    const char *bottle;
    const char *role; /* int, egr, proxy, gate, agent, work, cfg, netns */
    const char *name;
    const char *engine_id; /* NULL until known */
    const char *spec_hash;
    int64_t created_at; /* read only: set when the row or its engine id is new */
};

/* Upserts by (bottle, role); creates a bare bottle row if there is none. */
int state_resource_put(struct state *st, const struct state_resource *r);
int state_resource_forget(struct state *st, const char *bottle, const char *role);
/* bottle NULL: every bottle's; ordered by bottle, role. */
int state_resources_each(struct state *st, const char *bottle,
                         int (*cb)(const struct state_resource *r, void *arg), void *arg);

/* ---- deploy keys and the repos ever used ------------------------------- */

enum state_key_state {
    STATE_KEY_INTENT,     /* about to be added at the forge */
    STATE_KEY_REGISTERED, /* the forge has it (key_id known) */
    STATE_KEY_DELETING,   /* being deleted at the forge */
};

const char *state_key_state_name(enum state_key_state k);

struct state_deploy_key {
    const char *bottle;
    const char *forge;
    const char *repo;
    const char *key_id;      /* NULL while only intended */
    const char *fingerprint; /* of the public key */
    enum state_key_state state;
    int64_t updated_at;    /* read only */
    const char *api_root;  /* the forge's API root ("" unknown) */
    const char *repo_path; /* the repository there ("owner/repo"; "" unknown) */
    const char *token_env; /* the NAME of the token's secret, never the token; may be NULL */
    int64_t checked_at;    /* the forge last confirmed the key; 0: never */
};

int state_deploy_key_put(struct state *st, const struct state_deploy_key *k);
int state_deploy_key_forget(struct state *st, const char *bottle, const char *forge,
                            const char *repo);
/* bottle NULL: all. */
int state_deploy_keys_each(struct state *st, const char *bottle,
                           int (*cb)(const struct state_deploy_key *k, void *arg), void *arg);

/*
 * Host keys a gate learned on first use (public "type base64" lines, no CR
 * or LF), per bottle and manifest repo name; put replaces.  bottle NULL: all.
 */
int state_host_key_put(struct state *st, const char *bottle, const char *repo,
                       const char *host_key);
int state_host_keys_forget(struct state *st, const char *bottle);
int state_host_keys_each(struct state *st, const char *bottle,
                         int (*cb)(const char *bottle, const char *repo, const char *host_key,
                                   void *arg),
                         void *arg);

/*
 * Records that a deploy key may exist at forge/api_root for repo: in the
 * database and, when the database did not know it, as one appended line in
 * the plain file repos-used (fsynced first, so it survives losing the
 * database).  Fields must not contain tab, CR or LF (BD_E_INVAL).
 */
int state_repo_used(struct state *st, const char *forge, const char *api_root, const char *repo);
/*
 * Every repo ever used: the database's rows and the file's lines, without
 * duplicates, so a lost database still knows them.
 */
int state_repos_used_each(struct state *st,
                          int (*cb)(const char *forge, const char *api_root, const char *repo,
                                    void *arg),
                          void *arg);

/* ---- the event log ----------------------------------------------------- */

struct state_event {
    int64_t id; /* increasing */
    int64_t ts;
    const char *bottle; /* NULL: instance-wide */
    const char *kind;
    const char *detail; /* may be NULL */
};

int state_event_add(struct state *st, const char *bottle, const char *kind, const char *detail);
/*
 * The last `limit` events (of one bottle, or all if bottle is NULL), oldest
 * first.  limit 0: all.
 */
int state_events_each(struct state *st, const char *bottle, size_t limit,
                      int (*cb)(const struct state_event *e, void *arg), void *arg);

/* ---- intents: write before an external side effect, confirm after ------ */

struct state_intent {
    int64_t id;
    const char *bottle;
    const char *action;   /* "create", "remove", "add-key", ... */
    const char *resource; /* what it acts on: an engine name, forge:repo ... */
    int64_t created_at;
};

/*
 * Records that the side effect `action` on `resource` is about to happen;
 * *ret_id names it.  Call it outside state_begin(): inside one the intent
 * is only durable once that transaction commits, which is too late.
 */
int state_intent_begin(struct state *st, const char *bottle, const char *action,
                       const char *resource, int64_t *ret_id);
/* Marks it done.  BD_E_NOTFOUND for an unknown or already-done id. */
int state_intent_done(struct state *st, int64_t id);
/* The unfinished intents, oldest first: the next run checks each one. */
int state_intents_pending(struct state *st, int (*cb)(const struct state_intent *i, void *arg),
                          void *arg);

/* ---- passes ------------------------------------------------------------ */

struct state_pass {
    int64_t id;
    int64_t started_at;
    int64_t finished_at; /* 0: running, or the process died */
    int changes;
    int failures;
    const char *gc_blocked; /* the path that blocked deletions, or NULL */
    const char *trigger;    /* what started it (watch's trigger, or the command); may be NULL */
    int64_t duration_ms;    /* wall time; 0 while running (or from before schema 2) */
};

/* trigger: "reconcile", "gc", or watch's trigger ("change", "resync", ...). */
int state_pass_begin(struct state *st, const char *trigger, int64_t *ret_id);
int state_pass_end(struct state *st, int64_t id, int changes, int failures, const char *gc_blocked,
                   int64_t duration_ms);
/* The last `limit` passes, oldest first. */
int state_passes_each(struct state *st, size_t limit,
                      int (*cb)(const struct state_pass *p, void *arg), void *arg);

/* ---- the watcher's live view (bottled status) ------------------------------ */

enum state_activity {
    STATE_ACT_IDLE,     /* waiting for a change or a timer */
    STATE_ACT_SETTLING, /* hints came in; the settle window runs */
    STATE_ACT_DEFERRED, /* a pass is wanted but waits (detail: why) */
    STATE_ACT_PASS,     /* a pass runs (detail: its trigger) */
    STATE_ACT_STOPPED,  /* the watcher exited cleanly */
};

struct state_watcher {
    int64_t pid;
    int64_t started_at; /* Unix s */
    const char *backend;
    const char *dir;
    enum state_activity activity;
    const char *detail;  /* may be NULL */
    int64_t since;       /* the activity began, Unix s */
    int64_t next_resync; /* Unix s; 0: unknown */
    int64_t passes;      /* passes run so far */
};

const char *state_activity_name(enum state_activity a);
/* Writes the one watcher row (STATE_EXCLUSIVE: the watcher holds the lock). */
int state_watcher_put(struct state *st, const struct state_watcher *w);
/* Reads it into *ret_w with strings the caller owns (state_watcher_release);
 * BD_E_NOTFOUND when no watcher ever ran on this state dir. */
int state_watcher_get(struct state *st, struct state_watcher *ret_w);
void state_watcher_release(struct state_watcher *w);

/* ---- delete approvals (bottled approve-deletes) ------------------------ */

/* Records a one-shot approval; works in STATE_SHARED while `watch` runs. */
int state_approve_deletes(struct state *st, const char *bottle);
/* Consumes the approval of bottle if there is one: *ret_approved 1 or 0. */
int state_approval_take(struct state *st, const char *bottle, int *ret_approved);
/* How many approvals wait to be taken (a cheap read: `watch` polls it while
 * a refusal is pending, so approve-deletes needs no signal). */
int state_approvals_count(struct state *st, int64_t *ret_n);

#endif

/*
 * forge.h - the forge driver interface: deploy keys at Gitea (and
 * Forgejo), GitHub and GitLab behind one small ops table, looked up by
 * provider name, plus the pure helpers that map a manifest repo to a forge
 * (manifest.md, "Repo").
 *
 * Backends: "gitea" (forge_gitea.c; "forgejo" is the same backend),
 * "github" (forge_github.c), "gitlab" (forge_gitlab.c).  All speak HTTPS
 * through forge_http.c: libcurl, certificates verified (against ca_file
 * when one is given), no redirects followed, timeouts, 429/5xx and
 * rate-limit answers retried with backoff (see struct forge_opts).
 *
 * Repositories are named by their path, "owner/repo" (GitLab:
 * "group/sub/project"), as forge_repo_path() returns it; the backend does
 * the per-forge encoding (GitLab's URL-encoded project id).  Keys are
 * always registered with write access: the gate pushes with them.
 *
 * The token: forge_open() copies it; it goes into one request header and
 * nowhere else (never into a URL, argv, a log or an error message: every
 * message is checked for it before it is stored), and it is wiped when the
 * forge is closed.  (libcurl's own copy of the request it sent is freed
 * without wiping; that is outside our reach.)
 *
 * Ownership: inputs are the caller's and only read.  Outputs (ret_*) are
 * written only on success and owned by the caller afterwards.
 *
 * Errors: 0 or a negative code of err.h.  The codes that mean something
 * specific here:
 *   BD_E_INVAL     bad argument (unknown provider, an API root that is not
 *                  https://, a repo path the forge cannot name), or the
 *                  forge refused the request as invalid (HTTP 400/422)
 *   BD_E_EXISTS    the forge says the key (or its title) is already there
 *                  (HTTP 422 "already ..."); GitLab instead answers an add
 *                  of a key the project already has with that key, which
 *                  add_key returns as a success, unless it lacks write
 *                  access (BD_E_EXISTS then too)
 *   BD_E_PERM      the token was rejected (401) or lacks the rights (403)
 *   BD_E_NOTFOUND  the repository does not exist or the token cannot see
 *                  it (404); delete_key treats a missing key as done
 *   BD_E_UNAVAIL   the forge did not answer, kept answering 429/5xx after
 *                  the retries, or asked to wait longer than max_wait_s
 *                  (forge_retry_at() then says until when)
 *   BD_E_PROTO     the forge answered something we cannot use (not JSON,
 *                  a redirect, a next-page link to another origin)
 *   BD_E_TOO_BIG   a response or the key list exceeded its cap
 * After a failure forge_errmsg() says why in one line, naming the forge,
 * the operation and the repository; it holds the forge's own message
 * where it gave one, never a request body or the token.
 *
 * Threads: a struct forge is one connection and is used by one thread at
 * a time.
 */
#ifndef BOTTLED_FORGE_H
#define BOTTLED_FORGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---------------------------------------------------------------- data */

struct forge_key {
    int64_t id;
    char *title;
    char *key;         /* the public key line as the forge reports it */
    char *fingerprint; /* as the forge gives it ("SHA256:..."), NULL if it gives none */
    bool read_only;
};
struct forge_key_list {
    struct forge_key *v;
    size_t n;
};
void forge_key_release(struct forge_key *k);
void forge_key_list_release(struct forge_key_list *l);

/* Tokens shorter than this are refused (no forge issues such tokens, and
 * scrubbing messages of a two-byte token would mask every other word). */
#define FORGE_TOKEN_MIN 8

/* Caps on what a list may bring back. */
#define FORGE_MAX_PAGES 200
#define FORGE_MAX_KEYS  10000

/* ---------------------------------------------------------------- ops */

struct forge;
struct forge_resp;

/*
 * One backend.  Each op has the meaning and errors of the forge_*()
 * wrapper of the same name below.  The header fields are data: the
 * transport sends auth_header immediately followed by the token, and every
 * line of headers (NULL-terminated, may be NULL) with each request.
 */
struct forge_ops {
    const char *name;
    const char *auth_header; /* "Authorization: token ", "PRIVATE-TOKEN: " */
    const char *const *headers;
    int (*add_key)(struct forge *f, const char *repo, const char *title, const char *pubkey_line,
                   int64_t *ret_id);
    int (*list_keys)(struct forge *f, const char *repo, struct forge_key_list *ret);
    int (*delete_key)(struct forge *f, const char *repo, int64_t id);
};

extern const struct forge_ops forge_gitea_ops;
extern const struct forge_ops forge_github_ops;
extern const struct forge_ops forge_gitlab_ops;

/* The backend for a provider name ("gitea", "forgejo", "github",
 * "gitlab"), or NULL. */
const struct forge_ops *forge_ops_lookup(const char *provider);

/* Retries and timeouts; forge_open() starts from forge_opts_default. */
struct forge_opts {
    int max_retries; /* retries after the first attempt; default 3 */
    int max_wait_s;  /* the longest single wait accepted; a forge asking
                        for more fails the call at once; default 60 */
    int timeout_s;   /* per request, connecting included; default 30 */
    long backoff_ms; /* first wait when the forge gave no hint, doubled
                        per retry; default 1000 */
    /* Does every wait (ms > 0) in the driver's place; NULL: the driver
     * sleeps.  Tests use it to see the waits (and could shorten them). */
    void (*sleep_ms)(void *ud, long ms);
    void *sleep_ud;
};
/* The defaults: {3, 60, 30, 1000, NULL, NULL}. */
extern const struct forge_opts forge_opts_default;

/* The handle: fields are for forge*.c only. */
struct forge {
    const struct forge_ops *ops;
    char *api_root; /* without a trailing '/' */
    struct forge_http *http;
    struct forge_opts opts;
    unsigned long mutations;
    time_t retry_at;
    char what[160]; /* the current call, for messages: "gitea: list keys of 'o/r'" */
    char errmsg[512];
};

/*
 * Opens a forge client.  provider as for forge_ops_lookup(); api_root is
 * "https://host[:port][/path]" (forge_default_api_root() when the manifest
 * gave none); token is copied; ca_file (NULL or "": the system's trust
 * store) is a PEM bundle that replaces the system's trust store for this
 * forge (`--forge-ca`).  No
 * request is made.  BD_E_INVAL for an unknown provider, a token shorter
 * than FORGE_TOKEN_MIN or with blanks or control characters, or an API
 * root that is not an https:// URL (user info, query and fragment are
 * refused too).  On failure *ret is
 * untouched and a message is written to errmsg (may be NULL).
 */
int forge_open(const char *provider, const char *api_root, const char *token, const char *ca_file,
               struct forge **ret, char *errmsg, size_t errmsg_len);
/* Wipes the token and frees.  NULL is a no-op. */
void forge_close(struct forge *f);

void forge_set_opts(struct forge *f, const struct forge_opts *opts);

/* Why the last call failed ("" after a success); valid until the next call. */
const char *forge_errmsg(const struct forge *f);
/* Requests sent that change forge state (POST, DELETE), retries included. */
unsigned long forge_mutations(const struct forge *f);
/* After a BD_E_UNAVAIL caused by rate limiting: the time before which the
 * forge asked not to be called again; 0 otherwise. */
time_t forge_retry_at(const struct forge *f);

/*
 * Registers pubkey_line ("ssh-ed25519 AAAA... comment") on repo under
 * title, with write access, and returns the forge's key id.  BD_E_EXISTS
 * when the forge refuses a duplicate key or title.  Note that a retried
 * POST (after a 5xx) may meet the key the first attempt created: callers
 * reconcile by listing keys and matching titles.
 */
int forge_add_key(struct forge *f, const char *repo, const char *title, const char *pubkey_line,
                  int64_t *ret_id);
/* Every key of repo, every page followed (at most FORGE_MAX_PAGES pages and
 * FORGE_MAX_KEYS keys, else BD_E_TOO_BIG). */
int forge_list_keys(struct forge *f, const char *repo, struct forge_key_list *ret);
/* Removes key id from repo; 0 also when it is already gone (404; a forge
 * answers a repository the token cannot see the same way). */
int forge_delete_key(struct forge *f, const char *repo, int64_t id);

/* ---------------------------------------------------------------- helpers */

/*
 * The default API root of a provider for a repo on url_host (manifest.md):
 * gitea/forgejo "https://<host>/api/v1", github "https://api.github.com",
 * gitlab "https://<host>/api/v4".  url_host is the ssh url's host without
 * the port (the SSH port says nothing about HTTPS).  *ret is allocated.
 * BD_E_INVAL for an unknown provider or an empty host.
 */
int forge_default_api_root(const char *provider, const char *url_host, char **ret);

/*
 * The repository path of an ssh://user@host[:port]/path url: the path
 * without its leading '/', a trailing ".git" and trailing '/'s, as the
 * manifest computes it.  The forge driver is stricter than the manifest:
 * at least two segments, each of [A-Za-z0-9._-] and not "." or "..".
 * *ret is allocated; BD_E_INVAL otherwise.
 */
int forge_repo_path(const char *ssh_url, char **ret);

/*
 * The host of an API root, normalised as secret bindings are
 * (host_normalize()), for checking a token's binding with
 * host_binding_covers() before the token is used.  *ret is allocated.
 */
int forge_api_root_host(const char *api_root, char **ret);

/*
 * Parses a key list (a JSON array of key objects) and appends every key
 * to *list (which the caller initialised, possibly empty).  Fields: "id"
 * (required, a positive integer), "title", "key", "fingerprint" (GitLab:
 * "fingerprint_sha256" first), and write access from "read_only" or, with
 * can_push set (GitLab), from "can_push".  BD_E_PROTO if the JSON is not
 * an array of such objects; *list is unchanged then.
 */
int forge_parse_key_list(const char *json, size_t len, bool can_push, struct forge_key_list *list);
/* One key object (the answer to an add). */
int forge_parse_key(const char *json, size_t len, bool can_push, struct forge_key *ret);

/* ---------------------------------------------------------------- for backends */

/* A message for the caller (lowercase, one line); the token is scrubbed. */
void forge_set_errmsg(struct forge *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks that repo is a path this forge can name: "owner/repo", or with
 * subgroups "group/sub/.../project" (segments as forge_repo_path()); sets
 * the message and returns BD_E_INVAL if not. */
int forge_check_repo(struct forge *f, const char *repo, bool subgroups);

/*
 * GETs url and the pages after it into *ret.  next() returns the URL of
 * the page after page number `page` (1-based) that brought r and n_page
 * keys, n_total keys so far, or NULL when that was the last page; it may
 * set *err (BD_E_PROTO, with a message) to stop.  can_push as for
 * forge_parse_key_list().  Pages and keys are capped (FORGE_MAX_*).
 */
typedef char *forge_next_page_fn(struct forge *f, const char *repo, int page,
                                 const struct forge_resp *r, size_t n_page, size_t n_total,
                                 int *err);
int forge_get_pages(struct forge *f, const char *repo, char *url, bool can_push,
                    forge_next_page_fn *next, struct forge_key_list *ret);

#endif

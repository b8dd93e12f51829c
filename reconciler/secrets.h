/*
 * secrets.h - the reconciler's secret store (manifest.md, "Secrets").
 *
 * Manifests name secrets (`auth.token_ref`, `forge_token_env`); the values
 * live here, each bound to the hosts that may receive it.  Two sources:
 *
 *   - a secrets file (`--secrets FILE`, default `<state-dir>/secrets`),
 *     one secret per line:
 *
 *         # comment
 *         NAME@host1,*.host2=value
 *
 *     NAME matches ^[A-Z_][A-Z0-9_]*$ (at most 256 bytes); the value is
 *     everything after the first '=' (it may contain '=' and '@'), 1 to
 *     16384 bytes, no control characters, no leading or trailing space (it
 *     becomes a header value).  Blank lines and lines whose first non-blank
 *     character is '#' are skipped; a trailing CR is dropped; blanks around
 *     the name and around each binding entry are ignored.  The file is
 *     opened without following a symlink and must be a regular file owned
 *     by the running user with mode 0600 or 0400 (checked on the open fd);
 *   - `--secret-env NAME@hosts`: the environment variable NAME, with that
 *     binding.
 *
 * Bindings: a comma-separated list of host names or "*.suffix" patterns,
 * stored in host_normalize() form, or exactly "*" (any host: an explicit
 * opt-out, reported as a warning that names the secret).  A secret without
 * a binding is an error, so is a name defined twice (in the file or across
 * file and environment).
 *
 * Invariant: no diagnostic, return value or message produced here contains
 * a secret value or any part of it.  Where the text that failed to parse
 * might be a value (a line without '=', an invalid name), it is not quoted.
 * Values are wiped (OPENSSL_cleanse) when the store is freed, and the file
 * buffer is wiped after parsing.
 *
 * The store is a snapshot: a caller re-loads it on every pass, so a rotated
 * value is picked up.
 */
#ifndef BOTTLED_SECRETS_H
#define BOTTLED_SECRETS_H

#include <stddef.h>

#include "diag.h"

#define SECRET_NAME_MAX  256
#define SECRET_VALUE_MAX 16384
#define SECRETS_FILE_MAX ((size_t)1 << 20)

struct secret {
    char *name;
    char *value; /* never logged, never in a diagnostic */
    size_t value_len;
    char **hosts; /* binding, normalised; {"*"} for any host */
    size_t n_hosts;
    int any_host; /* the binding is "*" */
    char *origin; /* "FILE:LINE" or "--secret-env": where it was defined */
};

struct secret_store {
    struct secret *v; /* in definition order (file first, then environment) */
    size_t n;
};

/*
 * Loads the store.  path is the secrets file; when it does not exist the
 * store is empty unless must_exist (the user named the file) makes that an
 * error.  env_specs are the `--secret-env` arguments ("NAME@hosts").
 *
 * Returns 0 and a new store (warnings, e.g. a "*" binding, may have been
 * added to diags), or, with at least one error in diags and *ret untouched:
 *   BD_E_INVAL     the file's type, owner or mode is refused, or it is a symlink;
 *   BD_E_NOTFOUND  must_exist and the file does not exist;
 *   BD_E_IO        the file could not be read;
 *   BD_E_TOO_BIG   the file is over SECRETS_FILE_MAX;
 *   BD_E_PARSE     bad lines or specs (every one reported, positioned
 *                  "FILE:LINE"), a missing environment variable, a duplicate.
 * All of these are bottled's own configuration being wrong (exit 2).
 */
int secret_store_load(const char *path, int must_exist, const char *const *env_specs,
                      size_t n_env_specs, struct diag_list *diags, struct secret_store **ret);

/* Wipes every value and frees.  NULL is a no-op. */
void secret_store_free(struct secret_store *s);

/*
 * The secret `name` for a route (or API root) host route_host (normalised,
 * maybe "*.suffix").  Its binding covers the host when an entry equals it,
 * when an entry "*.x" matches it (route_host not itself a wildcard), or when
 * the binding is "*"; a "*.x" route host is covered only by the entry "*.x"
 * itself (or "*").
 *
 * Returns 0 and the secret (owned by the store) in *ret, BD_E_NOTFOUND when
 * no secret has that name, or BD_E_INVAL when its binding does not cover
 * route_host.  secret_lookup_message() says which, in words.
 */
int secret_store_lookup(const struct secret_store *s, const char *name, const char *route_host,
                        const struct secret **ret);

/*
 * The message for an error of secret_store_lookup(), naming the secret, the
 * host and (for a binding error) the binding, never the value.  malloc'd.
 */
char *secret_lookup_message(const struct secret_store *s, int err, const char *name,
                            const char *route_host);

/* 1 if name matches ^[A-Z_][A-Z0-9_]*$ and is at most SECRET_NAME_MAX bytes. */
int secret_name_ok(const char *name, size_t len);

#endif

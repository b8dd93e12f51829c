/*
 * pconf.h - the sidecar's configuration model: one immutable snapshot.
 *
 * The reconciler renders a generation directory (architecture.md, "Sidecar:
 * config delivery") into the cfg volume:
 *
 *   cfg/
 *     current              -> "gen-<id>" (a one-line file naming the live
 *                             generation, written last, atomically renamed)
 *     gen-<id>/
 *       MANIFEST           "bottled-proxy-config 1" line, "config-hash <hex>",
 *                          then one "file <sha256-hex> <name>" line per file
 *       routes.json        schemas/proxy-routes.schema.json
 *       secrets.json       schemas/proxy-secrets.schema.json (0600)
 *       ca.pem             the bottle CA certificate (PEM)
 *       ca-key.pem         its private key (PEM, 0600)
 *       upstream-ca.pem    optional: CA bundle for upstream verification
 *
 * pconf_load() reads one generation, checks every digest in MANIFEST
 * (a file missing from MANIFEST or an extra file is an error), parses and
 * validates the JSON, and returns a struct pconf that is never modified
 * afterwards: the proxy swaps a pointer to a new one on reload and frees
 * the old one when its last user lets go (pconf_ref/pconf_unref).
 *
 * Routes use the canonical route form of `bottled show` (manifest.md route
 * fields, defaults filled in, hosts already normalised by the reconciler;
 * the loader re-validates them all the same, it trusts nothing on disk).
 * The formats are in schemas/proxy-routes.schema.json,
 * schemas/proxy-secrets.schema.json and schemas/proxy-manifest.md.
 *
 * What "valid" means beyond the schemas: `current` holds exactly
 * "gen-<id>\n" (id: 1-64 of [A-Za-z0-9_-]); the generation directory and
 * every file in it are opened without following symlinks and must be
 * regular files within a size cap (routes 4 MiB, secrets 1 MiB, ca.pem and
 * ca-key.pem 64 KiB, upstream-ca.pem 1 MiB);
 * every file but MANIFEST is listed in it and its SHA-256 matches; hosts are
 * already in host_normalize() form; regexes compile with PCRE2 (anchored
 * at both ends); a route's token_ref names a secret whose binding covers the
 * route host (an exact host: an equal binding or a "*.suffix" that matches
 * it; a "*.x" route: only the binding "*.x" itself; "*" covers everything
 * and is reported as a warning, the logged opt-out of manifest.md); ca.pem
 * is one CA certificate (basicConstraints CA:TRUE, not expired) and
 * ca-key.pem its unencrypted private key.
 *
 * routes.json may also hold "tunnels" (optional; absent means none): each
 * entry a host (host_normalize() form, no wildcard, not an IP literal), a
 * port (1-65535) and token_sha256 (64 lower-case hex digits, the SHA-256
 * of the token), host and port unique.  A tunnel is the one raw, un-bumped
 * relay the proxy opens: for the git gate's ssh (tunnel.h).
 */
#ifndef BOTTLED_PCONF_H
#define BOTTLED_PCONF_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"

enum pconf_path_type { PCONF_PATH_PREFIX, PCONF_PATH_EXACT, PCONF_PATH_REGEX };
enum pconf_header_type { PCONF_HEADER_EXACT, PCONF_HEADER_REGEX };
enum pconf_action { PCONF_ACTION_OFF, PCONF_ACTION_AUDIT, PCONF_ACTION_BLOCK };

#define PCONF_DLP_TOKEN_PATTERNS  0x1u
#define PCONF_DLP_KNOWN_SECRETS   0x2u
#define PCONF_DLP_NAIVE_INJECTION 0x4u

struct pconf_path {
    enum pconf_path_type type;
    char *value;
};

struct pconf_header {
    char *name; /* lower-case */
    char *value;
    enum pconf_header_type type;
};

struct pconf_match {
    struct pconf_path *paths;
    size_t n_paths;
    char **methods; /* upper-case */
    size_t n_methods;
    struct pconf_header *headers;
    size_t n_headers;
};

struct pconf_secret;

struct pconf_route {
    char *host; /* lower-case A-labels, maybe "*.suffix" */
    int *ports;
    size_t n_ports;
    char *role;                        /* NULL if none */
    char *auth_scheme;                 /* "Bearer" or "token"; NULL: no auth */
    char *token_ref;                   /* secret name */
    const struct pconf_secret *secret; /* token_ref's secret, same snapshot; NULL: no auth */
    struct pconf_match *matches;
    size_t n_matches;         /* 0: every request to the host and port */
    unsigned dlp_out, dlp_in; /* detector bits */
    enum pconf_action dlp_out_action, dlp_in_action;
    int git_fetch;
};

struct pconf_secret {
    char *name;
    char *value; /* never logged, never in a diagnostic */
    size_t value_len;
    char **hosts; /* binding: host names or "*.suffix"; "*" = any (logged opt-out) */
    size_t n_hosts;
    int any_host; /* the binding is "*": log every use */
};

struct pconf_tunnel {
    char *host; /* lower-case A-labels, no wildcard */
    int port;
    unsigned char token_sha256[32]; /* SHA-256 of the token (the token itself is never here) */
};

struct pconf_static_host {
    char *name;
    char *ip; /* literal, v4 or v6 */
};

struct pconf_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
};

struct pconf {
    int refs;             /* touched only by the event loop thread */
    struct arena arena;   /* owns every pointer below */
    char config_hash[65]; /* from MANIFEST: what the admin endpoint reports */
    char *generation;     /* "gen-<id>" */
    char *bottle;

    struct pconf_route *routes;
    size_t n_routes;
    struct pconf_secret *secrets;
    size_t n_secrets;
    struct pconf_tunnel *tunnels;
    size_t n_tunnels;

    char *dns_server; /* NULL: the container's resolver */
    struct pconf_static_host *hosts;
    size_t n_hosts;
    struct pconf_cidr *allow_private;
    size_t n_allow_private;

    char *ca_cert_pem, *ca_key_pem; /* contents */
    char *upstream_ca_pem;          /* NULL: system store */
};

/*
 * Loads the generation that cfg_dir/current names, or, when gen is
 * non-NULL, the generation directory cfg_dir/gen ("gen-<id>", the same
 * name rule).  Returns 0 and a new snapshot with refs == 1, or BD_E_PARSE
 * (the generation is invalid) or BD_E_IO (something could not be read; errno
 * is not meaningful) with at least one error in diags and *ret untouched.
 * Diagnostics name the file and, for JSON, the path inside it
 * ("routes[3].matches[0].paths[1].value: ..."); none contains a secret
 * value.  Warnings (a "*" binding) may be added on success.
 */
int pconf_load(const char *cfg_dir, const char *gen, struct diag_list *diags, struct pconf **ret);

/*
 * The JSON half of pconf_load(), on bytes in memory (for tests and the fuzz
 * target): validates secrets.json then routes.json (labelled routes_path and
 * secrets_path in diagnostics) and returns a snapshot without generation,
 * config hash or PEMs.  The bytes need not be NUL-terminated.  Same returns
 * as pconf_load().
 */
int pconf_parse_json(const char *routes_path, const char *routes, size_t routes_len,
                     const char *secrets_path, const char *secrets, size_t secrets_len,
                     struct diag_list *diags, struct pconf **ret);

/* Takes a reference; returns c. */
struct pconf *pconf_ref(struct pconf *c);
/* Drops a reference; the last one wipes secret values and the CA key and frees. NULL is a no-op. */
void pconf_unref(struct pconf *c);

#endif

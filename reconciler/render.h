/*
 * render.h - one bottle's sidecar configuration generation.
 *
 * render_bottle() turns a resolved bottle, the secret store and the
 * `--proxy-*` knobs into the files of a config generation
 * (schemas/proxy-manifest.md): routes.json, secrets.json, MANIFEST and the
 * PEM files the caller passes in, plus the config hash the sidecar reports
 * back.  It writes nothing: delivery (the cfg volume, `current`, SIGHUP) is
 * the caller's.
 *
 * routes.json is the canonical JSON text (json_canon.h, compact) of
 *
 *     {"version": 1, "bottle": NAME, "routes": <the canonical routes of
 *      `bottled show`, bottle_canonical()>, "dns": IP|null,
 *      "hosts": [{"name","ip"}...], "allow_private": [CIDR...],
 *      "tunnels": [{"host","port","token_sha256"}...]}
 *
 * "tunnels" only for a bottle with git-gate.repos: one entry per distinct
 * repo host (normalised) and port, sorted, each carrying the SHA-256 (hex)
 * of the gate's token (render_gate_token()), so the sidecar relays the
 * gate's CONNECT raw to exactly those and nothing else.
 *
 * with the knobs normalised and sorted, so the same flags in another order
 * give the same bytes.  secrets.json holds only the secrets the routes
 * reference (by name, each with its binding); a route whose secret is
 * missing or bound elsewhere fails this bottle only.
 *
 * Config hash (lower-case hex SHA-256) over, in this order:
 *
 *     "bottled-config-hash 1\n"
 *     the routes.json bytes
 *     per referenced secret, in name order:
 *         "\nsecret " NAME " " HOSTS " " HEX(HMAC-SHA256(hmac_key, value))
 *         (HOSTS: the normalised binding, sorted, joined by ',')
 *     when an upstream CA bundle is set:
 *         "\nupstream-ca " HEX(SHA-256(bundle))
 *
 * so a new secret value, a new binding, a route change or a knob change
 * changes the hash, re-ordering the secrets file does not, and the hash
 * reveals nothing about a value to anyone without the instance's HMAC key.
 * The bottle CA files are not part of it (they are fixed per bottle).
 */
#ifndef BOTTLED_RENDER_H
#define BOTTLED_RENDER_H

#include <stddef.h>

#include "diag.h"
#include "hash.h"
#include "manifest.h"
#include "secrets.h"

#define RENDER_UPSTREAM_CA_MAX ((size_t)1 << 20)

struct render_host {
    char *name; /* host_normalize() form, no wildcard */
    char *ip;   /* inet_ntop() form */
};

/* The `--proxy-*` knobs, validated and normalised; the same for every bottle. */
struct render_knobs {
    char *dns; /* NULL: the container's resolver */
    struct render_host *hosts;
    size_t n_hosts; /* sorted by name, then ip; unique */
    char **allow_private;
    size_t n_allow_private; /* "addr/prefix", host bits zero, sorted, unique */
    char *upstream_ca;      /* PEM bundle contents; NULL: the system store */
    size_t upstream_ca_len;
};

/*
 * Validates and normalises the knobs: dns an IPv4/IPv6 literal;
 * add_hosts "NAME:IP" (split at the first ':', so IPv6 works); allow_private
 * "addr/prefix" with the host bits zero; upstream_ca_path a readable PEM
 * file with at least one certificate (at most RENDER_UPSTREAM_CA_MAX).  Each
 * problem is an error in diags labelled with its flag.  Returns 0, or
 * BD_E_PARSE / BD_E_IO with k released.  Release with render_knobs_release().
 */
int render_knobs_init(struct render_knobs *k, const char *dns, const char *const *add_hosts,
                      size_t n_add_hosts, const char *const *allow_private, size_t n_allow_private,
                      const char *upstream_ca_path, struct diag_list *diags);
void render_knobs_release(struct render_knobs *k);

/* The bottle CA's PEM files; caller-owned, NULL data: omitted (only printing). */
struct render_ca {
    const char *cert;
    size_t cert_len;
    const char *key;
    size_t key_len;
};

struct render_file {
    const char *name; /* "routes.json", ..., "MANIFEST" */
    const char *data; /* borrowed from the output, the knobs or the CA */
    size_t len;
    int private; /* deliver with mode 0600 (secrets.json, ca-key.pem, MANIFEST) */
};

struct render_output {
    char config_hash[SHA256_HEX_LEN + 1];
    char *routes_json; /* canonical, compact; NUL-terminated */
    size_t routes_len;
    char *secrets_json; /* with the real values: private, wiped on free */
    size_t secrets_len;
    char *secrets_masked; /* the same document with every value "<masked>" */
    char *manifest;       /* MANIFEST over every file below but itself */
    size_t manifest_len;
    /*
     * The generation in delivery order, MANIFEST last: routes.json,
     * secrets.json, then ca.pem, ca-key.pem, upstream-ca.pem when given.
     * Without a CA the set is not loadable by the sidecar (ca.pem is
     * required); that is for printing only.
     */
    struct render_file files[6];
    size_t n_files;
};

/*
 * Renders bottle b (resolved, not abstract).  hmac_key (key_len bytes) keys
 * the per-secret HMACs of the config hash; ca may be NULL.  Returns 0 and a
 * new output, or BD_E_PARSE with one error per failing route in diags
 * (positioned at the route, naming the bottle and the secret, never the
 * value) and *ret untouched.
 */
int render_bottle(const struct bottle *b, const struct secret_store *store,
                  const struct render_knobs *knobs, const unsigned char *hmac_key, size_t key_len,
                  const struct render_ca *ca, struct diag_list *diags, struct render_output **ret);

/*
 * The gate's tunnel token of a bottle: hex(HMAC-SHA256(hmac_key,
 * "gate-tunnel\0" || bottle)), 64 lower-case hex digits.  Derived, never
 * stored: the gate gets it as /gate/token, the sidecar only its SHA-256
 * (routes.json "tunnels").  Secret: callers wipe it after use.
 */
#define RENDER_GATE_TOKEN_LEN 64
void render_gate_token(const unsigned char *hmac_key, size_t key_len, const char *bottle,
                       char out[RENDER_GATE_TOKEN_LEN + 1]);

/* Wipes the secret-bearing buffers and frees.  NULL is a no-op. */
void render_output_free(struct render_output *r);

#endif

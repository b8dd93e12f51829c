/*
 * desired.h - what one bottle should look like on the engine: the ordered
 * resources of architecture.md's "Resource model" (proxy mode), ready to
 * hand to the engine driver, each with its canonical spec and spec hash,
 * plus the agent's /etc/bottle archive and the /28 subnet allocator.
 *
 * Pure computation: nothing here talks to an engine.  The caller resolves
 * the images to their ids, allocates (or keeps) the subnets, mints the
 * bottle CA and renders the sidecar config first, and passes the results
 * in struct desired_opts.
 *
 * Resources, in create order (delete order is the reverse):
 *
 *   role   kind       name                 notes
 *   int    network    PREFIX-B-int         internal, /28, bridge BRIDGE(int)
 *   egr    network    PREFIX-B-egr         NAT, /28, bridge BRIDGE(egr)
 *   work   volume     PREFIX-B-work        agent's workspace
 *   cfg    volume     PREFIX-B-cfg         sidecar's config generations
 *   proxy  container  PREFIX-B-proxy       egr .2 first, int .2 second
 *   gate   container  PREFIX-B-gate        int .3 only; only with git-gate.repos
 *   agent  container  PREFIX-B-agent       int .4 only
 *
 * A bottle without repos has no gate: its res[ROLE_GATE] is all zero
 * (name NULL), and every loop over res[] skips such a slot
 * (desired_has()).
 *
 * PREFIX is --name-prefix (default "bottle").  Addresses in a /28 N: N+1
 * the gateway, N+2 the sidecar, N+3 the gate (reserved: ExtraHosts names
 * it already), N+4 the agent.  BRIDGE(role) is "bd" followed by the first
 * 12 hex digits of SHA-256(INSTANCE ":" BOTTLE ":" ROLE), 14 characters,
 * under the kernel's 15.
 *
 * Labels on every resource: io.bottled.managed=true, .instance, .bottle,
 * .role, .spec-hash, .hash-scheme (DESIRED_HASH_SCHEME) and
 * .agent-provider when the bottle sets one; networks also carry
 * io.bottled.subnet, their /28 (so the reconciler can keep it).
 *
 * Spec and hash.  Each resource's spec is a JSON object printed by
 * json_canon_print() (sorted keys, compact) with every default filled in
 * and every image as its id; its hash is
 *
 *     spec_hash = hex(SHA-256("bottled-spec 1\n" || spec))
 *
 * where "1" is DESIRED_HASH_SCHEME.  The spec holds everything the engine
 * is told at create except the spec-hash label itself, so "same hash" means
 * "nothing to recreate".  Deliberate choices:
 *
 *   - A container's spec lists, for every network it joins and every
 *     volume it mounts, that resource's spec hash: a changed network or
 *     volume recreates what is attached to it.
 *   - io.bottled.agent-provider is in the agent container's spec only.
 *     On networks, volumes and the sidecar it is set at create and never
 *     compared, so renaming a provider never recreates the work volume.
 *   - No secret value and no route is in any spec: the sidecar config has
 *     its own hash (render.h), carried here as config_hash for the
 *     caller to compare with what the sidecar reports.
 *   - The agent's /etc/bottle archive (prompt, skills, CA certificate,
 *     gitconfig) is delivered into the created container before its first
 *     start (architecture.md, "What the agent gets"), so its SHA-256 is
 *     part of the agent's spec: a prompt, skill or identity change
 *     recreates the agent (its work volume survives).
 *
 * Agent environment, in this order (the same order every time):
 *
 *     http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY
 *         (proxy = http://proxy:9099, no_proxy = localhost,127.0.0.1,::1,gate)
 *     SSL_CERT_FILE NODE_EXTRA_CA_CERTS REQUESTS_CA_BUNDLE GIT_SSL_CAINFO
 *     CURL_CA_BUNDLE   (= /etc/bottle/ca.pem)
 *     GIT_CONFIG_SYSTEM=/etc/bottle/gitconfig
 *     BOTTLE_PROMPT_FILE=/etc/bottle/prompt.md
 *     BOTTLE_SKILLS_DIR=/etc/bottle/skills
 *     then the manifest's env, values as written, in bytewise name order
 *     (the parser refuses manifest names that collide with the ones above;
 *     name order makes the container the same however the file is laid out)
 *
 * Limits: each of agent.resources' fields that is set replaces its default
 * (pids 1024, memory 4 GiB, cpus unlimited); cpus become NanoCpus
 * (millicores * 10^6).
 *
 * The gate (architecture.md "Git gate"): image desired_opts.gate_image_id
 * with the image's own entrypoint (`bottle-proxy gate --config
 * /gate/config.json`), all capabilities dropped, no-new-privileges, pids
 * 256, memory 1 GiB, ExtraHosts `proxy`.  Its files are delivered under
 * /gate/ before its first start (apply.c, gate_files_tar()):
 * config.json (d->gate_config, below; not secret), keys/<repo> (each
 * repo's private key, 0600) and token (the tunnel token, 0600), owned by
 * GATE_UID.  The spec carries SHA-256 over config.json and each repo's
 * "key NAME FINGERPRINT" line (never a secret), so a new url, host key or
 * deploy key recreates the gate.
 *
 *     config.json = {"proxy": "<int .2>:9099",
 *                    "repos": [{"name", "url", "host", "port", "host_key"}]}
 *
 * (canonical, compact; host_key "" when neither the manifest pins one nor
 * the gate has learned one.)
 *
 * Refused, with an error naming the bottle and nothing produced (their
 * issues have not landed): egress.mode transparent, supervise: true.
 */
#ifndef BOTTLED_DESIRED_H
#define BOTTLED_DESIRED_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "engine.h"
#include "hash.h"
#include "manifest.h"

#define DESIRED_HASH_SCHEME    1
#define DESIRED_DEFAULT_PREFIX "bottle"
#define DESIRED_SUBNET_POOL    "10.213.0.0/16"
#define DESIRED_PROXY_PORT     9099
#define DESIRED_ADMIN_PORT     9098
#define DESIRED_DEFAULT_PIDS   1024
#define DESIRED_DEFAULT_MEMORY ((int64_t)4 << 30)
#define DESIRED_INSTANCE_LEN   12
#define DESIRED_BRIDGE_LEN     14     /* "bd" + 12 hex */
#define DESIRED_SUBNET_STR_MAX 19     /* "255.255.255.255/32" + NUL */
#define DESIRED_ARCHIVE_DIR    "/etc" /* the archive holds bottle/... */
#define DESIRED_FILES_DIR      "/etc/bottle"
#define DESIRED_PREFIX_MAX     63
#define DESIRED_GATE_PORT      8080
#define DESIRED_GATE_DIR       "/gate"
#define GATE_UID               10098
#define GATE_GID               10098

#define LABEL_MANAGED        "io.bottled.managed"
#define LABEL_INSTANCE       "io.bottled.instance"
#define LABEL_BOTTLE         "io.bottled.bottle"
#define LABEL_ROLE           "io.bottled.role"
#define LABEL_SPEC_HASH      "io.bottled.spec-hash"
#define LABEL_HASH_SCHEME    "io.bottled.hash-scheme"
#define LABEL_AGENT_PROVIDER "io.bottled.agent-provider"
#define LABEL_SUBNET         "io.bottled.subnet"

enum desired_kind {
    DESIRED_NETWORK,
    DESIRED_VOLUME,
    DESIRED_CONTAINER,
};

/* In create order; the values index struct desired's res[]. */
enum desired_role {
    ROLE_INT,
    ROLE_EGR,
    ROLE_WORK,
    ROLE_CFG,
    ROLE_PROXY,
    ROLE_GATE,
    ROLE_AGENT,
    ROLE__COUNT,
};

/* "int", "egr", ... (the io.bottled.role value and the name suffix). */
const char *desired_role_name(enum desired_role role);

/* One git-gate repo as the gate and the agent see it (no secret). */
struct desired_gate_repo {
    const char *name;
    const char *url; /* ssh://user@host[:port]/path */
    const char *host;
    int port;
    const char *host_key;    /* pinned or learned; NULL: learn on first use */
    const char *fingerprint; /* of its key; NULL: not generated yet */
};

struct desired_opts {
    const char *instance;       /* 12 lower-case hex digits */
    const char *name_prefix;    /* NULL: DESIRED_DEFAULT_PREFIX */
    const char *proxy_image;    /* the reference, for messages; may be NULL */
    const char *proxy_image_id; /* "sha256:..." as the engine reports it */
    const char *agent_image_id; /* the id of the bottle's agent.image */
    const char *int_subnet;     /* "a.b.c.d/28", from subnet_alloc() or kept */
    const char *egr_subnet;
    const char *ca_cert_pem; /* the bottle CA certificate, public part only */
    size_t ca_cert_len;
    const char *config_hash; /* render_output's config_hash; carried, not hashed */
    const char *skills_root; /* the manifest root: skills are ROOT/skills/NAME/ */
    /* The engine runs a resolver on every network's gateway (Podman's
     * aardvark-dns): the sidecar is pointed at its egress gateway's, since
     * the host firewall drops what it would send to the internal one.
     * Docker's embedded resolver needs nothing. */
    int gateway_dns;
    /* With git-gate.repos: the gate image and the repos (in manifest order). */
    const char *gate_image;    /* the reference, for messages */
    const char *gate_image_id; /* required when the bottle has repos */
    const struct desired_gate_repo *repos;
    size_t n_repos;
};

/* 1 if the bottle has a resource in that role (the gate is optional). */
#define desired_has(d, role) ((d)->res[(role)].name != NULL)

struct desired_resource {
    enum desired_role role;
    enum desired_kind kind;
    const char *name;
    char *spec; /* canonical JSON, compact, NUL-terminated */
    char spec_hash[SHA256_HEX_LEN + 1];
    /* Every label, spec-hash included (engine_volume_create() takes these). */
    struct engine_kvs labels;
    /* kind DESIRED_NETWORK: for engine_network_create(), labels included. */
    struct engine_network_spec network;
    /* kind DESIRED_CONTAINER: for engine_container_create(), labels included. */
    struct engine_container_spec container;
};

struct desired {
    struct arena arena; /* every const char * below and in the engine specs */
    const char *bottle;
    const char *instance;
    char config_hash[SHA256_HEX_LEN + 1];     /* "" when the caller gave none */
    struct desired_resource res[ROLE__COUNT]; /* indexed by role = create order */
    size_t n;                                 /* ROLE__COUNT */
    /*
     * The agent's files: a ustar archive of bottle/... to extract at
     * DESIRED_ARCHIVE_DIR (engine_archive_put() into the created agent,
     * before its first start); its digest is in the agent's spec.
     */
    unsigned char *agent_tar;
    size_t agent_tar_len;
    char agent_tar_digest[SHA256_HEX_LEN + 1];
    /* With a gate: its /gate/config.json (canonical JSON, not secret). */
    const char *gate_config;
};

/*
 * Computes the desired resources of b (resolved, not abstract, not failed).
 * Returns 0 and a new struct desired (free with desired_free()), or
 *   BD_E_PARSE  b uses a feature that is refused (see above), or an opts
 *               field is invalid, or a skill cannot be archived: one error
 *               per problem in diags, naming the bottle;
 *   BD_E_INVAL  b is abstract or failed, or a required opts field is NULL.
 * *ret is written only on success.
 */
int desired_bottle(const struct bottle *b, const struct desired_opts *o, struct diag_list *diags,
                   struct desired **ret);

/* NULL is a no-op. */
void desired_free(struct desired *d);

/* "PREFIX-BOTTLE-ROLE" into the caller's arena (prefix NULL: the default). */
char *desired_name(struct arena *a, const char *prefix, const char *bottle, enum desired_role role);

/* "bd" + 12 hex of SHA-256(instance ":" bottle ":" role). */
void desired_bridge_name(const char *instance, const char *bottle, enum desired_role role,
                         char out[DESIRED_BRIDGE_LEN + 1]);

/* ---------------------------------------------------------------- /etc/bottle */

struct agent_files_in {
    const char *prompt; /* the manifest body; NULL: empty */
    const char *ca_cert_pem;
    size_t ca_cert_len;
    const char *git_user_name; /* NULL: not set */
    const char *git_user_email;
    const char *skills_root; /* ROOT of ROOT/skills/NAME/; may be NULL when n_skills == 0 */
    const char *const *skills;
    size_t n_skills;
    const struct desired_gate_repo *repos; /* url.insteadOf rewrites to the gate */
    size_t n_repos;
};

/*
 * The agent's /etc/bottle as a ustar archive, built in memory and
 * byte-for-byte deterministic: entries sorted by path (so a directory
 * precedes its contents), mtime 0, uid/gid 0, no user or group names,
 * directories 0755, files 0755 when the source has any execute bit and
 * 0644 otherwise.  Entries: bottle/, bottle/ca.pem, bottle/gitconfig,
 * bottle/prompt.md, bottle/skills/, and each skill's tree as
 * bottle/skills/NAME/...  Skill directories are walked with lstat() and
 * files opened with O_NOFOLLOW: a link or a special file is an error, as
 * in skill_dir_digest(), and so are more than SKILL_MAX_FILES files or
 * SKILL_MAX_BYTES bytes per skill, and a path that does not fit ustar's
 * 100+155 byte name.
 *
 * gitconfig is "[user]" with name and email (each only when set, quoted
 * and escaped for git), then per repo
 *     [url "http://gate:8080/NAME.git"]
 *         insteadOf = URL
 * so the agent's git talks to the gate for the upstream's url.
 *
 * Returns 0 with *ret_tar malloc'd, or BD_E_INVAL with a malloc'd message
 * in *ret_err (a private key in ca_cert_pem, a control character in the
 * git identity, a skill problem).
 */
int agent_files_tar(const struct agent_files_in *in, unsigned char **ret_tar, size_t *ret_len,
                    char **ret_err);

/*
 * The sidecar's config generation as a ustar archive to extract at the cfg
 * volume's mount point: gen-GEN/ (0700) with each of files[] (0600 when
 * private, else 0644), then `current` ("gen-GEN\n") last, everything owned
 * by uid:gid (the proxy image's fixed user).  GEN is 1 to 64 characters
 * of [A-Za-z0-9_-].  The archive holds secrets: the caller wipes it
 * (OPENSSL_cleanse) before freeing.  0, BD_E_INVAL (GEN), BD_E_TOO_BIG.
 */
struct render_file;
int cfg_generation_tar(const struct render_file *files, size_t n_files, const char *gen,
                       unsigned uid, unsigned gid, unsigned char **ret_tar, size_t *ret_len);

/*
 * The gate's files as a ustar archive to extract at "/": gate/ and
 * gate/keys/ (0700), then each of files[] as gate/<name> (names may hold
 * one '/', e.g. "keys/app"), 0600 when private else 0644, everything owned
 * by GATE_UID:GATE_GID.  Holds private keys and the token: the caller
 * wipes it before freeing.  0 or BD_E_TOO_BIG / BD_E_INVAL (a name).
 */
int gate_files_tar(const struct render_file *files, size_t n_files, unsigned char **ret_tar,
                   size_t *ret_len);

/* A ustar archive holding one directory entry PATH/ (relative, no leading
 * '/') with mode and owner: extracted at "/" over a volume's mount point it
 * gives the volume root that owner.  0 or BD_E_INVAL (path too long). */
int dir_entry_tar(const char *path, unsigned mode, unsigned uid, unsigned gid,
                  unsigned char **ret_tar, size_t *ret_len);

/* ---------------------------------------------------------------- subnets */

/*
 * Picks count IPv4 /28s inside pool ("a.b.c.d/n", n <= 28, host bits
 * zero), lowest first, none overlapping any of used[] (CIDR strings; the
 * subnets of every network on the engine, ours or not, and of any other
 * allocation already made in this pass; IPv6 entries and NULLs are
 * skipped).  Deterministic: the same inputs give the same answer.
 *
 * Keeping subnets stable is the caller's part: a bottle whose network
 * already exists keeps that network's subnet (its io.bottled.subnet
 * label, or its IPAM config) and asks only for what is missing, passing
 * every existing subnet, its own included, in used[].  A kept subnet is
 * never re-checked against the pool, so changing --subnet-pool does not
 * recreate running bottles.
 *
 * Writes ret[0..count-1] and returns 0; BD_E_INVAL for a malformed pool or
 * used entry; BD_E_LIMIT when the pool has fewer than count free /28s
 * (nothing written).
 */
int subnet_alloc(const char *pool, const char *const *used, size_t n_used, size_t count,
                 char (*ret)[DESIRED_SUBNET_STR_MAX]);

#endif

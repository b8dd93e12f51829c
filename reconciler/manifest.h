/*
 * manifest.h - the bottle manifest model (spec: manifest.md).
 *
 * One manifest file becomes one struct bottle through three steps:
 *
 *   frontmatter_split()  bytes -> YAML text + Markdown body   (frontmatter.c)
 *   yaml_tree_parse()    YAML text -> positioned node tree     (yaml_tree.c)
 *   manifest_parse()     node tree -> typed struct bottle      (manifest.c)
 *
 * then the loader (loader.c) reads a whole directory, rejects duplicate
 * names, and resolves `extends` (extends.c), which merges parents into a
 * fresh struct bottle per non-failing declaration.  canonical.c turns a
 * resolved bottle into its canonical JSON (canonical.h).
 *
 * Presence: a field a file did not set is NULL / 0 with its has_* flag
 * clear, so the merge can tell "not set" from "set to the default".
 * Defaults are filled in only by the canonical form.
 *
 * Ownership: every pointer in a struct bottle points into the arena of the
 * manifest_set (or of the caller of manifest_parse) that made it.
 * Positions: every value remembers the file it came from (src) and its
 * line/column there, so errors found after a merge still point at the
 * line that set the value.
 */
#ifndef BOTTLED_MANIFEST_H
#define BOTTLED_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "yaml_tree.h"

#define MANIFEST_MAX_BYTES  (1024 * 1024)
#define BOTTLE_NAME_MAX     40
#define DEFAULT_AGENT_IMAGE "localhost/bottled-agent:latest"
#define DEFAULT_WORKDIR     "/workspace"

struct mpos {
    const char *src; /* display path of the file that set the value */
    int line, col;
};

enum path_type { PATH_PREFIX, PATH_EXACT, PATH_REGEX };
enum header_type { HEADER_EXACT, HEADER_REGEX };
enum egress_mode { EGRESS_PROXY, EGRESS_TRANSPARENT };
enum key_provider { KEY_STATIC, KEY_GITEA, KEY_GITHUB, KEY_GITLAB };

/* DLP detector bits. */
#define DLP_TOKEN_PATTERNS  0x1u
#define DLP_KNOWN_SECRETS   0x2u
#define DLP_NAIVE_INJECTION 0x4u

struct dlp_setting {
    int set;            /* the file said something */
    unsigned detectors; /* bits above; 0 = off */
};

struct m_path {
    enum path_type type;
    const char *value;
};

struct m_header {
    const char *name; /* lower-cased */
    const char *value;
    enum header_type type;
};

struct m_match {
    struct m_path *paths;
    size_t n_paths;
    const char **methods;
    size_t n_methods;
    struct m_header *headers;
    size_t n_headers;
};

struct m_route {
    const char *host; /* normalised: lower-case A-labels, maybe "*." */
    struct mpos pos;  /* of the route's host value */
    int *ports;       /* NULL: default [443] */
    size_t n_ports;
    const char *role;
    const char *auth_scheme; /* NULL: no auth */
    const char *token_ref;
    struct m_match *matches;
    size_t n_matches;
    struct dlp_setting dlp_out, dlp_in;
    int git_fetch;
};

struct m_env {
    const char *name;
    const char *value;
};

struct m_skill {
    const char *name;
    struct mpos pos;
    char digest[65]; /* filled by the loader once the skill dir is checked */
};

struct m_key {
    enum key_provider provider;
    const char *path;            /* static */
    const char *forge_token_env; /* forges */
    const char *api_url;         /* forges; NULL: provider default */
};

struct m_repo {
    const char *name;
    struct mpos pos;
    const char *url;
    const char *user, *host, *path, *repository;
    int port;
    struct m_key key;
    const char *host_key; /* "type base64", comment dropped; NULL if absent */
};

struct m_resources {
    int64_t cpus_millicores; /* -1: not set */
    int64_t memory_bytes;    /* -1: not set */
    int64_t pids;            /* -1: not set */
};

struct bottle {
    const char *path; /* display path of the declaring file */
    const char *name; /* from `name:` or the file stem */
    struct mpos name_pos;
    int abstract;

    const char **extends;
    struct mpos *extends_pos;
    size_t n_extends;

    const char *image;
    int has_command;
    const char **command;
    size_t n_command;
    const char *user;
    const char *workdir;
    int has_resources;
    struct m_resources resources;

    const char *agent_provider;

    struct m_env *env;
    size_t n_env;
    struct m_skill *skills;
    size_t n_skills;

    int has_egress_mode;
    enum egress_mode egress_mode;
    struct m_route *routes;
    size_t n_routes;

    int has_gate_user;
    const char *gate_user_name, *gate_user_email;
    struct m_repo *repos;
    size_t n_repos;

    int supervise;

    const char *body; /* Markdown after the front matter, CRLF -> LF */
    int failed;       /* this file (or, once resolved, a parent) had errors */
};

/*
 * Splits a manifest file into YAML and body.  Returns 0 and slices into
 * buf (yaml starts on line 2) or BD_E_PARSE with a diagnostic.
 */
int frontmatter_split(const char *path, const char *buf, size_t len, const char *bottle,
                      struct diag_list *diags, const char **ret_yaml, size_t *ret_yaml_len,
                      const char **ret_body, size_t *ret_body_len);

/*
 * Parses one manifest held in memory.  stem is the bottle name to use when
 * the front matter has no `name:`.  Always returns a struct bottle (in a),
 * with failed set when any diagnostic was added; returns 0, or BD_E_PARSE
 * when failed.
 */
int manifest_parse(struct arena *a, const char *path, const char *stem, const char *text,
                   size_t len, struct diag_list *diags, struct bottle **ret);

/* Reads and parses a file (capped at MANIFEST_MAX_BYTES). */
int manifest_parse_file(struct arena *a, const char *path, const char *stem,
                        struct diag_list *diags, struct bottle **ret);

/* 1 if s is a valid bottle name. */
int bottle_name_valid(const char *s, size_t len);

/* Merges src on top of dst (extends rules of manifest.md); allocates in a. */
void bottle_merge(struct arena *a, struct bottle *dst, const struct bottle *src);

const char *key_provider_name(enum key_provider p);

#endif

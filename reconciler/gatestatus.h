/*
 * gatestatus.h - the git gate's status file (/gate/status.json), read by
 * the reconciler each pass through the engine's archive API:
 *
 *   {"auth_failures": [{"repo": NAME, "at": UNIX_S, "message": "..."}],
 *    "learned_host_keys": [{"repo": NAME, "host_key": "ssh-ed25519 AAAA..."}]}
 *
 * The file is written by the gate, which parses what the agent pushes: it
 * is untrusted input.  The parser keeps only what it checks: repo names as
 * the manifest allows them (^[A-Za-z0-9._-]+$, at most 128 bytes), times
 * as non-negative integers, host keys as one "TYPE BASE64" line of a known
 * key type (the comment dropped), at most GATE_STATUS_MAX_ENTRIES of each;
 * messages are not kept (they come from the upstream, through the gate).
 * Unknown fields are ignored; entries that fail a check are skipped.
 *
 * Errors: 0, BD_E_TOO_BIG (more than GATE_STATUS_MAX bytes), BD_E_PROTO
 * (not a JSON object); *ret is written only on success.
 */
#ifndef BOTTLED_GATESTATUS_H
#define BOTTLED_GATESTATUS_H

#include <stddef.h>
#include <stdint.h>

#define GATE_STATUS_PATH        "/gate/status.json"
#define GATE_STATUS_MAX         ((size_t)256 << 10)
#define GATE_STATUS_MAX_ENTRIES 256
#define GATE_HOST_KEY_MAX       8192

struct gate_auth_failure {
    char *repo;
    int64_t at;
};

struct gate_host_key {
    char *repo;
    char *host_key; /* "type base64" */
};

struct gate_status {
    struct gate_auth_failure *auth;
    size_t n_auth;
    struct gate_host_key *keys;
    size_t n_keys;
};

int gate_status_parse(const char *json, size_t len, struct gate_status *ret);
void gate_status_release(struct gate_status *s);

/* The newest auth failure time of repo (0: none). */
int64_t gate_status_auth_at(const struct gate_status *s, const char *repo);

#endif

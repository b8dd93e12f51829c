/*
 * pass.h - one reconcile pass's inputs: bottled's configuration checked,
 * the state dir opened, the manifests loaded, one snapshot of the engine
 * (one list call per kind), each bottle's desired resources and sidecar
 * config, and the plan computed from them.  `plan` prints it; `reconcile`
 * and `gc` apply it (apply.h).
 *
 * Modes:
 *   PASS_READONLY  plan, reconcile --dry-run: the state dir is opened
 *                  STATE_RDONLY (a missing one means a new instance), no CA
 *                  is minted, nothing is written anywhere.
 *   PASS_APPLY     reconcile, gc: the state dir is opened STATE_EXCLUSIVE
 *                  (the lock, before anything else is touched), each
 *                  bottle's CA is minted on first use and its sidecar
 *                  config rendered with it, ready for delivery.
 *
 * Order of checks (architecture.md's exit codes): bottled's own
 * configuration (flags, secrets file, --proxy-* knobs, state dir
 * permissions) first, exit 2; then the lock and the engine, exit 3; only
 * then is any bottle looked at.
 */
#ifndef BOTTLED_PASS_H
#define BOTTLED_PASS_H

#include <stddef.h>

#include "arena.h"
#include "deploykeys.h"
#include "desired.h"
#include "diag.h"
#include "engine.h"
#include "loader.h"
#include "opts.h"
#include "plan.h"
#include "render.h"
#include "secrets.h"
#include "state.h"

enum pass_mode {
    PASS_READONLY,
    PASS_APPLY,
};

/* One bottle of the snapshot, indexed like pass.in[]. */
struct pass_bottle {
    const struct bottle *b;  /* NULL for a bottle that failed before resolving */
    const char *path;        /* its manifest file */
    struct desired *d;       /* NULL: failed (in[].error says why) */
    struct render_output *r; /* PASS_APPLY: the generation to deliver (with the CA) */
    char *ca_cert, *ca_key;  /* PASS_APPLY: the CA r's files borrow (key wiped on release) */
    char manifest_hash[65];  /* sha256 of the manifest file's bytes, "" if unknown */
    int invalid;             /* the manifest has errors: Stalled until it changes */
    /* git-gate.repos resolved: forge location and key (private text in
     * PASS_APPLY, for the gate; wiped on release), parallel to b->repos. */
    struct dk_repo *repos;
    size_t n_repos;
    int64_t auth_at; /* the gate's newest upstream authentication failure (0: none) */
};

struct pass {
    const struct cmd *cmd;
    const struct opts *o;
    enum pass_mode mode;
    char *state_dir;
    struct state *st;     /* NULL in PASS_READONLY when there is no state dir yet */
    const char *instance; /* NULL: a new instance (read-only mode only) */
    char *engine_url;
    struct engine *e;
    int podman; /* the engine is Podman (its resolver listens on every gateway) */
    struct secret_store *store;
    struct render_knobs knobs;
    int have_knobs;
    struct manifest_set set;
    int have_set;
    struct diag_list diags; /* the manifests' diagnostics */
    struct engine_network_list nets;
    struct engine_volume_list vols;
    struct engine_container_list ctrs;
    struct plan_bottle_in *in; /* sorted by name */
    struct pass_bottle *pb;    /* parallel to in[] */
    size_t n;
    const char **keep, **blocked, **approved;
    size_t n_keep, n_blocked, n_approved;
    /* Bottles the caller holds back this pass (watch: in backoff): apply
     * leaves their jobs out, so they are neither worked on nor recorded. */
    const char **hold;
    size_t n_hold;
    int st_borrowed; /* st belongs to the caller (pass_prepare_on) */
    /* What started the pass, recorded with it: the caller may set it after
     * prepare (watch: its trigger); NULL: the command's name. */
    const char *trigger;
    int json_lines;   /* --json as one line per pass (watch), not pretty-printed */
    int64_t start_ms; /* CLOCK_MONOTONIC ms when prepare began */
    char *proxy_ref;
    char *gate_ref;
    char *keys_dir;
    struct plan *plan;
    struct arena a;
    /* internals */
    const char **used;
    size_t n_used;
    char (*allocs)[DESIRED_SUBNET_STR_MAX];
    char (*hashes)[SHA256_HEX_LEN + 1];
    void *images;
};

/*
 * Builds the pass and its plan.  Returns 0, or the exit code to end the
 * command with after a message on stderr (EXIT_USAGE, or EXIT_FAILED when
 * usage errors count as failures with --detailed-exitcode; EXIT_UNAVAIL).
 * pass_release() must be called either way.
 */
int pass_prepare(struct pass *ps, const struct cmd *cmd, const struct opts *o, enum pass_mode mode);
/*
 * The same in PASS_APPLY mode on a state the caller opened STATE_EXCLUSIVE
 * and keeps open between passes (watch holds the lock for its lifetime):
 * st is borrowed, pass_release() leaves it open.
 */
int pass_prepare_on(struct pass *ps, const struct cmd *cmd, const struct opts *o, struct state *st);
void pass_release(struct pass *ps);

/* Adds name (copied) to ps->keep: not an orphan this pass.  Call
 * pass_plan() afterwards. */
void pass_keep(struct pass *ps, const char *name);
/* Adds name (copied) to ps->hold (see above). */
void pass_hold(struct pass *ps, const char *name);

/* (Re)computes ps->plan from the snapshot, e.g. after ps->approved changed;
 * 0 or EXIT_FAILED. */
int pass_plan(struct pass *ps);

/* The index of bottle name in ps->in[], or -1. */
long pass_find(const struct pass *ps, const char *name);

#endif

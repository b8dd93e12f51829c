/*
 * apply.h - carries out a pass's plan against the engine (reconcile, gc).
 *
 * Each bottle of the plan is one job; jobs run on up to APPLY_WORKERS
 * threads, each with its own engine connection, so one bottle waiting for
 * its sidecar's /healthz never delays the others.  The state database is
 * one connection shared under a mutex (struct state is not thread-safe).
 *
 * Per bottle, in the order of architecture.md:
 *   deletes of stale names, then every resource to recreate is removed
 *   (containers, then volumes, then networks: a recreated agent never runs
 *   beside its old self), then creates in create order: networks, volumes,
 *   the sidecar (its config generation copied into the cfg volume before
 *   it starts, then /healthz waited for), the agent (/etc/bottle copied in
 *   before it starts).  A kept sidecar whose config hash differs gets a new
 *   generation and SIGHUP, nothing recreated; the pass then waits until it
 *   reports the new hash.  Orphans: containers, volumes, networks, then the
 *   bottle's records and CA are forgotten.
 *
 * Every engine side effect is bracketed by a state intent (written before,
 * confirmed after), and intents a crashed run left pending are recorded as
 * recovered at the start of the next: the snapshot, not the intent, says
 * what exists, so rerunning converges.
 *
 * Records: each bottle's phase (Ready, Degraded without the host firewall,
 * Reconciling with last_error and a backoff after a failure, Stalled for an
 * invalid manifest, a conflict or a refused deletion, Deleting), its
 * resources with engine ids, one event per action, and the pass.
 */
#ifndef BOTTLED_APPLY_H
#define BOTTLED_APPLY_H

#include <stdio.h>

#include "pass.h"

#define APPLY_WORKERS         4
#define APPLY_HEALTHZ_TIMEOUT 30 /* seconds a new sidecar has to become ready */

enum apply_scope {
    APPLY_ALL,     /* reconcile */
    APPLY_GC_ONLY, /* gc: only orphan bottles are touched */
};

struct apply_stats {
    size_t bottles;          /* bottles worked on */
    size_t actions;          /* actions carried out */
    size_t failed;           /* bottles that failed (or are in conflict) */
    size_t refused;          /* bottles whose deletion a guard refused */
    unsigned long mutations; /* mutating engine requests, all workers */
    long ms;                 /* the pass's wall time, from pass_prepare to the end */
};

/*
 * Applies ps->plan (ps in PASS_APPLY mode).  Progress goes to out (one
 * line per action) unless quiet; with json a result document is printed
 * at the end instead.  Returns 0 (see stats for failures), or EXIT_UNAVAIL
 * when the engine or the state database stopped answering.
 */
int apply_pass(struct pass *ps, enum apply_scope scope, FILE *out, struct apply_stats *stats);

/* The exit code of architecture.md for an applied pass. */
int apply_exit_code(const struct apply_stats *s, int detailed);

#endif

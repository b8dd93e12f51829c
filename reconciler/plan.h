/*
 * plan.h - the diff engine behind `bottled plan` (and, later, reconcile):
 * desired bottles against one snapshot of the engine, giving ordered
 * actions per bottle, each with its cause (architecture.md, "Resource
 * model", "Change detection", "Reconcile loop").
 *
 * Pure: it reads the lists it is given and calls nothing.  The caller
 * makes one list call per kind (networks, volumes, containers, all of
 * them: a name clash with a foreign resource and the subnets of every
 * network matter too), computes each bottle's struct desired, and, for a
 * running sidecar, asks it for its config hash.
 *
 * Ownership of an engine resource, by its labels: "ours" means
 * io.bottled.managed=true and io.bottled.instance=<in->instance>.  A
 * resource named like one of a bottle's resources that is not ours (no
 * labels, another instance, or ours but labelled for another bottle or
 * role) is a conflict: that bottle fails and nothing of it is planned.
 *
 * Per desired bottle, roles in create order (int, egr, work, cfg, proxy,
 * gate when the bottle has repos, agent):
 *   create     "missing"                                the name is free
 *   recreate   "spec changed" (+ hash scheme change)    spec-hash label differs
 *              "drift: extra network attached (N)"      containers: from the list call
 *              "drift: network missing (N)"
 *              "drift: mount missing (V at P)" / "drift: extra mount (P)"
 *              "network int recreated" ...              a network or volume it uses
 *                                                       is (re)created
 *              "no CA yet"                              agent, CA not minted yet
 *              immutable_drift[role]                    caps, privileged, security
 *                                                       options differ (inspect)
 *   start      "not running (exited)"                   container present, stopped
 *   deliver    "config changed" / "config hash unknown" sidecar present and kept,
 *                                                       its config hash differs or
 *                                                       could not be read
 *   keys       in->keys_cause                           deploy keys to register, check
 *                                                       or revoke at the forge
 *   delete     "not desired (ROLE NAME)"                ours, of this bottle, but not
 *                                                       one of its desired names
 *              (listed before the creates, in delete order)
 * Orphans (ours, bottle label not desired and not in in->keep): delete,
 * cause "orphan", in delete order: containers (agent, gate, netns, proxy,
 * others), then volumes (cfg, work), then networks (egr, int).
 *
 * Guards (deletes only; a refused bottle gets status PLAN_REFUSED, its
 * error the reason, and no actions):
 *   incomplete snapshot     no delete at all; gc_blocked_by lists the paths
 *   empty desired set       refused against existing bottles unless allow_empty
 *   more than max_deletes   orphan bottles: refused unless force
 * An orphan named in in->approved is deleted whatever the guards say (its
 * deletion was approved by a person, by name).
 */
#ifndef BOTTLED_PLAN_H
#define BOTTLED_PLAN_H

#include <stddef.h>
#include <stdio.h>

#include "arena.h"
#include "desired.h"
#include "engine.h"

#define PLAN_DEFAULT_MAX_DELETES 10

enum plan_config_state {
    PLAN_CONFIG_NOT_QUERIED, /* the sidecar was not asked (absent, stopped) */
    PLAN_CONFIG_KNOWN,       /* config_hash holds what it reports */
    PLAN_CONFIG_UNKNOWN,     /* asked, no usable answer */
};

struct plan_bottle_in {
    const char *name;
    const struct desired *d; /* NULL: the bottle failed; error says why */
    const char *error;
    int no_ca; /* the bottle CA does not exist yet: the agent's spec is not final */
    enum plan_config_state config_state;
    const char *config_hash; /* PLAN_CONFIG_KNOWN: what the sidecar reports */
    /* Per role: why the fields that cannot change after create (capabilities,
     * privileged, security options), inspected once per new container id,
     * differ from the spec; NULL when they agree or were not inspected. */
    const char *immutable_drift[ROLE__COUNT];
    /* Why the bottle's deploy keys need forge work (register, check,
     * revoke), or NULL: planned as one "keys" action. */
    const char *keys_cause;
};

struct plan_in {
    const char *instance; /* NULL: a new instance, nothing on the engine is ours */
    const struct plan_bottle_in *bottles;
    size_t n_bottles;
    /* Names declared in the manifests but not in bottles[] (abstract ones
     * excluded): their resources are left as they are. */
    const char *const *keep;
    size_t n_keep;
    int complete;                  /* the manifest snapshot is complete */
    const char *const *blocked_by; /* !complete: the paths that make it so */
    size_t n_blocked_by;
    int allow_empty;
    int force;
    long max_deletes; /* < 0: PLAN_DEFAULT_MAX_DELETES */
    /* Orphan bottles whose deletion `bottled approve-deletes` approved:
     * no guard refuses them. */
    const char *const *approved;
    size_t n_approved;
    const struct engine_network_list *networks;
    const struct engine_volume_list *volumes;
    const struct engine_container_list *containers;
};

enum plan_act {
    PLAN_CREATE,
    PLAN_RECREATE,
    PLAN_START,
    PLAN_DELIVER,
    PLAN_DELETE,
    PLAN_KEYS, /* deploy keys need forge work (deploykeys.h dk_cause()) */
};

struct plan_action {
    enum plan_act act;
    const char *role;     /* "int", "agent", ... */
    const char *resource; /* the engine name */
    const char *cause;
};

enum plan_status {
    PLAN_UP_TO_DATE,
    PLAN_CHANGES,  /* actions planned */
    PLAN_ORPHAN,   /* to be deleted (actions planned) */
    PLAN_FAILED,   /* error says why */
    PLAN_CONFLICT, /* a name is taken by something not ours */
    PLAN_REFUSED,  /* a guard refused its deletion */
};

struct plan_bottle {
    const char *name;
    enum plan_status status;
    const char *error; /* NULL unless failed, conflict or refused */
    struct plan_action *actions;
    size_t n_actions;
};

struct plan_guard {
    const char *guard; /* "incomplete-snapshot", "allow-empty", "max-deletes" */
    const char *reason;
};

struct plan {
    struct arena arena;          /* every string and array below */
    struct plan_bottle *bottles; /* desired ones in the given order, then orphans by name */
    size_t n_bottles;
    struct plan_guard *guards;
    size_t n_guards;
    const char **gc_blocked_by;
    size_t n_gc_blocked_by;
    size_t n_changes; /* actions */
    size_t n_failed;  /* bottles failed or in conflict */
    size_t n_refused; /* bottles whose deletion a guard refused */
};

/* Computes the plan.  Returns 0 and a new plan, or BD_E_INVAL for a bad input. */
int plan_compute(const struct plan_in *in, struct plan **ret);
void plan_free(struct plan *p);

const char *plan_act_name(enum plan_act a);       /* "create", ... */
const char *plan_status_name(enum plan_status s); /* "up-to-date", ... */

/* The exit code of architecture.md: 1 failed or refused, else 2 (detailed)
 * or 0 with changes, else 0. */
int plan_exit_code(const struct plan *p, int detailed);

/* {"instance", "bottles": [...], "guards": [...], "gc_blocked_by": [...],
 *  "summary": {...}} as canonical indented JSON; malloc'd. */
char *plan_json(const struct plan *p, const char *instance);
/* One line per action "bottle/role: action (cause)", per failed or refused
 * bottle "bottle: status: error", "gc blocked by PATH", and a summary. */
void plan_print_text(const struct plan *p, FILE *out, int verbose);

/* Helpers for the caller: the resource of that name in a list, or NULL. */
const struct engine_network *plan_find_network(const struct engine_network_list *l,
                                               const char *name);
const struct engine_container *plan_find_container(const struct engine_container_list *l,
                                                   const char *name);
/* 1 if labels say managed by instance (NULL instance: never). */
int plan_is_ours(const struct engine_kvs *labels, const char *instance);

#endif

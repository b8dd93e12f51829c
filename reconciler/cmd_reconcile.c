/*
 * cmd_reconcile.c - `bottled reconcile --once` and `bottled gc`.
 *
 * reconcile: one pass (pass.h) applied (apply.h): every bottle the
 * manifests declare is created or repaired, the sidecars get their config,
 * orphans are deleted unless a guard refuses.  gc: the same pass, but only
 * this instance's bottles that no manifest declares are touched.  With
 * --dry-run both print the plan instead and change nothing (the state dir
 * is only read, so they work while `watch` runs).
 *
 * Exit status (architecture.md): 0 success (2 with --detailed-exitcode when
 * something changed); 1 a bottle failed or a guard refused a deletion (the
 * others were still applied); 2 (1 with --detailed-exitcode) bottled's own
 * configuration is wrong; 3 engine or state unreachable, state locked.
 */
#include <stdio.h>
#include <stdlib.h>

#include "apply.h"
#include "cmd.h"
#include "pass.h"

static int print_plan(struct pass *ps, const struct opts *o, int gc_only)
{
    struct plan *p = ps->plan;
    size_t all = p->n_bottles;
    if (gc_only) {
        /* only what gc would touch: the desired bottles are moved behind
         * the ones shown (plan_free() still frees every one of them) */
        size_t w = 0;
        p->n_changes = 0;
        p->n_failed = 0;
        for (size_t i = 0; i < all; i++) {
            if (pass_find(ps, p->bottles[i].name) >= 0)
                continue;
            p->n_changes += p->bottles[i].n_actions;
            struct plan_bottle t = p->bottles[w];
            p->bottles[w++] = p->bottles[i];
            p->bottles[i] = t;
        }
        p->n_bottles = w;
    }
    int rc;
    if (o->json) {
        char *text = plan_json(p, ps->instance);
        fputs(text, stdout);
        free(text);
    } else {
        if (!o->quiet)
            printf("instance %s (dry run: nothing changed)\n",
                   ps->instance ? ps->instance : "(new)");
        plan_print_text(p, stdout, o->verbose);
    }
    rc = plan_exit_code(p, o->detailed_exitcode);
    p->n_bottles = all;
    return rc;
}

static int run(const struct cmd *cmd, struct opts *o, int gc_only)
{
    struct pass ps;
    int ret = pass_prepare(&ps, cmd, o, o->dry_run ? PASS_READONLY : PASS_APPLY);
    if (ret == 0) {
        if (o->dry_run) {
            ret = print_plan(&ps, o, gc_only);
        } else {
            if (!o->quiet && !o->json)
                printf("instance %s\n", ps.instance);
            struct apply_stats stats;
            ret = apply_pass(&ps, gc_only ? APPLY_GC_ONLY : APPLY_ALL, stdout, &stats);
            if (ret == 0)
                ret = apply_exit_code(&stats, o->detailed_exitcode);
        }
    }
    pass_release(&ps);
    return ret;
}

int cmd_reconcile(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    (void)argv;
    if (argc)
        return usage_error(cmd, "takes no arguments (got %d)", argc);
    if (!o->once)
        return usage_error(cmd, "only --once is implemented; use `bottled watch` to keep "
                                "converging");
    return run(cmd, o, 0);
}

int cmd_gc(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    (void)argv;
    if (argc)
        return usage_error(cmd, "takes no arguments (got %d)", argc);
    return run(cmd, o, 1);
}

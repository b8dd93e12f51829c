/*
 * cmd_plan.c - `bottled plan`: the actions a reconcile pass would take,
 * each with its cause; no side effects.
 *
 * Read-only: the state dir is opened STATE_RDONLY (works while `watch`
 * holds the lock; nothing is created, no CA is minted), the engine only
 * sees list calls (one per kind), image lookups and, for a running
 * sidecar of ours, one exec of `curl .../config-hash` to read the config
 * hash it serves.  Without a state dir everything of ours is new: the
 * instance is "(new)" (or --instance), every bottle is created.
 *
 * Exit status (architecture.md): 0 nothing to do (or changes, without
 * --detailed-exitcode); 2 changes planned with --detailed-exitcode; 1 a
 * bottle failed, is in conflict, or a guard refused a deletion; 2 (1 with
 * --detailed-exitcode) bottled's own configuration is wrong; 3 the engine
 * or the state database is unreachable.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"
#include "pass.h"

int cmd_plan(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    (void)argv;
    if (argc)
        return usage_error(cmd, "takes no arguments (got %d)", argc);
    struct pass ps;
    int ret = pass_prepare(&ps, cmd, o, PASS_READONLY);
    if (ret == 0) {
        if (o->json) {
            char *text = plan_json(ps.plan, ps.instance);
            fputs(text, stdout);
            free(text);
        } else {
            if (!o->quiet)
                printf("instance %s\n", ps.instance ? ps.instance : "(new)");
            plan_print_text(ps.plan, stdout, o->verbose);
        }
        ret = plan_exit_code(ps.plan, o->detailed_exitcode);
    }
    pass_release(&ps);
    return ret;
}

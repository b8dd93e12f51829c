/*
 * cmd_show.c - `bottled show NAME`: the canonical JSON of one bottle.
 */
#include <stdlib.h>
#include <string.h>

#include "canonical.h"
#include "cmd.h"
#include "loader.h"

int cmd_show(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    if (argc != 1)
        return usage_error(
            cmd, argc ? "expected one bottle NAME, got %d arguments" : "expected a bottle NAME%.0d",
            argc);
    const char *name = argv[0];
    struct diag_list diags;
    diag_list_init(&diags);
    struct manifest_set set;
    int ret = EXIT_OK;
    if (manifest_set_load(&set, o->dir, &diags) < 0) {
        diag_list_sort(&diags);
        diag_print_text(&diags, stderr);
        ret = usage_error(cmd, "cannot read manifest directory '%s'", o->dir);
        goto out;
    }
    int declared = 0;
    for (size_t i = 0; i < set.n; i++)
        declared |= !strcmp(set.decls[i]->name, name);
    long i = manifest_set_find(&set, name);
    if (i < 0 || !set.bottles[i]) {
        if (!declared) {
            fprintf(stderr, "bottled: show: no bottle named '%s' in %s\n", name, o->dir);
        } else {
            /* Show what makes it unusable: the diagnostics naming it. */
            struct diag_list mine;
            diag_list_init(&mine);
            for (size_t k = 0; k < diags.n; k++)
                if (diags.v[k].bottle && !strcmp(diags.v[k].bottle, name))
                    diag_add(&mine, diags.v[k].level, diags.v[k].path, diags.v[k].line,
                             diags.v[k].col, diags.v[k].bottle, diags.v[k].allowed, "%s",
                             diags.v[k].msg);
            diag_list_sort(&mine);
            diag_print_text(&mine, stderr);
            diag_list_release(&mine);
            fprintf(stderr, "bottled: show: bottle '%s' has errors\n", name);
        }
        ret = EXIT_FAILED;
        goto out;
    }
    char *text = bottle_canonical_text(set.bottles[i], 1);
    fputs(text, stdout);
    free(text);
out:
    manifest_set_release(&set);
    diag_list_release(&diags);
    return ret;
}

/*
 * cmd_approve.c - `bottled approve-deletes NAME...`: a one-shot approval
 * for deletions a guard refused (--max-deletes, --allow-empty).
 *
 * The state dir is opened STATE_SHARED: the database read-write without
 * the lock, so this works while `watch` runs (SQLite's locking and busy
 * timeout serialise the one small write with the daemon's).  Nothing else
 * is created; a state dir or database that does not exist yet is a usage
 * error, since no pass can have refused anything.
 *
 * Only a bottle the state knows can be approved: an approval recorded for
 * a mistyped name would sit in the database and lift the guard for a
 * bottle of that name later, unasked.  Each known NAME is approved on its
 * own (state_approve_deletes); an unknown one is refused with nothing
 * recorded for it.  The next pass that would delete an approved bottle
 * takes (consumes) its approval.
 *
 * Exit status: 0 every NAME approved; 1 some NAME unknown (the known ones
 * are still approved); 2 no NAME, bad flags, no state yet, or the state
 * dir's mode or owner is wrong; 3 the database cannot be written (busy past
 * the timeout, unreadable, a schema of another version).
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "cmd.h"
#include "err.h"
#include "json_canon.h"
#include "state.h"

int cmd_approve_deletes(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    if (argc == 0)
        return usage_error(cmd, "expected at least one bottle NAME");
    int ret = EXIT_USAGE;
    struct state *st = NULL;
    cJSON *doc = cJSON_CreateObject();
    cJSON *approved = cJSON_AddArrayToObject(doc, "approved");
    cJSON *unknown = cJSON_AddArrayToObject(doc, "unknown");
    struct buf why;
    buf_init(&why, 0);

    char *dir = opts_state_dir(o);
    if (!dir)
        goto out;
    struct state_open_opts so = {.dir = dir, .mode = STATE_SHARED};
    int err = state_open(&so, &st, &why);
    if (err == BD_E_NOTFOUND) {
        fprintf(stderr,
                "bottled: approve-deletes: no state in %s: nothing reconciled yet, so no "
                "deletion was refused (wrong --state-dir?)\n",
                dir);
        goto out;
    }
    if (err) {
        fprintf(stderr, "bottled: approve-deletes: state dir: %s\n",
                why.len ? why.data : bd_strerror(err));
        ret = err == BD_E_PERM || err == BD_E_MISMATCH || err == BD_E_INVAL ? EXIT_USAGE
                                                                            : EXIT_UNAVAIL;
        goto out;
    }

    ret = EXIT_OK;
    for (int i = 0; i < argc && ret != EXIT_UNAVAIL; i++) {
        const char *name = argv[i];
        int dup = 0;
        for (int k = 0; k < i; k++)
            dup |= !strcmp(argv[k], name);
        if (dup)
            continue;
        struct state_bottle b;
        enum state_phase phase = STATE_PHASE_READY;
        err = state_bottle_get(st, name, &b);
        if (err == BD_E_NOTFOUND) {
            fprintf(stderr,
                    "bottled: approve-deletes: no bottle '%s' in the state of %s: nothing "
                    "approved for it\n",
                    name, dir);
            cJSON_AddItemToArray(unknown, cJSON_CreateString(name));
            ret = EXIT_FAILED;
            continue;
        }
        if (err == 0) {
            phase = b.phase;
            state_bottle_release(&b);
            err = state_approve_deletes(st, name);
        }
        if (err) {
            if (err == BD_E_LOCKED)
                fprintf(stderr,
                        "bottled: approve-deletes: the state database in %s stayed busy past the "
                        "timeout (another process is writing it): '%s' not approved, try again\n",
                        dir, name);
            else
                fprintf(stderr, "bottled: approve-deletes: state database: %s (%s)\n",
                        bd_strerror(err), state_errmsg(st));
            ret = EXIT_UNAVAIL;
            continue;
        }
        cJSON_AddItemToArray(approved, cJSON_CreateString(name));
        if (!o->quiet && !o->json)
            printf("approved deletion of %s (one-shot: the next pass may delete it)\n", name);
        /* Stalled is where a refused deletion leaves a bottle; in any other
         * phase the approval waits, unused, for a later refusal. */
        if (!o->quiet && phase != STATE_PHASE_STALLED)
            fprintf(
                stderr,
                "bottled: approve-deletes: note: '%s' is %s, not Stalled: no deletion of it "
                "is refused now; the approval stays until a pass that would delete it takes it\n",
                name, state_phase_name(phase));
    }
    if (o->json) {
        char *text = json_canon_print(doc, 1);
        fputs(text, stdout);
        free(text);
    }
out:
    cJSON_Delete(doc);
    state_close(st);
    buf_release(&why);
    free(dir);
    return ret;
}

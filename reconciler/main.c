/*
 * main.c - bottled's entry point and its table of subcommands.
 *
 * Only implemented commands are listed: `--help` shows exactly what this
 * binary can do.
 */
#include <string.h>

#include "build_config.h"
#include "cmd.h"
#include "opts.h"

static const enum opt_id validate_flags[] = {OPT_DIR, OPT_JSON, OPT_QUIET, OPT_VERBOSE};
static const enum opt_id show_flags[] = {OPT_DIR};
static const enum opt_id render_flags[] = {OPT_DIR,
                                           OPT_STATE_DIR,
                                           OPT_SECRETS,
                                           OPT_SECRET_ENV,
                                           OPT_PROXY_DNS,
                                           OPT_PROXY_ADD_HOST,
                                           OPT_PROXY_ALLOW_PRIVATE,
                                           OPT_PROXY_UPSTREAM_CA,
                                           OPT_JSON};
static const enum opt_id plan_flags[] = {OPT_DIR,
                                         OPT_STATE_DIR,
                                         OPT_ENGINE,
                                         OPT_NAME_PREFIX,
                                         OPT_INSTANCE,
                                         OPT_SUBNET_POOL,
                                         OPT_PROXY_IMAGE,
                                         OPT_GATE_IMAGE,
                                         OPT_KEYS_DIR,
                                         OPT_SECRETS,
                                         OPT_SECRET_ENV,
                                         OPT_PROXY_DNS,
                                         OPT_PROXY_ADD_HOST,
                                         OPT_PROXY_ALLOW_PRIVATE,
                                         OPT_PROXY_UPSTREAM_CA,
                                         OPT_ALLOW_EMPTY,
                                         OPT_MAX_DELETES,
                                         OPT_FORCE,
                                         OPT_DETAILED_EXITCODE,
                                         OPT_JSON,
                                         OPT_QUIET,
                                         OPT_VERBOSE};
static const enum opt_id reconcile_flags[] = {OPT_ONCE,
                                              OPT_DIR,
                                              OPT_STATE_DIR,
                                              OPT_ENGINE,
                                              OPT_NAME_PREFIX,
                                              OPT_INSTANCE,
                                              OPT_SUBNET_POOL,
                                              OPT_PROXY_IMAGE,
                                              OPT_GATE_IMAGE,
                                              OPT_FORGE_CA,
                                              OPT_KEYS_DIR,
                                              OPT_SECRETS,
                                              OPT_SECRET_ENV,
                                              OPT_PROXY_DNS,
                                              OPT_PROXY_ADD_HOST,
                                              OPT_PROXY_ALLOW_PRIVATE,
                                              OPT_PROXY_UPSTREAM_CA,
                                              OPT_ALLOW_EMPTY,
                                              OPT_MAX_DELETES,
                                              OPT_FORCE,
                                              OPT_DRY_RUN,
                                              OPT_NO_HOST_FIREWALL,
                                              OPT_DETAILED_EXITCODE,
                                              OPT_JSON,
                                              OPT_QUIET,
                                              OPT_VERBOSE};
static const enum opt_id watch_flags[] = {OPT_DIR,
                                          OPT_STATE_DIR,
                                          OPT_ENGINE,
                                          OPT_NAME_PREFIX,
                                          OPT_INSTANCE,
                                          OPT_SUBNET_POOL,
                                          OPT_PROXY_IMAGE,
                                          OPT_GATE_IMAGE,
                                          OPT_FORGE_CA,
                                          OPT_KEYS_DIR,
                                          OPT_SECRETS,
                                          OPT_SECRET_ENV,
                                          OPT_PROXY_DNS,
                                          OPT_PROXY_ADD_HOST,
                                          OPT_PROXY_ALLOW_PRIVATE,
                                          OPT_PROXY_UPSTREAM_CA,
                                          OPT_ALLOW_EMPTY,
                                          OPT_MAX_DELETES,
                                          OPT_FORCE,
                                          OPT_NO_HOST_FIREWALL,
                                          OPT_SETTLE,
                                          OPT_GRACE,
                                          OPT_RESYNC,
                                          OPT_WATCH_BACKEND,
                                          OPT_NO_ENGINE_EVENTS,
                                          OPT_JSON,
                                          OPT_QUIET,
                                          OPT_VERBOSE};
static const enum opt_id gc_flags[] = {
    OPT_DIR,         OPT_STATE_DIR,         OPT_ENGINE,      OPT_NAME_PREFIX, OPT_INSTANCE,
    OPT_SUBNET_POOL, OPT_PROXY_IMAGE,       OPT_GATE_IMAGE,  OPT_FORGE_CA,    OPT_KEYS_DIR,
    OPT_SECRETS,     OPT_SECRET_ENV,        OPT_ALLOW_EMPTY, OPT_MAX_DELETES, OPT_FORCE,
    OPT_DRY_RUN,     OPT_DETAILED_EXITCODE, OPT_JSON,        OPT_QUIET,       OPT_VERBOSE};
static const enum opt_id status_flags[] = {OPT_STATE_DIR, OPT_JSON, OPT_QUIET, OPT_VERBOSE};
static const enum opt_id approve_flags[] = {OPT_STATE_DIR, OPT_JSON, OPT_QUIET};
static const enum opt_id version_flags[] = {OPT_JSON};

#define FLAGS(a) (a), (int)(sizeof(a) / sizeof((a)[0]))

static const struct cmd commands[] = {
    {"validate", cmd_validate, "[PATH...]", "Parse and check manifests, print every diagnostic.",
     "Without PATH, validates the manifest directory (-d). A PATH that is a directory is\n"
     "validated as a whole (extends resolved inside it); a PATH that is a file is checked\n"
     "with extends resolved in the -d directory when the file lies inside it, else in the\n"
     "file's own directory.\n\n"
     "Exit status: 0 all valid, 1 any error, 2 usage error.",
     FLAGS(validate_flags)},
    {"show", cmd_show, "NAME", "Print the canonical JSON of one resolved bottle.",
     "The canonical form has every default filled in and extends applied; it is what the\n"
     "reconciler derives its specs from.\n\n"
     "Exit status: 0 shown, 1 no such bottle or it has errors, 2 usage error.",
     FLAGS(show_flags)},
    {"plan", cmd_plan, NULL, "Print the actions a reconcile would take, each with its cause.",
     "Compares the manifests (-d) with this instance's resources on the engine (one list\n"
     "call per kind) and prints, per bottle, the ordered actions with their causes: create\n"
     "(missing), recreate (spec changed, drift), start, deliver (sidecar config), keys\n"
     "(deploy keys to register, check or revoke at a forge), delete (orphan), and the\n"
     "deletions a guard refuses (incomplete snapshot, --allow-empty,\n"
     "--max-deletes).  Read-only: the state dir is only read (works while watch runs), the\n"
     "engine sees no mutating call.  Without a state dir the instance is new and every\n"
     "bottle is to be created.\n\n"
     "Exit status: 0 nothing to do (or changes without --detailed-exitcode), 2 changes\n"
     "planned with --detailed-exitcode, 1 a bottle failed or is in conflict or a guard\n"
     "refused, 2 bottled's own configuration is wrong (1 with --detailed-exitcode), 3 engine\n"
     "or state unreachable.",
     FLAGS(plan_flags)},
    {"reconcile", cmd_reconcile, NULL, "Converge the engine with the manifests once (--once).",
     "One pass: every bottle the manifests (-d) declare gets its networks, volumes, sidecar\n"
     "(config delivered, /healthz waited for) and agent, created or repaired (spec changed,\n"
     "drift, stopped); a sidecar whose routes or secrets changed gets a new config and a\n"
     "reload, nothing recreated; bottles of this instance that no manifest declares are\n"
     "deleted unless a guard refuses (incomplete snapshot, --allow-empty, --max-deletes;\n"
     "`bottled approve-deletes` lifts a refusal).  Bottles are worked on concurrently; one\n"
     "failing bottle never stops the others.  Takes the state dir's lock.  --dry-run prints\n"
     "the plan instead and changes nothing.\n\n"
     "Exit status: 0 converged (2 with --detailed-exitcode when something changed), 1 a\n"
     "bottle failed or a guard refused, 2 bottled's own configuration is wrong (1 with\n"
     "--detailed-exitcode), 3 engine or state unreachable, or the state dir is locked.",
     FLAGS(reconcile_flags)},
    {"watch", cmd_watch, NULL, "Converge, then keep converging on every change.",
     "Runs the pass of `reconcile --once`, then watches the manifest directory (-d; its link\n"
     "is followed again when it is swapped, as git-sync does) and runs one pass after the\n"
     "files were quiet for --settle ms.  Events are only hints: each pass re-reads every\n"
     "manifest and the engine.  A full pass also runs every --resync s (jittered), which\n"
     "recreates a container removed by hand and starts a stopped one; the engine's event\n"
     "stream makes that happen within the settle window (a container of this instance stopped\n"
     "or removed, a network connected to it, a network or volume removed), with the same\n"
     "backoff, so a tool fighting the watcher never makes it loop; a dropped stream is\n"
     "reconnected with backoff and followed by one full pass (--no-engine-events: the resync\n"
     "alone).  A bottle whose manifest disappears is deleted only after it was absent for\n"
     "--grace s.  A failing bottle is retried with backoff (1 s doubling to 5 min, reset when\n"
     "its manifest changes); an invalid manifest waits for its file to change; a refused\n"
     "deletion waits for `bottled approve-deletes`, which the watcher notices within a second.\n"
     "A .git/index.lock in the directory defers a pass for up to 60 s.  Takes the state dir's\n"
     "lock for its lifetime and never writes into the manifest directory.  One line per pass\n"
     "(-q: none; -v: every action too; --json: each pass's result as one JSON object per line\n"
     "on stdout, the object of `reconcile --json` plus \"pass\": {id, trigger, ms}; other\n"
     "messages go to stderr).  What it is doing now (idle, settling, deferred, a pass and its\n"
     "trigger, the next resync) is kept in the state database for `bottled status`.\n\n"
     "Signals: SIGHUP runs a pass now; SIGTERM or SIGINT stop after the current pass (exit 0);\n"
     "SIGUSR1 makes the watch backend act as if it lost events (a full rescan; for tests).\n\n"
     "Exit status: 0 stopped by a signal, 2 bottled's own configuration is wrong or the\n"
     "directory cannot be watched, 3 the state dir is locked or unreadable.",
     FLAGS(watch_flags)},
    {"gc", cmd_gc, NULL, "Remove this instance's resources whose bottle is gone.",
     "Deletes the bottles of this instance (by label) that no manifest in -d declares, with\n"
     "the same guards as reconcile (an incomplete snapshot deletes nothing; --allow-empty;\n"
     "--max-deletes N bottles unless --force).  Declared bottles are not touched.  A deleted\n"
     "bottle's deploy keys are deleted at the forge after its containers and before its\n"
     "volumes and networks.  Then, at every repository this instance ever used, deploy keys\n"
     "titled bottled:<instance>: that no bottle owns are deleted too.  Takes the state dir's\n"
     "lock; --dry-run only prints what would be removed.\n\n"
     "Exit status: as reconcile.",
     FLAGS(gc_flags)},
    {"status", cmd_status, "[NAME...]",
     "Show the bottles' phase, last error and resources, and the recent passes.",
     "Prints what the state database recorded: the instance; whether a `bottled watch` runs on\n"
     "this state dir (pid, backend, what it is doing now, the next resync) or when it was last\n"
     "seen; the last reconcile pass (its trigger, when, how long, changes, failures) and \"gc\n"
     "blocked by PATH\" when the last finished pass could\n"
     "not delete anything because its snapshot was incomplete; then per bottle its phase\n"
     "(Ready, Reconciling, Stalled, Degraded, Deleting), reason, last error, manifest hash,\n"
     "generation, failures, last update, next retry, its last pass (when, how long its work\n"
     "took), and its resources (role, engine name,\n"
     "engine id).  -v adds the spec and config hashes, each bottle's last 5 events and the\n"
     "last 5 passes.  -q prints only a blocked gc and the bottles that are not Ready, one line\n"
     "each.  --json prints all of it, times as ISO 8601 UTC.  NAME shows only those bottles.\n"
     "Read-only: works while watch runs; it shows what the passes recorded, it does not ask\n"
     "the engine.\n\n"
     "Exit status: 0 shown, whatever the phases (status is informational; -q or --json tell\n"
     "which bottles are not Ready), also when nothing was reconciled yet; 1 a NAME the state\n"
     "does not know; 2 usage error, or the state dir's mode or owner is wrong; 3 the state\n"
     "database cannot be read (unreadable, busy, another schema version).",
     FLAGS(status_flags)},
    {"render", cmd_render, "NAME", "Print the sidecar configuration of one bottle, secrets masked.",
     "Prints, as JSON, the routes.json and secrets.json the bottle's sidecar would get (every\n"
     "secret value replaced by \"<masked>\") and their config hash, which changes whenever a\n"
     "route, a --proxy-* setting, a used secret's value or its binding changes.  Secrets come\n"
     "from the secrets file (--secrets) and --secret-env.  Writes nothing.\n\n"
     "Exit status: 0 rendered, 1 no such bottle, it has errors, or a route's secret is missing\n"
     "or bound to other hosts, 2 usage error or unusable secrets file, flags or state dir.",
     FLAGS(render_flags)},
    {"approve-deletes", cmd_approve_deletes, "NAME...",
     "Approve, once, the deletion of bottles a guard refused.",
     "A pass refuses to delete bottles whose manifests are gone when there are more than\n"
     "--max-deletes of them, or when no manifest is left and --allow-empty was not given; the\n"
     "bottles stay (Stalled in watch).  This records a one-shot approval for each NAME in the\n"
     "state database: the next pass that would delete that bottle takes the approval and\n"
     "deletes it.  It works while watch runs.  Only a bottle the state knows is approved: an\n"
     "unknown NAME is refused and nothing is recorded for it.  A known bottle that is not\n"
     "Stalled is approved with a note, since the approval then waits for a later refusal.\n"
     "--json prints {\"approved\": [NAME...], \"unknown\": [NAME...]}.\n\n"
     "Exit status: 0 every NAME approved; 1 a NAME unknown (the others are approved); 2 usage\n"
     "error, no state yet, or the state dir's mode or owner is wrong; 3 the state database\n"
     "cannot be written (busy, unreadable, another schema version).",
     FLAGS(approve_flags)},
    {"version", cmd_version, NULL, "Print versions and build options.", NULL, FLAGS(version_flags)},
};

static void print_main_help(FILE *out)
{
    fprintf(out, "Usage: bottled COMMAND [OPTIONS] [ARGS]\n\n"
                 "bottled keeps AI-agent sandboxes (bottles) equal to a directory of manifests.\n\n"
                 "Commands:\n");
    int width = 0;
    for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
        if ((int)strlen(commands[i].name) > width)
            width = (int)strlen(commands[i].name);
    for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
        fprintf(out, "  %-*s %s\n", width, commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'bottled COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_main_help(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        print_main_help(stdout);
        return EXIT_OK;
    }
    if (!strcmp(name, "--version"))
        name = "version";
    for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++) {
        const struct cmd *c = &commands[i];
        if (strcmp(c->name, name))
            continue;
        struct opts o;
        int first = opts_parse(c, argc - 1, argv + 1, &o);
        if (first < 0) {
            opts_release(&o);
            return EXIT_USAGE;
        }
        if (o.help) {
            opts_print_help(c, stdout);
            opts_release(&o);
            return EXIT_OK;
        }
        int rc = c->run(c, &o, argc - 1 - first, argv + 1 + first);
        opts_release(&o);
        return rc;
    }
    fprintf(stderr, "bottled: unknown command '%s'\n", name);
    print_main_help(stderr);
    return EXIT_USAGE;
}

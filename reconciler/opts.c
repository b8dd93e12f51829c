/*
 * opts.c - flag parsing and generated help (see opts.h).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "opts.h"
#include "xalloc.h"

struct opt_def {
    enum opt_id id;
    const char *name;
    int short_name;
    const char *arg; /* NULL: a switch */
    const char *env; /* NULL: only counts when typed */
    const char *help;
};

static const struct opt_def defs[OPT__COUNT] = {
    [OPT_HELP] = {OPT_HELP, "help", 'h', NULL, NULL, "show this help and exit"},
    [OPT_DIR] = {OPT_DIR, "dir", 'd', "DIR", "BOTTLED_DIR",
                 "manifest directory (default ./bottles)"},
    [OPT_JSON] = {OPT_JSON, "json", 0, NULL, "BOTTLED_JSON", "print machine-readable JSON"},
    [OPT_QUIET] = {OPT_QUIET, "quiet", 'q', NULL, "BOTTLED_QUIET", "print only errors"},
    [OPT_VERBOSE] = {OPT_VERBOSE, "verbose", 'v', NULL, "BOTTLED_VERBOSE", "print more detail"},
    [OPT_STATE_DIR] = {OPT_STATE_DIR, "state-dir", 0, "DIR", "BOTTLED_STATE_DIR",
                       "state directory (default $XDG_STATE_HOME/bottled; root: /var/lib/bottled)"},
    [OPT_SECRETS] = {OPT_SECRETS, "secrets", 0, "FILE", "BOTTLED_SECRETS",
                     "secrets file, lines NAME@HOST,...=VALUE, mode 0600 or 0400 (default "
                     "<state-dir>/secrets)"},
    [OPT_SECRET_ENV] = {OPT_SECRET_ENV, "secret-env", 0, "NAME@HOSTS", "BOTTLED_SECRET_ENV",
                        "import environment variable NAME as a secret bound to HOSTS "
                        "(repeatable)"},
    [OPT_PROXY_DNS] = {OPT_PROXY_DNS, "proxy-dns", 0, "IP", "BOTTLED_PROXY_DNS",
                       "DNS server the sidecars resolve with (default: the container's)"},
    [OPT_PROXY_ADD_HOST] = {OPT_PROXY_ADD_HOST, "proxy-add-host", 0, "NAME:IP",
                            "BOTTLED_PROXY_ADD_HOST",
                            "static host entry for the sidecars, before DNS (repeatable)"},
    [OPT_PROXY_ALLOW_PRIVATE] = {OPT_PROXY_ALLOW_PRIVATE, "proxy-allow-private", 0, "CIDR",
                                 "BOTTLED_PROXY_ALLOW_PRIVATE",
                                 "private range the sidecars may dial (repeatable)"},
    [OPT_PROXY_UPSTREAM_CA] = {OPT_PROXY_UPSTREAM_CA, "proxy-upstream-ca", 0, "FILE",
                               "BOTTLED_PROXY_UPSTREAM_CA",
                               "CA bundle the sidecars verify upstreams with (default: the "
                               "system store)"},
    [OPT_ENGINE] = {OPT_ENGINE, "engine", 0, "URL", "BOTTLED_ENGINE",
                    "engine socket unix:///PATH (default: DOCKER_HOST, else the Podman socket if "
                    "it answers, else /var/run/docker.sock)"},
    [OPT_NAME_PREFIX] = {OPT_NAME_PREFIX, "name-prefix", 0, "PREFIX", "BOTTLED_NAME_PREFIX",
                         "engine names are PREFIX-BOTTLE-ROLE (default bottle)"},
    [OPT_INSTANCE] = {OPT_INSTANCE, "instance", 0, "ID", NULL,
                      "adopt instance ID (12 lowercase hex) after losing the state dir"},
    [OPT_SUBNET_POOL] = {OPT_SUBNET_POOL, "subnet-pool", 0, "CIDR", "BOTTLED_SUBNET_POOL",
                         "IPv4 pool the bottles' /28 networks come from (default 10.213.0.0/16)"},
    [OPT_PROXY_IMAGE] = {OPT_PROXY_IMAGE, "proxy-image", 0, "REF", "BOTTLED_PROXY_IMAGE",
                         "sidecar image (default localhost/bottled-proxy:<version>)"},
    [OPT_GATE_IMAGE] = {OPT_GATE_IMAGE, "gate-image", 0, "REF", "BOTTLED_GATE_IMAGE",
                        "git gate image (default localhost/bottled-gate:<version>)"},
    [OPT_FORGE_CA] = {OPT_FORGE_CA, "forge-ca", 0, "FILE", "BOTTLED_FORGE_CA",
                      "CA bundle for the forges' HTTPS APIs (default: the system store)"},
    [OPT_KEYS_DIR] = {OPT_KEYS_DIR, "keys-dir", 0, "DIR", "BOTTLED_KEYS_DIR",
                      "where `provider: static` repo keys are (default <state-dir>/keys)"},
    [OPT_ALLOW_EMPTY] = {OPT_ALLOW_EMPTY, "allow-empty", 0, NULL, NULL,
                         "allow an empty manifest set to delete every bottle"},
    [OPT_MAX_DELETES] = {OPT_MAX_DELETES, "max-deletes", 0, "N", "BOTTLED_MAX_DELETES",
                         "refuse to delete more than N bottles in one pass (default 10)"},
    [OPT_FORCE] = {OPT_FORCE, "force", 0, NULL, NULL, "allow more deletions than --max-deletes"},
    [OPT_DETAILED_EXITCODE] = {OPT_DETAILED_EXITCODE, "detailed-exitcode", 0, NULL,
                               "BOTTLED_DETAILED_EXITCODE",
                               "exit 2 when changes are planned (0: nothing to do)"},
    [OPT_ONCE] = {OPT_ONCE, "once", 0, NULL, NULL, "converge once, then exit"},
    [OPT_DRY_RUN] = {OPT_DRY_RUN, "dry-run", 0, NULL, "BOTTLED_DRY_RUN",
                     "print what would be done and change nothing"},
    [OPT_NO_HOST_FIREWALL] = {OPT_NO_HOST_FIREWALL, "insecure-no-host-firewall", 0, NULL, NULL,
                              "do not keep host firewall chains (engines on another machine); "
                              "bottles are Degraded"},
    [OPT_SETTLE] = {OPT_SETTLE, "settle", 0, "MS", "BOTTLED_SETTLE",
                    "wait until the manifests were quiet this long before a pass (default 200)"},
    [OPT_GRACE] = {OPT_GRACE, "grace", 0, "S", "BOTTLED_GRACE",
                   "delete a bottle only after its manifest was gone this long (default 30)"},
    [OPT_RESYNC] = {OPT_RESYNC, "resync", 0, "S", "BOTTLED_RESYNC",
                    "full pass at least this often, jittered, to repair drift (default 60)"},
    [OPT_WATCH_BACKEND] = {OPT_WATCH_BACKEND, "watch-backend", 0, "NAME", "BOTTLED_WATCH_BACKEND",
                           "fswatch or inotify (default: the first compiled one that opens)"},
    [OPT_NO_ENGINE_EVENTS] = {OPT_NO_ENGINE_EVENTS, "no-engine-events", 0, NULL,
                              "BOTTLED_NO_ENGINE_EVENTS",
                              "do not follow the engine's event stream (drift is then repaired "
                              "by the resync alone)"},
};

int usage_error(const struct cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bottled: %s%s", cmd ? cmd->name : "", cmd ? ": " : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'bottled %s%s--help' for more information.\n", cmd ? cmd->name : "",
            cmd ? " " : "");
    return EXIT_USAGE;
}

/* Reads a boolean environment variable; -1 if it holds something else. */
static int env_bool(const char *val)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"", "0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
        if (!strcasecmp(val, yes[i]))
            return 1;
    for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
        if (!strcasecmp(val, no[i]))
            return 0;
    return -1;
}

static void list_add(struct opt_list *l, const char *v)
{
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = v;
}

/*
 * A repeatable flag: an environment value is split at white space (kept in
 * o->owned); the first typed flag drops what the environment gave.
 */
static void set_list(struct opts *o, struct opt_list *l, const char *arg, const char *from_env)
{
    if (!from_env) {
        if (l->from_env)
            l->n = 0;
        l->from_env = 0;
        list_add(l, arg);
        return;
    }
    char *copy = xstrdup(arg);
    o->owned = xrealloc(o->owned, (o->n_owned + 1) * sizeof(*o->owned));
    o->owned[o->n_owned++] = copy;
    l->from_env = 1;
    static const char ws[] = " \t\n";
    for (char *p = copy + strspn(copy, ws); *p; p += strspn(p, ws)) {
        size_t n = strcspn(p, ws);
        list_add(l, p);
        if (!p[n])
            break;
        p[n] = '\0';
        p += n + 1;
    }
}

/* A string flag that must not be empty. */
static int set_str(const struct cmd *cmd, const char **field, enum opt_id id, const char *arg)
{
    if (!*arg) {
        usage_error(cmd, "--%s must not be empty", defs[id].name);
        return -1;
    }
    *field = arg;
    return 0;
}

static int set_opt(const struct cmd *cmd, struct opts *o, enum opt_id id, const char *arg,
                   const char *from_env)
{
    int b = 1;
    if (from_env && !defs[id].arg) {
        b = env_bool(arg);
        if (b < 0) {
            usage_error(cmd, "%s='%s' is not a boolean (use 1/0, true/false)", from_env, arg);
            return -1;
        }
    }
    switch (id) {
    case OPT_HELP:
        o->help = 1;
        break;
    case OPT_DIR:
        if (!*arg) {
            usage_error(cmd, "the manifest directory must not be empty");
            return -1;
        }
        o->dir = arg;
        o->dir_given = 1;
        break;
    case OPT_JSON:
        o->json = b;
        break;
    case OPT_QUIET:
        o->quiet = b;
        break;
    case OPT_VERBOSE:
        o->verbose = b;
        break;
    case OPT_STATE_DIR:
        return set_str(cmd, &o->state_dir, id, arg);
    case OPT_SECRETS:
        return set_str(cmd, &o->secrets, id, arg);
    case OPT_PROXY_DNS:
        return set_str(cmd, &o->proxy_dns, id, arg);
    case OPT_PROXY_UPSTREAM_CA:
        return set_str(cmd, &o->proxy_upstream_ca, id, arg);
    case OPT_ENGINE:
        if (strncmp(arg, "unix:///", 8)) {
            usage_error(cmd, "--engine '%s': want unix:///PATH", arg);
            return -1;
        }
        o->engine = arg;
        break;
    case OPT_NAME_PREFIX: {
        size_t n = strlen(arg);
        if (!n || n > 63 || !strchr("abcdefghijklmnopqrstuvwxyz0123456789", arg[0]) ||
            strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n) {
            usage_error(cmd,
                        "--name-prefix '%s': want a-z or 0-9 first, then letters, digits, '_', "
                        "'.', '-', at most 63",
                        arg);
            return -1;
        }
        o->name_prefix = arg;
        break;
    }
    case OPT_INSTANCE:
        if (strlen(arg) != 12 || strspn(arg, "0123456789abcdef") != 12) {
            usage_error(cmd, "--instance '%s': want 12 lowercase hex characters", arg);
            return -1;
        }
        o->instance = arg;
        break;
    case OPT_SUBNET_POOL:
        return set_str(cmd, &o->subnet_pool, id, arg);
    case OPT_PROXY_IMAGE:
        return set_str(cmd, &o->proxy_image, id, arg);
    case OPT_GATE_IMAGE:
        return set_str(cmd, &o->gate_image, id, arg);
    case OPT_FORGE_CA:
        return set_str(cmd, &o->forge_ca, id, arg);
    case OPT_KEYS_DIR:
        return set_str(cmd, &o->keys_dir, id, arg);
    case OPT_ALLOW_EMPTY:
        o->allow_empty = b;
        break;
    case OPT_FORCE:
        o->force = b;
        break;
    case OPT_DETAILED_EXITCODE:
        o->detailed_exitcode = b;
        break;
    case OPT_ONCE:
        o->once = b;
        break;
    case OPT_DRY_RUN:
        o->dry_run = b;
        break;
    case OPT_NO_HOST_FIREWALL:
        o->no_host_firewall = b;
        break;
    case OPT_SETTLE:
    case OPT_GRACE:
    case OPT_RESYNC: {
        size_t n = strlen(arg);
        if (!n || n > 7 || strspn(arg, "0123456789") != n) {
            usage_error(cmd, "--%s '%s': want a whole number (%s)", defs[id].name, arg,
                        id == OPT_SETTLE ? "milliseconds" : "seconds");
            return -1;
        }
        long v = 0;
        for (size_t k = 0; k < n; k++)
            v = v * 10 + (arg[k] - '0');
        if (id == OPT_RESYNC && v < 1) {
            usage_error(cmd, "--resync must be at least 1 second");
            return -1;
        }
        *(id == OPT_SETTLE ? &o->settle_ms : id == OPT_GRACE ? &o->grace_s : &o->resync_s) = v;
        break;
    }
    case OPT_WATCH_BACKEND:
        return set_str(cmd, &o->watch_backend, id, arg);
    case OPT_NO_ENGINE_EVENTS:
        o->no_engine_events = b;
        break;
    case OPT_MAX_DELETES: {
        size_t n = strlen(arg);
        if (!n || n > 9 || strspn(arg, "0123456789") != n) {
            usage_error(cmd, "--max-deletes '%s': want a number of bottles (0 or more)", arg);
            return -1;
        }
        long v = 0;
        for (size_t k = 0; k < n; k++)
            v = v * 10 + (arg[k] - '0');
        o->max_deletes = v;
        break;
    }
    case OPT_SECRET_ENV:
        set_list(o, &o->secret_env, arg, from_env);
        break;
    case OPT_PROXY_ADD_HOST:
        set_list(o, &o->proxy_add_host, arg, from_env);
        break;
    case OPT_PROXY_ALLOW_PRIVATE:
        set_list(o, &o->proxy_allow_private, arg, from_env);
        break;
    case OPT__COUNT:
        break;
    }
    return 0;
}

int opts_parse(const struct cmd *cmd, int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->dir = "./bottles";
    o->max_deletes = -1;
    o->settle_ms = 200;
    o->grace_s = 30;
    o->resync_s = 60;

    struct option longopts[OPT__COUNT + 2];
    char shortopts[2 * OPT__COUNT + 2];
    size_t nl = 0, ns = 0;
    shortopts[ns++] = ':'; /* report a missing argument as ':' */
    int accepted[OPT__COUNT] = {0};
    accepted[OPT_HELP] = 1;
    for (int i = 0; i < cmd->n_flags; i++)
        accepted[cmd->flags[i]] = 1;
    for (int id = 0; id < OPT__COUNT; id++) {
        if (!accepted[id])
            continue;
        const struct opt_def *d = &defs[id];
        longopts[nl++] = (struct option){d->name, d->arg ? required_argument : no_argument, NULL,
                                         d->short_name ? d->short_name : 1000 + id};
        if (d->short_name) {
            shortopts[ns++] = (char)d->short_name;
            if (d->arg)
                shortopts[ns++] = ':';
        }
    }
    longopts[nl] = (struct option){NULL, 0, NULL, 0};
    shortopts[ns] = '\0';

    /* Environment first, typed flags override. */
    for (int id = 0; id < OPT__COUNT; id++) {
        const char *val = accepted[id] && defs[id].env ? getenv(defs[id].env) : NULL;
        if (val && set_opt(cmd, o, (enum opt_id)id, val, defs[id].env) < 0)
            return -1;
    }

    optind = 1;
    opterr = 0;
    /* GNU getopt permutes: flags may come before or after positionals. */
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (c == '?') {
            if (optopt)
                usage_error(cmd, "unknown option '-%c'", optopt);
            else
                usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
            return -1;
        }
        if (c == ':') {
            usage_error(cmd, "option '%s' needs an argument", argv[optind - 1]);
            return -1;
        }
        enum opt_id id = OPT__COUNT;
        for (int k = 0; k < OPT__COUNT; k++)
            if (accepted[k] && (defs[k].short_name == c || 1000 + k == c))
                id = (enum opt_id)k;
        if (id == OPT__COUNT || set_opt(cmd, o, id, optarg, NULL) < 0)
            return -1;
    }
    return optind;
}

void opts_release(struct opts *o)
{
    free(o->secret_env.v);
    free(o->proxy_add_host.v);
    free(o->proxy_allow_private.v);
    for (size_t i = 0; i < o->n_owned; i++)
        free(o->owned[i]);
    free(o->owned);
    memset(o, 0, sizeof(*o));
}

char *opts_state_dir(const struct opts *o)
{
    if (o->state_dir)
        return xstrdup(o->state_dir);
    if (geteuid() == 0)
        return xstrdup("/var/lib/bottled");
    const char *xdg = getenv("XDG_STATE_HOME");
    if (xdg && xdg[0] == '/') /* the XDG spec: a relative value is ignored */
        return xasprintf("%s/bottled", xdg);
    const char *home = getenv("HOME");
    if (home && home[0] == '/')
        return xasprintf("%s/.local/state/bottled", home);
    fprintf(stderr, "bottled: cannot work out the state directory: neither XDG_STATE_HOME nor "
                    "HOME is set; use --state-dir\n");
    return NULL;
}

void opts_print_help(const struct cmd *cmd, FILE *out)
{
    fprintf(out, "Usage: bottled %s [OPTIONS]%s%s\n\n%s\n", cmd->name, cmd->args ? " " : "",
            cmd->args ? cmd->args : "", cmd->summary);
    if (cmd->help)
        fprintf(out, "\n%s\n", cmd->help);
    fprintf(out, "\nOptions:\n");
    int ids[OPT__COUNT], n = 0;
    for (int i = 0; i < cmd->n_flags; i++)
        ids[n++] = cmd->flags[i];
    ids[n++] = OPT_HELP;
    char left[OPT__COUNT][64];
    int width = 22; /* the option column grows to fit the longest entry */
    for (int i = 0; i < n; i++) {
        const struct opt_def *d = &defs[ids[i]];
        if (d->short_name)
            snprintf(left[i], sizeof(left[i]), "-%c, --%s%s%s", d->short_name, d->name,
                     d->arg ? " " : "", d->arg ? d->arg : "");
        else
            snprintf(left[i], sizeof(left[i]), "    --%s%s%s", d->name, d->arg ? " " : "",
                     d->arg ? d->arg : "");
        if ((int)strlen(left[i]) > width)
            width = (int)strlen(left[i]);
    }
    for (int i = 0; i < n; i++) {
        const struct opt_def *d = &defs[ids[i]];
        fprintf(out, "  %-*s %s", width, left[i], d->help);
        if (d->env)
            fprintf(out, " [env %s]", d->env);
        fprintf(out, "\n");
    }
}

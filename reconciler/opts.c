/*
 * opts.c - flag parsing and generated help (see opts.h).
 */
#include <getopt.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "opts.h"

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
    case OPT__COUNT:
        break;
    }
    return 0;
}

int opts_parse(const struct cmd *cmd, int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->dir = "./bottles";

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
    for (int i = 0; i < n; i++) {
        const struct opt_def *d = &defs[ids[i]];
        char left[64];
        if (d->short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", d->short_name, d->name, d->arg ? " " : "",
                     d->arg ? d->arg : "");
        else
            snprintf(left, sizeof(left), "    --%s%s%s", d->name, d->arg ? " " : "",
                     d->arg ? d->arg : "");
        fprintf(out, "  %-22s %s", left, d->help);
        if (d->env)
            fprintf(out, " [env %s]", d->env);
        fprintf(out, "\n");
    }
}

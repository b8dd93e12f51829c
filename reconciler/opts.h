/*
 * opts.h - the command line: global flags, their environment variables,
 * and the table of subcommands.
 *
 * Each flag has one definition (name, short form, argument, environment
 * variable, help).  A subcommand lists the flags it accepts; parsing and
 * `--help` are generated from the same tables, so the help cannot drift
 * from what is accepted.  Flags that switch safety off or change identity
 * have no environment variable (architecture.md, "Command line").
 */
#ifndef BOTTLED_OPTS_H
#define BOTTLED_OPTS_H

#include <stdio.h>

enum opt_id {
    OPT_HELP,
    OPT_DIR,
    OPT_JSON,
    OPT_QUIET,
    OPT_VERBOSE,
    OPT_STATE_DIR,
    OPT_SECRETS,
    OPT_SECRET_ENV,
    OPT_PROXY_DNS,
    OPT_PROXY_ADD_HOST,
    OPT_PROXY_ALLOW_PRIVATE,
    OPT_PROXY_UPSTREAM_CA,
    OPT_ENGINE,
    OPT_NAME_PREFIX,
    OPT_INSTANCE,
    OPT_SUBNET_POOL,
    OPT_PROXY_IMAGE,
    OPT_GATE_IMAGE,
    OPT_FORGE_CA,
    OPT_KEYS_DIR,
    OPT_ALLOW_EMPTY,
    OPT_MAX_DELETES,
    OPT_FORCE,
    OPT_DETAILED_EXITCODE,
    OPT_ONCE,
    OPT_DRY_RUN,
    OPT_NO_HOST_FIREWALL,
    OPT_SETTLE,
    OPT_GRACE,
    OPT_RESYNC,
    OPT_WATCH_BACKEND,
    OPT_NO_ENGINE_EVENTS,
    OPT__COUNT,
};

/*
 * A repeatable flag's values, in the order given.  Its environment variable
 * holds several values separated by white space; typed flags replace the
 * environment's values, they do not add to them.
 */
struct opt_list {
    const char **v;
    size_t n;
    int from_env; /* v came from the environment (so far) */
};

struct opts {
    const char *dir; /* -d; default BOTTLED_DIR, else "./bottles" */
    int dir_given;   /* -d typed or BOTTLED_DIR set */
    int json;
    int quiet;
    int verbose;
    int help;
    const char *state_dir;               /* --state-dir; NULL: the default (opts_state_dir()) */
    const char *secrets;                 /* --secrets; NULL: <state-dir>/secrets, may be absent */
    struct opt_list secret_env;          /* --secret-env NAME@hosts */
    const char *proxy_dns;               /* --proxy-dns IP */
    struct opt_list proxy_add_host;      /* --proxy-add-host NAME:IP */
    struct opt_list proxy_allow_private; /* --proxy-allow-private CIDR */
    const char *proxy_upstream_ca;       /* --proxy-upstream-ca FILE */
    const char *engine;                  /* --engine URL; NULL: engine_default_url() */
    const char *name_prefix;             /* --name-prefix; NULL: "bottle" */
    const char *instance;                /* --instance ID (typed only), 12 lowercase hex */
    const char *subnet_pool;             /* --subnet-pool CIDR; NULL: 10.213.0.0/16 */
    const char *proxy_image;             /* --proxy-image REF; NULL: localhost/bottled-proxy:VER */
    const char *gate_image;              /* --gate-image REF; NULL: localhost/bottled-gate:VER */
    const char *forge_ca;                /* --forge-ca FILE; NULL: the system store */
    const char *keys_dir;                /* --keys-dir DIR; NULL: <state-dir>/keys */
    int allow_empty;                     /* --allow-empty (typed only) */
    long max_deletes;                    /* --max-deletes N; -1: not given (default 10) */
    int force;                           /* --force (typed only) */
    int detailed_exitcode;               /* --detailed-exitcode */
    int once;                            /* --once */
    int dry_run;                         /* --dry-run */
    int no_host_firewall;                /* --insecure-no-host-firewall (typed only) */
    long settle_ms;                      /* --settle MS; default 200 */
    long grace_s;                        /* --grace S; default 30 */
    long resync_s;                       /* --resync S; default 60 */
    const char *watch_backend;           /* --watch-backend NAME; NULL: the default */
    int no_engine_events;                /* --no-engine-events */
    char **owned; /* copies of environment values the fields above point into */
    size_t n_owned;
};

/* Exit codes (architecture.md). */
enum exit_code {
    EXIT_OK = 0,
    EXIT_FAILED = 1,  /* a bottle failed / validation errors */
    EXIT_USAGE = 2,   /* bottled's own configuration or usage is wrong */
    EXIT_UNAVAIL = 3, /* engine or state unreachable, state locked */
};

struct cmd {
    const char *name;
    int (*run)(const struct cmd *cmd, struct opts *o, int argc, char **argv);
    const char *args;    /* usage after the flags, e.g. "[PATH...]" */
    const char *summary; /* one line */
    const char *help;    /* paragraph(s) after the usage */
    const enum opt_id *flags;
    int n_flags;
};

/*
 * Parses the flags of cmd from argv (argv[0] is the subcommand name).
 * Returns the index of the first positional argument, or -1 after printing
 * a usage error to stderr.
 */
int opts_parse(const struct cmd *cmd, int argc, char **argv, struct opts *o);

void opts_print_help(const struct cmd *cmd, FILE *out);

/* Frees what opts_parse() allocated (the lists, environment copies). */
void opts_release(struct opts *o);

/*
 * The state directory: --state-dir / BOTTLED_STATE_DIR, else
 * /var/lib/bottled for root, else $XDG_STATE_HOME/bottled, else
 * $HOME/.local/state/bottled.  malloc'd; NULL (after a message on stderr)
 * when none can be worked out.
 */
char *opts_state_dir(const struct opts *o);

/* Prints "bottled: <cmd>: message" and a hint to stderr; returns EXIT_USAGE. */
int usage_error(const struct cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

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
    OPT__COUNT,
};

struct opts {
    const char *dir; /* -d; default BOTTLED_DIR, else "./bottles" */
    int dir_given;   /* -d typed or BOTTLED_DIR set */
    int json;
    int quiet;
    int verbose;
    int help;
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

/* Prints "bottled: <cmd>: message" and a hint to stderr; returns EXIT_USAGE. */
int usage_error(const struct cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

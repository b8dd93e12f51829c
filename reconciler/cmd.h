/*
 * cmd.h - one function per subcommand (cmd_<name>.c), registered in the
 * table in main.c.
 */
#ifndef BOTTLED_CMD_H
#define BOTTLED_CMD_H

#include "opts.h"

int cmd_validate(const struct cmd *cmd, struct opts *o, int argc, char **argv);
int cmd_show(const struct cmd *cmd, struct opts *o, int argc, char **argv);
int cmd_plan(const struct cmd *cmd, struct opts *o, int argc, char **argv);
int cmd_reconcile(const struct cmd *cmd, struct opts *o, int argc, char **argv);
int cmd_watch(const struct cmd *cmd, struct opts *o, int argc, char **argv);
int cmd_gc(const struct cmd *cmd, struct opts *o, int argc, char **argv);
int cmd_status(const struct cmd *cmd, struct opts *o, int argc, char **argv);
int cmd_render(const struct cmd *cmd, struct opts *o, int argc, char **argv);
int cmd_approve_deletes(const struct cmd *cmd, struct opts *o, int argc, char **argv);
int cmd_version(const struct cmd *cmd, struct opts *o, int argc, char **argv);

/* Prints diagnostics as text (stderr) or as the JSON document of `validate --json` (stdout). */
struct diag_list;
void print_diagnostics(const struct diag_list *l, int json, size_t files, size_t bottles);

#endif

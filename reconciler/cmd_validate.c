/*
 * cmd_validate.c - `bottled validate [PATH...]`.
 *
 * Every PATH is loaded as a whole directory: a directory PATH is the
 * manifest root itself; a file PATH is checked in the context of the -d
 * directory when it lies inside it (so its parents resolve), otherwise in
 * the context of its own directory, and only the diagnostics about that
 * file are reported.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "cmd.h"
#include "diag.h"
#include "err.h"
#include "loader.h"
#include "xalloc.h"

void print_diagnostics(const struct diag_list *l, int json, size_t files, size_t bottles)
{
    if (!json) {
        diag_print_text(l, stderr);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "diagnostics");
    for (size_t i = 0; i < l->n; i++) {
        const struct diag *d = &l->v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", d->path);
        cJSON_AddNumberToObject(o, "line", d->line);
        cJSON_AddNumberToObject(o, "column", d->col);
        if (d->bottle)
            cJSON_AddStringToObject(o, "bottle", d->bottle);
        else
            cJSON_AddNullToObject(o, "bottle");
        cJSON_AddStringToObject(o, "severity", d->level == DIAG_ERROR ? "error" : "warning");
        cJSON_AddStringToObject(o, "message", d->msg);
        if (d->allowed) {
            cJSON *al = cJSON_AddArrayToObject(o, "allowed");
            const char *p = d->allowed;
            while (*p) {
                const char *e = strstr(p, ", ");
                size_t n = e ? (size_t)(e - p) : strlen(p);
                char *item = xstrndup(p, n);
                cJSON_AddItemToArray(al, cJSON_CreateString(item));
                free(item);
                p += n + (e ? 2 : 0);
            }
        } else {
            cJSON_AddNullToObject(o, "allowed");
        }
        char *text = diag_format(d);
        cJSON_AddStringToObject(o, "text", text);
        free(text);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON *sum = cJSON_AddObjectToObject(doc, "summary");
    cJSON_AddNumberToObject(sum, "files", (double)files);
    cJSON_AddNumberToObject(sum, "bottles", (double)bottles);
    cJSON_AddNumberToObject(sum, "errors", (double)diag_count(l, NULL, DIAG_ERROR));
    cJSON_AddNumberToObject(sum, "warnings", (double)diag_count(l, NULL, DIAG_WARNING));
    char *s = cJSON_Print(doc);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(doc);
}

/* 1 if real path `inner` is `outer` or lies below it (component-wise). */
static int path_within(const char *inner, const char *outer)
{
    size_t n = strlen(outer);
    if (strncmp(inner, outer, n))
        return 0;
    return inner[n] == '/' || inner[n] == '\0' || (n == 1 && outer[0] == '/');
}

struct tally {
    size_t files, bottles;
};

/* Loads dir; appends to out the diagnostics (all, or only those about real path `only`). */
static int check_dir(const struct cmd *cmd, const char *dir, const char *only,
                     struct diag_list *out, struct tally *t)
{
    struct diag_list diags;
    diag_list_init(&diags);
    struct manifest_set set;
    int r = manifest_set_load(&set, dir, &diags);
    if (r < 0) {
        diag_list_sort(&diags);
        diag_print_text(&diags, stderr);
        diag_list_release(&diags);
        manifest_set_release(&set);
        return usage_error(cmd, "cannot validate '%s': not a readable directory", dir);
    }
    int found = !only;
    for (size_t i = 0; i < set.n; i++) {
        char *real = realpath(set.decls[i]->path, NULL);
        int mine = !only || (real && !strcmp(real, only));
        free(real);
        if (!mine)
            continue;
        found = 1;
        t->files++;
        if (set.bottles[i] && !set.bottles[i]->abstract)
            t->bottles++;
    }
    for (size_t i = 0; i < diags.n; i++) {
        const struct diag *d = &diags.v[i];
        if (only) {
            char *real = realpath(d->path, NULL);
            int mine = real && !strcmp(real, only);
            free(real);
            if (!mine)
                continue;
        }
        diag_add(out, d->level, d->path, d->line, d->col, d->bottle, d->allowed, "%s", d->msg);
    }
    manifest_set_release(&set);
    diag_list_release(&diags);
    if (!found)
        return usage_error(cmd,
                           "'%s' is not a manifest bottled reads (hidden files, README.md, editor "
                           "files and files not ending in .md are ignored)",
                           only);
    return 0;
}

int cmd_validate(const struct cmd *cmd, struct opts *o, int argc, char **argv)
{
    struct diag_list out;
    diag_list_init(&out);
    struct tally t = {0, 0};
    int ret = EXIT_OK;

    if (argc == 0) {
        ret = check_dir(cmd, o->dir, NULL, &out, &t);
        goto done;
    }
    char *ctx_real = realpath(o->dir, NULL);
    for (int i = 0; i < argc && ret == EXIT_OK; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            ret = usage_error(cmd, "cannot read '%s': %s", argv[i], strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            ret = check_dir(cmd, argv[i], NULL, &out, &t);
            continue;
        }
        char *real = realpath(argv[i], NULL);
        if (!real) {
            ret = usage_error(cmd, "cannot resolve '%s': %s", argv[i], strerror(errno));
            break;
        }
        if (ctx_real && path_within(real, ctx_real)) {
            ret = check_dir(cmd, o->dir, real, &out, &t);
        } else {
            char *copy = xstrdup(argv[i]);
            ret = check_dir(cmd, dirname(copy), real, &out, &t);
            free(copy);
        }
        free(real);
    }
    free(ctx_real);
done:
    if (ret != EXIT_OK) {
        diag_list_release(&out);
        return ret;
    }
    diag_list_sort(&out);
    print_diagnostics(&out, o->json, t.files, t.bottles);
    size_t errors = diag_count(&out, NULL, DIAG_ERROR);
    if (!o->json && !o->quiet)
        fprintf(stderr, "%zu file%s, %zu bottle%s, %zu error%s\n", t.files, t.files == 1 ? "" : "s",
                t.bottles, t.bottles == 1 ? "" : "s", errors, errors == 1 ? "" : "s");
    diag_list_release(&out);
    return errors ? EXIT_FAILED : EXIT_OK;
}

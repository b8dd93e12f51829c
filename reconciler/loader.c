/*
 * loader.c - scan, parse, de-duplicate, resolve (see loader.h).
 */
#include <string.h>

#include "err.h"
#include "extends.h"
#include "loader.h"
#include "scan.h"
#include "xalloc.h"

static void check_duplicates(struct manifest_set *s, struct diag_list *diags)
{
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < s->n; j++) {
            if (i == j || strcmp(s->decls[i]->name, s->decls[j]->name))
                continue;
            s->dup[i] = 1;
            const struct bottle *b = s->decls[i];
            diag_error(diags, b->path, b->name_pos.line, b->name_pos.col, b->name, NULL,
                       "duplicate bottle name: also declared by %s; neither file is applied",
                       s->decls[j]->path);
        }
    }
}

static void check_skills(struct manifest_set *s, struct bottle *b, struct diag_list *diags)
{
    for (size_t i = 0; i < b->n_skills; i++) {
        struct m_skill *sk = &b->skills[i];
        char *why = NULL;
        if (skill_dir_digest(s->root, sk->name, SKILL_MAX_FILES, SKILL_MAX_BYTES, sk->digest,
                             &why) < 0) {
            diag_error(diags, sk->pos.src, sk->pos.line, sk->pos.col, b->name, NULL, "%s",
                       why ? why : "cannot read skill directory");
            free(why);
            b->failed = 1;
        }
    }
}

int manifest_set_load(struct manifest_set *s, const char *root, struct diag_list *diags)
{
    memset(s, 0, sizeof(*s));
    arena_init(&s->arena);
    s->root = xstrdup(root);

    struct scan_result scan = {0};
    int r = manifest_dir_scan(root, diags, &scan);
    if (r < 0)
        return r;
    s->complete = scan.complete;
    s->n = scan.n;
    s->decls = xcalloc(s->n ? s->n : 1, sizeof(*s->decls));
    s->bottles = xcalloc(s->n ? s->n : 1, sizeof(*s->bottles));
    s->dup = xcalloc(s->n ? s->n : 1, sizeof(*s->dup));
    for (size_t i = 0; i < s->n; i++) {
        if (manifest_parse_file(&s->arena, scan.v[i].path, scan.v[i].stem, diags, &s->decls[i]) < 0)
            s->complete = 0;
    }
    scan_result_release(&scan);

    check_duplicates(s, diags);
    extends_resolve(&s->arena, s->decls, s->dup, s->n, diags, s->bottles);
    for (size_t i = 0; i < s->n; i++) {
        if (!s->bottles[i])
            continue;
        check_skills(s, s->bottles[i], diags);
        if (s->bottles[i]->failed)
            s->bottles[i] = NULL;
    }
    for (size_t i = 0; i < s->n; i++)
        if (!s->bottles[i])
            s->complete = 0;
    return 0;
}

void manifest_set_release(struct manifest_set *s)
{
    arena_release(&s->arena);
    free(s->root);
    free(s->decls);
    free(s->bottles);
    free(s->dup);
    memset(s, 0, sizeof(*s));
}

long manifest_set_find(const struct manifest_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!s->dup[i] && !strcmp(s->decls[i]->name, name))
            return (long)i;
    return -1;
}

/*
 * loader.h - a whole manifest directory, parsed and resolved.
 *
 * manifest_set_load() scans the directory (scan.h), parses every manifest
 * (manifest.h), rejects names declared by more than one file (on both
 * files, neither applied), resolves `extends` (extends.h) and checks each
 * bottle's skills, collecting every diagnostic of every file.
 *
 * `complete` tells a caller that is about to delete things whether the
 * snapshot can be trusted: it is 0 when the scan hit a path it could not
 * read or follow, or any file had an error (architecture.md, "Reconcile
 * loop": a pass with an incomplete snapshot deletes nothing).
 */
#ifndef BOTTLED_LOADER_H
#define BOTTLED_LOADER_H

#include "manifest.h"

#define SKILL_MAX_FILES 1000
#define SKILL_MAX_BYTES (8 * 1024 * 1024)

struct manifest_set {
    struct arena arena;
    char *root;              /* as given by the user */
    struct bottle **decls;   /* one per manifest file, in scan order */
    struct bottle **bottles; /* resolved; NULL where decls[i] could not be */
    int *dup;                /* 1 where decls[i]'s name is declared twice */
    size_t n;
    int complete;
};

/*
 * Loads root.  Returns 0 (even when manifests have errors: see diags and
 * complete), or BD_E_NOTFOUND / BD_E_INVAL when root is not a readable
 * directory (diagnostic added).  Release with manifest_set_release().
 */
int manifest_set_load(struct manifest_set *s, const char *root, struct diag_list *diags);
void manifest_set_release(struct manifest_set *s);

/* Index of the declaration named name, or -1 (also -1 when duplicated: see dup). */
long manifest_set_find(const struct manifest_set *s, const char *name);

#endif

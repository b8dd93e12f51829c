/*
 * extends.h - resolving `extends` across a directory of declarations.
 */
#ifndef BOTTLED_EXTENDS_H
#define BOTTLED_EXTENDS_H

#include "manifest.h"

/*
 * Resolves every declaration in decls[0..n): ret_resolved[i] becomes a new
 * bottle (in a) with all parents merged in, or NULL when decls[i] or any
 * ancestor has errors, a parent is missing or ambiguous, or a cycle runs
 * through it (each reported into diags at the child's extends entry).
 * dup[i] marks declarations whose name another file also declares: they
 * resolve to NULL and cannot be extended.
 */
void extends_resolve(struct arena *a, struct bottle **decls, const int *dup, size_t n,
                     struct diag_list *diags, struct bottle **ret_resolved);

#endif

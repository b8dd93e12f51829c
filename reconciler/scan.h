/*
 * scan.h - which files in a manifest directory are manifests, and the
 * digest of a skill directory.
 *
 * manifest_dir_scan() walks the manifest root recursively and lists every
 * file that may hold a manifest (manifest.md "Files").  Ignored, silently:
 *
 *   - hidden names (leading '.'), files and directories alike, which also
 *     skips .git/ and git-sync's staging directories;
 *   - the top-level skills/ directory (a nested team/skills/ is scanned);
 *   - editor temp names (`*~`, `*.swp`, `#*#`), whatever their type;
 *   - files whose name does not end in ".md" (case-sensitive), and files
 *     named README.md in any letter case, at any depth.
 *
 * Symbolic links are followed, because git-sync publishes a tree by
 * swapping one; the root itself may be a link and is resolved once with
 * realpath().  A link is never followed out of the root: every link is
 * resolved with realpath() and its target must lie inside the root's real
 * path, compared by path component (/a/bot is not inside /a/b).  A link
 * whose target is a non-directory and whose own name would be ignored as a
 * file (LICENSE -> ../LICENSE) is skipped without that check; any other
 * link is checked, because a link of any name may lead to a directory.
 *
 * Path-level problems are errors for that path only: they go into the
 * caller's diag_list (path = display path, line/col 0), the walk goes on
 * with the other paths, and the result is marked incomplete (complete = 0)
 * so that the reconciler deletes nothing in that pass (architecture.md,
 * "Reconcile loop").  They are:
 *
 *   "symbolic link escapes the manifest directory (-> REALTARGET)"
 *   "symbolic link loop"         ELOOP, or a directory link to an ancestor
 *                                (detected by (st_dev, st_ino) of the
 *                                directories on the current descent path)
 *   "directory loop"             the same without a link (bind mounts)
 *   "dangling symbolic link"
 *   "cannot read directory: <strerror>"
 *   "cannot stat: <strerror>", "cannot resolve symbolic link: <strerror>"
 *   "not a regular file"         a fifo, socket or device named *.md
 *   "directory nesting too deep (more than 32 levels)"
 *   "too many entries in the manifest directory (more than 10000)"
 *                                reported once, on the root; the walk stops
 *
 * A file that disappears between readdir() and lstat() is skipped without
 * an error: the snapshot then simply reflects the newer state.  The same
 * real file reached through two links is listed under both display paths
 * (later a duplicate-name error, which is right).
 *
 * Display paths are the root as the caller spelled it (trailing slashes
 * dropped) joined with the relative path; a root of "." gives bare
 * relative paths.
 */
#ifndef BOTTLED_SCAN_H
#define BOTTLED_SCAN_H

#include <stddef.h>

#include "diag.h"

#define SCAN_MAX_DEPTH   32    /* directory levels below the root */
#define SCAN_MAX_ENTRIES 10000 /* directory entries examined, hidden ones not counted */

struct scan_entry {
    char *path; /* display path: the root as given joined with rel, "examples/team/a.md" */
    char *rel;  /* path relative to the root, '/'-separated, "team/a.md" */
    char *stem; /* file name without ".md", "a" */
};

struct scan_result {
    struct scan_entry *v; /* sorted by rel, bytewise; NULL when n == 0 */
    size_t n;
    int complete; /* 0 if any path-level error was reported: the snapshot is incomplete */
};

/*
 * Scans the manifest directory root.  Returns 0 and fills *ret (which the
 * caller releases with scan_result_release()) even when path-level errors
 * were reported; those only clear ret->complete.  Fails, with one
 * diagnostic on root and *ret untouched, with
 *   BD_E_NOTFOUND  root does not exist (or is a dangling link),
 *   BD_E_INVAL     root is not a directory (or an argument is NULL),
 *   BD_E_IO        root cannot be stat'ed or resolved for another reason.
 * The result owns every string in it.
 */
int manifest_dir_scan(const char *root, struct diag_list *diags, struct scan_result *ret);

/* Frees everything in r and leaves it empty; r itself is the caller's. */
void scan_result_release(struct scan_result *r);

/*
 * Digest of the skill directory ROOT/skills/NAME/ (manifest.md, `skills`).
 *
 * The directory is walked with lstat() and nothing is followed: a symbolic
 * link anywhere inside it, or skills/ or skills/NAME/ being one, is an
 * error; so are special files, more than max_files regular files, more
 * than max_bytes of file content in total, more than SCAN_MAX_DEPTH levels
 * or more than SCAN_MAX_ENTRIES entries.  Hidden files are content like
 * any other.
 *
 * The digest is SHA-256, as lowercase hex, over this serialisation of
 * every entry below the skill directory (the directory itself is not an
 * entry), in bytewise order of the entry's key, where a file's key is its
 * relative path and a directory's is its relative path plus "/":
 *
 *   file:       rel NUL mode&0777-in-octal NUL size-in-decimal NUL content
 *   directory:  rel "/" NUL
 *
 * An empty skill directory hashes the empty string.
 *
 * Returns 0 and writes ret_hex (64 hex digits and a NUL).  On any failure
 * returns BD_E_INVAL and stores a malloc'd message for the caller to free
 * in *ret_err, e.g.
 *   "skill directory 'skills/x/' not found"
 *   "skill 'x' contains a symbolic link: sub/link"
 *   "skill 'x' has more than 100 files"
 *   "skill 'x' is larger than 1048576 bytes"
 * (no diag_list here: the caller knows which manifest line to blame).
 * ret_hex is written only on success and *ret_err only on failure.
 */
int skill_dir_digest(const char *root, const char *name, size_t max_files, size_t max_bytes,
                     char ret_hex[65], char **ret_err);

#endif

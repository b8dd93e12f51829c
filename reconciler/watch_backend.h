/*
 * watch_backend.h - change hints for `bottled watch`: one pollable fd per
 * watched manifest directory, and a drain that never waits for events and
 * says whether something changed.
 *
 * Events are only hints (architecture.md, "Reconcile loop"): the caller
 * runs a level-triggered pass over the whole directory after its settle
 * window, so a backend never has to say exactly what changed; its one job
 * is never to stay silent about a change.  It may speak when nothing that
 * matters changed (a touch, a hidden file, a spurious wakeup).
 *
 * What is watched, by every backend:
 *   - the tree: the directory's real path (the link resolved once, at
 *     open) and every directory below it, recursively, including hidden
 *     ones (a manifest link may lead into one) except directories named
 *     ".git" outside the top-level skills/ (hidden, so never read by the
 *     loader, and git writes there constantly; a manifest link into one
 *     is seen only by the caller's resync).  New subdirectories, created
 *     or moved in, are watched as they appear.
 *   - two anchors, each non-recursively: the directory that holds the
 *     name as given (so a git-sync swap `ln -s new tmp && mv -T tmp
 *     bottles` is seen) and the directory that holds the real path (so the
 *     target being moved, replaced or deleted is seen).  Only events about
 *     those two names, or about the anchors themselves, count.
 * A symbolic link in an ancestor of the directory is resolved at open and
 * not watched.  Nothing is ever written into the watched directory (the
 * fswatch backend writes only into a private mkdtemp() directory of its
 * own under $TMPDIR, see watch_fswatch.c).
 *
 * When the name as given no longer leads to the directory that was opened
 * (checked by real path and (st_dev, st_ino) after any anchor or root
 * event), drain reports ROOT_GONE: close the backend, re-open it on the
 * same name (which resolves the link again) and run a full pass.  Every
 * later non-empty batch says ROOT_GONE too; what the backend still
 * watches meanwhile differs (inotify keeps the old tree, libfswatch drops
 * a moved root and may pick up whatever appears at its path), so it is
 * no longer to be trusted.
 *
 * Threads: a struct watch_backend belongs to one thread (the caller's event
 * loop); the fswatch backend's helper threads are internal.
 *
 * Backends (watch_backend_compiled()): "fswatch" (libfswatch, when built
 * with it; the default) and "inotify" (raw Linux inotify, always built).
 */
#ifndef BOTTLED_WATCH_BACKEND_H
#define BOTTLED_WATCH_BACKEND_H

#include <stddef.h>
#include <sys/types.h>

#include "build_config.h"

/* ---------------------------------------------------------------- hints */

/* Something in the tree (or the root itself) may have changed.  Set
 * whenever any other flag is set, so a simple caller tests only this. */
#define WATCH_HINT_CHANGED 0x01u
/* Events were lost (the kernel queue overflowed, or one was injected):
 * rescan everything.  The backend re-synchronised its watches itself and
 * keeps running. */
#define WATCH_HINT_OVERFLOW 0x02u
/* The directory itself was moved, deleted or replaced, or the name given
 * now leads elsewhere (link swapped): close and re-open. */
#define WATCH_HINT_ROOT_GONE 0x04u
/* A directory in the tree could not be watched (permission, the kernel's
 * watch limit, more than SCAN_MAX_DEPTH levels or WATCH_MAX_DIRS
 * directories): changes there are seen only by the caller's periodic
 * resync.  Reported with the first batch after it happened.  inotify only:
 * libfswatch does not tell (it prints perror() lines to stderr instead). */
#define WATCH_HINT_INCOMPLETE 0x08u
/* The backend stopped working (a read error, the monitor thread ended):
 * close and re-open, after logging. */
#define WATCH_HINT_FAILED 0x10u
/* More distinct paths were touched than WATCH_HINT_MAX_PATHS. */
#define WATCH_HINT_TRUNCATED 0x20u

#define WATCH_HINT_MAX_PATHS 32
#define WATCH_MAX_DIRS       10000 /* directories watched in one tree (scan.h's entry cap) */

/*
 * One drained batch.  paths are the distinct paths events named, in
 * order of first appearance, relative to the watched directory
 * ("team/a.md"), "." for the directory itself (and for anchor events);
 * they may name things that no longer exist, or hidden or temporary files.
 * Owned by the struct: free with watch_hints_release().
 */
struct watch_hints {
    unsigned flags;
    size_t n_paths;
    char *paths[WATCH_HINT_MAX_PATHS];
};

void watch_hints_release(struct watch_hints *h);

/* ------------------------------------------------------------------ API */

struct watch_backend;

/*
 * Opens backend `name` ("fswatch", "inotify", or NULL for the first
 * compiled one that opens) on dir, and arms it: every change made after
 * this returns is reported.  On failure writes a one-line reason into err
 * (if errlen > 0) and returns
 *   BD_E_NOTFOUND  dir does not exist, or is a dangling link
 *   BD_E_INVAL     dir is not a directory, or name is not a compiled backend
 *   BD_E_LIMIT     the kernel's inotify instance or watch limit was hit
 *   BD_E_IO        dir or an anchor cannot be resolved or read
 *   BD_E_INTERNAL  the backend's library failed (the monitor did not start)
 * With name NULL, a backend failure falls back to the next one; a problem
 * with dir does not.  *ret is written only on success.
 */
int watch_backend_open(const char *name, const char *dir, struct watch_backend **ret, char *err,
                       size_t errlen);

/* The fd to poll for POLLIN; owned by the backend, valid until close. */
int watch_backend_fd(const struct watch_backend *wb);

/*
 * Collects what happened since the last drain into *ret (overwritten;
 * release it with watch_hints_release()) without waiting for events.
 * flags == 0 means nothing relevant (the wakeup was for events that do
 * not count).  Reads a bounded amount per call: if the fd is still
 * readable afterwards, poll and drain again.  The fswatch backend, after
 * an overflow or a directory moved into the tree, re-arms inside drain:
 * that call takes about one latency (50 ms) plus the time to walk the
 * tree.  Returns 0, or BD_E_INVAL for NULL arguments.  Backend errors are
 * reported as WATCH_HINT_FAILED, not as a return code.
 */
int watch_backend_drain(struct watch_backend *wb, struct watch_hints *ret);

/* Stops the backend and frees everything; NULL is a no-op.  May block for
 * about one fswatch latency (50 ms) while its threads stop. */
void watch_backend_close(struct watch_backend *wb);

/* "fswatch" or "inotify". */
const char *watch_backend_name(const struct watch_backend *wb);

/* The real path being watched (the link resolved at open). */
const char *watch_backend_real_path(const struct watch_backend *wb);

/* The i-th compiled backend's name, default first; NULL past the end. */
const char *watch_backend_compiled(size_t i);

/*
 * Test hook: makes the backend behave as if its event source had reported
 * a queue overflow at the next event boundary (inotify: a synthetic
 * IN_Q_OVERFLOW through the same handler as a real one; fswatch: an
 * Overflow event through the same callback).  Like a real overflow it
 * loses events: those queued when it is handled (inotify: still in the
 * kernel queue at the next drain; fswatch: the batch not yet drained) are
 * dropped.  The fd becomes readable and the next drain reports
 * WATCH_HINT_OVERFLOW; the backend re-synchronises and keeps running,
 * exactly as for a real overflow.
 */
void watch_backend_inject_overflow(struct watch_backend *wb);

/* ------------------------------------------------- for the backends only */

/* What open resolved; every string is owned by the backend. */
struct watch_root {
    char *dir;         /* as given, trailing slashes dropped */
    char *real;        /* realpath(dir) */
    dev_t dev;         /* of real, at open */
    ino_t ino;         /* of real, at open */
    char *link_parent; /* real path of the directory that holds dir's last component */
    char *link_name;   /* dir's last component */
    char *real_parent; /* dirname(real); "/" for "/" */
    char *real_name;   /* basename(real); NULL when real is "/" */
};

struct watch_backend {
    const struct watch_ops *ops;
    void *impl;
    struct watch_root root;
};

struct watch_ops {
    const char *name;
    /* Arms the backend on wb->root; sets wb->impl.  Errors as for open. */
    int (*open)(struct watch_backend *wb, char *err, size_t errlen);
    int (*fd)(const struct watch_backend *wb);
    /* Fills a zeroed *ret. */
    void (*drain)(struct watch_backend *wb, struct watch_hints *ret);
    void (*inject_overflow)(struct watch_backend *wb);
    /* Frees wb->impl (not the root). */
    void (*close)(struct watch_backend *wb);
};

#if BOTTLED_HAVE_FSWATCH
extern const struct watch_ops watch_fswatch_ops;
#endif
extern const struct watch_ops watch_inotify_ops;

/* Backends set this in a hint to ask the common layer to check whether
 * the root is gone (ROOT_GONE) or not (CHANGED on "."); never returned. */
#define WATCH_HINT_RECHECK 0x100u

/*
 * Records flags, and rel (rel_len bytes, relative to the root; "" or
 * NULL for none) as a touched path unless already there; the cap sets
 * WATCH_HINT_TRUNCATED.  CHANGED is implied by any flag.
 */
void watch_hints_add(struct watch_hints *h, unsigned flags, const char *rel, size_t rel_len);
/* Adds everything of src to dst and empties src. */
void watch_hints_merge(struct watch_hints *dst, struct watch_hints *src);

/* 1 if dir (as given) no longer resolves to the directory opened, else 0. */
int watch_root_gone(const struct watch_root *r);

/* 1 if the tree directory rel ("" = root, "team/sub") is not to be
 * watched (the .git rule above). */
int watch_skip_dir(const char *rel);

/* printf into err (if errlen > 0); returns code. */
int watch_errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

/*
 * watch_inotify.c - the raw Linux inotify watch backend (watch_backend.h).
 *
 * One inotify instance holds a watch on every directory of the tree and on
 * the two anchors.  The pollable fd is an epoll set of that instance and a
 * self-pipe that only watch_backend_inject_overflow() writes, so an
 * injected overflow wakes the caller like a real one.
 *
 * Invariants:
 *   - dirs[] is sorted by watch descriptor; an entry is a tree directory
 *     (rel != NULL, relative to the root, "" for the root), an anchor
 *     (anchor != 0), or both when the two coincide;
 *   - a tree directory is watched before it is read, so an entry created
 *     after the read is reported by an event and one created before it is
 *     seen by the read (and by the caller's pass, which runs later);
 *   - each tree inode has one entry: meeting a watch descriptor again under
 *     another rel (a bind mount loop) is not descended into;
 *   - a directory moved away (IN_MOVED_FROM) loses the watches of its whole
 *     subtree at once; a directory moved in is walked and watched as new;
 *   - after an overflow (real or injected) the tree is walked again: new
 *     directories are watched, entries not met any more are dropped.
 * Every watch uses IN_MASK_ADD, so an anchor that is also a tree directory
 * keeps both masks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "scan.h"
#include "watch_backend.h"
#include "xalloc.h"

#define TREE_MASK                                                                                  \
    (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO |            \
     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_DONT_FOLLOW | IN_ONLYDIR | IN_EXCL_UNLINK |    \
     IN_MASK_ADD)
#define ANCHOR_MASK                                                                                \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF |            \
     IN_MOVE_SELF | IN_ONLYDIR | IN_MASK_ADD)
#define CHILD_EVENTS                                                                               \
    (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB)
#define SELF_GONE (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED)

#define ANCHOR_LINK 0x1u /* holds root.link_name */
#define ANCHOR_REAL 0x2u /* holds root.real_name */

#define READS_PER_DRAIN 16

struct iw_dir {
    int wd;
    char *rel;       /* tree directory relative to the root, or NULL */
    unsigned anchor; /* ANCHOR_* bits */
    int seen;        /* mark of the current re-walk */
};

struct iw {
    int ifd;     /* inotify instance */
    int efd;     /* epoll set of ifd and wake[0]: the caller's fd */
    int wake[2]; /* self-pipe of watch_backend_inject_overflow() */
    int injected;
    struct iw_dir *dirs; /* sorted by wd */
    size_t n, cap;
    size_t n_tree;
    unsigned sticky; /* INCOMPLETE seen while (re)arming, for the next batch */
    int resync;      /* an overflow was handled in this drain: walk again */
};

/* ---- the watch table --------------------------------------------------- */

/* Index of wd in dirs[], or of where it would go (*found = 0). */
static size_t dir_find(const struct iw *w, int wd, int *found)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->dirs[mid].wd < wd)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < w->n && w->dirs[lo].wd == wd;
    return lo;
}

static struct iw_dir *dir_get(struct iw *w, int wd)
{
    int found;
    size_t i = dir_find(w, wd, &found);
    return found ? &w->dirs[i] : NULL;
}

static struct iw_dir *dir_insert(struct iw *w, int wd)
{
    int found;
    size_t i = dir_find(w, wd, &found);
    if (found)
        return &w->dirs[i];
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->dirs = xrealloc(w->dirs, w->cap * sizeof(*w->dirs));
    }
    memmove(&w->dirs[i + 1], &w->dirs[i], (w->n - i) * sizeof(*w->dirs));
    w->n++;
    memset(&w->dirs[i], 0, sizeof(w->dirs[i]));
    w->dirs[i].wd = wd;
    return &w->dirs[i];
}

/* Forgets entry i; with rm, also removes its watch from the kernel. */
static void dir_remove_at(struct iw *w, size_t i, int rm)
{
    if (rm)
        inotify_rm_watch(w->ifd, w->dirs[i].wd);
    if (w->dirs[i].rel)
        w->n_tree--;
    free(w->dirs[i].rel);
    memmove(&w->dirs[i], &w->dirs[i + 1], (w->n - i - 1) * sizeof(*w->dirs));
    w->n--;
}

/* Drops the tree role of rel and of everything below it. */
static void forget_subtree(struct iw *w, const char *rel)
{
    size_t len = strlen(rel);
    for (size_t i = 0; i < w->n;) {
        const char *r = w->dirs[i].rel;
        if (r && strncmp(r, rel, len) == 0 && (r[len] == '\0' || r[len] == '/')) {
            if (w->dirs[i].anchor) {
                free(w->dirs[i].rel);
                w->dirs[i].rel = NULL;
                w->n_tree--;
            } else {
                dir_remove_at(w, i, 1);
                continue;
            }
        }
        i++;
    }
}

/* ---- arming ------------------------------------------------------------ */

static char *join(const char *a, const char *b)
{
    if (!*a)
        return xstrdup(b);
    return xasprintf("%s/%s", a, b);
}

/*
 * Watches the tree directory rel and, recursively, what is below it.
 * Returns 0, or the errno of the failing inotify_add_watch() on rel itself
 * (ENOENT and ENOTDIR when it went away meanwhile); failures below rel are
 * noted in w->sticky as INCOMPLETE.  During a re-walk an existing entry
 * with the same rel is descended into again (to find new directories).
 */
static int watch_tree(struct watch_backend *wb, struct iw *w, const char *rel, int depth)
{
    char *path = *rel ? xasprintf("%s/%s", wb->root.real, rel) : xstrdup(wb->root.real);
    int ret = 0;
    DIR *d = NULL;

    int wd = inotify_add_watch(w->ifd, path, TREE_MASK);
    if (wd < 0) {
        ret = errno;
        if (ret != ENOENT && ret != ENOTDIR)
            w->sticky |= WATCH_HINT_INCOMPLETE;
        goto out;
    }
    struct iw_dir *e = dir_get(w, wd);
    if (e && e->rel && strcmp(e->rel, rel) != 0) /* the same directory by another path */
        goto out;
    if (!e || !e->rel) {
        if (w->n_tree >= WATCH_MAX_DIRS) {
            if (!e)
                inotify_rm_watch(w->ifd, wd);
            w->sticky |= WATCH_HINT_INCOMPLETE;
            goto out;
        }
        e = dir_insert(w, wd);
        e->rel = xstrdup(rel);
        w->n_tree++;
    }
    e->seen = 1;

    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || !(d = fdopendir(fd))) {
        int e2 = errno;
        if (fd >= 0)
            close(fd);
        if (e2 != ENOENT && e2 != ENOTDIR)
            w->sticky |= WATCH_HINT_INCOMPLETE;
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        int is_dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            is_dir =
                fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
        }
        if (!is_dir)
            continue;
        char *child = join(rel, de->d_name);
        if (watch_skip_dir(child)) {
            free(child);
            continue;
        }
        if (depth + 1 > SCAN_MAX_DEPTH)
            w->sticky |= WATCH_HINT_INCOMPLETE;
        else
            watch_tree(wb, w, child, depth + 1);
        free(child);
    }
out:
    if (d)
        closedir(d);
    free(path);
    return ret;
}

static int depth_of(const char *rel)
{
    int depth = *rel ? 1 : 0;
    for (const char *p = rel; *p; p++)
        depth += *p == '/';
    return depth;
}

/* Adds the anchor watch for parent/name with role bit; 0 or an errno. */
static int watch_anchor(struct iw *w, const char *parent, unsigned bit)
{
    int wd = inotify_add_watch(w->ifd, parent, ANCHOR_MASK);
    if (wd < 0)
        return errno;
    dir_insert(w, wd)->anchor |= bit;
    return 0;
}

/* Walks the whole tree again after an overflow: new directories get
 * watches, entries not met any more lose theirs. */
static void rewalk(struct watch_backend *wb, struct iw *w)
{
    for (size_t i = 0; i < w->n; i++)
        w->dirs[i].seen = 0;
    watch_tree(wb, w, "", 0);
    for (size_t i = 0; i < w->n;) {
        if (w->dirs[i].rel && !w->dirs[i].seen) {
            if (w->dirs[i].anchor) {
                free(w->dirs[i].rel);
                w->dirs[i].rel = NULL;
                w->n_tree--;
            } else {
                dir_remove_at(w, i, 1);
                continue;
            }
        }
        i++;
    }
}

/* ---- events ------------------------------------------------------------ */

static void handle_event(struct watch_backend *wb, struct iw *w, const struct inotify_event *ev,
                         struct watch_hints *h)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        watch_hints_add(h, WATCH_HINT_OVERFLOW | WATCH_HINT_RECHECK, NULL, 0);
        w->resync = 1;
        return;
    }
    int found;
    size_t i = dir_find(w, ev->wd, &found);
    if (!found)
        return; /* a watch we removed; its last events are still queued */
    struct iw_dir *e = &w->dirs[i];
    const char *name = ev->len ? ev->name : NULL;

    if (e->anchor) {
        int ours = !name ||
                   ((e->anchor & ANCHOR_LINK) && wb->root.link_name &&
                    strcmp(name, wb->root.link_name) == 0) ||
                   ((e->anchor & ANCHOR_REAL) && wb->root.real_name &&
                    strcmp(name, wb->root.real_name) == 0);
        if (ours)
            watch_hints_add(h, WATCH_HINT_RECHECK, NULL, 0);
    }
    if (e->rel) {
        if (name && (ev->mask & CHILD_EVENTS)) {
            char *child = join(e->rel, name);
            watch_hints_add(h, WATCH_HINT_CHANGED, child, strlen(child));
            if ((ev->mask & IN_ISDIR) && (ev->mask & IN_MOVED_FROM))
                forget_subtree(w, child);
            if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)) &&
                !watch_skip_dir(child)) {
                int depth = depth_of(child);
                if (depth > SCAN_MAX_DEPTH)
                    w->sticky |= WATCH_HINT_INCOMPLETE;
                else
                    watch_tree(wb, w, child, depth);
            }
            free(child);
            e = dir_get(w, ev->wd); /* watch_tree() may have moved the table */
        } else if (!name && (ev->mask & (IN_ATTRIB | SELF_GONE))) {
            watch_hints_add(h, WATCH_HINT_CHANGED, e->rel, strlen(e->rel));
            if (!*e->rel && (ev->mask & SELF_GONE))
                watch_hints_add(h, WATCH_HINT_RECHECK, NULL, 0);
        }
    }
    if (e && (ev->mask & IN_IGNORED)) { /* the kernel dropped the watch */
        if (e->anchor)
            watch_hints_add(h, WATCH_HINT_RECHECK, NULL, 0);
        dir_remove_at(w, (size_t)(e - w->dirs), 0);
    }
}

static void iw_drain(struct watch_backend *wb, struct watch_hints *h)
{
    struct iw *w = wb->impl;
    union {
        struct inotify_event ev;
        char bytes[16 * 1024];
    } buf;

    char b[64];
    while (read(w->wake[0], b, sizeof(b)) > 0)
        ;
    w->resync = 0;
    int injected = w->injected;
    w->injected = 0;
    for (int n = 0; n < READS_PER_DRAIN; n++) {
        ssize_t got = read(w->ifd, buf.bytes, sizeof(buf.bytes));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && errno == EAGAIN)
            break;
        if (got <= 0) {
            watch_hints_add(h, WATCH_HINT_FAILED, NULL, 0);
            break;
        }
        if (injected) /* lost, as in a real overflow */
            continue;
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= got;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf.bytes + off);
            handle_event(wb, w, ev, h);
            off += (ssize_t)(sizeof(struct inotify_event) + ev->len);
        }
    }
    if (injected) { /* at the event boundary, through the same handler */
        struct inotify_event ov = {.wd = -1, .mask = IN_Q_OVERFLOW};
        handle_event(wb, w, &ov, h);
    }
    if (w->resync)
        rewalk(wb, w);
    if (w->sticky) {
        watch_hints_add(h, w->sticky, NULL, 0);
        w->sticky = 0;
    }
}

/* ---- lifecycle --------------------------------------------------------- */

static void iw_free(struct iw *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->dirs[i].rel);
    free(w->dirs);
    if (w->efd >= 0)
        close(w->efd);
    if (w->ifd >= 0)
        close(w->ifd);
    if (w->wake[0] >= 0)
        close(w->wake[0]);
    if (w->wake[1] >= 0)
        close(w->wake[1]);
    free(w);
}

static int errno_code(int e)
{
    return e == ENOSPC || e == EMFILE ? BD_E_LIMIT : e == ENOENT ? BD_E_NOTFOUND : BD_E_IO;
}

static int iw_open(struct watch_backend *wb, char *err, size_t errlen)
{
    struct iw *w = xcalloc(1, sizeof(*w));
    const struct watch_root *r = &wb->root;
    int ret = 0;

    w->efd = w->ifd = w->wake[0] = w->wake[1] = -1;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd < 0) {
        ret = watch_errf(err, errlen, errno_code(errno), "inotify_init1: %s", strerror(errno));
        goto out;
    }
    if (pipe2(w->wake, O_NONBLOCK | O_CLOEXEC) < 0 || (w->efd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        ret = watch_errf(err, errlen, BD_E_IO, "cannot create the wakeup fds: %s", strerror(errno));
        goto out;
    }
    struct epoll_event ee = {.events = EPOLLIN};
    ee.data.fd = w->ifd;
    int rc = epoll_ctl(w->efd, EPOLL_CTL_ADD, w->ifd, &ee);
    ee.data.fd = w->wake[0];
    if (rc < 0 || epoll_ctl(w->efd, EPOLL_CTL_ADD, w->wake[0], &ee) < 0) {
        ret = watch_errf(err, errlen, BD_E_IO, "epoll_ctl: %s", strerror(errno));
        goto out;
    }

    /* The root first: a failure there is an error, below it only a hint. */
    int e = watch_tree(wb, w, "", 0);
    if (e) {
        ret = watch_errf(err, errlen, errno_code(e), "cannot watch '%s': %s", r->real, strerror(e));
        goto out;
    }
    if (r->real_name && (e = watch_anchor(w, r->real_parent, ANCHOR_REAL))) {
        ret = watch_errf(err, errlen, errno_code(e), "cannot watch '%s': %s", r->real_parent,
                         strerror(e));
        goto out;
    }
    if (r->link_name && (e = watch_anchor(w, r->link_parent, ANCHOR_LINK))) {
        ret = watch_errf(err, errlen, errno_code(e), "cannot watch '%s': %s", r->link_parent,
                         strerror(e));
        goto out;
    }
    if (w->sticky && write(w->wake[1], "i", 1) < 0) {
        /* cannot happen on a new pipe; the first batch would still say it */
    }
    wb->impl = w;
    w = NULL;
out:
    iw_free(w);
    return ret;
}

static int iw_fd(const struct watch_backend *wb)
{
    return ((const struct iw *)wb->impl)->efd;
}

static void iw_inject_overflow(struct watch_backend *wb)
{
    struct iw *w = wb->impl;
    w->injected = 1;
    if (write(w->wake[1], "o", 1) < 0) {
        /* full pipe: a wakeup is already pending */
    }
}

static void iw_close(struct watch_backend *wb)
{
    iw_free(wb->impl);
    wb->impl = NULL;
}

const struct watch_ops watch_inotify_ops = {
    .name = "inotify",
    .open = iw_open,
    .fd = iw_fd,
    .drain = iw_drain,
    .inject_overflow = iw_inject_overflow,
    .close = iw_close,
};

/*
 * watch_backend.c - the watch backend registry, root resolution, and the
 * parts of a drain every backend shares: the hint list, the root check,
 * and ROOT_GONE staying reported once seen (see watch_backend.h).
 *
 * Adding a backend: its own watch_<name>.c with a const struct watch_ops
 * and one line in backends[].
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "watch_backend.h"
#include "xalloc.h"

static const struct watch_ops *const backends[] = {
#if BOTTLED_HAVE_FSWATCH
    &watch_fswatch_ops,
#endif
    &watch_inotify_ops,
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

/* Set once the root was reported gone: every later non-empty batch says so too. */
#define GONE_STICKY 0x1u

struct watch_backend_common {
    struct watch_backend wb; /* first: the backends see only this */
    unsigned state;
};

const char *watch_backend_compiled(size_t i)
{
    return i < N_BACKENDS ? backends[i]->name : NULL;
}

int watch_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- hints ------------------------------------------------------------- */

void watch_hints_release(struct watch_hints *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_paths; i++)
        free(h->paths[i]);
    memset(h, 0, sizeof(*h));
}

void watch_hints_add(struct watch_hints *h, unsigned flags, const char *rel, size_t rel_len)
{
    if (flags)
        h->flags |= flags | WATCH_HINT_CHANGED;
    if (!rel)
        return;
    if (rel_len == 0) {
        rel = ".";
        rel_len = 1;
    }
    for (size_t i = 0; i < h->n_paths; i++)
        if (strlen(h->paths[i]) == rel_len && memcmp(h->paths[i], rel, rel_len) == 0)
            return;
    if (h->n_paths == WATCH_HINT_MAX_PATHS) {
        h->flags |= WATCH_HINT_TRUNCATED;
        return;
    }
    h->paths[h->n_paths++] = xstrndup(rel, rel_len);
}

void watch_hints_merge(struct watch_hints *dst, struct watch_hints *src)
{
    watch_hints_add(dst, src->flags & ~(unsigned)WATCH_HINT_TRUNCATED, NULL, 0);
    if (src->flags & WATCH_HINT_TRUNCATED)
        dst->flags |= WATCH_HINT_TRUNCATED;
    for (size_t i = 0; i < src->n_paths; i++)
        watch_hints_add(dst, 0, src->paths[i], strlen(src->paths[i]));
    watch_hints_release(src);
}

/* ---- the root ---------------------------------------------------------- */

static void root_release(struct watch_root *r)
{
    free(r->dir);
    free(r->real);
    free(r->link_parent);
    free(r->link_name);
    free(r->real_parent);
    free(r->real_name);
    memset(r, 0, sizeof(*r));
}

/* Splits an absolute real path into its parent ("/" at the top) and name
 * (NULL for "/" itself). */
static void split_real(const char *real, char **ret_parent, char **ret_name)
{
    const char *slash = strrchr(real, '/');
    if (!slash || slash[1] == '\0') {
        *ret_parent = xstrdup("/");
        *ret_name = NULL;
        return;
    }
    *ret_parent = slash == real ? xstrdup("/") : xstrndup(real, (size_t)(slash - real));
    *ret_name = xstrdup(slash + 1);
}

static int root_resolve(const char *dir, struct watch_root *r, char *err, size_t errlen)
{
    struct stat st;
    int ret = 0;

    memset(r, 0, sizeof(*r));
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    r->dir = xstrndup(dir, len);

    r->real = realpath(r->dir, NULL);
    if (!r->real) {
        int e = errno;
        ret = watch_errf(err, errlen, e == ENOENT ? BD_E_NOTFOUND : BD_E_IO,
                         "cannot resolve '%s': %s", r->dir, strerror(e));
        goto out;
    }
    if (stat(r->real, &st) < 0) {
        int e = errno;
        ret = watch_errf(err, errlen, e == ENOENT ? BD_E_NOTFOUND : BD_E_IO, "cannot stat '%s': %s",
                         r->real, strerror(e));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        ret = watch_errf(err, errlen, BD_E_INVAL, "'%s' is not a directory", r->dir);
        goto out;
    }
    r->dev = st.st_dev;
    r->ino = st.st_ino;
    split_real(r->real, &r->real_parent, &r->real_name);

    /* The name as given is an anchor of its own only when it is a link:
     * otherwise the entry that names the directory is the real one. */
    const char *base = strrchr(r->dir, '/');
    base = base ? base + 1 : r->dir;
    if (lstat(r->dir, &st) == 0 && S_ISLNK(st.st_mode) && strcmp(base, ".") != 0 &&
        strcmp(base, "..") != 0) {
        char *parent = base == r->dir ? xstrdup(".") : xstrndup(r->dir, (size_t)(base - r->dir));
        r->link_parent = realpath(parent, NULL);
        int e = errno;
        free(parent);
        if (!r->link_parent) {
            ret = watch_errf(err, errlen, BD_E_IO, "cannot resolve the directory holding '%s': %s",
                             r->dir, strerror(e));
            goto out;
        }
        r->link_name = xstrdup(base);
    } else {
        r->link_parent = xstrdup(r->real_parent);
        r->link_name = r->real_name ? xstrdup(r->real_name) : NULL;
    }
out:
    if (ret < 0)
        root_release(r);
    return ret;
}

int watch_root_gone(const struct watch_root *r)
{
    struct stat st;
    char *now = realpath(r->dir, NULL);
    int gone = !now || strcmp(now, r->real) != 0 || stat(now, &st) < 0 || st.st_dev != r->dev ||
               st.st_ino != r->ino;
    free(now);
    return gone;
}

int watch_skip_dir(const char *rel)
{
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    return strcmp(base, ".git") == 0 && strncmp(rel, "skills/", 7) != 0;
}

/* ---- the API ----------------------------------------------------------- */

static const struct watch_ops *lookup(const char *name)
{
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

int watch_backend_open(const char *name, const char *dir, struct watch_backend **ret, char *err,
                       size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!dir || !ret)
        return watch_errf(err, errlen, BD_E_INVAL, "no directory to watch");
    const struct watch_ops *only = NULL;
    if (name) {
        only = lookup(name);
        if (!only)
            return watch_errf(err, errlen, BD_E_INVAL, "unknown watch backend '%s'", name);
    }

    struct watch_backend_common *c = xcalloc(1, sizeof(*c));
    int r = root_resolve(dir, &c->wb.root, err, errlen);
    if (r < 0) {
        free(c);
        return r;
    }
    for (size_t i = 0; i < N_BACKENDS; i++) {
        if (only && backends[i] != only)
            continue;
        c->wb.ops = backends[i];
        c->wb.impl = NULL;
        r = backends[i]->open(&c->wb, err, errlen);
        if (r == 0) {
            *ret = &c->wb;
            return 0;
        }
    }
    root_release(&c->wb.root);
    free(c);
    return r;
}

int watch_backend_fd(const struct watch_backend *wb)
{
    return wb->ops->fd(wb);
}

int watch_backend_drain(struct watch_backend *wb, struct watch_hints *ret)
{
    if (!wb || !ret)
        return BD_E_INVAL;
    struct watch_backend_common *c = (struct watch_backend_common *)wb;
    memset(ret, 0, sizeof(*ret));
    wb->ops->drain(wb, ret);
    if (ret->flags & WATCH_HINT_RECHECK) {
        ret->flags &= ~(unsigned)WATCH_HINT_RECHECK;
        watch_hints_add(ret, watch_root_gone(&wb->root) ? WATCH_HINT_ROOT_GONE : WATCH_HINT_CHANGED,
                        "", 0);
    }
    if (ret->flags & WATCH_HINT_ROOT_GONE)
        c->state |= GONE_STICKY;
    else if (ret->flags && (c->state & GONE_STICKY))
        ret->flags |= WATCH_HINT_ROOT_GONE;
    return 0;
}

void watch_backend_close(struct watch_backend *wb)
{
    if (!wb)
        return;
    wb->ops->close(wb);
    root_release(&wb->root);
    free((struct watch_backend_common *)wb);
}

const char *watch_backend_name(const struct watch_backend *wb)
{
    return wb->ops->name;
}

const char *watch_backend_real_path(const struct watch_backend *wb)
{
    return wb->root.real;
}

void watch_backend_inject_overflow(struct watch_backend *wb)
{
    wb->ops->inject_overflow(wb);
}

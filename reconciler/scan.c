/*
 * scan.c - list the manifest files of a directory tree; digest a skill
 * directory.  The rules and every error are documented in scan.h.
 *
 * Invariants of the manifest walk:
 *   - every directory is opened through a real path (the root's realpath
 *     joined with names that were not links, or a link's realpath that was
 *     checked to lie inside the root), so a link target is always compared
 *     against real paths;
 *   - the (st_dev, st_ino) of every directory on the current descent path
 *     sits on a stack of at most SCAN_MAX_DEPTH + 1 entries; meeting one of
 *     them again is a loop;
 *   - names in a directory are processed in bytewise order, so diagnostics
 *     come out in a stable order even before the caller sorts them.
 * Paths are built in struct buf, never in fixed arrays.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "hash.h"
#include "scan.h"
#include "xalloc.h"

/* ---- shared helpers ---------------------------------------------------- */

struct name_list {
    char **v;
    size_t n, cap;
};

static void name_list_release(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Reads the names of an open directory except "." and "..", sorted
 * bytewise.  Returns 0, or the errno of a failing readdir().
 */
static int read_names(DIR *d, struct name_list *ret)
{
    struct dirent *de;

    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de)
            break;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (ret->n == ret->cap) {
            ret->cap = ret->cap ? ret->cap * 2 : 16;
            ret->v = xrealloc(ret->v, ret->cap * sizeof(*ret->v));
        }
        ret->v[ret->n++] = xstrdup(de->d_name);
    }
    if (errno)
        return errno;
    if (ret->n > 1)
        qsort(ret->v, ret->n, sizeof(*ret->v), cmp_str);
    return 0;
}

/* "a" + "/" + "b", or just "b" when a is empty. */
static char *path_join(const char *a, const char *b)
{
    if (!a || !*a)
        return xstrdup(b);
    if (strcmp(a, "/") == 0)
        return xasprintf("/%s", b);
    return xasprintf("%s/%s", a, b);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* ---- manifest directory walk ------------------------------------------ */

struct dev_ino {
    dev_t dev;
    ino_t ino;
};

struct walker {
    const char *root_real; /* realpath of the root */
    const char *display;   /* root as given, trailing '/' dropped; "" for "." */
    struct diag_list *diags;
    struct scan_entry *v;
    size_t n, cap;
    struct dev_ino stack[SCAN_MAX_DEPTH + 1];
    size_t depth; /* entries used in stack */
    size_t seen;  /* directory entries examined */
    int complete;
    int stopped; /* entry cap hit: examine nothing more */
};

static int is_temp_name(const char *name)
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '~')
        return 1;
    if (has_suffix(name, ".swp"))
        return 1;
    return n >= 2 && name[0] == '#' && name[n - 1] == '#';
}

/* Would a regular file of this name be listed? */
static int wants_file(const char *name)
{
    return has_suffix(name, ".md") && strlen(name) > 3 && strcasecmp(name, "README.md") != 0;
}

static int is_inside(const char *root, const char *p)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return p[0] == '/';
    return strncmp(p, root, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static char *display_of(const struct walker *w, const char *rel)
{
    if (!rel || !*rel)
        return xstrdup(*w->display ? w->display : ".");
    return path_join(w->display, rel);
}

/* A path-level error: reported, and the snapshot becomes incomplete. */
static void path_error(struct walker *w, const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void path_error(struct walker *w, const char *rel, const char *fmt, ...)
{
    char *disp = display_of(w, rel);
    struct buf msg;
    va_list ap;

    buf_init(&msg, 0);
    va_start(ap, fmt);
    if (buf_vappendf(&msg, fmt, ap) != 0) /* only past BUF_MAX_DEFAULT */
        buf_reset(&msg);
    va_end(ap);
    diag_error(w->diags, disp, 0, 0, NULL, NULL, "%s", buf_cstr(&msg));
    buf_release(&msg);
    free(disp);
    w->complete = 0;
}

static void add_entry(struct walker *w, const char *rel, const char *name)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 32;
        w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
    }
    struct scan_entry *e = &w->v[w->n++];
    e->path = display_of(w, rel);
    e->rel = xstrdup(rel);
    e->stem = xstrndup(name, strlen(name) - 3);
}

static void walk_dir(struct walker *w, const char *real, const char *rel, int via_link);

/* Descends into a directory one level below the current one. */
static void descend(struct walker *w, const char *real, const char *rel, int via_link)
{
    if (w->depth > SCAN_MAX_DEPTH) {
        path_error(w, rel, "directory nesting too deep (more than %d levels)", SCAN_MAX_DEPTH);
        return;
    }
    walk_dir(w, real, rel, via_link);
}

static void visit(struct walker *w, const char *dir_real, const char *dir_rel, const char *name)
{
    char *real = NULL, *rel = NULL, *target = NULL;
    struct stat st;

    if (name[0] == '.' || is_temp_name(name))
        return;
    if (w->depth == 1 && strcmp(name, "skills") == 0)
        return;
    if (++w->seen > SCAN_MAX_ENTRIES) {
        path_error(w, NULL, "too many entries in the manifest directory (more than %d)",
                   SCAN_MAX_ENTRIES);
        w->stopped = 1;
        return;
    }

    real = path_join(dir_real, name);
    rel = path_join(dir_rel, name);

    if (lstat(real, &st) != 0) {
        if (errno != ENOENT) /* vanished since readdir: simply absent */
            path_error(w, rel, "cannot stat: %s", strerror(errno));
        goto out;
    }

    if (S_ISLNK(st.st_mode)) {
        if (stat(real, &st) == 0 && !S_ISDIR(st.st_mode) && !wants_file(name))
            goto out;
        target = realpath(real, NULL);
        if (!target) {
            if (errno == ENOENT)
                path_error(w, rel, "dangling symbolic link");
            else if (errno == ELOOP)
                path_error(w, rel, "symbolic link loop");
            else
                path_error(w, rel, "cannot resolve symbolic link: %s", strerror(errno));
            goto out;
        }
        if (!is_inside(w->root_real, target)) {
            path_error(w, rel, "symbolic link escapes the manifest directory (-> %s)", target);
            goto out;
        }
        if (stat(target, &st) != 0) {
            path_error(w, rel, "cannot stat: %s", strerror(errno));
            goto out;
        }
        if (S_ISDIR(st.st_mode))
            descend(w, target, rel, 1);
        else if (S_ISREG(st.st_mode) && wants_file(name))
            add_entry(w, rel, name);
        else if (!S_ISREG(st.st_mode) && wants_file(name))
            path_error(w, rel, "not a regular file");
        goto out;
    }

    if (S_ISDIR(st.st_mode))
        descend(w, real, rel, 0);
    else if (S_ISREG(st.st_mode) && wants_file(name))
        add_entry(w, rel, name);
    else if (!S_ISREG(st.st_mode) && wants_file(name))
        path_error(w, rel, "not a regular file");

out:
    free(target);
    free(rel);
    free(real);
}

static void walk_dir(struct walker *w, const char *real, const char *rel, int via_link)
{
    struct name_list names = {0};
    struct stat st;
    DIR *d = opendir(real);
    int r;

    if (!d) {
        path_error(w, rel, "cannot read directory: %s", strerror(errno));
        return;
    }
    if (fstat(dirfd(d), &st) != 0) {
        path_error(w, rel, "cannot read directory: %s", strerror(errno));
        closedir(d);
        return;
    }
    for (size_t i = 0; i < w->depth; i++) {
        if (w->stack[i].dev == st.st_dev && w->stack[i].ino == st.st_ino) {
            path_error(w, rel, "%s", via_link ? "symbolic link loop" : "directory loop");
            closedir(d);
            return;
        }
    }
    r = read_names(d, &names);
    closedir(d); /* the names are read: hold no descriptor while descending */
    if (r != 0) {
        path_error(w, rel, "cannot read directory: %s", strerror(r));
        goto out;
    }

    w->stack[w->depth++] = (struct dev_ino){st.st_dev, st.st_ino};
    for (size_t i = 0; i < names.n && !w->stopped; i++)
        visit(w, real, rel, names.v[i]);
    w->depth--;

out:
    name_list_release(&names);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct scan_entry *)a)->rel, ((const struct scan_entry *)b)->rel);
}

/* The root as the user spelled it, for display: "x/" -> "x", "." -> "". */
static char *display_root(const char *root)
{
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (n == 1 && root[0] == '.')
        n = 0;
    return xstrndup(root, n);
}

int manifest_dir_scan(const char *root, struct diag_list *diags, struct scan_result *ret)
{
    struct walker w = {0};
    char *root_real = NULL, *display = NULL;
    struct stat st;
    int err = 0;

    if (!root || !*root || !diags || !ret)
        return BD_E_INVAL;

    if (stat(root, &st) != 0) {
        if (errno == ENOENT) {
            diag_error(diags, root, 0, 0, NULL, NULL, "manifest directory not found");
            return BD_E_NOTFOUND;
        }
        if (errno == ENOTDIR) {
            diag_error(diags, root, 0, 0, NULL, NULL, "manifest directory is not a directory");
            return BD_E_INVAL;
        }
        diag_error(diags, root, 0, 0, NULL, NULL, "cannot access manifest directory: %s",
                   strerror(errno));
        return BD_E_IO;
    }
    if (!S_ISDIR(st.st_mode)) {
        diag_error(diags, root, 0, 0, NULL, NULL, "manifest directory is not a directory");
        return BD_E_INVAL;
    }
    root_real = realpath(root, NULL);
    if (!root_real) {
        diag_error(diags, root, 0, 0, NULL, NULL, "cannot resolve manifest directory: %s",
                   strerror(errno));
        err = BD_E_IO;
        goto out;
    }
    display = display_root(root);

    w.root_real = root_real;
    w.display = display;
    w.diags = diags;
    w.complete = 1;
    walk_dir(&w, root_real, "", 0);

    if (w.n > 1)
        qsort(w.v, w.n, sizeof(*w.v), cmp_entry);
    ret->v = w.v;
    ret->n = w.n;
    ret->complete = w.complete;

out:
    free(display);
    free(root_real);
    return err;
}

void scan_result_release(struct scan_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].path);
        free(r->v[i].rel);
        free(r->v[i].stem);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
    r->complete = 0;
}

/* ---- skill directory digest ------------------------------------------- */

struct skill_item {
    char *key; /* rel path; directories end in '/' */
    int is_dir;
};

struct skill_walk {
    const char *name; /* the skill's name, for messages */
    size_t max_files, max_bytes;
    struct skill_item *v;
    size_t n, cap;
    size_t files;
    unsigned long long bytes;
    char *err; /* first error, malloc'd */
};

static void skill_add(struct skill_walk *s, char *key, int is_dir)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = (struct skill_item){key, is_dir};
}

/* Collects the entries below dir (rel "" is the skill directory). Returns 0 or -1 with s->err. */
static int skill_collect(struct skill_walk *s, const char *dir, const char *rel, int depth)
{
    struct name_list names = {0};
    DIR *d = opendir(dir);
    int r = -1;

    if (!d) {
        s->err = xasprintf("skill '%s': cannot read directory %s: %s", s->name, *rel ? rel : ".",
                           strerror(errno));
        return -1;
    }
    int e = read_names(d, &names);
    closedir(d);
    if (e) {
        s->err = xasprintf("skill '%s': cannot read directory %s: %s", s->name, *rel ? rel : ".",
                           strerror(e));
        goto out;
    }
    for (size_t i = 0; i < names.n; i++) {
        char *path = path_join(dir, names.v[i]);
        char *sub = path_join(rel, names.v[i]);
        struct stat st;
        int ok = 0;

        if (s->n >= SCAN_MAX_ENTRIES) {
            s->err = xasprintf("skill '%s' has more than %d entries", s->name, SCAN_MAX_ENTRIES);
        } else if (lstat(path, &st) != 0) {
            s->err = xasprintf("skill '%s': cannot stat %s: %s", s->name, sub, strerror(errno));
        } else if (S_ISLNK(st.st_mode)) {
            s->err = xasprintf("skill '%s' contains a symbolic link: %s", s->name, sub);
        } else if (S_ISDIR(st.st_mode)) {
            if (depth >= SCAN_MAX_DEPTH) {
                s->err = xasprintf("skill '%s' is nested too deep (more than %d levels): %s",
                                   s->name, SCAN_MAX_DEPTH, sub);
            } else {
                skill_add(s, xasprintf("%s/", sub), 1);
                ok = skill_collect(s, path, sub, depth + 1) == 0;
            }
        } else if (S_ISREG(st.st_mode)) {
            if (++s->files > s->max_files) {
                s->err = xasprintf("skill '%s' has more than %zu files", s->name, s->max_files);
            } else if ((s->bytes += (unsigned long long)st.st_size) > s->max_bytes) {
                s->err = xasprintf("skill '%s' is larger than %zu bytes", s->name, s->max_bytes);
            } else {
                skill_add(s, xstrdup(sub), 0);
                ok = 1;
            }
        } else {
            s->err = xasprintf("skill '%s' contains a special file: %s", s->name, sub);
        }
        free(sub);
        free(path);
        if (!ok)
            goto out;
    }
    r = 0;
out:
    name_list_release(&names);
    return r;
}

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const struct skill_item *)a)->key, ((const struct skill_item *)b)->key);
}

/*
 * Appends one file's record to ser.  The file is opened without following a
 * link and re-checked with fstat(), so a swap since the walk is caught; its
 * content may use at most *budget bytes.  Returns 0 or -1 with s->err.
 */
static int skill_append_file(struct skill_walk *s, const char *path, const char *key,
                             size_t *budget, struct buf *ser)
{
    struct buf content;
    struct stat st;
    char chunk[65536];
    int fd = -1, r = -1;

    buf_init(&content, *budget ? *budget : 1);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP)
            s->err = xasprintf("skill '%s' contains a symbolic link: %s", s->name, key);
        else
            s->err = xasprintf("skill '%s': cannot read %s: %s", s->name, key, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s->err = xasprintf("skill '%s' changed while reading: %s", s->name, key);
        goto out;
    }
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            s->err = xasprintf("skill '%s': cannot read %s: %s", s->name, key, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        if (*budget == 0 || buf_append(&content, chunk, (size_t)got) != 0) {
            s->err = xasprintf("skill '%s' is larger than %zu bytes", s->name, s->max_bytes);
            goto out;
        }
    }
    *budget -= content.len;
    if (buf_append(ser, key, strlen(key) + 1) != 0 ||
        buf_appendf(ser, "%o", (unsigned)(st.st_mode & 0777)) != 0 || buf_putc(ser, '\0') != 0 ||
        buf_appendf(ser, "%zu", content.len) != 0 || buf_putc(ser, '\0') != 0 ||
        buf_append(ser, content.data, content.len) != 0) {
        s->err = xasprintf("skill '%s' is larger than %zu bytes", s->name, s->max_bytes);
        goto out;
    }
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    buf_release(&content);
    return r;
}

static int valid_skill_name(const char *name)
{
    return *name && strchr(name, '/') == NULL && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int skill_dir_digest(const char *root, const char *name, size_t max_files, size_t max_bytes,
                     char ret_hex[65], char **ret_err)
{
    struct skill_walk s = {0};
    struct buf ser;
    char *skills = NULL, *dir = NULL;
    struct stat st;
    size_t budget = max_bytes;

    buf_init(&ser, 1);
    s.name = name;
    s.max_files = max_files;
    s.max_bytes = max_bytes;

    if (!root || !name || !valid_skill_name(name)) {
        s.err = xasprintf("invalid skill name '%s'", name ? name : "");
        goto out;
    }
    skills = path_join(root, "skills");
    dir = path_join(skills, name);
    if (lstat(skills, &st) == 0 && S_ISLNK(st.st_mode)) {
        s.err = xasprintf("skill directory 'skills/%s/' is reached through a symbolic link: skills",
                          name);
        goto out;
    }
    if (lstat(dir, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            s.err = xasprintf("skill directory 'skills/%s/' not found", name);
        else
            s.err = xasprintf("skill directory 'skills/%s/': %s", name, strerror(errno));
        goto out;
    }
    if (S_ISLNK(st.st_mode)) {
        s.err = xasprintf("skill directory 'skills/%s/' is a symbolic link", name);
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        s.err = xasprintf("skill directory 'skills/%s/' is not a directory", name);
        goto out;
    }
    if (skill_collect(&s, dir, "", 0) != 0)
        goto out;
    if (s.n > 1)
        qsort(s.v, s.n, sizeof(*s.v), cmp_item);

    /* Content is at most max_bytes; keys and numbers are bounded by the caps. */
    size_t overhead = 0;
    for (size_t i = 0; i < s.n; i++)
        overhead += strlen(s.v[i].key) + 1 + 3 * 24;
    ser.max = max_bytes < SIZE_MAX - overhead - 1 ? overhead + max_bytes + 1 : SIZE_MAX;

    for (size_t i = 0; i < s.n; i++) {
        const char *key = s.v[i].key;
        if (s.v[i].is_dir) {
            if (buf_append(&ser, key, strlen(key) + 1) != 0) {
                s.err = xasprintf("skill '%s' is larger than %zu bytes", name, max_bytes);
                goto out;
            }
            continue;
        }
        char *path = path_join(dir, key);
        int r = skill_append_file(&s, path, key, &budget, &ser);
        free(path);
        if (r != 0)
            goto out;
    }
    sha256_hex(ser.data ? ser.data : "", ser.len, ret_hex);

out:
    for (size_t i = 0; i < s.n; i++)
        free(s.v[i].key);
    free(s.v);
    buf_release(&ser);
    free(dir);
    free(skills);
    if (s.err) {
        *ret_err = s.err;
        return BD_E_INVAL;
    }
    return 0;
}
